/* redis.c: the Redis backplane (redis.h, docs/cluster.md).
 *
 * Two connections per node, both hiredis async contexts driven by the
 * hub's loop (ax_watch for readiness, the loop's timer for the rest):
 * `cmd` runs the publish script, history reads (XRANGE) and the
 * heartbeat; `sub` is in pub/sub mode.
 *
 * Keys, per topic T: axon:{T}:seq (its last seq), axon:{T}:log (a stream,
 * entry id "<seq>-1", fields t (ms), s (sender), p (payload), bounded to
 * the topic's history count).  Channels: axon:<db>:T (pub/sub ignores the
 * database, the name does not).  A message on a channel is
 * "<seq> <ms> <sender length> <sender><payload>".
 *
 * Subscriptions: an exact filter is a SUBSCRIBE of its channel; a
 * wildcard filter a PSUBSCRIBE of a glob in which '+' and '#' become '*'.
 * A glob's '*' crosses '/', so the glob is a superset of the filter: what
 * it brings is checked against the node's own filters (hub_filter_match)
 * and dropped unless one matches, before it is decoded into a message.
 *
 * Order and gaps: the hub delivers a topic's messages only in seq order
 * (hub_backplane_deliver).  When the first subscriber of a topic comes,
 * the node subscribes, and once Redis confirms, reads the topic's stream
 * from what it has (messages meanwhile wait in a bounded buffer); resumes
 * of the topic wait for that.  A message whose seq skips some (lost in
 * pub/sub, or sent while the link was down) makes the node read the
 * missing ones from the stream first; what the stream no longer has is
 * announced to the topic's subscribers as a gap.  After a reconnect every
 * exact topic is read again from the stream, from where the node is.
 *
 * Faults: while the link is down (or stale: no heartbeat back through
 * Redis for 3 s), publishes are refused with AX_EAGAIN (the gateways'
 * "busy, retry"), nothing is queued; local subscribers of topics keep
 * what they have, and the node retries with backoff (200 ms doubling to
 * 2 s), then resubscribes and backfills. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>

#include <axon/axon.h>

#include "map.h"
#include "proto/ws/utf8.h"
#include "redis.h"

#define BP_TICK_MS 100
#define BP_HEARTBEAT_MS 1000
#define BP_STALE_MS 3000   /* no heartbeat back for this long: the link is stale */
#define BP_CONNECT_MS 3000 /* connecting (and authenticating) at most this long */
#define BP_BACKOFF_MIN_MS 200
#define BP_BACKOFF_MAX_MS 2000
#define BP_INFLIGHT_MAX 10000 /* publishes sent and not yet answered */
#define BP_SYNC_BUF_MAX 10000 /* messages held while a topic's history loads */
#define BP_CHAN_MAX (HUB_MAX_TOPIC * 2 + 32)

enum { BP_DOWN = 0, BP_CONNECTING = 1, BP_UP = 2 };

/* The publish script: number, append, publish, atomically.  `last` (the
 * node's last seq of the topic) keeps numbers rising if Redis lost the
 * counter; a stream that is ahead of the counter moves it too. */
static const char SCRIPT[] =
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local last = tonumber(ARGV[6])\n"
    "if seq <= last then seq = last + 1; redis.call('SET', KEYS[1], seq) end\n"
    "local maxlen = tonumber(ARGV[2])\n"
    "if maxlen > 0 then\n"
    "  local ok = redis.pcall('XADD', KEYS[2], 'MAXLEN', maxlen, seq .. '-1',\n"
    "                         't', ARGV[3], 's', ARGV[4], 'p', ARGV[5])\n"
    "  if type(ok) == 'table' and ok.err then\n"
    "    local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)\n"
    "    seq = tonumber(string.match(top[1][1], '^(%d+)')) + 1\n"
    "    redis.call('SET', KEYS[1], seq)\n"
    "    redis.call('XADD', KEYS[2], 'MAXLEN', maxlen, seq .. '-1',\n"
    "               't', ARGV[3], 's', ARGV[4], 'p', ARGV[5])\n"
    "  end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[1], seq .. ' ' .. ARGV[3] .. ' ' .. #ARGV[4] .. ' ' ..\n"
    "           ARGV[4] .. ARGV[5])\n"
    "return seq\n";

typedef struct bp_link {
    redis_bp *b;
    redisAsyncContext *ac;
    ax_watch *w;
    unsigned want; /* AX_WATCH_* hiredis asked for */
    bool up;
    bool sub;
} bp_link;

typedef struct need { /* a filter this node's subscribers need */
    struct need *next, *prev;
    bool exact;
    bool syncing;  /* an exact topic whose history is being read */
    bool overflow; /* the buffer filled while syncing: read again */
    bool ready;    /* the hub was told (hub_backplane_ready) */
    /* the first read of the topic's stream: its reply (range) and our
     * marker coming back through pub/sub (then every message published
     * after the subscription took effect is in buf) */
    bool first, got_range, got_mark;
    hub_msg **range;
    size_t nrange;
    hub_msg **buf;
    size_t nbuf;
    char chan[BP_CHAN_MAX]; /* channel, or glob for a wildcard */
    char filter[];
} need;

typedef struct bp_stats {
    uint64_t reconnects, published, publish_errors, refused, received, gaps, backfilled, lost;
    uint64_t lag_ms, state;
} bp_stats;

struct redis_bp {
    hub *h;
    ax_loop *loop;
    pthread_t thread;
    redis_url u;
    char url_shown[300]; /* without the password */
    bp_link cmd, sub;
    ax_timer *tick;
    ax_dns_req *dns;
    hub_map needs; /* filter -> need */
    need *list;
    int state;
    bool broken, was_up, freeing;
    bool down_logged; /* said once per outage */
    char broken_why[512];
    uint64_t since_ms, next_try_ms, backoff_ms;
    uint64_t hb_sent_ms, hb_rx_ms; /* monotonic */
    uint64_t inflight;             /* atomic */
    char sha[41];
    char prefix[32]; /* channel prefix: "axon:<db>:" */
    size_t plen;
    char hb_chan[64];
    char node[24];           /* this node's id in presence hashes */
    hub_map pres_local;      /* rooms with names here -> bool dirty (the loop's) */
    hub_map pres_remote;     /* followed rooms -> the other nodes' names ("a\nb\n") */
    pthread_mutex_t pres_mu; /* guards pres_remote */
    bool pres_dirty;
    uint64_t pres_refresh_ms;
    bp_stats st; /* atomic reads from other threads */
    /* acknowledgements: the tickets of the publishes sent, in order (their
     * replies come in that order), and what waits for them */
    uint64_t next_ticket; /* atomic */
    uint64_t *ring;
    size_t ring_head, ring_len;
    pthread_mutex_t ack_mu; /* guards acks */
    hub_map acks;           /* ticket (decimal) -> ack_rec */
};

typedef struct ack_rec {
    hub_ack *a; /* NULL until hub_ack_wait() */
    ax_loop *loop;
    void (*cb)(hub_ack *a, int status);
    int status;
    uint64_t seq;
    bool done, posted;
} ack_rec;

#define BP_RING (BP_INFLIGHT_MAX + 16)

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#define ST_ADD(b, f, n) __atomic_add_fetch(&(b)->st.f, (n), __ATOMIC_RELAXED)
#define ST_SET(b, f, v) __atomic_store_n(&(b)->st.f, (v), __ATOMIC_RELAXED)
#define ST_GET(b, f) __atomic_load_n(&(b)->st.f, __ATOMIC_RELAXED)

/* ---- the URL ---------------------------------------------------------------------- */

static int url_db(const char *s, int *db)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000) return -1;
    *db = (int)v;
    return 0;
}

