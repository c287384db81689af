/* hub_backplane.c: the hub's side of the backplane (hub.h; redis.c):
 * publishes numbered by the cluster, deliveries from it, moved out of
 * hub.c as is. */
#include "hub_internal.h"

/* ---- the backplane (hub.h; redis.c) -----------------------------------------------------------
 */

void hub_set_backplane(hub *h, const hub_backplane_ops *ops, void *ud)
{
    h->bp = ops;
    h->bp_ud = ud;
}

bool hub_visit(hub *h, const char *topic, void (*cb)(void *ud), void *ud)
{
    if (!h->bp || !h->bp->visit) return false;
    return h->bp->visit(h->bp_ud, topic, cb, ud, hub__current_loop(h));
}

/* The first subscriber of `filter` on this node: the backplane starts
 * receiving it, and a topic's resumes wait until its history is loaded. */
void hub__bp_need(hub *h, const char *filter, size_t fl)
{
    int err;
    htopic *t = hub_topic_valid(filter, fl) ? hub__topic_make(h, filter, fl, true, &err) : NULL;
    if (t) t->bp_wait = true;
    h->bp->need(h->bp_ud, filter, true);
}

uint64_t hub__bp_publish(hub *h, hub_msg *m, uint64_t *ticket, int *err)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, m->topic, m->topic_len);
    uint64_t last = t ? t->last_seq : h->floors[hub__floor_of(m->topic, m->topic_len)];
    uint32_t history = t ? t->rule->history_count : hub__rule_for(h, m->topic)->history_count;
    hub__unlock(h);
    m->time_ms = hub__now_ms();
    int rc = h->bp->publish(h->bp_ud, m, last, history, ticket);
    hub_msg_unref(m);
    if (rc) *err = rc;
    return rc ? 0 : last + 1;
}

int hub_backplane_deliver(hub *h, hub_msg *m, int how)
{
    int rc = HUB_BP_OK, err = 0;
    hub__lock(h);
    htopic *t = hub__topic_make(h, m->topic, m->topic_len, true, &err);
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
                hub__deliver(h, g);
                hub_msg_unref(g);
            }
        }
        m->policy = (int8_t)t->rule->policy;
        t->last_seq = m->seq;
        hub__history_add(t, hub_msg_ref(m));
        hub__history_trim(h, t, hub__now_ms());
        h->st.published++;
        if (how != HUB_BPD_HISTORY) hub__deliver(h, m);
    }
    if (t) hub__topic_consider(h, t);
    hub__unlock(h);
    return rc;
}

void hub_backplane_retained(hub *h, hub_msg *m)
{
    int err;
    hub__lock(h);
    htopic *t = hub__topic_make(h, m->topic, m->topic_len, true, &err);
    if (t && (!t->retained || t->retained->seq < m->seq)) {
        m->policy = (int8_t)t->rule->policy;
        hub_msg_unref(t->retained);
        t->retained = m->payload_len ? hub_msg_ref(m) : NULL;
    }
    if (t) hub__topic_consider(h, t);
    hub__unlock(h);
}

void hub_backplane_presence(hub *h, const char *room, const char *name, bool joined)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, room, strlen(room));
    if (t && !hub_map_get(&t->present, name, strlen(name))) { /* (here too: no change) */
        hub_msg *m = hub__msg_new(t->name, t->len, name, NULL, 0);
        if (m) {
            m->policy = (int8_t)t->rule->policy;
            m->kind = (uint8_t)(joined ? HUB_JOIN : HUB_LEAVE);
            m->seq = t->last_seq;
            m->time_ms = hub__now_ms();
            hub__deliver(h, m);
            hub_msg_unref(m);
        }
    }
    hub__unlock(h);
}

uint64_t hub_backplane_last(hub *h, const char *topic)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, topic, strlen(topic));
    uint64_t last = t ? t->last_seq : 0;
    hub__unlock(h);
    return last;
}

uint64_t hub_backplane_mark(hub *h)
{
    return h->bp && h->bp->mark ? h->bp->mark(h->bp_ud) : 0;
}

uint64_t hub_backplane_first(hub *h, const char *topic)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, topic, strlen(topic));
    uint64_t first = t && t->head ? t->head->seq : 0;
    hub__unlock(h);
    return first;
}

void hub_backplane_older(hub *h, const char *topic, hub_msg *const *m, size_t n)
{
    hub__lock(h);
    htopic *t = hub__topic_get(h, topic, strlen(topic));
    hub_msg *first = NULL, *last = NULL;
    for (size_t i = 0; t && t->head && i < n; i++) {
        if (m[i]->seq >= t->head->seq || (last && m[i]->seq <= last->seq)) continue;
        hub_msg *x = hub_msg_ref(m[i]);
        x->policy = (int8_t)t->rule->policy;
        x->next = NULL;
        if (last)
            last->next = x;
        else
            first = x;
        last = x;
        t->n++;
    }
    if (first) { /* (a job at this topic goes on from its last message: unchanged) */
        last->next = t->head;
        t->head = first;
        hub__history_trim(h, t, hub__now_ms());
    }
    hub__unlock(h);
}

static void bp_jobs_drop(void *arg)
{
    hub_sub *s = arg;
    hub *h = s->h;
    hub__lock(h);
    hub__sub_unref(s);
    hub__unlock(h);
}

static void bp_jobs_run(ax_loop *loop, void *arg)
{
    hub_sub *s = arg;
    hub *h = s->h;
    (void)loop;
    hub__lock(h);
    h->walking++;
    if (!s->dead && hub__jobs(s)) hub__jobs_run(s);
    hub__walk_end(h);
    hub__sub_unref(s);
    hub__unlock(h);
}

void hub_backplane_ready(hub *h, const char *topic)
{
    size_t tl = strlen(topic);
    hub__lock(h);
    htopic *t = hub__topic_get(h, topic, tl);
    node *n = t && t->bp_wait ? hub__node_path(h, topic, false) : NULL;
    if (t) t->bp_wait = false;
    h->walking++;
    for (entry *e = n ? n->subs : NULL; e; e = e->nnext) {
        hub_sub *s = e->s;
        if (!e->replaying || s->dead) continue;
        s->refs++;
        if (s->loop == hub__current_loop(h)) {
            hub__jobs_run(s);
            hub__sub_unref(s);
        } else if (ax_loop_post_or(s->loop, bp_jobs_run, bp_jobs_drop, s) != 0) {
            hub__sub_unref(s);
        }
    }
    hub__walk_end(h);
    if (t) hub__topic_consider(h, t);
    hub__unlock(h);
}
