/* test_ws_server.c: RFC 6455 conformance of the WebSocket server, section
 * by section, driven with raw sockets (ws_testutil.h) against an echo
 * endpoint running on the loop under test; plus the server API: close
 * initiated by the application, the close timeout, the output cap,
 * broadcast frames, keepalive and subprotocols. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/http.h>
#include <axon/ws.h>

#include "proto/ws/ws_frame.h"
#include "proto/ws/ws_internal.h"
#include "runner.h"
#include "testutil.h"
#include "ws_testutil.h"

typedef struct fixture {
    ax_loop *loop;
    ax_http_server *srv;
    ax_listener *l;
    ax_ws_endpoint ep, small, cap, kept;
    ax_ws_opts small_o, cap_o, kept_o;
    int opened, closed, last_code;
    char last_reason[128];
    char origin[64], proto[32], path[64];
    ax_ws *last;
    ax_ws *all[8];
    int flood_rc;
} fixture;

static fixture *fx;

static void t_open(ax_ws *ws)
{
    if (fx->opened < 8) fx->all[fx->opened] = ws;
    fx->opened++;
    fx->last = ws;
    snprintf(fx->origin, sizeof fx->origin, "%s", ax_ws_origin(ws));
    snprintf(fx->proto, sizeof fx->proto, "%s", ax_ws_protocol(ws));
    snprintf(fx->path, sizeof fx->path, "%s", ax_ws_path(ws));
}

static void t_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    if (len == 5 && memcmp(data, "close", 5) == 0) {
        ASSERT_EQ(ax_ws_close(ws, 4001, "bye"), 0);
        ASSERT_EQ(ax_ws_send_text(ws, "late", 4), AX_ECLOSED);
        return;
    }
    if (len == 5 && memcmp(data, "flood", 5) == 0) {
        static char chunk[1024];
        for (int i = 0; i < 200000; i++) {
            fx->flood_rc = ax_ws_send_binary(ws, chunk, sizeof chunk);
            if (fx->flood_rc < 0) return;
        }
        return;
    }
    if (len == 3 && memcmp(data, "fan", 3) == 0) {
        /* shared frames corked for the others, interleaved with a copy */
        ax_slice *a = ax_ws_shared_new("A", 1, false), *c = ax_ws_shared_new("C", 1, false);
        for (int i = 0; i < fx->opened && i < 8; i++) {
            if (fx->all[i] == ws) continue;
            ASSERT_EQ(ax_ws_send_shared(fx->all[i], a), 0);
            ASSERT_EQ(ax_ws_send_text(fx->all[i], "B", 1), 0);
            for (int k = 0; k < 40; k++) /* past a recipient's 32 corked: flushed midway */
                ASSERT_EQ(ax_ws_send_shared(fx->all[i], c), 0);
            ASSERT(ax_ws_buffered(fx->all[i]) > 0); /* the last C frames wait for the end */
        }
        ax_slice_unref(a);
        ax_slice_unref(c);
        return;
    }
    int rc = ax_ws_send(ws, data, len, binary);
    (void)rc; /* a closing connection drops the echo */
}

static void t_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    fx->closed++;
    fx->last_code = code;
    snprintf(fx->last_reason, sizeof fx->last_reason, "%.*s", (int)len, reason);
    if (fx->last == ws) fx->last = NULL;
}

static const ax_ws_cbs t_cbs = {.on_open = t_open, .on_message = t_message, .on_close = t_close};

static const char *const protos[] = {"chat.v2", "chat", NULL};

