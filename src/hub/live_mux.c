/* live_mux.c: frames into containers with libavformat, in memory
 * (live_mux.h says how). */
#include "live_mux.h"

#include <stdio.h>
#include <string.h>

#include <libavformat/avformat.h>
#include <libavutil/mem.h>

#include <axon/alloc.h>

#include "live_codec.h"

#define IO_BUF 4096

struct live_mux {
    int kind;
    AVFormatContext *oc;
    uint8_t *init; /* fMP4: ftyp moov */
    size_t init_len;
    char mime[96];
    int64_t vdur, adur; /* a frame's duration, ms (the fragment's last sample needs one) */
    int vidx, aidx;     /* stream indexes, -1: none */
    bool opus;          /* the audio is Opus: each packet says its duration */
    uint8_t *out;       /* what the muxer wrote since the last frame */
    size_t len, cap;
    bool failed;
};

/* The AVIOContext's sink: append to m->out. */
static int sink(void *opaque, uint8_t *buf, int n)
{
    live_mux *m = opaque;
    if (n <= 0) return 0;
    if (m->len + (size_t)n > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < m->len + (size_t)n)
            cap *= 2;
        uint8_t *b = ax_realloc(m->out, cap);
        if (!b) {
            m->failed = true;
            return AVERROR(ENOMEM);
        }
        m->out = b;
        m->cap = cap;
    }
    memcpy(m->out + m->len, buf, (size_t)n);
    m->len += (size_t)n;
    return n;
}

static int set_extradata(AVCodecParameters *p, const uint8_t *d, size_t n)
{
    p->extradata = av_mallocz(n + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!p->extradata) return AVERROR(ENOMEM);
    memcpy(p->extradata, d, n);
    p->extradata_size = (int)n;
    return 0;
}

/* Sample rate and channels from an AudioSpecificConfig (ISO 14496-3). */
static void aac_config(AVCodecParameters *p, const uint8_t *d, size_t n)
{
    static const int rates[] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                22050, 16000, 12000, 11025, 8000,  7350};
    if (n < 2) return;
    unsigned v = (unsigned)d[0] << 8 | d[1];
    unsigned idx = (v >> 7) & 0x0f, ch = (v >> 3) & 0x0f;
    if (idx < 13) p->sample_rate = rates[idx];
    av_channel_layout_default(&p->ch_layout, ch ? (int)ch : 2);
}

/* 'video/mp4; codecs="avc1.PPCCLL,mp4a.40.N"' (RFC 6381) from the configs
 * (HEVC: "hvc1.…", live_codec.h; Opus: "opus"). */
static void make_mime(live_mux *m, const live_tracks *t)
{
    char v[48] = "", a[32] = "";
    if (m->vidx >= 0 && (t->vseq[0] & 0x0f) == 7 && t->vseq_len >= 9)
        snprintf(v, sizeof v, "avc1.%02x%02x%02x", t->vseq[6], t->vseq[7], t->vseq[8]);
    else if (m->vidx >= 0)
        live_hevc_codecs(t->vseq + 5, t->vseq_len - 5, v, sizeof v);
    if (m->aidx >= 0 && m->opus)
        snprintf(a, sizeof a, "opus");
    else if (m->aidx >= 0)
        snprintf(a, sizeof a, "mp4a.40.%d", t->aseq_len > 2 ? t->aseq[2] >> 3 : 2);
    snprintf(m->mime, sizeof m->mime, "%s/mp4; codecs=\"%s%s%s\"", v[0] ? "video" : "audio", v,
             v[0] && a[0] ? "," : "", a);
}

static int add_video(live_mux *m, const live_tracks *t)
{
    int codec = t->vseq[0] & 0x0f;
    if ((codec != 7 && codec != 12) || t->vseq_len < 6) return -1;
    AVStream *st = avformat_new_stream(m->oc, NULL);
    if (!st) return -1;
    st->time_base = (AVRational){1, 1000};
    st->codecpar->codec_type = AVMEDIA_TYPE_VIDEO;
    st->codecpar->codec_id = codec == 7 ? AV_CODEC_ID_H264 : AV_CODEC_ID_HEVC;
    st->codecpar->width = (int)t->width;
    st->codecpar->height = (int)t->height;
    if (codec == 12 && m->kind == LIVE_MUX_FMP4) /* the parameter sets are in hvcC alone */
        st->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
    m->vidx = st->index;
    return set_extradata(st->codecpar, t->vseq + 5, t->vseq_len - 5);
}

/* Opus (the relay's sound format 13, an OpusHead as its header): 48 kHz,
 * the channels and pre-skip from the OpusHead (RFC 7845 5.1). */
static int opus_config(AVCodecParameters *p, const uint8_t *d, size_t n)
{
    if (n < 19 || memcmp(d, "OpusHead", 8) != 0 || d[9] == 0) return -1;
    p->codec_id = AV_CODEC_ID_OPUS;
    p->sample_rate = 48000;
    p->initial_padding = d[10] | d[11] << 8;
    av_channel_layout_default(&p->ch_layout, d[9]);
    return 0;
}

