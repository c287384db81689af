#!/usr/bin/python3
"""axon serve killed (kill -9) while publishers are busy: what was
acknowledged survives, sequence numbers are never reused, and a subscriber
that resumes across the crash misses nothing.

Each round: 4 HTTP publishers (one request at a time, keep-alive) and 2
WebSocket publishers (up to 32 publishes in flight each) write to two
topics while one Server-Sent Events subscriber per topic watches; the
server is killed with SIGKILL at a random moment 0.3 to 1.0 s in, and
started again on the same data directory.  Then, asserted:
  (a) every acknowledged message (HTTP 200, WebSocket "ok") is in the
      store (history.db, read beside the restarted server) with the
      sequence number it was acknowledged with, and the same payload;
  (b) no number is reused: every number acknowledged or delivered before
      the crash keeps its payload (or is gone), the same over all rounds,
      and what is published after the restart gets numbers above all of
      them;
  (c) a subscriber resuming with Last-Event-ID (the last id it saw before
      the crash), after 20 new messages were published, gets every one of
      them and every acknowledged message it had not seen.
For `--fsync always` (on disk before the acknowledgement) and for
`--fsync batch` (committed before the acknowledgement: a crash of the
process loses nothing acknowledged; only a power cut may lose the last
200 ms, which kill -9 is not).  Three rounds per mode on one data
directory, so a restart after a restart is tested too.
"""

import asyncio
import http.client
import json
import random
import signal
import sqlite3
import threading
import time

import axtest
from servutil import Serve, Sse, publish

t = axtest.Tests("axon serve crash (kill -9) durability", alarm=170)

TOPICS = ["crash/a", "crash/b"]
HTTP_PUBS, WS_PUBS, WS_WINDOW = 4, 2, 32
ROUNDS = 3
NEW = 20  # published after each restart


