/* bench.h: what the files of `axon bench` share.
 *
 * bench.c runs the show: options, one loop per thread, the schedule
 * (closed loop or a constant rate), the measurement window, the report.
 * Each protocol file fills a bench_ops table: it opens its connections on
 * a worker's loop and sends one request (or publishes one message) when
 * the core asks; it tells the core when a reply or a delivery arrives.
 * bench_hist.c is the latency histogram, bench_report.c the output. */
#ifndef AXON_CLI_BENCH_H
#define AXON_CLI_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <axon/axon.h>

int cmd_bench(int argc, char **argv);

/* ---- histogram (bench_hist.c) -------------------------------------------
 * Log-bucketed like HdrHistogram: values below 2 * 2^SUB_BITS are exact,
 * above that each power of two is cut into 2^SUB_BITS buckets, so a value
 * read back is at most 1/128 (0.8%) above the true one.  Values are
 * microseconds, clamped below 2^40. */
#define BH_SUB_BITS 7
#define BH_SUB (1u << BH_SUB_BITS)
#define BH_BUCKETS ((40 - BH_SUB_BITS + 1) * BH_SUB)

typedef struct bench_hist {
    uint64_t count, sum, max;
    uint64_t min;
    uint64_t b[BH_BUCKETS];
} bench_hist;

void bench_hist_reset(bench_hist *h);
void bench_hist_add(bench_hist *h, uint64_t v);
void bench_hist_merge(bench_hist *into, const bench_hist *from);
/* The value at percentile `pct` (0..100): the highest value of the bucket
 * holding it (never above the max seen).  0 for an empty histogram. */
uint64_t bench_hist_pct(const bench_hist *h, double pct);
double bench_hist_mean(const bench_hist *h);
/* Bucket index of v, and the lowest and highest value of bucket i. */
size_t bench_hist_index(uint64_t v);
void bench_hist_range(size_t i, uint64_t *lo, uint64_t *hi);

/* ---- configuration ------------------------------------------------------ */
enum bench_kind {
    BK_STREAM, /* tcp:// unix:// tls://: echo */
    BK_UDP,    /* udp://: echo */
    BK_HTTP,   /* http:// https:// */
    BK_WS,     /* ws:// wss://: echo */
    BK_WS_HUB, /* ws:// wss:// --pubsub: the hub's JSON envelope, fan-out */
    BK_MQTT,   /* mqtt:// mqtts://: fan-out */
    BK_SSE,    /* sse:// sses://: the hub's /sse, publishers over POST /api/publish */
};

#define BENCH_MAX_HEADERS 32
#define BENCH_MAX_DEPTH 1024 /* requests in flight per connection, at most */

typedef struct bench_cfg {
    const char *url;
    enum bench_kind kind;
    bool tls;
    char host[256];    /* as in the URL, brackets kept for IPv6 */
    int port;          /* 0 for unix:// */
    char path[2048];   /* HTTP target, WebSocket path; unix:// socket path */
    char target[2200]; /* what ax_connect gets: tcp://host:port, tls://..., unix://... */
    int conns, threads;
    double duration; /* seconds, when count is 0 */
    uint64_t count;  /* requests (messages published) in all; 0: by duration */
    double ramp;     /* seconds over which the connections start */
    double warmup;   /* seconds of load before the measurement (after the ramp) */
    size_t size;     /* message size (echo, payloads) */
    double rate;     /* per second in all; 0: closed loop */
    int depth;       /* in flight per connection: pipelining / publisher window */
    const char *method;
    char *body; /* HTTP request body (owned) */
    size_t body_len;
    const char *headers[BENCH_MAX_HEADERS];
    int nheaders;
    int pubs, subs, qos, mqtt_version;
    const char *topic; /* prefix; topic i is PREFIX<i> */
    /* sse://: where subscribers GET and publishers POST, "{topic}" standing
     * for the topic (defaults: the hub's /sse?topic={topic} and
     * /api/publish/{topic}) */
    const char *sse_sub, *sse_pub;
    bool insecure;
    const char *ca;
    bool json, quiet, progress;
    const char *html;
    uint32_t timeout_ms; /* a request with no answer for this long is an error */
    ax_tls_ctx *tls_ctx; /* client context for TLS schemes */
} bench_cfg;

/* ---- workers and connections ------------------------------------------ */
typedef struct bench_worker bench_worker;
typedef struct bconn bconn;

