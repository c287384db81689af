/* gw_term.c: remote terminals through the hub (docs/remote.md), mounted on
 * the HTTP gateway's server:
 *
 *   GET /term/NAME        the page (web/term.html, xterm.js built in)
 *   GET /term/NAME/agent  WebSocket: the machine that runs the terminal
 *                         (`axon term agent`) dials in here
 *   GET /term/NAME/ws     WebSocket: a writer (types) or a watcher
 *                         (`axon term connect`, the page)
 *   GET /term/NAME/cast   the output as an asciicast v2 recording
 *
 * The output is the hub topic term/NAME/out: the agent's bytes are
 * published there (sequenced, kept in the history and the store), and each
 * viewer is a subscriber of it, so a viewer that comes back with the last
 * seq it saw gets exactly the bytes it missed, and a recording is that
 * history exported.  Keystrokes are not a topic (they would land in the
 * history and the store, passwords included): they go from the writer's
 * connection to the agent's, through ax_loop_post() when the two are on
 * different loops, and through a topic that keeps nothing when they are on
 * different nodes (--redis: "several nodes" below).
 *
 * Permissions (the hub's ACL and token claims, checked at the upgrade): a
 * terminal is never anonymous; read on term/NAME = watch, write on
 * term/NAME = type (one writer at a time, the others watch), write on
 * term/NAME/out = be the agent.  The Origin of every WebSocket is checked
 * (origin.c).  Every session start, end, writer and watcher is logged.
 *
 * The registry of terminals is shared by the threads, under one lock;
 * a connection is touched only by its own loop's thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <pthread.h>

#include <axon/alloc.h>
#include <axon/watch.h>
#include <axon/ws.h>

#include "core/pty.h"
#include "serve.h"
#include "web_assets.h"

#define TERM_NAME_MAX 64
#define TERM_MAX 1024
#define TERM_TICK_MS 1000

enum { ROLE_AGENT = 1, ROLE_WRITER = 2, ROLE_WATCHER = 3 };

typedef struct term term;
typedef struct tconn tconn;
typedef struct gw_term gw_term;

/* A terminal by name: in the registry from its first connection on. */
struct term {
    char name[TERM_NAME_MAX + 1];
    char out[TERM_NAME_MAX + 16]; /* term/NAME/out */
    uint64_t agent, writer;       /* tconn ids; 0: none */
    ax_loop *agent_loop;
    bool live;        /* a session (the agent's child) runs */
    bool agent_ready; /* the agent said hello (whether its child still runs) */
    uint64_t since;   /* the current (or last) session's output has seq > since */
    uint64_t session; /* sessions so far */
    uint16_t cols, rows;
    int64_t last_ms;     /* last keystroke or output */
    struct local *local; /* served by the hub itself (--term NAME=COMMAND), or NULL */
    /* several nodes (--redis): on the agent's node, a writer on another
     * node types (none here), far_node's; elsewhere, the agent's node
     * said it runs */
    bool far_writer, far_agent;
    char far_user[AUTH_MAX_NAME + 1];
    char far_node[40];
    term *next;
};

/* A terminal the hub serves itself: COMMAND on a pseudo-terminal of the
 * first thread's loop, in place of an agent. */
typedef struct local {
    gw_term *g;
    term *t;
    char cmd[SERVE_TERM_CMD_MAX];
    pid_t child;
    int pty;
    ax_watch *w;
    ax_timer *flush; /* bulk output held (core/pty.h) */
    ax__pty_out out;
    struct local *next;
} local;

struct tconn {
    uint64_t id;
    gw_term *g;
    ax_ws *ws;
    ax_loop *loop;
    term *t;
    int role;
    bool want_write, told_ro;
    int64_t since; /* the viewer's resume point; -1: the session's start */
    uint16_t cols, rows;
    hub_sub *sub;
    auth_identity *ident;
    hub_limits_conn lim;
    char user[AUTH_MAX_NAME + 1];
    char peer[64];
    char name[TERM_NAME_MAX + 1];
    tconn *next; /* every connection of every thread (reg) */
};

struct gw_term {
    serve *sv;
    ax_timer *tick;
    ax_ws_opts opts;
    size_t open; /* connections of this instance */
};

