/* gw_mqtt.h: the MQTT gateway's own types, shared by its two files:
 * gw_mqtt.c (connections, packets in, CONNECT and auth, the gateway
 * interface, MQTT over WebSocket) and mqtt_sess.c (sessions,
 * subscriptions, shared subscriptions, retained and outbound delivery
 * with packet ids and in-flight windows, the output cork).  Nothing else
 * includes it.
 *
 * A connection (mq_conn) carries bytes; a session (mq_sess) is what a
 * client id owns: its hub subscriber, its subscriptions, the QoS 1/2
 * messages in flight to it and those waiting, the QoS 2 packet ids it
 * sent and has not released.  A persistent session (3.1.1 clean session
 * 0, 5.0 session expiry > 0) outlives its connection in memory until it
 * expires; a clean one ends with it.  One gateway instance per thread owns
 * its connections and sessions (the TCP and TLS listeners are on the first
 * thread only, so a client id's takeover always finds its session). */
#ifndef AXON_HUB_GW_MQTT_H
#define AXON_HUB_GW_MQTT_H

#include <string.h>
#include <sys/uio.h>

#include <axon/ws.h>

#include "map.h"
#include "proto/mqtt/mqtt.h"
#include "serve.h"

#define MQ_MAX_CLIENT_ID 256
#define MQ_CORK_IOV 32
#define MQ_CORK_SCRATCH 512

typedef struct gw_mqtt gw_mqtt;
typedef struct mq_conn mq_conn;
typedef struct mq_sess mq_sess;
typedef struct mq_subopt mq_subopt;
typedef struct mq_group mq_group;
typedef struct mq_item mq_item;
typedef struct mq_cork mq_cork;
typedef struct mq_wait mq_wait;
typedef struct mq_will mq_will;
typedef struct mq_gate mq_gate;
typedef struct mq_inbuf mq_inbuf;
typedef struct mq_auth mq_auth; /* gw_mqtt.c: an unfinished SCRAM exchange */
typedef struct mq_flight mq_flight;
typedef struct mq_cx mq_cx;

/* One subscription of a session; `filter` as the client gave it, the hub's
 * filter at filter + mq_sub_hoff() (after "$share/NAME/" for a shared
 * one).  One of its own allocation has its link in the session's list
 * (mq_sub_next) just before it, and a shared one, or one with a
 * Subscription Identifier, an mq_subx before that (`x` set): a plain one
 * is 10 bytes before its filter, a 32-byte chunk for "idle/1234" (48 with
 * the mq_subx's fields in every one).  A plain one whose filter fits the
 * room after its session's client id is there instead (`inl`, the
 * session's mq_stail): 2 bytes and the filter, no link (it is the list's
 * last), no chunk of its own (an idle client's bytes, docs/scale.md). */
struct mq_subopt {
    uint8_t qos;
    bool no_local : 1, rap : 1; /* 5.0 no local, retain as published */
    bool x : 1;                 /* an mq_subx before its link */
    bool inl : 1;               /* its session's inline one (mq_stail) */
    char filter[];
};

typedef struct mq_subx {
    mq_group *group; /* shared: its group; NULL: the session's own hub subscriber */
    uint32_t sub_id; /* 5.0 Subscription Identifier, 0: none */
    uint16_t hoff;
} mq_subx;

/* Where its link in the session's list is; NULL for the inline one (the
 * last). */
static inline mq_subopt **mq_sub_nextp(const mq_subopt *o)
{
    /* (in integers: the inline one is at the start of its room, and the
     * compiler cannot tell that this is never it) */
    return o->inl ? NULL : (mq_subopt **)((uintptr_t)o - sizeof(mq_subopt *));
}

static inline mq_subopt *mq_sub_next(const mq_subopt *o)
{
    return o->inl ? NULL : *mq_sub_nextp(o);
}

static inline mq_subx *mq_subx_of(const mq_subopt *o)
{
    return o->x ? (mq_subx *)((uintptr_t)mq_sub_nextp(o) - sizeof(mq_subx)) : NULL;
}

