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
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/rand.h>

#include <axon/alloc.h>
#include <axon/timer.h>
#include <axon/ws.h>

#include "core/buf.h"
#include "proto/ws/utf8.h"
#include "proto/ws/ws_internal.h"

#define BATCH_CAP (64 * 1024)
#define KEEP_MSG_CAP (64 * 1024) /* larger reassembly buffers are freed after use */
#define CAP_SLACK (4 * 1024)     /* room past output_cap for the close frame */
#define DEFAULT_MAX (16u << 20)  /* max_message by default */
/* Corked shared frames per recipient: a publisher's read of up to 32
 * messages reaches each subscriber in one writev (8 made two or more
 * sends of most reads: bench/RESULTS.md, sixth session, PEND_MAX). */
#define PEND_MAX 32

enum { WS_HANDSHAKE, WS_OPEN, WS_CLOSE_SENT, WS_CLOSED };

/* An idle open connection holds only this (34 bytes, then its path):
 * the input state (parser, reassembly, the peer's close reason) lives in
 * `side.rx` only while a frame or message is partly in, the options are
 * shared by every connection made with the same ones (an index in a
 * table), and shared frames corked for it during another connection's
 * on_data wait in a per-thread table. */
struct ax_ws {
    ax_conn *conn;
    void *ud;
    union {                 /* NULL: neither */
        struct ws_rx *rx;   /* no ext: the input state, NULL when idle between messages */
        struct ws_ext *ext; /* has_ext: what few connections need (the input state in it) */
    } side;
    uint32_t cork; /* 1 + its entry in the thread's cork table, 0: none */
    uint32_t ka;   /* 1 + its place in its loop's keepalive ring, 0: none */
    /* callbacks and options, interned: sh_slots[shi], or SH_OUT: side.ext->sh */
    uint8_t shi;
    uint8_t role : 1; /* enum ax_ws_role */
    uint8_t state : 2;
    bool close_sent : 1;
    bool pinged : 1;   /* keepalive: a ping is out */
    bool heard : 1;    /* keepalive: bytes came since that ping */
    bool info_ext : 1; /* info_in holds a pointer to an ax_malloc'd block */
    bool has_ext : 1;  /* side is ext */
    /* "path\0origin\0protocol\0", inside the object (a client's is
     * replaced later: then a pointer to it, room for one always kept) */
    char info_in[];
};
/* A server's at "/ws" with no origin and no protocol: 34 + 6 bytes, one
 * 48-byte malloc chunk (an idle connection's bytes: docs/scale.md). */
_Static_assert(offsetof(struct ax_ws, info_in) <= 34, "ax_ws grew: an idle connection's bytes");

/* What a connection has only with permessage-deflate, once closing, or
 * when the options' table was full. */
typedef struct ws_ext {
    ax__ws_deflate *z;
    ax_timer *timer;         /* the close handshake's timeout, made by ax_ws_close() */
    struct ws_rx *rx;        /* the input state (as side.rx without an ext) */
    const struct shared *sh; /* when shi is SH_OUT */
    uint16_t code;           /* the close code on_close reports (0: none yet) */
} ws_ext;

static struct ws_rx *rx_of(const ax_ws *ws)
{
    return ws->has_ext ? ws->side.ext->rx : ws->side.rx;
}

static void rx_set(ax_ws *ws, struct ws_rx *rx)
{
    if (ws->has_ext)
        ws->side.ext->rx = rx;
    else
        ws->side.rx = rx;
}

static ax__ws_deflate *zof(const ax_ws *ws)
{
    return ws->has_ext ? ws->side.ext->z : NULL;
}

/* The ext, made if absent (the input state moves into it); NULL when out
 * of memory. */
static ws_ext *ext_get(ax_ws *ws)
{
    if (ws->has_ext) return ws->side.ext;
    ws_ext *x = ax_calloc(1, sizeof(*x));
    if (!x) return NULL;
    x->rx = ws->side.rx;
    ws->side.ext = x;
    ws->has_ext = true;
    return x;
}

