/* gw_irc.c: an IRC server whose channels are the hub's chat rooms.
 *
 * `#lobby` is the topic chat/lobby: what an IRC user says there reaches the
 * chat page, the line chat, WebSocket, SSE and MQTT clients of that room,
 * and what they say arrives as PRIVMSG from `name!name@GATEWAY` (hub_msg.via:
 * ws, http, line, ...; `axon` when not known).  A nick's
 * direct messages are the topic user/NICK/inbox (the line chat's /msg).
 * Presence in a room is the hub's: NAMES and WHO list members of every
 * gateway, and their joins and leaves arrive as JOIN and PART.
 *
 * Registration: CAP LS 302 / REQ / END (sasl, server-time, message-tags,
 * echo-message, batch, draft/chathistory, multi-prefix, userhost-in-names,
 * cap-notify, away-notify, account-tag, account-notify, extended-join),
 * PASS, NICK, USER; SASL PLAIN and PASS are checked by the hub's auth
 * (serve_login / serve_token).  Channel modes, operators, KICK and INVITE
 * are irc_chan.c's.  The wire is src/proto/irc; docs/irc.md lists what
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
#include "proto/ws/utf8.h"

/* Flood control, as classic servers do it: every line moves a penalty
 * clock FLOOD_COST_MS ahead (from now, when it is behind); while the clock
 * is more than FLOOD_WINDOW_MS ahead, lines wait unread (a burst of
 * FLOOD_WINDOW_MS / FLOOD_COST_MS lines, then FLOOD_COST_MS apart); when
 * more than FLOOD_RECVQ bytes wait, the connection ends with "Excess
 * Flood".  On top of the hub's msg_rate/byte_rate limits. */
#define FLOOD_COST_MS 500
#define FLOOD_WINDOW_MS 10000
#define FLOOD_RECVQ 8192
#define CLIENT_TAGS_MAX 4094 /* bytes of tags a client may send (the server's may be 8191) */

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

void irc_send_tagged(irc_conn *ic, const char *tags, const char *time, const char *line)
{
    static __thread char buf[AX_IRC_MAX_TAGS + AX_IRC_MAX_LINE + 8];
    size_t o = 0;
    bool mt = ic->caps & CAP_MESSAGE_TAGS, st = mt || (ic->caps & CAP_SERVER_TIME);
    bool has_time = time && time[0] && st, has_tags = tags && tags[0] && mt;
    if (has_time || has_tags)
        o = (size_t)snprintf(buf, AX_IRC_MAX_TAGS, "@%s%s%s%s ", has_time ? "time=" : "",
                             has_time ? time : "", has_time && has_tags ? ";" : "",
                             has_tags ? tags : "");
    if (o >= AX_IRC_MAX_TAGS) o = 0; /* (cannot happen: the tags came within the limit) */
    size_t n = strlen(line);
    if (n > AX_IRC_MAX_LINE - 2) n = ax_irc_utf8_cut(line, n, AX_IRC_MAX_LINE - 2);
    memcpy(buf + o, line, n);
    o += n;
    buf[o++] = '\r';
    buf[o++] = '\n';
    send_raw(ic, buf, o);
}

const char *irc_server(const irc_conn *ic)
{
    const char *name = ic->g->sv->cfg->irc_server_name;
    return name[0] ? name : SERVER_NAME;
}

