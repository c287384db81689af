/* gw_ws.c: the hub over WebSocket at /ws, with the JSON envelope of
 * docs/protocol.md:
 *
 *   -> {"type":"auth","token":"..."}   (first, or again to refresh it)
 *   -> {"type":"nick","name":"ann"}
 *   -> {"type":"subscribe","topic":"chat/lobby","since":12,"presence":true}
 *   -> {"type":"unsubscribe","topic":"chat/lobby"}
 *   -> {"type":"publish","topic":"chat/lobby","payload":"hi"}   (or base64)
 *   -> {"type":"history","topic":"chat/lobby","since":0,"limit":50}
 *   -> {"type":"presence","topic":"chat/lobby"}
 *   -> {"type":"ping"}
 *   <- {"type":"message",...} {"type":"join",...} {"type":"leave",...}
 *      {"type":"gap",...} and replies {"type":"ok"|"error"|"history"|
 *      "presence"|"pong","id":...}
 *
 * A binary frame is a publish without JSON: the topic, a newline, then the
 * payload bytes.  A message's envelope is framed once (ax_ws_shared_new,
 * ENC_WS) and the same frame is queued on every WebSocket subscriber. */
#include <jansson.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>
#include <axon/ws.h>

#include "envelope.h"
#include "serve.h"

typedef struct gw_ws gw_ws;

typedef struct ws_client ws_client;
typedef struct ws_wait ws_wait;
typedef struct ws_visit ws_visit;
typedef struct ws_pend ws_pend;

struct gw_ws {
    serve *sv;
    ax_ws_opts opts;
    ax_ws_endpoint ep;
    /* upgraded connections leave the HTTP server: ours to close, found in
     * the loop's keepalive ring (each_client(): the gateway always pings) */
    size_t nclients;      /* opened, not closed yet */
    ax_timer *unthrottle; /* reads again from clients paused for a full store */
    ax_timer *expiry;     /* ends the sessions whose token has expired */
};

/* A client lives in its hub subscriber's allocation (hub_sub_new_ext():
 * SUB(c) and back; its hub_sub_data() is the gateway, its identity the
 * subscriber's, hub_sub_identity()).  Field order: pointers, then the
 * smaller fields packed (an idle subscriber's bytes count: docs/scale.md). */
struct ws_client {
    ax_ws *ws;
    ws_pend *pend;       /* made with its first wait or visit (NULL: none yet) */
    hub_limits_conn lim; /* its share of the limits, from the HTTP connection */
    /* authed once credentials (or anonymous access) were accepted
     * (docs/security.md); no identity: no auth configured, no checks */
    bool authed;
    bool throttled; /* not read for a while: the store was full */
    bool limited;   /* over a limit: closing, nothing more is read */
    bool stopped;   /* the gateway stopped: its subscriber is closed (hub_sub_close) */
};
/* With the subscriber (96), 144 bytes (152 before the share's credits
 * were 32 bits): glibc's 160-byte chunk. */
_Static_assert(sizeof(ws_client) <= 48, "ws_client: an idle subscriber's bytes (docs/scale.md)");

static const ax_ws_cbs ws_cbs;

/* A walk over the clients: what it does, and with what. */
typedef struct each_arg {
    gw_ws *g;
    void (*fn)(ws_client *c, const struct each_arg *a);
    int64_t now; /* expire: the time */
    bool abort;  /* stop: abort, not close */
} each_arg;

static void each_one(ax_ws *ws, void *ud)
{
    const each_arg *a = ud;
    ws_client *c = ax_ws_data(ws);
    if (c && c->ws && hub_sub_data(hub_sub_of_ext(c)) == a->g) a->fn(c, a);
}

/* a->fn(c, a) for each open (or closing) client: the loop's keepalive
 * ring has them all (the gateway's ping interval is never 0), so a client
 * needs no place in a list of the gateway's.  fn may close or abort c. */
static void each_client(each_arg *a)
{
    ax_ws_each(a->g->sv->loop, &ws_cbs, each_one, a);
}

/* What a client waits for, once it has waited for something. */
struct ws_pend {
    ws_wait *waits;   /* publishes whose "ok" waits for their commit */
    ws_visit *visits; /* history and presence requests waiting for their topic (hub_visit) */
};

static ws_pend *pend_get(ws_client *c)
{
    if (!c->pend) c->pend = ax_calloc(1, sizeof(*c->pend));
    return c->pend;
}

#define SUB(c) hub_sub_of_ext(c)
#define GW(c) ((gw_ws *)hub_sub_data(SUB(c)))
#define ID(c) ((auth_identity *)hub_sub_identity(SUB(c))) /* ours: freed by us */

