/* origin.c: which web pages may use the hub from a browser.
 *
 * A browser sends the page's `Origin` with every WebSocket opening and
 * every POST, and attaches the user's cookies and network position (a
 * loopback or intranet hub) to requests that any web site makes.  So the
 * WebSocket upgrade (cross-site WebSocket hijacking) and the requests that
 * change state (cross-site request forgery: a `text/plain` POST needs no
 * CORS preflight) are refused unless the page's origin is allowed:
 *
 *   - no `Origin` field: not a browser page (curl, programs), allowed,
 *     unless `Sec-Fetch-Site: cross-site` says a browser made it for
 *     another site;
 *   - the hub's own origin: the host and port of `Host`, http or https;
 *   - a loopback alias of it: localhost, 127.0.0.1 or [::1] with that port;
 *   - an origin listed in allow_origins (`*`: any).
 *
 * `null` (sandboxed frames, file: pages) is an origin like any other: it
 * passes only when listed. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "serve.h"

static const char *last_of(const char *s, char ch, size_t n)
{
    while (n--)
        if (s[n] == ch) return s + n;
    return NULL;
}

/* The port of a Host value ("h", "h:p", "[v6]:p"), or NULL. */
static const char *host_port(const char *h, size_t n, size_t *hostlen)
{
    const char *c = last_of(h, ':', n);
    const char *rb = last_of(h, ']', n);
    if (!c || (rb && c < rb)) {
        *hostlen = n;
        return NULL;
    }
    *hostlen = (size_t)(c - h);
    return c + 1;
}

static bool same_origin(const char *o, size_t ol, const char *host, size_t hl, bool tls)
{
    size_t sl = strncasecmp(o, "https://", 8) == 0 ? 8 : strncasecmp(o, "http://", 7) == 0 ? 7 : 0;
    if (!sl || !hl) return false;
    o += sl, ol -= sl;
    size_t h_host, o_host;
    const char *hp = host_port(host, hl, &h_host);
    const char *op = host_port(o, ol, &o_host);
    /* a missing port is the scheme's default */
    const char *def = sl == 8 ? "443" : "80";
    const char *hdef = tls ? "443" : "80";
    size_t hpl = hp ? hl - (size_t)(hp - host) : strlen(hdef);
    size_t opl = op ? ol - (size_t)(op - o) : strlen(def);
    if (!hp) hp = hdef;
    if (!op) op = def;
    if (hpl != opl || memcmp(hp, op, hpl) != 0) return false;
    if (o_host == h_host && strncasecmp(o, host, h_host) == 0) return true;
    static const char *const loop[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof loop / sizeof loop[0]; i++)
        if (o_host == strlen(loop[i]) && strncasecmp(o, loop[i], o_host) == 0) return true;
    return false;
}

static bool listed(const char *list, const char *o, size_t ol)
{
    while (ol && o[ol - 1] == '/')
        ol--;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ", \t");
        size_t m = n;
        while (m && p[m - 1] == '/')
            m--;
        if ((n == 1 && *p == '*') || (m == ol && m && strncasecmp(p, o, m) == 0)) return true;
        p += n;
        p += strspn(p, ", \t");
    }
    return false;
}

bool serve_origin_allowed(ax_http_req *r, const serve_cfg *cfg, char *why, size_t why_len)
{
    size_t ol = 0, hl = 0, fl = 0;
    const char *o = ax_http_req_header(r, "Origin", &ol);
    const char *f = ax_http_req_header(r, "Sec-Fetch-Site", &fl);
    if (!o || !ol) {
        if (!f || fl != 10 || strncasecmp(f, "cross-site", 10) != 0) return true;
        snprintf(why, why_len, "cross-site request refused (Sec-Fetch-Site: cross-site)");
        return false;
    }
    const char *host = ax_http_req_header(r, "Host", &hl);
    bool tls = ax_conn_is_tls(ax_http_req_conn(r));
    if ((host && same_origin(o, ol, host, hl, tls)) || listed(cfg->allow_origins, o, ol))
        return true;
    snprintf(why, why_len,
             "cross-origin request refused: Origin '%.*s' is not this hub's and not in "
             "allow_origins (--allow-origin)",
             (int)(ol > 200 ? 200 : ol), o);
    return false;
}
