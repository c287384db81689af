/* axon/thread.h: N loops on N threads.
 *
 * Each thread gets its own loop and runs `setup(loop, index, ud)` on it
 * before entering ax_loop_run().  Servers that want to share a port open
 * their listeners with reuse_port set; the kernel spreads connections
 * across the threads.  Threads talk to each other only with ax_loop_post(). */
#ifndef AXON_THREAD_H
#define AXON_THREAD_H

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_threads ax_threads;
/* Runs on the new thread; return 0, or a negative code to fail the start. */
typedef int (*ax_thread_setup)(ax_loop *loop, int index, void *ud);

/* Start `n` threads.  Returns once each has run its setup; NULL (and the
 * first failure in *err) if any setup failed, in which case all are
 * stopped again. */
AX_API ax_threads *ax_threads_start(int n, ax_thread_setup setup, void *ud, int *err);
/* The loop of thread `index`. */
AX_API ax_loop *ax_threads_loop(ax_threads *t, int index);
AX_API int ax_threads_count(const ax_threads *t);
/* Ask every loop to stop, wait for the threads, free their loops (every
 * thread is joined before the first loop goes, so they may post to each
 * other's loops until they return; queued posts are dropped). */
AX_API void ax_threads_stop(ax_threads *t);

#ifdef __cplusplus
}
#endif
#endif
