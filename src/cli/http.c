/* http.c: `axon http`: serve a folder over HTTP/1.1, like
 * `python3 -m http.server`, on any number of URLs and threads. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/http.h>

#include "cli.h"

#define MAX_URLS 16

typedef struct {
    const char *root;
    const char *echo;        /* route answering with the request body */
    const char *stream_echo; /* the same, streamed */
    const char *urls[MAX_URLS];
    int n_urls;
    int threads;
    unsigned dir_flags;
    int quiet;
    const char *cert, *key; /* tls:// URLs */
    ax_tls_ctx *tls;
    ax_http_opts opts;
    ax_http_server **servers; /* one per thread */
    int freed;
} http_cfg;

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon http [OPTIONS]\n\n"
            "Serve the files under a folder over HTTP/1.1: keep-alive, pipelining, Range,\n"
            "ETag/Last-Modified (304), HEAD, index.html; paths never leave the folder.\n\n"
            "Options:\n"
            "  -r, --root DIR           folder to serve; default .\n"
            "  -l, --listen URL         tcp://, tls:// (HTTPS) or unix:// URL, repeatable;\n"
            "                           default tcp://127.0.0.1:8000\n"
            "  -t, --threads N          N event loops sharing the ports (SO_REUSEPORT); default 1\n"
            "  -L, --list               list folders that have no index.html\n"
            "  -a, --access-log         one line per request on stdout (Common Log Format)\n"
            "      --log-format F       access log format: common, combined or json\n"
            "      --header-timeout S   seconds a request head may take to arrive; default 10\n"
            "      --body-timeout S     seconds a request body may pause (then 408); default 30\n"
            "      --idle-timeout S     seconds an idle keep-alive connection stays; default 60\n"
            "      --max-body BYTES     largest request body (413 above); default 1048576\n"
            "      --echo PATH          answer any request below PATH with its own body\n"
            "      --stream-echo PATH   the same, streamed as it arrives (any size, chunked)\n"
            "      --cert FILE          certificate (PEM) for tls:// URLs (make one: axon cert)\n"
            "      --key FILE           private key (PEM) for tls:// URLs; default: in --cert\n"
            "  -q, --quiet              do not print the listening addresses\n"
            "  -h, --help               show this help\n\n"
            "Examples:\n"
            "  axon http                                   serve . on http://127.0.0.1:8000/\n"
            "  axon http --root /srv/www --list --listen tcp://0.0.0.0:8080\n"
            "  axon http -r site -t 2 -l tcp://[::1]:8000 -l unix:///tmp/http.sock\n"
            "  axon http --cert cert.pem --key key.pem --listen tls://127.0.0.1:8443\n\n"
            "Try it with:  curl -v http://127.0.0.1:8000/\n");
}

/* --echo: the request body back, with the method and target as fields;
 * for trying clients (uploads, chunked bodies, 100-continue). */
static void echo_body(ax_http_req *r, void *ud)
{
    (void)ud;
    size_t ml, tl, bl;
    const char *m = ax_http_req_method(r, &ml), *t = ax_http_req_target(r, &tl);
    const char *body = ax_http_req_body(r, &bl);
    char v[512];
    snprintf(v, sizeof v, "%.*s %.*s", (int)ml, m, (int)(tl > 400 ? 400 : tl), t);
    ax_http_add_header(r, "X-Request", v);
    ax_http_respond(r, 200, "application/octet-stream", body, bl);
}

/* --stream-echo: the body back as it arrives (chunked), never held whole:
 * when the response queue is full the request body pauses until it
 * drains, so a 10 GB upload costs the server a few buffers. */
static void stream_drain(ax_http_req *r, void *ud)
{
    (void)ud;
    ax_http_req_resume_body(r);
}

static void stream_chunk(ax_http_req *r, const char *d, size_t n, void *ud)
{
    (void)ud;
    if (!d) {
        ax_http_end(r);
        return;
    }
    int rc = ax_http_write(r, d, n);
    if (rc == 1) ax_http_req_pause_body(r);
    if (rc < 0) ax_conn_abort(ax_http_req_conn(r), rc);
}

static void stream_echo(ax_http_req *r, void *ud)
{
    (void)ud;
    ax_http_add_header(r, "Content-Type", "application/octet-stream");
    ax_http_on_drain(r, stream_drain, NULL);
    ax_http_req_on_body(r, stream_chunk, NULL);
    if (ax_http_start(r, 200, -1) != 0) ax_conn_abort(ax_http_req_conn(r), AX_EINVAL);
}

