/* addr.c: parsing and printing tcp://, udp:// and unix:// URLs. */
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static int fail(char *why, size_t why_len, int code, const char *fmt, const char *a,
                const char *url)
{
    if (why && why_len) {
        char part[160];
        snprintf(part, sizeof part, fmt, a);
        snprintf(why, why_len, "%s in '%s'", part, url);
    }
    return code;
}

static int parse_unix(const char *url, const char *rest, ax_addr *out, char *why, size_t wl)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)&out->sa;
    size_t n = strlen(rest);
    if (n == 0) return fail(why, wl, AX_EURL, "%sempty socket path", "", url);
    if (n >= sizeof sun->sun_path)
        return fail(why, wl, AX_EURL, "socket path longer than %s bytes", "107", url);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, rest, n);
    if (rest[0] == '@') sun->sun_path[0] = '\0'; /* Linux abstract namespace */
    out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (rest[0] != '@'));
    return 0;
}

static int parse_port(const char *p, const char *url, int *port, char *why, size_t wl)
{
    if (*p == '\0' || *p == '/') return fail(why, wl, AX_EPORT, "%smissing port", "", url);
    long v = 0;
    const char *s = p;
    for (; *s && *s != '/'; s++) {
        if (*s < '0' || *s > '9')
            return fail(why, wl, AX_EPORT, "port '%s' is not a number", p, url);
        v = v * 10 + (*s - '0');
        if (v > 65535) return fail(why, wl, AX_EPORT, "port %s is out of range", p, url);
    }
    *port = (int)v;
    return 0;
}

static int parse_ip(const char *url, const char *rest, ax_addr *out, char *why, size_t wl)
{
    char host[64];
    const char *colon;
    size_t hlen;
    if (rest[0] == '[') {
        const char *end = strchr(rest, ']');
        if (!end) return fail(why, wl, AX_EURL, "%sunclosed '[' around IPv6 address", "", url);
        hlen = (size_t)(end - rest - 1);
        if (hlen >= sizeof host) return fail(why, wl, AX_EHOST, "%shost too long", "", url);
        memcpy(host, rest + 1, hlen);
        host[hlen] = '\0';
        if (end[1] != ':') return fail(why, wl, AX_EPORT, "%sexpected ':port' after ']'", "", url);
        colon = end + 1;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return fail(why, wl, AX_EHOST, "'%s' is not an IPv6 address", host, url);
        s6->sin6_family = AF_INET6;
        out->len = sizeof(*s6);
    } else {
        colon = strrchr(rest, ':');
        const char *slash = strchr(rest, '/');
        if (!colon || (slash && slash < colon))
            return fail(why, wl, AX_EPORT, "%smissing ':port'", "", url);
        hlen = (size_t)(colon - rest);
        if (hlen >= sizeof host) return fail(why, wl, AX_EHOST, "%shost too long", "", url);
        memcpy(host, rest, hlen);
        host[hlen] = '\0';
        if (memchr(host, ':', hlen))
            return fail(why, wl, AX_EHOST, "IPv6 address '%s' needs [brackets]", host, url);
        struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
        s4->sin_family = AF_INET;
        out->len = sizeof(*s4);
        if (hlen == 0)
            return fail(why, wl, AX_EHOST, "%smissing host (use 0.0.0.0 or * for all)", "", url);
        if (strcmp(host, "*") == 0)
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(host, "localhost") == 0)
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
            return fail(why, wl, AX_EHOST,
                        "'%s' is not a numeric address or localhost (a name needs DNS: "
                        "see ax_dns_resolve)",
                        host, url);
    }
    int port, rc = parse_port(colon + 1, url, &port, why, wl);
    if (rc) return rc;
    if (out->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->sa)->sin6_port = htons((uint16_t)port);
    return 0;
}

int ax_addr_parse(const char *url, ax_addr *out, char *why, size_t why_len)
{
    static const struct {
        const char *name;
        ax_scheme scheme;
    } schemes[] = {{"tcp", AX_SCHEME_TCP}, {"udp", AX_SCHEME_UDP}, {"unix", AX_SCHEME_UNIX}};
    if (why && why_len) why[0] = '\0';
    if (!url || !out) return AX_EINVAL;
    memset(out, 0, sizeof(*out));
    const char *sep = strstr(url, "://");
    if (!sep)
        return fail(why, why_len, AX_EURL, "%smissing scheme (expected tcp://, udp:// or unix://)",
                    "", url);
    size_t slen = (size_t)(sep - url);
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strlen(schemes[i].name) != slen || strncmp(url, schemes[i].name, slen) != 0) continue;
        out->scheme = schemes[i].scheme;
        if (out->scheme == AX_SCHEME_UNIX) return parse_unix(url, sep + 3, out, why, why_len);
        return parse_ip(url, sep + 3, out, why, why_len);
    }
    char scheme[32];
    snprintf(scheme, sizeof scheme, "%.*s", (int)(slen < 31 ? slen : 31), url);
    return fail(why, why_len, AX_ESCHEME, "unknown scheme '%s' (expected tcp, udp or unix)", scheme,
                url);
}

