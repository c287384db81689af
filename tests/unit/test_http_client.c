/* test_http_client.c: the HTTP client against an in-process ax_http server
 * and against a raw responder that sends canned bytes: keep-alive reuse,
 * bodies (length, chunked, until close, none), redirects and their limit,
 * timeouts, malformed responses, size limits, backpressure, retries on a
 * stale pooled connection, cancelling, https; and the URL helpers. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/http.h>
#include <axon/http_client.h>

#include "proto/http/client_internal.h"
#include "runner.h"
#include "testutil.h"

/* ---- fixture ------------------------------------------------------------- */

typedef struct fx {
    ax_loop *loop;
    ax_http_server *srv;
    ax_listener *l, *raw;
    ax_http_client *hc;
    char base[64], raw_base[64];
    /* the last fetch */
    int done, err, status, pieces, heads;
    char *body;
    size_t body_len, max_piece;
    char detail[256];
    bool pause_each;
    ax_timer *resume;
    ax_http_fetch *cur;
    /* server side */
    ax_conn *seen[16];
    int nseen;
    /* raw responder: what to answer, per request on a connection */
    const char *canned;
    int raw_mode;
    int raw_requests;
    void *upload;    /* a streamed request body's state */
    uint64_t raw_in; /* bytes the raw responder's connection received */
} fx;

static void fx_start(fx *f, const ax_http_client_opts *o)
{
    int err = 0;
    memset(f, 0, sizeof(*f));
    f->loop = tu_loop();
    f->srv = ax_http_server_new(f->loop, NULL, &err);
    ASSERT(f->srv != NULL);
    f->l = ax_http_listen(f->srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(f->l != NULL);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", ax_addr_port(ax_listener_addr(f->l)));
    f->hc = ax_http_client_new(f->loop, o, &err);
    ASSERT(f->hc != NULL);
}

static void fx_stop(fx *f)
{
    ax_http_client_free(f->hc);
    if (f->raw) ax_listener_close(f->raw);
    if (f->resume) ax_timer_free(f->resume);
    ax_http_server_free(f->srv);
    ax_loop_free(f->loop);
    free(f->body);
}

static void on_head(ax_http_fetch *h, int status, void *ud)
{
    fx *f = ud;
    f->heads++;
    f->status = status;
    (void)h;
}

static void resume_cb(ax_timer *t, void *ud)
{
    fx *f = ud;
    (void)t;
    if (f->cur) ax_http_fetch_resume(f->cur);
}

static int on_body(ax_http_fetch *h, const char *p, size_t n, void *ud)
{
    fx *f = ud;
    f->body = realloc(f->body, f->body_len + n + 1);
    memcpy(f->body + f->body_len, p, n);
    f->body_len += n;
    f->body[f->body_len] = '\0';
    f->pieces++;
    if (n > f->max_piece) f->max_piece = n;
    if (f->pause_each) {
        ax_http_fetch_pause(h);
        if (!f->resume) f->resume = ax_timer_new(f->loop, resume_cb, f);
        ax_timer_start(f->resume, 1, 0);
    }
    return 0;
}

static void on_done(ax_http_fetch *h, int err, void *ud)
{
    fx *f = ud;
    const char *d = ax_http_fetch_error_detail(h);
    snprintf(f->detail, sizeof f->detail, "%s", d ? d : "");
    f->err = err;
    f->done++;
    f->cur = NULL;
}

static const ax_http_fetch_cbs cbs = {.on_head = on_head, .on_body = on_body, .on_done = on_done};

/* Fetch and wait for on_done; returns its code. */
static int fetch_rq(fx *f, ax_http_request *rq)
{
    int err = 0, before = f->done;
    f->body_len = 0;
    f->status = f->pieces = f->heads = 0;
    f->max_piece = 0;
    if (f->body) f->body[0] = '\0';
    f->cur = ax_http_fetch_start(f->hc, rq, &cbs, f, &err);
    ASSERT(f->cur != NULL);
    RUN_UNTIL(f->loop, f->done > before, 10000);
    return f->err;
}

/* Start a fetch of the server's `path` with `head` as its on_head. */
static void start_with_head(fx *f, const char *path, void (*head)(ax_http_fetch *, int, void *))
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    ax_http_request rq = {.url = url};
    ax_http_fetch_cbs c = cbs;
    c.on_head = head;
    int err;
    ASSERT(ax_http_fetch_start(f->hc, &rq, &c, f, &err) != NULL);
}

static int fetch(fx *f, const char *base, const char *path)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    ax_http_request rq = {.url = url};
    return fetch_rq(f, &rq);
}

/* ---- server handlers ----------------------------------------------------- */

static void h_hello(ax_http_req *r, void *ud)
{
    fx *f = ud;
    if (f->nseen < 16) f->seen[f->nseen++] = ax_http_req_conn(r);
    ax_http_respond(r, 200, "text/plain", "hello\n", 6);
}

static void h_chunked(ax_http_req *r, void *ud)
{
    (void)ud;
    ax_http_start(r, 200, -1);
    ax_http_write(r, "one,", 4);
    ax_http_write(r, "two,", 4);
    ax_http_write(r, "three", 5);
    ax_http_end(r);
}

static void h_status(ax_http_req *r, void *ud)
{
    size_t n;
    const char *p = ax_http_req_path(r, &n);
    ax_http_respond(r, atoi(p + 8), NULL, NULL, 0); /* /status/NNN */
    (void)ud;
}

/* /r/N redirects to N-1 (relative), /r/0 answers "end". */
static void h_redirect(ax_http_req *r, void *ud)
{
    size_t n;
    const char *p = ax_http_req_path(r, &n);
    int left = atoi(p + 3);
    char loc[32];
    (void)ud;
    if (left == 0) {
        ax_http_respond(r, 200, NULL, "end", 3);
        return;
    }
    snprintf(loc, sizeof loc, "%d", left - 1);
    ax_http_add_header(r, "Location", loc);
    ax_http_respond(r, 302, "text/plain", "moved", 5);
}

