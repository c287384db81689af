/* conn.c: stream connections: reading into the loop's buffer, the write
 * queue, watermarks and the output cap, half-close, timeouts and closing. */
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define IOV_BATCH 64

/* One queued write: inline bytes (slice NULL) or a range of a slice. */
typedef struct wnode {
    struct wnode *next;
    ax_slice *slice;
    const char *data;
    uint32_t len;
    uint8_t cls; /* size class (block of 256 << cls bytes), NODE_BIG if none */
} wnode;

/* Nodes come in power-of-two blocks from 256 bytes to 64 KiB, and freed
 * ones are kept per loop for reuse, up to NODE_CACHE_BYTES per class: with
 * the ring every write is queued until its send completes, and this makes
 * that cost no allocation (an echo, an HTTP response, a 16 KiB piece of a
 * streamed body).  Larger writes are allocated as they come. */
#define NODE_MIN_SHIFT 8
#define NODE_BIG 0xffu
#define NODE_CACHE_BYTES (1u << 20)

static wnode *node_new(ax_loop *loop, size_t payload)
{
    size_t total = sizeof(wnode) + payload;
    /* the smallest class whose block holds `total` */
    unsigned cls =
        total <= (1u << NODE_MIN_SHIFT)
            ? 0
            : (unsigned)(64 - __builtin_clzll((unsigned long long)total - 1)) - NODE_MIN_SHIFT;
    wnode *w;
    if (cls >= AX__NODE_CLASSES) {
        if (!(w = ax_malloc(total))) return NULL;
        w->cls = NODE_BIG;
        return w;
    }
    size_t size = (size_t)1 << (cls + NODE_MIN_SHIFT);
    if ((w = loop->node_cache[cls])) {
        loop->node_cache[cls] = w->next;
        loop->node_cache_bytes[cls] -= (uint32_t)size;
    } else if (!(w = ax_malloc(size))) {
        return NULL;
    }
    w->cls = (uint8_t)cls;
    return w;
}

static void node_free(ax_loop *loop, wnode *w)
{
    ax_slice_unref(w->slice);
    unsigned cls = w->cls;
    if (cls != NODE_BIG) {
        uint32_t size = 1u << (cls + NODE_MIN_SHIFT);
        if (loop->node_cache_bytes[cls] + size <= NODE_CACHE_BYTES) {
            w->next = loop->node_cache[cls];
            loop->node_cache[cls] = w;
            loop->node_cache_bytes[cls] += size;
            return;
        }
    }
    ax_free(w);
}

void ax__conn_cache_free(ax_loop *loop)
{
    for (unsigned cls = 0; cls < AX__NODE_CLASSES; cls++) {
        while (loop->node_cache[cls]) {
            wnode *w = loop->node_cache[cls];
            loop->node_cache[cls] = w->next;
            ax_free(w);
        }
        loop->node_cache_bytes[cls] = 0;
    }
}

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
    F_EDGE = 1u << 14,   /* edge-triggered: registered once for in and out */
    F_RDHUP = 1u << 15,  /* edge mode: the peer's FIN is queued behind the data */
    /* TLS: handshaking, on_open waits for it */
    F_HANDSHAKE = 1u << 16,
    F_RING = 1u << 17,     /* io_uring: receive and send in the ring */
    F_CB_DONE = 1u << 18,  /* on_close has run: free once the ring is done */
    F_EOF_HELD = 1u << 19, /* ring: the peer's FIN came while paused */
    /* ring: paused once, so flow-controlled: receive a buffer at a time,
     * as epoll reads, so little arrives between a pause and its effect */
    F_ONESHOT = 1u << 20,
};

/* The ring receive's state (F_RING). */
enum { RS_IDLE, RS_ARMED, RS_CANCEL };

struct ax_conn {
    ax__handle h;
    ax__io io;
    ax_loop *loop;
    const ax_conn_cbs *cbs;
    void *ud;
    ax_listener *listener;
    wnode *wq_head, **wq_tail;
    size_t queued;
    char *in; /* input on_data did not consume */
    uint32_t in_len, in_cap;
    uint32_t low, high, cap, max_input;
    uint32_t idle_ms, connect_ms, linger_ms;
    uint32_t flags;
    int reason;
    uint64_t last_active;
    ax_timer *timer;
    uint64_t bytes_in, bytes_out;
    ax__deferred deferred; /* this iteration: the close callback */
    ax__deferred again;    /* next iteration: read on, or re-offer kept input */
    ax__tls *tls;          /* TLS session (tls.c), freed after on_close */
    ax__pending *pending;  /* resolving a name: no fd yet (dns.c) */
    ax__uop rop, sop;      /* ring: the multishot receive, the send in flight */
    uint8_t rstate;        /* RS_* */
    bool sbusy;            /* ring: the queue's first nodes are the kernel's */
};

static void conn_io(ax_loop *loop, ax__io *io, unsigned revents);
static void conn_finish(ax_conn *c, int reason, bool rst);
static void close_graceful(ax_conn *c, int reason);
static void arm_timer(ax_conn *c);
static void tls_read(ax_conn *c);
static void tls_progress(ax_conn *c);
static int tls_writev(ax_conn *c, const struct iovec *iov, int n);
static void tls_close_notify(ax_conn *c);
static void tls_input(ax_conn *c, char *buf, ssize_t n);
static void ring_recv_done(ax_loop *loop, ax__uop *op, int res, char *buf, bool more);
static void ring_send_done(ax_loop *loop, ax__uop *op, int res, char *buf, bool more);
static void ring_flush(ax_conn *c);
static void update_interest(ax_conn *c);
static bool wants_input(const ax_conn *c);

void ax__conn_limits_init(ax__conn_limits *l, const ax_conn_opts *o)
{
    static const ax_conn_opts none;
    if (!o) o = &none;
#define PICK(v, d) (uint32_t)((v) ? ((v) > UINT32_MAX ? UINT32_MAX : (v)) : (d))
    l->high = PICK(o->high_watermark, 64 * 1024);
    l->low = PICK(o->low_watermark, 16 * 1024);
    if (l->low > l->high) l->low = l->high;
    l->cap = PICK(o->output_cap, 8 * 1024 * 1024);
    l->max_input = PICK(o->max_input, 1024 * 1024);
    l->idle_ms = o->idle_timeout_ms;
    l->connect_ms = PICK(o->connect_timeout_ms, 30000);
    l->linger_ms = PICK(o->linger_ms, 10000);
    l->no_delay = !(o->flags & AX_CONN_DELAY);
#undef PICK
}

