/* client.c: the HTTP/1.1 client: fetches, the pool of keep-alive
 * connections, redirects and timeouts.  Parsing is http_parser.c's, URLs
 * are url.c's; this file moves bytes between them and the connections.
 *
 * A fetch owns one connection (an hconn) at a time, taken from the pool or
 * made for it, and moves HEAD -> BODY -> DONE on it; then the connection
 * goes back to the pool or is closed.  A followed redirect reads (and
 * drops) its body first, so the connection stays usable, and the next hop
 * starts over.  An hconn lives from ax_connect() until on_close, and only
 * on_close frees it, so it is valid in every connection callback. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include <axon/alloc.h>
#include <axon/axon.h>
#include <axon/http_client.h>

#include "client_internal.h"
#include "core/tls.h"
#include "http_parser.h"

#define MAX_HEADERS 100
#define BODY_PIECE (64 * 1024)
/* A redirect body up to this size is read and dropped to keep the
 * connection; a larger one costs less as a new connection. */
#define DISCARD_MAX (64 * 1024)
/* How long a body waits for 100 Continue before it goes anyway. */
#define EXPECT_WAIT_MS 1000

enum { S_HEAD, S_BODY, S_DONE };

/* on_data steps: bytes consumed, or one of these */
enum { STEP_MORE = -1, STEP_GONE = -2 };

typedef struct hconn {
    ax_http_client *hc; /* NULL once the client is gone */
    ax_conn *conn;
    ax_http_fetch *f;            /* the fetch using it; NULL while idle or closing */
    struct hconn *prev, *next;   /* every connection of the client */
    struct hconn *iprev, *inext; /* the idle ones, oldest first */
    bool idle, opened, closing;
    char key[300]; /* "https://host:port" */
} hconn;

struct ax_http_client {
    ax_loop *loop;
    ax_http_client_opts o;
    char *ua;
    ax_tls_ctx *tls;
    ax_http_limits lim;
    hconn *conns;
    hconn *idle_head, *idle_tail;
    ax_http_fetch *fetches;
    unsigned nidle;
    bool freeing;
    uint64_t connects;
    ax_http_head head; /* scratch for the head being parsed */
    ax_http_header hdrs[MAX_HEADERS];
};

struct ax_http_fetch {
    ax_http_client *hc;
    ax_http_fetch *prev, *next;
    ax_http_fetch_cbs cb;
    void *ud;
    hconn *h;
    /* the request */
    char *url;
    ax__http_url u;
    char *method;
    char *fields; /* the caller's fields, each ending in CRLF */
    size_t fields_len;
    char *body;
    size_t body_len;
    ax_http_body_reader reader;
    char *piece;    /* the reader's buffer */
    ax_timer *kick; /* the reader has data again */
    unsigned flags;
    int max_redirects, redirects;
    ax_http_limits lim;
    /* this hop on the wire */
    char *out; /* the request head */
    size_t out_len, sent;
    uint8_t state;
    bool head_sent, req_done, got_bytes, reused, retried, fresh, discard, head_req, chunked;
    bool started, paused, cancelled, finished, have_head, keep;
    bool expect, go_on, expect_armed; /* Expect: 100-continue on this hop */
    uint32_t timeout_ms;
    int in_cb;
    ax_http_body bd;
    /* the response */
    void *raw_mem; /* the head's fields and bytes in one block */
    const char *raw;
    size_t raw_len;
    ax_http_head resp;
    int status;
    char *next_url; /* where a redirect points, fetched once its body is gone */
    ax_timer *timer;
    char detail[256];
};

/* ---- small helpers ------------------------------------------------------- */

static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool token_ok(const char *s, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i])) return false;
    return true;
}

static bool name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = ax_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(m, ok[i]) == 0) return true;
    return false;
}

static void origin_key(const ax__http_url *u, char *out, size_t len)
{
    int n = snprintf(out, len, "%s://%s%s%s:%d", u->tls ? "https" : "http", u->ipv6 ? "[" : "",
                     u->host, u->ipv6 ? "]" : "", u->port);
    for (int i = 0; i < n && (size_t)i < len; i++)
        if (out[i] >= 'A' && out[i] <= 'Z') out[i] = (char)(out[i] - 'A' + 'a');
}

/* ---- the caller's fields ------------------------------------------------- */

/* "Name: value": a token, then a value without control characters (CR
 * and LF would let a caller's value inject fields). */
static int check_field(const char *line)
{
    const char *colon = strchr(line, ':');
    if (!colon || !token_ok(line, (size_t)(colon - line))) return AX_EINVAL;
    for (const unsigned char *v = (const unsigned char *)colon; *v; v++)
        if ((*v < 0x20 && *v != '\t') || *v == 0x7f) return AX_EINVAL;
    size_t n = (size_t)(colon - line);
    if (name_is(line, n, "Content-Length") || name_is(line, n, "Transfer-Encoding") ||
        name_is(line, n, "Connection"))
        return AX_EINVAL;
    return 0;
}

