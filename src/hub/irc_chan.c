/* irc_chan.c: the IRC gateway's channels beyond the hub's rooms: modes
 * (+n +t +m +i +k +l +b, +o +v), KICK and INVITE, and the delivery of
 * channel events to the IRC users of every thread.
 *
 * A channel's state lives here while it has IRC members or a mode other
 * than the default `+nt` (a ban outlives its members, as a room does);
 * one lock guards it for every thread.  The hub's own lock is never taken
 * while this one is held (the hub calls back into us under its lock:
 * NAMES asks for prefixes from inside hub_presence()).
 *
 * Who is an operator follows the hub's permissions: an identity with the
 * `op` permission on chat/ROOM (ACL `topic op chat/ROOM`, a token's
 * "op" list, or an admin) is made operator when it joins and may always
 * take +o back.  Without authentication nobody's name is proven, so the
 * classic rule holds: the first IRC user on an empty channel is its
 * operator.  Operators may give +o and +v to others on the channel. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "gw_irc.h"

enum { CH_N = 1, CH_T = 2, CH_M = 4, CH_I = 8, CH_S = 16 };
#define CH_DEFAULT (CH_N | CH_T)
#define INVITES_MAX 16
#define EXCEPTS_MAX IRC_EXCEPTS_MAX
#define KICKS_MAX 8
#define KICK_QUIET_S 10 /* a kicked user's leave is not shown as PART for this long */

typedef struct chan_member {
    char nick[HUB_MAX_NAME + 1];
    uint8_t flags; /* CM_* */
} chan_member;

typedef struct chan_ban {
    char mask[MASK_MAX + 1];
    char by[HUB_MAX_NAME + 1];
    int64_t at;
} chan_ban;

/* A nick whose leave (kicked) or join (renamed) event is not shown. */
typedef struct chan_mark {
    char nick[HUB_MAX_NAME + 1];
    int64_t at;
} chan_mark;

typedef struct irc_chan {
    struct irc_chan *next;
    char room[ROOM_MAX + 1];
    int modes; /* CH_* */
    char key[KEY_MAX + 1];
    long limit;
    int64_t created;
    int nbans, nmem, capmem, ninv, nexc, ninvex;
    chan_ban bans[BANS_MAX];
    chan_ban excs[EXCEPTS_MAX];                      /* +e: ban exceptions */
    chan_ban invex[EXCEPTS_MAX];                     /* +I: invite exceptions */
    char invited[INVITES_MAX][HUB_MAX_NAME + 1];     /* a ring: the newest replace the oldest */
    chan_mark kicked[KICKS_MAX], renamed[KICKS_MAX]; /* renamed: new nicks (their JOIN is a NICK) */
    chan_member *mem;
} irc_chan;

static pthread_mutex_t chan_lock = PTHREAD_MUTEX_INITIALIZER;
static irc_chan *chans;

static irc_chan *find(const char *room, bool create)
{
    irc_chan *c = chans;
    while (c && strcmp(c->room, room) != 0)
        c = c->next;
    if (!c && create && (c = ax_calloc(1, sizeof *c))) {
        snprintf(c->room, sizeof c->room, "%s", room);
        c->modes = CH_DEFAULT;
        c->created = (int64_t)time(NULL);
        c->next = chans;
        chans = c;
    }
    return c;
}

static bool quiet_pending(const irc_chan *c)
{
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < KICKS_MAX; i++)
        if ((c->kicked[i].nick[0] && now - c->kicked[i].at <= KICK_QUIET_S) ||
            (c->renamed[i].nick[0] && now - c->renamed[i].at <= KICK_QUIET_S))
            return true;
    return false;
}

/* Forget a channel that holds nothing but defaults (and no KICK or QUIT
 * whose leave event may still be on its way to another thread). */
static void maybe_free(irc_chan *c)
{
    if (c->nmem || c->modes != CH_DEFAULT || c->key[0] || c->limit || c->nbans || c->ninv ||
        c->nexc || c->ninvex || quiet_pending(c))
        return;
    for (irc_chan **p = &chans; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            ax_free(c->mem);
            ax_free(c);
            return;
        }
}

static chan_member *member(irc_chan *c, const char *nick)
{
    for (int i = 0; c && i < c->nmem; i++)
        if (irc_same_name(c->mem[i].nick, nick)) return &c->mem[i];
    return NULL;
}

static void member_del(irc_chan *c, const char *nick)
{
    chan_member *m = member(c, nick);
    if (!m) return;
    *m = c->mem[--c->nmem];
}

/* Its leave is not a PART: it had a KICK, PART or QUIT line (`ring`:
 * c->kicked; c->renamed: its join is not a JOIN, it had a NICK line). */
static void mark_in(chan_mark *ring, const char *nick)
{
    int slot = 0;
    for (int i = 1; i < KICKS_MAX; i++)
        if (ring[i].at < ring[slot].at) slot = i;
    snprintf(ring[slot].nick, sizeof ring[slot].nick, "%s", nick);
    ring[slot].at = (int64_t)time(NULL);
}

