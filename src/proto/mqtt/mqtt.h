/* mqtt.h: a pure MQTT 3.1.1 and 5.0 packet codec (OASIS MQTT Version 3.1.1
 * and MQTT Version 5.0).  No I/O, no allocation, no global state: bytes in,
 * packets or "need more" out; packets in, bytes out.  Internal, like
 * proto/ws/ws_frame.h and proto/http/http_parser.h; the hub's MQTT gateway,
 * `axon bench` and C clients in this tree include it as "proto/mqtt/mqtt.h".
 *
 * Receiving.  MQTT packets carry their length in the fixed header, so the
 * parser needs no state between calls: hand it the bytes received so far
 * (which must begin at a packet boundary) and it returns
 *   > 0  the size of one complete, valid packet, decoded into *pkt; the next
 *        packet starts at buf + that size;
 *   0    AX_MQTT_INCOMPLETE: feed more.  Once the fixed header is in,
 *        pkt->size is the size of the whole packet (else 0), so a caller can
 *        reserve exactly that much;
 *   < 0  the negated MQTT 5.0 reason code to disconnect with (-0x81
 *        malformed, -0x82 protocol error, -0x84 unsupported protocol
 *        version, -0x94 topic alias invalid, -0x95 packet too large), and
 *        pkt->error names the rule in a static string.  A 3.1.1 connection
 *        is simply closed (a bad protocol version in CONNECT is answered
 *        with CONNACK 0x01 first, see ax_mqtt_parse()).
 * Errors that the fixed header already shows (reserved packet type, bad
 * flag bits, QoS 3, a remaining length over 4 bytes, a packet over
 * max_packet) are reported as soon as those bytes are in, before the rest
 * is buffered.  Feeding a byte at a time costs O(1) per byte: only the at
 * most 5 header bytes are looked at again until the packet is complete.
 *
 *     for (;;) {
 *         ax_mqtt_packet pkt;
 *         int n = ax_mqtt_parse(buf, len, version, max_packet, &pkt);
 *         if (n == AX_MQTT_INCOMPLETE) break;         // keep buf[0..len)
 *         if (n < 0) { disconnect with reason -n; break; }
 *         handle(&pkt);                               // points into buf
 *         buf += n, len -= n;
 *     }
 *
 * Decoded strings, binary data and payloads point INTO the caller's buffer
 * (ax_mqtt_str: pointer + length, not NUL-terminated) and stay valid as
 * long as those bytes do.  Everything the packet carries has been checked
 * by the time ax_mqtt_parse() returns > 0, including every element of the
 * lists and property blocks that are later walked with the iterators
 * (ax_mqtt_prop_next(), ax_mqtt_sub_next(), ax_mqtt_unsub_next()), which
 * therefore cannot fail.
 *
 * What the parser checks (section numbers of MQTT 5.0; 3.1.1 has the same
 * rules where it has the feature):
 * - 2.1.3 fixed header flags: reserved bits exactly as specified (0010 for
 *   PUBREL, SUBSCRIBE, UNSUBSCRIBE, 0000 for the others); PUBLISH QoS 3 and
 *   DUP with QoS 0 are malformed; packet type 0, and 15 (AUTH) in 3.1.1.
 * - 1.5.5 variable byte integers: at most 4 bytes and minimally encoded
 *   (remaining length, property length, subscription identifiers).
 * - 1.5.4 UTF-8 strings: well-formed (no overlongs, surrogates or code
 *   points over U+10FFFF) and without U+0000.
 * - the remaining length matches the fields exactly: a field crossing its
 *   end, or bytes left over, is malformed.
 * - 3.1 CONNECT: protocol name "MQTT" with level 4 or 5, or "MQIsdp" with
 *   level 3; reserved flag bit 0; will QoS/retain 0 without the will flag,
 *   will QoS 3; password without user name in 3.1/3.1.1.
 * - 2.2.1 packet identifiers non-zero (PUBLISH QoS > 0, the acks,
 *   SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK).
 * - 4.7 topic names non-empty without '+' or '#' (5.0: empty allowed when
 *   a Topic Alias is present); topic filters non-empty with '+' alone in
 *   its level and '#' alone in the last level; shared subscriptions
 *   "$share/NAME/FILTER" with NAME non-empty and free of '/', '+', '#'.
 * - 3.8.3.1 subscription options: reserved bits 0, QoS 3, retain handling
 *   3, no-local on a shared subscription; SUBSCRIBE and UNSUBSCRIBE with
 *   no entries.
 * - 2.2.2 properties (5.0): each identifier known and allowed in that
 *   packet (else malformed); none but User Property and (in PUBLISH)
 *   Subscription Identifier repeated (else protocol error); values in
 *   range (byte flags 0 or 1, Receive Maximum, Maximum Packet Size, Topic
 *   Alias, Subscription Identifier non-zero); Authentication Data only with
 *   an Authentication Method.
 * - reason codes (5.0) are ones the spec defines for that packet; 3.1.1
 *   CONNACK return codes 0..5, SUBACK codes 0, 1, 2 or 0x80.
 * Left to the caller because they depend on the session: whether a packet
 * may be received in this state or direction (CONNACK at a broker, a second
 * CONNECT), topic alias ranges, Receive Maximum accounting, the client
 * identifier rules, whether a UTF-8 payload (Payload Format Indicator 1)
 * is valid (ax_mqtt_utf8_valid() helps).
 *
 * Sending.  ax_mqtt_encode() writes any packet from the same structs the
 * parser fills, snprintf-style: it returns the packet's exact size and
 * writes it only when that fits in `cap` (out may be NULL with cap 0 to
 * measure).  It returns 0 for a packet it cannot encode (a field too long,
 * a property not allowed there, a total over 268,435,460 bytes).  It does
 * not re-check UTF-8 or topic syntax: that is the caller's contract.
 * For fan-out, ax_mqtt_encode_publish_head() writes a PUBLISH without its
 * payload and tells where the packet identifier sits, so the same head and
 * payload serve every subscriber of one QoS with only the two id bytes
 * differing (ax_mqtt_publish_set_id()). */
