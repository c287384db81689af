/* server.c: `axon serve` assembled: the hub, the gateways of the registry
 * (gateway.h) on one loop per thread, signals (SIGTERM/SIGINT drain and
 * stop, SIGHUP reopens the log files), the banner and /metrics. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <axon/alloc.h>

#include "capacity.h"
#include "redis.h"
#include "serve.h"

#define GW_ENTRY_(kind, ops) [kind] = &ops,
const gw_ops *const serve_registry[GW_COUNT] = {SERVE_GATEWAYS(GW_ENTRY_)};
#undef GW_ENTRY_

/* ---- the gateways of one thread ------------------------------------------------------ */

static void use_registry(serve *sv)
{
    const serve_cfg *c = sv->cfg;
    sv->gws = c->gateways ? c->gateways : serve_registry;
    sv->ngw = c->gateways ? c->ngateways : GW_COUNT;
    if (sv->ngw > SERVE_MAX_GATEWAYS) sv->ngw = SERVE_MAX_GATEWAYS;
}

static const char *url_of(const char *(*f)(const serve_cfg *), const serve_cfg *c)
{
    const char *u = f ? f(c) : NULL;
    return u && u[0] ? u : NULL;
}

bool serve_cfg_listens(const serve_cfg *c)
{
    const gw_ops *const *gws = c->gateways ? c->gateways : serve_registry;
    int n = c->gateways ? c->ngateways : GW_COUNT;
    for (int i = 0; i < n; i++)
        if (url_of(gws[i]->url, c) || url_of(gws[i]->tls_url, c)) return true;
    return false;
}

/* ---- authentication ------------------------------------------------------------------ */

static bool host_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 ||
           strncmp(host, "127.", 4) == 0;
}

/* The first listener off loopback, or NULL. */
static const char *public_url(const serve_cfg *c)
{
    const gw_ops *const *gws = c->gateways ? c->gateways : serve_registry;
    int n = c->gateways ? c->ngateways : GW_COUNT;
    for (int i = 0; i < n; i++) {
        const char *us[2] = {url_of(gws[i]->url, c), url_of(gws[i]->tls_url, c)};
        for (int k = 0; k < 2; k++) {
            ax_url u;
            char why[128];
            if (!us[k] || ax_url_split(us[k], &u, why, sizeof why) != 0) continue;
            if (strcmp(u.scheme, "unix") != 0 && !host_loopback(u.host)) return us[k];
        }
    }
    return NULL;
}

int serve_cfg_protected(const serve_cfg *c, char *why, size_t why_len)
{
    const char *pub = public_url(c);
    if (!pub || c->anonymous >= 0 || c->auth_secret[0] || c->password_file[0]) return 0;
    snprintf(why, why_len,
             "%.200s is not a loopback address and no authentication is configured, so anyone "
             "who can reach it could read and write every topic (protected mode). Either give "
             "credentials (--auth-secret FILE for tokens, --password-file FILE for passwords; "
             "see docs/security.md), or listen on 127.0.0.1 only, or say that anonymous access "
             "is meant: --anonymous read or --anonymous readwrite",
             pub);
    return -1;
}

/* The auth object for the settings, or NULL with none needed (no auth
 * configured and anonymous clients may do everything: no checks at all). */
static int make_auth(serve *sv, const serve_cfg *c, char *why, size_t why_len)
{
    bool configured = c->auth_secret[0] || c->password_file[0];
    int anon = c->anonymous >= 0 ? c->anonymous : configured ? AUTH_ANON_NONE : AUTH_ANON_READWRITE;
    sv->auth = NULL;
    if (!configured && !c->acl_file[0] && anon == AUTH_ANON_READWRITE) return 0;
    auth_opts o = {.secret_file = c->auth_secret[0] ? c->auth_secret : NULL,
                   .password_file = c->password_file[0] ? c->password_file : NULL,
                   .acl_file = c->acl_file[0] ? c->acl_file : NULL,
                   .anonymous = anon};
    return (sv->auth = auth_new(&o, why, why_len)) ? 0 : -1;
}

auth_identity *serve_anonymous(const serve *sv)
{
    char why[256];
    return auth_anonymous(sv->auth, why, sizeof why);
}

/* The last refusal's reason on this thread, for serve_refused(). */
static __thread char refused_why[256];

