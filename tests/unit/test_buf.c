/* test_buf.c: the growable byte buffer (src/core/buf.h). */
#include <string.h>
#include <stdint.h>
#include "core/buf.h"
#include "testutil.h"

TEST(buf_append_consume_reset)
{
    tu_alloc_install();
    long live = tu_alloc_live_count();
    ax__buf b = {0};
    char chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(ax__buf_append(&b, chunk, sizeof chunk), 0);
    ASSERT_EQ(b.len, 100000u);
    ASSERT(b.cap >= b.len && b.cap < 2 * b.len);
    ASSERT(memcmp(b.p + 99000, chunk, sizeof chunk) == 0);
    ax__buf_consume(&b, 99990);
    ASSERT_EQ(b.len, 10u);
    ASSERT(memcmp(b.p, chunk + 990, 10) == 0);
    ax__buf_consume(&b, 50); /* more than there is: empty */
    ASSERT_EQ(b.len, 0u);
    ASSERT_EQ(ax__buf_reserve(&b, 10), 0);
    ax__buf_reset(&b, 1u << 20); /* small enough to keep */
    ASSERT(b.p != NULL && b.len == 0);
    ax__buf_reset(&b, 64); /* grown past 64: given back */
    ASSERT(b.p == NULL && b.cap == 0);
    ASSERT_EQ(ax__buf_append(&b, "x", 1), 0);
    ax__buf_free(&b);
    ASSERT_EQ(tu_alloc_live_count(), live);
}

TEST(buf_out_of_memory_keeps_contents)
{
    tu_alloc_install();
    ax__buf b = {0};
    ASSERT_EQ(ax__buf_append(&b, "hello", 5), 0);
    tu_alloc_fail_after(0);
    char big[4096] = {0};
    ASSERT_EQ(ax__buf_append(&b, big, sizeof big), AX_ENOMEM);
    tu_alloc_fail_after(-1);
    ASSERT_EQ(b.len, 5u);
    ASSERT(memcmp(b.p, "hello", 5) == 0);
    ASSERT_EQ(ax__buf_reserve(&b, SIZE_MAX), AX_ENOMEM);
    ASSERT_EQ(ax__buf_grow_cap(0, 1000, 256), 1024u);
    ASSERT_EQ(ax__buf_grow_cap(1024, 1025, 256), 2048u);
    ax__buf_free(&b);
}