static struct {
    pthread_mutex_t lock;
    term *terms;
    size_t nterms;
    tconn *conns;
    uint64_t next_id;
    int instances;
    /* several nodes: the first thread's subscriber of $term/+/in and
     * $term/+/ctl, and this node's name as the sender of what it publishes */
    hub_sub *nsub;
    char node[40];
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool name_valid(const char *s, size_t n)
{
    if (n == 0 || n > TERM_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return s[0] != '.';
}

/* ---- the registry (under reg.lock) -------------------------------------------------------- */

static term *term_find(const char *name, bool make)
{
    for (term *t = reg.terms; t; t = t->next)
        if (strcmp(t->name, name) == 0) return t;
    if (!make || reg.nterms >= TERM_MAX) return NULL;
    term *t = ax_calloc(1, sizeof(*t));
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->out, sizeof t->out, "term/%s/out", name);
    t->cols = 80, t->rows = 24;
    t->next = reg.terms;
    reg.terms = t;
    reg.nterms++;
    return t;
}

static tconn *conn_find(uint64_t id)
{
    for (tconn *c = reg.conns; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

typedef struct posted {
    uint64_t id;
    bool binary, close;
    size_t len;
    char data[];
} posted;

static void send_now(tconn *c, const void *data, size_t len, bool binary)
{
    if (ax_ws_send(c->ws, data, len, binary) < 0) return; /* closing: nothing to do */
    gw_stats *st = &c->g->sv->gw[GW_TERM];
    GW_ADD(st->msgs_out, 1);
    GW_ADD(st->bytes_out, len);
}

static void deliver_posted(ax_loop *loop, void *arg)
{
    posted *p = arg;
    (void)loop;
    pthread_mutex_lock(&reg.lock);
    tconn *c = conn_find(p->id);
    if (c && c->ws) {
        if (p->close)
            ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, p->data);
        else
            send_now(c, p->data, p->len, p->binary);
    }
    pthread_mutex_unlock(&reg.lock);
    ax_free(p);
}

/* Send to connection `id` from any loop (under reg.lock). */
static void send_to(gw_term *g, uint64_t id, const void *data, size_t len, bool binary, bool close)
{
    tconn *c = conn_find(id);
    if (!c || !c->ws) return;
    if (c->loop == g->sv->loop) {
        if (close)
            ax_ws_close(c->ws, AX_WS_CLOSE_POLICY, data);
        else
            send_now(c, data, len, binary);
        return;
    }
    posted *p = ax_malloc(sizeof(*p) + len + 1);
    if (!p) return;
    p->id = id, p->binary = binary, p->close = close, p->len = len;
    memcpy(p->data, data, len);
    p->data[len] = '\0';
    if (ax_loop_post_or(c->loop, deliver_posted, ax_free, p) != 0) ax_free(p);
}

static void send_json_to(gw_term *g, uint64_t id, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) send_to(g, id, s, strlen(s), false, false);
    free(s);
    json_decref(j);
}

static void tell_local(gw_term *g, term *t, const char *s)
{
    for (tconn *c = reg.conns; c; c = c->next)
        if (c->t == t && c->role != ROLE_AGENT) send_to(g, c->id, s, strlen(s), false, false);
}

/* To the other nodes (--redis): $term/NAME/KIND, [tag] + the bytes. */
static void far_publish(gw_term *g, term *t, const char *kind, char tag, const void *data,
                        size_t len)
{
    if (!g->sv->bp || !reg.nsub) return;
    char topic[TERM_NAME_MAX + 16];
    snprintf(topic, sizeof topic, "$term/%s/%s", t->name, kind);
    size_t n = len + (tag != 0);
    char stack[1024], *b = n <= sizeof stack ? stack : ax_malloc(n);
    if (!b) return;
    if (tag) b[0] = tag;
    memcpy(b + (tag != 0), data, len);
    int err = 0;
    hub_publish_via(g->sv->hub, HUB_VIA_TERM, NULL, topic, reg.node, b, n, NULL, &err);
    if (err) ax_log(AX_LOG_WARN, "term %s: to the other nodes: %s", t->name, hub_strerror(err));
    if (b != stack) ax_free(b);
}

/* A notice to every viewer of t (under reg.lock), on every node: the
 * agent's node tells the others through $term/NAME/ctl. */
static void tell_viewers(gw_term *g, term *t, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) tell_local(g, t, s);
    if (s && t->agent) far_publish(g, t, "ctl", 0, s, strlen(s));
    free(s);
    json_decref(j);
}

/* The topic's last seq (0: none yet). */
static uint64_t last_seq(gw_term *g, term *t)
{
    uint64_t first, from;
    return hub_history_window(g->sv->hub, t->out, UINT64_MAX, 0, &first, &from);
}

static void local_input(local *l, const void *data, size_t len, bool binary);

typedef struct local_post {
    local *l;
    bool binary;
    size_t len;
    char data[];
} local_post;

static void local_posted(ax_loop *loop, void *arg)
{
    local_post *p = arg;
    (void)loop;
    pthread_mutex_lock(&reg.lock);
    local_input(p->l, p->data, p->len, p->binary);
    pthread_mutex_unlock(&reg.lock);
    ax_free(p);
}

/* To the agent of t (under reg.lock), whether remote or the hub's own. */
static void agent_send(gw_term *g, term *t, const void *data, size_t len, bool binary)
{
    local *l = t->local;
    if (!l) {
        send_to(g, t->agent, data, len, binary, false);
        return;
    }
    if (l->g->sv->loop == g->sv->loop) {
        local_input(l, data, len, binary);
        return;
    }
    local_post *p = ax_malloc(sizeof(*p) + len);
    if (!p) return;
    p->l = l, p->binary = binary, p->len = len;
    memcpy(p->data, data, len);
    if (ax_loop_post_or(l->g->sv->loop, local_posted, ax_free, p) != 0) ax_free(p);
}

static void agent_json(gw_term *g, term *t, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) agent_send(g, t, s, strlen(s), false);
    free(s);
    json_decref(j);
}

/* A writer is here and nothing runs: ask the agent for a session. */
static void session_start(gw_term *g, term *t)
{
    if (t->live || !t->agent || !t->agent_ready || (!t->writer && !t->far_writer)) return;
    t->live = true;
    t->session++;
    t->since = last_seq(g, t);
    t->last_ms = now_ms();
    tconn *w = conn_find(t->writer);
    ax_log(AX_LOG_INFO, "term %s: session %llu started for %s%s (output after seq %llu)", t->name,
           (unsigned long long)t->session, w ? w->user : t->far_user, w ? "" : " on another node",
           (unsigned long long)t->since);
    agent_json(g, t, json_pack("{s:s,s:i,s:i}", "type", "open", "cols", t->cols, "rows", t->rows));
    tell_viewers(g, t,
                 json_pack("{s:s,s:I,s:I}", "type", "session", "session", (json_int_t)t->session,
                           "since", (json_int_t)t->since));
}

static void session_end(gw_term *g, term *t, int code, const char *why)
{
    if (!t->live) return;
    t->live = false;
    ax_log(AX_LOG_INFO, "term %s: session %llu ended (%s, exit code %d)", t->name,
           (unsigned long long)t->session, why, code);
    tell_viewers(g, t, json_pack("{s:s,s:i,s:s}", "type", "exit", "code", code, "why", why));
}

/* ---- terminals the hub serves itself (--term NAME=COMMAND) --------------------------------- */

/* Publish the output gathered (under reg.lock). */
static void local_send(local *l)
{
    ax_timer_stop(l->flush);
    l->out.holding = false;
    if (!l->out.len) return;
    int err = 0;
    hub_publish_via(l->g->sv->hub, HUB_VIA_TERM, NULL, l->t->out, "hub", l->out.buf, l->out.len,
                    NULL, &err);
    l->out.len = 0;
    l->t->last_ms = now_ms();
}

static void local_flush(ax_timer *tm, void *ud)
{
    (void)tm;
    pthread_mutex_lock(&reg.lock);
    local_send(ud);
    pthread_mutex_unlock(&reg.lock);
}

static void local_gone(local *l)
{
    int status = 0, code = -1;
    local_send(l);
    if (l->w) ax_watch_free(l->w);
    l->w = NULL;
    if (l->pty >= 0) close(l->pty);
    l->pty = -1;
    if (l->child > 0 && waitpid(l->child, &status, 0) == l->child)
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    l->child = 0;
    session_end(l->g, l->t, code, "exited");
}

