/* fuzz_ws_handshake.c: libFuzzer target for the WebSocket opening
 * handshake checks that need no connection (the server's request checks
 * run in fuzz_http_server, which routes /ws).
 *
 * data[0] picks the options (deflate, no context takeover, window bits,
 * subprotocols) and, % 4, what the rest is:
 *   0: a server's response head, checked as a client would
 *      (ax__ws_check_response) against the accept value of a fixed key;
 *   1: a client's Sec-WebSocket-Extensions offers, as the server reads them
 *      (ax__ws_pmd_accept); a client with the same settings accepts the
 *      server's answer to the client's own offer;
 *   2: a server's Sec-WebSocket-Extensions answer (ax__ws_pmd_check);
 *   3: a Sec-WebSocket-Key: valid keys give a 28-byte accept value.
 * Negotiated window bits are always 8..15; a chosen subprotocol is ours. */
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
            fprintf(stderr, "fuzz_ws_handshake: check failed at line %d: %s\n", __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

static const char *const protos[] = {"chat", "axon.v1", NULL};

static void check_pmd(const ax__ws_pmd *p)
{
    if (!p->on) return;
    CHECK(p->tx_bits >= 8 && p->tx_bits <= 15);
    CHECK(p->rx_bits >= 8 && p->rx_bits <= 15);
}

static char *dup_exact(const uint8_t *d, size_t n)
{
    char *b = malloc(n ? n : 1);
    CHECK(b != NULL);
    if (n) memcpy(b, d, n);
    return b;
}

static void fuzz_response(const ax_ws_opts *o, const uint8_t *d, size_t n)
{
    char accept[AX_WS_ACCEPT_LEN + 1];
    CHECK(ax_ws_accept(accept, KEY, strlen(KEY)) == 0);
    CHECK(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    char *b = dup_exact(d, n);
    ax_http_header hd[32];
    ax_http_head h = {.headers = hd, .headers_cap = 32};
    ax_http_parser p;
    ax_http_parser_init(&p, AX_HTTP_RESPONSE, NULL);
    if (ax_http_parse_head(&p, b, n, &h) > 0) {
        ax__ws_pmd pmd;
        const char *proto = NULL;
        if (ax__ws_check_response(o, accept, &h, &pmd, &proto) == 0) {
            CHECK(h.status == 101);
            check_pmd(&pmd);
            CHECK(!pmd.on || o->deflate);
            if (proto) {
                bool ours = false;
                for (const char *const *q = o->protocols; q && *q; q++)
                    ours |= *q == proto;
                CHECK(ours);
            }
        }
    }
    free(b);
}

static void fuzz_offer(const ax_ws_opts *o, const uint8_t *d, size_t n)
{
    char *b = dup_exact(d, n), out[256];
    ax__ws_pmd pmd;
    memset(&pmd, 0, sizeof pmd);
    memset(out, 'x', sizeof out);
    size_t k = ax__ws_pmd_accept(o, b, n, &pmd, out, sizeof out);
    CHECK(k < sizeof out);
    CHECK((k > 0) == pmd.on);
    check_pmd(&pmd);
    if (k) {
        CHECK(out[k] == '\0' && strlen(out) == k);
        /* A client with the same settings accepts the answer to an offer of
         * its own (the client's offer is what ax__ws_pmd_offer makes). */
        char offer[256];
        size_t ol = ax__ws_pmd_offer(o, offer, sizeof offer);
        CHECK(ol > 0 && ol < sizeof offer);
        char ans[256];
        ax__ws_pmd sp, cp;
        size_t al = ax__ws_pmd_accept(o, offer, ol, &sp, ans, sizeof ans);
        CHECK(al > 0);
        CHECK(ax__ws_pmd_check(o, ans, al, &cp) == 0);
        check_pmd(&cp);
        /* each side inflates with a window at least as large as the other deflates with */
        CHECK(cp.rx_bits >= sp.tx_bits && sp.rx_bits >= cp.tx_bits);
    }
    free(b);
}

static void fuzz_answer(const ax_ws_opts *o, const uint8_t *d, size_t n)
{
    char *b = dup_exact(d, n);
    ax__ws_pmd pmd;
    memset(&pmd, 0, sizeof pmd);
    if (ax__ws_pmd_check(o, b, n, &pmd) == 0) check_pmd(&pmd);
    free(b);
}

static void fuzz_key(const uint8_t *d, size_t n)
{
    char *b = dup_exact(d, n), out[AX_WS_ACCEPT_LEN + 1];
    bool valid = ax_ws_key_valid(b, n);
    int rc = ax_ws_accept(out, b, n);
    CHECK(valid == (rc == 0));
    if (valid) CHECK(n == AX_WS_KEY_LEN && strlen(out) == AX_WS_ACCEPT_LEN);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    uint8_t sel = data[0];
    ax_ws_opts o = {.deflate = (sel & 0x04) != 0,
                    .deflate_no_context_takeover = (sel & 0x08) != 0,
                    .deflate_window_bits = (sel & 0x10) ? (uint8_t)(9 + (sel >> 5) % 7) : 0,
                    .protocols = (sel & 0x80) ? protos : NULL};
    ax__ws_opts_defaults(&o);
    switch (sel % 4) {
    case 0:
        fuzz_response(&o, data + 1, size - 1);
        break;
    case 1:
        if (o.deflate) fuzz_offer(&o, data + 1, size - 1);
        break;
    case 2:
        fuzz_answer(&o, data + 1, size - 1);
        break;
    default:
        fuzz_key(data + 1, size - 1);
        break;
    }
    return 0;
}
