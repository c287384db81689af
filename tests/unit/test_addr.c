/* Addresses: parsing URLs, formatting them back, comparing, error texts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/un.h>

#include "testutil.h"

static ax_addr parse_ok(const char *url)
{
    ax_addr a;
    char why[160] = "";
    memset(&a, 0x5a, sizeof a);
    int rc = ax_addr_parse(url, &a, why, sizeof why);
    if (rc != 0) {
        char d[300];
        snprintf(d, sizeof d, "'%s' -> %d (%s): %s", url, rc, ax_strerror(rc), why);
        ax_test_fail(__FILE__, __LINE__, "ax_addr_parse(url) == 0", d);
    }
    return a;
}

static const struct sockaddr_in *sin_of(const ax_addr *a)
{
    return (const struct sockaddr_in *)&a->sa;
}

static const struct sockaddr_in6 *sin6_of(const ax_addr *a)
{
    return (const struct sockaddr_in6 *)&a->sa;
}

static const struct sockaddr_un *sun_of(const ax_addr *a)
{
    return (const struct sockaddr_un *)&a->sa;
}

TEST(addr_parse_ipv4)
{
    ax_addr a = parse_ok("tcp://127.0.0.1:7000");
    ASSERT_EQ(a.scheme, AX_SCHEME_TCP);
    ASSERT_EQ(a.sa.ss_family, AF_INET);
    ASSERT_EQ(a.len, sizeof(struct sockaddr_in));
    ASSERT_EQ(ntohs(sin_of(&a)->sin_port), 7000);
    ASSERT_EQ(ntohl(sin_of(&a)->sin_addr.s_addr), 0x7f000001);
    ASSERT_EQ(ax_addr_port(&a), 7000);

    a = parse_ok("udp://10.1.2.3:65535");
    ASSERT_EQ(a.scheme, AX_SCHEME_UDP);
    ASSERT_EQ(ntohl(sin_of(&a)->sin_addr.s_addr), 0x0a010203);
    ASSERT_EQ(ax_addr_port(&a), 65535);

    a = parse_ok("udp://0.0.0.0:0");
    ASSERT_EQ(ntohl(sin_of(&a)->sin_addr.s_addr), 0);
    ASSERT_EQ(ax_addr_port(&a), 0);
}

TEST(addr_parse_star_is_ipv4_any)
{
    ax_addr a = parse_ok("tcp://*:8080");
    ASSERT_EQ(a.sa.ss_family, AF_INET);
    ASSERT_EQ(sin_of(&a)->sin_addr.s_addr, htonl(INADDR_ANY));
    ASSERT_EQ(ax_addr_port(&a), 8080);
}

TEST(addr_parse_localhost)
{
    ax_addr a = parse_ok("tcp://localhost:80");
    ASSERT_EQ(a.scheme, AX_SCHEME_TCP);
    ASSERT_EQ(ax_addr_port(&a), 80);
    if (a.sa.ss_family == AF_INET) {
        ASSERT_EQ(ntohl(sin_of(&a)->sin_addr.s_addr), 0x7f000001);
    } else {
        ASSERT_EQ(a.sa.ss_family, AF_INET6);
        ASSERT(IN6_IS_ADDR_LOOPBACK(&sin6_of(&a)->sin6_addr));
    }
}

TEST(addr_parse_ipv6)
{
    ax_addr a = parse_ok("tcp://[::1]:7000");
    ASSERT_EQ(a.sa.ss_family, AF_INET6);
    ASSERT_EQ(a.len, sizeof(struct sockaddr_in6));
    ASSERT(IN6_IS_ADDR_LOOPBACK(&sin6_of(&a)->sin6_addr));
    ASSERT_EQ(ax_addr_port(&a), 7000);

    a = parse_ok("udp://[2001:db8::17]:443");
    ASSERT_EQ(a.scheme, AX_SCHEME_UDP);
    struct in6_addr want;
    ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::17", &want), 1);
    ASSERT(memcmp(&sin6_of(&a)->sin6_addr, &want, sizeof want) == 0);

    a = parse_ok("tcp://[::]:0");
    ASSERT(IN6_IS_ADDR_UNSPECIFIED(&sin6_of(&a)->sin6_addr));

    a = parse_ok("tcp://[::ffff:192.0.2.1]:9");
    ASSERT(IN6_IS_ADDR_V4MAPPED(&sin6_of(&a)->sin6_addr));
}

TEST(addr_parse_unix_path)
{
    ax_addr a = parse_ok("unix:///run/app.sock");
    ASSERT_EQ(a.scheme, AX_SCHEME_UNIX);
    ASSERT_EQ(a.sa.ss_family, AF_UNIX);
    ASSERT_STREQ(sun_of(&a)->sun_path, "/run/app.sock");
    ASSERT(a.len >= offsetof(struct sockaddr_un, sun_path) + strlen("/run/app.sock"));
    ASSERT(a.len <= sizeof(struct sockaddr_un));
    ASSERT_EQ(ax_addr_port(&a), 0);
}

TEST(addr_parse_unix_abstract)
{
    ax_addr a = parse_ok("unix://@abstract-name");
    ASSERT_EQ(a.scheme, AX_SCHEME_UNIX);
    ASSERT_EQ(a.sa.ss_family, AF_UNIX);
    ASSERT_EQ(sun_of(&a)->sun_path[0], '\0');
    ASSERT(memcmp(sun_of(&a)->sun_path + 1, "abstract-name", 13) == 0);
    /* Abstract names are length-delimited: no trailing NUL counted. */
    ASSERT_EQ(a.len, offsetof(struct sockaddr_un, sun_path) + 1 + 13);
}

