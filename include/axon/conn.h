/* axon/conn.h: stream connections (TCP and Unix sockets) and listeners.
 *
 * A server is a listener plus a table of callbacks:
 *
 *     static size_t on_data(ax_conn *c, const char *data, size_t len) {
 *         if (ax_conn_write(c, data, len) < 0)  // echo
 *             ax_conn_close(c);                 // closing already
 *         return len;                           // consumed everything
 *     }
 *     static const ax_conn_cbs echo = {.on_data = on_data};
 *     ax_listener *l = ax_listen(loop, "tcp://0.0.0.0:7000", &echo, NULL, NULL, &err);
 *
 * Reads land in one buffer per loop; a connection keeps only the bytes its
 * on_data did not consume, so an idle connection costs a small struct.
 * Writes are queued and flushed with writev; a write made when nothing is
 * queued goes straight to the kernel.
 *
 * Lifetime: on_open, then any number of on_data / on_drain / on_end, then
 * exactly one on_close.  ax_conn_close() is legal inside every callback; the
 * connection's memory is released only after on_close has returned, and no
 * callback fires after on_close.
 *
 * Accepted connections: on_open is the first callback, with the listener's
 * user data; on_close runs only for a connection whose on_open ran, so a
 * server that sets its own user data in on_open (or NULL before closing
 * there) sees only its own in every later callback.  One that fails before
 * it opens (its TLS handshake) is freed without a callback of its own; the
 * listener's ax_listen_opts.on_fail hears of it.  Clients: on_close also
 * runs when the connection never opened (connect or handshake failed). */
#ifndef AXON_CONN_H
#define AXON_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "addr.h"
#include "loop.h"
#include "slice.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_conn ax_conn;
typedef struct ax_listener ax_listener;

typedef struct ax_conn_cbs {
    /* Connected (client) or accepted (server; after the TLS handshake).
     * For clients whose connect fails, on_open does not run; on_close runs
     * with the error.  For accepted ones that fail first, neither runs. */
    void (*on_open)(ax_conn *c);
    /* Bytes arrived.  `data` is valid only during the call.  Return how many
     * bytes were consumed; the rest is kept and offered again, with more,
     * next time (bounded by max_input).  NULL: data is discarded. */
    size_t (*on_data)(ax_conn *c, const char *data, size_t len);
    /* The write queue fell to the low watermark after having passed the
     * high one (see ax_conn_opts). */
    void (*on_drain)(ax_conn *c);
    /* The peer shut down its writing side.  When set, the connection stays
     * open for writing until the application closes or shuts it down; when
     * NULL, the connection is closed gracefully (queued bytes are flushed). */
    void (*on_end)(ax_conn *c);
    /* Always the last callback.  `reason` is 0 after ax_conn_close(), AX_EOF
     * when the peer closed, or the error (AX_ECONNRESET, AX_ETIMEDOUT,
     * AX_EOUTPUTCAP, AX_EIDLE, AX_ECONNREFUSED ...). */
    void (*on_close)(ax_conn *c, int reason);
} ax_conn_cbs;

/* Per-connection settings; zero fields take the defaults shown. */
typedef struct ax_conn_opts {
    size_t high_watermark;       /* 64 KiB: ax_conn_write returns 1 above it */
    size_t low_watermark;        /* 16 KiB: on_drain once back down to it */
    size_t output_cap;           /* 8 MiB: more queued than this closes with AX_EOUTPUTCAP */
    size_t max_input;            /* 1 MiB: unconsumed input above this closes with AX_EMSGSIZE */
    uint32_t idle_timeout_ms;    /* 0: none; no bytes either way for this long: AX_EIDLE */
    uint32_t connect_timeout_ms; /* 0: 30 s; clients only: AX_ETIMEDOUT */
    uint32_t linger_ms;          /* 0: 10 s; graceful close gives up flushing after this */
    unsigned flags;              /* AX_CONN_DELAY: keep Nagle's algorithm on */
    /* TLS over this connection (tls.h); NULL: plain, except for tls:// URLs,
     * where clients then use the default verifying context.  Listeners and
     * connections take their own reference. */
    struct ax_tls_ctx *tls;
} ax_conn_opts;

#define AX_CONN_DELAY 0x1u

