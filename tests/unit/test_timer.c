/* Timers: one-shot, repeating, ordering, and every change from inside a
 * timer's own callback. */
#define _GNU_SOURCE
#include "testutil.h"

struct tstate {
    ax_loop *loop;
    ax_timer *t;
    int fired;
    uint64_t start;
    uint64_t at[16];
    int limit; /* stop / free / restart after this many */
};

static void count_cb(ax_timer *t, void *ud)
{
    struct tstate *s = ud;
    if (s->fired < 16) s->at[s->fired] = tu_now_ms();
    s->fired++;
    ASSERT(ax_timer_loop(t) == s->loop);
}

TEST(timer_one_shot_fires_once_not_early)
{
    struct tstate s = {0};
    s.loop = tu_loop();
    s.t = ax_timer_new(s.loop, count_cb, &s);
    ASSERT(s.t != NULL);
    ASSERT(!ax_timer_active(s.t));
    ASSERT_EQ(ax_loop_alive(s.loop), 0);
    uint64_t loop_start = ax_loop_now(s.loop);
    s.start = tu_now_ms();
    ASSERT_EQ(ax_timer_start(s.t, 30, 0), 0);
    ASSERT(ax_timer_active(s.t));
    ASSERT_EQ(ax_loop_alive(s.loop), 1);
    ASSERT_EQ(ax_loop_run(s.loop), 0); /* returns: nothing left once it fired */
    ASSERT_EQ(s.fired, 1);
    ASSERT(s.at[0] - s.start >= 29);
    ASSERT(s.at[0] - s.start < 1000);
    ASSERT(ax_loop_now(s.loop) - loop_start >= 30);
    ASSERT(!ax_timer_active(s.t));
    ASSERT_EQ(ax_loop_alive(s.loop), 0);
    ax_timer_free(s.t);
    ax_loop_free(s.loop);
}

static void repeat_stop_cb(ax_timer *t, void *ud)
{
    struct tstate *s = ud;
    count_cb(t, ud);
    ASSERT(ax_timer_active(t)); /* a repeating timer stays active in its callback */
    if (s->fired == s->limit) ax_timer_stop(t);
}

TEST(timer_repeat_then_stop_in_callback)
{
    struct tstate s = {.limit = 5};
    s.loop = tu_loop();
    s.t = ax_timer_new(s.loop, repeat_stop_cb, &s);
    ASSERT(s.t != NULL);
    s.start = tu_now_ms();
    ASSERT_EQ(ax_timer_start(s.t, 10, 15), 0);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 5);
    ASSERT(!ax_timer_active(s.t));
    /* First after 10 ms, then every 15 ms: the fifth no sooner than 70 ms. */
    ASSERT(s.at[0] - s.start >= 9);
    ASSERT(s.at[4] - s.start >= 69);
    for (int i = 1; i < 5; i++)
        ASSERT(s.at[i] - s.at[i - 1] >= 10);
    ax_timer_free(s.t);
    ax_loop_free(s.loop);
}

static void free_self_cb(ax_timer *t, void *ud)
{
    struct tstate *s = ud;
    s->fired++;
    ax_timer_free(t);
    s->t = NULL;
}

TEST(timer_free_from_own_callback)
{
    struct tstate s = {0}, r = {0};
    s.loop = r.loop = tu_loop();
    s.t = ax_timer_new(s.loop, free_self_cb, &s);
    r.t = ax_timer_new(r.loop, free_self_cb, &r);
    ASSERT(s.t && r.t);
    ASSERT_EQ(ax_timer_start(s.t, 5, 0), 0);
    ASSERT_EQ(ax_timer_start(r.t, 5, 5), 0); /* a repeating one too */
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 1);
    ASSERT_EQ(r.fired, 1);
    ASSERT_EQ(ax_loop_alive(s.loop), 0);
    ax_loop_free(s.loop);
}

static void restart_self_cb(ax_timer *t, void *ud)
{
    struct tstate *s = ud;
    count_cb(t, ud);
    ASSERT(!ax_timer_active(t)); /* a one-shot is inactive in its callback */
    if (s->fired < s->limit) ASSERT_EQ(ax_timer_start(t, 5, 0), 0);
}

TEST(timer_restart_from_own_callback)
{
    struct tstate s = {.limit = 4};
    s.loop = tu_loop();
    s.t = ax_timer_new(s.loop, restart_self_cb, &s);
    ASSERT(s.t != NULL);
    s.start = tu_now_ms();
    ASSERT_EQ(ax_timer_start(s.t, 5, 0), 0);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 4);
    ASSERT(s.at[3] - s.start >= 19);
    ax_timer_free(s.t);
    ax_loop_free(s.loop);
}

