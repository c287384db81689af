/* test_ws_frame.c: the WebSocket framing layer, section by section of RFC
 * 6455 (5.2 framing, 5.4 fragmentation, 5.5 control frames, 5.7 examples,
 * 7.4 close codes, 8.1 UTF-8) and RFC 7692's use of RSV1, plus masking,
 * the encoder, base64 and the accept helper.
 *
 * Most checks are rows of a table: wire bytes in hex and the transcript the
 * parser must produce.  Every row runs whole, byte by byte and in small
 * pieces, each piece copied so that it ends at an unreadable page. */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "proto/ws/base64.h"
#include "proto/ws/ws_frame.h"

/* --- transcripts: what a byte stream makes the parser report --- */

typedef struct transcript {
    char out[4096];
    size_t n;
    uint8_t msg[1 << 17]; /* the data message being reassembled */
    size_t msg_len;
} transcript;

static void emit(transcript *t, const char *fmt, ...)
{
    va_list ap;
    if (t->n) t->out[t->n++] = ' ';
    va_start(ap, fmt);
    int k = vsnprintf(t->out + t->n, sizeof t->out - t->n, fmt, ap);
    va_end(ap);
    ASSERT(k >= 0 && (size_t)k < sizeof t->out - t->n);
    t->n += (size_t)k;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/* "'text'" with \xHH escapes, "<hex>", or for long payloads "[N #hash]". */
static void render(char *out, size_t cap, bool quoted, const uint8_t *p, size_t n)
{
    size_t o = 0;
    if (n > 48) {
        snprintf(out, cap, "[%zu #%08x]", n, (unsigned)fnv1a(p, n));
        return;
    }
    out[o++] = quoted ? '\'' : '<';
    for (size_t i = 0; i < n; i++) {
        if (quoted && p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\'' && p[i] != '\\')
            out[o++] = (char)p[i];
        else
            o += (size_t)snprintf(out + o, cap - o, quoted ? "\\x%02x" : "%02x", p[i]);
    }
    out[o++] = quoted ? '\'' : '>';
    out[o] = '\0';
}

/* Feeds in[0..len) to a fresh parser in pieces of `step` bytes (0: all at
 * once), each piece ending at the guard page, and writes the transcript:
 * T'text' / B<hex> per complete data message (z prefix when compressed),
 * ping'..' pong'..' close=CODE'reason' per control frame, !CODE for an
 * error, and a final "..." when the stream stops inside a frame or
 * message. */
static void run_stream(const ax_ws_config *cfg, const uint8_t *in, size_t len, size_t step,
                       transcript *t)
{
    ax_ws_parser p;
    char buf[256];
    size_t off = 0;
    bool failed = false;

    t->n = 0;
    t->out[0] = '\0';
    t->msg_len = 0;
    ax_ws_parser_init(&p, cfg);
    if (step == 0) step = len ? len : 1;
    while (off < len && !failed) {
        size_t k = len - off < step ? len - off : step, pos = 0;
        uint8_t *piece = tu_guarded(in + off, k);
        while (pos < k) {
            ax_ws_event ev;
            size_t used = ax_ws_parse(&p, piece + pos, k - pos, &ev);
            ASSERT(used <= k - pos);
            if (ev.type == AX_WS_EV_DATA) {
                ASSERT(ev.data >= piece + pos && ev.data + ev.len <= piece + pos + used);
                ASSERT(ev.opcode == AX_WS_TEXT || ev.opcode == AX_WS_BINARY);
            }
            pos += used;
            if (ev.type == AX_WS_EV_NEED_MORE) {
                ASSERT_EQ(pos, k);
                break;
            }
            if (ev.type == AX_WS_EV_ERROR) {
                emit(t, "!%u", ev.code);
                /* Errors are final. */
                ax_ws_event again;
                ASSERT_EQ(ax_ws_parse(&p, piece, k, &again), 0);
                ASSERT_EQ(again.type, AX_WS_EV_ERROR);
                ASSERT_EQ(again.code, ev.code);
                failed = true;
                break;
            }
            if (ev.type == AX_WS_EV_CONTROL) {
                render(buf, sizeof buf, true, ev.data, ev.len);
                if (ev.opcode == AX_WS_PING) emit(t, "ping%s", buf);
                if (ev.opcode == AX_WS_PONG) emit(t, "pong%s", buf);
                if (ev.opcode == AX_WS_CLOSE) emit(t, "close=%u%s", ev.code, buf);
                continue;
            }
            ASSERT(t->msg_len + ev.len <= sizeof t->msg);
            memcpy(t->msg + t->msg_len, ev.data, ev.len);
            t->msg_len += ev.len;
            if (!ev.message_end) continue;
            render(buf, sizeof buf, ev.opcode == AX_WS_TEXT, t->msg, t->msg_len);
            emit(t, "%s%c%s", ev.compressed ? "z" : "", ev.opcode == AX_WS_TEXT ? 'T' : 'B', buf);
            t->msg_len = 0;
        }
        off += k;
    }
    if (!failed && (p.have || p.left || ax_ws_parser_in_message(&p))) emit(t, "...");
}

/* Compares a transcript with what it should be, printing both on failure
 * (the runner's ASSERT_STREQ would cut long ones). */
static void expect(const transcript *t, const char *want, const char *what)
{
    if (strcmp(t->out, want) == 0) return;
    fprintf(stderr, "# %s\n#   got:  %s\n#   want: %s\n", what, t->out, want);
    ASSERT(!"transcript differs");
}

typedef struct frame_case {
    const char *name;
    enum ax_ws_role role;
    uint8_t rsv_allowed;
    uint64_t max_frame, max_message;
    const char *wire;
    const char *want;
} frame_case;

/* clang-format off */
#define SRV(name, wire, want) {name, AX_WS_SERVER, 0, 0, 0, wire, want}
#define CLI(name, wire, want) {name, AX_WS_CLIENT, 0, 0, 0, wire, want}
#define CLI_RSV(name, rsv, wire, want) {name, AX_WS_CLIENT, rsv, 0, 0, wire, want}
#define CLI_MAX(name, frame, msg, wire, want) {name, AX_WS_CLIENT, 0, frame, msg, wire, want}
/* clang-format on */

static const frame_case frame_cases[] = {
    /* 5.7: the RFC's own examples ("Hello", key 37 fa 21 3d) */
    CLI("5.7 unmasked text", "81 05 48656c6c6f", "T'Hello'"),
    SRV("5.7 masked text", "81 85 37fa213d 7f9f4d5158", "T'Hello'"),
    CLI("5.7 fragmented unmasked text", "01 03 48656c 80 02 6c6f", "T'Hello'"),
    CLI("5.7 unmasked ping", "89 05 48656c6c6f", "ping'Hello'"),
    SRV("5.7 masked pong", "8a 85 37fa213d 7f9f4d5158", "pong'Hello'"),

    /* 5.2: base framing */
    CLI("empty text", "81 00", "T''"),
    CLI("empty binary", "82 00", "B<>"),
    CLI("binary", "82 03 00ff80", "B<00ff80>"),
    CLI("frames back to back", "81 01 61 82 01 62 8a 00", "T'a' B<62> pong''"),
    SRV("zero masking key", "82 83 00000000 010203", "B<010203>"),
    CLI("reserved opcode 3", "83 00", "!1002"),
    CLI("reserved opcode 4", "84 00", "!1002"),
    CLI("reserved opcode 5", "85 00", "!1002"),
    CLI("reserved opcode 6", "86 00", "!1002"),
    CLI("reserved opcode 7", "87 00", "!1002"),
    CLI("reserved opcode B", "8b 00", "!1002"),
    CLI("reserved opcode C", "8c 00", "!1002"),
    CLI("reserved opcode D", "8d 00", "!1002"),
    CLI("reserved opcode E", "8e 00", "!1002"),
    CLI("reserved opcode F", "8f 00", "!1002"),
    CLI("reserved opcode, not final", "03 00", "!1002"),
    CLI("reserved opcode after a good frame", "81 01 61 83 00", "T'a' !1002"),
    CLI("RSV1 not negotiated", "c1 00", "!1002"),
    CLI("RSV2 not negotiated", "a1 00", "!1002"),
    CLI("RSV3 not negotiated", "91 00", "!1002"),
    CLI("all RSV bits", "f1 00", "!1002"),
    SRV("client frame without mask", "81 01 61", "!1002"),
    SRV("client ping without mask", "89 00", "!1002"),
    CLI("server frame with mask", "81 81 00000000 61", "!1002"),
    CLI("server close with mask", "88 80 00000000", "!1002"),
    CLI("16-bit length < 126", "82 7e 007d", "!1002"),
    CLI("16-bit length 0", "82 7e 0000", "!1002"),
    CLI("64-bit length 0xffff", "82 7f 000000000000ffff", "!1002"),
    CLI("64-bit length 0", "82 7f 0000000000000000", "!1002"),
    CLI("64-bit length with MSB", "82 7f 8000000000000000", "!1002"),
    CLI("64-bit length all ones", "82 7f ffffffffffffffff", "!1002"),
    CLI("16-bit length 126 awaits payload", "82 7e 007e", "..."),
    CLI("64-bit length 65536 awaits payload", "82 7f 0000000000010000", "..."),
    CLI("64-bit 2^63-1 awaits payload", "82 7f 7fffffffffffffff", "..."),
    CLI("header cut in the length", "82 7f 0000", "..."),
    SRV("header cut in the key", "82 80 0000", "..."),
    CLI("payload cut short", "82 05 0102", "..."),
    CLI("one byte", "81", "..."),

    /* limits (1009), decided from the header alone */
    CLI_MAX("frame at max_frame", 4, 0, "82 04 01020304", "B<01020304>"),
    CLI_MAX("frame over max_frame", 4, 0, "82 05", "!1009"),
    CLI_MAX("16-bit frame over max_frame", 200, 0, "82 7e 00c9", "!1009"),
    CLI_MAX("64-bit frame over max_frame", 1 << 20, 0, "82 7f 0000010000000000", "!1009"),
    CLI_MAX("MSB length is 1002 not 1009", 4, 4, "82 7f 8000000000000000", "!1002"),
    CLI_MAX("non-minimal is 1002 not 1009", 4, 4, "82 7e 0005", "!1002"),
    CLI_MAX("control frames ignore the limits", 2, 2, "89 05 68656c6c6f", "ping'hello'"),
    CLI_MAX("message at max_message", 0, 6, "01 03 616263 80 03 646566", "T'abcdef'"),
    CLI_MAX("message over max_message", 0, 5, "01 03 616263 80 03 646566", "!1009"),
    CLI_MAX("max_message is per message", 0, 3, "81 03 616263 81 03 646566", "T'abc' T'def'"),
    CLI_MAX("control inside message not counted", 0, 2, "01 01 61 89 03 707172 80 01 62",
            "ping'pqr' T'ab'"),
    CLI_MAX("64-bit message over max_message", 0, 1000, "02 01 61 80 7f 0000000100000000", "!1009"),

    /* 5.4: fragmentation */
    CLI("continuation without start", "80 01 61", "!1002"),
    CLI("non-final continuation without start", "00 01 61", "!1002"),
    CLI("continuation after a finished message", "81 01 61 80 01 62", "T'a' !1002"),
    CLI("text inside fragmented text", "01 01 61 81 01 62", "!1002"),
    CLI("binary inside fragmented text", "01 01 61 02 01 62", "!1002"),
    CLI("text inside fragmented binary", "02 01 61 01 01 62", "!1002"),
    CLI("three fragments", "01 01 61 00 01 62 80 01 63", "T'abc'"),
    CLI("fragmented binary", "02 01 01 80 01 02", "B<0102>"),
    CLI("empty fragments", "01 00 00 00 80 00", "T''"),
    CLI("new message after the final fragment", "01 01 61 80 01 62 82 01 ff", "T'ab' B<ff>"),
    CLI("ping between fragments", "01 01 61 89 01 70 80 01 62", "ping'p' T'ab'"),
    CLI("pong between fragments", "02 01 61 8a 00 00 00 8a 01 71 80 01 62",
        "pong'' pong'q' B<6162>"),
    CLI("close between fragments", "01 01 61 88 02 03e8", "close=1000'' ..."),
    SRV("fragments with different keys", "01 81 01020304 60 80 81 0a0b0c0d 68", "T'ab'"),
    CLI("unfinished message", "01 01 61", "..."),

    /* 5.5: control frames */
    CLI("empty ping", "89 00", "ping''"),
    CLI("empty pong", "8a 00", "pong''"),
    CLI("ping with binary payload", "89 03 00ff27", "ping'\\x00\\xff\\x27'"),
    CLI("ping 7-bit length 126", "89 7e 007e", "!1002"),
    CLI("ping 7-bit length 127", "89 7f 0000000000010000", "!1002"),
    CLI("pong 7-bit length 126", "8a 7e 007e", "!1002"),
    CLI("close 7-bit length 126", "88 7e 007e", "!1002"),
    CLI("fragmented ping", "09 00", "!1002"),
    CLI("fragmented pong", "0a 00", "!1002"),
    CLI("fragmented close", "08 00", "!1002"),
    CLI("fragmented ping inside a message", "01 01 61 09 00 80 01 62", "!1002"),
    CLI_RSV("RSV1 on control frame", AX_WS_RSV1, "c9 00", "!1002"),

    /* 7.4: close codes and reasons (5.5.1) */
    CLI("close without code", "88 00", "close=1005''"),
    CLI("close 1-byte payload", "88 01 03", "!1002"),
    CLI("close 1000", "88 02 03e8", "close=1000''"),
    CLI("close 1000 with reason", "88 05 03e8 627965", "close=1000'bye'"),
    CLI("close 4999 with utf-8 reason", "88 04 1387 c3a9", "close=4999'\\xc3\\xa9'"),
    CLI("close reason overlong", "88 04 03e8 c0af", "!1007"),
    CLI("close reason truncated", "88 03 03e8 e2", "!1007"),
    CLI("close reason surrogate", "88 05 03e8 eda080", "!1007"),
    CLI("close code 1005 on the wire", "88 02 03ed", "!1002"),
    CLI("bad code wins over bad reason", "88 04 03ed c0af", "!1002"),
    SRV("masked close", "88 82 01020304 02ea", "close=1000''"),

    /* 8.1: text must be UTF-8, checked as it streams */
    CLI("text overlong /", "81 02 c0af", "!1007"),
    CLI("text surrogate", "81 03 eda080", "!1007"),
    CLI("text U+110000", "81 04 f4908080", "!1007"),
    CLI("text cut at the end", "81 01 ce", "!1007"),
    CLI("text split across fragments", "01 01 ce 80 01 ba", "T'\\xce\\xba'"),
    CLI("4-byte char split 1+1+2", "01 01 f0 00 01 9f 80 02 9880", "T'\\xf0\\x9f\\x98\\x80'"),
    CLI("text cut after fragments", "01 01 61 80 01 ce", "!1007"),
    CLI("fail fast in the first fragment", "01 01 ff", "!1007"),
    CLI("fail fast inside a frame", "81 0a 61 ff", "!1007"),
    CLI("fail fast on a surrogate prefix", "81 0a eda0", "!1007"),
    SRV("fail fast masked", "81 8a 01010101 60fe", "!1007"),
    CLI("control frame inside a split char", "01 01 ce 89 00 80 01 ba", "ping'' T'\\xce\\xba'"),
    CLI("binary is not checked", "82 02 c0af", "B<c0af>"),
    CLI("valid kosme", "81 0b cebae1bdb9cf83cebcceb5",
        "T'\\xce\\xba\\xe1\\xbd\\xb9\\xcf\\x83\\xce\\xbc\\xce\\xb5'"),

    /* RFC 7692: RSV1 marks a compressed message, on its first frame only */
    CLI_RSV("compressed text is not checked", AX_WS_RSV1, "c1 02 c0af", "zT'\\xc0\\xaf'"),
    CLI_RSV("compressed fragmented", AX_WS_RSV1, "41 01 61 80 01 62", "zT'ab'"),
    CLI_RSV("uncompressed with RSV1 negotiated", AX_WS_RSV1, "81 01 61", "T'a'"),
    CLI_RSV("RSV1 on a continuation", AX_WS_RSV1, "41 01 61 c0 01 62", "!1002"),
    CLI_RSV("RSV1 on a continuation only", AX_WS_RSV1, "01 01 61 c0 01 62", "!1002"),
    CLI_RSV("RSV2 when only RSV1 negotiated", AX_WS_RSV1, "a1 00", "!1002"),
    CLI_RSV("RSV2 negotiated", AX_WS_RSV2, "a1 01 61", "T'a'"),
};

TEST(ws_frame_table)
{
    static const size_t steps[] = {0, 1, 2, 3, 5};
    static transcript t;
    uint8_t wire[512];

    for (size_t i = 0; i < sizeof frame_cases / sizeof frame_cases[0]; i++) {
        const frame_case *c = &frame_cases[i];
        ax_ws_config cfg = {c->role, c->rsv_allowed, c->max_frame, c->max_message};
        size_t n = tu_unhex(c->wire, wire, sizeof wire);
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            run_stream(&cfg, wire, n, steps[s], &t);
            char what[160];
            snprintf(what, sizeof what, "case \"%s\", %zu-byte pieces", c->name, steps[s]);
            expect(&t, c->want, what);
        }
    }
}