class Book:
    """What the clients saw: acknowledged (topic, seq) -> payload."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}
        self.errors = []

    def ack(self, topic, seq, payload):
        with self.lock:
            was = self.acked.get((topic, seq))
            if was is not None and was != payload:
                self.errors.append("seq %s/%d acknowledged for %r and for %r" %
                                   (topic, seq, was, payload))
            self.acked[(topic, seq)] = payload


def http_publisher(port, k, book, stop):
    n = 0
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while not stop.is_set():
            topic = TOPICS[n % 2]
            payload = "h%d-%d-%d" % (k, n, random.randrange(1 << 30))
            conn.request("POST", "/api/publish/" + topic, body=payload.encode())
            r = conn.getresponse()
            body = r.read()
            if r.status == 200:
                book.ack(topic, json.loads(body)["seq"], payload)  # (cut short: ValueError)
            elif r.status == 503:
                time.sleep(0.05)
            n += 1
    except (OSError, http.client.HTTPException, ValueError):
        pass  # the server is gone


def ws_publisher(port, k, book, stop):
    import websockets

    async def run():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % port) as ws:
            await ws.recv()  # welcome
            sent = {}
            n = 0
            while not stop.is_set():
                while len(sent) < WS_WINDOW:
                    topic = TOPICS[n % 2]
                    payload = "w%d-%d-%d" % (k, n, random.randrange(1 << 30))
                    sent[n] = (topic, payload)
                    await ws.send(json.dumps({"type": "publish", "topic": topic,
                                              "payload": payload, "id": n}))
                    n += 1
                m = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if m.get("type") in ("ok", "error") and m.get("id") in sent:
                    topic, payload = sent.pop(m["id"])
                    if m["type"] == "ok":
                        book.ack(m["topic"], m["seq"], payload)
                        if m["topic"] != topic:
                            book.errors.append("ok for %r names %r" % (topic, m["topic"]))
    try:
        asyncio.run(run())
    except Exception:  # the server is gone (ConnectionClosed, reset, timeout)
        pass


def history(srv, topic):
    """Everything stored for `topic` (more than /api/history's 10,000 at
    most: read the store itself, as a second reader beside the server)."""
    db = sqlite3.connect("file:%s/history.db?mode=ro" % srv.data, uri=True, timeout=10)
    try:
        rows = db.execute("SELECT seq, payload FROM messages WHERE topic = ?", (topic,))
        return {seq: bytes(p).decode() for seq, p in rows}
    finally:
        db.close()


def one_round(mode, srv, book, delivered, rnd):
    """Publish, watch, kill -9; returns the restarted server."""
    subs = {tp: Sse(srv, "topic=" + tp) for tp in TOPICS}
    for s in subs.values():  # subscribed before the first publish
        s.wait_output(lambda o: b"retry:" in o, what="the event stream")
    stop = threading.Event()
    ths = [threading.Thread(target=http_publisher, args=(srv.http_port, k, book, stop))
           for k in range(HTTP_PUBS)]
    ths += [threading.Thread(target=ws_publisher, args=(srv.http_port, k, book, stop))
            for k in range(WS_PUBS)]
    for th in ths:
        th.start()
    time.sleep(random.uniform(0.3, 1.0))
    srv.signal(signal.SIGKILL)
    srv.wait()
    stop.set()
    for th in ths:
        th.join(10)
    last_seen = {}
    for tp, s in subs.items():
        s.wait(10)  # curl ends with the connection
        seen = [(int(e["id"]), e["json"]["payload"]) for e in s.events()
                if e.get("event") == "message"]
        last_seen[tp] = seen[-1][0] if seen else 0
        for seq, payload in seen:
            was = delivered.setdefault((tp, seq), payload)
            t.ok(was == payload, "%s round %d: %s seq %d delivered as %r and as %r" %
                 (mode, rnd, tp, seq, was, payload))
    t.ok(not book.errors, "%s round %d: %s" % (mode, rnd, book.errors[:3]))
    t.ok(len(book.acked) > 0, "%s round %d: some publishes were acknowledged" % (mode, rnd))

    srv = Serve("--fsync", mode, "--history", "100000", data=srv.data)
    for tp in TOPICS:
        have = history(srv, tp)
        mine = {s: p for (x, s), p in book.acked.items() if x == tp}
        lost = sorted(s for s in mine if have.get(s) != mine[s])
        t.ok(not lost, "%s round %d: %d of %d acknowledged messages of %s lost or changed "
             "(seq %s)" % (mode, rnd, len(lost), len(mine), tp, lost[:10]))
        for (x, s), p in delivered.items():
            if x == tp and s in have:
                t.ok(have[s] == p, "%s round %d: %s seq %d was delivered as %r, is now %r" %
                     (mode, rnd, tp, s, p, have[s]))
    used = {tp: max([s for (x, s) in list(delivered) + list(book.acked) if x == tp] or [0])
            for tp in TOPICS}
    new = {tp: [] for tp in TOPICS}
    for i in range(NEW):
        for tp in TOPICS:
            payload = "n%d-%d-%d" % (rnd, i, random.randrange(1 << 30))
            seq = publish(srv, tp, payload)["seq"]
            new[tp].append((seq, payload))
            book.ack(tp, seq, payload)
    for tp in TOPICS:
        t.ok(new[tp][0][0] > used[tp], "%s round %d: %s continues at %d, but %d was already "
             "handed out" % (mode, rnd, tp, new[tp][0][0], used[tp]))
        # the subscriber comes back with the last id it saw
        since = last_seen[tp]
        want = {s: p for (x, s), p in book.acked.items() if x == tp and s > since}
        s = Sse(srv, "topic=" + tp, headers=["Last-Event-ID: %d" % since])
        deadline = time.monotonic() + axtest.TIMEOUT
        while True:
            got = {int(e["id"]): e["json"]["payload"] for e in s.events()
                   if e.get("event") == "message"}
            missing = sorted(q for q in want if got.get(q) != want[q])
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        s.stop()
        t.ok(not missing, "%s round %d: resuming %s after %d missed %d of %d (seq %s)" %
             (mode, rnd, tp, since, len(missing), len(want), missing[:10]))
    return srv


def crash_rounds(mode):
    srv = Serve("--fsync", mode, "--history", "100000")
    book, delivered = Book(), {}
    for rnd in range(1, ROUNDS + 1):
        srv = one_round(mode, srv, book, delivered, rnd)
    srv.stop()


@t.test
def fsync_always_keeps_every_ack():
    crash_rounds("always")


@t.test
def fsync_batch_keeps_every_ack_through_kill9():
    crash_rounds("batch")


t.main()
