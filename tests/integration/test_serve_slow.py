#!/usr/bin/python3
"""axon serve with slow consumers: 1,000 WebSocket subscribers to one topic,
10 of which stop reading.

The 990 readers and the publisher are build/bench/hub-load (libaxon
WebSocket clients on one loop): the publisher sends RATE messages of SIZE
bytes per second for SECS seconds, with at most WINDOW of them not yet
received by every reader, so a reader lagging by more than WINDOW / RATE
seconds would hold the publisher back.  The 10 stalled subscribers are raw
sockets here: handshake, subscribe, then never another recv(), with a 4 KiB
receive buffer and a 536-byte MSS (so the kernel cannot hide megabytes for
them: on loopback the server's send buffer otherwise grows to 4 MiB per
socket before axon sees any backpressure).

Asserted, on each backend and under ASan:
  (a) every reader receives every message, in order (hub-load checks each
      one's count), the publisher keeps >= 90% of the rate (no reader lags
      by a window), and the readers' p99 publish-to-delivery latency stays
      under 2 s;
  (b) default policy (disconnect): the 10 stalled subscribers are closed
      by the server and axon_hub_disconnects_total{policy="disconnect"}
      counts them (>= 10);
  (c) the server's RSS never grows more than BOUND over its level with all
      1,000 subscribed (before the first publish), where

          BOUND = STALLED * 2 * (BUDGET + WATERMARK + MAX_MSG)
                  + HISTORY * 2 * MAX_MSG + SLACK
                = 10 * 2 * (256 KiB + 64 KiB + 60,000 B) + 10 * 2 * 60,000 B
                  + 8 MiB  ~=  16.5 MiB

      Per stalled subscriber the hub queues at most subscriber_budget
      (BUDGET, 256 KiB here) of messages, as the hub counts them (payload,
      topic and sender), and the WebSocket connection's send queue stops
      taking more above its high watermark (WATERMARK, 64 KiB) plus the
      one message that passed it; each queued message costs at most twice
      what the budget counts (the message and its encoded frame).  History
      keeps HISTORY messages.  SLACK is the allocator's and the readers'
      buffers' noise.  Under ASan the same bound holds with its quarantine
      of freed memory turned off (quarantine_size_mb=0) for these processes;
  (d) with `slow_consumer "#" drop_oldest` in the config file (quoted: a
      bare # starts a comment) the stalled subscribers stay connected
      while axon_hub_dropped_total{policy="drop_oldest"} grows, and (c)
      holds through a flood of 800 messages of 60,000 bytes (48 MB: with
      the budget out of the way the stalled queues keep them all and RSS
      grows by ~47 MiB); a stalled subscriber that reads again then gets
      messages in order, ending with the newest.
"""

import base64
import os
import re
import resource
import socket
import struct
import threading
import time

import axtest
from servutil import Serve, metric

t = axtest.Tests("axon serve slow consumers", alarm=170)

READERS, STALLED = 990, 10
RATE, SECS, SIZE = 100, 5, 2048        # the measured run: 500 messages of 2 KiB
WINDOW = 2 * RATE                      # publisher: at most 2 s of messages in flight
FLOOD_SIZE, FLOOD_RATE = 60000, 400   # the largest message (MAX_MSG below)
BUDGET = 256 * 1024                    # subscriber_budget in the config below
WATERMARK = 64 * 1024                  # the WebSocket send queue's high watermark
HISTORY = 10
SLACK = 8 << 20
TOPIC = "bench/0"                      # hub-load's topic for publisher 0


def sanitized():
    try:
        with open(os.path.join(axtest.BUILD, "CMakeCache.txt")) as f:
            return "AXON_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


FLOOD_COUNT = 800                      # 48 MB: well past BOUND
BOUND = STALLED * 2 * (BUDGET + WATERMARK + FLOOD_SIZE) + HISTORY * 2 * FLOOD_SIZE + SLACK


def setup_env():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if sanitized():  # ASan holds freed memory back from reuse (256 MiB): not here
        opts = os.environ.get("ASAN_OPTIONS", "")
        os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=0"


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise axtest.Failure("no VmRSS for %d" % pid)