static void fx_start(fixture *f)
{
    int err = 0;
    memset(f, 0, sizeof(*f));
    fx = f;
    f->loop = tu_loop();
    f->srv = ax_http_server_new(f->loop, NULL, &err);
    ASSERT(f->srv != NULL);
    static ax_ws_opts main_o = {.protocols = protos};
    f->ep = (ax_ws_endpoint){.cbs = &t_cbs, .opts = &main_o};
    f->small_o = (ax_ws_opts){.max_message = 1024};
    f->small = (ax_ws_endpoint){.cbs = &t_cbs, .opts = &f->small_o};
    f->cap_o = (ax_ws_opts){.output_cap = 256 * 1024};
    f->cap = (ax_ws_endpoint){.cbs = &t_cbs, .opts = &f->cap_o};
    f->kept_o = (ax_ws_opts){.ping_interval_ms = 100, .close_timeout_ms = 200};
    f->kept = (ax_ws_endpoint){.cbs = &t_cbs, .opts = &f->kept_o};
    ASSERT_EQ(ax_ws_route(f->srv, "/", &f->ep), 0);
    ASSERT_EQ(ax_ws_route(f->srv, "/small", &f->small), 0);
    ASSERT_EQ(ax_ws_route(f->srv, "/cap", &f->cap), 0);
    ASSERT_EQ(ax_ws_route(f->srv, "/kept", &f->kept), 0);
    f->l = ax_http_listen(f->srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(f->l != NULL);
}

static void fx_stop(fixture *f)
{
    ax_http_server_free(f->srv);
    ax_loop_free(f->loop);
}

static int fx_open(fixture *f, const char *path)
{
    return wt_open(f->loop, ax_listener_addr(f->l), path);
}

static wt_frame rf;

static void expect_echo(fixture *f, int fd, int op, const void *data, size_t len)
{
    wt_read(f->loop, fd, &rf, 3000);
    ASSERT_EQ(rf.op, op);
    ASSERT(rf.fin);
    ASSERT(!rf.masked); /* 5.1: a server never masks */
    ASSERT_EQ(rf.rsv, 0);
    ASSERT_EQ(rf.len, len);
    ASSERT(memcmp(rf.data, data, len) == 0);
}

/* Send raw bytes on a fresh connection; expect a close with `code`. */
static void expect_fail(fixture *f, const char *path, const void *bytes, size_t n, int code)
{
    int fd = fx_open(f, path);
    tu_write_all(fd, bytes, n);
    wt_expect_close(f->loop, fd, code);
    close(fd);
    RUN_UNTIL(f->loop, f->closed > 0, 3000);
    ASSERT_EQ(f->last_code, code);
    f->closed = 0;
}

static void expect_fail_frame(fixture *f, int op, bool fin, int rsv, const void *d, size_t len,
                              bool mask, int code)
{
    static unsigned char buf[70000];
    size_t n = wt_encode(buf, op, fin, rsv, d, len, mask);
    expect_fail(f, "/", buf, n, code);
}

/* ---- 4. the opening handshake ------------------------------------------ */

static int handshake_status(fixture *f, const char *path, const char *fields, char *head)
{
    int status;
    int fd = wt_open_raw(f->loop, ax_listener_addr(f->l), path, fields, &status, head, 2048);
    close(fd);
    return status;
}

TEST(ws_conf_4_handshake_refusals)
{
    fixture f;
    char head[2048];
    fx_start(&f);
    const char *k = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    char fields[512];
    /* no Upgrade at all: a plain GET to a WebSocket endpoint */
    ASSERT_EQ(handshake_status(&f, "/", "", head), 426);
    ASSERT(strstr(head, "Upgrade: websocket\r\n") != NULL);
    snprintf(fields, sizeof fields, "Upgrade: websocket\r\nConnection: Upgrade\r\n%s", k);
    ASSERT_EQ(handshake_status(&f, "/", fields, head), 426); /* no version */
    snprintf(fields, sizeof fields,
             "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\n%s", k);
    ASSERT_EQ(handshake_status(&f, "/", fields, head), 426);
    ASSERT(strstr(head, "Sec-WebSocket-Version: 13\r\n") != NULL);
    ASSERT_EQ(handshake_status(&f, "/",
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Version: 13\r\n",
                               head),
              400); /* no key */
    ASSERT_EQ(handshake_status(&f, "/",
                               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n",
                               head),
              400); /* a key that is not 16 bytes */
    ASSERT_EQ(f.opened, 0);
    fx_stop(&f);
}

TEST(ws_conf_4_handshake_tokens_and_data_behind)
{
    fixture f;
    char head[2048];
    int status;
    fx_start(&f);
    /* Connection lists several tokens, case differs; a frame follows the
     * request in the same write. */
    const char *fields = "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Origin: http://example.com\r\n"
                         "Sec-WebSocket-Protocol: chat, chat.v2\r\n";
    char req[1024];
    unsigned char frame[64];
    size_t fl = wt_encode(frame, AX_WS_TEXT, true, 0, "early", 5, true);
    int n = snprintf(req, sizeof req, "GET /room/1?x=y HTTP/1.1\r\nHost: t\r\n%s\r\n", fields);
    memcpy(req + n, frame, fl);
    int fd = tu_connect(ax_listener_addr(f.l), 0);
    tu_write_all(fd, req, (size_t)n + fl);
    size_t got = 0;
    head[0] = 0;
    while (!strstr(head, "\r\n\r\n")) {
        ASSERT(tu_loop_read_n(f.loop, fd, head + got, 1, 3000) == 1);
        head[++got] = 0;
    }
    ASSERT(sscanf(head, "HTTP/1.1 %d", &status) == 1);
    ASSERT_EQ(status, 101);
    ASSERT(strstr(head, "Sec-WebSocket-Protocol: chat.v2\r\n") != NULL); /* our preference */
    ASSERT(strstr(head, "Sec-WebSocket-Extensions") == NULL); /* deflate is off by default */
    expect_echo(&f, fd, AX_WS_TEXT, "early", 5);
    ASSERT_STREQ(f.origin, "http://example.com");
    ASSERT_STREQ(f.proto, "chat.v2");
    ASSERT_STREQ(f.path, "/room/1");
    close(fd);
    fx_stop(&f);
}

static void plain(ax_http_req *r, void *ud)
{
    (void)ud;
    ax_http_respond(r, 200, "text/plain", "plain\n", 6);
}

TEST(ws_conf_4_upgrade_after_pipelined_request)
{
    fixture f;
    char buf[4096];
    fx_start(&f);
    ASSERT_EQ(ax_http_route(f.srv, "GET", "/plain", plain, NULL), 0);
    /* an ordinary request, then the upgrade, in one write: answers in order */
    const char *req = "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n"
                      "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    int fd = tu_connect(ax_listener_addr(f.l), 0);
    tu_write_all(fd, req, strlen(req));
    size_t got = 0;
    buf[0] = 0;
    while (!strstr(buf, "101 Switching Protocols") || !strstr(strstr(buf, "101"), "\r\n\r\n")) {
        ASSERT(tu_loop_read_n(f.loop, fd, buf + got, 1, 3000) == 1);
        buf[++got] = 0;
    }
    const char *ok = strstr(buf, "200 OK"), *sw = strstr(buf, "101 Switching");
    ASSERT(ok != NULL && sw != NULL && ok < sw);
    wt_send(fd, AX_WS_TEXT, true, "after http", 10);
    expect_echo(&f, fd, AX_WS_TEXT, "after http", 10);
    close(fd);
    fx_stop(&f);
}

/* ---- 5.1-5.3 framing ---------------------------------------------------- */

TEST(ws_conf_5_1_unmasked_client_frame)
{
    fixture f;
    fx_start(&f);
    expect_fail_frame(&f, AX_WS_TEXT, true, 0, "hi", 2, false, 1002);
    fx_stop(&f);
}

TEST(ws_conf_5_2_rsv_and_opcodes)
{
    fixture f;
    fx_start(&f);
    expect_fail_frame(&f, AX_WS_TEXT, true, 0x40, "hi", 2, true, 1002); /* no extension */
    expect_fail_frame(&f, AX_WS_TEXT, true, 0x20, "hi", 2, true, 1002);
    expect_fail_frame(&f, AX_WS_TEXT, true, 0x10, "hi", 2, true, 1002);
    int ops[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        expect_fail_frame(&f, ops[i], true, 0, "", 0, true, 1002);
    fx_stop(&f);
}

TEST(ws_conf_5_2_payload_lengths)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    static unsigned char big[70000];
    size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 69999};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tu_fill_pattern(big, sizes[i], i);
        wt_send(fd, AX_WS_BINARY, true, big, sizes[i]);
        expect_echo(&f, fd, AX_WS_BINARY, big, sizes[i]);
    }
    /* Written one byte at a time: the parser resumes anywhere. */
    unsigned char fr[300];
    size_t n = wt_encode(fr, AX_WS_TEXT, true, 0, "byte by byte", 12, true);
    for (size_t i = 0; i < n; i++) {
        tu_write_all(fd, fr + i, 1);
        ax_loop_run_once(f.loop, 1);
    }
    expect_echo(&f, fd, AX_WS_TEXT, "byte by byte", 12);
    close(fd);
    fx_stop(&f);
}