ax_conn *ax__conn_new(ax_loop *loop, int fd, const ax_conn_cbs *cbs, const ax__conn_limits *lim,
                      void *ud, ax_listener *listener, bool connecting, bool tcp, int *err)
{
    ax_conn *c = ax_calloc(1, sizeof(*c));
    if (!c) {
        *err = AX_ENOMEM;
        return NULL;
    }
    c->loop = loop;
    c->cbs = cbs;
    c->ud = ud;
    c->listener = listener;
    c->wq_tail = &c->wq_head;
    c->low = lim->low;
    c->high = lim->high;
    c->cap = lim->cap;
    c->max_input = lim->max_input;
    c->idle_ms = lim->idle_ms;
    c->connect_ms = lim->connect_ms;
    c->linger_ms = lim->linger_ms;
    c->flags = (connecting ? F_CONNECTING : F_CONNECTED) | (tcp ? F_TCP : 0) |
               (lim->no_delay ? F_NODELAY : 0);
    c->last_active = loop->now;
    if (loop->backend->ring) {
        c->flags |= F_RING;
        c->rop.cb = ring_recv_done;
        c->sop.cb = ring_send_done;
    }
    if (fd < 0) { /* a pending connect (dns.c): no socket yet */
        c->io.fd = -1;
        c->flags |= F_PARKED;
        ax__handle_add(loop, &c->h, AX__H_CONN);
        return c;
    }
    if (tcp && lim->no_delay && !connecting) ax__set_nodelay(fd, true);
    if ((c->flags & F_RING) && !connecting) { /* no readiness: the ring receives */
        c->io.fd = fd;
        c->io.cb = conn_io;
        c->flags |= F_PARKED;
        ax__handle_add(loop, &c->h, AX__H_CONN);
        arm_timer(c);
        update_interest(c);
        return c;
    }
    unsigned ev = connecting ? AX__OUT : AX__IN;
    if (loop->backend->edge) {
        c->flags |= F_EDGE;
        ev = AX__IN | AX__OUT | AX__EDGE;
    }
    int rc = ax__io_start(loop, &c->io, fd, ev, conn_io);
    if (rc != 0) {
        ax_free(c);
        *err = rc;
        return NULL;
    }
    ax__handle_add(loop, &c->h, AX__H_CONN);
    arm_timer(c);
    return c;
}

/* A client connection whose host name is still being resolved (dns.c). */
ax_conn *ax__conn_new_pending(ax_loop *loop, const ax_conn_cbs *cbs, const ax__conn_limits *lim,
                              void *ud, ax__pending *p, int *err)
{
    ax_conn *c = ax__conn_new(loop, -1, cbs, lim, ud, NULL, true, true, err);
    if (c) c->pending = p;
    return c;
}

/* The pending connection gets its socket, connecting or just connected;
 * connect_done() finishes as for any client.  The connect timeout keeps
 * counting from ax_connect(). */
int ax__conn_attach(ax_conn *c, int fd, bool tcp)
{
    unsigned ev = AX__OUT;
    if (c->loop->backend->edge) {
        c->flags |= F_EDGE;
        ev = AX__IN | AX__OUT | AX__EDGE;
    }
    c->pending = NULL;
    if (!tcp) c->flags &= ~F_TCP;
    int rc = ax__io_start(c->loop, &c->io, fd, ev, conn_io);
    if (rc != 0) {
        c->io.fd = -1;
        return rc;
    }
    c->flags &= ~F_PARKED;
    arm_timer(c);
    return 0;
}

/* ---- interest ------------------------------------------------------------ */

/* The ring keeps one multishot receive going while input is wanted; an
 * unwanted one is cancelled, and a wanted one that is still ending is
 * armed again by ring_recv_done. */
static void ring_interest(ax_conn *c)
{
    bool want = wants_input(c);
    if (want && c->rstate == RS_IDLE) {
        if (ax__ring_recv(c->loop, &c->rop, c->io.fd, !(c->flags & F_ONESHOT)) != 0) {
            conn_finish(c, AX_ENOMEM, false);
            return;
        }
        c->rstate = RS_ARMED;
    } else if (!want && c->rstate == RS_ARMED) {
        ax__ring_cancel(c->loop, &c->rop);
        c->rstate = RS_CANCEL;
    }
}

static void update_interest(ax_conn *c)
{
    if ((c->flags & (F_CLOSED | F_EDGE)) || c->io.fd < 0) return;
    if ((c->flags & (F_RING | F_CONNECTING)) == F_RING) {
        ring_interest(c);
        return;
    }
    unsigned ev = 0;
    if (c->flags & F_CONNECTING) {
        ev = AX__OUT;
    } else {
        if (c->flags & F_LINGER)
            ev |= AX__IN;
        else if (!(c->flags & (F_PAUSED | F_PEER_EOF | F_CLOSING)))
            ev |= AX__IN;
        if (c->wq_head) ev |= AX__OUT;
    }
    /* With no interest at all, epoll and poll would still report hang-ups
     * forever (level-triggered): take the fd out of the backend instead. */
    if (ev == 0) {
        if (!(c->flags & F_PARKED)) {
            c->loop->backend->del(c->loop, &c->io);
            c->io.events = 0;
            c->flags |= F_PARKED;
        }
        return;
    }
    if (c->flags & F_PARKED) {
        c->flags &= ~F_PARKED;
        c->io.events = ev;
        if (c->loop->backend->add(c->loop, &c->io, ev) != 0) conn_finish(c, AX_ENOMEM, false);
        return;
    }
    if (ax__io_set(c->loop, &c->io, ev) != 0) conn_finish(c, ax__err(), false);
}

/* ---- timeouts: one lazily made timer per connection ---------------------- */

static uint32_t timer_limit(const ax_conn *c)
{
    if (c->flags & (F_CONNECTING | F_HANDSHAKE)) return c->connect_ms;
    if (c->flags & (F_CLOSING | F_LINGER)) return c->linger_ms;
    return c->idle_ms;
}

