/* udp.c: datagram sockets with batched receive (recvmmsg) and batched
 * sends (sendmmsg) flushed once per loop iteration. */
#include "buf.h"
#include "internal.h"

#include <linux/filter.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BATCH 256
#define MAX_DATAGRAM 65535
#define SEND_ARENA (256 * 1024)

/* One receive batch per loop, shared by all its UDP sockets. */
typedef struct {
    int batch;
    size_t slot; /* bytes per datagram buffer */
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    struct sockaddr_storage from[MAX_BATCH];
    char *bufs;
} rx_batch;

typedef struct {
    struct sockaddr_storage to;
    socklen_t to_len;
    size_t off, len; /* into the send arena */
} tx_entry;

struct ax_udp {
    ax__handle h;
    ax__io io;
    int send_fd; /* io.fd, or a send-only twin (see add_send_twin) */
    ax_loop *loop;
    ax_udp_recv_cb cb;
    void *ud;
    ax_addr addr;
    bool connected, closed;
    int batch;
    size_t max_datagram;
    int sticky_err; /* reported by the next send */
    ax_udp_stats stats;
    tx_entry *tx;
    int tx_len;
    ax__buf arena;
    ax__deferred flush_d;
};

void ax__udp_batch_free(ax_loop *loop)
{
    rx_batch *b = loop->udp_batch;
    if (!b) return;
    ax_free(b->bufs);
    ax_free(b);
    loop->udp_batch = NULL;
}

static rx_batch *get_batch(ax_loop *loop, int batch, size_t slot)
{
    rx_batch *b = loop->udp_batch;
    if (b && b->batch >= batch && b->slot >= slot) return b;
    ax__udp_batch_free(loop);
    b = ax_calloc(1, sizeof(*b));
    if (!b) return NULL;
    /* Pages of this arena are only touched as datagrams land in them. */
    b->bufs = ax_malloc((size_t)batch * slot);
    if (!b->bufs) {
        ax_free(b);
        loop->udp_batch = NULL;
        return NULL;
    }
    b->batch = batch;
    b->slot = slot;
    loop->udp_batch = b;
    return b;
}

static void recv_cb(ax_loop *loop, ax__io *io, unsigned revents)
{
    ax_udp *u = AX__CONTAINER(io, ax_udp, io);
    (void)revents;
    /* An odd number of cache lines apart: a power-of-two stride would put
     * every slot's first line in the same cache set. */
    size_t stride = ((u->max_datagram + 1 + 63) & ~(size_t)63) | 64;
    rx_batch *b = get_batch(loop, u->batch, stride);
    if (!b) return;
    int n = u->batch;
    for (int i = 0; i < n; i++) {
        b->iov[i].iov_base = b->bufs + (size_t)i * b->slot;
        b->iov[i].iov_len = u->max_datagram + 1; /* one more byte reveals oversize */
        b->msgs[i].msg_hdr = (struct msghdr){
            .msg_name = &b->from[i],
            .msg_namelen = sizeof b->from[i],
            .msg_iov = &b->iov[i],
            .msg_iovlen = 1,
        };
    }
    int got = recvmmsg(io->fd, b->msgs, (unsigned)n, MSG_DONTWAIT, NULL);
    if (got == -1) {
        if (errno != EAGAIN && errno != EINTR) u->sticky_err = -errno;
        return;
    }
    for (int i = 0; i < got && !u->closed; i++) {
        size_t len = b->msgs[i].msg_len;
        if (len > u->max_datagram || (b->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)) {
            u->stats.rx_truncated++;
            continue;
        }
        u->stats.rx++;
        ax_addr from;
        ax_addr_from_sockaddr(&from, AX_SCHEME_UDP, (struct sockaddr *)&b->from[i],
                              b->msgs[i].msg_hdr.msg_namelen);
        u->cb(u, b->bufs + (size_t)i * b->slot, len, &from);
    }
}

/* Sending from the socket that epoll watches costs a wake-up of its wait
 * queue for every datagram (the kernel reports "writable again" as each
 * sent buffer is freed).  A twin socket bound to the same address, never
 * watched, sends without that.  Both join one SO_REUSEPORT group whose
 * program steers every incoming datagram to the first, so the twin never
 * receives.  On any failure the socket simply sends for itself. */
static int add_send_twin(int fd, const ax_addr *bound)
{
    struct sock_filter to_first[] = {{BPF_RET | BPF_K, 0, 0, 0}};
    struct sock_fprog prog = {.len = 1, .filter = to_first};
    int one = 1, twin = ax__socket(bound->sa.ss_family, SOCK_DGRAM);
    if (twin < 0) return fd;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1 ||
        setsockopt(twin, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1 ||
        bind(twin, (const struct sockaddr *)&bound->sa, bound->len) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) == -1) {
        close(twin);
        one = 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        return fd;
    }
    return twin;
}

