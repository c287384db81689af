/* gw_rtmp.c: RTMP into and out of the live relay (live.h).
 *
 * `ffmpeg -re -i IN -c copy -f flv rtmp://HOST:1935/live/NAME` and OBS
 * (server rtmp://HOST:1935/live, stream key NAME) publish the stream
 * NAME; `ffplay rtmp://HOST:1935/live/NAME` plays it.  The application
 * part of the URL ("live") is not checked; the stream key is the name.
 *
 * Credentials ride on the stream key or the URL as a query, as most
 * relays take them: `NAME?token=JWT` or `NAME?user=U&pass=P`.  With
 * authentication on (docs/security.md) publishing NAME needs a write grant
 * on the topic `live/NAME`, and playing it a read grant; anonymous clients
 * get what --anonymous gives them.
 *
 * The wire is src/proto/rtmp (handshake, chunks, AMF0); this file is the
 * connection logic: the handshake, message reassembly per chunk stream,
 * the NetConnection and NetStream commands, and the frames to and from
 * the relay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "live.h"
#include "live_rec.h"
#include "proto/rtmp/rtmp.h"
#include "serve.h"

#define RTMP_WINDOW 5000000u
#define RTMP_HANDSHAKE_MS 10000 /* the handshake's and the first command's time limit */

typedef struct gw_rtmp gw_rtmp;
typedef struct rtmp_conn rtmp_conn;

struct gw_rtmp {
    serve *sv;
    ax_listener *ls;
    rtmp_conn *conns;
};

enum { ST_C0C1, ST_C2, ST_CHUNKS };

/* A message being reassembled, per chunk stream. */
typedef struct rtmp_asm {
    uint32_t csid;
    uint8_t *buf;
    size_t cap;
} rtmp_asm;

struct rtmp_conn {
    rtmp_conn *prev, *next;
    gw_rtmp *g;
    ax_conn *c;
    int state;
    bool closing;
    ax_rtmp_parser p;
    rtmp_asm as[AX_RTMP_MAX_STREAMS];
    char app[128];
    char tc_query[512]; /* the query of tcUrl, credentials maybe */
    uint64_t bytes_in, acked;
    uint32_t peer_window;
    live_stream *pub;    /* publishing */
    live_viewer *view;   /* playing */
    hub_limits_conn lim; /* its share of the limits */
};

/* ---- sending -------------------------------------------------------------------------- */

static void send_msg(rtmp_conn *rc, uint32_t csid, uint8_t type, uint32_t sid, const uint8_t *data,
                     size_t len)
{
    if (rc->closing) return;
    ax_rtmp_hdr h = {.csid = csid, .ts = 0, .len = (uint32_t)len, .type = type, .sid = sid};
    uint8_t out[4096 + 64];
    /* control messages go out before Set Chunk Size is known to the peer:
     * small enough for one chunk of the default size */
    uint32_t chunk = type == AX_RTMP_COMMAND || type == AX_RTMP_DATA ? LIVE_RTMP_CHUNK : 128;
    long n = ax_rtmp_chunk_encode(&h, data, chunk, out, sizeof out);
    if (n <= 0) return;
    if (ax_conn_write(rc->c, out, (size_t)n) >= 0) GW_ADD(rc->g->sv->gw[GW_RTMP].bytes_out, n);
}

static void send_u32(rtmp_conn *rc, uint8_t type, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    send_msg(rc, 2, type, 0, b, 4);
}

static void send_stream_begin(rtmp_conn *rc, uint32_t sid)
{
    uint8_t b[6] = {0,           0, (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8),
                    (uint8_t)sid};
    send_msg(rc, 2, AX_RTMP_USER_CONTROL, 0, b, 6);
}

static void send_status(rtmp_conn *rc, const char *level, const char *code, const char *desc)
{
    uint8_t buf[1024];
    ax_amf0_w w = {buf, sizeof buf, 0, false};
    ax_amf0_cstr(&w, "onStatus");
    ax_amf0_number(&w, 0);
    ax_amf0_null(&w);
    ax_amf0_object(&w);
    ax_amf0_key(&w, "level");
    ax_amf0_cstr(&w, level);
    ax_amf0_key(&w, "code");
    ax_amf0_cstr(&w, code);
    ax_amf0_key(&w, "description");
    ax_amf0_cstr(&w, desc);
    ax_amf0_end(&w);
    if (!w.overflow) send_msg(rc, 5, AX_RTMP_COMMAND, LIVE_RTMP_SID, buf, w.len);
}

