/* live_rec.c: recording live streams to fragmented MP4 files on a writer
 * thread (live_rec.h says how). */
#include "live_rec.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <axon/alloc.h>

#include "live.h"

struct live_rec {
    char path[1200];
    int fd;        /* the writer's: -2 not opened yet, -1 failed */
    bool dropping; /* the publisher's loop's: waiting for a keyframe */
    uint64_t frames, dropped;
};

typedef struct rec_job {
    struct rec_job *next;
    live_rec *r;
    ax_slice *data; /* NULL: close */
} rec_job;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static rec_job *head, **tail = &head;
static size_t queued; /* bytes in the jobs */
static bool started;
static char dir[1024];

void live_rec_dir(const char *d)
{
    pthread_mutex_lock(&lock);
    snprintf(dir, sizeof dir, "%s", d ? d : "");
    pthread_mutex_unlock(&lock);
}

static void rec_open(live_rec *r)
{
    char d[sizeof dir];
    pthread_mutex_lock(&lock);
    snprintf(d, sizeof d, "%s", dir);
    pthread_mutex_unlock(&lock);
    if (mkdir(d, 0755) == -1 && errno != EEXIST)
        ax_log(AX_LOG_WARN, "live: cannot make the recording directory %s: %s", d, strerror(errno));
    r->fd = open(r->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (r->fd == -1)
        ax_log(AX_LOG_WARN, "live: cannot record to %s: %s", r->path, strerror(errno));
    else
        ax_log(AX_LOG_INFO, "live: recording to %s", r->path);
}

static void rec_write(live_rec *r, const uint8_t *p, size_t n)
{
    while (r->fd >= 0 && n) {
        ssize_t k = write(r->fd, p, n);
        if (k == -1 && errno == EINTR) continue;
        if (k == -1) {
            ax_log(AX_LOG_WARN, "live: recording %s stopped: %s", r->path, strerror(errno));
            close(r->fd);
            r->fd = -1;
            return;
        }
        p += k, n -= (size_t)k;
    }
}

static void rec_close(live_rec *r)
{
    if (r->fd >= 0) {
        close(r->fd);
        ax_log(AX_LOG_INFO, "live: recorded %s (%llu frames, %llu dropped)", r->path,
               (unsigned long long)r->frames, (unsigned long long)r->dropped);
    }
    ax_free(r);
}

static void *writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!head)
            pthread_cond_wait(&wake, &lock);
        rec_job *j = head;
        if (!(head = j->next)) tail = &head;
        pthread_mutex_unlock(&lock);
        size_t n = j->data ? ax_slice_len(j->data) : 0;
        if (j->r->fd == -2) rec_open(j->r);
        if (j->data) {
            rec_write(j->r, ax_slice_data(j->data), n);
            ax_slice_unref(j->data);
        } else {
            rec_close(j->r);
        }
        ax_free(j);
        pthread_mutex_lock(&lock);
        queued -= n;
    }
    return NULL;
}

/* Queue a job (the slice's reference is the job's); false: not queued. */
static bool enqueue(live_rec *r, ax_slice *data)
{
    rec_job *j = ax_malloc(sizeof(*j));
    if (!j) return false;
    *j = (rec_job){NULL, r, data};
    pthread_mutex_lock(&lock);
    if (!started) {
        pthread_t t;
        if (pthread_create(&t, NULL, writer, NULL) != 0) {
            pthread_mutex_unlock(&lock);
            ax_free(j);
            return false;
        }
        pthread_detach(t);
        started = true;
    }
    queued += data ? ax_slice_len(data) : 0;
    *tail = j;
    tail = &j->next;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    return true;
}

live_rec *live_rec_open(const char *name, const uint8_t *init, size_t len)
{
    pthread_mutex_lock(&lock);
    bool on = dir[0] != '\0';
    char d[sizeof dir];
    snprintf(d, sizeof d, "%s", dir);
    pthread_mutex_unlock(&lock);
    if (!on) return NULL;
    live_rec *r = ax_calloc(1, sizeof(*r));
    ax_slice *s = r ? ax_slice_copy(init, len) : NULL;
    if (!s) {
        ax_free(r);
        return NULL;
    }
    r->fd = -2;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(r->path, sizeof r->path, "%s/%s-%04d%02d%02d-%02d%02d%02d.mp4", d, name,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (!enqueue(r, s)) {
        ax_slice_unref(s);
        ax_free(r);
        return NULL;
    }
    return r;
}

void live_rec_write(live_rec *r, ax_slice *frag, bool key)
{
    if (!r) return;
    pthread_mutex_lock(&lock);
    bool full = queued + ax_slice_len(frag) > LIVE_REC_QUEUE;
    pthread_mutex_unlock(&lock);
    if (r->dropping && !key) full = true;
    r->dropping = full;
    if (!full && enqueue(r, ax_slice_ref(frag))) {
        r->frames++; /* the writer reads these at close, after this job */
        return;
    }
    if (!full) ax_slice_unref(frag);
    r->dropping = true;
    r->dropped++;
}

void live_rec_close(live_rec *r)
{
    if (r && !enqueue(r, NULL)) {
        /* no memory for the job: the file stays open until exit */
        ax_log(AX_LOG_WARN, "live: %s: out of memory closing the recording", r->path);
    }
}
