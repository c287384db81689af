/* conn_ring.c: the completion driver of stream connections (the io_uring
 * backend, backend_uring.c).  A connected socket keeps one multishot
 * receive in the ring while input is wanted, and the head of its write
 * queue in one send at a time, made when the loop is about to wait (all
 * the iteration wrote goes in it); what completes is handed to the
 * connection's transport as the readiness driver hands what it reads.
 * Until the connect completes the socket is driven by readiness.
 *
 * Receives run ahead of the connection: one can complete after a pause,
 * so the transport keeps what comes then (and a FIN, F_EOF_HELD) for the
 * resume; the memory of a closed connection stays until the ring has
 * finished with its receive and its send. */
#include "conn_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

/* A ring connection's operations, in the tail of its allocation
 * (AX__CONN_SIZE). */
#define ROP(c) (&(c)->ring[0])
#define SOP(c) (&(c)->ring[1])

/* How file ranges go (AXON_RING_FILE=read: always read and send, for
 * measuring; see bench/RESULTS.md). */
enum { RING_FILE_SENDFILE, RING_FILE_READ };
static int ring_file_mode = -1; /* set by the first ring_start of any thread: atomics */

static int file_mode(void)
{
    return __atomic_load_n(&ring_file_mode, __ATOMIC_RELAXED);
}

/* The receive's state: two bits of the flags. */
enum { RS_IDLE, RS_ARMED, RS_CANCEL };

static unsigned rstate(const ax_conn *c)
{
    return (c->flags >> F_RSTATE_SHIFT) & 3u;
}

static void set_rstate(ax_conn *c, unsigned s)
{
    c->flags = (c->flags & ~(3u << F_RSTATE_SHIFT)) | (s << F_RSTATE_SHIFT);
}

/* The ring keeps one multishot receive going while input is wanted; an
 * unwanted one is cancelled, and a wanted one that is still ending is
 * armed again by ring_recv_done. */
static void ring_interest(ax_conn *c)
{
    if (c->flags & F_CONNECTING) {
        ax__conn_sock_interest(c);
        return;
    }
    bool want = ax__conn_wants_input(c);
    if (want && rstate(c) == RS_IDLE) {
        if (ax__ring_recv(c->loop, ROP(c), c->io.fd, !(c->flags & F_ONESHOT)) != 0) {
            ax__conn_finish(c, AX_ENOMEM, false);
            return;
        }
        set_rstate(c, RS_ARMED);
    } else if (!want && rstate(c) == RS_ARMED) {
        ax__ring_cancel(c->loop, ROP(c));
        set_rstate(c, RS_CANCEL);
    }
}

/* Bytes the ring received (n > 0) or the peer's FIN (n == 0). */
static void ring_input(ax_conn *c, char *buf, ssize_t n)
{
    if (n > 0) {
        ax__conn_count(c, 0, (uint64_t)n);
        /* Input is not activity while closing: lingering gives up
         * linger_ms after it began however the peer trickles, as on the
         * readiness backends (which do not read at all while flushing). */
        if (c->flags & F_LINGER) return; /* discarded until the peer's FIN */
        if (!(c->flags & F_CLOSING)) ax__conn_touch(c);
    } else if (c->flags & F_LINGER) {
        ax__conn_finish(c, c->reason, false);
        return;
    }
    ax__tp(c)->input(c, buf, n);
}

static void ring_recv_done(ax_loop *loop, ax__uop *op, int res, char *buf, bool more)
{
    ax_conn *c = AX__CONTAINER(op, ax_conn, ring);
    if (!more) set_rstate(c, RS_IDLE);
    if (c->flags & F_CLOSED) {
        if (!more) ax__conn_release(c);
        return;
    }
    if (res >= 0) {
        ring_input(c, buf, res);
    } else if (res == -ENOBUFS) { /* the pool ran dry: try again next time round */
        (void)loop;
        ax__conn_again_later(c);
        return;
    } else if (res != -ECANCELED) {
        ax__conn_finish(c, (c->flags & F_LINGER) ? c->reason : res, false);
    }
    if (!more && !(c->flags & F_CLOSED)) ax__conn_update_interest(c);
}

