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
 * outbox and posted there (ax_loop_post) at the end of the poster's loop
 * iteration (at once from a thread with no loop), one post for all its
 * publishes; that loop then pushes it as if it were local.  While such
 * messages are in flight, local ones for the same subscriber are posted
 * behind them, so a subscriber sees each topic in sequence order.  For a
 * subscriber of the caller's own loop whose wire is free, the write itself
 * is deferred to a per-thread list made after the lock is let go (drain()),
 * so no socket write happens under the lock on the publish path (replays
 * and hub_sub_writable() still write under it: one subscriber each).
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
#include "hub_internal.h"

static __thread ax_loop *bound_loop; /* the loop of this thread (hub_bind_loop) */

ax_loop *hub__current_loop(const hub *h)
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

#ifdef AXON_LOCK_STATS
/* A build with -DAXON_LOCK_STATS counts the lock's contention (bench/
 * RESULTS.md, sharding): a try first; when another thread holds it, the
 * time until it is ours. */
static uint64_t lk_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void hub__lock(hub *h)
{
    uint64_t waited = 0;
    if (pthread_mutex_trylock(&h->mu) != 0) {
        uint64_t t0 = lk_ns();
        pthread_mutex_lock(&h->mu);
        waited = lk_ns() - t0 + 1;
    }
    h->lk_taken++;
    if (waited) {
        h->lk_contended++;
        h->lk_wait_ns += waited;
    }
    h->depth++;
}
#else
void hub__lock(hub *h)
{
    pthread_mutex_lock(&h->mu);
    h->depth++;
}
#endif

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

#define OUTQ_INLINE 64 /* past this many, an allocation */
#define OUTQ_KEEP 4096 /* kept for the next drain up to this many (a batch from another loop) */
static _Thread_local pending outq_inline[OUTQ_INLINE];
static _Thread_local struct {
    pending *v;
    size_t n, cap;
    bool draining;
} outq;

/* Post what is waiting for other loops, in order. */
static void post_outboxes(hub *h)
{
    for (outbox *o = h->outboxes; o; o = o->next) {
        if (!o->n || o->posted) continue;
        if (ax_loop_post(o->loop, run_batch, o) != 0) {
            h->st.dropped += 1; /* the loop is gone or no memory: tried again next time */
            continue;
        }
        o->posted = true;
    }
}

/* On a loop's thread the posts wait for the end of its iteration
 * (ax_loop_defer()): what every publish of the iteration made for another
 * loop goes in one post, so that loop wakes once for them and writes each
 * subscriber its share at once, not a message per wake-up.  Threads with
 * no loop bound post as they let go. */
static _Thread_local hub *post_pending; /* its posts wait for this thread's loop */

static void posts_due(ax_loop *loop, void *arg)
{
    hub *h = arg;
    (void)loop;
    if (post_pending != h) return; /* hub_free() came first */
    hub__lock(h);
    post_outboxes(h);
    hub__unlock(h);
    post_pending = NULL; /* (what could not be posted waits for the next call) */
}

static void flush_outboxes(hub *h)
{
    if (post_pending == h) return;
    if (bound_loop && !post_pending) {
        bool waiting = false;
        for (outbox *o = h->outboxes; o && !waiting; o = o->next)
            waiting = o->n && !o->posted;
        if (!waiting) return;
        if (ax_loop_defer(bound_loop, posts_due, h) == 0) {
            post_pending = h;
            return;
        }
    }
    post_outboxes(h);
}

void hub__unlock(hub *h)
{
    if (h->depth == 1 && h->reap && !h->walking) reap_now(h);
    if (h->depth == 1) flush_outboxes(h);
    bool outer = --h->depth == 0;
    pthread_mutex_unlock(&h->mu);
    if (outer && outq.n && !outq.draining) drain(h);
}

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

int64_t hub__now_ms(void)
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

const hub_rule *hub__rule_for(hub *h, const char *topic)
{
    for (int i = 0; i < h->nrules; i++)
        if (hub_filter_match(h->rules[i].pattern, topic)) return &h->rules[i];
    return &h->fallback;
}

htopic *hub__topic_get(hub *h, const char *name, size_t len)
{
    return hub_map_get(&h->topics, name, len);
}

