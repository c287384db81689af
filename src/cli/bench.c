/* bench.c: `axon bench URL`: a load generator for every protocol axon
 * speaks, with honest latency.
 *
 * Threads: -t workers, each with its own loop, its share of the
 * connections, and a 1 ms tick that runs the schedule.  The main thread
 * only watches the clock: it opens the measurement window (after every
 * connection is set up and the ramp is over), collects each worker's
 * interval histogram once a second (the progress line, the timeline), and
 * closes the window.
 *
 * Two load models.  Closed loop: each connection keeps -p requests in
 * flight and sends the next when one completes.  Open loop (-R): request k
 * of a connection is intended at start + k * interval whether or not the
 * server kept up; it is sent as soon as the connection may (at most -p in
 * flight) and its latency counts from the intended time, so a stalled
 * server shows in the percentiles (wrk2's correction for coordinated
 * omission) instead of quietly slowing the generator down.
 *
 * Self-check: the tick measures how late it runs (schedule lag) and the
 * main thread reads each worker's CPU time; when the generator, not the
 * server, was the limit the run is marked invalid. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <axon/watch.h>

#include "bench.h"
#include "cli.h"

#define SETUP_MS 10000 /* longest wait for connections and subscriptions */

static struct {
    const bench_cfg *cfg;
    bench_worker *w;
    int running, measuring, stopping, quit; /* atomics */
    uint64_t t_start;
    volatile sig_atomic_t interrupted;
} G;

uint64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

bool bench_measuring(void)
{
    return __atomic_load_n(&G.measuring, __ATOMIC_ACQUIRE) != 0;
}

bool bench_running(void)
{
    return __atomic_load_n(&G.running, __ATOMIC_ACQUIRE) != 0 &&
           !__atomic_load_n(&G.stopping, __ATOMIC_ACQUIRE);
}

/* ---- what the protocols report ------------------------------------------ */

static void error_locked(bench_worker *w, const char *kind)
{
    for (int i = 0; i < w->nerrs; i++)
        if (strcmp(w->errs[i].kind, kind) == 0) {
            w->errs[i].n++;
            return;
        }
    int i = w->nerrs < BENCH_MAX_ERR ? w->nerrs++ : BENCH_MAX_ERR - 1;
    if (i == BENCH_MAX_ERR - 1 && w->nerrs == BENCH_MAX_ERR && w->errs[i].n) kind = "other errors";
    snprintf(w->errs[i].kind, sizeof w->errs[i].kind, "%s", kind);
    w->errs[i].n++;
}

void bench_error(bench_worker *w, const char *kind)
{
    pthread_mutex_lock(&w->lock);
    error_locked(w, kind);
    pthread_mutex_unlock(&w->lock);
}

void bench_bytes(bench_worker *w, uint64_t in, uint64_t out)
{
    if (!bench_measuring()) return;
    pthread_mutex_lock(&w->lock);
    w->bytes_in += in;
    w->bytes_out += out;
    pthread_mutex_unlock(&w->lock);
}

static void record(bench_worker *w, uint64_t lat, uint64_t lat_sent)
{
    pthread_mutex_lock(&w->lock);
    bench_hist_add(&w->interval, lat);
    bench_hist_add(&w->interval_sent, lat_sent);
    w->done++;
    pthread_mutex_unlock(&w->lock);
}

void bench_conn_up(bconn *c)
{
    bench_worker *w = c->w;
    c->up = true;
    int n = __atomic_add_fetch(&w->up_now, 1, __ATOMIC_RELAXED);
    if (n > w->up_max) w->up_max = n;
}

void bench_conn_down(bconn *c, const char *why)
{
    bench_worker *w = c->w;
    if (why) bench_error(w, why);
    if (c->up)
        __atomic_sub_fetch(&w->up_now, 1, __ATOMIC_RELAXED);
    else if (!c->dead)
        w->conn_failed++;
    c->up = false;
    c->dead = true;
    c->h = NULL;
}

void bench_sub_ready(bench_worker *w)
{
    w->subs_ready++;
}

size_t bench_payload(char *buf, size_t cap, size_t size, int pub, uint64_t seq, uint64_t ts)
{
    int n =
        snprintf(buf, cap, "%d:%llu:%llu:", pub, (unsigned long long)seq, (unsigned long long)ts);
    size_t len = (size_t)n;
    while (len < size && len + 1 < cap)
        buf[len++] = 'x';
    return len;
}

static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    if (s >= end || *s < '0' || *s > '9') return false;
    while (s < end && *s >= '0' && *s <= '9')
        v = v * 10 + (uint64_t)(*s++ - '0');
    if (s >= end || *s != ':') return false;
    *p = s + 1;
    *out = v;
    return true;
}

bool bench_payload_parse(const char *p, size_t len, int *pub, uint64_t *seq, uint64_t *ts)
{
    const char *end = p + len;
    uint64_t v;
    if (!parse_u64(&p, end, &v) || v > 1000000) return false;
    *pub = (int)v;
    return parse_u64(&p, end, seq) && parse_u64(&p, end, ts);
}

void bench_topic_path(char *out, size_t cap, const char *tmpl, const char *prefix, int i)
{
    size_t n = 0;
    out[0] = 0;
    for (const char *t = tmpl; *t && n + 1 < cap;) {
        if (strncmp(t, "{topic}", 7) == 0) {
            int k = snprintf(out + n, cap - n, "%s%d", prefix, i);
            n = k < 0 || (size_t)k >= cap - n ? cap - 1 : n + (size_t)k;
            t += 7;
        } else {
            out[n++] = *t++;
        }
    }
    out[n] = 0;
}

bconn *bench_pub(bench_worker *w, int i)
{
    int t = G.cfg->threads;
    if (i < 0 || i % t != w->index) return NULL;
    int k = i / t;
    return k < w->nconns ? w->conns[k] : NULL;
}

/* ---- the schedule -------------------------------------------------------- */

