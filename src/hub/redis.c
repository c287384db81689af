/* redis.c: the Redis backplane (redis.h, docs/cluster.md).
 *
 * Two connections per Redis (a shard: one Redis, or each master of a
 * cluster), each an rlink (redis_link.h: an ax_conn on the hub's loop):
 * `cmd` runs the publish script, history reads (XRANGE) and the
 * heartbeat; `sub` is in pub/sub mode.  A cluster's slots come from
 * CLUSTER SLOTS (asked on a seed link); commands go to the shard of their
 * topic's slot and follow MOVED and ASK (bp__cmd); a subscription Redis
 * drops (its slot moved) is made again where the slot is.
 *
 * Keys, per topic T: axon:{T}:seq (its last seq), axon:{T}:log (a stream,
 * entry id "<seq>-1", fields t (ms), s (sender), p (payload), r (Redis's
 * stamp: redis_pub.c), x (packed, for MQTT's fields), bounded to the
 * topic's history count),
 * axon:{T}:ret (redis_retain.c), axon:{T}:presence (redis_presence.c):
 * one hash tag, one slot.  Channels: axon:<db>:T (pub/sub ignores the
 * database, the name does not); in a cluster the shard channel axon:{T}.
 * A message on a channel is "r<stamp> <seq> <ms> <sender length>
 * <sender><payload>" or "r<stamp> x<seq> <packed>" (an older node's: no
 * "r<stamp> ").
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include <axon/axon.h>

#include "proto/ws/utf8.h"
#include "redis_int.h"

#define BP_TICK_MS 100
#define BP_HEARTBEAT_MS 1000
#define BP_STALE_MS 3000   /* no heartbeat back for this long: the link is stale */
#define BP_CONNECT_MS 3000 /* connecting (and authenticating) at most this long */
#define BP_BACKOFF_MIN_MS 200
#define BP_BACKOFF_MAX_MS 2000
#define BP_SYNC_BUF_MAX 10000 /* messages held while a topic's history loads */
#define BP_WILD_SAY_MS 2000   /* cluster: "I have wildcard filters", this often */

uint64_t bp__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the URL ---------------------------------------------------------------------- */

static int url_db(const char *s, int *db)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 1000000) return -1;
    *db = (int)v;
    return 0;
}

/* "cert=PATH&key=PATH&cacert=PATH" (any of them, in any order) */
static int url_opts(const char *q, redis_url *out, char *why, size_t why_len)
{
    while (*q) {
        size_t n = strcspn(q, "&"), kl = strcspn(q, "=");
        char *dst = NULL;
        if (kl < n && kl == 4 && strncmp(q, "cert", 4) == 0) dst = out->cert;
        if (kl < n && kl == 3 && strncmp(q, "key", 3) == 0) dst = out->key;
        if (kl < n && kl == 6 && strncmp(q, "cacert", 6) == 0) dst = out->ca;
        if (!dst || n - kl - 1 == 0 || n - kl - 1 >= sizeof out->cert) {
            snprintf(why, why_len,
                     "'%.*s': a rediss:// URL takes cert=PATH, key=PATH and cacert=PATH "
                     "(at most %zu bytes each)",
                     (int)n, q, sizeof out->cert - 1);
            return -1;
        }
        memcpy(dst, q + kl + 1, n - kl - 1);
        dst[n - kl - 1] = '\0';
        q += n + (q[n] ? 1 : 0);
    }
    if (out->key[0] && !out->cert[0]) {
        snprintf(why, why_len, "key= without cert=: the key of which certificate?");
        return -1;
    }
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
    out->tls = strncmp(url, "rediss://", 9) == 0; /* TLS: the core's, not hiredis's */
    if (!out->tls && strncmp(url, "redis://", 8) != 0) goto bad;
    char base[1024];
    const char *qm = strchr(url, '?');
    if (qm) { /* rediss:// options */
        if (!out->tls || (size_t)(qm - url) >= sizeof base ||
            url_opts(qm + 1, out, why, why_len) != 0) {
            if (!out->tls)
                snprintf(why, why_len, "'%s': cert=, key= and cacert= need rediss://", url);
            return -1;
        }
        memcpy(base, url, (size_t)(qm - url));
        base[qm - url] = '\0';
        url = base;
    }
    const char *p = url + (out->tls ? 9 : 8), *at = strrchr(p, '@'), *slash;
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
             "'%s' is not a Redis URL (redis://[user:password@]host[:port][/db], "
             "rediss://... (TLS) or unix://path[?db=N])",
             url);
    return -1;
}

/* ---- links ------------------------------------------------------------------------------- */

bool bp__ok(rlink *rl, const redisReply *r, bp_link **lp)
{
    bp_link *l = rlink_data(rl);
    *lp = l;
    return r && l->rl == rl && r->type != REDIS_REPLY_ERROR;
}

void bp__link_broken(redis_bp *b, const char *why)
{
    if (b->broken) return;
    b->broken = true;
    snprintf(b->broken_why, sizeof b->broken_why, "%s", why);
}

static void on_link_push(rlink *rl, redisReply *r)
{
    bp_link *l = rlink_data(rl);
    if (l->rl == rl) bp__on_sub(l->b, l, r);
}

static void on_link_down(rlink *rl, const char *why)
{
    bp_link *l = rlink_data(rl);
    if (l->rl != rl) return;
    l->up = false;
    bp__link_broken(l->b, why);
}