htopic *hub__topic_of(hub_inode *n)
{
    return n ? (htopic *)(void *)((char *)n - offsetof(htopic, idx)) : NULL;
}

/* A freed topic's seq floor is kept by a hash of its name (FNV-1a), so
 * what freed topics leave behind is a fixed table, not their names. */
size_t hub__floor_of(const char *name, size_t len)
{
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < len; i++)
        x = (x ^ (unsigned char)name[i]) * 16777619u;
    return x % HUB_FLOORS;
}

static bool topic_idle(hub *h, const htopic *t)
{
    if (t->head || t->present.n || t->rooms || t->retained) return false;
    node *n = hub__node_path(h, t->name, false);
    return !n || !n->subs;
}

/* Free `t` when the outermost hub call ends (nothing holds it then), if it
 * is still idle. */
void hub__topic_consider(hub *h, htopic *t)
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
        uint64_t *floor = &h->floors[hub__floor_of(t->name, t->len)];
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
        htopic *t = hub__topic_of(hub_index_after(h->index, h->sweep_pos, false));
        if (!t) {
            if (!h->sweep_pos[0]) return;
            h->sweep_pos[0] = '\0';
            continue;
        }
        memcpy(h->sweep_pos, t->name, t->len + 1);
        hub__history_trim(h, t, now);
        hub__topic_consider(h, t);
    }
}

