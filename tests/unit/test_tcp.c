/* TCP connections and listeners: echo, half-close, watermarks, pause,
 * timeouts, connect errors, graceful and abortive close, zero-copy writes,
 * EMFILE at accept. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "testutil.h"

#define MiB (1024u * 1024u)

TEST(tcp_listen_port0_and_addr)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    const ax_addr *a = ax_listener_addr(s.ls);
    ASSERT(a != NULL);
    ASSERT_EQ(a->scheme, AX_SCHEME_TCP);
    ASSERT_EQ(a->sa.ss_family, AF_INET);
    ASSERT(ax_addr_port(a) > 0);
    ax_addr want;
    char u[64];
    snprintf(u, sizeof u, "tcp://127.0.0.1:%d", ax_addr_port(a));
    ASSERT_EQ(ax_addr_parse(u, &want, NULL, 0), 0);
    ASSERT(ax_addr_equal(a, &want));
    char shown[AX_ADDR_STRLEN];
    ASSERT_STREQ(ax_listener_url(s.ls, shown, sizeof shown), u);
    ASSERT_EQ(ax_listener_emfile_count(s.ls), 0);
    ASSERT_EQ(ax_loop_alive(loop), 1);
    /* A real listener: a plain client can connect. */
    int fd = tu_connect(a, 0);
    RUN_UNTIL(loop, s.opened == 1, 3000);
    close(fd);
    RUN_UNTIL(loop, s.closed == 1, 3000);
    ASSERT_EQ(s.last_reason, AX_EOF);
    ax_listener_close(s.ls);
    ASSERT_EQ(ax_loop_alive(loop), 0);
    ax_loop_free(loop);
}

/* ---- echo with a blocking client thread -------------------------------- */

struct bclient {
    ax_addr addr;
    size_t total;
    atomic_int done;
    size_t got;
    size_t bad_at;
};

static void *echo_client_thread(void *arg)
{
    struct bclient *b = arg;
    int fd = tu_connect(&b->addr, 0);
    unsigned char *out = malloc(b->total), *in = malloc(b->total);
    tu_fill_pattern(out, b->total, 0);
    tu_write_all(fd, out, b->total);
    ssize_t n = tu_read_n(fd, in, b->total, 10000);
    b->got = n > 0 ? (size_t)n : 0;
    b->bad_at = tu_check_pattern(in, b->got, 0);
    close(fd);
    free(out);
    free(in);
    atomic_store(&b->done, 1);
    return NULL;
}

static int fd_flags_ok(int fd)
{
    int fdf = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
    return fdf != -1 && (fdf & FD_CLOEXEC) && fl != -1 && (fl & O_NONBLOCK);
}

static int nodelay_of(int fd)
{
    int v = -1;
    socklen_t l = sizeof v;
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &l) == -1) return -1;
    return v != 0;
}

TEST(tcp_echo_blocking_client)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    struct bclient b = {.addr = s.addr, .total = 3 * MiB + 123};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, echo_client_thread, &b), 0);
    RUN_UNTIL(loop, s.opened == 1, 5000);
    ax_conn *c = s.last;
    ASSERT(c != NULL);
    ASSERT(fd_flags_ok(ax_conn_fd(c)));
    ASSERT_EQ(nodelay_of(ax_conn_fd(c)), 1);
    ASSERT(ax_conn_listener(c) == s.ls);
    ASSERT(ax_conn_loop(c) == loop);
    ASSERT(ax_conn_data(c) == &s);
    ax_addr local;
    ASSERT_EQ(ax_conn_local(c, &local), 0);
    ASSERT(ax_addr_equal(&local, &s.addr));
    RUN_UNTIL(loop, atomic_load(&b.done) && s.closed == 1, 20000);
    pthread_join(th, NULL);
    ASSERT_EQ(b.got, b.total);
    ASSERT_EQ(b.bad_at, b.total);
    ASSERT_EQ(s.last_reason, AX_EOF);
    ASSERT_EQ(s.bytes_in, b.total);
    ASSERT_EQ(s.bytes_out, b.total);
    ASSERT_EQ(s.write_errors, 0);
    ax_loop_free(loop);
}

/* ---- echo with an axon client on the same loop ------------------------- */

struct aclient {
    int opened, closed, reason, data_calls;
    char buf[64];
    size_t got;
    ax_addr local, peer;
    int after_close;
};

static void ac_open(ax_conn *c)
{
    struct aclient *a = ax_conn_data(c);
    if (a->closed) a->after_close++;
    a->opened++;
    ASSERT(ax_conn_listener(c) == NULL);
    ASSERT(fd_flags_ok(ax_conn_fd(c)));
    ASSERT_EQ(nodelay_of(ax_conn_fd(c)), 1);
    ASSERT_EQ(ax_conn_local(c, &a->local), 0);
    ASSERT_EQ(ax_conn_peer(c, &a->peer), 0);
    ASSERT_EQ(ax_conn_write(c, "hello", 5), 0);
}

static size_t ac_data(ax_conn *c, const char *d, size_t n)
{
    struct aclient *a = ax_conn_data(c);
    if (a->closed) a->after_close++;
    a->data_calls++;
    ASSERT(a->got + n <= sizeof a->buf);
    memcpy(a->buf + a->got, d, n);
    a->got += n;
    if (a->got == 5) ax_conn_close(c);
    return n;
}

static void ac_close(ax_conn *c, int reason)
{
    struct aclient *a = ax_conn_data(c);
    if (a->closed) a->after_close++;
    a->closed++;
    a->reason = reason;
}

static const ax_conn_cbs ac_cbs = {.on_open = ac_open, .on_data = ac_data, .on_close = ac_close};

TEST_TIMEOUT(tcp_echo_axon_client, 10)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    struct aclient a = {0};
    int err = 0;
    ax_conn *c = ax_connect(loop, s.url, &ac_cbs, NULL, &a, &err);
    ASSERT(c != NULL);
    ASSERT(ax_conn_data(c) == &a);
    /* Never from inside ax_connect. */
    ASSERT_EQ(a.opened, 0);
    ASSERT_EQ(a.closed, 0);
    RUN_UNTIL(loop, s.opened == 1, 3000);
    ax_addr speer;
    ASSERT_EQ(ax_conn_peer(s.last, &speer), 0);
    RUN_UNTIL(loop, a.closed == 1 && s.closed == 1, 3000);
    ASSERT_EQ(a.opened, 1);
    ASSERT_EQ(a.got, 5);
    ASSERT(memcmp(a.buf, "hello", 5) == 0);
    ASSERT_EQ(a.reason, 0);
    ASSERT_EQ(s.last_reason, AX_EOF);
    ASSERT(ax_addr_equal(&speer, &a.local));
    ASSERT(ax_addr_equal(&a.peer, &s.addr));
    ASSERT_EQ(a.after_close, 0);
    tu_run_for(loop, 30);
    ASSERT_EQ(a.closed, 1);
    /* Closing the last handle outside the loop: run returns at once. */
    ax_listener_close(s.ls);
    ASSERT_EQ(ax_loop_alive(loop), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT(tu_now_ms() - t0 < 1000);
    ax_loop_free(loop);
}

