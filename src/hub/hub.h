/* hub.h: the engine of `axon serve`: topics, subscriptions with MQTT
 * wildcards, per-topic sequence numbers, bounded history with resume,
 * presence, and per-subscriber output queues with a slow-consumer policy.
 *
 * The hub knows nothing of protocols.  A gateway makes a subscriber with a
 * small vtable: `write` puts one message on the wire (returning whether
 * the wire can take more now), and the hub keeps what the wire cannot take
 * yet in the subscriber's queue, bounded by a budget, applying the policy
 * when the budget is passed.  Messages are refcounted and immutable; each
 * carries a cache of its encodings (one slot per gateway kind), so a
 * message is encoded once per protocol and the same bytes are queued on
 * every subscriber of that protocol.
 *
 * Threads and the lock.  Gateways on several loops (threads) share one
 * hub; see hub_bind_loop().  One (recursive) mutex, taken by every hub_*
 * call, guards:
 *   - the topics, their history, sequence numbers, presence and index;
 *   - the subscription tree and each subscriber's filters, replay jobs,
 *     name, identity, reference count and in-flight count;
 *   - the store's queue of writes (hub_store has its own lock for the
 *     commit thread), the stats (hub_stats), the outboxes to other loops.
 * It does not cover, and no hub call holds it while doing:
 *   - socket writes: a publish routes under the lock and collects
 *     (subscriber, message) pairs; the subscriber's `write` runs after the
 *     lock is let go, on the subscriber's own loop (the publisher's thread
 *     for its own loop's subscribers, a posted batch for the others).  A
 *     subscriber's wire state (blocked, its queue) is touched only by that
 *     loop's thread, which is also the only one that may free it;
 *   - hub_msg_encoding()'s cache: filled once per slot with an atomic
 *     compare-and-swap (two threads may both encode; one copy is kept);
 *   - message reference counts (atomic).
 * Which loop a subscriber belongs to is fixed when it is made (the
 * caller's bound loop), and that is what routing reads.
 * One lock, not one per shard of topics, by measurement: a build with
 * -DAXON_LOCK_STATS counts the lock's contention (hub_free prints it), and
 * with 2 threads publishing on disjoint topics 0.07-0.43% of acquisitions
 * wait, about 0.3% of the server's CPU (bench/RESULTS.md, sixth session). */
#ifndef AXON_HUB_H
#define AXON_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/axon.h>

#define HUB_MAX_TOPIC 256 /* bytes in a topic name or filter */
#define HUB_MAX_LEVELS 32 /* '/'-separated levels */
#define HUB_MAX_NAME 64   /* bytes in a sender or presence name */
#define HUB_ENC_SLOTS 6   /* encodings cached per message (one per gateway kind) */

typedef struct hub hub;
typedef struct hub_sub hub_sub;
typedef struct hub_store hub_store;

enum hub_msg_kind {
    HUB_MSG = 0,   /* a published message */
    HUB_JOIN = 1,  /* presence: `sender` joined the room `topic` */
    HUB_LEAVE = 2, /* presence: `sender` left */
    HUB_GAP = 3    /* resume: history no longer reaches back to what was asked */
};

/* The gateway that published a message (hub_msg.via): IRC shows it as the
 * host of a sender from another gateway.  Messages read back from the
 * store or a backplane have none. */
enum hub_via {
    HUB_VIA_NONE = 0,
    HUB_VIA_WS,
    HUB_VIA_HTTP, /* the HTTP API (POST /api/publish) */
    HUB_VIA_LINE,
    HUB_VIA_UDP,
    HUB_VIA_MQTT,
    HUB_VIA_IRC,
    HUB_VIA_TERM,
    HUB_VIA_LIVE
};
static inline const char *hub_via_name(uint8_t via)
{
    static const char *const names[] = {"axon", "ws",  "http", "line", "udp",
                                        "mqtt", "irc", "term", "live"};
    return via < sizeof names / sizeof names[0] ? names[via] : "axon";
}