static const rlink_cbs LINK_CBS = {NULL, on_link_push, on_link_down};

/* Let go of the link: the commands it still waits for get NULL now. */
void bp__link_close(bp_link *l)
{
    rlink *rl = l->rl;
    l->rl = NULL;
    l->up = false;
    rlink_close(rl);
}

static void check_up(redis_bp *b);

static void on_setup(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    (void)priv;
    if (!bp__ok(rl, r, &l) && l->rl == rl)
        bp__link_broken(l->b, r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
}

static void on_ready(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    if (!bp__ok(rl, r, &l)) {
        on_setup(rl, r, priv);
        return;
    }
    if (!l->sub && r->type == REDIS_REPLY_STRING && r->len == 40) memcpy(l->b->sha, r->str, 41);
    l->up = true;
    check_up(l->b);
}

static void link_auth(redis_bp *b, bp_link *l)
{
    if (!b->u.pass[0]) return; /* AUTH [user] password */
    if (b->u.user[0])
        (void)rlink_cmdv(l->rl, on_setup, NULL, "AUTH", b->u.user, b->u.pass, NULL);
    else
        (void)rlink_cmdv(l->rl, on_setup, NULL, "AUTH", b->u.pass, NULL);
}

static void link_setup(redis_bp *b, bp_link *l)
{
    link_auth(b, l);
    if (l->sub) {
        (void)rlink_cmdv(l->rl, on_ready, NULL, "PING", NULL);
        return;
    }
    if (b->u.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", b->u.db);
        (void)rlink_cmdv(l->rl, on_setup, NULL, "SELECT", db, NULL);
    }
    (void)rlink_cmdv(l->rl, on_ready, NULL, "SCRIPT", "LOAD", bp__script, NULL);
}

int bp__link_open(redis_bp *b, bp_link *l, const char *url)
{
    char why[400];
    l->b = b;
    l->up = false;
    if (!(l->rl = rlink_open(b->loop, url, b->tls, l->sub, &LINK_CBS, l, why, sizeof why))) {
        bp__link_broken(b, why);
        return -1;
    }
    if (l->sh)
        link_setup(b, l);
    else
        link_auth(b, l); /* the seed only asks for the slots */
    return 0;
}

void bp__url_of(const redis_url *u, const char *host, int port, char *out, size_t cap)
{
    if (port < 0)
        snprintf(out, cap, "unix://%s", host);
    else
        snprintf(out, cap, strchr(host, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
                 u->tls ? "tls" : "tcp", host, port);
}

/* ---- messages --------------------------------------------------------------------------- */

static bool utf8_ok(const char *p, size_t n)
{
    return ax_utf8_valid(p, n);
}

/* "<seq> <ms> <sender length> <sender><payload>" */
/* A packed message (hub_msg_unpack) of `topic`, numbered seq. */
static hub_msg *packed_decode(const char *topic, size_t tl, uint64_t seq, const char *p, size_t n)
{
    hub_msg *m = hub_msg_unpack((const uint8_t *)p, n);
    if (m && (m->topic_len != tl || memcmp(m->topic, topic, tl) != 0)) {
        hub_msg_unref(m);
        return NULL;
    }
    if (m) m->seq = seq;
    return m;
}

hub_msg *bp__msg_decode(const char *topic, size_t tl, const char *p, size_t n)
{
    uint64_t v[3] = {0, 0, 0};
    size_t i = 0;
    if (n && p[0] == 'r') { /* "r<stamp> " before the message: Redis's stamp */
        char *end;
        unsigned long long stamp = strtoull(p + 1, &end, 10);
        if (end == p + 1 || (size_t)(end - p) >= n || *end != ' ') return NULL;
        hub_msg *m = bp__msg_decode(topic, tl, end + 1, n - (size_t)(end + 1 - p));
        if (m) m->stamp = stamp;
        return m;
    }
    if (n && p[0] == 'x') { /* "x<seq> <packed>" */
        char *end;
        unsigned long long seq = strtoull(p + 1, &end, 10);
        if (end == p + 1 || (size_t)(end - p) >= n || *end != ' ' || !seq) return NULL;
        return packed_decode(topic, tl, seq, end + 1, n - (size_t)(end + 1 - p));
    }
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
    m->qos = 1; /* (what is not packed: acknowledged by its gateway) */
    m->binary = !utf8_ok(p + i, n - i);
    return m;
}

static void bp_deliver_now(redis_bp *b, hub_msg *m, bool force);

/* ---- the mark (redis_int.h): how far this node has delivered ------------------------------ */

/* One Redis: what came through the pub/sub link is delivered up to the
 * highest stamp come, unless some of it is held back (a topic's history
 * being read, a gap being filled): then the mark waits (it only rises). */
static void mark_set(redis_bp *b)
{
    if (!b->cluster && !b->holds && b->seen > __atomic_load_n(&b->mark, __ATOMIC_RELAXED))
        __atomic_store_n(&b->mark, b->seen, __ATOMIC_RELEASE);
}

static void mark_up(redis_bp *b, uint64_t stamp)
{
    if (stamp > b->seen) b->seen = stamp;
    mark_set(b);
}

static void hold(redis_bp *b, need *n, bool on)
{
    if (n && n->held == on) return;
    if (n) n->held = on;
    if (on) {
        b->holds++;
    } else if (b->holds) {
        b->holds--;
        mark_set(b);
    }
}

static uint64_t op_mark(void *ud)
{
    redis_bp *b = ud;
    return __atomic_load_n(&b->mark, __ATOMIC_ACQUIRE);
}

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
    const redisReply *t = NULL, *s = NULL, *p = NULL, *x = NULL, *st = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING || k->len != 1) continue;
        if (k->str[0] == 't') t = v;
        if (k->str[0] == 's') s = v;
        if (k->str[0] == 'p') p = v;
        if (k->str[0] == 'x') x = v;
        if (k->str[0] == 'r') st = v; /* (none: written by an older node) */
    }
    uint64_t stamp = st ? strtoull(st->str, NULL, 10) : 0;
    if (x) {
        hub_msg *m = packed_decode(topic, tl, strtoull(id->str, NULL, 10), x->str, (size_t)x->len);
        if (m) m->stamp = stamp;
        return m;
    }
    if (!t || !s || !p || (size_t)s->len > HUB_MAX_NAME) return NULL;
    char sender[HUB_MAX_NAME + 1];
    memcpy(sender, s->str, (size_t)s->len);
    sender[s->len] = '\0';
    hub_msg *m = hub__msg_new(topic, tl, sender[0] ? sender : NULL, p->str, (size_t)p->len);
    if (!m) return NULL;
    m->seq = strtoull(id->str, NULL, 10);
    m->time_ms = strtoll(t->str, NULL, 10);
    m->stamp = stamp;
    m->qos = 1;
    m->binary = !utf8_ok(p->str, (size_t)p->len);
    return m;
}

