#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_serve_redis: three `axon serve` nodes share topics through a real
redis-server (issue 17, docs/cluster.md).

- Order: on each of three nodes a WebSocket, an SSE and a line chat
  subscriber of chat/lobby; publishers on every node (HTTP and WebSocket)
  at once: every subscriber sees every message, each once, in the same
  order, with seqs 1, 2, 3, ... with no hole.
- Resume on another node: a WebSocket client reads part of a topic on one
  node, goes away while messages keep coming, and resumes with `since` on
  a node that had never had the topic: no gap, no duplicate, then live.
- Wildcard resume: a WebSocket and an SSE client subscribe to a wildcard
  with `since` on a node that never had its topics (published on another
  node): each topic after `since`, in order, once; at most 1,000 topics
  (the most recent), a gap notice on the filter for the others.  An
  unsubscribe of the filter before the index answered cancels the resume
  (nothing of it comes afterwards); a client closed meanwhile leaves nothing.
- Wildcards: a `+` subscription gets its topics from every node and
  nothing of topics the `+` does not match (Redis's glob '*' crosses '/').
- Redis stopped (SIGSTOP) for 5 s under load: /healthz on every node goes
  503 within 5 s, publishes are refused (HTTP 503) instead of lost,
  local clients stay connected and served (presence, history); after
  SIGCONT the nodes reconnect by themselves (/healthz 200 again,
  axon_redis_reconnects_total), and cross-node delivery goes on in order.
- Redis killed and started again empty: nodes reconnect, numbering goes
  on above what the nodes had (the publish script's floor).
- Rooms a node does not follow (no subscriber of them there): its HTTP
  history and presence answer for the cluster (the node visits the topic:
  reads its stream and presence from Redis first), for a topic somebody
  follows on another node and for one nobody follows anywhere; publishes
  to it are numbered by Redis and land in its history."""
import asyncio
import http.client
import json
import os
import signal
import subprocess
import tempfile
import threading
import time

import axtest
import redisutil
import servutil

t = axtest.Tests("axon serve: several nodes through Redis", alarm=240)
redisutil.require()
Redis = redisutil.Redis
wait_for = redisutil.wait_for
healthz = redisutil.healthz


def nodes(redis, n=3, threads=1):
    """n nodes on `redis`; the last with `threads` loops (publishes, needs and
    acknowledgements then cross threads to the backplane's loop)."""
    return [servutil.Serve("--redis", redis.url, "-t", str(threads if i == n - 1 else 1))
            for i in range(n)]


def stop_clean(srvs):
    """SIGTERM: each node exits 0 (under ASan: no leak, no crash)."""
    for s in srvs:
        s.signal(signal.SIGTERM)
    for s in srvs:
        t.exits(s, 0, "axon serve after SIGTERM")


def rss_kib(srv):
    with open("/proc/%d/status" % srv.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_linked(srvs):
    wait_for(lambda: all(healthz(s) == 200 for s in srvs), "every node linked to Redis")


def http_publisher(srv, topic, texts, codes=None, pause=0.0):
    """Publish each text through one keep-alive connection; codes gets the
    HTTP status of each."""
    c = http.client.HTTPConnection("127.0.0.1", srv.http_port, timeout=10)
    for text in texts:
        c.request("POST", "/api/publish/" + topic, body=text.encode())
        r = c.getresponse()
        r.read()
        if codes is not None:
            codes.append((text, r.status))
        if pause:
            time.sleep(pause)
    c.close()


class LineReader:
    """A line chat user whose `[lobby] who: text` lines are collected."""

    def __init__(self, srv, name):
        self.c = srv.line_client(name)
        self.got = []
        self.stop = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.stop:
            try:
                line = self.c.line(timeout=0.2)
            except axtest.Failure:
                continue
            except Exception:
                return
            if line.startswith("[lobby] "):
                self.got.append(line.split(": ", 1)[1].strip())


class WsClients:
    """WebSocket clients in an asyncio loop on a thread of their own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.th = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.th.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.th.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


async def ws_subscribe(url, topic, since=None):
    import websockets
    ws = await websockets.connect(url)
    req = {"type": "subscribe", "topic": topic, "id": 1}
    if since is not None:
        req["since"] = since
    await ws.send(json.dumps(req))
    while True:
        r = json.loads(await asyncio.wait_for(ws.recv(), axtest.TIMEOUT))
        if r["type"] in ("ok", "error"):
            if r["type"] != "ok":
                raise axtest.Failure("subscribe: %r" % r)
            return ws


async def ws_collect(ws, until, timeout):
    """Message envelopes until `until(list)` is true (or the time is up)."""
    got = []
    deadline = time.monotonic() + timeout
    while not until(got):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            r = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            break
        if r["type"] in ("message", "gap"):
            got.append(r)
    return got


def msgs(sse):
    """The payloads of an SSE stream's messages so far."""
    return [e["json"]["payload"] for e in sse.events() if e.get("event") == "message"]


def ws_url(srv):
    return "ws://127.0.0.1:%d/ws" % srv.http_port


@t.test
def same_order_on_every_node_and_gateway():
    r = Redis()
    srvs = nodes(r, threads=2)
    wait_linked(srvs)
    with WsClients() as ws:
        subs = [ws.run(ws_subscribe(ws_url(s), "chat/lobby")) for s in srvs]
        sses = [servutil.Sse(s, "topic=chat/lobby") for s in srvs]
        lines = [LineReader(s, "reader%d" % i) for i, s in enumerate(srvs)]
        # until every node's Redis subscription is in place: warm-up
        # messages until each subscriber has had one
        warm = 0
        def warmed():
            nonlocal warm
            warm += 1
            servutil.publish(srvs[warm % 3], "chat/lobby", "warm%d" % warm)
            time.sleep(0.1)
            return all(any(p.startswith("warm") for p in msgs(s))
                       for s in sses) and all(l.got for l in lines)
        wait_for(warmed, "every subscriber to get a warm-up message")
        servutil.publish(srvs[0], "chat/lobby", "go")
        n_http, n_ws = 40, 10
        want = {"h%d-%d" % (i, k) for i in range(3) for k in range(n_http)}
        want |= {"w%d-%d" % (i, k) for i in range(3) for k in range(n_ws)}
        pubs = [threading.Thread(target=http_publisher,
                                 args=(s, "chat/lobby", ["h%d-%d" % (i, k)
                                                         for k in range(n_http)]))
                for i, s in enumerate(srvs)]
        for p in pubs:
            p.start()

        async def ws_pub(i, w):
            for k in range(n_ws):
                await w.send(json.dumps({"type": "publish", "topic": "chat/lobby",
                                         "payload": "w%d-%d" % (i, k)}))
        async def ws_pubs():
            await asyncio.gather(*[ws_pub(i, w) for i, w in enumerate(subs)])
        ws.run(ws_pubs())
        for p in pubs:
            p.join(60)
        servutil.publish(srvs[2], "chat/lobby", "end")

        def after_go(seq_payloads):
            names = [p for _, p in seq_payloads]
            return names[names.index("go") + 1:names.index("end")] if "end" in names else None

        seen = {}
        for i, w in enumerate(subs):
            got = ws.run(ws_collect(w, lambda g: any(m["payload"] == "end" for m in g), 30))
            seen["ws%d" % i] = [(m["seq"], m["payload"]) for m in got if m["type"] == "message"]
            t.ok(not [m for m in got if m["type"] == "gap"], "ws%d: no gap notice" % i)
        for i, s in enumerate(sses):
            wait_for(lambda: "end" in msgs(s), "sse%d to get the end" % i)
            seen["sse%d" % i] = [(e["json"]["seq"], e["json"]["payload"])
                                 for e in s.events() if e.get("event") == "message"]
        for i, l in enumerate(lines):
            wait_for(lambda: "end" in l.got, "line%d to get the end" % i)
            seen["line%d" % i] = [(None, p) for p in l.got]
        ref = after_go(seen["ws0"])
        t.eq(set(ref), want, "what ws0 got")
        t.eq(len(ref), len(want), "ws0: each message once")
        for name, got in seen.items():
            t.eq(after_go(got), ref, "%s's order (against ws0's)" % name)
        # seqs from Redis: one counter for the topic, whatever the node
        seqs = [s for s, _ in seen["sse1"]]
        t.eq(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "sse1's seqs are consecutive")
        for l in lines:
            l.stop = True
        for w in subs:
            ws.run(w.close())
        stop_clean(srvs)


@t.test
def acknowledgements_carry_the_cluster_seq():
    r = Redis()
    srvs = nodes(r)
    wait_linked(srvs)
    seqs = [servutil.publish(srvs[k % 3], "acks/x", "a%d" % k)["seq"] for k in range(9)]
    t.eq(seqs, list(range(1, 10)), "the seqs HTTP publishes on three nodes were given")
    with WsClients() as ws:
        async def ws_pub():
            import websockets
            async with websockets.connect(ws_url(srvs[1])) as w:
                await w.send(json.dumps({"type": "publish", "topic": "acks/x", "payload": "w",
                                         "id": 7}))
                while True:
                    m = json.loads(await asyncio.wait_for(w.recv(), axtest.TIMEOUT))
                    if m["type"] in ("ok", "error"):
                        return m
        t.eq(ws.run(ws_pub()).get("seq"), 10, "the seq a WebSocket publish was given")
    u = servutil.Udp(srvs[2])
    t.eq(u.ask("PUB acks/x from-udp"), "OK acks/x 11", "a UDP publish")


@t.test
def resume_on_another_node():
    r = Redis()
    a, b, c = nodes(r, threads=2)
    wait_linked([a, b, c])
    with WsClients() as ws:
        first = ws.run(ws_subscribe(ws_url(a), "news/live", since=0))
        wait_for(lambda: (servutil.publish(b, "news/live", "probe") and False) or
                 ws.run(ws_collect(first, lambda g: g, 0.3)), "node a to get news/live")
        total = 120
        pub = threading.Thread(target=http_publisher,
                               args=(b, "news/live", ["m%d" % k for k in range(total)], None,
                                     0.005))
        pub.start()
        got = ws.run(ws_collect(first, lambda g: len(g) >= 30, 20))
        ws.run(first.close())
        last = got[-1]["seq"]
        t.ok(len(got) >= 30, "the first node delivered 30")
        again = ws.run(ws_subscribe(ws_url(c), "news/live", since=last))
        pub.join(60)
        rest = ws.run(ws_collect(again, lambda g: g and g[-1]["payload"] == "m%d" % (total - 1),
                                 30))
        t.ok(not [m for m in rest if m["type"] == "gap"], "no gap notice: %r" %
             [m for m in rest if m["type"] == "gap"])
        seqs = [m["seq"] for m in rest]
        t.eq(seqs, list(range(last + 1, last + 1 + len(seqs))), "seqs after the resume")
        t.eq(rest[-1]["payload"], "m%d" % (total - 1), "the last message")
        # and live after that, through node c's own subscription
        servutil.publish(a, "news/live", "after")
        more = ws.run(ws_collect(again, lambda g: g, 10))
        t.eq([(m["seq"], m["payload"]) for m in more], [(seqs[-1] + 1, "after")], "live after")
        ws.run(again.close())


@t.test
def wildcard_resume_of_topics_the_node_never_had():
    """Published on node a to topics node b never had; a WebSocket and an SSE
    client on node b subscribe to a wildcard with `since`: node b learns the
    topics from the cluster's topic index and replays each after `since`."""
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    want = []
    for k in range(3):
        topic = "feed/t%d" % k
        for i in range(1, 5):
            t.eq(servutil.publish(a, topic, "%s-%d" % (topic, i)).get("seq"), i,
                 "published on node a")
            if i > 1:
                want.append((topic, i, "%s-%d" % (topic, i)))
    servutil.publish(a, "feedx/t0", "not matched")
    servutil.publish(a, "feed/t0/deeper", "not matched")

    def check(got, who):
        t.ok(not [m for m in got if m["type"] == "gap"], who + ": no gap notice")
        keys = [(m["topic"], m["seq"], m["payload"]) for m in got]
        t.eq(sorted(keys), sorted(want), who + ": exactly the messages after since 1")
        for k in range(3):
            seqs = [m["seq"] for m in got if m["topic"] == "feed/t%d" % k]
            t.eq(seqs, [2, 3, 4], who + ": feed/t%d in order, once each" % k)

    with WsClients() as ws:
        w = ws.run(ws_subscribe(ws_url(b), "feed/+", since=1))
        got = ws.run(ws_collect(w, lambda g: len(g) >= len(want), 30))
        got += ws.run(ws_collect(w, lambda g: False, 0.5))  # (nothing more)
        check(got, "WebSocket")
        sse = servutil.Sse(b, "topic=feed/%2B&since=1")
        sse.wait_events(len(want), timeout=30)
        time.sleep(0.5)
        check([dict(e["json"], type=e["event"]) for e in sse.events()
               if e.get("event") in ("message", "gap")], "SSE")
        servutil.publish(a, "feed/t9", "live")
        more = ws.run(ws_collect(w, lambda g: g, 10))
        t.eq([(m["topic"], m["payload"]) for m in more], [("feed/t9", "live")], "then live")
        ws.run(w.close())
        sse.stop()
    stop_clean([a, b])


@t.test
def a_wildcard_resume_reads_at_most_1000_topics():
    """1,005 topics published on node a; a resume of their wildcard on node b
    reads the 1,000 most recently published, with one gap notice on the filter
    for the others first (never a silent loss)."""
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    topics = ["many/t%04d" % k for k in range(1005)]
    c = http.client.HTTPConnection("127.0.0.1", a.http_port, timeout=10)
    for tp in topics:
        c.request("POST", "/api/publish/" + tp, body=tp.encode())
        c.getresponse().read()
    c.close()
    with WsClients() as ws:
        w = ws.run(ws_subscribe(ws_url(b), "many/+", since=0))
        got = ws.run(ws_collect(w, lambda g: len(g) >= 1001, 40), timeout=60)
        got += ws.run(ws_collect(w, lambda g: False, 0.5))
        gaps = [(m["topic"], m["seq"]) for m in got if m["type"] == "gap"]
        t.eq(gaps, [("many/+", 0)], "one gap notice, on the filter")
        t.eq(got[0]["type"], "gap", "the gap notice first")
        keys = [(m["topic"], m["seq"], m["payload"]) for m in got if m["type"] == "message"]
        t.eq(keys, [(tp, 1, tp) for tp in topics[5:]],
             "the 1,000 most recently published topics, each once, in name order")
        ws.run(w.close())
    stop_clean([a, b])


@t.test
def an_unsubscribe_before_the_index_answers_cancels_the_resume():
    """A wildcard resume with `since` on node b waits for the cluster's topic
    index (Redis stopped meanwhile: it cannot answer); an unsubscribe of the
    filter sent before that cancels it: nothing of the filter comes to the
    client afterwards and node b delivers nothing.  A client that closes while
    its resume waits leaves nothing behind (ASan: no leak at exit)."""
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    servutil.publish(a, "gone/t0", "before")

    async def sub_unsub(url):
        import websockets
        w = await websockets.connect(url)
        await w.send(json.dumps({"type": "subscribe", "topic": "gone/+", "since": 0, "id": 1}))
        await w.send(json.dumps({"type": "unsubscribe", "topic": "gone/+", "id": 2}))
        replies = {}
        while len(replies) < 2:
            m = json.loads(await asyncio.wait_for(w.recv(), axtest.TIMEOUT))
            if m.get("id") in (1, 2):
                replies[m["id"]] = m["type"]
        return w, replies

    with WsClients() as ws:
        r.signal(signal.SIGSTOP)
        try:
            w, replies = ws.run(sub_unsub(ws_url(b)))
            closer = ws.run(ws_subscribe(ws_url(b), "gone/#", since=0))
            ws.run(closer.close())
        finally:
            r.signal(signal.SIGCONT)
        t.eq(replies, {1: "ok", 2: "ok"}, "subscribed, then unsubscribed while the index is read")
        wait_linked([a, b])
        wait_for(lambda: servutil.metric(b, "axon_hub_subscribers") == 1,
                 "the closed client gone from node b")
        delivered = servutil.metric(b, "axon_hub_delivered_total")
        servutil.publish(a, "gone/t0", "after")
        servutil.publish(a, "gone/t1", "after")
        got = ws.run(ws_collect(w, lambda g: False, 1.5))
        t.eq(got, [], "nothing of the filter after its unsubscribe (nor replayed)")
        t.eq(servutil.metric(b, "axon_hub_delivered_total"), delivered,
             "node b delivered nothing: no subscription was left")
        # the same filter resumed again on that connection: once each
        ws.run(w.send(json.dumps({"type": "subscribe", "topic": "gone/+", "since": 0})))
        got = ws.run(ws_collect(w, lambda g: len(g) >= 3, 30))
        got += ws.run(ws_collect(w, lambda g: False, 0.5))
        t.eq(sorted((m["topic"], m["seq"], m["payload"]) for m in got),
             [("gone/t0", 1, "before"), ("gone/t0", 2, "after"), ("gone/t1", 1, "after")],
             "a resume made again afterwards: each message once")
        ws.run(w.close())
    stop_clean([a, b])


@t.test
def wildcard_subscriptions_are_exact():
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    sse = servutil.Sse(b, "topic=sensors/%2B/temp")
    hashes = servutil.Sse(b, "topic=sensors/%23")

    def warm():
        servutil.publish(a, "sensors/w/temp", "w")
        time.sleep(0.1)
        return sse.events() and hashes.events()
    wait_for(warm, "the wildcard subscriptions to be in place")
    for topic in ("sensors/1/temp", "sensors/1/x/temp", "sensors/2/hum", "sensors/2/temp",
                  "other/1/temp"):
        servutil.publish(a, topic, topic)
    servutil.publish(a, "sensors/end", "end")
    hashes.wait_events(1)
    wait_for(lambda: "end" in msgs(hashes), "the end")
    plus = [p for p in msgs(sse) if p != "w"]
    t.eq(plus, ["sensors/1/temp", "sensors/2/temp"], "what sensors/+/temp got")
    allp = [p for p in msgs(hashes) if p != "w"]
    t.eq(allp, ["sensors/1/temp", "sensors/1/x/temp", "sensors/2/hum", "sensors/2/temp", "end"],
         "what sensors/# got")


def metric(srv, name):
    return servutil.metric(srv, name)


@t.test
def redis_stopped_for_5_seconds():
    r = Redis()
    srvs = nodes(r)
    wait_linked(srvs)
    watcher = servutil.Sse(srvs[2], "topic=load")
    local = srvs[0].line_client("alice")
    wait_for(lambda: (servutil.publish(srvs[1], "load", "warm") and False) or watcher.events(),
             "node 2 to get the load topic")
    codes = []
    stop = threading.Event()

    def load():
        k = 0
        while not stop.is_set():
            http_publisher(srvs[1], "load", ["L%d" % k], codes)
            k += 1
            time.sleep(0.02)
    th = threading.Thread(target=load, daemon=True)
    th.start()
    time.sleep(0.5)
    rss0 = [rss_kib(s) for s in srvs]
    r.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        wait_for(lambda: all(healthz(s) == 503 for s in srvs), "/healthz 503 on every node", 5)
        t.ok(time.monotonic() - t0 <= 5.0, "stale within 5 s")
        # local clients are still served: a second line user on node 0 is
        # seen joining by the first (presence is the node's own)
        bob = srvs[0].line_client("bob")
        servutil.want(local, "bob joined")
        wait_for(lambda: codes and codes[-1][1] == 503, "publishes refused with 503")
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
    finally:
        r.signal(signal.SIGCONT)
    wait_for(lambda: all(healthz(s) == 200 for s in srvs), "/healthz 200 again", 15)
    t.ok(all(metric(s, "axon_redis_reconnects_total") >= 1 for s in srvs),
         "every node counted a reconnect")
    wait_for(lambda: codes[-1][1] == 200, "publishes accepted again", 10)
    grew = [rss_kib(s) - k for s, k in zip(srvs, rss0)]
    # (nothing is queued in the outage: a few MiB of allocator noise at most)
    t.ok(all(g < 32 * 1024 for g in grew), "memory bounded through the outage: +%r KiB" % grew)
    stop.set()
    th.join(10)
    servutil.publish(srvs[1], "load", "last")
    wait_for(lambda: "last" in msgs(watcher),
             "node 2 to get the last message", 15)
    evs = [e for e in watcher.events() if e.get("event") == "message"]
    seqs = [e["json"]["seq"] for e in evs]
    t.eq(seqs, sorted(set(seqs)), "node 2: in order, no duplicate")
    gaps = [e for e in watcher.events() if e.get("event") == "gap"]
    t.ok(seqs == list(range(seqs[0], seqs[0] + len(seqs))) or gaps,
         "node 2: consecutive seqs, or a gap notice")
    got = {e["json"]["payload"] for e in evs}
    refused = [x for x, c in codes if c == 503]
    t.ok(refused, "some publishes were refused during the outage")
    t.ok(not (got & set(refused)), "a refused publish was never delivered")
    accepted_after = [x for x, c in codes[-20:] if c == 200]
    t.ok(set(accepted_after) <= got, "what was accepted after the outage reached node 2")
    bob.close()
    local.close()
    stop_clean(srvs)


@t.test
def redis_restarted_empty():
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    sse = servutil.Sse(b, "topic=room/x")
    wait_for(lambda: (servutil.publish(a, "room/x", "warm") and False) or sse.events(),
             "node b to get room/x")
    for k in range(5):
        servutil.publish(a, "room/x", "before%d" % k)
    sse.wait_events(6)
    r.stop()
    wait_for(lambda: healthz(a) == 503 and healthz(b) == 503, "both nodes unhealthy", 10)
    r2 = Redis(r.port)
    wait_for(lambda: healthz(a) == 200 and healthz(b) == 200, "both nodes back", 15)
    servutil.publish(a, "room/x", "after")
    wait_for(lambda: "after" in msgs(sse),
             "node b to get the message after the restart", 10)
    seqs = [e["json"]["seq"] for e in sse.events() if e.get("event") == "message"]
    t.eq(seqs, list(range(seqs[0], seqs[0] + len(seqs))),
         "numbering went on above what the nodes had")
    t.eq(msgs(sse)[-6:], ["before%d" % k for k in range(5)] + ["after"], "the messages")
    stop_clean([a, b])
    r2.stop()


def redis_cli(r, *args):
    p = subprocess.run(["redis-cli", "-p", str(r.port)] + list(args), capture_output=True,
                       text=True, timeout=10)
    return p.stdout.strip()


@t.test
def a_lost_message_is_read_from_the_stream():
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    sse = servutil.Sse(b, "topic=gap/t")
    wait_for(lambda: (servutil.publish(a, "gap/t", "warm") and False) or msgs(sse),
             "node b to get gap/t")
    # a message that reached the stream but whose PUBLISH was lost (as in
    # a failover): the next one makes node b read it from the stream
    seq = int(redis_cli(r, "INCR", "axon:{gap/t}:seq"))
    redis_cli(r, "XADD", "axon:{gap/t}:log", "MAXLEN", "1000", "%d-1" % seq,
              "t", str(int(time.time() * 1000)), "s", "ghost", "p", "lost")
    servutil.publish(a, "gap/t", "after")
    wait_for(lambda: "after" in msgs(sse), "the message after the lost one")
    evs = [e for e in sse.events() if e.get("event") in ("message", "gap")]
    t.eq([(e["json"]["seq"], e["json"]["payload"]) for e in evs[-2:]],
         [(seq, "lost"), (seq + 1, "after")], "the lost message first, then the next")
    t.ok(metric(b, "axon_redis_gaps_total") >= 1, "node b counted the gap")
    # one the stream does not have either: the subscriber is told
    redis_cli(r, "INCR", "axon:{gap/t}:seq")
    servutil.publish(a, "gap/t", "after2")
    wait_for(lambda: "after2" in msgs(sse), "the message after the one lost for good")
    evs = [e for e in sse.events() if e.get("event") in ("message", "gap")]
    t.eq([(e.get("event"), e["json"]["seq"]) for e in evs[-2:]],
         [("gap", seq + 3), ("message", seq + 3)], "a gap notice, then the message")
    stop_clean([a, b])


def names(srv):
    return sorted(servutil.curl_json(srv.base + "/api/presence/lobby")["names"])


class Heard:
    """A line client's lines, kept: has it said `text` (in any order)?"""

    def __init__(self, c):
        self.c, self.lines = c, []

    def want(self, text, timeout=axtest.TIMEOUT):
        deadline = time.monotonic() + timeout
        while not any(text in ln for ln in self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise axtest.Failure("no line with %r; got %r" % (text, self.lines))
            try:
                self.lines.append(self.c.line(timeout=min(left, 0.5)))
            except axtest.Failure:
                pass
        return [ln for ln in self.lines if text in ln]


@t.test
def presence_lists_every_node():
    r = Redis()
    a, b, c = nodes(r)
    wait_linked([a, b, c])
    alice = a.line_client("alice")
    wait_for(lambda: names(a) == ["alice"], "alice on node a")
    time.sleep(0.3)  # node a has read the room's entries: what comes now is news
    bob, carol = b.line_client("bob"), c.line_client("carol")
    for s in (a, b, c):
        wait_for(lambda: names(s) == ["alice", "bob", "carol"], "every name on each node")
    # join and leave events cross nodes too (line chat here; every gateway
    # gets the hub's presence events)
    heard = Heard(alice)
    heard.want("* bob joined lobby")
    heard.want("* carol joined lobby")
    # an IRC client on node b: NAMES lists the members of every node
    irc = Heard(axtest.Lines.connect("127.0.0.1", b.irc_port))
    irc.c.send("NICK dave\r\nUSER dave 0 * :dave\r\nJOIN #lobby\r\n")
    irc.want(" 366 ")
    listed = " ".join(irc.want(" 353 "))
    t.ok(all(n in listed for n in ("alice", "bob", "carol", "dave")),
         "IRC NAMES on node b: every node's members (%s)" % listed)
    heard.want("* dave joined lobby")
    bob.send(b"/quit\n")
    bob.close()
    wait_for(lambda: names(a) == ["alice", "carol", "dave"], "bob gone from node a's list")
    heard.want("* bob left lobby")
    irc.c.close()
    heard.want("* dave left lobby")
    c.signal(signal.SIGKILL)  # a node that dies without saying goodbye
    wait_for(lambda: names(a) == ["alice"], "carol's entry to expire (15 s)", 25)
    heard.want("* carol left lobby")
    alice.close()
    stop_clean([a, b])


def history(srv, topic):
    rc, out, _ = servutil.curl("-w", "\n%{http_code}", srv.base + "/api/history/" + topic)
    body, _, code = out.rpartition("\n")
    if code != "200":
        return int(code or 0), []
    return 200, [(m["seq"], m["payload"]) for m in json.loads(body)["messages"]]


@t.test
def rooms_a_node_does_not_follow():
    r = Redis()
    a, b = nodes(r, 2)
    wait_linked([a, b])
    bob = b.line_client("bob")  # node b follows the lobby; node a follows nothing
    wait_for(lambda: names(b) == ["bob"], "bob on node b")
    for text in ("one", "two", "three"):
        t.ok(servutil.publish(b, "chat/lobby", text).get("seq"), "published on node b")
    # (node b writes its entry to Redis a moment after bob came)
    wait_for(lambda: names(a) == ["bob"], "node a (nobody there): the lobby's presence")
    t.ok(True, "node a (nobody there): the lobby's presence is node b's")
    t.eq(history(a, "chat/lobby"), (200, [(1, "one"), (2, "two"), (3, "three")]),
         "node a: the lobby's history, read from Redis")
    servutil.publish(b, "chat/lobby", "four")
    wait_for(lambda: history(a, "chat/lobby")[1][-1:] == [(4, "four")],
             "node a: a message after the visit (followed a while)")
    # a topic nobody follows on any node: published on a, read on b
    acks = [servutil.publish(a, "news/x", text) for text in ("n1", "n2")]
    t.eq([x.get("seq") for x in acks], [1, 2], "node a: numbered by Redis")
    t.eq(history(b, "news/x"), (200, [(1, "n1"), (2, "n2")]),
         "node b: the history of a topic nobody follows")
    t.eq(history(a, "news/x"), (200, [(1, "n1"), (2, "n2")]), "node a: the same")
    t.eq(history(a, "news/none")[0], 404, "a topic that never had a message: 404")
    # the same through WebSocket requests, for a room node a has not visited
    import websockets
    ws = WsClients()

    async def member():  # ann in chat/den on node b
        w = await websockets.connect(ws_url(b))
        await w.send(json.dumps({"type": "nick", "name": "ann"}))
        await w.send(json.dumps({"type": "subscribe", "topic": "chat/den", "presence": True}))
        while json.loads(await w.recv())["type"] != "ok":
            pass
        return w

    async def ask(reqs):
        w = await websockets.connect(ws_url(a))
        out = {}
        for i, r in enumerate(reqs, 1):
            await w.send(json.dumps(dict(r, id=i)))
        while len(out) < len(reqs):
            r = json.loads(await asyncio.wait_for(w.recv(), axtest.TIMEOUT))
            if "id" in r:
                out[r["id"]] = r
        await w.close()
        return out

    ann = ws.run(member())
    wait_for(lambda: sorted(servutil.curl_json(b.base + "/api/presence/den")["names"]) == ["ann"],
             "ann in the den on node b")
    time.sleep(0.3)  # (node b writes its entry to Redis a moment after)
    servutil.publish(b, "chat/den", "d1")
    got = ws.run(ask([{"type": "history", "topic": "chat/den"},
                      {"type": "presence", "topic": "chat/den"}]))
    t.eq([(m["seq"], m["payload"]) for m in got[1]["messages"]], [(1, "d1")],
         "node a, WebSocket: the history of a room it does not follow")
    t.eq(got[2]["names"], ["ann"], "node a, WebSocket: its presence (node b's member)")
    ws.run(ann.close())
    ws.close()
    bob.close()
    stop_clean([a, b])


@t.test
def redis_unreachable_from_the_start():
    port = axtest.free_port()  # nobody listens there
    srv = servutil.Serve("--redis", "redis://127.0.0.1:%d" % port)
    time.sleep(0.5)
    t.eq(healthz(srv), 503, "/healthz")
    rc, out, _ = servutil.curl("-w", "\n%{http_code}", "-d", "x",
                               srv.base + "/api/publish/a/b")
    t.eq(out.rsplit("\n", 1)[-1], "503", "a publish")
    # (0 between tries; 1 while a try is under way)
    wait_for(lambda: metric(srv, "axon_redis_up") == 0, "axon_redis_up 0")
    t.ok(metric(srv, "axon_redis_up") in (0, 1), "axon_redis_up: down or trying")
    sse = servutil.Sse(srv, "topic=a/b")  # local clients are still served
    time.sleep(0.3)
    t.ok(sse.running(), "an SSE subscriber stays connected")
    why = servutil.curl(srv.base + "/healthz")[1]
    t.ok("redis://127.0.0.1:%d" % port in why and ("unreachable" in why or "connecting" in why),
         "/healthz says why: %r" % why)
    t.eq(srv.stderr().count("publishes are refused; retrying"), 1, "the outage is logged once")
    stop_clean([srv])


@t.test
def passwords_acl_users_and_unix_sockets():
    # the URL forms of docs/cluster.md: a password (the default user), an
    # ACL user and its password, a Unix socket; a wrong password is not
    # linked and says so
    r = Redis(extra=["--requirepass", "s3cret"])
    r.cli("ACL", "SETUSER", "axon", "on", ">n0de-pw", "~*", "&*", "+@all")
    sock = os.path.join(tempfile.mkdtemp(prefix="axon-redis-"), "redis.sock")
    u = Redis(extra=["--unixsocket", sock, "--unixsocketperm", "700"])
    a = servutil.Serve("--redis", "redis://:s3cret@127.0.0.1:%d" % r.port)
    b = servutil.Serve("--redis", "redis://axon:n0de-pw@127.0.0.1:%d/0" % r.port)
    c = servutil.Serve("--redis", "unix://" + sock)
    d = servutil.Serve("--redis", "unix://" + sock + "?db=0")
    bad = servutil.Serve("--redis", "redis://axon:wrong@127.0.0.1:%d" % r.port)
    wait_linked([a, b, c, d])
    for pub, sub, what in ((a, b, "password -> ACL user"), (c, d, "Unix socket")):
        sse = servutil.Sse(sub, "topic=urls")
        wait_for(lambda: (servutil.publish(pub, "urls", what) and False) or what in msgs(sse),
                 what + ": a message across the nodes")
        t.ok(True, what + ": linked, messages cross")
    t.eq(healthz(bad), 503, "a wrong password: not linked (/healthz 503)")
    wait_for(lambda: "WRONGPASS" in bad.stderr() or "invalid" in bad.stderr().lower(),
             "the wrong password logged")
    t.ok(True,
         "a wrong password: the node logs Redis's answer")
    bad.signal(signal.SIGTERM)
    t.exits(bad, 0, "the unlinked node after SIGTERM")
    stop_clean([a, b, c, d])
    r.stop()
    u.stop()


t.main()