/* The topic, made when new; `bounded`: not past max_topics (HUB_ETOPICS). */
htopic *hub__topic_make(hub *h, const char *name, size_t len, bool bounded, int *err)
{
    htopic *t = hub__topic_get(h, name, len);
    if (t) return t;
    if (bounded) {
        int64_t now = hub__now_ms();
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
    t->last_seq = h->floors[hub__floor_of(name, len)]; /* above any a freed one of this name had */
    t->rule = hub__rule_for(h, t->name);
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
void hub__history_trim(hub *h, htopic *t, int64_t now)
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

void hub__history_add(htopic *t, hub_msg *m)
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

sub_more *hub__sub_more(hub_sub *s)
{
    if (s->more) return s->more;
    sub_more *x = ax_calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->qtail = &x->qhead;
    x->budget = s->h->budget > HUB_BUDGET_MAX ? HUB_BUDGET_MAX : (uint32_t)s->h->budget;
    __atomic_store_n(&s->more, x, __ATOMIC_RELEASE); /* (hub_sub_queued()) */
    return x;
}

static void q_drop_head(hub_sub *s)
{
    sub_more *x = s->more;
    qnode *q = x->qhead;
    x->qhead = q->next;
    if (!x->qhead) x->qtail = &x->qhead;
    __atomic_store_n(&x->qbytes, x->qbytes - (uint32_t)msg_cost(q->m), __ATOMIC_RELAXED);
    hub_msg_unref(q->m);
    ax_free(q);
}

static void q_clear(hub_sub *s)
{
    while (hub__qhead(s))
        q_drop_head(s);
}

/* Keep only the newest queued message of m's topic (m is last). */
static void q_keep_latest(hub_sub *s, const hub_msg *m)
{
    sub_more *x = s->more;
    for (qnode **p = &x->qhead; *p && (*p)->m != m;) {
        qnode *q = *p;
        if (q->m->topic_len == m->topic_len && memcmp(q->m->topic, m->topic, m->topic_len) == 0) {
            *p = q->next;
            __atomic_store_n(&x->qbytes, x->qbytes - (uint32_t)msg_cost(q->m), __ATOMIC_RELAXED);
            hub_msg_unref(q->m);
            ax_free(q);
            s->h->st.dropped++;
            s->h->st.dropped_latest++;
            continue;
        }
        p = &q->next;
    }
    if (!x->qhead) x->qtail = &x->qhead;
    for (qnode *q = x->qhead; q; q = q->next)
        if (!q->next) x->qtail = &q->next;
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
    sub_more *x = s->more;
    while (x->qbytes > x->budget && x->qhead && x->qhead->next) {
        q_drop_head(s);
        h->st.dropped++;
        if (policy == HUB_DROP_OLDEST)
            h->st.dropped_oldest++;
        else
            h->st.dropped_latest++;
    }
}

static void sub_push_local(hub_sub *s, hub_msg *m);

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

void hub__sub_unref(hub_sub *s)
{
    if (--s->refs == 0) {
        name_free(s->name);
        ax_free(s->more);
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
    if (!o && (o = ax_calloc(1, sizeof(*o)))) {
        o->loop = s->loop;
        o->h = h;
        o->next = h->outboxes;
        h->outboxes = o;
    }
    if (o && o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        rpair *v = ax_realloc(o->v, cap * sizeof(*v));
        if (v) {
            o->v = v;
            o->cap = cap;
        }
    }
    if (!o || o->n == o->cap) {
        h->st.dropped++;
        return;
    }
    o->v[o->n++] = (rpair){.s = s, .m = hub_msg_ref(m)};
    s->refs++;
    s->inflight++;
}

#define OUTBOX_KEEP 4096 /* pairs: an array handed back larger than this is freed */

static void run_batch(ax_loop *loop, void *arg)
{
    outbox *o = arg;
    hub *h = o->h;
    (void)loop;
    hub__lock(h);
    rpair *v = o->v;
    size_t n = o->n, cap = o->cap;
    o->v = o->spare; /* the publishes fill the other array meanwhile */
    o->cap = o->spare_cap;
    o->spare = NULL;
    o->spare_cap = 0;
    o->n = 0;
    o->posted = false;
    h->walking++;
    for (size_t i = 0; i < n; i++) {
        hub_sub *s = v[i].s;
        s->inflight--;
        if (!s->dead) sub_push_local(s, v[i].m);
        hub_msg_unref(v[i].m);
        hub__sub_unref(s);
    }
    if (cap <= OUTBOX_KEEP && !o->v) { /* hand it back for the next batch */
        o->v = v;
        o->cap = cap;
    } else if (cap <= OUTBOX_KEEP && !o->spare) {
        o->spare = v;
        o->spare_cap = cap;
    } else {
        ax_free(v);
    }
    hub__walk_end(h);
    hub__unlock(h);
}

/* Is m of a topic a replay of s has not finished?  Then it waits in the
 * topic's history for the replay. */
static bool held_back(const hub_sub *s, const hub_msg *m)
{
    if (m->kind != HUB_MSG) return false;
    for (const job *j = hub__jobs(s); j; j = j->next)
        if (s->h->pub_born <= j->gen && strcmp(m->topic, j->pos) >= 0 &&
            hub_filter_match(j->e->filter, m->topic))
            return true;
    return false;
}

/* May s be handed m?  Every path to a client passes here: live delivery,
 * presence events, history and resume replay. */
bool hub__may_read(const hub_sub *s, const hub_msg *m)
{
    if (!s->who) /* no auth: private topics are still their named owner's */
        return m->topic[0] != 'u' || auth_private_may_read(s->name, m->topic);
    return s->who->read_all || auth_may_read(s->who, m->topic);
}

static void sub_push(hub_sub *s, hub_msg *m)
{
    if (s->dead || (s->more && held_back(s, m)) || !hub__may_read(s, m)) return;
    if (s->loop != hub__current_loop(s->h) || s->inflight) {
        sub_push_remote(s, m);
        return;
    }
    sub_push_local(s, m);
}

static void sub_queue(hub_sub *s, hub_msg *m);

/* A thread's grown array is kept between drains; freed when the thread
 * ends (or after a fan-out past OUTQ_KEEP). */
static pthread_key_t outq_key;
static pthread_once_t outq_once = PTHREAD_ONCE_INIT;

static void outq_key_make(void)
{
    pthread_key_create(&outq_key, ax_free);
}

static void outq_keep(pending *v)
{
    pthread_once(&outq_once, outq_key_make);
    pthread_setspecific(outq_key, v);
}

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
        outq_keep(v);
    }
    outq.v[outq.n++] = (pending){.s = s, .m = hub_msg_ref(m)};
    s->refs++;
    s->h->st.delivered++;
    return true;
}

/* Now, under the lock: for a replay, which stops when the wire is full. */
void hub__sub_push_now(hub_sub *s, hub_msg *m)
{
    if (s->dead) return;
    if (!s->blocked && !hub__qhead(s)) {
        s->h->st.delivered++;
        if (!s->ops->write(s, m, s->ud)) s->blocked = true;
        return;
    }
    sub_queue(s, m);
}

static void sub_push_local(hub_sub *s, hub_msg *m)
{
    if (s->dead) return;
    if (!s->blocked && !hub__qhead(s)) {
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
        if (s->blocked || hub__qhead(s)) {
            outq.v[i].requeue = true;
            continue;
        }
        if (!s->ops->write(s, outq.v[i].m, s->ud)) s->blocked = true;
    }
    if (end) end();
    hub__lock(h);
    h->walking++;
    size_t n = outq.n;
    for (size_t i = 0; i < n; i++) {
        pending p = outq.v[i];
        if (p.requeue && !p.s->dead) {
            h->st.delivered--;
            sub_queue(p.s, p.m);
        }
        hub_msg_unref(p.m);
        hub__sub_unref(p.s);
    }
    memmove(outq.v, outq.v + n, (outq.n - n) * sizeof(*outq.v));
    outq.n -= n;
    if (!outq.n && outq.cap > OUTQ_KEEP) { /* after a very large fan-out: do not keep it */
        ax_free(outq.v);
        outq_keep(NULL);
        outq.v = NULL;
        outq.cap = 0;
    }
    outq.draining = false;
    hub__walk_end(h);
    hub__unlock(h); /* drains again what walk_end() and the queues added */
}

static void sub_queue(hub_sub *s, hub_msg *m)
{
    sub_more *x = hub__sub_more(s);
    qnode *q = x ? ax_malloc(sizeof(*q)) : NULL;
    if (!q) {
        s->h->st.dropped++;
        return;
    }
    q->next = NULL;
    q->m = hub_msg_ref(m);
    *x->qtail = q;
    x->qtail = &q->next;
    __atomic_store_n(&x->qbytes, x->qbytes + (uint32_t)msg_cost(m), __ATOMIC_RELAXED);
    /* keep-latest holds one message per topic whenever the wire is behind */
    if (m->policy == HUB_KEEP_LATEST) q_keep_latest(s, m);
    if (x->qbytes > x->budget) over_budget(s, m);
}

void hub_sub_writable(hub_sub *s)
{
    hub__lock(s->h);
    s->blocked = false;
    s->h->walking++;
    while (hub__qhead(s) && !s->blocked && !s->dead) {
        hub_msg *m = hub_msg_ref(s->more->qhead->m);
        q_drop_head(s);
        s->h->st.delivered++;
        if (!s->ops->write(s, m, s->ud)) s->blocked = true;
        hub_msg_unref(m);
    }
    if (hub__jobs(s)) hub__jobs_run(s);
    hub__walk_end(s->h);
    hub__unlock(s->h);
}

size_t hub_sub_queued(const hub_sub *s)
{
    const sub_more *x = __atomic_load_n(&s->more, __ATOMIC_ACQUIRE);
    return x ? __atomic_load_n(&x->qbytes, __ATOMIC_RELAXED) : 0;
}

void hub_sub_set_budget(hub_sub *s, size_t bytes)
{
    sub_more *x = hub__sub_more(s); /* (out of memory: nothing can queue either) */
    if (x) x->budget = bytes > HUB_BUDGET_MAX ? HUB_BUDGET_MAX : (uint32_t)bytes;
}

/* ---- the subscription tree --------------------------------------------------------- */

static void deliver_list(hub *h, entry *e, hub_msg *m)
{
    for (; e; e = e->nnext) {
        hub_sub *s = e->s;
        if (s->stamp == h->stamp) continue; /* overlapping filters: once */
        s->stamp = h->stamp;
        sub_push(s, m);
    }
}

static node *kid(const node *n, const char *key, size_t klen)
{
    hub_link *l = hub_lmap_get(&n->kids, key, klen);
    return l ? HUB_LINK_OF(l, node, link) : NULL;
}

static void walk(hub *h, node *n, const char **lv, const size_t *ll, int i, int nl, hub_msg *m)
{
    bool dollar = i == 0 && m->topic[0] == '$';
    node *hash = dollar ? NULL : kid(n, "#", 1);
    if (hash) deliver_list(h, hash->subs, m);
    if (i == nl) {
        deliver_list(h, n->subs, m);
        return;
    }
    node *plus = dollar ? NULL : kid(n, "+", 1);
    if (plus) walk(h, plus, lv, ll, i + 1, nl, m);
    node *exact = kid(n, lv[i], ll[i]);
    if (exact && exact != plus && exact != hash) walk(h, exact, lv, ll, i + 1, nl, m);
}

void hub__deliver(hub *h, hub_msg *m)
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
    hub__walk_end(h);
}

