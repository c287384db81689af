/* ws_deflate.c: permessage-deflate (RFC 7692): negotiation of the four
 * parameters, and per-message compression and decompression with zlib.
 *
 * A message is compressed with a sync flush and sent without the final
 * 00 00 ff ff (7.2.1); it is inflated with those four bytes put back
 * (7.2.2).  Our inflater always uses a 32 KiB window, which reads every
 * window size a peer may use, so the *_max_window_bits values only ever
 * limit our compressor.  zlib cannot write raw deflate with an 8-bit
 * window, so offers that demand it are declined. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

#include <axon/alloc.h>

#include "proto/ws/ws_internal.h"

#define KEEP_BUF (64 * 1024) /* larger output buffers are freed after use */

struct ax__ws_deflate {
    z_stream tx, rx;
    bool tx_ok, rx_ok; /* the streams exist (made on first use) */
    int level;
    ax__ws_pmd pmd;
    uint8_t *zout, *iout; /* compressed output, inflated output: never shared */
    size_t zcap, icap;
};

/* ---- negotiation ------------------------------------------------------- */

typedef struct pmd_params {
    bool server_nct, client_nct;
    int server_bits; /* -1: absent */
    int client_bits; /* -1: absent, 0: present without a value */
} pmd_params;

/* 8..15 written as 1*DIGIT without leading zeros (RFC 7692 7.1.2). */
static int parse_bits(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2; /* quoted-string form */
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + v[1] - '0';
    return -1;
}

static bool name_is(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && strncasecmp(s, lit, n) == 0;
}

/* One parameter "name[=value]" into p; false when unknown, repeated or bad. */
static bool take_param(pmd_params *p, const char *s, size_t n)
{
    const char *eq = memchr(s, '=', n), *v = NULL;
    size_t nl = eq ? (size_t)(eq - s) : n, vl = 0;
    while (nl && (s[nl - 1] == ' ' || s[nl - 1] == '\t'))
        nl--;
    if (eq) {
        v = eq + 1;
        vl = (size_t)(s + n - v);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
    }
    if (name_is(s, nl, "server_no_context_takeover") && !eq && !p->server_nct)
        return p->server_nct = true;
    if (name_is(s, nl, "client_no_context_takeover") && !eq && !p->client_nct)
        return p->client_nct = true;
    if (name_is(s, nl, "server_max_window_bits") && eq && p->server_bits < 0)
        return (p->server_bits = parse_bits(v, vl)) > 0;
    if (name_is(s, nl, "client_max_window_bits") && p->client_bits < 0) {
        p->client_bits = eq ? parse_bits(v, vl) : 0;
        return p->client_bits >= 0;
    }
    return false;
}

/* One extension element "permessage-deflate; a; b=1".  Returns true and
 * fills p when it is permessage-deflate with valid parameters. */
static bool parse_offer(const char *e, size_t n, pmd_params *p)
{
    size_t i = 0;
    p->server_nct = p->client_nct = false;
    p->server_bits = p->client_bits = -1;
    while (i < n && e[i] != ';')
        i++;
    size_t nl = i;
    while (nl && (e[nl - 1] == ' ' || e[nl - 1] == '\t'))
        nl--;
    if (!name_is(e, nl, "permessage-deflate")) return false;
    while (i < n) {
        size_t start = ++i;
        while (i < n && e[i] != ';')
            i++;
        while (start < i && (e[start] == ' ' || e[start] == '\t'))
            start++;
        size_t end = i;
        while (end > start && (e[end - 1] == ' ' || e[end - 1] == '\t'))
            end--;
        if (!take_param(p, e + start, end - start)) return false;
    }
    return true;
}

