/* conn_internal.h: a stream connection and the two seams under it.
 *
 * conn.c owns the lifecycle of every connection once: opening, delivering
 * input to on_data, the write queue, watermarks and the output cap, pause
 * and resume, half-close, lingering, timeouts and closing.  What varies
 * sits behind two small tables of functions, chosen when the connection is
 * made, so the lifecycle never asks which kind it has:
 *
 *   - the transport (ax__transport) says what the bytes are: plain
 *     (conn.c) or TLS (conn_tls.c, driving the engine in tls.c).  It turns
 *     received bytes into input for on_data, writes go through it into the
 *     queue (encrypted first under TLS), and it adds what a shutdown needs
 *     (close_notify) and whether it holds input the socket no longer
 *     signals (decrypted records).  The shape of Redis's ConnectionType.
 *
 *   - the driver (ax__conn_driver) says how bytes move between the socket
 *     and the connection: readiness (conn_sock.c: epoll and poll say
 *     ready, the driver calls recv and sendmsg) or completion (conn_ring.c:
 *     a multishot receive and the sends live in the io_uring backend's
 *     ring).  nginx's c->recv / c->send, and its event actions.
 *
 * A driver hands what it received to the transport's input (n > 0 bytes,
 * n == 0 the peer's FIN, n < 0 nothing new); the transport hands plaintext
 * to ax__conn_deliver and queues bytes with ax__conn_write_raw, which asks
 * the driver to send them.  Nothing here is installed. */
#ifndef AXON_CORE_CONN_INTERNAL_H
#define AXON_CORE_CONN_INTERNAL_H

#include "internal.h"

#include <sys/types.h>

#define AX__IOV_BATCH 64

/* What a queued node holds.  Bytes are ready for the socket; a file range
 * is sent by the driver (sendfile) or made into bytes first by the
 * transport (TLS reads and encrypts it); plaintext waits for the transport
 * to encrypt it (TLS, behind a file range, so records keep their order).
 * The queue is bytes first, then the others: a driver sends the bytes at
 * its head and asks the transport's prep (or sends the file itself) when
 * the head is not bytes. */
enum { AX__W_BYTES, AX__W_FILE, AX__W_PLAIN };

/* One queued write: inline bytes (slice NULL), a range of a slice, or a
 * range of a file (file, foff; data unused). */
typedef struct ax__wnode {
    struct ax__wnode *next; /* the last node's is the first (a ring) */
    /* in the last node only: every byte queued, file ranges too (the
     * connection holds only a pointer to the last node) */
    size_t queued;
    ax_slice *slice;
    const char *data;
    ax_file *file;
    uint64_t foff;
    uint32_t len;
    uint8_t cls;  /* size class (block of 256 << cls bytes), NODE_BIG if none */
    uint8_t kind; /* AX__W_* */
} ax__wnode;

enum {
    F_CONNECTING = 1u << 0,
    F_CONNECTED = 1u << 1,
    F_PAUSED = 1u << 2,
    F_PEER_EOF = 1u << 3,
    F_SHUT_PENDING = 1u << 4, /* shutdown asked, waiting for the queue */
    F_SHUT_DONE = 1u << 5,
    F_CLOSING = 1u << 6, /* graceful close: flushing */
    F_CLOSED = 1u << 7,  /* fd gone, on_close pending */
    F_ABOVE_HIGH = 1u << 8,
    F_PARKED = 1u << 9, /* no interest: removed from the backend */
    F_TCP = 1u << 10,
    F_REDELIVER = 1u << 11, /* resumed with input kept: offer it again */
    F_NODELAY = 1u << 12,
    F_LINGER = 1u << 13, /* closing: FIN sent, discarding input until the peer's FIN */
    F_EDGE = 1u << 14,   /* readiness: edge-triggered, registered once for in and out */
    F_RDHUP = 1u << 15,  /* edge mode: the peer's FIN is queued behind the data */
    /* the transport is opening (TLS handshake): on_open waits for it */
    F_HANDSHAKE = 1u << 16,
    F_OPENED = 1u << 17,   /* on_open has run: on_close will */
    F_CB_DONE = 1u << 18,  /* on_close has run: free once the driver is done */
    F_EOF_HELD = 1u << 19, /* ring: the peer's FIN came while paused */
    /* ring: paused once, so flow-controlled: receive a buffer at a time,
     * as epoll reads, so little arrives between a pause and its effect */
    F_ONESHOT = 1u << 20,
    F_CORKED = 1u << 21,       /* ax_conn_cork: queue, do not send */
    F_NOTIFY_LATER = 1u << 22, /* TLS: close_notify once the file ranges are encrypted */
    F_SBUSY = 1u << 23,        /* ring: the queue's first nodes are the kernel's */
    /* ring: the receive's state (RS_* in conn_ring.c), two bits from here */
    F_RSTATE_SHIFT = 24,
    F_TLS = 1u << 26, /* the transport is ax__transport_tls (else plain) */
    /* ring: in the loop's list of queues to send before its next wait */
    F_SLATER = 1u << 27,
    /* the limits: four bits from here, an index in loop->lims or
     * AX__LIMS_X (in the side struct) */
    F_LIMS_SHIFT = 28,
};
#define AX__LIMS_X 15u

