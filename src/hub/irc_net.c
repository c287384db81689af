/* irc_net.c: the IRC network's state that every thread shares (one
 * lock): the nicks in use (with what WHO, WHOIS and LUSERS show of their
 * users) and the channels' topics.  Moved out of
 * gw_irc.c as is. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "gw_irc.h"

/* ---- the network's shared state: nicks and topics of every thread ---------------- */

typedef struct nick_entry {
    struct nick_entry *next;
    const irc_conn *owner;
    char nick[HUB_MAX_NAME + 1];
    irc_who who;
} nick_entry;

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

bool irc_room_ok(const char *s)
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

static void who_fill(const irc_conn *ic, const char *nick, irc_who *w)
{
    snprintf(w->nick, sizeof w->nick, "%s", nick);
    snprintf(w->user, sizeof w->user, "%s", ic->user);
    snprintf(w->host, sizeof w->host, "%s", ic->host);
    snprintf(w->real, sizeof w->real, "%s", ic->real);
    snprintf(w->away, sizeof w->away, "%s", ic->away);
    snprintf(w->account, sizeof w->account, "%s", ic->id && !ic->id->anonymous ? ic->id->name : "");
    w->oper = ic->oper;
    w->invisible = ic->invisible;
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
void irc_nick_claim(const irc_conn *ic, const char *nick)
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
        who_fill(ic, nick, &e->who);
    }
    pthread_mutex_unlock(&net_lock);
}

void irc_nick_release(const irc_conn *ic)
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

void irc_net_counts(int *users, int *invisible, int *opers)
{
    *users = *invisible = *opers = 0;
    pthread_mutex_lock(&net_lock);
    for (const nick_entry *e = nicks; e; e = e->next) {
        ++*users;
        *invisible += e->who.invisible;
        *opers += e->who.oper;
    }
    pthread_mutex_unlock(&net_lock);
}

static int unregistered;

void irc_unregistered_set(irc_conn *ic, bool on)
{
    if (ic->unknown == on) return;
    ic->unknown = on;
    __atomic_add_fetch(&unregistered, on ? 1 : -1, __ATOMIC_RELAXED);
}

int irc_unregistered(void)
{
    return __atomic_load_n(&unregistered, __ATOMIC_RELAXED);
}

size_t irc_nicks_match(const char *mask, char (*out)[HUB_MAX_NAME + 1], size_t max)
{
    size_t n = 0, ml = strlen(mask);
    pthread_mutex_lock(&net_lock);
    for (const nick_entry *e = nicks; e && n < max; e = e->next)
        if (ax_irc_mask_match(mask, ml, e->nick, strlen(e->nick)))
            memcpy(out[n++], e->nick, sizeof out[0]);
    pthread_mutex_unlock(&net_lock);
    return n;
}

/* A copy of the room's topic (false: none set). */
bool irc_topic_get(const char *room, chan_topic *out)
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

int64_t irc_topic_set(const char *room, const char *text, const char *who)
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
