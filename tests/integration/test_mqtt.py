#!/usr/bin/python3
"""test_mqtt: `axon serve` as an MQTT 3.1.1 and 5.0 broker, with real
clients: mosquitto_pub/mosquitto_sub (mosquitto-clients) and Paho
(python3-paho-mqtt), plus a raw socket for what those will not send.
CONNECT and CONNACK (versions, client ids, assigned ids, takeover, keep
alive), QoS 0/1/2 both ways (a QoS 2 resend is published once), retained
messages, no-local, retain-as-published, subscription identifiers, topic
aliases, will messages (and 5.0 will delay), persistent sessions with
queued messages, shared subscriptions, message expiry and user
properties passed through."""
import os
import struct
import subprocess
import tempfile
import time

import axtest
import mqttutil
from mqttutil import V311, V5, Client, Raw, v5props
from servutil import Serve

t = axtest.Tests("axon serve: MQTT broker", alarm=150)
TMP = tempfile.mkdtemp(prefix="axon-mqtt-")


def sub_proc(srv, *args):
    return axtest.Proc(["mosquitto_sub", "-p", str(srv.mqtt_port)] + list(args), capture=True)


def pub(srv, *args):
    r = subprocess.run(["mosquitto_pub", "-p", str(srv.mqtt_port)] + list(args),
                       capture_output=True, timeout=10)
    if r.returncode != 0:
        raise axtest.Failure("mosquitto_pub %s: %s" % (args, r.stderr.decode()))


def subscribed(srv, c_topic):
    """Wait until a subscription exists (mosquitto_sub prints nothing on SUBACK)."""
    time.sleep(0.3)


@t.test
def mosquitto_clients_qos_0_1_2():
    srv = Serve("-d", "none")
    for v in ("mqttv311", "mqttv5"):
        s = sub_proc(srv, "-V", v, "-t", "m/#", "-v", "-q", "2", "-C", "3")
        subscribed(srv, "m/#")
        for q in (0, 1, 2):
            pub(srv, "-V", v, "-t", "m/q%d" % q, "-m", "hello %d" % q, "-q", str(q))
        t.eq(s.wait(), 0, "mosquitto_sub exit")
        t.eq(s.output().decode(), "m/q0 hello 0\nm/q1 hello 1\nm/q2 hello 2\n", "%s output" % v)
    mqttutil.stop_clean(t, srv)


@t.test
def binary_payload_unchanged():
    srv = Serve("-d", "none")
    data = bytes(range(256)) * 40 + b"\x00\xff\x00"
    path = os.path.join(TMP, "blob")
    with open(path, "wb") as f:
        f.write(data)
    c = Client(srv.mqtt_port, "bin")
    t.eq(c.connect()[0], 0, "CONNACK")
    t.eq(c.subscribe("b/x", 1), [1], "SUBACK")
    pub(srv, "-t", "b/x", "-f", path, "-q", "1")
    t.eq(c.get().payload, data, "payload")
    c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def connack_codes():
    srv = Serve("-d", "none")
    r = Raw(srv.mqtt_port)  # protocol level 6: CONNACK 0x01 in the 3.1.1 format
    r.send(mqttutil.connect_pkt(level=6))
    t.eq(r.packet(), (2, 0, b"\x00\x01"), "CONNACK for level 6")
    t.ok(r.closed(), "closed after a refused CONNECT")
    r = Raw(srv.mqtt_port)  # 3.1.1: empty client id with clean session 0
    r.send(mqttutil.connect_pkt(cid="", clean=False))
    t.eq(r.packet(), (2, 0, b"\x00\x02"), "CONNACK identifier rejected")
    r = Raw(srv.mqtt_port)  # 3.1: MQIsdp level 3 is accepted
    r.send(mqttutil.connect_pkt(cid="old", level=3))
    t.eq(r.packet(), (2, 0, b"\x00\x00"), "CONNACK for 3.1")
    r.close()
    r = Raw(srv.mqtt_port)  # a packet before CONNECT
    r.send(mqttutil.packet(12, 0, b""))
    t.ok(r.closed(), "PINGREQ before CONNECT closes")
    c = Client(srv.mqtt_port, "", version=V5)  # 5.0: an id is assigned
    rc, present, props = c.connect()
    t.eq(rc, 0, "5.0 CONNACK")
    cid = getattr(props, "AssignedClientIdentifier", "")
    t.ok(cid.startswith("axon-"), "assigned client id %r" % cid)
    t.ok(getattr(props, "TopicAliasMaximum", 0) > 0, "topic alias maximum announced")
    c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def takeover_and_keepalive():
    srv = Serve("-d", "none")
    a = Client(srv.mqtt_port, "same", version=V5)
    t.eq(a.connect()[0], 0, "first")
    b = Client(srv.mqtt_port, "same", version=V5)
    t.eq(b.connect()[0], 0, "second")
    t.eq(a.disconnects.get(timeout=axtest.TIMEOUT), 0x8E, "first gets DISCONNECT 0x8E")
    a.c.loop_stop()
    b.close()
    r = Raw(srv.mqtt_port)  # keep alive 1 s: closed after 1.5 s of silence
    r.send(mqttutil.connect_pkt(cid="sleepy", keepalive=1))
    t.eq(r.packet(), (2, 0, b"\x00\x00"), "CONNACK")
    t0 = time.monotonic()
    t.ok(r.closed(timeout=4), "closed for silence")
    dt = time.monotonic() - t0
    t.ok(1.4 <= dt <= 3.2, "closed after %.2f s (keep alive 1 s x 1.5)" % dt)
    r = Raw(srv.mqtt_port)  # pings keep it open
    r.send(mqttutil.connect_pkt(cid="pinger", keepalive=1))
    r.packet()
    for _ in range(4):
        time.sleep(0.6)
        r.send(mqttutil.packet(12, 0, b""))
        t.eq(r.packet(), (13, 0, b""), "PINGRESP")
    r.close()
    mqttutil.stop_clean(t, srv)


