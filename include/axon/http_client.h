/* axon/http_client.h: an asynchronous HTTP/1.1 client on the loop.
 *
 * A client holds the settings and a pool of idle keep-alive connections;
 * each request is a fetch, answered through callbacks:
 *
 *     static int on_body(ax_http_fetch *f, const char *p, size_t n, void *ud) {
 *         fwrite(p, 1, n, stdout);
 *         return 0;
 *     }
 *     static void on_done(ax_http_fetch *f, int err, void *ud) {
 *         if (err) fprintf(stderr, "%s\n", ax_strerror(err));
 *     }
 *     static const ax_http_fetch_cbs cbs = {.on_body = on_body, .on_done = on_done};
 *
 *     ax_http_client *hc = ax_http_client_new(loop, NULL, &err);
 *     ax_http_request rq = {.url = "https://example.org/"};
 *     ax_http_fetch_start(hc, &rq, &cbs, NULL, &err);
 *     ax_loop_run(loop);
 *     ax_http_client_free(hc);
 *
 * URLs are http:// and https:// (TLS through tls.h, verification on by
 * default); host names are resolved on the loop (dns.h).  Bodies arrive by
 * Content-Length, chunked, or until the server closes; HEAD, 1xx, 204 and
 * 304 responses have none.  Interim 1xx responses are skipped.
 *
 * Connections: one request at a time per connection (no pipelining).  A
 * response that leaves the connection reusable returns it to the pool,
 * keyed by scheme, host and port; the next fetch to the same origin takes
 * it instead of connecting.  A request on a reused connection that the
 * server had closed meanwhile is sent again once on a new connection when
 * its method is idempotent (RFC 9110 9.2.2) and no response byte came.
 *
 * Callbacks run on the loop's thread, never from inside the call that
 * caused them: on_trace any number of times, on_head once (the final
 * response, after redirects), on_body for each piece of the body, then
 * on_done exactly once, last.  A fetch whose start failed gets none. */
#ifndef AXON_HTTP_CLIENT_H
#define AXON_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "conn.h"
#include "loop.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_http_client ax_http_client;
typedef struct ax_http_fetch ax_http_fetch;

/* Client settings; zero fields take the defaults shown. */
typedef struct ax_http_client_opts {
    uint32_t connect_timeout_ms; /* 30 s: resolving, connecting and the TLS handshake */
    uint32_t read_timeout_ms;    /* 60 s: longest silence while a response is awaited */
    uint32_t timeout_ms;         /* 0 (none): a whole fetch, redirects included */
    uint32_t idle_timeout_ms;    /* 30 s: how long an unused pooled connection is kept */
    unsigned max_idle;           /* 16: pooled connections in all; the oldest goes first */
    unsigned max_idle_per_host;  /* 4: pooled connections per origin */
    uint64_t max_body;           /* 0 (none): larger bodies fail with AX_ETOOBIG */
    size_t max_header_bytes;     /* 64 KiB: a larger response head is AX_EHTTP */
    /* https:// connections (tls.h; the client takes its own reference);
     * NULL: the system CAs, verification on, the URL's host as SNI. */
    ax_tls_ctx *tls;
    const char *user_agent; /* "axon/VERSION"; "" sends none.  Copied. */
} ax_http_client_opts;

/* ax_http_request.flags */
#define AX_HTTP_FOLLOW 0x1u       /* follow redirects (max_redirects of them) */
#define AX_HTTP_CHUNKED_BODY 0x2u /* send the body chunked instead of with Content-Length */
#define AX_HTTP_FRESH_CONN 0x4u   /* never take a pooled connection for this fetch */
#define AX_HTTP_NO_KEEPALIVE 0x8u /* send Connection: close; do not pool afterwards */
/* Send Expect: 100-continue with a body and hold the body back until the
 * server's 100 Continue, or for 1 s when it says nothing (RFC 9110
 * 10.1.1): a server that refuses the request answers before the body is
 * sent.  The connection is then closed, not pooled. */
#define AX_HTTP_EXPECT_100 0x10u

/* A request body made while it is sent (ax_http_request.body_reader):
 * write up to `cap` bytes into `buf` and return how many (> 0); 0 at the
 * end of the body; AX_EAGAIN when nothing is ready yet (then call
 * ax_http_fetch_body_ready() once there is); another negative code fails
 * the fetch with it.  Called from the loop whenever the connection can
 * take more; `ud` is the fetch's. */
typedef long (*ax_http_body_reader)(ax_http_fetch *f, char *buf, size_t cap, void *ud);

/* One request.  Everything is copied by ax_http_fetch_start(). */
typedef struct ax_http_request {
    const char *url;    /* http://host[:port][/path][?query]; a #fragment is dropped */
    const char *method; /* NULL: "GET" */
    /* Extra fields as "Name: value" lines (no CR or LF).  A Host,
     * User-Agent or Accept given here replaces the client's own;
     * Content-Length, Transfer-Encoding and Connection are the client's
     * and refused (AX_EINVAL). */
    const char *const *headers;
    size_t num_headers;
    const void *body; /* request body; NULL with body_len 0: none */
    size_t body_len;
    /* Instead of `body`: a body streamed from this reader, chunked, or
     * with Content-Length: body_len when body_len is given (the reader
     * must then produce exactly that many bytes).  A streamed body is
     * never sent twice: 307 and 308 redirects are not followed (301 and
     * 302 only when they turn a POST into a GET), and a stale pooled
     * connection is retried only if the reader was not called yet.  The
     * read timeout also bounds how long the reader may keep answering
     * AX_EAGAIN. */
    ax_http_body_reader body_reader;
    unsigned flags;      /* AX_HTTP_FOLLOW, ... */
    int max_redirects;   /* with AX_HTTP_FOLLOW; 0: 10, -1: none followed */
    uint32_t timeout_ms; /* 0: the client's timeout_ms */
    uint64_t max_body;   /* 0: the client's max_body */
} ax_http_request;

