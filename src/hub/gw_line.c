/* gw_line.c: line chat over TCP, for netcat and telnet users.
 *
 * The first line is the user's name; the user starts in room `lobby`.
 * Every other line is a message to the current room (the topic
 * chat/<room>), or a command: /join /nick /msg /who /rooms /me /history
 * /quit /help.  Messages from every gateway arrive as `[room] name: text`;
 * direct messages (`/msg NAME text`, the topic user/NAME/inbox, which each
 * named session subscribes to) as `[dm] name: text`.
 * With authentication configured, the first line may be `/login NAME
 * PASSWORD` or `/token TOKEN` (required when anonymous access is off);
 * the name is then the login's, and /nick is refused.
 * A message's line is made once and the same bytes are queued on every
 * line client (ENC_LINE). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "serve.h"

typedef struct gw_line gw_line;

#define ROOM_MAX 64
#define NAME_MAX_LEN 32
#define LINE_MAX_CAP 65536 /* the largest max_line setting */

typedef struct line_conn line_conn;

struct gw_line {
    serve *sv;
    ax_listener *ls, *tls_ls;
    line_conn *conns;
};

struct line_conn {
    line_conn *prev, *next;
    gw_line *g;
    ax_conn *c;
    hub_sub *sub;
    ax_timer *timer;  /* the name, then the idle timeout (NULL: neither) */
    uint64_t last_in; /* loop ms of the last whole line */
    char room[ROOM_MAX + 1];
    bool discarding; /* inside a line that was too long */
    bool quit;
    auth_identity *id;   /* who it is; NULL: no auth configured */
    hub_limits_conn lim; /* its share of the limits */
};

static const char *HELP = "* commands:\n"
                          "*   /join ROOM      go to another room (made when first used)\n"
                          "*   /nick NAME      change your name\n"
                          "*   /msg NAME TEXT  a direct message, seen by NAME only\n"
                          "*   /who            who is in this room\n"
                          "*   /rooms          the rooms and how many are in each\n"
                          "*   /me ACTION      say what you do (* you waves)\n"
                          "*   /history [N]    the last N messages of this room (default 20)\n"
                          "*   /quit           leave\n"
                          "*   //text          a message that starts with /\n";

