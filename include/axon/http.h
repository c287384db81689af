/* axon/http.h: an HTTP/1.1 server on axon connections.
 *
 * A server is a router (method + path prefix -> handler) behind any number
 * of listeners on one loop:
 *
 *     static void hello(ax_http_req *r, void *ud) {
 *         ax_http_respond(r, 200, "text/plain", "Hello, World!\n", 14);
 *     }
 *     ax_http_server *s = ax_http_server_new(loop, NULL, &err);
 *     ax_http_route(s, "GET", "/", hello, NULL);
 *     ax_http_listen(s, "tcp://127.0.0.1:8000", NULL, &err);
 *
 * The server speaks keep-alive, pipelining (responses leave in request
 * order), HTTP/1.0, Content-Length and chunked bodies both ways,
 * Expect: 100-continue, and answers malformed requests itself (400, 413,
 * 414, 417, 431, 501, 505, with Connection: close).  Timeouts: the whole
 * request head must arrive within header_timeout_ms (slowloris), the body
 * must keep arriving (no gap longer than body_timeout_ms), and an idle
 * keep-alive connection is closed after idle_timeout_ms.
 *
 * A handler runs once per request, after the whole request (head and body,
 * at most max_body bytes, else 413) has arrived.  It answers at once with
 * ax_http_respond(), or streams: ax_http_start(), ax_http_write()...,
 * ax_http_end(), possibly later from another callback on the same loop.
 * Until a response ends, the connection reads no further request, so
 * pipelined requests wait their turn.
 *
 * Request fields (method, target, headers, body) point into buffers the
 * server reuses: they are valid during the handler call only; copy what a
 * later callback needs.  The ax_http_req itself stays valid until
 * ax_http_end() or until the connection closes (see ax_http_on_abort()). */
#ifndef AXON_HTTP_H
#define AXON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "conn.h"
#include "loop.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_http_server ax_http_server;
typedef struct ax_http_req ax_http_req;

/* A request handler; `ud` is the pointer given to ax_http_route(). */
typedef void (*ax_http_handler)(ax_http_req *r, void *ud);

/* Access log formats: Common Log Format; Combined (Common plus "Referer"
 * and "User-Agent", as Apache and nginx write it); one JSON object a line
 * {"time","remote","request","status","bytes","referer","user_agent"}. */
enum { AX_HTTP_LOG_COMMON = 0, AX_HTTP_LOG_COMBINED = 1, AX_HTTP_LOG_JSON = 2 };

/* Counters of a server (ax_http_server_stats(), ax_http_opts.stats).  A
 * connection counts from on_open to its close, or until it is handed to
 * another protocol (ax_http_upgrade(): the WebSocket bytes after the 101
 * are not counted here).  A long response (a file, Server-Sent Events) is
 * an HTTP connection like any other.  Bytes are those ax_conn_bytes_in()
 * and ax_conn_bytes_out() count, plus what the server writes to the socket
 * itself (sendfile); for TLS connections as they leave the library. */
typedef struct ax_http_stats {
    uint64_t conns_open;     /* open now */
    uint64_t conns_accepted; /* since the server started */
    uint64_t requests;       /* handed to a handler (or answered 404/405) */
    uint64_t bytes_in, bytes_out;
    /* requests the server refused itself, then closed: malformed or too
     * large (400, 413, 414, 417, 431, 501, 505), too slow (408), or out of
     * memory (500); not counted in `requests` */
    uint64_t refused;
} ax_http_stats;

/* Server settings; zero fields take the defaults shown. */
typedef struct ax_http_opts {
    uint64_t max_body;          /* 1 MiB: larger request bodies get 413 */
    uint32_t header_timeout_ms; /* 10 s: a request head must be complete this soon */
    uint32_t body_timeout_ms;   /* 30 s: longest pause while a body arrives */
    uint32_t idle_timeout_ms;   /* 60 s: keep-alive connection with no request */
    size_t max_header_bytes;    /* 32 KiB: larger heads get 431 */
    uint32_t linger_ms;         /* 10 s: a closing connection's limit (ax_conn_opts) */
    FILE *access_log;           /* NULL: off; else one line per response, in: */
    int access_log_format;      /* AX_HTTP_LOG_COMMON (default), _COMBINED or _JSON */
    const char *server_name;    /* "axon": the Server field; "" leaves it out */
    /* NULL, or counters the server adds its own to, with relaxed atomic
     * adds, from its loop: several servers (one per loop) may share one,
     * and any thread may read the fields with __atomic_load_n().  It must
     * outlive the server; at ax_http_server_free() the server takes its
     * open connections out of conns_open.  Bytes of an open connection
     * are added as the server reads and writes, at its close, by
     * ax_http_server_stats(), and at the latest on the next timeout check
     * (about a second): a response queued on the connection shows once it
     * has left. */
    ax_http_stats *stats;
    /* Connection hooks (NULL: none), given `hook_ud`.  on_conn_open runs
     * for each accepted connection (after its TLS handshake) before any
     * request is read; what it returns is the connection's data
     * (ax_http_req_conn_data(); NULL is fine).  It may refuse the
     * connection instead: write an answer (ax_conn_write()) and set
     * *refuse; the server then closes the connection gracefully, reads no
     * request from it and does not count it.  on_conn_close gets the data
     * back when the connection closes or leaves the server
     * (ax_http_upgrade()). */
    void *(*on_conn_open)(ax_conn *c, void *hook_ud, bool *refuse);
    void (*on_conn_close)(ax_conn *c, void *data, void *hook_ud);
    void *hook_ud;
} ax_http_opts;

