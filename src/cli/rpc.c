/* rpc.c: `axon rpc serve|call`: commands on a device without a shell,
 * request/response over hub topics (docs/remote.md), in the shape of MQTT
 * 5's request/response: a request names a response topic and carries
 * correlation data that the answer echoes.
 *
 *   request  on TOPIC:          {"response_topic":R,"correlation_data":C,
 *                                "args":[...],"input":"..."}
 *   answer   on R:              {"correlation_data":C,"status":N,
 *                                "output":"...","error":"..."}
 *            (output/error that are not UTF-8 come as output_base64 /
 *             error_base64)
 *
 * Both sides speak the hub's WebSocket envelope (/ws, docs/protocol.md),
 * so any client of the hub (a web page, curl) can make or answer requests
 * of the same shape.  The response topic and correlation data also travel
 * as the publish's own fields, which MQTT 5 clients get and give as the
 * PUBLISH's Response Topic and Correlation Data properties: an MQTT 5
 * device answers natively, with its output as the payload. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <axon/axon.h>
#include <axon/ws.h>

#include "cli.h"

#define RPC_OUT_MAX (1u << 20) /* bytes of a command's output kept */

static int hub_url(const char *in, char *out, size_t cap)
{
    const char *scheme = "ws://", *rest = NULL;
    if (strncmp(in, "ws://", 5) == 0) rest = in + 5;
    if (strncmp(in, "wss://", 6) == 0) rest = in + 6, scheme = "wss://";
    if (strncmp(in, "http://", 7) == 0) rest = in + 7;
    if (strncmp(in, "https://", 8) == 0) rest = in + 8, scheme = "wss://";
    if (!rest) return -1;
    size_t hl = strcspn(rest, "/");
    int n = snprintf(out, cap, "%s%.*s/ws", scheme, (int)hl, rest);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static int send_obj(ax_ws *ws, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    int rc = s ? ax_ws_send_text(ws, s, strlen(s)) : AX_ENOMEM;
    free(s);
    json_decref(j);
    return rc;
}

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = '\0';
}

/* key: the text, or key_base64 when it is not UTF-8. */
static void set_bytes(json_t *o, const char *key, const char *data, size_t n)
{
    json_t *s = json_stringn(data, n);
    if (s) {
        json_object_set_new(o, key, s);
        return;
    }
    char *enc = malloc(n / 3 * 4 + 8), k[64];
    if (!enc) return;
    b64((const unsigned char *)data, n, enc);
    snprintf(k, sizeof k, "%s_base64", key);
    json_object_set_new(o, k, json_string(enc));
    free(enc);
}

static void payload_of(json_t *msg, const char **p, size_t *n)
{
    json_t *pl = json_object_get(msg, "payload");
    *p = json_string_value(pl);
    *n = json_string_length(pl);
}

/* ---- serve: run COMMAND for each request --------------------------------------------------- */

typedef struct job job;
typedef struct responder {
    ax_loop *loop;
    ax_ws *ws;
    char url[1024], topic[256], headers[8400];
    char **argv;
    int argc;
    uint32_t timeout_ms;
    ax_timer *retry;
    uint32_t backoff;
    bool quit;
    job *jobs;
    unsigned long served;
} responder;

struct job {
    responder *r;
    pid_t pid;
    int out, err;
    ax_watch *wo, *we;
    ax_timer *limit;
    char *obuf, *ebuf;
    size_t on, en;
    json_t *corr;
    char reply[256];
    bool corr_b64; /* corr is the base64 of binary Correlation Data */
    bool timed_out;
    job *next;
};

