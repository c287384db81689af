/* mqtt_encode.c: writing MQTT packets (see mqtt.h).
 *
 * Every body is produced by one function run twice over a writer: first
 * with no buffer, to measure (the remaining length must precede the body,
 * and a property block's length its properties), then for real.  One code
 * path for both passes means the size returned is the size written. */
#include <string.h>

#include "proto/mqtt/mqtt.h"
#include "proto/mqtt/mqtt_internal.h"

typedef struct wr {
    uint8_t *b; /* NULL while measuring */
    size_t n;
    bool bad; /* a field cannot be encoded */
} wr;

static void put8(wr *w, unsigned v)
{
    if (w->b) w->b[w->n] = (uint8_t)v;
    w->n++;
}

static void put16(wr *w, unsigned v)
{
    put8(w, (v >> 8) & 0xFF);
    put8(w, v & 0xFF);
}

static void put32(wr *w, uint32_t v)
{
    put16(w, v >> 16);
    put16(w, v & 0xFFFF);
}

static void put_varint(wr *w, uint32_t v)
{
    size_t n = ax_mqtt_varint_size(v);
    if (n == 0) {
        w->bad = true;
        return;
    }
    if (w->b) ax_mqtt_varint_write(w->b + w->n, v);
    w->n += n;
}

static void put_bytes(wr *w, const void *p, size_t len)
{
    if (len > AX_MQTT_MAX_REMAINING || w->n > AX_MQTT_MAX_REMAINING) {
        w->bad = true; /* cannot be in a packet, and would wrap w->n */
        return;
    }
    if (w->b && len) memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void put_str(wr *w, ax_mqtt_str s)
{
    if (s.len > 65535 || (s.len && !s.ptr)) {
        w->bad = true;
        return;
    }
    put16(w, (unsigned)s.len);
    put_bytes(w, s.ptr, s.len);
}

/* --- properties --- */

static uint32_t prop_num(const ax_mqtt_props *p, unsigned id)
{
    switch (id) {
    case AX_MQTT_PROP_PAYLOAD_FORMAT:
        return p->payload_format;
    case AX_MQTT_PROP_MESSAGE_EXPIRY:
        return p->message_expiry;
    case AX_MQTT_PROP_SESSION_EXPIRY:
        return p->session_expiry;
    case AX_MQTT_PROP_SERVER_KEEP_ALIVE:
        return p->server_keep_alive;
    case AX_MQTT_PROP_REQUEST_PROBLEM_INFO:
        return p->request_problem_info;
    case AX_MQTT_PROP_WILL_DELAY:
        return p->will_delay;
    case AX_MQTT_PROP_REQUEST_RESPONSE_INFO:
        return p->request_response_info;
    case AX_MQTT_PROP_RECEIVE_MAX:
        return p->receive_max;
    case AX_MQTT_PROP_TOPIC_ALIAS_MAX:
        return p->topic_alias_max;
    case AX_MQTT_PROP_TOPIC_ALIAS:
        return p->topic_alias;
    case AX_MQTT_PROP_MAX_QOS:
        return p->max_qos;
    case AX_MQTT_PROP_RETAIN_AVAILABLE:
        return p->retain_available;
    case AX_MQTT_PROP_MAX_PACKET_SIZE:
        return p->max_packet_size;
    case AX_MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        return p->wildcard_sub_available;
    case AX_MQTT_PROP_SUB_ID_AVAILABLE:
        return p->sub_id_available;
    case AX_MQTT_PROP_SHARED_SUB_AVAILABLE:
        return p->shared_sub_available;
    default:
        return 0;
    }
}

static ax_mqtt_str prop_str(const ax_mqtt_props *p, unsigned id)
{
    switch (id) {
    case AX_MQTT_PROP_CONTENT_TYPE:
        return p->content_type;
    case AX_MQTT_PROP_RESPONSE_TOPIC:
        return p->response_topic;
    case AX_MQTT_PROP_CORRELATION_DATA:
        return p->correlation_data;
    case AX_MQTT_PROP_ASSIGNED_CLIENT_ID:
        return p->assigned_client_id;
    case AX_MQTT_PROP_AUTH_METHOD:
        return p->auth_method;
    case AX_MQTT_PROP_AUTH_DATA:
        return p->auth_data;
    case AX_MQTT_PROP_RESPONSE_INFO:
        return p->response_info;
    case AX_MQTT_PROP_SERVER_REFERENCE:
        return p->server_reference;
    case AX_MQTT_PROP_REASON_STRING:
        return p->reason_string;
    default:
        return (ax_mqtt_str){NULL, 0};
    }
}

/* The properties themselves, without the block's length. */
static void put_prop_list(wr *w, unsigned type, const ax_mqtt_props *p)
{
    uint64_t scalar =
        p->present & ~(AX_MQTT_PBIT(AX_MQTT_PROP_USER) | AX_MQTT_PBIT(AX_MQTT_PROP_SUB_ID));
    for (unsigned id = 1; scalar && id <= AX__MQTT_PROP_LAST; id++) {
        if (!(scalar & AX_MQTT_PBIT(id))) continue;
        if (!ax_mqtt_prop_allowed(type, id)) {
            w->bad = true;
            return;
        }
        put8(w, id);
        switch (ax__mqtt_prop_kind(id)) {
        case AX__MQTT_K_BYTE:
            put8(w, prop_num(p, id) & 0xFF);
            break;
        case AX__MQTT_K_U16:
            put16(w, prop_num(p, id) & 0xFFFF);
            break;
        case AX__MQTT_K_U32:
            put32(w, prop_num(p, id));
            break;
        default:
            put_str(w, prop_str(p, id));
            break;
        }
    }
    if (scalar >> (AX__MQTT_PROP_LAST + 1)) w->bad = true; /* unknown identifiers */
    if (p->sub_ids && p->n_sub_ids && !ax_mqtt_prop_allowed(type, AX_MQTT_PROP_SUB_ID))
        w->bad = true;
    for (size_t i = 0; p->sub_ids && i < p->n_sub_ids; i++) {
        if (p->sub_ids[i] == 0) w->bad = true;
        put8(w, AX_MQTT_PROP_SUB_ID);
        put_varint(w, p->sub_ids[i]);
    }
    for (size_t i = 0; p->user && i < p->n_user; i++) {
        put8(w, AX_MQTT_PROP_USER);
        put_str(w, p->user[i].key);
        put_str(w, p->user[i].value);
    }
    if (p->extra.len && !p->extra.ptr) w->bad = true;
    put_bytes(w, p->extra.ptr, p->extra.len);
}

static size_t props_len(unsigned type, const ax_mqtt_props *p, bool *bad)
{
    wr m = {NULL, 0, false};
    put_prop_list(&m, type, p);
    if (m.bad) *bad = true;
    return m.n;
}

size_t ax_mqtt_props_encode(uint8_t *out, size_t cap, unsigned type, const ax_mqtt_props *p)
{
    bool bad = false;
    size_t n = props_len(type, p, &bad);
    if (bad) return 0;
    if (out && n <= cap) {
        wr w = {out, 0, false};
        put_prop_list(&w, type, p);
    }
    return n;
}

/* A property block: its length, then the properties (5.0 only). */
static void put_props(wr *w, unsigned version, unsigned type, const ax_mqtt_props *p)
{
    if (version < AX_MQTT_V5) return;
    size_t n = props_len(type, p, &w->bad);
    if (n > AX_MQTT_MAX_REMAINING) {
        w->bad = true;
        return;
    }
    put_varint(w, (uint32_t)n);
    put_prop_list(w, type, p);
}

/* --- packet bodies --- */

static void put_connect(wr *w, unsigned version, const ax_mqtt_connect *c)
{
    unsigned flags =
        (c->clean ? 0x02u : 0) | (c->has_password ? 0x40u : 0) | (c->has_username ? 0x80u : 0);
    if (c->will) flags |= 0x04u | (unsigned)c->will_qos << 3 | (c->will_retain ? 0x20u : 0);
    if (c->will_qos > 2 || (!c->will && (c->will_qos || c->will_retain)) ||
        (version < AX_MQTT_V5 && c->has_password && !c->has_username))
        w->bad = true;
    if (version == AX_MQTT_V31)
        put_str(w, (ax_mqtt_str){"MQIsdp", 6});
    else
        put_str(w, (ax_mqtt_str){"MQTT", 4});
    put8(w, version);
    put8(w, flags);
    put16(w, c->keep_alive);
    put_props(w, version, AX_MQTT_CONNECT, &c->props);
    put_str(w, c->client_id);
    if (c->will) {
        put_props(w, version, 0, &c->will_props);
        put_str(w, c->will_topic);
        put_str(w, c->will_payload);
    }
    if (c->has_username) put_str(w, c->username);
    if (c->has_password) put_str(w, c->password);
}

static void put_connack(wr *w, unsigned version, const ax_mqtt_connack *c)
{
    put8(w, c->session_present ? 1 : 0);
    put8(w, version < AX_MQTT_V5 ? ax_mqtt_connack_v3_code(c->code) : c->code);
    put_props(w, version, AX_MQTT_CONNACK, &c->props);
}

/* The PUBLISH body up to the payload. */
static void put_publish_head(wr *w, unsigned version, const ax_mqtt_publish *p)
{
    if (p->qos > 2 || (p->qos && p->packet_id == 0) || (p->dup && p->qos == 0)) w->bad = true;
    put_str(w, p->topic);
    if (p->qos) put16(w, p->packet_id);
    put_props(w, version, AX_MQTT_PUBLISH, &p->props);
}

/* Reason code and properties that may be left out when empty (acks,
 * DISCONNECT, AUTH): nothing for 0 without properties, the code alone
 * without properties. */
static void put_optional_reason(wr *w, unsigned version, unsigned type, uint8_t code,
                                const ax_mqtt_props *p)
{
    if (version < AX_MQTT_V5) return;
    bool bad = false;
    size_t n = props_len(type, p, &bad);
    if (bad) w->bad = true;
    if (n == 0 && code == 0) return;
    put8(w, code);
    if (n) put_props(w, version, type, p);
}

static void put_subscribe(wr *w, unsigned version, const ax_mqtt_subscribe *s)
{
    if (s->packet_id == 0) w->bad = true;
    put16(w, s->packet_id);
    put_props(w, version, AX_MQTT_SUBSCRIBE, &s->props);
    if (!s->subs) {
        if (s->list.len == 0) w->bad = true;
        put_bytes(w, s->list.ptr, s->list.len);
        return;
    }
    if (s->n_subs == 0) w->bad = true;
    for (size_t i = 0; i < s->n_subs; i++) {
        const ax_mqtt_sub *e = &s->subs[i];
        unsigned o = e->qos;
        if (version >= AX_MQTT_V5)
            o |= (e->no_local ? 0x04u : 0) | (e->retain_as_published ? 0x08u : 0) |
                 (unsigned)e->retain_handling << 4;
        if (e->qos > 2 || e->retain_handling > 2) w->bad = true;
        put_str(w, e->filter);
        put8(w, o);
    }
}

static void put_unsubscribe(wr *w, unsigned version, const ax_mqtt_unsubscribe *u)
{
    if (u->packet_id == 0) w->bad = true;
    put16(w, u->packet_id);
    put_props(w, version, AX_MQTT_UNSUBSCRIBE, &u->props);
    if (!u->filters) {
        if (u->list.len == 0) w->bad = true;
        put_bytes(w, u->list.ptr, u->list.len);
        return;
    }
    if (u->n_filters == 0) w->bad = true;
    for (size_t i = 0; i < u->n_filters; i++)
        put_str(w, u->filters[i]);
}

static void put_suback(wr *w, unsigned version, unsigned type, const ax_mqtt_suback *s)
{
    if (s->packet_id == 0) w->bad = true;
    put16(w, s->packet_id);
    put_props(w, version, type, &s->props);
    if (type == AX_MQTT_UNSUBACK && version < AX_MQTT_V5) return;
    if (s->n_codes == 0 || !s->codes) w->bad = true;
    for (size_t i = 0; s->codes && i < s->n_codes; i++) {
        uint8_t c = s->codes[i];
        put8(w, version < AX_MQTT_V5 && c >= 0x80 ? 0x80 : c);
    }
}

static void put_body(wr *w, unsigned version, const ax_mqtt_packet *pkt)
{
    unsigned t = pkt->type;
    switch (t) {
    case AX_MQTT_CONNECT:
        put_connect(w, version, &pkt->u.connect);
        break;
    case AX_MQTT_CONNACK:
        put_connack(w, version, &pkt->u.connack);
        break;
    case AX_MQTT_PUBLISH:
        put_publish_head(w, version, &pkt->u.publish);
        if (pkt->u.publish.payload_len && !pkt->u.publish.payload) w->bad = true;
        put_bytes(w, pkt->u.publish.payload, pkt->u.publish.payload_len);
        break;
    case AX_MQTT_PUBACK:
    case AX_MQTT_PUBREC:
    case AX_MQTT_PUBREL:
    case AX_MQTT_PUBCOMP:
        if (pkt->u.ack.packet_id == 0) w->bad = true;
        put16(w, pkt->u.ack.packet_id);
        put_optional_reason(w, version, t, pkt->u.ack.code, &pkt->u.ack.props);
        break;
    case AX_MQTT_SUBSCRIBE:
        put_subscribe(w, version, &pkt->u.subscribe);
        break;
    case AX_MQTT_SUBACK:
    case AX_MQTT_UNSUBACK:
        put_suback(w, version, t, &pkt->u.suback);
        break;
    case AX_MQTT_UNSUBSCRIBE:
        put_unsubscribe(w, version, &pkt->u.unsubscribe);
        break;
    case AX_MQTT_PINGREQ:
    case AX_MQTT_PINGRESP:
        break;
    case AX_MQTT_DISCONNECT:
        put_optional_reason(w, version, t, pkt->u.reason.code, &pkt->u.reason.props);
        break;
    case AX_MQTT_AUTH:
        if (version < AX_MQTT_V5) w->bad = true;
        put_optional_reason(w, version, t, pkt->u.reason.code, &pkt->u.reason.props);
        break;
    default:
        w->bad = true;
        break;
    }
}

static unsigned first_byte(const ax_mqtt_packet *pkt)
{
    unsigned t = pkt->type, b = t << 4;
    if (t == AX_MQTT_PUBLISH) {
        const ax_mqtt_publish *p = &pkt->u.publish;
        b |= (p->dup ? 0x08u : 0) | (unsigned)(p->qos & 3) << 1 | (p->retain ? 0x01u : 0);
    } else if (t == AX_MQTT_PUBREL || t == AX_MQTT_SUBSCRIBE || t == AX_MQTT_UNSUBSCRIBE) {
        b |= 0x02u;
    }
    return b;
}

/* Measures and writes a packet whose body is `body` plus `extra` bytes the
 * caller sends after it (a PUBLISH payload given separately). */
static size_t encode(uint8_t *out, size_t cap, unsigned version, const ax_mqtt_packet *pkt,
                     bool head_only, size_t extra, size_t *body_at)
{
    if (version < AX_MQTT_V31 || version > AX_MQTT_V5) return 0;
    wr m = {NULL, 0, false};
    if (head_only)
        put_publish_head(&m, version, &pkt->u.publish);
    else
        put_body(&m, version, pkt);
    if (m.bad || extra > AX_MQTT_MAX_REMAINING || m.n > AX_MQTT_MAX_REMAINING - extra) return 0;
    uint32_t rem = (uint32_t)(m.n + extra);
    size_t hdr = 1 + ax_mqtt_varint_size(rem), total = hdr + m.n;
    if (body_at) *body_at = hdr;
    if (!out || total > cap) return total;
    out[0] = (uint8_t)first_byte(pkt);
    ax_mqtt_varint_write(out + 1, rem);
    wr w = {out + hdr, 0, false};
    if (head_only)
        put_publish_head(&w, version, &pkt->u.publish);
    else
        put_body(&w, version, pkt);
    return total;
}

size_t ax_mqtt_encode(uint8_t *out, size_t cap, unsigned version, const ax_mqtt_packet *pkt)
{
    return encode(out, cap, version, pkt, false, 0, NULL);
}

size_t ax_mqtt_encode_publish_head(uint8_t *out, size_t cap, unsigned version,
                                   const ax_mqtt_publish *pub, size_t *id_off)
{
    ax_mqtt_packet pkt = {.type = AX_MQTT_PUBLISH};
    size_t body_at = 0;
    pkt.u.publish = *pub;
    if (pkt.u.publish.qos && pkt.u.publish.packet_id == 0)
        pkt.u.publish.packet_id = 0xFFFF; /* a placeholder the caller replaces */
    size_t n = encode(out, cap, version, &pkt, true, pub->payload_len, &body_at);
    if (id_off) *id_off = n && pub->qos ? body_at + 2 + pub->topic.len : 0;
    return n;
}

size_t ax_mqtt_encode_ack(uint8_t out[AX_MQTT_ACK_MAX], unsigned version, unsigned type,
                          uint16_t packet_id, uint8_t code)
{
    if (type < AX_MQTT_PUBACK || type > AX_MQTT_PUBCOMP || packet_id == 0) return 0;
    out[0] = (uint8_t)(type << 4 | (type == AX_MQTT_PUBREL ? 2u : 0u));
    bool with_code = version >= AX_MQTT_V5 && code != 0;
    out[1] = with_code ? 3 : 2;
    out[2] = (uint8_t)(packet_id >> 8);
    out[3] = (uint8_t)packet_id;
    if (!with_code) return 4;
    out[4] = code;
    return 5;
}

size_t ax_mqtt_encode_empty(uint8_t out[2], unsigned type)
{
    if (type != AX_MQTT_PINGREQ && type != AX_MQTT_PINGRESP && type != AX_MQTT_DISCONNECT) return 0;
    out[0] = (uint8_t)(type << 4);
    out[1] = 0;
    return 2;
}