/* A message; immutable once published.  `seq` counts per topic from 1. */
typedef struct hub_msg {
    uint32_t refs;
    uint8_t kind;
    uint8_t via; /* enum hub_via (in what was padding) */
    uint64_t seq;
    int64_t time_ms; /* server time, ms since the epoch */
    /* with a Redis backplane: Redis's stamp of the publish (µs, rising
     * strictly per Redis: redis_pub.c), 0 when unknown */
    uint64_t stamp;
    char *topic;
    char *sender;
    char *payload;
    size_t payload_len, topic_len, sender_len;
    bool binary;                  /* not valid UTF-8 text */
    bool notice;                  /* an IRC NOTICE (gw_irc.c; not kept in the store) */
    uint64_t origin;              /* hub_sub_id() of the publisher, 0: none */
    int8_t policy;                /* its topic's slow-consumer policy (hub.c) */
    ax_slice *enc[HUB_ENC_SLOTS]; /* encodings, made on first use */
    struct hub_msg *next;         /* history list (hub.c) */
    /* MQTT (gw_mqtt.c; other gateways ignore them): the publisher's QoS
     * (1 for messages from other gateways: they are acknowledged), its
     * retain flag, the message expiry (seconds from time_ms; 0: none), and
     * opaque bytes a gateway passes through (MQTT 5.0 properties). */
    uint8_t qos;
    bool retain;
    uint32_t expiry_s;
    void *ext;
    size_t ext_len;
} hub_msg;

hub_msg *hub_msg_ref(hub_msg *m);
void hub_msg_unref(hub_msg *m);
/* The encoding for `slot`, made by `encode` the first time (NULL when it
 * fails); the message keeps the slice, the caller borrows it. */
ax_slice *hub_msg_encoding(hub_msg *m, int slot, ax_slice *(*encode)(const hub_msg *m, void *ud),
                           void *ud);

/* What to do when a subscriber's queue passes its budget. */
enum hub_policy {
    HUB_POLICY_UNSET = -1, /* configuration: not given, the default applies */
    HUB_DISCONNECT = 0,    /* close the subscriber (the default) */
    HUB_DROP_OLDEST = 1,   /* drop the oldest queued messages */
    HUB_KEEP_LATEST = 2    /* keep only the newest queued message per topic */
};

/* History and delivery settings for topics matching `pattern` (a filter
 * with wildcards); the first matching rule wins, the last is "#". */
typedef struct hub_rule {
    char pattern[HUB_MAX_TOPIC];
    uint32_t history_count; /* messages kept per topic */
    uint32_t history_age_s; /* 0: no age limit */
    enum hub_policy policy;
} hub_rule;

typedef struct hub_opts {
    hub_rule *rules; /* copied */
    int nrules;
    size_t sub_budget;        /* bytes queued per subscriber before the policy applies; 0: 1 MiB */
    size_t max_payload;       /* 0: 1 MiB */
    const char *data_dir;     /* NULL: no store (memory only) */
    int fsync_mode;           /* HUB_FSYNC_* */
    size_t max_topics;        /* topics (and rooms) that may exist at once; 0: 100000 */
    size_t max_filters;       /* subscriptions per subscriber; 0: 10000 */
    size_t store_queue_max;   /* messages waiting for the store; 0: HUB_STORE_QUEUE_MAX */
    size_t store_queue_bytes; /* and their bytes; 0: HUB_STORE_QUEUE_BYTES */
} hub_opts;

/* The hub's own errors, beside the AX_E… codes; hub_strerror() says them. */
enum {
    HUB_ETOPICS = -4101, /* publishing would make a topic past max_topics */
    HUB_EFILTERS = -4102 /* subscribing would pass max_filters */
};
/* A sentence for an AX_E… or HUB_E… code. */
const char *hub_strerror(int err);

/* What an acknowledgement (hub_publish_ticket(), hub_ack_wait()) means:
 *   ALWAYS  the message is in a commit fsync'd to the disk (group commit);
 *   BATCH   the message is committed (written to the WAL: a crash of the
 *           process loses nothing acknowledged); a power cut or OS crash
 *           may lose what was acknowledged in the last 200 ms (at most
 *           1,000 messages beyond one group commit);
 *   OFF     the message is queued for the store (memory only).
 * Sequence numbers are never reused after a crash, in any mode (store.c). */
enum { HUB_FSYNC_BATCH = 0, HUB_FSYNC_ALWAYS = 1, HUB_FSYNC_OFF = 2 };

#define HUB_STORE_QUEUE_MAX 100000        /* default bound of the store's queue: messages */
#define HUB_STORE_QUEUE_BYTES (64u << 20) /* and bytes */

