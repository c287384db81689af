/* mqtt_sess.c: MQTT sessions (gw_mqtt.h): subscriptions, shared
 * subscriptions, retained messages on subscribe, outbound delivery with
 * packet ids and an in-flight window, and the output cork.
 *
 * Delivery.  The session's hub subscriber hands each message to
 * sess_write(), which takes the largest QoS of the session's matching
 * subscriptions (capped by the publisher's), then either sends it (a
 * packet id and an in-flight slot for QoS 1/2) or, when the window is full
 * or the client is away, keeps it in the session's queue (bounded by
 * mqtt_queued; QoS 0 is not kept for an absent client, as mosquitto does).
 * While something waits, write() answers false and the hub holds further
 * messages in its own bounded queue, with the topic's slow-consumer
 * policy, until an acknowledgement or the wire makes room.
 *
 * Encoding once.  A message's QoS 0 PUBLISH (retain 0, no per-subscriber
 * properties) is made once per protocol version (slots ENC_MQTT and
 * ENC_MQTT5) and the same bytes go to every such subscriber; for QoS 1/2
 * only the head (fixed header, topic, packet id, properties) is written per
 * subscriber and the payload is the shared slice's tail.
 *
 * The cork: what a connection is sent during one turn of the loop (many
 * PUBLISHes fanned out by a burst of publishes, acks) is collected as an
 * iovec list over shared slices and a small scratch area, and leaves in one
 * writev at the end of the turn (a 0 ms timer runs after the I/O). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "gw_mqtt.h"
#include "redis.h"

#define MAX_FREE_CORKS 64

/* The flight state of a session that has none yet: read-only (const, so
 * a write through it faults instead of going unnoticed). */
static const mq_flight no_flight;

/* A session's bytes after its hub subscriber (hub_sub_new_ext) for a client
 * id of klen bytes: what they were with a 56-byte mq_sess, 8-aligned (no
 * malloc chunk ends between), so that the 16 that left the struct, and
 * the alignment's, are the room of its inline subscription after its
 * mq_stail; never less than its fields need. */
static size_t sess_ext(size_t klen)
{
    size_t need = sizeof(mq_sess) + klen + 1 + offsetof(mq_stail, sub);
    size_t had = (56 + klen + 1 + 7) / 8 * 8;
    return had > need ? had : need;
}

mq_flight *mq_flight_get(mq_sess *s)
{
    if (s->fl != &no_flight) return s->fl;
    mq_flight *f = ax_calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->qtail = &f->qhead;
    s->fl = f;
    return f;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the cork ---------------------------------------------------------------------- */

static mq_cork *cork_get(gw_mqtt *g)
{
    mq_cork *k = g->free_corks;
    if (k) {
        g->free_corks = k->next_free;
        g->nfree_corks--;
    } else if (!(k = ax_malloc(sizeof(*k)))) {
        return NULL;
    }
    k->n = 0;
    k->used = k->bytes = 0;
    return k;
}

static void cork_put(gw_mqtt *g, mq_cork *k)
{
    for (int i = 0; i < k->n; i++)
        ax_slice_unref(k->ref[i]);
    k->n = 0;
    if (g->nfree_corks >= MAX_FREE_CORKS) {
        ax_free(k);
        return;
    }
    k->next_free = g->free_corks;
    g->free_corks = k;
    g->nfree_corks++;
}

/* In g->dirtyv until the turn's flush; false when out of memory. */
static bool mark_dirty(mq_conn *c)
{
    gw_mqtt *g = mq_gw(c);
    if (c->dirty) return true;
    if (g->ndirty == g->dirty_cap) {
        uint32_t cap = g->dirty_cap ? g->dirty_cap * 2 : 64;
        mq_conn **v = ax_realloc(g->dirtyv, cap * sizeof(*v));
        if (!v) return false;
        g->dirtyv = v;
        g->dirty_cap = cap;
    }
    g->dirtyv[g->ndirty++] = c;
    c->dirty = true;
    if (!ax_timer_active(g->flusher)) ax_timer_start(g->flusher, 0, 0);
    return true;
}

/* Write what the cork holds: one writev (TCP, TLS) or one binary message
 * (WebSocket). */
void mq_cork_flush(mq_conn *c)
{
    mq_cork *k = mq_ck(c);
    if (!k) return;
    c->x->ck = NULL;
    int rc = 0;
    if (k->n && mq_tcp(c)) {
        rc = ax_conn_writev(mq_tcp(c), k->iov, k->n);
    } else if (k->n && mq_ws(c)) {
        uint8_t *buf = ax_malloc(k->bytes);
        size_t off = 0;
        for (int i = 0; buf && i < k->n; i++) {
            memcpy(buf + off, k->iov[i].iov_base, k->iov[i].iov_len);
            off += k->iov[i].iov_len;
        }
        rc = buf ? ax_ws_send_binary(mq_ws(c), buf, off) : AX_ENOMEM;
        ax_free(buf);
    }
    if (k->bytes) GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].bytes_out, k->bytes);
    cork_put(mq_gw(c), k);
    if (rc == 1) c->blocked = true;
    if (rc < 0) c->closing = true;
}

/* Drop the cork unsent (the connection is gone) and leave the dirty list. */
void mq_cork_release(mq_conn *c)
{
    mq_cork *k = mq_ck(c);
    if (k) {
        cork_put(mq_gw(c), k);
        c->x->ck = NULL;
    }
    if (!c->dirty) return;
    gw_mqtt *g = mq_gw(c);
    for (uint32_t i = g->ndirty; i-- > 0;) /* (from the end: the last written first) */
        if (g->dirtyv[i] == c) {
            g->dirtyv[i] = g->dirtyv[--g->ndirty];
            break;
        }
    c->dirty = false;
}

/* A TCP client's cx that holds nothing but a cork (gone now): not kept
 * (an idle client has none). */
static void cx_drop_empty(mq_conn *c)
{
    mq_cx *x = c->x;
    if (!x || !mq_tcp(c) || x->ck || x->prev || x->next || x->alias || x->will || x->auth ||
        x->in || x->wtail || x->max_packet || x->recv_max || x->held)
        return;
    ax_free(x);
    c->x = NULL;
}

void mq_flush_all(ax_timer *t, void *ud)
{
    gw_mqtt *g = ud;
    (void)t;
    while (g->ndirty) {
        mq_conn *c = g->dirtyv[--g->ndirty];
        c->dirty = false;
        mq_cork_flush(c);
        cx_drop_empty(c);
    }
}

/* A cork with room for n scratch bytes and one more iovec. */
static mq_cork *cork_for(mq_conn *c, size_t n)
{
    mq_cork *k = mq_ck(c);
    if (k && (k->n == MQ_CORK_IOV || k->used + n > MQ_CORK_SCRATCH)) mq_cork_flush(c);
    if (!mark_dirty(c) || !mq_cx_get(c)) return NULL;
    if (!c->x->ck && !(c->x->ck = cork_get(mq_gw(c)))) return NULL;
    return c->x->ck;
}

uint8_t *mq_cork_room(mq_conn *c, size_t n)
{
    if (n > MQ_CORK_SCRATCH / 2) { /* large: a slice of its own */
        ax_slice *s = ax_slice_new(n);
        if (!s) return NULL;
        mq_cork_slice(c, s, 0, n);
        ax_slice_unref(s);
        mq_cork *k = mq_ck(c);
        return k && k->n && k->ref[k->n - 1] == s ? ax_slice_data(s) : NULL;
    }
    mq_cork *k = cork_for(c, n);
    if (!k) return NULL;
    uint8_t *p = k->scratch + k->used;
    struct iovec *last = k->n ? &k->iov[k->n - 1] : NULL;
    if (last && !k->ref[k->n - 1] && (uint8_t *)last->iov_base + last->iov_len == p) {
        last->iov_len += n; /* follows the last scratch bytes: one iovec */
    } else {
        k->iov[k->n].iov_base = p;
        k->iov[k->n].iov_len = n;
        k->ref[k->n++] = NULL;
    }
    k->used += n;
    k->bytes += n;
    return p;
}

void mq_cork_slice(mq_conn *c, ax_slice *s, size_t off, size_t len)
{
    if (!len) return;
    mq_cork *k = cork_for(c, 0);
    if (!k) return;
    k->iov[k->n].iov_base = (uint8_t *)ax_slice_data(s) + off;
    k->iov[k->n].iov_len = len;
    k->ref[k->n++] = ax_slice_ref(s);
    k->bytes += len;
}

/* ---- encoding a PUBLISH ---------------------------------------------------------------- */

static bool msg_expired(const hub_msg *m, int64_t now)
{
    return m->expiry_s && now - m->time_ms >= (int64_t)m->expiry_s * 1000;
}

/* The PUBLISH fields of a message for `version`. */
static void pub_fields(const hub_msg *m, unsigned version, ax_mqtt_publish *p)
{
    memset(p, 0, sizeof(*p));
    p->topic = (ax_mqtt_str){m->topic, m->topic_len};
    p->payload_len = m->payload_len;
    if (version == AX_MQTT_V5) p->props.extra = (ax_mqtt_str){(const char *)m->ext, m->ext_len};
}