static uint16_t code_of(const ax_ws *ws)
{
    return ws->has_ext ? ws->side.ext->code : 0;
}

/* (out of memory: on_close reports 1006) */
static void code_set(ax_ws *ws, uint16_t code)
{
    if (ext_get(ws)) ws->side.ext->code = code;
}

/* What a connection needs while input is partly in. */
typedef struct ws_rx {
    ax_ws_parser p;
    ax__buf msg;        /* reassembly of a fragmented or split message */
    uint8_t reason_len; /* the peer's close frame: kept until on_close */
    char reason[AX_WS_MAX_CONTROL];
} ws_rx;

/* Shared frames corked for one recipient, oldest first. */
typedef struct cork_ent {
    ax_ws *ws; /* NULL: freed meanwhile */
    uint8_t n;
    size_t bytes;
    ax_slice *s[PEND_MAX];
} cork_ent;

typedef struct ws_batch {
    ax_ws *owner;
    size_t len;
    uint8_t buf[BATCH_CAP];
} ws_batch;

static _Thread_local ws_batch batch;

/* Recipients with corked shared frames, while some on_data runs, in the
 * order they were first corked: in cork_inline up to CORK_INLINE of them,
 * past that in an allocation freed when the on_data ends. */
#define CORK_INLINE 64
static _Thread_local cork_ent cork_inline[CORK_INLINE];
static _Thread_local struct {
    cork_ent *v;
    uint32_t n, cap;
} corks;

/* ---- shared options ------------------------------------------------------ */

/* The callbacks and options (defaults filled in) of connections made
 * with the same ones, held once. */
typedef struct shared {
    ax_ws_opts o;
    const ax_ws_cbs *cbs;
    size_t refs;
    struct shared *next;
    int slot; /* its place in sh_slots, -1: none (full) */
} shared;

static pthread_mutex_t opts_lock = PTHREAD_MUTEX_INITIALIZER;
static shared *opts_list;

/* A connection names its shared options by a byte: their place here
 * (written under opts_lock; a place is reused only once its last
 * connection is gone).  Past SH_OUT sets at once the pointer is in the
 * connection's ext. */
#define SH_OUT 255
static const shared *sh_slots[SH_OUT];

static const shared *sh_of(const ax_ws *ws)
{
    return ws->shi != SH_OUT ? sh_slots[ws->shi] : ws->side.ext->sh;
}

static bool opts_eq(const ax_ws_opts *a, const ax_ws_opts *b)
{
    return a->max_message == b->max_message && a->ping_interval_ms == b->ping_interval_ms &&
           a->close_timeout_ms == b->close_timeout_ms && a->high_watermark == b->high_watermark &&
           a->low_watermark == b->low_watermark && a->output_cap == b->output_cap &&
           a->cap_policy == b->cap_policy && a->protocols == b->protocols &&
           a->deflate == b->deflate &&
           a->deflate_no_context_takeover == b->deflate_no_context_takeover &&
           a->deflate_window_bits == b->deflate_window_bits &&
           a->deflate_level == b->deflate_level && a->deflate_min_size == b->deflate_min_size &&
           a->headers == b->headers && a->origin == b->origin && a->tls == b->tls;
}

/* The shared copy of `cbs` and `o` (defaults filled in), or NULL. */
static const shared *shared_get(const ax_ws_cbs *cbs, const ax_ws_opts *o)
{
    pthread_mutex_lock(&opts_lock);
    shared *n = opts_list;
    while (n && !(n->cbs == cbs && opts_eq(&n->o, o)))
        n = n->next;
    if (!n && (n = ax_calloc(1, sizeof(*n)))) {
        n->o = *o;
        n->cbs = cbs;
        n->next = opts_list;
        n->slot = -1;
        for (int i = 0; i < SH_OUT && n->slot < 0; i++)
            if (!sh_slots[i]) n->slot = i;
        if (n->slot >= 0) sh_slots[n->slot] = n;
        opts_list = n;
    }
    if (n) n->refs++;
    pthread_mutex_unlock(&opts_lock);
    return n;
}