TEST(tcp_echo_ipv6)
{
    if (!tu_have_ipv6()) {
        SKIP("no IPv6 loopback");
    }
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://[::1]:0", NULL);
    ASSERT_EQ(s.addr.sa.ss_family, AF_INET6);
    ASSERT(strncmp(s.url, "tcp://[::1]:", 12) == 0);
    struct aclient a = {0};
    ax_conn *c = ax_connect(loop, s.url, &ac_cbs, NULL, &a, NULL);
    ASSERT(c != NULL);
    RUN_UNTIL(loop, a.closed == 1 && s.closed == 1, 3000);
    ASSERT_EQ(a.got, 5);
    ASSERT_EQ(a.reason, 0);
    ASSERT_EQ(a.local.sa.ss_family, AF_INET6);
    ax_loop_free(loop);
}

TEST(tcp_connect_localhost)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    char url[64];
    snprintf(url, sizeof url, "tcp://localhost:%d", ax_addr_port(&s.addr));
    struct aclient a = {0};
    ASSERT(ax_connect(loop, url, &ac_cbs, NULL, &a, NULL) != NULL);
    RUN_UNTIL(loop, a.closed == 1, 3000);
    ASSERT_EQ(a.got, 5);
    ASSERT_EQ(a.reason, 0);
    ax_loop_free(loop);
}

/* ---- partial consumption ----------------------------------------------- */

struct lines {
    char line[8][16];
    int n;
    int calls;
    int closed, reason;
};

static size_t lines_data(ax_conn *c, const char *d, size_t len)
{
    struct lines *l = ax_conn_data(c);
    l->calls++;
    size_t used = 0;
    for (;;) {
        const char *nl = memchr(d + used, '\n', len - used);
        if (!nl) break;
        size_t ll = (size_t)(nl - (d + used));
        ASSERT(l->n < 8 && ll < 16);
        memcpy(l->line[l->n], d + used, ll);
        l->line[l->n][ll] = '\0';
        l->n++;
        used += ll + 1;
    }
    return used;
}

static void lines_close(ax_conn *c, int reason)
{
    struct lines *l = ax_conn_data(c);
    l->closed++;
    l->reason = reason;
}

TEST(tcp_unconsumed_bytes_are_offered_again)
{
    ax_loop *loop = tu_loop();
    struct lines l = {0};
    static const ax_conn_cbs cbs = {.on_data = lines_data, .on_close = lines_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &l, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    static const char *const parts[] = {"ab", "c\nde", "f\ng", "\n"};
    for (int i = 0; i < 4; i++) {
        tu_write_all(fd, parts[i], strlen(parts[i]));
        int before = l.calls;
        RUN_UNTIL(loop, l.calls > before, 3000);
    }
    ASSERT_EQ(l.calls, 4);
    ASSERT_EQ(l.n, 3);
    ASSERT_STREQ(l.line[0], "abc");
    ASSERT_STREQ(l.line[1], "def");
    ASSERT_STREQ(l.line[2], "g");
    close(fd);
    RUN_UNTIL(loop, l.closed == 1, 3000);
    ASSERT_EQ(l.reason, AX_EOF);
    ax_loop_free(loop);
}

static size_t consume_nothing(ax_conn *c, const char *d, size_t len)
{
    return 0;
}

TEST(tcp_max_input_closes_with_emsgsize)
{
    ax_loop *loop = tu_loop();
    struct lines l = {0};
    static const ax_conn_cbs cbs = {.on_data = consume_nothing, .on_close = lines_close};
    ax_conn_opts o = {.max_input = 1000};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, &l, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    char buf[3000];
    memset(buf, 'x', sizeof buf);
    tu_write_all(fd, buf, 900);
    tu_run_for(loop, 50);
    ASSERT_EQ(l.closed, 0); /* 900 unconsumed bytes are within the limit */
    tu_write_all(fd, buf, sizeof buf);
    RUN_UNTIL(loop, l.closed == 1, 3000);
    ASSERT_EQ(l.reason, AX_EMSGSIZE);
    close(fd);
    ax_loop_free(loop);
}

TEST(tcp_no_on_data_discards)
{
    ax_loop *loop = tu_loop();
    struct lines l = {0};
    static const ax_conn_cbs cbs = {.on_close = lines_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &l, NULL);
    ASSERT(ls != NULL);
    /* Far above max_input: discarded, not kept. */
    tu_writer w = {.addr = *ax_listener_addr(ls), .len = 3 * MiB};
    tu_writer_start(&w);
    RUN_UNTIL(loop, w.done && l.closed == 1, 10000);
    tu_writer_join(&w);
    ASSERT_EQ(l.reason, AX_EOF);
    ax_loop_free(loop);
}

/* ---- half-close -------------------------------------------------------- */

struct half {
    size_t got;
    int ends, closed, reason;
    int write_after_shutdown;
    int after_close;
};

static size_t half_data(ax_conn *c, const char *d, size_t n)
{
    struct half *h = ax_conn_data(c);
    if (h->closed) h->after_close++;
    h->got += n;
    return n;
}

static void half_end(ax_conn *c)
{
    struct half *h = ax_conn_data(c);
    if (h->closed) h->after_close++;
    h->ends++;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "got %zu", h->got);
    ASSERT_EQ(ax_conn_write(c, msg, (size_t)n), 0);
    ASSERT_EQ(ax_conn_shutdown(c), 0);
    h->write_after_shutdown = ax_conn_write(c, "x", 1);
}

static void half_close(ax_conn *c, int reason)
{
    struct half *h = ax_conn_data(c);
    if (h->closed) h->after_close++;
    h->closed++;
    h->reason = reason;
}

