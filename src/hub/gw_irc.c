/* gw_irc.c: an IRC server whose channels are the hub's chat rooms.
 *
 * `#lobby` is the topic chat/lobby: what an IRC user says there reaches the
 * chat page, the line chat, WebSocket, SSE and MQTT clients of that room,
 * and what they say arrives as PRIVMSG from `name!name@axon`.  A nick's
 * direct messages are the topic user/NICK/inbox (the line chat's /msg).
 * Presence in a room is the hub's: NAMES and WHO list members of every
 * gateway, and their joins and leaves arrive as JOIN and PART.
 *
 * Registration: CAP LS 302 / REQ / END (sasl, server-time, message-tags,
 * echo-message, batch, draft/chathistory, multi-prefix, userhost-in-names,
 * cap-notify, away-notify, account-tag, account-notify, extended-join),
 * PASS, NICK, USER; SASL PLAIN and PASS are checked by the hub's auth
 * (serve_login / serve_token).  Channel modes, operators, KICK and INVITE
 * are gw_irc_chan.c's.  The wire is src/proto/irc; docs/irc.md lists what
 * is supported and what is not. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "gw_irc.h"
#include "proto/ws/base64.h"

static const struct {
    const char *name, *value;
    int bit;
} CAPS[] = {
    {"sasl", "PLAIN", CAP_SASL},
    {"server-time", NULL, CAP_SERVER_TIME},
    {"message-tags", NULL, CAP_MESSAGE_TAGS},
    {"echo-message", NULL, CAP_ECHO},
    {"batch", NULL, CAP_BATCH},
    {"draft/chathistory", NULL, CAP_CHATHISTORY},
    {"multi-prefix", NULL, CAP_MULTI_PREFIX},
    {"userhost-in-names", NULL, CAP_USERHOST_NAMES},
    {"cap-notify", NULL, CAP_CAP_NOTIFY},
    {"away-notify", NULL, CAP_AWAY_NOTIFY},
    {"account-tag", NULL, CAP_ACCOUNT_TAG},
    {"account-notify", NULL, CAP_ACCOUNT_NOTIFY},
    {"extended-join", NULL, CAP_EXTENDED_JOIN},
};
#define NCAPS (sizeof CAPS / sizeof *CAPS)

/* Flood control, as classic servers do it: every line moves a penalty
 * clock FLOOD_COST_MS ahead (from now, when it is behind); while the clock
 * is more than FLOOD_WINDOW_MS ahead, lines wait unread (a burst of
 * FLOOD_WINDOW_MS / FLOOD_COST_MS lines, then FLOOD_COST_MS apart); when
 * more than FLOOD_RECVQ bytes wait, the connection ends with "Excess
 * Flood".  On top of the hub's msg_rate/byte_rate limits. */
#define FLOOD_COST_MS 500
#define FLOOD_WINDOW_MS 10000
#define FLOOD_RECVQ 8192

/* ---- the network's shared state: nicks and topics of every thread ---------------- */

typedef struct nick_entry {
    struct nick_entry *next;
    const irc_conn *owner;
    char nick[HUB_MAX_NAME + 1];
    irc_who who;
} nick_entry;

typedef struct chan_topic {
    struct chan_topic *next;
    char room[ROOM_MAX + 1];
    char text[TOPIC_MAX + 1];
    char who[HUB_MAX_NAME + 1];
    int64_t set_at, created;
} chan_topic;

static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;
static nick_entry *nicks;
static chan_topic *topics;

bool irc_nick_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NICK_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (!(alpha || c == '_' || (i && (digit || c == '-')))) return false;
    }
    return auth_name_valid(s);
}

static bool room_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ROOM_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

bool irc_same_name(const char *a, const char *b)
{
    return ax_irc_casecmp(a, strlen(a), b, strlen(b));
}

typedef struct seen_ctx {
    const char *name, *skip;
    bool found;
} seen_ctx;

static void seen_name(const char *name, void *ud)
{
    seen_ctx *c = ud;
    if (irc_same_name(name, c->name) && !(c->skip && strcmp(name, c->skip) == 0)) c->found = true;
}

typedef struct rooms_walk {
    hub *h;
    seen_ctx *seen;
} rooms_walk;

static void seen_room(const char *topic, uint64_t last, size_t subs, void *ud)
{
    rooms_walk *w = ud;
    (void)last;
    if (subs && !w->seen->found) hub_presence(w->h, topic, seen_name, w->seen);
}

/* Is the name someone's, on IRC or present in a room of any gateway?
 * `self` (its own connection) does not count. */
bool irc_name_in_use(serve *sv, const char *name, const irc_conn *self)
{
    bool found = false;
    pthread_mutex_lock(&net_lock);
    for (nick_entry *e = nicks; e && !found; e = e->next)
        if (e->owner != self && irc_same_name(e->nick, name)) found = true;
    pthread_mutex_unlock(&net_lock);
    if (found) return true;
    seen_ctx sc = {name, self && self->registered ? self->nick : NULL, false};
    rooms_walk w = {sv->hub, &sc};
    char next[HUB_MAX_TOPIC + 1] = "chat/";
    do {
        char after[HUB_MAX_TOPIC + 1];
        snprintf(after, sizeof after, "%s", next);
        if (!hub_topics(sv->hub, after, 500, seen_room, &w, next)) break;
    } while (next[0] && strncmp(next, "chat/", 5) == 0 && !sc.found);
    return sc.found;
}

static void who_fill(const irc_conn *ic, irc_who *w)
{
    snprintf(w->user, sizeof w->user, "%s", ic->user);
    snprintf(w->host, sizeof w->host, "%s", ic->host);
    snprintf(w->real, sizeof w->real, "%s", ic->real);
    snprintf(w->away, sizeof w->away, "%s", ic->away);
    snprintf(w->account, sizeof w->account, "%s", ic->id && !ic->id->anonymous ? ic->id->name : "");
}

bool irc_lookup(const char *nick, irc_who *out)
{
    bool found = false;
    pthread_mutex_lock(&net_lock);
    for (nick_entry *e = nicks; e && !found; e = e->next)
        if (irc_same_name(e->nick, nick)) {
            *out = e->who;
            found = true;
        }
    pthread_mutex_unlock(&net_lock);
    return found;
}

/* Take the nick (or change it), and what others see of the user (again
 * after AWAY). */
static void nick_claim(const irc_conn *ic, const char *nick)
{
    pthread_mutex_lock(&net_lock);
    nick_entry *e = nicks;
    while (e && e->owner != ic)
        e = e->next;
    if (!e && (e = ax_calloc(1, sizeof *e))) {
        e->owner = ic;
        e->next = nicks;
        nicks = e;
    }
    if (e) {
        snprintf(e->nick, sizeof e->nick, "%s", nick);
        who_fill(ic, &e->who);
    }
    pthread_mutex_unlock(&net_lock);
}

static void nick_release(const irc_conn *ic)
{
    pthread_mutex_lock(&net_lock);
    for (nick_entry **p = &nicks; *p; p = &(*p)->next)
        if ((*p)->owner == ic) {
            nick_entry *e = *p;
            *p = e->next;
            ax_free(e);
            break;
        }
    pthread_mutex_unlock(&net_lock);
}

/* A copy of the room's topic (false: none set). */
static bool topic_get(const char *room, chan_topic *out)
{
    bool found = false;
    pthread_mutex_lock(&net_lock);
    for (chan_topic *t = topics; t; t = t->next)
        if (strcmp(t->room, room) == 0) {
            *out = *t;
            found = true;
            break;
        }
    pthread_mutex_unlock(&net_lock);
    return found;
}

static int64_t topic_set(const char *room, const char *text, const char *who)
{
    int64_t created = 0;
    pthread_mutex_lock(&net_lock);
    chan_topic *t = topics;
    while (t && strcmp(t->room, room) != 0)
        t = t->next;
    if (!t && (t = ax_calloc(1, sizeof *t))) {
        snprintf(t->room, sizeof t->room, "%s", room);
        t->created = (int64_t)time(NULL);
        t->next = topics;
        topics = t;
    }
    if (t) {
        snprintf(t->text, sizeof t->text, "%s", text);
        snprintf(t->who, sizeof t->who, "%s", who);
        t->set_at = (int64_t)time(NULL);
        created = t->created;
    }
    pthread_mutex_unlock(&net_lock);
    return created;
}

/* ---- output ------------------------------------------------------------------------ */

static void send_raw(irc_conn *ic, const char *buf, size_t n)
{
    int rc = ax_conn_write(ic->c, buf, n);
    if (rc >= 0) GW_ADD(ic->g->sv->gw[GW_IRC].bytes_out, n);
    if (rc != 0) ic->wrc = rc;
}

/* One line: the text (without CR LF) cut to the limit, then CR LF. */
void irc_sendf(irc_conn *ic, const char *fmt, ...)
{
    char buf[AX_IRC_MAX_LINE + 8];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n > AX_IRC_MAX_LINE - 2 ? AX_IRC_MAX_LINE - 2 : (size_t)n;
    len = ax_irc_utf8_cut(buf, len, len);
    buf[len++] = '\r';
    buf[len++] = '\n';
    send_raw(ic, buf, len);
}

static const char *me(const irc_conn *ic)
{
    return ic->nick[0] ? ic->nick : "*";
}