/* /to/CODE redirects with CODE to /echo. */
static void h_to(ax_http_req *r, void *ud)
{
    size_t n;
    const char *p = ax_http_req_path(r, &n);
    (void)ud;
    ax_http_add_header(r, "Location", "/echo?from=to");
    ax_http_respond(r, atoi(p + 4), NULL, NULL, 0);
}

/* The method, then ':' and the body. */
static void h_echo(ax_http_req *r, void *ud)
{
    size_t ml, bl;
    const char *m = ax_http_req_method(r, &ml), *b = ax_http_req_body(r, &bl);
    char *out = malloc(ml + bl + 1);
    memcpy(out, m, ml);
    out[ml] = ':';
    memcpy(out + ml + 1, b, bl);
    ax_http_respond(r, 200, NULL, out, ml + bl + 1);
    free(out);
    (void)ud;
}

#define BIG (4u << 20)

static void h_big(ax_http_req *r, void *ud)
{
    unsigned char *b = malloc(BIG);
    tu_fill_pattern(b, BIG, 0);
    ax_http_respond(r, 200, NULL, b, BIG);
    free(b);
    (void)ud;
}

static void routes(fx *f)
{
    ax_http_route(f->srv, NULL, "/hello", h_hello, f);
    ax_http_route(f->srv, NULL, "/chunked", h_chunked, f);
    ax_http_route(f->srv, NULL, "/status", h_status, f);
    ax_http_route(f->srv, NULL, "/r", h_redirect, f);
    ax_http_route(f->srv, NULL, "/to", h_to, f);
    ax_http_route(f->srv, NULL, "/echo", h_echo, f);
    ax_http_route(f->srv, NULL, "/big", h_big, f);
}

/* ---- the raw responder --------------------------------------------------- */

enum {
    RAW_CANNED,       /* send `canned`, keep the connection */
    RAW_CANNED_CLOSE, /* send `canned`, then close */
    RAW_SILENT,       /* never answer */
    RAW_ONCE,         /* answer the first request on a connection, close on the second */
    RAW_AFTER_END,    /* answer once the bytes received end in "END" (a body's end) */
};

static size_t raw_data(ax_conn *c, const char *data, size_t len)
{
    fx *f = ax_conn_data(c);
    const char *end = NULL;
    f->raw_in = ax_conn_bytes_in(c);
    if (f->raw_mode == RAW_AFTER_END) {
        if (len >= 3 && memcmp(data + len - 3, "END", 3) == 0)
            ASSERT(ax_conn_write(c, f->canned, strlen(f->canned)) >= 0);
        return len;
    }
    for (size_t i = 0; i + 4 <= len && !end; i++)
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) end = data + i;
    if (!end) return 0;
    f->raw_requests++;
    if (f->raw_mode == RAW_SILENT) return len;
    if (f->raw_mode == RAW_ONCE && ax_conn_bytes_out(c) > 0) {
        ax_conn_close(c);
        return len;
    }
    ASSERT(ax_conn_write(c, f->canned, strlen(f->canned)) >= 0);
    if (f->raw_mode == RAW_CANNED_CLOSE) ax_conn_close(c);
    return (size_t)(end + 4 - data);
}

static const ax_conn_cbs raw_cbs = {.on_data = raw_data};

static void raw_listen(fx *f, int mode, const char *canned, ax_tls_ctx *tls)
{
    int err;
    ax_conn_opts co = {.tls = tls};
    f->raw_mode = mode;
    f->canned = canned;
    f->raw = ax_listen_ex(f->loop, tls ? "tls://127.0.0.1:0" : "tcp://127.0.0.1:0", &raw_cbs, &co,
                          NULL, f, &err);
    ASSERT(f->raw != NULL);
    snprintf(f->raw_base, sizeof f->raw_base, "%s://127.0.0.1:%d", tls ? "https" : "http",
             ax_addr_port(ax_listener_addr(f->raw)));
}

/* ---- tests: connections -------------------------------------------------- */

TEST(http_client_keepalive_reuse)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(fetch(&f, f.base, "/hello"), 0);
        ASSERT_EQ(f.status, 200);
        ASSERT_STREQ(f.body, "hello\n");
    }
    ASSERT_EQ(f.nseen, 3);
    ASSERT(f.seen[0] == f.seen[1] && f.seen[1] == f.seen[2]); /* one server connection */
    ASSERT_EQ(ax_http_client_connects(f.hc), 1);
    ASSERT_EQ(ax_http_client_idle(f.hc), 1);
    /* a fresh connection when asked, and none kept after Connection: close */
    ax_http_request rq = {.url = "", .flags = AX_HTTP_FRESH_CONN | AX_HTTP_NO_KEEPALIVE};
    char url[128];
    snprintf(url, sizeof url, "%s/hello", f.base);
    rq.url = url;
    ASSERT_EQ(fetch_rq(&f, &rq), 0);
    ASSERT(f.seen[3] != f.seen[0]);
    ASSERT_EQ(ax_http_client_connects(f.hc), 2);
    ASSERT_EQ(ax_http_client_idle(f.hc), 1);
    fx_stop(&f);
}

