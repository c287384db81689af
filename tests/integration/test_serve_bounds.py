#!/usr/bin/python3
"""axon serve under floods that used to grow memory without bound or stall
the hub: many topics, many subscriptions on one connection, a resume
longer than the subscriber budget, a history reply larger than the
connection's output cap.

Each case samples the server's RSS (VmRSS, every 20 ms) and asks GET
/healthz every 20 ms from a process of its own; it asserts an RSS bound
stated beside it (twice that under ASan) and that /healthz always
answered within HEALTH_MS (100 ms: the hub's loop and lock are never held
long), not counting the time the server's loop thread and the prober
spent waiting for a CPU (/proc/PID/schedstat), which on a loaded machine
is the other processes' doing.

  (a) topics: --max-topics 20000, then 30,000 UDP publishes to new topics:
      20,000 made, the rest refused with "too many topics" (UDP ERR, HTTP
      507, a WebSocket error), old topics still take messages; RSS grows
      by less than TOPICS_BOUND; /api/topics lists them in name order in
      pages (limit, after, next) that together hold each exactly once;
  (b) subscriptions: one WebSocket client asks for 50,000 subscriptions
      with --max-subs 20000: 20,000 ok, then a clear error each; RSS grows
      by less than SUBS_BOUND; a publish still reaches it;
  (c) resume: 1,000 kept messages of 2 KiB (2 MB, twice the subscriber
      budget) replayed to a WebSocket client reading through a 16 KiB
      receive buffer: it is not disconnected and gets 1..1000, then 200
      published while it reads, with no gap or duplicate; RSS grows by
      less than RESUME_BOUND;
  (d) history: GET /api/history of 8,000 messages of 1,500 bytes (a 14 MB
      reply, past the 8 MiB output cap) read slowly: 200, chunked, every
      message once, and RSS grows by less than HISTORY_BOUND while it is
      read (the reply is made as the socket drains).
"""

import base64
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

import axtest
from servutil import Serve

t = axtest.Tests("axon serve bounded memory", alarm=170)

HEALTH_MS = 100
MiB = 1 << 20
ASAN = 2 if axtest.sanitized() else 1  # redzones and shadow memory: twice the bytes
TOPICS_BOUND = 48 * MiB * ASAN   # 20,000 topics of one message: ~1 KiB each, twice
SUBS_BOUND = 32 * MiB * ASAN     # 20,000 filters of one connection: ~0.5 KiB each, twice
RESUME_BOUND = 8 * MiB * ASAN    # the budget (1 MiB) and the socket's queue, not the backlog
HISTORY_BOUND = 8 * MiB * ASAN   # pieces of 32 KiB and the socket's queue, not 14 MB

if axtest.sanitized():  # ASan holds freed memory back from reuse: not here
    opts = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=0"


# The /healthz prober: a process of its own, so the test's busy client
# (and Python's GIL) does not delay it.  It says "ready" after its first
# answer, asks every 20 ms until a line comes on its stdin, then prints:
# the slowest answer in seconds, the same less the time the server's loop
# thread and the prober waited for a CPU (/proc/PID/schedstat: on a busy
# machine that is the other processes' doing, not the hub's), the number
# of checks, and a failure or "-".
PROBE = r"""
import http.client, select, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def waited():
    n = 0
    for p in (pid, "self"):
        with open("/proc/%s/schedstat" % p) as f:
            n += int(f.read().split()[1])
    return n / 1e9
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
slowest, slowest_cpu, checks, fail = 0.0, 0.0, 0, "-"
while not select.select([sys.stdin], [], [], 0.02)[0]:
    w0, t0 = waited(), time.monotonic()
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            fail = "status %d" % r.status
    except Exception as e:
        fail = "no answer: %s" % e
        break
    took = time.monotonic() - t0
    slowest = max(slowest, took)
    slowest_cpu = max(slowest_cpu, took - (waited() - w0))
    checks += 1
    if checks == 1:
        print("ready", flush=True)
if checks == 0:
    print("ready")
print(slowest, slowest_cpu, checks, fail.replace(" ", "_"))
"""


