/* test_hub.c: the hub engine without any gateway: topic and filter rules,
 * wildcard delivery through the tree, sequence numbers, bounded history and
 * resume with gap notices, presence events, the three slow-consumer
 * policies, frees from inside callbacks, and the SQLite store across a
 * restart. */
#include <string.h>
#include <unistd.h>

#include <axon/axon.h>

#include "hub/auth.h"
#include "hub/hub.h"
#include "runner.h"
#include "testutil.h"

/* A subscriber that records what it gets; `room` messages fit before the
 * wire reports full (-1: never full). */
typedef struct rec {
    hub_sub *s;
    int got, room, kicks;
    char log[2048];
    bool free_in_write;
} rec;

static bool rec_write(hub_sub *s, hub_msg *m, void *ud)
{
    rec *r = ud;
    r->got++;
    size_t n = strlen(r->log);
    const char *kind = m->kind == HUB_JOIN    ? "join:"
                       : m->kind == HUB_LEAVE ? "leave:"
                       : m->kind == HUB_GAP   ? "gap:"
                                              : "";
    snprintf(r->log + n, sizeof r->log - n, "%s%s#%llu=%.*s%s;", kind, m->topic,
             (unsigned long long)m->seq, (int)m->payload_len, m->payload,
             m->kind == HUB_MSG ? "" : m->sender);
    if (r->free_in_write) {
        hub_sub_free(s);
        r->s = NULL;
        return false;
    }
    if (r->room < 0) return true;
    return --r->room > 0;
}

static void rec_kick(hub_sub *s, const char *why, void *ud)
{
    rec *r = ud;
    r->kicks++;
    ASSERT(strstr(why, "slow") != NULL);
}

static const hub_sub_ops rec_ops = {rec_write, rec_kick};

#define LOG_IS(r, want)                                                                            \
    do {                                                                                           \
        if (strcmp((r).log, (want)) != 0) fprintf(stderr, "# log: %s\n", (r).log);                 \
        ASSERT(strcmp((r).log, (want)) == 0);                                                      \
    } while (0)

static hub *mk_hub(ax_loop *loop, hub_rule *rules, int n, const char *dir)
{
    char why[256] = "";
    hub_opts o = {.rules = rules, .nrules = n, .sub_budget = 1000, .data_dir = dir};
    hub *h = hub_new(loop, &o, why, sizeof why);
    if (!h) fprintf(stderr, "hub_new: %s\n", why);
    ASSERT(h != NULL);
    return h;
}

static void sub(hub *h, rec *r, const char *name)
{
    memset(r, 0, sizeof(*r));
    r->room = -1;
    r->s = hub_sub_new(h, &rec_ops, r, name);
    ASSERT(r->s != NULL);
}

/* sub() for each of n recorders, unnamed */
static void subs(hub *h, rec *const *rs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sub(h, rs[i], NULL);
}

static void pub(hub *h, const char *topic, const char *text)
{
    int err = 0;
    ASSERT(hub_publish(h, topic, "tester", text, strlen(text), &err) > 0);
}

/* hub_new failing at each of its allocations in turn: NULL with a reason,
 * nothing leaked, nothing released that was never set up. */
TEST(hub_new_out_of_memory)
{
    tu_alloc_install();
    ax_loop *loop = tu_loop();
    long live = tu_alloc_live_count();
    hub_rule rules[] = {{"#", 10, 0, HUB_DROP_OLDEST}};
    hub_opts o = {.rules = rules, .nrules = 1};
    hub *h = NULL;
    for (long n = 0; !h; n++) {
        ASSERT(n < 100);
        char why[64] = "";
        tu_alloc_fail_once_after(n);
        h = hub_new(loop, &o, why, sizeof why);
        tu_alloc_fail_after(-1);
        if (!h) ASSERT_STREQ(why, "out of memory");
        if (!h) ASSERT_EQ(tu_alloc_live_count(), live);
    }
    hub_free(h);
    ASSERT_EQ(tu_alloc_live_count(), live);
    ax_loop_free(loop);
}

TEST(hub_names_and_filters)
{
    ASSERT(hub_topic_valid("chat/lobby", 10));
    ASSERT(!hub_topic_valid("chat/+", 6));
    ASSERT(!hub_topic_valid("", 0));
    ASSERT(!hub_topic_valid("a\nb", 3));
    ASSERT(!hub_topic_valid("\xff", 1));
    ASSERT(hub_filter_valid("a/+/c", 5));
    ASSERT(hub_filter_valid("#", 1));
    ASSERT(hub_filter_valid("a/#", 3));
    ASSERT(!hub_filter_valid("a/#/c", 5));
    ASSERT(!hub_filter_valid("a/b+", 4));
    ASSERT(!hub_filter_valid("a#", 2));
    ASSERT(hub_filter_match("a/+/c", "a/b/c"));
    ASSERT(!hub_filter_match("a/+/c", "a/b/d"));
    ASSERT(hub_filter_match("a/#", "a"));
    ASSERT(hub_filter_match("a/#", "a/b/c"));
    ASSERT(!hub_filter_match("a/+", "a/b/c"));
    ASSERT(hub_filter_match("+/+", "a/b"));
    ASSERT(!hub_filter_match("#", "$SYS/x"));
    ASSERT(hub_filter_match("$SYS/#", "$SYS/x"));
    ASSERT(hub_filter_match("a//c", "a//c"));
    ASSERT(hub_filter_match("a/+/c", "a//c"));
}