void irc_srv_sendf(irc_conn *ic, const char *fmt, ...)
{
    char rest[AX_IRC_MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    irc_sendf(ic, ":%s %s", irc_server(ic), rest);
}

const char *irc_me(const irc_conn *ic)
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
    irc_sendf(ic, ":%s %s %s %s", irc_server(ic), code, irc_me(ic), rest);
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

int64_t irc_parse_iso(const char *s)
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

/* A message from the hub as PRIVMSG lines (NOTICE when an IRC user sent
 * it as one) on this connection: the text
 * cut at line ends and at the 512-byte limit (on UTF-8 boundaries); a
 * "/me " message is a CTCP ACTION.  `batch` tags each line (NULL: none). */
void irc_deliver(irc_conn *ic, const hub_msg *m, const char *target, const char *batch)
{
    static __thread char tags[AX_IRC_MAX_TAGS];
    char nick[HUB_MAX_NAME + 1], t[40];
    tags[0] = '\0';
    as_nick(m->sender, m->sender_len, nick, sizeof nick);
    size_t tl = 0;
    if (ic->caps & CAP_SERVER_TIME) {
        iso_time(m->time_ms, t, sizeof t);
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%stime=%s", tl ? ";" : "", t);
    }
    if (ic->caps & CAP_MESSAGE_TAGS) {
        const char *room = serve_room_of(m->topic);
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%smsgid=%s-%llu", tl ? ";" : "",
                               room && irc_room_ok(room) ? room : "dm", (unsigned long long)m->seq);
    }
    if (batch && (ic->caps & CAP_BATCH))
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%sbatch=%s", tl ? ";" : "", batch);
    /* the source: an IRC user's own user@host; another gateway's name (name!name@ws) */
    irc_who w;
    bool known = m->via == HUB_VIA_IRC && irc_lookup(nick, &w);
    const char *user = known ? w.user : nick, *host = known ? w.host : hub_via_name(m->via);
    if ((ic->caps & CAP_ACCOUNT_TAG) && tl < sizeof tags && (known || irc_lookup(nick, &w)) &&
        w.account[0])
        tl +=
            (size_t)snprintf(tags + tl, sizeof tags - tl, "%saccount=%s", tl ? ";" : "", w.account);
    if (tl >= sizeof tags) tl = 0, tags[0] = '\0';
    if (ic->caps & CAP_MESSAGE_TAGS) /* client-only tags, carried as User Properties */
        tl = irc_tags_from_ext(m->ext, m->ext_len, tags, tl, sizeof tags - 2);
    char head[HUB_MAX_NAME * 3 + CHAN_MAX + NICK_MAX + 64];
    int hn = snprintf(head, sizeof head, ":%s!%s@%s %s %s :", nick, user, host,
                      m->notice ? "NOTICE" : "PRIVMSG", target);
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
    static __thread char line[AX_IRC_MAX_TAGS + AX_IRC_MAX_LINE];
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
    if (!join && irc_chan_kicked(room, nick)) return;      /* it had its KICK, PART or QUIT line */
    if (join && irc_chan_renamed_join(room, nick)) return; /* it had its NICK line */
    if (!irc) {
        snprintf(w.user, sizeof w.user, "%s", nick);
        snprintf(w.host, sizeof w.host, "axon");
        snprintf(w.real, sizeof w.real, "%.*s", (int)sizeof w.real - 1, nick);
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
        irc_deliver(ic, m, chan, NULL);
    } else if (auth_inbox_of(m->topic, to, sizeof to)) {
        irc_deliver(ic, m, ic->nick, NULL);
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

const hub_sub_ops irc_sub_ops = {irc_write, irc_kick};

/* ---- helpers ------------------------------------------------------------------------ */

/* The IRC users who share a channel with `ic` see it QUIT (its leaving
 * the rooms is then not shown as PART). */
static void quit_announce(irc_conn *ic, const char *why)
{
    if (!ic->registered || ic->announced) return;
    ic->announced = true;
    irc_whowas_add(ic, ic->nick);
    char out[1024];
    snprintf(out, sizeof out, ":%s!%s@%s QUIT :%s", ic->nick, ic->user, ic->host, why);
    irc_net_shared(ic->g, ic->nick, out, 0);
    irc_chan_quiet_all(ic->nick);
    irc_monitor_offline(ic->g, ic->nick);
}

void irc_close_with(irc_conn *ic, const char *why)
{
    if (ic->quit) return;
    quit_announce(ic, why);
    irc_nick_release(ic); /* the nick is free now (LUSERS does not count it) */
    irc_unregistered_set(ic, false);
    irc_sendf(ic, "ERROR :Closing link: %s[%s] (%s)", irc_me(ic), ic->host, why);
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
    return irc_room_ok(room);
}

bool irc_may(irc_conn *ic, bool (*fn)(const auth_identity *, const char *), const char *topic)
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
void irc_who_of(const char *nick, irc_who *w)
{
    if (irc_lookup(nick, w)) return;
    snprintf(w->nick, sizeof w->nick, "%s", nick);
    snprintf(w->user, sizeof w->user, "%s", nick);
    snprintf(w->host, sizeof w->host, "axon");
    snprintf(w->real, sizeof w->real, "%s", nick);
    w->account[0] = w->away[0] = '\0';
}

static void names_flush(names_ctx *c)
{
    if (c->n == 0) return;
    irc_num(c->ic, "353", "%c %s :%.*s", irc_chan_secret(c->room) ? '@' : '=', c->chan, (int)c->n,
            c->line);
    c->n = 0;
}

static void names_add(const char *name, void *ud)
{
    names_ctx *c = ud;
    char nick[HUB_MAX_NAME + 1], item[HUB_MAX_NAME * 3 + 64], pfx[4];
    as_nick(name, strlen(name), nick, sizeof nick);
    irc_chan_flags(c->room, nick, pfx, c->ic->caps & CAP_MULTI_PREFIX);
    irc_who w;
    if (c->ic->caps & CAP_USERHOST_NAMES) irc_who_of(nick, &w);
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
    if (irc_may(ic, auth_may_read, topic) && (!irc_chan_secret(room) || irc_on_chan(ic, chan))) {
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
    irc_who_of(nick, &w);
    if (c->room) irc_chan_flags(c->room, nick, pfx, c->ic->caps & CAP_MULTI_PREFIX);
    irc_num(c->ic, "352", "%s %s %s %s %s %c%s%s%s :0 %s", c->chan, w.user, w.host,
            irc_server(c->ic), w.nick, w.away[0] ? 'G' : 'H', w.oper ? "*" : "",
            w.account[0] ? "r" : "", pfx, w.real);
}

void irc_who_reply(irc_conn *ic, const char *name)
{
    who_ctx wc = {ic, "*", NULL};
    who_add(name, &wc);
}

/* ---- channels ------------------------------------------------------------------------- */

static void send_topic(irc_conn *ic, const char *chan, const char *room, bool always)
{
    chan_topic t;
    if (irc_topic_get(room, &t) && t.text[0]) {
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
    if (!irc_may(ic, auth_may_subscribe, topic)) {
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
    /* the channel's IRC users (and the user) get the PART with its reason
     * from here: the hub's leave event carries none */
    char out[1024];
    snprintf(out, sizeof out, ":%s!%s@%s PART %s%s%s", ic->nick, ic->user, ic->host, chan,
             reason ? " :" : "", reason ? reason : "");
    irc_chan_parting(room, ic->nick);
    irc_net_chan(ic->g, room, out, 0, NULL);
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

/* May a direct message to `name` go to its inbox (`topic`)?  Yes when the
 * name is online (IRC, or present in a room from any gateway), an account
 * of the password file, or a name the hub has seen (its inbox has had a
 * message or has a subscriber); otherwise it is a nick nobody holds, which
 * IRC answers with 401 rather than keep the message for nobody. */
static bool dm_known(irc_conn *ic, const char *name, const char *topic)
{
    serve *sv = ic->g->sv;
    irc_who w;
    if (irc_lookup(name, &w)) return true;
    const struct auth_passwd *pw = sv->auth ? auth_passwds(sv->auth) : NULL;
    if (pw && auth_passwd_has(pw, name)) return true;
    if (hub_topic_used(sv->hub, topic)) return true;
    return irc_name_in_use(sv, name, NULL);
}

/* PRIVMSG/NOTICE text to a target: a channel (its room) or a nick (its
 * inbox).  CTCP ACTION is "/me "; other CTCP is not carried. */
static void say_to(irc_conn *ic, const char *cmd, const char *target, const char *text,
                   const uint8_t *ext, size_t el)
{
    bool notice = cmd[0] == 'N';
    char topic[HUB_MAX_TOPIC], room[ROOM_MAX + 1], body[AX_IRC_MAX_LINE + 8], chan[CHAN_MAX + 2];
    size_t n = strlen(text);
    /* what fits in the line the others get, ":nick!user@host PRIVMSG target :": the rest
     * is cut (as classic servers do) rather than split */
    size_t head = strlen(ic->nick) + strlen(ic->user) + strlen(ic->host) + strlen(target) + 16,
           fit = AX_IRC_MAX_LINE - 2 - head;
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
        if (!dm_known(ic, target, topic)) {
            if (!notice) irc_num(ic, "401", "%s :No such nick/channel", target);
            return;
        }
        irc_who w;
        if (!notice && irc_lookup(target, &w) && w.away[0])
            irc_num(ic, "301", "%s :%s", target, w.away);
    }
    serve *sv = ic->g->sv;
    if (!irc_may(ic, auth_may_publish, topic)) {
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
    hub_pub p = {.origin = ic->sub,
                 .topic = topic,
                 .sender = ic->nick,
                 .payload = body,
                 .len = n,
                 .qos = 1,
                 .ext = el ? ext : NULL,
                 .ext_len = el,
                 .notice = notice,
                 .via = HUB_VIA_IRC};
    uint64_t seq = hub_publish_pub(sv->hub, &p, NULL, &err);
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
                        .via = HUB_VIA_IRC,
                        .sender = ic->nick,
                        .sender_len = strlen(ic->nick),
                        .payload = body,
                        .payload_len = n,
                        .notice = notice,
                        .ext = (void *)ext,
                        .ext_len = el};
        irc_deliver(ic, &fake, target, NULL);
    }
}

/* ---- commands ------------------------------------------------------------------------ */

/* NICK after registration: the hub's presence sees a leave and a join
 * (other gateways show that), the IRC users who share a channel see one
 * NICK line. */
static void rename_to(irc_conn *ic, const char *nick)
{
    char old[HUB_MAX_NAME + 1], out[1024];
    snprintf(old, sizeof old, "%s", ic->nick);
    irc_chan_renaming(old, nick);
    ic->renaming = true;
    int rc = hub_sub_rename(ic->sub, nick);
    ic->renaming = false;
    if (rc != 0) {
        irc_num(ic, "432", "%s :Cannot change your nick now", nick);
        return;
    }
    irc_inbox(ic, old, false);
    irc_chan_renamed(old, nick);
    irc_whowas_add(ic, old);
    snprintf(ic->nick, sizeof ic->nick, "%s", nick);
    irc_nick_claim(ic, nick);
    irc_inbox(ic, nick, true);
    snprintf(out, sizeof out, ":%s!%s@%s NICK %s", old, ic->user, ic->host, nick);
    irc_sendf(ic, "%s", out);
    irc_net_shared(ic->g, nick, out, 0);
    if (!irc_same_name(old, nick)) { /* (a change of case is no news) */
        irc_monitor_offline(ic->g, old);
        irc_monitor_online(ic->g, ic);
    }
}

/* USERHOST: nick[*]=[+-]user@host of up to 5 nicks (* an operator, - away). */
static void userhost(irc_conn *ic, int nparams, char **args)
{
    char out[400] = "";
    size_t o = 0;
    for (int i = 0; i < nparams && i < 5; i++) {
        if (!irc_nick_ok(args[i]) || !irc_name_in_use(ic->g->sv, args[i], NULL)) continue;
        irc_who w;
        irc_who_of(args[i], &w);
        int k = snprintf(out + o, sizeof out - o, "%s%s%s=%c%s@%s", o ? " " : "", args[i],
                         w.oper ? "*" : "", w.away[0] ? '-' : '+', w.user, w.host);
        if (k < 0 || (size_t)k >= sizeof out - o) break;
        o += (size_t)k;
    }
    irc_num(ic, "302", ":%s", out);
}

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
        irc_cap(ic, m, args);
    } else if (strcmp(cmd, "PING") == 0) {
        if (!m->nparams)
            irc_num(ic, "409", ":No origin specified");
        else
            irc_srv_sendf(ic, "PONG %s :%s", irc_server(ic), a0);
    } else if (strcmp(cmd, "PONG") == 0) {
        ic->ping_out = false;
    } else if (strcmp(cmd, "QUIT") == 0) {
        char why[300];
        snprintf(why, sizeof why, "Quit: %s", m->nparams ? a0 : "");
        irc_close_with(ic, why);
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
        irc_authenticate(ic, m, a0);
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
            irc_try_register(ic);
        } else if (!ic->registered) {
            snprintf(ic->nick, sizeof ic->nick, "%s", a0); /* checked at registration */
            irc_try_register(ic);
        } else if (irc_name_in_use(ic->g->sv, a0, ic)) {
            irc_num(ic, "433", "%s :Nickname is already in use", a0);
        } else {
            rename_to(ic, a0);
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
            irc_try_register(ic);
        }
    } else if (!ic->registered) {
        irc_num(ic, "451", ":You have not registered");
    } else if (strcmp(cmd, "PRIVMSG") == 0 || strcmp(cmd, "NOTICE") == 0) {
        if (m->nparams < 1) {
            irc_num(ic, "411", ":No recipient given (%s)", cmd);
        } else if (m->nparams < 2) {
            irc_num(ic, "412", ":No text to send");
        } else {
            static __thread uint8_t ext[AX_IRC_MAX_TAGS + 512];
            static __thread char ctags[AX_IRC_MAX_TAGS];
            size_t el = 0;
            ctags[0] = '\0';
            if ((ic->caps & CAP_MESSAGE_TAGS) && m->tags.len) {
                el = irc_tags_to_ext(m, ext, sizeof ext);
                irc_tags_from_ext(ext, el, ctags, 0, sizeof ctags);
            }
            int targets = 0;
            for (char *save = NULL, *t = strtok_r(args[0], ",", &save); t && targets < 4;
                 t = strtok_r(NULL, ",", &save), targets++) {
                if ((t[0] == '@' || t[0] == '+') && t[1] == '#')
                    irc_statusmsg(ic, cmd, t, args[1], ctags);
                else
                    say_to(ic, cmd, t, args[1], ext, el);
            }
        }
    } else if (strcmp(cmd, "TAGMSG") == 0) {
        irc_cmd_tagmsg(ic, m, args);
    } else if (strcmp(cmd, "MONITOR") == 0) {
        irc_cmd_monitor(ic, m->nparams, args);
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
            if (irc_may(ic, auth_may_read, topic))
                hub_presence(ic->g->sv->hub, topic, who_add, &wc);
        } else if (m->nparams && (strchr(a0, '*') || strchr(a0, '?'))) {
            irc_who_mask(ic, a0);
        } else if (m->nparams && irc_nick_ok(a0) && irc_name_in_use(ic->g->sv, a0, NULL)) {
            irc_who_reply(ic, a0);
        }
        irc_num(ic, "315", "%s :End of /WHO list", m->nparams ? a0 : "*");
    } else if (strcmp(cmd, "WHOIS") == 0) {
        if (!m->nparams)
            irc_num(ic, "431", ":No nickname given");
        else
            irc_whois(ic, args[m->nparams - 1]);
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
            if (!irc_may(ic, auth_may_publish, topic)) {
                irc_num(ic, "482", "%s :You may not set the topic (you may not publish to %s)",
                        chan, topic);
            } else if (irc_chan_may_topic(ic, chan, room)) {
                char text[TOPIC_MAX + 1], out[1024];
                snprintf(text, sizeof text, "%s", args[1]);
                irc_topic_set(room, text, ic->nick);
                snprintf(out, sizeof out, ":%s!%s@%s TOPIC %s :%s", ic->nick, ic->user, ic->host,
                         chan, text);
                irc_net_chan(ic->g, room, out, 0, NULL);
                if (!irc_on_chan(ic, chan)) irc_sendf(ic, "%s", out);
            }
        }
    } else if (strcmp(cmd, "LIST") == 0) {
        irc_list(ic);
    } else if (strcmp(cmd, "AWAY") == 0) {
        if (m->nparams && a0[0]) {
            snprintf(ic->away, sizeof ic->away, "%s", a0);
            irc_num(ic, "306", ":You have been marked as being away");
        } else {
            ic->away[0] = '\0';
            irc_num(ic, "305", ":You are no longer marked as being away");
        }
        irc_nick_claim(ic, ic->nick); /* what WHOIS, WHO and new JOINs show */
        char out[1024];
        snprintf(out, sizeof out, ":%s!%s@%s AWAY%s%s", ic->nick, ic->user, ic->host,
                 ic->away[0] ? " :" : "", ic->away);
        irc_net_shared(ic->g, ic->nick, out, CAP_AWAY_NOTIFY);
        irc_net_monitor_event(ic->g, ic->nick, out, CAP_AWAY_NOTIFY | CAP_EXTENDED_MONITOR);
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
        userhost(ic, m->nparams, args);
    } else if (strcmp(cmd, "WHOWAS") == 0) {
        irc_cmd_whowas(ic, m->nparams, args);
    } else if (strcmp(cmd, "OPER") == 0) {
        irc_cmd_oper(ic, m->nparams, args);
    } else if (strcmp(cmd, "KILL") == 0) {
        irc_cmd_kill(ic, m->nparams, args);
    } else if (strcmp(cmd, "WALLOPS") == 0) {
        irc_cmd_wallops(ic, m->nparams, args);
    } else if (strcmp(cmd, "TIME") == 0) {
        irc_cmd_time(ic);
    } else if (strcmp(cmd, "INFO") == 0) {
        irc_cmd_info(ic);
    } else if (strcmp(cmd, "CHATHISTORY") == 0) {
        irc_chathistory(ic, m, args);
    } else if (strcmp(cmd, "LUSERS") == 0) {
        irc_lusers(ic);
    } else if (strcmp(cmd, "MOTD") == 0) {
        irc_num(ic, "422", ":MOTD File is missing");
    } else if (strcmp(cmd, "VERSION") == 0) {
        irc_num(ic, "351", "axon-" AXON_VERSION " %s :axon hub", irc_server(ic));
        irc_isupport(ic);
    } else {
        irc_num(ic, "421", "%s :Unknown command", cmd);
    }
}

