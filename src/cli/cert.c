/* cert.c: `axon cert`: make a self-signed certificate and key so TLS works
 * out of the box (axon echo tls://... --cert --key, clients with --ca). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <axon/axon.h>

#include "cli.h"

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon cert [OPTIONS]\n\n"
            "Write a self-signed certificate (DIR/cert.pem) and its private key\n"
            "(DIR/key.pem, mode 0600) for local TLS: EC P-256, subject CN=NAME,\n"
            "alternative names NAME, 127.0.0.1 and ::1.\n\n"
            "Options:\n"
            "  -o, --out DIR     directory to write into (made if missing); default .\n"
            "  -n, --name NAME   host name or IP address; default localhost\n"
            "  -d, --days N      validity in days; default 365\n"
            "  -h, --help        show this help\n\n"
            "Examples:\n"
            "  axon cert --out /tmp/tls --name localhost\n"
            "  axon echo tls://127.0.0.1:7443 --cert /tmp/tls/cert.pem --key /tmp/tls/key.pem\n"
            "  openssl s_client -connect 127.0.0.1:7443 -CAfile /tmp/tls/cert.pem\n");
}

int cmd_cert(int argc, char **argv)
{
    static const struct option longopts[] = {{"out", required_argument, NULL, 'o'},
                                             {"name", required_argument, NULL, 'n'},
                                             {"days", required_argument, NULL, 'd'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *dir = ".", *name = "localhost";
    int days = 365, ch;
    while ((ch = getopt_long(argc, argv, "o:n:d:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            dir = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'd':
            days = atoi(optarg);
            if (days < 1 || days > 36500) {
                fprintf(stderr, "axon cert: --days wants 1..36500, got '%s'\n", optarg);
                return 2;
            }
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
        fprintf(stderr, "axon cert: unexpected argument '%s'\n\n", argv[optind]);
        help(stderr);
        return 2;
    }
    if (cli_mkdirs(dir, 0755) == -1) {
        fprintf(stderr, "axon cert: cannot make directory '%s': %s\n", dir, strerror(errno));
        return 1;
    }
    char cert[4096], key[4096], why[512];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    if (ax_tls_make_self_signed(name, days, cert, key, why, sizeof why) != 0) {
        fprintf(stderr, "axon cert: %s\n", why);
        return 1;
    }
    printf("%s\n%s\n", cert, key);
    fprintf(stderr, "axon cert: self-signed certificate for %s, valid %d days\n", name, days);
    return 0;
}
