/* irc_query.c: what an IRC client asks of the server rather than says:
 * CHATHISTORY (from the hub's history), LIST and WHOIS.  Moved out of
 * gw_irc.c as is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gw_irc.h"

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
    if (strncmp(ref, "timestamp=", 10) == 0) return (*ms = irc_parse_iso(ref + 10)) >= 0;
    return strcmp(ref, "*") == 0;
}

void irc_chathistory(irc_conn *ic, const ax_irc_msg *m, char **args)
{
    if (m->nparams < 3) {
        irc_srv_sendf(ic, "FAIL CHATHISTORY NEED_MORE_PARAMS :Missing parameters");
        return;
    }
    const char *sub = args[0], *target = args[1];
    if (strcasecmp(sub, "TARGETS") == 0) {
        irc_srv_sendf(ic, "BATCH +t draft/chathistory-targets");
        irc_srv_sendf(ic, "BATCH -t");
        return;
    }
    char room[ROOM_MAX + 1], topic[ROOM_MAX + 8], chan[CHAN_MAX + 2];
    if (!irc_chan_room(target, room, sizeof room)) {
        irc_srv_sendf(ic, "FAIL CHATHISTORY INVALID_TARGET %s %s :Only channels have history here",
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
        irc_srv_sendf(ic, "FAIL CHATHISTORY INVALID_PARAMS %s :Unknown subcommand", sub);
        return;
    }
    if (!ok) {
        irc_srv_sendf(ic, "FAIL CHATHISTORY INVALID_PARAMS %s :Bad message reference", sub);
        return;
    }
    bool allowed = irc_may(ic, auth_may_read, topic);
    if (allowed) hub_history(ic->g->sv->hub, topic, 0, 1000, hist_add, &c, NULL);
    static unsigned batch_no;
    char ref[16];
    snprintf(ref, sizeof ref, "h%u", __atomic_add_fetch(&batch_no, 1, __ATOMIC_RELAXED));
    if (ic->caps & CAP_BATCH) irc_srv_sendf(ic, "BATCH +%s chathistory %s", ref, chan);
    for (size_t i = 0; i < c.n; i++) {
        hub_msg *hm = c.ring[(c.start + i) % c.limit];
        irc_deliver(ic, hm, chan, ref);
        hub_msg_unref(hm);
    }
    if (ic->caps & CAP_BATCH) irc_srv_sendf(ic, "BATCH -%s", ref);
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
    if (!room || !irc_room_ok(room) || !irc_may(c->ic, auth_may_read, topic)) return;
    char chan[CHAN_MAX + 2];
    snprintf(chan, sizeof chan, "#%s", room);
    if (irc_chan_secret(room) && !irc_on_chan(c->ic, chan)) return; /* +s */
    chan_topic t;
    bool has = irc_topic_get(room, &t);
    irc_num(c->ic, "322", "#%s %zu :%s", room, subs, has ? t.text : "");
}

/* LIST: the rooms under chat/ with their member counts (321/322/323). */
void irc_list(irc_conn *ic)
{
    list_ctx lc = {ic};
    irc_num(ic, "321", "Channel :Users  Name");
    char next[HUB_MAX_TOPIC + 1] = "chat/";
    do {
        char after[HUB_MAX_TOPIC + 1];
        snprintf(after, sizeof after, "%s", next);
        if (!hub_topics(ic->g->sv->hub, after, 500, list_room, &lc, next)) break;
    } while (next[0] && strncmp(next, "chat/", 5) == 0);
    irc_num(ic, "323", ":End of /LIST");
}

void irc_whois(irc_conn *ic, const char *nick)
{
    if (!irc_nick_ok(nick) || !irc_name_in_use(ic->g->sv, nick, NULL)) {
        irc_num(ic, "401", "%s :No such nick/channel", nick);
        irc_num(ic, "318", "%s :End of /WHOIS list", nick);
        return;
    }
    irc_who w;
    irc_who_of(nick, &w);
    irc_num(ic, "311", "%s %s %s * :%s", nick, w.user, w.host, w.real);
    irc_num(ic, "312", "%s %s :axon hub", nick, irc_server(ic));
    if (w.oper) irc_num(ic, "313", "%s :is an IRC operator", nick);
    if (w.away[0]) irc_num(ic, "301", "%s :%s", nick, w.away);
    if (w.account[0]) irc_num(ic, "330", "%s %s :is logged in as", nick, w.account);
    irc_num(ic, "318", "%s :End of /WHOIS list", nick);
}

/* ---- WHO with a mask ------------------------------------------------------------------ */

#define WHO_MASK_MAX 200 /* replies to one WHO mask */

typedef struct mask_ctx {
    irc_conn *ic;
    const char *mask;
    size_t n;
    char (*names)[HUB_MAX_NAME + 1];
} mask_ctx;

static void mask_name(const char *name, void *ud)
{
    mask_ctx *c = ud;
    irc_who w;
    if (c->n >= WHO_MASK_MAX || !ax_irc_mask_match(c->mask, strlen(c->mask), name, strlen(name)))
        return;
    for (size_t i = 0; i < c->n; i++)
        if (irc_same_name(c->names[i], name)) return;
    if (irc_lookup(name, &w)) return; /* IRC users are listed (or hidden) already */
    snprintf(c->names[c->n++], sizeof c->names[0], "%s", name);
}

static void mask_room(const char *topic, uint64_t last, size_t subs, void *ud)
{
    mask_ctx *c = ud;
    (void)last;
    if (subs && irc_may(c->ic, auth_may_read, topic))
        hub_presence(c->ic->g->sv->hub, topic, mask_name, c);
}

void irc_who_mask(irc_conn *ic, const char *mask)
{
    static __thread char names[WHO_MASK_MAX][HUB_MAX_NAME + 1];
    mask_ctx c = {ic, mask, 0, names};
    size_t n = irc_nicks_match(mask, names, WHO_MASK_MAX);
    /* a +i user shows to itself and to those who share a channel with it */
    for (size_t i = 0; i < n; i++) {
        irc_who w;
        if (irc_lookup(names[i], &w) && w.invisible && !irc_same_name(names[i], ic->nick) &&
            !irc_chan_shares(ic, names[i]))
            continue;
        memmove(names[c.n++], names[i], sizeof names[0]);
    }
    char next[HUB_MAX_TOPIC + 1] = "chat/";
    do {
        char after[HUB_MAX_TOPIC + 1];
        snprintf(after, sizeof after, "%s", next);
        if (!hub_topics(ic->g->sv->hub, after, 500, mask_room, &c, next)) break;
    } while (next[0] && strncmp(next, "chat/", 5) == 0 && c.n < WHO_MASK_MAX);
    for (size_t i = 0; i < c.n; i++)
        irc_who_reply(ic, names[i]);
}
