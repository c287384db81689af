/* hub-load: load for `axon serve` over its WebSocket gateway (/ws, the
 * JSON envelope of docs/protocol.md), on libaxon: one loop, ax_ws_connect
 * clients, timers.
 *
 *     hub-load [-p PUBS] [-n SUBS] [-w WINDOW] [-r RATE] [-s SIZE]
 *              [-W WARMUP] [-t SECS] [-P SERVER_PID] [-b] ws://HOST:PORT/ws
 *
 * PUBS publishers, publisher i on topic bench/<i>, each topic with SUBS
 * subscribers (0: publish only, with -r; a message is then in flight until
 * the server's "ok", or not at all with -b).  A payload carries the publisher, its own count and
 * the send time (CLOCK_MONOTONIC; all clients share this process, so the clock is one); each
 * subscriber takes the publish-to-delivery latency on receipt and checks that the counts come in
 * order with none missing.
 *
 * A message is in flight until every subscriber of its topic has it; each
 * publisher keeps at most WINDOW in flight.  Without -r the load is
 * closed-loop (a message out, every time one is complete); with -r the
 * publishers together send RATE messages per second, and fall behind only
 * when their window is full (msgs_published/s then says by how much).
 *
 * After WARMUP seconds of load, SECS seconds are measured; publishing
 * then stops and the messages in flight drain.  With -P, the server's CPU
 * time (/proc/PID/stat utime+stime) over the measured window is divided
 * by the deliveries in it.  -b publishes binary frames (topic, newline,
 * payload: no JSON parse and no reply on the server) instead of JSON.
 *
 * Prints one line of key=value pairs; exits 1 when a client failed, a
 * message was missed or came out of order. */
#define _GNU_SOURCE /* memmem */
#include <axon/axon.h>
#include <axon/ws.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING 65536 /* in-flight slots per publisher (a power of two) */
#define SUB_BITS 5 /* histogram: 32 sub-buckets per power of two (~3%) */
#define HBUCKETS 2048

typedef struct pub {
    ax_ws *ws;
    int idx;
    char topic[32];
    uint64_t sent, done, acked; /* acked: "ok" replies to JSON publishes */
    uint32_t *ring;             /* deliveries so far of each message in flight */
} pub;

typedef struct sub {
    ax_ws *ws;
    pub *p;
    uint64_t next; /* the publisher count expected next */
    bool ready;
} sub;

static struct {
    int npub, nsub, window, size, warmup, secs, server_pid;
    double rate;
    bool binary;
    const char *url;
    char **sub_urls; /* subscribers' servers, in turn (several nodes); else url */
    int nsub_urls;
} cfg = {1, 1000, 16, 64, 1, 5, 0, 0, false, NULL, NULL, 0};

static pub *pubs;
static sub *subs;
static ax_loop *loop;
static char *pad;
static int opened, ready, failed;
static bool publishing, measuring;
static uint64_t deliveries, order_errors, pub_errors, behind;
static uint64_t hist[HBUCKETS];
static uint64_t rate_t0_ns;
static bool closing; /* ax_loop_free() closes what is left */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram (log-linear, microseconds) ----------------------------- */

static int bucket_of(uint64_t us)
{
    if (us < (1u << (SUB_BITS + 1))) return (int)us;
    int msb = 63 - __builtin_clzll(us), shift = msb - SUB_BITS;
    int b = (1 << (SUB_BITS + 1)) + (shift - 1) * (1 << SUB_BITS) +
            (int)((us >> shift) - (1u << SUB_BITS));
    return b < HBUCKETS ? b : HBUCKETS - 1;
}

static double bucket_mid(int b)
{
    if (b < (1 << (SUB_BITS + 1))) return b;
    int shift = (b - (1 << (SUB_BITS + 1))) / (1 << SUB_BITS) + 1;
    uint64_t lo = ((uint64_t)((b - (1 << (SUB_BITS + 1))) % (1 << SUB_BITS)) + (1u << SUB_BITS))
                  << shift;
    return (double)lo + (double)(1ull << shift) / 2;
}

static double percentile(double q)
{
    uint64_t total = 0, seen = 0;
    for (int b = 0; b < HBUCKETS; b++)
        total += hist[b];
    if (!total) return 0;
    for (int b = 0; b < HBUCKETS; b++) {
        seen += hist[b];
        if ((double)seen >= q * (double)total) return bucket_mid(b);
    }
    return bucket_mid(HBUCKETS - 1);
}

/* ---- publishing ------------------------------------------------------------------ */