TEST(http_client_pool_bounded)
{
    ax_http_client_opts o = {.max_idle = 2, .max_idle_per_host = 1};
    fx f;
    fx_start(&f, &o);
    routes(&f);
    int err;
    ax_http_server *s2 = ax_http_server_new(f.loop, NULL, &err);
    ax_http_route(s2, NULL, "/", h_hello, &f);
    ax_listener *l2 = ax_http_listen(s2, "tcp://127.0.0.1:0", NULL, &err);
    ax_http_server *s3 = ax_http_server_new(f.loop, NULL, &err);
    ax_http_route(s3, NULL, "/", h_hello, &f);
    ax_listener *l3 = ax_http_listen(s3, "tcp://127.0.0.1:0", NULL, &err);
    char b2[64], b3[64];
    snprintf(b2, sizeof b2, "http://127.0.0.1:%d", ax_addr_port(ax_listener_addr(l2)));
    snprintf(b3, sizeof b3, "http://127.0.0.1:%d", ax_addr_port(ax_listener_addr(l3)));
    /* two at once to the same origin: two connections, one kept */
    char url[128];
    snprintf(url, sizeof url, "%s/hello", f.base);
    ax_http_request rq = {.url = url};
    ASSERT(ax_http_fetch_start(f.hc, &rq, &cbs, &f, &err) != NULL);
    ASSERT(ax_http_fetch_start(f.hc, &rq, &cbs, &f, &err) != NULL);
    RUN_UNTIL(f.loop, f.done == 2, 5000);
    ASSERT_EQ(ax_http_client_connects(f.hc), 2);
    ASSERT_EQ(ax_http_client_idle(f.hc), 1);
    ASSERT_EQ(fetch(&f, b2, "/"), 0);
    ASSERT_EQ(fetch(&f, b3, "/"), 0); /* three origins, room for two */
    ASSERT_EQ(ax_http_client_idle(f.hc), 2);
    ASSERT_EQ(fetch(&f, b3, "/"), 0);
    ASSERT_EQ(ax_http_client_connects(f.hc), 4);
    ax_http_server_free(s2);
    ax_http_server_free(s3);
    fx_stop(&f);
}

TEST(http_client_idle_timeout_closes_pooled)
{
    ax_http_client_opts o = {.idle_timeout_ms = 100};
    fx f;
    fx_start(&f, &o);
    routes(&f);
    ASSERT_EQ(fetch(&f, f.base, "/hello"), 0);
    ASSERT_EQ(ax_http_client_idle(f.hc), 1);
    RUN_UNTIL(f.loop, ax_http_client_idle(f.hc) == 0, 3000);
    ASSERT_EQ(fetch(&f, f.base, "/hello"), 0);
    ASSERT_EQ(ax_http_client_connects(f.hc), 2);
    fx_stop(&f);
}

TEST(http_client_stale_pooled_connection_retried)
{
    fx f;
    fx_start(&f, NULL);
    raw_listen(&f, RAW_ONCE, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", NULL);
    ASSERT_EQ(fetch(&f, f.raw_base, "/a"), 0);
    ASSERT_EQ(fetch(&f, f.raw_base, "/b"), 0); /* the server drops the reused one */
    ASSERT_STREQ(f.body, "ok");
    ASSERT_EQ(ax_http_client_connects(f.hc), 2);
    ASSERT_EQ(f.raw_requests, 3);
    /* POST is not idempotent: no retry */
    char url[128];
    snprintf(url, sizeof url, "%s/c", f.raw_base);
    ax_http_request rq = {.url = url, .method = "POST", .body = "x", .body_len = 1};
    ASSERT_EQ(fetch_rq(&f, &rq), AX_EOF);
    fx_stop(&f);
}

/* ---- tests: bodies ------------------------------------------------------- */

TEST(http_client_chunked_response)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    ASSERT_EQ(fetch(&f, f.base, "/chunked"), 0);
    ASSERT_STREQ(f.body, "one,two,three");
    ASSERT_EQ(ax_http_client_idle(f.hc), 1);
    fx_stop(&f);
}

TEST(http_client_close_delimited_body)
{
    fx f;
    fx_start(&f, NULL);
    raw_listen(&f, RAW_CANNED_CLOSE, "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nuntil the end", NULL);
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), 0);
    ASSERT_STREQ(f.body, "until the end");
    ASSERT_EQ(ax_http_client_idle(f.hc), 0);
    fx_stop(&f);
}

TEST(http_client_head_and_bodyless_statuses)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    char url[128];
    snprintf(url, sizeof url, "%s/hello", f.base);
    ax_http_request rq = {.url = url, .method = "HEAD"};
    ASSERT_EQ(fetch_rq(&f, &rq), 0);
    ASSERT_EQ(f.status, 200);
    ASSERT_EQ(f.body_len, 0);
    ASSERT_EQ(fetch(&f, f.base, "/status/204"), 0);
    ASSERT_EQ(f.status, 204);
    ASSERT_EQ(fetch(&f, f.base, "/status/304"), 0);
    ASSERT_EQ(f.status, 304);
    ASSERT_EQ(fetch(&f, f.base, "/hello"), 0); /* the same connection still works */
    ASSERT_STREQ(f.body, "hello\n");
    ASSERT_EQ(ax_http_client_connects(f.hc), 1);
    fx_stop(&f);
}

TEST(http_client_interim_and_http10)
{
    fx f;
    fx_start(&f, NULL);
    raw_listen(&f, RAW_CANNED,
               "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
               "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n1.0",
               NULL);
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), 0);
    ASSERT_EQ(f.status, 200);
    ASSERT_EQ(f.heads, 1);
    ASSERT_STREQ(f.body, "1.0");
    ASSERT_EQ(ax_http_client_idle(f.hc), 0); /* HTTP/1.0 without keep-alive */
    fx_stop(&f);
}

TEST(http_client_large_body_streamed_with_pauses)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    f.pause_each = true;
    ASSERT_EQ(fetch(&f, f.base, "/big"), 0);
    ASSERT_EQ(f.body_len, BIG);
    ASSERT_EQ(tu_check_pattern((unsigned char *)f.body, f.body_len, 0), BIG);
    ASSERT(f.pieces > 16);          /* streamed, not collected */
    ASSERT(f.max_piece <= 1 << 20); /* nothing near the whole body at once */
    fx_stop(&f);
}

