/* live_tsin.c: MPEG-TS uploads demuxed by libavformat on a thread
 * (live_tsin.h says how). */
#include "live_tsin.h"

#include <pthread.h>
#include <string.h>

#include <libavformat/avformat.h>
#include <libavutil/mem.h>

#include <axon/alloc.h>

#include "live_codec.h"

#define IO_BUF 32768
#define SPS_MAX 256

struct live_tsin {
    int refs; /* atomic: the owner, the thread, each posted message */
    live_stream *st;
    ax_loop *loop;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *buf; /* body bytes buf[off..len) not read yet */
    size_t off, len, cap;
    bool eof, failed;
    /* the thread's alone */
    int64_t base_ms;               /* the first timestamp, INT64_MIN: none yet */
    enum AVCodecID vcodec, acodec; /* the first video and audio stream's, taken */
    uint8_t vps[SPS_MAX], sps[SPS_MAX], pps[SPS_MAX];
    size_t vps_len, sps_len, pps_len;
    bool vseq_sent, vseq_dirty, aseq_sent;
    unsigned asc;
    uint8_t *tmp;
    size_t tmp_cap;
};

/* A frame for the loop (len 0: the thread is done). */
typedef struct tsin_msg {
    live_tsin *t;
    uint8_t type;
    uint32_t ts;
    size_t len;
    uint8_t data[];
} tsin_msg;

/* On the loop: the last reference ends the stream. */
static void tsin_unref(live_tsin *t)
{
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    live_unpublish(t->st);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    ax_free(t->buf);
    ax_free(t->tmp);
    ax_free(t);
}

static void run_msg(ax_loop *loop, void *arg)
{
    tsin_msg *m = arg;
    (void)loop;
    if (m->len) live_push(m->t->st, m->type, m->ts, m->data, m->len);
    tsin_unref(m->t);
    ax_free(m);
}

static void drop_msg(void *arg)
{
    tsin_msg *m = arg;
    tsin_unref(m->t);
    ax_free(m);
}

/* From the thread: a payload to the loop, with a reference; or (n 0) the
 * end, handing over the thread's own reference. */
static void post(live_tsin *t, uint8_t type, uint32_t ts, const uint8_t *d, size_t n)
{
    tsin_msg *m = ax_malloc(sizeof(*m) + n);
    if (!m) return;
    *m = (tsin_msg){t, type, ts, n};
    if (n) memcpy(m->data, d, n);
    if (n) __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED); /* the end takes the thread's */
    if (ax_loop_post_or(t->loop, run_msg, drop_msg, m) != 0) {
        if (n) __atomic_sub_fetch(&t->refs, 1, __ATOMIC_RELAXED); /* the thread holds one still */
        ax_free(m);
    }
}

/* The AVIOContext's source: waits for body bytes, or the end. */
static int io_read(void *opaque, uint8_t *out, int n)
{
    live_tsin *t = opaque;
    pthread_mutex_lock(&t->mu);
    while (t->off == t->len && !t->eof)
        pthread_cond_wait(&t->cv, &t->mu);
    size_t k = t->len - t->off;
    if (k > (size_t)n) k = (size_t)n;
    memcpy(out, t->buf + t->off, k);
    t->off += k;
    pthread_mutex_unlock(&t->mu);
    return k ? (int)k : AVERROR_EOF;
}

static uint8_t *tmp(live_tsin *t, size_t n)
{
    if (n > t->tmp_cap) {
        uint8_t *b = ax_realloc(t->tmp, n);
        if (!b) return NULL;
        t->tmp = b;
        t->tmp_cap = n;
    }
    return t->tmp;
}

/* The next NAL unit of an Annex B buffer after *p: its start and length. */
static bool next_nal(const uint8_t **p, const uint8_t *end, const uint8_t **nal, size_t *len)
{
    const uint8_t *s = *p;
    while (s + 3 <= end && !(s[0] == 0 && s[1] == 0 && s[2] == 1))
        s++;
    if (s + 3 > end) return false;
    s += 3;
    const uint8_t *e = s;
    while (e + 3 <= end &&
           !(e[0] == 0 && e[1] == 0 && (e[2] == 1 || (e[2] == 0 && e + 3 < end && e[3] == 1))))
        e++;
    if (e + 3 > end) e = end;
    *nal = s;
    *len = (size_t)(e - s);
    *p = e;
    return *len > 0;
}

