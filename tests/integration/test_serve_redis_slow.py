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
(on a second node) gets every message once, in order; nothing is refused
(axon_redis_refused_total 0) and the pauses are counted
(axon_redis_paused_total); the node's memory stays flat (the socket's
buffer is the bound); after SIGCONT nobody is left paused.  The same
with the publisher over WebSocket (/mqtt)."""
import os
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time

import axtest
import redisutil
import servutil
from mqttutil import Client, Raw, connect_pkt, publish_pkt

t = axtest.Tests("axon serve: a fast MQTT publisher while Redis is slow", alarm=240)

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
    """Sends N QoS 1 PUBLISHes in big writes, never waiting for a PUBACK
    (the first FIRST, the rest once `go` is set); another thread counts
    the PUBACKs (ids in order) until the end."""

    FIRST = 1000

    def __init__(self, pub):
        self.pub, self.acked, self.ids_ok, self.sent = pub, 0, True, 0
        self.go = threading.Event()
        self.closed = None  # why the connection ended early
        self.rx = threading.Thread(target=self.read, daemon=True)
        self.tx = threading.Thread(target=self.send, daemon=True)
        self.rx.start()
        self.tx.start()

    def send(self):
        batch = []
        for i in range(1, N + 1):
            batch.append(publish_pkt("slow/t", b"%d" % i, qos=1, pid=i % 65535 or 1))
            if i == self.FIRST + 1:
                self.go.wait(60)
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
            try:  # (the socket's timeout is the sender's too: long)
                p = self.pub.packet(30)
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


class Heartbeats:
    """Subscribed to the nodes' heartbeats through Redis (one a second
    each, redis.c): stopping Redis just after the publisher's node had one
    back leaves it the most time before it calls its link stale (3 s
    without one).  Made while only that node runs: its channel is the
    first heard."""

    def __init__(self, r):
        self.s = socket.create_connection(("127.0.0.1", r.port), timeout=axtest.TIMEOUT)
        self.s.sendall(b"PSUBSCRIBE axon-hb:*\r\n")
        self.chan = None
        while not self.chan:
            for ln in self.s.recv(65536).split(b"\r\n"):
                if ln.startswith(b"axon-hb:") and ln != b"axon-hb:*":
                    self.chan = ln
                    break

    def next(self):
        self.s.setblocking(False)
        try:
            while self.s.recv(65536):  # (those that came already)
                pass
        except BlockingIOError:
            pass
        self.s.settimeout(axtest.TIMEOUT)
        while self.chan not in self.s.recv(65536):
            pass


class WsRaw(Raw):
    """MQTT bytes over a WebSocket (/mqtt): big binary frames out (masked
    with a zero key), the frames in unwrapped for Raw.packet()."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=axtest.TIMEOUT)
        self.s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
        self.raw = b""
        while b"\r\n\r\n" not in self.raw:
            self.raw += self.s.recv(4096)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise axtest.Failure("no WebSocket upgrade: %r" % head[:80])
        self.buf = b""
        self.sock = self.s
        self.s = self  # (Raw.packet reads self.s.recv: the frames' payloads)

    def settimeout(self, timeout):
        self.sock.settimeout(timeout)

    def recv(self, n):
        while True:
            k = self.raw[1] & 127 if len(self.raw) >= 2 else -1
            off = {126: 4, 127: 10}.get(k, 2)
            if k == 126 and len(self.raw) >= 4:
                k = struct.unpack(">H", self.raw[2:4])[0]
            elif k == 127 and len(self.raw) >= 10:
                k = struct.unpack(">Q", self.raw[2:10])[0]
            if k >= 0 and len(self.raw) >= off + k:
                data, self.raw = self.raw[off:off + k], self.raw[off + k:]
                return data or self.recv(n)
            chunk = self.sock.recv(65536)
            if not chunk:
                return b""
            self.raw += chunk

    def send(self, data):
        n = len(data)
        size = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        self.sock.sendall(b"\x82" + size + b"\0\0\0\0" + data)

    def close(self):
        self.sock.close()


STALE = "the link is stale"