/* A token signed with our secret that is only out of its time (jwt.c
 * checks the signature first) is no guess: it does not count against its
 * address, so a stale browser tab behind a NAT cannot lock out the
 * neighbours' logins. */
static bool stale_token(const char *why)
{
    return strncmp(why, "token expired", 13) == 0 ||
           strncmp(why, "token not valid for another", 27) == 0;
}

auth_identity *serve_token(const serve *sv, const ax_addr *from, const char *token, size_t len)
{
    char why[256] = "";
    if (!serve_limit_login(sv, from)) { /* not even checked */
        snprintf(refused_why, sizeof refused_why, "too many failed logins from this address");
        return NULL;
    }
    auth_identity *id = auth_token(sv->auth, token, len, (int64_t)time(NULL), why, sizeof why);
    if (!id) snprintf(refused_why, sizeof refused_why, "token refused: %s", why);
    if (!id) ax_log(AX_LOG_DEBUG, "%s", refused_why);
    if (!id && !stale_token(why)) serve_limit_login_failed(sv, from);
    return id;
}

auth_identity *serve_login(const serve *sv, const ax_addr *from, const char *user,
                           const char *password)
{
    char why[256] = "";
    if (!serve_limit_login(sv, from)) {
        snprintf(refused_why, sizeof refused_why, "too many failed logins from this address");
        return NULL;
    }
    auth_identity *id = auth_login(sv->auth, user, password, NULL, why, sizeof why);
    if (!id) snprintf(refused_why, sizeof refused_why, "login refused: %s", why);
    if (!id) ax_log(AX_LOG_DEBUG, "%s", refused_why);
    if (!id) serve_limit_login_failed(sv, from);
    return id;
}

/* The addresses whose refusal was logged lately (per thread: each
 * thread's gateways log on their own). */
#define REFUSED_SLOTS 64
static __thread struct {
    char host[80]; /* "GATEWAY HOST" */
    uint64_t at;   /* ms; 0: free */
} refused_seen[REFUSED_SLOTS];

/* Was `host` logged in the last SERVE_REFUSED_LOG_MS?  Else remember it now. */
static bool refused_recently(const char *host, uint64_t now)
{
    int victim = 0;
    for (int i = 0; i < REFUSED_SLOTS; i++) {
        if (refused_seen[i].at && strcmp(refused_seen[i].host, host) == 0) {
            if (now - refused_seen[i].at < SERVE_REFUSED_LOG_MS) return true;
            victim = i;
            break;
        }
        if (refused_seen[i].at < refused_seen[victim].at) victim = i;
    }
    snprintf(refused_seen[victim].host, sizeof refused_seen[victim].host, "%s", host);
    refused_seen[victim].at = now ? now : 1;
    return false;
}

/* Sign-ins refused, by gateway, since the process started (each is
 * counted; only the first of a client's in a while is logged). */
static const char *const refused_gws[] = {"http", "websocket", "line", "udp",
                                          "mqtt", "irc",       "rtmp", "term"};
#define REFUSED_GWS (sizeof refused_gws / sizeof refused_gws[0])
static uint64_t refused_count[REFUSED_GWS + 1]; /* the last: any other */

void serve_refused(const serve *sv, const char *gw, const ax_addr *peer, const char *why)
{
    size_t g = 0;
    while (g < REFUSED_GWS && strcmp(refused_gws[g], gw) != 0)
        g++;
    __atomic_add_fetch(&refused_count[g], 1, __ATOMIC_RELAXED);
    char addr[AX_ADDR_STRLEN] = "?", host[80];
    if (peer) ax_addr_format(peer, addr, sizeof addr);
    /* the host without the port: a client reconnecting is the same client */
    const char *h = strstr(addr, "://") ? strstr(addr, "://") + 3 : addr;
    size_t hl = strlen(h);
    const char *colon = strrchr(h, ':');
    if (colon && (h[0] != '[' || colon[-1] == ']')) hl = (size_t)(colon - h);
    snprintf(host, sizeof host, "%s %.*s", gw, (int)hl, h);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    (void)sv;
    if (refused_recently(host, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000)) {
        refused_why[0] = '\0';
        return;
    }
    if (!why) why = refused_why[0] ? refused_why : "unauthorized";
    ax_log(AX_LOG_WARN, "%s %s: %s (more refusals of this client are not logged for %d s)", gw,
           addr, why, SERVE_REFUSED_LOG_MS / 1000);
    refused_why[0] = '\0';
}