static void repeat_to_oneshot_cb(ax_timer *t, void *ud)
{
    struct tstate *s = ud;
    count_cb(t, ud);
    if (s->fired == 1) ASSERT_EQ(ax_timer_start(t, 40, 0), 0);
}

TEST(timer_repeating_restarted_as_one_shot)
{
    struct tstate s = {0};
    s.loop = tu_loop();
    s.t = ax_timer_new(s.loop, repeat_to_oneshot_cb, &s);
    ASSERT(s.t != NULL);
    ASSERT_EQ(ax_timer_start(s.t, 5, 5), 0);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 2);
    ASSERT(s.at[1] - s.at[0] >= 39);
    ax_timer_free(s.t);
    ax_loop_free(s.loop);
}

TEST(timer_restart_moves_it)
{
    struct tstate s = {0};
    s.loop = tu_loop();
    s.t = ax_timer_new(s.loop, count_cb, &s);
    ASSERT(s.t != NULL);
    ASSERT_EQ(ax_timer_start(s.t, 5000, 0), 0);
    s.start = tu_now_ms();
    ASSERT_EQ(ax_timer_start(s.t, 20, 0), 0);
    ASSERT_EQ(ax_loop_alive(s.loop), 1);
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 1);
    ASSERT(s.at[0] - s.start < 1000);
    /* And later again. */
    ASSERT_EQ(ax_timer_start(s.t, 10, 0), 0);
    ASSERT_EQ(ax_timer_start(s.t, 60, 0), 0);
    s.start = tu_now_ms();
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT_EQ(s.fired, 2);
    ASSERT(s.at[1] - s.start >= 59);
    ax_timer_free(s.t);
    ax_loop_free(s.loop);
}

TEST(timer_stop_is_idempotent_and_free_of_active_is_quiet)
{
    struct tstate s = {0};
    s.loop = tu_loop();
    ax_timer *a = ax_timer_new(s.loop, count_cb, &s);
    ax_timer *b = ax_timer_new(s.loop, count_cb, &s);
    ASSERT(a && b);
    ax_timer_stop(a); /* never started */
    ASSERT_EQ(ax_timer_start(a, 10, 0), 0);
    ax_timer_stop(a);
    ax_timer_stop(a);
    ASSERT(!ax_timer_active(a));
    ASSERT_EQ(ax_timer_start(b, 10, 10), 0);
    ax_timer_free(b); /* active: must never fire */
    ASSERT_EQ(ax_loop_alive(s.loop), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(s.loop), 0);
    ASSERT(tu_now_ms() - t0 < 500);
    tu_run_for(s.loop, 40);
    ASSERT_EQ(s.fired, 0);
    ax_timer_free(a);
    ax_loop_free(s.loop);
}

static void set_flag_cb(ax_timer *t, void *ud)
{
    *(int *)ud += 1;
}

TEST(timer_set_data)
{
    ax_loop *loop = tu_loop();
    int a = 0, b = 0;
    ax_timer *t = ax_timer_new(loop, set_flag_cb, &a);
    ASSERT(t != NULL);
    ax_timer_set_data(t, &b);
    ASSERT_EQ(ax_timer_start(t, 1, 0), 0);
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT_EQ(a, 0);
    ASSERT_EQ(b, 1);
    ax_timer_free(t);
    ax_loop_free(loop);
}

/* Two timers due in the same iteration: whichever runs first stops (or
 * frees) the other, which must then not run. */
struct pair {
    ax_timer *t[2];
    int fired;
    int mode; /* 0: stop the other, 1: free the other */
};

static void pair_cb(ax_timer *t, void *ud)
{
    struct pair *p = ud;
    p->fired++;
    int other = t == p->t[0] ? 1 : 0;
    ASSERT(t == p->t[other ^ 1]);
    if (p->t[other]) {
        if (p->mode == 0) {
            ax_timer_stop(p->t[other]);
        } else {
            ax_timer_free(p->t[other]);
            p->t[other] = NULL;
        }
    }
}

static void pair_run(int mode)
{
    ax_loop *loop = tu_loop();
    struct pair p = {.mode = mode};
    p.t[0] = ax_timer_new(loop, pair_cb, &p);
    p.t[1] = ax_timer_new(loop, pair_cb, &p);
    ASSERT(p.t[0] && p.t[1]);
    ASSERT_EQ(ax_timer_start(p.t[0], 10, 0), 0);
    ASSERT_EQ(ax_timer_start(p.t[1], 10, 0), 0);
    tu_sleep_ms(20); /* both are certainly due in the first iteration */
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT_EQ(p.fired, 1);
    for (int i = 0; i < 2; i++)
        if (p.t[i]) ax_timer_free(p.t[i]);
    ax_loop_free(loop);
}

