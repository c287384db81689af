/* The allocation hook, and out-of-memory at every allocation: constructors
 * return NULL with AX_ENOMEM, calls return AX_ENOMEM, nothing leaks, nothing
 * crashes, nothing hangs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "testutil.h"

TEST(alloc_hook_is_used)
{
    tu_alloc_install();
    ASSERT_EQ(tu_alloc_live_count(), 0);
    char *p = ax_malloc(100);
    ASSERT(p != NULL);
    ASSERT_EQ(tu_alloc_live_count(), 1);
    ASSERT_EQ(tu_alloc_live_bytes(), 100);
    unsigned char *z = ax_calloc(10, 10);
    ASSERT(z != NULL);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(z[i], 0);
    p = ax_realloc(p, 1000);
    ASSERT(p != NULL);
    ASSERT_EQ(tu_alloc_live_count(), 2);
    ax_free(p);
    ax_free(z);
    ax_free(NULL);
    ASSERT_EQ(tu_alloc_live_count(), 0);
    ASSERT_EQ(tu_alloc_live_bytes(), 0);
    /* calloc overflow is refused, not wrapped. */
    ASSERT(ax_calloc(SIZE_MAX / 2 + 2, 2) == NULL); /* the product wraps to 2 */

    /* A loop and its handles allocate through the hook. */
    long before = tu_alloc_total();
    ax_loop *loop = tu_loop();
    ASSERT(tu_alloc_total() > before);
    ax_loop_free(loop);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

TEST(alloc_restore_default)
{
    tu_alloc_install();
    ASSERT_EQ(ax_set_allocator(NULL), 0);
    long before = tu_alloc_total();
    void *p = ax_malloc(64);
    ASSERT(p != NULL);
    ax_free(p);
    ASSERT_EQ(tu_alloc_total(), before);
}

static void never_release(void *data, void *ud)
{
    *(int *)ud += 1;
}

