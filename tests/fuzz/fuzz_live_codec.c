/* fuzz_live_codec.c: libFuzzer target for the live relay's codec facts
 * (src/hub/live_codec.h), which read bytes an MPEG-TS upload sent.
 *
 * The input's first byte sizes the output buffer (twice its value, so
 * sometimes too small); then come three NAL units (VPS, SPS, PPS), each
 * after a 1-byte length (a short last one takes what is left).  When an
 * hvcC is made of them, it must fit, say version 1 with three arrays and
 * hold the three units unchanged; its codecs string, and the one of the
 * raw input, end inside their buffers.  Every tail of the input is also
 * an Opus packet, whose
 * duration is 0 or 2.5 ms to 120 ms in 2.5 ms steps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/live_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_live_codec: check failed at line %d: %s\n", __LINE__, #cond);    \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The next unit: a length byte, then that many bytes (or what is left). */
static const uint8_t *unit(const uint8_t **p, const uint8_t *end, size_t *len)
{
    if (*p >= end) {
        *len = 0;
        return *p;
    }
    size_t n = **p;
    (*p)++;
    if (n > (size_t)(end - *p)) n = (size_t)(end - *p);
    const uint8_t *u = *p;
    *p += n;
    *len = n;
    return u;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    size_t vn, sn, pn;
    size_t cap = size ? (size_t)data[0] * 2 : 0; /* sometimes too small */
    p += size ? 1 : 0;
    const uint8_t *vps = unit(&p, end, &vn), *sps = unit(&p, end, &sn), *pps = unit(&p, end, &pn);
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out) return 0;
    int n = live_hevc_config(vps, vn, sps, sn, pps, pn, out, cap);
    CHECK(n == -1 || (n > 0 && (size_t)n <= cap));
    if (n > 0) {
        CHECK(out[0] == 1 && out[22] == 3);
        CHECK((size_t)n == 23 + 15 + vn + sn + pn);
        CHECK(memcmp(out + 23 + 5, vps, vn) == 0);
        CHECK(memcmp(out + 23 + 10 + vn, sps, sn) == 0);
        CHECK(memcmp(out + 23 + 15 + vn + sn, pps, pn) == 0);
        char codecs[64];
        live_hevc_codecs(out, (size_t)n, codecs, sizeof codecs);
        CHECK(strncmp(codecs, "hvc1.", 5) == 0 && strlen(codecs) < sizeof codecs);
    }
    free(out);
    char small[12];
    live_hevc_codecs(data, size, small, sizeof small);
    CHECK(strlen(small) < sizeof small);
    for (size_t i = 0; i < size; i++) {
        unsigned s = live_opus_samples(data + i, size - i);
        CHECK(s % 120 == 0 && s <= 5760);
    }
    return 0;
}
