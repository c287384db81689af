/* buf.h: one growable byte buffer, for the places that collect bytes of
 * unknown length (a request body, TLS records, a line).  Memory comes from
 * the allocation hook (alloc.h), so out-of-memory tests reach it. */
#ifndef AXON_CORE_BUF_H
#define AXON_CORE_BUF_H

#include <stddef.h>

/* Zero-initialised: empty, nothing allocated. */
typedef struct ax__buf {
    char *p;
    size_t len, cap;
} ax__buf;

/* The capacity to grow `cap` to for `need` bytes: doubling (from `min`
 * when empty), so n appends copy O(n) bytes in all.  For callers that keep
 * their own fields (a connection's compact input buffer). */
size_t ax__buf_grow_cap(size_t cap, size_t need, size_t min);
/* Room for `extra` more bytes behind len.  0 or AX_ENOMEM (the buffer is
 * unchanged then). */
int ax__buf_reserve(ax__buf *b, size_t extra);
/* Append a copy of `n` bytes.  0 or AX_ENOMEM. */
int ax__buf_append(ax__buf *b, const void *data, size_t n);
/* Drop the first n bytes (n <= len); the rest moves to the front. */
void ax__buf_consume(ax__buf *b, size_t n);
/* Empty; the memory is given back when it grew past `keep` bytes, so a
 * burst does not stay allocated. */
void ax__buf_reset(ax__buf *b, size_t keep);
/* Release the memory; the buffer is empty and usable again. */
void ax__buf_free(ax__buf *b);

#endif
