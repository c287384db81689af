/* dns.c: asynchronous name resolution with c-ares on the loop, and
 * ax_connect() to a name in dns_connect.c.
 *
 * Each request has its own c-ares channel.  That costs reading resolv.conf
 * per request, which is nothing next to a network round trip, and keeps the
 * loop free of DNS state: nothing to create, share or tear down with it. */
#include "internal.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DNS_TIMEOUT_MS 10000 /* whole resolution, when not given */
#define DNS_TRY_MS 2000      /* one query try before c-ares asks again */
#define DNS_TRIES 3
#define MAX_ADDRS AX__DNS_MAX_ADDRS

/* ---- process-wide state ---------------------------------------------------- */

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_status;
static pthread_mutex_t servers_lock = PTHREAD_MUTEX_INITIALIZER;
static char *default_servers;

static void lib_init(void)
{
    lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

int ax_dns_set_servers(const char *servers)
{
    char *copy = NULL;
    if (servers) {
        size_t n = strlen(servers) + 1;
        if (!(copy = ax_malloc(n))) return AX_ENOMEM;
        memcpy(copy, servers, n);
    }
    pthread_mutex_lock(&servers_lock);
    char *old = default_servers;
    default_servers = copy;
    pthread_mutex_unlock(&servers_lock);
    ax_free(old);
    return 0;
}

/* ---- a request ------------------------------------------------------------- */

/* A socket c-ares asked us to watch. */
typedef struct dns_sock {
    ax__io io;
    struct dns_sock *next;
    ax_dns_req *req;
} dns_sock;

struct ax_dns_req {
    ax_loop *loop;
    ares_channel ch; /* NULL when answered without asking anyone */
    ax_dns_cb cb;
    void *ud;
    int port;
    ax_scheme scheme;
    uint64_t deadline;
    ax_timer *timer; /* c-ares retransmissions and our deadline */
    dns_sock *socks; /* watched */
    dns_sock *dead;  /* stopped while events may be pending; freed at the end */
    struct ares_addrinfo *ai;
    int status;
    bool answered, cancelled, in_cb;
    ax__deferred d;
};

static void req_deferred(ax_loop *loop, ax__deferred *d);

/* The answer is in (or the request gave up): deliver it from the deferred
 * list, never from inside c-ares or ax_dns_resolve. */
static void finish(ax_dns_req *r, int status, struct ares_addrinfo *ai)
{
    if (r->answered || r->cancelled) {
        if (ai) ares_freeaddrinfo(ai);
        return;
    }
    r->answered = true;
    r->status = status;
    r->ai = ai;
    ax_timer_stop(r->timer);
    ax__defer(r->loop, &r->d, req_deferred);
}

static int map_status(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
        return AX_ENOHOST;
    case ARES_ETIMEOUT:
        return AX_EDNSTIMEDOUT;
    case ARES_ENOMEM:
        return AX_ENOMEM;
    default:
        return AX_EDNS;
    }
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    (void)timeouts;
    int rc = map_status(status);
    if (rc == 0 && (!ai || !ai->nodes)) rc = AX_ENOHOST;
    finish(arg, rc, ai);
}

static void rearm(ax_dns_req *r)
{
    if (r->answered || r->cancelled) return;
    uint64_t now = ax_loop_now(r->loop);
    if (now >= r->deadline) {
        finish(r, AX_EDNSTIMEDOUT, NULL);
        return;
    }
    uint64_t left = r->deadline - now, ms = left;
    struct timeval max = {(time_t)(left / 1000), (suseconds_t)(left % 1000 * 1000)}, tv;
    struct timeval *t = ares_timeout(r->ch, &max, &tv);
    if (t) ms = (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000;
    ax_timer_start(r->timer, ms > left ? left : ms, 0);
}

static void on_timer(ax_timer *t, void *ud)
{
    ax_dns_req *r = ud;
    (void)t;
    if (r->answered || r->cancelled) return;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm(r);
}

static void sock_io(ax_loop *loop, ax__io *io, unsigned revents)
{
    dns_sock *s = AX__CONTAINER(io, dns_sock, io);
    ax_dns_req *r = s->req;
    (void)loop;
    if (r->answered || r->cancelled) return;
    ares_socket_t fd = io->fd;
    ares_socket_t rfd = (revents & (AX__IN | AX__ERR | AX__HUP)) ? fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (revents & AX__OUT) ? fd : ARES_SOCKET_BAD;
    ares_process_fd(r->ch, rfd, wfd); /* may stop s (moved to r->dead) */
    rearm(r);
}

/* c-ares opens, watches and closes its sockets through this callback. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    ax_dns_req *r = data;
    dns_sock **pp = &r->socks, *s;
    for (s = *pp; s && s->io.fd != fd; s = *pp)
        pp = &s->next;
    unsigned ev = (readable ? AX__IN : 0) | (writable ? AX__OUT : 0);
    if (!ev) {
        if (!s) return;
        *pp = s->next;
        ax__io_stop(r->loop, &s->io);
        s->next = r->dead; /* an event for it may still be in this batch */
        r->dead = s;
        return;
    }
    if (s) {
        if (ax__io_set(r->loop, &s->io, ev) != 0) finish(r, AX_EDNS, NULL);
        return;
    }
    if (!(s = ax_calloc(1, sizeof(*s)))) {
        finish(r, AX_ENOMEM, NULL);
        return;
    }
    s->req = r;
    if (ax__io_start(r->loop, &s->io, fd, ev, sock_io) != 0) {
        ax_free(s);
        finish(r, AX_EDNS, NULL);
        return;
    }
    s->next = r->socks;
    r->socks = s;
}

static int configure_sock(ares_socket_t fd, int type, void *data)
{
    (void)type, (void)data;
    ax__make_nonblocking_cloexec(fd);
    return 0;
}

