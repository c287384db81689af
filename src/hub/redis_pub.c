/* redis_pub.c: publishing through the backplane, and the publishers'
 * acknowledgements (redis_int.h, docs/cluster.md). */
#include <stdio.h>
#include <string.h>

#include "redis_int.h"

/* The publish script: number, append, publish, atomically.  `last` (the
 * node's last seq of the topic) keeps numbers rising if Redis lost the
 * counter; a stream that is ahead of the counter moves it too.  ARGV[7]:
 * PUBLISH, or SPUBLISH in a cluster (the channel shares the keys' slot).
 * ARGV[8]: the whole message packed (hub_msg_pack: MQTT's QoS, retain
 * flag, expiry, properties), or "" when it has none of those; then the
 * stream entry has it as field x and the channel message is
 * "x<seq> <packed>".  ARGV[9] "1": retained: KEYS[3] becomes
 * "<seq> <packed>" (deleted when the payload is empty) and every node
 * hears of it on the classic channel ARGV[10].  ARGV[11]: a cluster's
 * classic channel of the topic, for wildcard subscribers, or "".
 * KEYS[4]: the topic index (bp__ix_key: a sorted set in the topic's
 * slot) where the topic ARGV[12] gets the message's stamp as its score;
 * it keeps the ARGV[13] most recently published topics (redis_index.c).
 *
 * The stamp: Redis's own clock (TIME, in µs), raised above the index's
 * highest score, so it rises strictly with every publish to the set (one
 * Redis: every publish; a cluster: every publish to the slot).  It goes
 * on the stream entry (field r) and before the channel message
 * ("r<stamp> "): the resume point of an MQTT session that moves between
 * nodes (docs/cluster.md "Nothing published during the hand-over"). */
/* clang-format off */
const char bp__script[] =
    BP_STAMP_LUA("KEYS[4]")
    "local r = string.format('%.0f', u)\n"
    "local seq = redis.call('INCR', KEYS[1])\n"
    "local last = tonumber(ARGV[6])\n"
    "if seq <= last then seq = last + 1; redis.call('SET', KEYS[1], seq) end\n"
    "local x = ARGV[8]\n"
    "local f = {'t', ARGV[3], 's', ARGV[4], 'p', ARGV[5], 'r', r}\n"
    "if x ~= '' then f[9] = 'x'; f[10] = x end\n"
    "local maxlen = tonumber(ARGV[2])\n"
    "if maxlen > 0 then\n"
    "  local ok = redis.pcall('XADD', KEYS[2], 'MAXLEN', maxlen, seq .. '-1', unpack(f))\n"
    "  if type(ok) == 'table' and ok.err then\n"
    "    local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)\n"
    "    seq = tonumber(string.match(top[1][1], '^(%d+)')) + 1\n"
    "    redis.call('SET', KEYS[1], seq)\n"
    "    redis.call('XADD', KEYS[2], 'MAXLEN', maxlen, seq .. '-1', unpack(f))\n"
    "  end\n"
    "end\n"
    "local msg\n"
    "if x ~= '' then msg = 'r' .. r .. ' x' .. seq .. ' ' .. x\n"
    "else msg = 'r' .. r .. ' ' .. seq .. ' ' .. ARGV[3] .. ' ' .. #ARGV[4] .. ' ' .. ARGV[4] .. "
    "ARGV[5] end\n"
    "redis.call(ARGV[7], ARGV[1], msg)\n"
    "if ARGV[11] ~= '' then redis.call('PUBLISH', ARGV[11], msg) end\n"
    "if ARGV[9] == '1' then\n"
    "  if #ARGV[5] == 0 then redis.call('DEL', KEYS[3])\n"
    "  else redis.call('SET', KEYS[3], seq .. ' ' .. x) end\n"
    "  redis.call('PUBLISH', ARGV[10], seq .. ' ' .. x)\n"
    "end\n"
    "redis.call('ZADD', KEYS[4], r, ARGV[12])\n"
    "if redis.call('ZCARD', KEYS[4]) > tonumber(ARGV[13]) then\n"
    "  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, 0)\n"
    "end\n"
    "return seq\n";
/* clang-format on */

/* ---- acknowledgements --------------------------------------------------------------------- */

typedef struct ack_rec {
    hub_ack *a; /* NULL until hub_ack_wait() */
    ax_loop *loop;
    void (*cb)(hub_ack *a, int status);
    int status;
    uint64_t seq;
    bool done, posted;
} ack_rec;

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
    if (ax_loop_post_or(r->loop, ack_run, ax_free, p) != 0) ax_free(p);
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

void bp__state_done(redis_bp *b, uint64_t ticket, int status)
{
    if (!ticket) return;
    pthread_mutex_lock(&b->ack_mu);
    ack_rec *r = ack_get(b, ticket, false); /* (none: nobody waits for this row) */
    if (r) {
        r->done = true;
        r->status = status;
        ack_post_run(b, r, ticket);
    } else if (status) {
        b->state_failed[b->state_nfailed++ % 64] = ticket;
    }
    pthread_mutex_unlock(&b->ack_mu);
}

