/* conn_tls.c: the TLS transport of stream connections.  conn.c drives
 * the lifecycle and a driver moves ciphertext; this file feeds what came
 * into the engine (tls.c), delivers the plaintext it gives back, encrypts
 * what the user writes into the ordinary write queue, holds writes made
 * during the handshake and calls on_open once it is done. */
#include "conn_internal.h"
#include "tls.h"

static void tls_progress(ax_conn *c);

/* Send what the engine produced: handshake messages, records, alerts.
 * Returns what ax__conn_write_raw returns (1: above the high watermark). */
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
    int rc = ax__conn_write_raw(c, &iov, 1);
    ax__tls_out_done(c->tls);
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
    ax__conn_arm_timer(c);
    if (tls_flush_out(c) < 0 || (c->flags & F_CLOSED)) return;
    if (c->flags & F_OPENED) return; /* upgraded (ax_conn_start_tls): opened long ago */
    if (c->flags & F_SHUT_PENDING) {
        tls_close_notify(c);
        if (c->flags & F_CLOSED) return;
        if (!c->wq_head) ax__conn_after_flush(c);
        if (c->flags & F_CLOSED) return;
    }
    ax__conn_opened(c);
}

/* Room behind input on_data kept, for the next plaintext. */
static bool tls_input_room(ax_conn *c, char **buf, size_t *room)
{
    size_t want = (size_t)c->in_len + AX__READ_BUF / 4;
    if (want > c->in_cap) {
        char *in = ax_realloc(c->in, want);
        if (!in) {
            ax__conn_finish(c, AX_ENOMEM, true);
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
            ax__conn_peer_eof(c);
            return;
        }
        if (n < 0) {
            tls_fail(c, n);
            return;
        }
        if (c->in_len) {
            c->in_len += (uint32_t)n;
            ax__conn_deliver(c, NULL, 0);
        } else {
            ax__conn_deliver(c, buf, (size_t)n);
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
    if ((c->flags & F_HANDSHAKE) && c->in_len) { /* cleartext left before an upgrade */
        ax_free(c->in);
        c->in = NULL;
        c->in_len = c->in_cap = 0;
    }
    if (n > 0 && ax__tls_feed(c->tls, buf, (size_t)n) != 0) {
        ax__conn_finish(c, AX_ENOMEM, true);
        return;
    }
    tls_progress(c);
    /* EOF counts once the plaintext before it is delivered (a paused
     * connection sees it again when resumed: readiness reads it again,
     * a driver that reads ahead holds it). */
    if (n == 0 && c->drv->ahead && (c->flags & (F_PAUSED | F_CLOSED)) == F_PAUSED)
        c->flags |= F_EOF_HELD;
    if (n != 0 || (c->flags & (F_CLOSED | F_PEER_EOF | F_PAUSED))) return;
    if (c->flags & F_HANDSHAKE) {
        ax__tls_set_detail(c->tls, "TLS handshake failed: the peer closed the connection");
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
    ax__tls_free(c->tls);
    c->tls = NULL;
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
    .zero_copy = false, /* encrypting copies anyway */
};

int ax__conn_tls_attach(ax_conn *c, ax_tls_ctx *ctx, const char *host)
{
    int err = 0;
    if (c->flags & F_CLOSED) return 0; /* failed already: on_close is on its way */
    c->tls = ax__tls_new(ctx, ax__tls_ctx_is_server(ctx), host, &err);
    if (!c->tls) return err;
    c->tp = &ax__transport_tls;
    c->flags |= F_HANDSHAKE;
    ax__conn_arm_timer(c);
    return 0;
}

int ax_conn_start_tls(ax_conn *c, ax_tls_ctx *ctx)
{
    if (!ctx || c->tls || (c->flags & F_CONNECTING)) return AX_EINVAL;
    if (c->flags & (F_CLOSED | F_CLOSING | F_SHUT_PENDING | F_SHUT_DONE | F_LINGER))
        return AX_ECLOSED;
    ax_free(c->in); /* cleartext the peer sent after the command is not protected */
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    int rc = ax__conn_tls_attach(c, ctx, NULL);
    if (rc == 0 && !ax__tls_ctx_is_server(ctx)) tls_progress(c); /* ClientHello */
    return rc;
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