TEST(tcp_half_close_reply_after_peer_end)
{
    ax_loop *loop = tu_loop();
    struct half h = {0};
    static const ax_conn_cbs cbs = {
        .on_data = half_data, .on_end = half_end, .on_close = half_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &h, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    char req[100];
    memset(req, 'q', sizeof req);
    tu_write_all(fd, req, sizeof req);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    RUN_UNTIL(loop, h.ends == 1, 3000);
    ASSERT_EQ(h.write_after_shutdown, AX_ECLOSED);
    char resp[64] = "";
    ssize_t n = tu_loop_read_to_eof(loop, fd, resp, sizeof resp - 1, 3000);
    ASSERT_EQ(n, 7);
    ASSERT_STREQ(resp, "got 100");
    /* Both directions are finished: the connection closes by itself. */
    RUN_UNTIL(loop, h.closed == 1, 3000);
    ASSERT(h.reason == 0 || h.reason == AX_EOF);
    close(fd);
    tu_run_for(loop, 30);
    ASSERT_EQ(h.closed, 1);
    ASSERT_EQ(h.after_close, 0);
    ax_loop_free(loop);
}

static void shut_open(ax_conn *c)
{
    ASSERT_EQ(ax_conn_write(c, "hello", 5), 0);
    ASSERT_EQ(ax_conn_shutdown(c), 0);
    ASSERT_EQ(ax_conn_write(c, "x", 1), AX_ECLOSED);
}

TEST(tcp_shutdown_keeps_reading)
{
    ax_loop *loop = tu_loop();
    struct half h = {0};
    static const ax_conn_cbs cbs = {
        .on_open = shut_open, .on_data = half_data, .on_close = half_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &h, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    char buf[16] = "";
    /* "hello" then end of stream from the server ... */
    ASSERT_EQ(tu_loop_read_to_eof(loop, fd, buf, sizeof buf, 3000), 5);
    ASSERT(memcmp(buf, "hello", 5) == 0);
    /* ... while our direction still works. */
    for (int i = 0; i < 3; i++) {
        tu_write_all(fd, "later", 5);
        RUN_UNTIL(loop, h.got == (size_t)(i + 1) * 5, 3000);
    }
    ASSERT_EQ(h.closed, 0);
    close(fd);
    RUN_UNTIL(loop, h.closed == 1, 3000);
    ASSERT_EQ(h.reason, AX_EOF);
    ax_loop_free(loop);
}

/* on_end NULL: the peer's FIN closes gracefully, flushing what is queued. */
struct bulk {
    size_t size;
    unsigned char *data;
    int closed, reason;
};

static size_t bulk_on_request(ax_conn *c, const char *d, size_t n)
{
    struct bulk *b = ax_conn_data(c);
    ASSERT(ax_conn_write(c, b->data, b->size) >= 0);
    return n;
}

static void bulk_close(ax_conn *c, int reason)
{
    struct bulk *b = ax_conn_data(c);
    b->closed++;
    b->reason = reason;
}

struct reader {
    ax_addr addr;
    int rcvbuf;
    int delay_ms;
    const char *request;
    unsigned char *buf;
    size_t cap;
    ssize_t got;
    atomic_int done;
};

static void *reader_thread(void *arg)
{
    struct reader *r = arg;
    int fd = tu_connect(&r->addr, r->rcvbuf);
    if (r->request) {
        tu_write_all(fd, r->request, strlen(r->request));
        shutdown(fd, SHUT_WR);
    }
    if (r->delay_ms) tu_sleep_ms(r->delay_ms);
    r->got = tu_read_to_eof(fd, r->buf, r->cap, 15000);
    close(fd);
    atomic_store(&r->done, 1);
    return NULL;
}

TEST(tcp_peer_end_without_on_end_flushes_then_closes)
{
    ax_loop *loop = tu_loop();
    struct bulk b = {.size = 4 * MiB};
    b.data = malloc(b.size);
    tu_fill_pattern(b.data, b.size, 0);
    static const ax_conn_cbs cbs = {.on_data = bulk_on_request, .on_close = bulk_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &b, NULL);
    ASSERT(ls != NULL);
    struct reader r = {.addr = *ax_listener_addr(ls),
                       .rcvbuf = 65536,
                       .delay_ms = 100,
                       .request = "G",
                       .cap = b.size + 16};
    r.buf = malloc(r.cap);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, reader_thread, &r), 0);
    RUN_UNTIL(loop, atomic_load(&r.done) && b.closed == 1, 15000);
    pthread_join(th, NULL);
    ASSERT_EQ(r.got, (ssize_t)b.size);
    ASSERT_EQ(tu_check_pattern(r.buf, b.size, 0), b.size);
    ASSERT(b.reason == AX_EOF || b.reason == 0);
    ax_loop_free(loop);
}

/* ---- watermarks and on_drain ------------------------------------------- */

struct wm {
    size_t high, low;
    uint64_t written, target;
    int returned_high;
    int bad_return; /* 1 returned while at or below high, or 0 above it */
    int drains;
    int drain_above_low;
    atomic_int saw_high;
    atomic_int blocked; /* returned 1 and not drained since */
    int closed, reason;
};

static void wm_fill(ax_conn *c, struct wm *w)
{
    unsigned char chunk[16384];
    while (w->written < w->target) {
        size_t n = sizeof chunk;
        if (n > w->target - w->written) n = (size_t)(w->target - w->written);
        tu_fill_pattern(chunk, n, w->written);
        int rc = ax_conn_write(c, chunk, n);
        ASSERT(rc >= 0);
        w->written += n;
        size_t q = ax_conn_queued(c);
        if ((rc == 1) != (q > w->high)) w->bad_return++;
        if (rc == 1) {
            w->returned_high++;
            atomic_store(&w->saw_high, 1);
            atomic_store(&w->blocked, 1);
            return;
        }
    }
    ax_conn_close(c);
}

static void wm_open(ax_conn *c)
{
    struct wm *w = ax_conn_data(c);
    /* Write until the queue passes the high watermark; the peer reads only
     * after that, so this must happen. */
    w->target = 64 * MiB;
    wm_fill(c, w);
    ASSERT(w->returned_high == 1);
    /* More than the kernel can take at once, so refills pass the high
     * watermark again. */
    w->target = w->written + 48 * MiB;
}

static void wm_drain(ax_conn *c)
{
    struct wm *w = ax_conn_data(c);
    atomic_store(&w->blocked, 0);
    w->drains++;
    if (ax_conn_queued(c) > w->low) w->drain_above_low++;
    wm_fill(c, w);
}