static void local_event(ax_watch *w, unsigned ev, void *ud)
{
    local *l = ud;
    (void)w, (void)ev;
    int rc = ax__pty_gather(l->pty, &l->out);
    if (rc == AX__PTY_HOLD) ax_timer_start(l->flush, AX__PTY_HOLD_MS, 0);
    if (rc != AX__PTY_SEND && rc != AX__PTY_EOF) return;
    pthread_mutex_lock(&reg.lock);
    if (rc == AX__PTY_SEND)
        local_send(l);
    else
        local_gone(l);
    pthread_mutex_unlock(&reg.lock);
}

static void local_open(local *l, int cols, int rows)
{
    if (l->child > 0) return;
    char *env[] = {"TERM=xterm-256color", "PATH=/usr/local/bin:/usr/bin:/bin", NULL};
    char *argv[] = {"/bin/sh", "-c", l->cmd, NULL};
    int fd;
    pid_t pid = ax__pty_spawn(argv, env, (uint16_t)cols, (uint16_t)rows, &fd);
    if (pid == -1) {
        ax_log(AX_LOG_WARN, "term %s: forkpty: %s", l->t->name, strerror(errno));
        return;
    }
    l->out.len = 0;
    l->out.holding = false;
    l->pty = fd;
    l->child = pid;
    l->w = ax_watch_new(l->g->sv->loop, fd, local_event, l);
    if (!l->w || ax_watch_set(l->w, AX_WATCH_READ) != 0) local_gone(l);
}

/* What the hub says to an agent, done here (under reg.lock). */
static void local_input(local *l, const void *data, size_t len, bool binary)
{
    if (binary) {
        if (l->pty >= 0 && write(l->pty, data, len) < 0) {
        } /* a full pty drops keys, as a stuck terminal would */
        return;
    }
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    int cols = (int)json_integer_value(json_object_get(o, "cols"));
    int rows = (int)json_integer_value(json_object_get(o, "rows"));
    if (!type) {
    } else if (strcmp(type, "open") == 0) {
        local_open(l, cols > 0 ? cols : 80, rows > 0 ? rows : 24);
    } else if (strcmp(type, "resize") == 0 && l->pty >= 0 && cols > 0 && rows > 0) {
        ax__pty_resize(l->pty, (uint16_t)cols, (uint16_t)rows);
    } else if (strcmp(type, "close") == 0 && l->child > 0) {
        kill(-l->child, SIGHUP);
        kill(l->child, SIGHUP);
    }
    json_decref(o);
}

static local *locals; /* the first thread's (reg.lock) */

/* --term NAME=COMMAND, one a line in cfg->terms: registered as present. */
static int locals_start(gw_term *g)
{
    for (const char *p = g->sv->cfg->terms; *p;) {
        size_t n = strcspn(p, "\n");
        const char *eq = memchr(p, '=', n);
        if (eq && name_valid(p, (size_t)(eq - p))) {
            char name[TERM_NAME_MAX + 1];
            memcpy(name, p, (size_t)(eq - p));
            name[eq - p] = '\0';
            term *t = term_find(name, true);
            local *l = t ? ax_calloc(1, sizeof(*l)) : NULL;
            if (l) l->flush = ax_timer_new(g->sv->loop, local_flush, l);
            if (!l || !l->flush) return ax_free(l), AX_ENOMEM;
            l->g = g, l->t = t, l->pty = -1;
            snprintf(l->cmd, sizeof l->cmd, "%.*s", (int)(n - (size_t)(eq - p) - 1), eq + 1);
            t->local = l;
            t->agent = UINT64_MAX - reg.nterms; /* no connection has it */
            t->agent_ready = true;
            t->agent_loop = g->sv->loop;
            l->next = locals;
            locals = l;
            ax_log(AX_LOG_INFO, "term %s: served by the hub: %s", name, l->cmd);
        }
        p += n + (p[n] == '\n');
    }
    return 0;
}

static void locals_free(gw_term *g)
{
    for (local **pl = &locals; *pl;) {
        local *l = *pl;
        if (l->g != g) {
            pl = &l->next;
            continue;
        }
        *pl = l->next;
        if (l->child > 0) kill(l->child, SIGHUP);
        local_gone(l);
        ax_timer_free(l->flush);
        l->t->local = NULL;
        l->t->agent = 0;
        ax_free(l);
    }
}

/* ---- several nodes (--redis; docs/remote.md) ---------------------------------------------
 *
 * The output is a topic, so it reaches viewers on every node by itself.
 * Keys and the session's state cross through two more topics: a writer on
 * a node without the agent publishes on $term/NAME/in ('w' + its size and
 * user: it attached; 'k' + keys; 'r' + size; 'x': it left), and the
 * agent's node publishes what it tells its viewers on $term/NAME/ctl.
 * Clients cannot publish there: a '$' topic is out of reach of every
 * wildcard grant ('#' included, so of --anonymous readwrite too) and MQTT
 * refuses them.  The server gives $term/+/in no history (server.c): keys
 * are in no history and no Redis stream; with --redis there is no SQLite
 * store.  Only with authentication (terminals need it). */

/* A writer here, the agent elsewhere (under reg.lock). */
static void far_writer(gw_term *g, term *t, char tag)
{
    tconn *w = conn_find(t->writer);
    char b[AUTH_MAX_NAME + 64];
    int n = tag == 'x' ? 0 : snprintf(b, sizeof b, "%u %u %s", t->cols, t->rows, w ? w->user : "");
    far_publish(g, t, "in", tag, b, n > 0 && (size_t)n < sizeof b ? (size_t)n : 0);
}

typedef struct far_msg {
    bool ctl;
    char name[TERM_NAME_MAX + 1];
    char node[40]; /* the sender */
    size_t len;
    char data[];
} far_msg;

