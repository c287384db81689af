/* live_http.c: the live relay over HTTP (live.h), mounted on the HTTP
 * gateway's server as the gateway "live":
 *
 *   GET /live                  the live streams, JSON
 *   GET /live/NAME.flv         HTTP-FLV, chunked, from the last keyframe
 *   GET /live/NAME.ts          MPEG-TS, chunked, from the last keyframe
 *   GET /live/NAME/index.m3u8  HLS: the playlist of the last segments
 *   GET /live/NAME/seg-N.ts    HLS: a segment (MPEG-TS from a keyframe)
 *   GET /live/NAME/ll.m3u8     Low-Latency HLS (fMP4 parts; live_llhttp.h: also
 *                              init.mp4, ll-N.m4s, p-K.m4s, blocking requests)
 *   GET /live/NAME/ws          WebSocket: fragmented MP4 for Media Source Extensions
 *   GET /live/NAME             the player page (web/live.html)
 *   PUT, POST /live/NAME       publish: an FLV body (chunked), as ffmpeg -f flv http://...
 *   GET /live/NAME/stats       one stream's numbers, JSON
 *
 * A viewer of NAME needs a read grant on the topic live/NAME when
 * authentication is on (credentials as for the HTTP API: Authorization,
 * or ?token=).  Every FLV viewer is sent the same tag bytes (slices) once
 * it has its start (headers and GOP, copied). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon/alloc.h>

#include <axon/ws.h>

#include "live.h"
#include "live_llhttp.h"
#include "live_rec.h"
#include "live_tsin.h"
#include "serve.h"
#include "web_assets.h"

typedef struct gw_live gw_live;
typedef struct flv_client flv_client;
typedef struct ws_client ws_client;

struct gw_live {
    serve *sv;
    ax_timer *watch; /* starts reading new streams, to notice when they close */
    flv_client *clients;
    ws_client *ws;
    live_llh *ll; /* LL-HLS and its held requests */
};

/* A WebSocket fMP4 viewer (/live/NAME/ws). */
struct ws_client {
    ws_client *prev, *next;
    gw_live *g;
    ax_ws *ws;
    live_viewer *v;
    char name[LIVE_NAME_MAX + 1];
};

struct flv_client {
    flv_client *prev, *next;
    gw_live *g;
    ax_http_req *r;
    live_viewer *v;
    bool watch;
};

static void client_forget(flv_client *c)
{
    gw_live *g = c->g;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    GW_SUB(g->sv->gw[GW_LIVE].conns, 1);
    live_viewer_free(c->v);
    ax_free(c);
}

static int f_write(void *ud, ax_slice *s)
{
    flv_client *c = ud;
    GW_ADD(c->g->sv->gw[GW_LIVE].bytes_out, ax_slice_len(s));
    GW_ADD(c->g->sv->gw[GW_LIVE].msgs_out, 1);
    return ax_http_write_slice(c->r, s, 0, ax_slice_len(s));
}

static int f_write_copy(void *ud, const void *data, size_t len)
{
    flv_client *c = ud;
    GW_ADD(c->g->sv->gw[GW_LIVE].bytes_out, len);
    return ax_http_write(c->r, data, len);
}

static size_t f_queued(void *ud)
{
    return ax_conn_queued(ax_http_req_conn(((flv_client *)ud)->r));
}

/* The publisher left: end the response (the viewer goes with it). */
static void f_ended(void *ud)
{
    flv_client *c = ud;
    ax_http_req *r = c->r;
    ax_http_on_abort(r, NULL, NULL);
    client_forget(c);
    ax_http_end(r);
}

static ax_conn *f_conn(void *ud)
{
    return ax_http_req_conn(((flv_client *)ud)->r);
}

static const live_viewer_ops flv_viewer = {f_write, f_write_copy, f_queued, f_ended, f_conn};

static void flv_abort(ax_http_req *r, void *ud)
{
    (void)r;
    client_forget(ud);
}