/* --- frames built in code --- */

static size_t build(uint8_t *out, unsigned opcode, bool fin, unsigned rsv, const void *payload,
                    size_t len, const uint8_t *key)
{
    size_t h = ax_ws_encode_header(out, opcode, fin, rsv, len, key);
    ASSERT(h > 0);
    memcpy(out + h, payload, len);
    if (key) ax_ws_mask(out + h, len, key, 0);
    return h + len;
}

static const ax_ws_config server_cfg = {AX_WS_SERVER, 0, 0, 0};
static const ax_ws_config client_cfg = {AX_WS_CLIENT, 0, 0, 0};

/* 5.7: 256 bytes in a 16-bit length, 64 KiB in a 64-bit length. */
TEST(ws_rfc_large_binary_examples)
{
    static uint8_t wire[70000], payload[65536];
    static transcript t;
    char want[64];

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    memcpy(wire, "\x82\x7e\x01\x00", 4);
    memcpy(wire + 4, payload, 256);
    snprintf(want, sizeof want, "B[256 #%08x]", (unsigned)fnv1a(payload, 256));
    run_stream(&client_cfg, wire, 4 + 256, 0, &t);
    expect(&t, want, "");
    run_stream(&client_cfg, wire, 4 + 256, 1, &t);
    expect(&t, want, "");

    memcpy(wire, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    memcpy(wire + 10, payload, 65536);
    snprintf(want, sizeof want, "B[65536 #%08x]", (unsigned)fnv1a(payload, 65536));
    run_stream(&client_cfg, wire, 10 + 65536, 0, &t);
    expect(&t, want, "");
    run_stream(&client_cfg, wire, 10 + 65536, 4000, &t);
    expect(&t, want, "");
    run_stream(&client_cfg, wire, 10 + 65535, 4000, &t);
    expect(&t, "...", "");
}

/* Each length encoding at its edges, masked and not, through encoder and
 * parser; the parsed header matches what was encoded. */
TEST(ws_length_boundaries)
{
    static const uint64_t lens[] = {0, 1, 124, 125, 126, 127, 65535, 65536, 100000};
    static uint8_t wire[100100], payload[100000];
    static const uint8_t key[4] = {0xa1, 0xb2, 0xc3, 0xd4};

    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int masked = 0; masked < 2; masked++) {
            size_t len = (size_t)lens[i];
            size_t n = build(wire, AX_WS_BINARY, true, 0, payload, len, masked ? key : NULL);
            size_t h = n - len;
            ASSERT_EQ(h, ax_ws_header_size(len, masked));
            ASSERT_EQ(h, 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + (masked ? 4 : 0));

            ax_ws_parser p;
            ax_ws_event ev;
            ax_ws_parser_init(&p, masked ? &server_cfg : &client_cfg);
            size_t used = ax_ws_parse(&p, wire, n, &ev);
            ASSERT_EQ(used, n);
            ASSERT_EQ(ev.type, AX_WS_EV_DATA);
            ASSERT(ev.frame_end && ev.message_end);
            ASSERT_EQ(ev.len, len);
            ASSERT(ev.data == wire + h);
            ASSERT(memcmp(ev.data, payload, len) == 0);
            ASSERT_EQ(p.frame.len, len);
            ASSERT_EQ(p.frame.header_len, h);
            ASSERT_EQ(p.frame.masked, masked);
            ASSERT(p.frame.fin);
            ASSERT_EQ(p.frame.opcode, AX_WS_BINARY);
            if (masked) ASSERT(memcmp(p.frame.mask, key, 4) == 0);
        }
    }
    /* 125 is the largest control payload, in either role. */
    uint8_t ping[125];
    memset(ping, 'p', sizeof ping);
    size_t n = build(wire, AX_WS_PING, true, 0, ping, 125, key);
    ax_ws_parser p;
    ax_ws_event ev;
    ax_ws_parser_init(&p, &server_cfg);
    ASSERT_EQ(ax_ws_parse(&p, tu_guarded(wire, n), n, &ev), n);
    ASSERT_EQ(ev.type, AX_WS_EV_CONTROL);
    ASSERT_EQ(ev.len, 125);
    ASSERT(memcmp(ev.data, ping, 125) == 0);
}