static int copy_fields(ax_http_fetch *f, const char *const *h, size_t n)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        int rc = check_field(h[i]);
        if (rc) return rc;
        total += strlen(h[i]) + 2;
    }
    if (!(f->fields = ax_malloc(total))) return AX_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(h[i]);
        memcpy(f->fields + f->fields_len, h[i], l);
        memcpy(f->fields + f->fields_len + l, "\r\n", 2);
        f->fields_len += l + 2;
    }
    f->fields[f->fields_len] = '\0';
    return 0;
}

/* Whether the caller's field line at `line` is named `name`. */
static bool field_named(const char *line, const char *name)
{
    const char *colon = strchr(line, ':');
    return colon && name_is(line, (size_t)(colon - line), name);
}

static bool has_field(const ax_http_fetch *f, const char *name)
{
    for (const char *p = f->fields; p && *p; p = strstr(p, "\r\n") + 2)
        if (field_named(p, name)) return true;
    return false;
}

/* Redirects to another origin drop Host and credentials; to GET, the
 * body's type. */
static void drop_field(ax_http_fetch *f, const char *name)
{
    char *p = f->fields;
    while (p && *p) {
        char *end = strstr(p, "\r\n") + 2;
        if (!field_named(p, name)) {
            p = end;
            continue;
        }
        size_t rest = f->fields_len - (size_t)(end - f->fields);
        memmove(p, end, rest + 1);
        f->fields_len -= (size_t)(end - p);
    }
}

/* ---- the request head ---------------------------------------------------- */

static int build_head(ax_http_fetch *f)
{
    const ax__http_url *u = &f->u;
    const char *ua = f->hc->ua;
    size_t cap =
        strlen(f->method) + u->target_len + strlen(u->host) + strlen(ua) + f->fields_len + 256;
    char *p = ax_realloc(f->out, cap);
    if (!p) return AX_ENOMEM;
    f->out = p;
    int n =
        snprintf(p, cap, "%s %s%.*s HTTP/1.1\r\n", f->method,
                 u->target_len && u->target[0] != '?' ? "" : "/", (int)u->target_len, u->target);
    bool def_port = u->port == (u->tls ? 443 : 80);
    if (!has_field(f, "Host"))
        n += snprintf(p + n, cap - (size_t)n, "Host: %s%s%s", u->ipv6 ? "[" : "", u->host,
                      u->ipv6 ? "]" : "");
    if (!has_field(f, "Host") && !def_port) n += snprintf(p + n, cap - (size_t)n, ":%d", u->port);
    if (!has_field(f, "Host")) n += snprintf(p + n, cap - (size_t)n, "\r\n");
    if (ua[0] && !has_field(f, "User-Agent"))
        n += snprintf(p + n, cap - (size_t)n, "User-Agent: %s\r\n", ua);
    if (!has_field(f, "Accept")) n += snprintf(p + n, cap - (size_t)n, "Accept: */*\r\n");
    n += snprintf(p + n, cap - (size_t)n, "%s", f->fields);
    bool wants_body = f->body_len || f->reader || !strcmp(f->method, "POST") ||
                      !strcmp(f->method, "PUT") || !strcmp(f->method, "PATCH");
    f->chunked = wants_body && ((f->flags & AX_HTTP_CHUNKED_BODY) || (f->reader && !f->body_len));
    f->expect = (f->flags & AX_HTTP_EXPECT_100) && (f->body_len || f->reader);
    if (f->expect) n += snprintf(p + n, cap - (size_t)n, "Expect: 100-continue\r\n");
    if (f->chunked)
        n += snprintf(p + n, cap - (size_t)n, "Transfer-Encoding: chunked\r\n");
    else if (wants_body)
        n += snprintf(p + n, cap - (size_t)n, "Content-Length: %zu\r\n", f->body_len);
    if (f->flags & AX_HTTP_NO_KEEPALIVE)
        n += snprintf(p + n, cap - (size_t)n, "Connection: close\r\n");
    n += snprintf(p + n, cap - (size_t)n, "\r\n");
    f->out_len = (size_t)n;
    return 0;
}

/* ---- callbacks into the application -------------------------------------- */

static void finish(ax_http_fetch *f, int err);

/* After a callback: false when the fetch was cancelled inside it (it is
 * then gone). */
static bool alive(ax_http_fetch *f)
{
    f->in_cb--;
    if (!f->cancelled) return true;
    finish(f, AX_ECANCELED);
    return false;
}

static bool trace(ax_http_fetch *f, enum ax_http_trace what, const char *text, size_t len)
{
    if (!f->cb.on_trace) return true;
    f->in_cb++;
    f->cb.on_trace(f, what, text, len, f->ud);
    return alive(f);
}

__attribute__((format(printf, 2, 3))) static bool info(ax_http_fetch *f, const char *fmt, ...)
{
    if (!f->cb.on_trace) return true;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return trace(f, AX_HTTP_TRACE_INFO, line, n < (int)sizeof line ? (size_t)n : sizeof line - 1);
}

__attribute__((format(printf, 3, 4))) static void fail(ax_http_fetch *f, int err, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof f->detail, fmt, ap);
    va_end(ap);
    finish(f, err);
}

/* ---- the pool ------------------------------------------------------------ */

