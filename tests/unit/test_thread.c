/* Threads: N loops sharing a port with SO_REUSEPORT, posting between loops. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#define NTHREADS 4

struct shared {
    char url[AX_ADDR_STRLEN];
    pthread_t tid[NTHREADS];
    ax_loop *loops[NTHREADS];
    atomic_int setups;
    atomic_int served[NTHREADS];
    atomic_int wrong_thread;
    int fail_index; /* setup of this index fails, -1: none */
};

static struct shared SH;

static int thread_index_of(ax_loop *loop)
{
    for (int i = 0; i < NTHREADS; i++)
        if (SH.loops[i] == loop) return i;
    return -1;
}

/* Each accepted connection answers with the index of the thread it is on. */
static size_t idx_data(ax_conn *c, const char *d, size_t n)
{
    int i = (int)(intptr_t)ax_conn_data(c);
    if (!pthread_equal(pthread_self(), SH.tid[i]) || thread_index_of(ax_conn_loop(c)) != i)
        atomic_fetch_add(&SH.wrong_thread, 1);
    char b = (char)('0' + i);
    atomic_fetch_add(&SH.served[i], 1); /* before the reply: the client checks it */
    ASSERT(ax_conn_write(c, &b, 1) >= 0);
    return n;
}

static int setup_listener(ax_loop *loop, int index, void *ud)
{
    static const ax_conn_cbs cbs = {.on_data = idx_data};
    SH.tid[index] = pthread_self();
    SH.loops[index] = loop;
    atomic_fetch_add(&SH.setups, 1);
    if (index == SH.fail_index) return AX_EINVAL;
    ax_listen_opts lo = {.reuse_port = true};
    int err = 0;
    ax_listener *l = ax_listen_ex(loop, SH.url, &cbs, NULL, &lo, (void *)(intptr_t)index, &err);
    return l ? 0 : err;
}

/* A port nobody else will take: held with SO_REUSEPORT while the threads
 * bind it too (same user), released afterwards. */
