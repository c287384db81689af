/* axon/dns.h: asynchronous name resolution (c-ares) on the loop.
 *
 *     static void on_resolved(ax_dns_req *r, int status, const ax_addr *a,
 *                             size_t n, void *ud) {
 *         if (status == 0) connect_to(&a[0]);   // a[0..n-1], in try order
 *     }
 *     ax_dns_resolve(loop, "example.org", 443, AX_SCHEME_TCP, NULL,
 *                    on_resolved, NULL, &err);
 *
 * Resolution never blocks the loop.  /etc/hosts is read first, then the
 * servers of /etc/resolv.conf are asked, both for IPv6 (AAAA) and IPv4 (A).
 * Names under the special-use domain `.invalid` (RFC 6761) fail at once with
 * AX_ENOHOST, without asking any server.
 *
 * ax_connect() resolves names by itself: it returns the connection at once;
 * when the name has several addresses they are tried in turn, each given a
 * 250 ms head start before the next one is started alongside it (Happy
 * Eyeballs, RFC 8305), and the first to connect wins.  If resolution fails,
 * on_close gets AX_ENOHOST, AX_EDNSTIMEDOUT or AX_EDNS; the whole attempt
 * (resolving and connecting) is bounded by connect_timeout_ms. */
#ifndef AXON_DNS_H
#define AXON_DNS_H

#include <stddef.h>
#include <stdint.h>
#include "addr.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_dns_req ax_dns_req;

/* The answer.  status is 0 with n >= 1 addresses (each with the port and
 * scheme given to ax_dns_resolve; the array is valid only during the call),
 * or AX_ENOHOST, AX_EDNSTIMEDOUT, AX_EDNS, AX_ENOMEM with n == 0.  The
 * request is freed when the callback returns. */
typedef void (*ax_dns_cb)(ax_dns_req *req, int status, const ax_addr *addrs, size_t n, void *ud);

typedef struct ax_dns_opts {
    uint32_t timeout_ms; /* 0: 10 s for the whole resolution, then AX_EDNSTIMEDOUT */
    int family;          /* 0 (AF_UNSPEC): IPv6 and IPv4; AF_INET or AF_INET6: only that */
    const char *servers; /* NULL: the default (see ax_dns_set_servers); else "ip[:port],..." */
} ax_dns_opts;

/* Resolve `host` (a name, or a numeric address which is returned as is).
 * Returns the request; `cb` runs exactly once from the loop, never from
 * inside this call, unless the request is cancelled first.  NULL on
 * failure (AX_EINVAL, AX_ENOMEM, AX_EDNS) with the code in *err.  Addresses
 * come in the order to try them: the resolver's preference first, the two
 * families alternating after that. */
AX_API ax_dns_req *ax_dns_resolve(ax_loop *loop, const char *host, int port, ax_scheme scheme,
                                  const ax_dns_opts *opts, ax_dns_cb cb, void *ud, int *err);

/* Cancel: the callback will not run.  Legal until the callback has started
 * (inside it, a no-op).  Cancel pending requests before ax_loop_free(). */
AX_API void ax_dns_cancel(ax_dns_req *req);

/* Process-wide default servers for requests without opts->servers and for
 * ax_connect(): "ip[:port],..." ("[::1]:5353" for IPv6 with a port); NULL
 * goes back to /etc/resolv.conf.  Returns 0 or AX_ENOMEM.  Thread-safe. */
AX_API int ax_dns_set_servers(const char *servers);

#ifdef __cplusplus
}
#endif
#endif
