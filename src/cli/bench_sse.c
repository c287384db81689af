/* bench_sse.c: `axon bench sse://HOST:PORT`: fan-out through Server-Sent
 * Events: -S subscribers per topic hold GET /sse?topic=PREFIX<i> streams,
 * publisher i sends POST /api/publish/PREFIX<i> on a keep-alive
 * connection (pipelined up to the window) and counts the 2xx answer as the
 * ack.  Those are the hub's paths (docs/protocol.md), whose events carry
 * the payload in a JSON envelope; --sse-sub and --sse-pub name any other
 * server's (nchan's /sub/{topic} and /pub/{topic}), whose events' data is
 * the payload as posted. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define LINE_MAX_BYTES 65536

typedef struct sse_sub {
    bench_worker *w;
    ax_conn *h;
    bench_resp *resp;
    int pub;
    uint64_t next;
    bool ready;
    char *line; /* the event line being read */
    size_t len;
} sse_sub;

typedef struct sse_pub {
    bench_resp *resp;
    uint64_t acked; /* answers so far: the seq the next answer is for */
    char *buf;
} sse_pub;

typedef struct sse_wd {
    sse_sub *subs;
    int nsubs;
} sse_wd;

/* ---- subscribers ------------------------------------------------------------ */

static void sub_line(sse_sub *s, const char *p, size_t n)
{
    int pub;
    uint64_t seq, ts;
    if (n < 5 || memcmp(p, "data:", 5) != 0) return;
    /* Any server: the event's data is the payload as published. */
    size_t sp = n > 5 && p[5] == ' ' ? 6 : 5;
    if (bench_payload_parse(p + sp, n - sp, &pub, &seq, &ts)) {
        bconn *c = pub == s->pub ? bench_pub(s->w, pub) : NULL;
        if (c)
            bench_deliver(c, &s->next, seq, ts);
        else
            bench_error(s->w, "sse: a message that is not ours");
        return;
    }
    /* The hub: the payload inside its JSON envelope. */
    const char *pl = memmem(p, n, "\"payload\":\"", 11);
    if (!pl || !memmem(p, n, "\"type\":\"message\"", 16)) return;
    pl += 11;
    if (!bench_payload_parse(pl, n - (size_t)(pl - p), &pub, &seq, &ts) || pub != s->pub) {
        bench_error(s->w, "sse: a message that is not ours");
        return;
    }
    bconn *c = bench_pub(s->w, pub);
    if (c) bench_deliver(c, &s->next, seq, ts);
}

static void sub_body(void *ud, const char *p, size_t n)
{
    sse_sub *s = ud;
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (s->len + take > LINE_MAX_BYTES) {
            bench_error(s->w, "sse: a line too long");
            s->len = 0;
        } else {
            memcpy(s->line + s->len, p, take);
            s->len += take;
        }
        if (!nl) return;
        size_t l = s->len;
        if (l && s->line[l - 1] == '\r') l--;
        sub_line(s, s->line, l);
        s->len = 0;
        p += take + 1;
        n -= take + 1;
    }
}

static void sub_head(void *ud, int status)
{
    sse_sub *s = ud;
    if (status != 200) {
        char why[48];
        snprintf(why, sizeof why, "sse: subscribe answered %d", status);
        bench_error(s->w, why);
        return;
    }
    s->ready = true;
    bench_sub_ready(s->w);
}

static void sub_done(void *ud, int status, bool keep)
{
    (void)status;
    (void)keep;
    sse_sub *s = ud;
    if (bench_running()) bench_error(s->w, "sse: the stream ended");
}

static const bench_resp_cbs sub_rcbs = {
    .on_head = sub_head, .on_body = sub_body, .on_done = sub_done};

static void sub_open(ax_conn *h)
{
    sse_sub *s = ax_conn_data(h);
    const bench_cfg *cfg = s->w->cfg;
    char req[1400], path[1024];
    bench_topic_path(path, sizeof path, cfg->sse_sub, cfg->topic, s->pub);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n", path,
                     cfg->host, cfg->port);
    if (ax_conn_write(h, req, (size_t)n) < 0) bench_error(s->w, "sse: send failed");
}

static size_t sub_data(ax_conn *h, const char *data, size_t len)
{
    sse_sub *s = ax_conn_data(h);
    bench_bytes(s->w, len, 0);
    long used = bench_resp_feed(s->resp, data, len, &sub_rcbs, s);
    if (used < 0) {
        bench_error(s->w, "sse: a malformed response");
        ax_conn_abort(h, AX_EPROTO);
        return len;
    }
    return (size_t)used;
}

static void sub_close(ax_conn *h, int reason)
{
    sse_sub *s = ax_conn_data(h);
    if (!s) return;
    s->h = NULL;
    if (!s->ready) s->w->subs_wanted--;
    if (bench_running() || !s->ready) {
        char why[96];
        snprintf(why, sizeof why, "subscriber %s: %s", s->ready ? "closed" : "connect",
                 ax_strerror(reason ? reason : AX_EOF));
        bench_error(s->w, why);
    }
}

static const ax_conn_cbs sub_cbs = {
    .on_open = sub_open, .on_data = sub_data, .on_close = sub_close};

