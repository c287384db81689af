/* Reliability: what issue 2 demands of the core.
 *   - 10,000 connect/close cycles without descriptor or memory growth
 *   - a peer that stops reading hits the output cap and is dropped while
 *     another connection keeps its rate
 *   - a peer reset in the middle of a large write
 *   - ax_conn_close from inside every callback; nothing after on_close
 *   - timers stopped, freed and restarted from their own callbacks */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define MiB (1024u * 1024u)

/* ---- 10,000 connect/close cycles ---------------------------------------- */

struct cycles {
    ax_loop *loop;
    char url[AX_ADDR_STRLEN];
    int started, finished, target, in_flight;
    int srv_open, srv_close;
    int bad_reason, after_close, open_errors;
};

static struct cycles CY;

struct cyc_conn {
    int kind; /* 0: client closes, 1: server closes, 2: closed before connected */
    int closed;
};

static struct cyc_conn *cyc_conns; /* one per cycle, outlives the connection */

static void start_cycles(void);

static void cy_srv_open(ax_conn *c)
{
    CY.srv_open++;
}

static size_t cy_srv_data(ax_conn *c, const char *d, size_t n)
{
    if (ax_conn_write(c, d, n) < 0) CY.open_errors++;
    if (d[n - 1] == 'S') ax_conn_close(c); /* the server closes first */
    return n;
}

static void cy_srv_close(ax_conn *c, int reason)
{
    CY.srv_close++;
    if (reason != 0 && reason != AX_EOF && reason != AX_ECONNRESET) CY.bad_reason++;
}

static void cy_cli_open(ax_conn *c)
{
    struct cyc_conn *k = ax_conn_data(c);
    if (k->closed) CY.after_close++;
    if (k->kind == 2) CY.after_close++; /* closed before connecting: no on_open */
    if (ax_conn_write(c, k->kind == 1 ? "S" : "C", 1) != 0) CY.open_errors++;
}

static size_t cy_cli_data(ax_conn *c, const char *d, size_t n)
{
    struct cyc_conn *k = ax_conn_data(c);
    if (k->closed) CY.after_close++;
    if (k->kind == 0) ax_conn_close(c);
    return n;
}

static void cy_cli_close(ax_conn *c, int reason)
{
    struct cyc_conn *k = ax_conn_data(c);
    if (k->closed++) CY.after_close++;
    int want = k->kind == 1 ? AX_EOF : 0;
    if (reason != want) CY.bad_reason++;
    CY.finished++;
    CY.in_flight--;
    start_cycles();
}

static const ax_conn_cbs cy_srv_cbs = {
    .on_open = cy_srv_open, .on_data = cy_srv_data, .on_close = cy_srv_close};
static const ax_conn_cbs cy_cli_cbs = {
    .on_open = cy_cli_open, .on_data = cy_cli_data, .on_close = cy_cli_close};

static void start_cycles(void)
{
    while (CY.in_flight < 32 && CY.started < CY.target) {
        struct cyc_conn *k = &cyc_conns[CY.started];
        k->kind = CY.started % 10 == 9 ? 2 : CY.started % 2;
        int err = 0;
        ax_conn *c = ax_connect(CY.loop, CY.url, &cy_cli_cbs, NULL, k, &err);
        ASSERT(c != NULL);
        CY.started++;
        CY.in_flight++;
        if (k->kind == 2) ax_conn_close(c);
    }
}

static void run_cycles(int n)
{
    CY.target += n;
    start_cycles();
    RUN_UNTIL(CY.loop, CY.finished == CY.target && CY.srv_open == CY.srv_close, 60000);
}

