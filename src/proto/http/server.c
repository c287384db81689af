/* server.c: the HTTP/1.1 server: connections, requests, responses, router,
 * timeouts.  The parsing is http_parser.c's; this file feeds it.  The
 * state it shares is in server_types.h; the access log is server_log.c's
 * and what a handler reads of its request server_req.c's.
 *
 * One ax_http_req lives per connection and carries one request at a time:
 * IDLE -> HEAD (bytes of a head arrived) -> BODY (when there is one) ->
 * BUSY (handler called, response not ended) -> IDLE or CLOSING.  While BUSY
 * the connection is paused, so pipelined requests wait in its input.
 *
 * Responses written while the connection's on_data runs collect in one
 * per-server buffer and leave in one write when on_data returns: sixteen
 * pipelined requests cost one send. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <axon/alloc.h>
#include <axon/http.h>
#include <axon/slice.h>
#include <axon/timer.h>

#include "core/buf.h"
#include "http_parser.h"
#include "server_internal.h"
#include "server_types.h"

/* ---- stats ------------------------------------------------------------- */

/* Move the bytes the connection moved since the last call into the stats. */
static void credit(ax_http_req *r)
{
    ax_http_server *s = r->srv;
    if (!s) return;
    uint64_t in = ax_conn_bytes_in(r->conn), out = ax_conn_bytes_out(r->conn);
    if (in != r->acct_in) STAT_ADD(s, bytes_in, in - r->acct_in);
    if (out != r->acct_out) STAT_ADD(s, bytes_out, out - r->acct_out);
    r->acct_in = in;
    r->acct_out = out;
}

/* The connection stops counting as this server's (closed, handed over). */
static void stats_leave(ax_http_req *r)
{
    credit(r);
    STAT_SUB(r->srv, conns_open, 1);
}

void ax_http_server_stats(ax_http_server *s, ax_http_stats *out)
{
    for (ax_http_req *r = s->conns; r; r = r->next)
        credit(r);
    out->conns_open = __atomic_load_n(&s->st.conns_open, __ATOMIC_RELAXED);
    out->conns_accepted = __atomic_load_n(&s->st.conns_accepted, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&s->st.requests, __ATOMIC_RELAXED);
    out->bytes_in = __atomic_load_n(&s->st.bytes_in, __ATOMIC_RELAXED);
    out->bytes_out = __atomic_load_n(&s->st.bytes_out, __ATOMIC_RELAXED);
    out->refused = __atomic_load_n(&s->st.refused, __ATOMIC_RELAXED);
}

/* ---- output ------------------------------------------------------------ */

/* Bytes of a response that could not be queued (out of memory) leave a
 * stream the client cannot read on: end the connection rather than leave
 * the client waiting for what will never come. */
static int lost(ax_http_req *r, int rc)
{
    if (rc == AX_ENOMEM) ax_conn_abort(r->conn, rc);
    return rc;
}

static int batch_flush(ax_http_req *r)
{
    ax_http_server *s = r->srv;
    if (!s || s->batch_owner != r || s->out_len == 0) return 0;
    int rc = ax_conn_write(r->conn, s->out, s->out_len);
    s->out_len = 0;
    return lost(r, rc);
}