TEST(hub_wildcards_deliver_once)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b, c, d, e;
    subs(h, (rec *[]){&a, &b, &c, &d, &e}, 5);
    ASSERT_EQ(hub_subscribe(a.s, "sensors/+/temp", -1, false), 0);
    ASSERT_EQ(hub_subscribe(b.s, "sensors/#", -1, false), 0);
    ASSERT_EQ(hub_subscribe(b.s, "sensors/kitchen/temp", -1, false), 0); /* overlaps */
    ASSERT_EQ(hub_subscribe(c.s, "#", -1, false), 0);
    ASSERT_EQ(hub_subscribe(d.s, "sensors/kitchen", -1, false), 0);
    ASSERT_EQ(hub_subscribe(e.s, "+/+/+/+", -1, false), 0);
    ASSERT_EQ(hub_subscribe(e.s, "bad/#/x", -1, false), AX_EINVAL);
    pub(h, "sensors/kitchen/temp", "21");
    pub(h, "sensors/kitchen", "on");
    pub(h, "$SYS/load", "1");
    LOG_IS(a, "sensors/kitchen/temp#1=21;");
    LOG_IS(b, "sensors/kitchen/temp#1=21;sensors/kitchen#1=on;");
    LOG_IS(c, "sensors/kitchen/temp#1=21;sensors/kitchen#1=on;");
    LOG_IS(d, "sensors/kitchen#1=on;");
    LOG_IS(e, "");
    ASSERT_EQ(hub_unsubscribe(b.s, "sensors/#"), 0);
    ASSERT_EQ(hub_unsubscribe(b.s, "sensors/#"), AX_ENOENT);
    pub(h, "sensors/kitchen/temp", "22");
    pub(h, "sensors/hall", "off");
    LOG_IS(b, "sensors/kitchen/temp#1=21;sensors/kitchen#1=on;sensors/kitchen/temp#2=22;");
    hub_sub_free(a.s);
    hub_sub_free(b.s);
    hub_sub_free(c.s);
    hub_sub_free(d.s);
    hub_sub_free(e.s);
    pub(h, "sensors/kitchen/temp", "23"); /* nobody left: the tree is empty */
    ASSERT_EQ(hub_stats_get(h)->subscribers, 0);
    hub_free(h);
    ax_loop_free(loop);
}

/* A topic's first subscription is in its tree node's slot (docs/scale.md):
 * the others, the slot's reuse once it leaves, and a node kept by its kid. */
TEST(hub_first_subscription_in_the_node)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b, c, d, e;
    subs(h, (rec *[]){&a, &b, &c, &d, &e}, 5);
    ASSERT_EQ(hub_subscribe(a.s, "room/1", -1, false), 0); /* the slot */
    ASSERT_EQ(hub_subscribe(b.s, "room/1", -1, false), 0); /* its own */
    ASSERT_EQ(hub_subscribe(c.s, "room/1/x", -1, false), 0);
    pub(h, "room/1", "p");
    ASSERT_EQ(hub_unsubscribe(a.s, "room/1"), 0);          /* the slot is free, the node stays */
    ASSERT_EQ(hub_subscribe(d.s, "room/1", -1, false), 0); /* takes it again */
    pub(h, "room/1", "q");
    ASSERT_EQ(hub_unsubscribe(b.s, "room/1"), 0);
    pub(h, "room/1", "r");
    ASSERT_EQ(hub_unsubscribe(d.s, "room/1"), 0); /* its kid keeps the node */
    pub(h, "room/1/x", "s");
    hub_sub_free(c.s); /* the tree is empty */
    ASSERT_EQ(hub_subscribe(e.s, "room/1", -1, false), 0);
    ASSERT_EQ(hub_subscribe(a.s, "room/1", -1, false), 0);
    pub(h, "room/1", "t");
    LOG_IS(a, "room/1#1=p;room/1#4=t;");
    LOG_IS(b, "room/1#1=p;room/1#2=q;");
    LOG_IS(c, "room/1/x#1=s;");
    LOG_IS(d, "room/1#2=q;room/1#3=r;");
    LOG_IS(e, "room/1#4=t;");
    hub_sub_free(a.s);
    hub_sub_free(b.s);
    hub_sub_free(d.s);
    hub_sub_free(e.s);
    ASSERT_EQ(hub_stats_get(h)->subscribers, 0);
    hub_free(h);
    ax_loop_free(loop);
}

