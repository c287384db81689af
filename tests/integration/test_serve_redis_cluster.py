#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_serve_redis_cluster: two `axon serve` nodes on a real three-master
Redis Cluster made by the test (issue 17, docs/cluster.md "Redis Cluster").

- Sharded: topics whose slots are on three different masters; WebSocket
  subscribers of all of them on both nodes, HTTP publishers on both nodes:
  every subscriber gets every topic's messages in the same order with
  consecutive seqs; each topic's channel is a shard channel of the master
  that holds its slot (PUBSUB SHARDCHANNELS there, no classic channel).
- Wildcards (sharded pub/sub has none): a `chat/+` subscriber on one node
  gets the messages of every shard published on the other, in order.
- Resume from either node: `since` on the node that had not seen the topic.
- Presence: each node lists both nodes' members; join and leave events
  cross nodes.
- A slot moved to another master (MIGRATE and CLUSTER SETSLOT, as
  `redis-cli --cluster reshard` does): publishes follow MOVED, the
  subscriptions follow the slot (Redis drops them: the node reads the
  slots again), delivery goes on with no gap.
- MQTT persistent sessions (hashes on every master): subscribed on one
  node, away, messages queued there, back on the other node: session
  present with what was queued; the same client id on the first node
  again takes it over (the second node's connection is closed).
- A wildcard session whose node died, with messages published meanwhile
  on topics no node had (one per master): the node that takes it finds
  them in the masters' topic indexes and delivers them all, in order."""
import asyncio
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import axtest
import redisutil
import servutil

t = axtest.Tests("axon serve: nodes on a Redis Cluster", alarm=180)
wait_for = redisutil.wait_for
healthz = redisutil.healthz

if not shutil.which("redis-server") or not shutil.which("redis-cli"):
    raise SystemExit("not ok - redis-server is missing: run scripts/deps.sh test")


def low_port():
    """A free TCP port below 32768 whose cluster bus port (+10000) is free too."""
    import random
    import socket
    for _ in range(200):
        port = random.randint(10000, 22000)
        ok = True
        for p in (port, port + 10000):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise axtest.Failure("no free port below 32768")


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True,
                         text=True, timeout=10)
    return out.stdout.strip()


class Cluster:
    """Three masters, no replicas, slots split by redis-cli --cluster create."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="axon-rc-")
        self.ports = [low_port() for _ in range(3)]
        self.procs = []
        for p in self.ports:  # (not axtest.Proc: the cluster outlives a test case)
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--protected-mode", "no", "--dir", self.dir,
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes-%d.conf" % p,
                 "--cluster-node-timeout", "2000"], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        for p in self.ports:
            wait_for(lambda: cli(p, "PING") == "PONG", "redis-server on %d" % p)
        out = subprocess.run(["redis-cli", "--cluster", "create"] +
                             ["127.0.0.1:%d" % p for p in self.ports] + ["--cluster-yes"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            raise axtest.Failure("redis-cli --cluster create: " + out.stdout + out.stderr)
        for p in self.ports:
            wait_for(lambda: "cluster_state:ok" in cli(p, "CLUSTER", "INFO"),
                     "the cluster to be ok on %d" % p)
        self.urls = ["redis://127.0.0.1:%d" % p for p in self.ports]

    def ids(self):
        """port -> node id"""
        return {p: cli(p, "CLUSTER", "MYID") for p in self.ports}

    def owner(self, key):
        """The port of the master holding key's slot."""
        slot = int(cli(self.ports[0], "CLUSTER", "KEYSLOT", key))
        for line in cli(self.ports[0], "CLUSTER", "NODES").splitlines():
            f = line.split()
            port = int(f[1].split(":")[1].split("@")[0])
            for r in f[8:]:
                lo, _, hi = r.partition("-")
                if lo.isdigit() and int(lo) <= slot <= int(hi or lo):
                    return port
        raise axtest.Failure("no master for " + key)

    def move_slot(self, key, dst):
        """Move key's slot (and its keys) to the master on port dst."""
        slot = cli(self.ports[0], "CLUSTER", "KEYSLOT", key)
        src = self.owner(key)
        ids = self.ids()
        cli(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[src])
        cli(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[dst])
        keys = cli(src, "CLUSTER", "GETKEYSINSLOT", slot, "100").split()
        if keys:
            cli(src, "MIGRATE", "127.0.0.1", str(dst), "", "0", "5000", "KEYS", *keys)
        for p in self.ports:
            cli(p, "CLUSTER", "SETSLOT", slot, "NODE", ids[dst])

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_cluster = []