/* The shared QoS 0 packet of a message (ud: the version). */
static ax_slice *encode_q0(const hub_msg *m, void *ud)
{
    unsigned version = (unsigned)(uintptr_t)ud;
    ax_mqtt_publish p;
    pub_fields(m, version, &p);
    size_t hl = ax_mqtt_encode_publish_head(NULL, 0, version, &p, NULL);
    if (!hl) return NULL;
    ax_slice *s = ax_slice_new(hl + m->payload_len);
    if (!s) return NULL;
    uint8_t *b = ax_slice_data(s);
    ax_mqtt_encode_publish_head(b, hl, version, &p, NULL);
    if (m->payload_len) memcpy(b + hl, m->payload, m->payload_len);
    return s;
}

/* Put one PUBLISH on the connection's output. */
static void emit_publish(mq_conn *c, hub_msg *m, uint8_t qos, bool retain, bool dup, uint16_t pid,
                         uint32_t sub_id)
{
    unsigned v = c->version == AX_MQTT_V5 ? AX_MQTT_V5 : AX_MQTT_V311;
    ax_slice *q0 = hub_msg_encoding(m, v == AX_MQTT_V5 ? ENC_MQTT5 : ENC_MQTT, encode_q0,
                                    (void *)(uintptr_t)v);
    if (!q0) return;
    size_t total = ax_slice_len(q0), plen = m->payload_len;
    gw_stats *st = &mq_gw(c)->sv->gw[GW_MQTT];
    GW_ADD(st->msgs_out, 1);
    bool expiry = v == AX_MQTT_V5 && m->expiry_s;
    if (!qos && !retain && !sub_id && !expiry) {
        if (mq_max_packet(c) && total > mq_max_packet(c)) return; /* 5.0: the client's limit */
        mq_cork_slice(c, q0, 0, total);
        return;
    }
    ax_mqtt_publish p;
    pub_fields(m, v, &p);
    p.qos = qos;
    p.retain = retain;
    p.dup = dup;
    p.packet_id = pid;
    if (sub_id) {
        p.props.sub_ids = &sub_id;
        p.props.n_sub_ids = 1;
    }
    if (expiry) {
        int64_t left = (int64_t)m->expiry_s - (wall_ms() - m->time_ms) / 1000;
        p.props.message_expiry = left > 0 ? (uint32_t)left : 1;
        ax_mqtt_props_set(&p.props, AX_MQTT_PROP_MESSAGE_EXPIRY);
    }
    size_t hl = ax_mqtt_encode_publish_head(NULL, 0, v, &p, NULL);
    if (!hl || (mq_max_packet(c) && hl + plen > mq_max_packet(c))) return;
    uint8_t *h = mq_cork_room(c, hl);
    if (!h) return;
    ax_mqtt_encode_publish_head(h, hl, v, &p, NULL);
    mq_cork_slice(c, q0, total - plen, plen);
}

/* ---- rows in the store ----------------------------------------------------------------------- */

#define NS_SESS "mqtt.s"
#define NS_OUT "mqtt.o"
#define NS_REL "mqtt.r"
#define NS_HAND "mqtt.h" /* Redis: where a session's old owner stopped, per topic */
enum { ROW_QUEUED = 0 }; /* else MQ_OUT_ACK, MQ_OUT_COMP */

static bool durable(const mq_sess *s)
{
    return mq_expiry(s) && !mq_sess_g(s)->loading && hub_durable(mq_sess_g(s)->sv->hub);
}

static void note(gw_mqtt *g, uint64_t ticket)
{
    if (ticket > g->last_ticket) g->last_ticket = ticket;
}

/* The key of a session's row: its client id, a NUL, then `tail`. */
static size_t row_key(const mq_sess *s, uint8_t *key, uint64_t tail, int tlen)
{
    size_t cl = strlen(mq_cid(s));
    memcpy(key, mq_cid(s), cl + 1);
    hub_put_be(key + cl + 1, tail, tlen);
    return cl + 1 + (size_t)tlen;
}

/* A message the session owes, in its state (the message itself only
 * while it may have to be sent again). */
static uint64_t out_save(mq_sess *s, uint64_t *okey, uint8_t state, uint8_t qos, bool retain,
                         uint16_t pid, uint32_t sub_id, hub_msg *m)
{
    if (!durable(s) || !mq_flight_get(s)) return 0;
    if (!*okey) *okey = ++s->fl->oseq;
    uint8_t key[MQ_MAX_CLIENT_ID + 9], head[9];
    size_t kl = row_key(s, key, *okey, 8);
    size_t n = state == MQ_OUT_COMP || !m ? 0 : hub_msg_pack(m, NULL, 0);
    uint8_t *v = ax_malloc(sizeof head + n);
    if (!v) return 0;
    head[0] = state;
    head[1] = qos;
    head[2] = retain;
    hub_put_be(hub_put_be(head + 3, pid, 2), sub_id, 4);
    memcpy(v, head, sizeof head);
    if (n) hub_msg_pack(m, v + sizeof head, n);
    uint64_t tk = 0;
    hub_state_put(mq_sess_g(s)->sv->hub, NS_OUT, key, kl, v, sizeof head + n, &tk);
    note(mq_sess_g(s), tk);
    ax_free(v);
    mq_st(s)->saved = true;
    return tk;
}

static void out_forget(mq_sess *s, uint64_t okey)
{
    if (!okey || !mq_st(s)->saved || mq_sess_g(s)->loading) return;
    uint8_t key[MQ_MAX_CLIENT_ID + 9];
    uint64_t tk = 0;
    hub_state_put(mq_sess_g(s)->sv->hub, NS_OUT, key, row_key(s, key, okey, 8), NULL, 0, &tk);
    note(mq_sess_g(s), tk);
}

const char *mq_sess_owner(const mq_sess *s)
{
    return mq_sess_id(s) ? mq_sess_id(s)->name : s->fl->owner ? s->fl->owner : "";
}

void mq_sess_save(mq_sess *s)
{
    if (!durable(s)) return;
    const char *owner = mq_sess_owner(s);
    size_t ol = strlen(owner), n = 4 + 1 + ol + 2 + 4;
    uint32_t nsubs = 0;
    for (mq_subopt *o = s->subs; o; o = mq_sub_next(o), nsubs++)
        n += 10 + strlen(o->filter);
    uint8_t *v = ax_malloc(n), *p = v;
    if (!v) return;
    p = hub_put_be(p, mq_expiry(s), 4);
    *p++ = (uint8_t)ol;
    memcpy(p, owner, ol);
    p = hub_put_be(p + ol, s->fl->next_pid, 2);
    p = hub_put_be(p, nsubs, 4);
    for (mq_subopt *o = s->subs; o; o = mq_sub_next(o)) {
        size_t fl = strlen(o->filter);
        p = hub_put_be(p, mq_sub_id(o), 4);
        *p++ = o->qos;
        *p++ = (uint8_t)(o->no_local | o->rap << 1);
        p = hub_put_be(hub_put_be(p, mq_sub_hoff(o), 2), fl, 2);
        memcpy(p, o->filter, fl);
        p += fl;
    }
    uint64_t tk = 0;
    hub_state_put(mq_sess_g(s)->sv->hub, NS_SESS, mq_cid(s), strlen(mq_cid(s)), v, n, &tk);
    note(mq_sess_g(s), tk);
    ax_free(v);
    mq_st(s)->saved = true;
    mq_sess_ttl(s);
}

/* How long the session's hash lives in Redis from now (redis.h): its
 * owner says so when the client comes and goes, and every few seconds
 * while it is connected. */
void mq_sess_ttl(mq_sess *s)
{
    redis_bp *b = mq_sess_g(s)->sv->bp;
    if (!b || !mq_st(s)->saved || !durable(s)) return;
    int64_t ms = mq_expiry(s) == UINT32_MAX
                     ? -1
                     : (int64_t)mq_expiry(s) * 1000 + (mq_sess_conn(s) ? REDIS_SESS_LEASE_MS : 0);
    redis_sess_ttl(b, mq_cid(s), ms);
}

/* The session ended: its rows go. */
static void sess_unsave(mq_sess *s)
{
    if (!mq_st(s)->saved) return;
    hub *h = mq_sess_g(s)->sv->hub;
    uint8_t key[MQ_MAX_CLIENT_ID + 1];
    size_t kl = strlen(mq_cid(s));
    memcpy(key, mq_cid(s), kl + 1);
    hub_state_put(h, NS_SESS, key, kl, NULL, 0, NULL);
    hub_state_clear(h, NS_OUT, key, kl + 1, NULL);
    hub_state_clear(h, NS_REL, key, kl + 1, NULL);
    mq_st(s)->saved = false;
}

/* ---- where a session is in each topic (Redis: its hand-over row) ---------------------------- */

/* A session under wildcard filters remembers, per concrete topic, the last
 * seq it was handed (its rows hold every QoS 1/2 message up to there), for
 * MQ_SEEN_MAX topics (the least recently delivered one is forgotten: the
 * claimer resumes it by time).  While messages come, its hand-over row is
 * written every MQ_HAND_FLUSH_MS, so a node that takes the session after
 * its owner died resumes from there (docs/cluster.md "MQTT"). */