typedef struct bench_ops {
    /* Open this worker's connections (w->conns for request/response and
     * publishers; subscribers are the protocol's own).  Call
     * bench_conn_up() / bench_conn_down() as they open or fail, and
     * bench_sub_ready() for each subscriber once subscribed. */
    int (*setup)(bench_worker *w);
    /* Send request (publish message) number `seq` of c, intended at `ts`
     * microseconds (the payload of a fan-out message carries it).  0; 1
     * for "not now" (the core takes the request back and tries later); or
     * a negative code (the core counts an error). */
    int (*send)(bconn *c, uint64_t seq, uint64_t ts);
    /* Optional: write what send() gathered (one write for several
     * requests, as a real client's batch would go). */
    void (*flush)(bconn *c);
    /* Close everything (runs on the worker's thread at the end). */
    void (*shutdown)(bench_worker *w);
    bool fanout; /* deliveries to subscribers, not replies, are the measure */
    bool acked;  /* fan-out: a publish also waits for the server's ack */
} bench_ops;

typedef struct bench_err {
    char kind[64];
    uint64_t n;
} bench_err;
#define BENCH_MAX_ERR 24

/* One load connection (a client for echo/HTTP, a publisher for fan-out). */
struct bconn {
    bench_worker *w;
    int index; /* global index over every worker */
    void *h;   /* the protocol's handle */
    void *pd;  /* the protocol's data */
    bool up, active, dead, dirty;
    uint64_t start_us;    /* when it starts its load (ramp) */
    uint64_t next_us;     /* open loop: intended time of the next send */
    uint64_t interval_us; /* open loop: time between two sends */
    uint64_t quota;       /* requests it may send (count mode), else UINT64_MAX */
    uint64_t sent, low;   /* next seq to send; oldest seq not complete */
    int inflight;
    uint64_t mask; /* ring size - 1: a power of two >= depth */
    uint64_t *ts;  /* intended (or actual) send time of each seq in flight */
    uint64_t *sts; /* actual send time of each seq in flight */
    uint32_t *cnt; /* fan-out: deliveries (+ ack) of each seq so far */
    uint8_t *fin;  /* seq complete (out-of-order completion) */
};

struct bench_worker {
    int index;
    const bench_cfg *cfg;
    const bench_ops *ops;
    pthread_t tid;
    int ktid; /* the kernel's thread id (for /proc/self/task/TID/schedstat) */
    ax_loop *loop;
    ax_timer *tick;         /* 1 ms: start, time-outs, the end */
    struct ax_watch *sched; /* open loop: a timerfd every sched_ns */
    int sched_fd;
    bool sched_armed;
    uint64_t sched_ns;
    uint64_t tick_due; /* when the schedule's timer should fire next (ns; in
                          ns so that the period's fraction of a us does not
                          add up into lag that is not there) */
    bconn **conns;
    int nconns;
    /* fan-out: publishers whose window moved in this loop iteration; they
     * publish again together after the iteration's I/O (flush_t, a 0 ms
     * timer), as mqttload does, not one write per delivery */
    bconn **dirty;
    int ndirty;
    ax_timer *flush_t;
    int first_conn; /* global index of conns[0] */
    void *pd;       /* the protocol's per-worker data */
    int subs_wanted, subs_ready;
    int up_now, up_max, conn_failed;
    bool finished_flag; /* every connection used its quota */
    /* lag: how late the schedule's timer ran, while measuring (worker only) */
    bench_hist lag;
    /* guarded by lock: read by the main thread each second */
    pthread_mutex_t lock;
    bench_hist interval;
    bench_hist interval_sent; /* the same latencies from the actual send time */
    uint64_t done, bytes_in, bytes_out, published, lost, reordered;
    bench_err errs[BENCH_MAX_ERR];
    int nerrs;
    int ready, finished; /* atomics */
    uint64_t unanswered; /* in flight when the run ended (worker only) */
};

/* Microseconds on the monotonic clock (shared by every thread). */
uint64_t bench_now_us(void);
/* True while the measurement window is open. */
bool bench_measuring(void);
/* True once the load has started (every connection set up). */
bool bench_running(void);

/* A connection opened / failed or closed (`why`: the error, counted). */
void bench_conn_up(bconn *c);
void bench_conn_down(bconn *c, const char *why);
/* A subscriber is subscribed (counted towards the start). */
void bench_sub_ready(bench_worker *w);
/* Count an error of kind `kind` (a short phrase: "connect: refused"). */
void bench_error(bench_worker *w, const char *kind);
/* Bytes moved, for the rates. */
void bench_bytes(bench_worker *w, uint64_t in, uint64_t out);
/* The oldest request in flight on c got its (in-order) reply: record its
 * latency and send more as the schedule allows. */
