/* axon/slice.h: refcounted byte buffers and files for zero-copy writes.
 *
 * A slice owns `len` bytes.  Queueing it on connections with
 * ax_conn_write_slice() takes a reference per connection, so a message
 * encoded once can be sent to thousands of peers without a copy.  The bytes
 * must not change while any reference is queued.
 *
 * A file handle owns an open file descriptor.  Queueing a range of it with
 * ax_conn_write_file() takes a reference; the connection reads it when it
 * sends (sendfile on plain sockets, read and encrypt under TLS), so the
 * bytes are those the file holds then. */
#ifndef AXON_SLICE_H
#define AXON_SLICE_H

#include <stddef.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_slice ax_slice;

/* A new slice with room for `len` bytes (uninitialised) and one reference,
 * owned by the caller.  NULL when out of memory. */
AX_API ax_slice *ax_slice_new(size_t len);
/* A new slice holding a copy of `data`. */
AX_API ax_slice *ax_slice_copy(const void *data, size_t len);
/* Wrap memory the caller owns: `release(data, ud)` runs when the last
 * reference goes.  The slice header itself is allocated. */
AX_API ax_slice *ax_slice_wrap(void *data, size_t len, void (*release)(void *data, void *ud),
                               void *ud);

AX_API void *ax_slice_data(const ax_slice *s);
AX_API size_t ax_slice_len(const ax_slice *s);
/* Shorten the slice (never grow): for encoders that reserve a maximum. */
AX_API void ax_slice_truncate(ax_slice *s, size_t len);

/* Add a reference; returns s. */
AX_API ax_slice *ax_slice_ref(ax_slice *s);
/* Drop a reference; the last one frees the slice.  NULL is ignored.
 * Thread-safe (atomic count), so a slice may be shared between loops. */
AX_API void ax_slice_unref(ax_slice *s);

typedef struct ax_file ax_file;

/* A handle on `fd` (a regular file open for reading) with one reference,
 * owned by the caller; the last reference closes fd.  NULL when out of
 * memory: fd is then still the caller's. */
AX_API ax_file *ax_file_new(int fd);
AX_API int ax_file_fd(const ax_file *f);
/* Add a reference; returns f. */
AX_API ax_file *ax_file_ref(ax_file *f);
/* Drop a reference; the last one closes the fd and frees the handle.  NULL
 * is ignored.  Thread-safe, as ax_slice_unref. */
AX_API void ax_file_unref(ax_file *f);

#ifdef __cplusplus
}
#endif
#endif
