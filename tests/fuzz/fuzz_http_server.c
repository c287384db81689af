/* fuzz_http_server.c: libFuzzer target for the HTTP server's request state
 * machine (src/proto/http/server.c) with the handlers that stress it, over
 * a Unix socket on one poll loop (fuzz_net.h).
 *
 * data[0] picks the piece size the rest is sent in (bit 7 clear: all at
 * once; else 1 to 64 bytes a turn); the rest is what a client sends: one
 * request or many pipelined, 100-continue, chunked or streamed bodies,
 * WebSocket upgrades and the frames after them.  A fresh server each run
 * answers at
 *   /echo     the body back (?close: Connection: close; ?chunk: chunked;
 *             ?hdr=V: a response field with the value V),
 *   /later    from the next loop turn,
 *   /big      256 KiB written as the connection drains,
 *   /upload   a streamed body (?early: answer before it ends; ?pause:
 *             pause it for a turn), answering with the byte count,
 *   /static/  files of a folder (ranges, ETags, gzip, index, listing,
 *             symlinks out of the folder: a file beside it is never sent),
 *   /ws       a WebSocket echo (deflate, subprotocols).
 * A streamed request without a body gets its end at once.  What comes back
 * must read as a series of well-formed responses (up to a
 * 101; not checked when a HEAD request may have been sent, whose responses
 * have no body to tell apart).  ASan and UBSan watch; at the end every
 * request must have ended or been aborted, and no connection may be left. */
#define _GNU_SOURCE
#include <sys/stat.h>

#include <axon/http.h>
#include <axon/ws.h>

#include "fuzz_net.h"
#include "proto/http/http_parser.h"
#include "proto/http/server_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char sock_path[256], www[256];

/* The content of a file outside the served folder: never sent. */
#define SECRET "secret-5d41402abc4b2a76"
static ax_http_server *srv;

/* ---- the folder ------------------------------------------------------- */

static void put_file(const char *rel, const char *text, size_t len)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", www, rel);
    FILE *f = fopen(p, "w");
    FZ_CHECK(f != NULL);
    FZ_CHECK(fwrite(text, 1, len, f) == len);
    fclose(f);
}

static void make_www(void)
{
    char p[512], big[3000];
    fz_path("www", www, sizeof www);
    FZ_CHECK(mkdir(www, 0755) == 0);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    put_file("a.txt", big, sizeof big);
    put_file("b.html", "<p>b</p>\n", 9);
    /* not real gzip: the server sends it as it is */
    put_file("b.html.gz", "\x1f\x8b\x08\x00\x00\x00\x00\x00", 8);
    snprintf(p, sizeof p, "%s/d", www);
    FZ_CHECK(mkdir(p, 0755) == 0);
    put_file("d/index.html", "<p>d</p>\n", 9);
    snprintf(p, sizeof p, "%s/e", www);
    FZ_CHECK(mkdir(p, 0755) == 0);
    put_file("e/x y&<z>.txt", "x\n", 2);
    snprintf(p, sizeof p, "%s/out", www);
    FZ_CHECK(symlink("/etc", p) == 0);
    snprintf(p, sizeof p, "%s/in", www);
    FZ_CHECK(symlink("a.txt", p) == 0);
    /* a file next to the folder, and a way out to it */
    char secret[256];
    FILE *f = fopen(fz_path("secret.txt", secret, sizeof secret), "w");
    FZ_CHECK(f != NULL);
    fputs(SECRET "\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/up", www);
    FZ_CHECK(symlink("..", p) == 0);
}

/* ---- handlers ---------------------------------------------------------- */

static bool query_has(ax_http_req *r, const char *word)
{
    size_t ql;
    const char *q = ax_http_req_query(r, &ql);
    size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= ql; i++)
        if (memcmp(q + i, word, wl) == 0) return true;
    return false;
}

static void echo(ax_http_req *r, void *ud)
{
    (void)ud;
    size_t bl, ql;
    const char *body = ax_http_req_body(r, &bl);
    const char *q = ax_http_req_query(r, &ql);
    if (query_has(r, "close")) ax_http_set_close(r);
    char v[256];
    if (ql > 4 && ql - 4 < sizeof v && memcmp(q, "hdr=", 4) == 0 &&
        ax__http_path_decode(q + 4, ql - 4, v) >= 0)
        ax_http_add_header(r, "X-Echo", v); /* refused when it holds CR or LF */
    if (query_has(r, "chunk")) {
        FZ_CHECK(ax_http_start(r, 200, -1) == 0);
        ax_http_write(r, body, bl / 2);
        ax_http_write(r, body + bl / 2, bl - bl / 2);
        ax_http_end(r);
        return;
    }
    ax_http_respond(r, 200, "application/octet-stream", body, bl);
}