static void shared_put(const shared *sh)
{
    if (!sh) return;
    pthread_mutex_lock(&opts_lock);
    for (shared **pp = &opts_list; *pp; pp = &(*pp)->next) {
        shared *n = *pp;
        if (n != sh) continue;
        if (--n->refs == 0) {
            *pp = n->next;
            if (n->slot >= 0) sh_slots[n->slot] = NULL;
            ax_free(n);
        }
        break;
    }
    pthread_mutex_unlock(&opts_lock);
}

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

/* ---- keepalive ------------------------------------------------------------ */

/* Connections of one loop with the same ping interval share one timer:
 * every interval it pings each of them, and drops the ones that have sent
 * nothing since the last ping.  (A timer per connection cost 64 bytes and
 * a heap slot each; a place in the ring costs 12.)  A ring lives on its
 * loop's thread and goes when its last connection does. */
typedef struct keepalive {
    ax_loop *loop;
    uint32_t interval_ms;
    uint32_t n, cap;
    ax_timer *t;
    ax_ws **v;
    struct keepalive *next;
} keepalive;

static _Thread_local keepalive *rings;

static void ws_ping(ax_ws *ws);

static void ka_sweep(ax_timer *t, void *ud)
{
    keepalive *k = ud;
    (void)t;
    for (uint32_t i = 0; i < k->n; i++) /* an abort's on_close comes later, not now */
        ws_ping(k->v[i]);
}

static keepalive *ka_find(ax_loop *loop, uint32_t interval_ms)
{
    keepalive *k = rings;
    while (k && !(k->loop == loop && k->interval_ms == interval_ms))
        k = k->next;
    return k;
}

static keepalive *ka_new(ax_loop *loop, uint32_t interval_ms)
{
    keepalive *k = ax_calloc(1, sizeof(*k));
    if (!k) return NULL;
    if (!(k->t = ax_timer_new(loop, ka_sweep, k))) {
        ax_free(k);
        return NULL;
    }
    k->loop = loop;
    k->interval_ms = interval_ms;
    k->next = rings;
    rings = k;
    ax_timer_start(k->t, interval_ms, interval_ms);
    return k;
}

static void ka_free(keepalive *k)
{
    for (keepalive **pp = &rings; *pp; pp = &(*pp)->next)
        if (*pp == k) {
            *pp = k->next;
            break;
        }
    ax_timer_free(k->t);
    ax_free(k->v);
    ax_free(k);
}

static int ka_join(ax_ws *ws, ax_loop *loop, uint32_t interval_ms)
{
    keepalive *k = ka_find(loop, interval_ms);
    bool made = !k;
    if (!k && !(k = ka_new(loop, interval_ms))) return AX_ENOMEM;
    if (k->n == k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 16;
        ax_ws **v = ax_realloc(k->v, cap * sizeof(*v));
        if (!v) {
            if (made) ka_free(k);
            return AX_ENOMEM;
        }
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n++] = ws;
    ws->ka = k->n;
    return 0;
}

static void ka_leave(ax_ws *ws)
{
    if (!ws->ka) return;
    keepalive *k = ka_find(ax_conn_loop(ws->conn), sh_of(ws)->o.ping_interval_ms);
    uint32_t i = ws->ka - 1;
    ws->ka = 0;
    k->v[i] = k->v[--k->n]; /* the last one takes its place */
    if (i < k->n) k->v[i]->ka = i + 1;
    if (!k->n) {
        ka_free(k);
    } else if (k->cap > 64 && k->n < k->cap / 4) {
        ax_ws **v = ax_realloc(k->v, (k->cap / 2) * sizeof(*v));
        if (v) k->v = v, k->cap /= 2;
    }
}

