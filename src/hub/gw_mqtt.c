/* gw_mqtt.c: the hub as an MQTT 3.1.1 and 5.0 broker (docs/mqtt.md), over
 * TCP (--mqtt, default 127.0.0.1:1883), TLS (--mqtts) and WebSocket at
 * /mqtt on the HTTP listeners (subprotocols mqtt and mqttv3.1).
 *
 * MQTT topics are the hub's topics, byte for byte: a PUBLISH to
 * chat/lobby reaches the WebSocket, SSE, line and UDP subscribers of
 * chat/lobby with its payload unchanged, and what they publish reaches the
 * MQTT subscribers; history and sequence numbers apply as to any publish.
 * Packets are parsed and encoded by src/proto/mqtt; sessions, delivery and
 * the output cork are in mqtt_sess.c (gw_mqtt.h says how they fit).
 *
 * Who a client is: CONNECT's password is tried as a token (JWT, as
 * --auth-secret signs) and then as the user name's password (the password
 * file, with the ACL); without a password the client is anonymous, if the
 * settings allow it (CONNACK 0x86 / 3.1.1 4 for bad credentials, 0x87 / 5
 * when anonymous access is off).  Every PUBLISH and SUBSCRIBE is checked:
 * 5.0 answers 0x87 in PUBACK/PUBREC/SUBACK; 3.1.1 has no refusal for a
 * PUBLISH, so the broker acknowledges it and drops it (3.1.1 3.3.5; what
 * mosquitto does) and SUBACK says 0x80.  Retained messages go through the
 * same read check as live delivery (hub_retained()).
 *
 * Acknowledgements keep the fsync mode's promise: a PUBACK or PUBREC for a
 * message leaves once the store has committed it, and in the order the
 * PUBLISHes came (3.1.1 4.6). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "gw_mqtt.h"
#include "redis.h"

#define CONNECT_TIMEOUT_MS 10000
#define ALIAS_MAX 64 /* topic aliases a 5.0 client may set */
#define SYS_INTERVAL_MS 10000
#define WS_HELD_READ (64 * 1024) /* a read of the loop's (its buffer): frames after a pause */

struct mq_wait { /* an acknowledgement in order, maybe waiting for the store */
    hub_ack ack; /* first: the callback gets it */
    mq_conn *c;
    mq_wait *next;
    hub_ack ack2; /* a second ticket (Redis: another row, answered alone) */
    uint8_t pending;
    bool ready;
    uint8_t type, code;
    uint16_t pid;
};

static size_t max_packet(const gw_mqtt *g)
{
    return g->sv->cfg->max_payload + 8192;
}

const char *mq_sender(const mq_sess *s)
{
    return mq_sess_id(s) && mq_sess_id(s)->name[0] ? mq_sess_id(s)->name : mq_cid(s);
}

static unsigned enc_version(const mq_conn *c)
{
    return c->version ? c->version : AX_MQTT_V311;
}

/* ---- sending ---------------------------------------------------------------------------- */

void mq_send(mq_conn *c, const ax_mqtt_packet *p)
{
    size_t n = ax_mqtt_encode(NULL, 0, enc_version(c), p);
    uint8_t *b = n ? mq_cork_room(c, n) : NULL;
    if (b) ax_mqtt_encode(b, n, enc_version(c), p);
}

void mq_send_ack(mq_conn *c, unsigned type, uint16_t pid, uint8_t code)
{
    uint8_t b[AX_MQTT_ACK_MAX];
    size_t n = ax_mqtt_encode_ack(b, enc_version(c), type, pid, c->version == 5 ? code : 0);
    uint8_t *p = n ? mq_cork_room(c, n) : NULL;
    if (p) memcpy(p, b, n);
}

void mq_close(mq_conn *c, uint8_t code, const char *why)
{
    if (c->closing) return;
    c->closing = true;
    if (why) ax_log(AX_LOG_DEBUG, "mqtt client %s: %s", c->s ? mq_cid(c->s) : "-", why);
    if (code && c->version == AX_MQTT_V5 && c->connacked) {
        ax_mqtt_packet p = {.type = AX_MQTT_DISCONNECT};
        p.u.reason.code = code;
        if (why) {
            p.u.reason.props.reason_string = (ax_mqtt_str){why, strlen(why)};
            ax_mqtt_props_set(&p.u.reason.props, AX_MQTT_PROP_REASON_STRING);
        }
        mq_send(c, &p);
    }
    mq_cork_flush(c);
    if (mq_tcp(c))
        ax_conn_close(mq_tcp(c));
    else if (mq_ws(c))
        ax_ws_close(mq_ws(c), AX_WS_CLOSE_NORMAL, "");
}

/* ---- acknowledgements in order -------------------------------------------------------------- */

/* The first acknowledgement waiting, taken off the ring; NULL: none, or
 * (ready_only) the first is not ready. */
static mq_wait *wait_pop(mq_conn *c, bool ready_only)
{
    mq_cx *x = c->x;
    mq_wait *w = x && x->wtail ? x->wtail->next : NULL;
    if (!w || (ready_only && !w->ready)) return NULL;
    if (w == x->wtail)
        x->wtail = NULL;
    else
        x->wtail->next = w->next;
    return w;
}

static void waits_flush(mq_conn *c)
{
    mq_wait *w;
    while ((w = wait_pop(c, true))) {
        if (w->code >= 0x80 && c->version != AX_MQTT_V5)
            mq_close(c, 0, "the store failed: the client sends it again"); /* 3.1.1: no NACK */
        else
            mq_send_ack(c, w->type, w->pid, w->code);
        ax_free(w);
    }
}

static void wait_done(hub_ack *a, int status)
{
    mq_wait *w = (mq_wait *)a;
    if (status) w->code = AX_MQTT_RC_UNSPECIFIED;
    if (w->pending && --w->pending) return; /* (the other ticket is not answered yet) */
    w->ready = true;
    waits_flush(w->c);
}

static void wait2_done(hub_ack *a, int status)
{
    wait_done((hub_ack *)((char *)a - offsetof(mq_wait, ack2)), status);
}

/* Acknowledge now, or once `ticket` (and `then`, when not 0) is
 * committed; always in order. */
static void ack_queue2(mq_conn *c, unsigned type, uint16_t pid, uint8_t code, uint64_t ticket,
                       uint64_t then)
{
    if (!ticket && !(c->x && c->x->wtail)) {
        mq_send_ack(c, type, pid, code);
        return;
    }
    mq_cx *x = mq_cx_get(c);
    mq_wait *w = x ? ax_calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        mq_close(c, AX_MQTT_RC_UNSPECIFIED, "out of memory");
        return;
    }
    w->c = c;
    w->type = (uint8_t)type;
    w->pid = pid;
    w->code = code;
    w->ready = !ticket;
    if (ticket && then) { /* both waited for at once: either may be answered first */
        w->pending = 2;
        if (hub_ack_wait(mq_gw(c)->sv->hub, &w->ack2, then, wait2_done) != 0) w->pending = 1;
    }
    if (ticket && hub_ack_wait(mq_gw(c)->sv->hub, &w->ack, ticket, wait_done) != 0) {
        if (w->pending == 2) hub_ack_cancel(mq_gw(c)->sv->hub, &w->ack2);
        w->ready = true;
    }
    w->next = x->wtail ? x->wtail->next : w;
    if (x->wtail) x->wtail->next = w;
    x->wtail = w;
}

static void ack_queue(mq_conn *c, unsigned type, uint16_t pid, uint8_t code, uint64_t ticket)
{
    ack_queue2(c, type, pid, code, ticket, 0);
}

static void waits_cancel(mq_conn *c)
{
    mq_wait *w;
    while ((w = wait_pop(c, false))) {
        if (!w->ready) hub_ack_cancel(mq_gw(c)->sv->hub, &w->ack);
        if (!w->ready && w->pending) hub_ack_cancel(mq_gw(c)->sv->hub, &w->ack2);
        ax_free(w);
    }
}

/* ---- CONNECT ------------------------------------------------------------------------------- */

static void refuse(mq_conn *c, uint8_t code, const char *why)
{
    ax_mqtt_packet p = {.type = AX_MQTT_CONNACK};
    p.u.connack.code = code;
    if (!c->version) c->version = AX_MQTT_V311; /* an unknown level: the 3.1.1 format */
    if (c->version == AX_MQTT_V5 && why) {
        p.u.connack.props.reason_string = (ax_mqtt_str){why, strlen(why)};
        ax_mqtt_props_set(&p.u.connack.props, AX_MQTT_PROP_REASON_STRING);
    }
    mq_send(c, &p);
    GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].errors, 1);
    ax_log(AX_LOG_INFO, "mqtt: connection refused: %s", why);
    mq_close(c, 0, NULL);
}

static bool looks_like_token(const char *p, size_t n)
{
    const char *d1 = memchr(p, '.', n);
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - p)) : NULL;
    return n > 20 && d2 && !memchr(p, ':', n);
}

