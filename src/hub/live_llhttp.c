/* live_llhttp.c: Low-Latency HLS over HTTP: playlists, parts, and the
 * requests held until what they ask for exists (live_llhttp.h says how). */
#include "live_llhttp.h"

#include <stdio.h>
#include <string.h>

#include <axon/alloc.h>

#include "live.h"

#define PLAYLIST_CAP (64u * 1024)

typedef struct held held;

/* A blocking request: a playlist reload (msn, part) or a part (k). */
struct held {
    held *prev, *next;
    live_llh *h;
    ax_http_req *r;
    char name[LIVE_NAME_MAX + 1];
    bool is_part, has_part, fresh;
    uint64_t msn, part, k;
    uint64_t deadline;
};

struct live_llh {
    serve *sv;
    ax_timer *tick;
    held *held;
    size_t nheld;
    uint64_t seen; /* live_ll_changes() at the last look */
};

enum { WAIT = 0, READY = 1, BAD = 2, GONE = 3, LATE = 4 };

/* ---- answers -------------------------------------------------------------------------- */

static void send_slices(live_llh *h, ax_http_req *r, ax_slice **s, size_t n, const char *cc)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += ax_slice_len(s[i]);
    ax_http_add_header(r, "Content-Type", "video/mp4");
    ax_http_add_header(r, "Cache-Control", cc);
    ax_http_add_header(r, "Access-Control-Allow-Origin", "*");
    ax_http_start(r, 200, (int64_t)total);
    for (size_t i = 0; i < n; i++) {
        ax_http_write_slice(r, s[i], 0, ax_slice_len(s[i]));
        ax_slice_unref(s[i]);
    }
    ax_http_end(r);
    GW_ADD(h->sv->gw[GW_LIVE].bytes_out, total);
}

static void send_playlist(ax_http_req *r, const char *name)
{
    char *b = ax_malloc(PLAYLIST_CAP);
    int n = b ? live_ll_playlist(name, b, PLAYLIST_CAP) : AX_ENOMEM;
    if (n < 0) {
        serve_http_error(r, n == AX_ENOENT ? 404 : 503,
                         n == AX_ENOENT ? "no such live stream, or no segment yet" : "no memory");
    } else {
        ax_http_add_header(r, "Cache-Control", "no-cache");
        ax_http_add_header(r, "Access-Control-Allow-Origin", "*");
        ax_http_respond(r, 200, "application/vnd.apple.mpegurl", b, (size_t)n);
    }
    ax_free(b);
}

static void send_part(live_llh *h, ax_http_req *r, const char *name, uint64_t k)
{
    ax_slice *s = live_ll_part(name, k);
    if (s)
        send_slices(h, r, &s, 1, "max-age=60");
    else
        serve_http_error(r, 404, "no such part");
}

/* ---- what a request waits for --------------------------------------------------------- */

/* A playlist request for (msn, part): in the playlist now, not yet, or
 * too far ahead (RFC 8216bis 6.2.5.2: 2 segments, 3 parts). */
static int playlist_state(const live_ll_pos *p, uint64_t msn, bool has_part, uint64_t part)
{
    int64_t last = p->open_parts ? (int64_t)p->open_msn : p->last_msn;
    if ((int64_t)msn > last + 2) return BAD;
    if (has_part && msn == p->open_msn && part > (uint64_t)p->open_parts + 2) return BAD;
    if (p->last_msn >= 0 && (int64_t)msn < p->last_msn) return READY;
    if (!has_part) return p->last_msn >= 0 && (int64_t)msn <= p->last_msn ? READY : WAIT;
    if (msn == p->open_msn) return part < p->open_parts ? READY : WAIT;
    if (p->last_msn >= 0 && (int64_t)msn == p->last_msn) /* or a later part */
        return part < p->last_parts || p->open_parts ? READY : WAIT;
    return WAIT;
}

/* A part request: kept, the next few (held), or no such part. */
static int part_state(const live_ll_pos *p, uint64_t k)
{
    if (k < p->oldest_part) return GONE;
    if (k < p->next_part) return READY;
    return k - p->next_part < 3 ? WAIT : GONE;
}