TEST(ws_conf_5_2_non_minimal_length)
{
    fixture f;
    fx_start(&f);
    /* 5 bytes announced with the 16-bit form, then with the 64-bit form */
    unsigned char a[] = {0x82, 0xfe, 0x00, 0x05, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'};
    expect_fail(&f, "/", a, sizeof a, 1002);
    unsigned char b[] = {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 'a', 'b', 'c', 'd', 'e'};
    expect_fail(&f, "/", b, sizeof b, 1002);
    unsigned char c[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}; /* MSB set */
    expect_fail(&f, "/", c, sizeof c, 1002);
    fx_stop(&f);
}

/* ---- 5.4 fragmentation ---------------------------------------------------- */

TEST(ws_conf_5_4_fragments_reassembled)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    wt_send(fd, AX_WS_TEXT, false, "frag", 4);
    wt_send(fd, AX_WS_CONT, false, "", 0);
    wt_send(fd, AX_WS_PING, true, "mid", 3); /* 5.4: control frames between fragments */
    wt_send(fd, AX_WS_CONT, false, "ment", 4);
    wt_send(fd, AX_WS_CONT, true, "ed", 2);
    expect_echo(&f, fd, AX_WS_PONG, "mid", 3);
    expect_echo(&f, fd, AX_WS_TEXT, "fragmented", 10);
    /* a binary message in many 1-byte fragments */
    unsigned char b[200];
    tu_fill_pattern(b, sizeof b, 0);
    for (size_t i = 0; i < sizeof b; i++)
        wt_send(fd, i ? AX_WS_CONT : AX_WS_BINARY, i == sizeof b - 1, b + i, 1);
    expect_echo(&f, fd, AX_WS_BINARY, b, sizeof b);
    close(fd);
    fx_stop(&f);
}

