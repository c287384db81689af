/* irc_tags.c: what IRC users say beyond a message's text: client-only
 * tags (`+typing`, `+draft/reply`, ...) carried with hub messages as
 * MQTT 5.0 User Properties, TAGMSG, STATUSMSG (`PRIVMSG @#chan`) and
 * MONITOR.
 *
 * Client-only tags on PRIVMSG and NOTICE travel in hub_msg.ext, the
 * property block every gateway already passes through: an MQTT 5.0
 * subscriber sees them as User Properties (and an MQTT publisher's User
 * Properties whose key starts with '+' reach IRC users as tags), the store
 * keeps them (CHATHISTORY replays them) and the Redis backplane carries
 * them to other nodes.  TAGMSG has no text, so there is nothing for the
 * other gateways to show: it goes to the IRC users of the channel (every
 * thread), not through the hub. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "gw_irc.h"
#include "proto/mqtt/mqtt.h"

#define CLIENT_TAGS_MAX 64 /* client-only tags carried per message */

/* ---- client-only tags <-> User Properties ----------------------------------------- */

/* A client-only tag's key: '+', then an optional vendor "host/" and a name
 * of letters, digits and '-' ('.' and '/' in the vendor part).  A User
 * Property's key may hold anything: ';', '=' or ' ' in it would forge
 * other tags (`+x;account=admin`), so those are refused here. */
static bool client_key_ok(const char *k, size_t n)
{
    if (n < 2 || k[0] != '+' || k[n - 1] == '/') return false;
    for (size_t i = 1; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '/'))
            return false;
    }
    return true;
}

size_t irc_tags_to_ext(const ax_irc_msg *m, uint8_t *out, size_t cap)
{
    ax_mqtt_user_prop up[CLIENT_TAGS_MAX];
    static __thread char vals[AX_IRC_MAX_TAGS]; /* the unescaped values */
    size_t nv = 0;
    uint32_t n = 0;
    ax_irc_str rest = m->tags, key, value;
    while (n < CLIENT_TAGS_MAX && ax_irc_tag_next(&rest, &key, &value)) {
        if (!client_key_ok(key.ptr, key.len)) continue;
        if (nv + value.len > sizeof vals) break;
        size_t vl = ax_irc_tag_unescape(value.ptr, value.len, vals + nv);
        up[n].key = (ax_mqtt_str){key.ptr, key.len};
        up[n].value = (ax_mqtt_str){vals + nv, vl};
        nv += vl;
        n++;
    }
    if (!n) return 0;
    ax_mqtt_props p = {.user = up, .n_user = n};
    size_t len = ax_mqtt_props_encode(out, cap, AX_MQTT_PUBLISH, &p);
    return len <= cap ? len : 0;
}

size_t irc_tags_from_ext(const void *ext, size_t ext_len, char *out, size_t o, size_t cap)
{
    if (!ext_len) return o;
    ax_mqtt_iter it;
    ax_mqtt_iter_init(&it, (ax_mqtt_str){ext, ext_len});
    ax_mqtt_str key, value;
    char esc[AX_IRC_MAX_TAGS];
    while (ax_mqtt_user_next(&it, &key, &value)) {
        if (!client_key_ok(key.ptr, key.len)) continue;
        size_t el = ax_irc_tag_escape(value.ptr, value.len, esc, sizeof esc);
        if (el > sizeof esc) continue;
        size_t need = (o ? 1 : 0) + key.len + (el ? 1 + el : 0);
        if (o + need + 1 > cap) break;
        if (o) out[o++] = ';';
        memcpy(out + o, key.ptr, key.len);
        o += key.len;
        if (el) {
            out[o++] = '=';
            memcpy(out + o, esc, el);
            o += el;
        }
        out[o] = '\0';
    }
    return o;
}

/* The client-only tags of a line, escaped as they came ("+a=b;+c"). */
static size_t client_tags(const ax_irc_msg *m, char *out, size_t cap)
{
    size_t o = 0;
    ax_irc_str rest = m->tags, key, value;
    out[0] = '\0';
    while (ax_irc_tag_next(&rest, &key, &value)) {
        if (!client_key_ok(key.ptr, key.len)) continue;
        size_t need = (o ? 1 : 0) + key.len + (value.len ? 1 + value.len : 0);
        if (o + need + 1 > cap) break;
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s%s%.*s", o ? ";" : "", (int)key.len, key.ptr,
                              value.len ? "=" : "", (int)value.len, value.ptr);
    }
    return o;
}

void irc_msgid_new(char *out, size_t cap)
{
    static uint64_t counter;
    uint64_t n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    snprintf(out, cap, "t%llx-%llu", (unsigned long long)time(NULL), (unsigned long long)n);
}