/* A publish answered "ok" once it is as durable as the fsync mode says. */
struct ws_wait {
    hub_ack ack; /* first: the callback gets it */
    ws_client *c;
    json_t *id; /* a reference, or NULL */
    ws_wait *prev, *next;
    uint64_t seq;
    char topic[];
};

#define BUSY_TEXT "the store is behind: slow down and retry"
#define THROTTLE_MS 50 /* how long a client refused for a full store is not read */

/* ---- sending ------------------------------------------------------------------ */

static void send_json(ws_client *c, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s) return;
    size_t n = strlen(s);
    if (ax_ws_send_text(c->ws, s, n) >= 0) {
        GW_ADD(GW(c)->sv->gw[GW_WS].bytes_out, n);
        GW_ADD(GW(c)->sv->gw[GW_WS].msgs_out, 1);
    }
    free(s);
}

static void reply_ok(ws_client *c, json_t *id, json_t *extra)
{
    json_t *o = extra ? extra : json_object();
    json_object_set_new(o, "type", json_string("ok"));
    if (id) json_object_set(o, "id", id);
    send_json(c, o);
}

static void reply_error(ws_client *c, json_t *id, const char *why)
{
    json_t *o = json_pack("{s:s,s:s}", "type", "error", "error", why);
    if (id) json_object_set(o, "id", id);
    send_json(c, o);
}

/* The request types that name a topic; the rest are ping and nick. */
static bool topic_request(const char *type)
{
    static const char *const names[] = {"publish", "subscribe", "unsubscribe", "history",
                                        "presence"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(type, names[i]) == 0) return true;
    return false;
}

static void unknown_type(ws_client *c, json_t *id, const char *type)
{
    char why[200];
    snprintf(why, sizeof why,
             "unknown request type '%s'; expected ping, nick, subscribe, unsubscribe, "
             "publish, history or presence",
             strlen(type) <= 32 ? type : "...");
    reply_error(c, id, why);
}

static ax_slice *encode_ws(const hub_msg *m, void *ud)
{
    (void)ud;
    size_t n;
    char *j = serve_msg_json(m, &n);
    if (!j) return NULL;
    ax_slice *s = ax_ws_shared_new(j, n, false);
    free(j);
    return s;
}

static bool ws_write(hub_sub *s, hub_msg *m, void *ud)
{
    ws_client *c = hub_sub_ext(s);
    (void)ud;
    ax_slice *frame = hub_msg_encoding(m, ENC_WS, encode_ws, NULL);
    if (!frame) {
        /* out of memory: a message lost without a word would leave a gap the
         * client never hears of; ending the connection says so (it resumes) */
        ax_conn_abort(ax_ws_conn(c->ws), AX_ENOMEM);
        return false;
    }
    gw_stats *st = &GW(c)->sv->gw[GW_WS];
    GW_ADD(st->msgs_out, 1);
    GW_ADD(st->bytes_out, ax_slice_len(frame));
    return ax_ws_send_shared(c->ws, frame) == 0;
}

static void ws_kick(hub_sub *s, const char *why, void *ud)
{
    ws_client *c = hub_sub_ext(s);
    (void)ud;
    ax_log(AX_LOG_WARN, "websocket client disconnected: %s", why);
    /* the queue is full, so a close frame would wait behind it: drop now */
    ax_conn_abort(ax_ws_conn(c->ws), AX_EOUTPUTCAP);
}

static const hub_sub_ops ws_ops = {ws_write, ws_kick};

/* ---- requests ------------------------------------------------------------------- */

