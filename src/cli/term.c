/* term.c: `axon term agent|connect`: remote terminals through the hub
 * (docs/remote.md; the hub's side is src/hub/gw_term.c).
 *
 *   agent    runs on the machine to reach: dials out to the hub (so it
 *            works behind NAT), and runs COMMAND on a pseudo-terminal for
 *            each session the hub opens; reconnects with backoff, keeping
 *            the session (and what it printed meanwhile) for a grace period
 *   connect  a terminal client in raw mode, like ssh: keys, Ctrl-C and
 *            window-size changes go through; resumes by sequence number
 *            after a drop; the terminal is restored on every way out */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <jansson.h>

#include <axon/axon.h>
#include <axon/ws.h>

#include "cli.h"
#include "core/pty.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 15000
#define HOLD_MAX (1u << 20) /* output kept for the hub while it is away */

/* ---- shared: the hub's address and the hublink to it --------------------------------------- */

typedef struct hublink {
    ax_loop *loop;
    ax_ws *ws;
    char url[1024];
    char headers[8400];
    ax_timer *retry;
    uint32_t backoff_ms;
    bool opened_once, up, quit;
    void (*connect)(struct hublink *l);
} hublink;

/* URL as the user gives it (ws://, wss://, http://, https://; .../term/NAME)
 * plus `tail` ("/agent", "/ws"). */
static int make_url(const char *in, const char *tail, char *out, size_t cap)
{
    const char *rest = in;
    const char *scheme = "ws://";
    if (strncmp(in, "ws://", 5) == 0)
        rest = in + 5;
    else if (strncmp(in, "wss://", 6) == 0)
        rest = in + 6, scheme = "wss://";
    else if (strncmp(in, "http://", 7) == 0)
        rest = in + 7;
    else if (strncmp(in, "https://", 8) == 0)
        rest = in + 8, scheme = "wss://";
    else
        return -1;
    size_t n = strlen(rest);
    while (n && rest[n - 1] == '/')
        n--;
    if (!strstr(rest, "/term/")) return -1;
    int k = snprintf(out, cap, "%s%.*s%s", scheme, (int)n, rest, tail);
    return k > 0 && (size_t)k < cap ? 0 : -1;
}

static void auth_headers(hublink *l, const char *token)
{
    l->headers[0] = '\0';
    if (token && *token)
        snprintf(l->headers, sizeof l->headers, "Authorization: Bearer %s\r\n", token);
}

static void retry_fire(ax_timer *t, void *ud)
{
    hublink *l = ud;
    (void)t;
    l->connect(l);
}

/* Try again later: backoff doubling to BACKOFF_MAX_MS, with jitter. */
static void link_later(hublink *l)
{
    if (l->quit) return;
    uint32_t d = l->backoff_ms ? l->backoff_ms : BACKOFF_MIN_MS;
    l->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
    d = d / 2 + (uint32_t)(rand() % (int)(d / 2 + 1));
    ax_timer_start(l->retry, d, 0);
}

static int send_json(ax_ws *ws, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = s ? ax_ws_send_text(ws, s, strlen(s)) : AX_ENOMEM;
    free(s);
    json_decref(j);
    return rc;
}

/* ---- agent ---------------------------------------------------------------------------------- */

typedef struct agent {
    hublink l;
    char **argv; /* COMMAND, or NULL: the user's shell */
    pid_t child;
    int pty;
    ax_watch *pw;
    char *hold; /* output while the hub is away */
    size_t nhold;
    char *pend; /* keys the pty could not take yet */
    size_t npend;
    uint32_t grace_s;
    uint64_t down_since;
    ax_timer *grace;
    ax_timer *flush; /* bulk output held (core/pty.h) */
    ax__pty_out *out;
    bool once;
} agent;

static void agent_connect(hublink *l);

static void agent_send(agent *a, const void *data, size_t len)
{
    if (a->l.up && a->nhold == 0 && ax_ws_send_binary(a->l.ws, data, len) >= 0) return;
    if (a->nhold + len > HOLD_MAX) return; /* past the grace buffer: lost (said in the docs) */
    char *h = realloc(a->hold, a->nhold + len);
    if (!h) return;
    memcpy(h + a->nhold, data, len);
    a->hold = h, a->nhold += len;
}

static void out_send(agent *a)
{
    ax_timer_stop(a->flush);
    a->out->holding = false;
    if (a->out->len) agent_send(a, a->out->buf, a->out->len);
    a->out->len = 0;
}