TEST_TIMEOUT(reliability_connect_close_10000, 120)
{
    tu_alloc_install();
    int fds_start = tu_count_fds();
    CY.loop = tu_loop();
    cyc_conns = calloc(10300, sizeof *cyc_conns);
    ax_listener *ls = ax_listen(CY.loop, "tcp://127.0.0.1:0", &cy_srv_cbs, NULL, NULL, NULL);
    ASSERT(ls != NULL);
    ax_addr_format(ax_listener_addr(ls), CY.url, sizeof CY.url);

    run_cycles(300); /* warm up: lazily made buffers, backend arrays */
    int fds0 = tu_count_fds();
    long live0 = tu_alloc_live_count(), bytes0 = tu_alloc_live_bytes();
    size_t heap0 = mallinfo2().uordblks;
    uint64_t t0 = tu_now_ms();

    run_cycles(10000);

    uint64_t dt = tu_now_ms() - t0;
    int fds1 = tu_fds_settle(fds0);
    long live1 = tu_alloc_live_count(), bytes1 = tu_alloc_live_bytes();
    size_t heap1 = mallinfo2().uordblks;
    printf("# 10000 cycles in %llu ms (%d accepted); fds %d -> %d; live blocks %ld -> %ld, bytes "
           "%ld -> %ld; "
           "heap %zu -> %zu\n",
           (unsigned long long)dt, CY.srv_open, fds0, fds1, live0, live1, bytes0, bytes1, heap0,
           heap1);
    ASSERT_EQ(CY.finished, 10300);
    ASSERT(CY.srv_open >= 9000); /* real connections, accepted by the server */
    ASSERT_EQ(CY.bad_reason, 0);
    ASSERT_EQ(CY.after_close, 0);
    ASSERT_EQ(CY.open_errors, 0);
    ASSERT_EQ(fds1, fds0);
    /* Tiny slack for containers that grew to a new peak; a leak of even one
     * block per hundred cycles would be 100 blocks. */
    ASSERT(live1 - live0 <= 4);
    ASSERT(bytes1 - bytes0 <= 64 * 1024);
    ASSERT(heap1 <= heap0 + 1 * MiB);
    ASSERT_EQ(ax_loop_alive(CY.loop), 1);
    ax_loop_free(CY.loop);
    ASSERT_EQ(tu_alloc_live_count(), 0);
    ASSERT_EQ(tu_fds_settle(fds_start), fds_start);
}

/* ---- the output cap ------------------------------------------------------ */

#define CAP (1 * MiB)
#define CHUNK (64 * 1024)

struct capconn {
    ax_conn *conn;
    uint64_t written;
    int cap_returns;
    int closed, reason;
    uint64_t closed_at;
};

struct capctx {
    struct capconn slow, fast;
    int opened;
    uint64_t fast_written_at_slow_close;
    uint64_t fast_read_at_slow_close;
    uint64_t t_start;
    bool producing;
    atomic_ullong fast_read;
    atomic_int reader_done;
    uint64_t reader_bad;
    ax_addr addr;
};

static struct capctx CC;

static void cap_open(ax_conn *c)
{
    struct capconn *k = CC.opened++ == 0 ? &CC.slow : &CC.fast;
    k->conn = c;
    ax_conn_set_data(c, k);
}

static void cap_close(ax_conn *c, int reason)
{
    struct capconn *k = ax_conn_data(c);
    k->closed++;
    k->reason = reason;
    k->closed_at = tu_now_ms();
    k->conn = NULL;
    if (k == &CC.slow) {
        CC.fast_written_at_slow_close = CC.fast.written;
        CC.fast_read_at_slow_close = atomic_load(&CC.fast_read);
    }
}

/* A producer that ignores the watermarks, as a buggy application would. */
static void produce(struct capconn *k)
{
    static unsigned char chunk[CHUNK];
    if (!k->conn) return;
    tu_fill_pattern(chunk, CHUNK, k->written);
    int rc = ax_conn_write(k->conn, chunk, CHUNK);
    if (rc == AX_EOUTPUTCAP) k->cap_returns++;
    if (rc >= 0) k->written += CHUNK;
}

static void producer_cb(ax_timer *t, void *ud)
{
    if (!CC.producing) return;
    produce(&CC.slow);
    produce(&CC.fast);
}