int redis_url_parse(const char *url, redis_url *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(url, "unix://", 7) == 0) {
        const char *p = url + 7, *q = strstr(p, "?db=");
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (!n || n >= sizeof out->host || (q && url_db(q + 4, &out->db) != 0)) goto bad;
        memcpy(out->host, p, n);
        out->port = -1;
        return 0;
    }
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(why, why_len,
                 "'%s': rediss:// (TLS) is not supported yet: this hiredis has no TLS", url);
        return -1;
    }
    if (strncmp(url, "redis://", 8) != 0) goto bad;
    const char *p = url + 8, *at = strrchr(p, '@'), *slash;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon ? (size_t)(colon - p) : 0;
        const char *pw = colon ? colon + 1 : p;
        size_t pl = (size_t)(at - pw);
        if (ul >= sizeof out->user || pl >= sizeof out->pass) goto bad;
        memcpy(out->user, p, ul);
        memcpy(out->pass, pw, pl);
        p = at + 1;
    }
    slash = strchr(p, '/');
    if (slash && slash[1] && url_db(slash + 1, &out->db) != 0) goto bad;
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    const char *hs = p, *he = p + hl, *colon = NULL;
    if (hl && *p == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', hl);
        if (!rb) goto bad;
        hs = p + 1;
        colon = rb + 1 < he && rb[1] == ':' ? rb + 1 : NULL;
        he = rb;
    } else {
        colon = memchr(p, ':', hl);
        if (colon) he = colon;
    }
    out->port = 6379;
    if (colon) {
        char *end;
        long v = strtol(colon + 1, &end, 10);
        if (end != p + hl || v < 1 || v > 65535) goto bad;
        out->port = (int)v;
    }
    if (he <= hs || (size_t)(he - hs) >= sizeof out->host) goto bad;
    memcpy(out->host, hs, (size_t)(he - hs));
    return 0;
bad:
    snprintf(why, why_len,
             "'%s' is not a Redis URL (redis://[user:password@]host[:port][/db] or "
             "unix://path[?db=N])",
             url);
    return -1;
}

/* ---- hiredis on the loop ------------------------------------------------------------ */

static void ev_update(bp_link *l, unsigned want)
{
    l->want = want;
    if (l->w && ax_watch_set(l->w, want) != 0) {
        l->b->broken = true;
        snprintf(l->b->broken_why, sizeof l->b->broken_why, "cannot watch the socket");
    }
}
static void ev_add_read(void *p)
{
    bp_link *l = p;
    ev_update(l, l->want | AX_WATCH_READ);
}
static void ev_del_read(void *p)
{
    bp_link *l = p;
    ev_update(l, l->want & ~AX_WATCH_READ);
}
static void ev_add_write(void *p)
{
    bp_link *l = p;
    ev_update(l, l->want | AX_WATCH_WRITE);
}
static void ev_del_write(void *p)
{
    bp_link *l = p;
    ev_update(l, l->want & ~AX_WATCH_WRITE);
}
/* hiredis frees the context: after link_close(), or by itself when the
 * connect fails (no disconnect callback then) */
static void ev_cleanup(void *p)
{
    bp_link *l = p;
    ax_watch_free(l->w);
    l->w = NULL;
    l->want = 0;
    if (!l->ac) return;
    l->ac = NULL;
    l->up = false;
    if (!l->b->broken) {
        l->b->broken = true;
        snprintf(l->b->broken_why, sizeof l->b->broken_why, "connection lost");
    }
}

static void on_watch(ax_watch *w, unsigned events, void *ud)
{
    bp_link *l = ud;
    redisAsyncContext *ac = l->ac;
    (void)w;
    if (ac && (events & AX_WATCH_READ)) redisAsyncHandleRead(ac);
    if (ac && l->ac == ac && (events & AX_WATCH_WRITE)) redisAsyncHandleWrite(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    bp_link *l = ac->data;
    (void)status;
    if (!l || l->ac != ac) return; /* one we let go of */
    l->ac = NULL;                  /* hiredis frees it after this */
    l->up = false;
    l->b->broken = true;
    snprintf(l->b->broken_why, sizeof l->b->broken_why, "%s",
             ac->errstr && ac->err ? ac->errstr : "connection closed");
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    bp_link *l = ac->data;
    if (status == REDIS_OK || !l || l->ac != ac) return;
    l->b->broken = true; /* (hiredis frees the context after this) */
    snprintf(l->b->broken_why, sizeof l->b->broken_why, "%s",
             ac->errstr ? ac->errstr : "cannot connect");
}

static int link_open(bp_link *l, const char *ip)
{
    redis_bp *b = l->b;
    redisAsyncContext *ac =
        b->u.port < 0 ? redisAsyncConnectUnix(b->u.host) : redisAsyncConnect(ip, b->u.port);
    if (!ac) return AX_ENOMEM;
    if (ac->err) {
        snprintf(b->broken_why, sizeof b->broken_why, "%s", ac->errstr);
        redisAsyncFree(ac);
        return AX_ECONNREFUSED;
    }
    l->w = ax_watch_new(b->loop, ac->c.fd, on_watch, l);
    if (!l->w) {
        redisAsyncFree(ac);
        return AX_ENOMEM;
    }
    ac->data = l;
    ac->ev.data = l;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncSetConnectCallback(ac, on_connect);
    l->ac = ac;
    l->up = false;
    return 0;
}

/* Let go of the link's context (never inside a hiredis callback: from the
 * tick or at free).  Pending callbacks run with a NULL reply. */
static void link_close(bp_link *l)
{
    redisAsyncContext *ac = l->ac;
    l->ac = NULL;
    l->up = false;
    if (ac) redisAsyncFree(ac);
    ax_watch_free(l->w); /* in case cleanup did not run */
    l->w = NULL;
    l->want = 0;
}

static bool is_ok(const redisAsyncContext *ac, const redisReply *r, bp_link **lp)
{
    bp_link *l = ac->data;
    *lp = l;
    return r && l && l->ac == ac && r->type != REDIS_REPLY_ERROR;
}

/* ---- messages --------------------------------------------------------------------------- */

static bool utf8_ok(const char *p, size_t n)
{
    return ax_utf8_valid(p, n);
}

/* "<seq> <ms> <sender length> <sender><payload>" */
static hub_msg *msg_decode(const char *topic, size_t tl, const char *p, size_t n)
{
    uint64_t v[3] = {0, 0, 0};
    size_t i = 0;
    for (int k = 0; k < 3; k++) {
        if (i >= n || p[i] < '0' || p[i] > '9') return NULL;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            v[k] = v[k] * 10 + (uint64_t)(p[i++] - '0');
        if (i >= n || p[i++] != ' ') return NULL;
    }
    if (v[2] > HUB_MAX_NAME || v[2] > n - i || !v[0]) return NULL;
    char sender[HUB_MAX_NAME + 1];
    memcpy(sender, p + i, v[2]);
    sender[v[2]] = '\0';
    i += v[2];
    hub_msg *m = hub__msg_new(topic, tl, sender[0] ? sender : NULL, p + i, n - i);
    if (!m) return NULL;
    m->seq = v[0];
    m->time_ms = (int64_t)v[1];
    m->binary = !utf8_ok(p + i, n - i);
    return m;
}

static void bp_deliver_now(redis_bp *b, hub_msg *m, bool force);

/* ---- history reads (XRANGE) ------------------------------------------------------------- */

typedef struct xreq {
    redis_bp *b;
    hub_msg *then; /* delivered after the range (a backfill), or NULL (a sync) */
    int how;       /* HUB_BPD_*: the range's messages */
    char topic[];
} xreq;

static hub_msg *entry_decode(const char *topic, size_t tl, const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) return NULL;
    const redisReply *id = e->element[0], *f = e->element[1];
    if (id->type != REDIS_REPLY_STRING || f->type != REDIS_REPLY_ARRAY) return NULL;
    const redisReply *t = NULL, *s = NULL, *p = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1) continue;
        if (k->str[0] == 't') t = v;
        if (k->str[0] == 's') s = v;
        if (k->str[0] == 'p') p = v;
    }
    if (!t || !s || !p || (size_t)s->len > HUB_MAX_NAME) return NULL;
    char sender[HUB_MAX_NAME + 1];
    memcpy(sender, s->str, (size_t)s->len);
    sender[s->len] = '\0';
    hub_msg *m = hub__msg_new(topic, tl, sender[0] ? sender : NULL, p->str, (size_t)p->len);
    if (!m) return NULL;
    m->seq = strtoull(id->str, NULL, 10);
    m->time_ms = strtoll(t->str, NULL, 10);
    m->binary = !utf8_ok(p->str, (size_t)p->len);
    return m;
}

