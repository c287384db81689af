/* bench_http.c: `axon bench http://...`: HTTP/1.1 keep-alive load on plain
 * connections (the request is encoded once, -p of them pipelined), the
 * responses read with the library's own parser (proto/http/http_parser.h).
 * Also the response reader the SSE client uses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"
#include "proto/http/http_parser.h"

#define MAX_RESP_HEADERS 64

struct bench_resp {
    ax_http_parser p;
    ax_http_head h;
    ax_http_header hdrs[MAX_RESP_HEADERS];
    ax_http_body body;
    bool in_body;
    int status;
    bool keep;
};

bench_resp *bench_resp_new(void)
{
    bench_resp *r = calloc(1, sizeof(*r));
    if (!r) return NULL;
    ax_http_parser_init(&r->p, AX_HTTP_RESPONSE, NULL);
    return r;
}

void bench_resp_free(bench_resp *r)
{
    free(r);
}

static long feed_head(bench_resp *r, const char *p, size_t n, const bench_resp_cbs *cbs, void *ud)
{
    r->h.headers = r->hdrs;
    r->h.headers_cap = MAX_RESP_HEADERS;
    int rc = ax_http_parse_head(&r->p, p, n, &r->h);
    if (rc == AX_HTTP_INCOMPLETE) return 0;
    if (rc < 0) return -1;
    r->status = r->h.status;
    r->keep = (r->h.flags & AX_HTTP_KEEP_ALIVE) != 0;
    if (r->status < 200) { /* interim: skip it, another head follows */
        ax_http_parser_init(&r->p, AX_HTTP_RESPONSE, NULL);
        return rc;
    }
    if (cbs->on_head) cbs->on_head(ud, r->status);
    ax_http_body_init(&r->body, r->h.framing, r->h.content_length, NULL);
    r->in_body = true;
    return rc;
}

long bench_resp_feed(bench_resp *r, const char *p, size_t n, const bench_resp_cbs *cbs, void *ud)
{
    size_t used = 0;
    for (;;) {
        if (!r->in_body) {
            long k = feed_head(r, p + used, n - used, cbs, ud);
            if (k < 0) return -1;
            if (k == 0) return (long)used;
            used += (size_t)k;
            continue;
        }
        ax_http_str data = {0};
        int k = ax_http_body_parse(&r->body, p + used, n - used, &data);
        if (k == AX_HTTP_INCOMPLETE) return (long)used;
        if (k < 0) return -1;
        if (k > 0) {
            used += (size_t)k;
            if (data.len && cbs->on_body) cbs->on_body(ud, data.ptr, data.len);
            if (r->h.framing != AX_HTTP_BODY_NONE && !ax_http_body_done(&r->body)) continue;
        }
        /* The response is complete. */
        r->in_body = false;
        ax_http_parser_init(&r->p, AX_HTTP_RESPONSE, NULL);
        if (cbs->on_done) cbs->on_done(ud, r->status, r->keep);
        if (used == n) return (long)used;
    }
}

/* ---- the load --------------------------------------------------------------- */

typedef struct http_pd {
    bench_resp *resp;
    bool closing;
} http_pd;

typedef struct http_wd {
    char *req; /* the request, encoded once */
    size_t len;
} http_wd;

static void connect_one(bconn *c);

static void h_done(void *ud, int status, bool keep)
{
    bconn *c = ud;
    http_pd *pd = c->pd;
    if (status >= 400) {
        char why[32];
        snprintf(why, sizeof why, "HTTP %d", status);
        bench_error(c->w, why);
    }
    if (!keep) pd->closing = true;
    if (c->inflight > 0) bench_reply(c);
}

static const bench_resp_cbs h_cbs = {.on_done = h_done};

void bench_http_open(ax_conn *h)
{
    bconn *c = ax_conn_data(h);
    bench_conn_up(c);
    bench_pump(c);
}

size_t bench_http_data(ax_conn *h, bench_resp *r, const char *data, size_t len,
                       const bench_resp_cbs *cbs, const char *what)
{
    bconn *c = ax_conn_data(h);
    bench_bytes(c->w, len, 0);
    long used = bench_resp_feed(r, data, len, cbs, c);
    if (used < 0) {
        char why[64];
        snprintf(why, sizeof why, "%s: a malformed response", what);
        bench_error(c->w, why);
        ax_conn_abort(h, AX_EPROTO);
        return len;
    }
    return (size_t)used;
}

static size_t h_data(ax_conn *h, const char *data, size_t len)
{
    bconn *c = ax_conn_data(h);
    return bench_http_data(h, ((http_pd *)c->pd)->resp, data, len, &h_cbs, "HTTP");
}

