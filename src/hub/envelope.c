/* envelope.c: the JSON form of a hub message (docs/protocol.md), shared by
 * the WebSocket and SSE gateways and the HTTP API, written directly (a
 * jansson tree where one is wanted); and the scan of a request envelope
 * without a tree (envelope.h). */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "proto/mqtt/mqtt.h"
#include "proto/ws/utf8.h"
#include "serve.h"

ax_listen_opts serve_listen_opts(const serve *sv)
{
    return (ax_listen_opts){.reuse_port = sv->cfg->threads > 1};
}

const char *serve_room_of(const char *topic)
{
    return strncmp(topic, "chat/", 5) == 0 && topic[5] ? topic + 5 : NULL;
}

static json_t *payload_value(const hub_msg *m, bool *b64)
{
    *b64 = m->binary;
    if (!m->binary) return json_stringn(m->payload, m->payload_len);
    size_t cap = 4 * ((m->payload_len + 2) / 3) + 1;
    unsigned char *out = malloc(cap);
    if (!out) return NULL;
    int n = EVP_EncodeBlock(out, (const unsigned char *)m->payload, (int)m->payload_len);
    json_t *v = json_stringn((const char *)out, (size_t)n);
    free(out);
    return v;
}

/* A request's MQTT 5.0 properties kept with a message (m->ext: a
 * PUBLISH's properties, as gw_mqtt.c and env_request_props() store them)
 * that the JSON form shows: "response_topic" and "correlation_data" (as
 * text when it is UTF-8 without NUL, else "correlation_data_base64").
 * False: none of them. */
typedef struct msg_req {
    ax_mqtt_str rt, cd;
    bool cd_b64;
} msg_req;

static bool msg_req_of(const hub_msg *m, msg_req *q)
{
    ax_mqtt_props pr;
    if (m->kind != HUB_MSG || !m->ext_len ||
        ax_mqtt_props_parse(m->ext, m->ext_len, AX_MQTT_PUBLISH, &pr) != 0)
        return false;
    q->rt = ax_mqtt_props_has(&pr, AX_MQTT_PROP_RESPONSE_TOPIC) ? pr.response_topic
                                                                : (ax_mqtt_str){NULL, 0};
    q->cd = ax_mqtt_props_has(&pr, AX_MQTT_PROP_CORRELATION_DATA) ? pr.correlation_data
                                                                  : (ax_mqtt_str){NULL, 0};
    q->cd_b64 =
        q->cd.ptr && (memchr(q->cd.ptr, 0, q->cd.len) || !ax_utf8_valid(q->cd.ptr, q->cd.len));
    return q->rt.ptr || q->cd.ptr;
}

static json_t *b64_value(const char *p, size_t n)
{
    unsigned char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out) return NULL;
    int k = EVP_EncodeBlock(out, (const unsigned char *)p, (int)n);
    json_t *v = json_stringn((const char *)out, (size_t)k);
    free(out);
    return v;
}

static void msg_req_set(json_t *o, const hub_msg *m)
{
    msg_req q;
    if (!msg_req_of(m, &q)) return;
    if (q.rt.ptr) json_object_set_new(o, "response_topic", json_stringn(q.rt.ptr, q.rt.len));
    if (q.cd.ptr && q.cd_b64)
        json_object_set_new(o, "correlation_data_base64", b64_value(q.cd.ptr, q.cd.len));
    else if (q.cd.ptr)
        json_object_set_new(o, "correlation_data", json_stringn(q.cd.ptr, q.cd.len));
}

json_t *serve_msg_obj(const hub_msg *m)
{
    static const char *types[] = {"message", "join", "leave", "gap"};
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "type", json_string(types[m->kind & 3]));
    json_object_set_new(o, "topic", json_stringn(m->topic, m->topic_len));
    json_object_set_new(o, "seq", json_integer((json_int_t)m->seq));
    json_object_set_new(o, "time", json_integer(m->time_ms));
    if (m->kind == HUB_JOIN || m->kind == HUB_LEAVE) {
        json_object_set_new(o, "name", json_stringn(m->sender, m->sender_len));
    } else if (m->kind == HUB_GAP) {
        json_object_set_new(o, "first_seq", json_integer((json_int_t)m->seq));
    } else {
        bool b64;
        json_object_set_new(o, "sender", json_stringn(m->sender, m->sender_len));
        json_object_set_new(o, "payload", payload_value(m, &b64));
        if (b64) json_object_set_new(o, "encoding", json_string("base64"));
        msg_req_set(o, m);
    }
    return o;
}

