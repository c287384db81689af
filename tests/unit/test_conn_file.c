/* test_conn_file.c: file ranges in the write queue (ax_conn_write_file):
 * in order with bytes and slices queued around them, plain and TLS, with
 * small socket buffers (partial sends), a file that shrinks while it is
 * being sent, and a TLS client that queues a file before its handshake. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* The stream: pattern bytes [0, A) from memory, [A, A + F1) from the file,
 * [.., + B) a slice, [.., + F2) the file again, a tail from memory.  The
 * file holds the pattern of the whole stream, so the stream is the pattern
 * whatever came from where. */
#define PART_A 1000u
#define PART_F1 (1024u * 1024 + 3)
#define PART_B 70000u
#define PART_F2 (300u * 1024)
#define PART_T 5u
#define TOTAL (PART_A + PART_F1 + PART_B + PART_F2 + PART_T)

static int make_file(size_t len, char *path, size_t plen)
{
    snprintf(path, plen, "%s/file-XXXXXX", ax_test_tmpdir());
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    static unsigned char buf[65536];
    for (size_t off = 0; off < len;) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        tu_fill_pattern(buf, n, off);
        ASSERT_EQ(write(fd, buf, n), (ssize_t)n);
        off += n;
    }
    return fd;
}

typedef struct sender {
    ax_file *file;
    int opened, closed, reason, drains, above;
    uint64_t bytes_out;
    int sndbuf;     /* > 0: SO_SNDBUF of the accepted socket */
    bool truncated; /* one range, longer than the file will be */
} sender;

static int put_bytes(ax_conn *c, uint64_t off, size_t len)
{
    static unsigned char buf[PART_B];
    tu_fill_pattern(buf, len, off);
    return ax_conn_write(c, buf, len);
}

static void sender_open(ax_conn *c)
{
    sender *s = ax_conn_data(c);
    s->opened++;
    if (s->sndbuf > 0)
        setsockopt(ax_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &s->sndbuf, sizeof s->sndbuf);
    int rc;
    if (s->truncated) {
        rc = ax_conn_write_file(c, s->file, 0, TOTAL);
        ASSERT(rc >= 0);
        ax_conn_close(c);
        return;
    }
    uint64_t off = 0;
    rc = put_bytes(c, off, PART_A);
    ASSERT(rc >= 0);
    off += PART_A;
    rc = ax_conn_write_file(c, s->file, off, PART_F1);
    ASSERT(rc >= 0);
    if (rc == 1) s->above++;
    off += PART_F1;
    ax_slice *sl = ax_slice_new(PART_B);
    ASSERT(sl != NULL);
    tu_fill_pattern(ax_slice_data(sl), PART_B, off);
    rc = ax_conn_write_slice(c, sl, 0, PART_B);
    ASSERT(rc >= 0);
    ax_slice_unref(sl);
    off += PART_B;
    ax_conn_cork(c); /* the tail and the second range go out together */
    rc = ax_conn_write_file(c, s->file, off, PART_F2);
    ASSERT(rc >= 0);
    off += PART_F2;
    rc = put_bytes(c, off, PART_T);
    ASSERT(rc >= 0);
    rc = ax_conn_uncork(c);
    ASSERT(rc >= 0);
    ax_conn_close(c); /* after everything queued (TLS: close_notify last) */
}

static void sender_drain(ax_conn *c)
{
    sender *s = ax_conn_data(c);
    s->drains++;
}

static void sender_close(ax_conn *c, int reason)
{
    sender *s = ax_conn_data(c);
    s->closed++;
    s->reason = reason;
    s->bytes_out = ax_conn_bytes_out(c);
}

static const ax_conn_cbs sender_cbs = {
    .on_open = sender_open, .on_drain = sender_drain, .on_close = sender_close};

static void sender_init(sender *s, int fd)
{
    memset(s, 0, sizeof(*s));
    s->file = ax_file_new(fd);
    ASSERT(s->file != NULL);
}

