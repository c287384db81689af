#!/usr/bin/python3
"""axon serve refuses to be used against others (issue 13, section 3).

  (a) UDP without amplification: after 1,000 messages of 1,400 bytes, a
      `SUB # 0` from an address that has not shown it receives the hub's
      datagrams gets no more bytes back than it sent; after the cookie
      round trip the replay arrives at most 64 KiB per SUB datagram, each
      part ending in `MORE topic seq`; a cookie made for another
      address, or an expired one, subscribes nothing;
  (b) browsers: a WebSocket opening or a POST to the HTTP API with a
      foreign Origin (or Sec-Fetch-Site: cross-site) is refused with 403
      and publishes nothing; the hub's own origin, its loopback aliases,
      --allow-origin origins and clients that send no Origin (curl,
      programs) are served."""
import base64
import http.client
import json
import os
import shutil
import socket
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: no UDP amplification, browser origins", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-guard-")


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("127.0.0.1", 0))
    return s


def drain(s, seconds):
    """Every datagram that arrives within `seconds` of the last one."""
    got = []
    s.settimeout(seconds)
    while True:
        try:
            got.append((time.monotonic(), s.recv(65536)))
        except socket.timeout:
            return got


def fill(srv, n, size):
    """n messages of `size` bytes on topic big, over one HTTP connection."""
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=axtest.TIMEOUT)
    for i in range(n):
        c.request("POST", "/api/publish/big", body=b"%05d" % i + b"x" * (size - 5))
        r = c.getresponse()
        r.read()
        if r.status != 200:
            raise axtest.Failure("publish %d: %d" % (i, r.status))
    c.close()


def cookie_for(s, to, req="SUB # 0"):
    s.sendto(("%s COOKIE %s" % (req, "-" * 16)).encode(), to)
    s.settimeout(axtest.TIMEOUT)
    r = s.recv(100)
    if not r.startswith(b"COOKIE ") or len(r) != 24:
        raise axtest.Failure("wanted a cookie, got %r" % r)
    return r.split()[1].decode()


@t.test
def udp_replay_needs_a_verified_address():
    srv = servutil.Serve("-d", "none")
    to = ("127.0.0.1", srv.udp_port)
    fill(srv, 1000, 1400)

    s = udp_socket()
    s.sendto(b"SUB # 0", to)
    got = drain(s, 0.5)
    n = sum(len(d) for _, d in got)
    t.ok(n <= 7, "an unverified 'SUB # 0' (7 bytes) got %d bytes back: %r" % (n, got[:3]))

    # the padded form gets its cookie, no longer than the request, and nothing else
    req = b"SUB # 0 COOKIE " + b"-" * 16
    s.sendto(req, to)
    got = drain(s, 0.5)
    t.eq(len(got), 1, "one reply")
    t.ok(got[0][1].startswith(b"COOKIE ") and len(got[0][1]) <= len(req), repr(got[0][1]))
    cookie = got[0][1].split()[1]

    # another address showing that cookie: a new cookie, no subscription
    other = udp_socket()
    other.sendto(b"SUB # 0 COOKIE " + cookie, to)
    got = drain(other, 0.5)
    t.eq(len(got), 1, "one reply to a cookie made for another address")
    t.ok(got[0][1].startswith(b"COOKIE ") and got[0][1].split()[1] != cookie, repr(got[0][1]))
    other.sendto(b"SUB # 0 COOKIE 0123456789abcdef", to)
    t.ok(all(d.startswith(b"COOKIE ") for _, d in drain(other, 0.3)), "a made-up cookie")
    other.close()

    # the round trip done: the replay, at most 64 KiB (or 256 messages) in
    # answer to one datagram, then MORE <topic> <seq>; each SUB again (the
    # same request: a verified address needs no cookie) buys the next part
    s.sendto(b"SUB # 0 COOKIE " + cookie, to)
    got = drain(s, 1.0)
    t.eq(got[0][1], b"OK SUB # 60\n", "subscribed")
    part = [d for _, d in got if d.startswith(b"MSG big ")]
    n = sum(len(d) for _, d in got)
    t.ok(0 < len(part) < 1000, "one SUB got part of the replay: %d messages" % len(part))
    t.ok(n <= 65536 + 1500 + 200, "one SUB got %d bytes back (at most 64 KiB and one message)" % n)
    t.eq(got[-1][1], b"MORE big %d\n" % len(part), "it says where the replay paused")
    msgs, rounds = list(part), 1
    while len(msgs) < 1000 and rounds < 100:
        s.sendto(b"SUB # COOKIE " + b"-" * 16, to)  # verified: no cookie needed
        got = [d for _, d in drain(s, 0.5)]
        t.eq(got[0], b"OK SUB # 60\n", "a renewal of a verified address")
        part = [d for d in got if d.startswith(b"MSG big ")]
        if len(msgs) + len(part) < 1000:
            t.eq(got[-1], b"MORE big %d\n" % (len(msgs) + len(part)), "paused again")
        msgs += part
        rounds += 1
    t.eq(len(msgs), 1000, "the replay, in %d parts: 1,000 messages" % rounds)
    t.eq([int(d.split()[2]) for d in msgs], list(range(1, 1001)), "in order, none twice")
    t.ok(rounds >= 20, "1.4 MB came in %d parts of at most 64 KiB" % rounds)
    # live messages flow once the replay is over
    servutil.publish(srv, "big", "live")
    t.eq([d for _, d in drain(s, 0.5)], [b"MSG big 1001 http live\n"], "then live")
    s.close()
    srv.stop()


