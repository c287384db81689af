/* test_limits.c: the limits engine (src/hub/limit.h) with a clock the
 * tests move by hand: token buckets (refill, burst, retry-after), the
 * per-address table (connection limits, IPv6 /64 grouping, a fixed size
 * under a million addresses, idle slots taken over), the failed-login
 * guard, log-once, and the rate parser. */
#define _GNU_SOURCE
#include "runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <axon/alloc.h>
#include <axon/error.h>

#include "hub/limit.h"

/* --- helpers -------------------------------------------------------------- */

typedef union {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    struct sockaddr_un un;
} peer;

static const struct sockaddr *ip(peer *p, const char *text)
{
    memset(p, 0, sizeof(*p));
    if (inet_pton(AF_INET, text, &p->v4.sin_addr) == 1) {
        p->v4.sin_family = AF_INET;
    } else {
        ASSERT(inet_pton(AF_INET6, text, &p->v6.sin6_addr) == 1);
        p->v6.sin6_family = AF_INET6;
    }
    return &p->sa;
}

static const struct sockaddr *ip4n(peer *p, uint32_t n)
{
    memset(p, 0, sizeof(*p));
    p->v4.sin_family = AF_INET;
    p->v4.sin_addr.s_addr = htonl(n);
    return &p->sa;
}

static hub_limits *make(const hub_limits_conf *c)
{
    hub_limits *L = NULL;
    ASSERT_EQ(hub_limits_new(c, &L), 0);
    ASSERT(L != NULL);
    return L;
}

static hub_rate rate(const char *text)
{
    hub_rate r;
    char why[200] = "";
    int rc = hub_rate_parse(text, &r, why, sizeof why);
    if (rc != 0) ax_test_fail(__FILE__, __LINE__, text, why);
    return r;
}

/* --- token buckets --------------------------------------------------------- */

TEST(limits_bucket_refill_and_burst)
{
    hub_rate r = rate("10/s burst 20");
    hub_bucket b;
    hub_bucket_init(&b, &r, 1000);
    for (int i = 0; i < 20; i++)
        ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1000), 0);
    ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1000), 100); /* one token every 100 ms */
    ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1050), 50);
    ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1100), 0);
    ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1100), 100);
    /* A long pause fills the bucket to its burst, not beyond. */
    for (int i = 0; i < 20; i++)
        ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1000000), 0);
    ASSERT(hub_bucket_take(&b, &r, 1, 1000000) > 0);
    /* A clock that runs backwards (another loop's) adds nothing. */
    ASSERT(hub_bucket_take(&b, &r, 1, 999000) > 0);
    ASSERT_EQ(hub_bucket_take(&b, &r, 1, 1000100), 0);
    /* Peek takes nothing; unlimited always passes. */
    ASSERT_EQ(hub_bucket_peek(&b, &r, 1, 1000300), 0);
    ASSERT_EQ(hub_bucket_peek(&b, &r, 1, 1000300), 0);
    hub_rate off = rate("off");
    ASSERT_EQ(hub_bucket_take(&b, &off, 1u << 30, 0), 0);
}

TEST(limits_bucket_retry_after)
{
    hub_rate r = rate("1000/10s"); /* 100 a second, burst 1000 */
    hub_bucket b;
    hub_bucket_init(&b, &r, 0);
    ASSERT_EQ(hub_bucket_take(&b, &r, 1000, 0), 0);
    ASSERT_EQ(hub_bucket_take(&b, &r, 1, 0), 10);
    ASSERT_EQ(hub_bucket_take(&b, &r, 50, 0), 500);
    ASSERT_EQ(hub_bucket_take(&b, &r, 50, 499), 1); /* rounded up, never 0 */
    ASSERT_EQ(hub_bucket_take(&b, &r, 50, 500), 0);

    /* Bytes: 1 MiB/s with a 64 KiB burst; a 1 MiB message is larger than
     * the burst, passes on a full bucket, and empties it. */
    hub_rate br = rate("1MiB/s burst 64KiB");
    hub_bucket bb;
    hub_bucket_init(&bb, &br, 0);
    ASSERT_EQ(hub_bucket_take(&bb, &br, 1 << 20, 0), 0);
    uint64_t wait = hub_bucket_take(&bb, &br, 1024, 0);
    ASSERT(wait >= 1 && wait <= 2);                       /* 1 KiB at 1 MiB/s: about 1 ms */
    ASSERT_EQ(hub_bucket_take(&bb, &br, 1 << 20, 0), 63); /* 64 KiB: 62.5 ms */
    ASSERT_EQ(hub_bucket_take(&bb, &br, 1 << 20, 63), 0);
}

