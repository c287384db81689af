/* redis_sess.c: MQTT persistent sessions through the backplane (redis.h,
 * docs/cluster.md "MQTT").
 *
 * A session is one hash, axon:{mq:<h>}:<client id> (<h>: a 64-bit hash of
 * the client id in hex, so the hash tag is short and has no braces): a
 * field per state row the MQTT gateway writes (hub_state_put: "<ns>:<the
 * key after the client id's NUL>" -> the row: the session and its
 * subscriptions, each message it owes (queued while the client is away,
 * or in flight), each QoS 2 id it received) and `owner`, the node that
 * has it in memory.  Rows are written as they change, on the command link
 * of the hash's shard, so they reach Redis in order.
 *
 * Claiming.  A client connecting to a node that does not hold its session
 * makes the node run a script that reads the owner, makes itself the owner
 * and publishes "T <claimer> <old owner or -> <client id>" on axon-sess:<db>
 * (classic pub/sub: every node hears it, in a cluster too).  Every other
 * node closes a connection of that client id (a takeover); the old owner
 * also lets go of the session (the rows stay) and publishes "R <claimer>
 * <itself> <client id>" on the same link as its rows, so when the claimer
 * hears it Redis has all of them: it reads the hash (HGETALL) and goes on.
 * An owner that does not answer in 2 s (it died) is not waited for
 * longer.  A clean session deletes the hash instead of reading it.
 *
 * Expiry.  The hash has a TTL its owner keeps (redis_sess_ttl): the
 * session's expiry plus a lease while the client is connected, renewed
 * every few seconds, and the session's expiry from when the client left;
 * a session whose node died goes from Redis by itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

#define SESS_WAIT_MS 2000

struct bp_claim {
    bp_claim *next;
    redis_bp *b;
    void (*cb)(void *ud, int status, const redis_row *rows, size_t n);
    void *ud;
    bool clean, answered, waiting;
    uint64_t until_ms;
    char old[24];   /* the owner we wait for */
    char heard[24]; /* an R that came before the script's answer */
    char tag[24];   /* "mq:<h>" */
    size_t klen;
    char key[]; /* the hash's name, then the client id at cid_off */
};

static void tag_of(const char *cid, size_t cl, char *tag, size_t cap)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < cl; i++)
        h = (h ^ (uint8_t)cid[i]) * 1099511628211ull;
    snprintf(tag, cap, "mq:%016llx", (unsigned long long)h);
}

/* "axon:{mq:<h>}:<cid>" into out (cap >= 32 + cl); its length. */
static size_t key_of(const char *cid, size_t cl, char *tag, size_t tcap, char *out)
{
    tag_of(cid, cl, tag, tcap);
    int n = sprintf(out, "axon:{%s}:", tag);
    memcpy(out + n, cid, cl);
    out[(size_t)n + cl] = '\0';
    return (size_t)n + cl;
}

static const char *cid_of(const bp_claim *q)
{
    return strchr(q->key, '}') + 2;
}

/* ---- the state rows -------------------------------------------------------------------------- */

static const char DEL_SCRIPT[] = "redis.call('HDEL', KEYS[1], ARGV[1]) "
                                 "if redis.call('HGET', KEYS[1], 'owner') == ARGV[2] "
                                 "then redis.call('DEL', KEYS[1]) end";
static const char CLEAR_SCRIPT[] =
    "for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do "
    "if string.sub(f, 1, #ARGV[1]) == ARGV[1] then redis.call('HDEL', KEYS[1], f) end end";

/* ---- Failed rows ---------------------------------------------------------------------------
 *
 * A row Redis did not take (an error reply, the link lost before the
 * answer, or not sent: Redis away) is kept and written again: after
 * 100 ms, then doubling to 5 s while it keeps failing, and at once when
 * the link comes back up.  At most BP_ROWS_MAX rows / BP_ROWS_BYTES bytes
 * wait; a row beyond that is given up (logged, axon_redis_state_lost_total).
 *
 * An old row written again must not undo a later command for the same
 * field (a delete, a newer value).  Every row sent is kept until Redis
 * answers it (`rows`), and the latest one per field is found through
 * `row_of`; a command for a field makes the rows it follows "stale": a
 * waiting one is dropped, one on its way is not written again if it
 * fails.  Rows of one hash go over one link in order, so a retry sent
 * before the newer command cannot land after it.  This is simpler than a
 * version per field kept in Redis (a script comparing versions) and as
 * safe, since only this node writes the rows of a session it owns: when
 * the session moves (T), its waiting rows are sent at once, before R,
 * and never again after that (the new owner writes them from then on).
 *
 * Not retried: the received QoS 2 ids (mqtt.r puts; the client was told
 * of the failure, a row written later would make a reused id a
 * duplicate) and the whole-hash scripts (a session's end, clearing a
 * kind of rows; they still make older rows stale). */

