/* test_envelope.c: the request scan of src/hub/envelope.c (envelope.h)
 * against jansson on valid, invalid and adversarial texts (escapes,
 * surrogates, UTF-8, nesting, duplicate keys, numbers), each text also
 * placed against an unreadable page and cut at every length; and the
 * message writer byte for byte against json_dumps(). */
#define _GNU_SOURCE
#include "runner.h"
#include "testutil.h"

#include <unistd.h>

#include "../fuzz/envelope_diff.h"
#include "proto/mqtt/mqtt.h"
#include "proto/ws/utf8.h"

/* d placed so that its last byte is the last readable one. */
/* The scan of s agrees with jansson, whole and cut at every length. */
static void agrees(const char *s, size_t n)
{
    for (size_t k = 0; k <= n; k++) {
        int bad = env_diff_scan(tu_guarded(s, k), k);
        if (bad) fprintf(stderr, "disagree (%d) at %zu of: %.*s\n", bad, k, (int)n, s);
        ASSERT_EQ(bad, 0);
    }
}

static int scan(const char *s, env_req *q)
{
    return env_scan(tu_guarded(s, strlen(s)), strlen(s), q);
}

static const char *const texts[] = {
    "{}",
    " \t\r\n{ \"type\" : \"ping\" } \n",
    "{\"type\":\"publish\",\"topic\":\"chat/lobby\",\"payload\":\"hi\",\"id\":7}",
    "{\"type\":\"publish\",\"topic\":\"a\\/"
    "b\",\"payload\":\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\b\\f\\r\"}",
    "{\"x\":{\"y\":[1,-2,0,-0,3.25,1e5,1E-5,2.5e+3,true,false,null,\"\",[],{}]},\"type\":\"nick\"}",
    "{\"payload\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
    "\xf4\x8f\xbf\xbf\",\"id\":{\"a\":[\"b\"]}}",
    "{\"since\":123456789012345678,\"limit\":-123456789012345678,\"presence\":false}",
    /* numbers left to jansson, or refused */
    "{\"since\":1234567890123456789}",
    "{\"since\":99999999999999999999}",
    "{\"since\":-99999999999999999999}",
    "{\"x\":1e400}",
    "{\"x\":-1e309}",
    "{\"x\":1e-400}",
    "{\"x\":01}",
    "{\"x\":-}",
    "{\"x\":1.}",
    "{\"x\":.5}",
    "{\"x\":1e}",
    "{\"x\":+1}",
    "{\"x\":0x10}",
    "{\"x\":1.5e99999999999999999999}",
    "{\"x\":-0.0}",
    "{\"x\":NaN}",
    "{\"x\":Infinity}",
    /* duplicate keys: nothing wins */
    "{\"type\":\"ping\",\"type\":\"publish\"}",
    "{\"a\":1,\"b\":2,\"a\":3}",
    "{\"x\":{\"k\":1,\"k\":2}}",
    "{\"x\":[{\"k\":1},{\"k\":2}]}",
    "{\"topic\":\"a\",\"t\\u006fpic\":\"b\"}",
    "{\"\":1,\"\":2}",
    "{\"x\":{\"type\":1},\"type\":\"ping\"}",
    /* strings */
    "{\"payload\":\"\\u0000\"}",
    "{\"payload\":\"\\ud800\"}",
    "{\"payload\":\"\\udc00\"}",
    "{\"payload\":\"\\ud800\\u0041\"}",
    "{\"payload\":\"\\ud800\\\\u0041\"}",
    "{\"payload\":\"\\u12\"}",
    "{\"payload\":\"\\uZZZZ\"}",
    "{\"payload\":\"\\x41\"}",
    "{\"payload\":\"\\'\"}",
    "{\"payload\":\"a\nb\"}",
    "{\"payload\":\"a\tb\"}",
    "{\"payload\":\"\x7f\"}",
    "{\"payload\":\"\xc0\xaf\"}",
    "{\"payload\":\"\xed\xa0\x80\"}",
    "{\"payload\":\"\xf4\x90\x80\x80\"}",
    "{\"payload\":\"\xe0\x80\xaf\"}",
    "{\"payload\":\"\x80\"}",
    "{\"payload\":\"\xff\"}",
    "{\"payload\":\"\xe2\x82\"}",
    "{\"k\xc3\xa9y\":1}",
    "{\"\\u0000\":1}",
    "{\"a\\u0000b\":1}",
    /* structure */
    "",
    " ",
    "[]",
    "[1]",
    "\"str\"",
    "1",
    "null",
    "{",
    "}",
    "{\"a\"}",
    "{\"a\":}",
    "{\"a\":1,}",
    "{,}",
    "{\"a\":1 \"b\":2}",
    "{\"a\":[1,]}",
    "{\"a\":[,1]}",
    "{\"a\":tru}",
    "{\"a\":truex}",
    "{\"a\":nul}",
    "{\"a\":falsey}",
    "{} {}",
    "{}x",
    "{}\x00",
    "{\"a\":1}\x0b",
    "{'a':1}",
    "{a:1}",
    "\xef\xbb\xbf{}",
    "{\"a\":\"b\"\x00}",
    "{\"a\"\x0c:1}",
};

