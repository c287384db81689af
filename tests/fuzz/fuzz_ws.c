/* fuzz_ws.c: libFuzzer target for the WebSocket framing layer.
 *
 * The input is a byte stream as a peer would send it.  It goes through:
 *  - the frame parser in four configurations (server and client, with and
 *    without RSV bits and limits), fed all at once, a byte at a time and in
 *    pseudo-random pieces: the three runs must tell the same story;
 *  - in the all-at-once run, every header is checked against rules written
 *    out again here (the verdict and the close code), re-encoded with the
 *    encoder (minimal encoding makes that byte-exact), payloads against a
 *    byte-at-a-time unmask, and text and close reasons against a slow
 *    UTF-8 reference;
 *  - the UTF-8 validator against that reference, whole and split;
 *  - base64 encode/decode round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws/base64.h"
#include "proto/ws/utf8.h"
#include "proto/ws/ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ws: check failed at line %d: %s\n", __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* --- slow reference UTF-8 decoder ---
 * A lead byte announces a length L and the top bits of a code point; after
 * k bytes, the code points still reachable form an interval.  A byte is bad
 * when that interval no longer meets the code points that are valid in L
 * bytes: at least the smallest needing L bytes, at most U+10FFFF, and not a
 * surrogate.  Returns the first bad index or -1, and whether the text ends
 * on a character boundary. */

static int reachable(uint32_t lo, uint32_t hi, uint32_t min)
{
    if (lo < min) lo = min;
    if (hi > 0x10ffff) hi = 0x10ffff;
    if (lo > hi) return 0;
    return !(lo >= 0xd800 && hi <= 0xdfff);
}

static long ref_utf8(const uint8_t *s, size_t n, int *complete)
{
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;

    *complete = 0;
    while (i < n) {
        uint8_t b = s[i];
        int len;
        uint32_t bits;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0)
            len = 2, bits = b & 0x1f;
        else if ((b & 0xf0) == 0xe0)
            len = 3, bits = b & 0x0f;
        else if ((b & 0xf8) == 0xf0)
            len = 4, bits = b & 0x07;
        else
            return (long)i;
        for (int k = 1;; k++) {
            int rest = 6 * (len - k);
            uint32_t lo = bits << rest, hi = lo | ((1u << rest) - 1);
            if (!reachable(lo, hi, min_cp[len])) return (long)(i + (size_t)k - 1);
            if (k == len) break;
            if (i + (size_t)k >= n) return -1;
            if ((s[i + (size_t)k] & 0xc0) != 0x80) return (long)(i + (size_t)k);
            bits = bits << 6 | (s[i + (size_t)k] & 0x3f);
        }
        i += (size_t)len;
    }
    *complete = 1;
    return -1;
}

static int ref_utf8_ok(const uint8_t *s, size_t n)
{
    int complete;
    return ref_utf8(s, n, &complete) < 0 && complete;
}

static void fuzz_utf8(const uint8_t *data, size_t size)
{
    int complete;
    long bad = ref_utf8(data, size, &complete);
    ax_utf8 v;

    ax_utf8_init(&v);
    size_t r = ax_utf8_feed(&v, data, size);
    CHECK(bad < 0 ? r == size : r == (size_t)bad);
    CHECK(ax_utf8_failed(&v) == (bad >= 0));
    CHECK(ax_utf8_complete(&v) == (bad < 0 && complete));
    CHECK(ax_utf8_valid(data, size) == (bad < 0 && complete));

    /* split in two at a point chosen by the data */
    size_t cut = size ? (data[0] * 131u + size) % (size + 1) : 0;
    ax_utf8_init(&v);
    size_t r1 = ax_utf8_feed(&v, data, cut);
    if (r1 != cut) {
        CHECK(bad >= 0 && r1 == (size_t)bad);
        return;
    }
    size_t r2 = ax_utf8_feed(&v, data + cut, size - cut);
    CHECK(bad < 0 ? r2 == size - cut : cut + r2 == (size_t)bad);
    CHECK(ax_utf8_complete(&v) == (bad < 0 && complete));
}

/* --- the rules of RFC 6455 5.2/5.4/5.5 and RFC 7692 6, written again --- */

typedef struct ref_header {
    unsigned opcode, rsv, len7;
    int fin, masked;
    uint64_t len;
    size_t hlen;
    uint8_t key[4];
} ref_header;

/* What the parser must say about a header starting at in[0..avail), given
 * whether a data message is open and its length so far: 0 to accept, -1
 * when it needs more bytes to decide, or the close code.  Rules decidable
 * from the first two bytes are decided there; the rest need the header. */
