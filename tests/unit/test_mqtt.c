/* test_mqtt.c: the MQTT 3.1.1 / 5.0 codec (src/proto/mqtt/mqtt.h).
 *
 * - every packet type in both versions: encoded, parsed back, compared
 *   field by field, re-encoded to the same bytes;
 * - bytes real clients send (mosquitto_pub/sub, paho) parsed;
 * - every input is parsed whole and again a byte at a time, each prefix
 *   placed against an unreadable page so a read past the end crashes;
 * - remaining-length edge values and overlong/non-minimal encodings;
 * - one table row per malformed-packet rule, with the reason code;
 * - 5.0 properties: every identifier, where each is allowed, repeats,
 *   value ranges, the iterators and ax_mqtt_props_filter();
 * - the fan-out PUBLISH head with per-subscriber packet ids;
 * - topic name / filter / UTF-8 validity. */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <stdint.h>
#include <unistd.h>

#include "proto/mqtt/mqtt.h"

/* --- a guard page: data placed so its last byte is the last readable one --- */

static ax_mqtt_str S(const char *s)
{
    return (ax_mqtt_str){s, strlen(s)};
}

static bool str_is(ax_mqtt_str s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

/* Parses in[0..len) whole (against the guard page) and then every shorter
 * prefix: each prefix must ask for more, or fail with the same code (an
 * error the fixed header already shows).  Returns the whole parse's
 * result; *pkt points into the guard area, valid until the next call. */
static int parse_each_way(const uint8_t *in, size_t len, unsigned version, size_t max,
                          ax_mqtt_packet *pkt)
{
    uint8_t copy[4096];
    if (len > sizeof copy) {
        ASSERT(len <= sizeof copy);
        return 1;
    }
    memcpy(copy, in, len);
    int whole = ax_mqtt_parse(tu_guarded(copy, len), len, version, max, pkt);
    for (size_t k = 0; k < len; k++) {
        ax_mqtt_packet part;
        int r = ax_mqtt_parse(tu_guarded(copy, k), k, version, max, &part);
        if (r == AX_MQTT_INCOMPLETE) {
            if (k >= 2 && whole > 0 && part.size) ASSERT_EQ(part.size, whole);
            continue;
        }
        ASSERT(r < 0);
        ASSERT_EQ(r, whole);
    }
    return ax_mqtt_parse(tu_guarded(copy, len), len, version, max, pkt);
}

static int parse_hex(const char *hex, unsigned version, ax_mqtt_packet *pkt)
{
    uint8_t b[2048];
    size_t n = tu_unhex(hex, b, sizeof b);
    return parse_each_way(b, n, version, 0, pkt);
}

/* Encodes, checks the size contract, parses back; returns the parse. */
static size_t enc(const ax_mqtt_packet *in, unsigned version, uint8_t *out, size_t cap)
{
    size_t n = ax_mqtt_encode(NULL, 0, version, in);
    ASSERT(n > 0);
    ASSERT(n <= cap);
    ASSERT_EQ(ax_mqtt_encode(out, n - 1, version, in), n); /* too small: measure only */
    memset(out, 0xEE, cap);
    ASSERT_EQ(ax_mqtt_encode(out, cap, version, in), n);
    ASSERT_EQ(out[n < cap ? n : cap - 1], n < cap ? 0xEE : out[cap - 1]);
    return n;
}

/* Encode -> parse (every way) -> re-encode gives the same bytes. */
static void round_trip(const ax_mqtt_packet *in, unsigned version, ax_mqtt_packet *out,
                       uint8_t *wire, size_t cap, size_t *wire_len)
{
    size_t n = enc(in, version, wire, cap);
    int r = parse_each_way(wire, n, in->type == AX_MQTT_CONNECT ? 0 : version, 0, out);
    if (r < 0) fprintf(stderr, "parse failed: %s\n", out->error);
    ASSERT_EQ(r, n);
    ASSERT_EQ(out->type, in->type);
    ASSERT_EQ(out->size, n);
    *wire_len = n;
}

/* --- remaining length --- */

TEST(mqtt_varint_sizes)
{
    static const struct {
        uint32_t v;
        size_t n;
        const char *hex;
    } rows[] = {
        {0, 1, "00"},
        {127, 1, "7f"},
        {128, 2, "8001"},
        {16383, 2, "ff7f"},
        {16384, 3, "808001"},
        {2097151, 3, "ffff7f"},
        {2097152, 4, "80808001"},
        {268435455, 4, "ffffff7f"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint8_t want[8], got[8];
        size_t wn = tu_unhex(rows[i].hex, want, sizeof want);
        ASSERT_EQ(ax_mqtt_varint_size(rows[i].v), rows[i].n);
        ASSERT_EQ(ax_mqtt_varint_write(got, rows[i].v), wn);
        ASSERT(memcmp(got, want, wn) == 0);

        /* as the remaining length of a PUBLISH: the header alone tells the
         * size (need more), and a limit one byte short refuses it */
        uint8_t hdr[8] = {0x30};
        memcpy(hdr + 1, want, wn);
        ax_mqtt_packet pkt;
        uint8_t *g = tu_guarded(hdr, 1 + wn);
        int r = ax_mqtt_parse(g, 1 + wn, AX_MQTT_V311, 0, &pkt);
        if (rows[i].v == 0) {
            ASSERT(r < 0); /* a PUBLISH needs at least its topic length */
        } else {
            ASSERT_EQ(r, AX_MQTT_INCOMPLETE);
            ASSERT_EQ(pkt.size, 1 + wn + rows[i].v);
            r = ax_mqtt_parse(g, 1 + wn, AX_MQTT_V311, 1 + wn + rows[i].v - 1, &pkt);
            ASSERT_EQ(r, -AX_MQTT_RC_PACKET_TOO_LARGE);
            r = ax_mqtt_parse(g, 1 + wn, AX_MQTT_V311, 1 + wn + rows[i].v, &pkt);
            ASSERT_EQ(r, AX_MQTT_INCOMPLETE);
        }
    }
    ASSERT_EQ(ax_mqtt_varint_size(268435456u), 0);
}

/* Whole PUBLISH packets whose remaining length sits on each boundary. */
TEST(mqtt_remaining_length_edges)
{
    static const uint32_t rems[] = {2, 127, 128, 16383, 16384, 2097151, 2097152};
    static uint8_t payload[2097152], wire[2097152 + 16];
    for (size_t i = 0; i < sizeof rems / sizeof rems[0]; i++) {
        for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
            ax_mqtt_packet p = {.type = AX_MQTT_PUBLISH}, q;
            p.u.publish.topic = S("t");
            size_t fixed = 2 + 1 + (v == AX_MQTT_V5 ? 1 : 0); /* topic + property length */
            if (rems[i] < fixed) continue;
            p.u.publish.payload = payload;
            p.u.publish.payload_len = rems[i] - fixed;
            size_t n = ax_mqtt_encode(wire, sizeof wire, v, &p);
            ASSERT_EQ(n, 1 + ax_mqtt_varint_size(rems[i]) + rems[i]);
            uint8_t *g = tu_guarded(wire, n);
            ASSERT_EQ(ax_mqtt_parse(g, n, v, 0, &q), n);
            ASSERT_EQ(q.u.publish.payload_len, rems[i] - fixed);
            ASSERT_EQ(ax_mqtt_parse(g, n - 1, v, 0, &q), AX_MQTT_INCOMPLETE);
            ASSERT_EQ(q.size, n);
        }
    }
}

TEST(mqtt_remaining_length_overflow)
{
    ax_mqtt_packet pkt;
    /* a fifth length byte */
    ASSERT_EQ(parse_hex("30 ff ff ff ff 01", AX_MQTT_V311, &pkt), -AX_MQTT_RC_MALFORMED);
    ASSERT_EQ(parse_hex("30 80 80 80 80 00", AX_MQTT_V5, &pkt), -AX_MQTT_RC_MALFORMED);
    /* four bytes announced continued, only four there: still malformed at
     * the fifth, incomplete before */
    uint8_t b[5] = {0x30, 0xff, 0xff, 0xff, 0xff};
    ASSERT_EQ(ax_mqtt_parse(tu_guarded(b, 4), 4, 4, 0, &pkt), AX_MQTT_INCOMPLETE);
    ASSERT_EQ(ax_mqtt_parse(tu_guarded(b, 5), 5, 4, 0, &pkt), -AX_MQTT_RC_MALFORMED);
    /* not minimal */
    ASSERT_EQ(parse_hex("30 80 00", AX_MQTT_V311, &pkt), -AX_MQTT_RC_MALFORMED);
    ASSERT_EQ(parse_hex("c0 80 80 00", AX_MQTT_V311, &pkt), -AX_MQTT_RC_MALFORMED);
    /* the largest length, over a limit */
    ASSERT_EQ(parse_hex("30 ff ff ff 7f", AX_MQTT_V311, &pkt), AX_MQTT_INCOMPLETE);
    ASSERT_EQ(pkt.size, AX_MQTT_MAX_PACKET);
    uint8_t c[5] = {0x30, 0xff, 0xff, 0xff, 0x7f};
    ASSERT_EQ(ax_mqtt_parse(tu_guarded(c, 5), 5, 4, 1 << 20, &pkt), -AX_MQTT_RC_PACKET_TOO_LARGE);
    ASSERT_EQ(ax_mqtt_parse(tu_guarded(c, 2), 2, 4, 1 << 20, &pkt), AX_MQTT_INCOMPLETE);
    ASSERT_EQ(ax_mqtt_parse(NULL, 0, 4, 0, &pkt), AX_MQTT_INCOMPLETE);
    ASSERT_EQ(pkt.size, 0);
}

/* --- every packet type, both versions --- */

static const ax_mqtt_user_prop users[] = {{{"k1", 2}, {"v1", 2}}, {{"k2", 2}, {"", 0}}};

static void expect_users(const ax_mqtt_props *pr)
{
    ax_mqtt_iter it;
    ax_mqtt_str k, v;
    ASSERT_EQ(pr->n_user, 2);
    ASSERT(ax_mqtt_props_has(pr, AX_MQTT_PROP_USER));
    ax_mqtt_iter_init(&it, pr->raw);
    ASSERT(ax_mqtt_user_next(&it, &k, &v));
    ASSERT(str_is(k, "k1") && str_is(v, "v1"));
    ASSERT(ax_mqtt_user_next(&it, &k, &v));
    ASSERT(str_is(k, "k2") && str_is(v, ""));
    ASSERT(!ax_mqtt_user_next(&it, &k, &v));
}

TEST(mqtt_connect_both_versions)
{
    uint8_t wire[512];
    size_t n;
    for (unsigned v = AX_MQTT_V31; v <= AX_MQTT_V5; v++) {
        ax_mqtt_packet p = {.type = AX_MQTT_CONNECT}, q;
        ax_mqtt_connect *c = &p.u.connect;
        c->clean = true;
        c->keep_alive = 60;
        c->client_id = S("dev-1");
        c->will = true;
        c->will_qos = 1;
        c->will_retain = true;
        c->will_topic = S("dev/1/status");
        c->will_payload = S("offline");
        c->has_username = c->has_password = true;
        c->username = S("user");
        c->password = (ax_mqtt_str){"p\0w", 3};
        if (v == AX_MQTT_V5) {
            c->props.present =
                AX_MQTT_PBIT(AX_MQTT_PROP_SESSION_EXPIRY) | AX_MQTT_PBIT(AX_MQTT_PROP_RECEIVE_MAX) |
                AX_MQTT_PBIT(AX_MQTT_PROP_MAX_PACKET_SIZE) |
                AX_MQTT_PBIT(AX_MQTT_PROP_TOPIC_ALIAS_MAX) |
                AX_MQTT_PBIT(AX_MQTT_PROP_REQUEST_PROBLEM_INFO) |
                AX_MQTT_PBIT(AX_MQTT_PROP_REQUEST_RESPONSE_INFO) |
                AX_MQTT_PBIT(AX_MQTT_PROP_AUTH_METHOD) | AX_MQTT_PBIT(AX_MQTT_PROP_AUTH_DATA);
            c->props.session_expiry = 0xFFFFFFFFu;
            c->props.receive_max = 20;
            c->props.max_packet_size = 1 << 20;
            c->props.topic_alias_max = 10;
            c->props.request_problem_info = 0;
            c->props.request_response_info = 1;
            c->props.auth_method = S("SCRAM-SHA-1");
            c->props.auth_data = S("\x01\x02");
            c->props.user = users;
            c->props.n_user = 2;
            c->will_props.present = AX_MQTT_PBIT(AX_MQTT_PROP_WILL_DELAY) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_PAYLOAD_FORMAT) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_MESSAGE_EXPIRY) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_CONTENT_TYPE) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_RESPONSE_TOPIC) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_CORRELATION_DATA);
            c->will_props.will_delay = 30;
            c->will_props.payload_format = 1;
            c->will_props.message_expiry = 3600;
            c->will_props.content_type = S("text/plain");
            c->will_props.response_topic = S("r/t");
            c->will_props.correlation_data = S("cd");
        }
        round_trip(&p, v, &q, wire, sizeof wire, &n);
        const ax_mqtt_connect *d = &q.u.connect;
        ASSERT_EQ(d->level, v);
        ASSERT(str_is(d->protocol_name, v == AX_MQTT_V31 ? "MQIsdp" : "MQTT"));
        ASSERT(d->clean && d->will && d->will_retain && d->has_username && d->has_password);
        ASSERT_EQ(d->will_qos, 1);
        ASSERT_EQ(d->keep_alive, 60);
        ASSERT(str_is(d->client_id, "dev-1"));
        ASSERT(str_is(d->will_topic, "dev/1/status"));
        ASSERT(str_is(d->will_payload, "offline"));
        ASSERT(str_is(d->username, "user"));
        ASSERT(d->password.len == 3 && memcmp(d->password.ptr, "p\0w", 3) == 0);
        if (v == AX_MQTT_V5) {
            ASSERT_EQ(d->props.session_expiry, 0xFFFFFFFFu);
            ASSERT_EQ(d->props.receive_max, 20);
            ASSERT_EQ(d->props.max_packet_size, 1 << 20);
            ASSERT_EQ(d->props.topic_alias_max, 10);
            ASSERT(ax_mqtt_props_has(&d->props, AX_MQTT_PROP_REQUEST_PROBLEM_INFO));
            ASSERT_EQ(d->props.request_problem_info, 0);
            ASSERT_EQ(d->props.request_response_info, 1);
            ASSERT(str_is(d->props.auth_method, "SCRAM-SHA-1"));
            ASSERT(str_is(d->props.auth_data, "\x01\x02"));
            expect_users(&d->props);
            ASSERT_EQ(d->will_props.will_delay, 30);
            ASSERT_EQ(d->will_props.payload_format, 1);
            ASSERT_EQ(d->will_props.message_expiry, 3600);
            ASSERT(str_is(d->will_props.content_type, "text/plain"));
            ASSERT(str_is(d->will_props.response_topic, "r/t"));
            ASSERT(str_is(d->will_props.correlation_data, "cd"));
        } else {
            ASSERT_EQ(d->props.present, 0);
        }
        /* the parsed struct encodes to the same bytes (user properties
         * carried over with ax_mqtt_props_filter) */
        uint8_t extra[64], again[512];
        ax_mqtt_packet r = q;
        r.u.connect.props.extra.len =
            ax_mqtt_props_filter(&d->props, AX_MQTT_PBIT(AX_MQTT_PROP_USER), extra, sizeof extra);
        r.u.connect.props.extra.ptr = (const char *)extra;
        ASSERT_EQ(ax_mqtt_encode(again, sizeof again, v, &r), n);
        ASSERT(memcmp(again, wire, n) == 0);
    }
}

