/* fuzz_mqtt.c: libFuzzer target for the MQTT codec (src/proto/mqtt/).
 *
 * The first input byte picks the connection's protocol level (0: before
 * CONNECT, 4 or 5) and a maximum packet size; the rest is a byte stream as
 * a peer would send it.  For each packet:
 *  - every shorter prefix of it (all of them for small packets, a sample
 *    for large ones) must ask for more or fail with the same code;
 *  - a packet that parses is walked with every iterator, encoded again from
 *    the parsed struct (user properties and subscription identifiers
 *    carried by ax_mqtt_props_filter()), parsed back, and must decode to
 *    the same fields; encoding that again gives the same bytes;
 *  - a PUBLISH is also written as head + payload and must match;
 *  - an error comes with a reason code the spec defines and a message.
 * ax_mqtt_utf8_valid() is compared with the WebSocket UTF-8 validator plus
 * a NUL check, and the topic name / filter checks with rules written out
 * again here, on the whole input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mqtt/mqtt.h"
#include "proto/ws/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_mqtt: check failed at line %d: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool same_str(ax_mqtt_str a, ax_mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void same_props(const ax_mqtt_props *a, const ax_mqtt_props *b)
{
    CHECK(a->present == b->present);
    CHECK(a->message_expiry == b->message_expiry && a->session_expiry == b->session_expiry);
    CHECK(a->will_delay == b->will_delay && a->max_packet_size == b->max_packet_size);
    CHECK(a->sub_id == b->sub_id && a->receive_max == b->receive_max);
    CHECK(a->topic_alias_max == b->topic_alias_max && a->topic_alias == b->topic_alias);
    CHECK(a->server_keep_alive == b->server_keep_alive);
    CHECK(a->payload_format == b->payload_format);
    CHECK(a->request_problem_info == b->request_problem_info);
    CHECK(a->request_response_info == b->request_response_info);
    CHECK(a->max_qos == b->max_qos && a->retain_available == b->retain_available);
    CHECK(a->wildcard_sub_available == b->wildcard_sub_available);
    CHECK(a->sub_id_available == b->sub_id_available);
    CHECK(a->shared_sub_available == b->shared_sub_available);
    CHECK(same_str(a->content_type, b->content_type));
    CHECK(same_str(a->response_topic, b->response_topic));
    CHECK(same_str(a->correlation_data, b->correlation_data));
    CHECK(same_str(a->assigned_client_id, b->assigned_client_id));
    CHECK(same_str(a->auth_method, b->auth_method) && same_str(a->auth_data, b->auth_data));
    CHECK(same_str(a->response_info, b->response_info));
    CHECK(same_str(a->server_reference, b->server_reference));
    CHECK(same_str(a->reason_string, b->reason_string));
    CHECK(a->n_user == b->n_user && a->n_sub_ids == b->n_sub_ids);
    /* the repeatable ones, in order */
    ax_mqtt_iter ia, ib;
    ax_mqtt_prop pa, pb;
    ax_mqtt_iter_init(&ia, a->raw);
    ax_mqtt_iter_init(&ib, b->raw);
    for (;;) {
        bool more_a, more_b;
        do
            more_a = ax_mqtt_prop_next(&ia, &pa);
        while (more_a && pa.id != AX_MQTT_PROP_USER && pa.id != AX_MQTT_PROP_SUB_ID);
        do
            more_b = ax_mqtt_prop_next(&ib, &pb);
        while (more_b && pb.id != AX_MQTT_PROP_USER && pb.id != AX_MQTT_PROP_SUB_ID);
        CHECK(more_a == more_b);
        if (!more_a) break;
        CHECK(pa.id == pb.id && pa.num == pb.num);
        CHECK(same_str(pa.str, pb.str) && same_str(pa.str2, pb.str2));
    }
}

/* Every property the iterator yields is one the parser counted. */
static void walk_props(const ax_mqtt_props *p)
{
    ax_mqtt_iter it;
    ax_mqtt_prop pr;
    uint32_t users = 0, sids = 0;
    uint64_t seen = 0;
    ax_mqtt_iter_init(&it, p->raw);
    while (ax_mqtt_prop_next(&it, &pr)) {
        CHECK(pr.id < 64);
        seen |= AX_MQTT_PBIT(pr.id);
        if (pr.id == AX_MQTT_PROP_USER) users++;
        if (pr.id == AX_MQTT_PROP_SUB_ID) sids++;
    }
    CHECK(it.p == it.end);
    CHECK(seen == p->present && users == p->n_user && sids == p->n_sub_ids);
}

