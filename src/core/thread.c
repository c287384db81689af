/* thread.c: N loops on N threads; only ax_loop_post crosses between them. */
#include "internal.h"

#include <pthread.h>

typedef struct worker {
    struct ax_threads *owner;
    pthread_t tid;
    ax_loop *loop;
    int index;
    int setup_rc;
    bool started, quit;
} worker;

struct ax_threads {
    int n;
    ax_thread_setup setup;
    void *ud;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
    worker *w;
};

static void *thread_main(void *arg)
{
    worker *w = arg;
    ax_threads *t = w->owner;
    int rc = 0;
    w->loop = ax_loop_new(NULL, &rc);
    if (w->loop && t->setup) rc = t->setup(w->loop, w->index, t->ud);
    pthread_mutex_lock(&t->lock);
    w->setup_rc = w->loop ? rc : (rc ? rc : AX_ENOMEM);
    t->ready++;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
    if (w->setup_rc == 0) {
        /* Keep running while idle: work may be posted at any time. */
        while (!__atomic_load_n(&w->quit, __ATOMIC_ACQUIRE))
            if (ax_loop_run_once(w->loop, -1) < 0) break;
    }
    return NULL;
}

/* Every thread is joined before any loop is freed: until then one may
 * still post to another's loop (ax_loop_post_or: the loop must outlive
 * the call). */
static void stop_workers(ax_threads *t)
{
    for (int i = 0; i < t->n; i++) {
        worker *w = &t->w[i];
        if (!w->started) continue;
        /* No allocation on this path: stopping must work when memory is out. */
        __atomic_store_n(&w->quit, true, __ATOMIC_RELEASE);
        if (w->loop && w->setup_rc == 0) ax__loop_wake(w->loop);
    }
    for (int i = 0; i < t->n; i++)
        if (t->w[i].started) pthread_join(t->w[i].tid, NULL);
    for (int i = 0; i < t->n; i++)
        if (t->w[i].started) ax_loop_free(t->w[i].loop);
}

ax_threads *ax_threads_start(int n, ax_thread_setup setup, void *ud, int *err)
{
    int rc = AX_EINVAL, dummy;
    if (!err) err = &dummy;
    if (n < 1 || n > 1024) goto fail;
    rc = AX_ENOMEM;
    ax_threads *t = ax_calloc(1, sizeof(*t));
    if (!t) goto fail;
    t->w = ax_calloc((size_t)n, sizeof(*t->w));
    if (!t->w) goto fail_t;
    t->n = n;
    t->setup = setup;
    t->ud = ud;
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
    int launched = 0;
    for (int i = 0; i < n; i++) {
        t->w[i] = (worker){.owner = t, .index = i};
        if (pthread_create(&t->w[i].tid, NULL, thread_main, &t->w[i]) != 0) break;
        t->w[i].started = true;
        launched++;
    }
    pthread_mutex_lock(&t->lock);
    while (t->ready < launched)
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
    rc = launched == n ? 0 : AX_ENOMEM;
    for (int i = 0; i < launched && rc == 0; i++)
        rc = t->w[i].setup_rc;
    if (rc == 0) return t;
    stop_workers(t);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    ax_free(t->w);
fail_t:
    ax_free(t);
fail:
    *err = rc;
    return NULL;
}

ax_loop *ax_threads_loop(ax_threads *t, int index)
{
    return index >= 0 && index < t->n ? t->w[index].loop : NULL;
}

int ax_threads_count(const ax_threads *t)
{
    return t->n;
}

void ax_threads_stop(ax_threads *t)
{
    if (!t) return;
    stop_workers(t);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    ax_free(t->w);
    ax_free(t);
}
