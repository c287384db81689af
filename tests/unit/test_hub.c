/* test_hub.c: the hub engine without any gateway: topic and filter rules,
 * wildcard delivery through the tree, sequence numbers, bounded history and
 * resume with gap notices, presence events, the three slow-consumer
 * policies, frees from inside callbacks, and the SQLite store across a
 * restart. */
#include <string.h>

#include <axon/axon.h>

#include "hub/hub.h"
#include "runner.h"
#include "testutil.h"

/* A subscriber that records what it gets; `room` messages fit before the
 * wire reports full (-1: never full). */
typedef struct rec {
    hub_sub *s;
    int got, room, kicks;
    char log[2048];
    bool free_in_write;
} rec;

static bool rec_write(hub_sub *s, hub_msg *m, void *ud)
{
    rec *r = ud;
    r->got++;
    size_t n = strlen(r->log);
    const char *kind = m->kind == HUB_JOIN    ? "join:"
                       : m->kind == HUB_LEAVE ? "leave:"
                       : m->kind == HUB_GAP   ? "gap:"
                                              : "";
    snprintf(r->log + n, sizeof r->log - n, "%s%s#%llu=%.*s%s;", kind, m->topic,
             (unsigned long long)m->seq, (int)m->payload_len, m->payload,
             m->kind == HUB_MSG ? "" : m->sender);
    if (r->free_in_write) {
        hub_sub_free(s);
        r->s = NULL;
        return false;
    }
    if (r->room < 0) return true;
    return --r->room > 0;
}

static void rec_kick(hub_sub *s, const char *why, void *ud)
{
    rec *r = ud;
    r->kicks++;
    ASSERT(strstr(why, "slow") != NULL);
}

static const hub_sub_ops rec_ops = {rec_write, rec_kick};

#define LOG_IS(r, want)                                                                            \
    do {                                                                                           \
        if (strcmp((r).log, (want)) != 0) fprintf(stderr, "# log: %s\n", (r).log);                 \
        ASSERT(strcmp((r).log, (want)) == 0);                                                      \
    } while (0)

static hub *mk_hub(ax_loop *loop, hub_rule *rules, int n, const char *dir)
{
    char why[256] = "";
    hub_opts o = {.rules = rules, .nrules = n, .sub_budget = 1000, .data_dir = dir};
    hub *h = hub_new(loop, &o, why, sizeof why);
    if (!h) fprintf(stderr, "hub_new: %s\n", why);
    ASSERT(h != NULL);
    return h;
}

static void sub(hub *h, rec *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->room = -1;
    r->s = hub_sub_new(h, &rec_ops, r, name);
    ASSERT(r->s != NULL);
}

static void pub(hub *h, const char *topic, const char *text)
{
    int err = 0;
    ASSERT(hub_publish(h, topic, "tester", text, strlen(text), &err) > 0);
}

TEST(hub_names_and_filters)
{
    ASSERT(hub_topic_valid("chat/lobby", 10));
    ASSERT(!hub_topic_valid("chat/+", 6));
    ASSERT(!hub_topic_valid("", 0));
    ASSERT(!hub_topic_valid("a\nb", 3));
    ASSERT(!hub_topic_valid("\xff", 1));
    ASSERT(hub_filter_valid("a/+/c", 5));
    ASSERT(hub_filter_valid("#", 1));
    ASSERT(hub_filter_valid("a/#", 3));
    ASSERT(!hub_filter_valid("a/#/c", 5));
    ASSERT(!hub_filter_valid("a/b+", 4));
    ASSERT(!hub_filter_valid("a#", 2));
    ASSERT(hub_filter_match("a/+/c", "a/b/c"));
    ASSERT(!hub_filter_match("a/+/c", "a/b/d"));
    ASSERT(hub_filter_match("a/#", "a"));
    ASSERT(hub_filter_match("a/#", "a/b/c"));
    ASSERT(!hub_filter_match("a/+", "a/b/c"));
    ASSERT(hub_filter_match("+/+", "a/b"));
    ASSERT(!hub_filter_match("#", "$SYS/x"));
    ASSERT(hub_filter_match("$SYS/#", "$SYS/x"));
    ASSERT(hub_filter_match("a//c", "a//c"));
    ASSERT(hub_filter_match("a/+/c", "a//c"));
}