static void *fast_reader(void *arg)
{
    int fd = tu_connect(&CC.addr, 0);
    static unsigned char buf[65536];
    uint64_t got = 0;
    for (;;) {
        if (!tu_readable(fd, 15000)) break;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if (tu_check_pattern(buf, (size_t)n, got) != (size_t)n) CC.reader_bad++;
        got += (uint64_t)n;
        atomic_store(&CC.fast_read, got);
    }
    close(fd);
    atomic_store(&CC.reader_done, 1);
    return NULL;
}

TEST(reliability_output_cap_drops_slow_reader_only)
{
    ax_loop *loop = tu_loop();
    static const ax_conn_cbs cbs = {.on_open = cap_open, .on_close = cap_close};
    ax_conn_opts o = {.output_cap = CAP};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, NULL, NULL);
    ASSERT(ls != NULL);
    CC.addr = *ax_listener_addr(ls);
    /* The slow peer: a small receive buffer, and it never reads. */
    int slow_fd = tu_connect(&CC.addr, 65536);
    RUN_UNTIL(loop, CC.opened == 1, 3000);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, fast_reader, NULL), 0);
    RUN_UNTIL(loop, CC.opened == 2, 3000);

    ax_timer *prod = ax_timer_new(loop, producer_cb, NULL);
    ASSERT_EQ(ax_timer_start(prod, 2, 2), 0);
    CC.producing = true;
    CC.t_start = tu_now_ms();
    RUN_UNTIL(loop, CC.slow.closed == 1, 10000);
    uint64_t t_cap = tu_now_ms() - CC.t_start;
    tu_run_for(loop, 300); /* the fast one goes on */
    CC.producing = false;
    ax_timer_free(prod);
    ASSERT_EQ(CC.fast.closed, 0);
    ax_conn_close(CC.fast.conn);
    RUN_UNTIL(loop, atomic_load(&CC.reader_done) && CC.fast.closed == 1, 15000);
    pthread_join(th, NULL);

    printf("# slow dropped after %llu ms, %llu bytes written to it; fast: %llu written, %llu "
           "read at that moment\n",
           (unsigned long long)t_cap, (unsigned long long)CC.slow.written,
           (unsigned long long)CC.fast_written_at_slow_close,
           (unsigned long long)CC.fast_read_at_slow_close);
    ASSERT_EQ(CC.slow.reason, AX_EOUTPUTCAP);
    ASSERT_EQ(CC.slow.cap_returns, 1); /* the write that passed the cap said so */
    ASSERT(CC.slow.written >= CAP);
    /* The fast reader kept up while the slow one filled: it had read at
     * least half of what was produced for it when the slow one was cut. */
    ASSERT(CC.fast_written_at_slow_close > 0);
    ASSERT(CC.fast_read_at_slow_close * 2 >= CC.fast_written_at_slow_close);
    /* ... and it got every byte, intact, closed gracefully. */
    ASSERT_EQ(CC.fast.reason, 0);
    ASSERT_EQ(atomic_load(&CC.fast_read), CC.fast.written);
    ASSERT_EQ(CC.reader_bad, 0);
    ASSERT(CC.fast.written > CC.slow.written);
    /* The slow peer sees its connection end. */
    static char sink[1];
    ssize_t r = tu_read_to_eof(slow_fd, sink, 0, 5000);
    ASSERT(r >= 0 || r == -ECONNRESET);
    close(slow_fd);
    ax_loop_free(loop);
}

/* ---- peer reset in the middle of a write --------------------------------- */

struct rst {
    ax_conn *conn;
    int closed, reason;
    uint64_t bytes_out;
    size_t size;
    int after_close;
};

static void rst_open(ax_conn *c)
{
    struct rst *r = ax_conn_data(c);
    r->conn = c;
    if (!r->size) return;
    unsigned char *big = malloc(r->size);
    tu_fill_pattern(big, r->size, 0);
    ASSERT(ax_conn_write(c, big, r->size) >= 0);
    free(big);
}