@t.test
def qos2_resend_published_once():
    srv = Serve("-d", "none")
    c = Client(srv.mqtt_port, "watch")
    c.connect()
    c.subscribe("q2/#", 2)
    r = Raw(srv.mqtt_port)
    r.send(mqttutil.connect_pkt(cid="q2pub"))
    r.packet()
    r.send(mqttutil.publish_pkt("q2/a", b"once", qos=2, pid=7))
    t.eq(r.packet(), (5, 0, struct.pack(">H", 7)), "PUBREC")
    r.send(mqttutil.publish_pkt("q2/a", b"once", qos=2, pid=7, dup=True))  # the resend
    t.eq(r.packet(), (5, 0, struct.pack(">H", 7)), "PUBREC again")
    r.send(mqttutil.packet(6, 2, struct.pack(">H", 7)))
    t.eq(r.packet(), (7, 0, struct.pack(">H", 7)), "PUBCOMP")
    t.eq(c.get().payload, b"once", "delivered")
    t.ok(c.none(), "and only once")
    r.send(mqttutil.publish_pkt("q2/a", b"twice", qos=2, pid=7))  # the id is free again
    t.eq(r.packet(), (5, 0, struct.pack(">H", 7)), "PUBREC for a new message")
    t.eq(c.get().payload, b"twice", "a new message with the released id")
    r.close()
    c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def qos_downgrade_and_outbound_flows():
    srv = Serve("-d", "none")
    r = Raw(srv.mqtt_port)  # a raw subscriber sees the packet ids and flags
    r.send(mqttutil.connect_pkt(cid="rawsub"))
    r.packet()
    body = struct.pack(">H", 1) + mqttutil.mstr("d/1") + b"\x01" + mqttutil.mstr("d/2") + b"\x02"
    r.send(mqttutil.packet(8, 2, body))
    t.eq(r.packet(), (9, 0, struct.pack(">H", 1) + b"\x01\x02"), "SUBACK")
    p = Client(srv.mqtt_port, "pub")
    p.connect()
    p.publish("d/1", b"two->one", qos=2)
    kind, flags, body = r.packet()
    t.eq((kind, flags >> 1 & 3), (3, 1), "QoS 2 publish delivered at the subscription's QoS 1")
    pid = body[5:7]
    t.eq(body[7:], b"two->one", "payload")
    r.send(mqttutil.packet(4, 0, pid))
    p.publish("d/2", b"q2", qos=2)
    kind, flags, body = r.packet()
    t.eq((kind, flags >> 1 & 3), (3, 2), "QoS 2 delivery")
    pid = body[5:7]
    r.send(mqttutil.packet(5, 0, pid))
    t.eq(r.packet(), (6, 2, pid), "PUBREL after PUBREC")
    r.send(mqttutil.packet(7, 0, pid))
    p.publish("d/2", b"q0", qos=0)
    kind, flags, body = r.packet()
    t.eq((kind, flags >> 1 & 3, body[5:]), (3, 0, b"q0"), "QoS 0 stays QoS 0")
    r.close()
    p.close()
    mqttutil.stop_clean(t, srv)


