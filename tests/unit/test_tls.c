/* test_tls.c: TLS over stream connections: our client against our server
 * with certificates made by ax_tls_make_self_signed; verification, SNI,
 * ALPN, close_notify, handshake timeouts, backpressure. */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------ */

typedef struct pki {
    char cert[512], key[512];
} pki;

static void make_pki(pki *p, const char *name)
{
    char why[256];
    snprintf(p->cert, sizeof p->cert, "%s/%s.crt", ax_test_tmpdir(), name);
    snprintf(p->key, sizeof p->key, "%s/%s.key", ax_test_tmpdir(), name);
    int rc = ax_tls_make_self_signed(name, 1, p->cert, p->key, why, sizeof why);
    if (rc) ax_test_fail(__FILE__, __LINE__, "ax_tls_make_self_signed", why);
}

static ax_tls_ctx *server_ctx(const pki *p, const char *alpn)
{
    char why[256];
    int err;
    ax_tls_opts o = {.cert_file = p->cert, .key_file = p->key, .alpn = alpn};
    ax_tls_ctx *t = ax_tls_server_new(&o, why, sizeof why, &err);
    if (!t) ax_test_fail(__FILE__, __LINE__, "ax_tls_server_new", why);
    return t;
}

static ax_tls_ctx *client_ctx(const ax_tls_opts *o)
{
    char why[256];
    int err;
    ax_tls_ctx *t = ax_tls_client_new(o, why, sizeof why, &err);
    if (!t) ax_test_fail(__FILE__, __LINE__, "ax_tls_client_new", why);
    return t;
}

/* "tls://localhost:PORT" for a listener. */
static const char *tls_url(ax_listener *l, const char *host, char *buf, size_t len)
{
    snprintf(buf, len, "tls://%s:%d", host, ax_addr_port(ax_listener_addr(l)));
    return buf;
}

/* A client that records what happened; optionally sends `send_len` pattern
 * bytes and shuts down. */
typedef struct peer {
    int opened, closed, failed, reason;
    bool open_before_data_ok;
    size_t send_len, got;
    bool pattern_ok;
    char alpn[32], version[16], subject[128], detail[256];
    bool close_on_open;
} peer;

static void peer_open(ax_conn *c)
{
    peer *p = ax_conn_data(c);
    p->opened++;
    const char *a = ax_conn_tls_alpn(c);
    snprintf(p->alpn, sizeof p->alpn, "%s", a ? a : "");
    snprintf(p->version, sizeof p->version, "%s", ax_conn_tls_version(c));
    ax_conn_tls_peer_subject(c, p->subject, sizeof p->subject);
    if (p->close_on_open) ax_conn_close(c);
}

static size_t peer_data(ax_conn *c, const char *data, size_t len)
{
    peer *p = ax_conn_data(c);
    if (!p->opened) p->open_before_data_ok = false;
    if (tu_check_pattern((const unsigned char *)data, len, p->got) != len) p->pattern_ok = false;
    p->got += len;
    if (p->send_len && p->got == p->send_len) ax_conn_close(c);
    return len;
}

static void peer_close(ax_conn *c, int reason)
{
    peer *p = ax_conn_data(c);
    p->closed++;
    p->reason = reason;
    const char *d = ax_conn_error_detail(c);
    snprintf(p->detail, sizeof p->detail, "%s", d ? d : "");
}

static const ax_conn_cbs peer_cbs = {
    .on_open = peer_open, .on_data = peer_data, .on_close = peer_close};

static void peer_init(peer *p)
{
    memset(p, 0, sizeof(*p));
    p->open_before_data_ok = p->pattern_ok = true;
}

/* Echo with backpressure, as axon echo does. */
static size_t echo_data(ax_conn *c, const char *data, size_t len)
{
    if (ax_conn_write(c, data, len) == 1) ax_conn_pause(c);
    return len;
}
static void echo_drain(ax_conn *c)
{
    ax_conn_resume(c);
}
static void echo_open(ax_conn *c)
{
    peer *p = ax_conn_data(c);
    if (p) p->opened++;
}
static void echo_close(ax_conn *c, int reason)
{
    peer *p = ax_conn_data(c);
    if (!p) return;
    p->closed++;
    p->reason = reason;
    const char *d = ax_conn_error_detail(c);
    snprintf(p->detail, sizeof p->detail, "%s", d ? d : "");
}
static const ax_conn_cbs echo_cbs = {
    .on_open = echo_open, .on_data = echo_data, .on_drain = echo_drain, .on_close = echo_close};

