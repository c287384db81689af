/* redis.h: the Redis backplane: several `axon serve` nodes share topics
 * (docs/cluster.md).
 *
 * One Redis numbers every topic's messages (a Lua script increments the
 * topic's seq, appends to its stream with the history bound and
 * publishes, atomically), keeps the history (the stream) and carries the
 * messages to every node (pub/sub): each node subscribes to what its own
 * subscribers need and delivers what comes back, so every node delivers a
 * topic in the same order.  Or a Redis Cluster: the same per topic, on
 * the master of the topic's slot, with sharded pub/sub.  The connections
 * are the core's (TLS too), on the hub's loop; hiredis encodes commands
 * and decodes replies (redis_link.h): no blocking call, no thread. */
#ifndef AXON_HUB_REDIS_H
#define AXON_HUB_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hub.h"

typedef struct redis_bp redis_bp;

/* The parts of a --redis URL: redis://[user:pass@]host[:port][/db],
 * rediss://...[?cert=PATH&key=PATH&cacert=PATH] (TLS, with the core's
 * certificate checks) or unix://path[?db=N]. */
typedef struct redis_url {
    char host[256]; /* or the socket's path */
    int port;       /* -1: a Unix socket */
    char user[128], pass[256];
    int db;
    bool tls; /* rediss:// */
    /* rediss://...?cert=PATH&key=PATH&cacert=PATH: a client certificate
     * (for a Redis with tls-auth-clients) and the CAs to trust ("": the
     * system's) */
    char cert[256], key[256], ca[256];
} redis_url;

/* 0, or -1 with a sentence in why. */
int redis_url_parse(const char *url, redis_url *out, char *why, size_t why_len);

/* The backplane for `h` on the hub's loop (the calling thread's): it
 * connects in the background and sets itself as the hub's backplane.
 * `url`: one URL, or several separated by commas (the nodes of a Redis
 * Cluster, any of which tells the others); `cluster`: a Redis Cluster
 * even with one URL (sharded pub/sub, keys routed by slot).  NULL when
 * out of memory or a URL is bad (why says). */
redis_bp *redis_bp_new(hub *h, const char *url, bool cluster, char *why, size_t why_len);
/* 0 when `urls` (one URL or several, comma-separated) would do for
 * redis_bp_new(), or -1 with a sentence in why. */
int redis_urls_check(const char *urls, char *why, size_t why_len);
/* The Redis Cluster slot of a key (CRC16 of its hash tag, or of it all). */
unsigned redis_key_slot(const char *key, size_t n);
/* Disconnect and free, on the backplane's thread, after the hub's
 * subscribers are gone and before hub_free(). */
void redis_bp_free(redis_bp *b);

/* Is the link fresh (both connections up, a heartbeat went through Redis
 * and back in the last 3 s)?  Any thread; `why` says what is wrong. */
bool redis_bp_healthy(redis_bp *b, char *why, size_t why_len);
/* Prometheus text for /metrics into buf (at most len bytes, always
 * terminated); returns its length.  Any thread. */
size_t redis_bp_metrics(redis_bp *b, char *buf, size_t len);

/* ---- publishers held back (redis_pub.c) ----
 *
 * At most BP_INFLIGHT_MAX publishes are on their way to Redis; past that
 * ops->publish refuses them (AX_EAGAIN).  A gateway that can slow a
 * publisher down instead (MQTT: it stops reading the connection, and TCP
 * flow control slows the client) asks redis_bp_hold() before a publish:
 * true when more than BP_HOLD_HIGH are on their way (counted as paused,
 * axon_redis_paused): it pauses the publisher and resumes it when its
 * handler runs (on its loop, once fewer than BP_HOLD_LOW are: at least
 * once after any pause), or when redis_bp_calm() says so (its timer: a
 * wake that could not be posted); then redis_bp_unhold(b, n) for the n
 * publishers resumed or closed.  redis_hold_handler() with fn NULL: no
 * more, from the same thread, before the gateway is freed.  Any thread. */
bool redis_bp_hold(redis_bp *b);
void redis_bp_unhold(redis_bp *b, uint64_t n);
bool redis_bp_calm(redis_bp *b);
void redis_hold_handler(redis_bp *b, void (*fn)(void *ud), void *ud, ax_loop *loop);

/* ---- MQTT sessions (redis_sess.c) ----
 *
 * A persistent session lives in Redis as one hash per client id (its
 * state rows, hub_state_put(), and the node that owns it); the node a
 * client connects to claims it: the owner lets go of it (and of the
 * connection, a takeover) and says so, then the claimer reads the rows. */
typedef struct redis_row {
    char ns[16];           /* the row's namespace */
    const char *key, *val; /* key: what follows the client id's NUL (klen 0: none) */
    size_t klen, vlen;
} redis_row;
/* Called on the handler's loop when a client with `cid` connected to
 * another node: let go of its connection and (`release`: this node owns
 * it) its session, keeping the rows (written before the claimer is told). */
typedef void (*redis_claim_fn)(void *ud, const char *cid, bool release);
/* The MQTT gateway of `loop`'s thread hears of claims (on that loop);
 * fn NULL: no more.  Called on that thread. */
void redis_sess_handler(redis_bp *b, redis_claim_fn fn, void *ud, ax_loop *loop);
/* Claim `cid` for this node: cb(ud, status, rows, n) once the owner let
 * go (or 2 s passed): status 0 and the session's rows (none when `clean`:
 * they are deleted), or a negative AX_E code (Redis unreachable: cb is not
 * called then and the code is returned here).  Any thread: cb runs on
 * `loop`, the caller's (another thread's claim is posted to the
 * backplane's loop, its answer back, never before this returns). */
int redis_sess_claim(redis_bp *b, const char *cid, bool clean,
                     void (*cb)(void *ud, int status, const redis_row *rows, size_t n), void *ud,
                     ax_loop *loop);
/* How long a session's hash lives in Redis: `ms` (< 0: for ever).  Its
 * owner sets it: while the client is connected to the session's expiry
 * plus REDIS_SESS_LEASE_MS, set again every REDIS_SESS_REFRESH_MS, so a
 * node that dies leaves nothing behind for longer than that; once the
 * client left, to the session's expiry.  Any thread (in order with the
 * thread's rows). */
#define REDIS_SESS_LEASE_MS 15000
#define REDIS_SESS_REFRESH_MS 5000
void redis_sess_ttl(redis_bp *b, const char *cid, int64_t ms);
/* Is this the backplane's thread? */
bool redis_bp_here(const redis_bp *b);

#endif