#define BP_ROWS_MAX 10000
#define BP_ROWS_BYTES (16u << 20)
#define BP_RETRY_MIN_MS 100
#define BP_RETRY_MAX_MS 5000

struct bp_row {
    bp_row *next, *prev;
    redis_bp *b;
    uint64_t ticket;              /* the first try's (retries: 0) */
    bool retry;                   /* written again when it fails */
    bool stale;                   /* a later command for its field was sent */
    bool queued;                  /* failed: waiting to be written again */
    bool mapped;                  /* row_of names it */
    bool again;                   /* failed once: counted, said */
    bool gone;                    /* its session went to another node */
    int argc, hi;                 /* hi: argv's hash name (EVAL: 3, else 1) */
    size_t lens[6], size, hl, fl; /* hl, fl: its hash's name, its field */
    const char *argv[6];
    char tag[24];
    char data[];
};

static void row_unlink(bp_row *w)
{
    redis_bp *b = w->b;
    if (w->prev)
        w->prev->next = w->next;
    else
        b->rows = w->next;
    if (w->next) w->next->prev = w->prev;
    if (w->queued) {
        b->rq_n--;
        b->rq_bytes -= w->size;
    }
    if (w->mapped) {
        char key[640];
        memcpy(key, w->argv[1], w->hl);
        key[w->hl] = '\0';
        memcpy(key + w->hl + 1, w->argv[2], w->fl);
        (void)hub_map_del(&b->row_of, key, w->hl + 1 + w->fl);
    }
    ax_free(w);
}

/* A command for `field` of hash `hk` (prefix: every field it starts; NULL:
 * all) is being sent: the rows before it are stale. */
static void rows_stale(redis_bp *b, const char *hk, size_t hl, const char *field, size_t fl,
                       bool prefix)
{
    if (!prefix) { /* one field: its latest row (older ones are stale already) */
        char key[640];
        memcpy(key, hk, hl);
        key[hl] = '\0';
        memcpy(key + hl + 1, field, fl);
        bp_row *w = hub_map_del(&b->row_of, key, hl + 1 + fl);
        if (!w) return;
        w->mapped = false;
        w->stale = true;
        if (w->queued) row_unlink(w);
        return;
    }
    for (bp_row *w = b->rows, *next; w; w = next) {
        next = w->next;
        if (w->hl != hl || memcmp(w->argv[w->hi], hk, hl) != 0) continue;
        if (field && (w->fl < fl || memcmp(w->argv[2], field, fl) != 0)) continue;
        w->stale = true;
        if (w->queued) row_unlink(w);
    }
}

static void on_state_reply(rlink *rl, redisReply *r, void *priv);

static int row_send(bp_row *w)
{
    return bp__cmd(w->b, w->tag, on_state_reply, w, w->argc, w->argv, w->lens);
}

static void row_failed(bp_row *w)
{
    redis_bp *b = w->b;
    w->ticket = 0;
    if (w->gone && !w->stale && !b->freeing) {
        ST_ADD(b, state_lost, 1);
        ax_log(AX_LOG_WARN, "redis %s: an MQTT session row is lost (its session moved)",
               b->url_shown);
    }
    if (!w->retry || w->stale || b->freeing) {
        row_unlink(w);
        return;
    }
    if (b->rq_n >= BP_ROWS_MAX || b->rq_bytes + w->size > BP_ROWS_BYTES) {
        ST_ADD(b, state_lost, 1);
        ax_log(AX_LOG_WARN,
               "redis %s: an MQTT session row is lost: %zu rows (%zu bytes) wait to be "
               "written again already",
               b->url_shown, b->rq_n, b->rq_bytes);
        row_unlink(w);
        return;
    }
    w->queued = w->again = true;
    b->rq_n++;
    b->rq_bytes += w->size;
    if (!b->rq_at) {
        if (!b->rq_backoff) b->rq_backoff = BP_RETRY_MIN_MS;
        b->rq_at = bp__mono_ms() + b->rq_backoff;
    }
}

/* Redis's answer to a row: a failure is said (log, /metrics) and given
 * to whoever waits for the row's ticket (a PUBREC, a QoS 2 PUBLISH); the
 * row waits to be written again. */
static void on_state_reply(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    bool ok = bp__ok(rl, r, &l);
    bp_row *w = priv;
    redis_bp *b = w->b;
    uint64_t tk = w->ticket;
    bool again = w->again;
    if (ok) {
        if (again) {
            if (!w->gone) ST_ADD(b, state_retried, 1); /* (else on_last_reply counts it) */
            b->rq_backoff = BP_RETRY_MIN_MS;
        }
        row_unlink(w);
    } else {
        if (!again) ST_ADD(b, state_errors, 1);
        if (!again && r && r->type == REDIS_REPLY_ERROR)
            ax_log(AX_LOG_WARN, "redis %s: an MQTT session row was not stored: %s", b->url_shown,
                   r->str);
        row_failed(w);
    }
    bp__state_done(b, tk, ok ? 0 : AX_EIO);
}