/* The identity of CONNECT's credentials: 0 with *id (NULL: no auth
 * configured), or the reason code to refuse with. */
static ax_conn *conn_of(const mq_conn *c)
{
    return mq_tcp(c) ? mq_tcp(c) : ax_ws_conn(mq_ws(c));
}

static uint8_t identify(mq_conn *c, const ax_mqtt_connect *cn, const char *cid, auth_identity **id)
{
    serve *sv = mq_gw(c)->sv;
    ax_addr peer, *from = ax_conn_peer(conn_of(c), &peer) == 0 ? &peer : NULL;
    *id = NULL;
    if (!sv->auth) return 0;
    if (!cn->has_password) {
        *id = serve_anonymous(sv);
        if (!*id) serve_refused(sv, "mqtt", from, "no credentials");
        return *id ? 0 : AX_MQTT_RC_NOT_AUTHORIZED;
    }
    static __thread char pass[AUTH_MAX_TOKEN + 1]; /* (WebSocket clients on every thread) */
    char user[AUTH_MAX_NAME + 1];
    size_t pl = cn->password.len, ul = cn->username.len;
    if (pl > AUTH_MAX_TOKEN || memchr(cn->password.ptr, 0, pl))
        return AX_MQTT_RC_BAD_USER_OR_PASSWORD;
    memcpy(pass, cn->password.ptr, pl);
    pass[pl] = '\0';
    const char *why = NULL;
    if (looks_like_token(pass, pl)) *id = serve_token(sv, from, pass, pl);
    if (!*id && cn->has_username && ul && ul <= AUTH_MAX_NAME) {
        char reason[256] = "";
        memcpy(user, cn->username.ptr, ul);
        user[ul] = '\0';
        if (!serve_limit_login(sv, from)) { /* (logged once by the guard) */
            why = "too many failed logins from this address";
        } else if (!(*id = auth_login(sv->auth, user, pass, cid, reason, sizeof reason))) {
            serve_limit_login_failed(sv, from);
            why = "bad user name or password"; /* (never which of the two) */
        }
    }
    memset(pass, 0, pl);
    if (!*id) serve_refused(sv, "mqtt", from, why);
    return *id ? 0 : AX_MQTT_RC_BAD_USER_OR_PASSWORD;
}

static mq_will *will_new(const ax_mqtt_connect *cn, bool v5)
{
    uint8_t ext[4096];
    size_t el = 0;
    if (v5) {
        uint64_t keep =
            AX_MQTT_PBIT(AX_MQTT_PROP_PAYLOAD_FORMAT) | AX_MQTT_PBIT(AX_MQTT_PROP_CONTENT_TYPE) |
            AX_MQTT_PBIT(AX_MQTT_PROP_RESPONSE_TOPIC) |
            AX_MQTT_PBIT(AX_MQTT_PROP_CORRELATION_DATA) | AX_MQTT_PBIT(AX_MQTT_PROP_USER);
        el = ax_mqtt_props_filter(&cn->will_props, keep, ext, sizeof ext);
        if (el > sizeof ext) el = 0; /* too many properties to keep: left out */
    }
    size_t tl = cn->will_topic.len, pl = cn->will_payload.len;
    mq_will *w = ax_calloc(1, sizeof(*w) + tl + 1 + pl + el);
    if (!w) return NULL;
    w->qos = cn->will_qos;
    w->retain = cn->will_retain;
    if (v5 && ax_mqtt_props_has(&cn->will_props, AX_MQTT_PROP_WILL_DELAY))
        w->delay_s = cn->will_props.will_delay;
    if (v5 && ax_mqtt_props_has(&cn->will_props, AX_MQTT_PROP_MESSAGE_EXPIRY))
        w->expiry_s = cn->will_props.message_expiry;
    w->topic = (char *)(w + 1);
    memcpy(w->topic, cn->will_topic.ptr, tl);
    w->payload = (uint8_t *)w->topic + tl + 1;
    if (pl) memcpy(w->payload, cn->will_payload.ptr, pl);
    w->len = pl;
    w->ext = w->payload + pl;
    if (el) memcpy(w->ext, ext, el);
    w->ext_len = el;
    return w;
}

/* The session's will when its connection ends without DISCONNECT: now,
 * or after its delay (5.0) if the session lives that long. */
static void will_due(mq_sess *s, mq_will *w)
{
    if (!w) return;
    if (mq_sess_g(s)->stopping) {
        mq_will_free(w);
        return;
    }
    if (!w->delay_s || !mq_expiry(s)) {
        mq_will_publish(mq_sess_g(s), w, mq_sess_id(s), mq_sender(s));
        mq_will_free(w);
        return;
    }
    mq_flight *f = mq_flight_get(s);
    if (!f) { /* no memory to keep it waiting: now, as without a delay */
        mq_will_publish(mq_sess_g(s), w, mq_sess_id(s), mq_sender(s));
        mq_will_free(w);
        return;
    }
    mq_will_free(f->will);
    f->will = w;
    w->at = ax_loop_now(mq_sess_g(s)->sv->loop) + (uint64_t)w->delay_s * 1000;
}

/* A second connection with the same client id: the first one goes. */
void mq_take_over(mq_sess *s)
{
    mq_conn *old = mq_sess_conn(s);
    mq_will *w = old->x ? old->x->will : NULL;
    if (old->x) old->x->will = NULL;
    mq_close(old, AX_MQTT_RC_SESSION_TAKEN_OVER, "another connection took the session over");
    old->s = NULL;
    mq_sess_detach(s);
    will_due(s, w);
}

/* A session resumes only for the user it belonged to. */
static bool same_user(const mq_sess *s, const auth_identity *id)
{
    if (mq_sess_id(s) && id && mq_sess_id(s)->anonymous != id->anonymous) return false;
    return strcmp(mq_sess_owner(s), id ? id->name : "") == 0;
}

/* The session for this CONNECT: resumed, or new. */
static mq_sess *session_for(mq_conn *c, const char *cid, size_t cl, bool clean,
                            const auth_identity *id, bool *present)
{
    mq_sess *s = mq_sess_find(mq_gw(c), cid, cl);
    *present = false;
    if (s && mq_sess_conn(s)) mq_take_over(s);
    if (s && (clean || !same_user(s, id))) {
        mq_sess_free(s, false); /* a will still waiting goes now */
        s = NULL;
    }
    if (s) {
        mq_will_free(s->fl->will);           /* back before the will's delay: no will */
        if (s->fl->will) s->fl->will = NULL; /* (a shared empty fl has none) */
        *present = true;
        return s;
    }
    return mq_sess_new(mq_gw(c), cid, cl);
}

/* The Receive Maximum the broker announces (5.0): mqtt_inflight, as for
 * the way out. */
static uint16_t recv_max_in(const gw_mqtt *g)
{
    uint32_t n = g->sv->cfg->mqtt_inflight;
    return (uint16_t)(n == 0 ? 1 : n > 65535 ? 65535 : n);
}

/* What CONNACK tells a 5.0 client besides the result. */
typedef struct connack_info {
    bool present, assigned, capped;
    uint32_t expiry;    /* the session expiry, sent when capped */
    uint16_t keepalive; /* Server Keep Alive; 0: the client's stands */
    const char *resp;   /* Response Information, or NULL */
    const char *auth;   /* SCRAM's server-final message, or NULL */
    size_t auth_len;
} connack_info;

static void connack(mq_conn *c, const connack_info *ci)
{
    ax_mqtt_packet p = {.type = AX_MQTT_CONNACK};
    ax_mqtt_props *pr = &p.u.connack.props;
    p.u.connack.session_present = ci->present;
    if (c->version == AX_MQTT_V5) {
        if (ci->assigned) {
            pr->assigned_client_id = (ax_mqtt_str){mq_cid(c->s), strlen(mq_cid(c->s))};
            ax_mqtt_props_set(pr, AX_MQTT_PROP_ASSIGNED_CLIENT_ID);
        }
        if (ci->capped) {
            pr->session_expiry = ci->expiry;
            ax_mqtt_props_set(pr, AX_MQTT_PROP_SESSION_EXPIRY);
        }
        if (ci->keepalive) {
            pr->server_keep_alive = ci->keepalive;
            ax_mqtt_props_set(pr, AX_MQTT_PROP_SERVER_KEEP_ALIVE);
        }
        if (ci->resp) {
            pr->response_info = (ax_mqtt_str){ci->resp, strlen(ci->resp)};
            ax_mqtt_props_set(pr, AX_MQTT_PROP_RESPONSE_INFO);
        }
        if (ci->auth) {
            pr->auth_method = (ax_mqtt_str){AUTH_SCRAM_MECH, strlen(AUTH_SCRAM_MECH)};
            pr->auth_data = (ax_mqtt_str){ci->auth, ci->auth_len};
            ax_mqtt_props_set(pr, AX_MQTT_PROP_AUTH_METHOD);
            ax_mqtt_props_set(pr, AX_MQTT_PROP_AUTH_DATA);
        }
        pr->topic_alias_max = ALIAS_MAX;
        ax_mqtt_props_set(pr, AX_MQTT_PROP_TOPIC_ALIAS_MAX);
        pr->receive_max = recv_max_in(mq_gw(c));
        ax_mqtt_props_set(pr, AX_MQTT_PROP_RECEIVE_MAX);
        pr->max_packet_size = (uint32_t)max_packet(mq_gw(c));
        ax_mqtt_props_set(pr, AX_MQTT_PROP_MAX_PACKET_SIZE);
    }
    mq_send(c, &p);
    c->connacked = true;
}

