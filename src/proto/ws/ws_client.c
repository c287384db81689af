/* ws_client.c: the client's opening handshake (RFC 6455 sections 4.1 and
 * 4.2.2): connect (tcp:// for ws://, tls:// for wss://), send the request
 * with a fresh random key, check the 101 response, then hand the
 * connection to ws_conn.c. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include <axon/alloc.h>
#include <axon/ws.h>

#include "proto/http/http_parser.h"
#include "proto/ws/base64.h"
#include "proto/ws/ws_internal.h"

#define MAX_RESP_HEADERS 64
#define REQ_CAP 8192
#define HANDSHAKE_TIMEOUT_MS 10000

typedef struct client_hs {
    ax_ws *ws;
    char accept[AX_WS_ACCEPT_LEN + 1];
    char *path; /* ax_malloc'd "path\0" for the info block */
} client_hs;

/* ws://host[:port][/path] split into the connect URL, Host and path. */
typedef struct ws_url {
    bool tls;
    char conn[600];
    char host[520];
    const char *path;
} ws_url;

static int split_url(const char *url, ws_url *u)
{
    size_t skip;
    if (strncasecmp(url, "ws://", 5) == 0)
        u->tls = false, skip = 5;
    else if (strncasecmp(url, "wss://", 6) == 0)
        u->tls = true, skip = 6;
    else
        return AX_ESCHEME;
    const char *auth = url + skip;
    size_t alen = strcspn(auth, "/?#");
    if (alen == 0 || alen >= sizeof u->host) return AX_EURL;
    u->path = auth[alen] == '/' ? auth + alen : auth[alen] == '?' ? NULL : "/";
    memcpy(u->host, auth, alen);
    u->host[alen] = '\0';
    const char *rb = strrchr(u->host, ']'), *colon = strrchr(u->host, ':');
    bool has_port = colon && (!rb || colon > rb);
    snprintf(u->conn, sizeof u->conn, "%s://%s%s", u->tls ? "tls" : "tcp", u->host,
             has_port ? ""
             : u->tls ? ":443"
                      : ":80");
    return 0;
}

/* The path without query or fragment, for ax_ws_path(). */
static char *path_only(const char *target)
{
    size_t pl = strcspn(target, "?#");
    char *info = ax_malloc(pl + 1);
    if (!info) return NULL;
    memcpy(info, target, pl);
    info[pl] = '\0';
    return info;
}

static size_t build_request(char *out, const ws_url *u, const char *target, const char *key,
                            const ax_ws_opts *o)
{
    size_t n = (size_t)snprintf(out, REQ_CAP,
                                "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                                "Sec-WebSocket-Version: 13\r\n",
                                target, u->host, key);
    if (o->origin && n < REQ_CAP)
        n += (size_t)snprintf(out + n, REQ_CAP - n, "Origin: %s\r\n", o->origin);
    for (const char *const *p = o->protocols; p && *p && n < REQ_CAP; p++)
        n += (size_t)snprintf(out + n, REQ_CAP - n, "Sec-WebSocket-Protocol: %s\r\n", *p);
    if (o->deflate && n + 200 < REQ_CAP) {
        char offer[160];
        ax__ws_pmd_offer(o, offer, sizeof offer);
        n += (size_t)snprintf(out + n, REQ_CAP - n, "Sec-WebSocket-Extensions: %s\r\n", offer);
    }
    if (o->headers && n < REQ_CAP) n += (size_t)snprintf(out + n, REQ_CAP - n, "%s", o->headers);
    if (n < REQ_CAP) n += (size_t)snprintf(out + n, REQ_CAP - n, "\r\n");
    return n < REQ_CAP ? n : 0;
}

/* ---- the response ------------------------------------------------------ */

static bool head_has(const ax_http_head *h, const char *name, const char *token)
{
    for (size_t i = 0; i < h->num_headers; i++) {
        const ax_http_header *f = &h->headers[i];
        if (f->name.len == strlen(name) && strncasecmp(f->name.ptr, name, f->name.len) == 0 &&
            ax__ws_has_token(f->value.ptr, f->value.len, token))
            return true;
    }
    return false;
}

static const ax_http_str *head_field(const ax_http_head *h, const char *name)
{
    for (size_t i = 0; i < h->num_headers; i++)
        if (h->headers[i].name.len == strlen(name) &&
            strncasecmp(h->headers[i].name.ptr, name, h->headers[i].name.len) == 0)
            return &h->headers[i].value;
    return NULL;
}

/* The subprotocol the server chose, which must be one we offered. */
static int check_protocol(const ax_http_head *h, const ax_ws_opts *o, const char **proto)
{
    const ax_http_str *v = head_field(h, "Sec-WebSocket-Protocol");
    *proto = NULL;
    if (!v) return 0;
    for (const char *const *p = o->protocols; p && *p; p++)
        if (strlen(*p) == v->len && memcmp(*p, v->ptr, v->len) == 0) {
            *proto = *p;
            return 0;
        }
    return AX_EPROTO;
}

