/* axon bench's latency histogram (src/cli/bench_hist.c): every value
 * lands in a bucket that holds it, a value read back is at most 1/128
 * above the true one, and percentiles count ranks as they should. */
#include <stdlib.h>

#include "cli/bench.h"
#include "testutil.h"

TEST(bench_hist_buckets_hold_their_values)
{
    size_t prev = 0;
    for (uint64_t v = 0; v < (UINT64_C(1) << 40); v = v < 1000 ? v + 1 : v + v / 97) {
        size_t i = bench_hist_index(v);
        uint64_t lo, hi;
        bench_hist_range(i, &lo, &hi);
        ASSERT(i < BH_BUCKETS);
        ASSERT(lo <= v && v <= hi);
        ASSERT(hi - lo <= lo / 128); /* bounded relative error */
        ASSERT(i >= prev);           /* monotonic */
        prev = i;
    }
    ASSERT(bench_hist_index(UINT64_MAX) == BH_BUCKETS - 1);
}

TEST(bench_hist_percentiles)
{
    bench_hist *h = calloc(1, sizeof(*h));
    ASSERT(h != NULL);
    ASSERT_EQ(bench_hist_pct(h, 99), 0);
    /* 1..10000 us once each: p50 is 5000, p99 9900, p99.99 10000. */
    for (uint64_t v = 1; v <= 10000; v++)
        bench_hist_add(h, v);
    uint64_t p50 = bench_hist_pct(h, 50), p99 = bench_hist_pct(h, 99);
    ASSERT(p50 >= 5000 && p50 <= 5000 + 5000 / 128);
    ASSERT(p99 >= 9900 && p99 <= 9900 + 9900 / 128);
    ASSERT_EQ(bench_hist_pct(h, 99.99), 10000);
    ASSERT_EQ(bench_hist_pct(h, 100), 10000);
    ASSERT_EQ(h->min, 1);
    ASSERT(bench_hist_mean(h) > 5000.4 && bench_hist_mean(h) < 5000.6);
    /* One stall among many fast answers shows at max and at the last nines. */
    bench_hist *g = calloc(1, sizeof(*g));
    ASSERT(g != NULL);
    for (int i = 0; i < 999; i++)
        bench_hist_add(g, 50);
    bench_hist_add(g, 100000);
    ASSERT_EQ(bench_hist_pct(g, 99.9), 50);
    ASSERT(bench_hist_pct(g, 99.99) >= 100000);
    ASSERT_EQ(g->max, 100000);
    bench_hist_merge(h, g);
    ASSERT_EQ(h->count, 11000);
    ASSERT_EQ(h->max, 100000);
    ASSERT_EQ(h->min, 1);
    free(g);
    free(h);
}
