/* fuzz_http.c: libFuzzer target for the HTTP/1.1 parser.
 *
 * data[0] picks the mode (% 3: request head, response head, chunked body)
 * and options (bit 2: allow bare LF, bit 3: response to HEAD); data[1]
 * picks the piece size for the incremental run; the rest is the input.
 * Each input is parsed whole and again in pieces, each piece in a fresh
 * exact-size buffer at a new address; both runs must agree exactly, and
 * every slice must lie inside the bytes consumed. */
#include "proto/http/http_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NH 16

static const ax_http_limits limits[2] = {
    {.max_start_line = 256,
     .max_header_bytes = 1024,
     .max_headers = 12,
     .max_chunk_line = 64,
     .max_body = 1 << 20,
     .allow_bare_lf = false},
    {.max_start_line = 256,
     .max_header_bytes = 1024,
     .max_headers = 12,
     .max_chunk_line = 64,
     .max_body = 1 << 20,
     .allow_bare_lf = true},
};

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) __builtin_trap();                                                                \
    } while (0)

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    CHECK(b != NULL);
    if (n) memcpy(b, p, n);
    return b;
}

/* A slice lies inside buf[0..n) (or is empty). */
static void inside(ax_http_str s, const char *buf, size_t n)
{
    if (s.len == 0) return;
    CHECK(s.ptr >= buf && s.ptr + s.len <= buf + n);
}

