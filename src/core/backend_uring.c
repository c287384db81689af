/* backend_uring.c: the io_uring backend (Linux 6.0 and later).
 *
 * Stream connections do their I/O in the ring: one multishot receive per
 * connection, landing in a pool of buffers the loop lends to the kernel,
 * and sends queued as submissions.  Every iteration is one io_uring_enter
 * that submits the sends and receives of the iteration before and collects
 * what completed, where epoll needs epoll_wait plus a recv and a send per
 * ready socket.
 *
 * Everything else (listeners, UDP, the wake-up eventfd, sockets still
 * connecting, DNS) keeps readiness semantics: those fds sit in an epoll set
 * exactly as with the epoll backend, level-triggered, and the ring watches
 * the epoll fd with a one-shot poll that is armed again before each wait.
 *
 * Completions name their operation by an ax__uop pointer in user_data;
 * the owner keeps the uop (and any memory the kernel still reads) alive
 * until the operation's last completion.  ur_destroy waits for all of them,
 * so a closed connection is freed even when the loop goes away first. */
#include "internal.h"

#ifdef AXON_HAVE_URING

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdalign.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SQ_ENTRIES 1024
#define CQ_ENTRIES 8192
#define NBUFS 256 /* receive pool: NBUFS x BUF_SIZE per loop */
#define BUF_SIZE (16 * 1024)
#define BGID 0
#define ARENA 16384 /* msghdr + iovec of sends not submitted yet */
#define CQE_BATCH 64

#define MAX_FIXED 32768 /* fds below this (and the fd limit) get a fixed slot */

#define UD_IGNORE 0u /* cancellations and slot updates */
#define UD_EPOLL 1u  /* the poll on the epoll fd */

typedef struct {
    int epfd; /* first: the readiness half is the epoll backend's (ax__epoll_add) */
    struct io_uring ring;
    bool epoll_armed;
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned mask;
    unsigned inflight; /* operations whose last completion is still to come */
    unsigned nfixed;   /* fixed-file slots: slot i holds fd i, when fixed[i] */
    uint8_t *fixed;
    /* connections whose queues go into the ring just before the next wait
     * (ax__ring_later), so each sends what the whole iteration wrote */
    ax_conn **later;
    unsigned nlater, later_cap;
    size_t arena_used;
    alignas(16) char arena[ARENA];
} ring_data;

/* ---- submissions --------------------------------------------------------- */

static void submit(ring_data *d)
{
    io_uring_submit(&d->ring);
    /* The kernel has read every msghdr and iovec of consumed submissions
     * (IORING_FEAT_SUBMIT_STABLE): the arena is free again. */
    if (io_uring_sq_ready(&d->ring) == 0) d->arena_used = 0;
}

/* A submission slot, after `arena` bytes of the arena are made available.
 * Both checks come first: submitting between taking an sqe and filling it
 * would hand the kernel an empty entry. */
static struct io_uring_sqe *get_sqe(ring_data *d, size_t arena)
{
    if (io_uring_sq_space_left(&d->ring) == 0 || d->arena_used + arena > ARENA) submit(d);
    if (d->arena_used + arena > ARENA) return NULL;
    return io_uring_get_sqe(&d->ring);
}

static void arm_epoll(ring_data *d)
{
    struct io_uring_sqe *s = get_sqe(d, 0);
    if (!s) return;
    io_uring_prep_poll_add(s, d->epfd, POLLIN);
    io_uring_sqe_set_data64(s, UD_EPOLL);
    d->epoll_armed = true;
}

/* Fixed files: slot i of the ring's file table holds fd i while fixed[i],
 * so the kernel skips looking the file up (and counting a reference) for
 * every operation.  Slot updates are queued in the ring like operations,
 * so an update and the operations after it reach the kernel in order (it
 * runs inline at submission): a slot emptied for a closed fd and filled
 * again for the next socket to get that number cannot swap. */
static void slot_update(ring_data *d, unsigned slot, int fd)
{
    struct io_uring_sqe *s = get_sqe(d, 16);
    if (!s) { /* only when the kernel takes no submissions */
        if (fd < 0) io_uring_register_files_update(&d->ring, slot, &fd, 1);
        return;
    }
    int *v = (int *)(void *)(d->arena + d->arena_used);
    d->arena_used += 16;
    *v = fd;
    io_uring_prep_files_update(s, v, 1, (int)slot);
    io_uring_sqe_set_data64(s, UD_IGNORE);
    if (fd >= 0) d->fixed[slot] = 1;
}