/* An accepted connection's handshake failed: it gets no callback itself. */
static void echo_fail(ax_conn *c, int reason)
{
    peer *p = ax_conn_data(c);
    p->failed++;
    p->reason = reason;
    const char *d = ax_conn_error_detail(c);
    snprintf(p->detail, sizeof p->detail, "%s", d ? d : "");
}

static ax_listener *echo_listen(ax_loop *loop, ax_tls_ctx *tls, peer *srv, uint32_t timeout)
{
    int err;
    ax_conn_opts o = {.tls = tls, .connect_timeout_ms = timeout};
    ax_listen_opts lo = {.on_fail = echo_fail};
    ax_listener *l = ax_listen_ex(loop, "tls://127.0.0.1:0", &echo_cbs, &o, &lo, srv, &err);
    ASSERT(l != NULL);
    return l;
}

/* Connect with `ctx` and write `len` pattern bytes, in pieces, some before
 * the handshake is done. */
static ax_conn *send_pattern(ax_loop *loop, const char *url, ax_tls_ctx *ctx, peer *p, size_t len)
{
    int err;
    ax_conn_opts o = {.tls = ctx, .connect_timeout_ms = 5000};
    ax_conn *c = ax_connect(loop, url, &peer_cbs, &o, p, &err);
    ASSERT(c != NULL);
    static unsigned char buf[100000];
    p->send_len = len;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        tu_fill_pattern(buf, n, off);
        ASSERT(ax_conn_write(c, buf, n) >= 0);
        off += n;
    }
    return c;
}

/* ---- tests --------------------------------------------------------------- */

TEST(tls_echo_roundtrip)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, NULL);
    ax_tls_ctx *cctx = client_ctx(&(ax_tls_opts){.ca_file = k.cert});
    peer srv, cli;
    peer_init(&srv);
    peer_init(&cli);
    ax_listener *l = echo_listen(loop, sctx, &srv, 0);
    ax_tls_ctx_free(sctx); /* the listener holds a reference */
    char url[64];
    ax_conn *c = send_pattern(loop, tls_url(l, "localhost", url, sizeof url), cctx, &cli,
                              3 * 1024 * 1024 + 17);
    ASSERT(ax_conn_is_tls(c));
    ASSERT(ax_conn_tls_alpn(c) == NULL);
    RUN_UNTIL(loop, cli.closed && srv.closed, 20000);
    ASSERT_EQ(cli.opened, 1);
    ASSERT_EQ(srv.opened, 1);
    ASSERT(cli.open_before_data_ok);
    ASSERT(cli.pattern_ok);
    ASSERT_EQ(cli.got, 3 * 1024 * 1024 + 17);
    ASSERT_EQ(cli.reason, 0);
    ASSERT_EQ(srv.reason, AX_EOF); /* our close_notify, then FIN */
    ASSERT_STREQ(cli.version, "TLSv1.3");
    ASSERT_STREQ(cli.subject, "CN = localhost");
    ax_listener_close(l);
    ax_tls_ctx_free(cctx);
    ax_loop_free(loop);
}

TEST(tls_refuses_untrusted_and_wrong_name)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, NULL);
    peer srv, a, b, d;
    peer_init(&srv);
    ax_listener *l = echo_listen(loop, sctx, &srv, 0);
    char url[64];
    int err;
    /* the system store does not know our self-signed certificate */
    peer_init(&a);
    ASSERT(ax_connect(loop, tls_url(l, "localhost", url, sizeof url), &peer_cbs, NULL, &a, &err));
    /* trusted, but issued for localhost, not for 127.0.0.2's name */
    ax_tls_ctx *wrong = client_ctx(&(ax_tls_opts){.ca_file = k.cert, .server_name = "other.test"});
    ax_conn_opts o = {.tls = wrong};
    peer_init(&b);
    ASSERT(ax_connect(loop, url, &peer_cbs, &o, &b, &err));
    /* insecure accepts anything */
    ax_tls_ctx *any = client_ctx(&(ax_tls_opts){.insecure = true});
    ax_conn_opts o2 = {.tls = any};
    peer_init(&d);
    d.close_on_open = true;
    ASSERT(ax_connect(loop, url, &peer_cbs, &o2, &d, &err));
    RUN_UNTIL(loop, a.closed && b.closed && d.closed, 5000);
    ASSERT_EQ(a.opened, 0);
    ASSERT_EQ(a.reason, AX_ECERT);
    ASSERT(strstr(a.detail, "certificate verification failed: self-signed certificate"));
    ASSERT_EQ(b.opened, 0);
    ASSERT_EQ(b.reason, AX_ECERT);
    ASSERT(strstr(b.detail, "hostname mismatch"));
    ASSERT_EQ(d.opened, 1);
    ASSERT_EQ(d.reason, 0);
    RUN_UNTIL(loop, srv.closed == 1 && srv.failed == 2, 5000);
    ASSERT_EQ(srv.opened, 1);
    ASSERT_STREQ(ax_strerror(AX_ECERT), "certificate verification failed");
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_tls_ctx_free(wrong);
    ax_tls_ctx_free(any);
    ax_loop_free(loop);
}