/* ---- enhanced authentication (5.0, section 4.12): SCRAM-SHA-512 --------------------------- */

/* A CONNECT waiting for its SCRAM exchange to end: the packet as it came
 * (parsed again when the client has proved itself). */
struct mq_auth {
    auth_scram *s;
    size_t len;
    uint8_t raw[];
};

static void mq_auth_free(mq_auth *a)
{
    if (!a) return;
    auth_scram_free(a->s);
    ax_free(a);
}

static void send_auth(mq_conn *c, const char *data, size_t len)
{
    ax_mqtt_packet p = {.type = AX_MQTT_AUTH};
    p.u.reason.code = AX_MQTT_RC_CONTINUE_AUTH;
    ax_mqtt_props *pr = &p.u.reason.props;
    pr->auth_method = (ax_mqtt_str){AUTH_SCRAM_MECH, strlen(AUTH_SCRAM_MECH)};
    pr->auth_data = (ax_mqtt_str){data, len};
    ax_mqtt_props_set(pr, AX_MQTT_PROP_AUTH_METHOD);
    ax_mqtt_props_set(pr, AX_MQTT_PROP_AUTH_DATA);
    mq_send(c, &p);
}

static bool is_scram(const ax_mqtt_props *pr)
{
    return pr->auth_method.len == strlen(AUTH_SCRAM_MECH) &&
           memcmp(pr->auth_method.ptr, AUTH_SCRAM_MECH, pr->auth_method.len) == 0;
}

/* CONNECT with an Authentication Method: the server-first message in an
 * AUTH packet, the CONNECT kept for later. */