/* The gateway's side of a subscriber. */
typedef struct hub_sub_ops {
    /* Put `m` on the wire.  Return true when more may follow at once,
     * false when the wire is full (the hub waits for hub_sub_writable()). */
    bool (*write)(hub_sub *s, hub_msg *m, void *ud);
    /* The policy closes the subscriber: the gateway closes its connection
     * (and later calls hub_sub_free()).  `why` is a short sentence. */
    void (*kick)(hub_sub *s, const char *why, void *ud);
} hub_sub_ops;

/* Counters for /metrics. */
typedef struct hub_stats {
    uint64_t published, delivered, dropped, kicked, subscribers, topics;
    uint64_t dropped_oldest, dropped_latest; /* dropped, by policy */
    uint64_t store_writes, store_commits, store_errors;
    uint64_t store_commit_us_total, store_commit_us_max;
    uint64_t store_queue_msgs, store_queue_bytes; /* waiting for (or in) a commit */
    uint64_t store_refused;                       /* publishes refused: the queue was full */
} hub_stats;

/* Make a hub on `loop`; opens (and creates) the store in data_dir and
 * loads each topic's sequence and recent history.  NULL with a sentence
 * in `why` when the store cannot be opened. */
hub *hub_new(ax_loop *loop, const hub_opts *o, char *why, size_t why_len);
/* Threads: each thread that makes subscribers calls this once with its
 * loop; a subscriber then belongs to that loop (its callbacks run there).
 * Threads that never call it count as the hub's own loop.  Every hub_*
 * call is then safe from any of those threads. */
void hub_bind_loop(ax_loop *loop);
/* Around the writes a thread makes after the lock (a publish's fan-out to
 * its loop, or a batch from another loop): `begin` before the first,
 * `end` after the last, so a gateway can gather them (the WebSocket
 * gateway corks: one writev per connection for the whole batch).  Set
 * once, before or while threads run; NULL: none. */
void hub_set_write_hooks(hub *h, void (*begin)(void), void (*end)(void));
/* Flush the store and free everything; subscribers must be freed first. */
void hub_free(hub *h);
ax_loop *hub_loop(const hub *h);

/* Is `t` a valid topic name (no wildcards) / a valid filter? */
bool hub_topic_valid(const char *t, size_t len);
bool hub_filter_valid(const char *f, size_t len);
/* Does filter `f` match topic `t` (MQTT rules: '+' one level, '#' the rest,
 * topics starting with '$' are not matched by a leading wildcard)? */
bool hub_filter_match(const char *f, const char *t);

/* Publish.  Returns the message's sequence number (> 0), or 0 with *err
 * (AX_EINVAL for a bad topic, AX_EMSGSIZE over max_payload, HUB_ETOPICS
 * when the topic is new and max_topics exist, AX_ENOMEM, AX_EAGAIN when
 * the store's queue is full: the publisher should slow down and try
 * again).  Every matching subscriber has it (delivered or queued) on
 * return.
 *
 * A topic with no history left (its rule's count or age), no subscription
 * to exactly its name and nobody present is freed; when it comes back, its
 * sequence starts above every seq it had before, so a resume never
 * takes a new message for one it has seen (a gap notice instead). */
uint64_t hub_publish(hub *h, const char *topic, const char *sender, const void *payload, size_t len,
                     int *err);
/* The same, marking the message as `origin`'s (gateways use it to leave a
 * user's own lines out of what they echo back). */
uint64_t hub_publish_from(hub *h, const hub_sub *origin, const char *topic, const char *sender,
                          const void *payload, size_t len, int *err);
/* The same, for a gateway that acknowledges: *ticket gets what to wait for
 * before the acknowledgement keeps the fsync mode's promise (hub_ack_wait),
 * or 0 when it already does (fsync off, no store). */
uint64_t hub_publish_ticket(hub *h, const hub_sub *origin, const char *topic, const char *sender,
                            const void *payload, size_t len, uint64_t *ticket, int *err);
/* hub_publish_ticket() from the gateway `via` (enum hub_via); `ticket` NULL:
 * no wait, as hub_publish_from(). */
uint64_t hub_publish_via(hub *h, uint8_t via, const hub_sub *origin, const char *topic,
                         const char *sender, const void *payload, size_t len, uint64_t *ticket,
                         int *err);

