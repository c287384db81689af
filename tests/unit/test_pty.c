/* test_pty.c: programs on pseudo-terminals (src/core/pty.h): the set-up
 * `axon term agent` and the hub's own terminals share, and how their
 * output is gathered (small pieces at once, bulk held). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/pty.h"
#include "testutil.h"

/* Everything the program prints until the terminal closes, gathered as
 * the callers do; *held: a gather said AX__PTY_HOLD. */
static size_t read_all(int fd, char *acc, size_t cap, bool *held, int *sends)
{
    ax__pty_out *o = calloc(1, sizeof *o);
    size_t n = 0;
    int rc = AX__PTY_WAIT;
    *held = false, *sends = 0;
    while (o && rc != AX__PTY_EOF) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0) break;
        rc = ax__pty_gather(fd, o);
        if (rc == AX__PTY_HOLD) *held = true;
        if (rc == AX__PTY_SEND || rc == AX__PTY_EOF) {
            size_t k = o->len < cap - n ? o->len : cap - n;
            memcpy(acc + n, o->buf, k);
            n += k;
            *sends += o->len > 0;
            o->len = 0;
            o->holding = false;
        }
    }
    free(o);
    return n;
}

static int exit_code(pid_t pid)
{
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST_TIMEOUT(pty_spawn_size_env_and_small_output, 20)
{
    char *argv[] = {"/bin/sh", "-c", "stty size; printf \"$TERM\"", NULL};
    char *env[] = {"TERM=xterm-256color", "PATH=/usr/bin:/bin", NULL};
    int fd = -1;
    pid_t pid = ax__pty_spawn(argv, env, 91, 33, &fd);
    ASSERT(pid > 0 && fd >= 0);
    static char acc[4096];
    bool held;
    int sends;
    size_t n = read_all(fd, acc, sizeof acc - 1, &held, &sends);
    acc[n] = '\0';
    ASSERT(strstr(acc, "33 91\r\n") != NULL);      /* the window size it was given */
    ASSERT(strstr(acc, "xterm-256color") != NULL); /* the environment it was given */
    ASSERT(!held);                                 /* small output goes at once */
    close(fd);
    ASSERT_EQ(exit_code(pid), 0);
}

TEST_TIMEOUT(pty_bulk_output_is_complete, 20)
{
    char *argv[] = {"/bin/sh", "-c", "yes 0123456789 | head -n 2000; echo end", NULL};
    int fd = -1;
    pid_t pid = ax__pty_spawn(argv, NULL, 80, 24, &fd);
    ASSERT(pid > 0);
    usleep(200000);
    static char acc[65536];
    bool held;
    int sends;
    size_t n = read_all(fd, acc, sizeof acc, &held, &sends);
    ASSERT_EQ(n, 2000u * 12 + 5); /* every byte ("\n" is "\r\n" on a terminal) */
    ASSERT(memcmp(acc + n - 5, "end\r\n", 5) == 0);
    (void)held; /* (whether a read found bulk is the machine's timing: see below) */
    close(fd);
    ASSERT_EQ(exit_code(pid), 0);
}

/* The gathering's decisions, on a pipe (a terminal's timing is the
 * machine's): a small piece goes at once, a bulk read is held, more while
 * holding waits, a full buffer goes, the end is the end. */
TEST(pty_gather_holds_bulk_sends_small)
{
    int p[2];
    ASSERT(pipe2(p, O_NONBLOCK) == 0);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    static ax__pty_out o;
    static char big[AX__PTY_OUT_MAX];
    memset(big, 'x', sizeof big);
    ASSERT_EQ(ax__pty_gather(p[0], &o), AX__PTY_WAIT); /* nothing yet */
    ASSERT_EQ(write(p[1], "ls\r\n", 4), 4);
    ASSERT_EQ(ax__pty_gather(p[0], &o), AX__PTY_SEND); /* an echo: at once */
    ASSERT_EQ(o.len, 4u);
    o.len = 0;
    ASSERT_EQ(write(p[1], big, AX__PTY_BULK), AX__PTY_BULK);
    ASSERT_EQ(ax__pty_gather(p[0], &o), AX__PTY_HOLD); /* bulk: the timer starts */
    ASSERT(o.holding);
    ASSERT_EQ(write(p[1], "more", 4), 4);
    ASSERT_EQ(ax__pty_gather(p[0], &o), AX__PTY_WAIT); /* held: the timer sends */
    ASSERT_EQ(o.len, (size_t)AX__PTY_BULK + 4);
    ASSERT(write(p[1], big, sizeof big) > 0);
    ASSERT_EQ(ax__pty_gather(p[0], &o), AX__PTY_SEND); /* full: it goes */
    ASSERT_EQ(o.len, sizeof o.buf);
    o.len = 0, o.holding = false;
    close(p[1]);
    int rc;
    while ((rc = ax__pty_gather(p[0], &o)) == AX__PTY_SEND || rc == AX__PTY_HOLD)
        o.len = 0;
    ASSERT_EQ(rc, AX__PTY_EOF);
    close(p[0]);
}

TEST_TIMEOUT(pty_resize_reaches_the_program, 20)
{
    char *argv[] = {"/bin/sh", "-c", "read x; stty size", NULL};
    int fd = -1;
    pid_t pid = ax__pty_spawn(argv, NULL, 80, 24, &fd);
    ASSERT(pid > 0);
    ASSERT_EQ(ax__pty_resize(fd, 120, 40), 0);
    ASSERT_EQ(write(fd, "\n", 1), 1);
    static char acc[4096];
    bool held;
    int sends;
    size_t n = read_all(fd, acc, sizeof acc - 1, &held, &sends);
    acc[n] = '\0';
    ASSERT(strstr(acc, "40 120\r\n") != NULL);
    close(fd);
    ASSERT_EQ(exit_code(pid), 0);
}

TEST_TIMEOUT(pty_spawn_missing_program_says_why, 20)
{
    char *argv[] = {"/nonexistent/axon-prog", NULL};
    int fd = -1;
    pid_t pid = ax__pty_spawn(argv, NULL, 80, 24, &fd);
    ASSERT(pid > 0);
    static char acc[4096];
    bool held;
    int sends;
    size_t n = read_all(fd, acc, sizeof acc - 1, &held, &sends);
    acc[n] = '\0';
    ASSERT(strstr(acc, "/nonexistent/axon-prog: No such file or directory\r\n") != NULL);
    close(fd);
    ASSERT_EQ(exit_code(pid), 127);
}