/* --- connections -------------------------------------------------------- */

/* A connection needs its share (hub_limits_conn) only while a connection
 * limit or a message rate is on: the failed-login rate alone counts none. */
TEST(limits_per_conn_only_with_a_connection_limit_or_rate)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    hub_limits *L = make(&c);
    ASSERT(hub_limits_per_conn(L));
    hub_limits_free(L);
    c.max_connections = c.max_connections_per_ip = 0;
    c.msg_rate.n = c.byte_rate.n = c.ip_msg_rate.n = c.ip_byte_rate.n = 0;
    L = make(&c);
    ASSERT(!hub_limits_per_conn(L)); /* login_fail_rate is on */
    hub_limits_free(L);
    hub_limits_conf off = c;
    off.ip_byte_rate = rate("100/s");
    L = make(&off);
    ASSERT(hub_limits_per_conn(L));
    hub_limits_free(L);
    off = c;
    off.max_connections_per_ip = 4;
    L = make(&off);
    ASSERT(hub_limits_per_conn(L));
    hub_limits_free(L);
}

TEST(limits_ip_connections_other_address_still_allowed)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.max_connections_per_ip = 3;
    c.max_connections = 5;
    hub_limits *L = make(&c);
    peer p;
    hub_limits_conn conn[8];
    hub_refusal r;
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.1"), 0, &conn[i], &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.1"), 0, &conn[3], &r), HUB_LIMIT_IP_CONNS);
    ASSERT(r.log);
    ASSERT(conn[3].ip == NULL);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.1"), 5, &conn[3], &r), HUB_LIMIT_IP_CONNS);
    ASSERT(!r.log); /* logged once per address */
    /* The same address written as IPv4-mapped IPv6 is the same address. */
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "::ffff:10.0.0.1"), 5, &conn[3], &r),
              HUB_LIMIT_IP_CONNS);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.2"), 5, &conn[4], &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.3"), 5, &conn[5], &r), HUB_LIMIT_OK);
    /* The server is full: 5 of 5. */
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.4"), 5, &conn[6], &r), HUB_LIMIT_CONNS);
    ASSERT(r.log);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.5"), 6, &conn[6], &r), HUB_LIMIT_CONNS);
    ASSERT(!r.log);
    /* Closing one makes room, for that address too; close is idempotent. */
    hub_limits_conn_close(L, &conn[0], 10);
    hub_limits_conn_close(L, &conn[0], 10);
    hub_limits_conn_close(L, &conn[6], 10); /* a refused one: nothing counted */
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.0.0.1"), 10, &conn[0], &r), HUB_LIMIT_OK);
    hub_limits_stats st;
    hub_limits_stats_get(L, &st);
    ASSERT_EQ(st.connections, 5);
    ASSERT_EQ(st.refused[HUB_LIMIT_IP_CONNS], 3);
    ASSERT_EQ(st.refused[HUB_LIMIT_CONNS], 2);
    hub_limits_free(L);
}