/* One request at a time per connection, one connection per run: the
 * state of the pending asynchronous one fits in statics. */
static ax_http_req *later_req;
static int later_posts;

static void later_abort(ax_http_req *r, void *ud)
{
    (void)ud;
    FZ_CHECK(r == later_req);
    later_req = NULL;
}

static void later_fire(ax_loop *loop, void *arg)
{
    (void)loop, (void)arg;
    later_posts--;
    if (!later_req) return;
    ax_http_req *r = later_req;
    later_req = NULL;
    ax_http_respond(r, 200, "text/plain", "later\n", 6);
}

static void later(ax_http_req *r, void *ud)
{
    (void)ud;
    FZ_CHECK(later_req == NULL);
    later_req = r;
    ax_http_on_abort(r, later_abort, NULL);
    later_posts++;
    FZ_CHECK(ax_loop_post(fz_loop(), later_fire, NULL) == 0);
}

#define BIG_LEN (256u << 10)
static ax_http_req *big_req;
static size_t big_sent;

static void big_abort(ax_http_req *r, void *ud)
{
    (void)r, (void)ud;
    big_req = NULL;
}

static void big_more(ax_http_req *r, void *ud)
{
    static char block[16384];
    (void)ud;
    while (big_sent < BIG_LEN) {
        memset(block, 'A' + (int)(big_sent / sizeof block) % 26, sizeof block);
        int rc = ax_http_write(r, block, sizeof block);
        if (rc < 0) return; /* the connection is going: abort comes */
        big_sent += sizeof block;
        if (rc == 1) return; /* on_drain calls again */
    }
    big_req = NULL;
    ax_http_end(r);
}

static void big(ax_http_req *r, void *ud)
{
    (void)ud;
    FZ_CHECK(big_req == NULL);
    big_req = r;
    big_sent = 0;
    ax_http_on_abort(r, big_abort, NULL);
    ax_http_on_drain(r, big_more, NULL);
    FZ_CHECK(ax_http_start(r, 200, BIG_LEN) == 0);
    big_more(r, NULL);
}

static struct upload {
    ax_http_req *r; /* until answered or aborted */
    uint64_t bytes;
    bool paused;
    bool no_body; /* so the end comes at once */
} up;
static int up_posts;

static void up_answer(void)
{
    char msg[64];
    int n = snprintf(msg, sizeof msg, "%llu bytes\n", (unsigned long long)up.bytes);
    ax_http_req *r = up.r;
    up.r = NULL;
    ax_http_respond(r, 200, "text/plain", msg, (size_t)n);
}

static void up_abort(ax_http_req *r, void *ud)
{
    (void)r, (void)ud;
    up.r = NULL;
}

static void up_resume(ax_loop *loop, void *arg)
{
    (void)loop, (void)arg;
    up_posts--;
    if (!up.r || !up.paused) return;
    up.paused = false;
    ax_http_req_resume_body(up.r);
}

static void up_body(ax_http_req *r, const char *data, size_t len, void *ud)
{
    (void)ud;
    if (!up.r) return;                               /* answered early: the server drops the rest */
    FZ_CHECK(r == up.r && (len == 0 || !up.paused)); /* the end may come while paused */
    FZ_CHECK((len == 0) == (data == NULL));
    up.bytes += len;
    if (len == 0) up_answer();
}

static void upload(ax_http_req *r, void *ud)
{
    (void)ud;
    FZ_CHECK(up.r == NULL);
    size_t cl, tl;
    const char *c = ax_http_req_header(r, "Content-Length", &cl);
    up = (struct upload){.r = r, .no_body = !ax_http_req_header(r, "Transfer-Encoding", &tl)};
    for (size_t i = 0; c && i < cl; i++)
        up.no_body &= c[i] == '0';
    ax_http_on_abort(r, up_abort, NULL);
    ax_http_req_on_body(r, up_body, NULL);
    if (query_has(r, "early")) {
        up_answer();
    } else if (query_has(r, "pause")) {
        up.paused = true;
        ax_http_req_pause_body(r);
        up_posts++;
        FZ_CHECK(ax_loop_post(fz_loop(), up_resume, NULL) == 0);
    }
}

/* ---- WebSocket echo ---------------------------------------------------- */

#define MAX_WS 8
static ax_ws *wss[MAX_WS];
static int nws;

static void ws_open(ax_ws *ws)
{
    FZ_CHECK(nws < MAX_WS);
    wss[nws++] = ws;
}

static void ws_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    int rc = ax_ws_send(ws, data, len, binary);
    (void)rc; /* any outcome is fine for the fuzzer; crashes are not */
}

static void ws_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    (void)code, (void)reason, (void)len;
    for (int i = 0; i < nws; i++)
        if (wss[i] == ws) {
            wss[i] = wss[--nws];
            return;
        }
    FZ_CHECK(!"on_close for an unknown WebSocket");
}

