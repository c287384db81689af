/* cat.c: `axon cat`: netcat for every transport.
 *
 * Everything is a peer: a stream connection, a UDP socket, or this
 * process's standard input and output.  Bytes from a peer go to its mate
 * (connect and listen modes: stdio and the socket; relay mode: the two
 * sockets), or to every other peer (--broker, and standard input with -k).
 * The end of a peer's input half-closes its mate's output, and the program
 * ends when every pipe is done.  Input for a peer that is not up yet (a
 * relay's upstream still connecting or in its TLS handshake) is held, a
 * bounded amount with its sender paused beyond that, and sent when the peer
 * is up; an end of input that came meanwhile follows it.
 *
 * Standard input is read by a thread that posts each chunk to the loop and
 * waits until the loop has taken it: that works for every kind of stdin
 * (terminal, pipe, regular file, /dev/null) on every backend (epoll refuses
 * regular files), never sets O_NONBLOCK on a descriptor shared with the
 * shell, and gives backpressure for free: while the socket is above its
 * high watermark the loop simply does not hand the thread its next turn.
 * Standard output is written with blocking writes for the same reasons; a
 * slow stdout slows the socket down (TCP flow control), as netcat does. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>
#include <axon/ws.h>

#include "cli.h"
#include "core/buf.h"
#include "proto/ws/utf8.h"

#define CHUNK 16384
/* Input for a peer that is not up yet (connecting, TLS handshake, DNS) is
 * held, up to about this much; then its sender is paused until it is up. */
#define HOLD_MAX (64 * 1024)

enum { P_STDIO, P_STREAM, P_UDP, P_LISTEN, P_WS };

typedef struct cat cat;
typedef struct peer peer;

struct peer {
    cat *app;
    int kind;
    ax_conn *conn;
    ax_udp *udp;
    ax_ws *ws;       /* ws://, wss:// */
    ax__buf line;    /* ws text mode: a line not yet ended */
    ax_dns_req *dns; /* udp:// to a name: resolving */
    ax_addr to;      /* UDP listener: where replies go (the latest sender) */
    bool have_to;    /* UDP listener: someone has sent something */
    peer *mate;      /* where input goes; NULL: every other peer */
    peer *paused;    /* a peer we stopped reading because this one is full */
    ax__buf held;    /* input that came before this peer was up */
    bool open, in_done, out_done, closed, client;
    bool abandoned; /* closed by us before it was up: its mate went away */
    peer *next;     /* the app's list of socket peers */
    char label[AX_ADDR_STRLEN + 16];
};

typedef struct stdin_reader {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool busy, stop;
    ssize_t n;
    char buf[CHUNK];
} stdin_reader;

struct cat {
    ax_loop *loop;
    const char *url, *relay_url; /* relay_url: mode `URL1 URL2` */
    bool listen, keep, broker, verbose;
    bool binary;     /* ws: stdin chunks as binary messages, not lines as text */
    bool deflate;    /* ws: offer permessage-deflate */
    unsigned wait_s; /* -w */
    ax_listener *ls;
    ax_timer *udp_quiet;
    peer io; /* stdin + stdout */
    peer lp; /* the listener's user data: accepted connections start with it */
    peer *peers;
    int status;
    stdin_reader rd;
    bool stdin_held;             /* a chunk waits for a peer to send it to */
    const char *cert, *key, *ca; /* tls:// */
    bool insecure;
    ax_tls_ctx *tls_server, *tls_client; /* NULL client: the default context */
};

static bool is_tls(const char *url)
{
    return strncmp(url, "tls://", 6) == 0;
}

static bool is_wss(const char *url)
{
    return strncmp(url, "wss://", 6) == 0;
}

static void note(cat *app, const char *fmt, const char *a, const char *b)
{
    if (app->verbose) {
        fprintf(stderr, "axon cat: ");
        fprintf(stderr, fmt, a, b);
        fputc('\n', stderr);
    }
}

/* ---- peers ------------------------------------------------------------------ */

static peer *peer_new(cat *app, int kind)
{
    peer *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->app = app;
    p->kind = kind;
    p->next = app->peers;
    app->peers = p;
    return p;
}