static inline mq_group *mq_sub_group(const mq_subopt *o)
{
    return o->x ? mq_subx_of(o)->group : NULL;
}

static inline uint32_t mq_sub_id(const mq_subopt *o)
{
    return o->x ? mq_subx_of(o)->sub_id : 0;
}

static inline uint16_t mq_sub_hoff(const mq_subopt *o)
{
    return o->x ? mq_subx_of(o)->hoff : 0;
}

/* A message waiting for a packet id (the window is full, or the client is
 * away). */
struct mq_item {
    mq_item *next;
    hub_msg *m;
    uint8_t qos;
    bool retain;
    uint32_t sub_id;
    uint64_t okey; /* its row in the store (0: none) */
};

/* A QoS 1/2 message sent and not yet acknowledged. */
enum { MQ_OUT_FREE = 0, MQ_OUT_ACK = 1, MQ_OUT_COMP = 2 };
typedef struct mq_out {
    hub_msg *m; /* NULL once PUBREC came (only the id is left) */
    uint16_t pid;
    uint8_t qos, state;
    bool retain;
    uint32_t sub_id;
    uint64_t okey; /* its row in the store (0: none) */
} mq_out;

/* A will message, kept as the CONNECT gave it. */
struct mq_will {
    uint64_t at; /* waiting in its session (s->will): loop time it is due */
    uint8_t qos;
    bool retain;
    uint32_t delay_s, expiry_s;
    size_t len, ext_len;
    char *topic;
    uint8_t *payload, *ext;
};

/* What a session has only once QoS 1/2 messages went to it or waited for
 * it, QoS 2 ids came from it, its will waits for its delay or it came back
 * from the store with an owner: made then (mq_flight_get()), kept until
 * the session ends.  Until then the session's `fl` is a shared empty one
 * (read-only: all counts 0, lists empty, no will, no owner). */
struct mq_flight {
    mq_out *out; /* ring of in-flight messages, in send order */
    mq_item *qhead, **qtail;
    uint16_t *rel;        /* inbound QoS 2 ids awaiting PUBREL */
    mq_gate *gates;       /* QoS 2 packets waiting for their row's commit */
    struct mq_seen *seen; /* Redis: where it is in each topic (hand_write) */
    mq_will *will;        /* a will waiting for its delay (the connection ended): until will->at */
    char *owner;          /* restored from the store: the name it belonged to */
    uint64_t oseq;        /* the last key of its rows of messages */
    uint32_t out_cap, out_n, out_head;
    uint32_t qn;
    uint32_t nrel, relcap;
    uint16_t next_pid; /* the last packet id handed out */
};

/* In its hub subscriber's allocation (hub_sub_new_ext): its gateway is
 * that subscriber's data, the subscriber is found back from it
 * (mq_sess_sub), the client id is the key after `link` (mq_cid) and its
 * few other fields follow that (mq_stail, mq_st). */
struct mq_sess {
    /* Its connection (mq_sess_conn), or while away (low bit set) the loop
     * time the connection ended, in seconds rounded up (mq_sess_gone;
     * mq_gone_stamp): one is only meaningful without the other. */
    union {
        mq_conn *conn;
        uintptr_t gone;
    } cg;
    mq_subopt *subs;
    mq_flight *fl; /* never NULL (see mq_flight); its will and owner too */
    hub_link link; /* in g->by_id; last: the client id follows */
};
/* 40 bytes (56 before its next packet id went to its mq_flight, its count
 * of direct subscriptions became a walk, its end time shared the
 * connection's word and its expiry and flags went after its client id;
 * 88 before its delayed will and restored owner went to its mq_flight,
 * its identity became its hub subscriber's (mq_sess_id), its count of
 * subscriptions a walk and its end time seconds; 120 before its gateway,
 * client id pointer, subscriber and will time were found instead of
 * kept).  The allocation keeps the size it had at 56 (56 + the id + 1,
 * 8-aligned: a 176-byte chunk with the subscriber for an id of up to 15
 * bytes): the 16 bytes less, less mq_stail's 5, and the alignment's 0-7
 * are the room of an inline subscription (mq_stail): a plain one with a
 * filter of up to 8 to 15 bytes (by the id's length; "idle/1234" with an
 * id of up to 14 bytes) has no chunk of its own (docs/scale.md). */