class Watch:
    """The peak RSS of the server (on a thread) and the slowest /healthz
    (in a prober process)."""

    def __init__(self, srv):
        self.pid = srv.p.pid
        self.base = axtest.rss_kb(self.pid) * 1024
        self.peak, self.done = self.base, False
        self.th = threading.Thread(target=self._rss, daemon=True)
        self.th.start()
        self.probe = subprocess.Popen([sys.executable, "-c", PROBE, str(srv.http_port),
                                       str(self.pid)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        t.eq(self.probe.stdout.readline().strip(), "ready", "the /healthz prober")

    def _rss(self):
        while not self.done:
            self.peak = max(self.peak, axtest.rss_kb(self.pid) * 1024)
            time.sleep(0.02)

    def finish(self, bound, what):
        self.done = True
        self.th.join()
        out, _ = self.probe.communicate(input="stop\n", timeout=20)
        slowest, slowest_cpu, checks, fail = out.split()
        self.slowest, self.slowest_cpu = float(slowest), float(slowest_cpu)
        self.checks = int(checks)
        self.fail = None if fail == "-" else fail
        grew = self.peak - self.base
        print("# %s: RSS %.1f MiB -> peak %.1f MiB (+%.1f, bound %.0f); slowest /healthz "
              "%.1f ms of %d (%.1f ms less the waits for a CPU)" %
              (what, self.base / MiB, self.peak / MiB, grew / MiB, bound / MiB,
               self.slowest * 1000, self.checks, self.slowest_cpu * 1000), flush=True)
        t.ok(self.fail is None, "/healthz failed: %s" % self.fail)
        t.ok(self.checks > 0, "/healthz was never asked")
        t.ok(self.slowest_cpu * 1000 < HEALTH_MS,
             "/healthz took %.0f ms, %.0f ms of it not waiting for a CPU (bound %d ms)" %
             (self.slowest * 1000, self.slowest_cpu * 1000, HEALTH_MS))
        t.ok(grew < bound, "RSS grew by %.1f MiB (bound %.0f MiB)" % (grew / MiB, bound / MiB))


class Ws:
    """A plain WebSocket client on a raw socket (no deflate)."""

    def __init__(self, port, rcvbuf=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(axtest.TIMEOUT * 2)
        s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        self.sock, self.buf = s, b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise axtest.Failure("no upgrade: %r" % head[:100])
        t.eq(self.json()["type"], "welcome", "the first message")

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def frame(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        return head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(data))

    def send(self, obj):
        self.sock.sendall(self.frame(obj))

    def message(self):
        """The next data message's payload (pings skipped); EOFError on close."""
        while True:
            while len(self.buf) < 2:
                self._more()
            op, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
            off = 2
            if n == 126:
                while len(self.buf) < 4:
                    self._more()
                n, off = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                while len(self.buf) < 10:
                    self._more()
                n, off = struct.unpack(">Q", self.buf[2:10])[0], 10
            while len(self.buf) < off + n:
                self._more()
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            if op == 8:
                raise EOFError("close frame %r" % payload[2:])
            if op in (1, 2):
                return payload

    def json(self):
        return json.loads(self.message())

    def close(self):
        self.sock.close()


def udp_publish(srv, items):
    """PUB each (topic, payload) over UDP, ~64 KB in flight; the replies."""
    window = max(1, min(200, 65536 // (len(items[0][1]) + 64)))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    u.settimeout(axtest.TIMEOUT)
    u.connect(("127.0.0.1", srv.udp_port))
    # verify the address (a cookie round trip, docs/protocol.md) so that
    # the replies are not cut to the length of the requests
    u.send(b"SUB verify/+/nothing COOKIE " + b"-" * 16)
    u.send(b"SUB verify/+/nothing COOKIE " + u.recv(100).split()[1])
    if not u.recv(100).startswith(b"OK SUB"):
        raise axtest.Failure("no UDP subscription")
    replies = []
    for i in range(0, len(items), window):
        part = items[i:i + window]
        for topic, payload in part:
            u.send(b"PUB " + topic.encode() + b" " + payload)
        for _ in part:
            replies.append(u.recv(65536).decode(errors="replace").rstrip("\n"))
    u.close()
    return replies


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


@t.test
def topic_flood_is_bounded_and_listed_in_pages():
    # a flood by design, faster than one address may send (ip_msg_rate)
    srv = Serve("--data", "none", "--max-topics", "20000", "--ip-msg-rate", "off")
    try:
        w = Watch(srv)
        replies = udp_publish(srv, [("flood/%05d" % i, b"x") for i in range(30000)])
        made = [r for r in replies if r.startswith("OK ")]
        refused = [r for r in replies if r.startswith("ERR ")]
        t.eq(len(made), 20000, "topics made")
        t.eq(len(refused), 10000, "publishes refused")
        t.ok("too many topics" in refused[0], "UDP error: %r" % refused[0])
        r, body = http_get(srv.http_port, "/api/topics")  # the default page
        page = json.loads(body)
        t.eq(len(page["topics"]), 1000, "topics in a default page")
        t.eq(page["next"], "flood/00999", "the cursor of the first page")
        # HTTP and WebSocket say it too; an old topic still takes messages
        c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
        c.request("POST", "/api/publish/one/more", body=b"hi")
        r = c.getresponse()
        err = json.loads(r.read())
        t.eq(r.status, 507, "HTTP status of a publish past max_topics")
        t.ok("too many topics" in err["error"], "HTTP error: %r" % err)
        c.request("POST", "/api/publish/flood/00007", body=b"hi")
        r = c.getresponse()
        t.eq((r.status, json.loads(r.read())["seq"]), (200, 2), "publish to an old topic")
        c.close()
        ws = Ws(srv.http_port)
        ws.send({"type": "publish", "topic": "ws/new", "payload": "x", "id": 1})
        rep = ws.json()
        t.eq((rep["type"], rep["id"]), ("error", 1), "WebSocket reply")
        t.ok("too many topics" in rep["error"], "WebSocket error: %r" % rep)
        ws.close()
        # every topic once, in order, in pages
        names, after, pages = [], "", 0
        while True:
            q = "/api/topics?limit=2000" + ("&after=" + urllib.parse.quote(after) if after else "")
            r, body = http_get(srv.http_port, q)
            page = json.loads(body)
            names += [x["topic"] for x in page["topics"]]
            pages += 1
            if page["next"] is None:
                break
            after = page["next"]
        t.eq(pages, 10, "pages of 2,000")
        t.eq(names, ["flood/%05d" % i for i in range(20000)], "the topics, in name order")
        w.finish(TOPICS_BOUND, "20,000 topics, 10,000 refused")
    finally:
        srv.stop()


@t.test
def subscription_flood_is_cheap_and_limited():
    # 50,000 requests pipelined on one connection: over msg_rate by design
    srv = Serve("--data", "none", "--max-subs", "20000", "--msg-rate", "off",
                "--ip-msg-rate", "off")
    try:
        w = Watch(srv)
        ws = Ws(srv.http_port)
        ok = errors = 0
        first_error = None
        t0 = time.monotonic()
        for i in range(0, 50000, 250):  # pipelined, 250 at a time
            ws.sock.sendall(b"".join(ws.frame({"type": "subscribe", "topic": "s/%d/+" % k})
                                     for k in range(i, i + 250)))
            for _ in range(250):
                rep = ws.json()
                if rep["type"] == "ok":
                    ok += 1
                else:
                    errors += 1
                    first_error = first_error or rep["error"]
        took = time.monotonic() - t0
        print("# 50,000 subscribe requests in %.2f s" % took, flush=True)
        t.eq((ok, errors), (20000, 30000), "subscriptions taken, refused")
        t.ok("too many subscriptions" in first_error, "the error: %r" % first_error)
        ws.send({"type": "subscribe", "topic": "s/7/+", "id": 9})  # again: still fine
        t.eq(ws.json()["type"], "ok", "subscribing again to a filter it has")
        udp_publish(srv, [("s/7/x", b"hello")])
        msg = ws.json()
        t.eq((msg["type"], msg["topic"], msg["payload"]), ("message", "s/7/x", "hello"),
             "a message on one of them")
        ws.close()
        w.finish(SUBS_BOUND, "20,000 subscriptions, 30,000 refused")
    finally:
        srv.stop()


@t.test
def resume_longer_than_the_budget_is_paced():
    srv = Serve("--data", "none")
    try:
        payload = b"r" * 2048
        replies = udp_publish(srv, [("big/resume", payload)] * 1000)
        t.eq(replies[-1], "OK big/resume 1000", "the last publish")
        w = Watch(srv)
        ws = Ws(srv.http_port, rcvbuf=16384)
        ws.send({"type": "subscribe", "topic": "big/resume", "since": 0, "id": 1})
        t.eq(ws.json()["type"], "ok", "the subscribe reply")
        seqs, more = [], None
        while len(seqs) < 1200:
            try:
                msg = ws.json()
            except EOFError as e:
                raise axtest.Failure("disconnected after %d messages: %s" % (len(seqs), e))
            t.eq(msg["type"], "message", "message type after %d" % len(seqs))
            seqs.append(msg["seq"])
            if len(seqs) == 300:  # live ones while the replay is under way
                more = threading.Thread(target=udp_publish,
                                        args=(srv, [("big/resume", b"live")] * 200))
                more.start()
            if len(seqs) % 50 == 0:
                time.sleep(0.005)  # a reader, not a sink
        more.join()
        t.eq(seqs, list(range(1, 1201)), "every message once, in order")
        ws.close()
        w.finish(RESUME_BOUND, "resume of 1,000 x 2 KiB")
    finally:
        srv.stop()


def read_chunked(sock):
    """A whole chunked HTTP/1.1 response from a raw socket, read slowly."""
    buf = b""

    def more():
        nonlocal buf
        chunk = sock.recv(16384)
        if not chunk:
            raise axtest.Failure("the connection ended early (after %d bytes)" % len(buf))
        buf += chunk
        time.sleep(0.0005)

    while b"\r\n\r\n" not in buf:
        more()
    head, buf = buf.split(b"\r\n\r\n", 1)
    body = bytearray()
    while True:
        while b"\r\n" not in buf:
            more()
        line, buf = buf.split(b"\r\n", 1)
        n = int(line.split(b";")[0], 16)
        while len(buf) < n + 2:
            more()
        body += buf[:n]
        buf = buf[n + 2:]
        if n == 0:
            return head.decode(), bytes(body)


@t.test
def large_history_is_streamed():
    srv = Serve("--data", "none", "--history", "8000")
    try:
        payload = b"h" * 1500
        replies = udp_publish(srv, [("big/history", payload)] * 8000)
        t.eq(replies[-1], "OK big/history 8000", "the last publish")
        w = Watch(srv)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(axtest.TIMEOUT * 2)
        s.connect(("127.0.0.1", srv.http_port))
        s.sendall(b"GET /api/history/big/history?limit=10000 HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_chunked(s)
        s.close()
        t.ok(head.startswith("HTTP/1.1 200 "), "status: %r" % head[:40])
        t.ok("transfer-encoding: chunked" in head.lower(), "chunked: %r" % head)
        print("# a history reply of %.1f MB" % (len(body) / 1e6), flush=True)
        o = json.loads(body)
        t.eq((o["topic"], o["last_seq"], o["first_seq"], o["gap"]), ("big/history", 8000, 1, False),
             "the reply's fields")
        t.eq([m["seq"] for m in o["messages"]], list(range(1, 8001)), "every message once")
        t.eq(o["messages"][5]["payload"], payload.decode(), "a payload")
        w.finish(HISTORY_BOUND, "history reply of 8,000 x 1,500 B")
        # the small replies stay as they were
        r, body = http_get(srv.http_port, "/api/history/big/history?since=7998")
        t.eq((r.status, [m["seq"] for m in json.loads(body)["messages"]]), (200, [7999, 8000]),
             "a small history reply")
        r, body = http_get(srv.http_port, "/api/history/nope")
        t.eq((r.status, json.loads(body)["messages"]), (404, []), "an unknown topic")
    finally:
        srv.stop()


t.main()