static void job_finish(job *j)
{
    responder *r = j->r;
    if (j->wo || j->we) return; /* the other pipe is still open */
    int status = 0, code = -1;
    if (waitpid(j->pid, &status, 0) == j->pid)
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (j->timed_out) code = 124;
    json_t *ans = json_pack("{s:O,s:i}", "correlation_data", j->corr, "status", code);
    set_bytes(ans, "output", j->obuf ? j->obuf : "", j->on);
    set_bytes(ans, "error", j->ebuf ? j->ebuf : "", j->en);
    if (j->timed_out) json_object_set_new(ans, "timed_out", json_true());
    char *s = json_dumps(ans, JSON_COMPACT);
    json_decref(ans);
    json_t *pub =
        s ? json_pack("{s:s,s:s,s:s}", "type", "publish", "topic", j->reply, "payload", s) : NULL;
    if (pub && json_is_string(j->corr)) /* (an MQTT 5 asker gets it as Correlation Data) */
        json_object_set(pub, j->corr_b64 ? "correlation_data_base64" : "correlation_data", j->corr);
    if (pub && r->ws)
        (void)send_obj(r->ws, pub);
    else
        json_decref(pub);
    free(s);
    r->served++;
    for (job **p = &r->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    ax_timer_free(j->limit);
    json_decref(j->corr);
    free(j->obuf);
    free(j->ebuf);
    free(j);
}

static void job_pipe(ax_watch *w, unsigned ev, void *ud)
{
    job *j = ud;
    (void)ev;
    bool is_out = w == j->wo;
    int fd = is_out ? j->out : j->err;
    char **buf = is_out ? &j->obuf : &j->ebuf;
    size_t *len = is_out ? &j->on : &j->en;
    char tmp[16384];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n > 0) {
        size_t take = *len + (size_t)n > RPC_OUT_MAX ? RPC_OUT_MAX - *len : (size_t)n;
        char *b = take ? realloc(*buf, *len + take + 1) : *buf;
        if (b) {
            memcpy(b + *len, tmp, take);
            *len += take;
            *buf = b;
        }
        return;
    }
    ax_watch_free(w);
    close(fd);
    if (is_out)
        j->wo = NULL;
    else
        j->we = NULL;
    job_finish(j);
}

static void job_timeout(ax_timer *t, void *ud)
{
    job *j = ud;
    (void)t;
    j->timed_out = true;
    kill(j->pid, SIGKILL);
}

static void run_request(responder *r, json_t *req)
{
    const char *reply = json_string_value(json_object_get(req, "response_topic"));
    json_t *corr = json_object_get(req, "correlation_data");
    json_t *corr64 = corr ? NULL : json_object_get(req, "correlation_data_base64");
    json_t *args = json_object_get(req, "args");
    const char *input = json_string_value(json_object_get(req, "input"));
    if (!reply || strlen(reply) >= 256) return; /* nowhere to answer */
    size_t na = json_is_array(args) ? json_array_size(args) : 0;
    char **av = calloc((size_t)r->argc + na + 1, sizeof(*av));
    job *j = calloc(1, sizeof(*j));
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
    if (!av || !j || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || pipe2(pi, O_CLOEXEC))
        goto fail;
    for (int i = 0; i < r->argc; i++)
        av[i] = r->argv[i];
    for (size_t i = 0; i < na; i++) {
        const char *a = json_string_value(json_array_get(args, i));
        av[(size_t)r->argc + i] = (char *)(a ? a : "");
    }
    j->pid = fork();
    if (j->pid == -1) goto fail;
    if (j->pid == 0) {
        dup2(pi[0], 0), dup2(po[1], 1), dup2(pe[1], 2);
        execvp(av[0], av);
        fprintf(stderr, "axon rpc serve: %s: %s\n", av[0], strerror(errno));
        _exit(127);
    }
    close(po[1]), close(pe[1]), close(pi[0]);
    if (input) { /* small inputs: the pipe takes them at once (64 KiB) */
        fcntl(pi[1], F_SETFL, O_NONBLOCK);
        if (write(pi[1], input, strlen(input)) < 0) {
        }
    }
    close(pi[1]);
    j->r = r;
    j->out = po[0], j->err = pe[0];
    fcntl(j->out, F_SETFL, O_NONBLOCK);
    fcntl(j->err, F_SETFL, O_NONBLOCK);
    j->corr = corr ? json_incref(corr) : corr64 ? json_incref(corr64) : json_null();
    j->corr_b64 = corr64 != NULL;
    snprintf(j->reply, sizeof j->reply, "%s", reply);
    j->wo = ax_watch_new(r->loop, j->out, job_pipe, j);
    j->we = ax_watch_new(r->loop, j->err, job_pipe, j);
    j->limit = ax_timer_new(r->loop, job_timeout, j);
    if (j->wo && ax_watch_set(j->wo, AX_WATCH_READ) != 0) return;
    if (j->we && ax_watch_set(j->we, AX_WATCH_READ) != 0) return;
    if (j->limit) ax_timer_start(j->limit, r->timeout_ms, 0);
    j->next = r->jobs;
    r->jobs = j;
    free(av);
    return;
fail:
    fprintf(stderr, "axon rpc serve: cannot run %s: %s\n", r->argv[0], strerror(errno));
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0) close(po[i]);
        if (pe[i] >= 0) close(pe[i]);
        if (pi[i] >= 0) close(pi[i]);
    }
    free(av);
    free(j);
}