TEST(http_client_upload_length_and_chunked)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f.base);
    size_t n = 300000;
    char *data = malloc(n);
    tu_fill_pattern((unsigned char *)data, n, 0);
    ax_http_request rq = {.url = url, .method = "PUT", .body = data, .body_len = n};
    for (int chunked = 0; chunked < 2; chunked++) {
        rq.flags = chunked ? AX_HTTP_CHUNKED_BODY : 0;
        ASSERT_EQ(fetch_rq(&f, &rq), 0);
        ASSERT_EQ(f.body_len, n + 4);
        ASSERT(memcmp(f.body, "PUT:", 4) == 0 && memcmp(f.body + 4, data, n) == 0);
    }
    free(data);
    fx_stop(&f);
}

TEST(http_client_size_limits)
{
    ax_http_client_opts o = {.max_body = 1000};
    fx f;
    fx_start(&f, &o);
    routes(&f);
    ASSERT_EQ(fetch(&f, f.base, "/big"), AX_ETOOBIG); /* by Content-Length */
    ASSERT_EQ(f.heads, 0);
    ASSERT_EQ(fetch(&f, f.base, "/hello"), 0);
    char url[128];
    snprintf(url, sizeof url, "%s/chunked", f.base);
    ax_http_request rq = {.url = url, .max_body = 5};
    ASSERT_EQ(fetch_rq(&f, &rq), AX_ETOOBIG); /* while decoding chunks */
    ASSERT(strstr(f.detail, "limit") != NULL);
    fx_stop(&f);
}

/* ---- tests: redirects ---------------------------------------------------- */

TEST(http_client_redirects_followed_and_limited)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    char url[128];
    snprintf(url, sizeof url, "%s/r/3", f.base);
    ax_http_request rq = {.url = url, .flags = AX_HTTP_FOLLOW};
    ASSERT_EQ(fetch_rq(&f, &rq), 0);
    ASSERT_EQ(f.status, 200);
    ASSERT_STREQ(f.body, "end"); /* the redirects' bodies are not delivered */
    ASSERT_EQ(f.heads, 1);
    ASSERT_EQ(ax_http_client_connects(f.hc), 1);
    rq.max_redirects = 2;
    ASSERT_EQ(fetch_rq(&f, &rq), AX_EREDIRECTS);
    ASSERT(strstr(f.detail, "2 redirects") != NULL);
    rq.flags = 0; /* not following: the 302 is the answer */
    ASSERT_EQ(fetch_rq(&f, &rq), 0);
    ASSERT_EQ(f.status, 302);
    ASSERT_STREQ(f.body, "moved");
    fx_stop(&f);
}

TEST(http_client_redirect_method_rules)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    static const struct {
        int code;
        const char *method, *want;
    } cases[] = {
        {301, "POST", "GET:"},          {302, "POST", "GET:"},      {303, "POST", "GET:"},
        {303, "PUT", "GET:"},           {307, "POST", "POST:data"}, {308, "PUT", "PUT:data"},
        {302, "DELETE", "DELETE:data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char url[128];
        snprintf(url, sizeof url, "%s/to/%d", f.base, cases[i].code);
        ax_http_request rq = {.url = url,
                              .method = cases[i].method,
                              .body = "data",
                              .body_len = 4,
                              .flags = AX_HTTP_FOLLOW};
        ASSERT_EQ(fetch_rq(&f, &rq), 0);
        ASSERT_STREQ(f.body, cases[i].want);
    }
    fx_stop(&f);
}

/* ---- tests: failures ----------------------------------------------------- */

TEST(http_client_read_and_overall_timeouts)
{
    ax_http_client_opts o = {.read_timeout_ms = 150};
    fx f;
    fx_start(&f, &o);
    raw_listen(&f, RAW_SILENT, NULL, NULL);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), AX_ETIMEDOUT);
    ASSERT(tu_now_ms() - t0 >= 100);
    ASSERT(strstr(f.detail, "no data") != NULL);
    char url[128];
    snprintf(url, sizeof url, "%s/", f.raw_base);
    ax_http_request rq = {.url = url, .timeout_ms = 50};
    ASSERT_EQ(fetch_rq(&f, &rq), AX_ETIMEDOUT);
    ASSERT(strstr(f.detail, "within 50 ms") != NULL);
    fx_stop(&f);
}

TEST(http_client_malformed_responses)
{
    static const char *bad[] = {
        "HTTX/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fx f;
        fx_start(&f, NULL);
        raw_listen(&f, RAW_CANNED, bad[i], NULL);
        ASSERT_EQ(fetch(&f, f.raw_base, "/"), AX_EHTTP);
        ASSERT(f.detail[0] != '\0');
        ASSERT_EQ(ax_http_client_idle(f.hc), 0);
        fx_stop(&f);
    }
}

TEST(http_client_truncated_and_refused)
{
    fx f;
    fx_start(&f, NULL);
    raw_listen(&f, RAW_CANNED_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", NULL);
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), AX_EOF);
    ASSERT(strstr(f.detail, "before the response was complete") != NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", tu_closed_port());
    ax_http_request rq = {.url = url};
    ASSERT_EQ(fetch_rq(&f, &rq), AX_ECONNREFUSED);
    fx_stop(&f);
}

