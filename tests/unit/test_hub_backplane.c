/* The hub's backplane hooks (hub.h, "the backplane") with a fake cluster
 * in place of Redis: publishes go out and are numbered by the cluster,
 * messages come back in order (duplicates dropped, gaps refused, forced
 * ones announced), a topic's past loaded as history only, the first and
 * last subscriber of a filter reported, and resumes that wait until the
 * topic's history is loaded. */
#include <string.h>

#include <axon/axon.h>

#include "hub/hub.h"
#include "runner.h"
#include "testutil.h"

typedef struct fake {
    int published, refuse;
    uint64_t last_seen;
    uint32_t history_seen;
    char needs[160]; /* "+f;-f;" in order */
    int presence_changes;
} fake;

static int f_publish(void *ud, hub_msg *m, uint64_t last, uint32_t history, uint64_t *ticket)
{
    fake *f = ud;
    if (f->refuse) return AX_EAGAIN;
    (void)m;
    f->published++;
    f->last_seen = last;
    f->history_seen = history;
    if (ticket) *ticket = 0;
    return 0;
}

static void f_need(void *ud, const char *filter, bool on)
{
    fake *f = ud;
    size_t n = strlen(f->needs);
    snprintf(f->needs + n, sizeof f->needs - n, "%c%s;", on ? '+' : '-', filter);
}

static int f_wait(void *ud, hub_ack *a, uint64_t t, void (*cb)(hub_ack *a, int status),
                  ax_loop *loop)
{
    (void)ud, (void)a, (void)t, (void)cb, (void)loop;
    return AX_EINVAL;
}

static void f_cancel(void *ud, hub_ack *a)
{
    (void)ud, (void)a;
}

static void f_present(void *ud, const char *room)
{
    fake *f = ud;
    (void)room;
    f->presence_changes++;
}

static void f_presence(void *ud, const char *room, void (*cb)(const char *name, void *ud),
                       void *cbud)
{
    (void)ud;
    if (strcmp(room, "chat/lobby") == 0) {
        cb("remote1", cbud);
        cb("here", cbud); /* also on this node: listed once */
    }
}

static const hub_backplane_ops FAKE = {f_publish,  f_need, f_wait, f_cancel, f_present,
                                       f_presence, NULL,   NULL,   NULL,     NULL};

typedef struct brec {
    hub_sub *s;
    char log[160];
} brec;

static bool b_write(hub_sub *s, hub_msg *m, void *ud)
{
    brec *r = ud;
    size_t n = strlen(r->log);
    (void)s;
    snprintf(r->log + n, sizeof r->log - n, "%s%llu=%.*s;", m->kind == HUB_GAP ? "gap" : "",
             (unsigned long long)m->seq, m->kind == HUB_GAP ? 0 : (int)m->payload_len, m->payload);
    return true;
}

static void b_kick(hub_sub *s, const char *why, void *ud)
{
    (void)s, (void)why, (void)ud;
}

static const hub_sub_ops b_ops = {b_write, b_kick};

static hub_msg *cluster_msg(const char *topic, uint64_t seq, const char *text)
{
    hub_msg *m = hub__msg_new(topic, strlen(topic), "peer", text, strlen(text));
    ASSERT(m != NULL);
    m->seq = seq;
    m->time_ms = 1;
    return m;
}

static int from_cluster(hub *h, const char *topic, uint64_t seq, const char *text, int how)
{
    hub_msg *m = cluster_msg(topic, seq, text);
    int rc = hub_backplane_deliver(h, m, how);
    hub_msg_unref(m);
    return rc;
}

static hub *mk(ax_loop *loop, fake *f)
{
    char why[128];
    hub_rule r = {"#", 3, 0, HUB_DISCONNECT};
    hub_opts o = {.rules = &r, .nrules = 1};
    hub *h = hub_new(loop, &o, why, sizeof why);
    ASSERT(h != NULL);
    memset(f, 0, sizeof(*f));
    hub_set_backplane(h, &FAKE, f);
    return h;
}

