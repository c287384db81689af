/* live.c: the live relay: streams, GOP caches, viewers (live.h says how). */
#include "live.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>
#include <axon/ws.h>

#include "hub.h"
#include "live_mux.h"
#include "live_rec.h"
#include "proto/rtmp/rtmp.h"

/* One message as every format sends it, made once; shared by reference. */
typedef struct live_frame {
    int refs; /* atomic */
    uint64_t seq;
    uint8_t type;
    uint32_t ts;
    bool key;       /* a place a viewer may start from */
    bool hold;      /* audio of a stream with video: may wait for the next video frame */
    uint64_t in_us; /* when it arrived (monotonic), for the latency figures */
    ax_slice *out[LIVE_NFORMATS];
} live_frame;

/* Ingest-to-delivery latency of video keyframes, one sample per viewer a
 * keyframe is handed to: log-linear buckets (16 per power of two, about
 * 4% wide) of microseconds, added to by the viewers' loops. */
#define LAT_SUB 16
#define LAT_BUCKETS (36 * LAT_SUB)
typedef struct live_lat {
    uint64_t n, max_us;
    uint64_t bucket[LAT_BUCKETS];
} live_lat;

typedef struct live_group live_group;

struct live_viewer {
    live_viewer *prev, *next;
    live_group *grp;
    live_stream *st;
    int format;
    const live_viewer_ops *ops;
    void *ud;
    uint64_t next_seq; /* frames before it were sent with the cache */
    bool waiting_key, ended;
    uint64_t skipped;
};

/* The viewers of one stream on one loop: touched on that loop only.
 * Frames wait in `batch` until the end of the loop iteration (a flush is
 * deferred, holding a stream reference) or, audio, until the next video
 * frame or the hold timer. */
struct live_group {
    live_group *next;
    live_stream *st;
    ax_loop *loop;
    bool dead;       /* its loop is going away: post nothing more */
    size_t nviewers; /* under the lock */
    live_viewer *viewers;
    live_frame *batch[LIVE_BATCH_MAX];
    int nbatch;
    bool flush_due; /* a flush is deferred to the end of the iteration */
    ax_timer *hold; /* flushes held audio; made on the group's loop */
};

/* A header the stream keeps for new viewers: its payload, re-sent with
 * the timestamp the viewer starts at. */
typedef struct live_hdr {
    uint8_t *data;
    size_t len;
} live_hdr;

typedef struct live_seg {
    uint64_t n;
    uint32_t dur_ms;
    ax_slice *data;
} live_seg;

/* LL-HLS: a part (fMP4 fragments of whole frames) and a segment of parts. */
typedef struct ll_part {
    ax_slice *data;
    uint32_t dur_ms;
    bool indep; /* starts at a video keyframe (or audio only) */
} ll_part;

typedef struct ll_seg {
    uint64_t msn, first_k; /* its number, its first part's */
    uint32_t dur_ms, nparts, cap;
    ll_part *parts;
} ll_seg;

struct live_stream {
    live_stream *next; /* in the registry while published */
    int refs;          /* under the lock */
    char name[LIVE_NAME_MAX + 1];
    ax_loop *loop; /* the publisher's */
    bool live;
    live_hdr meta, vseq, aseq;
    live_frame **gop;
    size_t ngop, gop_cap, gop_bytes;
    uint64_t seq;
    live_group *groups;
    live_info info;
    live_lat lat; /* atomics */
    /* MPEG-TS and HLS (the muxer is the publisher's loop's alone) */
    live_mux *ts, *mp4;
    live_rec *rec;  /* recording (--record), the publisher's loop's */
    bool announced; /* "start" said on live/NAME */
    bool ts_tried;
    uint8_t *seg; /* the segment being made */
    size_t seg_len, seg_cap;
    uint32_t seg_start; /* its first timestamp */
    bool seg_open;
    live_seg segs[LIVE_HLS_SEGS]; /* oldest first */
    int nsegs;
    uint64_t next_seg;
    /* LL-HLS (under the lock): the kept segments, oldest first, the last
     * one being made while ll_open; the part being made in pbuf */
    ll_seg ll[LIVE_HLS_SEGS + 1];
    int nll;
    bool ll_open, popen, pindep;
    uint32_t ll_seg_start, pstart, ll_last_ts;
    uint64_t ll_next_msn, ll_next_k;
    uint8_t *pbuf;
    size_t plen, pcap;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ll_changes;  /* parts made, every stream (atomic) */
static live_stream *streams; /* published now */
static hub *the_hub;         /* events on live/NAME (atomic) */

void live_set_hub(hub *h)
{
    __atomic_store_n(&the_hub, h, __ATOMIC_RELEASE);
}

/* The start or stop event on live/NAME; on the publisher's loop, without
 * the lock. */
static void announce(live_stream *st, bool start)
{
    hub *h = __atomic_load_n(&the_hub, __ATOMIC_ACQUIRE);
    if (!h || start == st->announced) return;
    st->announced = start;
    live_info i;
    char topic[LIVE_NAME_MAX + 8], b[512];
    pthread_mutex_lock(&lock);
    i = st->info;
    pthread_mutex_unlock(&lock);
    snprintf(topic, sizeof topic, "live/%s", st->name);
    int n;
    if (start)
        n = snprintf(b, sizeof b,
                     "{\"event\":\"start\",\"name\":\"%s\",\"page\":\"/live/%s\","
                     "\"chat\":\"chat/live/%s\",\"width\":%u,\"height\":%u,\"video\":%s,"
                     "\"audio\":%s,\"mime\":\"",
                     st->name, st->name, st->name, i.width, i.height, i.video ? "true" : "false",
                     i.audio ? "true" : "false");
    else
        n = snprintf(b, sizeof b,
                     "{\"event\":\"stop\",\"name\":\"%s\",\"frames\":%llu,\"seconds\":%.1f}",
                     st->name, (unsigned long long)i.frames,
                     (double)(ax_loop_now(st->loop) - i.since_ms) / 1000.0);
    for (const char *m = i.mime; start && *m && n > 0 && (size_t)n < sizeof b - 4; m++) {
        if (*m == '"' || *m == '\\') b[n++] = '\\';
        b[n++] = *m;
    }
    if (start && n > 0 && (size_t)n < sizeof b - 2) b[n++] = '"', b[n++] = '}';
    int err = 0;
    if (n > 0 && (size_t)n < sizeof b &&
        !hub_publish_via(h, HUB_VIA_LIVE, NULL, topic, "live", b, (size_t)n, NULL, &err))
        ax_log(AX_LOG_DEBUG, "live: %s: no event on %s: %s", st->name, topic, ax_strerror(err));
}

bool live_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > LIVE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return name[0] != '.';
}