/* Plain: a blocking client with a small receive buffer reads it all. */
static void plain_order(int sndbuf)
{
    ax_loop *loop = tu_loop();
    char path[512];
    sender s;
    sender_init(&s, make_file(TOTAL, path, sizeof path));
    s.sndbuf = sndbuf;
    int err;
    ax_listener *l = ax_listen(loop, "tcp://127.0.0.1:0", &sender_cbs, NULL, &s, &err);
    ASSERT(l != NULL);
    int fd = tu_connect(ax_listener_addr(l), 8192);
    static unsigned char got[TOTAL + 16];
    ssize_t n = tu_loop_read_to_eof(loop, fd, got, sizeof got, 20000);
    ASSERT_EQ(n, (ssize_t)TOTAL);
    size_t bad = tu_check_pattern(got, TOTAL, 0);
    if (bad != TOTAL) {
        for (size_t i = bad - 4; i < bad + 12; i++)
            fprintf(stderr, "%zu: got %u want %u\n", i, got[i], tu_pattern(i));
    }
    ASSERT_EQ(tu_check_pattern(got, TOTAL, 0), TOTAL);
    close(fd);
    RUN_UNTIL(loop, s.closed, 5000);
    ASSERT_EQ(s.reason, 0);
    ASSERT_EQ(s.bytes_out, TOTAL);
    if (sndbuf) {
        ASSERT_EQ(s.above, 1); /* a megabyte range is above the high watermark */
        ASSERT(s.drains >= 1); /* and on_drain said when it had gone */
    }
    ax_file_unref(s.file);
    unlink(path);
    ax_listener_close(l);
    ax_loop_free(loop);
}

TEST(conn_file_order_plain)
{
    plain_order(0);
}

TEST(conn_file_order_plain_small_sndbuf)
{
    plain_order(4096);
}

/* A corked head and a 64 KiB range (an HTTP static response): together
 * above the default high watermark while queued, but the socket takes them
 * at uncork, so the writes say 0, uncork says 0 and no on_drain follows
 * (a writer told 1 waits for on_drain: the HTTP server paused the
 * connection for every such response). */
#define CORK_HEAD 200u
#define CORK_FILE (64u * 1024)

static void cork_open(ax_conn *c)
{
    sender *s = ax_conn_data(c);
    s->opened++;
    setsockopt(ax_conn_fd(c), SOL_SOCKET, SO_SNDBUF, &s->sndbuf, sizeof s->sndbuf);
    ax_conn_cork(c);
    int rc = put_bytes(c, 0, CORK_HEAD);
    ASSERT_EQ(rc, 0);
    rc = ax_conn_write_file(c, s->file, CORK_HEAD, CORK_FILE);
    ASSERT_EQ(rc, 0);
    s->above = ax_conn_uncork(c);
    ax_conn_close(c);
}

static const ax_conn_cbs cork_cbs = {
    .on_open = cork_open, .on_drain = sender_drain, .on_close = sender_close};

TEST(conn_file_cork_watermark)
{
    ax_loop *loop = tu_loop();
    char path[512];
    sender s;
    sender_init(&s, make_file(CORK_HEAD + CORK_FILE, path, sizeof path));
    s.sndbuf = 1 << 20; /* room for it all at once */
    int err;
    ax_listener *l = ax_listen(loop, "tcp://127.0.0.1:0", &cork_cbs, NULL, &s, &err);
    ASSERT(l != NULL);
    int fd = tu_connect(ax_listener_addr(l), 0);
    static unsigned char got[CORK_HEAD + CORK_FILE + 16];
    ssize_t n = tu_loop_read_to_eof(loop, fd, got, sizeof got, 10000);
    ASSERT_EQ(n, (ssize_t)(CORK_HEAD + CORK_FILE));
    ASSERT_EQ(tu_check_pattern(got, (size_t)n, 0), (size_t)n);
    close(fd);
    RUN_UNTIL(loop, s.closed, 5000);
    ASSERT_EQ(s.reason, 0);
    ASSERT_EQ(s.above, 0); /* all of it went at uncork */
    ASSERT_EQ(s.drains, 0);
    ax_file_unref(s.file);
    unlink(path);
    ax_listener_close(l);
    ax_loop_free(loop);
}

/* A range longer than the file when its turn comes: the connection is
 * aborted (AX_EIO), the reader sees the end, it does not wait forever. */