TEST(alloc_slices_out_of_memory)
{
    tu_alloc_install();
    tu_alloc_fail_after(0);
    ASSERT(ax_slice_new(10) == NULL);
    ASSERT(ax_slice_copy("abc", 3) == NULL);
    static char mem[4];
    int released = 0;
    ASSERT(ax_slice_wrap(mem, sizeof mem, never_release, &released) == NULL);
    ASSERT_EQ(released, 0); /* the caller still owns the memory */
    ASSERT(tu_alloc_failures() >= 3);
    tu_alloc_fail_after(-1);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

/* ---- a whole scenario with the n-th allocation failing ----------------- */

struct scen {
    int cli_open, cli_close, cli_reason, cli_after_close;
    size_t cli_got;
    int srv_open, srv_close;
    int posted_ran;
    int udp_rx;
    int timer_fired;
};

static void s_srv_open(ax_conn *c)
{
    struct scen *s = ax_conn_data(c);
    s->srv_open++;
}

static size_t s_srv_data(ax_conn *c, const char *d, size_t n)
{
    if (ax_conn_write(c, d, n) < 0) ax_conn_close(c);
    return n;
}

static void s_srv_close(ax_conn *c, int reason)
{
    struct scen *s = ax_conn_data(c);
    s->srv_close++;
}

static void s_cli_open(ax_conn *c)
{
    struct scen *s = ax_conn_data(c);
    if (s->cli_close) s->cli_after_close++;
    s->cli_open++;
    int rc = ax_conn_write(c, "hello", 5);
    if (rc < 0) {
        ASSERT(rc == AX_ENOMEM || rc == AX_ECLOSED);
        ax_conn_close(c);
    }
}

static size_t s_cli_data(ax_conn *c, const char *d, size_t n)
{
    struct scen *s = ax_conn_data(c);
    if (s->cli_close) s->cli_after_close++;
    s->cli_got += n;
    if (s->cli_got >= 5) ax_conn_close(c);
    return n;
}

static void s_cli_close(ax_conn *c, int reason)
{
    struct scen *s = ax_conn_data(c);
    if (s->cli_close) s->cli_after_close++;
    s->cli_close++;
    s->cli_reason = reason;
}

static void s_posted(ax_loop *loop, void *arg)
{
    ((struct scen *)arg)->posted_ran++;
}

static void s_udp_rx(ax_udp *u, const char *d, size_t n, const ax_addr *from)
{
    ((struct scen *)ax_udp_data(u))->udp_rx++;
}

static void s_timer(ax_timer *t, void *ud)
{
    ((struct scen *)ud)->timer_fired++;
}

static const ax_conn_cbs srv_cbs = {
    .on_open = s_srv_open, .on_data = s_srv_data, .on_close = s_srv_close};
static const ax_conn_cbs cli_cbs = {
    .on_open = s_cli_open, .on_data = s_cli_data, .on_close = s_cli_close};

static void fail_at(long n, const char *what, int got)
{
    char d[160];
    snprintf(d, sizeof d, "allocation #%ld failing: %s gave %d (%s)", n, what, got,
             ax_strerror(got));
    ax_test_fail(__FILE__, __LINE__, what, d);
}

/* Returns true when the run saw no allocation failure at all.  `once`:
 * only allocation n fails, else n and every one after it. */
static bool scenario(long n, bool once)
{
    struct scen s = {0};
    long fails0 = tu_alloc_failures();
    int err = 0;
    if (once)
        tu_alloc_fail_once_after(n);
    else
        tu_alloc_fail_after(n);
    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) {
        if (err != AX_ENOMEM) fail_at(n, "ax_loop_new", err);
        tu_alloc_fail_after(-1);
        return false;
    }
    ax_timer *t = ax_timer_new(loop, s_timer, &s);
    if (t) {
        int rc = ax_timer_start(t, 5, 0);
        if (rc != 0 && rc != AX_ENOMEM) fail_at(n, "ax_timer_start", rc);
    }
    ax_slice *sl = ax_slice_copy("abc", 3);
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &srv_cbs, NULL, &s, &err);
    if (!ls && err != AX_ENOMEM) fail_at(n, "ax_listen", err);
    ax_conn *c = NULL;
    if (ls) {
        char url[AX_ADDR_STRLEN];
        ax_addr_format(ax_listener_addr(ls), url, sizeof url);
        c = ax_connect(loop, url, &cli_cbs, NULL, &s, &err);
        if (!c && err != AX_ENOMEM) fail_at(n, "ax_connect", err);
    }
    ax_udp *u = ax_udp_bind(loop, "udp://127.0.0.1:0", s_udp_rx, NULL, &s, &err);
    if (!u && err != AX_ENOMEM) fail_at(n, "ax_udp_bind", err);
    bool udp_sent = false;
    if (u) {
        int rc = ax_udp_send(u, ax_udp_addr(u), "u", 1);
        if (rc != 0 && rc != AX_ENOMEM) fail_at(n, "ax_udp_send", rc);
        udp_sent = rc == 0;
    }
    int prc = ax_loop_post(loop, s_posted, &s);
    if (prc != 0 && prc != AX_ENOMEM) fail_at(n, "ax_loop_post", prc);

    uint64_t end = tu_now_ms() + 3000;
    while ((c && !s.cli_close) || (prc == 0 && !s.posted_ran)) {
        if (tu_now_ms() > end) {
            char d[200];
            snprintf(d, sizeof d,
                     "allocation #%ld failing: hung with client %s open=%d close=%d, server "
                     "open=%d close=%d, post rc=%d ran=%d",
                     n, c ? "made" : "none", s.cli_open, s.cli_close, s.srv_open, s.srv_close, prc,
                     s.posted_ran);
            ax_test_fail(__FILE__, __LINE__, "the scenario finishes", d);
        }
        ax_loop_run_once(loop, 10);
    }
    tu_run_for(loop, udp_sent ? 10 : 0);
    ax_loop_free(loop);
    if (c && s.cli_close != 1) fail_at(n, "client on_close exactly once", s.cli_close);
    if (s.cli_after_close) fail_at(n, "no callback after on_close", s.cli_after_close);
    if (s.srv_open != s.srv_close) fail_at(n, "server opens == closes", s.srv_close);
    if (prc != 0 && s.posted_ran) fail_at(n, "a failed post never runs", s.posted_ran);
    if (prc == 0 && s.posted_ran != 1) fail_at(n, "a post runs once", s.posted_ran);
    ax_timer_free(t);
    ax_slice_unref(sl);
    tu_alloc_fail_after(-1);
    return tu_alloc_failures() == fails0;
}

static void sweep(bool once)
{
    tu_alloc_install();
    int fds0 = tu_count_fds();
    long n;
    for (n = 0; n < 2000; n++) {
        bool clean = scenario(n, once);
        if (tu_alloc_live_count() != 0) {
            char d[96];
            snprintf(d, sizeof d, "allocation #%ld failing: %ld blocks (%ld bytes) leaked", n,
                     tu_alloc_live_count(), tu_alloc_live_bytes());
            ax_test_fail(__FILE__, __LINE__, "nothing leaks", d);
        }
        int fds = tu_fds_settle(fds0);
        if (fds != fds0) {
            char d[96];
            snprintf(d, sizeof d, "allocation #%ld failing: %d descriptors, %d before", n, fds,
                     fds0);
            ax_test_fail(__FILE__, __LINE__, "no descriptor leaks", d);
        }
        if (clean) break;
    }
    ASSERT(n > 5);    /* the scenario allocates: failures were really injected */
    ASSERT(n < 2000); /* and it ends with a clean run */
    printf("# %ld allocation points exercised\n", n);
}