static void srv_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    responder *r = ax_ws_data(ws);
    if (binary) return;
    json_t *m = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (type && strcmp(type, "message") == 0) {
        const char *p;
        size_t n;
        payload_of(m, &p, &n);
        json_t *req = p ? json_loadb(p, n, 0, NULL) : NULL;
        /* An MQTT 5 client asks with Response Topic and Correlation Data
         * properties, which the envelope shows as fields of the message;
         * its payload is the request's JSON, or else the command's input. */
        json_t *rt = json_object_get(m, "response_topic"),
               *cd = json_object_get(m, "correlation_data"),
               *cb = json_object_get(m, "correlation_data_base64");
        if (!json_is_object(req) && rt) {
            json_decref(req);
            req = json_pack("{s:s%}", "input", p ? p : "", p ? n : 0);
        }
        if (json_is_object(req) && rt) json_object_set(req, "response_topic", rt);
        if (json_is_object(req) && cd) json_object_set(req, "correlation_data", cd);
        if (json_is_object(req) && cb) json_object_set(req, "correlation_data_base64", cb);
        if (json_is_object(req)) run_request(r, req);
        json_decref(req);
    } else if (type && strcmp(type, "error") == 0) {
        fprintf(stderr, "axon rpc serve: the hub says: %s\n",
                json_string_value(json_object_get(m, "error")));
    } else if (type && strcmp(type, "ok") == 0 && json_is_string(json_object_get(m, "id"))) {
        fprintf(stderr, "axon rpc serve: answering requests on %s\n", r->topic);
    }
    json_decref(m);
}

static void srv_connect(responder *r);

static void srv_open(ax_ws *ws)
{
    responder *r = ax_ws_data(ws);
    r->backoff = 0;
    (void)send_obj(ws,
                   json_pack("{s:s,s:s,s:s}", "type", "subscribe", "topic", r->topic, "id", "sub"));
}

static void srv_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    responder *r = ax_ws_data(ws);
    (void)ws;
    r->ws = NULL;
    if (r->quit) {
        ax_loop_stop(r->loop);
        return;
    }
    fprintf(stderr, "axon rpc serve: disconnected (%d %.*s): reconnecting\n", code, (int)len,
            reason);
    uint32_t d = r->backoff ? r->backoff : 250;
    r->backoff = d * 2 > 15000 ? 15000 : d * 2;
    ax_timer_start(r->retry, d, 0);
}

static const ax_ws_cbs srv_cbs = {
    .on_open = srv_open, .on_message = srv_message, .on_close = srv_close};

static void srv_connect(responder *r)
{
    ax_ws_opts o = {.headers = r->headers, .ping_interval_ms = 20000};
    int err = 0;
    r->ws = ax_ws_connect(r->loop, r->url, &srv_cbs, &o, r, &err);
    if (!r->ws) {
        fprintf(stderr, "axon rpc serve: %s: %s\n", r->url, ax_strerror(err));
        ax_loop_stop(r->loop);
    }
}

static void srv_retry(ax_timer *t, void *ud)
{
    (void)t;
    srv_connect(ud);
}

static void srv_signal(ax_loop *loop, int signo)
{
    responder *r = ax_loop_data(loop);
    (void)signo;
    r->quit = true;
    if (r->ws)
        ax_ws_close(r->ws, AX_WS_CLOSE_GOING_AWAY, "bye");
    else
        ax_loop_stop(loop);
}

