/* capacity.h: the system limits `axon serve` needs for its connections,
 * checked at start-up (capacity.c, docs/scale.md). */
#ifndef AXON_HUB_CAPACITY_H
#define AXON_HUB_CAPACITY_H

#define SERVE_CAPACITY_LINE 240

/* What the system allows (-1: unknown or unlimited). */
typedef struct serve_capacity {
    long fd_soft, fd_hard; /* RLIMIT_NOFILE */
    long nr_open;          /* fs.nr_open: the most a process may raise it to */
    long file_max;         /* fs.file-max: the whole system */
    long somaxconn;        /* net.core.somaxconn: the accept backlog's ceiling */
    long conntrack_max;    /* net.netfilter.nf_conntrack_max, when tracking is loaded */
    long mem_avail_kib;    /* MemAvailable */
} serve_capacity;

void serve_capacity_read(serve_capacity *c);
/* The warnings for holding `conns` connections on such a system (one
 * sentence each, at most `max` written); how many there are. */
int serve_capacity_check(const serve_capacity *c, long conns, char (*out)[SERVE_CAPACITY_LINE],
                         int max);
/* At start-up: raise the soft descriptor limit toward what `conns`
 * (max_connections; 0: no limit, then to the hard limit) needs, and log a
 * warning for each shortfall. */
void serve_capacity_setup(long conns);

#endif