/* The HEVC decoder configuration record from the VPS, SPS and PPS, as
 * the sequence header of FLV's (non-standard) codec 12, the relay's own
 * form of HEVC (live.h). */
static void send_hvcc(live_tsin *t, uint32_t ts)
{
    uint8_t o[5 + 40 + 3 * SPS_MAX];
    int n = live_hevc_config(t->vps, t->vps_len, t->sps, t->sps_len, t->pps, t->pps_len, o + 5,
                             sizeof o - 5);
    t->vseq_dirty = false;
    if (n < 0) return;
    o[0] = 0x1c, o[1] = 0, o[2] = 0, o[3] = 0, o[4] = 0;
    post(t, 9, ts, o, 5 + (size_t)n);
    t->vseq_sent = true;
}

/* The AVC decoder configuration record from the SPS and PPS, as FLV's
 * sequence header. */
static void send_vseq(live_tsin *t, uint32_t ts)
{
    uint8_t o[16 + 2 * SPS_MAX];
    if (t->vcodec == AV_CODEC_ID_HEVC) {
        send_hvcc(t, ts);
        return;
    }
    if (t->sps_len < 4) return;
    size_t n = 0;
    o[n++] = 0x17, o[n++] = 0, o[n++] = 0, o[n++] = 0, o[n++] = 0;
    o[n++] = 1, o[n++] = t->sps[1], o[n++] = t->sps[2], o[n++] = t->sps[3];
    o[n++] = 0xff, o[n++] = 0xe1;
    o[n++] = (uint8_t)(t->sps_len >> 8), o[n++] = (uint8_t)t->sps_len;
    memcpy(o + n, t->sps, t->sps_len), n += t->sps_len;
    o[n++] = 1;
    o[n++] = (uint8_t)(t->pps_len >> 8), o[n++] = (uint8_t)t->pps_len;
    memcpy(o + n, t->pps, t->pps_len), n += t->pps_len;
    post(t, 9, ts, o, n);
    t->vseq_sent = true;
    t->vseq_dirty = false;
}

static void keep(uint8_t *dst, size_t *dst_len, const uint8_t *nal, size_t len, bool *dirty)
{
    if (len > SPS_MAX) return;
    if (*dst_len != len || memcmp(dst, nal, len) != 0) *dirty = true;
    memcpy(dst, nal, len);
    *dst_len = len;
}

/* A parameter set kept (true), or a NAL unit of the frame (false; an
 * access unit delimiter is dropped as if kept).  *key: it starts a
 * picture a decoder may start from. */
static bool param_set(live_tsin *t, const uint8_t *nal, size_t len, bool *key)
{
    if (t->vcodec == AV_CODEC_ID_H264) {
        int type = nal[0] & 0x1f;
        if (type == 7) keep(t->sps, &t->sps_len, nal, len, &t->vseq_dirty);
        if (type == 8) keep(t->pps, &t->pps_len, nal, len, &t->vseq_dirty);
        *key |= type == 5;
        return type == 7 || type == 8 || type == 9;
    }
    int type = (nal[0] >> 1) & 0x3f; /* HEVC (ITU-T H.265 7.4.2.2) */
    if (type == 32) keep(t->vps, &t->vps_len, nal, len, &t->vseq_dirty);
    if (type == 33) keep(t->sps, &t->sps_len, nal, len, &t->vseq_dirty);
    if (type == 34) keep(t->pps, &t->pps_len, nal, len, &t->vseq_dirty);
    *key |= type >= 16 && type <= 21; /* IRAP pictures */
    return (type >= 32 && type <= 35) || len < 2;
}

/* An access unit, Annex B: parameter sets kept, the rest as an AVC or
 * HEVC frame (4-byte NAL lengths). */