static void mark_quiet(irc_chan *c, const char *nick)
{
    mark_in(c->kicked, nick);
}

static bool marked(const chan_mark *ring, const char *nick)
{
    int64_t now = (int64_t)time(NULL);
    for (int i = 0; i < KICKS_MAX; i++)
        if (irc_same_name(ring[i].nick, nick) && now - ring[i].at <= KICK_QUIET_S) return true;
    return false;
}

static void unmark(chan_mark *ring, const char *nick)
{
    for (int i = 0; i < KICKS_MAX; i++)
        if (irc_same_name(ring[i].nick, nick)) ring[i].nick[0] = '\0';
}

static bool listed(const chan_ban *list, int n, const char *mask)
{
    for (int i = 0; i < n; i++)
        if (ax_irc_mask_match(list[i].mask, strlen(list[i].mask), mask, strlen(mask))) return true;
    return false;
}

/* +b, unless +e lets it through. */
static bool banned(const irc_chan *c, const char *mask)
{
    return listed(c->bans, c->nbans, mask) && !listed(c->excs, c->nexc, mask);
}

static bool invited(const irc_chan *c, const char *nick)
{
    for (int i = 0; i < c->ninv && i < INVITES_MAX; i++)
        if (irc_same_name(c->invited[i], nick)) return true;
    return false;
}

static void uninvite(irc_chan *c, const char *nick)
{
    int n = c->ninv < INVITES_MAX ? c->ninv : INVITES_MAX;
    for (int i = 0; i < n; i++)
        if (irc_same_name(c->invited[i], nick)) c->invited[i][0] = '\0';
    bool any = false;
    for (int i = 0; i < n; i++)
        any |= c->invited[i][0] != '\0';
    if (!any) c->ninv = 0;
}

static void source_of(const irc_conn *ic, char *out, size_t cap)
{
    snprintf(out, cap, "%s!%s@%s", ic->nick, ic->user, ic->host);
}

static void topic_of(const char *room, char *out, size_t cap)
{
    snprintf(out, cap, "chat/%s", room);
}

/* Has `ic` the room-operator permission (auth.h, auth_may_op())? */
static bool op_permission(const irc_conn *ic, const char *room)
{
    char topic[ROOM_MAX + 8];
    topic_of(room, topic, sizeof topic);
    return ic->id && auth_may_op(ic->id, topic);
}

typedef struct count_ctx {
    size_t n;
} count_ctx;

static void count_one(const char *name, void *ud)
{
    (void)name;
    ((count_ctx *)ud)->n++;
}

bool irc_chan_exists(irc_conn *ic, const char *room)
{
    char topic[ROOM_MAX + 8];
    pthread_mutex_lock(&chan_lock);
    bool found = find(room, false) != NULL;
    pthread_mutex_unlock(&chan_lock);
    if (found) return true;
    topic_of(room, topic, sizeof topic);
    count_ctx cc = {0};
    hub_presence(ic->g->sv->hub, topic, count_one, &cc);
    return cc.n > 0;
}

/* ---- joining, leaving, speaking --------------------------------------------------- */

int irc_chan_may_join(irc_conn *ic, const char *room, const char *key)
{
    if (op_permission(ic, room)) return 0; /* an operator always gets in */
    char topic[ROOM_MAX + 8], mask[HUB_MAX_NAME * 2 + 64];
    topic_of(room, topic, sizeof topic);
    count_ctx cc = {0};
    hub_presence(ic->g->sv->hub, topic, count_one, &cc); /* before our lock (see the top) */
    source_of(ic, mask, sizeof mask);
    int rc = 0;
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    if (c) {
        bool inv = invited(c, ic->nick);
        if ((c->modes & CH_I) && !inv && !listed(c->invex, c->ninvex, mask))
            rc = 473;
        else if (banned(c, mask) && !inv)
            rc = 474;
        else if (c->key[0] && (!key || strcmp(key, c->key) != 0))
            rc = 475;
        else if (c->limit && (long)cc.n >= c->limit)
            rc = 471;
    }
    pthread_mutex_unlock(&chan_lock);
    return rc;
}

void irc_chan_joined(irc_conn *ic, const char *room)
{
    bool perm = op_permission(ic, room), auto_op = false;
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, true);
    if (c && !member(c, ic->nick)) {
        if (c->nmem == c->capmem) {
            int cap = c->capmem ? c->capmem * 2 : 4;
            chan_member *m = ax_realloc(c->mem, (size_t)cap * sizeof *m);
            if (m) c->mem = m, c->capmem = cap;
        }
        if (c->nmem < c->capmem) {
            chan_member *m = &c->mem[c->nmem++];
            snprintf(m->nick, sizeof m->nick, "%s", ic->nick);
            /* without authentication: the classic first-comer rule */
            m->flags = (ic->id ? perm : c->nmem == 1) ? CM_OP : 0;
            auto_op = perm && c->nmem > 1;
        }
        uninvite(c, ic->nick);
        unmark(c->kicked, ic->nick);
    }
    pthread_mutex_unlock(&chan_lock);
    if (auto_op) { /* tell those already there, as a services bot would */
        char line[256];
        snprintf(line, sizeof line, ":%s MODE #%s +o %s", irc_server(ic), room, ic->nick);
        irc_net_chan(ic->g, room, line, 0, NULL);
    }
}

