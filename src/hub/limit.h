/* limit.h: how much a client may do.  Token buckets for message and byte
 * rates, a fixed-size table of source addresses (connection counts, rates
 * and a failed-login guard per address), and counters of every refusal.
 *
 * Time is passed in (milliseconds of a monotonic clock, ax_loop_now()), so
 * the engine never reads a clock and its tests are deterministic.  No call
 * allocates after hub_limits_new(); every check is O(1).
 *
 * Decisions:
 *  - A bucket holds `burst` tokens and gains `n` tokens each `per_ms`; a
 *    check takes `cost` tokens or refuses without taking any, saying how
 *    long until it would pass (HTTP 429 Retry-After).  A cost above the
 *    burst (one message larger than the byte burst) passes on a full
 *    bucket and empties it, so it is slowed, never refused for ever.
 *  - An address is grouped before it is counted: IPv4 by ipv4_prefix
 *    (32: each address alone), IPv6 by ipv6_prefix (64: one /64, what one
 *    customer usually gets); an IPv4-mapped IPv6 address counts as IPv4;
 *    every Unix-socket client is the one address "local".
 *  - The table has ip_table_size slots, allocated at start and never
 *    more.  An address may use one of 16 slots chosen by a keyed hash
 *    (SipHash-2-4 with a random key, so nobody can aim addresses at one
 *    place).  A slot is taken over when its address has no connection
 *    and nothing to remember: all its buckets are full again and its last
 *    refusal was logged more than a log window ago ("idle"); forgetting it
 *    changes no answer.  When all 16 slots are held by active addresses,
 *    the newcomer shares its stripe's overflow entry: the addresses in
 *    overflow are limited together as though they were one.  So an
 *    attacker cycling through addresses cannot grow the table, cannot
 *    evict an address that is being limited (its failed logins are not
 *    forgotten), and past the table's size gets one address's worth of
 *    service in total; normal clients keep their own slots.
 *  - Refusals are counted per kind (hub_limits_stats(), for /metrics).
 *    Each answer says whether this refusal is the first of its kind for
 *    this client (connection-level kinds) or address (address-level
 *    kinds) in the current log window (HUB_LIMITS_LOG_WINDOW_MS), so the
 *    caller logs once, not once per message.
 *
 * Threads: the hub runs one loop per thread, and connections from one
 * address may land on any loop.  The table is split into stripes, each
 * with its own mutex guarding its slots and overflow entry (an address
 * always maps to one stripe).  The global connection count and the
 * refusal counters are atomics.  A hub_limits_conn belongs to its
 * connection's loop thread and is used without a lock; its pointer to the
 * address entry stays valid while the connection is open (an entry with
 * connections is never taken over).  Every function here may be called
 * from any loop thread. */
#ifndef AXON_HUB_LIMIT_H
#define AXON_HUB_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* --- token buckets ------------------------------------------------------ */

/* A rate: `n` tokens every `per_ms`, at most `burst` saved up.  n == 0
 * means unlimited.  Valid rates have 1 <= n <= HUB_RATE_MAX_N, per_ms >= 1,
 * burst >= 1 and burst * per_ms <= HUB_RATE_MAX_CAP (checked by
 * hub_rate_parse() and hub_limits_new()). */
typedef struct hub_rate {
    uint64_t n, per_ms, burst;
} hub_rate;

#define HUB_RATE_MAX_N (UINT64_C(1) << 40)
#define HUB_RATE_MAX_CAP (UINT64_C(1) << 62)

/* A bucket's state (16 bytes; embed it).  Credits: one token is `per_ms`
 * credits and `n` credits come in each millisecond, which keeps the
 * arithmetic in integers and exact. */
typedef struct hub_bucket {
    uint64_t credit, last_ms;
} hub_bucket;

/* A full bucket at `now_ms`. */
void hub_bucket_init(hub_bucket *b, const hub_rate *r, uint64_t now_ms);
/* Take `cost` tokens: 0 if they were there (and are now taken), or the
 * milliseconds (>= 1) until they would be, taking nothing. */
