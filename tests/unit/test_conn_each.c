/* test_conn_each.c: ax_loop_each_conn() finds a server's connections in
 * its loop (the MQTT gateway keeps no list of its own): those with the
 * callback table asked for, opened and not closed; the callback may abort
 * the connection it is given. */
#include <unistd.h>

#include <axon/axon.h>

#include "core/conn_internal.h"
#include "testutil.h"

static void count_each(ax_conn *c, void *ud)
{
    (void)c;
    ++*(int *)ud;
}

static void abort_each(ax_conn *c, void *ud)
{
    ++*(int *)ud;
    ax_conn_abort(c, AX_ECLOSED);
}

TEST(loop_each_conn_walks_a_servers_connections)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, "tcp://127.0.0.1:0", NULL);
    int fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = tu_connect(&s.addr, 0);
    RUN_UNTIL(loop, s.opened == 3, 10000);
    const ax_conn_cbs *cbs = s.last->cbs;
    static const ax_conn_cbs other = {0};
    int n = 0;
    ax_loop_each_conn(loop, cbs, count_each, &n);
    ASSERT_EQ(n, 3);
    n = 0;
    ax_loop_each_conn(loop, &other, count_each, &n);
    ASSERT_EQ(n, 0); /* another table's: none */
    close(fd[0]);
    RUN_UNTIL(loop, s.closed == 1, 10000);
    n = 0;
    ax_loop_each_conn(loop, cbs, count_each, &n);
    ASSERT_EQ(n, 2); /* a closed one is gone */
    n = 0;
    ax_loop_each_conn(loop, cbs, abort_each, &n);
    ASSERT_EQ(n, 2);
    RUN_UNTIL(loop, s.closed == 3, 10000);
    n = 0;
    ax_loop_each_conn(loop, cbs, count_each, &n);
    ASSERT_EQ(n, 0);
    close(fd[1]);
    close(fd[2]);
    ax_loop_free(loop);
}