@t.test
def retained_messages():
    srv = Serve("-d", "none")
    pub(srv, "-t", "r/a", "-m", "first", "-r", "-q", "1")
    pub(srv, "-t", "r/a", "-m", "second", "-r", "-q", "1")  # replaces
    pub(srv, "-t", "r/b", "-m", "bee", "-r")
    c = Client(srv.mqtt_port, "ret")
    c.connect()
    c.subscribe("r/#", 1)
    got = sorted((m.topic, m.payload, m.retain) for m in (c.get(), c.get()))
    t.eq(got, [("r/a", b"second", True), ("r/b", b"bee", True)], "retained on subscribe")
    pub(srv, "-t", "r/a", "-m", "live", "-r")
    m = c.get()
    t.eq((m.payload, m.retain), (b"live", False), "live delivery has retain 0 (3.1.1 3.3.1.3)")
    pub(srv, "-t", "r/a", "-n", "-r")  # an empty retained message clears it
    t.eq(c.get().payload, b"", "the empty message is delivered")
    d = Client(srv.mqtt_port, "ret2")
    d.connect()
    d.subscribe("r/#", 0)
    m = d.get()
    t.eq((m.topic, m.payload), ("r/b", b"bee"), "only r/b is still retained")
    t.ok(d.none(), "r/a was cleared")
    # 5.0: retain handling 2 (none), retain as published
    e = Client(srv.mqtt_port, "ret5", version=V5)
    e.connect()
    e.subscribe("r/#", 1, retainHandling=2, retainAsPublished=True)
    t.ok(e.none(), "retain handling 2: nothing on subscribe")
    pub(srv, "-t", "r/b", "-m", "again", "-r")
    m = e.get()
    t.eq((m.payload, m.retain), (b"again", True), "retain as published")
    for x in (c, d, e):
        x.close()
    mqttutil.stop_clean(t, srv)