static void idle_unlink(hconn *h)
{
    ax_http_client *hc = h->hc;
    if (!h->idle || !hc) return;
    if (h->iprev)
        h->iprev->inext = h->inext;
    else
        hc->idle_head = h->inext;
    if (h->inext)
        h->inext->iprev = h->iprev;
    else
        hc->idle_tail = h->iprev;
    h->iprev = h->inext = NULL;
    h->idle = false;
    hc->nidle--;
}

static void hconn_close(hconn *h, int abort_reason)
{
    idle_unlink(h);
    h->closing = true;
    if (abort_reason)
        ax_conn_abort(h->conn, abort_reason);
    else
        ax_conn_close(h->conn);
}

/* The oldest pooled connection to `key`, or to any origin. */
static hconn *pool_oldest(ax_http_client *hc, const char *key)
{
    for (hconn *h = hc->idle_head; h; h = h->inext)
        if (!key || !strcmp(h->key, key)) return h;
    return NULL;
}

static void pool_put(hconn *h)
{
    ax_http_client *hc = h->hc;
    unsigned same = 0;
    for (hconn *o = hc->idle_head; o; o = o->inext)
        same += !strcmp(o->key, h->key);
    if (same >= hc->o.max_idle_per_host) hconn_close(pool_oldest(hc, h->key), 0);
    if (hc->nidle >= hc->o.max_idle) hconn_close(hc->idle_head, 0);
    h->idle = true;
    h->iprev = hc->idle_tail;
    if (hc->idle_tail)
        hc->idle_tail->inext = h;
    else
        hc->idle_head = h;
    hc->idle_tail = h;
    hc->nidle++;
    ax_conn_resume(h->conn); /* a fetch paused at its end must not leave it deaf */
    ax_conn_set_idle_timeout(h->conn, hc->o.idle_timeout_ms);
}

/* The most recently pooled connection to `key` (the least likely to have
 * been closed by the server meanwhile). */
static hconn *pool_take(ax_http_client *hc, const char *key)
{
    for (hconn *h = hc->idle_tail; h; h = h->iprev) {
        if (strcmp(h->key, key) != 0) continue;
        idle_unlink(h);
        return h;
    }
    return NULL;
}

static void detach(ax_http_fetch *f)
{
    if (f->h) f->h->f = NULL;
    f->h = NULL;
}

/* ---- writing the request ------------------------------------------------- */

/* One piece of body, framed as a chunk when chunked. */
static int write_piece(ax_http_fetch *f, const char *p, size_t n)
{
    char line[24];
    struct iovec iov[3] = {{line, 0}, {(void *)p, n}, {"\r\n", f->chunked ? 2 : 0}};
    if (f->chunked) iov[0].iov_len = (size_t)snprintf(line, sizeof line, "%zx\r\n", n);
    f->sent += n;
    return ax_conn_writev(f->h->conn, iov, 3);
}

/* A streamed body: pull pieces from the reader until the connection is
 * above its high watermark, nothing is ready, or the end.  Returns 0, 1
 * (wait for on_drain or ax_http_fetch_body_ready), a negative code, or
 * STEP_GONE when the fetch went away inside the reader. */
static int write_stream(ax_http_fetch *f)
{
    int rc = 0;
    if (!f->piece && !(f->piece = ax_malloc(BODY_PIECE))) return AX_ENOMEM;
    while (rc == 0) {
        size_t cap = BODY_PIECE;
        if (!f->chunked && f->body_len - f->sent < cap) cap = f->body_len - f->sent;
        if (cap == 0) return 0; /* the announced length is complete */
        f->in_cb++;
        long n = f->reader(f, f->piece, cap, f->ud);
        if (!alive(f)) return STEP_GONE;
        if (n == AX_EAGAIN) return 1;
        if (n < 0 || (size_t)n > cap) {
            fail(f, n < 0 ? (int)n : AX_EINVAL, "the request body reader failed");
            return STEP_GONE;
        }
        if (n == 0 && !f->chunked) {
            fail(f, AX_EINVAL, "the request body ended after %zu of %zu bytes", f->sent,
                 f->body_len);
            return STEP_GONE;
        }
        if (n == 0) return 0;
        rc = write_piece(f, f->piece, (size_t)n);
    }
    return rc;
}

/* Queue the head, then the body piece by piece until the connection is
 * above its high watermark (on_drain goes on).  The body waits for the
 * connection to be open (a TLS handshake holds what is written before it
 * without a limit) and, with Expect, for 100 Continue.  Returns false when
 * the fetch ended inside. */
static bool write_request(ax_http_fetch *f)
{
    ax_conn *c = f->h->conn;
    bool chunked = f->chunked;
    int rc = 0;
    if (!f->head_sent) {
        f->head_sent = true;
        rc = ax_conn_write(c, f->out, f->out_len);
    }
    if (rc < 0 || !f->h->opened) { /* on_close fails the fetch, or on_open goes on */
        if (rc < 0) ax_conn_abort(c, rc);
        return true;
    }
    if (f->expect && !f->go_on) {
        if (!f->expect_armed) ax_timer_start(f->kick, EXPECT_WAIT_MS, 0);
        f->expect_armed = true;
        return true;
    }
    if (rc == 0 && f->reader && !f->req_done) {
        rc = write_stream(f);
        if (rc == STEP_GONE) return false;
    }
    while (rc == 0 && !f->reader && f->sent < f->body_len) {
        size_t n = f->body_len - f->sent < BODY_PIECE ? f->body_len - f->sent : BODY_PIECE;
        rc = write_piece(f, f->body + f->sent, n);
    }
    if (rc == 0 && (f->reader || f->sent == f->body_len) && !f->req_done) {
        f->req_done = true;
        if (chunked) rc = ax_conn_write(c, "0\r\n\r\n", 5);
    }
    if (rc < 0) ax_conn_abort(c, rc); /* on_close fails the fetch */
    return true;
}