/* Where a node with a key of klen bytes has its entry slot. */
static size_t slot_at(size_t klen)
{
    return (sizeof(node) + klen + 1 + 7) & ~(size_t)7;
}

node *hub__node_path(hub *h, const char *filter, bool make)
{
    node *n = &h->root;
    const char *p = filter;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        node *k = kid(n, p, l);
        if (!k) {
            size_t path = (size_t)(p - filter) + l; /* the slot's filter */
            if (!make || !(k = ax_calloc(1, slot_at(l) + offsetof(entry, filter) + path + 1)))
                return NULL;
            if (hub_lmap_add(&n->kids, &k->link, p, l) != 0) {
                ax_free(k);
                return NULL;
            }
            hub_lmap_init(&k->kids);
        }
        n = k;
        if (!slash) return n;
        p = slash + 1;
    }
}

/* Frees the nodes of filter's path that have no subscriber and no kid,
 * from the deepest up.  The path is taken first: the filter may be in the
 * slot of a node freed here. */
void hub__node_prune(hub *h, const char *filter)
{
    node *path[HUB_MAX_LEVELS + 1];
    int depth = 0;
    path[0] = &h->root;
    for (const char *p = filter;;) {
        const char *slash = strchr(p, '/');
        size_t l = slash ? (size_t)(slash - p) : strlen(p);
        node *k = depth < HUB_MAX_LEVELS ? kid(path[depth], p, l) : NULL;
        if (!k) break;
        path[++depth] = k;
        if (!slash) break;
        p = slash + 1;
    }
    for (; depth > 0; depth--) {
        node *n = path[depth];
        if (n->subs || n->kids.n != 0) break;
        hub_lmap_free(&n->kids);
        hub_lmap_del(&path[depth - 1]->kids, &n->link);
        ax_free(n);
    }
}

