/* limits-bench.c: what a limits check costs (src/hub/limit.h).
 *
 *     build/bench/limits-bench [SECONDS]
 *
 * Prints ns per call for: one token bucket; hub_limits_msg() (the check a
 * gateway makes per message: the connection's two buckets, then the
 * address's two under its stripe lock); hub_limits_datagram() (the same
 * for a datagram, plus hashing and finding the address); connection open
 * and close.  Each is run on one thread, then on two threads at once
 * (different addresses, and one address shared by both threads: the
 * worst case for the stripe lock).  The clock given to the engine moves
 * 1 ms every 1,000 calls; at the rates set here (10^9/s) nothing is
 * refused (each run has its own addresses: a clock that starts again at
 * 0 gives an address used before nothing back, and would be refused).
 * Times are the calling thread's CPU time per call. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "hub/limit.h"

static hub_limits *L;
static double seconds = 1.0;
static _Atomic unsigned long refusals; /* must stay 0: a refusal costs more */

typedef enum { BUCKET, MSG, DATAGRAM, OPEN_CLOSE } what;

typedef struct job {
    what w;
    uint32_t addr; /* IPv4, host order; datagram sources cycle through 1,024 from here */
    double ns;
} job;

/* The thread's CPU time: on a shared 2-core machine, time the thread
 * spent descheduled is not the check's cost (waiting for a lock held by
 * the other thread is, as spinning or in futex calls). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void peer(struct sockaddr_in *sa, uint32_t addr)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(addr);
}

static void *run(void *arg)
{
    job *j = arg;
    struct sockaddr_in sa;
    peer(&sa, j->addr);
    hub_limits_conn conn;
    hub_refusal r;
    if (hub_limits_conn_open(L, (struct sockaddr *)&sa, 0, &conn, &r) != HUB_LIMIT_OK) abort();
    hub_rate rate = {1000000, 1000, 2000000};
    hub_bucket b;
    hub_bucket_init(&b, &rate, 0);
    uint64_t calls = 0, refused = 0;
    double t0 = now_s(), t1;
    do {
        for (int i = 0; i < 4096; i++, calls++) {
            uint64_t ms = calls / 1000;
            switch (j->w) {
            case BUCKET:
                refused += hub_bucket_take(&b, &rate, 1, ms) != 0;
                break;
            case MSG:
                refused += hub_limits_msg(L, &conn, 64, ms, &r) != HUB_LIMIT_OK;
                break;
            case DATAGRAM:
                peer(&sa, j->addr + (uint32_t)(calls & 1023));
                refused +=
                    hub_limits_datagram(L, (struct sockaddr *)&sa, 64, ms, &r) != HUB_LIMIT_OK;
                break;
            case OPEN_CLOSE: {
                hub_limits_conn c2;
                refused +=
                    hub_limits_conn_open(L, (struct sockaddr *)&sa, ms, &c2, &r) != HUB_LIMIT_OK;
                hub_limits_conn_close(L, &c2, ms);
                break;
            }
            }
        }
        t1 = now_s();
    } while (t1 - t0 < seconds);
    hub_limits_conn_close(L, &conn, 0);
    refusals += refused;
    j->ns = (t1 - t0) * 1e9 / (double)calls;
    return NULL;
}

static void measure(const char *name, what w)
{
    hub_limits_conf c;
    hub_limits_conf_default(&c);
    c.msg_rate = c.byte_rate = c.ip_msg_rate = c.ip_byte_rate =
        (hub_rate){1000000000, 1000, 2000000000};
    if (hub_limits_new(&c, &L) != 0) abort();
    job one = {w, 0x09000001u, 0};
    run(&one);
    job two[2] = {{w, 0x0a000001u, 0}, {w, 0x0b000001u, 0}};
    job same[2] = {{w, 0x0c000001u, 0}, {w, 0x0c000001u, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, run, &two[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, run, &same[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("%-12s 1 thread %6.1f ns   2 threads, 2 addresses %6.1f / %6.1f ns   "
           "2 threads, 1 address %6.1f / %6.1f ns\n",
           name, one.ns, two[0].ns, two[1].ns, same[0].ns, same[1].ns);
    hub_limits_free(L);
}

int main(int argc, char **argv)
{
    if (argc > 1) seconds = atof(argv[1]);
    measure("bucket", BUCKET);
    measure("msg", MSG);
    measure("datagram", DATAGRAM);
    measure("open+close", OPEN_CLOSE);
    printf("refused: %lu\n", (unsigned long)refusals);
    return refusals != 0;
}