TEST(backplane_publish_goes_out_and_comes_back_in_order)
{
    ax_loop *loop = tu_loop();
    fake f;
    hub *h = mk(loop, &f);
    brec r = {0};
    r.s = hub_sub_new(h, &b_ops, &r, NULL);
    ASSERT_EQ(hub_subscribe(r.s, "t/a", -1, false), 0);
    ASSERT_STREQ(f.needs, "+t/a;");
    int err = 0;
    ASSERT_EQ(hub_publish(h, "t/a", "me", "x", 1, &err), 1); /* a lower bound */
    ASSERT_EQ(f.published, 1);
    ASSERT_EQ(f.history_seen, 3);
    ASSERT_STREQ(r.log, ""); /* not delivered until it comes back */
    ASSERT_EQ(from_cluster(h, "t/a", 1, "x", HUB_BPD_IN_ORDER), HUB_BP_OK);
    ASSERT_EQ(from_cluster(h, "t/a", 1, "x", HUB_BPD_IN_ORDER), HUB_BP_DUP);
    ASSERT_EQ(from_cluster(h, "t/a", 2, "y", HUB_BPD_IN_ORDER), HUB_BP_OK);
    ASSERT_EQ(from_cluster(h, "t/a", 5, "z", HUB_BPD_IN_ORDER), HUB_BP_GAP); /* 3, 4 first */
    ASSERT_EQ(from_cluster(h, "t/a", 3, "3", HUB_BPD_FORCE), HUB_BP_OK);
    ASSERT_EQ(from_cluster(h, "t/a", 5, "z", HUB_BPD_FORCE), HUB_BP_OK); /* 4 is lost */
    ASSERT_STREQ(r.log, "1=x;2=y;3=3;gap5=;5=z;");
    ASSERT_EQ(hub_backplane_last(h, "t/a"), 5);
    ASSERT_EQ(hub_publish(h, "t/a", "me", "w", 1, &err), 6);
    ASSERT_EQ(f.last_seen, 5);
    f.refuse = 1; /* the cluster is away: refused, not queued */
    ASSERT_EQ(hub_publish(h, "t/a", "me", "w", 1, &err), 0);
    ASSERT_EQ(err, AX_EAGAIN);
    hub_sub_free(r.s);
    ASSERT_STREQ(f.needs, "+t/a;-t/a;");
    hub_free(h);
    ax_loop_free(loop);
}