entry *hub__node_slot(const node *n)
{
    return (entry *)((char *)n + slot_at(n->link.klen));
}

/* e leaves n (its filter's node): back to the slot, or freed. */
void hub__entry_free(node *n, entry *e)
{
    if (n && e == hub__node_slot(n))
        e->s = NULL;
    else
        ax_free(e);
}

static void node_free_all(hub_link *l, void *ud)
{
    node *n = HUB_LINK_OF(l, node, link);
    (void)ud;
    hub_lmap_each(&n->kids, node_free_all, NULL);
    hub_lmap_free(&n->kids);
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
    m->time_ms = hub__now_ms();
    hub__deliver(h, m);
    hub_msg_unref(m);
}

void hub__presence_join(hub *h, htopic *room, const char *name)
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
    return hub_sub_new_ext(h, ops, ud, name, 0);
}

/* hub_sub_ext(): right after the struct, at 8-byte alignment (pointers,
 * 64-bit integers) */
#define EXT_AT ((sizeof(hub_sub) + 7) / 8 * 8)

void *hub_sub_ext(hub_sub *s)
{
    return (char *)s + EXT_AT;
}

hub_sub *hub_sub_of_ext(void *ext)
{
    return (hub_sub *)(void *)((char *)ext - EXT_AT);
}

hub_sub *hub_sub_new_ext(hub *h, const hub_sub_ops *ops, void *ud, const char *name, size_t extra)
{
    hub_sub *s = ax_calloc(1, extra ? EXT_AT + extra : sizeof(*s));
    if (!s) return NULL;
    s->h = h;
    s->ops = ops;
    s->ud = ud;
    s->loop = hub__current_loop(h);
    s->refs = 1;
    s->name = name_dup(name);
    if (!s->name) {
        ax_free(s);
        return NULL;
    }
    hub__lock(h);
    s->id = ++h->next_id;
    h->st.subscribers++;
    hub__unlock(h);
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
    hub__lock(s->h);
    bool r = hub__jobs(s) != NULL;
    hub__unlock(s->h);
    return r;
}