void bench_reply(bconn *c);
/* Request `seq` of c completed (out-of-order replies: UDP); `ok` false
 * when it failed (already counted). */
void bench_complete(bconn *c, uint64_t seq, bool record);
/* Fan-out: a subscriber got publisher p's message `seq`, intended at
 * `ts`.  *next is the subscriber's next expected seq from p (loss and
 * reorder checks). */
void bench_deliver(bconn *p, uint64_t *next, uint64_t seq, uint64_t ts);
/* Fan-out: the server acknowledged publish `seq` of p. */
void bench_acked(bconn *p, uint64_t seq);
/* Send what the schedule allows now. */
void bench_pump(bconn *c);

/* Fan-out payloads: "P:SEQ:TS:" then 'x' up to size.  bench_payload()
 * writes one into buf (cap >= size + 64) and returns its length;
 * bench_payload_parse() reads the three numbers back (false if it is not
 * one of ours). */
size_t bench_payload(char *buf, size_t cap, size_t size, int pub, uint64_t seq, uint64_t ts);
bool bench_payload_parse(const char *p, size_t len, int *pub, uint64_t *seq, uint64_t *ts);
/* tmpl with each "{topic}" replaced by PREFIX<i> (sse:// paths). */
void bench_topic_path(char *out, size_t cap, const char *tmpl, const char *prefix, int i);
/* The publisher bconn of global index i on worker w (fan-out: publishers
 * of a topic live on the worker that holds its subscribers), or NULL. */
bconn *bench_pub(bench_worker *w, int i);

/* Protocol tables. */
extern const bench_ops bench_stream_ops, bench_udp_ops, bench_http_ops, bench_ws_ops,
    bench_ws_hub_ops, bench_mqtt_ops, bench_sse_ops;

/* ---- HTTP responses (bench_http.c), for the HTTP and SSE clients ------ */
typedef struct bench_resp bench_resp;
typedef struct bench_resp_cbs {
    /* The head arrived (status). */
    void (*on_head)(void *ud, int status);
    /* A piece of the body. */
    void (*on_body)(void *ud, const char *p, size_t n);
    /* A whole response; `keep` false when the connection ends after it. */
    void (*on_done)(void *ud, int status, bool keep);
} bench_resp_cbs;
bench_resp *bench_resp_new(void);
void bench_resp_free(bench_resp *r);
/* Feed bytes; returns how many were consumed, or -1 on a protocol error
 * (the connection must be closed). */
long bench_resp_feed(bench_resp *r, const char *p, size_t n, const bench_resp_cbs *cbs, void *ud);
/* A connection that sends requests and reads responses (the HTTP load and
 * the SSE publishers): on_open counts it up and starts sending; on_data
 * feeds `r` (counting the bytes) and aborts the connection on a malformed
 * response, an error named "WHAT: a malformed response". */
void bench_http_open(ax_conn *h);
size_t bench_http_data(ax_conn *h, bench_resp *r, const char *data, size_t len,
                       const bench_resp_cbs *cbs, const char *what);

/* ---- the report (bench_report.c) ---------------------------------------- */
typedef struct bench_point {
    double t; /* seconds since the measurement started */
    uint64_t count, errors, bytes;
    uint64_t p50, p99, max;
} bench_point;

typedef struct bench_result {
    const bench_cfg *cfg;
    double secs;
    uint64_t done, bytes_in, bytes_out, published, lost, reordered, errors;
    uint64_t unanswered; /* requests (messages) still in flight at the end */
    bench_err errs[BENCH_MAX_ERR];
    int nerrs;
    int conns_asked, conns_reached, subs_asked, subs_ready;
    bench_hist *lat, *lag;
    bench_hist *lat_sent; /* from the actual send time: what a tool without
                             the correction reports (differs at -R only) */
    double cpu;           /* generator CPU: busiest worker thread, share of one core */
    double cpu_total;     /* the whole process, cores */
    double busy;          /* the busiest worker thread: running + waiting for a CPU */
    double cpu_wait;      /* of which waiting for a CPU (starved by other processes) */
    double sent_rate;     /* open loop: requests sent per second */
    bool valid;
    char why[512]; /* when not valid */
    bench_point *tl;
    int ntl;
} bench_result;

void bench_print_text(const bench_result *r, FILE *out);
void bench_print_json(const bench_result *r, FILE *out);
int bench_write_html(const bench_result *r, const char *path);

#endif
