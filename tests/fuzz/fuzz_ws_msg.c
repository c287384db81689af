/* fuzz_ws_msg.c: libFuzzer target for the WebSocket message layer above
 * the frames: permessage-deflate negotiation and per-message
 * (de)compression.
 *
 * The first byte picks what the rest of the input is:
 *  0: a client's Sec-WebSocket-Extensions offer for our server; whatever
 *     the server answers must be accepted by our own client, with the
 *     context-takeover flags mirrored;
 *  1: a server's answer for our client: accepted or refused, never more;
 *  2: a compressed message from a peer: inflated within the limit or
 *     refused with 1007/1009, and what inflates compresses and inflates
 *     back to itself;
 *  3: a message to send: compressed, then inflated back unchanged, twice
 *     on the same streams (context takeover) and with fresh ones;
 *  4: a server's handshake response for our client (parsed with the HTTP
 *     parser): accepted only when it is a 101 with the right accept value,
 *     and then with a protocol we offered. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http/http_parser.h"
#include "proto/ws/ws_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_ws_msg: check failed at line %d: %s\n", __LINE__, #cond);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_INFLATE (1u << 16)

static ax_ws_opts opts_from(uint8_t b)
{
    ax_ws_opts o = {.deflate = true};
    o.deflate_no_context_takeover = (b & 1) != 0;
    o.deflate_window_bits = (uint8_t)(8 + (b >> 1) % 8); /* 8..15; 8 becomes 9 */
    ax__ws_opts_defaults(&o);
    return o;
}

static void negotiate(uint8_t b, const char *offer, size_t len)
{
    ax_ws_opts so = opts_from(b), co = opts_from((uint8_t)(b >> 4));
    ax__ws_pmd sp, cp;
    char resp[256];
    memset(&sp, 0, sizeof sp);
    size_t n = ax__ws_pmd_accept(&so, offer, len, &sp, resp, sizeof resp);
    CHECK(n < sizeof resp);
    if (!n) {
        CHECK(!sp.on);
        return;
    }
    CHECK(sp.on && sp.tx_bits >= 9 && sp.tx_bits <= 15);
    CHECK(ax__ws_pmd_check(&co, resp, n, &cp) == 0 && cp.on);
    CHECK(cp.rx_no_context == sp.tx_no_context);
    CHECK(cp.tx_no_context == (sp.rx_no_context || co.deflate_no_context_takeover));
}

static void answer(uint8_t b, const char *resp, size_t len)
{
    ax_ws_opts co = opts_from(b);
    ax__ws_pmd cp;
    int rc = ax__ws_pmd_check(&co, resp, len, &cp);
    CHECK(rc == 0 || rc == AX_EPROTO);
    if (rc == 0 && cp.on) CHECK(cp.tx_bits >= 9 && cp.tx_bits <= co.deflate_window_bits);
}

/* Compress `in` with tx and inflate it with rx: the same bytes come back. */
static void roundtrip(ax__ws_deflate *tx, ax__ws_deflate *rx, const uint8_t *in, size_t len)
{
    const uint8_t *z, *back;
    size_t zl, bl;
    uint8_t *copy;
    if (ax__ws_compress(tx, in, len, &z, &zl) != 0) return;
    copy = malloc(zl ? zl : 1);
    CHECK(copy != NULL);
    memcpy(copy, z, zl);
    int code = ax__ws_inflate(rx, copy, zl, len ? len : 1, &back, &bl);
    CHECK(code == 0);
    CHECK(bl == len && (len == 0 || memcmp(back, in, len) == 0));
    free(copy);
}

static void with_pair(uint8_t b, const uint8_t *in, size_t len, bool peer_data)
{
    ax__ws_pmd pmd = {.on = true, .tx_bits = (uint8_t)(9 + b % 7), .rx_bits = 15};
    pmd.tx_no_context = (b & 0x10) != 0;
    pmd.rx_no_context = pmd.tx_no_context;
    ax__ws_deflate *a = ax__ws_deflate_new(&pmd, 1 + (b >> 5) % 9);
    ax__ws_deflate *c = ax__ws_deflate_new(&pmd, 1);
    if (!a || !c) goto out;
    if (peer_data) {
        const uint8_t *out;
        size_t n;
        int code = ax__ws_inflate(a, in, len, MAX_INFLATE, &out, &n);
        CHECK(code == 0 || code == AX_WS_CLOSE_INVALID_DATA || code == AX_WS_CLOSE_TOO_BIG);
        if (code == 0) {
            uint8_t *copy = malloc(n ? n : 1);
            CHECK(n <= MAX_INFLATE && copy != NULL);
            memcpy(copy, out, n);
            roundtrip(c, c, copy, n);
            free(copy);
        }
    } else {
        roundtrip(a, c, in, len);
        roundtrip(a, c, in, len);
    }
out:
    ax__ws_deflate_free(a);
    ax__ws_deflate_free(c);
}

static void response(uint8_t b, const char *resp, size_t len)
{
    static const char *const protos[] = {"chat", "mqtt", NULL};
    static const char accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    ax_ws_opts o = opts_from(b);
    o.deflate = (b & 0x80) != 0;
    o.protocols = (b & 0x40) ? protos : NULL;
    ax_http_header hdrs[64];
    ax_http_head h = {.headers = hdrs, .headers_cap = 64};
    ax_http_parser p;
    ax_http_parser_init(&p, AX_HTTP_RESPONSE, NULL);
    if (ax_http_parse_head(&p, resp, len, &h) <= 0) return;
    ax__ws_pmd pmd;
    const char *proto = NULL;
    int rc = ax__ws_check_response(&o, accept, &h, &pmd, &proto);
    CHECK(rc == 0 || rc == AX_EPROTO);
    if (rc) return;
    CHECK(h.status == 101);
    CHECK(!pmd.on || o.deflate);
    if (proto) CHECK(strcmp(proto, "chat") == 0 || strcmp(proto, "mqtt") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t mode = data[0] % 5, b = data[1];
    const uint8_t *rest = data + 2;
    size_t len = size - 2;
    switch (mode) {
    case 0:
        negotiate(b, (const char *)rest, len);
        break;
    case 1:
        answer(b, (const char *)rest, len);
        break;
    case 2:
        with_pair(b, rest, len, true);
        break;
    case 4:
        response(b, (const char *)rest, len);
        break;
    default:
        with_pair(b, rest, len, false);
        break;
    }
    return 0;
}
