/* UDP: echo, size limits, truncation counting, connected sockets, batching. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

struct urx {
    int n;
    size_t lens[300];
    char first[64];
    ax_addr from;
    int echo;
    int send_errors;
};

static void rx_cb(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    struct urx *r = ax_udp_data(u);
    if (r->n < 300) r->lens[r->n] = len;
    if (r->n == 0) memcpy(r->first, data, len < sizeof r->first ? len : sizeof r->first);
    r->from = *from;
    r->n++;
    if (r->echo && ax_udp_send(u, from, data, len) != 0) r->send_errors++;
}

static ax_udp *bind_udp(ax_loop *loop, const char *url, struct urx *r, const ax_udp_opts *o)
{
    int err = 0;
    ax_udp *u = ax_udp_bind(loop, url, rx_cb, o, r, &err);
    if (!u) {
        char d[96];
        snprintf(d, sizeof d, "ax_udp_bind(%s): %d %s", url, err, ax_strerror(err));
        ax_test_fail(__FILE__, __LINE__, "udp != NULL", d);
    }
    return u;
}

/* A plain datagram socket bound to loopback, port chosen by the kernel. */
static int raw_udp(int family, ax_addr *self)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT(fd != -1);
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        sl = sizeof *s6;
    }
    ASSERT(bind(fd, (struct sockaddr *)&ss, sl) == 0);
    sl = sizeof ss;
    ASSERT(getsockname(fd, (struct sockaddr *)&ss, &sl) == 0);
    if (self) ax_addr_from_sockaddr(self, AX_SCHEME_UDP, (struct sockaddr *)&ss, sl);
    return fd;
}

static void raw_send(int fd, const ax_addr *to, const void *data, size_t len)
{
    ASSERT_EQ(sendto(fd, data, len, 0, (const struct sockaddr *)&to->sa, to->len), (ssize_t)len);
}

static ssize_t raw_recv_loop(ax_loop *loop, int fd, void *buf, size_t cap, int ms)
{
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    for (;;) {
        ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0) return n;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
        if (tu_now_ms() > end) return -ETIMEDOUT;
        ax_loop_run_once(loop, 5);
    }
}