/* Two slices sit at the same offset of their buffers with the same bytes. */
static void same(ax_http_str a, const char *abuf, ax_http_str b, const char *bbuf)
{
    CHECK(a.len == b.len);
    if (a.len == 0) return;
    CHECK(a.ptr - abuf == b.ptr - bbuf);
    CHECK(memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void check_head(const ax_http_head *h, const char *buf, int rc)
{
    size_t n = (size_t)rc;
    CHECK(h->num_headers <= NH);
    inside(h->method, buf, n);
    inside(h->target, buf, n);
    inside(h->reason, buf, n);
    inside(h->host, buf, n);
    inside(h->upgrade, buf, n);
    for (size_t i = 0; i < h->num_headers; i++) {
        CHECK(h->headers[i].name.len > 0);
        inside(h->headers[i].name, buf, n);
        inside(h->headers[i].value, buf, n);
    }
    CHECK(h->minor_version == 0 || h->minor_version == 1);
    CHECK(h->framing <= AX_HTTP_BODY_UNTIL_CLOSE);
}

static void compare_heads(const ax_http_head *a, const char *abuf, const ax_http_head *b,
                          const char *bbuf)
{
    same(a->method, abuf, b->method, bbuf);
    same(a->target, abuf, b->target, bbuf);
    same(a->reason, abuf, b->reason, bbuf);
    same(a->host, abuf, b->host, bbuf);
    same(a->upgrade, abuf, b->upgrade, bbuf);
    CHECK(a->method_id == b->method_id && a->status == b->status);
    CHECK(a->minor_version == b->minor_version && a->framing == b->framing);
    CHECK(a->content_length == b->content_length && a->flags == b->flags);
    CHECK(a->num_headers == b->num_headers);
    for (size_t i = 0; i < a->num_headers; i++) {
        same(a->headers[i].name, abuf, b->headers[i].name, bbuf);
        same(a->headers[i].value, abuf, b->headers[i].value, bbuf);
    }
}

/* Decodes a body whole and in pieces; both must give the same bytes. */
static void fuzz_body(enum ax_http_framing framing, uint64_t length, const ax_http_limits *lim,
                      const uint8_t *in, size_t len, size_t step)
{
    ax_http_body d[2];
    size_t used[2] = {0, 0}, dlen[2] = {0, 0};
    int rc[2];
    uint8_t *out[2];

    for (int run = 0; run < 2; run++) {
        size_t have = run ? 0 : len;
        out[run] = malloc(len ? len : 1);
        CHECK(out[run] != NULL);
        ax_http_body_init(&d[run], framing, length, lim);
        for (;;) {
            ax_http_str data;
            char *b = dup_exact(in + used[run], have - used[run]);
            rc[run] = ax_http_body_parse(&d[run], b, have - used[run], &data);
            if (rc[run] > 0) {
                CHECK((size_t)rc[run] <= have - used[run]);
                inside(data, b, (size_t)rc[run]);
                if (data.len) memcpy(out[run] + dlen[run], data.ptr, data.len);
                dlen[run] += data.len;
                used[run] += (size_t)rc[run];
            }
            free(b);
            if (rc[run] > 0) continue;
            if (rc[run] == AX_HTTP_INCOMPLETE && have < len) {
                have = have + step < len ? have + step : len;
                continue;
            }
            break;
        }
        CHECK(rc[run] >= -505 && rc[run] <= 0);
        CHECK((rc[run] == 0) == ax_http_body_done(&d[run]));
    }
    CHECK(rc[0] == rc[1]);
    CHECK(ax_http_body_error(&d[0]) == ax_http_body_error(&d[1]));
    /* After an error the runs may have consumed different amounts: the
     * whole run stops at the first bad line, the split one delivered data
     * piece by piece before it.  Otherwise they must agree byte for byte. */
    if (rc[0] >= AX_HTTP_INCOMPLETE) {
        CHECK(used[0] == used[1] && dlen[0] == dlen[1]);
        CHECK(dlen[0] == 0 || memcmp(out[0], out[1], dlen[0]) == 0);
    } else {
        size_t n = dlen[0] < dlen[1] ? dlen[0] : dlen[1];
        CHECK(n == 0 || memcmp(out[0], out[1], n) == 0);
    }
    free(out[0]);
    free(out[1]);
}

static void fuzz_head(enum ax_http_kind kind, const ax_http_limits *lim, bool no_body,
                      const uint8_t *in, size_t len, size_t step)
{
    ax_http_header hd[2][NH];
    ax_http_head h[2] = {{.headers = hd[0], .headers_cap = NH},
                         {.headers = hd[1], .headers_cap = NH}};
    ax_http_parser p[2];
    char *whole = dup_exact(in, len), *last = NULL;
    int rc[2];
    size_t have = 0;

    ax_http_parser_init(&p[0], kind, lim);
    p[0].no_body = no_body;
    rc[0] = ax_http_parse_head(&p[0], whole, len, &h[0]);

    ax_http_parser_init(&p[1], kind, lim);
    p[1].no_body = no_body;
    for (;;) {
        free(last);
        last = dup_exact(in, have);
        rc[1] = ax_http_parse_head(&p[1], last, have, &h[1]);
        if (rc[1] != AX_HTTP_INCOMPLETE || have == len) break;
        have = have + step < len ? have + step : len;
    }

    CHECK(rc[0] == rc[1]);
    CHECK(ax_http_parser_error(&p[0]) == ax_http_parser_error(&p[1]));
    CHECK(rc[0] >= AX_HTTP_INCOMPLETE || (ax_http_parser_error(&p[0]) != AX_HTTP_ERR_NONE));
    if (rc[0] > 0) {
        CHECK((size_t)rc[0] <= len);
        check_head(&h[0], whole, rc[0]);
        check_head(&h[1], last, rc[1]);
        compare_heads(&h[0], whole, &h[1], last);
        fuzz_body(h[0].framing, h[0].content_length, lim, in + rc[0], len - (size_t)rc[0], step);
    }
    free(last);
    free(whole);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    const ax_http_limits *lim = &limits[(data[0] >> 2) & 1];
    bool no_body = (data[0] >> 3) & 1;
    size_t step = 1 + data[1] % 32;

    switch (data[0] % 3) {
    case 0:
        fuzz_head(AX_HTTP_REQUEST, lim, no_body, data + 2, size - 2, step);
        break;
    case 1:
        fuzz_head(AX_HTTP_RESPONSE, lim, no_body, data + 2, size - 2, step);
        break;
    default:
        fuzz_body(AX_HTTP_BODY_CHUNKED, 0, lim, data + 2, size - 2, step);
        break;
    }
    return 0;
}