/* Send a row's command; its ticket (when wanted) tells how it went.
 * argv[fi]: the field it writes (prefix: what the fields it clears
 * start with; fi >= argc: every field of the hash). */
static int state_cmd(redis_bp *b, const char *tag, int argc, const char **argv, const size_t *lens,
                     uint64_t *ticket, size_t fi, bool prefix, bool retry)
{
    uint64_t tk = ticket && *ticket ? *ticket /* (given on another thread) */
                  : ticket          ? __atomic_add_fetch(&b->next_ticket, 1, __ATOMIC_RELAXED)
                                    : 0;
    if (ticket) *ticket = tk;
    int hi = argv[0][0] == 'E' ? 3 : 1; /* (EVAL script 1 <hash> ...) */
    rows_stale(b, argv[hi], lens[hi], fi < (size_t)argc ? argv[fi] : NULL,
               fi < (size_t)argc ? lens[fi] : 0, prefix);
    size_t size = 0;
    for (int i = 0; i < argc; i++)
        size += lens[i];
    bp_row *w = ax_malloc(sizeof(*w) + size);
    if (!w) {
        ST_ADD(b, state_errors, 1);
        bp__state_done(b, tk, AX_ENOMEM);
        return AX_ENOMEM;
    }
    memset(w, 0, sizeof(*w));
    w->b = b;
    w->ticket = tk;
    w->retry = retry;
    w->argc = argc;
    w->size = sizeof(*w) + size;
    snprintf(w->tag, sizeof w->tag, "%s", tag);
    char *p = w->data;
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        w->argv[i] = p;
        w->lens[i] = lens[i];
        p += lens[i];
    }
    /* the rows keyed as "<hash>\0<field>": argv[1] and argv[2] (HSET, HDEL) */
    w->hi = hi;
    w->hl = lens[hi];
    w->fl = hi == 1 ? lens[2] : 0;
    w->next = b->rows;
    if (b->rows) b->rows->prev = w;
    b->rows = w;
    if (hi == 1) {
        char key[640];
        memcpy(key, w->argv[1], w->hl);
        key[w->hl] = '\0';
        memcpy(key + w->hl + 1, w->argv[2], w->fl);
        if (hub_map_put(&b->row_of, key, w->hl + 1 + w->fl, w, NULL) == 0)
            w->mapped = true;
        else
            w->retry = false; /* (not found again: not written again) */
    }
    int rc = row_send(w);
    if (rc) { /* not sent (Redis away): not stored */
        ST_ADD(b, state_errors, 1);
        row_failed(w);
        bp__state_done(b, tk, AX_EIO);
    }
    return rc;
}

/* Write the waiting rows again (the tick: when their time came, or at
 * once when the link is back). */
static void rows_retry(redis_bp *b, uint64_t now)
{
    bool up = b->state == BP_UP;
    if (up && !b->rq_up && b->rq_n) b->rq_at = now; /* the link is back */
    b->rq_up = up;
    if (!up || !b->rq_n || !b->rq_at || now < b->rq_at) return;
    b->rq_at = 0;
    b->rq_backoff = b->rq_backoff ? b->rq_backoff * 2 : BP_RETRY_MIN_MS;
    if (b->rq_backoff > BP_RETRY_MAX_MS) b->rq_backoff = BP_RETRY_MAX_MS;
    for (bp_row *w = b->rows; w; w = w->next) {
        if (!w->queued) continue;
        w->queued = false;
        b->rq_n--;
        b->rq_bytes -= w->size;
        if (row_send(w) != 0) { /* (went down meanwhile) */
            w->queued = true;
            b->rq_n++;
            b->rq_bytes += w->size;
        }
    }
    if (b->rq_n && !b->rq_at) b->rq_at = now + b->rq_backoff;
}

/* A row's last write, for a session that went to another node. */
static void on_last_reply(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    redis_bp *b = priv;
    if (bp__ok(rl, r, &l)) {
        ST_ADD(b, state_retried, 1);
    } else if (!b->freeing) {
        ST_ADD(b, state_lost, 1);
        ax_log(AX_LOG_WARN, "redis %s: an MQTT session row is lost (its session moved)",
               b->url_shown);
    }
}

/* The session of hash `hk` goes to another node: its rows that failed
 * (waiting, or written again and not answered yet: that may fail too)
 * are written once more now (mine: before R), and none after that. */
