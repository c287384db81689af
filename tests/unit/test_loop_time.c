/* The loop's cached time: callbacks see the time they were woken at, so
 * timeouts started from them are measured from then, not from before a
 * long wait. */
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

struct wake {
    ax_timer *t;
    ax_addr to;
    uint64_t started_at, woke_at, fired_at;
};

static void on_fire(ax_timer *t, void *ud)
{
    ((struct wake *)ud)->fired_at = tu_now_ms();
}

static void on_datagram(ax_udp *u, const char *d, size_t n, const ax_addr *from)
{
    struct wake *w = ax_udp_data(u);
    w->started_at = tu_now_ms();
    w->woke_at = ax_loop_now(ax_udp_loop(u));
    /* the cached time is the time of waking, not of going to sleep (400 ms
     * before; the slack is for a loaded machine that stalls this thread
     * between the wake-up and the callback) */
    ASSERT(w->woke_at + 150 >= w->started_at);
    ASSERT_EQ(ax_timer_start(w->t, 300, 0), 0);
}

static void *late_sender(void *arg)
{
    struct wake *w = arg;
    tu_sleep_ms(400);
    int fd = socket(w->to.sa.ss_family, SOCK_DGRAM, 0);
    ASSERT(sendto(fd, "x", 1, 0, (struct sockaddr *)&w->to.sa, w->to.len) == 1);
    close(fd);
    return NULL;
}

TEST(loop_time_is_fresh_in_io_callbacks)
{
    ax_loop *loop = tu_loop();
    struct wake w = {0};
    int err = 0;
    w.t = ax_timer_new(loop, on_fire, &w);
    ax_udp *u = ax_udp_bind(loop, "udp://127.0.0.1:0", on_datagram, NULL, &w, &err);
    ASSERT(u != NULL);
    ASSERT(ax_udp_loop(u) == loop);
    w.to = *ax_udp_addr(u);
    pthread_t th;
    pthread_create(&th, NULL, late_sender, &w);
    RUN_UNTIL(loop, w.fired_at != 0, 3000);
    pthread_join(th, NULL);
    ASSERT(w.fired_at + 10 >= w.woke_at + 300); /* a full 300 ms after the wake-up */
    ax_timer_free(w.t);
    ax_udp_close(u);
    ax_loop_free(loop);
}