static void sync_done(redis_bp *b, need *n);
static void pres_follow(redis_bp *b, need *n, bool on);
static void pres_forget(redis_bp *b, const char *room);
static void pres_read(redis_bp *b, const char *room);
static void pres_tick(redis_bp *b, uint64_t now);
static int xrange_send(redis_bp *b, const char *topic, hub_msg *then, int how);

static void range_free(need *n)
{
    for (size_t i = 0; i < n->nrange; i++)
        hub_msg_unref(n->range[i]);
    ax_free(n->range);
    n->range = NULL;
    n->nrange = 0;
}

/* The first read is done when both its reply and the marker are here:
 * what the stream had before the first message pub/sub brought is the
 * topic's past (history only); the rest comes from the buffer, live. */
static void first_sync_try(redis_bp *b, need *n)
{
    if (!n->first || !n->got_range || !n->got_mark) return;
    uint64_t live_from = n->nbuf ? n->buf[0]->seq : UINT64_MAX;
    for (size_t i = 0; i < n->nrange; i++)
        if (n->range[i]->seq < live_from &&
            hub_backplane_deliver(b->h, n->range[i], HUB_BPD_HISTORY) == HUB_BP_OK)
            ST_ADD(b, backfilled, 1);
    range_free(n);
    n->first = false;
    sync_done(b, n);
}

static bool first_range(redis_bp *b, xreq *x, const redisReply *r, size_t tl)
{
    need *n = x->then || x->how != HUB_BPD_HISTORY || b->freeing
                  ? NULL
                  : hub_map_get(&b->needs, x->topic, tl);
    if (!n || !n->first || n->got_range) return false;
    n->got_range = true;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements &&
        (n->range = ax_calloc(r->elements, sizeof(*n->range))))
        for (size_t i = 0; i < r->elements; i++)
            if ((n->range[n->nrange] = entry_decode(x->topic, tl, r->element[i]))) n->nrange++;
    first_sync_try(b, n);
    return true;
}

static void on_xrange(redisAsyncContext *ac, void *reply, void *priv)
{
    xreq *x = priv;
    redis_bp *b = x->b;
    redisReply *r = reply;
    bp_link *l;
    size_t tl = strlen(x->topic);
    bool ok = is_ok(ac, r, &l);
    if (first_range(b, x, ok ? r : NULL, tl)) {
        ax_free(x);
        return;
    }
    if (ok && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            hub_msg *m = entry_decode(x->topic, tl, r->element[i]);
            if (!m) continue;
            if (hub_backplane_deliver(b->h, m, x->how) == HUB_BP_OK) ST_ADD(b, backfilled, 1);
            hub_msg_unref(m);
        }
    }
    if (x->then) {
        bp_deliver_now(b, x->then, true);
        hub_msg_unref(x->then);
    } else if (!b->freeing) {
        need *n = hub_map_get(&b->needs, x->topic, tl);
        if (n && n->syncing) sync_done(b, n);
    }
    ax_free(x);
}

/* Read the topic's stream after the last seq this node has (up to then's
 * seq when a message waits for it). */
static int xrange_send(redis_bp *b, const char *topic, hub_msg *then, int how)
{
    size_t tl = strlen(topic);
    if (!b->cmd.ac || !b->cmd.up) return AX_ENOTCONN;
    xreq *x = ax_malloc(sizeof(*x) + tl + 1);
    if (!x) return AX_ENOMEM;
    x->b = b;
    x->then = then ? hub_msg_ref(then) : NULL;
    x->how = how;
    memcpy(x->topic, topic, tl + 1);
    char key[HUB_MAX_TOPIC + 16], from[24], to[24];
    snprintf(key, sizeof key, "axon:{%s}:log", topic);
    snprintf(from, sizeof from, "%llu", (unsigned long long)hub_backplane_last(b->h, topic) + 1);
    if (then)
        snprintf(to, sizeof to, "%llu", (unsigned long long)then->seq - 1);
    else
        snprintf(to, sizeof to, "+");
    const char *argv[] = {"XRANGE", key, from, to};
    if (redisAsyncCommandArgv(b->cmd.ac, on_xrange, x, 4, argv, NULL) != REDIS_OK) {
        hub_msg_unref(x->then);
        ax_free(x);
        return AX_ENOTCONN;
    }
    return 0;
}

/* A live message (or one a backfill waited for): in order, or backfill. */
static void bp_deliver_now(redis_bp *b, hub_msg *m, bool force)
{
    int rc = hub_backplane_deliver(b->h, m, force ? HUB_BPD_FORCE : HUB_BPD_IN_ORDER);
    if (rc == HUB_BP_GAP) {
        ST_ADD(b, gaps, 1);
        if (xrange_send(b, m->topic, m, HUB_BPD_FORCE) != 0)
            hub_backplane_deliver(b->h, m, HUB_BPD_FORCE);
    }
}

static void need_flush(redis_bp *b, need *n)
{
    for (size_t i = 0; i < n->nbuf; i++) {
        if (!b->freeing) bp_deliver_now(b, n->buf[i], true);
        hub_msg_unref(n->buf[i]);
    }
    n->nbuf = 0;
}

static void need_ready(redis_bp *b, need *n)
{
    if (n->ready || !n->exact) return;
    n->ready = true;
    hub_backplane_ready(b->h, n->filter);
}

static void sync_done(redis_bp *b, need *n)
{
    need_flush(b, n);
    if (n->overflow && b->state == BP_UP) { /* more came than the buffer held: read again */
        n->overflow = false;
        if (xrange_send(b, n->filter, NULL, HUB_BPD_FORCE) == 0) return;
    }
    n->syncing = false;
    need_ready(b, n);
}

/* ---- subscriptions ---------------------------------------------------------------------- */

static void on_sub(redisAsyncContext *ac, void *reply, void *priv);

/* The glob for a wildcard filter ('+' and '#' become '*'; what is a glob
 * character in the name is escaped). */