/* Listener settings. */
typedef struct ax_listen_opts {
    int backlog;        /* 0: 4096 */
    bool reuse_port;    /* SO_REUSEPORT: several loops (threads) share one port */
    bool ipv6_only;     /* for [::] listeners */
    unsigned unix_mode; /* 0: leave the socket file's mode as umask makes it */
    /* Descriptors kept for the connections already open: while fewer
     * would be left (RLIMIT_NOFILE), a new connection is accepted and
     * closed at once, and the process logs once that it refuses them and
     * once that it accepts again (5 s after the last refusal).  0: 1/32 of the limit, from 8 to 64;
     * -1: none (closing at EMFILE only). */
    int fd_reserve;
    /* An accepted connection failed before it opened (TLS handshake):
     * `c` (user data: the listener's, ax_conn_error_detail() says more)
     * is valid during the call only, and none of its callbacks ran or will
     * run.  NULL: nothing is told. */
    void (*on_fail)(ax_conn *c, int reason);
} ax_listen_opts;

/* Listen on `url` (tcp:// or unix://).  Accepted connections use `cbs`,
 * `copts` (may be NULL) and start with user data `ud`.  NULL on failure,
 * with the code in *err.  A stale Unix socket file nobody listens on is
 * replaced; a live one gives AX_EADDRINUSE. */
AX_API ax_listener *ax_listen(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                              const ax_conn_opts *copts, void *ud, int *err) AX_MUST_CHECK;
AX_API ax_listener *ax_listen_ex(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                                 const ax_conn_opts *copts, const ax_listen_opts *lopts, void *ud,
                                 int *err) AX_MUST_CHECK;

/* The bound address (with the real port when 0 was asked).  Its scheme
 * is the socket's: tcp:// for a TLS listener too. */
AX_API const ax_addr *ax_listener_addr(const ax_listener *l);
/* The URL a client reaches the listener at, as ax_addr_format() writes it
 * (AX_ADDR_STRLEN is enough) but with the listener's own scheme: tls://
 * for a TLS listener.  Returns buf. */
AX_API char *ax_listener_url(const ax_listener *l, char *buf, size_t len);
/* Stop accepting and close; connections already accepted stay open.  A
 * Unix socket file the listener created is removed. */
AX_API void ax_listener_close(ax_listener *l);
/* Connections refused because the process ran out of file descriptors
 * (or would have left fewer than ax_listen_opts.fd_reserve). */
AX_API uint64_t ax_listener_emfile_count(const ax_listener *l);

/* Connect to `url` (tcp:// or unix://).  Returns the connection at once;
 * on_open runs when it is established, or on_close with the error (never
 * from inside this call).  NULL if the URL is bad or no socket could be
 * made, with the code in *err.  A host name is resolved on the loop first
 * (dns.h): resolution failures reach on_close as AX_ENOHOST,
 * AX_EDNSTIMEDOUT or AX_EDNS, and ax_conn_fd() is -1 until a socket exists;
 * writes made meanwhile are queued. */
AX_API ax_conn *ax_connect(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                           const ax_conn_opts *opts, void *ud, int *err) AX_MUST_CHECK;

/* Queue a copy of `data`.  Returns 0, 1 when the queue is now above the
 * high watermark (wait for on_drain), or a negative code (AX_ECLOSED after
 * close or shutdown; AX_EOUTPUTCAP when the cap is passed, in which case
 * the connection is being closed). */
AX_API int ax_conn_write(ax_conn *c, const void *data, size_t len) AX_MUST_CHECK;
/* Queue `len` bytes of slice `s` from `off` without copying; takes its own
 * reference.  Same returns as ax_conn_write. */
AX_API int ax_conn_write_slice(ax_conn *c, ax_slice *s, size_t off, size_t len) AX_MUST_CHECK;
/* Queue `n` whole slices in order without copying (one gather write when
 * the socket takes them at once): a frame shared by many recipients.  Same
 * returns as ax_conn_write. */
