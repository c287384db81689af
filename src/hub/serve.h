/* serve.h: what the gateways of `axon serve` share: the hub, the settings,
 * per-gateway counters for /metrics, and each gateway's start/stop. */
#ifndef AXON_HUB_SERVE_H
#define AXON_HUB_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <axon/axon.h>
#include <axon/http.h>

#include "hub.h"

enum gw_kind { GW_LINE, GW_UDP, GW_HTTP, GW_SSE, GW_WS, GW_COUNT };

/* Encoding cache slots of hub_msg (one per wire format). */
enum { ENC_LINE = 0, ENC_SSE = 1, ENC_WS = 2, ENC_UDP = 3 };

/* Counters are shared by the gateways of every thread. */
#define GW_ADD(field, n) __atomic_add_fetch(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define GW_SUB(field, n) __atomic_sub_fetch(&(field), (uint64_t)(n), __ATOMIC_RELAXED)

typedef struct gw_stats {
    uint64_t conns;    /* open now */
    uint64_t accepted; /* since start */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, errors;
} gw_stats;

#define SERVE_MAX_RULES 64
#define SERVE_URL_LEN 512

typedef struct serve_cfg {
    char http_url[SERVE_URL_LEN]; /* "" : off */
    char line_url[SERVE_URL_LEN];
    char udp_url[SERVE_URL_LEN];
    char https_url[SERVE_URL_LEN];    /* "" : off (the default) */
    char line_tls_url[SERVE_URL_LEN]; /* "" : off (the default) */
    char tls_cert[1024], tls_key[1024];
    char data_dir[1024]; /* "" : memory only */
    char log_file[1024]; /* "" : stderr */
    int fsync_mode;
    size_t store_queue, store_queue_bytes; /* the store's queue bound */
    hub_rule rules[SERVE_MAX_RULES];
    int nrules;
    size_t sub_budget, max_payload;
    size_t max_topics, max_subs; /* topics in the hub; subscriptions per client */
    uint32_t udp_lease_s;
    uint32_t max_line;
    int threads; /* loops sharing the ports (SO_REUSEPORT) */
    bool log_json, quiet;
    /* seconds; 0: the library's default (HTTP: 10 and 60; close: 10) */
    uint32_t http_header_timeout_s, http_idle_timeout_s, close_timeout_s;
    /* seconds; 0: none.  Name: from connecting to a valid name; idle: no
     * line (an empty one will do) after that */
    uint32_t line_name_timeout_s, line_idle_timeout_s;
    char access_log[1024]; /* "" : off; "-": stdout */
    int access_log_format; /* AX_HTTP_LOG_* */
} serve_cfg;

typedef struct gw_line gw_line;
typedef struct gw_udp gw_udp;
typedef struct gw_http gw_http;

typedef struct serve {
    ax_loop *loop;
    hub *hub;
    ax_tls_ctx *tls; /* for the TLS listeners, or NULL */
    const serve_cfg *cfg;
    gw_stats *gw; /* [GW_COUNT], shared by the threads */
    /* the HTTP servers of every thread add to it; /metrics derives
     * gw[GW_HTTP]'s connection and byte counters from it */
    ax_http_stats *http_stats;
    FILE *access_log; /* cfg->access_log opened, shared by the threads, or NULL */
    int64_t started_ms;
    gw_line *line;
    gw_udp *udp;
    gw_http *http;
    int index;         /* thread number; 0: the main thread */
    ax_timer *stopper; /* workers: drives their shutdown */
    uint64_t stop_by;
    bool aborted, done;
} serve;

/* Listener options for this thread: several threads share each port. */
ax_listen_opts serve_listen_opts(const serve *sv);

/* Each returns NULL with a sentence in `why` when it cannot listen. */
gw_line *gw_line_start(serve *sv, const char *url, char *why, size_t why_len);
/* One more listener on a running gateway, TLS with sv->tls. */
int gw_line_listen_tls(gw_line *g, const char *url, char *why, size_t why_len);
int gw_http_listen_tls(gw_http *g, const char *url, char *why, size_t why_len);
/* The address of that TLS listener ("tls://..."), or NULL. */
const char *gw_line_tls_addr(gw_line *g, char *buf, size_t len);
const char *gw_http_tls_addr(gw_http *g, char *buf, size_t len);
/* Stop listening and close every connection gracefully; then run the
 * loop until they are gone and call gw_line_free(). */
void gw_line_stop(gw_line *g);
void gw_line_abort(gw_line *g); /* those still open after the grace period */
void gw_line_free(gw_line *g);
size_t gw_line_count(const gw_line *g);
gw_udp *gw_udp_start(serve *sv, const char *url, char *why, size_t why_len);
void gw_udp_stop(gw_udp *g);
gw_http *gw_http_start(serve *sv, const char *url, char *why, size_t why_len);
void gw_http_stop(gw_http *g);
/* The address a gateway listens on ("tcp://127.0.0.1:8080"). */
const char *gw_line_addr(gw_line *g, char *buf, size_t len);
const char *gw_udp_addr(gw_udp *g, char *buf, size_t len);
const char *gw_http_addr(gw_http *g, char *buf, size_t len);
/* The HTTP server under the gateway, for more routes (pages, /ws). */
ax_http_server *gw_http_server(gw_http *g);
/* The WebSocket gateway: /ws on the HTTP server.  0 or a code.  At
 * shutdown: gw_ws_stop(false) sends every client a close (1001), the loop
 * runs until gw_ws_count() is 0 or time is up, gw_ws_stop(true) resets
 * the rest (their on_close comes on the next turn). */
typedef struct gw_ws gw_ws;
gw_ws *gw_ws_start(serve *sv, ax_http_server *srv, int *err);
void gw_ws_stop(gw_ws *g, bool now);
size_t gw_ws_count(const gw_ws *g);
void gw_ws_free(gw_ws *g);
/* The WebSocket gateway under an HTTP gateway. */
gw_ws *gw_http_ws(gw_http *g);
/* The browser pages (web/, compiled in): /, /dashboard and their assets. */
int gw_pages_start(serve *sv, ax_http_server *srv);

/* JSON for a message, shared by the WebSocket and SSE gateways and the
 * HTTP API: {"type":"message","topic":…,"seq":…,"time":…,"sender":…,
 * "payload":…} (binary payloads base64 with "encoding":"base64"; presence
 * and gap notices with their own "type").  Returns a malloc'd string (free
 * with free()) and its length, or NULL. */
char *serve_msg_json(const hub_msg *m, size_t *len);
/* The same as a jansson object (new reference), or NULL. */
struct json_t;
struct json_t *serve_msg_obj(const hub_msg *m);

/* A UDP request (gw_udp.c), parsed in place in a NUL-terminated buffer of
 * n bytes; pointers go into it.  0, or -1 for anything else. */
enum { UDP_PING = 1, UDP_PUB, UDP_SUB, UDP_UNSUB };
typedef struct udp_req {
    int cmd;
    const char *topic;   /* PUB, SUB, UNSUB */
    const char *since;   /* SUB: the optional resume seq, or NULL */
    const char *payload; /* PUB: may hold any bytes */
    size_t payload_len;
} udp_req;
int gw_udp_parse(char *buf, size_t n, udp_req *r);

/* The chat room a topic belongs to ("chat/lobby" -> "lobby"), or NULL. */
const char *serve_room_of(const char *topic);

#endif