static void timer_cb(ax_timer *t, void *ud)
{
    ax_conn *c = ud;
    (void)t;
    uint32_t limit = timer_limit(c);
    if (!limit || (c->flags & F_CLOSED)) return;
    uint64_t elapsed = c->loop->now - c->last_active;
    if (elapsed < limit) {
        ax_timer_start(c->timer, limit - elapsed, 0);
        return;
    }
    if (c->flags & (F_CONNECTING | F_HANDSHAKE))
        conn_finish(c, AX_ETIMEDOUT, false);
    else if (c->flags & (F_CLOSING | F_LINGER))
        conn_finish(c, c->reason, true);
    else
        conn_finish(c, AX_EIDLE, false);
}

/* Activity only stamps last_active; the timer checks it when it fires. */
static void arm_timer(ax_conn *c)
{
    if (c->pending) return; /* dns.c keeps the deadline until there is a socket */
    uint32_t limit = timer_limit(c);
    if (!limit) {
        if (c->timer) ax_timer_stop(c->timer);
        return;
    }
    if (!c->timer && !(c->timer = ax_timer_new(c->loop, timer_cb, c))) return;
    uint64_t elapsed = c->loop->now - c->last_active;
    ax_timer_start(c->timer, elapsed < limit ? limit - elapsed : 0, 0);
}

/* ---- closing ------------------------------------------------------------- */

static void free_queue(ax_conn *c)
{
    wnode *n = c->wq_head;
    while (n) {
        wnode *next = n->next;
        node_free(c->loop, n);
        n = next;
    }
    c->wq_head = NULL;
    c->wq_tail = &c->wq_head;
    c->queued = 0;
}

static void deliver(ax_conn *c, char *data, size_t len);

static void conn_read(ax_conn *c);

/* The memory goes once on_close has run, no next-iteration work is queued
 * and the ring holds no operation of this connection. */
static void conn_release(ax_conn *c)
{
    if ((c->flags & F_CB_DONE) && !c->again.queued && !c->deferred.queued && c->rstate == RS_IDLE &&
        !c->sbusy)
        ax_free(c);
}

static void conn_deferred(ax_loop *loop, ax__deferred *d)
{
    ax_conn *c = AX__CONTAINER(d, ax_conn, deferred);
    ax__handle_remove(loop, &c->h);
    if (c->cbs->on_close) c->cbs->on_close(c, c->reason);
    ax__tls_free(c->tls);
    c->tls = NULL;
    c->flags |= F_CB_DONE;
    conn_release(c);
}

static void ring_eof(ax_conn *c);

/* Offer input kept across a pause in pieces the size of a read, as it
 * would have come had it stayed in the socket (the ring may have taken in
 * megabytes before the pause landed).  What on_data leaves of a piece
 * starts the next one; a piece it takes nothing of grows, for a message
 * longer than a piece.  A pause stops the offers; input left over that
 * nobody paused for counts against max_input, as in deliver(). */
#define KEPT_PIECE AX__READ_BUF
static void deliver_kept(ax_conn *c)
{
    size_t off = 0, piece = KEPT_PIECE;
    while (off < c->in_len && !(c->flags & F_PAUSED)) {
        size_t left = c->in_len - off, n = left < piece ? left : piece;
        size_t used = c->cbs->on_data ? c->cbs->on_data(c, c->in + off, n) : n;
        if (c->flags & F_CLOSED) return;
        if (used > n) used = n;
        off += used;
        if (n == left) break; /* all offered: the rest waits for more bytes */
        piece = used ? KEPT_PIECE : piece * 2;
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= (uint32_t)off;
    }
    if (!c->in_len) {
        ax_free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    } else if (!(c->flags & F_PAUSED) && c->in_len > c->max_input) {
        conn_finish(c, AX_EMSGSIZE, true);
    }
}

static void conn_again(ax_loop *loop, ax__deferred *d)
{
    ax_conn *c = AX__CONTAINER(d, ax_conn, again);
    (void)loop;
    if (c->flags & F_CLOSED) {
        conn_release(c);
        return;
    }
    if (c->flags & F_PAUSED) return;
    if ((c->flags & F_REDELIVER) && c->in_len) {
        c->flags &= ~F_REDELIVER;
        deliver_kept(c);
        if (c->flags & (F_CLOSED | F_PAUSED)) return;
    }
    if (c->flags & F_RING) { /* the ring reads on by itself */
        if (c->tls) {
            tls_progress(c); /* plaintext the engine kept across a pause */
            if (c->flags & (F_CLOSED | F_PAUSED)) return;
        }
        if (c->flags & F_EOF_HELD) {
            c->flags &= ~F_EOF_HELD;
            if (c->tls)
                tls_input(c, NULL, 0);
            else
                ring_eof(c);
            return;
        }
        update_interest(c); /* a receive that ran out of buffers */
        return;
    }
    if (((c->flags & F_EDGE) || c->tls) && !(c->flags & (F_PEER_EOF | F_CLOSING))) conn_read(c);
}

