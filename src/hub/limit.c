/* limits.c: token buckets, the table of source addresses, refusal
 * counters.  The contract and the decisions are in limit.h. */
#define _GNU_SOURCE
#include "hub/limit.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <axon/alloc.h>
#include <axon/error.h>

/* --- token buckets ------------------------------------------------------ */

static uint64_t bucket_cap(const hub_rate *r)
{
    return r->burst * r->per_ms;
}

void hub_bucket_init(hub_bucket *b, const hub_rate *r, uint64_t now_ms)
{
    b->credit = r->n ? bucket_cap(r) : 0;
    b->last_ms = now_ms;
}

/* Loops on other threads may pass a clock a little behind the last one
 * seen: time that runs backwards adds nothing and is not remembered. */
static void bucket_refill(hub_bucket *b, const hub_rate *r, uint64_t now_ms)
{
    if (now_ms <= b->last_ms) return;
    uint64_t cap = bucket_cap(r), add;
    /* No division here: this runs for every message. */
    if (__builtin_mul_overflow(now_ms - b->last_ms, r->n, &add) || add >= cap - b->credit)
        b->credit = cap;
    else
        b->credit += add;
    b->last_ms = now_ms;
}

static uint64_t bucket_need(const hub_rate *r, uint64_t cost)
{
    return (cost > r->burst ? r->burst : cost) * r->per_ms;
}

uint64_t hub_bucket_peek(hub_bucket *b, const hub_rate *r, uint64_t cost, uint64_t now_ms)
{
    if (r->n == 0) return 0;
    bucket_refill(b, r, now_ms);
    uint64_t need = bucket_need(r, cost);
    if (b->credit >= need) return 0;
    uint64_t wait = (need - b->credit + r->n - 1) / r->n;
    return wait ? wait : 1;
}

uint64_t hub_bucket_take(hub_bucket *b, const hub_rate *r, uint64_t cost, uint64_t now_ms)
{
    uint64_t wait = hub_bucket_peek(b, r, cost, now_ms);
    if (wait == 0 && r->n) b->credit -= bucket_need(r, cost);
    return wait;
}

/* Take what there is, down to empty (a failed login always counts). */
static void bucket_drain(hub_bucket *b, const hub_rate *r, uint64_t cost, uint64_t now_ms)
{
    if (r->n == 0) return;
    bucket_refill(b, r, now_ms);
    uint64_t need = bucket_need(r, cost);
    b->credit = b->credit > need ? b->credit - need : 0;
}

/* Milliseconds an empty bucket takes to fill again. */
static uint64_t bucket_refill_ms(const hub_rate *r)
{
    return r->n ? bucket_cap(r) / r->n + 1 : 0;
}

/* --- the address table ---------------------------------------------------- */

#define WINDOW 16 /* slots an address may use */
#define MAX_STRIPES 64

struct hub_ip {
    uint8_t key[16]; /* the grouped address, IPv4 as ::ffff:a.b.c.d */
    uint8_t used, logged;
    uint16_t stripe;
    uint32_t conns;
    uint64_t seen_ms, log_ms;
    hub_bucket msgs, bytes, logins;
};

typedef struct stripe {
    pthread_mutex_t mu; /* guards slots[] and overflow */
    hub_ip *slots;
    hub_ip overflow;
} __attribute__((aligned(64))) stripe;

struct hub_limits {
    hub_limits_conf c;
    uint64_t sipkey[2];
    uint32_t nstripes, per_stripe; /* powers of two */
    uint64_t idle_ms;              /* untouched this long: the slot is idle */
    bool ip_rates;                 /* an address rate is set */
    /* msg_rate's and byte_rate's credits in a hub_limits_conn are shifted
     * right by this to fit 32 bits (0 for any cap below 2^32) */
    uint8_t conn_shift[2];
    stripe *stripes;
    hub_ip *slots;
    _Atomic uint64_t conns, ips, evicted, overflowed, full_log_ms;
    _Atomic uint64_t refused[HUB_LIMIT_KINDS];
};

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = rotl(v1, 13), v1 ^= v0, v0 = rotl(v0, 32);                                  \
        v2 += v3, v3 = rotl(v3, 16), v3 ^= v2;                                                     \
        v0 += v3, v3 = rotl(v3, 21), v3 ^= v0;                                                     \
        v2 += v1, v1 = rotl(v1, 17), v1 ^= v2, v2 = rotl(v2, 32);                                  \
    } while (0)

