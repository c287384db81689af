/* mqtt.c: the MQTT packet codec (see mqtt.h).  Stub: the API builds, the
 * implementation follows. */
#include "proto/mqtt/mqtt.h"

#include <string.h>

int ax_mqtt_parse(const uint8_t *buf, size_t len, unsigned version, size_t max_packet,
                  ax_mqtt_packet *pkt)
{
    memset(pkt, 0, sizeof(*pkt));
    pkt->error = "not implemented";
    return -AX_MQTT_RC_IMPL_SPECIFIC;
}

bool ax_mqtt_prop_next(ax_mqtt_iter *it, ax_mqtt_prop *out)
{
    return false;
}

bool ax_mqtt_user_next(ax_mqtt_iter *it, ax_mqtt_str *key, ax_mqtt_str *value)
{
    return false;
}

bool ax_mqtt_sub_id_next(ax_mqtt_iter *it, uint32_t *id)
{
    return false;
}

bool ax_mqtt_sub_next(ax_mqtt_iter *it, unsigned version, ax_mqtt_sub *out)
{
    return false;
}

bool ax_mqtt_unsub_next(ax_mqtt_iter *it, ax_mqtt_str *filter)
{
    return false;
}

size_t ax_mqtt_props_filter(const ax_mqtt_props *p, uint64_t keep, uint8_t *out, size_t cap)
{
    return 0;
}

size_t ax_mqtt_encode(uint8_t *out, size_t cap, unsigned version, const ax_mqtt_packet *pkt)
{
    return 0;
}

size_t ax_mqtt_encode_ack(uint8_t out[AX_MQTT_ACK_MAX], unsigned version, unsigned type,
                          uint16_t packet_id, uint8_t code)
{
    return 0;
}

size_t ax_mqtt_encode_empty(uint8_t out[2], unsigned type)
{
    return 0;
}

size_t ax_mqtt_encode_publish_head(uint8_t *out, size_t cap, unsigned version,
                                   const ax_mqtt_publish *pub, size_t *id_off)
{
    return 0;
}

size_t ax_mqtt_varint_size(uint32_t v)
{
    return 0;
}

size_t ax_mqtt_varint_write(uint8_t *out, uint32_t v)
{
    return 0;
}

bool ax_mqtt_utf8_valid(const void *s, size_t len)
{
    return false;
}

bool ax_mqtt_topic_valid(const char *s, size_t len)
{
    return false;
}

bool ax_mqtt_filter_valid(const char *s, size_t len, ax_mqtt_str *share, ax_mqtt_str *topic)
{
    return false;
}

bool ax_mqtt_prop_allowed(unsigned type, unsigned id)
{
    return false;
}

uint8_t ax_mqtt_connack_v3_code(uint8_t reason)
{
    return reason;
}

const char *ax_mqtt_type_name(unsigned type)
{
    return "?";
}

const char *ax_mqtt_reason_name(unsigned code)
{
    return "?";
}