TEST(ws_conf_5_4_fragment_errors)
{
    fixture f;
    fx_start(&f);
    expect_fail_frame(&f, AX_WS_CONT, true, 0, "x", 1, true, 1002); /* nothing to continue */
    expect_fail_frame(&f, AX_WS_CONT, false, 0, "x", 1, true, 1002);
    unsigned char buf[64];
    size_t n = wt_encode(buf, AX_WS_TEXT, false, 0, "a", 1, true);
    n += wt_encode(buf + n, AX_WS_TEXT, true, 0, "b", 1, true); /* new message inside one */
    expect_fail(&f, "/", buf, n, 1002);
    n = wt_encode(buf, AX_WS_BINARY, false, 0, "a", 1, true);
    n += wt_encode(buf + n, AX_WS_BINARY, false, 0, "b", 1, true);
    expect_fail(&f, "/", buf, n, 1002);
    fx_stop(&f);
}

/* ---- 5.5 control frames ------------------------------------------------- */

TEST(ws_conf_5_5_control_frames)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    unsigned char p[125];
    tu_fill_pattern(p, sizeof p, 3);
    wt_send(fd, AX_WS_PING, true, p, sizeof p); /* the largest allowed */
    expect_echo(&f, fd, AX_WS_PONG, p, sizeof p);
    wt_send(fd, AX_WS_PING, true, "", 0);
    expect_echo(&f, fd, AX_WS_PONG, "", 0);
    wt_send(fd, AX_WS_PONG, true, "unsolicited", 11); /* 5.5.3: ignored */
    wt_send(fd, AX_WS_TEXT, true, "after", 5);
    expect_echo(&f, fd, AX_WS_TEXT, "after", 5);
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    f.closed = 0;
    unsigned char big[126] = {0};
    expect_fail_frame(&f, AX_WS_PING, true, 0, big, sizeof big, true, 1002);
    expect_fail_frame(&f, AX_WS_PONG, true, 0, big, sizeof big, true, 1002);
    expect_fail_frame(&f, AX_WS_PING, false, 0, "x", 1, true, 1002); /* fragmented */
    expect_fail_frame(&f, AX_WS_CLOSE, false, 0, "", 0, true, 1002);
    expect_fail_frame(&f, AX_WS_PING, true, 0x40, "x", 1, true, 1002);
    fx_stop(&f);
}

/* ---- 8.1 UTF-8 ------------------------------------------------------------ */