/* SipHash-2-4 of a 16-byte key (the words read in host order: the hash
 * never leaves the process). */
static uint64_t siphash16(const uint64_t k[2], const uint8_t key[16])
{
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
    uint64_t m[3];
    memcpy(m, key, 16);
    m[2] = (uint64_t)16 << 56;
    for (int i = 0; i < 3; i++) {
        v3 ^= m[i];
        SIPROUND;
        SIPROUND;
        v0 ^= m[i];
    }
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static void mask_bits(uint8_t *p, unsigned len, unsigned keep)
{
    for (unsigned i = 0; i < len; i++) {
        unsigned bit = i * 8;
        if (bit >= keep)
            p[i] = 0;
        else if (keep - bit < 8)
            p[i] &= (uint8_t)(0xff00 >> (keep - bit));
    }
}

/* The table key of a peer address (see "grouped" in limit.h). */
static void make_key(const hub_limits *L, const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    const uint8_t *v4 = NULL;
    if (sa && sa->sa_family == AF_INET) {
        v4 = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (!IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(key, a, 16);
            mask_bits(key, 16, L->c.ipv6_prefix);
            return;
        }
        v4 = a->s6_addr + 12;
    }
    if (!v4) return; /* Unix sockets and the rest: all "local", the key :: */
    key[10] = key[11] = 0xff;
    memcpy(key + 12, v4, 4);
    mask_bits(key + 12, 4, L->c.ipv4_prefix);
}

static void ip_init(const hub_limits *L, hub_ip *e, const uint8_t key[16], uint64_t now_ms)
{
    uint16_t s = e->stripe;
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, 16);
    e->used = 1;
    e->stripe = s;
    e->seen_ms = now_ms;
    hub_bucket_init(&e->msgs, &L->c.ip_msg_rate, now_ms);
    hub_bucket_init(&e->bytes, &L->c.ip_byte_rate, now_ms);
    hub_bucket_init(&e->logins, &L->c.login_fail_rate, now_ms);
}

/* Nothing to remember: forgetting the slot changes no answer. */
static bool ip_idle(const hub_limits *L, const hub_ip *e, uint64_t now_ms)
{
    return e->conns == 0 && now_ms >= e->seen_ms && now_ms - e->seen_ms >= L->idle_ms;
}

/* The entry for `key`, made if need be; its stripe's lock is held. */
static hub_ip *ip_find(hub_limits *L, stripe *s, uint64_t h, const uint8_t key[16], uint64_t now_ms)
{
    uint32_t mask = L->per_stripe - 1, at = (uint32_t)(h >> 32) & mask;
    hub_ip *empty = NULL, *idle = NULL;
    for (uint32_t i = 0; i < WINDOW; i++) {
        hub_ip *e = &s->slots[(at + i) & mask];
        if (!e->used) {
            if (!empty) empty = e;
        } else if (memcmp(e->key, key, 16) == 0) {
            return e;
        } else if (!idle && ip_idle(L, e, now_ms)) {
            idle = e;
        }
    }
    if (empty) {
        atomic_fetch_add_explicit(&L->ips, 1, memory_order_relaxed);
        ip_init(L, empty, key, now_ms);
        return empty;
    }
    if (idle) {
        atomic_fetch_add_explicit(&L->evicted, 1, memory_order_relaxed);
        ip_init(L, idle, key, now_ms);
        return idle;
    }
    atomic_fetch_add_explicit(&L->overflowed, 1, memory_order_relaxed);
    return &s->overflow;
}

/* Lock the stripe of `sa` and return its entry. */
static hub_ip *ip_lock(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms)
{
    uint8_t key[16];
    make_key(L, sa, key);
    uint64_t h = siphash16(L->sipkey, key);
    stripe *s = &L->stripes[h & (L->nstripes - 1)];
    pthread_mutex_lock(&s->mu);
    hub_ip *e = ip_find(L, s, h, key, now_ms);
    e->seen_ms = now_ms > e->seen_ms ? now_ms : e->seen_ms;
    return e;
}

static void ip_unlock(hub_limits *L, hub_ip *e)
{
    pthread_mutex_unlock(&L->stripes[e->stripe].mu);
}

/* --- refusals ------------------------------------------------------------ */