/* ---- lines ------------------------------------------------------------------------------- */

static bool expired(irc_conn *ic)
{
    if (!ic->id || !auth_expired(ic->id, (int64_t)time(NULL))) return false;
    irc_close_with(ic, "Token expired");
    return true;
}

static bool over_limit(irc_conn *ic, size_t n)
{
    hub_refusal ref = {0};
    char text[128];
    hub_limit_kind k = serve_limit_msg(ic->g->sv, "irc", ic->c, &ic->lim, n + 2, &ref);
    if (k == HUB_LIMIT_OK) return false;
    irc_close_with(ic, serve_limit_text(k, &ref, text, sizeof text));
    return true;
}

static void one_line(irc_conn *ic, char *line, size_t n)
{
    if (ic->quit || expired(ic) || over_limit(ic, n)) return;
    if (line[0] == '@') { /* a client's tags: at most 4094 bytes (IRCv3 message-tags) */
        const char *sp = memchr(line, ' ', n);
        if ((sp ? (size_t)(sp - line) : n) - 1 > CLIENT_TAGS_MAX) {
            irc_num(ic, "417", ":Input line was too long (tags over %d bytes)", CLIENT_TAGS_MAX);
            return;
        }
    }
    ax_irc_msg m;
    int rc = ax_irc_parse(line, n, &m);
    if (rc == AX_IRC_EEMPTY) return;
    if (rc != 0) {
        irc_num(ic, "421", "* :Malformed line");
        return;
    }
    GW_ADD(ic->g->sv->gw[GW_IRC].msgs_in, 1);
    if (!ax_utf8_valid(line, n)) { /* UTF8ONLY: refused, not relayed */
        bool named = m.command.len < 32 && ax_utf8_valid(m.command.ptr, m.command.len);
        irc_srv_sendf(ic, "FAIL %.*s INVALID_UTF8 :The line is not UTF-8 (UTF8ONLY)",
                      named ? (int)m.command.len : 1, named ? m.command.ptr : "*");
        return;
    }
    command(ic, &m, line);
}