TEST(mqtt_connect_minimal_and_real_clients)
{
    ax_mqtt_packet q;
    /* mosquitto_sub -V mqttv311 -i c -k 60 (clean session, no will) */
    ASSERT_EQ(parse_hex("10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 63", 0, &q), 15);
    ASSERT_EQ(q.u.connect.level, 4);
    ASSERT(q.u.connect.clean && !q.u.connect.will && !q.u.connect.has_username);
    ASSERT(str_is(q.u.connect.client_id, "c"));
    /* mosquitto_pub -V mqttv5: empty property block, empty client id */
    ASSERT_EQ(parse_hex("10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00", 0, &q), 15);
    ASSERT_EQ(q.u.connect.level, 5);
    ASSERT_EQ(q.u.connect.client_id.len, 0);
    /* MQTT 3.1: MQIsdp level 3 */
    ASSERT_EQ(parse_hex("10 10 00 06 4d 51 49 73 64 70 03 02 00 3c 00 02 69 64", 0, &q), 18);
    ASSERT_EQ(q.u.connect.level, 3);
    /* a CONNECT is parsed by its own level whatever the connection says */
    ASSERT_EQ(parse_hex("10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00", 4, &q), 15);
    /* 5.0 password without user name is allowed */
    ASSERT_EQ(parse_hex("10 11 00 04 4d 51 54 54 05 42 00 3c 00 00 00 00 02 70 77", 0, &q), 19);
    ASSERT(q.u.connect.has_password && !q.u.connect.has_username);
}