#define MQ_SEEN_MAX 256
#define MQ_HAND_FLUSH_MS 100
#define MQ_HAND_SLACK_MS 1000 /* a row without a mark (an older node): from its time less this */
#define MQ_HAND_MARK "\x01"   /* the row's entry of the node's mark (no topic's name) */

typedef struct mq_seen_ent {
    uint64_t seq, used;
} mq_seen_ent;

struct mq_seen {
    hub_map topics; /* topic -> mq_seen_ent */
    mq_sess *dirty_next;
    uint64_t clock;
    bool dirty;   /* in g->hand_dirty */
    bool written; /* a row since the session came here */
};

static void seen_ent_free(hub_map_ent *e, void *ud)
{
    (void)ud;
    ax_free(e->value);
}

static void seen_free(mq_sess *s)
{
    struct mq_seen *v = s->fl->seen;
    if (!v) return;
    if (v->dirty)
        for (mq_sess **p = &mq_sess_g(s)->hand_dirty; *p; p = &(*p)->fl->seen->dirty_next)
            if (*p == s) {
                *p = v->dirty_next;
                break;
            }
    hub_map_each(&v->topics, seen_ent_free, NULL);
    hub_map_clear(&v->topics);
    ax_free(v);
    s->fl->seen = NULL;
}

typedef struct seen_oldest {
    const hub_map_ent *e;
    uint64_t used;
} seen_oldest;

static void seen_min(hub_map_ent *e, void *ud)
{
    seen_oldest *o = ud;
    const mq_seen_ent *x = e->value;
    if (!o->e || x->used < o->used) *o = (seen_oldest){e, x->used};
}

static void seen_evict(struct mq_seen *v)
{
    seen_oldest o = {NULL, 0};
    hub_map_each(&v->topics, seen_min, &o);
    if (!o.e) return;
    char key[HUB_MAX_TOPIC + 1];
    size_t kl = o.e->klen < sizeof key ? o.e->klen : sizeof key - 1;
    memcpy(key, o.e->key, kl);
    ax_free(hub_map_del(&v->topics, key, kl));
}

static struct mq_seen *seen_of(mq_sess *s)
{
    if (s->fl->seen || !mq_flight_get(s)) return s->fl->seen;
    struct mq_seen *v = ax_calloc(1, sizeof(*v));
    if (v) hub_map_init(&v->topics);
    return s->fl->seen = v;
}

/* The session has `topic` up to `seq` (NULL v, or wild false: nothing).
 * True: a topic it had not (and none forgotten for it). */
static bool seen_put(struct mq_seen *v, const char *topic, size_t tl, uint64_t seq, bool wild)
{
    if (!v || !wild) return false;
    mq_seen_ent *e = hub_map_get(&v->topics, topic, tl);
    bool fresh = !e && v->topics.n < MQ_SEEN_MAX;
    if (!e) {
        if (v->topics.n >= MQ_SEEN_MAX) seen_evict(v);
        if (!(e = ax_calloc(1, sizeof(*e)))) return false;
        if (hub_map_put(&v->topics, topic, tl, e, NULL) != 0) {
            ax_free(e);
            return false;
        }
    }
    if (seq > e->seq) e->seq = seq;
    e->used = ++v->clock;
    return fresh;
}

static void hand_write(mq_sess *s);

/* A claimed session's message from its rows, under a wildcard filter: the
 * session has it (the next hand-over says so too). */
static void seen_loaded(mq_sess *s, const hub_msg *m)
{
    if (!mq_sess_g(s)->sv->bp || !mq_expiry(s)) return;
    for (const mq_subopt *o = s->subs; o; o = mq_sub_next(o))
        if (!mq_sub_group(o) && strpbrk(o->filter, "+#") && /* (not shared: the hub's filter) */
            hub_filter_match(o->filter, m->topic)) {
            seen_put(seen_of(s), m->topic, m->topic_len, m->seq, true);
            return;
        }
}

/* The session was handed m (after its row): where it is now. */
static void seen_note(mq_sess *s, const hub_msg *m, bool wild)
{
    gw_mqtt *g = mq_sess_g(s);
    if (!g->sv->bp || !durable(s)) return;
    struct mq_seen *v = seen_of(s);
    if (!v) return;
    /* a new topic (a node that takes the session after a crash may not
     * know it: it must be in the row) or the first message: written now;
     * the rest at most every MQ_HAND_FLUSH_MS */
    if (seen_put(v, m->topic, m->topic_len, m->seq, wild) || !v->written) {
        v->written = true;
        hand_write(s);
        return;
    }
    if (v->dirty) return;
    v->dirty = true;
    v->dirty_next = g->hand_dirty;
    g->hand_dirty = s;
    if (!ax_timer_active(g->hand_tm)) ax_timer_start(g->hand_tm, MQ_HAND_FLUSH_MS, 0);
}

void mq_hand_flush(ax_timer *t, void *ud)
{
    gw_mqtt *g = ud;
    (void)t;
    while (g->hand_dirty) {
        mq_sess *s = g->hand_dirty;
        struct mq_seen *v = s->fl->seen;
        g->hand_dirty = v->dirty_next;
        v->dirty = false;
        v->dirty_next = NULL;
        if (durable(s)) hand_write(s);
    }
}

/* ---- QoS 2 to a persistent session: after the commit ------------------------------------- */

/* Exactly once across a crash: a QoS 2 PUBLISH (the client may hand it
 * over at once and then drop anything resent with another id) and a
 * PUBREL (the client forgets the id) leave only once the row that makes
 * the broker send them again after a restart is committed. */
struct mq_gate {
    hub_ack ack; /* first: the callback gets it */
    mq_sess *s;
    mq_gate *next;
    uint16_t pid;
    uint8_t type; /* AX_MQTT_PUBLISH or AX_MQTT_PUBREL */
};

static void emit_publish(mq_conn *c, hub_msg *m, uint8_t qos, bool retain, bool dup, uint16_t pid,
                         uint32_t sub_id);
static mq_out *out_find(mq_sess *s, uint16_t pid, uint8_t state);

static void gate_unlink(mq_gate *gt)
{
    for (mq_gate **p = &gt->s->fl->gates; *p; p = &(*p)->next)
        if (*p == gt) {
            *p = gt->next;
            return;
        }
}

static void gate_open(hub_ack *a, int status)
{
    mq_gate *gt = (mq_gate *)a;
    mq_sess *s = gt->s;
    mq_conn *c = mq_sess_conn(s);
    gate_unlink(gt);
    if (status && mq_sess_g(s)->sv->bp && c && !c->closing) {
        /* Redis did not take the row: not sent (the client would take the
         * message as handed over once); the client comes back and gets it
         * again from the session (docs/cluster.md "MQTT") */
        mq_close(c, AX_MQTT_RC_UNSPECIFIED, "the session could not be stored");
        ax_free(gt);
        return;
    }
    mq_out *o = gt->type == AX_MQTT_PUBREL ? out_find(s, gt->pid, MQ_OUT_COMP)
                                           : out_find(s, gt->pid, MQ_OUT_ACK);
    if (o && c && c->connacked && !c->closing) {
        if (gt->type == AX_MQTT_PUBREL)
            mq_send_ack(c, AX_MQTT_PUBREL, gt->pid, 0);
        else
            emit_publish(c, o->m, o->qos, o->retain, false, o->pid, o->sub_id);
    }
    ax_free(gt);
}

/* Send now, or once `ticket` is committed; false: the caller sends now. */
static bool gate(mq_sess *s, uint64_t ticket, uint8_t type, uint16_t pid)
{
    if (!ticket || !mq_flight_get(s)) return false;
    mq_gate *gt = ax_calloc(1, sizeof(*gt));
    if (!gt) return false;
    gt->s = s;
    gt->pid = pid;
    gt->type = type;
    if (hub_ack_wait(mq_sess_g(s)->sv->hub, &gt->ack, ticket, gate_open) != 0) {
        ax_free(gt);
        return false;
    }
    gt->next = s->fl->gates;
    s->fl->gates = gt;
    return true;
}

static bool gated(const mq_sess *s, uint16_t pid)
{
    for (const mq_gate *gt = s->fl->gates; gt; gt = gt->next)
        if (gt->pid == pid) return true;
    return false;
}

static void gates_cancel(mq_sess *s)
{
    while (s->fl->gates) {
        mq_gate *gt = s->fl->gates;
        s->fl->gates = gt->next;
        hub_ack_cancel(mq_sess_g(s)->sv->hub, &gt->ack);
        ax_free(gt);
    }
}

/* ---- the in-flight window -------------------------------------------------------------- */

static uint32_t window(const mq_sess *s)
{
    uint32_t w = mq_sess_g(s)->sv->cfg->mqtt_inflight;
    uint32_t rm = mq_sess_conn(s) ? mq_recv_max(mq_sess_conn(s)) : 0;
    if (rm && rm < w) w = rm;
    return w ? w : 1;
}