static void start_auth(mq_conn *c, const ax_mqtt_connect *cn, const uint8_t *raw, size_t rl)
{
    serve *sv = mq_gw(c)->sv;
    ax_addr peer, *from = ax_conn_peer(conn_of(c), &peer) == 0 ? &peer : NULL;
    if (!is_scram(&cn->props))
        return refuse(c, AX_MQTT_RC_BAD_AUTH_METHOD,
                      "authentication method not supported (" AUTH_SCRAM_MECH " is)");
    if (!sv->auth || !auth_passwds(sv->auth))
        return refuse(c, AX_MQTT_RC_BAD_AUTH_METHOD, AUTH_SCRAM_MECH " needs a password file");
    if (!serve_limit_login(sv, from))
        return refuse(c, AX_MQTT_RC_BAD_USER_OR_PASSWORD,
                      "too many failed logins from this address");
    char out[AUTH_SCRAM_MAX];
    size_t ol = 0;
    const char *why = NULL;
    mq_auth *a = mq_cx_get(c) ? ax_malloc(sizeof(*a) + rl) : NULL;
    if (!a) return refuse(c, AX_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    a->s = auth_scram_start(sv->auth, cn->props.auth_data.ptr, cn->props.auth_data.len, out, &ol,
                            &why);
    if (!a->s) {
        ax_free(a);
        serve_refused(sv, "mqtt", from, why);
        return refuse(c, AX_MQTT_RC_NOT_AUTHORIZED, why);
    }
    a->len = rl;
    memcpy(a->raw, raw, rl);
    c->x->auth = a; /* (its cx made above) */
    send_auth(c, out, ol);
}

static void connect_as(mq_conn *c, const ax_mqtt_connect *cn, auth_identity *given,
                       const char *adata, size_t alen);

/* AUTH: the client-final message; the CONNECT goes on as the user proved. */
static void do_auth(mq_conn *c, const ax_mqtt_reason_pkt *ap)
{
    serve *sv = mq_gw(c)->sv;
    mq_auth *a = c->x ? c->x->auth : NULL;
    if (!a)
        return mq_close(c, c->s ? AX_MQTT_RC_NOT_AUTHORIZED : AX_MQTT_RC_PROTOCOL_ERROR,
                        c->s ? "re-authentication is not supported" : "AUTH without CONNECT");
    if (ap->code != AX_MQTT_RC_CONTINUE_AUTH || !is_scram(&ap->props))
        return refuse(c, AX_MQTT_RC_PROTOCOL_ERROR, "AUTH: continue with " AUTH_SCRAM_MECH);
    ax_mqtt_packet pkt;
    int n = ax_mqtt_parse(a->raw, a->len, AX_MQTT_V5, max_packet(mq_gw(c)), &pkt);
    if (n <= 0 || pkt.type != AX_MQTT_CONNECT)
        return refuse(c, AX_MQTT_RC_SERVER_UNAVAILABLE, "the CONNECT kept is unreadable");
    char cid[MQ_MAX_CLIENT_ID + 1];
    size_t cl = pkt.u.connect.client_id.len; /* (checked: at most MQ_MAX_CLIENT_ID) */
    memcpy(cid, pkt.u.connect.client_id.ptr, cl);
    cid[cl] = '\0';
    char out[AUTH_SCRAM_MAX];
    size_t ol = 0;
    const char *why = NULL;
    auth_identity *id = auth_scram_finish(a->s, sv->auth, ap->props.auth_data.ptr,
                                          ap->props.auth_data.len, cl ? cid : NULL, out, &ol, &why);
    if (!id) {
        ax_addr peer, *from = ax_conn_peer(conn_of(c), &peer) == 0 ? &peer : NULL;
        serve_limit_login_failed(sv, from);
        serve_refused(sv, "mqtt", from, why);
        return refuse(c, AX_MQTT_RC_BAD_USER_OR_PASSWORD, "bad user name or password");
    }
    c->x->auth = NULL; /* (pkt points into a->raw until connect_as returns) */
    connect_as(c, &pkt.u.connect, id, out, ol);
    mq_auth_free(a);
}

static void do_connect(mq_conn *c, const ax_mqtt_connect *cn, const uint8_t *raw, size_t rl)
{
    c->version = cn->level;
    c->last_in_ms = (uint32_t)ax_loop_now(mq_gw(c)->sv->loop); /* keep alive counts from here */
    if (cn->client_id.len > MQ_MAX_CLIENT_ID)
        return refuse(c, AX_MQTT_RC_CLIENT_ID_INVALID, "client id longer than 256 bytes");
    if (c->version == AX_MQTT_V5 && ax_mqtt_props_has(&cn->props, AX_MQTT_PROP_AUTH_METHOD))
        return start_auth(c, cn, raw, rl);
    connect_as(c, cn, NULL, NULL, 0);
}

/* The rest of CONNECT, with the identity SCRAM proved (given) or from its
 * user name and password. */
static void connect_as(mq_conn *c, const ax_mqtt_connect *cn, auth_identity *given,
                       const char *adata, size_t alen)
{
    gw_mqtt *g = mq_gw(c);
    bool v5 = c->version == AX_MQTT_V5;
    char cid[MQ_MAX_CLIENT_ID + 1];
    size_t cl = cn->client_id.len;
    bool assigned = cl == 0;
    if (assigned && !v5 && !cn->clean)
        return refuse(c, AX_MQTT_RC_CLIENT_ID_INVALID, "an empty client id needs clean session");
    if (assigned)
        cl = (size_t)snprintf(cid, sizeof cid, "axon-%llx-%llx", (unsigned long long)time(NULL),
                              (unsigned long long)++g->next_auto_id);
    else
        memcpy(cid, cn->client_id.ptr, cl);
    cid[cl] = '\0';
    auth_identity *id = given;
    uint8_t rc = given ? 0 : identify(c, cn, cid, &id);
    if (rc)
        return refuse(c, rc,
                      rc == AX_MQTT_RC_NOT_AUTHORIZED ? "not authorized"
                                                      : "bad user name or password");
    /* mqtt_max_keepalive (as mosquitto's max_keepalive): a 5.0 client
     * asking longer, or none, is told the server's; 3.1.1 has no way to
     * tell it, so such a client is refused with "identifier rejected". */
    uint32_t kmax = g->sv->cfg->mqtt_max_keepalive_s;
    uint16_t server_ka = 0;
    c->keepalive_s = cn->keep_alive;
    if (kmax < 65535 && (cn->keep_alive == 0 || cn->keep_alive > kmax)) {
        if (!v5) {
            auth_identity_free(id);
            return refuse(c, AX_MQTT_RC_CLIENT_ID_INVALID, "keep alive above mqtt_max_keepalive");
        }
        c->keepalive_s = server_ka = (uint16_t)kmax;
    }
    bool rm = v5 && ax_mqtt_props_has(&cn->props, AX_MQTT_PROP_RECEIVE_MAX);
    bool mp = v5 && ax_mqtt_props_has(&cn->props, AX_MQTT_PROP_MAX_PACKET_SIZE);
    if (rm || mp) {
        if (!mq_cx_get(c)) {
            auth_identity_free(id);
            return refuse(c, AX_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        }
        if (rm) c->x->recv_max = cn->props.receive_max;
        if (mp) c->x->max_packet = cn->props.max_packet_size;
    }
    uint32_t expiry =
        v5 ? (ax_mqtt_props_has(&cn->props, AX_MQTT_PROP_SESSION_EXPIRY) ? cn->props.session_expiry
                                                                         : 0)
           : (cn->clean ? 0 : UINT32_MAX);
    bool capped = expiry > g->sv->cfg->mqtt_session_expiry_s;
    if (capped) expiry = g->sv->cfg->mqtt_session_expiry_s;
    mq_cx *x = cn->will ? mq_cx_get(c) : NULL;
    if (x) x->will = will_new(cn, v5);
    mq_connect_args a = {
        .expiry = expiry,
        .server_ka = server_ka,
        .clean = cn->clean,
        .capped = capped,
        .assigned = assigned,
        .want_resp = v5 && ax_mqtt_props_has(&cn->props, AX_MQTT_PROP_REQUEST_RESPONSE_INFO) &&
                     cn->props.request_response_info,
        .auth = adata,
        .auth_len = alen};
    /* with Redis: the session may be another node's; this goes on later */
    if (mq_sess_claim(c, cid, cl, id, &a)) return;
    mq_connect_finish(c, cid, cl, id, &a);
}

void mq_connect_finish(mq_conn *c, const char *cid, size_t cl, auth_identity *id,
                       const mq_connect_args *a)
{
    gw_mqtt *g = mq_gw(c);
    bool v5 = c->version == AX_MQTT_V5;
    uint32_t expiry = a->expiry;
    bool present;
    mq_sess *s = session_for(c, cid, cl, a->clean, id, &present);
    if (!s) {
        auth_identity_free(id);
        return refuse(c, AX_MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
    }
    mq_sess_set_conn(s, c);
    c->s = s;
    mq_set_expiry(s, expiry);
    auth_identity *old = mq_sess_id(s);
    hub_sub_set_identity(hub_sub_of_ext(s), id); /* before the old one is freed (kicked too: */
    auth_identity_free(old);                     /* the session keeps it there) */
    /* Request Response Information: the topic under which this client may
     * take responses (docs/mqtt.md: `pattern readwrite reply/%c/#`). */
    char resp[sizeof g->sv->cfg->mqtt_response_prefix + MQ_MAX_CLIENT_ID + 1];
    const char *prefix = g->sv->cfg->mqtt_response_prefix;
    bool want_resp = v5 && *prefix && a->want_resp;
    if (want_resp) snprintf(resp, sizeof resp, "%s/%s", prefix, cid);
    connack_info ci = {.present = present,
                       .assigned = a->assigned && v5,
                       .capped = a->capped && v5,
                       .expiry = expiry,
                       .keepalive = a->server_ka,
                       .resp = want_resp ? resp : NULL,
                       .auth = a->auth,
                       .auth_len = a->auth_len};
    connack(c, &ci);
    mq_sess_save(s);
    mq_sess_resume(s);
}

/* ---- PUBLISH ------------------------------------------------------------------------------- */

#define FORWARDED_PROPS                                                                            \
    (AX_MQTT_PBIT(AX_MQTT_PROP_PAYLOAD_FORMAT) | AX_MQTT_PBIT(AX_MQTT_PROP_CONTENT_TYPE) |         \
     AX_MQTT_PBIT(AX_MQTT_PROP_RESPONSE_TOPIC) | AX_MQTT_PBIT(AX_MQTT_PROP_CORRELATION_DATA) |     \
     AX_MQTT_PBIT(AX_MQTT_PROP_USER))

/* The topic of a PUBLISH, through its 5.0 alias; false: the connection is
 * closed. */
static bool topic_of(mq_conn *c, const ax_mqtt_publish *p, ax_mqtt_str *t)
{
    *t = p->topic;
    if (c->version != AX_MQTT_V5 || !ax_mqtt_props_has(&p->props, AX_MQTT_PROP_TOPIC_ALIAS))
        return true;
    uint16_t a = p->props.topic_alias;
    if (!a || a > (c->s ? ALIAS_MAX : 0)) { /* (5.0: with a session, ALIAS_MAX: its CONNACK's) */
        mq_close(c, AX_MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
        return false;
    }
    mq_cx *x = mq_cx_get(c);
    if (x && !x->alias) x->alias = ax_calloc(ALIAS_MAX + 1u, sizeof(char *));
    if (!x || !x->alias) {
        mq_close(c, AX_MQTT_RC_UNSPECIFIED, "out of memory");
        return false;
    }
    if (t->len) {
        char *n = ax_malloc(t->len + 1);
        if (!n) return true; /* still published; the alias is not set */
        memcpy(n, t->ptr, t->len);
        n[t->len] = '\0';
        ax_free(x->alias[a]);
        x->alias[a] = n;
        return true;
    }
    if (!x->alias[a]) {
        mq_close(c, AX_MQTT_RC_PROTOCOL_ERROR, "a topic alias used before it was set");
        return false;
    }
    *t = (ax_mqtt_str){x->alias[a], strlen(x->alias[a])};
    return true;
}

/* What the hub said, as a reason code. */
static uint8_t publish_code(int err)
{
    switch (err) {
    case AX_EINVAL:
        return AX_MQTT_RC_TOPIC_NAME_INVALID;
    case AX_EMSGSIZE:
        return AX_MQTT_RC_PACKET_TOO_LARGE;
    case AX_EAGAIN:
    case HUB_ETOPICS:
        return AX_MQTT_RC_QUOTA_EXCEEDED;
    }
    return AX_MQTT_RC_UNSPECIFIED;
}

static uint64_t publish_hub(mq_conn *c, const ax_mqtt_publish *p, const char *topic,
                            uint64_t *ticket, int *err)
{
    mq_sess *s = c->s;
    uint8_t ext[1024], *big = NULL;
    size_t el = 0;
    if (c->version == AX_MQTT_V5 && p->props.raw.len) {
        el = ax_mqtt_props_filter(&p->props, FORWARDED_PROPS, ext, sizeof ext);
        if (el > sizeof ext && (big = ax_malloc(el)))
            ax_mqtt_props_filter(&p->props, FORWARDED_PROPS, big, el);
        else if (el > sizeof ext)
            el = 0;
    }
    hub_pub hp = {.origin = mq_sess_sub(s),
                  .topic = topic,
                  .sender = mq_sender(s),
                  .payload = p->payload,
                  .len = p->payload_len,
                  .qos = p->qos,
                  .retain = p->retain,
                  .ext = big ? big : ext,
                  .ext_len = el,
                  .via = HUB_VIA_MQTT};
    if (c->version == AX_MQTT_V5 && ax_mqtt_props_has(&p->props, AX_MQTT_PROP_MESSAGE_EXPIRY))
        hp.expiry_s = p->props.message_expiry;
    uint64_t seq = hub_publish_pub(mq_gw(c)->sv->hub, &hp, ticket, err);
    ax_free(big);
    return seq;
}

/* Every PUBLISH counts (msg_rate, byte_rate): over a limit, 5.0 gets
 * DISCONNECT 0x96 (message rate too high), 3.1.1 a closed connection. */
static bool over_limit(mq_conn *c, size_t bytes)
{
    hub_refusal ref = {0};
    char text[128];
    hub_limit_kind k = serve_limit_msg(mq_gw(c)->sv, "mqtt", conn_of(c), mq_lim(c), bytes, &ref);
    if (k == HUB_LIMIT_OK) return false;
    GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].errors, 1);
    mq_close(c, AX_MQTT_RC_MESSAGE_RATE_TOO_HIGH, serve_limit_text(k, &ref, text, sizeof text));
    return true;
}

/* The client's QoS 1/2 PUBLISHes the broker has not answered with PUBACK
 * or PUBCOMP yet: QoS 2 ids not released, and PUBACKs and PUBCOMPs
 * waiting for the store. */
static uint32_t unacked_in(const mq_conn *c)
{
    uint32_t n = c->s->fl->nrel;
    const mq_wait *tail = c->x ? c->x->wtail : NULL;
    for (const mq_wait *w = tail ? tail->next : NULL; w; w = w == tail ? NULL : w->next)
        if (w->type == AX_MQTT_PUBACK || w->type == AX_MQTT_PUBCOMP) n++;
    return n;
}

static void do_publish(mq_conn *c, const ax_mqtt_publish *p)
{
    mq_sess *s = c->s;
    bool v5 = c->version == AX_MQTT_V5;
    unsigned ack = p->qos == 2 ? AX_MQTT_PUBREC : AX_MQTT_PUBACK;
    GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].msgs_in, 1);
    ax_mqtt_str t;
    if (!topic_of(c, p, &t)) return;
    char topic[HUB_MAX_TOPIC + 1];
    uint8_t code = 0;
    if (t.len > HUB_MAX_TOPIC || !hub_topic_valid(t.ptr, t.len)) {
        code = AX_MQTT_RC_TOPIC_NAME_INVALID;
    } else {
        memcpy(topic, t.ptr, t.len);
        topic[t.len] = '\0';
        if (topic[0] == '$' || (mq_sess_id(s) && !auth_may_publish(mq_sess_id(s), topic)))
            code = AX_MQTT_RC_NOT_AUTHORIZED; /* $-topics are the broker's */
    }
    if (p->qos == 2 && mq_rel_has(s, p->packet_id)) { /* a resend: published already */
        ack_queue(c, AX_MQTT_PUBREC, p->packet_id, 0, 0);
        return;
    }
    if (v5 && p->qos && unacked_in(c) >= recv_max_in(mq_gw(c))) { /* 5.0 3.3.4 */
        GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].errors, 1);
        mq_close(c, AX_MQTT_RC_RECEIVE_MAX_EXCEEDED,
                 "more unacknowledged PUBLISHes than the Receive Maximum");
        return;
    }
    if (code) {
        GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].errors, 1);
        if (!v5 && code != AX_MQTT_RC_NOT_AUTHORIZED)
            mq_close(c, 0, "a topic the hub cannot take");
        else if (p->qos) /* 3.1.1: acknowledged and dropped (3.3.5) */
            ack_queue(c, ack, p->packet_id, code, 0);
        return;
    }
    uint64_t ticket = 0;
    int err = 0;
    mq_gw(c)->last_ticket = 0; /* what persistent sessions store of it is waited for too */
    if (!publish_hub(c, p, topic, &ticket, &err)) {
        GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].errors, 1);
        if (!v5 && p->qos) /* no way to say it: the client sends it again later */
            mq_close(c, 0, hub_strerror(err));
        else if (p->qos)
            ack_queue(c, ack, p->packet_id, publish_code(err), 0);
        return;
    }
    if (p->qos == 2 && mq_rel_add(s, p->packet_id) != 0) {
        mq_close(c, AX_MQTT_RC_RECEIVE_MAX_EXCEEDED, "too many QoS 2 messages unreleased");
        return;
    }
    uint64_t then = 0; /* the store commits in order; Redis's links answer each alone */
    if (mq_gw(c)->sv->bp && ticket && mq_gw(c)->last_ticket && mq_gw(c)->last_ticket != ticket)
        then = mq_gw(c)->last_ticket;
    else if (mq_gw(c)->last_ticket > ticket)
        ticket = mq_gw(c)->last_ticket;
    if (p->qos) ack_queue2(c, ack, p->packet_id, 0, ticket, then);
}

