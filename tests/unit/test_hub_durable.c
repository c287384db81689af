/* test_hub_durable.c: what the hub's store promises: acknowledgements
 * after the commit, in order, never inside the publish, cancellable; the
 * bounded queue refusing with AX_EAGAIN without using a number; sequence
 * numbers moved past anything handed out after an unclean stop, and not
 * after a clean one. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <axon/axon.h>

#include "hub/hub.h"
#include "runner.h"
#include "testutil.h"

static hub *open_hub(ax_loop *loop, const char *dir, int mode, size_t qmax)
{
    char why[256] = "";
    hub_opts o = {.data_dir = dir, .fsync_mode = mode, .store_queue_max = qmax};
    hub *h = hub_new(loop, &o, why, sizeof why);
    if (!h) fprintf(stderr, "hub_new: %s\n", why);
    ASSERT(h != NULL);
    return h;
}

static void data_dir(char *buf, size_t len)
{
    snprintf(buf, len, "%s/data", ax_test_tmpdir());
}

typedef struct ack_rec {
    hub_ack ack;
    int order, status;
} ack_rec;

static int acked_count;

static void on_ack(hub_ack *a, int status)
{
    ack_rec *r = (ack_rec *)a;
    r->order = ++acked_count;
    r->status = status;
}

static uint64_t pub_ticket(hub *h, const char *topic, const char *text, uint64_t *ticket)
{
    int err = 0;
    uint64_t seq = hub_publish_ticket(h, NULL, topic, "t", text, strlen(text), ticket, &err);
    ASSERT(seq > 0);
    return seq;
}

TEST(hub_ack_after_commit_in_order)
{
    char dir[512];
    data_dir(dir, sizeof dir);
    ax_loop *loop = tu_loop();
    hub *h = open_hub(loop, dir, HUB_FSYNC_ALWAYS, 0);
    enum { N = 50 };
    static ack_rec recs[N];
    acked_count = 0;
    for (int i = 0; i < N; i++) {
        uint64_t ticket = 0;
        ASSERT_EQ(pub_ticket(h, "t/a", "x", &ticket), (uint64_t)i + 1);
        ASSERT(ticket > 0);
        ASSERT_EQ(hub_ack_wait(h, &recs[i].ack, ticket, on_ack), 0);
    }
    ASSERT_EQ(acked_count, 0); /* never inside the call */
    hub_ack_cancel(h, &recs[7].ack);
    RUN_UNTIL(loop, acked_count == N - 1, 5000);
    for (int i = 0, want = 1; i < N; i++) {
        if (i == 7) {
            ASSERT_EQ(recs[i].order, 0);
            continue;
        }
        ASSERT_EQ(recs[i].order, want++);
        ASSERT_EQ(recs[i].status, 0);
    }
    /* a ticket already committed is still answered later, on the loop */
    uint64_t ticket = 0;
    pub_ticket(h, "t/a", "y", &ticket);
    RUN_UNTIL(loop, hub_stats_get(h)->store_writes == N + 1, 5000);
    static ack_rec late;
    ASSERT_EQ(hub_ack_wait(h, &late.ack, ticket, on_ack), 0);
    ASSERT_EQ(late.order, 0);
    RUN_UNTIL(loop, late.order == N, 5000);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_ack_fsync_off_is_immediate)
{
    char dir[512];
    data_dir(dir, sizeof dir);
    ax_loop *loop = tu_loop();
    hub *h = open_hub(loop, dir, HUB_FSYNC_OFF, 0);
    uint64_t ticket = 1;
    pub_ticket(h, "t/a", "x", &ticket);
    ASSERT_EQ(ticket, 0u);
    hub_free(h);
    ax_loop_free(loop);
}

static void noop_msg(hub_msg *m, void *ud)
{
    (void)m, (void)ud;
}

