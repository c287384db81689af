/* serve.c: `axon serve`, the real-time hub: its settings (a config file in
 * the style of mosquitto and Redis, then flags over it), turned into a
 * serve_cfg for the server (src/hub/server.c), which does the rest. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <axon/axon.h>

#include "cli.h"
#include "hub/server.h"

#define MAX_INCLUDE_DEPTH 8

static void help(FILE *out)
{
    fprintf(out,
            "Usage: axon serve [OPTIONS]\n\n"
            "The real-time hub: chat rooms and live topics shared by terminals (line chat\n"
            "over TCP), browsers (WebSocket at /ws, Server-Sent Events, the chat page at /\n"
            "and /dashboard), programs (HTTP API) and devices (UDP datagrams), with\n"
            "history, resume, presence and Prometheus metrics (/metrics).\n\n"
            "Options (each overrides the same setting in the config file):\n"
            "  -c, --config FILE        read settings from FILE (docs/config.md)\n"
            "      --http ADDR          HTTP API, SSE, metrics; default 127.0.0.1:8080; off\n"
            "      --line ADDR          line chat for nc/telnet; default 127.0.0.1:7000; off\n"
            "      --udp ADDR           UDP datagrams; default 127.0.0.1:7001; off\n"
            "  -l, --listen GW=ADDR     the same as --http/--line/--udp: http=0.0.0.0:80\n"
            "      --https ADDR         HTTPS and wss:// too (needs --cert); default off\n"
            "      --line-tls ADDR      line chat over TLS too (needs --cert); default off\n"
            "      --irc ADDR           IRC, channels are chat rooms; default 127.0.0.1:6667;\n"
            "                           off (docs/irc.md)\n"
            "      --ircs ADDR          IRC over TLS (needs --cert); default off\n"
            "      --rtmp ADDR          RTMP live streams in and out; default 127.0.0.1:1935;\n"
            "                           off (docs/streaming.md)\n"
            "      --mqtt ADDR          MQTT 3.1.1/5.0 broker; default 127.0.0.1:1883; off\n"
            "                           (also MQTT over WebSocket at /mqtt on --http)\n"
            "      --mqtts ADDR         MQTT over TLS (needs --cert); default off\n"
            "      --cert FILE          TLS certificate, PEM (make one: axon cert)\n"
            "      --key FILE           TLS private key, PEM; default: in --cert\n"
            "  -d, --data DIR           history store (SQLite); default ./axon-data; 'none'\n"
            "                           keeps history in memory only\n"
            "      --fsync MODE         when a publish is acknowledged (HTTP 200, WebSocket\n"
            "                           ok, UDP OK): always: on disk (fsync'd group commit);\n"
            "                           batch (default): committed, survives a crash of the\n"
            "                           process, a power cut may lose the last 200 ms; off:\n"
            "                           queued in memory\n"
            "      --store-queue N      messages waiting for the store before publishers are\n"
            "                           told to slow down (HTTP 503); default 100000\n"
            "      --store-queue-bytes N  the same in bytes; default 67108864 (64 MiB)\n"
            "      --history N          messages kept per topic; default 1000\n"
            "      --redis URL          share topics with other nodes through Redis:\n"
            "                           redis://[user:pass@]host[:port][/db] or\n"
            "                           unix://path (docs/cluster.md); history is then\n"
            "                           Redis's, -d is not used for messages\n"
            "      --redis-cluster URLS a Redis Cluster (sharded pub/sub): one or more of\n"
            "                           its nodes' URLs, comma-separated\n"
            "      --max-topics N       topics that may exist at once; default 100000\n"
            "      --max-subs N         subscriptions per connection; default 10000\n"
            "      --allow-origin LIST  browser origins (comma-separated, e.g.\n"
            "                           https://app.example) allowed besides the hub's own\n"
            "                           and loopback ones; '*': any\n"
            "  -t, --threads N          N event loops (threads) sharing the ports; default 1\n"
            "      --log-format F       text (default) or json\n"
            "      --log-file PATH      log there instead of stderr (reopened on SIGHUP)\n"
            "      --access-log PATH    one line per HTTP response there ('-': stdout);\n"
            "                           default off (reopened on SIGHUP)\n"
            "      --access-log-format F  common (default), combined or json\n"
            "      --header-timeout S   seconds an HTTP request head may take; default 10\n"
            "      --idle-timeout S     seconds an idle HTTP keep-alive connection stays;\n"
            "                           default 60\n"
            "      --close-timeout S    seconds a closing connection may stall flushing,\n"
            "                           then wait for the peer's FIN; default 10\n"
            "      --line-name-timeout S  seconds a line chat user has to give a name;\n"
            "                           default 30; 0: no limit\n"
            "      --line-idle-timeout S  seconds a named line chat user may send\n"
            "                           nothing (an empty line will do); default 3600;\n"
            "                           0: no limit\n"
            "      --term NAME=COMMAND  a terminal the hub serves itself at /term/NAME\n"
            "                           (COMMAND through /bin/sh; repeatable)\n"
            "      --term-idle-timeout S  seconds a terminal session (/term/NAME) may see\n"
            "                           no key and no output; default 3600; 0: no limit\n"
            "      --auth-secret FILE   HS256 key for signed tokens (axon token)\n"
            "      --password-file FILE  users and passwords (mosquitto_passwd format)\n"
            "      --acl-file FILE      what password users may do (mosquitto acl_file)\n"
            "      --anonymous A        none, read or readwrite: what clients without\n"
            "                           credentials may do (docs/security.md)\n"
            "      --metrics-access W   loopback (default), admin or any: who may read\n"
            "                           /metrics and /dashboard\n"
            "Limits (docs/config.md; RATE: 100/s, 10/min, 1MiB/s, '500/s burst 1000', off):\n"
            "      --max-connections N  connections to the whole server; default 10000\n"
            "      --max-connections-per-ip N  from one address; default 256\n"
            "      --msg-rate RATE      messages per connection; default 1000/s burst 2000\n"
            "      --byte-rate RATE     bytes per connection; default 1MiB/s burst 2MiB\n"
            "      --ip-msg-rate RATE   messages (and UDP datagrams) per address; default\n"
            "                           10000/s burst 20000\n"
            "      --ip-byte-rate RATE  bytes per address; default 16MiB/s burst 32MiB\n"
            "      --login-fail-rate RATE  failed logins per address before its logins are\n"
            "                           refused unchecked; default 10/min burst 10\n"
            "  -q, --quiet              do not print the addresses at start\n"
            "  -h, --help               show this help\n\n"
            "Addresses are host:port, [v6]:port or URLs (tcp://, udp://, unix:///path).\n"
            "Use 0.0.0.0 to reach the hub from other machines (with --auth-secret or\n"
            "--password-file, or --anonymous to say anyone may).\n\n"
            "Examples:\n"
            "  axon serve\n"
            "  axon serve --http 0.0.0.0:80 --line off -d /var/lib/axon\n"
            "  axon serve -c /etc/axon/axon.conf --log-format json\n\n"
            "Then:  nc 127.0.0.1 7000      (line chat: your name, then talk)\n"
            "       curl -d hi http://127.0.0.1:8080/api/publish/chat/lobby\n"
            "       curl -N 'http://127.0.0.1:8080/sse?topic=chat/lobby'\n");
}

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
    snprintf(c->mqtt_url, sizeof c->mqtt_url, "tcp://127.0.0.1:1883");
    c->mqtt_inflight = 100;
    c->mqtt_queued = 1000;
    c->mqtt_session_expiry_s = 86400 * 7;
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
    c->term_idle_s = 3600;
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

/* The field of a timeout setting (in seconds), or NULL. */
static uint32_t *timeout_field(serve_cfg *c, const char *k)
{
    if (strcmp(k, "http_header_timeout") == 0) return &c->http_header_timeout_s;
    if (strcmp(k, "http_idle_timeout") == 0) return &c->http_idle_timeout_s;
    if (strcmp(k, "close_timeout") == 0) return &c->close_timeout_s;
    if (strcmp(k, "line_name_timeout") == 0) return &c->line_name_timeout_s;
    if (strcmp(k, "line_idle_timeout") == 0) return &c->line_idle_timeout_s;
    if (strcmp(k, "irc_ping_timeout") == 0) return &c->irc_ping_timeout_s;
    if (strcmp(k, "term_idle_timeout") == 0) return &c->term_idle_s;
    return NULL;
}

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