static void rows_let_go(redis_bp *b, const char *hk, size_t hl, bool mine)
{
    for (bp_row *w = b->rows, *next; w; w = next) {
        next = w->next;
        if (w->hl != hl || memcmp(w->argv[w->hi], hk, hl) != 0) continue;
        w->retry = false;
        w->gone = true;
        if (!w->again || w->stale) continue;
        if (!mine || bp__cmd(b, w->tag, on_last_reply, b, w->argc, w->argv, w->lens) != 0)
            ST_ADD(b, state_lost, 1);
        if (w->queued)
            row_unlink(w); /* (else its answer frees it) */
        else
            w->stale = true; /* (this write stands for it) */
    }
}

/* A row's key and namespace are ones Redis can take (0), else AX_EINVAL. */
static int state_check(const char *ns, const void *key, size_t klen)
{
    const char *k = key, *nul = memchr(k, '\0', klen);
    size_t cl = nul ? (size_t)(nul - k) : klen, rl = nul ? klen - cl - 1 : 0;
    return cl > 512 || strlen(ns) > 15 || rl > 16 ? AX_EINVAL : 0;
}

/* A row of another thread's session, on its way to the backplane's loop
 * (posted: the rows of one thread reach Redis in the order written). */
typedef struct state_job {
    redis_bp *b;
    int op;
    uint64_t ticket; /* given to the writer (0: none wanted) */
    bool has_val;
    char ns[16];
    size_t klen, vlen;
    char data[]; /* key, then val */
} state_job;

static int state_here(redis_bp *b, int op, const char *ns, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t *ticket);

static void state_run(ax_loop *loop, void *arg)
{
    state_job *j = arg;
    uint64_t tk = j->ticket;
    (void)loop;
    (void)state_here(j->b, j->op, j->ns, j->data, j->klen, j->has_val ? j->data + j->klen : NULL,
                     j->vlen, tk ? &tk : NULL);
    ax_free(j);
}

int bp__state(void *ud, int op, const char *ns, const void *key, size_t klen, const void *val,
              size_t vlen, uint64_t *ticket)
{
    redis_bp *b = ud;
    if (ticket) *ticket = 0;
    int rc = state_check(ns, key, klen);
    if (rc || redis_bp_here(b))
        return rc ? rc : state_here(b, op, ns, key, klen, val, vlen, ticket);
    state_job *j = ax_malloc(sizeof(*j) + klen + (val ? vlen : 0));
    if (!j) return AX_ENOMEM;
    *j =
        (state_job){.b = b, .op = op, .has_val = val != NULL, .klen = klen, .vlen = val ? vlen : 0};
    snprintf(j->ns, sizeof j->ns, "%s", ns);
    memcpy(j->data, key, klen);
    if (val) memcpy(j->data + klen, val, vlen);
    if (ticket) j->ticket = *ticket = __atomic_add_fetch(&b->next_ticket, 1, __ATOMIC_RELAXED);
    if (ax_loop_post_or(b->loop, state_run, ax_free, j) != 0) {
        ST_ADD(b, state_errors, 1);
        bp__state_done(b, j->ticket, AX_ENOMEM);
        ax_free(j);
        return AX_ENOMEM;
    }
    return 0;
}

static int state_here(redis_bp *b, int op, const char *ns, const void *key, size_t klen,
                      const void *val, size_t vlen, uint64_t *ticket)
{
    const char *k = key, *nul = memchr(k, '\0', klen);
    size_t cl = nul ? (size_t)(nul - k) : klen, rl = nul ? klen - cl - 1 : 0;
    size_t nl = strlen(ns);
    char hkey[600], tag[24], field[16 + 1 + 16];
    size_t hl = key_of(k, cl, tag, sizeof tag, hkey);
    memcpy(field, ns, nl);
    field[nl] = ':';
    if (rl) memcpy(field + nl + 1, nul + 1, rl);
    size_t fl = nl + 1 + rl;
    if (op == HUB_STATE_PUT) {
        const char *argv[] = {"HSET", hkey, field, val};
        size_t lens[] = {4, hl, fl, vlen};
        return state_cmd(b, tag, 4, argv, lens, ticket, 2, false, strcmp(ns, "mqtt.r") != 0);
    }
    if (op == HUB_STATE_DEL && rl) {
        const char *argv[] = {"HDEL", hkey, field};
        size_t lens[] = {4, hl, fl};
        return state_cmd(b, tag, 3, argv, lens, ticket, 2, false, true);
    }
    const char *argv[] = {"EVAL", op == HUB_STATE_DEL ? DEL_SCRIPT : CLEAR_SCRIPT, "1", hkey, field,
                          b->node};
    size_t lens[] = {4, strlen(argv[1]), 1, hl, fl, strlen(b->node)};
    /* a session's end (every row goes with the hash), or a kind of rows cleared */
    return state_cmd(b, tag, op == HUB_STATE_DEL ? 6 : 5, argv, lens, ticket,
                     op == HUB_STATE_DEL ? 9 : 4, true, false);
}

