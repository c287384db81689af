/* hub.c: topics, the subscription tree, delivery with per-subscriber
 * queues and policies, history and resume, presence.  See hub.h.
 *
 * Subscriptions live in a tree with one level of the filter per node and a
 * hash map of children, so publishing to a/b/c visits at most the nodes
 * a, +, # at each level: the cost does not grow with unrelated topics or
 * filters.  A subscriber whose filters overlap gets a message once (a
 * per-publish stamp).
 *
 * Delivery may make a gateway free subscribers (a kick, a failed write);
 * while a walk is running, frees only mark the subscriber dead, and the
 * memory goes when the outermost walk ends.
 *
 * Threads (`axon serve --threads N`): one hub serves the loops of every
 * thread.  Its state is behind one (recursive) lock; a subscriber belongs
 * to the loop of the thread that made it, and only that thread touches its
 * connection.  A message for a subscriber of another loop is queued in an
 * outbox and posted there (ax_loop_post) when the lock is let go; that
 * loop then pushes it as if it were local.  While such messages are in
 * flight, local ones for the same subscriber are posted behind them, so a
 * subscriber sees each topic in sequence order.  For a subscriber of the
 * caller's own loop whose wire is free, the write itself is deferred to a
 * per-thread list made after the lock is let go (drain()), so no socket
 * write happens under the lock on the publish path (replays and
 * hub_sub_writable() still write under it: one subscriber each).
 *
 * Bounds: at most max_topics topics exist (a publish that would make one
 * more is refused); a topic with no history, no exact subscription and
 * nobody present is freed at the end of the hub call that left it so (a
 * few topics are swept per new topic for history that aged out).  Topics
 * are also in an ordered index, so listing and wildcard replay go from a
 * name cursor instead of walking everything.  A subscriber's filters are
 * in a hash map (O(1) duplicate check, max_filters of them).  A resume
 * runs as a job that writes history only while the wire takes it and goes
 * on from hub_sub_writable(); live messages of topics it has not finished
 * stay in their history until it gets there, so nothing is lost or sent
 * twice. */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "auth.h"
#include "hub.h"
#include "index.h"
#include "map.h"
#include "proto/ws/utf8.h"

typedef struct node node;
typedef struct entry entry;
typedef struct htopic htopic;
typedef struct qnode qnode;
typedef struct rnode rnode;
typedef struct outbox outbox;
typedef struct job job;

#define HUB_FLOORS 1024

struct rnode { /* a message on its way to another loop's subscriber */
    rnode *next;
    hub_sub *s;
    hub_msg *m;
};

/* Messages for one other loop.  One post at a time: what the publishes
 * made meanwhile joins the posted one, so that loop takes them all in one
 * wake-up and each subscriber gets its share in one write. */
struct outbox {
    outbox *next;
    ax_loop *loop;
    hub *h;
    rnode *head, **tail;
    bool posted; /* run_batch() is on its way: it takes head..tail */
};

static __thread ax_loop *bound_loop; /* the loop of this thread (hub_bind_loop) */

struct entry { /* one filter of one subscriber */
    hub_sub *s;
    node *n;
    entry *nprev, *nnext; /* the node's subscribers */
    entry *snext, *sprev; /* the subscriber's filters */
    htopic *room;         /* presence joined through this filter */
    job *job;             /* its replay, while one runs */
    char filter[];
};

struct job {        /* a paced replay: hub_subscribe() with `since` */
    job *next;      /* the subscriber's jobs, run in order */
    entry *e;       /* the filter it replays */
    hub_msg *last;  /* the last message sent of topic `pos`, or NULL */
    uint64_t since; /* the client's: for each topic */
    uint64_t after; /* topic `pos` is sent up to this seq */
    uint64_t gen;   /* topics made later are live only: nothing to replay */
    size_t plen;    /* the filter's bytes no topic it matches lacks */
    bool exact;
    bool began;                  /* topic `pos` is under way (its gap checked) */
    char pos[HUB_MAX_TOPIC + 2]; /* topics named below this are done */
};

struct node {
    node *parent;
    char *key; /* this level, owned by the parent's map entry */
    size_t klen;
    hub_map kids;
    entry *subs;
};

struct htopic {
    hub_inode idx; /* in hub.index, by name */
    char *name;
    size_t len;
    uint64_t last_seq;
    hub_msg *head, *tail; /* history, oldest first */
    size_t n;
    uint64_t untrimmed; /* dropped from memory, not yet from the store */
    const hub_rule *rule;
    hub_map present;   /* name -> count of subscribers present with it */
    uint32_t rooms;    /* entries with it as their room */
    uint64_t born;     /* hub.topic_gen when it was made */
    hub_msg *retained; /* its retained message (hub_pub.retain), or NULL */
    bool reap_queued;
    bool bp_wait; /* resumes wait: the backplane is loading its history */
    htopic *reap_next;
};

struct qnode {
    qnode *next;
    hub_msg *m;
};

/* Field order: pointers, then the smaller fields packed (an idle
 * subscriber's bytes count: docs/scale.md). */
struct hub_sub {
    hub *h;
    const hub_sub_ops *ops;
    void *ud;
    char *name; /* its own copy, or unnamed (""); changed under the lock */
    entry *entries;
    hub_map *filters; /* filter -> entry, once it has more than FEW_FILTERS */
    job *jobs, **jobs_tail;
    qnode *qhead, **qtail;
    ax_loop *loop;            /* the loop that owns the subscriber's connection */
    const auth_identity *who; /* what it may read; NULL: everything (borrowed) */
    hub_sub *grave_next;
    size_t qbytes, budget;
    uint64_t stamp, id;
    uint32_t nfilters; /* entries in the list */
    uint32_t refs;     /* the owner's, and one per message in flight to it */
    uint32_t inflight;
    bool blocked, dead;
};

struct hub {
    ax_loop *loop;
    hub_rule *rules;
    int nrules;
    hub_rule fallback;
    size_t budget, max_payload;
    node root;
    hub_map topics;
    hub_inode *index; /* the topics by name */
    size_t max_topics, max_filters;
    uint64_t floors[HUB_FLOORS]; /* by name hash: the largest last_seq of a freed topic */
    uint64_t topic_gen;          /* topics made so far */
    uint64_t pub_born;           /* the born of the topic being published to */
    htopic *reap;                /* topics to free when the outermost call ends */
    char sweep_pos[HUB_MAX_TOPIC + 1];
    hub_store *store;
    hub_stats st;
    int walking;
    uint64_t stamp, next_id;
    hub_sub *grave;
    pthread_mutex_t mu; /* recursive: callbacks may call back in */
    int depth;
    outbox *outboxes;
    void (*write_begin)(void), (*write_end)(void); /* hub_set_write_hooks() */
    uint64_t seq_base;           /* new topics count from here (after a crash: store.c) */
    const hub_backplane_ops *bp; /* the cluster numbers and delivers (redis.c) */
    void *bp_ud;
};

static ax_loop *current_loop(const hub *h)
{
    return bound_loop ? bound_loop : h->loop;
}

void hub_bind_loop(ax_loop *loop)
{
    bound_loop = loop;
}

void hub_set_write_hooks(hub *h, void (*begin)(void), void (*end)(void))
{
    __atomic_store_n(&h->write_end, end, __ATOMIC_RELEASE);
    __atomic_store_n(&h->write_begin, begin, __ATOMIC_RELEASE);
}

static void lock(hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->depth++;
}

static void run_batch(ax_loop *loop, void *arg);
static void reap_now(hub *h);
static void drain(hub *h);

/* Writes decided under the lock and made after it is let go, by the thread
 * that decided them: each is for a subscriber of this thread's loop whose
 * wire was free (no queue, not blocked).  In order; `requeue` marks one
 * whose wire filled up before its turn (queued when the lock is taken
 * again, behind the ones before it). */
typedef struct pending {
    hub_sub *s; /* a reference */
    hub_msg *m; /* a reference */
    bool requeue;
} pending;

#define OUTQ_INLINE 64 /* past this many, an allocation freed once drained */
static _Thread_local pending outq_inline[OUTQ_INLINE];
static _Thread_local struct {
    pending *v;
    size_t n, cap;
    bool draining;
} outq;

/* Post what is waiting for other loops, in order, before letting go. */
static void flush_outboxes(hub *h)
{
    for (outbox *o = h->outboxes; o; o = o->next) {
        if (!o->head || o->posted) continue;
        if (ax_loop_post(o->loop, run_batch, o) != 0) {
            h->st.dropped += 1; /* the loop is gone or no memory: tried again next time */
            continue;
        }
        o->posted = true;
    }
}

