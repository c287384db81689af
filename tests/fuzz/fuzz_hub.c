/* fuzz_hub.c: libFuzzer target for the hub's parsers and its engine.
 *
 * The input's first byte picks what it is:
 *   0: a UDP request (gw_udp_parse): pointers must stay inside the buffer,
 *      parsed topics are then checked by the topic rules;
 *   1: a topic and a filter separated by a NUL: hub_filter_match must
 *      agree with a straightforward level-by-level matcher;
 *   2: a script for a memory-only hub: a byte picks an operation
 *      (subscribe, unsubscribe, publish, resume, rename, block, unblock,
 *      free) on one of four subscribers, the rest of a line is its
 *      argument.  ASan finds what leaks or is used after free. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <axon/axon.h>

#include "hub/hub.h"
#include "hub/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

static void fuzz_udp(const uint8_t *d, size_t n)
{
    char *buf = malloc(n + 1);
    memcpy(buf, d, n);
    buf[n] = '\0';
    udp_req r;
    if (gw_udp_parse(buf, n, &r) == 0) {
        CHECK(r.cmd >= UDP_PING && r.cmd <= UDP_UNSUB);
        if (r.cmd != UDP_PING) {
            CHECK(r.topic >= buf && r.topic < buf + n);
            hub_topic_valid(r.topic, strlen(r.topic));
            hub_filter_valid(r.topic, strlen(r.topic));
        }
        if (r.cmd == UDP_PUB) CHECK(r.payload >= buf && r.payload + r.payload_len <= buf + n);
    }
    free(buf);
}

/* The reference: split both on '/' and compare level by level. */
static bool slow_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) return false;
    for (;;) {
        if (strcmp(f, "#") == 0) return true;
        size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
        bool plus = fl == 1 && f[0] == '+';
        if (!plus && (fl != tl || strncmp(f, t, fl) != 0)) return false;
        if (!f[fl] && !t[tl]) return true;
        if (!t[tl]) return strcmp(f + fl, "/#") == 0;
        if (!f[fl]) return false;
        f += fl + 1;
        t += tl + 1;
    }
}

static void fuzz_match(const uint8_t *d, size_t n)
{
    char *buf = malloc(n + 2);
    memcpy(buf, d, n);
    buf[n] = buf[n + 1] = '\0';
    const char *topic = buf, *filter = buf + strlen(buf) + 1;
    if (filter <= buf + n && hub_topic_valid(topic, strlen(topic)) &&
        hub_filter_valid(filter, strlen(filter)))
        CHECK(hub_filter_match(filter, topic) == slow_match(filter, topic));
    free(buf);
}

typedef struct fsub {
    hub_sub *s;
    int room; /* writes before the wire is full; -1: never */
    bool kicked;
} fsub;

static bool f_write(hub_sub *s, hub_msg *m, void *ud)
{
    fsub *f = ud;
    (void)s;
    CHECK(m->refs > 0 && m->topic[m->topic_len] == '\0');
    return f->room < 0 || --f->room > 0;
}

static void f_kick(hub_sub *s, const char *why, void *ud)
{
    fsub *f = ud;
    (void)s, (void)why;
    f->kicked = true;
}

static const hub_sub_ops f_ops = {f_write, f_kick};

static void fuzz_script(const uint8_t *d, size_t n)
{
    ax_loop *loop = ax_loop_new("poll", NULL);
    hub_rule rules[] = {{"k/#", 3, 0, HUB_KEEP_LATEST},
                        {"o/#", 4, 0, HUB_DROP_OLDEST},
                        {"#", 5, 0, HUB_DISCONNECT}};
    char why[128] = "";
    hub_opts o = {.rules = rules, .nrules = 3, .sub_budget = 600};
    hub *h = hub_new(loop, &o, why, sizeof why);
    fsub subs[4] = {{NULL, -1, false}, {NULL, -1, false}, {NULL, -1, false}, {NULL, -1, false}};
    static const char *names[] = {"a", "b", NULL, "d"};
    for (int i = 0; i < 4; i++)
        subs[i].s = hub_sub_new(h, &f_ops, &subs[i], names[i]);
    size_t i = 0;
    while (i + 2 <= n) {
        uint8_t op = d[i] & 7, who = (d[i] >> 3) & 3;
        const uint8_t *arg = d + i + 1;
        const uint8_t *nl = memchr(arg, '\n', n - i - 1);
        size_t al = nl ? (size_t)(nl - arg) : n - i - 1;
        i += 1 + al + 1;
        char a[300];
        if (al >= sizeof a) continue;
        memcpy(a, arg, al);
        a[al] = '\0';
        fsub *f = &subs[who];
        if (!f->s && op != 7) continue;
        int err;
        switch (op) {
        case 0:
            hub_subscribe(f->s, a, -1, true);
            break;
        case 1:
            hub_unsubscribe(f->s, a);
            break;
        case 2:
            hub_publish(h, a, "fuzz", a, al, &err);
            break;
        case 3:
            hub_subscribe(f->s, a, al % 4, false);
            break;
        case 4:
            hub_sub_rename(f->s, a);
            break;
        case 5:
            f->room = 1;
            break;
        case 6:
            f->room = -1;
            hub_sub_writable(f->s);
            break;
        case 7:
            hub_sub_free(f->s);
            f->s = hub_sub_new(h, &f_ops, f, names[who]);
            f->room = -1;
            break;
        }
    }
    for (int k = 0; k < 4; k++)
        hub_sub_free(subs[k].s);
    hub_free(h);
    ax_loop_free(loop);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_udp(data + 1, size - 1);
        break;
    case 1:
        fuzz_match(data + 1, size - 1);
        break;
    default:
        fuzz_script(data + 1, size - 1);
        break;
    }
    return 0;
}