class RssWatch:
    """The largest RSS of a process, sampled every 20 ms on a thread."""

    def __init__(self, pid):
        self.pid, self.peak, self.done = pid, rss(pid), False
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self.done:
            try:
                self.peak = max(self.peak, rss(self.pid))
            except (OSError, axtest.Failure):
                return
            time.sleep(0.02)

    def stop(self):
        self.done = True
        self.th.join()
        return self.peak


class Stalled:
    """A WebSocket subscriber that stops reading once subscribed."""

    def __init__(self, port, topic):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        s.settimeout(axtest.TIMEOUT)
        s.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n" % (port, key)).encode())
        self.sock, self.buf = s, b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise axtest.Failure("handshake refused: %r" % head)
        self.send('{"type":"subscribe","topic":"%s"}' % topic)
        while not any(b'"type":"ok"' in p for p in self.frames()):
            self._fill()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise axtest.Failure("the server closed a stalled subscriber early")
        self.buf += chunk

    def send(self, text):
        data, mask = text.encode(), os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.sendall(bytes([0x81, 0x80 | len(data)]) + mask + masked)

    def frames(self):
        """The whole (unmasked, unfragmented) server frames in buf, consumed."""
        out = []
        while len(self.buf) >= 2:
            n, at = self.buf[1] & 0x7f, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < at + n:
                break
            out.append(self.buf[at:at + n])
            self.buf = self.buf[at + n:]
        return out

    def closed_by_server(self, timeout=axtest.TIMEOUT * 2):
        """Read whatever is left; True when the stream ends (EOF or reset)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(1 << 20):
                    return True
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False
        return False

    def read_until_seq(self, last, timeout=axtest.TIMEOUT * 4):
        """Read again until the message with seq `last`; the seqs seen."""
        seqs, deadline = [], time.monotonic() + timeout
        while not seqs or seqs[-1] < last:
            if time.monotonic() > deadline:
                raise axtest.Failure("a stalled subscriber reading again got seqs up to %s, "
                                     "not %d" % (seqs[-1:] or None, last))
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self._fill()
            for p in self.frames():
                m = re.match(rb'\{"type":"message","topic":"[^"]*","seq":(\d+)', p)
                if m:
                    seqs.append(int(m.group(1)))
        return seqs


def hub_load(srv, *args):
    return axtest.Proc([os.path.join(axtest.BUILD, "bench", "hub-load"), "-P", str(srv.pid)] +
                       [str(a) for a in args] + ["ws://127.0.0.1:%d/ws" % srv.http_port],
                       capture=True)


def results(gen, what, timeout):
    """Wait for hub-load to finish; its key=value line as a dict."""
    out = gen.wait_output(lambda o: b"drained=" in o, timeout=timeout, what=what).decode()
    line = [x for x in out.splitlines() if "drained=" in x][-1]
    r = dict(kv.split("=", 1) for kv in line.split())
    status = gen.wait(timeout=10)
    if status != 0:
        raise axtest.Failure("%s: hub-load exited %d: %s%s" % (what, status, line,
                                                                gen.err_note()))
    return r, line


def start(policy):
    conf = os.path.join(axtest.BUILD, "slow-%s-%d.conf" % (policy, os.getpid()))
    with open(conf, "w") as f:
        f.write("# test_serve_slow.py\nsubscriber_budget %d\nhistory_count %d\n"
                "slow_consumer \"#\" %s\n"
                "# 1,000 clients from one address, 24 MB/s from one: limits off\n"
                "max_connections_per_ip off\nmsg_rate off\nbyte_rate off\n"
                "ip_msg_rate off\nip_byte_rate off\n" % (BUDGET, HISTORY, policy))
    srv = Serve("--line", "off", "--udp", "off", "-d", "none", "-c", conf)
    os.unlink(conf)
    return srv


def readers_keep_up(srv):
    """Run the readers and the publisher beside the stalled subscribers;
    check (a) and (c); returns the server's RSS before the first publish."""
    gen = hub_load(srv, "-p", 1, "-n", READERS, "-r", RATE, "-w", WINDOW, "-s", SIZE,
                   "-W", 0, "-t", SECS)
    gen.wait_output(lambda o: b"ready\n" in o, timeout=90, what="1,000 subscribers")
    t.eq(metric(srv, 'axon_connections{gateway="websocket"}'), float(READERS + STALLED + 1),
         "WebSocket connections with everyone subscribed")
    base = rss(srv.pid)
    watch = RssWatch(srv.pid)
    r, line = results(gen, "the publishing run", timeout=SECS + 60)
    peak = watch.stop()
    print("# %s" % line, flush=True)
    t.eq(r["complete_subs"], "%d/%d" % (READERS, READERS), "readers with every message")
    t.eq(r["order_errors"], "0", "messages out of order or missing")
    t.ok(float(r["msgs_published/s"]) >= 0.9 * RATE,
         "the publisher kept only %s of %d msgs/s (a reader held it back): %s" %
         (r["msgs_published/s"], RATE, line))
    t.ok(float(r["p99_us"]) < 2e6, "readers' p99 latency %s us: %s" % (r["p99_us"], line))
    check_rss(base, peak, "publishing at %d msgs/s" % RATE)
    return base