static void unlock(hub *h)
{
    if (h->depth == 1 && h->reap && !h->walking) reap_now(h);
    if (h->depth == 1) flush_outboxes(h);
    bool outer = --h->depth == 0;
    pthread_mutex_unlock(&h->mu);
    if (outer && outq.n && !outq.draining) drain(h);
}

static const char *GAP_TEXT = "history does not reach back that far";

const char *hub_strerror(int err)
{
    switch (err) {
    case HUB_ETOPICS:
        return "too many topics: the server's limit (max_topics) is reached";
    case HUB_EFILTERS:
        return "too many subscriptions on this connection (max_subscriptions)";
    }
    return ax_strerror(err);
}

/* ---- messages ------------------------------------------------------------ */

hub_msg *hub__msg_new(const char *topic, size_t tlen, const char *sender, const void *payload,
                      size_t len)
{
    return hub__msg_new_ext(topic, tlen, sender, payload, len, NULL, 0);
}

hub_msg *hub__msg_new_ext(const char *topic, size_t tlen, const char *sender, const void *payload,
                          size_t len, const void *ext, size_t ext_len)
{
    size_t sl = sender ? strnlen(sender, HUB_MAX_NAME) : 0;
    hub_msg *m = ax_calloc(1, sizeof(*m) + tlen + 1 + sl + 1 + len + 1 + ext_len);
    if (!m) return NULL;
    if (ext_len) {
        m->ext = (char *)(m + 1) + tlen + 1 + sl + 1 + len + 1;
        memcpy(m->ext, ext, ext_len);
        m->ext_len = ext_len;
    }
    m->refs = 1;
    m->topic = (char *)(m + 1);
    memcpy(m->topic, topic, tlen);
    m->topic_len = tlen;
    m->sender = m->topic + tlen + 1;
    if (sl) memcpy(m->sender, sender, sl);
    m->sender_len = sl;
    m->payload = m->sender + sl + 1;
    if (len) memcpy(m->payload, payload, len);
    m->payload_len = len;
    return m;
}

hub_msg *hub_msg_ref(hub_msg *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void hub_msg_unref(hub_msg *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (int i = 0; i < HUB_ENC_SLOTS; i++)
        ax_slice_unref(m->enc[i]);
    ax_free(m);
}

ax_slice *hub_msg_encoding(hub_msg *m, int slot, ax_slice *(*encode)(const hub_msg *m, void *ud),
                           void *ud)
{
    if (slot < 0 || slot >= HUB_ENC_SLOTS) return NULL;
    ax_slice *have = __atomic_load_n(&m->enc[slot], __ATOMIC_ACQUIRE);
    if (have) return have;
    /* threads deliver outside the lock: the first encoding made wins */
    ax_slice *mine = encode(m, ud);
    if (!mine) return NULL;
    if (__atomic_compare_exchange_n(&m->enc[slot], &have, mine, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return mine;
    ax_slice_unref(mine);
    return have;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names ----------------------------------------------------------------- */

static bool name_ok(const char *t, size_t len, bool wild)
{
    if (len == 0 || len > HUB_MAX_TOPIC) return false;
    int levels = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c == 0x7f) return false;
        if (c == '/') {
            if (++levels > HUB_MAX_LEVELS) return false;
            continue;
        }
        if (c == '+' || c == '#') {
            if (!wild) return false;
            bool alone = (i == 0 || t[i - 1] == '/') && (i + 1 == len || t[i + 1] == '/');
            if (!alone || (c == '#' && i + 1 != len)) return false;
        }
    }
    return ax_utf8_valid(t, len);
}

bool hub_topic_valid(const char *t, size_t len)
{
    return name_ok(t, len, false);
}

bool hub_filter_valid(const char *f, size_t len)
{
    return name_ok(f, len, true);
}

bool hub_filter_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) return false;
    for (;;) {
        if (f[0] == '#') return true;
        const char *fe = strchr(f, '/'), *te = strchr(t, '/');
        size_t fl = fe ? (size_t)(fe - f) : strlen(f), tl = te ? (size_t)(te - t) : strlen(t);
        if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0)) return false;
        if (!fe && !te) return true;
        if (!te) return fe[1] == '#' && fe[2] == '\0'; /* "a/#" matches "a" */
        if (!fe) return false;
        f = fe + 1;
        t = te + 1;
    }
}

/* ---- rules and topics -------------------------------------------------------- */

static const hub_rule *rule_for(hub *h, const char *topic)
{
    for (int i = 0; i < h->nrules; i++)
        if (hub_filter_match(h->rules[i].pattern, topic)) return &h->rules[i];
    return &h->fallback;
}

static htopic *topic_get(hub *h, const char *name, size_t len)
{
    return hub_map_get(&h->topics, name, len);
}

static htopic *topic_of(hub_inode *n)
{
    return n ? (htopic *)(void *)((char *)n - offsetof(htopic, idx)) : NULL;
}

static void history_trim(hub *h, htopic *t, int64_t now);
static node *node_path(hub *h, const char *filter, bool make);

/* A freed topic's seq floor is kept by a hash of its name (FNV-1a), so
 * what freed topics leave behind is a fixed table, not their names. */
static size_t floor_of(const char *name, size_t len)
{
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < len; i++)
        x = (x ^ (unsigned char)name[i]) * 16777619u;
    return x % HUB_FLOORS;
}

static bool topic_idle(hub *h, const htopic *t)
{
    if (t->head || t->present.n || t->rooms || t->retained) return false;
    node *n = node_path(h, t->name, false);
    return !n || !n->subs;
}

/* Free `t` when the outermost hub call ends (nothing holds it then), if it
 * is still idle. */
static void topic_consider(hub *h, htopic *t)
{
    if (t->reap_queued || !topic_idle(h, t)) return;
    t->reap_queued = true;
    t->reap_next = h->reap;
    h->reap = t;
}

static void reap_now(hub *h)
{
    while (h->reap) {
        htopic *t = h->reap;
        h->reap = t->reap_next;
        t->reap_queued = false;
        if (!topic_idle(h, t)) continue;
        uint64_t *floor = &h->floors[floor_of(t->name, t->len)];
        if (t->last_seq > *floor) *floor = t->last_seq;
        hub_index_remove(&h->index, &t->idx);
        hub_map_clear(&t->present);
        hub_map_del(&h->topics, t->name, t->len); /* frees the name */
        ax_free(t);
        h->st.topics--;
    }
}

/* Visit `n` topics from the sweep cursor on (wrapping): drop history that
 * aged out, and queue the topics left idle. */
static void sweep(hub *h, int n, int64_t now)
{
    while (n-- > 0) {
        htopic *t = topic_of(hub_index_after(h->index, h->sweep_pos, false));
        if (!t) {
            if (!h->sweep_pos[0]) return;
            h->sweep_pos[0] = '\0';
            continue;
        }
        memcpy(h->sweep_pos, t->name, t->len + 1);
        history_trim(h, t, now);
        topic_consider(h, t);
    }
}

/* The topic, made when new; `bounded`: not past max_topics (HUB_ETOPICS). */
static htopic *topic_make(hub *h, const char *name, size_t len, bool bounded, int *err)
{
    htopic *t = topic_get(h, name, len);
    if (t) return t;
    if (bounded) {
        int64_t now = now_ms();
        sweep(h, 4, now);
        if (h->topics.n >= h->max_topics) sweep(h, 256, now);
        if (h->depth == 1 && !h->walking) reap_now(h);
        if (h->topics.n >= h->max_topics) {
            *err = HUB_ETOPICS;
            return NULL;
        }
    }
    t = ax_calloc(1, sizeof(*t));
    hub_map_ent *e;
    if (!t || hub_map_put(&h->topics, name, len, t, &e) != 0) {
        ax_free(t);
        *err = AX_ENOMEM;
        return NULL;
    }
    t->name = e->key;
    t->len = len;
    t->last_seq = h->floors[floor_of(name, len)]; /* above any a freed one of this name had */
    t->rule = rule_for(h, t->name);
    t->idx.key = t->name;
    t->born = ++h->topic_gen;
    hub_index_insert(&h->index, &t->idx);
    hub_map_init(&t->present);
    h->st.topics++;
    return t;
}

static void topic_free(hub_map_ent *e, void *ud)
{
    htopic *t = e->value;
    (void)ud;
    while (t->head) {
        hub_msg *m = t->head;
        t->head = m->next;
        hub_msg_unref(m);
    }
    hub_msg_unref(t->retained);
    hub_map_clear(&t->present);
    ax_free(t);
}

/* Drop history beyond the topic's count and age; the store follows in
 * batches (a DELETE per publish would double its work). */
