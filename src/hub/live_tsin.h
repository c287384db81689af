/* live_tsin.h: an MPEG-TS upload into the live relay (PUT/POST
 * /live/NAME with an MPEG-TS body, as `ffmpeg -f mpegts http://...`),
 * demuxed by FFmpeg's libavformat.
 *
 * libavformat's demuxers pull their input, and a loop must not wait for
 * bytes, so the demuxer runs on a thread of its own: the loop hands over
 * the body as it arrives (live_tsin_feed, a copy into a bounded buffer),
 * the thread reads it through a custom AVIOContext, turns each packet
 * into the FLV payloads the relay takes (H.264 and H.265 Annex B to
 * length-prefixed NAL units with their decoder configuration, avcC or
 * hvcC, in FLV's codec 7 or 12; AAC ADTS to raw frames with their
 * AudioSpecificConfig; Opus packets after their OpusHead, in sound
 * format 13; timestamps in ms from the first one) and posts them to the
 * publisher's loop, which pushes them (live_push).  Other codecs, and a
 * second video or audio stream, are left out. */
#ifndef AXON_HUB_LIVE_TSIN_H
#define AXON_HUB_LIVE_TSIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/axon.h>

#include "live.h"

#define LIVE_TSIN_BUF (8u << 20) /* body bytes waiting for the demuxer, at most */

typedef struct live_tsin live_tsin;

/* A demuxer feeding st (published on loop; the demuxer unpublishes it
 * once it is freed and its last frame pushed).  NULL: out of memory. */
live_tsin *live_tsin_new(live_stream *st, ax_loop *loop);
/* Body bytes (copied): false when the demuxer is too far behind or
 * gave up (not MPEG-TS). */
bool live_tsin_feed(live_tsin *t, const uint8_t *d, size_t len);
/* The body ended (or the request is gone): the demuxer reads what is
 * left and stops (this waits for it: it must not post to a loop that is
 * going away); the stream ends after its last frame, on the loop. */
void live_tsin_free(live_tsin *t);

#endif