TEST(http_client_bad_requests_refused_at_start)
{
    fx f;
    fx_start(&f, NULL);
    int err = 0;
    const char *hdr_bad[] = {"X-A: 1\r\nInjected: 1"};
    const char *hdr_cl[] = {"Content-Length: 5"};
    const char *hdr_noname[] = {": x"};
    const char *hdr_ctl[] = {"X-A: a\x01b"};
    struct {
        ax_http_request rq;
        int want;
    } cases[] = {
        {{.url = "ftp://x/"}, AX_ESCHEME},
        {{.url = "http//x/"}, AX_EURL},
        {{.url = "http://user:pw@x/"}, AX_EURL},
        {{.url = "http://x:99999/"}, AX_EPORT},
        {{.url = "http://a b/"}, AX_EHOST},
        {{.url = "http://x/a b"}, AX_EURL},
        {{.url = "http://x/", .method = "G ET"}, AX_EINVAL},
        {{.url = "http://x/", .headers = hdr_bad, .num_headers = 1}, AX_EINVAL},
        {{.url = "http://x/", .headers = hdr_cl, .num_headers = 1}, AX_EINVAL},
        {{.url = "http://x/", .headers = hdr_noname, .num_headers = 1}, AX_EINVAL},
        {{.url = "http://x/", .headers = hdr_ctl, .num_headers = 1}, AX_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ASSERT(ax_http_fetch_start(f.hc, &cases[i].rq, &cbs, &f, &err) == NULL);
        ASSERT_EQ(err, cases[i].want);
    }
    tu_run_for(f.loop, 20);
    ASSERT_EQ(f.done, 0); /* failed starts call nothing */
    fx_stop(&f);
}

static void cancel_in_head(ax_http_fetch *h, int status, void *ud)
{
    fx *f = ud;
    f->heads++;
    (void)status;
    ax_http_fetch_cancel(h);
}

TEST(http_client_cancel_and_free)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    start_with_head(&f, "/big", cancel_in_head);
    RUN_UNTIL(f.loop, f.heads == 1, 5000);
    tu_run_for(f.loop, 30);
    ASSERT_EQ(f.done, 0);
    ASSERT_EQ(f.body_len, 0);
    /* cancelled before it started; then one left running when the client goes */
    char url[128];
    snprintf(url, sizeof url, "%s/big", f.base);
    ax_http_request rq = {.url = url};
    int err;
    ax_http_fetch_cancel(ax_http_fetch_start(f.hc, &rq, &cbs, &f, &err));
    ASSERT(ax_http_fetch_start(f.hc, &rq, &cbs, &f, &err) != NULL);
    tu_run_for(f.loop, 5);
    ax_http_client_free(f.hc);
    f.hc = NULL;
    ASSERT_EQ(f.done, 1);
    ASSERT_EQ(f.err, AX_ECANCELED);
    fx_stop(&f);
}

/* ---- tests: https -------------------------------------------------------- */

TEST(http_client_https_verified_and_refused)
{
    char cert[512], key[512], why[256];
    snprintf(cert, sizeof cert, "%s/cert.pem", ax_test_tmpdir());
    snprintf(key, sizeof key, "%s/key.pem", ax_test_tmpdir());
    ASSERT_EQ(ax_tls_make_self_signed("localhost", 1, cert, key, why, sizeof why), 0);
    int err;
    ax_tls_opts so = {.cert_file = cert, .key_file = key}, co = {.ca_file = cert};
    ax_tls_ctx *server = ax_tls_server_new(&so, why, sizeof why, &err);
    ax_tls_ctx *client = ax_tls_client_new(&co, why, sizeof why, &err);
    ASSERT(server && client);
    ax_http_client_opts o = {.tls = client};
    fx f;
    fx_start(&f, &o);
    ax_tls_ctx_free(client); /* the client keeps its own reference */
    raw_listen(&f, RAW_CANNED, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret", server);
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), 0);
    ASSERT_STREQ(f.body, "secret");
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), 0);
    ASSERT_EQ(ax_http_client_connects(f.hc), 1);
    /* the default context does not trust a self-signed certificate */
    ax_http_client *strict = ax_http_client_new(f.loop, NULL, &err);
    ax_http_client *saved = f.hc;
    f.hc = strict;
    ASSERT_EQ(fetch(&f, f.raw_base, "/"), AX_ECERT);
    ASSERT(strstr(f.detail, "certificate") != NULL);
    f.hc = saved;
    ax_http_client_free(strict);
    ax_tls_ctx_free(server);
    fx_stop(&f);
}

/* ---- tests: URL helpers -------------------------------------------------- */

TEST(http_client_url_parse)
{
    ax__http_url u;
    ASSERT_EQ(ax__http_url_parse("http://example.org", &u), 0);
    ASSERT_STREQ(u.host, "example.org");
    ASSERT_EQ(u.port, 80);
    ASSERT(!u.tls && !u.port_given && u.target_len == 0);
    ASSERT_EQ(ax__http_url_parse("HTTPS://[::1]:8443/a/b?q=1#frag", &u), 0);
    ASSERT(u.tls && u.ipv6 && u.port_given);
    ASSERT_STREQ(u.host, "::1");
    ASSERT_EQ(u.port, 8443);
    ASSERT_EQ(u.target_len, 8);
    ASSERT(memcmp(u.target, "/a/b?q=1", 8) == 0);
    ASSERT_EQ(ax__http_url_parse("http://h:/x", &u), 0);
    ASSERT_EQ(u.port, 80);
    ASSERT_EQ(ax__http_url_parse("http://h?x", &u), 0);
    ASSERT(u.target_len == 2 && u.target[0] == '?');
    ASSERT_EQ(ax__http_url_parse("http://h:0/", &u), AX_EPORT);
    ASSERT_EQ(ax__http_url_parse("http://h:8x/", &u), AX_EPORT);
    ASSERT_EQ(ax__http_url_parse("http:///x", &u), AX_EHOST);
    ASSERT_EQ(ax__http_url_parse("http://[::1/", &u), AX_EHOST);
    ASSERT_EQ(ax__http_url_parse("http://[::1]x/", &u), AX_EURL);
    ASSERT_EQ(ax__http_url_parse("ws://h/", &u), AX_ESCHEME);
    ASSERT_EQ(ax__http_url_parse("h/x", &u), AX_EURL);
}