/* A server on `loop`.  NULL when out of memory (code in *err). */
AX_API ax_http_server *ax_http_server_new(ax_loop *loop, const ax_http_opts *opts, int *err);

/* Accept HTTP connections on `url` (tcp:// or unix://); `lopts` may be
 * NULL.  Returns the listener (closed by ax_http_server_free()), or NULL
 * with the code in *err. */
AX_API ax_listener *ax_http_listen(ax_http_server *s, const char *url, const ax_listen_opts *lopts,
                                   int *err);

/* Accept HTTPS connections (and so wss:// for WebSocket routes) on `url`
 * (tls://host:port, or tcp://), every one TLS with the server context
 * `tls` (ax_tls_server_new(); NULL makes this ax_http_listen()).  The listener takes its own
 * reference: the caller may ax_tls_ctx_free() its one at once.  Handlers
 * see the same requests as over plain TCP; ax_conn_is_tls() on
 * ax_http_req_conn() tells them apart.  Static files are written through
 * TLS instead of sendfile.  Returns the listener or NULL with the code in
 * *err (AX_EINVAL for a missing or client context). */
AX_API ax_listener *ax_http_listen_tls(ax_http_server *s, const char *url,
                                       const ax_listen_opts *lopts, ax_tls_ctx *tls, int *err);

/* Close the listeners and every connection (pending responses are dropped;
 * their abort callbacks run).  Call it before ax_loop_free(). */
AX_API void ax_http_server_free(ax_http_server *s);

/* The server's counters into *out, exact: the bytes its open connections
 * moved up to now are included (and added to ax_http_opts.stats too).  On
 * the server's loop only; other threads read a shared ax_http_opts.stats. */
AX_API void ax_http_server_stats(ax_http_server *s, ax_http_stats *out);

/* Route requests whose method is `method` (NULL: any) and whose path starts
 * with `prefix` at a segment boundary ("/api" matches /api and /api/x, not
 * /apix; "/" matches everything) to `h`.  The longest matching prefix
 * wins, and of routes with the same prefix the one added last (so a route
 * can be laid over a folder served at the same prefix); no match answers
 * 404 (405 when only the method differs).  The strings are copied.
 * Returns 0 or AX_ENOMEM. */
AX_API int ax_http_route(ax_http_server *s, const char *method, const char *prefix,
                         ax_http_handler h, void *ud);

/* Route options (ax_http_route_ex); zero fields take the defaults. */
typedef struct ax_http_route_opts {
    /* Call the handler as soon as the head has arrived; the body then
     * streams to the callback set with ax_http_req_on_body() instead of
     * being collected (uploads of any size, proxies). */
    bool stream_body;
    uint64_t max_body; /* 0: the server's max_body; larger bodies get 413 */
} ax_http_route_opts;

/* ax_http_route() with options; `o` may be NULL. */
AX_API int ax_http_route_ex(ax_http_server *s, const char *method, const char *prefix,
                            ax_http_handler h, void *ud, const ax_http_route_opts *o);

/* ax_http_serve_dir() flags */
#define AX_HTTP_DIR_LIST 0x1u /* list directories without an index.html */

/* Serve the files under `root` for GET and HEAD below `prefix`: sendfile,
 * Content-Type from the file name, ETag and Last-Modified with 304, single
 * Range (206, 416) and multiple ranges (multipart/byteranges), index.html,
 * optional listings.  Paths that would leave `root` (.., encoded dots,
 * symlinks pointing outside) get 403 or 404.  Returns 0, or a negative
 * code when `root` cannot be opened. */
AX_API int ax_http_serve_dir(ax_http_server *s, const char *prefix, const char *root,
                             unsigned flags);

/* ---- the request ------------------------------------------------------- */

/* Method, request-target (as sent), path (target up to '?') and query
 * (after '?', length 0 when none).  Not NUL-terminated: *len gets the
 * length.  Valid during the handler call only. */
AX_API const char *ax_http_req_method(const ax_http_req *r, size_t *len);
AX_API const char *ax_http_req_target(const ax_http_req *r, size_t *len);
AX_API const char *ax_http_req_path(const ax_http_req *r, size_t *len);
AX_API const char *ax_http_req_query(const ax_http_req *r, size_t *len);
/* True when the method is exactly `m` ("GET"). */
AX_API bool ax_http_req_is(const ax_http_req *r, const char *m);
/* 0 for HTTP/1.0, 1 for HTTP/1.1. */
AX_API int ax_http_req_minor(const ax_http_req *r);
/* The first field named `name` (case-insensitive), or NULL. */
AX_API const char *ax_http_req_header(const ax_http_req *r, const char *name, size_t *len);
/* Number of fields, and field `i` (its name in *name, *name_len). */
AX_API size_t ax_http_req_header_count(const ax_http_req *r);
AX_API const char *ax_http_req_header_at(const ax_http_req *r, size_t i, const char **name,
                                         size_t *name_len, size_t *len);