void bench_pump(bconn *c)
{
    bench_worker *w = c->w;
    const bench_cfg *cfg = w->cfg;
    if (!c->active || !c->up || c->dead || !bench_running()) return;
    uint64_t now = bench_now_us();
    /* c->sent - c->low <= c->mask: a message still out (a lost datagram,
     * a delivery that has not come, until its time-out) keeps its slot in
     * the ring; sending past it would overwrite that slot. */
    while (c->inflight < cfg->depth && c->sent < c->quota && c->sent - c->low <= c->mask) {
        uint64_t ts = now;
        if (cfg->rate > 0) {
            if (c->next_us > now + 5) break; /* 5 us: the rounding of the start times */
            ts = c->next_us;
            c->next_us += c->interval_us;
        }
        uint64_t seq = c->sent++;
        c->ts[seq & c->mask] = ts;
        c->sts[seq & c->mask] = now;
        c->cnt[seq & c->mask] = 0;
        c->fin[seq & c->mask] = 0;
        c->inflight++;
        int rc = w->ops->send(c, seq, ts);
        if (rc > 0) { /* not now (the connection is being replaced) */
            c->sent--;
            c->inflight--;
            if (cfg->rate > 0) c->next_us -= c->interval_us;
            break;
        }
        if (rc < 0) {
            char why[96];
            snprintf(why, sizeof why, "send: %s", ax_strerror(rc));
            bench_error(w, why);
            c->inflight--;
            c->fin[seq & c->mask] = 1;
            if (c->low == seq) c->low++;
            break;
        }
    }
    if (w->ops->flush) w->ops->flush(c);
}

static void on_flush(ax_timer *t, void *ud)
{
    (void)t;
    bench_worker *w = ud;
    for (int i = 0; i < w->ndirty; i++) {
        w->dirty[i]->dirty = false;
        bench_pump(w->dirty[i]);
    }
    w->ndirty = 0;
}

/* More may be sent on c: at once, or (fan-out) at the end of this loop
 * iteration, together with the rest that moved. */
static void pump_soon(bconn *c)
{
    bench_worker *w = c->w;
    if (!w->ops->fanout || !w->flush_t) {
        bench_pump(c);
        return;
    }
    if (c->dirty) return;
    c->dirty = true;
    w->dirty[w->ndirty++] = c;
    if (w->ndirty == 1) (void)ax_timer_start(w->flush_t, 0, 0);
}

void bench_complete(bconn *c, uint64_t seq, bool rec)
{
    if (seq < c->low || seq >= c->sent || c->fin[seq & c->mask]) return;
    c->fin[seq & c->mask] = 1;
    if (rec && bench_measuring()) {
        uint64_t now = bench_now_us();
        record(c->w, now - c->ts[seq & c->mask], now - c->sts[seq & c->mask]);
    }
    if (c->w->ops->fanout && bench_measuring()) {
        pthread_mutex_lock(&c->w->lock);
        c->w->published++;
        pthread_mutex_unlock(&c->w->lock);
    }
    c->inflight--;
    while (c->low < c->sent && c->fin[c->low & c->mask])
        c->low++;
    pump_soon(c);
}

void bench_reply(bconn *c)
{
    bench_complete(c, c->low, true);
}

static uint32_t need_of(const bench_worker *w)
{
    bool acked = w->ops->acked || (w->cfg->kind == BK_MQTT && w->cfg->qos > 0);
    return (uint32_t)w->cfg->subs + (acked ? 1u : 0u);
}

static void count_one(bconn *p, uint64_t seq)
{
    if (seq < p->low || seq >= p->sent || p->fin[seq & p->mask]) return;
    if (++p->cnt[seq & p->mask] >= need_of(p->w)) bench_complete(p, seq, false);
}

void bench_deliver(bconn *p, uint64_t *next, uint64_t seq, uint64_t ts)
{
    bench_worker *w = p->w;
    uint64_t now = bench_now_us();
    if (bench_measuring()) {
        /* the actual send time while the message is still in the ring */
        uint64_t sts = seq >= p->low && seq < p->sent ? p->sts[seq & p->mask] : ts;
        pthread_mutex_lock(&w->lock);
        bench_hist_add(&w->interval, now > ts ? now - ts : 0);
        bench_hist_add(&w->interval_sent, now > sts ? now - sts : 0);
        w->done++;
        if (seq > *next) w->lost += seq - *next;
        if (seq < *next) w->reordered++;
        pthread_mutex_unlock(&w->lock);
    }
    if (seq >= *next) *next = seq + 1;
    count_one(p, seq);
}

void bench_acked(bconn *p, uint64_t seq)
{
    count_one(p, seq);
}

/* A message or request unanswered for the timeout: fan-out and UDP only
 * (in-order replies cannot skip one). */
static void expire(bconn *c, uint64_t now)
{
    bench_worker *w = c->w;
    uint64_t limit = (uint64_t)w->cfg->timeout_ms * 1000;
    while (c->inflight > 0 && c->low < c->sent && !c->fin[c->low & c->mask] &&
           c->ts[c->low & c->mask] + limit < now) {
        bench_error(w, w->ops->fanout ? "timeout: a message not delivered to every subscriber"
                                      : "timeout: no reply");
        bench_complete(c, c->low, false);
    }
}

static bool worker_ready(const bench_worker *w)
{
    return w->up_now + w->conn_failed >= w->nconns && w->subs_ready >= w->subs_wanted;
}

/* Open loop: a timer with microsecond resolution (the loop's timers count
 * milliseconds) sends what is due, and measures how late it runs: the
 * generator's own schedule lag. */
