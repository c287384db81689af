#!/usr/bin/python3
"""axon serve: see what happens.

  (a) requests the HTTP server refuses before any gateway sees them (400,
      414, 431) count in axon_errors_total{gateway="http"}, as
      docs/protocol.md says, and nowhere else; so do those the API refuses;
  (b) the access log: off by default; --access-log FILE writes the same
      lines as `axon http` (common, combined, json), refused requests
      included; `access_log` and `access_log_format` in the config file;
      '-' is stdout; SIGHUP reopens the file (log rotation)."""
import json
import os
import re
import signal
import socket
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: errors and the access log", alarm=60)


def metric(srv, name):
    rc, out, err = servutil.curl(srv.base + "/metrics")
    if rc != 0:
        raise axtest.Failure("GET /metrics: %s" % err)
    for line in out.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise axtest.Failure("no %s in /metrics" % name)


def refused(port, raw):
    """Send raw bytes; the status the server answers with (it then closes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=axtest.TIMEOUT)
    try:
        s.sendall(raw)
    except OSError:
        pass  # it may answer and close before taking everything
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d+) ", data)
    return int(m.group(1)) if m else None


BAD = (
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n", 431),
)


@t.test
def refused_requests_are_counted():
    srv = servutil.Serve()
    errs = 'axon_errors_total{gateway="%s"}'
    before = {gw: metric(srv, errs % gw) for gw in ("http", "line", "websocket", "sse")}
    t.eq(before["http"], 0, "no HTTP errors at start")
    for raw, status in BAD:
        t.eq(refused(srv.http_port, raw), status, "answer to %r" % raw[:20])
    t.eq(metric(srv, errs % "http"), 3, "axon_errors_total{gateway=\"http\"} after 400, 414, 431")
    for gw in ("line", "websocket", "sse"):
        t.eq(metric(srv, errs % gw), before[gw], "errors of %s" % gw)
    rc, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", srv.base + "/healthz")
    t.eq(out, "200", "good requests do not count")
    t.eq(metric(srv, errs % "http"), 3, "still 3")
    # and those the API refuses itself
    rc, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", "-d", "x",
                               srv.base + "/api/publish/")
    t.eq(out, "400", "a publish without a topic")
    t.eq(metric(srv, errs % "http"), 4, "the API's 400 counts too")
    srv.stop()


def wait_lines(path, n):
    deadline = time.monotonic() + axtest.TIMEOUT
    while True:
        lines = open(path).read().splitlines() if os.path.exists(path) else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


@t.test
def access_log_formats():
    d = tempfile.mkdtemp(prefix="axon-serve-log-")
    path = os.path.join(d, "access.log")
    srv = servutil.Serve("--access-log", path)
    servutil.curl(srv.base + "/healthz")
    refused(srv.http_port, BAD[0][0])
    lines = wait_lines(path, 2)
    t.eq(len(lines), 2, "two lines: %r" % lines)
    t.ok(re.match(r'127\.0\.0\.1 - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                  r'"GET /healthz HTTP/1.1" 200 3$', lines[0]), "CLF line: %r" % lines[0])
    t.ok(re.match(r'127\.0\.0\.1 - - \[.*\] "-" 400 \d+$', lines[1]),
         "a refused request is logged: %r" % lines[1])
    # SIGHUP reopens: rotate the file away, the next line goes to a new one
    os.rename(path, path + ".1")
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + axtest.TIMEOUT
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    servutil.curl(srv.base + "/healthz?after")
    lines = wait_lines(path, 1)
    t.ok(len(lines) == 1 and "/healthz?after" in lines[0], "after SIGHUP: %r" % lines)
    t.eq(len(open(path + ".1").read().splitlines()), 2, "the rotated file keeps its lines")
    srv.stop()
    srv = servutil.Serve("--access-log", path, "--access-log-format", "combined")
    servutil.curl("-A", 'agent "quoted"', "-e", "http://ref.example/", srv.base + "/healthz")
    lines = wait_lines(path, 2)
    t.ok(re.search(r'"GET /healthz HTTP/1.1" 200 3 "http://ref.example/" "agent \\"quoted\\""$',
                   lines[-1]), "combined line: %r" % lines[-1])
    srv.stop()
    cfg = os.path.join(d, "axon.conf")
    with open(cfg, "w") as f:
        f.write("access_log %s\naccess_log_format json\n" % path)
    os.unlink(path)
    srv = servutil.Serve("-c", cfg)
    servutil.curl("-A", "tester/1", srv.base + "/nothing-here")
    lines = wait_lines(path, 1)
    rec = json.loads(lines[0])
    t.eq((rec["request"], rec["status"], rec["user_agent"], rec["remote"]),
         ("GET /nothing-here HTTP/1.1", 404, "tester/1", "127.0.0.1"), "JSON line")
    srv.stop()


@t.test
def access_log_stdout_and_off():
    srv = servutil.Serve("--access-log", "-")
    servutil.curl(srv.base + "/healthz")
    out = srv.wait_output(lambda o: b"GET /healthz" in o, what="a log line on stdout")
    t.ok(re.search(rb'"GET /healthz HTTP/1.1" 200 3\n', out), "on stdout: %r" % out)
    srv.stop()
    d = tempfile.mkdtemp(prefix="axon-serve-nolog-")
    srv = servutil.Serve(data=os.path.join(d, "data"))
    servutil.curl(srv.base + "/healthz")
    time.sleep(0.2)
    t.eq(srv.output(), b"", "no access log by default (stdout: -q)")
    t.ok("GET /healthz" not in srv.stderr(), "nor on stderr")
    t.eq(sorted(os.listdir(d)), ["data"], "no file written")
    srv.stop()


t.main()