TEST(envelope_scan_agrees_with_jansson)
{
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        agrees(texts[i], strlen(texts[i]));
    agrees("{}\x00", 3);
    agrees("{\"a\":\"\x00\"}", 9);
}

TEST(envelope_scan_reads_fields)
{
    env_req q;
    ASSERT_EQ(scan("{\"type\":\"publish\",\"topic\":\"a\\/b\",\"payload\":\"\\u00e9\\ud83d\\ude00"
                   "\\n\",\"id\":-7,\"x\":{\"type\":\"no\"},\"since\":12,\"presence\":true}",
                   &q),
              0);
    ASSERT(env_is(&q.f[ENV_F_TYPE], "publish"));
    ASSERT(!env_is(&q.f[ENV_F_TYPE], "publis"));
    ASSERT(!env_is(&q.f[ENV_F_TOPIC], "a/b/"));
    ASSERT(env_is(&q.f[ENV_F_TOPIC], "a/b"));
    char out[64];
    ASSERT_EQ(env_string(&q.f[ENV_F_PAYLOAD], out), 7);
    ASSERT_STREQ(out, "\xc3\xa9\xf0\x9f\x98\x80\n");
    ASSERT_EQ(q.f[ENV_F_ID].kind, ENV_INT);
    ASSERT_EQ(q.f[ENV_F_ID].i, -7);
    ASSERT_EQ(q.f[ENV_F_SINCE].i, 12);
    ASSERT_EQ(q.f[ENV_F_PRESENCE].kind, ENV_TRUE);
    ASSERT_EQ(q.f[ENV_F_LIMIT].kind, ENV_ABSENT);
    ASSERT_EQ(q.f[ENV_F_ENCODING].kind, ENV_ABSENT);
    /* an escaped "type" is still "publish" */
    ASSERT_EQ(scan("{\"type\":\"p\\u0075blish\"}", &q), 0);
    ASSERT(env_is(&q.f[ENV_F_TYPE], "publish"));
    /* duplicates are refused, known fields or not, at any depth */
    ASSERT_EQ(scan("{\"type\":\"ping\",\"type\":\"publish\"}", &q), -1);
    ASSERT_EQ(scan("{\"z\":[{\"k\":1,\"k\":1}]}", &q), -1);
}