static void on_sched(ax_watch *wa, unsigned events, void *ud)
{
    (void)wa;
    (void)events;
    bench_worker *w = ud;
    uint64_t n = 0;
    if (read(w->sched_fd, &n, sizeof n) != (ssize_t)sizeof n || n == 0) return;
    uint64_t now = bench_now_us();
    /* Every expiry since the last read is a moment when sends were due:
     * each counts with its own lateness.  Counting only the last one would
     * hide the generator's own stalls (a thread descheduled for 100 ms
     * reads n = 100 expiries at once, the last of them barely late): the
     * coordinated omission of the self-check. */
    if (bench_measuring())
        for (uint64_t i = 0; i < n; i++) {
            uint64_t due = (w->tick_due + i * w->sched_ns) / 1000u;
            bench_hist_add(&w->lag, now > due ? now - due : 0);
        }
    w->tick_due += n * w->sched_ns;
    if (!bench_running()) return;
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i]->active) bench_pump(w->conns[i]);
}

static int sched_start(bench_worker *w)
{
    w->sched_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->sched_fd == -1) return AX_EIO;
    w->sched = ax_watch_new(w->loop, w->sched_fd, on_sched, w);
    if (!w->sched) return AX_ENOMEM;
    return ax_watch_set(w->sched, AX_WATCH_READ);
}

/* Once the start times are known: the worker's connections are due one
 * after another, evenly spaced (bench.c staggers them), so one periodic
 * timer at that spacing, starting at the first one's start, fires when
 * each request is due. */
static void sched_arm(bench_worker *w)
{
    if (w->nconns == 0) return;
    uint64_t first = w->conns[0]->start_us, ns = w->conns[0]->interval_us * 1000u;
    for (int i = 1; i < w->nconns; i++)
        if (w->conns[i]->start_us < first) first = w->conns[i]->start_us;
    ns /= (uint64_t)w->nconns;
    if (ns < 20000) ns = 20000;
    w->sched_ns = ns;
    struct itimerspec its = {
        .it_interval = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)},
        .it_value = {(time_t)(first / 1000000u), (long)(first % 1000000u) * 1000},
    };
    w->tick_due = first * 1000u;
    if (timerfd_settime(w->sched_fd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
        bench_error(w, "setup: timerfd_settime failed");
}

static void on_tick(ax_timer *t, void *ud)
{
    (void)t;
    bench_worker *w = ud;
    uint64_t now = bench_now_us();
    if (!__atomic_load_n(&w->ready, __ATOMIC_ACQUIRE) && worker_ready(w))
        __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
    if (!bench_running()) return;
    if (w->sched && !w->sched_armed) {
        w->sched_armed = true;
        sched_arm(w);
    }
    bool finished = true;
    bool by_seq = w->ops->fanout || w->ops == &bench_udp_ops;
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (c->dead || !c->up) continue;
        if (!c->active && now >= c->start_us) {
            c->active = true;
            c->next_us = c->start_us;
        }
        bench_pump(c);
        if (by_seq) expire(c, now);
        if (c->sent < c->quota || c->inflight > 0) finished = false;
    }
    if (finished && !w->finished) __atomic_store_n(&w->finished, 1, __ATOMIC_RELEASE);
}

static uint64_t pow2_at_least(uint64_t v)
{
    uint64_t p = 16;
    while (p < v)
        p <<= 1;
    return p;
}

static void free_conns(bench_worker *w)
{
    free(w->dirty);
    w->dirty = NULL;
    if (!w->conns) return;
    for (int i = 0; i < w->nconns; i++) {
        bconn *c = w->conns[i];
        if (!c) continue;
        free(c->ts);
        free(c->sts);
        free(c->cnt);
        free(c->fin);
        free(c);
    }
    free(w->conns);
    w->conns = NULL;
}

/* This worker's bconns: connections i, i + T, ... (publishers likewise). */
static int make_conns(bench_worker *w)
{
    const bench_cfg *cfg = w->cfg;
    int total = w->ops->fanout ? cfg->pubs : cfg->conns;
    int T = cfg->threads;
    w->nconns = total / T + (w->index < total % T ? 1 : 0);
    w->conns = calloc((size_t)w->nconns + 1, sizeof(*w->conns));
    w->dirty = calloc((size_t)w->nconns + 1, sizeof(*w->dirty));
    if (!w->conns || !w->dirty) return AX_ENOMEM;
    uint64_t ring = pow2_at_least((uint64_t)cfg->depth * 2);
    for (int k = 0; k < w->nconns; k++) {
        bconn *c = calloc(1, sizeof(*c));
        if (!c) return AX_ENOMEM;
        w->conns[k] = c;
        c->w = w;
        c->index = k * T + w->index;
        c->mask = ring - 1;
        c->ts = calloc(ring, sizeof(*c->ts));
        c->sts = calloc(ring, sizeof(*c->sts));
        c->cnt = calloc(ring, sizeof(*c->cnt));
        c->fin = calloc(ring, sizeof(*c->fin));
        if (!c->ts || !c->sts || !c->cnt || !c->fin) return AX_ENOMEM;
        c->quota = UINT64_MAX;
        if (cfg->count)
            c->quota =
                cfg->count / (uint64_t)total + ((uint64_t)c->index < cfg->count % (uint64_t)total);
        if (cfg->rate > 0) c->interval_us = (uint64_t)(1e6 * total / cfg->rate);
        if (c->interval_us == 0 && cfg->rate > 0) c->interval_us = 1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    bench_worker *w = arg;
    int err = 0;
    w->ktid = (int)syscall(SYS_gettid);
    w->loop = ax_loop_new(NULL, &err);
    if (!w->loop) {
        bench_error(w, "setup: cannot make a loop");
        __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
        return NULL;
    }
    w->tick = ax_timer_new(w->loop, on_tick, w);
    w->sched_fd = -1;
    w->flush_t = ax_timer_new(w->loop, on_flush, w);
    if (!w->tick || !w->flush_t || ax_timer_start(w->tick, 1, 1) != 0 || make_conns(w) != 0 ||
        (w->cfg->rate > 0 && sched_start(w) != 0) || w->ops->setup(w) != 0) {
        bench_error(w, "setup: out of memory");
        __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
    }
    while (!__atomic_load_n(&G.quit, __ATOMIC_ACQUIRE))
        if (ax_loop_run_once(w->loop, 50) < 0) break;
    for (int i = 0; i < w->nconns; i++)
        w->unanswered += (uint64_t)w->conns[i]->inflight;
    w->ops->shutdown(w);
    /* Let the closes run their course, briefly. */
    uint64_t until = bench_now_us() + 300000;
    while (ax_loop_alive(w->loop) > 1 && bench_now_us() < until)
        ax_loop_run_once(w->loop, 10);
    ax_timer_free(w->tick);
    ax_timer_free(w->flush_t);
    if (w->sched) ax_watch_free(w->sched);
    if (w->sched_fd != -1) close(w->sched_fd);
    ax_loop_free(w->loop);
    return NULL;
}

/* ---- the main thread ------------------------------------------------------ */

static void on_signal(int sig)
{
    (void)sig;
    G.interrupted = 1;
}

static double thread_cpu(bench_worker *w)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(w->tid, &cid) != 0 || clock_gettime(cid, &ts) != 0) return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds the worker's thread spent runnable but waiting for a CPU (the
 * second field of /proc/self/task/TID/schedstat), 0 where unknown.  A
 * thread that ran or waited to run the whole time was the limit even when
 * other processes took the CPU it wanted. */