size_t ax__ws_pmd_accept(const ax_ws_opts *o, const char *offer, size_t len, ax__ws_pmd *pmd,
                         char *out, size_t cap)
{
    size_t pos = 0, el;
    const char *e;
    pmd_params p;
    while (ax__ws_next_elem(offer, len, &pos, &e, &el)) {
        if (!parse_offer(e, el, &p)) continue;
        int tx = o->deflate_window_bits;
        if (p.server_bits > 0 && p.server_bits < tx) tx = p.server_bits;
        if (tx < 9) continue; /* zlib cannot: decline this offer */
        pmd->on = true;
        pmd->tx_no_context = p.server_nct || o->deflate_no_context_takeover;
        pmd->rx_no_context = p.client_nct || o->deflate_no_context_takeover;
        pmd->tx_bits = (uint8_t)tx;
        pmd->rx_bits = 15;
        int n = snprintf(out, cap, "permessage-deflate%s%s",
                         pmd->tx_no_context ? "; server_no_context_takeover" : "",
                         pmd->rx_no_context ? "; client_no_context_takeover" : "");
        if (tx < 15 || p.server_bits > 0)
            n += snprintf(out + n, cap - (size_t)n, "; server_max_window_bits=%d", tx);
        return (size_t)n;
    }
    return 0;
}

size_t ax__ws_pmd_offer(const ax_ws_opts *o, char *out, size_t cap)
{
    int n = snprintf(out, cap, "permessage-deflate; client_max_window_bits");
    if (o->deflate_no_context_takeover)
        n += snprintf(out + n, cap - (size_t)n,
                      "; server_no_context_takeover; client_no_context_takeover");
    return (size_t)n;
}

int ax__ws_pmd_check(const ax_ws_opts *o, const char *resp, size_t len, ax__ws_pmd *pmd)
{
    size_t pos = 0, el;
    const char *e;
    pmd_params p;
    memset(pmd, 0, sizeof(*pmd));
    if (!ax__ws_next_elem(resp, len, &pos, &e, &el)) return 0;
    if (!parse_offer(e, el, &p)) return AX_EPROTO; /* an extension we did not offer */
    if (ax__ws_next_elem(resp, len, &pos, &e, &el)) return AX_EPROTO;
    int tx = o->deflate_window_bits;
    if (p.client_bits > 0 && p.client_bits < tx) tx = p.client_bits;
    if (p.client_bits == 0 || tx < 9) return AX_EPROTO;
    pmd->on = true;
    pmd->tx_no_context = p.client_nct || o->deflate_no_context_takeover;
    pmd->rx_no_context = p.server_nct;
    pmd->tx_bits = (uint8_t)tx;
    pmd->rx_bits = 15;
    return 0;
}

/* ---- compression ------------------------------------------------------- */

/* zlib allocates through the library's hook, like everything else. */
static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return ax_malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    ax_free(p);
}

ax__ws_deflate *ax__ws_deflate_new(const ax__ws_pmd *pmd, int level)
{
    ax__ws_deflate *d = ax_calloc(1, sizeof(*d));
    if (!d) return NULL;
    d->pmd = *pmd;
    d->level = level < 1 || level > 9 ? 1 : level;
    d->tx.zalloc = d->rx.zalloc = z_alloc;
    d->tx.zfree = d->rx.zfree = z_free;
    return d;
}

/* The streams are made on first use: a connection that never sends (or
 * never receives) a compressed message never pays for that direction's
 * window (about 256 KiB for a 15-bit compressor, 32 KiB to inflate). */
