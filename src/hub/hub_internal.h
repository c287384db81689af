/* hub_internal.h: the hub's state (topics, the subscription tree,
 * subscribers, paced replays) shared by the files of the hub engine:
 * hub.c (topics, the tree, delivery, queues and policies, presence,
 * subscribers, publishing, the hub itself), hub_replay.c (history replay
 * and resume), hub_query.c (history, topics and presence queries),
 * hub_state.c (gateway state and retained messages in the store) and
 * hub_backplane.c (the cluster's side, redis.c).  Every lock rule of hub.c
 * holds: these functions run under the hub's lock unless they take it.
 * Nothing here is installed. */
#ifndef AXON_HUB_INTERNAL_H
#define AXON_HUB_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/alloc.h>

#include "auth.h"
#include "hub.h"
#include "index.h"
#include "map.h"
#include "proto/ws/utf8.h"

typedef struct node node;
typedef struct entry entry;
typedef struct htopic htopic;
typedef struct qnode qnode;
typedef struct rpair rpair;
typedef struct outbox outbox;
typedef struct job job;

#define HUB_FLOORS 1024
#define HUB_BUDGET_MAX (1u << 30)

struct rpair { /* a message on its way to another loop's subscriber */
    hub_sub *s;
    hub_msg *m;
};

/* Messages for one other loop.  One post at a time: what the publishes
 * made meanwhile joins the posted one, so that loop takes them all in one
 * wake-up and each subscriber gets its share in one write.  The pairs are
 * an array that loop hands back when it is done (`spare`), so a delivery
 * to another loop allocates nothing (a node malloc'd on one thread and
 * freed on the other cost more than the rest of the hand-over). */
struct outbox {
    outbox *next;
    ax_loop *loop;
    hub *h;
    rpair *v, *spare;
    size_t n, cap, spare_cap;
    bool posted; /* run_batch() is on its way: it takes v[0..n) */
};

/* One filter of one subscriber: offsetof(entry, filter) + its length + 1
 * (42 + 11 for "chat/lobby": glibc's 64-byte chunk).  Its node is the
 * filter's path in the tree (hub__node_path(), looked up when it leaves),
 * and the presence room the topic named by the filter (found by name:
 * joins, leaves and renames are rare next to an idle subscriber's bytes). */
struct entry {
    hub_sub *s;
    entry **npp, *nnext;  /* the node's subscribers: what points here, the next */
    entry *snext, *sprev; /* the subscriber's filters */
    bool replaying;       /* a job of s->jobs replays it (hub__job_of) */
    bool present;         /* presence joined in the topic named `filter` (its rooms count) */
    char filter[];
};
_Static_assert(offsetof(entry, filter) == 42, "entry: a subscription's bytes (docs/scale.md)");

typedef struct jcursor { /* hub_subscribe_cursors(): a topic's own resume point */
    htopic *t;           /* pinned (its rooms count) while the job lives */
    uint64_t seq;
    bool timed; /* found in the cluster's topic index: by time, as one not listed */
} jcursor;

struct job {      /* a paced replay: hub_subscribe() with `since` */
    job *next;    /* the subscriber's jobs, run in order */
    jcursor *cur; /* hub_subscribe_cursors(): per topic, else NULL */
    size_t ncur;
    int64_t from_ms;  /* with cur: a topic not in it from this time on */
    uint64_t stamp;   /* or after this stamp (hub_point) */
    uint64_t id;      /* (a visit's answer finds its job by it) */
    uint32_t waiting; /* visits of its topics not answered yet: it waits */
    bool listed;      /* topic `pos` is in cur */
    entry *e;         /* the filter it replays */
    hub_msg *last;    /* the last message sent of topic `pos`, or NULL */
    uint64_t since;   /* the client's: for each topic */
    uint64_t after;   /* topic `pos` is sent up to this seq */
    uint64_t gen;     /* topics made later are live only: nothing to replay */
    size_t plen;      /* the filter's bytes no topic it matches lacks */
    bool exact;
    bool began;                  /* topic `pos` is under way (its gap checked) */
    char pos[HUB_MAX_TOPIC + 2]; /* topics named below this are done */
};

