/* loop.c: the event loop: backend selection, iteration, deferred work,
 * cross-thread posts and signal handling. */
#include "internal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void wake_cb(ax_loop *loop, ax__io *io, unsigned revents);

/* The default is io_uring where the build and the kernel have it (see
 * ax_loop_new), else epoll. */
static const ax__backend *pick_backend(const char *name, bool *fallback)
{
    if (!name) name = getenv("AXON_BACKEND");
    *fallback = !name || !*name;
#ifdef AXON_HAVE_URING
    if (*fallback || strcmp(name, "uring") == 0) return &ax__backend_uring;
#endif
    if (*fallback) return &AX__BACKEND_DEFAULT;
    if (strcmp(name, AX__BACKEND_DEFAULT.name) == 0) return &AX__BACKEND_DEFAULT;
    if (strcmp(name, "poll") == 0) return &ax__backend_poll;
    if (strcmp(name, "uring") == 0) *fallback = false; /* not built in */
    return NULL;
}

void ax__handle_add(ax_loop *loop, ax__handle *h, int kind)
{
    ax__link *head = &loop->handles[kind - 1];
    h->link.next = head->next;
    h->link.prev = head;
    head->next->prev = &h->link;
    head->next = &h->link;
    loop->alive++;
}

static bool handles_left(const ax_loop *loop)
{
    for (int k = 0; k < AX__H_KINDS; k++)
        if (loop->handles[k].next != &loop->handles[k]) return true;
    return false;
}

void ax__handle_remove(ax_loop *loop, ax__handle *h)
{
    if (!h->link.next) return;
    h->link.prev->next = h->link.next;
    h->link.next->prev = h->link.prev;
    h->link.next = h->link.prev = NULL;
    loop->alive--;
}

ax_loop *ax_loop_new(const char *backend, int *err)
{
    int rc = AX_ENOMEM;
    bool fallback;
    const ax__backend *be = pick_backend(backend, &fallback);
    if (!be) {
        rc = AX_EINVAL;
        goto fail;
    }
    ax_loop *loop = ax_calloc(1, sizeof(*loop));
    if (!loop) goto fail;
    loop->backend = be;
    for (int k = 0; k < AX__H_KINDS; k++)
        loop->handles[k].next = loop->handles[k].prev = &loop->handles[k];
    loop->deferred_tail = &loop->deferred;
    loop->later_tail = &loop->later;
    loop->now = ax__monotonic_ms();
    loop->rbuf = ax_malloc(AX__READ_BUF);
    if (!loop->rbuf) goto fail_loop;
    if ((rc = be->init(loop)) != 0) {
        /* no io_uring here (an old kernel, or a seccomp policy): epoll */
        if (!fallback || be == &AX__BACKEND_DEFAULT) goto fail_rbuf;
        loop->backend = be = &AX__BACKEND_DEFAULT;
        if ((rc = be->init(loop)) != 0) goto fail_rbuf;
    }
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == -1) {
        rc = ax__err();
        goto fail_backend;
    }
    loop->wake_wfd = efd;
    if ((rc = ax__io_start(loop, &loop->wake, efd, AX__IN, wake_cb)) != 0) goto fail_efd;
    return loop;

fail_efd:
    close(efd);
fail_backend:
    be->destroy(loop);
fail_rbuf:
    ax_free(loop->rbuf);
fail_loop:
    ax_free(loop);
fail:
    if (err) *err = rc;
    return NULL;
}

/* ---- io registration ---------------------------------------------------- */

int ax__io_start(ax_loop *loop, ax__io *io, int fd, unsigned events, ax__io_cb cb)
{
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    io->slot = -1;
    return loop->backend->add(loop, io, events);
}

int ax__io_set(ax_loop *loop, ax__io *io, unsigned events)
{
    if (io->events == events || io->fd < 0) return 0;
    int rc = loop->backend->mod(loop, io, events);
    if (rc == 0) io->events = events;
    return rc;
}

void ax__io_stop(ax_loop *loop, ax__io *io)
{
    if (io->fd < 0) return;
    loop->backend->del(loop, io);
    io->fd = -1;
    io->events = 0;
}

void ax__io_dispatch(ax_loop *loop, ax__io *io, unsigned revents)
{
    if (io->fd >= 0) io->cb(loop, io, revents);
}

/* ---- deferred work ------------------------------------------------------ */

void ax__defer(ax_loop *loop, ax__deferred *d, void (*fn)(ax_loop *, ax__deferred *))
{
    if (ax__deferred_queued(d)) return;
    d->fn = fn;
    d->next = NULL;
    *loop->deferred_tail = d;
    loop->deferred_tail = &d->next;
}

void ax__defer_later(ax_loop *loop, ax__deferred *d, void (*fn)(ax_loop *, ax__deferred *))
{
    if (ax__deferred_queued(d)) return;
    d->fn = fn;
    d->next = NULL;
    *loop->later_tail = d;
    loop->later_tail = &d->next;
}