static void time_now(char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t s = ts.tv_sec;
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* ---- TAGMSG -------------------------------------------------------------------------- */

void irc_cmd_tagmsg(irc_conn *ic, const ax_irc_msg *m, char **args)
{
    if (m->nparams < 1 || !args[0][0]) {
        irc_num(ic, "461", "TAGMSG :Not enough parameters");
        return;
    }
    if (!(ic->caps & CAP_MESSAGE_TAGS)) return; /* a client without the cap sends no tags */
    static __thread char tags[AX_IRC_MAX_TAGS];
    char id[48], t[40], line[AX_IRC_MAX_LINE], topic[HUB_MAX_TOPIC];
    irc_msgid_new(id, sizeof id);
    time_now(t, sizeof t);
    size_t o = (size_t)snprintf(tags, sizeof tags, "msgid=%s", id);
    char ct[AX_IRC_MAX_TAGS];
    if (client_tags(m, ct, sizeof ct)) snprintf(tags + o, sizeof tags - o, ";%s", ct);
    const char *target = args[0], *chan_part = target;
    int flags = 0;
    bool reached = false;                       /* does the event give the sender its echo? */
    if (target[0] == '@' || target[0] == '+') { /* STATUSMSG */
        flags = target[0] == '@' ? CM_OP : CM_OP | CM_VOICE;
        chan_part = target + 1;
    }
    if (chan_part[0] == '#') {
        char room[ROOM_MAX + 1], chan[CHAN_MAX + 2];
        if (!irc_chan_room(chan_part, room, sizeof room)) {
            irc_num(ic, "403", "%s :No such channel", target);
            return;
        }
        snprintf(chan, sizeof chan, "#%s", room);
        snprintf(topic, sizeof topic, "chat/%s", room);
        if (!irc_may(ic, auth_may_publish, topic) || irc_chan_may_speak(ic, room)) {
            irc_num(ic, "404", "%s :Cannot send to channel", chan);
            return;
        }
        snprintf(line, sizeof line, ":%s!%s@%s TAGMSG %s%s", ic->nick, ic->user, ic->host,
                 flags ? (flags == CM_OP ? "@" : "+") : "", chan);
        irc_net_opts no = {.need_cap = CAP_MESSAGE_TAGS,
                           .need_flags = flags,
                           .skip = ic->nick,
                           .tags = tags,
                           .time = t};
        irc_net_chan_ex(ic->g, room, line, &no);
        reached = irc_on_chan(ic, chan) &&
                  (!flags || (irc_chan_flags(room, ic->nick, NULL, false) & flags));
    } else {
        irc_who w;
        if (!irc_nick_ok(target) || !irc_lookup(target, &w)) {
            irc_num(ic, "401", "%s :No such nick/channel", target);
            return;
        }
        snprintf(topic, sizeof topic, "user/%s/inbox", w.nick);
        if (!irc_may(ic, auth_may_publish, topic)) {
            irc_num(ic, "404", "%s :Cannot send to nick", target);
            return;
        }
        snprintf(line, sizeof line, ":%s!%s@%s TAGMSG %s", ic->nick, ic->user, ic->host, w.nick);
        irc_net_opts no = {.need_cap = CAP_MESSAGE_TAGS, .tags = tags, .time = t};
        irc_net_nick_ex(ic->g, w.nick, line, &no);
        reached = irc_same_name(w.nick, ic->nick);
    }
    if ((ic->caps & CAP_ECHO) && !reached) irc_send_tagged(ic, tags, t, line);
}

/* ---- STATUSMSG ------------------------------------------------------------------------- */

void irc_statusmsg(irc_conn *ic, const char *cmd, const char *target, const char *text,
                   const char *ctags)
{
    bool notice = cmd[0] == 'N';
    char room[ROOM_MAX + 1], chan[CHAN_MAX + 2], topic[ROOM_MAX + 8], id[48], t[40];
    static __thread char tags[AX_IRC_MAX_TAGS];
    static __thread char line[AX_IRC_MAX_LINE + 64];
    int flags = target[0] == '@' ? CM_OP : CM_OP | CM_VOICE;
    if (!irc_chan_room(target + 1, room, sizeof room)) {
        if (!notice) irc_num(ic, "403", "%s :No such channel", target);
        return;
    }
    snprintf(chan, sizeof chan, "%c#%s", target[0], room);
    snprintf(topic, sizeof topic, "chat/%s", room);
    if (!irc_may(ic, auth_may_publish, topic) || irc_chan_may_speak(ic, room)) {
        if (!notice) irc_num(ic, "404", "%s :Cannot send to channel", chan);
        return;
    }
    if (!text[0]) {
        if (!notice) irc_num(ic, "412", ":No text to send");
        return;
    }
    irc_msgid_new(id, sizeof id);
    time_now(t, sizeof t);
    snprintf(tags, sizeof tags, "msgid=%s%s%s", id, ctags && ctags[0] ? ";" : "",
             ctags ? ctags : "");
    snprintf(line, sizeof line, ":%s!%s@%s %s %s :%s", ic->nick, ic->user, ic->host,
             notice ? "NOTICE" : "PRIVMSG", chan, text);
    irc_net_opts no = {.need_flags = flags, .skip = ic->nick, .tags = tags, .time = t};
    irc_net_chan_ex(ic->g, room, line, &no);
    if ((ic->caps & CAP_ECHO) && !(irc_chan_flags(room, ic->nick, NULL, false) & flags))
        irc_send_tagged(ic, tags, t, line); /* an echo the event did not give */
}

/* ---- MONITOR ------------------------------------------------------------------------------ */

static int monitor_find(const irc_conn *ic, const char *nick)
{
    for (int i = 0; i < ic->nmonitor; i++)
        if (irc_same_name(ic->monitor[i], nick)) return i;
    return -1;
}

bool irc_monitors(const irc_conn *ic, const char *nick)
{
    return monitor_find(ic, nick) >= 0;
}

/* 730 or 731 for a list of names, in lines that fit. */
static void mon_reply(irc_conn *ic, const char *code, const char *item, bool flush, char *buf,
                      size_t *n)
{
    size_t k = item ? strlen(item) : 0;
    if (*n && (flush || *n + k + 1 > 400)) {
        irc_num(ic, code, ":%.*s", (int)*n, buf);
        *n = 0;
    }
    if (!item) return;
    if (*n) buf[(*n)++] = ',';
    memcpy(buf + *n, item, k);
    *n += k;
}

static void monitor_status(irc_conn *ic, char **names, int count)
{
    char on[512], off[512], item[HUB_MAX_NAME * 3 + 64];
    size_t non = 0, noff = 0;
    for (int i = 0; i < count; i++) {
        irc_who w;
        if (irc_lookup(names[i], &w)) {
            snprintf(item, sizeof item, "%s!%s@%s", w.nick, w.user, w.host);
            mon_reply(ic, "730", item, false, on, &non);
        } else if (irc_nick_ok(names[i]) && irc_name_in_use(ic->g->sv, names[i], NULL)) {
            snprintf(item, sizeof item, "%s!%s@axon", names[i], names[i]);
            mon_reply(ic, "730", item, false, on, &non);
        } else {
            mon_reply(ic, "731", names[i], false, off, &noff);
        }
    }
    mon_reply(ic, "730", NULL, true, on, &non);
    mon_reply(ic, "731", NULL, true, off, &noff);
}

void irc_cmd_monitor(irc_conn *ic, int nparams, char **args)
{
    if (nparams < 1 || !args[0][0]) {
        irc_num(ic, "461", "MONITOR :Not enough parameters");
        return;
    }
    char op = args[0][0];
    if ((op == '+' || op == '-') && nparams < 2) {
        irc_num(ic, "461", "MONITOR :Not enough parameters");
        return;
    }
    if (op == '+') {
        char *added[MONITOR_MAX];
        int na = 0;
        for (char *save = NULL, *t = strtok_r(args[1], ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (!irc_nick_ok(t)) {
                irc_num(ic, "432", "%s :Erroneous nickname", t);
                continue;
            }
            if (monitor_find(ic, t) >= 0) {
                added[na++] = t;
                continue;
            }
            if (ic->nmonitor >= MONITOR_MAX) {
                irc_num(ic, "734", "%d %s :Monitor list is full.", MONITOR_MAX, t);
                break;
            }
            if (!ic->monitor && !(ic->monitor = ax_calloc(MONITOR_MAX, sizeof *ic->monitor))) break;
            snprintf(ic->monitor[ic->nmonitor++], sizeof ic->monitor[0], "%s", t);
            added[na++] = t;
        }
        monitor_status(ic, added, na);
    } else if (op == '-') {
        for (char *save = NULL, *t = strtok_r(args[1], ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            int i = monitor_find(ic, t);
            if (i < 0) continue;
            memmove(ic->monitor[i], ic->monitor[i + 1],
                    (size_t)(ic->nmonitor - i - 1) * sizeof ic->monitor[0]);
            ic->nmonitor--;
        }
    } else if (op == 'C' || op == 'c') {
        ic->nmonitor = 0;
    } else if (op == 'L' || op == 'l') {
        char buf[512];
        size_t n = 0;
        for (int i = 0; i < ic->nmonitor; i++)
            mon_reply(ic, "732", ic->monitor[i], false, buf, &n);
        mon_reply(ic, "732", NULL, true, buf, &n);
        irc_num(ic, "733", ":End of MONITOR list");
    } else if (op == 'S' || op == 's') {
        char *names[MONITOR_MAX];
        for (int i = 0; i < ic->nmonitor; i++)
            names[i] = ic->monitor[i];
        monitor_status(ic, names, ic->nmonitor);
    } else {
        irc_num(ic, "421", "MONITOR :Unknown MONITOR subcommand");
    }
}

void irc_monitor_online(gw_irc *g, const irc_conn *ic)
{
    char line[AX_IRC_MAX_LINE];
    snprintf(line, sizeof line, "%s!%s@%s", ic->nick, ic->user, ic->host);
    irc_net_monitor(g, ic->nick, line, true);
}

void irc_monitor_offline(gw_irc *g, const char *nick)
{
    irc_net_monitor(g, nick, nick, false);
}

void irc_monitor_free(irc_conn *ic)
{
    ax_free(ic->monitor);
    ic->monitor = NULL;
    ic->nmonitor = 0;
}