/* A gateway's state in its subscriber's allocation (hub_sub_new_ext):
 * found both ways, zeroed, and still there after hub_sub_close() (nothing
 * delivered, unsubscribed) until hub_sub_free(); ASan checks the rest. */
static int ext_writes;

static bool ext_write(hub_sub *s, hub_msg *m, void *ud)
{
    (void)m, (void)ud;
    ASSERT_EQ(*(uint64_t *)hub_sub_ext(s), 0x5eed);
    ext_writes++;
    return true;
}

static const hub_sub_ops ext_ops = {ext_write, rec_kick};

TEST(hub_sub_ext_lives_until_free)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    int gw;
    hub_sub *s = hub_sub_new_ext(h, &ext_ops, &gw, "ann", 96);
    ASSERT(s != NULL);
    uint64_t *ext = hub_sub_ext(s);
    ASSERT_EQ((uintptr_t)ext % 8, 0);
    for (size_t i = 0; i < 96 / 8; i++)
        ASSERT_EQ(ext[i], 0);
    ASSERT(hub_sub_of_ext(ext) == s);
    ASSERT(hub_sub_data(s) == &gw);
    ext[0] = 0x5eed;
    ext[11] = 7; /* the last of the 96 bytes */
    ASSERT_EQ(hub_subscribe(s, "room/a", -1, false), 0);
    pub(h, "room/a", "1");
    ASSERT_EQ(ext_writes, 1);
    hub_sub_close(s);
    ASSERT_EQ(hub_stats_get(h)->subscribers, 0);
    pub(h, "room/a", "2"); /* closed: not delivered */
    ASSERT_EQ(ext_writes, 1);
    ASSERT_EQ(ext[0], 0x5eed); /* still ours */
    ASSERT_EQ(ext[11], 7);
    ASSERT(hub_sub_data(s) == &gw);
    hub_sub_free(s); /* the memory goes now */
    hub_sub *t = hub_sub_new_ext(h, &ext_ops, &gw, NULL, 8);
    ASSERT(t != NULL);
    hub_sub_free(t); /* freed without a close: as hub_sub_free always did */
    hub_free(h);
    ax_loop_free(loop);
}

static void hist_cb(hub_msg *m, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%llu,", (unsigned long long)m->seq);
}

TEST(hub_history_resume_and_gap)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"chat/#", 5, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    for (int i = 1; i <= 8; i++) {
        char t[8];
        snprintf(t, sizeof t, "m%d", i);
        pub(h, "chat/lobby", t);
    }
    rec a, b, c;
    sub(h, &a, NULL);
    ASSERT_EQ(hub_subscribe(a.s, "chat/lobby", 6, false), 0); /* saw 6: gets 7, 8 */
    pub(h, "chat/lobby", "m9");
    LOG_IS(a, "chat/lobby#7=m7;chat/lobby#8=m8;chat/lobby#9=m9;");
    sub(h, &b, NULL);
    ASSERT_EQ(hub_subscribe(b.s, "chat/lobby", 1, false), 0); /* 2..4 are gone */
    ASSERT(strncmp(b.log, "gap:chat/lobby#5=", 17) == 0);
    ASSERT(strstr(b.log, "chat/lobby#5=m5;chat/lobby#6=m6;") != NULL);
    sub(h, &c, NULL);
    ASSERT_EQ(hub_subscribe(c.s, "chat/+", 8, false), 0); /* wildcard: per topic */
    LOG_IS(c, "chat/lobby#9=m9;");
    uint64_t first = 0;
    char hist[256] = "";
    ASSERT_EQ(hub_history(h, "chat/lobby", 0, 3, hist_cb, hist, &first), 9);
    ASSERT_STREQ(hist, "7,8,9,");
    ASSERT_EQ(first, 5);
    hist[0] = '\0';
    ASSERT_EQ(hub_history(h, "chat/lobby", 7, 100, hist_cb, hist, &first), 9);
    ASSERT_STREQ(hist, "8,9,");
    ASSERT_EQ(hub_history(h, "chat/none", 0, 100, hist_cb, hist, &first), 0);
    hub_sub_free(a.s);
    hub_sub_free(b.s);
    hub_sub_free(c.s);
    hub_free(h);
    ax_loop_free(loop);
}

static void names_cb(const char *name, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 128 - n, "%s,", name);
}

