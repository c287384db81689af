/* testutil.h: helpers shared by the unit tests.
 *
 * Blocking POSIX sockets to act as peers, a deadline-bounded way to drive a
 * loop, file-descriptor counting, and a counting allocator hook that can be
 * told to fail after N allocations. */
#ifndef AXON_TESTUTIL_H
#define AXON_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <axon/axon.h>

#include "runner.h"

/* Monotonic milliseconds. */
uint64_t tu_now_ms(void);
void tu_sleep_ms(int ms);

/* A loop on the backend the suite runs with (AXON_BACKEND); fails the test
 * if none can be made or the backend is not the one asked for. */
ax_loop *tu_loop(void);

/* Drive `loop` until `cond` holds; fail the test after `ms` milliseconds. */
#define RUN_UNTIL(loop, cond, ms)                                                                  \
    do {                                                                                           \
        uint64_t tu_deadline_ = tu_now_ms() + (uint64_t)(ms);                                      \
        while (!(cond)) {                                                                          \
            if (tu_now_ms() > tu_deadline_)                                                        \
                ax_test_fail(__FILE__, __LINE__, #cond, "timed out waiting for it");               \
            int tu_rc_ = ax_loop_run_once((loop), 10);                                             \
            if (tu_rc_ < 0) ax_test_fail(__FILE__, __LINE__, #cond, "ax_loop_run_once failed");    \
        }                                                                                          \
    } while (0)

/* Drive `loop` for `ms` milliseconds. */
void tu_run_for(ax_loop *loop, int ms);

/* Open file descriptors of this process (entries of /proc/self/fd). */
int tu_count_fds(void);
/* The count of descriptors once it is back to `want`, waiting at most 2 s
 * (a descriptor a thread is closing can linger for a moment).  Under Wine
 * the count includes Wine's own descriptors, which come and go as the
 * process runs: there a count at or below `want` is back (returned as
 * `want`); a leak stays above it. */
int tu_fds_settle(int want);
/* Threads of this process (entries of /proc/self/task). */
int tu_count_threads(void);
/* Wait (at most ms) until the process has `n` threads; a joined thread can
 * linger in /proc for a moment.  Returns the last count seen. */
int tu_wait_threads(int n, int ms);

/* URL text of an address (static buffer per call site is the caller's). */
const char *tu_url(const ax_addr *a, char *buf, size_t len);

/* Blocking client socket connected to `a` (TCP or Unix); fails the test if
 * it cannot connect.  rcvbuf > 0 sets SO_RCVBUF before connecting. */
int tu_connect(const ax_addr *a, int rcvbuf);
/* Write all of buf (blocking); fails the test on error. */
void tu_write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes within ms milliseconds; returns bytes read (less on
 * EOF or timeout), -errno on error. */
ssize_t tu_read_n(int fd, void *buf, size_t len, int ms);
/* Read until EOF within ms; returns bytes read, -errno on error, or
 * -ETIMEDOUT.  At most cap bytes are stored; the rest is counted. */
ssize_t tu_read_to_eof(int fd, void *buf, size_t cap, int ms);
/* Same, but the loop keeps running while we wait (the peer is on it). */
ssize_t tu_loop_read_to_eof(ax_loop *loop, int fd, void *buf, size_t cap, int ms);
ssize_t tu_loop_read_n(ax_loop *loop, int fd, void *buf, size_t len, int ms);
/* Wait for fd to be readable (POLLIN) within ms; returns true if so. */
bool tu_readable(int fd, int ms);
/* Close with SO_LINGER 0: the peer sees a reset. */
void tu_close_reset(int fd);
/* A TCP port on 127.0.0.1 nothing listens on (bound, then released). */
int tu_closed_port(void);
/* True when IPv6 loopback can be used. */
bool tu_have_ipv6(void);

/* Deterministic pattern byte for stream offset i, to verify content. */
static inline unsigned char tu_pattern(uint64_t i)
{
    return (unsigned char)((i * 7u + (i >> 11) * 13u) & 0xff);
}
void tu_fill_pattern(unsigned char *buf, size_t len, uint64_t offset);
/* Index of the first byte not matching the pattern, or len when all do. */
size_t tu_check_pattern(const unsigned char *buf, size_t len, uint64_t offset);

/* A thread that connects to `addr` and writes `len` pattern bytes (blocking),
 * then shuts down writing (shut_wr) or closes; `done` is set at the end. */
typedef struct tu_writer {
    ax_addr addr;
    size_t len;
    bool shut_wr;
    int fd;
    volatile int done;
    unsigned long thread;
} tu_writer;
void tu_writer_start(tu_writer *w);
void tu_writer_join(tu_writer *w);

/* Fork a helper process running fn(arg), which exits 0 when fn returns. */
pid_t tu_fork(void (*fn)(void *arg), void *arg);
/* Wait for a helper (at most ms); returns its exit status, or -1 if it was
 * killed, timed out (it is then killed) or failed. */
int tu_wait(pid_t pid, int ms);

/* An echo server for tests that need a peer: every byte received is
 * written back.  Counts what happened; `ud` of accepted connections is the
 * tu_server. */
typedef struct tu_server {
    ax_loop *loop;
    ax_listener *ls;
    ax_addr addr;
    char url[AX_ADDR_STRLEN];
    int opened, closed;
    int last_reason;
    ax_conn *last;                /* the last accepted connection, NULL once closed */
    uint64_t bytes_in, bytes_out; /* totals of closed connections */
    int write_errors;
} tu_server;

/* Listen on `url` (port 0 is fine) and fill s; fails the test on error. */
void tu_echo_listen(tu_server *s, ax_loop *loop, const char *url, const ax_conn_opts *o);
/* An echo server on tcp://127.0.0.1:0 and one client of it: the client's
 * socket in *fd, the accepted connection returned (fails the test if it
 * is not accepted within 10 s). */
ax_conn *tu_echo_accept(tu_server *s, ax_loop *loop, int *fd);

/* The counting allocator.  tu_alloc_install() must run before any other
 * axon call of the test.  Live counts cover only memory axon allocated
 * through the hook. */
void tu_alloc_install(void);
long tu_alloc_live_count(void);
long tu_alloc_live_bytes(void);
/* Allocations (malloc, calloc, growing realloc) made so far. */
long tu_alloc_total(void);
/* Fail every allocation after `n` more have succeeded; -1: never fail. */
void tu_alloc_fail_after(long n);
/* Fail only the allocation after `n` more have succeeded; the ones after
 * it succeed again (exercises recovery, not just the first error path). */
void tu_alloc_fail_once_after(long n);
/* Allocations refused so far. */
long tu_alloc_failures(void);

/* Copies len bytes of src so that the last one is the last readable byte
 * before an unreadable page (up to 4 MiB; src may lie in that area): a
 * parser that reads past the end of its input faults at once. */
uint8_t *tu_guarded(const void *src, size_t len);
/* Hex digits ("0a FF 1c"; spaces are skipped) to bytes; fails the test on
 * a bad digit, an odd count or more than cap bytes. */
size_t tu_unhex(const char *hex, uint8_t *out, size_t cap);

#endif