TEST(udp_bind_port0)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, NULL);
    const ax_addr *a = ax_udp_addr(u);
    ASSERT_EQ(a->scheme, AX_SCHEME_UDP);
    ASSERT(ax_addr_port(a) > 0);
    int fd = ax_udp_fd(u);
    ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ASSERT(ax_udp_data(u) == &r);
    ASSERT_EQ(ax_loop_alive(loop), 1);
    int err = 0;
    ASSERT(ax_udp_bind(loop, "tcp://127.0.0.1:0", rx_cb, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_ESCHEME);
    ASSERT(ax_udp_bind(loop, "udp://nope:1", rx_cb, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_EHOST);
    ax_udp_close(u);
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT_EQ(ax_loop_alive(loop), 0);
    ax_loop_free(loop);
}

TEST(udp_echo_with_raw_peer)
{
    ax_loop *loop = tu_loop();
    struct urx r = {.echo = 1};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, NULL);
    ax_addr me;
    int fd = raw_udp(AF_INET, &me);
    for (int i = 0; i < 20; i++) {
        char msg[32], back[64];
        int len = snprintf(msg, sizeof msg, "datagram %d", i);
        raw_send(fd, ax_udp_addr(u), msg, (size_t)len);
        ssize_t n = raw_recv_loop(loop, fd, back, sizeof back, 3000);
        ASSERT_EQ(n, len);
        ASSERT(memcmp(back, msg, (size_t)len) == 0);
    }
    ASSERT_EQ(r.n, 20);
    ASSERT(ax_addr_equal(&r.from, &me));
    ASSERT_EQ(r.from.scheme, AX_SCHEME_UDP);
    ASSERT_EQ(r.send_errors, 0);
    ax_udp_stats st;
    ax_udp_stats_get(u, &st);
    ASSERT_EQ(st.rx, 20);
    ASSERT_EQ(st.tx, 20);
    ASSERT_EQ(st.rx_truncated, 0);
    ax_udp_close(u);
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_echo_two_axon_sockets)
{
    ax_loop *loop = tu_loop();
    struct urx srv = {.echo = 1}, cli = {0};
    ax_udp *s = bind_udp(loop, "udp://127.0.0.1:0", &srv, NULL);
    char url[AX_ADDR_STRLEN];
    tu_url(ax_udp_addr(s), url, sizeof url);
    int err = 0;
    ax_udp *c = ax_udp_connect(loop, url, rx_cb, NULL, &cli, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(ax_udp_send(c, NULL, "ping", 4), 0);
    RUN_UNTIL(loop, cli.n == 1, 3000);
    ASSERT_EQ(cli.lens[0], 4);
    ASSERT(memcmp(cli.first, "ping", 4) == 0);
    ASSERT(ax_addr_equal(&cli.from, ax_udp_addr(s)));
    ax_loop_free(loop);
}

TEST(udp_echo_ipv6)
{
    if (!tu_have_ipv6()) {
        SKIP("no IPv6 loopback");
    }
    ax_loop *loop = tu_loop();
    struct urx r = {.echo = 1};
    ax_udp *u = bind_udp(loop, "udp://[::1]:0", &r, NULL);
    ASSERT_EQ(ax_udp_addr(u)->sa.ss_family, AF_INET6);
    ax_addr me;
    int fd = raw_udp(AF_INET6, &me);
    raw_send(fd, ax_udp_addr(u), "six", 3);
    char back[8];
    ASSERT_EQ(raw_recv_loop(loop, fd, back, sizeof back, 3000), 3);
    ASSERT(ax_addr_equal(&r.from, &me));
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_send_limits)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    ax_udp_opts o = {.max_datagram = 100};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, &o);
    ax_addr me;
    int fd = raw_udp(AF_INET, &me);
    static char big[70000];
    ASSERT_EQ(ax_udp_send(u, &me, big, 101), AX_EMSGSIZE);
    ASSERT_EQ(ax_udp_send(u, &me, big, 100), 0);
    ASSERT_EQ(ax_udp_send(u, NULL, big, 10), AX_EINVAL); /* not connected */
    char back[200];
    ASSERT_EQ(raw_recv_loop(loop, fd, back, sizeof back, 3000), 100);
    /* A datagram that failed was never sent. */
    ASSERT_EQ(recv(fd, back, sizeof back, MSG_DONTWAIT), -1);
    ax_udp_close(u);

    /* Default limit: the IPv4 maximum, 65507. */
    struct urx r2 = {0};
    u = bind_udp(loop, "udp://127.0.0.1:0", &r2, NULL);
    ASSERT_EQ(ax_udp_send(u, &me, big, 65508), AX_EMSGSIZE);
    for (size_t i = 0; i < 65507; i++)
        big[i] = (char)(i * 31);
    ASSERT_EQ(ax_udp_send(u, &me, big, 65507), 0);
    static char back2[70000];
    ASSERT_EQ(raw_recv_loop(loop, fd, back2, sizeof back2, 3000), 65507);
    ASSERT(memcmp(back2, big, 65507) == 0);
    /* Limits above 65535 are refused. */
    int err = 0;
    ax_udp_opts huge = {.max_datagram = 70000};
    ASSERT(ax_udp_bind(loop, "udp://127.0.0.1:0", rx_cb, &huge, NULL, &err) == NULL);
    ASSERT(err < 0);
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_oversized_datagrams_dropped_and_counted)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    ax_udp_opts o = {.max_datagram = 100};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, &o);
    int fd = raw_udp(AF_INET, NULL);
    static char buf[65507];
    memset(buf, 'z', sizeof buf);
    raw_send(fd, ax_udp_addr(u), buf, 101);
    raw_send(fd, ax_udp_addr(u), buf, 50);
    raw_send(fd, ax_udp_addr(u), buf, 65507);
    raw_send(fd, ax_udp_addr(u), buf, 100);
    raw_send(fd, ax_udp_addr(u), buf, 0);
    RUN_UNTIL(loop, r.n == 3, 3000);
    tu_run_for(loop, 50);
    ASSERT_EQ(r.n, 3);
    ASSERT_EQ(r.lens[0], 50);
    ASSERT_EQ(r.lens[1], 100);
    ASSERT_EQ(r.lens[2], 0);
    ax_udp_stats st;
    ax_udp_stats_get(u, &st);
    ASSERT_EQ(st.rx_truncated, 2);
    ASSERT_EQ(st.rx, 3);
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_large_received_intact)
{
    ax_loop *loop = tu_loop();
    struct urx r = {.echo = 1};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, NULL);
    int fd = raw_udp(AF_INET, NULL);
    int rcv = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    static char buf[65507], back[65536];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 7 + 1);
    raw_send(fd, ax_udp_addr(u), buf, sizeof buf);
    ASSERT_EQ(raw_recv_loop(loop, fd, back, sizeof back, 3000), (ssize_t)sizeof buf);
    ASSERT(memcmp(back, buf, sizeof buf) == 0);
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_connected_only_hears_its_peer)
{
    ax_loop *loop = tu_loop();
    ax_addr peer_addr;
    int peer = raw_udp(AF_INET, &peer_addr);
    int stranger = raw_udp(AF_INET, NULL);
    char url[AX_ADDR_STRLEN];
    tu_url(&peer_addr, url, sizeof url);
    struct urx r = {0};
    int err = 0;
    ax_udp *c = ax_udp_connect(loop, url, rx_cb, NULL, &r, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(ax_udp_send(c, NULL, "hi", 2), 0);
    char buf[16];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    tu_run_for(loop, 20);
    ASSERT(tu_readable(peer, 2000));
    ASSERT_EQ(recvfrom(peer, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl), 2);
    ax_addr client;
    ax_addr_from_sockaddr(&client, AX_SCHEME_UDP, (struct sockaddr *)&from, fl);
    raw_send(stranger, &client, "intruder", 8);
    raw_send(peer, &client, "reply", 5);
    RUN_UNTIL(loop, r.n >= 1, 3000);
    tu_run_for(loop, 50);
    ASSERT_EQ(r.n, 1);
    ASSERT_EQ(r.lens[0], 5);
    ASSERT(memcmp(r.first, "reply", 5) == 0);
    close(peer);
    close(stranger);
    ax_loop_free(loop);
}

TEST(udp_connected_refused_is_sticky)
{
    ax_loop *loop = tu_loop();
    /* A port nobody listens on: the kernel answers with ICMP unreachable. */
    ax_addr dead;
    int tmp = raw_udp(AF_INET, &dead);
    close(tmp);
    char url[AX_ADDR_STRLEN];
    tu_url(&dead, url, sizeof url);
    struct urx r = {0};
    int err = 0;
    ax_udp *c = ax_udp_connect(loop, url, rx_cb, NULL, &r, &err);
    ASSERT(c != NULL);
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++) {
        rc = ax_udp_send(c, NULL, "x", 1);
        tu_run_for(loop, 10);
    }
    ASSERT_EQ(rc, AX_ECONNREFUSED);
    ASSERT_EQ(r.n, 0);
    ax_loop_free(loop);
}

