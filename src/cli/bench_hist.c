/* bench_hist.c: the latency histogram of `axon bench` (see bench.h). */
#include <string.h>

#include "bench.h"

#define BH_MAXV ((UINT64_C(1) << 40) - 1)

void bench_hist_reset(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
}

size_t bench_hist_index(uint64_t v)
{
    if (v > BH_MAXV) v = BH_MAXV;
    if (v < 2 * BH_SUB) return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - BH_SUB_BITS; /* >= 1 */
    uint64_t top = v >> shift;          /* BH_SUB .. 2 * BH_SUB - 1 */
    return (size_t)(shift + 1) * BH_SUB + (size_t)(top - BH_SUB);
}

void bench_hist_range(size_t i, uint64_t *lo, uint64_t *hi)
{
    if (i < 2 * BH_SUB) {
        *lo = *hi = i;
        return;
    }
    unsigned shift = (unsigned)(i / BH_SUB) - 1;
    uint64_t top = i % BH_SUB + BH_SUB;
    *lo = top << shift;
    *hi = ((top + 1) << shift) - 1;
}

void bench_hist_add(bench_hist *h, uint64_t v)
{
    if (v > BH_MAXV) v = BH_MAXV;
    h->b[bench_hist_index(v)]++;
    if (h->count == 0 || v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    h->count++;
    h->sum += v;
}

void bench_hist_merge(bench_hist *into, const bench_hist *from)
{
    if (from->count == 0) return;
    for (size_t i = 0; i < BH_BUCKETS; i++)
        into->b[i] += from->b[i];
    if (into->count == 0 || from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
}

uint64_t bench_hist_pct(const bench_hist *h, double pct)
{
    if (h->count == 0) return 0;
    if (pct >= 100.0) return h->max;
    /* The rank of the value asked for, 1-based: at least one sample. */
    uint64_t rank = (uint64_t)(pct / 100.0 * (double)h->count + 0.9999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < BH_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            bench_hist_range(i, &lo, &hi);
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}

double bench_hist_mean(const bench_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
