/* floor_threads: the least work a fan-out server can do on 1 thread and on
 * 2, to read `axon serve --threads 1` versus `--threads 2` against
 * (bench/threads-floor runs both in turns).  No protocol, no hub: fixed-size
 * messages read from publisher sockets and sent, one send per subscriber per
 * batch, to the subscribers of their topic.
 *
 *     floor_threads [-p PUBS] [-n SUBS] [-T THREADS] [-s SIZE] [-w WINDOW]
 *                   [-b MAX] [-a ACK] [-W WARMUP] [-t SECS] [-c LOADCPU]
 *
 * PUBS publishers (topic i each) and SUBS subscribers per topic, all TCP
 * connections over loopback.  The load is a child process (on CPU LOADCPU,
 * default 1; the server on CPUs 0..THREADS-1, as bench/hub-load): each
 * publisher keeps WINDOW messages (default 16) not yet read by every
 * subscriber of its topic, so the loop is closed as in bench/hub-load.
 *
 * With THREADS 2 the work is split as `axon serve` splits it: publishers
 * and subscribers alternate between the two threads (SO_REUSEPORT places
 * connections, not topics), a thread sends what it reads to its own
 * subscribers of the topic and hands the bytes to the other thread, one
 * hand-over and at most one eventfd wake-up per loop iteration; the other
 * thread sends them to its subscribers.  A send carries everything read
 * for the topic in that iteration (at most MAX messages with -b; 0, the
 * default, means no cap).  With -a, every message read is answered with
 * ACK bytes to its publisher (one send per read), as `axon serve` answers a
 * JSON publish with {"type":"ok",...}: the part of the cost that follows
 * publishes, not deliveries (100x10 against 1x1000).
 *
 * Prints one line: shape, threads, deliveries/s, the server's CPU per
 * delivery (getrusage of the server process over SECS after WARMUP) and
 * the deliveries per send. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int npub = 1, nsub = 1000, nthr = 1, size = 160, window = 16, maxb = 0, warmup = 1, secs = 5,
           loadcpu = 1, ack = 0;

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void pin(int lo, int hi)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = lo; c <= hi; c++)
        CPU_SET(c, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* ---- the load (child process) -------------------------------------------- */

static void load(int *fds)
{
    int total = npub + npub * nsub;
    int ep = epoll_create1(0);
    uint64_t *sent = calloc((size_t)npub, sizeof *sent);
    uint64_t *got = calloc((size_t)npub, sizeof *got); /* messages read, all subs of the topic */
    uint64_t *bytes = calloc((size_t)total, sizeof *bytes); /* per subscriber */
    char *msg = malloc((size_t)size * (size_t)window);
    static char buf[1 << 16];
    memset(msg, 'x', (size_t)size * (size_t)window);
    for (int i = ack ? 0 : npub; i < total; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0) die("epoll_ctl");
    }
    for (;;) {
        for (int p = 0; p < npub; p++) { /* keep WINDOW messages in flight */
            uint64_t inflight = sent[p] - got[p] / (uint64_t)nsub;
            if (inflight >= (uint64_t)window) continue;
            size_t k = (size_t)window - inflight;
            ssize_t w = send(fds[p], msg, k * (size_t)size, MSG_NOSIGNAL);
            if (w < 0) _exit(0);
            sent[p] += (uint64_t)w / (uint64_t)size; /* (blocking: all of it) */
        }
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 1000);
        for (int e = 0; e < n; e++) {
            int i = (int)evs[e].data.u32;
            ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0) _exit(0);
            if (r < 0 || i < npub) continue; /* (acks: read and dropped) */
            uint64_t before = bytes[i] / (uint64_t)size;
            bytes[i] += (uint64_t)r;
            got[(i - npub) / nsub] += bytes[i] / (uint64_t)size - before;
        }
    }
}

/* ---- the server ----------------------------------------------------------- */

typedef struct span { /* bytes of a topic read by one thread for the other */
    int topic;
    size_t off, len;
} span;

typedef struct thr {
    int id, ep, efd;
    pthread_t t;
    /* the inbox, filled by the other thread */
    pthread_mutex_t mu;
    char *ibuf;
    size_t ilen, icap;
    span *isp;
    size_t in, icapn;
    bool woken;
    /* counters, this thread's only (summed on read) */
    _Alignas(64) uint64_t deliveries, sends;
    char pad[48];
} thr;

static thr th[2];
static int *pubfd;   /* [npub] */
static int **subfd;  /* [topic][thread] -> the thread's subscribers of the topic */
static int *subn[2]; /* [thread][topic]: how many */
static char **rest;  /* [pub]: a partial message held back */
static size_t *restlen;
static atomic_bool stop;

