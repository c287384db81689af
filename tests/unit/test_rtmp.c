/* test_rtmp.c: the RTMP codec (src/proto/rtmp/rtmp.h).
 *
 * - the handshake reply: S0 3, S1 with version 0, S2 echoing C1; C0 other
 *   than 3 refused;
 * - chunks: encode then parse, for chunk sizes 1 to 4096, basic headers of
 *   1, 2 and 3 bytes, extended timestamps, empty messages; the same input
 *   fed one byte at a time (need more, then the same chunk); header
 *   formats 1 to 3 as ffmpeg writes them (deltas); the errors;
 * - AMF0: a connect command written and read back, ax_amf0_find, nested
 *   skips, and every truncation of it refused without reading past the
 *   end (inputs against an unreadable page). */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <stdint.h>
#include <unistd.h>

#include "proto/rtmp/rtmp.h"

TEST(rtmp_handshake_reply)
{
    uint8_t c0c1[AX_RTMP_C0C1], out[AX_RTMP_S0S1S2];
    for (size_t i = 0; i < sizeof c0c1; i++)
        c0c1[i] = (uint8_t)(i * 7);
    c0c1[0] = 3;
    ASSERT_EQ(ax_rtmp_handshake_reply(c0c1, 0x01020304, NULL, out), 0);
    ASSERT_EQ(out[0], 3);
    ASSERT(memcmp(out + 1, "\x01\x02\x03\x04\0\0\0\0", 8) == 0);
    ASSERT(memcmp(out + 1 + AX_RTMP_HS, c0c1 + 1, AX_RTMP_HS) == 0);
    c0c1[0] = 6; /* encrypted RTMPE: not ours */
    ASSERT_EQ(ax_rtmp_handshake_reply(c0c1, 0, NULL, out), AX_RTMP_EVERSION);
}

/* Encode a message, parse it back chunk by chunk, compare. */
static void roundtrip(uint32_t csid, uint32_t ts, uint32_t len, uint32_t chunk, bool bytewise)
{
    static uint8_t payload[20000], wire[40000], got[20000];
    ASSERT(len <= sizeof payload);
    for (uint32_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 31 + csid);
    ax_rtmp_hdr h = {.csid = csid, .ts = ts, .len = len, .type = 9, .sid = 1};
    long n = ax_rtmp_chunk_encode(&h, payload, chunk, wire, sizeof wire);
    ASSERT((size_t)n == ax_rtmp_chunk_size_of(&h, chunk));
    ax_rtmp_parser p;
    ax_rtmp_parser_init(&p);
    ASSERT_EQ(ax_rtmp_set_chunk_size(&p, chunk), 0);
    size_t off = 0, avail = bytewise ? 1 : (size_t)n;
    bool last = false;
    uint32_t have = 0;
    while (!last) {
        ax_rtmp_chunk ch;
        size_t end = off + avail > (size_t)n ? (size_t)n : off + avail;
        long k = ax_rtmp_chunk_parse(&p, tu_guarded(wire + off, end - off), end - off, &ch);
        ASSERT(k >= 0);
        if (k == 0) {
            ASSERT(end < (size_t)n);
            avail++;
            continue;
        }
        ASSERT_EQ(ch.h.csid, csid);
        ASSERT_EQ(ch.h.ts, ts);
        ASSERT_EQ(ch.h.len, len);
        ASSERT_EQ(ch.h.sid, 1u);
        ASSERT_EQ(ch.offset, have);
        memcpy(got + ch.offset, ch.data, ch.len);
        have += ch.len;
        last = ch.last;
        off += (size_t)k;
        avail = bytewise ? 1 : (size_t)n - off;
    }
    ASSERT_EQ(off, (size_t)n);
    ASSERT_EQ(have, len);
    ASSERT(len == 0 || memcmp(got, payload, len) == 0);
}

