/* test_http_server.c: the HTTP server driven in-process: async and chunked
 * responses, pipelining order behind a slow response, routing, abort
 * callbacks, and the helpers (paths, dates, MIME types). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/http.h>

#include "proto/http/server_internal.h"
#include "runner.h"
#include "testutil.h"

typedef struct fixture {
    ax_loop *loop;
    ax_http_server *srv;
    ax_listener *l;
    ax_timer *timer;
    ax_http_req *pending;
    int chunks;
    int aborted;
    char seen[64];
} fixture;

static void fx_start(fixture *f)
{
    int err = 0;
    memset(f, 0, sizeof(*f));
    f->loop = tu_loop();
    f->srv = ax_http_server_new(f->loop, NULL, &err);
    ASSERT(f->srv != NULL);
    f->l = ax_http_listen(f->srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(f->l != NULL);
}

static void fx_stop(fixture *f)
{
    if (f->timer) ax_timer_free(f->timer);
    ax_http_server_free(f->srv);
    ax_loop_free(f->loop);
}

/* Send `req`, drive the loop until the server closes, return what came. */
static size_t exchange(fixture *f, const char *req, char *out, size_t cap)
{
    int fd = tu_connect(ax_listener_addr(f->l), 0);
    tu_write_all(fd, req, strlen(req));
    size_t got = 0;
    uint64_t deadline = tu_now_ms() + 5000;
    for (;;) {
        ASSERT(tu_now_ms() < deadline);
        ax_loop_run_once(f->loop, 5);
        ssize_t n = recv(fd, out + got, cap - 1 - got, MSG_DONTWAIT);
        if (n == 0) break;
        if (n > 0)
            got += (size_t)n;
        else
            ASSERT(errno == EAGAIN || errno == EWOULDBLOCK);
    }
    out[got] = '\0';
    close(fd);
    return got;
}

static void tick(ax_timer *t, void *ud)
{
    fixture *f = ud;
    char piece[16];
    int n = snprintf(piece, sizeof piece, "part%d;", f->chunks);
    ASSERT(ax_http_write(f->pending, piece, (size_t)n) >= 0);
    if (++f->chunks == 3) {
        ax_timer_stop(t);
        ax_http_end(f->pending);
        f->pending = NULL;
    }
}

/* Streams three chunks from a timer, after the handler has returned. */
static void streamer(ax_http_req *r, void *ud)
{
    fixture *f = ud;
    ax_http_add_header(r, "Content-Type", "text/plain");
    ASSERT_EQ(ax_http_start(r, 200, -1), 0);
    f->pending = r;
    f->chunks = 0;
    if (!f->timer) f->timer = ax_timer_new(f->loop, tick, f);
    ax_timer_start(f->timer, 20, 20);
}

static void fast(ax_http_req *r, void *ud)
{
    size_t n;
    const char *p = ax_http_req_path(r, &n);
    ax_http_respond(r, 200, "text/plain", p, n);
}