/* A publish with everything a gateway may say about it (hub_publish_ticket()
 * is this with qos 1 and the rest zero).  `retain`: the message becomes its
 * topic's retained one (an empty payload clears it; the message is still
 * delivered), given to later subscribers by hub_retained(). */
typedef struct hub_pub {
    const hub_sub *origin;
    const char *topic, *sender;
    const void *payload;
    size_t len;
    uint8_t qos;
    bool retain;
    uint32_t expiry_s;
    const void *ext;
    size_t ext_len;
    bool notice; /* hub_msg.notice */
    uint8_t via; /* hub_msg.via */
} hub_pub;
/* `ticket` NULL: the caller will not wait for an acknowledgement. */
uint64_t hub_publish_pub(hub *h, const hub_pub *p, uint64_t *ticket, int *err);
/* The retained messages of the topics `filter` matches that `s` may read
 * (the same check as live delivery), in topic name order: cb(m) for each
 * (borrowed: take a reference to keep it; cb must not call the hub).
 * Returns how many.  Expired ones (expiry_s) are left out. */
size_t hub_retained(hub_sub *s, const char *filter, void (*cb)(hub_msg *m, void *ud), void *ud);

/* State a gateway keeps across restarts in the hub's store (MQTT
 * sessions): rows (ns, key) -> value, committed in order with the
 * messages.  hub_state_put() with val NULL deletes the row;
 * hub_state_clear() deletes every row whose key starts with `prefix`.
 * *ticket (may be NULL) as for hub_publish_ticket().  Without a store they
 * do nothing (0) and hub_durable() is false. */
enum { HUB_STATE_PUT = 1, HUB_STATE_DEL = 2, HUB_STATE_CLEAR = 3 };
bool hub_durable(const hub *h);
int hub_state_put(hub *h, const char *ns, const void *key, size_t klen, const void *val,
                  size_t vlen, uint64_t *ticket);
int hub_state_clear(hub *h, const char *ns, const void *prefix, size_t plen, uint64_t *ticket);
int hub_state_load(hub *h, const char *ns,
                   void (*cb)(const void *key, size_t klen, const void *val, size_t vlen, void *ud),
                   void *ud);
/* Big-endian integers of n bytes (1..8) in state rows: write v at p and
 * return the end; read one back. */
static inline uint8_t *hub_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
    return p + n;
}
static inline uint64_t hub_get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}
/* A message as bytes for a state row, and back (NULL when malformed). */
size_t hub_msg_pack(const hub_msg *m, uint8_t *out, size_t cap);
hub_msg *hub_msg_unpack(const uint8_t *p, size_t n);

/* A pending acknowledgement, owned by the gateway (embed it; fields are
 * the store's).  hub_ack_wait() calls cb(a, status) later on this thread's
 * loop (never inside the call) once `ticket` is committed as the fsync mode
 * says (status 0) or its commit failed (AX_EIO).  Returns 0, or AX_ENOMEM
 * (cb will not run).  hub_ack_cancel() before cb ran: cb will not run (a
 * closed connection); safe inside any callback.  Callbacks of one loop run
 * in ticket order. */
typedef struct hub_ack {
    struct hub_ack *prev, *next;
    uint64_t ticket;
    uint64_t seq; /* 0, or (with a backplane) the seq the cluster gave: use it */
    void (*cb)(struct hub_ack *a, int status);
    void *q;
} hub_ack;
int hub_ack_wait(hub *h, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status));
void hub_ack_cancel(hub *h, hub_ack *a);

/* A subscriber; `name` (may be NULL) is its presence name. */
hub_sub *hub_sub_new(hub *h, const hub_sub_ops *ops, void *ud, const char *name);
/* The same with `extra` zeroed bytes for the gateway in the same
 * allocation (an idle connection's bytes count: docs/scale.md), at
 * hub_sub_ext() (aligned for pointers and 64-bit integers); hub_sub_of_ext() goes back.  The
 * bytes live as long as the subscriber's memory: up to hub_sub_free(), or
 * after hub_sub_close() up to the hub_sub_free() that follows. */