static int out_write(ax_http_req *r, const void *p, size_t n)
{
    ax_http_server *s = r->srv;
    if (s && s->batch_owner == r) {
        if (s->out_len + n <= OUT_CAP) {
            memcpy(s->out + s->out_len, p, n);
            s->out_len += n;
            return 0;
        }
        int rc = batch_flush(r);
        if (rc < 0) return rc;
        if (n <= OUT_CAP / 2) {
            memcpy(s->out, p, n);
            s->out_len = n;
            return rc;
        }
    }
    return lost(r, ax_conn_write(r->conn, p, n));
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUTS(p, lit) put(p, lit, sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

#define FIXED_AT (sizeof("HTTP/1.1 200 OK") - 1)

/* The fields every head has, with a Date at most one loop iteration old:
 * the clock is read once per wake-up, not once per response. */
static const char *server_fixed(ax_http_server *s, size_t *len)
{
    uint64_t ms = ax_loop_now(s->loop);
    time_t now = ms != s->date_ms || !s->fixed_len ? time(NULL) : s->date_sec;
    s->date_ms = ms;
    if (now != s->date_sec || !s->fixed_len) {
        s->date_sec = now;
        ax__http_date(now, s->date);
        char *p = PUTS(s->fixed, "HTTP/1.1 200 OK");
        if (s->o.server_name[0]) {
            p = PUTS(p, "\r\nServer: ");
            p = put(p, s->o.server_name, strnlen(s->o.server_name, 64));
        }
        p = PUTS(p, "\r\nDate: ");
        p = put(p, s->date, AX__HTTP_DATE_LEN);
        p = PUTS(p, "\r\n");
        s->fixed_len = (size_t)(p - s->fixed);
    }
    *len = s->fixed_len;
    return s->fixed;
}

const char *ax_http_status_text(int status)
{
    /* RFC 9110 section 15, plus 425 (RFC 8470), 428, 429, 431, 511 (RFC 6585)
     * and 451 (RFC 7725) */
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}

/* ---- request storage --------------------------------------------------- */

static void release_file(ax_http_req *r)
{
    ax_file_unref(r->file);
    r->file = NULL;
}

static void release_request(ax_http_req *r)
{
    ax_free(r->hcopy);
    r->hcopy = NULL;
    ax__buf_free(&r->body);
    ax_free(r->logreq);
    r->logreq = NULL;
    r->xh.len = 0;
    r->head = NULL;
    r->drain_cb = NULL;
    r->abort_cb = NULL;
    r->body_cb = NULL;
}

/* Rebase a slice of `from` (length n) into `to`. */
static void rebase(ax_http_str *s, const char *from, size_t n, char *to)
{
    if (s->ptr >= from && s->ptr < from + n) s->ptr = to + (s->ptr - from);
}

/* Requests with a body outlive the input buffer: copy the head. */
static int copy_head(ax_http_req *r, const char *buf, size_t n)
{
    const ax_http_head *h = &r->srv->head;
    size_t hsz = sizeof(ax_http_head) + h->num_headers * sizeof(ax_http_header);
    char *mem = ax_malloc(hsz + n);
    if (!mem) return AX_ENOMEM;
    ax_http_head *c = (ax_http_head *)(void *)mem;
    ax_http_header *hd = (ax_http_header *)(void *)(mem + sizeof(ax_http_head));
    char *bytes = mem + hsz;
    memcpy(bytes, buf, n);
    *c = *h;
    c->headers = hd;
    c->headers_cap = h->num_headers;
    for (size_t i = 0; i < h->num_headers; i++) {
        hd[i] = h->headers[i];
        rebase(&hd[i].name, buf, n, bytes);
        rebase(&hd[i].value, buf, n, bytes);
    }
    rebase(&c->method, buf, n, bytes);
    rebase(&c->target, buf, n, bytes);
    rebase(&c->host, buf, n, bytes);
    rebase(&c->upgrade, buf, n, bytes);
    r->hcopy = mem;
    r->head = c;
    return 0;
}

static int body_append(ax_http_req *r, const char *p, size_t n)
{
    return ax__buf_append(&r->body, p, n);
}

/* ---- responses --------------------------------------------------------- */

int ax_http_add_header(ax_http_req *r, const char *name, const char *value)
{
    size_t nl = strlen(name), vl = strlen(value);
    if ((r->flags & F_STARTED) || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n") || nl == 0)
        return AX_EINVAL;
    if (ax__buf_reserve(&r->xh, nl + vl + 4) != 0) return AX_ENOMEM;
    char *p = r->xh.p + r->xh.len;
    p = put(p, name, nl);
    p = PUTS(p, ": ");
    p = put(p, value, vl);
    p = PUTS(p, "\r\n");
    r->xh.len = (size_t)(p - r->xh.p);
    return 0;
}

void ax_http_set_close(ax_http_req *r)
{
    r->flags |= F_CLOSE;
}

/* Room for a head of `need` bytes at the end of the batch, or NULL. */
static char *head_room(ax_http_req *r, size_t need)
{
    ax_http_server *s = r->srv;
    return s->batch_owner == r && OUT_CAP - s->out_len >= need ? s->out + s->out_len : NULL;
}

/* Content-Length, Transfer-Encoding, Connection and the blank line. */
static char *head_tail(ax_http_req *r, char *p, int status, int64_t content_length)
{
    bool bodyless = (status >= 100 && status < 200) || status == 204 || status == 304;
    if (!bodyless && content_length >= 0) {
        p = PUTS(p, "Content-Length: ");
        p = put_u64(p, (uint64_t)content_length);
        p = PUTS(p, "\r\n");
    } else if (!bodyless && ax_http_req_minor(r) >= 1) {
        p = PUTS(p, "Transfer-Encoding: chunked\r\n");
        r->flags |= F_CHUNKED;
    } else if (!bodyless) {
        r->flags |= F_CLOSE; /* HTTP/1.0: the close ends the body */
    }
    if (!(r->flags & F_KEEP) || (r->flags & F_CLOSE)) {
        r->flags |= F_CLOSE;
        p = PUTS(p, "Connection: close\r\n");
    } else if (ax_http_req_minor(r) == 0) {
        p = PUTS(p, "Connection: keep-alive\r\n");
    }
    return PUTS(p, "\r\n");
}

/* The head: status line, fixed fields, the handler's fields, then
 * Content-Type `ct` (ct_len bytes, may be 0) and the framing.  Written in
 * place at the end of the batch when it fits (one copy), else in pieces.
 * `ct` NULL: no Content-Type here. */
static int start_head(ax_http_req *r, int status, int64_t content_length, const char *ct,
                      size_t ct_len)
{
    if ((r->flags & F_STARTED) || r->state != ST_BUSY || !r->srv) return AX_EINVAL;
    ax_http_server *s = r->srv;
    size_t fixed_len;
    const char *fixed = server_fixed(s, &fixed_len);
    r->flags |= F_STARTED;
    r->status = status;
    r->sent = 0;
    if ((status >= 100 && status < 200) || status == 204 || status == 304) r->flags |= F_NO_BODY;
    if (r->flags & F_HEAD_REQ) r->flags |= F_NO_BODY;
    enum { TAIL_MAX = 96 }; /* Content-Length .. blank line, at most */
    size_t need = 48 + fixed_len + r->xh.len + ct_len + 16 + TAIL_MAX;
    char buf[512], *start = head_room(r, need), *p;
    bool in_place = start != NULL;
    p = in_place ? start : buf;
    if (status != 200) {
        const char *text = ax_http_status_text(status);
        p = PUTS(p, "HTTP/1.1 ");
        p = put_u64(p, (uint64_t)status);
        *p++ = ' ';
        p = put(p, text, strlen(text));
        fixed += FIXED_AT, fixed_len -= FIXED_AT;
    }
    p = put(p, fixed, fixed_len);
    if (!in_place) {
        int rc = out_write(r, buf, (size_t)(p - buf));
        if (rc >= 0 && r->xh.len) rc = out_write(r, r->xh.p, r->xh.len);
        if (rc < 0) return rc;
        p = buf;
    } else {
        if (r->xh.len) p = put(p, r->xh.p, r->xh.len);
    }
    if (ct && !in_place && (size_t)(buf + sizeof buf - p) < ct_len + 16 + TAIL_MAX) {
        int rc = out_write(r, buf, (size_t)(p - buf));
        if (rc >= 0) rc = out_write(r, "Content-Type: ", 14);
        if (rc >= 0) rc = out_write(r, ct, ct_len);
        if (rc < 0) return rc;
        p = PUTS(buf, "\r\n");
    } else if (ct) {
        p = PUTS(p, "Content-Type: ");
        p = put(p, ct, ct_len);
        p = PUTS(p, "\r\n");
    }
    p = head_tail(r, p, status, content_length);
    if (!in_place) return out_write(r, buf, (size_t)(p - buf));
    s->out_len = (size_t)(p - s->out);
    return 0;
}

int ax_http_start(ax_http_req *r, int status, int64_t content_length)
{
    return start_head(r, status, content_length, NULL, 0);
}

/* Two results of writes in a row: an error wins, then "above the high
 * watermark" (1), which a later batched write must not hide. */
static int worst(int a, int b)
{
    if (a < 0 || b < 0) return a < 0 ? a : b;
    return a > b ? a : b;
}

int ax_http_write(ax_http_req *r, const void *data, size_t len)
{
    if (!(r->flags & F_STARTED)) return AX_EINVAL;
    if ((r->flags & F_NO_BODY) || len == 0) return 0;
    r->sent += len;
    if (!(r->flags & F_CHUNKED)) {
        int rc = out_write(r, data, len);
        credit(r);
        return rc;
    }
    char line[24], *p = line;
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    int n = 0;
    size_t v = len;
    do {
        tmp[n++] = hex[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    p = PUTS(p, "\r\n");
    int rc = out_write(r, line, (size_t)(p - line));
    if (rc >= 0) rc = worst(rc, out_write(r, data, len));
    if (rc >= 0) rc = worst(rc, out_write(r, "\r\n", 2));
    credit(r);
    return rc;
}

int ax_http_write_slice(ax_http_req *r, ax_slice *sl, size_t off, size_t len)
{
    if (!(r->flags & F_STARTED)) return AX_EINVAL;
    if ((r->flags & F_NO_BODY) || len == 0) return 0;
    if (off > ax_slice_len(sl) || len > ax_slice_len(sl) - off) return AX_EINVAL;
    r->sent += len;
    int rc = 0;
    if (r->flags & F_CHUNKED) {
        char line[24];
        int n = snprintf(line, sizeof line, "%zx\r\n", len);
        rc = out_write(r, line, (size_t)n);
    }
    if (rc >= 0) rc = worst(rc, batch_flush(r)); /* what is batched goes first */
    if (rc >= 0) rc = worst(rc, ax_conn_write_slice(r->conn, sl, off, len));
    if (rc >= 0 && (r->flags & F_CHUNKED)) rc = worst(rc, out_write(r, "\r\n", 2));
    credit(r);
    return rc;
}

static void next_request(ax_http_req *r)
{
    ax_http_server *s = r->srv;
    bool in_data = s && s->batch_owner == r;
    if (!s || (r->flags & F_CLOSE)) {
        r->state = ST_CLOSING;
        r->deadline = 0;
        if (!in_data) ax_conn_close(r->conn);
        return;
    }
    if (r->flags & F_BODY_OPEN) { /* answered early: read the rest of the body, unseen */
        r->state = ST_BODY;
        r->flags &= ~(unsigned)F_BODY_PAUSED;
        r->body_cb = NULL;
        r->deadline = ax_loop_now(s->loop) + s->o.body_timeout_ms;
        if (!in_data) ax_conn_resume(r->conn);
        return;
    }
    r->state = ST_IDLE;
    r->deadline = ax_loop_now(s->loop) + s->o.idle_timeout_ms;
    if (!in_data) ax_conn_resume(r->conn);
}

int ax_http_end(ax_http_req *r)
{
    if (!(r->flags & F_STARTED) || r->state != ST_BUSY) return AX_EINVAL;
    int rc = 0;
    if ((r->flags & (F_CHUNKED | F_NO_BODY)) == F_CHUNKED) rc = out_write(r, "0\r\n\r\n", 5);
    ax__http_log_line(r);
    if (r->srv && r->srv->batch_owner != r) batch_flush(r);
    credit(r);
    if (!(r->flags & F_IN_HANDLER)) release_request(r);
    r->flags &= ~(unsigned)(F_STARTED | F_CHUNKED | F_NO_BODY);
    next_request(r);
    return rc < 0 ? rc : 0;
}

int ax_http_respond(ax_http_req *r, int status, const char *content_type, const void *body,
                    size_t len)
{
    size_t ct_len = content_type ? strcspn(content_type, "\r\n") : 0;
    if (content_type && content_type[ct_len]) return AX_EINVAL; /* as ax_http_add_header() */
    int rc = start_head(r, status, (int64_t)len, content_type, ct_len);
    if (rc >= 0) rc = ax_http_write(r, body, len);
    if (rc >= 0) rc = ax_http_end(r);
    return rc < 0 ? rc : 0;
}

void ax_http_on_drain(ax_http_req *r, void (*cb)(ax_http_req *r, void *ud), void *ud)
{
    r->drain_cb = cb;
    r->drain_ud = ud;
}

void ax_http_on_abort(ax_http_req *r, void (*cb)(ax_http_req *r, void *ud), void *ud)
{
    r->abort_cb = cb;
    r->abort_ud = ud;
}

/* A request the server answers itself, then closes. */
static void reject(ax_http_req *r, int status)
{
    char body[80];
    int n = snprintf(body, sizeof body, "%d %s\n", status, ax_http_status_text(status));
    if (r->srv) STAT_ADD(r->srv, refused, 1);
    r->state = ST_BUSY;
    r->flags = (r->flags & F_IN_HANDLER) | F_CLOSE;
    r->xh.len = 0;
    if (ax_http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n) < 0) {
        r->state = ST_CLOSING;
        ax_conn_abort(r->conn, AX_ECLOSED);
    }
}

/* ---- file responses ---------------------------------------------------- */

static void file_fail(ax_http_req *r, int err)
{
    release_file(r);
    r->state = ST_CLOSING;
    ax_conn_abort(r->conn, err);
}

/* Queue the segments behind the head, corked so the head shares packets
 * with the file's first bytes; the connection reads the file as it sends.
 * Above the high watermark the response ends on drain, so a pipelined
 * client is answered one file at a time. */
static int queue_segments(ax_http_req *r, const ax__http_seg *segs, int n)
{
    ax_conn_cork(r->conn);
    int rc = batch_flush(r);
    for (int i = 0; i < n && rc >= 0; i++) {
        const ax__http_seg *g = &segs[i];
        if (g->pre_len) rc = worst(rc, ax_conn_write(r->conn, g->pre, g->pre_len));
        if (rc >= 0 && g->len) rc = worst(rc, ax_conn_write_file(r->conn, r->file, g->off, g->len));
    }
    int u = ax_conn_uncork(r->conn);
    return worst(rc, u);
}

int ax__http_send_file(ax_http_req *r, int fd, ax__http_seg *segs, int n, void *mem)
{
    int rc = 0;
    if (!(r->flags & F_STARTED) || (r->flags & F_NO_BODY)) {
        close(fd);
    } else if (!(r->file = ax_file_new(fd))) {
        close(fd);
        rc = AX_ENOMEM;
    } else {
        for (int i = 0; i < n; i++)
            r->sent += segs[i].len + segs[i].pre_len;
        rc = queue_segments(r, segs, n);
        release_file(r);
    }
    if (n != 1 || mem) ax_free(segs);
    ax_free(mem);
    if (rc < 0) {
        file_fail(r, rc);
        return 0;
    }
    if (rc == 1) {
        /* on_drain ends it; a peer that stops reading times out */
        r->file_drain = true;
        if (r->srv) r->deadline = ax_loop_now(r->srv->loop) + r->srv->o.idle_timeout_ms;
        credit(r);
        return 0;
    }
    return ax_http_end(r);
}

/* ---- routing and dispatch ---------------------------------------------- */

static void set_path(ax_http_req *r)
{
    const char *t = r->head->target.ptr;
    size_t n = r->head->target.len;
    /* absolute-form (RFC 9112 3.2.2): skip scheme and authority */
    if (n > 0 && t[0] != '/') {
        const char *sep = memchr(t, ':', n);
        if (sep && (size_t)(sep - t) + 3 <= n && sep[1] == '/' && sep[2] == '/') {
            const char *a = sep + 3, *end = t + n;
            const char *slash = memchr(a, '/', (size_t)(end - a));
            t = slash ? slash : end;
            n = (size_t)(end - t);
        }
    }
    const char *q = memchr(t, '?', n);
    r->path = t;
    r->path_len = q ? (size_t)(q - t) : n;
}

static bool prefix_match(const route *rt, const char *path, size_t len)
{
    if (rt->plen > len || memcmp(rt->prefix, path, rt->plen) != 0) return false;
    return rt->plen == 0 || rt->prefix[rt->plen - 1] == '/' || rt->plen == len ||
           path[rt->plen] == '/';
}

static const route *route_find(ax_http_server *s, ax_http_req *r, bool *wrong_method)
{
    const route *best = NULL;
    const ax_http_str *m = &r->head->method;
    *wrong_method = false;
    for (int i = 0; i < s->nroutes; i++) {
        const route *rt = &s->routes[i];
        if (!prefix_match(rt, r->path, r->path_len)) continue;
        if (rt->method && (rt->mlen != m->len || memcmp(rt->method, m->ptr, m->len))) {
            *wrong_method = true;
            continue;
        }
        /* the longest prefix; among equals the route added last, so a
         * route added over another (an echo over a folder at "/") serves */
        if (!best || rt->plen >= best->plen) best = rt;
    }
    return best;
}

static void dispatch(ax_http_req *r)
{
    ax_http_server *s = r->srv;
    r->state = ST_BUSY;
    r->deadline = 0;
    r->status = 0;
    if (r->head->method_id == AX_HTTP_HEAD) r->flags |= F_HEAD_REQ;
    set_path(r);
    if (s->o.access_log) ax__http_log_snapshot(r);
    bool wrong_method;
    const route *rt = route_find(s, r, &wrong_method);
    STAT_ADD(s, requests, 1);
    r->flags |= F_IN_HANDLER;
    if (rt) {
        rt->h(r, rt->ud);
    } else {
        int st = wrong_method ? 405 : 404;
        char body[40];
        int n = snprintf(body, sizeof body, "%d %s\n", st, ax_http_status_text(st));
        ax_http_respond(r, st, "text/plain; charset=utf-8", body, (size_t)n);
    }
    r->flags &= ~(unsigned)F_IN_HANDLER;
    /* A streaming handler waits for the end of the body: with no body at
     * all it is now (else the request would wait for the peer forever). */
    if (rt && rt->stream && !(r->flags & F_BODY_OPEN) && r->state == ST_BUSY && r->body_cb)
        r->body_cb(r, NULL, 0, r->body_ud);
    if (r->state != ST_BUSY)
        release_request(r);
    else if (!(r->flags & F_BODY_OPEN))
        r->head = NULL; /* fields are gone once the handler returns */
}

/* A streaming route for this head, or NULL (the body is collected). */
static const route *stream_route(ax_http_req *r)
{
    bool wrong_method;
    set_path(r);
    const route *rt = route_find(r->srv, r, &wrong_method);
    return rt && rt->stream ? rt : NULL;
}

/* ---- reading requests -------------------------------------------------- */

static long step_head(ax_http_req *r, const char *buf, size_t len)
{
    ax_http_server *s = r->srv;
    ax_http_parser p;
    ax_http_head *h = &s->head;
    h->headers = s->hdrs;
    h->headers_cap = MAX_HEADERS;
    /* A fresh parse each time: the head array is shared by every
     * connection, and heads that arrive in pieces are rare and small. */
    ax_http_parser_init(&p, AX_HTTP_REQUEST, &s->lim);
    int n = ax_http_parse_head(&p, buf, len, h);
    if (n == AX_HTTP_INCOMPLETE) return -1;
    r->flags = 0;
    if (n < 0) {
        reject(r, -n);
        return (long)len;
    }
    r->head = h;
    r->minor = (uint8_t)h->minor_version;
    if (h->flags & AX_HTTP_KEEP_ALIVE) r->flags |= F_KEEP;
    if (h->framing == AX_HTTP_BODY_NONE ||
        (h->framing == AX_HTTP_BODY_LENGTH && h->content_length == 0)) {
        dispatch(r);
        return n;
    }
    const route *rt = stream_route(r);
    r->body_max = rt && rt->max_body ? rt->max_body : s->o.max_body;
    if (h->framing == AX_HTTP_BODY_LENGTH && h->content_length > r->body_max) {
        reject(r, 413);
        return (long)len;
    }
    if (copy_head(r, buf, (size_t)n) != 0) {
        reject(r, 500);
        return (long)len;
    }
    ax_http_body_init(&r->bd, h->framing, h->content_length, rt ? &s->lim : &s->lim_body);
    if ((h->flags & AX_HTTP_EXPECT_CONTINUE) && (size_t)n == len)
        out_write(r, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    r->state = ST_BODY;
    r->deadline = ax_loop_now(s->loop) + s->o.body_timeout_ms;
    r->body_seen = 0;
    if (rt) {
        r->flags |= F_BODY_OPEN;
        dispatch(r);
        if (r->state == ST_BUSY) r->deadline = ax_loop_now(s->loop) + s->o.body_timeout_ms;
    }
    return n;
}

/* The streamed body is over: tell the application, or, when it answered
 * already, go on to the next request. */
static void stream_ended(ax_http_req *r)
{
    r->flags &= ~(unsigned)(F_BODY_OPEN | F_BODY_PAUSED);
    if (r->state == ST_BODY) { /* the response went out before the body ended */
        release_request(r);
        next_request(r);
        return;
    }
    r->deadline = 0;
    if (r->body_cb) r->body_cb(r, NULL, 0, r->body_ud);
}

/* A streamed body went wrong: answer if nothing was sent yet, else drop. */
static void stream_fail(ax_http_req *r, int status)
{
    bool answered = r->state == ST_BODY || (r->flags & F_STARTED);
    if (r->abort_cb && r->state == ST_BUSY) r->abort_cb(r, r->abort_ud);
    r->abort_cb = NULL;
    release_request(r);
    if (answered) {
        r->state = ST_CLOSING;
        ax_conn_abort(r->conn, AX_EPROTO);
    } else {
        reject(r, status);
    }
}

static long step_stream(ax_http_req *r, const char *buf, size_t len)
{
    size_t used = 0;
    while (!(r->flags & F_BODY_PAUSED) && (r->flags & F_BODY_OPEN)) {
        ax_http_str d = {NULL, 0};
        int n = ax_http_body_parse(&r->bd, buf + used, len - used, &d);
        if (n > 0) {
            used += (size_t)n;
            r->body_seen += d.len;
            if (r->body_seen > r->body_max) {
                stream_fail(r, 413);
                return (long)len;
            }
            r->deadline = ax_loop_now(r->srv->loop) + r->srv->o.body_timeout_ms;
            if (d.len && r->body_cb) r->body_cb(r, d.ptr, d.len, r->body_ud);
            if (r->state == ST_CLOSING) return (long)len;
            continue;
        }
        if (n == 0) {
            stream_ended(r);
            return (long)used;
        }
        if (n == AX_HTTP_INCOMPLETE) return used ? (long)used : -1;
        stream_fail(r, -n);
        return (long)len;
    }
    /* Paused: no more data now, but a body whose last byte has come is
     * over, and that must not wait for input that will never arrive. */
    ax_http_str d = {NULL, 0};
    if ((r->flags & F_BODY_OPEN) && ax_http_body_parse(&r->bd, buf + used, 0, &d) == 0)
        stream_ended(r);
    return used ? (long)used : -1;
}

static long step_body(ax_http_req *r, const char *buf, size_t len)
{
    size_t used = 0;
    for (;;) {
        ax_http_str d = {NULL, 0};
        int n = ax_http_body_parse(&r->bd, buf + used, len - used, &d);
        if (n > 0) {
            if (d.len && body_append(r, d.ptr, d.len) != 0) {
                release_request(r);
                reject(r, 500);
                return (long)len;
            }
            used += (size_t)n;
            continue;
        }
        if (n == 0) {
            dispatch(r);
            return (long)used;
        }
        if (n == AX_HTTP_INCOMPLETE) {
            if (!used) return -1;
            r->deadline = ax_loop_now(r->srv->loop) + r->srv->o.body_timeout_ms;
            return (long)used;
        }
        release_request(r);
        reject(r, -n);
        return (long)len;
    }
}

/* ---- protocol upgrade -------------------------------------------------- */

int ax_http_upgrade(ax_http_req *r, const void *head, size_t len, const ax_conn_cbs *cbs, void *ud)
{
    if (!(r->flags & F_IN_HANDLER) || (r->flags & F_STARTED) || r->state != ST_BUSY || !r->srv)
        return AX_EINVAL;
    int rc = out_write(r, head, len);
    if (rc < 0) return rc;
    r->status = 101;
    ax__http_log_line(r);
    r->up_cbs = cbs;
    r->up_ud = ud;
    r->state = ST_UPGRADED;
    return 0;
}

static void on_close(ax_conn *c, int reason);

/* After the upgrading handler: the request leaves the server and the
 * connection goes to the new protocol with the bytes behind the request. */
static size_t hand_over(ax_http_req *r, const char *rest, size_t len)
{
    ax_conn *c = r->conn;
    const ax_conn_cbs *cbs = r->up_cbs;
    void *ud = r->up_ud;
    r->acct_in += len; /* the bytes behind the request are the new protocol's */
    on_close(c, 0);    /* unlinks and frees r; the stats let go of it */
    ax_conn_set_cbs(c, cbs);
    ax_conn_set_data(c, ud);
    if (cbs->on_open) cbs->on_open(c);
    if (!len) return 0;
    return cbs->on_data ? cbs->on_data(c, rest, len) : len;
}

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    ax_http_req *r = ax_conn_data(c);
    ax_http_server *s = r ? r->srv : NULL;
    if (!s) return len; /* refused by on_conn_open, or leaving */
    size_t off = 0;
    s->batch_owner = r;
    while (off < len && (r->state <= ST_BODY || (r->flags & F_BODY_OPEN))) {
        if (r->state == ST_IDLE) {
            r->state = ST_HEAD;
            r->deadline = ax_loop_now(s->loop) + s->o.header_timeout_ms;
        }
        long n = (r->flags & F_BODY_OPEN) ? step_stream(r, data + off, len - off)
                 : r->state == ST_HEAD    ? step_head(r, data + off, len - off)
                                          : step_body(r, data + off, len - off);
        if (n < 0) break;
        off += (size_t)n;
    }
    batch_flush(r);
    s->batch_owner = NULL;
    credit(r);
    if (r->state == ST_UPGRADED) return off + hand_over(r, data + off, len - off);
    if (r->state == ST_CLOSING) {
        ax_conn_close(c);
        return len;
    }
    if ((r->state == ST_BUSY && !(r->flags & F_BODY_OPEN)) || (r->flags & F_BODY_PAUSED))
        ax_conn_pause(c);
    return off;
}

static void on_open(ax_conn *c)
{
    ax_http_server *s = ax_conn_data(c);
    bool refuse = false;
    void *data = s->o.on_conn_open ? s->o.on_conn_open(c, s->o.hook_ud, &refuse) : NULL;
    if (refuse) {
        ax_conn_set_data(c, NULL);
        ax_conn_close(c);
        return;
    }
    ax_http_req *r = ax_calloc(1, sizeof(*r));
    if (!r) {
        if (s->o.on_conn_close) s->o.on_conn_close(c, data, s->o.hook_ud);
        ax_conn_set_data(c, NULL);
        ax_conn_abort(c, AX_ENOMEM);
        return;
    }
    r->conn_data = data;
    r->srv = s;
    r->conn = c;
    r->minor = 1;
    r->deadline = ax_loop_now(s->loop) + s->o.header_timeout_ms;
    r->next = s->conns;
    if (s->conns) s->conns->prev = r;
    s->conns = r;
    r->acct_in = ax_conn_bytes_in(c); /* a TLS handshake came before */
    r->acct_out = ax_conn_bytes_out(c);
    STAT_ADD(s, conns_accepted, 1);
    STAT_ADD(s, conns_open, 1);
    ax_conn_set_data(c, r);
}

static void on_drain(ax_conn *c)
{
    ax_http_req *r = ax_conn_data(c);
    if (!r || r->state != ST_BUSY) return;
    if (r->file_drain) {
        r->file_drain = false;
        ax_http_end(r);
    } else if (r->drain_cb)
        r->drain_cb(r, r->drain_ud);
    if (ax_conn_data(c) == r) credit(r);
}

static void on_close(ax_conn *c, int reason)
{
    ax_http_req *r = ax_conn_data(c);
    if (!r) return; /* refused in on_open */
    if (r->state == ST_BUSY && r->abort_cb) r->abort_cb(r, r->abort_ud);
    ax_http_server *s = r->srv;
    if (s && s->o.on_conn_close) s->o.on_conn_close(c, r->conn_data, s->o.hook_ud);
    if (s) {
        stats_leave(r);
        if (r->prev)
            r->prev->next = r->next;
        else
            s->conns = r->next;
        if (r->next) r->next->prev = r->prev;
        if (s->batch_owner == r) s->batch_owner = NULL;
    }
    release_file(r);
    release_request(r);
    ax__buf_free(&r->xh);
    ax_free(r);
}

static const ax_conn_cbs http_cbs = {
    .on_open = on_open, .on_data = on_data, .on_drain = on_drain, .on_close = on_close};

/* ---- timeouts ---------------------------------------------------------- */

static void sweep(ax_timer *t, void *ud)
{
    ax_http_server *s = ud;
    uint64_t now = ax_loop_now(s->loop);
    for (ax_http_req *r = s->conns; r; r = r->next) {
        credit(r); /* what left since the last event, for a shared opts.stats */
        if (!r->deadline || now < r->deadline || (r->flags & F_BODY_PAUSED)) continue;
        r->deadline = 0;
        if (r->flags & F_BODY_OPEN) {
            if (r->state == ST_BUSY)
                stream_fail(r, 408);
            else
                ax_conn_abort(r->conn, AX_ETIMEDOUT);
        } else if (r->state == ST_HEAD || r->state == ST_BODY) {
            release_request(r);
            reject(r, 408); /* closes after the answer */
            if (r->state != ST_CLOSING) ax_conn_close(r->conn);
        } else if (r->state == ST_IDLE) {
            r->state = ST_CLOSING;
            ax_conn_close(r->conn);
        } else if (r->state == ST_BUSY) {
            ax_conn_abort(r->conn, AX_ETIMEDOUT); /* stopped reading a response */
        }
    }
    (void)t;
}

/* ---- the server -------------------------------------------------------- */

ax_http_server *ax_http_server_new(ax_loop *loop, const ax_http_opts *opts, int *err)
{
    ax_http_server *s = ax_calloc(1, sizeof(*s));
    if (!s) goto fail;
    s->loop = loop;
    if (opts) s->o = *opts;
    if (!s->o.max_body) s->o.max_body = 1024 * 1024;
    if (!s->o.header_timeout_ms) s->o.header_timeout_ms = 10000;
    if (!s->o.body_timeout_ms) s->o.body_timeout_ms = 30000;
    if (!s->o.idle_timeout_ms) s->o.idle_timeout_ms = 60000;
    if (!s->o.server_name) s->o.server_name = "axon";
    s->lim = ax_http_default_limits;
    s->lim.max_headers = MAX_HEADERS;
    /* Heads are parsed without a body limit (a streaming route may allow
     * more); collected bodies are held to max_body by lim_body. */
    s->lim.max_body = UINT64_MAX;
    if (s->o.max_header_bytes) s->lim.max_header_bytes = s->o.max_header_bytes;
    s->lim_body = s->lim;
    s->lim_body.max_body = s->o.max_body;
    s->sweep = ax_timer_new(loop, sweep, s);
    if (!s->sweep) goto fail_free;
    uint32_t tick = s->o.header_timeout_ms;
    if (s->o.body_timeout_ms < tick) tick = s->o.body_timeout_ms;
    if (s->o.idle_timeout_ms < tick) tick = s->o.idle_timeout_ms;
    tick /= 4;
    if (tick < 50) tick = 50;
    if (tick > 1000) tick = 1000;
    ax_timer_start(s->sweep, tick, tick);
    return s;
fail_free:
    ax_free(s);
fail:
    if (err) *err = AX_ENOMEM;
    return NULL;
}

ax_listener *ax_http_listen(ax_http_server *s, const char *url, const ax_listen_opts *lopts,
                            int *err)
{
    return ax_http_listen_tls(s, url, lopts, NULL, err);
}

ax_listener *ax_http_listen_tls(ax_http_server *s, const char *url, const ax_listen_opts *lopts,
                                ax_tls_ctx *tls, int *err)
{
    ax_listener **ls = ax_realloc(s->ls, (size_t)(s->nls + 1) * sizeof(*ls));
    if (!ls) {
        if (err) *err = AX_ENOMEM;
        return NULL;
    }
    s->ls = ls;
    ax_listen_opts lo = {0};
    if (lopts) lo = *lopts;
    /* A head, plus what one read may bring behind it while a response is
     * pending (the connection is paused right after that read). */
    ax_conn_opts co = {.max_input = s->lim.max_header_bytes + s->lim.max_start_line + 128 * 1024,
                       .linger_ms = s->o.linger_ms,
                       .tls = tls};
    ax_listener *l = ax_listen_ex(s->loop, url, &http_cbs, &co, &lo, s, err);
    if (l) s->ls[s->nls++] = l;
    return l;
}

int ax_http_route(ax_http_server *s, const char *method, const char *prefix, ax_http_handler h,
                  void *ud)
{
    return ax_http_route_ex(s, method, prefix, h, ud, NULL);
}

int ax_http_route_ex(ax_http_server *s, const char *method, const char *prefix, ax_http_handler h,
                     void *ud, const ax_http_route_opts *o)
{
    route *rs = ax_realloc(s->routes, (size_t)(s->nroutes + 1) * sizeof(*rs));
    if (!rs) return AX_ENOMEM;
    s->routes = rs;
    route *rt = &rs[s->nroutes];
    size_t ml = method ? strlen(method) + 1 : 0, pl = strlen(prefix) + 1;
    rt->prefix = ax_malloc(pl);
    rt->method = method ? ax_malloc(ml) : NULL;
    if (!rt->prefix || (method && !rt->method)) {
        ax_free(rt->prefix);
        ax_free(rt->method);
        return AX_ENOMEM;
    }
    memcpy(rt->prefix, prefix, pl);
    if (method) memcpy(rt->method, method, ml);
    rt->plen = pl - 1;
    rt->mlen = method ? ml - 1 : 0;
    rt->h = h;
    rt->ud = ud;
    rt->stream = o && o->stream_body;
    rt->max_body = o ? o->max_body : 0;
    s->nroutes++;
    return 0;
}

int ax_http_serve_dir(ax_http_server *s, const char *prefix, const char *root, unsigned flags)
{
    void **dirs = ax_realloc(s->dirs, (size_t)(s->ndirs + 1) * sizeof(*dirs));
    if (!dirs) return AX_ENOMEM;
    s->dirs = dirs;
    void *d;
    int rc = ax__http_dir_new(prefix, root, flags, &d);
    if (rc) return rc;
    rc = ax_http_route(s, NULL, prefix, ax__http_dir_handler, d);
    if (rc) {
        ax__http_dir_free(d);
        return rc;
    }
    s->dirs[s->ndirs++] = d;
    return 0;
}

void ax_http_server_free(ax_http_server *s)
{
    if (!s) return;
    for (int i = 0; i < s->nls; i++)
        ax_listener_close(s->ls[i]);
    for (ax_http_req *r = s->conns, *next; r; r = next) {
        next = r->next;
        stats_leave(r); /* a shared opts.stats outlives the server */
        if (s->o.on_conn_close) s->o.on_conn_close(r->conn, r->conn_data, s->o.hook_ud);
        r->conn_data = NULL;
        r->srv = NULL;
        r->prev = r->next = NULL;
        ax_conn_abort(r->conn, AX_ECANCELED);
    }
    for (int i = 0; i < s->nroutes; i++) {
        ax_free(s->routes[i].prefix);
        ax_free(s->routes[i].method);
    }
    for (int i = 0; i < s->ndirs; i++)
        ax__http_dir_free(s->dirs[i]);
    ax_free(s->dirs);
    ax_free(s->routes);
    ax_free(s->ls);
    ax_timer_free(s->sweep);
    ax_free(s);
}