TEST(hub_presence_join_leave_rename)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b, watcher;
    sub(h, &watcher, NULL);
    ASSERT_EQ(hub_subscribe(watcher.s, "chat/lobby", -1, false), 0);
    sub(h, &a, "alice");
    sub(h, &b, "bob");
    ASSERT_EQ(hub_subscribe(a.s, "chat/lobby", -1, true), 0);
    ASSERT_EQ(hub_subscribe(b.s, "chat/lobby", -1, true), 0);
    LOG_IS(watcher, "join:chat/lobby#0=alice;join:chat/lobby#0=bob;");
    ASSERT(strstr(a.log, "join:chat/lobby#0=bob;") != NULL); /* alice sees bob come */
    char names[128] = "";
    hub_presence(h, "chat/lobby", names_cb, names);
    ASSERT(strstr(names, "alice,") && strstr(names, "bob,"));
    ASSERT_EQ(hub_sub_rename(b.s, "robert"), 0);
    ASSERT(strstr(watcher.log, "leave:chat/lobby#0=bob;join:chat/lobby#0=robert;") != NULL);
    hub_sub_free(a.s);
    ASSERT(strstr(watcher.log, "leave:chat/lobby#0=alice;") != NULL);
    names[0] = '\0';
    hub_presence(h, "chat/lobby", names_cb, names);
    ASSERT_STREQ(names, "robert,");
    hub_sub_free(b.s);
    hub_sub_free(watcher.s);
    hub_free(h);
    ax_loop_free(loop);
}

/* The hub re-checks what a subscriber may read on every path: a filter
 * wider than its identity (as after a token refresh, or a gateway that
 * forgot to check) still hands it only what it may read, in the resume
 * replay, the gap notice, live delivery and presence events. */
TEST(hub_identity_filters_every_delivery)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"#", 2, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    pub(h, "chat/lobby", "l1");
    for (int i = 1; i <= 4; i++)
        pub(h, "chat/ops", "secret");
    auth_identity *id = auth_identity_new("alice", false);
    ASSERT(id != NULL);
    ASSERT_EQ(auth_identity_add(id, "chat/lobby", AUTH_READ, false, NULL), 0);
    rec a, ops;
    sub(h, &a, "alice");
    hub_sub_set_identity(a.s, id);
    ASSERT_EQ(hub_subscribe(a.s, "chat/#", 0, true), 0); /* replay, gap on chat/ops */
    LOG_IS(a, "chat/lobby#1=l1;");
    sub(h, &ops, "oscar");
    ASSERT_EQ(hub_subscribe(ops.s, "chat/ops", -1, true), 0); /* a presence event */
    pub(h, "chat/ops", "live secret");
    pub(h, "chat/lobby", "l2");
    LOG_IS(a, "chat/lobby#1=l1;chat/lobby#2=l2;");
    hub_sub_set_identity(a.s, NULL); /* no identity: everything */
    pub(h, "chat/ops", "now");
    ASSERT(strstr(a.log, "chat/ops#6=now;") != NULL);
    hub_sub_free(a.s);
    hub_sub_free(ops.s);
    auth_identity_free(id);
    hub_free(h);
    ax_loop_free(loop);
}

/* Without identities (no auth configured) private topics are still their
 * owner's: user/NAME/... goes only to a subscriber called NAME, live and
 * in the replay, whatever its filter ("#" included). */
TEST(hub_private_topics_without_identity)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"#", 10, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    pub(h, "user/bob/inbox", "old");
    rec bob, eve, anon;
    sub(h, &bob, "bob");
    sub(h, &eve, "eve");
    sub(h, &anon, NULL);
    ASSERT_EQ(hub_subscribe(bob.s, "user/bob/inbox", 0, false), 0);
    ASSERT_EQ(hub_subscribe(eve.s, "#", 0, false), 0);
    ASSERT_EQ(hub_subscribe(anon.s, "#", 0, false), 0);
    pub(h, "user/bob/inbox", "hi bob");
    pub(h, "chat/lobby", "hi all");
    LOG_IS(bob, "user/bob/inbox#1=old;user/bob/inbox#2=hi bob;");
    LOG_IS(eve, "chat/lobby#1=hi all;");
    LOG_IS(anon, "chat/lobby#1=hi all;");
    ASSERT_EQ(hub_sub_rename(eve.s, "bob"), 0); /* a name is all it takes without auth */
    pub(h, "user/bob/inbox", "again");
    ASSERT(strstr(eve.log, "user/bob/inbox#3=again;") != NULL);
    hub_sub_free(bob.s);
    hub_sub_free(eve.s);
    hub_sub_free(anon.s);
    hub_free(h);
    ax_loop_free(loop);
}

static void run_policy(int policy, rec *r, hub **hp, ax_loop **lp)
{
    *lp = tu_loop();
    hub_rule rules[] = {{"#", 100, 0, policy}};
    hub *h = mk_hub(*lp, rules, 1, NULL);
    *hp = h;
    sub(h, r, NULL);
    r->room = 1; /* the wire is full after the first message */
    ASSERT_EQ(hub_subscribe(r->s, "t/#", -1, false), 0);
    /* budget 1000 bytes; each message costs about 64 + 40 */
    for (int i = 0; i < 40; i++) {
        char p[32];
        snprintf(p, sizeof p, "payload-%02d", i);
        pub(h, i % 2 ? "t/odd" : "t/even", p);
    }
}