TEST(mqtt_connack_both_versions)
{
    uint8_t wire[256];
    size_t n;
    ax_mqtt_packet p = {.type = AX_MQTT_CONNACK}, q;
    p.u.connack.session_present = true;
    round_trip(&p, AX_MQTT_V311, &q, wire, sizeof wire, &n);
    ASSERT_EQ(n, 4);
    ASSERT(q.u.connack.session_present && q.u.connack.code == 0);

    /* a 5.0 code is mapped to a 3.1.1 return code */
    p.u.connack.session_present = false;
    p.u.connack.code = AX_MQTT_RC_BAD_USER_OR_PASSWORD;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, AX_MQTT_V311, &p), 4);
    ASSERT_EQ(wire[3], AX_MQTT_V3_BAD_USER_OR_PASSWORD);
    ASSERT_EQ(ax_mqtt_connack_v3_code(AX_MQTT_RC_UNSUPPORTED_VERSION), 1);
    ASSERT_EQ(ax_mqtt_connack_v3_code(AX_MQTT_RC_CLIENT_ID_INVALID), 2);
    ASSERT_EQ(ax_mqtt_connack_v3_code(AX_MQTT_RC_SERVER_BUSY), 3);
    ASSERT_EQ(ax_mqtt_connack_v3_code(AX_MQTT_RC_NOT_AUTHORIZED), 5);
    ASSERT_EQ(ax_mqtt_connack_v3_code(AX_MQTT_RC_BANNED), 5);

    /* 5.0 with every CONNACK property */
    ax_mqtt_connack *c = &p.u.connack;
    c->code = 0;
    c->session_present = true;
    static const unsigned ids[] = {
        AX_MQTT_PROP_SESSION_EXPIRY,    AX_MQTT_PROP_ASSIGNED_CLIENT_ID,
        AX_MQTT_PROP_SERVER_KEEP_ALIVE, AX_MQTT_PROP_AUTH_METHOD,
        AX_MQTT_PROP_AUTH_DATA,         AX_MQTT_PROP_RESPONSE_INFO,
        AX_MQTT_PROP_SERVER_REFERENCE,  AX_MQTT_PROP_REASON_STRING,
        AX_MQTT_PROP_RECEIVE_MAX,       AX_MQTT_PROP_TOPIC_ALIAS_MAX,
        AX_MQTT_PROP_MAX_QOS,           AX_MQTT_PROP_RETAIN_AVAILABLE,
        AX_MQTT_PROP_MAX_PACKET_SIZE,   AX_MQTT_PROP_WILDCARD_SUB_AVAILABLE,
        AX_MQTT_PROP_SUB_ID_AVAILABLE,  AX_MQTT_PROP_SHARED_SUB_AVAILABLE,
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        ax_mqtt_props_set(&c->props, ids[i]);
    c->props.session_expiry = 7;
    c->props.assigned_client_id = S("auto-1");
    c->props.server_keep_alive = 30;
    c->props.auth_method = S("m");
    c->props.auth_data = S("d");
    c->props.response_info = S("resp/");
    c->props.server_reference = S("other:1883");
    c->props.reason_string = S("ok");
    c->props.receive_max = 65535;
    c->props.topic_alias_max = 100;
    c->props.max_qos = 1;
    c->props.retain_available = 1;
    c->props.max_packet_size = 268435460u;
    c->props.wildcard_sub_available = 1;
    c->props.sub_id_available = 0;
    c->props.shared_sub_available = 1;
    round_trip(&p, AX_MQTT_V5, &q, wire, sizeof wire, &n);
    const ax_mqtt_props *d = &q.u.connack.props;
    ASSERT_EQ(d->present, c->props.present);
    ASSERT_EQ(d->session_expiry, 7);
    ASSERT(str_is(d->assigned_client_id, "auto-1"));
    ASSERT_EQ(d->server_keep_alive, 30);
    ASSERT(str_is(d->response_info, "resp/"));
    ASSERT(str_is(d->server_reference, "other:1883"));
    ASSERT(str_is(d->reason_string, "ok"));
    ASSERT_EQ(d->receive_max, 65535);
    ASSERT_EQ(d->topic_alias_max, 100);
    ASSERT_EQ(d->max_qos, 1);
    ASSERT_EQ(d->retain_available, 1);
    ASSERT_EQ(d->max_packet_size, 268435460u);
    ASSERT_EQ(d->wildcard_sub_available, 1);
    ASSERT_EQ(d->sub_id_available, 0);
    ASSERT_EQ(d->shared_sub_available, 1);
    /* walking the block sees them in order */
    ax_mqtt_iter it;
    ax_mqtt_prop pr;
    size_t k = 0;
    ax_mqtt_iter_init(&it, d->raw);
    while (ax_mqtt_prop_next(&it, &pr))
        ASSERT_EQ(pr.id, ids[k++]);
    ASSERT_EQ(k, sizeof ids / sizeof ids[0]);

    /* a failure code (5.0), as mosquitto sends it */
    ASSERT_EQ(parse_hex("20 03 00 87 00", 5, &q), 5);
    ASSERT_EQ(q.u.connack.code, AX_MQTT_RC_NOT_AUTHORIZED);
}

TEST(mqtt_publish_both_versions)
{
    uint8_t wire[512];
    size_t n;
    for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
        for (unsigned qos = 0; qos <= 2; qos++) {
            ax_mqtt_packet p = {.type = AX_MQTT_PUBLISH}, q;
            ax_mqtt_publish *pb = &p.u.publish;
            pb->qos = (uint8_t)qos;
            pb->retain = qos == 1;
            pb->dup = qos == 2;
            pb->packet_id = qos ? (uint16_t)(1000 + qos) : 0;
            pb->topic = S("sensors/\xc3\xa9t\xc3\xa9/temp");
            pb->payload = (const uint8_t *)"\x00\xff{\"t\":21}";
            pb->payload_len = 10;
            if (v == AX_MQTT_V5) {
                static const uint32_t sids[] = {1, 268435455};
                pb->props.present = AX_MQTT_PBIT(AX_MQTT_PROP_PAYLOAD_FORMAT) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_MESSAGE_EXPIRY) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_CONTENT_TYPE) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_RESPONSE_TOPIC) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_CORRELATION_DATA) |
                                    AX_MQTT_PBIT(AX_MQTT_PROP_TOPIC_ALIAS);
                pb->props.message_expiry = 10;
                pb->props.content_type = S("application/json");
                pb->props.response_topic = S("reply/1");
                pb->props.correlation_data = (ax_mqtt_str){"\x00\x01", 2};
                pb->props.topic_alias = 3;
                pb->props.sub_ids = sids;
                pb->props.n_sub_ids = 2;
                pb->props.user = users;
                pb->props.n_user = 2;
            }
            round_trip(&p, v, &q, wire, sizeof wire, &n);
            const ax_mqtt_publish *d = &q.u.publish;
            ASSERT_EQ(d->qos, qos);
            ASSERT_EQ(d->retain, qos == 1);
            ASSERT_EQ(d->dup, qos == 2);
            ASSERT_EQ(d->packet_id, pb->packet_id);
            ASSERT(str_is(d->topic, "sensors/\xc3\xa9t\xc3\xa9/temp"));
            ASSERT_EQ(d->payload_len, 10);
            ASSERT(memcmp(d->payload, "\x00\xff{\"t\":21}", 10) == 0);
            if (v == AX_MQTT_V5) {
                ASSERT_EQ(d->props.message_expiry, 10);
                ASSERT(str_is(d->props.content_type, "application/json"));
                ASSERT(str_is(d->props.response_topic, "reply/1"));
                ASSERT(d->props.correlation_data.len == 2);
                ASSERT_EQ(d->props.topic_alias, 3);
                ASSERT_EQ(d->props.n_sub_ids, 2);
                ASSERT_EQ(d->props.sub_id, 1);
                ax_mqtt_iter it;
                uint32_t sid;
                ax_mqtt_iter_init(&it, d->props.raw);
                ASSERT(ax_mqtt_sub_id_next(&it, &sid) && sid == 1);
                ASSERT(ax_mqtt_sub_id_next(&it, &sid) && sid == 268435455);
                ASSERT(!ax_mqtt_sub_id_next(&it, &sid));
                expect_users(&d->props);
            }
        }
    }
    /* real bytes: mosquitto_pub -t a/b -m hi -q 1 (3.1.1), id 1 */
    ax_mqtt_packet q;
    ASSERT_EQ(parse_hex("32 09 00 03 61 2f 62 00 01 68 69", 4, &q), 11);
    ASSERT(str_is(q.u.publish.topic, "a/b") && q.u.publish.packet_id == 1);
    ASSERT_EQ(q.u.publish.payload_len, 2);
    /* 5.0 empty topic with a topic alias; empty payload */
    ASSERT_EQ(parse_hex("30 06 00 00 03 23 00 05", 5, &q), 8);
    ASSERT_EQ(q.u.publish.props.topic_alias, 5);
    ASSERT_EQ(q.u.publish.payload_len, 0);
}