TEST(limits_ipv6_grouped_by_prefix)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.max_connections_per_ip = 1;
    hub_limits *L = make(&c);
    peer p;
    hub_limits_conn a, b, d, e;
    hub_refusal r;
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "2001:db8:1:2::1"), 0, &a, &r), HUB_LIMIT_OK);
    /* Same /64: the same client. */
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "2001:db8:1:2:ffff:1:2:3"), 0, &b, &r),
              HUB_LIMIT_IP_CONNS);
    /* The next /64: another client. */
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "2001:db8:1:3::1"), 0, &b, &r), HUB_LIMIT_OK);
    /* Unix-socket clients are all one address, "local". */
    peer u = {.un = {.sun_family = AF_UNIX}};
    ASSERT_EQ(hub_limits_conn_open(L, &u.sa, 0, &d, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, &u.sa, 0, &e, &r), HUB_LIMIT_IP_CONNS);
    hub_limits_free(L);

    /* ipv6_prefix 128: every address alone; ipv4_prefix 24: a /24 is one. */
    char why[200];
    ASSERT_EQ(hub_limits_conf_set(&c, "ipv6_prefix", "128", why, sizeof why), 0);
    ASSERT_EQ(hub_limits_conf_set(&c, "ipv4_prefix", "24", why, sizeof why), 0);
    L = make(&c);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "2001:db8:1:2::1"), 0, &a, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "2001:db8:1:2::2"), 0, &b, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "192.0.2.1"), 0, &d, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "192.0.2.200"), 0, &e, &r), HUB_LIMIT_IP_CONNS);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "192.0.3.1"), 0, &e, &r), HUB_LIMIT_OK);
    hub_limits_free(L);
}

/* --- messages --------------------------------------------------------------- */

TEST(limits_flooder_refused_others_keep_their_rate)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c); /* 1000/s burst 2000 per connection */
    hub_limits *L = make(&c);
    peer p;
    hub_limits_conn flood, calm[50];
    hub_refusal r;
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "198.51.100.1"), 0, &flood, &r), HUB_LIMIT_OK);
    for (int i = 0; i < 50; i++)
        ASSERT_EQ(hub_limits_conn_open(L, ip4n(&p, 0xc6336500u + 2 + (uint32_t)i), 0, &calm[i], &r),
                  HUB_LIMIT_OK);
    /* Ten seconds: the flooder sends 5,000 a second, the others 1,000. */
    int refused = 0, logged = 0;
    for (uint64_t ms = 0; ms < 10000; ms++) {
        for (int k = 0; k < 5; k++) {
            if (hub_limits_msg(L, &flood, 100, ms, &r) == HUB_LIMIT_OK) continue;
            refused++;
            logged += r.log;
            ASSERT_EQ(r.retry_ms, 1);
        }
        for (int i = 0; i < 50; i++)
            ASSERT_EQ(hub_limits_msg(L, &calm[i], 100, ms, &r), HUB_LIMIT_OK);
    }
    /* 2,000 of burst then 1,000 a second pass (one per ms, 10,000 ms). */
    ASSERT_EQ(refused, 50000 - 2000 - 9999);
    ASSERT_EQ(logged, 1); /* logged once in the window */
    hub_limits_stats st;
    hub_limits_stats_get(L, &st);
    ASSERT_EQ(st.refused[HUB_LIMIT_MSG_RATE], (uint64_t)refused);
    ASSERT_EQ(st.refused[HUB_LIMIT_IP_MSG], 0);
    hub_limits_free(L);
}

/* A connection keeps its credits in 32 bits (hub_limits_conn): the
 * largest rates hub_limits_new() takes still work, a full bucket exactly. */
TEST(limits_conn_credits_32_bits)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    /* caps of 2^62 credits, the most: 2^40 tokens a ms, and one token in
     * 2^62 ms */
    c.msg_rate = (hub_rate){HUB_RATE_MAX_N, 1, HUB_RATE_MAX_CAP};
    c.byte_rate = (hub_rate){1, HUB_RATE_MAX_CAP, 1};
    c.ip_msg_rate.n = c.ip_byte_rate.n = 0; /* (the connection's own, alone) */
    hub_limits *L = make(&c);
    peer p;
    hub_limits_conn a, b;
    hub_refusal r;
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.3.0.1"), 5, &a, &r), HUB_LIMIT_OK);
    /* Full: a message above the byte burst passes, then none for 2^62 ms. */
    ASSERT_EQ(hub_limits_msg(L, &a, 1000, 5, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &a, 1, 6, &r), HUB_LIMIT_BYTE_RATE);
    ASSERT_EQ(r.retry_ms, HUB_RATE_MAX_CAP - 1);
    hub_limits_conn_close(L, &a, 6);
    hub_limits_free(L);

    /* A cap of 1000 × 2^32 (shifted 10 bits): exact at full, never more
     * than was there below it. */
    c.msg_rate = rate("1000/s");
    c.byte_rate = rate("1GiB/s burst 4GiB");
    L = make(&c);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.3.0.2"), 0, &b, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &b, (size_t)1 << 32, 0, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &b, 1, 0, &r), HUB_LIMIT_BYTE_RATE);
    ASSERT_EQ(r.retry_ms, 1);
    /* 1,000 ms bring 1 GiB back. */
    ASSERT_EQ(hub_limits_msg(L, &b, (size_t)1 << 30, 1000, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &b, 1, 1000, &r), HUB_LIMIT_BYTE_RATE);
    /* 4,000 ms more fill it again: exactly full. */
    ASSERT_EQ(hub_limits_msg(L, &b, (size_t)1 << 32, 5000, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &b, 1, 5000, &r), HUB_LIMIT_BYTE_RATE);
    hub_limits_conn_close(L, &b, 5000);
    hub_limits_free(L);
}