static const ax_conn_cbs conn_cbs;

static hconn *hconn_open(ax_http_fetch *f, const char *key, int *err)
{
    ax_http_client *hc = f->hc;
    const ax__http_url *u = &f->u;
    hconn *h = ax_calloc(1, sizeof(*h));
    if (!h) {
        *err = AX_ENOMEM;
        return NULL;
    }
    h->hc = hc;
    snprintf(h->key, sizeof h->key, "%s", key);
    char url[300];
    snprintf(url, sizeof url, "%s://%s%s%s:%d", u->tls ? "tls" : "tcp", u->ipv6 ? "[" : "", u->host,
             u->ipv6 ? "]" : "", u->port);
    ax_conn_opts co = {.connect_timeout_ms = hc->o.connect_timeout_ms,
                       .idle_timeout_ms = hc->o.read_timeout_ms,
                       .max_input = hc->lim.max_header_bytes + 256 * 1024,
                       .tls = u->tls ? hc->tls : NULL};
    h->conn = ax_connect(hc->loop, url, &conn_cbs, &co, h, err);
    if (!h->conn) {
        ax_free(h);
        return NULL;
    }
    h->next = hc->conns;
    if (hc->conns) hc->conns->prev = h;
    hc->conns = h;
    hc->connects++;
    return h;
}

/* Send the current request on a pooled connection or a new one.  Returns
 * 0, or a code when no connection could be had (the caller fails). */
static int send_hop(ax_http_fetch *f)
{
    char key[300];
    int rc = build_head(f);
    if (rc) return rc;
    f->state = S_HEAD;
    f->sent = 0;
    f->head_sent = f->req_done = f->got_bytes = f->discard = false;
    f->go_on = f->expect_armed = false;
    f->head_req = strcmp(f->method, "HEAD") == 0;
    origin_key(&f->u, key, sizeof key);
    hconn *h = f->fresh || (f->flags & AX_HTTP_FRESH_CONN) ? NULL : pool_take(f->hc, key);
    f->reused = h != NULL;
    f->fresh = false;
    if (h) {
        ax_conn_set_idle_timeout(h->conn, f->hc->o.read_timeout_ms);
    } else if (!(h = hconn_open(f, key, &rc))) {
        return rc;
    }
    h->f = f;
    f->h = h;
    if (f->paused) ax_conn_pause(h->conn);
    if (f->reused ? !info(f, "reusing the connection to %s", key)
                  : !info(f, "connecting to %s", key))
        return 0;
    if (!trace(f, AX_HTTP_TRACE_REQUEST, f->out, f->out_len)) return 0;
    write_request(f);
    return 0;
}

/* ---- redirects ----------------------------------------------------------- */

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* RFC 9110 15.4: 303 turns everything but HEAD into GET; 301 and 302 turn
 * POST into GET as user agents always have; 307 and 308 keep both. */
static bool turns_into_get(int status, const char *method)
{
    return (status == 303 && strcmp(method, "HEAD") != 0) ||
           ((status == 301 || status == 302) && strcmp(method, "POST") == 0);
}

static int next_hop(ax_http_fetch *f)
{
    char *url = f->next_url, *m = NULL;
    char before[300], after[300];
    f->next_url = NULL;
    origin_key(&f->u, before, sizeof before);
    bool to_get = turns_into_get(f->status, f->method);
    if (to_get && !(m = dup_str("GET"))) {
        ax_free(url);
        return AX_ENOMEM;
    }
    if (to_get) {
        ax_free(f->method);
        f->method = m;
        ax_free(f->body);
        f->body = NULL;
        f->body_len = 0;
        f->reader = NULL;
        f->flags &= ~AX_HTTP_CHUNKED_BODY;
        drop_field(f, "Content-Type");
    }
    ax_free(f->url);
    f->url = url;
    ax__http_url_parse(url, &f->u); /* checked when the redirect came */
    origin_key(&f->u, after, sizeof after);
    if (strcmp(before, after) != 0) {
        drop_field(f, "Host");
        drop_field(f, "Authorization");
        drop_field(f, "Cookie");
    }
    f->redirects++;
    if (!info(f, "following the redirect to %s", url)) return 0;
    return send_hop(f);
}

/* A redirect to follow: check the limit and the target, then read its
 * body away (or drop the connection).  false when the fetch failed. */
