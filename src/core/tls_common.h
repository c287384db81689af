/* tls_common.h: the part of a TLS session both engines keep the same way
 * (internal): tls.c on OpenSSL and win/tls_schannel.c on SChannel.
 *
 * Each engine's struct ax__tls begins with an ax__tls_common, so the
 * buffer bookkeeping of tls.h (ax__tls_out, ax__tls_hold, ax__tls_detail
 * and their companions, in tls_common.c) is written once and reaches the
 * fields through the first member. */
#ifndef AXON_CORE_TLS_COMMON_H
#define AXON_CORE_TLS_COMMON_H

#include "buf.h"
#include "tls.h"

typedef struct ax__tls_common {
    ax__buf out;  /* ciphertext to send */
    ax__buf hold; /* plaintext written before the handshake ended */
    char *detail; /* the first cause of a failure, in words */
} ax__tls_common;

/* The common part of t (its first member). */
static inline ax__tls_common *ax__tls_com(ax__tls *t)
{
    return (ax__tls_common *)(void *)t;
}

/* Release the buffers and the detail (the engine frees the session). */
void ax__tls_common_free(ax__tls_common *c);
/* ax__tls_set_detail with printf formatting (at most 255 bytes). */
void ax__tls_detailf(ax__tls *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* snprintf into a caller's `why` buffer when it has one. */
void ax__tls_whyf(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The first member of each engine's struct ax_tls_ctx: what the options
 * give and how the context is shared. */
typedef struct ax__tls_ctx_common {
    long refs; /* (a LONG, for Interlocked*, on Windows) */
    bool server;
    bool insecure;
    unsigned char *alpn; /* the engine's form: ax__tls_alpn_head bytes, then the wire list */
    unsigned long alpn_len;
    char *server_name;
} ax__tls_ctx_common;

/* A zeroed context of `size` bytes with one reference, its ALPN list and
 * server name from o (NULL: none) and nothing else loaded.  NULL with *err
 * and a sentence in why. */
ax_tls_ctx *ax__tls_ctx_new(size_t size, bool server, const ax_tls_opts *o, char *why, size_t wl,
                            int *err);
void ax__tls_ctx_common_free(ax__tls_ctx_common *c);

/* Engine's own: how many bytes its ALPN form puts before the wire list
 * (0 on OpenSSL; a SEC_APPLICATION_PROTOCOLS head on SChannel), and
 * filling them in for a wire list of wire_len bytes. */
extern const size_t ax__tls_alpn_head;
extern const size_t ax__tls_ctx_size; /* sizeof(struct ax_tls_ctx) */
/* Engine's own: ax_tls_client_new's loading after the options (CA file,
 * client certificate).  0 or an AX_E* code with a sentence in why. */
int ax__tls_client_load(ax_tls_ctx *ctx, const ax_tls_opts *o, char *why, size_t why_len);
void ax__tls_alpn_frame(unsigned char *w, unsigned wire_len);

#endif