int serve_req_props(json_t *o, uint8_t out[SERVE_REQ_PROPS_MAX], size_t *len, const char **why)
{
    json_t *rt = json_object_get(o, "response_topic"), *cd = json_object_get(o, "correlation_data"),
           *cb = json_object_get(o, "correlation_data_base64");
    ax_mqtt_props pr = {0};
    unsigned char bin[SERVE_MAX_CORRELATION + 3];
    *len = 0;
    if (rt) {
        const char *t = json_string_value(rt);
        size_t n = json_string_length(rt);
        if (!t || !n || n > HUB_MAX_TOPIC || !hub_topic_valid(t, n)) {
            *why = "response_topic is a topic name";
            return -1;
        }
        pr.response_topic = (ax_mqtt_str){t, n};
        ax_mqtt_props_set(&pr, AX_MQTT_PROP_RESPONSE_TOPIC);
    }
    if (cd && cb) {
        *why = "correlation_data or correlation_data_base64, not both";
        return -1;
    }
    if (cd) {
        if (!json_is_string(cd) || json_string_length(cd) > SERVE_MAX_CORRELATION) {
            *why = "correlation_data is a string of at most 1024 bytes";
            return -1;
        }
        pr.correlation_data = (ax_mqtt_str){json_string_value(cd), json_string_length(cd)};
        ax_mqtt_props_set(&pr, AX_MQTT_PROP_CORRELATION_DATA);
    } else if (cb) {
        size_t n = json_string_length(cb);
        const char *t = json_string_value(cb);
        int k = t && n % 4 == 0 && n / 4 * 3 <= sizeof bin
                    ? EVP_DecodeBlock(bin, (const unsigned char *)t, (int)n)
                    : -1;
        while (k > 0 && n && t[n - 1] == '=') /* EVP_DecodeBlock counts the padding */
            n--, k--;
        if (k < 0 || k > SERVE_MAX_CORRELATION) {
            *why = "correlation_data_base64 is base64 of at most 1024 bytes";
            return -1;
        }
        pr.correlation_data = (ax_mqtt_str){(const char *)bin, (size_t)k};
        ax_mqtt_props_set(&pr, AX_MQTT_PROP_CORRELATION_DATA);
    }
    if (pr.present) *len = ax_mqtt_props_encode(out, SERVE_REQ_PROPS_MAX, AX_MQTT_PUBLISH, &pr);
    return 0;
}

/* The same through a jansson tree: for a topic or sender that is not
 * valid UTF-8 (jansson then leaves the field out). */
static char *msg_json_tree(const hub_msg *m, size_t *len)
{
    json_t *o = serve_msg_obj(m);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s && len) *len = strlen(s);
    return s;
}

/* n in decimal at out (as jansson prints a json_int_t); the end. */
static char *put_int(char *out, int64_t n)
{
    char tmp[24];
    size_t k = 0;
    uint64_t u = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
    do
        tmp[k++] = (char)('0' + u % 10);
    while (u /= 10);
    if (n < 0) *out++ = '-';
    while (k)
        *out++ = tmp[--k];
    return out;
}

static char *put(char *out, const char *s)
{
    size_t n = strlen(s);
    memcpy(out, s, n);
    return out + n;
}

/* Written directly, byte for byte what json_dumps(serve_msg_obj(m),
 * JSON_COMPACT) writes (tests/unit/test_envelope.c compares them), without
 * building the tree: this runs once per published message. */
