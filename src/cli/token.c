/* token.c: `axon token`: print a signed token (JWT HS256) that names a
 * user and says what the holder may publish and subscribe to. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/axon.h>

#include "cli.h"
#include "hub/auth.h"

#define MAX_TTL (366LL * 86400)

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon token --secret FILE --user NAME [OPTIONS]\n\n"
            "Print a signed token (JWT, HS256) for `axon serve --auth-secret FILE`:\n"
            "its holder is NAME and may publish to the --pub filters and subscribe\n"
            "to the --sub filters (MQTT wildcards + and #; %%u stands for NAME).\n"
            "Without --pub or --sub the holder may read only user/NAME/#.\n\n"
            "Options:\n"
            "  -s, --secret FILE   the HS256 key (at least %d bytes; newline ignored)\n"
            "  -u, --user NAME     who the holder is (the `sub` claim)\n"
            "  -p, --pub FILTER    may publish to topics matching FILTER (repeatable)\n"
            "  -S, --sub FILTER    may subscribe to FILTER (repeatable)\n"
            "  -t, --ttl TIME      valid for TIME: 90, 90s, 15m, 1h, 7d; default 1h\n"
            "      --admin         an administrator: --sub grants reach private topics\n"
            "  -V, --verify TOKEN  check TOKEN (- reads a line from stdin) as axon serve\n"
            "                      would, and print its claims, or why it is refused\n"
            "  -h, --help          show this help\n\n"
            "Examples:\n"
            "  head -c 48 /dev/urandom | base64 > secret; chmod 600 secret\n"
            "  axon token --secret secret --user alice --pub 'chat/#' --sub 'chat/#' --ttl 1h\n"
            "  axon token -s secret -u bob -p 'sensors/%%u/#' -S 'sensors/#' -t 7d\n"
            "  axon token -s secret --verify eyJhbGciOi...\n",
            AUTH_MIN_SECRET);
}

/* "90", "90s", "15m", "1h", "7d" into seconds; -1 when not one. */
static long long parse_ttl(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0 || s[0] == '+' || s[0] == '-') return -1;
    long long mul = 1;
    if (*end == 'm')
        mul = 60;
    else if (*end == 'h')
        mul = 3600;
    else if (*end == 'd')
        mul = 86400;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end && end[1]) return -1;
    if (v > MAX_TTL / mul) return -1;
    return v * mul;
}

static int add_filter(char **list, int *n, const char *opt, const char *f)
{
    if (*n == AUTH_MAX_FILTERS) {
        fprintf(stderr, "axon token: at most %d %s filters\n", AUTH_MAX_FILTERS, opt);
        return -1;
    }
    list[(*n)++] = (char *)f;
    return 0;
}

static void print_list(const char *key, char *const *f, int n)
{
    printf("%s", key);
    for (int i = 0; i < n; i++)
        printf(" %s", f[i]);
    printf("\n");
}

/* `--verify`: the server's checks, with its default leeway. */
static int verify(const auth_secret *sec, const char *tok)
{
    char line[AUTH_MAX_TOKEN + 2], why[256];
    if (strcmp(tok, "-") == 0) {
        if (!fgets(line, sizeof line, stdin)) line[0] = '\0';
        line[strcspn(line, "\r\n")] = '\0';
        tok = line;
    }
    auth_claims c;
    int64_t now = (int64_t)time(NULL);
    if (auth_jwt_verify(sec, tok, strlen(tok), now, AUTH_DEFAULT_LEEWAY, &c, why, sizeof why)) {
        fprintf(stderr, "axon token: refused: %s\n", why);
        return 1;
    }
    printf("user %s\nexpires %lld (in %lld s)\n", c.sub, (long long)c.exp,
           (long long)(c.exp - now));
    if (c.nbf) printf("not-before %lld\n", (long long)c.nbf);
    print_list("pub", c.pub, c.npub);
    print_list("sub", c.subf, c.nsub);
    if (c.admin) printf("admin\n");
    auth_claims_free(&c);
    return 0;
}

/* Sign, then read the token back with the server's verifier. */
static int issue(const auth_secret *sec, auth_claims *c)
{
    char why[256];
    int64_t now = (int64_t)time(NULL);
    char *tok = auth_jwt_sign(sec, c, now, why, sizeof why);
    if (!tok) {
        fprintf(stderr, "axon token: %s\n", why);
        return 1;
    }
    auth_claims back;
    if (auth_jwt_verify(sec, tok, strlen(tok), now, 0, &back, why, sizeof why) != 0) {
        fprintf(stderr, "axon token: %s\n", why);
        ax_free(tok);
        return 2;
    }
    auth_claims_free(&back);
    printf("%s\n", tok);
    ax_free(tok);
    return 0;
}

int cmd_token(int argc, char **argv); /* main.c's table */

int cmd_token(int argc, char **argv)
{
    enum { OPT_ADMIN = 256 };
    static const struct option longopts[] = {{"secret", required_argument, NULL, 's'},
                                             {"user", required_argument, NULL, 'u'},
                                             {"pub", required_argument, NULL, 'p'},
                                             {"sub", required_argument, NULL, 'S'},
                                             {"ttl", required_argument, NULL, 't'},
                                             {"admin", no_argument, NULL, OPT_ADMIN},
                                             {"verify", required_argument, NULL, 'V'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *secret = NULL, *user = NULL, *check = NULL;
    auth_claims c = {0};
    long long ttl = 3600;
    int ch;
    while ((ch = getopt_long(argc, argv, "s:u:p:S:t:V:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's':
            secret = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'p':
            if (add_filter(c.pub, &c.npub, "--pub", optarg) != 0) return 2;
            break;
        case 'S':
            if (add_filter(c.subf, &c.nsub, "--sub", optarg) != 0) return 2;
            break;
        case 't':
            if ((ttl = parse_ttl(optarg)) < 0) {
                fprintf(stderr,
                        "axon token: --ttl wants a time like 90, 90s, 15m, 1h or 7d "
                        "(at most 366d), got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'V':
            check = optarg;
            break;
        case OPT_ADMIN:
            c.admin = true;
            break;
        case 'h':
            help(stdout);
            return 0;
        default:
            help(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "axon token: unexpected argument '%s'\n\n", argv[optind]);
        help(stderr);
        return 2;
    }
    if (!secret || (!user && !check)) {
        fprintf(stderr, "axon token: %s is required (see axon token --help)\n",
                !secret ? "--secret FILE" : "--user NAME");
        return 2;
    }
    auth_secret sec;
    char why[512];
    if (check) {
        if (auth_secret_load(secret, &sec, why, sizeof why) != 0) {
            fprintf(stderr, "axon token: %s\n", why);
            return 1;
        }
        int rc = verify(&sec, check);
        auth_secret_free(&sec);
        return rc;
    }
    if (!auth_name_valid(user)) {
        fprintf(stderr,
                "axon token: --user '%s' is not usable (1-%d bytes, no '/', '+', '#', '%%', "
                "no control characters)\n",
                user, AUTH_MAX_NAME);
        return 2;
    }
    snprintf(c.sub, sizeof c.sub, "%s", user);
    c.exp = (int64_t)time(NULL) + ttl;
    if (auth_secret_load(secret, &sec, why, sizeof why) != 0) {
        fprintf(stderr, "axon token: %s\n", why);
        return 1;
    }
    int rc = issue(&sec, &c);
    auth_secret_free(&sec);
    return rc;
}