_Static_assert(sizeof(struct mq_sess) <= 40, "mq_sess grew: an idle MQTT client's bytes");

/* What follows a session's client id (and its NUL), unaligned: its expiry,
 * its flags, then the room of its inline subscription (to the end of its
 * allocation: mq_sess_new). */
typedef struct mq_stail {
    uint8_t expiry_s[4];  /* after the connection ends; UINT32_MAX: never (mq_expiry) */
    bool hub_blocked : 1; /* write() said false: hub_sub_writable() when there is room */
    bool saved : 1;       /* has rows in the store */
    bool kicked : 1;      /* its hub subscriber was closed (sess_kick): none left */
    bool inl : 1;         /* `sub` holds a subscription (an mq_subopt) */
    uint8_t sub[];
} mq_stail;

static inline const char *mq_cid(const mq_sess *s)
{
    return (const char *)(&s->link + 1);
}

static inline mq_stail *mq_st(const mq_sess *s)
{
    return (mq_stail *)(void *)((char *)(uintptr_t)mq_cid(s) + s->link.klen + 1);
}

static inline uint32_t mq_expiry(const mq_sess *s)
{
    uint32_t e;
    memcpy(&e, mq_st(s)->expiry_s, sizeof e);
    return e;
}

static inline void mq_set_expiry(mq_sess *s, uint32_t e)
{
    memcpy(mq_st(s)->expiry_s, &e, sizeof e);
}

/* Its connection; NULL while away. */
static inline mq_conn *mq_sess_conn(const mq_sess *s)
{
    return s->cg.gone & 1 ? NULL : s->cg.conn;
}

/* When its connection ended (mq_gone_stamp); 0: connected, or never. */
static inline uint32_t mq_sess_gone(const mq_sess *s)
{
    return s->cg.gone & 1 ? (uint32_t)(s->cg.gone >> 1) : 0;
}

static inline void mq_sess_set_conn(mq_sess *s, mq_conn *c)
{
    s->cg.conn = c;
}

/* Away since `gone_s` (a loop time in seconds: 31 bits are 68 years). */
static inline void mq_sess_set_gone(mq_sess *s, uint32_t gone_s)
{
    s->cg.gone = (uintptr_t)gone_s << 1 | 1;
}

static inline gw_mqtt *mq_sess_g(const mq_sess *s)
{
    return hub_sub_data(hub_sub_of_ext((void *)(uintptr_t)s));
}

/* The session's hub subscriber; NULL once kicked. */
static inline hub_sub *mq_sess_sub(const mq_sess *s)
{
    return mq_st(s)->kicked ? NULL : hub_sub_of_ext((void *)(uintptr_t)s);
}

/* The session's identity (owned; NULL: no auth): kept as its hub
 * subscriber's, which reads with it (hub_sub_set_identity). */
static inline auth_identity *mq_sess_id(const mq_sess *s)
{
    return (auth_identity *)(uintptr_t)hub_sub_identity(hub_sub_of_ext((void *)(uintptr_t)s));
}

/* The session's gone_s for loop time `now_ms`: rounded up (an expiry is
 * never early), never 0. */
static inline uint32_t mq_gone_stamp(uint64_t now_ms)
{
    return (uint32_t)(now_ms / 1000) + 1;
}

/* What few connections need: a will, a SCRAM exchange under way, inbound
 * topic aliases, acknowledgements waiting for the store, MQTT over
 * WebSocket.  Made with the first of them (mq_cx_get()), freed with the
 * connection; NULL in an idle TCP client (docs/scale.md). */