static size_t rst_data(ax_conn *c, const char *d, size_t n)
{
    struct rst *r = ax_conn_data(c);
    if (r->closed) r->after_close++;
    return n;
}

static void rst_close(ax_conn *c, int reason)
{
    struct rst *r = ax_conn_data(c);
    if (r->closed) r->after_close++;
    r->closed++;
    r->reason = reason;
    r->bytes_out = ax_conn_bytes_out(c);
    r->conn = NULL;
}

static void reset_mid_write(void)
{
    ax_loop *loop = tu_loop();
    struct rst r = {.size = 16 * MiB};
    static const ax_conn_cbs cbs = {
        .on_open = rst_open, .on_data = rst_data, .on_close = rst_close};
    ax_conn_opts o = {.output_cap = 64 * MiB};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, &r, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 65536);
    RUN_UNTIL(loop, r.conn != NULL, 3000);
    ASSERT(ax_conn_queued(r.conn) > 0);
    static unsigned char buf[65536];
    ASSERT_EQ(tu_loop_read_n(loop, fd, buf, sizeof buf, 3000), (ssize_t)sizeof buf);
    ASSERT_EQ(tu_check_pattern(buf, sizeof buf, 0), sizeof buf);
    tu_close_reset(fd);
    RUN_UNTIL(loop, r.closed == 1, 5000);
    ASSERT(r.reason == AX_ECONNRESET || r.reason == AX_EPIPE);
    ASSERT(r.bytes_out < r.size);
    tu_run_for(loop, 30);
    ASSERT_EQ(r.after_close, 0);
    ASSERT_EQ(r.closed, 1);
    ax_loop_free(loop);
}

TEST(reliability_peer_reset_mid_write)
{
    reset_mid_write();
}

TEST(reliability_peer_reset_mid_write_sigpipe_default)
{
    /* Applications do not always ignore SIGPIPE: the library must not
     * depend on it. */
    signal(SIGPIPE, SIG_DFL);
    reset_mid_write();
}

TEST(reliability_peer_reset_idle)
{
    ax_loop *loop = tu_loop();
    struct rst r = {0};
    static const ax_conn_cbs cbs = {
        .on_open = rst_open, .on_data = rst_data, .on_close = rst_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, &r, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, r.conn != NULL, 3000);
    tu_close_reset(fd);
    RUN_UNTIL(loop, r.closed == 1, 3000);
    ASSERT_EQ(r.reason, AX_ECONNRESET);
    ax_loop_free(loop);
}

/* ---- closing from inside every callback ---------------------------------- */

enum {
    AT_OPEN,
    AT_DATA,
    AT_DRAIN,
    AT_END,
    AT_ABORT_IN_DATA,
    AT_CLOSE_TWICE,
};

struct track {
    int at;
    char ev[64]; /* callbacks in order: o d w e c */
    int nev;
    int closes, after_close, reason;
    int late_write, late_shutdown;
    uint64_t written;
    ax_conn *conn;
};

static void ev(struct track *t, char e)
{
    if (t->closes) t->after_close++;
    if (t->nev < 63) t->ev[t->nev++] = e;
}

static void tr_fill(ax_conn *c, struct track *t)
{
    static unsigned char chunk[16384];
    for (int i = 0; i < 100000; i++) {
        tu_fill_pattern(chunk, sizeof chunk, t->written);
        int rc = ax_conn_write(c, chunk, sizeof chunk);
        ASSERT(rc >= 0);
        t->written += sizeof chunk;
        if (rc == 1) return;
    }
    ASSERT(0 && "never passed the high watermark");
}

static void tr_open(ax_conn *c)
{
    struct track *t = ax_conn_data(c);
    ev(t, 'o');
    t->conn = c;
    if (t->at == AT_OPEN) {
        ax_conn_close(c);
        /* Closing is not an error to repeat, and writes now fail. */
        ax_conn_close(c);
        t->late_write = ax_conn_write(c, "x", 1);
    } else if (t->at == AT_DRAIN) {
        tr_fill(c, t);
    }
}

