/* axon/timer.h: one-shot and repeating timers on the loop's monotonic clock.
 *
 * Timers live in a binary heap: start, stop and expiry are O(log n).  A
 * timer may be started, stopped, restarted or freed from inside any
 * callback, its own included. */
#ifndef AXON_TIMER_H
#define AXON_TIMER_H

#include <stdint.h>
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_timer ax_timer;
typedef void (*ax_timer_cb)(ax_timer *t, void *ud);

/* A new, stopped timer.  NULL when out of memory. */
AX_API ax_timer *ax_timer_new(ax_loop *loop, ax_timer_cb cb, void *ud);

/* (Re)start: fire after `timeout_ms`, then every `repeat_ms` if non-zero.
 * Restarting an active timer moves it.  Returns 0. */
AX_API int ax_timer_start(ax_timer *t, uint64_t timeout_ms, uint64_t repeat_ms);

/* Stop; the callback will not fire until started again.  Idempotent. */
AX_API void ax_timer_stop(ax_timer *t);

AX_API int ax_timer_active(const ax_timer *t);

/* Stop and free.  Safe from inside the timer's own callback.  Timers are
 * the application's: ax_loop_free() stops those still active but does not
 * free them, and ax_timer_free() stays valid after it (and must be called). */
AX_API void ax_timer_free(ax_timer *t);

AX_API ax_loop *ax_timer_loop(const ax_timer *t);
AX_API void ax_timer_set_data(ax_timer *t, void *ud);

#ifdef __cplusplus
}
#endif
#endif