static void history_trim(hub *h, htopic *t, int64_t now)
{
    const hub_rule *r = t->rule;
    int64_t oldest = r->history_age_s ? now - (int64_t)r->history_age_s * 1000 : INT64_MIN;
    uint64_t upto = 0;
    while (t->head && (t->n > r->history_count || t->head->time_ms < oldest)) {
        hub_msg *m = t->head;
        t->head = m->next;
        if (!t->head) t->tail = NULL;
        t->n--;
        upto = m->seq;
        t->untrimmed++;
        hub_msg_unref(m);
    }
    if (upto && h->store && (t->untrimmed >= 64 || !t->head)) {
        hub_store_trim(h->store, t->name, upto);
        t->untrimmed = 0;
    }
}

static void history_add(htopic *t, hub_msg *m)
{
    m->next = NULL;
    if (t->tail)
        t->tail->next = m;
    else
        t->head = m;
    t->tail = m;
    t->n++;
}

/* ---- subscriber queues and policies ---------------------------------------------- */

static size_t msg_cost(const hub_msg *m)
{
    return m->payload_len + m->topic_len + m->sender_len + 64;
}

static void q_drop_head(hub_sub *s)
{
    qnode *q = s->qhead;
    s->qhead = q->next;
    if (!s->qhead) s->qtail = &s->qhead;
    s->qbytes -= msg_cost(q->m);
    hub_msg_unref(q->m);
    ax_free(q);
}

static void q_clear(hub_sub *s)
{
    while (s->qhead)
        q_drop_head(s);
}

/* Keep only the newest queued message of m's topic (m is last). */
static void q_keep_latest(hub_sub *s, const hub_msg *m)
{
    for (qnode **p = &s->qhead; *p && (*p)->m != m;) {
        qnode *q = *p;
        if (q->m->topic_len == m->topic_len && memcmp(q->m->topic, m->topic, m->topic_len) == 0) {
            *p = q->next;
            s->qbytes -= msg_cost(q->m);
            hub_msg_unref(q->m);
            ax_free(q);
            s->h->st.dropped++;
            s->h->st.dropped_latest++;
            continue;
        }
        p = &q->next;
    }
    if (!s->qhead) s->qtail = &s->qhead;
    for (qnode *q = s->qhead; q; q = q->next)
        if (!q->next) s->qtail = &q->next;
}

static void over_budget(hub_sub *s, const hub_msg *m)
{
    hub *h = s->h;
    int policy = m->policy;
    if (policy == HUB_DISCONNECT) {
        s->dead = true; /* no more deliveries; the gateway frees it */
        h->st.kicked++;
        q_clear(s);
        s->ops->kick(s, "too slow: output budget exceeded", s->ud);
        return;
    }
    while (s->qbytes > s->budget && s->qhead && s->qhead->next) {
        q_drop_head(s);
        h->st.dropped++;
        if (policy == HUB_DROP_OLDEST)
            h->st.dropped_oldest++;
        else
            h->st.dropped_latest++;
    }
}

static void sub_push_local(hub_sub *s, hub_msg *m);
static void walk_end(hub *h);

static char unnamed[1];

/* A subscriber's name: its own copy, or `unnamed` for none; NULL when out
 * of memory. */
static char *name_dup(const char *name)
{
    size_t n = name ? strnlen(name, HUB_MAX_NAME) : 0;
    char *p = n ? ax_malloc(n + 1) : unnamed;
    if (p && n) {
        memcpy(p, name, n);
        p[n] = '\0';
    }
    return p;
}

static void name_free(char *name)
{
    if (name != unnamed) ax_free(name);
}

static void sub_unref(hub_sub *s)
{
    if (--s->refs == 0) {
        name_free(s->name);
        ax_free(s);
    }
}

/* A push for a subscriber of another loop (or one with messages on their
 * way to it): into that loop's outbox. */
static void sub_push_remote(hub_sub *s, hub_msg *m)
{
    hub *h = s->h;
    outbox *o = h->outboxes;
    while (o && o->loop != s->loop)
        o = o->next;
    rnode *r = ax_malloc(sizeof(*r));
    if (!o && r && (o = ax_calloc(1, sizeof(*o)))) {
        o->loop = s->loop;
        o->h = h;
        o->tail = &o->head;
        o->next = h->outboxes;
        h->outboxes = o;
    }
    if (!o || !r) {
        ax_free(r);
        h->st.dropped++;
        return;
    }
    r->next = NULL;
    r->s = s;
    r->m = hub_msg_ref(m);
    s->refs++;
    s->inflight++;
    *o->tail = r;
    o->tail = &r->next;
}

static void run_batch(ax_loop *loop, void *arg)
{
    outbox *o = arg;
    hub *h = o->h;
    (void)loop;
    lock(h);
    rnode *head = o->head;
    o->head = NULL;
    o->tail = &o->head;
    o->posted = false;
    h->walking++;
    while (head) {
        rnode *r = head;
        head = r->next;
        r->s->inflight--;
        if (!r->s->dead) sub_push_local(r->s, r->m);
        hub_msg_unref(r->m);
        sub_unref(r->s);
        ax_free(r);
    }
    walk_end(h);
    unlock(h);
}

/* Is m of a topic a replay of s has not finished?  Then it waits in the
 * topic's history for the replay. */
static bool held_back(const hub_sub *s, const hub_msg *m)
{
    if (m->kind != HUB_MSG) return false;
    for (const job *j = s->jobs; j; j = j->next)
        if (s->h->pub_born <= j->gen && strcmp(m->topic, j->pos) >= 0 &&
            hub_filter_match(j->e->filter, m->topic))
            return true;
    return false;
}

/* May s be handed m?  Every path to a client passes here: live delivery,
 * presence events, history and resume replay. */
static inline bool may_read(const hub_sub *s, const hub_msg *m)
{
    if (!s->who) /* no auth: private topics are still their named owner's */
        return m->topic[0] != 'u' || auth_private_may_read(s->name, m->topic);
    return s->who->read_all || auth_may_read(s->who, m->topic);
}

static void sub_push(hub_sub *s, hub_msg *m)
{
    if (s->dead || (s->jobs && held_back(s, m)) || !may_read(s, m)) return;
    if (s->loop != current_loop(s->h) || s->inflight) {
        sub_push_remote(s, m);
        return;
    }
    sub_push_local(s, m);
}

static void sub_queue(hub_sub *s, hub_msg *m);

/* The wire is free: write after the lock is let go (drain()). */
static bool defer_write(hub_sub *s, hub_msg *m)
{
    if (!outq.v) {
        outq.v = outq_inline;
        outq.cap = OUTQ_INLINE;
    }
    if (outq.n == outq.cap) {
        bool first = outq.v == outq_inline;
        pending *v = ax_realloc(first ? NULL : outq.v, outq.cap * 2 * sizeof(*v));
        if (!v) return false;
        if (first) memcpy(v, outq_inline, sizeof outq_inline);
        outq.v = v;
        outq.cap *= 2;
    }
    outq.v[outq.n++] = (pending){.s = s, .m = hub_msg_ref(m)};
    s->refs++;
    s->h->st.delivered++;
    return true;
}

/* Now, under the lock: for a replay, which stops when the wire is full. */
static void sub_push_now(hub_sub *s, hub_msg *m)
{
    if (s->dead) return;
    if (!s->blocked && !s->qhead) {
        s->h->st.delivered++;
        if (!s->ops->write(s, m, s->ud)) s->blocked = true;
        return;
    }
    sub_queue(s, m);
}

static void sub_push_local(hub_sub *s, hub_msg *m)
{
    if (s->dead) return;
    if (!s->blocked && !s->qhead) {
        if (defer_write(s, m)) return;
        s->h->st.delivered++; /* no memory to defer it: now, under the lock */
        if (!s->ops->write(s, m, s->ud)) s->blocked = true;
        return;
    }
    sub_queue(s, m);
}

/* Make the writes deferred under the lock (unlock() calls this once the
 * lock is let go): the socket writes of a publish hold no lock.  Only this
 * thread touches its subscribers' wire state (blocked, the queue), so it
 * reads it here unlocked; references, stats and queues are dealt with
 * under the lock again after. */
