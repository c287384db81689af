/* live_mux.h: a live stream's frames into a container with FFmpeg's
 * libavformat, in memory: the muxer writes through a custom AVIOContext
 * into a buffer that is handed out as one slice per frame.  No file, no
 * socket, no thread: a call muxes one frame and returns, so it runs on the
 * publisher's loop.  No transcoding: the frames go in as they came.
 *
 * MPEG-TS (live_mux_new(LIVE_MUX_TS)): FFmpeg's mpegts muxer writes a PAT
 * and PMT before every video keyframe, so the bytes from a keyframe on
 * play alone: /live/NAME.ts viewers start there, and HLS segments are cut
 * there. */
#ifndef AXON_HUB_LIVE_MUX_H
#define AXON_HUB_LIVE_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/axon.h>

typedef struct live_mux live_mux;

/* MPEG-TS, or fragmented MP4 for Media Source Extensions: an init
 * segment (ftyp moov, live_mux_init) and then one fragment (moof mdat,
 * with its decode time) per frame, so a player may start at any keyframe
 * fragment after the init segment. */
enum { LIVE_MUX_TS = 0, LIVE_MUX_FMP4 = 1 };

/* What the container needs to know, from the FLV sequence headers: the
 * payloads as they came (NULL: no such track), the size from onMetaData
 * (0: unknown). */
typedef struct live_tracks {
    const uint8_t *vseq, *aseq;
    size_t vseq_len, aseq_len;
    uint32_t width, height;
    double fps; /* 0: unknown */
} live_tracks;

/* A muxer for these tracks, or NULL (unsupported codecs, no memory). */
live_mux *live_mux_new(int kind, const live_tracks *t);
/* One FLV audio (8) or video (9) payload at ts: the container bytes it
 * produced as a new slice in *out (NULL when none yet).  0 or < 0. */
int live_mux_frame(live_mux *m, uint8_t type, uint32_t ts, const uint8_t *data, size_t len,
                   ax_slice **out);
/* fMP4: the init segment (the muxer's; valid until live_mux_free), and
 * the MIME type with the codecs for MediaSource.addSourceBuffer(). */
const uint8_t *live_mux_init(const live_mux *m, size_t *len);
const char *live_mux_mime(const live_mux *m);
void live_mux_free(live_mux *m);

#endif