static void send_topic(thr *me, int topic, const char *b, size_t len)
{
    size_t cap = maxb ? (size_t)maxb * (size_t)size : len;
    int *fds = subfd[topic * 2 + me->id];
    for (int j = 0; j < subn[me->id][topic]; j++)
        for (size_t off = 0; off < len; off += cap) {
            size_t k = len - off < cap ? len - off : cap;
            if (send(fds[j], b + off, k, MSG_NOSIGNAL) < 0 && errno != EAGAIN) die("send");
            /* (only this thread writes them: no locked add) */
            __atomic_store_n(&me->sends, me->sends + 1, __ATOMIC_RELAXED);
            __atomic_store_n(&me->deliveries, me->deliveries + k / (size_t)size, __ATOMIC_RELAXED);
        }
}

static void handover(thr *to, int topic, const char *b, size_t len)
{
    pthread_mutex_lock(&to->mu);
    if (to->ilen + len > to->icap) {
        to->icap = (to->ilen + len) * 2;
        to->ibuf = realloc(to->ibuf, to->icap);
    }
    if (to->in == to->icapn) {
        to->icapn = to->icapn ? to->icapn * 2 : 64;
        to->isp = realloc(to->isp, to->icapn * sizeof *to->isp);
    }
    memcpy(to->ibuf + to->ilen, b, len);
    to->isp[to->in++] = (span){topic, to->ilen, len};
    to->ilen += len;
    pthread_mutex_unlock(&to->mu);
}

static void wake(thr *to)
{
    pthread_mutex_lock(&to->mu);
    bool w = !to->woken && to->in;
    if (w) to->woken = true;
    pthread_mutex_unlock(&to->mu);
    uint64_t one = 1;
    if (w && write(to->efd, &one, sizeof one) < 0) die("eventfd");
}

