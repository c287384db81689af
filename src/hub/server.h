/* server.h: `axon serve` assembled: the settings, the state each thread's
 * gateways hang off, start-up, shutdown, threads, signals and metrics.
 * src/cli/serve.c turns flags and the config file into a serve_cfg and
 * calls serve_run(); the gateways are reached only through the registry
 * (gateway.h). */
#ifndef AXON_HUB_SERVER_H
#define AXON_HUB_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <axon/axon.h>
#include <axon/http.h>

#include "auth.h"
#include "gateway.h"
#include "hub.h"
#include "limit.h"

#define SERVE_MAX_RULES 64
#define SERVE_URL_LEN 512
#define SERVE_TERM_CMD_MAX 1024 /* bytes in a --term COMMAND */

/* Who may read /metrics and /dashboard. */
enum { SERVE_METRICS_LOOPBACK = 0, SERVE_METRICS_ADMIN = 1, SERVE_METRICS_ANY = 2 };

struct serve_cfg {
    char http_url[SERVE_URL_LEN]; /* "" : off */
    char line_url[SERVE_URL_LEN];
    char udp_url[SERVE_URL_LEN];
    char https_url[SERVE_URL_LEN];                        /* "" : off (the default) */
    char line_tls_url[SERVE_URL_LEN];                     /* "" : off (the default) */
    char irc_url[SERVE_URL_LEN], ircs_url[SERVE_URL_LEN]; /* IRC (gw_irc.c); "" : off */
    uint32_t irc_ping_timeout_s;  /* IRC: silence before a PING, then before closing; 0: 90 */
    char irc_server_name[64];     /* IRC: the server's name in replies; "": irc.axon */
    char irc_oper_file[1024];     /* IRC: OPER names and password hashes; "": none */
    char rtmp_url[SERVE_URL_LEN]; /* RTMP into the live relay (gw_rtmp.c); "" : off */
    char record_dir[1024];        /* live streams recorded here (live_rec.h); "" : off */
    /* MQTT (gw_mqtt.c, docs/mqtt.md): the listeners ("" : off), MQTT over
     * WebSocket at /mqtt on the HTTP listeners (while MQTT is on), QoS 1/2
     * messages sent and not yet acknowledged per client (its Receive
     * Maximum may lower it), messages kept per session while its client is
     * offline or behind, the longest session expiry a client may ask
     * (seconds; 3.1.1 persistent sessions get it), the longest keep alive
     * a client may ask (65535: any, even 0 = none), the topic prefix given
     * as 5.0 Response Information ("" : none) */
    char mqtt_url[SERVE_URL_LEN], mqtts_url[SERVE_URL_LEN];
    bool mqtt_ws_off;
    uint32_t mqtt_inflight, mqtt_queued, mqtt_session_expiry_s, mqtt_max_keepalive_s;
    char mqtt_response_prefix[128];
    char tls_cert[1024], tls_key[1024];
    char data_dir[1024]; /* "" : memory only; made before serve_run() */
    char redis[1024];    /* "" : one node; else the backplane's URL (redis.h) */
    bool redis_cluster;  /* --redis-cluster: a Redis Cluster even with one URL */
    char log_file[1024]; /* "" : stderr */
    int fsync_mode;
    size_t store_queue, store_queue_bytes; /* the store's queue bound */
    hub_rule rules[SERVE_MAX_RULES];
    int nrules;
    size_t sub_budget, max_payload;
    size_t max_topics, max_subs; /* topics in the hub; subscriptions per client */
    uint32_t udp_lease_s;
    uint32_t udp_cookie_s;    /* a UDP cookie's time window (valid for two) */
    char allow_origins[2048]; /* browser origins allowed besides the same one, comma-separated */
    uint32_t max_line;
    int threads; /* loops sharing the ports (SO_REUSEPORT) */
    bool log_json, quiet;
    uint32_t term_idle_s; /* terminals (gw_term.c): a session idle this long ends; 0: never */
    char terms[4096];     /* terminals the hub serves itself: NAME=COMMAND, one a line */
    /* seconds; 0: the library's default (HTTP: 10 and 60; close: 10) */
    uint32_t http_header_timeout_s, http_idle_timeout_s, close_timeout_s;
    /* seconds; 0: none.  Name: from connecting to a valid name; idle: no
     * line (an empty one will do) after that */
    uint32_t line_name_timeout_s, line_idle_timeout_s;
    char access_log[1024]; /* "" : off; "-": stdout */
    int access_log_format; /* AX_HTTP_LOG_* */
    /* Authentication (docs/security.md): the files ("" : none), and what
     * clients without credentials may do: AUTH_ANON_*, or -1 when not
     * said (then: readwrite with no auth configured and every listener on
     * loopback; refuse to start with no auth on another address; none
     * with auth configured). */
    char auth_secret[1024], password_file[1024], acl_file[1024];
    int anonymous;
    int metrics_access; /* SERVE_METRICS_*: who may read /metrics and /dashboard */
    /* How much one client may do (docs/config.md, "Limits"); a zeroed
     * one (ip_table_size 0) means no limits */
    hub_limits_conf limits;
    /* The gateways; NULL: serve_registry (gateway.h says what else may
     * be here) */
    const gw_ops *const *gateways;
    int ngateways;
};