TEST(rtmp_chunks_roundtrip)
{
    static const uint32_t csids[] = {2, 3, 63, 64, 319, 320, 65599};
    static const uint32_t sizes[] = {1, 128, 4096};
    static const uint32_t lens[] = {0, 1, 127, 128, 129, 4096, 10000};
    for (size_t c = 0; c < sizeof csids / sizeof *csids; c++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
            for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
                if (sizes[s] == 1 && lens[l] > 200) continue;
                roundtrip(csids[c], 1000, lens[l], sizes[s], false);
                roundtrip(csids[c], 0x12345678, lens[l], sizes[s], false); /* extended */
            }
    roundtrip(4, 0xFFFFFF, 300, 128, true);
    roundtrip(300, 40, 5000, 4096, true);
}

TEST(rtmp_chunk_formats_and_deltas)
{
    /* fmt 0 on csid 4: ts 100, len 2, type 8, sid 1; then fmt 1 (delta
     * 20, len 1), fmt 2 (delta 30), fmt 3 (the same delta again) */
    static const uint8_t in[] = {
        0x04, 0, 0,  100, 0, 0, 2, 8,    1,    0, 0, 0,  0xAA, 0xBB, 0x44,
        0,    0, 20, 0,   0, 1, 8, 0xCC, 0x84, 0, 0, 30, 0xDD, 0xC4, 0xEE,
    };
    static const uint32_t ts[] = {100, 120, 150, 180}, len[] = {2, 1, 1, 1};
    ax_rtmp_parser p;
    ax_rtmp_parser_init(&p);
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        ax_rtmp_chunk ch;
        long k =
            ax_rtmp_chunk_parse(&p, tu_guarded(in + off, sizeof in - off), sizeof in - off, &ch);
        ASSERT(k > 0);
        ASSERT_EQ(ch.h.ts, ts[i]);
        ASSERT_EQ(ch.h.len, len[i]);
        ASSERT_EQ(ch.h.type, 8);
        ASSERT_EQ(ch.h.sid, 1u);
        ASSERT(ch.last);
        off += (size_t)k;
    }
    ASSERT_EQ(off, sizeof in);
}

TEST(rtmp_chunk_errors)
{
    ax_rtmp_parser p;
    ax_rtmp_chunk ch;
    ax_rtmp_parser_init(&p);
    static const uint8_t fmt1_first[] = {0x45, 0, 0, 0, 0, 0, 1, 8, 0};
    ASSERT_EQ(ax_rtmp_chunk_parse(&p, fmt1_first, sizeof fmt1_first, &ch), AX_RTMP_EHEADER);
    static const uint8_t huge[] = {0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 0, 0, 0, 0};
    ASSERT_EQ(ax_rtmp_chunk_parse(&p, huge, sizeof huge, &ch), AX_RTMP_ESIZE);
    /* a message left half done on each of 16 chunk streams, then a 17th */
    ASSERT_EQ(ax_rtmp_set_chunk_size(&p, 1), 0);
    for (uint32_t i = 0; i <= AX_RTMP_MAX_STREAMS; i++) {
        uint8_t m[13] = {(uint8_t)(3 + i), 0, 0, 0, 0, 1, 0, 9, 0, 0, 0, 0, 1};
        long k = ax_rtmp_chunk_parse(&p, m, sizeof m, &ch);
        ASSERT_EQ(k, i < AX_RTMP_MAX_STREAMS ? 12 + 1 : AX_RTMP_ESTREAMS);
        ASSERT(i == AX_RTMP_MAX_STREAMS || !ch.last);
    }
    ASSERT_EQ(ax_rtmp_set_chunk_size(&p, 0), AX_RTMP_ESIZE);
    ASSERT_EQ(ax_rtmp_set_chunk_size(&p, AX_RTMP_MAX_CHUNK + 1), AX_RTMP_ESIZE);
    uint8_t out[8];
    ax_rtmp_hdr h = {.csid = 3, .len = 100, .type = 20};
    static const uint8_t zeros[100];
    ASSERT_EQ(ax_rtmp_chunk_encode(&h, zeros, 128, out, sizeof out), AX_RTMP_ESPACE);
    h.csid = 1;
    ASSERT_EQ(ax_rtmp_chunk_encode(&h, zeros, 128, out, sizeof out), AX_RTMP_ESIZE);
}