void irc_chan_left(const char *room, const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    if (c) {
        member_del(c, nick);
        maybe_free(c);
    }
    pthread_mutex_unlock(&chan_lock);
}

void irc_chan_left_all(const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    for (irc_chan *c = chans, *next; c; c = next) {
        next = c->next;
        member_del(c, nick);
        maybe_free(c);
    }
    pthread_mutex_unlock(&chan_lock);
}

void irc_chan_quiet_all(const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    for (irc_chan *c = chans; c; c = c->next)
        if (member(c, nick)) mark_quiet(c, nick);
    pthread_mutex_unlock(&chan_lock);
}

void irc_chan_renaming(const char *old, const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    for (irc_chan *c = chans; c; c = c->next)
        if (member(c, old)) {
            mark_quiet(c, old);
            mark_in(c->renamed, nick);
        }
    pthread_mutex_unlock(&chan_lock);
}

void irc_chan_parting(const char *room, const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    if (c) {
        mark_quiet(c, nick);
        unmark(c->renamed, nick); /* a JOIN after this PART is one */
    }
    pthread_mutex_unlock(&chan_lock);
}

bool irc_chan_renamed_join(const char *room, const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    bool found = c && marked(c->renamed, nick);
    pthread_mutex_unlock(&chan_lock);
    return found;
}

void irc_chan_renamed(const char *old, const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    for (irc_chan *c = chans; c; c = c->next) {
        chan_member *m = member(c, old);
        if (m) snprintf(m->nick, sizeof m->nick, "%s", nick);
    }
    pthread_mutex_unlock(&chan_lock);
}

int irc_chan_flags(const char *room, const char *nick, char *prefix, bool multi)
{
    pthread_mutex_lock(&chan_lock);
    chan_member *m = member(find(room, false), nick);
    int f = m ? m->flags : 0;
    pthread_mutex_unlock(&chan_lock);
    if (prefix) {
        size_t o = 0;
        if (f & CM_OP) prefix[o++] = '@';
        if ((f & CM_VOICE) && (multi || !o)) prefix[o++] = '+';
        prefix[o] = '\0';
    }
    return f;
}

int irc_chan_may_speak(irc_conn *ic, const char *room)
{
    char chan[CHAN_MAX + 2], mask[HUB_MAX_NAME * 2 + 64];
    snprintf(chan, sizeof chan, "#%s", room);
    source_of(ic, mask, sizeof mask);
    bool on = irc_on_chan(ic, chan);
    int rc = 0;
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    int modes = c ? c->modes : CH_DEFAULT;
    chan_member *m = member(c, ic->nick);
    if (m && (m->flags & (CM_OP | CM_VOICE)))
        rc = 0;
    else if ((modes & CH_N) && !on)
        rc = 404;
    else if ((modes & CH_M) || (c && banned(c, mask)))
        rc = 404;
    pthread_mutex_unlock(&chan_lock);
    return rc;
}

bool irc_chan_may_topic(irc_conn *ic, const char *chan, const char *room)
{
    if (!irc_on_chan(ic, chan) && !op_permission(ic, room)) {
        irc_num(ic, "442", "%s :You're not on that channel", chan);
        return false;
    }
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    chan_member *m = member(c, ic->nick);
    bool ok = !((c ? c->modes : CH_DEFAULT) & CH_T) || (m && (m->flags & CM_OP));
    pthread_mutex_unlock(&chan_lock);
    if (!ok) irc_num(ic, "482", "%s :You're not channel operator", chan);
    return ok;
}

bool irc_chan_kicked(const char *room, const char *nick)
{
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    bool found = c && marked(c->kicked, nick);
    pthread_mutex_unlock(&chan_lock);
    return found;
}

bool irc_chan_secret(const char *room)
{
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    bool s = c && (c->modes & CH_S);
    pthread_mutex_unlock(&chan_lock);
    return s;
}

int64_t irc_chan_created(const char *room, int64_t fallback)
{
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    int64_t t = c ? c->created : fallback;
    pthread_mutex_unlock(&chan_lock);
    return t;
}

/* ---- MODE -------------------------------------------------------------------------- */

/* "bob" -> "bob!*@*", "*@host" -> "*!*@host", "bob!u" -> "bob!u@*". */
static bool ban_mask(const char *in, char *out, size_t cap)
{
    if (!in[0] || strchr(in, ' ') || strlen(in) > MASK_MAX - 8) return false;
    const char *bang = strchr(in, '!'), *at = strchr(in, '@');
    if (bang && at && at > bang)
        snprintf(out, cap, "%s", in);
    else if (bang)
        snprintf(out, cap, "%s@*", in);
    else if (at)
        snprintf(out, cap, "*!%s", in);
    else
        snprintf(out, cap, "%s!*@*", in);
    return strlen(out) <= MASK_MAX;
}