TEST(http_client_url_resolve)
{
    static const struct {
        const char *base, *ref, *want;
    } cases[] = {
        {"http://a/b/c/d;p?q", "g", "http://a/b/c/g"},
        {"http://a/b/c/d;p?q", "./g", "http://a/b/c/g"},
        {"http://a/b/c/d;p?q", "g/", "http://a/b/c/g/"},
        {"http://a/b/c/d;p?q", "/g", "http://a/g"},
        {"http://a/b/c/d;p?q", "//g", "http://g/"},
        {"http://a/b/c/d;p?q", "?y", "http://a/b/c/d;p?y"},
        {"http://a/b/c/d;p?q", "g?y", "http://a/b/c/g?y"},
        {"http://a/b/c/d;p?q", "#s", "http://a/b/c/d;p?q"},
        {"http://a/b/c/d;p?q", "", "http://a/b/c/d;p?q"},
        {"http://a/b/c/d;p?q", ".", "http://a/b/c/"},
        {"http://a/b/c/d;p?q", "..", "http://a/b/"},
        {"http://a/b/c/d;p?q", "../g", "http://a/b/g"},
        {"http://a/b/c/d;p?q", "../../../g", "http://a/g"},
        {"http://a/b/c/d;p?q", "/./g", "http://a/g"},
        {"http://a/b/c/d;p?q", "g/../h", "http://a/b/c/h"},
        {"http://a/b/c/d;p?q", "https://x:1/y/../z?k#f", "https://x:1/z?k"},
        {"https://a:8443", "x", "https://a:8443/x"},
        {"https://a:8443/p/", "//b:9/c", "https://b:9/c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL;
        ASSERT_EQ(ax__http_url_resolve(cases[i].base, cases[i].ref, strlen(cases[i].ref), &out), 0);
        ASSERT_STREQ(out, cases[i].want);
        ax_free(out);
    }
    char *out;
    ASSERT_EQ(ax__http_url_resolve("http://a/", "mailto:a@b", 10, &out), AX_EURL);
}

static void pause_in_head(ax_http_fetch *h, int status, void *ud)
{
    fx *f = ud;
    f->heads++;
    f->status = status;
    ax_http_fetch_pause(h);
}

TEST(http_client_paused_at_the_end_pools_a_live_connection)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    start_with_head(&f, "/status/204", pause_in_head);
    RUN_UNTIL(f.loop, f.done == 1, 5000);
    ASSERT_EQ(f.err, 0);
    ASSERT_EQ(fetch(&f, f.base, "/hello"), 0);
    ASSERT_STREQ(f.body, "hello\n");
    ASSERT_EQ(ax_http_client_connects(f.hc), 1);
    fx_stop(&f);
}

/* The Authorization and Host fields the request came with. */
static void h_auth(ax_http_req *r, void *ud)
{
    size_t al, hl;
    const char *a = ax_http_req_header(r, "Authorization", &al);
    const char *host = ax_http_req_header(r, "Host", &hl);
    char out[256];
    int n = snprintf(out, sizeof out, "%.*s|%.*s", (int)al, a ? a : "", (int)hl, host);
    ax_http_respond(r, 200, NULL, out, (size_t)n);
    (void)ud;
}

static void h_elsewhere(ax_http_req *r, void *ud)
{
    ax_http_add_header(r, "Location", ud);
    ax_http_respond(r, 307, NULL, NULL, 0);
}

TEST(http_client_redirect_to_another_origin_drops_credentials)
{
    fx f;
    fx_start(&f, NULL);
    ax_http_route(f.srv, NULL, "/auth", h_auth, &f);
    int err;
    ax_http_server *s2 = ax_http_server_new(f.loop, NULL, &err);
    char target[128], url[128];
    snprintf(target, sizeof target, "%s/auth", f.base);
    ax_http_route(s2, NULL, "/", h_elsewhere, target);
    ax_http_route(s2, NULL, "/auth", h_auth, &f);
    ax_listener *l2 = ax_http_listen(s2, "tcp://127.0.0.1:0", NULL, &err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ax_addr_port(ax_listener_addr(l2)));
    const char *fields[] = {"Authorization: Basic c2VjcmV0", "Host: custom"};
    ax_http_request rq = {.url = url, .headers = fields, .num_headers = 2, .flags = AX_HTTP_FOLLOW};
    ASSERT_EQ(fetch_rq(&f, &rq), 0);
    char want[160];
    snprintf(want, sizeof want, "|127.0.0.1:%d", ax_addr_port(ax_listener_addr(f.l)));
    ASSERT_STREQ(f.body, want);
    rq.flags = 0;
    snprintf(url, sizeof url, "%s/auth", f.base);
    ASSERT_EQ(fetch_rq(&f, &rq), 0); /* same origin: sent as given */
    ASSERT_STREQ(f.body, "Basic c2VjcmV0|custom");
    ax_http_server_free(s2);
    fx_stop(&f);
}

/* ---- out of memory -------------------------------------------------------- */

typedef struct oom_run {
    int done, err, started, pieces;
} oom_run;

static void oom_done(ax_http_fetch *h, int err, void *ud)
{
    oom_run *r = ud;
    r->done++;
    r->err = err;
    (void)h;
}

static const ax_http_fetch_cbs oom_cbs = {.on_done = oom_done};

static long oom_reader(ax_http_fetch *h, char *buf, size_t cap, void *ud)
{
    oom_run *r = ud;
    (void)h;
    if (r->pieces++ == 3 || cap < 5) return 0;
    memcpy(buf, "piece", 5);
    return 5;
}

/* Two fetches (the second on the pooled connection), a redirect and a
 * streamed upload; when the allocation `fail_at` fails, everything ends
 * anyway and frees all. */
static long oom_scenario(long fail_at, oom_run *r)
{
    fx f;
    ax_http_client_opts o = {.read_timeout_ms = 300, .timeout_ms = 2000};
    tu_alloc_fail_once_after(-1);
    fx_start(&f, &o);
    routes(&f);
    tu_alloc_fail_once_after(fail_at);
    long t0 = tu_alloc_total();
    static const char *paths[] = {"/hello", "/r/1", "/chunked", "/echo"};
    for (int i = 0; i < 4; i++) {
        char url[128];
        snprintf(url, sizeof url, "%s%s", f.base, paths[i]);
        ax_http_request rq = {.url = url, .flags = AX_HTTP_FOLLOW};
        if (i == 3) rq.body_reader = oom_reader;
        int err, before = r->done;
        if (!ax_http_fetch_start(f.hc, &rq, &oom_cbs, r, &err)) {
            ASSERT_EQ(err, AX_ENOMEM);
            continue;
        }
        r->started++;
        RUN_UNTIL(f.loop, r->done > before, 5000);
    }
    tu_alloc_fail_once_after(-1);
    long used = tu_alloc_total() - t0;
    fx_stop(&f);
    return used;
}

