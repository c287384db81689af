/* rtmp.c: the RTMP handshake, chunk stream and AMF0 (rtmp.h says how). */
#include "rtmp.h"

#include <string.h>

static uint32_t be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | be24(p + 1);
}

static void put24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    put24(p + 1, v);
}

/* ---- handshake ------------------------------------------------------------------------- */

int ax_rtmp_handshake_reply(const uint8_t *c0c1, uint32_t time_ms, const uint8_t *random,
                            uint8_t *out)
{
    if (c0c1[0] != 3) return AX_RTMP_EVERSION;
    out[0] = 3;
    uint8_t *s1 = out + 1;
    put32(s1, time_ms);
    memset(s1 + 4, 0, 4); /* version 0: no digest, so clients skip validating it */
    if (random)
        memcpy(s1 + 8, random, AX_RTMP_HS - 8);
    else
        memset(s1 + 8, 0, AX_RTMP_HS - 8);
    memcpy(out + 1 + AX_RTMP_HS, c0c1 + 1, AX_RTMP_HS); /* S2 echoes C1 */
    return 0;
}

/* ---- chunks ---------------------------------------------------------------------------- */

void ax_rtmp_parser_init(ax_rtmp_parser *p)
{
    memset(p, 0, sizeof(*p));
    p->chunk_size = AX_RTMP_DEFAULT_CHUNK;
}

int ax_rtmp_set_chunk_size(ax_rtmp_parser *p, uint32_t size)
{
    if (size < 1 || size > AX_RTMP_MAX_CHUNK) return AX_RTMP_ESIZE;
    p->chunk_size = size;
    return 0;
}

static ax_rtmp_cstate *find_cs(ax_rtmp_parser *p, uint32_t csid, bool make)
{
    ax_rtmp_cstate *free_one = NULL;
    for (int i = 0; i < AX_RTMP_MAX_STREAMS; i++) {
        ax_rtmp_cstate *s = &p->cs[i];
        if (s->used && s->h.csid == csid) return s;
        if (!s->used && !free_one) free_one = s;
    }
    return make ? free_one : NULL;
}

long ax_rtmp_chunk_parse(ax_rtmp_parser *p, const uint8_t *buf, size_t len, ax_rtmp_chunk *out)
{
    if (len < 1) return 0;
    int fmt = buf[0] >> 6;
    uint32_t csid = buf[0] & 0x3f;
    size_t pos = 1;
    if (csid == 0 || csid == 1) {
        size_t need = csid == 0 ? 2 : 3;
        if (len < need) return 0;
        csid = csid == 0 ? buf[1] + 64u : buf[1] + buf[2] * 256u + 64u;
        pos = need;
    }
    ax_rtmp_cstate *s = find_cs(p, csid, fmt == 0);
    if (!s) return fmt == 0 ? AX_RTMP_ESTREAMS : AX_RTMP_EHEADER;
    ax_rtmp_cstate n = s->used ? *s : (ax_rtmp_cstate){.h.csid = csid};
    static const size_t hlen[4] = {11, 7, 3, 0};
    if (len < pos + hlen[fmt]) return 0;
    const uint8_t *h = buf + pos;
    uint32_t field = fmt < 3 ? be24(h) : 0;
    if (fmt == 0) {
        n.h.len = be24(h + 3);
        n.h.type = h[6];
        n.h.sid =
            (uint32_t)h[7] | (uint32_t)h[8] << 8 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 24;
    } else if (fmt == 1) {
        n.h.len = be24(h + 3);
        n.h.type = h[6];
    }
    pos += hlen[fmt];
    if (fmt < 3) n.ext = field == 0xFFFFFF;
    if (n.ext) {
        if (len < pos + 4) return 0;
        if (fmt < 3 || n.got == 0) field = be32(buf + pos); /* a continuation repeats it */
        pos += 4;
    }
    if (fmt < 3) n.got = 0; /* a new header starts a new message */
    if (n.h.len > AX_RTMP_MAX_MSG) return AX_RTMP_ESIZE;
    if (n.got == 0) {
        if (fmt == 0) {
            n.h.ts = field;
            n.delta = field;
        } else {
            if (fmt < 3) n.delta = field;
            n.h.ts += n.delta;
        }
    }
    uint32_t take = n.h.len - n.got;
    if (take > p->chunk_size) take = p->chunk_size;
    if (len - pos < take) return 0;
    *out = (ax_rtmp_chunk){.h = n.h, .data = buf + pos, .len = take, .offset = n.got};
    n.got += take;
    out->last = n.got == n.h.len;
    if (out->last) n.got = 0;
    n.used = true;
    *s = n;
    return (long)(pos + take);
}

