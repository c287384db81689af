/* ws_conn.c: an open WebSocket connection: frames in, whole messages out,
 * sends, the close handshake, keepalive pings and backpressure.  Shared by
 * the server (ws_server.c) and the client (ws_client.c).
 *
 * Frames sent while the connection's own on_data runs collect in one
 * per-thread buffer and leave in one write when on_data returns, so an
 * echo of four pipelined messages costs one send, not four.  Whole
 * messages that arrive in one read are delivered straight from the read
 * buffer; only fragmented or split messages are copied.
 *
 * Shared (broadcast) frames sent to other connections during an on_data
 * are corked the same way: each recipient collects references to the
 * shared slices and gets one writev for all of them when on_data returns,
 * so a sender whose one read held 30 messages costs each of a thousand
 * recipients one system call, not 30. */
#include <string.h>
#include <sys/uio.h>

#include <openssl/rand.h>

#include <axon/alloc.h>
#include <axon/timer.h>
#include <axon/ws.h>

#include "proto/ws/utf8.h"
#include "proto/ws/ws_internal.h"

#define BATCH_CAP (64 * 1024)
#define KEEP_MSG_CAP (64 * 1024) /* larger reassembly buffers are freed after use */
#define CAP_SLACK (4 * 1024)     /* room past output_cap for the close frame */
#define DEFAULT_MAX (16u << 20)  /* max_message by default */
#define PEND_MAX 8               /* corked shared frames per recipient */

enum { WS_HANDSHAKE, WS_OPEN, WS_CLOSE_SENT, WS_CLOSED };

struct ax_ws {
    ax_conn *conn;
    const ax_ws_cbs *cbs;
    void *ud;
    ax_ws_opts o;
    enum ax_ws_role role;
    uint8_t state;
    bool close_sent;
    bool pinged; /* keepalive: a ping is out */
    bool heard;  /* keepalive: bytes came since that ping */
    uint16_t code;
    uint8_t reason_len;
    char reason[AX_WS_MAX_CONTROL];
    ax_ws_parser p;
    uint8_t *msg; /* reassembly of a fragmented or split message */
    size_t msg_len, msg_cap;
    ax_timer *timer;
    char *info; /* "path\0origin\0protocol\0" */
    size_t origin_off, proto_off;
    ax__ws_pmd pmd;
    ax__ws_deflate *z;
    ax_ws *cork_next; /* in the corked list while in_cork */
    bool in_cork;
    uint8_t npend;
    size_t pend_bytes;
    ax_slice *pend[PEND_MAX]; /* corked shared frames, oldest first */
};

typedef struct ws_batch {
    ax_ws *owner;
    size_t len;
    uint8_t buf[BATCH_CAP];
} ws_batch;

static _Thread_local ws_batch batch;

/* Recipients with corked shared frames, while some on_data runs. */
static _Thread_local ax_ws *corked;

/* Masking keys come from OpenSSL's generator, fetched 64 keys at a time. */
typedef struct key_pool {
    size_t used;
    uint8_t bytes[256];
} key_pool;

static _Thread_local key_pool keys = {.used = sizeof keys.bytes};

static int next_key(uint8_t key[4])
{
    if (keys.used + 4 > sizeof keys.bytes) {
        if (RAND_bytes(keys.bytes, (int)sizeof keys.bytes) != 1) return AX_EIO;
        keys.used = 0;
    }
    memcpy(key, keys.bytes + keys.used, 4);
    keys.used += 4;
    return 0;
}

/* ---- lifetime ---------------------------------------------------------- */

static void set_info(ax_ws *ws, char *info)
{
    static char empty[3];
    ax_free(ws->info == empty ? NULL : ws->info);
    ws->info = info ? info : empty;
    ws->origin_off = strlen(ws->info) + 1;
    ws->proto_off = ws->origin_off + strlen(ws->info + ws->origin_off) + 1;
}

