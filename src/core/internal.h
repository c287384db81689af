/* internal.h: structures shared by the core's files.  Nothing here is
 * installed; the public API keeps every handle opaque. */
#ifndef AXON_CORE_INTERNAL_H
#define AXON_CORE_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <axon/axon.h>

#define AX__READ_BUF (64 * 1024)
#define AX__NODE_CLASSES 9 /* write-queue node sizes: 256 B .. 64 KiB */

/* Interest and readiness bits, backend-neutral. */
#define AX__IN 0x1u
#define AX__OUT 0x2u
#define AX__ERR 0x4u
#define AX__HUP 0x8u
#define AX__EDGE 0x10u  /* edge-triggered, where the backend has it */
#define AX__RDHUP 0x20u /* the peer shut down writing (edge mode reports it) */

typedef struct ax__io ax__io;
typedef void (*ax__io_cb)(ax_loop *loop, ax__io *io, unsigned revents);

/* What every fd-owning handle embeds.  fd is -1 once closed, which is how a
 * stale readiness event from the same batch is recognised and dropped. */
struct ax__io {
    int fd;
    /* current interest (AX__*: 6 bits) and the poll backend's index in its
     * arrays (-1: none), in 4 bytes: 8 bytes less in every handle */
    unsigned events : 8;
    int slot : 24;
    ax__io_cb cb;
};
#define AX__IO_SLOTS (1 << 23) /* what `slot` holds: the poll backend's bound */

/* An operation in the io_uring backend's ring, named by its address.  cb
 * runs for each completion: res is the byte count or -errno, buf the
 * received bytes (lent for the call only), more whether further
 * completions of the same operation follow. */
typedef struct ax__uop ax__uop;
struct ax__uop {
    void (*cb)(ax_loop *loop, ax__uop *op, int res, char *buf, bool more);
};

typedef struct ax__backend {
    const char *name;
    bool edge; /* honours AX__EDGE */
    int (*init)(ax_loop *loop);
    void (*destroy)(ax_loop *loop);
    int (*add)(ax_loop *loop, ax__io *io, unsigned events);
    int (*mod)(ax_loop *loop, ax__io *io, unsigned events);
    void (*del)(ax_loop *loop, ax__io *io);
    /* Wait and call ax__io_dispatch for each ready io.  Returns the number
     * dispatched or a negative code. */
    int (*wait)(ax_loop *loop, int timeout_ms);
    /* Stream connections do their I/O through ax__ring_* (io_uring: the
     * driver in conn_ring.c) and use add/mod/del only while connecting. */
    bool ring;
} ax__backend;

extern const ax__backend ax__backend_epoll;
/* backend_epoll.c, also the readiness half of the uring backend: the
 * add/mod/del of a backend whose data begins with its epoll fd (an int),
 * and a wait of up to timeout_ms for the set `epfd`, dispatching what is
 * ready (returns the count or a code). */
int ax__epoll_add(ax_loop *loop, ax__io *io, unsigned events);
int ax__epoll_mod(ax_loop *loop, ax__io *io, unsigned events);
void ax__epoll_del(ax_loop *loop, ax__io *io);
int ax__epoll_poll(ax_loop *loop, int epfd, int timeout_ms);
extern const ax__backend ax__backend_poll;
/* The backend a loop gets when none is asked for (io_uring aside), and the
 * one a failed io_uring falls back to. */
#ifdef _WIN32
extern const ax__backend ax__backend_afd; /* src/core/win/backend_afd.c */
#define AX__BACKEND_DEFAULT ax__backend_afd
#else
#define AX__BACKEND_DEFAULT ax__backend_epoll
#endif
#ifdef AXON_HAVE_URING
extern const ax__backend ax__backend_uring;
#endif

/* backend_uring.c: stream I/O in the ring (loop->backend->ring only).
 * A multishot recv completes again and again until a completion comes
 * without `more`; a single one receives one buffer.
 * send takes the bytes as they are at submission; they must stay put
 * until its completion.  cancel ends an operation early. */