static bool take_redirect(ax_http_fetch *f, ax_http_str loc)
{
    ax__http_url nu;
    if (f->redirects >= f->max_redirects) {
        fail(f, AX_EREDIRECTS, "stopped after %d redirects; the next was to %.*s", f->redirects,
             (int)(loc.len > 200 ? 200 : loc.len), loc.ptr);
        return false;
    }
    int rc = ax__http_url_resolve(f->url, loc.ptr, loc.len, &f->next_url);
    if (rc == 0 && (rc = ax__http_url_parse(f->next_url, &nu)) != 0) {
        fail(f, rc, "cannot follow the redirect to '%s'", f->next_url);
        return false;
    }
    if (rc) {
        fail(f, rc == AX_ENOMEM ? rc : AX_EHTTP, "unusable Location field");
        return false;
    }
    const ax_http_head *r = &f->resp;
    f->discard = true;
    f->state = S_BODY;
    if (r->framing == AX_HTTP_BODY_UNTIL_CLOSE ||
        (r->framing == AX_HTTP_BODY_LENGTH && r->content_length > DISCARD_MAX)) {
        f->keep = false;
        f->state = S_DONE;
    }
    return true;
}

/* ---- reading the response ------------------------------------------------ */

static void rebase(ax_http_str *s, const char *from, size_t n, const char *to)
{
    if (s->ptr >= from && s->ptr < from + n) s->ptr = to + (s->ptr - from);
}

/* The head outlives the connection's input: copy its bytes and fields. */
static int keep_head(ax_http_fetch *f, const ax_http_head *h, const char *buf, size_t n)
{
    size_t fsz = h->num_headers * sizeof(ax_http_header);
    char *mem = ax_malloc(fsz + n + 1);
    if (!mem) return AX_ENOMEM;
    ax_http_header *hd = (ax_http_header *)(void *)mem;
    char *bytes = mem + fsz;
    memcpy(bytes, buf, n);
    bytes[n] = '\0';
    f->resp = *h;
    f->resp.headers = hd;
    f->resp.headers_cap = h->num_headers;
    for (size_t i = 0; i < h->num_headers; i++) {
        hd[i] = h->headers[i];
        rebase(&hd[i].name, buf, n, bytes);
        rebase(&hd[i].value, buf, n, bytes);
    }
    rebase(&f->resp.reason, buf, n, bytes);
    rebase(&f->resp.upgrade, buf, n, bytes);
    ax_free(f->raw_mem);
    f->raw_mem = mem;
    f->raw = bytes;
    f->raw_len = n;
    return 0;
}

/* The final head (or a redirect's): set up the body.  false when the fetch
 * is gone. */
static bool after_head(ax_http_fetch *f)
{
    const ax_http_head *r = &f->resp;
    f->status = r->status;
    f->keep = (r->flags & AX_HTTP_KEEP_ALIVE) != 0;
    ax_http_body_init(&f->bd, r->framing, r->content_length, &f->lim);
    const ax_http_header *loc = ax_http_find_header(r, "Location");
    bool replay = !f->reader || turns_into_get(r->status, f->method); /* streamed once only */
    if ((f->flags & AX_HTTP_FOLLOW) && is_redirect(r->status) && loc && loc->value.len && replay) {
        if (!take_redirect(f, loc->value)) return false;
        if (ax_http_body_done(&f->bd)) f->state = S_DONE;
        return true;
    }
    if (r->framing == AX_HTTP_BODY_LENGTH && r->content_length > f->lim.max_body) {
        fail(f, AX_ETOOBIG, "the body of %" PRIu64 " bytes is over the limit of %" PRIu64,
             r->content_length, f->lim.max_body);
        return false;
    }
    f->state = ax_http_body_done(&f->bd) ? S_DONE : S_BODY;
    f->have_head = true;
    if (!f->cb.on_head) return true;
    f->in_cb++;
    f->cb.on_head(f, r->status, f->ud);
    return alive(f);
}

static long read_head(ax_http_fetch *f, const char *buf, size_t len)
{
    ax_http_client *hc = f->hc;
    ax_http_head *h = &hc->head;
    ax_http_parser p;
    h->headers = hc->hdrs;
    h->headers_cap = MAX_HEADERS;
    /* A fresh parse each time: the head array is the client's, and heads
     * that arrive in pieces are rare and small. */
    ax_http_parser_init(&p, AX_HTTP_RESPONSE, &hc->lim);
    p.no_body = f->head_req;
    int n = ax_http_parse_head(&p, buf, len, h);
    if (n == AX_HTTP_INCOMPLETE) return STEP_MORE;
    if (n < 0) {
        fail(f, AX_EHTTP, "invalid response head: %s", ax_http_err_str(ax_http_parser_error(&p)));
        return STEP_GONE;
    }
    if (!trace(f, AX_HTTP_TRACE_RESPONSE, buf, (size_t)n)) return STEP_GONE;
    if (h->status == 101) {
        fail(f, AX_EHTTP, "unexpected 101 Switching Protocols");
        return STEP_GONE;
    }
    if (h->status == 100 && f->expect && !f->go_on) { /* the body may go */
        f->go_on = true;
        ax_timer_stop(f->kick);
        if (!write_request(f)) return STEP_GONE;
    }
    if (h->status < 200) return n; /* interim (100, 103): the final one follows */
    if (keep_head(f, h, buf, (size_t)n) != 0) {
        finish(f, AX_ENOMEM);
        return STEP_GONE;
    }
    return after_head(f) ? n : STEP_GONE;
}