static size_t tr_data(ax_conn *c, const char *d, size_t n)
{
    struct track *t = ax_conn_data(c);
    ev(t, 'd');
    if (t->at == AT_DATA) {
        ASSERT_EQ(ax_conn_write(c, "reply", 5), 0);
        ax_conn_close(c);
        return 0; /* not consumed: must not be offered again */
    }
    if (t->at == AT_ABORT_IN_DATA) {
        ax_conn_abort(c, AX_ECANCELED);
        ax_conn_close(c);
    }
    return n;
}

static void tr_drain(ax_conn *c)
{
    struct track *t = ax_conn_data(c);
    ev(t, 'w');
    if (t->at == AT_DRAIN) {
        ASSERT_EQ(ax_conn_write(c, "END", 3), 0);
        t->written += 3;
        ax_conn_close(c);
    }
}

static void tr_end(ax_conn *c)
{
    struct track *t = ax_conn_data(c);
    ev(t, 'e');
    if (t->at == AT_END) ax_conn_close(c);
}

static void tr_close(ax_conn *c, int reason)
{
    struct track *t = ax_conn_data(c);
    ev(t, 'c');
    t->closes++;
    t->reason = reason;
    t->conn = NULL;
    /* Everything is harmless on a closing connection, inside on_close too. */
    ax_conn_close(c);
    ax_conn_abort(c, AX_ECANCELED);
    t->late_write = ax_conn_write(c, "late", 4);
    t->late_shutdown = ax_conn_shutdown(c);
    ax_conn_pause(c);
    ax_conn_resume(c);
    ax_conn_set_idle_timeout(c, 10);
}

static const ax_conn_cbs tr_cbs = {.on_open = tr_open,
                                   .on_data = tr_data,
                                   .on_drain = tr_drain,
                                   .on_end = tr_end,
                                   .on_close = tr_close};

/* Without on_end: the peer's FIN closes the connection by itself. */
static const ax_conn_cbs tr_cbs_noend = {
    .on_open = tr_open, .on_data = tr_data, .on_drain = tr_drain, .on_close = tr_close};

static ax_listener *tr_listen(ax_loop *loop, struct track *t)
{
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &tr_cbs, NULL, t, NULL);
    ASSERT(ls != NULL);
    return ls;
}

static void tr_settle(ax_loop *loop, struct track *t)
{
    tu_run_for(loop, 50);
    ASSERT_EQ(t->closes, 1);
    ASSERT_EQ(t->after_close, 0);
    ASSERT_EQ(t->late_write, AX_ECLOSED);
    ASSERT_EQ(t->late_shutdown, AX_ECLOSED);
}

TEST(reliability_close_in_on_open)
{
    ax_loop *loop = tu_loop();
    struct track t = {.at = AT_OPEN};
    ax_listener *ls = tr_listen(loop, &t);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "data before accept", 18); /* waiting when on_open closes */
    tu_sleep_ms(20);
    RUN_UNTIL(loop, t.nev >= 1, 3000);
    /* The peer sees the end of the stream (a lingering close may wait for
     * the peer's FIN before on_close, so the peer closes too). */
    char b[4];
    ssize_t n = tu_loop_read_to_eof(loop, fd, b, sizeof b, 3000);
    ASSERT(n == 0 || n == -ECONNRESET);
    close(fd);
    RUN_UNTIL(loop, t.closes == 1, 3000);
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "oc");
    ASSERT_EQ(t.reason, 0);
    ax_loop_free(loop);
}

TEST(reliability_close_in_on_open_client)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    struct track t = {.at = AT_OPEN};
    ASSERT(ax_connect(loop, s.url, &tr_cbs, NULL, &t, NULL) != NULL);
    RUN_UNTIL(loop, t.closes == 1, 3000);
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "oc");
    ASSERT_EQ(t.reason, 0);
    RUN_UNTIL(loop, s.closed == 1, 3000);
    ax_loop_free(loop);
}