static int reserve_port(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    ASSERT(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    ASSERT(bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0);
    ASSERT(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

TEST(threads_share_a_port)
{
    int threads0 = tu_count_threads(), fds0 = tu_count_fds();
    int port;
    int hold = reserve_port(&port);
    snprintf(SH.url, sizeof SH.url, "tcp://127.0.0.1:%d", port);
    SH.fail_index = -1;
    int err = 0;
    ax_threads *t = ax_threads_start(NTHREADS, setup_listener, NULL, &err);
    ASSERT(t != NULL);
    close(hold);
    ASSERT_EQ(atomic_load(&SH.setups), NTHREADS);
    ASSERT_EQ(ax_threads_count(t), NTHREADS);
    ASSERT_EQ(tu_count_threads(), threads0 + NTHREADS);
    for (int i = 0; i < NTHREADS; i++) {
        ASSERT(ax_threads_loop(t, i) == SH.loops[i]);
        for (int j = 0; j < i; j++)
            ASSERT(SH.loops[i] != SH.loops[j]);
    }
    ax_addr a;
    ASSERT_EQ(ax_addr_parse(SH.url, &a, NULL, 0), 0);
    int seen[NTHREADS] = {0};
    for (int k = 0; k < 200; k++) {
        int fd = tu_connect(&a, 0);
        tu_write_all(fd, "?", 1);
        char b = 0;
        ASSERT_EQ(tu_read_n(fd, &b, 1, 3000), 1);
        ASSERT(b >= '0' && b < '0' + NTHREADS);
        seen[b - '0']++;
        close(fd);
    }
    int used = 0, total = 0;
    for (int i = 0; i < NTHREADS; i++) {
        used += seen[i] > 0;
        total += atomic_load(&SH.served[i]);
        ASSERT_EQ(seen[i], atomic_load(&SH.served[i]));
    }
    ASSERT_EQ(total, 200);
    ASSERT(used >= 2); /* the kernel spread the connections */
    ASSERT_EQ(atomic_load(&SH.wrong_thread), 0);
    ax_threads_stop(t);
    ASSERT_EQ(tu_wait_threads(threads0, 1000), threads0);
    ASSERT_EQ(tu_fds_settle(fds0), fds0);
    /* The port is free again. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(connect(fd, (struct sockaddr *)&a.sa, a.len) == -1 && errno == ECONNREFUSED);
    close(fd);
}

TEST(threads_setup_failure_stops_all)
{
    tu_alloc_install();
    int threads0 = tu_count_threads(), fds0 = tu_count_fds();
    int port;
    int hold = reserve_port(&port);
    snprintf(SH.url, sizeof SH.url, "tcp://127.0.0.1:%d", port);
    SH.fail_index = 2;
    int err = 0;
    ax_threads *t = ax_threads_start(NTHREADS, setup_listener, NULL, &err);
    ASSERT(t == NULL);
    ASSERT_EQ(err, AX_EINVAL);
    ASSERT_EQ(atomic_load(&SH.setups), NTHREADS);
    close(hold);
    ASSERT_EQ(tu_wait_threads(threads0, 1000), threads0);
    ASSERT_EQ(tu_fds_settle(fds0), fds0);
    ASSERT_EQ(tu_alloc_live_count(), 0);
    ASSERT(ax_threads_start(0, setup_listener, NULL, &err) == NULL);
    ASSERT(err < 0);
}

/* ---- posting between loops --------------------------------------------- */

#define POSTS_PER_LOOP 20000
#define HOPS 5000

struct hop {
    ax_threads *t;
    int remaining;
};

static atomic_int counts[NTHREADS];
static atomic_int hops_done;
static atomic_int post_failures;

static void count_fn(ax_loop *loop, void *arg)
{
    int i = (int)(intptr_t)arg;
    if (!pthread_equal(pthread_self(), SH.tid[i]) || SH.loops[i] != loop)
        atomic_fetch_add(&SH.wrong_thread, 1);
    atomic_fetch_add(&counts[i], 1);
}

/* A token passed around the ring of loops, each hop posted by a loop
 * thread to the next loop. */
static void hop_fn(ax_loop *loop, void *arg)
{
    struct hop *h = arg;
    int i = thread_index_of(loop);
    if (i < 0 || !pthread_equal(pthread_self(), SH.tid[i])) atomic_fetch_add(&SH.wrong_thread, 1);
    atomic_fetch_add(&hops_done, 1);
    if (--h->remaining == 0) return;
    ax_loop *next = ax_threads_loop(h->t, (i + 1) % NTHREADS);
    if (ax_loop_post(next, hop_fn, h) != 0) atomic_fetch_add(&post_failures, 1);
}

static int setup_plain(ax_loop *loop, int index, void *ud)
{
    SH.tid[index] = pthread_self();
    SH.loops[index] = loop;
    return 0;
}

static void *post_from_outside(void *arg)
{
    ax_threads *t = arg;
    for (int k = 0; k < POSTS_PER_LOOP; k++)
        for (int i = 0; i < NTHREADS; i++)
            if (ax_loop_post(ax_threads_loop(t, i), count_fn, (void *)(intptr_t)i) != 0)
                atomic_fetch_add(&post_failures, 1);
    return NULL;
}

TEST_TIMEOUT(threads_post_counting, 120)
{
    int threads0 = tu_count_threads();
    int err = 0;
    ax_threads *t = ax_threads_start(NTHREADS, setup_plain, NULL, &err);
    ASSERT(t != NULL);
    /* Idle loops (no handles at all) must still wake for posted work. */
    static struct hop h;
    h.t = t;
    h.remaining = HOPS;
    ASSERT_EQ(ax_loop_post(ax_threads_loop(t, 0), hop_fn, &h), 0);
    pthread_t a, b;
    ASSERT_EQ(pthread_create(&a, NULL, post_from_outside, t), 0);
    ASSERT_EQ(pthread_create(&b, NULL, post_from_outside, t), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    /* 5,000 hops are 5,000 cross-thread wake-ups one after another: under
     * Wine on a loaded CI box (ASan beside it) 20 s was not enough */
    uint64_t end = tu_now_ms() + 90000;
    for (;;) {
        int done = atomic_load(&hops_done) == HOPS;
        for (int i = 0; i < NTHREADS; i++)
            done &= atomic_load(&counts[i]) == 2 * POSTS_PER_LOOP;
        if (done) break;
        if (tu_now_ms() >= end) {
            printf("# hops %d of %d; posts counted %d %d %d %d of %d each\n",
                   atomic_load(&hops_done), HOPS, atomic_load(&counts[0]), atomic_load(&counts[1]),
                   atomic_load(&counts[2]), atomic_load(&counts[3]), 2 * POSTS_PER_LOOP);
            ASSERT(tu_now_ms() < end);
        }
        tu_sleep_ms(5);
    }
    ASSERT_EQ(atomic_load(&post_failures), 0);
    ASSERT_EQ(atomic_load(&SH.wrong_thread), 0);
    ax_threads_stop(t);
    ASSERT_EQ(tu_wait_threads(threads0, 1000), threads0);
    ASSERT_EQ(atomic_load(&hops_done), HOPS);
}

/* Work posted while the threads stop is either run or dropped, never run
 * on a freed loop; stop returns promptly. */
static void slow_fn(ax_loop *loop, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

TEST(threads_stop_with_pending_posts)
{
    tu_alloc_install();
    int err = 0;
    ax_threads *t = ax_threads_start(2, setup_plain, NULL, &err);
    ASSERT(t != NULL);
    static atomic_int ran;
    for (int k = 0; k < 10000; k++)
        ASSERT_EQ(ax_loop_post(ax_threads_loop(t, k % 2), slow_fn, &ran), 0);
    uint64_t t0 = tu_now_ms();
    ax_threads_stop(t);
    ASSERT(tu_now_ms() - t0 < 5000);
    ASSERT(atomic_load(&ran) <= 10000);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

/* Tokens going round the ring without end, each hop posted by one loop's
 * thread to the next loop, while ax_threads_stop() runs: no thread posts
 * to a loop already freed (every thread is joined first), and each token,
 * queued somewhere, is dropped exactly once. */
#define RING_TOKENS 32

static atomic_int ring_hops, ring_drops[RING_TOKENS], ring_failures;

static void ring_drop(void *arg)
{
    atomic_fetch_add(&ring_drops[(int)(intptr_t)arg], 1);
}

static void ring_hop(ax_loop *loop, void *arg)
{
    int i = thread_index_of(loop);
    atomic_fetch_add(&ring_hops, 1);
    ax_loop *next = SH.loops[(i + 1) % NTHREADS];
    if (i < 0 || ax_loop_post_or(next, ring_hop, ring_drop, arg) != 0)
        atomic_fetch_add(&ring_failures, 1);
}

TEST(threads_stop_while_they_post_to_each_other)
{
    tu_alloc_install();
    int err = 0;
    ax_threads *t = ax_threads_start(NTHREADS, setup_plain, NULL, &err);
    ASSERT(t != NULL);
    for (int k = 0; k < RING_TOKENS; k++)
        ASSERT_EQ(ax_loop_post_or(ax_threads_loop(t, k % NTHREADS), ring_hop, ring_drop,
                                  (void *)(intptr_t)k),
                  0);
    uint64_t t0 = tu_now_ms();
    while (atomic_load(&ring_hops) < 20 * RING_TOKENS && tu_now_ms() - t0 < 30000)
        tu_sleep_ms(1);
    ASSERT(atomic_load(&ring_hops) >= 20 * RING_TOKENS); /* going round */
    ax_threads_stop(t);
    ASSERT_EQ(atomic_load(&ring_failures), 0);
    for (int k = 0; k < RING_TOKENS; k++)
        ASSERT_EQ(atomic_load(&ring_drops[k]), 1);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}
