#!/usr/bin/python3
"""test_serve_redis_mqtt: MQTT across `axon serve` nodes sharing a real
redis-server (issue 17, docs/cluster.md "MQTT"), with Paho.

- Retained messages: retained on node a, a subscriber on node b (already
  running) gets it with the retain flag; a node started afterwards has it
  too (read from Redis); an empty retained message on one node clears it
  on every node.
- MQTT's own fields cross nodes: QoS, retain 0 on live delivery, MQTT 5
  properties (user properties, content type, message expiry)."""
import random
import shutil
import signal
import socket
import time

import axtest
import mqttutil
import servutil
from mqttutil import V5, Client, v5props

t = axtest.Tests("axon serve: MQTT across nodes through Redis", alarm=60)

if not shutil.which("redis-server"):
    raise SystemExit("not ok - redis-server is missing: run scripts/deps.sh test")


def low_port():
    for _ in range(200):
        port = random.randint(20000, 32000)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise axtest.Failure("no free port below 32768")


def wait_for(pred, what, timeout=axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise axtest.Failure("timed out waiting for " + what)
        time.sleep(0.05)


def healthz(srv):
    _, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", srv.base + "/healthz")
    return int(out or 0)


class Redis(axtest.Proc):
    def __init__(self):
        self.port = low_port()
        super().__init__(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--protected-mode", "no"])
        wait_for(lambda: self.ping(), "redis-server")
        self.url = "redis://127.0.0.1:%d" % self.port

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def node(r):
    n = servutil.Serve("--redis", r.url)
    wait_for(lambda: healthz(n) == 200, "the node linked to Redis")
    return n


def stop_clean(srvs):
    for s in srvs:
        s.signal(signal.SIGTERM)
    for s in srvs:
        t.exits(s, 0, "axon serve after SIGTERM")


@t.test
def retained_and_mqtt_fields_cross_nodes():
    r = Redis()
    a, b = node(r), node(r)
    pa = Client(a.mqtt_port, "pub-a", version=V5)
    pa.connect()
    pa.publish("sensors/1/temp", b"21", qos=1, retain=True)
    sb = Client(b.mqtt_port, "sub-b", version=V5)
    sb.connect()
    sb.subscribe("sensors/+/temp", 1)
    m = sb.get()
    t.eq((m.topic, m.payload, m.retain), ("sensors/1/temp", b"21", True),
         "node b: the retained message of node a, on subscribe")
    # a node started afterwards reads the retained messages from Redis
    c = node(r)
    # linked; its read of the retained messages is a round trip more: a
    # subscriber that came too early is tried again (a busy machine)
    deadline = time.monotonic() + axtest.TIMEOUT
    while True:
        sc = Client(c.mqtt_port, "sub-c")
        sc.connect()
        sc.subscribe("sensors/#", 1)
        try:
            m = sc.get(0.5)
            break
        except axtest.Failure:
            if time.monotonic() > deadline:
                raise
            sc.close()
    t.eq((m.topic, m.payload, m.retain), ("sensors/1/temp", b"21", True),
         "node c (started later): the retained message, read from Redis")
    # live: QoS, retain 0 when delivered live, MQTT 5 properties
    props = v5props("PUBLISH", UserProperty=[("k", "v")], ContentType="text/plain",
                    MessageExpiryInterval=60)
    pa.publish("sensors/2/temp", b"live", qos=1, props=props)
    m = sb.get()
    p = m.properties
    t.eq((m.topic, m.payload, m.qos, m.retain), ("sensors/2/temp", b"live", 1, False),
         "node b: a live message, QoS 1, retain 0")
    t.eq((p.UserProperty, p.ContentType), ([("k", "v")], "text/plain"),
         "node b: the MQTT 5 properties of node a's publisher")
    t.ok(0 < p.MessageExpiryInterval <= 60, "node b: the message expiry")
    t.eq(sc.get().payload, b"live", "node c: the live message")
    # an empty retained message clears it everywhere
    pb = Client(b.mqtt_port, "pub-b")
    pb.connect()
    pb.publish("sensors/1/temp", b"", qos=1, retain=True)
    t.eq(sb.get().payload, b"", "the empty message is delivered")
    for srv, name in ((a, "a"), (c, "c")):
        deadline = time.monotonic() + axtest.TIMEOUT  # (the clear travels through Redis)
        while True:
            d = Client(srv.mqtt_port, "late-" + name)
            d.connect()
            d.subscribe("sensors/#", 1)
            try:
                gone = d.none(0.5)
            except axtest.Failure:
                gone = False
            d.close()
            if gone or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        t.ok(gone, "node %s: nothing retained any more" % name)
    for x in (pa, sb, sc, pb):
        x.close()
    stop_clean([a, b, c])
    r.stop()


t.main()