/* May the request's client watch `name`?  Answers 401/403 itself. */
static bool may_watch(gw_live *g, ax_http_req *r, const char *name)
{
    auth_identity *id = NULL;
    if (serve_http_identity(g->sv, r, &id) != 0) {
        serve_http_unauthorized(r);
        return false;
    }
    char topic[LIVE_NAME_MAX + 8];
    snprintf(topic, sizeof topic, "live/%s", name);
    bool ok = !id || auth_may_read(id, topic);
    auth_identity_free(id);
    if (!ok) serve_http_error(r, 403, "forbidden: you may not watch this stream");
    return ok;
}

static void viewer(gw_live *g, ax_http_req *r, const char *name, int format)
{
    if (!may_watch(g, r, name)) return;
    flv_client *c = ax_calloc(1, sizeof(*c));
    if (!c) {
        serve_http_error(r, 503, "out of memory");
        return;
    }
    c->g = g;
    c->r = r;
    ax_http_add_header(r, "Content-Type", format == LIVE_TS ? "video/mp2t" : "video/x-flv");
    ax_http_add_header(r, "Cache-Control", "no-cache");
    ax_http_add_header(r, "Access-Control-Allow-Origin", "*");
    live_info info;
    if (live_info_of(name, &info) != 0) {
        ax_free(c);
        serve_http_error(r, 404, "no such live stream");
        return;
    }
    if (format == LIVE_FLV && !live_info_flv(&info)) { /* live.h */
        ax_free(c);
        serve_http_error(r, 415,
                         "this stream is HEVC or Opus, which FLV has no codec id for: "
                         "play .ts, /index.m3u8 or /ws");
        return;
    }
    ax_http_start(r, 200, -1);
    int err = 0;
    c->next = g->clients;
    if (g->clients) g->clients->prev = c;
    g->clients = c;
    GW_ADD(g->sv->gw[GW_LIVE].conns, 1);
    GW_ADD(g->sv->gw[GW_LIVE].accepted, 1);
    ax_http_on_abort(r, flv_abort, c);
    if (!(c->v = live_watch(name, g->sv->loop, format, &flv_viewer, c, &err))) {
        ax_http_on_abort(r, NULL, NULL);
        client_forget(c);
        ax_http_end(r); /* it ended between the two looks */
        return;
    }
    c->watch = true;
    ax_timer_start(g->watch, 0, 0);
}

static void flv_watch(ax_timer *t, void *ud)
{
    gw_live *g = ud;
    (void)t;
    for (flv_client *c = g->clients; c; c = c->next) {
        if (!c->watch) continue;
        c->watch = false;
        ax_conn_resume(ax_http_req_conn(c->r));
    }
}

/* `in` with its quotes escaped for a JSON string (MIME types only have
 * printable ASCII). */
static const char *json_esc(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in && o + 2 < cap; in++) {
        if (*in == '"' || *in == '\\') out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = '\0';
    return out;
}

/* A stream's numbers as JSON into b. */
static int info_json(const live_info *i, uint64_t now, char *b, size_t cap)
{
    char mime[2 * sizeof i->mime];
    return snprintf(b, cap,
                    "{\"name\":\"%s\",\"video\":%s,\"audio\":%s,\"video_codec\":%u,"
                    "\"audio_codec\":%u,\"width\":%u,\"height\":%u,\"fps\":%.3f,"
                    "\"frames\":%llu,\"bytes\":%llu,\"keyframes\":%llu,\"viewers\":%llu,"
                    "\"skipped\":%llu,\"last_ts\":%u,\"gop_frames\":%zu,\"gop_bytes\":%zu,"
                    "\"hls_segments\":%llu,\"mime\":\"%s\",\"latency_us\":{\"n\":%llu,"
                    "\"p50\":%llu,\"p99\":%llu,\"max\":%llu},\"uptime_ms\":%llu}",
                    i->name, i->video ? "true" : "false", i->audio ? "true" : "false",
                    i->video_codec, i->audio_codec, i->width, i->height, i->fps,
                    (unsigned long long)i->frames, (unsigned long long)i->bytes,
                    (unsigned long long)i->keyframes, (unsigned long long)i->viewers,
                    (unsigned long long)i->skipped, i->last_ts, i->gop_frames, i->gop_bytes,
                    (unsigned long long)i->hls_segments, json_esc(i->mime, mime, sizeof mime),
                    (unsigned long long)i->lat_n, (unsigned long long)i->lat_p50_us,
                    (unsigned long long)i->lat_p99_us, (unsigned long long)i->lat_max_us,
                    (unsigned long long)(now > i->since_ms ? now - i->since_ms : 0));
}

