/* mqtt.c: the MQTT packet parser, its iterators and the shared tables (see
 * mqtt.h for the contract; mqtt_encode.c writes packets).
 *
 * The parser is a reader over one complete packet (the fixed header has
 * said how long it is): each get_*() takes one field or records the first
 * rule broken and returns false, so the packet functions read like the
 * spec's field lists. */
#include "proto/mqtt/mqtt.h"

#include <string.h>

#include "proto/mqtt/mqtt_internal.h"

#define MALFORMED AX_MQTT_RC_MALFORMED
#define PROTOCOL AX_MQTT_RC_PROTOCOL_ERROR
#define PB(id) AX_MQTT_PBIT(AX_MQTT_PROP_##id)

/* --- tables --- */

static const uint8_t prop_kinds[AX__MQTT_PROP_LAST + 1] = {
    [AX_MQTT_PROP_PAYLOAD_FORMAT] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_MESSAGE_EXPIRY] = AX__MQTT_K_U32,
    [AX_MQTT_PROP_CONTENT_TYPE] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_RESPONSE_TOPIC] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_CORRELATION_DATA] = AX__MQTT_K_BINARY,
    [AX_MQTT_PROP_SUB_ID] = AX__MQTT_K_VARINT,
    [AX_MQTT_PROP_SESSION_EXPIRY] = AX__MQTT_K_U32,
    [AX_MQTT_PROP_ASSIGNED_CLIENT_ID] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_SERVER_KEEP_ALIVE] = AX__MQTT_K_U16,
    [AX_MQTT_PROP_AUTH_METHOD] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_AUTH_DATA] = AX__MQTT_K_BINARY,
    [AX_MQTT_PROP_REQUEST_PROBLEM_INFO] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_WILL_DELAY] = AX__MQTT_K_U32,
    [AX_MQTT_PROP_REQUEST_RESPONSE_INFO] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_RESPONSE_INFO] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_SERVER_REFERENCE] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_REASON_STRING] = AX__MQTT_K_UTF8,
    [AX_MQTT_PROP_RECEIVE_MAX] = AX__MQTT_K_U16,
    [AX_MQTT_PROP_TOPIC_ALIAS_MAX] = AX__MQTT_K_U16,
    [AX_MQTT_PROP_TOPIC_ALIAS] = AX__MQTT_K_U16,
    [AX_MQTT_PROP_MAX_QOS] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_RETAIN_AVAILABLE] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_USER] = AX__MQTT_K_PAIR,
    [AX_MQTT_PROP_MAX_PACKET_SIZE] = AX__MQTT_K_U32,
    [AX_MQTT_PROP_WILDCARD_SUB_AVAILABLE] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_SUB_ID_AVAILABLE] = AX__MQTT_K_BYTE,
    [AX_MQTT_PROP_SHARED_SUB_AVAILABLE] = AX__MQTT_K_BYTE,
};

#define MSG_PROPS                                                                                  \
    (PB(PAYLOAD_FORMAT) | PB(MESSAGE_EXPIRY) | PB(CONTENT_TYPE) | PB(RESPONSE_TOPIC) |             \
     PB(CORRELATION_DATA) | PB(USER))
#define ACK_PROPS (PB(REASON_STRING) | PB(USER))

/* Which properties each packet type may carry (section 2.2.2.2); index 0
 * stands for the will properties of CONNECT. */
static const uint64_t prop_allowed[16] = {
    [0] = MSG_PROPS | PB(WILL_DELAY),
    [AX_MQTT_CONNECT] = PB(SESSION_EXPIRY) | PB(AUTH_METHOD) | PB(AUTH_DATA) |
                        PB(REQUEST_PROBLEM_INFO) | PB(REQUEST_RESPONSE_INFO) | PB(RECEIVE_MAX) |
                        PB(TOPIC_ALIAS_MAX) | PB(USER) | PB(MAX_PACKET_SIZE),
    [AX_MQTT_CONNACK] = PB(SESSION_EXPIRY) | PB(ASSIGNED_CLIENT_ID) | PB(SERVER_KEEP_ALIVE) |
                        PB(AUTH_METHOD) | PB(AUTH_DATA) | PB(RESPONSE_INFO) | PB(SERVER_REFERENCE) |
                        PB(REASON_STRING) | PB(RECEIVE_MAX) | PB(TOPIC_ALIAS_MAX) | PB(MAX_QOS) |
                        PB(RETAIN_AVAILABLE) | PB(USER) | PB(MAX_PACKET_SIZE) |
                        PB(WILDCARD_SUB_AVAILABLE) | PB(SUB_ID_AVAILABLE) |
                        PB(SHARED_SUB_AVAILABLE),
    [AX_MQTT_PUBLISH] = MSG_PROPS | PB(SUB_ID) | PB(TOPIC_ALIAS),
    [AX_MQTT_PUBACK] = ACK_PROPS,
    [AX_MQTT_PUBREC] = ACK_PROPS,
    [AX_MQTT_PUBREL] = ACK_PROPS,
    [AX_MQTT_PUBCOMP] = ACK_PROPS,
    [AX_MQTT_SUBSCRIBE] = PB(SUB_ID) | PB(USER),
    [AX_MQTT_SUBACK] = ACK_PROPS,
    [AX_MQTT_UNSUBSCRIBE] = PB(USER),
    [AX_MQTT_UNSUBACK] = ACK_PROPS,
    [AX_MQTT_DISCONNECT] = PB(SESSION_EXPIRY) | PB(SERVER_REFERENCE) | ACK_PROPS,
    [AX_MQTT_AUTH] = PB(AUTH_METHOD) | PB(AUTH_DATA) | ACK_PROPS,
};

