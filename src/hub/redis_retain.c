/* redis_retain.c: MQTT retained messages through the backplane
 * (redis_int.h, docs/cluster.md).
 *
 * A retained message lives in Redis as axon:{T}:ret ("<seq> <packed
 * message>", in the topic's slot: the publish script sets or deletes it).
 * Every node keeps every retained message in memory, as a single node
 * does: it reads them all when its link comes up (SCAN of each shard,
 * then GET), and hears of each new one on the classic channel
 * axon-ret:<db>, which the script publishes to (in a cluster, classic
 * pub/sub reaches every node).  The hub keeps the newest by seq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

/* "<seq> <packed>" */
static hub_msg *ret_decode(const char *p, size_t n)
{
    char *end;
    unsigned long long seq = strtoull(p, &end, 10);
    if (end == p || (size_t)(end - p) >= n || *end != ' ' || !seq) return NULL;
    hub_msg *m = hub_msg_unpack((const uint8_t *)end + 1, n - (size_t)(end + 1 - p));
    if (m) m->seq = seq;
    return m;
}

void bp__ret_heard(redis_bp *b, const redisReply *data)
{
    if (data->type != REDIS_REPLY_STRING) return;
    hub_msg *m = ret_decode(data->str, (size_t)data->len);
    if (!m) return;
    hub_backplane_retained(b->h, m);
    hub_msg_unref(m);
}

static void on_get(rlink *rl, redisReply *r, void *priv)
{
    bp_link *l;
    (void)priv;
    if (bp__ok(rl, r, &l) && r->type == REDIS_REPLY_STRING) bp__ret_heard(l->b, r);
}

typedef struct scan_req {
    redis_bp *b;
    size_t shard;
} scan_req;

static int scan_send(redis_bp *b, size_t shard, const char *cursor);

/* SCAN's answer: [cursor, [key, ...]]; GET each, go on until cursor 0. */
static void on_scan(rlink *rl, redisReply *r, void *priv)
{
    scan_req *q = priv;
    redis_bp *b = q->b;
    bp_link *l;
    if (bp__ok(rl, r, &l) && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            char topic[HUB_MAX_TOPIC + 1];
            size_t tl = k->type == REDIS_REPLY_STRING && k->len > 11 ? (size_t)k->len - 11 : 0;
            if (!tl || tl > HUB_MAX_TOPIC || memcmp(k->str, "axon:{", 6) != 0 ||
                memcmp(k->str + k->len - 5, "}:ret", 5) != 0)
                continue;
            memcpy(topic, k->str + 6, tl);
            topic[tl] = '\0';
            const char *argv[] = {"GET", k->str};
            (void)bp__cmd(b, topic, on_get, NULL, 2, argv, NULL);
        }
        if (strcmp(r->element[0]->str, "0") != 0) (void)scan_send(b, q->shard, r->element[0]->str);
    }
    ax_free(q);
}

static int scan_send(redis_bp *b, size_t shard, const char *cursor)
{
    if (b->state != BP_UP || shard >= b->nshards || !b->shards[shard].cmd.up) return AX_ENOTCONN;
    scan_req *q = ax_malloc(sizeof(*q));
    if (!q) return AX_ENOMEM;
    *q = (scan_req){b, shard};
    int rc = rlink_cmdv(b->shards[shard].cmd.rl, on_scan, q, "SCAN", cursor, "MATCH",
                        "axon:{*}:ret", "COUNT", "1000", NULL);
    if (rc) ax_free(q);
    return rc;
}

/* The link is up: hear of new retained messages, read those there are. */
void bp__ret_start(redis_bp *b)
{
    if (!b->nshards) return;
    (void)rlink_cmdv(b->shards[0].sub.rl, NULL, NULL, "SUBSCRIBE", b->ret_chan, NULL);
    for (size_t i = 0; i < b->nshards; i++)
        (void)scan_send(b, i, "0");
}