static void peer_unlink(peer *p)
{
    cat *app = p->app;
    for (peer **pp = &app->peers; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    for (peer *q = app->peers; q; q = q->next)
        if (q->mate == p) q->mate = NULL;
    if (app->io.mate == p) app->io.mate = NULL;
    ax__buf_free(&p->held);
    free(p);
}

static void stdin_release(cat *app);
static void check_done(cat *app);
static bool ws_send(peer *to, const char *d, size_t n);
static void ws_finish(peer *to);

static void write_stdout(cat *app, const char *d, size_t n)
{
    while (n) {
        ssize_t w = write(STDOUT_FILENO, d, n);
        if (w == -1 && errno == EINTR) continue;
        if (w == -1) { /* nobody reads our output any more */
            app->io.out_done = true;
            return;
        }
        d += w;
        n -= (size_t)w;
    }
}

/* Hand bytes to an open peer.  Returns true when it is above its high
 * watermark and the sender should wait for its drain. */
static bool deliver(peer *to, const char *d, size_t n)
{
    switch (to->kind) {
    case P_STDIO:
        write_stdout(to->app, d, n);
        return false;
    case P_STREAM:
        return ax_conn_write(to->conn, d, n) == 1;
    case P_WS:
        return ws_send(to, d, n);
    default:
        if (!to->udp || (to->client && !to->have_to)) return false;
        int rc = ax_udp_send(to->udp, to->client ? &to->to : NULL, d, n);
        (void)rc; /* a datagram that cannot go is lost, as on the network */
        return false;
    }
}

/* Keep bytes for a peer that is not up yet.  Returns true when the hold is
 * full and the sender should wait until the peer is up. */
static bool hold(peer *to, const char *d, size_t n)
{
    if (ax__buf_append(&to->held, d, n) != 0) {
        fprintf(stderr, "axon cat: out of memory holding input for %s\n", to->label);
        to->app->status = 1;
        return true;
    }
    return to->held.len >= HOLD_MAX;
}

/* Send to one peer.  Returns true when the sender should wait for it. */
static bool send_to(peer *to, const char *d, size_t n)
{
    if (to->out_done || to->closed) return false;
    if (!to->open) return hold(to, d, n);
    return deliver(to, d, n);
}

static void pause_peer(peer *p)
{
    if (p->kind == P_STREAM) ax_conn_pause(p->conn);
    if (p->kind == P_WS) ax_conn_pause(ax_ws_conn(p->ws));
    /* stdio: the reader's turn is simply not given back (stdin_release) */
}

static void resume_peer(peer *p)
{
    if (p->kind == P_STREAM)
        ax_conn_resume(p->conn);
    else if (p->kind == P_WS)
        ax_conn_resume(ax_ws_conn(p->ws));
    else if (p->kind == P_STDIO)
        stdin_release(p->app);
}

static bool fans_out(const cat *app, const peer *from)
{
    return app->broker || (from->kind == P_STDIO && !from->mate);
}

/* Route input from `from`.  Returns true when `from` was paused. */
static bool route(cat *app, peer *from, const char *d, size_t n)
{
    if (fans_out(app, from)) {
        for (peer *p = app->peers; p; p = p->next)
            if (p != from && p->open) send_to(p, d, n);
        if (app->broker && from != &app->io) send_to(&app->io, d, n);
        return false;
    }
    peer *to = from->mate;
    if (!to || !send_to(to, d, n)) return false;
    to->paused = from;
    pause_peer(from);
    return true;
}

/* Nothing more will be sent to `to`: half-close it, once what is held for
 * it has gone (peer_up does it for a peer not up yet). */
static void finish_output(cat *app, peer *to)
{
    if (to->kind == P_STREAM && to->open) ax_conn_shutdown(to->conn);
    if (to->kind == P_WS) ws_finish(to);
    if (to->kind == P_UDP) check_done(app);
}

/* `p` is up: send what was held for it, let its sender go on, and pass on
 * an end of input that came meanwhile. */
static void peer_up(peer *p)
{
    bool full = false;
    p->open = true;
    if (p->held.len) full = deliver(p, p->held.p, p->held.len);
    ax__buf_free(&p->held);
    if (!full && p->paused) {
        peer *src = p->paused;
        p->paused = NULL;
        resume_peer(src);
    }
    if (p->out_done && p->kind == P_STREAM) ax_conn_shutdown(p->conn);
}

/* `from` will send nothing more: half-close where its bytes went. */
static void end_of_input(cat *app, peer *from)
{
    from->in_done = true;
    if (from->kind == P_STREAM && from->client && app->keep && !app->relay_url) {
        ax_conn_close(from->conn); /* one of many clients left */
        return;
    }
    if (fans_out(app, from)) { /* standard input ended: shut down every client */
        for (peer *p = app->peers; p; p = p->next)
            if (p->kind == P_STREAM && !p->out_done) {
                p->out_done = true;
                ax_conn_shutdown(p->conn);
            }
        return;
    }
    peer *to = from->mate;
    if (!to || to->out_done) return;
    to->out_done = true;
    finish_output(app, to);
}

/* ---- stream peers ----------------------------------------------------------- */

static void accept_open(ax_conn *c);

static void s_open(ax_conn *c)
{
    if (ax_conn_listener(c)) { /* accepted: user data is still app->lp */
        accept_open(c);
        return;
    }
    peer *p = ax_conn_data(c);
    ax_addr a;
    char shown[AX_ADDR_STRLEN] = "?";
    if (ax_conn_peer(c, &a) == 0) ax_addr_format(&a, shown, sizeof shown);
    note(p->app, "connected to %s (%s)", p->label, shown);
    peer_up(p);
}

static size_t s_data(ax_conn *c, const char *d, size_t n)
{
    peer *p = ax_conn_data(c);
    route(p->app, p, d, n);
    return n;
}

static void s_drain(ax_conn *c)
{
    peer *p = ax_conn_data(c);
    peer *src = p->paused;
    p->paused = NULL;
    if (src) resume_peer(src);
}

static void s_end(ax_conn *c)
{
    peer *p = ax_conn_data(c);
    note(p->app, "%s: end of input%s", p->label, "");
    end_of_input(p->app, p);
}

static void report_failure(cat *app, peer *p, int reason, const char *detail)
{
    ax_url u;
    if (reason == AX_EDNSTIMEDOUT && ax_url_split(p->label, &u, NULL, 0) == 0)
        fprintf(stderr, "axon cat: cannot connect to %s: timed out resolving %s\n", p->label,
                u.host);
    else if (detail)
        fprintf(stderr, "axon cat: cannot connect to %s: %s\n", p->label, detail);
    else
        fprintf(stderr, "axon cat: cannot connect to %s: %s\n", p->label, ax_strerror(reason));
    app->status = 1;
}

static void s_close(ax_conn *c, int reason)
{
    peer *p = ax_conn_data(c);
    if (!p) return; /* accepted, but no memory for its peer */
    cat *app = p->app;
    p->closed = true;
    if (!p->open && p->abandoned)
        note(app, "%s: gave up connecting: the other side went away%s", p->label, "");
    else if (!p->open)
        report_failure(app, p, reason, ax_conn_error_detail(c));
    else if (reason && reason != AX_EOF)
        note(app, "%s closed: %s", p->label,
             ax_conn_error_detail(c) ? ax_conn_error_detail(c) : ax_strerror(reason));
    else
        note(app, "%s closed%s", p->label, "");
    if (p->paused) resume_peer(p->paused);
    /* The other side of a relay: finish it gracefully after a clean end,
     * reset it when this side failed (as a proxy passes an error on). */
    peer *mate = p->mate;
    if (mate && mate->kind == P_STREAM && !mate->closed) {
        mate->abandoned = !mate->open;
        if (!p->open || (reason && reason != AX_EOF))
            ax_conn_abort(mate->conn, reason ? reason : AX_ECONNABORTED);
        else
            ax_conn_close(mate->conn);
    }
    peer_unlink(p);
    check_done(app);
}

static const ax_conn_cbs stream_cbs = {.on_open = s_open,
                                       .on_data = s_data,
                                       .on_drain = s_drain,
                                       .on_end = s_end,
                                       .on_close = s_close};

static peer *stream_connect(cat *app, const char *url)
{
    int err = 0;
    peer *p = peer_new(app, P_STREAM);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", url);
    ax_conn_opts o = {.connect_timeout_ms = app->wait_s * 1000,
                      .tls = is_tls(url) ? app->tls_client : NULL};
    p->conn = ax_connect(app->loop, url, &stream_cbs, &o, p, &err);
    if (!p->conn) {
        fprintf(stderr, "axon cat: cannot connect to %s: %s\n", url, ax_strerror(err));
        peer_unlink(p);
        return NULL;
    }
    return p;
}

/* Accepted: wrap the connection in a peer (its user data is the app). */
static void accept_open(ax_conn *c)
{
    cat *app = ((peer *)ax_conn_data(c))->app;
    peer *p = peer_new(app, P_STREAM);
    if (!p) {
        ax_conn_set_data(c, NULL);
        ax_conn_abort(c, AX_ENOMEM);
        return;
    }
    ax_addr a;
    p->conn = c;
    p->client = true;
    p->open = true;
    if (ax_conn_peer(c, &a) == 0) ax_addr_format(&a, p->label, sizeof p->label);
    ax_conn_set_data(c, p);
    note(app, "accepted %s%s", p->label, "");
    if (!app->keep && app->ls) { /* one client: stop listening */
        ax_listener_close(app->ls);
        app->ls = NULL;
    }
    if (app->relay_url) {
        peer *up = stream_connect(app, app->relay_url);
        if (!up) {
            ax_conn_close(c);
            return;
        }
        up->mate = p;
        p->mate = up;
        return;
    }
    if (!app->broker) p->mate = &app->io;
    if (!app->keep) app->io.mate = p; /* the one client: a plain pipe */
    if (app->io.in_done) {            /* standard input ended before it came */
        p->out_done = true;
        ax_conn_shutdown(c);
    } else if (app->stdin_held) {
        stdin_release(app); /* a held chunk can go now */
    }
}

/* Accepted, but its TLS handshake failed (user data: app->lp). */
static void accept_fail(ax_conn *c, int reason)
{
    peer *lp = ax_conn_data(c);
    const char *why = ax_conn_error_detail(c);
    note(lp->app, "a client failed: %s%s", why ? why : ax_strerror(reason), "");
}

static int stream_listen(cat *app, const char *url)
{
    int err = 0;
    ax_conn_opts o = {.tls = is_tls(url) ? app->tls_server : NULL};
    ax_listen_opts lo = {.on_fail = accept_fail};
    app->ls = ax_listen_ex(app->loop, url, &stream_cbs, &o, &lo, &app->lp, &err);
    if (!app->ls) {
        fprintf(stderr, "axon cat: cannot listen on %s: %s\n", url, ax_strerror(err));
        return err;
    }
    char shown[AX_ADDR_STRLEN];
    ax_listener_url(app->ls, shown, sizeof shown);
    note(app, "listening on %s%s", shown, "");
    return 0;
}

/* ---- UDP peers ----------------------------------------------------------------- */

static uint64_t quiet_ms(const cat *app)
{
    return app->wait_s ? app->wait_s * 1000ull : 1000;
}

static void udp_quiet_cb(ax_timer *t, void *ud)
{
    cat *app = ud;
    (void)t;
    note(app, "udp: quiet since standard input ended; done%s%s", "", "");
    ax_loop_stop(app->loop);
}

static void u_recv(ax_udp *u, const char *d, size_t n, const ax_addr *from)
{
    peer *p = ax_udp_data(u);
    cat *app = p->app;
    if (p->client && (!p->have_to || !ax_addr_equal(&p->to, from))) {
        char shown[AX_ADDR_STRLEN];
        note(app, "datagrams from %s%s", ax_addr_format(from, shown, sizeof shown), "");
        p->to = *from;
        if (!p->have_to) {
            p->have_to = true;
            if (app->stdin_held) stdin_release(app);
        }
    }
    route(app, p, d, n);
    if (app->udp_quiet && ax_timer_active(app->udp_quiet))
        ax_timer_start(app->udp_quiet, quiet_ms(app), 0);
}

static void udp_ready(cat *app, peer *p)
{
    char shown[AX_ADDR_STRLEN];
    note(app, p->client ? "listening on %s%s" : "sending to %s%s",
         ax_addr_format(ax_udp_addr(p->udp), shown, sizeof shown), "");
    peer_up(p);
}

/* udp:// to a name: the library's UDP sockets take numeric addresses, so
 * resolve first and connect to the first address. */
static void udp_resolved(ax_dns_req *req, int status, const ax_addr *a, size_t n, void *ud)
{
    peer *p = ud;
    cat *app = p->app;
    char url[AX_ADDR_STRLEN];
    int err = status;
    (void)req, (void)n;
    p->dns = NULL;
    if (status == 0) {
        ax_addr_format(&a[0], url, sizeof url);
        p->udp = ax_udp_connect(app->loop, url, u_recv, NULL, p, &err);
    }
    if (!p->udp) {
        report_failure(app, p, err, NULL);
        peer_unlink(p);
        ax_loop_stop(app->loop);
        return;
    }
    udp_ready(app, p);
    if (app->stdin_held) stdin_release(app);
}

static peer *udp_open(cat *app, const char *url, bool bind)
{
    int err = 0;
    peer *p = peer_new(app, P_UDP);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", url);
    p->client = bind;
    ax_addr num;
    ax_url u;
    if (!bind && ax_addr_parse(url, &num, NULL, 0) == AX_EHOST &&
        ax_url_split(url, &u, NULL, 0) == 0) {
        ax_dns_opts o = {.timeout_ms = app->wait_s * 1000};
        p->dns =
            ax_dns_resolve(app->loop, u.host, u.port, AX_SCHEME_UDP, &o, udp_resolved, p, &err);
        if (p->dns) return p;
    }
    p->udp = bind ? ax_udp_bind(app->loop, url, u_recv, NULL, p, &err)
                  : ax_udp_connect(app->loop, url, u_recv, NULL, p, &err);
    if (!p->udp) {
        fprintf(stderr, "axon cat: cannot %s %s: %s\n", bind ? "listen on" : "connect to", url,
                ax_strerror(err));
        peer_unlink(p);
        return NULL;
    }
    udp_ready(app, p);
    return p;
}

/* ---- WebSocket peers --------------------------------------------------------- */

/* Text mode: each line (without its LF, and a CR before it) is one text
 * message; a line that is not UTF-8 goes as a binary message. */
static int ws_send_line(peer *to, const char *d, size_t n)
{
    if (n && d[n - 1] == '\r') n--;
    if (!ax_utf8_valid(d, n)) return ax_ws_send_binary(to->ws, d, n);
    return ax_ws_send_text(to->ws, d, n);
}

static bool line_append(peer *to, const char *d, size_t n)
{
    return ax__buf_append(&to->line, d, n) == 0;
}

static bool ws_send(peer *to, const char *d, size_t n)
{
    if (to->app->binary) return ax_ws_send_binary(to->ws, d, n) == 1;
    bool full = false;
    while (n) {
        const char *nl = memchr(d, '\n', n);
        size_t k = nl ? (size_t)(nl - d) : n;
        if (!nl || to->line.len) {
            if (!line_append(to, d, k)) fprintf(stderr, "axon cat: out of memory\n");
        }
        if (!nl) break;
        int rc = to->line.len ? ws_send_line(to, to->line.p, to->line.len) : ws_send_line(to, d, k);
        to->line.len = 0;
        full |= rc == 1;
        d += k + 1;
        n -= k + 1;
    }
    return full;
}

/* Standard input ended: the last partial line, then the close handshake. */
static void ws_finish(peer *to)
{
    if (!to->open) return; /* w_open closes once it is */
    if (to->line.len) ws_send_line(to, to->line.p, to->line.len);
    to->line.len = 0;
    ax_ws_close(to->ws, AX_WS_CLOSE_NORMAL, NULL);
}

static void w_open(ax_ws *ws)
{
    peer *p = ax_ws_data(ws);
    note(p->app, "connected to %s (subprotocol '%s')", p->label, ax_ws_protocol(ws));
    peer_up(p);
    if (p->out_done)
        ws_finish(p);
    else if (p->app->stdin_held)
        stdin_release(p->app);
}

static void w_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    peer *p = ax_ws_data(ws);
    (void)binary;
    route(p->app, p, data, len);
    if (!p->app->binary) route(p->app, p, "\n", 1);
}