unsigned ax__mqtt_prop_kind(unsigned id)
{
    return id <= AX__MQTT_PROP_LAST ? prop_kinds[id] : AX__MQTT_K_NONE;
}

bool ax_mqtt_prop_allowed(unsigned type, unsigned id)
{
    return type < 16 && ax__mqtt_prop_kind(id) != AX__MQTT_K_NONE &&
           (prop_allowed[type] & AX_MQTT_PBIT(id)) != 0;
}

/* The reason codes each 5.0 packet may carry (section 2.4 and each
 * packet's section), zero-terminated after the leading 0x00. */
static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F, 0};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99, 0};
static const uint8_t rc_pubrel[] = {0x00, 0x92, 0};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F,
                                    0x91, 0x97, 0x9E, 0xA1, 0xA2, 0};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91, 0};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2, 0};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19, 0};
static const uint8_t rc_suback_v3[] = {0x00, 0x01, 0x02, 0x80, 0};

static bool code_in(const uint8_t *set, uint8_t code)
{
    if (code == 0) return set[0] == 0;
    for (set++; *set; set++)
        if (*set == code) return true;
    return false;
}

/* --- helpers --- */

size_t ax_mqtt_varint_size(uint32_t v)
{
    if (v < 128u) return 1;
    if (v < 16384u) return 2;
    if (v < 2097152u) return 3;
    if (v <= AX_MQTT_MAX_REMAINING) return 4;
    return 0;
}

size_t ax_mqtt_varint_write(uint8_t *out, uint32_t v)
{
    size_t n = ax_mqtt_varint_size(v);
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)((v & 127u) | (i + 1 < n ? 128u : 0u));
        v >>= 7;
    }
    return n;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

bool ax_mqtt_utf8_valid(const void *buf, size_t len)
{
    const uint8_t *s = buf, *e = s + len;
    while (s < e) {
        if (e - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            /* eight ASCII bytes, none of them NUL */
            if (((w | ((w - ONES) & ~w)) & HIGHS) == 0) {
                s += 8;
                continue;
            }
        }
        uint8_t c = *s;
        if (c < 0x80) {
            if (c == 0) return false;
            s++;
            continue;
        }
        size_t n;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c < 0xC2) return false;   /* continuation byte or overlong 2-byte */
        if (c < 0xE0) {
            n = 2;
        } else if (c < 0xF0) {
            n = 3;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c < 0xF5) {
            n = 4;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* over U+10FFFF */
        } else {
            return false;
        }
        if ((size_t)(e - s) < n || s[1] < lo || s[1] > hi) return false;
        for (size_t i = 2; i < n; i++)
            if ((s[i] & 0xC0) != 0x80) return false;
        s += n;
    }
    return true;
}

bool ax_mqtt_topic_valid(const char *s, size_t len)
{
    return len > 0 && len <= 65535 && !memchr(s, '+', len) && !memchr(s, '#', len) &&
           ax_mqtt_utf8_valid(s, len);
}

/* Levels of a filter: '+' fills its level, '#' fills the last one. */
static bool filter_levels_valid(const char *s, size_t len)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '+' && s[i] != '#') continue;
        bool starts = i == 0 || s[i - 1] == '/';
        bool ends = i + 1 == len || s[i + 1] == '/';
        if (!starts || !ends) return false;
        if (s[i] == '#' && i + 1 != len) return false;
    }
    return true;
}

#define SHARE_PREFIX "$share/"
#define SHARE_PREFIX_LEN 7