TEST(ws_encoder)
{
    uint8_t out[AX_WS_MAX_HEADER + 8], want[32];
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

    /* 5.7: server "Hello" unmasked, client "Hello" masked. */
    size_t h = ax_ws_encode_header(out, AX_WS_TEXT, true, 0, 5, NULL);
    ASSERT_EQ(h, 2);
    ASSERT(memcmp(out, "\x81\x05", 2) == 0);
    size_t n = build(out, AX_WS_TEXT, true, 0, "Hello", 5, key);
    ASSERT_EQ(n, tu_unhex("81 85 37fa213d 7f9f4d5158", want, sizeof want));
    ASSERT(memcmp(out, want, n) == 0);
    /* fragmented: first frame not final, then a final continuation */
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_TEXT, false, 0, 3, NULL), 2);
    ASSERT_EQ(out[0], 0x01);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_CONT, true, 0, 2, NULL), 2);
    ASSERT_EQ(out[0], 0x80);
    /* RSV1 for a compressed message, pong, close */
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_BINARY, true, AX_WS_RSV1, 1, NULL), 2);
    ASSERT_EQ(out[0], 0xc2);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_PONG, true, 0, 125, NULL), 2);
    ASSERT(memcmp(out, "\x8a\x7d", 2) == 0);
    /* 5.7: 256 bytes and 64 KiB */
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_BINARY, true, 0, 256, NULL), 4);
    ASSERT(memcmp(out, "\x82\x7e\x01\x00", 4) == 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_BINARY, true, 0, 65536, NULL), 10);
    ASSERT(memcmp(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10) == 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_BINARY, true, 0, 0x7fffffffffffffffull, key), 14);
    ASSERT(memcmp(out, "\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x37\xfa\x21\x3d", 14) == 0);
    ASSERT_EQ(ax_ws_header_size(0x7fffffffffffffffull, true), 14);
    /* refused: unknown opcodes, stray bits, 2^63, control rules */
    ASSERT_EQ(ax_ws_encode_header(out, 3, true, 0, 0, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, 0xb, true, 0, 0, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, 0x11, true, 0, 0, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_TEXT, true, 0x08, 0, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_TEXT, true, AX_WS_FIN, 0, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_BINARY, true, 0, 1ull << 63, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_PING, true, 0, 126, NULL), 0);
    ASSERT_EQ(ax_ws_encode_header(out, AX_WS_CLOSE, false, 0, 2, NULL), 0);
}

