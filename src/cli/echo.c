/* echo.c: `axon echo URL...`: echo every byte (TCP, Unix), datagram (UDP)
 * or WebSocket message (ws://, wss://, any path) back to its sender, on any
 * number of URLs, on N threads.  This is also the server the echo
 * benchmarks drive. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon/axon.h>
#include <axon/http.h>
#include <axon/ws.h>

#include "cli.h"

typedef struct {
    char **urls;
    int n_urls;
    int threads;
    int quiet;
    const char *cert, *key; /* tls:// URLs */
    ax_tls_ctx *tls;
} echo_cfg;

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    /* Past the high watermark, stop reading until the peer catches up. */
    if (ax_conn_write(c, data, len) == 1) ax_conn_pause(c);
    return len;
}

static void on_drain(ax_conn *c)
{
    ax_conn_resume(c);
}

static const ax_conn_cbs echo_cbs = {.on_data = on_data, .on_drain = on_drain};

static void on_datagram(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    int rc = ax_udp_send(u, from, data, len);
    (void)rc; /* a datagram that cannot go is lost, as on the network */
}

static void ws_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    if (ax_ws_send(ws, data, len, binary) == 1) ax_conn_pause(ax_ws_conn(ws));
}

static void ws_drain(ax_ws *ws)
{
    ax_conn_resume(ax_ws_conn(ws));
}

static const ax_ws_cbs ws_echo_cbs = {.on_message = ws_message, .on_drain = ws_drain};
/* permessage-deflate when the client asks for it. */
static const ax_ws_opts ws_echo_opts = {.deflate = true};
static const ax_ws_endpoint ws_echo = {.cbs = &ws_echo_cbs, .opts = &ws_echo_opts};

/* ws://HOST:PORT[/...] (wss:// with `tls`): an HTTP server whose every
 * GET path is the WebSocket echo.  *bound gets the listener's address. */
static int ws_listen(ax_loop *loop, const char *url, ax_tls_ctx *tls, const ax_listen_opts *lo,
                     const ax_addr **bound)
{
    const char *hostport = url + (tls ? 6 : 5);
    char lurl[1024];
    int err = 0;
    snprintf(lurl, sizeof lurl, "tcp://%.*s", (int)strcspn(hostport, "/"), hostport);
    ax_http_server *s = ax_http_server_new(loop, NULL, &err);
    if (!s || ax_ws_route(s, "/", &ws_echo) != 0) return err ? err : AX_ENOMEM;
    ax_listener *l = ax_http_listen_tls(s, lurl, lo, tls, &err);
    if (!l) return err;
    *bound = ax_listener_addr(l);
    return 0;
}

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon echo [OPTIONS] URL...\n\n"
            "Echo every byte (tcp://, unix://), datagram (udp://) or WebSocket message\n"
            "(ws://, wss://; any path) back to its sender.\n\n"
            "Options:\n"
            "  -t, --threads N   run N event loops sharing the ports (SO_REUSEPORT); default 1\n"
            "  -q, --quiet       do not print the listening addresses\n"
            "      --cert FILE   certificate (PEM) for tls:// and wss:// (make one: axon cert)\n"
            "      --key FILE    private key (PEM) for tls:// and wss://; default: in --cert\n"
            "  -h, --help        show this help\n\n"
            "Examples:\n"
            "  axon echo tcp://127.0.0.1:7000\n"
            "  axon echo tcp://0.0.0.0:7000 udp://0.0.0.0:7000 unix:///tmp/echo.sock\n"
            "  axon echo --threads 2 tcp://[::1]:7000\n"
            "  axon echo tls://127.0.0.1:7443 --cert cert.pem --key key.pem\n"
            "  axon echo ws://127.0.0.1:8080/\n"
            "  axon echo wss://127.0.0.1:8443/ --cert cert.pem --key key.pem\n\n"
            "Talk to it with:  nc 127.0.0.1 7000   or   nc -u 127.0.0.1 7000\n");
}

