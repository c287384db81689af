/* tcp_echo_server: every byte a client sends comes straight back.
 *
 *     tcp_echo_server [URL]          default tcp://0.0.0.0:7000
 *     nc 127.0.0.1 7000              then type; Ctrl-C stops the server
 *
 * The URL picks the transport: unix:///tmp/echo.sock serves the same echo
 * on a Unix socket, and port 0 lets the kernel choose a free port. */
#include <axon/axon.h>
#include <stdio.h>

/* Called on the loop's thread whenever bytes arrive on a connection. */
static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    /* queue a copy; axon flushes it with writev.  A negative result means
     * the connection is closing (e.g. the peer stopped reading). */
    if (ax_conn_write(c, data, len) < 0) ax_conn_close(c);
    return len; /* we consumed all of it, keep nothing */
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "tcp://0.0.0.0:7000";
    static const ax_conn_cbs echo = {.on_data = on_data};
    char where[AX_ADDR_STRLEN];
    int err;

    ax_loop *loop = ax_loop_new(NULL, &err); /* uring or epoll; AXON_BACKEND picks */
    if (!loop) {
        fprintf(stderr, "tcp_echo_server: %s\n", ax_strerror(err));
        return 1;
    }
    ax_listener *l = ax_listen(loop, url, &echo, NULL, NULL, &err);
    if (!l) {
        fprintf(stderr, "tcp_echo_server: %s: %s\n", url, ax_strerror(err));
        ax_loop_free(loop);
        return 1;
    }
    printf("echo server on %s (%s)\n", ax_addr_format(ax_listener_addr(l), where, sizeof where),
           ax_loop_backend(loop));
    fflush(stdout);
    ax_loop_handle_signals(loop, NULL); /* Ctrl-C or SIGTERM: stop the loop */
    ax_loop_run(loop);
    ax_loop_free(loop); /* closes the listener and every connection */
    return 0;
}