static void conn_finish(ax_conn *c, int reason, bool rst)
{
    if (c->flags & F_CLOSED) return;
    c->flags |= F_CLOSED;
    c->reason = reason;
    if (c->pending) { /* closed while resolving: stop dns.c's work */
        ax__pending *p = c->pending;
        c->pending = NULL;
        p->cancel(p);
    }
    if (rst && (c->flags & F_TCP) && c->io.fd >= 0) {
        struct linger lg = {1, 0};
        setsockopt(c->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (!(c->flags & F_PARKED)) c->loop->backend->del(c->loop, &c->io);
    if (c->rstate == RS_ARMED) {
        ax__ring_cancel(c->loop, &c->rop);
        c->rstate = RS_CANCEL;
    }
    if (c->sbusy) ax__ring_cancel(c->loop, &c->sop);
    if (c->io.fd >= 0) {
        if (c->flags & F_RING) ax__ring_forget(c->loop, c->io.fd);
        close(c->io.fd); /* the ring keeps its own reference */
    }
    c->io.fd = -1;
    if (!c->sbusy) free_queue(c); /* else the kernel may still read it */
    ax_free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    ax_timer_free(c->timer);
    c->timer = NULL;
    ax__defer(c->loop, &c->deferred, conn_deferred);
}

void ax__conn_fail(ax_conn *c, int err)
{
    conn_finish(c, err, false);
}

void ax__conn_close_handle(ax__handle *h)
{
    conn_finish(AX__CONTAINER(h, ax_conn, h), AX_ECANCELED, false);
}

/* Everything is flushed.  Closing a socket whose receive queue is not
 * empty makes the kernel send RST, and an RST can destroy the last bytes
 * still on their way to the peer.  So unless the peer has already finished,
 * send FIN and read (discarding) until its FIN, at most linger_ms. */
static void finish_or_linger(ax_conn *c)
{
    if ((c->flags & (F_PEER_EOF | F_CONNECTING)) || !(c->flags & F_CONNECTED)) {
        conn_finish(c, c->reason, false);
        return;
    }
    if (!(c->flags & F_SHUT_DONE)) shutdown(c->io.fd, SHUT_WR);
    c->flags = (c->flags & ~(F_CLOSING | F_PAUSED)) | F_LINGER | F_SHUT_DONE;
    c->last_active = c->loop->now;
    update_interest(c);
    arm_timer(c);
    if (c->flags & F_EDGE) ax__defer_later(c->loop, &c->again, conn_again);
}

static void close_graceful(ax_conn *c, int reason)
{
    if (c->flags & (F_CLOSED | F_CLOSING | F_LINGER)) return;
    c->reason = reason;
    /* the give-up time counts from now, not from when this iteration began
     * (a callback may have spent long writing before it closed) */
    ax_loop_update_time(c->loop);
    if (c->tls && !(c->flags & (F_CONNECTING | F_HANDSHAKE))) {
        tls_close_notify(c);
        if (c->flags & F_CLOSED) return;
    }
    if (!c->wq_head || (c->flags & F_CONNECTING)) {
        finish_or_linger(c);
        return;
    }
    c->flags |= F_CLOSING;
    c->last_active = c->loop->now;
    update_interest(c);
    arm_timer(c);
}

void ax_conn_close(ax_conn *c)
{
    close_graceful(c, 0);
}

void ax_conn_abort(ax_conn *c, int reason)
{
    conn_finish(c, reason, true);
}

/* ---- reading ------------------------------------------------------------- */

/* Make room for `need` bytes of kept input: small partial messages (a
 * trickled HTTP head) cost their size rounded up, not a read buffer;
 * growing doubles, so a large message is copied O(log n) times. */
static bool in_reserve(ax_conn *c, size_t need)
{
    if (need <= c->in_cap) return true;
    size_t cap = c->in_cap ? (size_t)c->in_cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX) cap = need;
    char *in = ax_realloc(c->in, cap);
    if (!in) return false;
    c->in = in;
    c->in_cap = (uint32_t)cap;
    return true;
}

/* Add n received bytes behind the kept input.  False when out of memory
 * (the connection is closed then). */
static bool append_input(ax_conn *c, const char *buf, size_t n)
{
    if (!in_reserve(c, (size_t)c->in_len + n)) {
        conn_finish(c, AX_ENOMEM, true);
        return false;
    }
    memcpy(c->in + c->in_len, buf, n);
    c->in_len += (uint32_t)n;
    return true;
}

/* Offer input to on_data; keep what it leaves.  `data` is NULL when the
 * input is already in c->in (len then counts the new bytes at its end). */
static void deliver(ax_conn *c, char *data, size_t len)
{
    char *buf = data;
    size_t total = len;
    if (!data) {
        buf = c->in;
        total = c->in_len;
    }
    size_t used = c->cbs->on_data ? c->cbs->on_data(c, buf, total) : total;
    if (c->flags & F_CLOSED) return;
    if (used >= total) {
        ax_free(c->in); /* idle connections keep no buffer */
        c->in = NULL;
        c->in_len = c->in_cap = 0;
        return;
    }
    size_t rest = total - used;
    if (rest > c->max_input) {
        conn_finish(c, AX_EMSGSIZE, true);
        return;
    }
    if (buf == c->in) {
        memmove(c->in, c->in + used, rest);
    } else {
        if (!in_reserve(c, rest)) {
            conn_finish(c, AX_ENOMEM, true);
            return;
        }
        memcpy(c->in, buf + used, rest);
    }
    c->in_len = (uint32_t)rest;
}

static void peer_eof(ax_conn *c)
{
    c->flags |= F_PEER_EOF;
    update_interest(c);
    if (c->flags & F_SHUT_DONE) {
        conn_finish(c, AX_EOF, false);
    } else if (c->cbs->on_end) {
        c->cbs->on_end(c);
    } else {
        close_graceful(c, AX_EOF);
    }
}

/* Lingering: discard input until the peer's FIN or an error.  Drains to
 * EAGAIN (a few buffers per iteration), which edge mode needs anyway. */
static void linger_read(ax_conn *c)
{
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(c->io.fd, c->loop->rbuf, AX__READ_BUF, 0);
        if (n > 0) continue;
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) conn_finish(c, c->reason, false);
        return;
    }
    ax__defer_later(c->loop, &c->again, conn_again);
}

static void conn_read(ax_conn *c)
{
    if (c->flags & F_LINGER) {
        linger_read(c);
        return;
    }
    if (c->tls) {
        tls_read(c);
        return;
    }
    char *buf = c->loop->rbuf;
    size_t room = AX__READ_BUF;
    /* A partial message waits: read behind it when its buffer has room,
     * else into the shared buffer and append only what came. */
    bool behind = c->in_len && c->in_cap - c->in_len >= AX__READ_BUF / 16;
    if (behind) {
        buf = c->in + c->in_len;
        room = c->in_cap - c->in_len;
    }
    ssize_t n = recv(c->io.fd, buf, room, 0);
    if (n > 0) {
        c->bytes_in += (uint64_t)n;
        c->last_active = c->loop->now;
        /* A short read emptied the socket; a full one may not have, and
         * edge-triggered epoll will not say so again: read on next time
         * round (one read per connection per iteration keeps it fair). */
        if ((c->flags & F_EDGE) && ((size_t)n == room || (c->flags & F_RDHUP)))
            ax__defer_later(c->loop, &c->again, conn_again);
        if (behind) {
            c->in_len += (uint32_t)n;
            deliver(c, NULL, 0);
        } else if (c->in_len) {
            if (append_input(c, buf, (size_t)n)) deliver(c, NULL, 0);
        } else {
            deliver(c, buf, (size_t)n);
        }
    } else if (n == 0) {
        peer_eof(c);
    } else if (errno != EAGAIN && errno != EINTR) {
        conn_finish(c, -errno, false);
    }
}

/* ---- reading in the ring -------------------------------------------------- */