static ax_udp *udp_open(ax_loop *loop, const char *url, ax_udp_recv_cb cb, const ax_udp_opts *opts,
                        void *ud, bool connect_it, int *err)
{
    static const ax_udp_opts none;
    int rc = AX_ENOMEM, one = 1, dummy;
    if (!err) err = &dummy;
    if (!opts) opts = &none;
    ax_udp *u = ax_calloc(1, sizeof(*u));
    if (!u) goto fail;
    if ((rc = ax_addr_parse(url, &u->addr, NULL, 0)) != 0) goto fail_free;
    rc = AX_ESCHEME;
    if (u->addr.scheme != AX_SCHEME_UDP) goto fail_free;
    rc = AX_EINVAL;
    if (opts->max_datagram > MAX_DATAGRAM || opts->batch < 0 || opts->batch > MAX_BATCH)
        goto fail_free;
    u->max_datagram = opts->max_datagram ? opts->max_datagram : 65507;
    u->batch = opts->batch ? opts->batch : 32;
    u->loop = loop;
    u->cb = cb;
    u->ud = ud;
    int fd = ax__socket(u->addr.sa.ss_family, SOCK_DGRAM);
    if (fd < 0) {
        rc = fd;
        goto fail_free;
    }
    if (opts->reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (opts->broadcast) setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
    int r = connect_it ? connect(fd, (struct sockaddr *)&u->addr.sa, u->addr.len)
                       : bind(fd, (struct sockaddr *)&u->addr.sa, u->addr.len);
    if (r == -1) goto fail_fd;
    u->connected = connect_it;
    if (!connect_it) {
        socklen_t len = sizeof u->addr.sa;
        getsockname(fd, (struct sockaddr *)&u->addr.sa, &len);
        u->addr.len = len;
    }
    u->send_fd = fd;
    if (!connect_it && !opts->reuse_port) u->send_fd = add_send_twin(fd, &u->addr);
    if ((rc = ax__io_start(loop, &u->io, fd, AX__IN, recv_cb)) != 0) goto fail_close;
    ax__handle_add(loop, &u->h, AX__H_UDP);
    return u;

fail_fd:
    rc = ax__err();
fail_close:
    if (u->send_fd != fd && u->send_fd > 0) close(u->send_fd);
    close(fd);
fail_free:
    ax_free(u);
fail:
    *err = rc;
    return NULL;
}

ax_udp *ax_udp_bind(ax_loop *loop, const char *url, ax_udp_recv_cb cb, const ax_udp_opts *opts,
                    void *ud, int *err)
{
    return udp_open(loop, url, cb, opts, ud, false, err);
}

ax_udp *ax_udp_connect(ax_loop *loop, const char *url, ax_udp_recv_cb cb, const ax_udp_opts *opts,
                       void *ud, int *err)
{
    return udp_open(loop, url, cb, opts, ud, true, err);
}

int ax_udp_flush(ax_udp *u)
{
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    int sent = 0;
    for (int i = 0; i < u->tx_len; i++) {
        tx_entry *e = &u->tx[i];
        iov[i] = (struct iovec){u->arena.p + e->off, e->len};
        msgs[i].msg_hdr = (struct msghdr){
            .msg_name = u->connected ? NULL : &e->to,
            .msg_namelen = u->connected ? 0 : e->to_len,
            .msg_iov = &iov[i],
            .msg_iovlen = 1,
        };
    }
    while (sent < u->tx_len) {
        int r = sendmmsg(u->send_fd, msgs + sent, (unsigned)(u->tx_len - sent), MSG_DONTWAIT);
        if (r == -1) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != ENOBUFS) u->sticky_err = -errno;
            /* the datagram at the head cannot go now: drop it, try the rest */
            u->stats.tx_dropped++;
            sent++;
            continue;
        }
        sent += r;
        u->stats.tx += (uint64_t)r;
    }
    u->tx_len = 0;
    u->arena.len = 0;
    return 0;
}

static void flush_deferred(ax_loop *loop, ax__deferred *d)
{
    (void)loop;
    ax_udp *u = AX__CONTAINER(d, ax_udp, flush_d);
    if (u->closed) {
        ax_free(u->tx);
        ax__buf_free(&u->arena);
        ax_free(u);
        return;
    }
    ax_udp_flush(u);
}

static int reserve(ax_udp *u, size_t len)
{
    if (!u->tx && !(u->tx = ax_malloc((size_t)u->batch * sizeof(*u->tx)))) return AX_ENOMEM;
    if (u->tx_len == u->batch || u->arena.len + len > SEND_ARENA) ax_udp_flush(u);
    return ax__buf_reserve(&u->arena, len);
}

int ax_udp_send(ax_udp *u, const ax_addr *to, const void *data, size_t len)
{
    if (u->closed) return AX_ECLOSED;
    if (len > u->max_datagram) return AX_EMSGSIZE;
    if (!to && !u->connected) return AX_EINVAL;
    if (u->sticky_err) {
        int e = u->sticky_err;
        u->sticky_err = 0;
        return e;
    }
    int rc = reserve(u, len);
    if (rc) return rc;
    tx_entry *e = &u->tx[u->tx_len++];
    if (to) {
        memcpy(&e->to, &to->sa, to->len);
        e->to_len = to->len;
    }
    e->off = u->arena.len;
    e->len = len;
    memcpy(u->arena.p + u->arena.len, data, len); /* reserved */
    u->arena.len += len;
    ax__defer(u->loop, &u->flush_d, flush_deferred);
    return 0;
}

const ax_addr *ax_udp_addr(const ax_udp *u)
{
    return &u->addr;
}
ax_loop *ax_udp_loop(const ax_udp *u)
{
    return u->loop;
}
void ax_udp_set_data(ax_udp *u, void *ud)
{
    u->ud = ud;
}
void *ax_udp_data(const ax_udp *u)
{
    return u->ud;
}
int ax_udp_fd(const ax_udp *u)
{
    return u->io.fd;
}
void ax_udp_stats_get(const ax_udp *u, ax_udp_stats *out)
{
    *out = u->stats;
}

void ax_udp_close(ax_udp *u)
{
    if (!u || u->closed) return;
    ax_udp_flush(u);
    u->closed = true;
    int fd = u->io.fd;
    ax__io_stop(u->loop, &u->io);
    if (u->send_fd != fd) close(u->send_fd);
    close(fd);
    ax__handle_remove(u->loop, &u->h);
    /* freed after this iteration: recv_cb may still be on the stack */
    ax__defer(u->loop, &u->flush_d, flush_deferred);
}

void ax__udp_close_handle(ax__handle *h)
{
    ax_udp_close(AX__CONTAINER(h, ax_udp, h));
}