static const char *str_field(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void history_push(hub_msg *m, void *ud)
{
    json_t *j = serve_msg_obj(m);
    if (j) json_array_append_new(ud, j);
}

static void name_push(const char *name, void *ud)
{
    json_array_append_new(ud, json_string(name));
}

/* The payload of a publish: text, or base64 with "encoding":"base64". */
static unsigned char *payload_of(json_t *o, size_t *len, const char **why)
{
    json_t *p = json_object_get(o, "payload");
    if (!json_is_string(p)) {
        *why = "publish needs a string payload";
        return NULL;
    }
    const char *enc = str_field(o, "encoding");
    size_t n = json_string_length(p);
    unsigned char *out = malloc(n + 1);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    if (!enc) {
        memcpy(out, json_string_value(p), n);
        *len = n;
        return out;
    }
    int k = strcmp(enc, "base64") == 0 && n % 4 == 0
                ? EVP_DecodeBlock(out, (const unsigned char *)json_string_value(p), (int)n)
                : -1;
    if (k < 0) {
        free(out);
        *why = "payload is not valid base64";
        return NULL;
    }
    const char *s = json_string_value(p);
    while (n && s[n - 1] == '=' && k > 0) /* EVP_DecodeBlock counts the padding */
        n--, k--;
    *len = (size_t)k;
    return out;
}

static void wait_unlink(ws_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        w->c->pend->waits = w->next;
    if (w->next) w->next->prev = w->prev;
}

static void wait_free(ws_wait *w)
{
    json_decref(w->id);
    ax_free(w);
}

static void publish_acked(hub_ack *a, int status)
{
    ws_wait *w = (ws_wait *)a;
    wait_unlink(w);
    if (status)
        reply_error(w->c, w->id, "not stored: the store failed to commit it");
    else
        reply_ok(w->c, w->id,
                 json_pack("{s:s,s:I}", "topic", w->topic, "seq",
                           (json_int_t)(a->seq ? a->seq : w->seq))); /* a->seq: the cluster's */
    wait_free(w);
}

/* Forget the client's waiting acknowledgements (it is closing). */
static void waits_cancel(ws_client *c)
{
    while (c->pend && c->pend->waits) {
        ws_wait *w = c->pend->waits;
        c->pend->waits = w->next;
        hub_ack_cancel(GW(c)->sv->hub, &w->ack);
        wait_free(w);
    }
}

/* Say "ok" when the message's commit is done (the fsync mode's promise). */
static void publish_defer(ws_client *c, json_t *id, const char *topic, uint64_t seq,
                          uint64_t ticket)
{
    size_t tl = strlen(topic);
    ws_wait *w = pend_get(c) ? ax_calloc(1, sizeof(*w) + tl + 1) : NULL;
    if (!w || hub_ack_wait(GW(c)->sv->hub, &w->ack, ticket, publish_acked) != 0) {
        ax_free(w);
        reply_error(c, id, "out of memory waiting for the store");
        return;
    }
    w->c = c;
    w->id = id ? json_incref(id) : NULL;
    w->seq = seq;
    memcpy(w->topic, topic, tl + 1);
    w->next = c->pend->waits;
    if (c->pend->waits) c->pend->waits->prev = w;
    c->pend->waits = w;
}

/* The store is full: stop reading this client for THROTTLE_MS (TCP flow
 * control slows it down); true the first time (tell it once). */
static bool throttle(ws_client *c)
{
    if (c->throttled) return false;
    c->throttled = true;
    ax_conn_pause(ax_ws_conn(c->ws));
    if (!ax_timer_active(GW(c)->unthrottle)) ax_timer_start(GW(c)->unthrottle, THROTTLE_MS, 0);
    return true;
}

static void unthrottle_one(ws_client *c, const each_arg *a)
{
    (void)a;
    if (!c->throttled) return;
    c->throttled = false;
    ax_conn_resume(ax_ws_conn(c->ws));
}

static void unthrottle(ax_timer *t, void *ud)
{
    (void)t;
    each_client(&(each_arg){.g = ud, .fn = unthrottle_one});
}

static void publish_done(ws_client *c, json_t *id, const char *topic, uint64_t seq, uint64_t ticket,
                         int err);

static void do_publish(ws_client *c, json_t *o, json_t *id, const char *topic)
{
    const char *why = NULL;
    size_t len = 0;
    unsigned char *p = payload_of(o, &len, &why);
    if (!p) {
        reply_error(c, id, why);
        return;
    }
    uint8_t ext[SERVE_REQ_PROPS_MAX];
    size_t el = 0;
    if (serve_req_props(o, ext, &el, &why) != 0) {
        free(p);
        reply_error(c, id, why);
        return;
    }
    int err = 0;
    uint64_t ticket = 0;
    hub_pub hp = {.origin = SUB(c),
                  .topic = topic,
                  .sender = hub_sub_name(SUB(c)),
                  .payload = p,
                  .len = len,
                  .qos = 1,
                  .ext = el ? ext : NULL,
                  .ext_len = el,
                  .via = HUB_VIA_WS};
    uint64_t seq = hub_publish_pub(GW(c)->sv->hub, &hp, &ticket, &err);
    free(p);
    publish_done(c, id, topic, seq, ticket, err);
}

/* The reply to a publish hub_publish_ticket() answered. */
static void publish_done(ws_client *c, json_t *id, const char *topic, uint64_t seq, uint64_t ticket,
                         int err)
{
    if (!seq && err == AX_EAGAIN) throttle(c);
    if (!seq)
        reply_error(c, id,
                    err == AX_EINVAL   ? "not a valid topic"
                    : err == AX_EAGAIN ? BUSY_TEXT
                                       : hub_strerror(err));
    else if (ticket)
        publish_defer(c, id, topic, seq, ticket);
    else
        reply_ok(c, id, json_pack("{s:s,s:I}", "topic", topic, "seq", (json_int_t)seq));
}

static void do_subscribe(ws_client *c, json_t *o, json_t *id, const char *topic)
{
    json_t *since = json_object_get(o, "since");
    int64_t from = json_is_integer(since) ? (int64_t)json_integer_value(since) : -1;
    bool present = json_is_true(json_object_get(o, "presence"));
    /* the reply first, so a client sees it before the replayed history */
    int rc = hub_subscribe_check(SUB(c), topic);
    if (rc != 0) {
        reply_error(c, id, rc == AX_EINVAL ? "not a valid topic filter" : hub_strerror(rc));
        return;
    }
    reply_ok(c, id, json_pack("{s:s}", "topic", topic));
    /* What the check cannot foresee (out of memory) comes after the "ok":
     * an "error" for the same id would contradict it, so the connection
     * ends with 1011 and the reason, and the client subscribes again. */
    if ((rc = hub_subscribe(SUB(c), topic, from, present)) != 0)
        (void)ax_ws_close(c->ws, 1011, hub_strerror(rc));
}

/* Direct messages: a client with a name is subscribed to its inbox
 * user/NAME/inbox (docs/protocol.md); `old` (may be NULL) is left. */
static void ws_inbox(ws_client *c, const char *old, const char *name)
{
    char topic[AUTH_MAX_NAME + 16];
    if (old && auth_name_valid(old) && (!name || strcmp(old, name) != 0)) {
        snprintf(topic, sizeof topic, "user/%s/inbox", old);
        hub_unsubscribe(SUB(c), topic);
    }
    if (!name || !auth_name_valid(name)) return;
    snprintf(topic, sizeof topic, "user/%s/inbox", name);
    if (!ID(c) || auth_may_subscribe(ID(c), topic)) hub_subscribe(SUB(c), topic, -1, false);
}

/* Take `id` as the client's identity (its name is then its nick). */
static void set_identity(ws_client *c, auth_identity *id)
{
    auth_identity *old = ID(c);
    hub_sub_set_identity(SUB(c), id); /* before the old one is freed */
    auth_identity_free(old);
    c->authed = true;
    if (id && id->name[0]) hub_sub_rename(SUB(c), id->name);
    if (id && id->name[0]) ws_inbox(c, NULL, id->name);
}

static void ws_refused(ws_client *c, const char *why)
{
    ax_addr a;
    serve_refused(GW(c)->sv, "websocket", ax_conn_peer(ax_ws_conn(c->ws), &a) == 0 ? &a : NULL,
                  why);
}

static void do_auth(ws_client *c, json_t *o, json_t *id)
{
    const char *tok = str_field(o, "token");
    ax_addr peer, *from = ax_conn_peer(ax_ws_conn(c->ws), &peer) == 0 ? &peer : NULL;
    auth_identity *who =
        tok && GW(c)->sv->auth ? serve_token(GW(c)->sv, from, tok, strlen(tok)) : NULL;
    if (!GW(c)->sv->auth) {
        reply_error(c, id, "authentication is not configured on this server");
    } else if (!who) {
        ws_refused(c, NULL);
        reply_error(c, id, "unauthorized");
        if (!c->authed) ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, "unauthorized");
    } else if (ID(c) && ID(c)->name[0] && strcmp(ID(c)->name, who->name) != 0) {
        auth_identity_free(who);
        reply_error(c, id, "a refreshed token must be for the same user");
    } else {
        set_identity(c, who);
        reply_ok(c, id, json_pack("{s:s}", "name", who->name));
    }
}