static int ref_verdict(const ax_ws_config *cfg, int in_msg, uint64_t msg_len, const uint8_t *in,
                       size_t avail, ref_header *h)
{
    if (avail < 2) return -1;
    h->fin = in[0] >> 7;
    h->rsv = in[0] & 0x70;
    h->opcode = in[0] & 0x0f;
    h->masked = in[1] >> 7;
    h->len7 = in[1] & 0x7f;
    int control = h->opcode >= 8;
    int known = h->opcode <= 2 || (h->opcode >= 8 && h->opcode <= 10);

    if (!known) return 1002;
    if (h->rsv & ~(unsigned)cfg->rsv_allowed) return 1002;
    if (cfg->role == AX_WS_SERVER && !h->masked) return 1002;
    if (cfg->role == AX_WS_CLIENT && h->masked) return 1002;
    if (control && (!h->fin || h->len7 > 125)) return 1002;
    if ((h->rsv & 0x40) && (control || h->opcode == 0)) return 1002;
    if (h->opcode == 0 && !in_msg) return 1002;
    if ((h->opcode == 1 || h->opcode == 2) && in_msg) return 1002;

    size_t ext = h->len7 == 126 ? 2 : h->len7 == 127 ? 8 : 0;
    h->hlen = 2 + ext + (h->masked ? 4 : 0);
    if (avail < h->hlen) return -1;
    h->len = ext ? 0 : h->len7;
    for (size_t i = 0; i < ext; i++)
        h->len = h->len * 256 + in[2 + i];
    if (h->masked) memcpy(h->key, in + 2 + ext, 4);
    if (ext == 2 && h->len < 126) return 1002;
    if (ext == 8 && (h->len < 65536 || h->len >= (1ull << 63))) return 1002;
    if (!control && cfg->max_frame && h->len > cfg->max_frame) return 1009;
    if (!control && cfg->max_message && msg_len + h->len > cfg->max_message) return 1009;
    return 0;
}

static int ref_close_code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

/* The close verdict for a complete close payload: 0, 1002 or 1007. */
static int ref_close(const uint8_t *p, size_t n)
{
    if (n == 0) return 0;
    if (n == 1) return 1002;
    if (!ref_close_code_ok((unsigned)p[0] << 8 | p[1])) return 1002;
    return ref_utf8_ok(p + 2, n - 2) ? 0 : 1007;
}

/* --- a transcript hash that does not depend on how input was split --- */

typedef struct story {
    uint64_t h;       /* everything settled so far */
    uint64_t frame_h; /* payload of the frame in progress */
    unsigned events;
} story;