static void glob_of(redis_bp *b, const char *f, char *out, size_t cap)
{
    size_t o = 0;
    memcpy(out, b->prefix, b->plen);
    o = b->plen;
    for (const char *p = f; *p && o + 3 < cap; p++) {
        if (*p == '+') {
            out[o++] = '*';
        } else if (*p == '#') {
            if (o > b->plen && out[o - 1] == '/') o--; /* "a/#" matches "a" too */
            out[o++] = '*';
        } else {
            if (strchr("*?[]\\", *p)) out[o++] = '\\';
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static void need_subscribe(redis_bp *b, need *n)
{
    if (!b->sub.ac || !b->sub.up) return;
    const char *argv[] = {n->exact ? "SUBSCRIBE" : "PSUBSCRIBE", n->chan};
    if (n->exact) {
        n->syncing = true;
        n->overflow = false;
    }
    if (redisAsyncCommandArgv(b->sub.ac, on_sub, b, 2, argv, NULL) != REDIS_OK) {
        n->syncing = false;
        need_ready(b, n);
    }
    pres_follow(b, n, true);
}

static void need_free(redis_bp *b, need *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        b->list = n->next;
    if (n->next) n->next->prev = n->prev;
    for (size_t i = 0; i < n->nbuf; i++)
        hub_msg_unref(n->buf[i]);
    ax_free(n->buf);
    range_free(n);
    ax_free(n);
}

static void need_on(redis_bp *b, const char *filter)
{
    size_t fl = strlen(filter);
    if (hub_map_get(&b->needs, filter, fl)) return;
    need *n = ax_calloc(1, sizeof(*n) + fl + 1);
    if (!n) return;
    memcpy(n->filter, filter, fl + 1);
    n->exact = hub_topic_valid(filter, fl);
    if (n->exact)
        snprintf(n->chan, sizeof n->chan, "%s%s", b->prefix, filter);
    else
        glob_of(b, filter, n->chan, sizeof n->chan);
    if (hub_map_put(&b->needs, filter, fl, n, NULL) != 0) {
        ax_free(n);
        return;
    }
    n->next = b->list;
    if (b->list) b->list->prev = n;
    b->list = n;
    if (b->state == BP_UP)
        need_subscribe(b, n);
    else
        need_ready(b, n); /* no history to wait for: resumes use what this node has */
}

static void need_off(redis_bp *b, const char *filter)
{
    need *n = hub_map_del(&b->needs, filter, strlen(filter));
    if (!n) return;
    if (b->sub.ac && b->sub.up) {
        const char *argv[] = {n->exact ? "UNSUBSCRIBE" : "PUNSUBSCRIBE", n->chan};
        (void)redisAsyncCommandArgv(b->sub.ac, NULL, NULL, 2, argv, NULL);
        pres_follow(b, n, false);
    }
    if (n->exact) pres_forget(b, n->filter);
    need_free(b, n);
}

typedef struct need_post {
    redis_bp *b;
    bool on;
    char filter[];
} need_post;

static void need_run(ax_loop *loop, void *arg)
{
    need_post *p = arg;
    (void)loop;
    if (p->on)
        need_on(p->b, p->filter);
    else
        need_off(p->b, p->filter);
    ax_free(p);
}

/* hub -> backplane: any thread, under the hub lock */
static void op_need(void *ud, const char *filter, bool on)
{
    redis_bp *b = ud;
    if (pthread_equal(pthread_self(), b->thread)) {
        if (on)
            need_on(b, filter);
        else
            need_off(b, filter);
        return;
    }
    size_t fl = strlen(filter);
    need_post *p = ax_malloc(sizeof(*p) + fl + 1);
    if (!p) return;
    p->b = b;
    p->on = on;
    memcpy(p->filter, filter, fl + 1);
    if (ax_loop_post(b->loop, need_run, p) != 0) ax_free(p);
}

static void on_message(redis_bp *b, const redisReply *chan, const redisReply *data, bool pattern)
{
    if (chan->type != REDIS_REPLY_STRING || data->type != REDIS_REPLY_STRING) return;
    if ((size_t)chan->len <= b->plen || memcmp(chan->str, b->prefix, b->plen) != 0) return;
    const char *topic = chan->str + b->plen;
    size_t tl = (size_t)chan->len - b->plen;
    if (strcmp(chan->str, b->hb_chan) == 0) return;
    need *n = hub_map_get(&b->needs, topic, tl);
    if (pattern) {
        if (n && !n->syncing) return; /* its own subscription brings it */
        bool any = false;
        for (need *w = b->list; w && !any; w = w->next)
            any = !w->exact && hub_filter_match(w->filter, topic);
        if (!any) return; /* the glob is wider than the filter */
    } else if (!n) {
        return; /* unsubscribed since */
    }
    if (data->len > 2 && data->str[0] == 'm' && data->str[1] == ' ') { /* a sync marker */
        if (!pattern && n && n->first && strcmp(data->str + 2, b->node) == 0) {
            n->got_mark = true;
            first_sync_try(b, n);
        }
        return;
    }
    hub_msg *m = msg_decode(topic, tl, data->str, (size_t)data->len);
    if (!m) return;
    ST_ADD(b, received, 1);
    if (n && n->syncing) {
        if (n->nbuf >= BP_SYNC_BUF_MAX) {
            n->overflow = true; /* it is in the stream: read again after */
        } else {
            hub_msg **nb = n->buf;
            if (!(n->nbuf & (n->nbuf + 1)) || !nb) /* grow at 0, 1, 3, 7, ... */
                nb = ax_realloc(n->buf, (n->nbuf * 2 + 2) * sizeof(*nb));
            if (nb) {
                n->buf = nb;
                n->buf[n->nbuf++] = hub_msg_ref(m);
            } else {
                n->overflow = true;
            }
        }
    } else {
        bp_deliver_now(b, m, false);
    }
    hub_msg_unref(m);
}

static void on_heartbeat(redis_bp *b, const redisReply *data)
{
    uint64_t now = mono_ms();
    uint64_t sent = data->type == REDIS_REPLY_STRING ? strtoull(data->str, NULL, 10) : 0;
    b->hb_rx_ms = now;
    ST_SET(b, lag_ms, sent && now >= sent ? now - sent : 0);
}

static void on_sub(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_bp *b = priv;
    redisReply *r = reply;
    bp_link *l;
    if (!is_ok(ac, r, &l) || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const redisReply *kind = r->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "message") == 0) {
        const redisReply *c = r->element[1];
        if (c->type == REDIS_REPLY_STRING && strcmp(c->str, b->hb_chan) == 0)
            on_heartbeat(b, r->element[2]);
        else if (c->type == REDIS_REPLY_STRING && (size_t)c->len > b->plen + 2 &&
                 memcmp(c->str, b->prefix, b->plen - 1) == 0 &&
                 memcmp(c->str + b->plen - 1, "~p:", 3) == 0)
            pres_read(b, c->str + b->plen + 2); /* a room's names changed */
        else
            on_message(b, r->element[1], r->element[2], false);
    } else if (strcmp(kind->str, "pmessage") == 0 && r->elements >= 4) {
        on_message(b, r->element[2], r->element[3], true);
    } else if (strcmp(kind->str, "subscribe") == 0 && r->element[1]->type == REDIS_REPLY_STRING) {
        /* subscribed: what is published from now on comes here; read what
         * came before from the stream */
        const redisReply *c = r->element[1];
        if ((size_t)c->len <= b->plen || memcmp(c->str, b->prefix, b->plen) != 0) return;
        need *n = hub_map_get(&b->needs, c->str + b->plen, (size_t)c->len - b->plen);
        /* the first time, the topic's past (history only); after a
         * reconnect, what was missed (live) */
        int how = n && !n->ready ? HUB_BPD_HISTORY : HUB_BPD_FORCE;
        if (!n || !n->syncing) return;
        if (how == HUB_BPD_HISTORY) {
            range_free(n);
            n->first = true;
            n->got_range = n->got_mark = false;
        }
        if (xrange_send(b, n->filter, NULL, how) != 0) {
            n->first = false;
            sync_done(b, n);
        } else if (how == HUB_BPD_HISTORY) { /* after the read, through pub/sub */
            char mark[40];
            snprintf(mark, sizeof mark, "m %s", b->node);
            const char *argv[] = {"PUBLISH", n->chan, mark};
            (void)redisAsyncCommandArgv(b->cmd.ac, NULL, NULL, 3, argv, NULL);
        }
    }
}

/* ---- the connection's life ---------------------------------------------------------------- */

static void set_state(redis_bp *b, int s)
{
    b->state = s;
    ST_SET(b, state, (uint64_t)s);
}

/* After a reconnect: Redis may have restarted empty; keep each topic's
 * counter at least at what this node has, so numbers never go back. */
static void seed_counter(redis_bp *b, const need *n)
{
    char key[HUB_MAX_TOPIC + 16], last[24];
    snprintf(key, sizeof key, "axon:{%s}:seq", n->filter);
    snprintf(last, sizeof last, "%llu", (unsigned long long)hub_backplane_last(b->h, n->filter));
    const char *argv[] = {"EVAL",
                          "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) "
                          "then redis.call('SET', KEYS[1], ARGV[1]) end",
                          "1", key, last};
    (void)redisAsyncCommandArgv(b->cmd.ac, NULL, NULL, 5, argv, NULL);
}

static void went_up(redis_bp *b)
{
    set_state(b, BP_UP);
    b->backoff_ms = BP_BACKOFF_MIN_MS;
    b->down_logged = false;
    b->hb_rx_ms = b->hb_sent_ms = mono_ms();
    if (b->was_up) ST_ADD(b, reconnects, 1);
    ax_log(AX_LOG_INFO, "redis %s: %s", b->url_shown,
           b->was_up ? "reconnected; resubscribing and reading what was missed" : "connected");
    b->was_up = true;
    const char *argv[] = {"SUBSCRIBE", b->hb_chan};
    (void)redisAsyncCommandArgv(b->sub.ac, on_sub, b, 2, argv, NULL);
    for (need *n = b->list; n; n = n->next) {
        if (n->exact) seed_counter(b, n);
        need_subscribe(b, n);
    }
    b->pres_refresh_ms = 0; /* write this node's rooms again at the next tick */
}

static void check_up(redis_bp *b)
{
    if (b->state == BP_CONNECTING && b->cmd.up && b->sub.up) went_up(b);
}

static void on_setup(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    bp_link *l;
    (void)priv;
    if (!is_ok(ac, r, &l)) {
        if (l && l->ac == ac && !l->b->broken) {
            l->b->broken = true;
            snprintf(l->b->broken_why, sizeof l->b->broken_why, "%s",
                     r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
        }
    }
}

static void on_ready(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    bp_link *l;
    (void)priv;
    if (!is_ok(ac, r, &l)) {
        on_setup(ac, reply, priv);
        return;
    }
    if (!l->sub && r->type == REDIS_REPLY_STRING && r->len == 40) memcpy(l->b->sha, r->str, 41);
    l->up = true;
    check_up(l->b);
}

static void link_setup(redis_bp *b, bp_link *l)
{
    if (b->u.pass[0]) { /* AUTH [user] password */
        const char *argv[] = {"AUTH", b->u.user, b->u.pass};
        if (b->u.user[0])
            (void)redisAsyncCommandArgv(l->ac, on_setup, NULL, 3, argv, NULL);
        else
            (void)redisAsyncCommand(l->ac, on_setup, NULL, "AUTH %s", b->u.pass);
    }
    if (l->sub) {
        (void)redisAsyncCommand(l->ac, on_ready, NULL, "PING");
        return;
    }
    if (b->u.db) (void)redisAsyncCommand(l->ac, on_setup, NULL, "SELECT %d", b->u.db);
    (void)redisAsyncCommand(l->ac, on_ready, NULL, "SCRIPT LOAD %s", SCRIPT);
}

static void connect_to(redis_bp *b, const char *ip)
{
    if (link_open(&b->cmd, ip) != 0 || link_open(&b->sub, ip) != 0) {
        b->broken = true;
        if (!b->broken_why[0]) snprintf(b->broken_why, sizeof b->broken_why, "cannot connect");
        return;
    }
    link_setup(b, &b->cmd);
    link_setup(b, &b->sub);
}

static void on_resolved(ax_dns_req *req, int status, const ax_addr *a, size_t n, void *ud)
{
    redis_bp *b = ud;
    char ip[INET6_ADDRSTRLEN] = "";
    (void)req;
    b->dns = NULL;
    if (status == 0 && n > 0) {
        const struct sockaddr *sa = (const struct sockaddr *)&a[0].sa;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    }
    if (!ip[0]) {
        b->broken = true;
        snprintf(b->broken_why, sizeof b->broken_why, "cannot resolve %s: %s", b->u.host,
                 ax_strerror(status ? status : AX_ENOHOST));
        return;
    }
    connect_to(b, ip);
}

static void start_connect(redis_bp *b)
{
    set_state(b, BP_CONNECTING);
    b->since_ms = mono_ms();
    b->broken = false;
    b->broken_why[0] = '\0';
    if (b->u.port < 0) {
        connect_to(b, NULL);
        return;
    }
    int err = 0;
    b->dns =
        ax_dns_resolve(b->loop, b->u.host, b->u.port, AX_SCHEME_TCP, NULL, on_resolved, b, &err);
    if (!b->dns) {
        b->broken = true;
        snprintf(b->broken_why, sizeof b->broken_why, "cannot resolve %s: %s", b->u.host,
                 ax_strerror(err));
    }
}

/* Down: close both links, let resumes waiting for history go on with what
 * this node has, try again after the backoff. */
static void go_down(redis_bp *b, const char *why)
{
    bool was = b->state == BP_UP;
    if (b->dns) ax_dns_cancel(b->dns);
    b->dns = NULL;
    link_close(&b->cmd);
    link_close(&b->sub);
    set_state(b, BP_DOWN);
    if (!b->down_logged)
        ax_log(AX_LOG_WARN, "redis %s: %s; local delivery goes on, publishes are refused; retrying",
               b->url_shown, why);
    b->down_logged = true;
    b->was_up = b->was_up || was;
    b->next_try_ms = mono_ms() + b->backoff_ms;
    b->backoff_ms = b->backoff_ms * 2 > BP_BACKOFF_MAX_MS ? BP_BACKOFF_MAX_MS : b->backoff_ms * 2;
    for (need *n = b->list; n; n = n->next) {
        if (n->syncing) need_flush(b, n);
        range_free(n);
        n->syncing = n->overflow = n->first = false;
        need_ready(b, n);
    }
}

/* ---- acknowledgements --------------------------------------------------------------------- */

typedef struct ack_post {
    redis_bp *b;
    uint64_t ticket;
} ack_post;

static int ack_key(uint64_t ticket, char *key)
{
    return snprintf(key, 24, "%llu", (unsigned long long)ticket);
}

/* On the waiter's loop: the callback, unless it was cancelled meanwhile. */
static void ack_run(ax_loop *loop, void *arg)
{
    ack_post *p = arg;
    redis_bp *b = p->b;
    char key[24];
    int kl = ack_key(p->ticket, key);
    (void)loop;
    pthread_mutex_lock(&b->ack_mu);
    ack_rec *r = hub_map_get(&b->acks, key, (size_t)kl);
    if (r && r->a)
        hub_map_del(&b->acks, key, (size_t)kl);
    else
        r = NULL;
    pthread_mutex_unlock(&b->ack_mu);
    ax_free(p);
    if (!r) return;
    r->a->seq = r->seq;
    r->cb(r->a, r->status);
    ax_free(r);
}

/* Under ack_mu: the record's callback is due. */
static void ack_post_run(redis_bp *b, ack_rec *r, uint64_t ticket)
{
    if (!r->done || !r->a || r->posted) return;
    ack_post *p = ax_malloc(sizeof(*p));
    if (!p) return; /* (the waiter is not told: only when out of memory) */
    p->b = b;
    p->ticket = ticket;
    r->posted = true;
    if (ax_loop_post(r->loop, ack_run, p) != 0) ax_free(p);
}

static ack_rec *ack_get(redis_bp *b, uint64_t ticket, bool make)
{
    char key[24];
    int kl = ack_key(ticket, key);
    ack_rec *r = hub_map_get(&b->acks, key, (size_t)kl);
    if (r || !make) return r;
    if (!(r = ax_calloc(1, sizeof(*r)))) return NULL;
    if (hub_map_put(&b->acks, key, (size_t)kl, r, NULL) != 0) {
        ax_free(r);
        return NULL;
    }
    return r;
}

static void ack_done(redis_bp *b, uint64_t ticket, int status, uint64_t seq)
{
    if (!ticket) return;
    pthread_mutex_lock(&b->ack_mu);
    ack_rec *r = ack_get(b, ticket, true);
    if (r) {
        r->done = true;
        r->status = status;
        r->seq = seq;
        ack_post_run(b, r, ticket);
    }
    pthread_mutex_unlock(&b->ack_mu);
}

static int op_wait(void *ud, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status),
                   ax_loop *loop)
{
    redis_bp *b = ud;
    int rc = 0;
    pthread_mutex_lock(&b->ack_mu);
    ack_rec *r = ack_get(b, ticket, true);
    if (r) {
        a->ticket = ticket;
        r->a = a;
        r->cb = cb;
        r->loop = loop;
        ack_post_run(b, r, ticket);
    } else {
        rc = AX_ENOMEM;
    }
    pthread_mutex_unlock(&b->ack_mu);
    return rc;
}

static void op_cancel(void *ud, hub_ack *a)
{
    redis_bp *b = ud;
    char key[24];
    int kl = ack_key(a->ticket, key);
    pthread_mutex_lock(&b->ack_mu);
    ack_rec *r = hub_map_get(&b->acks, key, (size_t)kl);
    if (r && r->a == a) {
        hub_map_del(&b->acks, key, (size_t)kl);
        ax_free(r);
    }
    pthread_mutex_unlock(&b->ack_mu);
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redis_bp *b = priv;
    redisReply *r = reply;
    bp_link *l;
    uint64_t ticket = 0;
    if (b->ring_len) {
        ticket = b->ring[b->ring_head];
        b->ring_head = (b->ring_head + 1) % BP_RING;
        b->ring_len--;
    }
    __atomic_sub_fetch(&b->inflight, 1, __ATOMIC_RELAXED);
    if (is_ok(ac, r, &l)) {
        ack_done(b, ticket, 0, r->type == REDIS_REPLY_INTEGER ? (uint64_t)r->integer : 0);
        return;
    }
    ack_done(b, ticket, AX_EIO, 0);
    ST_ADD(b, publish_errors, 1);
    if (r && r->type == REDIS_REPLY_ERROR)
        ax_log(AX_LOG_WARN, "redis %s: a publish failed: %s", b->url_shown, r->str);
}

static void heartbeat(redis_bp *b, uint64_t now)
{
    char ms[24];
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)now);
    const char *argv[] = {"PUBLISH", b->hb_chan, ms};
    b->hb_sent_ms = now;
    (void)redisAsyncCommandArgv(b->cmd.ac, on_setup, NULL, 3, argv, NULL);
}

