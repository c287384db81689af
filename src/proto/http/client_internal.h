/* client_internal.h: the HTTP client's pure helpers (internal): URLs taken
 * apart and redirect targets resolved, with no I/O. */
#ifndef AXON_PROTO_HTTP_CLIENT_INTERNAL_H
#define AXON_PROTO_HTTP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

/* An http:// or https:// URL taken apart. */
typedef struct ax__http_url {
    bool tls;           /* https */
    bool ipv6;          /* the host was written in brackets */
    bool port_given;    /* the URL names a port (Host then carries it) */
    int port;           /* 80 / 443 when not given */
    char host[256];     /* name or numeric address, IPv6 without brackets */
    const char *target; /* path and query in the parsed string; "" means "/" */
    size_t target_len;
} ax__http_url;

/* Parse `url`.  Returns 0, or AX_EURL (malformed, user info, bytes a URL
 * may not hold), AX_ESCHEME (not http or https), AX_EHOST, AX_EPORT.  A
 * fragment ends the target. */
int ax__http_url_parse(const char *url, ax__http_url *out);

/* Resolve the reference `ref` (a Location value, `len` bytes) against the
 * absolute URL `base` (RFC 3986 5.2, dot segments removed; a fragment is
 * dropped).  Writes the result, NUL-terminated, into an ax_malloc'd string
 * in *out.  Returns 0, AX_EURL or AX_ENOMEM. */
int ax__http_url_resolve(const char *base, const char *ref, size_t len, char **out);

#endif
