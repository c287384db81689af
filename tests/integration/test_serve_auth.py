#!/usr/bin/python3
"""test_serve_auth: `axon serve` with --auth-secret and --password-file,
through real clients on every gateway (curl for the HTTP API and SSE,
Python websockets, a TCP socket for line chat, a UDP socket): without
credentials writes are refused with the protocol's error; a token limited
to chat/lobby publishes there and not to chat/ops, and may not subscribe
to '#'; the sender is the signed-in name whatever the client says; an
expired token is refused, and one that expires while connected ends the
session unless refreshed; history of a topic the user may not read is
refused; a narrower token takes effect in the hub's live delivery.  And
protected mode: a listener off loopback with no auth refuses to start."""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: authentication and permissions", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-auth-")
SECRET = os.path.join(TMP, "secret")
KEY = base64.b64encode(os.urandom(48))
with open(SECRET, "wb") as f:
    f.write(KEY + b"\n")
os.chmod(SECRET, 0o600)
PASSWD = os.path.join(TMP, "passwd")
subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD, "carol", "s3cret pw"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def token(user, *args):
    p = subprocess.run([axtest.axon_bin(), "token", "-s", SECRET, "-u", user] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0:
        raise axtest.Failure("axon token: %s" % p.stderr.decode())
    return p.stdout.decode().strip()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def expired_token(user):
    """Signed with the right key, expired an hour ago (past any leeway)."""
    now = int(time.time())
    h = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64url(json.dumps({"sub": user, "exp": now - 3600,
                           "axon": {"pub": ["chat/#"], "sub": ["chat/#"]}}).encode())
    return h + "." + p + "." + b64url(hmac.new(KEY, (h + "." + p).encode(),
                                                hashlib.sha256).digest())


ALICE = token("alice", "--pub", "chat/lobby", "--sub", "chat/lobby")
BOB = token("bob", "--pub", "chat/#", "--sub", "chat/#")
EXPIRED = expired_token("alice")


def serve(*extra):
    return servutil.Serve("--auth-secret", SECRET, "--password-file", PASSWD, *extra)


def http(srv, path, *args, data=None):
    """curl: (status, body)."""
    rc, out, err = servutil.curl("-o", "-", "-w", "\n%{http_code}", *args, srv.base + path,
                                 data=data)
    if rc != 0:
        raise axtest.Failure("curl %s: %s" % (path, err))
    body, _, code = out.rpartition("\n")
    return int(code), body


def bearer(tok):
    return ["-H", "Authorization: Bearer " + tok]


def wait_history(srv, topic, n, tok=None):
    """(sender, payload) of topic's messages, once there are n (line chat
    has no acknowledgement to wait for)."""
    deadline = time.monotonic() + axtest.TIMEOUT
    while True:
        _, body = http(srv, "/api/history/" + topic, *bearer(tok or BOB))
        got = [(m["sender"], m["payload"]) for m in json.loads(body).get("messages", [])]
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


# ---- protected mode -----------------------------------------------------------------

@t.test
def protected_mode_refuses_a_public_listener_without_auth():
    port = axtest.free_port(host="0.0.0.0")
    base = [axtest.axon_bin(), "serve", "-q", "--line", "off", "--udp", "off", "--mqtt", "off",
            "--irc", "off", "--rtmp", "off",
            "--data",
            tempfile.mkdtemp(prefix="axon-auth-"), "--http", "0.0.0.0:%d" % port]
    p = subprocess.run(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    err = p.stderr.decode()
    t.eq(p.returncode, 1, "exit status without auth (stderr %r)" % err)
    for words in ("not a loopback address", "--auth-secret", "--anonymous", "127.0.0.1"):
        t.ok(words in err, "the message says %r: %r" % (words, err))
    for extra in (["--auth-secret", SECRET], ["--anonymous", "read"]):
        srv = axtest.Proc(base + extra)
        deadline = time.monotonic() + axtest.TIMEOUT
        while True:
            if not srv.running():
                raise axtest.Failure("with %s it did not start%s" % (extra, srv.err_note()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise axtest.Failure("with %s nothing listens" % extra)
                time.sleep(0.02)
        srv.stop()


@t.test
def protected_mode_covers_every_gateway():
    """Every listener counts, not only HTTP's: each gateway alone on a
    public address (IPv4 or IPv6 wildcard) refuses the start and names it."""
    data = tempfile.mkdtemp(prefix="axon-auth-")
    for flag in ("--line", "--udp", "--mqtt", "--irc", "--rtmp"):
        for host in ("0.0.0.0", "[::]"):
            port = axtest.free_port(socket.SOCK_DGRAM if flag == "--udp" else socket.SOCK_STREAM)
            args = {"--http": "127.0.0.1:%d" % axtest.free_port()}
            for other in ("--line", "--udp", "--mqtt", "--irc", "--rtmp"):
                args[other] = "off"
            args[flag] = "%s:%d" % (host, port)
            cmd = [axtest.axon_bin(), "serve", "-q", "--data", data]
            for k, v in args.items():
                cmd += [k, v]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            err = p.stderr.decode()
            t.ok(p.returncode == 1 and "not a loopback address" in err and str(port) in err,
                 "%s %s:%d refuses to start: rc %d, %r" % (flag, host, port, p.returncode, err))


@t.test
def loopback_without_auth_is_unchanged():
    srv = servutil.Serve()
    code, _ = http(srv, "/api/publish/chat/lobby", "--data-binary", "hi")
    t.eq(code, 200, "anonymous publish on loopback")
    srv.stop()


@t.test
def bad_auth_files_refuse_to_start():
    p = subprocess.run([axtest.axon_bin(), "serve", "-q", "--data", "none", "--auth-secret",
                        os.path.join(TMP, "nope")], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    t.eq(p.returncode, 1, "exit status")
    t.ok("nope" in p.stderr.decode(), "names the file: %r" % p.stderr.decode())


# ---- HTTP API and SSE ----------------------------------------------------------------

@t.test
def http_api_needs_credentials_and_permissions():
    srv = serve()
    rc, out, _ = servutil.curl("-i", "-d", "x", srv.base + "/api/publish/chat/lobby")
    t.ok(" 401 " in out.split("\r\n")[0], "no credentials: 401: %r" % out[:80])
    t.ok("www-authenticate: bearer" in out.lower(), "WWW-Authenticate: %r" % out)
    t.eq(http(srv, "/api/publish/chat/lobby", *bearer(ALICE), "-H", "X-Sender: mallory",
              "--data-binary", "hello")[0], 200, "alice publishes to chat/lobby")
    t.eq(http(srv, "/api/publish/chat/ops", *bearer(ALICE), "--data-binary", "x")[0], 403,
         "alice may not publish to chat/ops")
    t.eq(http(srv, "/api/publish/chat/lobby", *bearer(EXPIRED), "--data-binary", "x")[0], 401,
         "an expired token")
    t.eq(http(srv, "/api/publish/chat/lobby", *bearer(ALICE[:-2] + "xx"),
              "--data-binary", "x")[0], 401, "a forged signature")
    code, body = http(srv, "/api/history/chat/lobby", *bearer(BOB))
    t.eq(code, 200, "bob reads the lobby's history")
    msgs = json.loads(body)["messages"]
    t.eq([(m["sender"], m["payload"]) for m in msgs], [("alice", "hello")],
         "the sender is alice, not the X-Sender she gave")
    t.eq(http(srv, "/api/history/chat/ops", *bearer(ALICE))[0], 403,
         "alice may not read chat/ops's history")
    t.eq(http(srv, "/api/history/chat/lobby")[0], 401, "history without credentials")
    t.eq(http(srv, "/api/publish/chat/ops?sender=bob", "-u", "carol:s3cret pw",
              "--data-binary", "from carol")[0], 200, "carol's password (Basic)")
    t.eq(http(srv, "/api/publish/chat/ops", "-u", "carol:wrong", "--data-binary", "x")[0], 401,
         "a wrong password")
    code, body = http(srv, "/api/history/chat/ops", "-u", "carol:s3cret pw")
    t.eq([m["sender"] for m in json.loads(body)["messages"]], ["carol"],
         "?sender= is ignored for a signed-in user")
    srv.stop()


@t.test
def sse_checks_the_token_and_the_filter():
    srv = serve()
    t.eq(http(srv, "/sse?topic=chat/lobby", "--max-time", "2")[0], 401, "no token: 401")
    t.eq(http(srv, "/sse?topic=%23&token=" + ALICE, "--max-time", "2")[0], 403,
         "alice may not subscribe to #")
    t.eq(http(srv, "/sse?topic=chat/ops&token=" + ALICE, "--max-time", "2")[0], 403,
         "nor to chat/ops")
    ev = servutil.Sse(srv, "topic=chat/lobby&token=" + ALICE)
    ev.wait_output(lambda o: b"retry:" in o, what="the stream's start")
    http(srv, "/api/publish/chat/lobby", *bearer(BOB), "--data-binary", "to sse")
    got = ev.wait_events(1)
    t.eq((got[0]["json"]["sender"], got[0]["json"]["payload"]), ("bob", "to sse"), "the event")
    ev.stop()
    srv.stop()


@t.test
def metrics_from_loopback_by_default_and_admin_when_asked():
    srv = serve("--metrics-access", "admin")
    t.eq(http(srv, "/metrics")[0], 401, "admin mode, no token")
    t.eq(http(srv, "/metrics", *bearer(ALICE))[0], 403, "admin mode, not an admin")
    t.eq(http(srv, "/metrics", *bearer(token("root", "--admin")))[0], 200, "an admin")
    t.eq(http(srv, "/dashboard", *bearer(ALICE))[0], 403, "the dashboard too")
    srv.stop()
    srv = serve()
    t.eq(http(srv, "/metrics")[0], 200, "loopback (the default)")
    srv.stop()


# ---- WebSocket -------------------------------------------------------------------------

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


async def next_msg(ws, timeout=axtest.TIMEOUT):
    while True:
        r = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if r["type"] == "message":
            return r


@t.test
def websocket_credentials_and_permissions():
    srv = serve()

    async def go(websockets, url):
        async with websockets.connect(url) as ws:  # no credentials
            await ws.recv()  # welcome
            r = await ask(ws, {"type": "subscribe", "topic": "chat/lobby"})
            t.eq(r["type"], "error", "unauthenticated subscribe")
            try:
                await asyncio.wait_for(ws.recv(), axtest.TIMEOUT)
                raise axtest.Failure("still open")
            except websockets.ConnectionClosed as e:
                t.eq(e.rcvd.code, 1008, "closed with 1008")
        try:
            async with websockets.connect(url + "?token=" + EXPIRED):
                raise axtest.Failure("an expired token upgraded")
        except websockets.InvalidStatusCode as e:
            t.eq(e.status_code, 401, "an expired token: 401")
        async with websockets.connect(url + "?token=" + ALICE) as a, \
                websockets.connect(url, extra_headers={"Authorization": "Bearer " + BOB}) \
                as b:
            await a.recv()
            await b.recv()
            t.eq((await ask(a, {"type": "subscribe", "topic": "#"}))["type"], "error",
                 "alice may not subscribe to #")
            t.eq((await ask(a, {"type": "publish", "topic": "chat/ops", "payload": "x"}))["type"],
                 "error", "alice may not publish to chat/ops")
            t.eq((await ask(a, {"type": "history", "topic": "chat/ops"}))["type"], "error",
                 "alice may not read chat/ops's history")
            t.eq((await ask(a, {"type": "nick", "name": "bob"}))["type"], "error",
                 "alice may not take another name")
            t.eq((await ask(b, {"type": "subscribe", "topic": "chat/#"}))["type"], "ok", "bob")
            t.eq((await ask(a, {"type": "publish", "topic": "chat/lobby", "payload": "hi"}))
                 ["type"], "ok", "alice publishes to the lobby")
            m = await next_msg(b)
            t.eq((m["sender"], m["payload"]), ("alice", "hi"), "bob gets it from alice")
        async with websockets.connect(url) as c:  # the first message is the token
            await c.recv()
            r = await ask(c, {"type": "auth", "token": ALICE})
            t.eq((r["type"], r.get("name")), ("ok", "alice"), "auth message")
            t.eq((await ask(c, {"type": "subscribe", "topic": "chat/lobby"}))["type"], "ok",
                 "then alice subscribes")
    ws_run(srv, go)
    srv.stop()


@t.test
def websocket_token_expiry_and_refresh():
    srv = serve()

    async def go(websockets, url):
        # made before: under load `axon token` may take a while
        short = token("dave", "--sub", "chat/#", "--ttl", "3")
        eve_short = token("eve", "--sub", "chat/#", "--ttl", "3")
        eve_long = token("eve", "--sub", "chat/#")
        async with websockets.connect(url + "?token=" + short) as ws, \
                websockets.connect(url + "?token=" + eve_short) as kept:
            await ws.recv()
            await kept.recv()
            r = await ask(kept, {"type": "auth", "token": eve_long})
            t.eq(r["type"], "ok", "eve refreshes her token in-band")
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 8)
            except websockets.ConnectionClosed as e:
                t.eq((e.rcvd.code, e.rcvd.reason), (1008, "token expired"), "dave's session ends")
            await asyncio.sleep(1.5)
            t.eq((await ask(kept, {"type": "ping"}))["type"], "pong", "eve's goes on")
    ws_run(srv, go)
    srv.stop()


@t.test
def hub_live_delivery_follows_a_narrower_token():
    """A refreshed token that grants less is applied by the hub itself, on
    the subscription made under the wider one."""
    srv = serve()

    async def go(websockets, url):
        async with websockets.connect(url + "?token=" + BOB) as b:
            await b.recv()
            t.eq((await ask(b, {"type": "subscribe", "topic": "chat/#"}))["type"], "ok", "sub")
            narrow = token("bob", "--sub", "chat/lobby")
            t.eq((await ask(b, {"type": "auth", "token": narrow}))["type"], "ok", "narrower")
            for topic in ("chat/ops", "chat/lobby"):
                http(srv, "/api/publish/" + topic, *bearer(BOB), "--data-binary", topic)
            m = await next_msg(b)
            t.eq(m["topic"], "chat/lobby", "chat/ops is no longer delivered")
            t.eq((await ask(b, {"type": "subscribe", "topic": "chat/ops", "since": 0}))["type"],
                 "error", "nor can it be replayed")
    ws_run(srv, go)
    srv.stop()


# ---- line chat -------------------------------------------------------------------------

@t.test
def line_chat_sign_in():
    srv = serve()
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(c, "/login NAME PASSWORD or /token TOKEN")
    c.send("mallory\n")
    servutil.want(c, "error: unauthorized")
    c.send("/token " + EXPIRED + "\n")
    servutil.want(c, "error: unauthorized")
    c.send("/token " + ALICE + "\n")
    servutil.want(c, "hello alice")
    c.send("/nick bob\n")
    servutil.want(c, "error: your name is the one you signed in with")
    c.send("/join ops\n")
    servutil.want(c, "error: forbidden")
    c.send("hi from the line\n")
    d = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(d, "Sign in")
    d.send("/login carol wrong\n")
    servutil.want(d, "error: unauthorized")
    d.send("/login carol s3cret pw\n")
    servutil.want(d, "hello carol")
    d.close()
    c.close()
    t.eq(wait_history(srv, "chat/lobby", 1), [("alice", "hi from the line")],
         "the line message is alice's")
    srv.stop()


@t.test
def line_chat_takes_any_signed_in_name():
    """A token's name the line chat would not take as a typed name (too
    long, other characters) is still the name: never asked again."""
    srv = serve()
    name = "Zoë Müller-Lüdenscheidt of the long name"
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(c, "Sign in")
    c.send("/token " + token(name, "--pub", "chat/lobby", "--sub", "chat/lobby") + "\n")
    servutil.want(c, "hello " + name)
    c.send("mallory\n")
    t.eq(wait_history(srv, "chat/lobby", 1), [(name, "mallory")],
         "the line is a message from the token's user")
    c.close()
    srv.stop()


@t.test
def line_chat_token_expiry_ends_the_session():
    srv = serve()
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(c, "Sign in")
    c.send("/token " + token("dave", "--sub", "chat/#", "--ttl", "1") + "\n")
    servutil.want(c, "hello dave")
    servutil.want(c, "error: token expired", timeout=5)
    t.ok(c.closed_by_peer(), "closed after")
    srv.stop()


# ---- UDP -------------------------------------------------------------------------------

@t.test
def udp_auth_lease():
    srv = serve()
    u = servutil.Udp(srv)
    # long enough for the whole reply: an address not verified by a cookie
    # gets no reply longer than its request (docs/protocol.md)
    t.ok(u.ask("PUB chat/lobby " + "x" * 40).startswith("ERR unauthorized"), "PUB without AUTH")
    t.ok(u.ask("SUB chat/lobby").startswith("ERR unauthorized"), "SUB without AUTH")
    t.ok(u.ask("AUTH " + EXPIRED).startswith("ERR unauthorized"), "an expired token")
    t.eq(u.ask("AUTH " + ALICE), "OK AUTH alice 60", "AUTH")
    t.ok(u.ask("PUB chat/ops x").startswith("ERR forbidden"), "PUB to chat/ops")
    t.ok(u.ask("SUB #").startswith("ERR forbidden"), "SUB #")
    t.ok(u.ask("PUB chat/lobby from udp").startswith("OK chat/lobby"), "PUB to chat/lobby")
    _, body = http(srv, "/api/history/chat/lobby", *bearer(BOB))
    t.eq([m["sender"] for m in json.loads(body)["messages"]], ["alice"], "the sender is alice")
    srv.stop()


@t.test
def anonymous_read_only():
    srv = serve("--anonymous", "read")
    t.eq(http(srv, "/api/publish/chat/lobby", "--data-binary", "x")[0], 403, "anonymous write")
    http(srv, "/api/publish/chat/lobby", *bearer(ALICE), "--data-binary", "hi")
    t.eq(http(srv, "/api/history/chat/lobby")[0], 200, "anonymous read")
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(c, "What is your name?")
    c.send("visitor\n")
    servutil.want(c, "hello visitor")
    c.send("hi\n")
    servutil.want(c, "error: forbidden")
    c.close()
    srv.stop()


if __name__ == "__main__":
    t.main()