@t.test
def v5_options_no_local_sub_id_alias_props():
    srv = Serve("-d", "none")
    c = Client(srv.mqtt_port, "five", version=V5)
    c.connect()
    c.subscribe("n/#", 1, noLocal=True)
    c.subscribe("s/#", 1, props=v5props("SUBSCRIBE", SubscriptionIdentifier=42))
    c.publish("n/x", b"mine", qos=1)
    t.ok(c.none(), "no local: own message not delivered")
    o = Client(srv.mqtt_port, "other", version=V5)
    o.connect()
    props = v5props("PUBLISH", UserProperty=[("k", "v"), ("k2", "v2")],
                    ResponseTopic="s/reply", CorrelationData=b"\x01\x02",
                    ContentType="text/plain", MessageExpiryInterval=60)
    o.publish("n/x", b"theirs", qos=1)
    t.eq(c.get().payload, b"theirs", "others' messages are delivered")
    o.publish("s/y", b"props", qos=1, props=props)
    m = c.get()
    p = m.properties
    t.eq(getattr(p, "SubscriptionIdentifier", None), [42], "subscription identifier")
    t.eq(p.UserProperty, [("k", "v"), ("k2", "v2")], "user properties")
    t.eq((p.ResponseTopic, p.CorrelationData, p.ContentType),
         ("s/reply", b"\x01\x02", "text/plain"), "request/response properties")
    t.ok(0 < p.MessageExpiryInterval <= 60, "message expiry passed on")
    r = Raw(srv.mqtt_port)  # a topic alias set, then used with an empty topic
    alias = b"\x23\x00\x05"
    r.send(mqttutil.connect_pkt(cid="alias", level=5))
    r.packet()
    r.send(mqttutil.packet(3, 0, mqttutil.mstr("s/al") + bytes([len(alias)]) + alias + b"one"))
    r.send(mqttutil.packet(3, 0, mqttutil.mstr("") + bytes([len(alias)]) + alias + b"two"))
    t.eq([c.get().payload, c.get().payload], [b"one", b"two"], "topic alias")
    bad = b"\x23\x01\x00"  # above the maximum announced
    r.send(mqttutil.packet(3, 0, mqttutil.mstr("s/al") + bytes([len(bad)]) + bad + b"x"))
    kind, flags, body = r.packet()
    t.eq((kind, body[:1]), (14, b"\x94"), "DISCONNECT 0x94 for a bad alias")
    r.close()
    o.close()
    c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def subscriptions_in_and_out_of_the_sessions_room():
    """A plain subscription with a short filter is kept in its session's
    own allocation (mq_stail, one per session), the others each in one of
    their own: the room taken, freed by UNSUBSCRIBE and by a replacing
    SUBSCRIBE (with or without an identifier), and taken again."""
    srv = Serve("-d", "none")
    c = Client(srv.mqtt_port, "room", version=V5)
    c.connect()
    o = Client(srv.mqtt_port, "room-pub", version=V5)
    o.connect()

    def got(*topics):
        """Each of `topics` published once: what arrives, (topic, QoS,
        subscription identifiers), then nothing more."""
        for tp in topics:
            o.publish(tp, tp.encode(), qos=1)
        r = []
        for _ in topics:
            m = c.get()
            r.append((m.topic, m.qos, getattr(m.properties, "SubscriptionIdentifier", None)))
        t.ok(c.none(0.2), "nothing more")
        return sorted(r)

    t.eq(c.subscribe("a-rather-long/filter/#", 1), [1], "a long filter (its own chunk)")
    t.eq(c.subscribe("a/1", 0), [0], "a short one (the room)")
    t.eq(c.subscribe("b/2", 1), [1], "another (the room is taken)")
    t.eq(got("a/1", "b/2", "a-rather-long/filter/x"),
         [("a-rather-long/filter/x", 1, None), ("a/1", 0, None), ("b/2", 1, None)], "all three")
    t.eq(c.unsubscribe("a/1"), [0], "UNSUBSCRIBE the one in the room")
    t.eq(got("b/2", "a-rather-long/filter/y"), [("a-rather-long/filter/y", 1, None), ("b/2", 1, None)],
         "the others still")
    o.publish("a/1", b"gone", qos=1)
    t.ok(c.none(), "a/1 no more")
    t.eq(c.subscribe("c/3", 0), [0], "the room again")
    t.eq(c.subscribe("c/3", 1), [1], "replaced with QoS 1, in the room")
    t.eq(got("c/3"), [("c/3", 1, None)], "its new options")
    t.eq(c.subscribe("c/3", 1, props=v5props("SUBSCRIBE", SubscriptionIdentifier=9)), [1],
         "replaced with an identifier (out of the room)")
    t.eq(c.subscribe("d/4", 1), [1], "the room for another")
    t.eq(got("c/3", "d/4"), [("c/3", 1, [9]), ("d/4", 1, None)], "identifier kept, d/4 in")
    t.eq(c.subscribe("c/3", 0), [0], "replaced without an identifier (the room is d/4's)")
    t.eq(got("c/3", "d/4"), [("c/3", 0, None), ("d/4", 1, None)], "both")
    for f in ("d/4", "b/2", "c/3", "a-rather-long/filter/#"):
        t.eq(c.unsubscribe(f), [0], "UNSUBSCRIBE %s" % f)
    for tp in ("b/2", "c/3", "d/4", "a-rather-long/filter/z"):
        o.publish(tp, b"none", qos=1)
    t.ok(c.none(), "none left")
    t.eq(c.unsubscribe("d/4"), [0x11], "no subscription existed")
    o.close()
    c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def maximum_packet_size():
    srv = Serve("-d", "none")
    c = Client(srv.mqtt_port, "small", version=V5,
               props=v5props("CONNECT", MaximumPacketSize=200))
    _, _, props = c.connect()
    t.ok(props.MaximumPacketSize > 1000000, "the broker's maximum announced")
    c.subscribe("mp/#", 1)
    p = Client(srv.mqtt_port, "big")
    p.connect()
    p.publish("mp/a", b"x" * 500, qos=1)
    p.publish("mp/b", b"fits", qos=1)
    t.eq(c.get().payload, b"fits", "the larger message is not sent to a client that said no")
    t.ok(c.none(), "and it does not hold the window")
    for x in (c, p):
        x.close()
    mqttutil.stop_clean(t, srv)


@t.test
def message_expiry():
    srv = Serve("-d", "none")
    c = Client(srv.mqtt_port, "exp", version=V5, clean=False,
               props=v5props("CONNECT", SessionExpiryInterval=60))
    c.connect()
    c.subscribe("e/#", 1)
    c.close()
    p = Client(srv.mqtt_port, "exppub", version=V5)
    p.connect()
    p.publish("e/short", b"gone", qos=1, props=v5props("PUBLISH", MessageExpiryInterval=1))
    p.publish("e/long", b"kept", qos=1, props=v5props("PUBLISH", MessageExpiryInterval=100))
    time.sleep(1.5)
    c = Client(srv.mqtt_port, "exp", version=V5, clean=False,
               props=v5props("CONNECT", SessionExpiryInterval=60))
    rc, present, _ = c.connect()
    t.eq(present, 1, "session present")
    m = c.get()
    t.eq(m.payload, b"kept", "the expired message is not delivered")
    t.ok(m.properties.MessageExpiryInterval < 100, "expiry counts down")
    c.close()
    p.close()
    mqttutil.stop_clean(t, srv)