static ax_mqtt_props *props_of(ax_mqtt_packet *p)
{
    switch (p->type) {
    case AX_MQTT_CONNECT:
        return &p->u.connect.props;
    case AX_MQTT_CONNACK:
        return &p->u.connack.props;
    case AX_MQTT_PUBLISH:
        return &p->u.publish.props;
    case AX_MQTT_PUBACK:
    case AX_MQTT_PUBREC:
    case AX_MQTT_PUBREL:
    case AX_MQTT_PUBCOMP:
        return &p->u.ack.props;
    case AX_MQTT_SUBSCRIBE:
        return &p->u.subscribe.props;
    case AX_MQTT_SUBACK:
    case AX_MQTT_UNSUBACK:
        return &p->u.suback.props;
    case AX_MQTT_UNSUBSCRIBE:
        return &p->u.unsubscribe.props;
    case AX_MQTT_DISCONNECT:
    case AX_MQTT_AUTH:
        return &p->u.reason.props;
    default:
        return NULL;
    }
}

#define KEEP_REPEATED (AX_MQTT_PBIT(AX_MQTT_PROP_USER) | AX_MQTT_PBIT(AX_MQTT_PROP_SUB_ID))

/* Makes a parsed props struct encodable: the repeatable properties go in
 * `extra`, copied to buf. */
static void prep(ax_mqtt_props *p, uint8_t *buf, size_t cap)
{
    size_t n = ax_mqtt_props_filter(p, KEEP_REPEATED, buf, cap);
    CHECK(n <= cap);
    p->extra = (ax_mqtt_str){(const char *)buf, n};
}

static void compare(const ax_mqtt_packet *a, const ax_mqtt_packet *b, unsigned version)
{
    CHECK(a->type == b->type);
    switch (a->type) {
    case AX_MQTT_CONNECT: {
        const ax_mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
        CHECK(x->level == y->level && x->clean == y->clean && x->keep_alive == y->keep_alive);
        CHECK(same_str(x->protocol_name, y->protocol_name) && same_str(x->client_id, y->client_id));
        CHECK(x->will == y->will && x->will_qos == y->will_qos && x->will_retain == y->will_retain);
        CHECK(same_str(x->will_topic, y->will_topic) && same_str(x->will_payload, y->will_payload));
        CHECK(x->has_username == y->has_username && x->has_password == y->has_password);
        CHECK(same_str(x->username, y->username) && same_str(x->password, y->password));
        same_props(&x->will_props, &y->will_props);
        break;
    }
    case AX_MQTT_CONNACK:
        CHECK(a->u.connack.session_present == b->u.connack.session_present);
        CHECK(a->u.connack.code == b->u.connack.code);
        break;
    case AX_MQTT_PUBLISH: {
        const ax_mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        CHECK(x->qos == y->qos && x->retain == y->retain && x->dup == y->dup);
        CHECK(x->packet_id == y->packet_id && same_str(x->topic, y->topic));
        CHECK(x->payload_len == y->payload_len);
        CHECK(x->payload_len == 0 || memcmp(x->payload, y->payload, x->payload_len) == 0);
        break;
    }
    case AX_MQTT_PUBACK:
    case AX_MQTT_PUBREC:
    case AX_MQTT_PUBREL:
    case AX_MQTT_PUBCOMP:
        CHECK(a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.code == b->u.ack.code);
        break;
    case AX_MQTT_SUBSCRIBE:
        CHECK(a->u.subscribe.packet_id == b->u.subscribe.packet_id);
        CHECK(a->u.subscribe.n_subs == b->u.subscribe.n_subs);
        CHECK(same_str(a->u.subscribe.list, b->u.subscribe.list));
        break;
    case AX_MQTT_UNSUBSCRIBE:
        CHECK(a->u.unsubscribe.packet_id == b->u.unsubscribe.packet_id);
        CHECK(a->u.unsubscribe.n_filters == b->u.unsubscribe.n_filters);
        CHECK(same_str(a->u.unsubscribe.list, b->u.unsubscribe.list));
        break;
    case AX_MQTT_SUBACK:
    case AX_MQTT_UNSUBACK:
        CHECK(a->u.suback.packet_id == b->u.suback.packet_id);
        CHECK(a->u.suback.n_codes == b->u.suback.n_codes);
        CHECK(a->u.suback.n_codes == 0 ||
              memcmp(a->u.suback.codes, b->u.suback.codes, a->u.suback.n_codes) == 0);
        break;
    case AX_MQTT_DISCONNECT:
    case AX_MQTT_AUTH:
        CHECK(a->u.reason.code == b->u.reason.code);
        break;
    default:
        break;
    }
    const ax_mqtt_props *pa = props_of((ax_mqtt_packet *)a), *pb = props_of((ax_mqtt_packet *)b);
    if (pa) same_props(pa, pb);
    (void)version;
}