const char *hub_limit_kind_name(hub_limit_kind k)
{
    static const char *const names[HUB_LIMIT_KINDS] = {
        [HUB_LIMIT_OK] = "ok",
        [HUB_LIMIT_CONNS] = "connections",
        [HUB_LIMIT_IP_CONNS] = "ip_connections",
        [HUB_LIMIT_MSG_RATE] = "msg_rate",
        [HUB_LIMIT_BYTE_RATE] = "byte_rate",
        [HUB_LIMIT_IP_MSG] = "ip_msg_rate",
        [HUB_LIMIT_IP_BYTES] = "ip_byte_rate",
        [HUB_LIMIT_LOGIN_FAIL] = "login_failures",
    };
    return (unsigned)k < HUB_LIMIT_KINDS ? names[k] : "unknown";
}

/* The first refusal of kind `k` in this log window? */
static bool log_once(uint64_t *log_ms, uint8_t *logged, hub_limit_kind k, uint64_t now_ms)
{
    if (now_ms >= *log_ms + HUB_LIMITS_LOG_WINDOW_MS) {
        *log_ms = now_ms;
        *logged = 0;
    }
    uint8_t bit = (uint8_t)(1u << k);
    if (*logged & bit) return false;
    *logged |= bit;
    return true;
}

static hub_limit_kind refuse(hub_limits *L, hub_limit_kind k, uint64_t retry_ms, bool log,
                             hub_refusal *r)
{
    atomic_fetch_add_explicit(&L->refused[k], 1, memory_order_relaxed);
    if (r) {
        r->retry_ms = retry_ms;
        r->log = log;
    }
    return k;
}

/* A full server is one client: log it once per window, whoever tries. */
static bool log_full_once(hub_limits *L, uint64_t now_ms)
{
    uint64_t last = atomic_load_explicit(&L->full_log_ms, memory_order_relaxed);
    if (last && now_ms < last + HUB_LIMITS_LOG_WINDOW_MS) return false;
    return atomic_compare_exchange_strong(&L->full_log_ms, &last, now_ms ? now_ms : 1);
}

/* --- connections and messages --------------------------------------------- */

/* A connection's log clock: loop ms >> 10, 24 bits. */
static uint32_t conn_log_now(uint64_t now_ms)
{
    return (uint32_t)(now_ms >> 10) & 0xffffffu;
}

/* The first refusal of kind `k` in the connection's log window?  (Its
 * window is counted in steps of 1,024 ms, modulo 2^24 of them.) */
static bool conn_log_once(hub_limits_conn *c, hub_limit_kind k, uint64_t now_ms)
{
    uint32_t now = conn_log_now(now_ms), start = c->log >> 8;
    uint8_t logged = (uint8_t)c->log;
    if ((uint64_t)((now - start) & 0xffffffu) * 1024 >= HUB_LIMITS_LOG_WINDOW_MS) {
        start = now;
        logged = 0;
    }
    uint8_t bit = (uint8_t)(1u << k);
    bool first = !(logged & bit);
    c->log = start << 8 | (uint8_t)(logged | bit);
    return first;
}

/* The fewest bits a cap (<= HUB_RATE_MAX_CAP) is shifted right by to fit
 * 32 bits (hub_limits_conn's credits). */
static uint8_t conn_shift(const hub_rate *r)
{
    uint8_t s = 0;
    while (r->n && (bucket_cap(r) >> s) > UINT32_MAX)
        s++;
    return s;
}

/* A connection's credits as kept (32 bits, rounded down) and back; a full
 * bucket comes back exactly full. */
static uint32_t credit_pack(const hub_limits *L, int i, uint64_t credit)
{
    return (uint32_t)(credit >> L->conn_shift[i]);
}

static uint64_t credit_unpack(const hub_limits *L, int i, uint32_t kept)
{
    uint64_t cap = bucket_cap(i ? &L->c.byte_rate : &L->c.msg_rate);
    return kept == cap >> L->conn_shift[i] ? cap : (uint64_t)kept << L->conn_shift[i];
}

/* The connection's buckets, refilled up to now_ms.  A clock a little
 * behind the last one seen (another loop's) adds nothing. */