AX_API int ax_conn_write_slices(ax_conn *c, ax_slice *const *s, int n) AX_MUST_CHECK;
/* Queue several buffers at once (one writev when the queue is empty). */
struct iovec;
AX_API int ax_conn_writev(ax_conn *c, const struct iovec *iov, int n) AX_MUST_CHECK;
/* Queue `len` bytes of file `f` from offset `off`, in order with the other
 * writes; takes its own reference.  The connection reads the file as it
 * sends: sendfile() on a plain socket, a bounded piece at a time read and
 * encrypted under TLS (written before a TLS connection is open, the range
 * is read at once, as ax_conn_write copies).  File bytes count in
 * ax_conn_queued() and against the watermarks (a large file returns 1:
 * on_drain says when it has gone), not against the output cap, which
 * bounds memory.  A file that ends before off + len when its turn comes
 * aborts the connection (on_close gets AX_EIO).  Same returns as
 * ax_conn_write. */
AX_API int ax_conn_write_file(ax_conn *c, ax_file *f, uint64_t off, uint64_t len) AX_MUST_CHECK;
/* Between ax_conn_cork() and ax_conn_uncork(), writes are only queued;
 * uncork sends them together, so a small head and the body after it
 * (a file) can share packets.  Cork for the length of one callback.
 * Writes while corked return 0 or a negative code, never 1: uncork judges
 * the high watermark once it has sent, and returns as ax_conn_write (1:
 * still above it, on_drain follows). */
AX_API void ax_conn_cork(ax_conn *c);
AX_API int ax_conn_uncork(ax_conn *c) AX_MUST_CHECK;

/* Bytes queued and not yet taken by the kernel. */
AX_API size_t ax_conn_queued(const ax_conn *c);

/* Shut down the writing side once the queue is flushed (TCP FIN); reading
 * goes on, so the two directions are independent.  Later writes fail. */
AX_API int ax_conn_shutdown(ax_conn *c);

/* Graceful close: stop reading, flush what is queued, send FIN, then read
 * and discard until the peer's FIN (so the kernel never answers late input
 * with an RST that could destroy the last bytes in flight), close, then
 * on_close(c, 0).  Flushing and lingering each give up after linger_ms
 * (then the connection is reset).  When the peer has already finished,
 * the close is immediate.  Idempotent; legal inside every callback. */
AX_API void ax_conn_close(ax_conn *c);
/* Close now, dropping queued bytes (TCP RST); on_close gets `reason`. */
AX_API void ax_conn_abort(ax_conn *c, int reason);

/* Stop / restart calling on_data; unread bytes wait in the kernel, which
 * slows the peer down (TCP flow control). */
AX_API void ax_conn_pause(ax_conn *c);
AX_API void ax_conn_resume(ax_conn *c);
AX_API bool ax_conn_paused(const ax_conn *c);

/* Change the idle timeout (0 disables). */
AX_API void ax_conn_set_idle_timeout(ax_conn *c, uint32_t ms);
/* Change the watermarks and the output cap (0 keeps the current value). */
AX_API void ax_conn_set_limits(ax_conn *c, size_t low, size_t high, size_t cap);

/* Call fn for every connection of `loop` with the callback table `cbs`
 * whose on_open has run and on_close has not (a server finds its
 * connections without a list of its own).  fn may close or abort the
 * connection it is given, not another. */
AX_API void ax_loop_each_conn(ax_loop *loop, const ax_conn_cbs *cbs,
                              void (*fn)(ax_conn *c, void *ud), void *ud);
AX_API void ax_conn_set_data(ax_conn *c, void *ud);
AX_API void *ax_conn_data(const ax_conn *c);
/* Replace the callback table (a protocol upgrade hands the connection to
 * another protocol's callbacks).  `cbs` must outlive the connection. */
AX_API void ax_conn_set_cbs(ax_conn *c, const ax_conn_cbs *cbs);
AX_API ax_loop *ax_conn_loop(const ax_conn *c);
AX_API int ax_conn_fd(const ax_conn *c);
/* Peer / local address, read from the kernel into *out.  Returns 0,
 * AX_ECLOSED when the connection has no socket (closed, or a client still
 * resolving its host name), or the kernel's error (AX_ENOTCONN ...). */
AX_API int ax_conn_peer(const ax_conn *c, ax_addr *out);
AX_API int ax_conn_local(const ax_conn *c, ax_addr *out);
/* Listener that accepted c, NULL for clients. */
AX_API ax_listener *ax_conn_listener(const ax_conn *c);
/* Bytes read and written so far. */
AX_API uint64_t ax_conn_bytes_in(const ax_conn *c);
AX_API uint64_t ax_conn_bytes_out(const ax_conn *c);

#ifdef __cplusplus
}
#endif
#endif