/* _result(txn, null, value): value a number, or null when `num` < 0. */
static void send_result(rtmp_conn *rc, double txn, double num)
{
    uint8_t buf[64];
    ax_amf0_w w = {buf, sizeof buf, 0, false};
    ax_amf0_cstr(&w, "_result");
    ax_amf0_number(&w, txn);
    ax_amf0_null(&w);
    if (num >= 0)
        ax_amf0_number(&w, num);
    else
        ax_amf0_null(&w);
    send_msg(rc, 3, AX_RTMP_COMMAND, 0, buf, w.len);
}

static void close_conn(rtmp_conn *rc)
{
    rc->closing = true;
    ax_conn_close(rc->c);
}

/* ---- credentials ---------------------------------------------------------------------- */

/* The value of `key` in a query "a=1&b=2" into out ("" when absent). */
static void query_get(const char *q, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    out[0] = '\0';
    for (const char *p = q; p && *p; p = strchr(p, '&'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=') continue;
        const char *v = p + kl + 1, *end = strchr(v, '&');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (n >= cap) n = cap - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return;
    }
}

/* May this connection publish (write) or play (read) stream `name`?
 * `query`: what followed '?' in the stream key. */
static bool allowed(rtmp_conn *rc, const char *name, const char *query, bool write)
{
    serve *sv = rc->g->sv;
    if (!sv->auth) return true;
    char token[AUTH_MAX_TOKEN + 1], user[AUTH_MAX_NAME + 1], pass[256], topic[128];
    const char *q = query && *query ? query : rc->tc_query;
    query_get(q, "token", token, sizeof token);
    query_get(q, "user", user, sizeof user);
    query_get(q, "pass", pass, sizeof pass);
    ax_addr peer, *from = ax_conn_peer(rc->c, &peer) == 0 ? &peer : NULL;
    auth_identity *id = token[0]  ? serve_token(sv, from, token, strlen(token))
                        : user[0] ? serve_login(sv, from, user, pass)
                                  : serve_anonymous(sv);
    memset(pass, 0, sizeof pass);
    snprintf(topic, sizeof topic, "live/%s", name);
    bool ok = id && (write ? auth_may_publish(id, topic) : auth_may_read(id, topic));
    if (!id) serve_refused(sv, "rtmp", from, NULL);
    auth_identity_free(id);
    return ok;
}

/* ---- commands ------------------------------------------------------------------------- */

/* The stream key: "NAME" or "NAME?query" (with "live/" or the app before
 * it from some clients); name and query split, false when not a name. */
static bool split_key(const char *key, size_t len, char *name, char *query, size_t qcap)
{
    char k[LIVE_NAME_MAX + 600];
    if (len >= sizeof k) return false;
    memcpy(k, key, len);
    k[len] = '\0';
    char *q = strchr(k, '?');
    query[0] = '\0';
    if (q) {
        *q++ = '\0';
        snprintf(query, qcap, "%s", q);
    }
    char *slash = strrchr(k, '/');
    const char *n = slash ? slash + 1 : k;
    if (!live_name_valid(n)) return false;
    memcpy(name, n, strlen(n) + 1); /* valid: at most LIVE_NAME_MAX */
    return true;
}

static void on_connect(rtmp_conn *rc, double txn, const uint8_t *d, size_t len, size_t off)
{
    ax_amf0_val v;
    size_t o = off;
    if (ax_amf0_find(d, len, &o, "app", &v) == 1 && v.type == AX_AMF0_STRING)
        snprintf(rc->app, sizeof rc->app, "%.*s", (int)v.len, v.str);
    o = off;
    if (ax_amf0_find(d, len, &o, "tcUrl", &v) == 1 && v.type == AX_AMF0_STRING) {
        const char *q = memchr(v.str, '?', v.len);
        if (q)
            snprintf(rc->tc_query, sizeof rc->tc_query, "%.*s", (int)(v.str + v.len - q - 1),
                     q + 1);
    }
    char *q = strchr(rc->app, '?');
    if (q) {
        if (!rc->tc_query[0]) snprintf(rc->tc_query, sizeof rc->tc_query, "%s", q + 1);
        *q = '\0';
    }
    send_u32(rc, AX_RTMP_WINDOW_ACK, RTMP_WINDOW);
    uint8_t bw[5] = {RTMP_WINDOW >> 24, (RTMP_WINDOW >> 16) & 0xff, (RTMP_WINDOW >> 8) & 0xff,
                     RTMP_WINDOW & 0xff, 2};
    send_msg(rc, 2, AX_RTMP_PEER_BW, 0, bw, 5);
    send_u32(rc, AX_RTMP_SET_CHUNK_SIZE, LIVE_RTMP_CHUNK);
    uint8_t buf[512];
    ax_amf0_w w = {buf, sizeof buf, 0, false};
    ax_amf0_cstr(&w, "_result");
    ax_amf0_number(&w, txn);
    ax_amf0_object(&w);
    ax_amf0_key(&w, "fmsVer");
    ax_amf0_cstr(&w, "FMS/3,0,1,123");
    ax_amf0_key(&w, "capabilities");
    ax_amf0_number(&w, 31);
    ax_amf0_end(&w);
    ax_amf0_object(&w);
    ax_amf0_key(&w, "level");
    ax_amf0_cstr(&w, "status");
    ax_amf0_key(&w, "code");
    ax_amf0_cstr(&w, "NetConnection.Connect.Success");
    ax_amf0_key(&w, "description");
    ax_amf0_cstr(&w, "Connection succeeded.");
    ax_amf0_key(&w, "objectEncoding");
    ax_amf0_number(&w, 0);
    ax_amf0_end(&w);
    send_msg(rc, 3, AX_RTMP_COMMAND, 0, buf, w.len);
}

static void on_publish(rtmp_conn *rc, const ax_amf0_val *key)
{
    char name[LIVE_NAME_MAX + 1], query[600];
    if (rc->pub || rc->view) return;
    if (!split_key(key->str, key->len, name, query, sizeof query)) {
        send_status(rc, "error", "NetStream.Publish.BadName", "Bad stream name.");
        close_conn(rc);
        return;
    }
    if (!allowed(rc, name, query, true)) {
        send_status(rc, "error", "NetStream.Publish.Unauthorized", "Not allowed to publish.");
        GW_ADD(rc->g->sv->gw[GW_RTMP].errors, 1);
        close_conn(rc);
        return;
    }
    int err = 0;
    rc->pub = live_publish(name, rc->g->sv->loop, &err);
    if (!rc->pub) {
        send_status(rc, "error", "NetStream.Publish.BadName",
                    err == AX_EADDRINUSE ? "Stream already publishing." : "Out of memory.");
        close_conn(rc);
        return;
    }
    ax_log(AX_LOG_INFO, "live: %s published over RTMP", name);
    send_stream_begin(rc, LIVE_RTMP_SID);
    send_status(rc, "status", "NetStream.Publish.Start", "Start publishing.");
}

static int v_write(void *ud, ax_slice *s)
{
    rtmp_conn *rc = ud;
    GW_ADD(rc->g->sv->gw[GW_RTMP].bytes_out, ax_slice_len(s));
    GW_ADD(rc->g->sv->gw[GW_RTMP].msgs_out, 1);
    return ax_conn_write_slice(rc->c, s, 0, ax_slice_len(s));
}

static int v_write_copy(void *ud, const void *data, size_t len)
{
    rtmp_conn *rc = ud;
    GW_ADD(rc->g->sv->gw[GW_RTMP].bytes_out, len);
    return ax_conn_write(rc->c, data, len);
}

static size_t v_queued(void *ud)
{
    return ax_conn_queued(((rtmp_conn *)ud)->c);
}

static void v_ended(void *ud)
{
    rtmp_conn *rc = ud;
    send_status(rc, "status", "NetStream.Play.UnpublishNotify", "Stream ended.");
    close_conn(rc);
}

static ax_conn *v_conn(void *ud)
{
    return ((rtmp_conn *)ud)->c;
}

static const live_viewer_ops rtmp_viewer = {v_write, v_write_copy, v_queued, v_ended, v_conn};

static void on_play(rtmp_conn *rc, const ax_amf0_val *key)
{
    char name[LIVE_NAME_MAX + 1], query[600];
    if (rc->pub || rc->view) return;
    if (!split_key(key->str, key->len, name, query, sizeof query)) {
        send_status(rc, "error", "NetStream.Play.StreamNotFound", "Bad stream name.");
        close_conn(rc);
        return;
    }
    if (!allowed(rc, name, query, false)) {
        send_status(rc, "error", "NetStream.Play.Failed", "Not allowed to play.");
        GW_ADD(rc->g->sv->gw[GW_RTMP].errors, 1);
        close_conn(rc);
        return;
    }
    live_info info;
    if (live_info_of(name, &info) != 0) {
        send_status(rc, "error", "NetStream.Play.StreamNotFound", "No such stream.");
        close_conn(rc);
        return;
    }
    if (!live_info_flv(&info)) { /* live.h */
        send_status(rc, "error", "NetStream.Play.Failed",
                    "HEVC or Opus: RTMP (FLV) has no codec id for it; play /live/NAME.ts, "
                    "/live/NAME/index.m3u8 or /live/NAME/ws");
        close_conn(rc);
        return;
    }
    send_stream_begin(rc, LIVE_RTMP_SID);
    send_status(rc, "status", "NetStream.Play.Reset", "Playing and resetting.");
    send_status(rc, "status", "NetStream.Play.Start", "Started playing.");
    uint8_t buf[64];
    ax_amf0_w w = {buf, sizeof buf, 0, false};
    ax_amf0_cstr(&w, "|RtmpSampleAccess");
    ax_amf0_bool(&w, true);
    ax_amf0_bool(&w, true);
    send_msg(rc, 5, AX_RTMP_DATA, LIVE_RTMP_SID, buf, w.len);
    int err = 0;
    rc->view = live_watch(name, rc->g->sv->loop, LIVE_RTMP, &rtmp_viewer, rc, &err);
    if (!rc->view) {
        send_status(rc, "error", "NetStream.Play.StreamNotFound", "No such stream.");
        close_conn(rc);
    }
}

static void stop_publishing(rtmp_conn *rc)
{
    if (!rc->pub) return;
    ax_log(AX_LOG_INFO, "live: a stream published over RTMP ended");
    live_unpublish(rc->pub);
    rc->pub = NULL;
}

static void on_command(rtmp_conn *rc, const uint8_t *d, size_t len)
{
    size_t off = 0;
    ax_amf0_val name, txn, arg;
    if (ax_amf0_read(d, len, &off, &name) != 0 || name.type != AX_AMF0_STRING) return;
    if (ax_amf0_read(d, len, &off, &txn) != 0 || txn.type != AX_AMF0_NUMBER) txn.num = 0;
#define IS(s) (name.len == sizeof(s) - 1 && memcmp(name.str, s, sizeof(s) - 1) == 0)
    if (IS("connect")) {
        on_connect(rc, txn.num, d, len, off);
        return;
    }
    if (IS("createStream")) {
        send_result(rc, txn.num, LIVE_RTMP_SID);
        return;
    }
    if (IS("deleteStream") || IS("closeStream") || IS("FCUnpublish")) {
        stop_publishing(rc);
        return;
    }
    if (IS("getStreamLength")) {
        send_result(rc, txn.num, 0);
        return;
    }
    if (IS("publish") || IS("play")) {
        size_t o = off;
        if (ax_amf0_skip(d, len, &o) != 0 || ax_amf0_read(d, len, &o, &arg) != 0 ||
            arg.type != AX_AMF0_STRING) {
            close_conn(rc);
            return;
        }
        if (IS("publish"))
            on_publish(rc, &arg);
        else
            on_play(rc, &arg);
        return;
    }
#undef IS
    /* releaseStream, FCPublish, _checkbw ...: acknowledged, nothing else */
    if (txn.num > 0) send_result(rc, txn.num, -1);
}

/* A whole message. */
static void on_message(rtmp_conn *rc, const ax_rtmp_hdr *h, const uint8_t *d)
{
    GW_ADD(rc->g->sv->gw[GW_RTMP].msgs_in, 1);
    switch (h->type) {
    case AX_RTMP_SET_CHUNK_SIZE:
        if (h->len < 4 ||
            ax_rtmp_set_chunk_size(&rc->p, ((uint32_t)d[0] << 24 & 0x7f000000u) |
                                               (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]))
            close_conn(rc);
        break;
    case AX_RTMP_WINDOW_ACK:
        if (h->len >= 4)
            rc->peer_window =
                (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
        break;
    case AX_RTMP_COMMAND:
        on_command(rc, d, h->len);
        break;
    case AX_RTMP_AUDIO:
    case AX_RTMP_VIDEO:
    case AX_RTMP_DATA:
        if (rc->pub) live_push(rc->pub, h->type, h->ts, d, h->len);
        break;
    default: /* acknowledgements, user control, bandwidth, AMF3: nothing to do */
        break;
    }
}

/* The chunk's bytes into its message; the message when whole. */
static int on_chunk(rtmp_conn *rc, const ax_rtmp_chunk *ch)
{
    if (ch->last && ch->offset == 0) { /* one chunk: no copy */
        on_message(rc, &ch->h, ch->data);
        return 0;
    }
    rtmp_asm *a = NULL, *free_one = NULL;
    for (int i = 0; i < AX_RTMP_MAX_STREAMS && !a; i++) {
        if (rc->as[i].buf && rc->as[i].csid == ch->h.csid) a = &rc->as[i];
        if (!rc->as[i].buf && !free_one) free_one = &rc->as[i];
    }
    if (!a && !(a = free_one)) return -1;
    if (a->cap < ch->h.len) {
        uint8_t *b = ax_realloc(a->buf, ch->h.len);
        if (!b) return -1;
        a->buf = b;
        a->cap = ch->h.len;
    }
    a->csid = ch->h.csid;
    memcpy(a->buf + ch->offset, ch->data, ch->len);
    if (ch->last) on_message(rc, &ch->h, a->buf);
    return 0;
}

/* ---- the connection ------------------------------------------------------------------- */

static size_t handshake(rtmp_conn *rc, const uint8_t *d, size_t len)
{
    if (rc->state == ST_C0C1) {
        if (len < AX_RTMP_C0C1) return 0;
        uint8_t out[AX_RTMP_S0S1S2];
        if (ax_rtmp_handshake_reply(d, (uint32_t)ax_loop_now(rc->g->sv->loop), NULL, out) != 0) {
            close_conn(rc);
            return len;
        }
        if (ax_conn_write(rc->c, out, sizeof out) >= 0)
            GW_ADD(rc->g->sv->gw[GW_RTMP].bytes_out, sizeof out);
        rc->state = ST_C2;
        return AX_RTMP_C0C1;
    }
    if (len < AX_RTMP_HS) return 0;
    rc->state = ST_CHUNKS;
    return AX_RTMP_HS;
}

static void maybe_ack(rtmp_conn *rc)
{
    if (rc->peer_window == 0 || rc->bytes_in - rc->acked < rc->peer_window / 2) return;
    rc->acked = rc->bytes_in;
    send_u32(rc, AX_RTMP_ACK, (uint32_t)rc->bytes_in);
}

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    rtmp_conn *rc = ax_conn_data(c);
    if (!rc) return len;
    const uint8_t *d = (const uint8_t *)data;
    size_t off = 0;
    while (off < len && !rc->closing) {
        if (rc->state != ST_CHUNKS) {
            size_t n = handshake(rc, d + off, len - off);
            if (n == 0) break;
            off += n;
            continue;
        }
        ax_rtmp_chunk ch;
        long n = ax_rtmp_chunk_parse(&rc->p, d + off, len - off, &ch);
        if (n == 0) break;
        if (n < 0 || on_chunk(rc, &ch) != 0) {
            GW_ADD(rc->g->sv->gw[GW_RTMP].errors, 1);
            ax_conn_abort(c, AX_EPROTO);
            return len;
        }
        off += (size_t)n;
    }
    if (rc->closing) off = len;
    rc->bytes_in += off;
    GW_ADD(rc->g->sv->gw[GW_RTMP].bytes_in, off);
    if (!rc->closing) maybe_ack(rc);
    if (rc->state == ST_CHUNKS && (rc->pub || rc->view)) ax_conn_set_idle_timeout(c, 60000);
    return off;
}

static void on_open(ax_conn *c)
{
    gw_rtmp *g = ax_conn_data(c);
    hub_limits_conn lim;
    hub_refusal ref = {0};
    if (serve_limit_open(g->sv, "rtmp", c, &lim, &ref) != HUB_LIMIT_OK) {
        GW_ADD(g->sv->gw[GW_RTMP].errors, 1);
        ax_conn_set_data(c, NULL);
        ax_conn_close(c);
        return;
    }
    rtmp_conn *rc = ax_calloc(1, sizeof(*rc));
    if (!rc) {
        serve_limit_close(g->sv, &lim);
        ax_conn_set_data(c, NULL);
        ax_conn_abort(c, AX_ENOMEM);
        return;
    }
    rc->lim = lim;
    rc->g = g;
    rc->c = c;
    ax_rtmp_parser_init(&rc->p);
    rc->next = g->conns;
    if (g->conns) g->conns->prev = rc;
    g->conns = rc;
    ax_conn_set_data(c, rc);
    GW_ADD(g->sv->gw[GW_RTMP].conns, 1);
    GW_ADD(g->sv->gw[GW_RTMP].accepted, 1);
}

static void on_end(ax_conn *c)
{
    rtmp_conn *rc = ax_conn_data(c);
    if (rc) stop_publishing(rc);
    ax_conn_close(c);
}

static void on_close(ax_conn *c, int reason)
{
    rtmp_conn *rc = ax_conn_data(c);
    (void)reason;
    if (!rc) return;
    if (rc->prev)
        rc->prev->next = rc->next;
    else
        rc->g->conns = rc->next;
    if (rc->next) rc->next->prev = rc->prev;
    stop_publishing(rc);
    live_viewer_free(rc->view);
    for (int i = 0; i < AX_RTMP_MAX_STREAMS; i++)
        ax_free(rc->as[i].buf);
    GW_SUB(rc->g->sv->gw[GW_RTMP].conns, 1);
    serve_limit_close(rc->g->sv, &rc->lim);
    ax_free(rc);
}

static const ax_conn_cbs rtmp_cbs = {
    .on_open = on_open, .on_data = on_data, .on_end = on_end, .on_close = on_close};

/* ---- the interface (gateway.h) -------------------------------------------------------- */

static const char *rtmp_url(const serve_cfg *c)
{
    return c->rtmp_url;
}

static void *rtmp_start(serve *sv, const char *url, char *why, size_t why_len)
{
    gw_rtmp *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    g->sv = sv;
    live_rec_dir(sv->cfg->record_dir);
    live_set_hub(sv->hub);
    int err = 0;
    ax_conn_opts co = {.max_input = 2 * AX_RTMP_MAX_CHUNK + 64,
                       .output_cap = 8u << 20,
                       .idle_timeout_ms = RTMP_HANDSHAKE_MS,
                       .linger_ms = sv->cfg->close_timeout_s * 1000};
    ax_listen_opts lo = serve_listen_opts(sv);
    g->ls = ax_listen_ex(sv->loop, url, &rtmp_cbs, &co, &lo, g, &err);
    if (!g->ls) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        ax_free(g);
        return NULL;
    }
    return g;
}