static void conn_buckets(hub_limits *L, const hub_limits_conn *c, uint64_t now_ms, hub_bucket b[2])
{
    uint32_t d = (uint32_t)now_ms - c->last_ms;
    if ((int32_t)d < 0 && 0u - d < (1u << 20)) d = 0;
    uint64_t then = now_ms > d ? now_ms - d : 0;
    b[0] = (hub_bucket){credit_unpack(L, 0, c->msgs), then};
    b[1] = (hub_bucket){credit_unpack(L, 1, c->bytes), then};
    if (L->c.msg_rate.n) bucket_refill(&b[0], &L->c.msg_rate, now_ms);
    if (L->c.byte_rate.n) bucket_refill(&b[1], &L->c.byte_rate, now_ms);
}

static void conn_buckets_keep(const hub_limits *L, hub_limits_conn *c, const hub_bucket b[2],
                              uint64_t now_ms)
{
    c->msgs = credit_pack(L, 0, b[0].credit);
    c->bytes = credit_pack(L, 1, b[1].credit);
    uint32_t d = (uint32_t)now_ms - c->last_ms;
    if ((int32_t)d > 0) c->last_ms = (uint32_t)now_ms;
}

bool hub_limits_per_conn(const hub_limits *L)
{
    const hub_limits_conf *c = &L->c;
    return c->max_connections || c->max_connections_per_ip || c->msg_rate.n || c->byte_rate.n ||
           L->ip_rates;
}

hub_limit_kind hub_limits_conn_open(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms,
                                    hub_limits_conn *c, hub_refusal *r)
{
    memset(c, 0, sizeof(*c));
    uint64_t n = atomic_fetch_add(&L->conns, 1) + 1;
    if (L->c.max_connections && n > L->c.max_connections) {
        atomic_fetch_sub(&L->conns, 1);
        return refuse(L, HUB_LIMIT_CONNS, 0, log_full_once(L, now_ms), r);
    }
    hub_ip *e = ip_lock(L, sa, now_ms);
    if (L->c.max_connections_per_ip && e->conns >= L->c.max_connections_per_ip) {
        bool log = log_once(&e->log_ms, &e->logged, HUB_LIMIT_IP_CONNS, now_ms);
        ip_unlock(L, e);
        atomic_fetch_sub(&L->conns, 1);
        return refuse(L, HUB_LIMIT_IP_CONNS, 0, log, r);
    }
    e->conns++;
    ip_unlock(L, e);
    c->ip = e;
    c->log = conn_log_now(now_ms) << 8;
    hub_bucket b[2];
    hub_bucket_init(&b[0], &L->c.msg_rate, now_ms);
    hub_bucket_init(&b[1], &L->c.byte_rate, now_ms);
    c->msgs = credit_pack(L, 0, b[0].credit);
    c->bytes = credit_pack(L, 1, b[1].credit);
    c->last_ms = (uint32_t)now_ms;
    return HUB_LIMIT_OK;
}

_Static_assert(sizeof(hub_limits_conn) == 24,
               "hub_limits_conn: in every connection (docs/scale.md)");
/* The most a cap is shifted (conn_shift): 2^62 >> 30 is still 2^32. */
_Static_assert((HUB_RATE_MAX_CAP >> 31) <= UINT32_MAX, "a connection's credits fit 32 bits");

void hub_limits_conn_close(hub_limits *L, hub_limits_conn *c, uint64_t now_ms)
{
    hub_ip *e = c->ip;
    if (!e) return;
    c->ip = NULL;
    pthread_mutex_lock(&L->stripes[e->stripe].mu);
    e->conns--;
    e->seen_ms = now_ms > e->seen_ms ? now_ms : e->seen_ms;
    ip_unlock(L, e);
    atomic_fetch_sub(&L->conns, 1);
}

/* The address's rates for one message, its stripe locked. */
static hub_limit_kind ip_msg(hub_limits *L, hub_ip *e, size_t bytes, uint64_t now_ms,
                             hub_refusal *r)
{
    hub_limit_kind k = HUB_LIMIT_OK;
    uint64_t wait = hub_bucket_peek(&e->msgs, &L->c.ip_msg_rate, 1, now_ms);
    if (wait) {
        k = HUB_LIMIT_IP_MSG;
    } else if ((wait = hub_bucket_peek(&e->bytes, &L->c.ip_byte_rate, bytes, now_ms)) != 0) {
        k = HUB_LIMIT_IP_BYTES;
    }
    if (k == HUB_LIMIT_OK) {
        hub_bucket_take(&e->msgs, &L->c.ip_msg_rate, 1, now_ms);
        hub_bucket_take(&e->bytes, &L->c.ip_byte_rate, bytes, now_ms);
        return k;
    }
    return refuse(L, k, wait, log_once(&e->log_ms, &e->logged, k, now_ms), r);
}