/* Open every URL on this loop; thread 0 prints what it listens on. */
static int setup(ax_loop *loop, int index, void *ud)
{
    echo_cfg *cfg = ud;
    ax_listen_opts lo = {.reuse_port = cfg->threads > 1};
    ax_udp_opts uo = {.reuse_port = cfg->threads > 1};
    for (int i = 0; i < cfg->n_urls; i++) {
        const char *url = cfg->urls[i];
        char why[256], shown[AX_ADDR_STRLEN];
        ax_addr a;
        char tcp_url[1024];
        bool tls = strncmp(url, "tls://", 6) == 0;
        bool wss = strncmp(url, "wss://", 6) == 0;
        if (wss || strncmp(url, "ws://", 5) == 0) {
            const ax_addr *wb = NULL;
            int werr = ws_listen(loop, url, wss ? cfg->tls : NULL, &lo, &wb);
            if (werr) {
                fprintf(stderr, "axon echo: cannot listen on %s: %s\n", url, ax_strerror(werr));
                return werr;
            }
            ax_addr_format(wb, shown, sizeof shown);
            if (index == 0 && !cfg->quiet)
                fprintf(stderr, "axon echo: listening on %s (WebSocket %s)\n", shown, url);
            continue;
        }
        if (tls) snprintf(tcp_url, sizeof tcp_url, "tcp://%s", url + 6);
        int err = ax_addr_parse(tls ? tcp_url : url, &a, why, sizeof why);
        if (err) {
            fprintf(stderr, "axon echo: %s\n", why);
            return err;
        }
        if (a.scheme == AX_SCHEME_UNIX && index > 0) continue; /* one owner per path */
        bool bound = false;
        if (a.scheme == AX_SCHEME_UDP) {
            ax_udp *u = ax_udp_bind(loop, url, on_datagram, &uo, NULL, &err);
            if ((bound = u != NULL)) ax_addr_format(ax_udp_addr(u), shown, sizeof shown);
        } else {
            ax_conn_opts co = {.tls = tls ? cfg->tls : NULL};
            ax_listener *l = ax_listen_ex(loop, url, &echo_cbs, &co, &lo, NULL, &err);
            if ((bound = l != NULL)) ax_listener_url(l, shown, sizeof shown);
        }
        if (!bound) {
            fprintf(stderr, "axon echo: cannot listen on %s: %s\n", url, ax_strerror(err));
            return err;
        }
        if (index == 0 && !cfg->quiet) fprintf(stderr, "axon echo: listening on %s\n", shown);
    }
    return 0;
}

static bool known_scheme(const char *url)
{
    static const char *const schemes[] = {"tcp://", "udp://", "unix://",
                                          "tls://", "ws://",  "wss://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strncmp(url, schemes[i], strlen(schemes[i])) == 0) return true;
    return false;
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

int cmd_echo(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'K'},     {NULL, 0, NULL, 0}};
    echo_cfg cfg = {.threads = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "t:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 't':
            cfg.threads = atoi(optarg);
            if (cfg.threads < 1 || cfg.threads > 256) {
                fprintf(stderr, "axon echo: --threads wants 1..256, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'q':
            cfg.quiet = 1;
            break;
        case 'C':
            cfg.cert = optarg;
            break;
        case 'K':
            cfg.key = optarg;
            break;
        case 'h':
            help(stdout);
            return 0;
        default:
            help(stderr);
            return 2;
        }
    }
    cfg.urls = argv + optind;
    cfg.n_urls = argc - optind;
    if (cfg.n_urls == 0) {
        fprintf(stderr, "axon echo: no URL given\n\n");
        help(stderr);
        return 2;
    }
    for (int i = 0; i < cfg.n_urls; i++)
        if (!known_scheme(cfg.urls[i])) {
            fprintf(stderr,
                    "axon echo: cannot serve '%s': expected a tcp://, udp://, unix://, tls://, "
                    "ws:// or wss:// URL\n",
                    cfg.urls[i]);
            return 2;
        }
    /* one TLS server context for every tls:// (and wss://) URL and thread */
    if (cli_tls_server("echo", (const char *const *)cfg.urls, cfg.n_urls, cfg.cert, cfg.key,
                       &cfg.tls) != 0)
        return 1;
    /* The main thread's loop only waits for signals; workers do the I/O
     * (with one thread, the main loop does both). */
    int err;
    ax_loop *main_loop = ax_loop_new(NULL, &err);
    if (!main_loop) {
        fprintf(stderr, "axon echo: cannot create loop: %s\n", ax_strerror(err));
        return 1;
    }
    ax_loop_handle_signals(main_loop, stop_main);
    ax_threads *workers = NULL;
    if (cfg.threads == 1) {
        if (setup(main_loop, 0, &cfg) != 0) {
            ax_loop_free(main_loop);
            return 1;
        }
        ax_loop_run(main_loop);
    } else {
        workers = ax_threads_start(cfg.threads, setup, &cfg, &err);
        if (!workers) {
            ax_loop_free(main_loop);
            return 1;
        }
        ax_timer *keep = ax_timer_new(main_loop, keepalive, NULL);
        ax_timer_start(keep, 3600 * 1000, 3600 * 1000); /* keep the main loop alive for signals */
        ax_loop_run(main_loop);
        ax_timer_free(keep);
        ax_threads_stop(workers);
    }
    ax_loop_free(main_loop);
    ax_tls_ctx_free(cfg.tls);
    if (!cfg.quiet) fprintf(stderr, "axon echo: stopped\n");
    return 0;
}
