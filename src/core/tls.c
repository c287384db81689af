/* tls.c: TLS contexts (certificates, SNI, ALPN, verification) and the
 * per-connection OpenSSL session on memory buffers that conn_tls.c drives. */
#include "internal.h"
#include "tls.h"
#include "tls_common.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_CERTS 16

/* One certificate of a server: its own SSL_CTX, switched to by SNI. */
typedef struct tls_cert {
    SSL_CTX *ssl;
    X509 *x509; /* owned by ssl */
} tls_cert;

struct ax_tls_ctx {
    ax__tls_ctx_common com; /* first: refs, server, insecure, alpn (wire form), server_name */
    SSL_CTX *ssl;           /* clients: the context; servers: certs[0].ssl */
    tls_cert certs[MAX_CERTS];
    int n_certs;
};

struct ax__tls {
    ax__tls_common com; /* first: out (filled by the output BIO), hold, detail */
    SSL *ssl;
    BIO *rbio; /* memory BIO: ciphertext in */
    ax_tls_ctx *ctx;
    bool server;
    bool sent_close;
    char alpn[64];
};

/* The most specific OpenSSL reason in the thread's error queue, which is
 * then cleared so it cannot leak into another connection's report. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "protocol error";
}

/* ---- the output BIO: appends to the session's out buffer ----------------- */

static int obio_write(BIO *b, const char *data, int len)
{
    ax__tls *t = BIO_get_data(b);
    if (len <= 0) return 0;
    return ax__buf_append(&t->com.out, data, (size_t)len) == 0 ? len : -1;
}

static long obio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *obio_method;
static pthread_once_t obio_once = PTHREAD_ONCE_INIT;

static void obio_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "axon-out");
    if (m && BIO_meth_set_write(m, obio_write) && BIO_meth_set_ctrl(m, obio_ctrl)) obio_method = m;
}

/* ---- contexts ------------------------------------------------------------ */

const size_t ax__tls_ctx_size = sizeof(struct ax_tls_ctx);
const size_t ax__tls_alpn_head = 0; /* OpenSSL takes the wire list as it is */