TEST(http_server_chunked_async)
{
    fixture f;
    fx_start(&f);
    ASSERT_EQ(ax_http_route(f.srv, "GET", "/stream", streamer, &f), 0);
    char buf[4096];
    exchange(&f, "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ASSERT(strstr(buf, "Transfer-Encoding: chunked\r\n") != NULL);
    const char *body = strstr(buf, "\r\n\r\n");
    ASSERT(body != NULL);
    ASSERT_STREQ(body + 4, "6\r\npart0;\r\n6\r\npart1;\r\n6\r\npart2;\r\n0\r\n\r\n");
    fx_stop(&f);
}

TEST(http_server_pipelined_behind_async)
{
    fixture f;
    fx_start(&f);
    ASSERT_EQ(ax_http_route(f.srv, "GET", "/stream", streamer, &f), 0);
    ASSERT_EQ(ax_http_route(f.srv, "GET", "/fast", fast, &f), 0);
    char buf[4096];
    exchange(&f,
             "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /fast/1 HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /fast/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             buf, sizeof buf);
    char *a = strstr(buf, "part2;"), *b = strstr(buf, "/fast/1"), *c = strstr(buf, "/fast/2");
    ASSERT(a && b && c);
    ASSERT(a < b && b < c);
    fx_stop(&f);
}

TEST(http_server_head_and_http10_streaming)
{
    fixture f;
    fx_start(&f);
    ASSERT_EQ(ax_http_route(f.srv, NULL, "/stream", streamer, &f), 0);
    char buf[4096];
    exchange(&f, "HEAD /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    const char *body = strstr(buf, "\r\n\r\n");
    ASSERT(body && body[4] == '\0'); /* no chunks after a HEAD head */
    exchange(&f, "GET /stream HTTP/1.0\r\n\r\n", buf, sizeof buf);
    ASSERT(strstr(buf, "Transfer-Encoding") == NULL); /* 1.0: the close ends it */
    body = strstr(buf, "\r\n\r\n");
    ASSERT_STREQ(body + 4, "part0;part1;part2;");
    fx_stop(&f);
}

static void named(ax_http_req *r, void *ud)
{
    ax_http_respond(r, 200, NULL, ud, strlen(ud));
}

TEST(http_server_routes_longest_prefix)
{
    fixture f;
    fx_start(&f);
    ax_http_route(f.srv, NULL, "/", named, "root");
    ax_http_route(f.srv, "GET", "/api", named, "api");
    ax_http_route(f.srv, "GET", "/api/v2/", named, "v2");
    char buf[2048];
    struct {
        const char *req, *want;
    } cases[] = {
        {"GET /api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "api"},
        {"GET /api/x?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "api"},
        {"GET /apix HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "root"},
        {"GET /api/v2/y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "v2"},
        {"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "root"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exchange(&f, cases[i].req, buf, sizeof buf);
        const char *body = strstr(buf, "\r\n\r\n");
        ASSERT(body != NULL);
        ASSERT_STREQ(body + 4, cases[i].want);
    }
    fx_stop(&f);
}

TEST(http_server_404_405)
{
    fixture f;
    fx_start(&f);
    ax_http_route(f.srv, "GET", "/only", named, "x");
    char buf[2048];
    exchange(&f, "GET /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ASSERT(strncmp(buf, "HTTP/1.1 404 Not Found\r\n", 24) == 0);
    exchange(&f, "DELETE /only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", buf, sizeof buf);
    ASSERT(strncmp(buf, "HTTP/1.1 405 ", 13) == 0);
    fx_stop(&f);
}

static void on_abort(ax_http_req *r, void *ud)
{
    fixture *f = ud;
    (void)r;
    f->aborted++;
    f->pending = NULL;
    ax_timer_stop(f->timer);
}

static void never_ends(ax_http_req *r, void *ud)
{
    fixture *f = ud;
    ASSERT(ax_http_add_header(r, "X-Bad", "a\r\nInjected: 1") == AX_EINVAL);
    ax_http_start(r, 200, -1);
    ax_http_on_abort(r, on_abort, f);
    f->pending = r;
}

TEST(http_server_abort_callback)
{
    fixture f;
    fx_start(&f);
    f.timer = ax_timer_new(f.loop, tick, &f);
    ax_http_route(f.srv, "GET", "/", never_ends, &f);
    int fd = tu_connect(ax_listener_addr(f.l), 0);
    const char *req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    tu_write_all(fd, req, strlen(req));
    RUN_UNTIL(f.loop, f.pending != NULL, 2000);
    close(fd);
    /* Reading is paused while a response is pending: the close shows when
     * a write fails. */
    uint64_t deadline = tu_now_ms() + 3000;
    while (!f.aborted) {
        ASSERT(tu_now_ms() < deadline);
        if (f.pending) ax_http_write(f.pending, "tick\n", 5);
        ax_loop_run_once(f.loop, 10);
    }
    fx_stop(&f);
}

static void body_len(ax_http_req *r, void *ud)
{
    size_t n;
    const char *b = ax_http_req_body(r, &n);
    char out[64];
    int k = snprintf(out, sizeof out, "%zu:%.*s", n, (int)(n > 10 ? 10 : n), b);
    ax_http_respond(r, 200, NULL, out, (size_t)k);
}

TEST(http_server_bodies)
{
    fixture f;
    fx_start(&f);
    ax_http_route(f.srv, NULL, "/", body_len, &f);
    char buf[2048];
    exchange(&f,
             "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"
             "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
             buf, sizeof buf);
    const char *a = strstr(buf, "7:abcdefg"), *b = strstr(buf, "2:hi");
    ASSERT(a && b && a < b);
    fx_stop(&f);
}

TEST(http_path_helpers)
{
    char out[64];
    ASSERT_EQ(ax__http_path_decode("/a%20b", 6, out), 4);
    ASSERT_STREQ(out, "/a b");
    ASSERT_EQ(ax__http_path_decode("/%2e%2E/x", 9, out), 5);
    ASSERT_STREQ(out, "/../x");
    ASSERT_EQ(ax__http_path_decode("/a%00", 5, out), -1);
    ASSERT_EQ(ax__http_path_decode("/a%2", 4, out), -1);
    ASSERT_EQ(ax__http_path_decode("/a%zz", 5, out), -1);
    ASSERT(ax__http_path_has_dotdot("/../x", 5));
    ASSERT(ax__http_path_has_dotdot("/a/..", 5));
    ASSERT(ax__http_path_has_dotdot("..", 2));
    ASSERT(!ax__http_path_has_dotdot("/a..b/..c/", 10));
    ASSERT(!ax__http_path_has_dotdot("/.../x", 6));
}

TEST(http_date_roundtrip)
{
    char d[AX__HTTP_DATE_LEN + 1];
    ax__http_date(784111777, d);
    ASSERT_STREQ(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    time_t t;
    ASSERT_EQ(ax__http_parse_date(d, strlen(d), &t), 0);
    ASSERT_EQ(t, 784111777);
    ASSERT_EQ(ax__http_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", 30, &t), -1);
    ASSERT_EQ(ax__http_parse_date("Sun, 06 Xyz 1994 08:49:37 GMT", 29, &t), -1);
}

TEST(http_mime_types)
{
    ASSERT_STREQ(ax__http_mime("a/index.HTML", 12), "text/html; charset=utf-8");
    ASSERT_STREQ(ax__http_mime("x.png", 5), "image/png");
    ASSERT_STREQ(ax__http_mime("x.tar.gz", 8), "application/gzip");
    ASSERT_STREQ(ax__http_mime("README", 6), "application/octet-stream");
    ASSERT_STREQ(ax__http_mime("dir.d/file", 10), "application/octet-stream");
}