void ax__ws_opts_defaults(ax_ws_opts *o)
{
    /* A message this endpoint accepts must fit its own output: echoing a
     * maximum-size message (header included) may never pass the cap.  So
     * an output cap set alone bounds the messages, and the cap is never
     * below the largest message plus its header. */
    size_t hdr = AX_WS_MAX_HEADER;
    if (!o->max_message)
        o->max_message = o->output_cap > hdr && o->output_cap - hdr < DEFAULT_MAX
                             ? o->output_cap - hdr
                             : DEFAULT_MAX;
    if (!o->close_timeout_ms) o->close_timeout_ms = 5000;
    if (!o->high_watermark) o->high_watermark = 64 * 1024;
    if (!o->low_watermark) o->low_watermark = 16 * 1024;
    if (o->low_watermark > o->high_watermark) o->low_watermark = o->high_watermark;
    if (!o->output_cap) o->output_cap = DEFAULT_MAX + hdr;
    if (o->max_message > SIZE_MAX - hdr) o->max_message = SIZE_MAX - hdr;
    if (o->output_cap < o->max_message + hdr) o->output_cap = o->max_message + hdr;
    if (!o->deflate_window_bits || o->deflate_window_bits > 15) o->deflate_window_bits = 15;
    if (o->deflate_window_bits < 9) o->deflate_window_bits = 9;
    if (!o->deflate_level) o->deflate_level = 1;
    if (!o->deflate_min_size) o->deflate_min_size = 64;
}

ax_ws *ax__ws_new(enum ax_ws_role role, const ax_ws_cbs *cbs, const ax_ws_opts *opts, void *ud,
                  char *info)
{
    ax_ws *ws = ax_calloc(1, sizeof(*ws));
    if (!ws) {
        ax_free(info);
        return NULL;
    }
    ws->role = role;
    ws->cbs = cbs;
    ws->ud = ud;
    if (opts) ws->o = *opts;
    ax__ws_opts_defaults(&ws->o);
    ws->state = WS_HANDSHAKE;
    set_info(ws, info);
    return ws;
}

void ax__ws_set_info(ax_ws *ws, char *info)
{
    set_info(ws, info);
}

const ax_ws_opts *ax__ws_opts(const ax_ws *ws)
{
    return &ws->o;
}

static void cork_unlink(ax_ws *ws)
{
    for (ax_ws **pp = &corked; *pp; pp = &(*pp)->cork_next)
        if (*pp == ws) {
            *pp = ws->cork_next;
            break;
        }
    ws->in_cork = false;
}

void ax__ws_free(ax_ws *ws)
{
    if (!ws) return;
    if (batch.owner == ws) batch.owner = NULL;
    if (ws->in_cork) cork_unlink(ws);
    for (int i = 0; i < ws->npend; i++)
        ax_slice_unref(ws->pend[i]);
    ax_timer_free(ws->timer);
    ax__ws_deflate_free(ws->z);
    ax_free(ws->msg);
    set_info(ws, NULL);
    ax_free(ws);
}

void ax__ws_set_conn(ax_ws *ws, ax_conn *c)
{
    ws->conn = c;
}

void ax__ws_report_close(ax_ws *ws, int code)
{
    ws->state = WS_CLOSED;
    if (ws->cbs->on_close) ws->cbs->on_close(ws, code, "", 0);
    ax__ws_free(ws);
}

static void ws_timer(ax_timer *t, void *ud);

int ax__ws_open(ax_ws *ws, ax_conn *c, const ax__ws_pmd *pmd)
{
    ax_ws_config cfg = {.role = ws->role, .max_message = ws->o.max_message};
    ws->conn = c;
    if (pmd && pmd->on) {
        ws->pmd = *pmd;
        ws->z = ax__ws_deflate_new(pmd, ws->o.deflate_level);
        if (!ws->z) return AX_ENOMEM;
        cfg.rsv_allowed = AX_WS_RSV1;
    }
    if (ws->o.ping_interval_ms) {
        ws->timer = ax_timer_new(ax_conn_loop(c), ws_timer, ws);
        if (!ws->timer) return AX_ENOMEM;
        ax_timer_start(ws->timer, ws->o.ping_interval_ms, ws->o.ping_interval_ms);
    }
    ax_ws_parser_init(&ws->p, &cfg);
    ax_conn_set_limits(c, ws->o.low_watermark, ws->o.high_watermark, ws->o.output_cap + CAP_SLACK);
    ws->state = WS_OPEN;
    return 0;
}

