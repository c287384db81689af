/* tls_client: send one line over TLS and print the reply.
 *
 *     tls_client URL [--ca FILE] [--insecure] [--alpn LIST] [--name HOST] [--send TEXT]
 *                    [--timeout SECS]
 *     tls_client tls://localhost:7443 --ca cert.pem --send hello
 *
 * The program has the shape of a TCP client; only the URL (tls://) and a
 * TLS context (which CAs to trust, what to offer with ALPN) differ.  The
 * certificate is verified against the URL's host unless --insecure.  It
 * prints what was negotiated to stderr and the reply's first line to
 * stdout, then closes (sending close_notify).  Exit status 0 on success,
 * 1 with the reason (e.g. "certificate verification failed: ...") if the
 * connection failed or no reply line came within --timeout (default 10 s):
 * a timer guards the whole exchange, so a server that waits for something
 * else never leaves the client hanging. */
#include <axon/axon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct client {
    const char *line;
    int status;
    size_t got;
    unsigned timeout_s;
    ax_conn *conn;
    ax_timer *timer; /* the whole exchange must be done by then */
} client;

static void on_open(ax_conn *c)
{
    client *cl = ax_conn_data(c);
    char subject[256] = "-";
    const char *alpn = ax_conn_tls_alpn(c);
    ax_conn_tls_peer_subject(c, subject, sizeof subject);
    fprintf(stderr, "tls_client: connected: %s, alpn %s, peer %s\n", ax_conn_tls_version(c),
            alpn ? alpn : "-", subject);
    if (ax_conn_write(c, cl->line, strlen(cl->line)) < 0 || ax_conn_write(c, "\n", 1) < 0)
        ax_conn_close(c);
}

/* Print up to and including the first newline, then close. */
static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    client *cl = ax_conn_data(c);
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) + 1 : len;
    fwrite(data, 1, n, stdout);
    cl->got += n;
    if (nl) {
        ax_timer_stop(cl->timer);
        ax_conn_close(c);
    }
    return len;
}

static void on_close(ax_conn *c, int reason)
{
    client *cl = ax_conn_data(c);
    const char *detail = ax_conn_error_detail(c);
    if (cl->status == 0 && reason != 0 && !(reason == AX_EOF && cl->got)) {
        fprintf(stderr, "tls_client: %s\n", detail ? detail : ax_strerror(reason));
        cl->status = 1;
    }
    fflush(stdout);
    ax_loop_stop(ax_conn_loop(c));
}

static const ax_conn_cbs cbs = {.on_open = on_open, .on_data = on_data, .on_close = on_close};

/* No reply line in time: say so, and give up (on_close then stops the loop). */
static void on_timeout(ax_timer *t, void *ud)
{
    client *cl = ud;
    (void)t;
    fprintf(stderr, "tls_client: no reply line within %u s%s\n", cl->timeout_s,
            cl->got ? " (a partial line came)" : "");
    fflush(stdout);
    cl->status = 1;
    ax_conn_abort(cl->conn, AX_ETIMEDOUT);
}

int main(int argc, char **argv)
{
    ax_tls_opts to = {0};
    client cl = {.line = "hello", .timeout_s = 10};
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        bool more = i + 1 < argc;
        if (strcmp(argv[i], "--ca") == 0 && more)
            to.ca_file = argv[++i];
        else if (strcmp(argv[i], "--insecure") == 0)
            to.insecure = true;
        else if (strcmp(argv[i], "--alpn") == 0 && more)
            to.alpn = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && more)
            to.server_name = argv[++i];
        else if (strcmp(argv[i], "--send") == 0 && more)
            cl.line = argv[++i];
        else if (strcmp(argv[i], "--timeout") == 0 && more)
            cl.timeout_s = (unsigned)atoi(argv[++i]);
        else
            url = argv[i];
    }
    if (!url || cl.timeout_s == 0) {
        fprintf(stderr, "usage: tls_client tls://HOST:PORT [--ca FILE] [--insecure] [--alpn "
                        "LIST] [--name HOST] [--send TEXT] [--timeout SECS]\n");
        return 2;
    }
    char why[512];
    int err;
    ax_tls_ctx *tls = ax_tls_client_new(&to, why, sizeof why, &err);
    if (!tls) {
        fprintf(stderr, "tls_client: %s\n", why);
        return 1;
    }
    ax_loop *loop = ax_loop_new(NULL, &err);
    ax_conn_opts co = {.tls = tls, .connect_timeout_ms = 5000};
    cl.timer = ax_timer_new(loop, on_timeout, &cl);
    if (!(cl.conn = ax_connect(loop, url, &cbs, &co, &cl, &err))) {
        fprintf(stderr, "tls_client: %s: %s\n", url, ax_strerror(err));
        cl.status = 1;
    } else {
        ax_timer_start(cl.timer, cl.timeout_s * 1000ull, 0);
        ax_loop_run(loop);
    }
    ax_timer_free(cl.timer);
    ax_loop_free(loop);
    ax_tls_ctx_free(tls);
    return cl.status;
}
