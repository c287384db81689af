#!/usr/bin/python3
"""test_serve_limits: `axon serve` limits how much one client may do
(docs/config.md, "Limits"), with real clients.

  (a) flood: one WebSocket client and one line-chat client send above
      their message rate and get the protocol's answer (close 1008 with a
      reason; an `error:` line, then close) while 50 other WebSocket
      clients keep sending at their full (under-limit) rate and every one
      of their messages is delivered;
  (b) 1,000 connections from 127.0.0.1 over --max-connections-per-ip are
      refused with the protocol's answer (HTTP 429 with Retry-After, an
      `error:` line, a WebSocket upgrade refused with 429), while a client
      from 127.0.0.2 still connects on each gateway;
  (c) HTTP publishes over the rate on one keep-alive connection (curl):
      429 with Retry-After;
  (d) UDP datagrams over the address's rate: an error datagram, no longer
      than the request, once; later ones are dropped; the rate comes back;
  (e) failed logins: after N wrong passwords from one address, its logins
      are refused without a check, even with the right password; another
      address still signs in;
  (f) /metrics counts the refusals by kind;
  (g) each refused client is logged once, not once per refusal."""
import asyncio
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: limits", alarm=170)
TMP = tempfile.mkdtemp(prefix="axon-limits-")
SLOW = 3 if axtest.sanitized() else 1
N_CONNS = 1000
PER_IP = 100
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < 4 * N_CONNS:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 4 * N_CONNS), _hard))


def serve(*args, log=None):
    log = log or os.path.join(TMP, "serve-%d.log" % time.monotonic_ns())
    srv = servutil.Serve("--data", "none", "--log-file", log, *args)
    srv.log = log
    return srv


def finish(srv):
    """Stop the server; it exits 0 (under ASan: no leak, no error)."""
    srv.signal(15)
    t.exits(srv, 0, "axon serve after SIGTERM", timeout=axtest.TIMEOUT * SLOW * 2)


def log_lines(srv, pattern):
    with open(srv.log, errors="replace") as f:
        return [line for line in f if re.search(pattern, line)]


def metrics(srv):
    """/metrics from an address of its own (127.0.0.1 may be over its limits)."""
    _, out, _ = servutil.curl("--interface", "127.0.0.3", srv.base + "/metrics")
    return out


def refused(srv, kind):
    m = re.search(r'^axon_limit_refused_total\{kind="%s"\} (\d+)$' % kind, metrics(srv), re.M)
    return int(m.group(1)) if m else None


def close_code(e):
    """The close code and reason a websockets ConnectionClosed carries."""
    rcvd = getattr(e, "rcvd", None)
    return (rcvd.code, rcvd.reason) if rcvd else (getattr(e, "code", None), "")


# ---- (a) one flooder among 50 clients at their full rate ------------------------------------

RATE = 100     # msg_rate per connection, burst the same
CLIENTS = 50
SEND_HZ = 20   # each client's rate: a fifth of the limit
SECONDS = 3


async def steady(websockets, url, i, sent, got):
    """Publish SEND_HZ messages a second to load/<i> for SECONDS; receive
    them back (a WebSocket subscriber gets its own messages)."""
    topic = "load/%d" % i
    async with websockets.connect(url, max_queue=None) as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"type": "subscribe", "topic": topic}))
        n = SEND_HZ * SECONDS
        start = time.monotonic()
        for k in range(n):
            delay = start + k / SEND_HZ - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(json.dumps({"type": "publish", "topic": topic, "payload": "m%d" % k}))
            sent[i] += 1
        deadline = time.monotonic() + axtest.TIMEOUT * SLOW * 2
        errors = []
        while got[i] < n and time.monotonic() < deadline:
            try:
                r = json.loads(await asyncio.wait_for(ws.recv(), 1))
            except asyncio.TimeoutError:
                continue
            if r["type"] == "message" and r["topic"] == topic:
                got[i] += 1
            elif r["type"] == "error":
                errors.append(r)
        if errors:
            raise axtest.Failure("client %d got errors: %r" % (i, errors[:3]))


async def flooder(websockets, url, closes):
    """Publish as fast as it can, again after each close, for SECONDS."""
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        async with websockets.connect(url) as ws:
            await ws.recv()
            try:
                for k in range(20 * RATE):
                    await ws.send(json.dumps({"type": "publish", "topic": "flood/ws",
                                              "payload": "x%d" % k}))
                    if k % 50 == 0:
                        await asyncio.sleep(0)
                while True:  # sent everything and still open: read until the close
                    await asyncio.wait_for(ws.recv(), axtest.TIMEOUT)
            except websockets.exceptions.ConnectionClosed as e:
                closes.append(close_code(e))
            except asyncio.TimeoutError:
                closes.append(("still open", ""))
                return