static int open_channel(ax_dns_req *r, const char *servers)
{
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = r;
    o.timeout = DNS_TRY_MS;
    o.tries = DNS_TRIES;
    int rc =
        ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        r->ch = NULL;
        return rc == ARES_ENOMEM ? AX_ENOMEM : AX_EDNS;
    }
    ares_set_socket_configure_callback(r->ch, configure_sock, NULL);
    pthread_mutex_lock(&servers_lock);
    const char *use = servers ? servers : default_servers;
    rc = use ? ares_set_servers_ports_csv(r->ch, use) : ARES_SUCCESS;
    pthread_mutex_unlock(&servers_lock);
    return rc == ARES_SUCCESS ? 0 : rc == ARES_ENOMEM ? AX_ENOMEM : AX_EINVAL;
}

/* RFC 6761 6.4: names under .invalid never exist; do not ask anyone. */
static bool special_invalid(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.') n--;
    if (n == 7 && strncasecmp(host, "invalid", 7) == 0) return true;
    return n > 8 && strncasecmp(host + n - 8, ".invalid", 8) == 0;
}

static void free_socks(ax_dns_req *r, dns_sock *s)
{
    while (s) {
        dns_sock *next = s->next;
        ax__io_stop(r->loop, &s->io);
        ax_free(s);
        s = next;
    }
}

static void teardown(ax_dns_req *r)
{
    r->cancelled = true; /* c-ares' own callbacks during destroy are ignored */
    if (r->ch) ares_destroy(r->ch);
    free_socks(r, r->socks);
    free_socks(r, r->dead);
    if (r->ai) ares_freeaddrinfo(r->ai);
    ax_timer_free(r->timer);
    ax_free(r);
}

static void set_port(ax_addr *a, int port)
{
    if (a->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)port);
}

static bool seen(const ax_addr *a, size_t n, const ax_addr *x)
{
    for (size_t i = 0; i < n; i++)
        if (ax_addr_equal(&a[i], x)) return true;
    return false;
}

/* The answer in try order: the first address's family first, then the two
 * families alternating (RFC 8305 section 4), duplicates dropped. */
static size_t collect(const ax_dns_req *r, ax_addr *out, size_t cap)
{
    const struct ares_addrinfo_node *first = r->ai->nodes;
    int fam[2] = {first->ai_family, first->ai_family == AF_INET6 ? AF_INET : AF_INET6};
    const struct ares_addrinfo_node *cur[2] = {first, first};
    size_t n = 0;
    for (int turn = 0; n < cap && (cur[0] || cur[1]); turn ^= 1) {
        const struct ares_addrinfo_node *p = cur[turn];
        while (p && p->ai_family != fam[turn])
            p = p->ai_next;
        cur[turn] = p ? p->ai_next : NULL;
        if (!p || (p->ai_family != AF_INET && p->ai_family != AF_INET6)) continue;
        ax_addr a;
        ax_addr_from_sockaddr(&a, r->scheme, p->ai_addr, p->ai_addrlen);
        set_port(&a, r->port);
        if (!seen(out, n, &a)) out[n++] = a;
    }
    return n;
}

static void req_deferred(ax_loop *loop, ax__deferred *d)
{
    ax_dns_req *r = AX__CONTAINER(d, ax_dns_req, d);
    (void)loop;
    if (!r->cancelled) {
        ax_addr addrs[MAX_ADDRS];
        size_t n = r->status == 0 ? collect(r, addrs, MAX_ADDRS) : 0;
        int status = r->status == 0 && n == 0 ? AX_ENOHOST : r->status;
        r->in_cb = true;
        r->cb(r, status, n ? addrs : NULL, n, r->ud);
    }
    teardown(r);
}

ax_dns_req *ax_dns_resolve(ax_loop *loop, const char *host, int port, ax_scheme scheme,
                           const ax_dns_opts *opts, ax_dns_cb cb, void *ud, int *err)
{
    static const ax_dns_opts none;
    int rc = AX_EINVAL, dummy;
    if (!err) err = &dummy;
    if (!opts) opts = &none;
    if (!loop || !host || !*host || !cb || port < 0 || port > 65535) goto fail;
    pthread_once(&lib_once, lib_init);
    rc = AX_EDNS;
    if (lib_status != ARES_SUCCESS) goto fail;
    rc = AX_ENOMEM;
    ax_dns_req *r = ax_calloc(1, sizeof(*r));
    if (!r) goto fail;
    r->loop = loop;
    r->cb = cb;
    r->ud = ud;
    r->port = port;
    r->scheme = scheme;
    r->deadline = ax_loop_now(loop) + (opts->timeout_ms ? opts->timeout_ms : DNS_TIMEOUT_MS);
    if (!(r->timer = ax_timer_new(loop, on_timer, r))) goto fail_free;
    if (special_invalid(host)) {
        finish(r, AX_ENOHOST, NULL);
        return r;
    }
    if ((rc = open_channel(r, opts->servers)) != 0) goto fail_free;
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = opts->family ? opts->family : AF_UNSPEC;
    hints.ai_socktype = scheme == AX_SCHEME_UDP ? SOCK_DGRAM : SOCK_STREAM;
    ares_getaddrinfo(r->ch, host, NULL, &hints, on_addrinfo, r); /* may answer at once */
    rearm(r);
    return r;

fail_free:
    teardown(r);
fail:
    *err = rc;
    return NULL;
}

void ax_dns_cancel(ax_dns_req *r)
{
    if (!r || r->in_cb || r->cancelled) return;
    r->cancelled = true;
    ax_timer_stop(r->timer);
    ax__defer(r->loop, &r->d, req_deferred);
}