static void wm_close(ax_conn *c, int reason)
{
    struct wm *w = ax_conn_data(c);
    w->closed++;
    w->reason = reason;
}

struct wm_reader {
    ax_addr addr;
    struct wm *w;
    unsigned char buf[65536];
    uint64_t got, bad;
    atomic_int done;
};

static void *wm_reader_thread(void *arg)
{
    struct wm_reader *r = arg;
    int fd = tu_connect(&r->addr, 65536);
    while (!atomic_load(&r->w->saw_high))
        tu_sleep_ms(1);
    for (;;) {
        if (!tu_readable(fd, 10000)) break;
        ssize_t n = recv(fd, r->buf, sizeof r->buf, 0);
        if (n <= 0) break;
        if (tu_check_pattern(r->buf, (size_t)n, r->got) != (size_t)n) r->bad++;
        /* Stall now and then, so the writer is sure to pass the high
         * watermark again however fast this thread is scheduled. */
        if ((r->got >> 22) != ((r->got + (uint64_t)n) >> 22)) {
            tu_sleep_ms(50);
            /* the first time, until it has (a slow writer, Wine on a busy
             * machine, may not fill the socket's buffer in 50 ms); it waits
             * for a drain then, so this is a state, not an event */
            if (r->got < (4u << 20))
                for (int i = 0; i < 1000 && !atomic_load(&r->w->blocked); i++)
                    tu_sleep_ms(10);
        }
        r->got += (uint64_t)n;
    }
    close(fd);
    atomic_store(&r->done, 1);
    return NULL;
}

TEST_TIMEOUT(tcp_watermarks_and_drain, 90)
{
    ax_loop *loop = tu_loop();
    static struct wm w = {.high = 64 * 1024, .low = 16 * 1024};
    static const ax_conn_cbs cbs = {.on_open = wm_open, .on_drain = wm_drain, .on_close = wm_close};
    ax_conn_opts o = {.high_watermark = w.high, .low_watermark = w.low};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, &w, NULL);
    ASSERT(ls != NULL);
    static struct wm_reader r;
    r.addr = *ax_listener_addr(ls);
    r.w = &w;
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, wm_reader_thread, &r), 0);
    RUN_UNTIL(loop, atomic_load(&r.done) && w.closed == 1,
              60000); /* 112 MiB: 20 s was not enough under Wine at load 20 */
    pthread_join(th, NULL);
    ASSERT(w.returned_high >= 2); /* in on_open, and again while refilling */
    ASSERT(w.drains >= 1);
    ASSERT_EQ(w.drains, w.returned_high);
    ASSERT_EQ(w.drain_above_low, 0);
    ASSERT_EQ(w.bad_return, 0);
    ASSERT_EQ(w.reason, 0);
    ASSERT_EQ(r.got, w.written);
    ASSERT_EQ(r.bad, 0);
    ax_loop_free(loop);
}

/* ---- pause / resume ---------------------------------------------------- */

struct pz {
    ax_conn *conn;
    int calls;
    size_t got;
    char first[4];
    int closed, reason;
};

static void pz_open(ax_conn *c)
{
    struct pz *p = ax_conn_data(c);
    p->conn = c;
    ASSERT(!ax_conn_paused(c));
}

static size_t pz_data(ax_conn *c, const char *d, size_t n)
{
    struct pz *p = ax_conn_data(c);
    if (p->calls < 4) p->first[p->calls] = d[0];
    p->calls++;
    p->got += n;
    if (p->calls == 1) {
        ax_conn_pause(c);
        ASSERT(ax_conn_paused(c));
    }
    return n;
}

static void pz_close(ax_conn *c, int reason)
{
    struct pz *p = ax_conn_data(c);
    p->closed++;
    p->reason = reason;
    p->conn = NULL;
}

TEST(tcp_pause_resume)
{
    ax_loop *loop = tu_loop();
    struct pz p = {0};
    static const ax_conn_cbs cbs = {.on_open = pz_open, .on_data = pz_data, .on_close = pz_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &p, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    int sndbuf = 65536;
    ASSERT(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
    tu_write_all(fd, "a", 1);
    RUN_UNTIL(loop, p.calls == 1, 3000);
    tu_write_all(fd, "b", 1);
    tu_run_for(loop, 100);
    ASSERT_EQ(p.calls, 1); /* paused: nothing delivered */
    ASSERT(p.conn != NULL && ax_conn_paused(p.conn));
    /* The bytes wait in the kernel, so the sender is flow-controlled (and
     * the connection is not closed for exceeding max_input). */
    ASSERT(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    static char chunk[65536];
    size_t flooded = 0;
    bool blocked = false;
    for (int round = 0; round < 2000 && !blocked; round++) {
        ssize_t n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (n > 0) {
            flooded += (size_t)n;
            continue;
        }
        ASSERT(n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK));
        tu_run_for(loop, 20); /* give a wrong implementation the chance to read */
        n = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (n > 0)
            flooded += (size_t)n;
        else
            blocked = true;
    }
    ASSERT(blocked);
    ASSERT_EQ(p.calls, 1);
    ASSERT_EQ(p.closed, 0);
    ax_conn_resume(p.conn);
    ASSERT(!ax_conn_paused(p.conn));
    RUN_UNTIL(loop, p.got == 2 + flooded, 5000);
    ASSERT_EQ(p.first[1], 'b');
    ASSERT_EQ(p.closed, 0);
    /* Pause and resume are idempotent. */
    ax_conn_pause(p.conn);
    ax_conn_pause(p.conn);
    ax_conn_resume(p.conn);
    ax_conn_resume(p.conn);
    ASSERT(!ax_conn_paused(p.conn));
    size_t before = p.got;
    ASSERT(fcntl(fd, F_SETFL, 0) == 0);
    tu_write_all(fd, "c", 1);
    RUN_UNTIL(loop, p.got == before + 1, 3000);
    close(fd);
    RUN_UNTIL(loop, p.closed == 1, 3000);
    ASSERT_EQ(p.reason, AX_EOF);
    ax_loop_free(loop);
}

/* A paused connection still notices the peer closing?  Not promised; but
 * closing a paused connection must work and report once. */
TEST(tcp_close_while_paused)
{
    ax_loop *loop = tu_loop();
    struct pz p = {0};
    static const ax_conn_cbs cbs = {.on_open = pz_open, .on_data = pz_data, .on_close = pz_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &p, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "a", 1);
    RUN_UNTIL(loop, p.calls == 1, 3000);
    tu_write_all(fd, "more", 4);
    ax_conn_close(p.conn);
    /* The peer sees the end (EOF, or RST when unread input was dropped). */
    char buf[8];
    ssize_t n = tu_loop_read_to_eof(loop, fd, buf, sizeof buf, 3000);
    ASSERT(n == 0 || n == -ECONNRESET);
    close(fd);
    RUN_UNTIL(loop, p.closed == 1, 3000);
    ASSERT_EQ(p.reason, 0);
    ASSERT_EQ(p.calls, 1); /* nothing delivered after close */
    ax_loop_free(loop);
}

/* ---- idle timeout ------------------------------------------------------ */

struct idle {
    ax_conn *conn;
    uint64_t opened_at, closed_at;
    int closed, reason;
    uint32_t set_in_open; /* ax_conn_set_idle_timeout value, or UINT32_MAX */
};

static void idle_open(ax_conn *c)
{
    struct idle *i = ax_conn_data(c);
    i->conn = c;
    i->opened_at = tu_now_ms();
    if (i->set_in_open != UINT32_MAX) ax_conn_set_idle_timeout(c, i->set_in_open);
}

static size_t idle_data(ax_conn *c, const char *d, size_t n)
{
    return n;
}

static void idle_close(ax_conn *c, int reason)
{
    struct idle *i = ax_conn_data(c);
    i->closed++;
    i->reason = reason;
    i->closed_at = tu_now_ms();
}

static ax_listener *idle_listen(ax_loop *loop, struct idle *i, uint32_t opt_ms)
{
    static const ax_conn_cbs cbs = {
        .on_open = idle_open, .on_data = idle_data, .on_close = idle_close};
    ax_conn_opts o = {.idle_timeout_ms = opt_ms};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, i, NULL);
    ASSERT(ls != NULL);
    return ls;
}

TEST(tcp_idle_timeout)
{
    ax_loop *loop = tu_loop();
    struct idle i = {.set_in_open = UINT32_MAX};
    ax_listener *ls = idle_listen(loop, &i, 100);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, i.closed == 1, 3000);
    ASSERT_EQ(i.reason, AX_EIDLE);
    ASSERT(i.closed_at - i.opened_at >= 95);
    ASSERT(i.closed_at - i.opened_at < 1500);
    char b[4];
    ssize_t n = tu_loop_read_to_eof(loop, fd, b, sizeof b, 2000);
    ASSERT(n == 0 || n == -ECONNRESET); /* EOF or reset, no data */
    close(fd);
    ax_loop_free(loop);
}