bool serve_metrics_allowed(const serve *sv, const auth_identity *id, bool loopback)
{
    switch (sv->cfg->metrics_access) {
    case SERVE_METRICS_ANY:
        return true;
    case SERVE_METRICS_ADMIN:
        return id && id->admin;
    default:
        return loopback || (id && id->admin);
    }
}

/* The limits engine, shared by the threads; none for zeroed settings. */
static int make_limits(serve *sv, const serve_cfg *c, char *why, size_t why_len)
{
    sv->limits = NULL;
    if (!c->limits.ip_table_size) return 0;
    int rc = hub_limits_new(&c->limits, &sv->limits);
    if (rc != 0)
        snprintf(why, why_len, "cannot set up the limits: %s",
                 rc == AX_EINVAL ? "a limit is out of range" : ax_strerror(rc));
    return rc != 0 ? -1 : 0;
}

/* The TLS context for the TLS listeners. */
static int make_tls(serve *sv, const serve_cfg *c, char *why, size_t why_len)
{
    const char *setting = NULL;
    for (int i = 0; i < sv->ngw && !setting; i++)
        if (url_of(sv->gws[i]->tls_url, c)) setting = sv->gws[i]->tls_setting;
    if (!setting) return 0;
    if (!c->tls_cert[0] && c->tls_key[0]) {
        snprintf(why, why_len, "tls_key (--key) %.300s without tls_cert (--cert)", c->tls_key);
        return -1;
    }
    if (!c->tls_cert[0]) {
        snprintf(why, why_len,
                 "%s needs tls_cert and tls_key (--cert, --key; make a pair with: "
                 "axon cert --out DIR)",
                 setting);
        return -1;
    }
    int err;
    ax_tls_opts o = {.cert_file = c->tls_cert, .key_file = c->tls_key[0] ? c->tls_key : NULL};
    sv->tls = ax_tls_server_new(&o, why, why_len, &err);
    if (!sv->tls && !o.key_file && err == AX_EINVAL)
        snprintf(why, why_len,
                 "tls_cert (--cert) %.300s holds no private key: give tls_key (--key)",
                 c->tls_cert);
    return sv->tls ? 0 : -1;
}

/* A listening gateway: its URL, then its TLS listener. */
static int start_one(serve *sv, int i, char *why, size_t why_len)
{
    const gw_ops *o = sv->gws[i];
    const char *url = url_of(o->url, sv->cfg), *tls = url_of(o->tls_url, sv->cfg);
    if (sv->index > 0 && url && strncmp(url, "unix://", 7) == 0) url = NULL; /* one owner */
    if (!url && !tls) return 0;
    if (!(sv->inst[i] = o->start(sv, url, why, why_len))) return -1;
    if (tls && o->listen_tls(sv->inst[i], tls, why, why_len) != 0) return -1;
    return 0;
}

/* A mounted gateway, on the HTTP server of the first host before it. */
static int mount_one(serve *sv, int i, char *why, size_t why_len)
{
    for (int h = 0; h < i; h++) {
        if (!sv->inst[h] || !sv->gws[h]->http) continue;
        sv->inst[i] = sv->gws[i]->mount(sv, sv->gws[h]->http(sv->inst[h]), why, why_len);
        return sv->inst[i] ? 0 : -1;
    }
    return 0; /* no host on: off */
}

int serve_gateways_start(serve *sv, char *why, size_t why_len)
{
    use_registry(sv);
    if (make_tls(sv, sv->cfg, why, why_len) != 0) return -1;
    for (int i = 0; i < sv->ngw; i++) {
        int rc =
            sv->gws[i]->start ? start_one(sv, i, why, why_len) : mount_one(sv, i, why, why_len);
        if (rc != 0) return -1;
    }
    return 0;
}

void serve_gateways_stop(serve *sv)
{
    for (int i = 0; i < sv->ngw; i++)
        if (sv->inst[i] && sv->gws[i]->stop) sv->gws[i]->stop(sv->inst[i]);
}

void serve_gateways_abort(serve *sv)
{
    for (int i = 0; i < sv->ngw; i++)
        if (sv->inst[i] && sv->gws[i]->abort) sv->gws[i]->abort(sv->inst[i]);
}