static size_t connect_cmd(uint8_t *buf, size_t cap)
{
    ax_amf0_w w = {buf, cap, 0, false};
    ax_amf0_cstr(&w, "connect");
    ax_amf0_number(&w, 1);
    ax_amf0_object(&w);
    ax_amf0_key(&w, "app");
    ax_amf0_cstr(&w, "live");
    ax_amf0_key(&w, "nested");
    ax_amf0_ecma(&w, 1);
    ax_amf0_key(&w, "deep");
    ax_amf0_object(&w);
    ax_amf0_key(&w, "x");
    ax_amf0_null(&w);
    ax_amf0_end(&w);
    ax_amf0_end(&w);
    ax_amf0_key(&w, "fpad");
    ax_amf0_bool(&w, false);
    ax_amf0_key(&w, "tcUrl");
    ax_amf0_cstr(&w, "rtmp://127.0.0.1:1935/live?token=abc");
    ax_amf0_end(&w);
    ax_amf0_null(&w);
    ASSERT(!w.overflow);
    return w.len;
}

TEST(rtmp_amf0_roundtrip)
{
    uint8_t buf[512];
    size_t n = connect_cmd(buf, sizeof buf);
    const uint8_t *d = tu_guarded(buf, n);
    size_t off = 0;
    ax_amf0_val v;
    ASSERT_EQ(ax_amf0_read(d, n, &off, &v), 0);
    ASSERT(v.type == AX_AMF0_STRING && v.len == 7 && memcmp(v.str, "connect", 7) == 0);
    ASSERT_EQ(ax_amf0_read(d, n, &off, &v), 0);
    ASSERT(v.type == AX_AMF0_NUMBER && v.num == 1);
    size_t obj = off, o = obj;
    ASSERT_EQ(ax_amf0_find(d, n, &o, "tcUrl", &v), 1);
    ASSERT(v.len == 36 && memcmp(v.str, "rtmp://127.0.0.1:1935/live?token=abc", 36) == 0);
    size_t after = o;
    o = obj;
    ASSERT_EQ(ax_amf0_find(d, n, &o, "missing", &v), 0);
    ASSERT_EQ(o, after);
    o = obj;
    ASSERT_EQ(ax_amf0_skip(d, n, &o), 0);
    ASSERT_EQ(o, after);
    ASSERT_EQ(ax_amf0_read(d, n, &o, &v), 0);
    ASSERT_EQ(v.type, AX_AMF0_NULL);
    ASSERT_EQ(o, n);
    /* every truncation: an error, never a read past the end */
    for (size_t cut = 0; cut < n - 1; cut++) {
        const uint8_t *t = tu_guarded(buf, cut);
        size_t k = 0;
        int rc = 0;
        while (rc == 0 && k < cut)
            rc = ax_amf0_skip(t, cut, &k);
        ASSERT(rc == AX_RTMP_EAMF || k == cut);
    }
    /* nesting deeper than AX_AMF0_MAX_DEPTH */
    uint8_t deep[64];
    memset(deep, AX_AMF0_STRICT_ARRAY, sizeof deep);
    for (size_t i = 0; i + 5 <= sizeof deep; i += 5)
        deep[i + 1] = deep[i + 2] = deep[i + 3] = 0, deep[i + 4] = 1;
    off = 0;
    ASSERT_EQ(ax_amf0_skip(tu_guarded(deep, sizeof deep), sizeof deep, &off), AX_RTMP_EAMF);
    /* the writer notices a full buffer */
    uint8_t small[10];
    ax_amf0_w w = {small, sizeof small, 0, false};
    ax_amf0_cstr(&w, "a long string");
    ASSERT(w.overflow);
}