static const struct {
    const char *what, *bytes;
} bad_utf8[] = {
    {"lone continuation", "\x80"},
    {"continuation run", "\x80\xbf\x80"},
    {"lone start byte then space", "\xc0 "},
    {"overlong 2-byte NUL", "\xc0\x80"},
    {"overlong 2-byte /", "\xc1\xaf"},
    {"overlong 3-byte", "\xe0\x80\xaf"},
    {"overlong 4-byte", "\xf0\x80\x80\xaf"},
    {"5-byte form", "\xf8\x88\x80\x80\x80"},
    {"6-byte form", "\xfc\x84\x80\x80\x80\x80"},
    {"surrogate D800", "\xed\xa0\x80"},
    {"surrogate DFFF", "\xed\xbf\xbf"},
    {"surrogate pair", "\xed\xa0\x80\xed\xb0\x80"},
    {"above U+10FFFF", "\xf4\x90\x80\x80"},
    {"FE", "\xfe"},
    {"FF", "\xff"},
    {"truncated 3-byte at end", "ab\xe2\x82"},
    {"truncated 4-byte at end", "\xf0\x9f\x98"},
    {"kosme with bad byte", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"},
};

TEST(ws_conf_8_1_invalid_utf8)
{
    fixture f;
    fx_start(&f);
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof bad_utf8[0]; i++) {
        const char *s = bad_utf8[i].bytes;
        expect_fail_frame(&f, AX_WS_TEXT, true, 0, s, strlen(s), true, 1007);
        /* the same split into fragments at every position */
        size_t n = strlen(s);
        for (size_t cut = 1; cut < n; cut++) {
            unsigned char buf[64];
            size_t k = wt_encode(buf, AX_WS_TEXT, false, 0, s, cut, true);
            k += wt_encode(buf + k, AX_WS_CONT, true, 0, s + cut, n - cut, true);
            expect_fail(&f, "/", buf, k, 1007);
        }
    }
    fx_stop(&f);
}

TEST(ws_conf_8_1_valid_utf8_across_fragments)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    const char *s =
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        wt_send(fd, AX_WS_TEXT, false, s, cut);
        wt_send(fd, AX_WS_CONT, true, s + cut, n - cut);
        expect_echo(&f, fd, AX_WS_TEXT, s, n);
    }
    close(fd);
    fx_stop(&f);
}

TEST(ws_conf_8_1_fail_fast)
{
    fixture f;
    fx_start(&f);
    /* A bad prefix in the first fragment of an unfinished message fails at
     * once, without waiting for the rest. */
    int fd = fx_open(&f, "/");
    wt_send(fd, AX_WS_TEXT, false, "ok \xed\xa0", 5);
    wt_expect_close(f.loop, fd, 1007);
    close(fd);
    /* also inside a frame whose payload has not all arrived */
    fd = fx_open(&f, "/");
    unsigned char buf[64];
    size_t k = wt_encode(buf, AX_WS_TEXT, true, 0, "abc\xff-rest-of-frame", 18, true);
    tu_write_all(fd, buf, k - 10);
    wt_expect_close(f.loop, fd, 1007);
    close(fd);
    fx_stop(&f);
}

/* ---- 7 closing --------------------------------------------------------- */

TEST(ws_conf_7_close_codes)
{
    fixture f;
    fx_start(&f);
    int good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int fd = fx_open(&f, "/");
        wt_close(f.loop, fd, good[i], &rf);
        ASSERT_EQ(rf.op, AX_WS_CLOSE);
        ASSERT_EQ(rf.data[0] << 8 | rf.data[1], good[i]); /* the code echoed */
        close(fd);
        RUN_UNTIL(f.loop, f.closed > 0, 3000);
        ASSERT_EQ(f.last_code, good[i]);
        f.closed = 0;
    }
    int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char p[2] = {(unsigned char)(bad[i] >> 8), (unsigned char)bad[i]};
        expect_fail_frame(&f, AX_WS_CLOSE, true, 0, p, 2, true, 1002);
    }
    expect_fail_frame(&f, AX_WS_CLOSE, true, 0, "\x03", 1, true, 1002);         /* 1-byte payload */
    expect_fail_frame(&f, AX_WS_CLOSE, true, 0, "\x03\xe8\xff", 3, true, 1007); /* bad reason */
    fx_stop(&f);
}