/* What a writer on another node sent, on the agent's node. */
static void far_in(gw_term *g, term *t, const char *node, const char *p, size_t n)
{
    if (!n) return;
    char tag = p[0];
    p++, n--;
    if (tag != 'w' && (!t->far_writer || strcmp(node, t->far_node) != 0))
        return; /* not the writer's node */
    if (tag == 'k') {
        if (t->far_writer && !t->writer && t->live) agent_send(g, t, p, n, true);
        t->last_ms = now_ms();
        return;
    }
    if (tag == 'x') {
        if (t->far_writer)
            ax_log(AX_LOG_INFO, "term %s: writer %s left (another node)", t->name, t->far_user);
        t->far_writer = false;
        return;
    }
    char line[AUTH_MAX_NAME + 64], user[AUTH_MAX_NAME + 1] = "";
    unsigned cols = 0, rows = 0;
    snprintf(line, sizeof line, "%.*s", (int)n, p);
    if (sscanf(line, "%u %u %64s", &cols, &rows, user) < 2 || !cols || !rows || cols >= 10000 ||
        rows >= 10000 || t->writer)
        return; /* a writer here types */
    t->cols = (uint16_t)cols, t->rows = (uint16_t)rows;
    if (tag == 'w' && !t->far_writer) {
        t->far_writer = true;
        snprintf(t->far_user, sizeof t->far_user, "%s", user[0] ? user : "?");
        snprintf(t->far_node, sizeof t->far_node, "%s", node);
        ax_log(AX_LOG_INFO, "term %s: %s attached as the writer on another node", t->name,
               t->far_user);
    }
    if (!t->far_writer || strcmp(node, t->far_node) != 0) return; /* another node's writer */
    if (t->live)
        agent_json(g, t,
                   json_pack("{s:s,s:i,s:i}", "type", "resize", "cols", t->cols, "rows", t->rows));
    session_start(g, t);
}

/* What the agent's node told its viewers, on a node without the agent. */
static void far_ctl(gw_term *g, term *t, const char *p, size_t n)
{
    json_t *o = json_loadb(p, n, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type && strcmp(type, "session") == 0) {
        t->live = t->far_agent = true;
        t->session = (uint64_t)json_integer_value(json_object_get(o, "session"));
        t->since = (uint64_t)json_integer_value(json_object_get(o, "since"));
    } else if (type && strcmp(type, "exit") == 0) {
        t->live = false;
    } else if (type && strcmp(type, "agent") == 0) {
        t->far_agent = json_is_true(json_object_get(o, "online"));
        if (t->far_agent && t->writer) far_writer(g, t, 'w'); /* (again: it was away) */
    }
    json_decref(o);
    if (type) {
        char *s = strndup(p, n);
        if (s) tell_local(g, t, s);
        free(s);
    }
}

static void far_posted(ax_loop *loop, void *arg)
{
    far_msg *f = arg;
    (void)loop;
    pthread_mutex_lock(&reg.lock);
    term *t = term_find(f->name, false);
    gw_term *g = reg.nsub ? hub_sub_data(reg.nsub) : NULL;
    if (t && g && f->ctl && !t->agent)
        far_ctl(g, t, f->data, f->len);
    else if (t && g && !f->ctl && t->agent)
        far_in(g, t, f->node, f->data, f->len);
    pthread_mutex_unlock(&reg.lock);
    ax_free(f);
}

/* $term/NAME/in or $term/NAME/ctl from another node: handled on this loop
 * after the hub's call (which may hold its lock, or come inside one of
 * ours). */
static bool far_write(hub_sub *s, hub_msg *m, void *ud)
{
    gw_term *g = ud;
    (void)s;
    if (m->kind != HUB_MSG ||
        (m->sender_len == strlen(reg.node) && memcmp(m->sender, reg.node, m->sender_len) == 0))
        return true; /* (our own) */
    const char *name = m->topic + 6, *slash = memchr(name, '/', m->topic_len - 6);
    if (!slash || !name_valid(name, (size_t)(slash - name))) return true;
    far_msg *f = ax_malloc(sizeof(*f) + m->payload_len);
    if (!f) return true;
    f->ctl = m->topic + m->topic_len - slash == 4 && memcmp(slash, "/ctl", 4) == 0;
    snprintf(f->name, sizeof f->name, "%.*s", (int)(slash - name), name);
    snprintf(f->node, sizeof f->node, "%.*s", (int)m->sender_len, m->sender);
    f->len = m->payload_len;
    memcpy(f->data, m->payload, m->payload_len);
    if (ax_loop_post_or(g->sv->loop, far_posted, ax_free, f) != 0) ax_free(f);
    return true;
}

static void far_kick(hub_sub *s, const char *why, void *ud)
{
    (void)s, (void)ud;
    ax_log(AX_LOG_WARN, "term: the other nodes' keys and state: %s", why);
}

static const hub_sub_ops far_ops = {far_write, far_kick};

/* The first thread, with a backplane: listen to the other nodes. */
static int far_start(gw_term *g)
{
    uint8_t r[8];
    FILE *f = fopen("/dev/urandom", "re");
    bool ok = f && fread(r, 1, sizeof r, f) == sizeof r;
    if (f) fclose(f);
    if (!ok) return AX_EIO;
    snprintf(reg.node, sizeof reg.node, "term-node-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1],
             r[2], r[3], r[4], r[5], r[6], r[7]);
    if (!(reg.nsub = hub_sub_new(g->sv->hub, &far_ops, g, NULL))) return AX_ENOMEM;
    int rc = hub_subscribe(reg.nsub, "$term/+/in", -1, false);
    if (!rc) rc = hub_subscribe(reg.nsub, "$term/+/ctl", -1, false);
    return rc;
}

/* ---- viewers: the output topic's subscribers ---------------------------------------------- */

/* The frame of an output message (8 bytes of seq, big-endian, then the
 * bytes), made once and shared by every viewer on this thread: the hub
 * hands one message to all its subscribers of a loop in a row, so one
 * cached frame per thread serves the whole fan-out. */
static __thread struct {
    hub_msg *m;
    ax_slice *frame;
} last_frame;

static void frame_forget(void)
{
    if (last_frame.m) hub_msg_unref(last_frame.m);
    if (last_frame.frame) ax_slice_unref(last_frame.frame);
    last_frame.m = NULL;
    last_frame.frame = NULL;
}

static ax_slice *frame_of(hub_msg *m)
{
    if (last_frame.m == m) return last_frame.frame;
    frame_forget();
    uint8_t stack[4096],
        *b = m->payload_len + 8 <= sizeof stack ? stack : ax_malloc(m->payload_len + 8);
    if (!b) return NULL;
    hub_put_be(b, m->seq, 8);
    memcpy(b + 8, m->payload, m->payload_len);
    last_frame.frame = ax_ws_shared_new(b, m->payload_len + 8, true);
    if (b != stack) ax_free(b);
    if (last_frame.frame) last_frame.m = hub_msg_ref(m);
    return last_frame.frame;
}

