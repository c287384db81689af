/* store.c: history in SQLite (WAL), written behind the loop.
 *
 * The loop thread only queues: hub_store_put() takes a reference on the
 * message (refcounts are atomic, the fields are immutable) and signals a
 * writer thread, which commits whatever has queued in one transaction.
 * A slow disk therefore makes batches larger, never the publish path
 * slower.  Durability (`fsync`): always = synchronous FULL (every commit
 * reaches the disk before the next batch), batch = NORMAL (WAL: the disk
 * is synced at checkpoints; a power cut may lose the last batches, a
 * crash of the process loses nothing committed), off = OFF.
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

#include "hub.h"

typedef struct job {
    struct job *next;
    hub_msg *m;    /* an insert, or */
    uint64_t upto; /* a trim of `topic` up to this seq */
    char topic[];
} job;

struct hub_store {
    sqlite3 *wdb, *rdb;
    sqlite3_stmt *ins, *trim;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv, idle_cv;
    job *head, **tail;
    bool stop, busy;
    uint64_t writes, commits, errors, us_total, us_max;
};

static const char *SCHEMA = "CREATE TABLE IF NOT EXISTS messages ("
                            " topic TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL,"
                            " sender TEXT NOT NULL, payload BLOB NOT NULL,"
                            " PRIMARY KEY (topic, seq)) WITHOUT ROWID;";

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void run_job(hub_store *st, job *j)
{
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
    if (sqlite3_step(q) != SQLITE_DONE) __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
    sqlite3_reset(q);
    sqlite3_clear_bindings(q);
}

static void commit_batch(hub_store *st, job *batch)
{
    uint64_t t0 = mono_us(), n = 0;
    if (sqlite3_exec(st->wdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
    for (job *j = batch; j; j = j->next, n++)
        run_job(st, j);
    if (sqlite3_exec(st->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
    uint64_t dt = mono_us() - t0;
    while (batch) {
        job *next = batch->next;
        if (batch->m) __atomic_add_fetch(&st->writes, 1, __ATOMIC_RELAXED);
        hub_msg_unref(batch->m);
        ax_free(batch);
        batch = next;
    }
    __atomic_add_fetch(&st->commits, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&st->us_total, dt, __ATOMIC_RELAXED);
    if (dt > __atomic_load_n(&st->us_max, __ATOMIC_RELAXED))
        __atomic_store_n(&st->us_max, dt, __ATOMIC_RELAXED);
    (void)n;
}

static void *writer(void *arg)
{
    hub_store *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->head && !st->stop)
            pthread_cond_wait(&st->cv, &st->mu);
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

static void enqueue(hub_store *st, job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&st->mu);
    *st->tail = j;
    st->tail = &j->next;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

void hub_store_put(hub_store *st, const hub_msg *m)
{
    job *j = ax_malloc(sizeof(*j));
    if (!j) {
        __atomic_add_fetch(&st->errors, 1, __ATOMIC_RELAXED);
        return;
    }
    j->m = hub_msg_ref((hub_msg *)m);
    j->upto = 0;
    enqueue(st, j);
}

void hub_store_trim(hub_store *st, const char *topic, uint64_t upto)
{
    size_t n = strlen(topic);
    job *j = ax_malloc(sizeof(*j) + n + 1);
    if (!j) return;
    j->m = NULL;
    j->upto = upto;
    memcpy(j->topic, topic, n + 1);
    enqueue(st, j);
}

void hub_store_flush(hub_store *st)
{
    pthread_mutex_lock(&st->mu);
    while (st->head || st->busy)
        pthread_cond_wait(&st->idle_cv, &st->mu);
    pthread_mutex_unlock(&st->mu);
}

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

hub_store *hub_store_open(ax_loop *loop, const char *dir, int fsync_mode, char *why, size_t why_len)
{
    (void)loop;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(why, why_len, "cannot make data directory %s: %s", dir, strerror(errno));
        return NULL;
    }
    hub_store *st = ax_calloc(1, sizeof(*st));
    if (!st) {
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/history.db", dir);
    const char *sync = fsync_mode == HUB_FSYNC_ALWAYS ? "FULL"
                       : fsync_mode == HUB_FSYNC_OFF  ? "OFF"
                                                      : "NORMAL";
    if (open_db(path, &st->wdb, sync, why, why_len) != 0 ||
        open_db(path, &st->rdb, sync, why, why_len) != 0)
        goto fail;
    if (sqlite3_prepare_v2(st->wdb, "INSERT OR REPLACE INTO messages VALUES (?1, ?2, ?3, ?4, ?5)",
                           -1, &st->ins, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(st->wdb, "DELETE FROM messages WHERE topic = ?1 AND seq <= ?2", -1,
                           &st->trim, NULL) != SQLITE_OK) {
        snprintf(why, why_len, "cannot prepare statements: %s", sqlite3_errmsg(st->wdb));
        goto fail;
    }
    st->tail = &st->head;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    pthread_cond_init(&st->idle_cv, NULL);
    if (pthread_create(&st->th, NULL, writer, st) != 0) {
        snprintf(why, why_len, "cannot start the store's writer thread");
        goto fail;
    }
    return st;
fail:
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->trim);
    sqlite3_close(st->wdb);
    sqlite3_close(st->rdb);
    ax_free(st);
    return NULL;
}

void hub_store_close(hub_store *st)
{
    pthread_mutex_lock(&st->mu);
    st->stop = true;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    pthread_join(st->th, NULL);
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->trim);
    sqlite3_close(st->wdb);
    sqlite3_close(st->rdb);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_cond_destroy(&st->idle_cv);
    ax_free(st);
}

int hub_store_topics(hub_store *st, void (*cb)(const char *topic, uint64_t last, void *ud),
                     void *ud)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(st->rdb, "SELECT topic, MAX(seq) FROM messages GROUP BY topic", -1, &q,
                           NULL) != SQLITE_OK)
        return -1;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        cb((const char *)sqlite3_column_text(q, 0), (uint64_t)sqlite3_column_int64(q, 1), ud);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

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
    out->store_writes = __atomic_load_n(&st->writes, __ATOMIC_RELAXED);
    out->store_commits = __atomic_load_n(&st->commits, __ATOMIC_RELAXED);
    out->store_errors = __atomic_load_n(&st->errors, __ATOMIC_RELAXED);
    out->store_commit_us_total = __atomic_load_n(&st->us_total, __ATOMIC_RELAXED);
    out->store_commit_us_max = __atomic_load_n(&st->us_max, __ATOMIC_RELAXED);
}