static bool out_full(const mq_sess *s)
{
    return s->fl->out_n >= window(s);
}

static mq_out *out_at(const mq_sess *s, uint32_t k)
{
    return &s->fl->out[(s->fl->out_head + k) % s->fl->out_cap];
}

static int out_reserve(mq_sess *s, uint32_t cap);

/* The ring grows as messages are in flight (an idle session has none). */
static mq_out *out_next(mq_sess *s)
{
    if (s->fl->out_n == s->fl->out_cap) {
        uint32_t cap = s->fl->out_cap ? s->fl->out_cap * 2 : 4, w = window(s);
        if (cap > w) cap = w > s->fl->out_n ? w : s->fl->out_n + 1;
        if (out_reserve(s, cap) != 0) return NULL;
    }
    return out_at(s, s->fl->out_n++);
}

/* Make the ring hold at least `cap` (the window may grow on a new
 * connection); the order is kept. */
static int out_reserve(mq_sess *s, uint32_t cap)
{
    if (s->fl->out_cap >= cap) return 0;
    if (!mq_flight_get(s)) return AX_ENOMEM;
    mq_out *n = ax_calloc(cap, sizeof(*n));
    if (!n) return AX_ENOMEM;
    for (uint32_t k = 0; k < s->fl->out_n; k++)
        n[k] = *out_at(s, k);
    ax_free(s->fl->out);
    s->fl->out = n;
    s->fl->out_cap = cap;
    s->fl->out_head = 0;
    return 0;
}

static bool pid_in_use(const mq_sess *s, uint16_t pid)
{
    for (uint32_t k = 0; k < s->fl->out_n; k++)
        if (out_at(s, k)->pid == pid && out_at(s, k)->state != MQ_OUT_FREE) return true;
    return false;
}

/* (s->fl is its own: out_next() made it) */
static uint16_t next_pid(mq_sess *s)
{
    for (;;) {
        if (++s->fl->next_pid == 0) s->fl->next_pid = 1;
        /* ids are handed out in order, so one in use is rare: only after
         * 65535 sends with an old one still unacknowledged */
        if (s->fl->out_n == 0 || !pid_in_use(s, s->fl->next_pid)) return s->fl->next_pid;
    }
}

/* Find the in-flight entry of pid in `state`. */
static mq_out *out_find(mq_sess *s, uint16_t pid, uint8_t state)
{
    for (uint32_t k = 0; k < s->fl->out_n; k++) {
        mq_out *o = out_at(s, k);
        if (o->pid == pid && o->state == state) return o;
    }
    return NULL;
}

/* Free an entry; the ring's head moves over freed entries. */
static void out_done(mq_sess *s, mq_out *o)
{
    out_forget(s, o->okey);
    hub_msg_unref(o->m);
    memset(o, 0, sizeof(*o));
    while (s->fl->out_n && out_at(s, 0)->state == MQ_OUT_FREE) {
        s->fl->out_head = (s->fl->out_head + 1) % s->fl->out_cap;
        s->fl->out_n--;
    }
}

/* Send m with a packet id (QoS 1/2) or without; the window has room. */
static void send_now(mq_sess *s, hub_msg *m, uint8_t qos, bool retain, uint32_t sub_id,
                     uint64_t okey)
{
    uint16_t pid = 0;
    size_t max = mq_max_packet(mq_sess_conn(s));
    if (max && m->topic_len + m->payload_len + m->ext_len + 32 > max) {
        out_forget(s, okey); /* 5.0 3.1.2.11.4: over the client's limit, dropped as if sent */
        return;
    }
    if (qos) {
        mq_out *o = out_next(s);
        if (!o) { /* no memory for the slot: sent as QoS 0 */
            out_forget(s, okey);
            qos = 0;
            goto send;
        }
        pid = next_pid(s);
        *o = (mq_out){hub_msg_ref(m), pid, qos, MQ_OUT_ACK, retain, sub_id, okey};
        uint64_t tk = out_save(s, &o->okey, MQ_OUT_ACK, qos, retain, pid, sub_id, m);
        if (qos == 2 && gate(s, tk, AX_MQTT_PUBLISH, pid)) return;
    }
send:
    emit_publish(mq_sess_conn(s), m, qos, retain, false, pid, sub_id);
}

/* ---- the session's queue ------------------------------------------------------------------ */

static void queue_push(mq_sess *s, hub_msg *m, uint8_t qos, bool retain, uint32_t sub_id)
{
    if (s->fl->qn >= mq_sess_g(s)->sv->cfg->mqtt_queued) {
        if (mq_sess_g(s)->dropped++ % 1000 == 0)
            ax_log(AX_LOG_WARN, "mqtt: session %s: queue full (mqtt_queued), messages dropped",
                   mq_cid(s));
        return;
    }
    mq_item *it = mq_flight_get(s) ? ax_malloc(sizeof(*it)) : NULL;
    if (!it) return;
    *it = (mq_item){NULL, hub_msg_ref(m), qos, retain, sub_id, 0};
    if (qos) out_save(s, &it->okey, ROW_QUEUED, qos, retain, 0, sub_id, m);
    *s->fl->qtail = it;
    s->fl->qtail = &it->next;
    s->fl->qn++;
}

static mq_item *queue_pop(mq_sess *s)
{
    mq_item *it = s->fl->qhead;
    if (!it) return NULL;
    s->fl->qhead = it->next;
    if (!s->fl->qhead) s->fl->qtail = &s->fl->qhead;
    s->fl->qn--;
    return it;
}

static bool online(const mq_sess *s)
{
    const mq_conn *c = mq_sess_conn(s);
    return c && c->connacked && !c->closing;
}

/* Deliver one message to the session: now, or into its queue.  False when
 * the hub should hold further messages back. */
static bool deliver(mq_sess *s, hub_msg *m, uint8_t qos, bool retain, uint32_t sub_id)
{
    if (msg_expired(m, wall_ms())) return true;
    if (!online(s)) {
        if (qos) queue_push(s, m, qos, retain, sub_id);
        return true;
    }
    /* a persistent session keeps what waits in its queue (and the store),
     * never in the hub's memory-only queue */
    bool keep = durable(s);
    if (s->fl->qhead || (qos && out_full(s)) || (keep && mq_sess_conn(s)->blocked)) {
        queue_push(s, m, qos, retain, sub_id);
        if (keep) return true;
        mq_st(s)->hub_blocked = true;
        return false;
    }
    send_now(s, m, qos, retain, sub_id, 0);
    if (!mq_sess_conn(s)->blocked || keep) return true;
    mq_st(s)->hub_blocked = true;
    return false;
}

void mq_sess_pump(mq_sess *s)
{
    if (!online(s)) return;
    int64_t now = wall_ms();
    while (s->fl->qhead && !mq_sess_conn(s)->blocked) {
        if (s->fl->qhead->qos && out_full(s)) return;
        mq_item *it = queue_pop(s);
        /* (what a restored session collected before its client signed in
         * again is checked against the identity it came back with) */
        if (!msg_expired(it->m, now) &&
            (!mq_sess_id(s) || auth_may_read(mq_sess_id(s), it->m->topic)))
            send_now(s, it->m, it->qos, it->retain, it->sub_id, it->okey);
        else
            out_forget(s, it->okey);
        hub_msg_unref(it->m);
        ax_free(it);
    }
    if (!s->fl->qhead && !mq_sess_conn(s)->blocked && mq_st(s)->hub_blocked && mq_sess_sub(s)) {
        mq_st(s)->hub_blocked = false;
        hub_sub_writable(mq_sess_sub(s)); /* may set it again */
    }
}

/* ---- the hub's side ---------------------------------------------------------------------- */

static const char *hub_filter(const mq_subopt *o)
{
    return o->filter + mq_sub_hoff(o);
}

static void seen_note(mq_sess *s, const hub_msg *m, bool wild);

/* The session's subscriptions through its own hub subscriber (not
 * shared), counted up to 2. */
static int direct_subs(const mq_sess *s)
{
    int n = 0;
    for (const mq_subopt *o = s->subs; o && n < 2; o = mq_sub_next(o))
        n += !mq_sub_group(o);
    return n;
}

static bool sess_write(hub_sub *hs, hub_msg *m, void *ud)
{
    mq_sess *s = hub_sub_ext(hs); /* (ud: the gateway) */
    (void)ud;
    if (m->kind != HUB_MSG) return true; /* presence and gap notices are not MQTT's */
    uint8_t qos = 0;
    bool any = false, retain = false, wild = false;
    uint32_t sub_id = 0;
    uint64_t self = hub_sub_id(hs);
    bool several = direct_subs(s) > 1; /* one: every message is its */
    for (mq_subopt *o = s->subs; o; o = mq_sub_next(o)) {
        if (mq_sub_group(o)) continue;
        if (several && !hub_filter_match(hub_filter(o), m->topic)) continue;
        if (o->no_local && m->origin == self) continue;
        any = true;
        wild |= strpbrk(hub_filter(o), "+#") != NULL;
        if (o->qos > qos) qos = o->qos;
        retain |= o->rap && m->retain;
        if (!sub_id) sub_id = mq_sub_id(o);
    }
    if (!any) return true;
    if (m->qos < qos) qos = m->qos;
    bool more = deliver(s, m, qos, retain, sub_id);
    seen_note(s, m, wild); /* (after its row) */
    return more;
}