TEST(hub_policy_disconnect)
{
    rec r;
    hub *h;
    ax_loop *loop;
    run_policy(HUB_DISCONNECT, &r, &h, &loop);
    ASSERT_EQ(r.kicks, 1);
    ASSERT_EQ(r.got, 1);
    ASSERT_EQ(hub_stats_get(h)->kicked, 1);
    int published = (int)hub_stats_get(h)->published;
    ASSERT_EQ(published, 40); /* the publisher never waited */
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_policy_drop_oldest)
{
    rec r;
    hub *h;
    ax_loop *loop;
    run_policy(HUB_DROP_OLDEST, &r, &h, &loop);
    ASSERT_EQ(r.kicks, 0);
    ASSERT(hub_sub_queued(r.s) <= 1000);
    ASSERT(hub_stats_get(h)->dropped > 20);
    r.room = -1;
    hub_sub_writable(r.s);
    ASSERT(strstr(r.log, "payload-39") != NULL); /* the newest survive */
    ASSERT(strstr(r.log, "payload-05") == NULL);
    ASSERT_EQ(hub_sub_queued(r.s), 0);
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_policy_keep_latest)
{
    rec r;
    hub *h;
    ax_loop *loop;
    run_policy(HUB_KEEP_LATEST, &r, &h, &loop);
    ASSERT_EQ(r.kicks, 0);
    r.room = -1;
    r.log[0] = '\0';
    hub_sub_writable(r.s);
    ASSERT_EQ(r.got, 3); /* the first, then one per topic */
    ASSERT(strstr(r.log, "t/even#20=payload-38;") && strstr(r.log, "t/odd#20=payload-39;"));
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_free_inside_write)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    rec a, b;
    sub(h, &a, "a");
    sub(h, &b, "b");
    ASSERT_EQ(hub_subscribe(a.s, "x", -1, true), 0);
    ASSERT_EQ(hub_subscribe(b.s, "x", -1, true), 0);
    a.free_in_write = true;
    pub(h, "x", "trigger"); /* a frees itself while the walk is on b's list too */
    ASSERT(a.s == NULL);
    ASSERT(strstr(b.log, "x#1=trigger;") != NULL);
    pub(h, "x", "after");
    ASSERT(strstr(b.log, "leave:x#1=a;") != NULL); /* presence events carry the room's last seq */
    ASSERT(strstr(b.log, "x#2=after;") != NULL);
    hub_sub_free(b.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_store_survives_restart)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/data", ax_test_tmpdir());
    hub_rule rules[] = {{"#", 50, 0, HUB_DISCONNECT}};
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, rules, 1, dir);
    for (int i = 1; i <= 120; i++) {
        char p[16];
        snprintf(p, sizeof p, "n%d", i);
        pub(h, i % 3 ? "room/a" : "room/b", p);
    }
    hub_free(h); /* flushes */
    h = mk_hub(loop, rules, 1, dir);
    char hist[256] = "";
    uint64_t first = 0;
    ASSERT_EQ(hub_history(h, "room/a", 78, 100, hist_cb, hist, &first), 80);
    ASSERT_STREQ(hist, "79,80,");
    ASSERT_EQ(first, 31); /* 50 kept */
    ASSERT_EQ(hub_history(h, "room/b", 0, 1, hist_cb, hist, &first), 40);
    pub(h, "room/a", "next"); /* the sequence continues */
    rec r;
    sub(h, &r, NULL);
    ASSERT_EQ(hub_subscribe(r.s, "room/a", 80, false), 0);
    LOG_IS(r, "room/a#81=next;");
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_many_unrelated_topics)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL);
    enum { N = 20000 };
    static rec rs[64];
    for (int i = 0; i < 64; i++)
        sub(h, &rs[i], NULL);
    for (int i = 0; i < N; i++) {
        char t[64];
        snprintf(t, sizeof t, "dev/%d/state", i);
        ASSERT_EQ(hub_subscribe(rs[i % 64].s, t, -1, false), 0);
    }
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < 20000; i++)
        pub(h, "dev/7/state", "x");
    uint64_t dt = tu_now_ms() - t0;
    ASSERT_EQ(rs[7].got, 20000);
    ASSERT(dt < 2000); /* the 19,999 other filters are never looked at */
    for (int i = 0; i < 64; i++)
        hub_sub_free(rs[i].s);
    hub_free(h);
    ax_loop_free(loop);
}

static hub *mk_hub_limits(ax_loop *loop, hub_rule *rules, int n, size_t topics, size_t filters)
{
    char why[256] = "";
    hub_opts o = {.rules = rules,
                  .nrules = n,
                  .sub_budget = 1000,
                  .max_topics = topics,
                  .max_filters = filters};
    hub *h = hub_new(loop, &o, why, sizeof why);
    ASSERT(h != NULL);
    return h;
}

static uint64_t try_pub(hub *h, const char *topic, int *err)
{
    *err = 0;
    return hub_publish(h, topic, "tester", "x", 1, err);
}

static void topic_cb(const char *topic, uint64_t last, size_t subs, void *ud)
{
    char *out = ud;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s=%llu/%zu,", topic, (unsigned long long)last, subs);
}