/* A numeric reply to the client: ":irc.axon NNN nick ..." */
void irc_num(irc_conn *ic, const char *code, const char *fmt, ...)
{
    char rest[AX_IRC_MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    irc_sendf(ic, ":" SERVER_NAME " %s %s %s", code, me(ic), rest);
}

/* "2024-01-02T03:04:05.678Z" for server-time. */
static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

static int64_t parse_iso(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* A sender's name as a nick: bytes IRC cannot carry become '_'. */
static void as_nick(const char *name, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char c = name[i];
        out[o++] = (c == ' ' || c == '!' || c == '@' || c == ':' || c == ',' || c == '*' ||
                    c == '?' || c == '#' || (unsigned char)c < 0x21 || c == 0x7f)
                       ? '_'
                       : c;
    }
    if (!o) o = (size_t)snprintf(out, cap, "anonymous");
    out[o] = '\0';
}

/* A message from the hub as PRIVMSG lines on this connection: the text
 * cut at line ends and at the 512-byte limit (on UTF-8 boundaries); a
 * "/me " message is a CTCP ACTION.  `batch` tags each line (NULL: none). */
static void deliver(irc_conn *ic, const hub_msg *m, const char *target, const char *batch)
{
    char nick[HUB_MAX_NAME + 1], tags[256] = "", t[40];
    as_nick(m->sender, m->sender_len, nick, sizeof nick);
    size_t tl = 0;
    if (ic->caps & CAP_SERVER_TIME) {
        iso_time(m->time_ms, t, sizeof t);
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%stime=%s", tl ? ";" : "", t);
    }
    if (ic->caps & CAP_MESSAGE_TAGS) {
        const char *room = serve_room_of(m->topic);
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%smsgid=%s-%llu", tl ? ";" : "",
                               room && room_ok(room) ? room : "dm", (unsigned long long)m->seq);
    }
    if (batch && (ic->caps & CAP_BATCH))
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%sbatch=%s", tl ? ";" : "", batch);
    irc_who w;
    if ((ic->caps & CAP_ACCOUNT_TAG) && tl < sizeof tags && irc_lookup(nick, &w) && w.account[0])
        tl +=
            (size_t)snprintf(tags + tl, sizeof tags - tl, "%saccount=%s", tl ? ";" : "", w.account);
    if (tl >= sizeof tags) tl = 0, tags[0] = '\0';
    char head[HUB_MAX_NAME * 2 + CHAN_MAX + NICK_MAX + 64];
    int hn = snprintf(head, sizeof head, ":%s!%s@axon PRIVMSG %s :", nick, nick, target);
    if (hn < 0 || (size_t)hn >= sizeof head) return;
    const char *p = m->payload;
    size_t n = m->payload_len;
    char bin[64];
    bool action = false;
    if (m->binary) {
        n = (size_t)snprintf(bin, sizeof bin, "<%zu bytes of binary data>", m->payload_len);
        p = bin;
    } else if (n > 4 && memcmp(p, "/me ", 4) == 0) {
        action = true;
        p += 4, n -= 4;
    }
    size_t room = AX_IRC_MAX_LINE - 2 - (size_t)hn - (action ? 9 : 0);
    char line[AX_IRC_MAX_TAGS + AX_IRC_MAX_LINE];
    while (n > 0) {
        size_t end = 0;
        while (end < n && p[end] != '\n' && p[end] != '\r')
            end++;
        size_t take = ax_irc_utf8_cut(p, end, room);
        if (take == 0) take = end < room ? end : room;
        if (take) {
            size_t o = 0;
            if (tl) o += (size_t)snprintf(line, sizeof line, "@%s ", tags);
            memcpy(line + o, head, (size_t)hn);
            o += (size_t)hn;
            if (action) memcpy(line + o, "\001ACTION ", 8), o += 8;
            for (size_t i = 0; i < take; i++)
                line[o++] = p[i] == '\0' ? ' ' : p[i];
            if (action) line[o++] = '\001';
            line[o++] = '\r';
            line[o++] = '\n';
            send_raw(ic, line, o);
        }
        p += take, n -= take;
        while (n && (*p == '\n' || *p == '\r') && take == end)
            p++, n--, take = end = 0;
    }
}

/* ---- the hub's side ---------------------------------------------------------------- */

bool irc_on_chan(const irc_conn *ic, const char *chan)
{
    for (int i = 0; i < ic->nchans; i++)
        if (strcmp(ic->chans[i], chan) == 0) return true;
    return false;
}

/* Someone joined or left the room: JOIN (extended-join: with the account
 * and real name; away-notify: then AWAY when away) or PART; a user just
 * kicked has had its KICK line instead. */
static void presence(irc_conn *ic, bool join, const char *nick, const char *chan, const char *room)
{
    irc_who w;
    bool irc = irc_lookup(nick, &w);
    if (!join && irc_chan_kicked(room, nick)) return; /* it had its KICK or QUIT line */
    if (!irc) {
        snprintf(w.user, sizeof w.user, "%s", nick);
        snprintf(w.host, sizeof w.host, "axon");
        snprintf(w.real, sizeof w.real, "%s", nick);
        w.account[0] = w.away[0] = '\0';
    }
    if (!join)
        irc_sendf(ic, ":%s!%s@%s PART %s", nick, w.user, w.host, chan);
    else if (ic->caps & CAP_EXTENDED_JOIN)
        irc_sendf(ic, ":%s!%s@%s JOIN %s %s :%s", nick, w.user, w.host, chan,
                  w.account[0] ? w.account : "*", w.real);
    else
        irc_sendf(ic, ":%s!%s@%s JOIN %s", nick, w.user, w.host, chan);
    if (join && w.away[0] && (ic->caps & CAP_AWAY_NOTIFY))
        irc_sendf(ic, ":%s!%s@%s AWAY :%s", nick, w.user, w.host, w.away);
}

static bool irc_write(hub_sub *s, hub_msg *m, void *ud)
{
    irc_conn *ic = ud;
    if (m->kind == HUB_GAP || ic->quit) return true;
    ic->wrc = 0;
    if (m->kind == HUB_MSG && m->origin == hub_sub_id(s) && !(ic->caps & CAP_ECHO)) return true;
    const char *room = serve_room_of(m->topic);
    char chan[CHAN_MAX + 2], nick[HUB_MAX_NAME + 1], to[AUTH_MAX_NAME + 1];
    if (room) snprintf(chan, sizeof chan, "#%s", room);
    as_nick(m->sender, m->sender_len, nick, sizeof nick);
    if (m->kind == HUB_JOIN || m->kind == HUB_LEAVE) {
        if (!room || ic->renaming || irc_same_name(nick, ic->nick)) return true;
        presence(ic, m->kind == HUB_JOIN, nick, chan, room);
    } else if (room) {
        deliver(ic, m, chan, NULL);
    } else if (auth_inbox_of(m->topic, to, sizeof to)) {
        deliver(ic, m, ic->nick, NULL);
    } else {
        return true;
    }
    gw_stats *st = &ic->g->sv->gw[GW_IRC];
    GW_ADD(st->msgs_out, 1);
    return ic->wrc == 0;
}

static void irc_kick(hub_sub *s, const char *why, void *ud)
{
    irc_conn *ic = ud;
    (void)s;
    irc_sendf(ic, "ERROR :Closing link: %s", why);
    ax_conn_abort(ic->c, AX_EOUTPUTCAP);
}

static const hub_sub_ops irc_ops = {irc_write, irc_kick};

/* ---- helpers ------------------------------------------------------------------------ */

/* The IRC users who share a channel with `ic` see it QUIT (its leaving
 * the rooms is then not shown as PART). */
static void quit_announce(irc_conn *ic, const char *why)
{
    if (!ic->registered || ic->announced) return;
    ic->announced = true;
    char out[1024];
    snprintf(out, sizeof out, ":%s!%s@%s QUIT :%s", ic->nick, ic->user, ic->host, why);
    irc_net_shared(ic->g, ic->nick, out, 0);
    irc_chan_quiet_all(ic->nick);
}

static void close_with(irc_conn *ic, const char *why)
{
    if (ic->quit) return;
    quit_announce(ic, why);
    irc_sendf(ic, "ERROR :Closing link: %s[%s] (%s)", me(ic), ic->host, why);
    ic->quit = true;
    ax_conn_close(ic->c);
}