size_t serve_gateways_count(const serve *sv)
{
    size_t n = 0;
    for (int i = 0; i < sv->ngw; i++)
        if (sv->inst[i] && sv->gws[i]->count) n += sv->gws[i]->count(sv->inst[i]);
    return n;
}

/* In reverse: what is mounted on a host goes before the host's server. */
void serve_gateways_free(serve *sv)
{
    for (int i = sv->ngw - 1; i >= 0; i--) {
        if (sv->inst[i] && sv->gws[i]->free) sv->gws[i]->free(sv->inst[i]);
        sv->inst[i] = NULL;
    }
    ax_tls_ctx_free(sv->tls);
    sv->tls = NULL;
}

/* ---- the banner ------------------------------------------------------------------------- */

/* Hosts first (the chat page is what most users open), then the rest in
 * registry order. */
static void each_for_banner(serve *sv, void (*f)(serve *, const gw_ops *, void *, FILE *),
                            FILE *out)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < sv->ngw; i++)
            if (sv->inst[i] && (sv->gws[i]->http != NULL) == (pass == 0))
                f(sv, sv->gws[i], sv->inst[i], out);
}

static void log_one(serve *sv, const gw_ops *o, void *g, FILE *out)
{
    (void)sv, (void)out;
    if (o->log_addrs) o->log_addrs(g);
}

static void hint_one(serve *sv, const gw_ops *o, void *g, FILE *out)
{
    (void)sv;
    if (o->hints) o->hints(g, out);
}

void serve_log_addrs(serve *sv)
{
    each_for_banner(sv, log_one, NULL);
}

void serve_hints(serve *sv, FILE *out)
{
    each_for_banner(sv, hint_one, out);
    fprintf(out, "axon serve: Ctrl-C stops\n");
    fflush(out);
}

const char *serve_hostport(const char *url, char *buf, size_t len)
{
    const char *p = strstr(url, "://");
    snprintf(buf, len, "%s", p ? p + 3 : url);
    return buf;
}

const char *serve_nc_args(const char *url, char *buf, size_t len)
{
    serve_hostport(url, buf, len);
    char *colon = strrchr(buf, ':');
    if (!colon) return buf;
    *colon = ' ';
    if (buf[0] == '[' && colon > buf + 1 && colon[-1] == ']') {
        memmove(colon - 1, colon, strlen(colon) + 1); /* drop ']' */
        memmove(buf, buf + 1, strlen(buf));           /* and '[' */
    }
    return buf;
}

/* ---- metrics ------------------------------------------------------------------------- */

typedef struct mbuf {
    char *p;
    size_t len, cap;
} mbuf;