/* May the client do `type` on `topic`?  Else the error reply. */
static bool allowed(ws_client *c, json_t *id, const char *type, const char *topic)
{
    const auth_identity *who = ID(c);
    if (strcmp(type, "unsubscribe") == 0 || (!who && strcmp(type, "publish") == 0)) return true;
    if (!who) { /* no auth: only the private-topic rule, by name (auth.h) */
        const char *name = hub_sub_name(SUB(c));
        bool mine = strcmp(type, "subscribe") == 0 ? auth_private_may_subscribe(name, topic)
                                                   : auth_private_may_read(name, topic);
        if (!mine) reply_error(c, id, "forbidden: user/NAME/... is private to NAME");
        return mine;
    }
    bool ok = strcmp(type, "publish") == 0     ? auth_may_publish(who, topic)
              : strcmp(type, "subscribe") == 0 ? auth_may_subscribe(who, topic)
                                               : auth_may_read(who, topic);
    if (!ok) reply_error(c, id, "forbidden: you may not do this on this topic");
    return ok;
}

static void query(ws_client *c, json_t *o, json_t *id, const char *type, const char *topic);

static void request(ws_client *c, json_t *o)
{
    const char *type = str_field(o, "type"), *topic = str_field(o, "topic");
    json_t *id = json_object_get(o, "id");
    if (!type) {
        reply_error(c, id, "a request is a JSON object with a \"type\"");
    } else if (strcmp(type, "auth") == 0) {
        do_auth(c, o, id);
    } else if (!c->authed && strcmp(type, "ping") != 0) {
        ws_refused(c, "no credentials");
        reply_error(c, id, "unauthorized: send {\"type\":\"auth\",\"token\":...} first");
        ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, "unauthorized");
    } else if (strcmp(type, "ping") == 0) {
        json_t *r = json_pack("{s:s}", "type", "pong");
        if (id) json_object_set(r, "id", id);
        send_json(c, r);
    } else if (strcmp(type, "nick") == 0) {
        const char *name = str_field(o, "name");
        char old[HUB_MAX_NAME + 1];
        snprintf(old, sizeof old, "%s", hub_sub_name(SUB(c)) ? hub_sub_name(SUB(c)) : "");
        if (ID(c) && ID(c)->name[0]) {
            reply_error(c, id, "your name is the one you signed in with");
        } else if (!name || hub_sub_rename(SUB(c), name) != 0) {
            reply_error(c, id, "a name is 1 to 64 bytes");
        } else {
            ws_inbox(c, old, name);
            reply_ok(c, id, json_pack("{s:s}", "name", name));
        }
    } else if (!topic_request(type)) {
        unknown_type(c, id, type);
    } else if (!topic) {
        reply_error(c, id, "this request needs a \"topic\"");
    } else if (!allowed(c, id, type, topic)) {
        return;
    } else if (strcmp(type, "publish") == 0) {
        do_publish(c, o, id, topic);
    } else if (strcmp(type, "subscribe") == 0) {
        do_subscribe(c, o, id, topic);
    } else if (strcmp(type, "unsubscribe") == 0) {
        if (hub_unsubscribe(SUB(c), topic) != 0)
            reply_error(c, id, "not subscribed");
        else
            reply_ok(c, id, json_pack("{s:s}", "topic", topic));
    } else if (strcmp(type, "history") == 0 || strcmp(type, "presence") == 0) {
        query(c, o, id, type, topic);
    } else {
        unknown_type(c, id, type);
    }
}