/* A level of the subscription tree: one allocation with its key (this
 * level's name) right after `link`, its place in the parent's kids, and
 * after the key room for one entry of the filter that is this node's path
 * (hub__node_slot(): free while its `s` is NULL).  A topic's first
 * subscriber uses it, so that one subscription costs one chunk, not two
 * (112 bytes for idle/1234, not 64 + 64: docs/scale.md); the others are
 * allocations of their own.  The slot is in `subs` like any entry.  No
 * parent pointer: hub__node_prune() walks down from the root. */
struct node {
    hub_lmap kids;
    entry *subs;
    hub_link link; /* last: the key follows (HUB_LINK_KEY) */
};
_Static_assert(sizeof(node) == offsetof(node, link) + sizeof(hub_link), "node: key after link");
_Static_assert(sizeof(node) == 40, "node: an idle topic's bytes (docs/scale.md)");

struct htopic {
    hub_inode idx; /* in hub.index, by name */
    char *name;
    size_t len;
    uint64_t last_seq;
    hub_msg *head, *tail; /* history, oldest first */
    size_t n;
    uint64_t untrimmed; /* dropped from memory, not yet from the store */
    const hub_rule *rule;
    hub_map present;   /* name -> count of subscribers present with it */
    uint32_t rooms;    /* entries with it as their room */
    uint64_t born;     /* hub.topic_gen when it was made */
    hub_msg *retained; /* its retained message (hub_pub.retain), or NULL */
    bool reap_queued;
    bool bp_wait; /* resumes wait: the backplane is loading its history */
    htopic *reap_next;
};

struct qnode {
    qnode *next;
    hub_msg *m;
};

/* Field order: pointers, then the smaller fields packed (an idle
 * subscriber's bytes count: docs/scale.md). */
/* What few subscribers need: a queue (the wire is behind), replay jobs,
 * a map of many filters.  Made with the first of them (hub__sub_more())
 * and kept until the subscriber's memory goes; NULL in an idle one. */
typedef struct sub_more {
    qnode *qhead, **qtail;
    job *jobs;        /* in order (appended at the end: a subscriber has few) */
    hub_map *filters; /* filter -> entry, once it has more than FEW_FILTERS */
    uint32_t qbytes;  /* bytes queued (read unlocked: hub_sub_queued()) */
    /* how many before the policy applies (at most HUB_BUDGET_MAX: a queue
     * holds the budget and one message more); the hub's until set */
    uint32_t budget;
    /* wildcard resumes waiting for the cluster's topic index (hub_replay.c):
     * an unsubscribe of one's filter, or the close, cancels it */
    struct cursor_ask *asks;
} sub_more;

struct hub_sub {
    hub *h;
    union {
        const hub_sub_ops *ops; /* while alive (every call of it is after a dead check) */
        hub_sub *grave_next;    /* once dead: the hub's grave, until released */
    };
    void *ud;
    char *name; /* its own copy, or unnamed (""); changed under the lock */
    entry *entries;
    sub_more *more;           /* NULL until a queue, a job or a filter map */
    ax_loop *loop;            /* the loop that owns the subscriber's connection */
    const auth_identity *who; /* what it may read; NULL: everything (borrowed) */
    uint64_t stamp, id;
    uint32_t nfilters; /* entries in the list */
    uint32_t refs;     /* the owner's, and one per message in flight to it */
    uint32_t inflight;
    bool blocked, dead;
    bool closed; /* hub_sub_close(): the memory waits for hub_sub_free() */
};
/* 96 bytes (128 before its queue, jobs and filter map went to `more`):
 * with the /ws client after it one 160-byte chunk. */
_Static_assert(sizeof(hub_sub) == 96, "hub_sub: an idle subscriber's bytes (docs/scale.md)");

