/* listener.c: listening and connecting for stream sockets (TCP, Unix). */
#include "internal.h"
#include "tls.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BATCH 128

struct ax_listener {
    ax__handle h;
    ax__io io;
    ax_loop *loop;
    const ax_conn_cbs *cbs;
    ax__conn_limits lim;
    void *ud;
    ax_addr addr;
    bool tcp;
    bool unlink_path; /* a Unix socket file we created */
    bool closed;
    int spare_fd; /* held back so EMFILE can still accept-and-drop */
    int fd_limit; /* RLIMIT_NOFILE as last read */
    int reserve;  /* descriptors kept for the connections already open */
    int reserve_opt;
    uint64_t emfile;
    ax__deferred free_d;
    ax_tls_ctx *tls; /* accepted connections handshake first (tls.c) */
    /* accepted and not yet open (TLS handshakes): the listener's memory
     * stays until each has opened or failed, as they reach it at the end */
    unsigned opening;
    bool free_pending;
    void (*on_fail)(ax_conn *c, int reason);
};

static int url_to_addr(const char *url, ax_addr *a)
{
    int rc = ax_addr_parse(url, a, NULL, 0);
    if (rc) return rc;
    if (a->scheme == AX_SCHEME_UDP) return AX_ESCHEME;
    return 0;
}

/* A Unix socket file left behind by a dead process: replace it.  One with a
 * live listener: refuse. */
static int clear_stale_unix(const ax_addr *a)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a->sa;
    struct stat st;
    if (sun->sun_path[0] == '\0' || stat(sun->sun_path, &st) == -1) return 0;
    if (!S_ISSOCK(st.st_mode)) return AX_EADDRINUSE;
    int fd = ax__socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0) return fd;
    int live = connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0 || errno == EAGAIN;
    close(fd);
    if (live) return AX_EADDRINUSE;
    unlink(sun->sun_path);
    return 0;
}

/* ---- running out of descriptors -----------------------------------------
 *
 * The connections a server has come first: a new one is accepted and
 * closed at once while fewer than `reserve` descriptors would be left, so
 * the open ones can still be served (a log file reopened, a file sent,
 * the store's files) and the backlog does not keep the listener readable.
 * Accept returns the lowest free descriptor, so one at or above
 * limit - reserve means at most reserve - 1 are left.  Refusing is one
 * episode for the whole process: logged when it begins and when it ends
 * (a connection accepted SHED_QUIET_MS after the last refusal, so a server
 * at the edge does not log each client coming and going), not per
 * connection. */

#define SHED_QUIET_MS 5000
static int shedding;          /* 1 while refusing (atomic) */
static uint64_t shed_count;   /* refused in this episode (atomic) */
static uint64_t shed_last_ms; /* loop time of the last refusal (atomic) */

static void read_fd_limit(ax_listener *l)
{
    struct rlimit rl;
    rlim_t cur = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    l->fd_limit = cur == RLIM_INFINITY || cur > INT32_MAX ? INT32_MAX : (int)cur;
    int r = l->reserve_opt;
    if (r == 0) { /* 1/32 of the limit, from 8 to 64 */
        r = l->fd_limit / 32;
        r = r < 8 ? 8 : r > 64 ? 64 : r;
    }
    l->reserve = r < 0 ? 0 : r < l->fd_limit / 4 ? r : l->fd_limit / 4;
}

/* True when accepting `fd` leaves the reserve; the limit may have been
 * raised since it was read. */
static bool fd_room(ax_listener *l, int fd)
{
    if (fd < l->fd_limit - l->reserve) return true;
    read_fd_limit(l);
    return fd < l->fd_limit - l->reserve;
}

static void shed_note(ax_listener *l)
{
    l->emfile++;
    __atomic_add_fetch(&shed_count, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&shed_last_ms, ax_loop_now(l->loop), __ATOMIC_RELAXED);
    if (__atomic_exchange_n(&shedding, 1, __ATOMIC_RELAXED) == 0)
        ax_log(AX_LOG_WARN,
               "out of file descriptors (limit %d): refusing new connections, keeping %d "
               "for the open ones",
               l->fd_limit, l->reserve);
}

static void shed_over(ax_listener *l)
{
    if (!__atomic_load_n(&shedding, __ATOMIC_RELAXED)) return;
    uint64_t now = ax_loop_now(l->loop), last = __atomic_load_n(&shed_last_ms, __ATOMIC_RELAXED);
    if (now < last + SHED_QUIET_MS || __atomic_exchange_n(&shedding, 0, __ATOMIC_RELAXED) == 0)
        return;
    ax_log(AX_LOG_INFO,
           "accepting new connections again (%llu refused while out of file "
           "descriptors)",
           (unsigned long long)__atomic_exchange_n(&shed_count, 0, __ATOMIC_RELAXED));
}

/* EMFILE past the reserve (other code took the rest): accept with the
 * spare descriptor's slot and drop the connection.  False when there was
 * none to drop (Linux says EMFILE before it looks at the backlog). */