/* With Redis, a topic nobody here follows is visited first (hub_visit:
 * its history and presence come from the cluster), then answered. */
struct ws_visit {
    ws_visit *next;
    ws_client *c; /* NULL: the connection went */
    json_t *o, *id;
};

static void query_reply(ws_client *c, json_t *o, json_t *id, const char *type, const char *topic);

static void visit_back(void *ud)
{
    ws_visit *v = ud;
    if (v->c) {
        for (ws_visit **p = &v->c->pend->visits; *p; p = &(*p)->next)
            if (*p == v) {
                *p = v->next;
                break;
            }
        query_reply(v->c, v->o, v->id, str_field(v->o, "type"), str_field(v->o, "topic"));
    }
    json_decref(v->o);
    json_decref(v->id);
    ax_free(v);
}

static void query(ws_client *c, json_t *o, json_t *id, const char *type, const char *topic)
{
    ws_visit *v = pend_get(c) ? ax_malloc(sizeof(*v)) : NULL;
    if (v) *v = (ws_visit){c->pend->visits, c, json_incref(o), json_incref(id)};
    if (v && hub_visit(GW(c)->sv->hub, topic, visit_back, v)) {
        c->pend->visits = v;
        return;
    }
    if (v) {
        json_decref(v->o);
        json_decref(v->id);
        ax_free(v);
    }
    query_reply(c, o, id, type, topic);
}