/* One --listen URL; tls:// listeners share cfg->tls. */
static int listen_one(http_cfg *cfg, ax_loop *loop, ax_http_server *s, int index, const char *url,
                      const ax_listen_opts *lo)
{
    char why[256], shown[AX_ADDR_STRLEN], tcp_url[1024];
    ax_addr a;
    bool tls = strncmp(url, "tls://", 6) == 0;
    if (tls) snprintf(tcp_url, sizeof tcp_url, "tcp://%s", url + 6);
    int err = ax_addr_parse(tls ? tcp_url : url, &a, why, sizeof why);
    if (err) {
        fprintf(stderr, "axon http: %s\n", why);
        return err;
    }
    if (a.scheme != AX_SCHEME_TCP && a.scheme != AX_SCHEME_UNIX) {
        fprintf(stderr, "axon http: %s: only tcp://, tls:// and unix:// URLs serve HTTP\n", url);
        return AX_ESCHEME;
    }
    if (a.scheme == AX_SCHEME_UNIX && index > 0) return 0; /* one owner per path */
    ax_listener *l = ax_http_listen_tls(s, url, lo, tls ? cfg->tls : NULL, &err);
    if (!l) {
        fprintf(stderr, "axon http: cannot listen on %s: %s\n", url, ax_strerror(err));
        return err;
    }
    ax_listener_url(l, shown, sizeof shown);
    if (index == 0 && !cfg->quiet)
        fprintf(stderr, "axon http: serving %s on %s (%s)\n", cfg->root, shown,
                ax_loop_backend(loop));
    return 0;
}

static int setup(ax_loop *loop, int index, void *ud)
{
    http_cfg *cfg = ud;
    int err = 0;
    ax_http_server *s = ax_http_server_new(loop, &cfg->opts, &err);
    if (!s) {
        fprintf(stderr, "axon http: %s\n", ax_strerror(err));
        return err;
    }
    cfg->servers[index] = s;
    err = ax_http_serve_dir(s, "/", cfg->root, cfg->dir_flags);
    if (err) {
        fprintf(stderr, "axon http: cannot serve %s: %s\n", cfg->root, ax_strerror(err));
        return err;
    }
    if (cfg->echo && (err = ax_http_route(s, NULL, cfg->echo, echo_body, NULL)) != 0) {
        fprintf(stderr, "axon http: %s\n", ax_strerror(err));
        return err;
    }
    ax_http_route_opts so = {.stream_body = true, .max_body = UINT64_MAX};
    if (cfg->stream_echo &&
        (err = ax_http_route_ex(s, NULL, cfg->stream_echo, stream_echo, NULL, &so)) != 0) {
        fprintf(stderr, "axon http: %s\n", ax_strerror(err));
        return err;
    }
    ax_listen_opts lo = {.reuse_port = cfg->threads > 1};
    for (int i = 0; i < cfg->n_urls; i++)
        if ((err = listen_one(cfg, loop, s, index, cfg->urls[i], &lo)) != 0) return err;
    return 0;
}

static void keepalive(ax_timer *t, void *ud)
{
    (void)t, (void)ud;
}

static void stop_main(ax_loop *loop, int signo)
{
    (void)signo;
    ax_loop_stop(loop);
}

/* Servers belong to their loop's thread: free each there. */
static void free_on_loop(ax_loop *loop, void *arg)
{
    http_cfg *cfg = ax_loop_data(loop);
    ax_http_server_free(arg);
    __atomic_add_fetch(&cfg->freed, 1, __ATOMIC_RELEASE);
}

static int run_threads(http_cfg *cfg, ax_loop *main_loop)
{
    int err;
    ax_threads *workers = ax_threads_start(cfg->threads, setup, cfg, &err);
    if (!workers) return 1;
    ax_timer *keep = ax_timer_new(main_loop, keepalive, NULL);
    ax_timer_start(keep, 3600 * 1000, 3600 * 1000); /* the main loop waits for signals */
    ax_loop_run(main_loop);
    ax_timer_free(keep);
    int posted = 0;
    for (int i = 0; i < cfg->threads; i++) {
        ax_loop *l = ax_threads_loop(workers, i);
        ax_loop_set_data(l, cfg);
        if (ax_loop_post(l, free_on_loop, cfg->servers[i]) == 0) posted++;
    }
    for (int i = 0; i < 500 && __atomic_load_n(&cfg->freed, __ATOMIC_ACQUIRE) < posted; i++)
        usleep(2000);
    ax_threads_stop(workers);
    return 0;
}