/* ---- the other packets
 * --------------------------------------------------------------------------- */

static unsigned parse_version(const mq_conn *c)
{
    return c->version == AX_MQTT_V5 ? AX_MQTT_V5 : c->version ? AX_MQTT_V311 : 0;
}

static void do_subscribe(mq_conn *c, const ax_mqtt_subscribe *sp)
{
    uint8_t codes_small[32], *codes = codes_small;
    bool existed_small[32], *existed = existed_small;
    ax_mqtt_iter it;
    ax_mqtt_sub sub;
    size_t n = 0;
    ax_mqtt_iter_init(&it, sp->list);
    while (ax_mqtt_sub_next(&it, parse_version(c), &sub))
        n++;
    if (n > 32) {
        codes = ax_malloc(n);
        existed = ax_malloc(n * sizeof(*existed));
        if (!codes || !existed) {
            ax_free(codes == codes_small ? NULL : codes);
            ax_free(existed == existed_small ? NULL : existed);
            mq_close(c, AX_MQTT_RC_UNSPECIFIED, "out of memory");
            return;
        }
    }
    uint32_t sub_id = c->version == AX_MQTT_V5 && ax_mqtt_props_has(&sp->props, AX_MQTT_PROP_SUB_ID)
                          ? sp->props.sub_id
                          : 0;
    size_t i = 0;
    ax_mqtt_iter_init(&it, sp->list);
    while (ax_mqtt_sub_next(&it, parse_version(c), &sub) && i < n) {
        codes[i] = mq_sess_subscribe(c->s, &sub, sub_id, &existed[i]);
        i++;
    }
    ax_mqtt_packet p = {.type = AX_MQTT_SUBACK};
    p.u.suback = (ax_mqtt_suback){.packet_id = sp->packet_id, .codes = codes, .n_codes = n};
    mq_send(c, &p);
    i = 0; /* then the retained messages, after the SUBACK */
    ax_mqtt_iter_init(&it, sp->list);
    while (ax_mqtt_sub_next(&it, parse_version(c), &sub) && i < n) {
        if (codes[i] < 0x80)
            mq_sess_retained(c->s, sub.filter.ptr, sub.filter.len, sub.retain_handling, existed[i]);
        i++;
    }
    if (codes != codes_small) ax_free(codes);
    if (existed != existed_small) ax_free(existed);
    mq_sess_save(c->s);
}

static void do_unsubscribe(mq_conn *c, const ax_mqtt_unsubscribe *up)
{
    uint8_t codes[256];
    ax_mqtt_iter it;
    ax_mqtt_str f;
    size_t n = 0;
    ax_mqtt_iter_init(&it, up->list);
    while (ax_mqtt_unsub_next(&it, &f)) {
        uint8_t rc = mq_sess_unsubscribe(c->s, f.ptr, f.len);
        if (n < sizeof codes) codes[n++] = rc;
    }
    ax_mqtt_packet p = {.type = AX_MQTT_UNSUBACK};
    p.u.suback = (ax_mqtt_suback){.packet_id = up->packet_id, .codes = codes, .n_codes = n};
    mq_send(c, &p);
    mq_sess_save(c->s);
}

static void do_disconnect(mq_conn *c, const ax_mqtt_reason_pkt *d)
{
    mq_sess *s = c->s;
    if (c->version == AX_MQTT_V5 && ax_mqtt_props_has(&d->props, AX_MQTT_PROP_SESSION_EXPIRY)) {
        uint32_t e = d->props.session_expiry, cap = mq_gw(c)->sv->cfg->mqtt_session_expiry_s;
        mq_set_expiry(s, e > cap ? cap : e);
        mq_sess_save(s);
    }
    if (!(c->version == AX_MQTT_V5 && d->code == AX_MQTT_RC_DISCONNECT_WITH_WILL)) {
        if (c->x) { /* a normal disconnection: no will */
            mq_will_free(c->x->will);
            c->x->will = NULL;
        }
    }
    mq_close(c, 0, NULL);
}

static void on_packet(mq_conn *c, const ax_mqtt_packet *p, const uint8_t *raw, size_t rl)
{
    if (p->type == AX_MQTT_CONNECT) {
        if (c->version) return mq_close(c, AX_MQTT_RC_PROTOCOL_ERROR, "a second CONNECT");
        return do_connect(c, &p->u.connect, raw, rl);
    }
    if (p->type == AX_MQTT_AUTH) return do_auth(c, &p->u.reason);
    if (!c->s) return; /* refused: closing */
    switch (p->type) {
    case AX_MQTT_PUBLISH:
        if (over_limit(c, p->size)) return;
        return do_publish(c, &p->u.publish);
    case AX_MQTT_PUBACK:
        mq_sess_puback(c->s, p->u.ack.packet_id); /* an unknown id is ignored */
        return;
    case AX_MQTT_PUBREC: {
        int rc = mq_sess_pubrec(c->s, p->u.ack.packet_id, p->u.ack.code);
        if (rc >= 0) mq_send_ack(c, AX_MQTT_PUBREL, p->u.ack.packet_id, (uint8_t)rc);
        return;
    }
    case AX_MQTT_PUBREL: {
        bool had = mq_rel_del(c->s, p->u.ack.packet_id);
        ack_queue(c, AX_MQTT_PUBCOMP, p->u.ack.packet_id, had ? 0 : AX_MQTT_RC_PACKET_ID_NOT_FOUND,
                  0);
        return;
    }
    case AX_MQTT_PUBCOMP:
        mq_sess_pubcomp(c->s, p->u.ack.packet_id);
        return;
    case AX_MQTT_SUBSCRIBE:
        return do_subscribe(c, &p->u.subscribe);
    case AX_MQTT_UNSUBSCRIBE:
        return do_unsubscribe(c, &p->u.unsubscribe);
    case AX_MQTT_PINGREQ: {
        uint8_t *b = mq_cork_room(c, 2);
        if (b) ax_mqtt_encode_empty(b, AX_MQTT_PINGRESP);
        return;
    }
    case AX_MQTT_DISCONNECT:
        return do_disconnect(c, &p->u.reason);
    default: /* CONNACK, SUBACK ...: a client does not send them */
        return mq_close(c, AX_MQTT_RC_PROTOCOL_ERROR, "a packet only a server sends");
    }
}

