/* redis_index.c: the topic index (redis_int.h, docs/cluster.md "Topic
 * index"): which topics were published lately, whichever node published
 * them, so that a wildcard filter resumed on a node (an MQTT session that
 * moved) finds the topics no node here had heard of.
 *
 * The publish script (redis_pub.c) adds the topic to a sorted set, its
 * score the message's stamp (Redis's time in µs, rising strictly per
 * set), in the same slot as the topic's keys so
 * the script stays atomic: one Redis has one set, "axon:ix"; a cluster one
 * per slot, "axon:{ix<n>}:ix", <n> the first number whose tag "ix<n>"
 * falls in that slot (bp__ix_init).  Each set keeps its most recently
 * published topics (BP_INDEX_MAX, BP_INDEX_SLOT_MAX per slot).
 *
 * A read (bp__topics) first makes the node receive the filter's live
 * messages (its PSUBSCRIBE, followed as a visit), and once Redis has
 * confirmed that subscription reads the sets: a topic published before
 * the subscription took effect is in the index by then (the script added
 * it with the message), one published after comes live: nothing falls
 * between.  From a stamp (hub_point: an MQTT session that moved), the
 * topics published after it ("(stamp"); else from a time in ms, which
 * every stamp is above (a row of an older node: more topics than needed,
 * their messages are picked by time).  One Redis: ZRANGEBYSCORE of the set; a cluster: the same of
 * each slot's set, on the master this node knows holds the slot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

#define BP_IX_WAIT_MS 5000 /* a read not answered by then: answered empty */

typedef struct bp_ixq {
    struct bp_ixq *next;
    redis_bp *b;
    void (*cb)(void *cbud, char **names, size_t n);
    void *cbud;
    ax_loop *loop;
    hub_point from;
    uint64_t since_ms; /* monotonic: asked */
    bool reading;      /* sent to Redis: `left` answers to come */
    bool done;         /* answered (freed when no answer is due) */
    size_t left;
    char **names;
    size_t n, cap;
    char filter[];
} bp_ixq;

int bp__ix_init(redis_bp *b)
{
    if (!(b->ixtag = ax_malloc(BP_SLOTS * sizeof(*b->ixtag)))) return -1;
    memset(b->ixtag, 0xff, BP_SLOTS * sizeof(*b->ixtag));
    size_t left = BP_SLOTS;
    for (uint32_t n = 0; left; n++) { /* ~170,000 tries: a few ms, once */
        char tag[16];
        int tl = snprintf(tag, sizeof tag, "ix%u", n);
        unsigned slot = redis_key_slot(tag, (size_t)tl);
        if (b->ixtag[slot] == UINT32_MAX) {
            b->ixtag[slot] = n;
            left--;
        }
    }
    return 0;
}

static void ix_slot_key(const redis_bp *b, unsigned slot, char *out, size_t cap)
{
    snprintf(out, cap, "axon:{ix%u}:ix", b->ixtag[slot]);
}

void bp__ix_key(redis_bp *b, const char *topic, char *out, size_t cap)
{
    if (b->cluster)
        ix_slot_key(b, bp__topic_slot(topic), out, cap);
    else
        snprintf(out, cap, "axon:ix");
}

/* ---- answering ----------------------------------------------------------------------------- */

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ax_free(names[i]);
    ax_free(names);
}

static void ix_call(ax_loop *loop, void *arg)
{
    bp_ixq *q = arg;
    (void)loop;
    q->cb(q->cbud, q->names, q->n);
    names_free(q->names, q->n);
    ax_free(q);
}

/* A read (ix_run) or an answer (ix_call) posted to a loop freed before it
 * ran: answered empty (the filter resumes from what the node has). */
static void ix_drop(void *arg)
{
    bp_ixq *q = arg;
    q->cb(q->cbud, NULL, 0);
    names_free(q->names, q->n);
    ax_free(q);
}

