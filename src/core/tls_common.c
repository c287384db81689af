/* tls_common.c: the buffer bookkeeping of tls.h that is the same for both
 * TLS engines (see tls_common.h). */
#include "tls_common.h"

#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ax__tls_common_free(ax__tls_common *c)
{
    ax__buf_free(&c->out);
    ax__buf_free(&c->hold);
    ax_free(c->detail);
    c->detail = NULL;
}

void ax__tls_whyf(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

void ax__tls_detailf(ax__tls *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ax__tls_set_detail(t, buf);
}

/* "h2,http/1.1" to ALPN's wire form, each name behind its length byte,
 * after the engine's head. */
static int alpn_parse(ax__tls_ctx_common *c, const char *list, char *why, size_t wl)
{
    size_t n = strlen(list);
    if (n == 0) return 0;
    unsigned char *w = ax_calloc(1, ax__tls_alpn_head + n + 1);
    if (!w) return AX_ENOMEM;
    unsigned char *wire = w + ax__tls_alpn_head;
    unsigned len = 0;
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == 0 || l > 255) {
            ax_free(w);
            ax__tls_whyf(why, wl, "bad ALPN list '%s'", list);
            return AX_EINVAL;
        }
        wire[len++] = (unsigned char)l;
        memcpy(wire + len, p, l);
        len += (unsigned)l;
        p += l + (end ? 1 : 0);
    }
    ax__tls_alpn_frame(w, len);
    c->alpn = w;
    c->alpn_len = (unsigned long)(ax__tls_alpn_head + len);
    return 0;
}

ax_tls_ctx *ax__tls_ctx_new(size_t size, bool server, const ax_tls_opts *o, char *why, size_t wl,
                            int *err)
{
    static const ax_tls_opts none;
    if (!o) o = &none;
    ax__tls_ctx_common *c = ax_calloc(1, size);
    if (!c) {
        *err = AX_ENOMEM;
        return NULL;
    }
    c->refs = 1;
    c->server = server;
    c->insecure = o->insecure;
    if (o->alpn && (*err = alpn_parse(c, o->alpn, why, wl)) != 0) goto fail;
    if (o->server_name) {
        size_t n = strlen(o->server_name) + 1;
        if (!(c->server_name = ax_malloc(n))) {
            *err = AX_ENOMEM;
            goto fail;
        }
        memcpy(c->server_name, o->server_name, n);
    }
    return (ax_tls_ctx *)(void *)c;
fail:
    ax__tls_ctx_common_free(c);
    ax_free(c);
    return NULL;
}

void ax__tls_ctx_common_free(ax__tls_ctx_common *c)
{
    ax_free(c->alpn);
    ax_free(c->server_name);
}

bool ax__tls_ctx_is_server(const ax_tls_ctx *ctx)
{
    return ((const ax__tls_ctx_common *)(const void *)ctx)->server;
}

/* The constructors are the same on both engines, which differ in the
 * context's size, ax_tls_server_add_cert and ax__tls_client_load. */
ax_tls_ctx *ax_tls_server_new(const ax_tls_opts *o, char *why, size_t why_len, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    if (why && why_len) why[0] = '\0';
    if (!o || !o->cert_file) {
        ax__tls_whyf(why, why_len, "a TLS server needs a certificate and a key");
        *err = AX_EINVAL;
        return NULL;
    }
    ax_tls_ctx *ctx = ax__tls_ctx_new(ax__tls_ctx_size, true, o, why, why_len, err);
    if (!ctx) return NULL;
    if ((*err = ax_tls_server_add_cert(ctx, o->cert_file, o->key_file, why, why_len)) != 0) {
        ax_tls_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

ax_tls_ctx *ax_tls_client_new(const ax_tls_opts *o, char *why, size_t why_len, int *err)
{
    int dummy;
    if (!err) err = &dummy;
    if (why && why_len) why[0] = '\0';
    ax_tls_ctx *ctx = ax__tls_ctx_new(ax__tls_ctx_size, false, o, why, why_len, err);
    if (!ctx) return NULL;
    if ((*err = ax__tls_client_load(ctx, o, why, why_len)) != 0) {
        ax_tls_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

size_t ax__tls_out(ax__tls *t, const char **data)
{
    ax__tls_common *c = ax__tls_com(t);
    *data = c->out.p;
    return c->out.len;
}

void ax__tls_out_done(ax__tls *t)
{
    ax__buf_reset(&ax__tls_com(t)->out, 64 * 1024); /* a burst's memory is given back */
}

int ax__tls_hold(ax__tls *t, const struct iovec *iov, int n)
{
    ax__tls_common *c = ax__tls_com(t);
    for (int i = 0; i < n; i++) {
        int rc = ax__buf_append(&c->hold, iov[i].iov_base, iov[i].iov_len);
        if (rc) return rc;
    }
    return 0;
}

size_t ax__tls_held(ax__tls *t, const char **data)
{
    ax__tls_common *c = ax__tls_com(t);
    *data = c->hold.p;
    return c->hold.len;
}

void ax__tls_held_done(ax__tls *t)
{
    ax__buf_free(&ax__tls_com(t)->hold);
}

const char *ax__tls_detail(const ax__tls *t)
{
    return ((const ax__tls_common *)(const void *)t)->detail;
}

void ax__tls_set_detail(ax__tls *t, const char *text)
{
    ax__tls_common *c = ax__tls_com(t);
    if (c->detail) return; /* the first cause is the one worth reporting */
    size_t n = strlen(text) + 1;
    if ((c->detail = ax_malloc(n)) != NULL) memcpy(c->detail, text, n);
}