static double thread_wait(bench_worker *w)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/schedstat", (int)w->ktid);
    FILE *f = w->ktid ? fopen(path, "r") : NULL;
    unsigned long long run = 0, wait = 0;
    if (!f) return 0;
    if (fscanf(f, "%llu %llu", &run, &wait) != 2) wait = 0;
    fclose(f);
    return (double)wait / 1e9;
}

static double process_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

typedef struct collector {
    bench_hist *total, *sec, *total_sent;
    uint64_t done, bytes, errors;
    bench_point *tl;
    int ntl, captl;
} collector;

static uint64_t err_sum(const bench_worker *w)
{
    uint64_t n = 0;
    for (int i = 0; i < w->nerrs; i++)
        n += w->errs[i].n;
    return n;
}

/* Take each worker's interval histogram into the totals; one timeline
 * point at `t` seconds. */
static void collect(collector *col, double t, int nw)
{
    bench_hist_reset(col->sec);
    uint64_t done = 0, bytes = 0, errors = 0;
    for (int i = 0; i < nw; i++) {
        bench_worker *w = &G.w[i];
        pthread_mutex_lock(&w->lock);
        bench_hist_merge(col->sec, &w->interval);
        bench_hist_reset(&w->interval);
        bench_hist_merge(col->total_sent, &w->interval_sent);
        bench_hist_reset(&w->interval_sent);
        done += w->done;
        bytes += w->bytes_in + w->bytes_out;
        errors += err_sum(w);
        pthread_mutex_unlock(&w->lock);
    }
    bench_hist_merge(col->total, col->sec);
    if (col->ntl == col->captl) {
        int cap = col->captl ? col->captl * 2 : 64;
        bench_point *tl = realloc(col->tl, (size_t)cap * sizeof(*tl));
        if (!tl) return;
        col->tl = tl;
        col->captl = cap;
    }
    col->tl[col->ntl++] = (bench_point){
        .t = t,
        .count = done - col->done,
        .errors = errors - col->errors,
        .bytes = bytes - col->bytes,
        .p50 = bench_hist_pct(col->sec, 50),
        .p99 = bench_hist_pct(col->sec, 99),
        .max = col->sec->max,
    };
    col->done = done;
    col->bytes = bytes;
    col->errors = errors;
}

static void progress(const bench_cfg *cfg, const bench_point *p, double dt, int up, int asked)
{
    if (!cfg->progress) return;
    fprintf(stderr, "\r\033[K  %5.0fs  %10.0f %s/s  p99 %8.2f ms  errors %llu  connections %d/%d",
            p->t, dt > 0 ? (double)p->count / dt : 0.0,
            cfg->kind >= BK_WS_HUB && cfg->kind != BK_WS ? "deliveries" : "req",
            (double)p->p99 / 1000.0, (unsigned long long)p->errors, up, asked);
    fflush(stderr);
}

static int all_flag(int nw, size_t off)
{
    for (int i = 0; i < nw; i++)
        if (!__atomic_load_n((int *)((char *)&G.w[i] + off), __ATOMIC_ACQUIRE)) return 0;
    return 1;
}