static void w_drain(ax_ws *ws)
{
    peer *p = ax_ws_data(ws);
    peer *src = p->paused;
    p->paused = NULL;
    if (src) resume_peer(src);
}

static void w_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    peer *p = ax_ws_data(ws);
    cat *app = p->app;
    char why[160];
    p->closed = true;
    snprintf(why, sizeof why, "%d%s%.*s", code, len ? " " : "", (int)len, reason);
    if (!p->open) {
        fprintf(stderr, "axon cat: cannot connect to %s: connection or handshake failed\n",
                p->label);
        app->status = 1;
    } else if (code != AX_WS_CLOSE_NORMAL && code != AX_WS_CLOSE_NO_STATUS) {
        fprintf(stderr, "axon cat: %s closed: %s\n", p->label, why);
    } else {
        note(app, "%s closed: %s", p->label, why);
    }
    if (p->paused) resume_peer(p->paused);
    ax__buf_free(&p->line);
    peer_unlink(p);
    check_done(app);
}

static const ax_ws_cbs ws_cbs = {
    .on_open = w_open, .on_message = w_message, .on_drain = w_drain, .on_close = w_close};

static int scheme_ws_connect(cat *app, const char *url, peer **out)
{
    int err = 0;
    peer *p = peer_new(app, P_WS);
    if (!p) return -1;
    snprintf(p->label, sizeof p->label, "%s", url);
    ax_ws_opts o = {.deflate = app->deflate, .tls = is_wss(url) ? app->tls_client : NULL};
    p->ws = ax_ws_connect(app->loop, url, &ws_cbs, &o, p, &err);
    if (!p->ws) {
        fprintf(stderr, "axon cat: cannot connect to %s: %s\n", url, ax_strerror(err));
        peer_unlink(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int scheme_ws_listen(cat *app, const char *url)
{
    (void)app;
    fprintf(stderr,
            "axon cat: %s: listening is not supported for WebSocket URLs "
            "(try: axon echo ws://...)\n",
            url);
    return -1;
}

/* ---- schemes: a URL's scheme picks how to connect and listen ----------------- */

static int scheme_stream_connect(cat *app, const char *url, peer **out)
{
    return (*out = stream_connect(app, url)) ? 0 : -1;
}
static int scheme_udp_connect(cat *app, const char *url, peer **out)
{
    return (*out = udp_open(app, url, false)) ? 0 : -1;
}
static int scheme_udp_listen(cat *app, const char *url)
{
    peer *p = udp_open(app, url, true);
    if (!p) return -1;
    p->mate = &app->io;
    app->io.mate = p;
    return 0;
}

static const struct scheme {
    const char *name;
    bool stream;
    int (*connect)(cat *app, const char *url, peer **out);
    int (*listen)(cat *app, const char *url);
} schemes[] = {
    {"tcp", true, scheme_stream_connect, stream_listen},
    {"unix", true, scheme_stream_connect, stream_listen},
    {"tls", true, scheme_stream_connect, stream_listen},
    {"udp", false, scheme_udp_connect, scheme_udp_listen},
    {"ws", true, scheme_ws_connect, scheme_ws_listen},
    {"wss", true, scheme_ws_connect, scheme_ws_listen},
};

static const struct scheme *find_scheme(const char *url)
{
    ax_url u;
    char why[256];
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i].name); /* ws URLs: the port is optional */
        if (schemes[i].connect == scheme_ws_connect && strncmp(url, schemes[i].name, n) == 0 &&
            strncmp(url + n, "://", 3) == 0)
            return &schemes[i];
    }
    if (ax_url_split(url, &u, why, sizeof why) != 0) {
        fprintf(stderr, "axon cat: %s\n", why);
        return NULL;
    }
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
        if (strcmp(u.scheme, schemes[i].name) == 0) return &schemes[i];
    fprintf(stderr,
            "axon cat: unknown scheme '%s' in '%s' (expected tcp, udp, unix, tls, ws or wss)\n",
            u.scheme, url);
    return NULL;
}