TEST(mqtt_acks_both_versions)
{
    static const unsigned types[] = {AX_MQTT_PUBACK, AX_MQTT_PUBREC, AX_MQTT_PUBREL,
                                     AX_MQTT_PUBCOMP};
    uint8_t wire[128], small[AX_MQTT_ACK_MAX];
    size_t n;
    for (size_t i = 0; i < 4; i++) {
        unsigned t = types[i];
        uint8_t code = t == AX_MQTT_PUBREL || t == AX_MQTT_PUBCOMP ? 0x92 : 0x10;
        for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
            ax_mqtt_packet p = {.type = (uint8_t)t}, q;
            p.u.ack.packet_id = 0xBEEF;
            round_trip(&p, v, &q, wire, sizeof wire, &n);
            ASSERT_EQ(n, 4);
            ASSERT_EQ(wire[0] & 15, t == AX_MQTT_PUBREL ? 2 : 0);
            ASSERT_EQ(q.u.ack.packet_id, 0xBEEF);
            ASSERT_EQ(ax_mqtt_encode_ack(small, v, t, 0xBEEF, 0), 4);
            ASSERT(memcmp(small, wire, 4) == 0);
            if (v < AX_MQTT_V5) continue;
            p.u.ack.code = code; /* code alone: 5 bytes */
            round_trip(&p, v, &q, wire, sizeof wire, &n);
            ASSERT_EQ(n, 5);
            ASSERT_EQ(q.u.ack.code, code);
            ASSERT_EQ(ax_mqtt_encode_ack(small, v, t, 0xBEEF, code), 5);
            ASSERT(memcmp(small, wire, 5) == 0);
            p.u.ack.props.present = AX_MQTT_PBIT(AX_MQTT_PROP_REASON_STRING);
            p.u.ack.props.reason_string = S("why");
            p.u.ack.props.user = users;
            p.u.ack.props.n_user = 2;
            round_trip(&p, v, &q, wire, sizeof wire, &n);
            ASSERT(str_is(q.u.ack.props.reason_string, "why"));
            expect_users(&q.u.ack.props);
            /* a 0 code with properties is written */
            p.u.ack.code = 0;
            round_trip(&p, v, &q, wire, sizeof wire, &n);
            ASSERT_EQ(wire[4], 0);
            ASSERT_EQ(q.u.ack.code, 0);
        }
    }
    ASSERT_EQ(ax_mqtt_encode_ack(small, 5, AX_MQTT_PUBACK, 0, 0), 0);
    ASSERT_EQ(ax_mqtt_encode_ack(small, 5, AX_MQTT_SUBACK, 1, 0), 0);
    ax_mqtt_packet q;
    /* 5.0 PUBACK with a code and an empty property block */
    ASSERT_EQ(parse_hex("40 04 00 07 10 00", 5, &q), 6);
    ASSERT_EQ(q.u.ack.code, 0x10);
}

TEST(mqtt_subscribe_both_versions)
{
    uint8_t wire[512];
    size_t n;
    static const ax_mqtt_sub subs[] = {
        {.filter = {"a/+/c", 5}, .qos = 0},
        {.filter = {"#", 1}, .qos = 1, .retain_as_published = true, .retain_handling = 1},
        {.filter = {"$share/g1/x/#", 13}, .qos = 2, .retain_handling = 2},
        {.filter = {"d/e", 3}, .qos = 1, .no_local = true},
    };
    for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
        ax_mqtt_packet p = {.type = AX_MQTT_SUBSCRIBE}, q;
        p.u.subscribe.packet_id = 7;
        p.u.subscribe.subs = subs;
        p.u.subscribe.n_subs = 4;
        if (v == AX_MQTT_V5) {
            static const uint32_t sid = 42;
            p.u.subscribe.props.sub_ids = &sid;
            p.u.subscribe.props.n_sub_ids = 1;
            p.u.subscribe.props.user = users;
            p.u.subscribe.props.n_user = 2;
        }
        round_trip(&p, v, &q, wire, sizeof wire, &n);
        ASSERT_EQ(wire[0], 0x82);
        ASSERT_EQ(q.u.subscribe.packet_id, 7);
        ASSERT_EQ(q.u.subscribe.n_subs, 4);
        ax_mqtt_iter it;
        ax_mqtt_sub s;
        ax_mqtt_iter_init(&it, q.u.subscribe.list);
        for (size_t i = 0; i < 4; i++) {
            ASSERT(ax_mqtt_sub_next(&it, v, &s));
            ASSERT(s.filter.len == subs[i].filter.len &&
                   memcmp(s.filter.ptr, subs[i].filter.ptr, s.filter.len) == 0);
            ASSERT_EQ(s.qos, subs[i].qos);
            bool five = v == AX_MQTT_V5;
            ASSERT_EQ(s.no_local, five && subs[i].no_local);
            ASSERT_EQ(s.retain_as_published, five && subs[i].retain_as_published);
            ASSERT_EQ(s.retain_handling, five ? subs[i].retain_handling : 0);
        }
        ASSERT(!ax_mqtt_sub_next(&it, v, &s));
        /* the shared one, split */
        ax_mqtt_iter_init(&it, q.u.subscribe.list);
        ax_mqtt_sub_next(&it, v, &s);
        ASSERT_EQ(s.share.len, 0);
        ASSERT(str_is(s.topic, "a/+/c"));
        ax_mqtt_sub_next(&it, v, &s);
        ax_mqtt_sub_next(&it, v, &s);
        ASSERT(str_is(s.share, "g1") && str_is(s.topic, "x/#"));
        if (v == AX_MQTT_V5) {
            ASSERT_EQ(q.u.subscribe.props.sub_id, 42);
            expect_users(&q.u.subscribe.props);
        }
        /* re-encoding from the parsed list gives the same bytes */
        ax_mqtt_packet r = q;
        uint8_t again[512], extra[64];
        r.u.subscribe.props.extra.len = ax_mqtt_props_filter(
            &q.u.subscribe.props, AX_MQTT_PBIT(AX_MQTT_PROP_USER), extra, sizeof extra);
        r.u.subscribe.props.extra.ptr = (const char *)extra;
        r.u.subscribe.props.present &= ~AX_MQTT_PBIT(AX_MQTT_PROP_USER);
        static const uint32_t sid2 = 42;
        if (v == AX_MQTT_V5) r.u.subscribe.props.sub_ids = &sid2;
        ASSERT_EQ(ax_mqtt_encode(again, sizeof again, v, &r), n);
        ASSERT(memcmp(again, wire, n) == 0);
    }
    /* mosquitto_sub -t 'a/#' -q 1 (3.1.1) */
    ax_mqtt_packet q;
    ASSERT_EQ(parse_hex("82 08 00 01 00 03 61 2f 23 01", 4, &q), 10);
    ASSERT_EQ(q.u.subscribe.n_subs, 1);
}

TEST(mqtt_suback_unsuback_both_versions)
{
    uint8_t wire[256];
    size_t n;
    static const uint8_t codes[] = {0x00, 0x01, 0x02, 0x87, 0x80};
    for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
        ax_mqtt_packet p = {.type = AX_MQTT_SUBACK}, q;
        p.u.suback.packet_id = 9;
        p.u.suback.codes = codes;
        p.u.suback.n_codes = 5;
        if (v == AX_MQTT_V5) {
            p.u.suback.props.present = AX_MQTT_PBIT(AX_MQTT_PROP_REASON_STRING);
            p.u.suback.props.reason_string = S("denied");
        }
        round_trip(&p, v, &q, wire, sizeof wire, &n);
        ASSERT_EQ(q.u.suback.n_codes, 5);
        ASSERT_EQ(q.u.suback.codes[3], v == AX_MQTT_V5 ? 0x87 : 0x80); /* 3.1.1: failure */
        ASSERT_EQ(q.u.suback.packet_id, 9);

        static const uint8_t ucodes[] = {0x00, 0x11};
        ax_mqtt_packet u = {.type = AX_MQTT_UNSUBACK};
        u.u.suback.packet_id = 10;
        u.u.suback.codes = ucodes;
        u.u.suback.n_codes = 2;
        round_trip(&u, v, &q, wire, sizeof wire, &n);
        ASSERT_EQ(n, v == AX_MQTT_V5 ? 7 : 4);
        ASSERT_EQ(q.u.suback.n_codes, v == AX_MQTT_V5 ? 2 : 0);
    }
}