void hub_sub_set_identity(hub_sub *s, const auth_identity *id)
{
    hub__lock(s->h);
    s->who = id;
    hub__unlock(s->h);
}

const auth_identity *hub_sub_identity(const hub_sub *s)
{
    return s->who; /* written by this thread only */
}

/* The room an entry joined (e->present): its filter's topic, which the
 * topic's rooms count keeps. */
static htopic *room_of(hub *h, const entry *e)
{
    return hub__topic_get(h, e->filter, strlen(e->filter));
}

int hub_sub_rename(hub_sub *s, const char *name)
{
    if (!name || !*name || strlen(name) > HUB_MAX_NAME) return AX_EINVAL;
    char *copy = name_dup(name), *old;
    if (!copy) return AX_ENOMEM;
    hub__lock(s->h);
    for (entry *e = s->entries; e; e = e->snext)
        if (e->present && s->name[0]) presence_leave(s->h, room_of(s->h, e), s->name);
    old = s->name;
    s->name = copy;
    for (entry *e = s->entries; e; e = e->snext)
        if (e->present) hub__presence_join(s->h, room_of(s->h, e), s->name);
    hub__unlock(s->h);
    name_free(old);
    return 0;
}

void hub__entry_unlink(hub_sub *s, entry *e)
{
    hub *h = s->h;
    size_t fl = strlen(e->filter);
    if (s->more && s->more->filters) hub_map_del(s->more->filters, e->filter, fl);
    s->nfilters--;
    if (e->sprev)
        e->sprev->snext = e->snext;
    else
        s->entries = e->snext;
    if (e->snext) e->snext->sprev = e->sprev;
    if (e->replaying) hub__job_end(s, hub__job_of(s, e));
    htopic *room = e->present ? room_of(h, e) : NULL;
    if (room) {
        if (s->name[0]) presence_leave(h, room, s->name);
        room->rooms--;
        hub__topic_consider(h, room);
    }
    *e->npp = e->nnext;
    if (e->nnext) e->nnext->npp = e->npp;
    node *n = hub__node_path(h, e->filter, false); /* there while it had e */
    if (h->bp && !n->subs) h->bp->need(h->bp_ud, e->filter, false);
    htopic *t = hub__topic_get(h, e->filter, fl); /* an exact subscription kept it */
    if (t) hub__topic_consider(h, t);
    bool slot = e == hub__node_slot(n);
    if (slot) e->s = NULL; /* (the prune may free it with n) */
    hub__node_prune(h, e->filter);
    if (!slot) ax_free(e);
}

/* A subscriber with a few filters finds them by walking its list; the map
 * is made past FEW_FILTERS (the idle client with one subscription needs
 * no map entry, 48 bytes). */
#define FEW_FILTERS 8

entry *hub__filter_find(const hub_sub *s, const char *f, size_t fl)
{
    if (s->more && s->more->filters) return hub_map_get(s->more->filters, f, fl);
    for (entry *e = s->entries; e; e = e->snext)
        if (strncmp(e->filter, f, fl) == 0 && e->filter[fl] == '\0') return e;
    return NULL;
}

static void filters_free(hub_sub *s)
{
    if (!s->more || !s->more->filters) return;
    hub_map_clear(s->more->filters);
    ax_free(s->more->filters);
    s->more->filters = NULL;
}

/* Note a new entry (not in the list yet); 0 or AX_ENOMEM. */
int hub__filter_add(hub_sub *s, entry *e, size_t fl)
{
    sub_more *m = s->more;
    if (!m || !m->filters) {
        if (s->nfilters < FEW_FILTERS) return 0;
        if (!(m = hub__sub_more(s)) || !(m->filters = ax_malloc(sizeof(*m->filters))))
            return AX_ENOMEM;
        hub_map_init(m->filters);
        for (entry *x = s->entries; x; x = x->snext)
            if (hub_map_put(m->filters, x->filter, strlen(x->filter), x, NULL) != 0) {
                filters_free(s);
                return AX_ENOMEM;
            }
    }
    return hub_map_put(m->filters, e->filter, fl, e, NULL);
}