static int state_of(const held *x, live_ll_pos *p)
{
    if (live_ll_pos_of(x->name, p) != 0) return GONE;
    return x->is_part ? part_state(p, x->k) : playlist_state(p, x->msn, x->has_part, x->part);
}

/* Answer x for its state (not WAIT). */
static void answer(live_llh *h, held *x, int st)
{
    if (st == READY && x->is_part)
        send_part(h, x->r, x->name, x->k);
    else if (st == READY)
        send_playlist(x->r, x->name);
    else if (st == BAD)
        serve_http_error(x->r, 400, "_HLS_msn/_HLS_part too far ahead of the playlist");
    else if (st == GONE)
        serve_http_error(x->r, 404, x->is_part ? "no such part" : "no such live stream");
    else
        serve_http_error(x->r, 503, "not there within 3 target durations");
}

/* ---- held requests -------------------------------------------------------------------- */

static void unlink_held(held *x)
{
    live_llh *h = x->h;
    if (x->prev)
        x->prev->next = x->next;
    else
        h->held = x->next;
    if (x->next) x->next->prev = x->prev;
    h->nheld--;
    GW_SUB(h->sv->gw[GW_LIVE].conns, 1);
}

static void held_abort(ax_http_req *r, void *ud)
{
    (void)r;
    unlink_held(ud);
    ax_free(ud);
}

/* Answer and free x (st: its state, or LATE). */
static void release(held *x, int st)
{
    ax_http_on_abort(x->r, NULL, NULL);
    unlink_held(x);
    answer(x->h, x, st);
    ax_free(x);
}

static void tick(ax_timer *t, void *ud)
{
    live_llh *h = ud;
    uint64_t now = ax_loop_now(h->sv->loop), ch = live_ll_changes();
    bool look = ch != h->seen;
    h->seen = ch;
    for (held *x = h->held, *next; x; x = next) {
        next = x->next;
        if (x->fresh) { /* past its handler: read, so that a close is seen */
            x->fresh = false;
            ax_conn_resume(ax_http_req_conn(x->r));
        } else if (!look && now < x->deadline) {
            continue;
        }
        live_ll_pos p;
        int st = state_of(x, &p);
        if (st != WAIT)
            release(x, st);
        else if (now >= x->deadline)
            release(x, LATE);
    }
    if (!h->held) ax_timer_stop(t);
}

/* Answer r now, or hold it until its state changes. */
static void serve_or_hold(live_llh *h, held *x)
{
    live_ll_pos p;
    int st = state_of(x, &p);
    if (st != WAIT) {
        answer(h, x, st);
        ax_free(x);
        return;
    }
    if (h->nheld >= LIVE_LLH_HELD_MAX) {
        serve_http_error(x->r, 503, "too many blocking requests");
        ax_free(x);
        return;
    }
    x->h = h;
    x->fresh = true;
    x->deadline = ax_loop_now(h->sv->loop) + 3 * (uint64_t)p.target_ms;
    x->next = h->held;
    if (h->held) h->held->prev = x;
    h->held = x;
    h->nheld++;
    GW_ADD(h->sv->gw[GW_LIVE].conns, 1); /* axon_connections{gateway="live"} */
    ax_http_on_abort(x->r, held_abort, x);
    if (h->nheld == 1) ax_timer_start(h->tick, LIVE_LLH_TICK_MS, LIVE_LLH_TICK_MS);
}

/* ---- requests ------------------------------------------------------------------------- */

/* The value of `key` in the query as a decimal number: 1, 0 when it is
 * not there, -1 when it is not a number. */
static int query_u64(const char *q, size_t len, const char *key, uint64_t *out)
{
    size_t k = strlen(key);
    for (size_t i = 0; i < len;) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - q) : len;
        if (end - i > k && memcmp(q + i, key, k) == 0 && q[i + k] == '=') {
            uint64_t v = 0;
            if (end == i + k + 1) return -1;
            for (size_t j = i + k + 1; j < end; j++) {
                if (q[j] < '0' || q[j] > '9' || v > UINT64_MAX / 10 - 10) return -1;
                v = v * 10 + (uint64_t)(q[j] - '0');
            }
            *out = v;
            return 1;
        }
        i = end + 1;
    }
    return 0;
}