static bool shed_on_emfile(ax_listener *l)
{
    if (l->spare_fd < 0) return false;
    close(l->spare_fd);
    int fd = accept4(l->io.fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) close(fd);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    read_fd_limit(l);
    shed_note(l);
    return true;
}

static void accept_cb(ax_loop *loop, ax__io *io, unsigned revents)
{
    ax_listener *l = AX__CONTAINER(io, ax_listener, io);
    (void)revents;
    for (int i = 0; i < ACCEPT_BATCH && !l->closed; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && shed_on_emfile(l)) continue;
            return; /* EAGAIN and the rest */
        }
        if (!fd_room(l, fd)) {
            close(fd);
            shed_note(l);
            continue;
        }
        shed_over(l);
        if (l->spare_fd < 0) l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        int err;
        ax_conn *c = ax__conn_new(loop, fd, l->cbs, &l->lim, l->ud, l, false, l->tcp, &err);
        if (!c) {
            close(fd);
            continue;
        }
        l->opening++;
        if (l->tls) { /* on_open once the handshake is done */
            int trc = ax__conn_tls_attach(c, l->tls, NULL);
            if (trc) ax__conn_fail(c, trc);
            continue;
        }
        ax__conn_opened(c);
    }
}

static int bind_listen(ax_listener *l, const ax_listen_opts *lo)
{
    int one = 1, fd = ax__socket(l->addr.sa.ss_family, SOCK_STREAM);
    if (fd < 0) return fd;
    if (l->tcp) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (lo->reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (l->addr.sa.ss_family == AF_INET6 && lo->ipv6_only)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    } else {
        int rc = clear_stale_unix(&l->addr);
        if (rc) {
            close(fd);
            return rc;
        }
    }
    if (bind(fd, (struct sockaddr *)&l->addr.sa, l->addr.len) == -1) goto fail;
    l->unlink_path = !l->tcp && ((struct sockaddr_un *)&l->addr.sa)->sun_path[0] != '\0';
    if (l->unlink_path && lo->unix_mode)
        chmod(((struct sockaddr_un *)&l->addr.sa)->sun_path, lo->unix_mode);
    if (listen(fd, lo->backlog > 0 ? lo->backlog : 4096) == -1) goto fail;
    if (l->tcp) { /* learn the real port when 0 was asked */
        socklen_t len = sizeof l->addr.sa;
        getsockname(fd, (struct sockaddr *)&l->addr.sa, &len);
        l->addr.len = len;
    }
    return fd;
fail:;
    int rc = ax__err();
    close(fd);
    return rc;
}

static ax_listener *listen_url(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                               const ax_conn_opts *copts, const ax_listen_opts *lopts, void *ud,
                               int *err)
{
    static const ax_listen_opts no_lopts;
    int rc = AX_ENOMEM, fd;
    ax_listener *l = ax_calloc(1, sizeof(*l));
    if (!l) goto fail;
    if ((rc = url_to_addr(url, &l->addr)) != 0) goto fail_free;
    l->loop = loop;
    l->cbs = cbs;
    l->ud = ud;
    l->tcp = l->addr.scheme == AX_SCHEME_TCP;
    l->reserve_opt = lopts ? lopts->fd_reserve : 0;
    l->on_fail = lopts ? lopts->on_fail : NULL;
    read_fd_limit(l);
    ax__conn_limits_init(&l->lim, copts);
    if ((fd = bind_listen(l, lopts ? lopts : &no_lopts)) < 0) {
        rc = fd;
        goto fail_free;
    }
    if ((rc = ax__io_start(loop, &l->io, fd, AX__IN, accept_cb)) != 0) goto fail_fd;
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ax__handle_add(loop, &l->h, AX__H_LISTENER);
    return l;

fail_fd:
    close(fd);
fail_free:
    ax_free(l);
fail:
    if (err) *err = rc;
    return NULL;
}

ax_listener *ax_listen(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                       const ax_conn_opts *copts, void *ud, int *err)
{
    return ax_listen_ex(loop, url, cbs, copts, NULL, ud, err);
}

const ax_addr *ax_listener_addr(const ax_listener *l)
{
    return &l->addr;
}
char *ax_listener_url(const ax_listener *l, char *buf, size_t len)
{
    if (!l->tls) return ax_addr_format(&l->addr, buf, len);
    char plain[AX_ADDR_STRLEN];
    ax_addr_format(&l->addr, plain, sizeof plain);
    const char *rest = strstr(plain, "://");
    snprintf(buf, len, "tls%s", rest ? rest : "://?");
    return buf;
}

uint64_t ax_listener_emfile_count(const ax_listener *l)
{
    return l->emfile;
}

