/* test_http_stream_empty.c: a streaming route (stream_body) gets the end
 * of the body, ax_http_req_on_body()'s call with no data, also for a
 * request without a body (no Content-Length, or 0).  It used to come only
 * after body bytes, so a handler that answers at the end never answered
 * and the request waited for the peer forever (found by fuzz_http_server). */
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/http.h>

#include "runner.h"
#include "testutil.h"

static int ends;

static void se_body(ax_http_req *r, const char *d, size_t n, void *ud)
{
    (void)ud;
    if (d) return;
    ASSERT_EQ(n, 0);
    ends++;
    ax_http_respond(r, 200, "text/plain", "end\n", 4);
}

static void se_handler(ax_http_req *r, void *ud)
{
    ax_http_req_on_body(r, se_body, ud);
}

TEST(http_stream_route_empty_body_ends)
{
    int err = 0;
    ax_loop *loop = tu_loop();
    ax_http_server *srv = ax_http_server_new(loop, NULL, &err);
    ASSERT(srv != NULL);
    ax_http_route_opts so = {.stream_body = true};
    ASSERT_EQ(ax_http_route_ex(srv, "POST", "/up", se_handler, NULL, &so), 0);
    ax_listener *l = ax_http_listen(srv, "tcp://127.0.0.1:0", NULL, &err);
    ASSERT(l != NULL);
    int fd = tu_connect(ax_listener_addr(l), 0);
    static const char req[] = "POST /up HTTP/1.1\r\nHost: x\r\n\r\n"
                              "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                              "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\nhi";
    tu_write_all(fd, req, sizeof req - 1);
    char out[2048];
    ssize_t n = tu_loop_read_to_eof(loop, fd, out, sizeof out, 3000);
    ASSERT(n > 0);
    out[n] = '\0';
    ASSERT_EQ(ends, 3);
    int responses = 0;
    for (const char *p = out; (p = strstr(p, "\r\n\r\nend\n")); p++)
        responses++;
    ASSERT_EQ(responses, 3);
    close(fd);
    ax_http_server_free(srv);
    ax_loop_free(loop);
}