void ax__tls_alpn_frame(unsigned char *w, unsigned wire_len)
{
    (void)w, (void)wire_len;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    ax_tls_ctx *ctx = arg;
    unsigned char *o;
    (void)ssl;
    if (SSL_select_next_proto(&o, outlen, ctx->com.alpn, ctx->com.alpn_len, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: switch to the certificate that matches the name the client asked for. */
static int sni_select(SSL *ssl, int *alert, void *arg)
{
    ax_tls_ctx *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    (void)alert;
    if (!name || ctx->n_certs < 2) return SSL_TLSEXT_ERR_OK;
    for (int i = 0; i < ctx->n_certs; i++) {
        if (X509_check_host(ctx->certs[i].x509, name, 0, 0, NULL) == 1) {
            if (i > 0) SSL_set_SSL_CTX(ssl, ctx->certs[i].ssl);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* TLS 1.2 suites: forward secrecy and AEAD only (ECDHE with AES-GCM or
 * ChaCha20-Poly1305): no CBC suite (Lucky13 and its kin), no static RSA
 * key exchange.  Servers choose in this order, not the client's.  TLS 1.3
 * suites are all AEAD already. */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static SSL_CTX *ssl_ctx_new(bool server)
{
    SSL_CTX *s = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!s) return NULL;
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(s, tls12_ciphers) != 1) {
        SSL_CTX_free(s);
        return NULL;
    }
    if (server) SSL_CTX_set_options(s, SSL_OP_CIPHER_SERVER_PREFERENCE);
    return s;
}

static int readable(const char *what, const char *file, char *why, size_t wl)
{
    if (access(file, R_OK) == 0) return 0;
    int rc = -errno;
    ax__tls_whyf(why, wl, "cannot read %s '%s': %s", what, file, strerror(errno));
    return rc;
}

/* Whether a PEM file holds a block whose label ends in `label` ("PRIVATE
 * KEY" matches EC, RSA and PKCS#8 keys), to say what is missing rather
 * than OpenSSL's "PEM lib". */
static bool pem_has(const char *file, const char *label)
{
    FILE *f = fopen(file, "re");
    if (!f) return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strncmp(line, "-----BEGIN ", 11) == 0 && strstr(line, label) != NULL;
    fclose(f);
    return found;
}

int ax_tls_server_add_cert(ax_tls_ctx *ctx, const char *cert_file, const char *key_file, char *why,
                           size_t why_len)
{
    if (!ctx || !ctx->com.server || !cert_file) return AX_EINVAL;
    if (ctx->n_certs == MAX_CERTS) {
        ax__tls_whyf(why, why_len, "too many certificates (at most %d)", MAX_CERTS);
        return AX_EINVAL;
    }
    bool key_in_cert = !key_file;
    if (!key_file) key_file = cert_file;
    int rc = readable("certificate", cert_file, why, why_len);
    if (!rc) rc = readable("key", key_file, why, why_len);
    if (rc) return rc;
    if (!pem_has(key_file, "PRIVATE KEY-----")) {
        if (key_in_cert)
            ax__tls_whyf(why, why_len, "no private key: '%s' holds none, so give the key file too",
                         cert_file);
        else
            ax__tls_whyf(why, why_len, "'%s' holds no private key (a PEM \"PRIVATE KEY\" block)",
                         key_file);
        return AX_EINVAL;
    }
    SSL_CTX *s = ssl_ctx_new(true);
    if (!s) return AX_ENOMEM;
    if (SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        ax__tls_whyf(why, why_len, "cannot load certificate '%s': %s", cert_file, ssl_reason());
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s) != 1) {
        ax__tls_whyf(why, why_len, "cannot use key '%s': %s", key_file, ssl_reason());
        goto fail;
    }
    SSL_CTX_set_tlsext_servername_callback(s, sni_select);
    SSL_CTX_set_tlsext_servername_arg(s, ctx);
    if (ctx->com.alpn) SSL_CTX_set_alpn_select_cb(s, alpn_select, ctx);
    ctx->certs[ctx->n_certs].ssl = s;
    ctx->certs[ctx->n_certs].x509 = SSL_CTX_get0_certificate(s);
    if (ctx->n_certs++ == 0) ctx->ssl = s;
    return 0;
fail:
    SSL_CTX_free(s);
    return AX_ETLS;
}

/* ax_tls_client_new (tls_common.c) after the options: the CA, a client
 * certificate, the engine's context.  0 or an AX_E* code with why. */
int ax__tls_client_load(ax_tls_ctx *ctx, const ax_tls_opts *o, char *why, size_t why_len)
{
    int rc = 0;
    if (!(ctx->ssl = ssl_ctx_new(false))) {
        rc = AX_ENOMEM;
        goto fail;
    }
    const char *ca = o ? o->ca_file : NULL;
    if (ca && (rc = readable("CA file", ca, why, why_len)) != 0) goto fail;
    if (ca ? SSL_CTX_load_verify_locations(ctx->ssl, ca, NULL) != 1
           : SSL_CTX_set_default_verify_paths(ctx->ssl) != 1) {
        ax__tls_whyf(why, why_len, "cannot load CA certificates%s%s: %s", ca ? " from " : "",
                     ca ? ca : "", ssl_reason());
        rc = AX_ETLS;
        goto fail;
    }
    SSL_CTX_set_verify(ctx->ssl, ctx->com.insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    if (o && o->cert_file) { /* a client certificate, for servers that ask for one */
        const char *key = o->key_file ? o->key_file : o->cert_file;
        if ((rc = readable("certificate", o->cert_file, why, why_len)) != 0 ||
            (rc = readable("key", key, why, why_len)) != 0)
            goto fail;
        if (SSL_CTX_use_certificate_chain_file(ctx->ssl, o->cert_file) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx->ssl, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx->ssl) != 1) {
            ax__tls_whyf(why, why_len, "cannot load the client certificate '%s' and key '%s': %s",
                         o->cert_file, key, ssl_reason());
            rc = AX_ETLS;
            goto fail;
        }
    }
    if (ctx->com.alpn && SSL_CTX_set_alpn_protos(ctx->ssl, ctx->com.alpn, ctx->com.alpn_len) != 0) {
        rc = AX_ENOMEM;
        goto fail;
    }
    return 0;
fail:
    return rc;
}

ax_tls_ctx *ax__tls_ctx_ref(ax_tls_ctx *ctx)
{
    __atomic_add_fetch(&ctx->com.refs, 1, __ATOMIC_RELAXED);
    return ctx;
}

void ax_tls_ctx_free(ax_tls_ctx *ctx)
{
    if (!ctx || __atomic_sub_fetch(&ctx->com.refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (ctx->com.server) {
        for (int i = 0; i < ctx->n_certs; i++)
            SSL_CTX_free(ctx->certs[i].ssl);
    } else {
        SSL_CTX_free(ctx->ssl);
    }
    ax__tls_ctx_common_free(&ctx->com);
    ax_free(ctx);
}

static ax_tls_ctx *default_client;
static int default_client_err;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_client_init(void)
{
    default_client = ax_tls_client_new(NULL, NULL, 0, &default_client_err);
}

ax_tls_ctx *ax__tls_default_client(int *err)
{
    pthread_once(&default_once, default_client_init);
    if (!default_client) *err = default_client_err;
    return default_client;
}

/* ---- sessions ------------------------------------------------------------ */

static int set_peer_name(ax__tls *t, const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;
    if (t->ctx->com.server_name) host = t->ctx->com.server_name;
    if (!host || !*host) return 0;
    if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1 ? 0 : AX_EINVAL;
    if (SSL_set_tlsext_host_name(t->ssl, host) != 1) return AX_EINVAL;
    if (!t->ctx->com.insecure && SSL_set1_host(t->ssl, host) != 1) return AX_ENOMEM;
    return 0;
}

ax__tls *ax__tls_new(ax_tls_ctx *ctx, bool server, const char *host, int *err)
{
    pthread_once(&obio_once, obio_init);
    ax__tls *t = ax_calloc(1, sizeof(*t));
    if (!t) goto fail;
    BIO *wbio = NULL;
    if (!obio_method || !(t->ssl = SSL_new(ctx->ssl))) goto fail_free;
    t->ctx = ax__tls_ctx_ref(ctx);
    t->server = server;
    t->rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(obio_method);
    if (!t->rbio || !wbio) goto fail_bio;
    BIO_set_mem_eof_return(t->rbio, -1); /* empty means "wait", not EOF */
    BIO_set_data(wbio, t);
    BIO_set_init(wbio, 1);
    SSL_set_bio(t->ssl, t->rbio, wbio);
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if ((*err = set_peer_name(t, host)) != 0) goto fail_ssl;
    }
    return t;
fail_bio:
    BIO_free(t->rbio);
    BIO_free(wbio);
    t->rbio = NULL;
fail_free:
    if (t) {
        SSL_free(t->ssl);
        if (t->ctx) ax_tls_ctx_free(t->ctx);
        ax_free(t);
    }
fail:
    *err = AX_ENOMEM;
    return NULL;
fail_ssl:
    ax__tls_free(t);
    return NULL;
}

void ax__tls_free(ax__tls *t)
{
    if (!t) return;
    SSL_free(t->ssl); /* frees both BIOs */
    ax_tls_ctx_free(t->ctx);
    ax__tls_common_free(&t->com);
    ax_free(t);
}

int ax__tls_feed(ax__tls *t, const char *data, size_t len)
{
    return BIO_write(t->rbio, data, (int)len) == (int)len ? 0 : AX_ENOMEM;
}

int ax__tls_handshake(ax__tls *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) return 1;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    long v = SSL_get_verify_result(t->ssl);
    if (!t->server && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) && v != X509_V_OK) {
        ERR_clear_error();
        ax__tls_detailf(t, "certificate verification failed: %s", X509_verify_cert_error_string(v));
        return AX_ECERT;
    }
    ax__tls_detailf(t, "TLS handshake failed: %s", ssl_reason());
    return AX_ETLS;
}

int ax__tls_read(ax__tls *t, char *buf, size_t len)
{
    int r = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
    if (r > 0) return r;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) return AX_EOF;
    ax__tls_detailf(t, "TLS error: %s", ssl_reason());
    return AX_ETLS;
}

int ax__tls_write(ax__tls *t, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        int n = len > (1u << 30) ? (1 << 30) : (int)len;
        int r = SSL_write(t->ssl, p, n);
        if (r <= 0) {
            ax__tls_detailf(t, "TLS error: %s", ssl_reason());
            return AX_ETLS;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

void ax__tls_close_notify(ax__tls *t)
{
    if (t->sent_close) return;
    t->sent_close = true;
    SSL_shutdown(t->ssl);
    ERR_clear_error();
}

const char *ax__tls_alpn(ax__tls *t)
{
    const unsigned char *p;
    unsigned len;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (!p || !len || len >= sizeof t->alpn) return NULL;
    memcpy(t->alpn, p, len);
    t->alpn[len] = '\0';
    return t->alpn;
}

const char *ax__tls_version(const ax__tls *t)
{
    return SSL_get_version(t->ssl);
}

int ax__tls_peer_subject(const ax__tls *t, char *buf, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    if (!x) return AX_ENOENT;
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return AX_ENOMEM;
    X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    if (len) snprintf(buf, len, "%.*s", (int)n, p);
    BIO_free(b);
    return 0;
}