/* A file range at the head: the transport makes bytes of it (TLS), else
 * sendfile() takes what the socket has room for at once, and when it is
 * full a piece is read into memory for a ring send, whose completion says
 * when there is room again.  0 or a negative code (closed then). */
#define RING_FILE_PIECE (256u * 1024)
static int ring_send_lazy(ax_conn *c)
{
    if (ax__tp(c)->prep) return ax__tp(c)->prep(c);
    ssize_t r = file_mode() == RING_FILE_READ ? 0 : ax__conn_sendfile(c);
    if (r != 0) return r < 0 ? (int)r : 0;
    return ax__conn_file_to_bytes(c, RING_FILE_PIECE);
}

/* Bytes before a file range that goes with sendfile (a response head):
 * sent at once with MSG_MORE, so they share packets with the file's first
 * bytes and the range need not wait for a completion.  True when all went. */
static bool ring_send_before_file(ax_conn *c, const struct iovec *iov, int n, size_t want)
{
    if (ax__tp(c)->prep || file_mode() == RING_FILE_READ || !ax__conn_file_follows(c, n))
        return false;
    ssize_t r;
    do
        r = ax__conn_sendv(c->io.fd, iov, n, MSG_MORE | MSG_DONTWAIT);
    while (r == -1 && errno == EINTR);
    if (r <= 0) return false; /* (an error shows in the ring send) */
    ax__conn_consume(c, (size_t)r);
    return (size_t)r == want;
}

/* Hand the queue's head to the ring, unless a send is already out. */
static void ring_send_queue(ax_conn *c)
{
    if ((c->flags & F_SBUSY) || (c->flags & (F_CLOSED | F_CONNECTING | F_CORKED))) return;
    struct iovec iov[AX__IOV_BATCH];
    int n;
    for (;;) {
        while (ax__wq_head(c) && ax__wq_head(c)->kind != AX__W_BYTES)
            if (ring_send_lazy(c) < 0) return;
        if (!ax__wq_head(c)) return;
        size_t want;
        n = ax__conn_queue_iov(c, iov, &want);
        if (!ring_send_before_file(c, iov, n, want)) break;
    }
    n = ax__conn_queue_iov(c, iov, NULL);
    if (ax__ring_send(c->loop, SOP(c), c->io.fd, iov, n) != 0) {
        ax__conn_finish(c, AX_ENOMEM, false);
        return;
    }
    c->flags |= F_SBUSY;
}

/* A queue of bytes goes to the ring just before the loop waits, not at
 * each write: the submission is made there anyway, and by then it holds
 * all this iteration wrote (one send, where a send at the first write
 * would take that write alone and the rest would wait for its
 * completion).  A queue with file ranges is sent at once (sendfile may
 * take them inside the write call, so ax_conn_uncork can say they went),
 * and so is any when the loop's list cannot grow. */
static void ring_flush(ax_conn *c)
{
    if ((c->flags & (F_SBUSY | F_CLOSED | F_CONNECTING | F_CORKED)) || !ax__wq_head(c)) return;
    if (!ax__conn_nlazy(c)) {
        if (c->flags & F_SLATER) return;
        if (ax__ring_later(c->loop, c) == 0) {
            c->flags |= F_SLATER;
            return;
        }
    }
    ring_send_queue(c);
}

void ax__conn_ring_later(ax_conn *c)
{
    c->flags &= ~F_SLATER;
    if (c->flags & F_CLOSED) { /* its memory waited for this */
        ax__conn_release(c);
        return;
    }
    ring_send_queue(c);
    ax__conn_kicked(c); /* (a file range may have gone at once) */
}

