/* utf8.h: a strict, incremental UTF-8 validator (RFC 3629, as RFC 6455
 * section 8.1 requires for text messages and close reasons).
 *
 * The validator is a small DFA whose state is carried across calls, so a
 * text message can be checked fragment by fragment as it arrives.  It
 * rejects overlong forms, UTF-16 surrogates (U+D800..U+DFFF), code points
 * above U+10FFFF, the 5- and 6-byte forms and stray continuation bytes, and
 * it fails fast: the failure is reported at the first byte that cannot be
 * part of any valid sequence (E0 80 fails at 80, ED A0 at A0, F4 90 at 90),
 * not at the end of the sequence.  Runs of ASCII are checked 8 bytes at a
 * time.  No allocation; never reads past `len`. */
#ifndef AXON_PROTO_WS_UTF8_H
#define AXON_PROTO_WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Internal DFA states (bit offsets, see utf8.c). */
#define AX_UTF8_ACCEPT 0 /* at a character boundary */
#define AX_UTF8_REJECT 6 /* failed; stays failed */

typedef struct ax_utf8 {
    uint8_t state;
} ax_utf8;

static inline void ax_utf8_init(ax_utf8 *v)
{
    v->state = AX_UTF8_ACCEPT;
}

/* Validates `len` more bytes of a stream.  Returns `len` when every byte so
 * far is a prefix of valid UTF-8; otherwise the index (within this call's
 * buffer) of the first byte that cannot be, after which the validator stays
 * failed and later calls return 0. */
size_t ax_utf8_feed(ax_utf8 *v, const void *buf, size_t len);

/* True once a bad byte has been seen. */
static inline bool ax_utf8_failed(const ax_utf8 *v)
{
    return v->state == AX_UTF8_REJECT;
}

/* True when everything fed so far is complete, valid UTF-8: no failure and
 * no sequence cut short.  Check this at the end of a message. */
static inline bool ax_utf8_complete(const ax_utf8 *v)
{
    return v->state == AX_UTF8_ACCEPT;
}

/* One shot: true when buf[0..len) is complete, valid UTF-8. */
bool ax_utf8_valid(const void *buf, size_t len);

#endif