static void on_tick(ax_timer *t, void *ud)
{
    redis_bp *b = ud;
    uint64_t now = mono_ms();
    (void)t;
    if (b->state != BP_DOWN && b->broken) {
        go_down(b, b->broken_why[0] ? b->broken_why : "connection lost");
    } else if (b->state == BP_CONNECTING && now - b->since_ms > BP_CONNECT_MS) {
        go_down(b, "no answer while connecting");
    } else if (b->state == BP_UP && now - b->hb_rx_ms > BP_STALE_MS) {
        go_down(b, "the link is stale: no heartbeat came back through Redis for 3 s");
    } else if (b->state == BP_UP && now - b->hb_sent_ms >= BP_HEARTBEAT_MS) {
        heartbeat(b, now);
    }
    if (b->state == BP_DOWN && now >= b->next_try_ms) start_connect(b);
    pres_tick(b, now);
}

/* ---- presence across nodes ------------------------------------------------------------------
 *
 * Each node keeps, per room with somebody present on it, a field of the
 * hash axon:{room}:presence: field = the node's id, value = "<expiry ms
 * since the epoch>\n<name>\n<name>...".  It rewrites the field when the
 * room's names here change and every BP_PRESENCE_REFRESH_MS; an entry
 * whose expiry passed (a node that died without saying goodbye) is left
 * out by readers.  After a change it publishes the room's name on
 * axon:<db>~p:<room>; the nodes following the room (an exact subscriber
 * of it here) read the hash again then, and every refresh period. */