struct mq_cx {
    mq_conn *prev, *next; /* over WebSocket: in g->ws_conns (TCP ones: ax_loop_each_conn) */
    char **alias;         /* inbound topic aliases, [ALIAS_MAX + 1] (gw_mqtt.c) */
    mq_will *will;
    mq_auth *auth;       /* a CONNECT waiting for its SCRAM exchange */
    mq_inbuf *in;        /* WebSocket: a packet's first part */
    mq_wait *wtail;      /* acknowledgements in order, some waiting for the store: a ring
                          * (the last one's next is the first), NULL: none */
    uint32_t max_packet; /* 5.0: the client's Maximum Packet Size, 0: none */
    uint16_t recv_max;   /* 5.0: the client's Receive Maximum, 0: none */
    bool held;           /* not read: Redis is behind (gw_mqtt.c hold()) */
    mq_cork *ck;         /* its output of this loop turn (a TCP client's cx, made for it, goes
                          * with the turn's flush when it holds nothing else: mq_flush_all) */
};

/* Field order: pointers, then the smaller fields packed (an idle
 * connection's bytes count: docs/scale.md).  No place in a list of the
 * gateway's: a TCP or TLS connection is found in its loop's
 * (ax_loop_each_conn), one over WebSocket in g->ws_conns (its cx). */
struct mq_conn {
    union {         /* which one: `on_ws` (mq_tcp, mq_ws) */
        ax_conn *c; /* TCP or TLS */
        ax_ws *ws;  /* from its on_open on */
    } io;
    mq_sess *s;
    mq_cx *x; /* NULL until needed (mq_cx_get); its cork there */
    /* Loop time (its low 32 bits: intervals < 24 days) of the last packet
     * after CONNECT; before CONNECT, of the connection's start. */
    uint32_t last_in_ms;
    uint16_t keepalive_s;
    uint8_t version; /* 0 until CONNECT, then 3, 4 or 5 */
    bool closing : 1, blocked : 1, dirty : 1, connacked : 1, limited : 1;
    bool on_ws : 1;   /* io.ws (set at its on_open) */
    bool has_lim : 1; /* its share of the limits follows it (mq_lim) */
};
/* 32 bytes, glibc's 48-byte chunk; 56 with its share of the limits
 * (mq_lim), the 64-byte chunk (40, and 72 with its share, an 80-byte
 * chunk, before its gateway was found from its thread (mq_gw) and the
 * share's credits became 32 bits; 56 before its cork went to its cx and
 * its share of the limits, when one is on, into its own allocation; 88
 * before that share became an allocation of its own, made only when a
 * connection limit or a message rate is on, and its TCP and WebSocket
 * pointers one; 152 before its rare fields went to mq_cx, its place in
 * the gateway's list and in its dirty list went (g->dirtyv), and its 5.0
 * topic alias maximum became its version's): an idle client's bytes,
 * docs/scale.md. */
_Static_assert(sizeof(struct mq_conn) <= 32, "mq_conn grew: an idle MQTT client's bytes");
_Static_assert(sizeof(struct mq_conn) + sizeof(hub_limits_conn) <= 56,
               "mq_conn and its share of the limits: glibc's 64-byte chunk");

/* This thread's gateway (mqtt_start): one per loop, and a connection is
 * used on its loop's thread only. */
extern __thread gw_mqtt *mq_thread_gw;

/* Its gateway (its loop's; 8 bytes less in every connection than a
 * pointer to it). */
static inline gw_mqtt *mq_gw(const mq_conn *c)
{
    (void)c;
    return mq_thread_gw;
}

/* Its share of the limits (serve_limit_*), in the same allocation just
 * after it; NULL: none on (or not counted). */
static inline hub_limits_conn *mq_lim(const mq_conn *c)
{
    return c->has_lim ? (hub_limits_conn *)(void *)((char *)(uintptr_t)c + sizeof(mq_conn)) : NULL;
}

/* Its cork (the output of this loop turn); NULL: none. */
static inline mq_cork *mq_ck(const mq_conn *c)
{
    return c->x ? c->x->ck : NULL;
}

/* Its TCP or TLS connection; NULL over WebSocket. */
static inline ax_conn *mq_tcp(const mq_conn *c)
{
    return c->on_ws ? NULL : c->io.c;
}

