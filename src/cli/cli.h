/* cli.h: the subcommands of the axon binary, one file each. */
#ifndef AXON_CLI_H
#define AXON_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <axon/tls.h>

int cmd_echo(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_http(int argc, char **argv);
int cmd_cert(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_get(int argc, char **argv);
int cmd_term(int argc, char **argv); /* term.c */
int cmd_rpc(int argc, char **argv);  /* rpc.c */

/* Seconds (0 < S <= 86400, fractions allowed) into *ms; on a bad value a
 * sentence goes to stderr ("axon CMD: OPT wants seconds ...") and -1 is
 * returned. */
int cli_parse_secs(const char *cmd, const char *opt, const char *arg, uint32_t *ms);

/* The server TLS context for --cert/--key into *out when one of the n
 * `urls` is tls:// or wss://; *out stays NULL otherwise.  On failure (no
 * --cert, unreadable files) a sentence goes to stderr ("axon CMD: tls://
 * needs --cert ...") and -1 is returned. */
int cli_tls_server(const char *cmd, const char *const *urls, int n, const char *cert,
                   const char *key, ax_tls_ctx **out);

/* `axon serve`'s config file parser on a buffer (the fuzz target's way in):
 * the defaults, then `text` (len bytes) read as the config file `path`
 * (relative includes are found next to it), then the rule defaults.
 * Returns 0, or -1 after a sentence on stderr ("PATH:LINE: why"). */
struct serve_cfg;
int serve__config_parse(struct serve_cfg *c, const char *text, size_t len, const char *path);

/* mkdir -p: the parents of `path` (mode 0755) and `path` itself (`mode`);
 * existing directories are fine.  0, or -1 with errno. */
int cli_mkdirs(const char *path, mode_t mode);

#endif