/* ---- timers -------------------------------------------------------------------------- */

static void on_timer(ax_timer *t, void *ud)
{
    irc_conn *ic = ud;
    (void)t;
    if (ic->quit || expired(ic)) return;
    if (!ic->registered) {
        irc_close_with(ic, "Registration timed out");
        return;
    }
    uint64_t now = ax_loop_now(ic->g->sv->loop), idle = now - ic->last_in,
             ping = PING_S(ic) * 1000ull;
    if (ic->ping_out) {
        if (idle >= 2 * ping) {
            char why[64];
            snprintf(why, sizeof why, "Ping timeout: %llu seconds",
                     (unsigned long long)(idle / 1000));
            irc_close_with(ic, why);
            return;
        }
        irc_timer_arm(ic, 2 * ping - idle);
    } else if (idle >= ping) {
        irc_sendf(ic, "PING :%s", irc_server(ic));
        ic->ping_out = true;
        irc_timer_arm(ic, 2 * ping - idle);
    } else {
        irc_timer_arm(ic, ping - idle);
    }
}

void irc_timer_arm(irc_conn *ic, uint64_t ms)
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
        irc_close_with(ic, "Excess Flood");
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
    irc_unregistered_set(ic, true);
    ic->last_in = ax_loop_now(g->sv->loop);
    irc_timer_arm(ic, REGISTER_S * 1000);
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
    irc_unregistered_set(ic, false);
    irc_nick_release(ic);
    hub_sub_free(ic->sub);
    auth_identity_free(ic->id);
    ax_timer_free(ic->timer);
    ax_timer_free(ic->flood);
    irc_monitor_free(ic);
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