static bool may_watch(gw_live *g, ax_http_req *r, const char *name);

static void stats(gw_live *g, ax_http_req *r, const char *name)
{
    live_info i;
    char b[1024];
    if (!may_watch(g, r, name)) return;
    if (live_info_of(name, &i) != 0) {
        serve_http_error(r, 404, "no such live stream");
        return;
    }
    int n = info_json(&i, ax_loop_now(g->sv->loop), b, sizeof b);
    ax_http_add_header(r, "Cache-Control", "no-cache");
    ax_http_respond(r, 200, "application/json", b, (size_t)n);
}

/* The streams the client may watch (every one for whoever may read
 * /metrics: the dashboard lists them). */
static void list(gw_live *g, ax_http_req *r)
{
    enum { MAX = 256 };
    auth_identity *id = NULL;
    bool known = serve_http_identity(g->sv, r, &id) == 0;
    bool every = !g->sv->auth || serve_metrics_allowed(g->sv, id, serve_http_loopback(r));
    if (!known && !every) {
        serve_http_unauthorized(r);
        return;
    }
    live_info *all = ax_malloc(MAX * sizeof(*all));
    char *b = all ? ax_malloc(MAX * 1024 + 64) : NULL;
    if (!b) {
        ax_free(all);
        auth_identity_free(id);
        serve_http_error(r, 503, "out of memory");
        return;
    }
    size_t n = live_list(all, MAX), len = (size_t)sprintf(b, "{\"streams\":["), shown = 0;
    for (size_t i = 0; i < n; i++) {
        char topic[LIVE_NAME_MAX + 8];
        snprintf(topic, sizeof topic, "live/%s", all[i].name);
        if (!every && !auth_may_read(id, topic)) continue;
        if (shown++) b[len++] = ',';
        len += (size_t)info_json(&all[i], ax_loop_now(g->sv->loop), b + len, 1024);
    }
    auth_identity_free(id);
    len += (size_t)sprintf(b + len, "]}");
    ax_http_add_header(r, "Cache-Control", "no-cache");
    ax_http_respond(r, 200, "application/json", b, len);
    ax_free(b);
    ax_free(all);
}

static void playlist(gw_live *g, ax_http_req *r, const char *name)
{
    char b[2048];
    if (!may_watch(g, r, name)) return;
    int n = live_hls_playlist(name, b, sizeof b);
    if (n < 0) {
        serve_http_error(r, 404, "no such live stream, or no segment yet");
        return;
    }
    ax_http_add_header(r, "Cache-Control", "no-cache");
    ax_http_add_header(r, "Access-Control-Allow-Origin", "*");
    ax_http_respond(r, 200, "application/vnd.apple.mpegurl", b, (size_t)n);
}

/* /live/NAME/seg-N.ts */
static void hls_segment(gw_live *g, ax_http_req *r, const char *name, uint64_t n)
{
    if (!may_watch(g, r, name)) return;
    ax_slice *s = live_hls_segment(name, n);
    if (!s) {
        serve_http_error(r, 404, "no such segment");
        return;
    }
    ax_http_add_header(r, "Cache-Control", "max-age=60");
    ax_http_add_header(r, "Access-Control-Allow-Origin", "*");
    GW_ADD(g->sv->gw[GW_LIVE].bytes_out, ax_slice_len(s));
    ax_http_respond(r, 200, "video/mp2t", ax_slice_data(s), ax_slice_len(s));
    ax_slice_unref(s);
}