static bool viewer_write(hub_sub *s, hub_msg *m, void *ud)
{
    tconn *c = ud;
    (void)s;
    if (m->kind == HUB_GAP) {
        char j[96];
        int n =
            snprintf(j, sizeof j, "{\"type\":\"gap\",\"first\":%llu}", (unsigned long long)m->seq);
        send_now(c, j, (size_t)n, false);
        return true;
    }
    if (m->kind != HUB_MSG) return true;
    ax_slice *f = frame_of(m);
    if (!f) return true;
    int rc = ax_ws_send_shared(c->ws, f);
    gw_stats *st = &c->g->sv->gw[GW_TERM];
    GW_ADD(st->msgs_out, 1);
    GW_ADD(st->bytes_out, m->payload_len + 8);
    return rc == 0;
}

static void viewer_kick(hub_sub *s, const char *why, void *ud)
{
    tconn *c = ud;
    (void)s;
    ax_log(AX_LOG_WARN, "term %s: %s dropped: %s", c->name, c->user, why);
    ax_conn_abort(ax_ws_conn(c->ws), AX_EOUTPUTCAP);
}

static const hub_sub_ops viewer_ops = {viewer_write, viewer_kick};

/* ---- the WebSocket connections ------------------------------------------------------------ */

static void agent_open(tconn *c, term *t)
{
    gw_term *g = c->g;
    if (t->agent && t->agent != c->id) { /* a new connection of the same agent wins */
        static const char why[] = "replaced by a new agent connection";
        send_to(g, t->agent, why, sizeof why - 1, false, true);
    }
    t->agent = c->id;
    t->agent_loop = c->loop;
    t->agent_ready = false; /* no session before its hello says what survived */
    ax_log(AX_LOG_INFO, "term %s: agent %s connected from %s", t->name, c->user, c->peer);
    tell_viewers(g, t, json_pack("{s:s,s:b}", "type", "agent", "online", 1));
}

static void viewer_open(tconn *c, term *t)
{
    gw_term *g = c->g;
    tconn *old = c->want_write && t->writer ? conn_find(t->writer) : NULL;
    if (old && strcmp(old->user, c->user) == 0) { /* the same user again (a reconnect): it types */
        old->role = ROLE_WATCHER;
        t->writer = 0;
        send_json_to(g, old->id,
                     json_pack("{s:s,s:s}", "type", "error", "error",
                               "read-only: you attached again elsewhere; that one types"));
    }
    if (c->want_write && !t->writer) {
        c->role = ROLE_WRITER;
        t->writer = c->id;
        if (c->cols && c->rows) t->cols = c->cols, t->rows = c->rows;
    }
    bool writer = c->role == ROLE_WRITER;
    tconn *w = t->writer ? conn_find(t->writer) : NULL;
    ax_log(AX_LOG_INFO, "term %s: %s %s from %s", t->name, c->user,
           writer ? "attached as the writer" : "is watching", c->peer);
    if (!t->live && !t->session) t->since = last_seq(g, t);
    json_t *hello =
        json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:I,s:I,s:i,s:i}", "type", "hello", "terminal", t->name,
                  "role", writer ? "writer" : "watcher", "writer", w ? w->user : "", "agent",
                  t->agent != 0 || t->far_agent, "live", t->live, "session", (json_int_t)t->session,
                  "since", (json_int_t)t->since, "cols", t->cols, "rows", t->rows);
    send_json_to(g, c->id, hello);
    int64_t since = c->since >= 0 ? c->since : (int64_t)t->since;
    int rc = hub_subscribe(c->sub, t->out, since, false);
    if (rc != 0) ax_log(AX_LOG_WARN, "term %s: subscribe: %s", t->name, hub_strerror(rc));
    if (writer) {
        if (t->live && t->agent) /* resize follows the writer */
            agent_json(
                g, t,
                json_pack("{s:s,s:i,s:i}", "type", "resize", "cols", t->cols, "rows", t->rows));
        session_start(g, t);
        if (!t->agent) far_writer(g, t, 'w');
    }
}

static void on_open(ax_ws *ws)
{
    tconn *c = ax_ws_data(ws);
    gw_term *g = c->g;
    if (c->role != ROLE_AGENT) {
        c->sub = hub_sub_new(g->sv->hub, &viewer_ops, c, NULL);
        if (!c->sub) {
            ax_ws_close(ws, AX_WS_CLOSE_INTERNAL, "out of memory");
            return;
        }
    }
    pthread_mutex_lock(&reg.lock);
    term *t = term_find(c->name, true);
    if (!t) {
        pthread_mutex_unlock(&reg.lock);
        ax_ws_close(ws, AX_WS_CLOSE_POLICY, "too many terminals");
        return;
    }
    c->ws = ws;
    c->t = t;
    c->id = ++reg.next_id;
    c->next = reg.conns;
    reg.conns = c;
    g->open++;
    GW_ADD(g->sv->gw[GW_TERM].conns, 1);
    GW_ADD(g->sv->gw[GW_TERM].accepted, 1);
    if (c->role == ROLE_AGENT && t->local)
        ax_ws_close(ws, AX_WS_CLOSE_POLICY, "this terminal is served by the hub itself");
    else if (c->role == ROLE_AGENT)
        agent_open(c, t);
    else
        viewer_open(c, t);
    pthread_mutex_unlock(&reg.lock);
}

static void agent_text(tconn *c, term *t, json_t *o)
{
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type) return;
    if (strcmp(type, "hello") == 0) { /* after a (re)connect: does its child still run? */
        t->agent_ready = true;
        if (json_is_true(json_object_get(o, "live")) && t->session) {
            ax_log(AX_LOG_INFO, "term %s: session %llu resumed (the agent is back)", t->name,
                   (unsigned long long)t->session);
            t->live = true;
        } else {
            session_end(c->g, t, -1, "agent reconnected without it");
            session_start(c->g, t);
        }
    } else if (strcmp(type, "exit") == 0) {
        json_t *code = json_object_get(o, "code");
        session_end(c->g, t, json_is_integer(code) ? (int)json_integer_value(code) : -1, "exited");
    }
}

