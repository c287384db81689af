/* linux_only.c: the subcommands that need what Windows builds lack:
 * `axon serve` (SQLite, jansson, c-ares, hiredis), `axon cert` and
 * `axon token` (OpenSSL).  Debian has no MinGW packages of those. */
#include <stdio.h>

#include "../cli.h"

int cmd_token(int argc, char **argv);

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

int cmd_token(int argc, char **argv)
{
    (void)argc, (void)argv;
    return linux_only("token", "OpenSSL");
}