/* "+ntk key" (the key shown to members only). */
static void modes_text(const irc_chan *c, int modes, bool show_key, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "+%s%s%s%s%s%s%s", modes & CH_I ? "i" : "",
                                c && c->key[0] ? "k" : "", c && c->limit ? "l" : "",
                                modes & CH_M ? "m" : "", modes & CH_N ? "n" : "",
                                modes & CH_S ? "s" : "", modes & CH_T ? "t" : "");
    if (c && c->key[0] && o < cap)
        o += (size_t)snprintf(out + o, cap - o, " %s", show_key ? c->key : "*");
    if (c && c->limit && o < cap) snprintf(out + o, cap - o, " %ld", c->limit);
}

static void mode_query(irc_conn *ic, const char *chan, const char *room)
{
    char text[KEY_MAX + 64];
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    modes_text(c, c ? c->modes : CH_DEFAULT, irc_on_chan(ic, chan), text, sizeof text);
    int64_t created = c ? c->created : ic->g->sv->started_ms / 1000;
    pthread_mutex_unlock(&chan_lock);
    irc_num(ic, "324", "%s %s", chan, text);
    irc_num(ic, "329", "%s %lld", chan, (long long)created);
}

/* The list of +b, +e or +I: 367/368, 348/349, 346/347. */
static void mask_list(irc_conn *ic, const char *chan, const char *room, char which)
{
    const char *item = which == 'b' ? "367" : which == 'e' ? "348" : "346";
    const char *end = which == 'b' ? "368" : which == 'e' ? "349" : "347";
    const char *what = which == 'b' ? "ban" : which == 'e' ? "exception" : "invite";
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    const chan_ban *list = !c ? NULL : which == 'b' ? c->bans : which == 'e' ? c->excs : c->invex;
    int n = !c ? 0 : which == 'b' ? c->nbans : which == 'e' ? c->nexc : c->ninvex;
    for (int i = 0; i < n; i++)
        irc_num(ic, item, "%s %s %s %lld", chan, list[i].mask, list[i].by, (long long)list[i].at);
    pthread_mutex_unlock(&chan_lock);
    irc_num(ic, end, "%s :End of channel %s list", chan, what);
}

/* The changes a MODE command made, as the line that announces them. */
typedef struct mode_out {
    char flags[64], params[400];
    size_t nf, np;
    char sign;
    int nparam;
} mode_out;

static void out_add(mode_out *o, bool plus, char ch, const char *param)
{
    if (o->nf + 3 >= sizeof o->flags) return;
    char sign = plus ? '+' : '-';
    if (o->sign != sign) o->flags[o->nf++] = o->sign = sign;
    o->flags[o->nf++] = ch;
    o->flags[o->nf] = '\0';
    if (param && o->np + strlen(param) + 2 < sizeof o->params)
        o->np += (size_t)snprintf(o->params + o->np, sizeof o->params - o->np, " %s", param);
}

typedef struct mode_req {
    irc_conn *ic;
    const char *chan, *room;
    bool op, refused;
    char lists[4];                            /* the lists asked for ("b", "e", "I") */
    char absent[MODES_MAX][HUB_MAX_NAME + 1]; /* +o/+v targets not on the channel */
    int nabsent;
} mode_req;

static void need_op(mode_req *r)
{
    if (!r->refused) irc_num(r->ic, "482", "%s :You're not channel operator", r->chan);
    r->refused = true;
}