/* Keep input that came while paused, for the resume to offer.  The ring
 * goes on receiving until the cancellation lands, at most what the socket
 * had buffered (which epoll would have left in the kernel): that is not
 * input on_data refused, so max_input does not apply, only a hard bound. */
#define KEPT_SLACK (16u * 1024 * 1024)
static void keep_input(ax_conn *c, const char *buf, size_t n)
{
    if ((size_t)c->in_len + n > (size_t)c->max_input + KEPT_SLACK) {
        conn_finish(c, AX_EMSGSIZE, true);
        return;
    }
    if (append_input(c, buf, n)) c->flags |= F_REDELIVER;
}

/* Bytes the ring received: the counterpart of conn_read after its recv. */
static void ring_input(ax_conn *c, char *buf, size_t n)
{
    c->bytes_in += (uint64_t)n;
    /* Input is not activity while closing: lingering gives up linger_ms
     * after it began however the peer trickles, as on the readiness
     * backends (which do not read at all while flushing). */
    if (c->flags & F_LINGER) return; /* discarded until the peer's FIN */
    if (!(c->flags & F_CLOSING)) c->last_active = c->loop->now;
    if (c->tls) {
        tls_input(c, buf, (ssize_t)n);
        return;
    }
    if (c->flags & F_PAUSED) { /* came before the cancel took effect */
        keep_input(c, buf, n);
        return;
    }
    if (c->flags & (F_CLOSING | F_PEER_EOF)) return;
    if (c->in_len) {
        if (append_input(c, buf, n)) deliver_kept(c); /* (what came while paused may be large) */
    } else {
        deliver(c, buf, n);
    }
}

static void ring_eof(ax_conn *c)
{
    if (c->flags & F_LINGER) {
        conn_finish(c, c->reason, false);
    } else if (c->tls) {
        tls_input(c, NULL, 0);
    } else if (c->flags & F_PAUSED) {
        c->flags |= F_EOF_HELD; /* after the kept input, on resume */
    } else if (c->flags & F_CLOSING) {
        c->flags |= F_PEER_EOF; /* no linger needed once flushed */
    } else {
        peer_eof(c);
    }
}

static void ring_recv_done(ax_loop *loop, ax__uop *op, int res, char *buf, bool more)
{
    ax_conn *c = AX__CONTAINER(op, ax_conn, rop);
    if (!more) c->rstate = RS_IDLE;
    if (c->flags & F_CLOSED) {
        if (!more) conn_release(c);
        return;
    }
    if (res > 0) {
        ring_input(c, buf, (size_t)res);
    } else if (res == 0) {
        ring_eof(c);
    } else if (res == -ENOBUFS) { /* the pool ran dry: try again next time round */
        ax__defer_later(loop, &c->again, conn_again);
        return;
    } else if (res != -ECANCELED) {
        conn_finish(c, (c->flags & F_LINGER) ? c->reason : res, false);
    }
    if (!more && !(c->flags & F_CLOSED)) update_interest(c);
}

/* ---- writing ------------------------------------------------------------- */

/* `done` bytes of the queue reached the kernel. */
static void consume(ax_conn *c, size_t done)
{
    c->bytes_out += done;
    c->queued -= done;
    c->last_active = c->loop->now;
    while (done) {
        wnode *w = c->wq_head;
        if (done < w->len) {
            w->data += done;
            w->len -= (uint32_t)done;
            break;
        }
        done -= w->len;
        c->wq_head = w->next;
        node_free(c->loop, w);
    }
    if (!c->wq_head) c->wq_tail = &c->wq_head;
}

/* Write as much of the queue as the kernel takes.  0 or a negative code. */
static int flush(ax_conn *c)
{
    while (c->wq_head) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        size_t want = 0;
        for (wnode *w = c->wq_head; w && n < IOV_BATCH; w = w->next, n++) {
            iov[n].iov_base = (void *)w->data;
            iov[n].iov_len = w->len;
            want += w->len;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t r = sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
        if (r == -1) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        consume(c, (size_t)r);
        if ((size_t)r < want) return 0;
    }
    return 0;
}

/* After the queue shrank: shutdown, finish a graceful close, or drain. */
static void after_flush(ax_conn *c)
{
    if (c->wq_head) {
        update_interest(c);
    } else {
        if (c->flags & F_CLOSING) {
            finish_or_linger(c);
            return;
        }
        if (c->flags & F_SHUT_PENDING) {
            c->flags = (c->flags & ~F_SHUT_PENDING) | F_SHUT_DONE;
            shutdown(c->io.fd, SHUT_WR);
            if (c->flags & F_PEER_EOF) {
                conn_finish(c, AX_EOF, false);
                return;
            }
        }
        update_interest(c);
    }
    if ((c->flags & F_ABOVE_HIGH) && c->queued <= c->low) {
        c->flags &= ~F_ABOVE_HIGH;
        if (c->cbs->on_drain) c->cbs->on_drain(c);
    }
}

/* Hand the queue's head to the ring, unless a send is already out. */
static void ring_flush(ax_conn *c)
{
    if (c->sbusy || !c->wq_head || (c->flags & (F_CLOSED | F_CONNECTING))) return;
    struct iovec iov[IOV_BATCH];
    int n = 0;
    for (wnode *w = c->wq_head; w && n < IOV_BATCH; w = w->next, n++) {
        iov[n].iov_base = (void *)w->data;
        iov[n].iov_len = w->len;
    }
    if (ax__ring_send(c->loop, &c->sop, c->io.fd, iov, n) != 0) {
        conn_finish(c, AX_ENOMEM, false);
        return;
    }
    c->sbusy = true;
}

static void after_flush(ax_conn *c);

static void ring_send_done(ax_loop *loop, ax__uop *op, int res, char *buf, bool more)
{
    ax_conn *c = AX__CONTAINER(op, ax_conn, sop);
    (void)loop, (void)buf, (void)more;
    c->sbusy = false;
    if (c->flags & F_CLOSED) {
        free_queue(c);
        conn_release(c);
        return;
    }
    if (res == -EAGAIN || res == -EINTR) {
        ring_flush(c);
        return;
    }
    if (res <= 0) {
        conn_finish(c, res ? res : AX_EPIPE, false);
        return;
    }
    consume(c, (size_t)res);
    ring_flush(c);
    after_flush(c);
}