/* ---- standard input ------------------------------------------------------------ */

/* Can standard input go anywhere yet?  A connecting stream queues it; a
 * listener must have a client (UDP: a sender to reply to). */
static bool has_destination(const cat *app)
{
    const peer *m = app->io.mate;
    if (m && m->kind == P_WS) return m->open;
    if (m) return m->kind != P_UDP || (m->udp && (!m->client || m->have_to));
    for (const peer *p = app->peers; p; p = p->next)
        if (p->open) return true;
    return false;
}

static void stdin_chunk(ax_loop *loop, void *arg)
{
    cat *app = arg;
    (void)loop;
    stdin_reader *rd = &app->rd;
    if (rd->n <= 0) {
        if (rd->n < 0) fprintf(stderr, "axon cat: reading standard input: %s\n", strerror(errno));
        note(app, "standard input ended%s%s", "", "");
        end_of_input(app, &app->io);
        if (app->udp_quiet) ax_timer_start(app->udp_quiet, quiet_ms(app), 0);
        check_done(app);
        return;
    }
    if (!has_destination(app)) { /* hold it until a client arrives */
        app->stdin_held = true;
        return;
    }
    app->stdin_held = false;
    if (!route(app, &app->io, rd->buf, (size_t)rd->n)) stdin_release(app);
}