int bp__wait(void *ud, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status),
             ax_loop *loop)
{
    redis_bp *b = ud;
    int rc = 0;
    pthread_mutex_lock(&b->ack_mu);
    ack_rec *r = ack_get(b, ticket, true);
    for (unsigned i = 0; r && !r->done && i < 64; i++)
        if (b->state_failed[i] == ticket) { /* a row that failed before the wait */
            r->done = true;
            r->status = AX_EIO;
        }
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

void bp__cancel(void *ud, hub_ack *a)
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

/* ---- publishers held back ---------------------------------------------------------------- */

/* A gateway asks before a publish: above BP_HOLD_HIGH on their way it
 * stops reading the publisher; the first answer that brings the count
 * below BP_HOLD_LOW wakes the gateways (hold_wake).  hold_want is set
 * before the count is read again, the count lowered before hold_want is
 * read (both sequentially consistent): a pause and the last answer that
 * would end it cannot miss each other. */
bool redis_bp_hold(redis_bp *b)
{
    if (__atomic_load_n(&b->inflight, __ATOMIC_RELAXED) < BP_HOLD_HIGH) return false;
    __atomic_store_n(&b->hold_want, true, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&b->inflight, __ATOMIC_SEQ_CST) < BP_HOLD_LOW) return false;
    ST_ADD(b, paused, 1);
    ST_ADD(b, paused_total, 1);
    return true;
}

void redis_bp_unhold(redis_bp *b, uint64_t n)
{
    if (n) __atomic_sub_fetch(&b->st.paused, n, __ATOMIC_RELAXED);
}

bool redis_bp_calm(redis_bp *b)
{
    return __atomic_load_n(&b->inflight, __ATOMIC_RELAXED) < BP_HOLD_LOW;
}

void redis_hold_handler(redis_bp *b, void (*fn)(void *ud), void *ud, ax_loop *loop)
{
    pthread_mutex_lock(&b->hold_mu);
    int i, free_slot = -1;
    for (i = 0; i < BP_SESS_MAX && b->hold_h[i].loop != loop; i++)
        if (!b->hold_h[i].loop && free_slot < 0) free_slot = i;
    if (i == BP_SESS_MAX) i = free_slot;
    if (i >= 0) { /* (none free: that thread's gateway resumes on its tick) */
        b->hold_h[i].fn = fn;
        b->hold_h[i].ud = ud;
        b->hold_h[i].loop = fn ? loop : NULL;
    }
    pthread_mutex_unlock(&b->hold_mu);
}

typedef struct hold_post {
    redis_bp *b;
    int slot;
} hold_post;

/* On a gateway's loop: its handler, unless it went meanwhile (only that
 * thread takes it away). */
static void hold_run(ax_loop *loop, void *arg)
{
    hold_post *p = arg;
    redis_bp *b = p->b;
    pthread_mutex_lock(&b->hold_mu);
    void (*fn)(void *ud) = b->hold_h[p->slot].loop == loop ? b->hold_h[p->slot].fn : NULL;
    void *ud = b->hold_h[p->slot].ud;
    pthread_mutex_unlock(&b->hold_mu);
    ax_free(p);
    if (fn) fn(ud);
}

/* Posted, even to this loop: the handler resumes connections, never
 * inside an answer's callback. */
static void hold_wake(redis_bp *b)
{
    pthread_mutex_lock(&b->hold_mu);
    for (int i = 0; i < BP_SESS_MAX; i++) {
        if (!b->hold_h[i].loop) continue;
        hold_post *p = ax_malloc(sizeof(*p));
        if (p) *p = (hold_post){b, i};
        if (p && ax_loop_post_or(b->hold_h[i].loop, hold_run, ax_free, p) != 0) ax_free(p);
    }
    pthread_mutex_unlock(&b->hold_mu); /* (a post that failed: the gateway's tick resumes) */
}

/* One publish is no longer on its way. */
static void inflight_done(redis_bp *b)
{
    if (__atomic_sub_fetch(&b->inflight, 1, __ATOMIC_SEQ_CST) < BP_HOLD_LOW &&
        __atomic_load_n(&b->hold_want, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&b->hold_want, false, __ATOMIC_SEQ_CST))
        hold_wake(b);
}

/* The script's answer: the seq the cluster gave (the ticket rides in priv). */
static void on_pub_reply(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    bool ok = bp__ok(rl, r, &l);
    redis_bp *b = l->b;
    uint64_t ticket = (uint64_t)(uintptr_t)priv;
    inflight_done(b);
    if (ok) {
        ack_done(b, ticket, 0, r->type == REDIS_REPLY_INTEGER ? (uint64_t)r->integer : 0);
        return;
    }
    ack_done(b, ticket, AX_EIO, 0);
    ST_ADD(b, publish_errors, 1);
    if (r && r->type == REDIS_REPLY_ERROR)
        ax_log(AX_LOG_WARN, "redis %s: a publish failed: %s", b->url_shown, r->str);
}