static live_stream *find(const char *name)
{
    for (live_stream *s = streams; s; s = s->next)
        if (strcmp(s->name, name) == 0) return s;
    return NULL;
}

/* ---- latency ------------------------------------------------------------------------ */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static unsigned lat_bucket(uint64_t us)
{
    if (us < LAT_SUB) return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us); /* us >= 2^e, e >= 4 */
    unsigned b = (e - 3) * LAT_SUB + (unsigned)((us >> (e - 4)) & (LAT_SUB - 1));
    return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

/* The smallest value of bucket b (the inverse of lat_bucket). */
static uint64_t lat_value(unsigned b)
{
    if (b < LAT_SUB) return b;
    unsigned e = b / LAT_SUB + 3;
    return ((uint64_t)1 << e) | ((uint64_t)(b % LAT_SUB) << (e - 4));
}

static void lat_add(live_lat *l, uint64_t us)
{
    __atomic_add_fetch(&l->bucket[lat_bucket(us)], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&l->n, 1, __ATOMIC_RELAXED);
    uint64_t m = __atomic_load_n(&l->max_us, __ATOMIC_RELAXED);
    while (us > m && !__atomic_compare_exchange_n(&l->max_us, &m, us, true, __ATOMIC_RELAXED,
                                                  __ATOMIC_RELAXED)) {
    }
}

/* The value below which a fraction q of the samples lie (bucket's lower end). */
static uint64_t lat_quantile(const uint64_t *bucket, uint64_t n, double q)
{
    uint64_t want = (uint64_t)(q * (double)n), seen = 0;
    if (want >= n) want = n - 1;
    for (unsigned b = 0; b < LAT_BUCKETS; b++) {
        seen += bucket[b];
        if (seen > want) return lat_value(b);
    }
    return 0;
}

static void lat_info(live_lat *l, live_info *out)
{
    uint64_t copy[LAT_BUCKETS], n = 0;
    for (unsigned b = 0; b < LAT_BUCKETS; b++)
        n += copy[b] = __atomic_load_n(&l->bucket[b], __ATOMIC_RELAXED);
    out->lat_n = n;
    out->lat_max_us = __atomic_load_n(&l->max_us, __ATOMIC_RELAXED);
    out->lat_p50_us = n ? lat_quantile(copy, n, 0.50) : 0;
    out->lat_p99_us = n ? lat_quantile(copy, n, 0.99) : 0;
}

/* ---- frames --------------------------------------------------------------------------- */

