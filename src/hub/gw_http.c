/* gw_http.c: the hub over HTTP: the API (publish, history, topics,
 * presence), Prometheus metrics (the text: server.c), the pages.  A host
 * gateway: Server-Sent Events (gw_sse.c) and WebSocket (gw_ws.c) mount
 * on its server.  docs/protocol.md has the wire formats. */
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon/alloc.h>

#include "proto/http/server_internal.h"
#include "serve.h"

typedef struct gw_http gw_http;
typedef struct pub_wait pub_wait;

struct gw_http {
    serve *sv;
    ax_http_server *srv;
    ax_listener *ls, *tls_ls;
    pub_wait *waits; /* publishes waiting for their commit */
};

/* A publish answered once it is as durable as the fsync mode says. */
struct pub_wait {
    hub_ack ack; /* first: the callback gets it */
    gw_http *g;
    ax_http_req *r;
    pub_wait *prev, *next;
    uint64_t seq;
    char topic[];
};

/* ---- helpers ------------------------------------------------------------------- */

/* Percent-decode (and '+' as space when `plus`) into out, with the HTTP
 * server's decoder; -1 when it does not fit or holds a NUL or a bad escape. */
static int decode(const char *in, size_t n, char *out, size_t cap, bool plus)
{
    if (n >= cap) return -1; /* decoding never makes it longer */
    memcpy(out, in, n);
    for (size_t i = 0; plus && i < n; i++) /* before decoding: %2B stays a '+' */
        if (out[i] == '+') out[i] = ' ';
    return (int)ax__http_path_decode(out, n, out); /* in place: it only shrinks */
}

/* The raw value of query parameter `name` (the first one) in val and
 * vlen (empty for a parameter without '='); false when it is not there. */
static bool query_raw(ax_http_req *r, const char *name, const char **val, size_t *vlen)
{
    size_t ql, nl = strlen(name);
    const char *q = ax_http_req_query(r, &ql);
    const char *end = q + ql;
    while (q && q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        size_t len = (size_t)(stop - q);
        if (len >= nl && memcmp(q, name, nl) == 0 && (len == nl || q[nl] == '=')) {
            *val = len == nl ? stop : q + nl + 1;
            *vlen = len == nl ? 0 : len - nl - 1;
            return true;
        }
        q = amp ? amp + 1 : end;
    }
    return false;
}

/* The decoded value of query parameter `name` (the first one), or -1;
 * `plus`: '+' means a space (form encoding). */
static int query_find(ax_http_req *r, const char *name, char *out, size_t cap, bool plus)
{
    const char *v;
    size_t vl;
    if (!query_raw(r, name, &v, &vl)) return -1;
    if (vl == 0) {
        out[0] = '\0';
        return 0;
    }
    return decode(v, vl, out, cap, plus);
}

/* Is query parameter `name` there (with a value or not)? */
static bool query_has(ax_http_req *r, const char *name)
{
    const char *v;
    size_t vl;
    return query_raw(r, name, &v, &vl);
}

bool serve_http_has_credentials(ax_http_req *r)
{
    size_t n;
    return ax_http_req_header(r, "Authorization", &n) || query_has(r, "token");
}

static int query_get(ax_http_req *r, const char *name, char *out, size_t cap)
{
    return query_find(r, name, out, cap, true);
}

/* For topics: '+' is the wildcard, not a space. */
static int query_get_raw(ax_http_req *r, const char *name, char *out, size_t cap)
{
    return query_find(r, name, out, cap, false);
}

/* The rest of the path after `prefix`, decoded: a topic. */
static int path_rest(ax_http_req *r, size_t prefix, char *out, size_t cap)
{
    size_t pl;
    const char *p = ax_http_req_path(r, &pl);
    if (pl <= prefix) return -1;
    return decode(p + prefix, pl - prefix, out, cap, false);
}