/* Deep nesting, many keys, long texts: -1 or agreement, never a crash. */
TEST(envelope_scan_adversarial)
{
    size_t n = 100000;
    char *s = malloc(n + 16);
    for (int shape = 0; shape < 4; shape++) {
        size_t k = 0;
        if (shape < 2) {
            memcpy(s, "{\"a\":", 5);
            k = 5;
            for (size_t i = 0; i < 5000; i++)
                s[k++] = shape ? '[' : '{', shape ? 0 : (void)(memcpy(s + k, "\"a\":", 4), k += 4);
        } else if (shape == 2) {
            s[k++] = '{';
            for (int i = 0; i < 40; i++)
                k += (size_t)sprintf(s + k, "%s\"k%d\":%d", i ? "," : "", i, i);
            s[k++] = '}';
        } else {
            k = (size_t)sprintf(s, "{\"payload\":\"");
            while (k < n - 2)
                s[k++] = 'x';
            s[k++] = '"';
            s[k++] = '}';
        }
        ASSERT_EQ(env_diff_scan(tu_guarded(s, k), k), 0);
    }
    /* 31 levels are read, 33 are left to jansson */
    env_req q;
    char deep[256] = "{\"x\":";
    for (int i = 0; i < 30; i++)
        strcat(deep, "[");
    for (int i = 0; i < 30; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    ASSERT_EQ(scan(deep, &q), 0);
    ASSERT_EQ(q.f[ENV_F_TYPE].kind, ENV_ABSENT);
    free(s);
}

static void msg_agrees(int kind, const char *topic, const char *sender, const char *payload,
                       size_t plen)
{
    hub_msg m = {.kind = (uint8_t)kind,
                 .seq = 42,
                 .time_ms = 1733300000123,
                 .topic = (char *)topic,
                 .topic_len = strlen(topic),
                 .sender = (char *)sender,
                 .sender_len = strlen(sender),
                 .payload = (char *)payload,
                 .payload_len = plen};
    m.binary = !ax_utf8_valid(payload, plen);
    ASSERT_EQ(env_diff_msg(&m), 0);
}

TEST(envelope_msg_json_is_janssons)
{
    static const char all[] = "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f\x10\x11\x12"
                              "\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f \"\\/\x7f"
                              "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80";
    for (int kind = 0; kind < 4; kind++) {
        msg_agrees(kind, "chat/lobby", "ann", "hello", 5);
        msg_agrees(kind, "a\"b\\c/d", all, all, sizeof all - 1);
        msg_agrees(kind, "t", "", "", 0);
        msg_agrees(kind, "bin", "bob", "\xff\x00\x01", 3);
        msg_agrees(kind, "bin", "bob", "a\x00z", 3);
        msg_agrees(kind, "bad\xff", "bob", "x", 1);
        msg_agrees(kind, "t", "bad\xc3", "x", 1);
    }
    hub_msg m = {.kind = HUB_MSG,
                 .seq = UINT64_MAX,
                 .time_ms = INT64_MIN,
                 .topic = "t",
                 .topic_len = 1,
                 .sender = "s",
                 .sender_len = 1,
                 .payload = "p",
                 .payload_len = 1};
    ASSERT_EQ(env_diff_msg(&m), 0);
    m.seq = 0, m.time_ms = 0;
    ASSERT_EQ(env_diff_msg(&m), 0);
}

/* MQTT 5.0 request properties kept with a message (hub_msg.ext) show as
 * "response_topic" and "correlation_data" (base64 when binary), in both
 * writers; properties that are not readable are left out. */
static void msg_with_props(const char *rt, const char *cd, size_t cdl, const char *want)
{
    ax_mqtt_props pr = {0};
    if (rt) {
        pr.response_topic = (ax_mqtt_str){rt, strlen(rt)};
        ax_mqtt_props_set(&pr, AX_MQTT_PROP_RESPONSE_TOPIC);
    }
    if (cd) {
        pr.correlation_data = (ax_mqtt_str){cd, cdl};
        ax_mqtt_props_set(&pr, AX_MQTT_PROP_CORRELATION_DATA);
    }
    pr.content_type = (ax_mqtt_str){"text/plain", 10};
    ax_mqtt_props_set(&pr, AX_MQTT_PROP_CONTENT_TYPE);
    uint8_t ext[512];
    size_t el = ax_mqtt_props_encode(ext, sizeof ext, AX_MQTT_PUBLISH, &pr);
    ASSERT(el > 0 && el <= sizeof ext);
    hub_msg m = {.kind = HUB_MSG,
                 .seq = 7,
                 .time_ms = 1,
                 .topic = "q",
                 .topic_len = 1,
                 .sender = "s",
                 .sender_len = 1,
                 .payload = "p",
                 .payload_len = 1,
                 .ext = ext,
                 .ext_len = el};
    ASSERT_EQ(env_diff_msg(&m), 0);
    size_t n;
    char *js = serve_msg_json(&m, &n);
    ASSERT(js != NULL);
    const char *tail = strstr(js, "\"payload\":\"p\"");
    ASSERT(tail != NULL);
    ASSERT_STREQ(tail + 13, want);
    free(js);
}

TEST(envelope_msg_json_request_props)
{
    msg_with_props("r/1", "c-42", 4, ",\"response_topic\":\"r/1\",\"correlation_data\":\"c-42\"}");
    msg_with_props("r/\"x\"", NULL, 0, ",\"response_topic\":\"r/\\\"x\\\"\"}");
    msg_with_props(NULL, "\x00\x01\xff", 3, ",\"correlation_data_base64\":\"AAH/\"}");
    msg_with_props(NULL, NULL, 0, "}");  /* a content type only: nothing shown */
    uint8_t junk[] = {0x08, 0x00, 0x09}; /* a topic cut short */
    hub_msg m = {.kind = HUB_MSG,
                 .topic = "q",
                 .topic_len = 1,
                 .sender = "s",
                 .sender_len = 1,
                 .payload = "p",
                 .payload_len = 1,
                 .ext = junk,
                 .ext_len = sizeof junk};
    ASSERT_EQ(env_diff_msg(&m), 0);
}
