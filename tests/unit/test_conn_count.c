/* test_conn_count.c: a connection's byte counts past 4 GiB.  The
 * connection keeps their low 32 bits (an idle connection's bytes count)
 * and carries into its side struct; the counts read whole. */
#include <stdint.h>
#include <unistd.h>

#include <axon/axon.h>

#include "core/conn_internal.h"
#include "testutil.h"

TEST(conn_byte_counts_carry_past_4_gib)
{
    ax_loop *loop = tu_loop();
    tu_server s;
    int fd;
    ax_conn *c = tu_echo_accept(&s, loop, &fd);
    ASSERT(c->x == NULL); /* accepted with the defaults: no side struct */
    /* as if 4 GiB - 3 bytes had gone each way already */
    c->bytes_in = UINT32_MAX - 2;
    c->bytes_out = UINT32_MAX - 2;
    const uint64_t base = UINT32_MAX - 2;
    char buf[64];
    for (int round = 1; round <= 2; round++) {
        tu_write_all(fd, "0123456789", 10);
        ASSERT_EQ(tu_loop_read_n(loop, fd, buf, 10, 10000), 10);
        ASSERT_EQ(ax_conn_bytes_in(c), base + 10u * (uint64_t)round);
        ASSERT_EQ(ax_conn_bytes_out(c), base + 10u * (uint64_t)round);
    }
    ASSERT(c->x != NULL);
    ASSERT_EQ(c->x->bytes_hi[0], 1u);
    ASSERT_EQ(c->x->bytes_hi[1], 1u);
    close(fd);
    RUN_UNTIL(loop, s.closed == 1, 10000);
    ax_loop_free(loop);
}