/* One thread's server: what its gateways hang off. */
struct serve {
    ax_loop *loop;
    hub *hub;
    struct redis_bp *bp; /* the Redis backplane (shared), or NULL */
    ax_tls_ctx *tls;     /* for the TLS listeners, or NULL */
    const serve_cfg *cfg;
    const gw_ops *const *gws; /* the registry (serve_gateways_start sets it) */
    int ngw;
    void *inst[SERVE_MAX_GATEWAYS]; /* gws[i]'s instance on this thread, or NULL */
    gw_stats *gw;                   /* [ngw], shared by the threads */
    /* the HTTP servers of every thread add to it; /metrics derives
     * gw[GW_HTTP]'s connection and byte counters from it */
    ax_http_stats *http_stats;
    auth *auth;         /* the credentials and rules, shared by the threads (read-only) */
    hub_limits *limits; /* shared by the threads (thread-safe), or NULL: no limits */
    FILE *access_log;   /* cfg->access_log opened, shared by the threads, or NULL */
    int64_t started_ms;
    int index;         /* thread number; 0: the main thread */
    ax_timer *stopper; /* workers: drives their shutdown */
    uint64_t stop_by;
    bool aborted, done;
};

/* Run the server with these settings until SIGINT or SIGTERM: the hub,
 * the gateways on cfg->threads loops, the banner.  0, or 1 when it could
 * not start (it said why on stderr). */
int serve_run(const serve_cfg *cfg);

/* Whether any gateway of the registry has a listener on. */
bool serve_cfg_listens(const serve_cfg *cfg);

/* The parts of serve_run() for one thread's serve (sv->loop, hub, cfg,
 * gw set): start every gateway the settings turn on (0, or -1 with a
 * sentence in why; what did start is then to be freed), say goodbye,
 * reset the rest, count the connections still open, free. */
int serve_gateways_start(serve *sv, char *why, size_t why_len);
void serve_gateways_stop(serve *sv);
void serve_gateways_abort(serve *sv);
size_t serve_gateways_count(const serve *sv);
void serve_gateways_free(serve *sv);

/* Protected mode: whether the settings may start (0), or -1 with a
 * sentence saying how to fix them (a listener off loopback, no auth
 * configured, anonymous access not said). */
int serve_cfg_protected(const serve_cfg *cfg, char *why, size_t why_len);

/* The identity of a client that gave no credentials, or NULL (anonymous
 * access is off); the caller frees it. */
auth_identity *serve_anonymous(const serve *sv);
/* A credential from address `from` (NULL: not known), checked: a token
 * ("Bearer"), or "user:password".  NULL with the reason logged once.  An
 * address that has failed too many logins (login_fail_rate) is refused
 * without a check, and a failure counts against its address. */
auth_identity *serve_token(const serve *sv, const ax_addr *from, const char *token, size_t len);
auth_identity *serve_login(const serve *sv, const ax_addr *from, const char *user,
                           const char *password);
/* Log a refused client (bad credentials, none where they are needed) with
 * its address, once per client address per SERVE_REFUSED_LOG_MS, not
 * once per attempt.  `gw` names the gateway; `why` NULL: the reason of
 * this thread's last refused serve_token()/serve_login().  `sv` may be
 * NULL. */
#define SERVE_REFUSED_LOG_MS 60000
void serve_refused(const serve *sv, const char *gw, const ax_addr *peer, const char *why);
/* May this client read /metrics and /dashboard (id: its identity or NULL,
 * loopback: its address is a loopback one)? */
bool serve_metrics_allowed(const serve *sv, const auth_identity *id, bool loopback);

/* 0 when `url` is a --redis URL the backplane takes, or -1 with a
 * sentence in why (redis.h, redis_url_parse). */
int serve_redis_url_check(const char *url, char *why, size_t why_len);

/* Is the node healthy (/healthz)?  Without Redis, always; with it, when
 * the link is fresh (redis_bp_healthy); `why` says.  Any thread. */
bool serve_healthy(const serve *sv, char *why, size_t why_len);

/* Prometheus text for /metrics (malloc'd, free with ax_free()), or NULL. */
char *serve_metrics(serve *sv, size_t *len);
/* The start-up banner: the addresses in the log, then (hints) how to
 * connect, on out. */
void serve_log_addrs(serve *sv);
void serve_hints(serve *sv, FILE *out);

#endif