static void sess_kick(hub_sub *hs, const char *why, void *ud)
{
    mq_sess *s = hub_sub_ext(hs);
    (void)ud;
    ax_log(AX_LOG_WARN, "mqtt client %s disconnected: %s", mq_cid(s), why);
    mq_st(s)->kicked = true; /* dead: its memory (the session's) goes with the session */
    hub_sub_close(hs);       /* (safe inside kick) */
    mq_set_expiry(s, 0);     /* the session cannot go on without its subscriber */
    if (mq_sess_conn(s)) mq_close(mq_sess_conn(s), AX_MQTT_RC_QUOTA_EXCEEDED, why);
}

static const hub_sub_ops sess_ops = {sess_write, sess_kick};

/* ---- shared subscriptions ----------------------------------------------------------------- */

/* The member to hand the next message to: connected ones first. */
static struct mq_member *group_pick(mq_group *gr)
{
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < gr->n; i++) {
            struct mq_member *mb = &gr->m[(gr->next + i) % gr->n];
            if (pass == 0 && (!online(mb->s) || mq_sess_conn(mb->s)->blocked)) continue;
            if (pass == 1 && !mq_expiry(mb->s) && !online(mb->s)) continue;
            gr->next = (gr->next + i + 1) % gr->n;
            return mb;
        }
    return NULL;
}

static bool group_write(hub_sub *hs, hub_msg *m, void *ud)
{
    mq_group *gr = ud;
    (void)hs;
    if (m->kind != HUB_MSG || !gr->n) return true;
    struct mq_member *mb = group_pick(gr);
    if (!mb) return true; /* nobody can take it: dropped, as for a topic nobody wants */
    uint8_t qos = m->qos < mb->o->qos ? m->qos : mb->o->qos;
    deliver(mb->s, m, qos, false, mq_sub_id(mb->o)); /* its queue is bounded */
    return true;
}

static void group_kick(hub_sub *hs, const char *why, void *ud)
{
    mq_group *gr = ud;
    (void)why;
    hub_sub_free(hs);
    gr->sub = NULL;
}

static const hub_sub_ops group_ops = {group_write, group_kick};

static void group_free(mq_group *gr)
{
    hub_map_del(&gr->g->groups, gr->key, strlen(gr->key)); /* frees the key */
    hub_sub_free(gr->sub);
    ax_free(gr->m);
    ax_free(gr);
}

static uint8_t group_join(mq_sess *s, mq_subopt *o, const ax_mqtt_sub *sub)
{
    gw_mqtt *g = mq_sess_g(s);
    char key[HUB_MAX_TOPIC * 2 + 2];
    int kl =
        snprintf(key, sizeof key, "%.*s/%s", (int)sub->share.len, sub->share.ptr, hub_filter(o));
    if (kl < 0 || (size_t)kl >= sizeof key) return AX_MQTT_RC_TOPIC_FILTER_INVALID;
    mq_group *gr = hub_map_get(&g->groups, key, (size_t)kl);
    if (!gr) {
        hub_map_ent *e;
        if (!(gr = ax_calloc(1, sizeof(*gr)))) return AX_MQTT_RC_UNSPECIFIED;
        gr->g = g;
        if (!(gr->sub = hub_sub_new(g->sv->hub, &group_ops, gr, NULL)) ||
            hub_map_put(&g->groups, key, (size_t)kl, gr, &e) != 0) {
            hub_sub_free(gr->sub);
            ax_free(gr);
            return AX_MQTT_RC_UNSPECIFIED;
        }
        gr->key = e->key;
        gr->filter = gr->key + sub->share.len + 1;
        int rc = hub_subscribe(gr->sub, gr->filter, -1, false);
        if (rc != 0) {
            group_free(gr);
            return rc == HUB_EFILTERS ? AX_MQTT_RC_QUOTA_EXCEEDED : AX_MQTT_RC_TOPIC_FILTER_INVALID;
        }
    }
    if (gr->n == gr->cap) {
        uint32_t cap = gr->cap ? gr->cap * 2 : 4;
        struct mq_member *m = ax_realloc(gr->m, cap * sizeof(*m));
        if (!m) return AX_MQTT_RC_UNSPECIFIED;
        gr->m = m;
        gr->cap = cap;
    }
    gr->m[gr->n++] = (struct mq_member){s, o};
    mq_subx_of(o)->group = gr; /* (a shared one has its mq_subx) */
    return 0;
}

static void group_leave(mq_subopt *o)
{
    mq_group *gr = mq_sub_group(o);
    for (uint32_t i = 0; i < gr->n; i++)
        if (gr->m[i].o == o) {
            gr->m[i] = gr->m[--gr->n];
            break;
        }
    if (gr->next >= gr->n) gr->next = 0;
    mq_subx_of(o)->group = NULL;
    if (!gr->n) group_free(gr);
}

/* ---- subscriptions ------------------------------------------------------------------------ */

/* The room for an inline subscription after the session's fields (to the
 * end of its allocation: mq_sess_new). */
static size_t inl_room(const mq_sess *s)
{
    size_t used = sizeof(mq_sess) + s->link.klen + 1 + offsetof(mq_stail, sub);
    return sess_ext(s->link.klen) - used;
}

/* A subscription of fl bytes of filter, zeroed: in the session's inline
 * room when `x` is not needed (shared, or a Subscription Identifier) and
 * it is free and fits, else an allocation of its own with its link (and
 * its mq_subx when `x`) before it. */
static mq_subopt *sub_alloc(mq_sess *s, size_t fl, bool x)
{
    mq_stail *st = mq_st(s);
    if (!x && !st->inl && sizeof(mq_subopt) + fl + 1 <= inl_room(s)) {
        mq_subopt *o = (mq_subopt *)(void *)st->sub;
        memset(o, 0, sizeof(mq_subopt) + fl + 1);
        o->inl = true;
        st->inl = true;
        return o;
    }
    size_t before = (x ? sizeof(mq_subx) : 0) + sizeof(mq_subopt *);
    char *p = ax_calloc(1, before + sizeof(mq_subopt) + fl + 1);
    if (!p) return NULL;
    mq_subopt *o = (mq_subopt *)(void *)(p + before);
    o->x = x;
    return o;
}

static void sub_free(mq_sess *s, mq_subopt *o)
{
    if (!o) return;
    if (o->inl)
        mq_st(s)->inl = false;
    else
        ax_free(o->x ? (void *)mq_subx_of(o) : (void *)mq_sub_nextp(o));
}

/* Into the session's list: the inline one last (it has no link), the
 * others first. */
static void sub_link(mq_sess *s, mq_subopt *o)
{
    if (o->inl) {
        mq_subopt **p = &s->subs;
        while (*p)
            p = mq_sub_nextp(*p); /* (none is inline: o was free) */
        *p = o;
    } else {
        *mq_sub_nextp(o) = s->subs;
        s->subs = o;
    }
}

static mq_subopt *sub_find(mq_sess *s, const char *f, size_t len, mq_subopt ***link)
{
    for (mq_subopt **p = &s->subs; p && *p; p = mq_sub_nextp(*p))
        if (strlen((*p)->filter) == len && memcmp((*p)->filter, f, len) == 0) {
            if (link) *link = p;
            return *p;
        }
    return NULL;
}

static void sub_drop(mq_sess *s, mq_subopt **link)
{
    mq_subopt *o = *link;
    *link = mq_sub_next(o);
    if (mq_sub_group(o))
        group_leave(o);
    else if (mq_sess_sub(s))
        hub_unsubscribe(mq_sess_sub(s), hub_filter(o));
    sub_free(s, o);
}

typedef struct retained_ctx {
    mq_sess *s;
    mq_subopt *o;
} retained_ctx;

static void send_retained(hub_msg *m, void *ud)
{
    retained_ctx *x = ud;
    uint8_t qos = m->qos < x->o->qos ? m->qos : x->o->qos;
    if (!online(x->s)) return;
    if (x->s->fl->qhead || (qos && out_full(x->s))) /* behind what waits */
        queue_push(x->s, m, qos, true, mq_sub_id(x->o));
    else
        send_now(x->s, m, qos, true, mq_sub_id(x->o), 0);
}

/* The hand-over point of an exact topic in the rows of a claimed session
 * (g->hand: "<topic>\0<seq, 8 bytes>" each): the last seq its old owner
 * had of the topic; -1: none. */
static int64_t hand_since(const gw_mqtt *g, const char *topic)
{
    const uint8_t *p = g->hand, *end = p + g->hand_len;
    while (p < end) {
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        if (!nul || end - nul < 9) return -1;
        if (strcmp((const char *)p, topic) == 0) return (int64_t)hub_get_be(nul + 1, 8);
        p = nul + 9;
    }
    return -1;
}

