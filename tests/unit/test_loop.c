/* The loop: backends, run/stop, run_once, time, posting from other threads,
 * signals, freeing with open handles. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "testutil.h"

TEST(loop_backends)
{
    int err = 0;
    ax_loop *l = ax_loop_new("poll", &err);
    ASSERT(l != NULL);
    ASSERT_STREQ(ax_loop_backend(l), "poll");
    ax_loop_free(l);
    l = ax_loop_new("epoll", &err);
    ASSERT(l != NULL);
    ASSERT_STREQ(ax_loop_backend(l), "epoll");
    ax_loop_free(l);
    err = 0;
    l = ax_loop_new("no-such-backend", &err);
    ASSERT(l == NULL);
    ASSERT(err < 0);
    /* NULL picks AXON_BACKEND when set. */
    l = tu_loop();
    ax_loop_free(l);
}

TEST(loop_env_selects_backend)
{
    setenv("AXON_BACKEND", "poll", 1);
    ax_loop *l = ax_loop_new(NULL, NULL);
    ASSERT(l != NULL);
    ASSERT_STREQ(ax_loop_backend(l), "poll");
    ax_loop_free(l);
    setenv("AXON_BACKEND", "epoll", 1);
    l = ax_loop_new(NULL, NULL);
    ASSERT(l != NULL);
    ASSERT_STREQ(ax_loop_backend(l), "epoll");
    ax_loop_free(l);
}

TEST(loop_empty_returns_at_once)
{
    ax_loop *l = tu_loop();
    ASSERT_EQ(ax_loop_alive(l), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(l), 0);
    ASSERT_EQ(ax_loop_run_once(l, 0), 0);
    ASSERT(tu_now_ms() - t0 < 500);
    ax_loop_free(l);
}

static void noop_timer(ax_timer *t, void *ud);

TEST_TIMEOUT(loop_run_returns_after_last_handle_closed_outside, 5)
{
    ax_loop *l = tu_loop();
    ax_timer *t = ax_timer_new(l, noop_timer, NULL);
    ASSERT_EQ(ax_timer_start(t, 10000, 0), 0);
    int err = 0;
    ax_listener *ls = ax_listen(l, "tcp://127.0.0.1:0", &(ax_conn_cbs){0}, NULL, NULL, &err);
    ASSERT(ls != NULL);
    ax_timer_free(t);
    ax_listener_close(ls);
    ASSERT_EQ(ax_loop_alive(l), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(l), 0);
    ASSERT(tu_now_ms() - t0 < 1000);
    ax_loop_free(l);
}

TEST(loop_data_and_time)
{
    ax_loop *l = tu_loop();
    int x;
    ASSERT(ax_loop_data(l) == NULL);
    ax_loop_set_data(l, &x);
    ASSERT(ax_loop_data(l) == &x);
    uint64_t a = ax_loop_now(l);
    tu_sleep_ms(30);
    /* Cached until refreshed. */
    uint64_t b = ax_loop_now(l);
    ASSERT(b - a < 30);
    ax_loop_update_time(l);
    uint64_t c = ax_loop_now(l);
    ASSERT(c - a >= 29);
    ASSERT(c - a < 2000);
    ax_loop_free(l);
}

static void noop_timer(ax_timer *t, void *ud) {}

TEST(loop_run_once_waits_at_most_timeout)
{
    ax_loop *l = tu_loop();
    ax_timer *t = ax_timer_new(l, noop_timer, NULL);
    ASSERT(t != NULL);
    ASSERT_EQ(ax_timer_start(t, 5000, 0), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run_once(l, 50), 1);
    uint64_t dt = tu_now_ms() - t0;
    ASSERT(dt >= 45);
    ASSERT(dt < 1000);
    t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run_once(l, 0), 1);
    ASSERT(tu_now_ms() - t0 < 100);
    ax_timer_free(t);
    ASSERT_EQ(ax_loop_run_once(l, 0), 0);
    ax_loop_free(l);
}

struct stopper {
    ax_loop *loop;
    int fired;
    int stop_at;
};

