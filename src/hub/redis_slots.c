/* redis_slots.c: where a topic lives: the shards (one per Redis master;
 * one shard without a cluster), the cluster's slot map from CLUSTER
 * SLOTS (refreshed when a slot moves), MOVED/ASK, and the channel names
 * of a topic.  Moved out of redis.c as is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <axon/axon.h>

#include "redis_int.h"

#define BP_REDIRECTS_MAX 5 /* MOVED/ASK followed at most this many times */

/* ---- shards and the cluster's slots ------------------------------------------------------ */

static uint16_t crc16(const char *p, size_t n) /* CRC-16/XMODEM, as Redis Cluster */
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_key_slot(const char *key, size_t n)
{
    const char *o = memchr(key, '{', n);
    const char *c = o ? memchr(o + 1, '}', n - (size_t)(o + 1 - key)) : NULL;
    if (c && c > o + 1) { /* a hash tag: only it counts */
        key = o + 1;
        n = (size_t)(c - o - 1);
    }
    return crc16(key, n) & (BP_SLOTS - 1);
}

/* Every key and channel of a topic carries the tag {T}: one slot. */
unsigned bp__topic_slot(const char *topic)
{
    char k[HUB_MAX_TOPIC + 16];
    int n = snprintf(k, sizeof k, "axon:{%s}:seq", topic);
    return redis_key_slot(k, n < (int)sizeof k ? (size_t)n : sizeof k - 1);
}

bp_shard *bp__shard(redis_bp *b, const char *topic)
{
    if (!b->nshards) return NULL;
    if (!b->cluster || !topic) return &b->shards[0];
    uint16_t i = b->slots[bp__topic_slot(topic)];
    return i < b->nshards ? &b->shards[i] : NULL;
}

bp_shard *bp__shard_by_addr(redis_bp *b, const char *addr)
{
    for (size_t i = 0; i < b->nshards; i++)
        if (strcmp(b->shards[i].addr, addr) == 0) return &b->shards[i];
    return NULL;
}

void bp__shard_init(bp_shard *sh, const char *url, const char *addr)
{
    snprintf(sh->url, sizeof sh->url, "%s", url);
    snprintf(sh->addr, sizeof sh->addr, "%s", addr);
    sh->cmd.sh = sh->sub.sh = sh;
    sh->sub.sub = true;
}

void bp__shard_open(redis_bp *b, bp_shard *sh)
{
    if (bp__link_open(b, &sh->cmd, sh->url) == 0) (void)bp__link_open(b, &sh->sub, sh->url);
}

void bp__shards_free(redis_bp *b)
{
    for (size_t i = 0; i < b->nshards; i++) {
        bp__link_close(&b->shards[i].cmd);
        bp__link_close(&b->shards[i].sub);
    }
    ax_free(b->shards);
    b->shards = NULL;
    b->nshards = 0;
}

/* A master the cluster named: a seed for the next connect too (the seeds
 * given may be gone by then). */
static void seed_learn(redis_bp *b, const char *ip, int port)
{
    for (size_t i = 0; i < b->nseeds; i++)
        if (b->seeds[i].port == port && strcmp(b->seeds[i].host, ip) == 0) return;
    if (b->nseeds == BP_SEEDS_MAX || strlen(ip) >= sizeof b->seeds[0].host) return;
    redis_url *u = &b->seeds[b->nseeds++];
    *u = b->u; /* (its credentials and TLS) */
    snprintf(u->host, sizeof u->host, "%s", ip);
    u->port = port;
}

/* CLUSTER SLOTS: [[start, end, [ip, port, id], replicas...], ...]: one
 * shard per master. */