static void agent_message(tconn *c, const void *data, size_t len, bool binary)
{
    term *t = c->t;
    if (binary) {
        int err = 0;
        hub_publish_via(c->g->sv->hub, HUB_VIA_TERM, NULL, t->out, c->user, data, len, NULL, &err);
        if (err) ax_log(AX_LOG_WARN, "term %s: output lost: %s", t->name, hub_strerror(err));
        t->last_ms = now_ms();
        return;
    }
    json_t *o = json_loadb(data, len, 0, NULL);
    if (json_is_object(o)) agent_text(c, t, o);
    json_decref(o);
}

static void viewer_message(tconn *c, const void *data, size_t len, bool binary)
{
    term *t = c->t;
    gw_term *g = c->g;
    if (c->role != ROLE_WRITER || t->writer != c->id) {
        if (!c->told_ro)
            send_json_to(g, c->id,
                         json_pack("{s:s,s:s}", "type", "error", "error",
                                   "read-only: you are watching this terminal"));
        c->told_ro = true;
        return;
    }
    if (binary) {
        if (t->agent && t->live)
            agent_send(g, t, data, len, true);
        else if (!t->agent) /* the agent may be on another node */
            far_publish(g, t, "in", 'k', data, len);
        t->last_ms = now_ms();
        return;
    }
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (type && strcmp(type, "resize") == 0) {
        json_int_t cols = json_integer_value(json_object_get(o, "cols"));
        json_int_t rows = json_integer_value(json_object_get(o, "rows"));
        if (cols > 0 && cols < 10000 && rows > 0 && rows < 10000) {
            t->cols = (uint16_t)cols, t->rows = (uint16_t)rows;
            if (t->agent)
                agent_json(
                    g, t,
                    json_pack("{s:s,s:i,s:i}", "type", "resize", "cols", t->cols, "rows", t->rows));
            else
                far_writer(g, t, 'r');
        }
    }
    json_decref(o);
}

static void on_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    tconn *c = ax_ws_data(ws);
    if (!c || !c->t) return;
    gw_stats *st = &c->g->sv->gw[GW_TERM];
    GW_ADD(st->msgs_in, 1);
    GW_ADD(st->bytes_in, len);
    hub_refusal ref = {0};
    if (serve_limit_msg(c->g->sv, "term", ax_ws_conn(ws), &c->lim, len, &ref) != HUB_LIMIT_OK) {
        ax_ws_close(ws, AX_WS_CLOSE_POLICY, "over a limit");
        return;
    }
    pthread_mutex_lock(&reg.lock);
    if (c->role == ROLE_AGENT)
        agent_message(c, data, len, binary);
    else
        viewer_message(c, data, len, binary);
    pthread_mutex_unlock(&reg.lock);
}

static void on_drain(ax_ws *ws)
{
    tconn *c = ax_ws_data(ws);
    if (c && c->sub) hub_sub_writable(c->sub);
}

static void conn_forget(tconn *c)
{
    term *t = c->t;
    gw_term *g = c->g;
    for (tconn **p = &reg.conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    if (c->role == ROLE_AGENT && t->agent == c->id) {
        ax_log(AX_LOG_INFO, "term %s: agent %s gone", t->name, c->user);
        tell_viewers(g, t, json_pack("{s:s,s:b}", "type", "agent", "online", 0));
        t->agent = 0;
        t->far_writer = false; /* another node's writer says so again when it is back */
    } else if (c->role == ROLE_WRITER && t->writer == c->id) {
        t->writer = 0;
        ax_log(AX_LOG_INFO, "term %s: writer %s left", t->name, c->user);
        if (!t->agent) far_writer(g, t, 'x');
    } else if (c->role == ROLE_WATCHER) {
        ax_log(AX_LOG_INFO, "term %s: %s stopped watching", t->name, c->user);
    }
    g->open--;
    GW_SUB(g->sv->gw[GW_TERM].conns, 1);
}

static void on_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    tconn *c = ax_ws_data(ws);
    (void)code, (void)reason, (void)len;
    if (!c) return;
    if (c->t) {
        pthread_mutex_lock(&reg.lock);
        conn_forget(c);
        pthread_mutex_unlock(&reg.lock);
    }
    hub_sub_free(c->sub);
    serve_limit_close(c->g->sv, &c->lim);
    auth_identity_free(c->ident);
    ax_free(c);
}

static const ax_ws_cbs term_cbs = {
    .on_open = on_open, .on_message = on_message, .on_drain = on_drain, .on_close = on_close};

/* ---- HTTP ----------------------------------------------------------------------------------- */

/* The identity for a terminal: never anonymous.  NULL after the answer. */
static auth_identity *term_identity(gw_term *g, ax_http_req *r)
{
    auth_identity *id = NULL;
    if (!g->sv->auth) {
        serve_http_error(r, 403,
                         "terminals need authentication: start axon serve with --auth-secret or "
                         "--password-file");
        return NULL;
    }
    if (serve_http_identity(g->sv, r, &id) != 0 || !id || id->anonymous || !id->name[0]) {
        auth_identity_free(id);
        serve_http_unauthorized(r);
        return NULL;
    }
    return id;
}

static int64_t query_int(ax_http_req *r, const char *k, int64_t dflt)
{
    char v[32];
    if (serve_http_query(r, k, v, sizeof v, true) < 1) return dflt;
    char *end;
    long long n = strtoll(v, &end, 10);
    return *end || n < 0 ? dflt : n;
}