static long read_resp_body(ax_http_fetch *f, const char *buf, size_t len)
{
    ax_http_str d;
    int n = ax_http_body_parse(&f->bd, buf, len, &d);
    if (n == AX_HTTP_INCOMPLETE) return STEP_MORE;
    if (n == -413) {
        fail(f, AX_ETOOBIG, "the body is over the limit of %" PRIu64 " bytes", f->lim.max_body);
        return STEP_GONE;
    }
    if (n < 0) {
        fail(f, AX_EHTTP, "invalid response body: %s", ax_http_err_str(ax_http_body_error(&f->bd)));
        return STEP_GONE;
    }
    if (ax_http_body_done(&f->bd)) f->state = S_DONE;
    if (d.len && !f->discard && f->cb.on_body) {
        f->in_cb++;
        int rc = f->cb.on_body(f, d.ptr, d.len, f->ud);
        if (!alive(f)) return STEP_GONE;
        if (rc < 0) {
            fail(f, rc, "stopped by the body callback");
            return STEP_GONE;
        }
    }
    return n;
}

/* The response is complete: pool or close the connection, then the next
 * hop or the end.  `more`: bytes follow that nobody asked for. */
static void complete(ax_http_fetch *f, bool more)
{
    hconn *h = f->h;
    bool reuse = f->keep && f->req_done && !more && !(f->flags & AX_HTTP_NO_KEEPALIVE) &&
                 !h->closing && h->hc;
    detach(f);
    if (reuse)
        pool_put(h);
    else
        hconn_close(h, 0);
    if (!f->next_url) {
        finish(f, 0);
        return;
    }
    int rc = next_hop(f);
    if (rc) fail(f, rc, "cannot follow the redirect to %s", f->url);
}

/* ---- connection callbacks ------------------------------------------------ */

static void on_open(ax_conn *c)
{
    hconn *h = ax_conn_data(c);
    h->opened = true;
    if (!h->f) return;
    const char *v = ax_conn_tls_version(c);
    if (!info(h->f, "connected to %s%s%s", h->key, v ? " with " : "", v ? v : "")) return;
    if (!h->f->req_done) write_request(h->f);
}

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    hconn *h = ax_conn_data(c);
    ax_http_fetch *f = h->f;
    if (!f) { /* bytes nobody asked for: the connection is unusable */
        hconn_close(h, AX_ECONNABORTED);
        return len;
    }
    f->got_bytes = true;
    size_t off = 0;
    while (off < len && f->state != S_DONE && !f->paused) {
        long n = f->state == S_HEAD ? read_head(f, data + off, len - off)
                                    : read_resp_body(f, data + off, len - off);
        if (n == STEP_GONE) return len;
        if (n == STEP_MORE) break;
        off += (size_t)n;
    }
    if (f->state != S_DONE) return off;
    complete(f, off < len);
    return len;
}

static void on_drain(ax_conn *c)
{
    hconn *h = ax_conn_data(c);
    if (h->f && !h->f->req_done) write_request(h->f);
}

/* The connection ended under a fetch: the end of a body read until the
 * close, a stale pooled connection to retry, or a failure. */
static void conn_lost(ax_http_fetch *f, int reason)
{
    hconn *h = f->h;
    if (reason == AX_EOF && f->state == S_BODY && f->resp.framing == AX_HTTP_BODY_UNTIL_CLOSE) {
        f->keep = false;
        complete(f, false);
        return;
    }
    bool stale = reason == AX_EOF || reason == AX_ECONNRESET || reason == AX_EPIPE;
    bool replay = !f->reader || f->sent == 0;
    if (stale && replay && f->reused && !f->got_bytes && !f->retried && idempotent(f->method)) {
        f->retried = f->fresh = true;
        detach(f);
        if (!info(f, "the pooled connection was closed; retrying on a new one")) return;
        int rc = send_hop(f);
        if (rc) fail(f, rc, "cannot connect to %s", h->key);
        return;
    }
    const char *d = ax_conn_error_detail(h->conn);
    detach(f);
    if (reason == AX_EIDLE)
        fail(f, AX_ETIMEDOUT, "no data from %s for %u ms", h->key, f->hc->o.read_timeout_ms);
    else if (reason == AX_EOF)
        fail(f, AX_EOF, "%s closed the connection %s", h->key,
             f->got_bytes ? "before the response was complete" : "without answering");
    else if (d)
        fail(f, reason, "%s: %s", h->key, d);
    else if (!h->opened && reason == AX_ETIMEDOUT)
        fail(f, reason, "connecting to %s took longer than %u ms", h->key,
             f->hc->o.connect_timeout_ms);
    else if (!h->opened)
        fail(f, reason, "cannot connect to %s", h->key);
    else
        fail(f, reason, "connection to %s lost", h->key);
}

static void on_end(ax_conn *c)
{
    hconn *h = ax_conn_data(c);
    if (h->f) conn_lost(h->f, AX_EOF);
    hconn_close(h, 0);
}