/* One try: a byte every 40 ms for 800 ms against a 300 ms idle timeout,
 * then silence.  *gap gets the longest time between two writes; false when
 * the connection ended before the writes were done. */
static bool traffic_once(uint64_t *gap)
{
    ax_loop *loop = tu_loop();
    struct idle i = {.set_in_open = UINT32_MAX};
    ax_listener *ls = idle_listen(loop, &i, 300);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, i.conn != NULL, 3000);
    uint64_t last = 0;
    bool alive = true;
    *gap = 0;
    for (int k = 0; k < 20 && alive; k++) {
        uint64_t now = tu_now_ms();
        if (last && now - last > *gap) *gap = now - last;
        alive = send(fd, "k", 1, MSG_NOSIGNAL) == 1;
        last = now;
        tu_run_for(loop, 40);
        alive = alive && i.closed == 0; /* 800 ms alive thanks to traffic every 40 ms */
    }
    if (alive) {
        RUN_UNTIL(loop, i.closed == 1, 3000);
        ASSERT_EQ(i.reason, AX_EIDLE);
        ASSERT(i.closed_at - last >= 270);
    }
    close(fd);
    ax_loop_free(loop);
    return alive;
}

/* A try in which the machine parked this thread for 250 ms or more between
 * two writes (a loaded box running Wine or sanitizers) proves nothing and
 * is tried again; a connection ended although every gap stayed shorter
 * fails at once. */
TEST(tcp_idle_timeout_reset_by_traffic)
{
    uint64_t gap = 0;
    bool alive = false;
    for (int attempt = 0; attempt < 5 && !alive; attempt++) {
        alive = traffic_once(&gap);
        if (!alive && gap < 250) break;
        if (!alive)
            printf("# try %d: this thread stalled (a %llu ms gap); again\n", attempt + 1,
                   (unsigned long long)gap);
    }
    ASSERT(alive);
}

TEST(tcp_idle_timeout_set_at_run_time)
{
    ax_loop *loop = tu_loop();
    /* Disabled from on_open: survives well past the configured 50 ms. */
    struct idle i = {.set_in_open = 0};
    ax_listener *ls = idle_listen(loop, &i, 50);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, i.conn != NULL, 3000);
    tu_run_for(loop, 300);
    ASSERT_EQ(i.closed, 0);
    close(fd);
    RUN_UNTIL(loop, i.closed == 1, 3000);
    ASSERT_EQ(i.reason, AX_EOF);

    /* Enabled from on_open on a listener without one. */
    struct idle j = {.set_in_open = 80};
    ls = idle_listen(loop, &j, 0);
    fd = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, j.closed == 1, 3000);
    ASSERT_EQ(j.reason, AX_EIDLE);
    ASSERT(j.closed_at - j.opened_at >= 75);
    close(fd);
    ax_loop_free(loop);
}

/* ---- connect errors ---------------------------------------------------- */