static int parse_args(int argc, char **argv, http_cfg *cfg)
{
    static const struct option longopts[] = {{"root", required_argument, NULL, 'r'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"list", no_argument, NULL, 'L'},
                                             {"access-log", no_argument, NULL, 'a'},
                                             {"log-format", required_argument, NULL, 'F'},
                                             {"header-timeout", required_argument, NULL, 'H'},
                                             {"body-timeout", required_argument, NULL, 'T'},
                                             {"idle-timeout", required_argument, NULL, 'I'},
                                             {"max-body", required_argument, NULL, 'B'},
                                             {"echo", required_argument, NULL, 'E'},
                                             {"stream-echo", required_argument, NULL, 'S'},
                                             {"cert", required_argument, NULL, 'C'},
                                             {"key", required_argument, NULL, 'K'},
                                             {"quiet", no_argument, NULL, 'q'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "r:l:t:Laqh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            cfg->root = optarg;
            break;
        case 'l':
            if (cfg->n_urls == MAX_URLS) {
                fprintf(stderr, "axon http: at most %d --listen URLs\n", MAX_URLS);
                return 2;
            }
            cfg->urls[cfg->n_urls++] = optarg;
            break;
        case 't':
            cfg->threads = atoi(optarg);
            if (cfg->threads < 1 || cfg->threads > 256) {
                fprintf(stderr, "axon http: --threads wants 1..256, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'L':
            cfg->dir_flags |= AX_HTTP_DIR_LIST;
            break;
        case 'a':
            cfg->opts.access_log = stdout;
            break;
        case 'F':
            if (strcmp(optarg, "common") == 0) {
                cfg->opts.access_log_format = AX_HTTP_LOG_COMMON;
            } else if (strcmp(optarg, "combined") == 0) {
                cfg->opts.access_log_format = AX_HTTP_LOG_COMBINED;
            } else if (strcmp(optarg, "json") == 0) {
                cfg->opts.access_log_format = AX_HTTP_LOG_JSON;
            } else {
                fprintf(stderr,
                        "axon http: --log-format wants common, combined or json, got '%s'\n",
                        optarg);
                return 2;
            }
            cfg->opts.access_log = stdout;
            break;
        case 'H':
            if (cli_parse_secs("http", "--header-timeout", optarg, &cfg->opts.header_timeout_ms))
                return 2;
            break;
        case 'T':
            if (cli_parse_secs("http", "--body-timeout", optarg, &cfg->opts.body_timeout_ms))
                return 2;
            break;
        case 'I':
            if (cli_parse_secs("http", "--idle-timeout", optarg, &cfg->opts.idle_timeout_ms))
                return 2;
            break;
        case 'B':
            cfg->opts.max_body = strtoull(optarg, &end, 10);
            if (*end || cfg->opts.max_body == 0) {
                fprintf(stderr, "axon http: --max-body wants a byte count, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'E':
            if (optarg[0] != '/') {
                fprintf(stderr, "axon http: --echo wants a path like /echo, got '%s'\n", optarg);
                return 2;
            }
            cfg->echo = optarg;
            break;
        case 'S':
            if (optarg[0] != '/') {
                fprintf(stderr, "axon http: --stream-echo wants a path like /up, got '%s'\n",
                        optarg);
                return 2;
            }
            cfg->stream_echo = optarg;
            break;
        case 'C':
            cfg->cert = optarg;
            break;
        case 'K':
            cfg->key = optarg;
            break;
        case 'q':
            cfg->quiet = 1;
            break;
        case 'h':
            help(stdout);
            return 1;
        default:
            help(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "axon http: unexpected argument '%s' (the folder goes after --root)\n\n",
                argv[optind]);
        help(stderr);
        return 2;
    }
    if (cfg->n_urls == 0) cfg->urls[cfg->n_urls++] = "tcp://127.0.0.1:8000";
    return 0;
}

int cmd_http(int argc, char **argv)
{
    http_cfg cfg = {.root = ".", .threads = 1};
    int rc = parse_args(argc, argv, &cfg);
    if (rc) return rc == 1 ? 0 : rc;
    /* one TLS server context for every tls:// (and wss://) URL and thread */
    if (cli_tls_server("http", cfg.urls, cfg.n_urls, cfg.cert, cfg.key, &cfg.tls) != 0) return 1;
    ax_http_server *servers[256] = {0};
    cfg.servers = servers;
    int err;
    ax_loop *main_loop = ax_loop_new(NULL, &err);
    if (!main_loop) {
        fprintf(stderr, "axon http: cannot create loop: %s\n", ax_strerror(err));
        ax_tls_ctx_free(cfg.tls);
        return 1;
    }
    ax_loop_handle_signals(main_loop, stop_main);
    if (cfg.threads == 1) {
        rc = setup(main_loop, 0, &cfg);
        if (rc == 0) ax_loop_run(main_loop);
        ax_http_server_free(servers[0]);
        rc = rc ? 1 : 0;
    } else {
        rc = run_threads(&cfg, main_loop);
    }
    ax_loop_free(main_loop);
    ax_tls_ctx_free(cfg.tls);
    if (!cfg.quiet && rc == 0) fprintf(stderr, "axon http: stopped\n");
    return rc;
}