static void frame_unref(live_frame *f)
{
    if (!f || __atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    for (int i = 0; i < LIVE_NFORMATS; i++)
        ax_slice_unref(f->out[i]);
    ax_free(f);
}

static live_frame *frame_ref(live_frame *f)
{
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

/* An FLV tag with its PreviousTagSize. */
static ax_slice *flv_tag(uint8_t type, uint32_t ts, const uint8_t *data, size_t len)
{
    ax_slice *s = ax_slice_new(11 + len + 4);
    if (!s) return NULL;
    uint8_t *p = ax_slice_data(s);
    p[0] = type;
    p[1] = (uint8_t)(len >> 16), p[2] = (uint8_t)(len >> 8), p[3] = (uint8_t)len;
    p[4] = (uint8_t)(ts >> 16), p[5] = (uint8_t)(ts >> 8), p[6] = (uint8_t)ts;
    p[7] = (uint8_t)(ts >> 24);
    p[8] = p[9] = p[10] = 0;
    if (len) memcpy(p + 11, data, len);
    uint32_t prev = (uint32_t)(11 + len);
    uint8_t *t = p + 11 + len;
    t[0] = (uint8_t)(prev >> 24), t[1] = (uint8_t)(prev >> 16), t[2] = (uint8_t)(prev >> 8);
    t[3] = (uint8_t)prev;
    return s;
}

/* The message as RTMP chunks on the viewers' stream. */
static ax_slice *rtmp_msg(uint8_t type, uint32_t ts, const uint8_t *data, size_t len)
{
    ax_rtmp_hdr h = {.csid = type == 8   ? 6
                             : type == 9 ? 7
                                         : 5,
                     .ts = ts,
                     .len = (uint32_t)len,
                     .type = type,
                     .sid = LIVE_RTMP_SID};
    size_t n = ax_rtmp_chunk_size_of(&h, LIVE_RTMP_CHUNK);
    ax_slice *s = ax_slice_new(n);
    if (!s) return NULL;
    if (ax_rtmp_chunk_encode(&h, data, LIVE_RTMP_CHUNK, ax_slice_data(s), n) < 0) {
        ax_slice_unref(s);
        return NULL;
    }
    return s;
}

static ax_slice *encode(int format, uint8_t type, uint32_t ts, const uint8_t *data, size_t len)
{
    if (format >= LIVE_TS) return NULL;
    return format == LIVE_FLV ? flv_tag(type, ts, data, len) : rtmp_msg(type, ts, data, len);
}

/* flv: make the FLV and RTMP bytes too (live_info_flv). */
static live_frame *frame_new(uint8_t type, uint32_t ts, bool key, const uint8_t *data, size_t len,
                             bool flv)
{
    live_frame *f = ax_calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->refs = 1;
    f->type = type;
    f->ts = ts;
    f->key = key;
    f->in_us = now_us();
    for (int i = 0; flv && i < LIVE_TS; i++) {
        if (!(f->out[i] = encode(i, type, ts, data, len))) {
            frame_unref(f);
            return NULL;
        }
    }
    return f;
}

/* ---- streams -------------------------------------------------------------------------- */

static void hdr_set(live_hdr *h, const uint8_t *data, size_t len)
{
    uint8_t *d = ax_malloc(len ? len : 1);
    if (!d) return;
    memcpy(d, data, len);
    ax_free(h->data);
    h->data = d;
    h->len = len;
}

static void gop_clear(live_stream *st)
{
    for (size_t i = 0; i < st->ngop; i++)
        frame_unref(st->gop[i]);
    st->ngop = st->gop_bytes = 0;
}

static void ll_seg_free(ll_seg *s)
{
    for (uint32_t i = 0; i < s->nparts; i++)
        ax_slice_unref(s->parts[i].data);
    ax_free(s->parts);
}

/* Under the lock. */
static void stream_unref_locked(live_stream *st)
{
    if (--st->refs > 0) return;
    gop_clear(st);
    ax_free(st->gop);
    live_mux_free(st->ts);
    live_mux_free(st->mp4);
    ax_free(st->seg);
    for (int i = 0; i < st->nsegs; i++)
        ax_slice_unref(st->segs[i].data);
    for (int i = 0; i < st->nll; i++)
        ll_seg_free(&st->ll[i]);
    ax_free(st->pbuf);
    ax_free(st->meta.data);
    ax_free(st->vseq.data);
    ax_free(st->aseq.data);
    while (st->groups) {
        live_group *g = st->groups;
        st->groups = g->next;
        ax_free(g);
    }
    ax_free(st);
}

static void stream_unref(live_stream *st)
{
    pthread_mutex_lock(&lock);
    stream_unref_locked(st);
    pthread_mutex_unlock(&lock);
}

live_stream *live_publish(const char *name, ax_loop *loop, int *err)
{
    pthread_mutex_lock(&lock);
    live_stream *st = find(name) ? NULL : ax_calloc(1, sizeof(*st));
    if (st) {
        snprintf(st->name, sizeof st->name, "%s", name);
        st->refs = 1;
        st->loop = loop;
        st->live = true;
        st->next = streams;
        streams = st;
        snprintf(st->info.name, sizeof st->info.name, "%s", name);
        st->info.since_ms = ax_loop_now(loop);
    } else {
        *err = find(name) ? AX_EADDRINUSE : AX_ENOMEM;
    }
    pthread_mutex_unlock(&lock);
    return st;
}

/* ---- delivery ------------------------------------------------------------------------- */

static void viewer_end(live_viewer *v)
{
    if (v->ended) return;
    v->ended = true;
    v->ops->ended(v->ud);
}

static void skip(live_viewer *v)
{
    v->skipped++;
    __atomic_add_fetch(&v->st->info.skipped, 1, __ATOMIC_RELAXED);
}

/* One frame to one viewer, or a skip when it is behind. */
static void deliver_one(live_viewer *v, live_frame *f)
{
    if (v->ended || f->seq < v->next_seq) return;
    size_t q = v->ops->queued(v->ud);
    if (v->waiting_key) {
        if (!f->key || q > LIVE_RESUME_BYTES) {
            skip(v);
            return;
        }
        v->waiting_key = false;
    } else if (q > LIVE_SKIP_BYTES) {
        v->waiting_key = true;
        skip(v);
        return;
    }
    if (!f->out[v->format]) return;
    if (v->ops->write(v->ud, f->out[v->format]) < 0)
        v->waiting_key = true;
    else if (f->key && f->type == 9)
        lat_add(&v->st->lat, now_us() - f->in_us);
}

static void batch_drop(live_group *g)
{
    for (int i = 0; i < g->nbatch; i++)
        frame_unref(g->batch[i]);
    g->nbatch = 0;
}

/* The group's batch to each of its viewers, corked: one send each. */
static void flush(live_group *g)
{
    if (g->hold) ax_timer_stop(g->hold);
    if (!g->nbatch) return;
    for (live_viewer *v = g->viewers; v; v = v->next) {
        if (v->ended) continue;
        ax_conn *c = v->ops->conn(v->ud);
        ax_conn_cork(c);
        for (int i = 0; i < g->nbatch; i++)
            deliver_one(v, g->batch[i]);
        if (ax_conn_uncork(c) < 0) v->waiting_key = true;
    }
    batch_drop(g);
}

static void flush_deferred(ax_loop *loop, void *arg)
{
    live_group *g = arg;
    live_stream *st = g->st;
    (void)loop;
    g->flush_due = false;
    flush(g);
    stream_unref(st);
}

/* Flush at the end of this loop iteration (the frames of one read of the
 * publisher go together). */
static void flush_soon(live_group *g)
{
    if (g->flush_due) return;
    pthread_mutex_lock(&lock);
    g->st->refs++;
    pthread_mutex_unlock(&lock);
    if (ax_loop_defer(g->loop, flush_deferred, g) != 0) {
        flush(g);
        stream_unref(g->st);
        return;
    }
    g->flush_due = true;
}

static void hold_expired(ax_timer *t, void *ud)
{
    (void)t;
    flush(ud);
}

/* Held audio waits for the next video frame, at most LIVE_AUDIO_HOLD_MS. */
static void hold(live_group *g)
{
    if (g->flush_due) return; /* goes with the flush already due */
    if (!g->hold && !(g->hold = ax_timer_new(g->loop, hold_expired, g))) {
        flush_soon(g);
        return;
    }
    if (!ax_timer_active(g->hold) && ax_timer_start(g->hold, LIVE_AUDIO_HOLD_MS, 0) != 0)
        flush_soon(g);
}

/* A frame (NULL: the end) to the viewers of one group, on its loop: into
 * the batch.  A viewer may free itself inside ended(): take the next one
 * first. */
static void deliver(live_group *g, live_frame *f)
{
    if (!f) {
        flush(g);
        for (live_viewer *v = g->viewers, *next; v; v = next) {
            next = v->next;
            viewer_end(v);
        }
        return;
    }
    if (!g->viewers) return; /* (a post from before the last one left) */
    if (g->nbatch == LIVE_BATCH_MAX) flush(g);
    g->batch[g->nbatch++] = frame_ref(f);
    if (f->hold)
        hold(g);
    else
        flush_soon(g);
}

typedef struct live_job {
    live_stream *st;
    live_group *g;
    live_frame *f;
} live_job;

static void run_job(ax_loop *loop, void *arg)
{
    live_job *j = arg;
    (void)loop;
    deliver(j->g, j->f);
    if (j->f) frame_unref(j->f);
    stream_unref(j->st);
    ax_free(j);
}

static void drop_job(void *arg)
{
    live_job *j = arg;
    if (j->f) frame_unref(j->f);
    stream_unref(j->st);
    ax_free(j);
}

/* To every group: this loop's at once (after the lock), the others by a
 * post.  Called without the lock. */
static void fan_out(live_stream *st, live_frame *f)
{
    live_group *mine = NULL;
    pthread_mutex_lock(&lock);
    for (live_group *g = st->groups; g; g = g->next) {
        if (g->dead || !g->nviewers) continue;
        if (g->loop == st->loop) {
            mine = g;
            continue;
        }
        live_job *j = ax_malloc(sizeof(*j));
        if (!j) continue;
        *j = (live_job){st, g, f ? frame_ref(f) : NULL};
        st->refs++;
        if (ax_loop_post_or(g->loop, run_job, drop_job, j) != 0) {
            st->refs--;
            if (f) frame_unref(f);
            ax_free(j);
        }
    }
    pthread_mutex_unlock(&lock);
    if (mine) deliver(mine, f);
}

static bool is_seq_header(uint8_t type, const uint8_t *d, size_t len)
{
    if (len < 2) return false;
    if (type == 9) return (d[0] & 0x0f) == 7 || (d[0] & 0x0f) == 12 ? d[1] == 0 : false;
    if (type == 8) return ((d[0] >> 4) == 10 || (d[0] >> 4) == 13) && d[1] == 0;
    return false;
}

/* onMetaData, without "@setDataFrame" before it: what players expect. */
static void set_meta(live_stream *st, const uint8_t *d, size_t len)
{
    size_t off = 0;
    ax_amf0_val v;
    if (ax_amf0_read(d, len, &off, &v) != 0 || v.type != AX_AMF0_STRING) return;
    if (v.len == 13 && memcmp(v.str, "@setDataFrame", 13) == 0) {
        d += off, len -= off;
        off = 0;
        if (ax_amf0_read(d, len, &off, &v) != 0 || v.type != AX_AMF0_STRING) return;
    }
    if (v.len != 10 || memcmp(v.str, "onMetaData", 10) != 0) return;
    static const char *keys[] = {"width", "height", "framerate"};
    for (int i = 0; i < 3; i++) {
        size_t o = off;
        ax_amf0_val m;
        if (ax_amf0_find(d, len, &o, keys[i], &m) != 1 || m.type != AX_AMF0_NUMBER) continue;
        if (m.num < 0 || m.num > 100000) continue;
        if (i == 0) st->info.width = (uint32_t)m.num;
        if (i == 1) st->info.height = (uint32_t)m.num;
        if (i == 2) st->info.fps = m.num;
    }
    hdr_set(&st->meta, d, len);
}

/* The frame as MPEG-TS, by the stream's muxer, made at the first frame
 * from the sequence headers seen by then; its fMP4 fragment returned
 * (the caller unrefs; NULL: none) for LL-HLS.  On the publisher's loop. */
static ax_slice *mux_ts(live_stream *st, live_frame *f, const uint8_t *data, size_t len)
{
    if (!st->ts_tried) {
        st->ts_tried = true;
        live_tracks t = {.vseq = st->vseq.data,
                         .aseq = st->aseq.data,
                         .vseq_len = st->vseq.len,
                         .aseq_len = st->aseq.len,
                         .width = st->info.width,
                         .height = st->info.height,
                         .fps = st->info.fps};
        st->ts = live_mux_new(LIVE_MUX_TS, &t);
        if (!st->ts) ax_log(AX_LOG_WARN, "live: %s: no MPEG-TS or HLS (codecs)", st->name);
        live_mux *mp4 = live_mux_new(LIVE_MUX_FMP4, &t);
        if (!mp4) ax_log(AX_LOG_WARN, "live: %s: no fragmented MP4 (codecs)", st->name);
        pthread_mutex_lock(&lock); /* new viewers read the init segment and type */
        st->mp4 = mp4;
        if (mp4) snprintf(st->info.mime, sizeof st->info.mime, "%s", live_mux_mime(mp4));
        pthread_mutex_unlock(&lock);
        if (mp4) {
            size_t n;
            const uint8_t *init = live_mux_init(mp4, &n);
            st->rec = live_rec_open(st->name, init, n);
        }
        announce(st, true);
    }
    if (st->ts) (void)live_mux_frame(st->ts, f->type, f->ts, data, len, &f->out[LIVE_TS]);
    ax_slice *frag = NULL;
    if (st->mp4 && live_mux_frame(st->mp4, f->type, f->ts, data, len, &frag) == 0 && frag) {
        live_rec_write(st->rec, frag, f->key);
        f->out[LIVE_FMP4] = ax_ws_shared_new(ax_slice_data(frag), ax_slice_len(frag), true);
    }
    return frag;
}

/* Under the lock: the frame's MPEG-TS bytes into the HLS segment being
 * made, which ends (and joins the list) at a keyframe far enough on. */
static void segment(live_stream *st, live_frame *f)
{
    ax_slice *b = f->out[LIVE_TS];
    uint32_t dur = f->ts - st->seg_start;
    bool cut = st->info.video ? f->type == 9 && f->key && dur >= LIVE_HLS_MIN_MS
                              : dur >= LIVE_HLS_AUDIO_MS;
    if (st->seg_open && cut && st->seg_len) {
        ax_slice *data = ax_slice_copy(st->seg, st->seg_len);
        if (data) {
            if (st->nsegs == LIVE_HLS_SEGS) {
                ax_slice_unref(st->segs[0].data);
                memmove(st->segs, st->segs + 1, (LIVE_HLS_SEGS - 1) * sizeof(*st->segs));
                st->nsegs--;
            }
            st->segs[st->nsegs++] = (live_seg){st->next_seg++, dur, data};
            st->info.hls_segments++;
        }
        st->seg_open = false;
        st->seg_len = 0;
    }
    if (!st->seg_open) {
        if (st->info.video && !(f->type == 9 && f->key)) return; /* from a keyframe only */
        st->seg_open = true;
        st->seg_start = f->ts;
    }
    if (!b) return;
    size_t n = ax_slice_len(b);
    if (st->seg_len + n > LIVE_GOP_BYTES) { /* too long: start again at a keyframe */
        st->seg_open = false;
        st->seg_len = 0;
        return;
    }
    if (st->seg_len + n > st->seg_cap) {
        size_t cap = st->seg_cap ? st->seg_cap : 256 * 1024;
        while (cap < st->seg_len + n)
            cap *= 2;
        uint8_t *g = ax_realloc(st->seg, cap);
        if (!g) return;
        st->seg = g;
        st->seg_cap = cap;
    }
    memcpy(st->seg + st->seg_len, ax_slice_data(b), n);
    st->seg_len += n;
}

/* ---- LL-HLS --------------------------------------------------------------------------- */

/* Under the lock: the part being made, ended by a frame at ts, joins the
 * open segment (an empty one is dropped: no frame bytes yet). */
static void ll_end_part(live_stream *st, uint32_t ts)
{
    if (!st->popen) return;
    st->popen = false;
    ll_seg *s = &st->ll[st->nll - 1];
    if (!st->plen) return;
    if (s->nparts == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        ll_part *p = ax_realloc(s->parts, cap * sizeof(*p));
        if (!p) return;
        s->parts = p;
        s->cap = cap;
    }
    ax_slice *d = ax_slice_copy(st->pbuf, st->plen);
    st->plen = 0;
    if (!d) return;
    int32_t dur = (int32_t)(ts - st->pstart); /* audio may be a little behind video */
    s->parts[s->nparts++] = (ll_part){d, dur > 0 ? (uint32_t)dur : 0, st->pindep};
    s->dur_ms += dur > 0 ? (uint32_t)dur : 0;
    st->ll_next_k++;
    __atomic_add_fetch(&ll_changes, 1, __ATOMIC_RELEASE);
}

/* Under the lock: the open segment is complete (an empty one is dropped);
 * the oldest goes when more than LIVE_HLS_SEGS are complete. */
static void ll_end_seg(live_stream *st)
{
    st->ll_open = false;
    if (!st->ll[st->nll - 1].nparts) {
        st->nll--;
        st->ll_next_msn--;
        return;
    }
    if (st->nll > LIVE_HLS_SEGS) {
        ll_seg_free(&st->ll[0]);
        memmove(st->ll, st->ll + 1, (size_t)(st->nll - 1) * sizeof(*st->ll));
        st->nll--;
    }
    __atomic_add_fetch(&ll_changes, 1, __ATOMIC_RELEASE);
}

static bool ll_append(live_stream *st, ax_slice *frag)
{
    size_t n = ax_slice_len(frag);
    if (st->plen + n > st->pcap) {
        size_t cap = st->pcap ? st->pcap : 64 * 1024;
        while (cap < st->plen + n)
            cap *= 2;
        uint8_t *b = ax_realloc(st->pbuf, cap);
        if (!b) return false;
        st->pbuf = b;
        st->pcap = cap;
    }
    memcpy(st->pbuf + st->plen, ax_slice_data(frag), n);
    st->plen += n;
    return true;
}

/* Under the lock: the frame's fMP4 fragment into the part being made.  A
 * segment ends where an MPEG-TS one would (segment()); a part at the first
 * frame LIVE_LL_PART_MS after its start, or earlier when the next frame
 * (as far on as this one from the last) would take it past
 * LIVE_LL_TARGET_MS (sparse video), or when it grew too big. */
static void ll_add(live_stream *st, live_frame *f, ax_slice *frag)
{
    bool vkey = f->type == 9 && f->key, video = st->info.video, forced = false;
    if (st->ll_open) {
        int32_t seg = (int32_t)(f->ts - st->ll_seg_start), part = (int32_t)(f->ts - st->pstart);
        int32_t gap = (int32_t)(f->ts - st->ll_last_ts);
        forced = st->ll[st->nll - 1].nparts >= LIVE_LL_SEG_PARTS ||
                 (frag && st->plen + ax_slice_len(frag) > LIVE_GOP_BYTES);
        bool cut = video ? vkey && seg >= LIVE_HLS_MIN_MS : seg >= LIVE_HLS_AUDIO_MS;
        if (cut || forced) {
            ll_end_part(st, f->ts);
            ll_end_seg(st);
        } else if (st->popen && part > 0 &&
                   (part >= LIVE_LL_PART_MS || part + (gap > 0 ? gap : 0) > LIVE_LL_TARGET_MS)) {
            ll_end_part(st, f->ts);
        }
    }
    if (!st->ll_open) {
        if (video && !vkey && !forced) return; /* from a keyframe */
        st->ll[st->nll++] = (ll_seg){.msn = st->ll_next_msn++, .first_k = st->ll_next_k};
        st->ll_open = true;
        st->ll_seg_start = f->ts;
    }
    st->ll_last_ts = f->ts;
    if (!st->popen) {
        st->popen = true;
        st->pstart = f->ts;
        st->pindep = !video || vkey;
        st->plen = 0;
    }
    if (frag && !ll_append(st, frag)) st->plen = 0;
}

/* Under the lock: whole segments kept, and EXT-X-TARGETDURATION in ms. */
static int ll_complete(const live_stream *st)
{
    return st->nll - (st->ll_open ? 1 : 0);
}

static uint32_t ll_target_ms(const live_stream *st)
{
    uint32_t target = 1;
    for (int i = 0; i < st->nll; i++)
        if ((st->ll[i].dur_ms + 999) / 1000 > target) target = (st->ll[i].dur_ms + 999) / 1000;
    return target * 1000;
}

uint64_t live_ll_changes(void)
{
    return __atomic_load_n(&ll_changes, __ATOMIC_ACQUIRE);
}

int live_ll_pos_of(const char *name, live_ll_pos *out)
{
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    if (st) {
        int done = ll_complete(st);
        out->last_msn = done ? (int64_t)st->ll[done - 1].msn : -1;
        out->last_parts = done ? st->ll[done - 1].nparts : 0;
        out->open_msn = st->ll_open ? st->ll[st->nll - 1].msn : st->ll_next_msn;
        out->open_parts = st->ll_open ? st->ll[st->nll - 1].nparts : 0;
        out->next_part = st->ll_next_k;
        out->oldest_part = st->nll ? st->ll[0].first_k : st->ll_next_k;
        out->target_ms = ll_target_ms(st);
    }
    pthread_mutex_unlock(&lock);
    return st ? 0 : AX_ENOENT;
}

/* Under the lock: segment i's lines (its parts when listed), appended. */
static int ll_seg_lines(const live_stream *st, int i, bool parts, char *buf, size_t cap, int n)
{
    const ll_seg *s = &st->ll[i];
    for (uint32_t j = 0; parts && j < s->nparts && n >= 0 && (size_t)n < cap; j++)
        n += snprintf(buf + n, cap - (size_t)n, "#EXT-X-PART:DURATION=%.3f,URI=\"p-%llu.m4s\"%s\n",
                      s->parts[j].dur_ms / 1000.0, (unsigned long long)(s->first_k + j),
                      s->parts[j].indep ? ",INDEPENDENT=YES" : "");
    if (i < ll_complete(st) && n >= 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "#EXTINF:%.3f,\nll-%llu.m4s\n", s->dur_ms / 1000.0,
                      (unsigned long long)s->msn);
    return n;
}

int live_ll_playlist(const char *name, char *buf, size_t cap)
{
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    int n = AX_ENOENT;
    if (st && ll_complete(st)) {
        n = snprintf(buf, cap,
                     "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:%u\n"
                     "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=%.3f\n"
                     "#EXT-X-PART-INF:PART-TARGET=%.3f\n#EXT-X-MEDIA-SEQUENCE:%llu\n"
                     "#EXT-X-MAP:URI=\"init.mp4\"\n",
                     ll_target_ms(st) / 1000, 3 * LIVE_LL_TARGET_MS / 1000.0,
                     LIVE_LL_TARGET_MS / 1000.0, (unsigned long long)st->ll[0].msn);
        int from = ll_complete(st) - LIVE_LL_LISTED_SEGS;
        for (int i = 0; i < st->nll; i++)
            n = ll_seg_lines(st, i, i >= from, buf, cap, n);
        if (n >= 0 && (size_t)n < cap)
            n += snprintf(buf + n, cap - (size_t)n,
                          "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p-%llu.m4s\"\n",
                          (unsigned long long)st->ll_next_k);
        if (n < 0 || (size_t)n >= cap) n = AX_ENOMEM;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

ax_slice *live_ll_part(const char *name, uint64_t k)
{
    ax_slice *d = NULL;
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    for (int i = 0; st && i < st->nll && !d; i++) {
        const ll_seg *s = &st->ll[i];
        if (k >= s->first_k && k - s->first_k < s->nparts)
            d = ax_slice_ref(s->parts[k - s->first_k].data);
    }
    pthread_mutex_unlock(&lock);
    return d;
}

size_t live_ll_segment(const char *name, uint64_t msn, ax_slice **parts, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    for (int i = 0; st && i < ll_complete(st); i++) {
        const ll_seg *s = &st->ll[i];
        if (s->msn != msn || s->nparts > max) continue;
        for (n = 0; n < s->nparts; n++)
            parts[n] = ax_slice_ref(s->parts[n].data);
    }
    pthread_mutex_unlock(&lock);
    return n;
}

ax_slice *live_ll_init(const char *name)
{
    ax_slice *d = NULL;
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    if (st && st->mp4) {
        size_t n;
        const uint8_t *init = live_mux_init(st->mp4, &n);
        d = ax_slice_copy(init, n);
    }
    pthread_mutex_unlock(&lock);
    return d;
}

/* Under the lock: keep the frame for new viewers. */
static void cache(live_stream *st, live_frame *f, size_t len)
{
    if (f->type == 9 && f->key) gop_clear(st);
    if (!st->info.video) return; /* audio only: a viewer starts at the next frame */
    if (st->ngop == 0 && !f->key) return;
    if (st->gop_bytes + len > LIVE_GOP_BYTES) {
        gop_clear(st); /* too long a GOP: new viewers wait for the next keyframe */
        return;
    }
    if (st->ngop == st->gop_cap) {
        size_t cap = st->gop_cap ? st->gop_cap * 2 : 256;
        live_frame **g = ax_realloc(st->gop, cap * sizeof(*g));
        if (!g) return;
        st->gop = g;
        st->gop_cap = cap;
    }
    st->gop[st->ngop++] = frame_ref(f);
    st->gop_bytes += len;
}

void live_push(live_stream *st, uint8_t type, uint32_t ts, const uint8_t *data, size_t len)
{
    if (type == 18) {
        pthread_mutex_lock(&lock);
        set_meta(st, data, len);
        pthread_mutex_unlock(&lock);
        return;
    }
    if ((type != 8 && type != 9) || len == 0) return;
    if (is_seq_header(type, data, len)) {
        pthread_mutex_lock(&lock);
        hdr_set(type == 9 ? &st->vseq : &st->aseq, data, len);
        if (type == 9) st->info.video = true, st->info.video_codec = data[0] & 0x0f;
        if (type == 8) st->info.audio = true, st->info.audio_codec = data[0] >> 4;
        pthread_mutex_unlock(&lock);
        return;
    }
    bool video = type == 9;
    bool key = video ? (data[0] >> 4) == 1 : !st->info.video;
    /* (the codecs are set on this loop only, above) */
    live_frame *f = frame_new(type, ts, key, data, len, live_info_flv(&st->info));
    if (!f) return;
    f->hold = !video && st->info.video;
    ax_slice *frag = mux_ts(st, f, data, len);
    pthread_mutex_lock(&lock);
    if (st->ts) segment(st, f);
    if (st->mp4) ll_add(st, f, frag);
    f->seq = ++st->seq;
    if (video) st->info.video = true;
    if (!video) st->info.audio = true;
    st->info.frames++;
    st->info.bytes += len;
    st->info.keyframes += video && key;
    st->info.last_ts = ts;
    cache(st, f, len);
    pthread_mutex_unlock(&lock);
    ax_slice_unref(frag);
    fan_out(st, f);
    frame_unref(f);
}

void live_unpublish(live_stream *st)
{
    pthread_mutex_lock(&lock);
    for (live_stream **p = &streams; *p; p = &(*p)->next) {
        if (*p == st) {
            *p = st->next;
            break;
        }
    }
    st->live = false;
    gop_clear(st);
    pthread_mutex_unlock(&lock);
    __atomic_add_fetch(&ll_changes, 1, __ATOMIC_RELEASE); /* held LL-HLS requests: 404 now */
    live_rec_close(st->rec);
    st->rec = NULL;
    announce(st, false);
    fan_out(st, NULL);
    stream_unref(st);
}

/* ---- viewers -------------------------------------------------------------------------- */

static int send_hdr(live_viewer *v, uint8_t type, uint32_t ts, const live_hdr *h)
{
    if (!h->data) return 0;
    ax_slice *s = encode(v->format, type, ts, h->data, h->len);
    if (!s) return AX_ENOMEM;
    int rc = v->ops->write_copy(v->ud, ax_slice_data(s), ax_slice_len(s));
    ax_slice_unref(s);
    return rc < 0 ? rc : 0;
}

/* Under the lock: the headers, then the cached GOP. */
static void send_start(live_stream *st, live_viewer *v)
{
    uint32_t ts = st->ngop ? st->gop[0]->ts : st->info.last_ts;
    if (v->format < LIVE_TS && !live_info_flv(&st->info)) { /* the gateways refuse it */
        v->next_seq = st->seq + 1;
        return;
    }
    if (v->format == LIVE_FLV) {
        uint8_t flags = (uint8_t)((st->info.audio || st->aseq.data ? 4 : 0) |
                                  (st->info.video || st->vseq.data ? 1 : 0));
        uint8_t head[13] = {'F', 'L', 'V', 1, flags ? flags : 5, 0, 0, 0, 9, 0, 0, 0, 0};
        v->ops->write_copy(v->ud, head, sizeof head);
    }
    if (v->format == LIVE_FMP4 && st->mp4) {
        size_t n;
        const uint8_t *init = live_mux_init(st->mp4, &n);
        v->ops->write_copy(v->ud, init, n);
    }
    if (v->format < LIVE_TS) {         /* MPEG-TS: its PAT and PMT come with each keyframe */
        send_hdr(v, 18, 0, &st->meta); /* at 0: ffmpeg takes a later one for a data stream */
        send_hdr(v, 9, ts, &st->vseq);
        send_hdr(v, 8, ts, &st->aseq);
    }
    for (size_t i = 0; i < st->ngop; i++) {
        ax_slice *s = st->gop[i]->out[v->format];
        if (s && v->format == LIVE_FMP4)
            v->ops->write(v->ud, s); /* framed already */
        else if (s)
            v->ops->write_copy(v->ud, ax_slice_data(s), ax_slice_len(s));
    }
    v->next_seq = st->seq + 1;
    v->waiting_key = st->info.video && st->ngop == 0;
}

live_viewer *live_watch(const char *name, ax_loop *loop, int format, const live_viewer_ops *ops,
                        void *ud, int *err)
{
    live_viewer *v = ax_calloc(1, sizeof(*v));
    if (!v) {
        *err = AX_ENOMEM;
        return NULL;
    }
    v->format = format;
    v->ops = ops;
    v->ud = ud;
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    live_group *g = NULL;
    for (live_group *x = st ? st->groups : NULL; x && !g; x = x->next)
        if (x->loop == loop) g = x;
    if (st && !g && (g = ax_calloc(1, sizeof(*g)))) {
        g->st = st;
        g->loop = loop;
        g->next = st->groups;
        st->groups = g;
    }
    if (!st || !g) {
        pthread_mutex_unlock(&lock);
        ax_free(v);
        *err = st ? AX_ENOMEM : AX_ENOENT;
        return NULL;
    }
    st->refs++;
    st->info.viewers++;
    g->dead = false;
    g->nviewers++;
    v->grp = g;
    v->st = st;
    v->next = g->viewers;
    if (g->viewers) g->viewers->prev = v;
    g->viewers = v;
    send_start(st, v);
    pthread_mutex_unlock(&lock);
    return v;
}

uint64_t live_viewer_skipped(const live_viewer *v)
{
    return v->skipped;
}

void live_viewer_free(live_viewer *v)
{
    if (!v) return;
    live_group *g = v->grp;
    if (v->prev)
        v->prev->next = v->next;
    else
        g->viewers = v->next;
    if (v->next) v->next->prev = v->prev;
    pthread_mutex_lock(&lock);
    live_stream *st = v->st;
    if (--g->nviewers == 0) { /* the group's loop: no frames for it now */
        ax_timer_free(g->hold);
        g->hold = NULL;
        batch_drop(g);
    }
    st->info.viewers--;
    stream_unref_locked(st);
    pthread_mutex_unlock(&lock);
    ax_free(v);
}

void live_loop_gone(ax_loop *loop)
{
    pthread_mutex_lock(&lock);
    for (live_stream *s = streams; s; s = s->next)
        for (live_group *g = s->groups; g; g = g->next)
            if (g->loop == loop) g->dead = true;
    pthread_mutex_unlock(&lock);
}

/* ---- HLS ------------------------------------------------------------------------------ */

int live_hls_playlist(const char *name, char *buf, size_t cap)
{
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    int n = AX_ENOENT;
    if (st && st->nsegs) {
        uint32_t target = 1;
        for (int i = 0; i < st->nsegs; i++)
            if ((st->segs[i].dur_ms + 999) / 1000 > target)
                target = (st->segs[i].dur_ms + 999) / 1000;
        n = snprintf(buf, cap,
                     "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%u\n"
                     "#EXT-X-MEDIA-SEQUENCE:%llu\n",
                     target, (unsigned long long)st->segs[0].n);
        for (int i = 0; i < st->nsegs && n > 0 && (size_t)n < cap; i++)
            n += snprintf(buf + n, cap - (size_t)n, "#EXTINF:%.3f,\nseg-%llu.ts\n",
                          st->segs[i].dur_ms / 1000.0, (unsigned long long)st->segs[i].n);
        if (n < 0 || (size_t)n >= cap) n = AX_ENOMEM;
    }
    pthread_mutex_unlock(&lock);
    return n;
}

ax_slice *live_hls_segment(const char *name, uint64_t n)
{
    ax_slice *s = NULL;
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    for (int i = 0; st && i < st->nsegs && !s; i++)
        if (st->segs[i].n == n) s = ax_slice_ref(st->segs[i].data);
    pthread_mutex_unlock(&lock);
    return s;
}

/* ---- information ---------------------------------------------------------------------- */

bool live_info_flv(const live_info *i)
{
    return i->video_codec != 12 && i->audio_codec != 13;
}

static void info_of(live_stream *st, live_info *out)
{
    *out = st->info;
    out->skipped = __atomic_load_n(&st->info.skipped, __ATOMIC_RELAXED); /* viewers' loops add */
    out->gop_frames = st->ngop;
    out->gop_bytes = st->gop_bytes;
    lat_info(&st->lat, out);
}

int live_info_of(const char *name, live_info *out)
{
    pthread_mutex_lock(&lock);
    live_stream *st = find(name);
    if (st) info_of(st, out);
    pthread_mutex_unlock(&lock);
    return st ? 0 : AX_ENOENT;
}

size_t live_list(live_info *out, size_t n)
{
    size_t k = 0;
    pthread_mutex_lock(&lock);
    for (live_stream *s = streams; s && k < n; s = s->next)
        info_of(s, &out[k++]);
    pthread_mutex_unlock(&lock);
    return k;
}