/* Redis is behind (more publishes on their way than its high mark,
 * docs/cluster.md "When Redis or a node fails"): a PUBLISH waits, with
 * everything after it, unread, and the connection is paused (its socket
 * fills up and TCP slows the client down, as mosquitto and EMQX do) until
 * unhold().  Nothing is refused, nothing queued here but what was read
 * (over WebSocket the frames of that read wait in cx->in: ws_message()).
 * true: stop parsing. */
static bool hold(mq_conn *c)
{
    redis_bp *b = mq_gw(c)->sv->bp;
    if (!b || !c->s) return false;
    if (c->x && c->x->held) return true;
    if (!redis_bp_hold(b)) return false;
    if (!mq_cx_get(c)) { /* (then published: refused over the hard maximum) */
        redis_bp_unhold(b, 1);
        return false;
    }
    c->x->held = true;
    mq_gw(c)->nheld++;
    ax_conn_pause(conn_of(c));
    return true;
}

/* Parse and handle the packets in buf; returns the bytes used (the rest
 * is a packet's first part, or waits for unhold()). */
static size_t on_bytes(mq_conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    if (c->version)
        c->last_in_ms =
            (uint32_t)ax_loop_now(mq_gw(c)->sv->loop); /* (before CONNECT: the open time) */
    while (off < len && !c->closing) {
        ax_mqtt_packet pkt;
        int n = ax_mqtt_parse(buf + off, len - off, parse_version(c), max_packet(mq_gw(c)), &pkt);
        if (n == AX_MQTT_INCOMPLETE) break;
        if (n < 0) {
            GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].errors, 1);
            if (!c->version && -n == AX_MQTT_RC_UNSUPPORTED_VERSION)
                refuse(c, AX_MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol version");
            else
                mq_close(c, (uint8_t)-n, pkt.error);
            break;
        }
        if (pkt.type == AX_MQTT_PUBLISH && hold(c)) break;
        on_packet(c, &pkt, buf + off, (size_t)n);
        off += (size_t)n;
    }
    if (c->closing) off = len;
    GW_ADD(mq_gw(c)->sv->gw[GW_MQTT].bytes_in, off); /* (the rest comes again with more) */
    return off;
}

/* ---- connections ------------------------------------------------------------------------------
 */

__thread gw_mqtt *mq_thread_gw;

/* With room for its share of the limits after it (mq_lim) when `lim`. */
static mq_conn *conn_alloc(bool lim)
{
    mq_conn *c = ax_calloc(1, sizeof(*c) + (lim ? sizeof(hub_limits_conn) : 0));
    if (!c) return NULL;
    return c;
}

mq_cx *mq_cx_get(mq_conn *c)
{
    if (!c->x) c->x = ax_calloc(1, sizeof(*c->x));
    return c->x;
}

/* Counted; over WebSocket also listed (its cx is made with it: ws_upgrade). */
static void conn_link(mq_conn *c)
{
    gw_mqtt *g = mq_gw(c);
    c->last_in_ms = (uint32_t)ax_loop_now(g->sv->loop);
    if (mq_ws(c)) {
        c->x->next = g->ws_conns;
        if (g->ws_conns) g->ws_conns->x->prev = c;
        g->ws_conns = c;
    }
    g->nconns++;
    GW_ADD(g->sv->gw[GW_MQTT].conns, 1);
    GW_ADD(g->sv->gw[GW_MQTT].accepted, 1);
}

static void conn_gone(mq_conn *c)
{
    gw_mqtt *g = mq_gw(c);
    mq_cx *x = c->x;
    if (x && x->held) {
        g->nheld--;
        redis_bp_unhold(g->sv->bp, 1);
    }
    if (mq_ws(c)) {
        if (x->prev)
            x->prev->x->next = x->next;
        else
            g->ws_conns = x->next;
        if (x->next) x->next->x->prev = x->prev;
    }
    g->nconns--;
    GW_SUB(g->sv->gw[GW_MQTT].conns, 1);
    if (mq_lim(c)) serve_limit_close(g->sv, mq_lim(c));
    mq_cork_release(c);
    waits_cancel(c);
    mq_sess *s = c->s;
    mq_sess_claim_cancel(c);
    if (s && mq_sess_conn(s) == c) {
        mq_sess_detach(s);
        will_due(s, x ? x->will : NULL);
        if (x) x->will = NULL;
        if (!mq_expiry(s)) mq_sess_free(s, g->stopping);
    }
    if (x) {
        mq_will_free(x->will);
        for (unsigned i = 0; x->alias && i <= ALIAS_MAX; i++)
            ax_free(x->alias[i]);
        ax_free(x->alias);
        mq_auth_free(x->auth);
        ax_free(x->in);
        ax_free(x);
    }
    ax_free(c);
}

/* Over a connection limit (max_connections, per IP): closed before
 * CONNECT, which is all MQTT allows. */
static void tcp_open(ax_conn *conn)
{
    gw_mqtt *g = ax_conn_data(conn);
    hub_refusal ref = {0};
    hub_limits_conn lim;
    mq_conn *c = NULL;
    if (serve_limit_open(g->sv, "mqtt", conn, &lim, &ref) != HUB_LIMIT_OK) {
        GW_ADD(g->sv->gw[GW_MQTT].errors, 1);
        ax_conn_set_data(conn, NULL);
        ax_conn_close(conn);
        return;
    }
    if (!(c = conn_alloc(lim.ip))) {
        serve_limit_close(g->sv, &lim);
        ax_free(c);
        ax_conn_set_data(conn, NULL);
        ax_conn_abort(conn, AX_ENOMEM);
        return;
    }
    if (lim.ip) { /* (none on: nothing counted, nothing kept) */
        c->has_lim = true;
        *mq_lim(c) = lim;
    }
    c->io.c = conn;
    conn_link(c);
    ax_conn_set_data(conn, c);
}

static size_t tcp_data(ax_conn *conn, const char *data, size_t len)
{
    mq_conn *c = ax_conn_data(conn);
    return c ? on_bytes(c, (const uint8_t *)data, len) : len;
}

static void tcp_drain(ax_conn *conn)
{
    mq_conn *c = ax_conn_data(conn);
    if (!c) return;
    c->blocked = false;
    if (c->s && mq_sess_conn(c->s) == c) mq_sess_pump(c->s);
}

static void tcp_end(ax_conn *conn)
{
    ax_conn_close(conn);
}

static void tcp_close(ax_conn *conn, int reason)
{
    mq_conn *c = ax_conn_data(conn);
    (void)reason;
    ax_conn_set_data(conn, NULL); /* (the loop's walk, ax_loop_each_conn, passes it by) */
    if (c) conn_gone(c);
}

static const ax_conn_cbs tcp_cbs = {.on_open = tcp_open,
                                    .on_data = tcp_data,
                                    .on_drain = tcp_drain,
                                    .on_end = tcp_end,
                                    .on_close = tcp_close};

typedef struct each_ctx {
    void (*fn)(mq_conn *c, void *ud);
    void *ud;
} each_ctx;

static void each_tcp(ax_conn *conn, void *ud)
{
    const each_ctx *e = ud;
    mq_conn *c = ax_conn_data(conn);
    if (c) e->fn(c, e->ud); /* (NULL: refused or gone) */
}

static void conns_each(gw_mqtt *g, void (*fn)(mq_conn *c, void *ud), void *ud)
{
    each_ctx e = {fn, ud};
    ax_loop_each_conn(g->sv->loop, &tcp_cbs, each_tcp, &e);
    for (mq_conn *c = g->ws_conns, *next; c; c = next) {
        next = c->x->next; /* (fn may close c, not free it: on_close comes later) */
        fn(c, ud);
    }
}

static void ws_input(mq_conn *c);

static void unhold_one(mq_conn *c, void *ud)
{
    if (!c->x || !c->x->held || c->closing) return; /* (closing: conn_gone counts it) */
    c->x->held = false;
    c->last_in_ms = (uint32_t)ax_loop_now(mq_gw(c)->sv->loop); /* (its PINGREQs were not read) */
    ax_conn_resume(conn_of(c));                                /* (what it kept comes again) */
    ++*(uint64_t *)ud;
    if (mq_ws(c) && c->x->in && c->x->in->len) ws_input(c); /* (what waited: ws_message) */
}

/* Redis caught up (its handler, redis_hold_handler(); or the tick, when
 * the wake could not be posted): the held connections are read again. */