uint64_t hub_bucket_take(hub_bucket *b, const hub_rate *r, uint64_t cost, uint64_t now_ms);
/* Like hub_bucket_take() but takes nothing either way. */
uint64_t hub_bucket_peek(hub_bucket *b, const hub_rate *r, uint64_t cost, uint64_t now_ms);

/* Parse a rate: "100/s", "1000/10s", "1MiB/s", "10/min", "5000/s burst
 * 10000", "off" (or "0": unlimited).  COUNT/[K]UNIT [burst COUNT]: units
 * ms, s, m or min, h; counts may end in k/K/KB (×1000), M/MB, G/GB, KiB
 * (×1024), MiB, GiB, or B (bytes, ×1).  Without a burst, the burst is one
 * period's worth (COUNT).  Returns 0 or AX_EINVAL with a sentence in `why`
 * ("'100/fortnight': unknown unit 'fortnight' (ms, s, min or h)"). */
int hub_rate_parse(const char *s, hub_rate *out, char *why, size_t why_len);
/* The canonical text of a rate, which hub_rate_parse() reads back to the
 * same rate ("1000/1000ms burst 2000", "off"); returns `buf`. */
char *hub_rate_format(const hub_rate *r, char *buf, size_t len);

/* --- settings ----------------------------------------------------------- */

/* The defaults (hub_limits_conf_default()) protect a small server without
 * surprising a normal user: a chat client, a browser tab with a few
 * sockets, a home NAT with a dozen people, a device sending every 10 ms. */
typedef struct hub_limits_conf {
    uint32_t max_connections;        /* 10000, the whole server; 0: no limit */
    uint32_t max_connections_per_ip; /* 256 per address (grouped); 0: no limit */
    hub_rate msg_rate;               /* 1000/s burst 2000, per connection */
    hub_rate byte_rate;              /* 1MiB/s burst 2MiB, per connection */
    hub_rate ip_msg_rate;            /* 10000/s burst 20000, per address */
    hub_rate ip_byte_rate;           /* 16MiB/s burst 32MiB, per address */
    hub_rate login_fail_rate;        /* 10/min burst 10, per address */
    uint32_t ip_table_size;          /* 16384 addresses tracked (256..16M) */
    uint8_t ipv4_prefix;             /* 32 (8..32) */
    uint8_t ipv6_prefix;             /* 64 (16..128) */
} hub_limits_conf;

void hub_limits_conf_default(hub_limits_conf *c);
/* Set one setting from its config-file key and text value ("msg_rate",
 * "500/s burst 1000"); 0, or AX_EINVAL with a sentence in `why`, or
 * AX_ENOENT when `key` is not a limits setting (why is left alone). */
int hub_limits_conf_set(hub_limits_conf *c, const char *key, const char *value, char *why,
                        size_t why_len);

/* --- the engine ---------------------------------------------------------- */

typedef enum hub_limit_kind {
    HUB_LIMIT_OK = 0,
    HUB_LIMIT_CONNS,      /* max_connections: the server is full */
    HUB_LIMIT_IP_CONNS,   /* max_connections_per_ip */
    HUB_LIMIT_MSG_RATE,   /* msg_rate (this connection) */
    HUB_LIMIT_BYTE_RATE,  /* byte_rate (this connection) */
    HUB_LIMIT_IP_MSG,     /* ip_msg_rate */
    HUB_LIMIT_IP_BYTES,   /* ip_byte_rate */
    HUB_LIMIT_LOGIN_FAIL, /* login_fail_rate: too many failed logins */
    HUB_LIMIT_KINDS
} hub_limit_kind;

/* "connections", "ip_connections", "msg_rate", "byte_rate",
 * "ip_msg_rate", "ip_byte_rate", "login_failures" (metric labels). */
const char *hub_limit_kind_name(hub_limit_kind k);

/* Refused work is logged once per client per this many milliseconds. */
#define HUB_LIMITS_LOG_WINDOW_MS 60000

/* What a refusal says. */
typedef struct hub_refusal {
    uint64_t retry_ms; /* when to retry (0: no estimate, e.g. a full server) */
    bool log;          /* the first refusal of its kind for this client in
                          the log window: log it (with the address) */
} hub_refusal;

typedef struct hub_limits hub_limits;
typedef struct hub_ip hub_ip;