static void mix(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void mix_u64(uint64_t *h, uint64_t v)
{
    mix(h, &v, sizeof v);
}

/* The story an event adds.  A frame's payload counts once the frame is
 * complete (or the input ends inside it), because pieces of a frame that
 * then fails differ with the split. */
static void tell(story *s, const ax_ws_event *ev)
{
    switch (ev->type) {
    case AX_WS_EV_NEED_MORE:
        return;
    case AX_WS_EV_DATA:
        mix(&s->frame_h, ev->data, ev->len);
        if (!ev->frame_end) return;
        mix_u64(&s->h, s->frame_h);
        mix_u64(&s->h, 0x100u | ev->opcode | (unsigned)ev->compressed << 4 |
                           (unsigned)ev->message_end << 5);
        s->frame_h = 0xcbf29ce484222325ull;
        break;
    case AX_WS_EV_CONTROL:
        mix_u64(&s->h, 0x200u | ev->opcode);
        mix_u64(&s->h, ev->code);
        mix(&s->h, ev->data, ev->len);
        break;
    case AX_WS_EV_ERROR:
        mix_u64(&s->h, 0x300u | (uint64_t)ev->code << 16);
        break;
    }
    s->events++;
}

/* Checks every event must pass, however the input is split. */
static void check_event(const ax_ws_event *ev, const uint8_t *buf, size_t len, size_t used)
{
    CHECK(used <= len);
    switch (ev->type) {
    case AX_WS_EV_NEED_MORE:
        CHECK(used == len);
        break;
    case AX_WS_EV_DATA:
        CHECK(ev->data >= buf && ev->data + ev->len <= buf + used);
        CHECK(ev->opcode == AX_WS_TEXT || ev->opcode == AX_WS_BINARY);
        CHECK(!ev->message_end || ev->frame_end);
        break;
    case AX_WS_EV_CONTROL:
        CHECK(ev->len <= 125);
        CHECK(ev->opcode == AX_WS_CLOSE || ev->opcode == AX_WS_PING || ev->opcode == AX_WS_PONG);
        if (ev->opcode == AX_WS_CLOSE) {
            CHECK(ev->code == 1005 ? ev->len == 0 : ref_close_code_ok(ev->code));
            CHECK(ref_utf8_ok(ev->data, ev->len));
        }
        break;
    case AX_WS_EV_ERROR:
        CHECK(ev->code == 1002 || ev->code == 1007 || ev->code == 1009);
        break;
    }
}

/* Feeds in[0..size) in pieces (step 0: all at once; SIZE_MAX: random
 * pieces) and returns the story. */
static uint64_t run_split(const ax_ws_config *cfg, const uint8_t *in, size_t size, size_t step,
                          uint8_t *work)
{
    ax_ws_parser p;
    story s = {0xcbf29ce484222325ull, 0xcbf29ce484222325ull, 0};
    uint32_t rng = (uint32_t)size * 2654435761u + 1;
    size_t off = 0;
    int failed = 0;

    memcpy(work, in, size);
    ax_ws_parser_init(&p, cfg);
    while (off < size && !failed) {
        size_t k = step;
        if (step == SIZE_MAX) {
            rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
            k = 1 + rng % 23;
        }
        if (k == 0 || k > size - off) k = size - off;
        /* The piece must be consumed before the next one arrives. */
        size_t pos = 0;
        while (pos < k) {
            ax_ws_event ev;
            size_t used = ax_ws_parse(&p, work + off + pos, k - pos, &ev);
            check_event(&ev, work + off + pos, k - pos, used);
            tell(&s, &ev);
            pos += used;
            if (ev.type == AX_WS_EV_NEED_MORE) break;
            if (ev.type == AX_WS_EV_ERROR) {
                failed = 1;
                break;
            }
        }
        off += k;
    }
    if (!failed) {
        mix_u64(&s.h, s.frame_h);
        mix_u64(&s.h, (uint64_t)p.have << 32 | (uint64_t)ax_ws_parser_in_message(&p));
        mix_u64(&s.h, p.left);
    }
    mix_u64(&s.h, s.events);
    return s.h;
}

/* State the all-at-once run keeps beside the parser to check it. */
typedef struct oracle {
    const ax_ws_config *cfg;
    const uint8_t *in; /* the input as it arrived (still masked) */
    size_t size;
    int in_msg, msg_text, msg_compressed;
    uint64_t msg_len;
    uint8_t *msg; /* the open message, unmasked */
    size_t msg_n;
} oracle;

/* Unmasks the first `n` payload bytes of frame `h` (at `in`) into out,
 * the slow way. */
static void ref_unmask(const ref_header *h, const uint8_t *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] ^ (h->masked ? h->key[i % 4] : 0);
}

/* An error the header rules do not explain must come from the payload. */
static void check_payload_error(oracle *o, const ref_header *h, size_t at, uint16_t code)
{
    size_t avail = o->size - at - h->hlen;
    int whole = avail >= h->len;
    uint8_t ctrl[125];

    if (whole) avail = (size_t)h->len;
    if (h->opcode == AX_WS_CLOSE) {
        CHECK(whole);
        ref_unmask(h, o->in + at + h->hlen, avail, ctrl);
        CHECK(ref_close(ctrl, avail) == code);
        return;
    }
    /* Otherwise a text message: bad bytes, or cut short at its end. */
    CHECK(code == 1007 && o->msg_text && !o->msg_compressed);
    ref_unmask(h, o->in + at + h->hlen, avail, o->msg + o->msg_n);
    int complete;
    long bad = ref_utf8(o->msg, o->msg_n + avail, &complete);
    CHECK(bad >= 0 || (whole && h->fin && !complete));
}

/* One parser call in the all-at-once run: exactly one frame (its header
 * and all the payload there is). */