/* ---- publishers -------------------------------------------------------------- */

static void pub_done(void *ud, int status, bool keep)
{
    (void)keep;
    bconn *c = ud;
    sse_pub *p = c->pd;
    if (status < 200 || status > 299) {
        char why[48];
        snprintf(why, sizeof why, "publish: HTTP %d", status);
        bench_error(c->w, why);
    }
    bench_acked(c, p->acked++);
}

static const bench_resp_cbs pub_rcbs = {.on_done = pub_done};

static size_t pub_data(ax_conn *h, const char *data, size_t len)
{
    bconn *c = ax_conn_data(h);
    return bench_http_data(h, ((sse_pub *)c->pd)->resp, data, len, &pub_rcbs, "publish");
}

static void pub_close(ax_conn *h, int reason)
{
    bconn *c = ax_conn_data(h);
    if (!c) return;
    char why[96];
    snprintf(why, sizeof why, "%s: %s", c->up ? "closed" : "connect",
             ax_strerror(reason ? reason : AX_EOF));
    bench_conn_down(c, c->up && !bench_running() ? NULL : why);
}

static const ax_conn_cbs pub_cbs = {
    .on_open = bench_http_open, .on_data = pub_data, .on_close = pub_close};

static int s_setup(bench_worker *w)
{
    const bench_cfg *cfg = w->cfg;
    sse_wd *wd = calloc(1, sizeof(*wd));
    if (!wd) return AX_ENOMEM;
    w->pd = wd;
    wd->nsubs = w->nconns * cfg->subs;
    wd->subs = calloc((size_t)wd->nsubs + 1, sizeof(*wd->subs));
    if (!wd->subs) return AX_ENOMEM;
    w->subs_wanted = wd->nsubs;
    ax_conn_opts co = {.tls = cfg->tls_ctx, .output_cap = 64u << 20};
    for (int i = 0; i < wd->nsubs; i++) {
        sse_sub *s = &wd->subs[i];
        s->w = w;
        s->pub = w->conns[i / cfg->subs]->index;
        s->resp = bench_resp_new();
        s->line = malloc(LINE_MAX_BYTES);
        if (!s->resp || !s->line) return AX_ENOMEM;
        int err = 0;
        s->h = ax_connect(w->loop, cfg->target, &sub_cbs, &co, s, &err);
        if (!s->h) {
            char why[96];
            snprintf(why, sizeof why, "subscriber connect: %s", ax_strerror(err));
            bench_error(w, why);
            w->subs_wanted--;
        }
    }
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        sse_pub *p = calloc(1, sizeof(*p));
        if (!p) return AX_ENOMEM;
        c->pd = p;
        p->resp = bench_resp_new();
        p->buf = malloc(cfg->size + 1600);
        if (!p->resp || !p->buf) return AX_ENOMEM;
        int err = 0;
        c->h = ax_connect(w->loop, cfg->target, &pub_cbs, &co, c, &err);
        if (!c->h) {
            char why[96];
            snprintf(why, sizeof why, "connect: %s", ax_strerror(err));
            bench_conn_down(c, why);
        }
    }
    return 0;
}

static int s_send(bconn *c, uint64_t seq, uint64_t ts)
{
    const bench_cfg *cfg = c->w->cfg;
    sse_pub *p = c->pd;
    char body[1024];
    char *pl = cfg->size + 64 <= sizeof body ? body : malloc(cfg->size + 64);
    if (!pl) return AX_ENOMEM;
    size_t n = bench_payload(pl, cfg->size + 64, cfg->size, c->index, seq, ts);
    char path[1024];
    bench_topic_path(path, sizeof path, cfg->sse_pub, cfg->topic, c->index);
    int hn = snprintf(p->buf, 1500,
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: text/plain\r\nContent-Length: %zu\r\n\r\n",
                      path, cfg->host, cfg->port, n);
    memcpy(p->buf + hn, pl, n);
    if (pl != body) free(pl);
    bench_bytes(c->w, 0, (size_t)hn + n);
    int rc = ax_conn_write(c->h, p->buf, (size_t)hn + n);
    return rc < 0 ? rc : 0;
}

static void s_shutdown(bench_worker *w)
{
    sse_wd *wd = w->pd;
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->h) {
            ax_conn_set_data(c->h, NULL);
            ax_conn_abort(c->h, 0);
            c->h = NULL;
        }
        sse_pub *p = c->pd;
        if (p) {
            bench_resp_free(p->resp);
            free(p->buf);
        }
        free(p);
        c->pd = NULL;
    }
    if (!wd) return;
    for (int i = 0; i < wd->nsubs; i++) {
        sse_sub *s = &wd->subs[i];
        if (s->h) {
            ax_conn_set_data(s->h, NULL);
            ax_conn_abort(s->h, 0);
        }
        bench_resp_free(s->resp);
        free(s->line);
    }
    free(wd->subs);
    free(wd);
    w->pd = NULL;
}

const bench_ops bench_sse_ops = {
    .setup = s_setup, .send = s_send, .shutdown = s_shutdown, .fanout = true, .acked = true};