static void unhold(void *ud)
{
    gw_mqtt *g = ud;
    uint64_t n = 0;
    if (!g->nheld) return;
    conns_each(g, unhold_one, &n);
    g->nheld -= n;
    redis_bp_unhold(g->sv->bp, n);
}

/* ---- MQTT over WebSocket
 * ------------------------------------------------------------------------- */

static void ws_open(ax_ws *ws)
{
    mq_conn *c = ax_ws_data(ws);
    c->io.ws = ws;
    c->on_ws = true;
    conn_link(c);
}

/* The packets of cx->in; a packet's first part (or what waits for
 * unhold()) is kept. */
static void ws_input(mq_conn *c)
{
    mq_inbuf *in = c->x->in;
    size_t used = on_bytes(c, in->data, in->len);
    memmove(in->data, in->data + used, in->len - used);
    in->len -= used;
}

/* A packet may span messages, and a message hold several packets.  A
 * connection held back (hold()) keeps the messages of the read that
 * came with its pause: more than a packet, up to a read past it. */
static void ws_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    mq_conn *c = ax_ws_data(ws);
    if (!c || c->closing) return;
    if (!binary) return mq_close(c, AX_MQTT_RC_MALFORMED, "MQTT over WebSocket is binary");
    mq_inbuf *in = c->x->in;
    if (!in || !in->len) {
        size_t used = on_bytes(c, data, len);
        data = (const uint8_t *)data + used;
        len -= used;
        if (!len || c->closing) return;
    }
    size_t have = in ? in->len : 0, room = max_packet(mq_gw(c)) + 8;
    if (c->x->held) room = 2 * room + WS_HELD_READ;
    if (have + len > room) return mq_close(c, AX_MQTT_RC_PACKET_TOO_LARGE, NULL);
    if (!in || have + len > in->cap) {
        size_t cap = (have + len) * 2;
        in = ax_realloc(in, sizeof(*in) + cap);
        if (!in) return mq_close(c, AX_MQTT_RC_UNSPECIFIED, "out of memory");
        in->len = have;
        in->cap = cap;
        c->x->in = in;
    }
    memcpy(in->data + in->len, data, len);
    in->len += len;
    ws_input(c);
}

static void ws_drain(ax_ws *ws)
{
    mq_conn *c = ax_ws_data(ws);
    if (!c || !mq_ws(c)) return;
    c->blocked = false;
    if (c->s && mq_sess_conn(c->s) == c) mq_sess_pump(c->s);
}

static void ws_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    mq_conn *c = ax_ws_data(ws);
    (void)code, (void)reason, (void)len;
    if (c && !mq_ws(c)) { /* closed before on_open */
        if (mq_lim(c)) serve_limit_close(mq_gw(c)->sv, mq_lim(c));
        ax_free(c->x);
        ax_free(c);
    } else if (c) {
        conn_gone(c);
    }
}

static const ax_ws_cbs ws_cbs = {
    .on_open = ws_open, .on_message = ws_message, .on_drain = ws_drain, .on_close = ws_close};

static void ws_upgrade(ax_http_req *r, void *ud)
{
    gw_mqtt *g = ud;
    char why[400];
    if (g->stopping) {
        serve_http_error(r, 503, "the server is shutting down");
        return;
    }
    if (!serve_origin_allowed(r, g->sv->cfg, why, sizeof why)) { /* origin.c */
        serve_http_error(r, 403, why);
        return;
    }
    const hub_limits *L = g->sv->limits;
    mq_conn *c = conn_alloc(L && hub_limits_per_conn(L)); /* (room for its share) */
    if (!c || !mq_cx_get(c)) {                            /* (its cx: its place in g->ws_conns) */
        ax_free(c);
        serve_http_error(r, 500, "out of memory");
        return;
    }
    if (ax_ws_upgrade(r, &ws_cbs, &g->wsopts, c) < 0) { /* (it answered the request) */
        ax_free(c->x);
        ax_free(c);
        return;
    }
    hub_limits_conn lim;
    serve_limit_take(r, &lim);                      /* the connection is counted on, now as ours */
    if (lim.ip && !(L && hub_limits_per_conn(L))) { /* (not expected: no room) */
        serve_limit_close(g->sv, &lim);
    } else if (lim.ip) {
        c->has_lim = true;
        *mq_lim(c) = lim;
    }
}

/* ---- timers -------------------------------------------------------------------------------------
 */

/* Every second: CONNECT and keep alive timeouts (1.5 times the keep
 * alive, 3.1.1 3.1.2.10), expired tokens, delayed wills, expired
 * sessions. */
/* A session's delayed will and expiry (it may end: hub_lmap_each allows it). */
static void sess_tick(hub_link *l, void *ud)
{
    mq_sess *s = HUB_LINK_OF(l, mq_sess, link);
    uint64_t now = *(const uint64_t *)ud;
    mq_will *w = s->fl->will;
    if (w && now >= w->at) {
        s->fl->will = NULL;
        mq_will_publish(mq_sess_g(s), w, mq_sess_id(s), mq_sender(s));
        mq_will_free(w);
    }
    uint32_t gone = mq_sess_gone(s), expiry = mq_expiry(s);
    if (gone && expiry != UINT32_MAX && now >= ((uint64_t)gone + expiry) * 1000)
        mq_sess_free(s, false);
    else if (mq_sess_conn(s) && mq_sess_g(s)->ttl_ms == now)
        mq_sess_ttl(s); /* connected: its hash in Redis lives on */
}

static void sess_end(hub_link *l, void *ud)
{
    (void)ud;
    mq_sess_free(HUB_LINK_OF(l, mq_sess, link), true);
}

/* Every connection of the gateway's loop: TCP and TLS ones are the
 * loop's (their callback table says whose), WebSocket ones in g->ws_conns.
 * fn may close the one it is given. */
static void conns_each(gw_mqtt *g, void (*fn)(mq_conn *c, void *ud), void *ud);

typedef struct tick_now {
    uint32_t now32; /* loop time's low 32 bits: differences stay right */
    int64_t wall;
} tick_now;