TEST(addr_parse_unix_longest_path)
{
    char url[256], path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1; /* room for the NUL */
    path[0] = '/';
    memset(path + 1, 'p', max - 1);
    path[max] = '\0';
    snprintf(url, sizeof url, "unix://%s", path);
    ax_addr a = parse_ok(url);
    ASSERT_STREQ(sun_of(&a)->sun_path, path);

    /* One byte longer cannot fit sun_path: an error, not a silent cut. */
    path[max] = 'p';
    path[max + 1] = '\0';
    snprintf(url, sizeof url, "unix://%s", path);
    char why[128] = "";
    int rc = ax_addr_parse(url, &a, why, sizeof why);
    ASSERT(rc < 0);
    ASSERT(why[0] != '\0');
}

TEST(addr_parse_path_suffix_ignored)
{
    ax_addr want = parse_ok("tcp://127.0.0.1:80");
    static const char *const with_path[] = {"tcp://127.0.0.1:80/", "tcp://127.0.0.1:80/chat",
                                            "tcp://127.0.0.1:80/a/much/longer/path?q=1"};
    for (size_t i = 0; i < sizeof with_path / sizeof with_path[0]; i++) {
        ax_addr a = parse_ok(with_path[i]);
        ASSERT_EQ(a.scheme, AX_SCHEME_TCP);
        ASSERT(ax_addr_equal(&a, &want));
    }
    ax_addr v6 = parse_ok("udp://[::1]:9/x");
    ASSERT_EQ(ax_addr_port(&v6), 9);
}

struct bad_url {
    const char *url;
    int code;       /* expected code; 0: any parse error */
    const char *in; /* text the reason must mention, or NULL */
};

static const struct bad_url bad_urls[] = {
    {"tcp://127.0.0.1:70000", AX_EPORT, "70000"},
    {"tcp://127.0.0.1:65536", AX_EPORT, "65536"},
    {"tcp://127.0.0.1", AX_EPORT, NULL},
    {"tcp://127.0.0.1:", AX_EPORT, NULL},
    {"tcp://127.0.0.1:abc", AX_EPORT, NULL},
    {"tcp://127.0.0.1:-1", AX_EPORT, NULL},
    {"tcp://127.0.0.1:80x", AX_EPORT, NULL},
    {"tcp://[::1]", AX_EPORT, NULL},
    {"tcp://[::1]:99999", AX_EPORT, NULL},
    {"ftp://127.0.0.1:21", AX_ESCHEME, "ftp"},
    {"http2://127.0.0.1:21", AX_ESCHEME, NULL},
    {"TCPX://1.2.3.4:5", AX_ESCHEME, NULL},
    {"tcp://256.1.1.1:80", AX_EHOST, NULL},
    {"tcp://1.2.3:80", AX_EHOST, NULL},
    {"tcp://example.com:80", AX_EHOST, "example.com"},
    {"tcp://[zz::1]:80", AX_EHOST, NULL},
    {"tcp://[127.0.0.1]:80", AX_EHOST, NULL},
    {"", 0, NULL},
    {"tcp://", 0, NULL},
    {"tcp:/127.0.0.1:80", 0, NULL},
    {"127.0.0.1:80", 0, NULL},
    {"://127.0.0.1:80", 0, NULL},
    {"tcp://:80", 0, NULL},
    {"tcp://[::1:80", 0, NULL},
    {"tcp://::1:80", 0, NULL},
    {"unix://", 0, NULL},
};

static bool is_parse_error(int rc)
{
    return rc == AX_EURL || rc == AX_ESCHEME || rc == AX_EHOST || rc == AX_EPORT;
}