/* One mode letter, under chan_lock; `param` NULL when none was given. */
static bool mode_one(mode_req *r, irc_chan *c, bool plus, char ch, const char *param, mode_out *o)
{
    static const char simple[] = "imnst";
    static const int bits[] = {CH_I, CH_M, CH_N, CH_S, CH_T};
    const char *s = strchr(simple, ch);
    if (s && ch) {
        if (!r->op) return need_op(r), false;
        int bit = bits[s - simple];
        if (((c->modes & bit) != 0) == plus) return false;
        c->modes = plus ? c->modes | bit : c->modes & ~bit;
        out_add(o, plus, ch, NULL);
        return false;
    }
    switch (ch) {
    case 'b':
    case 'e':
    case 'I': {
        char mask[MASK_MAX + 16];
        if (!param) {
            if (!strchr(r->lists, ch)) strncat(r->lists, &ch, 1);
            return false;
        }
        if (!r->op) return need_op(r), true;
        if (!ban_mask(param, mask, sizeof mask)) return true;
        chan_ban *list = ch == 'b' ? c->bans : ch == 'e' ? c->excs : c->invex;
        int *n = ch == 'b' ? &c->nbans : ch == 'e' ? &c->nexc : &c->ninvex;
        int max = ch == 'b' ? BANS_MAX : EXCEPTS_MAX;
        int i = 0;
        while (i < *n && !ax_irc_casecmp(list[i].mask, strlen(list[i].mask), mask, strlen(mask)))
            i++;
        if (plus && i == *n) {
            if (*n == max) {
                irc_num(r->ic, "478", "%s %s %c :Channel list is full", r->chan, mask, ch);
                return true;
            }
            chan_ban *b = &list[(*n)++];
            snprintf(b->mask, sizeof b->mask, "%s", mask);
            snprintf(b->by, sizeof b->by, "%s", r->ic->nick);
            b->at = (int64_t)time(NULL);
            out_add(o, plus, ch, mask);
        } else if (!plus && i < *n) {
            out_add(o, plus, ch, list[i].mask);
            list[i] = list[--*n];
        }
        return true;
    }
    case 'k':
        if (!r->op) return need_op(r), param != NULL;
        if (plus) {
            if (!param) return false;
            if (!param[0] || strlen(param) > KEY_MAX || strpbrk(param, ", :")) {
                irc_num(r->ic, "525", "%s :Key is not well-formed", r->chan);
                return true;
            }
            snprintf(c->key, sizeof c->key, "%s", param);
            out_add(o, plus, 'k', param);
        } else if (c->key[0]) {
            c->key[0] = '\0';
            out_add(o, plus, 'k', "*");
        }
        return param != NULL;
    case 'l': {
        if (!r->op) return need_op(r), plus && param;
        if (!plus) {
            if (c->limit) c->limit = 0, out_add(o, plus, 'l', NULL);
            return false;
        }
        if (!param) return false;
        char *end;
        long n = strtol(param, &end, 10);
        if (*end || n <= 0 || n > 100000) return true;
        c->limit = n;
        out_add(o, plus, 'l', param);
        return true;
    }
    case 'o':
    case 'v': {
        if (!param) return false;
        chan_member *m = member(c, param);
        bool self_op =
            ch == 'o' && plus && irc_same_name(param, r->ic->nick) && op_permission(r->ic, r->room);
        if (!r->op && !self_op) return need_op(r), true;
        if (!m) {
            if (r->nabsent < MODES_MAX)
                snprintf(r->absent[r->nabsent++], HUB_MAX_NAME + 1, "%s", param);
            return true;
        }
        int bit = ch == 'o' ? CM_OP : CM_VOICE;
        if (((m->flags & bit) != 0) == plus) return true;
        m->flags = (uint8_t)(plus ? m->flags | bit : m->flags & ~bit);
        out_add(o, plus, ch, m->nick);
        return true;
    }
    default:
        irc_num(r->ic, "472", "%c :is unknown mode char to me", ch);
        return false;
    }
}

static void chan_mode(irc_conn *ic, int nparams, char **args, const char *chan, const char *room)
{
    mode_req r = {.ic = ic, .chan = chan, .room = room};
    mode_out o = {.sign = 0};
    const char *takes_param = "beIkovl"; /* l: only with + */
    int pi = 2;
    bool plus = true;
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, true);
    if (!c) {
        pthread_mutex_unlock(&chan_lock);
        return;
    }
    chan_member *me = member(c, ic->nick);
    r.op = me && (me->flags & CM_OP);
    int counted = 0;
    for (const char *f = args[1]; *f; f++) {
        if (*f == '+' || *f == '-') {
            plus = *f == '+';
            continue;
        }
        const char *param = NULL;
        bool wants = strchr(takes_param, *f) && (*f != 'l' || plus) && (*f != 'k' || plus);
        if (*f == 'k' && !plus && pi < nparams) wants = true; /* -k may name the key */
        if (wants && pi < nparams && counted < MODES_MAX) param = args[pi++], counted++;
        if (wants && !param && !strchr("beI", *f)) continue; /* a missing parameter: ignored */
        mode_one(&r, c, plus, *f, param, &o);
    }
    maybe_free(c);
    pthread_mutex_unlock(&chan_lock);
    for (const char *l = r.lists; *l; l++)
        mask_list(ic, chan, room, *l);
    for (int i = 0; i < r.nabsent; i++) {
        if (irc_name_in_use(ic->g->sv, r.absent[i], NULL))
            irc_num(ic, "441", "%s %s :They aren't on that channel", r.absent[i], chan);
        else
            irc_num(ic, "401", "%s :No such nick/channel", r.absent[i]);
    }
    if (o.nf) {
        char src[HUB_MAX_NAME * 2 + 64], line[1024];
        source_of(ic, src, sizeof src);
        snprintf(line, sizeof line, ":%s MODE %s %s%s", src, chan, o.flags, o.params);
        irc_net_chan(ic->g, room, line, 0, NULL);
        if (!irc_on_chan(ic, chan)) irc_sendf(ic, "%s", line);
    }
}

