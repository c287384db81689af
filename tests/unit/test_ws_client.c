/* test_ws_client.c: the WebSocket client against our own server (text,
 * binary, subprotocols, permessage-deflate, close), the client's side of
 * RFC 6455 against a raw-socket server (masking, bad accept values, masked
 * server frames), and RFC 7692: parameter negotiation, inflate limits,
 * RSV1 rules. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <axon/axon.h>
#include <axon/http.h>
#include <axon/ws.h>

#include "proto/ws/ws_frame.h"
#include "proto/ws/ws_internal.h"
#include "runner.h"
#include "testutil.h"
#include "ws_testutil.h"

typedef struct cstate {
    int opened, closed, code, messages;
    bool deflated;
    char proto[32], reason[64];
    unsigned char last[1 << 17];
    size_t last_len;
    bool last_binary;
} cstate;

static void c_open(ax_ws *ws)
{
    cstate *s = ax_ws_data(ws);
    s->opened++;
    s->deflated = ax_ws_deflate(ws);
    snprintf(s->proto, sizeof s->proto, "%s", ax_ws_protocol(ws));
}

static void c_message(ax_ws *ws, const void *d, size_t n, bool binary)
{
    cstate *s = ax_ws_data(ws);
    s->messages++;
    ASSERT(n <= sizeof s->last);
    memcpy(s->last, d, n);
    s->last_len = n;
    s->last_binary = binary;
}

static void c_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    cstate *s = ax_ws_data(ws);
    s->closed++;
    s->code = code;
    snprintf(s->reason, sizeof s->reason, "%.*s", (int)len, reason);
}

static const ax_ws_cbs c_cbs = {.on_open = c_open, .on_message = c_message, .on_close = c_close};

/* The server side: echo, with deflate and subprotocols on offer. */
static void s_message(ax_ws *ws, const void *d, size_t n, bool binary)
{
    int rc = ax_ws_send(ws, d, n, binary);
    (void)rc; /* a closing connection drops the echo */
}

static const ax_ws_cbs s_cbs = {.on_message = s_message};
static const char *const s_protos[] = {"mqtt", "chat", NULL};
static const ax_ws_opts s_opts = {.deflate = true, .protocols = s_protos};
static const ax_ws_endpoint s_ep = {.cbs = &s_cbs, .opts = &s_opts};
static const ax_ws_opts s_small_opts = {.deflate = true, .max_message = 4096};
static const ax_ws_endpoint s_small = {.cbs = &s_cbs, .opts = &s_small_opts};

typedef struct server {
    ax_http_server *srv;
    ax_listener *l;
    char url[128];
} server;

static void server_start(server *s, ax_loop *loop)
{
    int err;
    s->srv = ax_http_server_new(loop, NULL, &err);
    ASSERT(s->srv != NULL);
    ASSERT_EQ(ax_ws_route(s->srv, "/", &s_ep), 0);
    ASSERT_EQ(ax_ws_route(s->srv, "/small", &s_small), 0);
    s->l = ax_http_listen(s->srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(s->l != NULL);
    snprintf(s->url, sizeof s->url, "ws://127.0.0.1:%d", ax_addr_port(ax_listener_addr(s->l)));
}

static void roundtrip(ax_loop *loop, ax_ws *ws, cstate *st, const void *d, size_t n, bool bin)
{
    int before = st->messages;
    ASSERT(ax_ws_send(ws, d, n, bin) >= 0);
    RUN_UNTIL(loop, st->messages == before + 1, 5000);
    ASSERT_EQ(st->last_len, n);
    ASSERT(memcmp(st->last, d, n) == 0);
    ASSERT_EQ(st->last_binary, bin);
}

static void client_session(bool deflate, bool no_context)
{
    ax_loop *loop = tu_loop();
    server s;
    cstate st = {0};
    int err;
    char url[160];
    server_start(&s, loop);
    snprintf(url, sizeof url, "%s/client/x?q=1", s.url);
    static const char *const protos[] = {"chat", "mqtt", NULL};
    ax_ws_opts o = {.deflate = deflate,
                    .deflate_no_context_takeover = no_context,
                    .protocols = protos,
                    .origin = "http://unit.test"};
    ax_ws *ws = ax_ws_connect(loop, url, &c_cbs, &o, &st, &err);
    ASSERT(ws != NULL);
    ASSERT_EQ(ax_ws_send_text(ws, "early", 5), AX_EAGAIN);
    RUN_UNTIL(loop, st.opened == 1, 5000);
    ASSERT_STREQ(st.proto, "mqtt"); /* the server's preference */
    ASSERT_STREQ(ax_ws_path(ws), "/client/x");
    ASSERT_EQ(st.deflated, deflate);
    static unsigned char big[100000];
    for (int round = 0; round < 3; round++) {
        roundtrip(loop, ws, &st, "hello", 5, false);
        roundtrip(loop, ws, &st, "", 0, true);
        memset(big, 'a' + round, sizeof big);
        roundtrip(loop, ws, &st, big, sizeof big, true);
        tu_fill_pattern(big, 70000, (uint64_t)round);
        roundtrip(loop, ws, &st, big, 70000, true);
    }
    ASSERT_EQ(ax_ws_close(ws, 4005, "done"), 0);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.code, 4005);
    ASSERT_STREQ(st.reason, "done");
    ax_http_server_free(s.srv);
    ax_loop_free(loop);
}

