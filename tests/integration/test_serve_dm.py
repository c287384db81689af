#!/usr/bin/python3
"""test_serve_dm: direct messages and private topics in `axon serve`
(issue 13), with real clients: a TCP socket on the line chat, Python
websockets, curl for SSE and the HTTP API, a UDP socket.

- With auth (tokens from `axon token`, a mosquitto_passwd file): alice
  sends bob a direct message from the line chat (`/msg bob ...`) and from
  a WebSocket (a publish to user/bob/inbox); bob gets both, in his line
  session as `[dm] alice: ...` and in his WebSocket session (subscribed to
  his inbox by the server), from alice whatever she claims; carol may not
  subscribe to `#`, `user/#` or bob's inbox, nor read its history, and
  gets none of it; a bad name and a token without the inbox grant get
  the protocol's error.
- Without auth (names chosen freely): the same DMs reach bob only; a
  client named otherwise may not subscribe to user/bob/..., and its `#`
  subscriptions (WebSocket, SSE, UDP) carry the room's messages but not
  bob's inbox.
- An SSE stream opened with a 2-second token ends with `event: error`.
- Refused sign-ins are logged once per client, with its address, on the
  line chat, WebSocket, HTTP and UDP gateways."""
import asyncio
import base64
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse

import axtest
import servutil

t = axtest.Tests("axon serve: direct messages and private topics", alarm=150)
TMP = tempfile.mkdtemp(prefix="axon-dm-")
SECRET = os.path.join(TMP, "secret")
with open(SECRET, "wb") as f:
    f.write(base64.b64encode(os.urandom(48)) + b"\n")
