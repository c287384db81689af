/* irc_reg.c: an IRC connection's registration: CAP LS 302 / REQ / END,
 * PASS, NICK and USER, SASL PLAIN (checked by the hub's auth), and the
 * welcome burst (001-005, LUSERS, MOTD).  Moved out of gw_irc.c as is. */
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
    {"extended-monitor", NULL, CAP_EXTENDED_MONITOR},
};
#define NCAPS (sizeof CAPS / sizeof *CAPS)

/* ---- registration ------------------------------------------------------------------- */

void irc_isupport(irc_conn *ic)
{
    irc_num(ic, "005",
            "AWAYLEN=%d CASEMAPPING=ascii CHANLIMIT=#:%d CHANMODES=" IRC_CHANMODES
            " CHANNELLEN=%d CHANTYPES=# CHATHISTORY=%d EXCEPTS=e INVEX=I KICKLEN=%d "
            "MAXLIST=b:%d,eI:%d MAXTARGETS=4 :are supported by this server",
            AWAY_MAX, MAX_CHANS, CHAN_MAX, HISTORY_MAX, TOPIC_MAX, BANS_MAX, IRC_EXCEPTS_MAX);
    irc_num(ic, "005",
            "MODES=%d MONITOR=%d NETWORK=" NETWORK " NICKLEN=%d PREFIX=" IRC_PREFIX
            " STATUSMSG=@+ TOPICLEN=%d USERLEN=%d UTF8ONLY :are supported by this server",
            MODES_MAX, MONITOR_MAX, NICK_MAX, TOPIC_MAX, NICK_MAX);
}

typedef struct chans_ctx {
    size_t n;
} chans_ctx;

static void count_room(const char *topic, uint64_t last, size_t subs, void *ud)
{
    chans_ctx *c = ud;
    const char *room = serve_room_of(topic);
    (void)last;
    if (subs && room && irc_room_ok(room)) c->n++;
}

/* Rooms under chat/ with someone in them: the channels that exist. */
static size_t channels(serve *sv)
{
    chans_ctx c = {0};
    char next[HUB_MAX_TOPIC + 1] = "chat/";
    do {
        char after[HUB_MAX_TOPIC + 1];
        snprintf(after, sizeof after, "%s", next);
        if (!hub_topics(sv->hub, after, 500, count_room, &c, next)) break;
    } while (next[0] && strncmp(next, "chat/", 5) == 0);
    return c.n;
}

/* LUSERS: the users are the registered IRC users (every thread) and the
 * clients of the other gateways (one server: local and global are the
 * same); unregistered IRC connections are 253. */
void irc_lusers(irc_conn *ic)
{
    static long most; /* the most users seen at once */
    serve *sv = ic->g->sv;
    int irc, invisible, opers, unknown = irc_unregistered();
    irc_net_counts(&irc, &invisible, &opers);
    long users = irc;
    for (int i = 0; i < sv->ngw; i++)
        if (i != GW_IRC) users += (long)__atomic_load_n(&sv->gw[i].conns, __ATOMIC_RELAXED);
    long max = __atomic_load_n(&most, __ATOMIC_RELAXED);
    while (users > max && !__atomic_compare_exchange_n(&most, &max, users, false, __ATOMIC_RELAXED,
                                                       __ATOMIC_RELAXED)) {
    }
    if (users > max) max = users;
    size_t chans = channels(sv);
    irc_num(ic, "251", ":There are %ld users and %d invisible on 1 servers", users - invisible,
            invisible);
    if (opers) irc_num(ic, "252", "%d :operator(s) online", opers);
    if (unknown > 0) irc_num(ic, "253", "%d :unknown connection(s)", unknown);
    if (chans) irc_num(ic, "254", "%zu :channels formed", chans);
    irc_num(ic, "255", ":I have %ld clients and 0 servers", users);
    irc_num(ic, "265", "%ld %ld :Current local users %ld, max %ld", users, max, users, max);
    irc_num(ic, "266", "%ld %ld :Current global users %ld, max %ld", users, max, users, max);
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
    irc_num(ic, "002", ":Your host is %s, running version axon-" AXON_VERSION, irc_server(ic));
    irc_num(ic, "003", ":This server was created %s", made);
    irc_num(ic, "004", "%s axon-" AXON_VERSION " iow Ibeiklmnostv Ibeklov", irc_server(ic));
    irc_isupport(ic);
    irc_lusers(ic);
    irc_num(ic, "422", ":MOTD File is missing");
}

/* The session's direct messages: user/NICK/inbox. */
void irc_inbox(irc_conn *ic, const char *name, bool on)
{
    char topic[AUTH_MAX_NAME + 16];
    if (!auth_name_valid(name)) return;
    snprintf(topic, sizeof topic, "user/%s/inbox", name);
    if (!on)
        hub_unsubscribe(ic->sub, topic);
    else if (irc_may(ic, auth_may_subscribe, topic))
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

void irc_try_register(irc_conn *ic)
{
    if (ic->registered || ic->cap_wait || !ic->nick[0] || !ic->have_user || ic->quit) return;
    serve *sv = ic->g->sv;
    if (sv->auth && !ic->id) {
        if (ic->pass[0]) {
            ic->id = pass_login(ic);
            if (!ic->id) {
                refused(ic, NULL);
                irc_num(ic, "464", ":Password incorrect");
                irc_close_with(ic, "Bad password");
                return;
            }
        } else if (!(ic->id = serve_anonymous(sv))) {
            refused(ic, "no credentials");
            irc_num(ic, "464", ":Password required: sign in with SASL PLAIN or PASS");
            irc_close_with(ic, "Password required");
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
        if (ic->id && ic->id->name[0]) irc_close_with(ic, "Your name is in use");
        return;
    }
    ic->sub = hub_sub_new(sv->hub, &irc_sub_ops, ic, ic->nick);
    if (!ic->sub) {
        irc_close_with(ic, "Out of memory");
        return;
    }
    if (ic->id) hub_sub_set_identity(ic->sub, ic->id);
    irc_nick_claim(ic, ic->nick);
    ic->registered = true;
    irc_unregistered_set(ic, false);
    irc_inbox(ic, ic->nick, true);
    welcome(ic);
    irc_monitor_online(ic->g, ic);
    irc_timer_arm(ic, PING_S(ic) * 1000ull);
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
    irc_num(ic, "900", "%s!%s@%s %s :You are now logged in as %s", irc_me(ic),
            ic->user[0] ? ic->user : "*", ic->host, id->name, id->name);
    irc_num(ic, "903", ":SASL authentication successful");
}

void irc_authenticate(irc_conn *ic, const ax_irc_msg *m, const char *arg)
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
    irc_srv_sendf(ic, "CAP %s LS :%s", irc_me(ic), list);
}

void irc_cap(irc_conn *ic, const ax_irc_msg *m, char **args)
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
        irc_srv_sendf(ic, "CAP %s LIST :%s", irc_me(ic), list);
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
        irc_srv_sendf(ic, "CAP %s %s :%s", irc_me(ic), ok ? "ACK" : "NAK", args[1]);
    } else if (strcasecmp(sub, "END") == 0) {
        ic->cap_wait = false;
        irc_try_register(ic);
    } else {
        irc_num(ic, "410", "%s :Invalid CAP command", m->nparams ? args[0] : "*");
    }
}