#define BP_PRESENCE_TTL_MS 15000
#define BP_PRESENCE_REFRESH_MS 5000

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct name_buf {
    char *p;
    size_t len, cap;
    bool oom;
} name_buf;

static void name_add(const char *name, void *ud)
{
    name_buf *nb = ud;
    size_t n = strlen(name);
    if (nb->len + n + 2 > nb->cap) {
        size_t cap = (nb->cap + n + 2) * 2;
        char *p = ax_realloc(nb->p, cap);
        if (!p) {
            nb->oom = true;
            return;
        }
        nb->p = p;
        nb->cap = cap;
    }
    memcpy(nb->p + nb->len, name, n);
    nb->len += n;
    nb->p[nb->len++] = '\n';
    nb->p[nb->len] = '\0';
}

/* Write this node's entry of `room` (or delete it: nobody here). */
static void pres_write(redis_bp *b, const char *room)
{
    char key[HUB_MAX_TOPIC + 24], chan[BP_CHAN_MAX], head[32];
    int hl = snprintf(head, sizeof head, "%lld\n", (long long)(wall_ms() + BP_PRESENCE_TTL_MS));
    name_buf nb = {ax_malloc(256), (size_t)hl, 256, false};
    if (!nb.p) return;
    memcpy(nb.p, head, (size_t)hl + 1);
    hub_presence_local(b->h, room, name_add, &nb);
    snprintf(key, sizeof key, "axon:{%s}:presence", room);
    snprintf(chan, sizeof chan, "%.*s~p:%s", (int)b->plen - 1, b->prefix, room);
    if (nb.oom) goto out;
    if (nb.len == (size_t)hl) {
        const char *argv[] = {"HDEL", key, b->node};
        (void)redisAsyncCommandArgv(b->cmd.ac, NULL, NULL, 3, argv, NULL);
        ax_free(hub_map_del(&b->pres_local, room, strlen(room)));
    } else {
        const char *argv[] = {"HSET", key, b->node, nb.p};
        size_t lens[] = {4, strlen(key), strlen(b->node), nb.len};
        (void)redisAsyncCommandArgv(b->cmd.ac, NULL, NULL, 4, argv, lens);
        (void)redisAsyncCommand(b->cmd.ac, NULL, NULL, "PEXPIRE %s %d", key,
                                BP_PRESENCE_TTL_MS * 4);
    }
    const char *pargv[] = {"PUBLISH", chan, room};
    (void)redisAsyncCommandArgv(b->cmd.ac, NULL, NULL, 3, pargv, NULL);
out:
    ax_free(nb.p);
}

typedef struct pres_req {
    redis_bp *b;
    char room[];
} pres_req;

/* HGETALL's answer: the other nodes' names that have not expired, each
 * once, become the room's remote names. */