static void *serve(void *arg)
{
    thr *me = arg;
    thr *other = nthr > 1 ? &th[1 - me->id] : NULL;
    static _Thread_local char buf[1 << 17];
    char *mine = NULL, *theirs = NULL;
    size_t mcap = 0, tcap = 0;
    while (!atomic_load(&stop)) {
        struct epoll_event evs[256];
        int n = epoll_wait(me->ep, evs, 256, 100);
        bool handed = false;
        for (int e = 0; e < n; e++) {
            int u = (int)evs[e].data.u32;
            if (u < 0 || u == npub) { /* the eventfd: the other thread's spans */
                uint64_t v;
                if (read(me->efd, &v, sizeof v) < 0) continue;
                pthread_mutex_lock(&me->mu);
                if (me->ilen > tcap) {
                    tcap = me->icap;
                    theirs = realloc(theirs, tcap);
                }
                memcpy(theirs, me->ibuf, me->ilen);
                size_t ns = me->in;
                span sp[256];
                span *spv = ns <= 256 ? sp : malloc(ns * sizeof *spv);
                memcpy(spv, me->isp, ns * sizeof *spv);
                me->in = 0;
                me->ilen = 0;
                me->woken = false;
                pthread_mutex_unlock(&me->mu);
                for (size_t i = 0; i < ns; i++) { /* one send per topic's run of spans */
                    size_t off = spv[i].off, len = spv[i].len;
                    while (i + 1 < ns && spv[i + 1].topic == spv[i].topic &&
                           spv[i + 1].off == off + len)
                        len += spv[++i].len;
                    send_topic(me, spv[i].topic, theirs + off, len);
                }
                if (spv != sp) free(spv);
                continue;
            }
            int p = u;
            size_t have = restlen[p];
            memcpy(buf, rest[p], have);
            ssize_t r = recv(pubfd[p], buf + have, sizeof buf - have, MSG_DONTWAIT);
            if (r <= 0) continue;
            have += (size_t)r;
            size_t whole = have / (size_t)size * (size_t)size;
            restlen[p] = have - whole;
            memcpy(rest[p], buf + whole, restlen[p]);
            if (!whole) continue;
            if (ack) { /* the replies to this read's publishes, in one send */
                static _Thread_local char acks[1 << 16];
                size_t na = whole / (size_t)size * (size_t)ack;
                if (na > sizeof acks) na = sizeof acks;
                if (send(pubfd[p], acks, na, MSG_NOSIGNAL) < 0 && errno != EAGAIN) die("send");
            }
            if (other) {
                handover(other, p, buf, whole);
                handed = true;
            }
            if (whole > mcap) {
                mcap = whole;
                mine = realloc(mine, mcap);
            }
            memcpy(mine, buf, whole); /* (the hub keeps the message; so does this) */
            send_topic(me, p, mine, whole);
        }
        if (handed) wake(other); /* one wake-up per iteration, none while one is pending */
    }
    free(mine);
    free(theirs);
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void counts(uint64_t *d, uint64_t *s)
{
    *d = *s = 0;
    for (int i = 0; i < nthr; i++) {
        *d += __atomic_load_n(&th[i].deliveries, __ATOMIC_RELAXED);
        *s += __atomic_load_n(&th[i].sends, __ATOMIC_RELAXED);
    }
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "p:n:T:s:w:b:a:W:t:c:")) != -1) {
        switch (o) {
        case 'p':
            npub = atoi(optarg);
            break;
        case 'n':
            nsub = atoi(optarg);
            break;
        case 'T':
            nthr = atoi(optarg);
            break;
        case 's':
            size = atoi(optarg);
            break;
        case 'w':
            window = atoi(optarg);
            break;
        case 'b':
            maxb = atoi(optarg);
            break;
        case 'a':
            ack = atoi(optarg);
            break;
        case 'W':
            warmup = atoi(optarg);
            break;
        case 't':
            secs = atoi(optarg);
            break;
        case 'c':
            loadcpu = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: see bench/floor_threads.c\n");
            return 2;
        }
    }
    if (nthr < 1 || nthr > 2 || npub < 1 || nsub < 1 || size < 1 || window < 1) return 2;
    int total = npub + npub * nsub;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &al) != 0)
        die("listen");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) { /* the load: connect in order, each says its index */
        pin(loadcpu, loadcpu);
        int *fds = calloc((size_t)total, sizeof *fds);
        for (int i = 0; i < total; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0) die("connect");
            int one = 1;
            setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            uint32_t idx = (uint32_t)i;
            if (send(fds[i], &idx, sizeof idx, 0) != sizeof idx) die("send");
        }
        load(fds);
        _exit(0);
    }
    pin(0, nthr - 1);
    pubfd = calloc((size_t)npub, sizeof *pubfd);
    rest = calloc((size_t)npub, sizeof *rest);
    restlen = calloc((size_t)npub, sizeof *restlen);
    subfd = calloc((size_t)npub * 2, sizeof *subfd);
    for (int t = 0; t < 2; t++)
        subn[t] = calloc((size_t)npub, sizeof *subn[t]);
    for (int i = 0; i < npub * 2; i++)
        subfd[i] = calloc((size_t)nsub, sizeof(int));
    for (int i = 0; i < npub; i++)
        rest[i] = malloc((size_t)size);
    for (int t = 0; t < nthr; t++) {
        th[t].id = t;
        th[t].ep = epoll_create1(0);
        th[t].efd = eventfd(0, EFD_NONBLOCK);
        pthread_mutex_init(&th[t].mu, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)npub};
        if (epoll_ctl(th[t].ep, EPOLL_CTL_ADD, th[t].efd, &ev) != 0) die("epoll_ctl");
    }
    for (int k = 0; k < total; k++) {
        int fd = accept(lfd, NULL, NULL);
        uint32_t i = 0;
        if (fd < 0 || recv(fd, &i, sizeof i, MSG_WAITALL) != sizeof i || i >= (uint32_t)total)
            die("accept");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int t = (int)(k % (uint32_t)nthr); /* connections alternate, as SO_REUSEPORT spreads them */
        if ((int)i < npub) {
            pubfd[i] = fd;
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
            if (epoll_ctl(th[t].ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
        } else {
            int topic = ((int)i - npub) / nsub;
            subfd[topic * 2 + t][subn[t][topic]++] = fd;
        }
    }
    for (int t = 0; t < nthr; t++)
        pthread_create(&th[t].t, NULL, serve, &th[t]);
    struct timespec w = {warmup, 0};
    nanosleep(&w, NULL);
    uint64_t d0, s0, d1, s1;
    double c0 = cpu_s(), t0 = now();
    counts(&d0, &s0);
    struct timespec m = {secs, 0};
    nanosleep(&m, NULL);
    double c1 = cpu_s(), t1 = now();
    counts(&d1, &s1);
    atomic_store(&stop, true);
    for (int t = 0; t < nthr; t++)
        pthread_join(th[t].t, NULL);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    double del = (double)(d1 - d0);
    printf("floor shape=%dx%d threads=%d deliveries/s=%.0f server_cpu_us_per_delivery=%.3f "
           "deliveries_per_send=%.2f\n",
           npub, nsub, nthr, del / (t1 - t0), del > 0 ? (c1 - c0) * 1e6 / del : 0.0,
           s1 > s0 ? del / (double)(s1 - s0) : 0.0);
    return 0;
}