int ax__ws_check_response(const ax_ws_opts *o, const char *accept, const ax_http_head *h,
                          ax__ws_pmd *pmd, const char **proto)
{
    const ax_http_str *acc = head_field(h, "Sec-WebSocket-Accept");
    const ax_http_str *ext = head_field(h, "Sec-WebSocket-Extensions");
    if (h->status != 101 || !head_has(h, "Upgrade", "websocket") ||
        !head_has(h, "Connection", "upgrade"))
        return AX_EPROTO;
    if (!acc || acc->len != AX_WS_ACCEPT_LEN || memcmp(acc->ptr, accept, acc->len) != 0)
        return AX_EPROTO;
    if (check_protocol(h, o, proto) != 0) return AX_EPROTO;
    memset(pmd, 0, sizeof(*pmd));
    if (!ext) return 0;
    if (!o->deflate) return AX_EPROTO; /* an extension we never offered */
    return ax__ws_pmd_check(o, ext->ptr, ext->len, pmd);
}

/* The 101 is in: switch to the WebSocket callbacks. */
static int enter_open(client_hs *hs, ax_conn *c, const ax__ws_pmd *pmd, const char *proto)
{
    ax_ws *ws = hs->ws;
    size_t pl = strlen(hs->path), sl = proto ? strlen(proto) : 0;
    char *info = ax_malloc(pl + sl + 3);
    if (!info) return AX_ENOMEM;
    memcpy(info, hs->path, pl + 1);
    info[pl + 1] = '\0';
    memcpy(info + pl + 2, proto ? proto : "", sl + 1);
    ax__ws_set_info(ws, info);
    int rc = ax__ws_open(ws, c, pmd);
    if (rc) return rc;
    ax_conn_set_idle_timeout(c, 0);
    ax_conn_set_cbs(c, &ax__ws_conn_cbs);
    ax_conn_set_data(c, ws);
    ax_free(hs->path);
    ax_free(hs);
    ax__ws_conn_cbs.on_open(c);
    return 0;
}

static size_t hs_data(ax_conn *c, const char *data, size_t len)
{
    client_hs *hs = ax_conn_data(c);
    ax_http_header hdrs[MAX_RESP_HEADERS];
    ax_http_head h = {.headers = hdrs, .headers_cap = MAX_RESP_HEADERS};
    ax_http_parser p;
    ax__ws_pmd pmd;
    const char *proto;
    ax_http_parser_init(&p, AX_HTTP_RESPONSE, NULL);
    int n = ax_http_parse_head(&p, data, len, &h);
    if (n == AX_HTTP_INCOMPLETE) return 0;
    if (n < 0 || ax__ws_check_response(ax__ws_opts(hs->ws), hs->accept, &h, &pmd, &proto) != 0 ||
        enter_open(hs, c, &pmd, proto) != 0) {
        ax_conn_abort(c, AX_EPROTO);
        return len;
    }
    /* Frames may have come with the response. */
    return (size_t)n +
           (len > (size_t)n ? ax__ws_conn_cbs.on_data(c, data + n, len - (size_t)n) : 0);
}

static void hs_free(client_hs *hs);

static void hs_close(ax_conn *c, int reason)
{
    client_hs *hs = ax_conn_data(c);
    (void)reason;
    ax_ws *ws = hs->ws;
    hs->ws = NULL;
    hs_free(hs);
    ax__ws_report_close(ws, AX_WS_CLOSE_ABNORMAL);
}

static const ax_conn_cbs hs_cbs = {.on_data = hs_data, .on_close = hs_close};

/* A fresh key and the accept value the server must answer with. */
static int make_key(char key[AX_WS_KEY_LEN + 1], char accept[AX_WS_ACCEPT_LEN + 1])
{
    uint8_t raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) return AX_EIO;
    ax_ws_base64_encode(key, raw, sizeof raw);
    return ax_ws_accept(accept, key, AX_WS_KEY_LEN);
}

static void hs_free(client_hs *hs)
{
    ax__ws_free(hs->ws);
    ax_free(hs->path);
    ax_free(hs);
}

ax_ws *ax_ws_connect(ax_loop *loop, const char *url, const ax_ws_cbs *cbs, const ax_ws_opts *opts,
                     void *ud, int *err)
{
    ax_ws_opts o = {0};
    ws_url u;
    char key[AX_WS_KEY_LEN + 1], req[REQ_CAP];
    int rc = AX_ENOMEM;
    size_t n = 0;
    if (opts) o = *opts;
    ax__ws_opts_defaults(&o);
    if ((rc = split_url(url, &u)) != 0) goto fail;
    const char *target = u.path ? u.path : "/";
    client_hs *hs = ax_calloc(1, sizeof(*hs));
    if (!hs) goto fail_nomem;
    hs->path = path_only(target);
    hs->ws = hs->path ? ax__ws_new(AX_WS_CLIENT, cbs, &o, ud, NULL) : NULL;
    if (!hs->ws) goto fail_hs_nomem;
    if ((rc = make_key(key, hs->accept)) != 0) goto fail_hs;
    rc = AX_EINVAL; /* a request that does not fit */
    if (!(n = build_request(req, &u, target, key, &o))) goto fail_hs;
    ax_conn_opts co = {.tls = o.tls, .idle_timeout_ms = HANDSHAKE_TIMEOUT_MS};
    ax_conn *c = ax_connect(loop, u.conn, &hs_cbs, &co, hs, &rc);
    if (!c) goto fail_hs;
    ax_ws *ws = hs->ws;
    ax__ws_set_conn(ws, c);
    if ((rc = ax_conn_write(c, req, n)) < 0) ax_conn_abort(c, rc); /* on_close reports it */
    return ws;
fail_hs_nomem:
    rc = AX_ENOMEM;
fail_hs:
    hs_free(hs);
    goto fail;
fail_nomem:
    rc = AX_ENOMEM;
fail:
    if (err) *err = rc;
    return NULL;
}