def cluster():
    """One cluster for the whole script (made once: a few seconds)."""
    if not _cluster:
        _cluster.append(Cluster())
    return _cluster[0]


def topics_on_each_master(c):
    """One topic per master: chat/t0, chat/t1, ... until each has one."""
    got = {}
    for k in range(200):
        topic = "chat/t%d" % k
        got.setdefault(c.owner("axon:{%s}:seq" % topic), topic)
        if len(got) == 3:
            return [got[p] for p in c.ports]
    raise axtest.Failure("no topic on every master")


class WsClients:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.th = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.th.start()

    def run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.th.join(5)


async def ws_open(srv, topics, since=None):
    import websockets
    ws = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port)
    for i, topic in enumerate(topics):
        req = {"type": "subscribe", "topic": topic, "id": i + 1}
        if since is not None:
            req["since"] = since
        await ws.send(json.dumps(req))
        while True:
            r = json.loads(await asyncio.wait_for(ws.recv(), axtest.TIMEOUT))
            if r["type"] == "error":
                raise axtest.Failure("subscribe: %r" % r)
            if r["type"] == "ok":
                break
    return ws


async def ws_collect(ws, want, timeout=20):
    """(topic, seq, payload) of messages until `want` messages came."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            r = json.loads(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            break
        if r["type"] in ("message", "gap"):
            got.append((r["topic"], r.get("seq"), r.get("payload", r["type"])))
    return got


def by_topic(got):
    out = {}
    for topic, seq, payload in got:
        out.setdefault(topic, []).append((seq, payload))
    return out


def names(srv):
    return sorted(servutil.curl_json(srv.base + "/api/presence/lobby")["names"])


def two_nodes(c):
    """One node given one URL and --redis-cluster, the other all three URLs."""
    a = servutil.Serve("--redis-cluster", c.urls[0])
    b = servutil.Serve("--redis", ",".join(c.urls[1:] + c.urls[:1]), "-t", "2")
    try:
        wait_for(lambda: healthz(a) == 200 and healthz(b) == 200, "both nodes linked")
    except axtest.Failure as e:
        raise axtest.Failure("%s; a: %s; b: %s" % (e, a.stderr()[-600:], b.stderr()[-600:]))
    return a, b


def stop_clean(srvs):
    for s in srvs:
        s.signal(signal.SIGTERM)
    for s in srvs:
        t.exits(s, 0, "axon serve after SIGTERM")


def warm(srvs, wss, ws, topics):
    """Until every node's subscriptions are in place: one message per topic
    that every subscriber gets (then the counts start from there)."""
    for topic in topics:
        servutil.publish(srvs[0], topic, "warm")
    for w in wss:
        got = ws.run(ws_collect(w, len(topics)))
        if len(got) != len(topics):
            raise axtest.Failure("warm-up: got %r" % got)


@t.test
def sharded_order_and_resume_on_either_node():
    c = cluster()
    ws = WsClients()
    try:
        topics = topics_on_each_master(c)
        a, b = two_nodes(c)
        # a third node (one seed URL, --redis-cluster) with an SSE subscriber
        c3 = servutil.Serve("--redis-cluster", c.urls[2])
        wait_for(lambda: healthz(c3) == 200, "node c linked")
        sse = servutil.Sse(c3, "topic=" + topics[0])
        srvs = [a, b, c3]
        wss = [ws.run(ws_open(s, topics)) for s in (a, b)]
        warm(srvs, wss, ws, topics)
        sse.wait_events(1)
        n = 20
        def pub(i):
            for k in range(n):
                for topic in topics:
                    servutil.publish(srvs[i], topic, "n%d-%d" % (i, k))
        ths = [threading.Thread(target=pub, args=(i,)) for i in range(3)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        seen = [by_topic(ws.run(ws_collect(w, 3 * n * len(topics)))) for w in wss]
        for topic in topics:
            got0, got1 = seen[0].get(topic, []), seen[1].get(topic, [])
            t.eq(len(got0), 3 * n, "%s: every message of the 3 nodes on node a" % topic)
            t.eq(got1, got0, "%s: node b in node a's order" % topic)
            seqs = [s for s, _ in got0]
            t.eq(seqs, list(range(2, 2 + 3 * n)), "%s: consecutive seqs" % topic)
        evs = sse.wait_events(1 + 3 * n)
        t.eq([(e["json"]["seq"], e["json"]["payload"]) for e in evs[1:]], seen[0][topics[0]],
             "node c (SSE): %s in node a's order" % topics[0])
        for port, topic in zip(c.ports, topics):
            shard = cli(port, "PUBSUB", "SHARDCHANNELS", "axon:{%s}" % topic)
            t.eq(shard, "axon:{%s}" % topic, "%s: a shard channel of its master" % topic)
            t.eq(cli(port, "PUBSUB", "CHANNELS", "axon:*"), "", "no classic channel on %d" % port)
        # wildcards: sharded pub/sub has no patterns; a node with a wildcard
        # filter says so and publishes then go to classic pub/sub too
        wild = ws.run(ws_open(a, ["chat/+"]))
        deadline = time.monotonic() + axtest.TIMEOUT
        while not ws.run(ws_collect(wild, 1, 0.3)):
            if time.monotonic() > deadline:
                raise axtest.Failure("the wildcard subscriber got nothing")
            servutil.publish(b, topics[1], "wwarm")
        for k in range(5):
            for topic in topics:
                servutil.publish(b, topic, "p%d" % k)
        got = []
        while len(got) < 15:  # (after the warm-up ones still on their way)
            more = ws.run(ws_collect(wild, 1, axtest.TIMEOUT))
            if not more:
                break
            got += [g for g in more if g[2].startswith("p")]
        per = by_topic(got)
        for topic in topics:
            t.eq([p for _, p in per.get(topic, [])], ["p%d" % k for k in range(5)],
                 "chat/+ on node a: %s from node b, in order" % topic)
        ws.run(wild.close())
        # resume: a topic node b never had, from a since, on either node
        fresh = "chat/fresh"
        for k in range(5):
            servutil.publish(a, fresh, "f%d" % k)
        for s in (b, a):
            w = ws.run(ws_open(s, [fresh], since=2))
            got = ws.run(ws_collect(w, 3))
            t.eq([(q, p) for _, q, p in got], [(3, "f2"), (4, "f3"), (5, "f4")],
                 "resume since 2 on node %s" % ("b" if s is b else "a"))
            servutil.publish(b if s is a else a, fresh, "live%d" % len(got))
            t.eq([p for _, _, p in ws.run(ws_collect(w, 1))], ["live3"], "then live")
            ws.run(w.close())
        # presence through the cluster: the room's hash and its shard channel
        alice = a.line_client("alice")
        wait_for(lambda: names(a) == ["alice"], "alice on node a")
        time.sleep(0.3)  # node a has read the room's entries: what comes now is news
        bob = b.line_client("bob")
        servutil.want(alice, "* bob joined lobby")
        carol = c3.line_client("carol")
        for s in srvs:
            wait_for(lambda: names(s) == ["alice", "bob", "carol"], "the 3 names on each node")
        servutil.want(alice, "* carol joined lobby")
        carol.close()
        servutil.want(alice, "* carol left lobby")
        bob.close()
        servutil.want(alice, "* bob left lobby")
        alice.close()
        for w in wss:
            ws.run(w.close())
        stop_clean(srvs)
    finally:
        ws.close()


@t.test
def mqtt_sessions_move_between_nodes():
    from mqttutil import Client
    c = cluster()
    a, b = two_nodes(c)
    cids = ["dev-%d" % i for i in range(6)]  # (their hashes spread over the masters)
    for cid in cids:
        d = Client(a.mqtt_port, cid, clean=False)
        d.connect()
        d.subscribe("fleet/%s/cmd" % cid, 1)
        d.close()
    p = Client(b.mqtt_port, "pub")
    p.connect()
    for cid in cids:
        p.publish("fleet/%s/cmd" % cid, cid.encode(), qos=1)
    time.sleep(0.5)  # (queued on node a, through the cluster)
    back = {}
    for cid in cids:
        d = Client(b.mqtt_port, cid, clean=False)
        _, present, _ = d.connect()
        back[cid] = (present, d.get().payload)
        d.close()
    t.eq(back, {cid: (1, cid.encode()) for cid in cids},
         "node b: every session of node a, with what was queued")
    d = Client(b.mqtt_port, cids[0], clean=False)
    d.connect()
    d2 = Client(a.mqtt_port, cids[0], clean=False)
    _, present, _ = d2.connect()
    t.eq(present, 1, "node a: the session taken back")
    t.ok(d.disconnects.get(timeout=axtest.TIMEOUT) != 0, "node b: its connection closed")
    d.c.loop_stop()
    p.publish("fleet/%s/cmd" % cids[0], b"again", qos=1)
    t.eq(d2.get().payload, b"again", "node a: live in the taken-over session")
    d2.close()
    p.close()
    stop_clean([a, b])


@t.test
def a_wildcard_topic_no_node_had_heard_of_is_resumed():
    # a session on node a under wild/+/cmd; node a dies; node b publishes
    # to topics no node had, one on each master; the session, back on node
    # b, gets them all (found in each master's topic index), then live
    from mqttutil import Client
    c = cluster()
    a, b = two_nodes(c)
    new = {}
    for k in range(300):
        topic = "wild/n%d/cmd" % k
        new.setdefault(c.owner("axon:{%s}:seq" % topic), topic)
    new = [new[p] for p in c.ports if p in new]
    t.eq(len(new), 3, "a new topic on each master")
    d = Client(a.mqtt_port, "wild-dev", clean=False)
    d.connect()
    t.eq(d.subscribe("wild/+/cmd", 1), [1], "node a: wild/+/cmd, QoS 1")
    p = Client(b.mqtt_port, "wild-pub")
    p.connect()
    first = None
    for _ in range(30):  # (until node b heard that node a has a wildcard filter)
        p.publish("wild/known/cmd", b"k0", qos=1)
        try:
            first = d.get(1).payload
            break
        except axtest.Failure:
            pass
    t.eq(first, b"k0", "node a: a first message")
    d.close()
    time.sleep(0.3)
    a.signal(signal.SIGKILL)
    a.wait()
    sent = [(topic, b"%s-%d" % (topic.encode(), i)) for i in range(2) for topic in new]
    for topic, payload in sent:
        p.publish(topic, payload, qos=1)
    d = Client(b.mqtt_port, "wild-dev", clean=False)
    _, present, _ = d.connect()
    t.eq(present, 1, "node b: the session of the dead node a")
    got = []
    try:
        while len(got) < len(sent):
            m = d.get(10)
            if m.topic in new:  # (not a k0 sent again above)
                got.append((m.topic, m.payload))
    except axtest.Failure:
        pass
    t.eq(sorted(got), sorted(sent), "node b: every message of the new topics, once")
    for topic in new:
        t.eq([x for x in got if x[0] == topic], [x for x in sent if x[0] == topic],
             "node b: %s in order" % topic)
    p.publish(new[0], b"live", qos=1)
    t.eq(d.get().payload, b"live", "node b: then live")
    d.close()
    p.close()
    stop_clean([b])


@t.test
def a_moved_slot_is_followed():
    c = cluster()
    ws = WsClients()
    try:
        topic = "chat/moving"
        a, b = two_nodes(c)
        srvs = [a, b]
        wss = [ws.run(ws_open(s, [topic])) for s in srvs]
        warm(srvs, wss, ws, [topic])
        for k in range(3):
            servutil.publish(srvs[k % 2], topic, "before%d" % k)
        src = c.owner("axon:{%s}:seq" % topic)
        dst = next(p for p in c.ports if p != src)
        c.move_slot("axon:{%s}:seq" % topic, dst)
        t.eq(c.owner("axon:{%s}:seq" % topic), dst, "the slot is on another master")
        for k in range(6):  # the first ones may meet MOVED: followed
            r = servutil.publish(srvs[k % 2], topic, "after%d" % k)
            t.ok(r.get("seq"), "publish %d after the move acknowledged: %r" % (k, r))
        for i, w in enumerate(wss):
            got = ws.run(ws_collect(w, 9))
            t.eq([p for _, _, p in got],
                 ["before0", "before1", "before2"] + ["after%d" % k for k in range(6)],
                 "node %d: everything, in order, no gap" % i)
        wait_for(lambda: cli(dst, "PUBSUB", "SHARDNUMSUB", "axon:{%s}" % topic).split()[-1] == "2",
                 "both nodes subscribed on the new master")
        for w in wss:
            ws.run(w.close())
        stop_clean(srvs)
    finally:
        ws.close()


try:
    t.main()
finally:
    for c in _cluster:
        c.stop()
