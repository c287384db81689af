/* test_hub_oom.c: a whole hub exchange with the allocator failing at each
 * of its allocations in turn (issue 16): a WebSocket client subscribes,
 * an HTTP client publishes, the WebSocket client gets the message, an SSE
 * client resumes from 0.  For every N: no crash, no hang, nothing leaked
 * (the counting allocator; ASan in `make san`), and every client gets an
 * answer it can read (a status, a frame, or the connection closed), never
 * silence. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <axon/axon.h>

#include "hub/server.h"
#include "runner.h"
#include "testutil.h"
#include "ws_testutil.h"

static const gw_ops *registry[GW_COUNT + 1];
static serve_cfg cfg;
static gw_stats stats[GW_COUNT + 1];
static ax_http_stats http_stats;

static void setup(serve *sv)
{
    memset(&cfg, 0, sizeof cfg);
    memset(stats, 0, sizeof stats);
    memcpy(registry, serve_registry, sizeof serve_registry);
    snprintf(cfg.http_url, sizeof cfg.http_url, "tcp://127.0.0.1:0");
    cfg.max_payload = 1u << 20;
    cfg.max_line = 4096;
    cfg.threads = 1;
    cfg.anonymous = 2; /* readwrite */
    cfg.gateways = registry;
    cfg.ngateways = GW_COUNT;
    static hub_rule rules[] = {{"#", 100, 0, HUB_DISCONNECT}};
    hub_opts ho = {.rules = rules, .nrules = 1, .sub_budget = 1u << 20, .max_payload = 1u << 20};
    char why[256] = "";
    ax_loop *loop = tu_loop();
    hub_bind_loop(loop);
    *sv = (serve){.loop = loop, .cfg = &cfg, .gw = stats, .http_stats = &http_stats};
    sv->hub = hub_new(loop, &ho, why, sizeof why);
    ASSERT(sv->hub != NULL);
    ASSERT_EQ(serve_gateways_start(sv, why, sizeof why), 0);
}

static void teardown(serve *sv)
{
    serve_gateways_stop(sv);
    uint64_t end = tu_now_ms() + 3000;
    while (serve_gateways_count(sv) && tu_now_ms() < end)
        ax_loop_run_once(sv->loop, 10);
    serve_gateways_abort(sv);
    tu_run_for(sv->loop, 5);
    serve_gateways_free(sv);
    hub_free(sv->hub);
    ax_loop_free(sv->loop);
}

/* Whether buf holds a whole HTTP response: its head and then the
 * Content-Length bytes, or the chunked body's last chunk.  A keep-alive
 * connection stays open after one, so the reader must not wait for EOF. */
static bool response_done(const char *buf)
{
    const char *body = strstr(buf, "\r\n\r\n");
    if (!body) return false;
    body += 4;
    const char *cl = strcasestr(buf, "\r\nContent-Length:");
    if (cl && cl < body) return strlen(body) >= strtoul(cl + 17, NULL, 10);
    return strstr(body, "\r\n0\r\n\r\n") != NULL || strncmp(body, "0\r\n\r\n", 5) == 0;
}

/* Read into buf until `needle` is in it, a whole response is, EOF (returns
 * what came, *eof set) or `ms` pass (*eof clear), the loop running
 * meanwhile. */
static size_t read_until(ax_loop *loop, int fd, const char *needle, char *buf, size_t cap, int ms,
                         bool *eof)
{
    size_t got = 0;
    uint64_t end = tu_now_ms() + (uint64_t)ms;
    *eof = false;
    buf[0] = '\0';
    while (tu_now_ms() < end && !strstr(buf, needle) && !response_done(buf)) {
        ax_loop_run_once(loop, 5);
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 0) != 1) continue;
        ssize_t n = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
        if (n <= 0) {
            *eof = true;
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (got == cap - 1) break;
    }
    return got;
}

static int status_of(const char *resp)
{
    int st = 0;
    return sscanf(resp, "HTTP/1.1 %d", &st) == 1 ? st : 0;
}

typedef struct outcome {
    int ws_status, pub_status, sse_status;
    bool delivered, resumed;
} outcome;

static void fail_at(long n, const char *what, const char *detail)
{
    char d[300];
    snprintf(d, sizeof d, "allocation #%ld failing: %.200s", n, detail);
    ax_test_fail(__FILE__, __LINE__, what, d);
}

/* The exchange, allocation n after the set-up failing (once, or from
 * then on).  Returns true when no allocation failed. */
