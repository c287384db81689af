/* serve.c: `axon serve`, the real-time hub: its settings (a config file in
 * the style of mosquitto and Redis, then flags over it), turned into a
 * serve_cfg for the server (src/hub/server.c), which does the rest. */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <axon/axon.h>

#include "cli.h"
#include "hub/server.h"

#define MAX_INCLUDE_DEPTH 8

/* ---- settings ------------------------------------------------------------------ */

static void defaults(serve_cfg *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->http_url, sizeof c->http_url, "tcp://127.0.0.1:8080");
    snprintf(c->line_url, sizeof c->line_url, "tcp://127.0.0.1:7000");
    snprintf(c->udp_url, sizeof c->udp_url, "udp://127.0.0.1:7001");
    snprintf(c->irc_url, sizeof c->irc_url, "tcp://127.0.0.1:6667");
    c->irc_ping_timeout_s = 90;
    snprintf(c->rtmp_url, sizeof c->rtmp_url, "tcp://127.0.0.1:1935");
    c->term_idle_s = 3600;
    snprintf(c->mqtt_url, sizeof c->mqtt_url, "tcp://127.0.0.1:1883");
    c->mqtt_inflight = 100;
    c->mqtt_queued = 1000;
    c->mqtt_session_expiry_s = 86400 * 7;
    c->mqtt_max_keepalive_s = 65535;
    snprintf(c->mqtt_response_prefix, sizeof c->mqtt_response_prefix, "reply");
    snprintf(c->data_dir, sizeof c->data_dir, "./axon-data");
    c->fsync_mode = HUB_FSYNC_BATCH;
    c->store_queue = HUB_STORE_QUEUE_MAX;
    c->store_queue_bytes = HUB_STORE_QUEUE_BYTES;
    c->sub_budget = 1u << 20;
    c->max_payload = 1u << 20;
    c->max_topics = 100000;
    c->max_subs = 10000;
    c->udp_lease_s = 60;
    c->udp_cookie_s = 30;
    c->max_line = 4096;
    c->threads = 1;
    c->line_name_timeout_s = 30;
    c->line_idle_timeout_s = 3600;
    c->anonymous = -1;
    hub_limits_conf_default(&c->limits);
}

/* "host:port" -> "scheme://host:port"; URLs and "off" stay. */
static int set_addr(char *dst, size_t cap, const char *scheme, const char *v, char *why,
                    size_t why_len)
{
    if (strcmp(v, "off") == 0 || strcmp(v, "no") == 0) {
        dst[0] = '\0';
        return 0;
    }
    char url[SERVE_URL_LEN];
    if (strstr(v, "://"))
        snprintf(url, sizeof url, "%s", v);
    else
        snprintf(url, sizeof url, "%s://%s", scheme, v);
    ax_url u;
    if (ax_url_split(url, &u, why, why_len) != 0) return -1;
    snprintf(dst, cap, "%s", url);
    return 0;
}