TEST(backplane_history_is_not_live_and_resumes_wait)
{
    ax_loop *loop = tu_loop();
    fake f;
    hub *h = mk(loop, &f);
    brec live = {0}, back = {0};
    live.s = hub_sub_new(h, &b_ops, &live, NULL);
    ASSERT_EQ(hub_subscribe(live.s, "t/b", -1, false), 0);
    /* the topic's past, loaded when it became needed: history only */
    ASSERT_EQ(from_cluster(h, "t/b", 7, "p7", HUB_BPD_HISTORY), HUB_BP_OK);
    ASSERT_EQ(from_cluster(h, "t/b", 8, "p8", HUB_BPD_HISTORY), HUB_BP_OK);
    ASSERT_STREQ(live.log, "");
    hub_backplane_ready(h, "t/b");
    /* a resume now replays it */
    back.s = hub_sub_new(h, &b_ops, &back, NULL);
    ASSERT_EQ(hub_subscribe(back.s, "t/b", 7, false), 0);
    ASSERT_STREQ(back.log, "8=p8;");
    ASSERT_STREQ(f.needs, "+t/b;"); /* the second subscriber needs nothing new */
    hub_sub_free(back.s);
    hub_sub_free(live.s);
    /* a first subscriber that resumes waits for the history */
    brec late = {0};
    late.s = hub_sub_new(h, &b_ops, &late, NULL);
    ASSERT_EQ(hub_subscribe(late.s, "t/c", 0, false), 0);
    ASSERT_STREQ(f.needs, "+t/b;-t/b;+t/c;");
    ASSERT_EQ(from_cluster(h, "t/c", 4, "c4", HUB_BPD_HISTORY), HUB_BP_OK);
    ASSERT_EQ(from_cluster(h, "t/c", 5, "c5", HUB_BPD_FORCE), HUB_BP_OK); /* live, held */
    ASSERT_STREQ(late.log, "");
    hub_backplane_ready(h, "t/c");
    ASSERT_STREQ(late.log, "gap4=;4=c4;5=c5;"); /* from 0: 1-3 are gone */
    hub_sub_free(late.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(backplane_older_past_goes_before_what_a_wildcard_brought)
{
    ax_loop *loop = tu_loop();
    fake f;
    hub *h = mk(loop, &f);
    /* a wildcard brought 5 and 6 first; the stream has 2-4 before them */
    ASSERT_EQ(from_cluster(h, "t/w", 5, "p5", HUB_BPD_FORCE), HUB_BP_OK);
    ASSERT_EQ(from_cluster(h, "t/w", 6, "p6", HUB_BPD_FORCE), HUB_BP_OK);
    ASSERT_EQ(hub_backplane_first(h, "t/w"), 5);
    hub_msg *old[4] = {cluster_msg("t/w", 2, "p2"), cluster_msg("t/w", 3, "p3"),
                       cluster_msg("t/w", 4, "p4"), cluster_msg("t/w", 5, "dup")};
    hub_backplane_older(h, "t/w", old, 4);
    for (int i = 0; i < 4; i++)
        hub_msg_unref(old[i]);
    ASSERT_EQ(hub_backplane_first(h, "t/w"), 4); /* the history bound (3) keeps the newest */
    ASSERT_EQ(hub_backplane_last(h, "t/w"), 6);
    brec r = {0};
    r.s = hub_sub_new(h, &b_ops, &r, NULL);
    ASSERT_EQ(hub_subscribe(r.s, "t/w", 3, false), 0);
    hub_backplane_ready(h, "t/w");
    ASSERT_STREQ(r.log, "4=p4;5=p5;6=p6;");
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

static void stamped(hub *h, const char *topic, uint64_t seq, const char *text, uint64_t stamp,
                    int64_t time_ms)
{
    hub_msg *m = cluster_msg(topic, seq, text);
    m->stamp = stamp;
    m->time_ms = time_ms;
    ASSERT_EQ(hub_backplane_deliver(h, m, HUB_BPD_FORCE), HUB_BP_OK);
    hub_msg_unref(m);
}

TEST(backplane_cursors_resume_unlisted_topics_after_the_stamp)
{
    /* an MQTT session that moved (hub_subscribe_cursors): t/x is in its
     * hand-over row (from its seq), t/y and t/z are not: after the old
     * owner's mark (stamp 20), a message without a stamp (an older
     * node's) by its time */
    ax_loop *loop = tu_loop();
    fake f;
    hub *h = mk(loop, &f);
    stamped(h, "t/x", 1, "x1", 5, 9);
    stamped(h, "t/x", 2, "x2", 6, 9);
    stamped(h, "t/y", 1, "y1", 20, 9); /* the old owner had it */
    stamped(h, "t/y", 2, "y2", 30, 9);
    stamped(h, "t/y", 3, "y3", 0, 9); /* no stamp, at or after from_ms */
    stamped(h, "t/z", 1, "z1", 0, 1); /* no stamp, before from_ms */
    hub_cursor cur[] = {{"t/x", 1}};
    brec r = {0}, old = {0};
    r.s = hub_sub_new(h, &b_ops, &r, NULL);
    hub_point at = {5, 20};
    ASSERT_EQ(hub_subscribe_cursors(r.s, "t/+", cur, 1, &at), 0);
    ASSERT_STREQ(r.log, "2=x2;2=y2;3=y3;");
    /* without a mark (a row of an older node): by time alone */
    old.s = hub_sub_new(h, &b_ops, &old, NULL);
    hub_point by_time = {5, 0};
    ASSERT_EQ(hub_subscribe_cursors(old.s, "t/+", cur, 1, &by_time), 0);
    ASSERT_STREQ(old.log, "2=x2;1=y1;2=y2;3=y3;");
    hub_sub_free(old.s);
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

static void collect(const char *name, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s;", name);
}

TEST(backplane_presence_lists_other_nodes)
{
    ax_loop *loop = tu_loop();
    fake f;
    hub *h = mk(loop, &f);
    brec r = {0};
    r.s = hub_sub_new(h, &b_ops, &r, "here");
    ASSERT_EQ(hub_subscribe(r.s, "chat/lobby", -1, true), 0);
    ASSERT_EQ(f.presence_changes, 1);
    char names[256] = "";
    hub_presence(h, "chat/lobby", collect, names);
    ASSERT_STREQ(names, "here;remote1;");
    names[0] = '\0';
    hub_presence_local(h, "chat/lobby", collect, names);
    ASSERT_STREQ(names, "here;");
    hub_sub_free(r.s);
    ASSERT_EQ(f.presence_changes, 2);
    hub_free(h);
    ax_loop_free(loop);
}