static void naive_mask(uint8_t *buf, size_t len, const uint8_t key[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        buf[i] ^= key[(offset + i) % 4];
}

/* Every alignment, offset and length agrees with the byte-at-a-time
 * definition (RFC 6455 5.3), and masking in two pieces equals masking at
 * once, whatever the split. */
TEST(ws_mask_matches_naive)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    static const uint64_t offsets[] = {0, 1, 2, 3, 4, 5, 7, 0x100000001ull, 0xfffffffffffffffeull};
    _Alignas(8) uint8_t a[160], b[160], src[160];

    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 31 + 7);
    for (size_t align = 0; align < 8; align++)
        for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++)
            for (size_t len = 0; len + align <= 150; len++) {
                memcpy(a, src, sizeof a);
                memcpy(b, src, sizeof b);
                ax_ws_mask(a + align, len, key, offsets[o]);
                naive_mask(b + align, len, key, offsets[o]);
                ASSERT(memcmp(a, b, sizeof a) == 0); /* nothing outside touched */
            }
    for (size_t len = 0; len <= 100; len++)
        for (size_t cut = 0; cut <= len; cut++) {
            memcpy(a, src, sizeof a);
            memcpy(b, src, sizeof b);
            ax_ws_mask(a + 1, cut, key, 2);
            ax_ws_mask(a + 1 + cut, len - cut, key, 2 + cut);
            naive_mask(b + 1, len, key, 2);
            ASSERT(memcmp(a, b, sizeof a) == 0);
        }
    /* against the guard page: the last byte is the last readable one */
    for (size_t len = 0; len <= 64; len++) {
        uint8_t *g = tu_guarded(src, len);
        memcpy(b, src, len);
        ax_ws_mask(g, len, key, 1);
        naive_mask(b, len, key, 1);
        ASSERT(memcmp(g, b, len) == 0);
    }
}