TEST_TIMEOUT(http_client_out_of_memory_everywhere, 120)
{
    tu_alloc_install();
    oom_run clean = {0};
    long total = oom_scenario(-1, &clean);
    ASSERT_EQ(clean.err, 0);
    ASSERT_EQ(tu_alloc_live_count(), 0);
    int failed = 0;
    for (long n = 0; n < total; n++) {
        oom_run r = {0};
        oom_scenario(n, &r);
        ASSERT_EQ(r.done, r.started);
        ASSERT_EQ(tu_alloc_live_count(), 0);
        failed += r.err != 0 || r.started < 4;
    }
    ASSERT(failed > 0);
    printf("# %ld allocation points, %d runs saw a failure\n", total, failed);
}

TEST(http_client_ipv6_literal)
{
    if (!tu_have_ipv6()) return;
    fx f;
    fx_start(&f, NULL);
    int err;
    ax_http_route(f.srv, NULL, "/auth", h_auth, &f);
    ax_listener *l6 = ax_http_listen(f.srv, "tcp://[::1]:0", NULL, &err);
    ASSERT(l6 != NULL);
    char base[64], want[64];
    int port = ax_addr_port(ax_listener_addr(l6));
    snprintf(base, sizeof base, "http://[::1]:%d", port);
    ASSERT_EQ(fetch(&f, base, "/auth"), 0);
    snprintf(want, sizeof want, "|[::1]:%d", port);
    ASSERT_STREQ(f.body, want);
    fx_stop(&f);
}

/* A listener that never accepts, its queue full: SYNs go unanswered. */
TEST(http_client_connect_timeout)
{
    ax_http_client_opts o = {.connect_timeout_ms = 200};
    fx f;
    fx_start(&f, &o);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    ASSERT(bind(l, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(l, 0) == 0);
    ASSERT(getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
    }
    tu_sleep_ms(50);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", ntohs(sa.sin_port));
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(fetch(&f, base, "/"), AX_ETIMEDOUT);
    ASSERT(tu_now_ms() - t0 >= 150);
    ASSERT(strstr(f.detail, "connecting to") != NULL);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(l);
    fx_stop(&f);
}

/* ---- streamed request bodies --------------------------------------------- */

typedef struct upload {
    fx *f;
    size_t total, made, stop_at;
    int calls, waits;
    ax_timer *later;
} upload;

static void upload_later(ax_timer *t, void *ud)
{
    upload *u = ud;
    (void)t;
    if (u->f->cur) ax_http_fetch_body_ready(u->f->cur);
}

/* Pattern bytes, a few at a time, with an AX_EAGAIN every third call. */
static long upload_reader(ax_http_fetch *h, char *buf, size_t cap, void *ud)
{
    upload *u = ((fx *)ud)->upload;
    (void)h;
    if (++u->calls % 3 == 0) {
        u->waits++;
        ax_timer_start(u->later, 2, 0);
        return AX_EAGAIN;
    }
    size_t end = u->stop_at ? u->stop_at : u->total;
    size_t n = end - u->made < cap ? end - u->made : cap;
    if (n > 7000) n = 7000;
    tu_fill_pattern((unsigned char *)buf, n, u->made);
    u->made += n;
    return (long)n;
}

static int upload_rq(fx *f, upload *u, const char *path, const char *method, size_t len)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    u->made = 0;
    u->calls = u->waits = 0;
    f->upload = u;
    ax_http_request rq = {.url = url,
                          .method = method,
                          .body_reader = upload_reader,
                          .body_len = len,
                          .flags = AX_HTTP_FOLLOW};
    return fetch_rq(f, &rq);
}

TEST(http_client_streamed_upload)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    upload u = {.f = &f, .total = 200000};
    u.later = ax_timer_new(f.loop, upload_later, &u);
    for (int with_length = 0; with_length < 2; with_length++) {
        ASSERT_EQ(upload_rq(&f, &u, "/echo", "PUT", with_length ? u.total : 0), 0);
        ASSERT_EQ(f.body_len, u.total + 4);
        ASSERT(memcmp(f.body, "PUT:", 4) == 0);
        ASSERT_EQ(tu_check_pattern((unsigned char *)f.body + 4, u.total, 0), u.total);
        ASSERT(u.waits > 3);
    }
    /* shorter than announced */
    u.stop_at = 1000;
    ASSERT_EQ(upload_rq(&f, &u, "/echo", "PUT", u.total), AX_EINVAL);
    ASSERT(strstr(f.detail, "ended after 1000") != NULL);
    u.stop_at = 0;
    /* a 307 would need the body again: not followed; a 303 drops it */
    ASSERT_EQ(upload_rq(&f, &u, "/to/307", "POST", 0), 0);
    ASSERT_EQ(f.status, 307);
    ASSERT_EQ(upload_rq(&f, &u, "/to/303", "POST", 0), 0);
    ASSERT_STREQ(f.body, "GET:");
    ax_timer_free(u.later);
    fx_stop(&f);
}