TEST(hub_topic_limit_and_free)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"tmp/#", 0, 0, HUB_DISCONNECT}}; /* keeps no history */
    hub *h = mk_hub_limits(loop, rules, 1, 3, 0);
    int err;
    ASSERT_EQ(try_pub(h, "a", &err), 1);
    ASSERT_EQ(try_pub(h, "tmp/1", &err), 1); /* no history, nobody there: freed at once */
    ASSERT_EQ(hub_stats_get(h)->topics, 1);
    ASSERT_EQ(try_pub(h, "tmp/1", &err), 2); /* back: above every seq it had, never reused */
    ASSERT_EQ(hub_stats_get(h)->topics, 1);
    /* a subscription to exactly the topic keeps it; a presence room too */
    rec s, p;
    sub(h, &s, NULL);
    sub(h, &p, "ann");
    ASSERT_EQ(hub_subscribe(s.s, "tmp/kept", -1, false), 0);
    ASSERT(try_pub(h, "tmp/kept", &err) > 0);
    ASSERT_EQ(hub_subscribe(p.s, "room/x", -1, true), 0);
    ASSERT_EQ(hub_stats_get(h)->topics, 3);
    /* full: a new topic is refused, old ones still take messages */
    ASSERT_EQ(try_pub(h, "b", &err), 0);
    ASSERT_EQ(err, HUB_ETOPICS);
    ASSERT(strstr(hub_strerror(err), "too many topics") != NULL);
    ASSERT_EQ(try_pub(h, "a", &err), 2);
    ASSERT_EQ(hub_subscribe(p.s, "room/y", -1, true), HUB_ETOPICS);
    /* leaving frees them again */
    ASSERT_EQ(hub_unsubscribe(s.s, "tmp/kept"), 0);
    hub_sub_free(p.s);
    ASSERT_EQ(hub_stats_get(h)->topics, 1);
    ASSERT(try_pub(h, "b", &err) > 0);
    ASSERT(try_pub(h, "c", &err) > 0);
    /* listing in name order, in pages, from a cursor */
    char out[256] = "", next[HUB_MAX_TOPIC + 1];
    ASSERT_EQ(hub_topics(h, NULL, 2, topic_cb, out, next), 2);
    ASSERT_STREQ(out, "a=2/0,b=1/0,");
    ASSERT_STREQ(next, "b");
    out[0] = '\0';
    ASSERT_EQ(hub_topics(h, next, 2, topic_cb, out, next), 1);
    ASSERT_STREQ(out, "c=1/0,");
    ASSERT_STREQ(next, "");
    hub_sub_free(s.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_topics_age_out_when_full)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"old/#", 100, 1, HUB_DISCONNECT}}; /* kept one second */
    hub *h = mk_hub_limits(loop, rules, 1, 50, 0);
    int err;
    char t[32];
    for (int i = 0; i < 50; i++) {
        snprintf(t, sizeof t, "old/%d", i);
        ASSERT(try_pub(h, t, &err) > 0);
    }
    ASSERT_EQ(try_pub(h, "new/0", &err), 0);
    ASSERT_EQ(err, HUB_ETOPICS);
    tu_sleep_ms(1100);
    ASSERT(try_pub(h, "new/0", &err) > 0); /* the sweep found the aged-out ones */
    ASSERT(hub_stats_get(h)->topics < 50);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_subscribe_limit_is_o1)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub_limits(loop, NULL, 0, 0, 40000);
    rec r;
    sub(h, &r, NULL);
    char f[64];
    uint64_t t0 = tu_now_ms();
    for (int i = 0; i < 40000; i++) {
        snprintf(f, sizeof f, "dev/%d/+", i);
        ASSERT_EQ(hub_subscribe(r.s, f, -1, false), 0);
    }
    ASSERT_EQ(hub_subscribe(r.s, "dev/7/+", -1, false), 0); /* again: nothing changes */
    ASSERT_EQ(hub_subscribe(r.s, "one/more", -1, false), HUB_EFILTERS);
    ASSERT_EQ(hub_subscribe_check(r.s, "one/more"), HUB_EFILTERS);
    ASSERT_EQ(hub_subscribe_check(r.s, "dev/7/+"), 0);
    ASSERT_EQ(hub_subscribe_check(r.s, "a/#/b"), AX_EINVAL);
    for (int i = 0; i < 40000; i += 2) {
        snprintf(f, sizeof f, "dev/%d/+", i);
        ASSERT_EQ(hub_unsubscribe(r.s, f), 0);
    }
    uint64_t dt = tu_now_ms() - t0;
    ASSERT(dt < 1500); /* a scan per call would be 40,000^2 / 2 comparisons */
    ASSERT_EQ(hub_subscribe(r.s, "one/more", -1, false), 0);
    pub(h, "dev/7/x", "hi");
    pub(h, "dev/8/x", "no");
    LOG_IS(r, "dev/7/x#1=hi;");
    hub_sub_free(r.s);
    hub_free(h);
    ax_loop_free(loop);
}

