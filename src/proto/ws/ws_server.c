/* ws_server.c: the server's opening handshake (RFC 6455 section 4.2) on
 * the HTTP server, and the field-list helpers both handshakes use. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include <axon/alloc.h>
#include <axon/http.h>
#include <axon/ws.h>

#include "proto/ws/ws_internal.h"

#define HEAD_CAP 1024
#define EXT_CAP 2048
#define MAX_PROTO 128

int ax_ws_accept(char out[AX_WS_ACCEPT_LEN + 1], const char *key, size_t len)
{
    uint8_t buf[AX_WS_KEY_LEN + sizeof(AX_WS_GUID)], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!ax_ws_key_valid(key, len)) return AX_EINVAL;
    memcpy(buf, key, len);
    memcpy(buf + len, AX_WS_GUID, sizeof(AX_WS_GUID) - 1);
    if (EVP_Digest(buf, len + sizeof(AX_WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20)
        return AX_EIO;
    ax_ws_accept_from_sha1(out, md);
    return 0;
}

static bool is_ows(char ch)
{
    return ch == ' ' || ch == '\t';
}

bool ax__ws_next_elem(const char *v, size_t n, size_t *pos, const char **elem, size_t *elen)
{
    size_t i = *pos;
    while (i < n) {
        while (i < n && (is_ows(v[i]) || v[i] == ',')) /* empty elements are allowed */
            i++;
        if (i == n) break;
        size_t start = i;
        while (i < n && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_ows(v[end - 1]))
            end--;
        *elem = v + start;
        *elen = end - start;
        *pos = i;
        return true;
    }
    *pos = n;
    return false;
}

static bool list_has(const char *v, size_t n, const char *token, bool icase)
{
    size_t pos = 0, el, tl = strlen(token);
    const char *e;
    while (ax__ws_next_elem(v, n, &pos, &e, &el)) {
        if (el != tl) continue;
        if (icase ? strncasecmp(e, token, tl) == 0 : memcmp(e, token, tl) == 0) return true;
    }
    return false;
}

bool ax__ws_has_token(const char *v, size_t n, const char *token)
{
    return list_has(v, n, token, true);
}

/* Whether any field `name` of the request lists `token`. */
static bool field_has(const ax_http_req *r, const char *name, const char *token, bool icase)
{
    size_t count = ax_http_req_header_count(r), nl, vl;
    const char *fname;
    for (size_t i = 0; i < count; i++) {
        const char *v = ax_http_req_header_at(r, i, &fname, &nl, &vl);
        if (nl == strlen(name) && strncasecmp(fname, name, nl) == 0 &&
            list_has(v, vl, token, icase))
            return true;
    }
    return false;
}

/* Every field `name` joined with ", " into out; 0 when none or too long. */
static size_t field_join(const ax_http_req *r, const char *name, char *out, size_t cap)
{
    size_t count = ax_http_req_header_count(r), nl, vl, len = 0;
    const char *fname;
    for (size_t i = 0; i < count; i++) {
        const char *v = ax_http_req_header_at(r, i, &fname, &nl, &vl);
        if (nl != strlen(name) || strncasecmp(fname, name, nl) != 0) continue;
        if (len + vl + 2 >= cap) return 0;
        if (len) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, v, vl);
        len += vl;
    }
    out[len] = '\0';
    return len;
}

/* The handshake rules of RFC 6455 4.2.1.  Returns 0 or the status to
 * answer with. */
static int check_request(const ax_http_req *r, const char **key, size_t *klen)
{
    size_t vl;
    const char *v;
    if (!ax_http_req_is(r, "GET") || ax_http_req_minor(r) < 1) return 400;
    if (!field_has(r, "Upgrade", "websocket", true) || !field_has(r, "Connection", "upgrade", true))
        return 426;
    v = ax_http_req_header(r, "Sec-WebSocket-Version", &vl);
    if (!v || vl != 2 || memcmp(v, "13", 2) != 0) return 426;
    *key = ax_http_req_header(r, "Sec-WebSocket-Key", klen);
    if (!*key || !ax_ws_key_valid(*key, *klen)) return 400;
    return 0;
}