static void sub_release(hub_sub *s)
{
    while (s->entries)
        hub__entry_unlink(s, s->entries);
    filters_free(s);
    q_clear(s);
    hub__sub_unref(s); /* messages on their way to it hold it a little longer */
}

void hub__walk_end(hub *h)
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

static void sub_free_locked(hub *h, hub_sub *s)
{
    h->st.subscribers--;
    s->dead = true;
    s->grave_next = h->grave;
    h->grave = s;
    h->walking++;
    hub__walk_end(h);
}

void hub_sub_close(hub_sub *s)
{
    hub *h = s->h;
    hub__lock(h);
    s->refs++; /* its memory, released by the hub_sub_free() that follows */
    sub_free_locked(h, s);
    s->closed = true;
    hub__unlock(h);
}

void hub_sub_free(hub_sub *s)
{
    if (!s) return;
    hub *h = s->h;
    hub__lock(h);
    if (s->closed)
        hub__sub_unref(s); /* after hub_sub_close(): its memory only */
    else
        sub_free_locked(h, s);
    hub__unlock(h);
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

uint64_t hub_publish_via(hub *h, uint8_t via, const hub_sub *origin, const char *name,
                         const char *sender, const void *payload, size_t len, uint64_t *ticket,
                         int *err)
{
    hub_pub p = {.origin = origin,
                 .topic = name,
                 .sender = sender,
                 .payload = payload,
                 .len = len,
                 .qos = 1,
                 .via = via};
    return hub_publish_pub(h, &p, ticket, err);
}

/* ---- the hub --------------------------------------------------------------------------------- */

static void load_topic(const char *name, uint64_t last, bool stored, void *ud)
{
    hub *h = ud;
    int err;
    size_t len = strlen(name);
    if (!stored) { /* no history left: only its number lives on, as a freed topic's */
        uint64_t *floor = &h->floors[hub__floor_of(name, len)];
        if (last > *floor) *floor = last;
        return;
    }
    htopic *t = hub__topic_make(h, name, len, false, &err);
    if (t && last > t->last_seq) t->last_seq = last;
}

static void load_msg(hub_msg *m, void *ud)
{
    hub *h = ud;
    int err;
    htopic *t = hub__topic_make(h, m->topic, m->topic_len, false, &err);
    if (!t) {
        hub_msg_unref(m);
        return;
    }
    m->binary = !ax_utf8_valid(m->payload, m->payload_len);
    m->policy = (int8_t)t->rule->policy;
    hub__history_add(t, m);
}

static void load_history(hub_map_ent *e, void *ud)
{
    hub *h = ud;
    htopic *t = e->value;
    hub_store_recent(h->store, t->name, t->rule->history_count, load_msg, h);
    hub__history_trim(h, t, hub__now_ms());
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
    hub_lmap_init(&h->root.kids);
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
        if (hub_store_state_load(h->store, RETAIN_NS, hub__load_retained, h) != 0) {
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
    if (post_pending == h) post_pending = NULL;
    if (h->store) hub_store_close(h->store);
    hub_lmap_each(&h->root.kids, node_free_all, NULL);
    hub_lmap_free(&h->root.kids);
    hub_map_each(&h->topics, topic_free, NULL);
    hub_map_clear(&h->topics);
    while (h->outboxes) {
        outbox *o = h->outboxes;
        h->outboxes = o->next;
        ax_free(o->v);
        ax_free(o->spare);
        ax_free(o);
    }
#ifdef AXON_LOCK_STATS
    fprintf(stderr, "hub lock: %llu taken, %llu contended (%.3f%%), %.3f ms waited\n",
            (unsigned long long)h->lk_taken, (unsigned long long)h->lk_contended,
            h->lk_taken ? 100.0 * (double)h->lk_contended / (double)h->lk_taken : 0.0,
            (double)h->lk_wait_ns / 1e6);
#endif
    pthread_mutex_destroy(&h->mu);
    ax_free(h->rules);
    ax_free(h);
}