@t.test
def persistent_session_queues():
    srv = Serve("-d", "none")
    for version in (V311, V5):
        props = v5props("CONNECT", SessionExpiryInterval=300) if version == V5 else None
        c = Client(srv.mqtt_port, "durable%d" % version, version=version, clean=False,
                   props=props)
        t.eq(c.connect()[1], 0, "no session at first")
        c.subscribe("p/#", 1)
        c.close()
        p = Client(srv.mqtt_port, "feeder")
        p.connect()
        for i in range(5):
            p.publish("p/x", b"m%d" % i, qos=1)
        p.publish("p/x", b"zero", qos=0)  # QoS 0 is not kept for an absent client
        p.close()
        c = Client(srv.mqtt_port, "durable%d" % version, version=version, clean=False,
                   props=props)
        t.eq(c.connect()[1], 1, "session present")
        t.eq([c.get().payload for _ in range(5)], [b"m%d" % i for i in range(5)],
             "queued messages in order")
        t.ok(c.none(), "nothing more")
        c.close()
        c = Client(srv.mqtt_port, "durable%d" % version, version=version, clean=True)
        t.eq(c.connect()[1], 0, "clean start ends the session")
        c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def wills():
    srv = Serve("-d", "none")
    w = Client(srv.mqtt_port, "watcher")
    w.connect()
    w.subscribe("will/#", 1)
    a = Client(srv.mqtt_port, "dies", will=("will/a", b"gone", 1))
    a.connect()
    a.drop()
    m = w.get()
    t.eq((m.topic, m.payload), ("will/a", b"gone"), "will on a dropped connection")
    b = Client(srv.mqtt_port, "leaves", will=("will/b", b"never", 1))
    b.connect()
    b.close()
    t.ok(w.none(0.5), "no will after DISCONNECT")
    # 5.0 will delay: sent after the delay, not at all if the client returns
    props = v5props("WILLMESSAGE", WillDelayInterval=1)
    cprops = v5props("CONNECT", SessionExpiryInterval=60)
    d = Client(srv.mqtt_port, "delayed", version=V5, will=("will/d", b"late", 1, False, props),
               clean=False, props=cprops)
    d.connect()
    d.drop()
    t.ok(w.none(0.6), "not before the delay")
    m = w.get(3)
    t.eq(m.payload, b"late", "after the delay")
    d = Client(srv.mqtt_port, "back", version=V5, will=("will/e", b"no", 1, False, props),
               clean=False, props=cprops)
    d.connect()
    d.drop()
    d = Client(srv.mqtt_port, "back", version=V5, clean=False, props=cprops)
    d.connect()
    t.ok(w.none(1.8), "a client back before the delay: no will")
    d.close()
    w.close()
    mqttutil.stop_clean(t, srv)


