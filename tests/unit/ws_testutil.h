/* ws_testutil.h: a raw-socket WebSocket peer for the conformance tests:
 * frames built byte by byte (so every rule can be broken on purpose),
 * read back while the loop under test runs. */
#ifndef AXON_WS_TESTUTIL_H
#define AXON_WS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <axon/axon.h>

/* One frame as read from the server. */
typedef struct wt_frame {
    int op; /* -1: EOF or timeout before a whole frame */
    bool fin;
    int rsv;
    bool masked;
    size_t len;
    unsigned char data[1 << 17];
} wt_frame;

/* Connect to `a`, send an opening handshake for `path` with `extra`
 * fields ("Name: v\r\n"...), read the response head into head (cap) and
 * return the socket; the status code in *status. */
int wt_open_raw(ax_loop *loop, const ax_addr *a, const char *path, const char *extra, int *status,
                char *head, size_t cap);
/* The same, expecting 101 with the right accept value; returns the socket. */
int wt_open(ax_loop *loop, const ax_addr *a, const char *path);

/* Encode a frame into out (room len + 14); masked with a fixed key when
 * `mask`.  Returns its length. */
size_t wt_encode(unsigned char *out, int op, bool fin, int rsv, const void *data, size_t len,
                 bool mask);
/* Encode and send (a client's masked frame unless mask is false). */
void wt_send(int fd, int op, bool fin, const void *data, size_t len);
void wt_send_ex(int fd, int op, bool fin, int rsv, const void *data, size_t len, bool mask);
/* Read one frame, running the loop meanwhile (at most ms). */
void wt_read(ax_loop *loop, int fd, wt_frame *f, int ms);
/* Expect a close frame with `code` (0: an empty payload), then EOF. */
void wt_expect_close(ax_loop *loop, int fd, int code);
/* Send a close with `code` and read the server's reply. */
void wt_close(ax_loop *loop, int fd, int code, wt_frame *reply);

#endif
