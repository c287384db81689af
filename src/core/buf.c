/* buf.c: the growable byte buffer (buf.h). */
#include "buf.h"

#include <stdint.h>
#include <string.h>
#include <axon/alloc.h>
#include <axon/error.h>

size_t ax__buf_grow_cap(size_t cap, size_t need, size_t min)
{
    size_t c = cap ? cap : min;
    while (c < need) {
        if (c > SIZE_MAX / 2) return need;
        c *= 2;
    }
    return c;
}

int ax__buf_reserve(ax__buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len) return AX_ENOMEM;
    size_t need = b->len + extra;
    if (need <= b->cap) return 0;
    size_t cap = ax__buf_grow_cap(b->cap, need, 256);
    char *p = ax_realloc(b->p, cap);
    if (!p) return AX_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int ax__buf_append(ax__buf *b, const void *data, size_t n)
{
    int rc = ax__buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

void ax__buf_consume(ax__buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void ax__buf_reset(ax__buf *b, size_t keep)
{
    b->len = 0;
    if (b->cap > keep) ax__buf_free(b);
}

void ax__buf_free(ax__buf *b)
{
    ax_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