TEST(ws_conf_7_close_empty_and_reason)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    wt_close(f.loop, fd, 0, &rf);
    ASSERT_EQ(rf.op, AX_WS_CLOSE);
    ASSERT_EQ(rf.len, 0); /* no code in, none out */
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    ASSERT_EQ(f.last_code, 1005);
    fd = fx_open(&f, "/");
    wt_send(fd, AX_WS_CLOSE, true, "\x03\xe8going \xc3\xa9", 10);
    wt_read(f.loop, fd, &rf, 3000);
    ASSERT_EQ(rf.op, AX_WS_CLOSE);
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 2, 3000);
    ASSERT_EQ(f.last_code, 1000);
    ASSERT_STREQ(f.last_reason, "going \xc3\xa9");
    fx_stop(&f);
}

TEST(ws_conf_7_server_initiated_close)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    wt_send(fd, AX_WS_TEXT, true, "close", 5);
    wt_read(f.loop, fd, &rf, 3000);
    ASSERT_EQ(rf.op, AX_WS_CLOSE);
    ASSERT_EQ(rf.data[0] << 8 | rf.data[1], 4001);
    ASSERT_EQ(rf.len, 5);
    ASSERT(memcmp(rf.data + 2, "bye", 3) == 0);
    /* data after the server's close still arrives (its echo cannot be sent) */
    wt_send(fd, AX_WS_TEXT, true, "ignored", 7);
    unsigned char p[2] = {0x0f, 0xa1};
    wt_send(fd, AX_WS_CLOSE, true, p, 2);
    char c;
    ASSERT_EQ(tu_loop_read_n(f.loop, fd, &c, 1, 3000), 0);
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    ASSERT_EQ(f.last_code, 4001);
    fx_stop(&f);
}

TEST(ws_conf_7_close_timeout)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/kept");
    wt_send(fd, AX_WS_TEXT, true, "close", 5);
    uint64_t t0 = tu_now_ms();
    RUN_UNTIL(f.loop, f.closed == 1, 3000); /* we never answer */
    ASSERT(tu_now_ms() - t0 >= 150);
    ASSERT_EQ(f.last_code, 1006);
    close(fd);
    fx_stop(&f);
}

TEST(ws_conf_7_abnormal_close)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    RUN_UNTIL(f.loop, f.opened == 1, 3000);
    tu_close_reset(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    ASSERT_EQ(f.last_code, 1006);
    fx_stop(&f);
}

/* ---- 10.4 limits ---------------------------------------------------------- */

TEST(ws_conf_10_4_message_limit)
{
    fixture f;
    fx_start(&f);
    static unsigned char b[2048];
    int fd = fx_open(&f, "/small");
    wt_send(fd, AX_WS_BINARY, true, b, 1024); /* exactly the limit */
    expect_echo(&f, fd, AX_WS_BINARY, b, 1024);
    wt_send(fd, AX_WS_BINARY, true, b, 1025);
    wt_expect_close(f.loop, fd, 1009);
    close(fd);
    fd = fx_open(&f, "/small");
    for (int i = 0; i < 4; i++)
        wt_send(fd, i ? AX_WS_CONT : AX_WS_TEXT, false, b + 1, 256); /* 1024 so far */
    wt_send(fd, AX_WS_CONT, true, b, 1);
    wt_expect_close(f.loop, fd, 1009);
    close(fd);
    fx_stop(&f);
}

TEST(ws_server_output_cap)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/cap");
    wt_send(fd, AX_WS_TEXT, true, "flood", 5); /* and never read */
    RUN_UNTIL(f.loop, f.flood_rc < 0, 5000);
    ASSERT_EQ(f.flood_rc, AX_EOUTPUTCAP);
    tu_close_reset(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 5000);
    ASSERT_EQ(f.last_code, 1008);
    fx_stop(&f);
}

TEST(ws_server_keepalive_ping)
{
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/kept");
    wt_read(f.loop, fd, &rf, 3000);
    ASSERT_EQ(rf.op, AX_WS_PING);
    wt_send(fd, AX_WS_PONG, true, rf.data, rf.len);
    wt_read(f.loop, fd, &rf, 3000); /* alive: another ping comes */
    ASSERT_EQ(rf.op, AX_WS_PING);
    /* no answer now, nothing sent: dropped after the next interval */
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    ASSERT_EQ(f.last_code, 1006);
    close(fd);
    fx_stop(&f);
}

/* ax_ws_each(): a server's connections with a ping interval, open or
 * closing, found in the loop's keepalive ring (axon serve's /ws gateway
 * keeps no list of its own); a close inside the walk is allowed. */
static void each_count(ax_ws *ws, void *ud)
{
    int *n = ud;
    if (++*n == 1) ASSERT_EQ(ax_ws_close(ws, 4002, "walked"), 0);
}