/* ---- claiming a session ------------------------------------------------------------------------
 */

static void claim_end(bp_claim *q, int status, const redis_row *rows, size_t n)
{
    redis_bp *b = q->b;
    for (bp_claim **p = &b->claims; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            break;
        }
    q->cb(q->ud, status, rows, n);
    ax_free(q);
}

static void on_rows(rlink *rl, redisReply *r, void *priv)
{
    bp_claim *q = priv;
    bp_link *l;
    if (!bp__ok(rl, r, &l) || r->type != REDIS_REPLY_ARRAY) {
        claim_end(q, AX_EIO, NULL, 0);
        return;
    }
    size_t n = 0, max = r->elements / 2;
    redis_row *rows = max ? ax_calloc(max, sizeof(*rows)) : NULL;
    if (max && !rows) {
        claim_end(q, AX_ENOMEM, NULL, 0);
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        const char *colon = memchr(f->str, ':', (size_t)f->len);
        size_t nl = colon ? (size_t)(colon - f->str) : 0;
        if (!colon || nl >= sizeof rows[n].ns) continue; /* (owner) */
        memcpy(rows[n].ns, f->str, nl);
        rows[n].ns[nl] = '\0';
        rows[n].key = colon + 1;
        rows[n].klen = (size_t)f->len - nl - 1;
        rows[n].val = v->str;
        rows[n].vlen = (size_t)v->len;
        n++;
    }
    claim_end(q, 0, rows, n);
    ax_free(rows);
}

static void on_deleted(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    claim_end(priv, bp__ok(rl, r, &l) ? 0 : AX_EIO, NULL, 0);
}

/* The owner let go (or was not waited for): read the rows. */
static void claim_read(bp_claim *q)
{
    q->waiting = false;
    const char *argv[] = {q->clean ? "DEL" : "HGETALL", q->key};
    size_t lens[] = {strlen(argv[0]), q->klen};
    if (bp__cmd(q->b, q->tag, q->clean ? on_deleted : on_rows, q, 2, argv, lens) != 0)
        claim_end(q, AX_ENOTCONN, NULL, 0);
}

static const char CLAIM_SCRIPT[] =
    "local o = redis.call('HGET', KEYS[1], 'owner') "
    "redis.call('HSET', KEYS[1], 'owner', ARGV[1]) "
    "redis.call('PUBLISH', ARGV[2], 'T ' .. ARGV[1] .. ' ' .. (o or '-') .. ' ' .. ARGV[3]) "
    "return o";

static void on_claimed(rlink *rl, redisReply *r, void *priv)
{
    bp_claim *q = priv;
    bp_link *l;
    if (!bp__ok(rl, r, &l)) {
        claim_end(q, AX_EIO, NULL, 0);
        return;
    }
    q->answered = true;
    if (r->type != REDIS_REPLY_STRING || (size_t)r->len >= sizeof q->old ||
        strcmp(r->str, q->b->node) == 0 || strcmp(r->str, q->heard) == 0) {
        claim_read(q); /* nobody else had it, or it let go already */
        return;
    }
    memcpy(q->old, r->str, (size_t)r->len + 1);
    q->waiting = true;
    q->until_ms = bp__mono_ms() + SESS_WAIT_MS;
}

/* ---- another thread's sessions ----------------------------------------------------------------
 *
 * Every thread's MQTT gateway keeps its sessions in Redis: its rows, TTLs
 * and claims are posted to the backplane's loop (in order: one thread's
 * posts run in the order made), a claim's answer is posted back with a
 * copy of the rows, and a claim another node makes is posted to each
 * thread's gateway, whose rows are posted before its "done": the R goes
 * once every thread let go. */

typedef void (*claim_cb)(void *ud, int status, const redis_row *rows, size_t n);

typedef struct claim_job { /* a claim on its way to the backplane's loop and back */
    redis_bp *b;
    claim_cb cb;
    void *ud;
    ax_loop *loop; /* the claimer's */
    bool clean;
    int status;
    redis_row *rows; /* the answer: rows and their bytes, one allocation */
    size_t n;
    char cid[];
} claim_job;

static void sess_notify(redis_bp *b, const char *cid, ax_loop *skip);

/* This node's own claim came back: a session another thread of this node
 * has (a client that came back on another thread) goes from there, its
 * connection closed, without writing (the claimer read the rows). */