hub_sub *hub_sub_new_ext(hub *h, const hub_sub_ops *ops, void *ud, const char *name, size_t extra);
void *hub_sub_ext(hub_sub *s);
hub_sub *hub_sub_of_ext(void *ext);
/* Like hub_sub_free() (unsubscribed, nothing more delivered), but its
 * memory (and hub_sub_ext()) stays until the hub_sub_free() that must
 * follow; only hub_sub_free() may be called on it meanwhile. */
void hub_sub_close(hub_sub *s);
/* Unsubscribe everything (leave events for rooms it was present in) and
 * drop its queue.  Safe inside ops->kick and inside ops->write. */
void hub_sub_free(hub_sub *s);
void *hub_sub_data(const hub_sub *s);
/* A number no other subscriber of this hub has had (never 0). */
uint64_t hub_sub_id(const hub_sub *s);
const char *hub_sub_name(const hub_sub *s);
/* What the subscriber may read (auth.h; NULL: everything, the default):
 * every message handed to it — live, presence events, history and resume
 * replay — is checked with auth_may_read() first, and silently left out
 * when it may not (subscribing is checked by the gateway, with
 * auth_may_subscribe(), before hub_subscribe()).  The identity is
 * borrowed: replace it here before freeing the old one. */
struct auth_identity;
void hub_sub_set_identity(hub_sub *s, const struct auth_identity *id);
/* The identity last set (loop thread of the subscriber only). */
const struct auth_identity *hub_sub_identity(const hub_sub *s);
/* Without an identity, the subscriber's presence name stands for it in
 * one rule: `user/NAME/...` (private topics, direct messages) is handed
 * only to a subscriber called NAME (auth_private_may_read()).
 * Is a replay (hub_subscribe with since >= 0) still under way?  Safe
 * inside ops->write. */
bool hub_sub_replaying(const hub_sub *s);
/* Change the presence name (leave + join events in its rooms).  0 or
 * AX_EINVAL. */
int hub_sub_rename(hub_sub *s, const char *name);
/* Subscribe to a filter.  `since` >= 0 (the last seq the client has seen;
 * 0: none) asks for every retained message of each matching topic with
 * seq > since first (for a wildcard filter the resume applies per topic,
 * topics in name order), then live ones, with no gap and no duplicate;
 * when the history no longer reaches back, a HUB_GAP message (seq: the
 * oldest one kept) comes first.  `since` < 0: live messages only.
 * `present`: join the room's presence (exact topics, named subscribers).
 *
 * The replay is paced by the wire: it writes while ops->write says more
 * may follow and goes on from hub_sub_writable(), so it never fills the
 * subscriber's queue (however long the history, a reading client gets it
 * all).  Live messages of the topics it has not finished wait in their
 * history meanwhile; presence events are not held back.
 *
 * 0, AX_EINVAL (bad filter), HUB_EFILTERS (the subscriber has max_filters
 * already), AX_ENOMEM; subscribing twice to the same filter is 0 and
 * changes nothing.  Costs O(levels), not O(subscriptions). */
int hub_subscribe(hub_sub *s, const char *filter, int64_t since, bool present);
/* A resume point per topic (hub_subscribe_cursors). */
typedef struct hub_cursor {
    const char *topic;
    uint64_t seq; /* the last seq the client has of it */
} hub_cursor;
/* Where the topics not listed resume (hub_subscribe_cursors): after
 * `stamp` (hub_msg.stamp: hub_backplane_mark() of the node the client
 * left) when it is not 0, a message without a stamp (from a node of an
 * older version) from `from_ms` (message time) on; else from `from_ms`. */
typedef struct hub_point {
    int64_t from_ms;
    uint64_t stamp;
} hub_point;
/* hub_subscribe() of a wildcard filter whose client stopped at a
 * different seq in each topic (an MQTT session moving between nodes):
 * each listed topic (it must match the filter) is replayed after its own
 * seq, every other matching topic from `from` on (hub_point), then
 * live, per topic with no gap and no duplicate, through the one entry.
 * With a backplane the listed topics are visited first (hub_visit): the
 * replay waits for their history, their live messages wait in it.  One
 * that lists topics (ops->topics) is asked first for those published
 * since `from`, which this node may not have: they are visited too and
 * replayed from there (the subscription is made when it answers,
 * after this returns).  The cursors are copied.  A filter subscribed already: 0, nothing changes.
 * Returns as hub_subscribe(). */