/* The decoded body (Content-Length or chunked); *len 0 when none. */
AX_API const char *ax_http_req_body(const ax_http_req *r, size_t *len);
/* The connection the request came on. */
AX_API ax_conn *ax_http_req_conn(const ax_http_req *r);
/* What ax_http_opts.on_conn_open returned for that connection (or NULL). */
AX_API void *ax_http_req_conn_data(const ax_http_req *r);

/* ---- streamed request bodies (routes with stream_body) ----------------- */

/* Body bytes as they arrive, decoded (chunked or Content-Length), pointing
 * into the connection's input: valid during the call.  `len` 0 (data NULL)
 * marks the end of the body; nothing follows it.  The request's fields
 * stay readable until the response ends.  The handler may answer at any
 * time, before or after the end; an answer before the end makes the server
 * read the rest of the body and drop it, then serve the next request. */
typedef void (*ax_http_body_cb)(ax_http_req *r, const char *data, size_t len, void *ud);
/* Set the body callback, in the handler (no callback: the body is read and
 * dropped). */
AX_API void ax_http_req_on_body(ax_http_req *r, ax_http_body_cb cb, void *ud);
/* Backpressure: stop reading the body (e.g. while the place it goes is
 * full) and start again.  While paused the body timeout does not run. */
AX_API void ax_http_req_pause_body(ax_http_req *r);
AX_API void ax_http_req_resume_body(ax_http_req *r);

/* ---- the response ------------------------------------------------------ */

/* Add a response field before ax_http_start() (Date, Server,
 * Content-Length, Transfer-Encoding and Connection are the server's).
 * Returns 0, AX_EINVAL (CR or LF in it, or already started) or AX_ENOMEM. */
AX_API int ax_http_add_header(ax_http_req *r, const char *name, const char *value);

/* Send the status line and fields.  `content_length` >= 0 announces the
 * body size; -1 streams it chunked (HTTP/1.0: until the close).  For HEAD
 * requests the body that follows is not sent.  Returns 0 or a negative
 * code (AX_EINVAL when already started). */
AX_API int ax_http_start(ax_http_req *r, int status, int64_t content_length);

/* Send body bytes (copied).  Returns 0, 1 when the connection's queue is
 * above its high watermark (wait for the drain callback), or a negative
 * code. */
AX_API int ax_http_write(ax_http_req *r, const void *data, size_t len);

/* Send `len` bytes of slice `sl` from `off` without copying them (the
 * chunk framing around them is small copies): a body encoded once can go
 * to many clients, as Server-Sent Events do.  Same returns as
 * ax_http_write(). */
AX_API int ax_http_write_slice(ax_http_req *r, ax_slice *sl, size_t off, size_t len);

/* Finish the response (the final chunk when chunked).  After it, `r` is
 * gone; the connection reads the next request or closes. */
AX_API int ax_http_end(ax_http_req *r);

/* Everything at once: Content-Type (NULL: none), then start, write, end. */
AX_API int ax_http_respond(ax_http_req *r, int status, const char *content_type, const void *body,
                           size_t len);

/* Close the connection after this response (Connection: close).  Before
 * ax_http_start(). */
AX_API void ax_http_set_close(ax_http_req *r);

/* `cb` runs when a streamed response may write again after
 * ax_http_write() returned 1. */
AX_API void ax_http_on_drain(ax_http_req *r, void (*cb)(ax_http_req *r, void *ud), void *ud);
/* `cb` runs if the connection closes before ax_http_end(); `r` is gone
 * after it returns.  While a response is pending the connection does not
 * read (pipelined requests wait in the kernel), so a peer that went away
 * is noticed when a write fails: long-lived streams should write now and
 * then. */
AX_API void ax_http_on_abort(ax_http_req *r, void (*cb)(ax_http_req *r, void *ud), void *ud);

/* Protocol upgrade (WebSocket): only inside the handler, before any
 * response.  `head` (the whole 101 response, copied) is sent; when the
 * handler returns the connection leaves the server and belongs to `cbs`
 * with user data `ud`: cbs->on_open runs at once, then cbs->on_data with
 * the bytes that followed the request, then the connection's callbacks as
 * usual.  `r` is gone after the handler returns.  Returns 0 or AX_EINVAL. */
AX_API int ax_http_upgrade(ax_http_req *r, const void *head, size_t len, const ax_conn_cbs *cbs,
                           void *ud);

/* The reason phrase for a status ("Not Found"); "Unknown" when unknown. */
AX_API const char *ax_http_status_text(int status);

#ifdef __cplusplus
}
#endif
#endif
