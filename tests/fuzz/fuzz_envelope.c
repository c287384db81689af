/* fuzz_envelope.c: libFuzzer target for the request scan and the message
 * writer of src/hub/envelope.c, each checked against jansson
 * (envelope_diff.h): the whole input as a request, then the input cut in
 * three (at 0xff bytes) as a message's topic, sender and payload, of the
 * kind data[0] & 3, written by serve_msg_json() and by json_dumps(); then
 * again with the payload also as the message's MQTT 5.0 properties
 * (hub_msg.ext: "response_topic", "correlation_data"). */
#include <assert.h>

#include "envelope_diff.h"
#include "proto/ws/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    int bad = env_diff_scan(data, size);
    if (bad) abort();
    if (size < 1) return 0;
    char *copy = malloc(size);
    memcpy(copy, data + 1, size - 1);
    char *part[3] = {copy, NULL, NULL};
    size_t len[3] = {size - 1, 0, 0};
    for (int k = 1; k < 3; k++) {
        char *cut = memchr(part[k - 1], 0xff, len[k - 1]);
        part[k] = cut ? cut + 1 : part[k - 1] + len[k - 1];
        if (cut) {
            len[k] = len[k - 1] - (size_t)(cut + 1 - part[k - 1]);
            len[k - 1] = (size_t)(cut - part[k - 1]);
            *cut = '\0';
        }
    }
    hub_msg m = {.kind = data[0] & 3,
                 .seq = (uint64_t)size * 0x9e3779b97f4a7c15u,
                 .time_ms = -(int64_t)size,
                 .topic = part[0],
                 .topic_len = len[0],
                 .sender = part[1],
                 .sender_len = len[1],
                 .payload = part[2],
                 .payload_len = len[2]};
    m.binary = !ax_utf8_valid(m.payload, m.payload_len);
    if (env_diff_msg(&m)) abort();
    m.kind = HUB_MSG;
    m.ext = part[2];
    m.ext_len = len[2];
    if (env_diff_msg(&m)) abort();
    free(copy);
    return 0;
}