char *serve_msg_json(const hub_msg *m, size_t *len)
{
    static const char *const types[] = {"message", "join", "leave", "gap"};
    bool named = m->kind != HUB_GAP, text = m->kind == HUB_MSG && !m->binary;
    if (!ax_utf8_valid(m->topic, m->topic_len) ||
        (named && !ax_utf8_valid(m->sender, m->sender_len)))
        return msg_json_tree(m, len);
    size_t cap = 128 + env_quoted_len(m->topic, m->topic_len) +
                 (named ? env_quoted_len(m->sender, m->sender_len) : 0);
    if (m->kind == HUB_MSG)
        cap += text ? env_quoted_len(m->payload, m->payload_len) : 4 * ((m->payload_len + 2) / 3);
    msg_req q;
    bool req = msg_req_of(m, &q);
    if (req)
        cap += 64 + env_quoted_len(q.rt.ptr, q.rt.len) +
               (q.cd_b64 ? 4 * ((q.cd.len + 2) / 3) : env_quoted_len(q.cd.ptr, q.cd.len));
    char *s = malloc(cap), *o = s;
    if (!s) return NULL;
    o = put(o, "{\"type\":\"");
    o = put(o, types[m->kind & 3]);
    o = put(o, "\",\"topic\":");
    o = env_quote(o, m->topic, m->topic_len);
    o = put_int(put(o, ",\"seq\":"), (int64_t)m->seq);
    o = put_int(put(o, ",\"time\":"), m->time_ms);
    if (m->kind == HUB_GAP) {
        o = put_int(put(o, ",\"first_seq\":"), (int64_t)m->seq);
    } else if (m->kind != HUB_MSG) {
        o = env_quote(put(o, ",\"name\":"), m->sender, m->sender_len);
    } else {
        o = env_quote(put(o, ",\"sender\":"), m->sender, m->sender_len);
        o = put(o, ",\"payload\":");
        if (text) {
            o = env_quote(o, m->payload, m->payload_len);
        } else {
            *o++ = '"';
            o += EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)m->payload,
                                 (int)m->payload_len);
            o = put(o, "\",\"encoding\":\"base64\"");
        }
        if (req && q.rt.ptr) o = env_quote(put(o, ",\"response_topic\":"), q.rt.ptr, q.rt.len);
        if (req && q.cd.ptr && q.cd_b64) {
            o = put(o, ",\"correlation_data_base64\":\"");
            o +=
                EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)q.cd.ptr, (int)q.cd.len);
            *o++ = '"';
        } else if (req && q.cd.ptr) {
            o = env_quote(put(o, ",\"correlation_data\":"), q.cd.ptr, q.cd.len);
        }
    }
    *o++ = '}';
    *o = '\0';
    if (len) *len = (size_t)(o - s);
    return s;
}

/* ---- the request scan (envelope.h) ------------------------------------------ */

typedef const unsigned char *cur;

/* Bytes a string holds as they are: not '"', '\\', a control or non-ASCII. */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,      R16(1),
    R16(1), 1,      1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, R16(1), R16(1),
#undef R16
};

static bool isdig(unsigned c)
{
    return c - '0' < 10;
}

static cur skip_ws(cur p, cur end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static int hexval(unsigned c)
{
    if (c - '0' < 10) return (int)(c - '0');
    c |= 0x20;
    return c - 'a' < 6 ? (int)(c - 'a' + 10) : -1;
}

static bool hex4(cur p, cur end, unsigned *u)
{
    if (end - p < 4) return false;
    *u = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(p[k]);
        if (h < 0) return false;
        *u = *u << 4 | (unsigned)h;
    }
    return true;
}

/* The length of the valid UTF-8 sequence (2 to 4 bytes) at p, or 0. */
static size_t utf8_seq(cur p, cur end)
{
    unsigned c = p[0];
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (!n || (size_t)(end - p) < n) return 0;
    unsigned lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c == 0xe0) lo = 0xa0;
    if (c == 0xed) hi = 0x9f; /* no UTF-16 surrogates */
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f; /* nothing above U+10FFFF */
    if (p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xc0) != 0x80) return 0;
    return n;
}

/* A \u escape at p (after the 'u'): its end, or NULL for what jansson
 * refuses (\u0000, a lone or reversed surrogate). */
static cur escape_u(cur p, cur end, unsigned *cp)
{
    unsigned u, lo;
    if (!hex4(p, end, &u) || u == 0 || (u >= 0xdc00 && u <= 0xdfff)) return NULL;
    p += 4;
    if (u >= 0xd800 && u <= 0xdbff) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, end, &lo) || lo < 0xdc00 ||
            lo > 0xdfff)
            return NULL;
        u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        p += 6;
    }
    *cp = u;
    return p;
}

/* A string's body (p is after the opening quote): the byte after the
 * closing quote, or NULL. */
static cur scan_string(cur p, cur end, bool *escaped)
{
    *escaped = false;
    for (;;) {
        while (p < end && plain[*p])
            p++;
        if (p == end) return NULL;
        unsigned c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            *escaped = true;
            if (++p == end) return NULL;
            c = *p++;
            unsigned cp;
            if (c == 'u') {
                if (!(p = escape_u(p, end, &cp))) return NULL;
            } else if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                         c == 'r' || c == 't')) {
                return NULL;
            }
            continue;
        }
        size_t k = utf8_seq(p, end);
        if (!k) return NULL;
        p += k;
    }
}