static int tx_ready(ax__ws_deflate *d)
{
    if (d->tx_ok) return 0;
    int mem = d->pmd.tx_bits < 15 ? d->pmd.tx_bits - 7 : 8; /* smaller window, smaller hash */
    if (deflateInit2(&d->tx, d->level, Z_DEFLATED, -(int)d->pmd.tx_bits, mem, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return AX_ENOMEM;
    d->tx_ok = true;
    return 0;
}

static int rx_ready(ax__ws_deflate *d)
{
    if (d->rx_ok) return 0;
    if (inflateInit2(&d->rx, -15) != Z_OK) return AX_ENOMEM;
    d->rx_ok = true;
    return 0;
}

void ax__ws_deflate_free(ax__ws_deflate *d)
{
    if (!d) return;
    if (d->tx_ok) deflateEnd(&d->tx);
    if (d->rx_ok) inflateEnd(&d->rx);
    ax_free(d->zout);
    ax_free(d->iout);
    ax_free(d);
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need)
        c *= 2;
    uint8_t *b = ax_realloc(*buf, c);
    if (!b) return AX_ENOMEM;
    *buf = b;
    *cap = c;
    return 0;
}

static void shrink(uint8_t **buf, size_t *cap)
{
    if (*cap <= KEEP_BUF) return;
    ax_free(*buf);
    *buf = NULL;
    *cap = 0;
}

int ax__ws_compress(ax__ws_deflate *d, const uint8_t *in, size_t len, const uint8_t **out,
                    size_t *out_len)
{
    z_stream *z = &d->tx;
    size_t done = 0;
    if (tx_ready(d) < 0) return AX_ENOMEM;
    shrink(&d->zout, &d->zcap);
    if (grow(&d->zout, &d->zcap, deflateBound(z, (uLong)len) + 16) < 0) return AX_ENOMEM;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    for (;;) {
        z->next_out = d->zout + done;
        z->avail_out = (uInt)(d->zcap - done);
        int zr = deflate(z, Z_SYNC_FLUSH);
        done = d->zcap - z->avail_out;
        if (zr != Z_OK && zr != Z_BUF_ERROR) return AX_EIO;
        if (z->avail_out > 0 && z->avail_in == 0) break; /* flushed completely */
        if (grow(&d->zout, &d->zcap, d->zcap * 2) < 0) return AX_ENOMEM;
    }
    if (done >= 4) done -= 4; /* the 00 00 ff ff of the sync flush */
    if (d->pmd.tx_no_context) deflateReset(z);
    *out = d->zout;
    *out_len = done;
    return 0;
}

/* Room for more inflated output: up to `max` + 1 bytes in all, so that
 * passing the limit is seen.  0, or a close code. */
static int inflate_room(ax__ws_deflate *d, size_t done, size_t max)
{
    if (d->icap - done >= 1024 || d->icap > max) return d->icap > done ? 0 : AX_WS_CLOSE_TOO_BIG;
    size_t want = d->icap * 2 < 4096 ? 4096 : d->icap * 2;
    if (want > max + 1) want = max + 1;
    if (want <= d->icap) return d->icap > done ? 0 : AX_WS_CLOSE_TOO_BIG;
    return grow(&d->iout, &d->icap, want) < 0 ? AX_WS_CLOSE_INTERNAL : 0;
}

/* Inflate `len` bytes into iout from *done on; 0, or a close code. */
static int inflate_some(ax__ws_deflate *d, const uint8_t *in, size_t len, size_t max, size_t *done,
                        bool *ended)
{
    z_stream *z = &d->rx;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    while (!*ended) {
        int code = inflate_room(d, *done, max);
        if (code) return code;
        z->next_out = d->iout + *done;
        z->avail_out = (uInt)(d->icap - *done);
        int zr = inflate(z, Z_SYNC_FLUSH);
        *done = d->icap - z->avail_out;
        if (*done > max) return AX_WS_CLOSE_TOO_BIG;
        if (zr == Z_STREAM_END)
            *ended = true;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            return AX_WS_CLOSE_INVALID_DATA;
        if (z->avail_in == 0 && z->avail_out > 0) break; /* all input used, all output out */
    }
    if (*ended && z->avail_in > 0) return AX_WS_CLOSE_INVALID_DATA; /* bytes after the end */
    return 0;
}

int ax__ws_inflate(ax__ws_deflate *d, const uint8_t *in, size_t len, size_t max,
                   const uint8_t **out, size_t *out_len)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    size_t done = 0;
    bool ended = false;
    if (rx_ready(d) < 0) return AX_WS_CLOSE_INTERNAL;
    shrink(&d->iout, &d->icap);
    int code = inflate_some(d, in, len, max, &done, &ended);
    if (!code && !ended) code = inflate_some(d, tail, sizeof tail, max, &done, &ended);
    if (code) return code;
    /* A final block ends the peer's stream; its next message starts anew. */
    if (ended || d->pmd.rx_no_context) inflateReset(&d->rx);
    *out = d->iout ? d->iout : tail;
    *out_len = done;
    return 0;
}