TEST(tls_sni_picks_certificate)
{
    ax_loop *loop = tu_loop();
    pki a, b;
    make_pki(&a, "alpha.test");
    make_pki(&b, "beta.test");
    ax_tls_ctx *sctx = server_ctx(&a, NULL);
    char why[256];
    ASSERT_EQ(ax_tls_server_add_cert(sctx, b.cert, b.key, why, sizeof why), 0);
    peer srv;
    peer_init(&srv);
    ax_listener *l = echo_listen(loop, sctx, &srv, 0);
    char url[64];
    tls_url(l, "127.0.0.1", url, sizeof url);
    ax_tls_ctx *ca = client_ctx(&(ax_tls_opts){.ca_file = a.cert, .server_name = "alpha.test"});
    ax_tls_ctx *cb = client_ctx(&(ax_tls_opts){.ca_file = b.cert, .server_name = "beta.test"});
    peer pa, pb;
    peer_init(&pa);
    peer_init(&pb);
    send_pattern(loop, url, ca, &pa, 1000);
    send_pattern(loop, url, cb, &pb, 1000);
    RUN_UNTIL(loop, pa.closed && pb.closed, 5000);
    ASSERT_EQ(pa.reason, 0);
    ASSERT_EQ(pb.reason, 0);
    ASSERT_STREQ(pa.subject, "CN = alpha.test");
    ASSERT_STREQ(pb.subject, "CN = beta.test");
    ASSERT_EQ(pb.got, 1000);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_tls_ctx_free(ca);
    ax_tls_ctx_free(cb);
    ax_loop_free(loop);
}

TEST(tls_alpn_negotiates)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, "x-axon,http/1.1");
    peer srv, c1, c2;
    peer_init(&srv);
    ax_listener *l = echo_listen(loop, sctx, &srv, 0);
    char url[64];
    tls_url(l, "localhost", url, sizeof url);
    ax_tls_ctx *h = client_ctx(&(ax_tls_opts){.ca_file = k.cert, .alpn = "h2,http/1.1"});
    ax_tls_ctx *none = client_ctx(&(ax_tls_opts){.ca_file = k.cert, .alpn = "h2"});
    peer_init(&c1);
    peer_init(&c2);
    send_pattern(loop, url, h, &c1, 10);
    send_pattern(loop, url, none, &c2, 10);
    RUN_UNTIL(loop, c1.closed && c2.closed, 5000);
    ASSERT_STREQ(c1.alpn, "http/1.1");
    ASSERT_STREQ(c2.alpn, ""); /* no overlap: carry on without ALPN */
    ASSERT_EQ(c2.got, 10);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_tls_ctx_free(h);
    ax_tls_ctx_free(none);
    ax_loop_free(loop);
}

TEST(tls_handshake_timeout_server)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, NULL);
    peer srv;
    peer_init(&srv);
    ax_listener *l = echo_listen(loop, sctx, &srv, 300);
    int fd = tu_connect(ax_listener_addr(l), 0); /* says nothing */
    uint64_t t0 = tu_now_ms();
    RUN_UNTIL(loop, srv.failed, 3000);
    uint64_t took = tu_now_ms() - t0;
    ASSERT_EQ(srv.opened, 0);
    ASSERT_EQ(srv.closed, 0);
    ASSERT_EQ(srv.reason, AX_ETIMEDOUT);
    ASSERT_STREQ(srv.detail, "TLS handshake timed out");
    ASSERT(took >= 250 && took < 2000);
    close(fd);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_loop_free(loop);
}

TEST(tls_handshake_timeout_client)
{
    ax_loop *loop = tu_loop();
    /* a listener that accepts (in the kernel) but never answers */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t sl = sizeof sin;
    ASSERT(bind(ls, (struct sockaddr *)&sin, sizeof sin) == 0 && listen(ls, 8) == 0);
    getsockname(ls, (struct sockaddr *)&sin, &sl);
    char url[64];
    snprintf(url, sizeof url, "tls://127.0.0.1:%d", ntohs(sin.sin_port));
    peer p;
    peer_init(&p);
    int err;
    ax_conn_opts o = {.connect_timeout_ms = 300};
    ASSERT(ax_connect(loop, url, &peer_cbs, &o, &p, &err) != NULL);
    RUN_UNTIL(loop, p.closed, 3000);
    ASSERT_EQ(p.opened, 0);
    ASSERT_EQ(p.reason, AX_ETIMEDOUT);
    ASSERT_STREQ(p.detail, "TLS handshake timed out");
    close(ls);
    ax_loop_free(loop);
}

