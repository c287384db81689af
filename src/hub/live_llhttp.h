/* live_llhttp.h: Low-Latency HLS over HTTP (live.h makes the parts;
 * docs/streaming.md), for the live gateway (live_http.c), which checks
 * the viewer's grant first:
 *
 *   GET /live/NAME/ll.m3u8[?_HLS_msn=M[&_HLS_part=P]]  the playlist; with
 *        _HLS_msn a blocking reload: held until segment M (part P of it,
 *        or a later part) is in it, 503 after 3 target durations, 400 when
 *        M is more than 2 segments (P more than 3 parts) ahead
 *   GET /live/NAME/init.mp4   the fMP4 init segment (EXT-X-MAP)
 *   GET /live/NAME/ll-M.m4s   segment M (its parts, concatenated)
 *   GET /live/NAME/p-K.m4s    part K; the next parts (the preload hint)
 *        are held until they exist, 503 after 3 target durations
 *
 * A held request costs no thread and blocks nothing: it waits in a list
 * that a timer looks through (every LIVE_LLH_TICK_MS, and only when a
 * part was made or a deadline passed).  HTTP/1.1 answers a connection's
 * requests in order, so a connection holds at most one; at most
 * LIVE_LLH_HELD_MAX are held in all (then 503 at once); a held request
 * whose client goes away is freed at once (the connection is read while
 * it waits, so its close is seen).  Held requests count among the live
 * gateway's connections (axon_connections{gateway="live"}). */
#ifndef AXON_HUB_LIVE_LLHTTP_H
#define AXON_HUB_LIVE_LLHTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <axon/axon.h>

#include "serve.h"

#define LIVE_LLH_HELD_MAX 4096
#define LIVE_LLH_TICK_MS 5

typedef struct live_llh live_llh;

live_llh *live_llh_new(serve *sv);
/* Is `rest` (the path after /live/NAME/) an LL-HLS resource? */
bool live_llh_is(const char *rest, size_t len);
/* Answer (or hold) the GET of /live/NAME/rest. */
void live_llh_get(live_llh *h, ax_http_req *r, const char *name, const char *rest, size_t len);
/* How many requests are held now. */
size_t live_llh_held(const live_llh *h);
/* Shutdown: every held request gets 503. */
void live_llh_stop(live_llh *h);
void live_llh_free(live_llh *h);

#endif