#ifndef AXON_PROTO_MQTT_H
#define AXON_PROTO_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol levels as they appear in CONNECT. */
#define AX_MQTT_V31 3  /* MQTT 3.1 ("MQIsdp"): parsed like 3.1.1 */
#define AX_MQTT_V311 4 /* MQTT 3.1.1 */
#define AX_MQTT_V5 5   /* MQTT 5.0 */

#define AX_MQTT_INCOMPLETE 0
#define AX_MQTT_MAX_REMAINING 268435455u /* largest remaining length (4 bytes) */
#define AX_MQTT_MAX_PACKET (AX_MQTT_MAX_REMAINING + 5u)
#define AX_MQTT_MAX_HEADER 5          /* fixed header: type byte + 4 length bytes */
#define AX_MQTT_MAX_SUB_ID 268435455u /* largest Subscription Identifier */

enum ax_mqtt_type {
    AX_MQTT_CONNECT = 1,
    AX_MQTT_CONNACK = 2,
    AX_MQTT_PUBLISH = 3,
    AX_MQTT_PUBACK = 4,
    AX_MQTT_PUBREC = 5,
    AX_MQTT_PUBREL = 6,
    AX_MQTT_PUBCOMP = 7,
    AX_MQTT_SUBSCRIBE = 8,
    AX_MQTT_SUBACK = 9,
    AX_MQTT_UNSUBSCRIBE = 10,
    AX_MQTT_UNSUBACK = 11,
    AX_MQTT_PINGREQ = 12,
    AX_MQTT_PINGRESP = 13,
    AX_MQTT_DISCONNECT = 14,
    AX_MQTT_AUTH = 15, /* 5.0 only */
};

/* MQTT 5.0 reason codes (section 2.4).  The codes below 0x80 that 3.1.1
 * shares (QoS granted in SUBACK, 0x00 success) mean the same there. */