TEST(ws_client_session_plain)
{
    client_session(false, false);
}

TEST(ws_client_session_deflate)
{
    client_session(true, false);
}

TEST(ws_client_session_deflate_no_context)
{
    client_session(true, true);
}

TEST(ws_client_connect_refused)
{
    ax_loop *loop = tu_loop();
    cstate st = {0};
    int err = 0;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", tu_closed_port());
    ax_ws *ws = ax_ws_connect(loop, url, &c_cbs, NULL, &st, &err);
    ASSERT(ws != NULL);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.opened, 0);
    ASSERT_EQ(st.code, 1006);
    ASSERT(ax_ws_connect(loop, "http://x/", &c_cbs, NULL, &st, &err) == NULL);
    ASSERT_EQ(err, AX_ESCHEME);
    ax_loop_free(loop);
}

/* ---- the client against a raw server ------------------------------------ */

typedef struct raw_server {
    int lfd, fd;
    ax_addr addr;
    char key[64];
} raw_server;

static void raw_listen(raw_server *r, char *url, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    r->lfd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(r->lfd >= 0);
    ASSERT(bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
    ASSERT(listen(r->lfd, 4) == 0);
    ASSERT(getsockname(r->lfd, (struct sockaddr *)&sa, &sl) == 0);
    snprintf(url, cap, "ws://127.0.0.1:%d/raw", ntohs(sa.sin_port));
}

/* Accept the client and read its request; keep its key. */
static void raw_accept(raw_server *r, ax_loop *loop)
{
    char head[4096] = {0};
    size_t got = 0;
    RUN_UNTIL(loop, tu_readable(r->lfd, 0), 5000);
    r->fd = accept(r->lfd, NULL, NULL);
    ASSERT(r->fd >= 0);
    while (!strstr(head, "\r\n\r\n")) {
        ASSERT(tu_loop_read_n(loop, r->fd, head + got, 1, 5000) == 1);
        got++;
    }
    ASSERT(strstr(head, "GET /raw HTTP/1.1\r\n") == head);
    ASSERT(strstr(head, "Sec-WebSocket-Version: 13\r\n") != NULL);
    const char *k = strstr(head, "Sec-WebSocket-Key: ");
    ASSERT(k != NULL);
    k += 19;
    size_t kl = strcspn(k, "\r");
    ASSERT(kl < sizeof r->key);
    memcpy(r->key, k, kl);
    r->key[kl] = 0;
}

static void raw_respond(raw_server *r, bool good_accept)
{
    char accept[AX_WS_ACCEPT_LEN + 1], resp[512];
    ASSERT_EQ(ax_ws_accept(accept, r->key, strlen(r->key)), 0);
    if (!good_accept) accept[3] ^= 1;
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    tu_write_all(r->fd, resp, (size_t)n);
}

static void raw_close(raw_server *r)
{
    close(r->fd);
    close(r->lfd);
}

TEST(ws_client_rejects_bad_accept)
{
    ax_loop *loop = tu_loop();
    raw_server r;
    cstate st = {0};
    char url[64];
    int err;
    raw_listen(&r, url, sizeof url);
    ASSERT(ax_ws_connect(loop, url, &c_cbs, NULL, &st, &err) != NULL);
    raw_accept(&r, loop);
    raw_respond(&r, false);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.opened, 0);
    ASSERT_EQ(st.code, 1006);
    raw_close(&r);
    ax_loop_free(loop);
}

