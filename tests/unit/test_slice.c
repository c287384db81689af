/* Slices: refcounted byte buffers. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "testutil.h"

TEST(slice_new_and_copy)
{
    ax_slice *s = ax_slice_new(100);
    ASSERT(s != NULL);
    ASSERT_EQ(ax_slice_len(s), 100);
    ASSERT(ax_slice_data(s) != NULL);
    memset(ax_slice_data(s), 'x', 100); /* all 100 bytes are ours */
    ax_slice_unref(s);

    char src[64];
    for (int i = 0; i < 64; i++)
        src[i] = (char)i;
    s = ax_slice_copy(src, sizeof src);
    ASSERT(s != NULL);
    ASSERT_EQ(ax_slice_len(s), 64);
    ASSERT(ax_slice_data(s) != src);
    ASSERT(memcmp(ax_slice_data(s), src, 64) == 0);
    src[0] = 99; /* a copy, not a view */
    ASSERT_EQ(((char *)ax_slice_data(s))[0], 0);
    ax_slice_unref(s);

    ax_slice_unref(NULL);
}

TEST(slice_truncate_never_grows)
{
    ax_slice *s = ax_slice_copy("hello world", 11);
    ASSERT(s != NULL);
    ax_slice_truncate(s, 5);
    ASSERT_EQ(ax_slice_len(s), 5);
    ASSERT(memcmp(ax_slice_data(s), "hello", 5) == 0);
    ax_slice_truncate(s, 50);
    ASSERT_EQ(ax_slice_len(s), 5);
    ax_slice_truncate(s, 0);
    ASSERT_EQ(ax_slice_len(s), 0);
    ax_slice_unref(s);
}

struct released {
    int calls;
    void *data;
    void *ud;
};

static void on_release(void *data, void *ud)
{
    struct released *r = ud;
    r->calls++;
    r->data = data;
    r->ud = ud;
}

TEST(slice_wrap_releases_once_at_last_unref)
{
    static char mem[32] = "caller-owned";
    struct released r = {0};
    ax_slice *s = ax_slice_wrap(mem, sizeof mem, on_release, &r);
    ASSERT(s != NULL);
    ASSERT(ax_slice_data(s) == mem);
    ASSERT_EQ(ax_slice_len(s), sizeof mem);
    ASSERT(ax_slice_ref(s) == s);
    ASSERT(ax_slice_ref(s) == s);
    ax_slice_unref(s);
    ax_slice_unref(s);
    ASSERT_EQ(r.calls, 0);
    ax_slice_unref(s);
    ASSERT_EQ(r.calls, 1);
    ASSERT(r.data == mem);
    ASSERT(r.ud == &r);
}

TEST(slice_alloc_balance)
{
    tu_alloc_install();
    long base = tu_alloc_live_count();
    ax_slice *a = ax_slice_new(1000);
    ax_slice *b = ax_slice_copy("abc", 3);
    static char mem[8];
    struct released r = {0};
    ax_slice *c = ax_slice_wrap(mem, sizeof mem, on_release, &r);
    ASSERT(a && b && c);
    /* Slices come from the allocation hook. */
    ASSERT(tu_alloc_live_count() > base);
    ASSERT(tu_alloc_live_bytes() >= 1000 + 3);
    ax_slice_ref(a);
    ax_slice_unref(a);
    ax_slice_unref(a);
    ax_slice_unref(b);
    ax_slice_unref(c);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(tu_alloc_live_count(), base);
    ASSERT_EQ(tu_alloc_live_bytes(), 0);
}

#define REF_THREADS 4
#define REF_ROUNDS 200000

static void *ref_worker(void *arg)
{
    ax_slice *s = arg;
    for (int i = 0; i < REF_ROUNDS; i++) {
        ax_slice_ref(s);
        ax_slice_ref(s);
        ax_slice_unref(s);
        ax_slice_unref(s);
    }
    ax_slice_unref(s); /* the reference main gave this thread */
    return NULL;
}

TEST(slice_refcount_is_atomic)
{
    static char mem[16];
    struct released r = {0};
    ax_slice *s = ax_slice_wrap(mem, sizeof mem, on_release, &r);
    ASSERT(s != NULL);
    pthread_t th[REF_THREADS];
    for (int i = 0; i < REF_THREADS; i++) {
        ax_slice_ref(s);
        ASSERT_EQ(pthread_create(&th[i], NULL, ref_worker, s), 0);
    }
    for (int i = 0; i < REF_THREADS; i++)
        pthread_join(th[i], NULL);
    ASSERT_EQ(r.calls, 0);
    ax_slice_unref(s);
    ASSERT_EQ(r.calls, 1);
}