uint8_t mq_sess_subscribe(mq_sess *s, const ax_mqtt_sub *sub, uint32_t sub_id, bool *existed)
{
    const char *f = sub->filter.ptr;
    size_t fl = sub->filter.len;
    size_t hoff = sub->share.len ? (size_t)(sub->topic.ptr - f) : 0;
    *existed = false;
    if (!mq_sess_sub(s)) return AX_MQTT_RC_UNSPECIFIED;
    if (fl > HUB_MAX_TOPIC + 64 || fl - hoff > HUB_MAX_TOPIC ||
        !hub_filter_valid(f + hoff, fl - hoff))
        return AX_MQTT_RC_TOPIC_FILTER_INVALID;
    char hf[HUB_MAX_TOPIC + 1]; /* the hub's filter */
    memcpy(hf, f + hoff, fl - hoff);
    hf[fl - hoff] = '\0';
    if (mq_sess_id(s) && !auth_may_subscribe(mq_sess_id(s), hf)) return AX_MQTT_RC_NOT_AUTHORIZED;
    mq_subopt **link;
    *existed = sub_find(s, f, fl, &link) != NULL;
    if (*existed) sub_drop(s, link); /* replaced, options and all (its room too, if inline) */
    mq_subopt *o = sub_alloc(s, fl, sub->share.len || sub_id);
    if (!o) return AX_MQTT_RC_UNSPECIFIED;
    memcpy(o->filter, f, fl);
    if (o->x) {
        mq_subx_of(o)->hoff = (uint16_t)hoff;
        mq_subx_of(o)->sub_id = sub_id;
    }
    o->qos = sub->qos;
    o->no_local = sub->no_local;
    o->rap = sub->retain_as_published;
    uint8_t rc = 0;
    if (sub->share.len) {
        rc = group_join(s, o, sub);
    } else if (mq_sess_g(s)->hand && (hand_since(mq_sess_g(s), hub_filter(o)) >= 0 ||
                                      !hub_topic_valid(hub_filter(o), strlen(hub_filter(o))))) {
        /* subscribed after the load, from where the old owner stopped */
    } else {
        int e = hub_subscribe(mq_sess_sub(s), hub_filter(o), -1, false);
        rc = e == 0              ? 0
             : e == HUB_EFILTERS ? AX_MQTT_RC_QUOTA_EXCEEDED
                                 : AX_MQTT_RC_TOPIC_FILTER_INVALID;
    }
    if (rc) {
        sub_free(s, o);
        return rc;
    }
    sub_link(s, o);
    return o->qos;
}

void mq_sess_retained(mq_sess *s, const char *filter, size_t len, uint8_t rh, bool existed)
{
    mq_subopt *o = sub_find(s, filter, len, NULL);
    if (!o || mq_sub_group(o) || !mq_sess_sub(s) || rh == 2 || (rh == 1 && existed)) return;
    retained_ctx x = {s, o};
    hub_retained(mq_sess_sub(s), hub_filter(o), send_retained, &x);
}

uint8_t mq_sess_unsubscribe(mq_sess *s, const char *filter, size_t len)
{
    mq_subopt **link;
    if (!sub_find(s, filter, len, &link)) return AX_MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    sub_drop(s, link);
    return 0;
}

/* ---- acknowledgements from the client ------------------------------------------------------- */

int mq_sess_puback(mq_sess *s, uint16_t pid)
{
    mq_out *o = out_find(s, pid, MQ_OUT_ACK);
    if (!o || o->qos != 1) return AX_MQTT_RC_PACKET_ID_NOT_FOUND;
    out_done(s, o);
    mq_sess_pump(s);
    return 0;
}

int mq_sess_pubrec(mq_sess *s, uint16_t pid, uint8_t code)
{
    mq_out *o = out_find(s, pid, MQ_OUT_ACK);
    if (!o || o->qos != 2) return AX_MQTT_RC_PACKET_ID_NOT_FOUND;
    if (code >= 0x80) { /* 5.0: the client refused it: done */
        out_done(s, o);
        mq_sess_pump(s);
        return -1;
    }
    hub_msg_unref(o->m);
    o->m = NULL;
    o->state = MQ_OUT_COMP;
    uint64_t tk = out_save(s, &o->okey, MQ_OUT_COMP, o->qos, o->retain, o->pid, o->sub_id, NULL);
    return gate(s, tk, AX_MQTT_PUBREL, pid) ? -1 : 0; /* -1: PUBREL later */
}

int mq_sess_pubcomp(mq_sess *s, uint16_t pid)
{
    mq_out *o = out_find(s, pid, MQ_OUT_COMP);
    if (!o) return AX_MQTT_RC_PACKET_ID_NOT_FOUND;
    out_done(s, o);
    mq_sess_pump(s);
    return 0;
}

/* ---- inbound QoS 2 ids -------------------------------------------------------------------- */

bool mq_rel_has(const mq_sess *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->fl->nrel; i++)
        if (s->fl->rel[i] == pid) return true;
    return false;
}

int mq_rel_add(mq_sess *s, uint16_t pid)
{
    if (!mq_flight_get(s)) return AX_ENOMEM;
    if (s->fl->nrel == s->fl->relcap) {
        uint32_t cap = s->fl->relcap ? s->fl->relcap * 2 : 8;
        if (cap > 65536) return AX_ENOMEM;
        uint16_t *r = ax_realloc(s->fl->rel, cap * sizeof(*r));
        if (!r) return AX_ENOMEM;
        s->fl->rel = r;
        s->fl->relcap = cap;
    }
    s->fl->rel[s->fl->nrel++] = pid;
    if (durable(s)) {
        uint8_t key[MQ_MAX_CLIENT_ID + 3];
        uint64_t tk = 0;
        hub_state_put(mq_sess_g(s)->sv->hub, NS_REL, key, row_key(s, key, pid, 2), "", 0, &tk);
        note(mq_sess_g(s), tk);
        mq_st(s)->saved = true;
    }
    return 0;
}

bool mq_rel_del(mq_sess *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->fl->nrel; i++)
        if (s->fl->rel[i] == pid) {
            s->fl->rel[i] = s->fl->rel[--s->fl->nrel];
            if (mq_st(s)->saved && !mq_sess_g(s)->loading) {
                uint8_t key[MQ_MAX_CLIENT_ID + 3];
                uint64_t tk = 0;
                hub_state_put(mq_sess_g(s)->sv->hub, NS_REL, key, row_key(s, key, pid, 2), NULL, 0,
                              &tk);
                note(mq_sess_g(s), tk);
            }
            return true;
        }
    return false;
}

/* ---- wills ---------------------------------------------------------------------------------- */

void mq_will_free(mq_will *w)
{
    ax_free(w);
}

void mq_will_publish(gw_mqtt *g, mq_will *w, const auth_identity *id, const char *sender)
{
    if (!w) return;
    if (id && !auth_may_publish(id, w->topic)) {
        ax_log(AX_LOG_INFO, "mqtt: the will of %s to %s is not allowed: dropped", sender, w->topic);
        return;
    }
    hub_pub p = {.topic = w->topic,
                 .sender = sender,
                 .payload = w->payload,
                 .len = w->len,
                 .qos = w->qos,
                 .retain = w->retain,
                 .expiry_s = w->expiry_s,
                 .ext = w->ext,
                 .ext_len = w->ext_len,
                 .via = HUB_VIA_MQTT};
    uint64_t ticket;
    int err = 0;
    if (!hub_publish_pub(g->sv->hub, &p, &ticket, &err))
        ax_log(AX_LOG_INFO, "mqtt: the will of %s to %s: %s", sender, w->topic, hub_strerror(err));
    else
        GW_ADD(g->sv->gw[GW_MQTT].msgs_in, 1);
}

/* ---- sessions -------------------------------------------------------------------------------- */

mq_sess *mq_sess_new(gw_mqtt *g, const char *cid, size_t len)
{
    /* in its hub subscriber's allocation (hub_sub_new_ext(): one chunk
     * less for an idle client); the client id follows */
    hub_sub *hs = hub_sub_new_ext(g->sv->hub, &sess_ops, g, NULL, sess_ext(len));
    if (!hs) return NULL;
    mq_sess *s = hub_sub_ext(hs);
    s->fl = (mq_flight *)&no_flight;
    s->link.klen = (uint32_t)len; /* (mq_st(); hub_lmap_add sets it too) */
    if (hub_lmap_add(&g->by_id, &s->link, cid, len) != 0) {
        hub_sub_free(hs);
        return NULL;
    }
    g->nsessions++;
    return s;
}

mq_sess *mq_sess_find(gw_mqtt *g, const char *cid, size_t len)
{
    hub_link *l = hub_lmap_get(&g->by_id, cid, len);
    return l ? HUB_LINK_OF(l, mq_sess, link) : NULL;
}