static void publish_one(pub *p)
{
    char buf[128 + 65536];
    int head = snprintf(buf, 128, "%s%s", cfg.binary ? p->topic : "", cfg.binary ? "\n" : "");
    char *body = buf + head;
    int n = snprintf(body, 96, "%d %" PRIu64 " %" PRIu64 " ", p->idx, p->sent, now_ns());
    size_t len = (size_t)cfg.size > (size_t)n ? (size_t)cfg.size : (size_t)n;
    memcpy(body + n, pad, len - (size_t)n);
    int rc;
    if (cfg.binary) {
        rc = ax_ws_send_binary(p->ws, buf, (size_t)head + len);
    } else { /* the payload is plain ASCII: nothing to escape */
        char req[65536 + 256];
        int m = snprintf(req, sizeof req,
                         "{\"type\":\"publish\",\"topic\":\"%s\",\"payload\":\"%.*s\"}", p->topic,
                         (int)len, body);
        rc = ax_ws_send_text(p->ws, req, (size_t)m);
    }
    if (rc < 0) {
        fprintf(stderr, "hub-load: publish: %s\n", ax_strerror(rc));
        failed++;
        return;
    }
    p->ring[p->sent % RING] = 0;
    p->sent++;
    if (cfg.nsub == 0 && cfg.binary) p->done = p->sent; /* nothing to wait for */
}

static uint64_t in_flight(const pub *p)
{
    return p->sent - p->done;
}

/* Fixed rate: each tick, every publisher catches up with its share. */
static void on_tick(ax_timer *t, void *ud)
{
    (void)t, (void)ud;
    if (!publishing) return;
    double per_pub = cfg.rate / cfg.npub, secs = (double)(now_ns() - rate_t0_ns) / 1e9;
    uint64_t due = (uint64_t)(per_pub * secs);
    for (int i = 0; i < cfg.npub; i++) {
        pub *p = &pubs[i];
        while (p->sent < due && in_flight(p) < (uint64_t)cfg.window)
            publish_one(p);
        if (p->sent < due && due - p->sent > behind) /* its window is full */
            behind = due - p->sent;
    }
}

/* ---- clients ----------------------------------------------------------------------- */

static const ax_ws_opts ws_opts = {.ping_interval_ms = 0};

static void pub_open(ax_ws *ws)
{
    (void)ws;
    opened++;
}

/* Without subscribers, a JSON publish is done when the server says "ok". */
static void pub_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    pub *p = ax_ws_data(ws);
    (void)binary;
    if (memmem(data, len, "\"type\":\"ok\"", 11)) {
        p->acked++;
        if (cfg.nsub == 0) p->done = p->acked;
    } else if (memmem(data, len, "\"type\":\"error\"", 14)) {
        if (!pub_errors++) fprintf(stderr, "hub-load: %.*s\n", (int)len, (const char *)data);
    }
}

static void delivered(sub *s, const char *payload, const char *end)
{
    char *q;
    unsigned long idx = strtoul(payload, &q, 10);
    uint64_t count = strtoull(q, &q, 10), stamp = strtoull(q, &q, 10);
    if (q >= end || idx != (unsigned long)s->p->idx) {
        order_errors++;
        return;
    }
    pub *p = s->p;
    if (count != s->next) order_errors++;
    s->next = count + 1;
    if (count < p->done || count >= p->sent) return; /* not in flight: already counted */
    deliveries++;
    if (measuring) hist[bucket_of((now_ns() - stamp) / 1000)]++;
    if (++p->ring[count % RING] < (uint32_t)cfg.nsub) return;
    while (p->done < p->sent && p->ring[p->done % RING] >= (uint32_t)cfg.nsub)
        p->done++;
    if (publishing && cfg.rate <= 0)
        while (in_flight(p) < (uint64_t)cfg.window)
            publish_one(p);
}

static void connect_more(void);

static void sub_open(ax_ws *ws)
{
    sub *s = ax_ws_data(ws);
    char req[128];
    int n = snprintf(req, sizeof req, "{\"type\":\"subscribe\",\"topic\":\"%s\"}", s->p->topic);
    opened++;
    if (ax_ws_send_text(ws, req, (size_t)n) < 0) failed++;
    connect_more();
}