@t.test
def shared_subscriptions():
    srv = Serve("-d", "none")
    members = []
    for i in range(3):
        c = Client(srv.mqtt_port, "worker%d" % i, version=V5)
        c.connect()
        t.eq(c.subscribe("$share/pool/jobs/#", 1), [1], "SUBACK")
        members.append(c)
    p = Client(srv.mqtt_port, "boss")
    p.connect()
    for i in range(30):
        p.publish("jobs/%d" % i, b"%d" % i, qos=1)
    got = []
    counts = []
    for c in members:
        n = 0
        while True:
            try:
                got.append(int(c.msgs.get(timeout=0.5).payload))
                n += 1
            except Exception:
                break
        counts.append(n)
    t.eq(sorted(got), list(range(30)), "each job to exactly one member")
    t.ok(all(n >= 5 for n in counts), "spread over the members: %r" % counts)
    for c in members + [p]:
        c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def server_keep_alive_and_response_information():
    conf = os.path.join(TMP, "ka.conf")
    with open(conf, "w") as f:
        f.write("mqtt_max_keepalive 20\nmqtt_response_prefix rsp\n")
    srv = Serve("-d", "none", "-c", conf)
    a = Client(srv.mqtt_port, "asker", version=V5, keepalive=60,
               props=v5props("CONNECT", RequestResponseInformation=1))
    rc, _, props = a.connect()
    t.eq(rc, 0, "5.0 client asking a longer keep alive is accepted")
    t.eq(getattr(props, "ServerKeepAlive", None), 20, "Server Keep Alive: mqtt_max_keepalive")
    t.eq(getattr(props, "ResponseInformation", None), "rsp/asker",
         "Response Information: the prefix and the client id")
    a.subscribe("rsp/asker/#", 1)
    b = Client(srv.mqtt_port, "server", version=V5)
    b.connect()
    b.publish("rsp/asker/1", b"answer", qos=1)
    t.eq(a.get().payload, b"answer", "a response reaches the asker under its prefix")
    b.close()
    a.close()
    plain = Client(srv.mqtt_port, "quiet", version=V5, keepalive=10)
    rc, _, props = plain.connect()
    t.eq((rc, getattr(props, "ServerKeepAlive", None), getattr(props, "ResponseInformation", None)),
         (0, None, None), "neither is sent when not needed or not asked")
    plain.close()
    r = Raw(srv.mqtt_port)  # 3.1.1 cannot be told: identifier rejected
    r.send(mqttutil.connect_pkt(cid="old", keepalive=60))
    t.eq(r.packet(), (2, 0, b"\x00\x02"), "3.1.1 keep alive above the maximum: CONNACK 2")
    t.ok(r.closed(), "and closed")
    r = Raw(srv.mqtt_port)  # keep alive 0 (none) is above any maximum
    r.send(mqttutil.connect_pkt(cid="zero", level=5, keepalive=0))
    kind, _, body = r.packet()
    t.eq((kind, body[:2]), (2, b"\x00\x00"), "5.0 keep alive 0: accepted")
    t.ok(b"\x13\x00\x14" in body, "with Server Keep Alive 20")
    r.close()
    mqttutil.stop_clean(t, srv)


@t.test
def enhanced_auth_refusals():
    """SCRAM-SHA-512 itself runs in test_mqtt_node (Node's mqtt); here what
    a broker must answer to the wrong tries, byte for byte."""
    def auth_props(method, data):
        return (b"\x15" + mqttutil.mstr(method) + b"\x16" + struct.pack(">H", len(data)) + data)

    def connack_code(srv, props):
        r = Raw(srv.mqtt_port)
        r.send(mqttutil.connect_pkt(cid="ea", level=5, props=props))
        kind, _, body = r.packet()
        r.close()
        return kind, body[1]

    srv = Serve("-d", "none")
    t.eq(connack_code(srv, auth_props("SCRAM-SHA-512", b"n,,n=a,r=x")), (2, 0x8C),
         "no password file: 0x8C bad authentication method")
    mqttutil.stop_clean(t, srv)
    pw = os.path.join(TMP, "ea-passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "ann", "pw"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = Serve("-d", "none", "--password-file", pw)
    t.eq(connack_code(srv, auth_props("SCRAM-SHA-1", b"n,,n=ann,r=x")), (2, 0x8C),
         "another method: 0x8C")
    t.eq(connack_code(srv, auth_props("SCRAM-SHA-512", b"p=tls-unique,,n=ann,r=x")), (2, 0x87),
         "channel binding asked: 0x87 not authorized")
    r = Raw(srv.mqtt_port)  # the server-first message comes in AUTH 0x18
    r.send(mqttutil.connect_pkt(cid="ea", level=5,
                                props=auth_props("SCRAM-SHA-512", b"n,,n=ann,r=abc")))
    kind, _, body = r.packet()
    t.eq((kind, body[0]), (15, 0x18), "AUTH continue")
    t.ok(b"r=abc" in body and b",s=" in body and b",i=101" in body, "server-first: %r" % body)
    r.send(mqttutil.packet(15, 0, b"\x18" + bytes([len(auth_props("SCRAM-SHA-512", b"c=biws,r=abc,p=AAAA"))])
                           + auth_props("SCRAM-SHA-512", b"c=biws,r=abc,p=AAAA")))
    kind, _, body = r.packet()
    t.eq((kind, body[1]), (2, 0x86), "a wrong final message: CONNACK 0x86")
    t.ok(r.closed(), "and closed")
    r = Raw(srv.mqtt_port)  # AUTH without CONNECT
    r.send(mqttutil.packet(15, 0, b"\x18\x00"))
    t.ok(r.closed(), "AUTH before CONNECT: closed")
    mqttutil.stop_clean(t, srv)


t.main()
