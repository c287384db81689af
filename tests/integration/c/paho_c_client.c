/* paho_c_client.c PORT VERSION(4|5): the Eclipse Paho C client
 * (libpaho-mqtt-dev, synchronous MQTTClient API) against axon serve's
 * broker: subscribe at QoS 2, publish at QoS 0, 1 and 2 (a binary payload
 * at QoS 1), receive each once with its payload unchanged, and get a
 * retained message on a second subscription.  Prints one TAP-ish line per
 * check; exits 0 when all pass.  Built by test_mqtt_paho_c.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <MQTTClient.h>

static int failed;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "not ok", what);
    if (!ok) failed++;
}

static int pub(MQTTClient c, const char *topic, const void *p, int len, int qos, int retain, int v5)
{
    MQTTClient_message m = MQTTClient_message_initializer;
    MQTTClient_deliveryToken tok;
    m.payload = (void *)p;
    m.payloadlen = len;
    m.qos = qos;
    m.retained = retain;
    int rc;
    if (v5) {
        MQTTResponse r = MQTTClient_publishMessage5(c, topic, &m, &tok);
        rc = r.reasonCode;
        MQTTResponse_free(r);
    } else {
        rc = MQTTClient_publishMessage(c, topic, &m, &tok);
    }
    if (rc == MQTTCLIENT_SUCCESS && qos) rc = MQTTClient_waitForCompletion(c, tok, 5000);
    return rc;
}

/* The next message: its topic and payload in the buffers; 0 or -1. */
static int recv1(MQTTClient c, char *topic, size_t tcap, char *buf, int *len, int *qos)
{
    char *t = NULL;
    int tl = 0;
    MQTTClient_message *m = NULL;
    if (MQTTClient_receive(c, &t, &tl, &m, 5000) != MQTTCLIENT_SUCCESS || !m) return -1;
    snprintf(topic, tcap, "%s", t);
    *len = m->payloadlen;
    memcpy(buf, m->payload, (size_t)m->payloadlen);
    *qos = m->qos;
    MQTTClient_freeMessage(&m);
    MQTTClient_free(t);
    return 0;
}

static int connect_to(MQTTClient *c, const char *uri, const char *id, int v5)
{
    MQTTClient_createOptions co = MQTTClient_createOptions_initializer;
    co.MQTTVersion = v5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    if (MQTTClient_createWithOptions(c, uri, id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co) !=
        MQTTCLIENT_SUCCESS)
        return -1;
    if (v5) {
        MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer5;
        o.cleanstart = 1;
        MQTTResponse r = MQTTClient_connect5(*c, &o, NULL, NULL);
        int rc = r.reasonCode;
        MQTTResponse_free(r);
        return rc;
    }
    MQTTClient_connectOptions o = MQTTClient_connectOptions_initializer;
    o.cleansession = 1;
    return MQTTClient_connect(*c, &o);
}

static int sub(MQTTClient c, const char *f, int qos, int v5)
{
    if (!v5) return MQTTClient_subscribe(c, f, qos);
    MQTTResponse r = MQTTClient_subscribe5(c, f, qos, NULL, NULL);
    int rc = r.reasonCode == qos ? 0 : -1;
    MQTTResponse_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) return 2;
    char uri[64];
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%s", argv[1]);
    int v5 = atoi(argv[2]) == 5;
    MQTTClient s, p;
    check(connect_to(&s, uri, v5 ? "paho-c-sub5" : "paho-c-sub", v5) == 0, "subscriber connects");
    check(connect_to(&p, uri, v5 ? "paho-c-pub5" : "paho-c-pub", v5) == 0, "publisher connects");
    check(sub(s, "c/#", 2, v5) == 0, "subscribe c/# at QoS 2");
    const unsigned char bin[] = {0, 1, 2, 0xfe, 0xff, 0};
    check(pub(p, "c/q0", "zero", 4, 0, 0, v5) == 0, "publish QoS 0");
    check(pub(p, "c/q1", bin, (int)sizeof bin, 1, 0, v5) == 0, "publish QoS 1 (binary)");
    check(pub(p, "c/q2", "two", 3, 2, 0, v5) == 0, "publish QoS 2");
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        char topic[64], buf[64];
        int len = 0, qos = -1;
        if (recv1(s, topic, sizeof topic, buf, &len, &qos) != 0) break;
        if (!strcmp(topic, "c/q0") && len == 4 && !memcmp(buf, "zero", 4) && qos == 0) seen |= 1;
        if (!strcmp(topic, "c/q1") && len == (int)sizeof bin && !memcmp(buf, bin, sizeof bin) &&
            qos == 1)
            seen |= 2;
        if (!strcmp(topic, "c/q2") && len == 3 && !memcmp(buf, "two", 3) && qos == 2) seen |= 4;
    }
    check(seen == 7, "QoS 0, 1 and 2 received with payloads unchanged");
    check(pub(p, "r/c", "kept", 4, 1, 1, v5) == 0, "publish retained");
    check(sub(s, "r/#", 1, v5) == 0, "subscribe r/#");
    {
        char topic[64], buf[64];
        int len = 0, qos = -1;
        int rc = recv1(s, topic, sizeof topic, buf, &len, &qos);
        check(rc == 0 && !strcmp(topic, "r/c") && len == 4 && !memcmp(buf, "kept", 4),
              "the retained message on subscribe");
    }
    MQTTClient_disconnect(s, 1000);
    MQTTClient_disconnect(p, 1000);
    MQTTClient_destroy(&s);
    MQTTClient_destroy(&p);
    return failed ? 1 : 0;
}