static void stop_timer_cb(ax_timer *t, void *ud)
{
    struct stopper *s = ud;
    s->fired++;
    if (s->fired % s->stop_at == 0) ax_loop_stop(s->loop);
}

TEST(loop_stop_returns_and_run_resumes)
{
    struct stopper s = {.stop_at = 3};
    s.loop = tu_loop();
    ax_timer *t = ax_timer_new(s.loop, stop_timer_cb, &s);
    ASSERT(t != NULL);
    ASSERT_EQ(ax_timer_start(t, 5, 5), 0);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 3);
    ASSERT(ax_timer_active(t));
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 6);
    ax_timer_free(t);
    ax_loop_free(s.loop);
}

/* ---- deferring to the end of the iteration ------------------------------- */

static int defer_log[8], defer_n;

static void log_deferred(ax_loop *loop, void *arg)
{
    (void)loop;
    defer_log[defer_n++] = (int)(intptr_t)arg;
}

static void defer_timer(ax_timer *t, void *ud)
{
    int id = (int)(intptr_t)ud;
    defer_log[defer_n++] = id;
    if (id == 1) ASSERT_EQ(ax_loop_defer(ax_timer_loop(t), log_deferred, (void *)(intptr_t)3), 0);
}

/* A call deferred by the first of two timers due in the same iteration
 * runs after both, once. */
TEST(loop_defer_runs_after_the_iterations_events)
{
    ax_loop *l = tu_loop();
    defer_n = 0;
    ax_timer *a = ax_timer_new(l, defer_timer, (void *)(intptr_t)1);
    ax_timer *b = ax_timer_new(l, defer_timer, (void *)(intptr_t)2);
    ASSERT(a && b);
    ASSERT_EQ(ax_timer_start(a, 1, 0), 0);
    ASSERT_EQ(ax_timer_start(b, 1, 0), 0);
    usleep(20 * 1000);
    ax_loop_run_once(l, 100);
    ASSERT_EQ(defer_n, 3);
    ASSERT_EQ(defer_log[0], 1);
    ASSERT_EQ(defer_log[1], 2);
    ASSERT_EQ(defer_log[2], 3);
    ax_loop_run_once(l, 0);
    ASSERT_EQ(defer_n, 3);
    ax_timer_free(a);
    ax_timer_free(b);
    ax_loop_free(l);
}

/* ---- posting ----------------------------------------------------------- */

#define POSTERS 4
#define POSTS 20000

struct postctx {
    ax_loop *loop;
    pthread_t loop_thread;
    atomic_int started;
    int count;
    int wrong_thread;
    int order_errors;
    int last[POSTERS];
    unsigned char *seen;
};

struct post_item {
    struct postctx *ctx;
    int producer, seq;
};

static void count_post(ax_loop *loop, void *arg)
{
    struct post_item *it = arg;
    struct postctx *c = it->ctx;
    if (!pthread_equal(pthread_self(), c->loop_thread)) c->wrong_thread++;
    if (loop != c->loop) c->wrong_thread++;
    int idx = it->producer * POSTS + it->seq;
    c->seen[idx]++;
    if (it->seq <= c->last[it->producer]) c->order_errors++;
    c->last[it->producer] = it->seq;
    if (++c->count == POSTERS * POSTS) ax_loop_stop(loop);
}

struct poster_arg {
    struct postctx *ctx;
    struct post_item *items;
    int id;
    int failures;
};

static void *poster(void *arg)
{
    struct poster_arg *p = arg;
    atomic_fetch_add(&p->ctx->started, 1);
    while (atomic_load(&p->ctx->started) < POSTERS) {
    }
    for (int i = 0; i < POSTS; i++) {
        p->items[i] = (struct post_item){p->ctx, p->id, i};
        if (ax_loop_post(p->ctx->loop, count_post, &p->items[i]) != 0) p->failures++;
    }
    return NULL;
}