/* Limits when a connection has no side struct (ax__conn_limits_init's
 * defaults): no idle timeout. */
#define AX__CONNECT_MS 30000u
#define AX__LINGER_MS 10000u

/* What only some connections need, allocated when first needed and freed
 * with the connection: TLS, a name being resolved, file ranges and TLS
 * plaintext in the queue, timeouts (the timer, when activity was last
 * seen, limits other than the defaults).  An idle plain connection with
 * the default limits has none. */
typedef struct ax__conn_ext {
    struct ax__tls *tls;  /* TLS session (tls.c), freed after on_close */
    ax__pending *pending; /* resolving a name: no fd yet (dns.c) */
    ax_timer *timer;
    uint64_t queued_file; /* bytes queued in file ranges (no memory: not capped) */
    uint64_t last_active;
    uint32_t nlazy;       /* nodes that are not bytes yet (AX__W_FILE, AX__W_PLAIN) */
    uint32_t bytes_hi[2]; /* bytes in, out: the high 32 bits (the connection has the low) */
    uint32_t idle_ms, connect_ms, linger_ms;
    ax__conn_lims lims; /* when the loop keeps as many sets as it can */
} ax__conn_ext;

typedef struct ax__transport {
    const char *name;
    /* Received bytes (n > 0), the peer's FIN (n == 0) or nothing new
     * (n < 0: a read found the socket empty) into the connection. */
    void (*input)(ax_conn *c, char *buf, ssize_t n);
    /* Where the next readiness read lands, and how much it may take. */
    char *(*read_buf)(ax_conn *c, size_t *room);
    /* The user's bytes into the queue.  0, 1 (above the high watermark)
     * or a negative code, as ax_conn_writev. */
    int (*writev)(ax_conn *c, const struct iovec *iov, int n);
    /* Before the FIN: what the transport says at the end (close_notify). */
    void (*shutdown)(ax_conn *c);
    /* Holds input the socket will not signal again. */
    bool (*pending)(const ax_conn *c);
    /* The socket is connected: true when the connection is open now,
     * false when the transport opens it later (and calls on_open then). */
    bool (*open)(ax_conn *c);
    /* on_close has run: free the transport's state. */
    void (*release)(ax_conn *c);
    /* Queue a file range (ax_conn_write_file).  0, 1 or a negative code. */
    int (*write_file)(ax_conn *c, ax_file *f, uint64_t off, uint64_t len);
    /* The head of the queue is a file range or plaintext: put the bytes
     * for (some of) it in front.  NULL: the driver sends file ranges
     * itself.  0 or a negative code (the connection is closed then). */
    int (*prep)(ax_conn *c);
    /* Writes of slices queue references (else they go through writev). */
    bool zero_copy;
} ax__transport;

typedef struct ax__conn_driver {
    const char *name;
    /* Receives run ahead of the connection's wishes (a receive can complete
     * after a pause), and the socket does not signal the FIN again. */
    bool ahead;
    /* Start on fd: connecting (readiness until connected) or connected.
     * 0 or a negative code. */
    int (*start)(ax_conn *c, int fd, bool connecting);
    /* The connect finished. */
    void (*connected)(ax_conn *c);
    /* Input wanted or not, queue empty or not: tell the loop. */
    void (*interest)(ax_conn *c);
    /* Send now when nothing is queued: bytes taken or a negative code
     * (the connection is closed then). */
    ssize_t (*send)(ax_conn *c, const struct iovec *iov, int n);
    /* A node joined the queue (it was empty before when was_empty). */
    void (*queued)(ax_conn *c, bool was_empty);
    /* The socket can take more: send from the queue. */
    void (*flush)(ax_conn *c);
    /* Send what is queued now, if the socket takes it, running no
     * callback (inside a write call: a file range, ax_conn_uncork). */
    void (*kick)(ax_conn *c);
    /* Next iteration: read on, or pick up what was held over. */
    void (*again)(ax_conn *c);
    /* After a resume, again() must run: the loop will not signal what
     * the driver held back (edge mode, a FIN received while paused). */
    bool (*held)(const ax_conn *c);
    /* The connection is closing; the fd is closed right after. */
    void (*stop)(ax_conn *c);
    /* Operations of the connection are still out (its memory must stay). */
    bool (*busy)(const ax_conn *c);
    /* The queue may be freed (no send is reading it). */
    bool (*queue_free)(const ax_conn *c);
} ax__conn_driver;