int hub_subscribe_cursors(hub_sub *s, const char *filter, const hub_cursor *cur, size_t n,
                          const hub_point *from);
/* What hub_subscribe() would say about the filter, without subscribing
 * (gateways that reply before the replay starts). */
int hub_subscribe_check(const hub_sub *s, const char *filter);
int hub_unsubscribe(hub_sub *s, const char *filter);
/* The gateway's wire can take more: send what is queued. */
void hub_sub_writable(hub_sub *s);
size_t hub_sub_queued(const hub_sub *s);
void hub_sub_set_budget(hub_sub *s, size_t bytes);

/* A history read in steps, for replies too large to make at once:
 * hub_history_window() gives the topic's last seq (0: no such topic),
 * *first_kept, and in *from the seq after which the newest `max` messages
 * with seq > since begin; then each hub_history_more() call gives (to cb)
 * at most `max` more with *from < seq <= upto, oldest first, and moves
 * *from.  *pos keeps the place (NULL at first; the caller hands it to
 * hub_msg_unref() at the end).  Returns how many it gave: 0 when done. */
uint64_t hub_history_window(hub *h, const char *topic, uint64_t since, size_t max,
                            uint64_t *first_kept, uint64_t *from);
size_t hub_history_more(hub *h, const char *topic, hub_msg **pos, uint64_t *from, uint64_t upto,
                        size_t max, void (*cb)(hub_msg *m, void *ud), void *ud);
/* History of one topic with seq > since, oldest first, the newest `max`
 * of them: calls `cb` for each.  The retained history is in memory (loaded
 * from the store at start), so this never waits on the disk.  Returns the
 * topic's last seq (0: no such topic); *first_kept gets the oldest seq
 * still kept. */
uint64_t hub_history(hub *h, const char *topic, uint64_t since, size_t max,
                     void (*cb)(hub_msg *m, void *ud), void *ud, uint64_t *first_kept);
/* The topics that exist (have had a message or someone present), with
 * their last seq, in name order: those after `after` (NULL or "": from the
 * first), at most `max`.  Returns how many were given; `next` (may be
 * NULL; HUB_MAX_TOPIC + 1 bytes) gets the cursor to pass as `after` for
 * the rest, or "" when none is left.  The work is O(max log topics). */
size_t hub_topics(hub *h, const char *after, size_t max,
                  void (*cb)(const char *topic, uint64_t last_seq, size_t subs, void *ud), void *ud,
                  char *next);
/* Has `topic` had a message (its history) or a subscriber of exactly it
 * now (no wildcard)?  Cheap: one lookup under the hub lock. */
bool hub_topic_used(hub *h, const char *topic);
/* The presence names in a room, each once (with a backplane: those of
 * every node it knows of, hub_presence_local(): this node's only). */
void hub_presence(hub *h, const char *room, void (*cb)(const char *name, void *ud), void *ud);
void hub_presence_local(hub *h, const char *room, void (*cb)(const char *name, void *ud), void *ud);
const hub_stats *hub_stats_get(hub *h);

/* ---- the backplane (redis.c): several nodes share topics ------------------
 *
 * With a backplane the hub does not number messages itself: hub_publish()
 * hands the message to ops->publish and returns at once (the seq it
 * returns is a lower bound of the one the cluster gives: the topic's last
 * known seq + 1; hub_publish_ticket() gives a ticket whose acknowledgement
 * carries the real one in hub_ack.seq, once Redis has the message); the
 * message is delivered here when it comes back from
 * the cluster through hub_backplane_deliver(), in the cluster's order, on
 * every node alike.  ops->need says which filters this node's subscribers
 * need (called under the hub lock, from any thread, when the first
 * subscriber of a filter comes and when the last one goes). */