TEST(reliability_close_before_connected)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    struct track a = {.at = -1}, b = {.at = -1};
    ax_conn *ca = ax_connect(loop, s.url, &tr_cbs, NULL, &a, NULL);
    ax_conn *cb = ax_connect(loop, s.url, &tr_cbs, NULL, &b, NULL);
    ASSERT(ca && cb);
    ax_conn_close(ca);
    ax_conn_abort(cb, AX_ECANCELED);
    ASSERT_EQ(a.nev + b.nev, 0); /* not from inside the calls */
    RUN_UNTIL(loop, a.closes == 1 && b.closes == 1, 3000);
    tu_run_for(loop, 100);
    ASSERT_STREQ(a.ev, "c");
    ASSERT_STREQ(b.ev, "c");
    ASSERT_EQ(a.reason, 0);
    ASSERT_EQ(b.reason, AX_ECANCELED);
    ASSERT_EQ(a.after_close + b.after_close, 0);
    ax_loop_free(loop);
}

TEST(reliability_close_in_on_data)
{
    ax_loop *loop = tu_loop();
    struct track t = {.at = AT_DATA};
    ax_listener *ls = tr_listen(loop, &t);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "first", 5);
    RUN_UNTIL(loop, t.nev >= 2, 3000);
    tu_write_all(fd, "second", 6); /* after the close: never delivered */
    char b[16] = "";
    ssize_t n = tu_loop_read_to_eof(loop, fd, b, sizeof b - 1, 3000);
    ASSERT(n == 5 || n == -ECONNRESET);
    if (n == 5) ASSERT_STREQ(b, "reply");
    close(fd);
    RUN_UNTIL(loop, t.closes == 1, 3000);
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "odc");
    ASSERT_EQ(t.reason, 0);
    ax_loop_free(loop);
}

TEST(reliability_abort_in_on_data)
{
    ax_loop *loop = tu_loop();
    struct track t = {.at = AT_ABORT_IN_DATA};
    ax_listener *ls = tr_listen(loop, &t);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "x", 1);
    RUN_UNTIL(loop, t.closes == 1, 3000);
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "odc");
    ASSERT_EQ(t.reason, AX_ECANCELED); /* the first close decides */
    char b[4];
    ASSERT_EQ(tu_loop_read_to_eof(loop, fd, b, sizeof b, 2000), -ECONNRESET);
    close(fd);
    ax_loop_free(loop);
}

struct drain_reader {
    ax_addr addr;
    unsigned char *buf;
    size_t cap;
    ssize_t got;
    atomic_int done;
};

static void *drain_reader_main(void *arg)
{
    struct drain_reader *r = arg;
    int fd = tu_connect(&r->addr, 65536);
    tu_sleep_ms(100);
    r->got = tu_read_to_eof(fd, r->buf, r->cap, 15000);
    close(fd);
    atomic_store(&r->done, 1);
    return NULL;
}

TEST(reliability_close_in_on_drain)
{
    ax_loop *loop = tu_loop();
    struct track t = {.at = AT_DRAIN};
    ax_listener *ls = tr_listen(loop, &t);
    static struct drain_reader r;
    r.addr = *ax_listener_addr(ls);
    r.cap = 128 * MiB;
    r.buf = malloc(r.cap);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, drain_reader_main, &r), 0);
    RUN_UNTIL(loop, atomic_load(&r.done) && t.closes == 1, 20000);
    pthread_join(th, NULL);
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "owc");
    ASSERT_EQ(t.reason, 0);
    /* Closed gracefully: everything queued, END included, arrived. */
    ASSERT_EQ(r.got, (ssize_t)t.written);
    ASSERT_EQ(tu_check_pattern(r.buf, t.written - 3, 0), t.written - 3);
    ASSERT(memcmp(r.buf + t.written - 3, "END", 3) == 0);
    ax_loop_free(loop);
}

