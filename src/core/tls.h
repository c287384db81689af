/* tls.h: the TLS engine behind a connection (internal).
 *
 * An ax__tls is an OpenSSL session on memory buffers: ciphertext read from
 * the socket is fed in, plaintext comes out of ax__tls_read(); plaintext
 * written goes in through ax__tls_write() and the ciphertext to send
 * collects in an output buffer the connection sends with its ordinary write
 * path.  No I/O happens here; conn_tls.c drives it. */
#ifndef AXON_CORE_TLS_H
#define AXON_CORE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include <axon/tls.h>

typedef struct ax__tls ax__tls;

/* A session for one connection; `host` (clients) is checked against the
 * certificate and sent as SNI unless the context names one.  Takes a
 * reference on ctx.  NULL with *err on failure. */
ax__tls *ax__tls_new(ax_tls_ctx *ctx, bool server, const char *host, int *err);
void ax__tls_free(ax__tls *t);

bool ax__tls_ctx_is_server(const ax_tls_ctx *ctx);
ax_tls_ctx *ax__tls_ctx_ref(ax_tls_ctx *ctx);
/* The process-wide verifying client context (made on first use). */
ax_tls_ctx *ax__tls_default_client(int *err);

/* Ciphertext from the peer.  0 or AX_ENOMEM. */
int ax__tls_feed(ax__tls *t, const char *data, size_t len);
/* Advance the handshake: 1 done, 0 needs more input, or AX_ETLS / AX_ECERT. */
int ax__tls_handshake(ax__tls *t);
/* Plaintext into buf: bytes (> 0), 0 when more ciphertext is needed,
 * AX_EOF after the peer's close_notify, or AX_ETLS. */
int ax__tls_read(ax__tls *t, char *buf, size_t len);
/* Encrypt into the output buffer.  0 or AX_ETLS / AX_ENOMEM. */
int ax__tls_write(ax__tls *t, const void *data, size_t len);
/* Queue close_notify once (later calls do nothing). */
void ax__tls_close_notify(ax__tls *t);

/* Ciphertext waiting to be sent; ax__tls_out_done() empties the buffer. */
size_t ax__tls_out(ax__tls *t, const char **data);
void ax__tls_out_done(ax__tls *t);

/* Plaintext written before the handshake finished, kept until it does. */
int ax__tls_hold(ax__tls *t, const struct iovec *iov, int n);
size_t ax__tls_held(ax__tls *t, const char **data);
void ax__tls_held_done(ax__tls *t);

/* conn_tls.c: make c a TLS connection (handshaking; on_open waits for it). */
int ax__conn_tls_attach(ax_conn *c, ax_tls_ctx *ctx, const char *host);

const char *ax__tls_detail(const ax__tls *t); /* NULL when none */
void ax__tls_set_detail(ax__tls *t, const char *text);
const char *ax__tls_alpn(ax__tls *t);
const char *ax__tls_version(const ax__tls *t);
int ax__tls_peer_subject(const ax__tls *t, char *buf, size_t len);

#endif