TEST(hub_store_queue_bound_refuses_without_a_number)
{
    char dir[512];
    data_dir(dir, sizeof dir);
    ax_loop *loop = tu_loop();
    hub *h = open_hub(loop, dir, HUB_FSYNC_ALWAYS, 8);
    uint64_t last = 0;
    int refused = 0;
    for (int i = 0; i < 20000; i++) { /* far faster than fsync'd commits */
        int err = 0;
        uint64_t seq = hub_publish(h, "t/q", "t", "payload", 7, &err);
        if (!seq) {
            ASSERT_EQ(err, AX_EAGAIN);
            refused++;
            continue;
        }
        ASSERT_EQ(seq, last + 1); /* a refusal uses no number */
        last = seq;
    }
    ASSERT(refused > 0);
    ASSERT(hub_stats_get(h)->store_queue_msgs <= 8);
    ASSERT_EQ(hub_stats_get(h)->store_refused, (uint64_t)refused);
    hub_free(h);
    h = open_hub(loop, dir, HUB_FSYNC_ALWAYS, 8); /* clean close: no jump */
    uint64_t first_kept = 0;
    ASSERT_EQ(hub_history(h, "t/q", 0, 1, noop_msg, NULL, &first_kept), last);
    int err = 0;
    ASSERT_EQ(hub_publish(h, "t/q", "t", "next", 4, &err), last + 1);
    hub_free(h);
    ax_loop_free(loop);
}

static void ack_flag(hub_ack *a, int status)
{
    (void)a;
    acked_count = status == 0 ? 1 : -1;
}

TEST(hub_seq_moves_past_a_crash)
{
    char dir[512];
    data_dir(dir, sizeof dir);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) { /* publish, see the last one committed, die without closing */
        ax_loop *loop = tu_loop();
        hub *h = open_hub(loop, dir, HUB_FSYNC_BATCH, 100);
        uint64_t ticket = 0;
        for (int i = 0; i < 10; i++)
            pub_ticket(h, "t/a", "x", &ticket);
        static hub_ack a;
        acked_count = 0;
        hub_ack_wait(h, &a, ticket, ack_flag);
        RUN_UNTIL(loop, acked_count != 0, 5000);
        _exit(acked_count == 1 ? 0 : 1);
    }
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ax_loop *loop = tu_loop();
    hub *h = open_hub(loop, dir, HUB_FSYNC_BATCH, 100);
    uint64_t jump = hub_store_jump(100), first = 0;
    ASSERT_EQ(jump, 1200u);
    ASSERT_EQ(hub_history(h, "t/a", 0, 100, noop_msg, NULL, &first), 10 + jump);
    ASSERT_EQ(first, 1u); /* the ten stored ones are all there */
    int err = 0;
    ASSERT_EQ(hub_publish(h, "t/a", "t", "y", 1, &err), 10 + jump + 1);
    ASSERT_EQ(hub_publish(h, "t/new", "t", "y", 1, &err), jump + 1); /* new topics too */
    hub_free(h);
    h = open_hub(loop, dir, HUB_FSYNC_BATCH, 100); /* a clean stop: no jump */
    ASSERT_EQ(hub_publish(h, "t/a", "t", "z", 1, &err), 10 + jump + 2);
    ASSERT_EQ(hub_publish(h, "t/new", "t", "z", 1, &err), jump + 2);
    ASSERT_EQ(hub_publish(h, "t/other", "t", "z", 1, &err), jump + 1);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_seq_of_a_topic_without_history_survives_restart)
{
    char dir[512];
    data_dir(dir, sizeof dir);
    hub_rule none[] = {{"#", 0, 0, HUB_DISCONNECT}}; /* keep no history */
    ax_loop *loop = tu_loop();
    char why[256] = "";
    hub_opts o = {.rules = none, .nrules = 1, .data_dir = dir};
    hub *h = hub_new(loop, &o, why, sizeof why);
    ASSERT(h != NULL);
    int err = 0;
    for (uint64_t i = 1; i <= 3; i++)
        ASSERT_EQ(hub_publish(h, "t/z", "t", "x", 1, &err), i);
    hub_free(h); /* the store trimmed all three and kept the number */
    h = hub_new(loop, &o, why, sizeof why);
    ASSERT(h != NULL);
    ASSERT_EQ(hub_publish(h, "t/z", "t", "x", 1, &err), 4u);
    hub_free(h);
    ax_loop_free(loop);
}