/* 7.4.1 and 7.4.2: which codes may be on the wire. */
TEST(ws_close_codes)
{
    static const unsigned valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const unsigned invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 6000, 65535};
    uint8_t wire[8];
    static transcript t;
    char want[32];

    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        ASSERT(ax_ws_close_code_valid(valid[i]));
        wire[0] = 0x88, wire[1] = 2, wire[2] = (uint8_t)(valid[i] >> 8),
        wire[3] = (uint8_t)valid[i];
        run_stream(&client_cfg, wire, 4, 0, &t);
        snprintf(want, sizeof want, "close=%u''", valid[i]);
        expect(&t, want, "");
    }
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        ASSERT(!ax_ws_close_code_valid(invalid[i]));
        wire[0] = 0x88, wire[1] = 2;
        wire[2] = (uint8_t)(invalid[i] >> 8), wire[3] = (uint8_t)invalid[i];
        run_stream(&client_cfg, wire, 4, 0, &t);
        expect(&t, "!1002", "");
    }
    unsigned count = 0;
    for (unsigned c = 0; c <= 65535; c++)
        count += ax_ws_close_code_valid(c);
    ASSERT_EQ(count, 4 + 8 + 2000); /* 1000-1003, 1007-1014, 3000-4999 */

    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    ASSERT_EQ(ax_ws_close_parse((const uint8_t *)"\x03\xe8ok", 4, &code, &reason, &rlen), 0);
    ASSERT_EQ(code, 1000);
    ASSERT_EQ(rlen, 2);
    ASSERT(memcmp(reason, "ok", 2) == 0);
    ASSERT_EQ(ax_ws_close_parse((const uint8_t *)"", 0, &code, &reason, &rlen), 0);
    ASSERT_EQ(code, 1005);
    ASSERT_EQ(rlen, 0);
    ASSERT_EQ(ax_ws_close_parse((const uint8_t *)"\x03", 1, &code, &reason, &rlen), 1002);
    ASSERT_EQ(ax_ws_close_parse((const uint8_t *)"\x03\xe8\xff", 3, &code, &reason, &rlen), 1007);
}