static void flush_fire(ax_timer *t, void *ud)
{
    (void)t;
    out_send(ud);
}

static void child_gone(agent *a)
{
    int status = 0, code = -1;
    out_send(a);
    if (a->pw) ax_watch_free(a->pw);
    a->pw = NULL;
    if (a->pty >= 0) close(a->pty);
    a->pty = -1;
    if (a->child > 0 && waitpid(a->child, &status, 0) == a->child)
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    a->child = 0;
    a->npend = 0;
    if (a->l.up) send_json(a->l.ws, json_pack("{s:s,s:i}", "type", "exit", "code", code));
    if (a->once) {
        a->l.quit = true;
        if (a->l.ws) ax_ws_close(a->l.ws, AX_WS_CLOSE_NORMAL, "done");
    }
}

static void pty_event(ax_watch *w, unsigned ev, void *ud)
{
    agent *a = ud;
    (void)w;
    if (ev & AX_WATCH_WRITE && a->npend) {
        ssize_t n = write(a->pty, a->pend, a->npend);
        if (n > 0) {
            memmove(a->pend, a->pend + n, a->npend - (size_t)n);
            a->npend -= (size_t)n;
        }
        if (!a->npend && ax_watch_set(a->pw, AX_WATCH_READ) != 0) return;
    }
    if (!(ev & AX_WATCH_READ)) return;
    switch (ax__pty_gather(a->pty, a->out)) {
    case AX__PTY_SEND:
        out_send(a);
        break;
    case AX__PTY_HOLD:
        ax_timer_start(a->flush, AX__PTY_HOLD_MS, 0);
        break;
    case AX__PTY_EOF:
        child_gone(a);
        break;
    }
}

static void session_open(agent *a, int cols, int rows)
{
    if (a->child > 0) return;
    const char *sh = getenv("SHELL");
    char *shell[] = {(char *)(sh && *sh ? sh : "/bin/sh"), "-i", NULL};
    int fd;
    pid_t pid = ax__pty_spawn(a->argv ? a->argv : shell, NULL, (uint16_t)cols, (uint16_t)rows, &fd);
    if (pid == -1) {
        fprintf(stderr, "axon term agent: forkpty: %s\n", strerror(errno));
        return;
    }
    a->out->len = 0;
    a->out->holding = false;
    a->pty = fd;
    a->child = pid;
    a->pw = ax_watch_new(a->l.loop, fd, pty_event, a);
    if (!a->pw || ax_watch_set(a->pw, AX_WATCH_READ) != 0) child_gone(a);
}

static void session_close(agent *a)
{
    if (a->child > 0) kill(-a->child, SIGHUP), kill(a->child, SIGHUP);
}

static void keys(agent *a, const char *data, size_t len)
{
    if (a->pty < 0) return;
    if (!a->npend) {
        ssize_t n = write(a->pty, data, len);
        if (n < 0) n = 0;
        data += n, len -= (size_t)n;
    }
    if (!len) return;
    if (a->npend + len > HOLD_MAX) return;
    char *p = realloc(a->pend, a->npend + len);
    if (!p) return;
    memcpy(p + a->npend, data, len);
    a->pend = p, a->npend += len;
    if (ax_watch_set(a->pw, AX_WATCH_READ | AX_WATCH_WRITE) != 0) return;
}

static void agent_open(ax_ws *ws)
{
    agent *a = ax_ws_data(ws);
    a->l.up = true;
    a->l.opened_once = true;
    a->l.backoff_ms = 0;
    ax_timer_stop(a->grace);
    fprintf(stderr, "axon term agent: connected to %s\n", a->l.url);
    if (send_json(ws, json_pack("{s:s,s:b}", "type", "hello", "live", a->child > 0)) < 0) return;
    if (a->nhold) { /* what the session printed while the hub was away */
        if (ax_ws_send_binary(ws, a->hold, a->nhold) >= 0) a->nhold = 0;
    }
}

static void agent_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    agent *a = ax_ws_data(ws);
    if (binary) {
        keys(a, data, len);
        return;
    }
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    int cols = (int)json_integer_value(json_object_get(o, "cols"));
    int rows = (int)json_integer_value(json_object_get(o, "rows"));
    if (!type) {
    } else if (strcmp(type, "open") == 0) {
        session_open(a, cols > 0 ? cols : 80, rows > 0 ? rows : 24);
    } else if (strcmp(type, "resize") == 0 && a->pty >= 0 && cols > 0 && rows > 0) {
        ax__pty_resize(a->pty, (uint16_t)cols, (uint16_t)rows); /* the child gets SIGWINCH */
    } else if (strcmp(type, "close") == 0) {
        session_close(a);
    }
    json_decref(o);
}