static void on_writable(ax_conn *c)
{
    if ((c->flags & F_RING) && (c->flags & F_CONNECTED)) {
        ring_flush(c);
        return;
    }
    int rc = flush(c);
    if (rc < 0) {
        conn_finish(c, rc, false);
        return;
    }
    after_flush(c);
}

static int write_state(const ax_conn *c)
{
    if (c->flags & (F_CLOSED | F_CLOSING | F_LINGER | F_SHUT_PENDING | F_SHUT_DONE))
        return AX_ECLOSED;
    return 0;
}

/* Queue a node; enforce the cap; report the high watermark. */
static int enqueue(ax_conn *c, wnode *w)
{
    bool was_empty = !c->wq_head;
    w->next = NULL;
    *c->wq_tail = w;
    c->wq_tail = &w->next;
    c->queued += w->len;
    if (c->queued > c->cap) {
        conn_finish(c, AX_EOUTPUTCAP, true);
        return AX_EOUTPUTCAP;
    }
    if (c->flags & F_RING)
        ring_flush(c);
    else if (was_empty)
        update_interest(c);
    if (c->queued > c->high) {
        c->flags |= F_ABOVE_HIGH;
        return 1;
    }
    return 0;
}

/* Try the kernel first when nothing is queued: the common case costs one
 * send() and no allocation.  Returns bytes taken or a negative code. */
static ssize_t try_direct(ax_conn *c, const struct iovec *iov, int n)
{
    /* (the ring sends everything, batched into the next submission) */
    if (c->wq_head || !(c->flags & F_CONNECTED) || (c->flags & F_RING)) return 0;
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    ssize_t r;
    do
        r = n == 1 ? send(c->io.fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                   : sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
    while (r == -1 && errno == EINTR);
    if (r == -1) {
        if (errno == EAGAIN) return 0;
        int e = -errno;
        conn_finish(c, e, false);
        return e;
    }
    c->bytes_out += (uint64_t)r;
    c->last_active = c->loop->now;
    return r;
}

/* Queue bytes as they are: plaintext, or ciphertext under TLS. */
static int write_raw(ax_conn *c, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (!total) return 0;
    ssize_t done = try_direct(c, iov, n);
    if (done < 0) return (int)done;
    if ((size_t)done == total) return 0;
    size_t rest = total - (size_t)done;
    if (rest > UINT32_MAX) return AX_ENOMEM; /* (the cap closes far sooner) */
    wnode *w = node_new(c->loop, rest);
    if (!w) return AX_ENOMEM;
    char *p = (char *)(w + 1);
    w->slice = NULL;
    w->data = p;
    w->len = (uint32_t)rest;
    size_t skip = (size_t)done;
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(p, (const char *)iov[i].iov_base + skip, l - skip);
        p += l - skip;
        skip = 0;
    }
    return enqueue(c, w);
}

int ax_conn_writev(ax_conn *c, const struct iovec *iov, int n)
{
    int rc = write_state(c);
    if (rc) return rc;
    return c->tls ? tls_writev(c, iov, n) : write_raw(c, iov, n);
}

int ax_conn_write(ax_conn *c, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return ax_conn_writev(c, &iov, 1);
}

int ax_conn_write_slice(ax_conn *c, ax_slice *s, size_t off, size_t len)
{
    int rc = write_state(c);
    if (rc) return rc;
    if (off > ax_slice_len(s) || len > ax_slice_len(s) - off) return AX_EINVAL;
    if (!len) return 0;
    struct iovec iov = {(char *)ax_slice_data(s) + off, len};
    if (c->tls) return tls_writev(c, &iov, 1); /* encrypting copies anyway */
    ssize_t done = try_direct(c, &iov, 1);
    if (done < 0) return (int)done;
    if ((size_t)done == len) return 0;
    if (len - (size_t)done > UINT32_MAX) return AX_ENOMEM; /* (the cap closes far sooner) */
    wnode *w = node_new(c->loop, 0);
    if (!w) return AX_ENOMEM;
    w->slice = ax_slice_ref(s);
    w->data = (const char *)iov.iov_base + done;
    w->len = (uint32_t)(len - (size_t)done);
    return enqueue(c, w);
}

int ax_conn_write_slices(ax_conn *c, ax_slice *const *s, int n)
{
    int rc = write_state(c);
    if (rc) return rc;
    for (int first = 0; first < n;) {
        int k = n - first < IOV_BATCH ? n - first : IOV_BATCH;
        struct iovec iov[IOV_BATCH];
        for (int i = 0; i < k; i++) {
            iov[i].iov_base = ax_slice_data(s[first + i]);
            iov[i].iov_len = ax_slice_len(s[first + i]);
        }
        if (c->tls) { /* encrypting copies anyway */
            rc = tls_writev(c, iov, k);
            if (rc < 0) return rc;
            first += k;
            continue;
        }
        ssize_t done = try_direct(c, iov, k);
        if (done < 0) return (int)done;
        size_t skip = (size_t)done;
        for (int i = 0; i < k; i++, first++) {
            size_t len = iov[i].iov_len;
            if (skip >= len) {
                skip -= len;
                continue;
            }
            if (len - skip > UINT32_MAX) return AX_ENOMEM;
            wnode *w = node_new(c->loop, 0);
            if (!w) return AX_ENOMEM;
            w->slice = ax_slice_ref(s[first]);
            w->data = (const char *)iov[i].iov_base + skip;
            w->len = (uint32_t)(len - skip);
            skip = 0;
            int e = enqueue(c, w);
            if (e < 0) return e;
            if (e > rc) rc = e;
        }
    }
    return rc;
}

size_t ax_conn_queued(const ax_conn *c)
{
    return c->queued;
}

int ax_conn_shutdown(ax_conn *c)
{
    int rc = write_state(c);
    if (rc) return rc;
    c->flags |= F_SHUT_PENDING;
    if (c->flags & (F_CONNECTING | F_HANDSHAKE)) return 0; /* done when connected */
    if (c->tls) {
        tls_close_notify(c);
        if (c->flags & F_CLOSED) return 0;
    }
    if (!c->wq_head) after_flush(c);
    return 0;
}

/* ---- the io callback ----------------------------------------------------- */