TEST(ws_close_encode)
{
    uint8_t out[AX_WS_MAX_CONTROL];
    char reason[200];
    uint16_t code;
    const uint8_t *r;
    size_t rlen;

    ASSERT_EQ(ax_ws_close_encode(out, 0, NULL, 0), 0);
    ASSERT_EQ(ax_ws_close_encode(out, 1000, NULL, 0), 2);
    ASSERT(memcmp(out, "\x03\xe8", 2) == 0);
    ASSERT_EQ(ax_ws_close_encode(out, 4001, "bye", 3), 5);
    ASSERT(memcmp(out,
                  "\x0f\xa1"
                  "bye",
                  5) == 0);
    ASSERT_EQ(ax_ws_close_encode(out, 1005, NULL, 0), AX_EINVAL);
    ASSERT_EQ(ax_ws_close_encode(out, 1006, "x", 1), AX_EINVAL);
    ASSERT_EQ(ax_ws_close_encode(out, 999, NULL, 0), AX_EINVAL);
    /* 123 bytes fit; a longer reason is cut before a split character */
    memset(reason, 'a', sizeof reason);
    ASSERT_EQ(ax_ws_close_encode(out, 1000, reason, 123), 125);
    ASSERT_EQ(ax_ws_close_encode(out, 1000, reason, 190), 125);
    memcpy(reason + 122, "\xc3\xa9", 2); /* é at 122..123: cut before it */
    ASSERT_EQ(ax_ws_close_encode(out, 1000, reason, 124), 124);
    memcpy(reason + 121, "\xe2\x82\xac", 3); /* € at 121..123 */
    ASSERT_EQ(ax_ws_close_encode(out, 1000, reason, 150), 123);
    ASSERT_EQ(ax_ws_close_parse(out, 123, &code, &r, &rlen), 0);
    ASSERT_EQ(code, 1000);
    ASSERT_EQ(rlen, 121);
    memset(reason, 'a', sizeof reason);
    memcpy(reason + 120, "\xe2\x82\xac", 3); /* € at 120..122 fits exactly */
    ASSERT_EQ(ax_ws_close_encode(out, 1000, reason, 150), 125);
    ASSERT_EQ(ax_ws_close_parse(out, 125, &code, &r, &rlen), 0);
}