def line_flood(srv):
    """A line client that sends 20 x its rate at once: an error line, then
    the server closes the connection."""
    s = socket.create_connection(("127.0.0.1", srv.line_port))
    s.sendall(b"flooder\n" + b"".join(b"line %d\n" % k for k in range(20 * RATE)))
    s.settimeout(axtest.TIMEOUT * SLOW)
    data = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        data += d
    s.close()
    return data.decode(errors="replace")


@t.test
def a_flooder_is_stopped_while_50_clients_keep_their_rate():
    srv = serve("--msg-rate", "%d/s" % RATE)
    import websockets
    url = "ws://127.0.0.1:%d/ws" % srv.http_port
    sent, got, closes = [0] * CLIENTS, [0] * CLIENTS, []

    async def main():
        await asyncio.gather(flooder(websockets, url, closes),
                             *[steady(websockets, url, i, sent, got) for i in range(CLIENTS)])
    line_out = {}
    import threading
    th = threading.Thread(target=lambda: line_out.setdefault("text", line_flood(srv)))
    th.start()
    asyncio.run(main())
    th.join(axtest.TIMEOUT * SLOW * 2)
    print("# the flooder was closed %d times; %d clients delivered %d messages; the line "
          "flooder got %d bytes" % (len(closes), CLIENTS, sum(got), len(line_out.get("text", ""))),
          flush=True)
    t.eq(sent, [SEND_HZ * SECONDS] * CLIENTS, "every steady client sent all its messages")
    t.eq(got, [SEND_HZ * SECONDS] * CLIENTS, "and every message was delivered")
    t.ok(closes, "the flooder was closed")
    t.eq(sorted(set(c for c, _ in closes)), [1008], "the flooder's close codes (policy)")
    t.ok(all("too many messages" in r for _, r in closes),
         "the close says why: %r" % closes[:2])
    text = line_out.get("text", "")
    t.ok("error: too many messages" in text, "the line flooder got an error line: %r"
         % text[-300:])
    t.ok(text.rstrip("\n").endswith("retry in 1 s"), "the error line is the last thing: %r"
         % text[-200:])
    # (f), (g): counted, and logged once per refused client
    t.ok(refused(srv, "msg_rate") >= len(closes) + 1, "axon_limit_refused_total{msg_rate}")
    logged = log_lines(srv, r"refused: over msg_rate")
    t.eq(len(logged), len(closes) + 1, "one log line per refused client (%d WebSocket, 1 line)"
         % len(closes))
    t.ok(any(re.search(r"# line tcp://127\.0\.0\.1:\d+: refused: over msg_rate", x)
             for x in logged), "the line says the gateway and the address: %r" % logged[:2])
    finish(srv)


# ---- (b) 1,000 connections from one address --------------------------------------------