TEST(mqtt_unsubscribe_both_versions)
{
    uint8_t wire[256];
    size_t n;
    static const ax_mqtt_str filters[] = {{"a/b", 3}, {"$share/g/+", 10}};
    for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
        ax_mqtt_packet p = {.type = AX_MQTT_UNSUBSCRIBE}, q;
        p.u.unsubscribe.packet_id = 11;
        p.u.unsubscribe.filters = filters;
        p.u.unsubscribe.n_filters = 2;
        if (v == AX_MQTT_V5) {
            p.u.unsubscribe.props.user = users;
            p.u.unsubscribe.props.n_user = 2;
        }
        round_trip(&p, v, &q, wire, sizeof wire, &n);
        ASSERT_EQ(wire[0], 0xA2);
        ASSERT_EQ(q.u.unsubscribe.n_filters, 2);
        ax_mqtt_iter it;
        ax_mqtt_str f;
        ax_mqtt_iter_init(&it, q.u.unsubscribe.list);
        ASSERT(ax_mqtt_unsub_next(&it, &f) && str_is(f, "a/b"));
        ASSERT(ax_mqtt_unsub_next(&it, &f) && str_is(f, "$share/g/+"));
        ASSERT(!ax_mqtt_unsub_next(&it, &f));
        if (v == AX_MQTT_V5) expect_users(&q.u.unsubscribe.props);
    }
}

TEST(mqtt_ping_disconnect_auth)
{
    uint8_t wire[128], two[2];
    size_t n;
    for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
        static const unsigned empty[] = {AX_MQTT_PINGREQ, AX_MQTT_PINGRESP, AX_MQTT_DISCONNECT};
        for (size_t i = 0; i < 3; i++) {
            ax_mqtt_packet p = {.type = (uint8_t)empty[i]}, q;
            round_trip(&p, v, &q, wire, sizeof wire, &n);
            ASSERT_EQ(n, 2);
            ASSERT_EQ(ax_mqtt_encode_empty(two, empty[i]), 2);
            ASSERT(memcmp(two, wire, 2) == 0);
        }
    }
    ASSERT_EQ(ax_mqtt_encode_empty(two, AX_MQTT_PUBACK), 0);

    ax_mqtt_packet p = {.type = AX_MQTT_DISCONNECT}, q;
    p.u.reason.code = AX_MQTT_RC_SESSION_TAKEN_OVER;
    round_trip(&p, 5, &q, wire, sizeof wire, &n);
    ASSERT_EQ(n, 3);
    ASSERT_EQ(q.u.reason.code, 0x8E);
    p.u.reason.props.present = AX_MQTT_PBIT(AX_MQTT_PROP_SESSION_EXPIRY) |
                               AX_MQTT_PBIT(AX_MQTT_PROP_SERVER_REFERENCE) |
                               AX_MQTT_PBIT(AX_MQTT_PROP_REASON_STRING);
    p.u.reason.props.session_expiry = 5;
    p.u.reason.props.server_reference = S("b:1883");
    p.u.reason.props.reason_string = S("bye");
    round_trip(&p, 5, &q, wire, sizeof wire, &n);
    ASSERT_EQ(q.u.reason.props.session_expiry, 5);
    ASSERT(str_is(q.u.reason.props.reason_string, "bye"));
    /* 3.1.1 DISCONNECT ignores a code */
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &p), 2);

    ax_mqtt_packet a = {.type = AX_MQTT_AUTH};
    round_trip(&a, 5, &q, wire, sizeof wire, &n);
    ASSERT_EQ(n, 2);
    a.u.reason.code = AX_MQTT_RC_CONTINUE_AUTH;
    a.u.reason.props.present =
        AX_MQTT_PBIT(AX_MQTT_PROP_AUTH_METHOD) | AX_MQTT_PBIT(AX_MQTT_PROP_AUTH_DATA);
    a.u.reason.props.auth_method = S("SCRAM-SHA-1");
    a.u.reason.props.auth_data = S("abc");
    round_trip(&a, 5, &q, wire, sizeof wire, &n);
    ASSERT_EQ(q.u.reason.code, 0x18);
    ASSERT(str_is(q.u.reason.props.auth_data, "abc"));
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &a), 0); /* no AUTH in 3.1.1 */
}

/* Several packets back to back, fed in one buffer. */
TEST(mqtt_stream_of_packets)
{
    uint8_t b[256];
    size_t n = tu_unhex("10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 63"
                        "82 08 00 01 00 03 61 2f 23 01"
                        "32 09 00 03 61 2f 62 00 01 68 69"
                        "c0 00 e0 00",
                        b, sizeof b);
    static const unsigned want[] = {AX_MQTT_CONNECT, AX_MQTT_SUBSCRIBE, AX_MQTT_PUBLISH,
                                    AX_MQTT_PINGREQ, AX_MQTT_DISCONNECT};
    const uint8_t *p = tu_guarded(b, n);
    size_t len = n, k = 0;
    unsigned version = 0;
    for (;;) {
        ax_mqtt_packet pkt;
        int r = ax_mqtt_parse(p, len, version, 0, &pkt);
        if (r == AX_MQTT_INCOMPLETE) break;
        ASSERT(r > 0);
        ASSERT_EQ(pkt.type, want[k++]);
        if (pkt.type == AX_MQTT_CONNECT) version = pkt.u.connect.level;
        p += r, len -= (size_t)r;
    }
    ASSERT_EQ(k, 5);
    ASSERT_EQ(len, 0);
}

/* --- malformed input: one row per rule --- */

typedef struct bad_row {
    unsigned version;
    const char *hex;
    int rc;
} bad_row;

#define M (-AX_MQTT_RC_MALFORMED)
#define P (-AX_MQTT_RC_PROTOCOL_ERROR)