/* "/live/NAME/seg-N.ts" into name and n. */
static bool seg_of(const char *path, size_t len, char *name, uint64_t *n)
{
    const char *slash = len > 6 ? memchr(path + 6, '/', len - 6) : NULL;
    if (!slash || (size_t)(slash - path - 6) > LIVE_NAME_MAX) return false;
    const char *p = slash + 1, *end = path + len;
    if (end - p < 8 || memcmp(p, "seg-", 4) != 0 || memcmp(end - 3, ".ts", 3) != 0) return false;
    uint64_t v = 0;
    for (const char *d = p + 4; d < end - 3; d++) {
        if (*d < '0' || *d > '9' || v > UINT64_MAX / 10 - 10) return false;
        v = v * 10 + (uint64_t)(*d - '0');
    }
    memcpy(name, path + 6, (size_t)(slash - path - 6));
    name[slash - path - 6] = '\0';
    *n = v;
    return live_name_valid(name);
}

/* ---- WebSocket fMP4 ------------------------------------------------------------------ */

static int w_write(void *ud, ax_slice *s)
{
    ws_client *c = ud;
    GW_ADD(c->g->sv->gw[GW_LIVE].bytes_out, ax_slice_len(s));
    GW_ADD(c->g->sv->gw[GW_LIVE].msgs_out, 1);
    return ax_ws_send_shared(c->ws, s);
}

static int w_write_copy(void *ud, const void *data, size_t len)
{
    ws_client *c = ud;
    GW_ADD(c->g->sv->gw[GW_LIVE].bytes_out, len);
    return ax_ws_send_binary(c->ws, data, len);
}

static size_t w_queued(void *ud)
{
    return ax_ws_buffered(((ws_client *)ud)->ws);
}

static void w_ended(void *ud)
{
    (void)ax_ws_close(((ws_client *)ud)->ws, AX_WS_CLOSE_NORMAL, "stream ended");
}

static ax_conn *w_conn(void *ud)
{
    return ax_ws_conn(((ws_client *)ud)->ws);
}

static const live_viewer_ops ws_viewer = {w_write, w_write_copy, w_queued, w_ended, w_conn};

/* First a text message: the MIME type for MediaSource and the size; then
 * the init segment and fragments from the last keyframe, binary. */
static void ws_open(ax_ws *ws)
{
    ws_client *c = ax_ws_data(ws);
    if (!c) return;
    c->ws = ws;
    live_info i;
    char b[256];
    if (live_info_of(c->name, &i) != 0 || !i.mime[0]) {
        (void)ax_ws_close(ws, 4404, i.mime[0] ? "no such live stream" : "no media yet");
        return;
    }
    char mime[2 * sizeof i.mime];
    int n = snprintf(b, sizeof b, "{\"type\":\"init\",\"mime\":\"%s\",\"width\":%u,\"height\":%u}",
                     json_esc(i.mime, mime, sizeof mime), i.width, i.height);
    if (ax_ws_send_text(ws, b, (size_t)n) < 0) return;
    int err = 0;
    c->v = live_watch(c->name, c->g->sv->loop, LIVE_FMP4, &ws_viewer, c, &err);
    if (!c->v) (void)ax_ws_close(ws, 4404, "no such live stream");
}

static void ws_forget(ws_client *c)
{
    gw_live *g = c->g;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->ws = c->next;
    if (c->next) c->next->prev = c->prev;
    GW_SUB(g->sv->gw[GW_LIVE].conns, 1);
    live_viewer_free(c->v);
    ax_free(c);
}

static void ws_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    ws_client *c = ax_ws_data(ws);
    (void)code, (void)reason, (void)len;
    if (c) ws_forget(c);
}

static const ax_ws_cbs ws_cbs = {.on_open = ws_open, .on_close = ws_close};

static void ws_view(gw_live *g, ax_http_req *r, const char *name)
{
    char why[256];
    if (!serve_origin_allowed(r, g->sv->cfg, why, sizeof why)) {
        serve_http_error(r, 403, why);
        return;
    }
    if (!may_watch(g, r, name)) return;
    live_info i;
    if (live_info_of(name, &i) != 0) {
        serve_http_error(r, 404, "no such live stream");
        return;
    }
    ws_client *c = ax_calloc(1, sizeof(*c));
    if (!c) {
        serve_http_error(r, 503, "out of memory");
        return;
    }
    c->g = g;
    snprintf(c->name, sizeof c->name, "%s", name);
    ax_ws_opts o = {.max_message = 4096, .ping_interval_ms = 30000, .output_cap = 16u << 20};
    if (ax_ws_upgrade(r, &ws_cbs, &o, c) != 0) {
        ax_free(c);
        return;
    }
    c->next = g->ws;
    if (g->ws) g->ws->prev = c;
    g->ws = c;
    GW_ADD(g->sv->gw[GW_LIVE].conns, 1);
    GW_ADD(g->sv->gw[GW_LIVE].accepted, 1);
}

