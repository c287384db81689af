/* hub_state.c: gateway state and retained messages in the store (durable
 * sessions, hub_publish_pub), moved out of hub.c as is. */
#include "hub_internal.h"

/* ---- gateway state and retained messages in the store ------------------------------------ */

bool hub_durable(const hub *h)
{
    return h->store != NULL || (h->bp && h->bp->state);
}

int hub_state_put(hub *h, const char *ns, const void *key, size_t klen, const void *val,
                  size_t vlen, uint64_t *ticket)
{
    uint64_t tk = 0;
    if (!h->store && h->bp && h->bp->state) { /* (the ticket: Redis's answer) */
        if (ticket) *ticket = 0;
        return h->bp->state(h->bp_ud, val ? HUB_STATE_PUT : HUB_STATE_DEL, ns, key, klen, val, vlen,
                            ticket);
    }
    int rc = h->store ? hub_store_state(h->store, val ? HUB_STATE_PUT : HUB_STATE_DEL, ns, key,
                                        klen, val, vlen, &tk)
                      : 0;
    if (ticket) *ticket = tk;
    return rc;
}

int hub_state_clear(hub *h, const char *ns, const void *prefix, size_t plen, uint64_t *ticket)
{
    uint64_t tk = 0;
    if (!h->store && h->bp && h->bp->state) {
        if (ticket) *ticket = 0;
        return h->bp->state(h->bp_ud, HUB_STATE_CLEAR, ns, prefix, plen, NULL, 0, ticket);
    }
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

void hub__load_retained(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    hub *h = ud;
    int err;
    hub_msg *m = hub_msg_unpack(val, vlen);
    htopic *t =
        m && m->topic_len == klen ? hub__topic_make(h, m->topic, m->topic_len, false, &err) : NULL;
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
    m->notice = p->notice;
    m->via = p->via;
    if (h->bp) return hub__bp_publish(h, m, wanted, err); /* (retained: hub_backplane_retained) */
    hub__lock(h);
    htopic *t = hub__topic_make(h, name, tl, true, err);
    uint64_t seq = 0;
    int rc = t ? 0 : *err; /* (topic_make() said why) */
    if (t) {
        if (t->last_seq < h->seq_base) t->last_seq = h->seq_base;
        m->seq = t->last_seq + 1;
        m->policy = (int8_t)t->rule->policy;
        m->time_ms = hub__now_ms();
        /* queued for the store before the number is used: a full queue
         * refuses the publish and the number stays free */
        rc = h->store ? hub_store_put(h->store, m, ticket) : 0;
    }
    if (rc) {
        *err = rc;
    } else {
        seq = t->last_seq = m->seq;
        if (m->retain) retain_set(h, t, m, ticket);
        hub__history_add(t, hub_msg_ref(m));
        hub__history_trim(h, t, m->time_ms);
        h->st.published++;
        h->pub_born = t->born;
        hub__deliver(h, m);
        hub__topic_consider(h, t); /* a rule that keeps no history */
    }
    hub__unlock(h);
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
    int64_t now = hub__now_ms();
    hub__lock(h);
    if (hub_topic_valid(filter, fl)) {
        htopic *t = hub__topic_get(h, filter, fl);
        if (t && t->retained && !expired(t->retained, now) && hub__may_read(s, t->retained)) {
            cb(t->retained, ud);
            n++;
        }
        hub__unlock(h);
        return n;
    }
    char pos[HUB_MAX_TOPIC + 1];
    memcpy(pos, filter, plen);
    pos[plen] = '\0';
    for (htopic *t = hub__topic_of(hub_index_after(h->index, pos, true));
         t && strncmp(t->name, filter, plen) == 0;
         t = hub__topic_of(hub_index_after(h->index, t->name, false))) {
        hub_msg *m = t->retained;
        if (m && hub_filter_match(filter, t->name) && !expired(m, now) && hub__may_read(s, m)) {
            cb(m, ud);
            n++;
        }
    }
    hub__unlock(h);
    return n;
}

int hub_ack_wait(hub *h, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status))
{
    a->seq = 0;
    if (h->bp) return h->bp->wait(h->bp_ud, a, ticket, cb, hub__current_loop(h));
    if (!h->store) return AX_EINVAL; /* no ticket without a store */
    return hub_store_wait(h->store, hub__current_loop(h), a, ticket, cb);
}

void hub_ack_cancel(hub *h, hub_ack *a)
{
    if (h->bp)
        h->bp->cancel(h->bp_ud, a);
    else if (h->store)
        hub_store_cancel(h->store, a);
}