TEST_TIMEOUT(alloc_fail_from_each_allocation_on, 120)
{
    sweep(false);
}
TEST_TIMEOUT(alloc_fail_each_allocation_once, 120)
{
    sweep(true);
}

/* Threads under out-of-memory: start fails cleanly or works. */
static int oom_setup(ax_loop *loop, int index, void *ud)
{
    ax_timer *t = ax_timer_new(loop, s_timer, NULL);
    if (!t) return AX_ENOMEM;
    ax_timer_free(t);
    int err = 0;
    ax_listen_opts lo = {.reuse_port = true};
    ax_listener *l = ax_listen_ex(loop, "tcp://127.0.0.1:0", &srv_cbs, NULL, &lo, NULL, &err);
    return l ? 0 : err;
}

TEST_TIMEOUT(alloc_fail_thread_start, 60)
{
    tu_alloc_install();
    int threads0 = tu_count_threads(), fds0 = tu_count_fds();
    long n;
    for (n = 0; n < 500; n++) {
        long fails0 = tu_alloc_failures();
        int err = 0;
        tu_alloc_fail_after(n);
        ax_threads *t = ax_threads_start(2, oom_setup, NULL, &err);
        if (!t) {
            if (err != AX_ENOMEM) fail_at(n, "ax_threads_start", err);
        } else {
            ax_threads_stop(t);
        }
        tu_alloc_fail_after(-1);
        ASSERT_EQ(tu_alloc_live_count(), 0);
        ASSERT_EQ(tu_wait_threads(threads0, 1000), threads0);
        ASSERT_EQ(tu_fds_settle(fds0), fds0);
        if (t && tu_alloc_failures() == fails0) break;
    }
    ASSERT(n > 3 && n < 500);
}

/* A write that cannot be queued fails with AX_ENOMEM and leaves the
 * connection working: the peer receives exactly the accepted bytes. */
struct wq {
    ax_conn *conn;
    int closed;
};

static void wq_open(ax_conn *c)
{
    ((struct wq *)ax_conn_data(c))->conn = c;
}
static void wq_close(ax_conn *c, int r)
{
    ((struct wq *)ax_conn_data(c))->closed++;
}

TEST(alloc_write_enomem_keeps_connection)
{
    tu_alloc_install();
    ax_loop *loop = tu_loop();
    struct wq w = {0};
    static const ax_conn_cbs cbs = {.on_open = wq_open, .on_close = wq_close};
    ax_conn_opts o = {.output_cap = 64u << 20};
    ax_listener *ls = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, &o, &w, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 4096);
    RUN_UNTIL(loop, w.conn != NULL, 3000);
    /* Fill the kernel so later writes must be queued. */
    static unsigned char chunk[65536];
    uint64_t off = 0;
    while (ax_conn_queued(w.conn) == 0) {
        tu_fill_pattern(chunk, sizeof chunk, off);
        ASSERT(ax_conn_write(w.conn, chunk, sizeof chunk) >= 0);
        off += sizeof chunk;
        ASSERT(off < (256u << 20));
    }
    tu_alloc_fail_after(0);
    tu_fill_pattern(chunk, sizeof chunk, off);
    ASSERT_EQ(ax_conn_write(w.conn, chunk, sizeof chunk), AX_ENOMEM);
    ax_slice *s = NULL;
    tu_alloc_fail_after(-1);
    s = ax_slice_copy(chunk, sizeof chunk);
    ASSERT(s != NULL);
    tu_alloc_fail_after(0);
    ASSERT_EQ(ax_conn_write_slice(w.conn, s, 0, sizeof chunk), AX_ENOMEM);
    tu_alloc_fail_after(-1);
    ax_slice_unref(s);
    /* The failed writes left no trace: continue the pattern at `off`. */
    tu_fill_pattern(chunk, sizeof chunk, off);
    ASSERT(ax_conn_write(w.conn, chunk, sizeof chunk) >= 0);
    off += sizeof chunk;
    ax_conn_close(w.conn);
    unsigned char *buf = malloc(off + 16);
    ssize_t n = tu_loop_read_to_eof(loop, fd, buf, off + 16, 10000);
    ASSERT_EQ(n, (ssize_t)off);
    ASSERT_EQ(tu_check_pattern(buf, off, 0), off);
    close(fd);
    RUN_UNTIL(loop, w.closed == 1, 3000);
    ax_loop_free(loop);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}
