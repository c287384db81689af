/* server_types.h: the HTTP server's state and a connection's request,
 * shared by the files of the server: server.c (connections, requests,
 * responses, routing, timeouts), server_log.c (the access log) and
 * server_req.c (the request accessors).  Nothing here is installed. */
#ifndef AXON_HTTP_SERVER_TYPES_H
#define AXON_HTTP_SERVER_TYPES_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <axon/http.h>
#include <axon/timer.h>

#include "core/buf.h"
#include "http_parser.h"
#include "server_internal.h"

#define MAX_HEADERS 100
#define OUT_CAP (16 * 1024)

enum { ST_IDLE, ST_HEAD, ST_BODY, ST_BUSY, ST_CLOSING, ST_UPGRADED };

enum {
    F_KEEP = 1u << 0,       /* the request allows another one after it */
    F_CLOSE = 1u << 1,      /* close after this response */
    F_STARTED = 1u << 2,    /* status line sent */
    F_CHUNKED = 1u << 3,    /* body in chunked coding */
    F_NO_BODY = 1u << 4,    /* HEAD, 204, 304: body bytes are not sent */
    F_IN_HANDLER = 1u << 5, /* the handler is running (request storage stays) */
    F_HEAD_REQ = 1u << 6,   /* the method is HEAD */
    F_BODY_OPEN = 1u << 7,  /* streamed body: bytes still to come (ax_http_req_on_body) */
    F_BODY_PAUSED = 1u << 8 /* streamed body: the application paused it */
};

typedef struct route {
    char *method; /* NULL: any */
    char *prefix;
    size_t plen;
    size_t mlen; /* strlen(method) */
    ax_http_handler h;
    void *ud;
    bool stream;       /* the handler runs at the head; the body streams */
    uint64_t max_body; /* 0: the server's */
} route;

struct ax_http_server {
    ax_loop *loop;
    ax_http_opts o;
    ax_http_limits lim, lim_body;
    ax_listener **ls;
    int nls;
    route *routes;
    int nroutes;
    void **dirs;
    int ndirs;
    ax_timer *sweep;
    ax_http_req *conns; /* every open connection, for timeouts and free */
    ax_http_stats st;   /* closed connections' bytes and credited live ones */
    ax_http_req *batch_owner;
    size_t out_len;
    uint64_t date_ms; /* loop time of the last clock check */
    time_t date_sec;
    char date[AX__HTTP_DATE_LEN + 1];
    /* "HTTP/1.1 200 OK\r\nServer: NAME\r\nDate: DATE\r\n", rebuilt when
     * the second changes: every head after its status line starts with
     * the part from fixed_at (200 heads with all of it) */
    char fixed[136]; /* 15 + 10 + 64 (name) + 8 + 29 + 2 at most */
    size_t fixed_len;
    ax_http_head head; /* the head being parsed (one on_data at a time) */
    ax_http_header hdrs[MAX_HEADERS];
    char out[OUT_CAP];
};

struct ax_http_req {
    ax_http_server *srv;
    ax_conn *conn;
    ax_http_req *prev, *next;
    uint64_t deadline; /* loop ms; 0: none */
    uint8_t state;
    uint8_t minor;   /* HTTP/1.x of the request */
    bool file_drain; /* a file response is queued: it ends on drain */
    unsigned flags;
    int status;
    ax_http_head *head; /* valid during the handler */
    const char *path;
    size_t path_len;
    void *hcopy; /* head copied for requests with a body */
    ax_http_body bd;
    ax__buf body;
    ax__buf xh;    /* extra response fields */
    uint64_t sent; /* body bytes, for the access log */
    char *logreq;  /* request line for the access log */
    ax_file *file; /* a file response being queued */
    void (*drain_cb)(ax_http_req *r, void *ud);
    void *drain_ud;
    void (*abort_cb)(ax_http_req *r, void *ud);
    void *abort_ud;
    ax_http_body_cb body_cb; /* streamed body */
    void *body_ud;
    uint64_t body_seen, body_max;
    const ax_conn_cbs *up_cbs; /* ST_UPGRADED: the protocol taking over */
    void *up_ud;
    uint64_t acct_in, acct_out; /* connection bytes already in the stats */
    void *conn_data;            /* from opts.on_conn_open */
};

/* The server's own counters have one writer, its loop, and are read by
 * any thread: relaxed stores, no locked add.  A shared opts.stats may be
 * written by the servers of several loops: an atomic add. */
#define STAT_ADD(s, field, n)                                                                      \
    do {                                                                                           \
        uint64_t *f_ = &(s)->st.field;                                                             \
        __atomic_store_n(f_, __atomic_load_n(f_, __ATOMIC_RELAXED) + (uint64_t)(n),                \
                         __ATOMIC_RELAXED);                                                        \
        if ((s)->o.stats)                                                                          \
            __atomic_fetch_add(&(s)->o.stats->field, (uint64_t)(n), __ATOMIC_RELAXED);             \
    } while (0)
#define STAT_SUB(s, field, n) STAT_ADD(s, field, -(uint64_t)(n))

/* server_log.c: the access log */
/* What the log line needs from the head, which is gone when the response
 * ends. */
void ax__http_log_snapshot(ax_http_req *r);
/* The response's line in the access log (opts.access_log), if any. */
void ax__http_log_line(ax_http_req *r);

#endif
