/* gw_sse.c: the hub as Server-Sent Events (GET /sse?topic=FILTER), mounted
 * on the HTTP gateway's server.  docs/protocol.md has the wire format.
 * A stream opened with a token ends when the token expires: a last
 * `event: error` says why, then the response ends (the client opens a new
 * stream with a new token, resuming with Last-Event-ID).
 *
 * An event is made once per message (ENC_SSE) and the same bytes are
 * queued on every SSE client with ax_http_write_slice(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "serve.h"

#define SSE_PING_MS 15000

typedef struct sse_client sse_client;
typedef struct gw_sse gw_sse;

struct gw_sse {
    serve *sv;
    ax_timer *ping;
    ax_timer *watch;  /* starts reading new streams, to notice when they close */
    ax_timer *expiry; /* ends the streams whose token has expired */
    sse_client *sse;  /* open event streams */
};

struct sse_client {
    gw_sse *g;
    ax_http_req *r;
    hub_sub *sub;
    sse_client *prev, *next;
    bool in_handler;   /* the response head is still batched: copy, don't share */
    bool watch;        /* reading is to be resumed once the handler is over */
    auth_identity *id; /* who it is; NULL: no auth configured */
};

static ax_slice *encode_sse(const hub_msg *m, void *ud)
{
    static const char *events[] = {"message", "join", "leave", "gap"};
    (void)ud;
    size_t n;
    char *j = serve_msg_json(m, &n);
    if (!j) return NULL;
    ax_slice *s = ax_slice_new(n + 64);
    if (s) {
        int k;
        if (m->kind == HUB_MSG)
            k = sprintf(ax_slice_data(s), "id: %llu\nevent: message\ndata: %s\n\n",
                        (unsigned long long)m->seq, j);
        else
            k = sprintf(ax_slice_data(s), "event: %s\ndata: %s\n\n", events[m->kind & 3], j);
        ax_slice_truncate(s, (size_t)k);
    }
    free(j);
    return s;
}

static bool sse_write(hub_sub *s, hub_msg *m, void *ud)
{
    sse_client *c = ud;
    (void)s;
    ax_slice *sl = hub_msg_encoding(m, ENC_SSE, encode_sse, NULL);
    if (!sl) {
        /* out of memory: a message lost without a word would leave a gap the
         * client never hears of; ending the connection says so (it resumes) */
        ax_conn_abort(ax_http_req_conn(c->r), AX_ENOMEM);
        return false;
    }
    gw_stats *st = &c->g->sv->gw[GW_SSE];
    GW_ADD(st->msgs_out, 1);
    GW_ADD(st->bytes_out, ax_slice_len(sl));
    int rc = c->in_handler ? ax_http_write(c->r, ax_slice_data(sl), ax_slice_len(sl))
                           : ax_http_write_slice(c->r, sl, 0, ax_slice_len(sl));
    return rc == 0;
}

static void sse_kick(hub_sub *s, const char *why, void *ud)
{
    sse_client *c = ud;
    (void)s;
    ax_log(AX_LOG_WARN, "sse client disconnected: %s", why);
    ax_conn_abort(ax_http_req_conn(c->r), AX_EOUTPUTCAP);
}

static const hub_sub_ops sse_ops = {sse_write, sse_kick};

static void sse_drain(ax_http_req *r, void *ud)
{
    sse_client *c = ud;
    (void)r;
    hub_sub_writable(c->sub);
}

static void sse_abort(ax_http_req *r, void *ud)
{
    sse_client *c = ud;
    (void)r;
    gw_sse *g = c->g;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->sse = c->next;
    if (c->next) c->next->prev = c->prev;
    GW_SUB(g->sv->gw[GW_SSE].conns, 1);
    hub_sub_free(c->sub);
    auth_identity_free(c->id);
    ax_free(c);
}