/* ---- output ------------------------------------------------------------ */

static int batch_flush(void)
{
    ax_ws *ws = batch.owner;
    if (!ws || !batch.len) return 0;
    size_t n = batch.len;
    batch.len = 0;
    return ax_conn_write(ws->conn, batch.buf, n);
}

static int above_high(const ax_ws *ws)
{
    return ax_conn_queued(ws->conn) > ws->o.high_watermark ? 1 : 0;
}

/* The corked shared frames of `ws`, in order: one gather write, and what
 * the socket does not take at once stays queued as references. */
static int pend_flush(ax_ws *ws)
{
    int n = ws->npend;
    if (!n) return 0;
    ws->npend = 0;
    ws->pend_bytes = 0;
    int rc = ax_conn_write_slices(ws->conn, ws->pend, n);
    for (int i = 0; i < n; i++)
        ax_slice_unref(ws->pend[i]);
    return rc;
}

/* End of an on_data: every recipient's corked frames go out. */
static void cork_flush(void)
{
    while (corked) {
        ax_ws *ws = corked;
        corked = ws->cork_next;
        ws->in_cork = false;
        pend_flush(ws);
    }
}

/* Graceful close of the connection, after what the batch holds. */
static void conn_close(ax_ws *ws)
{
    if (batch.owner == ws) batch_flush();
    pend_flush(ws);
    ws->state = WS_CLOSED;
    ax_conn_close(ws->conn);
}

static void fail(ax_ws *ws, uint16_t code);

/* The output cap: a message that would pass it closes the connection. */
static int cap_check(ax_ws *ws, size_t total)
{
    size_t q = ax_conn_queued(ws->conn) + (batch.owner == ws ? batch.len : 0) + ws->pend_bytes;
    if (q + total <= ws->o.output_cap) return 0;
    fail(ws, ws->o.cap_policy == AX_WS_CAP_INTERNAL ? AX_WS_CLOSE_INTERNAL : AX_WS_CLOSE_POLICY);
    return AX_EOUTPUTCAP;
}

/* A masked copy of header + payload (clients), queued as one slice. */
static int write_masked(ax_ws *ws, const uint8_t *hdr, size_t h, const void *data, size_t len,
                        const uint8_t key[4])
{
    ax_slice *s = ax_slice_new(h + len);
    if (!s) return AX_ENOMEM;
    uint8_t *p = ax_slice_data(s);
    memcpy(p, hdr, h);
    if (len) memcpy(p + h, data, len);
    ax_ws_mask(p + h, len, key, 0);
    int rc = ax_conn_write_slice(ws->conn, s, 0, h + len);
    ax_slice_unref(s);
    return rc;
}

/* Queue one whole frame.  Control frames skip the output cap. */
static int put_frame(ax_ws *ws, unsigned op, unsigned rsv, const void *data, size_t len)
{
    uint8_t hdr[AX_WS_MAX_HEADER], key[4];
    bool mask = ws->role == AX_WS_CLIENT;
    int rc;
    if (mask && (rc = next_key(key)) < 0) return rc;
    size_t h = ax_ws_encode_header(hdr, op, true, rsv, len, mask ? key : NULL);
    if (!h) return AX_EINVAL;
    if (!(op & 0x8) && (rc = cap_check(ws, h + len)) < 0) return rc;
    if (ws->npend && (rc = pend_flush(ws)) < 0) return rc; /* keep the order */
    if (batch.owner == ws && h + len <= BATCH_CAP) {
        if (batch.len + h + len > BATCH_CAP && (rc = batch_flush()) < 0) return rc;
        uint8_t *p = batch.buf + batch.len;
        memcpy(p, hdr, h);
        if (len) memcpy(p + h, data, len);
        if (mask) ax_ws_mask(p + h, len, key, 0);
        batch.len += h + len;
        return above_high(ws);
    }
    if (batch.owner == ws && (rc = batch_flush()) < 0) return rc;
    if (mask) return write_masked(ws, hdr, h, data, len, key);
    struct iovec iov[2] = {{hdr, h}, {(void *)(uintptr_t)data, len}};
    return ax_conn_writev(ws->conn, iov, len ? 2 : 1);
}