/* A connection's share (embed it in the connection; loop thread only):
 * 24 bytes, in every connection (32 before its credits were 32 bits: an
 * idle MQTT client with limits on is then 56 bytes with it, glibc's
 * 64-byte chunk).  Its two buckets (messages, bytes) share one clock, the
 * low 32 bits of the loop time they were refilled: an interval is taken
 * modulo 2^32 ms (a gap of 24 to 49 days fills them, as any gap past the
 * refill time does; one of just over 49.7 days counts as a short one).
 * Their credits are kept in 32 bits: exactly when the bucket holds less
 * than 2^32 (the default byte_rate's cap is 2MiB × 1000 < 2^31); a bigger
 * one (a cap up to HUB_RATE_MAX_CAP, 2^62) is kept shifted right by as
 * few bits as fit (at most 31), rounded down (never more than was there),
 * except that a bucket within that last step of full reads as exactly full
 * (a message above the burst still passes on a full bucket). */
typedef struct hub_limits_conn {
    uint32_t msgs, bytes; /* the buckets' credits (>> the rate's shift) */
    hub_ip *ip;           /* NULL when not counted (closed or refused) */
    uint32_t last_ms;     /* the buckets' clock */
    /* the log window's start (loop ms >> 10, its low 24 bits) << 8 | the
     * kinds (bits) logged since */
    uint32_t log;
} hub_limits_conn;

typedef struct hub_limits_stats {
    uint64_t refused[HUB_LIMIT_KINDS]; /* [HUB_LIMIT_OK] stays 0 */
    uint64_t connections;              /* open now */
    uint64_t ips;                      /* slots in use */
    uint64_t evicted;                  /* idle slots taken over */
    uint64_t overflowed;               /* lookups sent to an overflow entry */
} hub_limits_stats;

/* Make an engine (the settings are copied).  0, AX_EINVAL (a rate or
 * size out of range), AX_ENOMEM or AX_EIO (no random key). */
int hub_limits_new(const hub_limits_conf *c, hub_limits **out);
void hub_limits_free(hub_limits *L);

/* Whether a connection's limits count anything: a connection limit
 * (max_connections, per address) or a message rate (per connection or per
 * address) is on.  With none, a gateway need not open a hub_limits_conn
 * (nothing to count: an idle connection keeps no share). */
bool hub_limits_per_conn(const hub_limits *L);

/* A connection from `sa` (AF_INET, AF_INET6 or AF_UNIX) is accepted:
 * count it.  HUB_LIMIT_OK (c is set up; call hub_limits_conn_close() when
 * it ends), or HUB_LIMIT_CONNS / HUB_LIMIT_IP_CONNS (nothing counted). */
hub_limit_kind hub_limits_conn_open(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms,
                                    hub_limits_conn *c, hub_refusal *r);
/* The connection ends (safe to call twice, or after a refused open). */
void hub_limits_conn_close(hub_limits *L, hub_limits_conn *c, uint64_t now_ms);

/* A message of `bytes` on connection `c`: checked against the
 * connection's and its address's message and byte rates; taken from all
 * four only when all four allow it. */
hub_limit_kind hub_limits_msg(hub_limits *L, hub_limits_conn *c, size_t bytes, uint64_t now_ms,
                              hub_refusal *r);
/* A datagram of `bytes` from `sa` (no connection): the address's rates. */
hub_limit_kind hub_limits_datagram(hub_limits *L, const struct sockaddr *sa, size_t bytes,
                                   uint64_t now_ms, hub_refusal *r);

/* Before checking a password or token from `sa`: HUB_LIMIT_OK, or
 * HUB_LIMIT_LOGIN_FAIL when the address has used up its failed logins
 * (refuse without checking). */
hub_limit_kind hub_limits_login_check(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms,
                                      hub_refusal *r);
/* The login from `sa` failed: it takes one failed-login token. */
void hub_limits_login_failed(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms);

void hub_limits_stats_get(hub_limits *L, hub_limits_stats *out);
/* Bytes the engine holds, fixed at hub_limits_new(). */
size_t hub_limits_memory(const hub_limits *L);

#endif