TEST(ws_server_each_walks_the_keepalive_ring)
{
    fixture f;
    fx_start(&f);
    static ax_ws_opts long_o = {.ping_interval_ms = 60000};
    static ax_ws_endpoint each_ep;
    each_ep = (ax_ws_endpoint){.cbs = &t_cbs, .opts = &long_o};
    ASSERT_EQ(ax_ws_route(f.srv, "/each", &each_ep), 0);
    int fd[4];
    for (int i = 0; i < 3; i++)
        fd[i] = fx_open(&f, "/each");
    fd[3] = fx_open(&f, "/"); /* no ping interval: not in a ring */
    RUN_UNTIL(f.loop, f.opened == 4, 3000);
    int n = 0;
    ax_ws_each(f.loop, &t_cbs, each_count, &n);
    ASSERT_EQ(n, 3);
    static const ax_ws_cbs other = {0};
    n = 0;
    ax_ws_each(f.loop, &other, each_count, &n);
    ASSERT_EQ(n, 0);
    n = 1; /* (no more closes) */
    ax_ws_each(f.loop, &t_cbs, each_count, &n);
    ASSERT_EQ(n, 4); /* the one closing is still there */
    for (int i = 0; i < 4; i++)
        close(fd[i]);
    RUN_UNTIL(f.loop, f.closed == 4, 3000);
    n = 1;
    ax_ws_each(f.loop, &t_cbs, each_count, &n);
    ASSERT_EQ(n, 1);
    fx_stop(&f);
}

/* A connection names its shared options by a byte (an idle connection's
 * bytes): past the table's 255 sets at once, the options live in the
 * connection's ext, and they still apply. */
TEST(ws_server_options_past_the_table)
{
    fixture f;
    fx_start(&f);
    enum { N = 300 };
    static ax_ws *held[N];
    static ax_ws_opts o[N];
    for (int i = 0; i < N; i++) {
        o[i] = (ax_ws_opts){.max_message = 5000 + (size_t)i};
        held[i] = ax__ws_new(AX_WS_SERVER, &t_cbs, &o[i], NULL, NULL);
        ASSERT(held[i] != NULL);
    }
    static ax_ws_opts out_o = {.max_message = 64};
    static ax_ws_endpoint out_ep;
    out_ep = (ax_ws_endpoint){.cbs = &t_cbs, .opts = &out_o};
    ASSERT_EQ(ax_ws_route(f.srv, "/out", &out_ep), 0);
    static unsigned char b[100];
    int fd = fx_open(&f, "/out");
    wt_send(fd, AX_WS_TEXT, true, "hi", 2);
    expect_echo(&f, fd, AX_WS_TEXT, "hi", 2);
    ASSERT(strcmp(f.path, "/out") == 0);
    wt_send(fd, AX_WS_BINARY, true, b, 65); /* past its own limit */
    wt_expect_close(f.loop, fd, 1009);
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    ASSERT_EQ(f.last_code, 1009);
    for (int i = 0; i < N; i++)
        ax__ws_free(held[i]);
    fd = fx_open(&f, "/out"); /* a place again */
    wt_send(fd, AX_WS_TEXT, true, "ho", 2);
    expect_echo(&f, fd, AX_WS_TEXT, "ho", 2);
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 2, 3000);
    fx_stop(&f);
}

TEST(ws_server_shared_frames)
{
    fixture f;
    fx_start(&f);
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = fx_open(&f, "/");
    RUN_UNTIL(f.loop, f.opened == 3, 3000);
    ax_slice *s = ax_ws_shared_new("to everyone", 11, false);
    ASSERT(s != NULL);
    ASSERT_EQ(ax_slice_len(s), 13); /* encoded once: 2 header bytes + payload */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(ax_ws_send_shared(f.all[i], s), 0);
    ASSERT_EQ(ax_ws_send_shared(f.all[0], s), 0);
    ax_slice_unref(s); /* the queues keep their own references */
    for (int i = 0; i < 3; i++)
        expect_echo(&f, fds[i], AX_WS_TEXT, "to everyone", 11);
    expect_echo(&f, fds[0], AX_WS_TEXT, "to everyone", 11);
    /* sent from inside one connection's on_data: corked, order kept */
    wt_send(fds[1], AX_WS_TEXT, true, "fan", 3);
    for (int i = 0; i < 3; i += 2) {
        expect_echo(&f, fds[i], AX_WS_TEXT, "A", 1);
        expect_echo(&f, fds[i], AX_WS_TEXT, "B", 1);
        for (int k = 0; k < 40; k++)
            expect_echo(&f, fds[i], AX_WS_TEXT, "C", 1);
    }
    ASSERT(!tu_readable(fds[1], 50)); /* not to the sender */
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    fx_stop(&f);
}

