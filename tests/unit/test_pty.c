/* test_pty.c: programs on pseudo-terminals (src/core/pty.h): the set-up
 * `axon term agent` and the hub's own terminals share, and how their
 * output is gathered (small pieces at once, bulk held). */
#define _GNU_SOURCE
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

TEST_TIMEOUT(pty_bulk_output_is_held_and_complete, 20)
{
    char *argv[] = {"/bin/sh", "-c", "yes 0123456789 | head -n 2000; echo end", NULL};
    int fd = -1;
    pid_t pid = ax__pty_spawn(argv, NULL, 80, 24, &fd);
    ASSERT(pid > 0);
    usleep(200000); /* the terminal's buffer full: a read gives 4 KiB */
    static char acc[65536];
    bool held;
    int sends;
    size_t n = read_all(fd, acc, sizeof acc, &held, &sends);
    ASSERT_EQ(n, 2000u * 12 + 5); /* every byte ("\n" is "\r\n" on a terminal) */
    ASSERT(memcmp(acc + n - 5, "end\r\n", 5) == 0);
    ASSERT(held); /* bulk: held for the caller's timer */
    close(fd);
    ASSERT_EQ(exit_code(pid), 0);
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