static void reply_json(ax_http_req *r, int status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    ax_http_add_header(r, "Cache-Control", "no-store");
    if (!s) {
        ax_http_respond(r, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    size_t n = strlen(s);
    s[n] = '\n';
    ax_http_respond(r, status, "application/json", s, n + 1);
    free(s);
}

/* The process's HTTP counters (sv->gw is shared by the threads), for
 * reply_error(), which the handlers call without their gateway. */
static gw_stats *http_counters;

static void reply_error(ax_http_req *r, int status, const char *why)
{
    gw_stats *st = __atomic_load_n(&http_counters, __ATOMIC_RELAXED);
    if (st && status >= 400 && status < 500) GW_ADD(st->errors, 1); /* a request refused */
    reply_json(r, status, json_pack("{s:s}", "error", why));
}

static bool method_is(ax_http_req *r, const char *m, const char *allow)
{
    if (ax_http_req_is(r, m) || (strcmp(m, "GET") == 0 && ax_http_req_is(r, "HEAD"))) return true;
    ax_http_add_header(r, "Allow", allow);
    reply_error(r, 405, "method not allowed");
    return false;
}

/* For the gateways mounted on the HTTP server (serve.h). */
int serve_http_query(ax_http_req *r, const char *name, char *out, size_t cap, bool plus)
{
    return query_find(r, name, out, cap, plus);
}

bool serve_http_method(ax_http_req *r, const char *m, const char *allow)
{
    return method_is(r, m, allow);
}

void serve_http_error(ax_http_req *r, int status, const char *why)
{
    reply_error(r, status, why);
}

/* ---- who the client is ------------------------------------------------------------------ */

/* "Basic b64(user:password)": the login's identity, or NULL. */
static auth_identity *basic_login(const serve *sv, const ax_addr *from, const char *v, size_t n)
{
    char buf[512];
    uint8_t raw[384];
    long rl = auth_b64_decode(v, n, false, raw, sizeof raw - 1);
    if (rl < 0) return NULL;
    memcpy(buf, raw, (size_t)rl);
    buf[rl] = '\0';
    char *colon = strchr(buf, ':');
    if (!colon || memchr(buf, '\0', (size_t)rl)) return NULL;
    *colon = '\0';
    auth_identity *id = serve_login(sv, from, buf, colon + 1);
    memset(buf, 0, sizeof buf); /* the password */
    memset(raw, 0, sizeof raw);
    return id;
}

int serve_http_identity(const serve *sv, ax_http_req *r, auth_identity **out)
{
    *out = NULL;
    if (!sv->auth) return 0; /* no auth: everybody may do everything */
    size_t n;
    const char *h = ax_http_req_header(r, "Authorization", &n);
    char tok[AUTH_MAX_TOKEN + 1];
    ax_addr peer, *from = ax_conn_peer(ax_http_req_conn(r), &peer) == 0 ? &peer : NULL;
    if (h && n > 7 && strncasecmp(h, "Bearer ", 7) == 0)
        *out = serve_token(sv, from, h + 7, n - 7);
    else if (h && n > 6 && strncasecmp(h, "Basic ", 6) == 0)
        *out = basic_login(sv, from, h + 6, n - 6);
    else if (h)
        return -1;
    else if (query_has(r, "token"))
        *out = query_find(r, "token", tok, sizeof tok, false) > 0
                   ? serve_token(sv, from, tok, strlen(tok))
                   : NULL; /* empty, too long or badly escaped */
    else
        *out = serve_anonymous(sv);
    return *out ? 0 : -1;
}

void serve_http_unauthorized(ax_http_req *r)
{
    ax_addr peer;
    ax_conn *c = ax_http_req_conn(r);
    serve_refused(NULL, "http", c && ax_conn_peer(c, &peer) == 0 ? &peer : NULL, NULL);
    ax_http_add_header(r, "WWW-Authenticate", "Bearer realm=\"axon\", Basic realm=\"axon\"");
    reply_error(r, 401,
                "unauthorized: give a token (Authorization: Bearer, ?token=) or a "
                "password (Basic)");
}

bool serve_http_loopback(ax_http_req *r)
{
    ax_addr a;
    ax_conn *c = ax_http_req_conn(r);
    if (!c || ax_conn_peer(c, &a) != 0) return false;
    if (a.sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a.sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (a.sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a.sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && b[12] == 127;
    }
    return a.sa.ss_family == AF_UNIX;
}

/* The request's identity, or a 401 reply and false.  *id is NULL with no
 * auth configured (no checks). */
static bool who(gw_http *g, ax_http_req *r, auth_identity **id)
{
    if (serve_http_identity(g->sv, r, id) == 0) return true;
    serve_http_unauthorized(r);
    return false;
}

static bool may_read(gw_http *g, ax_http_req *r, const char *topic)
{
    auth_identity *id;
    if (!who(g, r, &id)) return false;
    bool ok = id ? auth_may_read(id, topic) : auth_private_may_read(NULL, topic);
    auth_identity_free(id);
    if (!ok) reply_error(r, 403, "forbidden: you may not read this topic");
    return ok;
}

/* ---- the API -------------------------------------------------------------------------- */

/* An API request is a message of its connection (msg_rate, byte_rate):
 * over the rate, 429 with Retry-After and false. */
static bool within_limits(gw_http *g, ax_http_req *r)
{
    size_t bl = 0;
    hub_refusal ref = {0};
    char text[128];
    ax_http_req_body(r, &bl);
    hub_limit_kind k =
        serve_limit_msg(g->sv, "http", ax_http_req_conn(r), serve_limit_http_conn(r), bl, &ref);
    if (k == HUB_LIMIT_OK) return true;
    snprintf(text, sizeof text, "%llu", (unsigned long long)serve_limit_retry_s(&ref));
    ax_http_add_header(r, "Retry-After", text);
    reply_error(r, 429, serve_limit_text(k, &ref, text, sizeof text));
    return false;
}

static void wait_unlink(pub_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->g->waits = w->next;
    if (w->next) w->next->prev = w->prev;
}

static void publish_acked(hub_ack *a, int status)
{
    pub_wait *w = (pub_wait *)a;
    ax_http_req *r = w->r;
    wait_unlink(w);
    ax_http_on_abort(r, NULL, NULL);
    if (status)
        reply_error(r, 500, "not stored: the store failed to commit it");
    else
        reply_json(r, 200,
                   json_pack("{s:s,s:I}", "topic", w->topic, "seq",
                             (json_int_t)(a->seq ? a->seq : w->seq))); /* the cluster's */
    ax_free(w);
}

static void publish_abort(ax_http_req *r, void *ud)
{
    pub_wait *w = ud;
    (void)r;
    hub_ack_cancel(w->g->sv->hub, &w->ack);
    wait_unlink(w);
    ax_free(w);
}

/* Answer when the message's commit is done (the fsync mode's promise). */
static void publish_defer(gw_http *g, ax_http_req *r, const char *topic, uint64_t seq,
                          uint64_t ticket)
{
    size_t tl = strlen(topic);
    pub_wait *w = ax_calloc(1, sizeof(*w) + tl + 1);
    if (!w || hub_ack_wait(g->sv->hub, &w->ack, ticket, publish_acked) != 0) {
        ax_free(w);
        reply_error(r, 500, "out of memory waiting for the store");
        return;
    }
    w->g = g;
    w->r = r;
    w->seq = seq;
    memcpy(w->topic, topic, tl + 1);
    w->next = g->waits;
    if (g->waits) g->waits->prev = w;
    g->waits = w;
    ax_http_on_abort(r, publish_abort, w);
}

/* A request that changes state, from a page of another site: refused
 * (cross-site request forgery; origin.c). */
static bool origin_ok(gw_http *g, ax_http_req *r)
{
    char why[400];
    if (serve_origin_allowed(r, g->sv->cfg, why, sizeof why)) return true;
    reply_error(r, 403, why);
    return false;
}

static void api_publish(ax_http_req *r, void *ud)
{
    gw_http *g = ud;
    char topic[HUB_MAX_TOPIC + 1], sender[HUB_MAX_NAME + 1];
    if (!method_is(r, "POST", "POST") || !origin_ok(g, r) || !within_limits(g, r)) return;
    if (path_rest(r, strlen("/api/publish/"), topic, sizeof topic) <= 0) {
        reply_error(r, 400, "no topic: POST /api/publish/<topic>");
        return;
    }
    auth_identity *id;
    if (!who(g, r, &id)) return;
    if (id && !auth_may_publish(id, topic)) {
        auth_identity_free(id);
        reply_error(r, 403, "forbidden: you may not publish to this topic");
        return;
    }
    size_t hl, bl;
    const char *h = ax_http_req_header(r, "X-Sender", &hl);
    if (id && id->name[0]) { /* the sender is who signed in: X-Sender, ?sender= ignored */
        snprintf(sender, sizeof sender, "%s", id->name);
    } else if (query_get(r, "sender", sender, sizeof sender) < 1) {
        if (h && hl && hl <= HUB_MAX_NAME)
            snprintf(sender, sizeof sender, "%.*s", (int)hl, h);
        else
            snprintf(sender, sizeof sender, "http");
    }
    auth_identity_free(id);
    const char *body = ax_http_req_body(r, &bl);
    int err = 0;
    GW_ADD(g->sv->gw[GW_HTTP].msgs_in, 1);
    uint64_t ticket = 0;
    uint64_t seq = hub_publish_via(g->sv->hub, HUB_VIA_HTTP, NULL, topic, sender, body ? body : "",
                                   bl, &ticket, &err);
    if (!seq && err == AX_EAGAIN) { /* the store is behind: push back */
        ax_http_add_header(r, "Retry-After", "1");
        reply_error(r, 503, "the store is behind: slow down and retry");
        return;
    }
    if (!seq) {
        reply_error(r,
                    err == AX_EMSGSIZE   ? 413
                    : err == HUB_ETOPICS ? 507
                    : err == AX_ENOMEM   ? 500 /* the server's failure, not the request's */
                                         : 400,
                    err == AX_EINVAL ? "not a valid topic" : hub_strerror(err));
        return;
    }
    if (ticket)
        publish_defer(g, r, topic, seq, ticket);
    else
        reply_json(r, 200, json_pack("{s:s,s:I}", "topic", topic, "seq", (json_int_t)seq));
}

/* A history reply is streamed (chunked), made a piece at a time as the
 * connection drains, so its size is bounded by nothing but the history:
 * never a reset after the 200.  A few pieces per turn of the loop, so a
 * fast reader does not hold the loop either. */
typedef struct hist_stream {
    ax_http_req *r;
    hub *hub;
    ax_timer *turn; /* the next turn, when the connection did not fill */
    hub_msg *pos;   /* the last message written (hub_history_more) */
    uint64_t from, upto;
    size_t sent;
    char *buf;
    size_t len, cap;
    char topic[HUB_MAX_TOPIC + 1];
} hist_stream;

#define HIST_PIECE (32 * 1024) /* bytes made per write */
#define HIST_TURN 4            /* writes per turn of the loop */

static void hist_put(hist_stream *st, const char *p, size_t n)
{
    if (st->len + n > st->cap) {
        size_t cap = (st->len + n) * 2;
        char *b = ax_realloc(st->buf, cap);
        if (!b) return; /* the piece comes out short; the connection is failing anyway */
        st->buf = b;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, p, n);
    st->len += n;
}

static void hist_add(hub_msg *m, void *ud)
{
    hist_stream *st = ud;
    json_t *j = serve_msg_obj(m);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) return;
    if (st->sent++) hist_put(st, ",", 1);
    hist_put(st, s, strlen(s));
    free(s);
}

static void hist_free(hist_stream *st)
{
    ax_timer_free(st->turn);
    hub_msg_unref(st->pos);
    ax_free(st->buf);
    ax_free(st);
}

static void hist_abort(ax_http_req *r, void *ud)
{
    (void)r;
    hist_free(ud);
}

/* Write pieces until the connection is full (on_drain goes on) or done. */
static void hist_pump(ax_http_req *r, void *ud)
{
    hist_stream *st = ud;
    for (int n = 0;; n++) {
        if (n == HIST_TURN) { /* let the loop serve others, then go on */
            ax_timer_start(st->turn, 0, 0);
            return;
        }
        bool done = false;
        st->len = 0;
        while (st->len < HIST_PIECE && !done)
            done = !hub_history_more(st->hub, st->topic, &st->pos, &st->from, st->upto, 1, hist_add,
                                     st);
        if (done) hist_put(st, "]}\n", 3);
        int rc = st->len ? ax_http_write(r, st->buf, st->len) : 0;
        if (rc < 0) return; /* the connection is closing: hist_abort frees */
        if (done) {
            ax_http_on_drain(r, NULL, NULL);
            ax_http_on_abort(r, NULL, NULL);
            ax_http_end(r);
            hist_free(st);
            return;
        }
        if (rc == 1) return; /* on_drain calls again */
    }
}

static void hist_next_turn(ax_timer *t, void *ud)
{
    hist_stream *st = ud;
    (void)t;
    hist_pump(st->r, st);
}

/* With Redis, a topic nobody here follows is visited first (hub_visit:
 * its history and presence are read from the cluster), then the reply is
 * made (the request's head is gone by then: what it asked is kept). */
typedef struct visit_req {
    gw_http *g;
    ax_http_req *r; /* NULL: the request went */
    void (*reply)(struct visit_req *v);
    uint64_t since;
    size_t limit;
    char room[HUB_MAX_TOPIC + 1], topic[HUB_MAX_TOPIC + 8];
} visit_req;

static void visit_abort(ax_http_req *r, void *ud)
{
    (void)r;
    ((visit_req *)ud)->r = NULL;
}

static void visit_back(void *ud)
{
    visit_req *v = ud;
    if (v->r) {
        ax_http_on_abort(v->r, NULL, NULL);
        v->reply(v);
    }
    ax_free(v);
}

/* Reply now (v on the stack) or after the visit (v copied). */
static void visit_first(visit_req *v)
{
    visit_req *w = ax_malloc(sizeof(*w));
    if (w) *w = *v;
    if (!w || !hub_visit(v->g->sv->hub, v->topic, visit_back, w)) {
        ax_free(w);
        v->reply(v);
        return;
    }
    ax_http_on_abort(v->r, visit_abort, w);
}

static void history_reply(visit_req *v);

static void api_history(ax_http_req *r, void *ud)
{
    gw_http *g = ud;
    char topic[HUB_MAX_TOPIC + 1], v[32];
    if (!method_is(r, "GET", "GET, HEAD") || !within_limits(g, r)) return;
    if (path_rest(r, strlen("/api/history/"), topic, sizeof topic) <= 0) {
        reply_error(r, 400, "no topic: GET /api/history/<topic>?since=N");
        return;
    }
    if (!may_read(g, r, topic)) return;
    uint64_t since = query_get(r, "since", v, sizeof v) > 0 ? strtoull(v, NULL, 10) : 0;
    size_t limit = query_get(r, "limit", v, sizeof v) > 0 ? strtoull(v, NULL, 10) : 1000;
    if (limit == 0 || limit > 10000) limit = 10000;
    visit_req vr = {g, r, history_reply, since, limit, "", ""};
    snprintf(vr.topic, sizeof vr.topic, "%s", topic);
    visit_first(&vr);
}

static void history_reply(visit_req *v)
{
    gw_http *g = v->g;
    ax_http_req *r = v->r;
    const char *topic = v->topic;
    uint64_t since = v->since;
    size_t limit = v->limit;
    uint64_t first = 0, from = 0;
    uint64_t last = hub_history_window(g->sv->hub, topic, since, limit, &first, &from);
    json_t *o = json_pack("{s:s,s:I,s:I,s:b,s:[]}", "topic", topic, "last_seq", (json_int_t)last,
                          "first_seq", (json_int_t)first, "gap", since + 1 < first && since < last,
                          "messages");
    hist_stream *st = last ? ax_calloc(1, sizeof(*st)) : NULL;
    if (st) st->turn = ax_timer_new(g->sv->loop, hist_next_turn, st);
    char *head = st && st->turn ? json_dumps(o, JSON_COMPACT) : NULL;
    if (!head) { /* no such topic (or no memory): a small reply */
        if (st) ax_timer_free(st->turn);
        ax_free(st);
        reply_json(r, last ? 500 : 404, o);
        return;
    }
    json_decref(o);
    st->r = r;
    st->hub = g->sv->hub;
    st->from = from;
    st->upto = last;
    snprintf(st->topic, sizeof st->topic, "%.*s", HUB_MAX_TOPIC, topic); /* (it fits) */
    hist_put(st, head, strlen(head) - 2); /* without the closing "]}" */
    free(head);
    ax_http_add_header(r, "Cache-Control", "no-store");
    ax_http_add_header(r, "Content-Type", "application/json");
    ax_http_on_drain(r, hist_pump, st);
    ax_http_on_abort(r, hist_abort, st);
    ax_http_start(r, 200, -1);
    int rc = ax_http_write(r, st->buf, st->len);
    if (rc >= 0) hist_pump(r, st);
}

typedef struct topics_ctx {
    json_t *a;
    const auth_identity *id; /* NULL: every topic */
} topics_ctx;

static void topic_json(const char *topic, uint64_t last, size_t subs, void *ud)
{
    topics_ctx *c = ud;
    if (c->id ? !auth_may_read(c->id, topic) : !auth_private_may_read(NULL, topic))
        return; /* not even its name */
    json_array_append_new(c->a, json_pack("{s:s,s:I,s:I}", "topic", topic, "last_seq",
                                          (json_int_t)last, "subscribers", (json_int_t)subs));
}

static void api_topics(ax_http_req *r, void *ud)
{
    gw_http *g = ud;
    char after[HUB_MAX_TOPIC + 1], next[HUB_MAX_TOPIC + 1], v[32];
    if (!method_is(r, "GET", "GET, HEAD") || !within_limits(g, r)) return;
    size_t limit = query_get(r, "limit", v, sizeof v) > 0 ? strtoull(v, NULL, 10) : 1000;
    if (limit == 0 || limit > 10000) limit = 10000;
    if (query_get_raw(r, "after", after, sizeof after) < 0) after[0] = '\0';
    auth_identity *id;
    if (!who(g, r, &id)) return;
    json_t *a = json_array();
    topics_ctx c = {a, id};
    hub_topics(g->sv->hub, after, limit, topic_json, &c, next);
    auth_identity_free(id);
    reply_json(
        r, 200,
        json_pack("{s:o,s:o}", "topics", a, "next", next[0] ? json_string(next) : json_null()));
}

static void name_json(const char *name, void *ud)
{
    json_array_append_new(ud, json_string(name));
}

static void presence_reply(visit_req *v)
{
    json_t *a = json_array();
    hub_presence(v->g->sv->hub, v->topic, name_json, a);
    reply_json(v->r, 200,
               json_pack("{s:s,s:s,s:o}", "room", v->room, "topic", v->topic, "names", a));
}

static void api_presence(ax_http_req *r, void *ud)
{
    gw_http *g = ud;
    char room[HUB_MAX_TOPIC + 1], topic[HUB_MAX_TOPIC + 8];
    if (!method_is(r, "GET", "GET, HEAD") || !within_limits(g, r)) return;
    if (path_rest(r, strlen("/api/presence/"), room, sizeof room) <= 0) {
        reply_error(r, 400, "no room: GET /api/presence/<room>");
        return;
    }
    /* a bare room name is a chat room; a name with '/' is any topic */
    snprintf(topic, sizeof topic, "%s%s", strchr(room, '/') ? "" : "chat/", room);
    if (!may_read(g, r, topic)) return;
    visit_req vr = {g, r, presence_reply, 0, 0, "", ""};
    snprintf(vr.room, sizeof vr.room, "%s", room);
    snprintf(vr.topic, sizeof vr.topic, "%s", topic);
    visit_first(&vr);
}

/* ---- metrics ------------------------------------------------------------------------- */

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* gw[GW_HTTP]'s connections and bytes, from the HTTP servers of every
 * thread, without what the sse gateway counts: an event stream is an HTTP
 * connection to the server but the sse gateway's here.  WebSocket
 * connections left the servers at the upgrade.  Bytes out are kept
 * monotonic: SSE events count when queued, the server's bytes once sent. */
static void http_gw_update(gw_http *g)
{
    ax_http_stats st;
    ax_http_server_stats(g->srv, &st); /* brings this thread's up to date */
    const ax_http_stats *all = g->sv->http_stats;
    gw_stats *h = &g->sv->gw[GW_HTTP], *sse = &g->sv->gw[GW_SSE];
    if (!all) return;
    uint64_t open = load(&all->conns_open), streams = load(&sse->conns);
    __atomic_store_n(&h->conns, open > streams ? open - streams : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&h->accepted, load(&all->conns_accepted), __ATOMIC_RELAXED);
    __atomic_store_n(&h->bytes_in, load(&all->bytes_in), __ATOMIC_RELAXED);
    uint64_t out = load(&all->bytes_out), events = load(&sse->bytes_out);
    out = out > events ? out - events : 0;
    uint64_t was = load(&h->bytes_out);
    while (out > was && !__atomic_compare_exchange_n(&h->bytes_out, &was, out, true,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void metrics(ax_http_req *r, void *ud)
{
    gw_http *g = ud;
    size_t n;
    auth_identity *id = NULL;
    int access = g->sv->cfg->metrics_access;
    if (access == SERVE_METRICS_ADMIN ||
        (access == SERVE_METRICS_LOOPBACK && !serve_http_loopback(r))) {
        if (serve_http_identity(g->sv, r, &id) != 0 || !id) {
            serve_http_unauthorized(r);
            return;
        }
    }
    bool ok = serve_metrics_allowed(g->sv, id, serve_http_loopback(r));
    auth_identity_free(id);
    if (!ok) {
        reply_error(r, 403, "forbidden: /metrics needs an admin identity");
        return;
    }
    char *text = serve_metrics(g->sv, &n); /* through http_stats() for this gateway */
    if (!text) {
        ax_http_respond(r, 500, "text/plain", "out of memory\n", 14);
        return;
    }
    ax_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, n);
    ax_free(text);
}

static void healthz(ax_http_req *r, void *ud)
{
    gw_http *g = ud;
    char why[256];
    bool ok = serve_healthy(g->sv, why, sizeof why - 1);
    size_t n = strlen(why);
    why[n++] = '\n';
    ax_http_respond(r, ok ? 200 : 503, "text/plain", why, n);
}

/* ---- the gateway ---------------------------------------------------------------------- */

static gw_http *gw_http_start(serve *sv, const char *url, char *why, size_t why_len)
{
    gw_http *g = ax_calloc(1, sizeof(*g));
    int err = 0;
    if (!g) goto fail;
    g->sv = sv;
    __atomic_store_n(&http_counters, &sv->gw[GW_HTTP], __ATOMIC_RELAXED);
    ax_http_opts ho = {.max_body = sv->cfg->max_payload, .stats = sv->http_stats};
    ho.header_timeout_ms = sv->cfg->http_header_timeout_s * 1000; /* 0: the defaults */
    ho.idle_timeout_ms = sv->cfg->http_idle_timeout_s * 1000;
    ho.linger_ms = sv->cfg->close_timeout_s * 1000;
    ho.access_log = sv->access_log;
    ho.access_log_format = sv->cfg->access_log_format;
    if (sv->limits) { /* every HTTP connection counts (serve_limit.c) */
        ho.on_conn_open = serve_limit_http_open;
        ho.on_conn_close = serve_limit_http_close;
        ho.hook_ud = sv;
    }
    g->srv = ax_http_server_new(sv->loop, &ho, &err);
    if (!g->srv) goto fail;
    struct {
        const char *method, *prefix;
        ax_http_handler h;
    } routes[] = {
        {NULL, "/api/publish", api_publish}, {NULL, "/api/history", api_history},
        {NULL, "/api/topics", api_topics},   {NULL, "/api/presence", api_presence},
        {"GET", "/metrics", metrics},        {"GET", "/healthz", healthz},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if ((err = ax_http_route(g->srv, routes[i].method, routes[i].prefix, routes[i].h, g)))
            goto fail;
    if ((err = gw_pages_start(sv, g->srv))) goto fail;
    ax_listen_opts lo = serve_listen_opts(sv);
    g->ls = url ? ax_http_listen(g->srv, url, &lo, &err) : NULL;
    if (url && !g->ls) goto fail;
    return g;
fail:
    snprintf(why, why_len, "cannot listen on %s: %s", url ? url : "(no URL)",
             ax_strerror(err ? err : AX_ENOMEM));
    if (g) {
        if (g->srv) ax_http_server_free(g->srv);
        ax_free(g);
    }
    return NULL;
}

static ax_http_server *gw_http_server(gw_http *g)
{
    return g->srv;
}

static int gw_http_listen_tls(gw_http *g, const char *url, char *why, size_t why_len)
{
    int err = 0;
    ax_listen_opts lo = serve_listen_opts(g->sv);
    g->tls_ls = ax_http_listen_tls(g->srv, url, &lo, g->sv->tls, &err);
    if (!g->tls_ls) snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
    return g->tls_ls ? 0 : err;
}

static const char *gw_http_tls_addr(gw_http *g, char *buf, size_t len)
{
    if (!g || !g->tls_ls) return NULL;
    return ax_listener_url(g->tls_ls, buf, len);
}

static const char *gw_http_addr(gw_http *g, char *buf, size_t len)
{
    return g && g->ls ? ax_addr_format(ax_listener_addr(g->ls), buf, len) : NULL;
}

static void gw_http_stop(gw_http *g)
{
    if (!g) return;
    while (g->waits) { /* before the server: their abort callbacks may come late */
        pub_wait *w = g->waits;
        g->waits = w->next;
        ax_http_on_abort(w->r, NULL, NULL);
        hub_ack_cancel(g->sv->hub, &w->ack);
        ax_free(w);
    }
    ax_http_server_free(g->srv);
    ax_free(g);
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static const char *http_url(const serve_cfg *c)
{
    return c->http_url;
}

static const char *https_url(const serve_cfg *c)
{
    return c->https_url;
}

static void *http_start(serve *sv, const char *url, char *why, size_t why_len)
{
    return gw_http_start(sv, url, why, why_len);
}

static int http_listen_tls(void *g, const char *url, char *why, size_t why_len)
{
    return gw_http_listen_tls(g, url, why, why_len);
}

static void http_free(void *g)
{
    gw_http_stop(g);
}

static const char *http_addr(void *g, char *buf, size_t len)
{
    return gw_http_addr(g, buf, len);
}

static const char *http_tls_addr(void *g, char *buf, size_t len)
{
    return gw_http_tls_addr(g, buf, len);
}

/* What the servers counted, less the event streams; with the requests
 * the servers refused before any handler saw them as errors. */
static void http_stats(void *vg, gw_stats *out)
{
    gw_http *g = vg;
    http_gw_update(g);
    const gw_stats *h = &g->sv->gw[GW_HTTP];
    uint64_t refused = g->sv->http_stats ? load(&g->sv->http_stats->refused) : 0;
    *out = (gw_stats){load(&h->conns),           load(&h->accepted), load(&h->msgs_in),
                      load(&h->msgs_out),        load(&h->bytes_in), load(&h->bytes_out),
                      load(&h->errors) + refused};
}

static ax_http_server *http_host(void *g)
{
    return gw_http_server(g);
}

static void http_log_addrs(void *g)
{
    char a[AX_ADDR_STRLEN];
    if (gw_http_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "HTTP API, SSE and metrics on %s", a);
    if (gw_http_tls_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "HTTPS (and wss://) on %s", a);
}

static void http_hints(void *g, FILE *out)
{
    char a[AX_ADDR_STRLEN], hp[AX_ADDR_STRLEN];
    if (gw_http_addr(g, a, sizeof a)) {
        serve_hostport(a, hp, sizeof hp);
        fprintf(out, "axon serve: chat page     http://%s/   (dashboard: /dashboard)\n", hp);
        fprintf(out, "axon serve: HTTP API      curl -d hello http://%s/api/publish/chat/lobby\n",
                hp);
        fprintf(out, "axon serve: live events   curl -N 'http://%s/sse?topic=chat/lobby'\n", hp);
        fprintf(out, "axon serve: metrics       http://%s/metrics\n", hp);
    }
    if (gw_http_tls_addr(g, a, sizeof a))
        fprintf(out, "axon serve: HTTPS         https://%s/\n", serve_hostport(a, hp, sizeof hp));
}

const gw_ops gw_http_gateway = {.name = "http",
                                .url = http_url,
                                .tls_url = https_url,
                                .tls_setting = "listen_https",
                                .start = http_start,
                                .listen_tls = http_listen_tls,
                                .free = http_free,
                                .addr = http_addr,
                                .tls_addr = http_tls_addr,
                                .stats = http_stats,
                                .http = http_host,
                                .log_addrs = http_log_addrs,
                                .hints = http_hints};
