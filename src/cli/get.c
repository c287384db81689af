/* get.c: `axon get URL...`: fetch over HTTP/1.1 like curl: the body to
 * stdout (or a file), headers on request, redirects, TLS options.  URLs
 * given together are fetched one after the other on pooled connections. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <axon/axon.h>
#include <axon/http.h>
#include <axon/http_client.h>

#include "cli.h"
#include "core/buf.h"

#define MAX_URLS 64
#define MAX_FIELDS 64
#define EXPECT_FROM (1024 * 1024) /* bodies from this size send Expect: 100-continue */

typedef struct get_cfg {
    const char *urls[MAX_URLS];
    int n_urls, next;
    const char *method;
    ax__buf data; /* -d */
    bool has_data;
    const char *upload_path; /* -T: streamed from this file ("-": stdin) */
    FILE *upload;
    long long upload_size; /* -1: unknown, sent chunked */
    const char *fields[MAX_FIELDS];
    int n_fields;
    const char *out_path;
    FILE *out;
    bool include, head, follow, verbose, insecure, chunked, fail_http;
    int max_redirs;
    const char *ca;
    ax_http_client_opts opts;
    ax_http_client *hc;
    ax_loop *loop;
    int exit_code;
} get_cfg;

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon get [OPTIONS] URL...\n\n"
            "Fetch http:// and https:// URLs over HTTP/1.1 and write the bodies to stdout.\n"
            "Several URLs are fetched in turn, on the same connection when they can be.\n\n"
            "Options:\n"
            "  -o, --output FILE        write to FILE instead of stdout\n"
            "  -i, --include            write the response head before the body\n"
            "  -I, --head               send HEAD and write the response head\n"
            "  -X, --request METHOD     use METHOD (default GET, POST with -d)\n"
            "  -d, --data DATA          send DATA as the body (@FILE: the file's bytes)\n"
            "  -T, --upload-file FILE   stream FILE (- for stdin) as the body; default PUT\n"
            "      --chunked            send the body with chunked transfer coding\n"
            "  -H, --header 'N: V'      add a request field (repeatable)\n"
            "  -L, --location           follow redirects\n"
            "      --max-redirs N       follow at most N redirects; default 10\n"
            "      --ca FILE            trust the CA certificates in FILE (PEM)\n"
            "  -k, --insecure           accept any server certificate (testing only)\n"
            "      --timeout SECS       give up on a URL after SECS seconds\n"
            "      --connect-timeout S  give up connecting after S seconds; default 30\n"
            "      --max-size BYTES     refuse bodies larger than BYTES\n"
            "  -f, --fail               fail (exit 22) on HTTP status 400 and above\n"
            "  -A, --user-agent TEXT    the User-Agent field; default axon/VERSION\n"
            "  -v, --verbose            show connections and heads on stderr\n"
            "  -s, --silent             accepted for curl habits (there is no progress meter)\n"
            "  -h, --help               show this help\n\n"
            "Exit status, as curl's: 0 success, 2 usage, 3 bad URL, 6 unknown host,\n"
            "7 cannot connect, 8 malformed response, 22 HTTP error (-f), 23 write error,\n"
            "26 cannot read -T FILE, 28 timeout, 35 TLS failure, 47 too many redirects,\n"
            "52 empty reply, 56 connection lost, 60 certificate refused, 63 body too large,\n"
            "77 bad CA file.\n\n"
            "Examples:\n"
            "  axon get http://127.0.0.1:8000/             the body to stdout\n"
            "  axon get -i -L http://127.0.0.1:8000/docs   heads and body, redirects followed\n"
            "  axon get -I --ca /tmp/tls/cert.pem https://localhost:8443/\n"
            "  axon get -o big.bin http://127.0.0.1:8000/big.bin\n"
            "  axon get -v http://127.0.0.1:8000/a http://127.0.0.1:8000/b   one connection\n"
            "  axon get -d 'x=1' -H 'Content-Type: text/plain' http://127.0.0.1:8000/echo\n"
            "  tar c dir | axon get -T - http://127.0.0.1:8000/upload       streamed, chunked\n");
}

static int exit_code(int err)
{
    switch (err) {
    case AX_EURL:
    case AX_EHOST:
    case AX_EPORT:
        return 3;
    case AX_ESCHEME:
        return 1;
    case AX_ENOHOST:
    case AX_EDNS:
    case AX_EDNSTIMEDOUT:
        return 6;
    case AX_ECONNREFUSED:
    case AX_EHOSTUNREACH:
    case AX_ENETUNREACH:
        return 7;
    case AX_EHTTP:
        return 8;
    case AX_ETIMEDOUT:
        return 28;
    case AX_ETLS:
        return 35;
    case AX_EREDIRECTS:
        return 47;
    case AX_EOF:
        return 52;
    case AX_ECERT:
        return 60;
    case AX_ETOOBIG:
        return 63;
    case AX_ECONNRESET:
    case AX_EPIPE:
        return 56;
    case -EIO:
    case -ENOSPC:
        return 23;
    default:
        return 1;
    }
}