static int add_audio(live_mux *m, const live_tracks *t)
{
    int codec = t->aseq[0] >> 4;
    if ((codec != 10 && codec != 13) || t->aseq_len < 3) return -1;
    AVStream *st = avformat_new_stream(m->oc, NULL);
    if (!st) return -1;
    st->time_base = (AVRational){1, 1000};
    st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
    st->codecpar->codec_id = AV_CODEC_ID_AAC;
    m->opus = codec == 13;
    if (m->opus && opus_config(st->codecpar, t->aseq + 2, t->aseq_len - 2) != 0) return -1;
    if (!m->opus) aac_config(st->codecpar, t->aseq + 2, t->aseq_len - 2);
    m->aidx = st->index;
    return set_extradata(st->codecpar, t->aseq + 2, t->aseq_len - 2);
}

live_mux *live_mux_new(int kind, const live_tracks *t)
{
    live_mux *m = ax_calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->kind = kind;
    m->vidx = m->aidx = -1;
    m->vdur = t->fps > 1 && t->fps < 240 ? (int64_t)(1000 / t->fps) : 33;
    const char *fmt = kind == LIVE_MUX_FMP4 ? "mp4" : "mpegts";
    if (avformat_alloc_output_context2(&m->oc, NULL, fmt, NULL) < 0 || !m->oc) goto fail;
    uint8_t *iobuf = av_malloc(IO_BUF);
    if (!iobuf) goto fail;
    m->oc->pb = avio_alloc_context(iobuf, IO_BUF, 1, m, NULL, sink, NULL);
    if (!m->oc->pb) {
        av_free(iobuf);
        goto fail;
    }
    if (t->vseq && add_video(m, t) != 0) goto fail;
    if (t->aseq && add_audio(m, t) != 0) goto fail;
    if (m->vidx < 0 && m->aidx < 0) goto fail;
    if (m->aidx >= 0) {
        int rate = m->oc->streams[m->aidx]->codecpar->sample_rate;
        m->adur = rate > 0 ? 1024 * 1000 / rate : 23;
    }
    AVDictionary *opts = NULL;
    if (kind == LIVE_MUX_FMP4)
        av_dict_set(&opts, "movflags", "+empty_moov+default_base_moof+frag_custom", 0);
    else
        av_dict_set(&opts, "mpegts_flags", "+initial_discontinuity", 0);
    int rc = avformat_write_header(m->oc, &opts);
    av_dict_free(&opts);
    if (rc < 0) goto fail;
    if (kind == LIVE_MUX_FMP4) {
        avio_flush(m->oc->pb);
        if (!m->len || !(m->init = ax_malloc(m->len))) goto fail;
        memcpy(m->init, m->out, m->len);
        m->init_len = m->len;
        m->len = 0;
        make_mime(m, t);
    }
    return m;
fail:
    live_mux_free(m);
    return NULL;
}

/* What the muxer wrote since the last call, as a slice. */
static ax_slice *take(live_mux *m)
{
    avio_flush(m->oc->pb);
    if (m->len == 0) return NULL;
    ax_slice *s = ax_slice_copy(m->out, m->len);
    m->len = 0;
    return s;
}

int live_mux_frame(live_mux *m, uint8_t type, uint32_t ts, const uint8_t *data, size_t len,
                   ax_slice **out)
{
    *out = NULL;
    bool video = type == 9;
    int idx = video ? m->vidx : m->aidx;
    size_t skip = video ? 5 : 2;
    if (idx < 0 || len <= skip || m->failed) return 0;
    if (video && data[1] != 1) return 0; /* only coded frames (not headers, not the end) */
    if (!video && data[1] != 1) return 0;
    AVPacket *pkt = av_packet_alloc();
    if (!pkt) return AX_ENOMEM;
    int rc = av_new_packet(pkt, (int)(len - skip));
    if (rc == 0) {
        memcpy(pkt->data, data + skip, len - skip);
        int32_t cts = 0;
        if (video) {
            cts = (int32_t)((uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4]);
            if (cts & 0x800000) cts -= 0x1000000;
        }
        pkt->stream_index = idx;
        pkt->dts = ts;
        pkt->pts = (int64_t)ts + cts;
        pkt->time_base = (AVRational){1, 1000};
        pkt->duration = video ? m->vdur : m->adur;
        unsigned samples = !video && m->opus ? live_opus_samples(data + 2, len - 2) : 0;
        if (samples) pkt->duration = samples / 48; /* 48 kHz into ms */
        AVStream *st = m->oc->streams[idx];
        av_packet_rescale_ts(pkt, (AVRational){1, 1000}, st->time_base);
        if (video && (data[0] >> 4) == 1) pkt->flags |= AV_PKT_FLAG_KEY;
        if (!video) pkt->flags |= AV_PKT_FLAG_KEY;
        rc = av_write_frame(m->oc, pkt);
        if (rc >= 0 && m->kind == LIVE_MUX_FMP4) rc = av_write_frame(m->oc, NULL); /* a fragment */
    }
    av_packet_free(&pkt);
    if (rc < 0) return AX_EIO;
    *out = take(m);
    return 0;
}

const uint8_t *live_mux_init(const live_mux *m, size_t *len)
{
    *len = m->init_len;
    return m->init;
}

const char *live_mux_mime(const live_mux *m)
{
    return m->mime;
}

void live_mux_free(live_mux *m)
{
    if (!m) return;
    ax_free(m->init);
    if (m->oc) {
        if (m->oc->pb) {
            av_freep(&m->oc->pb->buffer);
            avio_context_free(&m->oc->pb);
        }
        avformat_free_context(m->oc);
    }
    ax_free(m->out);
    ax_free(m);
}