def open_many(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def answers(socks, want, timeout):
    """What each socket received until the server closed it, once `want`
    of them were closed (or the time is up): {socket: bytes} of the closed."""
    sel = selectors.DefaultSelector()
    data = {s: b"" for s in socks}
    done = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while len(done) < want and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            s = key.fileobj
            try:
                d = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionResetError:
                d = b""
            if d:
                data[s] += d
            else:
                done[s] = data[s]
                sel.unregister(s)
    sel.close()
    return done


def connect_from(addr, port):
    s = socket.socket()
    s.bind((addr, 0))
    s.settimeout(axtest.TIMEOUT)
    s.connect(("127.0.0.1", port))
    return s


@t.test
def b_connections_over_the_per_ip_limit_are_refused_another_address_connects():
    srv = serve("--max-connections-per-ip", str(PER_IP))
    socks = open_many(srv.http_port, N_CONNS)
    try:
        closed = answers(socks, N_CONNS - PER_IP, axtest.TIMEOUT * SLOW * 4)
        t.eq(len(closed), N_CONNS - PER_IP, "connections refused (closed by the server)")
        heads = set(d.split(b"\r\n", 1)[0] for d in closed.values())
        t.eq(heads, {b"HTTP/1.1 429 Too Many Requests"}, "each refused with 429")
        one = next(iter(closed.values())).decode()
        t.ok(re.search(r"\r\nRetry-After: \d+\r\n", one), "with Retry-After: %r" % one)
        t.ok("too many connections from your address" in one, "and says why: %r" % one)
        open_ones = [s for s in socks if s not in closed]
        # the connections within the limit are served
        s = open_ones[0]
        s.setblocking(True)
        s.settimeout(axtest.TIMEOUT)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        t.ok(s.recv(4096).startswith(b"HTTP/1.1 200"), "a counted connection is served")
        # the other gateways count the same address: line chat, WebSocket
        lc = connect_from("127.0.0.1", srv.line_port)
        t.eq(lc.recv(4096), b"error: too many connections from your address: retry in 5 s\n",
             "line chat from 127.0.0.1: an error line")
        t.eq(lc.recv(4096), b"", "then closed")
        lc.close()
        import websockets

        async def ws_from(addr):
            try:
                async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port,
                                              local_addr=(addr, 0)) as ws:
                    return json.loads(await ws.recv())["type"]
            except websockets.exceptions.InvalidStatusCode as e:
                return e.status_code
        t.eq(asyncio.run(ws_from("127.0.0.1")), 429, "a WebSocket upgrade from 127.0.0.1")
        # another address is not affected
        t.eq(asyncio.run(ws_from("127.0.0.2")), "welcome", "a WebSocket from 127.0.0.2")
        o = connect_from("127.0.0.2", srv.http_port)
        o.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        t.ok(o.recv(4096).startswith(b"HTTP/1.1 200"), "HTTP from 127.0.0.2")
        o.close()
        lc = connect_from("127.0.0.2", srv.line_port)
        t.ok(lc.recv(4096).startswith(b"Welcome to axon chat"), "line chat from 127.0.0.2")
        lc.close()
        rc, out, _ = servutil.curl("--interface", "127.0.0.2", srv.base + "/healthz")
        t.eq((rc, out), (0, "ok\n"), "curl from 127.0.0.2")
        # (f) counted; (g) logged once for the address, not 900 times
        t.ok(refused(srv, "ip_connections") >= N_CONNS - PER_IP + 2,
             "axon_limit_refused_total{ip_connections}")
        t.ok(re.search(r"^axon_limit_connections \d+$", metrics(srv), re.M), "the gauges")
        lines = log_lines(srv, r"refused: over max_connections_per_ip")
        t.eq(len(lines), 1, "one log line for the address: %r" % lines[:3])
        t.ok(re.search(r"# http tcp://127\.0\.0\.1:\d+: refused: over max_connections_per_ip "
                       r"\(%d\)" % PER_IP, lines[0]), "with the address: %r" % lines[0])
    finally:
        for s in socks:
            s.close()
    finish(srv)


# ---- (c) HTTP publishes over the rate ---------------------------------------------------------

@t.test
def c_http_publish_over_the_rate_gets_429_with_retry_after():
    srv = serve("--msg-rate", "10/s burst 10")
    url = srv.base + "/api/publish/chat/lobby"
    args = []
    for k in range(30):  # one curl, one keep-alive connection
        args += (["--next"] if k else []) + [
            "-sS", "-o", "/dev/null", "-w", "%{http_code} %{num_connects}\\n",
            "-D", os.path.join(TMP, "h%d" % k), "--data-binary", "m%d" % k, url]
    p = subprocess.run(["curl"] + args, capture_output=True, timeout=30)
    codes = [line.split()[0] for line in p.stdout.decode().splitlines()]
    conns = sum(int(line.split()[1]) for line in p.stdout.decode().splitlines())
    t.eq(conns, 1, "curl used one connection")
    t.eq(codes[:10], ["200"] * 10, "the burst passes")
    t.ok("429" in codes[10:], "then 429: %r" % codes)
    k = codes.index("429")
    with open(os.path.join(TMP, "h%d" % k)) as f:
        head = f.read()
    t.ok(re.search(r"(?im)^Retry-After: [1-9]\d*\r?$", head), "Retry-After: %r" % head)
    time.sleep(1.2)
    rc, out, _ = servutil.curl("-d", "again", url)
    t.ok('"seq"' in out, "a new connection publishes: %r" % out)
    t.eq(refused(srv, "msg_rate"), codes.count("429"), "counted per refusal")
    t.eq(len(log_lines(srv, r"http tcp://127\.0\.0\.1:\d+: refused: over msg_rate")), 1,
         "logged once")
    finish(srv)


# ---- (d) UDP -------------------------------------------------------------------------------

