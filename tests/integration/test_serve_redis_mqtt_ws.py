#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_serve_redis_mqtt_ws: persistent MQTT sessions over WebSocket move
between `axon serve` nodes sharing a real redis-server, whichever thread
of a node (`-t 2`) served them (issue 17, docs/cluster.md "MQTT").

A node with two threads serves MQTT over WebSocket on both (the kernel
picks the thread of each connection), so 16 sessions are made there: the
chance that none lands on the second thread is 1 in 65,536.

- Made on node a (-t 2) over WebSocket: each session's hash is in Redis
  with its TTL.  Away, QoS 1 messages published
  on node b: back on node b, every session is present with its messages,
  in order.
- Taken back by node a (its threads claim them from Redis), away, back
  on node a (on the same thread or the other): present, with what was
  queued; a second connection on node a takes the session over whichever
  thread each is on (the first is closed).
- Away again, more messages: back on node b, each gets what was queued
  on node a (node a's threads let the sessions go, their rows in Redis).
- Nothing published while such sessions move is missed: 4 WebSocket
  sessions on node a (-t 2) under wildcards over 3 topics each move to
  node b mid-stream (12,000 QoS 1 messages published on node b without
  pause); each gets every message, each topic in order."""
import os
import shutil
import signal
import tempfile
import time

import axtest
import redisutil
import servutil
from mqttutil import Client, Raw, connect_pkt, qos1_stream

t = axtest.Tests("axon serve: MQTT over WebSocket sessions across nodes, every thread", alarm=300)

if not shutil.which("redis-server"):
    raise SystemExit("not ok - redis-server is missing: run scripts/deps.sh test")

N = 16


def node(r, *args):
    n = servutil.Serve("--redis", r.url, *args)
    redisutil.wait_for(lambda: redisutil.healthz(n) == 200, "the node linked to Redis")
    return n


def ws(srv, i):
    return Client(srv.http_port, "wsdev-%d" % i, clean=False, transport="websockets")


def back(srv, i, want, where):
    d = ws(srv, i)
    rc, present, _ = d.connect()
    got = []
    if present:
        try:
            got = [d.get().payload for _ in want]
        except axtest.Failure:
            pass
    d.close()
    return (rc, present, got) == (0, 1, want), "%s: session %d present %d, got %r" % (
        where, i, present, got)


@t.test
def websocket_sessions_move_from_every_thread():
    r = redisutil.Redis()
    a, b = node(r, "-t", "2"), node(r)
    for i in range(N):
        d = ws(a, i)
        rc, present, _ = d.connect()
        t.eq((rc, present), (0, 0), "node a: new session %d over WebSocket" % i)
        t.eq(d.subscribe("wsq/%d" % i, 1), [1], "node a: session %d subscribed" % i)
        d.close()
    # every session's hash in Redis, with the TTL its thread keeps (away:
    # the session expiry, a week)
    def ttls():
        return [int(r.cli("PTTL", redisutil.sess_key("wsdev-%d" % i))) for i in range(N)]
    redisutil.wait_for(lambda: all(x > 3600 * 1000 for x in ttls()),
                       "every session's hash in Redis with its TTL")
    t.ok(True, "node a: every session's hash in Redis, TTL %d..%d ms" % (min(ttls()), max(ttls())))
    p = Client(b.mqtt_port, "pub-b")
    p.connect()
    for i in range(N):
        p.publish("wsq/%d" % i, b"one", qos=1)
        p.publish("wsq/%d" % i, b"two", qos=1)
    time.sleep(0.5)  # (they travel through Redis to node a's sessions)
    bad = [why for ok, why in (back(b, i, [b"one", b"two"], "node b") for i in range(N)) if not ok]
    t.eq(bad, [], "node b: every session made on node a's threads, with its queued messages")
    # back to node a (claimed by whichever thread), away, and back on node
    # a again: on the same thread or the other one, what was queued
    bad = [why for ok, why in (back(a, i, [], "node a") for i in range(N)) if not ok]
    t.eq(bad, [], "node a: every session claimed back from Redis on its threads")
    for i in range(N):
        p.publish("wsq/%d" % i, b"three", qos=1)
    time.sleep(0.5)
    bad = [why for ok, why in (back(a, i, [b"three"], "node a") for i in range(N)) if not ok]
    t.eq(bad, [], "node a: every session again on either thread, with what was queued")
    # a second connection on node a takes the session over, whichever
    # thread each is on: the first is closed
    firsts = []
    for i in range(N):
        d = ws(a, i)
        d.connect()
        firsts.append(d)
    for i in range(N):
        d2 = ws(a, i)
        t.eq(d2.connect()[:2], (0, 1), "node a: session %d present for the second connection" % i)
        try:
            rc = firsts[i].disconnects.get(timeout=axtest.TIMEOUT)
        except Exception:
            rc = None
        t.ok(rc is not None, "node a: session %d's first connection closed (%r)" % (i, rc))
        firsts[i].c.loop_stop()
        d2.close()
    for i in range(N):
        p.publish("wsq/%d" % i, b"four", qos=1)
    time.sleep(0.5)
    bad = [why for ok, why in (back(b, i, [b"four"], "node b") for i in range(N)) if not ok]
    t.eq(bad, [], "node b: every session again, with what node a's threads queued")
    p.close()
    for s in (a, b):
        s.signal(signal.SIGTERM)
    for s in (a, b):
        t.exits(s, 0, "axon serve after SIGTERM")
    r.stop()


@t.test
def nothing_published_while_websocket_sessions_move_is_missed():
    r = redisutil.Redis()
    conf = os.path.join(tempfile.mkdtemp(prefix="axon-wsmove-"), "axon.conf")
    with open(conf, "w") as f:
        f.write("mqtt_queued 100000\nhistory_count 100000\nmsg_rate off\nip_msg_rate off\n")
    a, b = node(r, "-c", conf, "-t", "2"), node(r, "-c", conf)
    K, n = 4, 12000

    def topic(i):
        return "wm/%d/%d" % (i % K, (i // K) % 3)

    subs = []
    for k in range(K):
        d = Client(a.http_port, "wsmove-%d" % k, clean=False, transport="websockets")
        t.eq(d.connect()[:2], (0, 0), "node a: session wsmove-%d over WebSocket" % k)
        t.eq(d.subscribe("wm/%d/#" % k, 1), [1], "node a: wsmove-%d subscribed" % k)
        subs.append(d)
    pub = Raw(b.mqtt_port)
    pub.send(connect_pkt("wsmove-pub"))
    t.eq(pub.packet()[0], 2, "the publisher's CONNACK")
    stop, sender = qos1_stream(pub, n, topic)
    got = [[] for _ in range(K)]
    for k, d in enumerate(subs):
        got[k] += [(m.topic, int(m.payload)) for m in (d.get() for _ in range(100))]
    for k, d in enumerate(subs):  # mid-stream, each to node b
        d.close()
        while not d.msgs.empty():  # (taken and acknowledged by Paho before the close)
            m = d.msgs.get_nowait()
            got[k].append((m.topic, int(m.payload)))
        subs[k] = Client(b.http_port, "wsmove-%d" % k, clean=False, transport="websockets")
        t.eq(subs[k].connect()[:2], (0, 1), "node b: wsmove-%d present, mid-stream" % k)
    sender.join()
    t.eq(sender.closed_at, None, "the publisher's messages all acknowledged")
    for k, d in enumerate(subs):
        want = {i for i in range(1, n + 1) if i % K == k}
        try:
            while len({i for _, i in got[k]}) < len(want):
                m = d.get(20)  # (a busy machine, a sanitizer build: generous)
                got[k].append((m.topic, int(m.payload)))
        except axtest.Failure:  # (said below)
            pass
        d.close()
        missing = sorted(want - {i for _, i in got[k]})
        t.eq(missing[:20], [], "wsmove-%d: every message reached it (%d missing)" % (k, len(missing)))
        back = []
        for tp in {tp for tp, _ in got[k]}:
            seq = [i for x, i in got[k] if x == tp]
            seen = set()
            for x, y in zip(seq, seq[1:]):
                seen.add(x)
                if y < x and y not in seen:
                    back.append((tp, x, y))
        t.eq(back[:10], [], "wsmove-%d: each topic in order" % k)
    stop.set()
    pub.close()
    for s in (a, b):
        s.signal(signal.SIGTERM)
    for s in (a, b):
        t.exits(s, 0, "axon serve after SIGTERM")
    r.stop()


t.main()