/* ---- call ----------------------------------------------------------------------------------- */

typedef struct caller {
    ax_loop *loop;
    ax_ws *ws;
    char url[1024], topic[256], reply[256], headers[8400], corr[64];
    json_t *args;
    const char *input;
    uint32_t timeout_ms;
    ax_timer *timer;
    int count, done, status;
    bool quiet, subscribed;
    uint64_t t0_ns;
    double *lat_ms;
} caller;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void call_send(caller *c)
{
    snprintf(c->corr, sizeof c->corr, "%08x%08x-%d", (unsigned)rand(), (unsigned)rand(), c->done);
    json_t *req = json_pack("{s:s,s:s,s:O}", "response_topic", c->reply, "correlation_data",
                            c->corr, "args", c->args);
    if (c->input) json_object_set_new(req, "input", json_string(c->input));
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    c->t0_ns = now_ns();
    ax_timer_start(c->timer, c->timeout_ms, 0);
    /* The response topic and correlation data also go as fields of the
     * publish: an MQTT 5 device subscribed to the topic gets them as the
     * PUBLISH's properties and can answer natively. */
    if (s)
        (void)send_obj(c->ws, json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "publish", "topic",
                                        c->topic, "payload", s, "response_topic", c->reply,
                                        "correlation_data", c->corr));
    free(s);
}

static void print_field(json_t *ans, const char *key, FILE *to)
{
    char k[64];
    const char *s = json_string_value(json_object_get(ans, key));
    if (s) {
        fwrite(s, 1, json_string_length(json_object_get(ans, key)), to);
        return;
    }
    snprintf(k, sizeof k, "%s_base64", key);
    if (json_object_get(ans, k))
        fprintf(to, "[%s: base64] %s\n", key, json_string_value(json_object_get(ans, k)));
}

static void call_answer(caller *c, json_t *ans)
{
    const char *corr = json_string_value(json_object_get(ans, "correlation_data"));
    if (!corr || strcmp(corr, c->corr) != 0) return; /* not ours, or late */
    ax_timer_stop(c->timer);
    double ms = (double)(now_ns() - c->t0_ns) / 1e6;
    if (c->lat_ms) c->lat_ms[c->done] = ms;
    c->status = (int)json_integer_value(json_object_get(ans, "status"));
    if (!c->quiet) {
        print_field(ans, "output", stdout);
        print_field(ans, "error", stderr);
        fflush(stdout);
    }
    if (++c->done < c->count) {
        call_send(c);
        return;
    }
    ax_ws_close(c->ws, AX_WS_CLOSE_NORMAL, "done");
}

static void call_message(ax_ws *ws, const void *data, size_t len, bool binary)
{
    caller *c = ax_ws_data(ws);
    if (binary) return;
    json_t *m = json_loadb(data, len, 0, NULL);
    const char *type = json_string_value(json_object_get(m, "type"));
    if (!type) {
    } else if (strcmp(type, "ok") == 0 && json_object_get(m, "topic") && !c->subscribed) {
        c->subscribed = true; /* the reply topic is ours: now ask */
        call_send(c);
    } else if (strcmp(type, "message") == 0) {
        const char *p;
        size_t n;
        payload_of(m, &p, &n);
        json_t *ans = p ? json_loadb(p, n, 0, NULL) : NULL;
        json_t *cd = json_object_get(m, "correlation_data");
        if (!json_is_object(ans) && json_is_string(cd)) {
            /* A native MQTT 5 answer: Correlation Data as a property, the
             * payload is the output. */
            bool b64 = json_is_string(json_object_get(m, "encoding"));
            json_decref(ans);
            ans = json_pack("{s:O,s:i,s:s%}", "correlation_data", cd, "status", 0,
                            b64 ? "output_base64" : "output", p ? p : "", p ? n : 0);
        }
        if (json_is_object(ans)) call_answer(c, ans);
        json_decref(ans);
    } else if (strcmp(type, "error") == 0) {
        fprintf(stderr, "axon rpc call: the hub says: %s\n",
                json_string_value(json_object_get(m, "error")));
        c->status = 2;
        ax_ws_close(ws, AX_WS_CLOSE_NORMAL, "error");
    }
    json_decref(m);
}