/* A number: its end, or NULL (invalid, or one left to jansson: an integer
 * of more than 18 digits, a real that might overflow a double). */
static cur scan_number(cur p, cur end, env_value *v)
{
    bool neg = p < end && *p == '-', real = false;
    p += neg;
    cur d = p;
    if (p == end || !isdig(*p)) return NULL;
    if (*p == '0')
        p++;
    else
        while (p < end && isdig(*p))
            p++;
    size_t digits = (size_t)(p - d);
    if (p < end && *p == '.') {
        if (++p == end || !isdig(*p)) return NULL;
        while (p < end && isdig(*p))
            p++;
        real = true;
    }
    long exp = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool eneg = ++p < end && *p == '-';
        if (p < end && (*p == '-' || *p == '+')) p++;
        if (p == end || !isdig(*p)) return NULL;
        while (p < end && isdig(*p)) {
            if (exp < 100000) exp = exp * 10 + (*p - '0');
            p++;
        }
        if (eneg) exp = -exp;
        real = true;
    }
    if (real) {
        if ((long)digits + exp > 300) return NULL; /* maybe past DBL_MAX: jansson says */
        v->kind = ENV_REAL;
        return p;
    }
    if (digits > 18) return NULL;
    int64_t x = 0;
    for (cur q = d; q < p; q++)
        x = x * 10 + (*q - '0');
    v->kind = ENV_INT;
    v->i = neg ? -x : x;
    return p;
}

/* The slot of a top-level key the gateways read, else `other`. */
static env_value *env_slot(env_req *r, const char *k, size_t n, env_value *other)
{
    static const char *const names[ENV_NFIELDS] = {[ENV_F_TYPE] = "type",
                                                   [ENV_F_TOPIC] = "topic",
                                                   [ENV_F_PAYLOAD] = "payload",
                                                   [ENV_F_ENCODING] = "encoding",
                                                   [ENV_F_ID] = "id",
                                                   [ENV_F_SINCE] = "since",
                                                   [ENV_F_LIMIT] = "limit",
                                                   [ENV_F_PRESENCE] = "presence",
                                                   [ENV_F_TOKEN] = "token",
                                                   [ENV_F_NAME] = "name",
                                                   [ENV_F_RESPONSE_TOPIC] = "response_topic",
                                                   [ENV_F_CORRELATION] = "correlation_data",
                                                   [ENV_F_CORRELATION_B64] =
                                                       "correlation_data_base64"};
    for (int f = 0; f < ENV_NFIELDS; f++)
        if (strlen(names[f]) == n && memcmp(names[f], k, n) == 0) return &r->f[f];
    return other;
}

static cur scan_value(cur p, cur end, int depth, env_value *v);

/* An object or array's body (p after the bracket): the byte after the
 * closing one, or NULL.  Keys are compared raw, so one with an escape is
 * left to jansson; so are objects with more than ENV_MAX_KEYS keys. */
static cur scan_container(cur p, cur end, int depth, bool object, env_req *top)
{
    struct {
        cur p;
        size_t n;
    } keys[ENV_MAX_KEYS];
    size_t nkeys = 0;
    env_value scratch;
    if (depth > ENV_MAX_DEPTH) return NULL;
    p = skip_ws(p, end);
    if (p < end && *p == (object ? '}' : ']')) return p + 1;
    for (;;) {
        env_value *v = &scratch;
        if (object) {
            bool esc;
            if (p == end || *p != '"') return NULL;
            cur k = p + 1;
            if (!(p = scan_string(k, end, &esc)) || esc || nkeys == ENV_MAX_KEYS) return NULL;
            size_t kn = (size_t)(p - 1 - k);
            for (size_t i = 0; i < nkeys; i++)
                if (keys[i].n == kn && memcmp(keys[i].p, k, kn) == 0) return NULL;
            keys[nkeys].p = k;
            keys[nkeys++].n = kn;
            if (top) v = env_slot(top, (const char *)k, kn, &scratch);
            p = skip_ws(p, end);
            if (p == end || *p != ':') return NULL;
            p = skip_ws(p + 1, end);
        }
        if (!(p = scan_value(p, end, depth, v))) return NULL;
        p = skip_ws(p, end);
        if (p == end) return NULL;
        if (*p == (object ? '}' : ']')) return p + 1;
        if (*p != ',') return NULL;
        p = skip_ws(p + 1, end);
    }
}

