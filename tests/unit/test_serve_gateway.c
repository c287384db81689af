/* test_serve_gateway.c: the gateway interface of `axon serve` (gateway.h)
 * from the outside: a gateway the server has never heard of, defined here
 * and nowhere else, is listed in a registry beside the built-in ones; the
 * server starts it on its URL, /metrics (over HTTP, as a client sees it)
 * and the banner list it, and shutdown says goodbye, waits for its
 * connections and frees it.  No server code knows its name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>

#include "hub/server.h"
#include "runner.h"
#include "testutil.h"

/* ---- a trivial gateway: greets, says bye at shutdown ------------------------------------ */

#define GW_GREET GW_COUNT /* its counters: after the built-in ones */
#define GREET_MAX 8

typedef struct greet {
    serve *sv;
    ax_listener *ls;
    ax_conn *conns[GREET_MAX];
} greet;

static struct {
    int started, stopped, aborted, freed;
    char url[SERVE_URL_LEN];
} seen;

static void greet_open(ax_conn *c)
{
    greet *g = ax_conn_data(c);
    for (int i = 0; i < GREET_MAX; i++)
        if (!g->conns[i]) {
            g->conns[i] = c;
            GW_ADD(g->sv->gw[GW_GREET].conns, 1);
            GW_ADD(g->sv->gw[GW_GREET].accepted, 1);
            GW_ADD(g->sv->gw[GW_GREET].bytes_out, 6);
            ASSERT(ax_conn_write(c, "hello\n", 6) >= 0);
            return;
        }
    ax_conn_close(c);
}

static void greet_close(ax_conn *c, int reason)
{
    greet *g = ax_conn_data(c);
    (void)reason;
    for (int i = 0; i < GREET_MAX; i++)
        if (g->conns[i] == c) {
            g->conns[i] = NULL;
            GW_SUB(g->sv->gw[GW_GREET].conns, 1);
        }
}

static const ax_conn_cbs greet_cbs = {.on_open = greet_open, .on_close = greet_close};

static const char *greet_url(const serve_cfg *c)
{
    (void)c;
    return "tcp://127.0.0.1:0"; /* a real gateway reads a field of serve_cfg */
}

static void *greet_start(serve *sv, const char *url, char *why, size_t why_len)
{
    greet *g = calloc(1, sizeof(*g));
    int err = 0;
    seen.started++;
    snprintf(seen.url, sizeof seen.url, "%s", url);
    if (g) g->sv = sv;
    if (g && !(g->ls = ax_listen(sv->loop, url, &greet_cbs, NULL, g, &err))) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        free(g);
        return NULL;
    }
    return g;
}

static void greet_stop(void *vg)
{
    greet *g = vg;
    seen.stopped++;
    ax_listener_close(g->ls);
    g->ls = NULL;
    for (int i = 0; i < GREET_MAX; i++)
        if (g->conns[i]) {
            int rc = ax_conn_write(g->conns[i], "bye\n", 4);
            (void)rc; /* closed next either way */
            ax_conn_close(g->conns[i]);
        }
}

static void greet_abort(void *vg)
{
    greet *g = vg;
    seen.aborted++;
    for (int i = 0; i < GREET_MAX; i++)
        if (g->conns[i]) ax_conn_abort(g->conns[i], AX_ECLOSED);
}

static void greet_free(void *g)
{
    seen.freed++;
    free(g);
}

static size_t greet_count(const void *vg)
{
    const greet *g = vg;
    size_t n = 0;
    for (int i = 0; i < GREET_MAX; i++)
        n += g->conns[i] != NULL;
    return n;
}

static const char *greet_addr(void *vg, char *buf, size_t len)
{
    greet *g = vg;
    return g->ls ? ax_addr_format(ax_listener_addr(g->ls), buf, len) : NULL;
}

static void greet_hints(void *g, FILE *out)
{
    char a[AX_ADDR_STRLEN];
    if (greet_addr(g, a, sizeof a)) fprintf(out, "axon serve: greetings     nc %s\n", a);
}

static const gw_ops greet_gateway = {.name = "greet",
                                     .url = greet_url,
                                     .start = greet_start,
                                     .stop = greet_stop,
                                     .abort = greet_abort,
                                     .free = greet_free,
                                     .count = greet_count,
                                     .addr = greet_addr,
                                     .hints = greet_hints};

/* ---- the server with it ----------------------------------------------------------------- */

static const gw_ops *registry[GW_COUNT + 1];
static serve_cfg cfg;
static gw_stats stats[GW_COUNT + 1];
static ax_http_stats http_stats;

static void setup(serve *sv)
{
    memcpy(registry, serve_registry, sizeof serve_registry);
    registry[GW_GREET] = &greet_gateway; /* the one line a registry gets */
    snprintf(cfg.http_url, sizeof cfg.http_url, "tcp://127.0.0.1:0");
    cfg.max_payload = 1u << 20;
    cfg.max_line = 4096;
    cfg.threads = 1;
    cfg.gateways = registry;
    cfg.ngateways = GW_COUNT + 1;
    static hub_rule rules[] = {{"#", 100, 0, HUB_DISCONNECT}};
    hub_opts ho = {.rules = rules, .nrules = 1, .sub_budget = 1u << 20, .max_payload = 1u << 20};
    char why[256] = "";
    ax_loop *loop = tu_loop();
    hub_bind_loop(loop);
    *sv = (serve){.loop = loop, .cfg = &cfg, .gw = stats, .http_stats = &http_stats};
    sv->hub = hub_new(loop, &ho, why, sizeof why);
    ASSERT(sv->hub != NULL);
}