TEST(loop_post_from_many_threads)
{
    static struct postctx c;
    c.loop = tu_loop();
    c.loop_thread = pthread_self();
    c.seen = calloc(POSTERS * POSTS, 1);
    for (int i = 0; i < POSTERS; i++)
        c.last[i] = -1;
    /* A long timer keeps the loop alive between posts. */
    ax_timer *keep = ax_timer_new(c.loop, noop_timer, NULL);
    ASSERT_EQ(ax_timer_start(keep, 60000, 0), 0);
    static struct poster_arg pa[POSTERS];
    pthread_t th[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        pa[i] = (struct poster_arg){&c, calloc(POSTS, sizeof(struct post_item)), i, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, poster, &pa[i]), 0);
    }
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(c.loop), 0);
    ASSERT(tu_now_ms() - t0 < 20000);
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(pa[i].failures, 0);
    }
    ASSERT_EQ(c.count, POSTERS * POSTS);
    ASSERT_EQ(c.wrong_thread, 0);
    for (int i = 0; i < POSTERS * POSTS; i++)
        ASSERT_EQ(c.seen[i], 1);
    /* One producer's posts run in the order it made them (a FIFO queue). */
    ASSERT_EQ(c.order_errors, 0);
    ax_timer_free(keep);
    ax_loop_free(c.loop);
}

struct wake {
    ax_loop *loop;
    int ran;
    uint64_t ran_at;
};

static void wake_fn(ax_loop *loop, void *arg)
{
    struct wake *w = arg;
    w->ran++;
    w->ran_at = tu_now_ms();
    ax_loop_stop(loop);
}

static void *post_later(void *arg)
{
    struct wake *w = arg;
    tu_sleep_ms(50);
    if (ax_loop_post(w->loop, wake_fn, w) != 0) abort();
    return NULL;
}

TEST(loop_post_wakes_a_sleeping_loop)
{
    struct wake w = {0};
    w.loop = tu_loop();
    ax_timer *keep = ax_timer_new(w.loop, noop_timer, NULL);
    ASSERT_EQ(ax_timer_start(keep, 10000, 0), 0);
    pthread_t th;
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(pthread_create(&th, NULL, post_later, &w), 0);
    ASSERT_EQ(ax_loop_run(w.loop), 0);
    pthread_join(th, NULL);
    ASSERT_EQ(w.ran, 1);
    ASSERT(w.ran_at - t0 >= 45);
    ASSERT(w.ran_at - t0 < 2000); /* woken, not waiting for the 10 s timer */
    ax_timer_free(keep);
    ax_loop_free(w.loop);
}

struct nest {
    int depth, max_depth, a_ran, b_ran;
};

static void post_b(ax_loop *loop, void *arg)
{
    struct nest *n = arg;
    n->depth++;
    if (n->depth > n->max_depth) n->max_depth = n->depth;
    n->b_ran++;
    n->depth--;
}

static void post_a(ax_loop *loop, void *arg)
{
    struct nest *n = arg;
    n->depth++;
    n->a_ran++;
    ASSERT_EQ(ax_loop_post(loop, post_b, n), 0);
    ASSERT_EQ(n->b_ran, 0); /* not run from inside ax_loop_post */
    n->depth--;
}

TEST(loop_post_from_loop_thread_runs_later)
{
    ax_loop *l = tu_loop();
    struct nest n = {0};
    ASSERT_EQ(ax_loop_post(l, post_a, &n), 0);
    ASSERT_EQ(n.a_ran, 0);
    RUN_UNTIL(l, n.b_ran == 1, 2000);
    ASSERT_EQ(n.a_ran, 1);
    ASSERT_EQ(n.max_depth, 1);
    ax_loop_free(l);
}

static void must_not_run(ax_loop *loop, void *arg)
{
    *(int *)arg += 1;
}