static void call_open(ax_ws *ws)
{
    caller *c = ax_ws_data(ws);
    (void)send_obj(ws, json_pack("{s:s,s:s}", "type", "subscribe", "topic", c->reply));
}

static void call_close(ax_ws *ws, int code, const char *reason, size_t len)
{
    caller *c = ax_ws_data(ws);
    c->ws = NULL;
    if (c->done < c->count && c->status == 0) {
        fprintf(stderr, "axon rpc call: %s: the connection ended (%d %.*s)\n", c->url, code,
                (int)len, reason);
        c->status = 2;
    }
    ax_loop_stop(c->loop);
}

static const ax_ws_cbs call_cbs = {
    .on_open = call_open, .on_message = call_message, .on_close = call_close};

static void call_timeout(ax_timer *t, void *ud)
{
    caller *c = ud;
    (void)t;
    fprintf(stderr,
            "axon rpc call: no answer on %s within %.1f s: nobody serves it (start `axon rpc "
            "serve HUB %s -- COMMAND`), or it cannot write to %s\n",
            c->topic, c->timeout_ms / 1000.0, c->topic, c->reply);
    c->status = 3;
    ax_ws_close(c->ws, AX_WS_CLOSE_NORMAL, "timeout");
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- the command ---------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: axon rpc serve HUB TOPIC [--token T] [--timeout S] -- COMMAND [ARGS]\n"
            "       axon rpc call HUB TOPIC [ARGS] [--token T] [--timeout S] [--input TEXT]\n"
            "                     [--reply TOPIC] [--count N]\n\n"
            "Commands on a device without a shell, through the hub (HUB: ws://host:port or\n"
            "http://host:port; its WebSocket at /ws).  Request/response as in MQTT 5: the\n"
            "request names a response topic and carries correlation data the answer echoes.\n\n"
            "  serve   answer requests on TOPIC: run COMMAND with its ARGS, then the request's\n"
            "          args (as separate arguments, never through a shell), its input on\n"
            "          stdin; publish {status, output, error} to the response topic\n"
            "  call    ask TOPIC, wait for the answer, print its output (stderr: its error)\n"
            "          and exit with its status; 3 when nobody answers in time\n\n"
            "  --token T      a token (axon token); default $AXON_TOKEN\n"
            "  --timeout S    call: wait this long for the answer; serve: kill a command\n"
            "                 that runs longer (status 124); default 5\n"
            "  --input TEXT   call: the command's stdin\n"
            "  --reply TOPIC  call: the response topic (default rpc/reply/RANDOM; with\n"
            "                 tokens, e.g. user/NAME/rpc, which only NAME may read)\n"
            "  --count N      call: N calls one after the other, then p50/p99 round trip\n"
            "  -h, --help     this text\n\n"
            "Example:\n"
            "  axon rpc serve ws://hub:8080 dev/box1/uptime -- uptime\n"
            "  axon rpc call ws://hub:8080 dev/box1/uptime\n");
}

static int rpc_serve(int argc, char **argv, const char *token, uint32_t timeout_ms)
{
    responder r = {.timeout_ms = timeout_ms};
    if (argc < 3 || hub_url(argv[0], r.url, sizeof r.url) != 0) {
        usage(stderr);
        return 2;
    }
    snprintf(r.topic, sizeof r.topic, "%s", argv[1]);
    r.argv = argv + 2;
    r.argc = argc - 2;
    if (token) snprintf(r.headers, sizeof r.headers, "Authorization: Bearer %s\r\n", token);
    int err = 0;
    signal(SIGPIPE, SIG_IGN);
    r.loop = ax_loop_new(NULL, &err);
    if (!r.loop) return 1;
    ax_loop_set_data(r.loop, &r);
    r.retry = ax_timer_new(r.loop, srv_retry, &r);
    if (ax_loop_handle_signals(r.loop, srv_signal) != 0) return 1;
    srv_connect(&r);
    ax_loop_run(r.loop);
    while (r.jobs) {
        job *j = r.jobs;
        kill(j->pid, SIGKILL);
        if (j->wo) ax_watch_free(j->wo), close(j->out), j->wo = NULL;
        if (j->we) ax_watch_free(j->we), close(j->err), j->we = NULL;
        job_finish(j);
    }
    ax_timer_free(r.retry);
    ax_loop_free(r.loop);
    return 0;
}