static int slots_load(redis_bp *b, const redisReply *r, bool add)
{
    if (add && !(b->shards = ax_calloc(r->elements, sizeof(*b->shards)))) return AX_ENOMEM;
    for (size_t i = 0; i < BP_SLOTS; i++)
        b->slots[i] = UINT16_MAX;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3) return AX_EINVAL;
        const redisReply *m = e->element[2];
        if (e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER || m->type != REDIS_REPLY_ARRAY ||
            m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
            m->element[1]->type != REDIS_REPLY_INTEGER)
            return AX_EINVAL;
        long long lo = e->element[0]->integer, hi = e->element[1]->integer;
        const char *ip = m->element[0]->str[0] ? m->element[0]->str : b->u.host;
        int port = (int)m->element[1]->integer;
        char addr[280], url[300];
        snprintf(addr, sizeof addr, "%s:%d", ip, port);
        bp_shard *sh = bp__shard_by_addr(b, addr);
        if (!sh && !add) return AX_EAGAIN; /* a master this node has no link to */
        if (!sh) {
            sh = &b->shards[b->nshards++];
            bp__url_of(&b->u, ip, port, url, sizeof url);
            bp__shard_init(sh, url, addr);
            seed_learn(b, ip, port);
        }
        for (long long s = lo; s <= hi && s >= 0 && s < BP_SLOTS; s++)
            b->slots[s] = (uint16_t)(sh - b->shards);
    }
    return 0;
}

void bp__on_slots(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    bool ok = bp__ok(rl, r, &l);
    redis_bp *b = l->b;
    (void)priv;
    if (l->rl != rl || b->state != BP_CONNECTING) return;
    b->seed_close = true; /* (at the next tick) */
    if (!ok || r->type != REDIS_REPLY_ARRAY || !r->elements) {
        bp__link_broken(b, !r                             ? "no answer to CLUSTER SLOTS"
                           : r->type == REDIS_REPLY_ERROR ? r->str
                                                          : "CLUSTER SLOTS: no slots");
        return;
    }
    if (slots_load(b, r, true) != 0) {
        bp__link_broken(b, "CLUSTER SLOTS: an answer this node cannot read");
        return;
    }
    for (size_t i = 0; i < b->nshards; i++)
        bp__shard_open(b, &b->shards[i]);
}

/* A slot moved: the subscriptions Redis let go of (and those on a shard
 * that no longer has their slot) are made again where the slot is now. */
static void on_refresh(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    bool ok = bp__ok(rl, r, &l);
    redis_bp *b = l->b;
    (void)priv;
    b->refreshing = false;
    if (!ok || b->state != BP_UP) return;
    if (r->type != REDIS_REPLY_ARRAY || slots_load(b, r, false) != 0) {
        bp__link_broken(b, "the cluster's masters changed");
        return;
    }
    for (need *n = b->list; n; n = n->next) {
        bp_shard *sh = n->exact ? bp__shard(b, n->filter) : NULL;
        if (!sh || (!n->dropped && sh - b->shards == n->shard)) continue;
        n->dropped = false;
        bp__need_subscribe(b, n);
    }
}

void bp__slots_refresh(redis_bp *b)
{
    if (b->refreshing || b->state != BP_UP || !b->nshards || !b->shards[0].cmd.up) return;
    b->refreshing =
        rlink_cmdv(b->shards[0].cmd.rl, on_refresh, NULL, "CLUSTER", "SLOTS", NULL) == 0;
}

/* A command on its way to a cluster: kept until answered, to follow
 * MOVED (the slot has another master now: remember it, send there) and
 * ASK (the slot is moving: ASKING, then send there, once). */
typedef struct routed {
    redis_bp *b;
    rlink_reply_fn cb;
    void *priv;
    unsigned slot;
    int hops;
    size_t len;
    char cmd[];
} routed;

static void on_routed(rlink *rl, redisReply *r, void *priv)
{
    routed *q = priv;
    redis_bp *b = q->b;
    bp_link *l = rlink_data(rl);
    bool moved = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0;
    bool ask = r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0;
    if ((moved || ask) && l->rl == rl && b->state == BP_UP && q->hops < BP_REDIRECTS_MAX) {
        const char *addr = strchr(r->str + (moved ? 6 : 4), ' ');
        bp_shard *sh = addr ? bp__shard_by_addr(b, addr + 1) : NULL;
        if (sh && sh->cmd.rl && sh->cmd.up) {
            if (moved) b->slots[q->slot] = (uint16_t)(sh - b->shards);
            q->hops++;
            if ((!ask || rlink_cmdv(sh->cmd.rl, NULL, NULL, "ASKING", NULL) == 0) &&
                rlink_send(sh->cmd.rl, on_routed, q, q->cmd, q->len) == 0)
                return;
        } else { /* a master this node does not know: read the slots again */
            bp__link_broken(b, "the cluster's slots moved");
        }
    }
    if (q->cb) q->cb(rl, r, q->priv);
    ax_free(q);
}