static const char *const protos[] = {"chat", "axon.v1", NULL};
static const ax_ws_cbs ws_cbs = {
    .on_open = ws_open, .on_message = ws_message, .on_close = ws_close};
static const ax_ws_opts ws_opts = {
    .max_message = 65536, .deflate = true, .deflate_min_size = 8, .protocols = protos};
static const ax_ws_endpoint ws_ep = {.cbs = &ws_cbs, .opts = &ws_opts};

/* ---- what came back ------------------------------------------------------ */

static void check_responses(const fz_out *o)
{
    size_t off = 0;
    while (off < o->len) {
        ax_http_header hd[32];
        ax_http_head h = {.headers = hd, .headers_cap = 32};
        ax_http_parser p;
        ax_http_parser_init(&p, AX_HTTP_RESPONSE, NULL);
        int n = ax_http_parse_head(&p, o->buf + off, o->len - off, &h);
        if (n == AX_HTTP_INCOMPLETE) {
            FZ_CHECK(o->len ==
                     o->cap); /* the server ended mid-head: only when we stopped keeping */
            return;
        }
        FZ_CHECK(n > 0);
        off += (size_t)n;
        if (h.status == 101) return; /* WebSocket frames follow */
        ax_http_body b;
        ax_http_body_init(&b, h.framing, h.content_length, NULL);
        while (!ax_http_body_done(&b)) {
            ax_http_str d;
            int k = ax_http_body_parse(&b, o->buf + off, o->len - off, &d);
            if (k == AX_HTTP_INCOMPLETE || (k == 0 && h.framing == AX_HTTP_BODY_UNTIL_CLOSE))
                return; /* cut short by an abort, or the rest is the body */
            FZ_CHECK(k > 0 || (k == 0 && ax_http_body_done(&b)));
            off += (size_t)k;
        }
    }
}

/* ---- one run ------------------------------------------------------------ */

static void start_server(void)
{
    int err = 0;
    ax_http_opts o = {.max_body = 8192, .max_header_bytes = 2048};
    srv = ax_http_server_new(fz_loop(), &o, &err);
    FZ_CHECK(srv != NULL);
    ax_http_route_opts so = {.stream_body = true, .max_body = 65536};
    FZ_CHECK(ax_http_route(srv, NULL, "/echo", echo, NULL) == 0);
    FZ_CHECK(ax_http_route(srv, "GET", "/later", later, NULL) == 0);
    FZ_CHECK(ax_http_route(srv, "GET", "/big", big, NULL) == 0);
    FZ_CHECK(ax_http_route_ex(srv, "POST", "/upload", upload, NULL, &so) == 0);
    FZ_CHECK(ax_http_serve_dir(srv, "/static", www, AX_HTTP_DIR_LIST) == 0);
    FZ_CHECK(ax_ws_route(srv, "/ws", &ws_ep) == 0);
    unlink(sock_path);
    char url[300];
    snprintf(url, sizeof url, "unix://%s", sock_path);
    FZ_CHECK(ax_http_listen(srv, url, NULL, &err) != NULL);
}

static void stop_server(void)
{
    ax_loop *loop = fz_loop();
    FZ_CHECK(!(up.r && up.no_body)); /* a request without a body was never ended */
    ax_http_server_free(srv);        /* the aborts come on the next turn */
    srv = NULL;
    for (int i = 0; i < nws; i++) /* upgraded: no longer the server's */
        ax_conn_abort(ax_ws_conn(wss[i]), AX_ECLOSED);
    for (int i = 0; i < 100 && (nws || later_posts || up_posts || later_req || big_req || up.r);
         i++)
        ax_loop_run_once(loop, 0);
    FZ_CHECK(later_req == NULL && big_req == NULL && up.r == NULL);
    FZ_CHECK(nws == 0 && later_posts == 0 && up_posts == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536) return 0;
    if (!www[0]) {
        make_www();
        fz_path("http.sock", sock_path, sizeof sock_path);
    }
    size_t step = data[0] & 0x80 ? (size_t)(1 + (data[0] & 63)) : size;
    static char obuf[1 << 20];
    fz_out o = {.buf = obuf, .cap = sizeof obuf};
    start_server();
    int fd = fz_talk(sock_path, data + 1, size - 1, step, &o);
    close(fd);
    fz_settle(fz_loop(), -1, &o, 8);
    stop_server();
    fz_dump(&o);
    if (!memmem(data, size, "HEAD", 4)) check_responses(&o);
    if (!memmem(data, size, SECRET, sizeof SECRET - 1))
        FZ_CHECK(!memmem(o.buf, o.len, SECRET, sizeof SECRET - 1));
    return 0;
}