static int parse_u64(const char *v, uint64_t max, uint64_t *out, char *why, size_t why_len)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || x > max || v[0] == '-') {
        snprintf(why, why_len, "'%s' is not a number from 0 to %llu", v, (unsigned long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

static hub_rule *rule(serve_cfg *c, const char *pattern, char *why, size_t why_len)
{
    if (!hub_filter_valid(pattern, strlen(pattern))) {
        snprintf(why, why_len, "'%s' is not a topic pattern", pattern);
        return NULL;
    }
    for (int i = 0; i < c->nrules; i++)
        if (strcmp(c->rules[i].pattern, pattern) == 0) return &c->rules[i];
    if (c->nrules == SERVE_MAX_RULES) {
        snprintf(why, why_len, "more than %d topic rules", SERVE_MAX_RULES);
        return NULL;
    }
    hub_rule *r = &c->rules[c->nrules++];
    snprintf(r->pattern, sizeof r->pattern, "%s", pattern);
    r->history_count = UINT32_MAX; /* unset: the defaults fill it in */
    r->history_age_s = UINT32_MAX;
    r->policy = HUB_POLICY_UNSET;
    return r;
}

static int parse_policy(const char *v, enum hub_policy *out, char *why, size_t why_len)
{
    static const char *names[] = {"disconnect", "drop_oldest", "keep_latest"};
    for (int i = 0; i < 3; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = (enum hub_policy)i;
            return 0;
        }
    snprintf(why, why_len, "'%s' is not a policy (disconnect, drop_oldest, keep_latest)", v);
    return -1;
}

typedef struct globals {
    uint64_t history_count, history_age;
    enum hub_policy policy;
} globals;

static int read_config(serve_cfg *c, globals *gl, const char *path, int depth);

/* A limits setting (docs/config.md, "Limits"); its value is the rest of
 * the line ("msg_rate 500/s burst 1000").  0, AX_EINVAL with why, or
 * AX_ENOENT when `argv[0]` is not one. */
static int limits_setting(serve_cfg *c, char **argv, int argc, char *why, size_t why_len)
{
    char v[256] = "";
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(v);
        snprintf(v + n, sizeof v - n, "%s%s", i > 1 ? " " : "", argv[i]);
    }
    why[0] = '\0';
    int rc = hub_limits_conf_set(&c->limits, argv[0], v, why, why_len);
    if (rc == AX_EINVAL && !why[0]) snprintf(why, why_len, "bad value for %s", argv[0]);
    return rc;
}

/* ---- the settings table ------------------------------------------------------ */

/* One setting: its config-file key, its flag, how its value is parsed and
 * where it goes, and its lines of --help; the config-file parser, the
 * flags and --help are driven from the table below (Redis's config.c
 * standardConfig is the model).  A new setting is a row (and its line in
 * docs/config.md): a key with a flag, a key of the file alone (no .flag),
 * or a flag alone (.kind). */
typedef struct setting_def setting_def;

/* What a parse function gets: the setting's words (argv[0] is the key). */
typedef struct set_ctx {
    serve_cfg *c;
    globals *gl;
    char **argv;
    int argc;
    const char *file; /* the config file ("" for a flag): includes are relative to it */
    int depth;
    char *why;
    size_t why_len;
} set_ctx;

/* Flags that are no key of the config file. */
enum { K_KEY, K_CONFIG, K_LISTEN, K_QUIET, K_HELP, K_LIMIT, K_HEADING };

struct setting_def {
    const char *key;  /* the config-file key (NULL: a flag alone) */
    const char *flag; /* --flag (NULL: the config file only) */
    char short_opt;   /* -X too, or 0 */
    uint8_t kind;     /* K_*: K_KEY but for the flags alone */
    /* 0, or -1 with a sentence in x->why */
    int (*parse)(const setting_def *d, set_ctx *x);
    bool global;       /* the field is in globals, not serve_cfg */
    size_t off, size;  /* the field */
    uint64_t min, max; /* numbers: the range; below min: msg, or min */
    const char *words; /* addresses: the scheme; words: "a|b|c" (stored as
                        * their index); strings: the word meaning "" */
    const char *msg;   /* the sentence for a value out of range (%s: the key)
                        * or not one of the words (%s: the value) */
    const char *help;  /* its lines of --help (in the table's order) */
};

#define FIELD(f) .off = offsetof(serve_cfg, f), .size = sizeof(((serve_cfg *)0)->f)
#define GFIELD(f) .global = true, .off = offsetof(globals, f), .size = sizeof(((globals *)0)->f)

static void *field(const setting_def *d, set_ctx *x)
{
    return (char *)(d->global ? (void *)x->gl : (void *)x->c) + d->off;
}

/* The setting takes `cnt` values. */
static int want(const set_ctx *x, int cnt)
{
    if (x->argc == cnt + 1) return 0;
    snprintf(x->why, x->why_len, "'%s' takes %d value%s", x->argv[0], cnt, cnt == 1 ? "" : "s");
    return -1;
}

static int set_addr_value(const setting_def *d, set_ctx *x)
{
    if (want(x, 1)) return -1;
    return set_addr(field(d, x), d->size, d->words, x->argv[1], x->why, x->why_len);
}

static int set_string(const setting_def *d, set_ctx *x)
{
    if (want(x, 1)) return -1;
    const char *v = x->argv[1];
    snprintf(field(d, x), d->size, "%s", d->words && strcmp(v, d->words) == 0 ? "" : v);
    return 0;
}

static void store_uint(void *dst, size_t size, uint64_t n)
{
    if (size == sizeof(uint64_t)) {
        uint64_t v = n;
        memcpy(dst, &v, sizeof v);
    } else if (size == sizeof(uint32_t)) {
        uint32_t v = (uint32_t)n;
        memcpy(dst, &v, sizeof v);
    } else {
        uint8_t v = (uint8_t)n;
        memcpy(dst, &v, sizeof v);
    }
}

static int set_number(const setting_def *d, set_ctx *x)
{
    uint64_t n;
    if (want(x, 1) || parse_u64(x->argv[1], d->max, &n, x->why, x->why_len)) return -1;
    if (n < d->min) {
        if (d->msg) {
            snprintf(x->why, x->why_len, d->msg, d->key);
            return -1;
        }
        n = d->min;
    }
    store_uint(field(d, x), d->size, n);
    return 0;
}

static int set_word(const setting_def *d, set_ctx *x)
{
    if (want(x, 1)) return -1;
    const char *v = x->argv[1], *w = d->words;
    size_t len = strlen(v);
    for (int i = 0; w; i++) {
        const char *bar = strchr(w, '|');
        size_t wl = bar ? (size_t)(bar - w) : strlen(w);
        if (wl == len && strncmp(w, v, len) == 0) {
            store_uint(field(d, x), d->size, (uint64_t)i);
            return 0;
        }
        w = bar ? bar + 1 : NULL;
    }
    snprintf(x->why, x->why_len, d->msg, v);
    return -1;
}

static int set_redis(const setting_def *d, set_ctx *x)
{
    if (want(x, 1) || serve_redis_url_check(x->argv[1], x->why, x->why_len) != 0) return -1;
    return set_string(d, x);
}

static int set_redis_cluster(const setting_def *d, set_ctx *x)
{
    if (set_redis(d, x)) return -1;
    x->c->redis_cluster = true;
    return 0;
}

/* NAME=COMMAND (gw_term.c), repeatable: one a line */
static int set_term(const setting_def *d, set_ctx *x)
{
    const char *v = x->argc > 1 ? x->argv[1] : "";
    char *dst = field(d, x);
    size_t l = strlen(dst);
    if (x->argc < 2 || !strchr(v, '=') || strchr(v, '=') == v) {
        snprintf(x->why, x->why_len, "'%s' takes NAME=COMMAND", x->argv[0]);
        return -1;
    }
    for (int i = 1; i < x->argc; i++)
        l += (size_t)snprintf(dst + l, l < d->size ? d->size - l : 0, "%s%s", i > 1 ? " " : "",
                              x->argv[i]);
    if (l + 1 >= d->size) {
        snprintf(x->why, x->why_len, "too many terminals (%zu bytes at most)", d->size);
        return -1;
    }
    dst[l] = '\n';
    dst[l + 1] = '\0';
    return 0;
}

static int set_slow_consumer(const setting_def *d, set_ctx *x)
{
    (void)d;
    if (x->argc == 2) return parse_policy(x->argv[1], &x->gl->policy, x->why, x->why_len);
    if (want(x, 2)) return -1;
    hub_rule *r = rule(x->c, x->argv[1], x->why, x->why_len);
    return r ? parse_policy(x->argv[2], &r->policy, x->why, x->why_len) : -1;
}

static int set_history(const setting_def *d, set_ctx *x)
{
    (void)d;
    if (x->argc != 3 && x->argc != 4) {
        snprintf(x->why, x->why_len, "'history' takes a pattern, a count and maybe an age");
        return -1;
    }
    hub_rule *r = rule(x->c, x->argv[1], x->why, x->why_len);
    uint64_t cnt, age = 0;
    if (!r || parse_u64(x->argv[2], 1000000, &cnt, x->why, x->why_len) ||
        (x->argc == 4 && parse_u64(x->argv[3], 100u * 365 * 86400, &age, x->why, x->why_len)))
        return -1;
    r->history_count = (uint32_t)cnt;
    r->history_age_s = x->argc == 4 ? (uint32_t)age : UINT32_MAX;
    return 0;
}

static int set_origins(const setting_def *d, set_ctx *x)
{
    if (x->argc < 2) {
        snprintf(x->why, x->why_len, "'%s' takes a list of origins", x->argv[0]);
        return -1;
    }
    char *dst = field(d, x);
    dst[0] = '\0';
    for (int i = 1; i < x->argc; i++) {
        size_t l = strlen(dst);
        snprintf(dst + l, d->size - l, "%s%s", l ? "," : "", x->argv[i]);
    }
    return 0;
}

static int set_include(const setting_def *d, set_ctx *x)
{
    (void)d;
    if (want(x, 1)) return -1;
    const char *v = x->argv[1];
    char inc[1024];
    const char *slash = strrchr(x->file, '/');
    if (v[0] != '/' && slash) /* relative to the including file */
        snprintf(inc, sizeof inc, "%.*s/%s", (int)(slash - x->file), x->file, v);
    else
        snprintf(inc, sizeof inc, "%s", v);
    if (x->depth >= MAX_INCLUDE_DEPTH) {
        snprintf(x->why, x->why_len, "includes nested deeper than %d", MAX_INCLUDE_DEPTH);
        return -1;
    }
    if (access(inc, R_OK) != 0) {
        snprintf(x->why, x->why_len, "cannot read included file %.300s: %s", inc, strerror(errno));
        return -1;
    }
    if (read_config(x->c, x->gl, inc, x->depth + 1) != 0) {
        x->why[0] = '\0'; /* the included file said what was wrong */
        return -1;
    }
    return 0;
}

/* clang-format off: one row a setting, in the order of --help */
static const setting_def settings_table[] = {
    {.flag = "config",
     .short_opt = 'c',
     .kind = K_CONFIG,
     .help = "  -c, --config FILE        read settings from FILE (docs/config.md)\n"},
    {.key = "listen_http",
     .flag = "http",
     .parse = set_addr_value,
     FIELD(http_url),
     .words = "tcp",
     .help = "      --http ADDR          HTTP API, SSE, metrics; default 127.0.0.1:8080; off\n"},
    {.key = "listen_line",
     .flag = "line",
     .parse = set_addr_value,
     FIELD(line_url),
     .words = "tcp",
     .help = "      --line ADDR          line chat for nc/telnet; default 127.0.0.1:7000; off\n"},
    {.key = "listen_udp",
     .flag = "udp",
     .parse = set_addr_value,
     FIELD(udp_url),
     .words = "udp",
     .help = "      --udp ADDR           UDP datagrams; default 127.0.0.1:7001; off\n"},
    {.flag = "listen",
     .short_opt = 'l',
     .kind = K_LISTEN,
     .help = "  -l, --listen GW=ADDR     the same as --http/--line/--udp: http=0.0.0.0:80\n"},
    {.key = "listen_https",
     .flag = "https",
     .parse = set_addr_value,
     FIELD(https_url),
     .words = "tls",
     .help = "      --https ADDR         HTTPS and wss:// too (needs --cert); default off\n"},
    {.key = "listen_line_tls",
     .flag = "line-tls",
     .parse = set_addr_value,
     FIELD(line_tls_url),
     .words = "tls",
     .help = "      --line-tls ADDR      line chat over TLS too (needs --cert); default off\n"},
    {.key = "listen_irc",
     .flag = "irc",
     .parse = set_addr_value,
     FIELD(irc_url),
     .words = "tcp",
     .help = "      --irc ADDR           IRC, channels are chat rooms; default 127.0.0.1:6667;\n"
             "                           off (docs/irc.md)\n"},
    {.key = "listen_ircs",
     .flag = "ircs",
     .parse = set_addr_value,
     FIELD(ircs_url),
     .words = "tls",
     .help = "      --ircs ADDR          IRC over TLS (needs --cert); default off\n"},
    {.key = "listen_rtmp",
     .flag = "rtmp",
     .parse = set_addr_value,
     FIELD(rtmp_url),
     .words = "tcp",
     .help = "      --rtmp ADDR          RTMP live streams in and out; default 127.0.0.1:1935;\n"
             "                           off (docs/streaming.md)\n"},
    {.key = "record_dir",
     .flag = "record",
     .parse = set_string,
     FIELD(record_dir),
     .help = "      --record DIR         record each live stream to DIR/NAME-TIME.mp4\n"
             "                           (fragmented MP4); default off\n"},
    {.key = "listen_mqtt",
     .flag = "mqtt",
     .parse = set_addr_value,
     FIELD(mqtt_url),
     .words = "tcp",
     .help = "      --mqtt ADDR          MQTT 3.1.1/5.0 broker; default 127.0.0.1:1883; off\n"
             "                           (also MQTT over WebSocket at /mqtt on --http)\n"},
    {.key = "listen_mqtts",
     .flag = "mqtts",
     .parse = set_addr_value,
     FIELD(mqtts_url),
     .words = "tls",
     .help = "      --mqtts ADDR         MQTT over TLS (needs --cert); default off\n"},
    {.key = "mqtt_websocket",
     .parse = set_word,
     FIELD(mqtt_ws_off),
     .words = "on|off",
     .msg = "mqtt_websocket is on or off, not '%s'"},
    {.key = "mqtt_inflight",
     .parse = set_number,
     FIELD(mqtt_inflight),
     .min = 1,
     .max = 65535,
     .msg = "mqtt_inflight is 1 to 65535"},
    {.key = "mqtt_queued", .parse = set_number, FIELD(mqtt_queued), .max = 10000000},
    {.key = "mqtt_session_expiry",
     .parse = set_number,
     FIELD(mqtt_session_expiry_s),
     .max = 0xFFFFFFFFu},
    {.key = "mqtt_max_keepalive",
     .parse = set_number,
     FIELD(mqtt_max_keepalive_s),
     .min = 1,
     .max = 65535,
     .msg = "mqtt_max_keepalive is 1 to 65535"},
    {.key = "mqtt_response_prefix",
     .parse = set_string,
     FIELD(mqtt_response_prefix),
     .words = "off"},
    {.key = "tls_cert",
     .flag = "cert",
     .parse = set_string,
     FIELD(tls_cert),
     .help = "      --cert FILE          TLS certificate, PEM (make one: axon cert)\n"},
    {.key = "tls_key",
     .flag = "key",
     .parse = set_string,
     FIELD(tls_key),
     .help = "      --key FILE           TLS private key, PEM; default: in --cert\n"},
    {.key = "data_dir",
     .flag = "data",
     .short_opt = 'd',
     .parse = set_string,
     FIELD(data_dir),
     .words = "none",
     .help = "  -d, --data DIR           history store (SQLite); default ./axon-data; 'none'\n"
             "                           keeps history in memory only\n"},
    {.key = "fsync",
     .flag = "fsync",
     .parse = set_word,
     FIELD(fsync_mode),
     .words = "batch|always|off",
     .msg = "fsync is always, batch or off, not '%s'",
     .help = "      --fsync MODE         when a publish is acknowledged (HTTP 200, WebSocket\n"
             "                           ok, UDP OK): always: on disk (fsync'd group commit);\n"
             "                           batch (default): committed, survives a crash of the\n"
             "                           process, a power cut may lose the last 200 ms; off:\n"
             "                           queued in memory\n"},
    {.key = "store_queue",
     .flag = "store-queue",
     .parse = set_number,
     FIELD(store_queue),
     .min = 1,
     .max = 10000000,
     .help = "      --store-queue N      messages waiting for the store before publishers are\n"
             "                           told to slow down (HTTP 503); default 100000\n"},
    {.key = "store_queue_bytes",
     .flag = "store-queue-bytes",
     .parse = set_number,
     FIELD(store_queue_bytes),
     .min = 65536,
     .max = (uint64_t)16 << 30,
     .msg = "store_queue_bytes must be at least 65536",
     .help = "      --store-queue-bytes N  the same in bytes; default 67108864 (64 MiB)\n"},
    {.key = "history_count",
     .flag = "history",
     .parse = set_number,
     GFIELD(history_count),
     .max = 1000000,
     .help = "      --history N          messages kept per topic; default 1000\n"},
    {.key = "history_age", .parse = set_number, GFIELD(history_age), .max = 100u * 365 * 86400},
    {.key = "slow_consumer", .parse = set_slow_consumer},
    {.key = "history", .parse = set_history},
    {.key = "redis",
     .flag = "redis",
     .parse = set_redis,
     FIELD(redis),
     .help = "      --redis URL          share topics with other nodes through Redis:\n"
             "                           redis://[user:pass@]host[:port][/db] or\n"
             "                           unix://path (docs/cluster.md); history is then\n"
             "                           Redis's, -d is not used for messages\n"},
    {.key = "redis_cluster",
     .flag = "redis-cluster",
     .parse = set_redis_cluster,
     FIELD(redis),
     .help = "      --redis-cluster URLS a Redis Cluster (sharded pub/sub): one or more of\n"
             "                           its nodes' URLs, comma-separated\n"},
    {.key = "subscriber_budget", .parse = set_number, FIELD(sub_budget), .max = 1u << 30},
    {.key = "max_payload",
     .parse = set_number,
     FIELD(max_payload),
     .min = 1,
     .max = 64u << 20,
     .msg = "max_payload must be at least 1 byte"},
    {.key = "max_topics",
     .flag = "max-topics",
     .parse = set_number,
     FIELD(max_topics),
     .min = 1,
     .max = 100000000,
     .msg = "%s must be at least 1",
     .help = "      --max-topics N       topics that may exist at once; default 100000\n"},
    {.key = "max_subscriptions",
     .flag = "max-subs",
     .parse = set_number,
     FIELD(max_subs),
     .min = 1,
     .max = 100000000,
     .msg = "%s must be at least 1",
     .help = "      --max-subs N         subscriptions per connection; default 10000\n"},
    {.key = "max_line", .parse = set_number, FIELD(max_line), .min = 16, .max = 65536},
    {.key = "udp_lease", .parse = set_number, FIELD(udp_lease_s), .min = 1, .max = 86400},
    {.key = "udp_cookie", .parse = set_number, FIELD(udp_cookie_s), .min = 1, .max = 3600},
    {.key = "allow_origins",
     .flag = "allow-origin",
     .parse = set_origins,
     FIELD(allow_origins),
     .help = "      --allow-origin LIST  browser origins (comma-separated, e.g.\n"
             "                           https://app.example) allowed besides the hub's own\n"
             "                           and loopback ones; '*': any\n"},
    {.key = "threads",
     .flag = "threads",
     .short_opt = 't',
     .parse = set_number,
     FIELD(threads),
     .min = 1,
     .max = 64,
     .msg = "threads is 1 to 64",
     .help = "  -t, --threads N          N event loops (threads) sharing the ports; default 1\n"},
    {.key = "log_format",
     .flag = "log-format",
     .parse = set_word,
     FIELD(log_json),
     .words = "text|json",
     .msg = "log_format is text or json, not '%s'",
     .help = "      --log-format F       text (default) or json\n"},
    {.key = "log_file",
     .flag = "log-file",
     .parse = set_string,
     FIELD(log_file),
     .help = "      --log-file PATH      log there instead of stderr (reopened on SIGHUP)\n"},
    {.key = "access_log",
     .flag = "access-log",
     .parse = set_string,
     FIELD(access_log),
     .words = "off",
     .help = "      --access-log PATH    one line per HTTP response there ('-': stdout);\n"
             "                           default off (reopened on SIGHUP)\n"},
    {.key = "access_log_format",
     .flag = "access-log-format",
     .parse = set_word,
     FIELD(access_log_format),
     .words = "common|combined|json",
     .msg = "access_log_format is common, combined or json, not '%s'",
     .help = "      --access-log-format F  common (default), combined or json\n"},
    {.key = "http_header_timeout",
     .flag = "header-timeout",
     .parse = set_number,
     FIELD(http_header_timeout_s),
     .min = 1,
     .max = 86400,
     .msg = "%s is 1 to 86400 seconds",
     .help = "      --header-timeout S   seconds an HTTP request head may take; default 10\n"},
    {.key = "http_idle_timeout",
     .flag = "idle-timeout",
     .parse = set_number,
     FIELD(http_idle_timeout_s),
     .min = 1,
     .max = 86400,
     .msg = "%s is 1 to 86400 seconds",
     .help = "      --idle-timeout S     seconds an idle HTTP keep-alive connection stays;\n"
             "                           default 60\n"},
    {.key = "close_timeout",
     .flag = "close-timeout",
     .parse = set_number,
     FIELD(close_timeout_s),
     .min = 1,
     .max = 86400,
     .msg = "%s is 1 to 86400 seconds",
     .help = "      --close-timeout S    seconds a closing connection may stall flushing,\n"
             "                           then wait for the peer's FIN; default 10\n"},
    {.key = "line_name_timeout",
     .flag = "line-name-timeout",
     .parse = set_number,
     FIELD(line_name_timeout_s),
     .max = 86400,
     .help = "      --line-name-timeout S  seconds a line chat user has to give a name;\n"
             "                           default 30; 0: no limit\n"},
    {.key = "line_idle_timeout",
     .flag = "line-idle-timeout",
     .parse = set_number,
     FIELD(line_idle_timeout_s),
     .max = 86400,
     .help = "      --line-idle-timeout S  seconds a named line chat user may send\n"
             "                           nothing (an empty line will do); default 3600;\n"
             "                           0: no limit\n"},
    {.key = "term",
     .flag = "term",
     .parse = set_term,
     FIELD(terms),
     .help = "      --term NAME=COMMAND  a terminal the hub serves itself at /term/NAME\n"
             "                           (COMMAND through /bin/sh; repeatable)\n"},
    {.key = "term_idle_timeout",
     .flag = "term-idle-timeout",
     .parse = set_number,
     FIELD(term_idle_s),
     .max = 86400,
     .help = "      --term-idle-timeout S  seconds a terminal session (/term/NAME) may see\n"
             "                           no key and no output; default 3600; 0: no limit\n"},
    {.key = "irc_ping_timeout",
     .parse = set_number,
     FIELD(irc_ping_timeout_s),
     .min = 1,
     .max = 86400,
     .msg = "%s is 1 to 86400 seconds"},
    {.key = "irc_server_name", .parse = set_string, FIELD(irc_server_name)},
    {.key = "irc_oper_file", .parse = set_string, FIELD(irc_oper_file)},
    {.key = "auth_secret",
     .flag = "auth-secret",
     .parse = set_string,
     FIELD(auth_secret),
     .help = "      --auth-secret FILE   HS256 key for signed tokens (axon token)\n"},
    {.key = "password_file",
     .flag = "password-file",
     .parse = set_string,
     FIELD(password_file),
     .help = "      --password-file FILE  users and passwords (mosquitto_passwd format)\n"},
    {.key = "acl_file",
     .flag = "acl-file",
     .parse = set_string,
     FIELD(acl_file),
     .help = "      --acl-file FILE      what password users may do (mosquitto acl_file)\n"},
    {.key = "anonymous",
     .flag = "anonymous",
     .parse = set_word,
     FIELD(anonymous),
     .words = "none|read|readwrite",
     .msg = "'%s' is not none, read or readwrite",
     .help = "      --anonymous A        none, read or readwrite: what clients without\n"
             "                           credentials may do (docs/security.md)\n"},
    {.key = "metrics_access",
     .flag = "metrics-access",
     .parse = set_word,
     FIELD(metrics_access),
     .words = "loopback|admin|any",
     .msg = "'%s' is not loopback, admin or any",
     .help = "      --metrics-access W   loopback (default), admin or any: who may read\n"
             "                           /metrics and /dashboard\n"},
    {.key = "include", .parse = set_include},
    {.kind = K_HEADING,
     .help = "Limits (docs/config.md; RATE: 100/s, 10/min, 1MiB/s, '500/s burst 1000', off):\n"},
    {.flag = "max-connections",
     .kind = K_LIMIT,
     .help = "      --max-connections N  connections to the whole server; default 10000\n"},
    {.flag = "max-connections-per-ip",
     .kind = K_LIMIT,
     .help = "      --max-connections-per-ip N  from one address; default 256\n"},
    {.flag = "msg-rate",
     .kind = K_LIMIT,
     .help = "      --msg-rate RATE      messages per connection; default 1000/s burst 2000\n"},
    {.flag = "byte-rate",
     .kind = K_LIMIT,
     .help = "      --byte-rate RATE     bytes per connection; default 1MiB/s burst 2MiB\n"},
    {.flag = "ip-msg-rate",
     .kind = K_LIMIT,
     .help = "      --ip-msg-rate RATE   messages (and UDP datagrams) per address; default\n"
             "                           10000/s burst 20000\n"},
    {.flag = "ip-byte-rate",
     .kind = K_LIMIT,
     .help = "      --ip-byte-rate RATE  bytes per address; default 16MiB/s burst 32MiB\n"},
    {.flag = "login-fail-rate",
     .kind = K_LIMIT,
     .help = "      --login-fail-rate RATE  failed logins per address before its logins are\n"
             "                           refused unchecked; default 10/min burst 10\n"},
    {.flag = "quiet",
     .short_opt = 'q',
     .kind = K_QUIET,
     .help = "  -q, --quiet              do not print the addresses at start\n"},
    {.flag = "help",
     .short_opt = 'h',
     .kind = K_HELP,
     .help = "  -h, --help               show this help\n"},
};
/* clang-format on */
#define NSETTINGS ((int)(sizeof settings_table / sizeof settings_table[0]))

static void help(FILE *out)
{
    fputs("Usage: axon serve [OPTIONS]\n\n"
          "The real-time hub: chat rooms and live topics shared by terminals (line chat\n"
          "over TCP), browsers (WebSocket at /ws, Server-Sent Events, the chat page at /\n"
          "and /dashboard), programs (HTTP API) and devices (UDP datagrams), with\n"
          "history, resume, presence and Prometheus metrics (/metrics).\n\n"
          "Options (each overrides the same setting in the config file):\n",
          out);
    for (int i = 0; i < NSETTINGS; i++)
        if (settings_table[i].help) fputs(settings_table[i].help, out);
    fputs("\n"
          "Addresses are host:port, [v6]:port or URLs (tcp://, udp://, unix:///path).\n"
          "Use 0.0.0.0 to reach the hub from other machines (with --auth-secret or\n"
          "--password-file, or --anonymous to say anyone may).\n\n"
          "Examples:\n"
          "  axon serve\n"
          "  axon serve --http 0.0.0.0:80 --line off -d /var/lib/axon\n"
          "  axon serve -c /etc/axon/axon.conf --log-format json\n\n"
          "Then:  nc 127.0.0.1 7000      (line chat: your name, then talk)\n"
          "       curl -d hi http://127.0.0.1:8080/api/publish/chat/lobby\n"
          "       curl -N 'http://127.0.0.1:8080/sse?topic=chat/lobby'\n",
          out);
}

static const setting_def *find_key(const char *k)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (settings_table[i].key && strcmp(settings_table[i].key, k) == 0)
            return &settings_table[i];
    return NULL;
}

/* One `key value...` setting; 0, or -1 with a sentence in why. */
static int setting(serve_cfg *c, globals *gl, char **argv, int argc, const char *file, int depth,
                   char *why, size_t why_len)
{
    const setting_def *d = find_key(argv[0]);
    if (d) {
        set_ctx x = {c, gl, argv, argc, file, depth, why, why_len};
        return d->parse(d, &x);
    }
    if (limits_setting(c, argv, argc, why, why_len) != AX_ENOENT) return why[0] ? -1 : 0;
    snprintf(why, why_len, "unknown setting '%s'", argv[0]);
    return -1;
}

/* Split a line into words; "double quotes" keep spaces; a word that starts
 * with '#' begins a comment (*hash: whether that word was '#' alone, which
 * may have been meant as the topic pattern).  Returns the count. */
static int split(char *line, char **argv, int max, bool *hash)
{
    int n = 0;
    char *p = line;
    *hash = false;
    while (*p && n < max) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#') *hash = !p[1] || p[1] == ' ' || p[1] == '\t';
        if (!*p || *p == '#') break;
        if (*p == '"') {
            argv[n++] = ++p;
            while (*p && *p != '"')
                p++;
        } else {
            argv[n++] = p;
            while (*p && *p != ' ' && *p != '\t')
                p++;
        }
        if (*p) *p++ = '\0';
    }
    return n;
}