static void listener_free(ax_loop *loop, ax__deferred *d)
{
    (void)loop;
    ax_listener *l = AX__CONTAINER(d, ax_listener, free_d);
    if (l->opening) {
        l->free_pending = true; /* the last connection to open frees it */
        return;
    }
    ax_tls_ctx_free(l->tls);
    ax_free(l);
}

/* An accepted connection opened, or failed (`reason`) before it did. */
void ax__listener_settled(ax_listener *l, ax_conn *c, bool opened, int reason)
{
    if (!opened && l->on_fail) l->on_fail(c, reason);
    if (--l->opening == 0 && l->free_pending) {
        ax_tls_ctx_free(l->tls);
        ax_free(l);
    }
}

void ax_listener_close(ax_listener *l)
{
    if (!l || l->closed) return;
    l->closed = true;
    int fd = l->io.fd;
    ax__io_stop(l->loop, &l->io);
    close(fd);
    if (l->unlink_path) unlink(((struct sockaddr_un *)&l->addr.sa)->sun_path);
    if (l->spare_fd >= 0) close(l->spare_fd);
    ax__handle_remove(l->loop, &l->h);
    /* freed after this iteration: the accept loop may still be on the stack */
    ax__defer(l->loop, &l->free_d, listener_free);
}

void ax__listener_close_handle(ax__handle *h)
{
    ax_listener_close(AX__CONTAINER(h, ax_listener, h));
}

static ax_conn *connect_url(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                            const ax_conn_opts *opts, void *ud, int *err)
{
    ax_addr a;
    ax__conn_limits lim;
    int rc = url_to_addr(url, &a), dummy;
    if (!err) err = &dummy;
    if (rc == AX_EHOST) { /* a name: resolve on the loop, then connect (dns.c) */
        ax__conn_limits_init(&lim, opts);
        return ax__connect_name(loop, url, cbs, &lim, ud, err);
    }
    if (rc) {
        *err = rc;
        return NULL;
    }
    int fd = ax__socket(a.sa.ss_family, SOCK_STREAM);
    if (fd < 0) {
        *err = fd;
        return NULL;
    }
    ax__conn_limits_init(&lim, opts);
    int r = connect(fd, (struct sockaddr *)&a.sa, a.len);
    int cerr = r == -1 && errno != EINPROGRESS ? -errno : 0;
    ax_conn *c = ax__conn_new(loop, fd, cbs, &lim, ud, NULL, true, a.scheme == AX_SCHEME_TCP, err);
    if (!c) {
        close(fd);
        return NULL;
    }
    if (cerr) ax__conn_fail(c, cerr == AX_EAGAIN ? AX_ECONNREFUSED : cerr);
    return c;
}

/* ---- TLS: tls:// is TCP with a TLS session on top (tls.c) ---------------- */

/* "tls://h:p" to "tcp://h:p" in buf; false for other schemes. */
static bool tls_to_tcp(const char *url, char *buf, size_t len)
{
    if (strncmp(url, "tls://", 6) != 0) return false;
    snprintf(buf, len, "tcp://%s", url + 6);
    return true;
}

ax_listener *ax_listen_ex(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                          const ax_conn_opts *copts, const ax_listen_opts *lopts, void *ud,
                          int *err)
{
    char plain[1024];
    int dummy;
    if (!err) err = &dummy;
    ax_tls_ctx *tls = copts ? copts->tls : NULL;
    bool tls_url = tls_to_tcp(url, plain, sizeof plain);
    if ((tls_url && !tls) || (tls && !ax__tls_ctx_is_server(tls))) {
        ax_log(AX_LOG_ERROR,
               "cannot listen on %s: TLS needs a server context with a certificate "
               "(ax_tls_server_new, ax_conn_opts.tls)",
               url);
        *err = AX_EINVAL;
        return NULL;
    }
    ax_listener *l = listen_url(loop, tls_url ? plain : url, cbs, copts, lopts, ud, err);
    if (l && tls) l->tls = ax__tls_ctx_ref(tls);
    return l;
}

ax_conn *ax_connect(ax_loop *loop, const char *url, const ax_conn_cbs *cbs,
                    const ax_conn_opts *opts, void *ud, int *err)
{
    char plain[1024];
    int dummy;
    if (!err) err = &dummy;
    ax_tls_ctx *tls = opts ? opts->tls : NULL;
    bool tls_url = tls_to_tcp(url, plain, sizeof plain);
    if (tls_url && !tls && !(tls = ax__tls_default_client(err))) return NULL;
    if (tls && ax__tls_ctx_is_server(tls)) {
        *err = AX_EINVAL;
        return NULL;
    }
    if (tls_url) url = plain;
    ax_conn *c = connect_url(loop, url, cbs, opts, ud, err);
    if (!c || !tls) return c;
    ax_url u;
    bool named = ax_url_split(url, &u, NULL, 0) == 0 && strcmp(u.scheme, "unix") != 0;
    int rc = ax__conn_tls_attach(c, tls, named ? u.host : NULL);
    if (rc) ax__conn_fail(c, rc);
    return c;
}