/* Its WebSocket; NULL over TCP, and before the WebSocket's on_open. */
static inline ax_ws *mq_ws(const mq_conn *c)
{
    return c->on_ws ? c->io.ws : NULL;
}

/* The client's Maximum Packet Size and Receive Maximum (5.0; 0: none given). */
static inline uint32_t mq_max_packet(const mq_conn *c)
{
    return c->x ? c->x->max_packet : 0;
}

static inline uint16_t mq_recv_max(const mq_conn *c)
{
    return c->x ? c->x->recv_max : 0;
}

struct mq_inbuf { /* a WebSocket connection's partial packet */
    size_t len, cap;
    uint8_t data[];
};

struct mq_cork { /* a connection's output of this loop turn */
    mq_cork *next_free;
    int n;
    size_t used, bytes;
    struct iovec iov[MQ_CORK_IOV];
    ax_slice *ref[MQ_CORK_IOV];
    uint8_t scratch[MQ_CORK_SCRATCH];
};

/* A shared subscription: one hub subscriber for "$share/NAME/FILTER", each
 * message to one member (round robin, connected members first). */
struct mq_group {
    gw_mqtt *g;
    hub_sub *sub;
    char *key; /* in g->groups */
    const char *filter;
    struct mq_member {
        mq_sess *s;
        mq_subopt *o;
    } * m;
    uint32_t n, cap, next;
};

struct gw_mqtt {
    serve *sv;
    ax_listener *ls, *tls_ls;
    bool ws_mounted;
    mq_conn *ws_conns; /* over WebSocket (their cx); TCP and TLS: the loop's */
    size_t nconns;
    hub_lmap by_id; /* client id -> mq_sess (its link): every session */
    size_t nsessions;
    hub_map groups; /* "NAME/FILTER" -> mq_group */
    ax_timer *tick, *flusher, *sys;
    ax_timer *hand_tm; /* Redis: writes the dirty sessions' hand-over rows */
    mq_sess *hand_dirty;
    mq_conn **dirtyv; /* connections with output this loop turn (c->dirty) */
    uint32_t ndirty, dirty_cap;
    mq_cork *free_corks;
    int nfree_corks;
    ax_ws_opts wsopts;
    uint64_t next_auto_id;
    uint64_t dropped; /* messages a full session queue could not take */
    bool stopping, loading;
    uint64_t last_ticket;    /* the latest store ticket of a session's rows */
    struct mq_claim *claims; /* CONNECTs waiting for their session (Redis) */
    uint64_t ttl_ms;         /* with Redis: when sessions' TTLs were last renewed */
    const uint8_t *hand;     /* loading a claimed session: its hand-over row */
    size_t hand_len;
    uint64_t nheld; /* connections held back (their cx->held) */
};

/* ---- mqtt_sess.c ---- */
mq_sess *mq_sess_new(gw_mqtt *g, const char *cid, size_t len);
/* The session's flight state (mq_flight), made on first use; NULL: no memory. */
mq_flight *mq_flight_get(mq_sess *s);
/* The session of a client id, or NULL. */
mq_sess *mq_sess_find(gw_mqtt *g, const char *cid, size_t len);
/* End a session: its subscriptions, queues, hub subscriber; a will still
 * waiting is published unless `quiet`. */
void mq_sess_free(mq_sess *s, bool quiet);
/* The connection is attached (resumed or new): send what was in flight
 * again (DUP), then what waits. */
void mq_sess_resume(mq_sess *s);
/* The connection ended: the session keeps collecting (persistent) */
void mq_sess_detach(mq_sess *s);
/* Room in the window or on the wire: send what waits. */
void mq_sess_pump(mq_sess *s);
/* Acknowledgements from the client.  0, or the 5.0 reason code to answer
 * (0x92: no such packet id); mq_sess_pubrec(): the code of the PUBREL to
 * send, or -1: none now (refused, or it leaves once its state is stored). */
