/* bench_ws.c: `axon bench ws://...`: WebSocket echo (a request is one
 * binary message of -s bytes, the reply the message echoed), and with
 * --pubsub the hub's JSON envelope (docs/protocol.md): publishers send
 * {"type":"publish"} and wait for "ok", subscribers get {"type":"message"}
 * envelopes of their topic. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon/ws.h>

#include "bench.h"

static void ws_down(bconn *c, bool was_up, int code)
{
    char why[96];
    if (!bench_running() && was_up) {
        bench_conn_down(c, NULL);
        return;
    }
    snprintf(why, sizeof why, "%s: websocket close %d", was_up ? "closed" : "connect", code);
    bench_conn_down(c, why);
}

/* ---- echo ------------------------------------------------------------------ */

static void e_open(ax_ws *ws)
{
    bconn *c = ax_ws_data(ws);
    bench_conn_up(c);
    bench_pump(c);
}

static void e_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    (void)data;
    (void)binary;
    bconn *c = ax_ws_data(ws);
    bench_bytes(c->w, len, 0);
    if (c->inflight > 0)
        bench_reply(c);
    else
        bench_error(c->w, "websocket: a message nobody asked for");
}

static void e_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    (void)reason;
    (void)len;
    bconn *c = ax_ws_data(ws);
    if (c) ws_down(c, c->up, code);
}

static const ax_ws_cbs e_cbs = {.on_open = e_open, .on_message = e_message, .on_close = e_close};

static int ws_connect_conns(bench_worker *w, const ax_ws_cbs *cbs)
{
    const bench_cfg *cfg = w->cfg;
    ax_ws_opts o = {.tls = cfg->tls_ctx, .output_cap = 64u << 20};
    char url[2400];
    snprintf(url, sizeof url, "%s://%s:%d%s", cfg->tls ? "wss" : "ws", cfg->host, cfg->port,
             cfg->path);
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        int err = 0;
        c->h = ax_ws_connect(w->loop, url, cbs, &o, c, &err);
        if (!c->h) {
            char why[96];
            snprintf(why, sizeof why, "connect: %s", ax_strerror(err));
            bench_conn_down(c, why);
        }
    }
    return 0;
}

static void *msg_buf(bench_worker *w, size_t size)
{
    if (!w->pd) w->pd = calloc(1, size + 256);
    return w->pd;
}

static int e_setup(bench_worker *w)
{
    char *m = msg_buf(w, w->cfg->size);
    if (!m) return AX_ENOMEM;
    memset(m, 'x', w->cfg->size);
    return ws_connect_conns(w, &e_cbs);
}

static int e_send(bconn *c, uint64_t seq, uint64_t ts)
{
    (void)seq;
    (void)ts;
    size_t size = c->w->cfg->size;
    bench_bytes(c->w, 0, size);
    int rc = ax_ws_send_binary(c->h, c->w->pd, size);
    return rc < 0 ? rc : 0;
}

static void close_all(bench_worker *w)
{
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->h) {
            ax_ws_set_data(c->h, NULL);
            ax_conn_abort(ax_ws_conn(c->h), 0);
            c->h = NULL;
        }
    }
}

static void e_shutdown(bench_worker *w)
{
    close_all(w);
    free(w->pd);
    w->pd = NULL;
}

const bench_ops bench_ws_ops = {.setup = e_setup, .send = e_send, .shutdown = e_shutdown};

/* ---- the hub's envelope ------------------------------------------------------ */

typedef struct hub_sub {
    bench_worker *w;
    ax_ws *ws;
    int pub;       /* global publisher index = topic index */
    uint64_t next; /* the seq expected next */
    bool ready, dead;
} hub_sub;

typedef struct hub_wd {
    char *buf; /* a publish being encoded */
    hub_sub *subs;
    int nsubs;
} hub_wd;

/* The number after `"key":` in a JSON text, or -1. */
static long long json_num(const char *p, size_t len, const char *key)
{
    char pat[40];
    int n = snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = memmem(p, len, pat, (size_t)n);
    if (!at) return -1;
    at += n;
    long long v = 0;
    const char *end = p + len;
    if (at >= end || *at < '0' || *at > '9') return -1;
    while (at < end && *at >= '0' && *at <= '9')
        v = v * 10 + (*at++ - '0');
    return v;
}

static bool json_type(const char *p, size_t len, const char *type)
{
    char pat[48];
    int n = snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    return memmem(p, len, pat, (size_t)n) != NULL;
}

static void hp_open(ax_ws *ws)
{
    bconn *c = ax_ws_data(ws);
    bench_conn_up(c);
    bench_pump(c);
}

static void hp_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    (void)binary;
    bconn *c = ax_ws_data(ws);
    bench_bytes(c->w, len, 0);
    long long id = json_num(data, len, "id");
    if (json_type(data, len, "error")) bench_error(c->w, "hub: an error reply to a publish");
    if (id >= 0) bench_acked(c, (uint64_t)id);
}

static const ax_ws_cbs hp_cbs = {.on_open = hp_open, .on_message = hp_message, .on_close = e_close};