@t.test
def udp_cookie_expires():
    conf = os.path.join(TMP, "cookie.conf")
    with open(conf, "w") as f:
        f.write("udp_cookie 1\ndata_dir none\n")
    srv = servutil.Serve("-c", conf)
    to = ("127.0.0.1", srv.udp_port)
    servutil.publish(srv, "t/a", "kept")
    s = udp_socket()
    cookie = cookie_for(s, to, "SUB t/# 0")
    time.sleep(2.2)  # two windows of 1 s: the cookie is stale
    s.sendto(("SUB t/# 0 COOKIE %s" % cookie).encode(), to)
    got = drain(s, 0.5)
    t.eq(len(got), 1, "one reply to a stale cookie: %r" % got)
    t.ok(got[0][1].startswith(b"COOKIE "), "a fresh cookie, not a subscription: %r" % got[0][1])
    fresh = got[0][1].split()[1]
    s.sendto(b"SUB t/# 0 COOKIE " + fresh, to)
    got = [d for _, d in drain(s, 0.5)]
    t.eq(got, [b"OK SUB t/# 60\n", b"MSG t/a 1 http kept\n"], "with the fresh one")
    s.close()
    srv.stop()


# ---- browsers --------------------------------------------------------------------------


def ws_open(port, origin=None, fetch_site=None, host=None):
    """A WebSocket opening request; (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=axtest.TIMEOUT)
    h = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}
    if origin:
        h["Origin"] = origin
    if fetch_site:
        h["Sec-Fetch-Site"] = fetch_site
    if host:
        h["Host"] = host
    c.request("GET", "/ws", headers=h)
    r = c.getresponse()
    body = r.read() if r.status != 101 else b""
    c.close()
    return r.status, body.decode(errors="replace")


def post(port, topic, body, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=axtest.TIMEOUT)
    c.request("POST", "/api/publish/" + topic, body=body, headers=headers)
    r = c.getresponse()
    out = r.read().decode(errors="replace")
    c.close()
    return r.status, out


def history(srv, topic):
    _, out, _ = servutil.curl(srv.base + "/api/history/" + topic)
    return [m["payload"] for m in json.loads(out)["messages"]]


@t.test
def websocket_origin_checked():
    srv = servutil.Serve("-d", "none")
    p = srv.http_port
    st, body = ws_open(p, "http://evil.example")
    t.eq(st, 403, "a foreign origin")
    t.ok("Origin 'http://evil.example' is not" in body and "allow_origins" in body, body)
    t.eq(ws_open(p, "http://127.0.0.1:%d" % (p + 1))[0], 403, "a loopback page on another port")
    t.eq(ws_open(p, "null")[0], 403, "origin null")
    t.eq(ws_open(p, "http://127.0.0.1:%d" % p)[0], 101, "the hub's own origin")
    t.eq(ws_open(p, "http://localhost:%d" % p)[0], 101, "its loopback alias")
    t.eq(ws_open(p, "http://hub.example:%d" % p, host="hub.example:%d" % p)[0], 101,
         "the origin of the Host the request came to")
    t.eq(ws_open(p)[0], 101, "no Origin (not a browser)")
    srv.stop()
    srv = servutil.Serve("-d", "none", "--allow-origin", "https://app.example,http://x.test:81")
    p = srv.http_port
    t.eq(ws_open(p, "https://app.example")[0], 101, "an allowed origin")
    t.eq(ws_open(p, "http://x.test:81")[0], 101, "the second allowed origin")
    t.eq(ws_open(p, "http://app.example")[0], 403, "another scheme is another origin")
    t.eq(ws_open(p, "http://127.0.0.1:%d" % p)[0], 101, "the hub's own origin still")
    srv.stop()


@t.test
def cross_site_post_refused():
    srv = servutil.Serve("-d", "none")
    p = srv.http_port
    st, body = post(p, "chat/lobby", "csrf", {"Origin": "http://evil.example",
                                               "Content-Type": "text/plain"})
    t.eq(st, 403, "a cross-site text/plain POST")
    t.ok("cross-origin request refused" in body, body)
    st, _ = post(p, "chat/lobby", "csrf2", {"Sec-Fetch-Site": "cross-site",
                                            "Content-Type": "text/plain"})
    t.eq(st, 403, "Sec-Fetch-Site: cross-site without Origin")
    t.eq(history(srv, "chat/lobby"), [], "nothing published")
    t.eq(post(p, "chat/lobby", "same", {"Origin": "http://127.0.0.1:%d" % p,
                                        "Sec-Fetch-Site": "same-origin"})[0], 200, "same origin")
    t.eq(post(p, "chat/lobby", "curl", {})[0], 200, "no Origin (curl)")
    t.eq(history(srv, "chat/lobby"), ["same", "curl"], "those two published")
    srv.stop()


try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