static void walk(ax_mqtt_packet *p, unsigned version)
{
    ax_mqtt_props *pr = props_of(p);
    if (pr) walk_props(pr);
    if (p->type == AX_MQTT_CONNECT) walk_props(&p->u.connect.will_props);
    if (p->type == AX_MQTT_SUBSCRIBE) {
        ax_mqtt_iter it;
        ax_mqtt_sub s;
        size_t n = 0;
        ax_mqtt_iter_init(&it, p->u.subscribe.list);
        while (ax_mqtt_sub_next(&it, version, &s)) {
            ax_mqtt_str sh, tp;
            CHECK(ax_mqtt_filter_valid(s.filter.ptr, s.filter.len, &sh, &tp));
            CHECK(same_str(sh, s.share) && same_str(tp, s.topic));
            CHECK(s.qos <= 2 && s.retain_handling <= 2);
            n++;
        }
        CHECK(n == p->u.subscribe.n_subs && n > 0);
    }
    if (p->type == AX_MQTT_UNSUBSCRIBE) {
        ax_mqtt_iter it;
        ax_mqtt_str f;
        size_t n = 0;
        ax_mqtt_iter_init(&it, p->u.unsubscribe.list);
        while (ax_mqtt_unsub_next(&it, &f)) {
            CHECK(ax_mqtt_filter_valid(f.ptr, f.len, NULL, NULL));
            n++;
        }
        CHECK(n == p->u.unsubscribe.n_filters && n > 0);
    }
    if (p->type == AX_MQTT_PUBLISH && p->u.publish.topic.len)
        CHECK(ax_mqtt_topic_valid(p->u.publish.topic.ptr, p->u.publish.topic.len));
}

static uint8_t out1[1 << 17], out2[1 << 17];

/* Encode the parsed packet, parse it back, compare, encode again. */
static void reencode(const ax_mqtt_packet *parsed, unsigned version)
{
    static uint8_t ex1[1 << 16], ex2[1 << 16];
    ax_mqtt_packet e = *parsed, back;
    if (e.type == AX_MQTT_CONNECT) {
        version = e.u.connect.level;
        prep(&e.u.connect.will_props, ex2, sizeof ex2);
    }
    ax_mqtt_props *pr = props_of(&e);
    if (pr) prep(pr, ex1, sizeof ex1);
    size_t n = ax_mqtt_encode(NULL, 0, version, &e);
    CHECK(n > 0 && n <= parsed->size);
    CHECK(ax_mqtt_encode(out1, sizeof out1, version, &e) == n);
    int r = ax_mqtt_parse(out1, n, e.type == AX_MQTT_CONNECT ? 0 : version, 0, &back);
    if (r <= 0) fprintf(stderr, "re-parse: %d %s\n", r, back.error);
    CHECK(r == (int)n);
    compare(parsed, &back, version);

    if (e.type == AX_MQTT_PUBLISH) {
        size_t id_off = 0;
        size_t hn = ax_mqtt_encode_publish_head(out2, sizeof out2, version, &e.u.publish, &id_off);
        CHECK(hn + e.u.publish.payload_len == n);
        CHECK(memcmp(out2, out1, hn) == 0);
        CHECK(e.u.publish.qos ? id_off + 2 <= hn : id_off == 0);
        if (e.u.publish.qos) CHECK((out2[id_off] << 8 | out2[id_off + 1]) == e.u.publish.packet_id);
    }

    /* encoding the re-parsed packet is a fixed point */
    ax_mqtt_packet f = back;
    if (f.type == AX_MQTT_CONNECT) prep(&f.u.connect.will_props, ex2, sizeof ex2);
    pr = props_of(&f);
    if (pr) prep(pr, ex1, sizeof ex1);
    CHECK(ax_mqtt_encode(out2, sizeof out2, version, &f) == n);
    CHECK(memcmp(out1, out2, n) == 0);
}

