/* tls_schannel.c: the TLS engine of src/core/tls.h on Windows.
 *
 * Not done yet: every context constructor fails with AX_ETLS and a
 * sentence, so tls:// and wss:// are refused cleanly (the rest of the
 * engine is never reached without a context).  See docs/guide.md,
 * "On Windows". */
#include "internal.h"
#include "tls.h"

#include <stdio.h>

#define NOT_BUILT "TLS is not in the Windows build yet (SChannel engine to come)"

static ax_tls_ctx *refuse(char *why, size_t why_len, int *err)
{
    if (why && why_len) snprintf(why, why_len, "%s", NOT_BUILT);
    if (err) *err = AX_ETLS;
    return NULL;
}

ax_tls_ctx *ax_tls_server_new(const ax_tls_opts *o, char *why, size_t why_len, int *err)
{
    (void)o;
    return refuse(why, why_len, err);
}

ax_tls_ctx *ax_tls_client_new(const ax_tls_opts *o, char *why, size_t why_len, int *err)
{
    (void)o;
    return refuse(why, why_len, err);
}

int ax_tls_server_add_cert(ax_tls_ctx *ctx, const char *cert_file, const char *key_file, char *why,
                           size_t why_len)
{
    (void)ctx, (void)cert_file, (void)key_file;
    if (why && why_len) snprintf(why, why_len, "%s", NOT_BUILT);
    return AX_ETLS;
}

void ax_tls_ctx_free(ax_tls_ctx *ctx)
{
    (void)ctx;
}

int ax_tls_make_self_signed(const char *name, int days, const char *cert_path, const char *key_path,
                            char *why, size_t why_len)
{
    (void)name, (void)days, (void)cert_path, (void)key_path;
    if (why && why_len) snprintf(why, why_len, "axon cert is Linux-only (OpenSSL)");
    return AX_ETLS;
}

bool ax__tls_ctx_is_server(const ax_tls_ctx *ctx)
{
    (void)ctx;
    return false;
}

ax_tls_ctx *ax__tls_ctx_ref(ax_tls_ctx *ctx)
{
    return ctx;
}

ax_tls_ctx *ax__tls_default_client(int *err)
{
    return refuse(NULL, 0, err);
}

ax__tls *ax__tls_new(ax_tls_ctx *ctx, bool server, const char *host, int *err)
{
    (void)ctx, (void)server, (void)host;
    if (err) *err = AX_ETLS;
    return NULL;
}

void ax__tls_free(ax__tls *t)
{
    (void)t;
}

int ax__tls_feed(ax__tls *t, const char *data, size_t len)
{
    (void)t, (void)data, (void)len;
    return AX_ETLS;
}

int ax__tls_handshake(ax__tls *t)
{
    (void)t;
    return AX_ETLS;
}

int ax__tls_read(ax__tls *t, char *buf, size_t len)
{
    (void)t, (void)buf, (void)len;
    return AX_ETLS;
}

int ax__tls_write(ax__tls *t, const void *data, size_t len)
{
    (void)t, (void)data, (void)len;
    return AX_ETLS;
}

void ax__tls_close_notify(ax__tls *t)
{
    (void)t;
}

size_t ax__tls_out(ax__tls *t, const char **data)
{
    (void)t;
    *data = NULL;
    return 0;
}

void ax__tls_out_done(ax__tls *t)
{
    (void)t;
}

int ax__tls_hold(ax__tls *t, const struct iovec *iov, int n)
{
    (void)t, (void)iov, (void)n;
    return AX_ETLS;
}

size_t ax__tls_held(ax__tls *t, const char **data)
{
    (void)t;
    *data = NULL;
    return 0;
}

void ax__tls_held_done(ax__tls *t)
{
    (void)t;
}

const char *ax__tls_detail(const ax__tls *t)
{
    (void)t;
    return NULL;
}

void ax__tls_set_detail(ax__tls *t, const char *text)
{
    (void)t, (void)text;
}

const char *ax__tls_alpn(ax__tls *t)
{
    (void)t;
    return NULL;
}

const char *ax__tls_version(const ax__tls *t)
{
    (void)t;
    return NULL;
}

int ax__tls_peer_subject(const ax__tls *t, char *buf, size_t len)
{
    (void)t, (void)buf, (void)len;
    return AX_ENOENT;
}