static bool exchange(long n, bool once, outcome *o)
{
    serve sv;
    setup(&sv);
    memset(o, 0, sizeof(*o));
    char a[AX_ADDR_STRLEN], buf[8192], head[2048];
    ax_addr addr;
    ASSERT(gw_http_gateway.addr(sv.inst[GW_HTTP], a, sizeof a) != NULL);
    ASSERT_EQ(ax_addr_parse(a, &addr, NULL, 0), 0);
    long fails0 = tu_alloc_failures();
    if (once)
        tu_alloc_fail_once_after(n);
    else
        tu_alloc_fail_after(n);
    bool eof;

    /* a WebSocket subscriber */
    int ws =
        wt_open_raw(sv.loop, &addr, "/ws",
                    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
                    &o->ws_status, head, sizeof head);
    static wt_frame f;
    bool subscribed = false;
    if (o->ws_status == 101) {
        const char *msg = "{\"type\":\"subscribe\",\"topic\":\"t/a\",\"id\":1}";
        wt_send(ws, 1, true, msg, strlen(msg));
        uint64_t t0 = tu_now_ms();
        do /* (after the welcome) */
            wt_read(sv.loop, ws, &f, 2000);
        while (f.op == 1 && memmem(f.data, f.len, "welcome", 7));
        if (f.op == -1 && tu_now_ms() - t0 >= 1900)
            fail_at(n, "a subscribe is answered", "nothing came");
        subscribed = f.op == 1 && memmem(f.data, f.len, "\"ok\"", 4);
        if (f.op == 1 && !subscribed && !memmem(f.data, f.len, "error", 5))
            fail_at(n, "a subscribe is answered ok or with an error", (char *)f.data);
    } else if (o->ws_status && o->ws_status < 500) {
        fail_at(n, "the WebSocket handshake is 101 or a server error", head);
    }

    /* an HTTP publish */
    int fd = tu_connect(&addr, 0);
    const char *req = "POST /api/publish/t/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                      "Connection: close\r\n\r\nhi";
    tu_write_all(fd, req, strlen(req));
    size_t got = read_until(sv.loop, fd, "\n\n\n\n\n", buf, sizeof buf, 3000, &eof);
    if (!eof && !response_done(buf)) fail_at(n, "the publish is answered", got ? buf : "(nothing)");
    o->pub_status = status_of(buf);
    if (got && o->pub_status != 200 && o->pub_status < 500)
        fail_at(n, "the publish is 200 or a server error", buf);
    close(fd);

    /* the subscriber gets it, or its connection ends */
    if (subscribed && o->pub_status == 200) {
        uint64_t t0 = tu_now_ms();
        do /* (after presence and the like) */
            wt_read(sv.loop, ws, &f, 2000);
        while (f.op == 1 && !memmem(f.data, f.len, "\"hi\"", 4) &&
               !memmem(f.data, f.len, "error", 5));
        o->delivered = f.op == 1 && memmem(f.data, f.len, "hi", 2);
        if (f.op != -1 && !o->delivered && f.op != 8)
            fail_at(n, "the subscriber gets the message or a close", (char *)f.data);
        if (f.op == -1 && tu_now_ms() - t0 >= 1900) /* not EOF: silence */
            fail_at(n, "the subscriber gets the message or a close", "nothing came");
    }
    if (ws >= 0) close(ws);

    /* an SSE client resumes from the beginning */
    fd = tu_connect(&addr, 0);
    req = "GET /sse?topic=t/a&since=0 HTTP/1.1\r\nHost: x\r\n\r\n";
    tu_write_all(fd, req, strlen(req));
    got = read_until(sv.loop, fd, o->pub_status == 200 ? "hi" : "\r\n\r\n", buf, sizeof buf, 2000,
                     &eof);
    if (!eof && strstr(buf, "event: error") && !response_done(buf)) /* then its end */
        read_until(sv.loop, fd, "0\r\n\r\n", buf + got, sizeof buf - got, 2000, &eof);
    o->sse_status = status_of(buf);
    if (!eof && !response_done(buf) && !strstr(buf, o->pub_status == 200 ? "hi" : "\r\n\r\n") &&
        o->sse_status < 500 && !strstr(buf, "event: error"))
        fail_at(n, "the SSE client gets the history, an error or the end", got ? buf : "silence");
    if (got && o->sse_status != 200 && o->sse_status < 500 && !strstr(buf, "event: error"))
        fail_at(n, "the SSE request is 200 or a server error", buf);
    o->resumed = strstr(buf, "hi") != NULL;
    close(fd);

    tu_alloc_fail_after(-1);
    bool clean = tu_alloc_failures() == fails0;
    teardown(&sv);
    return clean;
}

static void sweep(bool once)
{
    tu_alloc_install();
    int fds0 = tu_count_fds();
    long n, delivered = 0, refused = 0;
    outcome o;
    for (n = 0; n < 5000; n++) {
        bool clean = exchange(n, once, &o);
        if (tu_alloc_live_count() != 0) {
            char d[96];
            snprintf(d, sizeof d, "%ld blocks (%ld bytes) leaked", tu_alloc_live_count(),
                     tu_alloc_live_bytes());
            fail_at(n, "nothing leaks", d);
        }
        if (tu_fds_settle(fds0) != fds0) fail_at(n, "no descriptor leaks", "descriptors left open");
        delivered += o.delivered;
        refused += o.pub_status != 200;
        if (clean) break;
    }
    ASSERT(o.delivered && o.resumed); /* the clean run did it all */
    ASSERT(n > 20);                   /* failures were really injected */
    ASSERT(n < 5000);
    printf("# %ld allocation points; delivered in %ld runs, publish refused in %ld\n", n, delivered,
           refused);
}

TEST_TIMEOUT(hub_exchange_alloc_fail_once, 900)
{
    sweep(true);
}

TEST_TIMEOUT(hub_exchange_alloc_fail_from_n_on, 900)
{
    sweep(false);
}