static void sess_claimed_here(redis_bp *b, const char *cid)
{
    char tag[24];
    tag_of(cid, strlen(cid), tag, sizeof tag);
    ax_loop *by = NULL;
    for (unsigned i = 0; i < 64; i++)
        if (b->own[i].loop && strcmp(b->own[i].tag, tag) == 0) {
            by = b->own[i].loop;
            b->own[i].loop = NULL;
            break;
        }
    if (!by) return; /* (not known: nothing to risk) */
    sess_notify(b, cid, by);
}

static int claim_here(redis_bp *b, const char *cid, bool clean, claim_cb cb, void *ud,
                      ax_loop *loop);

static void claim_answered(ax_loop *loop, void *arg)
{
    claim_job *j = arg;
    (void)loop;
    j->cb(j->ud, j->status, j->rows, j->n);
    ax_free(j->rows);
    ax_free(j);
}

/* A claim on its way to a loop freed first: the claimer is told. */
static void claim_drop(void *arg)
{
    claim_job *j = arg;
    j->cb(j->ud, AX_ESHUTDOWN, NULL, 0);
    ax_free(j->rows);
    ax_free(j);
}

static void claim_back(claim_job *j, int status, const redis_row *rows, size_t n)
{
    j->status = status;
    size_t bytes = n * sizeof(*rows);
    for (size_t i = 0; i < n; i++)
        bytes += rows[i].klen + rows[i].vlen + 1;
    char *p = n ? ax_malloc(bytes) : NULL;
    if (n && !p) {
        j->status = AX_ENOMEM;
        n = 0;
    }
    j->rows = (redis_row *)p;
    j->n = n;
    p += n * sizeof(*rows);
    for (size_t i = 0; i < n; i++) {
        j->rows[i] = rows[i];
        memcpy(p, rows[i].key, rows[i].klen);
        j->rows[i].key = p;
        p += rows[i].klen;
        memcpy(p, rows[i].val, rows[i].vlen);
        p[rows[i].vlen] = '\0';
        j->rows[i].val = p;
        p += rows[i].vlen + 1;
    }
    if (ax_loop_post_or(j->loop, claim_answered, claim_drop, j) != 0) {
        ax_free(j->rows);
        ax_free(j);
    }
}

static void claim_relay(void *ud, int status, const redis_row *rows, size_t n)
{
    claim_back(ud, status, rows, n);
}

static void claim_run(ax_loop *loop, void *arg)
{
    claim_job *j = arg;
    (void)loop;
    int rc = claim_here(j->b, j->cid, j->clean, claim_relay, j, j->loop);
    if (rc) claim_back(j, rc, NULL, 0);
}

int redis_sess_claim(redis_bp *b, const char *cid, bool clean, claim_cb cb, void *ud, ax_loop *loop)
{
    if (redis_bp_here(b)) return claim_here(b, cid, clean, cb, ud, loop);
    size_t cl = strlen(cid);
    if (__atomic_load_n(&b->state, __ATOMIC_RELAXED) != BP_UP) return AX_ENOTCONN;
    if (cl > 512) return AX_EINVAL;
    claim_job *j = ax_calloc(1, sizeof(*j) + cl + 1);
    if (!j) return AX_ENOMEM;
    *j = (claim_job){.b = b, .cb = cb, .ud = ud, .loop = loop, .clean = clean};
    memcpy(j->cid, cid, cl + 1);
    if (ax_loop_post_or(b->loop, claim_run, claim_drop, j) != 0) {
        ax_free(j);
        return AX_ENOMEM;
    }
    return 0;
}

typedef struct ttl_job {
    redis_bp *b;
    int64_t ms;
    char cid[];
} ttl_job;

static void ttl_here(redis_bp *b, const char *cid, int64_t ms);

static void ttl_run(ax_loop *loop, void *arg)
{
    ttl_job *j = arg;
    (void)loop;
    ttl_here(j->b, j->cid, j->ms);
    ax_free(j);
}

void redis_sess_ttl(redis_bp *b, const char *cid, int64_t ms)
{
    size_t cl = strlen(cid);
    if (cl > 512) return;
    if (redis_bp_here(b)) {
        ttl_here(b, cid, ms);
        return;
    }
    ttl_job *j = ax_malloc(sizeof(*j) + cl + 1);
    if (!j) return; /* (set again soon) */
    j->b = b;
    j->ms = ms;
    memcpy(j->cid, cid, cl + 1);
    if (ax_loop_post_or(b->loop, ttl_run, ax_free, j) != 0) ax_free(j);
}

