/* conn_sock.c: the readiness driver of stream connections (epoll, poll;
 * and every backend while a socket is connecting).  The loop says a socket
 * is ready; this file calls recv and sendmsg and hands what came to the
 * connection's transport.  Edge-triggered backends register a connection
 * once for input and output and never modify it. */
#include "conn_internal.h"

#include <errno.h>
#include <sys/socket.h>

static void sock_io(ax_loop *loop, ax__io *io, unsigned revents);

ssize_t ax__conn_sendv(int fd, const struct iovec *iov, int n, int flags)
{
    if (n == 1) return send(fd, iov[0].iov_base, iov[0].iov_len, flags | MSG_NOSIGNAL);
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    return sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
}

int ax__conn_sock_start(ax_conn *c, int fd, bool connecting)
{
    unsigned ev = connecting ? AX__OUT : AX__IN;
    if (c->loop->backend->edge) {
        c->flags |= F_EDGE;
        ev = AX__IN | AX__OUT | AX__EDGE;
    }
    return ax__io_start(c->loop, &c->io, fd, ev, sock_io);
}

void ax__conn_sock_interest(ax_conn *c)
{
    if (c->flags & F_EDGE) {
        /* lingering: the edge that reports the peer's FIN may have passed */
        if (c->flags & F_LINGER) ax__conn_again_later(c);
        return;
    }
    unsigned ev = 0;
    if (c->flags & F_CONNECTING) {
        ev = AX__OUT;
    } else {
        if (ax__conn_wants_input(c)) ev |= AX__IN;
        if (ax__wq_head(c)) ev |= AX__OUT;
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
        if (c->loop->backend->add(c->loop, &c->io, ev) != 0) ax__conn_finish(c, AX_ENOMEM, false);
        return;
    }
    if (ax__io_set(c->loop, &c->io, ev) != 0) ax__conn_finish(c, ax__err(), false);
}

/* Lingering: discard input until the peer's FIN or an error.  Drains to
 * EAGAIN (a few buffers per iteration), which edge mode needs anyway. */
static void linger_read(ax_conn *c)
{
    for (int i = 0; i < 4; i++) {
        ssize_t n = recv(c->io.fd, c->loop->rbuf, AX__READ_BUF, 0);
        if (n > 0) continue;
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) ax__conn_finish(c, c->reason, false);
        return;
    }
    ax__conn_again_later(c);
}

static void sock_read(ax_conn *c)
{
    if (c->flags & F_LINGER) {
        linger_read(c);
        return;
    }
    size_t room;
    char *buf = ax__tp(c)->read_buf(c, &room);
    ssize_t n = recv(c->io.fd, buf, room, 0);
    if (n > 0) {
        ax__conn_count(c, 0, (uint64_t)n);
        ax__conn_touch(c);
        /* A short read emptied the socket; a full one may not have, and
         * edge-triggered epoll will not say so again: read on next time
         * round (one read per connection per iteration keeps it fair). */
        if ((c->flags & F_EDGE) && ((size_t)n == room || (c->flags & F_RDHUP)))
            ax__conn_again_later(c);
    } else if (n == -1 && errno != EAGAIN && errno != EINTR) {
        ax__conn_finish(c, -errno, false);
        return;
    }
    ax__tp(c)->input(c, buf, n);
}

/* The head is a file range: the transport makes bytes of it (TLS), or it
 * goes with sendfile.  1 to go on, 0 when the socket is full, or a
 * negative code (the connection is closed then). */
static int sock_send_lazy(ax_conn *c)
{
    if (ax__tp(c)->prep) {
        int rc = ax__tp(c)->prep(c);
        return rc < 0 ? rc : 1;
    }
    ssize_t r = ax__conn_sendfile(c);
    return r < 0 ? (int)r : r > 0;
}

