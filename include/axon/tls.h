/* axon/tls.h: TLS (OpenSSL) under any stream connection.
 *
 * A TLS context holds the settings shared by many connections: certificates
 * and keys (servers), trusted CAs and verification (clients), ALPN.  Attach
 * one through ax_conn_opts.tls, or just write tls:// in the URL:
 *
 *     ax_tls_opts to = {.cert_file = "cert.pem", .key_file = "key.pem"};
 *     ax_tls_ctx *tls = ax_tls_server_new(&to, why, sizeof why, &err);
 *     ax_conn_opts co = {.tls = tls};
 *     ax_listen(loop, "tls://0.0.0.0:7443", &cbs, &co, NULL, &err);
 *
 *     ax_connect(loop, "tls://example.org:443", &cbs, NULL, NULL, &err);
 *
 * The program's shape does not change: on_open runs once the handshake is
 * done (for servers too), on_data gets plaintext, ax_conn_write* encrypt.
 * Handshakes never block the loop; they are bounded by the connection's
 * connect_timeout_ms (default 30 s; AX_ETIMEDOUT).  A failed handshake
 * closes with AX_ETLS, a refused peer certificate with AX_ECERT, and
 * ax_conn_error_detail() says why.  Graceful close and ax_conn_shutdown()
 * send close_notify before FIN.  TLS 1.2 is the minimum; 1.3 is preferred.
 * TLS 1.2 uses only ECDHE key exchange with AEAD ciphers (AES-GCM,
 * ChaCha20-Poly1305), and a server picks the cipher in its own order.
 *
 * A client without a context (tls:// URL, no opts.tls) uses a default one:
 * the system CA store, verification on, the URL's host checked against the
 * certificate and sent as SNI. */
#ifndef AXON_TLS_H
#define AXON_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include "conn.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_tls_ctx ax_tls_ctx;

/* Settings; NULL or zero fields take the defaults shown. */
typedef struct ax_tls_opts {
    const char *cert_file; /* servers: PEM certificate (chain); required;
                            * clients: one to present when asked (optional) */
    const char *key_file;  /* its PEM private key; NULL: in cert_file */
    const char *ca_file;   /* clients: PEM CAs to trust; NULL: the system store */
    /* Protocols to offer (clients) or accept (servers), comma separated, in
     * order of preference: "h2,http/1.1".  NULL: no ALPN. */
    const char *alpn;
    /* Clients: the name to check the certificate against and send as SNI;
     * NULL: the URL's host. */
    const char *server_name;
    bool insecure; /* clients: accept any certificate (testing only) */
} ax_tls_opts;

/* Make a server context from a certificate and key.  NULL on failure, with
 * the code in *err (AX_ETLS, AX_ENOENT ...) and a sentence in `why`
 * ("cannot load certificate 'x.pem': no such file").  Thread-safe to share
 * between loops. */
AX_API ax_tls_ctx *ax_tls_server_new(const ax_tls_opts *o, char *why, size_t why_len, int *err);
/* Add one more certificate to a server context; a client's SNI name picks
 * the certificate whose subject alternative names (or common name) match
 * it, the first one otherwise.  Returns 0 or a code, with a sentence. */
AX_API int ax_tls_server_add_cert(ax_tls_ctx *ctx, const char *cert_file, const char *key_file,
                                  char *why, size_t why_len) AX_MUST_CHECK;
/* Make a client context.  NULL on failure (unreadable CA file ...). */
AX_API ax_tls_ctx *ax_tls_client_new(const ax_tls_opts *o, char *why, size_t why_len, int *err);
/* Drop the caller's reference; connections using the context keep it
 * alive until they close.  NULL is fine. */
AX_API void ax_tls_ctx_free(ax_tls_ctx *ctx);

/* Write a new self-signed certificate for `name` (a host name or an IP
 * address) and its private key (EC P-256) as PEM files, for local use:
 * subject CN=name, subject alternative names DNS:name (or IP:name),
 * IP:127.0.0.1 and IP:::1, valid for `days` (0: 365).  The key file is made mode 0600.
 * Returns 0, or a code with a sentence in `why`.  `axon cert` uses this. */
AX_API int ax_tls_make_self_signed(const char *name, int days, const char *cert_path,
                                   const char *key_path, char *why, size_t why_len) AX_MUST_CHECK;

/* Turn an open plain connection into a TLS one (STARTTLS in SMTP, AUTH
 * TLS in FTP): a server context answers the peer's handshake, a client
 * context starts one.  What was written before the call goes out in the
 * clear; what is written after it is held until the handshake is done,
 * then encrypted.  Input on_data has not consumed is dropped, and so is
 * what is left when on_data returns less than it was offered in the call
 * that upgrades: bytes sent before the handshake are not protected by it
 * (RFC 3207 section 4.2).  No second on_open follows; a failed handshake
 * closes with AX_ETLS.  Returns 0, AX_EINVAL (already TLS, connecting,
 * no context), AX_ECLOSED (closing), or AX_ENOMEM. */
AX_API int ax_conn_start_tls(ax_conn *c, ax_tls_ctx *ctx) AX_MUST_CHECK;
/* True when c speaks TLS. */
AX_API bool ax_conn_is_tls(const ax_conn *c);
/* The protocol ALPN chose ("h2"), or NULL (none, not TLS, or before
 * on_open).  Valid until on_close returns. */
AX_API const char *ax_conn_tls_alpn(const ax_conn *c);
/* "TLSv1.3", "TLSv1.2", or NULL when c is not TLS. */
AX_API const char *ax_conn_tls_version(const ax_conn *c);
/* The peer certificate's subject as one line ("CN=localhost") into buf.
 * Returns 0, AX_ENOENT when the peer sent none, AX_EINVAL if not TLS. */
AX_API int ax_conn_tls_peer_subject(const ax_conn *c, char *buf, size_t len);
/* Why the connection failed, in more words than ax_strerror(reason):
 * "certificate verification failed: Hostname mismatch".  NULL when there
 * is nothing to add.  Valid until on_close returns. */
AX_API const char *ax_conn_error_detail(const ax_conn *c);

#ifdef __cplusplus
}
#endif
#endif