TEST(timer_stop_other_due_same_iteration)
{
    pair_run(0);
}
TEST(timer_free_other_due_same_iteration)
{
    pair_run(1);
}

/* Heap order: many timers with varied timeouts fire in timeout order; the
 * stopped ones never fire. */
#define NT 5000
struct many {
    ax_timer *t[NT];
    uint64_t timeout[NT];
    int fired[NT];
    uint64_t last_timeout;
    int order_errors;
    int total;
};
static struct many M;

static void many_cb(ax_timer *t, void *ud)
{
    int i = (int)(intptr_t)ud;
    M.fired[i]++;
    M.total++;
    if (M.timeout[i] < M.last_timeout) M.order_errors++;
    M.last_timeout = M.timeout[i];
}

TEST(timer_many_fire_in_order)
{
    ax_loop *loop = tu_loop();
    uint32_t seed = 12345;
    for (int i = 0; i < NT; i++) {
        seed = seed * 1103515245u + 12345u;
        /* Multiples of 10 ms, so a start-time skew cannot reorder them. */
        M.timeout[i] = ((seed >> 16) % 20) * 10;
        M.t[i] = ax_timer_new(loop, many_cb, (void *)(intptr_t)i);
        ASSERT(M.t[i] != NULL);
        ASSERT_EQ(ax_timer_start(M.t[i], M.timeout[i], 0), 0);
    }
    ASSERT_EQ(ax_loop_alive(loop), NT);
    int stopped = 0;
    for (int i = 0; i < NT; i += 3) {
        ax_timer_stop(M.t[i]);
        stopped++;
    }
    ASSERT_EQ(ax_loop_alive(loop), NT - stopped);
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT_EQ(M.total, NT - stopped);
    for (int i = 0; i < NT; i++)
        ASSERT_EQ(M.fired[i], i % 3 == 0 ? 0 : 1);
    ASSERT_EQ(M.order_errors, 0);
    for (int i = 0; i < NT; i++)
        ax_timer_free(M.t[i]);
    ax_loop_free(loop);
}

/* A timer that keeps restarting itself with timeout 0 must not starve the
 * rest of the loop: each restart runs in a later iteration. */
struct starve {
    ax_timer *spin, *stop;
    int spins;
    int stopped;
};

static void spin_cb(ax_timer *t, void *ud)
{
    struct starve *s = ud;
    s->spins++;
    if (!s->stopped) ASSERT_EQ(ax_timer_start(t, 0, 0), 0);
}

static void stopper_cb(ax_timer *t, void *ud)
{
    struct starve *s = ud;
    if (s->spins < 2) { /* a busy machine ran both in the first pass: again */
        ASSERT_EQ(ax_timer_start(t, 10, 0), 0);
        return;
    }
    s->stopped = 1;
    ax_timer_stop(s->spin);
}

TEST(timer_zero_restart_does_not_starve)
{
    ax_loop *loop = tu_loop();
    struct starve s = {0};
    s.spin = ax_timer_new(loop, spin_cb, &s);
    s.stop = ax_timer_new(loop, stopper_cb, &s);
    ASSERT(s.spin && s.stop);
    ASSERT_EQ(ax_timer_start(s.spin, 0, 0), 0);
    ASSERT_EQ(ax_timer_start(s.stop, 30, 0), 0);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(ax_loop_run(loop), 0);
    ASSERT(s.stopped);
    ASSERT(s.spins > 1);
    ASSERT(tu_now_ms() - t0 < 2000);
    ax_timer_free(s.spin);
    ax_timer_free(s.stop);
    ax_loop_free(loop);
}

/* Timers belong to the application: freeing the loop with active timers
 * stops them (callbacks never run) and ax_timer_free still works after. */
TEST(timer_loop_free_with_active_timers)
{
    tu_alloc_install();
    ax_loop *loop = tu_loop();
    int fired = 0;
    ax_timer *t[10];
    for (int i = 0; i < 10; i++) {
        t[i] = ax_timer_new(loop, set_flag_cb, &fired);
        ASSERT(t[i] != NULL);
        if (i % 2 == 0) ASSERT_EQ(ax_timer_start(t[i], (uint64_t)i * 1000 + 1000, 0), 0);
    }
    ASSERT_EQ(ax_loop_alive(loop), 5);
    ax_loop_free(loop);
    ASSERT_EQ(fired, 0);
    for (int i = 0; i < 10; i++) {
        ASSERT(!ax_timer_active(t[i]));
        ax_timer_free(t[i]);
    }
    ASSERT_EQ(tu_alloc_live_count(), 0);
}