/* Give the reader thread its next turn. */
static void stdin_release(cat *app)
{
    stdin_reader *rd = &app->rd;
    if (app->stdin_held) {
        stdin_chunk(app->loop, app);
        return;
    }
    pthread_mutex_lock(&rd->mu);
    rd->busy = false;
    pthread_cond_signal(&rd->cv);
    pthread_mutex_unlock(&rd->mu);
}

static void *stdin_thread(void *arg)
{
    cat *app = arg;
    stdin_reader *rd = &app->rd;
    for (;;) {
        pthread_mutex_lock(&rd->mu);
        while (rd->busy && !rd->stop)
            pthread_cond_wait(&rd->cv, &rd->mu);
        bool stop = rd->stop;
        pthread_mutex_unlock(&rd->mu);
        if (stop) break;
        ssize_t n;
        do
            n = read(STDIN_FILENO, rd->buf, sizeof rd->buf);
        while (n == -1 && errno == EINTR);
        pthread_mutex_lock(&rd->mu);
        stop = rd->stop;
        if (!stop) {
            rd->busy = true;
            rd->n = n;
            ax_loop_post(app->loop, stdin_chunk, app);
        }
        pthread_mutex_unlock(&rd->mu);
        if (stop || n <= 0) break;
    }
    return NULL;
}

