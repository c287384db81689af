/* conn.c: stream connections: the lifecycle every connection shares
 * (delivering input, the write queue of bytes and file ranges, watermarks
 * and the output cap, pause and resume, half-close, lingering, timeouts
 * and closing) and the plain transport.  TLS (conn_tls.c) and the two drivers (conn_sock.c for
 * epoll and poll, conn_ring.c for io_uring) sit behind the tables that
 * conn_internal.h describes. */
#include "buf.h"
#include "conn_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sendfile.h>
#include <unistd.h>

#define IOV_BATCH AX__IOV_BATCH
typedef ax__wnode wnode;

/* Nodes come in power-of-two blocks from 256 bytes to 64 KiB, and freed
 * ones are kept per loop for reuse, up to NODE_CACHE_BYTES per class: with
 * the ring every write is queued until its send completes, and this makes
 * that cost no allocation (an echo, an HTTP response, a 16 KiB piece of a
 * streamed body).  Larger writes are allocated as they come. */
#define NODE_MIN_SHIFT 8
#define NODE_BIG 0xffu
/* The smallest class holds the nodes of slices and of small writes: a
 * frame per subscriber in a fan-out to thousands.  At 1 MiB (4,096
 * nodes), a loop of `axon serve --threads 2` with 1,000 subscribers freed
 * past it and allocated again at every burst (malloc's sysmalloc at 17% of
 * the samples; bench/RESULTS.md, 2026-12-05 ring6). */
#define NODE_CACHE_BYTES(cls) ((cls) ? 1u << 20 : 4u << 20)

/* A file range read into memory (when sendfile cannot read the file) goes
 * this much at a time. */
#define FILE_COPY_CHUNK (64u * 1024)

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
        w->slice = NULL;
        w->file = NULL;
        w->kind = AX__W_BYTES;
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
    w->slice = NULL;
    w->file = NULL;
    w->kind = AX__W_BYTES;
    return w;
}