TEST(conn_file_truncated_plain)
{
    ax_loop *loop = tu_loop();
    char path[512];
    sender s;
    int ffd = make_file(TOTAL, path, sizeof path);
    sender_init(&s, ffd);
    s.truncated = true;
    s.sndbuf = 4096;
    int err;
    ax_listener *l = ax_listen(loop, "tcp://127.0.0.1:0", &sender_cbs, NULL, &s, &err);
    ASSERT(l != NULL);
    int fd = tu_connect(ax_listener_addr(l), 4096);
    RUN_UNTIL(loop, s.opened, 5000);
    tu_run_for(loop, 50); /* some of it in flight */
    ASSERT_EQ(ftruncate(ffd, 200 * 1024), 0);
    static unsigned char got[TOTAL];
    ssize_t n = tu_loop_read_to_eof(loop, fd, got, sizeof got, 10000);
    ASSERT(n != -ETIMEDOUT);
    if (n > 0) ASSERT(n < (ssize_t)TOTAL);
    RUN_UNTIL(loop, s.closed, 5000);
    ASSERT_EQ(s.reason, AX_EIO);
    close(fd);
    ax_file_unref(s.file);
    unlink(path);
    ax_listener_close(l);
    ax_loop_free(loop);
}

/* ---- TLS ----------------------------------------------------------------- */

typedef struct pki {
    char cert[512], key[512];
} pki;

static ax_tls_ctx *tls_pair(pki *p, ax_tls_ctx **cli)
{
    char why[256];
    int err;
    snprintf(p->cert, sizeof p->cert, "%s/f.crt", ax_test_tmpdir());
    snprintf(p->key, sizeof p->key, "%s/f.key", ax_test_tmpdir());
    if (ax_tls_make_self_signed("localhost", 1, p->cert, p->key, why, sizeof why))
        ax_test_fail(__FILE__, __LINE__, "ax_tls_make_self_signed", why);
    ax_tls_ctx *s = ax_tls_server_new(&(ax_tls_opts){.cert_file = p->cert, .key_file = p->key}, why,
                                      sizeof why, &err);
    if (!s) ax_test_fail(__FILE__, __LINE__, "ax_tls_server_new", why);
    *cli = ax_tls_client_new(&(ax_tls_opts){.ca_file = p->cert}, why, sizeof why, &err);
    if (!*cli) ax_test_fail(__FILE__, __LINE__, "ax_tls_client_new", why);
    return s;
}

typedef struct reader {
    size_t got;
    bool pattern_ok;
    int closed, reason;
    ax_file *send; /* a client that sends: this file, before its handshake */
} reader;

static size_t reader_data(ax_conn *c, const char *data, size_t len)
{
    reader *r = ax_conn_data(c);
    if (tu_check_pattern((const unsigned char *)data, len, r->got) != len) r->pattern_ok = false;
    r->got += len;
    return len;
}

static void reader_close(ax_conn *c, int reason)
{
    reader *r = ax_conn_data(c);
    r->closed++;
    r->reason = reason;
}

static const ax_conn_cbs reader_cbs = {.on_data = reader_data, .on_close = reader_close};

static ax_listener *tls_listen(ax_loop *loop, ax_tls_ctx *t, const ax_conn_cbs *cbs, void *ud,
                               char *url, size_t ulen)
{
    int err;
    ax_conn_opts o = {.tls = t};
    ax_listener *l = ax_listen_ex(loop, "tls://127.0.0.1:0", cbs, &o, NULL, ud, &err);
    ASSERT(l != NULL);
    snprintf(url, ulen, "tls://localhost:%d", ax_addr_port(ax_listener_addr(l)));
    return l;
}

