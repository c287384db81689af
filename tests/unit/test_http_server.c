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

/* Of routes with the same prefix the one added last serves (an echo laid
 * over a folder at "/"); a longer prefix still wins whatever the order. */
TEST(http_server_routes_same_prefix_last_wins)
{
    fixture f;
    fx_start(&f);
    ax_http_route(f.srv, "GET", "/a/b", named, "ab");
    ax_http_route(f.srv, NULL, "/", named, "first");
    ax_http_route(f.srv, NULL, "/", named, "second");
    ax_http_route(f.srv, NULL, "/a", named, "a");
    char buf[2048];
    struct {
        const char *req, *want;
    } cases[] = {
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "second"},
        {"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "second"},
        {"GET /a/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a"},
        {"GET /a/b/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "ab"},
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

/* ---- streamed request bodies ------------------------------------------- */

typedef struct upload {
    fixture *f;
    ax_http_req *r;
    uint64_t bytes, sum;
    int calls, ends, pause_every;
    ax_timer *resume;
    char first[8];
} upload;

static upload UP;

static void up_resume(ax_timer *t, void *ud)
{
    upload *u = ud;
    ax_http_req_resume_body(u->r);
}

static void up_body(ax_http_req *r, const char *d, size_t n, void *ud)
{
    upload *u = ud;
    if (!d) {
        ASSERT_EQ(n, 0);
        u->ends++;
        size_t ml;
        const char *m = ax_http_req_method(r, &ml); /* fields live until the answer */
        char out[96];
        int k = snprintf(out, sizeof out, "%.*s %llu bytes sum %llu in %d", (int)ml, m,
                         (unsigned long long)u->bytes, (unsigned long long)u->sum, u->calls);
        ax_http_respond(r, 200, "text/plain", out, (size_t)k);
        return;
    }
    if (!u->calls) memcpy(u->first, d, n < 7 ? n : 7);
    u->calls++;
    u->bytes += n;
    for (size_t i = 0; i < n; i++)
        u->sum += (unsigned char)d[i];
    if (u->pause_every && u->calls % u->pause_every == 0) {
        ax_http_req_pause_body(r);
        ax_timer_start(u->resume, 5, 0);
    }
}

static void up_handler(ax_http_req *r, void *ud)
{
    upload *u = ud;
    u->r = r;
    ax_http_req_on_body(r, up_body, u);
}

static void up_refuse(ax_http_req *r, void *ud)
{
    ax_http_respond(r, 403, "text/plain", "no\n", 3); /* before the body */
}

static void up_start(fixture *f, uint64_t max)
{
    fx_start(f);
    memset(&UP, 0, sizeof UP);
    UP.f = f;
    UP.resume = ax_timer_new(f->loop, up_resume, &UP);
    ax_http_route_opts o = {.stream_body = true, .max_body = max};
    ASSERT_EQ(ax_http_route_ex(f->srv, "POST", "/up", up_handler, &UP, &o), 0);
    ASSERT_EQ(ax_http_route_ex(f->srv, "PUT", "/refuse", up_refuse, &UP, &o), 0);
    ASSERT_EQ(ax_http_route(f->srv, "GET", "/fast", fast, f), 0);
}

static void up_stop(fixture *f)
{
    ax_timer_free(UP.resume);
    fx_stop(f);
}

TEST(http_server_stream_body_chunked_then_pipelined)
{
    fixture f;
    up_start(&f, 0);
    char buf[4096];
    exchange(&f,
             "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n"
             "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             buf, sizeof buf);
    const char *a = strstr(buf, "POST 7 bytes sum 700 in 2"), *b = strstr(buf, "/fast");
    ASSERT(a != NULL);
    ASSERT(b != NULL && a < b);
    ASSERT_EQ(UP.ends, 1);
    ASSERT_STREQ(UP.first, "abc");
    up_stop(&f);
}

TEST(http_server_stream_body_answer_before_body)
{
    fixture f;
    up_start(&f, 0);
    static char req[20000];
    int n = snprintf(req, sizeof req,
                     "PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n");
    memset(req + n, 'G', 10000); /* looks like a request if it were not skipped */
    snprintf(req + n + 10000, sizeof req - (size_t)n - 10000,
             "GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    char buf[4096];
    exchange(&f, req, buf, sizeof buf);
    const char *a = strstr(buf, "HTTP/1.1 403"), *b = strstr(buf, "HTTP/1.1 200");
    ASSERT(a != NULL);
    ASSERT(b != NULL && a < b);
    ASSERT(strstr(buf, "400") == NULL);
    up_stop(&f);
}

TEST(http_server_stream_body_pause_resume_large)
{
    fixture f;
    up_start(&f, 4u << 20); /* above the server's 1 MiB: streaming routes pick their own */
    UP.pause_every = 3;     /* the last piece may be a paused one: the end still comes */
    size_t body = 1500000;
    int fd = tu_connect(ax_listener_addr(f.l), 0);
    char head[128];
    int hn = snprintf(
        head, sizeof head,
        "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", body);
    tu_write_all(fd, head, (size_t)hn);
    static char chunk[65536];
    memset(chunk, 1, sizeof chunk);
    size_t sent = 0;
    char out[512];
    size_t got = 0;
    uint64_t deadline = tu_now_ms() + 10000;
    for (;;) {
        ASSERT(tu_now_ms() < deadline);
        if (sent < body) {
            size_t k = body - sent < sizeof chunk ? body - sent : sizeof chunk;
            ssize_t w = send(fd, chunk, k, MSG_DONTWAIT);
            if (w > 0) sent += (size_t)w;
        }
        ax_loop_run_once(f.loop, 1);
        ssize_t n = recv(fd, out + got, sizeof out - 1 - got, MSG_DONTWAIT);
        if (n == 0) break;
        if (n > 0) got += (size_t)n;
    }
    out[got] = '\0';
    close(fd);
    char want[64];
    snprintf(want, sizeof want, "POST %zu bytes sum %zu", body, body);
    ASSERT(strstr(out, want) != NULL);
    ASSERT(UP.calls > 6); /* it really paused and came back several times */
    up_stop(&f);
}

TEST(http_server_stream_body_limit_413)
{
    fixture f;
    up_start(&f, 1000);
    char buf[4096];
    exchange(&f, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", buf, sizeof buf);
    ASSERT(strstr(buf, "HTTP/1.1 413") != NULL);
    static char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3e8\r\n");
    memset(req + n, 'x', 1000);
    snprintf(req + n + 1000, sizeof req - (size_t)n - 1000, "\r\n1\r\ny\r\n0\r\n\r\n");
    exchange(&f, req, buf, sizeof buf);
    ASSERT(strstr(buf, "HTTP/1.1 413") != NULL);
    ASSERT_EQ(UP.ends, 0);
    up_stop(&f);
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

/* One keep-alive round trip: the fast handler's body is the path, so the
 * response is complete once it ends with it. */
static size_t roundtrip(fixture *f, int fd, const char *path)
{
    char req[128], out[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    tu_write_all(fd, req, (size_t)n);
    size_t got = 0, pl = strlen(path);
    uint64_t deadline = tu_now_ms() + 5000;
    while (got < pl || memcmp(out + got - pl, path, pl) != 0 || !strstr(out, "\r\n\r\n")) {
        ASSERT(tu_now_ms() < deadline);
        ax_loop_run_once(f->loop, 5);
        ssize_t k = recv(fd, out + got, sizeof out - 1 - got, MSG_DONTWAIT);
        ASSERT(k != 0);
        if (k > 0) got += (size_t)k;
        out[got] = '\0';
    }
    return got;
}

static size_t up_data(ax_conn *c, const char *d, size_t n)
{
    (void)c;
    (void)d;
    return n;
}

static const ax_conn_cbs up_cbs = {.on_data = up_data};

static void upgrader(ax_http_req *r, void *ud)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    (void)ud;
    ASSERT_EQ(ax_http_upgrade(r, head, sizeof head - 1, &up_cbs, NULL), 0);
}

TEST(http_server_stats)
{
    fixture f;
    int err = 0;
    ax_http_stats shared = {0}, st;
    memset(&f, 0, sizeof(f));
    f.loop = tu_loop();
    ax_http_opts o = {.stats = &shared};
    f.srv = ax_http_server_new(f.loop, &o, &err);
    ASSERT(f.srv != NULL);
    f.l = ax_http_listen(f.srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(f.l != NULL);
    ax_http_route(f.srv, "GET", "/", fast, &f);
    ax_http_route(f.srv, "GET", "/up", upgrader, &f);
    ax_http_server_stats(f.srv, &st);
    ASSERT(st.conns_open == 0 && st.conns_accepted == 0 && st.requests == 0 && st.bytes_in == 0);

    int a = tu_connect(ax_listener_addr(f.l), 0), b = tu_connect(ax_listener_addr(f.l), 0);
    size_t sent = 0, recvd = 0;
    recvd += roundtrip(&f, a, "/one");
    recvd += roundtrip(&f, b, "/two");
    recvd += roundtrip(&f, a, "/three");
    sent += 3 * strlen("GET  HTTP/1.1\r\nHost: x\r\n\r\n") + strlen("/one/two/three");
    ax_http_server_stats(f.srv, &st);
    ASSERT_EQ(st.conns_open, 2);
    ASSERT_EQ(st.conns_accepted, 2);
    ASSERT_EQ(st.requests, 3);
    ASSERT_EQ(st.bytes_in, sent);
    ASSERT_EQ(st.bytes_out, recvd); /* the server's view of what the client read */
    /* the shared counters agree once ax_http_server_stats() credited the rest */
    ASSERT_EQ(__atomic_load_n(&shared.bytes_out, __ATOMIC_RELAXED), recvd);
    ASSERT_EQ(__atomic_load_n(&shared.conns_open, __ATOMIC_RELAXED), 2);

    uint64_t out_before = st.bytes_out;
    recvd += roundtrip(&f, b, "/four");
    ax_http_server_stats(f.srv, &st);
    ASSERT(st.bytes_out > out_before);
    ASSERT_EQ(st.requests, 4);

    close(a);
    RUN_UNTIL(f.loop, (ax_http_server_stats(f.srv, &st), st.conns_open == 1), 2000);
    ASSERT_EQ(st.conns_accepted, 2);
    ASSERT_EQ(st.bytes_out, recvd); /* a closed connection's bytes stay */

    /* An upgrade leaves the server: what follows the 101 is not HTTP's. */
    int c = tu_connect(ax_listener_addr(f.l), 0);
    const char *up = "GET /up HTTP/1.1\r\nHost: x\r\n\r\nafter";
    tu_write_all(c, up, strlen(up));
    RUN_UNTIL(f.loop, (ax_http_server_stats(f.srv, &st), st.requests == 5 && st.conns_open == 1),
              2000);
    ASSERT_EQ(st.conns_accepted, 3);
    ASSERT_EQ(st.bytes_in, sent + strlen("GET /four HTTP/1.1\r\nHost: x\r\n\r\n") + strlen(up) -
                               strlen("after"));
    tu_write_all(c, "more websocket bytes", 20);
    for (int i = 0; i < 10; i++)
        ax_loop_run_once(f.loop, 5);
    ax_http_stats st2;
    ax_http_server_stats(f.srv, &st2);
    ASSERT_EQ(st2.bytes_in, st.bytes_in);

    ax_http_server_free(f.srv); /* b is still open: it leaves the shared gauge */
    ASSERT_EQ(__atomic_load_n(&shared.conns_open, __ATOMIC_RELAXED), 0);
    ASSERT_EQ(__atomic_load_n(&shared.conns_accepted, __ATOMIC_RELAXED), 3);
    ASSERT_EQ(__atomic_load_n(&shared.bytes_in, __ATOMIC_RELAXED), st.bytes_in);
    close(b);
    close(c);
    ax_loop_free(f.loop);
}

/* Requests the server refuses itself (malformed, smuggling, bad version)
 * count in `refused`, not in `requests`, and in a shared opts.stats. */
TEST(http_server_counts_refused)
{
    fixture f;
    int err = 0;
    ax_http_stats shared = {0}, st;
    memset(&f, 0, sizeof(f));
    f.loop = tu_loop();
    ax_http_opts o = {.stats = &shared};
    f.srv = ax_http_server_new(f.loop, &o, &err);
    ASSERT(f.srv != NULL);
    f.l = ax_http_listen(f.srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(f.l != NULL);
    ax_http_route(f.srv, "GET", "/", fast, &f);
    static const char *bad[] = {"GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
                                "GET / HTTP/3.0\r\nHost: x\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int d = tu_connect(ax_listener_addr(f.l), 0);
        char buf[512];
        tu_write_all(d, bad[i], strlen(bad[i]));
        ASSERT(tu_loop_read_to_eof(f.loop, d, buf, sizeof buf, 2000) > 0);
        close(d);
    }
    int a = tu_connect(ax_listener_addr(f.l), 0);
    roundtrip(&f, a, "/good");
    ax_http_server_stats(f.srv, &st);
    ASSERT_EQ(st.refused, 3);
    ASSERT_EQ(st.requests, 1);
    ASSERT_EQ(__atomic_load_n(&shared.refused, __ATOMIC_RELAXED), 3);
    close(a);
    ax_http_server_free(f.srv);
    ax_loop_free(f.loop);
}

/* Every status code a standard defines has its reason phrase: a plain GET
 * on a WebSocket route got "426 Unknown". */
TEST(http_status_text_standard_codes)
{
    static const int codes[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302, 303,
                                304, 305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
                                409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 425, 426,
                                428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 511};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(ax_http_status_text(codes[i]), "Unknown") == 0) {
            char what[64];
            snprintf(what, sizeof what, "no reason phrase for %d", codes[i]);
            ASSERT_STREQ(what, "");
        }
    ASSERT_STREQ(ax_http_status_text(426), "Upgrade Required");
    ASSERT_STREQ(ax_http_status_text(409), "Conflict");
    ASSERT_STREQ(ax_http_status_text(599), "Unknown");
}

/* Connection hooks (ax_http_opts.on_conn_open, on_conn_close): the data
 * one returns is the connection's for every request; a refused connection
 * gets the hook's answer, then the server's FIN, and is not counted; the
 * close hook runs once, at the close, at an upgrade (the connection leaves
 * the server) or when the server is freed. */
typedef struct hooks {
    int opened, closed, refuse;
    int data; /* its address is the connections' data */
    void *closed_with;
} hooks;

static void *hook_open(ax_conn *c, void *ud, bool *refuse)
{
    hooks *h = ud;
    if (h->refuse) {
        ASSERT(ax_conn_write(c, "NO\n", 3) >= 0);
        *refuse = true;
        return NULL;
    }
    h->opened++;
    return &h->data;
}

static void hook_close(ax_conn *c, void *data, void *ud)
{
    hooks *h = ud;
    (void)c;
    h->closed++;
    h->closed_with = data;
}

static void data_echo(ax_http_req *r, void *ud)
{
    hooks *h = ud;
    const char *yes = ax_http_req_conn_data(r) == &h->data ? "/yes" : "/no";
    ax_http_respond(r, 200, "text/plain", yes, strlen(yes));
}

TEST(http_server_conn_hooks)
{
    fixture f;
    hooks h = {0};
    int err = 0;
    ax_http_stats st;
    memset(&f, 0, sizeof(f));
    f.loop = tu_loop();
    ax_http_opts o = {.on_conn_open = hook_open, .on_conn_close = hook_close, .hook_ud = &h};
    f.srv = ax_http_server_new(f.loop, &o, &err);
    ASSERT(f.srv != NULL);
    f.l = ax_http_listen(f.srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(f.l != NULL);
    ax_http_route(f.srv, "GET", "/", data_echo, &h);
    ax_http_route(f.srv, "GET", "/up", upgrader, &f);

    int a = tu_connect(ax_listener_addr(f.l), 0);
    roundtrip(&f, a, "/yes"); /* the handler saw the hook's data */
    roundtrip(&f, a, "/yes");
    ASSERT_EQ(h.opened, 1);
    ASSERT_EQ(h.closed, 0);

    h.refuse = 1;
    char out[256];
    size_t n = exchange(&f, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof out);
    ASSERT_EQ(n, 3);
    ASSERT(strcmp(out, "NO\n") == 0); /* the hook's answer, no request read */
    ax_http_server_stats(f.srv, &st);
    ASSERT_EQ(st.conns_accepted, 1);
    ASSERT_EQ(st.requests, 2);
    ASSERT_EQ(h.closed, 0);
    h.refuse = 0;

    close(a);
    RUN_UNTIL(f.loop, h.closed == 1, 2000);
    ASSERT(h.closed_with == &h.data);

    int c = tu_connect(ax_listener_addr(f.l), 0);
    const char *up = "GET /up HTTP/1.1\r\nHost: x\r\n\r\n";
    tu_write_all(c, up, strlen(up));
    RUN_UNTIL(f.loop, h.closed == 2, 2000); /* at the upgrade */
    ASSERT_EQ(h.opened, 2);

    int b = tu_connect(ax_listener_addr(f.l), 0);
    RUN_UNTIL(f.loop, h.opened == 3, 2000);
    ax_http_server_free(f.srv); /* b is open: its data is given back */
    ASSERT_EQ(h.closed, 3);
    close(b);
    close(c);
    ax_loop_free(f.loop);
}
