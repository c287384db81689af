/* test_fds.c: every descriptor axon opens is close-on-exec, and every
 * socket (and eventfd) is non-blocking: a loop (on the uring backend also
 * its io_uring and epoll fds), TCP and Unix listeners with an accepted
 * connection each, client connections, UDP sockets bound and connected,
 * and a thread pool whose loops each listen.  Walks /proc/self/fd and
 * checks each descriptor that was not open when the test began. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/thread.h>
#include <axon/udp.h>

#include "runner.h"
#include "testutil.h"

#define MAX_FD 1024
#define NTHREADS 2

/* What was open before the test: the runner's and libc's, not axon's. */
static bool before[MAX_FD];

static void snapshot(bool *open_fds)
{
    memset(open_fds, 0, MAX_FD * sizeof(*open_fds));
    DIR *d = opendir("/proc/self/fd");
    ASSERT(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            int fd = atoi(e->d_name);
            ASSERT(fd >= 0 && fd < MAX_FD);
            if (fd != dirfd(d)) open_fds[fd] = true;
        }
    closedir(d);
}

typedef struct fd_report {
    int checked, sockets, eventfds, epolls, urings;
    int bad; /* descriptors that broke a rule */
} fd_report;

/* Check every descriptor opened since snapshot(before); print the ones
 * that break a rule. */
static void check_new_fds(fd_report *rep)
{
    bool now[MAX_FD];
    snapshot(now);
    memset(rep, 0, sizeof(*rep));
    for (int fd = 0; fd < MAX_FD; fd++) {
        if (!now[fd] || before[fd]) continue;
        char path[64], what[PATH_MAX];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, what, sizeof what - 1);
        if (n == -1) continue; /* closed meanwhile (another thread) */
        what[n] = '\0';
        int fdfl = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
        if (fdfl == -1 || fl == -1) continue;
        rep->checked++;
        bool sock = strncmp(what, "socket:", 7) == 0;
        bool efd = strcmp(what, "anon_inode:[eventfd]") == 0;
        rep->sockets += sock;
        rep->eventfds += efd;
        rep->epolls += strcmp(what, "anon_inode:[eventpoll]") == 0;
        rep->urings += strcmp(what, "anon_inode:[io_uring]") == 0;
        bool cloexec = (fdfl & FD_CLOEXEC) != 0;
        bool nonblock = (fl & O_NONBLOCK) != 0;
        if (!cloexec || ((sock || efd) && !nonblock)) {
            fprintf(stderr, "# fd %d (%s):%s%s\n", fd, what, cloexec ? "" : " not close-on-exec",
                    (sock || efd) && !nonblock ? " blocking" : "");
            rep->bad++;
        }
    }
}

/* ---- what opens descriptors ----------------------------------------------- */

typedef struct fx {
    int accepted, connected, udp_got;
} fx;

static fx FX;

static void on_accept(ax_conn *c)
{
    FX.accepted++;
}

static void on_connect(ax_conn *c)
{
    FX.connected++;
}

static void on_udp(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    FX.udp_got++;
}

static int thread_listeners;

static int thread_setup(ax_loop *loop, int index, void *ud)
{
    static const ax_conn_cbs cbs = {.on_open = on_accept};
    int err = 0;
    ax_listener *l = ax_listen(loop, "tcp://127.0.0.1:0", &cbs, NULL, NULL, &err);
    if (!l) return err;
    __atomic_add_fetch(&thread_listeners, 1, __ATOMIC_RELEASE);
    return 0;
}

TEST(fds_cloexec_nonblocking)
{
    static const ax_conn_cbs srv_cbs = {.on_open = on_accept};
    static const ax_conn_cbs cli_cbs = {.on_open = on_connect};
    char url[AX_ADDR_STRLEN + 8], sock_path[200];
    int err = 0;
    memset(&FX, 0, sizeof FX);
    snapshot(before);

    ax_loop *loop = tu_loop();
    ASSERT_EQ(ax_loop_handle_signals(loop, NULL), 0);
    ax_listener *tcp = ax_listen(loop, "tcp://127.0.0.1:0", &srv_cbs, NULL, NULL, &err);
    ASSERT(tcp != NULL);
    snprintf(sock_path, sizeof sock_path, "unix://%s/fds.sock", ax_test_tmpdir());
    ax_listener *unx = ax_listen(loop, sock_path, &srv_cbs, NULL, NULL, &err);
    ASSERT(unx != NULL);
    ax_udp *ub = ax_udp_bind(loop, "udp://127.0.0.1:0", on_udp, NULL, NULL, &err);
    ASSERT(ub != NULL);
    tu_url(ax_udp_addr(ub), url, sizeof url);
    ax_udp *uc = ax_udp_connect(loop, url, on_udp, NULL, NULL, &err);
    ASSERT(uc != NULL);
    ASSERT(ax_udp_send(uc, NULL, "ping", 4) >= 0);
    ax_threads *th = ax_threads_start(NTHREADS, thread_setup, NULL, &err);
    ASSERT(th != NULL);
    ASSERT_EQ(__atomic_load_n(&thread_listeners, __ATOMIC_ACQUIRE), NTHREADS);

    tu_url(ax_listener_addr(tcp), url, sizeof url);
    ax_conn *c1 = ax_connect(loop, url, &cli_cbs, NULL, NULL, &err);
    ASSERT(c1 != NULL);
    ax_conn *c2 = ax_connect(loop, sock_path, &cli_cbs, NULL, NULL, &err);
    ASSERT(c2 != NULL);
    RUN_UNTIL(loop, FX.accepted == 2 && FX.connected == 2 && FX.udp_got == 1, 3000);

    fd_report rep;
    check_new_fds(&rep);
    fprintf(stderr,
            "# backend %s: %d new fds: %d sockets, %d eventfd, %d epoll, %d io_uring; %d bad\n",
            ax_loop_backend(loop), rep.checked, rep.sockets, rep.eventfds, rep.epolls, rep.urings,
            rep.bad);
    ASSERT_EQ(rep.bad, 0);
    /* it really looked at them: 2 listeners, 2 accepted, 2 clients, 2 UDP
     * (plus any send twin), one listener per thread */
    ASSERT(rep.sockets >= 8 + NTHREADS);
    ASSERT(rep.eventfds >= 1 + NTHREADS); /* each loop's wake-up */
    const char *be = ax_loop_backend(loop);
    if (strcmp(be, "epoll") == 0) ASSERT(rep.epolls >= 1 + NTHREADS);
    if (strcmp(be, "uring") == 0) {
        ASSERT(rep.urings >= 1 + NTHREADS);
        ASSERT(rep.epolls >= 1 + NTHREADS); /* the set the ring polls */
    }

    ax_threads_stop(th);
    ax_conn_close(c1);
    ax_conn_close(c2);
    ax_udp_close(uc);
    ax_udp_close(ub);
    ax_listener_close(tcp);
    ax_listener_close(unx);
    tu_run_for(loop, 20);
    ax_loop_free(loop);
}