static void ix_unlink(redis_bp *b, bp_ixq *q)
{
    for (bp_ixq **p = &b->ixq; *p; p = &(*p)->next)
        if (*p == q) {
            *p = q->next;
            return;
        }
}

/* The answer goes to the asker's loop; the request leaves the list (the
 * Redis answers still due find it by `done`: a copy goes, it stays). */
static void ix_answer(redis_bp *b, bp_ixq *q, bool ok)
{
    if (q->done) return;
    q->done = true;
    bp_ixq *a = q;
    if (q->left) { /* answers are due to q: hand a copy */
        if (!(a = ax_malloc(sizeof(*a) + strlen(q->filter) + 1))) return;
        memcpy(a, q, sizeof(*a) + strlen(q->filter) + 1);
        q->names = NULL;
        q->n = q->cap = 0;
    } else {
        ix_unlink(b, q);
    }
    if (!ok) {
        names_free(a->names, a->n);
        a->names = NULL;
        a->n = 0;
    }
    if (b->freeing || ax_loop_post_or(a->loop, ix_call, ix_drop, a) != 0) ix_call(a->loop, a);
}

static void ix_add(bp_ixq *q, const char *name, size_t len)
{
    char topic[HUB_MAX_TOPIC + 1];
    if (len > HUB_MAX_TOPIC || q->n >= BP_INDEX_READ_MAX) return;
    memcpy(topic, name, len);
    topic[len] = '\0';
    if (!hub_topic_valid(topic, len) || !hub_filter_match(q->filter, topic)) return;
    if (q->n == q->cap) {
        char **nn = ax_realloc(q->names, (q->cap * 2 + 8) * sizeof(*nn));
        if (!nn) return;
        q->names = nn;
        q->cap = q->cap * 2 + 8;
    }
    if ((q->names[q->n] = ax_malloc(len + 1))) memcpy(q->names[q->n++], topic, len + 1);
}