/* Move next-iteration work onto the deferred list. */
static void take_later(ax_loop *loop)
{
    if (!loop->later) return;
    *loop->deferred_tail = loop->later;
    loop->deferred_tail = loop->later_tail;
    loop->later = NULL;
    loop->later_tail = &loop->later;
}

static void run_deferred(ax_loop *loop)
{
    while (loop->deferred) {
        ax__deferred *d = loop->deferred;
        loop->deferred = d->next;
        if (!loop->deferred) loop->deferred_tail = &loop->deferred;
        void (*fn)(ax_loop *, ax__deferred *) = d->fn;
        d->fn = NULL; /* no longer queued */
        fn(loop, d);  /* may free d, may defer more */
    }
}

/* ---- posts from other threads -------------------------------------------- */

/* What ax_loop_free() leaves in loop->posts once it has taken the queue:
 * a post that comes after finds it and fails rather than being lost. */
#define POSTS_CLOSED ((ax__post *)(uintptr_t)1)

int ax_loop_post_or(ax_loop *loop, void (*fn)(ax_loop *, void *), void (*drop)(void *), void *arg)
{
    ax__post *p = ax_malloc(sizeof(*p));
    if (!p) return AX_ENOMEM;
    p->fn = fn;
    p->drop = drop;
    p->arg = arg;
    ax__post *old = __atomic_load_n(&loop->posts, __ATOMIC_RELAXED);
    do {
        if (old == POSTS_CLOSED) {
            ax_free(p);
            return AX_ESHUTDOWN;
        }
        p->next = old;
    } while (!__atomic_compare_exchange_n(&loop->posts, &old, p, true, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
    /* Only the push onto an empty stack wakes the loop: the loop takes the
     * whole stack at once, so later pushes ride along or find it empty. */
    if (!old) ax__loop_wake(loop);
    return 0;
}

int ax_loop_post(ax_loop *loop, void (*fn)(ax_loop *, void *), void *arg)
{
    return ax_loop_post_or(loop, fn, NULL, arg);
}

/* ax_loop_defer(): a call kept until this iteration's events are done. */
typedef struct defer_call {
    ax__deferred d; /* first: the list's node is the call */
    void (*fn)(ax_loop *loop, void *arg);
    void *arg;
} defer_call;

static void defer_run(ax_loop *loop, ax__deferred *d)
{
    defer_call *c = (defer_call *)d;
    c->fn(loop, c->arg);
    ax_free(c);
}

int ax_loop_defer(ax_loop *loop, void (*fn)(ax_loop *, void *), void *arg)
{
    defer_call *c = ax_malloc(sizeof(*c));
    if (!c) return AX_ENOMEM;
    c->d.fn = NULL;
    c->fn = fn;
    c->arg = arg;
    ax__defer(loop, &c->d, defer_run);
    return 0;
}

/* Take every posted item, leaving `rest` (NULL, or POSTS_CLOSED);
 * returns them oldest first. */
static ax__post *take_posts(ax_loop *loop, ax__post *rest)
{
    ax__post *p = __atomic_exchange_n(&loop->posts, rest, __ATOMIC_ACQUIRE), *fifo = NULL;
    while (p) {
        ax__post *next = p->next;
        p->next = fifo;
        fifo = p;
        p = next;
    }
    return fifo;
}

/* A wake that is lost leaves posts that no one runs (only the push onto
 * an empty stack wakes).  An eventfd takes this write at once; Windows'
 * wake, a datagram (ax__win_eventfd), can be refused with EAGAIN for a
 * moment while other threads send on it (seen under Wine: loop 0 of
 * threads_post_counting slept with 39,999 of its 40,000 posts
 * queued): try again. */
void ax__loop_wake(ax_loop *loop)
{
    uint64_t one = 1;
    while (write(loop->wake_wfd, &one, sizeof one) < 0 && (errno == EAGAIN || errno == EINTR))
        sched_yield();
}

/* Set by a signal handler on whatever thread the signal lands on, taken by
 * the loop it names: atomics (lock-free, so safe in a handler), not just
 * volatile, which orders nothing between threads. */
static atomic_int pending_signal;
static atomic_int pending_hup;
static ax_loop *hup_loop;
static void (*hup_cb)(ax_loop *loop);
static ax_loop *signal_loop;

static void run_posts(ax_loop *loop)
{
    ax__post *p = take_posts(loop, NULL);
    while (p) {
        ax__post *next = p->next;
        p->fn(loop, p->arg);
        ax_free(p);
        p = next;
    }
}

/* End posts that will not run: each one's drop, oldest first. */
static void drop_posts(ax__post *p)
{
    while (p) {
        ax__post *next = p->next;
        if (p->drop) p->drop(p->arg);
        ax_free(p);
        p = next;
    }
}

void ax_loop_drop_posts(ax_loop *loop)
{
    drop_posts(take_posts(loop, NULL));
}

static void wake_cb(ax_loop *loop, ax__io *io, unsigned revents)
{
    uint64_t v;
    ssize_t r = read(io->fd, &v, sizeof v);
    (void)r;
    (void)revents;
    if (loop == signal_loop && loop->signal_cb) {
        int signo = atomic_exchange(&pending_signal, 0);
        if (signo) loop->signal_cb(loop, signo);
    }
    if (loop == hup_loop && hup_cb && atomic_exchange(&pending_hup, 0)) hup_cb(loop);
    run_posts(loop);
}

/* ---- signals ------------------------------------------------------------ */

static atomic_int signal_count;

static void on_hup(int signo)
{
    (void)signo;
    atomic_store(&pending_hup, 1);
    if (hup_loop) {
        uint64_t one = 1;
        ssize_t r = write(hup_loop->wake_wfd, &one, sizeof one);
        (void)r;
    }
}

int ax_loop_handle_reload(ax_loop *loop, void (*cb)(ax_loop *loop))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    hup_loop = loop;
    hup_cb = cb;
    return sigaction(SIGHUP, &sa, NULL) == -1 ? ax__err() : 0;
}

static void on_signal(int signo)
{
    if (atomic_fetch_add(&signal_count, 1) > 0) _exit(128 + signo); /* second Ctrl-C: stop now */
    atomic_store(&pending_signal, signo);
    if (signal_loop) {
        uint64_t one = 1;
        ssize_t r = write(signal_loop->wake_wfd, &one, sizeof one);
        (void)r;
    }
}

static void default_signal_cb(ax_loop *loop, int signo)
{
    (void)signo;
    ax_loop_stop(loop);
}

int ax_loop_handle_signals(ax_loop *loop, void (*cb)(ax_loop *, int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    loop->signal_cb = cb ? cb : default_signal_cb;
    signal_loop = loop;
    signal_count = 0;
    if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1) return ax__err();
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* ---- running ------------------------------------------------------------ */

static bool has_work(const ax_loop *loop)
{
    return loop->alive > 0 || loop->deferred != NULL || loop->later != NULL;
}

int ax_loop_run_once(ax_loop *loop, int timeout_ms)
{
    run_deferred(loop);
    int next = ax__timers_next(loop);
    if (loop->stop || loop->deferred || loop->later) timeout_ms = 0;
    if (next >= 0 && (timeout_ms < 0 || next < timeout_ms)) timeout_ms = next;
    int rc = loop->backend->wait(loop, timeout_ms); /* updates loop->now */
    if (rc < 0) return rc;
    take_later(loop);
    run_deferred(loop);
    ax__timers_run(loop);
    run_deferred(loop);
    return has_work(loop) ? 1 : 0;
}

int ax_loop_run(ax_loop *loop)
{
    loop->stop = false;
    for (;;) {
        /* Deferred work (close callbacks, frees) may be all that is left:
         * run it before deciding whether anything remains to wait for. */
        run_deferred(loop);
        if (loop->stop || !has_work(loop)) break;
        int rc = ax_loop_run_once(loop, -1);
        if (rc < 0) return rc;
    }
    loop->stop = false;
    return 0;
}

void ax_loop_stop(ax_loop *loop)
{
    loop->stop = true;
}
uint64_t ax_loop_now(const ax_loop *loop)
{
    return loop->now;
}
void ax_loop_update_time(ax_loop *loop)
{
    loop->now = ax__monotonic_ms();
}
const char *ax_loop_backend(const ax_loop *loop)
{
    return loop->backend->name;
}
void ax_loop_set_data(ax_loop *loop, void *data)
{
    loop->data = data;
}
void *ax_loop_data(const ax_loop *loop)
{
    return loop->data;
}
unsigned ax_loop_alive(const ax_loop *loop)
{
    return (unsigned)loop->alive;
}

void ax_loop_free(ax_loop *loop)
{
    if (!loop) return;
    /* Close every handle; their close callbacks run from the deferred list
     * and unlink them.  Close callbacks that open new handles get a few more
     * rounds, then the loop is torn down regardless. */
    for (int round = 0; round < 8 && handles_left(loop); round++) {
        /* connections before the listeners they came from */
        for (int k = 0; k < AX__H_KINDS; k++) {
            ax__link *head = &loop->handles[k];
            for (ax__link *l = head->next; l != head;) {
                ax__link *next = l->next;
                ax__handle *h = (ax__handle *)l;
                if (k == AX__H_CONN - 1)
                    ax__conn_close_handle(h);
                else if (k == AX__H_LISTENER - 1)
                    ax__listener_close_handle(h);
                else
                    ax__udp_close_handle(h);
                l = next;
            }
        }
        take_later(loop);
        run_deferred(loop);
    }
    take_later(loop);
    run_deferred(loop);
    ax__timers_free_all(loop);
    take_later(loop);
    run_deferred(loop);
    if (signal_loop == loop) signal_loop = NULL;
    /* closed before the wake fd goes: a later post fails, never writes */
    drop_posts(take_posts(loop, POSTS_CLOSED));
    take_later(loop); /* (what the drops deferred) */
    run_deferred(loop);
    ax__io_stop(loop, &loop->wake);
    close(loop->wake_wfd);
    loop->backend->destroy(loop); /* (may free the last connections) */
    ax__conn_cache_free(loop);
    ax__udp_batch_free(loop);
    ax_free(loop->rbuf);
    ax_free(loop);
}