/* -i and -I: every response head as received, as curl writes them
 * (interim and redirect responses too).  -v: on stderr, connection notes
 * as "* ", request lines as "> ", response lines as "< ". */
static void on_trace(ax_http_fetch *f, enum ax_http_trace what, const char *text, size_t len,
                     void *ud)
{
    get_cfg *cfg = ud;
    bool head = what == AX_HTTP_TRACE_RESPONSE && (cfg->include || cfg->head);
    if (head && fwrite(text, 1, len, cfg->out) != len) {
        fprintf(stderr, "axon get: cannot write the output: %s\n", strerror(errno));
        cfg->exit_code = 23;
        ax_http_fetch_cancel(f);
        ax_loop_stop(cfg->loop);
        return;
    }
    if (!cfg->verbose) return;
    const char *mark = what == AX_HTTP_TRACE_INFO      ? "* "
                       : what == AX_HTTP_TRACE_REQUEST ? "> "
                                                       : "< ";
    while (len) {
        const char *nl = memchr(text, '\n', len);
        size_t n = nl ? (size_t)(nl - text) + 1 : len;
        size_t shown = n;
        while (shown && (text[shown - 1] == '\n' || text[shown - 1] == '\r'))
            shown--;
        fprintf(stderr, "%s%.*s\n", mark, (int)shown, text);
        text += n;
        len -= n;
    }
}

static int on_body(ax_http_fetch *f, const char *data, size_t len, void *ud)
{
    get_cfg *cfg = ud;
    (void)f;
    if (cfg->fail_http && ax_http_fetch_status(f) >= 400) return 0;
    if (fwrite(data, 1, len, cfg->out) != len) return errno ? -errno : -EIO;
    return 0;
}

/* -T: the next piece of the file. */
static long read_upload(ax_http_fetch *f, char *buf, size_t cap, void *ud)
{
    get_cfg *cfg = ud;
    (void)f;
    size_t n = fread(buf, 1, cap, cfg->upload);
    if (n == 0 && ferror(cfg->upload)) return -EIO;
    return (long)n;
}

static void fetch_next(get_cfg *cfg);

/* One line per failure, each part once: the detail usually names the
 * place (a URL) and the reason already. */
static void say_error(const char *url, int err, const char *detail)
{
    const char *reason = ax_strerror(err);
    if (!detail) {
        fprintf(stderr, "axon get: %s: %s\n", url, reason);
        return;
    }
    bool place = strstr(detail, "://") != NULL, why = strstr(detail, reason) != NULL;
    fprintf(stderr, "axon get: %s%s%s%s%s\n", place ? "" : url, place ? "" : ": ", detail,
            why ? "" : ": ", why ? "" : reason);
}

static void on_done(ax_http_fetch *f, int err, void *ud)
{
    get_cfg *cfg = ud;
    const char *url = cfg->urls[cfg->next - 1];
    int status = ax_http_fetch_status(f);
    if (err) {
        say_error(url, err, ax_http_fetch_error_detail(f));
        cfg->exit_code = exit_code(err);
    } else if (cfg->fail_http && status >= 400) {
        fprintf(stderr, "axon get: %s: HTTP %d %s\n", url, status, ax_http_status_text(status));
        cfg->exit_code = 22;
    }
    if (fflush(cfg->out) != 0 && !cfg->exit_code) {
        fprintf(stderr, "axon get: cannot write the output: %s\n", strerror(errno));
        cfg->exit_code = 23;
    }
    if (cfg->exit_code) {
        ax_loop_stop(cfg->loop);
        return;
    }
    fetch_next(cfg);
}

static const ax_http_fetch_cbs get_cbs = {
    .on_trace = on_trace, .on_body = on_body, .on_done = on_done};