static void node_free(ax_loop *loop, wnode *w)
{
    ax_slice_unref(w->slice);
    ax_file_unref(w->file);
    unsigned cls = w->cls;
    if (cls != NODE_BIG) {
        uint32_t size = 1u << (cls + NODE_MIN_SHIFT);
        if (loop->node_cache_bytes[cls] + size <= NODE_CACHE_BYTES(cls)) {
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

static void close_graceful(ax_conn *c, int reason);
static void conn_again(ax_loop *loop, ax__deferred *d);

/* The connection's limits become *l: a set the loop keeps (added if new
 * and there is room), else a copy in the side struct.  0 or AX_ENOMEM
 * (the limits are unchanged then). */
static int set_lims(ax_conn *c, const ax__conn_lims *l)
{
    ax_loop *loop = c->loop;
    unsigned i = 0;
    while (i < loop->nlims && memcmp(&loop->lims[i], l, sizeof *l) != 0)
        i++;
    if (i == loop->nlims && i < AX__LIMS) {
        loop->lims[i] = *l;
        loop->nlims++;
    } else if (i == loop->nlims) {
        if (!ax__conn_ext_get(c)) return AX_ENOMEM;
        c->x->lims = *l;
        i = AX__LIMS_X;
    }
    c->flags = (c->flags & ~(0xfu << F_LIMS_SHIFT)) | (uint32_t)i << F_LIMS_SHIFT;
    return 0;
}

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
    ax_conn *c = ax_calloc(1, AX__CONN_SIZE(loop));
    if (!c) {
        *err = AX_ENOMEM;
        return NULL;
    }
    c->loop = loop;
    c->cbs = cbs;
    c->ud = ud;
    c->listener = listener;
    c->flags = (connecting ? F_CONNECTING : F_CONNECTED) | (tcp ? F_TCP : 0) |
               (lim->no_delay ? F_NODELAY : 0);
    const ax__conn_lims l = {lim->low, lim->high, lim->cap, lim->max_input};
    if (set_lims(c, &l) != 0) {
        ax_free(c);
        *err = AX_ENOMEM;
        return NULL;
    }
    /* Limits other than the defaults, and a name to resolve, live in the
     * side struct; an accepted connection with the defaults has none. */
    if (fd < 0 || lim->idle_ms || lim->connect_ms != AX__CONNECT_MS ||
        lim->linger_ms != AX__LINGER_MS) {
        if (!ax__conn_ext_get(c)) {
            ax_free(c);
            *err = AX_ENOMEM;
            return NULL;
        }
        c->x->idle_ms = lim->idle_ms;
        c->x->connect_ms = lim->connect_ms;
        c->x->linger_ms = lim->linger_ms;
    }
    if (fd < 0) { /* a pending connect (dns.c): no socket yet */
        c->io.fd = -1;
        c->flags |= F_PARKED;
        ax__handle_add(loop, &c->h, AX__H_CONN);
        return c;
    }
    if (tcp && lim->no_delay && !connecting) ax__set_nodelay(fd, true);
    int rc = ax__drv(c)->start(c, fd, connecting);
    if (rc != 0) {
        ax_free(c->x);
        ax_free(c);
        *err = rc;
        return NULL;
    }
    ax__handle_add(loop, &c->h, AX__H_CONN);
    ax__conn_arm_timer(c);
    ax__conn_update_interest(c);
    return c;
}

/* A client connection whose host name is still being resolved (dns.c). */
ax_conn *ax__conn_new_pending(ax_loop *loop, const ax_conn_cbs *cbs, const ax__conn_limits *lim,
                              void *ud, ax__pending *p, int *err)
{
    ax_conn *c = ax__conn_new(loop, -1, cbs, lim, ud, NULL, true, true, err);
    if (c) c->x->pending = p; /* (made with the side struct: fd < 0) */
    return c;
}

/* The pending connection gets its socket, connecting or just connected;
 * connect_done() finishes as for any client.  The connect timeout keeps
 * counting from ax_connect(). */
int ax__conn_attach(ax_conn *c, int fd, bool tcp)
{
    c->x->pending = NULL;
    if (!tcp) c->flags &= ~F_TCP;
    int rc = ax__drv(c)->start(c, fd, true);
    if (rc != 0) {
        c->io.fd = -1;
        return rc;
    }
    c->flags &= ~F_PARKED;
    ax__conn_arm_timer(c);
    return 0;
}

bool ax__conn_wants_input(const ax_conn *c)
{
    return (c->flags & F_LINGER) || !(c->flags & (F_PAUSED | F_PEER_EOF | F_CLOSING));
}

void ax__conn_update_interest(ax_conn *c)
{
    if ((c->flags & F_CLOSED) || c->io.fd < 0) return;
    ax__drv(c)->interest(c);
}

/* ---- timeouts: one lazily made timer per connection ---------------------- */

static uint32_t timer_limit(const ax_conn *c)
{
    const ax__conn_ext *x = c->x;
    if (c->flags & (F_CONNECTING | F_HANDSHAKE)) return x ? x->connect_ms : AX__CONNECT_MS;
    if (c->flags & (F_CLOSING | F_LINGER)) return x ? x->linger_ms : AX__LINGER_MS;
    return x ? x->idle_ms : 0;
}

ax__conn_ext *ax__conn_ext_get(ax_conn *c)
{
    if (c->x) return c->x;
    ax__conn_ext *x = ax_calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->connect_ms = AX__CONNECT_MS;
    x->linger_ms = AX__LINGER_MS;
    x->last_active = c->loop->now;
    c->x = x;
    return x;
}

static void timer_cb(ax_timer *t, void *ud)
{
    ax_conn *c = ud;
    (void)t;
    uint32_t limit = timer_limit(c);
    if (!limit || (c->flags & F_CLOSED)) return;
    uint64_t elapsed = c->loop->now - c->x->last_active;
    if (elapsed < limit) {
        ax_timer_start(c->x->timer, limit - elapsed, 0);
        return;
    }
    if (c->flags & (F_CONNECTING | F_HANDSHAKE))
        ax__conn_finish(c, AX_ETIMEDOUT, false);
    else if (c->flags & (F_CLOSING | F_LINGER))
        ax__conn_finish(c, c->reason, true);
    else
        ax__conn_finish(c, AX_EIDLE, false);
}

/* Activity only stamps last_active; the timer checks it when it fires. */
void ax__conn_arm_timer(ax_conn *c)
{
    ax__conn_ext *x = c->x;
    if (x && x->pending) return; /* dns.c keeps the deadline until there is a socket */
    uint32_t limit = timer_limit(c);
    if (!limit) {
        if (x && x->timer) ax_timer_stop(x->timer);
        return;
    }
    if (!x && !(x = ax__conn_ext_get(c))) return;
    if (!x->timer && !(x->timer = ax_timer_new(c->loop, timer_cb, c))) return;
    uint64_t elapsed = c->loop->now - x->last_active;
    ax_timer_start(x->timer, elapsed < limit ? limit - elapsed : 0, 0);
}

/* ---- closing ------------------------------------------------------------- */

void ax__conn_free_queue(ax_conn *c)
{
    wnode *n = ax__wq_head(c);
    while (n) {
        wnode *next = ax__wq_next(c, n);
        node_free(c->loop, n);
        n = next;
    }
    c->wq = NULL;
    if (c->x) {
        c->x->queued_file = 0;
        c->x->nlazy = 0;
    }
}

/* The memory goes once on_close has run, no next-iteration work is queued
 * and the driver holds no operation of this connection. */
void ax__conn_release(ax_conn *c)
{
    if ((c->flags & F_CB_DONE) && !ax__deferred_queued(&c->deferred) && !ax__drv(c)->busy(c)) {
        ax_free(c->x);
        ax_free(c);
    }
}

static void conn_deferred(ax_loop *loop, ax__deferred *d)
{
    ax_conn *c = AX__CONTAINER(d, ax_conn, deferred);
    ax__handle_remove(loop, &c->h);
    if (c->listener && !(c->flags & F_OPENED)) /* accepted, never opened: no on_close */
        ax__listener_settled(c->listener, c, false, c->reason);
    else if (c->cbs->on_close)
        c->cbs->on_close(c, c->reason);
    ax__tp(c)->release(c);
    c->flags |= F_CB_DONE;
    ax__conn_release(c);
}

/* Offer input kept across a pause in pieces the size of a read, as it
 * would have come had it stayed in the socket (the ring may have taken in
 * megabytes before the pause landed).  What on_data leaves of a piece
 * starts the next one; a piece it takes nothing of grows, for a message
 * longer than a piece.  A pause stops the offers; input left over that
 * nobody paused for counts against max_input, as in ax__conn_deliver(). */
#define KEPT_PIECE AX__READ_BUF
void ax__conn_deliver_kept(ax_conn *c)
{
    size_t off = 0, piece = KEPT_PIECE;
    while (off < ax__in_len(c) && !(c->flags & F_PAUSED)) {
        size_t left = c->in->len - off, n = left < piece ? left : piece;
        size_t used = c->cbs->on_data ? c->cbs->on_data(c, c->in->data + off, n) : n;
        if (c->flags & F_CLOSED) return;
        if (used > n) used = n;
        off += used;
        if (n == left) break; /* all offered: the rest waits for more bytes */
        piece = used ? KEPT_PIECE : piece * 2;
    }
    if (off) {
        memmove(c->in->data, c->in->data + off, c->in->len - off);
        c->in->len -= (uint32_t)off;
    }
    if (!ax__in_len(c)) {
        ax__conn_drop_input(c);
    } else if (!(c->flags & F_PAUSED) && c->in->len > ax__lims(c)->max_input) {
        ax__conn_finish(c, AX_EMSGSIZE, true);
    }
}

/* A send made inside a write call (ax__conn_kicked) left work for after
 * the flush: a drain owed to a writer told 1, a close or shutdown waiting
 * for the queue. */
static bool flush_owed(const ax_conn *c)
{
    if ((c->flags & F_ABOVE_HIGH) && ax__wq_bytes(c) <= ax__lims(c)->low) return true;
    return !c->wq && (c->flags & (F_CLOSING | F_SHUT_PENDING));
}

void ax__conn_kicked(ax_conn *c)
{
    if (!(c->flags & F_CLOSED) && flush_owed(c)) ax__conn_again_later(c);
}

/* Next iteration: what a send inside a write call owes, offer input kept
 * across a pause, then let the driver read on (edge mode, a read budget, a
 * transport holding input). */
static void conn_again(ax_loop *loop, ax__deferred *d)
{
    ax_conn *c = AX__CONTAINER(d, ax_conn, deferred);
    (void)loop;
    if (c->flags & F_CLOSED) {
        ax__conn_release(c);
        return;
    }
    if (flush_owed(c)) {
        ax__conn_after_flush(c);
        if (c->flags & F_CLOSED) return;
    }
    if (c->flags & F_PAUSED) return;
    if ((c->flags & F_REDELIVER) && ax__in_len(c)) {
        c->flags &= ~F_REDELIVER;
        ax__conn_deliver_kept(c);
        if (c->flags & (F_CLOSED | F_PAUSED)) return;
    }
    ax__drv(c)->again(c);
}

void ax__conn_again_later(ax_conn *c)
{
    ax__defer_later(c->loop, &c->deferred, conn_again); /* (not after a close: queued) */
}

void ax__conn_finish(ax_conn *c, int reason, bool rst)
{
    if (c->flags & F_CLOSED) return;
    c->flags |= F_CLOSED;
    c->reason = reason;
    if (c->x && c->x->pending) { /* closed while resolving: stop dns.c's work */
        ax__pending *p = c->x->pending;
        c->x->pending = NULL;
        p->cancel(p);
    }
    if (rst && (c->flags & F_TCP) && c->io.fd >= 0) {
        struct linger lg = {1, 0};
        setsockopt(c->io.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    ax__drv(c)->stop(c);
    if (c->io.fd >= 0) close(c->io.fd); /* (the ring keeps its own reference) */
    c->io.fd = -1;
    if (ax__drv(c)->queue_free(c)) ax__conn_free_queue(c); /* else the kernel may still read it */
    ax__conn_drop_input(c);
    if (c->x) {
        ax_timer_free(c->x->timer);
        c->x->timer = NULL;
    }
    /* One node for both: queued for conn_again (next iteration), it runs
     * the close callback instead, once the wait in between has returned. */
    if (ax__deferred_queued(&c->deferred))
        c->deferred.fn = conn_deferred;
    else
        ax__defer(c->loop, &c->deferred, conn_deferred);
}

void ax__conn_fail(ax_conn *c, int err)
{
    ax__conn_finish(c, err, false);
}

void ax__conn_close_handle(ax__handle *h)
{
    ax__conn_finish(AX__CONTAINER(h, ax_conn, h), AX_ECANCELED, false);
}

/* Everything is flushed.  Closing a socket whose receive queue is not
 * empty makes the kernel send RST, and an RST can destroy the last bytes
 * still on their way to the peer.  So unless the peer has already finished,
 * send FIN and read (discarding) until its FIN, at most linger_ms. */
static void finish_or_linger(ax_conn *c)
{
    if ((c->flags & (F_PEER_EOF | F_CONNECTING)) || !(c->flags & F_CONNECTED)) {
        ax__conn_finish(c, c->reason, false);
        return;
    }
    if (!(c->flags & F_SHUT_DONE)) shutdown(c->io.fd, SHUT_WR);
    c->flags = (c->flags & ~(F_CLOSING | F_PAUSED)) | F_LINGER | F_SHUT_DONE;
    ax__conn_touch(c);
    ax__conn_update_interest(c);
    ax__conn_arm_timer(c);
}

static void close_graceful(ax_conn *c, int reason)
{
    if (c->flags & (F_CLOSED | F_CLOSING | F_LINGER)) return;
    c->reason = reason;
    /* the give-up time counts from now, not from when this iteration began
     * (a callback may have spent long writing before it closed) */
    ax_loop_update_time(c->loop);
    ax__tp(c)->shutdown(c);
    if (c->flags & F_CLOSED) return;
    if (!c->wq || (c->flags & F_CONNECTING)) {
        finish_or_linger(c);
        return;
    }
    c->flags |= F_CLOSING;
    ax__conn_touch(c);
    ax__conn_update_interest(c);
    ax__conn_arm_timer(c);
}

void ax_conn_close(ax_conn *c)
{
    close_graceful(c, 0);
}

void ax_conn_abort(ax_conn *c, int reason)
{
    ax__conn_finish(c, reason, true);
}

/* ---- input --------------------------------------------------------------- */

/* Make room for `need` bytes of kept input: small partial messages (a
 * trickled HTTP head) cost their size rounded up, not a read buffer;
 * growing doubles, so a large message is copied O(log n) times. */
bool ax__conn_in_reserve(ax_conn *c, size_t need)
{
    const size_t hdr = sizeof(ax__kept);
    size_t cap = c->in ? c->in->cap : 0;
    if (need <= cap) return true;
    /* the allocation, header included, grows by doubling from 256 */
    size_t size = ax__buf_grow_cap(cap ? cap + hdr : 0, need + hdr, 256);
    if (size - hdr > UINT32_MAX) size = need + hdr;
    ax__kept *in = ax_realloc(c->in, size);
    if (!in) return false;
    if (!c->in) in->len = 0;
    in->cap = (uint32_t)(size - hdr);
    c->in = in;
    return true;
}

void ax__conn_drop_input(ax_conn *c)
{
    ax_free(c->in);
    c->in = NULL;
}

/* Add n received bytes behind the kept input.  False when out of memory
 * (the connection is closed then). */
bool ax__conn_append_input(ax_conn *c, const char *buf, size_t n)
{
    if (!ax__conn_in_reserve(c, (size_t)ax__in_len(c) + n)) {
        ax__conn_finish(c, AX_ENOMEM, true);
        return false;
    }
    memcpy(c->in->data + c->in->len, buf, n);
    c->in->len += (uint32_t)n;
    return true;
}

/* Offer input to on_data; keep what it leaves.  `data` is NULL when the
 * input is already in c->in (len then counts the new bytes at its end). */
void ax__conn_deliver(ax_conn *c, char *data, size_t len)
{
    char *buf = data;
    size_t total = len;
    if (!data) {
        buf = c->in->data;
        total = c->in->len;
    }
    size_t used = c->cbs->on_data ? c->cbs->on_data(c, buf, total) : total;
    if (c->flags & F_CLOSED) return;
    if (used >= total) {
        ax__conn_drop_input(c); /* idle connections keep no buffer */
        return;
    }
    size_t rest = total - used;
    if (rest > ax__lims(c)->max_input) {
        ax__conn_finish(c, AX_EMSGSIZE, true);
        return;
    }
    if (!data) {
        memmove(c->in->data, c->in->data + used, rest);
    } else {
        if (!ax__conn_in_reserve(c, rest)) {
            ax__conn_finish(c, AX_ENOMEM, true);
            return;
        }
        memcpy(c->in->data, buf + used, rest);
    }
    c->in->len = (uint32_t)rest;
}

void ax__conn_peer_eof(ax_conn *c)
{
    c->flags |= F_PEER_EOF;
    ax__conn_update_interest(c);
    if (c->flags & F_SHUT_DONE) {
        ax__conn_finish(c, AX_EOF, false);
    } else if (c->cbs->on_end) {
        c->cbs->on_end(c);
    } else {
        close_graceful(c, AX_EOF);
    }
}

/* ---- the plain transport -------------------------------------------------- */

/* A partial message waits: read behind it when its buffer has room, else
 * into the shared buffer (and append only what came). */
static char *plain_read_buf(ax_conn *c, size_t *room)
{
    if (ax__in_len(c) && c->in->cap - c->in->len >= AX__READ_BUF / 16) {
        *room = c->in->cap - c->in->len;
        return c->in->data + c->in->len;
    }
    *room = AX__READ_BUF;
    return c->loop->rbuf;
}

/* Keep input that came while paused, for the resume to offer.  A driver
 * that receives ahead goes on until the pause lands, at most what the
 * socket had buffered (which epoll would have left in the kernel): that
 * is not input on_data refused, so max_input does not apply, only a hard
 * bound. */
#define KEPT_SLACK (16u * 1024 * 1024)
static void keep_input(ax_conn *c, const char *buf, size_t n)
{
    if ((size_t)ax__in_len(c) + n > (size_t)ax__lims(c)->max_input + KEPT_SLACK) {
        ax__conn_finish(c, AX_EMSGSIZE, true);
        return;
    }
    if (ax__conn_append_input(c, buf, n)) c->flags |= F_REDELIVER;
}

static void plain_eof(ax_conn *c)
{
    if (c->flags & F_PAUSED)
        c->flags |= F_EOF_HELD; /* after the kept input, on resume */
    else if (c->flags & F_CLOSING)
        c->flags |= F_PEER_EOF; /* no linger needed once flushed */
    else
        ax__conn_peer_eof(c);
}

static void plain_input(ax_conn *c, char *buf, ssize_t n)
{
    if (n <= 0) {
        if (n == 0) plain_eof(c);
        return;
    }
    size_t len = (size_t)n;
    if (c->flags & F_PAUSED) { /* a receive that came before the pause landed */
        keep_input(c, buf, len);
        return;
    }
    if (c->flags & (F_CLOSING | F_PEER_EOF)) return;
    if (c->in && buf == c->in->data + c->in->len) { /* read behind the kept input */
        c->in->len += (uint32_t)len;
        ax__conn_deliver(c, NULL, 0);
    } else if (!ax__in_len(c)) {
        ax__conn_deliver(c, buf, len);
    } else if (ax__conn_append_input(c, buf, len)) {
        /* what came while a driver that reads ahead was paused may be large */
        if (ax__drv(c)->ahead)
            ax__conn_deliver_kept(c);
        else
            ax__conn_deliver(c, NULL, 0);
    }
}

static void plain_nothing(ax_conn *c)
{
    (void)c;
}

static bool plain_pending(const ax_conn *c)
{
    (void)c;
    return false;
}

static bool plain_open(ax_conn *c)
{
    (void)c;
    return true;
}

const ax__transport ax__transport_plain = {
    .name = "plain",
    .input = plain_input,
    .read_buf = plain_read_buf,
    .writev = ax__conn_write_raw,
    .shutdown = plain_nothing,
    .pending = plain_pending,
    .open = plain_open,
    .release = plain_nothing,
    .write_file = ax__conn_queue_file,
    .prep = NULL, /* the drivers send file ranges themselves */
    .zero_copy = true,
};

/* ---- writing ------------------------------------------------------------- */

static void drop_head(ax_conn *c)
{
    wnode *w = c->wq->next;
    if (w->kind != AX__W_BYTES) c->x->nlazy--;
    if (w == c->wq)
        c->wq = NULL;
    else
        c->wq->next = w->next;
    node_free(c->loop, w);
}

void ax__conn_consume(ax_conn *c, size_t done)
{
    ax__conn_count(c, 1, done);
    c->wq->queued -= done;
    ax__conn_touch(c);
    while (done) {
        wnode *w = c->wq->next;
        bool file = w->kind == AX__W_FILE;
        if (done < w->len) {
            if (file) {
                w->foff += done;
                c->x->queued_file -= done;
            } else {
                w->data += done;
            }
            w->len -= (uint32_t)done;
            break;
        }
        done -= w->len;
        if (file) c->x->queued_file -= w->len;
        drop_head(c);
    }
}

int ax__conn_queue_iov(const ax_conn *c, struct iovec *iov, size_t *want)
{
    int n = 0;
    size_t total = 0;
    for (wnode *w = ax__wq_head(c); w && w->kind == AX__W_BYTES && n < IOV_BATCH;
         w = ax__wq_next(c, w), n++) {
        iov[n].iov_base = (void *)w->data;
        iov[n].iov_len = w->len;
        total += w->len;
    }
    if (want) *want = total;
    return n;
}

/* After the queue shrank: shutdown, finish a graceful close, or drain. */
void ax__conn_after_flush(ax_conn *c)
{
    if (c->wq) {
        ax__conn_update_interest(c);
    } else {
        if (c->flags & F_CLOSING) {
            finish_or_linger(c);
            return;
        }
        if (c->flags & F_SHUT_PENDING) {
            c->flags = (c->flags & ~F_SHUT_PENDING) | F_SHUT_DONE;
            shutdown(c->io.fd, SHUT_WR);
            if (c->flags & F_PEER_EOF) {
                ax__conn_finish(c, AX_EOF, false);
                return;
            }
        }
        ax__conn_update_interest(c);
    }
    if ((c->flags & F_ABOVE_HIGH) && ax__wq_bytes(c) <= ax__lims(c)->low) {
        c->flags &= ~F_ABOVE_HIGH;
        if (c->cbs->on_drain) c->cbs->on_drain(c);
    }
}

static int write_state(const ax_conn *c)
{
    if (c->flags & (F_CLOSED | F_CLOSING | F_LINGER | F_SHUT_PENDING | F_SHUT_DONE))
        return AX_ECLOSED;
    return 0;
}

/* `len` more bytes are in the queue: enforce the cap; report the high
 * watermark. */
static int queue_grew(ax_conn *c, size_t len, bool was_empty)
{
    c->wq->queued += len; /* (the queue has a node: this one) */
    if (c->wq->queued - ax__conn_queued_file(c) > ax__lims(c)->cap) {
        ax__conn_finish(c, AX_EOUTPUTCAP, true);
        return AX_EOUTPUTCAP;
    }
    ax__drv(c)->queued(c, was_empty);
    if (c->flags & F_CLOSED) return c->reason < 0 ? c->reason : AX_ECLOSED;
    /* Corked, nothing went yet: the watermark is judged by ax_conn_uncork,
     * after the send (a 64 KiB file behind its head would otherwise look
     * above it, and the writer would wait for an on_drain it need not). */
    if (c->flags & F_CORKED) return 0;
    if (ax__wq_bytes(c) > ax__lims(c)->high) {
        c->flags |= F_ABOVE_HIGH;
        return 1;
    }
    return 0;
}

/* Put w in the queue after p (p NULL: first); it is last when p is. */
static void link_node(ax_conn *c, wnode *w, wnode *p)
{
    wnode *last = c->wq;
    if (!last) {
        w->next = w;
        w->queued = 0;
        c->wq = w;
    } else if (!p) {
        w->next = last->next;
        last->next = w;
    } else {
        w->next = p->next;
        p->next = w;
        if (p == last) {
            w->queued = last->queued;
            c->wq = w;
        }
    }
}

/* Queue a node; enforce the cap; report the high watermark. */
static int enqueue(ax_conn *c, wnode *w)
{
    if (w->kind != AX__W_BYTES && !ax__conn_ext_get(c)) {
        node_free(c->loop, w);
        return AX_ENOMEM;
    }
    bool was_empty = !c->wq;
    link_node(c, w, c->wq);
    if (w->kind != AX__W_BYTES) {
        if (w->kind == AX__W_FILE) c->x->queued_file += w->len;
        c->x->nlazy++;
    }
    return queue_grew(c, w->len, was_empty);
}

/* The driver first when nothing is queued: the common case costs one
 * send() and no allocation.  Returns bytes taken or a negative code. */
static ssize_t try_direct(ax_conn *c, const struct iovec *iov, int n)
{
    if (c->wq || (c->flags & (F_CONNECTING | F_CORKED)) || !(c->flags & F_CONNECTED)) return 0;
    return ax__drv(c)->send(c, iov, n);
}

/* Copy the iovecs' bytes after the first `skip` to p. */
static void copy_iov(char *p, const struct iovec *iov, int n, size_t skip)
{
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
}

/* A node holding a copy of the iovecs' bytes after the first `skip`. */
static wnode *copy_node(ax_conn *c, const struct iovec *iov, int n, size_t skip, size_t rest)
{
    if (rest > UINT32_MAX) return NULL; /* (the cap closes far sooner) */
    wnode *w = node_new(c->loop, rest);
    if (!w) return NULL;
    w->data = (char *)(w + 1);
    w->len = (uint32_t)rest;
    copy_iov((char *)(w + 1), iov, n, skip);
    return w;
}

/* Bytes that fit in the room left in the block of the queue's last node
 * (its own copy of bytes) go there: a run of small writes (a frame per
 * message to a subscriber) makes one node and one iovec, not one each.
 * A ring send may be reading that node: it reads only the bytes the node
 * had when it was submitted.  True when they went there. */
static bool append_tail(ax_conn *c, const struct iovec *iov, int n, size_t skip, size_t rest)
{
    wnode *w = c->wq;
    if (!w) return false;
    if (w->kind != AX__W_BYTES || w->slice || w->cls == NODE_BIG) return false;
    const char *end = (const char *)w + ((size_t)1 << (w->cls + NODE_MIN_SHIFT));
    char *p = (char *)(uintptr_t)(w->data + w->len);
    if ((size_t)(end - p) < rest) return false;
    copy_iov(p, iov, n, skip);
    w->len += (uint32_t)rest;
    return true;
}

int ax__conn_write_raw(ax_conn *c, const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (!total) return 0;
    ssize_t done = try_direct(c, iov, n);
    if (done < 0) return (int)done;
    if ((size_t)done == total) return 0;
    size_t rest = total - (size_t)done;
    if (append_tail(c, iov, n, (size_t)done, rest)) return queue_grew(c, rest, false);
    wnode *w = copy_node(c, iov, n, (size_t)done, rest);
    if (!w) return AX_ENOMEM;
    return enqueue(c, w);
}

int ax__conn_queue_copy(ax_conn *c, const struct iovec *iov, int n, uint8_t kind)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (!total) return 0;
    wnode *w = copy_node(c, iov, n, 0, total);
    if (!w) return AX_ENOMEM;
    w->kind = kind;
    return enqueue(c, w);
}

int ax_conn_writev(ax_conn *c, const struct iovec *iov, int n)
{
    int rc = write_state(c);
    if (rc) return rc;
    return ax__tp(c)->writev(c, iov, n);
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
    if (!ax__tp(c)->zero_copy) return ax__tp(c)->writev(c, &iov, 1);
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

/* Queue references to the slices behind what the driver took at once. */
static int queue_slices(ax_conn *c, ax_slice *const *s, const struct iovec *iov, int k, size_t skip)
{
    int rc = 0;
    for (int i = 0; i < k; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        if (len - skip > UINT32_MAX) return AX_ENOMEM;
        wnode *w = node_new(c->loop, 0);
        if (!w) return AX_ENOMEM;
        w->slice = ax_slice_ref(s[i]);
        w->data = (const char *)iov[i].iov_base + skip;
        w->len = (uint32_t)(len - skip);
        skip = 0;
        int e = enqueue(c, w);
        if (e < 0) return e;
        if (e > rc) rc = e;
    }
    return rc;
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
        int e;
        if (!ax__tp(c)->zero_copy) { /* encrypting copies anyway */
            e = ax__tp(c)->writev(c, iov, k);
        } else {
            ssize_t done = try_direct(c, iov, k);
            if (done < 0) return (int)done;
            e = queue_slices(c, s + first, iov, k, (size_t)done);
        }
        if (e < 0) return e;
        if (e > rc) rc = e;
        first += k;
    }
    return rc;
}

size_t ax_conn_queued(const ax_conn *c)
{
    return ax__wq_bytes(c);
}

/* ---- file ranges ---------------------------------------------------------- */

/* Nodes of at most this many bytes (their length is 32 bits). */
#define FILE_NODE_MAX (1u << 30)

int ax__conn_queue_file(ax_conn *c, ax_file *f, uint64_t off, uint64_t len)
{
    int rc = 0;
    while (len) {
        uint32_t n = len > FILE_NODE_MAX ? FILE_NODE_MAX : (uint32_t)len;
        wnode *w = node_new(c->loop, 0);
        if (!w) return AX_ENOMEM;
        w->file = ax_file_ref(f);
        w->foff = off;
        w->len = n;
        w->kind = AX__W_FILE;
        int e = enqueue(c, w);
        if (e < 0) return e;
        if (e > rc) rc = e;
        off += n;
        len -= n;
    }
    return rc;
}

int ax_conn_write_file(ax_conn *c, ax_file *f, uint64_t off, uint64_t len)
{
    int rc = write_state(c);
    if (rc) return rc;
    if (!f || off + len < off) return AX_EINVAL;
    if (!len) return 0;
    return ax__tp(c)->write_file(c, f, off, len);
}

bool ax__conn_file_follows(const ax_conn *c, int n)
{
    const wnode *w = ax__wq_head(c);
    while (w && n--)
        w = ax__wq_next(c, w);
    return w && w->kind == AX__W_FILE;
}

int ax__conn_file_read(const ax_conn *c, char *buf, size_t n)
{
    const wnode *w = ax__wq_head(c);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(ax_file_fd(w->file), buf + got, n - got, (off_t)(w->foff + got));
        if (r == -1 && errno == EINTR) continue;
        if (r == -1) return ax__err();
        if (r == 0) return AX_EIO; /* the file is shorter than the range */
        got += (size_t)r;
    }
    return 0;
}

/* Put a node of bytes at the head, or before the first node that is not
 * bytes. */
static int insert_node(ax_conn *c, wnode *w, bool front)
{
    wnode *p = NULL;
    for (wnode *n = ax__wq_head(c); !front && n && n->kind == AX__W_BYTES; n = ax__wq_next(c, n))
        p = n;
    link_node(c, w, p);
    c->wq->queued += w->len;
    if (c->wq->queued - ax__conn_queued_file(c) > ax__lims(c)->cap) {
        ax__conn_finish(c, AX_EOUTPUTCAP, true);
        return AX_EOUTPUTCAP;
    }
    return 0;
}

int ax__conn_insert_bytes(ax_conn *c, const char *p, size_t n, bool front)
{
    struct iovec iov = {(void *)p, n};
    wnode *w = n ? copy_node(c, &iov, 1, 0, n) : NULL;
    if (!n) return 0;
    if (!w) {
        ax__conn_finish(c, AX_ENOMEM, true);
        return AX_ENOMEM;
    }
    return insert_node(c, w, front);
}

void ax__conn_take_lazy(ax_conn *c, size_t n)
{
    wnode *w = c->wq->next;
    c->wq->queued -= n;
    if (w->kind == AX__W_FILE) c->x->queued_file -= n;
    if (n < w->len) {
        w->len -= (uint32_t)n;
        if (w->kind == AX__W_FILE)
            w->foff += n;
        else
            w->data += n;
        return;
    }
    drop_head(c);
}

int ax__conn_file_to_bytes(ax_conn *c, size_t max)
{
    size_t n = c->wq->next->len < max ? c->wq->next->len : max;
    wnode *w = node_new(c->loop, n);
    int rc = w ? 0 : AX_ENOMEM;
    if (w) {
        w->data = (char *)(w + 1);
        w->len = (uint32_t)n;
        rc = ax__conn_file_read(c, (char *)(w + 1), n);
    }
    if (rc < 0) {
        if (w) node_free(c->loop, w);
        ax__conn_finish(c, rc, true);
        return rc;
    }
    ax__conn_take_lazy(c, n);
    return insert_node(c, w, true); /* in the place of the bytes taken */
}

ssize_t ax__conn_sendfile(ax_conn *c)
{
    wnode *w = c->wq->next;
    off_t off = (off_t)w->foff;
    ssize_t r;
    do
        r = sendfile(c->io.fd, ax_file_fd(w->file), &off, w->len);
    while (r == -1 && errno == EINTR);
    if (r > 0) {
        ax__conn_consume(c, (size_t)r);
        return r;
    }
    if (r == 0) { /* the file ended before the range: the peer must not wait */
        ax__conn_finish(c, AX_EIO, true);
        return AX_EIO;
    }
    if (errno == EAGAIN) return 0;
    if (errno == EINVAL || errno == ENOSYS) { /* a file sendfile cannot read: copy */
        int rc = ax__conn_file_to_bytes(c, FILE_COPY_CHUNK);
        return rc < 0 ? rc : 1;
    }
    int e = -errno;
    ax__conn_finish(c, e, false);
    return e;
}

void ax_conn_cork(ax_conn *c)
{
    if (!(c->flags & F_CLOSED)) c->flags |= F_CORKED;
}

int ax_conn_uncork(ax_conn *c)
{
    if (c->flags & F_CORKED) {
        c->flags &= ~F_CORKED;
        if (c->wq && (c->flags & F_CONNECTED) && !(c->flags & (F_CLOSED | F_CONNECTING | F_LINGER)))
            ax__drv(c)->kick(c);
    }
    if (c->flags & F_CLOSED) return c->reason < 0 ? c->reason : AX_ECLOSED;
    if (ax__wq_bytes(c) > ax__lims(c)->high) {
        c->flags |= F_ABOVE_HIGH;
        return 1;
    }
    return 0;
}

int ax_conn_shutdown(ax_conn *c)
{
    int rc = write_state(c);
    if (rc) return rc;
    c->flags |= F_SHUT_PENDING;
    if (c->flags & (F_CONNECTING | F_HANDSHAKE)) return 0; /* done when connected */
    ax__tp(c)->shutdown(c);
    if (c->flags & F_CLOSED) return 0;
    if (!c->wq) ax__conn_after_flush(c);
    return 0;
}

/* ---- connecting ---------------------------------------------------------- */

void ax__conn_connect_done(ax_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) err = errno;
    if (err) {
        ax__conn_finish(c, -err, false);
        return;
    }
    c->flags = (c->flags & ~F_CONNECTING) | F_CONNECTED;
    ax__conn_touch(c);
    if ((c->flags & (F_TCP | F_NODELAY)) == (F_TCP | F_NODELAY)) ax__set_nodelay(c->io.fd, true);
    ax__drv(c)->connected(c);
    ax__conn_update_interest(c);
    ax__conn_arm_timer(c);
    if (!ax__tp(c)->open(c)) return; /* on_open waits for the transport */
    ax__conn_opened(c);
    if (c->flags & F_CLOSED) return;
    if (c->wq)
        ax__drv(c)->flush(c);
    else if (c->flags & F_SHUT_PENDING)
        ax__conn_after_flush(c);
}

void ax__conn_opened(ax_conn *c)
{
    c->flags |= F_OPENED;
    if (c->listener) ax__listener_settled(c->listener, c, true, 0);
    if (c->cbs->on_open) c->cbs->on_open(c);
}

/* ---- flow control and accessors ----------------------------------------- */

void ax_conn_pause(ax_conn *c)
{
    if (c->flags & (F_CLOSED | F_LINGER)) return;
    c->flags |= F_PAUSED | F_ONESHOT;
    ax__conn_update_interest(c);
}

void ax_conn_resume(ax_conn *c)
{
    if ((c->flags & (F_CLOSED | F_LINGER)) || !(c->flags & F_PAUSED)) return;
    c->flags &= ~F_PAUSED;
    ax__conn_update_interest(c);
    if (ax__in_len(c)) c->flags |= F_REDELIVER; /* kept input may hold whole messages */
    /* (the transport may hold input the socket no longer signals) */
    if (ax__in_len(c) || ax__drv(c)->held(c) || ax__tp(c)->pending(c)) ax__conn_again_later(c);
}

bool ax_conn_paused(const ax_conn *c)
{
    return (c->flags & F_PAUSED) != 0;
}

void ax_conn_set_idle_timeout(ax_conn *c, uint32_t ms)
{
    if (c->flags & F_CLOSED) return;
    if (!ms && !c->x) return; /* none, as before */
    /* (out of memory: no timeout, as when the timer cannot be made) */
    if (!ax__conn_ext_get(c)) return;
    c->x->idle_ms = ms;
    ax__conn_touch(c);
    ax__conn_arm_timer(c);
}

void ax_conn_set_limits(ax_conn *c, size_t low, size_t high, size_t cap)
{
    ax__conn_lims l = *ax__lims(c);
    if (high) l.high = (uint32_t)(high > UINT32_MAX ? UINT32_MAX : high);
    if (low) l.low = (uint32_t)(low > UINT32_MAX ? UINT32_MAX : low);
    if (cap) l.cap = (uint32_t)(cap > UINT32_MAX ? UINT32_MAX : cap);
    if (l.low > l.high) l.low = l.high;
    (void)set_lims(c, &l); /* (out of memory: the limits stay as they were) */
}

void ax_loop_each_conn(ax_loop *loop, const ax_conn_cbs *cbs, void (*fn)(ax_conn *c, void *ud),
                       void *ud)
{
    ax__link *head = &loop->handles[AX__H_CONN - 1];
    for (ax__link *l = head->next; l != head;) {
        ax__link *next = l->next; /* (fn may close this one: it leaves the list) */
        ax_conn *c = AX__CONTAINER(l, ax_conn, h);
        if (c->cbs == cbs && (c->flags & F_OPENED)) fn(c, ud);
        l = next;
    }
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
    return ((uint64_t)(c->x ? c->x->bytes_hi[0] : 0) << 32) + c->bytes_in;
}
uint64_t ax_conn_bytes_out(const ax_conn *c)
{
    return ((uint64_t)(c->x ? c->x->bytes_hi[1] : 0) << 32) + c->bytes_out;
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