static void grace_over(ax_timer *t, void *ud)
{
    agent *a = ud;
    (void)t;
    fprintf(stderr, "axon term agent: the hub was away past the grace period: session ends\n");
    session_close(a);
    a->nhold = 0;
}

static void agent_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    agent *a = ax_ws_data(ws);
    bool was_up = a->l.up;
    a->l.up = false;
    a->l.ws = NULL;
    if (was_up)
        fprintf(stderr, "axon term agent: disconnected (%d %.*s)\n", code, (int)len, reason);
    if (code == AX_WS_CLOSE_POLICY && len >= 8 && memcmp(reason, "replaced", 8) == 0) {
        fprintf(stderr, "axon term agent: another agent took this name: exiting\n");
        a->l.quit = true;
    }
    if (a->l.quit) {
        session_close(a);
        ax_loop_stop(a->l.loop);
        return;
    }
    if (!was_up && !a->l.backoff_ms)
        fprintf(stderr,
                "axon term agent: cannot open %s: refused (the token needs write on "
                "term/NAME/out) or unreachable; trying again with backoff\n",
                a->l.url);
    if (was_up && a->child > 0) ax_timer_start(a->grace, (uint64_t)a->grace_s * 1000, 0);
    link_later(&a->l);
}

static const ax_ws_cbs agent_cbs = {
    .on_open = agent_open, .on_message = agent_message, .on_close = agent_close};

static void agent_connect(hublink *l)
{
    agent *a = (agent *)l;
    ax_ws_opts o = {.headers = l->headers, .ping_interval_ms = 20000, .max_message = 1u << 20};
    int err = 0;
    l->ws = ax_ws_connect(l->loop, l->url, &agent_cbs, &o, a, &err);
    if (!l->ws) {
        fprintf(stderr, "axon term agent: %s: %s\n", l->url, ax_strerror(err));
        link_later(l);
    }
}

static void agent_signal(ax_loop *loop, int signo)
{
    agent *a = ax_loop_data(loop);
    (void)signo;
    a->l.quit = true;
    session_close(a);
    if (a->l.ws)
        ax_ws_close(a->l.ws, AX_WS_CLOSE_GOING_AWAY, "agent stopping");
    else
        ax_loop_stop(loop);
}

static void usage_agent(FILE *out)
{
    fprintf(out,
            "Usage: axon term agent URL [--token T] [--grace S] [--once] [-- COMMAND [ARGS]]\n\n"
            "Serve a terminal through the hub: dial out to URL (ws://HUB/term/NAME, wss://...;\n"
            "works behind NAT) and run COMMAND (default: $SHELL, else /bin/sh) on a\n"
            "pseudo-terminal for each session the hub opens (when a writer attaches).\n"
            "Reconnects with backoff; a session lives on while the hub is away, for S seconds.\n\n"
            "  --token T   a token (axon token) with write on term/NAME/out; default $AXON_TOKEN\n"
            "  --grace S   keep a session this long while the hub is unreachable (default 300)\n"
            "  --once      exit when the first session ends\n"
            "  -h, --help  this text\n\n"
            "Example:\n"
            "  axon term agent ws://hub:8080/term/box1 --token \"$(cat box1.jwt)\"\n");
}