static size_t oracle_step(oracle *o, ax_ws_parser *p, uint8_t *work, size_t at, int *done)
{
    ref_header h;
    ax_ws_event ev;
    int verdict = ref_verdict(o->cfg, o->in_msg, o->msg_len, o->in + at, o->size - at, &h);
    size_t used = ax_ws_parse(p, work + at, o->size - at, &ev);

    check_event(&ev, work + at, o->size - at, used);
    *done = 1;
    if (verdict == 0 && (h.opcode == AX_WS_TEXT || h.opcode == AX_WS_BINARY)) {
        o->msg_text = h.opcode == AX_WS_TEXT; /* an accepted header opens a message */
        o->msg_compressed = (h.rsv & AX_WS_RSV1) != 0;
        o->msg_n = 0;
        o->msg_len = 0;
    }
    if (ev.type == AX_WS_EV_ERROR) {
        CHECK(verdict != -1);
        if (verdict > 0)
            CHECK(ev.code == verdict);
        else
            check_payload_error(o, &h, at, ev.code);
        return used;
    }
    if (ev.type == AX_WS_EV_NEED_MORE) {
        /* Undecided header, or an accepted one still missing payload. */
        CHECK(verdict == -1 || (verdict == 0 && o->size - at - h.hlen < h.len));
        return used;
    }
    CHECK(verdict == 0);
    /* The encoder writes the same header back: the length rules leave one encoding. */
    uint8_t hdr[AX_WS_MAX_HEADER];
    size_t hn = ax_ws_encode_header(hdr, h.opcode, h.fin, h.rsv, h.len, h.masked ? h.key : NULL);
    CHECK(hn == h.hlen && memcmp(hdr, o->in + at, hn) == 0);
    CHECK(p->frame.header_len == hn && p->frame.len == h.len && p->frame.opcode == h.opcode);

    if (ev.type == AX_WS_EV_CONTROL) {
        CHECK(used == h.hlen + h.len);
        *done = 0;
        return used;
    }
    /* Data: the payload unmasked the slow way matches. */
    CHECK(ev.data == work + at + h.hlen && used == h.hlen + ev.len);
    ref_unmask(&h, o->in + at + h.hlen, ev.len, o->msg + o->msg_n);
    CHECK(memcmp(o->msg + o->msg_n, ev.data, ev.len) == 0);
    o->msg_n += ev.len;
    o->msg_len += h.len;
    o->in_msg = !h.fin;
    CHECK(ev.frame_end == (ev.len == h.len));
    CHECK(ev.message_end == (ev.frame_end && h.fin));
    if (ev.message_end && o->msg_text && !o->msg_compressed) CHECK(ref_utf8_ok(o->msg, o->msg_n));
    if (ev.message_end) o->msg_len = 0;
    *done = !ev.frame_end;
    return used;
}

static uint64_t run_checked(const ax_ws_config *cfg, const uint8_t *in, size_t size, uint8_t *work,
                            uint8_t *msg)
{
    oracle o = {cfg, in, size, 0, 0, 0, 0, msg, 0};
    ax_ws_parser p;
    size_t at = 0;
    int done = 0;

    memcpy(work, in, size);
    ax_ws_parser_init(&p, cfg);
    while (at < size && !done)
        at += oracle_step(&o, &p, work, at, &done);
    /* Errors are final. */
    ax_ws_event ev;
    if (p.error) {
        CHECK(ax_ws_parse(&p, work, size, &ev) == 0 && ev.type == AX_WS_EV_ERROR);
    }
    return run_split(cfg, in, size, 0, work);
}

static void fuzz_frames(const uint8_t *data, size_t size)
{
    static const ax_ws_config cfgs[] = {
        {AX_WS_SERVER, 0, 0, 0},
        {AX_WS_CLIENT, 0, 0, 0},
        {AX_WS_SERVER, AX_WS_RSV1, 100, 300},
        {AX_WS_CLIENT, AX_WS_RSV_ALL, 0, 50},
    };
    uint8_t *work = malloc(size ? size : 1), *msg = malloc(size ? size : 1);
    CHECK(work && msg);
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        uint64_t whole = run_checked(&cfgs[i], data, size, work, msg);
        CHECK(run_split(&cfgs[i], data, size, 1, work) == whole);
        CHECK(run_split(&cfgs[i], data, size, SIZE_MAX, work) == whole);
    }
    free(work);
    free(msg);
}

static void fuzz_base64(const uint8_t *data, size_t size)
{
    size_t n = size > 3000 ? 3000 : size, m;
    char *text = malloc(AX_WS_BASE64_LEN(n) + 1);
    uint8_t *raw = malloc(n + 3);
    CHECK(text && raw);
    size_t tl = ax_ws_base64_encode(text, data, n);
    CHECK(tl == AX_WS_BASE64_LEN(n) && text[tl] == '\0');
    CHECK(ax_ws_base64_decode(raw, n, text, tl, &m) == 0 && m == n && memcmp(raw, data, n) == 0);
    /* Whatever decodes re-encodes to the same text: one encoding per value. */
    if (ax_ws_base64_decode(raw, n + 3, (const char *)data, n, &m) == 0) {
        CHECK(ax_ws_base64_encode(text, raw, m) == n && memcmp(text, data, n) == 0);
    }
    free(text);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_utf8(data, size);
    fuzz_frames(data, size);
    fuzz_base64(data, size);
    return 0;
}
