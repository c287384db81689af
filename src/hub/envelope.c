/* envelope.c: the JSON form of a hub message (docs/protocol.md), made with
 * jansson, shared by the WebSocket and SSE gateways and the HTTP API. */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

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
    }
    return o;
}

char *serve_msg_json(const hub_msg *m, size_t *len)
{
    json_t *o = serve_msg_obj(m);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s && len) *len = strlen(s);
    return s;
}