TEST(tls_plain_peer_fails_handshake)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, NULL);
    peer srv;
    peer_init(&srv);
    ax_listener *l = echo_listen(loop, sctx, &srv, 0);
    int fd = tu_connect(ax_listener_addr(l), 0);
    tu_write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    RUN_UNTIL(loop, srv.failed, 3000);
    ASSERT_EQ(srv.opened, 0);
    ASSERT_EQ(srv.closed, 0);
    ASSERT_EQ(srv.reason, AX_ETLS);
    ASSERT(strncmp(srv.detail, "TLS handshake failed: ", 22) == 0);
    close(fd);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_loop_free(loop);
}

/* A server's callbacks see only connections that opened: a client that
 * fails its handshake reaches the listener's on_fail, never on_close, also
 * when the listener is closed while the handshake runs. */
TEST(tls_unopened_accept_no_close)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, NULL);
    peer srv, a;
    peer_init(&srv);
    ax_listener *l = echo_listen(loop, sctx, &srv, 0);
    char url[64];
    int err;
    peer_init(&a); /* the system store does not know our certificate */
    ASSERT(ax_connect(loop, tls_url(l, "localhost", url, sizeof url), &peer_cbs, NULL, &a, &err));
    RUN_UNTIL(loop, a.closed && srv.failed, 5000);
    ASSERT_EQ(a.opened, 0);
    ASSERT_EQ(a.reason, AX_ECERT);
    ASSERT_EQ(srv.failed, 1);
    ASSERT_EQ(srv.opened, 0);
    ASSERT_EQ(srv.closed, 0);
    char shown[AX_ADDR_STRLEN], want[64];
    snprintf(want, sizeof want, "tls://127.0.0.1:%d", ax_addr_port(ax_listener_addr(l)));
    ASSERT_STREQ(ax_listener_url(l, shown, sizeof shown), want);
    /* a handshake still running when its listener goes */
    int fd = tu_connect(ax_listener_addr(l), 0);
    for (int i = 0; i < 10; i++)
        ax_loop_run_once(loop, 10); /* accepted */
    ax_listener_close(l);
    tu_write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18);
    RUN_UNTIL(loop, srv.failed == 2, 3000);
    ASSERT_EQ(srv.reason, AX_ETLS);
    ASSERT_EQ(srv.closed, 0);
    close(fd);
    ax_tls_ctx_free(sctx);
    ax_loop_free(loop);
}

TEST(tls_listen_needs_context)
{
    ax_loop *loop = tu_loop();
    int err = 0;
    ASSERT(ax_listen(loop, "tls://127.0.0.1:0", &echo_cbs, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err, AX_EINVAL);
    char why[256];
    ASSERT(ax_tls_server_new(&(ax_tls_opts){.cert_file = "/nonexistent.pem"}, why, sizeof why,
                             &err) == NULL);
    ASSERT_EQ(err, AX_ENOENT);
    ASSERT(strstr(why, "/nonexistent.pem"));
    ASSERT(ax_tls_server_new(NULL, why, sizeof why, &err) == NULL);
    ASSERT_EQ(err, AX_EINVAL);
    ax_loop_free(loop);
}

/* The server closes first: the client sees the stream end cleanly. */
static void close_at_open(ax_conn *c)
{
    ASSERT(ax_conn_write(c, "bye\n", 4) >= 0);
    ax_conn_close(c);
}
static const ax_conn_cbs closer_cbs = {.on_open = close_at_open};

TEST(tls_server_close_notify)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    ax_tls_ctx *sctx = server_ctx(&k, NULL);
    int err;
    ax_conn_opts so = {.tls = sctx};
    ax_listener *l = ax_listen(loop, "tls://127.0.0.1:0", &closer_cbs, &so, NULL, &err);
    ASSERT(l != NULL);
    ax_tls_ctx *cctx = client_ctx(&(ax_tls_opts){.ca_file = k.cert});
    peer p;
    peer_init(&p);
    p.pattern_ok = false;
    char url[64];
    ax_conn_opts co = {.tls = cctx};
    ASSERT(ax_connect(loop, tls_url(l, "localhost", url, sizeof url), &peer_cbs, &co, &p, &err));
    RUN_UNTIL(loop, p.closed, 5000);
    ASSERT_EQ(p.got, 4);
    ASSERT_EQ(p.reason, AX_EOF);
    ax_listener_close(l);
    ax_tls_ctx_free(sctx);
    ax_tls_ctx_free(cctx);
    ax_loop_free(loop);
}