def with_nodes(publisher):
    """paused_not_closed() with publisher(node) on a node of a new Redis.

    A machine so busy that Redis and the node take 3 s to answer their
    backlog makes the node call its link stale (Redis unreachable: its
    publishers refused, 3.1.1 closed, as documented): not a slow Redis,
    the case here; then once more, on fresh nodes."""
    os.environ.update(axtest.flat_memory_env())  # (the node's RSS is bounded below)
    for attempt in (1, 2, 3):
        r = redisutil.Redis()
        n = node(r)  # the publisher's
        hb = Heartbeats(r)
        m = node(r)  # the subscriber's (its node's work of delivering is not n's)
        try:
            paused_not_closed(r, n, m, hb, publisher(n))
            break
        except axtest.Failure:  # (what the nodes say of it)
            print("\n".join("# " + ln for x in (n, m) for ln in x.stderr().splitlines()[-4:]))
            if attempt == 3 or STALE not in n.stderr():
                raise
            print("# the link went stale (a busy machine): again")
            for x in (n, m, r):
                x.stop()
            hb.s.close()
    hb.s.close()
    for x in (n, m):
        x.signal(signal.SIGTERM)
        t.exits(x, 0, "axon serve after SIGTERM")
    r.stop()


def subscribed(n, m):
    """A subscriber on node m that hears what node n's clients publish."""
    sub = Client(m.mqtt_port, "slow-sub")
    sub.connect()
    t.eq(sub.subscribe("slow/t", 1), [1], "subscribed, QoS 1")
    warm = Client(n.mqtt_port, "warm")
    warm.connect()
    deadline = time.monotonic() + 20
    while True:  # (its node's subscription in Redis takes a moment)
        warm.publish("slow/t", b"0", qos=1)
        try:
            sub.get(0.5)
            break
        except axtest.Failure:
            if time.monotonic() > deadline:
                raise
    warm.close()
    while not sub.msgs.empty():
        sub.msgs.get_nowait()
    return sub


def paused_not_closed(r, n, m, hb, pub):
    sub = subscribed(n, m)
    pub.send(connect_pkt("slow-pub"))
    t.eq(pub.packet()[0], 2, "the publisher's CONNACK")
    rss0 = axtest.rss_kb(n.pid)
    peak = [rss0]
    f = Flood(pub)
    redisutil.wait_for(lambda: f.acked >= f.FIRST or f.closed, "the first PUBACKs", 20)
    hb.next()
    r.signal(signal.SIGSTOP)
    f.go.set()  # (the rest: mid-stream)
    try:
        # until the publishes on their way pass the high mark (the old
        # code: past the hard maximum, the publisher closed); short: the
        # node says its link is stale after 3 s without a heartbeat back,
        # and Redis and the node have a backlog to answer
        deadline = time.monotonic() + 1.5
        paused_now = 0
        while time.monotonic() < deadline and not f.closed and paused_now < 1:
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
            i = int(sub.get(20).payload)  # (a busy machine, a sanitizer build)
            if i:  # (0: the warm-up's)
                got.append(i)
    except axtest.Failure:
        pass
    if len(got) != N:  # (what the node says of it)
        print("\n".join("# " + ln for x in (n, m)
                         for ln in servutil.curl(x.base + "/metrics")[1].splitlines()
                         if ln.startswith(("axon_redis_", "axon_hub_"))))
    t.eq(len(got), N, "the subscriber got every message")
    t.ok(got == list(range(1, N + 1)), "each once, in order")
    t.eq([metric(x, "axon_redis_refused_total") for x in (n, m)], [0, 0], "no publish refused")
    t.ok(metric(n, "axon_redis_paused_total") >= 1, "the pauses counted")
    t.eq(metric(n, "axon_redis_paused"), 0, "nobody paused once Redis caught up")
    grew = peak[0] - rss0
    print("# %d paused, the node's RSS +%d KiB at most (from %d KiB)" %
          (metric(n, "axon_redis_paused_total"), grew, rss0))
    t.ok(grew < 48 * 1024, "memory bounded (the socket buffer holds the rest): +%d KiB" % grew)
    sub.close()
    pub.close()


@t.test
def a_fast_publisher_is_paused_not_closed():
    with_nodes(lambda n: Raw(n.mqtt_port))


@t.test
def over_websocket_too():
    # the frames of the read that came with the pause wait in the
    # connection (not published past the hard maximum: refused, closed)
    with_nodes(lambda n: WsRaw(n.http_port))


t.main()