static int stdin_start(cat *app)
{
    sigset_t all, old;
    sigfillset(&all); /* signals belong to the loop's thread */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&app->rd.th, NULL, stdin_thread, app);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) pthread_detach(app->rd.th); /* it may sit in read() forever */
    return rc;
}

/* The loop is about to go: the thread must not post to it any more. */
static void stdin_stop(cat *app)
{
    pthread_mutex_lock(&app->rd.mu);
    app->rd.stop = true;
    pthread_cond_signal(&app->rd.cv);
    pthread_mutex_unlock(&app->rd.mu);
}

/* ---- the end ---------------------------------------------------------------- */

static void check_done(cat *app)
{
    if (app->keep || app->broker) return; /* until a signal */
    if (app->ls) return;                  /* still waiting for the client */
    bool udp_only = app->peers && app->peers->kind == P_UDP && !app->peers->next;
    if (udp_only) { /* no end from the peer: the quiet timer decides */
        return;
    }
    if (!app->peers) ax_loop_stop(app->loop);
}

static void on_signal(ax_loop *loop, int signo)
{
    (void)signo;
    ax_loop_stop(loop);
}

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon cat [OPTIONS] URL\n"
            "       axon cat -l [OPTIONS] URL\n"
            "       axon cat [-l] [OPTIONS] URL1 URL2\n\n"
            "Netcat for tcp://, udp://, unix://, tls://, ws:// and wss:// URLs.  Standard\n"
            "input goes to the socket and the socket to standard output, both at once.\n"
            "The end of standard input shuts down the writing side (the peer sees EOF, like\n"
            "nc -N); the program ends when both directions are done.  Host names are\n"
            "resolved (DNS, /etc/hosts).\n\n"
            "With two URLs, bytes are relayed between the two endpoints (standard input and\n"
            "output are not used): connect to both, or with -l listen on URL1 and connect\n"
            "each client to URL2.\n\n"
            "Options:\n"
            "  -l, --listen      listen on URL and talk to the first client (udp: to whoever\n"
            "                    sends, replies go to the latest sender)\n"
            "  -k, --keep-open   keep listening for more clients; standard input goes to\n"
            "                    all of them, what they send goes to standard output\n"
            "      --broker      a chat room: every client's input is relayed to all other\n"
            "                    clients (and standard input and output take part); implies -k\n"
            "  -w, --wait SECS   give up connecting after SECS (default 30); udp: end SECS\n"
            "                    after standard input ended with nothing received (default 1)\n"
            "      --binary      ws://: standard input as binary messages, messages written\n"
            "                    as they are (default: each line is a text message, and\n"
            "                    each message is printed as a line)\n"
            "      --deflate     ws://: offer permessage-deflate compression\n"
            "  -v, --verbose     print connection events to standard error\n"
            "      --cert FILE   tls:// listeners: certificate (PEM; make one: axon cert)\n"
            "      --key FILE    tls:// listeners: private key (PEM); default: in --cert\n"
            "      --ca FILE     tls:// clients: trust the CAs in FILE (default: the system's)\n"
            "      --insecure    tls:// clients: accept any certificate (testing only)\n"
            "  -h, --help        show this help\n\n"
            "Examples:\n"
            "  axon cat tcp://example.org:80 < request.txt\n"
            "  axon cat -l tcp://127.0.0.1:7000 > received.bin\n"
            "  axon cat udp://127.0.0.1:7001\n"
            "  axon cat -v unix:///tmp/app.sock\n"
            "  axon cat tls://example.org:443\n"
            "  axon cat -l tls://127.0.0.1:7443 --cert cert.pem --key key.pem\n"
            "  axon cat -l -k tcp://127.0.0.1:7000 tls://example.org:443  (plain to TLS)\n"
            "  axon cat ws://127.0.0.1:8080/chat\n"
            "  axon cat --broker tcp://0.0.0.0:7000            (then: axon cat tcp://HOST:7000)\n"
            "  axon cat -l -k tcp://127.0.0.1:8080 tcp://10.0.0.5:80   (a TCP proxy)\n");
}