static void query_reply(ws_client *c, json_t *o, json_t *id, const char *type, const char *topic)
{
    hub *h = GW(c)->sv->hub;
    if (strcmp(type, "history") == 0) {
        json_t *s = json_object_get(o, "since"), *l = json_object_get(o, "limit");
        uint64_t since = json_is_integer(s) ? (uint64_t)json_integer_value(s) : 0;
        size_t limit = json_is_integer(l) ? (size_t)json_integer_value(l) : 100;
        json_t *msgs = json_array();
        uint64_t first = 0, last = hub_history(h, topic, since, limit ? limit : 100, history_push,
                                               msgs, &first);
        json_t *r =
            json_pack("{s:s,s:s,s:I,s:I,s:o}", "type", "history", "topic", topic, "last_seq",
                      (json_int_t)last, "first_seq", (json_int_t)first, "messages", msgs);
        if (id) json_object_set(r, "id", id);
        send_json(c, r);
    } else if (strcmp(type, "presence") == 0) {
        json_t *names = json_array();
        hub_presence(h, topic, name_push, names);
        json_t *r = json_pack("{s:s,s:s,s:o}", "type", "presence", "topic", topic, "names", names);
        if (id) json_object_set(r, "id", id);
        send_json(c, r);
    }
}

/* ---- the fast path ------------------------------------------------------------ */

/* An "id" the reply can copy as it came: what jansson would write back. */
static bool id_verbatim(const env_value *v)
{
    return v->kind == ENV_ABSENT || (v->kind == ENV_STRING && !v->escaped) ||
           (v->kind == ENV_INT && !(v->i == 0 && v->p[0] == '-'));
}

/* {"topic":…,"seq":…,"type":"ok","id":…}: reply_ok()'s bytes, without a tree. */
static void publish_ok(ws_client *c, const env_value *id, const char *topic, uint64_t seq)
{
    size_t tl = strlen(topic);
    char buf[64 + 6 * HUB_MAX_TOPIC + 64], *o = buf;
    if (env_quoted_len(topic, tl) + id->n + 64 > sizeof buf)
        return; /* the hub takes no such topic */
    memcpy(o, "{\"topic\":", 9);
    o = env_quote(o + 9, topic, tl);
    o += sprintf(o, ",\"seq\":%" PRIu64 ",\"type\":\"ok\"", seq);
    if (id->kind != ENV_ABSENT) {
        bool q = id->kind == ENV_STRING;
        memcpy(o, ",\"id\":\"", 6 + q);
        o += 6 + q;
        memcpy(o, id->p, id->n);
        o += id->n;
        if (q) *o++ = '"';
    }
    *o++ = '}';
    size_t n = (size_t)(o - buf);
    if (ax_ws_send_text(c->ws, buf, n) >= 0) {
        GW_ADD(GW(c)->sv->gw[GW_WS].bytes_out, n);
        GW_ADD(GW(c)->sv->gw[GW_WS].msgs_out, 1);
    }
}

/* A text publish read with the envelope scan (envelope.h), not a jansson
 * tree: the hot path.  False leaves the request to request(), which
 * parses it again and answers what this does not (errors, base64, other
 * types, refused topics). */
static bool fast_publish(ws_client *c, const void *data, size_t len)
{
    env_req q;
    const env_value *tv = &q.f[ENV_F_TOPIC], *pv = &q.f[ENV_F_PAYLOAD], *id = &q.f[ENV_F_ID];
    if (!c->authed || env_scan(data, len, &q) != 0 || !env_is(&q.f[ENV_F_TYPE], "publish") ||
        tv->kind != ENV_STRING || tv->n > HUB_MAX_TOPIC || pv->kind != ENV_STRING ||
        q.f[ENV_F_ENCODING].kind != ENV_ABSENT || q.f[ENV_F_RESPONSE_TOPIC].kind != ENV_ABSENT ||
        q.f[ENV_F_CORRELATION].kind != ENV_ABSENT ||
        q.f[ENV_F_CORRELATION_B64].kind != ENV_ABSENT || !id_verbatim(id))
        return false;
    char topic[HUB_MAX_TOPIC + 1];
    env_string(tv, topic);
    if (ID(c) && !auth_may_publish(ID(c), topic)) return false;
    char *p = pv->escaped ? malloc(pv->n + 1) : NULL;
    if (pv->escaped && !p) return false;
    size_t n = p ? env_string(pv, p) : pv->n;
    int err = 0;
    uint64_t ticket = 0;
    uint64_t seq = hub_publish_via(GW(c)->sv->hub, HUB_VIA_WS, SUB(c), topic, hub_sub_name(SUB(c)),
                                   p ? p : pv->p, n, &ticket, &err);
    free(p);
    if (seq && !ticket) {
        publish_ok(c, id, topic, seq);
        return true;
    }
    json_t *idj = id->kind == ENV_ABSENT ? NULL : json_loadb(id->p, id->n, JSON_DECODE_ANY, NULL);
    publish_done(c, idj, topic, seq, ticket, err);
    json_decref(idj);
    return true;
}

/* ---- connections ------------------------------------------------------------------- */

static const ax_ws_cbs ws_cbs;