static void drain(hub *h)
{
    void (*begin)(void) = __atomic_load_n(&h->write_begin, __ATOMIC_ACQUIRE);
    void (*end)(void) = __atomic_load_n(&h->write_end, __ATOMIC_ACQUIRE);
    outq.draining = true;
    if (begin) begin();
    for (size_t i = 0; i < outq.n; i++) { /* writes may add more (i re-reads) */
        hub_sub *s = outq.v[i].s;
        if (s->dead) continue;
        if (s->blocked || s->qhead) {
            outq.v[i].requeue = true;
            continue;
        }
        if (!s->ops->write(s, outq.v[i].m, s->ud)) s->blocked = true;
    }
    if (end) end();
    lock(h);
    h->walking++;
    size_t n = outq.n;
    for (size_t i = 0; i < n; i++) {
        pending p = outq.v[i];
        if (p.requeue && !p.s->dead) {
            h->st.delivered--;
            sub_queue(p.s, p.m);
        }
        hub_msg_unref(p.m);
        sub_unref(p.s);
    }
    memmove(outq.v, outq.v + n, (outq.n - n) * sizeof(*outq.v));
    outq.n -= n;
    if (!outq.n && outq.v != outq_inline) { /* after a large fan-out: do not keep it */
        ax_free(outq.v);
        outq.v = NULL;
        outq.cap = 0;
    }
    outq.draining = false;
    walk_end(h);
    unlock(h); /* drains again what walk_end() and the queues added */
}

static void sub_queue(hub_sub *s, hub_msg *m)
{
    qnode *q = ax_malloc(sizeof(*q));
    if (!q) {
        s->h->st.dropped++;
        return;
    }
    q->next = NULL;
    q->m = hub_msg_ref(m);
    *s->qtail = q;
    s->qtail = &q->next;
    s->qbytes += msg_cost(m);
    /* keep-latest holds one message per topic whenever the wire is behind */
    if (m->policy == HUB_KEEP_LATEST) q_keep_latest(s, m);
    if (s->qbytes > s->budget) over_budget(s, m);
}

static void jobs_run(hub_sub *s);

void hub_sub_writable(hub_sub *s)
{
    lock(s->h);
    s->blocked = false;
    s->h->walking++;
    while (s->qhead && !s->blocked && !s->dead) {
        hub_msg *m = hub_msg_ref(s->qhead->m);
        q_drop_head(s);
        s->h->st.delivered++;
        if (!s->ops->write(s, m, s->ud)) s->blocked = true;
        hub_msg_unref(m);
    }
    if (s->jobs) jobs_run(s);
    walk_end(s->h);
    unlock(s->h);
}

size_t hub_sub_queued(const hub_sub *s)
{
    return __atomic_load_n(&s->qbytes, __ATOMIC_RELAXED);
}

void hub_sub_set_budget(hub_sub *s, size_t bytes)
{
    s->budget = bytes;
}

/* ---- the subscription tree --------------------------------------------------------- */

static void walk_end(hub *h);

static void deliver_list(hub *h, entry *e, hub_msg *m)
{
    for (; e; e = e->nnext) {
        hub_sub *s = e->s;
        if (s->stamp == h->stamp) continue; /* overlapping filters: once */
        s->stamp = h->stamp;
        sub_push(s, m);
    }
}

static void walk(hub *h, node *n, const char **lv, const size_t *ll, int i, int nl, hub_msg *m)
{
    bool dollar = i == 0 && m->topic[0] == '$';
    node *hash = dollar ? NULL : hub_map_get(&n->kids, "#", 1);
    if (hash) deliver_list(h, hash->subs, m);
    if (i == nl) {
        deliver_list(h, n->subs, m);
        return;
    }
    node *plus = dollar ? NULL : hub_map_get(&n->kids, "+", 1);
    if (plus) walk(h, plus, lv, ll, i + 1, nl, m);
    node *exact = hub_map_get(&n->kids, lv[i], ll[i]);
    if (exact && exact != plus && exact != hash) walk(h, exact, lv, ll, i + 1, nl, m);
}

static void deliver(hub *h, hub_msg *m)
{
    const char *lv[HUB_MAX_LEVELS];
    size_t ll[HUB_MAX_LEVELS];
    int nl = 0;
    const char *p = m->topic;
    for (;;) {
        const char *slash = strchr(p, '/');
        lv[nl] = p;
        ll[nl++] = slash ? (size_t)(slash - p) : strlen(p);
        if (!slash || nl == HUB_MAX_LEVELS) break;
        p = slash + 1;
    }
    h->walking++;
    h->stamp++;
    walk(h, &h->root, lv, ll, 0, nl, m);
    walk_end(h);
}

static node *node_path(hub *h, const char *filter, bool make)
{
    node *n = &h->root;
    const char *p = filter;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        node *k = hub_map_get(&n->kids, p, l);
        if (!k) {
            hub_map_ent *e;
            if (!make || !(k = ax_calloc(1, sizeof(*k)))) return NULL;
            if (hub_map_put(&n->kids, p, l, k, &e) != 0) {
                ax_free(k);
                return NULL;
            }
            k->parent = n;
            k->key = e->key;
            k->klen = l;
            hub_map_init(&k->kids);
        }
        n = k;
        if (!slash) return n;
        p = slash + 1;
    }
}

static void node_prune(node *n)
{
    while (n->parent && !n->subs && n->kids.n == 0) {
        node *up = n->parent;
        hub_map_clear(&n->kids);
        hub_map_del(&up->kids, n->key, n->klen); /* frees the key */
        ax_free(n);
        n = up;
    }
}

static void node_free_all(hub_map_ent *e, void *ud)
{
    node *n = e->value;
    (void)ud;
    hub_map_each(&n->kids, node_free_all, NULL);
    hub_map_clear(&n->kids);
    ax_free(n);
}

/* ---- presence ----------------------------------------------------------------------- */

static void presence_event(hub *h, htopic *room, int kind, const char *name)
{
    if (h->bp) h->bp->present(h->bp_ud, room->name); /* (its names changed) */
    hub_msg *m = hub__msg_new(room->name, room->len, name, NULL, 0);
    if (!m) return;
    m->policy = (int8_t)room->rule->policy;
    m->kind = (uint8_t)kind;
    m->seq = room->last_seq;
    m->time_ms = now_ms();
    deliver(h, m);
    hub_msg_unref(m);
}

static void presence_join(hub *h, htopic *room, const char *name)
{
    size_t nl = strlen(name);
    uintptr_t c = (uintptr_t)hub_map_get(&room->present, name, nl);
    if (hub_map_put(&room->present, name, nl, (void *)(c + 1), NULL) != 0) return;
    if (c == 0) presence_event(h, room, HUB_JOIN, name);
}

static void presence_leave(hub *h, htopic *room, const char *name)
{
    size_t nl = strlen(name);
    uintptr_t c = (uintptr_t)hub_map_get(&room->present, name, nl);
    if (c == 0) return;
    if (c > 1) {
        hub_map_put(&room->present, name, nl, (void *)(c - 1), NULL);
        return;
    }
    hub_map_del(&room->present, name, nl);
    presence_event(h, room, HUB_LEAVE, name);
}

/* ---- subscribers --------------------------------------------------------------------- */

hub_sub *hub_sub_new(hub *h, const hub_sub_ops *ops, void *ud, const char *name)
{
    hub_sub *s = ax_calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->h = h;
    s->ops = ops;
    s->ud = ud;
    s->qtail = &s->qhead;
    s->jobs_tail = &s->jobs;
    s->budget = h->budget;
    s->loop = current_loop(h);
    s->refs = 1;
    s->name = name_dup(name);
    if (!s->name) {
        ax_free(s);
        return NULL;
    }
    lock(h);
    s->id = ++h->next_id;
    h->st.subscribers++;
    unlock(h);
    return s;
}

void *hub_sub_data(const hub_sub *s)
{
    return s->ud;
}

uint64_t hub_sub_id(const hub_sub *s)
{
    return s->id;
}

const char *hub_sub_name(const hub_sub *s)
{
    return s->name[0] ? s->name : NULL;
}

bool hub_sub_replaying(const hub_sub *s)
{
    lock(s->h);
    bool r = s->jobs != NULL;
    unlock(s->h);
    return r;
}

void hub_sub_set_identity(hub_sub *s, const auth_identity *id)
{
    lock(s->h);
    s->who = id;
    unlock(s->h);
}

int hub_sub_rename(hub_sub *s, const char *name)
{
    if (!name || !*name || strlen(name) > HUB_MAX_NAME) return AX_EINVAL;
    char *copy = name_dup(name), *old;
    if (!copy) return AX_ENOMEM;
    lock(s->h);
    for (entry *e = s->entries; e; e = e->snext)
        if (e->room && s->name[0]) presence_leave(s->h, e->room, s->name);
    old = s->name;
    s->name = copy;
    for (entry *e = s->entries; e; e = e->snext)
        if (e->room) presence_join(s->h, e->room, s->name);
    unlock(s->h);
    name_free(old);
    return 0;
}

static void job_end(hub_sub *s, job *j);