static void fetch_next(get_cfg *cfg)
{
    if (cfg->next == cfg->n_urls) {
        ax_loop_stop(cfg->loop);
        return;
    }
    const char *url = cfg->urls[cfg->next++];
    const char *method = cfg->head ? "HEAD" : cfg->has_data ? "POST" : cfg->upload ? "PUT" : NULL;
    if (cfg->upload && cfg->upload_size >= 0) rewind(cfg->upload); /* the same file to each URL */
    ax_http_request rq = {
        .url = url,
        .method = cfg->method ? cfg->method : method,
        .headers = cfg->fields,
        .num_headers = (size_t)cfg->n_fields,
        .body = cfg->data.p,
        .body_len =
            cfg->upload ? (size_t)(cfg->upload_size > 0 ? cfg->upload_size : 0) : cfg->data.len,
        .body_reader = cfg->upload ? read_upload : NULL,
        .flags = (cfg->follow ? AX_HTTP_FOLLOW : 0u) | (cfg->chunked ? AX_HTTP_CHUNKED_BODY : 0u),
        .max_redirects = cfg->max_redirs,
    };
    /* as curl: large or unknown uploads first ask whether they are wanted */
    if ((cfg->upload && cfg->upload_size < 0) || rq.body_len >= EXPECT_FROM)
        rq.flags |= AX_HTTP_EXPECT_100;
    int err;
    if (!ax_http_fetch_start(cfg->hc, &rq, &get_cbs, cfg, &err)) {
        const char *why =
            err == AX_EINVAL ? " (a method or -H field that HTTP does not allow)" : "";
        fprintf(stderr, "axon get: %s: %s%s\n", url, ax_strerror(err), why);
        cfg->exit_code = err == AX_EINVAL ? 2 : exit_code(err);
        ax_loop_stop(cfg->loop);
    }
}

static int read_data(get_cfg *cfg, const char *arg)
{
    cfg->data.len = 0;
    if (arg[0] != '@') {
        if (ax__buf_append(&cfg->data, arg, strlen(arg)) != 0) return -1;
        cfg->has_data = true;
        return 0;
    }
    FILE *fp = fopen(arg + 1, "rb");
    if (!fp) {
        fprintf(stderr, "axon get: -d %s: %s\n", arg, strerror(errno));
        return -1;
    }
    ax__buf *b = &cfg->data;
    size_t got;
    int rc;
    while ((rc = ax__buf_reserve(b, 65536)) == 0 &&
           (got = fread(b->p + b->len, 1, b->cap - b->len, fp)) > 0)
        b->len += got;
    fclose(fp);
    if (rc) return -1; /* out of memory */
    cfg->has_data = true;
    return 0;
}

enum { O_MAXREDIRS = 256, O_CA, O_TIMEOUT, O_CTIMEOUT, O_MAXSIZE, O_CHUNKED };

static int parse_long_opt(get_cfg *cfg, int ch)
{
    char *end;
    switch (ch) {
    case O_MAXREDIRS:
        cfg->max_redirs = (int)strtol(optarg, &end, 10);
        if (*end || cfg->max_redirs < 0 || cfg->max_redirs > 1000) {
            fprintf(stderr, "axon get: --max-redirs wants 0..1000, got '%s'\n", optarg);
            return 2;
        }
        if (cfg->max_redirs == 0) cfg->max_redirs = -1;
        return 0;
    case O_CA:
        cfg->ca = optarg;
        return 0;
    case O_TIMEOUT:
        return cli_parse_secs("get", "--timeout", optarg, &cfg->opts.timeout_ms) ? 2 : 0;
    case O_CTIMEOUT:
        return cli_parse_secs("get", "--connect-timeout", optarg, &cfg->opts.connect_timeout_ms)
                   ? 2
                   : 0;
    case O_MAXSIZE:
        cfg->opts.max_body = strtoull(optarg, &end, 10);
        if (*end || cfg->opts.max_body == 0) {
            fprintf(stderr, "axon get: --max-size wants a byte count, got '%s'\n", optarg);
            return 2;
        }
        return 0;
    case O_CHUNKED:
        cfg->chunked = true;
        return 0;
    }
    help(stderr);
    return 2;
}

/* The URLs after the options; -d without a Content-Type gets curl's. */
static int parse_urls(int argc, char **argv, get_cfg *cfg)
{
    for (; optind < argc; optind++) {
        if (cfg->n_urls == MAX_URLS) {
            fprintf(stderr, "axon get: at most %d URLs\n", MAX_URLS);
            return 2;
        }
        cfg->urls[cfg->n_urls++] = argv[optind];
    }
    bool typed = false;
    for (int i = 0; i < cfg->n_fields; i++)
        typed |= strncasecmp(cfg->fields[i], "Content-Type:", 13) == 0;
    if (cfg->has_data && !typed && cfg->n_fields < MAX_FIELDS)
        cfg->fields[cfg->n_fields++] = "Content-Type: application/x-www-form-urlencoded";
    if (cfg->upload_path && cfg->has_data) {
        fprintf(stderr, "axon get: -T and -d both give a body; choose one\n");
        return 2;
    }
    if (cfg->n_urls == 0) {
        fprintf(stderr, "axon get: which URL?\n\n");
        help(stderr);
        return 2;
    }
    return 0;
}

