/* mqtt_internal.h: what mqtt.c (parser, tables) shares with mqtt_encode.c. */
#ifndef AXON_PROTO_MQTT_INTERNAL_H
#define AXON_PROTO_MQTT_INTERNAL_H

#include "proto/mqtt/mqtt.h"

/* How a property's value is encoded (5.0 section 2.2.2.2). */
enum ax__mqtt_kind {
    AX__MQTT_K_NONE = 0, /* not a property identifier */
    AX__MQTT_K_BYTE,
    AX__MQTT_K_U16,
    AX__MQTT_K_U32,
    AX__MQTT_K_VARINT,
    AX__MQTT_K_UTF8,
    AX__MQTT_K_BINARY,
    AX__MQTT_K_PAIR,
};

#define AX__MQTT_PROP_LAST AX_MQTT_PROP_SHARED_SUB_AVAILABLE

/* enum ax__mqtt_kind of a property identifier (K_NONE for unknown ones). */
unsigned ax__mqtt_prop_kind(unsigned id);

#endif