static void sync_done(redis_bp *b, need *n);
static int xrange_send(redis_bp *b, const char *topic, hub_msg *then, int how, bool whole);

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
    /* what a wildcard brought first: the topic's earlier past goes before it */
    uint64_t head = hub_backplane_first(b->h, n->filter);
    size_t i = 0;
    while (head > 1 && i < n->nrange && n->range[i]->seq < head)
        i++;
    if (i) hub_backplane_older(b->h, n->filter, n->range, i);
    for (; i < n->nrange; i++)
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

static void on_xrange(rlink *rl, redisReply *r, void *priv)
{
    xreq *x = priv;
    redis_bp *b = x->b;
    bp_link *l;
    size_t tl = strlen(x->topic);
    bool ok = bp__ok(rl, r, &l);
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
        hold(b, NULL, false); /* (the gap filled) */
    } else if (!b->freeing) {
        need *n = hub_map_get(&b->needs, x->topic, tl);
        if (n && n->syncing) sync_done(b, n);
    }
    ax_free(x);
}

/* Read the topic's stream after the last seq this node has (up to then's
 * seq when a message waits for it; `whole`: all of it). */
static int xrange_send(redis_bp *b, const char *topic, hub_msg *then, int how, bool whole)
{
    size_t tl = strlen(topic);
    xreq *x = ax_malloc(sizeof(*x) + tl + 1);
    if (!x) return AX_ENOMEM;
    x->b = b;
    x->then = then ? hub_msg_ref(then) : NULL;
    x->how = how;
    memcpy(x->topic, topic, tl + 1);
    char key[HUB_MAX_TOPIC + 16], from[24], to[24];
    snprintf(key, sizeof key, "axon:{%s}:log", topic);
    snprintf(from, sizeof from, "%llu",
             whole ? 1ULL : (unsigned long long)hub_backplane_last(b->h, topic) + 1);
    if (then)
        snprintf(to, sizeof to, "%llu", (unsigned long long)then->seq - 1);
    else
        snprintf(to, sizeof to, "+");
    const char *argv[] = {"XRANGE", key, from, to};
    if (bp__cmd(b, topic, on_xrange, x, 4, argv, NULL) != 0) {
        hub_msg_unref(x->then);
        ax_free(x);
        return AX_ENOTCONN;
    }
    if (then) hold(b, NULL, true); /* (then waits for the range) */
    return 0;
}