/* irc_server_name: a host name (letters, digits, '-', '.'), with a dot
 * so that no client takes it for a nick. */
static bool server_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !strchr(s, '.') || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

static void *irc_start(serve *sv, const char *url, char *why, size_t why_len)
{
    const char *name = sv->cfg->irc_server_name;
    if (name[0] && !server_name_ok(name)) {
        snprintf(why, why_len,
                 "irc_server_name \"%s\" is not a server name (letters, digits, '-' and '.', "
                 "with a dot, up to 63 bytes)",
                 name);
        return NULL;
    }
    gw_irc *g = ax_calloc(1, sizeof(*g));
    if (!g) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    g->sv = sv;
    if (sv->cfg->irc_oper_file[0]) {
        char err[256];
        g->opers = auth_passwd_load(sv->cfg->irc_oper_file, err, sizeof err);
        if (!g->opers) {
            snprintf(why, why_len, "irc_oper_file: %s", err);
            ax_free(g);
            return NULL;
        }
    }
    irc_net_add(g);
    int err = 0;
    ax_conn_opts co = irc_conn_opts(sv, NULL);
    ax_listen_opts lo = serve_listen_opts(sv);
    g->ls = url ? ax_listen_ex(sv->loop, url, &irc_cbs, &co, &lo, g, &err) : NULL;
    if (url && !g->ls) {
        snprintf(why, why_len, "cannot listen on %s: %s", url, ax_strerror(err));
        irc_net_remove(g);
        auth_passwd_free(g->opers);
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
        irc_close_with(ic, "Server shutting down");
}

static void irc_abort(void *gp)
{
    gw_irc *g = gp;
    for (irc_conn *ic = g ? g->conns : NULL; ic; ic = ic->next)
        ax_conn_abort(ic->c, AX_ECLOSED);
}

static void irc_free(void *gp)
{
    gw_irc *g = gp;
    if (g) irc_net_remove(g), auth_passwd_free(g->opers);
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
