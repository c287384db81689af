/* dns_win.c: ax_dns_resolve on Windows, GetAddrInfoExW on a worker.
 *
 * Each request resolves on a thread of its own with the blocking
 * GetAddrInfoExW (UTF-8 name in, wide call, addresses out) and posts the
 * answer to its loop with ax_loop_post; the loop never blocks.  A request
 * cancelled or timed out first is marked, and the worker frees it when the
 * call returns.  ax_dns_set_servers and opts->servers have no Windows
 * equivalent (the system's resolver settings apply): AX_EINVAL for a
 * request naming servers. */
#include "internal.h"

#include <string.h>

#define DNS_TIMEOUT_MS 10000

struct ax_dns_req {
    ax_loop *loop;
    ax_dns_cb cb;
    void *ud;
    int port, family;
    ax_scheme scheme;
    ax_timer *timer;
    WCHAR *name;
    ax_addr addrs[AX__DNS_MAX_ADDRS];
    size_t n;
    int status;
    volatile LONG refs; /* the loop's and the worker's */
    bool done, cancelled, in_cb;
    ax__deferred d;
};

int ax_dns_set_servers(const char *servers)
{
    (void)servers;
    return 0; /* the system's resolver settings apply on Windows */
}

static void req_unref(ax_dns_req *r)
{
    if (InterlockedDecrement(&r->refs) == 0) {
        ax_free(r->name);
        ax_free(r);
    }
}

static void set_port(ax_addr *a, int port)
{
    if (a->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&a->sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->sa)->sin6_port = htons((uint16_t)port);
}

static int map_status(int e)
{
    switch (e) {
    case 0:
        return 0;
    case WSAHOST_NOT_FOUND:
    case WSANO_DATA:
    case WSAEAFNOSUPPORT:
        return AX_ENOHOST;
    case WSA_NOT_ENOUGH_MEMORY:
        return AX_ENOMEM;
    case WSAETIMEDOUT:
        return AX_EDNSTIMEDOUT;
    default:
        return AX_EDNS;
    }
}

static void deliver(ax_loop *loop, ax__deferred *d)
{
    ax_dns_req *r = AX__CONTAINER(d, ax_dns_req, d);
    (void)loop;
    ax_timer_free(r->timer);
    r->timer = NULL;
    if (!r->cancelled) {
        int status = r->status == 0 && r->n == 0 ? AX_ENOHOST : r->status;
        r->in_cb = true;
        r->cb(r, status, r->n ? r->addrs : NULL, r->n, r->ud);
    }
    r->cancelled = true;
    req_unref(r);
}

static void answered_drop(void *arg)
{
    req_unref(arg);
}

/* from the worker, through ax_loop_post_or */
static void answered(ax_loop *loop, void *arg)
{
    ax_dns_req *r = arg;
    if (!r->done) {
        r->done = true;
        ax__defer(loop, &r->d, deliver);
    }
    req_unref(r);
}

static DWORD WINAPI worker(void *arg)
{
    ax_dns_req *r = arg;
    ADDRINFOEXW hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = r->family;
    hints.ai_socktype = r->scheme == AX_SCHEME_UDP ? SOCK_DGRAM : SOCK_STREAM;
    int e = GetAddrInfoExW(r->name, NULL, NS_ALL, NULL, &hints, (PADDRINFOEXW *)&res, NULL, NULL,
                           NULL, NULL);
    r->status = map_status(e);
    for (ADDRINFOEXW *p = res; p && r->n < AX__DNS_MAX_ADDRS; p = (ADDRINFOEXW *)p->ai_next) {
        if (p->ai_family != AF_INET && p->ai_family != AF_INET6) continue;
        ax_addr a;
        ax_addr_from_sockaddr(&a, r->scheme, p->ai_addr, (socklen_t)p->ai_addrlen);
        set_port(&a, r->port);
        bool dup = false;
        for (size_t i = 0; i < r->n && !dup; i++)
            dup = ax_addr_equal(&r->addrs[i], &a);
        if (!dup) r->addrs[r->n++] = a;
    }
    if (res) FreeAddrInfoExW(res);
    if (ax_loop_post_or(r->loop, answered, answered_drop, r) != 0)
        req_unref(r); /* the loop is gone */
    return 0;
}

static void on_timer(ax_timer *t, void *ud)
{
    ax_dns_req *r = ud;
    (void)t;
    if (r->done) return;
    r->done = true;
    r->status = AX_EDNSTIMEDOUT;
    r->n = 0;
    ax__defer(r->loop, &r->d, deliver);
}

static WCHAR *widen(const char *s)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    WCHAR *w = n > 0 ? ax_malloc((size_t)n * sizeof(*w)) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) != n) {
        ax_free(w);
        w = NULL;
    }
    return w;
}

static bool special_invalid(const char *host)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.') n--;
    return (n == 7 && _strnicmp(host, "invalid", 7) == 0) ||
           (n > 8 && _strnicmp(host + n - 8, ".invalid", 8) == 0);
}

ax_dns_req *ax_dns_resolve(ax_loop *loop, const char *host, int port, ax_scheme scheme,
                           const ax_dns_opts *opts, ax_dns_cb cb, void *ud, int *err)
{
    static const ax_dns_opts none;
    int rc = AX_EINVAL, dummy;
    if (!err) err = &dummy;
    if (!opts) opts = &none;
    if (!loop || !host || !*host || !cb || port < 0 || port > 65535 || opts->servers) goto fail;
    rc = AX_ENOMEM;
    ax_dns_req *r = ax_calloc(1, sizeof(*r));
    if (!r) goto fail;
    r->loop = loop;
    r->cb = cb;
    r->ud = ud;
    r->port = port;
    r->scheme = scheme;
    r->family = opts->family;
    r->refs = 1;
    if (!(r->timer = ax_timer_new(loop, on_timer, r))) goto fail_free;
    if (special_invalid(host)) {
        r->done = true;
        r->status = AX_ENOHOST;
        ax__defer(loop, &r->d, deliver);
        return r;
    }
    if (!(r->name = widen(host))) goto fail_free;
    ax_timer_start(r->timer, opts->timeout_ms ? opts->timeout_ms : DNS_TIMEOUT_MS, 0);
    r->refs = 2;
    HANDLE th = CreateThread(NULL, 64 * 1024, worker, r, 0, NULL);
    if (!th) {
        rc = AX_EDNS;
        r->refs = 1;
        goto fail_free;
    }
    CloseHandle(th);
    return r;

fail_free:
    ax_timer_free(r->timer);
    ax_free(r->name);
    ax_free(r);
fail:
    *err = rc;
    return NULL;
}

void ax_dns_cancel(ax_dns_req *r)
{
    if (!r || r->in_cb || r->cancelled) return;
    r->cancelled = true;
    ax_timer_stop(r->timer);
    if (!r->done) {
        r->done = true;
        ax__defer(r->loop, &r->d, deliver);
    }
}