static bool name_of(const char *path, size_t n, const char *suffix, char *name);

/* /live/NAME/REST with REST an LL-HLS resource: NAME into name, REST's offset into *rest. */
static bool ll_of(const char *path, size_t len, char *name, size_t *rest)
{
    const char *slash = len > 6 ? memchr(path + 6, '/', len - 6) : NULL;
    if (!slash || (size_t)(slash - path - 6) > LIVE_NAME_MAX) return false;
    *rest = (size_t)(slash + 1 - path);
    if (!live_llh_is(path + *rest, len - *rest)) return false;
    memcpy(name, path + 6, (size_t)(slash - path - 6));
    name[slash - path - 6] = '\0';
    return live_name_valid(name);
}

static void ll_get(gw_live *g, ax_http_req *r, const char *name, const char *rest, size_t len)
{
    if (may_watch(g, r, name)) live_llh_get(g->ll, r, name, rest, len);
}

/* ---- HTTP ingest: PUT or POST /live/NAME with an FLV body --------------------------- */

#define INGEST_MAX_TAG (8u << 20)

typedef struct ingest {
    gw_live *g;
    live_stream *st;
    live_tsin *ts; /* an MPEG-TS body: its demuxer (which has st then) */
    uint8_t *buf;  /* an FLV tag not whole yet */
    size_t len, cap;
    bool head; /* the FLV header has been read */
    bool failed;
} ingest;

static void ingest_free(ingest *in)
{
    if (in->ts)
        live_tsin_free(in->ts); /* the stream ends after the demuxer's last frame */
    else if (in->st)
        live_unpublish(in->st);
    ax_free(in->buf);
    ax_free(in);
}

/* The FLV tags in buf[0..len): pushed; returns the bytes used. */
static size_t ingest_tags(ingest *in, const uint8_t *d, size_t len)
{
    size_t off = 0;
    if (!in->head) {
        if (len < 13) return 0;
        if (memcmp(d, "FLV", 3) != 0) {
            in->failed = true;
            return len;
        }
        uint32_t hl = (uint32_t)d[5] << 24 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 8 | d[8];
        if (hl < 9 || hl > 64 || len < hl + 4)
            return hl < 9 || hl > 64 ? (in->failed = true, len) : 0;
        off = hl + 4;
        in->head = true;
    }
    while (len - off >= 11) {
        const uint8_t *t = d + off;
        uint32_t size = (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3];
        uint32_t ts = ((uint32_t)t[4] << 16 | (uint32_t)t[5] << 8 | t[6]) | (uint32_t)t[7] << 24;
        if (size > INGEST_MAX_TAG) {
            in->failed = true;
            return len;
        }
        if (len - off < 11 + (size_t)size + 4) break;
        live_push(in->st, t[0] & 0x1f, ts, t + 11, size);
        GW_ADD(in->g->sv->gw[GW_LIVE].msgs_in, 1);
        off += 11 + (size_t)size + 4;
    }
    return off;
}