/* The settings of an open config file; `path` names it in messages and
 * anchors relative includes. */
static int read_config_from(serve_cfg *c, globals *gl, FILE *f, const char *path, int depth)
{
    char line[4096], why[512];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
            fprintf(stderr, "axon serve: %s:%d: line longer than %zu bytes\n", path, lineno,
                    sizeof line - 2);
            rc = -1;
            break;
        }
        /* fgets stops only at a newline, a full buffer or the end: a line
         * that stops short holds a NUL byte (a binary file, /dev/zero) */
        if (len < sizeof line - 1 && (len == 0 || line[len - 1] != '\n') && !feof(f)) {
            fprintf(stderr, "axon serve: %s:%d: a NUL byte in the line\n", path, lineno);
            rc = -1;
            break;
        }
        line[strcspn(line, "\r\n")] = '\0';
        char *argv[8];
        bool hash;
        int argc = split(line, argv, 8, &hash);
        if (argc == 0) continue;
        why[0] = '\0';
        if (setting(c, gl, argv, argc, path, depth, why, sizeof why) != 0) {
            if (why[0]) fprintf(stderr, "axon serve: %s:%d: %s\n", path, lineno, why);
            if (why[0] && hash)
                fprintf(stderr,
                        "axon serve: %s:%d: note: a word '#' starts a comment (the rest of the "
                        "line is ignored); for the topic pattern # write it quoted: \"#\"\n",
                        path, lineno);
            rc = -1;
            break;
        }
    }
    return rc;
}