static void entry_unlink(hub_sub *s, entry *e)
{
    hub *h = s->h;
    size_t fl = strlen(e->filter);
    if (s->filters) hub_map_del(s->filters, e->filter, fl);
    s->nfilters--;
    if (e->sprev)
        e->sprev->snext = e->snext;
    else
        s->entries = e->snext;
    if (e->snext) e->snext->sprev = e->sprev;
    if (e->job) job_end(s, e->job);
    if (e->room) {
        if (s->name[0]) presence_leave(h, e->room, s->name);
        e->room->rooms--;
        topic_consider(h, e->room);
    }
    if (e->nprev)
        e->nprev->nnext = e->nnext;
    else
        e->n->subs = e->nnext;
    if (e->nnext) e->nnext->nprev = e->nprev;
    node *n = e->n;
    if (h->bp && !n->subs) h->bp->need(h->bp_ud, e->filter, false);
    node_prune(n);
    htopic *t = topic_get(h, e->filter, fl); /* an exact subscription kept it */
    if (t) topic_consider(h, t);
    ax_free(e);
}

/* A subscriber with a few filters finds them by walking its list; the map
 * is made past FEW_FILTERS (the idle client with one subscription needs
 * no map entry, 48 bytes). */
#define FEW_FILTERS 8

static entry *filter_find(const hub_sub *s, const char *f, size_t fl)
{
    if (s->filters) return hub_map_get(s->filters, f, fl);
    for (entry *e = s->entries; e; e = e->snext)
        if (strncmp(e->filter, f, fl) == 0 && e->filter[fl] == '\0') return e;
    return NULL;
}

static void filters_free(hub_sub *s)
{
    if (!s->filters) return;
    hub_map_clear(s->filters);
    ax_free(s->filters);
    s->filters = NULL;
}

/* Note a new entry (not in the list yet); 0 or AX_ENOMEM. */
static int filter_add(hub_sub *s, entry *e, size_t fl)
{
    if (!s->filters) {
        if (s->nfilters < FEW_FILTERS) return 0;
        if (!(s->filters = ax_malloc(sizeof(*s->filters)))) return AX_ENOMEM;
        hub_map_init(s->filters);
        for (entry *x = s->entries; x; x = x->snext)
            if (hub_map_put(s->filters, x->filter, strlen(x->filter), x, NULL) != 0) {
                filters_free(s);
                return AX_ENOMEM;
            }
    }
    return hub_map_put(s->filters, e->filter, fl, e, NULL);
}

static void sub_release(hub_sub *s)
{
    while (s->entries)
        entry_unlink(s, s->entries);
    filters_free(s);
    q_clear(s);
    sub_unref(s); /* messages on their way to it hold it a little longer */
}

static void walk_end(hub *h)
{
    if (--h->walking > 0) return;
    while (h->grave) {
        hub_sub *s = h->grave;
        h->grave = s->grave_next;
        h->walking++; /* leave events deliver too */
        sub_release(s);
        h->walking--;
    }
}

void hub_sub_free(hub_sub *s)
{
    if (!s) return;
    hub *h = s->h;
    lock(h);
    h->st.subscribers--;
    s->dead = true;
    s->grave_next = h->grave;
    h->grave = s;
    h->walking++;
    walk_end(h);
    unlock(h);
}

/* ---- paced replay ---------------------------------------------------------------------- */

static void job_end(hub_sub *s, job *j)
{
    for (job **p = &s->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            if (!*p) s->jobs_tail = p;
            break;
        }
    j->e->job = NULL;
    hub_msg_unref(j->last);
    ax_free(j);
}

static void push_gap(hub_sub *s, htopic *t, uint64_t first)
{
    if (s->who ? !auth_may_read(s->who, t->name) : !auth_private_may_read(s->name, t->name)) return;
    hub_msg *g = hub__msg_new(t->name, t->len, NULL, GAP_TEXT, strlen(GAP_TEXT));
    if (!g) return;
    g->kind = HUB_GAP;
    g->policy = (int8_t)t->rule->policy;
    g->seq = first;
    g->time_ms = now_ms();
    sub_push_now(s, g);
    hub_msg_unref(g);
}

/* The next message of `t` for the job (a gap notice first when history no
 * longer reaches back), or NULL when it has sent them all. */
static hub_msg *job_next(hub_sub *s, job *j, htopic *t)
{
    /* history leaves from its head only: `last` is still in it while its
     * seq is not below the head's, and then its successor is the next */
    if (j->last && t->head && j->last->seq >= t->head->seq) return j->last->next;
    if (!j->began) history_trim(s->h, t, now_ms());
    j->began = true;
    uint64_t first = t->head ? t->head->seq : t->last_seq + 1;
    if (j->after + 1 < first && j->after < t->last_seq) {
        push_gap(s, t, first);
        j->after = first - 1; /* said once */
    }
    hub_msg *m = t->head;
    while (m && m->seq <= j->after)
        m = m->next;
    return m;
}

/* The job's next topic: the first at or above `pos` that its filter matches. */
static htopic *job_topic(hub *h, job *j)
{
    const char *f = j->e->filter;
    if (j->exact) {
        htopic *t = topic_get(h, f, strlen(f));
        return t && t->born <= j->gen && strcmp(t->name, j->pos) >= 0 ? t : NULL;
    }
    htopic *t = topic_of(hub_index_after(h->index, j->pos, true));
    while (t && strncmp(t->name, f, j->plen) == 0 &&
           (t->born > j->gen || !hub_filter_match(f, t->name)))
        t = topic_of(hub_index_after(h->index, t->name, false));
    return t && strncmp(t->name, f, j->plen) == 0 ? t : NULL;
}

static void job_at(job *j, const char *name, size_t len)
{
    memcpy(j->pos, name, len + 1);
    hub_msg_unref(j->last);
    j->last = NULL;
    j->after = j->since;
    j->began = false;
}

/* Replay while the wire takes it; true when the job is done. */
static bool job_step(hub_sub *s, job *j)
{
    while (!s->dead && !s->blocked && !s->qhead) {
        htopic *t = job_topic(s->h, j);
        if (!t) return true;
        if (t->bp_wait && j->exact) return false; /* hub_backplane_ready() goes on */
        if (strcmp(t->name, j->pos) != 0) job_at(j, t->name, t->len);
        hub_msg *m = job_next(s, j, t);
        if (!m) { /* this topic is done: on to the names above it */
            char next[HUB_MAX_TOPIC + 2];
            memcpy(next, t->name, t->len);
            next[t->len] = '\x01'; /* below any longer name: no topic has bytes < 0x20 */
            next[t->len + 1] = '\0';
            job_at(j, next, t->len + 1);
            continue;
        }
        if (s->dead || s->blocked) break; /* a gap notice filled the wire */
        hub_msg_unref(j->last);
        j->last = hub_msg_ref(m);
        j->after = m->seq;
        if (may_read(s, m)) sub_push_now(s, m);
    }
    return false;
}

static void jobs_run(hub_sub *s)
{
    while (s->jobs && job_step(s, s->jobs))
        job_end(s, s->jobs);
}

static int job_start(hub_sub *s, entry *e, int64_t since, bool exact)
{
    job *j = ax_calloc(1, sizeof(*j));
    if (!j) return AX_ENOMEM;
    const char *f = e->filter;
    size_t plen = strcspn(f, "+#");
    if (f[plen] == '#' && plen > 0) plen--; /* "a/#" matches "a" too */
    j->e = e;
    j->since = j->after = (uint64_t)since;
    j->gen = s->h->topic_gen;
    j->exact = exact;
    j->plen = exact ? strlen(f) : plen;
    memcpy(j->pos, f, j->plen);
    j->pos[j->plen] = '\0';
    e->job = j;
    *s->jobs_tail = j;
    s->jobs_tail = &j->next;
    if (s->jobs == j) jobs_run(s);
    return 0;
}

static int subscribe_check(const hub_sub *s, const char *filter, size_t fl)
{
    if (!hub_filter_valid(filter, fl)) return AX_EINVAL;
    if (filter_find(s, filter, fl)) return 0;
    return s->nfilters >= s->h->max_filters ? HUB_EFILTERS : 0;
}

static void bp_need(hub *h, const char *filter, size_t fl);

