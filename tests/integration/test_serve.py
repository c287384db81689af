#!/usr/bin/python3
"""axon serve end to end with real clients: netcat on the line chat, a UDP
socket, curl on the HTTP API and curl -N on Server-Sent Events all in room
lobby, each one's message reaching the others; history and presence; SSE
resume across a restart with no gap and no duplicate; UDP errors and leases;
line chat commands; config errors reported with file:line."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

import axtest
from servutil import Serve, nc_client, Sse, Udp, curl, curl_json, metric, publish, want

t = axtest.Tests("axon serve", alarm=110)


@t.test
def every_gateway_reaches_every_other():
    srv = Serve()
    nc = nc_client(srv, "alice")
    udp = Udp(srv)
    t.eq(udp.ask("SUB chat/lobby"), "OK SUB chat/lobby 60", "UDP subscribe")
    sse = Sse(srv, "topic=chat/lobby")
    time.sleep(0.3)  # curl connects

    nc.p.stdin.write(b"hello from netcat\n")
    nc.p.stdin.flush()
    t.eq(udp.recv_until("MSG"), "MSG chat/lobby 1 alice hello from netcat", "netcat -> UDP")
    ev = sse.wait_events(1)[-1]["json"]
    t.eq((ev["sender"], ev["payload"], ev["seq"]), ("alice", "hello from netcat", 1),
         "netcat -> SSE")

    t.eq(publish(srv, "chat/lobby", "hello from curl", sender="bot")["seq"], 2, "curl publish")
    nc.wait_output(lambda o: b"[lobby] bot: hello from curl\n" in o, what="curl -> netcat")
    t.eq(udp.recv_until("MSG"), "MSG chat/lobby 2 bot hello from curl", "curl -> UDP")
    t.eq(sse.wait_events(2)[-1]["json"]["payload"], "hello from curl", "curl -> SSE")

    other = Udp(srv)
    t.eq(other.ask("PUB chat/lobby hello from udp"), "OK chat/lobby 3", "UDP publish")
    nc.wait_output(lambda o: b"hello from udp\n" in o, what="UDP -> netcat")
    t.ok(udp.recv_until("MSG").endswith("hello from udp"), "UDP -> UDP")
    t.eq(sse.wait_events(3)[-1]["json"]["payload"], "hello from udp", "UDP -> SSE")
    t.ok(b"hello from netcat" not in nc.output().split(b"you are in lobby")[1],
         "netcat does not get its own line back")

    h = curl_json(srv.base + "/api/history/chat/lobby")
    t.eq([m["payload"] for m in h["messages"]],
         ["hello from netcat", "hello from curl", "hello from udp"], "history")
    t.eq(h["last_seq"], 3, "last seq")
    t.eq(curl_json(srv.base + "/api/history/chat/lobby?since=2")["messages"][0]["seq"], 3,
         "history since 2")
    p = curl_json(srv.base + "/api/presence/lobby")
    t.eq(p["names"], ["alice"], "presence")
    topics = curl_json(srv.base + "/api/topics")["topics"]
    t.ok(any(x["topic"] == "chat/lobby" and x["last_seq"] == 3 for x in topics), topics)

    nc.p.stdin.write(b"/quit\n")
    nc.p.stdin.flush()
    nc.wait_output(lambda o: b"* bye" in o, what="the goodbye")
    leave = sse.wait_events(1, kind="leave")[0]["json"]
    t.eq((leave["name"], leave["topic"]), ("alice", "chat/lobby"), "leave event over SSE")
    t.eq(curl_json(srv.base + "/api/presence/lobby")["names"], [], "presence after /quit")
    t.eq(metric(srv, 'axon_messages_in_total{gateway="line"}'), 1.0, "line messages in")
    t.eq(metric(srv, "axon_hub_published_total"), 3.0, "published")


@t.test
def sse_resume_across_restart():
    srv = Serve()
    for i in range(1, 6):
        publish(srv, "news/today", "item %d" % i)
    sse = Sse(srv, "topic=news/today&since=2")
    evs = sse.wait_events(3)
    t.eq([e["id"] for e in evs], ["3", "4", "5"], "since=2 replays 3..5")
    sse.stop()
    data, ports = srv.data, srv.ports()
    srv.stop()  # SIGTERM: drains and flushes the store
    srv = Serve(data=data, ports=ports)
    t.eq(publish(srv, "news/today", "item 6")["seq"], 6, "the sequence continues")
    publish(srv, "news/today", "item 7")
    sse = Sse(srv, "topic=news/today", headers=["Last-Event-ID: 5"])
    evs = sse.wait_events(2)
    time.sleep(0.2)
    evs = sse.wait_events(2)
    t.eq([(e["id"], e["json"]["payload"]) for e in evs], [("6", "item 6"), ("7", "item 7")],
         "Last-Event-ID 5 after the restart: no gap, no duplicate")
    publish(srv, "news/today", "item 8")
    t.eq(sse.wait_events(3)[-1]["id"], "8", "then live")
    shutil.rmtree(data, ignore_errors=True)


@t.test
def sse_gap_when_history_is_short():
    srv = Serve("--history", "3")
    for i in range(1, 9):
        publish(srv, "t/x", "m%d" % i)
    sse = Sse(srv, "topic=t/x&since=1")
    gap = sse.wait_events(1, kind="gap")[0]["json"]
    t.eq(gap["first_seq"], 6, "the gap says where history starts")
    t.eq([e["id"] for e in sse.wait_events(3)], ["6", "7", "8"], "then what is kept")


@t.test
def udp_errors_and_leases():
    srv = Serve("-c", os.path.join(TMP, "lease.conf"))
    u = Udp(srv)
    for req in ("HELLO", "PUB bad/+/topic x", "SUB a/#/b"):  # not verified: cut to size
        u.send(req)
        r = u.recv()
        t.ok(r.startswith("ERR") and len(r) + 1 <= len(req), "%r -> %r" % (req, r))
    t.eq(u.ask("SUB dev/+/temp"), "OK SUB dev/+/temp 1", "lease of 1 s (after a cookie)")
    t.ok(u.ask("HELLO").startswith("ERR unknown request"), "unknown request")
    t.ok(u.ask("PUB bad/+/topic x").startswith("ERR cannot publish to 'bad/+/topic'"),
         "wildcard topic refused")
    t.ok(u.ask("SUB a/#/b").startswith("ERR bad filter"), "bad filter refused")
    r = u.ask(b"PUB big " + b"x" * 9000)
    t.ok(r.startswith("ERR datagram too large: 9008 bytes"), r)
    t.eq(u.ask("PING"), "PONG", "ping")
    publish(srv, "dev/kitchen/temp", "21.5")
    t.eq(u.recv_until("MSG"), "MSG dev/kitchen/temp 1 http 21.5", "delivery")
    time.sleep(2.5)  # the lease runs out
    publish(srv, "dev/kitchen/temp", "22")
    t.eq(u.quiet(0.5), None, "nothing after the lease ended")
    t.eq(u.ask("SUB dev/+/temp 0"), "OK SUB dev/+/temp 1", "subscribe again with resume")
    t.eq([u.recv_until("MSG"), u.recv_until("MSG")],
         ["MSG dev/kitchen/temp 1 http 21.5", "MSG dev/kitchen/temp 2 http 22"], "replay")
    t.eq(u.ask("UNSUB dev/+/temp"), "OK UNSUB dev/+/temp", "unsubscribe")
    t.ok(u.ask("UNSUB dev/+/temp").startswith("ERR not sub"), "not subscribed (cut to size)")


@t.test
def line_chat_commands():
    srv = Serve()
    a = srv.line_client("ann")
    b = srv.line_client("ben")
    want(a, "* ben joined lobby")
    a.send("/who\n")
    w = want(a, "* in lobby:")
    t.ok("ann" in w and "ben" in w, w)
    b.send("/me waves\n")
    t.eq(want(a, "waves"), "[lobby] * ben waves", "/me")
    b.send("/join dev\n")
    want(a, "* ben left lobby")
    b.send("/nick benny\n")
    want(b, "* you are now benny")
    a.send("/join dev\n")
    want(b, "* ann joined dev")
    a.send("in dev now\n")
    t.eq(want(b, "in dev now"), "[dev] ann: in dev now", "message in another room")
    a.send("/rooms\n")
    r = want(a, "* rooms:")
    t.ok("dev (2)" in r, r)
    a.send("/history\n")
    want(a, "the last messages of dev")
    t.eq(a.line(), "[dev] ann: in dev now", "history")
    want(a, "end of history")
    a.send("x" * 5000 + "\n")
    want(a, "line too long")
    a.send("//slash\n")
    t.eq(want(b, "slash"), "[dev] ann: /slash", "// sends a line starting with /")
    a.send("/nosuch\n")
    want(a, "unknown command /nosuch")
    t.eq(curl_json(srv.base + "/api/presence/dev")["names"].sort(), ["ann", "benny"].sort(),
         "presence")


@t.test
def bad_config_is_reported_with_file_and_line():
    conf = os.path.join(TMP, "bad.conf")
    with open(conf, "w") as f:
        f.write("# comment\nlisten_http 127.0.0.1:0\n\nhistory_count lots\n")
    p = axtest.Proc([axtest.axon_bin(), "serve", "-c", conf])
    t.exits(p, 2)
    t.ok("%s:4: 'lots' is not a number" % conf in p.stderr(), p.stderr())
    with open(conf, "w") as f:
        f.write("include %s\nfrobnicate yes\n" % os.path.join(TMP, "lease.conf"))
    p = axtest.Proc([axtest.axon_bin(), "serve", "-c", conf])
    t.exits(p, 2)
    t.ok("%s:2: unknown setting 'frobnicate'" % conf in p.stderr(), p.stderr())
    p = axtest.Proc([axtest.axon_bin(), "serve", "--fsync", "sometimes"])
    t.exits(p, 2)
    t.ok("fsync is always, batch or off" in p.stderr(), p.stderr())
    p = axtest.Proc([axtest.axon_bin(), "serve", "--help"], capture=True)
    out = p.wait_output(lambda o: b"Examples:" in o).decode()
    t.exits(p, 0)
    for word in ("--config", "--http", "--line", "--udp", "--data", "--fsync", "--log-format"):
        t.ok(word in out, "--help lacks %s" % word)


@t.test
def json_logs_and_log_file():
    log = os.path.join(TMP, "serve.log")
    srv = Serve("--log-format", "json", "--log-file", log)
    deadline = time.monotonic() + axtest.TIMEOUT
    while "ready to accept" not in open(log).read() and time.monotonic() < deadline:
        time.sleep(0.02)
    import json
    lines = [json.loads(x) for x in open(log).read().splitlines()]
    t.ok(any(x["msg"] == "ready to accept connections" and x["level"] == "info" for x in lines),
         lines)
    os.rename(log, log + ".1")  # logrotate
    srv.signal(1)  # SIGHUP reopens
    deadline = time.monotonic() + axtest.TIMEOUT
    while not os.path.exists(log) and time.monotonic() < deadline:
        time.sleep(0.02)
    t.ok(os.path.exists(log), "log file made again after SIGHUP")


def ws_session(srv, requests, until, timeout=10):
    """Python websockets client: send the requests, collect envelopes until
    until(list) is true; returns them."""
    import asyncio
    import websockets

    async def run():
        got = []
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port) as ws:
            got.append(json.loads(await ws.recv()))  # welcome
            for r in requests:
                await ws.send(r if isinstance(r, bytes) else json.dumps(r))
            while not until(got):
                got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        return got
    return asyncio.run(run())


def msgs(got):
    return [(m["seq"], m["payload"]) for m in got if m.get("type") == "message"]


@t.test
def websocket_resume_across_restart():
    srv = Serve()
    got = ws_session(srv, [{"type": "nick", "name": "wes"},
                           {"type": "subscribe", "topic": "room/r", "since": 0, "presence": True,
                            "id": 1}] +
                     [{"type": "publish", "topic": "room/r", "payload": "m%d" % i} for i in range(1, 4)],
                     lambda g: len(msgs(g)) >= 3)
    t.eq(msgs(got), [(1, "m1"), (2, "m2"), (3, "m3")], "own messages, in order")
    t.ok(any(m.get("type") == "join" and m.get("name") == "wes" for m in got), "join event")
    publish(srv, "room/r", "m4")  # missed by the client, which saw up to 3
    data, ports = srv.data, srv.ports()
    srv.stop()
    srv = Serve(data=data, ports=ports)
    publish(srv, "room/r", "m5")
    got = ws_session(srv, [{"type": "subscribe", "topic": "room/r", "since": 3, "id": 2},
                           {"type": "publish", "topic": "room/r", "payload": "m6", "id": 3}],
                     lambda g: len(msgs(g)) >= 3 and sum(m.get("type") == "ok" for m in g) >= 2)
    t.eq(msgs(got), [(4, "m4"), (5, "m5"), (6, "m6")],
         "since 3 after the restart: 4 and 5 from the store, then live; no gap, no duplicate")
    ok = [m for m in got if m.get("type") == "ok"]
    t.eq([m.get("id") for m in ok], [2, 3], "replies carry the request ids")
    t.eq(ok[1]["seq"], 6, "publish reply has the seq")
    got = ws_session(srv, [{"type": "history", "topic": "room/r", "since": 4, "id": 4},
                           {"type": "presence", "topic": "room/r", "id": 5},
                           b"room/r\n\xff\xfebinary",
                           {"type": "subscribe", "topic": "room/r", "since": 6},
                           "not json", {"type": "publish", "topic": "bad/+", "payload": "x"}],
                     lambda g: sum(m.get("type") == "error" for m in g) >= 2)
    hist = [m for m in got if m.get("type") == "history"][0]
    t.eq([m["seq"] for m in hist["messages"]], [5, 6], "history since 4")
    t.eq(hist["last_seq"], 6, "history last_seq")
    t.eq([m for m in got if m.get("type") == "presence"][0]["names"], [], "nobody present")
    b = [m for m in got if m.get("type") == "message"]
    t.eq((b[0]["seq"], b[0]["encoding"]), (7, "base64"), "a binary frame publishes bytes")
    t.eq(base64.b64decode(b[0]["payload"]), b"\xff\xfebinary", "the bytes")
    errs = [m["error"] for m in got if m.get("type") == "error"]
    t.ok("'[' or '{' expected" in errs[0] and "not a valid topic" in errs[1], errs)
    shutil.rmtree(data, ignore_errors=True)


@t.test
def sse_close_is_noticed_and_shutdown_is_clean():
    srv = Serve()
    sse = Sse(srv, "topic=chat/%2B")  # '+' as %2B; a literal '+' works too
    sse2 = Sse(srv, "topic=chat/+")
    deadline = time.monotonic() + axtest.TIMEOUT
    while metric(srv, 'axon_connections{gateway="sse"}') != 2.0:
        t.ok(time.monotonic() < deadline, "two SSE streams counted")
        time.sleep(0.05)
    publish(srv, "chat/x", "wild")
    t.eq(sse.wait_events(1)[0]["json"]["payload"], "wild", "chat/%2B is a wildcard")
    t.eq(sse2.wait_events(1)[0]["json"]["payload"], "wild", "chat/+ is a wildcard")
    sse.stop()
    deadline = time.monotonic() + 3
    while metric(srv, 'axon_connections{gateway="sse"}') != 1.0:
        t.ok(time.monotonic() < deadline, "a closed stream is noticed at once, not at the next ping")
        time.sleep(0.05)
    ws_session(srv, [{"type": "subscribe", "topic": "chat/x", "id": 1}],
               lambda g: any(m.get("type") == "ok" for m in g))
    srv.signal(15)  # SIGTERM with an SSE stream open
    t.eq(srv.wait(10), 0, "axon serve exit status after SIGTERM%s" % srv.err_note())
    t.ok("stopped" in srv.stderr(), srv.stderr()[-300:])


@t.test
def ws_clients_open_at_shutdown_get_going_away():
    """Subscribed /ws clients (one with a name, present in its room, one
    with a history request) still open at SIGTERM: each is closed with
    1001, after the gateway ended its subscription (hub_sub_close: its
    state lives in the subscriber's allocation until its close), and the
    server exits 0 (build-san: no use after free, no leak)."""
    import asyncio
    import websockets

    srv = Serve()

    async def client(name):
        ws = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port)
        await ws.recv()  # welcome
        if name:
            await ws.send(json.dumps({"type": "nick", "name": name, "id": 0}))
        await ws.send(json.dumps({"type": "subscribe", "topic": "chat/bye", "presence": True,
                                  "id": 1}))
        await ws.send(json.dumps({"type": "history", "topic": "chat/bye", "id": 2}))
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), axtest.TIMEOUT))
            if m.get("type") == "history":
                return ws

    async def run():
        socks = [await client("ann"), await client(None), await client("bob")]
        srv.signal(15)
        codes = []
        for ws in socks:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), axtest.TIMEOUT)
            except websockets.ConnectionClosed as e:
                codes.append(e.rcvd.code if e.rcvd else None)
        return codes

    codes = asyncio.run(run())
    t.eq(codes, [1001, 1001, 1001], "every open client is told the server is going away")
    t.eq(srv.wait(10), 0, "axon serve exit status after SIGTERM%s" % srv.err_note())


@t.test
def nul_bytes_and_late_names():
    srv = Serve()
    publish(srv, "t/nul", "a\u0000b".encode().decode("unicode_escape"))
    h = curl_json(srv.base + "/api/history/t/nul")
    t.eq([m["payload"] for m in h["messages"]], ["a\x00b"], "a NUL in a text payload stays")
    got = ws_session(srv, [{"type": "subscribe", "topic": "chat/late", "presence": True, "id": 1},
                           {"type": "nick", "name": "late", "id": 2},
                           {"type": "presence", "topic": "chat/late", "id": 3}],
                     lambda g: any(m.get("type") == "presence" for m in g))
    t.eq([m for m in got if m.get("type") == "presence"][0]["names"], ["late"],
         "a name given after subscribe joins the room")


def metrics_sized(srv):
    """/metrics as a dict, and the bytes curl sent and received for it."""
    rc, out, _ = curl("-w", "\n#SIZE %{size_request} %{size_header} %{size_download}\n",
                      srv.base + "/metrics")
    vals, size = {}, None
    for line in out.splitlines():
        if line.startswith("#SIZE "):
            size = [int(x) for x in line.split()[1:]]
        elif line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            vals[k] = float(v)
    return vals, size[0], size[1] + size[2]


@t.test
def http_gateway_counts_connections_and_bytes():
    """The http gateway's connection and byte counters are the HTTP server's:
    four API requests on one keep-alive connection move exactly the bytes
    curl reports, and an event stream counts as sse's, not http's."""
    srv = Serve()
    m0, _, got0 = metrics_sized(srv)
    urls = [srv.base + u for u in ("/api/topics", "/api/history/a/b", "/api/presence/lobby",
                                   "/healthz")]
    rc, out, err = curl("-w", "%{num_connects} %{size_request} %{size_header} %{size_download}\n",
                        *[a for u in urls for a in ("-o", "/dev/null", u)])
    t.eq(rc, 0, err)
    rows = [[int(x) for x in line.split()] for line in out.splitlines()]
    t.eq(sum(r[0] for r in rows), 1, "curl kept one connection alive")
    sent = sum(r[1] for r in rows)
    recvd = sum(r[2] + r[3] for r in rows)
    m1, req1, _ = metrics_sized(srv)
    H = '{gateway="http"}'
    t.eq(m1["axon_connections_accepted_total" + H] - m0["axon_connections_accepted_total" + H], 2,
         "accepted: the keep-alive connection and this /metrics one")
    t.eq(m1["axon_bytes_in_total" + H] - m0["axon_bytes_in_total" + H], sent + req1,
         "bytes in: the four requests and this /metrics request")
    t.eq(m1["axon_bytes_out_total" + H] - m0["axon_bytes_out_total" + H], recvd + got0,
         "bytes out: the four responses and the first /metrics response")
    t.ok(m1["axon_connections" + H] >= 1, "this /metrics connection is open")

    sse = Sse(srv, "topic=x/y")
    deadline = time.time() + 5
    while time.time() < deadline:
        m, _, _ = metrics_sized(srv)
        if m['axon_connections{gateway="sse"}'] == 1 and m["axon_connections" + H] == 1:
            break
        time.sleep(0.05)
    t.eq((m['axon_connections{gateway="sse"}'], m["axon_connections" + H]), (1, 1),
         "the stream is sse's; http has only the /metrics connection")


@t.test
def threads_share_one_hub():
    """--threads 2: clients land on both loops (SO_REUSEPORT), one hub: every
    subscriber gets every message once, in order; shutdown drains both."""
    import asyncio
    import websockets
    srv = Serve("--threads", "2")
    n_subs, n_msgs = 16, 150

    subscribed = []

    async def sub():
        # (open_timeout: under ASan beside a wrk run, a handshake can take a while)
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port,
                                      open_timeout=60) as ws:
            await asyncio.wait_for(ws.recv(), 30)
            await ws.send(json.dumps({"type": "subscribe", "topic": "t/mt", "id": 1}))
            await asyncio.wait_for(ws.recv(), 30)
            subscribed.append(1)  # publishing waits for every subscription's "ok"
            seqs = []
            while len(seqs) < n_msgs:
                m = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if m.get("type") == "message":
                    seqs.append(m["seq"])
            return seqs

    async def pubs():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port,
                                      open_timeout=60) as ws:
            await asyncio.wait_for(ws.recv(), 30)
            for i in range(n_msgs):
                await ws.send(json.dumps({"type": "publish", "topic": "t/mt", "payload": str(i)}))

    async def main():
        subs = [asyncio.ensure_future(sub()) for _ in range(n_subs)]
        deadline = time.monotonic() + 60
        while (got := metric(srv, 'axon_connections{gateway="websocket"}')) != n_subs or \
                len(subscribed) != n_subs:
            failed = [s.exception() for s in subs if s.done() and s.exception()]
            if failed or time.monotonic() > deadline:
                raise axtest.Failure("%s of %d subscribers connected, %d subscribed (%r)%s" %
                                     (got, n_subs, len(subscribed), failed[:1], srv.err_note()))
            await asyncio.sleep(0.05)
        await pubs()
        return await asyncio.gather(*subs)
    res = asyncio.run(main())
    t.ok(all(r == list(range(1, n_msgs + 1)) for r in res), "every subscriber, every message, in order")
    t.eq(metric(srv, "axon_hub_delivered_total"), float(n_subs * n_msgs), "deliveries")
    t.ok(metric(srv, 'axon_connections_accepted_total{gateway="http"}') >= n_subs + 1,
         "http accepts, summed over both loops")
    a, b = nc_client(srv, "one"), nc_client(srv, "two")  # the line chat on both loops too
    a.p.stdin.write(b"across loops\n")
    a.p.stdin.flush()
    b.wait_output(lambda o: b"[lobby] one: across loops\n" in o, timeout=20, what="line -> line")
    srv.signal(15)
    t.eq(srv.wait(10), 0, "exit status after SIGTERM%s" % srv.err_note())


@t.test
def hello_means_in_the_room():
    """"you are in lobby" reaches a line client only once it is: with two
    threads, a client on the other loop that speaks the moment it reads
    its own hello reaches this one.  (Written at once, the hello raced the
    subscription: about 1 pair in 100 lost the message on epoll and poll.)"""
    srv = Serve("--threads", "2", "-d", "none")

    def joined(name):
        c = axtest.Lines.connect("127.0.0.1", srv.line_port)
        want(c, "What is your name?")
        c.send(name + "\n")
        want(c, "you are in lobby")
        return c

    for i in range(400):
        a = joined("a%d" % i)
        b = joined("b%d" % i)  # (told it is in; nothing else waited for)
        a.send("ping %d\n" % i)
        want(b, "a%d: ping %d" % (i, i), timeout=10)
        a.close()
        b.close()
    srv.stop()


TMP = tempfile.mkdtemp(prefix="axon-serve-test-")
with open(os.path.join(TMP, "lease.conf"), "w") as f:
    f.write("# short UDP leases for the test\nudp_lease 1\n")
try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