void ax_ws_each(ax_loop *loop, const ax_ws_cbs *cbs, void (*fn)(ax_ws *ws, void *ud), void *ud)
{
    for (keepalive *k = rings; k; k = k->next) {
        if (k->loop != loop) continue;
        /* from the end: one leaving puts the last (seen already) in its place */
        for (uint32_t i = k->n; i-- > 0;)
            if (i < k->n && sh_of(k->v[i])->cbs == cbs) fn(k->v[i], ud);
    }
}

/* ---- lifetime ---------------------------------------------------------- */

static const char *info_of(const ax_ws *ws)
{
    const char *p = ws->info_in;
    if (ws->info_ext) memcpy(&p, ws->info_in, sizeof p);
    return p;
}

/* Replace the info with an ax_malloc'd block (taken), NULL: empty. */
static void set_info(ax_ws *ws, char *info)
{
    if (ws->info_ext) ax_free((char *)info_of(ws));
    ws->info_ext = info != NULL;
    if (info)
        memcpy(ws->info_in, &info, sizeof info);
    else
        memset(ws->info_in, 0, 3);
}

static size_t info_len(const char *info)
{
    size_t a = strlen(info) + 1, b = strlen(info + a) + 1;
    return a + b + strlen(info + a + b) + 1;
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
    ax_ws_opts o = {0};
    if (opts) o = *opts;
    ax__ws_opts_defaults(&o);
    size_t il = info ? info_len(info) : 3;
    if (role == AX_WS_CLIENT && il < sizeof(char *)) il = sizeof(char *); /* set_info() */
    ax_ws *ws = ax_calloc(1, offsetof(ax_ws, info_in) + il);
    const shared *sh = ws ? shared_get(cbs, &o) : NULL;
    if (sh) ws->shi = sh->slot >= 0 ? (uint8_t)sh->slot : SH_OUT;
    if (sh && ws->shi == SH_OUT && ext_get(ws)) ws->side.ext->sh = sh;
    if (!ws || !sh || (ws->shi == SH_OUT && !ws->has_ext)) {
        shared_put(sh);
        ax_free(ws);
        ax_free(info);
        return NULL;
    }
    ws->role = (uint8_t)role;
    ws->ud = ud;
    ws->state = WS_HANDSHAKE;
    if (info) { /* kept inside the object: one allocation less */
        memcpy(ws->info_in, info, info_len(info));
        ax_free(info);
    }
    return ws;
}

void ax__ws_set_info(ax_ws *ws, char *info)
{
    set_info(ws, info);
}

const ax_ws_opts *ax__ws_opts(const ax_ws *ws)
{
    return &sh_of(ws)->o;
}

static cork_ent *cork_of(const ax_ws *ws)
{
    return ws->cork ? &corks.v[ws->cork - 1] : NULL;
}

/* Bytes corked for ws. */
static size_t pend_bytes(const ax_ws *ws)
{
    return ws->cork ? corks.v[ws->cork - 1].bytes : 0;
}

/* Forget ws's corked frames (it is being freed). */
static void cork_drop(ax_ws *ws)
{
    cork_ent *e = cork_of(ws);
    for (int i = 0; i < e->n; i++)
        ax_slice_unref(e->s[i]);
    e->n = 0;
    e->bytes = 0;
    e->ws = NULL;
    ws->cork = 0;
}

static void rx_free(ws_rx *rx)
{
    if (!rx) return;
    ax__buf_free(&rx->msg);
    ax_free(rx);
}

void ax__ws_free(ax_ws *ws)
{
    if (!ws) return;
    if (batch.owner == ws) batch.owner = NULL;
    if (ws->cork) cork_drop(ws);
    ka_leave(ws);
    const shared *sh = sh_of(ws);
    rx_free(rx_of(ws));
    if (ws->has_ext) {
        ax_timer_free(ws->side.ext->timer);
        ax__ws_deflate_free(ws->side.ext->z);
        ax_free(ws->side.ext);
    }
    set_info(ws, NULL);
    shared_put(sh);
    ax_free(ws);
}