TEST(tcp_connect_refused)
{
    ax_loop *loop = tu_loop();
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", tu_closed_port());
    struct aclient a = {0};
    int err = 0;
    ax_conn *c = ax_connect(loop, url, &ac_cbs, NULL, &a, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(a.closed, 0); /* never from inside ax_connect */
    RUN_UNTIL(loop, a.closed == 1, 3000);
    ASSERT_EQ(a.reason, AX_ECONNREFUSED);
    ASSERT_EQ(a.opened, 0);
    ASSERT_EQ(a.data_calls, 0);
    tu_run_for(loop, 20);
    ASSERT_EQ(a.closed, 1);
    ASSERT_EQ(ax_loop_alive(loop), 0);
    ax_loop_free(loop);
}

TEST(tcp_connect_timeout)
{
    /* A listener whose accept queue is full drops new SYNs, so a connect to
     * it hangs in SYN-SENT: the closest thing to a black hole on loopback. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    ASSERT(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0);
    ASSERT(listen(lfd, 0) == 0);
    ASSERT(getsockname(lfd, (struct sockaddr *)&sin, &sl) == 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
        tu_sleep_ms(20);
    }
    struct pollfd pp = {.fd = fill[3], .events = POLLOUT};
    if (poll(&pp, 1, 100) != 0) {
        SKIP("the kernel completed a connect to a full accept queue");
    }
    /* (t0 before the loop: its timers count from the loop's clock, read
     * when it was made, which a busy machine may have read well before) */
    uint64_t t0 = tu_now_ms();
    ax_loop *loop = tu_loop();
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ntohs(sin.sin_port));
    struct aclient a = {0};
    ax_conn_opts o = {.connect_timeout_ms = 200};
    ax_conn *c = ax_connect(loop, url, &ac_cbs, &o, &a, NULL);
    ASSERT(c != NULL);
    RUN_UNTIL(loop, a.closed == 1, 5000);
    uint64_t dt = tu_now_ms() - t0;
    ASSERT_EQ(a.reason, AX_ETIMEDOUT);
    ASSERT_EQ(a.opened, 0);
    ASSERT(dt >= 190);
    ASSERT(dt < 2000);
    ax_loop_free(loop);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

TEST(tcp_bad_urls)
{
    ax_loop *loop = tu_loop();
    int err = 0;
    /* names are resolved now (test_dns.c); a host that is no name is refused */
    ASSERT(ax_connect(loop, "tcp://bad!host:1", &ac_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_EHOST);
    err = 0;
    ASSERT(ax_connect(loop, "tcp://127.0.0.1", &ac_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_EPORT);
    err = 0;
    ASSERT(ax_connect(loop, "udp://127.0.0.1:9", &ac_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_ESCHEME);
    err = 0;
    ASSERT(ax_listen(loop, "udp://127.0.0.1:0", &ac_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_ESCHEME);
    err = 0;
    ASSERT(ax_listen(loop, "nonsense", &ac_cbs, NULL, NULL, &err) == NULL);
    ASSERT(err < 0);
    /* A failed call leaves nothing behind. */
    ASSERT_EQ(ax_loop_alive(loop), 0);
    ax_loop_free(loop);
}

TEST(tcp_listen_address_in_use)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    int err = 0;
    ASSERT(ax_listen(loop, s.url, &ac_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_EADDRINUSE);
    /* reuse_port on both sides shares the port. */
    ax_listen_opts lo = {.reuse_port = true};
    ax_listener *a = ax_listen_ex(loop, "tcp://127.0.0.1:0", &ac_cbs, NULL, &lo, NULL, &err);
    ASSERT(a != NULL);
    char url[AX_ADDR_STRLEN];
    tu_url(ax_listener_addr(a), url, sizeof url);
    ax_listener *b = ax_listen_ex(loop, url, &ac_cbs, NULL, &lo, NULL, &err);
    ASSERT(b != NULL);
    ASSERT(ax_addr_equal(ax_listener_addr(a), ax_listener_addr(b)));
    ax_loop_free(loop);
}

/* ---- close variants ---------------------------------------------------- */

struct closer {
    int mode; /* 0: abort on data, 1: write 2 MiB and close, 2: write 4 MiB, close (linger) */
    unsigned char *data;
    size_t size;
    int closed, reason;
    uint64_t close_called_at, closed_at;
};

static void closer_open(ax_conn *c)
{
    struct closer *k = ax_conn_data(c);
    if (k->mode == 0) return;
    ASSERT(ax_conn_write(c, k->data, k->size) >= 0);
    k->close_called_at = tu_now_ms();
    ax_conn_close(c);
    ax_conn_close(c); /* idempotent */
}

static size_t closer_data(ax_conn *c, const char *d, size_t n)
{
    struct closer *k = ax_conn_data(c);
    if (k->mode == 0) {
        ASSERT(ax_conn_write(c, "unsent", 6) >= 0);
        ax_conn_abort(c, AX_ECANCELED);
    }
    return n;
}

static void closer_close(ax_conn *c, int reason)
{
    struct closer *k = ax_conn_data(c);
    k->closed++;
    k->reason = reason;
    k->closed_at = tu_now_ms();
}

static const ax_conn_cbs closer_cbs = {
    .on_open = closer_open, .on_data = closer_data, .on_close = closer_close};

TEST(tcp_abort_resets_peer)
{
    ax_loop *loop = tu_loop();
    struct closer k = {.mode = 0};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &closer_cbs, NULL, &k, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "x", 1);
    RUN_UNTIL(loop, k.closed == 1, 3000);
    ASSERT_EQ(k.reason, AX_ECANCELED);
    char buf[16];
    ASSERT_EQ(tu_loop_read_to_eof(loop, fd, buf, sizeof buf, 2000), -ECONNRESET);
    close(fd);
    ax_loop_free(loop);
}

TEST(tcp_close_flushes_queue)
{
    ax_loop *loop = tu_loop();
    struct closer k = {.mode = 1, .size = 2 * MiB};
    k.data = malloc(k.size);
    tu_fill_pattern(k.data, k.size, 0);
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &closer_cbs, NULL, &k, NULL);
    ASSERT(ls != NULL);
    struct reader r = {
        .addr = *ax_listener_addr(ls), .rcvbuf = 65536, .delay_ms = 200, .cap = k.size + 16};
    r.buf = malloc(r.cap);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, reader_thread, &r), 0);
    RUN_UNTIL(loop, atomic_load(&r.done) && k.closed == 1, 15000);
    pthread_join(th, NULL);
    ASSERT_EQ(r.got, (ssize_t)k.size);
    ASSERT_EQ(tu_check_pattern(r.buf, k.size, 0), k.size);
    ASSERT_EQ(k.reason, 0);
    ax_loop_free(loop);
}

TEST(tcp_close_gives_up_after_linger)
{
    ax_loop *loop = tu_loop();
    struct closer k = {.mode = 2, .size = 6 * MiB};
    k.data = calloc(1, k.size);
    ax_conn_opts o = {.linger_ms = 200};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &closer_cbs, &o, &k, NULL);
    ASSERT(ls != NULL);
    ax_addr a = *ax_listener_addr(ls);
    int fd = tu_connect(&a, 4096); /* never reads */
    RUN_UNTIL(loop, k.closed == 1, 5000);
    ASSERT(k.closed_at - k.close_called_at >= 190);
    ASSERT(k.closed_at - k.close_called_at < 2000);
    close(fd);
    ax_loop_free(loop);
}

/* A peer that keeps sending a byte now and then does not hold a closing
 * connection past linger_ms (every backend; the ring once counted each
 * discarded byte as activity). */
