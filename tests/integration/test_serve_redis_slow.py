#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_serve_redis_slow: a fast MQTT publisher while Redis is slow
(issue 17, docs/cluster.md "Slow Redis"), with a real redis-server.

A 3.1.1 publisher sends 30,000 QoS 1 messages without waiting for a
single PUBACK (legal: 3.1.1 has no window but the client's own) while
redis-server is stopped (SIGSTOP) mid-stream, long enough for the node's
publishes on their way to Redis to pass its high mark, then let go
(SIGCONT).  The node stops reading the publisher instead of refusing it
(3.1.1 has no negative PUBACK: a refusal closed it, losing what it had
sent): the publisher stays connected and gets every PUBACK; a subscriber
gets every message once, in order; nothing is refused
(axon_redis_refused_total 0) and the pauses are counted
(axon_redis_paused_total); the node's memory stays flat (the socket's
buffer is the bound); after SIGCONT nobody is left paused."""
import os
import shutil
import signal
import socket
import tempfile
import threading
import time

import axtest
import redisutil
import servutil
from mqttutil import Client, Raw, connect_pkt, publish_pkt

t = axtest.Tests("axon serve: a fast MQTT publisher while Redis is slow", alarm=120)

if not shutil.which("redis-server"):
    raise SystemExit("not ok - redis-server is missing: run scripts/deps.sh test")

N = 30000


def node(r):
    conf = os.path.join(tempfile.mkdtemp(prefix="axon-slow-"), "axon.conf")
    with open(conf, "w") as f:  # (room for the whole stream in the subscriber's session)
        f.write("mqtt_queued 100000\nhistory_count 1000\nmsg_rate off\nip_msg_rate off\n"
                "byte_rate off\nip_byte_rate off\nsubscriber_budget 67108864\n")
    n = servutil.Serve("--redis", r.url, "-c", conf)
    redisutil.wait_for(lambda: redisutil.healthz(n) == 200, "the node linked to Redis")
    return n


def metric(n, name):
    v = servutil.metric(n, name)
    return -1 if v is None else int(v)


class Flood:
    """Sends N QoS 1 PUBLISHes in big writes, never waiting for a PUBACK;
    another thread counts the PUBACKs (ids in order) until the end."""

    def __init__(self, pub):
        self.pub, self.acked, self.ids_ok, self.sent = pub, 0, True, 0
        self.closed = None  # why the connection ended early
        self.rx = threading.Thread(target=self.read, daemon=True)
        self.tx = threading.Thread(target=self.send, daemon=True)
        self.rx.start()
        self.tx.start()

    def send(self):
        batch = []
        for i in range(1, N + 1):
            batch.append(publish_pkt("slow/t", b"%d" % i, qos=1, pid=i % 65535 or 1))
            if len(batch) == 500 or i == N:
                try:
                    self.pub.send(b"".join(batch))  # (blocks while the node does not read)
                except OSError as e:
                    self.closed = self.closed or "send: %s" % e
                    return
                self.sent = i
                batch = []

    def read(self):
        deadline = time.monotonic() + 90
        while self.acked < N and time.monotonic() < deadline:
            try:
                p = self.pub.packet(1.0)
            except socket.timeout:
                continue
            except OSError as e:
                self.closed = self.closed or "read: %s" % e
                return
            if p is None:
                self.closed = self.closed or "the node closed the connection"
                return
            if p[0] == 4:
                self.acked += 1
                want = self.acked % 65535 or 1
                self.ids_ok = self.ids_ok and p[2] == bytes([want >> 8, want & 255])


@t.test
def a_fast_publisher_is_paused_not_closed():
    os.environ.update(axtest.flat_memory_env())  # (the node's RSS is bounded below)
    r = redisutil.Redis()
    n = node(r)
    sub = Client(n.mqtt_port, "slow-sub")
    sub.connect()
    t.eq(sub.subscribe("slow/t", 1), [1], "subscribed, QoS 1")
    pub = Raw(n.mqtt_port)
    pub.send(connect_pkt("slow-pub"))
    t.eq(pub.packet()[0], 2, "the publisher's CONNACK")
    rss0 = axtest.rss_kb(n.pid)
    peak = [rss0]
    f = Flood(pub)
    redisutil.wait_for(lambda: f.acked >= 100 or f.closed, "the first PUBACKs", 20)
    r.signal(signal.SIGSTOP)
    try:
        # until the publishes on their way pass the high mark (the old
        # code: past the hard maximum, the publisher closed), then a
        # while; under 2 s in all: the node's heartbeat through Redis
        # (one a second) says the link is stale after 3 s without one
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline and not f.closed and metric(n, "axon_redis_paused") < 1:
            peak[0] = max(peak[0], axtest.rss_kb(n.pid))
            time.sleep(0.05)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6 and not f.closed:
            peak[0] = max(peak[0], axtest.rss_kb(n.pid))
            time.sleep(0.05)
        paused_now = metric(n, "axon_redis_paused")
    finally:
        r.signal(signal.SIGCONT)
    t.eq(f.closed, None, "the publisher is not closed while Redis is stopped")
    t.eq(paused_now, 1, "the publisher is paused (axon_redis_paused)")
    while f.rx.is_alive():
        peak[0] = max(peak[0], axtest.rss_kb(n.pid))
        f.rx.join(0.1)
    f.tx.join(10)
    t.eq((f.closed, f.sent, f.acked), (None, N, N), "every message sent and acknowledged")
    t.ok(f.ids_ok, "the PUBACKs in order")
    pub.send(b"\xc0\x00")
    t.eq(pub.packet()[0], 13, "the publisher is still there: PINGRESP")
    got = []
    try:
        while len(got) < N:
            got.append(int(sub.get(20).payload))  # (a busy machine, a sanitizer build)
    except axtest.Failure:
        pass
    if len(got) != N:  # (what the node says of it)
        print("\n".join("# " + ln for ln in servutil.curl(n.base + "/metrics")[1].splitlines()
                         if ln.startswith(("axon_redis_", "axon_hub_"))))
    t.eq(len(got), N, "the subscriber got every message")
    t.ok(got == list(range(1, N + 1)), "each once, in order")
    t.eq(metric(n, "axon_redis_refused_total"), 0, "no publish refused")
    t.ok(metric(n, "axon_redis_paused_total") >= 1, "the pauses counted")
    t.eq(metric(n, "axon_redis_paused"), 0, "nobody paused once Redis caught up")
    grew = peak[0] - rss0
    t.ok(grew < 48 * 1024, "memory bounded (the socket buffer holds the rest): +%d KiB" % grew)
    sub.close()
    pub.close()
    n.signal(signal.SIGTERM)
    t.exits(n, 0, "axon serve after SIGTERM")
    r.stop()


t.main()