void mq_sess_free(mq_sess *s, bool quiet)
{
    gw_mqtt *g = mq_sess_g(s);
    if (s->fl->will && !quiet) mq_will_publish(g, s->fl->will, mq_sess_id(s), mq_sender(s));
    mq_will_free(s->fl->will);
    gates_cancel(s);
    while (s->subs)
        sub_drop(s, &s->subs);
    if (mq_sess_sub(s)) hub_sub_close(mq_sess_sub(s)); /* (its memory, s's, goes last) */
    for (uint32_t k = 0; k < s->fl->out_n; k++)
        hub_msg_unref(out_at(s, k)->m);
    ax_free(s->fl->out);
    while (s->fl->qhead) {
        mq_item *it = queue_pop(s);
        hub_msg_unref(it->m);
        ax_free(it);
    }
    ax_free(s->fl->rel);
    seen_free(s);
    if (!quiet) sess_unsave(s);
    if (s->fl != &no_flight) {
        ax_free(s->fl->owner);
        ax_free(s->fl);
    }
    auth_identity_free(mq_sess_id(s)); /* (its subscriber's memory is ours until the free) */
    g->nsessions--;
    hub_lmap_del(&g->by_id, &s->link);
    hub_sub_free(hub_sub_of_ext(s));
}

void mq_sess_resume(mq_sess *s)
{
    mq_conn *c = mq_sess_conn(s);
    for (uint32_t k = 0; k < s->fl->out_n; k++) {
        mq_out *o = out_at(s, k);
        if (s->fl->gates && gated(s, o->pid)) continue; /* it leaves when its row is in */
        if (o->state == MQ_OUT_ACK)
            emit_publish(c, o->m, o->qos, o->retain, true, o->pid, o->sub_id);
        else if (o->state == MQ_OUT_COMP)
            mq_send_ack(c, AX_MQTT_PUBREL, o->pid, 0);
    }
    mq_st(s)->hub_blocked = true; /* the hub may hold messages from before */
    mq_sess_pump(s);
}

void mq_sess_detach(mq_sess *s)
{
    mq_sess_set_gone(s, mq_gone_stamp(ax_loop_now(mq_sess_g(s)->sv->loop)));
    mq_sess_ttl(s);                                /* the expiry counts from now */
    if (mq_sess_sub(s) && mq_st(s)->hub_blocked) { /* what the hub holds goes to the queue now */
        mq_st(s)->hub_blocked = false;
        hub_sub_writable(mq_sess_sub(s));
    }
}

/* ---- sessions back from the store ------------------------------------------------------------ */

static void load_sess(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    gw_mqtt *g = ud;
    const uint8_t *p = val, *end = p + vlen;
    if (vlen < 11 || klen > MQ_MAX_CLIENT_ID || vlen < 11u + p[4]) return;
    mq_sess *s = mq_sess_new(g, key, klen);
    if (!s) return;
    mq_set_expiry(s, (uint32_t)hub_get_be(p, 4));
    size_t ol = p[4];
    if (ol && (!mq_flight_get(s) || !(s->fl->owner = ax_malloc(ol + 1)))) {
        mq_sess_free(s, true); /* (out of memory: it would lose its owner) */
        return;
    }
    if (ol) {
        memcpy(s->fl->owner, p + 5, ol);
        s->fl->owner[ol] = '\0';
    }
    p += 5 + ol;
    uint16_t pid = (uint16_t)hub_get_be(p, 2);
    if (pid && mq_flight_get(s)) s->fl->next_pid = pid; /* (else ids start again at 1) */
    uint32_t n = (uint32_t)hub_get_be(p + 2, 4);
    p += 6;
    for (uint32_t i = 0; i < n && end - p >= 10; i++) {
        ax_mqtt_sub sub = {0};
        uint32_t sub_id = (uint32_t)hub_get_be(p, 4);
        size_t fl = (size_t)hub_get_be(p + 8, 2);
        if ((size_t)(end - p) < 10 + fl) break;
        sub.qos = p[4];
        sub.no_local = p[5] & 1;
        sub.retain_as_published = (p[5] >> 1) & 1;
        sub.filter = (ax_mqtt_str){(const char *)p + 10, fl};
        if (ax_mqtt_filter_valid(sub.filter.ptr, fl, &sub.share, &sub.topic)) {
            bool existed;
            mq_sess_subscribe(s, &sub, sub_id, &existed);
        }
        p += 10 + fl;
    }
    mq_sess_set_gone(s, mq_gone_stamp(ax_loop_now(g->sv->loop)));
    mq_st(s)->saved = true;
}

/* A row's session: the client id before the NUL of the key. */
static mq_sess *row_sess(gw_mqtt *g, const uint8_t *key, size_t klen, size_t tail)
{
    if (klen < tail + 2 || key[klen - tail - 1] != 0) return NULL;
    return mq_sess_find(g, (const char *)key, klen - tail - 1);
}

static void load_out(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    const uint8_t *v = val;
    mq_sess *s = row_sess(ud, key, klen, 8);
    if (!s || vlen < 9) return;
    uint64_t okey = hub_get_be((const uint8_t *)key + klen - 8, 8);
    uint8_t state = v[0], qos = v[1];
    bool retain = v[2];
    uint16_t pid = (uint16_t)hub_get_be(v + 3, 2);
    uint32_t sub_id = (uint32_t)hub_get_be(v + 5, 4);
    if (!mq_flight_get(s)) return;
    hub_msg *m = vlen > 9 ? hub_msg_unpack(v + 9, vlen - 9) : NULL;
    if (m && mq_sess_g(s)->hand) seen_loaded(s, m);
    if (okey > s->fl->oseq) s->fl->oseq = okey;
    if (state == ROW_QUEUED && m) {
        mq_item *it = ax_malloc(sizeof(*it));
        if (it) {
            *it = (mq_item){NULL, hub_msg_ref(m), qos, retain, sub_id, okey};
            *s->fl->qtail = it;
            s->fl->qtail = &it->next;
            s->fl->qn++;
        }
    } else if ((state == MQ_OUT_ACK && m) || state == MQ_OUT_COMP) {
        mq_out *o = s->fl->out_n + 1 > s->fl->out_cap && out_reserve(s, s->fl->out_cap * 2 + 4) != 0
                        ? NULL
                        : out_at(s, s->fl->out_n++);
        if (o) {
            *o = (mq_out){
                state == MQ_OUT_ACK ? hub_msg_ref(m) : NULL, pid, qos, state, retain, sub_id, okey};
        }
    }
    hub_msg_unref(m);
}

static void load_rel(const void *key, size_t klen, const void *val, size_t vlen, void *ud)
{
    mq_sess *s = row_sess(ud, key, klen, 2);
    (void)val, (void)vlen;
    if (s) mq_rel_add(s, (uint16_t)hub_get_be((const uint8_t *)key + klen - 2, 2));
}

/* ---- sessions in Redis (redis.h, docs/cluster.md "MQTT") ------------------------------------ */

typedef struct mq_claim mq_claim;
struct mq_claim {
    struct mq_claim *next;
    gw_mqtt *g; /* NULL: the gateway stopped */
    mq_conn *c; /* NULL: the connection went */
    auth_identity *id;
    mq_connect_args a;
    char cid[];
};

/* Where the session is, for a node that takes it (on a hand-over, or
 * after this one died): the last seq this node has of each topic the
 * session subscribes to exactly, and the last seq it was handed of each
 * topic it had under its wildcard filters (mq_seen): its rows hold every
 * message up to there, the claimer resumes after it.  Then the time of
 * the row (as the topic "") and the node's mark (hub_backplane_mark(), as
 * the topic MQ_HAND_MARK: every message up to there has come to the
 * session, the claimer replays the topics not in the row after it; one
 * Redis only).  Written before the "let go" (R), on the same
 * link as the rows: the claimer reads it with them; and while messages
 * come (mq_hand_flush). */
typedef struct hand_buf {
    uint8_t *p, *end;
} hand_buf;

static void hand_put(hand_buf *w, const char *topic, size_t tl, uint64_t seq)
{
    if (!w->p || (size_t)(w->end - w->p) < tl + 9) return;
    memcpy(w->p, topic, tl);
    w->p[tl] = 0;
    w->p = hub_put_be(w->p + tl + 1, seq, 8);
}

static void hand_seen(hub_map_ent *e, void *ud)
{
    hand_put(ud, e->key, e->klen, ((const mq_seen_ent *)e->value)->seq);
}

static size_t hand_seen_size(const mq_sess *s)
{
    size_t n = 0;
    const struct mq_seen *v = s->fl->seen;
    for (size_t i = 0; v && i < v->topics.nb; i++)
        for (const hub_map_ent *e = v->topics.b[i]; e; e = e->next)
            n += e->klen + 9;
    return n;
}

