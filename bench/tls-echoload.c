/* tls-echoload: a closed-loop echo load generator over tcp:// or tls://,
 * built on libaxon (bench/tls-echo compiles it).  C connections each keep
 * D messages of S bytes in flight; prints messages per second.
 *
 *     tls-echoload [-c CONNS] [-d DEPTH] [-s SIZE] [-t SECS] URL */
#include <axon/axon.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t size = 64;
static int depth = 4;
static uint64_t msgs;
static int open_conns, failed;
static char *payload;

static void send_one(ax_conn *c)
{
    ax_conn_write(c, payload, size);
}

static void on_open(ax_conn *c)
{
    open_conns++;
    for (int i = 0; i < depth; i++)
        send_one(c);
}

/* Each full message echoed back is replaced by a new one. */
static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    size_t *pending = ax_conn_data(c);
    (void)data;
    *pending += len;
    while (*pending >= size) {
        *pending -= size;
        msgs++;
        send_one(c);
    }
    return len;
}

static void on_close(ax_conn *c, int reason)
{
    const char *d = ax_conn_error_detail(c);
    if (reason) {
        failed++;
        fprintf(stderr, "tls-echoload: %s\n", d ? d : ax_strerror(reason));
    }
}

static const ax_conn_cbs cbs = {.on_open = on_open, .on_data = on_data, .on_close = on_close};

static void on_stop(ax_timer *t, void *ud)
{
    (void)t;
    ax_loop_stop(ud);
}

int main(int argc, char **argv)
{
    int conns = 100, secs = 5, ch, err;
    while ((ch = getopt(argc, argv, "c:d:s:t:")) != -1) {
        if (ch == 'c')
            conns = atoi(optarg);
        else if (ch == 'd')
            depth = atoi(optarg);
        else if (ch == 's')
            size = (size_t)atoi(optarg);
        else if (ch == 't')
            secs = atoi(optarg);
        else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: tls-echoload [-c CONNS] [-d DEPTH] [-s SIZE] [-t SECS] URL\n");
        return 2;
    }
    payload = calloc(1, size);
    ax_loop *loop = ax_loop_new(NULL, &err);
    ax_tls_ctx *tls = ax_tls_client_new(&(ax_tls_opts){.insecure = true}, NULL, 0, &err);
    ax_conn_opts o = {.tls = strncmp(argv[optind], "tls://", 6) == 0 ? tls : NULL};
    size_t *pending = calloc((size_t)conns, sizeof(*pending));
    for (int i = 0; i < conns; i++)
        if (!ax_connect(loop, argv[optind], &cbs, &o, &pending[i], &err)) return 1;
    while (open_conns + failed < conns)
        ax_loop_run_once(loop, 100);
    ax_timer *warm = ax_timer_new(loop, on_stop, loop); /* one second of warm-up */
    ax_timer_start(warm, 1000, 0);
    ax_loop_run(loop);
    uint64_t m0 = msgs;
    ax_timer_start(warm, (uint64_t)secs * 1000, 0);
    ax_loop_run(loop);
    printf("msgs=%llu secs=%d msgs_per_sec=%.0f failed=%d\n", (unsigned long long)(msgs - m0), secs,
           (double)(msgs - m0) / secs, failed);
    return failed ? 1 : 0;
}