static int up_now(int nw)
{
    int n = 0;
    for (int i = 0; i < nw; i++)
        n += __atomic_load_n(&G.w[i].up_now, __ATOMIC_RELAXED);
    return n;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Fill the result from the workers once they have stopped. */
static void gather(bench_result *r, int nw)
{
    const bench_cfg *cfg = G.cfg;
    for (int i = 0; i < nw; i++) {
        bench_worker *w = &G.w[i];
        r->bytes_in += w->bytes_in;
        r->bytes_out += w->bytes_out;
        r->published += w->published;
        r->lost += w->lost;
        r->reordered += w->reordered;
        r->unanswered += w->unanswered;
        r->conns_reached += w->up_max;
        r->subs_ready += w->subs_ready;
        bench_hist_merge(r->lag, &w->lag);
        for (int k = 0; k < w->nerrs; k++) {
            int j = 0;
            while (j < r->nerrs && strcmp(r->errs[j].kind, w->errs[k].kind) != 0)
                j++;
            if (j == r->nerrs) {
                if (r->nerrs == BENCH_MAX_ERR) continue;
                r->errs[r->nerrs++] = w->errs[k];
            } else {
                r->errs[j].n += w->errs[k].n;
            }
            r->errors += w->errs[k].n;
        }
    }
    r->conns_asked = cfg->kind >= BK_WS_HUB && cfg->kind != BK_WS ? cfg->pubs : cfg->conns;
    r->subs_asked = cfg->kind >= BK_WS_HUB && cfg->kind != BK_WS ? cfg->pubs * cfg->subs : 0;
}

/* The self-check: was the generator the limit? */
static void judge(bench_result *r)
{
    const bench_cfg *cfg = r->cfg;
    uint64_t lag99 = bench_hist_pct(r->lag, 99);
    r->valid = true;
    r->why[0] = 0;
    size_t n = 0;
    if (r->cpu >= 0.90) {
        r->valid = false;
        n += (size_t)snprintf(r->why + n, sizeof r->why - n,
                              "the generator's busiest thread used %.0f%% of a core: it, not the "
                              "server, was the limit (add threads with -t, or give it its own "
                              "cores). ",
                              r->cpu * 100);
    } else if (r->busy >= 0.90) {
        r->valid = false;
        n += (size_t)snprintf(r->why + n, sizeof r->why - n,
                              "the generator's busiest thread ran %.0f%% and waited for a CPU "
                              "%.0f%% of the time: other processes starved it, so it, not the "
                              "server, was the limit. ",
                              (r->busy - r->cpu_wait) * 100, r->cpu_wait * 100);
    }
    /* A send that went late carries the generator's delay in its latency:
     * it matters when it is a fair share of the figures (a quarter of the
     * latency's p99), and above the timer's own grain (1 ms). */
    uint64_t lat99 = bench_hist_pct(r->lat, 99);
    if (cfg->rate > 0 && lag99 > 1000 && lag99 * 4 > lat99 && n < sizeof r->why) {
        r->valid = false;
        n += (size_t)snprintf(r->why + n, sizeof r->why - n,
                              "its schedule ran late (p99 %.1f ms behind, latency p99 %.1f ms): "
                              "latencies include the generator's own delay. ",
                              (double)lag99 / 1000.0, (double)lat99 / 1000.0);
    }
    if (r->conns_reached == 0 && r->conns_asked > 0 && n < sizeof r->why) {
        r->valid = false;
        snprintf(r->why + n, sizeof r->why - n, "no connection was made. ");
    }
}

/* ---- options ------------------------------------------------------------ */

static void help(FILE *out)
{
    fprintf(
        out,
        "Usage: axon bench [OPTIONS] URL\n\n"
        "Load any server and report throughput and honest latency.\n\n"
        "URLs:\n"
        "  tcp://H:P unix:///PATH tls://H:P udp://H:P   echo: send -s bytes, wait for them back\n"
        "  http://H:P/PATH https://...                  GET (or -m, -b) with keep-alive\n"
        "  ws://H:P/PATH wss://...                      echo; with --pubsub the hub's JSON\n"
        "                                               envelope (publish/subscribe fan-out)\n"
        "  mqtt://H:P mqtts://H:P                       publish/subscribe fan-out, QoS -q\n"
        "  sse://H:P sses://H:P                         the hub's /sse streams, publishers\n"
        "                                               over POST /api/publish/TOPIC\n\n"
        "Load:\n"
        "  -c N          connections (default 10)\n"
        "  -t N          threads, one loop each (default 1)\n"
        "  -d SECS       measure this long (default 10)\n"
        "  -n N          or send N requests (messages) in all\n"
        "  --ramp SECS   start the connections evenly over SECS; measuring starts after\n"
        "  --warmup SECS load, unmeasured, for SECS before measuring (after the ramp)\n"
        "  -R RATE       open loop: RATE requests (messages) a second in all, latency\n"
        "                from each one's intended send time; default: closed loop\n"
        "  -p N          in flight per connection: HTTP pipelining, echo depth,\n"
        "                publisher window (default 1; fan-out 16)\n"
        "  -s BYTES      message size (echo, payloads; default 64)\n"
        "  --timeout S   a message unanswered this long is an error (default 5)\n"
        "HTTP:\n"
        "  -m METHOD     (default GET, POST with -b)\n"
        "  -b DATA       request body (@FILE reads a file)\n"
        "  -H 'N: V'     an extra header (repeatable)\n"
        "Fan-out (mqtt, sse, ws --pubsub):\n"
        "  -P N          publishers, one topic each (default 1)\n"
        "  -S N          subscribers per topic (default 10)\n"
        "  -q 0|1|2      MQTT QoS (default 0)\n"
        "  -5            MQTT 5.0 (default 3.1.1)\n"
        "  --topic PFX   topic i is PFX<i> (default bench/)\n"
        "  --pubsub      ws://: the hub's envelope instead of echo\n"
        "  --sse-sub P   sse://: subscribers GET P (default /sse?topic={topic})\n"
        "  --sse-pub P   sse://: publishers POST to P (default /api/publish/{topic})\n"
        "TLS:\n"
        "  -k, --insecure  accept any certificate;  --ca FILE  trust these CAs\n"
        "Output:\n"
        "  --json        one JSON object on stdout instead of the table\n"
        "  --html FILE   also write a self-contained page with the charts\n"
        "  --quiet       no progress line (it only shows on a terminal anyway)\n\n"
        "A run is marked INVALID when the generator itself was the limit (a busy\n"
        "thread, a late schedule).  Exit status: 0, 1 on errors or an invalid run,\n"
        "2 on usage.\n");
}

static int split_url(bench_cfg *cfg)
{
    static const struct {
        const char *scheme;
        enum bench_kind kind;
        bool tls;
        int port;
    } schemes[] = {
        {"tcp", BK_STREAM, false, 0},   {"unix", BK_STREAM, false, 0},
        {"tls", BK_STREAM, true, 0},    {"udp", BK_UDP, false, 0},
        {"http", BK_HTTP, false, 80},   {"https", BK_HTTP, true, 443},
        {"ws", BK_WS, false, 80},       {"wss", BK_WS, true, 443},
        {"mqtt", BK_MQTT, false, 1883}, {"mqtts", BK_MQTT, true, 8883},
        {"sse", BK_SSE, false, 80},     {"sses", BK_SSE, true, 443},
    };
    const char *u = cfg->url, *sep = strstr(u, "://");
    if (!sep) return -1;
    size_t sl = (size_t)(sep - u);
    int k = -1;
    for (int i = 0; i < (int)(sizeof schemes / sizeof schemes[0]); i++)
        if (strlen(schemes[i].scheme) == sl && strncmp(u, schemes[i].scheme, sl) == 0) k = i;
    if (k < 0) return -1;
    cfg->kind = schemes[k].kind;
    cfg->tls = schemes[k].tls;
    const char *rest = sep + 3;
    if (strncmp(u, "unix", sl) == 0) {
        snprintf(cfg->path, sizeof cfg->path, "%s", rest);
        snprintf(cfg->target, sizeof cfg->target, "%s", u);
        return 0;
    }
    size_t hl = strcspn(rest, "/?");
    const char *colon = NULL;
    for (const char *p = rest; p < rest + hl; p++)
        if (*p == ':') colon = p;
    if (colon && rest[0] == '[' && colon < strchr(rest, ']')) colon = NULL;
    size_t hostlen = colon ? (size_t)(colon - rest) : hl;
    if (hostlen == 0 || hostlen >= sizeof cfg->host) return -1;
    memcpy(cfg->host, rest, hostlen);
    cfg->host[hostlen] = 0;
    cfg->port = colon ? atoi(colon + 1) : schemes[k].port;
    if (cfg->port <= 0 || cfg->port > 65535) return -1;
    snprintf(cfg->path, sizeof cfg->path, "%s", rest[hl] ? rest + hl : "/");
    if (cfg->path[0] == '?') snprintf(cfg->path, sizeof cfg->path, "/%s", rest + hl);
    snprintf(cfg->target, sizeof cfg->target, "%s://%s:%d",
             cfg->tls ? "tls" : (cfg->kind == BK_UDP ? "udp" : "tcp"), cfg->host, cfg->port);
    return 0;
}

static int read_body(bench_cfg *cfg, const char *arg)
{
    if (arg[0] != '@') {
        cfg->body_len = strlen(arg);
        cfg->body = strdup(arg);
        return cfg->body ? 0 : -1;
    }
    FILE *f = fopen(arg + 1, "rb");
    if (!f) {
        fprintf(stderr, "axon bench: -b %s: %s\n", arg, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    if (!b) return -1;
    cfg->body = b;
    cfg->body_len = n;
    return 0;
}

static int num(const char *opt, const char *arg, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (*end || end == arg || v < lo || v > hi) {
        fprintf(stderr, "axon bench: %s wants a number from %g to %g, got '%s'\n", opt, lo, hi,
                arg);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_WARMUP = 255,
    OPT_RAMP = 256,
    OPT_TOPIC,
    OPT_PUBSUB,
    OPT_CA,
    OPT_JSON,
    OPT_HTML,
    OPT_QUIET,
    OPT_TIMEOUT,
    OPT_SSE_SUB,
    OPT_SSE_PUB
};

static int parse_one(bench_cfg *cfg, int ch, const char *arg, bool *pubsub, bool *depth_set)
{
    double v;
    switch (ch) {
    case 'c':
        if (num("-c", arg, 1, 1000000, &v)) return 2;
        cfg->conns = (int)v;
        return 0;
    case 't':
        if (num("-t", arg, 1, 256, &v)) return 2;
        cfg->threads = (int)v;
        return 0;
    case 'd':
        if (num("-d", arg, 0.01, 86400, &v)) return 2;
        cfg->duration = v;
        return 0;
    case 'n':
        if (num("-n", arg, 1, 1e15, &v)) return 2;
        cfg->count = (uint64_t)v;
        return 0;
    case 'R':
        if (num("-R", arg, 0.001, 1e9, &v)) return 2;
        cfg->rate = v;
        return 0;
    case 'p':
        if (num("-p", arg, 1, BENCH_MAX_DEPTH, &v)) return 2;
        cfg->depth = (int)v;
        *depth_set = true;
        return 0;
    case 's':
        if (num("-s", arg, 1, 64 << 20, &v)) return 2;
        cfg->size = (size_t)v;
        return 0;
    case 'P':
        if (num("-P", arg, 1, 100000, &v)) return 2;
        cfg->pubs = (int)v;
        return 0;
    case 'S':
        if (num("-S", arg, 0, 1000000, &v)) return 2;
        cfg->subs = (int)v;
        return 0;
    case 'q':
        if (num("-q", arg, 0, 2, &v)) return 2;
        cfg->qos = (int)v;
        return 0;
    case '5':
        cfg->mqtt_version = 5;
        return 0;
    case 'm':
        cfg->method = arg;
        return 0;
    case 'b':
        return read_body(cfg, arg) ? 2 : 0;
    case 'H':
        if (cfg->nheaders == BENCH_MAX_HEADERS || !strchr(arg, ':') || strpbrk(arg, "\r\n")) {
            fprintf(stderr, "axon bench: -H wants 'Name: value' (at most %d)\n", BENCH_MAX_HEADERS);
            return 2;
        }
        cfg->headers[cfg->nheaders++] = arg;
        return 0;
    case 'k':
        cfg->insecure = true;
        return 0;
    case OPT_RAMP:
        if (num("--ramp", arg, 0, 3600, &v)) return 2;
        cfg->ramp = v;
        return 0;
    case OPT_WARMUP:
        if (num("--warmup", arg, 0, 3600, &v)) return 2;
        cfg->warmup = v;
        return 0;
    case OPT_TOPIC:
        cfg->topic = arg;
        return 0;
    case OPT_SSE_SUB:
    case OPT_SSE_PUB:
        if (arg[0] != '/' || strpbrk(arg, " \r\n")) {
            fprintf(stderr, "axon bench: --sse-sub/--sse-pub want a path such as /sub/{topic}\n");
            return 2;
        }
        if (ch == OPT_SSE_SUB)
            cfg->sse_sub = arg;
        else
            cfg->sse_pub = arg;
        return 0;
    case OPT_PUBSUB:
        *pubsub = true;
        return 0;
    case OPT_CA:
        cfg->ca = arg;
        return 0;
    case OPT_JSON:
        cfg->json = true;
        return 0;
    case OPT_HTML:
        cfg->html = arg;
        return 0;
    case OPT_QUIET:
        cfg->quiet = true;
        return 0;
    case OPT_TIMEOUT:
        if (num("--timeout", arg, 0.001, 3600, &v)) return 2;
        cfg->timeout_ms = (uint32_t)(v * 1000);
        return 0;
    case 'h':
        help(stdout);
        return 1;
    default:
        help(stderr);
        return 2;
    }
}

static int parse(bench_cfg *cfg, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ramp", required_argument, NULL, OPT_RAMP},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"topic", required_argument, NULL, OPT_TOPIC},
        {"pubsub", no_argument, NULL, OPT_PUBSUB},
        {"insecure", no_argument, NULL, 'k'},
        {"ca", required_argument, NULL, OPT_CA},
        {"json", no_argument, NULL, OPT_JSON},
        {"html", required_argument, NULL, OPT_HTML},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"sse-sub", required_argument, NULL, OPT_SSE_SUB},
        {"sse-pub", required_argument, NULL, OPT_SSE_PUB},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *cfg = (bench_cfg){.conns = 10,
                       .threads = 1,
                       .duration = 10,
                       .size = 64,
                       .depth = 1,
                       .pubs = 1,
                       .subs = 10,
                       .mqtt_version = 4,
                       .topic = "bench/",
                       .sse_sub = "/sse?topic={topic}",
                       .sse_pub = "/api/publish/{topic}",
                       .timeout_ms = 5000};
    bool pubsub = false, depth_set = false;
    int ch, rc;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:t:d:n:R:p:s:P:S:q:5m:b:H:kh", longopts, NULL)) != -1)
        if ((rc = parse_one(cfg, ch, optarg, &pubsub, &depth_set)) != 0) return rc;
    if (optind != argc - 1) {
        help(stderr);
        return 2;
    }
    cfg->url = argv[optind];
    if (split_url(cfg) != 0) {
        fprintf(stderr, "axon bench: '%s' is not a URL it can load (see --help)\n", cfg->url);
        return 2;
    }
    if (pubsub && cfg->kind == BK_WS) cfg->kind = BK_WS_HUB;
    bool fan = cfg->kind == BK_WS_HUB || cfg->kind == BK_MQTT || cfg->kind == BK_SSE;
    if (fan && !depth_set) cfg->depth = 16;
    if (cfg->qos > 0 && cfg->kind != BK_MQTT) {
        fprintf(stderr, "axon bench: -q is for mqtt:// URLs\n");
        return 2;
    }
    if (fan && cfg->size < 40) cfg->size = 40; /* room for the publisher, seq and time */
    if (cfg->kind == BK_UDP && cfg->size < 16) cfg->size = 16;
    if (cfg->kind == BK_UDP && cfg->size > 65507) {
        fprintf(stderr, "axon bench: -s: a UDP datagram holds at most 65507 bytes\n");
        return 2;
    }
    if (!cfg->method) cfg->method = cfg->body ? "POST" : "GET";
    int units = fan ? cfg->pubs : cfg->conns;
    if (cfg->threads > units) cfg->threads = units;
    cfg->progress = !cfg->quiet && !cfg->json && isatty(2);
    return 0;
}

static const bench_ops *ops_of(enum bench_kind k)
{
    switch (k) {
    case BK_STREAM:
        return &bench_stream_ops;
    case BK_UDP:
        return &bench_udp_ops;
    case BK_HTTP:
        return &bench_http_ops;
    case BK_WS:
        return &bench_ws_ops;
    case BK_WS_HUB:
        return &bench_ws_hub_ops;
    case BK_MQTT:
        return &bench_mqtt_ops;
    case BK_SSE:
        return &bench_sse_ops;
    }
    return NULL;
}

static int make_tls(bench_cfg *cfg)
{
    if (!cfg->tls) return 0;
    char why[256] = "";
    int err = 0;
    ax_tls_opts o = {.ca_file = cfg->ca, .insecure = cfg->insecure};
    cfg->tls_ctx = ax_tls_client_new(&o, why, sizeof why, &err);
    if (!cfg->tls_ctx) {
        fprintf(stderr, "axon bench: TLS: %s\n", why[0] ? why : ax_strerror(err));
        return -1;
    }
    return 0;
}

/* ---- the run -------------------------------------------------------------- */

static int start_workers(const bench_cfg *cfg, const bench_ops *ops)
{
    int nw = cfg->threads;
    for (int i = 0; i < nw; i++) {
        bench_worker *w = &G.w[i];
        w->index = i;
        w->cfg = cfg;
        w->ops = ops;
        pthread_mutex_init(&w->lock, NULL);
        if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            for (int k = 0; k < i; k++)
                pthread_join(G.w[k].tid, NULL);
            return -1;
        }
    }
    return 0;
}

/* Wait for the connections and subscriptions (at most SETUP_MS), then
 * stagger the connections' starts over the ramp. */
typedef struct window window;
static void open_window(window *m, int nw);

static void start_load(const bench_cfg *cfg, int nw, window *mw)
{
    uint64_t until = bench_now_us() + (uint64_t)SETUP_MS * 1000 + (uint64_t)cfg->conns * 1000;
    while (!all_flag(nw, offsetof(bench_worker, ready)) && bench_now_us() < until && !G.interrupted)
        sleep_us(2000);
    G.t_start = bench_now_us() + 2000;
    int total = ops_of(cfg->kind)->fanout ? cfg->pubs : cfg->conns;
    for (int i = 0; i < nw; i++) {
        bench_worker *w = &G.w[i];
        pthread_mutex_lock(&w->lock);
        for (int k = 0; k < w->nconns; k++) {
            bconn *c = w->conns[k];
            /* Spread both the ramp and, at a constant rate, the first sends. */
            uint64_t off = (uint64_t)(cfg->ramp * 1e6 * c->index / total);
            if (c->interval_us) /* whole intervals, so the schedule stays evenly spaced */
                off = off / c->interval_us * c->interval_us +
                      c->interval_us * (uint64_t)c->index / (uint64_t)total;
            c->start_us = G.t_start + off;
        }
        pthread_mutex_unlock(&w->lock);
    }
    /* Without a ramp, or when counting, every request is measured: the
     * window opens before the load may start. */
    if ((cfg->ramp == 0 && cfg->warmup == 0) || cfg->count) open_window(mw, nw);
    __atomic_store_n(&G.running, 1, __ATOMIC_RELEASE);
}

typedef struct window {
    uint64_t start;
    double cpu0[256], wait0[256], pcpu0;
} window;

static void open_window(window *m, int nw)
{
    m->pcpu0 = process_cpu();
    for (int i = 0; i < nw; i++) {
        m->cpu0[i] = thread_cpu(&G.w[i]);
        m->wait0[i] = thread_wait(&G.w[i]);
    }
    m->start = bench_now_us();
    __atomic_store_n(&G.measuring, 1, __ATOMIC_RELEASE);
}

static void measure(const bench_cfg *cfg, int nw, bench_result *r, collector *col, window *mw)
{
    if (!bench_measuring()) {
        uint64_t m_start = G.t_start + (uint64_t)((cfg->ramp + cfg->warmup) * 1e6);
        while (bench_now_us() < m_start && !G.interrupted)
            sleep_us(1000);
        open_window(mw, nw);
    }
    uint64_t m_start = mw->start;
    double *cpu0 = mw->cpu0, pcpu0 = mw->pcpu0;
    uint64_t next = m_start + 1000000, end = m_start + (uint64_t)(cfg->duration * 1e6);
    int asked = ops_of(cfg->kind)->fanout ? cfg->pubs : cfg->conns;
    for (;;) {
        uint64_t now = bench_now_us();
        bool done = G.interrupted ||
                    (cfg->count ? all_flag(nw, offsetof(bench_worker, finished)) : now >= end);
        if (done) break;
        if (now >= next) {
            collect(col, (double)(next - m_start) / 1e6, nw);
            progress(cfg, &col->tl[col->ntl - 1], 1.0, up_now(nw), asked);
            next += 1000000;
        }
        uint64_t wake = cfg->count ? now + 2000 : (next < end ? next : end);
        sleep_us(wake > now + 2000 ? 2000 : (wake > now ? wake - now : 1));
    }
    __atomic_store_n(&G.measuring, 0, __ATOMIC_RELEASE);
    uint64_t m_end = bench_now_us();
    r->secs = (double)(m_end - m_start) / 1e6;
    double t_last = col->ntl ? col->tl[col->ntl - 1].t : 0;
    collect(col, r->secs, nw);
    if (r->secs - t_last < 0.5 && col->ntl > 1) col->ntl--; /* a sliver, not a second */
    for (int i = 0; i < nw; i++) {
        double c = (thread_cpu(&G.w[i]) - cpu0[i]) / r->secs;
        double wt = (thread_wait(&G.w[i]) - mw->wait0[i]) / r->secs;
        if (c > r->cpu) r->cpu = c;
        if (c + wt > r->busy) {
            r->busy = c + wt;
            r->cpu_wait = wt;
        }
    }
    r->cpu_total = (process_cpu() - pcpu0) / r->secs;
    if (cfg->progress) fprintf(stderr, "\r\033[K");
}

static int run(bench_cfg *cfg)
{
    const bench_ops *ops = ops_of(cfg->kind);
    int nw = cfg->threads, rc = 1;
    G.cfg = cfg;
    G.w = calloc((size_t)nw, sizeof(*G.w));
    collector col = {.total = calloc(1, sizeof(bench_hist)),
                     .sec = calloc(1, sizeof(bench_hist)),
                     .total_sent = calloc(1, sizeof(bench_hist))};
    bench_result r = {.cfg = cfg,
                      .lat = col.total,
                      .lat_sent = col.total_sent,
                      .lag = calloc(1, sizeof(bench_hist))};
    if (!G.w || !col.total || !col.sec || !col.total_sent || !r.lag) goto out;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (start_workers(cfg, ops) != 0) goto out;
    window mw = {0};
    start_load(cfg, nw, &mw);
    measure(cfg, nw, &r, &col, &mw);
    __atomic_store_n(&G.stopping, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&G.quit, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < nw; i++)
        pthread_join(G.w[i].tid, NULL);
    gather(&r, nw);
    r.done = col.total->count;
    r.tl = col.tl;
    r.ntl = col.ntl;
    judge(&r);
    if (cfg->json)
        bench_print_json(&r, stdout);
    else
        bench_print_text(&r, stdout);
    if (cfg->html && bench_write_html(&r, cfg->html) != 0) {
        fprintf(stderr, "axon bench: cannot write %s: %s\n", cfg->html, strerror(errno));
        goto cleanup;
    }
    if (!r.valid) fprintf(stderr, "axon bench: THIS RUN IS INVALID: %s\n", r.why);
    rc = (r.errors || !r.valid || r.done == 0) ? 1 : 0;
cleanup:
    for (int i = 0; i < nw; i++) {
        free_conns(&G.w[i]);
        pthread_mutex_destroy(&G.w[i].lock);
    }
out:
    free(G.w);
    free(col.total);
    free(col.sec);
    free(col.total_sent);
    free(col.tl);
    free(r.lag);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    bench_cfg cfg;
    int rc = parse(&cfg, argc, argv);
    if (rc != 0) {
        free(cfg.body);
        return rc == 1 ? 0 : rc;
    }
    if (make_tls(&cfg) != 0) {
        free(cfg.body);
        return 1;
    }
    memset(&G, 0, sizeof G);
    rc = run(&cfg);
    ax_tls_ctx_free(cfg.tls_ctx);
    free(cfg.body);
    return rc;
}