static void sse(ax_http_req *r, void *ud)
{
    gw_sse *g = ud;
    char filter[HUB_MAX_TOPIC + 1], v[32];
    if (!serve_http_method(r, "GET", "GET")) return;
    if (serve_http_query(r, "topic", filter, sizeof filter, false) < 1 ||
        !hub_filter_valid(filter, strlen(filter))) {
        serve_http_error(r, 400, "GET /sse?topic=<topic or filter>[&since=N]");
        return;
    }
    auth_identity *id = NULL;
    if (serve_http_identity(g->sv, r, &id) != 0) {
        serve_http_unauthorized(r);
        return;
    }
    if (id ? !auth_may_subscribe(id, filter) : !auth_private_may_subscribe(NULL, filter)) {
        auth_identity_free(id);
        serve_http_error(r, 403, "forbidden: you may not subscribe to this filter");
        return;
    }
    int64_t since = -1;
    size_t ll;
    const char *last = ax_http_req_header(r, "Last-Event-ID", &ll);
    if (last && ll && ll < 21)
        since = strtoll(last, NULL, 10);
    else if (serve_http_query(r, "since", v, sizeof v, true) > 0)
        since = strtoll(v, NULL, 10);
    sse_client *c = ax_calloc(1, sizeof(*c));
    if (c) c->sub = hub_sub_new(g->sv->hub, &sse_ops, c, NULL);
    if (!c || !c->sub) {
        ax_free(c);
        auth_identity_free(id);
        serve_http_error(r, 503, "out of memory");
        return;
    }
    c->id = id;
    if (id) hub_sub_set_identity(c->sub, id);
    c->g = g;
    c->r = r;
    c->next = g->sse;
    if (g->sse) g->sse->prev = c;
    g->sse = c;
    GW_ADD(g->sv->gw[GW_SSE].conns, 1);
    GW_ADD(g->sv->gw[GW_SSE].accepted, 1);
    ax_http_add_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    ax_http_add_header(r, "Cache-Control", "no-cache");
    ax_http_add_header(r, "X-Accel-Buffering", "no");
    ax_http_on_drain(r, sse_drain, c);
    ax_http_on_abort(r, sse_abort, c);
    ax_http_start(r, 200, -1);
    ax_http_write(r, "retry: 2000\n\n", 13);
    c->in_handler = true;
    int rc = hub_subscribe(c->sub, filter, since, false);
    c->in_handler = false;
    if (rc != 0) { /* (out of memory, too many topics): an error event, the end */
        char ev[200];
        int n =
            snprintf(ev, sizeof ev, "event: error\ndata: {\"type\":\"error\",\"error\":\"%s\"}\n\n",
                     hub_strerror(rc));
        ax_http_write(r, ev, (size_t)n);
        ax_http_on_abort(r, NULL, NULL);
        sse_abort(r, c);
        ax_http_end(r);
        return;
    }
    /* The server stops reading while a response is pending; an event
     * stream never ends, so read again (after this request's on_data) to
     * see the client go away at once instead of at the next ping. */
    c->watch = true;
    ax_timer_start(g->watch, 0, 0);
}

static void sse_watch(ax_timer *t, void *ud)
{
    gw_sse *g = ud;
    (void)t;
    for (sse_client *c = g->sse; c; c = c->next) {
        if (!c->watch) continue;
        c->watch = false;
        ax_conn_resume(ax_http_req_conn(c->r));
    }
}

/* Every second: end the streams whose token has expired. */
static void sse_expire(ax_timer *t, void *ud)
{
    gw_sse *g = ud;
    (void)t;
    int64_t now = (int64_t)time(NULL);
    for (sse_client *c = g->sse, *next; c; c = next) {
        next = c->next;
        if (!c->id || !auth_expired(c->id, now)) continue;
        static const char bye[] = "event: error\ndata: {\"type\":\"error\",\"error\":\"token "
                                  "expired\"}\n\n";
        ax_http_req *r = c->r;
        ax_http_write(r, bye, sizeof bye - 1);
        ax_http_on_abort(r, NULL, NULL);
        sse_abort(r, c); /* forget it, then end the response */
        ax_http_end(r);
    }
}

static void sse_ping(ax_timer *t, void *ud)
{
    gw_sse *g = ud;
    (void)t;
    for (sse_client *c = g->sse; c; c = c->next)
        ax_http_write(c->r, ": ping\n\n", 8);
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static void sse_free(void *vg)
{
    gw_sse *g = vg;
    ax_timer_free(g->ping);
    ax_timer_free(g->watch);
    ax_timer_free(g->expiry);
    while (g->sse) { /* before the server: its abort callbacks may come late */
        sse_client *c = g->sse;
        g->sse = c->next;
        ax_http_on_abort(c->r, NULL, NULL);
        GW_SUB(g->sv->gw[GW_SSE].conns, 1);
        hub_sub_free(c->sub);
        auth_identity_free(c->id);
        ax_free(c);
    }
    ax_free(g);
}

static void *sse_mount(serve *sv, ax_http_server *srv, char *why, size_t why_len)
{
    gw_sse *g = ax_calloc(1, sizeof(*g));
    int err = AX_ENOMEM;
    if (!g) goto fail;
    g->sv = sv;
    g->ping = ax_timer_new(sv->loop, sse_ping, g);
    g->watch = g->ping ? ax_timer_new(sv->loop, sse_watch, g) : NULL;
    g->expiry = g->watch ? ax_timer_new(sv->loop, sse_expire, g) : NULL;
    if (!g->expiry || (err = ax_http_route(srv, NULL, "/sse", sse, g))) goto fail;
    ax_timer_start(g->ping, SSE_PING_MS, SSE_PING_MS);
    if (sv->auth) ax_timer_start(g->expiry, 1000, 1000);
    return g;
fail:
    snprintf(why, why_len, "cannot add Server-Sent Events: %s", ax_strerror(err));
    if (g) sse_free(g);
    return NULL;
}

const gw_ops gw_sse_gateway = {.name = "sse", .mount = sse_mount, .free = sse_free};