TEST(reliability_close_in_on_end)
{
    ax_loop *loop = tu_loop();
    struct track t = {.at = AT_END};
    ax_listener *ls = tr_listen(loop, &t);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "bye", 3);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    char b[4];
    ASSERT_EQ(tu_loop_read_to_eof(loop, fd, b, sizeof b, 3000), 0);
    RUN_UNTIL(loop, t.closes == 1, 3000); /* both sides finished: no waiting */
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "odec");
    ASSERT_EQ(t.reason, 0);
    close(fd);
    ax_loop_free(loop);
}

TEST(reliability_peer_close_then_calls_in_on_close)
{
    ax_loop *loop = tu_loop();
    struct track t = {.at = AT_CLOSE_TWICE};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &tr_cbs_noend, NULL, &t, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, t.conn != NULL, 3000);
    close(fd);
    RUN_UNTIL(loop, t.closes == 1, 3000);
    tr_settle(loop, &t);
    ASSERT_STREQ(t.ev, "oc");
    ASSERT_EQ(t.reason, AX_EOF);
    ax_loop_free(loop);
}

/* Two connections with input in the same iteration: the first one to get
 * on_data aborts the other, which must get no on_data after its close. */
struct pairconn {
    struct pairconn *other;
    ax_conn *conn;
    int data, closes, after_close, reason;
};

static struct pairconn PC[2];
static int pc_opened;

static void pc_open(ax_conn *c)
{
    struct pairconn *p = &PC[pc_opened++];
    p->conn = c;
    p->other = &PC[p == &PC[0] ? 1 : 0];
    ax_conn_set_data(c, p);
}

static size_t pc_data(ax_conn *c, const char *d, size_t n)
{
    struct pairconn *p = ax_conn_data(c);
    if (p->closes) p->after_close++;
    p->data++;
    if (p->other->conn) ax_conn_abort(p->other->conn, AX_ECANCELED);
    return n;
}

static void pc_close(ax_conn *c, int reason)
{
    struct pairconn *p = ax_conn_data(c);
    if (p->closes) p->after_close++;
    p->closes++;
    p->reason = reason;
    p->conn = NULL;
}

TEST(reliability_close_other_connection_same_iteration)
{
    ax_loop *loop = tu_loop();
    static const ax_conn_cbs cbs = {.on_open = pc_open, .on_data = pc_data, .on_close = pc_close};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, NULL, NULL);
    ASSERT(ls != NULL);
    int a = tu_connect(ax_listener_addr(ls), 0);
    int b = tu_connect(ax_listener_addr(ls), 0);
    RUN_UNTIL(loop, pc_opened == 2, 3000);
    tu_write_all(a, "a", 1);
    tu_write_all(b, "b", 1);
    tu_sleep_ms(30); /* both readable before the loop looks */
    RUN_UNTIL(loop, PC[0].closes + PC[1].closes >= 1, 3000);
    tu_run_for(loop, 50);
    ASSERT_EQ(PC[0].data + PC[1].data, 1);
    struct pairconn *victim = PC[0].data ? &PC[1] : &PC[0];
    ASSERT_EQ(victim->closes, 1);
    ASSERT_EQ(victim->reason, AX_ECANCELED);
    ASSERT_EQ(PC[0].after_close + PC[1].after_close, 0);
    close(a);
    close(b);
    RUN_UNTIL(loop, PC[0].closes + PC[1].closes == 2, 3000);
    ax_loop_free(loop);
}

/* ---- timers changing themselves from their own callbacks ----------------- */

#define NCHAOS 1000

struct chaos {
    ax_loop *loop;
    ax_timer *t[NCHAOS];
    bool armed[NCHAOS];
    bool repeating[NCHAOS];
    uint64_t due[NCHAOS];
    uint32_t rng;
    long fires, early, unarmed, stopped_fire;
    long actions[6];
};

static struct chaos CH;

static uint32_t rnd(void)
{
    CH.rng = CH.rng * 1664525u + 1013904223u;
    return CH.rng >> 8;
}