TEST(ws_client_masks_with_fresh_keys)
{
    ax_loop *loop = tu_loop();
    raw_server r;
    cstate st = {0};
    char url[64];
    int err;
    static wt_frame f;
    raw_listen(&r, url, sizeof url);
    ax_ws *ws = ax_ws_connect(loop, url, &c_cbs, NULL, &st, &err);
    raw_accept(&r, loop);
    raw_respond(&r, true);
    /* a frame right behind the response, in the same write */
    unsigned char fr[16];
    size_t fl = wt_encode(fr, AX_WS_TEXT, true, 0, "hi", 2, false);
    tu_write_all(r.fd, fr, fl);
    RUN_UNTIL(loop, st.messages == 1, 5000);
    ASSERT_EQ(st.last_len, 2);
    unsigned char keys[8][4];
    for (int i = 0; i < 8; i++) {
        ASSERT_EQ(ax_ws_send_text(ws, "same text", 9), 0);
        unsigned char h[6];
        ASSERT_EQ(tu_loop_read_n(loop, r.fd, h, 6, 3000), 6);
        ASSERT_EQ(h[0], 0x81);
        ASSERT_EQ(h[1], 0x80 | 9); /* 5.3: every client frame is masked */
        memcpy(keys[i], h + 2, 4);
        unsigned char p[9];
        ASSERT_EQ(tu_loop_read_n(loop, r.fd, p, 9, 3000), 9);
        ax_ws_mask(p, 9, keys[i], 0);
        ASSERT(memcmp(p, "same text", 9) == 0);
    }
    int distinct = 0;
    for (int i = 1; i < 8; i++)
        distinct += memcmp(keys[i], keys[i - 1], 4) != 0;
    ASSERT(distinct >= 6);
    /* a masked frame from the server fails the connection with 1002 */
    fl = wt_encode(fr, AX_WS_TEXT, true, 0, "no", 2, true);
    tu_write_all(r.fd, fr, fl);
    wt_read(loop, r.fd, &f, 3000);
    ASSERT_EQ(f.op, AX_WS_CLOSE);
    ASSERT(f.masked);
    ASSERT_EQ(f.data[0] << 8 | f.data[1], 1002);
    raw_close(&r);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.code, 1002);
    ax_loop_free(loop);
}

/* A connected client and its raw server. */
static ax_ws *raw_pair(ax_loop *loop, raw_server *r, cstate *st)
{
    char url[64];
    int err;
    raw_listen(r, url, sizeof url);
    ax_ws *ws = ax_ws_connect(loop, url, &c_cbs, NULL, st, &err);
    ASSERT(ws != NULL);
    raw_accept(r, loop);
    raw_respond(r, true);
    RUN_UNTIL(loop, st->opened == 1, 5000);
    return ws;
}

static void raw_send(raw_server *r, int op, bool fin, const void *d, size_t n)
{
    wt_send_ex(r->fd, op, fin, 0, d, n, false); /* servers do not mask */
}

TEST(ws_client_conf_fragments_ping_close)
{
    ax_loop *loop = tu_loop();
    raw_server r;
    cstate st = {0};
    static wt_frame f;
    raw_pair(loop, &r, &st);
    raw_send(&r, AX_WS_TEXT, false, "par", 3);
    raw_send(&r, AX_WS_PING, true, "pp", 2);
    raw_send(&r, AX_WS_CONT, true, "ts \xc3\xa9", 5);
    wt_read(loop, r.fd, &f, 3000); /* the pong, masked, same payload */
    ASSERT_EQ(f.op, AX_WS_PONG);
    ASSERT(f.masked);
    ASSERT_EQ(f.len, 2);
    ASSERT(memcmp(f.data, "pp", 2) == 0);
    RUN_UNTIL(loop, st.messages == 1, 3000);
    ASSERT_EQ(st.last_len, 8);
    ASSERT(memcmp(st.last, "parts \xc3\xa9", 8) == 0);
    raw_send(&r, AX_WS_CLOSE, true, "\x03\xe9going", 7); /* 1001 */
    wt_read(loop, r.fd, &f, 3000);
    ASSERT_EQ(f.op, AX_WS_CLOSE);
    ASSERT(f.masked);
    ASSERT_EQ(f.data[0] << 8 | f.data[1], 1001);
    raw_close(&r);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.code, 1001);
    ASSERT_STREQ(st.reason, "going");
    ax_loop_free(loop);
}