static void user_mode(irc_conn *ic, int nparams, char **args)
{
    if (!irc_same_name(args[0], ic->nick)) {
        if (irc_nick_ok(args[0]) && irc_name_in_use(ic->g->sv, args[0], NULL))
            irc_num(ic, "502", ":Can't change mode for other users");
        else
            irc_num(ic, "401", "%s :No such nick/channel", args[0]);
        return;
    }
    if (nparams == 1) {
        irc_num(ic, "221", "+%s%s%s", ic->invisible ? "i" : "", ic->oper ? "o" : "",
                ic->wallops ? "w" : "");
        return;
    }
    bool plus = true, unknown = false;
    mode_out o = {.sign = 0};
    for (const char *f = args[1]; *f; f++) {
        if (*f == '+' || *f == '-') {
            plus = *f == '+';
        } else if (*f == 'i') {
            if (ic->invisible != plus) out_add(&o, plus, 'i', NULL);
            ic->invisible = plus;
        } else if (*f == 'w') {
            if (ic->wallops != plus) out_add(&o, plus, 'w', NULL);
            ic->wallops = plus;
        } else if (*f == 'o') { /* +o is OPER's; -o gives it up */
            if (!plus && ic->oper) out_add(&o, false, 'o', NULL);
            if (!plus) ic->oper = false;
        } else {
            unknown = true;
        }
    }
    if (unknown) irc_num(ic, "501", ":Unknown MODE flag");
    if (o.nf) irc_sendf(ic, ":%s MODE %s :%s", ic->nick, ic->nick, o.flags);
    irc_nick_claim(ic, ic->nick); /* what WHO, WHOIS and LUSERS show */
}

void irc_cmd_mode(irc_conn *ic, int nparams, char **args)
{
    char room[ROOM_MAX + 1], chan[CHAN_MAX + 2];
    if (nparams < 1) {
        irc_num(ic, "461", "MODE :Not enough parameters");
    } else if (args[0][0] != '#') {
        user_mode(ic, nparams, args);
    } else if (!irc_chan_room(args[0], room, sizeof room) || !irc_chan_exists(ic, room)) {
        irc_num(ic, "403", "%s :No such channel", args[0]);
    } else {
        snprintf(chan, sizeof chan, "#%s", room);
        if (nparams == 1)
            mode_query(ic, chan, room);
        else
            chan_mode(ic, nparams, args, chan, room);
    }
}

/* ---- KICK and INVITE -------------------------------------------------------------- */

static bool is_op(const irc_conn *ic, const char *room)
{
    return (irc_chan_flags(room, ic->nick, NULL, false) & CM_OP) != 0;
}

static void kick_one(irc_conn *ic, const char *chan, const char *room, const char *nick,
                     const char *reason)
{
    char victim[HUB_MAX_NAME + 1] = "";
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, false);
    chan_member *m = member(c, nick);
    if (m) {
        snprintf(victim, sizeof victim, "%s", m->nick);
        mark_quiet(c, m->nick);
        member_del(c, nick);
    }
    pthread_mutex_unlock(&chan_lock);
    if (!victim[0]) {
        if (irc_nick_ok(nick) && irc_name_in_use(ic->g->sv, nick, NULL))
            irc_num(ic, "441", "%s %s :They aren't on that channel (as an IRC user)", nick, chan);
        else
            irc_num(ic, "401", "%s :No such nick/channel", nick);
        return;
    }
    char src[HUB_MAX_NAME * 2 + 64], line[1024];
    source_of(ic, src, sizeof src);
    snprintf(line, sizeof line, ":%s KICK %s %s :%s", src, chan, victim, reason);
    irc_net_chan(ic->g, room, line, 0, victim);
}

void irc_cmd_kick(irc_conn *ic, int nparams, char **args)
{
    char room[ROOM_MAX + 1], chan[CHAN_MAX + 2];
    if (nparams < 2) {
        irc_num(ic, "461", "KICK :Not enough parameters");
        return;
    }
    if (!irc_chan_room(args[0], room, sizeof room) || !irc_chan_exists(ic, room)) {
        irc_num(ic, "403", "%s :No such channel", args[0]);
        return;
    }
    snprintf(chan, sizeof chan, "#%s", room);
    if (!irc_on_chan(ic, chan)) {
        irc_num(ic, "442", "%s :You're not on that channel", chan);
        return;
    }
    if (!is_op(ic, room)) {
        irc_num(ic, "482", "%s :You're not channel operator", chan);
        return;
    }
    const char *reason = nparams > 2 && args[2][0] ? args[2] : ic->nick;
    int n = 0;
    for (char *save = NULL, *t = strtok_r(args[1], ",", &save); t && n < MODES_MAX;
         t = strtok_r(NULL, ",", &save), n++)
        kick_one(ic, chan, room, t, reason);
}

typedef struct present_ctx {
    const char *nick;
    bool found;
} present_ctx;

static void present_one(const char *name, void *ud)
{
    present_ctx *p = ud;
    if (irc_same_name(name, p->nick)) p->found = true;
}