TEST(limits_address_rate_shared)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.ip_msg_rate = rate("10/s");
    c.byte_rate = rate("1000/s");
    hub_limits *L = make(&c);
    peer p;
    hub_limits_conn a, b;
    hub_refusal r;
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.1.1.1"), 0, &a, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.1.1.1"), 0, &b, &r), HUB_LIMIT_OK);
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ(hub_limits_msg(L, &a, 1, 0, &r), HUB_LIMIT_OK);
        ASSERT_EQ(hub_limits_msg(L, &b, 1, 0, &r), HUB_LIMIT_OK);
    }
    /* The address's ten are used by the two connections together. */
    ASSERT_EQ(hub_limits_msg(L, &a, 1, 0, &r), HUB_LIMIT_IP_MSG);
    ASSERT(r.log);
    ASSERT_EQ(r.retry_ms, 100);
    ASSERT_EQ(hub_limits_msg(L, &b, 1, 0, &r), HUB_LIMIT_IP_MSG);
    ASSERT(!r.log); /* the address's refusal is logged once, whichever connection */
    /* The connection's own byte rate is checked before the address's. */
    ASSERT_EQ(hub_limits_msg(L, &a, 999, 0, &r), HUB_LIMIT_BYTE_RATE);
    ASSERT(r.log);
    /* The refused messages took nothing: the one token back at 100 ms. */
    ASSERT_EQ(hub_limits_msg(L, &a, 10, 100, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &b, 1, 100, &r), HUB_LIMIT_IP_MSG);
    /* Datagrams from the address share its buckets. */
    ASSERT_EQ(hub_limits_datagram(L, ip(&p, "10.1.1.1"), 10, 100, &r), HUB_LIMIT_IP_MSG);
    ASSERT_EQ(hub_limits_datagram(L, ip(&p, "10.1.1.2"), 10, 100, &r), HUB_LIMIT_OK);
    hub_limits_conn_close(L, &a, 100);
    hub_limits_conn_close(L, &b, 100);
    hub_limits_free(L);
}

TEST(limits_log_once_per_window)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.msg_rate = rate("1/s burst 5");
    hub_limits *L = make(&c);
    peer p;
    hub_limits_conn a, b;
    hub_refusal r;
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.2.0.1"), 0, &a, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.2.0.1"), 0, &b, &r), HUB_LIMIT_OK);
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(hub_limits_msg(L, &a, 1, 0, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &a, 1, 0, &r), HUB_LIMIT_MSG_RATE);
    ASSERT(r.log);
    for (int i = 0; i < 100; i++) {
        ASSERT_EQ(hub_limits_msg(L, &a, 1, 0, &r), HUB_LIMIT_MSG_RATE);
        ASSERT(!r.log);
    }
    /* Another connection is another client. */
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(hub_limits_msg(L, &b, 1, 0, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &b, 1, 0, &r), HUB_LIMIT_MSG_RATE);
    ASSERT(r.log);
    /* Another kind on the same connection is logged too. */
    ASSERT_EQ(hub_limits_msg(L, &a, 3 << 20, 2000, &r), HUB_LIMIT_OK); /* empties bytes */
    ASSERT_EQ(hub_limits_msg(L, &a, 1 << 20, 2500, &r), HUB_LIMIT_BYTE_RATE);
    ASSERT(r.log);
    ASSERT_EQ(hub_limits_msg(L, &a, 1 << 20, 2500, &r), HUB_LIMIT_BYTE_RATE);
    ASSERT(!r.log);
    /* A new window: logged again, once. */
    uint64_t t = HUB_LIMITS_LOG_WINDOW_MS + 1000;
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(hub_limits_msg(L, &a, 1, t, &r), HUB_LIMIT_OK);
    ASSERT_EQ(hub_limits_msg(L, &a, 1, t, &r), HUB_LIMIT_MSG_RATE);
    ASSERT(r.log);
    ASSERT_EQ(hub_limits_msg(L, &a, 1, t, &r), HUB_LIMIT_MSG_RATE);
    ASSERT(!r.log);
    hub_limits_free(L);
}