static void rtmp_stop(void *gp)
{
    gw_rtmp *g = gp;
    if (g->ls) ax_listener_close(g->ls);
    g->ls = NULL;
    for (rtmp_conn *rc = g->conns; rc; rc = rc->next) {
        stop_publishing(rc);
        close_conn(rc);
    }
}

static void rtmp_abort(void *gp)
{
    gw_rtmp *g = gp;
    for (rtmp_conn *rc = g->conns; rc; rc = rc->next)
        ax_conn_abort(rc->c, AX_ECLOSED);
}

static void rtmp_free(void *gp)
{
    gw_rtmp *g = gp;
    live_loop_gone(g->sv->loop);
    ax_free(g);
}

static size_t rtmp_count(const void *gp)
{
    const gw_rtmp *g = gp;
    size_t n = 0;
    for (const rtmp_conn *rc = g->conns; rc; rc = rc->next)
        n++;
    return n;
}

static const char *rtmp_addr(void *gp, char *buf, size_t len)
{
    gw_rtmp *g = gp;
    return g && g->ls ? ax_addr_format(ax_listener_addr(g->ls), buf, len) : NULL;
}

static void rtmp_log_addrs(void *g)
{
    char a[AX_ADDR_STRLEN];
    if (rtmp_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "RTMP on %s", a);
}

static void rtmp_hints(void *g, FILE *out)
{
    char a[AX_ADDR_STRLEN], hp[AX_ADDR_STRLEN];
    if (rtmp_addr(g, a, sizeof a))
        fprintf(out,
                "axon serve: live (RTMP)   ffmpeg -re -i IN -c copy -f flv rtmp://%s/live/NAME\n",
                serve_hostport(a, hp, sizeof hp));
}

const gw_ops gw_rtmp_gateway = {.name = "rtmp",
                                .url = rtmp_url,
                                .start = rtmp_start,
                                .stop = rtmp_stop,
                                .abort = rtmp_abort,
                                .free = rtmp_free,
                                .count = rtmp_count,
                                .addr = rtmp_addr,
                                .log_addrs = rtmp_log_addrs,
                                .hints = rtmp_hints};