typedef struct hub_backplane_ops {
    /* Send `m` (topic, sender, payload, time; the hub keeps its reference)
     * to the cluster; `last`: the topic's last seq known here, `history`:
     * its rule's history count; `ticket` (NULL: none wanted) gets what to
     * wait for (ops->wait).  0, or AX_EAGAIN when the cluster cannot take
     * it now (unreachable, or too many on their way). */
    int (*publish)(void *ud, hub_msg *m, uint64_t last, uint32_t history, uint64_t *ticket);
    void (*need)(void *ud, const char *filter, bool on);
    /* hub_ack_wait() and hub_ack_cancel() for the tickets publish gave:
     * cb runs on `loop` when Redis answered (status 0, a->seq set) or the
     * message could not be sent (AX_EIO). */
    int (*wait)(void *ud, hub_ack *a, uint64_t ticket, void (*cb)(hub_ack *a, int status),
                ax_loop *loop);
    void (*cancel)(void *ud, hub_ack *a);
    /* Presence: the names of `room` on this node changed (under the hub
     * lock, any thread); and the names on the other nodes, for
     * hub_presence() (cb once per name; under the hub lock). */
    void (*present)(void *ud, const char *room);
    void (*presence)(void *ud, const char *room, void (*cb)(const char *name, void *ud),
                     void *cbud);
    /* Gateway state rows (hub_state_put, hub_state_clear: op HUB_STATE_*)
     * kept in the cluster instead of the store (NULL: not kept); `ticket`
     * (not NULL) gets one for ops->wait: done when Redis took the row,
     * AX_EIO when it did not. */
    int (*state)(void *ud, int op, const char *ns, const void *key, size_t klen, const void *val,
                 size_t vlen, uint64_t *ticket);
    /* hub_visit() (NULL: nothing to visit); cb on `loop`. */
    bool (*visit)(void *ud, const char *topic, void (*cb)(void *ud), void *cbud, ax_loop *loop);
    /* The topics matching wildcard `filter` published in the cluster
     * since `from` (hub_point), whether this node knows them or not,
     * for hub_subscribe_cursors() (NULL: none): the backplane receives
     * the filter's live messages first, then lists the topics; cb(cbud,
     * names, n) on `loop`, later (names freed after it returns; n 0 when
     * the cluster cannot be reached).  false: cb never comes. */
    bool (*topics)(void *ud, const char *filter, const hub_point *from,
                   void (*cb)(void *cbud, char **names, size_t n), void *cbud, ax_loop *loop);
    /* hub_backplane_mark() (NULL: none); any thread. */
    uint64_t (*mark)(void *ud);
} hub_backplane_ops;
/* Set before any subscriber or publish (serve does it after hub_new). */
void hub_set_backplane(hub *h, const hub_backplane_ops *ops, void *ud);
/* A topic no subscriber on this node follows has its history and presence
 * in the cluster, not here: hub_visit() makes the node follow it for a
 * while (30 s after the last visit) and calls cb(ud) on the calling
 * thread's loop once its history and presence are read (or the cluster
 * cannot be reached); then hub_history_window(), hub_presence() ... answer
 * for the cluster.  true: wait for cb (it always comes, never inside this
 * call); false: nothing to wait for (no backplane, or followed already).
 * Not under the hub lock. */
bool hub_visit(hub *h, const char *topic, void (*cb)(void *ud), void *ud);

enum { HUB_BP_OK = 0, HUB_BP_DUP = 1, HUB_BP_GAP = 2, HUB_BP_DROP = 3 };
/* How hub_backplane_deliver() takes a message: IN_ORDER refuses one whose
 * seq skips some (HUB_BP_GAP: backfill first); FORCE delivers it after a
 * gap notice to the topic's live subscribers; HISTORY only puts it in the
 * history (a topic's past, loaded when a node starts needing it: live
 * subscribers do not get it, resumes do). */
enum { HUB_BPD_IN_ORDER = 0, HUB_BPD_FORCE = 1, HUB_BPD_HISTORY = 2 };
/* A message from the cluster (seq, time, sender set): into the topic's
 * history and to its subscribers.  HUB_BP_DUP: seq is not above the
 * topic's last (not delivered again); HUB_BP_DROP: no room for the
 * topic. */
int hub_backplane_deliver(hub *h, hub_msg *m, int how);
/* A retained message the cluster has (seq: the one it was given): the
 * topic's, unless the topic has a newer one; an empty payload clears it. */
void hub_backplane_retained(hub *h, hub_msg *m);
/* A member of `room` on another node joined or left: the join/leave event
 * for this node's subscribers of the room, unless the name is present
 * here too (then nothing changed for them). */