static void ingest_body(ax_http_req *r, const char *data, size_t len, void *ud)
{
    ingest *in = ud;
    if (len == 0) { /* the end */
        ax_http_on_abort(r, NULL, NULL);
        ax_log(AX_LOG_INFO, "live: a stream published over HTTP ended");
        ingest_free(in);
        ax_http_respond(r, 200, "application/json", "{\"ok\":true}", 11);
        return;
    }
    GW_ADD(in->g->sv->gw[GW_LIVE].bytes_in, len);
    if (in->failed) return;
    const uint8_t *d = (const uint8_t *)data;
    if (!in->head && !in->ts && in->len == 0 && d[0] == 0x47) { /* MPEG-TS's sync byte */
        if (!(in->ts = live_tsin_new(in->st, in->g->sv->loop))) in->failed = true;
    }
    if (in->ts) {
        if (!live_tsin_feed(in->ts, d, len)) in->failed = true;
        GW_ADD(in->g->sv->gw[GW_LIVE].msgs_in, 1);
        len = 0;
    }
    if (in->len == 0) { /* nothing kept: straight from the input */
        size_t used = ingest_tags(in, d, len);
        d += used, len -= used;
    }
    if (len && !in->failed) {
        if (in->len + len > INGEST_MAX_TAG + 64) {
            in->failed = true;
        } else {
            if (in->len + len > in->cap) {
                size_t cap = in->cap ? in->cap : 65536;
                while (cap < in->len + len)
                    cap *= 2;
                uint8_t *b = ax_realloc(in->buf, cap);
                if (!b) {
                    in->failed = true;
                    return;
                }
                in->buf = b;
                in->cap = cap;
            }
            memcpy(in->buf + in->len, d, len);
            in->len += len;
            size_t used = ingest_tags(in, in->buf, in->len);
            memmove(in->buf, in->buf + used, in->len - used);
            in->len -= used;
        }
    }
    if (in->failed) { /* answer now: the server reads the rest and drops it */
        ax_http_on_abort(r, NULL, NULL);
        ax_http_req_on_body(r, NULL, NULL);
        ingest_free(in);
        serve_http_error(r, 415, "the body is not FLV or MPEG-TS (H.264, H.265, AAC, Opus)");
    }
}

static void ingest_abort(ax_http_req *r, void *ud)
{
    (void)r;
    ingest_free(ud);
}

static void ingest_start(ax_http_req *r, void *ud)
{
    gw_live *g = ud;
    size_t n;
    const char *path = ax_http_req_path(r, &n);
    char name[LIVE_NAME_MAX + 1], topic[LIVE_NAME_MAX + 8];
    if (!name_of(path, n, "", name)) {
        serve_http_error(r, 404, "PUT or POST /live/NAME with an FLV body");
        return;
    }
    auth_identity *id = NULL;
    if (serve_http_identity(g->sv, r, &id) != 0) {
        serve_http_unauthorized(r);
        return;
    }
    snprintf(topic, sizeof topic, "live/%s", name);
    bool ok = !id || auth_may_publish(id, topic);
    auth_identity_free(id);
    if (!ok) {
        serve_http_error(r, 403, "forbidden: you may not publish this stream");
        return;
    }
    ingest *in = ax_calloc(1, sizeof(*in));
    int err = AX_ENOMEM;
    if (!in || !(in->st = live_publish(name, g->sv->loop, &err))) {
        ax_free(in);
        serve_http_error(r, err == AX_EADDRINUSE ? 409 : 503,
                         err == AX_EADDRINUSE ? "this stream is being published" : "out of memory");
        return;
    }
    in->g = g;
    ax_log(AX_LOG_INFO, "live: %s published over HTTP", name);
    ax_http_req_on_body(r, ingest_body, in);
    ax_http_on_abort(r, ingest_abort, in);
}

