/* args.c: option values the subcommands share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_parse_secs(const char *cmd, const char *opt, const char *arg, uint32_t *ms)
{
    char *end;
    double v = strtod(arg, &end);
    if (*end || v <= 0 || v > 86400) {
        fprintf(stderr, "axon %s: %s wants seconds (0 < S <= 86400), got '%s'\n", cmd, opt, arg);
        return -1;
    }
    *ms = (uint32_t)(v * 1000);
    if (*ms == 0) *ms = 1;
    return 0;
}

int cli_tls_server(const char *cmd, const char *const *urls, int n, const char *cert,
                   const char *key, ax_tls_ctx **out)
{
    const char *scheme = NULL;
    *out = NULL;
    for (int i = 0; i < n && !scheme; i++)
        if (strncmp(urls[i], "tls://", 6) == 0 || strncmp(urls[i], "wss://", 6) == 0)
            scheme = urls[i][0] == 't' ? "tls://" : "wss://";
    if (!scheme) return 0;
    if (!cert) {
        fprintf(stderr,
                "axon %s: %s needs --cert FILE and --key FILE "
                "(make a pair with: axon cert --out DIR)\n",
                cmd, scheme);
        return -1;
    }
    char why[512];
    int err;
    ax_tls_opts to = {.cert_file = cert, .key_file = key};
    if (!(*out = ax_tls_server_new(&to, why, sizeof why, &err))) {
        fprintf(stderr, "axon %s: %s\n", cmd, why);
        return -1;
    }
    return 0;
}