static void hand_write(mq_sess *s)
{
    size_t n = 9 + 10 + hand_seen_size(s), cl = strlen(mq_cid(s));
    for (const mq_subopt *o = s->subs; o; o = mq_sub_next(o))
        if (!mq_sub_group(o) && hub_topic_valid(hub_filter(o), strlen(hub_filter(o))))
            n += strlen(hub_filter(o)) + 9;
    uint8_t *v = ax_malloc(n), key[MQ_MAX_CLIENT_ID + 2];
    if (!v) return;
    hand_buf w = {v, v + n};
    hand_put(&w, "", 0, (uint64_t)wall_ms());
    uint64_t mark = hub_backplane_mark(mq_sess_g(s)->sv->hub);
    if (mark) hand_put(&w, MQ_HAND_MARK, 1, mark);
    for (const mq_subopt *o = s->subs; o; o = mq_sub_next(o)) {
        const char *f = hub_filter(o);
        size_t fl = strlen(f);
        if (mq_sub_group(o) || !hub_topic_valid(f, fl)) continue;
        hand_put(&w, f, fl, hub_backplane_last(mq_sess_g(s)->sv->hub, f));
    }
    if (s->fl->seen) hub_map_each(&s->fl->seen->topics, hand_seen, &w);
    memcpy(key, mq_cid(s), cl + 1);
    key[cl + 1] = 'h';
    hub_state_put(mq_sess_g(s)->sv->hub, NS_HAND, key, cl + 2, v, (size_t)(w.p - v), NULL);
    ax_free(v);
}

/* Another node took `cid`: its connection here goes, and the session (its
 * rows stay in Redis for the claimer). */
static void on_claim(void *ud, const char *cid, bool release)
{
    gw_mqtt *g = ud;
    mq_sess *s = mq_sess_find(g, cid, strlen(cid));
    if (!s) return;
    if (mq_sess_conn(s)) mq_take_over(s);
    if (release && mq_expiry(s)) hand_write(s);
    bool keep = mq_expiry(s) != 0;
    g->loading = keep; /* nothing written: the rows are the claimer's now */
    mq_sess_free(s, keep);
    g->loading = false;
}

static int row_rank(const char *ns)
{
    return strcmp(ns, NS_SESS) == 0 ? 0 : strcmp(ns, NS_OUT) == 0 ? 1 : 2;
}

static int row_cmp(const void *a, const void *b)
{
    const redis_row *x = a, *y = b;
    int d = row_rank(x->ns) - row_rank(y->ns);
    if (d) return d;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return memcmp(x->key, y->key, x->klen);
}

/* A wildcard filter of a claimed session: each topic of the hand-over row
 * it matches from its own seq, the others after the old owner's mark (a
 * row of an older node: from the row's time less MQ_HAND_SLACK_MS, what
 * may have been on its way to the old owner), then live. */
static void hand_wild(gw_mqtt *g, mq_sess *s, const char *f)
{
    const uint8_t *p = g->hand, *end = p + g->hand_len;
    size_t n = 0, cap = 0;
    hub_cursor *cur = NULL;
    hub_point from = {INT64_MAX, 0}; /* (a row without its time: live only) */
    while (p < end) {
        const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
        if (!nul || end - nul < 9) break;
        uint64_t v = hub_get_be(nul + 1, 8);
        if (nul == p) {
            from.from_ms = (int64_t)v - MQ_HAND_SLACK_MS;
        } else if (strcmp((const char *)p, MQ_HAND_MARK) == 0) {
            from.stamp = v;
        } else if (hub_filter_match(f, (const char *)p)) {
            if (n == cap) {
                hub_cursor *nc = ax_realloc(cur, (cap * 2 + 8) * sizeof(*nc));
                if (!nc) break;
                cur = nc;
                cap = cap * 2 + 8;
            }
            cur[n++] = (hub_cursor){(const char *)p, v};
            seen_put(seen_of(s), (const char *)p, (size_t)(nul - p), v, true); /* (passed on) */
        }
        p = nul + 9;
    }
    if (hub_subscribe_cursors(mq_sess_sub(s), f, cur, n, &from) != 0)
        (void)hub_subscribe(mq_sess_sub(s), f, -1, false);
    ax_free(cur);
}

/* The rows of a claimed session, in the order the store gives them. */
static void load_rows(gw_mqtt *g, const char *cid, redis_row *rows, size_t n)
{
    size_t cl = strlen(cid);
    uint8_t key[MQ_MAX_CLIENT_ID + 1 + 16];
    qsort(rows, n, sizeof *rows, row_cmp);
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].ns, NS_HAND) == 0) {
            g->hand = (const uint8_t *)rows[i].val;
            g->hand_len = rows[i].vlen;
        }
    g->loading = true;
    for (size_t i = 0; i < n; i++) {
        const redis_row *r = &rows[i];
        int rank = row_rank(r->ns);
        if (rank == 0 && !r->klen) {
            load_sess(cid, cl, r->val, r->vlen, g);
            continue;
        }
        if (!mq_sess_find(g, cid, cl) || r->klen > 16 || (rank == 2 && strcmp(r->ns, NS_REL) != 0))
            continue;
        memcpy(key, cid, cl + 1);
        memcpy(key + cl + 1, r->key, r->klen);
        if (rank == 1)
            load_out(key, cl + 1 + r->klen, r->val, r->vlen, g);
        else
            load_rel(key, cl + 1 + r->klen, r->val, r->vlen, g);
    }
    g->loading = false;
    mq_sess *s = g->hand ? mq_sess_find(g, cid, cl) : NULL;
    for (const mq_subopt *o = s ? s->subs : NULL; o; o = mq_sub_next(o)) {
        if (!mq_sub_group(o) && !hub_topic_valid(hub_filter(o), strlen(hub_filter(o)))) {
            hand_wild(g, s, hub_filter(o));
            continue;
        }
        int64_t since = mq_sub_group(o) ? -1 : hand_since(g, hub_filter(o));
        /* nothing published since the old owner stopped is missed: the
         * hub replays the topic from there (its stream in Redis), then live */
        if (since >= 0 && hub_subscribe(mq_sess_sub(s), hub_filter(o), since, false) != 0)
            (void)hub_subscribe(mq_sess_sub(s), hub_filter(o), -1, false);
    }
    if (g->hand) {
        memcpy(key, cid, cl + 1);
        key[cl + 1] = 'h';
        hub_state_put(g->sv->hub, NS_HAND, key, cl + 2, NULL, 0, NULL); /* (used) */
    }
    g->hand = NULL;
    g->hand_len = 0;
}

static void claimed(void *ud, int status, const redis_row *rows, size_t n)
{
    mq_claim *q = ud;
    gw_mqtt *g = q->g;
    if (g)
        for (mq_claim **p = &g->claims; *p; p = &(*p)->next)
            if (*p == q) {
                *p = q->next;
                break;
            }
    if (!g || !q->c) {
        auth_identity_free(q->id);
        ax_free(q);
        return;
    }
    size_t cl = strlen(q->cid);
    if (status == 0 && !q->a.clean && n && !mq_sess_find(g, q->cid, cl))
        load_rows(g, q->cid, (redis_row *)rows, n);
    else if (status)
        ax_log(AX_LOG_WARN, "mqtt client %s: its session could not be read from Redis: %s", q->cid,
               ax_strerror(status));
    mq_connect_finish(q->c, q->cid, cl, q->id, &q->a);
    ax_free(q);
}

bool mq_sess_claim(mq_conn *c, const char *cid, size_t cl, auth_identity *id,
                   const mq_connect_args *a)
{
    gw_mqtt *g = mq_gw(c);
    redis_bp *b = g->sv->bp;
    if (!b || mq_sess_find(g, cid, cl)) return false;
    mq_claim *q = ax_malloc(sizeof(*q) + cl + 1 + a->auth_len);
    if (!q) return false;
    *q = (mq_claim){NULL, g, c, id, *a};
    memcpy(q->cid, cid, cl);
    q->cid[cl] = '\0';
    if (a->auth) { /* (the caller's buffer is gone when the claim ends) */
        memcpy(q->cid + cl + 1, a->auth, a->auth_len);
        q->a.auth = q->cid + cl + 1;
    }
    if (redis_sess_claim(b, q->cid, a->clean, claimed, q, g->sv->loop) != 0) {
        ax_free(q); /* (Redis is away: this node's sessions only) */
        return false;
    }
    q->next = g->claims;
    g->claims = q;
    return true;
}

void mq_sess_claim_cancel(mq_conn *c)
{
    for (mq_claim *q = mq_gw(c)->claims; q; q = q->next)
        if (q->c == c) q->c = NULL;
}

void mq_sess_unload(gw_mqtt *g)
{
    redis_bp *b = g->sv->bp;
    if (b) redis_sess_handler(b, NULL, NULL, g->sv->loop);
    for (mq_claim *q = g->claims; q; q = q->next)
        q->g = NULL, q->c = NULL;
    g->claims = NULL;
}

void mq_sess_load(gw_mqtt *g)
{
    hub *h = g->sv->hub;
    if (g->sv->bp) redis_sess_handler(g->sv->bp, on_claim, g, g->sv->loop);
    if (g->sv->index > 0 || !hub_durable(h)) return; /* (the store: the first thread's) */
    g->loading = true;                               /* (nothing is written back while loading) */
    if (hub_state_load(h, NS_SESS, load_sess, g) != 0 ||
        hub_state_load(h, NS_OUT, load_out, g) != 0 || hub_state_load(h, NS_REL, load_rel, g) != 0)
        ax_log(AX_LOG_ERROR, "mqtt: cannot read the sessions in the store");
    g->loading = false;
    if (g->nsessions) ax_log(AX_LOG_INFO, "mqtt: %zu sessions restored", g->nsessions);
}
