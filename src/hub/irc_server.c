/* irc_server.c: the IRC gateway's server-wide commands: WHOWAS (a bounded
 * history of the nicks users left by QUIT or NICK), OPER and what an IRC
 * operator may do (KILL, WALLOPS), TIME and INFO.
 *
 * Who is an IRC operator follows the hub's conventions: OPER NAME PASSWORD
 * is checked against `irc_oper_file` (a mosquitto_passwd file, the format
 * of `password_file`: `mosquitto_passwd -c opers.txt NAME`), or, for a
 * client signed in with an admin token (axon token --admin), OPER with
 * its own name needs no password file: the hub already holds it for an
 * administrator.  An operator has user mode +o (WHO `*`, WHOIS 313,
 * LUSERS 252), may KILL IRC users and send WALLOPS. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_irc.h"

/* ---- WHOWAS ------------------------------------------------------------------------ */

typedef struct was_entry {
    char nick[HUB_MAX_NAME + 1], user[HUB_MAX_NAME + 1], host[48], real[64];
    int64_t at; /* seconds since the epoch; 0: an empty slot */
} was_entry;

static pthread_mutex_t was_lock = PTHREAD_MUTEX_INITIALIZER;
static was_entry was[WHOWAS_MAX];
static size_t was_next; /* the slot the next one takes (a ring: the oldest goes) */

void irc_whowas_add(const irc_conn *ic, const char *nick)
{
    pthread_mutex_lock(&was_lock);
    was_entry *e = &was[was_next];
    was_next = (was_next + 1) % WHOWAS_MAX;
    snprintf(e->nick, sizeof e->nick, "%s", nick);
    snprintf(e->user, sizeof e->user, "%s", ic->user);
    snprintf(e->host, sizeof e->host, "%s", ic->host);
    snprintf(e->real, sizeof e->real, "%s", ic->real);
    e->at = (int64_t)time(NULL);
    pthread_mutex_unlock(&was_lock);
}

/* Up to `max` entries for `nick`, the newest first. */
static size_t was_find(const char *nick, was_entry *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&was_lock);
    for (size_t k = 1; k <= WHOWAS_MAX && n < max; k++) {
        const was_entry *e = &was[(was_next + WHOWAS_MAX - k) % WHOWAS_MAX];
        if (e->at && irc_same_name(e->nick, nick)) out[n++] = *e;
    }
    pthread_mutex_unlock(&was_lock);
    return n;
}

/* WHOWAS nick[,nick] [count]: 314 and 312 for each entry, newest first (a
 * count <= 0: all), 406 when there is none, then 369. */
void irc_cmd_whowas(irc_conn *ic, int nparams, char **args)
{
    if (nparams < 1 || !args[0][0]) {
        irc_num(ic, "431", ":No nickname given");
        return;
    }
    long count = nparams > 1 ? atol(args[1]) : 0;
    size_t max = count > 0 && count < WHOWAS_MAX ? (size_t)count : WHOWAS_MAX;
    static __thread was_entry found[WHOWAS_MAX];
    for (char *save = NULL, *nick = strtok_r(args[0], ",", &save); nick;
         nick = strtok_r(NULL, ",", &save)) {
        size_t n = was_find(nick, found, max);
        for (size_t i = 0; i < n; i++) {
            char when[64];
            time_t t = (time_t)found[i].at;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%a %b %d %H:%M:%S %Y UTC", &tm);
            irc_num(ic, "314", "%s %s %s * :%s", found[i].nick, found[i].user, found[i].host,
                    found[i].real);
            irc_num(ic, "312", "%s %s :%s", found[i].nick, irc_server(ic), when);
        }
        if (!n) irc_num(ic, "406", "%s :There was no such nickname", nick);
        irc_num(ic, "369", "%s :End of WHOWAS", nick);
    }
}

/* ---- OPER, KILL, WALLOPS ----------------------------------------------------------- */

void irc_cmd_oper(irc_conn *ic, int nparams, char **args)
{
    if (nparams < 2) {
        irc_num(ic, "461", "OPER :Not enough parameters");
        return;
    }
    serve *sv = ic->g->sv;
    ax_addr peer, *from = ax_conn_peer(ic->c, &peer) == 0 ? &peer : NULL;
    /* an administrator of the hub (admin token) is one by its own name */
    bool ok = ic->id && ic->id->admin && strcmp(args[0], ic->id->name) == 0;
    if (!ok && !serve_limit_login(sv, from)) { /* login_fail_rate, as for other logins */
        irc_num(ic, "464", ":Password incorrect (too many failed logins: try again later)");
        return;
    }
    if (!ok) ok = ic->g->opers && auth_passwd_check(ic->g->opers, args[0], args[1]);
    if (!ok) {
        serve_limit_login_failed(sv, from);
        serve_refused(sv, "irc", from, "OPER");
        irc_num(ic, "464", ":Password incorrect");
        return;
    }
    if (!ic->oper) {
        ic->oper = true;
        irc_nick_claim(ic, ic->nick); /* WHO, WHOIS and LUSERS show it */
        irc_sendf(ic, ":%s MODE %s :+o", ic->nick, ic->nick);
    }
    irc_num(ic, "381", ":You are now an IRC operator");
}

static bool need_oper(irc_conn *ic)
{
    if (ic->oper) return true;
    irc_num(ic, "481", ":Permission Denied- You're not an IRC operator");
    return false;
}

/* KILL nick [:reason]: an IRC user of any thread is disconnected. */
void irc_cmd_kill(irc_conn *ic, int nparams, char **args)
{
    if (nparams < 1) {
        irc_num(ic, "461", "KILL :Not enough parameters");
        return;
    }
    if (!need_oper(ic)) return;
    irc_who w;
    if (!irc_lookup(args[0], &w)) {
        irc_num(ic, "401", "%s :No such nick (KILL reaches IRC users only)", args[0]);
        return;
    }
    char why[400];
    snprintf(why, sizeof why, "Killed (%s (%s))", ic->nick, nparams > 1 ? args[1] : "no reason");
    irc_net_kill(ic->g, args[0], why);
}

/* WALLOPS :text to the users with +w (and the sender). */
void irc_cmd_wallops(irc_conn *ic, int nparams, char **args)
{
    if (nparams < 1) {
        irc_num(ic, "461", "WALLOPS :Not enough parameters");
        return;
    }
    if (!need_oper(ic)) return;
    char line[AX_IRC_MAX_LINE];
    snprintf(line, sizeof line, ":%s!%s@%s WALLOPS :%s", ic->nick, ic->user, ic->host, args[0]);
    if (!ic->wallops) irc_sendf(ic, "%s", line);
    irc_net_wallops(ic->g, line);
}

/* ---- TIME -------------------------------------------------------------------------- */

void irc_cmd_time(irc_conn *ic)
{
    char when[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%A %B %d %Y -- %H:%M:%S +00:00", &tm);
    irc_num(ic, "391", "%s %lld 0 :%s", irc_server(ic), (long long)t, when);
}

/* ---- INFO ---------------------------------------------------------------------------- */

void irc_cmd_info(irc_conn *ic)
{
    irc_num(ic, "371", ":axon-" AXON_VERSION ": a real-time hub; IRC is one of its gateways");
    irc_num(ic, "371", ":channels are the hub's chat rooms (#lobby is chat/lobby), shared with");
    irc_num(ic, "371", ":WebSocket, SSE, MQTT, the line chat and the HTTP API");
    irc_num(ic, "374", ":End of INFO list");
}