static void say(line_conn *lc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_timer_arm(line_conn *lc);

static void say(line_conn *lc, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    if (ax_conn_write(lc->c, buf, (size_t)n) >= 0)
        GW_ADD(lc->g->sv->gw[GW_LINE].bytes_out, (size_t)n);
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* ---- rendering ----------------------------------------------------------------- */

/* Text for a line: control bytes (a newline from another gateway) become
 * spaces, so one message is one line. */
static size_t put_text(char *out, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    return n;
}

static ax_slice *encode_line(const hub_msg *m, void *ud)
{
    (void)ud;
    const char *room = serve_room_of(m->topic);
    const char *where = room ? room : m->topic;
    const char *who = m->sender_len ? m->sender : "?";
    ax_slice *s = ax_slice_new(strlen(where) + m->sender_len + m->payload_len + 64);
    if (!s) return NULL;
    char *o = ax_slice_data(s);
    int n;
    char to[AUTH_MAX_NAME + 1];
    if (!room && m->kind == HUB_MSG && auth_inbox_of(m->topic, to, sizeof to))
        where = "dm"; /* a direct message to the reader */
    if (m->kind == HUB_JOIN || m->kind == HUB_LEAVE) {
        n = sprintf(o, "* %s %s %s\n", who, m->kind == HUB_JOIN ? "joined" : "left", where);
    } else if (m->binary) {
        n = sprintf(o, "[%s] %s: <%zu bytes of binary data>\n", where, who, m->payload_len);
    } else if (m->payload_len > 4 && memcmp(m->payload, "/me ", 4) == 0) {
        n = sprintf(o, "[%s] * %s ", where, who);
        n += (int)put_text(o + n, m->payload + 4, m->payload_len - 4);
        o[n++] = '\n';
    } else {
        n = sprintf(o, "[%s] %s: ", where, who);
        n += (int)put_text(o + n, m->payload, m->payload_len);
        o[n++] = '\n';
    }
    ax_slice_truncate(s, (size_t)n);
    return s;
}

static bool line_write(hub_sub *s, hub_msg *m, void *ud)
{
    line_conn *lc = ud;
    if (m->kind == HUB_GAP || (m->kind == HUB_MSG && m->origin == hub_sub_id(s))) return true;
    ax_slice *sl = hub_msg_encoding(m, ENC_LINE, encode_line, NULL);
    if (!sl) {
        /* out of memory: a message lost without a word would leave a gap the
         * client never hears of; ending the connection says so (it resumes) */
        ax_conn_abort(lc->c, AX_ENOMEM);
        return false;
    }
    int rc = ax_conn_write_slice(lc->c, sl, 0, ax_slice_len(sl));
    gw_stats *st = &lc->g->sv->gw[GW_LINE];
    GW_ADD(st->msgs_out, 1);
    GW_ADD(st->bytes_out, ax_slice_len(sl));
    return rc == 0;
}

static void line_kick(hub_sub *s, const char *why, void *ud)
{
    line_conn *lc = ud;
    (void)s;
    char peer[AX_ADDR_STRLEN] = "?";
    ax_addr a;
    if (ax_conn_peer(lc->c, &a) == 0) ax_addr_format(&a, peer, sizeof peer);
    ax_log(AX_LOG_WARN, "line %s (%s): disconnected: %s", peer, hub_sub_name(s), why);
    ax_conn_abort(lc->c, AX_EOUTPUTCAP);
}

static const hub_sub_ops line_ops = {line_write, line_kick};

/* ---- commands ---------------------------------------------------------------------- */

static void list_name(const char *name, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    if (n + strlen(name) + 3 < 900) snprintf(out + n, 900 - n, "%s%s", n ? ", " : "", name);
}

/* May the user do this (auth_may_*) on topic?  Else says the error. */
static bool allowed(line_conn *lc, bool (*may)(const auth_identity *, const char *),
                    const char *topic)
{
    if (!lc->id || may(lc->id, topic)) return true;
    say(lc, "error: forbidden: you may not do that on %s\n", topic);
    return false;
}

static void who(line_conn *lc)
{
    char topic[ROOM_MAX + 8], names[900] = "";
    snprintf(topic, sizeof topic, "chat/%s", lc->room);
    if (!allowed(lc, auth_may_read, topic)) return;
    hub_presence(lc->g->sv->hub, topic, list_name, names);
    say(lc, "* in %s: %s\n", lc->room, names[0] ? names : "nobody");
}

typedef struct rooms_ctx {
    char out[900];
    const auth_identity *id; /* NULL: every room */
} rooms_ctx;

static void list_room(const char *topic, uint64_t last, size_t subs, void *ud)
{
    (void)last;
    const char *room = serve_room_of(topic);
    rooms_ctx *c = ud;
    char *out = c->out;
    if (c->id && !auth_may_read(c->id, topic)) return; /* not even its name */
    size_t n = strlen(out);
    if (room && !strchr(room, '/') && n + strlen(room) + 24 < 900)
        snprintf(out + n, 900 - n, "%s%s (%zu)", n ? ", " : "", room, subs);
}

static void show_history(hub_msg *m, void *ud)
{
    line_conn *lc = ud;
    ax_slice *sl = hub_msg_encoding(m, ENC_LINE, encode_line, NULL);
    /* a failure closes the connection (output cap): nothing more to do */
    int rc = sl ? ax_conn_write_slice(lc->c, sl, 0, ax_slice_len(sl)) : 0;
    (void)rc;
}

static int join(line_conn *lc, const char *room)
{
    char topic[ROOM_MAX + 8];
    if (!name_ok(room, ROOM_MAX)) {
        say(lc, "* a room name is 1 to %d letters, digits, '_', '-' or '.'\n", ROOM_MAX);
        return -1;
    }
    snprintf(topic, sizeof topic, "chat/%s", room);
    if (!allowed(lc, auth_may_subscribe, topic)) return -1;
    if (lc->room[0]) {
        snprintf(topic, sizeof topic, "chat/%s", lc->room);
        hub_unsubscribe(lc->sub, topic);
    }
    snprintf(lc->room, sizeof lc->room, "%s", room);
    snprintf(topic, sizeof topic, "chat/%s", room);
    if (hub_subscribe(lc->sub, topic, -1, true) != 0) {
        say(lc, "* cannot join %s\n", room);
        return -1;
    }
    return 0;
}

/* The session's direct messages: user/NAME/inbox of its name (none for
 * an anonymous client of a server with auth: its name is not its own). */
static void inbox(line_conn *lc, const char *name, bool on)
{
    char topic[AUTH_MAX_NAME + 16];
    if (!name || !auth_name_valid(name)) return;
    snprintf(topic, sizeof topic, "user/%s/inbox", name);
    if (!on)
        hub_unsubscribe(lc->sub, topic);
    else if (!lc->id || auth_may_subscribe(lc->id, topic))
        hub_subscribe(lc->sub, topic, -1, false);
}

/* /msg NAME TEXT: publish to user/NAME/inbox; the sender sees a copy. */
static void direct(line_conn *lc, char *arg)
{
    char *text = arg ? strchr(arg, ' ') : NULL, topic[AUTH_MAX_NAME + 16];
    if (text) *text++ = '\0';
    if (!arg || !*arg || !text || !*text) {
        say(lc, "* usage: /msg NAME TEXT\n");
        return;
    }
    if (!auth_name_valid(arg)) {
        say(lc, "error: '%.64s' is not a user name\n", arg);
        return;
    }
    snprintf(topic, sizeof topic, "user/%s/inbox", arg);
    serve *sv = lc->g->sv;
    int err = 0;
    GW_ADD(sv->gw[GW_LINE].msgs_in, 1);
    if (!allowed(lc, auth_may_publish, topic)) return;
    if (!hub_publish_via(sv->hub, HUB_VIA_LINE, lc->sub, topic, hub_sub_name(lc->sub), text,
                         strlen(text), NULL, &err))
        say(lc, "* not sent: %s\n",
            err == AX_EAGAIN ? "the server is busy, try again in a moment" : hub_strerror(err));
    else
        say(lc, "[dm to %s] %s: %.800s\n", arg, hub_sub_name(lc->sub), text);
}

static void command(line_conn *lc, char *line)
{
    char *arg = strchr(line, ' ');
    if (arg) {
        *arg++ = '\0';
        while (*arg == ' ')
            arg++;
    }
    hub *h = lc->g->sv->hub;
    if (strcmp(line, "/join") == 0 && arg && *arg) {
        join(lc, arg);
    } else if (strcmp(line, "/nick") == 0 && lc->id && lc->id->name[0]) {
        say(lc, "error: your name is the one you signed in with\n");
    } else if (strcmp(line, "/nick") == 0 && arg && *arg) {
        char old[HUB_MAX_NAME + 1];
        snprintf(old, sizeof old, "%s", hub_sub_name(lc->sub) ? hub_sub_name(lc->sub) : "");
        if (!name_ok(arg, NAME_MAX_LEN) || hub_sub_rename(lc->sub, arg) != 0) {
            say(lc, "* a name is 1 to %d letters, digits, '_', '-' or '.'\n", NAME_MAX_LEN);
        } else {
            inbox(lc, old, false); /* the direct messages follow the name */
            inbox(lc, arg, true);
            say(lc, "* you are now %s\n", arg);
        }
    } else if (strcmp(line, "/msg") == 0) {
        direct(lc, arg);
    } else if (strcmp(line, "/who") == 0) {
        who(lc);
    } else if (strcmp(line, "/rooms") == 0) {
        rooms_ctx rc = {.id = lc->id};
        hub_topics(h, "chat/", 200, list_room, &rc, NULL);
        say(lc, "* rooms: %s\n", rc.out[0] ? rc.out : "none yet");
    } else if (strcmp(line, "/history") == 0) {
        long n = arg && *arg ? strtol(arg, NULL, 10) : 20;
        char topic[ROOM_MAX + 8];
        snprintf(topic, sizeof topic, "chat/%s", lc->room);
        if (!allowed(lc, auth_may_read, topic)) return;
        say(lc, "* the last messages of %s:\n", lc->room);
        hub_history(h, topic, 0, n > 0 && n <= 1000 ? (size_t)n : 20, show_history, lc, NULL);
        say(lc, "* end of history\n");
    } else if (strcmp(line, "/quit") == 0) {
        say(lc, "* bye\n");
        hub_sub_free(lc->sub); /* leave the room now, not when the peer closes */
        lc->sub = NULL;
        lc->quit = true;
        ax_conn_close(lc->c);
    } else if (strcmp(line, "/help") == 0) {
        say(lc, "%s", HELP);
    } else if (strcmp(line, "/join") == 0 || strcmp(line, "/nick") == 0) {
        say(lc, "* usage: %s %s\n", line, line[1] == 'j' ? "ROOM" : "NAME");
    } else {
        say(lc, "* unknown command %s (try /help)\n", line);
    }
}

static void publish(line_conn *lc, const char *text, size_t n)
{
    char topic[ROOM_MAX + 8];
    int err = 0;
    snprintf(topic, sizeof topic, "chat/%s", lc->room);
    serve *sv = lc->g->sv;
    GW_ADD(sv->gw[GW_LINE].msgs_in, 1);
    if (!allowed(lc, auth_may_publish, topic)) return;
    if (!hub_publish_via(sv->hub, HUB_VIA_LINE, lc->sub, topic, hub_sub_name(lc->sub), text, n,
                         NULL, &err))
        say(lc, "* not sent: %s\n",
            err == AX_EAGAIN ? "the server is busy, try again in a moment" : hub_strerror(err));
}

static void greet(line_conn *lc, const char *name)
{
    /* a signed-in name is the login's, whatever it holds (auth_name_valid) */
    bool signed_in = lc->id && lc->id->name[0];
    if (!signed_in && !name_ok(name, NAME_MAX_LEN)) {
        say(lc, "* a name is 1 to %d letters, digits, '_', '-' or '.'; your name?\n", NAME_MAX_LEN);
        return;
    }
    lc->sub = hub_sub_new(lc->g->sv->hub, &line_ops, lc, name);
    if (!lc->sub) {
        ax_conn_abort(lc->c, AX_ENOMEM);
        return;
    }
    if (lc->id) hub_sub_set_identity(lc->sub, lc->id);
    line_timer_arm(lc); /* from the name deadline to the idle timeout */
    /* Corked: "you are in lobby" must not reach the client before it is.
     * A client speaks as soon as it reads the hello, and another loop's
     * client may too: written at once, a message sent in that moment
     * went past this subscriber (test_serve hello_means_in_the_room). */
    ax_conn_cork(lc->c);
    say(lc, "* hello %s, you are in lobby (type /help for commands)\n", name);
    inbox(lc, name, true);
    if (join(lc, "lobby") == 0) who(lc);
    if (ax_conn_uncork(lc->c) < 0) return; /* failed: on_close follows */
}

/* Log a refused sign-in with the client's address (once per client). */
static void refused(line_conn *lc, const char *why)
{
    ax_addr a;
    serve_refused(lc->g->sv, "line", ax_conn_peer(lc->c, &a) == 0 ? &a : NULL, why);
}

/* The first line with auth configured: /login NAME PASSWORD, /token T,
 * or a name (when anonymous access is allowed). */
static void sign_in(line_conn *lc, char *line)
{
    const serve *sv = lc->g->sv;
    ax_addr peer, *from = ax_conn_peer(lc->c, &peer) == 0 ? &peer : NULL;
    if (strncmp(line, "/login ", 7) == 0) {
        char *user = line + 7, *pw = strchr(user, ' ');
        if (pw) *pw++ = '\0';
        lc->id = pw ? serve_login(sv, from, user, pw) : NULL;
        if (pw) memset(pw, 0, strlen(pw)); /* the password */
    } else if (strncmp(line, "/token ", 7) == 0) {
        lc->id = serve_token(sv, from, line + 7, strlen(line + 7));
    } else if (line[0] != '/' && (lc->id = serve_anonymous(sv))) {
        greet(lc, line);
        return;
    } else {
        refused(lc, "no credentials");
        say(lc, "error: unauthorized: sign in with /login NAME PASSWORD or /token TOKEN\n");
        return;
    }
    if (!lc->id) {
        refused(lc, NULL);
        say(lc, "error: unauthorized\n");
        return;
    }
    greet(lc, lc->id->name);
}

static bool expired(line_conn *lc)
{
    if (!lc->id || !auth_expired(lc->id, (int64_t)time(NULL))) return false;
    say(lc, "error: token expired\n");
    lc->quit = true;
    ax_conn_close(lc->c);
    return true;
}

/* Every line counts (msg_rate, byte_rate): over a limit, an error line,
 * then close; true. */
static bool over_limit(line_conn *lc, size_t n)
{
    hub_refusal ref = {0};
    char text[128];
    hub_limit_kind k = serve_limit_msg(lc->g->sv, "line", lc->c, &lc->lim, n + 1, &ref);
    if (k == HUB_LIMIT_OK) return false;
    say(lc, "error: %s\n", serve_limit_text(k, &ref, text, sizeof text));
    lc->quit = true;
    ax_conn_close(lc->c);
    return true;
}

static void one_line(line_conn *lc, char *line, size_t n)
{
    if (lc->quit || expired(lc) || over_limit(lc, n)) return;
    if (n && line[n - 1] == '\r') line[--n] = '\0';
    if (!lc->sub && lc->g->sv->auth && !lc->id) {
        sign_in(lc, line);
    } else if (!lc->sub) {
        greet(lc, line);
    } else if (n >= 2 && line[0] == '/' && line[1] == '/') {
        publish(lc, line + 1, n - 1);
    } else if (n && line[0] == '/') {
        if (strncmp(line, "/me ", 4) == 0)
            publish(lc, line, n);
        else
            command(lc, line);
    } else if (n) {
        publish(lc, line, n);
    }
}

/* ---- timeouts ------------------------------------------------------------------------------ */

/* `ms`, or less: the timer also fires when the token ends (just after). */
static uint64_t to_expiry(const line_conn *lc, uint64_t ms)
{
    if (!lc->id || !lc->id->exp) return ms;
    int64_t left = lc->id->exp - (int64_t)time(NULL);
    if (left < 0) left = 0;
    return (uint64_t)left * 1000 + 100 < ms ? (uint64_t)left * 1000 + 100 : ms;
}

/* One timer per connection: from connecting until a valid name (a hard
 * deadline, however the bytes trickle), then from the last whole line,
 * so an empty line keeps a quiet user connected.  Output does not count:
 * a dead peer in a busy room would look alive. */
static void line_timeout(ax_timer *t, void *ud)
{
    line_conn *lc = ud;
    const serve_cfg *cfg = lc->g->sv->cfg;
    uint64_t now = ax_loop_now(lc->g->sv->loop);
    if (lc->quit || expired(lc)) return; /* closing already */
    if (lc->sub) {
        uint64_t limit = (uint64_t)cfg->line_idle_timeout_s * 1000;
        if (now - lc->last_in < limit) {
            ax_timer_start(t, to_expiry(lc, limit - (now - lc->last_in)), 0);
            return;
        }
        say(lc, "* nothing from you for %u s; bye\n", cfg->line_idle_timeout_s);
    } else {
        say(lc, "* no name in %u s; bye\n", cfg->line_name_timeout_s);
    }
    lc->quit = true;
    ax_conn_close(lc->c);
}

/* Arm the timer for the state the connection is in now. */
static void line_timer_arm(line_conn *lc)
{
    const serve_cfg *cfg = lc->g->sv->cfg;
    uint32_t s = lc->sub ? cfg->line_idle_timeout_s : cfg->line_name_timeout_s;
    if (!s && lc->id && lc->id->exp) s = 86400; /* the token's end still counts */
    if (!s) {
        if (lc->timer) ax_timer_stop(lc->timer);
        return;
    }
    if (!lc->timer && !(lc->timer = ax_timer_new(lc->g->sv->loop, line_timeout, lc))) return;
    ax_timer_start(lc->timer, to_expiry(lc, (uint64_t)s * 1000), 0);
}

/* ---- connections -------------------------------------------------------------------------- */

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    line_conn *lc = ax_conn_data(c);
    if (!lc) return len; /* refused (on_open) */
    serve *sv = lc->g->sv;
    static char buf[LINE_MAX_CAP + 1]; /* one loop: one line at a time */
    size_t max = sv->cfg->max_line, off = 0;
    while (off < len) {
        const char *nl = memchr(data + off, '\n', len - off);
        if (!nl) break;
        size_t n = (size_t)(nl - (data + off));
        if (lc->discarding) {
            lc->discarding = false;
        } else if (n > max) {
            say(lc, "* line too long (at most %zu bytes); dropped\n", max);
        } else {
            memcpy(buf, data + off, n);
            buf[n] = '\0';
            one_line(lc, buf, n);
        }
        off += n + 1;
        lc->last_in = ax_loop_now(sv->loop);
        if (ax_conn_paused(c)) break;
    }
    if (len - off > max) { /* a line longer than the limit: drop it, say so once */
        if (!lc->discarding) say(lc, "* line too long (at most %zu bytes); dropped\n", max);
        lc->discarding = true;
        off = len;
    }
    GW_ADD(sv->gw[GW_LINE].bytes_in, off);
    return off;
}

/* Over a connection limit: an error line, then close (never opened). */
static bool conn_refused(gw_line *g, ax_conn *c, hub_limits_conn *lim)
{
    hub_refusal ref = {0};
    char text[128], msg[160];
    hub_limit_kind k = serve_limit_open(g->sv, "line", c, lim, &ref);
    if (k == HUB_LIMIT_OK) return false;
    int n = snprintf(msg, sizeof msg, "error: %s\n", serve_limit_text(k, &ref, text, sizeof text));
    if (n > 0 && ax_conn_write(c, msg, (size_t)n) >= 0) GW_ADD(g->sv->gw[GW_LINE].bytes_out, n);
    GW_ADD(g->sv->gw[GW_LINE].errors, 1);
    ax_conn_set_data(c, NULL);
    ax_conn_close(c);
    return true;
}

static void on_open(ax_conn *c)
{
    gw_line *g = ax_conn_data(c);
    hub_limits_conn lim;
    if (conn_refused(g, c, &lim)) return;
    line_conn *lc = ax_calloc(1, sizeof(*lc));
    if (!lc) {
        serve_limit_close(g->sv, &lim);
        ax_conn_set_data(c, NULL);
        ax_conn_abort(c, AX_ENOMEM);
        return;
    }
    lc->lim = lim;
    lc->g = g;
    lc->c = c;
    lc->next = g->conns;
    if (g->conns) g->conns->prev = lc;
    g->conns = lc;
    ax_conn_set_data(c, lc);
    GW_ADD(g->sv->gw[GW_LINE].conns, 1);
    GW_ADD(g->sv->gw[GW_LINE].accepted, 1);
    lc->last_in = ax_loop_now(g->sv->loop);
    line_timer_arm(lc);
    auth_identity *anon = g->sv->auth ? serve_anonymous(g->sv) : NULL;
    if (g->sv->auth && !anon)
        say(lc, "Welcome to axon chat. Sign in: /login NAME PASSWORD or /token TOKEN\n");
    else
        say(lc, "Welcome to axon chat. What is your name?\n");
    auth_identity_free(anon);
}

static void on_drain(ax_conn *c)
{
    line_conn *lc = ax_conn_data(c);
    if (lc && lc->sub) hub_sub_writable(lc->sub);
}

static void on_end(ax_conn *c)
{
    ax_conn_close(c);
}

static void on_close(ax_conn *c, int reason)
{
    line_conn *lc = ax_conn_data(c);
    (void)reason;
    if (!lc) return; /* refused in on_open */
    if (lc->prev)
        lc->prev->next = lc->next;
    else
        lc->g->conns = lc->next;
    if (lc->next) lc->next->prev = lc->prev;
    GW_SUB(lc->g->sv->gw[GW_LINE].conns, 1);
    serve_limit_close(lc->g->sv, &lc->lim);
    hub_sub_free(lc->sub);
    auth_identity_free(lc->id);
    ax_timer_free(lc->timer);
    ax_free(lc);
}

static const ax_conn_cbs line_cbs = {.on_open = on_open,
                                     .on_data = on_data,
                                     .on_drain = on_drain,
                                     .on_end = on_end,
                                     .on_close = on_close};

/* A line plus its newline may wait for the rest; a slow reader may have
 * 4 MiB queued before the connection gives up on it. */
static ax_conn_opts line_conn_opts(const serve *sv, ax_tls_ctx *tls)
{
    return (ax_conn_opts){.max_input = sv->cfg->max_line + 2,
                          .output_cap = 4u << 20,
                          .linger_ms = sv->cfg->close_timeout_s * 1000,
                          .tls = tls};
}

static gw_line *gw_line_start(serve *sv, const char *url, char *why, size_t why_len)
{
    gw_line *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    g->sv = sv;
    int err = 0;
    ax_conn_opts co = line_conn_opts(sv, NULL);
    ax_listen_opts lo = serve_listen_opts(sv);
    g->ls = url ? ax_listen_ex(sv->loop, url, &line_cbs, &co, &lo, g, &err) : NULL;
    if (url && !g->ls) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        ax_free(g);
        return NULL;
    }
    return g;
}

