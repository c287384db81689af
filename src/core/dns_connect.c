/* dns_connect.c: ax_connect() to a name: resolve (ax_dns_resolve, dns.c or
 * its Windows twin), then try the addresses in turn with a head start for
 * each (Happy Eyeballs, RFC 8305). */
#include "internal.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_ADDRS AX__DNS_MAX_ADDRS
#define HEAD_START_MS 250 /* RFC 8305's recommended connection attempt delay */

/* ---- ax_connect() to a name ----------------------------------------------- */

typedef struct attempt {
    ax__io io;
    struct name_conn *nc;
} attempt;

typedef struct name_conn {
    ax__pending pending; /* conn.c calls pending.cancel when closed early */
    ax_conn *c;
    ax_loop *loop;
    ax_dns_req *req;
    ax_addr addrs[MAX_ADDRS];
    attempt att[MAX_ADDRS];
    size_t n, next; /* addresses, and the next one to start */
    int inflight;
    int last_err;
    uint64_t deadline;
    ax_timer *timer; /* the next head start, or the deadline */
    ax__deferred free_d;
} name_conn;

static void nc_free(ax_loop *loop, ax__deferred *d)
{
    (void)loop;
    ax_free(AX__CONTAINER(d, name_conn, free_d));
}

/* Stop everything still running; freed after this iteration, since an
 * attempt's event may still be in the batch being dispatched. */
static void nc_release(name_conn *nc)
{
    if (nc->req) ax_dns_cancel(nc->req);
    nc->req = NULL;
    for (size_t i = 0; i < MAX_ADDRS; i++) {
        int fd = nc->att[i].io.fd;
        if (fd < 0) continue;
        ax__io_stop(nc->loop, &nc->att[i].io);
        close(fd);
    }
    nc->inflight = 0;
    ax_timer_free(nc->timer);
    nc->timer = NULL;
    ax__defer(nc->loop, &nc->free_d, nc_free);
}

static void nc_cancel(ax__pending *p)
{
    nc_release(AX__CONTAINER(p, name_conn, pending));
}

/* The connection fails: conn.c calls nc_cancel from inside. */
static void nc_fail(name_conn *nc, int err)
{
    ax__conn_fail(nc->c, err);
}

static void start_next(name_conn *nc);

static void attempt_io(ax_loop *loop, ax__io *io, unsigned revents)
{
    attempt *a = AX__CONTAINER(io, attempt, io);
    name_conn *nc = a->nc;
    int fd = io->fd, e = 0;
    socklen_t len = sizeof e;
    (void)revents;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1) e = errno;
    ax__io_stop(loop, io);
    nc->inflight--;
    if (e) {
        close(fd);
        nc->last_err = -e;
        start_next(nc); /* a failure starts the next address at once */
        return;
    }
    ax_conn *c = nc->c;
    nc_release(nc); /* the other attempts lose */
    int rc = ax__conn_attach(c, fd, true);
    if (rc) {
        close(fd);
        ax__conn_fail(c, rc);
    }
}

static int attempt_start(name_conn *nc, size_t i)
{
    const ax_addr *a = &nc->addrs[i];
    int fd = ax__socket(a->sa.ss_family, SOCK_STREAM);
    if (fd < 0) return fd;
    if (connect(fd, (const struct sockaddr *)&a->sa, a->len) == -1 && errno != EINPROGRESS) {
        int rc = ax__err();
        close(fd);
        return rc == AX_EAGAIN ? AX_ECONNREFUSED : rc;
    }
    nc->att[i].nc = nc;
    int rc = ax__io_start(nc->loop, &nc->att[i].io, fd, AX__OUT, attempt_io);
    if (rc) {
        nc->att[i].io.fd = -1;
        close(fd);
    }
    return rc;
}

/* Start the next address (if any), then wait for the next head start to
 * run out or the deadline, whichever is first. */
static void start_next(name_conn *nc)
{
    while (nc->next < nc->n) {
        int rc = attempt_start(nc, nc->next++);
        if (rc == 0) {
            nc->inflight++;
            break;
        }
        nc->last_err = rc;
    }
    if (nc->inflight == 0) {
        nc_fail(nc, nc->last_err ? nc->last_err : AX_ECONNREFUSED);
        return;
    }
    uint64_t now = ax_loop_now(nc->loop);
    if (now >= nc->deadline) {
        nc_fail(nc, AX_ETIMEDOUT);
        return;
    }
    uint64_t wait = nc->deadline - now;
    if (nc->next < nc->n && wait > HEAD_START_MS) wait = HEAD_START_MS;
    ax_timer_start(nc->timer, wait, 0);
}

static void nc_timer(ax_timer *t, void *ud)
{
    name_conn *nc = ud;
    (void)t;
    if (ax_loop_now(nc->loop) >= nc->deadline)
        nc_fail(nc, AX_ETIMEDOUT);
    else
        start_next(nc);
}

static void nc_resolved(ax_dns_req *req, int status, const ax_addr *addrs, size_t n, void *ud)
{
    name_conn *nc = ud;
    (void)req;
    nc->req = NULL;
    if (status) {
        nc_fail(nc, status);
        return;
    }
    memcpy(nc->addrs, addrs, n * sizeof(*addrs));
    nc->n = n;
    start_next(nc);
}

ax_conn *ax__connect_name(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                          const ax__conn_limits *lim, void *ud, int *err)
{
    ax_url u;
    int rc = ax_url_split(url, &u, NULL, 0);
    if (rc == 0 && strcmp(u.scheme, "tcp") != 0) rc = AX_ESCHEME;
    if (rc) goto fail;
    rc = AX_ENOMEM;
    name_conn *nc = ax_calloc(1, sizeof(*nc));
    if (!nc) goto fail;
    for (size_t i = 0; i < MAX_ADDRS; i++)
        nc->att[i].io.fd = -1;
    nc->loop = loop;
    nc->pending.cancel = nc_cancel;
    nc->deadline = ax_loop_now(loop) + lim->connect_ms;
    if (!(nc->timer = ax_timer_new(loop, nc_timer, nc))) goto fail_free;
    if (!(nc->c = ax__conn_new_pending(loop, cbs, lim, ud, &nc->pending, &rc))) goto fail_timer;
    ax_dns_opts o = {.timeout_ms = lim->connect_ms};
    nc->req = ax_dns_resolve(loop, u.host, u.port, AX_SCHEME_TCP, &o, nc_resolved, nc, &rc);
    if (!nc->req) nc_fail(nc, rc); /* on_close runs from the loop, not from here */
    return nc->c;

fail_timer:
    ax_timer_free(nc->timer);
fail_free:
    ax_free(nc);
fail:
    *err = rc;
    return NULL;
}