/* Give fd a slot if it can have one; true when its submissions (taken
 * after this call) may name it by slot, with IOSQE_FIXED_FILE. */
static bool attach(ring_data *d, int fd)
{
    unsigned u = (unsigned)fd;
    if (u >= d->nfixed) return false;
    if (!d->fixed[u]) slot_update(d, u, fd);
    return d->fixed[u];
}

/* fd is about to be closed: empty its slot, or the slot's reference would
 * keep the socket open. */
void ax__ring_forget(ax_loop *loop, int fd)
{
    ring_data *d = loop->backend_data;
    unsigned u = (unsigned)fd;
    if (u >= d->nfixed || !d->fixed[u]) return;
    d->fixed[u] = 0;
    slot_update(d, u, -1);
}

int ax__ring_recv(ax_loop *loop, ax__uop *op, int fd, bool multishot)
{
    ring_data *d = loop->backend_data;
    bool fixed = attach(d, fd);
    struct io_uring_sqe *s = get_sqe(d, 0);
    if (!s) return AX_ENOMEM;
    if (multishot)
        io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    else
        io_uring_prep_recv(s, fd, NULL, BUF_SIZE, 0);
    if (fixed) s->flags |= IOSQE_FIXED_FILE;
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)op);
    d->inflight++;
    return 0;
}

int ax__ring_send(ax_loop *loop, ax__uop *op, int fd, const struct iovec *iov, int n)
{
    ring_data *d = loop->backend_data;
    size_t need = 0;
    if (n > 1) need = (sizeof(struct msghdr) + (size_t)n * sizeof(struct iovec) + 15) & ~(size_t)15;
    bool fixed = attach(d, fd);
    struct io_uring_sqe *s = get_sqe(d, need);
    if (!s) return AX_ENOMEM;
    if (n == 1) {
        io_uring_prep_send(s, fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct msghdr *mh = (struct msghdr *)(void *)(d->arena + d->arena_used);
        struct iovec *v = (struct iovec *)(mh + 1);
        d->arena_used += need;
        memcpy(v, iov, (size_t)n * sizeof(*v));
        memset(mh, 0, sizeof(*mh));
        mh->msg_iov = v;
        mh->msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(s, fd, mh, MSG_NOSIGNAL);
    }
    if (fixed) s->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)op);
    d->inflight++;
    return 0;
}

/* Ask the kernel to end `op`; its last completion follows (-ECANCELED, or
 * whatever it finished with first). */
void ax__ring_cancel(ax_loop *loop, ax__uop *op)
{
    ring_data *d = loop->backend_data;
    struct io_uring_sqe *s = get_sqe(d, 0);
    if (!s) return;
    io_uring_prep_cancel64(s, (uint64_t)(uintptr_t)op, 0);
    io_uring_sqe_set_data64(s, UD_IGNORE);
}

int ax__ring_later(ax_loop *loop, ax_conn *c)
{
    ring_data *d = loop->backend_data;
    if (d->nlater == d->later_cap) {
        unsigned cap = d->later_cap ? 2 * d->later_cap : 64;
        ax_conn **v = ax_realloc(d->later, cap * sizeof(*v));
        if (!v) return AX_ENOMEM;
        d->later = v;
        d->later_cap = cap;
    }
    d->later[d->nlater++] = c;
    return 0;
}

/* The sends asked for since the last wait (each may close its connection,
 * none asks for another). */
static void run_later(ax_loop *loop, ring_data *d)
{
    for (unsigned i = 0; i < d->nlater; i++)
        ax__conn_ring_later(d->later[i]);
    d->nlater = 0;
}

/* ---- completions --------------------------------------------------------- */

typedef struct {
    uint64_t ud;
    int res;
    unsigned flags;
} done_t;

/* Take completions in batches off the ring before running any callback, so
 * callbacks may submit (and so complete) more while these are handled. */