static const char *gw_line_addr(gw_line *g, char *buf, size_t len)
{
    return g && g->ls ? ax_addr_format(ax_listener_addr(g->ls), buf, len) : NULL;
}

static int gw_line_listen_tls(gw_line *g, const char *url, char *why, size_t why_len)
{
    int err = 0;
    ax_conn_opts co = line_conn_opts(g->sv, g->sv->tls);
    ax_listen_opts lo = serve_listen_opts(g->sv);
    g->tls_ls = ax_listen_ex(g->sv->loop, url, &line_cbs, &co, &lo, g, &err);
    if (!g->tls_ls) snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
    return g->tls_ls ? 0 : err;
}

static const char *gw_line_tls_addr(gw_line *g, char *buf, size_t len)
{
    if (!g || !g->tls_ls) return NULL;
    return ax_listener_url(g->tls_ls, buf, len);
}

/* Close the listeners and say goodbye to everyone; the connections close
 * gracefully (the loop must run a little more for that). */
static void gw_line_stop(gw_line *g)
{
    if (!g) return;
    if (g->ls) ax_listener_close(g->ls);
    if (g->tls_ls) ax_listener_close(g->tls_ls);
    g->tls_ls = NULL;
    for (line_conn *lc = g->conns; lc; lc = lc->next) {
        say(lc, "* the server is shutting down\n");
        ax_conn_close(lc->c);
    }
    g->ls = NULL;
}