void redis_sess_handler(redis_bp *b, redis_claim_fn fn, void *ud, ax_loop *loop)
{
    pthread_mutex_lock(&b->sess_mu);
    int free_slot = -1, i;
    for (i = 0; i < BP_SESS_MAX; i++) {
        if (b->sess_h[i].loop == loop) break;
        if (!b->sess_h[i].loop && free_slot < 0) free_slot = i;
    }
    if (i == BP_SESS_MAX) i = free_slot;
    if (i >= 0) {
        b->sess_h[i].fn = fn;
        b->sess_h[i].ud = ud;
        b->sess_h[i].loop = fn ? loop : NULL;
    } else if (fn) {
        ax_log(AX_LOG_ERROR, "redis: more than %d threads: MQTT sessions of one stay there",
               BP_SESS_MAX);
    }
    pthread_mutex_unlock(&b->sess_mu);
}

/* A claim heard ("T"): every thread's gateway lets go, then the R. */
typedef struct heard_job {
    redis_bp *b;
    int pending; /* threads not done (the backplane's loop counts) */
    bool mine;
    bool own; /* this node's claim: no R, the rows are the claimer's */
    char who[24];
    char cid[];
} heard_job;

typedef struct heard_copy { /* to one thread's gateway */
    heard_job *x;
    int slot;
} heard_copy;

static void heard_end(heard_job *x)
{
    redis_bp *b = x->b;
    char key[600], tag[24], msg[600];
    if (x->own) {
        ax_free(x);
        return;
    }
    size_t kl = key_of(x->cid, strlen(x->cid), tag, sizeof tag, key);
    rows_let_go(b, key, kl, x->mine); /* (mine: written before R) */
    if (x->mine) {
        int n = snprintf(msg, sizeof msg, "R %s %s %s", x->who, b->node, x->cid);
        const char *argv[] = {"PUBLISH", b->sess_chan, msg};
        if (n > 0 && (size_t)n < sizeof msg)
            (void)bp__cmd(b, tag, NULL, NULL, 3, argv, NULL); /* (after its rows, on their link) */
    }
    ax_free(x);
}

static void heard_done(ax_loop *loop, void *arg)
{
    heard_job *x = arg;
    (void)loop;
    if (--x->pending == 0) heard_end(x);
}

/* The node is going: the job ends with its last copy, nothing sent. */
static void heard_drop(void *arg)
{
    heard_job *x = arg;
    if (--x->pending == 0) ax_free(x);
}

static void heard_copy_drop(void *arg)
{
    heard_copy *c = arg;
    heard_job *x = c->x;
    ax_free(c);
    (void)ax_loop_post_or(x->b->loop, heard_done, heard_drop, x); /* (outlives the others) */
}

static void heard_run(ax_loop *loop, void *arg)
{
    heard_copy *c = arg;
    heard_job *x = c->x;
    redis_bp *b = x->b;
    pthread_mutex_lock(&b->sess_mu);
    redis_claim_fn fn = b->sess_h[c->slot].loop == loop ? b->sess_h[c->slot].fn : NULL;
    void *ud = b->sess_h[c->slot].ud;
    pthread_mutex_unlock(&b->sess_mu); /* (only this thread takes its handler away) */
    if (fn) fn(ud, x->cid, x->mine);   /* (its rows posted now: before the done) */
    ax_free(c);
    (void)ax_loop_post_or(b->loop, heard_done, heard_drop, x); /* (fails: the node is going) */
}

/* Every thread's gateway but `skip`'s hears of the claim; then heard_end. */
static void heard_all(heard_job *x, ax_loop *skip);

static void sess_notify(redis_bp *b, const char *cid, ax_loop *skip)
{
    size_t cl = strlen(cid);
    heard_job *x = ax_calloc(1, sizeof(*x) + cl + 1);
    if (!x) return;
    x->b = b;
    x->own = true;
    memcpy(x->cid, cid, cl + 1);
    heard_all(x, skip);
}

static void sess_claimed_elsewhere(redis_bp *b, const char *who, const char *cid, bool mine)
{
    size_t cl = strlen(cid);
    heard_job *x = ax_calloc(1, sizeof(*x) + cl + 1);
    if (!x) return;
    x->b = b;
    x->mine = mine;
    snprintf(x->who, sizeof x->who, "%s", who);
    memcpy(x->cid, cid, cl + 1);
    heard_all(x, NULL);
}

static void heard_all(heard_job *x, ax_loop *skip)
{
    redis_bp *b = x->b;
    const char *cid = x->cid;
    bool mine = x->mine;
    x->pending = 1;
    redis_claim_fn here = NULL;
    void *here_ud = NULL;
    pthread_mutex_lock(&b->sess_mu);
    for (int i = 0; i < BP_SESS_MAX; i++) {
        if (!b->sess_h[i].loop || b->sess_h[i].loop == skip) continue;
        if (b->sess_h[i].loop == b->loop) {
            here = b->sess_h[i].fn;
            here_ud = b->sess_h[i].ud;
            continue;
        }
        heard_copy *c = ax_malloc(sizeof(*c));
        if (!c) continue;
        *c = (heard_copy){x, i};
        if (ax_loop_post_or(b->sess_h[i].loop, heard_run, heard_copy_drop, c) == 0)
            x->pending++;
        else
            ax_free(c);
    }
    pthread_mutex_unlock(&b->sess_mu);
    if (here) here(here_ud, cid, mine);
    if (--x->pending == 0) heard_end(x);
}