/* The fields of each event through a fragmented, interleaved message fed a
 * byte at a time. */
TEST(ws_event_fields)
{
    uint8_t wire[64];
    size_t n = tu_unhex("01 02 6869 89 01 70 00 00 80 01 21", wire, sizeof wire);
    ax_ws_parser p;
    ax_ws_event ev;
    int data_events = 0, frame_ends = 0, message_ends = 0, controls = 0;
    char text[8] = "";
    size_t tl = 0;

    ax_ws_parser_init(&p, &client_cfg);
    for (size_t i = 0; i < n; i++) {
        uint8_t *b = tu_guarded(wire + i, 1);
        size_t used = ax_ws_parse(&p, b, 1, &ev);
        ASSERT_EQ(used, 1);
        if (ev.type == AX_WS_EV_NEED_MORE) continue;
        if (ev.type == AX_WS_EV_CONTROL) {
            controls++;
            ASSERT_EQ(ev.opcode, AX_WS_PING);
            ASSERT(ax_ws_parser_in_message(&p));
            continue;
        }
        ASSERT_EQ(ev.type, AX_WS_EV_DATA);
        ASSERT_EQ(ev.opcode, AX_WS_TEXT); /* also for the continuation frames */
        ASSERT(!ev.compressed);
        data_events++;
        frame_ends += ev.frame_end;
        message_ends += ev.message_end;
        if (ev.message_end) ASSERT(!ax_ws_parser_in_message(&p));
        memcpy(text + tl, ev.data, ev.len);
        tl += ev.len;
    }
    ASSERT_EQ(controls, 1);
    ASSERT_EQ(data_events, 4); /* 'h', 'i', the empty frame, '!' */
    ASSERT_EQ(frame_ends, 3);
    ASSERT_EQ(message_ends, 1);
    ASSERT_EQ(tl, 3);
    ASSERT(memcmp(text, "hi!", 3) == 0);
}

/* The limit is decided from the header: a 1 TiB frame fails before any of
 * its payload is there, and only the header was consumed. */
TEST(ws_limit_before_payload)
{
    ax_ws_config cfg = {AX_WS_SERVER, 0, 1 << 20, 0};
    uint8_t wire[16];
    size_t n = tu_unhex("82 ff 0000010000000000 01020304", wire, sizeof wire);
    ax_ws_parser p;
    ax_ws_event ev;
    ax_ws_parser_init(&p, &cfg);
    ASSERT_EQ(ax_ws_parse(&p, tu_guarded(wire, n), n, &ev), n);
    ASSERT_EQ(ev.type, AX_WS_EV_ERROR);
    ASSERT_EQ(ev.code, 1009);
}

/* An empty read is harmless in every state: start, inside a header, inside
 * a data payload, inside a control payload. */
TEST(ws_empty_input)
{
    static const char *const prefixes[] = {"", "81", "81 7e 00", "81 7e 0080 6162", "89 03 61"};
    uint8_t wire[16];
    ax_ws_parser p;
    ax_ws_event ev;

    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t n = tu_unhex(prefixes[i], wire, sizeof wire);
        ax_ws_parser_init(&p, &client_cfg);
        if (n) ax_ws_parse(&p, tu_guarded(wire, n), n, &ev);
        ASSERT_EQ(ax_ws_parse(&p, NULL, 0, &ev), 0);
        ASSERT_EQ(ev.type, AX_WS_EV_NEED_MORE);
    }
    /* the rest of the ping still completes it */
    ASSERT_EQ(ax_ws_parse(&p, tu_guarded("bc", 2), 2, &ev), 2);
    ASSERT_EQ(ev.type, AX_WS_EV_CONTROL);
    ASSERT_EQ(ev.len, 3);
    ASSERT(memcmp(ev.data, "abc", 3) == 0);
}

/* Random valid conversations (fragmented text and binary, interleaved
 * pings and pongs) encoded by the encoder, parsed in random pieces in both
 * roles, come out as they went in. */
