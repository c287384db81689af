/* The test runner on Windows (the Windows build's axon_unit.exe): the
 * same contract as runner.c, one process per test with a timeout, TAP,
 * and the closing `N passed, N failed` line.  Windows has no fork: the
 * runner starts itself again as `axon_unit.exe --run NAME` for each test
 * (CreateProcess) and waits for it (WaitForSingleObject with the
 * timeout, TerminateProcess past it). */
#include "runner.h"

#include <stdbool.h>
#include <windows.h>

/* The tests that do not apply to the Windows build, by name prefix, and
 * why (docs/guide.md, "On Windows", has the same list).  Reported as
 * skipped; AXON_STRICT=1 makes them failures as everywhere. */
static const struct {
    const char *prefix, *why;
} not_here[] = {
    {"unix_", "AF_UNIX: Wine 8.0 refuses it (EAFNOSUPPORT); Windows 10 has it"},
    {"tls_", "TLS servers: Wine 8.0's SChannel has no AcceptSecurityContext (measured), and the "
             "certificates come from ax_tls_make_self_signed (OpenSSL); the SChannel client is "
             "tested against Linux servers in test_windows.py"},
    {"http_client_https", "TLS servers: Wine 8.0's SChannel has no AcceptSecurityContext "
                          "(measured); test_windows.py fetches https:// from a Linux server"},
    {"udp_reuse_port", "SO_REUSEPORT: Windows has none"},
    {"threads_share_a_port", "SO_REUSEPORT: Windows has none"},
    {"threads_setup_failure_stops_all", "SO_REUSEPORT: Windows has none"},
    {"tcp_listen_address_in_use", "SO_REUSEPORT: Windows has none"},
    {"loop_backends", "names the Linux backends (epoll); Windows has afd and poll"},
    {"loop_env_selects_backend", "names the Linux backends (epoll); Windows has afd and poll"},
    {"connect_head_start", "points the resolver at a test DNS server (opts.servers); "
                           "Windows' resolver asks the system's servers only"},
    {"connect_falls_back", "points the resolver at a test DNS server (opts.servers)"},
    {"connect_resolve_timeout", "points the resolver at a test DNS server (opts.servers)"},
    {"connect_close_while_resolving", "points the resolver at a test DNS server (opts.servers)"},
    {"dns_both_families_from_a_server", "points the resolver at a test DNS server (opts.servers)"},
    {"dns_cancel_never_calls_back", "points the resolver at a test DNS server (opts.servers)"},
    {"dns_timeout_against_silent_server",
     "points the resolver at a test DNS server (opts.servers)"},
    {"tcp_delay_flag_keeps_nagle", "Wine: the accepted socket reports TCP_NODELAY on (measured)"},
    {"tcp_abort_resets_peer", "Wine: after an abort the peer reads EOF, not ECONNRESET (measured)"},
};

static const char *not_applicable(const char *name)
{
    for (size_t i = 0; i < sizeof not_here / sizeof not_here[0]; i++)
        if (strncmp(name, not_here[i].prefix, strlen(not_here[i].prefix)) == 0)
            return not_here[i].why;
    return NULL;
}

static ax_test *tests;
static char tmpdir[MAX_PATH];

void ax_test_register(ax_test *t)
{
    ax_test **p = &tests;
    while (*p)
        p = &(*p)->next;
    *p = t;
}

void ax_test_fail(const char *file, int line, const char *expr, const char *detail)
{
    /* (stdout, in order with the test's own lines) */
    printf("#   %s:%d: assertion failed: %s%s%s\n", file, line, expr, detail ? " -- " : "",
           detail ? detail : "");
    fflush(stdout);
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
        char base[MAX_PATH];
        DWORD n = GetTempPathA(sizeof base, base);
        if (n == 0 || n >= sizeof base) strcpy(base, ".\\");
        snprintf(tmpdir, sizeof tmpdir, "%saxon-test-%lu", base,
                 (unsigned long)GetCurrentProcessId());
        CreateDirectoryA(tmpdir, NULL);
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

/* 0 passed, 1 skipped, -1 failed */
static int run_one(ax_test *t)
{
    const char *why = not_applicable(t->name);
    if (why) {
        printf("#   skipped: %s\n", why);
        return 1;
    }
    char self[MAX_PATH], cmd[MAX_PATH + 300];
    GetModuleFileNameA(NULL, self, sizeof self);
    snprintf(cmd, sizeof cmd, "\"%s\" --run %s", self, t->name);
    STARTUPINFOA si = {.cb = sizeof si};
    PROCESS_INFORMATION pi;
    fflush(stdout);
    /* (a loaded Wine can fail to start a process: say so, and try again) */
    int tries = 0;
    while (!CreateProcessA(self, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
        printf("#   cannot start the test's process (error %lu)\n", (unsigned long)GetLastError());
        if (++tries == 3) return -1;
        Sleep(1000);
    }
    int secs = t->timeout_s ? t->timeout_s : default_timeout();
    ULONGLONG t0 = GetTickCount64();
    DWORD w = WaitForSingleObject(pi.hProcess, (DWORD)secs * 1000u);
    ULONGLONG took = GetTickCount64() - t0;
    if (took >= 2000) printf("#   took %.1f s\n", (double)took / 1000.0);
    DWORD code = 1;
    if (w != WAIT_OBJECT_0) {
        TerminateProcess(pi.hProcess, 1);
        WaitForSingleObject(pi.hProcess, INFINITE);
        printf("#   timed out after %d s\n", secs);
    } else {
        GetExitCodeProcess(pi.hProcess, &code);
    }
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    if (w != WAIT_OBJECT_0) return -1;
    if (code == SKIP_STATUS) return 1;
    if (code != 0 && code != 1) /* not an assertion: a crash (0xC0000005 ...) or an exit */
        printf("#   exited with code 0x%lx\n", (unsigned long)code);
    return code == 0 ? 0 : -1;
}

static int run_child(const char *name)
{
    for (ax_test *t = tests; t; t = t->next) {
        if (strcmp(t->name, name) != 0) continue;
        t->fn();
        fflush(stdout);
        _exit(0);
    }
    fprintf(stderr, "# no test %s\n", name);
    return 1;
}

int main(int argc, char **argv)
{
    int n = 0, passed = 0, failed = 0, skipped = 0;
    const char *strict = getenv("AXON_STRICT");
    bool skips_fail = strict && strcmp(strict, "1") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "--run") == 0) return run_child(argv[2]);
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
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
