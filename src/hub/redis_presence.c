/* redis_presence.c: presence across nodes (redis_int.h, docs/cluster.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "redis_int.h"

typedef struct room_post {
    redis_bp *b;
    char room[];
} room_post;

/* ---- presence across nodes ------------------------------------------------------------------
 *
 * Each node keeps, per room with somebody present on it, a field of the
 * hash axon:{room}:presence: field = the node's id, value = "<expiry ms
 * since the epoch>\n<name>\n<name>...".  It rewrites the field when the
 * room's names here change and every BP_PRESENCE_REFRESH_MS; an entry
 * whose expiry passed (a node that died without saying goodbye) is left
 * out by readers.  After a change it publishes the room's name on
 * its channel (bp__chan, BP_CH_PRES); the nodes following the room (an exact subscriber
 * of it here) read the hash again then, and every refresh period. */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct name_buf {
    char *p;
    size_t len, cap;
    bool oom;
} name_buf;

static void name_add(const char *name, void *ud)
{
    name_buf *nb = ud;
    size_t n = strlen(name);
    if (nb->len + n + 2 > nb->cap) {
        size_t cap = (nb->cap + n + 2) * 2;
        char *p = ax_realloc(nb->p, cap);
        if (!p) {
            nb->oom = true;
            return;
        }
        nb->p = p;
        nb->cap = cap;
    }
    memcpy(nb->p + nb->len, name, n);
    nb->len += n;
    nb->p[nb->len++] = '\n';
    nb->p[nb->len] = '\0';
}

/* Write this node's entry of `room` (or delete it: nobody here). */
static void pres_write(redis_bp *b, const char *room)
{
    char key[HUB_MAX_TOPIC + 24], chan[BP_CHAN_MAX], head[32];
    int hl = snprintf(head, sizeof head, "%lld\n", (long long)(wall_ms() + BP_PRESENCE_TTL_MS));
    name_buf nb = {ax_malloc(256), (size_t)hl, 256, false};
    if (!nb.p) return;
    memcpy(nb.p, head, (size_t)hl + 1);
    hub_presence_local(b->h, room, name_add, &nb);
    snprintf(key, sizeof key, "axon:{%s}:presence", room);
    bp__chan(b, BP_CH_PRES, room, chan, sizeof chan);
    if (nb.oom) goto out;
    if (nb.len == (size_t)hl) {
        const char *argv[] = {"HDEL", key, b->node};
        (void)bp__cmd(b, room, NULL, NULL, 3, argv, NULL);
        ax_free(hub_map_del(&b->pres_local, room, strlen(room)));
    } else {
        char ttl[16];
        snprintf(ttl, sizeof ttl, "%d", BP_PRESENCE_TTL_MS * 4);
        const char *argv[] = {"HSET", key, b->node, nb.p};
        size_t lens[] = {4, strlen(key), strlen(b->node), nb.len};
        (void)bp__cmd(b, room, NULL, NULL, 4, argv, lens);
        const char *eargv[] = {"PEXPIRE", key, ttl};
        (void)bp__cmd(b, room, NULL, NULL, 3, eargv, NULL);
    }
    const char *pargv[] = {b->cluster ? "SPUBLISH" : "PUBLISH", chan, room};
    (void)bp__cmd(b, room, NULL, NULL, 3, pargv, NULL);
out:
    ax_free(nb.p);
}

typedef struct pres_req {
    redis_bp *b;
    char room[];
} pres_req;

/* Each name of `list` ("a\nb\n") that `other` does not have: an event
 * (joined or left) for this node's subscribers of the room. */
static void pres_events(redis_bp *b, const char *room, const char *list, const hub_map *other,
                        bool joined)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n && n <= HUB_MAX_NAME && !hub_map_get(other, p, n)) {
            char name[HUB_MAX_NAME + 1];
            memcpy(name, p, n);
            name[n] = '\0';
            hub_backplane_presence(b->h, room, name, joined);
        }
        p += n + (e ? 1 : 0);
    }
}

static void names_set(const char *list, hub_map *set)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) (void)hub_map_put(set, p, n, (void *)1, NULL); /* (get: non-NULL) */
        p += n + (e ? 1 : 0);
    }
}

/* The other nodes' names that have not expired, each once, into nb (and
 * seen). */
static void pres_parse(redis_bp *b, const redisReply *r, hub_map *seen, name_buf *nb)
{
    int64_t now = wall_ms();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        if (strcmp(f->str, b->node) == 0 || strtoll(v->str, NULL, 10) < now) continue;
        for (char *p = strchr(v->str, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
            char *e = strchr(p + 1, '\n');
            size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1);
            if (!n || n > HUB_MAX_NAME || hub_map_get(seen, p + 1, n)) continue;
            if (hub_map_put(seen, p + 1, n, (void *)1, NULL) != 0) continue;
            char name[HUB_MAX_NAME + 1];
            memcpy(name, p + 1, n);
            name[n] = '\0';
            name_add(name, nb);
        }
    }
}

/* HGETALL's answer: the room's remote names now; what changed since the
 * last read (not the first: that is the room as it was) becomes join and
 * leave events here, so a member who joins, leaves or whose node dies is
 * announced on every node that follows the room. */