TEST(tcp_linger_ends_while_peer_trickles)
{
    ax_loop *loop = tu_loop();
    struct closer k = {.mode = 1, .data = (unsigned char *)"bye\n", .size = 4};
    ax_conn_opts o = {.linger_ms = 300};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &closer_cbs, &o, &k, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    uint64_t start = tu_now_ms();
    while (!k.closed && tu_now_ms() - start < 3000) {
        (void)!send(fd, "z", 1, MSG_NOSIGNAL); /* fails once reset: fine */
        tu_run_for(loop, 50);
    }
    ASSERT_EQ(k.closed, 1);
    ASSERT(k.closed_at - k.close_called_at >= 290);
    if (k.closed_at - k.close_called_at >= 1500) {
        char d[64];
        snprintf(d, sizeof d, "closed after %llu ms",
                 (unsigned long long)(k.closed_at - k.close_called_at));
        ax_test_fail(__FILE__, __LINE__, "linger ends within linger_ms", d);
    }
    close(fd);
    ax_loop_free(loop);
}

static void writev_open(ax_conn *c)
{
    struct iovec iov[3] = {{"one,", 4}, {"", 0}, {"two,three", 9}};
    ASSERT_EQ(ax_conn_writev(c, iov, 3), 0);
    ax_conn_close(c);
}

TEST(tcp_writev)
{
    ax_loop *loop = tu_loop();
    static const ax_conn_cbs cbs = {.on_open = writev_open};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, NULL, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    char buf[32] = "";
    ASSERT_EQ(tu_loop_read_to_eof(loop, fd, buf, sizeof buf - 1, 3000), 13);
    ASSERT_STREQ(buf, "one,two,three");
    close(fd);
    ax_loop_free(loop);
}

/* ---- runs of small writes ---------------------------------------------- */

/* Writes of a few bytes to a peer that does not read join the queue's
 * last node while earlier bytes are still being sent (with the ring, while
 * a send holds that node); slices and writev calls come between them.
 * Every byte arrives once, in order (every backend). */
struct trickle {
    unsigned char *data;
    size_t size, off;
    unsigned piece;
    int closed, reason;
};

static void trickle_batch(ax_conn *c, struct trickle *t, int pieces)
{
    for (int i = 0; i < pieces && t->off < t->size; i++, t->piece++) {
        size_t len = 1 + (t->piece * 37u) % 300u;
        if (len > t->size - t->off) len = t->size - t->off;
        unsigned char *p = t->data + t->off;
        int rc;
        if (t->piece % 11 == 5) {
            ax_slice *s = ax_slice_copy(p, len);
            ASSERT(s != NULL);
            rc = ax_conn_write_slice(c, s, 0, len);
            ax_slice_unref(s);
        } else if (t->piece % 3 == 1 && len > 1) {
            struct iovec iov[2] = {{p, len / 2}, {p + len / 2, len - len / 2}};
            rc = ax_conn_writev(c, iov, 2);
        } else {
            rc = ax_conn_write(c, p, len);
        }
        ASSERT(rc >= 0);
        t->off += len;
    }
}

static size_t trickle_data(ax_conn *c, const char *data, size_t len)
{
    struct trickle *t = ax_conn_data(c);
    (void)data;
    trickle_batch(c, t, 60 * (int)len);
    if (t->off == t->size) ax_conn_close(c);
    return len;
}

static void trickle_close(ax_conn *c, int reason)
{
    struct trickle *t = ax_conn_data(c);
    t->closed++;
    t->reason = reason;
}

TEST_TIMEOUT(tcp_small_writes_keep_order, 30)
{
    ax_loop *loop = tu_loop();
    static const ax_conn_cbs cbs = {.on_data = trickle_data, .on_close = trickle_close};
    struct trickle t = {.size = 512 * 1024};
    t.data = malloc(t.size);
    tu_fill_pattern(t.data, t.size, 0);
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &t, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 4096);
    /* a byte asks for a batch; nothing is read until all are asked for */
    for (int i = 0; i < 400 && t.off < t.size; i++) {
        tu_write_all(fd, "x", 1);
        tu_run_for(loop, 2);
    }
    ASSERT_EQ(t.off, t.size);
    unsigned char *got = malloc(t.size + 16);
    ssize_t n = tu_loop_read_to_eof(loop, fd, got, t.size + 16, 20000);
    ASSERT_EQ(n, (ssize_t)t.size);
    ASSERT_EQ(tu_check_pattern(got, t.size, 0), t.size);
    close(fd);
    RUN_UNTIL(loop, t.closed == 1, 5000);
    ASSERT_EQ(t.reason, 0);
    free(got);
    free(t.data);
    ax_listener_close(ls);
    ax_loop_free(loop);
}

/* ---- zero-copy slices -------------------------------------------------- */

struct zc {
    ax_slice *big, *small;
    unsigned char *mem;
    size_t size;
    int released;
    int released_at_write;
    int closed, reason;
};

static void zc_release(void *data, void *ud)
{
    struct zc *z = ud;
    ASSERT(data == z->mem);
    z->released++;
}

static void zc_open(ax_conn *c)
{
    struct zc *z = ax_conn_data(c);
    ASSERT(ax_conn_write_slice(c, z->big, 0, z->size) >= 0);
    ax_slice_unref(z->big); /* the queue holds its own reference */
    z->released_at_write = z->released;
    ASSERT(ax_conn_write_slice(c, z->small, 3, 5) >= 0);
    ax_slice_unref(z->small);
    ax_conn_close(c);
}

static void zc_close(ax_conn *c, int reason)
{
    struct zc *z = ax_conn_data(c);
    z->closed++;
    z->reason = reason;
}

