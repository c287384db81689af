/* base64.c: RFC 4648 base64, encoder and strict decoder. */
#include "proto/ws/base64.h"

#include <stdbool.h>

static const char alphabet[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t ax_ws_base64_encode(char *out, const void *in, size_t len)
{
    const uint8_t *p = in;
    char *o = out;
    size_t i = 0;

    for (; len - i >= 3; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    *o = '\0';
    return (size_t)(o - out);
}

/* The 6-bit value of a base64 character, or -1. */
static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int ax_ws_base64_decode(uint8_t *out, size_t cap, const char *in, size_t len, size_t *out_len)
{
    size_t pad = 0, n = 0;

    if (len % 4 != 0) return AX_EINVAL;
    if (len >= 1 && in[len - 1] == '=') pad++;
    if (len >= 2 && in[len - 2] == '=') pad++;
    if (len / 4 * 3 - pad > cap) return AX_ENOBUFS;

    for (size_t i = 0; i < len; i += 4) {
        bool last = i + 4 == len;
        size_t q = last ? 4 - pad : 4; /* significant characters in this quantum */
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int s = k < q ? sextet(in[i + k]) : 0;
            if (s < 0) return AX_EINVAL;
            v = v << 6 | (uint32_t)s;
        }
        /* Bits that the padding hides must be zero (canonical form). */
        if ((q == 2 && (v & 0xffff)) || (q == 3 && (v & 0xff))) return AX_EINVAL;
        out[n++] = (uint8_t)(v >> 16);
        if (q >= 3) out[n++] = (uint8_t)(v >> 8);
        if (q == 4) out[n++] = (uint8_t)v;
    }
    *out_len = n;
    return 0;
}
