/* live.h: the live relay of `axon serve` (docs/streaming.md): the streams
 * being published, their GOP caches, and the viewers they feed.
 *
 * A publisher (an RTMP client, gw_rtmp.c) opens a stream by name and
 * pushes its messages (audio, video, script data) as they arrive; each is
 * turned once into the bytes every output format needs (an FLV tag, RTMP
 * chunks) and those slices are queued on every viewer of that format, so
 * a thousand viewers cost a thousand references, not a thousand copies.
 *
 * A new viewer starts at once from the last keyframe: the stream keeps the
 * sequence headers (AVC/HEVC decoder configuration, AAC config, metadata)
 * and every frame since the last video keyframe (bounded; LIVE_GOP_BYTES).
 *
 * Viewers never slow the publisher: delivery only queues slices.  A viewer
 * whose queue passes LIVE_SKIP_BYTES stops getting frames and waits for
 * the next keyframe with its queue drained below LIVE_RESUME_BYTES, then
 * goes on from there (it skips a GOP instead of growing a queue).
 *
 * Frames reach a loop's viewers in batches, a viewer's batch in one send
 * (its connection corked): the frames of one loop iteration go together
 * at its end, and the audio of a stream with video waits for the next
 * video frame (at most LIVE_AUDIO_HOLD_MS), so a viewer costs a send per
 * video frame, not one per message.  Video is never held.
 *
 * Threads: the registry and each stream's cache are under one lock; the
 * viewers of a stream are grouped by loop, and a group is touched only on
 * its own loop (frames reach other loops with ax_loop_post).  Streams are
 * refcounted: the publisher, each viewer and each posted delivery hold a
 * reference. */
#ifndef AXON_HUB_LIVE_H
#define AXON_HUB_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/axon.h>

#define LIVE_NAME_MAX 64
#define LIVE_GOP_BYTES (16u << 20)    /* frames kept since the last keyframe */
#define LIVE_SKIP_BYTES (1u << 20)    /* a viewer's queue above this: skip to a keyframe */
#define LIVE_RESUME_BYTES (64u << 10) /* ... and resume once below this */
#define LIVE_RTMP_CHUNK 4096u         /* the chunk size sent to RTMP viewers */
#define LIVE_RTMP_SID 1u              /* the message stream every RTMP viewer plays on */
#define LIVE_BATCH_MAX 32             /* frames a loop's viewers are handed in one batch */
#define LIVE_AUDIO_HOLD_MS 40         /* audio of a stream with video waits at most this */

#define LIVE_HLS_SEGS 6        /* HLS segments kept (the playlist lists them all) */
#define LIVE_HLS_MIN_MS 500    /* a segment ends at a keyframe at least this far on */
#define LIVE_HLS_AUDIO_MS 2000 /* audio only: segments this long */

/* Output formats: which slice of a frame a viewer takes (MPEG-TS: the
 * bytes FFmpeg's muxer wrote for the frame, maybe none; fMP4: the
 * frame's fragment as one binary WebSocket message, framed once, sent
 * with ax_ws_send_shared(); live_mux.h). */
enum { LIVE_FLV = 0, LIVE_RTMP = 1, LIVE_TS = 2, LIVE_FMP4 = 3, LIVE_NFORMATS };

typedef struct live_stream live_stream;
typedef struct live_viewer live_viewer;

/* A viewer's side: queue a slice (0, 1 above its watermark, < 0 gone),
 * how many bytes wait in its queue, the end of the stream (the publisher
 * left: end the response, close the connection), and its connection.
 * Each runs on the viewer's loop. */
typedef struct live_viewer_ops {
    int (*write)(void *ud, ax_slice *s);
    int (*write_copy)(void *ud, const void *data, size_t len); /* headers made for it */
    size_t (*queued)(void *ud);
    void (*ended)(void *ud);
    ax_conn *(*conn)(void *ud); /* its connection, corked while a batch is written */
} live_viewer_ops;

/* Streams as hub topics: with a hub set (the gateways set the server's
 * when they start), a stream says on the topic live/NAME, as sender
 * "live", when it starts (its first frame, with what a viewer needs to
 * know) and when it stops:
 *   {"event":"start","name":N,"page":"/live/N","chat":"chat/live/N",
 *    "width":W,"height":H,"video":B,"audio":B,"mime":M}
 *   {"event":"stop","name":N,"frames":F,"seconds":S}
 * The chat room beside a stream is the topic chat/live/NAME (the page
 * /live/NAME shows it). */
struct hub;
void live_set_hub(struct hub *h);

/* Is `name` a stream name (1 to LIVE_NAME_MAX of [A-Za-z0-9_.-])? */
bool live_name_valid(const char *name);

/* Publish: the stream `name`, or NULL when it is being published already
 * (AX_EADDRINUSE) or memory ran out (AX_ENOMEM) in *err. */
live_stream *live_publish(const char *name, ax_loop *loop, int *err);
/* One message from the publisher: type 8 audio, 9 video, 18 data (an
 * onMetaData, with or without "@setDataFrame" before it); other types are
 * ignored.  Runs on the publisher's loop. */
void live_push(live_stream *st, uint8_t type, uint32_t ts, const uint8_t *data, size_t len);
/* The publisher is gone: viewers get ended(), the name is free again. */
void live_unpublish(live_stream *st);