static inline qnode *hub__qhead(const hub_sub *s)
{
    return s->more ? s->more->qhead : NULL;
}

static inline job *hub__jobs(const hub_sub *s)
{
    return s->more ? s->more->jobs : NULL;
}

/* s->more, made if absent; NULL when out of memory. */
sub_more *hub__sub_more(hub_sub *s);

struct hub {
    ax_loop *loop;
    hub_rule *rules;
    int nrules;
    hub_rule fallback;
    size_t budget, max_payload;
    node root;
    hub_map topics;
    hub_inode *index; /* the topics by name */
    size_t max_topics, max_filters;
    uint64_t floors[HUB_FLOORS]; /* by name hash: the largest last_seq of a freed topic */
    uint64_t topic_gen;          /* topics made so far */
    uint64_t job_ids;            /* replay jobs made so far */
    uint64_t pub_born;           /* the born of the topic being published to */
    htopic *reap;                /* topics to free when the outermost call ends */
    char sweep_pos[HUB_MAX_TOPIC + 1];
    hub_store *store;
    hub_stats st;
    int walking;
    uint64_t stamp, next_id;
    hub_sub *grave;
    pthread_mutex_t mu; /* recursive: callbacks may call back in */
    int depth;
#ifdef AXON_LOCK_STATS /* contention of mu (hub__lock), under mu; printed by hub_free */
    uint64_t lk_taken, lk_contended, lk_wait_ns;
#endif
    outbox *outboxes;
    void (*write_begin)(void), (*write_end)(void); /* hub_set_write_hooks() */
    uint64_t seq_base;           /* new topics count from here (after a crash: store.c) */
    const hub_backplane_ops *bp; /* the cluster numbers and delivers (redis.c) */
    void *bp_ud;
};

#define RETAIN_NS "retain"
#define GAP_TEXT "history does not reach back that far"
#define HUB_RESUME_TOPICS_MAX 1000 /* topics a cluster resume reads (docs/cluster.md) */

/* hub.c and the others: helpers shared across the files (see where each is defined) */
ax_loop *hub__current_loop(const hub *h);
void hub__lock(hub *h);
void hub__unlock(hub *h);
int64_t hub__now_ms(void);
const hub_rule *hub__rule_for(hub *h, const char *topic);
htopic *hub__topic_get(hub *h, const char *name, size_t len);
htopic *hub__topic_of(hub_inode *n);
size_t hub__floor_of(const char *name, size_t len);
void hub__topic_consider(hub *h, htopic *t);
htopic *hub__topic_make(hub *h, const char *name, size_t len, bool bounded, int *err);
void hub__history_trim(hub *h, htopic *t, int64_t now);
void hub__history_add(htopic *t, hub_msg *m);
void hub__sub_unref(hub_sub *s);
bool hub__may_read(const hub_sub *s, const hub_msg *m);
void hub__sub_push_now(hub_sub *s, hub_msg *m);
void hub__deliver(hub *h, hub_msg *m);
node *hub__node_path(hub *h, const char *filter, bool make);
void hub__node_prune(hub *h, const char *filter);
entry *hub__node_slot(const node *n);
void hub__entry_free(node *n, entry *e);
void hub__presence_join(hub *h, htopic *room, const char *name);
void hub__entry_unlink(hub_sub *s, entry *e);
entry *hub__filter_find(const hub_sub *s, const char *f, size_t fl);
int hub__filter_add(hub_sub *s, entry *e, size_t fl);
void hub__walk_end(hub *h);
void hub__job_end(hub_sub *s, job *j);
job *hub__job_of(const hub_sub *s, const entry *e);
void hub__jobs_run(hub_sub *s);
void hub__load_retained(const void *key, size_t klen, const void *val, size_t vlen, void *ud);
void hub__bp_need(hub *h, const char *filter, size_t fl);
uint64_t hub__bp_publish(hub *h, hub_msg *m, uint64_t *ticket, int *err);

#endif
