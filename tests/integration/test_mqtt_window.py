#!/usr/bin/python3
"""test_mqtt_window: the MQTT broker's in-flight windows, with raw
packets where a client has to hold its acknowledgements back (and Paho
as the other side): the client's 5.0 Receive Maximum bounds the QoS 1/2
PUBLISHes out to it, the rest leave in order as acknowledgements come
in; a persistent session that reconnects gets its unacknowledged
messages again with DUP and the same packet ids (PUBREL for those
PUBREC'd) before anything new; and the broker's own Receive Maximum,
announced in CONNACK, is enforced with DISCONNECT 0x93."""
import socket
import struct
import time

import axtest
import mqttutil
from mqttutil import V5, Client, Raw
from servutil import Serve

t = axtest.Tests("axon serve: MQTT in-flight windows", alarm=120)

H = lambda n: struct.pack(">H", n)  # noqa: E731


def connect5(port, cid, recv_max=None, expiry=None, clean=True):
    props = b""
    if recv_max is not None:
        props += b"\x21" + H(recv_max)
    if expiry is not None:
        props += b"\x11" + struct.pack(">I", expiry)
    r = Raw(port)
    r.send(mqttutil.connect_pkt(cid=cid, level=5, clean=clean, props=props))
    kind, flags, body = r.packet()
    if kind != 2 or body[1] != 0:
        raise axtest.Failure("CONNACK %r" % ((kind, flags, body),))
    return r, body[0] & 1


def subscribe5(r, pid, topic_filter, qos):
    r.send(mqttutil.packet(8, 2, H(pid) + b"\x00" + mqttutil.mstr(topic_filter) + bytes([qos])))
    kind, _, body = r.packet()
    if kind != 9 or body[-1] != qos:
        raise axtest.Failure("SUBACK %r" % body)


def publish_of(p):
    """(topic, qos, dup, pid, payload) of a 5.0 PUBLISH from the broker."""
    kind, flags, body = p
    if kind != 3:
        raise axtest.Failure("expected a PUBLISH, got type %d" % kind)
    qos, dup = flags >> 1 & 3, bool(flags & 8)
    tl = struct.unpack(">H", body[:2])[0]
    i = 2 + tl
    pid = 0
    if qos:
        pid = struct.unpack(">H", body[i:i + 2])[0]
        i += 2
    n, mul = 0, 1  # properties length
    while True:
        b = body[i]
        i += 1
        n += (b & 0x7F) * mul
        mul *= 128
        if not b & 0x80:
            break
    return body[2:2 + tl].decode(), qos, dup, pid, body[i + n:]


def quiet(r, wait=0.5):
    """True when nothing arrives within `wait` seconds."""
    try:
        p = r.packet(wait)
    except (socket.timeout, TimeoutError):
        return True
    raise axtest.Failure("unexpected packet %r" % (p,))


@t.test
def receive_maximum_bounds_outbound():
    srv = Serve("-d", "none")
    r, _ = connect5(srv.mqtt_port, "win", recv_max=2)
    subscribe5(r, 1, "w/#", 1)
    p = Client(srv.mqtt_port, "wpub", version=V5)
    p.connect()
    for i in range(6):
        p.publish("w/%d" % i, b"%d" % i, qos=1)
    got = [publish_of(r.packet()) for _ in range(2)]
    t.eq([(m[4], m[1], m[2]) for m in got], [(b"0", 1, False), (b"1", 1, False)],
         "the first two, QoS 1")
    t.ok(got[0][3] != got[1][3], "distinct packet ids")
    t.ok(quiet(r), "no third PUBLISH while two are unacknowledged (Receive Maximum 2)")
    order = []
    for k in range(6):  # each PUBACK lets exactly one more out, in order
        r.send(mqttutil.packet(4, 0, H(got[k][3])))
        if k + 2 < 6:
            got.append(publish_of(r.packet()))
            order.append(got[-1][4])
            t.ok(quiet(r, 0.2), "only one more after PUBACK %d" % (k + 1))
    t.eq(order, [b"2", b"3", b"4", b"5"], "the queued ones leave in order")
    t.ok(quiet(r), "nothing more")
    # QoS 2 with Receive Maximum 1: the slot is free at PUBCOMP, not PUBREC
    r2, _ = connect5(srv.mqtt_port, "win2", recv_max=1)
    subscribe5(r2, 1, "w2/#", 2)
    for i in range(2):
        p.publish("w2/%d" % i, b"q%d" % i, qos=2)
    a = publish_of(r2.packet())
    t.eq((a[4], a[1]), (b"q0", 2), "the first QoS 2 message")
    t.ok(quiet(r2), "the second waits")
    r2.send(mqttutil.packet(5, 0, H(a[3])))
    t.eq(r2.packet()[:2], (6, 2), "PUBREL")
    t.ok(quiet(r2), "still waits after PUBREC")
    r2.send(mqttutil.packet(7, 0, H(a[3])))
    b = publish_of(r2.packet())
    t.eq((b[4], b[1]), (b"q1", 2), "the second after PUBCOMP")
    for x in (r, r2):
        x.close()
    p.close()
    mqttutil.stop_clean(t, srv)