TEST(hub_wildcards_deliver_once)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b, c, d, e;
    sub(h, &a, NULL);
    sub(h, &b, NULL);
    sub(h, &c, NULL);
    sub(h, &d, NULL);
    sub(h, &e, NULL);
    ASSERT_EQ(hub_subscribe(a.s, "sensors/+/temp", -1, false), 0);
    ASSERT_EQ(hub_subscribe(b.s, "sensors/#", -1, false), 0);
    ASSERT_EQ(hub_subscribe(b.s, "sensors/kitchen/temp", -1, false), 0); /* overlaps */
    ASSERT_EQ(hub_subscribe(c.s, "#", -1, false), 0);
    ASSERT_EQ(hub_subscribe(d.s, "sensors/kitchen", -1, false), 0);
    ASSERT_EQ(hub_subscribe(e.s, "+/+/+/+", -1, false), 0);
    ASSERT_EQ(hub_subscribe(e.s, "bad/#/x", -1, false), AX_EINVAL);
    pub(h, "sensors/kitchen/temp", "21");
    pub(h, "sensors/kitchen", "on");
    pub(h, "$SYS/load", "1");
    LOG_IS(a, "sensors/kitchen/temp#1=21;");
    LOG_IS(b, "sensors/kitchen/temp#1=21;sensors/kitchen#1=on;");
    LOG_IS(c, "sensors/kitchen/temp#1=21;sensors/kitchen#1=on;");
    LOG_IS(d, "sensors/kitchen#1=on;");
    LOG_IS(e, "");
    ASSERT_EQ(hub_unsubscribe(b.s, "sensors/#"), 0);
    ASSERT_EQ(hub_unsubscribe(b.s, "sensors/#"), AX_ENOENT);
    pub(h, "sensors/kitchen/temp", "22");
    pub(h, "sensors/hall", "off");
    LOG_IS(b, "sensors/kitchen/temp#1=21;sensors/kitchen#1=on;sensors/kitchen/temp#2=22;");
    hub_sub_free(a.s);
    hub_sub_free(b.s);
    hub_sub_free(c.s);
    hub_sub_free(d.s);
    hub_sub_free(e.s);
    pub(h, "sensors/kitchen/temp", "23"); /* nobody left: the tree is empty */
    ASSERT_EQ(hub_stats_get(h)->subscribers, 0);
    hub_free(h);
    ax_loop_free(loop);
}

static void hist_cb(hub_msg *m, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%llu,", (unsigned long long)m->seq);
}

TEST(hub_history_resume_and_gap)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"chat/#", 5, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    for (int i = 1; i <= 8; i++) {
        char t[8];
        snprintf(t, sizeof t, "m%d", i);
        pub(h, "chat/lobby", t);
    }
    rec a, b, c;
    sub(h, &a, NULL);
    ASSERT_EQ(hub_subscribe(a.s, "chat/lobby", 6, false), 0); /* saw 6: gets 7, 8 */
    pub(h, "chat/lobby", "m9");
    LOG_IS(a, "chat/lobby#7=m7;chat/lobby#8=m8;chat/lobby#9=m9;");
    sub(h, &b, NULL);
    ASSERT_EQ(hub_subscribe(b.s, "chat/lobby", 1, false), 0); /* 2..4 are gone */
    ASSERT(strncmp(b.log, "gap:chat/lobby#5=", 17) == 0);
    ASSERT(strstr(b.log, "chat/lobby#5=m5;chat/lobby#6=m6;") != NULL);
    sub(h, &c, NULL);
    ASSERT_EQ(hub_subscribe(c.s, "chat/+", 8, false), 0); /* wildcard: per topic */
    LOG_IS(c, "chat/lobby#9=m9;");
    uint64_t first = 0;
    char hist[256] = "";
    ASSERT_EQ(hub_history(h, "chat/lobby", 0, 3, hist_cb, hist, &first), 9);
    ASSERT_STREQ(hist, "7,8,9,");
    ASSERT_EQ(first, 5);
    hist[0] = '\0';
    ASSERT_EQ(hub_history(h, "chat/lobby", 7, 100, hist_cb, hist, &first), 9);
    ASSERT_STREQ(hist, "8,9,");
    ASSERT_EQ(hub_history(h, "chat/none", 0, 100, hist_cb, hist, &first), 0);
    hub_sub_free(a.s);
    hub_sub_free(b.s);
    hub_sub_free(c.s);
    hub_free(h);
    ax_loop_free(loop);
}

static void names_cb(const char *name, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 128 - n, "%s,", name);
}

TEST(hub_presence_join_leave_rename)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b, watcher;
    sub(h, &watcher, NULL);
    ASSERT_EQ(hub_subscribe(watcher.s, "chat/lobby", -1, false), 0);
    sub(h, &a, "alice");
    sub(h, &b, "bob");
    ASSERT_EQ(hub_subscribe(a.s, "chat/lobby", -1, true), 0);
    ASSERT_EQ(hub_subscribe(b.s, "chat/lobby", -1, true), 0);
    LOG_IS(watcher, "join:chat/lobby#0=alice;join:chat/lobby#0=bob;");
    ASSERT(strstr(a.log, "join:chat/lobby#0=bob;") != NULL); /* alice sees bob come */
    char names[128] = "";
    hub_presence(h, "chat/lobby", names_cb, names);
    ASSERT(strstr(names, "alice,") && strstr(names, "bob,"));
    ASSERT_EQ(hub_sub_rename(b.s, "robert"), 0);
    ASSERT(strstr(watcher.log, "leave:chat/lobby#0=bob;join:chat/lobby#0=robert;") != NULL);
    hub_sub_free(a.s);
    ASSERT(strstr(watcher.log, "leave:chat/lobby#0=alice;") != NULL);
    names[0] = '\0';
    hub_presence(h, "chat/lobby", names_cb, names);
    ASSERT_STREQ(names, "robert,");
    hub_sub_free(b.s);
    hub_sub_free(watcher.s);
    hub_free(h);
    ax_loop_free(loop);
}