static void mprintf(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mprintf(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = ax_realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
}

static void metric_family(mbuf *b, const char *name, const char *type, const char *help)
{
    mprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Each gateway's counters, brought up to date by the gateway. */
static void gateway_stats(serve *sv, gw_stats *out)
{
    for (int k = 0; k < sv->ngw; k++) {
        const gw_stats *s = &sv->gw[k];
        if (sv->inst[k] && sv->gws[k]->stats) {
            sv->gws[k]->stats(sv->inst[k], &out[k]);
            continue;
        }
        out[k] = (gw_stats){load(&s->conns),    load(&s->accepted), load(&s->msgs_in),
                            load(&s->msgs_out), load(&s->bytes_in), load(&s->bytes_out),
                            load(&s->errors)};
    }
}

static void hub_metrics(mbuf *b, const hub_stats *hs)
{
    metric_family(b, "axon_hub_published_total", "counter", "Messages published.");
    mprintf(b, "axon_hub_published_total %llu\n", (unsigned long long)hs->published);
    metric_family(b, "axon_hub_delivered_total", "counter", "Messages handed to subscribers.");
    mprintf(b, "axon_hub_delivered_total %llu\n", (unsigned long long)hs->delivered);
    metric_family(b, "axon_hub_dropped_total", "counter",
                  "Messages dropped for slow subscribers, by policy.");
    mprintf(b, "axon_hub_dropped_total{policy=\"drop_oldest\"} %llu\n",
            (unsigned long long)hs->dropped_oldest);
    mprintf(b, "axon_hub_dropped_total{policy=\"keep_latest\"} %llu\n",
            (unsigned long long)hs->dropped_latest);
    metric_family(b, "axon_hub_disconnects_total", "counter",
                  "Slow subscribers disconnected, by policy.");
    mprintf(b, "axon_hub_disconnects_total{policy=\"disconnect\"} %llu\n",
            (unsigned long long)hs->kicked);
    metric_family(b, "axon_hub_subscribers", "gauge", "Subscribers now.");
    mprintf(b, "axon_hub_subscribers %llu\n", (unsigned long long)hs->subscribers);
    metric_family(b, "axon_hub_topics", "gauge", "Topics and rooms known.");
    mprintf(b, "axon_hub_topics %llu\n", (unsigned long long)hs->topics);
    metric_family(b, "axon_store_writes_total", "counter", "Messages written to the store.");
    mprintf(b, "axon_store_writes_total %llu\n", (unsigned long long)hs->store_writes);
    metric_family(b, "axon_store_errors_total", "counter", "Failed store operations.");
    mprintf(b, "axon_store_errors_total %llu\n", (unsigned long long)hs->store_errors);
    metric_family(b, "axon_store_queue_messages", "gauge",
                  "Messages waiting for (or in) a store commit.");
    mprintf(b, "axon_store_queue_messages %llu\n", (unsigned long long)hs->store_queue_msgs);
    metric_family(b, "axon_store_queue_bytes", "gauge", "Bytes of those messages.");
    mprintf(b, "axon_store_queue_bytes %llu\n", (unsigned long long)hs->store_queue_bytes);
    metric_family(b, "axon_store_refused_total", "counter",
                  "Publishes refused because the store's queue was full (slow down).");
    mprintf(b, "axon_store_refused_total %llu\n", (unsigned long long)hs->store_refused);
    metric_family(b, "axon_store_commit_seconds", "summary", "Time per batched commit.");
    mprintf(b, "axon_store_commit_seconds_sum %.6f\naxon_store_commit_seconds_count %llu\n",
            (double)hs->store_commit_us_total / 1e6, (unsigned long long)hs->store_commits);
    metric_family(b, "axon_store_commit_seconds_max", "gauge", "Longest commit since start.");
    mprintf(b, "axon_store_commit_seconds_max %.6f\n", (double)hs->store_commit_us_max / 1e6);
}

static void refused_metrics(mbuf *b)
{
    metric_family(b, "axon_auth_refused_total", "counter",
                  "Sign-ins refused (missing, wrong or expired credentials), by gateway.");
    for (size_t g = 0; g <= REFUSED_GWS; g++)
        mprintf(b, "axon_auth_refused_total{gateway=\"%s\"} %llu\n",
                g < REFUSED_GWS ? refused_gws[g] : "other",
                (unsigned long long)__atomic_load_n(&refused_count[g], __ATOMIC_RELAXED));
}

/* The limits (limit.h): refusals by kind, and the engine's table. */
static void limit_metrics(mbuf *b, hub_limits *L)
{
    hub_limits_stats st;
    if (!L) return;
    hub_limits_stats_get(L, &st);
    metric_family(b, "axon_limit_refused_total", "counter",
                  "Connections, messages and logins refused by a limit, by kind.");
    for (int k = HUB_LIMIT_OK + 1; k < HUB_LIMIT_KINDS; k++)
        mprintf(b, "axon_limit_refused_total{kind=\"%s\"} %llu\n", hub_limit_kind_name(k),
                (unsigned long long)st.refused[k]);
    metric_family(b, "axon_limit_connections", "gauge",
                  "Connections the limits count now (every gateway).");
    mprintf(b, "axon_limit_connections %llu\n", (unsigned long long)st.connections);
    metric_family(b, "axon_limit_ips", "gauge", "Client addresses the limits track now.");
    mprintf(b, "axon_limit_ips %llu\n", (unsigned long long)st.ips);
    metric_family(b, "axon_limit_evicted_total", "counter",
                  "Idle addresses forgotten to make room for others.");
    mprintf(b, "axon_limit_evicted_total %llu\n", (unsigned long long)st.evicted);
    metric_family(b, "axon_limit_overflowed_total", "counter",
                  "Lookups that found the address table full (limited together).");
    mprintf(b, "axon_limit_overflowed_total %llu\n", (unsigned long long)st.overflowed);
}

char *serve_metrics(serve *sv, size_t *len)
{
    const hub_stats *hs = hub_stats_get(sv->hub);
    mbuf b = {ax_malloc(4096), 0, 4096};
    gw_stats st[SERVE_MAX_GATEWAYS];
    if (!b.p) return NULL;
    gateway_stats(sv, st);
    struct {
        const char *name, *type, *help;
        size_t off;
    } per_gw[] = {
        {"axon_connections", "gauge", "Open connections (UDP: subscribing addresses).",
         offsetof(gw_stats, conns)},
        {"axon_connections_accepted_total", "counter", "Connections accepted since start.",
         offsetof(gw_stats, accepted)},
        {"axon_messages_in_total", "counter", "Messages received from clients.",
         offsetof(gw_stats, msgs_in)},
        {"axon_messages_out_total", "counter", "Messages sent to clients.",
         offsetof(gw_stats, msgs_out)},
        {"axon_bytes_in_total", "counter", "Bytes received.", offsetof(gw_stats, bytes_in)},
        {"axon_bytes_out_total", "counter", "Bytes sent.", offsetof(gw_stats, bytes_out)},
        {"axon_errors_total", "counter", "Requests refused as malformed or failed sends.",
         offsetof(gw_stats, errors)},
    };
    for (size_t i = 0; i < sizeof per_gw / sizeof per_gw[0]; i++) {
        metric_family(&b, per_gw[i].name, per_gw[i].type, per_gw[i].help);
        for (int k = 0; k < sv->ngw; k++) {
            uint64_t v = *(const uint64_t *)(const void *)((const char *)&st[k] + per_gw[i].off);
            mprintf(&b, "%s{gateway=\"%s\"} %llu\n", per_gw[i].name, sv->gws[k]->name,
                    (unsigned long long)v);
        }
    }
    hub_metrics(&b, hs);
    limit_metrics(&b, sv->limits);
    refused_metrics(&b);
    if (sv->bp) {
        char text[4096];
        redis_bp_metrics(sv->bp, text, sizeof text);
        mprintf(&b, "%s", text);
    }
    metric_family(&b, "axon_uptime_seconds", "gauge", "Seconds since start.");
    mprintf(&b, "axon_uptime_seconds %lld\n",
            (long long)((int64_t)time(NULL) - sv->started_ms / 1000));
    *len = b.len;
    return b.p;
}

int serve_redis_url_check(const char *url, char *why, size_t why_len)
{
    return redis_urls_check(url, why, why_len);
}

bool serve_healthy(const serve *sv, char *why, size_t why_len)
{
    if (sv->bp) return redis_bp_healthy(sv->bp, why, why_len);
    snprintf(why, why_len, "ok");
    return true;
}

/* ---- running ------------------------------------------------------------------------ */

static void on_signal(ax_loop *loop, int signo)
{
    ax_log(AX_LOG_INFO, "received %s, shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
    ax_loop_stop(loop);
}

/* The access log (--access-log), shared by every thread's HTTP server;
 * SIGHUP reopens it under the same FILE, which the servers keep. */
static FILE *access_log;
static const char *access_log_path;

static FILE *open_access_log(const char *path)
{
    if (strcmp(path, "-") == 0) return stdout;
    return fopen(path, "ae");
}

/* Open the path anew and put it under the same FILE (after log rotation);
 * if it cannot be opened, the lines go on to the old file. */
static void reopen_access_log(void)
{
    if (!access_log || access_log == stdout) return;
    int fd = open(access_log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd == -1) {
        ax_log(AX_LOG_ERROR, "cannot reopen the access log %s: %s", access_log_path,
               strerror(errno));
        return;
    }
    flockfile(access_log); /* not between a line's parts (other threads) */
    fflush(access_log);
    int to = fileno(access_log);
    if (dup2(fd, to) == -1)
        ax_log(AX_LOG_ERROR, "cannot reopen the access log %s: %s", access_log_path,
               strerror(errno));
    else
        fcntl(to, F_SETFD, FD_CLOEXEC); /* (nothing here forks or runs programs) */
    funlockfile(access_log);
    close(fd);
}

static void on_hup(ax_loop *loop)
{
    (void)loop;
    if (ax_log_reopen() != 0) fprintf(stderr, "axon serve: cannot reopen the log file\n");
    reopen_access_log();
    ax_log(AX_LOG_INFO, "SIGHUP: log file reopened");
}

static int start(serve *sv)
{
    char why[512] = "";
    if (serve_gateways_start(sv, why, sizeof why) != 0) goto fail;
    if (sv->index > 0) return 0; /* the workers listen on the same ports */
    serve_log_addrs(sv);
    return 0;
fail:
    ax_log(AX_LOG_ERROR, "%s", why);
    fprintf(stderr, "axon serve: %s\n", why);
    return -1;
}

/* Drain: say goodbye on every connection, give them two seconds to close
 * gracefully, reset the rest, then free the gateways before the hub. */
static bool busy(serve *sv)
{
    return serve_gateways_count(sv) > 0;
}

static void shutdown_gateways(serve *sv)
{
    serve_gateways_stop(sv);
    uint64_t end = ax_loop_now(sv->loop) + 2000;
    while (busy(sv) && ax_loop_now(sv->loop) < end)
        ax_loop_run_once(sv->loop, 20);
    serve_gateways_abort(sv);
    while (busy(sv))
        ax_loop_run_once(sv->loop, 10);
    serve_gateways_free(sv);
    for (int i = 0; i < 5; i++) /* let closes finish */
        ax_loop_run_once(sv->loop, 0);
}

/* ---- threads: the main loop is thread 0, the others are workers ---------- */

typedef struct pool {
    serve *sv; /* [threads]; sv[0] is the main thread's */
    int n;
} pool;

/* A worker's shutdown, on its own loop: say goodbye, wait up to two
 * seconds for graceful closes, reset the rest, free the gateways. */
static void worker_poll(ax_timer *t, void *ud)
{
    serve *sv = ud;
    if (busy(sv) && ax_loop_now(sv->loop) < sv->stop_by) return;
    if (busy(sv) && !sv->aborted) {
        serve_gateways_abort(sv);
        sv->aborted = true;
        return;
    }
    if (busy(sv)) return; /* the resets' on_close come next turn */
    serve_gateways_free(sv);
    ax_timer_free(t);
    sv->stopper = NULL;
    __atomic_store_n(&sv->done, true, __ATOMIC_RELEASE);
}

static void worker_stop(ax_loop *loop, void *arg)
{
    serve *sv = arg;
    serve_gateways_stop(sv);
    sv->stop_by = ax_loop_now(loop) + 2000;
    ax_timer_start(sv->stopper, 20, 20);
}

static int worker_setup(ax_loop *loop, int index, void *ud)
{
    pool *p = ud;
    serve *sv = &p->sv[index + 1];
    *sv = p->sv[0];
    sv->loop = loop;
    sv->index = index + 1;
    memset(sv->inst, 0, sizeof sv->inst);
    sv->tls = NULL;
    hub_bind_loop(loop);
    if (!(sv->stopper = ax_timer_new(loop, worker_poll, sv))) return AX_ENOMEM;
    if (start(sv) != 0) {
        serve_gateways_free(sv);
        ax_timer_free(sv->stopper);
        return AX_EADDRINUSE;
    }
    return 0;
}

/* Stop every worker's gateways (concurrently with the main thread's). */
static void stop_workers(pool *p, ax_threads *th)
{
    for (int i = 1; i < p->n; i++)
        ax_loop_post(ax_threads_loop(th, i - 1), worker_stop, &p->sv[i]);
}

static void wait_workers(pool *p, ax_loop *loop)
{
    for (int i = 1; i < p->n; i++)
        while (!__atomic_load_n(&p->sv[i].done, __ATOMIC_ACQUIRE))
            ax_loop_run_once(loop, 20);
}

int serve_run(const serve_cfg *cfg)
{
    int rc;
    if (cfg->log_json) ax_log_set_json(1);
    if (cfg->log_file[0] && ax_log_set_file(cfg->log_file) != 0) {
        fprintf(stderr, "axon serve: cannot open log file %s: %s\n", cfg->log_file,
                strerror(errno));
        return 1;
    }
    if (cfg->access_log[0] && !(access_log = open_access_log(cfg->access_log))) {
        fprintf(stderr, "axon serve: cannot open access log %s: %s\n", cfg->access_log,
                strerror(errno));
        return 1;
    }
    access_log_path = cfg->access_log;
    int err = 0;
    static gw_stats stats[SERVE_MAX_GATEWAYS];
    static ax_http_stats http_stats;
    serve sv = {.cfg = cfg,
                .gw = stats,
                .http_stats = &http_stats,
                .access_log = access_log,
                .started_ms = (int64_t)time(NULL) * 1000};
    if (!(sv.loop = ax_loop_new(NULL, &err))) {
        fprintf(stderr, "axon serve: cannot create loop: %s\n", ax_strerror(err));
        return 1;
    }
    char why[1024] = "";
    if (serve_cfg_protected(cfg, why, sizeof why) != 0 ||
        make_auth(&sv, cfg, why, sizeof why) != 0 || make_limits(&sv, cfg, why, sizeof why) != 0) {
        fprintf(stderr, "axon serve: %s\n", why);
        auth_free(sv.auth);
        ax_loop_free(sv.loop);
        return 1;
    }
    /* keys between nodes (gw_term.c, $term/NAME/in) are kept nowhere: no
     * history, so no Redis stream either */
    hub_rule rules[SERVE_MAX_RULES + 1] = {{"$term/+/in", 0, 0, HUB_DROP_OLDEST}};
    memcpy(rules + 1, cfg->rules, (size_t)cfg->nrules * sizeof *rules);
    hub_opts ho = {.rules = rules, /* copied by hub_new() */
                   .nrules = cfg->nrules + 1,
                   .sub_budget = cfg->sub_budget,
                   .max_payload = cfg->max_payload,
                   .max_topics = cfg->max_topics,
                   .max_filters = cfg->max_subs,
                   .data_dir = cfg->data_dir[0] && !cfg->redis[0] ? cfg->data_dir : NULL,
                   .fsync_mode = cfg->fsync_mode,
                   .store_queue_max = cfg->store_queue,
                   .store_queue_bytes = cfg->store_queue_bytes};
    if (!(sv.hub = hub_new(sv.loop, &ho, why, sizeof why))) {
        fprintf(stderr, "axon serve: %s\n", why);
        auth_free(sv.auth);
        hub_limits_free(sv.limits);
        ax_loop_free(sv.loop);
        return 1;
    }
    if (cfg->redis[0] &&
        !(sv.bp = redis_bp_new(sv.hub, cfg->redis, cfg->redis_cluster, why, sizeof why))) {
        fprintf(stderr, "axon serve: %s\n", why);
        hub_free(sv.hub);
        auth_free(sv.auth);
        hub_limits_free(sv.limits);
        ax_loop_free(sv.loop);
        return 1;
    }
    ax_log(AX_LOG_INFO, "axon %s serve starting (history: %s)", AXON_VERSION,
           cfg->redis[0]      ? "Redis, shared with the other nodes"
           : cfg->data_dir[0] ? cfg->data_dir
                              : "memory only");
    serve_capacity_setup(cfg->limits.max_connections); /* capacity.c: fd limit, sysctls */
    rc = 0;
    hub_bind_loop(sv.loop);
    pool p = {.n = cfg->threads};
    ax_threads *th = NULL;
    if (!(p.sv = calloc((size_t)cfg->threads, sizeof(*p.sv))) || start(&sv) != 0) {
        rc = 1;
    } else {
        p.sv[0] = sv; /* started: the workers copy it */
        if (cfg->threads > 1 &&
            !(th = ax_threads_start(cfg->threads - 1, worker_setup, &p, &err))) {
            fprintf(stderr, "axon serve: cannot start %d threads: %s\n", cfg->threads,
                    ax_strerror(err));
            rc = 1;
        }
    }
    if (rc == 0) {
        ax_loop_handle_signals(sv.loop, on_signal);
        ax_loop_handle_reload(sv.loop, on_hup);
        if (cfg->threads > 1) ax_log(AX_LOG_INFO, "%d threads share the ports", cfg->threads);
        ax_log(AX_LOG_INFO, "ready to accept connections");
        if (!cfg->quiet) serve_hints(&sv, stdout); /* last: what a user needs stays on screen */
        ax_loop_run(sv.loop);
    }
    if (th) stop_workers(&p, th);
    shutdown_gateways(&sv);
    if (th) {
        wait_workers(&p, sv.loop);
        ax_threads_stop(th);
    }
    free(p.sv);
    ax_loop_drop_posts(sv.loop); /* (their drops need the hub and Redis) */
    redis_bp_free(sv.bp);
    hub_free(sv.hub);
    auth_free(sv.auth);
    hub_limits_free(sv.limits);
    ax_loop_free(sv.loop);
    ax_log(AX_LOG_INFO, "stopped");
    if (access_log && access_log != stdout) fclose(access_log);
    access_log = NULL;
    return rc;
}
