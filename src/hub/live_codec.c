/* live_codec.c: HEVC configuration records and Opus durations (live_codec.h). */
#include "live_codec.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define RBSP_MAX 64 /* the part of an SPS read: its fields before the VUI */

/* An SPS without its emulation prevention bytes (00 00 03), at most cap. */
static size_t unescape(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0, zeros = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        if (zeros >= 2 && in[i] == 3) {
            zeros = 0;
            continue;
        }
        zeros = in[i] == 0 ? zeros + 1 : 0;
        out[o++] = in[i];
    }
    return o;
}

typedef struct bits {
    const uint8_t *p;
    size_t n, pos; /* in bits */
    bool bad;
} bits;

static unsigned u(bits *b, unsigned k)
{
    unsigned v = 0;
    for (unsigned i = 0; i < k; i++) {
        if (b->pos >= b->n * 8) {
            b->bad = true;
            return 0;
        }
        v = v << 1 | ((b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1u);
        b->pos++;
    }
    return v;
}

static unsigned ue(bits *b)
{
    unsigned z = 0;
    while (!b->bad && u(b, 1) == 0)
        if (++z > 31) b->bad = true;
    if (b->bad) return 0;
    return (1u << z) - 1 + u(b, z);
}

/* The SPS after its NAL header: the 12 bytes of general profile, tier
 * and level into ptl, and what hvcC repeats of the rest.  false: it does
 * not read as far as the level. */
static bool read_sps(const uint8_t *sps, size_t n, uint8_t ptl[12], unsigned *sub_layers,
                     unsigned *nested, unsigned *chroma, unsigned *depth_y, unsigned *depth_c)
{
    uint8_t r[RBSP_MAX];
    if (n < 3) return false;
    bits b = {r, unescape(sps + 2, n - 2, r, sizeof r), 0, false};
    u(&b, 4); /* sps_video_parameter_set_id */
    unsigned max_sub = u(&b, 3);
    *nested = u(&b, 1);
    *sub_layers = max_sub + 1;
    for (int i = 0; i < 12; i++)
        ptl[i] = (uint8_t)u(&b, 8);
    if (b.bad) return false;
    unsigned prof[8] = {0}, lev[8] = {0};
    for (unsigned i = 0; i < max_sub; i++)
        prof[i] = u(&b, 1), lev[i] = u(&b, 1);
    if (max_sub > 0)
        for (unsigned i = max_sub; i < 8; i++)
            u(&b, 2);
    for (unsigned i = 0; i < max_sub; i++)
        b.pos += (prof[i] ? 88u : 0u) + (lev[i] ? 8u : 0u);
    ue(&b); /* sps_seq_parameter_set_id */
    unsigned c = ue(&b);
    if (c == 3) u(&b, 1); /* separate_colour_plane_flag */
    ue(&b), ue(&b);       /* the picture's width and height */
    if (u(&b, 1))
        for (int i = 0; i < 4; i++)
            ue(&b); /* the conformance window */
    unsigned dy = ue(&b), dc = ue(&b);
    if (!b.bad && c <= 3 && dy <= 7 && dc <= 7) *chroma = c, *depth_y = dy, *depth_c = dc;
    return true;
}

static size_t put_array(uint8_t *o, unsigned type, const uint8_t *nal, size_t n)
{
    o[0] = (uint8_t)(0x80 | type); /* array_completeness: all of them are here */
    o[1] = 0, o[2] = 1;            /* one NAL unit */
    o[3] = (uint8_t)(n >> 8), o[4] = (uint8_t)n;
    memcpy(o + 5, nal, n);
    return 5 + n;
}

int live_hevc_config(const uint8_t *vps, size_t vps_len, const uint8_t *sps, size_t sps_len,
                     const uint8_t *pps, size_t pps_len, uint8_t *out, size_t cap)
{
    uint8_t ptl[12];
    unsigned sub = 1, nested = 0, chroma = 1, dy = 0, dc = 0;
    if (vps_len > 0xffff || sps_len > 0xffff || pps_len > 0xffff) return -1;
    if (!vps_len || !pps_len || cap < 23 + 15 + vps_len + sps_len + pps_len) return -1;
    if (!read_sps(sps, sps_len, ptl, &sub, &nested, &chroma, &dy, &dc)) return -1;
    size_t n = 0;
    out[n++] = 1;
    memcpy(out + n, ptl, 12), n += 12;
    out[n++] = 0xf0, out[n++] = 0; /* min_spatial_segmentation_idc 0 */
    out[n++] = 0xfc;               /* parallelismType unknown */
    out[n++] = (uint8_t)(0xfc | chroma);
    out[n++] = (uint8_t)(0xf8 | dy);
    out[n++] = (uint8_t)(0xf8 | dc);
    out[n++] = 0, out[n++] = 0; /* avgFrameRate unknown */
    out[n++] = (uint8_t)((sub & 7) << 3 | (nested & 1) << 2 | 3);
    out[n++] = 3; /* arrays: VPS, SPS, PPS */
    n += put_array(out + n, 32, vps, vps_len);
    n += put_array(out + n, 33, sps, sps_len);
    n += put_array(out + n, 34, pps, pps_len);
    return (int)n;
}

static unsigned reverse32(unsigned v)
{
    unsigned r = 0;
    for (int i = 0; i < 32; i++, v >>= 1)
        r = r << 1 | (v & 1);
    return r;
}

void live_hevc_codecs(const uint8_t *h, size_t len, char *buf, size_t cap)
{
    if (cap == 0) return;
    snprintf(buf, cap, "hvc1");
    if (len < 13) return;
    static const char *space[] = {"", "A", "B", "C"};
    unsigned compat = (unsigned)h[2] << 24 | (unsigned)h[3] << 16 | (unsigned)h[4] << 8 | h[5];
    int n = snprintf(buf, cap, "hvc1.%s%u.%X.%c%u", space[h[1] >> 6], h[1] & 0x1fu,
                     reverse32(compat), (h[1] & 0x20) ? 'H' : 'L', h[12]);
    int last = 5; /* the constraint bytes h[6..11], trailing zero bytes left out */
    while (last >= 0 && h[6 + last] == 0)
        last--;
    for (int i = 0; i <= last && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, ".%X", h[6 + i]);
}

unsigned live_opus_samples(const uint8_t *p, size_t len)
{
    static const unsigned silk[] = {480, 960, 1920, 2880}; /* 10, 20, 40, 60 ms */
    if (len < 1) return 0;
    unsigned config = p[0] >> 3, frame;
    if (config < 12)
        frame = silk[config & 3];
    else if (config < 16)
        frame = (config & 1) ? 960 : 480; /* hybrid: 10 or 20 ms */
    else
        frame = 120u << (config & 3); /* CELT: 2.5, 5, 10, 20 ms */
    unsigned count;
    switch (p[0] & 3) {
    case 0:
        count = 1;
        break;
    case 1:
    case 2:
        count = 2;
        break;
    default:
        if (len < 2) return 0;
        count = p[1] & 0x3f;
    }
    unsigned total = frame * count;
    return count && total <= 5760 ? total : 0; /* at most 120 ms */
}