os.chmod(SECRET, 0o600)
PASSWD = os.path.join(TMP, "passwd")
subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD, "carol", "carol pw"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def token(user, *args):
    p = subprocess.run([axtest.axon_bin(), "token", "-s", SECRET, "-u", user] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0:
        raise axtest.Failure("axon token: %s" % p.stderr.decode())
    return p.stdout.decode().strip()


DM = ["--pub", "chat/#", "--pub", "user/+/inbox", "--sub", "chat/#"]
ALICE = token("alice", *DM)
BOB = token("bob", *DM)
DAVE = token("dave", "--pub", "chat/#", "--sub", "chat/#")  # no inbox grant


def serve(*extra):
    return servutil.Serve("--auth-secret", SECRET, "--password-file", PASSWD, *extra)


def line(srv, first, greeting):
    """A line-chat socket; `first` is the sign-in line (or the name)."""
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(c, "Welcome")
    c.send(first + "\n")
    servutil.want(c, greeting)
    return c


def quiet(c, seconds=0.5):
    """Every line that arrives within `seconds`."""
    got = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        try:
            got.append(c.line(timeout=left))
        except Exception:
            return got


def api(srv, path, *args):
    rc, out, err = servutil.curl("-o", "-", "-w", "\n%{http_code}", *args, srv.base + path)
    if rc != 0:
        raise axtest.Failure("curl %s: %s" % (path, err))
    body, _, code = out.rpartition("\n")
    return int(code), body


def ws_run(srv, coro):
    import websockets

    async def main():
        return await coro(websockets, "ws://127.0.0.1:%d/ws" % srv.http_port)
    return asyncio.run(main())


async def ask(ws, req):
    await ws.send(json.dumps(req))
    while True:
        r = json.loads(await asyncio.wait_for(ws.recv(), axtest.TIMEOUT))
        if r["type"] in ("ok", "error", "history", "presence", "pong"):
            return r


async def messages(ws, seconds):
    """The message envelopes that arrive within `seconds`."""
    got = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return got
        try:
            r = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            return got
        if r["type"] == "message":
            got.append((r["topic"], r["sender"], r["payload"]))


def sse_events(srv, query, seconds, headers=()):
    """Every SSE `data:` line (as JSON) that comes within `seconds`."""
    args = ["curl", "-sN", "--max-time", str(seconds)]
    for h in headers:
        args += ["-H", h]
    p = subprocess.run(args + [srv.base + "/sse?" + query], capture_output=True,
                       timeout=seconds + 10)
    return [json.loads(x[6:]) for x in p.stdout.decode().splitlines() if x.startswith("data: ")]


# ---- with authentication ------------------------------------------------------------------

@t.test
def dm_with_auth_line_and_websocket():
    srv = serve()
    alice = line(srv, "/token " + ALICE, "hello alice")
    bob = line(srv, "/token " + BOB, "hello bob")
    carol = line(srv, "/login carol carol pw", "hello carol")
    dave = line(srv, "/token " + DAVE, "hello dave")
    quiet(bob, 0.3)
    quiet(carol, 0.3)

    async def go(websockets, url):
        basic = "Basic " + base64.b64encode(b"carol:carol pw").decode()
        async with websockets.connect(url + "?token=" + ALICE) as a, \
                websockets.connect(url + "?token=" + BOB) as b, \
                websockets.connect(url, extra_headers={"Authorization": basic}) as c:
            for w in (a, b, c):
                await w.recv()  # welcome
            # carol: no way into bob's inbox
            for f in ("#", "user/#", "user/+/inbox", "user/bob/inbox", "+/bob/#"):
                r = await ask(c, {"type": "subscribe", "topic": f})
                t.eq(r["type"], "error", "carol may not subscribe to %s: %r" % (f, r))
            t.eq((await ask(c, {"type": "subscribe", "topic": "chat/#"}))["type"], "ok",
                 "carol subscribes to chat/#")
            r = await ask(c, {"type": "history", "topic": "user/bob/inbox"})
            t.eq(r["type"], "error", "carol may not read bob's inbox history")

            # from the line chat
            alice.send("/msg bob hello bob, from the line\n")
            t.eq(servutil.want(alice, "[dm to bob]"), "[dm to bob] alice: hello bob, from the line",
                 "alice's confirmation")
            t.eq(servutil.want(bob, "[dm]"), "[dm] alice: hello bob, from the line",
                 "bob's line session shows the DM")
            got = await messages(b, 1.0)
            t.eq(got, [("user/bob/inbox", "alice", "hello bob, from the line")],
                 "bob's WebSocket session, subscribed to its inbox by the server")

            # from a WebSocket, claiming nothing: the sender is the token's
            r = await ask(a, {"type": "publish", "topic": "user/bob/inbox",
                              "payload": "hello bob, from a browser", "sender": "carol"})
            t.eq(r["type"], "ok", "alice publishes to user/bob/inbox: %r" % r)
            t.eq(servutil.want(bob, "[dm]"), "[dm] alice: hello bob, from a browser",
                 "bob's line session, from alice")
            got = await messages(b, 1.0)
            t.eq(got, [("user/bob/inbox", "alice", "hello bob, from a browser")], "bob's WebSocket")

            # a marker in the room: carol sees it, and it comes after the DMs
            alice.send("marker\n")
            t.eq(await messages(c, 1.0), [("chat/lobby", "alice", "marker")],
                 "carol (subscribed to chat/#) got the room's marker and no DM")
            t.eq((await messages(a, 0.3)), [], "alice's WebSocket got nothing of bob's inbox")

            # errors: a bad name, no inbox grant
            alice.send("/msg bad/name hi\n")
            t.eq(servutil.want(alice, "error"), "error: 'bad/name' is not a user name", "a bad name")
            alice.send("/msg bob\n")
            t.eq(servutil.want(alice, "usage"), "* usage: /msg NAME TEXT", "no text")
            dave.send("/msg bob from dave\n")
            t.ok(servutil.want(dave, "error").startswith("error: forbidden"),
                 "a token without user/+/inbox may not send DMs")
            r = await ask(c, {"type": "publish", "topic": "user/bob/inbox", "payload": "x",
                              "sender": "alice"})
            t.eq(r["type"], "ok", "carol (password, no ACL file: readwrite) may send one")
            t.eq(servutil.want(bob, "[dm]"), "[dm] carol: x", "as carol, whatever she claims")
    ws_run(srv, go)
    t.eq([x for x in quiet(carol, 0.5) if "[dm" in x], [], "carol's line session got no DM")

    # HTTP and SSE: bob's inbox is bob's
    carol_basic = ["-u", "carol:carol pw"]
    t.eq(api(srv, "/api/history/user/bob/inbox", *carol_basic)[0], 403, "carol's history: 403")
    code, body = api(srv, "/api/history/user/bob/inbox", "-H", "Authorization: Bearer " + BOB)
    t.eq((code, [m["payload"] for m in json.loads(body)["messages"]]),
         (200, ["hello bob, from the line", "hello bob, from a browser", "x"]),
         "bob reads his inbox's history")
    t.eq(api(srv, "/sse?topic=user/%23", *carol_basic, "--max-time", "3")[0], 403,
         "carol's SSE on user/#: 403")
    names = [x["topic"] for x in json.loads(api(srv, "/api/topics", *carol_basic)[1])["topics"]]
    t.ok(not any(n.startswith("user/") for n in names), "carol's topic list hides inboxes: %r" % names)
    u = servutil.Udp(srv)
    t.eq(u.ask("AUTH " + token("carol", "--sub", "#")), "OK AUTH carol 60", "carol over UDP")
    t.ok(u.ask("SUB user/bob/inbox 0").startswith("ERR forbidden"), "UDP SUB of bob's inbox")
    for c in (alice, bob, carol, dave):
        c.close()
    srv.stop()


# ---- without authentication ------------------------------------------------------------

@t.test
def dm_without_auth():
    srv = servutil.Serve()
    alice = srv.line_client("alice")
    bob = srv.line_client("bob")
    carol = srv.line_client("carol")
    quiet(bob, 0.3)
    quiet(carol, 0.3)
    u = servutil.Udp(srv)
    t.eq(u.sub("SUB # 0"), "OK SUB # 60", "a UDP subscriber to #")
    t.ok(u.ask("SUB user/bob/inbox").startswith("ERR forbidden"), "UDP SUB of bob's inbox")

    async def go(websockets, url):
        async with websockets.connect(url) as e, websockets.connect(url) as b2:
            await e.recv()
            await b2.recv()
            t.eq((await ask(e, {"type": "nick", "name": "eve"}))["type"], "ok", "eve")
            t.eq((await ask(b2, {"type": "nick", "name": "bob"}))["type"], "ok", "a second bob")
            for f in ("user/#", "user/+/inbox", "user/bob/inbox", "user/bob/#"):
                r = await ask(e, {"type": "subscribe", "topic": f})
                t.eq(r["type"], "error", "eve may not subscribe to %s: %r" % (f, r))
            t.eq((await ask(e, {"type": "history", "topic": "user/bob/inbox"}))["type"], "error",
                 "eve may not read bob's inbox history")
            t.eq((await ask(e, {"type": "subscribe", "topic": "#"}))["type"], "ok",
                 "eve subscribes to # (what she may not read is left out)")
            t.eq((await ask(e, {"type": "subscribe", "topic": "user/eve/inbox"}))["type"], "ok",
                 "eve subscribes to her own inbox")

            alice.send("/msg bob hi bob\n")
            servutil.want(alice, "[dm to bob] alice: hi bob")
            t.eq(servutil.want(bob, "[dm]"), "[dm] alice: hi bob", "bob's line session")
            t.eq(await messages(b2, 1.0), [("user/bob/inbox", "alice", "hi bob")],
                 "the WebSocket client named bob (subscribed by its nick)")
            r = await ask(b2, {"type": "publish", "topic": "user/alice/inbox", "payload": "hi alice"})
            t.eq(r["type"], "ok", "a DM back from the WebSocket")
            t.eq(servutil.want(alice, "[dm]"), "[dm] bob: hi alice", "alice's line session")
            alice.send("marker\n")
            got = await messages(e, 1.0)
            t.eq(got, [("chat/lobby", "alice", "marker")], "eve's # got the marker, no DM")
    ws_run(srv, go)

    dgrams = []
    while True:
        d = u.quiet(0.5)
        if d is None:
            break
        dgrams.append(d)
    t.ok(any(d.startswith("MSG chat/lobby") for d in dgrams), "UDP # got the marker: %r" % dgrams)
    t.ok(not any("inbox" in d for d in dgrams), "UDP # got no DM: %r" % dgrams)
    evs = sse_events(srv, "topic=%23&since=0", 2)
    t.ok([e["payload"] for e in evs if e.get("type") == "message"] == ["marker"],
         "SSE # from 0: the marker and no DM: %r" % evs)
    t.eq(api(srv, "/sse?topic=user/bob/inbox", "--max-time", "3")[0], 403, "SSE of bob's inbox")
    t.eq(api(srv, "/api/history/user/bob/inbox")[0], 403, "HTTP history of bob's inbox")
    t.eq([x for x in quiet(carol, 0.5) if "[dm" in x], [], "carol's line session got no DM")
    # a name change moves the inbox: bob is now robert, and DMs to bob miss him
    bob.send("/nick robert\n")
    servutil.want(bob, "you are now robert")
    alice.send("/msg bob are you there\n")
    alice.send("/msg robert and now\n")
    t.eq(servutil.want(bob, "[dm]"), "[dm] alice: and now", "the inbox followed the name")
    for c in (alice, bob, carol):
        c.close()
    srv.stop()


# ---- SSE and token expiry --------------------------------------------------------------

@t.test
def sse_stream_ends_when_its_token_expires():
    srv = serve()
    short = token("erin", "--sub", "chat/#", "--ttl", "2")
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    c.request("GET", "/sse?topic=" + urllib.parse.quote("chat/#", safe=""),
              headers={"Authorization": "Bearer " + short})
    r = c.getresponse()
    t.eq(r.status, 200, "the stream opens")
    start = time.monotonic()
    servutil.curl("-H", "Authorization: Bearer " + BOB, "-d", "while valid",
                  srv.base + "/api/publish/chat/lobby")
    body = b""
    try:
        while True:
            chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            body += chunk
    except socket.timeout:
        raise axtest.Failure("the stream did not end; got %r" % body)
    took = time.monotonic() - start
    text = body.decode()
    t.ok("while valid" in text, "a message while the token was valid")
    t.ok(text.rstrip().endswith('event: error\ndata: {"type":"error","error":"token expired"}'),
         "the last event says why: %r" % text[-120:])
    t.ok(took < 6, "ended %.1f s after opening (token: 2 s)" % took)
    c.close()
    srv.stop()


# ---- refused sign-ins are logged once per client -----------------------------------------

@t.test
def refused_logins_logged_once_per_client():
    srv = serve()
    c = line(srv, "/login carol wrong", "error: unauthorized")
    for _ in range(4):
        c.send("/login carol wrong\n")
        servutil.want(c, "error: unauthorized")
    c.close()
    for _ in range(3):
        t.eq(api(srv, "/api/history/chat/lobby", "-u", "carol:wrong")[0], 401, "HTTP 401")

    async def go(websockets, url):
        for _ in range(3):
            async with websockets.connect(url) as w:
                await w.recv()
                r = await ask(w, {"type": "auth", "token": "not.a.token"})
                t.eq(r["type"], "error", "WebSocket auth refused")
    ws_run(srv, go)
    u = servutil.Udp(srv)
    for _ in range(3):
        t.ok(u.ask("AUTH not.a.token." + "x" * 40).startswith("ERR unauthorized"), "UDP AUTH refused")
    time.sleep(0.3)
    log = srv.stderr().splitlines()
    for gw in ("line", "http", "websocket", "udp"):
        mine = [x for x in log if "not logged for" in x and
                (" %s tcp://127.0.0.1:" % gw in x or " %s udp://127.0.0.1:" % gw in x)]
        t.eq(len(mine), 1, "%s: one log line for the client's refusals: %r" % (gw, log))
    t.ok(not any("wrong" in x for x in log), "no password in the log: %r" % log)
    # but each refusal is counted
    metrics = api(srv, "/metrics")[1]
    for gw, n in (("line", 5), ("http", 3), ("websocket", 3), ("udp", 3)):
        t.ok('axon_auth_refused_total{gateway="%s"} %d\n' % (gw, n) in metrics,
             "/metrics counts %d refusals on %s: %r" % (n, gw, [
                 x for x in metrics.splitlines() if x.startswith("axon_auth_refused")]))
    srv.stop()


if __name__ == "__main__":
    t.main()
