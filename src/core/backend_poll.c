/* backend_poll.c: the portable reference backend, poll(2).
 *
 * pollfd and io arrays grow together; an io remembers its slot, and removal
 * moves the last entry into the hole.  Ready ios are collected before any
 * callback runs, so callbacks may add and remove freely. */
#include "internal.h"

#include <poll.h>

typedef struct {
    struct pollfd *pfds;
    ax__io **ios;
    unsigned len, cap;
    ax__io **ready; /* sized with the arrays above: wait never allocates */
    unsigned *ready_ev;
} poll_data;

static int pl_init(ax_loop *loop)
{
    poll_data *d = ax_calloc(1, sizeof(*d));
    if (!d) return AX_ENOMEM;
    loop->backend_data = d;
    return 0;
}

static void pl_destroy(ax_loop *loop)
{
    poll_data *d = loop->backend_data;
    ax_free(d->pfds);
    ax_free(d->ios);
    ax_free(d->ready);
    ax_free(d->ready_ev);
    ax_free(d);
}

static short to_poll(unsigned ev)
{
    return (short)((ev & AX__IN ? POLLIN : 0) | (ev & AX__OUT ? POLLOUT : 0));
}

static int grow(poll_data *d)
{
    unsigned cap = d->cap ? d->cap * 2 : 64;
    struct pollfd *p = ax_realloc(d->pfds, cap * sizeof(*p));
    if (!p) return AX_ENOMEM;
    d->pfds = p;
    ax__io **ios = ax_realloc(d->ios, cap * sizeof(*ios));
    if (!ios) return AX_ENOMEM;
    d->ios = ios;
    ax__io **ready = ax_realloc(d->ready, cap * sizeof(*ready));
    if (!ready) return AX_ENOMEM;
    d->ready = ready;
    unsigned *ready_ev = ax_realloc(d->ready_ev, cap * sizeof(*ready_ev));
    if (!ready_ev) return AX_ENOMEM;
    d->ready_ev = ready_ev;
    d->cap = cap;
    return 0;
}

static int pl_add(ax_loop *loop, ax__io *io, unsigned events)
{
    poll_data *d = loop->backend_data;
    if (d->len >= AX__IO_SLOTS) return AX_EMFILE;
    if (d->len == d->cap && grow(d) != 0) return AX_ENOMEM;
    d->pfds[d->len] = (struct pollfd){.fd = io->fd, .events = to_poll(events)};
    d->ios[d->len] = io;
    io->slot = (int)d->len++;
    return 0;
}

static int pl_mod(ax_loop *loop, ax__io *io, unsigned events)
{
    poll_data *d = loop->backend_data;
    if (io->slot < 0) return AX_EINVAL;
    d->pfds[io->slot].events = to_poll(events);
    return 0;
}

static void pl_del(ax_loop *loop, ax__io *io)
{
    poll_data *d = loop->backend_data;
    unsigned s = (unsigned)io->slot, last = d->len - 1;
    if (io->slot < 0 || s >= d->len) return;
    if (s != last) {
        d->pfds[s] = d->pfds[last];
        d->ios[s] = d->ios[last];
        d->ios[s]->slot = (int)s;
    }
    d->len--;
    io->slot = -1;
}

static int pl_wait(ax_loop *loop, int timeout_ms)
{
    poll_data *d = loop->backend_data;
    int n = poll(d->pfds, d->len, timeout_ms);
    loop->now = ax__monotonic_ms(); /* callbacks below see the time of waking */
    if (n == -1) return errno == EINTR ? 0 : ax__err();
    if (n == 0) return 0;
    unsigned k = 0;
    for (unsigned i = 0; i < d->len && k < (unsigned)n; i++) {
        short re = d->pfds[i].revents;
        if (!re) continue;
        unsigned r = 0;
        if (re & POLLIN) r |= AX__IN;
        if (re & POLLOUT) r |= AX__OUT;
        if (re & (POLLERR | POLLNVAL)) r |= AX__ERR;
        if (re & POLLHUP) r |= AX__HUP;
        d->ready[k] = d->ios[i];
        d->ready_ev[k++] = r;
    }
    /* An io closed by an earlier callback has fd -1 and is skipped; its
     * memory lives until the deferred close runs after this batch. */
    for (unsigned i = 0; i < k; i++)
        ax__io_dispatch(loop, d->ready[i], d->ready_ev[i]);
    return (int)k;
}

const ax__backend ax__backend_poll = {
    "poll", false, pl_init, pl_destroy, pl_add, pl_mod, pl_del, pl_wait, false,
};