/* A subscriber whose wire takes `room` messages at a time; it checks that
 * each topic's seqs only grow (a gap notice may skip ahead). */
typedef struct paced {
    hub_sub *s;
    int room, n, gaps, kicks, bad;
    uint64_t last[4]; /* per topic: by its last byte - 'a' */
} paced;

static bool paced_write(hub_sub *s, hub_msg *m, void *ud)
{
    paced *p = ud;
    (void)s;
    uint64_t *last = &p->last[(m->topic[m->topic_len - 1] - 'a') & 3];
    if (m->kind == HUB_GAP) {
        p->gaps++;
        if (m->seq <= *last + 1) p->bad++; /* a gap that is none */
        *last = m->seq - 1;
    } else if (m->kind == HUB_MSG) {
        if (m->seq != *last + 1) p->bad++;
        *last = m->seq;
        p->n++;
    }
    return --p->room > 0;
}

static void paced_kick(hub_sub *s, const char *why, void *ud)
{
    paced *p = ud;
    (void)s, (void)why;
    p->kicks++;
}

static const hub_sub_ops paced_ops = {paced_write, paced_kick};

/* Let the wire take `room` more at a time until nothing comes. */
static void paced_drain(paced *p, int room)
{
    for (int i = 0; i < 100000; i++) {
        int before = p->n + p->gaps;
        p->room = room;
        hub_sub_writable(p->s);
        if (p->n + p->gaps == before) return;
    }
}

TEST(hub_resume_is_paced)
{
    ax_loop *loop = tu_loop();
    hub *h = mk_hub(loop, NULL, 0, NULL); /* budget: 1000 bytes, history 1000 */
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int i = 0; i < 300; i++) /* 300 x 400 B: far past the budget */
        pub(h, "r/a", big);
    paced p = {.room = 4};
    p.s = hub_sub_new(h, &paced_ops, &p, NULL);
    ASSERT_EQ(hub_subscribe(p.s, "r/a", 0, false), 0);
    ASSERT_EQ(p.n, 4); /* stops when the wire is full */
    ASSERT(hub_sub_queued(p.s) == 0);
    pub(h, "r/a", big); /* live ones wait their turn */
    pub(h, "r/b", "other topic, live");
    ASSERT_EQ(p.n, 4);
    paced_drain(&p, 3);
    ASSERT_EQ(p.kicks, 0);
    ASSERT_EQ(p.bad, 0);
    ASSERT_EQ(p.last[0], 301);
    ASSERT_EQ(p.n, 301);
    pub(h, "r/a", big); /* the replay is over: live again */
    ASSERT_EQ(p.last[0], 302);
    hub_sub_free(p.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_resume_paced_wildcard_and_gap)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"w/#", 20, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    for (int i = 0; i < 30; i++) {
        pub(h, "w/a", "1");
        pub(h, "w/b", "2");
        pub(h, "w/c", "3");
        pub(h, "x/a", "not matched");
    }
    paced p = {.room = 5};
    p.s = hub_sub_new(h, &paced_ops, &p, NULL);
    ASSERT_EQ(hub_subscribe(p.s, "w/+", 5, false), 0); /* 6..10 are gone: a gap each */
    ASSERT_EQ(p.gaps, 1);
    ASSERT_EQ(p.last[0], 14);      /* gap to 11, then 11..14 */
    for (int i = 0; i < 25; i++) { /* meanwhile: w/a's history moves past the replay */
        pub(h, "w/a", "1");
        pub(h, "w/b", "2");
    }
    pub(h, "w/d", "new");
    paced_drain(&p, 2);
    ASSERT_EQ(p.kicks, 0);
    ASSERT_EQ(p.bad, 0);
    ASSERT_EQ(p.last[0], 55);
    ASSERT_EQ(p.last[1], 55);
    ASSERT_EQ(p.last[2], 30);
    ASSERT_EQ(p.last[3], 1);
    ASSERT_EQ(p.gaps, 4); /* w/a again (it fell behind), w/b, w/c */
    p.room = 100;
    pub(h, "w/c", "live");
    ASSERT_EQ(p.last[2], 31);
    hub_sub_free(p.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_resume_gap_fills_the_wire)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"g/#", 5, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    for (int i = 0; i < 20; i++)
        pub(h, "g/a", "m");
    paced p = {.room = 1};
    p.s = hub_sub_new(h, &paced_ops, &p, NULL);
    ASSERT_EQ(hub_subscribe(p.s, "g/a", 0, false), 0);
    ASSERT_EQ(p.gaps, 1); /* the wire took only the gap notice */
    ASSERT_EQ(p.n, 0);
    ASSERT(hub_sub_queued(p.s) == 0);
    paced_drain(&p, 1);
    ASSERT_EQ(p.gaps, 1); /* said once */
    ASSERT_EQ(p.n, 5);
    ASSERT_EQ(p.bad, 0);
    ASSERT_EQ(p.last[0], 20);
    hub_sub_free(p.s);
    hub_free(h);
    ax_loop_free(loop);
}