/* --- failed logins ----------------------------------------------------------- */

TEST(limits_failed_login_guard)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c); /* 10/min */
    hub_limits *L = make(&c);
    peer p, q;
    hub_refusal r;
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(hub_limits_login_check(L, ip(&p, "203.0.113.9"), 1000, &r), HUB_LIMIT_OK);
        hub_limits_login_failed(L, &p.sa, 1000);
    }
    ASSERT_EQ(hub_limits_login_check(L, &p.sa, 1000, &r), HUB_LIMIT_LOGIN_FAIL);
    ASSERT_EQ(r.retry_ms, 6000);
    ASSERT(r.log);
    ASSERT_EQ(hub_limits_login_check(L, &p.sa, 2000, &r), HUB_LIMIT_LOGIN_FAIL);
    ASSERT(!r.log);
    /* More failures while refused keep it empty, not negative. */
    hub_limits_login_failed(L, &p.sa, 2000);
    /* Another address may still try. */
    ASSERT_EQ(hub_limits_login_check(L, ip(&q, "203.0.113.10"), 2000, &r), HUB_LIMIT_OK);
    /* One try more every six seconds. */
    ASSERT_EQ(hub_limits_login_check(L, &p.sa, 8000, &r), HUB_LIMIT_OK);
    hub_limits_login_failed(L, &p.sa, 8000);
    ASSERT_EQ(hub_limits_login_check(L, &p.sa, 8000, &r), HUB_LIMIT_LOGIN_FAIL);
    ASSERT_EQ(r.retry_ms, 6000);
    hub_limits_stats st;
    hub_limits_stats_get(L, &st);
    ASSERT_EQ(st.refused[HUB_LIMIT_LOGIN_FAIL], 3);
    hub_limits_free(L);
}

/* --- the table stays its size ----------------------------------------------- */

static atomic_long allocs;
static void *count_malloc(size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return malloc(n);
}
static void *count_realloc(void *p, size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return realloc(p, n);
}
static const ax_allocator counting = {count_malloc, count_realloc, free};

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