void irc_cmd_invite(irc_conn *ic, int nparams, char **args)
{
    char room[ROOM_MAX + 1], chan[CHAN_MAX + 2], topic[ROOM_MAX + 8];
    if (nparams == 0) {
        irc_num(ic, "337", ":End of /INVITE list");
        return;
    }
    if (nparams < 2) {
        irc_num(ic, "461", "INVITE :Not enough parameters");
        return;
    }
    const char *nick = args[0];
    if (!irc_nick_ok(nick) || !irc_name_in_use(ic->g->sv, nick, NULL)) {
        irc_num(ic, "401", "%s :No such nick/channel", nick);
        return;
    }
    if (!irc_chan_room(args[1], room, sizeof room)) {
        irc_num(ic, "403", "%s :No such channel", args[1]);
        return;
    }
    snprintf(chan, sizeof chan, "#%s", room);
    if (!irc_on_chan(ic, chan)) {
        irc_num(ic, "442", "%s :You're not on that channel", chan);
        return;
    }
    topic_of(room, topic, sizeof topic);
    present_ctx pc = {nick, false};
    hub_presence(ic->g->sv->hub, topic, present_one, &pc);
    if (pc.found) {
        irc_num(ic, "443", "%s %s :is already on channel", nick, chan);
        return;
    }
    pthread_mutex_lock(&chan_lock);
    irc_chan *c = find(room, true);
    chan_member *me = member(c, ic->nick);
    bool ok = c && (!(c->modes & CH_I) || (me && (me->flags & CM_OP)));
    if (ok && !invited(c, nick)) {
        snprintf(c->invited[c->ninv % INVITES_MAX], HUB_MAX_NAME + 1, "%s", nick);
        c->ninv = c->ninv % (2 * INVITES_MAX) + 1;
    }
    pthread_mutex_unlock(&chan_lock);
    if (!ok) {
        irc_num(ic, "482", "%s :You're not channel operator", chan);
        return;
    }
    irc_num(ic, "341", "%s %s", nick, chan);
    char src[HUB_MAX_NAME * 2 + 64], line[1024];
    source_of(ic, src, sizeof src);
    snprintf(line, sizeof line, ":%s INVITE %s %s", src, nick, chan);
    irc_net_nick(ic->g, nick, line);
}

/* ---- events to the IRC users of every thread ---------------------------------------- */

enum {
    NET_CHAN = 1,
    NET_NICK = 2,
    NET_SHARED = 3,
    NET_WALLOPS = 4,
    NET_KILL = 5,
    NET_MON_ON = 6,
    NET_MON_OFF = 7,
    NET_MON_EVENT = 8
};

typedef struct net_ev {
    int kind, need_cap, need_flags;
    char room[ROOM_MAX + 1];
    char nick[HUB_MAX_NAME + 1];
    char skip[HUB_MAX_NAME + 1]; /* the sender: only with echo-message */
    char line[AX_IRC_MAX_LINE];
    char time[40];              /* server-time's value ("": none) */
    char tags[AX_IRC_MAX_TAGS]; /* for message-tags ("": none) */
} net_ev;

static pthread_mutex_t gw_lock = PTHREAD_MUTEX_INITIALIZER;
static gw_irc *gws; /* every thread's gateway */

void irc_net_add(gw_irc *g)
{
    pthread_mutex_lock(&gw_lock);
    g->net_next = gws;
    gws = g;
    pthread_mutex_unlock(&gw_lock);
}

void irc_net_remove(gw_irc *g)
{
    pthread_mutex_lock(&gw_lock);
    for (gw_irc **p = &gws; *p; p = &(*p)->net_next)
        if (*p == g) {
            *p = g->net_next;
            break;
        }
    pthread_mutex_unlock(&gw_lock);
}

/* Does `ic` share a channel with `nick`? */
static bool shares(const irc_conn *ic, const char *nick)
{
    bool found = false;
    pthread_mutex_lock(&chan_lock);
    for (int i = 0; i < ic->nchans && !found; i++)
        found = member(find(ic->chans[i] + 1, false), nick) != NULL;
    pthread_mutex_unlock(&chan_lock);
    return found;
}

bool irc_chan_shares(const irc_conn *ic, const char *nick)
{
    return shares(ic, nick);
}

/* The event on this thread's connections. */
static void net_apply(gw_irc *g, const net_ev *e)
{
    char chan[CHAN_MAX + 2];
    snprintf(chan, sizeof chan, "#%s", e->room);
    for (irc_conn *ic = g->conns; ic; ic = ic->next) {
        if (!ic->registered || ic->quit || (ic->caps & e->need_cap) != e->need_cap) continue;
        if (e->skip[0] && !(ic->caps & CAP_ECHO) && irc_same_name(ic->nick, e->skip)) continue;
        if (e->kind == NET_CHAN && irc_on_chan(ic, chan)) {
            if (e->need_flags && !(irc_chan_flags(e->room, ic->nick, NULL, false) & e->need_flags))
                continue;
            irc_send_tagged(ic, e->tags, e->time, e->line);
            if (e->nick[0] && irc_same_name(ic->nick, e->nick)) irc_drop_chan(ic, chan);
        } else if (e->kind == NET_NICK && irc_same_name(ic->nick, e->nick)) {
            irc_send_tagged(ic, e->tags, e->time, e->line);
        } else if ((e->kind == NET_MON_ON || e->kind == NET_MON_OFF) && irc_monitors(ic, e->nick)) {
            irc_num(ic, e->kind == NET_MON_ON ? "730" : "731", ":%s", e->line);
        } else if (e->kind == NET_MON_EVENT && irc_monitors(ic, e->nick) &&
                   !irc_same_name(ic->nick, e->nick) && !shares(ic, e->nick)) {
            irc_sendf(ic, "%s", e->line);
        } else if (e->kind == NET_SHARED && !irc_same_name(ic->nick, e->nick) &&
                   shares(ic, e->nick)) {
            irc_sendf(ic, "%s", e->line);
        } else if (e->kind == NET_WALLOPS && ic->wallops) {
            irc_sendf(ic, "%s", e->line);
        } else if (e->kind == NET_KILL && irc_same_name(ic->nick, e->nick)) {
            irc_close_with(ic, e->line);
        }
    }
}

