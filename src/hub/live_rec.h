/* live_rec.h: recording live streams to files (`axon serve --record DIR`,
 * docs/streaming.md): each publication of a stream becomes one fragmented
 * MP4 file, DIR/NAME-YYYYMMDD-HHMMSS.mp4 (UTC, the time it started): the
 * fMP4 muxer's init segment and then the fragment it made for each frame
 * (live_mux.h), the same bytes WebSocket viewers get.  The file is
 * playable while it grows and after the stream ends; nothing is
 * transcoded.
 *
 * Files are opened, written and closed by one writer thread, never on a
 * loop: a loop only queues a reference to the fragment.  The queue is
 * bounded (LIVE_REC_QUEUE bytes across all recordings): when the disk
 * cannot keep up, a recording drops frames until the next video keyframe
 * and counts them, instead of growing memory or slowing the publisher. */
#ifndef AXON_HUB_LIVE_REC_H
#define AXON_HUB_LIVE_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/axon.h>

#define LIVE_REC_QUEUE (64u << 20)

typedef struct live_rec live_rec;

/* Record new streams into `dir` ("" or NULL: no recording; the default).
 * Made if missing, when the first recording starts. */
void live_rec_dir(const char *dir);
/* Start recording stream `name` with this init segment (copied): NULL when
 * recording is off or memory ran out.  Errors opening the file are logged
 * by the writer thread. */
live_rec *live_rec_open(const char *name, const uint8_t *init, size_t len);
/* One frame's fragment (a reference is taken); key: a video keyframe (or
 * an audio frame of an audio-only stream), where a dropping recording
 * resumes. */
void live_rec_write(live_rec *r, ax_slice *frag, bool key);
/* The stream ended: the rest is written, then the file closed; r is gone. */
void live_rec_close(live_rec *r);

#endif