static void on_ix_reply(rlink *rl, redisReply *r, void *priv)
{
    bp_ixq *q = priv;
    bp_link *l;
    redis_bp *b = q->b;
    /* (a cluster: a slot that moved since the node read the slots
     * answers MOVED or ASK: its set is read where it went, not now) */
    bool moved = r && r->type == REDIS_REPLY_ERROR &&
                 (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0);
    bool ok = moved || (bp__ok(rl, r, &l) && r->type == REDIS_REPLY_ARRAY);
    q->left--;
    if (q->done) { /* answered already (the link went down, or too late) */
        if (!q->left) {
            ix_unlink(b, q);
            names_free(q->names, q->n);
            ax_free(q);
        }
        return;
    }
    for (size_t i = 0; ok && !moved && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            ix_add(q, r->element[i]->str, (size_t)r->element[i]->len);
    if (!ok) {
        if (r && r->type == REDIS_REPLY_ERROR)
            ax_log(AX_LOG_WARN, "redis %s: reading the topic index: %s", b->url_shown, r->str);
        ix_answer(b, q, false);
    } else if (!q->left) {
        ix_answer(b, q, true);
    }
}

/* A cluster master's sets: one read per slot it holds, as this node
 * knows them (pipelined: ~5,500 small commands a master, interleaved
 * with the others' commands rather than one long script). */
static int ix_send_shard(redis_bp *b, bp_ixq *q, size_t shard, const char *from)
{
    bp_shard *sh = &b->shards[shard];
    if (!sh->cmd.up) return AX_ENOTCONN;
    for (unsigned s = 0; s < BP_SLOTS; s++) {
        if (b->slots[s] != shard) continue;
        char key[32];
        ix_slot_key(b, s, key, sizeof key);
        const char *argv[] = {"ZRANGEBYSCORE", key, from, "+inf"};
        int rc = rlink_cmd(sh->cmd.rl, on_ix_reply, q, 4, argv, NULL);
        if (rc != 0) return rc;
        q->left++;
    }
    return 0;
}

static void ix_send(redis_bp *b, bp_ixq *q)
{
    char from[24];
    if (q->from.stamp)
        snprintf(from, sizeof from, "(%llu", (unsigned long long)q->from.stamp);
    else
        snprintf(from, sizeof from, "%lld", (long long)(q->from.from_ms < 0 ? 0 : q->from.from_ms));
    q->reading = true;
    int rc = 0;
    if (!b->cluster) {
        const char *argv[] = {"ZRANGEBYSCORE", "axon:ix", from, "+inf"};
        rc = bp__cmd(b, NULL, on_ix_reply, q, 4, argv, NULL);
        if (rc == 0) q->left++;
    } else {
        for (size_t i = 0; i < b->nshards && rc == 0; i++)
            rc = ix_send_shard(b, q, i, from);
    }
    if (rc != 0 || !q->left) ix_answer(b, q, rc == 0);
}

/* Redis confirmed the PSUBSCRIBE of `glob`: the reads waiting for it go. */
void bp__ix_psubscribed(redis_bp *b, const char *glob)
{
    for (need *n = b->list; n; n = n->next)
        if (!n->exact && strcmp(n->chan, glob) == 0) n->psub_ok = true;
    for (bp_ixq *q = b->ixq, *next; q; q = next) {
        next = q->next;
        if (q->reading || q->done) continue;
        need *n = hub_map_get(&b->needs, q->filter, strlen(q->filter));
        if (n && n->psub_ok) ix_send(b, q);
    }
}

/* ---- asking ------------------------------------------------------------------------------ */

static void ix_start(redis_bp *b, bp_ixq *q)
{
    q->next = b->ixq;
    b->ixq = q;
    need *n = b->state == BP_UP ? bp__need_make(b, q->filter, false) : NULL;
    if (!n) {
        ix_answer(b, q, false); /* (Redis unreachable: what this node has) */
        return;
    }
    uint64_t until = bp__mono_ms() + BP_VISIT_MS; /* (until its subscriber comes) */
    if (n->visit_until < until) n->visit_until = until;
    if (n->psub_ok) ix_send(b, q);
}

static void ix_run(ax_loop *loop, void *arg)
{
    bp_ixq *q = arg;
    (void)loop;
    ix_start(q->b, q);
}

bool bp__topics(void *ud, const char *filter, const hub_point *from,
                void (*cb)(void *cbud, char **names, size_t n), void *cbud, ax_loop *loop)
{
    redis_bp *b = ud;
    size_t fl = strlen(filter);
    bp_ixq *q = ax_calloc(1, sizeof(*q) + fl + 1);
    if (!q) return false;
    q->b = b;
    q->cb = cb;
    q->cbud = cbud;
    q->loop = loop;
    q->from = *from;
    q->since_ms = bp__mono_ms();
    memcpy(q->filter, filter, fl + 1);
    if (redis_bp_here(b)) {
        ix_start(b, q);
    } else if (ax_loop_post_or(b->loop, ix_run, ix_drop, q) != 0) {
        ax_free(q);
        return false;
    }
    return true;
}

/* Reads that wait too long (Redis down, the subscription never
 * confirmed) are answered empty: the filter resumes from what the node
 * has. */
void bp__ix_tick(redis_bp *b, uint64_t now)
{
    for (bp_ixq *q = b->ixq, *next; q; q = next) {
        next = q->next;
        if (!q->done && (b->state != BP_UP || now - q->since_ms > BP_IX_WAIT_MS))
            ix_answer(b, q, false);
    }
}

void bp__ix_free(redis_bp *b)
{
    while (b->ixq) {
        bp_ixq *q = b->ixq;
        b->ixq = q->next;
        if (!q->done) q->cb(q->cbud, NULL, 0);
        names_free(q->names, q->n);
        ax_free(q);
    }
}
