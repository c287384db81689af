/* redis_int.h: what the backplane's files share (redis.c: links, the
 * cluster's slots, subscriptions and history; redis_pub.c: publishing and
 * acknowledgements; redis_presence.c: presence).  Everything here runs on
 * the backplane's loop unless it says otherwise. */
#ifndef AXON_HUB_REDIS_INT_H
#define AXON_HUB_REDIS_INT_H

#include <pthread.h>
#include <stdint.h>

#include "map.h"
#include "redis.h"
#include "redis_link.h"

#define BP_INFLIGHT_MAX 10000 /* publishes sent and not yet answered */
/* Above the high mark publishers are paused (redis_bp_hold), resumed below
 * the low one: short of BP_INFLIGHT_MAX by more than the publishes a
 * thread's gateways start between two looks at the count. */
#define BP_HOLD_HIGH (BP_INFLIGHT_MAX * 3 / 4)
#define BP_HOLD_LOW (BP_INFLIGHT_MAX / 2)
#define BP_CHAN_MAX (HUB_MAX_TOPIC * 2 + 32)
#define BP_SEEDS_MAX 8
#define BP_SLOTS 16384
#define BP_SESS_MAX 64 /* threads whose MQTT sessions live in Redis */

enum { BP_DOWN = 0, BP_CONNECTING = 1, BP_UP = 2 };
enum { BP_CH_MSG = 0, BP_CH_PRES = 1 }; /* channel kinds */

typedef struct bp_shard bp_shard;
typedef struct bp_claim bp_claim;
typedef struct bp_row bp_row;

typedef struct bp_link {
    redis_bp *b;
    bp_shard *sh; /* NULL: the seed link (cluster: CLUSTER SLOTS) */
    rlink *rl;
    bool up; /* set up (authenticated, script loaded) */
    bool sub;
} bp_link;

/* One Redis (cluster: one master): a command link and a pub/sub link. */
struct bp_shard {
    char url[300];  /* tcp://, tls:// or unix:// */
    char addr[280]; /* host:port as the cluster names it */
    bp_link cmd, sub;
    uint64_t hb_rx_ms; /* monotonic: its heartbeat came back */
};

typedef struct need { /* a filter this node's subscribers need */
    struct need *next, *prev;
    bool exact;
    bool syncing;  /* an exact topic whose history is being read */
    bool overflow; /* the buffer filled while syncing: read again */
    bool ready;    /* the hub was told (hub_backplane_ready) */
    /* the first read of the topic's stream: its reply (range) and our
     * marker coming back through pub/sub (then every message published
     * after the subscription took effect is in buf) */
    bool first, got_range, got_mark;
    bool dropped;            /* cluster: Redis let go of its channel (its slot moved) */
    bool psub_ok;            /* a wildcard: Redis confirmed its PSUBSCRIBE */
    bool held;               /* live messages of it wait (buf, or overflow): b->holds */
    int shard;               /* the shard it is subscribed on */
    bool hub_needs;          /* a subscriber here needs it (else only visited) */
    uint64_t visit_until;    /* monotonic ms: followed for visits until then */
    struct bp_visit *visits; /* waiting for it to be ready */
    hub_msg **range;
    size_t nrange;
    hub_msg **buf;
    size_t nbuf;
    char chan[BP_CHAN_MAX]; /* channel, or glob for a wildcard */
    char filter[];
} need;

typedef struct bp_stats {
    uint64_t reconnects, published, publish_errors, refused, received, gaps, backfilled, lost;
    uint64_t lag_ms, state;
    uint64_t state_errors;              /* MQTT session rows Redis did not take */
    uint64_t state_retried, state_lost; /* of those: written again later; given up */
    uint64_t paused, paused_total;      /* publishers paused now; pauses (redis_bp_hold) */
} bp_stats;