static void on_close(ax_conn *c, int reason)
{
    hconn *h = ax_conn_data(c);
    if (h->f) conn_lost(h->f, reason ? reason : AX_ECONNABORTED);
    ax_http_client *hc = h->hc;
    if (hc) {
        idle_unlink(h);
        if (h->prev)
            h->prev->next = h->next;
        else
            hc->conns = h->next;
        if (h->next) h->next->prev = h->prev;
    }
    ax_free(h);
}

static const ax_conn_cbs conn_cbs = {.on_open = on_open,
                                     .on_data = on_data,
                                     .on_drain = on_drain,
                                     .on_end = on_end,
                                     .on_close = on_close};

/* ---- fetches ------------------------------------------------------------- */

static void fetch_free(ax_http_fetch *f)
{
    ax_http_client *hc = f->hc;
    if (f->prev)
        f->prev->next = f->next;
    else if (hc->fetches == f)
        hc->fetches = f->next;
    if (f->next) f->next->prev = f->prev;
    ax_timer_free(f->timer);
    ax_timer_free(f->kick);
    ax_free(f->piece);
    ax_free(f->url);
    ax_free(f->method);
    ax_free(f->fields);
    ax_free(f->body);
    ax_free(f->out);
    ax_free(f->raw_mem);
    ax_free(f->next_url);
    ax_free(f);
}

static void finish(ax_http_fetch *f, int err)
{
    if (f->finished) return;
    f->finished = true;
    if (f->h) { /* mid-exchange: the connection cannot carry another request */
        hconn *h = f->h;
        detach(f);
        hconn_close(h, err ? err : AX_ECANCELED);
    }
    ax_timer_stop(f->timer);
    if (!f->cancelled && f->cb.on_done) {
        f->in_cb++;
        f->cb.on_done(f, err, f->ud);
    }
    fetch_free(f);
}

/* The fetch's timer: first the start (so that nothing of the
 * application's runs inside ax_http_fetch_start), then the overall
 * timeout. */
static void on_timer(ax_timer *t, void *ud)
{
    ax_http_fetch *f = ud;
    if (f->started) {
        fail(f, AX_ETIMEDOUT, "no complete response within %u ms", (unsigned)f->timeout_ms);
        return;
    }
    f->started = true;
    if (f->timeout_ms) ax_timer_start(t, f->timeout_ms, 0);
    int rc = send_hop(f);
    if (rc) fail(f, rc, "cannot connect to %s", f->u.host);
}

/* The reader has data again, or 100 Continue did not come in time. */
static void on_kick(ax_timer *t, void *ud)
{
    ax_http_fetch *f = ud;
    (void)t;
    if (f->expect) f->go_on = true;
    if (f->h && !f->req_done) write_request(f);
}

static int fetch_init(ax_http_fetch *f, const ax_http_request *rq)
{
    ax_http_client *hc = f->hc;
    const char *m = rq->method ? rq->method : "GET";
    if (!token_ok(m, strlen(m)) || (rq->body_len && !rq->body && !rq->body_reader) ||
        (rq->body && rq->body_reader))
        return AX_EINVAL;
    if (!(f->url = dup_str(rq->url)) || !(f->method = dup_str(m))) return AX_ENOMEM;
    int rc = ax__http_url_parse(f->url, &f->u);
    if (rc == 0) rc = copy_fields(f, rq->headers, rq->headers ? rq->num_headers : 0);
    if (rc) return rc;
    f->reader = rq->body_reader;
    bool kick = f->reader || (rq->flags & AX_HTTP_EXPECT_100);
    if (kick && !(f->kick = ax_timer_new(hc->loop, on_kick, f))) return AX_ENOMEM;
    if (rq->body && rq->body_len && !(f->body = ax_malloc(rq->body_len))) return AX_ENOMEM;
    if (rq->body && rq->body_len) memcpy(f->body, rq->body, rq->body_len);
    f->body_len = rq->body_len;
    f->flags = rq->flags;
    f->max_redirects = rq->max_redirects ? rq->max_redirects : 10;
    if (f->max_redirects < 0) f->flags &= ~AX_HTTP_FOLLOW;
    f->lim = hc->lim;
    uint64_t mb = rq->max_body ? rq->max_body : hc->o.max_body;
    f->lim.max_body = mb ? mb : UINT64_MAX;
    f->timeout_ms = rq->timeout_ms ? rq->timeout_ms : hc->o.timeout_ms;
    if (!(f->timer = ax_timer_new(hc->loop, on_timer, f))) return AX_ENOMEM;
    ax_timer_start(f->timer, 0, 0);
    return 0;
}

ax_http_fetch *ax_http_fetch_start(ax_http_client *hc, const ax_http_request *rq,
                                   const ax_http_fetch_cbs *cbs, void *ud, int *err)
{
    int rc = AX_ECANCELED, dummy;
    if (!err) err = &dummy;
    if (hc->freeing || !rq || !rq->url) {
        *err = hc->freeing ? rc : AX_EINVAL;
        return NULL;
    }
    ax_http_fetch *f = ax_calloc(1, sizeof(*f));
    if (!f) {
        *err = AX_ENOMEM;
        return NULL;
    }
    f->hc = hc;
    f->ud = ud;
    if (cbs) f->cb = *cbs;
    rc = fetch_init(f, rq);
    if (rc) {
        *err = rc;
        fetch_free(f);
        return NULL;
    }
    f->next = hc->fetches;
    if (hc->fetches) hc->fetches->prev = f;
    hc->fetches = f;
    return f;
}

