/* store.c: history in SQLite (WAL), written behind the loop.
 *
 * The loop thread only queues: hub_store_put() takes a reference on the
 * message (refcounts are atomic, the fields are immutable) and signals a
 * writer thread, which commits whatever has queued in one transaction
 * (group commit).  A slow disk therefore makes batches larger, never the
 * publish path slower.  The queue is bounded (messages and bytes, counted
 * until their commit ends): when it is full hub_store_put() refuses and the
 * hub pushes back on the publisher, so memory stays bounded and the loop
 * never waits for the disk.
 *
 * Acknowledgements.  Each put gets a ticket, increasing in queue order.
 * After a commit the writer records "committed through ticket N" and posts
 * to every loop that waits for a ticket <= N (hub_store_wait()); that loop
 * runs the callbacks of its waiters in ticket order.  What a commit means
 * depends on the fsync mode:
 *   always  synchronous=FULL: the WAL is fsync'd in every commit; a ticket
 *           is on disk when its callback runs;
 *   batch   synchronous=NORMAL: a commit is written to the WAL (the OS has
 *           it: a crash of the process loses nothing committed); the WAL
 *           is fsync'd by the first commit that starts SYNC_MS after the
 *           oldest commit not yet synced, or SYNC_MSGS messages after it,
 *           and by the writer itself when it is idle that long;
 *   off     synchronous=OFF: tickets are 0, nothing waits.
 *
 * Sequence numbers.  The hub hands out a number (and delivers the message)
 * before the commit, so a crash may lose numbers that subscribers saw: at
 * most the queue's count bound (queued or being committed) and, in batch
 * mode after a power cut, the commits not yet synced (SYNC_MSGS plus one
 * batch, itself within the bound); so `jump` = 2 x bound + SYNC_MSGS per
 * topic.  A clean close marks the store clean (meta 'clean' = 1) after the
 * last commit (not after a failed commit, nor in a store from before the
 * mark); an open that finds it unclean moves every topic's floor
 * (seq_floor) `jump` past the largest number it knows, and the base of new
 * topics (meta 'seq_base') by `jump` too, durably, before the hub hands out
 * anything.  Trims record a floor as well, so a topic whose stored history
 * was all trimmed keeps counting.
 *
 * Checkpoints (copying the WAL into the database, two fsyncs) run on a
 * thread of their own with a third connection once the WAL has
 * CKPT_FRAMES frames, so the writer's commits (and the acknowledgements
 * that wait for them) rarely wait for one (see wal_frames()).
 *
 * Reads happen on the loop thread through a second connection (WAL lets
 * it read while the writer writes); the hub reads only at start-up. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <axon/alloc.h>
#include <axon/log.h>

#include "hub.h"

#define SYNC_MS 200             /* batch: the longest an acknowledged commit stays unsynced */
#define SYNC_MSGS 1000          /* batch: or this many messages (beyond one batch) */
#define FAILED_KEEP 16          /* failed commits remembered for their waiters */
#define CKPT_MS 50              /* the checkpointer looks this often */
#define CKPT_FRAMES 1000        /* and checkpoints once the WAL has this many frames */
#define WRITER_CKPT_FRAMES 4096 /* the writer's own checkpoint (see wal_frames()) */

typedef struct job {
    struct job *next;
    hub_msg *m;      /* an insert, or */
    uint64_t upto;   /* a trim of `topic` up to this seq */
    uint64_t ticket; /* inserts, state rows */
    size_t cost;     /* bytes counted against the bound */
    uint8_t op;      /* OP_*: with m NULL, a trim or a state row */
    uint32_t klen, vlen;
    char topic[]; /* a trim's topic; a state row's namespace, key, value */
} job;

enum { OP_TRIM = 0, OP_PUT = 1, OP_DEL = 2, OP_CLEAR = 3 }; /* (state rows: hub_store_state_*) */

/* The waiters of one loop, in ticket order; touched under st->mu. */
typedef struct ackq {
    struct ackq *next;
    hub_store *st;
    ax_loop *loop;
    hub_ack *head, *tail;
    bool posted; /* a run_acks is on its way */
} ackq;