static void video(live_tsin *t, const AVPacket *pkt, uint32_t ms, int32_t cts)
{
    const uint8_t *p = pkt->data, *end = pkt->data + pkt->size, *nal;
    size_t len, n = 5;
    bool key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    uint8_t *o = tmp(t, 5 + (size_t)pkt->size * 2);
    if (!o) return;
    while (next_nal(&p, end, &nal, &len)) {
        if (param_set(t, nal, len, &key)) continue;
        o[n++] = (uint8_t)(len >> 24), o[n++] = (uint8_t)(len >> 16);
        o[n++] = (uint8_t)(len >> 8), o[n++] = (uint8_t)len;
        memcpy(o + n, nal, len), n += len;
    }
    if (t->vseq_dirty && t->sps_len && t->pps_len) send_vseq(t, ms);
    if (!t->vseq_sent || n == 5) return; /* nothing to decode it with, or nothing */
    o[0] = (uint8_t)((key ? 0x10 : 0x20) | (t->vcodec == AV_CODEC_ID_HEVC ? 12 : 7)), o[1] = 1;
    o[2] = (uint8_t)(cts >> 16), o[3] = (uint8_t)(cts >> 8), o[4] = (uint8_t)cts;
    post(t, 9, ms, o, n);
}

/* ADTS frames: each raw, after the AudioSpecificConfig when it changes. */
static void aac(live_tsin *t, const AVPacket *pkt, uint32_t ms)
{
    static const unsigned rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                     22050, 16000, 12000, 11025, 8000,  7350};
    const uint8_t *p = pkt->data;
    size_t left = (size_t)pkt->size;
    for (unsigned i = 0; left >= 7 && p[0] == 0xff && (p[1] & 0xf6) == 0xf0; i++) {
        size_t flen = (size_t)(p[3] & 3) << 11 | (size_t)p[4] << 3 | p[5] >> 5;
        size_t hl = (p[1] & 1) ? 7 : 9;
        unsigned sri = (p[2] >> 2) & 0x0f;
        if (flen <= hl || flen > left || sri >= 13) return;
        unsigned asc = ((unsigned)(p[2] >> 6) + 1) << 11 | sri << 7 |
                       ((unsigned)(p[2] & 1) << 2 | p[3] >> 6) << 3;
        uint32_t ts = ms + (uint32_t)((uint64_t)i * 1024 * 1000 / rates[sri]);
        if (!t->aseq_sent || asc != t->asc) {
            uint8_t h[4] = {0xaf, 0, (uint8_t)(asc >> 8), (uint8_t)asc};
            post(t, 8, ts, h, 4);
            t->aseq_sent = true;
            t->asc = asc;
        }
        uint8_t *o = tmp(t, 2 + flen - hl);
        if (!o) return;
        o[0] = 0xaf, o[1] = 1;
        memcpy(o + 2, p + hl, flen - hl);
        post(t, 8, ts, o, 2 + flen - hl);
        p += flen, left -= flen;
    }
}

/* An OpusHead (RFC 7845 5.1) for a stream without one: channels, 48 kHz,
 * the usual 312 samples of pre-skip, mapping family 0 (1 or 2 channels). */
static size_t opus_head(const AVCodecParameters *p, uint8_t *o)
{
    if (p->extradata_size >= 19 && p->extradata_size <= 64 &&
        !memcmp(p->extradata, "OpusHead", 8)) {
        memcpy(o, p->extradata, (size_t)p->extradata_size);
        return (size_t)p->extradata_size;
    }
    int ch = p->ch_layout.nb_channels;
    if (ch < 1 || ch > 2) return 0;
    static const uint8_t head[19] = {'O',  'p', 'u',  's',  'H', 'e', 'a', 'd', 1, 2,
                                     0x38, 1,   0x80, 0xbb, 0,   0,   0,   0,   0};
    memcpy(o, head, sizeof head);
    o[9] = (uint8_t)ch;
    return sizeof head;
}

/* The OpusHead as the sequence header of FLV's (non-standard) sound
 * format 13, the relay's own form of Opus (live.h). */
static void send_opus_head(live_tsin *t, const AVCodecParameters *p, uint32_t ts)
{
    uint8_t h[2 + 64] = {0xdf, 0};
    size_t n = opus_head(p, h + 2);
    if (!n) return;
    post(t, 8, ts, h, 2 + n);
    t->aseq_sent = true;
}

/* An Opus packet, after its OpusHead once. */
static void opus(live_tsin *t, AVStream *s, const AVPacket *pkt, uint32_t ms)
{
    if (!t->aseq_sent) send_opus_head(t, s->codecpar, ms);
    if (!t->aseq_sent) return;
    uint8_t *o = tmp(t, 2 + (size_t)pkt->size);
    if (!o || pkt->size < 1) return;
    o[0] = 0xdf, o[1] = 1;
    memcpy(o + 2, pkt->data, (size_t)pkt->size);
    post(t, 8, ms, o, 2 + (size_t)pkt->size);
}