static const bad_row bad_rows[] = {
    /* fixed header */
    {4, "00 00", M},                   /* type 0 */
    {4, "f0 00", M},                   /* AUTH in 3.1.1 */
    {4, "36 05 00 01 61 00 01", M},    /* QoS 3 */
    {4, "38 03 00 01 61", M},          /* DUP on QoS 0 */
    {4, "40 02 00 01", 0},             /* (valid PUBACK) */
    {4, "41 02 00 01", M},             /* PUBACK flags */
    {4, "60 02 00 01", M},             /* PUBREL without 0010 */
    {4, "80 06 00 01 00 01 61 00", M}, /* SUBSCRIBE without 0010 */
    {4, "a0 05 00 01 00 01 61", M},    /* UNSUBSCRIBE without 0010 */
    {4, "c1 00", M},                   /* PINGREQ flags */
    {4, "e8 00", M},                   /* DISCONNECT flags */
    {0, "c0 00", P},                   /* not CONNECT first */
    {0, "30 03 00 01 61", P},          /* not CONNECT first */
    /* CONNECT */
    {0, "10 0c 00 04 4d 51 54 54 06 02 00 3c 00 00", -AX_MQTT_RC_UNSUPPORTED_VERSION},
    {0, "10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00", -AX_MQTT_RC_UNSUPPORTED_VERSION},
    {0, "10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00", -AX_MQTT_RC_UNSUPPORTED_VERSION},
    {0, "10 0e 00 06 4d 51 49 73 64 70 04 02 00 3c 00 00", -AX_MQTT_RC_UNSUPPORTED_VERSION},
    {0, "10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00", M}, /* reserved flag */
    {0, "10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00", M}, /* will QoS without will */
    {0, "10 0c 00 04 4d 51 54 54 04 22 00 3c 00 00", M}, /* will retain without will */
    {0, "10 14 00 04 4d 51 54 54 04 1e 00 3c 00 00 00 01 74 00 01 78 00 00", M}, /* will QoS 3 */
    {0, "10 10 00 04 4d 51 54 54 04 42 00 3c 00 00 00 02 70 77", M}, /* password, no user */
    {0, "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 00 00", M},          /* byte left over */
    {0, "10 0b 00 04 4d 51 54 54 04 02 00 3c 00", M},                /* client id cut */
    {0, "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 61 00 62", M},    /* U+0000 in id */
    {0, "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 c0 80", M},       /* overlong NUL */
    {0, "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 ed a0 80", M},    /* surrogate */
    {0, "10 10 00 04 4d 51 54 54 04 02 00 3c 00 04 f4 90 80 80", M}, /* > U+10FFFF */
    {0, "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 ff", M},          /* bad byte */
    {0, "10 14 00 04 4d 51 54 54 04 06 00 3c 00 00 00 01 2b 00 01 78 00 00", M}, /* will + */
    /* CONNECT 5.0 properties */
    {0, "10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", P},          /* recv max 0 */
    {0, "10 12 00 04 4d 51 54 54 05 02 00 3c 05 27 00 00 00 00 00 00", P},    /* max pkt 0 */
    {0, "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 17 02 00 00", P},             /* rpi 2 */
    {0, "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 19 02 00 00", P},             /* rri 2 */
    {0, "10 13 00 04 4d 51 54 54 05 02 00 3c 06 21 00 01 21 00 02 00 00", P}, /* twice */
    {0, "10 10 00 04 4d 51 54 54 05 02 00 3c 03 23 00 01 00 00", M},          /* alias in CONNECT */
    {0, "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 7f 00 00 00", M},             /* unknown id */
    {0, "10 10 00 04 4d 51 54 54 05 02 00 3c 03 16 00 00 00 00", P},          /* auth data alone */
    {0, "10 0e 00 04 4d 51 54 54 05 02 00 3c 05 11 00 00", M},    /* block past packet */
    {0, "10 0f 00 04 4d 51 54 54 05 02 00 3c 02 11 00 00 00", M}, /* value past block */
    {0, "10 0e 00 04 4d 51 54 54 05 02 00 3c 80 00 00 00", M},    /* length not minimal */
    /* will properties: a CONNECT property is not a will property */
    {0, "10 18 00 04 4d 51 54 54 05 06 00 3c 00 00 00 05 11 00 00 00 01 00 01 74 00 00", M},
    /* CONNACK */
    {4, "20 02 02 00", M}, /* reserved flag */
    {4, "20 02 00 06", M}, /* return code 6 */
    {4, "20 03 00 00 00", M},
    {5, "20 03 00 03 00", M},       /* not a CONNACK reason code */
    {5, "20 02 00 00", M},          /* no property length */
    {5, "20 05 00 00 02 24 02", P}, /* max QoS 2 */
    {5, "20 05 00 00 02 25 05", P}, /* retain available 5 */
    {5, "20 05 00 00 02 01 00", M}, /* payload format in CONNACK */
    /* PUBLISH */
    {4, "30 02 00 00", P},             /* empty topic */
    {5, "30 03 00 00 00", P},          /* empty topic without alias */
    {4, "30 05 00 03 61 2f 2b", M},    /* + in a topic name */
    {4, "30 03 00 01 23", M},          /* # in a topic name */
    {4, "32 05 00 01 61 00 00", P},    /* packet id 0 */
    {4, "32 04 00 01 61 00", M},       /* packet id cut */
    {4, "30 04 00 03 61 62", M},       /* topic cut */
    {5, "30 06 00 01 61 02 23 00", M}, /* alias cut */
    {5, "30 07 00 01 61 03 23 00 00", -AX_MQTT_RC_TOPIC_ALIAS_INVALID}, /* alias 0 */
    {5, "30 06 00 01 61 02 0b 00", P},                                  /* sub id 0 */
    {5, "30 09 00 01 61 05 0b 80 80 80 80", M},                         /* sub id 5 bytes */
    {5, "30 07 00 01 61 03 0b 80 00", M},                               /* sub id not minimal */
    {5, "30 06 00 01 61 02 01 02", P},                                  /* payload format 2 */
    {5, "30 0a 00 01 61 06 01 00 01 01 02 00", P},                      /* payload format twice */
    {5, "30 08 00 01 61 04 08 00 01 23", P}, /* wildcard response topic */
    {5, "30 06 00 01 61 02 11 00", M},       /* session expiry in PUBLISH */
    {5, "30 04 00 01 61 05", M},             /* property length past the end */
    /* acks */
    {4, "40 02 00 00", P},    /* packet id 0 */
    {4, "40 03 00 01 00", M}, /* 3.1.1: no reason code */
    {4, "40 01 00", M},
    {5, "40 03 00 01 05", M},          /* not a PUBACK code */
    {5, "62 03 00 01 10", M},          /* PUBREL with a PUBACK code */
    {5, "70 03 00 01 80", M},          /* PUBCOMP code */
    {5, "40 05 00 01 00 05 26", M},    /* block past the end */
    {5, "40 06 00 01 00 02 0b 01", M}, /* sub id in PUBACK */
    /* SUBSCRIBE */
    {4, "82 02 00 01", P},                                           /* no filters */
    {4, "82 06 00 00 00 01 61 00", P},                               /* packet id 0 */
    {4, "82 06 00 01 00 01 61 03", M},                               /* QoS 3 */
    {4, "82 06 00 01 00 01 61 04", M},                               /* 3.1.1: option bits */
    {5, "82 07 00 01 00 00 01 61 40", M},                            /* reserved bits */
    {5, "82 07 00 01 00 00 01 61 30", P},                            /* retain handling 3 */
    {4, "82 05 00 01 00 00 00", M},                                  /* empty filter */
    {4, "82 07 00 01 00 02 61 2b 00", M},                            /* a+ */
    {4, "82 07 00 01 00 02 23 2f 00", M},                            /* #/ */
    {4, "82 08 00 01 00 03 61 23 62 00", M},                         /* a#b */
    {4, "82 05 00 01 00 01 61", M},                                  /* no options byte */
    {4, "82 0d 00 01 00 08 24 73 68 61 72 65 2f 67 00", M},          /* $share/g: no filter */
    {4, "82 0e 00 01 00 09 24 73 68 61 72 65 2f 2f 61 00", M},       /* $share//a */
    {4, "82 0f 00 01 00 0a 24 73 68 61 72 65 2f 67 2f 2f 00", 0},    /* $share/g// ok */
    {4, "82 0f 00 01 00 0a 24 73 68 61 72 65 2f 2b 2f 61 00", M},    /* $share/+/a */
    {4, "82 0e 00 01 00 09 24 73 68 61 72 65 2f 67 2f 00", M},       /* $share/g/ */
    {5, "82 10 00 01 00 00 0a 24 73 68 61 72 65 2f 67 2f 61 04", P}, /* no local, shared */
    {5, "82 0b 00 01 04 0b 01 0b 02 00 01 61 00", P},                /* two sub ids in SUBSCRIBE */
    {5, "82 09 00 01 02 0b 00 00 01 61 00", P},                      /* sub id 0 */
    /* SUBACK / UNSUBACK */
    {4, "90 02 00 01", P},       /* no codes */
    {4, "90 03 00 01 03", M},    /* 3.1.1 code 3 */
    {4, "90 03 00 01 87", M},    /* 3.1.1: 0x80 only */
    {5, "90 04 00 01 00 03", M}, /* 5.0 code 3 */
    {4, "b0 03 00 01 00", M},    /* 3.1.1 UNSUBACK has no codes */
    {5, "b0 03 00 01 00", P},    /* 5.0 UNSUBACK without codes */
    {5, "b0 04 00 01 00 02", M}, /* not an UNSUBACK code */
    /* UNSUBSCRIBE */
    {4, "a2 02 00 01", P},
    {4, "a2 05 00 01 00 01 2b", 0},
    {4, "a2 06 00 01 00 02 2b 2b", M},
    {4, "a2 05 00 01 00 02 61", M}, /* filter cut */
    /* PING, DISCONNECT, AUTH */
    {4, "c0 01 00", M},
    {4, "d0 01 00", M},
    {4, "e0 01 00", M},                /* 3.1.1 DISCONNECT has no body */
    {5, "e0 01 03", M},                /* not a DISCONNECT code */
    {5, "e0 03 00 05 26", M},          /* block past the end */
    {5, "e0 04 00 02 1f 00", M},       /* property cut */
    {5, "e0 05 00 03 23 00 01", M},    /* alias not allowed */
    {5, "f0 01 01", M},                /* not an AUTH code */
    {5, "f0 04 18 02 16 00", M},       /* binary cut */
    {5, "f0 06 18 04 16 00 01 61", P}, /* auth data, no method */
};

TEST(mqtt_malformed_rows)
{
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        ax_mqtt_packet pkt;
        int r = parse_hex(bad_rows[i].hex, bad_rows[i].version, &pkt);
        int want = bad_rows[i].rc;
        bool ok = want == 0 ? r > 0 : r == want;
        if (!ok) {
            char d[256];
            snprintf(d, sizeof d, "row %zu (%s): got %d want %d (%s)", i, bad_rows[i].hex, r, want,
                     r < 0 ? pkt.error : "ok");
            ax_test_fail(__FILE__, __LINE__, "malformed row", d);
        }
        if (r < 0) ASSERT(pkt.error && *pkt.error);
        if (getenv("MQTT_VERBOSE"))
            fprintf(stderr, "%-60s %4d %s\n", bad_rows[i].hex, r, r < 0 ? pkt.error : "ok");
    }
}

/* --- properties: where each may appear --- */

