/* tls_hello: an HTTPS server that answers every request with "hello".
 *
 *     tls_hello URL CERT KEY [CERT KEY]... [--alpn LIST]
 *     tls_hello tls://127.0.0.1:8443 cert.pem key.pem
 *     curl --cacert cert.pem https://localhost:8443/
 *     tls_client tls://localhost:8443 --ca cert.pem --send hi
 *
 * A first line that is not an HTTP request line (tls_client's, openssl
 * s_client's) gets the hello as one plain line.
 *
 * A TLS listener is a TCP listener with a TLS context in its options: the
 * handshake happens before on_open, on_data sees plaintext.  Give several
 * certificates and the client's SNI name picks the one that matches.  The
 * reply says which protocol ALPN chose. */
#define _GNU_SOURCE /* memmem */
#include <axon/axon.h>
#include <stdio.h>
#include <string.h>

/* Wait for the end of the request head (or of a plain line), answer,
 * close gracefully. */
static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    const char *nl = memchr(data, '\n', len);
    if (!nl) return 0; /* keep it, wait for more */
    bool http = memmem(data, (size_t)(nl - data), " HTTP/1.", 8) != NULL;
    if (http && !memmem(data, len, "\r\n\r\n", 4)) return 0;
    const char *alpn = ax_conn_tls_alpn(c);
    char body[128], head[256];
    int bl = snprintf(body, sizeof body, "hello over %s (alpn %s)\n", ax_conn_tls_version(c),
                      alpn ? alpn : "none");
    if (!http) { /* a line client */
        int rc = ax_conn_write(c, body, (size_t)bl);
        (void)rc; /* closing either way */
        ax_conn_close(c);
        return len;
    }
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n",
                      bl);
    if (ax_conn_write(c, head, (size_t)hl) >= 0) {
        int rc = ax_conn_write(c, body, (size_t)bl);
        (void)rc; /* closing either way */
    }
    ax_conn_close(c); /* close_notify, then FIN */
    return len;
}

static void on_close(ax_conn *c, int reason)
{
    const char *detail = ax_conn_error_detail(c);
    if (reason && reason != AX_EOF)
        fprintf(stderr, "tls_hello: %s\n", detail ? detail : ax_strerror(reason));
}

static const ax_conn_cbs cbs = {.on_data = on_data, .on_close = on_close};

int main(int argc, char **argv)
{
    const char *files[32], *alpn = NULL;
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--alpn") == 0 && i + 1 < argc)
            alpn = argv[++i];
        else if (n < 32)
            files[n++] = argv[i];
    }
    if (argc < 2 || n < 2 || n % 2) {
        fprintf(stderr, "usage: tls_hello URL CERT KEY [CERT KEY]... [--alpn LIST]\n");
        return 2;
    }
    char why[512];
    int err;
    ax_tls_opts to = {.cert_file = files[0], .key_file = files[1], .alpn = alpn};
    ax_tls_ctx *tls = ax_tls_server_new(&to, why, sizeof why, &err);
    for (int i = 2; tls && i < n; i += 2) {
        if (ax_tls_server_add_cert(tls, files[i], files[i + 1], why, sizeof why) != 0) {
            ax_tls_ctx_free(tls);
            tls = NULL;
        }
    }
    if (!tls) {
        fprintf(stderr, "tls_hello: %s\n", why);
        return 1;
    }
    ax_loop *loop = ax_loop_new(NULL, &err);
    ax_conn_opts co = {.tls = tls, .connect_timeout_ms = 5000};
    ax_listener *l = ax_listen(loop, argv[1], &cbs, &co, NULL, &err);
    if (!l) {
        fprintf(stderr, "tls_hello: cannot listen on %s: %s\n", argv[1], ax_strerror(err));
        return 1;
    }
    char shown[AX_ADDR_STRLEN];
    printf("listening on %s\n", ax_addr_format(ax_listener_addr(l), shown, sizeof shown));
    fflush(stdout);
    ax_tls_ctx_free(tls); /* the listener keeps its own reference */
    ax_loop_run(loop);
    ax_loop_free(loop);
    return 0;
}
