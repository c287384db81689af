/* gw_pages.c: the browser pages of axon serve, from web/ compiled into the
 * binary: / (chat), /dashboard, /static/<file>.  The pages make no request
 * outside this server. */
#include <stdio.h>
#include <string.h>

#include "serve.h"
#include "web_assets.h"

static const web_asset *find(const char *name, size_t len)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strlen(web_assets[i].name) == len && memcmp(web_assets[i].name, name, len) == 0)
            return &web_assets[i];
    return NULL;
}

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return "application/octet-stream";
    if (strcmp(dot, ".html") == 0) return "text/html; charset=utf-8";
    if (strcmp(dot, ".js") == 0) return "text/javascript; charset=utf-8";
    if (strcmp(dot, ".css") == 0) return "text/css; charset=utf-8";
    if (strcmp(dot, ".svg") == 0) return "image/svg+xml";
    return "application/octet-stream";
}

/* A weak validator from the content, so a new binary invalidates caches. */
static void etag_of(const web_asset *a, char *out, size_t cap)
{
    unsigned long h = 5381;
    for (size_t i = 0; i < a->len; i++)
        h = h * 33 + a->data[i];
    snprintf(out, cap, "W/\"%zx-%lx\"", a->len, h);
}

static void serve_asset(ax_http_req *r, const web_asset *a)
{
    if (!ax_http_req_is(r, "GET") && !ax_http_req_is(r, "HEAD")) {
        ax_http_add_header(r, "Allow", "GET, HEAD");
        ax_http_respond(r, 405, "text/plain; charset=utf-8", "405 Method Not Allowed\n", 23);
        return;
    }
    char etag[48];
    etag_of(a, etag, sizeof etag);
    size_t il;
    const char *inm = ax_http_req_header(r, "If-None-Match", &il);
    ax_http_add_header(r, "ETag", etag);
    ax_http_add_header(r, "Cache-Control", "no-cache");
    ax_http_add_header(r, "X-Content-Type-Options", "nosniff");
    if (inm && il == strlen(etag) && memcmp(inm, etag, il) == 0) {
        ax_http_start(r, 304, -1);
        ax_http_end(r);
        return;
    }
    ax_http_respond(r, 200, type_of(a->name), a->data, a->len);
}

static void not_found(ax_http_req *r)
{
    ax_http_respond(r, 404, "text/plain; charset=utf-8", "404 Not Found\n", 14);
}

/* The first thread's server: its settings and auth (the same for all). */
static const serve *pages_sv;

/* /dashboard: as /metrics, an admin or (by default) a loopback client. */
static bool dashboard_allowed(ax_http_req *r)
{
    const serve *sv = __atomic_load_n(&pages_sv, __ATOMIC_ACQUIRE);
    if (!sv || sv->cfg->metrics_access == SERVE_METRICS_ANY) return true;
    bool loop = serve_http_loopback(r);
    if (sv->cfg->metrics_access == SERVE_METRICS_LOOPBACK && loop) return true;
    auth_identity *id = NULL;
    if (serve_http_identity(sv, r, &id) != 0 || !id) {
        serve_http_unauthorized(r);
        return false;
    }
    bool ok = serve_metrics_allowed(sv, id, loop);
    auth_identity_free(id);
    if (!ok) serve_http_error(r, 403, "forbidden: /dashboard needs an admin identity");
    return ok;
}

static void page(ax_http_req *r, void *ud)
{
    const char *name = ud;
    size_t pl;
    const char *path = ax_http_req_path(r, &pl);
    bool exact = (pl == 1 && path[0] == '/') || (pl == 10 && memcmp(path, "/dashboard", 10) == 0) ||
                 (pl == 11 && memcmp(path, "/dashboard/", 11) == 0);
    const web_asset *a = exact ? find(name, strlen(name)) : NULL;
    if (!a) {
        not_found(r);
        return;
    }
    if (path[1] == 'd' && !dashboard_allowed(r)) return;
    serve_asset(r, a);
}

static void asset(ax_http_req *r, void *ud)
{
    (void)ud;
    size_t pl;
    const char *path = ax_http_req_path(r, &pl);
    const size_t skip = strlen("/static/");
    const web_asset *a = pl > skip ? find(path + skip, pl - skip) : NULL;
    if (!a) {
        not_found(r);
        return;
    }
    serve_asset(r, a);
}

int gw_pages_start(serve *sv, ax_http_server *srv)
{
    const serve *none = NULL;
    __atomic_compare_exchange_n(&pages_sv, &none, sv, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    int err;
    if ((err = ax_http_route(srv, NULL, "/", page, "index.html")) ||
        (err = ax_http_route(srv, NULL, "/dashboard", page, "dashboard.html")) ||
        (err = ax_http_route(srv, NULL, "/static", asset, NULL)))
        return err;
    return 0;
}
