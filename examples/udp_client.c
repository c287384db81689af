/* udp_client: send each line of stdin as one datagram, print every reply.
 *
 *     udp_client [URL [WAIT_MS]]     default udp://127.0.0.1:7000, 1000 ms
 *     printf 'one\ntwo\n' | udp_client
 *
 * A datagram is a message with its own boundaries, so the newline is not
 * sent: the receiver gets exactly the line.  Each reply is printed on a
 * line of its own.  UDP never says "the other side is done", so after
 * stdin ends the client waits WAIT_MS for late replies (each reply
 * restarts the wait) and then exits: with status 1 and a message when
 * it sent something and nothing at all came back (nobody listening, or
 * every datagram lost).
 *
 * As in tcp_client, a thread reads stdin and hands lines to the loop with
 * ax_loop_post(), the one thread-safe call. */
#include <axon/axon.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct client {
    ax_loop *loop;
    ax_udp *udp;
    ax_timer *quit; /* runs WAIT_MS after the last line or reply */
    uint64_t wait_ms;
    const char *url;
    unsigned long sent, replies;
    bool stdin_done;
    int status;
    pthread_mutex_t lock; /* guards the hand-off below */
    pthread_cond_t taken;
    bool pending;         /* line holds text the loop has not taken yet */
    bool loop_gone;       /* the loop has finished: post nothing more */
    bool eof;             /* instead of a line: stdin ended */
    char line[65507 + 2]; /* the largest IPv4 datagram, its '\n', a NUL */
} client;

/* Runs on the loop thread, posted by the stdin thread. */
static void on_stdin(ax_loop *loop, void *arg)
{
    client *cl = arg;
    if (cl->eof) {
        cl->stdin_done = true;
        ax_timer_start(cl->quit, cl->wait_ms, 0);
    } else {
        size_t len = strlen(cl->line);
        if (len > 0 && cl->line[len - 1] == '\n') len--;
        /* Connected socket, so no address: it goes to URL.  An error here
         * may belong to an earlier datagram (nobody listening there). */
        int rc = ax_udp_send(cl->udp, NULL, cl->line, len);
        if (rc < 0) {
            fprintf(stderr, "udp_client: send: %s\n", ax_strerror(rc));
            cl->status = 1;
        } else {
            cl->sent++;
        }
    }
    pthread_mutex_lock(&cl->lock);
    cl->pending = false;
    pthread_cond_signal(&cl->taken);
    pthread_mutex_unlock(&cl->lock);
}

/* The stdin thread: one line at a time, waiting until the loop took it. */
static void *read_stdin(void *arg)
{
    client *cl = arg;
    bool eof = false;
    while (!eof) {
        eof = fgets(cl->line, sizeof cl->line, stdin) == NULL;
        pthread_mutex_lock(&cl->lock);
        cl->eof = eof;
        cl->pending = !cl->loop_gone && ax_loop_post(cl->loop, on_stdin, cl) == 0;
        while (cl->pending && !cl->loop_gone)
            pthread_cond_wait(&cl->taken, &cl->lock);
        eof = eof || cl->loop_gone;
        pthread_mutex_unlock(&cl->lock);
    }
    return NULL;
}

static void on_reply(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    client *cl = ax_udp_data(u);
    cl->replies++;
    fwrite(data, 1, len, stdout);
    if (len == 0 || data[len - 1] != '\n') putchar('\n'); /* one reply per line */
    fflush(stdout);
    if (cl->stdin_done) ax_timer_start(cl->quit, cl->wait_ms, 0); /* still talking: wait again */
}

static void on_quit(ax_timer *t, void *ud)
{
    client *cl = ud;
    if (cl->sent > 0 && cl->replies == 0) {
        fprintf(stderr, "udp_client: no reply from %s within %llu ms\n", cl->url,
                (unsigned long long)cl->wait_ms);
        cl->status = 1;
    }
    ax_udp_close(cl->udp);
    ax_loop_stop(cl->loop);
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "udp://127.0.0.1:7000";
    static client cl = {.lock = PTHREAD_MUTEX_INITIALIZER, .taken = PTHREAD_COND_INITIALIZER};
    pthread_t reader;
    int err;

    cl.url = url;
    cl.wait_ms = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
    cl.loop = ax_loop_new(NULL, &err);
    if (!cl.loop) {
        fprintf(stderr, "udp_client: %s\n", ax_strerror(err));
        return 1;
    }
    /* "Connecting" a UDP socket sends nothing; it fixes the destination
     * and filters out datagrams from anyone else. */
    cl.udp = ax_udp_connect(cl.loop, url, on_reply, NULL, &cl, &err);
    if (!cl.udp) {
        fprintf(stderr, "udp_client: %s: %s\n", url, ax_strerror(err));
        ax_loop_free(cl.loop);
        return 1;
    }
    cl.quit = ax_timer_new(cl.loop, on_quit, &cl);
    if (!cl.quit || pthread_create(&reader, NULL, read_stdin, &cl) != 0) {
        fprintf(stderr, "udp_client: out of memory\n");
        ax_loop_free(cl.loop);
        return 1;
    }
    ax_loop_handle_signals(cl.loop, NULL);
    ax_loop_run(cl.loop);

    pthread_mutex_lock(&cl.lock); /* from now on the stdin thread posts nothing */
    cl.loop_gone = true;
    pthread_cond_signal(&cl.taken);
    pthread_mutex_unlock(&cl.lock);
    ax_timer_free(cl.quit);
    ax_loop_free(cl.loop);
    return cl.status;
}