/* A connection that ends (the server said close, or it dropped us) is
 * replaced while the load runs; requests it had in flight are errors. */
static void h_close(ax_conn *h, int reason)
{
    bconn *c = ax_conn_data(h);
    if (!c) return;
    http_pd *pd = c->pd;
    bool was_up = c->up;
    if (c->inflight > 0 || !pd->closing) {
        char why[96];
        snprintf(why, sizeof why, "%s: %s", was_up ? "closed" : "connect",
                 ax_strerror(reason ? reason : AX_EOF));
        bench_error(c->w, why);
    }
    if (c->up) __atomic_sub_fetch(&c->w->up_now, 1, __ATOMIC_RELAXED);
    c->up = false;
    c->h = NULL;
    /* Give up the requests in flight. */
    while (c->inflight > 0)
        bench_complete(c, c->low, false);
    if (!was_up || !bench_running()) {
        bench_conn_down(c, NULL);
        return;
    }
    bench_resp_free(pd->resp);
    pd->resp = bench_resp_new();
    pd->closing = false;
    connect_one(c);
}

static const ax_conn_cbs h_conn_cbs = {
    .on_open = bench_http_open, .on_data = h_data, .on_close = h_close};

static void connect_one(bconn *c)
{
    const bench_cfg *cfg = c->w->cfg;
    ax_conn_opts co = {.tls = cfg->tls_ctx, .output_cap = 64u << 20};
    int err = 0;
    c->h = ax_connect(c->w->loop, cfg->target, &h_conn_cbs, &co, c, &err);
    if (!c->h) {
        char why[96];
        snprintf(why, sizeof why, "connect: %s", ax_strerror(err));
        bench_conn_down(c, why);
    }
}

static char *encode_request(const bench_cfg *cfg, size_t *len)
{
    size_t cap = 512 + strlen(cfg->path) + strlen(cfg->host) + cfg->body_len;
    for (int i = 0; i < cfg->nheaders; i++)
        cap += strlen(cfg->headers[i]) + 2;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t n = (size_t)snprintf(b, cap, "%s %s HTTP/1.1\r\n", cfg->method, cfg->path);
    bool host = false;
    for (int i = 0; i < cfg->nheaders; i++)
        if (strncasecmp(cfg->headers[i], "host:", 5) == 0) host = true;
    if (!host) n += (size_t)snprintf(b + n, cap - n, "Host: %s:%d\r\n", cfg->host, cfg->port);
    for (int i = 0; i < cfg->nheaders; i++)
        n += (size_t)snprintf(b + n, cap - n, "%s\r\n", cfg->headers[i]);
    if (cfg->body || strcmp(cfg->method, "POST") == 0 || strcmp(cfg->method, "PUT") == 0)
        n += (size_t)snprintf(b + n, cap - n, "Content-Length: %zu\r\n", cfg->body_len);
    n += (size_t)snprintf(b + n, cap - n, "\r\n");
    if (cfg->body_len) memcpy(b + n, cfg->body, cfg->body_len);
    *len = n + cfg->body_len;
    return b;
}

static int h_setup(bench_worker *w)
{
    http_wd *wd = calloc(1, sizeof(*wd));
    if (!wd) return AX_ENOMEM;
    w->pd = wd;
    wd->req = encode_request(w->cfg, &wd->len);
    if (!wd->req) return AX_ENOMEM;
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        http_pd *pd = calloc(1, sizeof(*pd));
        if (!pd) return AX_ENOMEM;
        c->pd = pd;
        pd->resp = bench_resp_new();
        if (!pd->resp) return AX_ENOMEM;
        connect_one(c);
    }
    return 0;
}

static int h_send(bconn *c, uint64_t seq, uint64_t ts)
{
    (void)seq;
    (void)ts;
    http_wd *wd = c->w->pd;
    http_pd *pd = c->pd;
    if (pd->closing) return 1; /* after the replacement connection opens */
    bench_bytes(c->w, 0, wd->len);
    int rc = ax_conn_write(c->h, wd->req, wd->len);
    return rc < 0 ? rc : 0;
}

static void h_shutdown(bench_worker *w)
{
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->h) {
            ax_conn_set_data(c->h, NULL);
            ax_conn_abort(c->h, 0);
            c->h = NULL;
        }
        http_pd *pd = c->pd;
        if (pd) bench_resp_free(pd->resp);
        free(pd);
        c->pd = NULL;
    }
    http_wd *wd = w->pd;
    if (wd) free(wd->req);
    free(wd);
    w->pd = NULL;
}

const bench_ops bench_http_ops = {.setup = h_setup, .send = h_send, .shutdown = h_shutdown};