static void conn_tick(mq_conn *c, void *ud)
{
    const tick_now *n = ud;
    if (c->closing) return;
    if (!c->version && (uint32_t)(n->now32 - c->last_in_ms) > CONNECT_TIMEOUT_MS)
        mq_close(c, 0, "no CONNECT in time");
    else if (c->x && c->x->auth && (uint32_t)(n->now32 - c->last_in_ms) > CONNECT_TIMEOUT_MS)
        refuse(c, AX_MQTT_RC_NOT_AUTHORIZED, "authentication not finished in time");
    else if (c->keepalive_s && !(c->x && c->x->held) && /* (we do not read its PINGREQs) */
             (uint32_t)(n->now32 - c->last_in_ms) > (uint32_t)c->keepalive_s * 1500)
        mq_close(c, AX_MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep alive timeout");
    else if (c->s && mq_sess_id(c->s) && auth_expired(mq_sess_id(c->s), n->wall))
        mq_close(c, AX_MQTT_RC_NOT_AUTHORIZED, "token expired");
}

static void tick(ax_timer *t, void *ud)
{
    gw_mqtt *g = ud;
    (void)t;
    uint64_t now = ax_loop_now(g->sv->loop);
    tick_now n = {(uint32_t)now, (int64_t)time(NULL)};
    conns_each(g, conn_tick, &n);
    if (g->nheld && redis_bp_calm(g->sv->bp)) unhold(g);
    if (g->sv->bp && now - g->ttl_ms >= REDIS_SESS_REFRESH_MS) g->ttl_ms = now;
    hub_lmap_each(&g->by_id, sess_tick, &now);
}

/* $SYS/broker/...: retained statistics every 10 s while MQTT clients are
 * connected (first thread only). */
static void sys_publish(gw_mqtt *g, const char *topic, const char *fmt, unsigned long long v)
{
    char buf[64];
    int n = snprintf(buf, sizeof buf, fmt, v);
    hub_pub p = {.topic = topic,
                 .sender = "$SYS",
                 .payload = buf,
                 .len = (size_t)n,
                 .retain = true,
                 .via = HUB_VIA_MQTT};
    uint64_t ticket;
    int err;
    (void)hub_publish_pub(g->sv->hub, &p, &ticket, &err);
}

static void sys_tick(ax_timer *t, void *ud)
{
    gw_mqtt *g = ud;
    (void)t;
    if (!g->nconns) return;
    const gw_stats *st = &g->sv->gw[GW_MQTT];
    const hub_stats *hs = hub_stats_get(g->sv->hub);
    sys_publish(g, "$SYS/broker/version", "axon " AXON_VERSION "%.0llu", 0);
    sys_publish(g, "$SYS/broker/uptime", "%llu seconds",
                (unsigned long long)((int64_t)time(NULL) - g->sv->started_ms / 1000));
    sys_publish(g, "$SYS/broker/clients/connected", "%llu",
                __atomic_load_n(&st->conns, __ATOMIC_RELAXED));
    sys_publish(g, "$SYS/broker/clients/total", "%llu", (unsigned long long)g->nsessions);
    sys_publish(g, "$SYS/broker/messages/received", "%llu",
                __atomic_load_n(&st->msgs_in, __ATOMIC_RELAXED));
    sys_publish(g, "$SYS/broker/messages/sent", "%llu",
                __atomic_load_n(&st->msgs_out, __ATOMIC_RELAXED));
    sys_publish(g, "$SYS/broker/bytes/received", "%llu",
                __atomic_load_n(&st->bytes_in, __ATOMIC_RELAXED));
    sys_publish(g, "$SYS/broker/bytes/sent", "%llu",
                __atomic_load_n(&st->bytes_out, __ATOMIC_RELAXED));
    sys_publish(g, "$SYS/broker/publish/messages/dropped", "%llu",
                (unsigned long long)(hs->dropped + g->dropped));
    sys_publish(g, "$SYS/broker/hub/published", "%llu", (unsigned long long)hs->published);
}

/* ---- the gateway
 * ---------------------------------------------------------------------------------- */

static ax_conn_opts conn_opts(gw_mqtt *g, ax_tls_ctx *tls)
{
    return (ax_conn_opts){.max_input = max_packet(g) + 16,
                          .linger_ms = g->sv->cfg->close_timeout_s * 1000,
                          .tls = tls};
}

static const char *const ws_protocols[] = {"mqtt", "mqttv3.1", NULL};

/* MQTT over WebSocket on the HTTP server of the first host gateway. */
static int mount_ws(gw_mqtt *g, char *why, size_t why_len)
{
    serve *sv = g->sv;
    if (sv->cfg->mqtt_ws_off) return 0;
    for (int i = 0; i < sv->ngw; i++) {
        if (!sv->inst[i] || !sv->gws[i]->http) continue;
        int err = ax_http_route(sv->gws[i]->http(sv->inst[i]), "GET", "/mqtt", ws_upgrade, g);
        if (err) {
            snprintf(why, why_len, "cannot add MQTT over WebSocket: %s", ax_strerror(err));
            return -1;
        }
        g->ws_mounted = true;
        return 0;
    }
    return 0;
}

static void gw_free(gw_mqtt *g)
{
    if (!g) return;
    if (g->sv->bp) redis_hold_handler(g->sv->bp, NULL, NULL, g->sv->loop);
    mq_sess_unload(g);
    hub_lmap_each(&g->by_id, sess_end, NULL);
    hub_lmap_free(&g->by_id);
    hub_map_clear(&g->groups);
    while (g->free_corks) {
        mq_cork *k = g->free_corks;
        g->free_corks = k->next_free;
        ax_free(k);
    }
    ax_timer_free(g->tick);
    ax_timer_free(g->flusher);
    ax_timer_free(g->sys);
    ax_timer_free(g->hand_tm);
    ax_free(g->dirtyv);
    if (mq_thread_gw == g) mq_thread_gw = NULL;
    ax_free(g);
}

static void *mqtt_start(serve *sv, const char *url, char *why, size_t why_len)
{
    gw_mqtt *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    g->sv = sv;
    mq_thread_gw = g;
    const char *rp = sv->cfg->mqtt_response_prefix;
    if (*rp && (!hub_topic_valid(rp, strlen(rp)) || rp[0] == '$')) {
        snprintf(why, why_len, "mqtt_response_prefix '%s' is not a topic name", rp);
        ax_free(g);
        return NULL;
    }
    hub_lmap_init(&g->by_id);
    hub_map_init(&g->groups);
    g->wsopts = (ax_ws_opts){.max_message = max_packet(g) + 16, .protocols = ws_protocols};
    if (!(g->tick = ax_timer_new(sv->loop, tick, g)) ||
        !(g->flusher = ax_timer_new(sv->loop, mq_flush_all, g)) ||
        !(g->sys = ax_timer_new(sv->loop, sys_tick, g)) ||
        !(g->hand_tm = ax_timer_new(sv->loop, mq_hand_flush, g))) {
        snprintf(why, why_len, "out of memory");
        gw_free(g);
        return NULL;
    }
    ax_timer_start(g->tick, 1000, 1000);
    if (sv->index == 0) ax_timer_start(g->sys, SYS_INTERVAL_MS, SYS_INTERVAL_MS);
    int err = 0;
    ax_conn_opts co = conn_opts(g, NULL);
    ax_listen_opts lo = serve_listen_opts(sv);
    lo.reuse_port = false; /* the first thread only: a client id's session is found there */
    if (url && sv->index == 0 &&
        !(g->ls = ax_listen_ex(sv->loop, url, &tcp_cbs, &co, &lo, g, &err))) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        gw_free(g);
        return NULL;
    }
    mq_sess_load(g); /* (other threads: their sessions in Redis only) */
    if (sv->bp) redis_hold_handler(sv->bp, unhold, g, sv->loop);
    if (mount_ws(g, why, why_len) != 0) {
        ax_listener_close(g->ls);
        gw_free(g);
        return NULL;
    }
    return g;
}

static int mqtt_listen_tls(void *gp, const char *url, char *why, size_t why_len)
{
    gw_mqtt *g = gp;
    if (g->sv->index > 0) return 0;
    int err = 0;
    ax_conn_opts co = conn_opts(g, g->sv->tls);
    ax_listen_opts lo = serve_listen_opts(g->sv);
    lo.reuse_port = false;
    g->tls_ls = ax_listen_ex(g->sv->loop, url, &tcp_cbs, &co, &lo, g, &err);
    if (!g->tls_ls) snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
    return g->tls_ls ? 0 : err;
}

static void conn_stop(mq_conn *c, void *ud)
{
    (void)ud;
    mq_close(c, AX_MQTT_RC_SERVER_SHUTTING_DOWN, "the server is shutting down");
}

static void mqtt_stop(void *gp)
{
    gw_mqtt *g = gp;
    g->stopping = true;
    if (g->ls) ax_listener_close(g->ls);
    if (g->tls_ls) ax_listener_close(g->tls_ls);
    g->ls = g->tls_ls = NULL;
    ax_timer_stop(g->sys);
    conns_each(g, conn_stop, NULL);
}

static void conn_abort(mq_conn *c, void *ud)
{
    (void)ud;
    ax_conn_abort(mq_tcp(c) ? mq_tcp(c) : ax_ws_conn(mq_ws(c)), AX_ECLOSED);
}

static void mqtt_abort(void *gp)
{
    conns_each(gp, conn_abort, NULL);
}

static void mqtt_free(void *gp)
{
    gw_free(gp);
}

static size_t mqtt_count(const void *gp)
{
    return ((const gw_mqtt *)gp)->nconns;
}

static const char *listener_url(ax_listener *l, char *buf, size_t len)
{
    return l ? ax_listener_url(l, buf, len) : NULL;
}

static const char *mqtt_addr(void *gp, char *buf, size_t len)
{
    return listener_url(((gw_mqtt *)gp)->ls, buf, len);
}

static const char *mqtt_tls_addr(void *gp, char *buf, size_t len)
{
    return listener_url(((gw_mqtt *)gp)->tls_ls, buf, len);
}

static const char *mqtt_url(const serve_cfg *c)
{
    return c->mqtt_url;
}

static const char *mqtts_url(const serve_cfg *c)
{
    return c->mqtts_url;
}

static void mqtt_log_addrs(void *gp)
{
    char a[AX_ADDR_STRLEN];
    if (mqtt_addr(gp, a, sizeof a)) ax_log(AX_LOG_INFO, "mqtt on %s", a);
    if (mqtt_tls_addr(gp, a, sizeof a)) ax_log(AX_LOG_INFO, "mqtt over TLS on %s", a);
    if (((gw_mqtt *)gp)->ws_mounted) ax_log(AX_LOG_INFO, "mqtt over WebSocket at /mqtt");
}

static void mqtt_hints(void *gp, FILE *out)
{
    char a[AX_ADDR_STRLEN], hp[AX_ADDR_STRLEN];
    if (!mqtt_addr(gp, a, sizeof a)) return;
    serve_nc_args(a, hp, sizeof hp);
    char *sp = strrchr(hp, ' ');
    if (sp) *sp = '\0';
    fprintf(out, "axon serve: mqtt          mosquitto_sub -h %s -p %s -t 'chat/#' -v\n", hp,
            sp ? sp + 1 : "1883");
}

const gw_ops gw_mqtt_gateway = {.name = "mqtt",
                                .url = mqtt_url,
                                .tls_url = mqtts_url,
                                .tls_setting = "listen_mqtts",
                                .start = mqtt_start,
                                .listen_tls = mqtt_listen_tls,
                                .stop = mqtt_stop,
                                .abort = mqtt_abort,
                                .free = mqtt_free,
                                .count = mqtt_count,
                                .addr = mqtt_addr,
                                .tls_addr = mqtt_tls_addr,
                                .log_addrs = mqtt_log_addrs,
                                .hints = mqtt_hints};