static void ring_send_done(ax_loop *loop, ax__uop *op, int res, char *buf, bool more)
{
    ax_conn *c = AX__CONTAINER(op - 1, ax_conn, ring);
    (void)loop, (void)buf, (void)more;
    c->flags &= ~F_SBUSY;
    if (c->flags & F_CLOSED) {
        ax__conn_free_queue(c);
        ax__conn_release(c);
        return;
    }
    if (res == -EAGAIN || res == -EINTR) {
        ring_flush(c);
        return;
    }
    if (res <= 0) {
        ax__conn_finish(c, res ? res : AX_EPIPE, false);
        return;
    }
    ax__conn_consume(c, (size_t)res);
    ring_flush(c);
    ax__conn_after_flush(c);
}

static int ring_start(ax_conn *c, int fd, bool connecting)
{
    if (file_mode() < 0) { /* (threads may race here: each stores the same value) */
        const char *m = getenv("AXON_RING_FILE");
        __atomic_store_n(&ring_file_mode,
                         m && !strcmp(m, "read") ? RING_FILE_READ : RING_FILE_SENDFILE,
                         __ATOMIC_RELAXED);
    }
    ROP(c)->cb = ring_recv_done;
    SOP(c)->cb = ring_send_done;
    if (connecting) return ax__conn_sock_start(c, fd, true);
    c->io.fd = fd; /* no readiness: the ring receives */
    c->flags |= F_PARKED;
    return 0;
}

/* From readiness to the ring. */
static void ring_connected(ax_conn *c)
{
    if (c->flags & F_PARKED) return;
    c->loop->backend->del(c->loop, &c->io);
    c->io.events = 0;
    c->flags |= F_PARKED;
}

/* Everything goes through the ring, batched into the next submission. */
static ssize_t ring_send(ax_conn *c, const struct iovec *iov, int n)
{
    (void)c, (void)iov, (void)n;
    return 0;
}

static void ring_queued(ax_conn *c, bool was_empty)
{
    (void)was_empty;
    ring_flush(c);
    ax__conn_kicked(c); /* (a file range may have gone at once) */
}

/* After a connect: a file range may have gone at once. */
static void ring_flush_now(ax_conn *c)
{
    ring_flush(c);
    if (!(c->flags & (F_CLOSED | F_SBUSY | F_SLATER))) ax__conn_after_flush(c);
}

static void ring_queued_kick(ax_conn *c)
{
    ring_queued(c, false);
}

static void ring_again(ax_conn *c)
{
    if (ax__tp(c)->pending(c)) { /* input the transport kept across a pause */
        ax__tp(c)->input(c, NULL, -1);
        if (c->flags & (F_CLOSED | F_PAUSED)) return;
    }
    if (c->flags & F_EOF_HELD) {
        c->flags &= ~F_EOF_HELD;
        ring_input(c, NULL, 0);
        return;
    }
    ax__conn_update_interest(c); /* a receive that ran out of buffers */
}

static bool ring_held(const ax_conn *c)
{
    return (c->flags & F_EOF_HELD) != 0;
}

static void ring_stop(ax_conn *c)
{
    if (!(c->flags & F_PARKED)) c->loop->backend->del(c->loop, &c->io);
    if (rstate(c) == RS_ARMED) {
        ax__ring_cancel(c->loop, ROP(c));
        set_rstate(c, RS_CANCEL);
    }
    if ((c->flags & F_SBUSY)) ax__ring_cancel(c->loop, SOP(c));
    if (c->io.fd >= 0) ax__ring_forget(c->loop, c->io.fd);
}

static bool ring_busy(const ax_conn *c)
{
    return rstate(c) != RS_IDLE || (c->flags & (F_SBUSY | F_SLATER));
}

static bool ring_queue_free(const ax_conn *c)
{
    return !(c->flags & F_SBUSY);
}

const ax__conn_driver ax__conn_ring = {
    .name = "completion",
    .ahead = true,
    .start = ring_start,
    .connected = ring_connected,
    .interest = ring_interest,
    .send = ring_send,
    .queued = ring_queued,
    .flush = ring_flush_now,
    .kick = ring_queued_kick,
    .again = ring_again,
    .held = ring_held,
    .stop = ring_stop,
    .busy = ring_busy,
    .queue_free = ring_queue_free,
};