TEST(hub_history_in_steps)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"h/#", 50, 0, HUB_DISCONNECT}};
    hub *h = mk_hub(loop, rules, 1, NULL);
    for (int i = 0; i < 30; i++)
        pub(h, "h/a", "m");
    uint64_t first, from;
    ASSERT_EQ(hub_history_window(h, "h/a", 5, 10, &first, &from), 30);
    ASSERT_EQ(first, 1);
    ASSERT_EQ(from, 20); /* the newest 10 after 5: 21..30 */
    hub_msg *pos = NULL;
    char hist[256] = "";
    ASSERT_EQ(hub_history_more(h, "h/a", &pos, &from, 30, 4, hist_cb, hist), 4);
    for (int i = 0; i < 25; i++) /* more come, older ones go: the window stays */
        pub(h, "h/a", "m");
    while (hub_history_more(h, "h/a", &pos, &from, 30, 4, hist_cb, hist))
        ;
    ASSERT_STREQ(hist, "21,22,23,24,25,26,27,28,29,30,");
    hub_msg_unref(pos);
    ASSERT_EQ(hub_history_window(h, "h/none", 0, 10, &first, &from), 0);
    hub_free(h);
    ax_loop_free(loop);
}

static void rec_retained(hub_msg *m, void *ud)
{
    rec *r = ud;
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s=%.*s%s;", m->topic, (int)m->payload_len, m->payload,
             m->retain ? "" : "(not retained)");
}

static void pub_retained(hub *h, const char *topic, const char *text, uint32_t expiry_s)
{
    hub_pub p = {.topic = topic,
                 .sender = "tester",
                 .payload = text,
                 .len = strlen(text),
                 .qos = 1,
                 .retain = true,
                 .expiry_s = expiry_s};
    uint64_t ticket;
    int err = 0;
    ASSERT(hub_publish_pub(h, &p, &ticket, &err) > 0);
}

/* Retained messages: set, replaced, cleared by an empty one, kept while
 * the history rule keeps nothing, and given out under the subscriber's
 * read check (the same as live delivery) and their expiry. */
TEST(hub_retained_set_replace_clear_and_read_check)
{
    ax_loop *loop = tu_loop();
    hub_rule rules[] = {{"#", 0, 0, HUB_DISCONNECT}}; /* no history at all */
    hub *h = mk_hub(loop, rules, 1, NULL);
    pub_retained(h, "dev/a", "one", 0);
    pub_retained(h, "dev/a", "two", 0); /* replaces */
    pub_retained(h, "dev/b", "bee", 0);
    pub_retained(h, "dev/c", "cee", 0);
    pub_retained(h, "dev/c", "", 0); /* clears */
    pub_retained(h, "user/bob/x", "bob's", 0);
    pub_retained(h, "dev/old", "stale", 1);
    pub(h, "dev/b", "not retained"); /* an ordinary publish leaves the retained one */
    rec r;
    sub(h, &r, NULL);
    ASSERT_EQ(hub_retained(r.s, "dev/#", rec_retained, &r), 3);
    LOG_IS(r, "dev/a=two;dev/b=bee;dev/old=stale;");
    r.log[0] = '\0';
    ASSERT_EQ(hub_retained(r.s, "dev/a", rec_retained, &r), 1);
    ASSERT_EQ(hub_retained(r.s, "+/+", rec_retained, &r), 3);
    LOG_IS(r, "dev/a=two;dev/a=two;dev/b=bee;dev/old=stale;");
    auth_identity *id = auth_identity_new("alice", false);
    ASSERT_EQ(auth_identity_add(id, "#", AUTH_READ, false, NULL), 0);
    ASSERT_EQ(auth_identity_add(id, "dev/b", AUTH_READ, true, NULL), 0); /* denied */
    hub_sub_set_identity(r.s, id);
    r.log[0] = '\0';
    ASSERT_EQ(hub_retained(r.s, "#", rec_retained, &r), 2); /* no dev/b, no user/bob */
    LOG_IS(r, "dev/a=two;dev/old=stale;");
    hub_sub_set_identity(r.s, NULL);
    r.log[0] = '\0';
    ASSERT_EQ(hub_retained(r.s, "user/#", rec_retained, &r), 0); /* bob's, by name only */
    ASSERT_EQ(hub_sub_rename(r.s, "bob"), 0);
    ASSERT_EQ(hub_retained(r.s, "user/#", rec_retained, &r), 1);
    usleep(1100 * 1000); /* dev/old expires */
    r.log[0] = '\0';
    ASSERT_EQ(hub_retained(r.s, "dev/#", rec_retained, &r), 2);
    LOG_IS(r, "dev/a=two;dev/b=bee;");
    hub_sub_free(r.s);
    auth_identity_free(id);
    hub_free(h);
    ax_loop_free(loop);
}