int bp__cmd(redis_bp *b, const char *topic, rlink_reply_fn cb, void *priv, int argc,
            const char **argv, const size_t *lens)
{
    bp_shard *sh = b->state == BP_UP ? bp__shard(b, topic) : NULL;
    if (!sh || !sh->cmd.rl || !sh->cmd.up) return AX_ENOTCONN;
    if (!b->cluster) return rlink_cmd(sh->cmd.rl, cb, priv, argc, argv, lens);
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || !cmd) return AX_ENOMEM;
    routed *q = ax_malloc(sizeof(*q) + (size_t)n);
    if (!q) {
        redisFreeCommand(cmd);
        return AX_ENOMEM;
    }
    q->b = b;
    q->cb = cb;
    q->priv = priv;
    q->slot = bp__topic_slot(topic);
    q->hops = 0;
    q->len = (size_t)n;
    memcpy(q->cmd, cmd, (size_t)n);
    redisFreeCommand(cmd);
    int rc = rlink_send(sh->cmd.rl, on_routed, q, q->cmd, q->len);
    if (rc) ax_free(q);
    return rc;
}

int bp__sub(redis_bp *b, const char *topic, const char *chan, bool on)
{
    bp_shard *sh = b->state == BP_UP ? bp__shard(b, topic) : NULL;
    if (!sh || !sh->sub.rl || !sh->sub.up) return AX_ENOTCONN;
    const char *cmd = !topic       ? (on ? "PSUBSCRIBE" : "PUNSUBSCRIBE")
                      : b->cluster ? (on ? "SSUBSCRIBE" : "SUNSUBSCRIBE")
                                   : (on ? "SUBSCRIBE" : "UNSUBSCRIBE");
    return rlink_cmdv(sh->sub.rl, NULL, NULL, cmd, chan, NULL);
}

void bp__chan(redis_bp *b, int kind, const char *topic, char *out, size_t cap)
{
    if (b->cluster)
        snprintf(out, cap, "axon:{%s}%s", topic, kind == BP_CH_PRES ? "~p" : "");
    else if (kind == BP_CH_PRES)
        snprintf(out, cap, "%.*s~p:%s", (int)b->plen - 1, b->prefix, topic);
    else
        snprintf(out, cap, "%s%s", b->prefix, topic);
}

int bp__chan_parse(redis_bp *b, const char *s, size_t n, char *topic)
{
    const char *t;
    size_t tl;
    int kind;
    if (b->cluster) {
        if (n < 8 || memcmp(s, "axon:{", 6) != 0) return -1;
        kind = n >= 10 && memcmp(s + n - 3, "}~p", 3) == 0 ? BP_CH_PRES : BP_CH_MSG;
        if (kind == BP_CH_MSG && s[n - 1] != '}') return -1;
        t = s + 6;
        tl = n - 6 - (kind == BP_CH_PRES ? 3 : 1);
    } else if (n > b->plen && memcmp(s, b->prefix, b->plen) == 0) {
        kind = BP_CH_MSG;
        t = s + b->plen;
        tl = n - b->plen;
    } else if (n > b->plen + 2 && memcmp(s, b->prefix, b->plen - 1) == 0 &&
               memcmp(s + b->plen - 1, "~p:", 3) == 0) {
        kind = BP_CH_PRES;
        t = s + b->plen + 2;
        tl = n - b->plen - 2;
    } else {
        return -1;
    }
    if (!tl || tl > HUB_MAX_TOPIC) return -1;
    memcpy(topic, t, tl);
    topic[tl] = '\0';
    return kind;
}