static int parse_args(int argc, char **argv, get_cfg *cfg)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"include", no_argument, NULL, 'i'},
        {"head", no_argument, NULL, 'I'},
        {"request", required_argument, NULL, 'X'},
        {"data", required_argument, NULL, 'd'},
        {"header", required_argument, NULL, 'H'},
        {"location", no_argument, NULL, 'L'},
        {"insecure", no_argument, NULL, 'k'},
        {"fail", no_argument, NULL, 'f'},
        {"verbose", no_argument, NULL, 'v'},
        {"silent", no_argument, NULL, 's'},
        {"user-agent", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {"max-redirs", required_argument, NULL, O_MAXREDIRS},
        {"ca", required_argument, NULL, O_CA},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"max-size", required_argument, NULL, O_MAXSIZE},
        {"chunked", no_argument, NULL, O_CHUNKED},
        {"upload-file", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0}};
    int ch, rc;
    while ((ch = getopt_long(argc, argv, "o:iIX:d:H:T:A:Lkfvsh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            cfg->out_path = optarg;
            break;
        case 'i':
            cfg->include = true;
            break;
        case 'I':
            cfg->head = true;
            break;
        case 'X':
            cfg->method = optarg;
            break;
        case 'd':
            if (read_data(cfg, optarg)) return 2;
            break;
        case 'T':
            cfg->upload_path = optarg;
            break;
        case 'H':
            if (cfg->n_fields == MAX_FIELDS) {
                fprintf(stderr, "axon get: at most %d -H fields\n", MAX_FIELDS);
                return 2;
            }
            cfg->fields[cfg->n_fields++] = optarg;
            break;
        case 'L':
            cfg->follow = true;
            break;
        case 'k':
            cfg->insecure = true;
            break;
        case 'f':
            cfg->fail_http = true;
            break;
        case 's':
            break;
        case 'A':
            cfg->opts.user_agent = optarg;
            break;
        case 'v':
            cfg->verbose = true;
            break;
        case 'h':
            help(stdout);
            return 1;
        default:
            if ((rc = parse_long_opt(cfg, ch)) != 0) return rc;
        }
    }
    return parse_urls(argc, argv, cfg);
}

/* --ca and --insecure make a client TLS context; otherwise the default one
 * (system CAs, verification on) is used. */
static int make_tls(get_cfg *cfg)
{
    if (!cfg->ca && !cfg->insecure) return 0;
    char why[512];
    int err;
    ax_tls_opts to = {.ca_file = cfg->ca, .insecure = cfg->insecure};
    cfg->opts.tls = ax_tls_client_new(&to, why, sizeof why, &err);
    if (cfg->opts.tls) return 0;
    fprintf(stderr, "axon get: %s\n", why[0] ? why : ax_strerror(err));
    return 77;
}

/* -T: open the file; a regular one's size goes as Content-Length. */
static int open_upload(get_cfg *cfg)
{
    struct stat st;
    cfg->upload_size = -1;
    if (!cfg->upload_path) return 0;
    bool in = strcmp(cfg->upload_path, "-") == 0;
    cfg->upload = in ? stdin : fopen(cfg->upload_path, "rb");
    if (!cfg->upload) {
        fprintf(stderr, "axon get: -T %s: %s\n", cfg->upload_path, strerror(errno));
        return 26; /* curl: read error */
    }
    if (!in && !cfg->chunked && fstat(fileno(cfg->upload), &st) == 0 && S_ISREG(st.st_mode))
        cfg->upload_size = st.st_size;
    return 0;
}

int cmd_get(int argc, char **argv)
{
    get_cfg cfg = {.out = stdout};
    int rc = parse_args(argc, argv, &cfg);
    if (rc) {
        ax__buf_free(&cfg.data);
        return rc == 1 ? 0 : rc;
    }
    if ((rc = make_tls(&cfg)) != 0 || (rc = open_upload(&cfg)) != 0) goto out;
    if (cfg.out_path && !(cfg.out = fopen(cfg.out_path, "wb"))) {
        fprintf(stderr, "axon get: cannot open %s: %s\n", cfg.out_path, strerror(errno));
        rc = 23;
        goto out;
    }
    int err;
    cfg.loop = ax_loop_new(NULL, &err);
    if (cfg.loop) cfg.hc = ax_http_client_new(cfg.loop, &cfg.opts, &err);
    if (!cfg.hc) {
        fprintf(stderr, "axon get: %s\n", ax_strerror(err));
        rc = 1;
        goto out_loop;
    }
    fetch_next(&cfg);
    ax_loop_run(cfg.loop);
    rc = cfg.exit_code;
    ax_http_client_free(cfg.hc);
out_loop:
    ax_loop_free(cfg.loop);
    if (cfg.out != stdout && fclose(cfg.out) != 0 && !rc) rc = 23;
out:
    if (cfg.upload && cfg.upload != stdin) fclose(cfg.upload);
    ax_tls_ctx_free(cfg.opts.tls);
    ax__buf_free(&cfg.data);
    return rc;
}
