/* serve.h: what the gateways of `axon serve` share beyond their interface
 * (gateway.h) and the server's state (server.h): encodings, the JSON
 * envelope, helpers. */
#ifndef AXON_HUB_SERVE_H
#define AXON_HUB_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <axon/axon.h>
#include <axon/http.h>

#include "hub.h"
#include "server.h"

/* Encoding cache slots of hub_msg (one per wire format). */
enum { ENC_LINE = 0, ENC_SSE = 1, ENC_WS = 2, ENC_UDP = 3, ENC_MQTT = 4, ENC_MQTT5 = 5 };

/* Listener options for this thread: several threads share each port. */
ax_listen_opts serve_listen_opts(const serve *sv);

/* For the banner: "host:port" of a URL, and the same as nc takes it
 * ([::1]:7000 -> "::1 7000"). */
const char *serve_hostport(const char *url, char *buf, size_t len);
const char *serve_nc_args(const char *url, char *buf, size_t len);

/* HTTP helpers (gw_http.c) for the gateways mounted on its server: a
 * query parameter decoded (plus: '+' is a space; -1: absent), the method
 * checked (405 otherwise), an error reply {"error":why} (counted). */
int serve_http_query(ax_http_req *r, const char *name, char *out, size_t cap, bool plus);
bool serve_http_method(ax_http_req *r, const char *m, const char *allow);
void serve_http_error(ax_http_req *r, int status, const char *why);
/* origin.c: whether a browser page's request may open a WebSocket or
 * change state; false with a sentence in why (answer 403). */
bool serve_origin_allowed(ax_http_req *r, const serve_cfg *cfg, char *why, size_t why_len);
/* Who sent the request (Authorization: Bearer or Basic, else ?token=,
 * else anonymous): 0 with *id (NULL when no auth is configured: no
 * checks; else the caller frees it), or -1: unauthorized. */
int serve_http_identity(const serve *sv, ax_http_req *r, auth_identity **id);
/* Did the request bring credentials (an Authorization field, ?token=)? */
bool serve_http_has_credentials(ax_http_req *r);
/* A 401 reply with WWW-Authenticate. */
void serve_http_unauthorized(ax_http_req *r);
/* Is the request's peer a loopback address (or a unix socket)? */
bool serve_http_loopback(ax_http_req *r);

/* The browser pages (web/, compiled in): /, /dashboard and their assets;
 * the HTTP gateway adds them to its server. */
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
/* A publish request's "response_topic" and "correlation_data" (or
 * "correlation_data_base64") as the MQTT 5.0 properties a message keeps
 * (hub_pub.ext), so MQTT 5 subscribers get a request they can answer:
 * 0 with *len bytes written to out (0: none given), or -1 with *why. */
#define SERVE_MAX_CORRELATION 1024
#define SERVE_REQ_PROPS_MAX (HUB_MAX_TOPIC + SERVE_MAX_CORRELATION + 8)
int serve_req_props(struct json_t *o, uint8_t out[SERVE_REQ_PROPS_MAX], size_t *len,
                    const char **why);

/* A UDP request (gw_udp.c), parsed in place in a NUL-terminated buffer of
 * n bytes; pointers go into it.  0, or -1 for anything else. */
enum { UDP_PING = 1, UDP_PUB, UDP_SUB, UDP_UNSUB, UDP_AUTH };
typedef struct udp_req {
    int cmd;
    const char *topic;   /* PUB, SUB, UNSUB; AUTH: the token */
    const char *since;   /* SUB: the rest: [seq] [COOKIE c] (gw_udp.c), or NULL */
    const char *payload; /* PUB: may hold any bytes */
    size_t payload_len;
} udp_req;
int gw_udp_parse(char *buf, size_t n, udp_req *r);

/* Limits (serve_limit.c; docs/config.md, "Limits"): the server's engine
 * (sv->limits; NULL: every answer is HUB_LIMIT_OK) asked for a gateway
 * (`gw`: its name in the log), on its loop.  A refusal is logged once per
 * client and window ("websocket tcp://10.0.0.1:5000: refused: ..."); the
 * caller gives the protocol's answer: serve_limit_text() for the client,
 * serve_limit_retry_s() for Retry-After. */
hub_limit_kind serve_limit_open(serve *sv, const char *gw, ax_conn *c, hub_limits_conn *lim,
                                hub_refusal *r);
void serve_limit_close(serve *sv, hub_limits_conn *lim);
hub_limit_kind serve_limit_msg(serve *sv, const char *gw, ax_conn *c, hub_limits_conn *lim,
                               size_t bytes, hub_refusal *r);
hub_limit_kind serve_limit_datagram(serve *sv, const char *gw, const ax_addr *from, size_t bytes,
                                    hub_refusal *r);
/* What the client is told ("too many messages: slow down, retry in 2 s"). */
const char *serve_limit_text(hub_limit_kind k, const hub_refusal *r, char *buf, size_t len);
/* Seconds to wait, rounded up, at least 1 (Retry-After). */
uint64_t serve_limit_retry_s(const hub_refusal *r);
/* The failed-login guard (login_fail_rate) for a credential from `from`
 * (NULL: unknown, not limited): false when the address may not try now
 * (logged once); then, when the credential was wrong, count it. */
bool serve_limit_login(const serve *sv, const ax_addr *from);
void serve_limit_login_failed(const serve *sv, const ax_addr *from);
/* The HTTP server's connection hooks (ax_http_opts.on_conn_open, ...):
 * each HTTP connection is counted from accept to close, or until a
 * WebSocket takes it over (serve_limit_take()); over a connection limit
 * it gets 503 or 429 with Retry-After, then is closed. */
void *serve_limit_http_open(ax_conn *c, void *sv, bool *refuse);
void serve_limit_http_close(ax_conn *c, void *data, void *sv);
/* The limits of the request's connection (NULL: none counted). */
hub_limits_conn *serve_limit_http_conn(ax_http_req *r);
/* A WebSocket takes over its connection's share from the HTTP server
 * (after a successful upgrade); *out stays zero when there was none. */
void serve_limit_take(ax_http_req *r, hub_limits_conn *out);

/* The chat room a topic belongs to ("chat/lobby" -> "lobby"), or NULL. */
const char *serve_room_of(const char *topic);

#endif