/* "PREFIX<number>SUFFIX" into *n. */
static bool numbered(const char *s, size_t len, const char *prefix, const char *suffix, uint64_t *n)
{
    size_t a = strlen(prefix), b = strlen(suffix);
    if (len <= a + b || memcmp(s, prefix, a) != 0 || memcmp(s + len - b, suffix, b) != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = a; i < len - b; i++) {
        if (s[i] < '0' || s[i] > '9' || v > UINT64_MAX / 10 - 10) return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *n = v;
    return true;
}

bool live_llh_is(const char *rest, size_t len)
{
    uint64_t n;
    return (len == 7 && memcmp(rest, "ll.m3u8", 7) == 0) ||
           (len == 8 && memcmp(rest, "init.mp4", 8) == 0) ||
           numbered(rest, len, "ll-", ".m4s", &n) || numbered(rest, len, "p-", ".m4s", &n);
}

static void get_playlist(live_llh *h, ax_http_req *r, held *x)
{
    size_t qlen;
    const char *q = ax_http_req_query(r, &qlen);
    int m = query_u64(q, qlen, "_HLS_msn", &x->msn);
    int p = query_u64(q, qlen, "_HLS_part", &x->part);
    if (m < 0 || p < 0 || (p > 0 && m == 0)) {
        ax_free(x);
        serve_http_error(r, 400, "_HLS_msn and _HLS_part are numbers; _HLS_part needs _HLS_msn");
        return;
    }
    if (m == 0) { /* not a blocking reload */
        send_playlist(r, x->name);
        ax_free(x);
        return;
    }
    x->has_part = p > 0;
    serve_or_hold(h, x);
}

static void get_segment(live_llh *h, ax_http_req *r, const char *name, uint64_t msn)
{
    ax_slice *parts[LIVE_LL_SEG_PARTS];
    size_t n = live_ll_segment(name, msn, parts, LIVE_LL_SEG_PARTS);
    if (n)
        send_slices(h, r, parts, n, "max-age=60");
    else
        serve_http_error(r, 404, "no such segment");
}

void live_llh_get(live_llh *h, ax_http_req *r, const char *name, const char *rest, size_t len)
{
    uint64_t n;
    if (numbered(rest, len, "ll-", ".m4s", &n)) {
        get_segment(h, r, name, n);
        return;
    }
    if (len == 8 && memcmp(rest, "init.mp4", 8) == 0) {
        ax_slice *s = live_ll_init(name);
        if (s)
            send_slices(h, r, &s, 1, "no-cache");
        else
            serve_http_error(r, 404, "no such live stream, or no media yet");
        return;
    }
    held *x = ax_calloc(1, sizeof(*x));
    if (!x) {
        serve_http_error(r, 503, "out of memory");
        return;
    }
    x->r = r;
    snprintf(x->name, sizeof x->name, "%s", name);
    if (numbered(rest, len, "p-", ".m4s", &x->k)) {
        x->is_part = true;
        serve_or_hold(h, x);
    } else {
        get_playlist(h, r, x);
    }
}

size_t live_llh_held(const live_llh *h)
{
    return h->nheld;
}

live_llh *live_llh_new(serve *sv)
{
    live_llh *h = ax_calloc(1, sizeof(*h));
    if (!h) return NULL;
    h->sv = sv;
    if (!(h->tick = ax_timer_new(sv->loop, tick, h))) {
        ax_free(h);
        return NULL;
    }
    return h;
}

void live_llh_stop(live_llh *h)
{
    while (h && h->held)
        release(h->held, LATE);
}

void live_llh_free(live_llh *h)
{
    if (!h) return;
    while (h->held) { /* the server goes after us: no callback of its may come */
        held *x = h->held;
        ax_http_on_abort(x->r, NULL, NULL);
        unlink_held(x);
        ax_free(x);
    }
    ax_timer_free(h->tick);
    ax_free(h);
}