int mq_sess_puback(mq_sess *s, uint16_t pid);
int mq_sess_pubrec(mq_sess *s, uint16_t pid, uint8_t code);
int mq_sess_pubcomp(mq_sess *s, uint16_t pid);
/* SUBSCRIBE/UNSUBSCRIBE of one entry: the reason code for the ack;
 * *existed: the filter replaced one of the session's.  After the SUBACK,
 * mq_sess_retained() sends the retained messages (rh: 5.0 retain
 * handling; none for shared subscriptions). */
uint8_t mq_sess_subscribe(mq_sess *s, const ax_mqtt_sub *sub, uint32_t sub_id, bool *existed);
void mq_sess_retained(mq_sess *s, const char *filter, size_t len, uint8_t rh, bool existed);
uint8_t mq_sess_unsubscribe(mq_sess *s, const char *filter, size_t len);
/* Publish a will now (checked against the session's permissions). */
void mq_will_publish(gw_mqtt *g, mq_will *w, const auth_identity *id, const char *sender);
void mq_will_free(mq_will *w);
/* Persistent sessions in the hub's store (a session with an expiry, when
 * the hub has a store): the session (expiry, owner, subscriptions), each
 * QoS 1/2 message it owes, the QoS 2 ids it received.  mq_sess_save()
 * after CONNECT, SUBSCRIBE, UNSUBSCRIBE; mq_sess_load() at start. */
void mq_sess_save(mq_sess *s);
/* With Redis: how long the session's hash lives there from now (redis.h). */
void mq_sess_ttl(mq_sess *s);
void mq_sess_load(gw_mqtt *g);
/* With Redis (docs/cluster.md "MQTT"): the session of a CONNECT may be
 * another node's; true: it is claimed and mq_connect_finish() runs once
 * it is here (never inside this call); false: go on now.
 * mq_sess_claim_cancel(): the connection went; mq_sess_unload(): the
 * gateway stops. */
typedef struct mq_connect_args { /* what a CONNECT leaves for mq_connect_finish() */
    uint32_t expiry;
    uint16_t server_ka;
    bool clean, capped, assigned, want_resp;
    const char *auth; /* SCRAM's server-final message for the CONNACK, or NULL */
    size_t auth_len;
} mq_connect_args;
bool mq_sess_claim(mq_conn *c, const char *cid, size_t cl, auth_identity *id,
                   const mq_connect_args *a);
void mq_sess_claim_cancel(mq_conn *c);
void mq_sess_unload(gw_mqtt *g);
/* gw_mqtt.c: the rest of a CONNECT, with its session; a second
 * connection with the same client id: the first one goes. */
void mq_connect_finish(mq_conn *c, const char *cid, size_t cl, auth_identity *id,
                       const mq_connect_args *a);
void mq_take_over(mq_sess *s);
const char *mq_sess_owner(const mq_sess *s);
/* Inbound QoS 2 ids. */
bool mq_rel_has(const mq_sess *s, uint16_t pid);
int mq_rel_add(mq_sess *s, uint16_t pid);
bool mq_rel_del(mq_sess *s, uint16_t pid);

/* The output cork: bytes for this loop turn, sent in one write at its end. */
uint8_t *mq_cork_room(mq_conn *c, size_t n);
void mq_cork_slice(mq_conn *c, ax_slice *s, size_t off, size_t len);
void mq_cork_flush(mq_conn *c);
void mq_cork_release(mq_conn *c);
void mq_flush_all(ax_timer *t, void *ud);
/* Redis: the hand-over rows of the sessions that moved on (hand_tm). */
void mq_hand_flush(ax_timer *t, void *ud);

/* ---- gw_mqtt.c ---- */
/* Encode a packet onto the connection's output. */
void mq_send(mq_conn *c, const ax_mqtt_packet *p);
void mq_send_ack(mq_conn *c, unsigned type, uint16_t pid, uint8_t code);
/* c->x, made if absent; NULL when out of memory. */
mq_cx *mq_cx_get(mq_conn *c);
/* Close: 5.0 gets a DISCONNECT with `code` first (0: none sent). */
void mq_close(mq_conn *c, uint8_t code, const char *why);
/* The sender name of a session's messages. */
const char *mq_sender(const mq_sess *s);

#endif
