/* axon/udp.h: UDP sockets.
 *
 * Datagrams are received in batches (recvmmsg on Linux) into the loop's
 * read buffer and delivered one callback each.  Sends made during a loop
 * iteration are gathered and handed to the kernel together (sendmmsg on
 * Linux) before the loop waits again, so an echo server does two system
 * calls per batch instead of two per datagram.
 *
 * Size limits are explicit: a received datagram longer than max_datagram is
 * dropped (and counted), a send longer than it fails with AX_EMSGSIZE.
 *
 * On Linux a bound socket sends through a twin socket on the same address
 * that epoll does not watch (a watched socket pays a wait-queue wake-up per
 * datagram sent).  The two share an SO_REUSEPORT group whose steering
 * program sends every datagram to the watched one, so another socket of the
 * same user that binds the port with SO_REUSEPORT joins silently and
 * receives nothing; a plain bind still fails with EADDRINUSE.  Sockets
 * opened with reuse_port (several threads) send from themselves. */
#ifndef AXON_UDP_H
#define AXON_UDP_H

#include <stddef.h>
#include <stdint.h>
#include "addr.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ax_udp ax_udp;

/* One received datagram: `data` is valid only during the call; `from` is
 * the sender. */
typedef void (*ax_udp_recv_cb)(ax_udp *u, const char *data, size_t len, const ax_addr *from);

typedef struct ax_udp_opts {
    size_t max_datagram; /* 0: 65507 (the IPv4 maximum); at most 65535 */
    int batch;           /* datagrams per recvmmsg/sendmmsg, 0: 32, at most 256 */
    bool reuse_port;     /* SO_REUSEPORT for several threads on one port */
    bool broadcast;      /* SO_BROADCAST */
} ax_udp_opts;

/* Bind to `url` (udp://host:port) and start receiving.  NULL on failure
 * with the code in *err. */
AX_API ax_udp *ax_udp_bind(ax_loop *loop, const char *url, ax_udp_recv_cb cb,
                           const ax_udp_opts *opts, void *ud, int *err);
/* A socket connected to `url`: ax_udp_send(u, NULL, …) goes there and only
 * its datagrams are received.  ICMP errors (port unreachable) surface as
 * AX_ECONNREFUSED from later sends. */
AX_API ax_udp *ax_udp_connect(ax_loop *loop, const char *url, ax_udp_recv_cb cb,
                              const ax_udp_opts *opts, void *ud, int *err);

/* Queue one datagram to `to` (NULL on connected sockets); it leaves before
 * the loop next waits.  Returns 0, AX_EMSGSIZE, AX_EINVAL, AX_ECLOSED, or a
 * sticky error from an earlier batch (AX_ECONNREFUSED).  Datagrams the
 * kernel has no room for are dropped and counted, as UDP allows. */
AX_API int ax_udp_send(ax_udp *u, const ax_addr *to, const void *data, size_t len) AX_MUST_CHECK;
/* Send what is queued now instead of at the end of the iteration. */
AX_API int ax_udp_flush(ax_udp *u);

AX_API const ax_addr *ax_udp_addr(const ax_udp *u);
AX_API ax_loop *ax_udp_loop(const ax_udp *u);
AX_API void ax_udp_set_data(ax_udp *u, void *ud);
AX_API void *ax_udp_data(const ax_udp *u);
AX_API int ax_udp_fd(const ax_udp *u);

typedef struct ax_udp_stats {
    uint64_t rx, tx;       /* datagrams received / handed to the kernel */
    uint64_t rx_truncated; /* longer than max_datagram, dropped */
    uint64_t tx_dropped;   /* no room in the kernel, dropped */
} ax_udp_stats;
AX_API void ax_udp_stats_get(const ax_udp *u, ax_udp_stats *out);

/* Close: queued datagrams are flushed first.  Safe inside the callback. */
AX_API void ax_udp_close(ax_udp *u);

#ifdef __cplusplus
}
#endif
#endif
