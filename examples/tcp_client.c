/* tcp_client: a tiny netcat.  Stdin goes to the socket and the socket goes
 * to stdout, both at the same time.
 *
 *     tcp_client [URL]               default tcp://127.0.0.1:7000
 *     tcp_client unix:///tmp/echo.sock
 *
 * A socket is full duplex: the two directions are independent streams.
 * When stdin ends we shut down only our sending side (a TCP FIN, "half
 * close") and keep printing what the server sends until it closes.
 *
 * Stdin is not a socket, so a second thread reads it and hands each chunk
 * to the loop with ax_loop_post(), the one call that is safe from any
 * thread.  Everything else runs on the loop's thread. */
#include <axon/axon.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

typedef struct client {
    ax_loop *loop;
    ax_conn *conn;        /* NULL once closed; touched on the loop thread only */
    int status;           /* exit status */
    pthread_t reader;     /* the stdin thread */
    pthread_mutex_t lock; /* guards the hand-off below */
    pthread_cond_t taken; /* signalled when the loop is done with buf */
    bool pending;         /* buf holds a chunk the loop has not taken yet */
    bool loop_gone;       /* the loop has finished: post nothing more */
    ssize_t len;          /* bytes in buf; 0 means stdin ended */
    char buf[16 * 1024];
} client;

/* Tell the stdin thread it may read again. */
static void release_buf(client *cl)
{
    pthread_mutex_lock(&cl->lock);
    cl->pending = false;
    pthread_cond_signal(&cl->taken);
    pthread_mutex_unlock(&cl->lock);
}

/* Runs on the loop thread, posted by the stdin thread. */
static void on_stdin(ax_loop *loop, void *arg)
{
    client *cl = arg;
    int rc = 0;

    if (cl->conn && cl->len > 0)
        rc = ax_conn_write(cl->conn, cl->buf, (size_t)cl->len); /* copies buf */
    else if (cl->conn)
        ax_conn_shutdown(cl->conn); /* stdin ended: send FIN, keep reading */
    /* rc == 1: the socket is backed up (the server reads slower than we
     * type).  Keep the stdin thread waiting until on_drain says it is
     * worth reading more; otherwise let it go on now. */
    if (rc != 1) release_buf(cl);
}

/* The stdin thread: read, post, wait until the loop has taken the chunk. */
static void *read_stdin(void *arg)
{
    client *cl = arg;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, cl->buf, sizeof cl->buf);
        if (n == -1 && errno == EINTR) continue;
        pthread_mutex_lock(&cl->lock);
        cl->len = n > 0 ? n : 0; /* a read error ends stdin too */
        cl->pending = !cl->loop_gone && ax_loop_post(cl->loop, on_stdin, cl) == 0;
        while (cl->pending && !cl->loop_gone)
            pthread_cond_wait(&cl->taken, &cl->lock);
        bool done = n <= 0 || cl->loop_gone;
        pthread_mutex_unlock(&cl->lock);
        if (done) return NULL;
    }
}

static void on_open(ax_conn *c)
{
    client *cl = ax_conn_data(c);
    /* Connected: start forwarding stdin.  The thread is never joined; it
     * may sit in read() when we exit, and exit ends it. */
    if (pthread_create(&cl->reader, NULL, read_stdin, cl) != 0) ax_conn_shutdown(c);
}

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    fwrite(data, 1, len, stdout);
    fflush(stdout);
    return len;
}

static void on_drain(ax_conn *c)
{
    release_buf(ax_conn_data(c)); /* the socket caught up: read stdin again */
}

/* on_end is left NULL: when the server closes its side, axon closes ours
 * after flushing what is queued, and on_close follows. */
static void on_close(ax_conn *c, int reason)
{
    client *cl = ax_conn_data(c);
    if (reason != 0 && reason != AX_EOF) {
        fprintf(stderr, "tcp_client: %s\n", ax_strerror(reason));
        cl->status = 1;
    }
    cl->conn = NULL;
    ax_loop_stop(ax_conn_loop(c));
}

int main(int argc, char **argv)
{
    const char *url = argc > 1 ? argv[1] : "tcp://127.0.0.1:7000";
    static const ax_conn_cbs cbs = {
        .on_open = on_open, .on_data = on_data, .on_drain = on_drain, .on_close = on_close};
    static client cl = {.lock = PTHREAD_MUTEX_INITIALIZER, .taken = PTHREAD_COND_INITIALIZER};
    int err;

    cl.loop = ax_loop_new(NULL, &err);
    if (!cl.loop) {
        fprintf(stderr, "tcp_client: %s\n", ax_strerror(err));
        return 1;
    }
    /* Returns at once; on_open (or on_close with the error) comes later. */
    cl.conn = ax_connect(cl.loop, url, &cbs, NULL, &cl, &err);
    if (!cl.conn) {
        fprintf(stderr, "tcp_client: %s: %s\n", url, ax_strerror(err));
        ax_loop_free(cl.loop);
        return 1;
    }
    ax_loop_handle_signals(cl.loop, NULL);
    ax_loop_run(cl.loop);

    /* Close the door before freeing the loop: the stdin thread checks
     * loop_gone under the lock, so it can never post to a freed loop. */
    pthread_mutex_lock(&cl.lock);
    cl.loop_gone = true;
    pthread_cond_signal(&cl.taken);
    pthread_mutex_unlock(&cl.lock);
    ax_loop_free(cl.loop);
    return cl.status;
}
