/* capacity.c: what this machine lets `axon serve` hold, checked when it
 * starts (docs/scale.md).  A connection is a file descriptor, a socket in
 * the kernel (about 3 KiB idle), a place in the accept backlog while it is
 * new, and a few hundred bytes of ours; a million of them need limits that
 * a default system does not give.  The soft file-descriptor limit is raised
 * to the hard one when it is short; every other shortfall is a warning
 * that names the setting and the value to give it. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <axon/log.h>

#include "capacity.h"

#define FD_RESERVE 64        /* listeners, the store, logs, threads' wake-ups */
#define KERNEL_PER_CONN 3072 /* bytes the kernel holds for an idle TCP socket */
#define OURS_PER_CONN 1024   /* ours for an idle subscriber, rounded up */
#define BACKLOG 4096         /* what our listeners ask listen() for */

/* One number from a /proc file, or -1. */
static long proc_long(const char *path, const char *key)
{
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t kl = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f))
        if (!key || strncmp(line, key, kl) == 0) {
            if (sscanf(line + kl, "%ld", &v) != 1) v = -1;
            break;
        }
    fclose(f);
    return v;
}

void serve_capacity_read(serve_capacity *c)
{
    struct rlimit rl;
    memset(c, 0, sizeof(*c));
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        c->fd_soft = rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
        c->fd_hard = rl.rlim_max == RLIM_INFINITY ? -1 : (long)rl.rlim_max;
    }
    c->nr_open = proc_long("/proc/sys/fs/nr_open", NULL);
    c->file_max = proc_long("/proc/sys/fs/file-max", NULL);
    c->somaxconn = proc_long("/proc/sys/net/core/somaxconn", NULL);
    c->conntrack_max = proc_long("/proc/sys/net/netfilter/nf_conntrack_max", NULL);
    c->mem_avail_kib = proc_long("/proc/meminfo", "MemAvailable:");
}

/* Append one warning to out (n lines so far, room for max); the new n. */
static int say(char (*out)[SERVE_CAPACITY_LINE], int n, int max, const char *fmt, long a, long b)
{
    if (n < max) snprintf(out[n], SERVE_CAPACITY_LINE, fmt, a, b);
    return n + 1;
}

int serve_capacity_check(const serve_capacity *c, long conns, char (*out)[SERVE_CAPACITY_LINE],
                         int max)
{
    int n = 0;
    long need = conns + FD_RESERVE;
    if (c->fd_soft >= 0 && c->fd_soft < need)
        n = say(out, n, max,
                "the file-descriptor limit is %ld: about %ld connections at most; raise it "
                "(ulimit -n, LimitNOFILE= in a systemd unit, nofile in limits.conf)",
                c->fd_soft, c->fd_soft > FD_RESERVE ? c->fd_soft - FD_RESERVE : 0);
    if (c->nr_open > 0 && c->nr_open < need)
        n = say(out, n, max,
                "fs.nr_open is %ld, below the %ld descriptors the connections need "
                "(sysctl -w fs.nr_open=...)",
                c->nr_open, need);
    if (c->file_max > 0 && c->file_max < need)
        n = say(out, n, max,
                "fs.file-max is %ld, below the %ld descriptors the connections need "
                "(sysctl -w fs.file-max=...)",
                c->file_max, need);
    if (c->somaxconn > 0 && c->somaxconn < BACKLOG && conns >= 10000)
        n = say(out, n, max,
                "net.core.somaxconn is %ld: a burst of new connections beyond it is "
                "dropped and retried seconds later (sysctl -w net.core.somaxconn=%ld)",
                c->somaxconn, (long)BACKLOG);
    if (c->conntrack_max > 0 && c->conntrack_max < conns)
        n = say(out, n, max,
                "net.netfilter.nf_conntrack_max is %ld: with connection tracking on, "
                "connections past it are dropped (raise it to %ld or more, or skip tracking "
                "for the port)",
                c->conntrack_max, conns);
    long kib = conns / 1024 * (KERNEL_PER_CONN + OURS_PER_CONN);
    if (c->mem_avail_kib > 0 && kib > c->mem_avail_kib)
        n = say(out, n, max,
                "%ld KiB of memory is available, %ld KiB would be needed by that many idle "
                "connections (kernel and ours)",
                c->mem_avail_kib, kib);
    return n;
}

void serve_capacity_setup(long conns)
{
    serve_capacity c;
    serve_capacity_read(&c);
    struct rlimit rl;
    long want = conns > 0 ? conns + FD_RESERVE : c.fd_hard;
    if (c.fd_soft >= 0 && (want < 0 || c.fd_soft < want) && c.fd_hard != c.fd_soft &&
        getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = want < 0 || (c.fd_hard >= 0 && want > c.fd_hard) ? rl.rlim_max : (rlim_t)want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            ax_log(AX_LOG_INFO, "raised the file-descriptor limit from %ld to %ld", c.fd_soft,
                   rl.rlim_cur == RLIM_INFINITY ? -1L : (long)rl.rlim_cur);
            c.fd_soft = rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
        }
    }
    if (conns <= 0) return; /* no max_connections: nothing to hold the system to */
    char lines[8][SERVE_CAPACITY_LINE];
    int n = serve_capacity_check(&c, conns, lines, 8);
    for (int i = 0; i < n && i < 8; i++)
        ax_log(AX_LOG_WARN, "max_connections %ld: %s", conns, lines[i]);
}