static int subscribe_locked(hub_sub *s, const char *filter, int64_t since, bool present)
{
    hub *h = s->h;
    size_t fl = strlen(filter);
    int rc = subscribe_check(s, filter, fl);
    if (rc != 0 || filter_find(s, filter, fl)) return rc;
    node *n = node_path(h, filter, true);
    entry *e = n ? ax_calloc(1, sizeof(*e) + fl + 1) : NULL;
    if (e) memcpy(e->filter, filter, fl + 1);
    if (!e || filter_add(s, e, fl) != 0) {
        ax_free(e);
        if (n) node_prune(n);
        return AX_ENOMEM;
    }
    if (h->bp && !n->subs) bp_need(h, filter, fl);
    s->nfilters++;
    e->s = s;
    e->n = n;
    e->nnext = n->subs;
    if (n->subs) n->subs->nprev = e;
    n->subs = e;
    e->snext = s->entries;
    if (s->entries) s->entries->sprev = e;
    s->entries = e;
    bool exact = hub_topic_valid(filter, fl);
    h->walking++;
    if (since >= 0 && (rc = job_start(s, e, since, exact)) != 0) entry_unlink(s, e);
    if (!rc && present && exact && !s->dead) { /* a name given later joins then */
        e->room = topic_make(h, filter, fl, true, &rc);
        if (e->room) e->room->rooms++;
        if (e->room && s->name[0]) presence_join(h, e->room, s->name);
        if (!e->room) entry_unlink(s, e);
    }
    walk_end(h);
    return rc;
}

int hub_subscribe_check(const hub_sub *s, const char *filter)
{
    lock(s->h);
    int rc = subscribe_check(s, filter, strlen(filter));
    unlock(s->h);
    return rc;
}

int hub_subscribe(hub_sub *s, const char *filter, int64_t since, bool present)
{
    lock(s->h);
    int rc = subscribe_locked(s, filter, since, present);
    unlock(s->h);
    return rc;
}

int hub_unsubscribe(hub_sub *s, const char *filter)
{
    int rc = AX_ENOENT;
    lock(s->h);
    entry *e = filter_find(s, filter, strlen(filter));
    if (e) {
        s->h->walking++;
        entry_unlink(s, e);
        walk_end(s->h);
        rc = 0;
    }
    unlock(s->h);
    return rc;
}

/* ---- publishing ------------------------------------------------------------------------ */

uint64_t hub_publish(hub *h, const char *name, const char *sender, const void *payload, size_t len,
                     int *err)
{
    return hub_publish_from(h, NULL, name, sender, payload, len, err);
}

uint64_t hub_publish_from(hub *h, const hub_sub *origin, const char *name, const char *sender,
                          const void *payload, size_t len, int *err)
{
    hub_pub p = {.origin = origin,
                 .topic = name,
                 .sender = sender,
                 .payload = payload,
                 .len = len,
                 .qos = 1};
    return hub_publish_pub(h, &p, NULL, err); /* no wait: the backplane keeps no record */
}

static uint64_t bp_publish(hub *h, hub_msg *m, uint64_t *ticket, int *err);

uint64_t hub_publish_ticket(hub *h, const hub_sub *origin, const char *name, const char *sender,
                            const void *payload, size_t len, uint64_t *ticket, int *err)
{
    hub_pub p = {.origin = origin,
                 .topic = name,
                 .sender = sender,
                 .payload = payload,
                 .len = len,
                 .qos = 1};
    return hub_publish_pub(h, &p, ticket, err);
}

/* ---- gateway state and retained messages in the store ------------------------------------ */

bool hub_durable(const hub *h)
{
    return h->store != NULL;
}

int hub_state_put(hub *h, const char *ns, const void *key, size_t klen, const void *val,
                  size_t vlen, uint64_t *ticket)
{
    uint64_t tk = 0;
    int rc = h->store ? hub_store_state(h->store, val ? HUB_STATE_PUT : HUB_STATE_DEL, ns, key,
                                        klen, val, vlen, &tk)
                      : 0;
    if (ticket) *ticket = tk;
    return rc;
}

int hub_state_clear(hub *h, const char *ns, const void *prefix, size_t plen, uint64_t *ticket)
{
    uint64_t tk = 0;
    int rc =
        h->store ? hub_store_state(h->store, HUB_STATE_CLEAR, ns, prefix, plen, NULL, 0, &tk) : 0;
    if (ticket) *ticket = tk;
    return rc;
}

int hub_state_load(hub *h, const char *ns,
                   void (*cb)(const void *key, size_t klen, const void *val, size_t vlen, void *ud),
                   void *ud)
{
    return h->store ? hub_store_state_load(h->store, ns, cb, ud) : 0;
}

#define PACK_FIXED (8 + 8 + 4 + 1 + 1 + 2 + 1 + 4)

size_t hub_msg_pack(const hub_msg *m, uint8_t *out, size_t cap)
{
    size_t n = PACK_FIXED + m->topic_len + m->sender_len + m->ext_len + m->payload_len;
    if (!out || n > cap) return n;
    uint8_t *p = hub_put_be(out, m->seq, 8);
    p = hub_put_be(p, (uint64_t)m->time_ms, 8);
    p = hub_put_be(p, m->expiry_s, 4);
    *p++ = m->qos;
    *p++ = m->retain;
    p = hub_put_be(p, m->topic_len, 2);
    memcpy(p, m->topic, m->topic_len);
    p += m->topic_len;
    *p++ = (uint8_t)m->sender_len;
    memcpy(p, m->sender, m->sender_len);
    p += m->sender_len;
    p = hub_put_be(p, m->ext_len, 4);
    if (m->ext_len) memcpy(p, m->ext, m->ext_len);
    p += m->ext_len;
    if (m->payload_len) memcpy(p, m->payload, m->payload_len);
    return n;
}

hub_msg *hub_msg_unpack(const uint8_t *p, size_t n)
{
    if (n < PACK_FIXED) return NULL;
    size_t tl = (size_t)hub_get_be(p + 22, 2), sl, el;
    if (n < PACK_FIXED + tl) return NULL;
    sl = p[24 + tl];
    if (n < PACK_FIXED + tl + sl) return NULL;
    el = (size_t)hub_get_be(p + 25 + tl + sl, 4);
    if (n < PACK_FIXED + tl + sl + el || sl > HUB_MAX_NAME) return NULL;
    char sender[HUB_MAX_NAME + 1];
    memcpy(sender, p + 25 + tl, sl);
    sender[sl] = '\0';
    const uint8_t *ext = p + 29 + tl + sl, *payload = ext + el;
    hub_msg *m = hub__msg_new_ext((const char *)p + 24, tl, sender, payload,
                                  n - (size_t)(payload - p), ext, el);
    if (!m) return NULL;
    m->seq = hub_get_be(p, 8);
    m->time_ms = (int64_t)hub_get_be(p + 8, 8);
    m->expiry_s = (uint32_t)hub_get_be(p + 16, 4);
    m->qos = p[20];
    m->retain = p[21] != 0;
    m->binary = !ax_utf8_valid(m->payload, m->payload_len);
    return m;
}

#define RETAIN_NS "retain"

/* The topic's retained message becomes m (an empty one clears it), in
 * the store too; *ticket: the later of the two writes. */
static void retain_set(hub *h, htopic *t, hub_msg *m, uint64_t *ticket)
{
    hub_msg_unref(t->retained);
    t->retained = m->payload_len ? hub_msg_ref(m) : NULL;
    if (!h->store) return;
    uint64_t tk = 0;
    size_t n = m->payload_len ? hub_msg_pack(m, NULL, 0) : 0;
    uint8_t *b = n ? ax_malloc(n) : NULL;
    if (b) hub_msg_pack(m, b, n);
    if (b || !n) hub_state_put(h, RETAIN_NS, t->name, t->len, b, n, &tk);
    ax_free(b);
    if (tk > *ticket) *ticket = tk;
}

static void load_retained(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    hub *h = ud;
    int err;
    hub_msg *m = hub_msg_unpack(val, vlen);
    htopic *t =
        m && m->topic_len == klen ? topic_make(h, m->topic, m->topic_len, false, &err) : NULL;
    if (t) {
        m->policy = (int8_t)t->rule->policy;
        hub_msg_unref(t->retained);
        t->retained = hub_msg_ref(m);
    }
    hub_msg_unref(m);
}