static int send_close(ax_ws *ws, unsigned code, const char *reason, size_t rlen)
{
    uint8_t payload[AX_WS_MAX_CONTROL];
    int n = ax_ws_close_encode(payload, code, reason, rlen);
    if (n < 0) return n;
    ws->close_sent = true;
    return put_frame(ws, AX_WS_CLOSE, 0, payload, (size_t)n);
}

/* Fail the connection (RFC 6455 7.1.7): a close frame with `code`, then
 * the TCP close; on_close reports `code`. */
static void fail(ax_ws *ws, uint16_t code)
{
    if (ws->state == WS_CLOSED) return;
    if (!ws->code) ws->code = code;
    if (!ws->close_sent) send_close(ws, code, NULL, 0);
    conn_close(ws);
}

static bool can_send(const ax_ws *ws, int *rc)
{
    *rc = ws->state == WS_HANDSHAKE ? AX_EAGAIN : ws->state != WS_OPEN ? AX_ECLOSED : 0;
    return *rc == 0;
}

int ax_ws_send(ax_ws *ws, const void *data, size_t len, bool binary)
{
    int rc;
    if (!can_send(ws, &rc)) return rc;
    unsigned op = binary ? AX_WS_BINARY : AX_WS_TEXT;
    if (ws->z && len >= ws->o.deflate_min_size) {
        const uint8_t *out;
        size_t n;
        rc = ax__ws_compress(ws->z, data, len, &out, &n);
        if (rc < 0) return rc;
        return put_frame(ws, op, AX_WS_RSV1, out, n);
    }
    return put_frame(ws, op, 0, data, len);
}

int ax_ws_send_text(ax_ws *ws, const char *text, size_t len)
{
    return ax_ws_send(ws, text, len, false);
}

int ax_ws_send_binary(ax_ws *ws, const void *data, size_t len)
{
    return ax_ws_send(ws, data, len, true);
}

ax_slice *ax_ws_shared_new(const void *data, size_t len, bool binary)
{
    uint8_t hdr[AX_WS_MAX_HEADER];
    size_t h = ax_ws_encode_header(hdr, binary ? AX_WS_BINARY : AX_WS_TEXT, true, 0, len, NULL);
    if (!h) return NULL;
    ax_slice *s = ax_slice_new(h + len);
    if (!s) return NULL;
    memcpy(ax_slice_data(s), hdr, h);
    if (len) memcpy((uint8_t *)ax_slice_data(s) + h, data, len);
    return s;
}

int ax_ws_send_shared(ax_ws *ws, ax_slice *frame)
{
    int rc;
    if (!can_send(ws, &rc)) return rc;
    const uint8_t *f = ax_slice_data(frame);
    size_t total = ax_slice_len(frame), h = ax_ws_header_size(0, false);
    unsigned len7 = f[1] & 0x7f;
    h += len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (ws->role == AX_WS_CLIENT) return put_frame(ws, f[0] & 0x0f, 0, f + h, total - h);
    if ((rc = cap_check(ws, total)) < 0) return rc;
    if (batch.owner && batch.owner != ws) { /* inside another's on_data: cork */
        if (ws->npend == PEND_MAX && (rc = pend_flush(ws)) < 0) return rc;
        ws->pend[ws->npend++] = ax_slice_ref(frame);
        ws->pend_bytes += total;
        if (!ws->in_cork) {
            ws->in_cork = true;
            ws->cork_next = corked;
            corked = ws;
        }
        return above_high(ws);
    }
    if (batch.owner == ws && (rc = batch_flush()) < 0) return rc;
    rc = ax_conn_write_slice(ws->conn, frame, 0, total);
    return rc < 0 ? rc : above_high(ws);
}