TEST_TIMEOUT(limits_table_bounded_under_a_million_addresses, 120)
{
    ASSERT_EQ(ax_set_allocator(&counting), 0);
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.ip_table_size = 4096;
    hub_limits *L = make(&c);
    long made = atomic_load(&allocs);
    size_t mem = hub_limits_memory(L);
    ASSERT(mem < 4096 * 128 + 64 * 1024);
    peer p, guarded;
    hub_refusal r;
    /* An address being limited: its failed logins are remembered. */
    ip(&guarded, "192.0.2.77");
    for (int i = 0; i < 10; i++)
        hub_limits_login_failed(L, &guarded.sa, 0);
    ASSERT_EQ(hub_limits_login_check(L, &guarded.sa, 0, &r), HUB_LIMIT_LOGIN_FAIL);
    long rss0 = rss_kib();
    /* A million distinct sources within one second, every kind of call. */
    for (uint32_t i = 0; i < 1000000; i++) {
        uint64_t now = i / 1000;
        ip4n(&p, 0x0a000000u + i);
        (void)hub_limits_datagram(L, &p.sa, 64, now, &r);
        if (i % 4 == 0) hub_limits_login_failed(L, &p.sa, now);
        if (i % 16 == 0) {
            hub_limits_conn conn;
            if (hub_limits_conn_open(L, &p.sa, now, &conn, &r) == HUB_LIMIT_OK)
                hub_limits_conn_close(L, &conn, now);
        }
    }
    long rss1 = rss_kib();
    ASSERT_EQ(atomic_load(&allocs), made); /* nothing allocated after start */
    ASSERT_EQ(hub_limits_memory(L), mem);
    ASSERT(rss1 - rss0 < (long)(mem / 1024) + 1024);
    hub_limits_stats st;
    hub_limits_stats_get(L, &st);
    ASSERT(st.ips <= 4096);
    ASSERT(st.overflowed > 0);
    ASSERT_EQ(st.connections, 0);
    /* The limited address was not pushed out by the flood. */
    ASSERT_EQ(hub_limits_login_check(L, &guarded.sa, 1000, &r), HUB_LIMIT_LOGIN_FAIL);
    hub_limits_free(L);
    ASSERT_EQ(ax_set_allocator(NULL), 0);
}

TEST(limits_idle_entries_evicted)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.ip_table_size = 256;
    c.ip_msg_rate = rate("1000/s");
    hub_limits *L = make(&c);
    peer p;
    hub_refusal r;
    hub_limits_stats st;
    /* 5,000 addresses at once fill the table; the rest overflow. */
    for (uint32_t i = 0; i < 5000; i++)
        (void)hub_limits_datagram(L, ip4n(&p, 0x0b000000u + i), 10, 0, &r);
    hub_limits_stats_get(L, &st);
    uint64_t over = st.overflowed;
    ASSERT_EQ(st.ips, 256);
    ASSERT(over > 4000);
    ASSERT_EQ(st.evicted, 0);
    /* Overflowed addresses share one entry: over 4,000 datagrams at once
     * used up its burst of 1,000, so a newcomer is refused... */
    ASSERT_EQ(hub_limits_datagram(L, ip4n(&p, 0x0c000000u), 10, 0, &r), HUB_LIMIT_IP_MSG);
    /* ...until the old entries are idle (buckets full again, log window
     * over): then newcomers take their slots over. */
    uint64_t later = HUB_LIMITS_LOG_WINDOW_MS + 10;
    for (uint32_t i = 0; i < 200; i++)
        ASSERT_EQ(hub_limits_datagram(L, ip4n(&p, 0x0d000000u + i), 10, later, &r), HUB_LIMIT_OK);
    hub_limits_stats_get(L, &st);
    ASSERT(st.evicted > 150);
    ASSERT(st.overflowed - over < 50);
    /* An entry with a connection is never taken over. */
    hub_limits_conn conn;
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "10.99.0.1"), later, &conn, &r), HUB_LIMIT_OK);
    for (uint32_t i = 0; i < 5000; i++)
        (void)hub_limits_datagram(L, ip4n(&p, 0x0e000000u + i), 10, later * 3, &r);
    hub_limits_stats_get(L, &st);
    ASSERT_EQ(st.connections, 1);
    hub_limits_conn_close(L, &conn, later * 3);
    hub_limits_stats_get(L, &st);
    ASSERT_EQ(st.connections, 0);
    hub_limits_free(L);
}

/* --- threads ------------------------------------------------------------------- */

static hub_limits *shared;
static void *churn(void *arg)
{
    peer p;
    hub_refusal r;
    uint32_t base = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < 20000; i++) {
        hub_limits_conn conn;
        ip4n(&p, base + (i % 64));
        if (hub_limits_conn_open(shared, &p.sa, i, &conn, &r) != HUB_LIMIT_OK) continue;
        for (int k = 0; k < 4; k++)
            (void)hub_limits_msg(shared, &conn, 100, i, &r);
        (void)hub_limits_datagram(shared, &p.sa, 100, i, &r);
        hub_limits_conn_close(shared, &conn, i);
    }
    return NULL;
}