TEST(mqtt_prop_allowed_table)
{
    ASSERT(ax_mqtt_prop_allowed(AX_MQTT_PUBLISH, AX_MQTT_PROP_TOPIC_ALIAS));
    ASSERT(!ax_mqtt_prop_allowed(AX_MQTT_CONNECT, AX_MQTT_PROP_TOPIC_ALIAS));
    ASSERT(ax_mqtt_prop_allowed(0, AX_MQTT_PROP_WILL_DELAY));
    ASSERT(!ax_mqtt_prop_allowed(AX_MQTT_CONNECT, AX_MQTT_PROP_WILL_DELAY));
    ASSERT(!ax_mqtt_prop_allowed(AX_MQTT_PINGREQ, AX_MQTT_PROP_USER));
    ASSERT(ax_mqtt_prop_allowed(AX_MQTT_AUTH, AX_MQTT_PROP_USER));
    ASSERT(!ax_mqtt_prop_allowed(AX_MQTT_PUBLISH, 0x04));
    ASSERT(!ax_mqtt_prop_allowed(AX_MQTT_PUBLISH, 200));
    /* every identifier in every packet: the parser agrees with the table */
    for (unsigned t = 1; t <= 15; t++) {
        if (t == AX_MQTT_CONNECT || t == AX_MQTT_PINGREQ || t == AX_MQTT_PINGRESP) continue;
        for (unsigned id = 1; id <= 0x2A; id++) {
            ax_mqtt_packet p = {.type = (uint8_t)t}, q;
            static const uint8_t one = 0;
            static const ax_mqtt_str filt = {"a", 1};
            static const ax_mqtt_sub sub = {.filter = {"a", 1}};
            uint8_t wire[128], prop[16];
            if (t == AX_MQTT_PUBLISH) p.u.publish.topic = S("a");
            if (t == AX_MQTT_SUBSCRIBE) p.u.subscribe = (ax_mqtt_subscribe){1, {0}, &sub, 1, {0}};
            if (t == AX_MQTT_UNSUBSCRIBE)
                p.u.unsubscribe = (ax_mqtt_unsubscribe){1, {0}, &filt, 1, {0}};
            if (t == AX_MQTT_SUBACK || t == AX_MQTT_UNSUBACK)
                p.u.suback = (ax_mqtt_suback){1, {0}, &one, 1};
            if (t >= AX_MQTT_PUBACK && t <= AX_MQTT_PUBCOMP) p.u.ack.packet_id = 1;
            /* one property with a value valid for its kind, as extra bytes */
            size_t pl = 0;
            prop[pl++] = (uint8_t)id;
            switch (id) {
            case 0x01:
            case 0x17:
            case 0x19:
            case 0x24:
            case 0x25:
            case 0x28:
            case 0x29:
            case 0x2A:
                prop[pl++] = 1;
                break;
            case 0x13:
            case 0x21:
            case 0x22:
            case 0x23:
                prop[pl++] = 0, prop[pl++] = 1;
                break;
            case 0x02:
            case 0x11:
            case 0x18:
            case 0x27:
                memcpy(prop + pl, "\0\0\0\1", 4), pl += 4;
                break;
            case 0x0B:
                prop[pl++] = 1;
                break;
            case 0x26:
                memcpy(prop + pl, "\0\1k\0\1v", 6), pl += 6;
                break;
            case 0x03:
            case 0x08:
            case 0x09:
            case 0x12:
            case 0x15:
            case 0x16:
            case 0x1A:
            case 0x1C:
            case 0x1F:
                memcpy(prop + pl, "\0\1x", 3), pl += 3;
                break;
            default:
                pl = 0;
                break;
            }
            if (pl == 0) continue;
            ax_mqtt_props *pr = t == AX_MQTT_CONNACK       ? &p.u.connack.props
                                : t == AX_MQTT_PUBLISH     ? &p.u.publish.props
                                : t <= AX_MQTT_PUBCOMP     ? &p.u.ack.props
                                : t == AX_MQTT_SUBSCRIBE   ? &p.u.subscribe.props
                                : t == AX_MQTT_UNSUBSCRIBE ? &p.u.unsubscribe.props
                                : t <= AX_MQTT_UNSUBACK    ? &p.u.suback.props
                                                           : &p.u.reason.props;
            pr->extra = (ax_mqtt_str){(const char *)prop, pl};
            if (id == AX_MQTT_PROP_AUTH_DATA && ax_mqtt_prop_allowed(t, AX_MQTT_PROP_AUTH_METHOD)) {
                ax_mqtt_props_set(pr, AX_MQTT_PROP_AUTH_METHOD);
                pr->auth_method = S("m");
            }
            size_t n = ax_mqtt_encode(wire, sizeof wire, 5, &p);
            if (n == 0) {
                char d[64];
                snprintf(d, sizeof d, "type %u id 0x%02x", t, id);
                ax_test_fail(__FILE__, __LINE__, "encode", d);
            }
            int r = parse_each_way(wire, n, 5, 0, &q);
            bool allowed = ax_mqtt_prop_allowed(t, id);
            if (id == AX_MQTT_PROP_AUTH_DATA && !ax_mqtt_prop_allowed(t, AX_MQTT_PROP_AUTH_METHOD))
                allowed = false;
            if (allowed != (r > 0)) {
                char d[128];
                snprintf(d, sizeof d, "type %u id 0x%02x: %d (%s)", t, id, r, r < 0 ? q.error : "");
                ax_test_fail(__FILE__, __LINE__, "allowed", d);
            }
            if (!allowed) ASSERT_EQ(r, -AX_MQTT_RC_MALFORMED);
            /* the encoder refuses a property not allowed there */
            pr->extra = (ax_mqtt_str){NULL, 0};
            pr->present |= AX_MQTT_PBIT(id);
            if (id != AX_MQTT_PROP_USER && id != AX_MQTT_PROP_SUB_ID)
                ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 5, &p) > 0,
                          ax_mqtt_prop_allowed(t, id));
        }
    }
}

TEST(mqtt_props_filter_forwards)
{
    /* PUBLISH with alias, user, expiry, user, sub id: keep users and
     * content type only */
    ax_mqtt_packet q;
    ASSERT_EQ(parse_hex("30 1b 00 01 61 17 23 00 02 26 00 01 61 00 01 62 02 00 00 00 0a"
                        "26 00 01 63 00 00 0b 05",
                        5, &q),
              29);
    const ax_mqtt_props *pr = &q.u.publish.props;
    ASSERT_EQ(pr->n_user, 2);
    ASSERT_EQ(pr->message_expiry, 10);
    uint8_t out[64];
    uint64_t keep = AX_MQTT_PBIT(AX_MQTT_PROP_USER) | AX_MQTT_PBIT(AX_MQTT_PROP_CONTENT_TYPE);
    size_t n = ax_mqtt_props_filter(pr, keep, NULL, 0);
    ASSERT_EQ(n, 13);
    ASSERT_EQ(ax_mqtt_props_filter(pr, keep, out, 12), 13); /* too small: measured */
    ASSERT_EQ(ax_mqtt_props_filter(pr, keep, out, sizeof out), 13);
    uint8_t want[16];
    ASSERT_EQ(tu_unhex("26 00 01 61 00 01 62 26 00 01 63 00 00", want, sizeof want), 13);
    ASSERT(memcmp(out, want, 13) == 0);
    /* forward: a new PUBLISH with another expiry, a per-subscriber sub id,
     * the kept user properties */
    ax_mqtt_packet f = {.type = AX_MQTT_PUBLISH}, g;
    static const uint32_t sid = 9;
    f.u.publish.topic = S("a");
    ax_mqtt_props_set(&f.u.publish.props, AX_MQTT_PROP_MESSAGE_EXPIRY);
    f.u.publish.props.message_expiry = 4;
    f.u.publish.props.sub_ids = &sid;
    f.u.publish.props.n_sub_ids = 1;
    f.u.publish.props.extra = (ax_mqtt_str){(const char *)out, n};
    uint8_t wire[128];
    size_t wn;
    round_trip(&f, 5, &g, wire, sizeof wire, &wn);
    ASSERT_EQ(g.u.publish.props.message_expiry, 4);
    ASSERT_EQ(g.u.publish.props.sub_id, 9);
    ax_mqtt_iter it;
    ax_mqtt_str k, v;
    ax_mqtt_iter_init(&it, g.u.publish.props.raw);
    ASSERT(ax_mqtt_user_next(&it, &k, &v) && str_is(k, "a") && str_is(v, "b"));
    ASSERT(ax_mqtt_user_next(&it, &k, &v) && str_is(k, "c") && str_is(v, ""));
    ASSERT(!ax_mqtt_user_next(&it, &k, &v));
}

/* --- fan-out: one head, many packet ids --- */

