/* serve_limit.c: the limits engine (limit.h) asked for the gateways of
 * `axon serve`: the address of each client, the time of its loop, one log
 * line per refused client and window, the text the client is told, and
 * the HTTP server's connection hooks (a WebSocket takes its connection's
 * share over at the upgrade). */
#include <stdio.h>
#include <string.h>

#include <axon/alloc.h>

#include "serve.h"

/* A connection refused at accept is told to come back after this long
 * (the engine has no estimate for a full server or address). */
#define CONN_RETRY_MS 5000

static const char *setting_of(hub_limit_kind k)
{
    static const char *const keys[HUB_LIMIT_KINDS] = {
        [HUB_LIMIT_CONNS] = "max_connections",     [HUB_LIMIT_IP_CONNS] = "max_connections_per_ip",
        [HUB_LIMIT_MSG_RATE] = "msg_rate",         [HUB_LIMIT_BYTE_RATE] = "byte_rate",
        [HUB_LIMIT_IP_MSG] = "ip_msg_rate",        [HUB_LIMIT_IP_BYTES] = "ip_byte_rate",
        [HUB_LIMIT_LOGIN_FAIL] = "login_fail_rate"};
    return (unsigned)k < HUB_LIMIT_KINDS && keys[k] ? keys[k] : "?";
}

/* The setting's value as the log shows it. */
static const char *setting_value(const serve *sv, hub_limit_kind k, char *buf, size_t len)
{
    const hub_limits_conf *c = &sv->cfg->limits;
    const hub_rate *rates[HUB_LIMIT_KINDS] = {[HUB_LIMIT_MSG_RATE] = &c->msg_rate,
                                              [HUB_LIMIT_BYTE_RATE] = &c->byte_rate,
                                              [HUB_LIMIT_IP_MSG] = &c->ip_msg_rate,
                                              [HUB_LIMIT_IP_BYTES] = &c->ip_byte_rate,
                                              [HUB_LIMIT_LOGIN_FAIL] = &c->login_fail_rate};
    if (k == HUB_LIMIT_CONNS || k == HUB_LIMIT_IP_CONNS)
        snprintf(buf, len, "%u",
                 k == HUB_LIMIT_CONNS ? c->max_connections : c->max_connections_per_ip);
    else if ((unsigned)k < HUB_LIMIT_KINDS && rates[k])
        hub_rate_format(rates[k], buf, len);
    else
        snprintf(buf, len, "?");
    return buf;
}

uint64_t serve_limit_retry_s(const hub_refusal *r)
{
    uint64_t s = (r->retry_ms + 999) / 1000;
    return s ? s : 1;
}

const char *serve_limit_text(hub_limit_kind k, const hub_refusal *r, char *buf, size_t len)
{
    unsigned long long s = (unsigned long long)serve_limit_retry_s(r);
    switch (k) {
    case HUB_LIMIT_CONNS:
        snprintf(buf, len, "the server is full: retry in %llu s", s);
        break;
    case HUB_LIMIT_IP_CONNS:
        snprintf(buf, len, "too many connections from your address: retry in %llu s", s);
        break;
    case HUB_LIMIT_MSG_RATE:
    case HUB_LIMIT_IP_MSG:
        snprintf(buf, len, "too many messages: slow down, retry in %llu s", s);
        break;
    case HUB_LIMIT_BYTE_RATE:
    case HUB_LIMIT_IP_BYTES:
        snprintf(buf, len, "too many bytes: slow down, retry in %llu s", s);
        break;
    case HUB_LIMIT_LOGIN_FAIL:
        snprintf(buf, len, "too many failed logins from your address: retry in %llu s", s);
        break;
    default:
        snprintf(buf, len, "refused");
    }
    return buf;
}

/* The operator's line, once per client and window (r->log). */
static void log_refusal(const serve *sv, const char *gw, const ax_addr *from, hub_limit_kind k)
{
    char a[AX_ADDR_STRLEN] = "?", v[64];
    if (from) ax_addr_format(from, a, sizeof a);
    ax_log(AX_LOG_WARN, "%s %s: refused: over %s (%s); more refusals of it are counted, not logged",
           gw, a, setting_of(k), setting_value(sv, k, v, sizeof v));
}

static void log_conn_refusal(const serve *sv, const char *gw, ax_conn *c, hub_limit_kind k)
{
    ax_addr a;
    log_refusal(sv, gw, c && ax_conn_peer(c, &a) == 0 ? &a : NULL, k);
}

