/* fuzz_net.h: what the fuzz targets that drive a server over a socket
 * share (fuzz_http_server, fuzz_gw_line, fuzz_gw_ws).
 *
 * One poll loop for the process, one temporary folder (removed at exit).
 * A target listens on a Unix socket in that folder; fz_talk() connects,
 * writes the input in pieces of `step` bytes, turning the loop between
 * pieces (so the server sees the bytes arrive as they would from a slow
 * peer), reads whatever comes back, then shuts down its side and waits a
 * bounded number of turns for the server to close.  Everything runs on one
 * thread with zero timeouts: the same input takes the same path. */
#ifndef AXON_FUZZ_NET_H
#define AXON_FUZZ_NET_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <axon/axon.h>

#define FZ_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static char fz_dir[] = "/tmp/axon-fuzz-net-XXXXXX";
static ax_loop *fz_loop_;

static void fz_rm(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", path);
}

static void fz_cleanup(void)
{
    fz_rm(fz_dir);
}

/* The loop (poll: the reference backend, no kernel queues in between). */
static ax_loop *fz_loop(void)
{
    if (fz_loop_) return fz_loop_;
    signal(SIGPIPE, SIG_IGN);
    ax_log_set_level(AX_LOG_ERROR); /* the servers' warnings are expected here */
    FZ_CHECK(mkdtemp(fz_dir) != NULL);
    atexit(fz_cleanup);
    int err = 0;
    fz_loop_ = ax_loop_new("poll", &err);
    FZ_CHECK(fz_loop_ != NULL);
    return fz_loop_;
}

/* A path in the temporary folder. */
static const char *fz_path(const char *name, char *buf, size_t len)
{
    fz_loop();
    snprintf(buf, len, "%s/%s", fz_dir, name);
    return buf;
}

static int fz_connect(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    FZ_CHECK(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    FZ_CHECK(fd >= 0);
    FZ_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* What came back, for targets that check it. */
typedef struct fz_out {
    char *buf;
    size_t len, cap;
    bool eof;
} fz_out;

/* Read what is there; false when nothing was. */
static bool fz_read(int fd, fz_out *o)
{
    bool any = false;
    for (;;) {
        char tmp[16384];
        ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n > 0) {
            any = true;
            if (o->len + (size_t)n > o->cap) continue; /* keep the first cap bytes */
            memcpy(o->buf + o->len, tmp, (size_t)n);
            o->len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) o->eof = true;
        return any;
    }
}

/* Run the loop until nothing happens for a few turns (at most `max`). */
static void fz_settle(ax_loop *loop, int fd, fz_out *o, int max)
{
    int quiet = 0;
    for (int i = 0; i < max && quiet < 4 && !o->eof; i++) {
        ax_loop_run_once(loop, 0);
        quiet = fd >= 0 && fz_read(fd, o) ? 0 : quiet + 1;
    }
}

/* Send `in` in pieces of `step` bytes over a new connection to `path`,
 * then shut down our side and let the server finish.  Returns the fd (the
 * caller closes it) with the server's bytes in *o. */
static int fz_talk(const char *path, const uint8_t *in, size_t len, size_t step, fz_out *o)
{
    ax_loop *loop = fz_loop();
    int fd = fz_connect(path);
    size_t sent = 0;
    int stalled = 0;
    fz_settle(loop, fd, o, 8); /* accept, greetings */
    while (sent < len && !o->eof && stalled < 16) {
        size_t k = len - sent < step ? len - sent : step;
        ssize_t n = send(fd, in + sent, k, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            sent += (size_t)n, stalled = 0;
        else if (n == -1 && errno != EAGAIN && errno != EINTR)
            break; /* the server closed */
        else
            stalled++; /* the server stopped reading: let it work */
        fz_settle(loop, fd, o, 64);
    }
    shutdown(fd, SHUT_WR);
    fz_settle(loop, fd, o, 256);
    return fd;
}

/* AXON_FUZZ_DUMP=1 in the environment: what came back goes to stderr (to
 * see what an input does: ./build-fuzz/NAME FILE). */
static void fz_dump(const fz_out *o)
{
    static int on = -1;
    if (on < 0) on = getenv("AXON_FUZZ_DUMP") != NULL;
    if (!on) return;
    fprintf(stderr, "---- %zu bytes back%s\n", o->len, o->eof ? ", then the end" : "");
    fwrite(o->buf, 1, o->len < 8192 ? o->len : 8192, stderr);
    fprintf(stderr, "\n----\n");
}

#endif