int ax__ring_recv(ax_loop *loop, ax__uop *op, int fd, bool multishot);
int ax__ring_send(ax_loop *loop, ax__uop *op, int fd, const struct iovec *iov, int n);
void ax__ring_cancel(ax_loop *loop, ax__uop *op);
/* fd, used with ax__ring_*, is about to be closed. */
void ax__ring_forget(ax_loop *loop, int fd);
/* Have ax__conn_ring_later(c) run before the loop's next wait (once per
 * call).  0 or AX_ENOMEM. */
int ax__ring_later(ax_loop *loop, ax_conn *c);
/* conn_ring.c: the loop is about to wait: send c's queue. */
void ax__conn_ring_later(ax_conn *c);

typedef struct ax__link {
    struct ax__link *prev, *next;
} ax__link;

enum { AX__H_CONN = 1, AX__H_LISTENER, AX__H_UDP, AX__H_KINDS = AX__H_UDP };

/* The head of every handle that owns an fd: its place in its loop's list
 * of handles of its kind (the list says the kind: no field for it, 8
 * bytes less in every connection). */
typedef struct ax__handle {
    ax__link link;
} ax__handle;

void ax__handle_add(ax_loop *loop, ax__handle *h, int kind);
void ax__handle_remove(ax_loop *loop, ax__handle *h);

/* Work posted from another thread. */
typedef struct ax__post {
    struct ax__post *next;
    void (*fn)(ax_loop *loop, void *arg);
    void (*drop)(void *arg); /* instead of fn when the loop is freed first */
    void *arg;
} ax__post;

/* Something to do after the I/O of this iteration: close callbacks, UDP
 * batch flushes, deferred frees.  An intrusive singly linked list; `fn` is
 * set while it is queued, NULL otherwise (16 bytes: every connection
 * embeds one). */
typedef struct ax__deferred {
    struct ax__deferred *next;
    void (*fn)(ax_loop *loop, struct ax__deferred *d);
} ax__deferred;

static inline bool ax__deferred_queued(const ax__deferred *d)
{
    return d->fn != NULL;
}

/* A connection's watermarks, output cap and input bound.  Few distinct
 * sets exist (one per kind of server or client), so a loop keeps each
 * once and a connection names its own in four bits of its flags. */
typedef struct ax__conn_lims {
    uint32_t low, high, cap, max_input;
} ax__conn_lims;
#define AX__LIMS 15 /* sets a loop keeps; a connection with another has its own in x */

struct ax_loop {
    const ax__backend *backend;
    void *backend_data;
    uint64_t now;
    bool stop;
    int alive; /* open handles + active timers */
    void *data;

    /* timers: a binary min-heap of pointers */
    struct ax_timer **heap;
    unsigned heap_len, heap_cap;
    uint64_t timer_seq; /* ties broken by start order */

    ax__deferred *deferred;
    ax__deferred **deferred_tail;
    /* work for the next iteration (a read budget ran out): the wait that
     * comes first does not block */
    ax__deferred *later;
    ax__deferred **later_tail;

    /* cross-thread posts: a lock-free MPSC stack (producers push with a
     * CAS, the loop takes the whole stack with one exchange) + an eventfd */
    ax__post *posts;
    ax__io wake;
    int wake_wfd; /* write side (same as wake.fd for eventfd) */

    /* the per-loop read buffer every stream read lands in */
    char *rbuf;
    /* write-queue nodes kept for reuse, per size class (conn.c) */
    void *node_cache[AX__NODE_CLASSES];
    uint32_t node_cache_bytes[AX__NODE_CLASSES];
    /* the connections' limits (conn.c) */
    ax__conn_lims lims[AX__LIMS];
    unsigned nlims;
    /* UDP receive batch, allocated on first use */
    void *udp_batch;

    /* signal handling */
    void (*signal_cb)(ax_loop *loop, int signo);