/* The first video stream of a codec the relay takes, and the first audio
 * one: the others are left out (the relay carries one of each). */
static bool taken(live_tsin *t, enum AVCodecID id)
{
    bool v = id == AV_CODEC_ID_H264 || id == AV_CODEC_ID_HEVC;
    bool a = id == AV_CODEC_ID_AAC || id == AV_CODEC_ID_OPUS;
    if (v && t->vcodec == AV_CODEC_ID_NONE) t->vcodec = id;
    if (a && t->acodec == AV_CODEC_ID_NONE) t->acodec = id;
    return (v && t->vcodec == id) || (a && t->acodec == id);
}

static void packet(live_tsin *t, AVStream *s, AVPacket *pkt)
{
    enum AVCodecID id = s->codecpar->codec_id;
    if (!taken(t, id)) return;
    int64_t dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
    if (dts == AV_NOPTS_VALUE) return;
    int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : dts;
    int64_t ms = av_rescale_q(dts, s->time_base, (AVRational){1, 1000});
    int64_t cts = av_rescale_q(pts - dts, s->time_base, (AVRational){1, 1000});
    if (t->base_ms == INT64_MIN) t->base_ms = ms;
    ms -= t->base_ms;
    if (ms < 0) ms = 0;
    if (id == AV_CODEC_ID_H264 || id == AV_CODEC_ID_HEVC)
        video(t, pkt, (uint32_t)ms, (int32_t)cts);
    else if (id == AV_CODEC_ID_OPUS)
        opus(t, s, pkt, (uint32_t)ms);
    else
        aac(t, pkt, (uint32_t)ms);
}

static size_t amf_num(uint8_t *o, const char *key, double v)
{
    size_t k = strlen(key), n = 0;
    uint64_t bits;
    memcpy(&bits, &v, 8);
    o[n++] = (uint8_t)(k >> 8), o[n++] = (uint8_t)k;
    memcpy(o + n, key, k), n += k;
    o[n++] = 0; /* number */
    for (int i = 7; i >= 0; i--)
        o[n++] = (uint8_t)(bits >> (8 * i));
    return n;
}

/* What FLV says in onMetaData (the size and rate; the fMP4 muxer needs
 * the size), from what libavformat found in the first packets. */
static void send_meta(live_tsin *t, AVFormatContext *fc)
{
    for (unsigned i = 0; i < fc->nb_streams; i++) {
        AVStream *s = fc->streams[i];
        AVCodecParameters *p = s->codecpar;
        if (p->codec_type != AVMEDIA_TYPE_VIDEO || p->width <= 0 || p->height <= 0) continue;
        uint8_t o[128];
        size_t n = 0;
        o[n++] = 2, o[n++] = 0, o[n++] = 10;
        memcpy(o + n, "onMetaData", 10), n += 10;
        o[n++] = 8, o[n++] = 0, o[n++] = 0, o[n++] = 0, o[n++] = 3; /* an ECMA array of 3 */
        n += amf_num(o + n, "width", p->width);
        n += amf_num(o + n, "height", p->height);
        n += amf_num(o + n, "framerate", s->avg_frame_rate.den ? av_q2d(s->avg_frame_rate) : 0);
        o[n++] = 0, o[n++] = 0, o[n++] = 9;
        post(t, 18, 0, o, n);
        return;
    }
}

/* The sequence headers before the first frame, from what libavformat
 * found (the relay makes its containers at the first frame, with the
 * tracks it knows of by then). */