/* A live message (or one a backfill waited for): in order, or backfill. */
static void bp_deliver_now(redis_bp *b, hub_msg *m, bool force)
{
    int rc = hub_backplane_deliver(b->h, m, force ? HUB_BPD_FORCE : HUB_BPD_IN_ORDER);
    if (rc == HUB_BP_GAP) {
        ST_ADD(b, gaps, 1);
        if (xrange_send(b, m->topic, m, HUB_BPD_FORCE, false) != 0)
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

/* ---- visits: topics no subscriber here follows (hub_visit) ---------------------------------- */

typedef struct bp_visit {
    struct bp_visit *next;
    redis_bp *b;
    void (*cb)(void *ud);
    void *ud;
    ax_loop *loop;
    char topic[];
} bp_visit;

static void visit_call(ax_loop *loop, void *arg)
{
    bp_visit *v = arg;
    (void)loop;
    v->cb(v->ud);
    ax_free(v);
}

/* A visit posted to a loop freed first: its caller hears of it all the same. */
static void visit_drop(void *arg)
{
    visit_call(NULL, arg);
}

/* The topic is here (or cannot be): cb on the visitor's loop, later. */
static void visit_done(bp_visit *v)
{
    /* (freeing: the threads are joined and the hub is still there, but no
     * loop runs again to call it) */
    if (v->b->freeing || ax_loop_post_or(v->loop, visit_call, visit_drop, v) != 0)
        visit_call(v->loop, v);
}

static void visits_done(need *n)
{
    while (n->visits) {
        bp_visit *v = n->visits;
        n->visits = v->next;
        visit_done(v);
    }
}

static void need_ready(redis_bp *b, need *n)
{
    if (n->ready || !n->exact) return;
    n->ready = true;
    hub_backplane_ready(b->h, n->filter);
    visits_done(n);
}

static void sync_done(redis_bp *b, need *n)
{
    need_flush(b, n);
    if (n->overflow && b->state == BP_UP) { /* more came than the buffer held: read again */
        n->overflow = false;
        if (xrange_send(b, n->filter, NULL, HUB_BPD_FORCE, false) == 0) return;
    }
    n->syncing = false;
    hold(b, n, false);
    need_ready(b, n);
}

/* ---- subscriptions ---------------------------------------------------------------------- */

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

void bp__need_subscribe(redis_bp *b, need *n)
{
    if (b->state != BP_UP) return;
    n->psub_ok = false;
    if (n->exact) {
        bp_shard *sh = bp__shard(b, n->filter);
        n->shard = sh ? (int)(sh - b->shards) : -1;
        n->syncing = true;
        n->overflow = false;
    }
    if (bp__sub(b, n->exact ? n->filter : NULL, n->chan, true) != 0) {
        n->syncing = false;
        hold(b, n, false);
        need_ready(b, n);
    }
    bp__pres_follow(b, n, true);
}

static void need_free(redis_bp *b, need *n)
{
    visits_done(n);
    hold(b, n, false);
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

static void ready_run(ax_loop *loop, void *arg)
{
    bp_visit *v = arg; /* (only its b and topic) */
    (void)loop;
    hub_backplane_ready(v->b->h, v->topic);
    ax_free(v);
}

need *bp__need_make(redis_bp *b, const char *filter, bool hub_needs)
{
    size_t fl = strlen(filter);
    need *n = hub_map_get(&b->needs, filter, fl);
    if (n) {
        if (hub_needs && !n->hub_needs && n->ready) { /* a visited topic: ready already */
            bp_visit *v = ax_calloc(1, sizeof(*v) + fl + 1);
            if (v) {
                v->b = b;
                memcpy(v->topic, filter, fl + 1);
                if (ax_loop_post_or(b->loop, ready_run, ax_free, v) != 0) ax_free(v);
            }
        }
        n->hub_needs = n->hub_needs || hub_needs;
        return n;
    }
    if (!(n = ax_calloc(1, sizeof(*n) + fl + 1))) return NULL;
    n->hub_needs = hub_needs;
    memcpy(n->filter, filter, fl + 1);
    n->exact = hub_topic_valid(filter, fl);
    if (n->exact)
        bp__chan(b, BP_CH_MSG, filter, n->chan, sizeof n->chan);
    else
        glob_of(b, filter, n->chan, sizeof n->chan);
    if (hub_map_put(&b->needs, filter, fl, n, NULL) != 0) {
        ax_free(n);
        return NULL;
    }
    n->next = b->list;
    if (b->list) b->list->prev = n;
    b->list = n;
    if (!n->exact) b->wild_said_ms = 0; /* (cluster: said at the next tick) */
    if (b->state == BP_UP)
        bp__need_subscribe(b, n);
    else
        need_ready(b, n); /* no history to wait for: resumes use what this node has */
    return n;
}

static void need_on(redis_bp *b, const char *filter)
{
    (void)bp__need_make(b, filter, true);
}

static void need_drop(redis_bp *b, need *n);

static void need_off(redis_bp *b, const char *filter)
{
    need *n = hub_map_get(&b->needs, filter, strlen(filter));
    if (!n) return;
    n->hub_needs = false;
    if (n->visit_until > bp__mono_ms()) return; /* visited: followed a while longer */
    need_drop(b, n);
}

static void need_drop(redis_bp *b, need *n)
{
    hub_map_del(&b->needs, n->filter, strlen(n->filter));
    if (b->state == BP_UP) {
        (void)bp__sub(b, n->exact ? n->filter : NULL, n->chan, false);
        bp__pres_follow(b, n, false);
    }
    if (n->exact) bp__pres_forget(b, n->filter);
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
    if (ax_loop_post_or(b->loop, need_run, ax_free, p) != 0) ax_free(p);
}

static void visit_on(redis_bp *b, bp_visit *v)
{
    need *n =
        hub_topic_valid(v->topic, strlen(v->topic)) ? bp__need_make(b, v->topic, false) : NULL;
    if (!n) {
        visit_done(v);
        return;
    }
    n->visit_until = bp__mono_ms() + BP_VISIT_MS;
    if (n->ready) {
        visit_done(v);
        return;
    }
    v->next = n->visits;
    n->visits = v;
}

static void visit_run(ax_loop *loop, void *arg)
{
    bp_visit *v = arg;
    (void)loop;
    visit_on(v->b, v);
}

/* hub_visit(): any thread, not under the hub lock */
static bool op_visit(void *ud, const char *topic, void (*cb)(void *ud), void *cbud, ax_loop *loop)
{
    redis_bp *b = ud;
    size_t tl = strlen(topic);
    if (pthread_equal(pthread_self(), b->thread)) {
        need *n = hub_map_get(&b->needs, topic, tl);
        if (n && n->ready) { /* followed already */
            uint64_t until = bp__mono_ms() + BP_VISIT_MS;
            if (!n->hub_needs && n->visit_until < until) n->visit_until = until;
            return false;
        }
    }
    bp_visit *v = ax_calloc(1, sizeof(*v) + tl + 1);
    if (!v) return false;
    *v = (bp_visit){NULL, b, cb, cbud, loop};
    memcpy(v->topic, topic, tl + 1);
    if (pthread_equal(pthread_self(), b->thread)) {
        visit_on(b, v);
    } else if (ax_loop_post_or(b->loop, visit_run, visit_drop, v) != 0) {
        ax_free(v);
        return false;
    }
    return true;
}

/* Visited topics nobody here subscribes to: let go after BP_VISIT_MS. */
static void visits_tick(redis_bp *b, uint64_t now)
{
    for (need *n = b->list, *next; n; n = next) {
        next = n->next;
        if (!n->hub_needs && n->visit_until && n->visit_until <= now && !n->visits) need_drop(b, n);
    }
}

static void on_message(redis_bp *b, const char *topic, const redisReply *data, bool pattern)
{
    size_t tl = strlen(topic);
    if (data->type != REDIS_REPLY_STRING) return;
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
    hub_msg *m = bp__msg_decode(topic, tl, data->str, (size_t)data->len);
    if (!m) return;
    ST_ADD(b, received, 1);
    uint64_t stamp = m->stamp;
    if (n && n->syncing) {
        hold(b, n, true); /* (until the history is in: sync_done) */
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
    mark_up(b, stamp);
}

static void on_heartbeat(redis_bp *b, bp_link *l, const redisReply *data)
{
    uint64_t now = bp__mono_ms();
    char *end = NULL;
    uint64_t sent = data->type == REDIS_REPLY_STRING ? strtoull(data->str, &end, 10) : 0;
    if (!l->sh) return;
    if (end && *end == ' ') mark_up(b, strtoull(end + 1, NULL, 10)); /* "<ms> <stamp>" */
    l->sh->hb_rx_ms = now;
    uint64_t oldest = now; /* the link is as fresh as its stalest shard */
    for (size_t i = 0; i < b->nshards; i++)
        if (b->shards[i].hb_rx_ms < oldest) oldest = b->shards[i].hb_rx_ms;
    __atomic_store_n(&b->hb_rx_ms, oldest, __ATOMIC_RELAXED);
    ST_SET(b, lag_ms, sent && now >= sent ? now - sent : 0);
}

/* Subscribed: what is published from now on comes here; read what came
 * before from the stream. */
static void on_subscribed(redis_bp *b, const char *topic)
{
    need *n = hub_map_get(&b->needs, topic, strlen(topic));
    /* the first time, the topic's past (history only); after a
     * reconnect, what was missed (live) */
    int how = n && !n->ready ? HUB_BPD_HISTORY : HUB_BPD_FORCE;
    if (!n || !n->syncing) return;
    if (how == HUB_BPD_HISTORY) {
        range_free(n);
        n->first = true;
        n->got_range = n->got_mark = false;
    }
    /* a topic a wildcard brought has its past before what came: all of it */
    bool whole = how == HUB_BPD_HISTORY && hub_backplane_first(b->h, n->filter) > 1;
    if (xrange_send(b, n->filter, NULL, how, whole) != 0) {
        n->first = false;
        sync_done(b, n);
    } else if (how == HUB_BPD_HISTORY) { /* after the read, through pub/sub */
        char mark[40];
        snprintf(mark, sizeof mark, "m %s", b->node);
        const char *argv[] = {b->cluster ? "SPUBLISH" : "PUBLISH", n->chan, mark};
        (void)bp__cmd(b, n->filter, NULL, NULL, 3, argv, NULL);
    }
}

/* An error on a pub/sub link: a SSUBSCRIBE sent where its slot no longer
 * is ("MOVED <slot> <host:port>"): subscribe there. */
static void on_sub_error(redis_bp *b, const redisReply *r)
{
    if (strncmp(r->str, "MOVED ", 6) != 0) {
        ax_log(AX_LOG_WARN, "redis %s: %s", b->url_shown, r->str);
        return;
    }
    char *end;
    unsigned long slot = strtoul(r->str + 6, &end, 10);
    bp_shard *sh = *end == ' ' && slot < BP_SLOTS ? bp__shard_by_addr(b, end + 1) : NULL;
    if (!sh || !b->cluster) {
        bp__link_broken(b, "a subscription's slot moved to a master this node does not know");
        return;
    }
    b->slots[slot] = (uint16_t)(sh - b->shards);
    for (need *n = b->list; n; n = n->next)
        if (n->exact && bp__topic_slot(n->filter) == slot && n->shard != sh - b->shards)
            bp__need_subscribe(b, n);
}

/* What comes on a pub/sub link: messages, confirmations, errors. */
void bp__on_sub(redis_bp *b, bp_link *l, const redisReply *r)
{
    char topic[HUB_MAX_TOPIC + 1];
    if (r->type == REDIS_REPLY_ERROR) {
        on_sub_error(b, r);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
    const redisReply *k = r->element[0], *c = r->element[1];
    if (k->type != REDIS_REPLY_STRING || c->type != REDIS_REPLY_STRING) return;
    bool sharded = strcmp(k->str, "smessage") == 0 || strcmp(k->str, "ssubscribe") == 0;
    const char *kind = sharded ? k->str + 1 : k->str; /* the same to this node */
    if (strcmp(kind, "message") == 0) {
        int ck = bp__chan_parse(b, c->str, (size_t)c->len, topic);
        if (strncmp(c->str, b->hb_chan, strlen(b->hb_chan)) == 0)
            on_heartbeat(b, l, r->element[2]);
        else if (strcmp(c->str, b->ret_chan) == 0)
            bp__ret_heard(b, r->element[2]); /* a retained message */
        else if (strcmp(c->str, b->sess_chan) == 0)
            bp__sess_heard(b, r->element[2]); /* an MQTT session claimed */
        else if (strcmp(c->str, b->wild_chan) == 0)
            b->wild_until_ms = bp__mono_ms() + 3 * BP_WILD_SAY_MS; /* a node has wildcards */
        else if (ck == BP_CH_PRES)
            bp__pres_read(b, topic); /* a room's names changed */
        else if (ck == BP_CH_MSG)
            on_message(b, topic, r->element[2], false);
    } else if (strcmp(k->str, "pmessage") == 0 && r->elements >= 4) {
        c = r->element[2]; /* (a classic channel, in a cluster too) */
        size_t tl = c->type == REDIS_REPLY_STRING ? (size_t)c->len - b->plen : 0;
        if ((size_t)c->len > b->plen && tl <= HUB_MAX_TOPIC &&
            memcmp(c->str, b->prefix, b->plen) == 0) {
            memcpy(topic, c->str + b->plen, tl + 1);
            on_message(b, topic, r->element[3], true);
        }
    } else if (strcmp(k->str, "psubscribe") == 0) {
        bp__ix_psubscribed(b, c->str); /* a wildcard's live messages come from now on */
    } else if (strcmp(kind, "subscribe") == 0) {
        if (bp__chan_parse(b, c->str, (size_t)c->len, topic) == BP_CH_MSG) on_subscribed(b, topic);
    } else if (strcmp(k->str, "sunsubscribe") == 0) {
        /* Redis let go of a channel this node still needs: its slot moved */
        need *n = bp__chan_parse(b, c->str, (size_t)c->len, topic) == BP_CH_MSG
                      ? hub_map_get(&b->needs, topic, strlen(topic))
                      : NULL;
        if (n && l->sh && n->shard == l->sh - b->shards) {
            n->dropped = true;
            bp__slots_refresh(b);
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
    (void)bp__cmd(b, n->filter, NULL, NULL, 5, argv, NULL);
}

static void went_up(redis_bp *b)
{
    uint64_t now = bp__mono_ms();
    set_state(b, BP_UP);
    b->backoff_ms = BP_BACKOFF_MIN_MS;
    b->down_logged = false;
    b->hb_rx_ms = b->hb_sent_ms = now;
    if (b->was_up) ST_ADD(b, reconnects, 1);
    ax_log(AX_LOG_INFO, "redis %s: %s", b->url_shown,
           b->was_up ? "reconnected; resubscribing and reading what was missed" : "connected");
    b->was_up = true;
    for (size_t i = 0; i < b->nshards; i++) { /* a heartbeat channel per shard */
        char chan[96];
        snprintf(chan, sizeof chan, "%s:%zu", b->hb_chan, i);
        b->shards[i].hb_rx_ms = now;
        (void)rlink_cmdv(b->shards[i].sub.rl, NULL, NULL, "SUBSCRIBE", chan, NULL);
    }
    for (need *n = b->list; n; n = n->next) {
        if (n->exact) seed_counter(b, n);
        bp__need_subscribe(b, n);
    }
    bp__ret_start(b);
    bp__sess_start(b);
    if (b->cluster)
        (void)rlink_cmdv(b->shards[0].sub.rl, NULL, NULL, "SUBSCRIBE", b->wild_chan, NULL);
    b->wild_said_ms = 0;
    b->pres_refresh_ms = 0; /* write this node's rooms again at the next tick */
}

static void check_up(redis_bp *b)
{
    if (b->state != BP_CONNECTING || !b->nshards) return;
    for (size_t i = 0; i < b->nshards; i++)
        if (!b->shards[i].cmd.up || !b->shards[i].sub.up) return;
    went_up(b);
}

static void start_connect(redis_bp *b)
{
    set_state(b, BP_CONNECTING);
    b->since_ms = bp__mono_ms();
    b->broken = false;
    b->broken_why[0] = '\0';
    const redis_url *s = &b->seeds[b->seed_next++ % b->nseeds];
    char url[300];
    bp__url_of(s, s->host, s->port, url, sizeof url);
    if (b->cluster) { /* ask for the slots first */
        b->seed_close = false;
        if (bp__link_open(b, &b->seed, url) == 0)
            (void)rlink_cmdv(b->seed.rl, bp__on_slots, NULL, "CLUSTER", "SLOTS", NULL);
        return;
    }
    if (!(b->shards = ax_calloc(1, sizeof(*b->shards)))) {
        bp__link_broken(b, "out of memory");
        return;
    }
    b->nshards = 1;
    bp__shard_init(&b->shards[0], url, "");
    bp__shard_open(b, &b->shards[0]);
}

/* Down: close every link, let resumes waiting for history go on with what
 * this node has, try again after the backoff. */
static void go_down(redis_bp *b, const char *why)
{
    bool was = b->state == BP_UP;
    set_state(b, BP_DOWN); /* (before the links' callbacks run) */
    bp__link_close(&b->seed);
    bp__shards_free(b);
    if (!b->down_logged)
        ax_log(AX_LOG_WARN, "redis %s: %s; local delivery goes on, publishes are refused; retrying",
               b->url_shown, why);
    b->down_logged = true;
    b->was_up = b->was_up || was;
    b->next_try_ms = bp__mono_ms() + b->backoff_ms;
    b->backoff_ms = b->backoff_ms * 2 > BP_BACKOFF_MAX_MS ? BP_BACKOFF_MAX_MS : b->backoff_ms * 2;
    for (need *n = b->list; n; n = n->next) {
        if (n->syncing) need_flush(b, n);
        range_free(n);
        n->syncing = n->overflow = n->first = n->psub_ok = false;
        hold(b, n, false);
        need_ready(b, n);
    }
}

/* One Redis: the heartbeat carries a stamp below any later publish's and
 * at or above every earlier one's (redis_pub.c), so the mark moves on
 * while no message comes: "<ms> <stamp>". */
/* clang-format off */
static const char HB_SCRIPT[] =
    BP_STAMP_LUA("KEYS[1]")
    "return redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. string.format('%.0f', u - 1))\n";
/* clang-format on */

static void heartbeat(redis_bp *b, uint64_t now)
{
    char ms[24], chan[96];
    snprintf(ms, sizeof ms, "%llu", (unsigned long long)now);
    b->hb_sent_ms = now;
    for (size_t i = 0; i < b->nshards; i++) {
        snprintf(chan, sizeof chan, "%s:%zu", b->hb_chan, i);
        if (b->cluster)
            (void)rlink_cmdv(b->shards[i].cmd.rl, on_setup, NULL, "PUBLISH", chan, ms, NULL);
        else
            (void)rlink_cmdv(b->shards[i].cmd.rl, on_setup, NULL, "EVAL", HB_SCRIPT, "1", "axon:ix",
                             chan, ms, NULL);
    }
}

/* Cluster: a node with wildcard filters says so, so that publishes reach
 * its pattern subscriptions (classic pub/sub) too. */
static void wild_say(redis_bp *b, uint64_t now)
{
    if (!b->cluster || b->state != BP_UP || now - b->wild_said_ms < BP_WILD_SAY_MS) return;
    bool any = false;
    for (need *n = b->list; n && !any; n = n->next)
        any = !n->exact;
    if (!any || !b->shards[0].cmd.up) return;
    b->wild_said_ms = now;
    (void)rlink_cmdv(b->shards[0].cmd.rl, NULL, NULL, "PUBLISH", b->wild_chan, b->node, NULL);
}

static void on_tick(ax_timer *t, void *ud)
{
    redis_bp *b = ud;
    uint64_t now = bp__mono_ms();
    (void)t;
    if (b->seed_close) {
        b->seed_close = false;
        bp__link_close(&b->seed);
    }
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
    wild_say(b, now);
    bp__pres_tick(b, now);
    bp__sess_tick(b, now);
    bp__ix_tick(b, now);
    visits_tick(b, now);
}

static const hub_backplane_ops OPS = {bp__publish,  op_need,   bp__wait, bp__cancel, bp__present,
                                      bp__presence, bp__state, op_visit, bp__topics, op_mark};

/* ---- the backplane ----------------------------------------------------------------------------
 */

/* One URL or several (a cluster's nodes), separated by commas or spaces. */
static int seeds_parse(redis_bp *b, const char *urls, char *why, size_t why_len)
{
    for (const char *p = urls; *p;) {
        size_t n = strcspn(p, ", \t");
        if (n) {
            char one[1024];
            if (b->nseeds == BP_SEEDS_MAX || n >= sizeof one) {
                snprintf(why, why_len, "'%s': at most %d Redis URLs of at most %zu bytes", urls,
                         BP_SEEDS_MAX, sizeof one - 1);
                return -1;
            }
            memcpy(one, p, n);
            one[n] = '\0';
            if (redis_url_parse(one, &b->seeds[b->nseeds++], why, why_len) != 0) return -1;
        }
        p += n + (p[n] ? 1 : 0);
    }
    if (!b->nseeds) {
        snprintf(why, why_len, "no Redis URL");
        return -1;
    }
    b->u = b->seeds[0];
    return 0;
}

int redis_urls_check(const char *urls, char *why, size_t why_len)
{
    redis_bp *b = ax_calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    int rc = seeds_parse(b, urls, why, why_len);
    ax_free(b);
    return rc;
}

static redis_bp *bp_fail(redis_bp *b, const char *what, char *why, size_t why_len)
{
    if (what) snprintf(why, why_len, "%s", what);
    ax_tls_ctx_free(b->tls);
    ax_timer_free(b->tick);
    ax_free(b->slots);
    ax_free(b->ixtag);
    ax_free(b);
    return NULL;
}

redis_bp *redis_bp_new(hub *h, const char *url, bool cluster, char *why, size_t why_len)
{
    redis_bp *b = ax_calloc(1, sizeof(*b));
    if (!b) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    if (seeds_parse(b, url, why, why_len) != 0) return bp_fail(b, NULL, why, why_len);
    b->cluster = cluster || b->nseeds > 1;
    if (b->cluster && b->u.db)
        return bp_fail(b, "a Redis Cluster has database 0 only: no /db in its URLs", why, why_len);
    if (b->cluster && !(b->slots = ax_malloc(BP_SLOTS * sizeof(*b->slots))))
        return bp_fail(b, "out of memory", why, why_len);
    b->h = h;
    b->loop = hub_loop(h);
    b->thread = pthread_self();
    b->seed.b = b;
    b->backoff_ms = BP_BACKOFF_MIN_MS;
    if (b->u.port < 0)
        snprintf(b->url_shown, sizeof b->url_shown, "unix://%s", b->u.host);
    else
        snprintf(b->url_shown, sizeof b->url_shown, "%s://%s:%d/%d%s",
                 b->u.tls ? "rediss" : "redis", b->u.host, b->u.port, b->u.db,
                 b->cluster ? " (cluster)" : "");
    b->plen = (size_t)snprintf(b->prefix, sizeof b->prefix, "axon:%d:", b->u.db);
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1) memset(rnd, 7, sizeof rnd);
    snprintf(b->node, sizeof b->node, "%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    snprintf(b->hb_chan, sizeof b->hb_chan, "axon-hb:%s", b->node);
    snprintf(b->ret_chan, sizeof b->ret_chan, "axon-ret:%d", b->u.db);
    snprintf(b->wild_chan, sizeof b->wild_chan, "axon-wild:%d", b->u.db);
    snprintf(b->sess_chan, sizeof b->sess_chan, "axon-sess:%d", b->u.db);
    if (b->u.tls && (b->u.cert[0] || b->u.ca[0])) { /* (else the core's default context) */
        ax_tls_opts to = {.cert_file = b->u.cert[0] ? b->u.cert : NULL,
                          .key_file = b->u.key[0] ? b->u.key : NULL,
                          .ca_file = b->u.ca[0] ? b->u.ca : NULL};
        char tw[400];
        if (!(b->tls = ax_tls_client_new(&to, tw, sizeof tw, NULL))) {
            snprintf(why, why_len, "redis: %s", tw);
            return bp_fail(b, NULL, why, why_len);
        }
    }
    b->tick = ax_timer_new(b->loop, on_tick, b);
    if (!b->tick || ax_timer_start(b->tick, 0, BP_TICK_MS) != 0)
        return bp_fail(b, "out of memory", why, why_len);
    if (b->cluster && bp__ix_init(b) != 0) return bp_fail(b, "out of memory", why, why_len);
    hub_map_init(&b->needs);
    hub_map_init(&b->acks);
    hub_map_init(&b->row_of);
    pthread_mutex_init(&b->ack_mu, NULL);
    hub_map_init(&b->pres_local);
    hub_map_init(&b->pres_remote);
    pthread_mutex_init(&b->pres_mu, NULL);
    pthread_mutex_init(&b->sess_mu, NULL);
    pthread_mutex_init(&b->hold_mu, NULL);
    hub_set_backplane(h, &OPS, b);
    return b;
}

void redis_bp_free(redis_bp *b)
{
    if (!b) return;
    b->freeing = true;
    hub_set_backplane(b->h, NULL, NULL);
    ax_timer_free(b->tick);
    set_state(b, BP_DOWN);
    bp__link_close(&b->seed);
    bp__shards_free(b);
    bp__sess_free(b);
    bp__ix_free(b);
    while (b->list)
        need_free(b, b->list);
    hub_map_clear(&b->needs);
    bp__acks_free(b);
    bp__pres_free(b);
    ax_free(b->slots);
    ax_free(b->ixtag);
    ax_tls_ctx_free(b->tls);
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
    uint64_t now = bp__mono_ms();
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
        "# TYPE axon_redis_backfilled_total counter\naxon_redis_backfilled_total %llu\n"
        "# HELP axon_redis_state_errors_total MQTT session rows Redis did not take.\n"
        "# TYPE axon_redis_state_errors_total counter\naxon_redis_state_errors_total %llu\n"
        "# HELP axon_redis_state_retried_total Failed MQTT session rows written again.\n"
        "# TYPE axon_redis_state_retried_total counter\naxon_redis_state_retried_total %llu\n"
        "# HELP axon_redis_state_lost_total Failed MQTT session rows given up.\n"
        "# TYPE axon_redis_state_lost_total counter\naxon_redis_state_lost_total %llu\n"
        "# HELP axon_redis_paused Publishers not read now: too many publishes on their way.\n"
        "# TYPE axon_redis_paused gauge\naxon_redis_paused %llu\n"
        "# HELP axon_redis_paused_total Times a publisher was paused for Redis.\n"
        "# TYPE axon_redis_paused_total counter\naxon_redis_paused_total %llu\n",
        (unsigned long long)ST_GET(b, state), (unsigned long long)ST_GET(b, reconnects),
        (unsigned long long)ST_GET(b, lag_ms), (unsigned long long)ST_GET(b, published),
        (unsigned long long)ST_GET(b, publish_errors), (unsigned long long)ST_GET(b, refused),
        (unsigned long long)ST_GET(b, received), (unsigned long long)ST_GET(b, gaps),
        (unsigned long long)ST_GET(b, backfilled), (unsigned long long)ST_GET(b, state_errors),
        (unsigned long long)ST_GET(b, state_retried), (unsigned long long)ST_GET(b, state_lost),
        (unsigned long long)ST_GET(b, paused), (unsigned long long)ST_GET(b, paused_total));
    if (n < 0) n = 0;
    return (size_t)n < len ? (size_t)n : (len ? len - 1 : 0);
}