static bool known_error(int r)
{
    switch (-r) {
    case AX_MQTT_RC_MALFORMED:
    case AX_MQTT_RC_PROTOCOL_ERROR:
    case AX_MQTT_RC_UNSUPPORTED_VERSION:
    case AX_MQTT_RC_TOPIC_ALIAS_INVALID:
    case AX_MQTT_RC_PACKET_TOO_LARGE:
        return true;
    default:
        return false;
    }
}

static void check_prefixes(const uint8_t *buf, size_t full, unsigned version, size_t max, int whole)
{
    static uint8_t copy[1 << 17];
    size_t step = full > 64 ? full / 16 : 1;
    for (size_t k = 0; k < full; k += step) {
        ax_mqtt_packet p;
        /* a copy of exactly k bytes, so ASan sees a read past them */
        uint8_t *c = k ? malloc(k) : NULL;
        if (k) memcpy(c, buf, k);
        int r = ax_mqtt_parse(c, k, version, max, &p);
        free(c);
        CHECK(r == AX_MQTT_INCOMPLETE || (r < 0 && r == whole));
        if (r == AX_MQTT_INCOMPLETE && p.size && whole > 0) CHECK(p.size == (uint32_t)whole);
    }
    (void)copy;
}

/* Topic filter rules written out again, level by level. */
static bool ref_levels(const char *s, size_t len)
{
    size_t start = 0;
    if (len == 0) return false;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/') continue;
        size_t n = i - start;
        const char *lv = s + start;
        bool wild = memchr(lv, '+', n) || memchr(lv, '#', n);
        if (wild && !(n == 1 && (lv[0] == '+' || (lv[0] == '#' && i == len)))) return false;
        start = i + 1;
    }
    return true;
}

static bool ref_filter(const char *s, size_t len)
{
    if (len == 0 || len > 65535) return false;
    if (len >= 7 && memcmp(s, "$share/", 7) == 0) {
        const char *name = s + 7, *slash = memchr(name, '/', len - 7);
        if (!slash || slash == name) return false;
        size_t nl = (size_t)(slash - name);
        if (memchr(name, '+', nl) || memchr(name, '#', nl)) return false;
        return ref_levels(slash + 1, len - 7 - nl - 1);
    }
    return ref_levels(s, len);
}

static void filter_differential(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    bool utf8 = ax_mqtt_utf8_valid(data, size);
    CHECK(ax_mqtt_filter_valid(s, size, NULL, NULL) == (utf8 && ref_filter(s, size)));
    CHECK(ax_mqtt_topic_valid(s, size) ==
          (utf8 && size > 0 && size <= 65535 && !memchr(s, '+', size) && !memchr(s, '#', size)));
}

static void utf8_differential(const uint8_t *data, size_t size)
{
    ax_utf8 v;
    ax_utf8_init(&v);
    bool ref =
        ax_utf8_feed(&v, data, size) == size && v.state == AX_UTF8_ACCEPT && !memchr(data, 0, size);
    CHECK(ax_mqtt_utf8_valid(data, size) == ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const unsigned versions[4] = {0, 4, 5, 5};
    unsigned version = versions[data[0] & 3];
    size_t max = (data[0] & 4) ? 64 + (size_t)(data[0] >> 3) * 16 : 0;
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    utf8_differential(p, len);
    filter_differential(p, len);

    for (int guard = 0; guard < 1000; guard++) {
        ax_mqtt_packet pkt;
        int r = ax_mqtt_parse(p, len, version, max, &pkt);
        if (r == AX_MQTT_INCOMPLETE) {
            CHECK(pkt.size == 0 || pkt.size > len);
            break;
        }
        size_t full = r > 0 ? (size_t)r : (pkt.size && pkt.size <= len ? pkt.size : len);
        check_prefixes(p, full, version, max, r);
        if (r < 0) {
            CHECK(known_error(r) && pkt.error && *pkt.error);
            break;
        }
        CHECK((size_t)r <= len && (max == 0 || (size_t)r <= max));
        walk(&pkt, version ? version : pkt.u.connect.level);
        reencode(&pkt, version);
        if (pkt.type == AX_MQTT_CONNECT) version = pkt.u.connect.level == 5 ? 5 : 4;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}