static int refuse(ax_http_req *r, int status)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, ax_http_status_text(status));
    if (status == 426) {
        ax_http_add_header(r, "Upgrade", "websocket");
        ax_http_add_header(r, "Sec-WebSocket-Version", "13");
    }
    ax_http_set_close(r);
    ax_http_respond(r, status, "text/plain; charset=utf-8", body, (size_t)n);
    return AX_EINVAL;
}

/* The first of our protocols the client offers, or NULL. */
static const char *choose_protocol(const ax_http_req *r, const char *const *ours)
{
    for (; ours && *ours; ours++)
        if (strlen(*ours) <= MAX_PROTO && field_has(r, "Sec-WebSocket-Protocol", *ours, false))
            return *ours;
    return NULL;
}

/* "path\0origin\0protocol\0" for the accessors. */
static char *make_info(const ax_http_req *r, const char *proto)
{
    size_t pl, ol, sl = proto ? strlen(proto) : 0;
    const char *path = ax_http_req_path(r, &pl);
    const char *origin = ax_http_req_header(r, "Origin", &ol);
    char *info = ax_malloc(pl + ol + sl + 3);
    if (!info) return NULL;
    memcpy(info, path, pl);
    info[pl] = '\0';
    if (ol) memcpy(info + pl + 1, origin, ol);
    info[pl + 1 + ol] = '\0';
    if (sl) memcpy(info + pl + ol + 2, proto, sl);
    info[pl + ol + 2 + sl] = '\0';
    return info;
}

static size_t build_head(char *out, const char *accept, const char *proto, const char *ext,
                         size_t elen)
{
    int n = snprintf(out, HEAD_CAP,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n",
                     accept);
    if (proto)
        n += snprintf(out + n, HEAD_CAP - (size_t)n, "Sec-WebSocket-Protocol: %s\r\n", proto);
    if (elen)
        n += snprintf(out + n, HEAD_CAP - (size_t)n, "Sec-WebSocket-Extensions: %.*s\r\n",
                      (int)elen, ext);
    n += snprintf(out + n, HEAD_CAP - (size_t)n, "\r\n");
    return (size_t)n;
}

int ax_ws_upgrade(ax_http_req *r, const ax_ws_cbs *cbs, const ax_ws_opts *opts, void *ud)
{
    ax_ws_opts o = {0};
    const char *key = NULL;
    size_t klen = 0, elen = 0;
    char accept[AX_WS_ACCEPT_LEN + 1], head[HEAD_CAP], ext[256], offers[EXT_CAP];
    ax__ws_pmd pmd = {0};
    if (opts) o = *opts;
    ax__ws_opts_defaults(&o);
    int st = check_request(r, &key, &klen);
    if (st) return refuse(r, st);
    if (ax_ws_accept(accept, key, klen) != 0) return refuse(r, 500);
    const char *proto = choose_protocol(r, o.protocols);
    if (o.deflate) {
        size_t n = field_join(r, "Sec-WebSocket-Extensions", offers, sizeof offers);
        if (n) elen = ax__ws_pmd_accept(&o, offers, n, &pmd, ext, sizeof ext);
    }
    char *info = make_info(r, proto);
    ax_ws *ws = info ? ax__ws_new(AX_WS_SERVER, cbs, &o, ud, info) : NULL;
    if (!ws) return refuse(r, 500);
    int rc = ax__ws_open(ws, ax_http_req_conn(r), &pmd);
    size_t hl = build_head(head, accept, proto, ext, elen);
    if (rc == 0) rc = ax_http_upgrade(r, head, hl, &ax__ws_conn_cbs, ws);
    if (rc != 0) {
        ax__ws_free(ws);
        return refuse(r, 500);
    }
    return 0;
}

void ax_ws_handler(ax_http_req *r, void *ud)
{
    const ax_ws_endpoint *ep = ud;
    (void)ax_ws_upgrade(r, ep->cbs, ep->opts, ep->ud);
}

int ax_ws_route(ax_http_server *s, const char *prefix, const ax_ws_endpoint *ep)
{
    return ax_http_route(s, "GET", prefix, ax_ws_handler, (void *)(uintptr_t)ep);
}