TEST(ws_client_conf_invalid_utf8_and_limits)
{
    ax_loop *loop = tu_loop();
    raw_server r;
    cstate st = {0};
    static wt_frame f;
    raw_pair(loop, &r, &st);
    raw_send(&r, AX_WS_TEXT, true, "bad \xc0\xaf", 6);
    wt_read(loop, r.fd, &f, 3000);
    ASSERT_EQ(f.op, AX_WS_CLOSE);
    ASSERT_EQ(f.data[0] << 8 | f.data[1], 1007);
    raw_close(&r);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.code, 1007);
    ASSERT_EQ(st.messages, 0);
    /* RSV1 without a negotiated extension */
    memset(&st, 0, sizeof st);
    raw_pair(loop, &r, &st);
    wt_send_ex(r.fd, AX_WS_TEXT, true, 0x40, "x", 1, false);
    wt_read(loop, r.fd, &f, 3000);
    ASSERT_EQ(f.op, AX_WS_CLOSE);
    ASSERT_EQ(f.data[0] << 8 | f.data[1], 1002);
    raw_close(&r);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ax_loop_free(loop);
}

/* ---- RFC 7692 ------------------------------------------------------------- */

static size_t accept_offer(const char *offer, char *out, ax__ws_pmd *pmd)
{
    ax_ws_opts o = {.deflate = true};
    ax__ws_opts_defaults(&o);
    memset(pmd, 0, sizeof(*pmd));
    return ax__ws_pmd_accept(&o, offer, strlen(offer), pmd, out, 256);
}

