/* The backplane's Redis connection (src/hub/redis_link.c) against a fake
 * Redis on the loop: replies go to their commands in order, a pub/sub
 * link's pushes go to on_push (and SUBSCRIBE takes no reply slot), a
 * reply split across reads is put together, closing hands NULL to every
 * command still waiting, and a peer that closes is reported once. */
#include <string.h>

#include "hub/redis_link.h"
#include "testutil.h"

/* The fake server: at the first bytes it gets, it sends the test's
 * canned answers (RESP); the test sends more through `peer`. */
static const char *canned;
static ax_conn *peer;

static size_t srv_data(ax_conn *c, const char *data, size_t len)
{
    (void)data;
    peer = c;
    if (canned) ASSERT(ax_conn_write(c, canned, strlen(canned)) >= 0);
    canned = NULL;
    return len;
}

static const ax_conn_cbs SRV = {.on_data = srv_data};

struct got {
    int replies, nulls, pushes, downs;
    char last[64];
};

static void on_reply(rlink *l, redisReply *r, void *priv)
{
    struct got *g = rlink_data(l);
    (void)priv;
    if (!r) {
        g->nulls++;
        return;
    }
    g->replies++;
    snprintf(g->last, sizeof g->last, "%s", r->type == REDIS_REPLY_INTEGER ? "int" : r->str);
}

static void on_push(rlink *l, redisReply *r)
{
    struct got *g = rlink_data(l);
    g->pushes++;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
        r->element[2]->type == REDIS_REPLY_STRING)
        snprintf(g->last, sizeof g->last, "%s", r->element[2]->str);
}

static void on_down(rlink *l, const char *why)
{
    struct got *g = rlink_data(l);
    (void)why;
    g->downs++;
}

static const rlink_cbs CBS = {NULL, on_push, on_down};

static rlink *open_link(ax_loop *loop, ax_listener *srv, bool sub, struct got *g)
{
    char url[64], why[128];
    tu_url(ax_listener_addr(srv), url, sizeof url);
    rlink *l = rlink_open(loop, url, NULL, sub, &CBS, g, why, sizeof why);
    ASSERT(l != NULL);
    return l;
}

TEST(redis_link_replies_in_order_and_split)
{
    ax_loop *loop = tu_loop();
    int err = 0;
    ax_listener *srv = ax_listen(loop, "tcp://127.0.0.1:0", &SRV, NULL, NULL, &err);
    ASSERT(srv != NULL);
    struct got g = {0};
    rlink *l = open_link(loop, srv, false, &g);
    canned = "+PONG\r\n:42\r\n$5\r\nhel"; /* the third reply: over two reads */
    ASSERT_EQ(rlink_cmdv(l, on_reply, NULL, "PING", NULL), 0);
    ASSERT_EQ(rlink_cmdv(l, on_reply, NULL, "INCR", "k", NULL), 0);
    ASSERT_EQ(rlink_cmdv(l, on_reply, NULL, "GET", "k", NULL), 0);
    RUN_UNTIL(loop, g.replies == 2, 2000);
    ASSERT_STREQ(g.last, "int");
    ASSERT(ax_conn_write(peer, "lo\r\n", 4) >= 0); /* the rest of the third */
    RUN_UNTIL(loop, g.replies == 3, 2000);
    ASSERT_STREQ(g.last, "hello");
    ASSERT_EQ(rlink_cmdv(l, on_reply, NULL, "GET", "never", NULL), 0);
    rlink_close(l); /* the one still waiting: NULL, now */
    ASSERT_EQ(g.nulls, 1);
    ASSERT_EQ(g.downs, 0);
    ax_listener_close(srv);
    tu_run_for(loop, 20);
    ax_loop_free(loop);
}

TEST(redis_link_pushes_and_peer_close)
{
    ax_loop *loop = tu_loop();
    int err = 0;
    ax_listener *srv = ax_listen(loop, "tcp://127.0.0.1:0", &SRV, NULL, NULL, &err);
    ASSERT(srv != NULL);
    struct got g = {0};
    rlink *l = open_link(loop, srv, true, &g);
    canned = "*3\r\n$10\r\nssubscribe\r\n$1\r\nc\r\n:1\r\n"
             "+PONG\r\n"
             "*3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n";
    ASSERT_EQ(rlink_cmdv(l, NULL, NULL, "SSUBSCRIBE", "c", NULL), 0); /* no reply slot */
    ASSERT_EQ(rlink_cmdv(l, on_reply, NULL, "PING", NULL), 0);
    RUN_UNTIL(loop, g.pushes == 2 && g.replies == 1, 2000);
    ASSERT_STREQ(g.last, "hi");
    ax_conn_close(peer); /* Redis goes away: told once */
    RUN_UNTIL(loop, g.downs == 1, 2000);
    ASSERT(rlink_cmdv(l, on_reply, NULL, "PING", NULL) < 0);
    rlink_close(l);
    ASSERT_EQ(g.downs, 1);
    ax_listener_close(srv);
    tu_run_for(loop, 20);
    ax_loop_free(loop);
}