struct redis_bp {
    hub *h;
    ax_loop *loop;
    pthread_t thread;
    redis_url seeds[BP_SEEDS_MAX]; /* the URLs given (one, or a cluster's nodes) */
    size_t nseeds, seed_next;
    redis_url u;     /* the first: credentials, db, TLS */
    ax_tls_ctx *tls; /* rediss:// with cert= or cacert=, else NULL (the default) */
    bool cluster;
    char url_shown[300]; /* without the password */
    bp_link seed;        /* cluster: asks a node for the slots */
    bool seed_close;     /* done: closed at the next tick */
    bool refreshing;     /* CLUSTER SLOTS asked again (a slot moved) */
    bp_shard *shards;
    size_t nshards;
    uint16_t *slots; /* cluster: slot -> shard */
    ax_timer *tick;
    hub_map needs; /* filter -> need */
    need *list;
    int state;
    bool broken, was_up, freeing;
    bool down_logged; /* said once per outage */
    char broken_why[512];
    uint64_t since_ms, next_try_ms, backoff_ms;
    uint64_t hb_sent_ms, hb_rx_ms; /* monotonic; hb_rx_ms: the oldest shard's */
    uint64_t inflight;             /* atomic */
    /* one Redis: the highest stamp (redis_pub.c) of what came through the
     * pub/sub link, a message or a heartbeat: everything Redis ran before
     * it has come (a link delivers in Redis's order); 0 in a cluster
     * (classic messages cross the cluster's bus in no order with a
     * master's own).  Atomic: hub_backplane_mark() */
    uint64_t mark;
    uint64_t seen;  /* the highest stamp come; the mark once nothing is held */
    uint32_t holds; /* needs whose live messages wait, backfills under way */
    char sha[41];
    char prefix[32]; /* channel prefix (one Redis): "axon:<db>:" */
    size_t plen;
    char hb_chan[64];
    char ret_chan[40]; /* retained messages, every node hears: "axon-ret:<db>" */
    /* cluster: wildcard filters need classic pub/sub (sharded has no
     * patterns): a node with some says so on wild_chan every few seconds,
     * and while somebody has, publishes go to the classic channel too */
    char wild_chan[40];
    uint64_t wild_until_ms, wild_said_ms;
    char node[24];           /* this node's id in presence hashes */
    hub_map pres_local;      /* rooms with names here -> bool dirty (the loop's) */
    hub_map pres_remote;     /* followed rooms -> the other nodes' names ("a\nb\n") */
    pthread_mutex_t pres_mu; /* guards pres_remote */
    bool pres_dirty;
    uint64_t pres_refresh_ms;
    bp_stats st;               /* atomic reads from other threads */
    uint64_t next_ticket;      /* atomic */
    pthread_mutex_t ack_mu;    /* guards acks */
    hub_map acks;              /* ticket (decimal) -> ack_rec */
    uint64_t state_failed[64]; /* tickets of rows Redis did not take, the latest (ack_mu) */
    unsigned state_nfailed;
    char sess_chan[40]; /* MQTT sessions' claims, every node hears: "axon-sess:<db>" */
    bp_claim *claims;   /* sessions this node claims */
    /* session rows sent and not answered, or failed and waiting to be
     * written again (redis_sess.c "Failed rows") */
    bp_row *rows;
    hub_map row_of; /* "<hash>\0<field>" -> its latest row in `rows` */
    size_t rq_n, rq_bytes;
    uint64_t rq_at, rq_backoff;
    bool rq_up;
    /* the MQTT gateways that hear of claims, one per thread (sess_mu) */
    pthread_mutex_t sess_mu;
    struct {
        redis_claim_fn fn;
        void *ud;
        ax_loop *loop;
    } sess_h[BP_SESS_MAX];
    /* this node's claims whose T has not come back: which thread claimed */
    struct {
        char tag[24];
        ax_loop *loop;
    } own[64];
    unsigned own_n;
    /* the topic index (redis_index.c): cluster: per slot, the number of
     * the hash tag "ix<n>" that falls in it; the reads under way */
    uint32_t *ixtag;
    struct bp_ixq *ixq;
    /* publishers paused for the publishes on their way (redis_bp_hold):
     * hold_want (atomic) says some are, the gateways that resume them, one
     * per thread (hold_mu) */
    bool hold_want;
    pthread_mutex_t hold_mu;
    struct {
        void (*fn)(void *ud);
        void *ud;
        ax_loop *loop;
    } hold_h[BP_SESS_MAX];
};

#define ST_ADD(b, f, n) __atomic_add_fetch(&(b)->st.f, (n), __ATOMIC_RELAXED)
#define ST_SET(b, f, v) __atomic_store_n(&(b)->st.f, (v), __ATOMIC_RELAXED)
#define ST_GET(b, f) __atomic_load_n(&(b)->st.f, __ATOMIC_RELAXED)

uint64_t bp__mono_ms(void);
/* Was the reply an answer (not an error, not a link let go of)?  *lp: the
 * link it came on. */
bool bp__ok(rlink *rl, const redisReply *r, bp_link **lp);
/* The shard that holds `topic`'s keys and channels. */
bp_shard *bp__shard(redis_bp *b, const char *topic);
/* A command about `topic` to its shard (cluster: MOVED and ASK followed).
 * 0, or AX_ENOTCONN when that shard's link is not up. */
int bp__cmd(redis_bp *b, const char *topic, rlink_reply_fn cb, void *priv, int argc,
            const char **argv, const size_t *lens);
/* (S)SUBSCRIBE / (S)UNSUBSCRIBE `chan` on `topic`'s shard. */
int bp__sub(redis_bp *b, const char *topic, const char *chan, bool on);
/* A topic's channel (BP_CH_*); and back: the kind, or -1 (topic, tl set). */
void bp__chan(redis_bp *b, int kind, const char *topic, char *out, size_t cap);
int bp__chan_parse(redis_bp *b, const char *s, size_t n,
                   char *topic); /* topic: HUB_MAX_TOPIC + 1 */