/* An idle connection keeps no input state: the parser and the reassembly
 * buffer exist only while a frame or a fragmented message is partly in
 * (then a frame split across reads and a fragmented message still arrive
 * whole), and the heap goes back to what the idle connection held. */
TEST(ws_server_idle_holds_no_input_state)
{
    tu_alloc_install();
    fixture f;
    fx_start(&f);
    int fd = fx_open(&f, "/");
    RUN_UNTIL(f.loop, f.opened == 1, 3000);
    wt_send(fd, AX_WS_TEXT, true, "warm", 4);
    expect_echo(&f, fd, AX_WS_TEXT, "warm", 4);
    tu_run_for(f.loop, 20);
    long idle = tu_alloc_live_count(), idle_bytes = tu_alloc_live_bytes();
    unsigned char buf[64];
    size_t n = wt_encode(buf, AX_WS_TEXT, true, 0, "split frame", 11, true);
    tu_write_all(fd, buf, 5); /* the header and one byte */
    tu_run_for(f.loop, 30);
    ASSERT(tu_alloc_live_count() > idle); /* the parser waits with it */
    tu_write_all(fd, buf + 5, n - 5);
    expect_echo(&f, fd, AX_WS_TEXT, "split frame", 11);
    tu_run_for(f.loop, 20);
    ASSERT_EQ(tu_alloc_live_count(), idle);
    wt_send(fd, AX_WS_TEXT, false, "frag", 4);
    tu_run_for(f.loop, 30);
    ASSERT(tu_alloc_live_bytes() > idle_bytes); /* parser and reassembly */
    wt_send(fd, AX_WS_CONT, true, "ment", 4);
    expect_echo(&f, fd, AX_WS_TEXT, "fragment", 8);
    tu_run_for(f.loop, 20);
    ASSERT_EQ(tu_alloc_live_count(), idle);
    ASSERT_EQ(tu_alloc_live_bytes(), idle_bytes);
    close(fd);
    RUN_UNTIL(f.loop, f.closed == 1, 3000);
    fx_stop(&f);
}

/* Shared frames corked for more recipients than the per-thread table holds
 * inline (64) reach each of them once, in order. */
static ax_ws *many[100];
static int nmany;

static void m_open(ax_ws *ws)
{
    many[nmany++] = ws;
}

static void m_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    (void)data, (void)len, (void)binary;
    ax_slice *a = ax_ws_shared_new("one", 3, false), *b = ax_ws_shared_new("two", 3, false);
    for (int i = 0; i < nmany; i++) {
        if (many[i] == ws) continue;
        ASSERT(ax_ws_send_shared(many[i], a) >= 0);
        ASSERT(ax_ws_send_shared(many[i], b) >= 0);
    }
    ax_slice_unref(a);
    ax_slice_unref(b);
}

static const ax_ws_cbs m_cbs = {.on_open = m_open, .on_message = m_message};

TEST(ws_server_shared_frames_many)
{
    fixture f;
    fx_start(&f);
    ax_ws_endpoint ep = {.cbs = &m_cbs};
    ASSERT_EQ(ax_ws_route(f.srv, "/many", &ep), 0);
    int fds[100];
    for (int i = 0; i < 100; i++)
        fds[i] = fx_open(&f, "/many");
    RUN_UNTIL(f.loop, nmany == 100, 5000);
    wt_send(fds[0], AX_WS_TEXT, true, "go", 2);
    for (int i = 1; i < 100; i++) {
        wt_read(f.loop, fds[i], &rf, 3000);
        ASSERT_EQ(rf.len, 3);
        ASSERT(memcmp(rf.data, "one", 3) == 0);
        wt_read(f.loop, fds[i], &rf, 3000);
        ASSERT(memcmp(rf.data, "two", 3) == 0);
    }
    for (int i = 0; i < 100; i++)
        close(fds[i]);
    fx_stop(&f);
}