static size_t basic_len(uint32_t csid)
{
    return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

size_t ax_rtmp_chunk_size_of(const ax_rtmp_hdr *h, uint32_t chunk_size)
{
    if (chunk_size == 0) return 0;
    size_t chunks = h->len ? (h->len + chunk_size - 1) / chunk_size : 1;
    size_t per = basic_len(h->csid) + (h->ts >= 0xFFFFFF ? 4 : 0);
    return chunks * per + 11 + h->len;
}

static size_t put_basic(uint8_t *p, int fmt, uint32_t csid)
{
    if (csid < 64) {
        p[0] = (uint8_t)(fmt << 6 | (int)csid);
        return 1;
    }
    if (csid < 320) {
        p[0] = (uint8_t)(fmt << 6);
        p[1] = (uint8_t)(csid - 64);
        return 2;
    }
    p[0] = (uint8_t)(fmt << 6 | 1);
    p[1] = (uint8_t)((csid - 64) & 0xff);
    p[2] = (uint8_t)((csid - 64) >> 8);
    return 3;
}

long ax_rtmp_chunk_encode(const ax_rtmp_hdr *h, const uint8_t *payload, uint32_t chunk_size,
                          uint8_t *out, size_t cap)
{
    if (h->csid < 2 || h->csid > 65599 || chunk_size < 1 || chunk_size > AX_RTMP_MAX_CHUNK ||
        h->len > AX_RTMP_MAX_MSG)
        return AX_RTMP_ESIZE;
    if (ax_rtmp_chunk_size_of(h, chunk_size) > cap) return AX_RTMP_ESPACE;
    bool ext = h->ts >= 0xFFFFFF;
    size_t pos = put_basic(out, 0, h->csid);
    put24(out + pos, ext ? 0xFFFFFF : h->ts);
    put24(out + pos + 3, h->len);
    out[pos + 6] = h->type;
    for (int i = 0; i < 4; i++)
        out[pos + 7 + i] = (uint8_t)(h->sid >> (8 * i));
    pos += 11;
    uint32_t done = 0;
    for (;;) {
        if (ext) {
            put32(out + pos, h->ts);
            pos += 4;
        }
        uint32_t n = h->len - done < chunk_size ? h->len - done : chunk_size;
        if (n) memcpy(out + pos, payload + done, n);
        pos += n;
        done += n;
        if (done >= h->len) break;
        pos += put_basic(out + pos, 3, h->csid);
    }
    return (long)pos;
}

/* ---- AMF0 ------------------------------------------------------------------------------ */

static double get_double(const uint8_t *p)
{
    uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

int ax_amf0_read(const uint8_t *buf, size_t len, size_t *off, ax_amf0_val *v)
{
    size_t o = *off;
    if (o >= len) return AX_RTMP_EAMF;
    *v = (ax_amf0_val){.type = buf[o++]};
    size_t left = len - o;
    switch (v->type) {
    case AX_AMF0_NUMBER:
        if (left < 8) return AX_RTMP_EAMF;
        v->num = get_double(buf + o);
        o += 8;
        break;
    case AX_AMF0_BOOLEAN:
        if (left < 1) return AX_RTMP_EAMF;
        v->num = buf[o++] != 0;
        break;
    case AX_AMF0_STRING:
        if (left < 2 || left - 2 < (size_t)(buf[o] << 8 | buf[o + 1])) return AX_RTMP_EAMF;
        v->len = (uint32_t)(buf[o] << 8 | buf[o + 1]);
        v->str = (const char *)buf + o + 2;
        o += 2 + v->len;
        break;
    case AX_AMF0_LONG_STRING:
        if (left < 4 || left - 4 < be32(buf + o)) return AX_RTMP_EAMF;
        v->len = be32(buf + o);
        v->str = (const char *)buf + o + 4;
        o += 4 + (size_t)v->len;
        break;
    case AX_AMF0_OBJECT:
    case AX_AMF0_NULL:
    case AX_AMF0_UNDEFINED:
        break;
    case AX_AMF0_ECMA_ARRAY:
    case AX_AMF0_STRICT_ARRAY:
        if (left < 4) return AX_RTMP_EAMF;
        v->len = be32(buf + o);
        o += 4;
        break;
    case AX_AMF0_DATE:
        if (left < 10) return AX_RTMP_EAMF;
        v->num = get_double(buf + o);
        o += 10;
        break;
    default:
        return AX_RTMP_EAMF;
    }
    *off = o;
    return 0;
}

int ax_amf0_read_key(const uint8_t *buf, size_t len, size_t *off, const char **key, uint32_t *klen)
{
    size_t o = *off;
    if (o > len || len - o < 2) return AX_RTMP_EAMF;
    uint32_t n = (uint32_t)(buf[o] << 8 | buf[o + 1]);
    o += 2;
    if (n == 0) {
        if (o >= len || buf[o] != AX_AMF0_OBJECT_END) return AX_RTMP_EAMF;
        *off = o + 1;
        return 0;
    }
    if (len - o < n) return AX_RTMP_EAMF;
    *key = (const char *)buf + o;
    *klen = n;
    *off = o + n;
    return 1;
}

static int skip_depth(const uint8_t *buf, size_t len, size_t *off, int depth)
{
    ax_amf0_val v;
    if (depth > AX_AMF0_MAX_DEPTH || ax_amf0_read(buf, len, off, &v) != 0) return AX_RTMP_EAMF;
    if (v.type == AX_AMF0_OBJECT || v.type == AX_AMF0_ECMA_ARRAY) {
        const char *k;
        uint32_t kl;
        int rc;
        while ((rc = ax_amf0_read_key(buf, len, off, &k, &kl)) == 1)
            if (skip_depth(buf, len, off, depth + 1) != 0) return AX_RTMP_EAMF;
        return rc;
    }
    if (v.type == AX_AMF0_STRICT_ARRAY)
        for (uint32_t i = 0; i < v.len; i++)
            if (skip_depth(buf, len, off, depth + 1) != 0) return AX_RTMP_EAMF;
    return 0;
}

int ax_amf0_skip(const uint8_t *buf, size_t len, size_t *off)
{
    return skip_depth(buf, len, off, 0);
}

int ax_amf0_find(const uint8_t *buf, size_t len, size_t *off, const char *key, ax_amf0_val *v)
{
    ax_amf0_val o;
    if (ax_amf0_read(buf, len, off, &o) != 0) return AX_RTMP_EAMF;
    if (o.type != AX_AMF0_OBJECT && o.type != AX_AMF0_ECMA_ARRAY) return AX_RTMP_EAMF;
    size_t want = strlen(key);
    int found = 0, rc;
    const char *k;
    uint32_t kl;
    while ((rc = ax_amf0_read_key(buf, len, off, &k, &kl)) == 1) {
        size_t at = *off;
        ax_amf0_val m;
        if (!found && kl == want && memcmp(k, key, want) == 0 &&
            ax_amf0_read(buf, len, &at, &m) == 0 &&
            (m.type == AX_AMF0_STRING || m.type == AX_AMF0_LONG_STRING ||
             m.type == AX_AMF0_NUMBER || m.type == AX_AMF0_BOOLEAN)) {
            *v = m;
            found = 1;
        }
        if (ax_amf0_skip(buf, len, off) != 0) return AX_RTMP_EAMF;
    }
    return rc < 0 ? rc : found;
}

static uint8_t *room(ax_amf0_w *w, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return NULL;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void ax_amf0_number(ax_amf0_w *w, double n)
{
    uint8_t *p = room(w, 9);
    if (!p) return;
    uint64_t u;
    memcpy(&u, &n, sizeof u);
    p[0] = AX_AMF0_NUMBER;
    put32(p + 1, (uint32_t)(u >> 32));
    put32(p + 5, (uint32_t)u);
}

void ax_amf0_bool(ax_amf0_w *w, bool b)
{
    uint8_t *p = room(w, 2);
    if (!p) return;
    p[0] = AX_AMF0_BOOLEAN;
    p[1] = b;
}

void ax_amf0_string(ax_amf0_w *w, const char *s, size_t n)
{
    bool lng = n > 0xFFFF;
    if (n > UINT32_MAX) {
        w->overflow = true;
        return;
    }
    uint8_t *p = room(w, (lng ? 5 : 3) + n);
    if (!p) return;
    p[0] = lng ? AX_AMF0_LONG_STRING : AX_AMF0_STRING;
    if (lng)
        put32(p + 1, (uint32_t)n);
    else
        p[1] = (uint8_t)(n >> 8), p[2] = (uint8_t)n;
    if (n) memcpy(p + (lng ? 5 : 3), s, n);
}

void ax_amf0_cstr(ax_amf0_w *w, const char *s)
{
    ax_amf0_string(w, s, strlen(s));
}

void ax_amf0_null(ax_amf0_w *w)
{
    uint8_t *p = room(w, 1);
    if (p) p[0] = AX_AMF0_NULL;
}

void ax_amf0_object(ax_amf0_w *w)
{
    uint8_t *p = room(w, 1);
    if (p) p[0] = AX_AMF0_OBJECT;
}

void ax_amf0_ecma(ax_amf0_w *w, uint32_t count)
{
    uint8_t *p = room(w, 5);
    if (!p) return;
    p[0] = AX_AMF0_ECMA_ARRAY;
    put32(p + 1, count);
}

void ax_amf0_key(ax_amf0_w *w, const char *key)
{
    size_t n = strlen(key);
    uint8_t *p = n && n <= 0xFFFF ? room(w, 2 + n) : NULL;
    if (!p) {
        w->overflow = true;
        return;
    }
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, key, n);
}

void ax_amf0_end(ax_amf0_w *w)
{
    uint8_t *p = room(w, 3);
    if (!p) return;
    p[0] = p[1] = 0;
    p[2] = AX_AMF0_OBJECT_END;
}