static int term_agent(int argc, char **argv)
{
    static const struct option lo[] = {{"token", required_argument, NULL, 't'},
                                       {"grace", required_argument, NULL, 'g'},
                                       {"once", no_argument, NULL, '1'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    const char *token = getenv("AXON_TOKEN");
    agent a = {.pty = -1, .grace_s = 300};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "t:g:h", lo, NULL)) != -1) {
        if (ch == 't')
            token = optarg;
        else if (ch == 'g')
            a.grace_s = (uint32_t)strtoul(optarg, NULL, 10);
        else if (ch == '1')
            a.once = true;
        else if (ch == 'h')
            return usage_agent(stdout), 0;
        else
            return usage_agent(stderr), 2;
    }
    if (optind >= argc || make_url(argv[optind], "/agent", a.l.url, sizeof a.l.url) != 0) {
        fprintf(stderr, "axon term agent: give the hub's URL: ws://HOST:PORT/term/NAME\n");
        return 2;
    }
    optind++;
    if (optind < argc) a.argv = argv + optind;
    auth_headers(&a.l, token);
    signal(SIGPIPE, SIG_IGN);
    int err = 0;
    a.l.loop = ax_loop_new(NULL, &err);
    if (!a.l.loop) return fprintf(stderr, "axon term agent: %s\n", ax_strerror(err)), 1;
    ax_loop_set_data(a.l.loop, &a);
    a.l.connect = agent_connect;
    a.l.retry = ax_timer_new(a.l.loop, retry_fire, &a.l);
    a.grace = ax_timer_new(a.l.loop, grace_over, &a);
    a.flush = ax_timer_new(a.l.loop, flush_fire, &a);
    a.out = malloc(sizeof *a.out);
    if (!a.grace || !a.flush || !a.out)
        return fprintf(stderr, "axon term agent: out of memory\n"), 1;
    a.out->len = 0;
    a.out->holding = false;
    setenv("TERM", "xterm-256color", 1); /* for the sessions' programs */
    if (ax_loop_handle_signals(a.l.loop, agent_signal) != 0) return 1;
    srand((unsigned)getpid());
    agent_connect(&a.l);
    ax_loop_run(a.l.loop);
    if (a.child > 0) {
        session_close(&a);
        child_gone(&a);
    }
    ax_timer_free(a.l.retry);
    ax_timer_free(a.grace);
    ax_timer_free(a.flush);
    free(a.out);
    if (a.pw) ax_watch_free(a.pw);
    ax_loop_free(a.l.loop);
    free(a.hold);
    free(a.pend);
    return 0;
}

/* ---- connect -------------------------------------------------------------------------------- */

static struct termios saved_tio;
static bool raw_on;

static void raw_off(void)
{
    if (raw_on) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    raw_on = false;
}

static int winch_pipe[2] = {-1, -1};

static void on_fatal(int sig)
{
    raw_off();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void on_winch(int sig)
{
    (void)sig;
    int e = errno;
    if (winch_pipe[1] >= 0 && write(winch_pipe[1], "w", 1) < 0) {
    }
    errno = e;
}

typedef struct viewer {
    hublink l;
    char base[1024];
    bool watch, writer, ended, stdin_eof;
    uint64_t last; /* the last output seq written out: resume after it */
    int code;
    ax_watch *in, *wi;
    int esc; /* ssh's escape: Enter, then ~. quits */
} viewer;

static void vsay(const char *fmt, const char *arg)
{
    fprintf(stderr, "\r\n[axon term: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "]\r\n");
}

static void send_size(viewer *v)
{
    struct winsize w;
    if (!v->l.up || !v->writer || ioctl(STDIN_FILENO, TIOCGWINSZ, &w) != 0 || !w.ws_col) return;
    if (send_json(v->l.ws, json_pack("{s:s,s:i,s:i}", "type", "resize", "cols", w.ws_col, "rows",
                                     w.ws_row)) < 0)
        return;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return;
        p += k, n -= (size_t)k;
    }
}

static void viewer_quit(viewer *v, int code)
{
    v->l.quit = true;
    v->code = code;
    if (v->l.ws)
        ax_ws_close(v->l.ws, AX_WS_CLOSE_NORMAL, "bye");
    else
        ax_loop_stop(v->l.loop);
}

static void stdin_event(ax_watch *w, unsigned ev, void *ud)
{
    viewer *v = ud;
    (void)w, (void)ev;
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || errno != EINTR) {
            v->stdin_eof = true; /* as ssh: the remote side decides when it ends */
            if (ax_watch_set(v->in, 0) != 0) return;
        }
        return;
    }
    for (ssize_t i = 0; i < n; i++) { /* Enter ~ . */
        char c = buf[i];
        if (v->esc == 1 && c == '~')
            v->esc = 2;
        else if (v->esc == 2 && c == '.')
            return viewer_quit(v, 0);
        else
            v->esc = (c == '\r' || c == '\n') ? 1 : 0;
    }
    if (v->watch || !v->l.up) return;
    if (ax_ws_send_binary(v->l.ws, buf, (size_t)n) < 0) return;
}

static void winch_event(ax_watch *w, unsigned ev, void *ud)
{
    viewer *v = ud;
    char b[64];
    (void)w, (void)ev;
    while (read(winch_pipe[0], b, sizeof b) > 0)
        ;
    send_size(v);
}