    /* every open connection, listener and UDP socket, for ax_loop_free */
    ax__link handles[AX__H_KINDS]; /* by kind (AX__H_* - 1) */
};

/* loop.c */
/* Interrupt the loop's wait from any thread (async-signal-safe). */
void ax__loop_wake(ax_loop *loop);
void ax__io_dispatch(ax_loop *loop, ax__io *io, unsigned revents);
void ax__defer(ax_loop *loop, ax__deferred *d, void (*fn)(ax_loop *, ax__deferred *));
void ax__defer_later(ax_loop *loop, ax__deferred *d, void (*fn)(ax_loop *, ax__deferred *));
int ax__io_start(ax_loop *loop, ax__io *io, int fd, unsigned events, ax__io_cb cb);
int ax__io_set(ax_loop *loop, ax__io *io, unsigned events);
void ax__io_stop(ax_loop *loop, ax__io *io);

/* timer.c */
int ax__timers_next(ax_loop *loop); /* ms until the next timer, -1 if none */
void ax__timers_run(ax_loop *loop);
void ax__timers_free_all(ax_loop *loop);

/* sock.c: socket helpers shared by tcp, unix and udp */
int ax__socket(int family, int type);
int ax__set_nodelay(int fd, bool on);
int ax__err(void); /* -errno */
void ax__make_nonblocking_cloexec(int fd);

/* closing any handle, used by ax_loop_free */
void ax__conn_close_handle(ax__handle *h);
void ax__conn_cache_free(ax_loop *loop);
void ax__listener_close_handle(ax__handle *h);
void ax__listener_settled(ax_listener *l, ax_conn *c, bool opened, int reason);
void ax__udp_close_handle(ax__handle *h);
void ax__udp_batch_free(ax_loop *loop);

/* conn.c: defaults applied to ax_conn_opts, and connection creation */
typedef struct ax__conn_limits {
    uint32_t low, high, cap, max_input;
    uint32_t idle_ms, connect_ms, linger_ms;
    bool no_delay;
} ax__conn_limits;
void ax__conn_limits_init(ax__conn_limits *l, const ax_conn_opts *o);
/* Wrap a connected (or connecting) socket.  on_open runs from the loop:
 * right away for accepted sockets, after the connect completes otherwise. */
ax_conn *ax__conn_new(ax_loop *loop, int fd, const ax_conn_cbs *cbs, const ax__conn_limits *lim,
                      void *ud, ax_listener *listener, bool connecting, bool tcp, int *err);
/* A connection whose connect failed synchronously: deliver on_close(err). */
void ax__conn_fail(ax_conn *c, int err);
/* The connection is open: on_open (once). */
void ax__conn_opened(ax_conn *c);

/* The text of a system errno, for ax_strerror (static, UTF-8). */
#ifdef _WIN32
const char *ax__win_strerror(int errnum); /* win/posix.c: the CRT lacks the socket codes */
#define AX__SYS_STRERROR ax__win_strerror
#else
#define AX__SYS_STRERROR strerror
#endif

/* clock */
uint64_t ax__monotonic_ms(void);

/* Connecting to a name (dns.c).  The connection exists before its socket:
 * conn.c keeps it without an fd until ax__conn_attach() hands it the
 * connecting socket, and calls pending->cancel() if it is closed first. */
typedef struct ax__pending {
    void (*cancel)(struct ax__pending *p);
} ax__pending;
ax_conn *ax__conn_new_pending(ax_loop *loop, const ax_conn_cbs *cbs, const ax__conn_limits *lim,
                              void *ud, ax__pending *p, int *err);
int ax__conn_attach(ax_conn *c, int fd, bool tcp);
#define AX__DNS_MAX_ADDRS 16 /* addresses of one name tried by ax_connect */
ax_conn *ax__connect_name(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                          const ax__conn_limits *lim, void *ud, int *err);

#define AX__CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