static void term_upgrade(gw_term *g, ax_http_req *r, const char *name, bool agent)
{
    char why[400], topic[TERM_NAME_MAX + 16], role[16] = "";
    if (!serve_origin_allowed(r, g->sv->cfg, why, sizeof why)) {
        serve_http_error(r, 403, why);
        return;
    }
    auth_identity *id = term_identity(g, r);
    if (!id) return;
    bool may_read, may_write;
    if (agent) {
        snprintf(topic, sizeof topic, "term/%s/out", name);
        may_read = may_write = auth_may_publish(id, topic);
    } else {
        snprintf(topic, sizeof topic, "term/%s", name);
        may_read = auth_may_read(id, topic);
        may_write = auth_may_publish(id, topic);
    }
    serve_http_query(r, "role", role, sizeof role, true);
    const char *no = agent ? (may_write ? NULL
                                        : "forbidden: you may not serve this terminal (write on "
                                          "term/NAME/out)")
                     : strcmp(role, "write") == 0 && !may_write
                         ? "forbidden: you may not type on this terminal (write on term/NAME)"
                     : !may_read && !may_write
                         ? "forbidden: you may not watch this terminal (read on term/NAME)"
                         : NULL;
    if (no) {
        ax_addr peer;
        ax_conn *hc = ax_http_req_conn(r);
        serve_refused(g->sv, "term", hc && ax_conn_peer(hc, &peer) == 0 ? &peer : NULL, no);
        auth_identity_free(id);
        serve_http_error(r, 403, no);
        return;
    }
    tconn *c = ax_calloc(1, sizeof(*c));
    if (!c) {
        auth_identity_free(id);
        serve_http_error(r, 500, "out of memory");
        return;
    }
    c->g = g;
    c->loop = g->sv->loop;
    c->ident = id;
    c->role = agent ? ROLE_AGENT : ROLE_WATCHER;
    c->want_write = !agent && may_write && strcmp(role, "watch") != 0;
    c->since = query_int(r, "since", -1);
    c->cols = (uint16_t)query_int(r, "cols", 0);
    c->rows = (uint16_t)query_int(r, "rows", 0);
    snprintf(c->user, sizeof c->user, "%s", id->name);
    snprintf(c->name, sizeof c->name, "%s", name);
    ax_addr peer;
    ax_conn *hc = ax_http_req_conn(r);
    if (!hc || ax_conn_peer(hc, &peer) != 0 || !ax_addr_format(&peer, c->peer, sizeof c->peer))
        snprintf(c->peer, sizeof c->peer, "?");
    if (ax_ws_upgrade(r, &term_cbs, &g->opts, c) < 0) {
        auth_identity_free(id);
        ax_free(c);
        return;
    }
    serve_limit_take(r, &c->lim);
}

/* asciicast v2 text: bytes made valid UTF-8 (a sequence cut between two
 * messages is carried to the next; a bad byte becomes U+FFFD). */
static size_t utf8_take(const uint8_t *s, size_t n, size_t i)
{
    uint8_t b = s[i];
    size_t k = b < 0x80             ? 1
               : (b & 0xE0) == 0xC0 ? 2
               : (b & 0xF0) == 0xE0 ? 3
               : (b & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (!k || (k == 2 && b < 0xC2) || (k == 4 && b > 0xF4)) return 0;
    if (i + k > n) return SIZE_MAX; /* cut: needs more */
    for (size_t j = 1; j < k; j++)
        if ((s[i + j] & 0xC0) != 0x80) return 0;
    if (k == 3 && ((b == 0xE0 && s[i + 1] < 0xA0) || (b == 0xED && s[i + 1] >= 0xA0))) return 0;
    if (k == 4 && ((b == 0xF0 && s[i + 1] < 0x90) || (b == 0xF4 && s[i + 1] >= 0x90))) return 0;
    return k;
}

typedef struct cast {
    char *buf;
    size_t len, cap;
    int64_t t0;
    uint8_t carry[4];
    size_t ncarry;
    bool oom;
} cast;

static void cast_add(cast *k, const char *s, size_t n)
{
    if (k->oom) return;
    if (k->len + n + 1 > k->cap) {
        size_t cap = (k->cap ? k->cap * 2 : 65536) + n;
        char *b = ax_realloc(k->buf, cap);
        if (!b) {
            k->oom = true;
            return;
        }
        k->buf = b, k->cap = cap;
    }
    memcpy(k->buf + k->len, s, n);
    k->len += n;
}

static void cast_event(hub_msg *m, void *ud)
{
    cast *k = ud;
    if (m->kind != HUB_MSG) return;
    if (!k->t0) k->t0 = m->time_ms;
    size_t n = k->ncarry + m->payload_len;
    uint8_t *in = ax_malloc(n + 1), *txt = ax_malloc(n * 3 + 1);
    if (!in || !txt) {
        k->oom = true;
        goto out;
    }
    memcpy(in, k->carry, k->ncarry);
    memcpy(in + k->ncarry, m->payload, m->payload_len);
    k->ncarry = 0;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t step = utf8_take(in, n, i);
        if (step == SIZE_MAX) { /* keep the cut sequence for the next message */
            k->ncarry = n - i;
            memcpy(k->carry, in + i, k->ncarry);
            break;
        }
        if (step == 0) {
            memcpy(txt + o, "\xEF\xBF\xBD", 3), o += 3, i++;
            continue;
        }
        memcpy(txt + o, in + i, step), o += step, i += step;
    }
    json_t *ev = json_pack("[f,s,s#]", (double)(m->time_ms - k->t0) / 1000.0, "o", (char *)txt, o);
    char *s = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    if (s) {
        cast_add(k, s, strlen(s));
        cast_add(k, "\n", 1);
    } else {
        k->oom = true;
    }
    free(s);
    json_decref(ev);
out:
    ax_free(in);
    ax_free(txt);
}

static void term_cast(gw_term *g, ax_http_req *r, const char *name)
{
    char topic[TERM_NAME_MAX + 16];
    auth_identity *id = term_identity(g, r);
    if (!id) return;
    snprintf(topic, sizeof topic, "term/%s", name);
    bool ok = auth_may_read(id, topic);
    auth_identity_free(id);
    if (!ok) {
        serve_http_error(r, 403, "forbidden: you may not watch this terminal (read on term/NAME)");
        return;
    }
    pthread_mutex_lock(&reg.lock);
    term *t = term_find(name, false);
    uint64_t since = t ? t->since : 0;
    int cols = t ? t->cols : 80, rows = t ? t->rows : 24;
    pthread_mutex_unlock(&reg.lock);
    since = (uint64_t)query_int(r, "since", (int64_t)since);
    snprintf(topic, sizeof topic, "term/%s/out", name);
    cast k = {0};
    uint64_t first = 0, from = 0,
             upto = hub_history_window(g->sv->hub, topic, since, SIZE_MAX, &first, &from);
    hub_msg *pos = NULL;
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "{\"version\":2,\"width\":%d,\"height\":%d,\"timestamp\":%lld,"
                      "\"title\":\"%s\",\"env\":{\"TERM\":\"xterm-256color\"}}\n",
                      cols, rows, (long long)time(NULL), name);
    cast_add(&k, head, (size_t)hn);
    while (hub_history_more(g->sv->hub, topic, &pos, &from, upto, 1024, cast_event, &k) > 0)
        ;
    if (pos) hub_msg_unref(pos);
    if (k.oom) {
        ax_free(k.buf);
        serve_http_error(r, 500, "out of memory");
        return;
    }
    ax_http_add_header(r, "Cache-Control", "no-store");
    ax_http_respond(r, 200, "application/x-asciicast", k.buf, k.len);
    ax_free(k.buf);
}