/* The upgrade: credentials from the request (Authorization, ?token=) are
 * checked here (401 when wrong); with none, the client may still send
 * {"type":"auth"} first, unless anonymous access lets it in at once. */
static void ws_upgrade(ax_http_req *r, void *ud)
{
    gw_ws *g = ud;
    char why[400];
    if (!serve_origin_allowed(r, g->sv->cfg, why, sizeof why)) { /* origin.c */
        serve_http_error(r, 403, why);
        return;
    }
    bool given = serve_http_has_credentials(r);
    auth_identity *id = NULL;
    if (serve_http_identity(g->sv, r, &id) != 0 && given) {
        serve_http_unauthorized(r);
        return;
    }
    hub_sub *sub = hub_sub_new_ext(g->sv->hub, &ws_ops, g, NULL, sizeof(ws_client));
    if (!sub) {
        auth_identity_free(id);
        serve_http_error(r, 500, "out of memory");
        return;
    }
    ws_client *c = hub_sub_ext(sub);
    if (id) hub_sub_set_identity(sub, id);
    c->authed = !g->sv->auth || id;
    if (ax_ws_upgrade(r, &ws_cbs, &g->opts, c) < 0) {
        hub_sub_free(sub);
        auth_identity_free(id);
        return;
    }
    serve_limit_take(r, &c->lim); /* the connection is counted on, now as ours */
}

/* Free a client: its subscriber, then its identity (the subscriber's). */
static void client_free(ws_client *c)
{
    auth_identity *id = ID(c);
    ax_free(c->pend);
    hub_sub_free(SUB(c)); /* (c with it) */
    auth_identity_free(id);
}

/* Every message counts (msg_rate, byte_rate): over a limit, an error
 * reply and close 1008; false. */
static bool within_limits(ws_client *c, size_t len)
{
    hub_refusal ref = {0};
    char text[128];
    if (c->limited) return false;
    hub_limit_kind k =
        serve_limit_msg(GW(c)->sv, "websocket", ax_ws_conn(c->ws), &c->lim, len, &ref);
    if (k == HUB_LIMIT_OK) return true;
    c->limited = true;
    reply_error(c, NULL, serve_limit_text(k, &ref, text, sizeof text));
    ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, text);
    return false;
}

static void on_open(ax_ws *ws)
{
    ws_client *c = ax_ws_data(ws);
    gw_ws *g = GW(c);
    auth_identity *id = ID(c);
    if (id && id->name[0]) hub_sub_rename(SUB(c), id->name);
    if (id && id->name[0]) ws_inbox(c, NULL, id->name);
    c->ws = ws;
    g->nclients++;
    ax_ws_set_data(ws, c);
    GW_ADD(g->sv->gw[GW_WS].conns, 1);
    GW_ADD(g->sv->gw[GW_WS].accepted, 1);
    json_t *hello = json_pack("{s:s,s:s}", "type", "welcome", "server", "axon " AXON_VERSION);
    send_json(c, hello);
}

static void on_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    ws_client *c = ax_ws_data(ws);
    if (!c || c->stopped) return;
    gw_stats *st = &GW(c)->sv->gw[GW_WS];
    GW_ADD(st->bytes_in, len);
    GW_ADD(st->msgs_in, 1);
    if (!within_limits(c, len)) return;
    if (binary && !c->authed) {
        reply_error(c, NULL, "unauthorized");
        ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, "unauthorized");
        return;
    }
    if (binary) { /* topic \n payload */
        const char *nl = memchr(data, '\n', len);
        char topic[HUB_MAX_TOPIC + 1];
        size_t tl = nl ? (size_t)(nl - (const char *)data) : 0;
        int err = AX_EINVAL;
        if (nl && tl <= HUB_MAX_TOPIC) {
            memcpy(topic, data, tl);
            topic[tl] = '\0';
            if (!allowed(c, NULL, "publish", topic)) return;
            if (hub_publish_via(GW(c)->sv->hub, HUB_VIA_WS, SUB(c), topic, hub_sub_name(SUB(c)),
                                nl + 1, len - tl - 1, NULL, &err))
                return;
        }
        if (err == AX_EAGAIN && !throttle(c)) return; /* said once per pause */
        reply_error(c, NULL,
                    err == AX_EINVAL   ? "a binary message is: topic, newline, payload"
                    : err == AX_EAGAIN ? BUSY_TEXT
                                       : hub_strerror(err));
        return;
    }
    if (fast_publish(c, data, len)) return;
    json_error_t je;
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        GW_ADD(st->errors, 1);
        reply_error(c, NULL, o ? "a request is a JSON object" : je.text);
    } else {
        request(c, o);
    }
    json_decref(o);
}