hub_limit_kind serve_limit_open(serve *sv, const char *gw, ax_conn *c, hub_limits_conn *lim,
                                hub_refusal *r)
{
    ax_addr a;
    memset(lim, 0, sizeof(*lim));
    if (!sv->limits || !hub_limits_per_conn(sv->limits)) return HUB_LIMIT_OK; /* nothing to count */
    if (ax_conn_peer(c, &a) != 0) {
        memset(&a, 0, sizeof a);
        a.sa.ss_family = AF_UNIX; /* unknown: counted as the local address */
    }
    hub_limit_kind k = hub_limits_conn_open(sv->limits, (const struct sockaddr *)&a.sa,
                                            ax_loop_now(sv->loop), lim, r);
    if (k == HUB_LIMIT_OK) return k;
    if (!r->retry_ms) r->retry_ms = CONN_RETRY_MS;
    if (r->log) log_refusal(sv, gw, &a, k);
    return k;
}

void serve_limit_close(serve *sv, hub_limits_conn *lim)
{
    if (sv->limits) hub_limits_conn_close(sv->limits, lim, ax_loop_now(sv->loop));
}

hub_limit_kind serve_limit_msg(serve *sv, const char *gw, ax_conn *c, hub_limits_conn *lim,
                               size_t bytes, hub_refusal *r)
{
    if (!sv->limits || !lim || !lim->ip) return HUB_LIMIT_OK;
    hub_limit_kind k = hub_limits_msg(sv->limits, lim, bytes, ax_loop_now(sv->loop), r);
    if (k != HUB_LIMIT_OK && r->log) log_conn_refusal(sv, gw, c, k);
    return k;
}

hub_limit_kind serve_limit_datagram(serve *sv, const char *gw, const ax_addr *from, size_t bytes,
                                    hub_refusal *r)
{
    if (!sv->limits) return HUB_LIMIT_OK;
    hub_limit_kind k = hub_limits_datagram(sv->limits, (const struct sockaddr *)&from->sa, bytes,
                                           ax_loop_now(sv->loop), r);
    if (k != HUB_LIMIT_OK && r->log) log_refusal(sv, gw, from, k);
    return k;
}

/* ---- HTTP connections ------------------------------------------------------------- */

typedef struct http_share {
    hub_limits_conn lim;
    bool taken; /* a WebSocket has it now */
} http_share;

/* 503 (the server is full) or 429 (this address), before any request. */
static void http_refuse(ax_conn *c, hub_limit_kind k, const hub_refusal *r)
{
    char text[128], msg[512];
    serve_limit_text(k, r, text, sizeof text);
    size_t bl = strlen(text) + strlen("{\"error\":\"\"}\n");
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Retry-After: %llu\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                     "{\"error\":\"%s\"}\n",
                     k == HUB_LIMIT_CONNS ? "503 Service Unavailable" : "429 Too Many Requests", bl,
                     (unsigned long long)serve_limit_retry_s(r), text);
    int rc = n > 0 && (size_t)n < sizeof msg ? ax_conn_write(c, msg, (size_t)n) : 0;
    (void)rc; /* refused: it is closed after this either way */
}

void *serve_limit_http_open(ax_conn *c, void *ud, bool *refuse)
{
    serve *sv = ud;
    if (!sv->limits || !hub_limits_per_conn(sv->limits)) return NULL;
    http_share *s = ax_calloc(1, sizeof(*s));
    hub_refusal r = {0};
    hub_limit_kind k = s ? serve_limit_open(sv, "http", c, &s->lim, &r) : HUB_LIMIT_CONNS;
    if (k == HUB_LIMIT_OK) return s;
    ax_free(s);
    if (!r.retry_ms) r.retry_ms = CONN_RETRY_MS;
    http_refuse(c, k, &r);
    GW_ADD(sv->gw[GW_HTTP].errors, 1);
    *refuse = true;
    return NULL;
}

void serve_limit_http_close(ax_conn *c, void *data, void *ud)
{
    http_share *s = data;
    (void)c;
    if (!s) return;
    if (!s->taken) serve_limit_close(ud, &s->lim);
    ax_free(s);
}

hub_limits_conn *serve_limit_http_conn(ax_http_req *r)
{
    http_share *s = ax_http_req_conn_data(r);
    return s && !s->taken ? &s->lim : NULL;
}

void serve_limit_take(ax_http_req *r, hub_limits_conn *out)
{
    http_share *s = ax_http_req_conn_data(r);
    memset(out, 0, sizeof(*out));
    if (!s || s->taken) return;
    *out = s->lim; /* the address entry stays held: the count moves with it */
    s->taken = true;
}

/* ---- logins ------------------------------------------------------------------------ */

bool serve_limit_login(const serve *sv, const ax_addr *from)
{
    hub_refusal r = {0};
    if (!sv->limits || !from) return true;
    if (hub_limits_login_check(sv->limits, (const struct sockaddr *)&from->sa,
                               ax_loop_now(sv->loop), &r) == HUB_LIMIT_OK)
        return true;
    if (r.log) log_refusal(sv, "login from", from, HUB_LIMIT_LOGIN_FAIL);
    return false;
}

void serve_limit_login_failed(const serve *sv, const ax_addr *from)
{
    if (sv->limits && from)
        hub_limits_login_failed(sv->limits, (const struct sockaddr *)&from->sa,
                                ax_loop_now(sv->loop));
}