TEST(tls_self_signed_files)
{
    pki k;
    make_pki(&k, "127.0.0.1");
    FILE *f = fopen(k.cert, "r");
    ASSERT(f != NULL);
    char line[64] = "";
    ASSERT(fgets(line, sizeof line, f) != NULL);
    fclose(f);
    ASSERT_STREQ(line, "-----BEGIN CERTIFICATE-----\n");
    ASSERT(access(k.key, R_OK) == 0);
    char why[128];
    ASSERT_EQ(ax_tls_make_self_signed("", 1, k.cert, k.key, why, sizeof why), AX_EINVAL);
}

/* ---- ax_conn_start_tls: STARTTLS on a plain connection ------------------- */

typedef struct upgrade {
    ax_tls_ctx *ctx;
    int opened, closed, reason, rc;
    bool tls_after;
    char got[256];
    size_t got_len;
} upgrade;

static void up_open(ax_conn *c)
{
    upgrade *u = ax_conn_data(c);
    u->opened++;
    if (!ax_conn_listener(c) && ax_conn_write(c, "STARTTLS\nINJECTED\n", 18) < 0) ax_conn_close(c);
}

/* Both sides: a line in the clear says when to start TLS; after it, the
 * server echoes and the client records. */
static size_t up_data(ax_conn *c, const char *data, size_t len)
{
    upgrade *u = ax_conn_data(c);
    bool server = ax_conn_listener(c) != NULL;
    if (!ax_conn_is_tls(c)) {
        bool go = server ? len >= 9 && !memcmp(data, "STARTTLS\n", 9) : len >= 3;
        if (!go) return 0;
        if (server && ax_conn_write(c, "GO\n", 3) < 0) return len;
        u->rc = ax_conn_start_tls(c, u->ctx);
        u->tls_after = ax_conn_is_tls(c);
        ASSERT_EQ(ax_conn_start_tls(c, u->ctx), AX_EINVAL); /* once */
        if (!server && ax_conn_write(c, "hello\n", 6) < 0) ax_conn_close(c);
        return server ? 9 : len; /* the server leaves "INJECTED\n": dropped */
    }
    if (server) {
        if (ax_conn_write(c, data, len) < 0) ax_conn_close(c);
    } else if (u->got_len + len < sizeof u->got) {
        memcpy(u->got + u->got_len, data, len);
        u->got_len += len;
        if (u->got_len >= 6) ax_conn_close(c);
    }
    return len;
}

static void up_close(ax_conn *c, int reason)
{
    upgrade *u = ax_conn_data(c);
    u->closed++;
    u->reason = reason;
}

static const ax_conn_cbs up_cbs = {.on_open = up_open, .on_data = up_data, .on_close = up_close};

TEST(tls_start_tls_upgrades_plain_connection)
{
    ax_loop *loop = tu_loop();
    pki k;
    make_pki(&k, "localhost");
    upgrade srv = {.ctx = server_ctx(&k, NULL)};
    upgrade cli = {.ctx =
                       client_ctx(&(ax_tls_opts){.ca_file = k.cert, .server_name = "localhost"})};
    int err;
    ax_listener *l = ax_listen(loop, "tcp://127.0.0.1:0", &up_cbs, NULL, &srv, &err);
    ASSERT(l != NULL);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", ax_addr_port(ax_listener_addr(l)));
    ax_conn *c = ax_connect(loop, url, &up_cbs, NULL, &cli, &err);
    ASSERT(c != NULL);
    ASSERT_EQ(ax_conn_start_tls(c, NULL), AX_EINVAL);
    RUN_UNTIL(loop, cli.closed && srv.closed, 10000);
    ASSERT_EQ(srv.rc, 0);
    ASSERT_EQ(cli.rc, 0);
    ASSERT(srv.tls_after && cli.tls_after);
    ASSERT_EQ(srv.opened, 1); /* no second on_open after the handshake */
    ASSERT_EQ(cli.opened, 1);
    ASSERT_EQ(cli.got_len, 6); /* "hello\n" echoed over TLS; "INJECTED\n" never */
    ASSERT(!memcmp(cli.got, "hello\n", 6));
    ASSERT_EQ(cli.reason, 0);
    ax_listener_close(l);
    ax_tls_ctx_free(srv.ctx);
    ax_tls_ctx_free(cli.ctx);
    ax_loop_free(loop);
}
