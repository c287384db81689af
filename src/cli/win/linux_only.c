/* linux_only.c (Windows build only): the subcommands that need what the
 * Windows build lacks,
 * `axon serve` (SQLite, jansson, c-ares, hiredis), `axon cert` and
 * `axon token` (OpenSSL).  Debian has no MinGW packages of those. */
#include <fcntl.h>
#include <io.h>
#include <stdio.h>

#include "../cli.h"

int cmd_token(int argc, char **argv);
int cmd_bench(int argc, char **argv);

static int linux_only(const char *cmd, const char *needs)
{
    fprintf(stderr, "axon %s: not in the Windows build (it needs %s); run it on Linux\n", cmd,
            needs);
    return 2;
}

int cmd_serve(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("serve", "SQLite, jansson, c-ares and hiredis");
}

int cmd_cert(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("cert", "OpenSSL");
}

int cmd_bench(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("bench", "its Linux build (not ported yet)");
}

int cmd_term(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("term", "pseudo-terminals and the hub");
}

int cmd_rpc(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("rpc", "the hub");
}

int cmd_token(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("token", "OpenSSL");
}

/* (standard input and output are binary: src/core/win/posix.c) */
