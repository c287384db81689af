/* axon/error.h: the one error convention.
 *
 * Functions that act return 0 on success or a negative AX_E… code.  Where an
 * errno exists the code is its negation (AX_ECONNRESET == -ECONNRESET), so
 * system errors pass through unchanged.  Constructors return NULL and, when
 * given an error pointer, store the code there.  If a call fails, the
 * callback it would have caused never fires. */
#ifndef AXON_ERROR_H
#define AXON_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
/* Windows: no ESHUTDOWN in the C runtime (the number is axon's) */
#ifndef ESHUTDOWN
#define ESHUTDOWN 150
#endif
#define AX_MUST_CHECK __attribute__((warn_unused_result))
#ifdef AX_BUILDING
#define AX_API __declspec(dllexport)
#else
#define AX_API
#endif
#elif defined(__GNUC__)
#define AX_MUST_CHECK __attribute__((warn_unused_result))
#define AX_API __attribute__((visibility("default")))
#else
#define AX_MUST_CHECK
#define AX_API
#endif

enum {
    AX_OK = 0,
    AX_ENOMEM = -ENOMEM,
    AX_EINVAL = -EINVAL,
    AX_EAGAIN = -EAGAIN,
    AX_EBADF = -EBADF,
    AX_EPIPE = -EPIPE,
    AX_ECONNRESET = -ECONNRESET,
    AX_ECONNREFUSED = -ECONNREFUSED,
    AX_ECONNABORTED = -ECONNABORTED,
    AX_ETIMEDOUT = -ETIMEDOUT,
    AX_EADDRINUSE = -EADDRINUSE,
    AX_EADDRNOTAVAIL = -EADDRNOTAVAIL,
    AX_EAFNOSUPPORT = -EAFNOSUPPORT,
    AX_EMFILE = -EMFILE,
    AX_EMSGSIZE = -EMSGSIZE,
    AX_ENOBUFS = -ENOBUFS,
    AX_ENOTCONN = -ENOTCONN,
    AX_EHOSTUNREACH = -EHOSTUNREACH,
    AX_ENETUNREACH = -ENETUNREACH,
    AX_EACCES = -EACCES,
    AX_ENOENT = -ENOENT,
    AX_ECANCELED = -ECANCELED,
    AX_ESHUTDOWN = -ESHUTDOWN,
    AX_EIO = -EIO,
    AX_EPROTO = -EPROTO, /* the peer broke the protocol (e.g. a bad WebSocket handshake) */
    /* axon's own codes, outside the errno range */
    AX_EOF = -4001,        /* the peer closed its side of the stream */
    AX_EURL = -4002,       /* a URL could not be parsed */
    AX_ESCHEME = -4003,    /* the URL scheme is unknown or not allowed here */
    AX_EHOST = -4004,      /* the host is not a numeric address (ax_addr_parse) */
    AX_EPORT = -4005,      /* the port is missing or out of range */
    AX_EOUTPUTCAP = -4006, /* the peer stopped reading and hit the output cap */
    AX_EIDLE = -4007,      /* no traffic for longer than the idle timeout */
    AX_ECLOSED = -4008,    /* the handle is closing or closed */
    /* DNS (dns.h); numbered apart so other modules can grow their range */
    AX_ENOHOST = -4020,      /* the name does not exist (NXDOMAIN, no addresses) */
    AX_EDNSTIMEDOUT = -4021, /* the resolvers did not answer in time */
    AX_EDNS = -4022,         /* resolution failed otherwise (server failure, bad reply) */
    /* TLS (tls.h); ax_conn_error_detail() says more */
    AX_ETLS = -4030,  /* the TLS handshake or a TLS record failed */
    AX_ECERT = -4031, /* the peer's certificate was refused */
    /* HTTP client (http_client.h); ax_http_fetch_error_detail() says more */
    AX_EHTTP = -4040,      /* the response was not valid HTTP/1.x */
    AX_EREDIRECTS = -4041, /* more redirects than allowed */
    AX_ETOOBIG = -4042,    /* the response is larger than the limit */
};

/* A static, human-readable text for any code this library returns
 * ("connection reset by peer", "output cap exceeded").  Never NULL. */
AX_API const char *ax_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