TEST(ws_pmd_7_negotiation_server)
{
    static const struct {
        const char *offer, *answer;
    } cases[] = {
        {"permessage-deflate", "permessage-deflate"},
        {"permessage-deflate; client_max_window_bits", "permessage-deflate"},
        {"permessage-deflate; client_max_window_bits=10", "permessage-deflate"},
        {"permessage-deflate; server_max_window_bits=10",
         "permessage-deflate; server_max_window_bits=10"},
        {"permessage-deflate; server_max_window_bits=\"12\"",
         "permessage-deflate; server_max_window_bits=12"},
        {"permessage-deflate;server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover"},
        {"permessage-deflate; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover"},
        /* declined offers, then one we take */
        {"permessage-deflate; server_max_window_bits=8, permessage-deflate", "permessage-deflate"},
        {"permessage-deflate; server_max_window_bits=16, permessage-deflate", "permessage-deflate"},
        {"permessage-deflate; foo=1, permessage-deflate", "permessage-deflate"},
        {"x-webkit-deflate-frame, permessage-deflate", "permessage-deflate"},
        /* declined outright */
        {"permessage-deflate; server_max_window_bits=07", NULL},
        {"permessage-deflate; server_max_window_bits", NULL},
        {"permessage-deflate; server_no_context_takeover=1", NULL},
        {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", NULL},
        {"permessage-deflate; client_max_window_bits=7", NULL},
        {"deflate-stream", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[256];
        ax__ws_pmd pmd;
        size_t n = accept_offer(cases[i].offer, out, &pmd);
        if (!cases[i].answer) {
            ASSERT_EQ(n, 0);
            ASSERT(!pmd.on);
            continue;
        }
        ASSERT(pmd.on);
        out[n] = 0;
        ASSERT_STREQ(out, cases[i].answer);
    }
    char out[256];
    ax__ws_pmd pmd;
    accept_offer("permessage-deflate; server_max_window_bits=9; server_no_context_takeover", out,
                 &pmd);
    ASSERT_EQ(pmd.tx_bits, 9);
    ASSERT(pmd.tx_no_context);
    ASSERT(!pmd.rx_no_context);
}

TEST(ws_pmd_7_negotiation_client)
{
    ax_ws_opts o = {.deflate = true};
    ax__ws_opts_defaults(&o);
    ax__ws_pmd pmd;
    char offer[160];
    size_t n = ax__ws_pmd_offer(&o, offer, sizeof offer);
    offer[n] = 0;
    ASSERT_STREQ(offer, "permessage-deflate; client_max_window_bits");
#define CHECK(resp) ax__ws_pmd_check(&o, resp, strlen(resp), &pmd)
    ASSERT_EQ(CHECK("permessage-deflate"), 0);
    ASSERT(pmd.on);
    ASSERT_EQ(pmd.tx_bits, 15);
    ASSERT_EQ(CHECK("permessage-deflate; client_max_window_bits=11; server_no_context_takeover"),
              0);
    ASSERT_EQ(pmd.tx_bits, 11);
    ASSERT(pmd.rx_no_context);
    ASSERT_EQ(CHECK("permessage-deflate; client_no_context_takeover"), 0);
    ASSERT(pmd.tx_no_context);
    ASSERT_EQ(CHECK("permessage-deflate; client_max_window_bits=8"), AX_EPROTO);
    ASSERT_EQ(CHECK("permessage-deflate; client_max_window_bits"), AX_EPROTO); /* needs a value */
    ASSERT_EQ(CHECK("permessage-deflate; bogus"), AX_EPROTO);
    ASSERT_EQ(CHECK("x-other"), AX_EPROTO);
    ASSERT_EQ(CHECK("permessage-deflate, permessage-deflate"), AX_EPROTO);
#undef CHECK
}

/* Raw deflate of `in` with a sync flush, the 00 00 ff ff removed. */
static size_t compress_msg(const void *in, size_t len, unsigned char *out, size_t cap)
{
    z_stream z = {0};
    ASSERT(deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    ASSERT(deflate(&z, Z_SYNC_FLUSH) == Z_OK);
    ASSERT(z.avail_in == 0 && z.avail_out > 0);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    ASSERT(n >= 4 && memcmp(out + n - 4, "\x00\x00\xff\xff", 4) == 0);
    return n - 4;
}

#define DEFLATE_FIELDS                                                                             \
    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"                   \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                                              \
    "Sec-WebSocket-Extensions: permessage-deflate\r\n"

static int open_deflate(ax_loop *loop, server *s)
{
    char head[2048];
    int status;
    int fd = wt_open_raw(loop, ax_listener_addr(s->l), "/small", DEFLATE_FIELDS, &status, head,
                         sizeof head);
    ASSERT_EQ(status, 101);
    ASSERT(strstr(head, "Sec-WebSocket-Extensions: permessage-deflate\r\n") != NULL);
    return fd;
}

static void deflate_expect(ax_loop *loop, server *s, const void *frames, size_t n, int code)
{
    int fd = open_deflate(loop, s);
    tu_write_all(fd, frames, n);
    wt_expect_close(loop, fd, code);
    close(fd);
}

TEST(ws_pmd_6_frames_and_limits)
{
    ax_loop *loop = tu_loop();
    server s;
    static unsigned char plain[100000], z[120000], fr[130000];
    static wt_frame f;
    server_start(&s, loop);
    /* a compressed message, inflated and echoed (compressed again) */
    int fd = open_deflate(loop, &s);
    memset(plain, 'q', 4096);
    size_t zl = compress_msg(plain, 4096, z, sizeof z);
    size_t n = wt_encode(fr, AX_WS_TEXT, false, 0x40, z, zl / 2, true);
    n += wt_encode(fr + n, AX_WS_CONT, true, 0, z + zl / 2, zl - zl / 2, true);
    tu_write_all(fd, fr, n);
    wt_read(loop, fd, &f, 3000);
    ASSERT_EQ(f.op, AX_WS_TEXT);
    ASSERT_EQ(f.rsv, 0x40); /* sent compressed */
    close(fd);
    /* inflating past max_message (4096): 1009, however small on the wire */
    zl = compress_msg(plain, 4097, z, sizeof z);
    ASSERT(zl < 100);
    n = wt_encode(fr, AX_WS_BINARY, true, 0x40, z, zl, true);
    deflate_expect(loop, &s, fr, n, 1009);
    /* a bomb: 100000 zero bytes in a few hundred */
    memset(plain, 0, sizeof plain);
    zl = compress_msg(plain, sizeof plain, z, sizeof z);
    n = wt_encode(fr, AX_WS_BINARY, true, 0x40, z, zl, true);
    deflate_expect(loop, &s, fr, n, 1009);
    /* RSV1 on a continuation frame or a control frame: 1002 */
    n = wt_encode(fr, AX_WS_TEXT, false, 0, "a", 1, true);
    n += wt_encode(fr + n, AX_WS_CONT, true, 0x40, "b", 1, true);
    deflate_expect(loop, &s, fr, n, 1002);
    n = wt_encode(fr, AX_WS_PING, true, 0x40, "", 0, true);
    deflate_expect(loop, &s, fr, n, 1002);
    /* garbage that is not deflate data: 1007 */
    n = wt_encode(fr, AX_WS_BINARY, true, 0x40, "\xff\xff\xff\xff\xff", 5, true);
    deflate_expect(loop, &s, fr, n, 1007);
    /* compressed text that inflates to invalid UTF-8: 1007 */
    zl = compress_msg("ok \xed\xa0\x80", 6, z, sizeof z);
    n = wt_encode(fr, AX_WS_TEXT, true, 0x40, z, zl, true);
    deflate_expect(loop, &s, fr, n, 1007);
    ax_http_server_free(s.srv);
    ax_loop_free(loop);
}

/* ---- out of memory at every allocation ----------------------------------- */

typedef struct oom_run {
    cstate st;
    int srv_open, srv_close;
} oom_run;

static oom_run *oom;

static void o_srv_open(ax_ws *ws)
{
    (void)ws;
    oom->srv_open++;
}

static void o_srv_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    (void)ws, (void)code, (void)reason, (void)len;
    oom->srv_close++;
}

static const ax_ws_cbs o_srv_cbs = {
    .on_open = o_srv_open, .on_message = s_message, .on_close = o_srv_close};
static const ax_ws_opts o_opts = {.deflate = true, .ping_interval_ms = 1000};
static const ax_ws_endpoint o_ep = {.cbs = &o_srv_cbs, .opts = &o_opts};

static void o_cli_open(ax_ws *ws)
{
    static unsigned char big[5000];
    c_open(ws);
    /* out of memory is a possible outcome here: the test checks nothing leaks */
    int rc = ax_ws_send_text(ws, "one", 3);
    rc = ax_ws_send_binary(ws, big, sizeof big); /* compressed */
    (void)rc;
}

static void o_cli_message(ax_ws *ws, const void *d, size_t n, bool binary)
{
    c_message(ws, d, n, binary);
    if (oom->st.messages == 2) ax_ws_close(ws, 1000, NULL);
}

static const ax_ws_cbs o_cli_cbs = {
    .on_open = o_cli_open, .on_message = o_cli_message, .on_close = c_close};

/* One server + client session with allocation n failing (and all after
 * it).  Returns true when nothing failed. */
static bool oom_session(long n)
{
    oom_run run = {0};
    int err;
    oom = &run;
    long fails0 = tu_alloc_failures();
    tu_alloc_fail_after(n);
    ax_loop *loop = ax_loop_new(NULL, &err);
    ax_http_server *srv = loop ? ax_http_server_new(loop, NULL, &err) : NULL;
    ax_listener *l = NULL;
    if (srv && ax_ws_route(srv, "/", &o_ep) == 0)
        l = ax_http_listen(srv, "tcp://127.0.0.1:0", NULL, &err);
    ax_ws *ws = NULL;
    if (l) {
        char url[64];
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/", ax_addr_port(ax_listener_addr(l)));
        ax_ws_opts co = {.deflate = true};
        ws = ax_ws_connect(loop, url, &o_cli_cbs, &co, &run.st, &err);
        if (!ws) ASSERT(err == AX_ENOMEM);
        uint64_t end = tu_now_ms() + 500;
        while (ws && run.st.closed == 0 && tu_now_ms() < end)
            ax_loop_run_once(loop, 10);
    }
    /* A lost allocation may stall a session (a message that could not be
     * queued); freeing the loop ends it, with every close callback run. */
    ax_http_server_free(srv);
    if (loop) ax_loop_free(loop);
    if (ws) ASSERT_EQ(run.st.closed, 1);
    ASSERT_EQ(run.srv_open, run.srv_close);
    tu_alloc_fail_after(-1);
    ASSERT_EQ(tu_alloc_live_count(), 0);
    return tu_alloc_failures() == fails0;
}

TEST_TIMEOUT(ws_alloc_failures, 120)
{
    tu_alloc_install();
    long n = 0;
    while (!oom_session(n))
        n++;
    ASSERT(n > 10);
    ASSERT_EQ(oom->st.messages, 2); /* the run without failures did everything */
}

/* ---- a maximum-size message echoed (Autobahn 9.1.6, 9.2.6) ------------------- */

typedef struct bigstate {
    int opened, closed, code, messages;
    const unsigned char *want;
    size_t want_len;
    bool same;
} bigstate;

static void big_open(ax_ws *ws)
{
    ((bigstate *)ax_ws_data(ws))->opened++;
}

static void big_message(ax_ws *ws, const void *d, size_t n, bool binary)
{
    bigstate *s = ax_ws_data(ws);
    (void)binary;
    s->messages++;
    s->same = n == s->want_len && memcmp(d, s->want, n) == 0;
}

static void big_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    bigstate *s = ax_ws_data(ws);
    (void)reason, (void)len;
    s->closed++;
    s->code = code;
}

static const ax_ws_cbs big_cbs = {
    .on_open = big_open, .on_message = big_message, .on_close = big_close};
static const ax_ws_opts default_opts = {0};
static const ax_ws_endpoint default_ep = {.cbs = &s_cbs, .opts = &default_opts};

/* Both ends with default settings: a message of exactly max_message (16 MiB)
 * is accepted by each, so each must be able to send it back: the client
 * sends it, the server echoes it, the client gets it whole. */
TEST_TIMEOUT(ws_max_message_echo_with_defaults, 60)
{
    ax_loop *loop = tu_loop();
    int err;
    ax_http_server *srv = ax_http_server_new(loop, NULL, &err);
    ASSERT(srv != NULL);
    ASSERT_EQ(ax_ws_route(srv, "/", &default_ep), 0);
    ax_listener *l = ax_http_listen(srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(l != NULL);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", ax_addr_port(ax_listener_addr(l)));
    size_t n = 16u << 20;
    unsigned char *msg = malloc(n);
    ASSERT(msg != NULL);
    memset(msg, '*', n); /* text: valid UTF-8 */
    bigstate st = {.want = msg, .want_len = n};
    ax_ws *ws = ax_ws_connect(loop, url, &big_cbs, NULL, &st, &err);
    ASSERT(ws != NULL);
    RUN_UNTIL(loop, st.opened == 1, 5000);
    for (int round = 0; round < 2; round++) { /* 9.1.6 text, 9.2.6 binary */
        if (round) tu_fill_pattern(msg, n, 7);
        ASSERT(ax_ws_send(ws, msg, n, round == 1) >= 0);
        RUN_UNTIL(loop, st.messages == round + 1 || st.closed, 30000);
        ASSERT_EQ(st.closed, 0);
        ASSERT(st.same);
    }
    ASSERT_EQ(ax_ws_close(ws, AX_WS_CLOSE_NORMAL, NULL), 0);
    RUN_UNTIL(loop, st.closed == 1, 5000);
    ASSERT_EQ(st.code, AX_WS_CLOSE_NORMAL);
    free(msg);
    ax_http_server_free(srv);
    ax_loop_free(loop);
}

/* The limits derive from each other: whatever max_message allows fits the
 * output cap with its header. */
TEST(ws_opts_message_fits_output_cap)
{
    ax_ws_opts o = {0};
    ax__ws_opts_defaults(&o);
    ASSERT_EQ(o.max_message, (size_t)16 << 20);
    ASSERT(o.output_cap >= o.max_message + AX_WS_MAX_HEADER);
    o = (ax_ws_opts){.output_cap = 256 * 1024}; /* the cap alone bounds messages */
    ax__ws_opts_defaults(&o);
    ASSERT_EQ(o.output_cap, (size_t)256 * 1024);
    ASSERT_EQ(o.max_message, (size_t)256 * 1024 - AX_WS_MAX_HEADER);
    o = (ax_ws_opts){.max_message = 32u << 20}; /* a larger message raises the cap */
    ax__ws_opts_defaults(&o);
    ASSERT(o.output_cap >= o.max_message + AX_WS_MAX_HEADER);
    o = (ax_ws_opts){.max_message = 1u << 20, .output_cap = 4096}; /* both: the message wins */
    ax__ws_opts_defaults(&o);
    ASSERT_EQ(o.max_message, (size_t)1 << 20);
    ASSERT(o.output_cap >= o.max_message + AX_WS_MAX_HEADER);
}