void ax__ws_set_conn(ax_ws *ws, ax_conn *c)
{
    ws->conn = c;
}

void ax__ws_report_close(ax_ws *ws, int code)
{
    ws->state = WS_CLOSED;
    if (sh_of(ws)->cbs->on_close) sh_of(ws)->cbs->on_close(ws, code, "", 0);
    ax__ws_free(ws);
}

static void ws_timer(ax_timer *t, void *ud);

int ax__ws_open(ax_ws *ws, ax_conn *c, const ax__ws_pmd *pmd)
{
    ws->conn = c;
    if (pmd && pmd->on) {
        if (!ext_get(ws) ||
            !(ws->side.ext->z = ax__ws_deflate_new(pmd, sh_of(ws)->o.deflate_level)))
            return AX_ENOMEM;
    }
    int rc;
    if (sh_of(ws)->o.ping_interval_ms &&
        (rc = ka_join(ws, ax_conn_loop(c), sh_of(ws)->o.ping_interval_ms)) < 0)
        return rc;
    ax_conn_set_limits(c, sh_of(ws)->o.low_watermark, sh_of(ws)->o.high_watermark,
                       sh_of(ws)->o.output_cap + CAP_SLACK);
    ws->state = WS_OPEN;
    return 0;
}

/* The input state, made when bytes come: a parser at a frame boundary. */
static ws_rx *rx_get(ax_ws *ws)
{
    ws_rx *rx = ax_malloc(sizeof(*rx));
    if (!rx) return NULL;
    ax_ws_config cfg = {.role = (enum ax_ws_role)ws->role,
                        .max_message = sh_of(ws)->o.max_message,
                        .rsv_allowed = zof(ws) ? AX_WS_RSV1 : 0};
    ax_ws_parser_init(&rx->p, &cfg);
    rx->msg = (ax__buf){0};
    rx->reason_len = 0;
    return rx;
}

/* Between messages with nothing partly in: the input state goes. */
static void rx_release_idle(ax_ws *ws)
{
    ws_rx *rx = rx_of(ws);
    if (!rx || ws->state != WS_OPEN || !ax_ws_parser_idle(&rx->p) || rx->msg.len || rx->reason_len)
        return;
    rx_set(ws, NULL);
    rx_free(rx);
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
    return ax_conn_queued(ws->conn) > sh_of(ws)->o.high_watermark ? 1 : 0;
}

/* The corked shared frames of `ws`, in order: one gather write, and what
 * the socket does not take at once stays queued as references. */
static int pend_flush(ax_ws *ws)
{
    cork_ent *e = cork_of(ws);
    int n = e ? e->n : 0;
    if (!n) return 0;
    e->n = 0;
    e->bytes = 0;
    int rc = ax_conn_write_slices(ws->conn, e->s, n);
    for (int i = 0; i < n; i++)
        ax_slice_unref(e->s[i]);
    return rc;
}

/* End of an on_data: every recipient's corked frames go out. */
static void cork_flush(void)
{
    for (uint32_t i = 0; i < corks.n; i++) {
        ax_ws *ws = corks.v[i].ws;
        if (!ws) continue;
        pend_flush(ws);
        ws->cork = 0;
    }
    corks.n = 0;
    if (corks.v != cork_inline) ax_free(corks.v);
    corks.v = NULL;
    corks.cap = 0;
}