/* GET path from the HTTP gateway of sv, the loop running meanwhile. */
static void http_get(serve *sv, const char *path, char *buf, size_t cap)
{
    char a[AX_ADDR_STRLEN], req[256];
    ax_addr addr;
    ASSERT(gw_http_gateway.addr(sv->inst[GW_HTTP], a, sizeof a) != NULL);
    ASSERT_EQ(ax_addr_parse(a, &addr, NULL, 0), 0);
    int fd = tu_connect(&addr, 0);
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    tu_write_all(fd, req, (size_t)n);
    ssize_t got = tu_loop_read_to_eof(sv->loop, fd, buf, cap - 1, 5000);
    ASSERT(got > 0);
    buf[got] = '\0';
    close(fd);
}

TEST_TIMEOUT(serve_gateway_plugin, 20)
{
    serve sv;
    char why[256] = "", a[AX_ADDR_STRLEN], buf[16384];
    setup(&sv);
    ASSERT(serve_cfg_listens(&cfg));
    ASSERT_EQ(serve_gateways_start(&sv, why, sizeof why), 0);
    ASSERT_EQ(seen.started, 1);
    ASSERT(strcmp(seen.url, "tcp://127.0.0.1:0") == 0);
    ASSERT(sv.inst[GW_GREET] != NULL && sv.inst[GW_HTTP] != NULL);
    ASSERT(sv.inst[GW_LINE] == NULL); /* its setting is off */

    /* a client of the new gateway */
    ax_addr addr;
    ASSERT(greet_gateway.addr(sv.inst[GW_GREET], a, sizeof a) != NULL);
    ASSERT_EQ(ax_addr_parse(a, &addr, NULL, 0), 0);
    int fd = tu_connect(&addr, 0);
    RUN_UNTIL(sv.loop, serve_gateways_count(&sv) == 1, 5000);
    ASSERT_EQ(tu_loop_read_n(sv.loop, fd, buf, 6, 5000), 6);
    ASSERT(memcmp(buf, "hello\n", 6) == 0);

    /* /metrics lists it after the built-in gateways, with its counters */
    http_get(&sv, "/metrics", buf, sizeof buf);
    ASSERT(strstr(buf, "HTTP/1.1 200") == buf);
    char *line = strstr(buf, "axon_connections{gateway=\"line\"} 0\n");
    char *ws = strstr(buf, "axon_connections{gateway=\"websocket\"} 0\n");
    char *mine = strstr(buf, "axon_connections{gateway=\"greet\"} 1\n");
    ASSERT(line && ws && mine && line < ws && ws < mine);
    ASSERT(strstr(buf, "axon_bytes_out_total{gateway=\"greet\"} 6\n") != NULL);
    ASSERT(strstr(buf, "axon_connections_accepted_total{gateway=\"greet\"} 1\n") != NULL);

    /* the banner: the HTTP gateway first, then it */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ASSERT(out != NULL);
    serve_hints(&sv, out);
    fclose(out);
    char want[256];
    snprintf(want, sizeof want, "axon serve: greetings     nc %s\n", a);
    char *http = strstr(text, "axon serve: chat page"), *hint = strstr(text, want);
    ASSERT(http && hint && http < hint);
    ASSERT(strstr(text, "axon serve: Ctrl-C stops\n") != NULL);
    free(text);

    /* shutdown: goodbye, the client closes, nothing to abort, freed */
    serve_gateways_stop(&sv);
    ASSERT_EQ(seen.stopped, 1);
    ASSERT_EQ(tu_loop_read_n(sv.loop, fd, buf, 4, 5000), 4);
    ASSERT(memcmp(buf, "bye\n", 4) == 0);
    close(fd);
    RUN_UNTIL(sv.loop, serve_gateways_count(&sv) == 0, 5000);
    serve_gateways_abort(&sv);
    ASSERT_EQ(seen.aborted, 1);
    serve_gateways_free(&sv);
    ASSERT_EQ(seen.freed, 1);
    ASSERT(sv.inst[GW_GREET] == NULL);
    hub_free(sv.hub);
    ax_loop_free(sv.loop);
}

/* A gateway that cannot listen stops the start-up with its sentence;
 * the ones after it are not started, and what did start is freed. */
TEST_TIMEOUT(serve_gateway_start_fails, 20)
{
    serve sv;
    tu_server busy;
    char why[256] = "";
    setup(&sv);
    tu_echo_listen(&busy, sv.loop, "tcp://127.0.0.1:0", NULL);
    snprintf(cfg.udp_url, sizeof cfg.udp_url, "udp://127.0.0.1:0");
    snprintf(cfg.http_url, sizeof cfg.http_url, "%s", busy.url);
    ASSERT_EQ(serve_gateways_start(&sv, why, sizeof why), -1);
    ASSERT(strstr(why, "cannot listen on tcp://127.0.0.1:") == why);
    ASSERT(sv.inst[GW_UDP] != NULL); /* before it in the registry */
    ASSERT_EQ(seen.started, 0);      /* after it */
    serve_gateways_free(&sv);
    ASSERT(sv.inst[GW_UDP] == NULL);
    ax_listener_close(busy.ls);
    hub_free(sv.hub);
    ax_loop_free(sv.loop);
}