static int parse_args(cat *app, int argc, char **argv)
{
    static const struct option longopts[] = {{"listen", no_argument, NULL, 'l'},
                                             {"keep-open", no_argument, NULL, 'k'},
                                             {"broker", no_argument, NULL, 'b'},
                                             {"wait", required_argument, NULL, 'w'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"binary", no_argument, NULL, 'B'},
                                             {"deflate", no_argument, NULL, 'D'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"cert", required_argument, NULL, 'C'},
                                             {"key", required_argument, NULL, 'K'},
                                             {"ca", required_argument, NULL, 'A'},
                                             {"insecure", no_argument, NULL, 'I'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "lkw:vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'l':
            app->listen = true;
            break;
        case 'k':
            app->keep = true;
            break;
        case 'b':
            app->broker = app->keep = app->listen = true;
            break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 86400) {
                fprintf(stderr, "axon cat: --wait wants 1..86400 seconds, got '%s'\n", optarg);
                return 2;
            }
            app->wait_s = (unsigned)v;
            break;
        }
        case 'v':
            app->verbose = true;
            break;
        case 'C':
            app->cert = optarg;
            break;
        case 'K':
            app->key = optarg;
            break;
        case 'A':
            app->ca = optarg;
            break;
        case 'I':
            app->insecure = true;
            break;
        case 'B':
            app->binary = true;
            break;
        case 'D':
            app->deflate = true;
            break;
        case 'h':
            help(stdout);
            return -1;
        default:
            help(stderr);
            return 2;
        }
    }
    int n = argc - optind;
    if (n < 1 || n > 2) {
        fprintf(stderr, "axon cat: %s\n\n", n < 1 ? "no URL given" : "too many URLs");
        help(stderr);
        return 2;
    }
    app->url = argv[optind];
    app->relay_url = n == 2 ? argv[optind + 1] : NULL;
    if (app->relay_url && app->broker) {
        fprintf(stderr, "axon cat: --broker takes one URL\n");
        return 2;
    }
    return 0;
}