void hub_backplane_presence(hub *h, const char *room, const char *name, bool joined);
/* The last seq this node has of `topic` (0: none). */
uint64_t hub_backplane_last(hub *h, const char *topic);
/* Where this node is in the cluster's order (ops->mark): every message
 * whose stamp is at or below it has been delivered here; 0: no such
 * point (no backplane, or none that orders publishes). */
uint64_t hub_backplane_mark(hub *h);
/* The oldest seq of `topic` this node holds (0: none); and messages of
 * the topic's past older than that (ascending seqs, from the cluster's
 * stream) put in front of its history (a topic first heard of through a
 * wildcard: its earlier messages, for resumes).  References are taken. */
uint64_t hub_backplane_first(hub *h, const char *topic);
void hub_backplane_older(hub *h, const char *topic, hub_msg *const *m, size_t n);
/* The history of `topic` is in step with the cluster: resumes of it that
 * waited (a subscription made it needed) go on. */
void hub_backplane_ready(hub *h, const char *topic);

/* ---- store.c: SQLite history ---------------------------------------------- */

typedef struct hub_store_opts {
    const char *dir;
    int fsync_mode;
    size_t queue_max, queue_bytes; /* 0: the defaults */
} hub_store_opts;

hub_store *hub_store_open(ax_loop *loop, const hub_store_opts *o, char *why, size_t why_len);
/* Commit what is queued, mark the store cleanly closed, free it.  Waiters
 * must be cancelled first. */
void hub_store_close(hub_store *st);
/* Queue one message for the next batched commit (never blocks on disk);
 * *ticket gets its ticket (0 with fsync off).  0, AX_EAGAIN when the queue
 * is at its bound, AX_ENOMEM. */
int hub_store_put(hub_store *st, const hub_msg *m, uint64_t *ticket);
/* See hub_ack_wait(); `loop` is where cb runs. */
int hub_store_wait(hub_store *st, ax_loop *loop, hub_ack *a, uint64_t ticket,
                   void (*cb)(hub_ack *a, int status));
void hub_store_cancel(hub_store *st, hub_ack *a);
/* How far a topic's numbers move after an unclean stop, for a queue bound. */
uint64_t hub_store_jump(size_t queue_max);
/* Where new topics start counting (0 until a crash was recovered from). */
uint64_t hub_store_seq_base(const hub_store *st);
/* The newest `max` messages of `topic`, oldest first (like hub_store_range). */
int hub_store_recent(hub_store *st, const char *topic, size_t max, void (*cb)(hub_msg *m, void *ud),
                     void *ud);
/* Last seq of every topic: cb(topic, last_seq, stored), where last_seq is
 * the largest number stored or recorded as possibly handed out, and
 * `stored` says whether the topic has messages in the store. */
int hub_store_topics(hub_store *st,
                     void (*cb)(const char *topic, uint64_t last, bool stored, void *ud), void *ud);
/* Messages of `topic` with seq > since, oldest first, at most max; each is
 * made with refs 1 and handed to cb, which takes the reference. */
int hub_store_range(hub_store *st, const char *topic, uint64_t since, size_t max,
                    void (*cb)(hub_msg *m, void *ud), void *ud);
/* Delete messages of `topic` with seq <= upto. */
void hub_store_trim(hub_store *st, const char *topic, uint64_t upto);
void hub_store_stats(hub_store *st, hub_stats *out);
/* Commit what is queued now (tests, shutdown). */
void hub_store_flush(hub_store *st);
/* Gateway state rows (ns, key) -> value, e.g. MQTT sessions, kept in the
 * same ordered, batched commits as the messages (a ticket as
 * hub_store_put's); op: 1 put, 2 delete, 3 delete every key starting with
 * `key` (val unused).  0 or AX_ENOMEM. */
int hub_store_state(hub_store *st, int op, const char *ns, const void *key, size_t klen,
                    const void *val, size_t vlen, uint64_t *ticket);
/* Every row of a namespace, in key order (at start). */
int hub_store_state_load(hub_store *st, const char *ns,
                         void (*cb)(const void *key, size_t klen, const void *val, size_t vlen,
                                    void *ud),
                         void *ud);

hub_msg *hub__msg_new(const char *topic, size_t tlen, const char *sender, const void *payload,
                      size_t len);
hub_msg *hub__msg_new_ext(const char *topic, size_t tlen, const char *sender, const void *payload,
                          size_t len, const void *ext, size_t ext_len);

#endif
