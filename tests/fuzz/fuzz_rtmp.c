/* fuzz_rtmp.c: libFuzzer target for the RTMP codec (src/proto/rtmp/).
 *
 * The input's first byte picks the peer's chunk size (1 to 256, or the
 * default 128); the rest is a chunk stream as a client sends it after the
 * handshake.  It is parsed whole, and again fed in two parts split at the
 * second byte's value (a parser that said "need more" on the first part
 * must then give the same chunks); every chunk is checked (inside the
 * input, inside its message), messages are reassembled, and each one is:
 *  - encoded again as chunks and parsed back to the same header and bytes;
 *  - for commands and data (types 18, 20): walked as AMF0 values to the
 *    end (skip, read, find), which must stay inside the message.
 * Set Chunk Size messages are applied as the gateway applies them. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/rtmp/rtmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_rtmp: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_MSG 65536 /* messages longer than this are not reassembled here */

typedef struct msgbuf {
    uint32_t csid;
    uint8_t data[MAX_MSG];
    bool used;
} msgbuf;

static msgbuf bufs[AX_RTMP_MAX_STREAMS];

static void amf(const uint8_t *d, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t o = off, f = off;
        ax_amf0_val v, fv;
        int rc = ax_amf0_read(d, len, &o, &v);
        if (rc != 0) break;
        CHECK(o <= len);
        if (v.type == AX_AMF0_STRING || v.type == AX_AMF0_LONG_STRING)
            CHECK((const uint8_t *)v.str >= d && (const uint8_t *)v.str + v.len <= d + len);
        if (ax_amf0_find(d, len, &f, "app", &fv) == 1 && fv.type == AX_AMF0_STRING)
            CHECK((const uint8_t *)fv.str >= d && (const uint8_t *)fv.str + fv.len <= d + len);
        CHECK(f <= len);
        o = off;
        if (ax_amf0_skip(d, len, &o) != 0) break;
        CHECK(o > off && o <= len);
        off = o;
    }
}

static void reencode(const ax_rtmp_hdr *h, const uint8_t *payload)
{
    static uint8_t wire[2 * MAX_MSG + 4096];
    size_t need = ax_rtmp_chunk_size_of(h, 128);
    if (need > sizeof wire || h->csid < 2) return;
    long n = ax_rtmp_chunk_encode(h, payload, 128, wire, sizeof wire);
    CHECK(n == (long)need);
    ax_rtmp_parser p;
    ax_rtmp_parser_init(&p);
    size_t off = 0;
    uint32_t got = 0;
    for (;;) {
        ax_rtmp_chunk ch;
        long k = ax_rtmp_chunk_parse(&p, wire + off, (size_t)n - off, &ch);
        CHECK(k > 0);
        CHECK(ch.h.csid == h->csid && ch.h.ts == h->ts && ch.h.len == h->len &&
              ch.h.type == h->type && ch.h.sid == h->sid && ch.offset == got);
        CHECK(ch.len == 0 || memcmp(ch.data, payload + got, ch.len) == 0);
        got += ch.len;
        off += (size_t)k;
        if (ch.last) break;
    }
    CHECK(off == (size_t)n && got == h->len);
}

static void message(ax_rtmp_parser *p, const ax_rtmp_hdr *h, const uint8_t *d)
{
    reencode(h, d);
    if (h->type == AX_RTMP_COMMAND || h->type == AX_RTMP_DATA) amf(d, h->len);
    if (h->type == AX_RTMP_SET_CHUNK_SIZE && h->len >= 4) {
        uint32_t n = ((uint32_t)d[0] << 24 & 0x7f000000u) | (uint32_t)d[1] << 16 |
                     (uint32_t)d[2] << 8 | d[3];
        int rc = ax_rtmp_set_chunk_size(p, n);
        CHECK(rc == 0 ? p->chunk_size == n : rc == AX_RTMP_ESIZE);
    }
}

static void chunk(ax_rtmp_parser *p, const ax_rtmp_chunk *ch, const uint8_t *in, size_t inlen)
{
    CHECK(ch->data >= in && ch->data + ch->len <= in + inlen);
    CHECK((uint64_t)ch->offset + ch->len <= ch->h.len && ch->h.len <= AX_RTMP_MAX_MSG);
    CHECK(ch->last == (ch->offset + ch->len == ch->h.len));
    if (ch->h.len > MAX_MSG) return;
    msgbuf *b = NULL;
    for (int i = 0; i < AX_RTMP_MAX_STREAMS && !b; i++)
        if (bufs[i].used && bufs[i].csid == ch->h.csid) b = &bufs[i];
    for (int i = 0; i < AX_RTMP_MAX_STREAMS && !b; i++)
        if (!bufs[i].used) b = &bufs[i];
    CHECK(b); /* the parser tracks as many streams as there are buffers */
    b->used = true;
    b->csid = ch->h.csid;
    if (ch->len) memcpy(b->data + ch->offset, ch->data, ch->len);
    if (ch->last) {
        message(p, &ch->h, b->data);
        b->used = false;
    }
}

/* Parse buf; returns the bytes consumed, the chunks' sizes in sizes[]. */
static size_t run(ax_rtmp_parser *p, const uint8_t *buf, size_t len, long *sizes, size_t *nsizes,
                  size_t max)
{
    size_t off = 0;
    while (off < len) {
        ax_rtmp_chunk ch;
        long k = ax_rtmp_chunk_parse(p, buf + off, len - off, &ch);
        if (k <= 0) break;
        CHECK((size_t)k <= len - off);
        if (sizes && *nsizes < max) sizes[(*nsizes)++] = k;
        chunk(p, &ch, buf + off, len - off);
        off += (size_t)k;
    }
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint32_t cs = data[0] ? data[0] : AX_RTMP_DEFAULT_CHUNK;
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    static long whole[4096], parts[4096];
    size_t nwhole = 0, nparts = 0;

    ax_rtmp_parser p;
    ax_rtmp_parser_init(&p);
    CHECK(ax_rtmp_set_chunk_size(&p, cs) == 0);
    memset(bufs, 0, sizeof bufs);
    size_t done = run(&p, in, len, whole, &nwhole, 4096);

    /* again, in two parts: the first stops at a chunk boundary or asks
     * for more; the rest (from there) goes on to the same end */
    size_t cut = len ? data[1] % (len + 1) : 0;
    ax_rtmp_parser_init(&p);
    CHECK(ax_rtmp_set_chunk_size(&p, cs) == 0);
    memset(bufs, 0, sizeof bufs);
    size_t a = run(&p, in, cut, parts, &nparts, 4096);
    size_t b = run(&p, in + a, len - a, parts, &nparts, 4096);
    CHECK(a + b == done);
    CHECK(nparts == nwhole);
    for (size_t i = 0; i < nwhole; i++)
        CHECK(parts[i] == whole[i]);
    return 0;
}
