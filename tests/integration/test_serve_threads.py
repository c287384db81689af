#!/usr/bin/python3
"""axon serve --threads 4: publishers and subscribers on every thread's
loop, shared and disjoint topics, with delivery made outside the hub's lock
(src/hub/hub.c: route under the lock, write after it).

  (a) 8 publishers (their connections spread over the 4 loops by
      SO_REUSEPORT) each publish N messages to the shared topic th/shared
      and N to their own th/d<i % 4> at once; 16 subscribers (on every loop)
      each hold th/shared and one th/d<k>: every subscriber gets every
      message of its topics, each topic's sequence numbers 1..total with no
      gap or repeat (per-topic order, no loss), and each publisher's own
      messages in the order it sent them.

Under ThreadSanitizer (`make tsan` runs this against build-tsan, epoll
backend) the server's stderr must hold no ThreadSanitizer report; in the
other builds the same checks run without it.
"""

import asyncio
import json
import os
import time

import axtest
from servutil import Serve, metric

t = axtest.Tests("axon serve --threads 4: order and no loss across loops", alarm=400)

TSAN = "AXON_TSAN:BOOL=ON" in open(os.path.join(axtest.BUILD, "CMakeCache.txt")).read() \
    if os.path.exists(os.path.join(axtest.BUILD, "CMakeCache.txt")) else False
N = 60 if TSAN else 150  # messages per publisher per topic
PUBS, SUBS = 8, 16


@t.test
def four_threads_shared_and_disjoint_topics():
    import websockets
    srv = Serve("--threads", "4", "-d", "none", "--max-connections-per-ip", "off",
                "--msg-rate", "off", "--byte-rate", "off", "--ip-msg-rate", "off")
    url = "ws://127.0.0.1:%d/ws" % srv.http_port
    want = {"th/shared": PUBS * N}
    for k in range(4):
        want["th/d%d" % k] = sum(N for i in range(PUBS) if i % 4 == k)
    ready = []

    async def sub(k):
        async with websockets.connect(url, open_timeout=60, max_queue=None) as ws:
            await asyncio.wait_for(ws.recv(), 60)
            mine = ["th/shared", "th/d%d" % (k % 4)]
            for f in mine:
                await ws.send(json.dumps({"type": "subscribe", "topic": f}))
                await asyncio.wait_for(ws.recv(), 60)
            ready.append(k)
            got = {f: [] for f in mine}
            while sum(len(v) for v in got.values()) < sum(want[f] for f in mine):
                m = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if m.get("type") == "message":
                    got[m["topic"]].append((m["seq"], m["payload"]))
            return got

    async def pub(i):
        async with websockets.connect(url, open_timeout=60) as ws:
            await asyncio.wait_for(ws.recv(), 60)
            for n in range(N):
                for topic in ("th/shared", "th/d%d" % (i % 4)):
                    await ws.send(json.dumps({"type": "publish", "topic": topic,
                                              "payload": "%d:%d" % (i, n)}))
            oks = 0
            while oks < 2 * N:
                if json.loads(await asyncio.wait_for(ws.recv(), 60)).get("type") == "ok":
                    oks += 1

    async def main():
        subs = [asyncio.ensure_future(sub(k)) for k in range(SUBS)]
        deadline = time.monotonic() + 120
        while len(ready) < SUBS:
            failed = [s.exception() for s in subs if s.done() and s.exception()]
            if failed or time.monotonic() > deadline:
                raise axtest.Failure("%d of %d subscribed (%r)%s"
                                     % (len(ready), SUBS, failed[:1], srv.err_note()))
            await asyncio.sleep(0.05)
        await asyncio.gather(*[pub(i) for i in range(PUBS)])
        return await asyncio.gather(*subs)

    res = asyncio.run(main())
    for k, got in enumerate(res):
        for topic, msgs in got.items():
            t.eq([s for s, _ in msgs], list(range(1, want[topic] + 1)),
                 "subscriber %d, %s: sequence numbers" % (k, topic))
            last = {}
            for _, p in msgs:
                i, n = map(int, p.split(":"))
                t.eq(n, last.get(i, -1) + 1, "subscriber %d, %s: publisher %d's order" % (k, topic, i))
                last[i] = n
    t.eq(metric(srv, "axon_hub_delivered_total"),
         float(sum(want["th/shared"] + want["th/d%d" % (k % 4)] for k in range(SUBS))),
         "deliveries counted")
    srv.signal(15)
    srv.wait(60)
    err = srv.stderr()
    t.ok("ThreadSanitizer" not in err, "no ThreadSanitizer report:\n" + err[-6000:])


t.main()