static int rpc_call(int argc, char **argv, const char *token, uint32_t timeout_ms,
                    const char *input, const char *reply, int count)
{
    caller c = {.timeout_ms = timeout_ms, .input = input, .count = count > 0 ? count : 1};
    if (argc < 2 || hub_url(argv[0], c.url, sizeof c.url) != 0) {
        usage(stderr);
        return 2;
    }
    snprintf(c.topic, sizeof c.topic, "%s", argv[1]);
    srand((unsigned)(now_ns() ^ (uint64_t)getpid()));
    if (reply)
        snprintf(c.reply, sizeof c.reply, "%s", reply);
    else
        snprintf(c.reply, sizeof c.reply, "rpc/reply/%08x%08x%08x", (unsigned)rand(),
                 (unsigned)rand(), (unsigned)getpid());
    c.args = json_array();
    for (int i = 2; i < argc; i++)
        json_array_append_new(c.args, json_string(argv[i]));
    if (token) snprintf(c.headers, sizeof c.headers, "Authorization: Bearer %s\r\n", token);
    c.quiet = c.count > 1;
    if (c.count > 1) c.lat_ms = calloc((size_t)c.count, sizeof(double));
    int err = 0;
    c.loop = ax_loop_new(NULL, &err);
    if (!c.loop) return 1;
    c.timer = ax_timer_new(c.loop, call_timeout, &c);
    ax_ws_opts o = {.headers = c.headers};
    c.ws = ax_ws_connect(c.loop, c.url, &call_cbs, &o, &c, &err);
    if (!c.ws) {
        fprintf(stderr, "axon rpc call: %s: %s\n", c.url, ax_strerror(err));
        c.status = 2;
    } else {
        ax_loop_run(c.loop);
    }
    if (c.lat_ms && c.done > 0) {
        qsort(c.lat_ms, (size_t)c.done, sizeof(double), cmp_d);
        printf("calls %d  p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", c.done, c.lat_ms[c.done / 2],
               c.lat_ms[(size_t)((c.done - 1) * 0.99)], c.lat_ms[c.done - 1]);
    }
    free(c.lat_ms);
    json_decref(c.args);
    ax_timer_free(c.timer);
    ax_loop_free(c.loop);
    return c.status;
}

int cmd_rpc(int argc, char **argv)
{
    static const struct option lo[] = {{"token", required_argument, NULL, 't'},
                                       {"timeout", required_argument, NULL, 'T'},
                                       {"input", required_argument, NULL, 'i'},
                                       {"reply", required_argument, NULL, 'r'},
                                       {"count", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
    const char *token = getenv("AXON_TOKEN"), *input = NULL, *reply = NULL;
    uint32_t timeout_ms = 5000;
    int count = 1, ch;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bool serve = strcmp(argv[1], "serve") == 0;
    if (!serve && strcmp(argv[1], "call") != 0) {
        fprintf(stderr, "axon rpc: serve or call, not '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    argc--, argv++;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "t:T:i:r:n:h", lo, NULL)) != -1) {
        if (ch == 't')
            token = optarg;
        else if (ch == 'T') {
            if (cli_parse_secs("rpc", "--timeout", optarg, &timeout_ms) != 0) return 2;
        } else if (ch == 'i')
            input = optarg;
        else if (ch == 'r')
            reply = optarg;
        else if (ch == 'n')
            count = atoi(optarg);
        else if (ch == 'h')
            return usage(stdout), 0;
        else
            return usage(stderr), 2;
    }
    if (token && !*token) token = NULL;
    if (serve) return rpc_serve(argc - optind, argv + optind, token, timeout_ms);
    return rpc_call(argc - optind, argv + optind, token, timeout_ms, input, reply, count);
}