static void ack_free(hub_map_ent *e, void *ud)
{
    (void)ud;
    ax_free(e->value);
}

void bp__acks_free(redis_bp *b)
{
    hub_map_each(&b->acks, ack_free, NULL);
    hub_map_clear(&b->acks);
    pthread_mutex_destroy(&b->ack_mu);
    pthread_mutex_destroy(&b->hold_mu);
}

/* ---- publishing ----------------------------------------------------------------------------- */

typedef struct pub_post {
    redis_bp *b;
    hub_msg *m;
    uint64_t last, ticket;
    uint32_t history;
} pub_post;

/* Does the message need more than topic, sender, payload and time? */
static bool needs_pack(const hub_msg *m)
{
    return m->qos != 1 || m->retain || m->expiry_s || m->ext_len;
}

static void pub_send(redis_bp *b, hub_msg *m, uint64_t last, uint32_t history, uint64_t ticket)
{
    char seqkey[HUB_MAX_TOPIC + 16], logkey[HUB_MAX_TOPIC + 16], retkey[HUB_MAX_TOPIC + 16];
    char chan[BP_CHAN_MAX], classic[BP_CHAN_MAX] = "", maxlen[16], ms[24], lastbuf[24];
    char ixkey[40], ixmax[16];
    snprintf(seqkey, sizeof seqkey, "axon:{%s}:seq", m->topic);
    snprintf(logkey, sizeof logkey, "axon:{%s}:log", m->topic);
    snprintf(retkey, sizeof retkey, "axon:{%s}:ret", m->topic);
    bp__chan(b, BP_CH_MSG, m->topic, chan, sizeof chan);
    if (b->cluster && b->wild_until_ms > bp__mono_ms())
        snprintf(classic, sizeof classic, "%s%s", b->prefix, m->topic);
    snprintf(maxlen, sizeof maxlen, "%u", history);
    snprintf(ms, sizeof ms, "%lld", (long long)m->time_ms);
    snprintf(lastbuf, sizeof lastbuf, "%llu", (unsigned long long)last);
    bp__ix_key(b, m->topic, ixkey, sizeof ixkey);
    snprintf(ixmax, sizeof ixmax, "%d", b->cluster ? BP_INDEX_SLOT_MAX : BP_INDEX_MAX);
    size_t xl = needs_pack(m) ? hub_msg_pack(m, NULL, 0) : 0;
    uint8_t *x = xl ? ax_malloc(xl) : NULL;
    if (x) hub_msg_pack(m, x, xl);
    const char *argv[] = {"EVALSHA",
                          b->sha,
                          "4",
                          seqkey,
                          logkey,
                          retkey,
                          ixkey,
                          chan,
                          maxlen,
                          ms,
                          m->sender ? m->sender : "",
                          m->payload,
                          lastbuf,
                          b->cluster ? "SPUBLISH" : "PUBLISH",
                          x ? (const char *)x : "",
                          m->retain ? "1" : "",
                          b->ret_chan,
                          classic,
                          m->topic,
                          ixmax};
    size_t lens[20];
    for (int i = 0; i < 20; i++)
        lens[i] = i == 11 ? m->payload_len : i == 14 ? (x ? xl : 0) : strlen(argv[i]);
    int rc = b->state != BP_UP || (xl && !x)
                 ? AX_ENOMEM
                 : bp__cmd(b, m->topic, on_pub_reply, (void *)(uintptr_t)ticket, 20, argv, lens);
    ax_free(x);
    if (rc != 0) {
        inflight_done(b);
        ST_ADD(b, publish_errors, 1);
        ack_done(b, ticket, AX_EIO, 0);
        return;
    }
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

static void pub_drop(void *arg)
{
    pub_post *p = arg;
    hub_msg_unref(p->m);
    ax_free(p);
}

int bp__publish(void *ud, hub_msg *m, uint64_t last, uint32_t history, uint64_t *ticket)
{
    redis_bp *b = ud;
    uint64_t tk = ticket ? __atomic_add_fetch(&b->next_ticket, 1, __ATOMIC_RELAXED) : 0;
    if (ST_GET(b, state) != BP_UP) {
        ST_ADD(b, refused, 1);
        return AX_EAGAIN;
    }
    if (__atomic_add_fetch(&b->inflight, 1, __ATOMIC_RELAXED) > BP_INFLIGHT_MAX) {
        inflight_done(b);
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
        inflight_done(b);
        return AX_ENOMEM;
    }
    *p = (pub_post){b, hub_msg_ref(m), last, tk, history};
    if (ax_loop_post_or(b->loop, pub_run, pub_drop, p) != 0) {
        hub_msg_unref(m);
        ax_free(p);
        inflight_done(b);
        return AX_ENOMEM;
    }
    return 0;
}