/* The page: web/term.html; it reads the name from its address. */
static void term_page(ax_http_req *r)
{
    for (size_t i = 0; i < web_assets_count; i++)
        if (strcmp(web_assets[i].name, "term.html") == 0) {
            ax_http_add_header(r, "Cache-Control", "no-cache");
            ax_http_add_header(r, "X-Content-Type-Options", "nosniff");
            ax_http_respond(r, 200, "text/html; charset=utf-8", web_assets[i].data,
                            web_assets[i].len);
            return;
        }
    serve_http_error(r, 404, "the terminal page is not built in");
}

/* /term/NAME[/agent|/ws|/cast] */
static void term_route(ax_http_req *r, void *ud)
{
    gw_term *g = ud;
    size_t pl;
    const char *path = ax_http_req_path(r, &pl);
    const char *p = path + 6, *end = path + pl; /* after "/term/" */
    if (pl <= 6) {
        serve_http_error(r, 404, "GET /term/NAME");
        return;
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    size_t nl = slash ? (size_t)(slash - p) : (size_t)(end - p);
    char name[TERM_NAME_MAX + 1];
    if (!name_valid(p, nl)) {
        serve_http_error(r, 404, "a terminal's name is 1 to 64 of A-Z a-z 0-9 . _ -");
        return;
    }
    memcpy(name, p, nl);
    name[nl] = '\0';
    const char *rest = slash ? slash : end;
    size_t rl = (size_t)(end - rest);
    if (rl == 0 || (rl == 1 && *rest == '/')) {
        term_page(r);
    } else if (rl == 6 && memcmp(rest, "/agent", 6) == 0) {
        if (serve_http_method(r, "GET", "GET")) term_upgrade(g, r, name, true);
    } else if (rl == 3 && memcmp(rest, "/ws", 3) == 0) {
        if (serve_http_method(r, "GET", "GET")) term_upgrade(g, r, name, false);
    } else if (rl == 5 && memcmp(rest, "/cast", 5) == 0) {
        if (serve_http_method(r, "GET", "GET")) term_cast(g, r, name);
    } else {
        serve_http_error(r, 404,
                         "GET /term/NAME, /term/NAME/ws, /term/NAME/agent, /term/NAME/cast");
    }
}

/* Every second: sessions idle past term_idle_timeout end (their agent's
 * loop does it, so each is looked at once). */
static void term_tick(ax_timer *tm, void *ud)
{
    gw_term *g = ud;
    (void)tm;
    uint32_t idle = g->sv->cfg->term_idle_s;
    if (!idle) return;
    int64_t now = now_ms();
    pthread_mutex_lock(&reg.lock);
    for (term *t = reg.terms; t; t = t->next) {
        if (!t->live || !t->agent || t->agent_loop != g->sv->loop) continue;
        if (now - t->last_ms < (int64_t)idle * 1000) continue;
        ax_log(AX_LOG_INFO, "term %s: session %llu idle for %u s: closing it", t->name,
               (unsigned long long)t->session, idle);
        agent_json(g, t, json_pack("{s:s,s:s}", "type", "close", "why", "idle"));
        session_end(g, t, -1, "idle timeout");
    }
    pthread_mutex_unlock(&reg.lock);
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static void term_stop_all(void *vg, bool now)
{
    gw_term *g = vg;
    ax_timer_stop(g->tick);
    pthread_mutex_lock(&reg.lock);
    for (tconn *c = reg.conns; c; c = c->next) {
        if (c->g != g || !c->ws) continue;
        if (now)
            ax_conn_abort(ax_ws_conn(c->ws), AX_ECLOSED);
        else
            ax_ws_close(c->ws, AX_WS_CLOSE_GOING_AWAY, "the server is shutting down");
    }
    pthread_mutex_unlock(&reg.lock);
}

static void term_stop(void *g)
{
    term_stop_all(g, false);
}

static void term_abort(void *g)
{
    term_stop_all(g, true);
}

static size_t term_count(const void *vg)
{
    const gw_term *g = vg;
    return g->open;
}

static void term_free(void *vg)
{
    gw_term *g = vg;
    ax_timer_free(g->tick);
    frame_forget();
    pthread_mutex_lock(&reg.lock);
    locals_free(g);
    if (reg.nsub && hub_sub_data(reg.nsub) == g) {
        hub_sub_free(reg.nsub);
        reg.nsub = NULL;
    }
    if (--reg.instances == 0 && !reg.conns) {
        while (reg.terms) {
            term *t = reg.terms;
            reg.terms = t->next;
            ax_free(t);
        }
        reg.nterms = 0;
    }
    pthread_mutex_unlock(&reg.lock);
    ax_free(g);
}

static void *term_mount(serve *sv, ax_http_server *srv, char *why, size_t why_len)
{
    gw_term *g = ax_calloc(1, sizeof(*g));
    int err = AX_ENOMEM;
    if (!g) goto fail;
    g->sv = sv;
    g->opts = (ax_ws_opts){.max_message = 1u << 20, .ping_interval_ms = 30000};
    if (!(g->tick = ax_timer_new(sv->loop, term_tick, g))) goto fail;
    if ((err = ax_http_route(srv, NULL, "/term", term_route, g))) goto fail;
    ax_timer_start(g->tick, TERM_TICK_MS, TERM_TICK_MS);
    pthread_mutex_lock(&reg.lock);
    reg.instances++;
    err = sv->index == 0 ? locals_start(g) : 0;
    if (!err && sv->index == 0 && sv->bp && sv->auth) err = far_start(g);
    pthread_mutex_unlock(&reg.lock);
    if (err) {
        snprintf(why, why_len, "cannot add the hub's own terminals: %s", ax_strerror(err));
        term_free(g);
        return NULL;
    }
    return g;
fail:
    snprintf(why, why_len, "cannot add terminals: %s", ax_strerror(err));
    if (g) {
        ax_timer_free(g->tick);
        ax_free(g);
    }
    return NULL;
}

const gw_ops gw_term_gateway = {.name = "term",
                                .mount = term_mount,
                                .stop = term_stop,
                                .abort = term_abort,
                                .free = term_free,
                                .count = term_count};
