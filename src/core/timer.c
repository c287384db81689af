/* timer.c: timers in a binary min-heap keyed by (due time, start order). */
#include "internal.h"

#define NOT_IN_HEAP UINT32_MAX

struct ax_timer {
    ax_loop *loop;
    ax_timer_cb cb;
    void *ud;
    uint64_t due, repeat, seq;
    uint32_t idx;      /* position in the heap, NOT_IN_HEAP when stopped */
    bool in_cb;        /* its callback is running */
    bool free_pending; /* freed from inside its callback */
};

static bool before(const ax_timer *a, const ax_timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(ax_loop *loop, ax_timer *t, uint32_t i)
{
    loop->heap[i] = t;
    t->idx = i;
}

static void sift_up(ax_loop *loop, uint32_t i)
{
    ax_timer *t = loop->heap[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(t, loop->heap[parent])) break;
        place(loop, loop->heap[parent], i);
        i = parent;
    }
    place(loop, t, i);
}

static void sift_down(ax_loop *loop, uint32_t i)
{
    ax_timer *t = loop->heap[i];
    uint32_t n = loop->heap_len;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        const ax_timer *best = t;
        if (l < n && before(loop->heap[l], best)) m = l, best = loop->heap[l];
        if (r < n && before(loop->heap[r], best)) m = r;
        if (m == i) break;
        place(loop, loop->heap[m], i);
        i = m;
    }
    place(loop, t, i);
}

static int heap_push(ax_loop *loop, ax_timer *t)
{
    if (loop->heap_len == loop->heap_cap) {
        unsigned cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
        ax_timer **h = ax_realloc(loop->heap, cap * sizeof(*h));
        if (!h) return AX_ENOMEM;
        loop->heap = h;
        loop->heap_cap = cap;
    }
    loop->heap[loop->heap_len] = t;
    t->idx = loop->heap_len++;
    sift_up(loop, t->idx);
    loop->alive++;
    return 0;
}

static void heap_remove(ax_loop *loop, ax_timer *t)
{
    uint32_t i = t->idx, last = loop->heap_len - 1;
    t->idx = NOT_IN_HEAP;
    loop->heap_len--;
    loop->alive--;
    if (i == last) return;
    place(loop, loop->heap[last], i);
    sift_down(loop, i);
    sift_up(loop, loop->heap[i]->idx);
}

ax_timer *ax_timer_new(ax_loop *loop, ax_timer_cb cb, void *ud)
{
    ax_timer *t = ax_calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->loop = loop;
    t->cb = cb;
    t->ud = ud;
    t->idx = NOT_IN_HEAP;
    return t;
}

int ax_timer_start(ax_timer *t, uint64_t timeout_ms, uint64_t repeat_ms)
{
    if (t->free_pending) return AX_ECLOSED;
    ax_timer_stop(t);
    t->due = t->loop->now + timeout_ms;
    t->repeat = repeat_ms;
    t->seq = t->loop->timer_seq++;
    return heap_push(t->loop, t);
}

void ax_timer_stop(ax_timer *t)
{
    if (t->idx != NOT_IN_HEAP) heap_remove(t->loop, t);
}

int ax_timer_active(const ax_timer *t)
{
    return t->idx != NOT_IN_HEAP;
}
ax_loop *ax_timer_loop(const ax_timer *t)
{
    return t->loop;
}
void ax_timer_set_data(ax_timer *t, void *ud)
{
    t->ud = ud;
}

void ax_timer_free(ax_timer *t)
{
    if (!t) return;
    ax_timer_stop(t);
    if (t->in_cb) {
        t->free_pending = true;
        return;
    }
    ax_free(t);
}

int ax__timers_next(ax_loop *loop)
{
    if (!loop->heap_len) return -1;
    uint64_t due = loop->heap[0]->due;
    if (due <= loop->now) return 0;
    uint64_t d = due - loop->now;
    return d > INT32_MAX ? INT32_MAX : (int)d;
}

void ax__timers_run(ax_loop *loop)
{
    /* Timers (re)started by a callback with a zero timeout wait for the
     * next iteration instead of running forever in this one. */
    uint64_t seq_limit = loop->timer_seq;
    while (loop->heap_len) {
        ax_timer *t = loop->heap[0];
        if (t->due > loop->now || t->seq >= seq_limit) break;
        heap_remove(loop, t);
        if (t->repeat) {
            t->due = loop->now + t->repeat;
            t->seq = loop->timer_seq++;
            heap_push(loop, t); /* cannot fail: the slot was just freed */
        }
        t->in_cb = true;
        t->cb(t, t->ud);
        t->in_cb = false;
        if (t->free_pending) ax_free(t);
    }
}

void ax__timers_free_all(ax_loop *loop)
{
    /* Timers still in the heap belong to the application, which should have
     * freed them; detach them so nothing points at the freed loop's heap. */
    while (loop->heap_len)
        heap_remove(loop, loop->heap[0]);
    ax_free(loop->heap);
    loop->heap = NULL;
    loop->heap_cap = 0;
}