static int reap(ax_loop *loop, ring_data *d, bool closing)
{
    int total = 0;
    for (int round = 0; round < 16; round++) {
        struct io_uring_cqe *cqes[CQE_BATCH];
        done_t batch[CQE_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&d->ring, cqes, CQE_BATCH);
        for (unsigned i = 0; i < n; i++)
            batch[i] = (done_t){cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
        io_uring_cq_advance(&d->ring, n);
        for (unsigned i = 0; i < n; i++) {
            done_t *c = &batch[i];
            if (c->ud == UD_IGNORE) continue;
            if (c->ud == UD_EPOLL) {
                d->epoll_armed = false;
                if (!closing) ax__epoll_poll(loop, d->epfd, 0);
                continue;
            }
            char *buf = NULL;
            unsigned bid = 0;
            if (c->flags & IORING_CQE_F_BUFFER) {
                bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
                buf = d->bufs + (size_t)bid * BUF_SIZE;
            }
            bool more = (c->flags & IORING_CQE_F_MORE) != 0;
            if (!more) d->inflight--;
            ax__uop *op = (ax__uop *)(uintptr_t)c->ud;
            op->cb(loop, op, c->res, buf, more);
            if (buf) { /* lend it to the kernel again */
                io_uring_buf_ring_add(d->br, buf, BUF_SIZE, (unsigned short)bid, d->mask, 0);
                io_uring_buf_ring_advance(d->br, 1);
            }
        }
        total += (int)n;
        if (n < CQE_BATCH) break;
    }
    return total;
}

static int ur_wait(ax_loop *loop, int timeout_ms)
{
    ring_data *d = loop->backend_data;
    run_later(loop, d);
    /* (a send that failed closed its connection: the close callback runs
     * before anything is waited for) */
    if (loop->deferred || loop->later) timeout_ms = 0;
    if (!d->epoll_armed) arm_epoll(d);
    struct io_uring_cqe *cqe;
    int rc;
    if (timeout_ms == 0) {
        rc = io_uring_submit(&d->ring);
    } else if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(&d->ring, 1);
    } else {
        struct __kernel_timespec ts = {timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000};
        rc = io_uring_submit_and_wait_timeout(&d->ring, &cqe, 1, &ts, NULL);
    }
    if (io_uring_sq_ready(&d->ring) == 0) d->arena_used = 0;
    loop->now = ax__monotonic_ms(); /* callbacks below see the time of waking */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) return rc;
    return reap(loop, d, false);
}

/* ---- setup --------------------------------------------------------------- */

static int ring_setup(ring_data *d)
{
    struct io_uring_params p;
    unsigned tries[] = {IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN, 0};
    int rc = -EINVAL;
    for (unsigned i = 0; i < 2 && rc == -EINVAL; i++) {
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = CQ_ENTRIES;
        rc = io_uring_queue_init_params(SQ_ENTRIES, &d->ring, &p);
    }
    if (rc < 0) return rc;
    if (!(p.features & IORING_FEAT_NODROP) || !(p.features & IORING_FEAT_SUBMIT_STABLE) ||
        !(p.features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&d->ring);
        return -ENOSYS;
    }
    return 0;
}

static int pool_setup(ring_data *d)
{
    size_t rsize = NBUFS * sizeof(struct io_uring_buf);
    d->br = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (d->br == MAP_FAILED) return ax__err();
    d->bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (d->bufs == MAP_FAILED) {
        int rc = ax__err();
        munmap(d->br, rsize);
        return rc;
    }
    io_uring_buf_ring_init(d->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)d->br, .ring_entries = NBUFS, .bgid = BGID};
    int rc = io_uring_register_buf_ring(&d->ring, &reg, 0);
    if (rc < 0) {
        munmap(d->bufs, (size_t)NBUFS * BUF_SIZE);
        munmap(d->br, rsize);
        return rc;
    }
    d->mask = io_uring_buf_ring_mask(NBUFS);
    for (unsigned i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(d->br, d->bufs + (size_t)i * BUF_SIZE, BUF_SIZE, (unsigned short)i,
                              d->mask, (int)i);
    io_uring_buf_ring_advance(d->br, NBUFS);
    return 0;
}

static void pool_free(ring_data *d)
{
    munmap(d->bufs, (size_t)NBUFS * BUF_SIZE);
    munmap(d->br, NBUFS * sizeof(struct io_uring_buf));
}

/* Does this kernel do multishot receives into a buffer ring?  (6.0 and
 * later; the ring's feature bits do not tell.)  Asked once, on a
 * socketpair. */