hub_limit_kind hub_limits_msg(hub_limits *L, hub_limits_conn *c, size_t bytes, uint64_t now_ms,
                              hub_refusal *r)
{
    hub_limit_kind k = HUB_LIMIT_OK;
    hub_bucket b[2];
    conn_buckets(L, c, now_ms, b);
    conn_buckets_keep(L, c, b, now_ms); /* the refill */
    uint64_t wait = hub_bucket_peek(&b[0], &L->c.msg_rate, 1, now_ms);
    if (wait) {
        k = HUB_LIMIT_MSG_RATE;
    } else if ((wait = hub_bucket_peek(&b[1], &L->c.byte_rate, bytes, now_ms)) != 0) {
        k = HUB_LIMIT_BYTE_RATE;
    }
    if (k != HUB_LIMIT_OK) return refuse(L, k, wait, conn_log_once(c, k, now_ms), r);
    if (c->ip && L->ip_rates) {
        hub_ip *e = c->ip;
        pthread_mutex_lock(&L->stripes[e->stripe].mu);
        e->seen_ms = now_ms > e->seen_ms ? now_ms : e->seen_ms;
        k = ip_msg(L, e, bytes, now_ms, r);
        ip_unlock(L, e);
        if (k != HUB_LIMIT_OK) return k;
    }
    hub_bucket_take(&b[0], &L->c.msg_rate, 1, now_ms);
    hub_bucket_take(&b[1], &L->c.byte_rate, bytes, now_ms);
    conn_buckets_keep(L, c, b, now_ms);
    return HUB_LIMIT_OK;
}

hub_limit_kind hub_limits_datagram(hub_limits *L, const struct sockaddr *sa, size_t bytes,
                                   uint64_t now_ms, hub_refusal *r)
{
    if (!L->ip_rates) return HUB_LIMIT_OK;
    hub_ip *e = ip_lock(L, sa, now_ms);
    hub_limit_kind k = ip_msg(L, e, bytes, now_ms, r);
    ip_unlock(L, e);
    return k;
}

hub_limit_kind hub_limits_login_check(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms,
                                      hub_refusal *r)
{
    if (L->c.login_fail_rate.n == 0) return HUB_LIMIT_OK;
    hub_ip *e = ip_lock(L, sa, now_ms);
    uint64_t wait = hub_bucket_peek(&e->logins, &L->c.login_fail_rate, 1, now_ms);
    bool log = wait && log_once(&e->log_ms, &e->logged, HUB_LIMIT_LOGIN_FAIL, now_ms);
    ip_unlock(L, e);
    return wait ? refuse(L, HUB_LIMIT_LOGIN_FAIL, wait, log, r) : HUB_LIMIT_OK;
}

void hub_limits_login_failed(hub_limits *L, const struct sockaddr *sa, uint64_t now_ms)
{
    if (L->c.login_fail_rate.n == 0) return;
    hub_ip *e = ip_lock(L, sa, now_ms);
    bucket_drain(&e->logins, &L->c.login_fail_rate, 1, now_ms);
    ip_unlock(L, e);
}

void hub_limits_stats_get(hub_limits *L, hub_limits_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int k = 1; k < HUB_LIMIT_KINDS; k++)
        out->refused[k] = atomic_load_explicit(&L->refused[k], memory_order_relaxed);
    out->connections = atomic_load_explicit(&L->conns, memory_order_relaxed);
    out->ips = atomic_load_explicit(&L->ips, memory_order_relaxed);
    out->evicted = atomic_load_explicit(&L->evicted, memory_order_relaxed);
    out->overflowed = atomic_load_explicit(&L->overflowed, memory_order_relaxed);
}

size_t hub_limits_memory(const hub_limits *L)
{
    return sizeof(*L) + (size_t)L->nstripes * sizeof(stripe) +
           (size_t)L->nstripes * L->per_stripe * sizeof(hub_ip);
}

/* --- settings and the engine ------------------------------------------- */