extern const ax__transport ax__transport_plain;
extern const ax__transport ax__transport_tls;
extern const ax__conn_driver ax__conn_sock;
#ifdef _WIN32
/* no ring backend on Windows (no backend sets `ring`): the name only */
#define ax__conn_ring ax__conn_sock
#else
extern const ax__conn_driver ax__conn_ring;
#endif

/* Input on_data left, its length and room in front: one allocation, made
 * only while a partial message waits (an idle connection has none). */
typedef struct ax__kept {
    uint32_t len, cap;
    char data[];
} ax__kept;

/* Every connection's state; what only some need is in `x` (above).  An
 * idle connection costs this and what its protocol keeps: the size is
 * held below (static_assert), as bench/idle-ws-rss measures it. */
struct ax_conn {
    ax__handle h;
    ax__io io;
    ax_loop *loop;
    const ax_conn_cbs *cbs;
    void *ud;
    ax_listener *listener;
    ax__wnode *wq; /* the queue's last node (its next: the first), NULL if empty */
    ax__kept *in;  /* input on_data did not consume, NULL if none */
    /* this iteration: the close callback; next iteration: read on, or
     * re-offer kept input (conn_again; a close re-points a queued node) */
    ax__deferred deferred;
    ax__conn_ext *x; /* NULL until needed */
    /* bytes received and sent, the low 32 bits (the rest: x->bytes_hi,
     * from the first carry on: ax__conn_count) */
    uint32_t bytes_in, bytes_out;
    uint32_t flags; /* F_*, and the limits (F_LIMS_SHIFT) */
    int reason;
    /* ring backends only (the allocation has them there: AX__CONN_SIZE):
     * the multishot receive and the send in flight */
    ax__uop ring[];
};

/* 120 bytes: a 128-byte malloc chunk (glibc), against 184 (192) before,
 * 304 before the side struct and 240 before that: the transport is a flag
 * (F_TLS), the ring's operations a tail only ring connections have (136:
 * 144), the handle's kind is the list it is in, the byte counts keep
 * their high halves in the side struct, the limits are an index in a set
 * the loop keeps (four bits of the flags), one deferred node serves the
 * close callback and conn_again, kept input has its length and room in
 * its own allocation, the write queue is a ring named by its last node
 * (which holds the byte count), and ax__io packs its interest and slot.
 * Grow it only for what every idle connection needs. */
#if !defined(_WIN32) && UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct ax_conn) <= 120, "struct ax_conn grew past 120 bytes");
#endif

/* The allocation of a connection on `loop`. */
#define AX__CONN_SIZE(loop)                                                                        \
    (sizeof(struct ax_conn) + ((loop)->backend->ring ? 2 * sizeof(ax__uop) : 0))

/* The side struct, allocated (with the defaults) if absent; NULL when out
 * of memory. */
ax__conn_ext *ax__conn_ext_get(ax_conn *c);

/* The watermarks, output cap and input bound. */
static inline const ax__conn_lims *ax__lims(const ax_conn *c)
{
    unsigned i = c->flags >> F_LIMS_SHIFT;
    return i == AX__LIMS_X ? &c->x->lims : &c->loop->lims[i];
}

/* The transport: plain or TLS (a flag, not a pointer: every idle
 * connection's bytes count). */
static inline const ax__transport *ax__tp(const ax_conn *c)
{
    return (c->flags & F_TLS) ? &ax__transport_tls : &ax__transport_plain;
}

/* The driver: one per backend kind. */
static inline const ax__conn_driver *ax__drv(const ax_conn *c)
{
    return c->loop->backend->ring ? &ax__conn_ring : &ax__conn_sock;
}

/* Count n bytes in (dir 0) or out (1): the low 32 bits in the
 * connection, a carry into the side struct (rare: every 4 GiB; lost
 * only if that allocation fails). */
static inline void ax__conn_count(ax_conn *c, int dir, uint64_t n)
{
    uint32_t *lo = dir ? &c->bytes_out : &c->bytes_in;
    uint64_t sum = (uint64_t)*lo + n;
    *lo = (uint32_t)sum;
    if (sum >> 32) {
        ax__conn_ext *x = ax__conn_ext_get(c);
        if (x) x->bytes_hi[dir] += (uint32_t)(sum >> 32);
    }
}

/* Activity: stamped only when a timeout may need it. */
static inline void ax__conn_touch(ax_conn *c)
{
    if (c->x) c->x->last_active = c->loop->now;
}

/* The first node of the write queue, NULL when it is empty. */
static inline ax__wnode *ax__wq_head(const ax_conn *c)
{
    return c->wq ? c->wq->next : NULL;
}