struct hub_store {
    sqlite3 *wdb, *rdb, *cdb; /* writer, reader (start-up), checkpointer */
    sqlite3_stmt *ins, *trim, *floor;
    sqlite3_stmt *sput, *sdel, *sclr; /* state rows */
    pthread_t th, ckth;
    pthread_mutex_t mu; /* guards the queue, the counts, tickets, waiters */
    pthread_cond_t cv, idle_cv, ck_cv;
    job *head, **tail;
    bool stop, busy;
    int mode;                    /* HUB_FSYNC_* */
    size_t max_count, max_bytes; /* the queue's bound */
    size_t qcount, qbytes;       /* queued or being committed */
    uint64_t ticket;             /* the last one handed out */
    uint64_t done;               /* committed (or failed) through this ticket */
    struct {
        uint64_t lo, hi;
    } failed[FAILED_KEEP];
    unsigned nfailed;
    ackq *ackqs;
    uint64_t unsynced, first_unsynced_us; /* batch mode: the writer's */
    uint64_t seq_base;                    /* new topics count from here */
    bool failed_commit; /* numbers were handed out that are not stored: never "clean" */
    uint64_t writes, commits, errors, us_total, us_max, refused, syncs;
    int wal_frames; /* in the WAL after the last commit */
};

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS messages ("
    " topic TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL,"
    " sender TEXT NOT NULL, payload BLOB NOT NULL,"
    " PRIMARY KEY (topic, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS seq_floor (topic TEXT PRIMARY KEY, floor INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS state (ns TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (ns, key)) WITHOUT ROWID;";

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A gateway's state row: put, delete, or delete every key with a prefix. */
static bool run_state(hub_store *st, job *j)
{
    sqlite3_stmt *q = j->op == OP_PUT ? st->sput : j->op == OP_DEL ? st->sdel : st->sclr;
    size_t nl = strlen(j->topic);
    const char *key = j->topic + nl + 1;
    sqlite3_bind_text(q, 1, j->topic, (int)nl, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, key, (int)j->klen, SQLITE_STATIC);
    if (j->op == OP_PUT) sqlite3_bind_blob(q, 3, key + j->klen, (int)j->vlen, SQLITE_STATIC);
    if (j->op == OP_CLEAR) sqlite3_bind_int(q, 3, (int)j->klen);
    bool ok = sqlite3_step(q) == SQLITE_DONE;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    return ok;
}

static bool run_job(hub_store *st, job *j)
{
    if (!j->m && j->op != OP_TRIM) return run_state(st, j);
    sqlite3_stmt *q = j->m ? st->ins : st->trim;
    if (j->m) {
        const hub_msg *m = j->m;
        sqlite3_bind_text(q, 1, m->topic, (int)m->topic_len, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)m->seq);
        sqlite3_bind_int64(q, 3, m->time_ms);
        sqlite3_bind_text(q, 4, m->sender, (int)m->sender_len, SQLITE_STATIC);
        sqlite3_bind_blob(q, 5, m->payload, (int)m->payload_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_text(q, 1, j->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)j->upto);
    }
    bool ok = sqlite3_step(q) == SQLITE_DONE;
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
    if (ok && !j->m) { /* a trimmed topic keeps counting after a restart */
        sqlite3_bind_text(st->floor, 1, j->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st->floor, 2, (sqlite3_int64)j->upto);
        ok = sqlite3_step(st->floor) == SQLITE_DONE;
        sqlite3_reset(st->floor);
        sqlite3_clear_bindings(st->floor);
    }
    return ok;
}

static bool exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK;
}

/* Batch mode: does this commit have to reach the disk? */
static bool sync_due(hub_store *st, uint64_t now)
{
    return st->mode == HUB_FSYNC_BATCH && st->unsynced &&
           (st->unsynced >= SYNC_MSGS || now - st->first_unsynced_us >= SYNC_MS * 1000u);
}