static int read_config(serve_cfg *c, globals *gl, const char *path, int depth)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "axon serve: cannot read config %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = read_config_from(c, gl, f, path, depth);
    fclose(f);
    return rc;
}

/* Fill unset rule fields from the global settings; add the "#" rule. */
static void finish_rules(serve_cfg *c, const globals *gl)
{
    bool have_all = false;
    for (int i = 0; i < c->nrules; i++) {
        hub_rule *r = &c->rules[i];
        if (r->history_count == UINT32_MAX) r->history_count = (uint32_t)gl->history_count;
        if (r->history_age_s == UINT32_MAX) r->history_age_s = (uint32_t)gl->history_age;
        if (r->policy == HUB_POLICY_UNSET) r->policy = gl->policy;
        have_all |= strcmp(r->pattern, "#") == 0;
    }
    if (!have_all && c->nrules < SERVE_MAX_RULES)
        c->rules[c->nrules++] =
            (hub_rule){"#", (uint32_t)gl->history_count, (uint32_t)gl->history_age, gl->policy};
}

int serve__config_parse(serve_cfg *c, const char *text, size_t len, const char *path)
{
    globals gl = {1000, 0, HUB_DISCONNECT};
    defaults(c);
    FILE *f = len ? fmemopen((void *)text, len, "r") : NULL;
    if (len && !f) return -1;
    int rc = f ? read_config_from(c, &gl, f, path, 0) : 0;
    if (f) fclose(f);
    if (rc == 0) finish_rules(c, &gl);
    return rc;
}