TEST(addr_parse_errors_say_why)
{
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        const struct bad_url *b = &bad_urls[i];
        ax_addr a;
        char why[200];
        memset(why, 0, sizeof why);
        int rc = ax_addr_parse(b->url, &a, why, sizeof why);
        char d[400];
        snprintf(d, sizeof d, "'%s' -> %d (%s), why '%s'", b->url, rc, ax_strerror(rc), why);
        if (b->code ? rc != b->code : !is_parse_error(rc))
            ax_test_fail(__FILE__, __LINE__, "expected parse error code", d);
        if (why[0] == '\0') ax_test_fail(__FILE__, __LINE__, "reason written", d);
        if (b->in && !strstr(why, b->in)) ax_test_fail(__FILE__, __LINE__, "reason names it", d);
        /* Also fine without a reason buffer. */
        ASSERT_EQ(ax_addr_parse(b->url, &a, NULL, 0), rc);
    }
}

TEST(addr_parse_reason_respects_buffer)
{
    ax_addr a;
    char buf[32];
    memset(buf, '#', sizeof buf);
    int rc = ax_addr_parse("tcp://127.0.0.1:70000", &a, buf, 8);
    ASSERT_EQ(rc, AX_EPORT);
    ASSERT(memchr(buf, '\0', 8) != NULL);
    for (size_t i = 8; i < sizeof buf; i++)
        ASSERT_EQ(buf[i], '#');
    /* A one-byte buffer holds only the terminator. */
    memset(buf, '#', sizeof buf);
    rc = ax_addr_parse("nope", &a, buf, 1);
    ASSERT(is_parse_error(rc));
    ASSERT_EQ(buf[0], '\0');
    ASSERT_EQ(buf[1], '#');
}

TEST(addr_format)
{
    static const char *const canon[] = {
        "tcp://127.0.0.1:7000",   "udp://0.0.0.0:7001", "tcp://[::1]:7000",
        "udp://[2001:db8::1]:53", "tcp://10.0.0.255:1", "unix:///run/app.sock",
        "unix://@abstract-name",  "tcp://[::]:0",
    };
    for (size_t i = 0; i < sizeof canon / sizeof canon[0]; i++) {
        ax_addr a = parse_ok(canon[i]);
        char buf[AX_ADDR_STRLEN];
        char *r = ax_addr_format(&a, buf, sizeof buf);
        ASSERT(r == buf);
        ASSERT_STREQ(buf, canon[i]);
    }
}

TEST(addr_format_truncates_safely)
{
    ax_addr a = parse_ok("tcp://[2001:db8::1234:5678]:65535");
    char buf[40];
    memset(buf, '#', sizeof buf);
    ax_addr_format(&a, buf, 12);
    ASSERT(memchr(buf, '\0', 12) != NULL);
    for (size_t i = 12; i < sizeof buf; i++)
        ASSERT_EQ(buf[i], '#');
}

TEST(addr_round_trip)
{
    static const char *const urls[] = {
        "tcp://127.0.0.1:7000",       "tcp://localhost:1",   "tcp://*:8080", "udp://[::1]:9",
        "udp://[fe80::1:2:3:4]:1000", "unix:///tmp/x.sock",  "unix://@n",    "tcp://1.2.3.4:0",
        "tcp://[::ffff:10.0.0.1]:5",  "tcp://0.0.0.0:65535",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        ax_addr a = parse_ok(urls[i]);
        char buf[AX_ADDR_STRLEN];
        ax_addr_format(&a, buf, sizeof buf);
        ax_addr b = parse_ok(buf);
        ASSERT_EQ(b.scheme, a.scheme);
        ASSERT(ax_addr_equal(&a, &b));
        char buf2[AX_ADDR_STRLEN];
        ax_addr_format(&b, buf2, sizeof buf2);
        ASSERT_STREQ(buf2, buf);
    }
}