static void connect_done(ax_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) err = errno;
    if (err) {
        conn_finish(c, -err, false);
        return;
    }
    c->flags = (c->flags & ~F_CONNECTING) | F_CONNECTED;
    c->last_active = c->loop->now;
    if ((c->flags & (F_TCP | F_NODELAY)) == (F_TCP | F_NODELAY)) ax__set_nodelay(c->io.fd, true);
    if ((c->flags & F_RING) && !(c->flags & F_PARKED)) { /* from readiness to the ring */
        c->loop->backend->del(c->loop, &c->io);
        c->io.events = 0;
        c->flags |= F_PARKED;
    }
    update_interest(c);
    arm_timer(c);
    if (c->tls) { /* on_open waits for the handshake */
        tls_progress(c);
        return;
    }
    if (c->cbs->on_open) c->cbs->on_open(c);
    if (c->flags & F_CLOSED) return;
    if (c->wq_head)
        on_writable(c);
    else if (c->flags & F_SHUT_PENDING)
        after_flush(c);
}

static bool wants_input(const ax_conn *c)
{
    return (c->flags & F_LINGER) || !(c->flags & (F_PAUSED | F_PEER_EOF | F_CLOSING));
}

static void conn_io(ax_loop *loop, ax__io *io, unsigned revents)
{
    ax_conn *c = AX__CONTAINER(io, ax_conn, io);
    (void)loop;
    if (revents & AX__RDHUP) c->flags |= F_RDHUP;
    if (c->flags & F_CONNECTING) {
        if (!(revents & (AX__OUT | AX__ERR | AX__HUP))) return;
        connect_done(c); /* then read what may have come with it */
        if (c->flags & (F_CLOSED | F_CONNECTING | F_RING)) return;
    }
    if (((revents & AX__OUT) || (revents & (AX__ERR | AX__HUP))) && c->wq_head) {
        on_writable(c);
        if (c->flags & F_CLOSED) return;
    }
    if ((revents & (AX__IN | AX__ERR | AX__HUP)) && wants_input(c)) conn_read(c);
}

/* ---- flow control and accessors ----------------------------------------- */

void ax_conn_pause(ax_conn *c)
{
    if (c->flags & (F_CLOSED | F_LINGER)) return;
    c->flags |= F_PAUSED | F_ONESHOT;
    update_interest(c);
}

void ax_conn_resume(ax_conn *c)
{
    if ((c->flags & (F_CLOSED | F_LINGER)) || !(c->flags & F_PAUSED)) return;
    c->flags &= ~F_PAUSED;
    update_interest(c);
    if (c->in_len) c->flags |= F_REDELIVER; /* kept input may hold whole messages */
    /* (TLS may hold decrypted input the socket no longer signals) */
    if (c->in_len || (c->flags & (F_EDGE | F_EOF_HELD)) || c->tls)
        ax__defer_later(c->loop, &c->again, conn_again);
}

bool ax_conn_paused(const ax_conn *c)
{
    return (c->flags & F_PAUSED) != 0;
}

void ax_conn_set_idle_timeout(ax_conn *c, uint32_t ms)
{
    if (c->flags & F_CLOSED) return;
    c->idle_ms = ms;
    c->last_active = c->loop->now;
    arm_timer(c);
}

void ax_conn_set_limits(ax_conn *c, size_t low, size_t high, size_t cap)
{
    if (high) c->high = (uint32_t)(high > UINT32_MAX ? UINT32_MAX : high);
    if (low) c->low = (uint32_t)(low > UINT32_MAX ? UINT32_MAX : low);
    if (cap) c->cap = (uint32_t)(cap > UINT32_MAX ? UINT32_MAX : cap);
    if (c->low > c->high) c->low = c->high;
}

void ax_conn_set_data(ax_conn *c, void *ud)
{
    c->ud = ud;
}
void ax_conn_set_cbs(ax_conn *c, const ax_conn_cbs *cbs)
{
    c->cbs = cbs;
}

void *ax_conn_data(const ax_conn *c)
{
    return c->ud;
}
ax_loop *ax_conn_loop(const ax_conn *c)
{
    return c->loop;
}
int ax_conn_fd(const ax_conn *c)
{
    return c->io.fd;
}
ax_listener *ax_conn_listener(const ax_conn *c)
{
    return c->listener;
}
uint64_t ax_conn_bytes_in(const ax_conn *c)
{
    return c->bytes_in;
}
uint64_t ax_conn_bytes_out(const ax_conn *c)
{
    return c->bytes_out;
}

static int sock_name(const ax_conn *c, ax_addr *out, bool peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (c->io.fd < 0) return AX_ECLOSED;
    int r = peer ? getpeername(c->io.fd, (struct sockaddr *)&ss, &len)
                 : getsockname(c->io.fd, (struct sockaddr *)&ss, &len);
    if (r == -1) return ax__err();
    ax_addr_from_sockaddr(out, ss.ss_family == AF_UNIX ? AX_SCHEME_UNIX : AX_SCHEME_TCP,
                          (struct sockaddr *)&ss, len);
    return 0;
}

int ax_conn_peer(const ax_conn *c, ax_addr *out)
{
    return sock_name(c, out, true);
}
int ax_conn_local(const ax_conn *c, ax_addr *out)
{
    return sock_name(c, out, false);
}

/* ---- TLS: conn.c drives the engine in tls.c ------------------------------ */

/* Send what the engine produced: handshake messages, records, alerts.
 * Returns what write_raw returns (1: above the high watermark). */
static int tls_flush_out(ax_conn *c)
{
    const char *p;
    size_t n = ax__tls_out(c->tls, &p);
    if (!n) return 0;
    if (c->flags & F_CLOSED) {
        ax__tls_out_done(c->tls);
        return AX_ECLOSED;
    }
    struct iovec iov = {(void *)p, n};
    int rc = write_raw(c, &iov, 1);
    ax__tls_out_done(c->tls);
    if (rc == AX_ENOMEM) conn_finish(c, rc, true);
    return rc;
}

/* Fail with the engine's error; an alert it made tells the peer why. */
static void tls_fail(ax_conn *c, int rc)
{
    tls_flush_out(c);
    conn_finish(c, rc, false);
}

static void tls_close_notify(ax_conn *c)
{
    ax__tls_close_notify(c->tls);
    tls_flush_out(c);
}

static int tls_writev(ax_conn *c, const struct iovec *iov, int n)
{
    if (c->flags & (F_CONNECTING | F_HANDSHAKE)) return ax__tls_hold(c->tls, iov, n);
    for (int i = 0; i < n; i++) {
        int rc = ax__tls_write(c->tls, iov[i].iov_base, iov[i].iov_len);
        if (rc < 0) {
            tls_fail(c, rc);
            return rc;
        }
    }
    return tls_flush_out(c);
}

