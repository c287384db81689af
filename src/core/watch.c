/* watch.c: readiness of a foreign fd (axon/watch.h). */
#include <stddef.h>

#include "internal.h"

struct ax_watch {
    ax__io io; /* first: the backend hands back its address */
    ax__deferred gone;
    ax_loop *loop;
    int fd;
    unsigned want; /* AX_WATCH_* */
    ax_watch_cb cb;
    void *ud;
};

static unsigned to_io(unsigned want)
{
    return (want & AX_WATCH_READ ? AX__IN : 0u) | (want & AX_WATCH_WRITE ? AX__OUT : 0u);
}

static void on_io(ax_loop *loop, ax__io *io, unsigned revents)
{
    ax_watch *w = AX__CONTAINER(io, ax_watch, io);
    unsigned ev = 0;
    (void)loop;
    if (revents & (AX__IN | AX__RDHUP)) ev |= AX_WATCH_READ;
    if (revents & AX__OUT) ev |= AX_WATCH_WRITE;
    if (revents & (AX__ERR | AX__HUP)) ev |= w->want;
    ev &= w->want;
    if (ev) w->cb(w, ev, w->ud);
}

ax_watch *ax_watch_new(ax_loop *loop, int fd, ax_watch_cb cb, void *ud)
{
    ax_watch *w = ax_calloc(1, sizeof(*w));
    if (!w) return NULL;
    w->io.fd = -1;
    w->loop = loop;
    w->fd = fd;
    w->cb = cb;
    w->ud = ud;
    return w;
}

int ax_watch_set(ax_watch *w, unsigned events)
{
    events &= AX_WATCH_READ | AX_WATCH_WRITE;
    if (events == w->want) return 0;
    int rc = 0;
    if (!events) { /* off the backend, so a hang-up does not spin the loop */
        ax__io_stop(w->loop, &w->io);
        w->loop->alive--;
    } else if (!w->want) {
        if ((rc = ax__io_start(w->loop, &w->io, w->fd, to_io(events), on_io)) != 0) {
            w->io.fd = -1;
            return rc;
        }
        w->loop->alive++;
    } else if ((rc = ax__io_set(w->loop, &w->io, to_io(events))) != 0) {
        return rc;
    }
    w->want = events;
    return 0;
}

static void watch_gone(ax_loop *loop, ax__deferred *d)
{
    (void)loop;
    ax_free(AX__CONTAINER(d, ax_watch, gone));
}

void ax_watch_free(ax_watch *w)
{
    if (!w) return;
    if (w->want) {
        ax__io_stop(w->loop, &w->io); /* fd -1: a stale event of this batch is dropped */
        w->loop->alive--;
        w->want = 0;
    }
    ax__defer(w->loop, &w->gone, watch_gone);
}
