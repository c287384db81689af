/* base64.h: base64 (RFC 4648 section 4, standard alphabet, with padding),
 * used for Sec-WebSocket-Key and Sec-WebSocket-Accept.  No allocation. */
#ifndef AXON_PROTO_WS_BASE64_H
#define AXON_PROTO_WS_BASE64_H

#include <stddef.h>
#include <stdint.h>

#include <axon/error.h>

/* Characters ax_ws_base64_encode() writes for `n` input bytes (no NUL). */
#define AX_WS_BASE64_LEN(n) (((n) + 2) / 3 * 4)

/* Encodes in[0..len) into out, which must hold AX_WS_BASE64_LEN(len) + 1
 * bytes; the text is NUL-terminated.  Returns its length (without NUL). */
size_t ax_ws_base64_encode(char *out, const void *in, size_t len);

/* Strictly decodes in[0..len): length a multiple of 4, only the standard
 * alphabet, '=' only as the last one or two characters, and the unused bits
 * before the padding zero (so every byte string has exactly one accepted
 * encoding).  On success stores the decoded length in *out_len and returns
 * 0; AX_EINVAL for malformed input, AX_ENOBUFS when it needs more than
 * `cap` bytes (nothing useful is left in out then). */
AX_MUST_CHECK int ax_ws_base64_decode(uint8_t *out, size_t cap, const char *in, size_t len,
                                      size_t *out_len);

#endif