static void chaos_start(int i, uint64_t timeout, uint64_t repeat)
{
    ASSERT_EQ(ax_timer_start(CH.t[i], timeout, repeat), 0);
    CH.armed[i] = true;
    CH.repeating[i] = repeat != 0;
    CH.due[i] = ax_loop_now(CH.loop) + timeout;
}

static void chaos_cb(ax_timer *t, void *ud)
{
    int i = (int)(intptr_t)ud;
    CH.fires++;
    if (!CH.armed[i]) CH.unarmed++;
    if (CH.t[i] != t) CH.stopped_fire++; /* freed timer fired */
    if (ax_loop_now(CH.loop) < CH.due[i]) CH.early++;
    if (CH.repeating[i]) {
        CH.due[i] = ax_loop_now(CH.loop) + 1; /* at least one ms later */
    } else {
        CH.armed[i] = false;
    }
    int action = (int)(rnd() % 8);
    CH.actions[action < 6 ? action : 5]++;
    switch (action) {
    case 0: /* stop itself */
        ax_timer_stop(t);
        CH.armed[i] = false;
        break;
    case 1: /* free itself, and come back as a new timer */
        ax_timer_free(t);
        CH.t[i] = ax_timer_new(CH.loop, chaos_cb, ud);
        ASSERT(CH.t[i] != NULL);
        CH.armed[i] = false;
        if (rnd() % 2) chaos_start(i, rnd() % 20, 0);
        break;
    case 2: /* restart itself, one-shot */
        chaos_start(i, rnd() % 20, 0);
        break;
    case 3: /* restart itself, repeating */
        chaos_start(i, rnd() % 10, 1 + rnd() % 10);
        break;
    case 4: { /* stop or free another one */
        int j = (int)(rnd() % NCHAOS);
        if (j == i) break;
        if (rnd() % 2) {
            ax_timer_stop(CH.t[j]);
        } else {
            ax_timer_free(CH.t[j]);
            CH.t[j] = ax_timer_new(CH.loop, chaos_cb, (void *)(intptr_t)j);
            ASSERT(CH.t[j] != NULL);
        }
        CH.armed[j] = false;
        break;
    }
    default: { /* start (or move) others */
        for (int k = 0; k < 2; k++) {
            int j = (int)(rnd() % NCHAOS);
            if (j != i) chaos_start(j, rnd() % 20, 0);
        }
        break;
    }
    }
}

TEST(reliability_timers_change_themselves)
{
    tu_alloc_install();
    CH.loop = tu_loop();
    CH.rng = 42;
    for (int i = 0; i < NCHAOS; i++) {
        CH.t[i] = ax_timer_new(CH.loop, chaos_cb, (void *)(intptr_t)i);
        ASSERT(CH.t[i] != NULL);
        chaos_start(i, rnd() % 50, i % 3 == 0 ? 1 + rnd() % 10 : 0);
    }
    tu_run_for(CH.loop, 700);
    long armed = 0;
    for (int i = 0; i < NCHAOS; i++)
        armed += CH.armed[i];
    printf("# %ld timer callbacks; %ld still armed\n", CH.fires, armed);
    ASSERT(CH.fires > 5000);
    ASSERT(armed > 0);
    ASSERT_EQ(CH.unarmed, 0);
    ASSERT_EQ(CH.stopped_fire, 0);
    ASSERT_EQ(CH.early, 0);
    for (int i = 0; i < 6; i++)
        ASSERT(CH.actions[i] > 0);
    ASSERT_EQ(ax_loop_alive(CH.loop), (unsigned)armed);
    for (int i = 0; i < NCHAOS; i++)
        ASSERT_EQ(ax_timer_active(CH.t[i]) != 0, CH.armed[i]);
    for (int i = 0; i < NCHAOS; i++)
        ax_timer_free(CH.t[i]);
    ASSERT_EQ(ax_loop_alive(CH.loop), 0);
    ASSERT_EQ(ax_loop_run(CH.loop), 0);
    ax_loop_free(CH.loop);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}