/* /live/NAME: the player page (web/live.html). */
static void page(ax_http_req *r)
{
    for (size_t i = 0; i < web_assets_count; i++) {
        if (strcmp(web_assets[i].name, "live.html") != 0) continue;
        ax_http_add_header(r, "Cache-Control", "no-cache");
        ax_http_respond(r, 200, "text/html; charset=utf-8", web_assets[i].data, web_assets[i].len);
        return;
    }
    serve_http_error(r, 404, "the live page is not built in");
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* /live/NAME<suffix>: NAME into name, or false. */
static bool name_of(const char *path, size_t n, const char *suffix, char *name)
{
    size_t k = strlen(suffix);
    if (n < 6 + k || !ends_with(path, n, suffix) || n - 6 - k > LIVE_NAME_MAX) return false;
    memcpy(name, path + 6, n - 6 - k);
    name[n - 6 - k] = '\0';
    return live_name_valid(name);
}

static void route(ax_http_req *r, void *ud)
{
    gw_live *g = ud;
    size_t n;
    const char *path = ax_http_req_path(r, &n);
    char name[LIVE_NAME_MAX + 1];
    uint64_t seg;
    size_t rest;
    if (!serve_http_method(r, "GET", "GET, HEAD")) return;
    if (n == 5 || (n == 6 && path[5] == '/'))
        list(g, r);
    else if (name_of(path, n, ".flv", name))
        viewer(g, r, name, LIVE_FLV);
    else if (name_of(path, n, ".ts", name))
        viewer(g, r, name, LIVE_TS);
    else if (name_of(path, n, "/index.m3u8", name))
        playlist(g, r, name);
    else if (seg_of(path, n, name, &seg))
        hls_segment(g, r, name, seg);
    else if (ll_of(path, n, name, &rest))
        ll_get(g, r, name, path + rest, n - rest);
    else if (name_of(path, n, "/ws", name))
        ws_view(g, r, name);
    else if (name_of(path, n, "", name))
        page(r);
    else if (name_of(path, n, "/stats", name))
        stats(g, r, name);
    else
        serve_http_error(r, 404, "GET /live, /live/NAME.flv, .ts, /index.m3u8, /ll.m3u8 or /stats");
}

/* ---- the interface (gateway.h) -------------------------------------------------------- */

static void live_gw_free(void *gp)
{
    gw_live *g = gp;
    while (g->clients) { /* before the server: its abort callbacks may come late */
        flv_client *c = g->clients;
        ax_http_on_abort(c->r, NULL, NULL);
        client_forget(c);
    }
    while (g->ws) { /* WebSockets left the HTTP server: theirs is a later close */
        ws_client *c = g->ws;
        ax_ws_set_data(c->ws, NULL);
        ws_forget(c);
    }
    live_loop_gone(g->sv->loop);
    live_llh_free(g->ll);
    ax_timer_free(g->watch);
    ax_free(g);
}

/* Shutdown: end every stream's response (the connections then close). */
static void live_gw_stop(void *gp)
{
    gw_live *g = gp;
    live_llh_stop(g->ll);
    for (ws_client *c = g->ws; c; c = c->next)
        if (c->ws) (void)ax_ws_close(c->ws, AX_WS_CLOSE_GOING_AWAY, "server shutting down");
    while (g->clients) {
        flv_client *c = g->clients;
        ax_http_req *r = c->r;
        ax_http_on_abort(r, NULL, NULL);
        client_forget(c);
        ax_http_end(r);
    }
}

static void live_gw_abort(void *gp)
{
    gw_live *g = gp;
    for (flv_client *c = g->clients; c; c = c->next)
        ax_conn_abort(ax_http_req_conn(c->r), AX_ECLOSED);
}

static void *live_mount(serve *sv, ax_http_server *srv, char *why, size_t why_len)
{
    gw_live *g = ax_calloc(1, sizeof(*g));
    int err = AX_ENOMEM;
    if (!g) goto fail;
    g->sv = sv;
    live_rec_dir(sv->cfg->record_dir);
    live_set_hub(sv->hub);
    if (!(g->watch = ax_timer_new(sv->loop, flv_watch, g))) goto fail;
    if (!(g->ll = live_llh_new(sv))) goto fail;
    ax_http_route_opts ro = {.stream_body = true, .max_body = UINT64_MAX / 2};
    if ((err = ax_http_route(srv, NULL, "/live", route, g)) != 0 ||
        (err = ax_http_route_ex(srv, "PUT", "/live", ingest_start, g, &ro)) != 0 ||
        (err = ax_http_route_ex(srv, "POST", "/live", ingest_start, g, &ro)) != 0)
        goto fail;
    return g;
fail:
    snprintf(why, why_len, "cannot add the live routes: %s", ax_strerror(err));
    if (g) live_gw_free(g);
    return NULL;
}

const gw_ops gw_live_gateway = {.name = "live",
                                .mount = live_mount,
                                .stop = live_gw_stop,
                                .abort = live_gw_abort,
                                .free = live_gw_free};