static void on_pres_read(redisAsyncContext *ac, void *reply, void *priv)
{
    pres_req *q = priv;
    redis_bp *b = q->b;
    redisReply *r = reply;
    bp_link *l;
    if (is_ok(ac, r, &l) && r->type == REDIS_REPLY_ARRAY && !b->freeing) {
        int64_t now = wall_ms();
        hub_map seen;
        name_buf nb = {0};
        hub_map_init(&seen);
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *f = r->element[i], *v = r->element[i + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
            if (strcmp(f->str, b->node) == 0 || strtoll(v->str, NULL, 10) < now) continue;
            for (char *p = strchr(v->str, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
                char *e = strchr(p + 1, '\n');
                size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1);
                if (!n || n > HUB_MAX_NAME || hub_map_get(&seen, p + 1, n)) continue;
                if (hub_map_put(&seen, p + 1, n, NULL, NULL) != 0) continue;
                char name[HUB_MAX_NAME + 1];
                memcpy(name, p + 1, n);
                name[n] = '\0';
                name_add(name, &nb);
            }
        }
        hub_map_clear(&seen);
        pthread_mutex_lock(&b->pres_mu);
        ax_free(hub_map_del(&b->pres_remote, q->room, strlen(q->room)));
        if (nb.p && !nb.oom && hub_map_get(&b->needs, q->room, strlen(q->room)) &&
            hub_map_put(&b->pres_remote, q->room, strlen(q->room), nb.p, NULL) == 0)
            nb.p = NULL;
        pthread_mutex_unlock(&b->pres_mu);
        ax_free(nb.p);
    }
    ax_free(q);
}

static void pres_read(redis_bp *b, const char *room)
{
    if (b->state != BP_UP || !b->cmd.ac) return;
    size_t rl = strlen(room);
    pres_req *q = ax_malloc(sizeof(*q) + rl + 1);
    if (!q) return;
    q->b = b;
    memcpy(q->room, room, rl + 1);
    char key[HUB_MAX_TOPIC + 24];
    snprintf(key, sizeof key, "axon:{%s}:presence", room);
    const char *argv[] = {"HGETALL", key};
    if (redisAsyncCommandArgv(b->cmd.ac, on_pres_read, q, 2, argv, NULL) != REDIS_OK) ax_free(q);
}

/* A room this node follows: its presence notices, and its names now. */
static void pres_follow(redis_bp *b, need *n, bool on)
{
    if (!n->exact || !b->sub.ac || !b->sub.up) return;
    char chan[BP_CHAN_MAX];
    snprintf(chan, sizeof chan, "%.*s~p:%s", (int)b->plen - 1, b->prefix, n->filter);
    const char *argv[] = {on ? "SUBSCRIBE" : "UNSUBSCRIBE", chan};
    (void)redisAsyncCommandArgv(b->sub.ac, on ? on_sub : NULL, on ? b : NULL, 2, argv, NULL);
    if (on) pres_read(b, n->filter);
}

static void pres_forget(redis_bp *b, const char *room)
{
    pthread_mutex_lock(&b->pres_mu);
    ax_free(hub_map_del(&b->pres_remote, room, strlen(room)));
    pthread_mutex_unlock(&b->pres_mu);
}

static void pres_write_each(hub_map_ent *e, void *ud)
{
    *(bool *)e->value = true; /* dirty: written at the next tick */
    (void)ud;
}

static void pres_tick(redis_bp *b, uint64_t now)
{
    if (b->state != BP_UP) return;
    bool refresh = now - b->pres_refresh_ms >= BP_PRESENCE_REFRESH_MS;
    if (refresh) {
        b->pres_refresh_ms = now;
        hub_map_each(&b->pres_local, pres_write_each, NULL);
        for (need *n = b->list; n; n = n->next)
            if (n->exact) pres_read(b, n->filter);
    }
    if (!b->pres_dirty && !refresh) return;
    b->pres_dirty = false;
    /* write the dirty rooms (hub_map has no iterator that allows a delete) */
    for (size_t i = 0; i < b->pres_local.nb; i++)
        for (hub_map_ent *e = b->pres_local.b[i], *next; e; e = next) {
            next = e->next;
            bool *dirty = e->value;
            if (!*dirty) continue;
            *dirty = false;
            char room[HUB_MAX_TOPIC + 1];
            snprintf(room, sizeof room, "%s", e->key);
            pres_write(b, room); /* may delete e (nobody left here) */
        }
}

static void pres_changed(redis_bp *b, const char *room)
{
    size_t rl = strlen(room);
    bool *dirty = hub_map_get(&b->pres_local, room, rl);
    if (!dirty) {
        if (!(dirty = ax_malloc(sizeof(*dirty)))) return;
        if (hub_map_put(&b->pres_local, room, rl, dirty, NULL) != 0) {
            ax_free(dirty);
            return;
        }
    }
    *dirty = true;
    b->pres_dirty = true;
}

static void pres_run(ax_loop *loop, void *arg)
{
    need_post *p = arg;
    (void)loop;
    pres_changed(p->b, p->filter);
    ax_free(p);
}

static void op_present(void *ud, const char *room)
{
    redis_bp *b = ud;
    if (pthread_equal(pthread_self(), b->thread)) {
        pres_changed(b, room);
        return;
    }
    size_t rl = strlen(room);
    need_post *p = ax_malloc(sizeof(*p) + rl + 1);
    if (!p) return;
    p->b = b;
    memcpy(p->filter, room, rl + 1);
    if (ax_loop_post(b->loop, pres_run, p) != 0) ax_free(p);
}

static void op_presence(void *ud, const char *room, void (*cb)(const char *name, void *ud),
                        void *cbud)
{
    redis_bp *b = ud;
    pthread_mutex_lock(&b->pres_mu);
    const char *names = hub_map_get(&b->pres_remote, room, strlen(room));
    for (const char *p = names; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char name[HUB_MAX_NAME + 1];
        if (n && n <= HUB_MAX_NAME) {
            memcpy(name, p, n);
            name[n] = '\0';
            cb(name, cbud);
        }
        p += n + (e ? 1 : 0);
    }
    pthread_mutex_unlock(&b->pres_mu);
}

static void free_value(hub_map_ent *e, void *ud)
{
    (void)ud;
    ax_free(e->value);
}

/* ---- publishing ----------------------------------------------------------------------------- */

typedef struct pub_post {
    redis_bp *b;
    hub_msg *m;
    uint64_t last, ticket;
    uint32_t history;
} pub_post;

static void pub_send(redis_bp *b, hub_msg *m, uint64_t last, uint32_t history, uint64_t ticket)
{
    char seqkey[HUB_MAX_TOPIC + 16], logkey[HUB_MAX_TOPIC + 16], chan[BP_CHAN_MAX];
    char maxlen[16], ms[24], lastbuf[24];
    snprintf(seqkey, sizeof seqkey, "axon:{%s}:seq", m->topic);
    snprintf(logkey, sizeof logkey, "axon:{%s}:log", m->topic);
    snprintf(chan, sizeof chan, "%s%s", b->prefix, m->topic);
    snprintf(maxlen, sizeof maxlen, "%u", history);
    snprintf(ms, sizeof ms, "%lld", (long long)m->time_ms);
    snprintf(lastbuf, sizeof lastbuf, "%llu", (unsigned long long)last);
    const char *argv[] = {
        "EVALSHA",  b->sha, "2", seqkey, logkey, chan, maxlen, ms, m->sender ? m->sender : "",
        m->payload, lastbuf};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = i == 9 ? m->payload_len : strlen(argv[i]);
    if (b->state != BP_UP || !b->cmd.ac ||
        redisAsyncCommandArgv(b->cmd.ac, on_pub_reply, b, 11, argv, lens) != REDIS_OK) {
        __atomic_sub_fetch(&b->inflight, 1, __ATOMIC_RELAXED);
        ST_ADD(b, publish_errors, 1);
        ack_done(b, ticket, AX_EIO, 0);
        return;
    }
    b->ring[(b->ring_head + b->ring_len++) % BP_RING] = ticket; /* inflight bounds it */
    ST_ADD(b, published, 1);
}

static void pub_run(ax_loop *loop, void *arg)
{
    pub_post *p = arg;
    (void)loop;
    pub_send(p->b, p->m, p->last, p->history, p->ticket);
    hub_msg_unref(p->m);
    ax_free(p);
}