TEST(tcp_write_slice_zero_copy)
{
    tu_alloc_install();
    ax_loop *loop = tu_loop();
    struct zc z = {.size = 16 * MiB};
    z.mem = malloc(z.size);
    tu_fill_pattern(z.mem, z.size, 0);
    z.big = ax_slice_wrap(z.mem, z.size, zc_release, &z);
    z.small = ax_slice_copy("0123456789", 10);
    ASSERT(z.big && z.small);
    static const ax_conn_cbs cbs = {.on_open = zc_open, .on_close = zc_close};
    ax_conn_opts o = {.output_cap = 64 * MiB};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, &z, NULL);
    ASSERT(ls != NULL);
    struct reader r = {
        .addr = *ax_listener_addr(ls), .rcvbuf = 65536, .delay_ms = 150, .cap = z.size + 64};
    r.buf = malloc(r.cap);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, reader_thread, &r), 0);
    RUN_UNTIL(loop, atomic_load(&r.done) && z.closed == 1, 15000);
    pthread_join(th, NULL);
    /* 16 MiB cannot all be in a 64 KiB-receive-buffer connection at once: the
     * queue must have kept the slice alive after the caller let go. */
    ASSERT_EQ(z.released_at_write, 0);
    ASSERT_EQ(z.released, 1);
    ASSERT_EQ(r.got, (ssize_t)(z.size + 5));
    ASSERT_EQ(tu_check_pattern(r.buf, z.size, 0), z.size);
    ASSERT(memcmp(r.buf + z.size, "34567", 5) == 0);
    ASSERT_EQ(z.reason, 0);
    ax_loop_free(loop);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

/* ---- options ----------------------------------------------------------- */

struct nd {
    int server_nodelay, client_nodelay;
    int done;
};

static void nd_server_open(ax_conn *c)
{
    struct nd *n = ax_conn_data(c);
    n->server_nodelay = nodelay_of(ax_conn_fd(c));
    ax_conn_close(c);
}

static void nd_client_open(ax_conn *c)
{
    struct nd *n = ax_conn_data(c);
    n->client_nodelay = nodelay_of(ax_conn_fd(c));
}

static void nd_close(ax_conn *c, int reason)
{
    struct nd *n = ax_conn_data(c);
    n->done++;
}

TEST(tcp_delay_flag_keeps_nagle)
{
    ax_loop *loop = tu_loop();
    struct nd n = {-1, -1, 0};
    static const ax_conn_cbs scbs = {.on_open = nd_server_open, .on_close = nd_close};
    static const ax_conn_cbs ccbs = {.on_open = nd_client_open, .on_close = nd_close};
    ax_conn_opts o = {.flags = AX_CONN_DELAY};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &scbs, &o, &n, NULL);
    ASSERT(ls != NULL);
    char url[AX_ADDR_STRLEN];
    tu_url(ax_listener_addr(ls), url, sizeof url);
    ASSERT(ax_connect(loop, url, &ccbs, &o, &n, NULL) != NULL);
    RUN_UNTIL(loop, n.done == 2, 3000);
    ASSERT_EQ(n.server_nodelay, 0);
    ASSERT_EQ(n.client_nodelay, 0);
    ax_loop_free(loop);
}

TEST(tcp_user_data)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    int fd;
    int x;
    ax_conn *c = tu_echo_accept(&s, loop, &fd);
    ax_conn_set_data(c, &x);
    ASSERT(ax_conn_data(c) == &x);
    ax_conn_set_data(c, &s);
    close(fd);
    RUN_UNTIL(loop, s.closed == 1, 3000);
    ax_loop_free(loop);
}

TEST(tcp_listener_close_keeps_connections)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    int fd = tu_connect(&s.addr, 0);
    RUN_UNTIL(loop, s.opened == 1, 3000);
    ax_listener_close(s.ls);
    tu_write_all(fd, "still", 5);
    char buf[8] = "";
    ASSERT_EQ(tu_loop_read_n(loop, fd, buf, 5, 3000), 5);
    ASSERT(memcmp(buf, "still", 5) == 0);
    /* New connections are refused now. */
    int fd2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(connect(fd2, (struct sockaddr *)&s.addr.sa, s.addr.len) == -1);
    ASSERT_EQ(errno, ECONNREFUSED);
    close(fd2);
    close(fd);
    RUN_UNTIL(loop, s.closed == 1, 3000);
    ax_loop_free(loop);
}

/* ---- EMFILE at accept -------------------------------------------------- */

struct emfile_child {
    ax_addr addr;
    int go_fd, hold_fd;
    int parent_ends[2];
};

static void emfile_connector(void *arg)
{
    struct emfile_child *e = arg;
    char b;
    close(e->parent_ends[0]);
    close(e->parent_ends[1]);
    if (read(e->go_fd, &b, 1) != 1) _exit(2);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = tu_connect(&e->addr, 0);
    /* Hold the connections until the parent is done. */
    if (read(e->hold_fd, &b, 1) < 0) _exit(3);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
}

static long cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec * 1000L + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000L +
           ru.ru_stime.tv_usec / 1000;
}

TEST(tcp_emfile_does_not_spin)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    int go[2], hold[2];
    ASSERT(pipe(go) == 0 && pipe(hold) == 0);
    struct emfile_child e = {
        .addr = s.addr, .go_fd = go[0], .hold_fd = hold[0], .parent_ends = {go[1], hold[1]}};
    pid_t pid = tu_fork(emfile_connector, &e);
    close(go[0]);
    close(hold[0]);

    /* Use up every descriptor the process may have. */
    struct rlimit old, lim;
    ASSERT(getrlimit(RLIMIT_NOFILE, &old) == 0);
    int top = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) != -1) top = fd;
    lim = old;
    lim.rlim_cur = (rlim_t)top + 1;
    ASSERT(setrlimit(RLIMIT_NOFILE, &lim) == 0);
    int filler[1024], nfill = 0;
    for (;;) {
        int fd = dup(0);
        if (fd == -1) break;
        filler[nfill++] = fd;
    }
    ASSERT_EQ(errno, EMFILE);

    ASSERT_EQ(write(go[1], "g", 1), 1);
    tu_sleep_ms(100); /* the child's connects complete in the kernel */
    long cpu0 = cpu_ms();
    tu_run_for(loop, 300);
    long used = cpu_ms() - cpu0;
    uint64_t refused = ax_listener_emfile_count(s.ls);

    for (int i = 0; i < nfill; i++)
        close(filler[i]);
    ASSERT(setrlimit(RLIMIT_NOFILE, &old) == 0);

    ASSERT(refused >= 1);
    ASSERT_EQ(s.opened, 0);
    if (used >= 150) {
        char d[64];
        snprintf(d, sizeof d, "%ld ms of CPU in 300 ms", used);
        ax_test_fail(__FILE__, __LINE__, "loop idles while out of descriptors", d);
    }
    /* With descriptors back, accepting works again. */
    int fd = tu_connect(&s.addr, 0);
    RUN_UNTIL(loop, s.opened >= 1, 3000);
    close(fd);
    close(hold[1]);
    ASSERT_EQ(tu_wait(pid, 5000), 0);
    close(go[1]);
    ax_loop_free(loop);
}