/* ws's entry in the cork table, made if it has none; NULL when out of memory. */
static cork_ent *cork_add(ax_ws *ws)
{
    if (ws->cork) return cork_of(ws);
    if (!corks.v) {
        corks.v = cork_inline;
        corks.cap = CORK_INLINE;
    }
    if (corks.n == corks.cap) {
        uint32_t cap = corks.cap * 2;
        bool first = corks.v == cork_inline;
        cork_ent *v = ax_realloc(first ? NULL : corks.v, cap * sizeof(*v));
        if (!v) return NULL;
        if (first) memcpy(v, cork_inline, sizeof cork_inline);
        corks.v = v;
        corks.cap = cap;
    }
    cork_ent *e = &corks.v[corks.n++];
    e->ws = ws;
    e->n = 0;
    e->bytes = 0;
    ws->cork = corks.n;
    return e;
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
    size_t q = ax_conn_queued(ws->conn) + (batch.owner == ws ? batch.len : 0) + pend_bytes(ws);
    if (q + total <= sh_of(ws)->o.output_cap) return 0;
    fail(ws,
         sh_of(ws)->o.cap_policy == AX_WS_CAP_INTERNAL ? AX_WS_CLOSE_INTERNAL : AX_WS_CLOSE_POLICY);
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
    if (pend_bytes(ws) && (rc = pend_flush(ws)) < 0) return rc; /* keep the order */
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
    if (!code_of(ws)) code_set(ws, code);
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
    ax__ws_deflate *z = zof(ws);
    if (z && len >= sh_of(ws)->o.deflate_min_size) {
        const uint8_t *out;
        size_t n;
        rc = ax__ws_compress(z, data, len, &out, &n);
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
    cork_ent *e;
    if (batch.owner && batch.owner != ws && (e = cork_add(ws))) { /* another's on_data: cork */
        if (e->n == PEND_MAX && (rc = pend_flush(ws)) < 0) return rc;
        e->s[e->n++] = ax_slice_ref(frame);
        e->bytes += total;
        return above_high(ws);
    }
    if (batch.owner == ws && (rc = batch_flush()) < 0) return rc;
    rc = ax_conn_write_slice(ws->conn, frame, 0, total);
    return rc < 0 ? rc : above_high(ws);
}

/* The owner of the thread's batch while ax_ws_cork() is in effect: no
 * connection, so every shared frame is corked. */
static ax_ws cork_owner;

void ax_ws_cork(void)
{
    if (!batch.owner) batch.owner = &cork_owner;
}

void ax_ws_uncork(void)
{
    if (batch.owner != &cork_owner) return;
    batch.owner = NULL;
    cork_flush();
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
    ws_ext *x = ext_get(ws);
    if (x && !x->timer) x->timer = ax_timer_new(ax_conn_loop(ws->conn), ws_timer, ws);
    if (!x || !x->timer) {
        conn_close(ws); /* no way to time the handshake out: do not wait */
        return 0;
    }
    ax_timer_start(x->timer, sh_of(ws)->o.close_timeout_ms, 0);
    return 0;
}

size_t ax_ws_buffered(const ax_ws *ws)
{
    if (!ws->conn) return 0;
    return ax_conn_queued(ws->conn) + (batch.owner == ws ? batch.len : 0) + pend_bytes(ws);
}

/* ---- timers ------------------------------------------------------------ */

/* The close handshake's timeout. */
static void ws_timer(ax_timer *t, void *ud)
{
    ax_ws *ws = ud;
    (void)t;
    if (ws->state == WS_CLOSE_SENT)
        ax_conn_abort(ws->conn, AX_ETIMEDOUT); /* the peer never answered our close */
}

/* A keepalive round: ping, or drop a peer silent since the last ping. */
static void ws_ping(ax_ws *ws)
{
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
    if ((ws->state == WS_OPEN || ws->state == WS_CLOSE_SENT) && sh_of(ws)->cbs->on_message)
        sh_of(ws)->cbs->on_message(ws, data, len, op == AX_WS_BINARY);
}

/* A compressed message is complete in msg[]: inflate, check, deliver. */
static int deliver_inflated(ax_ws *ws, unsigned op)
{
    const uint8_t *out;
    size_t n;
    int code = ax__ws_inflate(zof(ws), (const uint8_t *)rx_of(ws)->msg.p, rx_of(ws)->msg.len,
                              sh_of(ws)->o.max_message, &out, &n);
    if (code) return code;
    if (op == AX_WS_TEXT && !ax_utf8_valid(out, n)) return AX_WS_CLOSE_INVALID_DATA;
    deliver(ws, out, n, op);
    return 0;
}

static int on_piece(ax_ws *ws, const ax_ws_event *ev)
{
    ws_rx *rx = rx_of(ws);
    if (ev->message_end && rx->msg.len == 0 && !ev->compressed) {
        deliver(ws, ev->data, ev->len, ev->opcode);
        return 0;
    }
    if (ax__buf_append(&rx->msg, ev->data, ev->len) < 0) return AX_WS_CLOSE_INTERNAL;
    if (!ev->message_end) return 0;
    int code = 0;
    if (ev->compressed)
        code = deliver_inflated(ws, ev->opcode);
    else
        deliver(ws, (const uint8_t *)rx->msg.p, rx->msg.len, ev->opcode);
    if (rx_of(ws) != rx) return code; /* cannot happen: rx lives until ax__ws_free */
    ax__buf_reset(&rx->msg, KEEP_MSG_CAP);
    return code;
}

/* The peer's close frame: answer it (unless we started), then close. */
static void on_peer_close(ax_ws *ws, const ax_ws_event *ev)
{
    code_set(ws, ev->code);
    rx_of(ws)->reason_len = (uint8_t)ev->len;
    if (ev->len) memcpy(rx_of(ws)->reason, ev->data, ev->len);
    if (!ws->close_sent)
        send_close(ws, ev->code == AX_WS_CLOSE_NO_STATUS ? 0 : ev->code, rx_of(ws)->reason,
                   ev->len);
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
    if (!rx_of(ws)) {
        ws_rx *rx = rx_get(ws);
        if (!rx) {
            fail(ws, AX_WS_CLOSE_INTERNAL);
            return len;
        }
        rx_set(ws, rx);
    }
    batch_flush();
    batch.owner = ws;
    while (off < len && ws->state != WS_CLOSED) {
        ax_ws_event ev;
        off += ax_ws_parse(&rx_of(ws)->p, buf + off, len - off, &ev);
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
    rx_release_idle(ws);
    return len;
}

static void ws_on_open(ax_conn *c)
{
    ax_ws *ws = ax_conn_data(c);
    if (ws->state == WS_OPEN && sh_of(ws)->cbs->on_open) sh_of(ws)->cbs->on_open(ws);
}

static void ws_on_drain(ax_conn *c)
{
    ax_ws *ws = ax_conn_data(c);
    if (ws->state == WS_OPEN && sh_of(ws)->cbs->on_drain) sh_of(ws)->cbs->on_drain(ws);
}

static void ws_on_close(ax_conn *c, int reason)
{
    ax_ws *ws = ax_conn_data(c);
    (void)reason;
    ws->state = WS_CLOSED;
    if (sh_of(ws)->cbs->on_close)
        sh_of(ws)->cbs->on_close(ws, code_of(ws) ? code_of(ws) : AX_WS_CLOSE_ABNORMAL,
                                 rx_of(ws) ? rx_of(ws)->reason : "",
                                 rx_of(ws) ? rx_of(ws)->reason_len : 0);
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
    return info_of(ws);
}

const char *ax_ws_origin(const ax_ws *ws)
{
    const char *path = info_of(ws);
    return path + strlen(path) + 1;
}

const char *ax_ws_protocol(const ax_ws *ws)
{
    const char *origin = ax_ws_origin(ws);
    return origin + strlen(origin) + 1;
}

bool ax_ws_deflate(const ax_ws *ws)
{
    return zof(ws) != NULL;
}
