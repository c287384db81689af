/* axon/loop.h: the event loop.
 *
 * One loop per thread.  A loop waits for I/O with a backend chosen at run
 * time (epoll on Linux, poll everywhere; AXON_BACKEND=poll|epoll forces
 * one), runs expired timers, then runs work posted from other threads.
 * Every callback runs on the loop's thread, never re-entering the call that
 * caused it. */
#ifndef AXON_LOOP_H
#define AXON_LOOP_H

#include <stdint.h>
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_loop ax_loop;

/* A new loop.  `backend` is "epoll", "poll" or NULL (the AXON_BACKEND
 * environment variable, else the best one).  NULL on failure, with the code
 * in *err when err is not NULL. */
AX_API ax_loop *ax_loop_new(const char *backend, int *err);

/* Free the loop.  Handles still open are closed first (their close
 * callbacks run from inside this call), then the loop's memory goes. */
AX_API void ax_loop_free(ax_loop *loop);

/* Run until ax_loop_stop() or until nothing is left to wait for (no open
 * handle, no active timer).  Returns 0, or a negative code when the backend
 * failed. */
AX_API int ax_loop_run(ax_loop *loop);

/* Run one iteration: wait at most `timeout_ms` (-1: as long as needed, 0:
 * don't wait), dispatch, return.  Returns 1 if there is more to do, 0 if
 * not, negative on error. */
AX_API int ax_loop_run_once(ax_loop *loop, int timeout_ms);

/* Make ax_loop_run() return after the current iteration.  Loop thread only;
 * from other threads post a function that calls it. */
AX_API void ax_loop_stop(ax_loop *loop);

/* The loop's cached monotonic time in milliseconds, updated once per
 * iteration (ax_loop_update_time() refreshes it). */
AX_API uint64_t ax_loop_now(const ax_loop *loop);
AX_API void ax_loop_update_time(ax_loop *loop);

/* Name of the backend in use: "epoll" or "poll". */
AX_API const char *ax_loop_backend(const ax_loop *loop);

/* The one thread-safe call: run fn(loop, arg) on the loop's thread soon.
 * Returns 0, or AX_ENOMEM, or AX_ESHUTDOWN (ax_loop_free() has already
 * taken the queue); on an error nothing was queued and `arg` is still the
 * caller's.  Posts from one thread run in the order they were made.
 *
 * A post that never runs is ended instead: when the loop is freed (or
 * ax_loop_drop_posts() is called) with it still queued, drop(arg) is
 * called exactly once, on the thread freeing the loop, after the loop's
 * handles are closed, and fn is never called; a post that runs never
 * calls drop.  So an `arg` that owns memory or a reference needs a drop
 * that releases it.  drop may be NULL (nothing to release); it must not
 * post to a loop that may be gone.
 *
 * The loop must outlive the call: a thread may post to a loop only while
 * it knows ax_loop_free() has not begun (it owns the loop, or the loop's
 * owner joins it before the free, as ax_threads_stop() does).  A post
 * made from inside ax_loop_free() on the freeing thread (a close callback,
 * a drop) is queued and dropped, or fails with AX_ESHUTDOWN once the queue
 * has been taken; a post from another thread racing ax_loop_free() is a
 * use after free. */
AX_API int ax_loop_post_or(ax_loop *loop, void (*fn)(ax_loop *loop, void *arg),
                           void (*drop)(void *arg), void *arg);

/* ax_loop_post_or() without a drop, for an `arg` that owns nothing (a
 * pointer to something that outlives the loop). */
AX_API int ax_loop_post(ax_loop *loop, void (*fn)(ax_loop *loop, void *arg), void *arg);

/* From the loop's thread, when shutting down with other threads joined:
 * end every post queued now by its drop, as ax_loop_free() would, while
 * what the drops release is still there.  Later posts queue as usual. */
AX_API void ax_loop_drop_posts(ax_loop *loop);

/* From the loop's own thread: run fn(loop, arg) once the events of this
 * iteration have been handled, before the loop waits again (what they
 * produced for other threads can go in one post).  0, or AX_ENOMEM. */
AX_API int ax_loop_defer(ax_loop *loop, void (*fn)(ax_loop *loop, void *arg), void *arg);

/* Stop the loop gracefully on SIGINT or SIGTERM: `cb` runs on the loop's
 * thread (NULL: ax_loop_stop).  A second signal while stopping exits the
 * process.  Only one loop per process can own the signals. */
AX_API int ax_loop_handle_signals(ax_loop *loop, void (*cb)(ax_loop *loop, int signo));

/* Run `cb` on the loop's thread when the process gets SIGHUP (servers
 * reopen their log files then, as nginx and Redis do).  0 or a code. */
AX_API int ax_loop_handle_reload(ax_loop *loop, void (*cb)(ax_loop *loop));

/* A pointer the application keeps with the loop. */
AX_API void ax_loop_set_data(ax_loop *loop, void *data);
AX_API void *ax_loop_data(const ax_loop *loop);

/* Number of open handles (connections, listeners, sockets, active timers). */
AX_API unsigned ax_loop_alive(const ax_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