/* TLS contexts for the tls:// URLs: a server one for a listener, a client
 * one when --ca or --insecure changes the default.  0 or -1 (printed). */
static int make_tls(cat *app)
{
    char why[512];
    int err;
    bool tls_listen = app->listen && is_tls(app->url);
    bool tls_connect = (!app->listen && (is_tls(app->url) || is_wss(app->url))) ||
                       (app->relay_url && (is_tls(app->relay_url) || is_wss(app->relay_url)));
    if (tls_listen) {
        if (!app->cert) {
            fprintf(stderr,
                    "axon cat: %s: listening on tls:// needs --cert FILE and --key FILE "
                    "(make a pair with: axon cert --out DIR)\n",
                    app->url);
            return -1;
        }
        ax_tls_opts o = {.cert_file = app->cert, .key_file = app->key};
        if (!(app->tls_server = ax_tls_server_new(&o, why, sizeof why, &err))) {
            fprintf(stderr, "axon cat: %s\n", why);
            return -1;
        }
    }
    if (tls_connect && (app->ca || app->insecure)) {
        ax_tls_opts o = {.ca_file = app->ca, .insecure = app->insecure};
        if (!(app->tls_client = ax_tls_client_new(&o, why, sizeof why, &err))) {
            fprintf(stderr, "axon cat: %s\n", why);
            return -1;
        }
    }
    return 0;
}

/* Open the endpoints for the mode asked.  0 or -1 (message printed). */
static int setup(cat *app)
{
    const struct scheme *s1 = find_scheme(app->url), *s2 = NULL;
    if (!s1) return -1;
    if (app->relay_url && !(s2 = find_scheme(app->relay_url))) return -1;
    if (make_tls(app) != 0) return -1;
    if ((app->broker || (app->listen && app->relay_url)) && !s1->stream) {
        fprintf(stderr, "axon cat: %s: --broker and -l relays need a stream URL (tcp, unix, tls)\n",
                app->url);
        return -1;
    }
    if (app->listen) {
        if (s1->listen(app, app->url) != 0) return -1;
        if (!s1->stream && !app->relay_url) {
            app->udp_quiet = ax_timer_new(app->loop, udp_quiet_cb, app);
            if (app->keep) app->keep = false; /* one socket serves every sender */
        }
        return 0;
    }
    peer *a, *b;
    if (s1->connect(app, app->url, &a) != 0) return -1;
    if (app->relay_url) {
        if (s2->connect(app, app->relay_url, &b) != 0) return -1;
        a->mate = b;
        b->mate = a;
        return 0;
    }
    a->mate = &app->io;
    app->io.mate = a;
    if (!s1->stream) app->udp_quiet = ax_timer_new(app->loop, udp_quiet_cb, app);
    return 0;
}

int cmd_cat(int argc, char **argv)
{
    static cat app; /* the reader thread may outlive cmd_cat, blocked in read() */
    int err, rc = parse_args(&app, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    pthread_mutex_init(&app.rd.mu, NULL);
    pthread_cond_init(&app.rd.cv, NULL);
    app.io.app = &app;
    app.lp.app = &app;
    app.lp.kind = P_LISTEN;
    app.io.kind = P_STDIO;
    app.io.open = true;
    snprintf(app.io.label, sizeof app.io.label, "standard input");
    signal(SIGPIPE, SIG_IGN);
    if (!(app.loop = ax_loop_new(NULL, &err))) {
        fprintf(stderr, "axon cat: cannot create loop: %s\n", ax_strerror(err));
        return 1;
    }
    ax_loop_handle_signals(app.loop, on_signal);
    if (setup(&app) != 0 || (!app.relay_url && stdin_start(&app) != 0)) {
        app.status = 1;
    } else {
        ax_loop_run(app.loop);
    }
    if (!app.relay_url) stdin_stop(&app);
    ax_timer_free(app.udp_quiet);
    for (peer *p = app.peers; p; p = p->next)
        if (p->dns) ax_dns_cancel(p->dns);
    ax_loop_free(app.loop);
    while (app.peers)
        peer_unlink(app.peers);
    ax_tls_ctx_free(app.tls_server);
    ax_tls_ctx_free(app.tls_client);
    fflush(stdout);
    return app.status;
}