int ax_ws_ping(ax_ws *ws, const void *data, size_t len)
{
    int rc;
    if (!can_send(ws, &rc)) return rc;
    if (len > AX_WS_MAX_CONTROL) return AX_EINVAL;
    return put_frame(ws, AX_WS_PING, 0, data, len);
}

int ax_ws_close(ax_ws *ws, int code, const char *reason)
{
    if (ws->state != WS_OPEN) return AX_ECLOSED;
    if (code && !ax_ws_close_code_valid((unsigned)code)) return AX_EINVAL;
    int rc = send_close(ws, (unsigned)code, reason ? reason : "", reason ? strlen(reason) : 0);
    if (rc < 0) return rc;
    ws->state = WS_CLOSE_SENT;
    if (!ws->timer) ws->timer = ax_timer_new(ax_conn_loop(ws->conn), ws_timer, ws);
    if (!ws->timer) {
        conn_close(ws); /* no way to time the handshake out: do not wait */
        return 0;
    }
    ax_timer_start(ws->timer, ws->o.close_timeout_ms, 0);
    return 0;
}

size_t ax_ws_buffered(const ax_ws *ws)
{
    if (!ws->conn) return 0;
    return ax_conn_queued(ws->conn) + (batch.owner == ws ? batch.len : 0) + ws->pend_bytes;
}

/* ---- timers ------------------------------------------------------------ */

static void ws_timer(ax_timer *t, void *ud)
{
    ax_ws *ws = ud;
    (void)t;
    if (ws->state == WS_CLOSE_SENT) {
        ax_conn_abort(ws->conn, AX_ETIMEDOUT); /* the peer never answered our close */
        return;
    }
    if (ws->state != WS_OPEN) return;
    if (ws->pinged && !ws->heard) {
        ax_conn_abort(ws->conn, AX_ETIMEDOUT);
        return;
    }
    ws->pinged = true;
    ws->heard = false;
    put_frame(ws, AX_WS_PING, 0, NULL, 0);
}

/* ---- input ------------------------------------------------------------- */

static void deliver(ax_ws *ws, const uint8_t *data, size_t len, unsigned op)
{
    /* After our close the peer may still finish what it was sending. */
    if ((ws->state == WS_OPEN || ws->state == WS_CLOSE_SENT) && ws->cbs->on_message)
        ws->cbs->on_message(ws, data, len, op == AX_WS_BINARY);
}

static int msg_append(ax_ws *ws, const uint8_t *data, size_t len)
{
    if (ws->msg_len + len > ws->msg_cap) {
        size_t cap = ws->msg_cap ? ws->msg_cap : 4096;
        while (cap < ws->msg_len + len)
            cap *= 2;
        uint8_t *m = ax_realloc(ws->msg, cap);
        if (!m) return AX_ENOMEM;
        ws->msg = m;
        ws->msg_cap = cap;
    }
    if (len) memcpy(ws->msg + ws->msg_len, data, len);
    ws->msg_len += len;
    return 0;
}

/* A compressed message is complete in msg[]: inflate, check, deliver. */
static int deliver_inflated(ax_ws *ws, unsigned op)
{
    const uint8_t *out;
    size_t n;
    int code = ax__ws_inflate(ws->z, ws->msg, ws->msg_len, ws->o.max_message, &out, &n);
    if (code) return code;
    if (op == AX_WS_TEXT && !ax_utf8_valid(out, n)) return AX_WS_CLOSE_INVALID_DATA;
    deliver(ws, out, n, op);
    return 0;
}

static int on_piece(ax_ws *ws, const ax_ws_event *ev)
{
    if (ev->message_end && ws->msg_len == 0 && !ev->compressed) {
        deliver(ws, ev->data, ev->len, ev->opcode);
        return 0;
    }
    if (msg_append(ws, ev->data, ev->len) < 0) return AX_WS_CLOSE_INTERNAL;
    if (!ev->message_end) return 0;
    int code = 0;
    if (ev->compressed)
        code = deliver_inflated(ws, ev->opcode);
    else
        deliver(ws, ws->msg, ws->msg_len, ev->opcode);
    ws->msg_len = 0;
    if (ws->msg_cap > KEEP_MSG_CAP) {
        ax_free(ws->msg);
        ws->msg = NULL;
        ws->msg_cap = 0;
    }
    return code;
}