static void send_headers(live_tsin *t, AVFormatContext *fc)
{
    static const int rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                22050, 16000, 12000, 11025, 8000,  7350};
    for (unsigned i = 0; i < fc->nb_streams; i++) {
        AVCodecParameters *p = fc->streams[i]->codecpar;
        if (!taken(t, p->codec_id)) continue;
        bool video = p->codec_id == AV_CODEC_ID_H264 || p->codec_id == AV_CODEC_ID_HEVC;
        if (video && p->extradata_size > 0 && !t->vseq_sent) {
            const uint8_t *q = p->extradata, *end = q + p->extradata_size, *nal;
            size_t len;
            bool key = false;
            while (next_nal(&q, end, &nal, &len))
                (void)param_set(t, nal, len, &key);
            if (t->sps_len && t->pps_len) send_vseq(t, 0);
        }
        if (p->codec_id == AV_CODEC_ID_OPUS && !t->aseq_sent) send_opus_head(t, p, 0);
        if (p->codec_id == AV_CODEC_ID_AAC && !t->aseq_sent) {
            unsigned sri = 0;
            while (sri < 13 && rates[sri] != p->sample_rate)
                sri++;
            unsigned ch = (unsigned)p->ch_layout.nb_channels;
            if (sri == 13 || ch == 0 || ch > 7) continue;
            unsigned obj = p->profile >= 0 ? (unsigned)p->profile + 1 : 2;
            t->asc = obj << 11 | sri << 7 | ch << 3;
            uint8_t h[4] = {0xaf, 0, (uint8_t)(t->asc >> 8), (uint8_t)t->asc};
            post(t, 8, 0, h, 4);
            t->aseq_sent = true;
        }
    }
}

static void *demux(void *arg)
{
    live_tsin *t = arg;
    uint8_t *iobuf = av_malloc(IO_BUF);
    AVIOContext *io = iobuf ? avio_alloc_context(iobuf, IO_BUF, 0, t, io_read, NULL, NULL) : NULL;
    AVFormatContext *fc = io ? avformat_alloc_context() : NULL;
    AVPacket *pkt = av_packet_alloc();
    if (!fc || !pkt) goto out;
    fc->pb = io;
    fc->flags |= AVFMT_FLAG_CUSTOM_IO;
    if (avformat_open_input(&fc, NULL, av_find_input_format("mpegts"), NULL) < 0) {
        fc = NULL; /* freed by the failure */
        ax_log(AX_LOG_WARN, "live: the MPEG-TS upload is not MPEG-TS");
        goto out;
    }
    fc->max_analyze_duration = AV_TIME_BASE / 2; /* the size from the first frames */
    if (avformat_find_stream_info(fc, NULL) >= 0) {
        send_meta(t, fc);
        send_headers(t, fc);
    }
    while (av_read_frame(fc, pkt) >= 0) {
        if (pkt->stream_index >= 0 && (unsigned)pkt->stream_index < fc->nb_streams)
            packet(t, fc->streams[pkt->stream_index], pkt);
        av_packet_unref(pkt);
    }
out:
    pthread_mutex_lock(&t->mu);
    t->failed = true; /* takes no more */
    pthread_mutex_unlock(&t->mu);
    av_packet_free(&pkt);
    avformat_close_input(&fc);
    if (io)
        av_freep(&io->buffer);
    else
        av_free(iobuf);
    avio_context_free(&io);
    post(t, 0, 0, NULL, 0); /* the thread's reference, let go on the loop */
    return NULL;
}

live_tsin *live_tsin_new(live_stream *st, ax_loop *loop)
{
    live_tsin *t = ax_calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->refs = 2; /* the owner and the thread */
    t->st = st;
    t->loop = loop;
    t->base_ms = INT64_MIN;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->thr, NULL, demux, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        ax_free(t);
        return NULL;
    }
    return t;
}

bool live_tsin_feed(live_tsin *t, const uint8_t *d, size_t len)
{
    bool ok = false;
    pthread_mutex_lock(&t->mu);
    if (t->failed || t->len - t->off + len > LIVE_TSIN_BUF) goto out;
    if (t->off) { /* what was read goes */
        memmove(t->buf, t->buf + t->off, t->len - t->off);
        t->len -= t->off;
        t->off = 0;
    }
    if (t->len + len > t->cap) {
        size_t cap = t->cap ? t->cap : 256 * 1024;
        while (cap < t->len + len)
            cap *= 2;
        uint8_t *b = ax_realloc(t->buf, cap);
        if (!b) goto out;
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, d, len);
    t->len += len;
    pthread_cond_signal(&t->cv);
    ok = true;
out:
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void live_tsin_free(live_tsin *t)
{
    if (!t) return;
    pthread_mutex_lock(&t->mu);
    t->eof = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    /* The thread posts to the loop: it must be done before the loop can
     * go (at shutdown).  It only has what is buffered left to read, and
     * it keeps up with the body, so this waits for a few packets. */
    pthread_join(t->thr, NULL);
    tsin_unref(t);
}
