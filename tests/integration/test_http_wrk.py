#!/usr/bin/python3
"""test_http_wrk: wrk, a real load generator, against examples/http_hello
and `axon http`: keep-alive with many connections, pipelining 16 deep, and
static files; every response must be a 2xx and no socket may fail."""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("http: wrk")
ROOT = tempfile.mkdtemp(prefix="axon-http-wrk-")
with open(os.path.join(ROOT, "16k.bin"), "wb") as f:
    f.write(os.urandom(16384))
LUA = os.path.join(ROOT, "pipeline.lua")
with open(LUA, "w") as f:
    f.write("-- 16 requests back to back on each connection\n"
            "init = function(args)\n"
            "  local r = {}\n"
            "  for i = 1, 16 do r[i] = wrk.format(nil, wrk.path) end\n"
            "  req = table.concat(r)\n"
            "end\n"
            "request = function() return req end\n")


def started(p, port):
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:
        if not p.running():
            raise axtest.Failure("server exited%s" % p.err_note())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.02)
    raise axtest.Failure("server did not listen on %d" % port)


def wrk(url, *args):
    """Run wrk; returns (requests, responses that were not 2xx/3xx, socket errors)."""
    r = subprocess.run(["wrk", "-t", "1", "-c", "50", "-d", "2s", "--latency"] + list(args) +
                       [url], capture_output=True, timeout=30)
    out = r.stdout.decode()
    t.eq(r.returncode, 0, "wrk exit status (%s)" % r.stderr.decode()[-300:])
    m = re.search(r"(\d+) requests in", out)
    reqs = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errs = sum(int(x) for x in m.groups()) if m else 0
    print("# wrk %s %s: %d requests" % (" ".join(args), url, reqs))
    return reqs, bad, errs


def check(url, *args):
    reqs, bad, errs = wrk(url, *args)
    t.ok(reqs > 1000, "wrk got %d responses" % reqs)
    t.eq(bad, 0, "responses that were not 2xx")
    t.eq(errs, 0, "socket errors")


@t.test
def hello_keepalive_and_pipelined():
    port = axtest.free_port()
    p = started(axtest.Proc([axtest.example("http_hello"), str(port)]), port)
    url = "http://127.0.0.1:%d/" % port
    check(url)
    check(url, "-s", LUA)
    p.stop()


@t.test
def static_files_keepalive_and_pipelined():
    port = axtest.free_port()
    p = started(axtest.Proc([axtest.axon_bin(), "http", "--root", ROOT, "--listen",
                             "tcp://127.0.0.1:%d" % port]), port)
    url = "http://127.0.0.1:%d/16k.bin" % port
    check(url)
    check(url, "-s", LUA)
    t.ok(p.running(), "axon http still runs")
    p.stop()


try:
    t.main()
finally:
    shutil.rmtree(ROOT, ignore_errors=True)