void bp__on_sub(redis_bp *b, bp_link *l, const redisReply *r);
/* A message as it comes from Redis: "<seq> <ms> <sender length>
 * <sender><payload>", or "x<seq> <packed>" (hub_msg_unpack), either after
 * "r<stamp> " (hub_msg.stamp); NULL when it is neither or is not of
 * `topic`. */
hub_msg *bp__msg_decode(const char *topic, size_t tl, const char *p, size_t n);

/* redis.c: the links */
void bp__link_broken(redis_bp *b, const char *why);
void bp__link_close(bp_link *l);
int bp__link_open(redis_bp *b, bp_link *l, const char *url);
void bp__url_of(const redis_url *u, const char *host, int port, char *out, size_t cap);
void bp__need_subscribe(redis_bp *b, need *n);

/* redis_slots.c */
unsigned bp__topic_slot(const char *topic);
bp_shard *bp__shard_by_addr(redis_bp *b, const char *addr);
void bp__shard_init(bp_shard *sh, const char *url, const char *addr);
void bp__shard_open(redis_bp *b, bp_shard *sh);
void bp__shards_free(redis_bp *b);
void bp__on_slots(rlink *rl, redisReply *r, void *priv);
void bp__slots_refresh(redis_bp *b);

/* redis_pub.c */
int bp__publish(void *ud, hub_msg *m, uint64_t last, uint32_t history, uint64_t *ticket);
int bp__wait(void *ud, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status),
             ax_loop *loop);
void bp__cancel(void *ud, hub_ack *a);
/* A state row's answer: its waiter is told (none waiting: a failure is
 * kept for a wait that comes later). */
void bp__state_done(redis_bp *b, uint64_t ticket, int status);
void bp__acks_free(redis_bp *b);
extern const char bp__script[];

/* Lua: `u`, Redis's clock in µs raised above the highest score of the
 * topic index IX (a KEYS[] expression), so stamps rise strictly: the
 * publish script's stamp, and the heartbeat's (redis_pub.c, redis.c). */
#define BP_STAMP_LUA(ix)                                                                           \
    "local now = redis.call('TIME')\n"                                                             \
    "local u = tonumber(now[1]) * 1000000 + tonumber(now[2])\n"                                    \
    "local top = redis.call('ZREVRANGE', " ix ", 0, 0, 'WITHSCORES')\n"                            \
    "if top[2] and tonumber(top[2]) >= u then u = tonumber(top[2]) + 1 end\n"

/* redis_retain.c */
void bp__ret_start(redis_bp *b);
void bp__ret_heard(redis_bp *b, const redisReply *data);

/* redis_sess.c */
int bp__state(void *ud, int op, const char *ns, const void *key, size_t klen, const void *val,
              size_t vlen, uint64_t *ticket);
void bp__sess_heard(redis_bp *b, const redisReply *data);
void bp__sess_start(redis_bp *b);
void bp__sess_tick(redis_bp *b, uint64_t now);
void bp__sess_free(redis_bp *b);

/* redis_index.c: the topic index (docs/cluster.md "Topic index") */
#define BP_INDEX_MAX 100000      /* one Redis: the most recently published topics kept */
#define BP_INDEX_SLOT_MAX 64     /* a cluster: per slot (16384 slots) */
#define BP_INDEX_READ_MAX 100000 /* topics one read hands the hub, at most */
int bp__ix_init(redis_bp *b);
void bp__ix_key(redis_bp *b, const char *topic, char *out, size_t cap);
bool bp__topics(void *ud, const char *filter, const hub_point *from,
                void (*cb)(void *cbud, char **names, size_t n), void *cbud, ax_loop *loop);
void bp__ix_psubscribed(redis_bp *b, const char *glob);
void bp__ix_tick(redis_bp *b, uint64_t now);
void bp__ix_free(redis_bp *b);
need *bp__need_make(redis_bp *b, const char *filter, bool hub_needs);
#define BP_VISIT_MS 30000 /* a visited topic is followed this long after the last visit */

/* redis_presence.c */
#define BP_PRESENCE_TTL_MS 15000
#define BP_PRESENCE_REFRESH_MS 5000
void bp__pres_follow(redis_bp *b, need *n, bool on);
void bp__pres_forget(redis_bp *b, const char *room);
void bp__pres_read(redis_bp *b, const char *room);
void bp__pres_tick(redis_bp *b, uint64_t now);
void bp__present(void *ud, const char *room);
void bp__presence(void *ud, const char *room, void (*cb)(const char *name, void *ud), void *cbud);
void bp__pres_free(redis_bp *b);

#endif