TEST(http_client_many_at_once)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    char url[128];
    snprintf(url, sizeof url, "%s/chunked", f.base);
    ax_http_request rq = {.url = url};
    int err, n = 200;
    for (int i = 0; i < n; i++)
        ASSERT(ax_http_fetch_start(f.hc, &rq, &cbs, &f, &err) != NULL);
    RUN_UNTIL(f.loop, f.done == n, 10000);
    ASSERT_EQ(f.err, 0);
    ASSERT_EQ(f.body_len, (size_t)n * 13); /* "one,two,three" each */
    ASSERT_EQ(ax_http_client_connects(f.hc), n);
    ASSERT_EQ(ax_http_client_idle(f.hc), 4); /* max_idle_per_host */
    for (int i = 0; i < 8; i++)              /* later ones reuse what was kept */
        ASSERT_EQ(fetch(&f, f.base, "/hello"), 0);
    ASSERT_EQ(ax_http_client_connects(f.hc), n);
    fx_stop(&f);
}

/* ---- cancelling and stopping from every callback --------------------------- */

typedef struct stopper {
    fx *f;
    int at_trace; /* cancel at the n-th trace (1-based), 0: never */
    int traces;
    bool cancel_in_body, fail_in_body;
} stopper;

static void stop_trace(ax_http_fetch *h, enum ax_http_trace what, const char *t, size_t n, void *ud)
{
    stopper *s = ((fx *)ud)->upload;
    (void)what, (void)t, (void)n;
    if (++s->traces == s->at_trace) {
        ax_http_fetch_cancel(h);
        ax_http_fetch_cancel(h); /* twice is fine */
    }
}

static int stop_body(ax_http_fetch *h, const char *p, size_t n, void *ud)
{
    stopper *s = ((fx *)ud)->upload;
    on_body(h, p, n, ud);
    if (s->cancel_in_body) ax_http_fetch_cancel(h);
    return s->fail_in_body ? AX_EMSGSIZE : 0;
}

TEST(http_client_stop_from_each_callback)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    char url[128];
    snprintf(url, sizeof url, "%s/r/2", f.base);
    ax_http_request rq = {.url = url, .flags = AX_HTTP_FOLLOW};
    ax_http_fetch_cbs c = cbs;
    c.on_trace = stop_trace;
    c.on_body = stop_body;
    stopper s = {.f = &f};
    f.upload = &s;
    int err;
    ASSERT_EQ(fetch_rq(&f, &rq), 0); /* warm the pool */
    /* a clean run counts the traces: notes, requests, responses, 3 hops */
    f.cur = ax_http_fetch_start(f.hc, &rq, &c, &f, &err);
    RUN_UNTIL(f.loop, f.done == 2, 5000);
    int total = s.traces;
    ASSERT(total >= 9);
    for (int fresh = 0; fresh < 2; fresh++) { /* pooled, then new connections */
        rq.flags = AX_HTTP_FOLLOW | (fresh ? AX_HTTP_FRESH_CONN : 0);
        for (int at = 1; at <= total + 2 * fresh; at++) {
            s = (stopper){.f = &f, .at_trace = at};
            int before = f.done;
            ASSERT(ax_http_fetch_start(f.hc, &rq, &c, &f, &err) != NULL);
            /* (until it has been cancelled: a slow run, Wine under load, may
             * not reach trace `at` in 30 ms, and the next stopper would let
             * it finish) */
            RUN_UNTIL(f.loop, s.traces >= at, 10000);
            tu_run_for(f.loop, 30);
            ASSERT_EQ(f.done, before); /* cancelled: no on_done */
        }
    }
    rq.flags = AX_HTTP_FOLLOW;
    s = (stopper){.f = &f, .cancel_in_body = true};
    int pieces = f.pieces;
    ASSERT(ax_http_fetch_start(f.hc, &rq, &c, &f, &err) != NULL);
    RUN_UNTIL(f.loop, f.pieces > pieces, 10000);
    tu_run_for(f.loop, 30);
    ASSERT_EQ(f.done, 2);
    s = (stopper){.f = &f, .fail_in_body = true};
    f.cur = ax_http_fetch_start(f.hc, &rq, &c, &f, &err);
    RUN_UNTIL(f.loop, f.done == 3, 5000);
    ASSERT_EQ(f.err, AX_EMSGSIZE);
    ASSERT(strstr(f.detail, "body callback") != NULL);
    ASSERT_EQ(fetch(&f, f.base, "/hello"), 0); /* the client is still sound */
    fx_stop(&f);
}

/* ---- Expect: 100-continue ------------------------------------------------ */

static int expect_rq(fx *f, const char *base, const char *path, const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    ax_http_request rq = {.url = url,
                          .method = "PUT",
                          .body = body,
                          .body_len = strlen(body),
                          .flags = AX_HTTP_EXPECT_100};
    return fetch_rq(f, &rq);
}

TEST(http_client_expect_continue)
{
    fx f;
    fx_start(&f, NULL);
    routes(&f);
    uint64_t t0 = tu_now_ms();
    ASSERT_EQ(expect_rq(&f, f.base, "/echo", "held back"), 0); /* ax_http answers 100 */
    ASSERT_STREQ(f.body, "PUT:held back");
    ASSERT(tu_now_ms() - t0 < 800);
    ASSERT_EQ(ax_http_client_idle(f.hc), 1);
    fx_stop(&f);

    /* a server that answers at once: the body is never sent */
    fx_start(&f, NULL);
    raw_listen(&f, RAW_CANNED, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n", NULL);
    char big[4096];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ASSERT_EQ(expect_rq(&f, f.raw_base, "/", big), 0);
    ASSERT_EQ(f.status, 413);
    tu_run_for(f.loop, 50);
    ASSERT(f.raw_in < 1000);                 /* the head only */
    ASSERT_EQ(ax_http_client_idle(f.hc), 0); /* the server may still wait for the body */
    fx_stop(&f);

    /* a server that says nothing: the body goes after a while */
    fx_start(&f, NULL);
    raw_listen(&f, RAW_AFTER_END, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ngot", NULL);
    t0 = tu_now_ms();
    ASSERT_EQ(expect_rq(&f, f.raw_base, "/", "body END"), 0);
    ASSERT_STREQ(f.body, "got");
    ASSERT(tu_now_ms() - t0 >= 900);
    fx_stop(&f);
}