@t.test
def d_udp_over_the_rate_gets_one_error_datagram():
    conf = os.path.join(TMP, "udp.conf")
    with open(conf, "w") as f:
        f.write("# per address: every datagram counts\nip_msg_rate 20/10s burst 20\n")
    srv = serve("-c", conf)
    u = servutil.Udp(srv)
    req = b"PUB dev/t " + b"x" * 50
    for _ in range(60):
        u.send(req)
    replies = []
    while True:
        d = u.quiet(1.0 * SLOW)
        if d is None:
            break
        replies.append(d)
    oks = [r for r in replies if r.startswith("OK ")]
    errs = [r for r in replies if r.startswith("ERR")]
    t.eq(len(oks), 20, "the burst is taken: %r" % replies[:3])
    t.eq(len(errs), 1, "one error datagram for the refused ones: %r" % errs)
    t.ok(len(errs[0]) + 1 <= len(req), "no longer than the request: %r" % errs[0])
    t.ok(errs[0].startswith("ERR too many"), "it says why: %r" % errs[0])
    time.sleep(0.6)  # a token every 500 ms
    t.ok(u.ask("PUB dev/t again").startswith("OK dev/t"), "the rate comes back")
    t.ok(refused(srv, "ip_msg_rate") in (39, 40), "every refused datagram counted")
    t.eq(len(log_lines(srv, r"# udp udp://127\.0\.0\.1:\d+: refused: over ip_msg_rate")), 1,
         "logged once")
    finish(srv)


# ---- (e) failed logins ------------------------------------------------------------------------

def line_login(addr, port, user, pw):
    s = connect_from(addr, port)
    lines = axtest.Lines(s)
    servutil.want(lines, "Sign in")
    lines.send("/login %s %s\n" % (user, pw))
    r = lines.line()
    lines.close()
    return r


@t.test
def e_failed_logins_lock_the_address_out_not_others():
    pw = os.path.join(TMP, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "carol", "right"], check=True,
                   capture_output=True)
    srv = serve("--password-file", pw, "--login-fail-rate", "3/min burst 3")
    port = srv.line_port
    t.ok("hello carol" in line_login("127.0.0.1", port, "carol", "right"), "the right password")
    for k in range(3):
        t.eq(line_login("127.0.0.1", port, "carol", "wrong%d" % k), "error: unauthorized",
             "wrong password %d" % (k + 1))
    t.eq(line_login("127.0.0.1", port, "carol", "right"), "error: unauthorized",
         "then even the right one is refused (not checked)")
    rc, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", "-u", "carol:right",
                               srv.base + "/api/topics")
    t.eq(out, "401", "HTTP Basic from the same address too")
    t.ok("hello carol" in line_login("127.0.0.2", port, "carol", "right"),
         "another address signs in")
    rc, out, _ = servutil.curl("--interface", "127.0.0.2", "-o", "/dev/null", "-w",
                               "%{http_code}", "-u", "carol:right", srv.base + "/api/topics")
    t.eq(out, "200", "HTTP Basic from another address")
    t.eq(refused(srv, "login_failures"), 2, "counted: the two refused unchecked")
    t.eq(len(log_lines(srv, r"login from tcp://127\.0\.0\.1:\d+: refused: over login_fail_rate")),
         1, "logged once")
    t.eq(len(log_lines(srv, r"line tcp://127\.0\.0\.1:\d+: login refused")), 1,
         "the refused client is logged once, not once per wrong password")
    finish(srv)


@t.test
def limits_in_the_config_file_and_bad_values():
    conf = os.path.join(TMP, "limits.conf")
    with open(conf, "w") as f:
        f.write("max_connections_per_ip 2\nmsg_rate 500/s burst 1000\n")
    srv = serve("-c", conf)
    time.sleep(0.3)  # the start-up probe's connection is gone
    a = connect_from("127.0.0.1", srv.line_port)
    b = connect_from("127.0.0.1", srv.line_port)
    c = connect_from("127.0.0.1", srv.line_port)
    t.ok(a.recv(100).startswith(b"Welcome"), "first")
    t.ok(b.recv(100).startswith(b"Welcome"), "second")
    t.ok(c.recv(100).startswith(b"error: too many connections"), "third refused")
    for s in (a, b, c):
        s.close()
    finish(srv)
    with open(conf, "w") as f:
        f.write("msg_rate 100/fortnight\n")
    p = subprocess.run([axtest.axon_bin(), "serve", "-c", conf], capture_output=True, timeout=10)
    t.eq(p.returncode, 2, "a bad rate does not start")
    t.ok("unknown unit 'fortnight'" in p.stderr.decode(), "and says why: %r" % p.stderr)
    p = subprocess.run([axtest.axon_bin(), "serve", "--max-connections-per-ip", "lots"],
                       capture_output=True, timeout=10)
    t.eq(p.returncode, 2, "a bad flag value does not start")
    t.ok("--max-connections-per-ip" in p.stderr.decode(), "and names the flag: %r" % p.stderr)


t.main()
