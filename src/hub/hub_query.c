/* hub_query.c: the hub's queries (history, topics, presence, stats),
 * moved out of hub.c as is. */
#include "hub_internal.h"

/* ---- queries ------------------------------------------------------------------------------ */

uint64_t hub_history(hub *h, const char *name, uint64_t since, size_t max,
                     void (*cb)(hub_msg *m, void *ud), void *ud, uint64_t *first_kept)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, name, strlen(name));
    if (first_kept) *first_kept = 0;
    if (!t) {
        hub__unlock(h);
        return 0;
    }
    hub__history_trim(h, t, hub__now_ms());
    hub__topic_consider(h, t);
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
    hub__unlock(h);
    return last;
}

uint64_t hub_history_window(hub *h, const char *name, uint64_t since, size_t max,
                            uint64_t *first_kept, uint64_t *from)
{
    uint64_t last = 0;
    *first_kept = 0;
    *from = since;
    hub__lock(h);
    htopic *t = hub__topic_get(h, name, strlen(name));
    if (t) {
        hub__history_trim(h, t, hub__now_ms());
        hub__topic_consider(h, t);
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
    hub__unlock(h);
    return last;
}

size_t hub_history_more(hub *h, const char *name, hub_msg **pos, uint64_t *from, uint64_t upto,
                        size_t max, void (*cb)(hub_msg *m, void *ud), void *ud)
{
    size_t n = 0;
    hub__lock(h);
    htopic *t = hub__topic_get(h, name, strlen(name));
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
    hub__unlock(h);
    return n;
}

size_t hub_topics(hub *h, const char *after, size_t max,
                  void (*cb)(const char *topic, uint64_t last_seq, size_t subs, void *ud), void *ud,
                  char *next)
{
    char pos[HUB_MAX_TOPIC + 1];
    size_t given = 0, visits = max * 4 + 64; /* topics nobody used are passed over */
    snprintf(pos, sizeof pos, "%s", after ? after : "");
    hub__lock(h);
    htopic *t = hub__topic_of(hub_index_after(h->index, pos, false));
    for (; t && given < max && visits > 0; visits--) {
        if (t->last_seq || t->present.n) { /* somebody has written or is there */
            node *n = hub__node_path(h, t->name, false);
            size_t subs = 0;
            for (entry *x = n ? n->subs : NULL; x; x = x->nnext)
                subs++;
            cb(t->name, t->last_seq, subs, ud);
            given++;
        }
        memcpy(pos, t->name, t->len + 1);
        t = hub__topic_of(hub_index_after(h->index, t->name, false));
    }
    if (next) snprintf(next, HUB_MAX_TOPIC + 1, "%s", t ? pos : "");
    hub__unlock(h);
    return given;
}

bool hub_topic_used(hub *h, const char *topic)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, topic, strlen(topic));
    node *n = hub__node_path(h, topic, false);
    bool used = (t && (t->last_seq || t->present.n)) || (n && n->subs);
    hub__unlock(h);
    return used;
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
    hub__lock(h);
    htopic *t = hub__topic_get(h, room, strlen(room));
    if (t) hub_map_each(&t->present, presence_each, &c);
    hub__unlock(h);
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
    hub__lock(h);
    r.t = hub__topic_get(h, room, strlen(room));
    if (r.t) hub_map_each(&r.t->present, presence_each, &r.c);
    if (h->bp) h->bp->presence(h->bp_ud, room, presence_remote, &r); /* not those here */
    hub__unlock(h);
}

const hub_stats *hub_stats_get(hub *h)
{
    static __thread hub_stats copy; /* a snapshot, for the calling thread */
    hub__lock(h);
    if (h->store) hub_store_stats(h->store, &h->st);
    copy = h->st;
    hub__unlock(h);
    return &copy;
}

ax_loop *hub_loop(const hub *h)
{
    return h->loop;
}