static void run_policy(int policy, rec *r, hub **hp, ax_loop **lp)
{
    *lp = tu_loop();
    hub_rule rules[] = {{"#", 100, 0, policy}};
    hub *h = mk_hub(*lp, rules, 1, NULL);
    *hp = h;
    sub(h, r, NULL);
    r->room = 1; /* the wire is full after the first message */
    ASSERT_EQ(hub_subscribe(r->s, "t/#", -1, false), 0);
    /* budget 1000 bytes; each message costs about 64 + 40 */
    for (int i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof p, "payload-%02d", i);
        pub(h, i % 2 ? "t/odd" : "t/even", p);
    }
}

TEST(hub_policy_disconnect)
{
    rec r;
    hub *h;
    ax_loop *loop;
    run_policy(HUB_DISCONNECT, &r, &h, &loop);
    ASSERT_EQ(r.kicks, 1);
    ASSERT_EQ(r.got, 1);
    ASSERT_EQ(hub_stats_get(h)->kicked, 1);
    int published = (int)hub_stats_get(h)->published;
    ASSERT_EQ(published, 40); /* the publisher never waited */
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_policy_drop_oldest)
{
    rec r;
    hub *h;
    ax_loop *loop;
    run_policy(HUB_DROP_OLDEST, &r, &h, &loop);
    ASSERT_EQ(r.kicks, 0);
    ASSERT(hub_sub_queued(r.s) <= 1000);
    ASSERT(hub_stats_get(h)->dropped > 20);
    r.room = -1;
    hub_sub_writable(r.s);
    ASSERT(strstr(r.log, "payload-39") != NULL); /* the newest survive */
    ASSERT(strstr(r.log, "payload-05") == NULL);
    ASSERT_EQ(hub_sub_queued(r.s), 0);
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_policy_keep_latest)
{
    rec r;
    hub *h;
    ax_loop *loop;
    run_policy(HUB_KEEP_LATEST, &r, &h, &loop);
    ASSERT_EQ(r.kicks, 0);
    r.room = -1;
    r.log[0] = '\0';
    hub_sub_writable(r.s);
    ASSERT_EQ(r.got, 3); /* the first, then one per topic */
    ASSERT(strstr(r.log, "t/even#20=payload-38;") && strstr(r.log, "t/odd#20=payload-39;"));
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_free_inside_write)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b;
    sub(h, &a, "a");
    sub(h, &b, "b");
    ASSERT_EQ(hub_subscribe(a.s, "x", -1, true), 0);
    ASSERT_EQ(hub_subscribe(b.s, "x", -1, true), 0);
    a.free_in_write = true;
    pub(h, "x", "trigger"); /* a frees itself while the walk is on b's list too */
    ASSERT(a.s == NULL);
    ASSERT(strstr(b.log, "x#1=trigger;") != NULL);
    pub(h, "x", "after");
    ASSERT(strstr(b.log, "leave:x#1=a;") != NULL); /* presence events carry the room's last seq */
    ASSERT(strstr(b.log, "x#2=after;") != NULL);
    hub_sub_free(b.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_store_survives_restart)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/data", ax_test_tmpdir());
    hub_rule rules[] = {{"#", 50, 0, HUB_DISCONNECT}};
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, rules, 1, dir);
    for (int i = 1; i <= 120; i++) {
        char p[16];
        snprintf(p, sizeof p, "n%d", i);
        pub(h, i % 3 ? "room/a" : "room/b", p);
    }
    hub_free(h); /* flushes */
    h = mk_hub(loop, rules, 1, dir);
    char hist[256] = "";
    uint64_t first = 0;
    ASSERT_EQ(hub_history(h, "room/a", 78, 100, hist_cb, hist, &first), 80);
    ASSERT_STREQ(hist, "79,80,");
    ASSERT_EQ(first, 31); /* 50 kept */
    ASSERT_EQ(hub_history(h, "room/b", 0, 1, hist_cb, hist, &first), 40);
    pub(h, "room/a", "next"); /* the sequence continues */
    rec r;
    sub(h, &r, NULL);
    ASSERT_EQ(hub_subscribe(r.s, "room/a", 80, false), 0);
    LOG_IS(r, "room/a#81=next;");
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_many_unrelated_topics)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    enum { N = 20000 };
    static rec rs[64];
    for (int i = 0; i < 64; i++)
        sub(h, &rs[i], NULL);
    for (int i = 0; i < N; i++) {
        char t[64];
        snprintf(t, sizeof t, "dev/%d/state", i);
        ASSERT_EQ(hub_subscribe(rs[i % 64].s, t, -1, false), 0);
    }
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < 20000; i++)
        pub(h, "dev/7/state", "x");
    uint64_t dt = tu_now_ms() - t0;
    ASSERT_EQ(rs[7].got, 20000);
    ASSERT(dt < 2000); /* the 19,999 other filters are never looked at */
    for (int i = 0; i < 64; i++)
        hub_sub_free(rs[i].s);
    hub_free(h);
    ax_loop_free(loop);
}