static void tls_order(bool truncated)
{
    ax_loop *loop = tu_loop();
    pki k;
    ax_tls_ctx *cctx, *sctx = tls_pair(&k, &cctx);
    char path[512], url[64];
    sender s;
    int ffd = make_file(TOTAL, path, sizeof path);
    sender_init(&s, ffd);
    s.sndbuf = 4096;
    s.truncated = truncated;
    if (truncated) ASSERT_EQ(ftruncate(ffd, 100 * 1024), 0);
    ax_listener *l = tls_listen(loop, sctx, &sender_cbs, &s, url, sizeof url);
    reader r = {.pattern_ok = true};
    int err;
    ax_conn *c = ax_connect(loop, url, &reader_cbs, &(ax_conn_opts){.tls = cctx}, &r, &err);
    ASSERT(c != NULL);
    RUN_UNTIL(loop, r.closed && s.closed, 20000);
    ASSERT(r.pattern_ok);
    if (truncated) {
        ASSERT_EQ(s.reason, AX_EIO);
        ASSERT(r.got <= 100 * 1024);
        ASSERT(r.reason != 0); /* no close_notify: the reader knows it is cut */
    } else {
        ASSERT_EQ(r.got, TOTAL);
        ASSERT_EQ(r.reason, AX_EOF); /* close_notify came after the last byte */
        ASSERT(s.bytes_out > TOTAL); /* ciphertext */
    }
    ax_file_unref(s.file);
    unlink(path);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_tls_ctx_free(cctx);
    ax_loop_free(loop);
}

TEST(conn_file_order_tls)
{
    tls_order(false);
}

TEST(conn_file_truncated_tls)
{
    tls_order(true);
}

/* A TLS client queues bytes, a file range and bytes before its handshake
 * is done (the range is read into the held bytes), then closes. */
static void early_open(ax_conn *c)
{
    ax_conn_close(c);
}

static const ax_conn_cbs early_cbs = {.on_open = early_open, .on_close = reader_close};

TEST(conn_file_tls_before_handshake)
{
    ax_loop *loop = tu_loop();
    pki k;
    ax_tls_ctx *cctx, *sctx = tls_pair(&k, &cctx);
    char path[512], url[64];
    ax_file *f = ax_file_new(make_file(200000, path, sizeof path));
    ASSERT(f != NULL);
    reader srv = {.pattern_ok = true}, cli = {0};
    ax_listener *l = tls_listen(loop, sctx, &reader_cbs, &srv, url, sizeof url);
    int err;
    ax_conn *c = ax_connect(loop, url, &early_cbs, &(ax_conn_opts){.tls = cctx}, &cli, &err);
    ASSERT(c != NULL);
    ASSERT(put_bytes(c, 0, 100) >= 0);
    ASSERT(ax_conn_write_file(c, f, 100, 150000) >= 0);
    ASSERT(put_bytes(c, 150100, 49900) >= 0);
    ax_file_unref(f); /* the queue keeps what it needs */
    RUN_UNTIL(loop, cli.closed && srv.closed, 10000);
    ASSERT(srv.pattern_ok);
    ASSERT_EQ(srv.got, 200000);
    ASSERT_EQ(cli.reason, 0);
    unlink(path);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_tls_ctx_free(cctx);
    ax_loop_free(loop);
}

/* Bad arguments and a closed connection. */
TEST(conn_file_arguments)
{
    ax_loop *loop = tu_loop();
    char path[512];
    ax_file *f = ax_file_new(make_file(10, path, sizeof path));
    ASSERT(f != NULL);
    reader s = {0};
    int err;
    ax_listener *l = ax_listen(loop, "tcp://127.0.0.1:0", &reader_cbs, NULL, &s, &err);
    ASSERT(l != NULL);
    reader r = {.pattern_ok = true};
    char url[64];
    ax_conn *c =
        ax_connect(loop, tu_url(ax_listener_addr(l), url, sizeof url), &reader_cbs, NULL, &r, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(ax_conn_write_file(c, NULL, 0, 1), AX_EINVAL);
    ASSERT_EQ(ax_conn_write_file(c, f, UINT64_MAX, 2), AX_EINVAL);
    ASSERT_EQ(ax_conn_write_file(c, f, 0, 0), 0);
    ax_conn_close(c);
    ASSERT_EQ(ax_conn_write_file(c, f, 0, 10), AX_ECLOSED);
    RUN_UNTIL(loop, r.closed, 5000);
    ax_file_unref(f);
    unlink(path);
    ax_listener_close(l);
    ax_loop_free(loop);
}