/* Write as much of the queue as the kernel takes.  0 or a negative code. */
static int sock_flush_queue(ax_conn *c)
{
    while (ax__wq_head(c)) {
        if (ax__wq_head(c)->kind != AX__W_BYTES) {
            int rc = sock_send_lazy(c);
            if (rc <= 0) return rc;
            continue;
        }
        struct iovec iov[AX__IOV_BATCH];
        size_t want;
        int n = ax__conn_queue_iov(c, iov, &want);
        int more = ax__conn_file_follows(c, n) ? MSG_MORE : 0;
        ssize_t r = ax__conn_sendv(c->io.fd, iov, n, more);
        if (r == -1) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -errno;
        }
        ax__conn_consume(c, (size_t)r);
        if ((size_t)r < want) return 0;
    }
    return 0;
}

static void sock_flush(ax_conn *c)
{
    int rc = sock_flush_queue(c);
    if (rc < 0) {
        ax__conn_finish(c, rc, false);
        return;
    }
    ax__conn_after_flush(c);
}

static ssize_t sock_send(ax_conn *c, const struct iovec *iov, int n)
{
    ssize_t r;
    do
        r = ax__conn_sendv(c->io.fd, iov, n, 0);
    while (r == -1 && errno == EINTR);
    if (r == -1) {
        if (errno == EAGAIN) return 0;
        int e = -errno;
        ax__conn_finish(c, e, false);
        return e;
    }
    ax__conn_count(c, 1, (uint64_t)r);
    ax__conn_touch(c);
    return r;
}

/* Send now, inside a write call: no callback runs here. */
static void sock_kick(ax_conn *c)
{
    int rc = sock_flush_queue(c);
    if (rc < 0) {
        ax__conn_finish(c, rc, false);
        return;
    }
    ax__conn_update_interest(c);
    ax__conn_kicked(c);
}

/* A file range into an empty queue goes at once, as bytes do (try_direct). */
static void sock_queued(ax_conn *c, bool was_empty)
{
    if (was_empty && ax__wq_head(c)->kind != AX__W_BYTES && (c->flags & F_CONNECTED) &&
        !(c->flags & (F_CONNECTING | F_CORKED)))
        sock_kick(c);
    else if (was_empty)
        ax__conn_update_interest(c);
}

static void sock_io(ax_loop *loop, ax__io *io, unsigned revents)
{
    ax_conn *c = AX__CONTAINER(io, ax_conn, io);
    (void)loop;
    if (revents & AX__RDHUP) c->flags |= F_RDHUP;
    if (c->flags & F_CONNECTING) {
        if (!(revents & (AX__OUT | AX__ERR | AX__HUP))) return;
        ax__conn_connect_done(c); /* then read what may have come with it */
        if (c->flags & (F_CLOSED | F_CONNECTING)) return;
        if (ax__drv(c) != &ax__conn_sock) return; /* another driver took over */
    }
    if ((revents & (AX__OUT | AX__ERR | AX__HUP)) && ax__wq_head(c)) {
        sock_flush(c);
        if (c->flags & F_CLOSED) return;
    }
    if ((revents & (AX__IN | AX__ERR | AX__HUP)) && ax__conn_wants_input(c)) sock_read(c);
}

static void sock_again(ax_conn *c)
{
    if (((c->flags & F_EDGE) || ax__tp(c)->pending(c)) && !(c->flags & (F_PEER_EOF | F_CLOSING)))
        sock_read(c);
}

/* Edge-triggered: what the socket still holds will not be reported again. */
static bool sock_held(const ax_conn *c)
{
    return (c->flags & F_EDGE) != 0;
}

static void sock_connected(ax_conn *c)
{
    (void)c;
}

static void sock_stop(ax_conn *c)
{
    if (!(c->flags & F_PARKED)) c->loop->backend->del(c->loop, &c->io);
}

static bool sock_busy(const ax_conn *c)
{
    (void)c;
    return false;
}

static bool sock_queue_free(const ax_conn *c)
{
    (void)c;
    return true;
}

const ax__conn_driver ax__conn_sock = {
    .name = "readiness",
    .ahead = false,
    .start = ax__conn_sock_start,
    .connected = sock_connected,
    .interest = ax__conn_sock_interest,
    .send = sock_send,
    .queued = sock_queued,
    .flush = sock_flush,
    .kick = sock_kick,
    .again = sock_again,
    .held = sock_held,
    .stop = sock_stop,
    .busy = sock_busy,
    .queue_free = sock_queue_free,
};