/* The node after w in the queue, NULL after the last. */
static inline ax__wnode *ax__wq_next(const ax_conn *c, const ax__wnode *w)
{
    return w == c->wq ? NULL : w->next;
}

/* Every byte queued, file ranges too. */
static inline size_t ax__wq_bytes(const ax_conn *c)
{
    return c->wq ? c->wq->queued : 0;
}

/* Bytes of kept input. */
static inline uint32_t ax__in_len(const ax_conn *c)
{
    return c->in ? c->in->len : 0;
}

static inline uint32_t ax__conn_nlazy(const ax_conn *c)
{
    return c->x ? c->x->nlazy : 0;
}

static inline uint64_t ax__conn_queued_file(const ax_conn *c)
{
    return c->x ? c->x->queued_file : 0;
}

/* conn.c: the lifecycle, for the transports and drivers */
void ax__conn_finish(ax_conn *c, int reason, bool rst);
void ax__conn_update_interest(ax_conn *c);
bool ax__conn_wants_input(const ax_conn *c);
void ax__conn_again_later(ax_conn *c);
void ax__conn_connect_done(ax_conn *c);
void ax__conn_arm_timer(ax_conn *c);
void ax__conn_release(ax_conn *c);
void ax__conn_free_queue(ax_conn *c);
/* Offer input to on_data; keep what it leaves.  `data` NULL: the input is
 * already in c->in. */
void ax__conn_deliver(ax_conn *c, char *data, size_t len);
/* Offer kept input in pieces the size of a read (see conn.c). */
void ax__conn_deliver_kept(ax_conn *c);
bool ax__conn_append_input(ax_conn *c, const char *buf, size_t n);
/* Room for `need` bytes of kept input (false: out of memory). */
bool ax__conn_in_reserve(ax_conn *c, size_t need);
/* Free the kept input. */
void ax__conn_drop_input(ax_conn *c);
void ax__conn_peer_eof(ax_conn *c);
void ax__conn_after_flush(ax_conn *c);
/* A driver sent inside a write call (no callback may run there): have
 * the next iteration do what the flush owes (on_drain, a close). */
void ax__conn_kicked(ax_conn *c);
/* `done` bytes of the queue reached the kernel. */
void ax__conn_consume(ax_conn *c, size_t done);
/* Queue bytes as they are (plaintext, or ciphertext under TLS). */
int ax__conn_write_raw(ax_conn *c, const struct iovec *iov, int n);
/* The iovecs of the bytes at the queue's head (at most AX__IOV_BATCH
 * nodes, up to the first node that is not bytes); their total in *want. */
int ax__conn_queue_iov(const ax_conn *c, struct iovec *iov, size_t *want);
/* The first n nodes (bytes) are followed by a file range: they go out
 * with MSG_MORE, so a response head shares packets with its body. */
bool ax__conn_file_follows(const ax_conn *c, int n);
/* The head is a file range: sendfile() as much of it as the socket takes.
 * Bytes sent, 0 when the socket is full, or a negative code (the
 * connection is closed then: AX_EIO when the file ended early). */
ssize_t ax__conn_sendfile(ax_conn *c);
/* The head is a file range: read up to `max` bytes of it into a node of
 * bytes in front.  0 or a negative code (the connection is closed then). */
int ax__conn_file_to_bytes(ax_conn *c, size_t max);
/* pread exactly n bytes of the head file range into buf.  0, or AX_EIO
 * when the file ended early, or a negative errno. */
int ax__conn_file_read(const ax_conn *c, char *buf, size_t n);
/* Queue a file range as a node (the common part of the transports). */
int ax__conn_queue_file(ax_conn *c, ax_file *f, uint64_t off, uint64_t len);
/* Queue a copy as a node of the given kind, behind everything. */
int ax__conn_queue_copy(ax_conn *c, const struct iovec *iov, int n, uint8_t kind);
/* Put bytes before the first node that is not bytes: what the TLS engine
 * made comes before what it has not encrypted yet; or at the head (front):
 * what prep made of the bytes it took.  0 or a negative code (the
 * connection is closed then). */
int ax__conn_insert_bytes(ax_conn *c, const char *p, size_t n, bool front);
/* Take `n` bytes of the head node that is not bytes, as done by the
 * transport's prep (their replacement goes in front). */
void ax__conn_take_lazy(ax_conn *c, size_t n);

/* conn_sock.c: the readiness half every driver uses while connecting */
int ax__conn_sock_start(ax_conn *c, int fd, bool connecting);
void ax__conn_sock_interest(ax_conn *c);
/* send() for one buffer (less work in the kernel than sendmsg), else
 * sendmsg(); MSG_NOSIGNAL is added to `flags`. */
ssize_t ax__conn_sendv(int fd, const struct iovec *iov, int n, int flags);

#endif