/* Watch `name` on `loop` in `format`: the viewer is sent the headers and
 * the cached GOP at once (copies, through write_copy; then shared slices;
 * fMP4: the init segment through write_copy, the GOP through write).
 * NULL when no such stream is live (AX_ENOENT) or out of memory. */
live_viewer *live_watch(const char *name, ax_loop *loop, int format, const live_viewer_ops *ops,
                        void *ud, int *err);
/* Stop watching, on the viewer's loop (inside its ended() too). */
void live_viewer_free(live_viewer *v);
/* Frames this viewer skipped (slow) so far. */
uint64_t live_viewer_skipped(const live_viewer *v);

/* A loop's viewers are gone for good (its gateway is freed): no more
 * deliveries are posted to it. */
void live_loop_gone(ax_loop *loop);

/* Low-Latency HLS (docs/streaming.md): fMP4 (CMAF) segments made of
 * partial segments of about LIVE_LL_PART_MS, cut from the fragmented MP4
 * the WebSocket viewers get (a fragment per frame, so a part is whole
 * frames; no second muxer).  A segment starts at a video keyframe like the
 * MPEG-TS ones; a part starting at a keyframe is INDEPENDENT.  Parts are
 * numbered across the stream ("p-K.m4s"), so the preload hint names the
 * next part whether or not it will start a new segment. */
#define LIVE_LL_PART_MS 200   /* a part ends at the first frame this far on */
#define LIVE_LL_TARGET_MS 250 /* PART-TARGET: parts of >= 20 fps video and AAC fit */
#define LIVE_LL_SEG_PARTS 256 /* a segment with this many parts ends at the next part */
#define LIVE_LL_LISTED_SEGS 2 /* complete segments whose parts the playlist lists */

/* Where a stream's LL-HLS stands: the last complete segment (msn, -1
 * none), the segment being made (open_msn) and its parts so far, the
 * next part's number, the target duration.  0, or AX_ENOENT. */
typedef struct live_ll_pos {
    int64_t last_msn;
    uint32_t last_parts; /* the last complete segment's parts */
    uint64_t open_msn;
    uint32_t open_parts;
    uint64_t next_part;
    uint64_t oldest_part; /* the first part still kept */
    uint32_t target_ms;   /* EXT-X-TARGETDURATION, ms (whole seconds) */
} live_ll_pos;
int live_ll_pos_of(const char *name, live_ll_pos *out);
/* A count that grows whenever any stream ends a part (held requests look
 * again only then). */
uint64_t live_ll_changes(void);
/* The LL-HLS playlist (ll.m3u8) into buf: its length, AX_ENOENT (no
 * whole segment yet) or AX_ENOMEM (buf too small). */
int live_ll_playlist(const char *name, char *buf, size_t cap);
/* Part K: a new reference, or NULL. */
ax_slice *live_ll_part(const char *name, uint64_t k);
/* Segment msn: up to max references to its parts, in order (the body is
 * their concatenation); 0 when not kept or not complete. */
size_t live_ll_segment(const char *name, uint64_t msn, ax_slice **parts, size_t max);
/* The fMP4 init segment (EXT-X-MAP) as a new slice, or NULL. */
ax_slice *live_ll_init(const char *name);

/* HLS: the playlist of `name` into buf (at most cap bytes), segment
 * URIs "seg-N.ts": its length, or AX_ENOENT (no such stream, or no whole
 * segment yet). */
int live_hls_playlist(const char *name, char *buf, size_t cap);
/* Segment N of `name`: a new reference (the caller unrefs), or NULL. */
ax_slice *live_hls_segment(const char *name, uint64_t n);

/* What /live/NAME/stats and the list show. */
typedef struct live_info {
    char name[LIVE_NAME_MAX + 1];
    bool video, audio;
    uint8_t video_codec, audio_codec; /* FLV codec ids (7 AVC, 12 HEVC; 10 AAC, 13 Opus) */
    uint32_t width, height;           /* from onMetaData, 0 unknown */
    double fps;
    uint64_t frames, bytes, keyframes, viewers, skipped;
    uint64_t since_ms; /* loop ms when published */
    uint32_t last_ts;  /* the last frame's timestamp */
    size_t gop_frames, gop_bytes;
    uint64_t hls_segments; /* made so far */
    char mime[96];         /* fMP4's type and codecs, for MediaSource; "" not yet */
    /* Video keyframes from their arrival (read from the publisher) to their
     * hand-over to a viewer's connection (to the kernel when nothing was
     * queued before them), one sample per keyframe and viewer: how many, the
     * median, the 99th percentile (within 4%) and the largest, microseconds. */
    uint64_t lat_n, lat_p50_us, lat_p99_us, lat_max_us;
} live_info;
/* Can the stream go out as FLV and RTMP?  Not with HEVC or Opus: FLV
 * (and RTMP, which carries FLV's tags) has no codec id for either; the
 * relay's own forms of them (video codec 12 with an hvcC, sound format 13
 * with an OpusHead, as live_tsin.c makes them; 12 is also what some
 * encoders send over RTMP) are not sent to viewers that would take them
 * for legacy FLV.  Those streams go out as MPEG-TS, HLS and fMP4 only:
 * their frames have no FLV or RTMP bytes, and the gateways refuse those
 * viewers with a reason (HTTP 415, NetStream.Play.Failed). */
bool live_info_flv(const live_info *i);

/* 0 with *out, or AX_ENOENT. */
int live_info_of(const char *name, live_info *out);
/* Each live stream's info, at most n; returns how many. */
size_t live_list(live_info *out, size_t n);

#endif
