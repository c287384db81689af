/* test_live_codec.c: codec facts for the live relay's containers
 * (src/hub/live_codec.h).
 *
 * - hvcC from the VPS, SPS and PPS x265 wrote (8-bit 4:2:0 Main, and
 *   10-bit 4:4:4): byte for byte what FFmpeg's mp4 muxer writes for the
 *   same parameter sets (from `ffmpeg -i x.hevc -c copy -tag:v hvc1
 *   x.mp4`), with the emulation prevention bytes of the SPS undone for
 *   the profile fields; every truncation of the SPS read without going
 *   past its end (inputs against an unreadable page), an SPS too short
 *   for its profile refused, a buffer too small refused;
 * - the codecs strings of both (ISO/IEC 14496-15 E.3);
 * - Opus packet durations for each TOC configuration and frame count
 *   (RFC 6716 3.1), malformed ones 0. */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hub/live_codec.h"

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    for (; h[0] && h[1]; h += 2) {
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

typedef struct hevc_case {
    const char *vps, *sps, *pps, *hvcc, *codecs;
    size_t min; /* the SPS's bytes up to its level: 2 + 1 + 12 and the escapes among them */
} hevc_case;

static const hevc_case cases[] = {
    {"40010c01ffff01600000030090000003000003003c959409",
     "42010101600000030090000003000003003ca00a080f16595952930bc05a020000030002000003003c10",
     "4401c073c189",
     "0101600000009000000000003cf000fcfdf8f800000f03a00001001840010c01ffff0160000003009000000300"
     "0003003c959409a10001002a42010101600000030090000003000003003ca00a080f16595952930bc05a0200"
     "00030002000003003c10a2000100064401c073c189",
     "hvc1.1.6.L60.90", 18},
    {"40010c01ffff0408000003009c0800000300003c959409",
     "4201010408000003009c0800000300003c90014101e26cb2b2a5261780b4040000030004000003007820",
     "4401c07318301890",
     "0104080000009c08000000003cf000fcfffafa00000f03a00001001740010c01ffff0408000003009c080000"
     "0300003c959409a10001002a4201010408000003009c0800000300003c90014101e26cb2b2a5261780b40400"
     "00030004000003007820a2000100084401c07318301890",
     "hvc1.4.10.L60.9C.8", 17},
};

TEST(live_hevc_config_as_ffmpeg_writes_it)
{
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t vps[64], sps[64], pps[64], want[256], got[256];
        size_t vn = unhex(cases[c].vps, vps), sn = unhex(cases[c].sps, sps);
        size_t pn = unhex(cases[c].pps, pps), wn = unhex(cases[c].hvcc, want);
        int n = live_hevc_config(vps, vn, sps, sn, pps, pn, got, sizeof got);
        ASSERT_EQ(n, (int)wn);
        ASSERT(memcmp(got, want, wn) == 0);
        char codecs[64];
        live_hevc_codecs(got, (size_t)n, codecs, sizeof codecs);
        ASSERT_STREQ(codecs, cases[c].codecs);
        ASSERT_EQ(live_hevc_config(vps, vn, sps, sn, pps, pn, got, wn - 1), -1); /* too small */
        ASSERT_EQ(live_hevc_config(vps, 0, sps, sn, pps, pn, got, sizeof got), -1);
        /* every truncation of the SPS: read within it, refused short of its level */
        for (size_t k = 0; k < sn; k++) {
            uint8_t *g = tu_guarded(sps, k);
            n = live_hevc_config(vps, vn, g, k, pps, pn, got, sizeof got);
            ASSERT(k >= cases[c].min ? n > 0 : n == -1);
        }
    }
    char codecs[16];
    live_hevc_codecs((const uint8_t *)"\1", 1, codecs, sizeof codecs);
    ASSERT_STREQ(codecs, "hvc1");
}

TEST(live_opus_packet_durations)
{
    static const struct {
        uint8_t toc, count;
        unsigned samples;
    } t[] = {
        {0 << 3 | 0, 0, 480},          /* SILK 10 ms, one frame */
        {1 << 3 | 0, 0, 960},          /* SILK 20 ms */
        {3 << 3 | 1, 0, 5760},         /* SILK 60 ms, two frames */
        {13 << 3 | 0, 0, 960},         /* hybrid 20 ms */
        {12 << 3 | 2, 0, 960},         /* hybrid 10 ms, two frames */
        {16 << 3 | 0, 0, 120},         /* CELT 2.5 ms */
        {31 << 3 | 0, 0, 960},         /* CELT 20 ms (what libopus sends by default) */
        {31 << 3 | 3, 6, 5760},        /* CELT 20 ms, code 3 with 6 frames: 120 ms */
        {31 << 3 | 3, 7, 0},           /* 140 ms: too long */
        {31 << 3 | 3, 0, 0},           /* no frames */
        {31 << 3 | 3, 0x80 | 2, 1920}, /* VBR bit set, 2 frames */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        uint8_t p[2] = {t[i].toc, t[i].count};
        ASSERT_EQ(live_opus_samples(p, 2), t[i].samples);
    }
    uint8_t code3 = 31 << 3 | 3;
    ASSERT_EQ(live_opus_samples(tu_guarded(&code3, 1), 1), 0u); /* its count byte missing */
    ASSERT_EQ(live_opus_samples(NULL, 0), 0u);
}