/* Many sends in one iteration all arrive, and close flushes what is queued. */
TEST(udp_batch_and_close_flushes)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, NULL);
    ax_addr me;
    int fd = raw_udp(AF_INET, &me);
    int rcv = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    for (int i = 0; i < 200; i++) {
        char msg[16];
        int n = snprintf(msg, sizeof msg, "%d", i);
        ASSERT_EQ(ax_udp_send(u, &me, msg, (size_t)n), 0);
    }
    ax_udp_close(u); /* before the loop ever ran */
    for (int i = 0; i < 200; i++) {
        char buf[16] = "", want[16];
        snprintf(want, sizeof want, "%d", i);
        ASSERT(tu_readable(fd, 2000));
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        ASSERT(n > 0);
        ASSERT_STREQ(buf, want);
    }
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT_EQ(ax_loop_alive(loop), 0);
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_flush_sends_now)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    ax_udp *u = bind_udp(loop, "udp://127.0.0.1:0", &r, NULL);
    ax_addr me;
    int fd = raw_udp(AF_INET, &me);
    ASSERT_EQ(ax_udp_send(u, &me, "now", 3), 0);
    ASSERT_EQ(ax_udp_flush(u), 0);
    char buf[8];
    ASSERT(tu_readable(fd, 1000)); /* the loop has not run */
    ASSERT_EQ(recv(fd, buf, sizeof buf, 0), 3);
    ax_udp_stats st;
    ax_udp_stats_get(u, &st);
    ASSERT_EQ(st.tx, 1);
    close(fd);
    ax_loop_free(loop);
}

static void close_in_cb(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    struct urx *r = ax_udp_data(u);
    r->n++;
    ASSERT_EQ(ax_udp_send(u, from, "bye", 3), 0);
    ax_udp_close(u);
    ASSERT_EQ(ax_udp_send(u, from, "late", 4), AX_ECLOSED);
}

TEST(udp_close_inside_callback)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    int err = 0;
    ax_udp *u = ax_udp_bind(loop, "udp://127.0.0.1:0", close_in_cb, NULL, &r, &err);
    ASSERT(u != NULL);
    ax_addr target = *ax_udp_addr(u);
    int fd = raw_udp(AF_INET, NULL);
    /* Several datagrams in one batch: none is delivered after the close. */
    for (int i = 0; i < 10; i++)
        raw_send(fd, &target, "x", 1);
    tu_sleep_ms(20);
    RUN_UNTIL(loop, r.n >= 1, 3000);
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT_EQ(r.n, 1);
    char buf[8];
    ASSERT(tu_readable(fd, 1000));
    ASSERT_EQ(recv(fd, buf, sizeof buf, 0), 3);
    ASSERT_EQ(recv(fd, buf, sizeof buf, MSG_DONTWAIT), -1);
    close(fd);
    ax_loop_free(loop);
}

TEST(udp_reuse_port)
{
    ax_loop *loop = tu_loop();
    struct urx r = {0};
    ax_udp_opts o = {.reuse_port = true};
    ax_udp *a = bind_udp(loop, "udp://127.0.0.1:0", &r, &o);
    char url[AX_ADDR_STRLEN];
    tu_url(ax_udp_addr(a), url, sizeof url);
    ax_udp *b = bind_udp(loop, url, &r, &o);
    ASSERT(ax_addr_equal(ax_udp_addr(a), ax_udp_addr(b)));
    int err = 0;
    ASSERT(ax_udp_bind(loop, url, rx_cb, NULL, &r, &err) == NULL);
    ASSERT_EQ(err, AX_EADDRINUSE);
    ax_loop_free(loop);
}