void ax_http_fetch_cancel(ax_http_fetch *f)
{
    if (!f || f->cancelled) return;
    f->cancelled = true;
    if (!f->in_cb) finish(f, AX_ECANCELED); /* else when the callback returns */
}

void ax_http_fetch_body_ready(ax_http_fetch *f)
{
    if (f->kick && !f->req_done && !f->finished) ax_timer_start(f->kick, 0, 0);
}

void ax_http_fetch_pause(ax_http_fetch *f)
{
    if (f->paused) return;
    f->paused = true;
    if (!f->h) return;
    ax_conn_pause(f->h->conn);
    ax_conn_set_idle_timeout(f->h->conn, 0);
}

void ax_http_fetch_resume(ax_http_fetch *f)
{
    if (!f->paused) return;
    f->paused = false;
    if (!f->h) return;
    ax_conn_set_idle_timeout(f->h->conn, f->hc->o.read_timeout_ms);
    ax_conn_resume(f->h->conn);
}

/* ---- the client ---------------------------------------------------------- */

ax_http_client *ax_http_client_new(ax_loop *loop, const ax_http_client_opts *opts, int *err)
{
    ax_http_client *hc = ax_calloc(1, sizeof(*hc));
    if (!hc) goto fail;
    hc->loop = loop;
    if (opts) hc->o = *opts;
    if (!hc->o.connect_timeout_ms) hc->o.connect_timeout_ms = 30000;
    if (!hc->o.read_timeout_ms) hc->o.read_timeout_ms = 60000;
    if (!hc->o.idle_timeout_ms) hc->o.idle_timeout_ms = 30000;
    if (!hc->o.max_idle) hc->o.max_idle = 16;
    if (!hc->o.max_idle_per_host) hc->o.max_idle_per_host = 4;
    hc->lim = ax_http_default_limits;
    hc->lim.max_headers = MAX_HEADERS;
    hc->lim.max_header_bytes = hc->o.max_header_bytes ? hc->o.max_header_bytes : 64 * 1024;
    hc->ua = dup_str(hc->o.user_agent ? hc->o.user_agent : "axon/" AXON_VERSION);
    if (!hc->ua) goto fail_free;
    hc->o.user_agent = hc->ua;
    if (hc->o.tls) hc->tls = ax__tls_ctx_ref(hc->o.tls);
    return hc;
fail_free:
    ax_free(hc);
fail:
    if (err) *err = AX_ENOMEM;
    return NULL;
}

void ax_http_client_free(ax_http_client *hc)
{
    if (!hc) return;
    hc->freeing = true;
    while (hc->fetches)
        finish(hc->fetches, AX_ECANCELED);
    for (hconn *h = hc->conns, *next; h; h = next) {
        next = h->next;
        h->hc = NULL;
        h->f = NULL;
        h->prev = h->next = NULL;
        ax_conn_abort(h->conn, AX_ECANCELED);
    }
    ax_tls_ctx_free(hc->tls);
    ax_free(hc->ua);
    ax_free(hc);
}

uint64_t ax_http_client_connects(const ax_http_client *hc)
{
    return hc->connects;
}

unsigned ax_http_client_idle(const ax_http_client *hc)
{
    return hc->nidle;
}

/* ---- accessors ----------------------------------------------------------- */

int ax_http_fetch_status(const ax_http_fetch *f)
{
    return f->have_head ? f->status : 0;
}

const char *ax_http_fetch_header(const ax_http_fetch *f, const char *name, size_t *len)
{
    const ax_http_header *h = f->have_head ? ax_http_find_header(&f->resp, name) : NULL;
    if (len) *len = h ? h->value.len : 0;
    return h ? h->value.ptr : NULL;
}

size_t ax_http_fetch_header_count(const ax_http_fetch *f)
{
    return f->have_head ? f->resp.num_headers : 0;
}

const char *ax_http_fetch_header_at(const ax_http_fetch *f, size_t i, const char **name,
                                    size_t *name_len, size_t *len)
{
    if (!f->have_head || i >= f->resp.num_headers) return NULL;
    const ax_http_header *h = &f->resp.headers[i];
    *name = h->name.ptr;
    *name_len = h->name.len;
    *len = h->value.len;
    return h->value.ptr;
}

const char *ax_http_fetch_raw_head(const ax_http_fetch *f, size_t *len)
{
    *len = f->have_head ? f->raw_len : 0;
    return f->have_head ? f->raw : NULL;
}

const char *ax_http_fetch_url(const ax_http_fetch *f)
{
    return f->url;
}

int ax_http_fetch_redirects(const ax_http_fetch *f)
{
    return f->redirects;
}

bool ax_http_fetch_reused(const ax_http_fetch *f)
{
    return f->reused;
}

const char *ax_http_fetch_error_detail(const ax_http_fetch *f)
{
    return f->detail[0] ? f->detail : NULL;
}

void *ax_http_fetch_data(const ax_http_fetch *f)
{
    return f->ud;
}
