/* bench_stream.c: `axon bench` against echo servers: tcp://, unix://,
 * tls:// (a request is -s bytes, its reply the same number of bytes back)
 * and udp:// (a datagram of -s bytes carrying its sequence number). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct stream_pd {
    size_t got; /* bytes of the current reply */
    char *msg;  /* the request, size bytes */
} stream_pd;

static void closed_why(bconn *c, const char *what, int reason)
{
    char why[96];
    snprintf(why, sizeof why, "%s: %s", what, ax_strerror(reason));
    bench_conn_down(c, reason == 0 ? NULL : why);
}

static void st_open(ax_conn *h)
{
    bconn *c = ax_conn_data(h);
    bench_conn_up(c);
    bench_pump(c);
}

static size_t st_data(ax_conn *h, const char *data, size_t len)
{
    bconn *c = ax_conn_data(h);
    stream_pd *pd = c->pd;
    size_t size = c->w->cfg->size;
    bench_bytes(c->w, len, 0);
    pd->got += len;
    while (pd->got >= size && c->inflight > 0) {
        pd->got -= size;
        bench_reply(c);
    }
    if (c->inflight == 0 && pd->got > 0) {
        bench_error(c->w, "echo: more bytes than were sent");
        pd->got = 0;
    }
    return len;
}

static void st_close(ax_conn *h, int reason)
{
    bconn *c = ax_conn_data(h);
    if (!c) return;
    closed_why(c, c->up ? "closed" : "connect", reason == 0 && bench_running() ? AX_EOF : reason);
}

static const ax_conn_cbs st_cbs = {.on_open = st_open, .on_data = st_data, .on_close = st_close};

static int st_setup(bench_worker *w)
{
    const bench_cfg *cfg = w->cfg;
    ax_conn_opts co = {.tls = cfg->tls_ctx, .output_cap = 64u << 20};
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        stream_pd *pd = calloc(1, sizeof(*pd));
        if (!pd) return AX_ENOMEM;
        c->pd = pd;
        pd->msg = malloc(cfg->size);
        if (!pd->msg) return AX_ENOMEM;
        for (size_t k = 0; k < cfg->size; k++)
            pd->msg[k] = (char)('a' + (k % 26));
        int err = 0;
        c->h = ax_connect(w->loop, cfg->target, &st_cbs, &co, c, &err);
        if (!c->h) closed_why(c, "connect", err);
    }
    return 0;
}

static int st_send(bconn *c, uint64_t seq, uint64_t ts)
{
    (void)seq;
    (void)ts;
    stream_pd *pd = c->pd;
    size_t size = c->w->cfg->size;
    bench_bytes(c->w, 0, size);
    int rc = ax_conn_write(c->h, pd->msg, size);
    return rc < 0 ? rc : 0;
}

static void st_shutdown(bench_worker *w)
{
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->h) {
            ax_conn *h = c->h;
            ax_conn_set_data(h, NULL);
            ax_conn_abort(h, 0);
        }
        stream_pd *pd = c->pd;
        if (pd) free(pd->msg);
        free(pd);
        c->pd = NULL;
        c->h = NULL;
    }
}

const bench_ops bench_stream_ops = {.setup = st_setup, .send = st_send, .shutdown = st_shutdown};

/* ---- UDP ------------------------------------------------------------------ */

static void udp_recv(ax_udp *u, const char *data, size_t len, const ax_addr *from)
{
    (void)from;
    bconn *c = ax_udp_data(u);
    if (!c) return;
    bench_bytes(c->w, len, 0);
    uint64_t seq;
    if (len < sizeof seq) {
        bench_error(c->w, "udp: a datagram too short to be ours");
        return;
    }
    memcpy(&seq, data, sizeof seq);
    bench_complete(c, seq, true);
}

static int udp_setup(bench_worker *w)
{
    const bench_cfg *cfg = w->cfg;
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        stream_pd *pd = calloc(1, sizeof(*pd));
        if (!pd) return AX_ENOMEM;
        c->pd = pd;
        pd->msg = calloc(1, cfg->size);
        if (!pd->msg) return AX_ENOMEM;
        int err = 0;
        c->h = ax_udp_connect(w->loop, cfg->target, udp_recv, NULL, c, &err);
        if (!c->h) {
            closed_why(c, "udp", err);
            continue;
        }
        bench_conn_up(c);
    }
    return 0;
}

static int udp_send(bconn *c, uint64_t seq, uint64_t ts)
{
    (void)ts;
    stream_pd *pd = c->pd;
    size_t size = c->w->cfg->size;
    memcpy(pd->msg, &seq, sizeof seq);
    bench_bytes(c->w, 0, size);
    int rc = ax_udp_send(c->h, NULL, pd->msg, size);
    return rc < 0 ? rc : 0;
}

static void udp_shutdown(bench_worker *w)
{
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->h) ax_udp_close(c->h);
        stream_pd *pd = c->pd;
        if (pd) free(pd->msg);
        free(pd);
        c->pd = NULL;
        c->h = NULL;
    }
}

const bench_ops bench_udp_ops = {.setup = udp_setup, .send = udp_send, .shutdown = udp_shutdown};
