/* backend_epoll.c: the Linux backend.
 *
 * Connections register once, edge-triggered, for input and output, and are
 * never modified again: no epoll_ctl per write, and no re-poll of every
 * reported socket on the next wait as level-triggered mode does.  Listeners,
 * UDP sockets and the wake-up fd stay level-triggered.  The io pointer rides
 * in epoll_event.data. */
#include "internal.h"

#include <sys/epoll.h>
#include <unistd.h>

#define MAX_EVENTS 256

typedef struct {
    int epfd; /* first, as ax__epoll_add() and the others expect */
} epoll_data_t_;

static unsigned to_epoll(unsigned ev)
{
    return (ev & AX__IN ? EPOLLIN : 0u) | (ev & AX__OUT ? EPOLLOUT : 0u) |
           (ev & AX__EDGE ? (unsigned)(EPOLLET | EPOLLRDHUP) : 0u);
}

static int ctl(ax_loop *loop, int op, ax__io *io, unsigned events)
{
    int epfd = *(const int *)loop->backend_data; /* the data's first member */
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    return epoll_ctl(epfd, op, io->fd, op == EPOLL_CTL_DEL ? NULL : &ev) == -1 ? ax__err() : 0;
}

int ax__epoll_add(ax_loop *loop, ax__io *io, unsigned events)
{
    return ctl(loop, EPOLL_CTL_ADD, io, events);
}

int ax__epoll_mod(ax_loop *loop, ax__io *io, unsigned events)
{
    return ctl(loop, EPOLL_CTL_MOD, io, events);
}

void ax__epoll_del(ax_loop *loop, ax__io *io)
{
    ctl(loop, EPOLL_CTL_DEL, io, 0);
}

int ax__epoll_poll(ax_loop *loop, int epfd, int timeout_ms)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
    loop->now = ax__monotonic_ms(); /* callbacks below see the time of waking */
    if (n == -1) return errno == EINTR ? 0 : ax__err();
    for (int i = 0; i < n; i++) {
        unsigned e = events[i].events, r = 0;
        if (e & EPOLLIN) r |= AX__IN;
        if (e & EPOLLOUT) r |= AX__OUT;
        if (e & EPOLLERR) r |= AX__ERR;
        if (e & EPOLLHUP) r |= AX__HUP;
        if (e & EPOLLRDHUP) r |= AX__RDHUP;
        /* io->fd is -1 when an earlier callback of this batch closed it */
        ax__io_dispatch(loop, events[i].data.ptr, r);
    }
    return n;
}

static int ep_init(ax_loop *loop)
{
    epoll_data_t_ *d = ax_malloc(sizeof(*d));
    if (!d) return AX_ENOMEM;
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd == -1) {
        int rc = ax__err();
        ax_free(d);
        return rc;
    }
    loop->backend_data = d;
    return 0;
}

static void ep_destroy(ax_loop *loop)
{
    epoll_data_t_ *d = loop->backend_data;
    close(d->epfd);
    ax_free(d);
}

static int ep_wait(ax_loop *loop, int timeout_ms)
{
    return ax__epoll_poll(loop, ((epoll_data_t_ *)loop->backend_data)->epfd, timeout_ms);
}

const ax__backend ax__backend_epoll = {
    "epoll", true, ep_init, ep_destroy, ax__epoll_add, ax__epoll_mod, ax__epoll_del, ep_wait, false,
};