static void viewer_text(viewer *v, json_t *o)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type) return;
    if (strcmp(type, "hello") == 0) {
        const char *role = json_string_value(json_object_get(o, "role"));
        v->writer = role && strcmp(role, "writer") == 0;
        if (!v->writer && !v->watch) {
            const char *who = json_string_value(json_object_get(o, "writer"));
            vsay("watching: %s is typing", who && *who ? who : "someone else");
        }
        if (!json_is_true(json_object_get(o, "agent"))) vsay("%s", "waiting for the agent");
        send_size(v);
    } else if (strcmp(type, "exit") == 0) {
        v->ended = true;
        json_t *c = json_object_get(o, "code");
        viewer_quit(v, json_is_integer(c) && json_integer_value(c) >= 0 ? (int)json_integer_value(c)
                                                                        : 0);
    } else if (strcmp(type, "agent") == 0) {
        vsay("%s", json_is_true(json_object_get(o, "online")) ? "the agent is back"
                                                              : "the agent is away");
    } else if (strcmp(type, "error") == 0 || strcmp(type, "gap") == 0) {
        const char *e = json_string_value(json_object_get(o, "error"));
        vsay("%s", e ? e : "some output is no longer in the hub's history");
    }
}

static void viewer_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    viewer *v = ax_ws_data(ws);
    if (!binary) {
        json_t *o = json_loadb(data, len, 0, NULL);
        if (json_is_object(o)) viewer_text(v, o);
        json_decref(o);
        return;
    }
    if (len < 8) return;
    const uint8_t *p = data;
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++)
        seq = seq << 8 | p[i];
    if (seq <= v->last) return; /* seen before the drop */
    v->last = seq;
    write_all(STDOUT_FILENO, (const char *)p + 8, len - 8);
}

static void viewer_open(ax_ws *ws)
{
    viewer *v = ax_ws_data(ws);
    if (v->l.opened_once) vsay("%s", "reconnected");
    v->l.up = true;
    v->l.opened_once = true;
    v->l.backoff_ms = 0;
    if (!v->stdin_eof && ax_watch_set(v->in, AX_WATCH_READ) != 0) return; /* keys wait for it */
}

static void viewer_connect(hublink *l);

static void viewer_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    viewer *v = ax_ws_data(ws);
    bool was_up = v->l.up;
    v->l.up = false;
    v->l.ws = NULL;
    if (ax_watch_set(v->in, 0) != 0) return;
    if (v->l.quit) {
        ax_loop_stop(v->l.loop);
        return;
    }
    if (!v->l.opened_once) { /* never in: refused or unreachable */
        raw_off();
        fprintf(stderr,
                "axon term connect: cannot open %s: the hub refused it (no such permission, bad "
                "token, or a browser Origin) or is unreachable\n",
                v->l.url);
        v->code = 2;
        ax_loop_stop(v->l.loop);
        return;
    }
    if (was_up) {
        char why[160];
        snprintf(why, sizeof why, "connection lost (%d %.*s): reconnecting", code,
                 (int)(len > 100 ? 100 : len), reason);
        vsay("%s", why);
    }
    link_later(&v->l);
}

static const ax_ws_cbs viewer_cbs = {
    .on_open = viewer_open, .on_message = viewer_message, .on_close = viewer_close};

static void viewer_connect(hublink *l)
{
    viewer *v = (viewer *)l;
    struct winsize w = {0};
    ioctl(STDIN_FILENO, TIOCGWINSZ, &w);
    char q[128];
    snprintf(q, sizeof q, "?cols=%u&rows=%u%s", w.ws_col ? w.ws_col : 80, w.ws_row ? w.ws_row : 24,
             v->watch ? "&role=watch" : "");
    if (v->last)
        snprintf(q + strlen(q), sizeof q - strlen(q), "&since=%llu", (unsigned long long)v->last);
    snprintf(l->url, sizeof l->url, "%s%s", v->base, q);
    ax_ws_opts o = {.headers = l->headers, .ping_interval_ms = 20000, .max_message = 1u << 21};
    int err = 0;
    l->ws = ax_ws_connect(l->loop, l->url, &viewer_cbs, &o, v, &err);
    if (!l->ws) {
        fprintf(stderr, "axon term connect: %s: %s\n", l->url, ax_strerror(err));
        v->code = 2;
        ax_loop_stop(l->loop);
    }
}