/* One transaction for the whole batch: all of it is stored or none. */
static bool commit_jobs(hub_store *st, job *batch, bool full)
{
    if (full && !exec(st->wdb, "PRAGMA synchronous=FULL")) return false;
    bool ok = exec(st->wdb, "BEGIN");
    for (job *j = batch; ok && j; j = j->next)
        ok = run_job(st, j);
    ok = ok && exec(st->wdb, "COMMIT");
    if (!ok) exec(st->wdb, "ROLLBACK");
    if (full) exec(st->wdb, "PRAGMA synchronous=NORMAL");
    return ok;
}

static void run_acks(ax_loop *loop, void *arg);

/* After a commit: the waiters of tickets <= hi may go on. */
static void committed(hub_store *st, uint64_t lo, uint64_t hi, bool ok, size_t count, size_t bytes)
{
    pthread_mutex_lock(&st->mu);
    st->qcount -= count;
    st->qbytes -= bytes;
    if (hi) {
        if (!ok) {
            unsigned i = st->nfailed++ % FAILED_KEEP;
            st->failed[i].lo = lo;
            st->failed[i].hi = hi;
        }
        st->done = hi;
        for (ackq *q = st->ackqs; q; q = q->next) {
            if (!q->head || q->posted || q->head->ticket > hi) continue;
            q->posted = ax_loop_post(q->loop, run_acks, q) == 0;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

static void commit_batch(hub_store *st, job *batch)
{
    uint64_t t0 = mono_us(), lo = 0, hi = 0, n = 0;
    size_t count = 0, bytes = 0;
    bool full = sync_due(st, t0);
    bool ok = commit_jobs(st, batch, full);
    uint64_t dt = mono_us() - t0;
    while (batch) {
        job *next = batch->next;
        if (batch->ticket) {
            if (!lo) lo = batch->ticket;
            hi = batch->ticket > hi ? batch->ticket : hi;
        }
        if (batch->m) {
            count++;
            n++;
        }
        bytes += batch->cost;
        hub_msg_unref(batch->m);
        ax_free(batch);
        batch = next;
    }
    if (ok) {
        __atomic_add_fetch(&st->writes, n, __ATOMIC_RELAXED);
    } else {
        st->failed_commit = true;
        __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
        ax_log(AX_LOG_ERROR, "store: a commit of %llu messages failed: %s", (unsigned long long)n,
               sqlite3_errmsg(st->wdb));
    }
    if (full && ok) {
        st->unsynced = 0;
        __atomic_add_fetch(&st->syncs, 1, __ATOMIC_RELAXED);
    } else if (ok && st->mode == HUB_FSYNC_BATCH && n) {
        if (!st->unsynced) st->first_unsynced_us = t0;
        st->unsynced += n;
    }
    committed(st, lo, hi, ok, count, bytes);
    __atomic_add_fetch(&st->commits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&st->us_total, dt, __ATOMIC_RELAXED);
    if (dt > __atomic_load_n(&st->us_max, __ATOMIC_RELAXED))
        __atomic_store_n(&st->us_max, dt, __ATOMIC_RELAXED);
}

/* Batch mode, idle: sync what is committed but not on disk yet (a tiny
 * FULL commit syncs the whole WAL). */
static void idle_sync(hub_store *st)
{
    bool ok = exec(st->wdb, "PRAGMA synchronous=FULL") &&
              exec(st->wdb, "INSERT OR REPLACE INTO meta VALUES ('synced', 1)");
    exec(st->wdb, "PRAGMA synchronous=NORMAL");
    if (!ok) __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
    st->unsynced = 0;
    __atomic_add_fetch(&st->syncs, 1, __ATOMIC_RELAXED);
}

/* Wait on cv (with mu held) at most `us` microseconds. */
static void wait_us(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* the condvar's clock */
    uint64_t ns = (uint64_t)ts.tv_nsec + us * 1000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    pthread_cond_timedwait(cv, mu, &ts);
}

/* Wait for work; in batch mode no longer than the unsynced commits may
 * stay unsynced.  Returns with st->mu held. */
static void wait_work(hub_store *st)
{
    while (!st->head && !st->stop) {
        if (!st->unsynced) {
            pthread_cond_wait(&st->cv, &st->mu);
            continue;
        }
        uint64_t due = st->first_unsynced_us + SYNC_MS * 1000u, now = mono_us();
        if (now >= due) {
            pthread_mutex_unlock(&st->mu);
            idle_sync(st);
            pthread_mutex_lock(&st->mu);
            continue;
        }
        wait_us(&st->cv, &st->mu, due - now);
    }
}

/* After each commit of the writer (its WAL hook): note the WAL's size for
 * the checkpointer.  The WAL can only start over when a checkpoint has
 * caught up between two commits, which under a steady stream of commits
 * only the writer itself can do: past WRITER_CKPT_FRAMES it checkpoints
 * (the few frames the checkpointer has not copied yet). */
static int wal_frames(void *arg, sqlite3 *db, const char *name, int frames)
{
    hub_store *st = arg;
    __atomic_store_n(&st->wal_frames, frames, __ATOMIC_RELAXED);
    if (frames >= WRITER_CKPT_FRAMES)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

/* The checkpointer: PASSIVE checkpoints (they never block the writer)
 * once the WAL is CKPT_FRAMES long. */
static void *checkpointer(void *arg)
{
    hub_store *st = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&st->mu);
    while (!st->stop) {
        wait_us(&st->ck_cv, &st->mu, CKPT_MS * 1000u);
        uint64_t n = __atomic_load_n(&st->commits, __ATOMIC_RELAXED);
        if (st->stop || n == seen ||
            __atomic_load_n(&st->wal_frames, __ATOMIC_RELAXED) < CKPT_FRAMES)
            continue;
        seen = n;
        pthread_mutex_unlock(&st->mu);
        int rc = sqlite3_wal_checkpoint_v2(st->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void *writer(void *arg)
{
    hub_store *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        wait_work(st);
        if (!st->head && st->stop) break;
        job *batch = st->head;
        st->head = NULL;
        st->tail = &st->head;
        st->busy = true;
        pthread_mutex_unlock(&st->mu);
        commit_batch(st, batch);
        pthread_mutex_lock(&st->mu);
        st->busy = false;
        pthread_cond_broadcast(&st->idle_cv);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void enqueue_locked(hub_store *st, job *j)
{
    j->next = NULL;
    *st->tail = j;
    st->tail = &j->next;
    pthread_cond_signal(&st->cv);
}

static size_t msg_cost(const hub_msg *m)
{
    return sizeof(hub_msg) + sizeof(job) + m->topic_len + m->sender_len + m->payload_len + 3;
}

int hub_store_put(hub_store *st, const hub_msg *m, uint64_t *ticket)
{
    size_t cost = msg_cost(m);
    *ticket = 0;
    job *j = ax_malloc(sizeof(*j));
    if (!j) return AX_ENOMEM;
    j->m = hub_msg_ref((hub_msg *)m);
    j->upto = 0;
    j->cost = cost;
    j->op = OP_TRIM;
    pthread_mutex_lock(&st->mu);
    if (st->qcount >= st->max_count || (st->qbytes && st->qbytes + cost > st->max_bytes)) {
        pthread_mutex_unlock(&st->mu);
        __atomic_add_fetch(&st->refused, 1, __ATOMIC_RELAXED);
        hub_msg_unref(j->m);
        ax_free(j);
        return AX_EAGAIN;
    }
    st->qcount++;
    st->qbytes += cost;
    j->ticket = ++st->ticket;
    if (st->mode != HUB_FSYNC_OFF) *ticket = j->ticket;
    enqueue_locked(st, j);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

void hub_store_trim(hub_store *st, const char *topic, uint64_t upto)
{
    size_t n = strlen(topic);
    job *j = ax_malloc(sizeof(*j) + n + 1);
    if (!j) return;
    j->m = NULL;
    j->upto = upto;
    j->ticket = 0;
    j->op = OP_TRIM;
    j->cost = sizeof(*j) + n + 1;
    memcpy(j->topic, topic, n + 1);
    pthread_mutex_lock(&st->mu);
    st->qbytes += j->cost;
    enqueue_locked(st, j);
    pthread_mutex_unlock(&st->mu);
}

int hub_store_state(hub_store *st, int op, const char *ns, const void *key, size_t klen,
                    const void *val, size_t vlen, uint64_t *ticket)
{
    size_t nl = strlen(ns);
    *ticket = 0;
    job *j = ax_malloc(sizeof(*j) + nl + 1 + klen + vlen);
    if (!j) return AX_ENOMEM;
    j->m = NULL;
    j->upto = 0;
    j->op = (uint8_t)op;
    j->klen = (uint32_t)klen;
    j->vlen = (uint32_t)vlen;
    j->cost = sizeof(*j) + nl + 1 + klen + vlen;
    memcpy(j->topic, ns, nl + 1);
    if (klen) memcpy(j->topic + nl + 1, key, klen);
    if (vlen) memcpy(j->topic + nl + 1 + klen, val, vlen);
    pthread_mutex_lock(&st->mu);
    st->qbytes += j->cost;
    j->ticket = ++st->ticket;
    if (st->mode != HUB_FSYNC_OFF) *ticket = j->ticket;
    enqueue_locked(st, j);
    pthread_mutex_unlock(&st->mu);
    return 0;
}

int hub_store_state_load(hub_store *st, const char *ns,
                         void (*cb)(const void *key, size_t klen, const void *val, size_t vlen,
                                    void *ud),
                         void *ud)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->rdb, "SELECT key, value FROM state WHERE ns = ?1 ORDER BY key", -1,
                           &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, ns, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        cb(sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0), sqlite3_column_blob(q, 1),
           (size_t)sqlite3_column_bytes(q, 1), ud);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

void hub_store_flush(hub_store *st)
{
    pthread_mutex_lock(&st->mu);
    while (st->head || st->busy)
        pthread_cond_wait(&st->idle_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
}

/* ---- waiting for a commit ------------------------------------------------------- */

static bool ticket_failed(const hub_store *st, uint64_t t)
{
    unsigned n = st->nfailed < FAILED_KEEP ? st->nfailed : FAILED_KEEP;
    for (unsigned i = 0; i < n; i++)
        if (t >= st->failed[i].lo && t <= st->failed[i].hi) return true;
    return false;
}

static void ack_unlink(ackq *q, hub_ack *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else
        q->head = a->next;
    if (a->next)
        a->next->prev = a->prev;
    else
        q->tail = a->prev;
    a->prev = a->next = NULL;
    a->q = NULL;
}

/* On the waiters' loop: run the callbacks of what is committed, in order.
 * The lock is let go around each callback (it may cancel or add others). */
static void run_acks(ax_loop *loop, void *arg)
{
    ackq *q = arg;
    hub_store *st = q->st;
    (void)loop;
    pthread_mutex_lock(&st->mu);
    q->posted = false;
    hub_ack *a;
    while ((a = q->head) && a->ticket <= st->done) {
        ack_unlink(q, a);
        int status = ticket_failed(st, a->ticket) ? AX_EIO : 0;
        pthread_mutex_unlock(&st->mu);
        a->cb(a, status);
        pthread_mutex_lock(&st->mu);
    }
    pthread_mutex_unlock(&st->mu);
}

int hub_store_wait(hub_store *st, ax_loop *loop, hub_ack *a, uint64_t ticket,
                   void (*cb)(hub_ack *a, int status))
{
    pthread_mutex_lock(&st->mu);
    ackq *q = st->ackqs;
    while (q && q->loop != loop)
        q = q->next;
    if (!q && (q = ax_calloc(1, sizeof(*q)))) {
        q->st = st;
        q->loop = loop;
        q->next = st->ackqs;
        st->ackqs = q;
    }
    if (!q) {
        pthread_mutex_unlock(&st->mu);
        return AX_ENOMEM;
    }
    a->ticket = ticket;
    a->cb = cb;
    a->q = q;
    hub_ack *after = q->tail; /* tickets of one loop come in order: almost always the tail */
    while (after && after->ticket > ticket)
        after = after->prev;
    a->prev = after;
    a->next = after ? after->next : q->head;
    if (a->next)
        a->next->prev = a;
    else
        q->tail = a;
    if (after)
        after->next = a;
    else
        q->head = a;
    int rc = 0;
    if (ticket <= st->done && !q->posted) { /* never inside this call */
        rc = ax_loop_post(loop, run_acks, q);
        q->posted = rc == 0;
        if (rc) ack_unlink(q, a);
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

void hub_store_cancel(hub_store *st, hub_ack *a)
{
    pthread_mutex_lock(&st->mu);
    if (a->q) ack_unlink(a->q, a);
    pthread_mutex_unlock(&st->mu);
}

/* ---- opening and closing ------------------------------------------------------------ */

static int open_db(const char *path, sqlite3 **db, const char *sync, char *why, size_t why_len)
{
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        snprintf(why, why_len, "cannot open %s: %s", path, *db ? sqlite3_errmsg(*db) : "no memory");
        return -1;
    }
    char pragmas[160];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA busy_timeout=5000;", sync);
    char *err = NULL;
    if (sqlite3_exec(*db, pragmas, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(*db, SCHEMA, NULL, NULL, &err) != SQLITE_OK) {
        snprintf(why, why_len, "cannot use %s: %s", path, err ? err : sqlite3_errmsg(*db));
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

/* meta[key], or `dflt` */
static int64_t meta_get(sqlite3 *db, const char *key, int64_t dflt)
{
    sqlite3_stmt *q;
    int64_t v = dflt;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1, &q, NULL) != SQLITE_OK)
        return dflt;
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW) v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static bool meta_set(sqlite3 *db, const char *key, int64_t v)
{
    char sql[128];
    snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO meta VALUES ('%s', %lld)", key, (long long)v);
    return exec(db, sql);
}

/* At open: after an unclean stop, move every topic past any number the
 * last run may have handed out; then mark the store in use.  Synced. */
static int recover(hub_store *st, uint64_t jump, char *why, size_t why_len)
{
    sqlite3 *db = st->wdb;
    int64_t clean = meta_get(db, "clean", -1);
    bool any = false;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM messages UNION ALL SELECT 1 FROM seq_floor LIMIT 1",
                           -1, &q, NULL) == SQLITE_OK) {
        any = sqlite3_step(q) == SQLITE_ROW;
        sqlite3_finalize(q);
    }
    bool unclean = clean == 0 || (clean == -1 && any); /* -1: a store from before the mark */
    uint64_t prev = (uint64_t)meta_get(db, "jump", 0);
    uint64_t j = prev > jump ? prev : jump;
    st->seq_base = (uint64_t)meta_get(db, "seq_base", 0);
    bool ok = exec(db, "PRAGMA synchronous=FULL") && exec(db, "BEGIN");
    if (ok && unclean) {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "INSERT OR REPLACE INTO seq_floor SELECT topic, MAX(s) + %llu FROM"
                 " (SELECT topic, MAX(seq) AS s FROM messages GROUP BY topic"
                 "  UNION ALL SELECT topic, floor FROM seq_floor) GROUP BY topic",
                 (unsigned long long)j);
        st->seq_base += j;
        ok = exec(db, sql);
        ax_log(AX_LOG_WARN,
               "store: the last run did not stop cleanly; every topic's sequence continues %llu "
               "past its last stored number",
               (unsigned long long)j);
    }
    ok = ok && meta_set(db, "seq_base", (int64_t)st->seq_base) &&
         meta_set(db, "jump", (int64_t)jump) && meta_set(db, "clean", 0) && exec(db, "COMMIT");
    if (!ok) {
        snprintf(why, why_len, "cannot prepare the store: %s", sqlite3_errmsg(db));
        exec(db, "ROLLBACK");
        return -1;
    }
    const char *sync = st->mode == HUB_FSYNC_ALWAYS ? "PRAGMA synchronous=FULL"
                       : st->mode == HUB_FSYNC_OFF  ? "PRAGMA synchronous=OFF"
                                                    : "PRAGMA synchronous=NORMAL";
    exec(db, sync);
    return 0;
}

hub_store *hub_store_open(ax_loop *loop, const hub_store_opts *o, char *why, size_t why_len)
{
    (void)loop;
    if (mkdir(o->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, why_len, "cannot make data directory %s: %s", o->dir, strerror(errno));
        return NULL;
    }
    hub_store *st = ax_calloc(1, sizeof(*st));
    if (!st) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    st->mode = o->fsync_mode;
    st->max_count = o->queue_max ? o->queue_max : HUB_STORE_QUEUE_MAX;
    st->max_bytes = o->queue_bytes ? o->queue_bytes : HUB_STORE_QUEUE_BYTES;
    char path[4096];
    snprintf(path, sizeof path, "%s/history.db", o->dir);
    const char *sync = st->mode == HUB_FSYNC_ALWAYS ? "FULL"
                       : st->mode == HUB_FSYNC_OFF  ? "OFF"
                                                    : "NORMAL";
    if (open_db(path, &st->wdb, sync, why, why_len) != 0 ||
        open_db(path, &st->rdb, sync, why, why_len) != 0 ||
        open_db(path, &st->cdb, sync, why, why_len) != 0)
        goto fail;
    if (sqlite3_prepare_v2(st->wdb, "INSERT OR REPLACE INTO messages VALUES (?1, ?2, ?3, ?4, ?5)",
                           -1, &st->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->wdb, "DELETE FROM messages WHERE topic = ?1 AND seq <= ?2", -1,
                           &st->trim, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->wdb,
                           "INSERT INTO seq_floor VALUES (?1, ?2) ON CONFLICT (topic)"
                           " DO UPDATE SET floor = MAX(floor, excluded.floor)",
                           -1, &st->floor, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->wdb, "INSERT OR REPLACE INTO state VALUES (?1, ?2, ?3)", -1,
                           &st->sput, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->wdb, "DELETE FROM state WHERE ns = ?1 AND key = ?2", -1, &st->sdel,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->wdb, "DELETE FROM state WHERE ns = ?1 AND substr(key, 1, ?3) = ?2",
                           -1, &st->sclr, NULL) != SQLITE_OK) {
        snprintf(why, why_len, "cannot prepare statements: %s", sqlite3_errmsg(st->wdb));
        goto fail;
    }
    if (recover(st, hub_store_jump(st->max_count), why, why_len) != 0) goto fail;
    exec(st->wdb, "PRAGMA journal_size_limit=16777216"); /* the WAL file, after a restart */
    sqlite3_wal_hook(st->wdb, wal_frames, st);           /* instead of SQLite's autocheckpoint */
    st->tail = &st->head;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    pthread_cond_init(&st->idle_cv, NULL);
    pthread_cond_init(&st->ck_cv, NULL);
    if (pthread_create(&st->ckth, NULL, checkpointer, st) != 0) {
        snprintf(why, why_len, "cannot start the store's checkpoint thread");
        goto fail_sync;
    }
    if (pthread_create(&st->th, NULL, writer, st) != 0) {
        snprintf(why, why_len, "cannot start the store's writer thread");
        pthread_mutex_lock(&st->mu);
        st->stop = true;
        pthread_cond_signal(&st->ck_cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->ckth, NULL);
        goto fail_sync;
    }
    return st;
fail_sync:
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->idle_cv);
    pthread_cond_destroy(&st->ck_cv);
fail:
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->trim);
    sqlite3_finalize(st->floor);
    sqlite3_finalize(st->sput);
    sqlite3_finalize(st->sdel);
    sqlite3_finalize(st->sclr);
    sqlite3_close(st->wdb);
    sqlite3_close(st->rdb);
    sqlite3_close(st->cdb);
    ax_free(st);
    return NULL;
}

uint64_t hub_store_jump(size_t queue_max)
{
    return 2 * (uint64_t)queue_max + SYNC_MSGS;
}

uint64_t hub_store_seq_base(const hub_store *st)
{
    return st->seq_base;
}

void hub_store_close(hub_store *st)
{
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_signal(&st->cv);
    pthread_cond_signal(&st->ck_cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->th, NULL);
    pthread_join(st->ckth, NULL);
    /* everything is committed: mark the store clean (synced, unless off);
     * after a failed commit the numbers it held were used but not stored,
     * so the next open moves past them as after a crash */
    if (st->mode != HUB_FSYNC_OFF) exec(st->wdb, "PRAGMA synchronous=FULL");
    if (!st->failed_commit && !meta_set(st->wdb, "clean", 1))
        ax_log(AX_LOG_ERROR, "store: cannot mark the store clean: %s", sqlite3_errmsg(st->wdb));
    while (st->ackqs) { /* the gateways cancelled their waiters */
        ackq *q = st->ackqs;
        st->ackqs = q->next;
        ax_free(q);
    }
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->trim);
    sqlite3_finalize(st->floor);
    sqlite3_finalize(st->sput);
    sqlite3_finalize(st->sdel);
    sqlite3_finalize(st->sclr);
    sqlite3_close(st->cdb);
    sqlite3_close(st->rdb);
    sqlite3_close(st->wdb); /* the last one: checkpoints what is left */
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->idle_cv);
    pthread_cond_destroy(&st->ck_cv);
    ax_free(st);
}

int hub_store_topics(hub_store *st,
                     void (*cb)(const char *topic, uint64_t last, bool stored, void *ud), void *ud)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->rdb,
                           "SELECT topic, MAX(s), MAX(m) FROM"
                           " (SELECT topic, MAX(seq) AS s, 1 AS m FROM messages GROUP BY topic"
                           "  UNION ALL SELECT topic, floor, 0 FROM seq_floor) GROUP BY topic",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        cb((const char *)sqlite3_column_text(q, 0), (uint64_t)sqlite3_column_int64(q, 1),
           sqlite3_column_int(q, 2) != 0, ud);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int rows(sqlite3_stmt *q, const char *topic, void (*cb)(hub_msg *m, void *ud), void *ud);

int hub_store_range(hub_store *st, const char *topic, uint64_t since, size_t max,
                    void (*cb)(hub_msg *m, void *ud), void *ud)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->rdb,
                           "SELECT seq, time_ms, sender, payload FROM messages"
                           " WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)since);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)max);
    return rows(q, topic, cb, ud);
}

int hub_store_recent(hub_store *st, const char *topic, size_t max, void (*cb)(hub_msg *m, void *ud),
                     void *ud)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->rdb,
                           "SELECT * FROM (SELECT seq, time_ms, sender, payload FROM messages"
                           " WHERE topic = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(q, 1, topic, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)max);
    return rows(q, topic, cb, ud);
}

static int rows(sqlite3_stmt *q, const char *topic, void (*cb)(hub_msg *m, void *ud), void *ud)
{
    int rc;
    size_t tl = strlen(topic);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(q, 3);
        size_t n = (size_t)sqlite3_column_bytes(q, 3);
        hub_msg *m = hub__msg_new(topic, tl, (const char *)sqlite3_column_text(q, 2), p, n);
        if (!m) break;
        m->seq = (uint64_t)sqlite3_column_int64(q, 0);
        m->time_ms = sqlite3_column_int64(q, 1);
        cb(m, ud);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

void hub_store_stats(hub_store *st, hub_stats *out)
{
    pthread_mutex_lock(&st->mu);
    out->store_queue_msgs = st->qcount;
    out->store_queue_bytes = st->qbytes;
    pthread_mutex_unlock(&st->mu);
    out->store_refused = __atomic_load_n(&st->refused, __ATOMIC_RELAXED);
    out->store_writes = __atomic_load_n(&st->writes, __ATOMIC_RELAXED);
    out->store_commits = __atomic_load_n(&st->commits, __ATOMIC_RELAXED);
    out->store_errors = __atomic_load_n(&st->errors, __ATOMIC_RELAXED);
    out->store_commit_us_total = __atomic_load_n(&st->us_total, __ATOMIC_RELAXED);
    out->store_commit_us_max = __atomic_load_n(&st->us_max, __ATOMIC_RELAXED);
}
