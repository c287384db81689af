#!/usr/bin/python3
"""test_http_slowloris: 2,000 connections trickle a request head one byte at
a time; a normal client still gets prompt answers, and the header timeout
closes the tricklers (with 408) while memory stays bounded."""
import os
import resource
import socket
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("axon http: slowloris", alarm=55)
ROOT = tempfile.mkdtemp(prefix="axon-http-slow-")
with open(os.path.join(ROOT, "index.html"), "w") as f:
    f.write("ok\n")
N = 2000
# 2,000 sockets here and as many in the server (which inherits the limit)
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < 3 * N:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 4 * N) if _hard > 0 else 4 * N, _hard))


rss_kb = axtest.rss_kb


@t.test
def trickle_does_not_block_others():
    port = axtest.free_port()
    s = axtest.Proc([axtest.axon_bin(), "http", "--root", ROOT, "--listen",
                     "tcp://127.0.0.1:%d" % port, "--header-timeout", "5"])
    deadline = time.monotonic() + axtest.TIMEOUT
    while "serving" not in s.stderr():
        t.ok(time.monotonic() < deadline and s.running(), "axon http starts%s" % s.err_note())
        time.sleep(0.02)
    rss0 = rss_kb(s.pid)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 100
    socks = []
    for _ in range(N):
        c = socket.create_connection(("127.0.0.1", port))
        c.setblocking(False)
        socks.append(c)
    start = time.monotonic()
    sent = 0
    worst = 0.0
    while time.monotonic() - start < 3.5:
        for c in socks:
            try:
                c.send(head[sent:sent + 1])
            except OSError:
                pass
        sent += 1
        t0 = time.monotonic()
        p = subprocess.run(["curl", "-s", "--max-time", "2", "http://127.0.0.1:%d/" % port],
                           stdout=subprocess.PIPE, timeout=5)
        worst = max(worst, time.monotonic() - t0)
        t.eq(p.stdout, b"ok\n", "a normal client is answered while %d trickle" % N)
        time.sleep(max(0.0, sent * 1.0 - (time.monotonic() - start)))
    t.ok(worst < 1.0, "answers stay quick (worst %.3f s)" % worst)
    rss1 = rss_kb(s.pid)
    print("# %d tricklers: RSS grew %d KiB, worst answer %.3f s" % (N, rss1 - rss0, worst))
    t.ok(rss1 - rss0 < 8 * 1024, "memory bounded: RSS grew %d KiB" % (rss1 - rss0))
    # the header timeout (5 s from the first byte) closes every trickler
    closed = 0
    got408 = 0
    end = time.monotonic() + 5
    for c in socks:
        c.setblocking(True)
        c.settimeout(max(0.05, end - time.monotonic()))
        data = b""
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    closed += 1
                    break
                data += d
        except (socket.timeout, ConnectionResetError):
            if data:
                closed += 1
        got408 += data.startswith(b"HTTP/1.1 408 ")
        c.close()
    t.eq(closed, N, "connections closed by the header timeout")
    t.ok(got408 >= N * 9 // 10, "408 Request Timeout sent (%d of %d)" % (got408, N))


try:
    t.main()
finally:
    import shutil
    shutil.rmtree(ROOT, ignore_errors=True)