enum ax_mqtt_reason {
    AX_MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    AX_MQTT_RC_GRANTED_QOS1 = 0x01,
    AX_MQTT_RC_GRANTED_QOS2 = 0x02,
    AX_MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    AX_MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    AX_MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    AX_MQTT_RC_CONTINUE_AUTH = 0x18,
    AX_MQTT_RC_REAUTHENTICATE = 0x19,
    AX_MQTT_RC_UNSPECIFIED = 0x80,
    AX_MQTT_RC_MALFORMED = 0x81,
    AX_MQTT_RC_PROTOCOL_ERROR = 0x82,
    AX_MQTT_RC_IMPL_SPECIFIC = 0x83,
    AX_MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    AX_MQTT_RC_CLIENT_ID_INVALID = 0x85,
    AX_MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
    AX_MQTT_RC_NOT_AUTHORIZED = 0x87,
    AX_MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    AX_MQTT_RC_SERVER_BUSY = 0x89,
    AX_MQTT_RC_BANNED = 0x8A,
    AX_MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    AX_MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    AX_MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    AX_MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    AX_MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    AX_MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    AX_MQTT_RC_PACKET_ID_IN_USE = 0x91,
    AX_MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    AX_MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    AX_MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    AX_MQTT_RC_PACKET_TOO_LARGE = 0x95,
    AX_MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    AX_MQTT_RC_QUOTA_EXCEEDED = 0x97,
    AX_MQTT_RC_ADMIN_ACTION = 0x98,
    AX_MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    AX_MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    AX_MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    AX_MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    AX_MQTT_RC_SERVER_MOVED = 0x9D,
    AX_MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    AX_MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    AX_MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    AX_MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    AX_MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1/3.1.1 CONNACK return codes (3.1.1 section 3.2.2.3). */
enum ax_mqtt_connack_v3 {
    AX_MQTT_V3_ACCEPTED = 0,
    AX_MQTT_V3_BAD_VERSION = 1,
    AX_MQTT_V3_ID_REJECTED = 2,
    AX_MQTT_V3_SERVER_UNAVAILABLE = 3,
    AX_MQTT_V3_BAD_USER_OR_PASSWORD = 4,
    AX_MQTT_V3_NOT_AUTHORIZED = 5,
};

/* Property identifiers (5.0 section 2.2.2.2). */
enum ax_mqtt_prop_id {
    AX_MQTT_PROP_PAYLOAD_FORMAT = 0x01,         /* byte */
    AX_MQTT_PROP_MESSAGE_EXPIRY = 0x02,         /* four-byte integer */
    AX_MQTT_PROP_CONTENT_TYPE = 0x03,           /* UTF-8 string */
    AX_MQTT_PROP_RESPONSE_TOPIC = 0x08,         /* UTF-8 string (a topic name) */
    AX_MQTT_PROP_CORRELATION_DATA = 0x09,       /* binary data */
    AX_MQTT_PROP_SUB_ID = 0x0B,                 /* variable byte integer */
    AX_MQTT_PROP_SESSION_EXPIRY = 0x11,         /* four-byte integer */
    AX_MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,     /* UTF-8 string */
    AX_MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,      /* two-byte integer */
    AX_MQTT_PROP_AUTH_METHOD = 0x15,            /* UTF-8 string */
    AX_MQTT_PROP_AUTH_DATA = 0x16,              /* binary data */
    AX_MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,   /* byte */
    AX_MQTT_PROP_WILL_DELAY = 0x18,             /* four-byte integer */
    AX_MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,  /* byte */
    AX_MQTT_PROP_RESPONSE_INFO = 0x1A,          /* UTF-8 string */
    AX_MQTT_PROP_SERVER_REFERENCE = 0x1C,       /* UTF-8 string */
    AX_MQTT_PROP_REASON_STRING = 0x1F,          /* UTF-8 string */
    AX_MQTT_PROP_RECEIVE_MAX = 0x21,            /* two-byte integer */
    AX_MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,        /* two-byte integer */
    AX_MQTT_PROP_TOPIC_ALIAS = 0x23,            /* two-byte integer */
    AX_MQTT_PROP_MAX_QOS = 0x24,                /* byte */
    AX_MQTT_PROP_RETAIN_AVAILABLE = 0x25,       /* byte */
    AX_MQTT_PROP_USER = 0x26,                   /* UTF-8 string pair */
    AX_MQTT_PROP_MAX_PACKET_SIZE = 0x27,        /* four-byte integer */
    AX_MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28, /* byte */
    AX_MQTT_PROP_SUB_ID_AVAILABLE = 0x29,       /* byte */
    AX_MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,   /* byte */
};

/* The bit of a property in ax_mqtt_props.present and in masks. */
#define AX_MQTT_PBIT(id) (1ull << (id))

/* A string or binary field: points into the packet's bytes (parsing) or the
 * caller's memory (encoding); not NUL-terminated.  ptr may be NULL when len
 * is 0. */
typedef struct ax_mqtt_str {
    const char *ptr;
    size_t len;
} ax_mqtt_str;

/* One User Property, for encoding. */
typedef struct ax_mqtt_user_prop {
    ax_mqtt_str key, value;
} ax_mqtt_user_prop;

/* The properties of one packet (or of a CONNECT's will), 5.0 only; zeroed
 * for 3.1.1.
 *
 * Parsing fills `present` (AX_MQTT_PBIT(id) for every identifier seen, user
 * properties and subscription identifiers included), the scalar and string
 * fields of the properties present (others are 0 / empty), `sub_id` with
 * the first Subscription Identifier, the counts n_user and n_sub_ids, and
 * `raw`, the whole property block (without its length), which
 * ax_mqtt_prop_next() walks for every User Property and every
 * Subscription Identifier.  `user`, `sub_ids` and `extra` stay NULL/0.
 *
 * Encoding writes, in this order: every property whose bit is in `present`
 * from its field (except USER and SUB_ID, whose bits are ignored), then
 * sub_ids[0..n_sub_ids) and user[0..n_user) (each only when the pointer is
 * not NULL, so a parsed struct, which has counts but no arrays, encodes
 * without them), then `extra` verbatim:
 * bytes that are already an encoded sequence of properties, such as
 * ax_mqtt_props_filter() copies out of a received packet (how a broker
 * forwards a PUBLISH's user properties unchanged).  `raw` is ignored. */
typedef struct ax_mqtt_props {
    uint64_t present;
    uint32_t message_expiry;  /* seconds */
    uint32_t session_expiry;  /* seconds; 0xFFFFFFFF never */
    uint32_t will_delay;      /* seconds */
    uint32_t max_packet_size; /* bytes, non-zero */
    uint32_t sub_id;          /* parsing: the first Subscription Identifier */
    uint16_t receive_max;     /* non-zero */
    uint16_t topic_alias_max;
    uint16_t topic_alias; /* non-zero */
    uint16_t server_keep_alive;
    uint8_t payload_format; /* 0 bytes, 1 UTF-8 */
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t max_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    ax_mqtt_str content_type;
    ax_mqtt_str response_topic;
    ax_mqtt_str correlation_data; /* binary */
    ax_mqtt_str assigned_client_id;
    ax_mqtt_str auth_method;
    ax_mqtt_str auth_data; /* binary */
    ax_mqtt_str response_info;
    ax_mqtt_str server_reference;
    ax_mqtt_str reason_string;
    uint32_t n_user;    /* parsing: how many User Properties; encoding: entries in user[] */
    uint32_t n_sub_ids; /* parsing: how many Subscription Identifiers; encoding: in sub_ids[] */
    const ax_mqtt_user_prop *user; /* encoding only */
    const uint32_t *sub_ids;       /* encoding only */
    ax_mqtt_str extra;             /* encoding only: pre-encoded properties */
    ax_mqtt_str raw;               /* parsing only: the property block */
} ax_mqtt_props;

static inline bool ax_mqtt_props_has(const ax_mqtt_props *p, unsigned id)
{
    return id < 64 && (p->present & AX_MQTT_PBIT(id)) != 0;
}

/* Sets a property's bit; the caller sets its field. */
static inline void ax_mqtt_props_set(ax_mqtt_props *p, unsigned id)
{
    if (id < 64) p->present |= AX_MQTT_PBIT(id);
}

/* CONNECT (3.1).  `level` is the protocol level as received: 3, 4 or 5. */
typedef struct ax_mqtt_connect {
    ax_mqtt_str protocol_name; /* "MQTT", or "MQIsdp" for level 3 (encoding: from `version`) */
    uint8_t level;             /* encoding: ignored, `version` is written */
    bool clean;                /* Clean Session (3.1.1) / Clean Start (5.0) */
    uint16_t keep_alive;       /* seconds, 0 = off */
    ax_mqtt_str client_id;     /* may be empty */
    bool will;
    uint8_t will_qos;
    bool will_retain;
    ax_mqtt_str will_topic;
    ax_mqtt_str will_payload; /* binary */
    ax_mqtt_props will_props;
    bool has_username, has_password;
    ax_mqtt_str username;
    ax_mqtt_str password; /* binary */
    ax_mqtt_props props;
} ax_mqtt_connect;

/* CONNACK (3.2).  `code`: the 5.0 reason code, or the 3.1.1 return code.
 * Encoding for 3.1/3.1.1 turns a 5.0 code (>= 0x80) into the nearest
 * return code (ax_mqtt_connack_v3_code()), so a broker can speak 5.0 codes
 * everywhere. */
typedef struct ax_mqtt_connack {
    bool session_present;
    uint8_t code;
    ax_mqtt_props props;
} ax_mqtt_connack;

/* PUBLISH (3.3). */
typedef struct ax_mqtt_publish {
    uint8_t qos;
    bool retain, dup;
    uint16_t packet_id; /* QoS 1 and 2 only */
    ax_mqtt_str topic;  /* 5.0: may be empty with a Topic Alias */
    const uint8_t *payload;
    size_t payload_len;
    ax_mqtt_props props;
} ax_mqtt_publish;

/* PUBACK, PUBREC, PUBREL, PUBCOMP (3.4-3.7).  `code` is 5.0 only (0 when
 * absent from the wire); the encoder leaves out a 0 code without
 * properties, as the spec allows. */
typedef struct ax_mqtt_ack {
    uint16_t packet_id;
    uint8_t code;
    ax_mqtt_props props;
} ax_mqtt_ack;

/* One SUBSCRIBE entry: parsed by ax_mqtt_sub_next(), or given to the
 * encoder in an array. */
typedef struct ax_mqtt_sub {
    ax_mqtt_str filter;       /* as on the wire, "$share/NAME/..." included */
    uint8_t qos;              /* maximum QoS */
    bool no_local;            /* 5.0 */
    bool retain_as_published; /* 5.0 */
    uint8_t retain_handling;  /* 5.0: 0 send, 1 send if new, 2 don't send */
    /* Parsing only: for "$share/NAME/FILTER", NAME and FILTER (share.len 0
     * and topic == filter for an ordinary subscription). */
    ax_mqtt_str share;
    ax_mqtt_str topic;
} ax_mqtt_sub;

/* SUBSCRIBE (3.8).  Parsing: `list` holds the entries' bytes, n_subs their
 * count; walk them with ax_mqtt_sub_next().  Encoding: subs[0..n_subs)
 * when subs is non-NULL, else `list` verbatim (n_subs ignored). */
typedef struct ax_mqtt_subscribe {
    uint16_t packet_id;
    ax_mqtt_props props;
    const ax_mqtt_sub *subs;
    size_t n_subs;
    ax_mqtt_str list;
} ax_mqtt_subscribe;

/* UNSUBSCRIBE (3.10): as SUBSCRIBE, with bare filters.  Parsing: walk
 * `list` with ax_mqtt_unsub_next().  Encoding: filters[0..n) or `list`. */
typedef struct ax_mqtt_unsubscribe {
    uint16_t packet_id;
    ax_mqtt_props props;
    const ax_mqtt_str *filters;
    size_t n_filters;
    ax_mqtt_str list;
} ax_mqtt_unsubscribe;

/* SUBACK (3.9) and UNSUBACK (3.11): one reason code per entry of the
 * request, in order.  3.1.1 UNSUBACK has none (n_codes 0).  Encoding for
 * 3.1.1 turns every SUBACK code >= 0x80 into 0x80 and writes no UNSUBACK
 * codes. */
typedef struct ax_mqtt_suback {
    uint16_t packet_id;
    ax_mqtt_props props;
    const uint8_t *codes;
    size_t n_codes;
} ax_mqtt_suback;

/* DISCONNECT (3.14) and AUTH (3.15): a reason code (0 when absent) and
 * properties, 5.0 only; a 3.1.1 DISCONNECT is empty. */
typedef struct ax_mqtt_reason_pkt {
    uint8_t code;
    ax_mqtt_props props;
} ax_mqtt_reason_pkt;

typedef struct ax_mqtt_packet {
    uint8_t type;      /* enum ax_mqtt_type; 0 if not known (yet) */
    uint8_t flags;     /* low 4 bits of the first byte */
    uint32_t size;     /* whole packet on the wire: fixed header included */
    const char *error; /* after an error: which rule was broken */
    union {
        ax_mqtt_connect connect;
        ax_mqtt_connack connack;
        ax_mqtt_publish publish;
        ax_mqtt_ack ack; /* PUBACK, PUBREC, PUBREL, PUBCOMP */
        ax_mqtt_subscribe subscribe;
        ax_mqtt_suback suback; /* SUBACK, UNSUBACK */
        ax_mqtt_unsubscribe unsubscribe;
        ax_mqtt_reason_pkt reason; /* DISCONNECT, AUTH */
    } u;
} ax_mqtt_packet;

/* --- parsing --- */

/* Parses one packet from buf[0..len) (see the top of this file for the
 * return values).  `version` is the connection's protocol level once
 * CONNECT has fixed it (4 for 3.1.1 and also for 3.1, 5 for 5.0); before
 * that, 0: then only CONNECT is accepted (-0x82 otherwise).  A CONNECT is
 * parsed by the level it carries, whatever `version` says: a broker
 * answers level 3 as it likes (3.1 is parsed with the 3.1.1 rules), and an
 * unknown level or protocol name gives -0x84 (answer CONNACK 0x01 in the
 * 3.1.1 format, then close).  `max_packet` bounds the whole packet size
 * (0: the protocol maximum); over it the result is -0x95 as soon as the
 * fixed header is in.  *pkt is overwritten (its fields are meaningful only
 * after a return > 0; pkt->error after a return < 0). */
int ax_mqtt_parse(const uint8_t *buf, size_t len, unsigned version, size_t max_packet,
                  ax_mqtt_packet *pkt);

/* Iterators over what a parsed packet holds.  Initialise with the bytes of
 * a parsed packet (props->raw, subscribe.list, unsubscribe.list); each
 * *_next() returns false at the end. */
typedef struct ax_mqtt_iter {
    const uint8_t *p, *end;
} ax_mqtt_iter;

static inline void ax_mqtt_iter_init(ax_mqtt_iter *it, ax_mqtt_str bytes)
{
    it->p = (const uint8_t *)bytes.ptr;
    it->end = it->p ? it->p + bytes.len : it->p;
}

/* One property: `id`, then the value in `num` (byte, two-, four-byte and
 * variable byte integers) or `str` (strings, binary data; the key of a
 * User Property, whose value is `str2`). */
typedef struct ax_mqtt_prop {
    uint8_t id;
    uint32_t num;
    ax_mqtt_str str, str2;
} ax_mqtt_prop;

bool ax_mqtt_prop_next(ax_mqtt_iter *it, ax_mqtt_prop *out);
/* Skips to the next User Property. */
bool ax_mqtt_user_next(ax_mqtt_iter *it, ax_mqtt_str *key, ax_mqtt_str *value);
/* Skips to the next Subscription Identifier. */
bool ax_mqtt_sub_id_next(ax_mqtt_iter *it, uint32_t *id);
/* SUBSCRIBE entries; `version` is the one the packet was parsed with. */
bool ax_mqtt_sub_next(ax_mqtt_iter *it, unsigned version, ax_mqtt_sub *out);
/* UNSUBSCRIBE entries. */
bool ax_mqtt_unsub_next(ax_mqtt_iter *it, ax_mqtt_str *filter);

/* Copies the properties of a parsed block whose identifier's bit is in
 * `keep` to out (room for `cap` bytes) in their order, and returns how many
 * bytes they take (nothing is written if that exceeds cap; out may be NULL
 * to measure).  The result is ready for ax_mqtt_props.extra: e.g. keep =
 * AX_MQTT_PBIT(AX_MQTT_PROP_USER) forwards a PUBLISH's user properties. */
size_t ax_mqtt_props_filter(const ax_mqtt_props *p, uint64_t keep, uint8_t *out, size_t cap);

/* Reads a bare list of properties (no block length in front: what
 * ax_mqtt_props_filter() and ax_mqtt_props_encode() write, and what a
 * broker keeps with a message) as those of a packet of `type` (0: will).
 * Returns 0 with *out filled (its strings point into buf), or minus the
 * reason code of the first rule broken. */
int ax_mqtt_props_parse(const void *buf, size_t len, unsigned type, ax_mqtt_props *out);

/* --- encoding --- */

/* Writes pkt (pkt->type selects the union member; pkt->flags and size are
 * ignored) for protocol level `version` (3, 4 or 5).  Returns the packet's
 * size, having written it into out only if it fits in cap; 0 if it cannot
 * be encoded.  Properties are written for 5.0 only. */
size_t ax_mqtt_encode(uint8_t *out, size_t cap, unsigned version, const ax_mqtt_packet *pkt);

/* Writes p's properties as those of a packet of `type`, without the
 * block's length in front (the form ax_mqtt_props_parse() reads and
 * ax_mqtt_props.extra takes).  Returns their size, having written them
 * only if it fits in cap (out may be NULL to measure); 0 when there are
 * none or one cannot be encoded for `type`. */
size_t ax_mqtt_props_encode(uint8_t *out, size_t cap, unsigned type, const ax_mqtt_props *p);

/* Shorthands for the packets a broker sends most. */
#define AX_MQTT_ACK_MAX 5 /* largest ax_mqtt_encode_ack() output */
/* PUBACK/PUBREC/PUBREL/PUBCOMP without properties: 4 bytes, or 5 for a 5.0
 * reason code other than 0.  Returns 0 for another type or packet id 0. */
size_t ax_mqtt_encode_ack(uint8_t out[AX_MQTT_ACK_MAX], unsigned version, unsigned type,
                          uint16_t packet_id, uint8_t code);
/* PINGREQ, PINGRESP, or a 3.1.1 / reason-0 5.0 DISCONNECT (2 bytes). */
size_t ax_mqtt_encode_empty(uint8_t out[2], unsigned type);

/* PUBLISH for fan-out: everything but the payload, with the remaining
 * length counting pub->payload_len (pub->payload is not read).  Same
 * return convention as ax_mqtt_encode(); the payload follows the head on
 * the wire.  *id_off, when not NULL, is the offset of the two packet
 * identifier bytes in the head (0 for QoS 0): a broker encodes one head per
 * (QoS, retain, properties) variant and gives each subscriber its own id
 * with ax_mqtt_publish_set_id() on a copy of the head, or sends
 * head[0..id_off), the two id bytes, head[id_off+2..) and the payload. */
size_t ax_mqtt_encode_publish_head(uint8_t *out, size_t cap, unsigned version,
                                   const ax_mqtt_publish *pub, size_t *id_off);

static inline void ax_mqtt_publish_set_id(uint8_t *head, size_t id_off, uint16_t id)
{
    head[id_off] = (uint8_t)(id >> 8);
    head[id_off + 1] = (uint8_t)id;
}

/* Sets the DUP flag of an encoded QoS 1/2 PUBLISH (a retransmission). */
static inline void ax_mqtt_publish_set_dup(uint8_t *head)
{
    head[0] |= 0x08;
}

/* --- helpers --- */

/* Bytes the variable byte integer encoding of v takes (1-4; 0 if v is over
 * 268,435,455), and writing it (returns the same). */
size_t ax_mqtt_varint_size(uint32_t v);
size_t ax_mqtt_varint_write(uint8_t *out, uint32_t v);

/* Well-formed UTF-8 without U+0000 (section 1.5.4). */
bool ax_mqtt_utf8_valid(const void *s, size_t len);
/* A topic name to publish to: valid UTF-8, 1..65535 bytes, no '+' or '#'. */
bool ax_mqtt_topic_valid(const char *s, size_t len);
/* A topic filter: valid UTF-8, 1..65535 bytes, '+' alone in its level, '#'
 * alone in the last level; "$share/NAME/FILTER" checked as section 4.8.2
 * says.  On success *share and *topic (either may be NULL) receive NAME
 * (empty when not shared) and the filter proper. */
bool ax_mqtt_filter_valid(const char *s, size_t len, ax_mqtt_str *share, ax_mqtt_str *topic);

/* Whether property `id` may appear in a packet of `type` (5.0); the will
 * properties of CONNECT are asked with type 0. */
bool ax_mqtt_prop_allowed(unsigned type, unsigned id);

/* The 3.1.1 CONNACK return code for a 5.0 reason code (0x84 -> 1, 0x85 ->
 * 2, 0x86 -> 4, 0x87/0x8A -> 5, everything else >= 0x80 -> 3); codes below
 * 0x80 are returned unchanged. */
uint8_t ax_mqtt_connack_v3_code(uint8_t reason);

/* Static names: "PUBLISH", "Malformed Packet" ... ("?" if unknown). */
const char *ax_mqtt_type_name(unsigned type);
const char *ax_mqtt_reason_name(unsigned code);

#ifdef __cplusplus
}
#endif

#endif
