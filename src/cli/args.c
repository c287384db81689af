/* args.c: option values the subcommands share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    if (!cert && key) {
        fprintf(stderr, "axon %s: --key %s without --cert: %s needs the certificate too\n", cmd,
                key, scheme);
        return -1;
    }
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
        if (!key && err == AX_EINVAL) /* the key is not in the certificate file */
            fprintf(stderr, "axon %s: --cert %s holds no private key: give --key FILE too\n", cmd,
                    cert);
        else
            fprintf(stderr, "axon %s: %s\n", cmd, why);
        return -1;
    }
    return 0;
}

int cli_mkdirs(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = n ? ENAMETOOLONG : ENOENT;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) { /* each parent, as mkdir -p */
        if (*p != '/' || p[-1] == '/') continue;
        *p = '\0';
        int rc = mkdir(buf, 0755);
        *p = '/';
        if (rc == -1 && errno != EEXIST) return -1;
    }
    if (mkdir(buf, mode) == -1 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(buf, &st) == -1) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}