static void gw_line_abort(gw_line *g)
{
    for (line_conn *lc = g ? g->conns : NULL; lc; lc = lc->next)
        ax_conn_abort(lc->c, AX_ECLOSED); /* on_close comes on the next turn */
}

static void gw_line_free(gw_line *g)
{
    ax_free(g); /* after gw_line_count() is 0 */
}

static size_t gw_line_count(const gw_line *g)
{
    size_t n = 0;
    for (const line_conn *lc = g ? g->conns : NULL; lc; lc = lc->next)
        n++;
    return n;
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static const char *line_url(const serve_cfg *c)
{
    return c->line_url;
}

static const char *line_tls_url(const serve_cfg *c)
{
    return c->line_tls_url;
}

static void *line_start(serve *sv, const char *url, char *why, size_t why_len)
{
    return gw_line_start(sv, url, why, why_len);
}

static int line_listen_tls(void *g, const char *url, char *why, size_t why_len)
{
    return gw_line_listen_tls(g, url, why, why_len);
}

static void line_stop(void *g)
{
    gw_line_stop(g);
}

static void line_abort(void *g)
{
    gw_line_abort(g);
}

static void line_free(void *g)
{
    gw_line_free(g);
}

static size_t line_count(const void *g)
{
    return gw_line_count(g);
}

static const char *line_addr(void *g, char *buf, size_t len)
{
    return gw_line_addr(g, buf, len);
}

static const char *line_tls_addr(void *g, char *buf, size_t len)
{
    return gw_line_tls_addr(g, buf, len);
}

static void line_log_addrs(void *g)
{
    char a[AX_ADDR_STRLEN];
    if (gw_line_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "line chat on %s", a);
    if (gw_line_tls_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "line chat over TLS on %s", a);
}

static void line_hints(void *g, FILE *out)
{
    char a[AX_ADDR_STRLEN], hp[AX_ADDR_STRLEN];
    if (gw_line_tls_addr(g, a, sizeof a))
        fprintf(out, "axon serve: line over TLS axon cat %s\n", a);
    if (gw_line_addr(g, a, sizeof a))
        fprintf(out, "axon serve: line chat     nc %s   (type your name, then talk; /help)\n",
                serve_nc_args(a, hp, sizeof hp));
}

const gw_ops gw_line_gateway = {.name = "line",
                                .url = line_url,
                                .tls_url = line_tls_url,
                                .tls_setting = "listen_line_tls",
                                .start = line_start,
                                .listen_tls = line_listen_tls,
                                .stop = line_stop,
                                .abort = line_abort,
                                .free = line_free,
                                .count = line_count,
                                .addr = line_addr,
                                .tls_addr = line_tls_addr,
                                .log_addrs = line_log_addrs,
                                .hints = line_hints};
