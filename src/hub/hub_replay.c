/* hub_replay.c: paced replay (history from a sequence number on subscribe,
 * and resume), moved out of hub.c as is; see hub.c's header for how a
 * resume runs as a job that writes while the wire takes it. */
#include "hub_internal.h"

/* ---- paced replay ---------------------------------------------------------------------- */

job *hub__job_of(const hub_sub *s, const entry *e)
{
    job *j = hub__jobs(s);
    while (j && j->e != e)
        j = j->next;
    return j;
}

void hub__job_end(hub_sub *s, job *j)
{
    for (job **p = &s->more->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    j->e->replaying = false;
    hub_msg_unref(j->last);
    for (size_t i = 0; i < j->ncur; i++) { /* (pinned while it lived) */
        j->cur[i].t->rooms--;
        hub__topic_consider(s->h, j->cur[i].t);
    }
    ax_free(j->cur);
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
    g->time_ms = hub__now_ms();
    hub__sub_push_now(s, g);
    hub_msg_unref(g);
}

/* The next message of `t` for the job (a gap notice first when history no
 * longer reaches back), or NULL when it has sent them all. */
static hub_msg *job_next(hub_sub *s, job *j, htopic *t)
{
    /* history leaves from its head only: `last` is still in it while its
     * seq is not below the head's, and then its successor is the next */
    if (j->last && t->head && j->last->seq >= t->head->seq) return j->last->next;
    if (!j->began) hub__history_trim(s->h, t, hub__now_ms());
    j->began = true;
    uint64_t first = t->head ? t->head->seq : t->last_seq + 1;
    if (j->after + 1 < first && j->after < t->last_seq &&
        (!j->cur || j->listed || j->from_ms < 0)) {
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
        htopic *t = hub__topic_get(h, f, strlen(f));
        return t && t->born <= j->gen && strcmp(t->name, j->pos) >= 0 ? t : NULL;
    }
    htopic *t = hub__topic_of(hub_index_after(h->index, j->pos, true));
    while (t && strncmp(t->name, f, j->plen) == 0 &&
           (t->born > j->gen || !hub_filter_match(f, t->name)))
        t = hub__topic_of(hub_index_after(h->index, t->name, false));
    return t && strncmp(t->name, f, j->plen) == 0 ? t : NULL;
}

static void job_at(job *j, const char *name, size_t len)
{
    memcpy(j->pos, name, len + 1);
    hub_msg_unref(j->last);
    j->last = NULL;
    j->after = j->since;
    j->began = false;
    j->listed = false;
    for (size_t i = 0; i < j->ncur; i++)
        if (!j->cur[i].timed && strcmp(j->cur[i].t->name, name) == 0) {
            j->after = j->cur[i].seq;
            j->listed = true;
        }
}

/* A message of a topic not in the job's cursors, before its resume point
 * (hub_point): the client had it, or subscribed after it. */
static bool before_point(const job *j, const hub_msg *m)
{
    if (j->stamp && m->stamp) return m->stamp <= j->stamp;
    return m->time_ms < j->from_ms;
}

/* Replay while the wire takes it; true when the job is done. */
static bool job_step(hub_sub *s, job *j)
{
    if (j->waiting) return false; /* cursor_back() goes on */
    while (!s->dead && !s->blocked && !hub__qhead(s)) {
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
        if (j->cur && !j->listed && before_point(j, m)) continue;
        if (hub__may_read(s, m)) hub__sub_push_now(s, m);
    }
    return false;
}

void hub__jobs_run(hub_sub *s)
{
    while (hub__jobs(s) && job_step(s, s->more->jobs))
        hub__job_end(s, s->more->jobs);
}

static int job_start(hub_sub *s, entry *e, int64_t since, bool exact, job *j)
{
    /* (a job given was made after its subscriber's `more`) */
    if (!hub__sub_more(s) || (!j && !(j = ax_calloc(1, sizeof(*j))))) return AX_ENOMEM;
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
    if (j->cur) job_at(j, j->pos, j->plen); /* (a topic named as the prefix) */
    e->replaying = true;
    job **tail = &s->more->jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    if (s->more->jobs == j) hub__jobs_run(s);
    return 0;
}

static int subscribe_check(const hub_sub *s, const char *filter, size_t fl)
{
    if (!hub_filter_valid(filter, fl)) return AX_EINVAL;
    if (hub__filter_find(s, filter, fl)) return 0;
    return s->nfilters >= s->h->max_filters ? HUB_EFILTERS : 0;
}

static int subscribe_locked(hub_sub *s, const char *filter, int64_t since, bool present, job *j)
{
    hub *h = s->h;
    size_t fl = strlen(filter);
    int rc = subscribe_check(s, filter, fl);
    if (rc != 0 || hub__filter_find(s, filter, fl)) return rc;
    node *n = hub__node_path(h, filter, true);
    entry *e = n ? hub__node_slot(n) : NULL;
    if (e && e->s) /* the slot is taken: an entry of its own */
        e = ax_calloc(1, offsetof(entry, filter) + fl + 1);
    else if (e)
        memset(e, 0, offsetof(entry, filter));
    if (e) {
        memcpy(e->filter, filter, fl + 1);
        e->s = s; /* (takes the slot) */
    }
    if (!e || hub__filter_add(s, e, fl) != 0) {
        if (e) hub__entry_free(n, e);
        if (n) hub__node_prune(h, filter);
        return AX_ENOMEM;
    }
    if (h->bp && !n->subs) hub__bp_need(h, filter, fl);
    s->nfilters++;
    e->s = s;
    e->nnext = n->subs;
    e->npp = &n->subs;
    if (n->subs) n->subs->npp = &e->nnext;
    n->subs = e;
    e->snext = s->entries;
    if (s->entries) s->entries->sprev = e;
    s->entries = e;
    bool exact = hub_topic_valid(filter, fl);
    h->walking++;
    if (since >= 0 && (rc = job_start(s, e, since, exact, j)) != 0) hub__entry_unlink(s, e);
    if (!rc && present && exact && !s->dead) { /* a name given later joins then */
        htopic *room = hub__topic_make(h, filter, fl, true, &rc);
        e->present = room != NULL;
        if (room) room->rooms++;
        if (room && s->name[0]) hub__presence_join(h, room, s->name);
        if (!room) hub__entry_unlink(s, e);
    }
    hub__walk_end(h);
    return rc;
}

int hub_subscribe_check(const hub_sub *s, const char *filter)
{
    hub__lock(s->h);
    int rc = subscribe_check(s, filter, strlen(filter));
    hub__unlock(s->h);
    return rc;
}

static int cursors_ask(hub_sub *s, const char *filter, const hub_cursor *cur, size_t n,
                       hub_point from, int64_t since);

int hub_subscribe(hub_sub *s, const char *filter, int64_t since, bool present)
{
    /* a wildcard resumed in a cluster: the topics only other nodes had
     * too (listed by the topic index, read from the cluster first) */
    if (since >= 0 && s->h->bp && s->h->bp->topics && !hub_topic_valid(filter, strlen(filter)))
        return cursors_ask(s, filter, NULL, 0, (hub_point){-1, 0}, since);
    hub__lock(s->h);
    int rc = subscribe_locked(s, filter, since, present, NULL);
    hub__unlock(s->h);
    return rc;
}

/* ---- a resume point per topic (hub_subscribe_cursors) ------------------------------------ */

typedef struct cursor_wait {
    hub_sub *s; /* a reference */
    uint64_t job;
} cursor_wait;

/* A visited topic's history is here: its job goes on once all are. */
static void cursor_back(void *ud)
{
    cursor_wait *w = ud;
    hub_sub *s = w->s;
    hub *h = s->h;
    hub__lock(h);
    h->walking++;
    for (job *j = hub__jobs(s); j; j = j->next)
        if (j->id == w->job && j->waiting) j->waiting--;
    if (!s->dead && hub__jobs(s)) hub__jobs_run(s);
    hub__walk_end(h);
    hub__sub_unref(s);
    hub__unlock(h);
    ax_free(w);
}

/* Make and pin `topic` for job j (made now, it is older than the job: it
 * replays it), unless it is there already. */
static void cursor_add(hub *h, job *j, const char *filter, const char *topic, uint64_t seq,
                       bool timed)
{
    size_t tl = strlen(topic);
    int err;
    if (!hub_topic_valid(topic, tl) || !hub_filter_match(filter, topic)) return;
    for (size_t i = 0; timed && i < j->ncur; i++)
        if (strcmp(j->cur[i].t->name, topic) == 0) return; /* (listed: its own seq) */
    htopic *t = hub__topic_make(h, topic, tl, true, &err);
    if (!t) return; /* (then by time, as a topic not in the list) */
    t->rooms++;
    j->cur[j->ncur++] = (jcursor){t, seq, timed};
}

/* The job for hub_subscribe_cursors(), its topics made and pinned: the
 * listed ones, and those the cluster's topic index named: from the
 * point, or (from_ms < 0: a hub_subscribe() with `since`) after `since`
 * each. */
static job *cursor_job(hub *h, const char *filter, const hub_cursor *cur, size_t n,
                       char *const *more, size_t nmore, hub_point from, int64_t since)
{
    int64_t from_ms = from.from_ms;
    job *j = ax_calloc(1, sizeof(*j));
    if (!j || !(j->cur = ax_calloc(n + nmore ? n + nmore : 1, sizeof(*j->cur)))) {
        ax_free(j);
        return NULL;
    }
    j->from_ms = from_ms;
    j->stamp = from_ms < 0 ? 0 : from.stamp;
    for (size_t i = 0; i < n; i++)
        cursor_add(h, j, filter, cur[i].topic, cur[i].seq, false);
    for (size_t i = 0; i < nmore; i++)
        cursor_add(h, j, filter, more[i], from_ms < 0 ? (uint64_t)since : 0, from_ms >= 0);
    j->id = ++h->job_ids;
    j->waiting = 1; /* (until every visit is asked) */
    return j;
}

/* The topics the index named past HUB_RESUME_TOPICS_MAX are not read: one
 * gap notice, its topic the filter and its seq 0, says so first. */
static void gap_filter(hub_sub *s, const char *filter)
{
    hub_msg *g = hub__msg_new(filter, strlen(filter), NULL, GAP_TEXT, strlen(GAP_TEXT));
    if (!g) return;
    g->kind = HUB_GAP;
    g->time_ms = hub__now_ms();
    hub__sub_push_now(s, g);
    hub_msg_unref(g);
}

/* hub_subscribe_cursors() asking the cluster which topics match first
 * (ops->topics): its arguments, copied, and a reference to s.  It waits on
 * s->more->asks (under the lock) until the answer is done with it: an
 * unsubscribe of its filter meanwhile cancels it, so does the close. */
typedef struct cursor_ask {
    struct cursor_ask *next;
    hub_sub *s;
    hub_cursor *cur;
    size_t n;
    hub_point from;
    int64_t since;
    bool cancelled;
    char *filter;
    char names[]; /* the cursors' topics, one after another */
} cursor_ask;

/* The resume of `filter` waiting for the index, if any (under the lock). */
static cursor_ask *ask_find(const hub_sub *s, const char *filter)
{
    for (cursor_ask *a = s->more ? s->more->asks : NULL; a; a = a->next)
        if (!a->cancelled && strcmp(a->filter, filter) == 0) return a;
    return NULL;
}

/* a's wait is over (under the lock; s->more was made before it waited). */
static void ask_off(hub_sub *s, const cursor_ask *a)
{
    cursor_ask **pp = &s->more->asks;
    while (*pp != a)
        pp = &(*pp)->next;
    *pp = a->next;
}

/* a (no more than a NULL one) subscribes nothing: cancelled, or s closed. */
static bool ask_gone(const hub_sub *s, const cursor_ask *a)
{
    return a && (a->cancelled || s->dead);
}

/* a: the wait this is the answer of (NULL: none). */
static int cursors_now(hub_sub *s, const cursor_ask *a, const char *filter, const hub_cursor *cur,
                       size_t n, char *const *more, size_t nmore, hub_point from, int64_t since)
{
    hub *h = s->h;
    bool capped = from.from_ms < 0 && nmore > HUB_RESUME_TOPICS_MAX; /* (MQTT has no gap notice) */
    if (capped) { /* the most recently published (one Redis: the index's order) */
        more += nmore - HUB_RESUME_TOPICS_MAX;
        nmore = HUB_RESUME_TOPICS_MAX;
    }
    cursor_wait *first = ax_malloc(sizeof(*first));
    if (!first) return AX_ENOMEM;
    hub__lock(h);
    if (ask_gone(s, a)) {
        hub__unlock(h);
        ax_free(first);
        return 0;
    }
    if (!hub__sub_more(s)) { /* (before the job: job_start() needs it) */
        hub__unlock(h);
        ax_free(first);
        return AX_ENOMEM;
    }
    job *j = hub__filter_find(s, filter, strlen(filter))
                 ? NULL
                 : cursor_job(h, filter, cur, n, more, nmore, from, since);
    uint64_t id = j ? j->id : 0;
    size_t nv = j ? j->ncur : 0;
    char **names = nv ? ax_calloc(nv, sizeof(*names)) : NULL;
    for (size_t i = 0; names && i < nv; i++)
        if ((names[i] = ax_malloc(j->cur[i].t->len + 1)))
            memcpy(names[i], j->cur[i].t->name, j->cur[i].t->len + 1);
    if (j && capped && !s->dead) gap_filter(s, filter);
    int rc = j ? subscribe_locked(s, filter, since < 0 ? 0 : since, false, j)
               : subscribe_locked(s, filter, -1, false, NULL);
    if (rc == 0 && j) s->refs++; /* (the visits' answers find it by id) */
    hub__unlock(h);
    if (rc != 0 || !j) {
        ax_free(first);
        for (size_t i = 0; names && i < nv; i++)
            ax_free(names[i]);
        ax_free(names);
        return rc;
    }
    /* each listed topic's history comes from the backplane first (hub_visit:
     * not under the lock); a topic followed already needs no wait */
    for (size_t i = 0; i < nv; i++) {
        cursor_wait *w = names && names[i] ? ax_malloc(sizeof(*w)) : NULL;
        if (!w) continue;
        *w = (cursor_wait){s, id};
        hub__lock(h);
        s->refs++;
        for (job *k = hub__jobs(s); k; k = k->next)
            if (k->id == id) k->waiting++;
        hub__unlock(h);
        if (!hub_visit(h, names[i], cursor_back, w)) cursor_back(w);
        ax_free(names[i]);
    }
    ax_free(names);
    *first = (cursor_wait){s, id}; /* the first wait: until every visit is asked */
    cursor_back(first);
    return 0;
}

static void cursor_listed(void *ud, char **names, size_t nn)
{
    cursor_ask *a = ud;
    hub_sub *s = a->s;
    hub *h = s->h; /* (the unref below may free s) */
    int rc = cursors_now(s, a, a->filter, a->cur, a->n, names, nn, a->from, a->since);
    hub__lock(h);
    if (rc != 0 && !ask_gone(s, a)) /* (live, at least) */
        (void)subscribe_locked(s, a->filter, -1, false, NULL);
    ask_off(s, a);
    hub__sub_unref(s);
    hub__unlock(h);
    ax_free(a->cur);
    ax_free(a);
}

/* from.from_ms < 0: hub_subscribe() with `since` of a wildcard filter. */
static int cursors_ask(hub_sub *s, const char *filter, const hub_cursor *cur, size_t n,
                       hub_point from, int64_t since)
{
    hub *h = s->h;
    size_t fl = strlen(filter), bytes = fl + 1;
    hub__lock(h);
    int rc = subscribe_check(s, filter, fl);
    bool had = hub__filter_find(s, filter, fl) || ask_find(s, filter);
    hub__unlock(h);
    if (rc != 0 || had) return rc;
    for (size_t i = 0; i < n; i++)
        bytes += strlen(cur[i].topic) + 1;
    cursor_ask *a = ax_malloc(sizeof(*a) + bytes);
    if (!a || !(a->cur = ax_calloc(n ? n : 1, sizeof(*a->cur)))) {
        ax_free(a);
        return AX_ENOMEM;
    }
    char *p = a->names;
    for (size_t i = 0; i < n; i++) {
        size_t tl = strlen(cur[i].topic);
        memcpy(p, cur[i].topic, tl + 1);
        a->cur[i] = (hub_cursor){p, cur[i].seq};
        p += tl + 1;
    }
    memcpy(p, filter, fl + 1);
    *a = (cursor_ask){NULL, s, a->cur, n, from, since, false, p};
    hub__lock(h);
    if (!hub__sub_more(s)) {
        hub__unlock(h);
        ax_free(a->cur);
        ax_free(a);
        return AX_ENOMEM;
    }
    a->next = s->more->asks;
    s->more->asks = a;
    s->refs++;
    hub__unlock(h);
    /* the node receives the filter's live messages first (they wait in
     * their topics' history), then learns every topic published since
     * `from`, those no node here had heard of too */
    if (h->bp->topics(h->bp_ud, filter, &a->from, cursor_listed, a, hub__current_loop(h))) return 0;
    hub__lock(h);
    ask_off(s, a);
    hub__sub_unref(s);
    hub__unlock(h);
    ax_free(a->cur);
    ax_free(a);
    return cursors_now(s, NULL, filter, cur, n, NULL, 0, from, since);
}

int hub_subscribe_cursors(hub_sub *s, const char *filter, const hub_cursor *cur, size_t n,
                          const hub_point *from)
{
    hub *h = s->h;
    hub_point p = {from->from_ms < 0 ? 0 : from->from_ms, from->stamp};
    if (!h->bp || !h->bp->topics || (from->from_ms == INT64_MAX && !from->stamp) ||
        hub_topic_valid(filter, strlen(filter)))
        return cursors_now(s, NULL, filter, cur, n, NULL, 0, p, -1);
    return cursors_ask(s, filter, cur, n, p, -1);
}

int hub_unsubscribe(hub_sub *s, const char *filter)
{
    int rc = AX_ENOENT;
    hub__lock(s->h);
    entry *e = hub__filter_find(s, filter, strlen(filter));
    if (e) {
        s->h->walking++;
        hub__entry_unlink(s, e);
        hub__walk_end(s->h);
        rc = 0;
    }
    for (cursor_ask *a; (a = ask_find(s, filter)); rc = 0)
        a->cancelled = true; /* (its answer subscribes nothing) */
    hub__unlock(s->h);
    return rc;
}