uint64_t hub_publish_pub(hub *h, const hub_pub *p, uint64_t *ticket, int *err)
{
    uint64_t *wanted = ticket, unused; /* NULL: the caller will not wait */
    if (!ticket) ticket = &unused;
    *ticket = 0;
    const char *name = p->topic;
    size_t tl = strlen(name), len = p->len;
    if (!hub_topic_valid(name, tl)) {
        *err = AX_EINVAL;
        return 0;
    }
    if (len > h->max_payload) {
        *err = AX_EMSGSIZE;
        return 0;
    }
    hub_msg *m = hub__msg_new_ext(name, tl, p->sender, p->payload, len, p->ext, p->ext_len);
    if (!m) {
        *err = AX_ENOMEM;
        return 0;
    }
    m->binary = !ax_utf8_valid(p->payload, len);
    m->origin = p->origin ? p->origin->id : 0;
    m->qos = p->qos;
    m->retain = p->retain;
    m->expiry_s = p->expiry_s;
    if (h->bp) return bp_publish(h, m, wanted, err); /* (retained: hub_backplane_retained) */
    lock(h);
    htopic *t = topic_make(h, name, tl, true, err);
    uint64_t seq = 0;
    int rc = t ? 0 : *err; /* (topic_make() said why) */
    if (t) {
        if (t->last_seq < h->seq_base) t->last_seq = h->seq_base;
        m->seq = t->last_seq + 1;
        m->policy = (int8_t)t->rule->policy;
        m->time_ms = now_ms();
        /* queued for the store before the number is used: a full queue
         * refuses the publish and the number stays free */
        rc = h->store ? hub_store_put(h->store, m, ticket) : 0;
    }
    if (rc) {
        *err = rc;
    } else {
        seq = t->last_seq = m->seq;
        if (m->retain) retain_set(h, t, m, ticket);
        history_add(t, hub_msg_ref(m));
        history_trim(h, t, m->time_ms);
        h->st.published++;
        h->pub_born = t->born;
        deliver(h, m);
        topic_consider(h, t); /* a rule that keeps no history */
    }
    unlock(h);
    hub_msg_unref(m);
    return seq;
}

static bool expired(const hub_msg *m, int64_t now)
{
    return m->expiry_s && now - m->time_ms >= (int64_t)m->expiry_s * 1000;
}

size_t hub_retained(hub_sub *s, const char *filter, void (*cb)(hub_msg *m, void *ud), void *ud)
{
    hub *h = s->h;
    size_t n = 0, fl = strlen(filter);
    size_t plen = strcspn(filter, "+#");
    if (filter[plen] == '#' && plen > 0) plen--; /* "a/#" matches "a" too */
    int64_t now = now_ms();
    lock(h);
    if (hub_topic_valid(filter, fl)) {
        htopic *t = topic_get(h, filter, fl);
        if (t && t->retained && !expired(t->retained, now) && may_read(s, t->retained)) {
            cb(t->retained, ud);
            n++;
        }
        unlock(h);
        return n;
    }
    char pos[HUB_MAX_TOPIC + 1];
    memcpy(pos, filter, plen);
    pos[plen] = '\0';
    for (htopic *t = topic_of(hub_index_after(h->index, pos, true));
         t && strncmp(t->name, filter, plen) == 0;
         t = topic_of(hub_index_after(h->index, t->name, false))) {
        hub_msg *m = t->retained;
        if (m && hub_filter_match(filter, t->name) && !expired(m, now) && may_read(s, m)) {
            cb(m, ud);
            n++;
        }
    }
    unlock(h);
    return n;
}

int hub_ack_wait(hub *h, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status))
{
    a->seq = 0;
    if (h->bp) return h->bp->wait(h->bp_ud, a, ticket, cb, current_loop(h));
    if (!h->store) return AX_EINVAL; /* no ticket without a store */
    return hub_store_wait(h->store, current_loop(h), a, ticket, cb);
}

void hub_ack_cancel(hub *h, hub_ack *a)
{
    if (h->bp)
        h->bp->cancel(h->bp_ud, a);
    else if (h->store)
        hub_store_cancel(h->store, a);
}

/* ---- queries ------------------------------------------------------------------------------ */

uint64_t hub_history(hub *h, const char *name, uint64_t since, size_t max,
                     void (*cb)(hub_msg *m, void *ud), void *ud, uint64_t *first_kept)
{
    lock(h);
    htopic *t = topic_get(h, name, strlen(name));
    if (first_kept) *first_kept = 0;
    if (!t) {
        unlock(h);
        return 0;
    }
    history_trim(h, t, now_ms());
    topic_consider(h, t);
    if (first_kept) *first_kept = t->head ? t->head->seq : t->last_seq + 1;
    size_t n = 0;
    for (hub_msg *m = t->head; m; m = m->next)
        n += m->seq > since;
    for (hub_msg *m = t->head; m; m = m->next) {
        if (m->seq <= since) continue;
        if (n-- > max) continue; /* the newest `max` */
        cb(m, ud);
    }
    uint64_t last = t->last_seq;
    unlock(h);
    return last;
}

uint64_t hub_history_window(hub *h, const char *name, uint64_t since, size_t max,
                            uint64_t *first_kept, uint64_t *from)
{
    uint64_t last = 0;
    *first_kept = 0;
    *from = since;
    lock(h);
    htopic *t = topic_get(h, name, strlen(name));
    if (t) {
        history_trim(h, t, now_ms());
        topic_consider(h, t);
        *first_kept = t->head ? t->head->seq : t->last_seq + 1;
        size_t n = 0;
        for (hub_msg *m = t->head; m; m = m->next)
            n += m->seq > since;
        for (hub_msg *m = t->head; m && n > max; m = m->next) /* skip to the newest `max` */
            if (m->seq > since) {
                *from = m->seq;
                n--;
            }
        last = t->last_seq;
    }
    unlock(h);
    return last;
}

size_t hub_history_more(hub *h, const char *name, hub_msg **pos, uint64_t *from, uint64_t upto,
                        size_t max, void (*cb)(hub_msg *m, void *ud), void *ud)
{
    size_t n = 0;
    lock(h);
    htopic *t = topic_get(h, name, strlen(name));
    hub_msg *m = NULL;
    if (t && *pos && t->head && (*pos)->seq >= t->head->seq) /* still in the history */
        m = (*pos)->next;
    else if (t)
        for (m = t->head; m && m->seq <= *from; m = m->next)
            ;
    for (; m && m->seq <= upto && n < max; m = m->next, n++) {
        cb(m, ud);
        *from = m->seq;
        hub_msg_unref(*pos);
        *pos = hub_msg_ref(m);
    }
    unlock(h);
    return n;
}

size_t hub_topics(hub *h, const char *after, size_t max,
                  void (*cb)(const char *topic, uint64_t last_seq, size_t subs, void *ud), void *ud,
                  char *next)
{
    char pos[HUB_MAX_TOPIC + 1];
    size_t given = 0, visits = max * 4 + 64; /* topics nobody used are passed over */
    snprintf(pos, sizeof pos, "%s", after ? after : "");
    lock(h);
    htopic *t = topic_of(hub_index_after(h->index, pos, false));
    for (; t && given < max && visits > 0; visits--) {
        if (t->last_seq || t->present.n) { /* somebody has written or is there */
            node *n = node_path(h, t->name, false);
            size_t subs = 0;
            for (entry *x = n ? n->subs : NULL; x; x = x->nnext)
                subs++;
            cb(t->name, t->last_seq, subs, ud);
            given++;
        }
        memcpy(pos, t->name, t->len + 1);
        t = topic_of(hub_index_after(h->index, t->name, false));
    }
    if (next) snprintf(next, HUB_MAX_TOPIC + 1, "%s", t ? pos : "");
    unlock(h);
    return given;
}

typedef struct presence_ctx {
    void (*cb)(const char *name, void *ud);
    void *ud;
} presence_ctx;

static void presence_each(hub_map_ent *e, void *ud)
{
    presence_ctx *c = ud;
    c->cb(e->key, c->ud);
}

void hub_presence_local(hub *h, const char *room, void (*cb)(const char *name, void *ud), void *ud)
{
    presence_ctx c = {cb, ud};
    lock(h);
    htopic *t = topic_get(h, room, strlen(room));
    if (t) hub_map_each(&t->present, presence_each, &c);
    unlock(h);
}

typedef struct remote_ctx {
    presence_ctx c;
    htopic *t;
} remote_ctx;

static void presence_remote(const char *name, void *ud)
{
    remote_ctx *r = ud;
    if (!r->t || !hub_map_get(&r->t->present, name, strlen(name))) r->c.cb(name, r->c.ud);
}

void hub_presence(hub *h, const char *room, void (*cb)(const char *name, void *ud), void *ud)
{
    remote_ctx r = {{cb, ud}, NULL};
    lock(h);
    r.t = topic_get(h, room, strlen(room));
    if (r.t) hub_map_each(&r.t->present, presence_each, &r.c);
    if (h->bp) h->bp->presence(h->bp_ud, room, presence_remote, &r); /* not those here */
    unlock(h);
}

const hub_stats *hub_stats_get(hub *h)
{
    static __thread hub_stats copy; /* a snapshot, for the calling thread */
    lock(h);
    if (h->store) hub_store_stats(h->store, &h->st);
    copy = h->st;
    unlock(h);
    return &copy;
}

ax_loop *hub_loop(const hub *h)
{
    return h->loop;
}

/* ---- the hub --------------------------------------------------------------------------------- */