/* The handshake is done: send what was written before it, then on_open. */
static void tls_opened(ax_conn *c)
{
    const char *p;
    size_t n = ax__tls_held(c->tls, &p);
    int rc = n ? ax__tls_write(c->tls, p, n) : 0;
    ax__tls_held_done(c->tls);
    if (rc < 0) {
        tls_fail(c, rc);
        return;
    }
    c->flags &= ~F_HANDSHAKE;
    c->last_active = c->loop->now;
    arm_timer(c);
    if (tls_flush_out(c) < 0 || (c->flags & F_CLOSED)) return;
    if (c->flags & F_SHUT_PENDING) {
        tls_close_notify(c);
        if (c->flags & F_CLOSED) return;
        if (!c->wq_head) after_flush(c);
        if (c->flags & F_CLOSED) return;
    }
    if (c->cbs->on_open) c->cbs->on_open(c);
}

/* Room behind input on_data kept, for the next plaintext. */
static bool tls_input_room(ax_conn *c, char **buf, size_t *room)
{
    size_t want = (size_t)c->in_len + AX__READ_BUF / 4;
    if (want > c->in_cap) {
        char *in = ax_realloc(c->in, want);
        if (!in) {
            conn_finish(c, AX_ENOMEM, true);
            return false;
        }
        c->in = in;
        c->in_cap = (uint32_t)want;
    }
    *buf = c->in + c->in_len;
    *room = c->in_cap - c->in_len;
    return true;
}

/* Decrypt and deliver until the engine needs more ciphertext. */
static void tls_drain(ax_conn *c)
{
    const uint32_t stop = F_CLOSED | F_PAUSED | F_PEER_EOF | F_CLOSING | F_LINGER | F_HANDSHAKE;
    while (!(c->flags & stop)) {
        char *buf = c->loop->rbuf;
        size_t room = AX__READ_BUF;
        if (c->in_len && !tls_input_room(c, &buf, &room)) return;
        int n = ax__tls_read(c->tls, buf, room);
        if (tls_flush_out(c) < 0 || (c->flags & F_CLOSED)) return;
        if (n == 0) return;
        if (n == AX_EOF) { /* close_notify */
            peer_eof(c);
            return;
        }
        if (n < 0) {
            tls_fail(c, n);
            return;
        }
        if (c->in_len) {
            c->in_len += (uint32_t)n;
            deliver(c, NULL, 0);
        } else {
            deliver(c, buf, (size_t)n);
        }
    }
}

static void tls_progress(ax_conn *c)
{
    if (c->flags & F_HANDSHAKE) {
        int rc = ax__tls_handshake(c->tls);
        if (rc < 0) {
            tls_fail(c, rc);
            return;
        }
        if (tls_flush_out(c) < 0 || (c->flags & F_CLOSED) || rc == 0) return;
        tls_opened(c);
    }
    tls_drain(c);
}

/* Ciphertext (n > 0), the peer's FIN (n == 0) or nothing new (n < 0)
 * into the engine, then whatever it allows. */
static void tls_input(ax_conn *c, char *buf, ssize_t n)
{
    if (n > 0 && ax__tls_feed(c->tls, buf, (size_t)n) != 0) {
        conn_finish(c, AX_ENOMEM, true);
        return;
    }
    tls_progress(c);
    /* EOF counts once the plaintext before it is delivered (a paused
     * connection sees it again when resumed: epoll reads it again, the
     * ring holds it). */
    if (n == 0 && (c->flags & (F_RING | F_PAUSED | F_CLOSED)) == (F_RING | F_PAUSED))
        c->flags |= F_EOF_HELD;
    if (n != 0 || (c->flags & (F_CLOSED | F_PEER_EOF | F_PAUSED))) return;
    if (c->flags & F_HANDSHAKE) {
        ax__tls_set_detail(c->tls, "TLS handshake failed: the peer closed the connection");
        conn_finish(c, AX_ETLS, false);
        return;
    }
    peer_eof(c);
}

/* Ciphertext from the socket (readiness backends). */
static void tls_read(ax_conn *c)
{
    char *buf = c->loop->rbuf;
    ssize_t n = recv(c->io.fd, buf, AX__READ_BUF, 0);
    if (n > 0) {
        c->bytes_in += (uint64_t)n;
        c->last_active = c->loop->now;
        if ((c->flags & F_EDGE) && ((size_t)n == AX__READ_BUF || (c->flags & F_RDHUP)))
            ax__defer_later(c->loop, &c->again, conn_again);
    } else if (n == -1 && errno != EAGAIN && errno != EINTR) {
        conn_finish(c, -errno, false);
        return;
    }
    tls_input(c, buf, n);
}

int ax__conn_tls_attach(ax_conn *c, ax_tls_ctx *ctx, const char *host)
{
    int err = 0;
    if (c->flags & F_CLOSED) return 0; /* failed already: on_close is on its way */
    c->tls = ax__tls_new(ctx, ax__tls_ctx_is_server(ctx), host, &err);
    if (!c->tls) return err;
    c->flags |= F_HANDSHAKE;
    arm_timer(c);
    return 0;
}

bool ax_conn_is_tls(const ax_conn *c)
{
    return c->tls != NULL;
}

const char *ax_conn_tls_alpn(const ax_conn *c)
{
    return c->tls && !(c->flags & F_HANDSHAKE) ? ax__tls_alpn(c->tls) : NULL;
}

const char *ax_conn_tls_version(const ax_conn *c)
{
    return c->tls ? ax__tls_version(c->tls) : NULL;
}

int ax_conn_tls_peer_subject(const ax_conn *c, char *buf, size_t len)
{
    return c->tls ? ax__tls_peer_subject(c->tls, buf, len) : AX_EINVAL;
}

const char *ax_conn_error_detail(const ax_conn *c)
{
    if (!c->tls) return NULL;
    const char *d = ax__tls_detail(c->tls);
    if (!d && (c->flags & (F_CLOSED | F_HANDSHAKE | F_CONNECTING)) == (F_CLOSED | F_HANDSHAKE) &&
        c->reason == AX_ETIMEDOUT)
        d = "TLS handshake timed out";
    return d;
}