/* ---- flags ------------------------------------------------------------------------ */

/* The getopt value of a row's flag: its letter, else past every letter. */
static int flag_val(int i)
{
    return settings_table[i].short_opt ? settings_table[i].short_opt : 1000 + i;
}

/* getopt_long's tables, from the settings table. */
static void make_options(struct option *longopts, char *shortopts)
{
    int n = 0;
    for (int i = 0; i < NSETTINGS; i++) {
        const setting_def *d = &settings_table[i];
        if (!d->flag) continue;
        bool arg = d->kind != K_QUIET && d->kind != K_HELP;
        longopts[n++] =
            (struct option){d->flag, arg ? required_argument : no_argument, NULL, flag_val(i)};
        if (d->short_opt) {
            *shortopts++ = d->short_opt;
            if (arg) *shortopts++ = ':';
        }
    }
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    *shortopts = '\0';
}

static const setting_def *by_val(int ch)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (settings_table[i].flag && flag_val(i) == ch) return &settings_table[i];
    return NULL;
}

/* One flag over the config file; 0, or 2 after saying what is wrong. */
static int apply_flag(serve_cfg *c, globals *gl, const setting_def *d, char *val)
{
    char why[512] = "", key[32];
    if (d->kind == K_QUIET) {
        c->quiet = true;
        return 0;
    }
    if (d->kind == K_CONFIG) return 0;
    const char *k = d->key;
    if (d->kind == K_LIMIT) { /* the key is the flag's name with '_' */
        snprintf(key, sizeof key, "%s", d->flag);
        for (char *p = key; *p; p++)
            if (*p == '-') *p = '_';
        k = key;
    } else if (d->kind == K_LISTEN) { /* --listen GATEWAY=ADDR */
        char *eq = strchr(val, '=');
        if (!eq || eq - val > 8) {
            fprintf(stderr,
                    "axon serve: --listen wants GATEWAY=ADDR (http, line or udp), "
                    "got '%s'\n",
                    val);
            return 2;
        }
        snprintf(key, sizeof key, "listen_%.*s", (int)(eq - val), val);
        k = key;
        val = eq + 1;
    }
    char *av[2] = {(char *)k, val};
    if (setting(c, gl, av, 2, "", 0, why, sizeof why) != 0) {
        fprintf(stderr, "axon serve: --%s: %s\n", d->flag, why);
        return 2;
    }
    return 0;
}