TEST(addr_equal)
{
    ax_addr a = parse_ok("tcp://127.0.0.1:7000");
    ax_addr b = parse_ok("tcp://127.0.0.1:7000");
    ASSERT(ax_addr_equal(&a, &b));
    b = parse_ok("tcp://127.0.0.1:7001");
    ASSERT(!ax_addr_equal(&a, &b));
    b = parse_ok("tcp://127.0.0.2:7000");
    ASSERT(!ax_addr_equal(&a, &b));
    b = parse_ok("tcp://[::1]:7000");
    ASSERT(!ax_addr_equal(&a, &b));
    b = parse_ok("tcp://[::ffff:127.0.0.1]:7000");
    ASSERT(!ax_addr_equal(&a, &b));

    ax_addr u1 = parse_ok("unix:///tmp/a.sock");
    ax_addr u2 = parse_ok("unix:///tmp/a.sock");
    ax_addr u3 = parse_ok("unix:///tmp/b.sock");
    ax_addr u4 = parse_ok("unix://@/tmp/a.sock");
    ASSERT(ax_addr_equal(&u1, &u2));
    ASSERT(!ax_addr_equal(&u1, &u3));
    ASSERT(!ax_addr_equal(&u1, &u4));
    ASSERT(!ax_addr_equal(&u1, &a));

    ax_addr v1 = parse_ok("udp://[2001:db8::1]:5");
    ax_addr v2 = parse_ok("udp://[2001:db8:0:0::1]:5");
    ax_addr v3 = parse_ok("udp://[2001:db8::2]:5");
    ASSERT(ax_addr_equal(&v1, &v2));
    ASSERT(!ax_addr_equal(&v1, &v3));
}

TEST(addr_equal_ignores_garbage_bytes)
{
    /* Equality looks at the address, not at padding or unused storage. */
    ax_addr a, b;
    memset(&a, 0x11, sizeof a);
    memset(&b, 0xee, sizeof b);
    ASSERT_EQ(ax_addr_parse("tcp://192.0.2.7:99", &a, NULL, 0), 0);
    ASSERT_EQ(ax_addr_parse("tcp://192.0.2.7:99", &b, NULL, 0), 0);
    ASSERT(ax_addr_equal(&a, &b));
}

TEST(addr_from_sockaddr)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(4242)};
    ASSERT_EQ(inet_pton(AF_INET, "192.0.2.9", &sin.sin_addr), 1);
    ax_addr a;
    ax_addr_from_sockaddr(&a, AX_SCHEME_UDP, (struct sockaddr *)&sin, sizeof sin);
    ASSERT_EQ(a.scheme, AX_SCHEME_UDP);
    ASSERT_EQ(a.len, sizeof sin);
    ASSERT_EQ(ax_addr_port(&a), 4242);
    ax_addr p = parse_ok("udp://192.0.2.9:4242");
    ASSERT(ax_addr_equal(&a, &p));
    char buf[AX_ADDR_STRLEN];
    ASSERT_STREQ(ax_addr_format(&a, buf, sizeof buf), "udp://192.0.2.9:4242");

    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
    ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr), 1);
    ax_addr_from_sockaddr(&a, AX_SCHEME_TCP, (struct sockaddr *)&s6, sizeof s6);
    ASSERT_STREQ(ax_addr_format(&a, buf, sizeof buf), "tcp://[2001:db8::5]:1");

    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, "/tmp/q.sock");
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen("/tmp/q.sock") + 1);
    ax_addr_from_sockaddr(&a, AX_SCHEME_UNIX, (struct sockaddr *)&sun, sl);
    ASSERT_EQ(a.scheme, AX_SCHEME_UNIX);
    ASSERT_STREQ(ax_addr_format(&a, buf, sizeof buf), "unix:///tmp/q.sock");
    p = parse_ok("unix:///tmp/q.sock");
    ASSERT(ax_addr_equal(&a, &p));
}

TEST(error_codes_and_texts)
{
    ASSERT_EQ(AX_ECONNRESET, -ECONNRESET);
    ASSERT_EQ(AX_ENOMEM, -ENOMEM);
    static const int codes[] = {
        AX_OK,        AX_ENOMEM,     AX_EINVAL,    AX_ECONNRESET, AX_ECONNREFUSED,
        AX_ETIMEDOUT, AX_EADDRINUSE, AX_EMSGSIZE,  AX_EOF,        AX_EURL,
        AX_ESCHEME,   AX_EHOST,      AX_EPORT,     AX_EOUTPUTCAP, AX_EIDLE,
        AX_ECLOSED,   AX_ESHUTDOWN,  AX_ECANCELED, -9999,         12345,
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = ax_strerror(codes[i]);
        ASSERT(s != NULL);
        ASSERT(s[0] != '\0');
    }
    /* axon's own codes have their own texts, distinct from each other. */
    static const int own[] = {AX_EOF,        AX_EURL,  AX_ESCHEME, AX_EHOST,
                              AX_EOUTPUTCAP, AX_EIDLE, AX_ECLOSED, AX_EPORT};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        for (size_t j = i + 1; j < sizeof own / sizeof own[0]; j++)
            ASSERT(strcmp(ax_strerror(own[i]), ax_strerror(own[j])) != 0);
    ASSERT(strcmp(ax_strerror(AX_ECONNRESET), ax_strerror(AX_ECONNREFUSED)) != 0);
}
