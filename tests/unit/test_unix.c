/* Unix stream sockets: paths, abstract names, stale files, modes. */
#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

struct uclient {
    int opened, closed, reason;
    char buf[64];
    size_t got;
    const char *msg;
};

static void uc_open(ax_conn *c)
{
    struct uclient *u = ax_conn_data(c);
    u->opened++;
    ASSERT(ax_conn_listener(c) == NULL);
    ASSERT_EQ(ax_conn_write(c, u->msg, strlen(u->msg)), 0);
}

static size_t uc_data(ax_conn *c, const char *d, size_t n)
{
    struct uclient *u = ax_conn_data(c);
    ASSERT(u->got + n <= sizeof u->buf);
    memcpy(u->buf + u->got, d, n);
    u->got += n;
    if (u->got == strlen(u->msg)) ax_conn_close(c);
    return n;
}

static void uc_close(ax_conn *c, int reason)
{
    struct uclient *u = ax_conn_data(c);
    u->closed++;
    u->reason = reason;
}

static const ax_conn_cbs uc_cbs = {.on_open = uc_open, .on_data = uc_data, .on_close = uc_close};

static void sock_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", ax_test_tmpdir(), name);
}

static void echo_round_trip(ax_loop *loop, const char *url)
{
    struct uclient u = {.msg = "over a unix socket"};
    int err = 0;
    ax_conn *c = ax_connect(loop, url, &uc_cbs, NULL, &u, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(u.opened + u.closed, 0);
    RUN_UNTIL(loop, u.closed == 1, 3000);
    ASSERT_EQ(u.opened, 1);
    ASSERT_EQ(u.reason, 0);
    ASSERT_EQ(u.got, strlen(u.msg));
    ASSERT(memcmp(u.buf, u.msg, u.got) == 0);
}

TEST(unix_echo_path)
{
    ax_loop *loop = tu_loop();
    char path[200], url[256];
    sock_path(path, sizeof path, "echo.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    tu_server s;
    tu_echo_listen(&s, loop, url, NULL);
    ASSERT_EQ(s.addr.scheme, AX_SCHEME_UNIX);
    ASSERT_STREQ(s.url, url);
    struct stat st;
    ASSERT(stat(path, &st) == 0);
    ASSERT(S_ISSOCK(st.st_mode));
    echo_round_trip(loop, url);
    RUN_UNTIL(loop, s.closed == 1, 3000);
    ASSERT_EQ(s.last_reason, AX_EOF);
    /* Accepted Unix connections are non-blocking and close-on-exec too;
     * their peer and local addresses are Unix addresses. */
    int fd = tu_connect(&s.addr, 0);
    RUN_UNTIL(loop, s.last != NULL, 3000);
    ax_addr local;
    ASSERT_EQ(ax_conn_local(s.last, &local), 0);
    ASSERT_EQ(local.scheme, AX_SCHEME_UNIX);
    ASSERT(ax_addr_equal(&local, &s.addr));
    close(fd);
    RUN_UNTIL(loop, s.closed == 2, 3000);
    /* Closing the listener removes the file it made. */
    ax_listener_close(s.ls);
    ASSERT(stat(path, &st) == -1 && errno == ENOENT);
    ax_loop_free(loop);
}

TEST(unix_echo_abstract)
{
    ax_loop *loop = tu_loop();
    char url[128];
    snprintf(url, sizeof url, "unix://@axon-test-%d", (int)getpid());
    tu_server s;
    tu_echo_listen(&s, loop, url, NULL);
    ASSERT_STREQ(s.url, url);
    echo_round_trip(loop, url);
    RUN_UNTIL(loop, s.closed == 1, 3000);
    ax_listener_close(s.ls);
    /* The name is free again. */
    tu_echo_listen(&s, loop, url, NULL);
    ax_loop_free(loop);
}

TEST(unix_stale_socket_file_is_replaced)
{
    char path[200], url[256];
    sock_path(path, sizeof path, "stale.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    /* A socket file left behind by a listener that is gone. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, path);
    ASSERT(bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
    close(fd);
    struct stat st;
    ASSERT(stat(path, &st) == 0);

    ax_loop *loop = tu_loop();
    tu_server s;
    tu_echo_listen(&s, loop, url, NULL);
    echo_round_trip(loop, url);
    ax_loop_free(loop);
}

TEST(unix_live_socket_gives_addrinuse)
{
    char path[200], url[256];
    sock_path(path, sizeof path, "live.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, path);
    ASSERT(bind(lfd, (struct sockaddr *)&sun, sizeof sun) == 0);
    ASSERT(listen(lfd, 16) == 0);

    ax_loop *loop = tu_loop();
    int err = 0;
    ASSERT(ax_listen(loop, url, &uc_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_EADDRINUSE);
    /* The live listener is untouched. */
    int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(connect(cfd, (struct sockaddr *)&sun, sizeof sun) == 0);
    int afd = accept(lfd, NULL, NULL);
    ASSERT(afd >= 0);
    close(afd);
    close(cfd);
    /* A regular file in the way is not replaced either. */
    char fpath[200], furl[256];
    sock_path(fpath, sizeof fpath, "regular");
    FILE *f = fopen(fpath, "w");
    ASSERT(f != NULL);
    fputs("keep me", f);
    fclose(f);
    snprintf(furl, sizeof furl, "unix://%s", fpath);
    ASSERT(ax_listen(loop, furl, &uc_cbs, NULL, NULL, &err) == NULL);
    ASSERT(err < 0);
    struct stat st;
    ASSERT(stat(fpath, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 7);
    ax_loop_free(loop);
    close(lfd);
}

TEST(unix_mode)
{
    char path[200], url[256];
    sock_path(path, sizeof path, "mode.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    ax_loop *loop = tu_loop();
    ax_listen_opts lo = {.unix_mode = 0600};
    int err = 0;
    ax_listener *ls = ax_listen_ex(loop, url, &uc_cbs, NULL, &lo, NULL, &err);
    ASSERT(ls != NULL);
    struct stat st;
    ASSERT(stat(path, &st) == 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ax_listener_close(ls);
    lo.unix_mode = 0666;
    ls = ax_listen_ex(loop, url, &uc_cbs, NULL, &lo, NULL, &err);
    ASSERT(ls != NULL);
    ASSERT(stat(path, &st) == 0);
    ASSERT_EQ(st.st_mode & 0777, 0666);
    ax_loop_free(loop);
}

TEST(unix_connect_errors)
{
    ax_loop *loop = tu_loop();
    char path[200], url[256];
    sock_path(path, sizeof path, "nobody-here.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    struct uclient u = {.msg = "x"};
    int err = 0;
    ax_conn *c = ax_connect(loop, url, &uc_cbs, NULL, &u, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(u.closed, 0); /* reported from the loop, not from inside the call */
    RUN_UNTIL(loop, u.closed == 1, 3000);
    ASSERT_EQ(u.reason, AX_ENOENT);
    ASSERT_EQ(u.opened, 0);

    /* A socket file nobody listens on refuses. */
    sock_path(path, sizeof path, "dead.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    strcpy(sun.sun_path, path);
    ASSERT(bind(fd, (struct sockaddr *)&sun, sizeof sun) == 0);
    close(fd);
    struct uclient v = {.msg = "x"};
    ASSERT(ax_connect(loop, url, &uc_cbs, NULL, &v, &err) != NULL);
    ASSERT_EQ(v.closed, 0);
    RUN_UNTIL(loop, v.closed == 1, 3000);
    ASSERT_EQ(v.reason, AX_ECONNREFUSED);
    ASSERT_EQ(v.opened, 0);
    ax_loop_free(loop);
}

/* Half-close works the same over Unix sockets. */
struct uh {
    size_t got;
    int ends, closed, reason;
};

static size_t uh_data(ax_conn *c, const char *d, size_t n)
{
    ((struct uh *)ax_conn_data(c))->got += n;
    return n;
}

static void uh_end(ax_conn *c)
{
    struct uh *h = ax_conn_data(c);
    h->ends++;
    char msg[32];
    int n = snprintf(msg, sizeof msg, "%zu", h->got);
    ASSERT_EQ(ax_conn_write(c, msg, (size_t)n), 0);
    ax_conn_close(c);
}

static void uh_close(ax_conn *c, int reason)
{
    struct uh *h = ax_conn_data(c);
    h->closed++;
    h->reason = reason;
}

TEST(unix_half_close)
{
    ax_loop *loop = tu_loop();
    char path[200], url[256];
    sock_path(path, sizeof path, "half.sock");
    snprintf(url, sizeof url, "unix://%s", path);
    struct uh h = {0};
    static const ax_conn_cbs cbs = {.on_data = uh_data, .on_end = uh_end, .on_close = uh_close};
    ax_listener *ls = ax_listen(loop, url, &cbs, NULL, &h, NULL);
    ASSERT(ls != NULL);
    int fd = tu_connect(ax_listener_addr(ls), 0);
    tu_write_all(fd, "twelve bytes", 12);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    char buf[16] = "";
    ASSERT_EQ(tu_loop_read_to_eof(loop, fd, buf, sizeof buf - 1, 3000), 2);
    ASSERT_STREQ(buf, "12");
    RUN_UNTIL(loop, h.closed == 1, 3000);
    ASSERT_EQ(h.ends, 1);
    ASSERT_EQ(h.reason, 0);
    close(fd);
    ax_loop_free(loop);
}

TEST(unix_path_too_long)
{
    ax_loop *loop = tu_loop();
    char url[400] = "unix:///tmp/";
    memset(url + strlen(url), 'x', 200);
    int err = 0;
    ASSERT(ax_listen(loop, url, &uc_cbs, NULL, NULL, &err) == NULL);
    ASSERT(err < 0);
    ASSERT(ax_connect(loop, url, &uc_cbs, NULL, NULL, &err) == NULL);
    ASSERT(err < 0);
    ax_loop_free(loop);
}