static const char *scheme_name(ax_scheme s)
{
    return s == AX_SCHEME_UDP ? "udp" : s == AX_SCHEME_UNIX ? "unix" : "tcp";
}

char *ax_addr_format(const ax_addr *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (!len) return buf;
    switch (a->sa.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->sa;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s://%s:%d", scheme_name(a->scheme), host, ntohs(s4->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "%s://[%s]:%d", scheme_name(a->scheme), host, ntohs(s6->sin6_port));
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->sa;
        size_t n = a->len > offsetof(struct sockaddr_un, sun_path)
                       ? a->len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n && sun->sun_path[0] == '\0')
            snprintf(buf, len, "unix://@%.*s", (int)(n - 1), sun->sun_path + 1);
        else
            snprintf(buf, len, "unix://%.*s", (int)strnlen(sun->sun_path, n), sun->sun_path);
        break;
    }
    default:
        snprintf(buf, len, "%s://?", scheme_name(a->scheme));
    }
    return buf;
}

int ax_addr_port(const ax_addr *a)
{
    if (a->sa.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    if (a->sa.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    return 0;
}

void ax_addr_from_sockaddr(ax_addr *out, ax_scheme scheme, const struct sockaddr *sa, socklen_t len)
{
    memset(out, 0, sizeof(*out));
    out->scheme = scheme;
    if (len > sizeof out->sa) len = sizeof out->sa;
    memcpy(&out->sa, sa, len);
    out->len = len;
}

bool ax_addr_equal(const ax_addr *a, const ax_addr *b)
{
    if (a->sa.ss_family != b->sa.ss_family) return false;
    switch (a->sa.ss_family) {
    case AF_INET: {
        const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    default:
        return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
    }
}

/* ---- taking a URL apart for name resolution ----------------------------- */

static bool valid_name(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' || strstr(h, "..")) return false;
    for (const char *p = h; *p; p++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
        if (!ok) return false;
    }
    return true;
}

static int split_host(const char *url, const char *rest, ax_url *out, const char **port, char *why,
                      size_t wl)
{
    const char *end;
    if (rest[0] == '[') {
        end = strchr(rest, ']');
        if (!end) return fail(why, wl, AX_EURL, "%sunclosed '[' around IPv6 address", "", url);
        rest++;
        if (end[1] != ':') return fail(why, wl, AX_EPORT, "%sexpected ':port' after ']'", "", url);
        *port = end + 2;
    } else {
        end = strchr(rest, ':');
        const char *slash = strchr(rest, '/');
        if (!end || (slash && slash < end))
            return fail(why, wl, AX_EPORT, "%smissing ':port'", "", url);
        *port = end + 1;
    }
    size_t n = (size_t)(end - rest);
    if (n == 0) return fail(why, wl, AX_EHOST, "%smissing host", "", url);
    if (n >= sizeof out->host) return fail(why, wl, AX_EHOST, "%shost too long", "", url);
    memcpy(out->host, rest, n);
    out->host[n] = '\0';
    struct in6_addr a6;
    if (strcmp(out->host, "*") != 0 && !valid_name(out->host) &&
        inet_pton(AF_INET6, out->host, &a6) != 1)
        return fail(why, wl, AX_EHOST, "'%s' is not a valid host name or address", out->host, url);
    return 0;
}

int ax_url_split(const char *url, ax_url *out, char *why, size_t why_len)
{
    if (why && why_len) why[0] = '\0';
    if (!url || !out) return AX_EINVAL;
    memset(out, 0, sizeof(*out));
    const char *sep = strstr(url, "://");
    size_t slen = sep ? (size_t)(sep - url) : 0;
    if (!sep || slen == 0 || slen >= sizeof out->scheme)
        return fail(why, why_len, AX_EURL, "%smissing or bad scheme (like tcp://)", "", url);
    memcpy(out->scheme, url, slen);
    const char *rest = sep + 3;
    if (strcmp(out->scheme, "unix") == 0) {
        size_t n = strlen(rest);
        if (n == 0 || n >= sizeof out->host)
            return fail(why, why_len, AX_EURL, "%sbad socket path", "", url);
        memcpy(out->host, rest, n + 1);
        out->port = -1;
        return 0;
    }
    const char *port;
    int rc = split_host(url, rest, out, &port, why, why_len);
    if (rc) return rc;
    return parse_port(port, url, &out->port, why, why_len);
}