static cur scan_literal(cur p, cur end, const char *word, size_t n, env_kind kind, env_value *v)
{
    if ((size_t)(end - p) < n || memcmp(p, word, n) != 0) return NULL;
    v->kind = kind;
    return p + n;
}

/* One value at p (not whitespace): its end, or NULL; v gets its kind. */
static cur scan_value(cur p, cur end, int depth, env_value *v)
{
    cur s = p;
    if (p == end) return NULL;
    switch (*p) {
    case '"':
        p = scan_string(p + 1, end, &v->escaped);
        v->kind = ENV_STRING;
        if (p) v->p = (const char *)s + 1, v->n = (size_t)(p - s - 2);
        return p;
    case '{':
    case '[':
        v->kind = *p == '{' ? ENV_OBJECT : ENV_ARRAY;
        p = scan_container(p + 1, end, depth + 1, *p == '{', NULL);
        break;
    case 't':
        p = scan_literal(p, end, "true", 4, ENV_TRUE, v);
        break;
    case 'f':
        p = scan_literal(p, end, "false", 5, ENV_FALSE, v);
        break;
    case 'n':
        p = scan_literal(p, end, "null", 4, ENV_NULL, v);
        break;
    default:
        p = scan_number(p, end, v);
        break;
    }
    if (p) v->p = (const char *)s, v->n = (size_t)(p - s);
    return p;
}

int env_scan(const void *buf, size_t len, env_req *r)
{
    cur p = buf, end = p + len;
    memset(r, 0, sizeof(*r));
    p = skip_ws(p, end);
    if (p == end || *p != '{') return -1;
    p = scan_container(p + 1, end, 1, true, r);
    return p && skip_ws(p, end) == end ? 0 : -1;
}

/* Code point cp as UTF-8 at out; the end. */
static char *put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        *out++ = (char)cp;
    } else if (cp < 0x800) {
        *out++ = (char)(0xc0 | cp >> 6);
        *out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *out++ = (char)(0xe0 | cp >> 12);
        *out++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *out++ = (char)(0xf0 | cp >> 18);
        *out++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *out++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *out++ = (char)(0x80 | (cp & 0x3f));
    }
    return out;
}

size_t env_string(const env_value *v, char *out)
{
    if (!v->escaped) {
        memcpy(out, v->p, v->n);
        out[v->n] = '\0';
        return v->n;
    }
    cur p = (cur)v->p, end = p + v->n;
    char *o = out;
    while (p < end) {
        if (*p != '\\') {
            *o++ = (char)*p++;
            continue;
        }
        unsigned c = p[1], cp = 0;
        p += 2;
        switch (c) {
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u':
            p = escape_u(p, end, &cp); /* checked by the scan */
            o = put_utf8(o, cp);
            break;
        default:
            *o++ = (char)c;
            break;
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}

bool env_is(const env_value *v, const char *s)
{
    size_t n = strlen(s);
    if (v->kind != ENV_STRING || v->n < n) return false;
    if (!v->escaped) return v->n == n && memcmp(v->p, s, n) == 0;
    char buf[64];
    if (v->n >= sizeof buf) return false; /* decodes to >= n / 6 bytes */
    return env_string(v, buf) == n && memcmp(buf, s, n) == 0;
}

/* What jansson writes for byte c (< 0x20, '"' or '\\'), after a backslash. */
static char short_escape(unsigned c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return 0;
    }
}

size_t env_quoted_len(const char *s, size_t n)
{
    size_t out = n + 2;
    for (size_t i = 0; i < n; i++) {
        unsigned c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        out += short_escape(c) ? 1 : 5;
    }
    return out;
}

char *env_quote(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    *out++ = '"';
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && plain[(unsigned char)s[run]] | ((unsigned char)s[run] >= 0x80))
            run++;
        memcpy(out, s + i, run - i);
        out += run - i;
        if ((i = run) == n) break;
        unsigned c = (unsigned char)s[i++];
        char e = short_escape(c);
        *out++ = '\\';
        if (e) {
            *out++ = e;
        } else {
            memcpy(out, "u00", 3);
            out[3] = hex[c >> 4];
            out[4] = hex[c & 15];
            out += 5;
        }
    }
    *out++ = '"';
    return out;
}