TEST(limits_two_threads_balance)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    shared = make(&c);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)0x0a000000u), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    hub_limits_stats st;
    hub_limits_stats_get(shared, &st);
    ASSERT_EQ(st.connections, 0);
    ASSERT(st.ips == 64);
    hub_limits_free(shared);
}

/* --- parsing ----------------------------------------------------------------- */

TEST(limits_rate_parse)
{
    static const struct {
        const char *in;
        uint64_t n, per_ms, burst;
    } good[] = {
        {"100/s", 100, 1000, 100},
        {"1000/10s", 1000, 10000, 1000},
        {"1MiB/s", 1 << 20, 1000, 1 << 20},
        {"10/min", 10, 60000, 10},
        {"10/m", 10, 60000, 10},
        {"5/h", 5, 3600000, 5},
        {"50/100ms", 50, 100, 50},
        {"1000/s burst 2000", 1000, 1000, 2000},
        {"  1k/s   BURST  4k ", 1000, 1000, 4000},
        {"2MB/s burst 512KiB", 2000000, 1000, 512 * 1024},
        {"1G/s", 1000000000, 1000, 1000000000},
        {"16mib/SEC", 16 << 20, 1000, 16 << 20},
        {"off", 0, 1000, 0},
        {" 0 ", 0, 1000, 0},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        hub_rate r;
        char why[200] = "", buf[80];
        ASSERT_EQ(hub_rate_parse(good[i].in, &r, why, sizeof why), 0);
        ASSERT_EQ(r.n, good[i].n);
        if (r.n) {
            ASSERT_EQ(r.per_ms, good[i].per_ms);
            ASSERT_EQ(r.burst, good[i].burst);
        }
        hub_rate back;
        ASSERT_EQ(hub_rate_parse(hub_rate_format(&r, buf, sizeof buf), &back, why, sizeof why), 0);
        ASSERT(memcmp(&back, &r, sizeof r) == 0);
    }
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"", "'': not a rate: write COUNT/PERIOD, like 100/s, 1000/10s, 1MiB/s or 10/min"},
        {"fast", "'fast': not a rate: write COUNT/PERIOD, like 100/s, 1000/10s, 1MiB/s or 10/min"},
        {"100", "'100': expected '/' and a period after the count, as in 100/s"},
        {"100/", "'100/': the period needs a unit (ms, s, min or h)"},
        {"100/fortnight", "'100/fortnight': unknown unit 'fortnight' (ms, s, min or h)"},
        {"100/0s", "'100/0s': the period must be longer than 0"},
        {"5XB/s", "'5XB/s': unknown size 'XB' (k, M, G, KiB, MiB, GiB or B)"},
        {"0/s", "'0/s': a rate of 0 lets nothing through; write 'off' for no limit"},
        {"-1/s", "'-1/s': not a rate: write COUNT/PERIOD, like 100/s, 1000/10s, 1MiB/s or 10/min"},
        {"99999999999999999999/s", "'99999999999999999999/s': the count is too large"},
        {"2000GiB/s", "'2000GiB/s': the count is too large"},
        {"10/s burst 0", "'10/s burst 0': the burst must be at least 1"},
        {"10/s burst", "'10/s burst': not a rate: write COUNT/PERIOD, like 100/s, 1000/10s, "
                       "1MiB/s or 10/min"},
        {"10/s bust 5", "'10/s bust 5': unexpected 'bust 5' after the rate"},
        {"10/s burst 1000G/100000h", "'10/s burst 1000G/100000h': unexpected '/100000h' after "
                                     "the rate"},
        {"10/100000h burst 1000G", "'10/100000h burst 1000G': the burst is too large for so long "
                                   "a period"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hub_rate r = {7, 7, 7};
        char why[200] = "";
        ASSERT_EQ(hub_rate_parse(bad[i].in, &r, why, sizeof why), AX_EINVAL);
        ASSERT_STREQ(why, bad[i].why);
        ASSERT_EQ(r.n, 7); /* untouched */
    }
}

