/* gateway.h: the one interface every gateway of `axon serve` fills, and the
 * registry the server walks (start-up, shutdown, /metrics, the banner).
 *
 * A gateway translates one protocol to hub operations.  It is one file in
 * src/hub that defines a `const gw_ops gw_NAME_gateway` and keeps
 * everything else static; the server (server.c) never calls a gateway by
 * name, only through this table, in registry order.  The model is nginx's
 * modules iterated by the core and Redis's ConnectionType.
 *
 * Two kinds: a listening gateway has start() (line chat, UDP, HTTP); a
 * mounted gateway has mount() and lives on the HTTP server of a host
 * gateway (one whose http() answers) before it in the registry (SSE,
 * WebSocket; later MQTT over WebSocket, streams).
 *
 * Lifetime, per thread (each thread has its own instances; the counters
 * in serve.gw[] are shared by all threads, so they are atomics):
 *   start/mount -> listen_tls -> ... -> stop (goodbye) -> the loop runs
 *   until count() is 0 or the grace period ends -> abort (reset the rest)
 *   -> the loop runs until count() is 0 -> free, in reverse registry order
 *   (so a mounted gateway goes before its host's HTTP server).
 *
 * Adding a gateway (e.g. MQTT):
 *   1. src/hub/gw_mqtt.c: its code, and `const gw_ops gw_mqtt_gateway`
 *      filled with what it needs (NULL for what it does not; only name
 *      and start or mount are required).
 *   2. One line in SERVE_GATEWAYS below: X(GW_MQTT, gw_mqtt_gateway).
 *      GW_MQTT indexes its counters: sv->gw[GW_MQTT].
 *   3. Its settings: fields in serve_cfg (server.h), their config keys and
 *      flags in src/cli/serve.c; its url()/tls_url() read them.
 *   4. Its docs: docs/config.md (settings), docs/protocol.md (the wire).
 * Nothing else: /metrics lists it (axon_*{gateway="mqtt"}), the banner
 * prints its log_addrs()/hints(), shutdown drains it. */
#ifndef AXON_HUB_GATEWAY_H
#define AXON_HUB_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <axon/axon.h>
#include <axon/http.h>

/* Counters are shared by the gateways of every thread. */
#define GW_ADD(field, n) __atomic_add_fetch(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define GW_SUB(field, n) __atomic_sub_fetch(&(field), (uint64_t)(n), __ATOMIC_RELAXED)

/* One gateway's counters, as /metrics shows them. */
typedef struct gw_stats {
    uint64_t conns;    /* open now */
    uint64_t accepted; /* since start */
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, errors;
} gw_stats;

typedef struct serve serve;
typedef struct serve_cfg serve_cfg;

/* A gateway.  `g` is what start() or mount() returned (this thread's
 * instance).  Every function but name and start/mount may be NULL. */
typedef struct gw_ops {
    const char *name; /* in /metrics: gateway="NAME" */
    /* Where it listens, from the settings: a URL, or NULL when off.  A
     * gateway is started when either is on (url NULL: TLS only). */
    const char *(*url)(const serve_cfg *c);
    const char *(*tls_url)(const serve_cfg *c);
    const char *tls_setting; /* the config key of tls_url, for messages */
    /* Listen on url (NULL: none yet); NULL with a sentence in why. */
    void *(*start)(serve *sv, const char *url, char *why, size_t why_len);
    /* Or: add routes to a host gateway's HTTP server; NULL with why. */
    void *(*mount)(serve *sv, ax_http_server *srv, char *why, size_t why_len);
    /* One more listener, TLS with sv->tls (needed with tls_url): 0, or
     * a code with why. */
    int (*listen_tls)(void *g, const char *url, char *why, size_t why_len);
    /* Shutdown: stop listening and say goodbye (connections close
     * gracefully while the loop runs); abort: reset those still open
     * (their close callbacks come on the next turn); free: when count()
     * is 0. */
    void (*stop)(void *g);
    void (*abort)(void *g);
    void (*free)(void *g);
    size_t (*count)(const void *g); /* connections shutdown waits for */
    /* The address of its listener ("tcp://127.0.0.1:7000"), or NULL. */
    const char *(*addr)(void *g, char *buf, size_t len);
    const char *(*tls_addr)(void *g, char *buf, size_t len);
    /* /metrics: fill *out with its counters, brought up to date (NULL:
     * the server reads sv->gw[its index] as it is). */
    void (*stats)(void *g, gw_stats *out);
    /* A host: the HTTP server mounted gateways add their routes to. */
    ax_http_server *(*http)(void *g);
    /* The banner: its addresses in the log at start, and the lines that
     * tell a user how to connect (printed unless --quiet). */
    void (*log_addrs)(void *g);
    void (*hints)(void *g, FILE *out);
} gw_ops;

/* The registry: every gateway, one line each, in the order /metrics lists
 * them and the server starts them (a host before what mounts on it).
 * X(KIND, OPS): KIND indexes its counters (sv->gw[KIND]); OPS is the
 * gw_ops its file defines. */
#define SERVE_GATEWAYS(X)                                                                          \
    X(GW_LINE, gw_line_gateway) /* gw_line.c: line chat for nc/telnet, TCP and TLS */              \
    X(GW_UDP, gw_udp_gateway)   /* gw_udp.c: datagrams */                                          \
    X(GW_HTTP, gw_http_gateway) /* gw_http.c: the HTTP API, metrics, pages; a host */              \
    X(GW_SSE, gw_sse_gateway)   /* gw_sse.c: Server-Sent Events at /sse */                         \
    X(GW_WS, gw_ws_gateway)     /* gw_ws.c: WebSocket at /ws */                                    \
    X(GW_MQTT, gw_mqtt_gateway) /* gw_mqtt.c: MQTT 3.1.1 and 5.0, TCP, TLS, WebSocket at /mqtt */  \
    X(GW_IRC, gw_irc_gateway)   /* gw_irc.c: IRC, channels are chat rooms */                       \
    X(GW_TERM, gw_term_gateway) /* gw_term.c: remote terminals at /term/NAME */                    \
    X(GW_RTMP, gw_rtmp_gateway) /* gw_rtmp.c: RTMP publish and play (live.h) */                    \
    X(GW_LIVE, gw_live_gateway) /* live_http.c: /live/NAME.flv ... on the HTTP server */

#define GW_KIND_(kind, ops) kind,
enum gw_kind { SERVE_GATEWAYS(GW_KIND_) GW_COUNT };
#undef GW_KIND_

#define GW_DECLARE_(kind, ops) extern const gw_ops ops;
SERVE_GATEWAYS(GW_DECLARE_)
#undef GW_DECLARE_

/* The registry as an array of GW_COUNT (server.c). */
extern const gw_ops *const serve_registry[GW_COUNT];

/* A registry may hold more than the built-in gateways (an embedding
 * program's, a test's): SERVE_MAX_GATEWAYS at most, the built-in ones
 * first and in their order (their counters are at their GW_ index). */
#define SERVE_MAX_GATEWAYS 16

#endif
