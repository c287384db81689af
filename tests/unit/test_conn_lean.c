/* test_conn_lean.c: what keeps struct ax_conn at 120 bytes still behaves.
 * Its limits are a set the loop keeps, named by four bits of its flags, or
 * a copy in the side struct once the loop keeps as many as it can; one
 * deferred node serves both the next iteration's work and the close
 * callback. */
#include <stdint.h>
#include <unistd.h>

#include <axon/axon.h>

#include "core/conn_internal.h"
#include "testutil.h"

#define NCONN (AX__LIMS + 5)

TEST(conn_limits_past_the_sets_a_loop_keeps)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    int fds[NCONN];
    ax_conn *cs[NCONN];
    for (int i = 0; i < NCONN; i++) {
        s.last = NULL;
        fds[i] = tu_connect(&s.addr, 0);
        RUN_UNTIL(loop, s.last != NULL, 10000);
        cs[i] = s.last;
        ASSERT(cs[i]->x == NULL); /* the defaults: a set the loop keeps */
    }
    ASSERT_EQ(ax__lims(cs[0])->high, 64u * 1024);
    ASSERT_EQ(ax__lims(cs[0])->max_input, 1024u * 1024);
    /* a set of its own each: the loop keeps the defaults and 14 more */
    for (int i = 0; i < NCONN; i++)
        ax_conn_set_limits(cs[i], 100 + (size_t)i, 1000 + (size_t)i, 5000 + (size_t)i);
    ASSERT_EQ(loop->nlims, (unsigned)AX__LIMS);
    for (int i = 0; i < NCONN; i++) {
        const ax__conn_lims *l = ax__lims(cs[i]);
        ASSERT_EQ(l->low, 100u + (unsigned)i);
        ASSERT_EQ(l->high, 1000u + (unsigned)i);
        ASSERT_EQ(l->cap, 5000u + (unsigned)i);
        ASSERT_EQ(l->max_input, 1024u * 1024);
        ASSERT_EQ(cs[i]->x != NULL, i >= AX__LIMS - 1);
    }
    /* back to a set the loop keeps (cs[1]'s: the defaults are 0, cs[0]'s 1) */
    ax_conn_set_limits(cs[NCONN - 1], 101, 1001, 5001);
    ASSERT_EQ(cs[NCONN - 1]->flags >> F_LIMS_SHIFT, 2u);
    ASSERT_EQ(ax__lims(cs[NCONN - 1])->low, 101u);
    /* low above high is brought down to it */
    ax_conn_set_limits(cs[NCONN - 1], 200000, 0, 0);
    ASSERT_EQ(ax__lims(cs[NCONN - 1])->low, 1001u);
    /* the cap holds for a copy in the side struct: corked, 4,000 bytes
     * queue, 2,000 more pass its cap (5,018) */
    ax_conn *c = cs[NCONN - 2];
    char buf[4000] = {0};
    ax_conn_cork(c);
    ASSERT_EQ(ax_conn_write(c, buf, 4000), 0);
    ASSERT_EQ(ax_conn_queued(c), 4000u);
    ASSERT_EQ(ax_conn_write(c, buf, 2000), AX_EOUTPUTCAP);
    for (int i = 0; i < NCONN; i++)
        close(fds[i]);
    RUN_UNTIL(loop, s.closed == NCONN, 10000);
    ax_loop_free(loop);
}

static int lean_closes;
static int lean_reason;
static void lean_on_close(ax_conn *c, int reason)
{
    (void)c;
    lean_closes++;
    lean_reason = reason;
}

/* Closed while its node waits for the next iteration (conn_again): the
 * node runs the close callback instead, once. */
TEST(conn_close_while_next_iteration_work_is_queued)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    int fd;
    ax_conn *c = tu_echo_accept(&s, loop, &fd);
    static ax_conn_cbs cbs;
    cbs = *c->cbs;
    cbs.on_close = lean_on_close;
    c->cbs = &cbs;
    lean_closes = 0;
    ax__conn_again_later(c);
    ASSERT(ax__deferred_queued(&c->deferred));
    ax_conn_abort(c, AX_ECANCELED);
    ASSERT_EQ(lean_closes, 0); /* not inside the call */
    RUN_UNTIL(loop, lean_closes == 1, 10000);
    ASSERT_EQ(lean_reason, AX_ECANCELED);
    for (int i = 0; i < 3; i++)
        ax_loop_run_once(loop, 0);
    ASSERT_EQ(lean_closes, 1);
    close(fd);
    ax_loop_free(loop);
}