static void viewer_signal(ax_loop *loop, int signo)
{
    viewer *v = ax_loop_data(loop);
    (void)signo;
    viewer_quit(v, 130);
}

static void usage_connect(FILE *out)
{
    fprintf(out,
            "Usage: axon term connect URL [--token T] [--watch]\n\n"
            "Attach this terminal to a remote one through the hub (URL: ws://HUB/term/NAME or\n"
            "wss://...), in raw mode like ssh: every key (Ctrl-C too) and window-size change\n"
            "goes to the remote program.  The first client with write permission types; the\n"
            "others watch.  After a network drop it reconnects and gets exactly the output it\n"
            "missed.  It exits when the remote session ends (with its exit code), or on\n"
            "Enter ~ . (as ssh); the terminal is restored on every way out.\n\n"
            "  --token T   a token with read (watch) or write (type) on term/NAME;\n"
            "              default $AXON_TOKEN\n"
            "  --watch     only watch, even with write permission\n"
            "  -h, --help  this text\n");
}

static int term_connect(int argc, char **argv)
{
    static const struct option lo[] = {{"token", required_argument, NULL, 't'},
                                       {"watch", no_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    const char *token = getenv("AXON_TOKEN");
    viewer v = {0};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "t:wh", lo, NULL)) != -1) {
        if (ch == 't')
            token = optarg;
        else if (ch == 'w')
            v.watch = true;
        else if (ch == 'h')
            return usage_connect(stdout), 0;
        else
            return usage_connect(stderr), 2;
    }
    if (optind != argc - 1 || make_url(argv[optind], "/ws", v.base, sizeof v.base) != 0) {
        fprintf(stderr, "axon term connect: give the hub's URL: ws://HOST:PORT/term/NAME\n");
        return 2;
    }
    auth_headers(&v.l, token);
    signal(SIGPIPE, SIG_IGN);
    int err = 0;
    v.l.loop = ax_loop_new(NULL, &err);
    if (!v.l.loop) return fprintf(stderr, "axon term connect: %s\n", ax_strerror(err)), 1;
    ax_loop_set_data(v.l.loop, &v);
    v.l.connect = viewer_connect;
    v.l.retry = ax_timer_new(v.l.loop, retry_fire, &v.l);
    if (ax_loop_handle_signals(v.l.loop, viewer_signal) != 0) return 1;
    if (pipe2(winch_pipe, O_NONBLOCK | O_CLOEXEC) != 0) return 1;
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios raw = saved_tio;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) raw_on = true;
        atexit(raw_off);
        signal(SIGHUP, on_fatal);
        signal(SIGQUIT, on_fatal);
        signal(SIGSEGV, on_fatal);
        signal(SIGABRT, on_fatal);
    }
    signal(SIGWINCH, on_winch);
    v.in = ax_watch_new(v.l.loop, STDIN_FILENO, stdin_event, &v);
    v.wi = ax_watch_new(v.l.loop, winch_pipe[0], winch_event, &v);
    if (!v.in || !v.wi || ax_watch_set(v.wi, AX_WATCH_READ) != 0) return raw_off(), 1;
    srand((unsigned)getpid());
    viewer_connect(&v.l);
    ax_loop_run(v.l.loop);
    raw_off();
    if (v.ended) fprintf(stderr, "[axon term: the session ended]\n");
    ax_watch_free(v.in);
    ax_watch_free(v.wi);
    ax_timer_free(v.l.retry);
    ax_loop_free(v.l.loop);
    close(winch_pipe[0]);
    close(winch_pipe[1]);
    return v.code;
}

/* ---- the command ---------------------------------------------------------------------------- */

int cmd_term(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "agent") == 0) return term_agent(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "connect") == 0) return term_connect(argc - 1, argv + 1);
    FILE *out = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
                    ? stdout
                    : stderr;
    fprintf(out, "Usage: axon term agent|connect URL [OPTIONS]\n\n"
                 "Remote terminals through the hub (axon serve; docs/remote.md):\n"
                 "  agent    serve this machine's terminal: dial out to ws://HUB/term/NAME\n"
                 "  connect  attach to ws://HUB/term/NAME in raw mode, like ssh\n"
                 "Open http://HUB/term/NAME in a browser for the same terminal in a page.\n"
                 "'axon term agent --help', 'axon term connect --help' for the options.\n");
    return out == stdout ? 0 : 2;
}