static void on_drain(ax_ws *ws)
{
    ws_client *c = ax_ws_data(ws);
    if (c && !c->stopped) hub_sub_writable(SUB(c));
}

static void on_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    ws_client *c = ax_ws_data(ws);
    (void)code, (void)reason, (void)len;
    if (!c) return;
    if (!c->ws) { /* closed before on_open */
        serve_limit_close(GW(c)->sv, &c->lim);
        client_free(c);
        return;
    }
    GW(c)->nclients--;
    GW_SUB(GW(c)->sv->gw[GW_WS].conns, 1);
    serve_limit_close(GW(c)->sv, &c->lim);
    waits_cancel(c);
    for (ws_visit *v = c->pend ? c->pend->visits : NULL; v; v = v->next)
        v->c = NULL; /* (freed when their visit is done) */
    client_free(c);
}

static const ax_ws_cbs ws_cbs = {
    .on_open = on_open, .on_message = on_message, .on_drain = on_drain, .on_close = on_close};

static void stop_one(ws_client *c, const each_arg *a)
{
    if (!c->stopped) hub_sub_close(SUB(c)); /* nothing more is delivered; c stays until on_close */
    c->stopped = true;
    if (a->abort)
        ax_conn_abort(ax_ws_conn(c->ws), AX_ECLOSED);
    else
        ax_ws_close(c->ws, AX_WS_CLOSE_GOING_AWAY, "the server is shutting down");
}

static void gw_ws_stop(gw_ws *g, bool now)
{
    if (!g) return;
    ax_timer_stop(g->expiry);
    each_client(&(each_arg){.g = g, .fn = stop_one, .abort = now});
}

static size_t gw_ws_count(const gw_ws *g)
{
    return g ? g->nclients : 0;
}

static void gw_ws_free(gw_ws *g)
{
    if (g) ax_timer_free(g->unthrottle);
    if (g) ax_timer_free(g->expiry);
    ax_free(g); /* after gw_ws_count() is 0, at once before the HTTP server is freed */
}

/* Every second: end the sessions whose token has expired (a client keeps
 * its session by sending {"type":"auth"} with a new token before). */
static void expire_one(ws_client *c, const each_arg *a)
{
    if (c->authed && ID(c) && auth_expired(ID(c), a->now)) {
        reply_error(c, NULL, "token expired");
        ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, "token expired");
        c->authed = false;
    }
}

static void expire(ax_timer *t, void *ud)
{
    (void)t;
    each_client(&(each_arg){.g = ud, .fn = expire_one, .now = (int64_t)time(NULL)});
}

static gw_ws *gw_ws_start(serve *sv, ax_http_server *srv, int *err)
{
    gw_ws *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        *err = AX_ENOMEM;
        return NULL;
    }
    g->sv = sv;
    g->opts = (ax_ws_opts){.max_message = sv->cfg->max_payload * 4 / 3 + 4096,
                           .ping_interval_ms = 30000,
                           .deflate = true};
    g->ep = (ax_ws_endpoint){.cbs = &ws_cbs, .opts = &g->opts, .ud = g};
    if (!(g->unthrottle = ax_timer_new(sv->loop, unthrottle, g)) ||
        !(g->expiry = ax_timer_new(sv->loop, expire, g))) {
        *err = AX_ENOMEM;
    } else if ((*err = ax_http_route(srv, "GET", "/ws", ws_upgrade, g)) == 0) {
        hub_set_write_hooks(sv->hub, ax_ws_cork, ax_ws_uncork); /* a writev per client */
        if (sv->auth) ax_timer_start(g->expiry, 1000, 1000);
        return g;
    }
    ax_timer_free(g->unthrottle);
    ax_timer_free(g->expiry);
    ax_free(g);
    return NULL;
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static void *ws_mount(serve *sv, ax_http_server *srv, char *why, size_t why_len)
{
    int err = 0;
    gw_ws *g = gw_ws_start(sv, srv, &err);
    if (!g) snprintf(why, why_len, "cannot add the WebSocket gateway: %s", ax_strerror(err));
    return g;
}

static void ws_stop(void *g)
{
    gw_ws_stop(g, false);
}

static void ws_abort(void *g)
{
    gw_ws_stop(g, true);
}

static void ws_free(void *g)
{
    gw_ws_free(g);
}

static size_t ws_count(const void *g)
{
    return gw_ws_count(g);
}

const gw_ops gw_ws_gateway = {.name = "websocket",
                              .mount = ws_mount,
                              .stop = ws_stop,
                              .abort = ws_abort,
                              .free = ws_free,
                              .count = ws_count};