static int parse_args(int argc, char **argv, serve_cfg *c)
{
    static struct option longopts[NSETTINGS + 1];
    static char shortopts[2 * NSETTINGS + 1];
    make_options(longopts, shortopts);
    globals gl = {1000, 0, HUB_DISCONNECT};
    const char *config = NULL;
    int ch;
    /* First pass: the config file; second: the flags over it. */
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (ch == 'c') config = optarg;
        if (ch == 'h') {
            help(stdout);
            return 1;
        }
        if (ch == '?') {
            help(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "axon serve: unexpected argument '%s'\n\n", argv[optind]);
        help(stderr);
        return 2;
    }
    defaults(c);
    if (config && read_config(c, &gl, config, 0) != 0) return 2;
    optind = 1;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const setting_def *d = by_val(ch);
        int rc = d ? apply_flag(c, &gl, d, optarg) : 0;
        if (rc) return rc;
    }
    finish_rules(c, &gl);
    if (!serve_cfg_listens(c)) {
        fprintf(stderr, "axon serve: every gateway is off, so nobody could connect; turn on at "
                        "least one of --http, --line, --udp, --mqtt, --irc, --https, --line-tls, "
                        "--mqtts, --ircs, --rtmp\n");
        return 2;
    }
    return 0;
}

/* ---- running: src/hub/server.c ------------------------------------------------- */

int cmd_serve(int argc, char **argv)
{
    static serve_cfg cfg;
    int rc = parse_args(argc, argv, &cfg);
    if (rc) return rc == 1 ? 0 : rc;
    if (cfg.data_dir[0] && cli_mkdirs(cfg.data_dir, 0700) == -1) {
        fprintf(stderr, "axon serve: cannot make data directory %s: %s\n", cfg.data_dir,
                strerror(errno));
        return 1;
    }
    return serve_run(&cfg);
}