@t.test
def retries_on_reconnect():
    srv = Serve("-d", "none")
    r, present = connect5(srv.mqtt_port, "again", expiry=300, clean=True)
    subscribe5(r, 1, "r/#", 2)
    p = Client(srv.mqtt_port, "rpub", version=V5)
    p.connect()
    p.publish("r/1", b"one", qos=1)
    p.publish("r/2", b"two", qos=1)
    p.publish("r/3", b"three", qos=2)
    m1, m2, m3 = (publish_of(r.packet()) for _ in range(3))
    t.eq([(m[4], m[1], m[2]) for m in (m1, m2, m3)],
         [(b"one", 1, False), (b"two", 1, False), (b"three", 2, False)], "first delivery")
    r.send(mqttutil.packet(5, 0, H(m3[3])))  # PUBREC for the QoS 2 one, no PUBCOMP
    t.eq(r.packet(), (6, 2, H(m3[3])), "PUBREL")
    r.close()  # no PUBACKs, no DISCONNECT
    time.sleep(0.3)
    p.publish("r/4", b"four", qos=1)  # while it is away
    r, present = connect5(srv.mqtt_port, "again", expiry=300, clean=False)
    t.eq(present, 1, "session present")
    a, b = publish_of(r.packet()), publish_of(r.packet())
    t.eq([(x[4], x[3], x[2]) for x in (a, b)],
         [(b"one", m1[3], True), (b"two", m2[3], True)],
         "unacknowledged QoS 1 sent again with DUP and the same packet ids")
    t.eq(r.packet(), (6, 2, H(m3[3])), "PUBREL again for the PUBREC'd one")
    c = publish_of(r.packet())
    t.eq((c[4], c[2]), (b"four", False), "then the new one, without DUP")
    t.ok(c[3] not in (m1[3], m2[3], m3[3]), "with a new packet id")
    for x in (a, b, c):
        r.send(mqttutil.packet(4, 0, H(x[3])))
    r.send(mqttutil.packet(7, 0, H(m3[3])))
    time.sleep(0.2)
    r.close()
    r, present = connect5(srv.mqtt_port, "again", expiry=300, clean=False)
    t.eq(present, 1, "session present")
    t.ok(quiet(r), "all acknowledged: nothing sent again")
    r.close()
    p.close()
    mqttutil.stop_clean(t, srv)


@t.test
def receive_maximum_enforced_inbound():
    srv = Serve("-d", "none")
    w = Client(srv.mqtt_port, "watch", version=V5)
    _, _, props = w.connect()
    n = getattr(props, "ReceiveMaximum", None)
    t.ok(n is not None and 0 < n < 65535, "Receive Maximum announced in CONNACK: %r" % n)
    w.subscribe("in/#", 2)
    # QoS 2 beyond the window
    r, _ = connect5(srv.mqtt_port, "flood")
    r.send(b"".join(mqttutil.publish_pkt("in/a", b"x", qos=2, pid=i, level=5)
                    for i in range(1, n + 1)))
    acks = [r.packet() for _ in range(n)]
    t.ok(all(a[0] == 5 for a in acks), "%d PUBRECs" % n)
    r.send(mqttutil.publish_pkt("in/over", b"over", qos=2, pid=n + 1, level=5))
    kind, _, body = r.packet()
    t.eq((kind, body[:1]), (14, b"\x93"), "DISCONNECT 0x93 (Receive Maximum exceeded)")
    t.ok(r.closed(), "closed")
    # a released id frees its place; QoS 1 counts too
    r, _ = connect5(srv.mqtt_port, "flood1")
    r.send(b"".join(mqttutil.publish_pkt("in/b", b"y", qos=2, pid=i, level=5)
                    for i in range(1, n + 1)))
    for _ in range(n):
        r.packet()
    r.send(mqttutil.packet(6, 2, H(1)))
    t.eq(r.packet()[:2], (7, 0), "PUBCOMP")
    r.send(mqttutil.publish_pkt("in/q1", b"fits", qos=1, pid=5000, level=5))
    t.eq(r.packet()[:2], (4, 0), "a QoS 1 PUBLISH fits in the freed place")
    r.send(mqttutil.publish_pkt("in/c", b"z", qos=2, pid=5001, level=5))
    t.eq(r.packet()[:2], (5, 0), "PUBREC: the window is full again")
    r.send(mqttutil.publish_pkt("in/over", b"over", qos=1, pid=5002, level=5))
    kind, _, body = r.packet()
    t.eq((kind, body[:1]), (14, b"\x93"), "QoS 1 beyond it: DISCONNECT 0x93")
    t.ok(r.closed(), "closed")
    got = set()
    while True:
        try:
            got.add(w.msgs.get(timeout=0.5).topic)
        except Exception:
            break
    t.ok("in/over" not in got and "in/q1" in got, "what exceeded it was not published")
    w.close()
    mqttutil.stop_clean(t, srv)


t.main()