static int probe(ring_data *d)
{
    static int known; /* 0 unknown, 1 yes, -1 no */
    int k = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
    if (k) return k > 0 ? 0 : -ENOSYS;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) return ax__err();
    int ok = 0;
    struct io_uring_sqe *s = io_uring_get_sqe(&d->ring);
    io_uring_prep_recv_multishot(s, sv[0], NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = BGID;
    io_uring_sqe_set_data64(s, 7);
    if (io_uring_submit(&d->ring) == 1 && write(sv[1], "x", 1) == 1) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {1, 0};
        if (io_uring_wait_cqe_timeout(&d->ring, &cqe, &ts) == 0) {
            ok = cqe->res == 1 && (cqe->flags & IORING_CQE_F_MORE) &&
                 (cqe->flags & IORING_CQE_F_BUFFER);
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            io_uring_cqe_seen(&d->ring, cqe);
            if (ok) {
                io_uring_buf_ring_add(d->br, d->bufs + (size_t)bid * BUF_SIZE, BUF_SIZE,
                                      (unsigned short)bid, d->mask, 0);
                io_uring_buf_ring_advance(d->br, 1);
            }
        }
    }
    close(sv[1]); /* the receive ends with EOF */
    close(sv[0]);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {1, 0};
    while (io_uring_wait_cqe_timeout(&d->ring, &cqe, &ts) == 0) {
        bool last = !(cqe->flags & IORING_CQE_F_MORE);
        io_uring_cqe_seen(&d->ring, cqe);
        if (last) break;
    }
    __atomic_store_n(&known, ok ? 1 : -1, __ATOMIC_RELEASE);
    return ok ? 0 : -ENOSYS;
}

/* A sparse file table as large as the fd limit allows (up to MAX_FIXED).
 * Without one (kernels before 5.19, memory) every fd goes by number. */
static void fixed_setup(ring_data *d)
{
    struct rlimit rl;
    unsigned n = MAX_FIXED;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n) n = (unsigned)rl.rlim_cur;
    d->fixed = ax_calloc(n, 1);
    if (!d->fixed) return;
    if (io_uring_register_files_sparse(&d->ring, n) < 0) {
        ax_free(d->fixed);
        d->fixed = NULL;
        return;
    }
    d->nfixed = n;
}

static int ur_init(ax_loop *loop)
{
    ring_data *d = ax_calloc(1, sizeof(*d));
    if (!d) return AX_ENOMEM;
    int rc = ring_setup(d);
    if (rc < 0) goto fail;
    if ((rc = pool_setup(d)) < 0) goto fail_ring;
    if ((rc = probe(d)) < 0) goto fail_pool;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd == -1) {
        rc = ax__err();
        goto fail_pool;
    }
    fixed_setup(d);
    loop->backend_data = d;
    return 0;

fail_pool:
    pool_free(d);
fail_ring:
    io_uring_queue_exit(&d->ring);
fail:
    ax_free(d);
    return rc < 0 ? rc : -ENOSYS;
}

static void ur_destroy(ax_loop *loop)
{
    ring_data *d = loop->backend_data;
    run_later(loop, d); /* (every connection is closed: this frees them) */
    /* Closed connections wait for their operations' last completions
     * (their cancellations are queued): collect them, freeing the
     * connections, before the ring goes away. */
    for (int i = 0; d->inflight > 0 && i < 500; i++) {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {0, 10 * 1000 * 1000};
        io_uring_submit_and_wait_timeout(&d->ring, &cqe, 1, &ts, NULL);
        reap(loop, d, true);
    }
    io_uring_queue_exit(&d->ring);
    pool_free(d);
    close(d->epfd);
    ax_free(d->fixed);
    ax_free(d->later);
    ax_free(d);
}

const ax__backend ax__backend_uring = {
    "uring", false, ur_init, ur_destroy, ax__epoll_add, ax__epoll_mod, ax__epoll_del, ur_wait, true,
};

#else /* no liburing at build time: the ring calls exist, and fail */

#include <errno.h>

int ax__ring_recv(ax_loop *loop, ax__uop *op, int fd, bool multishot)
{
    (void)loop, (void)op, (void)fd, (void)multishot;
    return -ENOSYS;
}
int ax__ring_send(ax_loop *loop, ax__uop *op, int fd, const struct iovec *iov, int n)
{
    (void)loop, (void)op, (void)fd, (void)iov, (void)n;
    return -ENOSYS;
}
void ax__ring_cancel(ax_loop *loop, ax__uop *op)
{
    (void)loop, (void)op;
}
void ax__ring_forget(ax_loop *loop, int fd)
{
    (void)loop, (void)fd;
}
int ax__ring_later(ax_loop *loop, ax_conn *c)
{
    (void)loop, (void)c;
    return -ENOSYS;
}

#endif