TEST(limits_conf_set)
{
    hub_limits_conf c, d;
    hub_limits_conf_default(&c);
    d = c;
    char why[200] = "";
    ASSERT_EQ(hub_limits_conf_set(&c, "msg_rate", "500/s burst 800", why, sizeof why), 0);
    ASSERT_EQ(c.msg_rate.n, 500);
    ASSERT_EQ(c.msg_rate.burst, 800);
    ASSERT_EQ(hub_limits_conf_set(&c, "login_fail_rate", "off", why, sizeof why), 0);
    ASSERT_EQ(c.login_fail_rate.n, 0);
    ASSERT_EQ(hub_limits_conf_set(&c, "max_connections", "off", why, sizeof why), 0);
    ASSERT_EQ(c.max_connections, 0);
    ASSERT_EQ(hub_limits_conf_set(&c, "max_connections_per_ip", "32", why, sizeof why), 0);
    ASSERT_EQ(c.max_connections_per_ip, 32);
    ASSERT_EQ(hub_limits_conf_set(&c, "byte_rate", "1MiB/fortnight", why, sizeof why), AX_EINVAL);
    ASSERT_STREQ(why, "byte_rate: '1MiB/fortnight': unknown unit 'fortnight' (ms, s, min or h)");
    ASSERT_EQ(hub_limits_conf_set(&c, "ipv6_prefix", "129", why, sizeof why), AX_EINVAL);
    ASSERT_STREQ(why, "ipv6_prefix must be a whole number from 16 to 128, not '129'");
    ASSERT_EQ(hub_limits_conf_set(&c, "ip_table_size", "off", why, sizeof why), AX_EINVAL);
    ASSERT_STREQ(why, "ip_table_size must be a whole number from 256 to 16777216, not 'off'");
    ASSERT_EQ(hub_limits_conf_set(&c, "history_count", "5", why, sizeof why), AX_ENOENT);
    ASSERT_EQ(c.ipv6_prefix, d.ipv6_prefix);

    /* The defaults are what docs/config.md says. */
    char buf[80];
    ASSERT_EQ(d.max_connections, 10000);
    ASSERT_EQ(d.max_connections_per_ip, 256);
    ASSERT_STREQ(hub_rate_format(&d.msg_rate, buf, sizeof buf), "1000/1000ms burst 2000");
    ASSERT_STREQ(hub_rate_format(&d.byte_rate, buf, sizeof buf), "1048576/1000ms burst 2097152");
    ASSERT_STREQ(hub_rate_format(&d.login_fail_rate, buf, sizeof buf), "10/60000ms burst 10");
    /* An engine refuses settings out of range. */
    hub_limits *L = NULL;
    c.ip_table_size = 10;
    ASSERT_EQ(hub_limits_new(&c, &L), AX_EINVAL);
    ASSERT(L == NULL);
}

/* The flood test, at the engine: 1,000 connections from one
 * address with the defaults; past 256 they are refused (logged once),
 * while another address still connects. */
TEST(limits_thousand_connections_one_address)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    hub_limits *L = make(&c);
    peer p;
    static hub_limits_conn conn[1001];
    hub_refusal r;
    int ok = 0, refused = 0, logged = 0;
    for (int i = 0; i < 1000; i++) {
        hub_limit_kind k =
            hub_limits_conn_open(L, ip(&p, "198.51.100.7"), (uint64_t)i, &conn[i], &r);
        if (k == HUB_LIMIT_OK) {
            ok++;
            continue;
        }
        ASSERT_EQ(k, HUB_LIMIT_IP_CONNS);
        refused++;
        logged += r.log;
    }
    ASSERT_EQ(ok, 256);
    ASSERT_EQ(refused, 744);
    ASSERT_EQ(logged, 1);
    ASSERT_EQ(hub_limits_conn_open(L, ip(&p, "198.51.100.8"), 1000, &conn[1000], &r), HUB_LIMIT_OK);
    for (int i = 0; i <= 1000; i++)
        hub_limits_conn_close(L, &conn[i], 2000);
    hub_limits_stats st;
    hub_limits_stats_get(L, &st);
    ASSERT_EQ(st.connections, 0);
    ASSERT_EQ(st.refused[HUB_LIMIT_IP_CONNS], 744);
    hub_limits_free(L);
}
