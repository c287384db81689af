/* udp_echo_server: every datagram comes back to whoever sent it.
 *
 *     udp_echo_server [URL]          default udp://0.0.0.0:7000
 *     nc -u 127.0.0.1 7000           then type
 *
 * UDP has no connections: one socket receives datagrams from everybody,
 * and each one carries its sender's address, so the reply goes there.
 * Datagrams keep their boundaries (one send, one receive) and may be lost
 * or reordered on a real network.  TCP and UDP have separate port
 * numbers, so this can run next to tcp_echo_server on port 7000. */
#include <axon/axon.h>
#include <stdio.h>

static void on_datagram(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    /* Queued now, sent with the rest of this batch (sendmmsg) before the
     * loop waits again.  One that cannot be queued is dropped, as the
     * network may drop any datagram. */
    int rc = ax_udp_send(u, from, data, len);
    (void)rc;
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "udp://0.0.0.0:7000";
    char where[AX_ADDR_STRLEN];
    int err;

    ax_loop *loop = ax_loop_new(NULL, &err);
    if (!loop) {
        fprintf(stderr, "udp_echo_server: %s\n", ax_strerror(err));
        return 1;
    }
    ax_udp *u = ax_udp_bind(loop, url, on_datagram, NULL, NULL, &err);
    if (!u) {
        fprintf(stderr, "udp_echo_server: %s: %s\n", url, ax_strerror(err));
        ax_loop_free(loop);
        return 1;
    }
    printf("echo server on %s (%s)\n", ax_addr_format(ax_udp_addr(u), where, sizeof where),
           ax_loop_backend(loop));
    fflush(stdout);
    ax_loop_handle_signals(loop, NULL);
    ax_loop_run(loop);
    ax_loop_free(loop);
    return 0;
}