/* "#Lobby" -> "lobby" (rooms are lower case); false when it is no channel. */
bool irc_chan_room(const char *chan, char *room, size_t cap)
{
    if (chan[0] != '#') return false;
    size_t n = strlen(chan + 1);
    if (n == 0 || n >= cap) return false;
    for (size_t i = 0; i <= n; i++) {
        char c = chan[1 + i];
        room[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    return room_ok(room);
}

static bool may(irc_conn *ic, bool (*fn)(const auth_identity *, const char *), const char *topic)
{
    return !ic->id || fn(ic->id, topic);
}

typedef struct names_ctx {
    irc_conn *ic;
    char line[AX_IRC_MAX_LINE];
    size_t n, head;
    const char *chan, *room;
} names_ctx;

/* What a member shows: user and host (an IRC user's own, else the name
 * and "axon"). */
static void who_of(const char *nick, irc_who *w)
{
    if (irc_lookup(nick, w)) return;
    snprintf(w->user, sizeof w->user, "%s", nick);
    snprintf(w->host, sizeof w->host, "axon");
    snprintf(w->real, sizeof w->real, "%s", nick);
    w->account[0] = w->away[0] = '\0';
}

static void names_flush(names_ctx *c)
{
    if (c->n == 0) return;
    irc_num(c->ic, "353", "= %s :%.*s", c->chan, (int)c->n, c->line);
    c->n = 0;
}

static void names_add(const char *name, void *ud)
{
    names_ctx *c = ud;
    char nick[HUB_MAX_NAME + 1], item[HUB_MAX_NAME * 3 + 64], pfx[4];
    as_nick(name, strlen(name), nick, sizeof nick);
    irc_chan_flags(c->room, nick, pfx, c->ic->caps & CAP_MULTI_PREFIX);
    irc_who w;
    if (c->ic->caps & CAP_USERHOST_NAMES) who_of(nick, &w);
    int k = c->ic->caps & CAP_USERHOST_NAMES
                ? snprintf(item, sizeof item, "%s%s!%s@%s", pfx, nick, w.user, w.host)
                : snprintf(item, sizeof item, "%s%s", pfx, nick);
    if (k <= 0) return;
    if (c->n + (size_t)k + 1 > 400) names_flush(c);
    if (c->n) c->line[c->n++] = ' ';
    memcpy(c->line + c->n, item, (size_t)k);
    c->n += (size_t)k;
}

static void names(irc_conn *ic, const char *chan, const char *room)
{
    char topic[ROOM_MAX + 8];
    snprintf(topic, sizeof topic, "chat/%s", room);
    if (may(ic, auth_may_read, topic)) {
        names_ctx c = {.ic = ic, .chan = chan, .room = room};
        hub_presence(ic->g->sv->hub, topic, names_add, &c);
        names_flush(&c);
    }
    irc_num(ic, "366", "%s :End of /NAMES list", chan);
}

typedef struct who_ctx {
    irc_conn *ic;
    const char *chan, *room; /* room NULL: WHO nick */
} who_ctx;

static void who_add(const char *name, void *ud)
{
    who_ctx *c = ud;
    char nick[HUB_MAX_NAME + 1], pfx[4] = "";
    as_nick(name, strlen(name), nick, sizeof nick);
    irc_who w;
    who_of(nick, &w);
    if (c->room) irc_chan_flags(c->room, nick, pfx, c->ic->caps & CAP_MULTI_PREFIX);
    irc_num(c->ic, "352", "%s %s %s " SERVER_NAME " %s %c%s%s :0 %s", c->chan, w.user, w.host, nick,
            w.away[0] ? 'G' : 'H', w.account[0] ? "r" : "", pfx, w.real);
}

/* ---- registration ------------------------------------------------------------------- */

static void timer_arm(irc_conn *ic, uint64_t ms);

static void isupport(irc_conn *ic)
{
    irc_num(
        ic, "005",
        "AWAYLEN=%d CASEMAPPING=ascii CHANLIMIT=#:%d CHANMODES=" IRC_CHANMODES
        " CHANNELLEN=%d CHANTYPES=# CHATHISTORY=%d KICKLEN=%d MAXLIST=b:%d MAXTARGETS=4 MODES=%d "
        "NETWORK=" NETWORK " :are supported by this server",
        AWAY_MAX, MAX_CHANS, CHAN_MAX, HISTORY_MAX, TOPIC_MAX, BANS_MAX, MODES_MAX);
    irc_num(ic, "005",
            "NICKLEN=%d PREFIX=" IRC_PREFIX " TOPICLEN=%d USERLEN=%d UTF8ONLY "
            ":are supported by this server",
            NICK_MAX, TOPIC_MAX, NICK_MAX);
}

static void lusers(irc_conn *ic)
{
    serve *sv = ic->g->sv;
    uint64_t users = 0;
    for (int i = 0; i < sv->ngw; i++)
        users += __atomic_load_n(&sv->gw[i].conns, __ATOMIC_RELAXED);
    irc_num(ic, "251", ":There are %llu users and 0 invisible on 1 servers",
            (unsigned long long)users);
    irc_num(ic, "255", ":I have %llu clients and 0 servers", (unsigned long long)users);
}

static void welcome(irc_conn *ic)
{
    char made[64];
    time_t t = (time_t)(ic->g->sv->started_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(made, sizeof made, "%Y-%m-%d %H:%M:%S UTC", &tm);
    irc_num(ic, "001", ":Welcome to the " NETWORK " IRC network, %s!%s@%s", ic->nick, ic->user,
            ic->host);
    irc_num(ic, "002", ":Your host is " SERVER_NAME ", running version axon-" AXON_VERSION);
    irc_num(ic, "003", ":This server was created %s", made);
    irc_num(ic, "004", SERVER_NAME " axon-" AXON_VERSION " i biklmnotv bklov");
    isupport(ic);
    lusers(ic);
    irc_num(ic, "422", ":MOTD File is missing");
}

/* The session's direct messages: user/NICK/inbox. */
static void inbox(irc_conn *ic, const char *name, bool on)
{
    char topic[AUTH_MAX_NAME + 16];
    if (!auth_name_valid(name)) return;
    snprintf(topic, sizeof topic, "user/%s/inbox", name);
    if (!on)
        hub_unsubscribe(ic->sub, topic);
    else if (may(ic, auth_may_subscribe, topic))
        hub_subscribe(ic->sub, topic, -1, false);
}

static void refused(irc_conn *ic, const char *why)
{
    ax_addr a;
    serve_refused(ic->g->sv, "irc", ax_conn_peer(ic->c, &a) == 0 ? &a : NULL, why);
}

/* PASS: "user:password", a token, or the password of the nick. */
static auth_identity *pass_login(irc_conn *ic)
{
    const serve *sv = ic->g->sv;
    ax_addr peer, *from = ax_conn_peer(ic->c, &peer) == 0 ? &peer : NULL;
    char *colon = strchr(ic->pass, ':');
    auth_identity *id;
    size_t dots = 0;
    for (const char *p = ic->pass; *p; p++)
        dots += *p == '.';
    if (colon) {
        *colon = '\0';
        id = serve_login(sv, from, ic->pass, colon + 1);
    } else if (dots == 2) {
        id = serve_token(sv, from, ic->pass, strlen(ic->pass));
    } else {
        id = serve_login(sv, from, ic->nick, ic->pass);
    }
    memset(ic->pass, 0, sizeof ic->pass);
    return id;
}

static void try_register(irc_conn *ic)
{
    if (ic->registered || ic->cap_wait || !ic->nick[0] || !ic->have_user || ic->quit) return;
    serve *sv = ic->g->sv;
    if (sv->auth && !ic->id) {
        if (ic->pass[0]) {
            ic->id = pass_login(ic);
            if (!ic->id) {
                refused(ic, NULL);
                irc_num(ic, "464", ":Password incorrect");
                close_with(ic, "Bad password");
                return;
            }
        } else if (!(ic->id = serve_anonymous(sv))) {
            refused(ic, "no credentials");
            irc_num(ic, "464", ":Password required: sign in with SASL PLAIN or PASS");
            close_with(ic, "Password required");
            return;
        }
    }
    if (ic->id && ic->id->name[0] && strcmp(ic->nick, ic->id->name) != 0) {
        /* a signed-in user's nick is its name */
        irc_sendf(ic, ":%s NICK %s", ic->nick, ic->id->name);
        snprintf(ic->nick, sizeof ic->nick, "%s", ic->id->name);
    }
    if (irc_name_in_use(sv, ic->nick, ic)) {
        irc_num(ic, "433", "%s :Nickname is already in use", ic->nick);
        if (ic->id && ic->id->name[0]) close_with(ic, "Your name is in use");
        return;
    }
    ic->sub = hub_sub_new(sv->hub, &irc_ops, ic, ic->nick);
    if (!ic->sub) {
        close_with(ic, "Out of memory");
        return;
    }
    if (ic->id) hub_sub_set_identity(ic->sub, ic->id);
    nick_claim(ic, ic->nick);
    ic->registered = true;
    inbox(ic, ic->nick, true);
    welcome(ic);
    timer_arm(ic, PING_S(ic) * 1000ull);
}

/* ---- SASL PLAIN ------------------------------------------------------------------------ */

static void sasl_done(irc_conn *ic)
{
    uint8_t raw[600];
    size_t n = 0;
    ic->sasl_plain = false;
    if (ax_ws_base64_decode(raw, sizeof raw - 1, ic->sasl, ic->sasl_len, &n) != 0) {
        irc_num(ic, "904", ":SASL authentication failed");
        return;
    }
    raw[n] = '\0';
    /* authzid \0 authcid \0 password */
    const char *authz = (const char *)raw;
    const char *authc = memchr(raw, '\0', n) ? authz + strlen(authz) + 1 : NULL;
    const char *pw = authc && authc < (const char *)raw + n ? authc + strlen(authc) + 1 : NULL;
    if (!pw || pw > (const char *)raw + n || (authz[0] && strcmp(authz, authc) != 0)) {
        irc_num(ic, "904", ":SASL authentication failed");
        memset(raw, 0, sizeof raw);
        return;
    }
    ax_addr peer, *from = ax_conn_peer(ic->c, &peer) == 0 ? &peer : NULL;
    auth_identity *id = ic->g->sv->auth ? serve_login(ic->g->sv, from, authc, pw) : NULL;
    memset(raw, 0, sizeof raw);
    if (!id) {
        refused(ic, ic->g->sv->auth ? NULL : "SASL without auth configured");
        irc_num(ic, "904", ":SASL authentication failed");
        return;
    }
    auth_identity_free(ic->id);
    ic->id = id;
    irc_num(ic, "900", "%s!%s@%s %s :You are now logged in as %s", me(ic),
            ic->user[0] ? ic->user : "*", ic->host, id->name, id->name);
    irc_num(ic, "903", ":SASL authentication successful");
}

static void authenticate(irc_conn *ic, const ax_irc_msg *m, const char *arg)
{
    if (!(ic->caps & CAP_SASL) || ic->registered) {
        irc_num(ic, "904", ":SASL authentication failed");
        return;
    }
    if (m->nparams < 1) {
        irc_num(ic, "461", "AUTHENTICATE :Not enough parameters");
        return;
    }
    if (!ic->sasl_plain) {
        if (strcmp(arg, "*") == 0) {
            irc_num(ic, "906", ":SASL authentication aborted");
        } else if (strcasecmp(arg, "PLAIN") != 0) {
            irc_num(ic, "908", "PLAIN :are available SASL mechanisms");
            irc_num(ic, "904", ":SASL authentication failed");
        } else {
            ic->sasl_plain = true;
            ic->sasl_len = 0;
            irc_sendf(ic, "AUTHENTICATE +");
        }
        return;
    }
    if (strcmp(arg, "*") == 0) {
        ic->sasl_plain = false;
        irc_num(ic, "906", ":SASL authentication aborted");
        return;
    }
    size_t n = strcmp(arg, "+") == 0 ? 0 : strlen(arg);
    if (ic->sasl_len + n >= sizeof ic->sasl || n > 400) {
        ic->sasl_plain = false;
        irc_num(ic, "905", ":SASL message too long");
        return;
    }
    memcpy(ic->sasl + ic->sasl_len, arg, n);
    ic->sasl_len += n;
    if (n < 400) sasl_done(ic);
}

/* ---- CAP ------------------------------------------------------------------------------ */

static void cap_ls(irc_conn *ic, bool v302)
{
    char list[400];
    size_t o = 0;
    for (size_t i = 0; i < NCAPS; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s%s%s", o ? " " : "", CAPS[i].name,
                              v302 && CAPS[i].value ? "=" : "",
                              v302 && CAPS[i].value ? CAPS[i].value : "");
    irc_sendf(ic, ":" SERVER_NAME " CAP %s LS :%s", me(ic), list);
}

static void cap(irc_conn *ic, const ax_irc_msg *m, char **args)
{
    const char *sub = m->nparams ? args[0] : "";
    if (strcasecmp(sub, "LS") == 0) {
        if (!ic->registered) ic->cap_wait = true;
        bool v302 = m->nparams > 1 && atoi(args[1]) >= 302;
        if (v302) ic->caps |= CAP_CAP_NOTIFY;
        cap_ls(ic, v302);
    } else if (strcasecmp(sub, "LIST") == 0) {
        char list[400];
        size_t o = 0;
        list[0] = '\0';
        for (size_t i = 0; i < NCAPS; i++)
            if (ic->caps & CAPS[i].bit)
                o +=
                    (size_t)snprintf(list + o, sizeof list - o, "%s%s", o ? " " : "", CAPS[i].name);
        irc_sendf(ic, ":" SERVER_NAME " CAP %s LIST :%s", me(ic), list);
    } else if (strcasecmp(sub, "REQ") == 0 && m->nparams > 1) {
        if (!ic->registered) ic->cap_wait = true;
        int add = 0, del = 0;
        bool ok = true;
        char req[AX_IRC_MAX_LINE];
        snprintf(req, sizeof req, "%s", args[1]);
        for (char *save = NULL, *w = strtok_r(req, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            bool minus = w[0] == '-';
            int bit = 0;
            for (size_t i = 0; i < NCAPS; i++)
                if (strcmp(w + minus, CAPS[i].name) == 0) bit = CAPS[i].bit;
            if (!bit) ok = false;
            if (minus)
                del |= bit;
            else
                add |= bit;
        }
        if (ok) ic->caps = (ic->caps | add) & ~del;
        irc_sendf(ic, ":" SERVER_NAME " CAP %s %s :%s", me(ic), ok ? "ACK" : "NAK", args[1]);
    } else if (strcasecmp(sub, "END") == 0) {
        ic->cap_wait = false;
        try_register(ic);
    } else {
        irc_num(ic, "410", "%s :Invalid CAP command", m->nparams ? args[0] : "*");
    }
}

/* ---- channels ------------------------------------------------------------------------- */

static void send_topic(irc_conn *ic, const char *chan, const char *room, bool always)
{
    chan_topic t;
    if (topic_get(room, &t) && t.text[0]) {
        irc_num(ic, "332", "%s :%s", chan, t.text);
        irc_num(ic, "333", "%s %s %lld", chan, t.who, (long long)t.set_at);
    } else if (always) {
        irc_num(ic, "331", "%s :No topic is set", chan);
    }
}

static void join_one(irc_conn *ic, const char *chan_in, const char *key)
{
    char room[ROOM_MAX + 1], topic[ROOM_MAX + 8], chan[CHAN_MAX + 2];
    if (!irc_chan_room(chan_in, room, sizeof room)) {
        irc_num(ic, "403", "%s :No such channel (a channel is # and 1 to %d of a-z 0-9 _ - .)",
                chan_in, ROOM_MAX);
        return;
    }
    snprintf(chan, sizeof chan, "#%s", room);
    snprintf(topic, sizeof topic, "chat/%s", room);
    if (irc_on_chan(ic, chan)) return;
    if (ic->nchans >= MAX_CHANS) {
        irc_num(ic, "405", "%s :You have joined too many channels", chan);
        return;
    }
    if (!may(ic, auth_may_subscribe, topic)) {
        irc_num(ic, "474", "%s :Cannot join channel (you may not read %s)", chan, topic);
        return;
    }
    switch (irc_chan_may_join(ic, room, key)) {
    case 471:
        irc_num(ic, "471", "%s :Cannot join channel (+l)", chan);
        return;
    case 473:
        irc_num(ic, "473", "%s :Cannot join channel (+i)", chan);
        return;
    case 474:
        irc_num(ic, "474", "%s :Cannot join channel (+b)", chan);
        return;
    case 475:
        irc_num(ic, "475", "%s :Cannot join channel (+k)", chan);
        return;
    default:
        break;
    }
    if (hub_subscribe(ic->sub, topic, -1, true) != 0) {
        irc_num(ic, "403", "%s :Cannot join channel now", chan);
        return;
    }
    snprintf(ic->chans[ic->nchans++], CHAN_MAX + 2, "%s", chan);
    irc_chan_joined(ic, room);
    if (ic->caps & CAP_EXTENDED_JOIN)
        irc_sendf(ic, ":%s!%s@%s JOIN %s %s :%s", ic->nick, ic->user, ic->host, chan,
                  ic->id && !ic->id->anonymous ? ic->id->name : "*", ic->real);
    else
        irc_sendf(ic, ":%s!%s@%s JOIN %s", ic->nick, ic->user, ic->host, chan);
    send_topic(ic, chan, room, false);
    names(ic, chan, room);
}

static void part_one(irc_conn *ic, const char *chan_in, const char *reason)
{
    char room[ROOM_MAX + 1], topic[ROOM_MAX + 8], chan[CHAN_MAX + 2];
    if (!irc_chan_room(chan_in, room, sizeof room)) {
        irc_num(ic, "403", "%s :No such channel", chan_in);
        return;
    }
    snprintf(chan, sizeof chan, "#%s", room);
    int i = 0;
    while (i < ic->nchans && strcmp(ic->chans[i], chan) != 0)
        i++;
    if (i == ic->nchans) {
        irc_num(ic, "442", "%s :You're not on that channel", chan);
        return;
    }
    irc_sendf(ic, ":%s!%s@%s PART %s%s%s", ic->nick, ic->user, ic->host, chan, reason ? " :" : "",
              reason ? reason : "");
    irc_drop_chan(ic, chan);
    snprintf(topic, sizeof topic, "chat/%s", room);
    irc_chan_left(room, ic->nick);
}

void irc_drop_chan(irc_conn *ic, const char *chan)
{
    char topic[ROOM_MAX + 8];
    int i = 0;
    while (i < ic->nchans && strcmp(ic->chans[i], chan) != 0)
        i++;
    if (i == ic->nchans) return;
    memmove(ic->chans[i], ic->chans[i + 1], (size_t)(ic->nchans - i - 1) * sizeof ic->chans[0]);
    ic->nchans--;
    snprintf(topic, sizeof topic, "chat/%s", chan + 1);
    if (ic->sub) hub_unsubscribe(ic->sub, topic);
}

/* ---- messages ------------------------------------------------------------------------- */

/* PRIVMSG/NOTICE text to a target: a channel (its room) or a nick (its
 * inbox).  CTCP ACTION is "/me "; other CTCP is not carried. */
static void say_to(irc_conn *ic, const char *cmd, const char *target, const char *text)
{
    bool notice = cmd[0] == 'N';
    char topic[HUB_MAX_TOPIC], room[ROOM_MAX + 1], body[AX_IRC_MAX_LINE + 8], chan[CHAN_MAX + 2];
    size_t n = strlen(text);
    /* what fits in the line the others get, ":nick!nick@axon PRIVMSG target :": the rest
     * is cut (as classic servers do) rather than split */
    size_t head = 2 * strlen(ic->nick) + strlen(target) + 20, fit = AX_IRC_MAX_LINE - 2 - head;
    if (n > 8 && memcmp(text, "\001ACTION ", 8) == 0) {
        size_t k = n - 8;
        if (k && text[n - 1] == '\001') k--;
        k = ax_irc_utf8_cut(text + 8, k, fit - 9);
        n = (size_t)snprintf(body, sizeof body, "/me %.*s", (int)k, text + 8);
    } else if (text[0] == '\001') {
        return; /* CTCP VERSION, PING, ...: nobody on the hub answers them */
    } else {
        n = ax_irc_utf8_cut(text, n, fit);
        memcpy(body, text, n);
        body[n] = '\0';
    }
    bool dm = target[0] != '#';
    if (!dm) {
        if (!irc_chan_room(target, room, sizeof room)) {
            if (!notice) irc_num(ic, "403", "%s :No such channel", target);
            return;
        }
        snprintf(chan, sizeof chan, "#%s", room);
        snprintf(topic, sizeof topic, "chat/%s", room);
    } else {
        if (!auth_name_valid(target) || !irc_nick_ok(target)) {
            if (!notice) irc_num(ic, "401", "%s :No such nick/channel", target);
            return;
        }
        snprintf(topic, sizeof topic, "user/%s/inbox", target);
        irc_who w;
        if (!notice && irc_lookup(target, &w) && w.away[0])
            irc_num(ic, "301", "%s :%s", target, w.away);
    }
    serve *sv = ic->g->sv;
    if (!may(ic, auth_may_publish, topic)) {
        if (!notice)
            irc_num(ic, "404", "%s :Cannot send to %s (you may not publish to %s)", target,
                    dm ? "nick" : "channel", topic);
        return;
    }
    if (!dm && irc_chan_may_speak(ic, room)) {
        if (!notice) irc_num(ic, "404", "%s :Cannot send to channel", chan);
        return;
    }
    if (n == 0) {
        if (!notice) irc_num(ic, "412", ":No text to send");
        return;
    }
    int err = 0;
    uint64_t seq = hub_publish_from(sv->hub, ic->sub, topic, ic->nick, body, n, &err);
    if (!seq) {
        if (!notice)
            irc_num(ic, "404", "%s :Cannot send: %s", target,
                    err == AX_EAGAIN ? "the server is busy, try again in a moment"
                                     : hub_strerror(err));
        return;
    }
    if (dm && (ic->caps & CAP_ECHO) && !irc_same_name(target, ic->nick)) {
        /* the inbox is the recipient's: echo it here */
        hub_msg fake = {.kind = HUB_MSG,
                        .seq = seq,
                        .time_ms = (int64_t)time(NULL) * 1000,
                        .topic = topic,
                        .sender = ic->nick,
                        .sender_len = strlen(ic->nick),
                        .payload = body,
                        .payload_len = n};
        deliver(ic, &fake, target, NULL);
    }
}

/* ---- CHATHISTORY ------------------------------------------------------------------------ */

typedef struct hist_ctx {
    hub_msg *ring[HISTORY_MAX];
    size_t n, start, limit;
    uint64_t after_seq, before_seq; /* 0: no bound */
    int64_t after_ms, before_ms;    /* -1: no bound */
} hist_ctx;

static void hist_add(hub_msg *m, void *ud)
{
    hist_ctx *c = ud;
    if (m->kind != HUB_MSG) return;
    if (c->after_seq && m->seq <= c->after_seq) return;
    if (c->before_seq && m->seq >= c->before_seq) return;
    if (c->after_ms >= 0 && m->time_ms <= c->after_ms) return;
    if (c->before_ms >= 0 && m->time_ms >= c->before_ms) return;
    if (c->n == c->limit) { /* keep the newest */
        hub_msg_unref(c->ring[c->start]);
        c->ring[c->start] = hub_msg_ref(m);
        c->start = (c->start + 1) % c->limit;
        return;
    }
    c->ring[(c->start + c->n++) % c->limit] = hub_msg_ref(m);
}

/* "msgid=lobby-42" or "timestamp=..." into a seq or ms bound. */
static bool hist_ref(const char *ref, uint64_t *seq, int64_t *ms)
{
    if (strncmp(ref, "msgid=", 6) == 0) {
        const char *dash = strrchr(ref, '-');
        if (!dash) return false;
        *seq = strtoull(dash + 1, NULL, 10);
        return *seq > 0;
    }
    if (strncmp(ref, "timestamp=", 10) == 0) return (*ms = parse_iso(ref + 10)) >= 0;
    return strcmp(ref, "*") == 0;
}

static void chathistory(irc_conn *ic, const ax_irc_msg *m, char **args)
{
    if (m->nparams < 3) {
        irc_sendf(ic, ":" SERVER_NAME " FAIL CHATHISTORY NEED_MORE_PARAMS :Missing parameters");
        return;
    }
    const char *sub = args[0], *target = args[1];
    if (strcasecmp(sub, "TARGETS") == 0) {
        irc_sendf(ic, ":" SERVER_NAME " BATCH +t draft/chathistory-targets");
        irc_sendf(ic, ":" SERVER_NAME " BATCH -t");
        return;
    }
    char room[ROOM_MAX + 1], topic[ROOM_MAX + 8], chan[CHAN_MAX + 2];
    if (!irc_chan_room(target, room, sizeof room)) {
        irc_sendf(ic,
                  ":" SERVER_NAME
                  " FAIL CHATHISTORY INVALID_TARGET %s %s :Only channels have history here",
                  sub, target);
        return;
    }
    snprintf(chan, sizeof chan, "#%s", room);
    snprintf(topic, sizeof topic, "chat/%s", room);
    hist_ctx c = {.after_ms = -1, .before_ms = -1};
    long limit = atol(args[m->nparams - 1]);
    c.limit = limit > 0 && limit <= HISTORY_MAX ? (size_t)limit : HISTORY_MAX;
    bool ok = true;
    if (strcasecmp(sub, "LATEST") == 0) {
        ok = hist_ref(args[2], &c.after_seq, &c.after_ms);
    } else if (strcasecmp(sub, "BEFORE") == 0) {
        ok = hist_ref(args[2], &c.before_seq, &c.before_ms) && strcmp(args[2], "*");
    } else if (strcasecmp(sub, "AFTER") == 0) {
        ok = hist_ref(args[2], &c.after_seq, &c.after_ms) && strcmp(args[2], "*");
    } else if (strcasecmp(sub, "BETWEEN") == 0 && m->nparams >= 5) {
        uint64_t s1 = 0, s2 = 0;
        int64_t t1 = -1, t2 = -1;
        ok = hist_ref(args[2], &s1, &t1) && hist_ref(args[3], &s2, &t2);
        bool rev = (s1 && s2 && s1 > s2) || (t1 >= 0 && t2 >= 0 && t1 > t2);
        c.after_seq = rev ? s2 : s1, c.before_seq = rev ? s1 : s2;
        c.after_ms = rev ? t2 : t1, c.before_ms = rev ? t1 : t2;
    } else {
        irc_sendf(ic, ":" SERVER_NAME " FAIL CHATHISTORY INVALID_PARAMS %s :Unknown subcommand",
                  sub);
        return;
    }
    if (!ok) {
        irc_sendf(ic, ":" SERVER_NAME " FAIL CHATHISTORY INVALID_PARAMS %s :Bad message reference",
                  sub);
        return;
    }
    bool allowed = may(ic, auth_may_read, topic);
    if (allowed) hub_history(ic->g->sv->hub, topic, 0, 1000, hist_add, &c, NULL);
    static unsigned batch_no;
    char ref[16];
    snprintf(ref, sizeof ref, "h%u", __atomic_add_fetch(&batch_no, 1, __ATOMIC_RELAXED));
    if (ic->caps & CAP_BATCH) irc_sendf(ic, ":" SERVER_NAME " BATCH +%s chathistory %s", ref, chan);
    for (size_t i = 0; i < c.n; i++) {
        hub_msg *hm = c.ring[(c.start + i) % c.limit];
        deliver(ic, hm, chan, ref);
        hub_msg_unref(hm);
    }
    if (ic->caps & CAP_BATCH) irc_sendf(ic, ":" SERVER_NAME " BATCH -%s", ref);
}

/* ---- queries ------------------------------------------------------------------------- */

typedef struct list_ctx {
    irc_conn *ic;
} list_ctx;

static void list_room(const char *topic, uint64_t last, size_t subs, void *ud)
{
    list_ctx *c = ud;
    (void)last;
    const char *room = serve_room_of(topic);
    if (!room || !room_ok(room) || !may(c->ic, auth_may_read, topic)) return;
    chan_topic t;
    bool has = topic_get(room, &t);
    irc_num(c->ic, "322", "#%s %zu :%s", room, subs, has ? t.text : "");
}

static void whois(irc_conn *ic, const char *nick)
{
    if (!irc_nick_ok(nick) || !irc_name_in_use(ic->g->sv, nick, NULL)) {
        irc_num(ic, "401", "%s :No such nick/channel", nick);
        irc_num(ic, "318", "%s :End of /WHOIS list", nick);
        return;
    }
    irc_who w;
    who_of(nick, &w);
    irc_num(ic, "311", "%s %s %s * :%s", nick, w.user, w.host, w.real);
    irc_num(ic, "312", "%s " SERVER_NAME " :axon hub", nick);
    if (w.away[0]) irc_num(ic, "301", "%s :%s", nick, w.away);
    if (w.account[0]) irc_num(ic, "330", "%s %s :is logged in as", nick, w.account);
    irc_num(ic, "318", "%s :End of /WHOIS list", nick);
}

/* ---- commands ------------------------------------------------------------------------ */

static void command(irc_conn *ic, ax_irc_msg *m, char *line)
{
    char cmd[32], *args[AX_IRC_MAX_PARAMS];
    (void)line;
    size_t cl = m->command.len < sizeof cmd - 1 ? m->command.len : sizeof cmd - 1;
    for (size_t i = 0; i < cl; i++) {
        char ch = m->command.ptr[i];
        cmd[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
    }
    cmd[cl] = '\0';
    /* NUL-terminate the parameters in place (each ends at a space or the line's end) */
    for (int i = 0; i < m->nparams; i++) {
        args[i] = (char *)m->params[i].ptr;
        args[i][m->params[i].len] = '\0';
    }
    const char *a0 = m->nparams > 0 ? args[0] : "";
    if (strcmp(cmd, "CAP") == 0) {
        cap(ic, m, args);
    } else if (strcmp(cmd, "PING") == 0) {
        if (!m->nparams)
            irc_num(ic, "409", ":No origin specified");
        else
            irc_sendf(ic, ":" SERVER_NAME " PONG " SERVER_NAME " :%s", a0);
    } else if (strcmp(cmd, "PONG") == 0) {
        ic->ping_out = false;
    } else if (strcmp(cmd, "QUIT") == 0) {
        char why[300];
        snprintf(why, sizeof why, "Quit: %s", m->nparams ? a0 : "");
        close_with(ic, why);
        if (ic->sub) hub_sub_free(ic->sub); /* leave the rooms now */
        ic->sub = NULL;
    } else if (strcmp(cmd, "PASS") == 0) {
        if (ic->registered)
            irc_num(ic, "462", ":You may not reregister");
        else if (!m->nparams)
            irc_num(ic, "461", "PASS :Not enough parameters");
        else
            snprintf(ic->pass, sizeof ic->pass, "%s", a0);
    } else if (strcmp(cmd, "AUTHENTICATE") == 0) {
        authenticate(ic, m, a0);
    } else if (strcmp(cmd, "NICK") == 0) {
        if (!m->nparams || !a0[0]) {
            irc_num(ic, "431", ":No nickname given");
        } else if (!irc_nick_ok(a0)) {
            irc_num(ic, "432",
                    "%s :Erroneous nickname (1 to %d of A-Z a-z 0-9 _ -, not a digit or - first)",
                    a0, NICK_MAX);
        } else if (ic->registered && ic->id && ic->id->name[0]) {
            if (strcmp(a0, ic->nick) != 0)
                irc_num(ic, "432", "%s :Your nick is the name you signed in with", a0);
        } else if (strcmp(a0, ic->nick) == 0) {
            /* nothing to do */
        } else if (!ic->registered && !(ic->g->sv->auth)) {
            if (irc_name_in_use(ic->g->sv, a0, ic))
                irc_num(ic, "433", "%s :Nickname is already in use", a0);
            else
                snprintf(ic->nick, sizeof ic->nick, "%s", a0);
            try_register(ic);
        } else if (!ic->registered) {
            snprintf(ic->nick, sizeof ic->nick, "%s", a0); /* checked at registration */
            try_register(ic);
        } else if (irc_name_in_use(ic->g->sv, a0, ic)) {
            irc_num(ic, "433", "%s :Nickname is already in use", a0);
        } else {
            char old[HUB_MAX_NAME + 1];
            snprintf(old, sizeof old, "%s", ic->nick);
            ic->renaming = true;
            int rc = hub_sub_rename(ic->sub, a0);
            ic->renaming = false;
            if (rc == 0) {
                inbox(ic, old, false);
                irc_chan_renamed(ic->nick, a0);
                snprintf(ic->nick, sizeof ic->nick, "%s", a0);
                nick_claim(ic, a0);
                inbox(ic, a0, true);
                irc_sendf(ic, ":%s!%s@%s NICK %s", old, ic->user, ic->host, a0);
            }
        }
    } else if (strcmp(cmd, "USER") == 0) {
        if (ic->registered || ic->have_user) {
            irc_num(ic, "462", ":You may not reregister");
        } else if (m->nparams < 4 || !args[0][0] || !args[3][0]) {
            irc_num(ic, "461", "USER :Not enough parameters");
        } else {
            char u[HUB_MAX_NAME + 1];
            as_nick(a0, strlen(a0), u, sizeof u);
            snprintf(ic->user, sizeof ic->user, "~%.*s", NICK_MAX - 1, u);
            snprintf(ic->real, sizeof ic->real, "%s", args[3]);
            ic->have_user = true;
            try_register(ic);
        }
    } else if (!ic->registered) {
        irc_num(ic, "451", ":You have not registered");
    } else if (strcmp(cmd, "PRIVMSG") == 0 || strcmp(cmd, "NOTICE") == 0) {
        if (m->nparams < 1) {
            irc_num(ic, "411", ":No recipient given (%s)", cmd);
        } else if (m->nparams < 2) {
            irc_num(ic, "412", ":No text to send");
        } else {
            int targets = 0;
            for (char *save = NULL, *t = strtok_r(args[0], ",", &save); t && targets < 4;
                 t = strtok_r(NULL, ",", &save), targets++)
                say_to(ic, cmd, t, args[1]);
        }
    } else if (strcmp(cmd, "TAGMSG") == 0) {
        /* client-only tags (typing, reactions) are not carried to the hub */
    } else if (strcmp(cmd, "JOIN") == 0) {
        if (!m->nparams) {
            irc_num(ic, "461", "JOIN :Not enough parameters");
        } else if (strcmp(a0, "0") == 0) {
            while (ic->nchans) {
                char c[CHAN_MAX + 2];
                snprintf(c, sizeof c, "%s", ic->chans[ic->nchans - 1]);
                part_one(ic, c, NULL);
            }
        } else {
            char *ksave = NULL, *k = m->nparams > 1 ? strtok_r(args[1], ",", &ksave) : NULL;
            for (char *save = NULL, *t = strtok_r(args[0], ",", &save); t;
                 t = strtok_r(NULL, ",", &save), k = k ? strtok_r(NULL, ",", &ksave) : NULL)
                join_one(ic, t, k);
        }
    } else if (strcmp(cmd, "PART") == 0) {
        if (!m->nparams)
            irc_num(ic, "461", "PART :Not enough parameters");
        else
            for (char *save = NULL, *t = strtok_r(args[0], ",", &save); t;
                 t = strtok_r(NULL, ",", &save))
                part_one(ic, t, m->nparams > 1 ? args[1] : NULL);
    } else if (strcmp(cmd, "NAMES") == 0) {
        char room[ROOM_MAX + 1], chan[CHAN_MAX + 2];
        if (!m->nparams) {
            irc_num(ic, "366", "* :End of /NAMES list");
        } else {
            for (char *save = NULL, *t = strtok_r(args[0], ",", &save); t;
                 t = strtok_r(NULL, ",", &save)) {
                if (irc_chan_room(t, room, sizeof room)) {
                    snprintf(chan, sizeof chan, "#%s", room);
                    names(ic, chan, room);
                } else {
                    irc_num(ic, "366", "%s :End of /NAMES list", t);
                }
            }
        }
    } else if (strcmp(cmd, "WHO") == 0) {
        char room[ROOM_MAX + 1], chan[CHAN_MAX + 2], topic[ROOM_MAX + 8];
        if (m->nparams && irc_chan_room(a0, room, sizeof room)) {
            snprintf(chan, sizeof chan, "#%s", room);
            snprintf(topic, sizeof topic, "chat/%s", room);
            who_ctx wc = {ic, chan, room};
            if (may(ic, auth_may_read, topic)) hub_presence(ic->g->sv->hub, topic, who_add, &wc);
        } else if (m->nparams && irc_nick_ok(a0) && irc_name_in_use(ic->g->sv, a0, NULL)) {
            who_ctx wc = {ic, "*", NULL};
            who_add(a0, &wc);
        }
        irc_num(ic, "315", "%s :End of /WHO list", m->nparams ? a0 : "*");
    } else if (strcmp(cmd, "WHOIS") == 0) {
        if (!m->nparams)
            irc_num(ic, "431", ":No nickname given");
        else
            whois(ic, args[m->nparams - 1]);
    } else if (strcmp(cmd, "MODE") == 0) {
        irc_cmd_mode(ic, m->nparams, args);
    } else if (strcmp(cmd, "KICK") == 0) {
        irc_cmd_kick(ic, m->nparams, args);
    } else if (strcmp(cmd, "INVITE") == 0) {
        irc_cmd_invite(ic, m->nparams, args);
    } else if (strcmp(cmd, "TOPIC") == 0) {
        char room[ROOM_MAX + 1], chan[CHAN_MAX + 2], topic[ROOM_MAX + 8];
        if (!m->nparams) {
            irc_num(ic, "461", "TOPIC :Not enough parameters");
        } else if (!irc_chan_room(a0, room, sizeof room) || !irc_chan_exists(ic, room)) {
            irc_num(ic, "403", "%s :No such channel", a0);
        } else if (m->nparams == 1) {
            snprintf(chan, sizeof chan, "#%s", room);
            send_topic(ic, chan, room, true);
        } else {
            snprintf(chan, sizeof chan, "#%s", room);
            snprintf(topic, sizeof topic, "chat/%s", room);
            if (!may(ic, auth_may_publish, topic)) {
                irc_num(ic, "482", "%s :You may not set the topic (you may not publish to %s)",
                        chan, topic);
            } else if (irc_chan_may_topic(ic, chan, room)) {
                char text[TOPIC_MAX + 1], out[1024];
                snprintf(text, sizeof text, "%s", args[1]);
                topic_set(room, text, ic->nick);
                snprintf(out, sizeof out, ":%s!%s@%s TOPIC %s :%s", ic->nick, ic->user, ic->host,
                         chan, text);
                irc_net_chan(ic->g, room, out, 0, NULL);
                if (!irc_on_chan(ic, chan)) irc_sendf(ic, "%s", out);
            }
        }
    } else if (strcmp(cmd, "LIST") == 0) {
        list_ctx lc = {ic};
        irc_num(ic, "321", "Channel :Users  Name");
        char next[HUB_MAX_TOPIC + 1] = "chat/";
        do {
            char after[HUB_MAX_TOPIC + 1];
            snprintf(after, sizeof after, "%s", next);
            if (!hub_topics(ic->g->sv->hub, after, 500, list_room, &lc, next)) break;
        } while (next[0] && strncmp(next, "chat/", 5) == 0);
        irc_num(ic, "323", ":End of /LIST");
    } else if (strcmp(cmd, "AWAY") == 0) {
        if (m->nparams && a0[0]) {
            snprintf(ic->away, sizeof ic->away, "%s", a0);
            irc_num(ic, "306", ":You have been marked as being away");
        } else {
            ic->away[0] = '\0';
            irc_num(ic, "305", ":You are no longer marked as being away");
        }
        nick_claim(ic, ic->nick); /* what WHOIS, WHO and new JOINs show */
        char out[1024];
        snprintf(out, sizeof out, ":%s!%s@%s AWAY%s%s", ic->nick, ic->user, ic->host,
                 ic->away[0] ? " :" : "", ic->away);
        irc_net_shared(ic->g, ic->nick, out, CAP_AWAY_NOTIFY);
    } else if (strcmp(cmd, "ISON") == 0) {
        char out[400] = "";
        size_t o = 0;
        for (int i = 0; i < m->nparams; i++)
            for (char *save = NULL, *t = strtok_r(args[i], " ", &save); t;
                 t = strtok_r(NULL, " ", &save))
                if (irc_nick_ok(t) && irc_name_in_use(ic->g->sv, t, NULL) &&
                    o + strlen(t) + 2 < sizeof out)
                    o += (size_t)snprintf(out + o, sizeof out - o, "%s%s", o ? " " : "", t);
        irc_num(ic, "303", ":%s", out);
    } else if (strcmp(cmd, "USERHOST") == 0) {
        char out[400] = "";
        size_t o = 0;
        for (int i = 0; i < m->nparams && i < 5; i++)
            if (irc_nick_ok(args[i]) && irc_name_in_use(ic->g->sv, args[i], NULL)) {
                bool mine = irc_same_name(args[i], ic->nick);
                o += (size_t)snprintf(out + o, sizeof out - o, "%s%s=%c%s@%s", o ? " " : "",
                                      args[i], mine && ic->away[0] ? '-' : '+',
                                      mine ? ic->user : args[i], mine ? ic->host : "axon");
            }
        irc_num(ic, "302", ":%s", out);
    } else if (strcmp(cmd, "CHATHISTORY") == 0) {
        chathistory(ic, m, args);
    } else if (strcmp(cmd, "LUSERS") == 0) {
        lusers(ic);
    } else if (strcmp(cmd, "MOTD") == 0) {
        irc_num(ic, "422", ":MOTD File is missing");
    } else if (strcmp(cmd, "VERSION") == 0) {
        irc_num(ic, "351", "axon-" AXON_VERSION " " SERVER_NAME " :axon hub");
        isupport(ic);
    } else {
        irc_num(ic, "421", "%s :Unknown command", cmd);
    }
}

/* ---- lines ------------------------------------------------------------------------------- */

static bool expired(irc_conn *ic)
{
    if (!ic->id || !auth_expired(ic->id, (int64_t)time(NULL))) return false;
    close_with(ic, "Token expired");
    return true;
}

static bool over_limit(irc_conn *ic, size_t n)
{
    hub_refusal ref = {0};
    char text[128];
    hub_limit_kind k = serve_limit_msg(ic->g->sv, "irc", ic->c, &ic->lim, n + 2, &ref);
    if (k == HUB_LIMIT_OK) return false;
    close_with(ic, serve_limit_text(k, &ref, text, sizeof text));
    return true;
}

static void one_line(irc_conn *ic, char *line, size_t n)
{
    if (ic->quit || expired(ic) || over_limit(ic, n)) return;
    ax_irc_msg m;
    int rc = ax_irc_parse(line, n, &m);
    if (rc == AX_IRC_EEMPTY) return;
    if (rc != 0) {
        irc_num(ic, "421", "* :Malformed line");
        return;
    }
    GW_ADD(ic->g->sv->gw[GW_IRC].msgs_in, 1);
    command(ic, &m, line);
}

/* ---- timers -------------------------------------------------------------------------- */

static void on_timer(ax_timer *t, void *ud)
{
    irc_conn *ic = ud;
    (void)t;
    if (ic->quit || expired(ic)) return;
    if (!ic->registered) {
        close_with(ic, "Registration timed out");
        return;
    }
    uint64_t now = ax_loop_now(ic->g->sv->loop), idle = now - ic->last_in,
             ping = PING_S(ic) * 1000ull;
    if (ic->ping_out) {
        if (idle >= 2 * ping) {
            char why[64];
            snprintf(why, sizeof why, "Ping timeout: %llu seconds",
                     (unsigned long long)(idle / 1000));
            close_with(ic, why);
            return;
        }
        timer_arm(ic, 2 * ping - idle);
    } else if (idle >= ping) {
        irc_sendf(ic, "PING :" SERVER_NAME);
        ic->ping_out = true;
        timer_arm(ic, 2 * ping - idle);
    } else {
        timer_arm(ic, ping - idle);
    }
}

static void timer_arm(irc_conn *ic, uint64_t ms)
{
    if (!ic->timer && !(ic->timer = ax_timer_new(ic->g->sv->loop, on_timer, ic))) return;
    if (ic->id && ic->id->exp) {
        int64_t left = ic->id->exp - (int64_t)time(NULL);
        if (left < 0) left = 0;
        if ((uint64_t)left * 1000 + 100 < ms) ms = (uint64_t)left * 1000 + 100;
    }
    ax_timer_start(ic->timer, ms, 0);
}

/* ---- connections -------------------------------------------------------------------- */

static void flood_over(ax_timer *t, void *ud)
{
    irc_conn *ic = ud;
    (void)t;
    if (ic->quit) return;
    ax_conn_pause(ic->c); /* and at once resume: what waits is handed over again */
    ax_conn_resume(ic->c);
}

/* May the next line be read now?  Else it waits (false), or, when too
 * much waits, the connection ends. */
static bool flood_ok(irc_conn *ic, size_t waiting)
{
    uint64_t now = ax_loop_now(ic->g->sv->loop);
    if (ic->flood_ms <= now + FLOOD_WINDOW_MS) {
        ic->flood_ms = (ic->flood_ms > now ? ic->flood_ms : now) + FLOOD_COST_MS;
        return true;
    }
    if (waiting > FLOOD_RECVQ) {
        GW_ADD(ic->g->sv->gw[GW_IRC].errors, 1);
        close_with(ic, "Excess Flood");
        return false;
    }
    if (!ic->flood && !(ic->flood = ax_timer_new(ic->g->sv->loop, flood_over, ic))) return true;
    ax_timer_start(ic->flood, ic->flood_ms - FLOOD_WINDOW_MS - now, 0);
    return false;
}

static size_t on_data(ax_conn *c, const char *data, size_t len)
{
    irc_conn *ic = ax_conn_data(c);
    if (!ic) return len;
    serve *sv = ic->g->sv;
    static __thread char buf[AX_IRC_MAX_TAGS + AX_IRC_MAX_LINE + 1]; /* one line at a time */
    size_t off = 0;
    while (off < len && !ic->quit) {
        size_t n = 0, skip = 0;
        int rc = ax_irc_line(data + off, len - off, &n, &skip);
        if (rc == AX_IRC_INCOMPLETE) break;
        if (rc < 0) {
            if (!ic->discarding) irc_num(ic, "417", ":Input line was too long");
            /* the rest of the line goes too, up to its end */
            const char *end = memchr(data + off + n, '\n', len - off - n);
            ic->discarding = !end && skip == len - off;
        } else if (ic->discarding) {
            ic->discarding = false;
        } else if (!flood_ok(ic, len - off)) {
            break;
        } else {
            memcpy(buf, data + off, n);
            buf[n] = '\0';
            ic->last_in = ax_loop_now(sv->loop);
            ic->ping_out = false;
            one_line(ic, buf, n);
        }
        off += skip;
        if (ax_conn_paused(c)) break;
    }
    if (ic->quit) off = len;
    GW_ADD(sv->gw[GW_IRC].bytes_in, off);
    return off;
}

static bool conn_refused(gw_irc *g, ax_conn *c, hub_limits_conn *lim)
{
    hub_refusal ref = {0};
    char text[128], msg[200];
    hub_limit_kind k = serve_limit_open(g->sv, "irc", c, lim, &ref);
    if (k == HUB_LIMIT_OK) return false;
    int n = snprintf(msg, sizeof msg, "ERROR :Closing link: %s\r\n",
                     serve_limit_text(k, &ref, text, sizeof text));
    if (n > 0 && ax_conn_write(c, msg, (size_t)n) >= 0) GW_ADD(g->sv->gw[GW_IRC].bytes_out, n);
    GW_ADD(g->sv->gw[GW_IRC].errors, 1);
    ax_conn_set_data(c, NULL);
    ax_conn_close(c);
    return true;
}

static void on_open(ax_conn *c)
{
    gw_irc *g = ax_conn_data(c);
    hub_limits_conn lim;
    if (conn_refused(g, c, &lim)) return;
    irc_conn *ic = ax_calloc(1, sizeof(*ic));
    if (!ic) {
        serve_limit_close(g->sv, &lim);
        ax_conn_set_data(c, NULL);
        ax_conn_abort(c, AX_ENOMEM);
        return;
    }
    ic->lim = lim;
    ic->g = g;
    ic->c = c;
    ic->next = g->conns;
    if (g->conns) g->conns->prev = ic;
    g->conns = ic;
    ax_conn_set_data(c, ic);
    ax_addr a;
    char peer[AX_ADDR_STRLEN] = "unknown";
    if (ax_conn_peer(c, &a) == 0) {
        ax_addr_format(&a, peer, sizeof peer);
        /* "tcp://127.0.0.1:5000" -> "127.0.0.1" */
        char *h = strstr(peer, "://");
        h = h ? h + 3 : peer;
        if (*h == '[') h++;
        char *end = strrchr(h, ':');
        if (end && end > h && end[-1] == ']') end--;
        if (end) *end = '\0';
        snprintf(ic->host, sizeof ic->host, "%s", h);
        for (char *p = ic->host; *p; p++)
            if (*p == ':') *p = '-'; /* a host with ':' would read as a trailing parameter */
    } else {
        snprintf(ic->host, sizeof ic->host, "axon");
    }
    GW_ADD(g->sv->gw[GW_IRC].conns, 1);
    GW_ADD(g->sv->gw[GW_IRC].accepted, 1);
    ic->last_in = ax_loop_now(g->sv->loop);
    timer_arm(ic, REGISTER_S * 1000);
}

static void on_drain(ax_conn *c)
{
    irc_conn *ic = ax_conn_data(c);
    if (ic && ic->sub) hub_sub_writable(ic->sub);
}

static void on_end(ax_conn *c)
{
    ax_conn_close(c);
}

static void on_close(ax_conn *c, int reason)
{
    irc_conn *ic = ax_conn_data(c);
    (void)reason;
    if (!ic) return;
    if (ic->prev)
        ic->prev->next = ic->next;
    else
        ic->g->conns = ic->next;
    if (ic->next) ic->next->prev = ic->prev;
    GW_SUB(ic->g->sv->gw[GW_IRC].conns, 1);
    serve_limit_close(ic->g->sv, &ic->lim);
    quit_announce(ic, "Connection closed");
    if (ic->registered) irc_chan_left_all(ic->nick);
    nick_release(ic);
    hub_sub_free(ic->sub);
    auth_identity_free(ic->id);
    ax_timer_free(ic->timer);
    ax_timer_free(ic->flood);
    memset(ic->pass, 0, sizeof ic->pass);
    ax_free(ic);
}

static const ax_conn_cbs irc_cbs = {.on_open = on_open,
                                    .on_data = on_data,
                                    .on_drain = on_drain,
                                    .on_end = on_end,
                                    .on_close = on_close};

static ax_conn_opts irc_conn_opts(const serve *sv, ax_tls_ctx *tls)
{
    return (ax_conn_opts){.max_input = AX_IRC_MAX_TAGS + AX_IRC_MAX_LINE + 2,
                          .output_cap = 4u << 20,
                          .linger_ms = sv->cfg->close_timeout_s * 1000,
                          .tls = tls};
}

/* ---- the interface (gateway.h) ---------------------------------------------------------- */

static const char *irc_url(const serve_cfg *c)
{
    return c->irc_url;
}

static const char *irc_tls_url(const serve_cfg *c)
{
    return c->ircs_url;
}

static void *irc_start(serve *sv, const char *url, char *why, size_t why_len)
{
    gw_irc *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    g->sv = sv;
    irc_net_add(g);
    int err = 0;
    ax_conn_opts co = irc_conn_opts(sv, NULL);
    ax_listen_opts lo = serve_listen_opts(sv);
    g->ls = url ? ax_listen_ex(sv->loop, url, &irc_cbs, &co, &lo, g, &err) : NULL;
    if (url && !g->ls) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        irc_net_remove(g);
        ax_free(g);
        return NULL;
    }
    return g;
}

static int irc_listen_tls(void *gp, const char *url, char *why, size_t why_len)
{
    gw_irc *g = gp;
    int err = 0;
    ax_conn_opts co = irc_conn_opts(g->sv, g->sv->tls);
    ax_listen_opts lo = serve_listen_opts(g->sv);
    g->tls_ls = ax_listen_ex(g->sv->loop, url, &irc_cbs, &co, &lo, g, &err);
    if (!g->tls_ls) snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
    return g->tls_ls ? 0 : err;
}

static void irc_stop(void *gp)
{
    gw_irc *g = gp;
    if (!g) return;
    irc_net_remove(g);
    if (g->ls) ax_listener_close(g->ls);
    if (g->tls_ls) ax_listener_close(g->tls_ls);
    g->ls = g->tls_ls = NULL;
    for (irc_conn *ic = g->conns; ic; ic = ic->next)
        close_with(ic, "Server shutting down");
}

static void irc_abort(void *gp)
{
    gw_irc *g = gp;
    for (irc_conn *ic = g ? g->conns : NULL; ic; ic = ic->next)
        ax_conn_abort(ic->c, AX_ECLOSED);
}

static void irc_free(void *g)
{
    if (g) irc_net_remove(g);
    ax_free(g);
}

static size_t irc_count(const void *gp)
{
    const gw_irc *g = gp;
    size_t n = 0;
    for (const irc_conn *ic = g ? g->conns : NULL; ic; ic = ic->next)
        n++;
    return n;
}

static const char *irc_addr(void *gp, char *buf, size_t len)
{
    gw_irc *g = gp;
    return g && g->ls ? ax_addr_format(ax_listener_addr(g->ls), buf, len) : NULL;
}

static const char *irc_tls_addr(void *gp, char *buf, size_t len)
{
    gw_irc *g = gp;
    if (!g || !g->tls_ls) return NULL;
    ax_addr_format(ax_listener_addr(g->tls_ls), buf, len);
    if (strncmp(buf, "tcp", 3) == 0) memcpy(buf, "tls", 3);
    return buf;
}

static void irc_log_addrs(void *g)
{
    char a[AX_ADDR_STRLEN];
    if (irc_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "IRC on %s", a);
    if (irc_tls_addr(g, a, sizeof a)) ax_log(AX_LOG_INFO, "IRC over TLS on %s", a);
}

static void irc_hints(void *g, FILE *out)
{
    char a[AX_ADDR_STRLEN], hp[AX_ADDR_STRLEN];
    if (irc_addr(g, a, sizeof a)) {
        serve_nc_args(a, hp, sizeof hp); /* "host port" */
        char *sp = strrchr(hp, ' ');
        if (sp) *sp = '\0';
        fprintf(out, "axon serve: IRC           irssi -c %s -p %s   (then /join #lobby)\n", hp,
                sp ? sp + 1 : "6667");
    }
    if (irc_tls_addr(g, a, sizeof a))
        fprintf(out, "axon serve: IRC over TLS  %s\n", serve_hostport(a, hp, sizeof hp));
}

const gw_ops gw_irc_gateway = {.name = "irc",
                               .url = irc_url,
                               .tls_url = irc_tls_url,
                               .tls_setting = "listen_ircs",
                               .start = irc_start,
                               .listen_tls = irc_listen_tls,
                               .stop = irc_stop,
                               .abort = irc_abort,
                               .free = irc_free,
                               .count = irc_count,
                               .addr = irc_addr,
                               .tls_addr = irc_tls_addr,
                               .log_addrs = irc_log_addrs,
                               .hints = irc_hints};
