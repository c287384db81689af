/* The test runner: forks one process per test, enforces a timeout, prints
 * TAP and a closing `N passed, N failed` line (`, N skipped` when a test
 * could not run here; with AXON_STRICT=1 a skip fails instead). */
#define _GNU_SOURCE
#include "runner.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static ax_test *tests;
static char tmpdir[256];

void ax_test_register(ax_test *t)
{
    /* Constructors run in link order; keep registration order for output. */
    ax_test **p = &tests;
    while (*p)
        p = &(*p)->next;
    *p = t;
}

void ax_test_fail(const char *file, int line, const char *expr, const char *detail)
{
    fflush(stdout); /* keep the test's own diagnostics, printed before this */
    fprintf(stderr, "#   %s:%d: assertion failed: %s%s%s\n", file, line, expr, detail ? " -- " : "",
            detail ? detail : "");
    fflush(stderr);
    _exit(1);
}

#define SKIP_STATUS 77

void ax_test_skip(const char *why)
{
    printf("#   skipped: %s\n", why);
    fflush(stdout);
    _exit(SKIP_STATUS);
}

const char *ax_test_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/axon-test-%d", (int)getpid());
        mkdir(tmpdir, 0700);
    }
    return tmpdir;
}

static int default_timeout(void)
{
    const char *s = getenv("AXON_TEST_TIMEOUT");
    int v = s ? atoi(s) : 0;
    return v > 0 ? v : 30;
}

static int selected(const ax_test *t, int argc, char **argv)
{
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strncmp(t->name, argv[i], strlen(argv[i])) == 0) return 1;
    return 0;
}

/* Wait for `pid` at most `secs`; returns its wait status or -1 on timeout. */
static int wait_with_timeout(pid_t pid, int secs)
{
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return st;
        if (r == -1 && errno != EINTR) return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= secs) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(2000);
    }
}

static void remove_tmpdir_of(pid_t pid)
{
    char dir[64], cmd[128];
    struct stat sb;
    snprintf(dir, sizeof dir, "/tmp/axon-test-%d", (int)pid);
    if (stat(dir, &sb) == -1) return;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "# could not remove %s\n", dir);
}

static int run_one(ax_test *t)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* helper processes die with the test on timeout */
        signal(SIGPIPE, SIG_IGN);
        t->fn();
        if (tmpdir[0]) {
            char cmd[300];
            snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
            if (system(cmd) != 0) fprintf(stderr, "# could not remove %s\n", tmpdir);
        }
        fflush(stdout);
        _exit(0);
    }
    if (pid == -1) return -2;
    int secs = t->timeout_s ? t->timeout_s : default_timeout();
    int st = wait_with_timeout(pid, secs);
    remove_tmpdir_of(pid); /* a failed or killed test leaves its own behind */
    if (st == -1) {
        printf("#   timed out after %d s\n", secs);
        return -1;
    }
    if (WIFSIGNALED(st)) printf("#   killed by signal %d\n", WTERMSIG(st));
    if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP_STATUS) return 1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    int n = 0, passed = 0, failed = 0, skipped = 0;
    const char *strict = getenv("AXON_STRICT");
    bool skips_fail = strict && strcmp(strict, "1") == 0;
    if (argc > 1 && strcmp(argv[1], "-l") == 0) {
        for (ax_test *t = tests; t; t = t->next)
            puts(t->name);
        return 0;
    }
    for (ax_test *t = tests; t; t = t->next)
        n += selected(t, argc, argv);
    const char *be = getenv("AXON_BACKEND");
    printf("# backend: %s\n1..%d\n", be ? be : "default", n);
    int i = 0;
    for (ax_test *t = tests; t; t = t->next) {
        if (!selected(t, argc, argv)) continue;
        int r = run_one(t);
        i++;
        if (r == 0) {
            printf("ok %d - %s\n", i, t->name);
            passed++;
        } else if (r == 1 && !skips_fail) {
            printf("ok %d - %s # SKIP\n", i, t->name);
            skipped++;
        } else {
            printf("not ok %d - %s\n", i, t->name);
            failed++;
        }
        fflush(stdout);
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