/* What on_trace reports. */
enum ax_http_trace {
    AX_HTTP_TRACE_INFO,     /* a line about connections: "connected to ...", "reusing ..." */
    AX_HTTP_TRACE_REQUEST,  /* a request head as sent, CRLFs included */
    AX_HTTP_TRACE_RESPONSE, /* a response head as received (interim and redirects too) */
};

typedef struct ax_http_fetch_cbs {
    /* Optional: what goes over the wire, for -v style output.  `text` is
     * valid during the call only. */
    void (*on_trace)(ax_http_fetch *f, enum ax_http_trace what, const char *text, size_t len,
                     void *ud);
    /* Optional: the final response head arrived; the ax_http_fetch_status /
     * _header accessors work from now until on_done returns. */
    void (*on_head)(ax_http_fetch *f, int status, void *ud);
    /* Optional (NULL: the body is discarded): a piece of the decoded body,
     * valid during the call only.  Return 0 to go on, or a negative code
     * to stop the fetch, which then ends with on_done(that code).  Call
     * ax_http_fetch_pause() here to stop reading for a while. */
    int (*on_body)(ax_http_fetch *f, const char *data, size_t len, void *ud);
    /* Always last: `err` is 0 when the whole response arrived, else why
     * not (AX_ECONNREFUSED, AX_ENOHOST, AX_ETIMEDOUT, AX_ECERT, AX_EHTTP,
     * AX_EREDIRECTS, AX_ETOOBIG, AX_EOF (closed too early), AX_ECANCELED
     * ...).  ax_http_fetch_error_detail() says more.  The fetch is freed
     * when on_done returns. */
    void (*on_done)(ax_http_fetch *f, int err, void *ud);
} ax_http_fetch_cbs;

/* A client on `loop`.  NULL when out of memory (code in *err). */
AX_API ax_http_client *ax_http_client_new(ax_loop *loop, const ax_http_client_opts *opts, int *err);

/* Cancel every fetch (each gets on_done(AX_ECANCELED), from inside this
 * call), close the pooled connections, free the client.  Call it before
 * ax_loop_free(); not from inside one of its callbacks. */
AX_API void ax_http_client_free(ax_http_client *hc);

/* Start a fetch of `req` (copied, as is the table `cbs`, which may be
 * NULL); `ud` is passed to every callback.  Returns the fetch, valid until
 * its on_done returns (or ax_http_fetch_cancel()); its callbacks run later
 * from the loop.  NULL with the code in *err when the request is unusable:
 * AX_EURL, AX_ESCHEME (not http/https), AX_EHOST, AX_EPORT, AX_EINVAL (a
 * bad method or field, body and body_reader both given), AX_ENOMEM,
 * AX_ECANCELED (the client is being freed); the callbacks then never
 * run. */
AX_API ax_http_fetch *ax_http_fetch_start(ax_http_client *hc, const ax_http_request *req,
                                          const ax_http_fetch_cbs *cbs, void *ud, int *err);

/* Stop a fetch: no callback runs after this call, the fetch is freed and
 * its connection closed.  Legal inside the fetch's own callbacks. */
AX_API void ax_http_fetch_cancel(ax_http_fetch *f);

/* The body reader has data again after answering AX_EAGAIN: it is called
 * soon from the loop (not from inside this call). */
AX_API void ax_http_fetch_body_ready(ax_http_fetch *f);

/* Stop / restart delivering the body: the connection stops reading, so
 * the server is slowed down by TCP flow control.  The read timeout does
 * not run while paused (the overall timeout does). */
AX_API void ax_http_fetch_pause(ax_http_fetch *f);
AX_API void ax_http_fetch_resume(ax_http_fetch *f);

/* The final response, from on_head until on_done returns.  Status 0 and
 * NULL fields before on_head (a failed fetch may never get one). */
AX_API int ax_http_fetch_status(const ax_http_fetch *f);
/* The first field named `name` (case-insensitive) or NULL; *len gets the
 * length of the value (not NUL-terminated). */
AX_API const char *ax_http_fetch_header(const ax_http_fetch *f, const char *name, size_t *len);
AX_API size_t ax_http_fetch_header_count(const ax_http_fetch *f);
AX_API const char *ax_http_fetch_header_at(const ax_http_fetch *f, size_t i, const char **name,
                                           size_t *name_len, size_t *len);
/* The status line and fields exactly as received, ending in the empty
 * line. */
AX_API const char *ax_http_fetch_raw_head(const ax_http_fetch *f, size_t *len);
/* The URL being fetched: the one asked for, or where redirects led. */
AX_API const char *ax_http_fetch_url(const ax_http_fetch *f);
/* Redirects followed so far. */
AX_API int ax_http_fetch_redirects(const ax_http_fetch *f);
/* True when the current request went on a pooled (reused) connection. */
AX_API bool ax_http_fetch_reused(const ax_http_fetch *f);
/* Why the fetch failed, in more words than ax_strerror(err) ("invalid
 * status line", "certificate verification failed: ...").  NULL when there
 * is nothing to add.  Valid until on_done returns. */
AX_API const char *ax_http_fetch_error_detail(const ax_http_fetch *f);
AX_API void *ax_http_fetch_data(const ax_http_fetch *f);

/* Connections made so far, and pooled connections now idle (for tests and
 * metrics). */
AX_API uint64_t ax_http_client_connects(const ax_http_client *hc);
AX_API unsigned ax_http_client_idle(const ax_http_client *hc);

#ifdef __cplusplus
}
#endif
#endif