static int claim_here(redis_bp *b, const char *cid, bool clean, claim_cb cb, void *ud,
                      ax_loop *loop)
{
    size_t cl = strlen(cid);
    if (b->state != BP_UP) return AX_ENOTCONN;
    if (cl > 512) return AX_EINVAL;
    bp_claim *q = ax_calloc(1, sizeof(*q) + 32 + cl + 1);
    if (!q) return AX_ENOMEM;
    q->b = b;
    q->cb = cb;
    q->ud = ud;
    q->clean = clean;
    q->klen = key_of(cid, cl, q->tag, sizeof q->tag, q->key);
    const char *argv[] = {"EVAL", CLAIM_SCRIPT, "1", q->key, b->node, b->sess_chan, cid};
    size_t lens[] = {4, strlen(CLAIM_SCRIPT), 1, q->klen, strlen(b->node), strlen(b->sess_chan),
                     cl};
    int rc = bp__cmd(b, q->tag, on_claimed, q, 7, argv, lens);
    if (rc) {
        ax_free(q);
        return rc;
    }
    q->next = b->claims;
    b->claims = q;
    unsigned o = b->own_n++ % 64; /* (the oldest forgotten: its T was lost) */
    memcpy(b->own[o].tag, q->tag, sizeof q->tag);
    b->own[o].loop = loop;
    return 0;
}

static void ttl_here(redis_bp *b, const char *cid, int64_t ms)
{
    size_t cl = strlen(cid);
    char key[600], tag[24], v[24];
    size_t kl = key_of(cid, cl, tag, sizeof tag, key);
    snprintf(v, sizeof v, "%lld", (long long)ms);
    const char *argv[] = {ms < 0 ? "PERSIST" : "PEXPIRE", key, v};
    size_t lens[] = {strlen(argv[0]), kl, strlen(v)};
    (void)bp__cmd(b, tag, NULL, NULL, ms < 0 ? 2 : 3, argv, lens); /* (set again soon) */
}

bool redis_bp_here(const redis_bp *b)
{
    return pthread_equal(pthread_self(), b->thread);
}

/* "T <claimer> <old> <cid>" or "R <claimer> <from> <cid>" on sess_chan. */
void bp__sess_heard(redis_bp *b, const redisReply *data)
{
    if (data->type != REDIS_REPLY_STRING || data->len < 7) return;
    char kind = data->str[0], who[24], other[24];
    const char *p = data->str + 2, *end = data->str + data->len;
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp || sp - p >= (long)sizeof who) return;
    memcpy(who, p, (size_t)(sp - p));
    who[sp - p] = '\0';
    p = sp + 1;
    if (!(sp = memchr(p, ' ', (size_t)(end - p))) || sp - p >= (long)sizeof other) return;
    memcpy(other, p, (size_t)(sp - p));
    other[sp - p] = '\0';
    const char *cid = sp + 1; /* (the reply's string ends with a NUL) */
    if (kind == 'T' && strcmp(who, b->node) != 0) {
        sess_claimed_elsewhere(b, who, cid, strcmp(other, b->node) == 0);
    } else if (kind == 'T') {
        sess_claimed_here(b, cid);
    } else if (kind == 'R' && strcmp(who, b->node) == 0) {
        for (bp_claim *q = b->claims; q; q = q->next) {
            if (strcmp(cid_of(q), cid) != 0) continue;
            if (q->waiting && strcmp(q->old, other) == 0) {
                claim_read(q);
                return;
            }
            if (!q->answered) snprintf(q->heard, sizeof q->heard, "%s", other);
        }
    }
}

void bp__sess_start(redis_bp *b)
{
    if (b->nshards)
        (void)rlink_cmdv(b->shards[0].sub.rl, NULL, NULL, "SUBSCRIBE", b->sess_chan, NULL);
}

/* An owner that did not answer: go on without it. */
void bp__sess_tick(redis_bp *b, uint64_t now)
{
    for (bp_claim *q = b->claims, *next; q; q = next) {
        next = q->next;
        if (q->waiting && now >= q->until_ms) claim_read(q);
    }
    rows_retry(b, now);
}

void bp__sess_free(redis_bp *b)
{
    while (b->claims)
        claim_end(b->claims, AX_ECANCELED, NULL, 0);
    while (b->rows)
        row_unlink(b->rows);
    hub_map_clear(&b->row_of);
    pthread_mutex_destroy(&b->sess_mu);
}