static void hs_open(ax_ws *ws)
{
    hub_sub *s = ax_ws_data(ws);
    char req[600];
    int n = snprintf(req, sizeof req, "{\"type\":\"subscribe\",\"topic\":\"%s%d\",\"id\":1}",
                     s->w->cfg->topic, s->pub);
    if (ax_ws_send_text(ws, req, (size_t)n) < 0) bench_error(s->w, "subscribe: send failed");
}

static void hs_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    (void)binary;
    hub_sub *s = ax_ws_data(ws);
    bench_bytes(s->w, len, 0);
    const char *p = data;
    if (!s->ready) {
        if (json_type(p, len, "ok")) {
            s->ready = true;
            bench_sub_ready(s->w);
        } else if (json_type(p, len, "error")) {
            bench_error(s->w, "subscribe: refused");
        }
        return;
    }
    if (!json_type(p, len, "message")) return;
    const char *pl = memmem(p, len, "\"payload\":\"", 11);
    int pub;
    uint64_t seq, ts;
    if (!pl || !bench_payload_parse(pl + 11, len - (size_t)(pl + 11 - p), &pub, &seq, &ts)) {
        bench_error(s->w, "hub: a message that is not ours");
        return;
    }
    bconn *c = bench_pub(s->w, pub);
    if (c && pub == s->pub)
        bench_deliver(c, &s->next, seq, ts);
    else
        bench_error(s->w, "hub: a message from another topic");
}

static void hs_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    (void)reason;
    (void)len;
    hub_sub *s = ax_ws_data(ws);
    if (!s) return;
    s->ws = NULL;
    s->dead = true;
    if (!bench_running() && s->ready) return;
    char why[96];
    snprintf(why, sizeof why, "subscriber %s: websocket close %d", s->ready ? "closed" : "connect",
             code);
    bench_error(s->w, why);
    if (!s->ready) s->w->subs_wanted--; /* do not wait for it */
}

static const ax_ws_cbs hs_cbs = {
    .on_open = hs_open, .on_message = hs_message, .on_close = hs_close};

static int h_setup(bench_worker *w)
{
    const bench_cfg *cfg = w->cfg;
    hub_wd *wd = calloc(1, sizeof(*wd));
    if (!wd) return AX_ENOMEM;
    w->pd = wd;
    wd->buf = malloc(cfg->size + 1024);
    wd->nsubs = w->nconns * cfg->subs;
    wd->subs = calloc((size_t)wd->nsubs + 1, sizeof(*wd->subs));
    if (!wd->buf || !wd->subs) return AX_ENOMEM;
    w->subs_wanted = wd->nsubs;
    ax_ws_opts o = {.tls = cfg->tls_ctx, .output_cap = 64u << 20};
    char url[2400];
    snprintf(url, sizeof url, "%s://%s:%d%s", cfg->tls ? "wss" : "ws", cfg->host, cfg->port,
             cfg->path);
    for (int i = 0; i < wd->nsubs; i++) {
        hub_sub *s = &wd->subs[i];
        s->w = w;
        s->pub = w->conns[i / cfg->subs]->index;
        int err = 0;
        s->ws = ax_ws_connect(w->loop, url, &hs_cbs, &o, s, &err);
        if (!s->ws) {
            char why[96];
            snprintf(why, sizeof why, "subscriber connect: %s", ax_strerror(err));
            bench_error(w, why);
            s->dead = true;
            w->subs_wanted--;
        }
    }
    return ws_connect_conns(w, &hp_cbs);
}

static int h_send(bconn *c, uint64_t seq, uint64_t ts)
{
    const bench_cfg *cfg = c->w->cfg;
    hub_wd *wd = c->w->pd;
    size_t cap = cfg->size + 1024;
    int n = snprintf(wd->buf, cap,
                     "{\"type\":\"publish\",\"id\":%llu,\"topic\":\"%s%d\",\"payload\":\"",
                     (unsigned long long)seq, cfg->topic, c->index);
    size_t len = (size_t)n;
    len += bench_payload(wd->buf + len, cap - len - 4, cfg->size, c->index, seq, ts);
    memcpy(wd->buf + len, "\"}", 2);
    len += 2;
    bench_bytes(c->w, 0, len);
    int rc = ax_ws_send_text(c->h, wd->buf, len);
    return rc < 0 ? rc : 0;
}

static void h_shutdown(bench_worker *w)
{
    close_all(w);
    hub_wd *wd = w->pd;
    if (!wd) return;
    for (int i = 0; i < wd->nsubs; i++)
        if (wd->subs[i].ws) {
            ax_ws_set_data(wd->subs[i].ws, NULL);
            ax_conn_abort(ax_ws_conn(wd->subs[i].ws), 0);
        }
    free(wd->subs);
    free(wd->buf);
    free(wd);
    w->pd = NULL;
}

const bench_ops bench_ws_hub_ops = {
    .setup = h_setup, .send = h_send, .shutdown = h_shutdown, .fanout = true, .acked = true};
