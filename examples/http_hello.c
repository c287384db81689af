/* http_hello: the smallest HTTP server: "Hello, World!" on GET /.
 *
 *     http_hello 8080                listens on 127.0.0.1:8080
 *     curl http://127.0.0.1:8080/    Hello, World!
 *
 * axon's HTTP server does keep-alive, pipelining, chunked bodies and the
 * error answers; the program only routes a path to a handler. */
#include <axon/axon.h>
#include <axon/http.h>
#include <stdio.h>

/* Runs on the loop's thread once per request to GET / (or below it). */
static void hello(ax_http_req *r, void *ud)
{
    (void)ud;
    ax_http_respond(r, 200, "text/plain", "Hello, World!", 13);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: http_hello PORT\n");
        return 2;
    }
    char url[64], where[AX_ADDR_STRLEN];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%s", argv[1]);
    int err;
    ax_loop *loop = ax_loop_new(NULL, &err);
    ax_http_server *srv = loop ? ax_http_server_new(loop, NULL, &err) : NULL;
    if (!srv || ax_http_route(srv, "GET", "/", hello, NULL) != 0) {
        fprintf(stderr, "http_hello: %s\n", ax_strerror(err));
        return 1;
    }
    ax_listener *l = ax_http_listen(srv, url, NULL, &err);
    if (!l) {
        fprintf(stderr, "http_hello: %s: %s\n", url, ax_strerror(err));
        return 1;
    }
    printf("http server on %s (%s)\n", ax_addr_format(ax_listener_addr(l), where, sizeof where),
           ax_loop_backend(loop));
    fflush(stdout);
    ax_loop_handle_signals(loop, NULL); /* Ctrl-C or SIGTERM: stop the loop */
    ax_loop_run(loop);
    ax_http_server_free(srv);
    ax_loop_free(loop);
    return 0;
}