static void load_topic(const char *name, uint64_t last, bool stored, void *ud)
{
    hub *h = ud;
    int err;
    size_t len = strlen(name);
    if (!stored) { /* no history left: only its number lives on, as a freed topic's */
        uint64_t *floor = &h->floors[floor_of(name, len)];
        if (last > *floor) *floor = last;
        return;
    }
    htopic *t = topic_make(h, name, len, false, &err);
    if (t && last > t->last_seq) t->last_seq = last;
}

static void load_msg(hub_msg *m, void *ud)
{
    hub *h = ud;
    int err;
    htopic *t = topic_make(h, m->topic, m->topic_len, false, &err);
    if (!t) {
        hub_msg_unref(m);
        return;
    }
    m->binary = !ax_utf8_valid(m->payload, m->payload_len);
    m->policy = (int8_t)t->rule->policy;
    history_add(t, m);
}

static void load_history(hub_map_ent *e, void *ud)
{
    hub *h = ud;
    htopic *t = e->value;
    hub_store_recent(h->store, t->name, t->rule->history_count, load_msg, h);
    history_trim(h, t, now_ms());
}

hub *hub_new(ax_loop *loop, const hub_opts *o, char *why, size_t why_len)
{
    hub *h = ax_calloc(1, sizeof(*h));
    if (!h) goto fail;
    pthread_mutexattr_t ma; /* first: hub_free destroys it */
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&h->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    h->loop = loop;
    h->budget = o->sub_budget ? o->sub_budget : 1024 * 1024;
    h->max_payload = o->max_payload ? o->max_payload : 1024 * 1024;
    h->max_topics = o->max_topics ? o->max_topics : 100000;
    h->max_filters = o->max_filters ? o->max_filters : 10000;
    h->fallback = (hub_rule){"#", 1000, 0, HUB_DISCONNECT};
    if (o->nrules) {
        h->rules = ax_malloc((size_t)o->nrules * sizeof(*h->rules));
        if (!h->rules) goto fail;
        memcpy(h->rules, o->rules, (size_t)o->nrules * sizeof(*h->rules));
        h->nrules = o->nrules;
    }
    hub_map_init(&h->root.kids);
    hub_map_init(&h->topics);
    if (o->data_dir) {
        hub_store_opts so = {o->data_dir, o->fsync_mode, o->store_queue_max, o->store_queue_bytes};
        h->store = hub_store_open(loop, &so, why, why_len);
        if (!h->store) goto fail;
        h->seq_base = hub_store_seq_base(h->store);
        if (hub_store_topics(h->store, load_topic, h) != 0) {
            snprintf(why, why_len, "cannot read the history in %s", o->data_dir);
            goto fail;
        }
        hub_map_each(&h->topics, load_history, h);
        if (hub_store_state_load(h->store, RETAIN_NS, load_retained, h) != 0) {
            snprintf(why, why_len, "cannot read the retained messages in %s", o->data_dir);
            goto fail;
        }
    }
    return h;
fail:
    if (!h || !why[0]) snprintf(why, why_len, "out of memory");
    hub_free(h);
    return NULL;
}

void hub_free(hub *h)
{
    if (!h) return;
    if (h->store) hub_store_close(h->store);
    hub_map_each(&h->root.kids, node_free_all, NULL);
    hub_map_clear(&h->root.kids);
    hub_map_each(&h->topics, topic_free, NULL);
    hub_map_clear(&h->topics);
    while (h->outboxes) {
        outbox *o = h->outboxes;
        h->outboxes = o->next;
        ax_free(o);
    }
    pthread_mutex_destroy(&h->mu);
    ax_free(h->rules);
    ax_free(h);
}

/* ---- the backplane (hub.h; redis.c) -----------------------------------------------------------
 */

void hub_set_backplane(hub *h, const hub_backplane_ops *ops, void *ud)
{
    h->bp = ops;
    h->bp_ud = ud;
}

/* The first subscriber of `filter` on this node: the backplane starts
 * receiving it, and a topic's resumes wait until its history is loaded. */
static void bp_need(hub *h, const char *filter, size_t fl)
{
    int err;
    htopic *t = hub_topic_valid(filter, fl) ? topic_make(h, filter, fl, true, &err) : NULL;
    if (t) t->bp_wait = true;
    h->bp->need(h->bp_ud, filter, true);
}

static uint64_t bp_publish(hub *h, hub_msg *m, uint64_t *ticket, int *err)
{
    lock(h);
    htopic *t = topic_get(h, m->topic, m->topic_len);
    uint64_t last = t ? t->last_seq : h->floors[floor_of(m->topic, m->topic_len)];
    uint32_t history = t ? t->rule->history_count : rule_for(h, m->topic)->history_count;
    unlock(h);
    m->time_ms = now_ms();
    int rc = h->bp->publish(h->bp_ud, m, last, history, ticket);
    hub_msg_unref(m);
    if (rc) *err = rc;
    return rc ? 0 : last + 1;
}

int hub_backplane_deliver(hub *h, hub_msg *m, int how)
{
    int rc = HUB_BP_OK, err = 0;
    lock(h);
    htopic *t = topic_make(h, m->topic, m->topic_len, true, &err);
    if (!t) {
        rc = HUB_BP_DROP;
        h->st.dropped++;
    } else if (m->seq <= t->last_seq) {
        rc = HUB_BP_DUP;
    } else if (t->last_seq && m->seq > t->last_seq + 1 && how == HUB_BPD_IN_ORDER) {
        rc = HUB_BP_GAP;
    } else {
        h->pub_born = t->born;
        if (t->last_seq && m->seq > t->last_seq + 1 && how == HUB_BPD_FORCE) { /* lost: say so */
            hub_msg *g = hub__msg_new(t->name, t->len, NULL, GAP_TEXT, strlen(GAP_TEXT));
            if (g) {
                g->kind = HUB_GAP;
                g->policy = (int8_t)t->rule->policy;
                g->seq = m->seq;
                g->time_ms = m->time_ms;
                deliver(h, g);
                hub_msg_unref(g);
            }
        }
        m->policy = (int8_t)t->rule->policy;
        t->last_seq = m->seq;
        history_add(t, hub_msg_ref(m));
        history_trim(h, t, now_ms());
        h->st.published++;
        if (how != HUB_BPD_HISTORY) deliver(h, m);
    }
    if (t) topic_consider(h, t);
    unlock(h);
    return rc;
}

void hub_backplane_retained(hub *h, hub_msg *m)
{
    int err;
    lock(h);
    htopic *t = topic_make(h, m->topic, m->topic_len, true, &err);
    if (t && (!t->retained || t->retained->seq < m->seq)) {
        m->policy = (int8_t)t->rule->policy;
        hub_msg_unref(t->retained);
        t->retained = m->payload_len ? hub_msg_ref(m) : NULL;
    }
    if (t) topic_consider(h, t);
    unlock(h);
}

void hub_backplane_presence(hub *h, const char *room, const char *name, bool joined)
{
    lock(h);
    htopic *t = topic_get(h, room, strlen(room));
    if (t && !hub_map_get(&t->present, name, strlen(name))) { /* (here too: no change) */
        hub_msg *m = hub__msg_new(t->name, t->len, name, NULL, 0);
        if (m) {
            m->policy = (int8_t)t->rule->policy;
            m->kind = (uint8_t)(joined ? HUB_JOIN : HUB_LEAVE);
            m->seq = t->last_seq;
            m->time_ms = now_ms();
            deliver(h, m);
            hub_msg_unref(m);
        }
    }
    unlock(h);
}

uint64_t hub_backplane_last(hub *h, const char *topic)
{
    lock(h);
    htopic *t = topic_get(h, topic, strlen(topic));
    uint64_t last = t ? t->last_seq : 0;
    unlock(h);
    return last;
}

static void bp_jobs_run(ax_loop *loop, void *arg)
{
    hub_sub *s = arg;
    hub *h = s->h;
    (void)loop;
    lock(h);
    h->walking++;
    if (!s->dead && s->jobs) jobs_run(s);
    walk_end(h);
    sub_unref(s);
    unlock(h);
}

void hub_backplane_ready(hub *h, const char *topic)
{
    size_t tl = strlen(topic);
    lock(h);
    htopic *t = topic_get(h, topic, tl);
    node *n = t && t->bp_wait ? node_path(h, topic, false) : NULL;
    if (t) t->bp_wait = false;
    h->walking++;
    for (entry *e = n ? n->subs : NULL; e; e = e->nnext) {
        hub_sub *s = e->s;
        if (!e->job || s->dead) continue;
        s->refs++;
        if (s->loop == current_loop(h)) {
            jobs_run(s);
            sub_unref(s);
        } else if (ax_loop_post(s->loop, bp_jobs_run, s) != 0) {
            sub_unref(s);
        }
    }
    walk_end(h);
    if (t) topic_consider(h, t);
    unlock(h);
}