def wait_metric(srv, name, want, timeout=axtest.TIMEOUT * 2):
    deadline = time.monotonic() + timeout
    while True:
        got = metric(srv, name)
        if got == want:
            return
        if time.monotonic() > deadline:
            raise axtest.Failure("%s is %s, want %s" % (name, got, want))
        time.sleep(0.05)


def check_rss(base, peak, what):
    t.ok(peak - base <= BOUND, "RSS grew %.1f MiB while %s; the bound is %.1f MiB" %
         ((peak - base) / 2**20, what, BOUND / 2**20))
    print("# RSS %.1f MiB -> peak %.1f MiB while %s (bound +%.1f MiB)" %
          (base / 2**20, peak / 2**20, what, BOUND / 2**20), flush=True)


@t.test
def stalled_subscribers_are_disconnected():
    setup_env()
    srv = start("disconnect")
    stalled = [Stalled(srv.http_port, TOPIC) for _ in range(STALLED)]
    readers_keep_up(srv)
    kicked = metric(srv, 'axon_hub_disconnects_total{policy="disconnect"}')
    t.ok(kicked is not None and kicked >= STALLED,
         "axon_hub_disconnects_total{policy=\"disconnect\"} is %s, want >= %d" %
         (kicked, STALLED))
    t.ok(all(s.closed_by_server() for s in stalled), "a stalled subscriber is still open")
    wait_metric(srv, 'axon_connections{gateway="websocket"}', 0.0)


@t.test
def drop_oldest_keeps_them_with_bounded_memory():
    setup_env()
    srv = start("drop_oldest")
    stalled = [Stalled(srv.http_port, TOPIC) for _ in range(STALLED)]
    base = readers_keep_up(srv)
    dropped = metric(srv, 'axon_hub_dropped_total{policy="drop_oldest"}')
    t.ok(dropped and dropped > 0, "nothing dropped for the stalled subscribers (%s)" % dropped)
    t.eq(metric(srv, 'axon_hub_disconnects_total{policy="disconnect"}'), 0.0, "disconnects")
    wait_metric(srv, 'axon_connections{gateway="websocket"}', float(STALLED))

    watch = RssWatch(srv.pid)
    published = metric(srv, "axon_hub_published_total")
    gen = hub_load(srv, "-p", 1, "-n", 0, "-r", FLOOD_RATE, "-s", FLOOD_SIZE, "-W", 0,
                   "-t", FLOOD_COUNT // FLOOD_RATE)
    r, line = results(gen, "the flood", timeout=60)
    print("# %s" % line, flush=True)
    # hub-load ends once the server said "ok" to every publish
    want = published + int(r["published"])
    t.eq(metric(srv, "axon_hub_published_total"), want, "messages published")
    t.ok(int(r["published"]) * FLOOD_SIZE > 1.25 * BOUND, "the flood was too small: %s" % line)
    peak = watch.stop()
    check_rss(base, peak, "flooding %s messages of %d bytes" % (r["published"], FLOOD_SIZE))
    more = metric(srv, 'axon_hub_dropped_total{policy="drop_oldest"}')
    t.ok(more > dropped, "the drop counter did not grow during the flood (%s)" % more)
    wait_metric(srv, 'axon_connections{gateway="websocket"}', float(STALLED))

    seqs = stalled[0].read_until_seq(int(want))
    t.ok(all(a < b for a, b in zip(seqs, seqs[1:])), "seqs out of order: %r" % seqs[:50])
    t.ok(len(seqs) < want, "a stalled subscriber got everything (%d messages)" % len(seqs))


t.main()