static void sub_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    sub *s = ax_ws_data(ws);
    const char *d = data, *end = d + len;
    (void)binary;
    if (len > 17 && memcmp(d, "{\"type\":\"message\"", 17) == 0) {
        const char *p = memmem(d, len, "\"payload\":\"", 11);
        if (p)
            delivered(s, p + 11, end);
        else
            order_errors++;
    } else if (!s->ready && memmem(d, len, "\"type\":\"ok\"", 11)) { /* any key order */
        s->ready = true;
        ready++;
    }
}

static void on_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    (void)ws;
    if (closing) return;
    if (!failed++)
        fprintf(stderr, "hub-load: a connection closed (%d %.*s)\n", code, (int)len, reason);
}

static const ax_ws_cbs pub_cbs = {
    .on_open = pub_open, .on_message = pub_message, .on_close = on_close};
static const ax_ws_cbs sub_cbs = {
    .on_open = sub_open, .on_message = sub_message, .on_close = on_close};

/* ---- phases ------------------------------------------------------------------------- */

static bool all_ready(void)
{
    return opened == cfg.npub * (cfg.nsub + 1) && ready == cfg.npub * cfg.nsub;
}

static bool all_done(void)
{
    for (int i = 0; i < cfg.npub; i++)
        if (pubs[i].done < pubs[i].sent) return false;
    return true;
}

/* Run the loop until pred() (if given) or for `ms`; false on failure. */
static bool run_for(uint64_t ms, bool (*pred)(void))
{
    ax_loop_update_time(loop);
    uint64_t end = ax_loop_now(loop) + ms;
    while (!failed && !(pred && pred())) {
        ax_loop_update_time(loop);
        if (ax_loop_now(loop) >= end) return pred == NULL;
        if (ax_loop_run_once(loop, 5) < 0) return false;
    }
    return !failed;
}

static uint64_t server_cpu_ticks(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", cfg.server_pid);
    FILE *f = cfg.server_pid ? fopen(path, "r") : NULL;
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    /* after ")": state, then fields 4..13, then utime (14) and stime (15) */
    if (!p || sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %llu", &ut, &st) != 2)
        return 0;
    return ut + st;
}

/* Subscribers connect at most CONNECTING at a time (the rest as those
 * open): thousands of SYNs at once overflow the accept backlog, and the
 * retried ones can miss the handshake timeout. */
#define CONNECTING 1000
static int next_sub, nconnecting;

static void connect_more(void)
{
    int err;
    if (nconnecting) nconnecting--;
    while (nconnecting < CONNECTING && next_sub < cfg.npub * cfg.nsub) {
        int j = next_sub % (cfg.nsub ? cfg.nsub : 1);
        sub *s = &subs[next_sub++];
        const char *url = cfg.nsub_urls ? cfg.sub_urls[j % cfg.nsub_urls] : cfg.url;
        s->ws = ax_ws_connect(loop, url, &sub_cbs, &ws_opts, s, &err);
        if (!s->ws) {
            failed++;
            return;
        }
        nconnecting++;
    }
}

static int connect_all(void)
{
    int err;
    pubs = calloc((size_t)cfg.npub, sizeof(*pubs));
    subs = calloc((size_t)cfg.npub * (size_t)cfg.nsub, sizeof(*subs));
    pad = malloc((size_t)cfg.size + 1);
    if (!pubs || !subs || !pad) return -1;
    memset(pad, 'x', (size_t)cfg.size);
    for (int i = 0; i < cfg.npub; i++) {
        pub *p = &pubs[i];
        p->idx = i;
        snprintf(p->topic, sizeof p->topic, "bench/%d", i);
        p->ring = calloc(RING, sizeof(*p->ring));
        p->ws = p->ring ? ax_ws_connect(loop, cfg.url, &pub_cbs, &ws_opts, p, &err) : NULL;
        if (!p->ws) return -1;
        for (int j = 0; j < cfg.nsub; j++)
            subs[i * cfg.nsub + j].p = p;
    }
    nconnecting = 1; /* connect_more() counts one open */
    connect_more();
    return failed ? -1 : 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: hub-load [-p PUBS] [-n SUBS] [-w WINDOW] [-r RATE] [-s SIZE] "
                    "[-W WARMUP] [-t SECS] [-P SERVER_PID] [-b] ws://HOST:PORT/ws "
                    "[SUBSCRIBERS_URL...]\n"
                    "  (with more URLs, the subscribers connect to those in turn: nodes "
                    "sharing topics through Redis)\n");
    exit(2);
}

