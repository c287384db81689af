/* conn_tls.c: the TLS transport of stream connections.  conn.c drives
 * the lifecycle and a driver moves ciphertext; this file feeds what came
 * into the engine (tls.c), delivers the plaintext it gives back, encrypts
 * what the user writes into the ordinary write queue, holds writes made
 * during the handshake and calls on_open once it is done.
 *
 * File ranges are encrypted when they reach the head of the queue, a
 * record at a time (prep), so a large file costs no memory.  Records must
 * reach the wire in the order the engine numbered them, so while a file
 * range waits in the queue, later writes wait as plaintext behind it,
 * whatever the engine makes meanwhile goes before the first node not yet
 * encrypted, and close_notify waits until everything is encrypted. */
#include "conn_internal.h"

/* The session, or NULL on a plain connection. */
static struct ax__tls *tls_of(const ax_conn *c)
{
    return c->x ? c->x->tls : NULL;
}
#include "tls.h"

#include <errno.h>
#include <unistd.h>

static void tls_progress(ax_conn *c);

/* Send what the engine produced: handshake messages, records, alerts.
 * Returns what ax__conn_write_raw returns (1: above the high watermark). */
static int tls_flush_out(ax_conn *c)
{
    const char *p;
    size_t n = ax__tls_out(c->x->tls, &p);
    if (!n) return 0;
    if (c->flags & F_CLOSED) {
        ax__tls_out_done(c->x->tls);
        return AX_ECLOSED;
    }
    struct iovec iov = {(void *)p, n};
    int rc =
        ax__conn_nlazy(c) ? ax__conn_insert_bytes(c, p, n, false) : ax__conn_write_raw(c, &iov, 1);
    ax__tls_out_done(c->x->tls);
    if (rc == AX_ENOMEM) ax__conn_finish(c, rc, true);
    return rc;
}

/* Fail with the engine's error; an alert it made tells the peer why. */
static void tls_fail(ax_conn *c, int rc)
{
    tls_flush_out(c);
    ax__conn_finish(c, rc, false);
}

static void tls_close_notify(ax_conn *c)
{
    if (ax__conn_nlazy(c)) { /* after the files and the plaintext behind them */
        c->flags |= F_NOTIFY_LATER;
        return;
    }
    ax__tls_close_notify(c->x->tls);
    tls_flush_out(c);
}

static int tls_writev(ax_conn *c, const struct iovec *iov, int n)
{
    if (ax__conn_nlazy(c)) return ax__conn_queue_copy(c, iov, n, AX__W_PLAIN); /* behind a file */
    if (c->flags & (F_CONNECTING | F_HANDSHAKE)) return ax__tls_hold(c->x->tls, iov, n);
    for (int i = 0; i < n; i++) {
        int rc = ax__tls_write(c->x->tls, iov[i].iov_base, iov[i].iov_len);
        if (rc < 0) {
            tls_fail(c, rc);
            return rc;
        }
    }
    return tls_flush_out(c);
}

/* The plaintext of one record: a file range is read this much at a time. */
#define TLS_PIECE (16u * 1024)