void hub_limits_conf_default(hub_limits_conf *c)
{
    *c = (hub_limits_conf){
        .max_connections = 10000,
        .max_connections_per_ip = 256,
        .msg_rate = {1000, 1000, 2000},
        .byte_rate = {1 << 20, 1000, 2 << 20},
        .ip_msg_rate = {10000, 1000, 20000},
        .ip_byte_rate = {16 << 20, 1000, 32 << 20},
        .login_fail_rate = {10, 60000, 10},
        .ip_table_size = 16384,
        .ipv4_prefix = 32,
        .ipv6_prefix = 64,
    };
}

static bool rate_ok(const hub_rate *r)
{
    return r->n == 0 || (r->n <= HUB_RATE_MAX_N && r->per_ms >= 1 && r->burst >= 1 &&
                         r->burst <= HUB_RATE_MAX_CAP / r->per_ms);
}

static bool conf_ok(const hub_limits_conf *c)
{
    return rate_ok(&c->msg_rate) && rate_ok(&c->byte_rate) && rate_ok(&c->ip_msg_rate) &&
           rate_ok(&c->ip_byte_rate) && rate_ok(&c->login_fail_rate) && c->ip_table_size >= 256 &&
           c->ip_table_size <= (1u << 24) && c->ipv4_prefix >= 8 && c->ipv4_prefix <= 32 &&
           c->ipv6_prefix >= 16 && c->ipv6_prefix <= 128;
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

static void limits_layout(hub_limits *L)
{
    uint32_t size = 256;
    while (size < L->c.ip_table_size)
        size <<= 1;
    L->nstripes = 1;
    while (L->nstripes < MAX_STRIPES && size / (L->nstripes * 2) >= 256)
        L->nstripes <<= 1;
    L->per_stripe = size / L->nstripes;
    const hub_limits_conf *c = &L->c;
    L->idle_ms = max3(bucket_refill_ms(&c->ip_msg_rate), bucket_refill_ms(&c->ip_byte_rate),
                      bucket_refill_ms(&c->login_fail_rate));
    if (L->idle_ms < HUB_LIMITS_LOG_WINDOW_MS) L->idle_ms = HUB_LIMITS_LOG_WINDOW_MS;
    L->ip_rates = c->ip_msg_rate.n || c->ip_byte_rate.n;
    L->conn_shift[0] = conn_shift(&c->msg_rate);
    L->conn_shift[1] = conn_shift(&c->byte_rate);
}

static int random_key(uint64_t key[2])
{
    uint8_t *p = (uint8_t *)key;
    size_t got = 0;
    while (got < 16) {
        ssize_t n = getrandom(p + got, 16 - got, 0);
        if (n == -1 && errno == EINTR) continue;
        if (n == -1) return AX_EIO;
        got += (size_t)n;
    }
    return 0;
}

int hub_limits_new(const hub_limits_conf *c, hub_limits **out)
{
    *out = NULL;
    if (!conf_ok(c)) return AX_EINVAL;
    hub_limits *L = ax_calloc(1, sizeof(*L));
    if (!L) return AX_ENOMEM;
    L->c = *c;
    limits_layout(L);
    int rc = random_key(L->sipkey);
    if (rc < 0) goto fail;
    rc = AX_ENOMEM;
    L->stripes = ax_calloc(L->nstripes, sizeof(*L->stripes));
    L->slots = ax_calloc((size_t)L->nstripes * L->per_stripe, sizeof(*L->slots));
    if (!L->stripes || !L->slots) goto fail;
    for (uint32_t i = 0; i < L->nstripes; i++) {
        stripe *s = &L->stripes[i];
        pthread_mutex_init(&s->mu, NULL);
        s->slots = L->slots + (size_t)i * L->per_stripe;
        for (uint32_t j = 0; j < L->per_stripe; j++)
            s->slots[j].stripe = (uint16_t)i;
        s->overflow.stripe = (uint16_t)i;
        ip_init(L, &s->overflow, (const uint8_t[16]){0}, 0);
    }
    *out = L;
    return 0;
fail:
    ax_free(L->slots);
    ax_free(L->stripes);
    ax_free(L);
    return rc;
}

void hub_limits_free(hub_limits *L)
{
    if (!L) return;
    for (uint32_t i = 0; i < L->nstripes; i++)
        pthread_mutex_destroy(&L->stripes[i].mu);
    ax_free(L->slots);
    ax_free(L->stripes);
    ax_free(L);
}
