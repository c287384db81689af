/* url.c: http:// and https:// URLs for the client: taking them apart, and
 * resolving a Location against the URL it came from (RFC 3986 5.2). */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <axon/alloc.h>
#include <axon/error.h>

#include "client_internal.h"

static bool host_byte(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_';
}

static bool ipv6_byte(unsigned char c)
{
    return isxdigit(c) || c == ':' || c == '.';
}

/* Path and query may hold any visible ASCII byte; spaces and controls
 * would break the request line. */
static bool target_ok(const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f) return false;
    return true;
}

static int parse_port(const char *p, const char *end, ax__http_url *out)
{
    if (p >= end) return 0; /* "host:" keeps the default */
    long v = 0;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p)) return AX_EPORT;
        v = v * 10 + (*p - '0');
        if (v > 65535) return AX_EPORT;
    }
    if (v == 0) return AX_EPORT;
    out->port = (int)v;
    out->port_given = true;
    return 0;
}

static int parse_host(const char *auth, const char *end, ax__http_url *out, const char **port)
{
    const char *h = auth, *hend;
    bool (*ok)(unsigned char) = host_byte;
    *port = NULL;
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(end - auth));
        if (!rb) return AX_EHOST;
        h = auth + 1;
        hend = rb;
        ok = ipv6_byte;
        out->ipv6 = true;
        if (rb + 1 < end && rb[1] != ':') return AX_EURL;
        if (rb + 1 < end) *port = rb + 2;
    } else {
        hend = memchr(auth, ':', (size_t)(end - auth));
        if (hend)
            *port = hend + 1;
        else
            hend = end;
    }
    size_t n = (size_t)(hend - h);
    if (n == 0 || n >= sizeof out->host) return AX_EHOST;
    for (size_t i = 0; i < n; i++)
        if (!ok((unsigned char)h[i])) return AX_EHOST;
    memcpy(out->host, h, n);
    out->host[n] = '\0';
    return 0;
}

int ax__http_url_parse(const char *url, ax__http_url *out)
{
    const char *p;
    memset(out, 0, sizeof(*out));
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        p = url + 8;
        out->tls = true;
    } else {
        return strstr(url, "://") ? AX_ESCHEME : AX_EURL;
    }
    out->port = out->tls ? 443 : 80;
    const char *end = p + strcspn(p, "/?#"), *port;
    if (memchr(p, '@', (size_t)(end - p))) return AX_EURL; /* no credentials in URLs */
    int rc = parse_host(p, end, out, &port);
    if (rc == 0 && port) rc = parse_port(port, end, out);
    if (rc) return rc;
    out->target = end;
    out->target_len = strcspn(end, "#");
    return target_ok(out->target, out->target_len) ? 0 : AX_EURL;
}

/* ---- resolving references ------------------------------------------------ */

typedef struct part {
    const char *p;
    size_t n;
} part;

/* Split an absolute URL (or a network-path reference "//a/b") into the
 * part up to the end of the authority, the path and the query. */
static void split(const char *u, size_t n, part *prefix, part *path, part *query)
{
    const char *s = memchr(u, '/', n); /* the first slash of "//" */
    size_t a = s ? (size_t)(s - u) + 2 : n;
    if (a > n) a = n;
    while (a < n && u[a] != '/' && u[a] != '?')
        a++;
    size_t q = a;
    while (q < n && u[q] != '?')
        q++;
    *prefix = (part){u, a};
    *path = (part){u + a, q - a};
    *query = (part){u + q, n - q};
}

/* RFC 3986 5.2.4 for an absolute path: "." and ".." segments go, a
 * trailing one leaves its slash.  Returns the output length. */
static size_t remove_dots(const char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        size_t j = i + 1;
        while (j < n && in[j] != '/')
            j++;
        const char *seg = in + i + 1;
        size_t sl = j - i - 1;
        bool last = j >= n;
        if (sl == 1 && seg[0] == '.') {
            if (last) out[o++] = '/';
        } else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0) o--;
            if (last) out[o++] = '/';
        } else {
            out[o++] = '/';
            memcpy(out + o, seg, sl);
            o += sl;
        }
        i = j;
    }
    if (o == 0) out[o++] = '/';
    return o;
}

static bool has_scheme(const char *r, size_t n)
{
    size_t i = 0;
    if (n == 0 || !isalpha((unsigned char)r[0])) return false;
    while (i < n && (isalnum((unsigned char)r[i]) || r[i] == '+' || r[i] == '-' || r[i] == '.'))
        i++;
    return i < n && r[i] == ':';
}

/* out = scheme + prefix + remove_dots(dir + path) + query */
static int compose(part scheme, part prefix, part dir, part path, part query, char **out)
{
    size_t cap = scheme.n + prefix.n + 2 * (dir.n + path.n) + query.n + 4;
    char *buf = ax_malloc(cap);
    if (!buf) return AX_ENOMEM;
    char *tmp = buf + scheme.n + prefix.n + dir.n + path.n + 2;
    size_t t = 0, o = 0;
    if ((dir.n == 0 || dir.p[0] != '/') && (path.n == 0 || path.p[0] != '/')) tmp[t++] = '/';
    memcpy(tmp + t, dir.p, dir.n);
    memcpy(tmp + t + dir.n, path.p, path.n);
    t += dir.n + path.n;
    memcpy(buf, scheme.p, scheme.n);
    memcpy(buf + scheme.n, prefix.p, prefix.n);
    o = scheme.n + prefix.n;
    o += remove_dots(tmp, t, buf + o);
    memmove(buf + o, query.p, query.n);
    buf[o + query.n] = '\0';
    *out = buf;
    return 0;
}

int ax__http_url_resolve(const char *base, const char *ref, size_t len, char **out)
{
    const char *hash = memchr(ref, '#', len);
    if (hash) len = (size_t)(hash - ref);
    const char *sep = strstr(base, "://");
    if (!sep) return AX_EURL;
    size_t blen = strcspn(base, "#");
    part bpre, bpath, bquery, rpre, rpath, rquery, none = {"", 0};
    split(base, blen, &bpre, &bpath, &bquery);
    if (has_scheme(ref, len)) {
        const char *colon = memchr(ref, ':', len);
        if ((size_t)(colon - ref) + 3 > len || colon[1] != '/' || colon[2] != '/') return AX_EURL;
        split(ref, len, &rpre, &rpath, &rquery);
        return compose(none, rpre, none, rpath, rquery, out);
    }
    if (len >= 2 && ref[0] == '/' && ref[1] == '/') {
        split(ref, len, &rpre, &rpath, &rquery);
        part scheme = {base, (size_t)(sep - base) + 1}; /* "http:" */
        return compose(scheme, rpre, none, rpath, rquery, out);
    }
    if (len == 0) return compose(none, bpre, none, bpath, bquery, out);
    if (ref[0] == '?') return compose(none, bpre, none, bpath, (part){ref, len}, out);
    size_t q = 0;
    while (q < len && ref[q] != '?')
        q++;
    rpath = (part){ref, q};
    rquery = (part){ref + q, len - q};
    if (ref[0] == '/') return compose(none, bpre, none, rpath, rquery, out);
    part dir = bpath;
    while (dir.n > 0 && dir.p[dir.n - 1] != '/')
        dir.n--;
    return compose(none, bpre, dir, rpath, rquery, out);
}
