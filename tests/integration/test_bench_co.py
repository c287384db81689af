#!/usr/bin/python3
"""Coordinated omission: a server that stalls 100 ms once a second
(stall_server.py).  At a constant rate, axon bench -R counts each request
from the time it was meant to be sent, so the requests that queued behind
the stall show: p99 is most of the stall.  Closed loop, the same server
looks almost perfect (each connection is blocked by the stall once, so
only a handful of samples see it); both figures are printed side by side."""

import json
import os
import subprocess

import axtest
from axtest import Failure, Proc, axon_bin

t = axtest.Tests("axon bench: coordinated omission", alarm=60)
HERE = os.path.dirname(os.path.abspath(__file__))


def stall_server():
    port = axtest.free_port()
    p = Proc(["/usr/bin/python3", os.path.join(HERE, "stall_server.py"), str(port), "100", "1"])
    p.wait_output(lambda o: b"listening" in o, what="the stall server's ready line")
    return "http://127.0.0.1:%d/" % port


def bench(*args):
    r = subprocess.run([axon_bin(), "bench", "--json", "--timeout", "5"] + list(args),
                       capture_output=True, timeout=30)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise Failure("axon bench %s: %r %r" % (" ".join(args), r.stdout[:300], r.stderr[-300:]))


@t.test
def constant_rate_shows_the_stall_closed_loop_hides_it():
    url = stall_server()
    opened = bench("-c", "10", "-R", "500", "-d", "3", url)
    closed = bench("-c", "10", "-d", "3", url)
    o99, c99 = opened["latency_us"]["p99"], closed["latency_us"]["p99"]
    print("# p99 at -R 500 (open loop): %.1f ms; closed loop: %.1f ms (%.0f req/s); "
          "max %.1f / %.1f ms" % (o99 / 1000, c99 / 1000, closed["per_second"],
                                  opened["latency_us"]["max"] / 1000,
                                  closed["latency_us"]["max"] / 1000))
    t.eq(opened["errors"], 0, "errors at -R")
    t.ok(opened["per_second"] > 400, "the rate was kept: %.0f/s" % opened["per_second"])
    # 10% of the time the server is stalled: requests meant for the last
    # 1% of the whole time waited 90-100 ms.  50 ms leaves room for timing.
    t.ok(o99 >= 50000, "open-loop p99 %.1f ms does not show the 100 ms stall" % (o99 / 1000))
    t.ok(opened["latency_us"]["max"] >= 80000, "max shows the stall")
    # Closed loop: the stall is hidden from the percentiles.
    t.ok(c99 * 2 < o99, "closed-loop p99 %.1f ms is not below the open-loop %.1f ms" % (
        c99 / 1000, o99 / 1000))
    t.ok(opened["generator"]["valid"], "a valid run: %s" % opened["generator"]["why"])


t.main()