/* The peer's close frame: answer it (unless we started), then close. */
static void on_peer_close(ax_ws *ws, const ax_ws_event *ev)
{
    ws->code = ev->code;
    ws->reason_len = (uint8_t)ev->len;
    if (ev->len) memcpy(ws->reason, ev->data, ev->len);
    if (!ws->close_sent)
        send_close(ws, ev->code == AX_WS_CLOSE_NO_STATUS ? 0 : ev->code, ws->reason, ev->len);
    conn_close(ws);
}

static void on_control(ax_ws *ws, const ax_ws_event *ev)
{
    switch (ev->opcode) {
    case AX_WS_PING:
        if (ws->state == WS_OPEN) put_frame(ws, AX_WS_PONG, 0, ev->data, ev->len);
        break;
    case AX_WS_PONG:
        ws->pinged = false;
        break;
    default:
        on_peer_close(ws, ev);
        break;
    }
}

static size_t ws_on_data(ax_conn *c, const char *data, size_t len)
{
    ax_ws *ws = ax_conn_data(c);
    /* The connection's input buffers are writable memory; the parser
     * unmasks in place. */
    uint8_t *buf = (uint8_t *)(uintptr_t)data;
    size_t off = 0;
    if (ws->state == WS_CLOSED || ws->state == WS_HANDSHAKE) return len;
    ws->heard = true;
    batch_flush();
    batch.owner = ws;
    while (off < len && ws->state != WS_CLOSED) {
        ax_ws_event ev;
        off += ax_ws_parse(&ws->p, buf + off, len - off, &ev);
        if (ev.type == AX_WS_EV_NEED_MORE) break;
        if (ev.type == AX_WS_EV_ERROR) {
            fail(ws, ev.code);
            break;
        }
        if (ev.type == AX_WS_EV_CONTROL) {
            on_control(ws, &ev);
            continue;
        }
        int code = on_piece(ws, &ev);
        if (code) fail(ws, (uint16_t)code);
    }
    if (batch.owner == ws) batch_flush();
    batch.owner = NULL;
    cork_flush();
    return len;
}

static void ws_on_open(ax_conn *c)
{
    ax_ws *ws = ax_conn_data(c);
    if (ws->state == WS_OPEN && ws->cbs->on_open) ws->cbs->on_open(ws);
}

static void ws_on_drain(ax_conn *c)
{
    ax_ws *ws = ax_conn_data(c);
    if (ws->state == WS_OPEN && ws->cbs->on_drain) ws->cbs->on_drain(ws);
}

static void ws_on_close(ax_conn *c, int reason)
{
    ax_ws *ws = ax_conn_data(c);
    (void)reason;
    ws->state = WS_CLOSED;
    if (ws->cbs->on_close)
        ws->cbs->on_close(ws, ws->code ? ws->code : AX_WS_CLOSE_ABNORMAL, ws->reason,
                          ws->reason_len);
    ax__ws_free(ws);
}

const ax_conn_cbs ax__ws_conn_cbs = {
    .on_open = ws_on_open, .on_data = ws_on_data, .on_drain = ws_on_drain, .on_close = ws_on_close};

/* ---- accessors --------------------------------------------------------- */

void ax_ws_set_data(ax_ws *ws, void *ud)
{
    ws->ud = ud;
}

void *ax_ws_data(const ax_ws *ws)
{
    return ws->ud;
}

ax_conn *ax_ws_conn(const ax_ws *ws)
{
    return ws->conn;
}

const char *ax_ws_path(const ax_ws *ws)
{
    return ws->info;
}

const char *ax_ws_origin(const ax_ws *ws)
{
    return ws->info + ws->origin_off;
}

const char *ax_ws_protocol(const ax_ws *ws)
{
    return ws->info + ws->proto_off;
}

bool ax_ws_deflate(const ax_ws *ws)
{
    return ws->pmd.on;
}