/* Before the handshake is done: the range is read into the held bytes. */
static int tls_write_file(ax_conn *c, ax_file *f, uint64_t off, uint64_t len)
{
    if (!(c->flags & (F_CONNECTING | F_HANDSHAKE)) || ax__conn_nlazy(c))
        return ax__conn_queue_file(c, f, off, len);
    char buf[TLS_PIECE];
    while (len) {
        size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
        ssize_t r = pread(ax_file_fd(f), buf, n, (off_t)off);
        if (r == -1 && errno == EINTR) continue;
        if (r <= 0) return r == 0 ? AX_EIO : ax__err();
        struct iovec iov = {buf, (size_t)r};
        int rc = ax__tls_hold(c->x->tls, &iov, 1);
        if (rc < 0) return rc;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

/* The head of the queue is a file range or plaintext behind one: encrypt
 * a record of it; the ciphertext goes in front. */
static int tls_prep(ax_conn *c)
{
    ax__wnode *w = ax__wq_head(c);
    char buf[TLS_PIECE];
    const char *p = w->data;
    size_t n = w->len;
    if (w->kind == AX__W_FILE) {
        n = n < sizeof buf ? n : sizeof buf;
        int rc = ax__conn_file_read(c, buf, n);
        if (rc < 0) {
            ax__conn_finish(c, rc, true);
            return rc;
        }
        p = buf;
    }
    int rc = ax__tls_write(c->x->tls, p, n);
    if (rc < 0) {
        tls_fail(c, rc);
        return rc;
    }
    ax__conn_take_lazy(c, n);
    if (!ax__conn_nlazy(c) && (c->flags & F_NOTIFY_LATER)) {
        c->flags &= ~F_NOTIFY_LATER;
        ax__tls_close_notify(c->x->tls); /* the last record */
    }
    /* in front, never sent from here: the driver is in the middle of a flush */
    n = ax__tls_out(c->x->tls, &p);
    rc = ax__conn_insert_bytes(c, p, n, true);
    ax__tls_out_done(c->x->tls);
    return rc;
}

/* The handshake is done: send what was written before it, then on_open. */
static void tls_opened(ax_conn *c)
{
    const char *p;
    size_t n = ax__tls_held(c->x->tls, &p);
    int rc = n ? ax__tls_write(c->x->tls, p, n) : 0;
    ax__tls_held_done(c->x->tls);
    if (rc < 0) {
        tls_fail(c, rc);
        return;
    }
    c->flags &= ~F_HANDSHAKE;
    ax__conn_touch(c);
    ax__conn_arm_timer(c);
    if (tls_flush_out(c) < 0 || (c->flags & F_CLOSED)) return;
    if (c->flags & F_OPENED) return; /* upgraded (ax_conn_start_tls): opened long ago */
    if (c->flags & F_SHUT_PENDING) {
        tls_close_notify(c);
        if (c->flags & F_CLOSED) return;
        if (!ax__wq_head(c)) ax__conn_after_flush(c);
        if (c->flags & F_CLOSED) return;
    }
    ax__conn_opened(c);
}

/* Room behind input on_data kept, for the next plaintext. */
static bool tls_input_room(ax_conn *c, char **buf, size_t *room)
{
    if (!ax__conn_in_reserve(c, (size_t)ax__in_len(c) + AX__READ_BUF / 4)) {
        ax__conn_finish(c, AX_ENOMEM, true);
        return false;
    }
    *buf = c->in->data + c->in->len;
    *room = c->in->cap - c->in->len;
    return true;
}

/* Decrypt and deliver until the engine needs more ciphertext. */
static void tls_drain(ax_conn *c)
{
    const uint32_t stop = F_CLOSED | F_PAUSED | F_PEER_EOF | F_CLOSING | F_LINGER | F_HANDSHAKE;
    while (!(c->flags & stop)) {
        char *buf = c->loop->rbuf;
        size_t room = AX__READ_BUF;
        if (ax__in_len(c) && !tls_input_room(c, &buf, &room)) return;
        int n = ax__tls_read(c->x->tls, buf, room);
        if (tls_flush_out(c) < 0 || (c->flags & F_CLOSED)) return;
        if (n == 0) return;
        if (n == AX_EOF) { /* close_notify */
            ax__conn_peer_eof(c);
            return;
        }
        if (n < 0) {
            tls_fail(c, n);
            return;
        }
        if (ax__in_len(c)) {
            c->in->len += (uint32_t)n;
            ax__conn_deliver(c, NULL, 0);
        } else {
            ax__conn_deliver(c, buf, (size_t)n);
        }
    }
}

static void tls_progress(ax_conn *c)
{
    if (c->flags & F_HANDSHAKE) {
        int rc = ax__tls_handshake(c->x->tls);
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
    if ((c->flags & F_HANDSHAKE) && ax__in_len(c)) /* cleartext left before an upgrade */
        ax__conn_drop_input(c);
    if (n > 0 && ax__tls_feed(c->x->tls, buf, (size_t)n) != 0) {
        ax__conn_finish(c, AX_ENOMEM, true);
        return;
    }
    tls_progress(c);
    /* EOF counts once the plaintext before it is delivered (a paused
     * connection sees it again when resumed: readiness reads it again,
     * a driver that reads ahead holds it). */
    if (n == 0 && ax__drv(c)->ahead && (c->flags & (F_PAUSED | F_CLOSED)) == F_PAUSED)
        c->flags |= F_EOF_HELD;
    if (n != 0 || (c->flags & (F_CLOSED | F_PEER_EOF | F_PAUSED))) return;
    if (c->flags & F_HANDSHAKE) {
        ax__tls_set_detail(c->x->tls, "TLS handshake failed: the peer closed the connection");
        ax__conn_finish(c, AX_ETLS, false);
        return;
    }
    ax__conn_peer_eof(c);
}

static char *tls_read_buf(ax_conn *c, size_t *room)
{
    *room = AX__READ_BUF;
    return c->loop->rbuf;
}

static void tls_shutdown(ax_conn *c)
{
    if (!(c->flags & (F_CONNECTING | F_HANDSHAKE))) tls_close_notify(c);
}

/* The engine may hold decrypted records the socket will not signal. */
static bool tls_pending(const ax_conn *c)
{
    (void)c;
    return true;
}

/* Connected: a client starts its handshake; on_open waits for it. */
static bool tls_open(ax_conn *c)
{
    tls_progress(c);
    return false;
}

static void tls_release(ax_conn *c)
{
    ax__tls_free(c->x->tls);
    c->x->tls = NULL;
}

const ax__transport ax__transport_tls = {
    .name = "tls",
    .input = tls_input,
    .read_buf = tls_read_buf,
    .writev = tls_writev,
    .shutdown = tls_shutdown,
    .pending = tls_pending,
    .open = tls_open,
    .release = tls_release,
    .write_file = tls_write_file,
    .prep = tls_prep,
    .zero_copy = false, /* encrypting copies anyway */
};

int ax__conn_tls_attach(ax_conn *c, ax_tls_ctx *ctx, const char *host)
{
    int err = 0;
    if (c->flags & F_CLOSED) return 0; /* failed already: on_close is on its way */
    if (!ax__conn_ext_get(c)) return AX_ENOMEM;
    c->x->tls = ax__tls_new(ctx, ax__tls_ctx_is_server(ctx), host, &err);
    if (!c->x->tls) return err;
    c->flags |= F_TLS | F_HANDSHAKE;
    ax__conn_arm_timer(c);
    return 0;
}

int ax_conn_start_tls(ax_conn *c, ax_tls_ctx *ctx)
{
    if (!ctx || tls_of(c) || (c->flags & F_CONNECTING)) return AX_EINVAL;
    if (c->flags & (F_CLOSED | F_CLOSING | F_SHUT_PENDING | F_SHUT_DONE | F_LINGER))
        return AX_ECLOSED;
    ax__conn_drop_input(c); /* cleartext the peer sent after the command is not protected */
    int rc = ax__conn_tls_attach(c, ctx, NULL);
    if (rc == 0 && !ax__tls_ctx_is_server(ctx)) tls_progress(c); /* ClientHello */
    return rc;
}

bool ax_conn_is_tls(const ax_conn *c)
{
    return tls_of(c) != NULL;
}

const char *ax_conn_tls_alpn(const ax_conn *c)
{
    return tls_of(c) && !(c->flags & F_HANDSHAKE) ? ax__tls_alpn(c->x->tls) : NULL;
}

const char *ax_conn_tls_version(const ax_conn *c)
{
    return tls_of(c) ? ax__tls_version(c->x->tls) : NULL;
}

int ax_conn_tls_peer_subject(const ax_conn *c, char *buf, size_t len)
{
    return tls_of(c) ? ax__tls_peer_subject(c->x->tls, buf, len) : AX_EINVAL;
}

const char *ax_conn_error_detail(const ax_conn *c)
{
    if (!tls_of(c)) return NULL;
    const char *d = ax__tls_detail(c->x->tls);
    if (!d && (c->flags & (F_CLOSED | F_HANDSHAKE | F_CONNECTING)) == (F_CLOSED | F_HANDSHAKE) &&
        c->reason == AX_ETIMEDOUT)
        d = "TLS handshake timed out";
    return d;
}