TEST(ws_random_roundtrip)
{
    static uint8_t wire[1 << 16];
    static char want[4096];
    static transcript t;
    uint32_t seed = 1;

#define RND() (seed = seed * 1664525u + 1013904223u, seed >> 8)
    for (int iter = 0; iter < 400; iter++) {
        for (int role = 0; role < 2; role++) {
            size_t n = 0, wn = 0;
            want[0] = '\0';
            int msgs = 1 + (int)(RND() % 4);
            for (int m = 0; m < msgs; m++) {
                bool text = RND() % 2;
                int frags = 1 + (int)(RND() % 3);
                uint8_t msg[600];
                size_t ml = 0;
                for (int f = 0; f < frags; f++) {
                    size_t fl = RND() % 200;
                    uint8_t key[4] = {(uint8_t)RND(), (uint8_t)RND(), (uint8_t)RND(),
                                      (uint8_t)RND()};
                    uint8_t *frag = msg + ml;
                    for (size_t i = 0; i < fl; i++)
                        frag[i] = text ? (uint8_t)('a' + RND() % 26) : (uint8_t)RND();
                    ml += fl;
                    n += build(wire + n, f == 0 ? (text ? AX_WS_TEXT : AX_WS_BINARY) : AX_WS_CONT,
                               f == frags - 1, 0, frag, fl, role == AX_WS_CLIENT ? key : NULL);
                    if (f < frags - 1 && RND() % 2) {
                        n += build(wire + n, AX_WS_PING, true, 0, "pi", 2,
                                   role == AX_WS_CLIENT ? key : NULL);
                        wn += (size_t)snprintf(want + wn, sizeof want - wn, "%sping'pi'",
                                               wn ? " " : "");
                    }
                }
                char r[256];
                render(r, sizeof r, text, msg, ml);
                wn += (size_t)snprintf(want + wn, sizeof want - wn, "%s%c%s", wn ? " " : "",
                                       text ? 'T' : 'B', r);
            }
            /* The frames were made by the peer, so parse in the other role. */
            const ax_ws_config *cfg = role == AX_WS_CLIENT ? &server_cfg : &client_cfg;
            run_stream(cfg, wire, n, 1 + RND() % 300, &t);
            expect(&t, want, "");
        }
    }
#undef RND
}

/* --- base64 (RFC 4648 section 10 test vectors) and the handshake --- */

TEST(ws_base64)
{
    static const char *const vec[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    char out[64];
    uint8_t raw[64];
    size_t n;

    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        size_t len = strlen(vec[i][0]);
        ASSERT_EQ(ax_ws_base64_encode(out, vec[i][0], len), strlen(vec[i][1]));
        ASSERT_EQ(strlen(vec[i][1]), AX_WS_BASE64_LEN(len));
        ASSERT_STREQ(out, vec[i][1]);
        const char *g = (const char *)tu_guarded(vec[i][1], strlen(vec[i][1]));
        ASSERT_EQ(ax_ws_base64_decode(raw, sizeof raw, g, strlen(vec[i][1]), &n), 0);
        ASSERT_EQ(n, len);
        ASSERT(memcmp(raw, vec[i][0], len) == 0);
    }
    ASSERT_EQ(ax_ws_base64_encode(out, "\xfb\xff\xbf", 3), 4);
    ASSERT_STREQ(out, "+/+/");

    static const char *const bad[] = {
        "Zg=",      "Zg",     "Z===",  "====", "Zh==", "Zm9=", "Zm=v",
        "Zm9v=Zg=", "Zm9v\n", "Zm 9v", "Zm9-", "Zm9_", "=Zm9",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_EQ(ax_ws_base64_decode(raw, sizeof raw, bad[i], strlen(bad[i]), &n), AX_EINVAL);
    ASSERT_EQ(ax_ws_base64_decode(raw, 5, "Zm9vYmFy", 8, &n), AX_ENOBUFS);
    ASSERT_EQ(ax_ws_base64_decode(raw, 6, "Zm9vYmFy", 8, &n), 0);
    ASSERT_EQ(ax_ws_base64_decode(raw, 4, "Zm9vYg==", 8, &n), 0);
    ASSERT_EQ(n, 4);

    /* every length 0..40 of every byte value round-trips */
    uint8_t src[48];
    for (size_t len = 0; len <= 40; len++) {
        for (unsigned v = 0; v < 256; v += 17) {
            for (size_t i = 0; i < len; i++)
                src[i] = (uint8_t)(v + i * 101);
            size_t el = ax_ws_base64_encode(out, src, len);
            ASSERT_EQ(el, AX_WS_BASE64_LEN(len));
            ASSERT_EQ(ax_ws_base64_decode(raw, len, (const char *)tu_guarded(out, el), el, &n), 0);
            ASSERT_EQ(n, len);
            ASSERT(memcmp(raw, src, len) == 0);
        }
    }
}

/* RFC 6455 1.3 and 4.2.2: the sample key, its SHA-1 and the accept value. */
TEST(ws_handshake_accept)
{
    static const uint8_t sha1[20] = {0xb3, 0x7a, 0x4f, 0x2c, 0xc0, 0x62, 0x4f, 0x16, 0x90, 0xf6,
                                     0x46, 0x06, 0xcf, 0x38, 0x59, 0x45, 0xb2, 0xbe, 0xc4, 0xea};
    char accept[AX_WS_ACCEPT_LEN + 1];

    ax_ws_accept_from_sha1(accept, sha1);
    ASSERT_STREQ(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ASSERT_EQ(strlen(AX_WS_GUID), 36);

    ASSERT(ax_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    ASSERT(ax_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24));
    ASSERT(!ax_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    ASSERT(!ax_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ== ", 25));
    ASSERT(!ax_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAAA", 24)); /* 18 bytes */
    ASSERT(!ax_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAA=", 24)); /* 17 bytes */
    ASSERT(!ax_ws_key_valid("dGhlIHNhbXBsZSBub25jZR==", 24)); /* stray pad bits */
    ASSERT(!ax_ws_key_valid("dGhlIHNhbXBsZSBub25jZ!==", 24));
    ASSERT(!ax_ws_key_valid("", 0));
}