/* One `key value...` setting; 0, or -1 with a sentence in why. */
static int setting(serve_cfg *c, globals *gl, char **argv, int argc, const char *file, int depth,
                   char *why, size_t why_len)
{
    const char *k = argv[0], *v = argc > 1 ? argv[1] : "";
    uint64_t n;
#define WANT(cnt)                                                                                  \
    do {                                                                                           \
        if (argc != (cnt) + 1) {                                                                   \
            snprintf(why, why_len, "'%s' takes %d value%s", k, (cnt), (cnt) == 1 ? "" : "s");      \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)
    if (strcmp(k, "listen_http") == 0) {
        WANT(1);
        return set_addr(c->http_url, sizeof c->http_url, "tcp", v, why, why_len);
    } else if (strcmp(k, "listen_line") == 0) {
        WANT(1);
        return set_addr(c->line_url, sizeof c->line_url, "tcp", v, why, why_len);
    } else if (strcmp(k, "listen_udp") == 0) {
        WANT(1);
        return set_addr(c->udp_url, sizeof c->udp_url, "udp", v, why, why_len);
    } else if (strcmp(k, "listen_https") == 0) {
        WANT(1);
        return set_addr(c->https_url, sizeof c->https_url, "tls", v, why, why_len);
    } else if (strcmp(k, "listen_irc") == 0) {
        WANT(1);
        return set_addr(c->irc_url, sizeof c->irc_url, "tcp", v, why, why_len);
    } else if (strcmp(k, "listen_ircs") == 0) {
        WANT(1);
        return set_addr(c->ircs_url, sizeof c->ircs_url, "tls", v, why, why_len);
    } else if (strcmp(k, "listen_rtmp") == 0) {
        WANT(1);
        return set_addr(c->rtmp_url, sizeof c->rtmp_url, "tcp", v, why, why_len);
    } else if (strcmp(k, "listen_line_tls") == 0) {
        WANT(1);
        return set_addr(c->line_tls_url, sizeof c->line_tls_url, "tls", v, why, why_len);
    } else if (strcmp(k, "listen_mqtt") == 0) {
        WANT(1);
        return set_addr(c->mqtt_url, sizeof c->mqtt_url, "tcp", v, why, why_len);
    } else if (strcmp(k, "listen_mqtts") == 0) {
        WANT(1);
        return set_addr(c->mqtts_url, sizeof c->mqtts_url, "tls", v, why, why_len);
    } else if (strcmp(k, "mqtt_websocket") == 0) {
        WANT(1);
        if (strcmp(v, "on") && strcmp(v, "off")) {
            snprintf(why, why_len, "mqtt_websocket is on or off, not '%s'", v);
            return -1;
        }
        c->mqtt_ws_off = strcmp(v, "off") == 0;
    } else if (strcmp(k, "mqtt_inflight") == 0 || strcmp(k, "mqtt_queued") == 0 ||
               strcmp(k, "mqtt_session_expiry") == 0) {
        WANT(1);
        uint64_t max = k[5] == 'i' ? 65535 : k[5] == 'q' ? 10000000 : 0xFFFFFFFFu;
        if (parse_u64(v, max, &n, why, why_len)) return -1;
        if (n == 0 && k[5] == 'i') {
            snprintf(why, why_len, "mqtt_inflight is 1 to 65535");
            return -1;
        }
        *(k[5] == 'i'   ? &c->mqtt_inflight
          : k[5] == 'q' ? &c->mqtt_queued
                        : &c->mqtt_session_expiry_s) = (uint32_t)n;
    } else if (strcmp(k, "tls_cert") == 0) {
        WANT(1);
        snprintf(c->tls_cert, sizeof c->tls_cert, "%s", v);
    } else if (strcmp(k, "tls_key") == 0) {
        WANT(1);
        snprintf(c->tls_key, sizeof c->tls_key, "%s", v);
    } else if (strcmp(k, "redis") == 0 || strcmp(k, "redis_cluster") == 0) {
        WANT(1);
        if (serve_redis_url_check(v, why, why_len) != 0) return -1;
        snprintf(c->redis, sizeof c->redis, "%s", v);
        c->redis_cluster = k[5] == '_';
    } else if (strcmp(k, "data_dir") == 0) {
        WANT(1);
        snprintf(c->data_dir, sizeof c->data_dir, "%s", strcmp(v, "none") ? v : "");
    } else if (strcmp(k, "fsync") == 0) {
        WANT(1);
        if (strcmp(v, "always") == 0)
            c->fsync_mode = HUB_FSYNC_ALWAYS;
        else if (strcmp(v, "batch") == 0)
            c->fsync_mode = HUB_FSYNC_BATCH;
        else if (strcmp(v, "off") == 0)
            c->fsync_mode = HUB_FSYNC_OFF;
        else {
            snprintf(why, why_len, "fsync is always, batch or off, not '%s'", v);
            return -1;
        }
    } else if (strcmp(k, "store_queue") == 0) {
        WANT(1);
        if (parse_u64(v, 10000000, &n, why, why_len)) return -1;
        c->store_queue = (size_t)(n ? n : 1);
    } else if (strcmp(k, "store_queue_bytes") == 0) {
        WANT(1);
        if (parse_u64(v, (uint64_t)16 << 30, &n, why, why_len)) return -1;
        if (n < 65536) {
            snprintf(why, why_len, "store_queue_bytes must be at least 65536");
            return -1;
        }
        c->store_queue_bytes = (size_t)n;
    } else if (strcmp(k, "history_count") == 0) {
        WANT(1);
        return parse_u64(v, 1000000, &gl->history_count, why, why_len);
    } else if (strcmp(k, "history_age") == 0) {
        WANT(1);
        return parse_u64(v, 100u * 365 * 86400, &gl->history_age, why, why_len);
    } else if (strcmp(k, "slow_consumer") == 0 && argc == 2) {
        return parse_policy(v, &gl->policy, why, why_len);
    } else if (strcmp(k, "slow_consumer") == 0) {
        WANT(2);
        hub_rule *r = rule(c, argv[1], why, why_len);
        return r ? parse_policy(argv[2], &r->policy, why, why_len) : -1;
    } else if (strcmp(k, "history") == 0) {
        if (argc != 3 && argc != 4) {
            snprintf(why, why_len, "'history' takes a pattern, a count and maybe an age");
            return -1;
        }
        hub_rule *r = rule(c, argv[1], why, why_len);
        uint64_t cnt, age = 0;
        if (!r || parse_u64(argv[2], 1000000, &cnt, why, why_len) ||
            (argc == 4 && parse_u64(argv[3], 100u * 365 * 86400, &age, why, why_len)))
            return -1;
        r->history_count = (uint32_t)cnt;
        r->history_age_s = argc == 4 ? (uint32_t)age : UINT32_MAX;
    } else if (strcmp(k, "subscriber_budget") == 0) {
        WANT(1);
        if (parse_u64(v, 1u << 30, &n, why, why_len)) return -1;
        c->sub_budget = n;
    } else if (strcmp(k, "max_payload") == 0) {
        WANT(1);
        if (parse_u64(v, 64u << 20, &n, why, why_len)) return -1;
        if (n == 0) {
            snprintf(why, why_len, "max_payload must be at least 1 byte");
            return -1;
        }
        c->max_payload = n;
    } else if (strcmp(k, "max_topics") == 0 || strcmp(k, "max_subscriptions") == 0) {
        WANT(1);
        if (parse_u64(v, 100000000, &n, why, why_len)) return -1;
        if (n == 0) {
            snprintf(why, why_len, "%s must be at least 1", k);
            return -1;
        }
        *(k[4] == 't' ? &c->max_topics : &c->max_subs) = n;
    } else if (strcmp(k, "max_line") == 0) {
        WANT(1);
        if (parse_u64(v, 65536, &n, why, why_len)) return -1;
        c->max_line = (uint32_t)(n < 16 ? 16 : n);
    } else if (strcmp(k, "udp_lease") == 0) {
        WANT(1);
        if (parse_u64(v, 86400, &n, why, why_len)) return -1;
        c->udp_lease_s = (uint32_t)(n ? n : 1);
    } else if (strcmp(k, "udp_cookie") == 0) {
        WANT(1);
        if (parse_u64(v, 3600, &n, why, why_len)) return -1;
        c->udp_cookie_s = (uint32_t)(n ? n : 1);
    } else if (strcmp(k, "allow_origins") == 0) {
        if (argc < 2) {
            snprintf(why, why_len, "'%s' takes a list of origins", k);
            return -1;
        }
        c->allow_origins[0] = '\0';
        for (int i = 1; i < argc; i++) {
            size_t l = strlen(c->allow_origins);
            snprintf(c->allow_origins + l, sizeof c->allow_origins - l, "%s%s", l ? "," : "",
                     argv[i]);
        }
    } else if (strcmp(k, "term") == 0) { /* NAME=COMMAND (gw_term.c), repeatable */
        size_t l = strlen(c->terms);
        if (argc < 2 || !strchr(v, '=') || strchr(v, '=') == v) {
            snprintf(why, why_len, "'%s' takes NAME=COMMAND", k);
            return -1;
        }
        for (int i = 1; i < argc; i++)
            l += (size_t)snprintf(c->terms + l, l < sizeof c->terms ? sizeof c->terms - l : 0,
                                  "%s%s", i > 1 ? " " : "", argv[i]);
        if (l + 1 >= sizeof c->terms) {
            snprintf(why, why_len, "too many terminals (%zu bytes at most)", sizeof c->terms);
            return -1;
        }
        c->terms[l] = '\n';
        c->terms[l + 1] = '\0';
    } else if (strcmp(k, "threads") == 0) {
        WANT(1);
        if (parse_u64(v, 64, &n, why, why_len)) return -1;
        if (n == 0) {
            snprintf(why, why_len, "threads is 1 to 64");
            return -1;
        }
        c->threads = (int)n;
    } else if (strcmp(k, "log_format") == 0) {
        WANT(1);
        if (strcmp(v, "json") && strcmp(v, "text")) {
            snprintf(why, why_len, "log_format is text or json, not '%s'", v);
            return -1;
        }
        c->log_json = strcmp(v, "json") == 0;
    } else if (strcmp(k, "log_file") == 0) {
        WANT(1);
        snprintf(c->log_file, sizeof c->log_file, "%s", v);
    } else if (strcmp(k, "access_log") == 0) {
        WANT(1);
        snprintf(c->access_log, sizeof c->access_log, "%s", strcmp(v, "off") ? v : "");
    } else if (strcmp(k, "access_log_format") == 0) {
        WANT(1);
        static const char *fmts[] = {"common", "combined", "json"};
        int f = 0;
        while (f < 3 && strcmp(v, fmts[f]))
            f++;
        if (f == 3) {
            snprintf(why, why_len, "access_log_format is common, combined or json, not '%s'", v);
            return -1;
        }
        c->access_log_format = f; /* AX_HTTP_LOG_COMMON, _COMBINED, _JSON */
    } else if (timeout_field(c, k)) {
        WANT(1);
        if (parse_u64(v, 86400, &n, why, why_len)) return -1;
        if (n == 0 && strncmp(k, "line_", 5) != 0) {
            snprintf(why, why_len, "%s is 1 to 86400 seconds", k);
            return -1;
        }
        *timeout_field(c, k) = (uint32_t)n;
    } else if (strcmp(k, "auth_secret") == 0 || strcmp(k, "password_file") == 0 ||
               strcmp(k, "acl_file") == 0) {
        WANT(1);
        char *dst = k[0] == 'a' && k[1] == 'u' ? c->auth_secret
                    : k[0] == 'p'              ? c->password_file
                                               : c->acl_file;
        snprintf(dst, sizeof c->auth_secret, "%s", v);
    } else if (strcmp(k, "anonymous") == 0) {
        WANT(1);
        static const char *names[] = {"none", "read", "readwrite"};
        c->anonymous = -2;
        for (int i = 0; i < 3; i++)
            if (strcmp(v, names[i]) == 0) c->anonymous = i;
        if (c->anonymous == -2) {
            snprintf(why, why_len, "'%s' is not none, read or readwrite", v);
            return -1;
        }
    } else if (strcmp(k, "metrics_access") == 0) {
        WANT(1);
        static const char *names[] = {"loopback", "admin", "any"};
        c->metrics_access = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(v, names[i]) == 0) c->metrics_access = i;
        if (c->metrics_access < 0) {
            snprintf(why, why_len, "'%s' is not loopback, admin or any", v);
            return -1;
        }
    } else if (strcmp(k, "include") == 0) {
        WANT(1);
        char inc[1024];
        const char *slash = strrchr(file, '/');
        if (v[0] != '/' && slash) /* relative to the including file */
            snprintf(inc, sizeof inc, "%.*s/%s", (int)(slash - file), file, v);
        else
            snprintf(inc, sizeof inc, "%s", v);
        if (depth >= MAX_INCLUDE_DEPTH) {
            snprintf(why, why_len, "includes nested deeper than %d", MAX_INCLUDE_DEPTH);
            return -1;
        }
        if (access(inc, R_OK) != 0) {
            snprintf(why, why_len, "cannot read included file %.300s: %s", inc, strerror(errno));
            return -1;
        }
        if (read_config(c, gl, inc, depth + 1) != 0) {
            why[0] = '\0'; /* the included file said what was wrong */
            return -1;
        }
    } else if (limits_setting(c, argv, argc, why, why_len) != AX_ENOENT) {
        return why[0] ? -1 : 0;
    } else {
        snprintf(why, why_len, "unknown setting '%s'", k);
        return -1;
    }
    return 0;
#undef WANT
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

static int parse_args(int argc, char **argv, serve_cfg *c)
{
    /* clang-format off: the table grows at its end */
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"http", required_argument, NULL, 'H'},
        {"line", required_argument, NULL, 'L'},
        {"udp", required_argument, NULL, 'U'},
        {"data", required_argument, NULL, 'd'},
        {"fsync", required_argument, NULL, 'F'},
        {"history", required_argument, NULL, 'N'},
        {"log-format", required_argument, NULL, 'j'},
        {"log-file", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"listen", required_argument, NULL, 'l'},
        {"threads", required_argument, NULL, 't'},
        {"https", required_argument, NULL, 'S'},
        {"line-tls", required_argument, NULL, 'T'},
        {"cert", required_argument, NULL, 'C'},
        {"key", required_argument, NULL, 'K'},
        {"access-log", required_argument, NULL, 'A'},
        {"access-log-format", required_argument, NULL, 'f'},
        {"header-timeout", required_argument, NULL, 'g'},
        {"idle-timeout", required_argument, NULL, 'i'},
        {"close-timeout", required_argument, NULL, 'x'},
        {"line-name-timeout", required_argument, NULL, 'n'},
        {"line-idle-timeout", required_argument, NULL, 'm'},
        {"max-topics", required_argument, NULL, 'M'},
        {"max-subs", required_argument, NULL, 'B'},
        {"store-queue", required_argument, NULL, 'Q'},
        {"store-queue-bytes", required_argument, NULL, 'W'},
        {"auth-secret", required_argument, NULL, 'a'},
        {"password-file", required_argument, NULL, 'P'},
        {"acl-file", required_argument, NULL, 'Y'},
        {"anonymous", required_argument, NULL, 'y'},
        {"metrics-access", required_argument, NULL, 'G'},
        {"allow-origin", required_argument, NULL, 'O'},
        {"max-connections", required_argument, NULL, 'e'},
        {"max-connections-per-ip", required_argument, NULL, 'I'},
        {"msg-rate", required_argument, NULL, 'r'},
        {"byte-rate", required_argument, NULL, 'b'},
        {"ip-msg-rate", required_argument, NULL, 'R'},
        {"ip-byte-rate", required_argument, NULL, 'X'},
        {"login-fail-rate", required_argument, NULL, 'z'},
        {"mqtt", required_argument, NULL, 'J'},
        {"mqtts", required_argument, NULL, 'V'},
        {"irc", required_argument, NULL, 1001},
        {"ircs", required_argument, NULL, 1002},
        {"term-idle-timeout", required_argument, NULL, 1003},
        {"term", required_argument, NULL, 1004},
        {"rtmp", required_argument, NULL, 1005},
        {"redis", required_argument, NULL, 'E'},
        {"redis-cluster", required_argument, NULL, 1017},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const char *keys[128] = {['H'] = "listen_http",
                                    ['L'] = "listen_line",
                                    ['U'] = "listen_udp",
                                    ['d'] = "data_dir",
                                    ['F'] = "fsync",
                                    ['N'] = "history_count",
                                    ['j'] = "log_format",
                                    ['o'] = "log_file",
                                    ['S'] = "listen_https",
                                    ['T'] = "listen_line_tls",
                                    ['C'] = "tls_cert",
                                    ['K'] = "tls_key",
                                    ['t'] = "threads",
                                    ['A'] = "access_log",
                                    ['f'] = "access_log_format",
                                    ['g'] = "http_header_timeout",
                                    ['i'] = "http_idle_timeout",
                                    ['x'] = "close_timeout",
                                    ['n'] = "line_name_timeout",
                                    ['m'] = "line_idle_timeout",
                                    ['M'] = "max_topics",
                                    ['B'] = "max_subscriptions",
                                    ['Q'] = "store_queue",
                                    ['W'] = "store_queue_bytes",
                                    ['a'] = "auth_secret",
                                    ['P'] = "password_file",
                                    ['Y'] = "acl_file",
                                    ['y'] = "anonymous",
                                    ['G'] = "metrics_access",
                                    ['O'] = "allow_origins",
                                    ['e'] = "max_connections",
                                    ['I'] = "max_connections_per_ip",
                                    ['r'] = "msg_rate",
                                    ['b'] = "byte_rate",
                                    ['R'] = "ip_msg_rate",
                                    ['X'] = "ip_byte_rate",
                                    ['z'] = "login_fail_rate",
                                    ['J'] = "listen_mqtt",
                                    ['V'] = "listen_mqtts",
                                    ['E'] = "redis"};
    /* clang-format on */
    globals gl = {1000, 0, HUB_DISCONNECT};
    const char *config = NULL;
    int ch;
    /* First pass: the config file; second: the flags over it. */
    while ((ch = getopt_long(argc, argv, "c:d:l:t:qh", longopts, NULL)) != -1) {
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
    while ((ch = getopt_long(argc, argv, "c:d:l:t:qh", longopts, NULL)) != -1) {
        if (ch == 'q') {
            c->quiet = true;
            continue;
        }
        char why[512] = "", lkey[32];
        const char *key = ch >= 0 && ch < 128 ? keys[ch] : NULL;
        if (ch == 1001 || ch == 1002) key = ch == 1001 ? "listen_irc" : "listen_ircs";
        if (ch == 1003) key = "term_idle_timeout";
        if (ch == 1004) key = "term";
        if (ch == 1005) key = "listen_rtmp";
        if (ch == 1017) key = "redis_cluster";
        char *val = optarg;
        if (ch == 'l') { /* --listen GATEWAY=ADDR */
            char *eq = strchr(optarg, '=');
            if (!eq || eq - optarg > 8) {
                fprintf(stderr,
                        "axon serve: --listen wants GATEWAY=ADDR (http, line or udp), "
                        "got '%s'\n",
                        optarg);
                return 2;
            }
            snprintf(lkey, sizeof lkey, "listen_%.*s", (int)(eq - optarg), optarg);
            key = lkey;
            val = eq + 1;
        }
        if (ch == 'c' || !key) continue;
        char *av[2] = {(char *)key, val};
        if (setting(c, &gl, av, 2, "", 0, why, sizeof why) != 0) {
            const char *flag = key;
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == ch) flag = o->name;
            fprintf(stderr, "axon serve: --%s: %s\n", flag, why);
            return 2;
        }
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
