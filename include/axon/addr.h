/* axon/addr.h: addresses written as URLs.
 *
 *   tcp://127.0.0.1:7000    tcp://[::1]:7000    tcp://localhost:7000
 *   udp://0.0.0.0:7001      unix:///run/app.sock   unix://@abstract-name
 *
 * ax_addr_parse() takes numeric hosts (IPv4, IPv6 in brackets), `localhost`,
 * or `*` (all IPv4 interfaces) and never blocks; for a name it returns
 * AX_EHOST.  ax_url_split() takes any host apart so it can be resolved with
 * ax_dns_resolve() (dns.h); ax_connect() does that by itself.  Port 0 asks
 * the kernel for a free port (see ax_listener_addr()).  A path after the
 * port ("tcp://h:1/x") is allowed and ignored here; protocols on top read
 * it themselves. */
#ifndef AXON_ADDR_H
#define AXON_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#else
#include <sys/socket.h>
#endif
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ax_scheme {
    AX_SCHEME_TCP = 1,
    AX_SCHEME_UDP,
    AX_SCHEME_UNIX,
} ax_scheme;

/* A parsed address: a public value type, copy it freely. */
typedef struct ax_addr {
    ax_scheme scheme;
    socklen_t len;              /* bytes of `sa` in use */
    struct sockaddr_storage sa; /* sockaddr_in, sockaddr_in6 or sockaddr_un */
} ax_addr;

/* Longest text ax_addr_format() writes, including the NUL. */
#define AX_ADDR_STRLEN 128

/* Parse `url` into `out`.  Returns 0, or AX_EURL / AX_ESCHEME / AX_EHOST /
 * AX_EPORT; when `why` is not NULL a sentence saying what was wrong is
 * written there ("port 70000 is out of range in 'tcp://h:70000'"). */
AX_API int ax_addr_parse(const char *url, ax_addr *out, char *why, size_t why_len) AX_MUST_CHECK;

/* A URL taken apart without resolving anything. */
typedef struct ax_url {
    char scheme[16]; /* as written: "tcp", "udp", "unix", "tls" ... */
    char host[256];  /* a name or a numeric address (IPv6 without brackets);
                        for unix:// the path (or @abstract name) */
    int port;        /* 0..65535; -1 for unix:// */
} ax_url;

/* Split `url` into scheme, host and port.  Any scheme is accepted; the host
 * must be a numeric address or a DNS name (letters, digits, '-', '_', '.').
 * Returns 0, or AX_EURL / AX_EHOST / AX_EPORT with a sentence in `why`. */
AX_API int ax_url_split(const char *url, ax_url *out, char *why, size_t why_len) AX_MUST_CHECK;

/* Write `a` as a URL ("tcp://[::1]:7000") into buf; returns buf. */
AX_API char *ax_addr_format(const ax_addr *a, char *buf, size_t len);

/* Port of an IP address (0 for Unix). */
AX_API int ax_addr_port(const ax_addr *a);

/* Fill `out` from a kernel sockaddr, with the given scheme. */
AX_API void ax_addr_from_sockaddr(ax_addr *out, ax_scheme scheme, const struct sockaddr *sa,
                                  socklen_t len);

/* Same family, address and port (or path). */
AX_API bool ax_addr_equal(const ax_addr *a, const ax_addr *b);

#ifdef __cplusplus
}
#endif
#endif