/* The options that take a whole number. */
static bool int_opt(int ch, const char *arg)
{
    static const struct {
        char ch;
        int *val;
    } opts[] = {{'p', &cfg.npub},   {'n', &cfg.nsub}, {'w', &cfg.window},    {'s', &cfg.size},
                {'W', &cfg.warmup}, {'t', &cfg.secs}, {'P', &cfg.server_pid}};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (opts[i].ch == ch) {
            *opts[i].val = atoi(arg);
            return true;
        }
    return false;
}

static void parse_args(int argc, char **argv)
{
    int ch;
    while ((ch = getopt(argc, argv, "p:n:w:r:s:W:t:P:b")) != -1) {
        if (ch == 'r')
            cfg.rate = atof(optarg);
        else if (ch == 'b')
            cfg.binary = true;
        else if (!int_opt(ch, optarg))
            usage();
    }
    if (optind + 1 > argc || cfg.npub < 1 || cfg.nsub < 0 || (cfg.nsub == 0 && cfg.rate <= 0) ||
        cfg.window < 1 || cfg.window > RING / 2 || cfg.size < 1 || cfg.size > 60000 ||
        cfg.secs < 1 || cfg.warmup < 0)
        usage();
    cfg.url = argv[optind];
    cfg.sub_urls = argv + optind + 1;
    cfg.nsub_urls = argc - optind - 1;
}

int main(int argc, char **argv)
{
    int err;
    parse_args(argc, argv);
    loop = ax_loop_new(NULL, &err);
    if (!loop || connect_all() != 0) {
        fprintf(stderr, "hub-load: cannot start clients\n");
        return 1;
    }
    if (!run_for(60000, all_ready)) {
        fprintf(stderr, "hub-load: %d of %d connected, %d of %d subscribed\n", opened,
                cfg.npub * (cfg.nsub + 1), ready, cfg.npub * cfg.nsub);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    ax_timer *tick = ax_timer_new(loop, on_tick, NULL);
    publishing = true;
    rate_t0_ns = now_ns();
    if (cfg.rate > 0)
        ax_timer_start(tick, 1, 1);
    else
        for (int i = 0; i < cfg.npub; i++)
            for (int k = 0; k < cfg.window; k++)
                publish_one(&pubs[i]);
    bool ok = run_for((uint64_t)cfg.warmup * 1000, NULL);
    uint64_t sent0 = 0, d0 = deliveries, c0 = server_cpu_ticks(), t0 = now_ns();
    for (int i = 0; i < cfg.npub; i++)
        sent0 += pubs[i].sent;
    measuring = true;
    ok = ok && run_for((uint64_t)cfg.secs * 1000, NULL);
    measuring = false;
    uint64_t sent1 = 0, d1 = deliveries, c1 = server_cpu_ticks(), t1 = now_ns();
    for (int i = 0; i < cfg.npub; i++)
        sent1 += pubs[i].sent;
    publishing = false;
    ax_timer_stop(tick);
    bool drained = ok && run_for(30000, all_done);
    uint64_t total = 0, complete = 0;
    for (int i = 0; i < cfg.npub; i++)
        total += pubs[i].sent;
    for (int i = 0; i < cfg.npub * cfg.nsub; i++)
        complete += subs[i].next == subs[i].p->sent;
    double secs = (double)(t1 - t0) / 1e9, dps = (double)(d1 - d0) / secs;
    double cpu_us = (double)(c1 - c0) * 1e6 / (double)sysconf(_SC_CLK_TCK);
    printf("shape=%dx%d msgs_published/s=%.0f deliveries/s=%.0f p50_us=%.0f p99_us=%.0f "
           "p999_us=%.0f max_us=%.0f",
           cfg.npub, cfg.nsub, (double)(sent1 - sent0) / secs, dps, percentile(0.5),
           percentile(0.99), percentile(0.999), percentile(1.0));
    if (cfg.server_pid && d1 > d0)
        printf(" server_cpu_us_per_delivery=%.3f server_cpu_s=%.2f", cpu_us / (double)(d1 - d0),
               cpu_us / 1e6);
    printf(" published=%" PRIu64 " complete_subs=%" PRIu64 "/%d order_errors=%" PRIu64
           " behind=%" PRIu64 " pub_errors=%" PRIu64 " failed=%d drained=%d\n",
           total, complete, cfg.npub * cfg.nsub, order_errors, behind, pub_errors, failed, drained);
    fflush(stdout);
    bool good = drained && !order_errors && !pub_errors && !failed &&
                complete == (uint64_t)cfg.npub * (uint64_t)cfg.nsub;
    closing = true;
    ax_timer_free(tick);
    ax_loop_free(loop);
    return good ? 0 : 1;
}