static void on_pres_read(rlink *rl, redisReply *r, void *priv)
{
    pres_req *q = priv;
    redis_bp *b = q->b;
    bp_link *l;
    size_t rl_ = strlen(q->room);
    if (!bp__ok(rl, r, &l) || r->type != REDIS_REPLY_ARRAY || b->freeing) goto out;
    hub_map seen, before;
    name_buf nb = {0};
    hub_map_init(&seen);
    hub_map_init(&before);
    pres_parse(b, r, &seen, &nb);
    if (!nb.p && !nb.oom && (nb.p = ax_malloc(1))) nb.p[0] = '\0'; /* known: nobody */
    bool following = hub_map_get(&b->needs, q->room, rl_) != NULL;
    char *now = nb.oom ? NULL : nb.p;
    pthread_mutex_lock(&b->pres_mu);
    char *old = hub_map_del(&b->pres_remote, q->room, rl_);
    if (now && following && hub_map_put(&b->pres_remote, q->room, rl_, now, NULL) != 0)
        following = false;
    pthread_mutex_unlock(&b->pres_mu);
    if (old && now && following) { /* (only this thread changes the lists) */
        names_set(old, &before);
        pres_events(b, q->room, old, &seen, false);
        pres_events(b, q->room, now, &before, true);
    }
    if (!now || !following) ax_free(nb.p);
    ax_free(old);
    hub_map_clear(&seen);
    hub_map_clear(&before);
out:
    ax_free(q);
}

void bp__pres_read(redis_bp *b, const char *room)
{
    if (b->state != BP_UP) return;
    size_t rl = strlen(room);
    pres_req *q = ax_malloc(sizeof(*q) + rl + 1);
    if (!q) return;
    q->b = b;
    memcpy(q->room, room, rl + 1);
    char key[HUB_MAX_TOPIC + 24];
    snprintf(key, sizeof key, "axon:{%s}:presence", room);
    const char *argv[] = {"HGETALL", key};
    if (bp__cmd(b, room, on_pres_read, q, 2, argv, NULL) != 0) ax_free(q);
}

/* A room this node follows: its presence notices, and its names now. */
void bp__pres_follow(redis_bp *b, need *n, bool on)
{
    if (!n->exact || b->state != BP_UP) return;
    char chan[BP_CHAN_MAX];
    bp__chan(b, BP_CH_PRES, n->filter, chan, sizeof chan);
    bp__sub(b, n->filter, chan, on);
    if (on) bp__pres_read(b, n->filter);
}

void bp__pres_forget(redis_bp *b, const char *room)
{
    pthread_mutex_lock(&b->pres_mu);
    ax_free(hub_map_del(&b->pres_remote, room, strlen(room)));
    pthread_mutex_unlock(&b->pres_mu);
}

static void pres_write_each(hub_map_ent *e, void *ud)
{
    *(bool *)e->value = true; /* dirty: written at the next tick */
    (void)ud;
}

void bp__pres_tick(redis_bp *b, uint64_t now)
{
    if (b->state != BP_UP) return;
    bool refresh = now - b->pres_refresh_ms >= BP_PRESENCE_REFRESH_MS;
    if (refresh) {
        b->pres_refresh_ms = now;
        hub_map_each(&b->pres_local, pres_write_each, NULL);
        for (need *n = b->list; n; n = n->next)
            if (n->exact) bp__pres_read(b, n->filter);
    }
    if (!b->pres_dirty && !refresh) return;
    b->pres_dirty = false;
    /* write the dirty rooms (hub_map has no iterator that allows a delete) */
    for (size_t i = 0; i < b->pres_local.nb; i++)
        for (hub_map_ent *e = b->pres_local.b[i], *next; e; e = next) {
            next = e->next;
            bool *dirty = e->value;
            if (!*dirty) continue;
            *dirty = false;
            char room[HUB_MAX_TOPIC + 1];
            snprintf(room, sizeof room, "%s", e->key);
            pres_write(b, room); /* may delete e (nobody left here) */
        }
}

static void pres_changed(redis_bp *b, const char *room)
{
    size_t rl = strlen(room);
    bool *dirty = hub_map_get(&b->pres_local, room, rl);
    if (!dirty) {
        if (!(dirty = ax_malloc(sizeof(*dirty)))) return;
        if (hub_map_put(&b->pres_local, room, rl, dirty, NULL) != 0) {
            ax_free(dirty);
            return;
        }
    }
    *dirty = true;
    b->pres_dirty = true;
}

static void pres_run(ax_loop *loop, void *arg)
{
    room_post *p = arg;
    (void)loop;
    pres_changed(p->b, p->room);
    ax_free(p);
}

void bp__present(void *ud, const char *room)
{
    redis_bp *b = ud;
    if (pthread_equal(pthread_self(), b->thread)) {
        pres_changed(b, room);
        return;
    }
    size_t rl = strlen(room);
    room_post *p = ax_malloc(sizeof(*p) + rl + 1);
    if (!p) return;
    p->b = b;
    memcpy(p->room, room, rl + 1);
    if (ax_loop_post_or(b->loop, pres_run, ax_free, p) != 0) ax_free(p);
}

void bp__presence(void *ud, const char *room, void (*cb)(const char *name, void *ud), void *cbud)
{
    redis_bp *b = ud;
    pthread_mutex_lock(&b->pres_mu);
    const char *names = hub_map_get(&b->pres_remote, room, strlen(room));
    for (const char *p = names; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char name[HUB_MAX_NAME + 1];
        if (n && n <= HUB_MAX_NAME) {
            memcpy(name, p, n);
            name[n] = '\0';
            cb(name, cbud);
        }
        p += n + (e ? 1 : 0);
    }
    pthread_mutex_unlock(&b->pres_mu);
}

static void free_value(hub_map_ent *e, void *ud)
{
    (void)ud;
    ax_free(e->value);
}

void bp__pres_free(redis_bp *b)
{
    hub_map_each(&b->pres_local, free_value, NULL);
    hub_map_clear(&b->pres_local);
    hub_map_each(&b->pres_remote, free_value, NULL);
    hub_map_clear(&b->pres_remote);
    pthread_mutex_destroy(&b->pres_mu);
}