TEST(mqtt_publish_head_fanout)
{
    for (unsigned v = AX_MQTT_V311; v <= AX_MQTT_V5; v++) {
        ax_mqtt_publish pub = {.qos = 1, .topic = {"room/1", 6}};
        static const uint8_t payload[300] = {1, 2, 3};
        pub.payload = payload;
        pub.payload_len = sizeof payload;
        if (v == AX_MQTT_V5) {
            pub.props.user = users;
            pub.props.n_user = 2;
        }
        uint8_t head[64], whole[512];
        size_t id_off = 0;
        size_t hn = ax_mqtt_encode_publish_head(head, sizeof head, v, &pub, &id_off);
        ASSERT(hn > 0);
        ASSERT_EQ(id_off, 1 + 2 + 2 + 6); /* remaining length takes 2 bytes */
        for (uint16_t id = 1; id < 4; id++) {
            uint8_t copy[64];
            memcpy(copy, head, hn);
            ax_mqtt_publish_set_id(copy, id_off, id);
            memcpy(whole, copy, hn);
            memcpy(whole + hn, payload, sizeof payload);
            ax_mqtt_packet ref = {.type = AX_MQTT_PUBLISH}, q;
            uint8_t want[512];
            ref.u.publish = pub;
            ref.u.publish.packet_id = id;
            size_t n = ax_mqtt_encode(want, sizeof want, v, &ref);
            ASSERT_EQ(n, hn + sizeof payload);
            ASSERT(memcmp(want, whole, n) == 0);
            ASSERT_EQ(ax_mqtt_parse(tu_guarded(whole, n), n, v, 0, &q), n);
            ASSERT_EQ(q.u.publish.packet_id, id);
            ax_mqtt_publish_set_dup(whole);
            ASSERT_EQ(ax_mqtt_parse(tu_guarded(whole, n), n, v, 0, &q), n);
            ASSERT(q.u.publish.dup);
        }
        /* QoS 0: no id */
        pub.qos = 0;
        ASSERT(ax_mqtt_encode_publish_head(head, sizeof head, v, &pub, &id_off) > 0);
        ASSERT_EQ(id_off, 0);
        /* measure only */
        pub.qos = 2;
        ASSERT_EQ(ax_mqtt_encode_publish_head(NULL, 0, v, &pub, &id_off), hn);
    }
}

/* --- encoder refusals --- */

TEST(mqtt_encode_refuses)
{
    uint8_t wire[128];
    ax_mqtt_packet p = {.type = AX_MQTT_PUBLISH};
    p.u.publish.topic = S("a");
    p.u.publish.qos = 1; /* packet id 0 */
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &p), 0);
    p.u.publish.qos = 3;
    p.u.publish.packet_id = 1;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &p), 0);
    p.u.publish.qos = 0;
    p.u.publish.dup = true;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &p), 0);
    p.u.publish.dup = false;
    p.u.publish.topic.len = 70000;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &p), 0);
    p.u.publish.topic = S("a");
    p.u.publish.payload_len = AX_MQTT_MAX_REMAINING; /* 3 more bytes of topic */
    p.u.publish.payload = wire;
    ASSERT_EQ(ax_mqtt_encode(NULL, 0, 4, &p), 0);
    ASSERT_EQ(ax_mqtt_encode_publish_head(NULL, 0, 4, &p.u.publish, NULL), 0);
    p.u.publish.payload_len = AX_MQTT_MAX_REMAINING - 3;
    ASSERT_EQ(ax_mqtt_encode_publish_head(NULL, 0, 4, &p.u.publish, NULL), 8);
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 9, &p), 0); /* version */
    /* lengths that would wrap a size_t: refused, nothing written */
    p.u.publish.payload_len = SIZE_MAX - 2;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &p), 0);
    ASSERT_EQ(ax_mqtt_encode_publish_head(wire, sizeof wire, 4, &p.u.publish, NULL), 0);
    p.u.publish.payload_len = (size_t)AX_MQTT_MAX_REMAINING + 1;
    ASSERT_EQ(ax_mqtt_encode_publish_head(wire, sizeof wire, 4, &p.u.publish, NULL), 0);
    /* 3.1.1 CONNECT with a password and no user name */
    ax_mqtt_packet c = {.type = AX_MQTT_CONNECT};
    c.u.connect.has_password = true;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &c), 0);
    ASSERT(ax_mqtt_encode(wire, sizeof wire, 5, &c) > 0);
    /* a sub id of 0, a sub id in CONNECT */
    static const uint32_t zero = 0, one = 1;
    p.u.publish.payload_len = 0;
    p.u.publish.props.sub_ids = &zero;
    p.u.publish.props.n_sub_ids = 1;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 5, &p), 0);
    c.u.connect.props.sub_ids = &one;
    c.u.connect.props.n_sub_ids = 1;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 5, &c), 0);
    ASSERT(ax_mqtt_encode(wire, sizeof wire, 4, &c) == 0); /* still the password */
    /* SUBSCRIBE with nothing in it; unknown type */
    ax_mqtt_packet s = {.type = AX_MQTT_SUBSCRIBE};
    s.u.subscribe.packet_id = 1;
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &s), 0);
    ax_mqtt_packet z = {.type = 0};
    ASSERT_EQ(ax_mqtt_encode(wire, sizeof wire, 4, &z), 0);
}

/* --- text rules --- */

TEST(mqtt_utf8_topic_filter)
{
    ASSERT(ax_mqtt_utf8_valid("", 0));
    ASSERT(ax_mqtt_utf8_valid("abcdefghijklmnopqrstuvwxyz", 26));
    ASSERT(ax_mqtt_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf", 12));
    ASSERT(ax_mqtt_utf8_valid("\xf4\x8f\xbf\xbf", 4));
    ASSERT(!ax_mqtt_utf8_valid("abcdefg\0hij", 11));
    ASSERT(!ax_mqtt_utf8_valid("\xc0\x80", 2));
    ASSERT(!ax_mqtt_utf8_valid("\xe0\x9f\xbf", 3));
    ASSERT(!ax_mqtt_utf8_valid("\xed\xbf\xbf", 3));
    ASSERT(!ax_mqtt_utf8_valid("\xf0\x8f\xbf\xbf", 4));
    ASSERT(!ax_mqtt_utf8_valid("\xf5\x80\x80\x80", 4));
    ASSERT(!ax_mqtt_utf8_valid("\x80", 1));
    ASSERT(!ax_mqtt_utf8_valid("abcdefgh\xe2\x82", 10));
    ASSERT(!ax_mqtt_utf8_valid("\xe2\x28\xa1", 3));

    ASSERT(ax_mqtt_topic_valid("a", 1));
    ASSERT(ax_mqtt_topic_valid("/", 1));
    ASSERT(ax_mqtt_topic_valid("$SYS/x", 6));
    ASSERT(!ax_mqtt_topic_valid("", 0));
    ASSERT(!ax_mqtt_topic_valid("a/+", 3));
    ASSERT(!ax_mqtt_topic_valid("a#", 2));

    static const struct {
        const char *f;
        bool ok;
        const char *share, *topic;
    } rows[] = {
        {"#", true, "", "#"},
        {"+", true, "", "+"},
        {"a/#", true, "", "a/#"},
        {"+/+/#", true, "", "+/+/#"},
        {"/", true, "", "/"},
        {"a//b", true, "", "a//b"},
        {"a/+/b", true, "", "a/+/b"},
        {"$share/g/a/b", true, "g", "a/b"},
        {"$share/g/#", true, "g", "#"},
        {"$shared/x", true, "", "$shared/x"},
        {"$sharex", true, "", "$sharex"},
        {"", false, NULL, NULL},
        {"a+", false, NULL, NULL},
        {"+a", false, NULL, NULL},
        {"a/#/b", false, NULL, NULL},
        {"##", false, NULL, NULL},
        {"a/b#", false, NULL, NULL},
        {"$share/", false, NULL, NULL},
        {"$share/g", false, NULL, NULL},
        {"$share/g/", false, NULL, NULL},
        {"$share//a", false, NULL, NULL},
        {"$share/g#/a", false, NULL, NULL},
        {"$share/g+/a", false, NULL, NULL},
        {"$share/g/a+", false, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ax_mqtt_str sh, tp;
        bool ok = ax_mqtt_filter_valid(rows[i].f, strlen(rows[i].f), &sh, &tp);
        if (ok != rows[i].ok) ax_test_fail(__FILE__, __LINE__, "filter", rows[i].f);
        if (!ok) continue;
        ASSERT(str_is(sh, rows[i].share));
        ASSERT(str_is(tp, rows[i].topic));
    }
}

TEST(mqtt_names)
{
    ASSERT_STREQ(ax_mqtt_type_name(AX_MQTT_PUBLISH), "PUBLISH");
    ASSERT_STREQ(ax_mqtt_type_name(AX_MQTT_AUTH), "AUTH");
    ASSERT_STREQ(ax_mqtt_type_name(0), "?");
    ASSERT_STREQ(ax_mqtt_type_name(16), "?");
    ASSERT_STREQ(ax_mqtt_reason_name(0x81), "Malformed Packet");
    ASSERT_STREQ(ax_mqtt_reason_name(0x95), "Packet too large");
    ASSERT_STREQ(ax_mqtt_reason_name(0x03), "?");
}