static void net_posted(ax_loop *loop, void *arg)
{
    gw_irc *g = NULL;
    pthread_mutex_lock(&gw_lock);
    for (gw_irc *o = gws; o && !g; o = o->net_next)
        if (o->sv->loop == loop) g = o; /* (freed only on this thread, after irc_net_remove) */
    pthread_mutex_unlock(&gw_lock);
    if (g) net_apply(g, arg);
    ax_free(arg);
}

/* The line into the event, cut to the limit (the wire cuts it anyway). */
static void set_line(net_ev *e, const char *line)
{
    size_t n = strnlen(line, sizeof e->line - 1);
    memcpy(e->line, line, n);
    e->line[n] = '\0';
}

static void net_send(gw_irc *g, const net_ev *e)
{
    net_apply(g, e);
    pthread_mutex_lock(&gw_lock);
    for (gw_irc *o = gws; o; o = o->net_next) {
        if (o == g) continue;
        net_ev *copy = ax_malloc(sizeof *copy);
        if (!copy) continue;
        *copy = *e;
        if (ax_loop_post_or(o->sv->loop, net_posted, ax_free, copy) != 0) ax_free(copy);
    }
    pthread_mutex_unlock(&gw_lock);
}

void irc_net_chan(gw_irc *g, const char *room, const char *line, int need_cap, const char *victim)
{
    net_ev e = {.kind = NET_CHAN, .need_cap = need_cap};
    snprintf(e.room, sizeof e.room, "%s", room);
    snprintf(e.nick, sizeof e.nick, "%s", victim ? victim : "");
    set_line(&e, line);
    net_send(g, &e);
}

static void set_opts(net_ev *e, const irc_net_opts *o)
{
    e->need_cap = o->need_cap;
    e->need_flags = o->need_flags;
    snprintf(e->skip, sizeof e->skip, "%s", o->skip ? o->skip : "");
    snprintf(e->time, sizeof e->time, "%s", o->time ? o->time : "");
    snprintf(e->tags, sizeof e->tags, "%s", o->tags ? o->tags : "");
}

void irc_net_chan_ex(gw_irc *g, const char *room, const char *line, const irc_net_opts *o)
{
    static __thread net_ev e;
    memset(&e, 0, sizeof e);
    e.kind = NET_CHAN;
    snprintf(e.room, sizeof e.room, "%s", room);
    set_opts(&e, o);
    set_line(&e, line);
    net_send(g, &e);
}

void irc_net_nick_ex(gw_irc *g, const char *nick, const char *line, const irc_net_opts *o)
{
    static __thread net_ev e;
    memset(&e, 0, sizeof e);
    e.kind = NET_NICK;
    snprintf(e.nick, sizeof e.nick, "%s", nick);
    set_opts(&e, o);
    set_line(&e, line);
    net_send(g, &e);
}

/* An event for one nick's clients on every thread, with its line. */
static void net_to_nick(gw_irc *g, int kind, const char *nick, const char *line, int need_cap)
{
    net_ev e = {.kind = kind, .need_cap = need_cap};
    snprintf(e.nick, sizeof e.nick, "%s", nick);
    set_line(&e, line);
    net_send(g, &e);
}

void irc_net_monitor(gw_irc *g, const char *nick, const char *who, bool online)
{
    net_to_nick(g, online ? NET_MON_ON : NET_MON_OFF, nick, who, 0);
}

void irc_net_monitor_event(gw_irc *g, const char *nick, const char *line, int need_cap)
{
    net_to_nick(g, NET_MON_EVENT, nick, line, need_cap);
}

void irc_net_nick(gw_irc *g, const char *nick, const char *line)
{
    net_to_nick(g, NET_NICK, nick, line, 0);
}

void irc_net_shared(gw_irc *g, const char *nick, const char *line, int need_cap)
{
    net_to_nick(g, NET_SHARED, nick, line, need_cap);
}

void irc_net_wallops(gw_irc *g, const char *line)
{
    net_ev e = {.kind = NET_WALLOPS};
    set_line(&e, line);
    net_send(g, &e);
}

void irc_net_kill(gw_irc *g, const char *nick, const char *why)
{
    net_ev e = {.kind = NET_KILL};
    snprintf(e.nick, sizeof e.nick, "%s", nick);
    set_line(&e, why);
    net_send(g, &e);
}