static int op_publish(void *ud, hub_msg *m, uint64_t last, uint32_t history, uint64_t *ticket)
{
    redis_bp *b = ud;
    uint64_t tk = ticket ? __atomic_add_fetch(&b->next_ticket, 1, __ATOMIC_RELAXED) : 0;
    if (ST_GET(b, state) != BP_UP) {
        ST_ADD(b, refused, 1);
        return AX_EAGAIN;
    }
    if (__atomic_add_fetch(&b->inflight, 1, __ATOMIC_RELAXED) > BP_INFLIGHT_MAX) {
        __atomic_sub_fetch(&b->inflight, 1, __ATOMIC_RELAXED);
        ST_ADD(b, refused, 1);
        return AX_EAGAIN;
    }
    if (ticket) *ticket = tk;
    if (pthread_equal(pthread_self(), b->thread)) {
        pub_send(b, m, last, history, tk);
        return 0;
    }
    pub_post *p = ax_malloc(sizeof(*p));
    if (!p) {
        __atomic_sub_fetch(&b->inflight, 1, __ATOMIC_RELAXED);
        return AX_ENOMEM;
    }
    *p = (pub_post){b, hub_msg_ref(m), last, tk, history};
    if (ax_loop_post(b->loop, pub_run, p) != 0) {
        hub_msg_unref(m);
        ax_free(p);
        __atomic_sub_fetch(&b->inflight, 1, __ATOMIC_RELAXED);
        return AX_ENOMEM;
    }
    return 0;
}

static const hub_backplane_ops OPS = {op_publish, op_need,    op_wait,
                                      op_cancel,  op_present, op_presence};

/* ---- the backplane ----------------------------------------------------------------------------
 */

redis_bp *redis_bp_new(hub *h, const char *url, char *why, size_t why_len)
{
    redis_bp *b = ax_calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    if (redis_url_parse(url, &b->u, why, why_len) != 0) {
        ax_free(b);
        return NULL;
    }
    b->h = h;
    b->loop = hub_loop(h);
    b->thread = pthread_self();
    b->cmd.b = b->sub.b = b;
    b->sub.sub = true;
    b->backoff_ms = BP_BACKOFF_MIN_MS;
    hub_map_init(&b->needs);
    hub_map_init(&b->acks);
    pthread_mutex_init(&b->ack_mu, NULL);
    hub_map_init(&b->pres_local);
    hub_map_init(&b->pres_remote);
    pthread_mutex_init(&b->pres_mu, NULL);
    if (!(b->ring = ax_malloc(BP_RING * sizeof(*b->ring)))) {
        ax_free(b);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    if (b->u.port < 0)
        snprintf(b->url_shown, sizeof b->url_shown, "unix://%s", b->u.host);
    else
        snprintf(b->url_shown, sizeof b->url_shown, "redis://%s:%d/%d", b->u.host, b->u.port,
                 b->u.db);
    b->plen = (size_t)snprintf(b->prefix, sizeof b->prefix, "axon:%d:", b->u.db);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) memset(rnd, 7, sizeof rnd);
    snprintf(b->node, sizeof b->node, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(b->hb_chan, sizeof b->hb_chan, "axon-hb:%s", b->node);
    b->tick = ax_timer_new(b->loop, on_tick, b);
    if (!b->tick || ax_timer_start(b->tick, 0, BP_TICK_MS) != 0) {
        ax_timer_free(b->tick);
        ax_free(b->ring);
        ax_free(b);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    hub_set_backplane(h, &OPS, b);
    return b;
}

static void ack_free(hub_map_ent *e, void *ud)
{
    (void)ud;
    ax_free(e->value);
}

void redis_bp_free(redis_bp *b)
{
    if (!b) return;
    b->freeing = true;
    hub_set_backplane(b->h, NULL, NULL);
    ax_timer_free(b->tick);
    if (b->dns) ax_dns_cancel(b->dns);
    link_close(&b->cmd);
    link_close(&b->sub);
    while (b->list)
        need_free(b, b->list);
    hub_map_clear(&b->needs);
    hub_map_each(&b->acks, ack_free, NULL);
    hub_map_clear(&b->acks);
    pthread_mutex_destroy(&b->ack_mu);
    hub_map_each(&b->pres_local, free_value, NULL);
    hub_map_clear(&b->pres_local);
    hub_map_each(&b->pres_remote, free_value, NULL);
    hub_map_clear(&b->pres_remote);
    pthread_mutex_destroy(&b->pres_mu);
    ax_free(b->ring);
    ax_free(b);
}

bool redis_bp_healthy(redis_bp *b, char *why, size_t why_len)
{
    uint64_t st = ST_GET(b, state);
    uint64_t rx = __atomic_load_n(&b->hb_rx_ms, __ATOMIC_RELAXED);
    if (st != BP_UP) {
        snprintf(why, why_len, "redis %s: %s", b->url_shown,
                 st == BP_CONNECTING ? "connecting" : "unreachable");
        return false;
    }
    uint64_t now = mono_ms();
    if (now > rx && now - rx > 2 * BP_HEARTBEAT_MS + 500) {
        snprintf(why, why_len, "redis %s: stale: no heartbeat back for %llu ms", b->url_shown,
                 (unsigned long long)(now - rx));
        return false;
    }
    snprintf(why, why_len, "ok");
    return true;
}

size_t redis_bp_metrics(redis_bp *b, char *buf, size_t len)
{
    int n = snprintf(
        buf, len,
        "# HELP axon_redis_up Whether the link to Redis is up (2), connecting (1) or down (0).\n"
        "# TYPE axon_redis_up gauge\naxon_redis_up %llu\n"
        "# HELP axon_redis_reconnects_total Links to Redis made again after losing one.\n"
        "# TYPE axon_redis_reconnects_total counter\naxon_redis_reconnects_total %llu\n"
        "# HELP axon_redis_lag_ms Round trip of the last heartbeat through Redis pub/sub.\n"
        "# TYPE axon_redis_lag_ms gauge\naxon_redis_lag_ms %llu\n"
        "# HELP axon_redis_published_total Publishes sent to Redis.\n"
        "# TYPE axon_redis_published_total counter\naxon_redis_published_total %llu\n"
        "# HELP axon_redis_publish_errors_total Publishes Redis did not take.\n"
        "# TYPE axon_redis_publish_errors_total counter\naxon_redis_publish_errors_total %llu\n"
        "# HELP axon_redis_refused_total Publishes refused: Redis unreachable or too many on "
        "their way.\n"
        "# TYPE axon_redis_refused_total counter\naxon_redis_refused_total %llu\n"
        "# HELP axon_redis_received_total Messages received from Redis pub/sub.\n"
        "# TYPE axon_redis_received_total counter\naxon_redis_received_total %llu\n"
        "# HELP axon_redis_gaps_total Sequence jumps seen (then read from the stream).\n"
        "# TYPE axon_redis_gaps_total counter\naxon_redis_gaps_total %llu\n"
        "# HELP axon_redis_backfilled_total Messages read from Redis streams.\n"
        "# TYPE axon_redis_backfilled_total counter\naxon_redis_backfilled_total %llu\n",
        (unsigned long long)ST_GET(b, state), (unsigned long long)ST_GET(b, reconnects),
        (unsigned long long)ST_GET(b, lag_ms), (unsigned long long)ST_GET(b, published),
        (unsigned long long)ST_GET(b, publish_errors), (unsigned long long)ST_GET(b, refused),
        (unsigned long long)ST_GET(b, received), (unsigned long long)ST_GET(b, gaps),
        (unsigned long long)ST_GET(b, backfilled));
    if (n < 0) n = 0;
    return (size_t)n < len ? (size_t)n : (len ? len - 1 : 0);
}