/* Splits "$share/NAME/FILTER"; false when s is not shared. */
static bool split_share(const char *s, size_t len, ax_mqtt_str *share, ax_mqtt_str *topic)
{
    if (len < SHARE_PREFIX_LEN || memcmp(s, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0) {
        share->ptr = s, share->len = 0;
        topic->ptr = s, topic->len = len;
        return false;
    }
    const char *name = s + SHARE_PREFIX_LEN;
    size_t rest = len - SHARE_PREFIX_LEN;
    const char *slash = memchr(name, '/', rest);
    share->ptr = name;
    share->len = slash ? (size_t)(slash - name) : rest;
    topic->ptr = slash ? slash + 1 : name + rest;
    topic->len = slash ? rest - share->len - 1 : 0;
    return true;
}

bool ax_mqtt_filter_valid(const char *s, size_t len, ax_mqtt_str *share, ax_mqtt_str *topic)
{
    ax_mqtt_str sh, tp;
    if (len == 0 || len > 65535 || !ax_mqtt_utf8_valid(s, len)) return false;
    if (split_share(s, len, &sh, &tp)) {
        /* section 4.8.2: a non-empty ShareName without '/', '+' or '#',
         * then '/' and a filter */
        if (sh.len == 0 || tp.ptr == sh.ptr + sh.len) return false;
        if (memchr(sh.ptr, '+', sh.len) || memchr(sh.ptr, '#', sh.len)) return false;
    }
    if (!filter_levels_valid(tp.ptr, tp.len)) return false;
    if (share) *share = sh;
    if (topic) *topic = tp;
    return true;
}

uint8_t ax_mqtt_connack_v3_code(uint8_t reason)
{
    switch (reason) {
    case AX_MQTT_RC_UNSUPPORTED_VERSION:
        return AX_MQTT_V3_BAD_VERSION;
    case AX_MQTT_RC_CLIENT_ID_INVALID:
        return AX_MQTT_V3_ID_REJECTED;
    case AX_MQTT_RC_BAD_USER_OR_PASSWORD:
        return AX_MQTT_V3_BAD_USER_OR_PASSWORD;
    case AX_MQTT_RC_NOT_AUTHORIZED:
    case AX_MQTT_RC_BANNED:
        return AX_MQTT_V3_NOT_AUTHORIZED;
    default:
        return reason < 0x80 ? reason : AX_MQTT_V3_SERVER_UNAVAILABLE;
    }
}

const char *ax_mqtt_type_name(unsigned type)
{
    static const char *const names[16] = {
        NULL,      "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",  "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };
    return type < 16 && names[type] ? names[type] : "?";
}

const char *ax_mqtt_reason_name(unsigned code)
{
    switch (code) {
    case 0x00:
        return "Success";
    case 0x01:
        return "Granted QoS 1";
    case 0x02:
        return "Granted QoS 2";
    case 0x04:
        return "Disconnect with Will Message";
    case 0x10:
        return "No matching subscribers";
    case 0x11:
        return "No subscription existed";
    case 0x18:
        return "Continue authentication";
    case 0x19:
        return "Re-authenticate";
    case 0x80:
        return "Unspecified error";
    case 0x81:
        return "Malformed Packet";
    case 0x82:
        return "Protocol Error";
    case 0x83:
        return "Implementation specific error";
    case 0x84:
        return "Unsupported Protocol Version";
    case 0x85:
        return "Client Identifier not valid";
    case 0x86:
        return "Bad User Name or Password";
    case 0x87:
        return "Not authorized";
    case 0x88:
        return "Server unavailable";
    case 0x89:
        return "Server busy";
    case 0x8A:
        return "Banned";
    case 0x8B:
        return "Server shutting down";
    case 0x8C:
        return "Bad authentication method";
    case 0x8D:
        return "Keep Alive timeout";
    case 0x8E:
        return "Session taken over";
    case 0x8F:
        return "Topic Filter invalid";
    case 0x90:
        return "Topic Name invalid";
    case 0x91:
        return "Packet Identifier in use";
    case 0x92:
        return "Packet Identifier not found";
    case 0x93:
        return "Receive Maximum exceeded";
    case 0x94:
        return "Topic Alias invalid";
    case 0x95:
        return "Packet too large";
    case 0x96:
        return "Message rate too high";
    case 0x97:
        return "Quota exceeded";
    case 0x98:
        return "Administrative action";
    case 0x99:
        return "Payload format invalid";
    case 0x9A:
        return "Retain not supported";
    case 0x9B:
        return "QoS not supported";
    case 0x9C:
        return "Use another server";
    case 0x9D:
        return "Server moved";
    case 0x9E:
        return "Shared Subscriptions not supported";
    case 0x9F:
        return "Connection rate exceeded";
    case 0xA0:
        return "Maximum connect time";
    case 0xA1:
        return "Subscription Identifiers not supported";
    case 0xA2:
        return "Wildcard Subscriptions not supported";
    default:
        return "?";
    }
}

/* --- the reader --- */

typedef struct rd {
    const uint8_t *p, *end;
    const char *err; /* first rule broken */
    uint8_t rc;      /* and its reason code */
    uint8_t version;
} rd;

static bool bad(rd *r, uint8_t rc, const char *why)
{
    if (!r->err) r->err = why, r->rc = rc;
    return false;
}

static size_t left(const rd *r)
{
    return (size_t)(r->end - r->p);
}

static bool get_u8(rd *r, uint8_t *v)
{
    if (r->p >= r->end) return bad(r, MALFORMED, "packet ends inside a field");
    *v = *r->p++;
    return true;
}

static bool get_u16(rd *r, uint16_t *v)
{
    if (left(r) < 2) return bad(r, MALFORMED, "packet ends inside a field");
    *v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return true;
}

static bool get_u32(rd *r, uint32_t *v)
{
    if (left(r) < 4) return bad(r, MALFORMED, "packet ends inside a field");
    *v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
    r->p += 4;
    return true;
}

/* Section 1.5.5: at most 4 bytes, and the fewest that hold the value. */
static bool get_varint(rd *r, uint32_t *v)
{
    uint32_t x = 0;
    for (unsigned i = 0; i < 4; i++) {
        if (r->p >= r->end) return bad(r, MALFORMED, "packet ends inside a variable byte integer");
        uint8_t b = *r->p++;
        x |= (uint32_t)(b & 127u) << (7 * i);
        if (!(b & 128u)) {
            if (b == 0 && i > 0) return bad(r, MALFORMED, "variable byte integer not minimal");
            *v = x;
            return true;
        }
    }
    return bad(r, MALFORMED, "variable byte integer longer than 4 bytes");
}

static bool get_bin(rd *r, ax_mqtt_str *s)
{
    uint16_t n;
    if (!get_u16(r, &n)) return false;
    if (left(r) < n) return bad(r, MALFORMED, "string or binary data longer than the packet");
    s->ptr = (const char *)r->p;
    s->len = n;
    r->p += n;
    return true;
}

static bool get_utf8(rd *r, ax_mqtt_str *s)
{
    if (!get_bin(r, s)) return false;
    if (!ax_mqtt_utf8_valid(s->ptr, s->len))
        return bad(r, MALFORMED, "string not well-formed UTF-8 or contains U+0000");
    return true;
}

static bool get_packet_id(rd *r, uint16_t *id)
{
    if (!get_u16(r, id)) return false;
    if (*id == 0) return bad(r, PROTOCOL, "packet identifier 0");
    return true;
}

static bool at_end(rd *r)
{
    if (r->p != r->end) return bad(r, MALFORMED, "bytes after the last field");
    return true;
}

/* --- properties --- */

static bool flag_value(rd *r, uint32_t v, uint8_t *field)
{
    if (v > 1) return bad(r, PROTOCOL, "property value not 0 or 1");
    *field = (uint8_t)v;
    return true;
}

/* Stores one decoded property in its field and checks its value range. */
static bool store_prop(rd *r, ax_mqtt_props *pr, unsigned id, uint32_t num, ax_mqtt_str str)
{
    switch (id) {
    case AX_MQTT_PROP_PAYLOAD_FORMAT:
        return flag_value(r, num, &pr->payload_format);
    case AX_MQTT_PROP_MESSAGE_EXPIRY:
        pr->message_expiry = num;
        break;
    case AX_MQTT_PROP_CONTENT_TYPE:
        pr->content_type = str;
        break;
    case AX_MQTT_PROP_RESPONSE_TOPIC:
        if (str.len == 0 || memchr(str.ptr, '+', str.len) || memchr(str.ptr, '#', str.len))
            return bad(r, PROTOCOL, "Response Topic not a topic name");
        pr->response_topic = str;
        break;
    case AX_MQTT_PROP_CORRELATION_DATA:
        pr->correlation_data = str;
        break;
    case AX_MQTT_PROP_SUB_ID:
        if (num == 0) return bad(r, PROTOCOL, "Subscription Identifier 0");
        if (pr->n_sub_ids++ == 0) pr->sub_id = num;
        break;
    case AX_MQTT_PROP_SESSION_EXPIRY:
        pr->session_expiry = num;
        break;
    case AX_MQTT_PROP_ASSIGNED_CLIENT_ID:
        pr->assigned_client_id = str;
        break;
    case AX_MQTT_PROP_SERVER_KEEP_ALIVE:
        pr->server_keep_alive = (uint16_t)num;
        break;
    case AX_MQTT_PROP_AUTH_METHOD:
        pr->auth_method = str;
        break;
    case AX_MQTT_PROP_AUTH_DATA:
        pr->auth_data = str;
        break;
    case AX_MQTT_PROP_REQUEST_PROBLEM_INFO:
        return flag_value(r, num, &pr->request_problem_info);
    case AX_MQTT_PROP_WILL_DELAY:
        pr->will_delay = num;
        break;
    case AX_MQTT_PROP_REQUEST_RESPONSE_INFO:
        return flag_value(r, num, &pr->request_response_info);
    case AX_MQTT_PROP_RESPONSE_INFO:
        pr->response_info = str;
        break;
    case AX_MQTT_PROP_SERVER_REFERENCE:
        pr->server_reference = str;
        break;
    case AX_MQTT_PROP_REASON_STRING:
        pr->reason_string = str;
        break;
    case AX_MQTT_PROP_RECEIVE_MAX:
        if (num == 0) return bad(r, PROTOCOL, "Receive Maximum 0");
        pr->receive_max = (uint16_t)num;
        break;
    case AX_MQTT_PROP_TOPIC_ALIAS_MAX:
        pr->topic_alias_max = (uint16_t)num;
        break;
    case AX_MQTT_PROP_TOPIC_ALIAS:
        if (num == 0) return bad(r, AX_MQTT_RC_TOPIC_ALIAS_INVALID, "Topic Alias 0");
        pr->topic_alias = (uint16_t)num;
        break;
    case AX_MQTT_PROP_MAX_QOS:
        return flag_value(r, num, &pr->max_qos);
    case AX_MQTT_PROP_RETAIN_AVAILABLE:
        return flag_value(r, num, &pr->retain_available);
    case AX_MQTT_PROP_USER:
        pr->n_user++;
        break;
    case AX_MQTT_PROP_MAX_PACKET_SIZE:
        if (num == 0) return bad(r, PROTOCOL, "Maximum Packet Size 0");
        pr->max_packet_size = num;
        break;
    case AX_MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        return flag_value(r, num, &pr->wildcard_sub_available);
    case AX_MQTT_PROP_SUB_ID_AVAILABLE:
        return flag_value(r, num, &pr->sub_id_available);
    case AX_MQTT_PROP_SHARED_SUB_AVAILABLE:
        return flag_value(r, num, &pr->shared_sub_available);
    default:
        break;
    }
    return true;
}

/* Reads one property's value by its kind. */
static bool get_prop_value(rd *r, unsigned kind, uint32_t *num, ax_mqtt_str *str)
{
    uint8_t b;
    uint16_t w;
    ax_mqtt_str value;
    switch (kind) {
    case AX__MQTT_K_BYTE:
        if (!get_u8(r, &b)) return false;
        *num = b;
        return true;
    case AX__MQTT_K_U16:
        if (!get_u16(r, &w)) return false;
        *num = w;
        return true;
    case AX__MQTT_K_U32:
        return get_u32(r, num);
    case AX__MQTT_K_VARINT:
        return get_varint(r, num);
    case AX__MQTT_K_UTF8:
        return get_utf8(r, str);
    case AX__MQTT_K_BINARY:
        return get_bin(r, str);
    default: /* K_PAIR */
        return get_utf8(r, str) && get_utf8(r, &value);
    }
}

/* The properties up to r->end, of a packet of `type` (0: will). */
static bool get_prop_list(rd *r, unsigned type, ax_mqtt_props *pr)
{
    while (r->p < r->end) {
        uint32_t id, num = 0;
        ax_mqtt_str str = {NULL, 0};
        if (!get_varint(r, &id)) return false;
        if (!ax_mqtt_prop_allowed(type, id))
            return bad(r, MALFORMED, "property not allowed in this packet");
        uint64_t bit = AX_MQTT_PBIT(id);
        bool repeats =
            id == AX_MQTT_PROP_USER || (id == AX_MQTT_PROP_SUB_ID && type == AX_MQTT_PUBLISH);
        if ((pr->present & bit) && !repeats) return bad(r, PROTOCOL, "property included twice");
        pr->present |= bit;
        if (!get_prop_value(r, ax__mqtt_prop_kind(id), &num, &str)) return false;
        if (!store_prop(r, pr, id, num, str)) return false;
    }
    if ((pr->present & PB(AUTH_DATA)) && !(pr->present & PB(AUTH_METHOD)))
        return bad(r, PROTOCOL, "Authentication Data without Authentication Method");
    return true;
}

/* A property block (section 2.2.2) of a packet of `type` (0: will). */
static bool get_props(rd *r, unsigned type, ax_mqtt_props *pr)
{
    uint32_t len;
    if (!get_varint(r, &len)) return false;
    if (len > left(r)) return bad(r, MALFORMED, "property length beyond the packet");
    pr->raw.ptr = (const char *)r->p;
    pr->raw.len = len;
    const uint8_t *outer_end = r->end;
    r->end = r->p + len;
    bool ok = get_prop_list(r, type, pr);
    r->end = outer_end;
    return ok;
}

int ax_mqtt_props_parse(const void *buf, size_t len, unsigned type, ax_mqtt_props *out)
{
    memset(out, 0, sizeof(*out));
    rd r = {.p = buf, .end = (const uint8_t *)buf + len, .version = AX_MQTT_V5};
    out->raw.ptr = buf;
    out->raw.len = len;
    return get_prop_list(&r, type, out) ? 0 : -(int)(r.rc ? r.rc : MALFORMED);
}

static bool get_props_v5(rd *r, unsigned type, ax_mqtt_props *pr)
{
    return r->version < AX_MQTT_V5 || get_props(r, type, pr);
}

/* --- packets --- */

static bool parse_connect(rd *r, ax_mqtt_connect *c)
{
    uint8_t flags;
    if (!get_utf8(r, &c->protocol_name) || !get_u8(r, &c->level)) return false;
    bool mqtt = c->protocol_name.len == 4 && !memcmp(c->protocol_name.ptr, "MQTT", 4);
    bool mqisdp = c->protocol_name.len == 6 && !memcmp(c->protocol_name.ptr, "MQIsdp", 6);
    if (!(mqtt && (c->level == AX_MQTT_V311 || c->level == AX_MQTT_V5)) &&
        !(mqisdp && c->level == AX_MQTT_V31))
        return bad(r, AX_MQTT_RC_UNSUPPORTED_VERSION, "unsupported protocol name or level");
    r->version = c->level == AX_MQTT_V5 ? AX_MQTT_V5 : AX_MQTT_V311;
    if (!get_u8(r, &flags)) return false;
    if (flags & 0x01) return bad(r, MALFORMED, "CONNECT reserved flag set");
    c->clean = flags & 0x02;
    c->will = flags & 0x04;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = flags & 0x20;
    c->has_password = flags & 0x40;
    c->has_username = flags & 0x80;
    if (!c->will && (c->will_qos || c->will_retain))
        return bad(r, MALFORMED, "will QoS or retain without the will flag");
    if (c->will_qos == 3) return bad(r, MALFORMED, "will QoS 3");
    if (r->version < AX_MQTT_V5 && c->has_password && !c->has_username)
        return bad(r, MALFORMED, "password without user name");
    if (!get_u16(r, &c->keep_alive) || !get_props_v5(r, AX_MQTT_CONNECT, &c->props) ||
        !get_utf8(r, &c->client_id))
        return false;
    if (c->will) {
        if (!get_props_v5(r, 0, &c->will_props) || !get_utf8(r, &c->will_topic) ||
            !get_bin(r, &c->will_payload))
            return false;
        if (!ax_mqtt_topic_valid(c->will_topic.ptr, c->will_topic.len))
            return bad(r, MALFORMED, "will topic not a valid topic name");
    }
    if (c->has_username && !get_utf8(r, &c->username)) return false;
    if (c->has_password && !get_bin(r, &c->password)) return false;
    return at_end(r);
}

static bool parse_connack(rd *r, ax_mqtt_connack *c)
{
    uint8_t flags;
    if (!get_u8(r, &flags) || !get_u8(r, &c->code)) return false;
    if (flags & 0xFE) return bad(r, MALFORMED, "CONNACK reserved flag set");
    c->session_present = flags & 1;
    if (r->version < AX_MQTT_V5) {
        if (c->code > AX_MQTT_V3_NOT_AUTHORIZED)
            return bad(r, MALFORMED, "unknown CONNACK return code");
    } else if (!code_in(rc_connack, c->code)) {
        return bad(r, MALFORMED, "reason code not allowed in CONNACK");
    }
    return get_props_v5(r, AX_MQTT_CONNACK, &c->props) && at_end(r);
}

static bool parse_publish(rd *r, uint8_t flags, ax_mqtt_publish *p)
{
    p->dup = flags & 0x08;
    p->qos = (flags >> 1) & 3;
    p->retain = flags & 0x01;
    if (!get_utf8(r, &p->topic)) return false;
    if (p->qos && !get_packet_id(r, &p->packet_id)) return false;
    if (!get_props_v5(r, AX_MQTT_PUBLISH, &p->props)) return false;
    if (p->topic.len == 0) {
        if (!(p->props.present & PB(TOPIC_ALIAS)))
            return bad(r, PROTOCOL, "empty topic name without a Topic Alias");
    } else if (memchr(p->topic.ptr, '+', p->topic.len) || memchr(p->topic.ptr, '#', p->topic.len)) {
        return bad(r, MALFORMED, "wildcard in a topic name");
    }
    p->payload = r->p;
    p->payload_len = left(r);
    r->p = r->end;
    return true;
}

static bool parse_ack(rd *r, unsigned type, ax_mqtt_ack *a)
{
    if (!get_packet_id(r, &a->packet_id)) return false;
    if (r->version < AX_MQTT_V5 || left(r) == 0) return at_end(r);
    if (!get_u8(r, &a->code)) return false;
    const uint8_t *set = type == AX_MQTT_PUBACK || type == AX_MQTT_PUBREC ? rc_puback : rc_pubrel;
    if (!code_in(set, a->code)) return bad(r, MALFORMED, "reason code not allowed in this ack");
    if (left(r) == 0) return true;
    return get_props(r, type, &a->props) && at_end(r);
}

static bool get_sub(rd *r, ax_mqtt_sub *s)
{
    uint8_t o;
    if (!get_utf8(r, &s->filter) || !get_u8(r, &o)) return false;
    if (!ax_mqtt_filter_valid(s->filter.ptr, s->filter.len, &s->share, &s->topic))
        return bad(r, MALFORMED, "topic filter not valid");
    if (o & (r->version < AX_MQTT_V5 ? 0xFC : 0xC0))
        return bad(r, MALFORMED, "subscription options reserved bits set");
    s->qos = o & 3;
    if (s->qos == 3) return bad(r, MALFORMED, "subscription QoS 3");
    s->no_local = o & 0x04;
    s->retain_as_published = o & 0x08;
    s->retain_handling = (o >> 4) & 3;
    if (s->retain_handling == 3) return bad(r, PROTOCOL, "retain handling 3");
    if (s->no_local && s->share.len) return bad(r, PROTOCOL, "no local on a shared subscription");
    return true;
}

static bool parse_subscribe(rd *r, ax_mqtt_subscribe *s)
{
    if (!get_packet_id(r, &s->packet_id) || !get_props_v5(r, AX_MQTT_SUBSCRIBE, &s->props))
        return false;
    s->list.ptr = (const char *)r->p;
    s->list.len = left(r);
    if (s->list.len == 0) return bad(r, PROTOCOL, "SUBSCRIBE without a topic filter");
    while (r->p < r->end) {
        ax_mqtt_sub sub;
        if (!get_sub(r, &sub)) return false;
        s->n_subs++;
    }
    return true;
}

static bool parse_unsubscribe(rd *r, ax_mqtt_unsubscribe *u)
{
    if (!get_packet_id(r, &u->packet_id) || !get_props_v5(r, AX_MQTT_UNSUBSCRIBE, &u->props))
        return false;
    u->list.ptr = (const char *)r->p;
    u->list.len = left(r);
    if (u->list.len == 0) return bad(r, PROTOCOL, "UNSUBSCRIBE without a topic filter");
    while (r->p < r->end) {
        ax_mqtt_str f;
        if (!get_utf8(r, &f)) return false;
        if (!ax_mqtt_filter_valid(f.ptr, f.len, NULL, NULL))
            return bad(r, MALFORMED, "topic filter not valid");
        u->n_filters++;
    }
    return true;
}

static bool parse_suback(rd *r, unsigned type, ax_mqtt_suback *s)
{
    if (!get_packet_id(r, &s->packet_id) || !get_props_v5(r, type, &s->props)) return false;
    s->codes = r->p;
    s->n_codes = left(r);
    r->p = r->end;
    if (type == AX_MQTT_UNSUBACK && r->version < AX_MQTT_V5) {
        if (s->n_codes) return bad(r, MALFORMED, "bytes after the last field");
        return true;
    }
    if (s->n_codes == 0) return bad(r, PROTOCOL, "no reason codes");
    const uint8_t *set = type == AX_MQTT_UNSUBACK  ? rc_unsuback
                         : r->version < AX_MQTT_V5 ? rc_suback_v3
                                                   : rc_suback;
    for (size_t i = 0; i < s->n_codes; i++)
        if (!code_in(set, s->codes[i])) return bad(r, MALFORMED, "reason code not allowed here");
    return true;
}

/* DISCONNECT and AUTH: everything may be left out (reason 0, no properties). */
static bool parse_reason(rd *r, unsigned type, ax_mqtt_reason_pkt *d)
{
    if (r->version < AX_MQTT_V5 || left(r) == 0) return at_end(r);
    if (!get_u8(r, &d->code)) return false;
    if (!code_in(type == AX_MQTT_AUTH ? rc_auth : rc_disconnect, d->code))
        return bad(r, MALFORMED, "reason code not allowed here");
    if (left(r) == 0) return true;
    return get_props(r, type, &d->props) && at_end(r);
}

static bool parse_body(rd *r, ax_mqtt_packet *pkt)
{
    unsigned t = pkt->type;
    switch (t) {
    case AX_MQTT_CONNECT:
        return parse_connect(r, &pkt->u.connect);
    case AX_MQTT_CONNACK:
        return parse_connack(r, &pkt->u.connack);
    case AX_MQTT_PUBLISH:
        return parse_publish(r, pkt->flags, &pkt->u.publish);
    case AX_MQTT_PUBACK:
    case AX_MQTT_PUBREC:
    case AX_MQTT_PUBREL:
    case AX_MQTT_PUBCOMP:
        return parse_ack(r, t, &pkt->u.ack);
    case AX_MQTT_SUBSCRIBE:
        return parse_subscribe(r, &pkt->u.subscribe);
    case AX_MQTT_SUBACK:
    case AX_MQTT_UNSUBACK:
        return parse_suback(r, t, &pkt->u.suback);
    case AX_MQTT_UNSUBSCRIBE:
        return parse_unsubscribe(r, &pkt->u.unsubscribe);
    case AX_MQTT_PINGREQ:
    case AX_MQTT_PINGRESP:
        return at_end(r);
    default:
        return parse_reason(r, t, &pkt->u.reason); /* DISCONNECT, AUTH */
    }
}

/* What the first byte alone shows: the type exists in this version, its
 * flags are the ones section 2.1.3 fixes, the packet may come now. */
static const char *check_first_byte(unsigned type, unsigned flags, unsigned version, uint8_t *rc)
{
    *rc = MALFORMED;
    if (type == 0) return "reserved packet type 0";
    if (type == AX_MQTT_AUTH && version && version < AX_MQTT_V5) return "AUTH before MQTT 5.0";
    if (type == AX_MQTT_PUBLISH) {
        unsigned qos = (flags >> 1) & 3;
        if (qos == 3) return "PUBLISH QoS 3";
        if (qos == 0 && (flags & 0x08)) return "DUP set on a QoS 0 PUBLISH";
    } else {
        bool two =
            type == AX_MQTT_PUBREL || type == AX_MQTT_SUBSCRIBE || type == AX_MQTT_UNSUBSCRIBE;
        if (flags != (two ? 2u : 0u)) return "reserved flag bits of the fixed header";
    }
    if (version == 0 && type != AX_MQTT_CONNECT) {
        *rc = PROTOCOL;
        return "first packet is not CONNECT";
    }
    return NULL;
}

/* Bytes of the union member a packet type fills: zeroing only those keeps
 * a small PUBLISH cheap. */
static size_t member_size(unsigned type)
{
    switch (type) {
    case AX_MQTT_CONNECT:
        return sizeof(ax_mqtt_connect);
    case AX_MQTT_CONNACK:
        return sizeof(ax_mqtt_connack);
    case AX_MQTT_PUBLISH:
        return sizeof(ax_mqtt_publish);
    case AX_MQTT_SUBSCRIBE:
        return sizeof(ax_mqtt_subscribe);
    case AX_MQTT_SUBACK:
    case AX_MQTT_UNSUBACK:
        return sizeof(ax_mqtt_suback);
    case AX_MQTT_UNSUBSCRIBE:
        return sizeof(ax_mqtt_unsubscribe);
    case AX_MQTT_DISCONNECT:
    case AX_MQTT_AUTH:
        return sizeof(ax_mqtt_reason_pkt);
    default:
        return sizeof(ax_mqtt_ack); /* acks; nothing for PINGREQ/PINGRESP */
    }
}

int ax_mqtt_parse(const uint8_t *buf, size_t len, unsigned version, size_t max_packet,
                  ax_mqtt_packet *pkt)
{
    uint8_t rc;
    pkt->type = 0;
    pkt->flags = 0;
    pkt->size = 0;
    pkt->error = NULL;
    if (len == 0) return AX_MQTT_INCOMPLETE;
    unsigned type = buf[0] >> 4, flags = buf[0] & 15u;
    pkt->error = check_first_byte(type, flags, version, &rc);
    if (pkt->error) return -(int)rc;
    pkt->type = (uint8_t)type;
    pkt->flags = (uint8_t)flags;

    rd r = {.p = buf + 1, .end = buf + (len < 5 ? len : 5)};
    uint32_t rem;
    if (!get_varint(&r, &rem)) {
        if (r.p < buf + 5 && r.p == buf + len && strcmp(r.err, "variable byte integer not minimal"))
            return AX_MQTT_INCOMPLETE; /* the length is still arriving */
        pkt->error = r.err;
        return -(int)r.rc;
    }
    size_t hdr = (size_t)(r.p - buf);
    pkt->size = (uint32_t)(hdr + rem);
    if (max_packet && pkt->size > max_packet) {
        pkt->error = "packet larger than the maximum packet size";
        return -AX_MQTT_RC_PACKET_TOO_LARGE;
    }
    if (len < pkt->size) return AX_MQTT_INCOMPLETE;

    memset(&pkt->u, 0, member_size(type));
    r = (rd){.p = buf + hdr, .end = buf + pkt->size, .version = (uint8_t)version};
    if (!parse_body(&r, pkt)) {
        pkt->error = r.err;
        return -(int)r.rc;
    }
    return (int)pkt->size;
}

/* --- iterators --- */

static uint32_t read_varint(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    uint32_t v = 0;
    for (unsigned i = 0;; i++) {
        v |= (uint32_t)(p[i] & 127u) << (7 * i);
        if (!(p[i] & 128u)) {
            *pp = p + i + 1;
            return v;
        }
    }
}

static ax_mqtt_str read_str(const uint8_t **pp)
{
    const uint8_t *p = *pp;
    ax_mqtt_str s = {(const char *)p + 2, (size_t)(p[0] << 8 | p[1])};
    *pp = p + 2 + s.len;
    return s;
}

/* Decodes the property at *pp (already validated) and moves past it. */
static void read_prop(const uint8_t **pp, ax_mqtt_prop *out)
{
    const uint8_t *p = *pp;
    memset(out, 0, sizeof(*out));
    out->id = (uint8_t)read_varint(&p);
    switch (ax__mqtt_prop_kind(out->id)) {
    case AX__MQTT_K_BYTE:
        out->num = *p++;
        break;
    case AX__MQTT_K_U16:
        out->num = (uint32_t)(p[0] << 8 | p[1]);
        p += 2;
        break;
    case AX__MQTT_K_U32:
        out->num = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        p += 4;
        break;
    case AX__MQTT_K_VARINT:
        out->num = read_varint(&p);
        break;
    case AX__MQTT_K_PAIR:
        out->str = read_str(&p);
        out->str2 = read_str(&p);
        break;
    default:
        out->str = read_str(&p);
        break;
    }
    *pp = p;
}

bool ax_mqtt_prop_next(ax_mqtt_iter *it, ax_mqtt_prop *out)
{
    if (!it->p || it->p >= it->end) return false;
    read_prop(&it->p, out);
    return true;
}

bool ax_mqtt_user_next(ax_mqtt_iter *it, ax_mqtt_str *key, ax_mqtt_str *value)
{
    ax_mqtt_prop pr;
    while (ax_mqtt_prop_next(it, &pr)) {
        if (pr.id != AX_MQTT_PROP_USER) continue;
        *key = pr.str;
        *value = pr.str2;
        return true;
    }
    return false;
}

bool ax_mqtt_sub_id_next(ax_mqtt_iter *it, uint32_t *id)
{
    ax_mqtt_prop pr;
    while (ax_mqtt_prop_next(it, &pr)) {
        if (pr.id != AX_MQTT_PROP_SUB_ID) continue;
        *id = pr.num;
        return true;
    }
    return false;
}

bool ax_mqtt_sub_next(ax_mqtt_iter *it, unsigned version, ax_mqtt_sub *out)
{
    if (!it->p || it->p >= it->end) return false;
    memset(out, 0, sizeof(*out));
    out->filter = read_str(&it->p);
    uint8_t o = *it->p++;
    out->qos = o & 3;
    if (version >= AX_MQTT_V5) {
        out->no_local = o & 0x04;
        out->retain_as_published = o & 0x08;
        out->retain_handling = (o >> 4) & 3;
    }
    split_share(out->filter.ptr, out->filter.len, &out->share, &out->topic);
    return true;
}

bool ax_mqtt_unsub_next(ax_mqtt_iter *it, ax_mqtt_str *filter)
{
    if (!it->p || it->p >= it->end) return false;
    *filter = read_str(&it->p);
    return true;
}

size_t ax_mqtt_props_filter(const ax_mqtt_props *p, uint64_t keep, uint8_t *out, size_t cap)
{
    const uint8_t *s = (const uint8_t *)p->raw.ptr, *end = s ? s + p->raw.len : s;
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && (!out || n > cap)) break;
        size_t w = 0;
        for (const uint8_t *q = s; q && q < end;) {
            const uint8_t *start = q;
            ax_mqtt_prop pr;
            read_prop(&q, &pr);
            if (pr.id >= 64 || !(keep & AX_MQTT_PBIT(pr.id))) continue;
            if (pass == 1) memcpy(out + w, start, (size_t)(q - start));
            w += (size_t)(q - start);
        }
        n = w;
    }
    return n;
}