TEST(loop_post_dropped_when_loop_freed)
{
    tu_alloc_install();
    ax_loop *l = tu_loop();
    int ran = 0;
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(ax_loop_post(l, must_not_run, &ran), 0);
    ax_loop_free(l);
    ASSERT_EQ(ran, 0);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

/* ---- posts that cannot run are ended (ax_loop_post_or) ------------------ */

/* What a post owns: one allocation, and the counts of how it ended. */
struct owned {
    ax_loop *loop;
    atomic_int *ran, *dropped;
    int repost_rc; /* a drop posting again to the loop being freed */
};

static void owned_run(ax_loop *loop, void *arg)
{
    struct owned *o = arg;
    atomic_fetch_add(o->ran, 1);
    ax_free(o);
}

static void owned_drop(void *arg)
{
    struct owned *o = arg;
    atomic_fetch_add(o->dropped, 1);
    ax_free(o);
}

static struct owned *owned_new(ax_loop *l, atomic_int *ran, atomic_int *dropped)
{
    struct owned *o = ax_malloc(sizeof(*o));
    if (o) *o = (struct owned){l, ran, dropped, 0};
    return o;
}

/* n posts that own their arg; how many were queued */
static int post_owned(ax_loop *l, int n, atomic_int *ran, atomic_int *dropped)
{
    int queued = 0;
    for (int i = 0; i < n; i++)
        queued += ax_loop_post_or(l, owned_run, owned_drop, owned_new(l, ran, dropped)) == 0;
    return queued;
}

static void run_until_ran(ax_loop *l, atomic_int *ran, int want)
{
    for (int i = 0; i < 500 && atomic_load(ran) < want; i++)
        ax_loop_run_once(l, 10);
}

TEST(loop_post_or_drops_what_a_freed_loop_never_ran)
{
    tu_alloc_install();
    ax_loop *l = tu_loop();
    atomic_int ran = 0, dropped = 0;
    ASSERT_EQ(post_owned(l, 100, &ran, &dropped), 100);
    ASSERT_EQ(atomic_load(&dropped), 0); /* not before the free */
    ax_loop_free(l);
    ASSERT_EQ(atomic_load(&ran), 0);
    ASSERT_EQ(atomic_load(&dropped), 100); /* each once */
    ASSERT_EQ(tu_alloc_live_count(), 0);   /* nothing the posts owned is left */
}

TEST(loop_post_or_that_runs_never_drops)
{
    tu_alloc_install();
    ax_loop *l = tu_loop();
    atomic_int ran = 0, dropped = 0;
    ASSERT_EQ(post_owned(l, 10, &ran, &dropped), 10);
    run_until_ran(l, &ran, 10);
    ASSERT_EQ(atomic_load(&ran), 10);
    ax_loop_free(l);
    ASSERT_EQ(atomic_load(&ran), 10);
    ASSERT_EQ(atomic_load(&dropped), 0);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

static void repost_drop(void *arg)
{
    struct owned *o = arg;
    atomic_fetch_add(o->dropped, 1);
    o->repost_rc = ax_loop_post_or(o->loop, owned_run, owned_drop, o);
}

TEST(loop_post_after_free_took_the_queue_fails)
{
    tu_alloc_install();
    ax_loop *l = tu_loop();
    atomic_int ran = 0, dropped = 0;
    struct owned *o = owned_new(l, &ran, &dropped);
    ASSERT_EQ(ax_loop_post_or(l, owned_run, repost_drop, o), 0);
    ax_loop_free(l);
    /* the drop's own post came after the queue was taken: refused, the
     * arg still the caller's, neither fn nor drop called for it */
    ASSERT_EQ(o->repost_rc, AX_ESHUTDOWN);
    ASSERT_EQ(atomic_load(&dropped), 1);
    ASSERT_EQ(atomic_load(&ran), 0);
    ax_free(o);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

TEST(loop_drop_posts_ends_the_queue_and_keeps_the_loop)
{
    tu_alloc_install();
    ax_loop *l = tu_loop();
    atomic_int ran = 0, dropped = 0;
    ASSERT_EQ(post_owned(l, 5, &ran, &dropped), 5);
    ax_loop_drop_posts(l);
    ASSERT_EQ(atomic_load(&dropped), 5);
    ASSERT_EQ(post_owned(l, 1, &ran, &dropped), 1);
    run_until_ran(l, &ran, 1);
    ASSERT_EQ(atomic_load(&ran), 1);
    ax_loop_free(l);
    ASSERT_EQ(atomic_load(&dropped), 5);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}

/* Threads post while the loop runs; the loop stops running part way and
 * is freed once they are joined: each post ran or was dropped, once. */
#define RD_THREADS 4
#define RD_POSTS 5000

struct rd {
    ax_loop *loop;
    pthread_t loop_thread;
    atomic_int ran, dropped, failed, wrong_thread;
    atomic_int ends[RD_THREADS * RD_POSTS];
};

static struct rd rd;

static void rd_run(ax_loop *loop, void *arg)
{
    atomic_int *end = arg;
    if (!pthread_equal(pthread_self(), rd.loop_thread)) atomic_fetch_add(&rd.wrong_thread, 1);
    atomic_fetch_add(end, 1);
    atomic_fetch_add(&rd.ran, 1);
}

static void rd_drop(void *arg)
{
    atomic_int *end = arg;
    atomic_fetch_add(end, 1);
    atomic_fetch_add(&rd.dropped, 1);
}

static void *rd_poster(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < RD_POSTS; i++)
        if (ax_loop_post_or(rd.loop, rd_run, rd_drop, &rd.ends[id * RD_POSTS + i]) != 0)
            atomic_fetch_add(&rd.failed, 1);
    return NULL;
}

TEST(loop_post_or_from_many_threads_runs_or_drops_each_once)
{
    rd.loop = tu_loop();
    rd.loop_thread = pthread_self();
    pthread_t th[RD_THREADS];
    for (int i = 0; i < RD_THREADS; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, rd_poster, (void *)(intptr_t)i), 0);
    /* run until about a quarter ran, then leave the rest queued */
    uint64_t t0 = tu_now_ms();
    while (atomic_load(&rd.ran) < RD_THREADS * RD_POSTS / 4 && tu_now_ms() - t0 < 30000)
        ax_loop_run_once(rd.loop, 10);
    for (int i = 0; i < RD_THREADS; i++)
        pthread_join(th[i], NULL);
    static atomic_int last; /* one surely left queued */
    ASSERT_EQ(ax_loop_post_or(rd.loop, rd_run, rd_drop, &last), 0);
    ax_loop_free(rd.loop);
    ASSERT_EQ(atomic_load(&rd.failed), 0);
    ASSERT_EQ(atomic_load(&rd.wrong_thread), 0);
    ASSERT(atomic_load(&rd.ran) >= RD_THREADS * RD_POSTS / 4);
    ASSERT(atomic_load(&rd.dropped) >= 1);
    ASSERT_EQ(atomic_load(&rd.ran) + atomic_load(&rd.dropped), RD_THREADS * RD_POSTS + 1);
    for (int i = 0; i < RD_THREADS * RD_POSTS; i++)
        ASSERT_EQ(atomic_load(&rd.ends[i]), 1);
    ASSERT_EQ(atomic_load(&last), 1);
}

/* ---- signals ----------------------------------------------------------- */

struct sigctx {
    ax_loop *loop;
    pthread_t thread;
    int signo;
    int calls;
    int wrong_thread;
    int raise_signo;
};

static void on_signal(ax_loop *loop, int signo)
{
    struct sigctx *s = ax_loop_data(loop);
    s->calls++;
    s->signo = signo;
    if (!pthread_equal(pthread_self(), s->thread)) s->wrong_thread++;
    ax_loop_stop(loop);
}

static void raise_timer(ax_timer *t, void *ud)
{
    struct sigctx *s = ud;
    raise(s->raise_signo);
}

static void run_signal_case(int signo, bool with_cb)
{
    struct sigctx s = {.raise_signo = signo};
    s.loop = tu_loop();
    s.thread = pthread_self();
    ax_loop_set_data(s.loop, &s);
    ASSERT_EQ(ax_loop_handle_signals(s.loop, with_cb ? on_signal : NULL), 0);
    ax_timer *r = ax_timer_new(s.loop, raise_timer, &s);
    ax_timer *keep = ax_timer_new(s.loop, noop_timer, NULL);
    ASSERT(r && keep);
    ASSERT_EQ(ax_timer_start(r, 20, 0), 0);
    ASSERT_EQ(ax_timer_start(keep, 10000, 0), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT(tu_now_ms() - t0 < 3000); /* stopped by the signal, not the timer */
    if (with_cb) {
        ASSERT_EQ(s.calls, 1);
        ASSERT_EQ(s.signo, signo);
        ASSERT_EQ(s.wrong_thread, 0);
    }
    ASSERT(ax_timer_active(keep));
    ax_timer_free(r);
    ax_timer_free(keep);
    ax_loop_free(s.loop);
}

TEST(loop_signal_sigterm_callback)
{
    run_signal_case(SIGTERM, true);
}
TEST(loop_signal_sigint_callback)
{
    run_signal_case(SIGINT, true);
}
TEST(loop_signal_sigterm_default_stops)
{
    run_signal_case(SIGTERM, false);
}

static void *signal_from_thread(void *arg)
{
    tu_sleep_ms(50);
    kill(getpid(), SIGTERM);
    return NULL;
}

TEST(loop_signal_from_another_thread)
{
    struct sigctx s = {0};
    s.loop = tu_loop();
    s.thread = pthread_self();
    ax_loop_set_data(s.loop, &s);
    ASSERT_EQ(ax_loop_handle_signals(s.loop, on_signal), 0);
    ax_timer *keep = ax_timer_new(s.loop, noop_timer, NULL);
    ASSERT_EQ(ax_timer_start(keep, 10000, 0), 0);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, signal_from_thread, NULL), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    pthread_join(th, NULL);
    ASSERT(tu_now_ms() - t0 < 3000);
    ASSERT_EQ(s.calls, 1);
    ASSERT_EQ(s.signo, SIGTERM);
    ASSERT_EQ(s.wrong_thread, 0);
    ax_timer_free(keep);
    ax_loop_free(s.loop);
}

static void sig_child(void *arg)
{
    pid_t parent = *(pid_t *)arg;
    tu_sleep_ms(50);
    kill(parent, SIGINT);
}

TEST(loop_signal_from_another_process)
{
    struct sigctx s = {0};
    s.loop = tu_loop();
    s.thread = pthread_self();
    ax_loop_set_data(s.loop, &s);
    ASSERT_EQ(ax_loop_handle_signals(s.loop, on_signal), 0);
    ax_timer *keep = ax_timer_new(s.loop, noop_timer, NULL);
    ASSERT_EQ(ax_timer_start(keep, 10000, 0), 0);
    pid_t me = getpid();
    pid_t child = tu_fork(sig_child, &me);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(tu_wait(child, 5000), 0);
    ASSERT_EQ(s.calls, 1);
    ASSERT_EQ(s.signo, SIGINT);
    ax_timer_free(keep);
    ax_loop_free(s.loop);
}

/* ---- freeing a loop with open handles ---------------------------------- */

static int closes_seen;
static void count_close(ax_conn *c, int reason)
{
    closes_seen++;
}

TEST(loop_free_closes_open_handles)
{
    tu_alloc_install();
    int fds0 = tu_count_fds();
    ax_loop *l = tu_loop();
    static const ax_conn_cbs cbs = {.on_close = count_close};
    int err = 0;
    ax_listener *ls = ax_listen(l, "tcp://127.0.0.1:0", &cbs, NULL, NULL, &err);
    ASSERT(ls != NULL);
    char url[AX_ADDR_STRLEN];
    tu_url(ax_listener_addr(ls), url, sizeof url);
    ax_conn *c = ax_connect(l, url, &cbs, NULL, NULL, &err);
    ASSERT(c != NULL);
    ax_timer *t = ax_timer_new(l, noop_timer, NULL);
    ASSERT_EQ(ax_timer_start(t, 10000, 0), 0);
    /* Let the connection be accepted: two connections and a listener. */
    tu_run_for(l, 100);
    ASSERT_EQ(ax_loop_alive(l), 4);
    ASSERT_EQ(closes_seen, 0);
    ax_loop_free(l);
    ASSERT_EQ(closes_seen, 2); /* client and accepted side, from inside free */
    ax_timer_free(t);          /* timers are the application's to free */
    ASSERT_EQ(tu_fds_settle(fds0), fds0);
    ASSERT_EQ(tu_alloc_live_count(), 0);
}
