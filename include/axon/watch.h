/* axon/watch.h: readiness of a file descriptor the loop does not own.
 *
 * For libraries that keep their own socket and only want to be told when
 * it can be read or written (hiredis, libpq, c-ares): the loop watches the
 * fd, the library does the I/O.  The watch never reads, writes or closes
 * the fd; close it only after ax_watch_free() (or ax_watch_set(w, 0)).
 * Works on every backend (io_uring's readiness half included). */
#ifndef AXON_WATCH_H
#define AXON_WATCH_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_watch ax_watch;

#define AX_WATCH_READ 0x1u
#define AX_WATCH_WRITE 0x2u

/* `events`: what is ready now, AX_WATCH_READ and/or AX_WATCH_WRITE (an
 * error or hang-up on the fd reports every event asked for, so the
 * library's own read or write finds the error). */
typedef void (*ax_watch_cb)(ax_watch *w, unsigned events, void *ud);

/* A watch of `fd` (non-blocking, the caller's), asking for nothing yet.
 * NULL when out of memory. */
AX_API ax_watch *ax_watch_new(ax_loop *loop, int fd, ax_watch_cb cb, void *ud);

/* Ask for `events` (0: nothing: the fd is not watched, and the loop does
 * not count it as alive).  Level-triggered: the callback runs every
 * iteration while an asked-for event stays ready.  0 or a negative code. */
AX_API int ax_watch_set(ax_watch *w, unsigned events) AX_MUST_CHECK;

/* Stop watching and free; safe inside the watch's own callback (the
 * memory goes after this iteration's I/O).  Free every watch before
 * ax_loop_free(). */
AX_API void ax_watch_free(ax_watch *w);

#ifdef __cplusplus
}
#endif
#endif
