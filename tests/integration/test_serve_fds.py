#!/usr/bin/python3
"""axon serve out of file descriptors: the clients it has come first.

The server runs with a low RLIMIT_NOFILE (prlimit) and a history store;
clients open far more connections than it may have.  Asserted:
  (a) the server keeps a reserve: it holds at most limit - 8 descriptors,
      and refuses (closes at once) the connections past that;
  (b) an existing keep-alive connection is still served: /healthz,
      /metrics, a publish that goes to the store, its history;
  (c) the server can still open files: SIGHUP reopens the log file;
  (d) one log line says it refuses connections (not one per refusal, nor
      one per client coming and going while it is at the limit);
  (e) after the connections close, new ones are accepted again, and a
      line says so (once no connection was refused for 5 s)."""
import os
import resource
import signal
import socket
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: out of file descriptors", alarm=60)
LIMIT = 256
N = 1500  # connections the clients try
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < N + 100:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(_hard, 4 * N) if _hard > 0 else 4 * N, _hard))


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def get(sock, path, body=None):
    """One request on a keep-alive socket; (status, body)."""
    method = b"POST" if body is not None else b"GET"
    body = body or b""
    sock.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                 % (method, path.encode(), len(body), body))
    sock.settimeout(axtest.TIMEOUT)
    data = b""
    while b"\r\n\r\n" not in data:
        d = sock.recv(65536)
        if not d:
            raise axtest.Failure("connection closed; got %r" % data)
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        rest += sock.recv(65536)
    return int(head.split(b" ")[1]), rest.decode(errors="replace")


def log_lines(path, text):
    with open(path, errors="replace") as f:
        return [ln for ln in f if text in ln]


@t.test
def clients_it_has_come_first():
    d = tempfile.mkdtemp(prefix="axon-serve-fds-")
    log = os.path.join(d, "axon.log")
    http, line = axtest.free_port(), axtest.free_port()
    srv = axtest.Proc(["prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT), axtest.axon_bin(), "serve",
                       "-q", "--http", "127.0.0.1:%d" % http, "--line", "127.0.0.1:%d" % line,
                       "--udp", "off", "--mqtt", "off", "--irc", "off", "--rtmp", "off", "--data", os.path.join(d, "data"), "--log-file", log])
    deadline = time.monotonic() + axtest.TIMEOUT
    while not os.path.exists(log) or not log_lines(log, "ready to accept connections"):
        t.ok(time.monotonic() < deadline and srv.running(), "axon serve starts%s" % srv.err_note())
        time.sleep(0.02)
    ka = socket.create_connection(("127.0.0.1", http))
    t.eq(get(ka, "/healthz"), (200, "ok\n"), "/healthz before")
    socks = []
    for _ in range(N):
        try:
            socks.append(socket.create_connection(("127.0.0.1", line), timeout=2))
        except OSError:
            break  # the backlog is full: the server stopped accepting
    time.sleep(0.5)
    held = fds(srv.pid)
    print("# %d connections tried; the server holds %d descriptors of %d" % (len(socks), held,
                                                                            LIMIT))
    t.ok(held <= LIMIT - 8, "a reserve is kept: %d descriptors of %d" % (held, LIMIT))
    t.ok(len(socks) > LIMIT, "more connections came than the limit allows")
    # (b) the clients it has are served
    t.eq(get(ka, "/healthz"), (200, "ok\n"), "/healthz on the keep-alive connection")
    st, body = get(ka, "/metrics")
    t.eq(st, 200, "/metrics")
    t.ok("axon_connections{gateway=\"line\"}" in body, "metrics body")
    st, body = get(ka, "/api/publish/chat/fds", b"still here")
    t.eq(st, 200, "publish: %s" % body)
    st, body = get(ka, "/api/history/chat/fds")
    t.ok(st == 200 and "still here" in body, "history: %d %s" % (st, body))
    # (c) files can still be opened
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + axtest.TIMEOUT
    while not log_lines(log, "SIGHUP: log file reopened") and time.monotonic() < deadline:
        time.sleep(0.05)
    t.ok(log_lines(log, "SIGHUP: log file reopened"), "the log file is reopened")
    t.ok("cannot reopen" not in srv.stderr(), "no reopen error%s" % srv.err_note())
    # (d) said once, also while clients come and go at the edge
    for i in range(30):
        socks[i].close()
        time.sleep(0.03)
        try:
            socks[i] = socket.create_connection(("127.0.0.1", line), timeout=2)
        except OSError:
            pass
    time.sleep(0.2)
    said = log_lines(log, "out of file descriptors (limit")
    t.eq(len(said), 1, "log lines about it (%r)" % said[:3])
    t.eq(log_lines(log, "accepting new connections again"), [], "not over while at the edge")
    # (e) after the connections close, new ones are accepted
    for c in socks:
        c.close()
    deadline = time.monotonic() + axtest.TIMEOUT
    while fds(srv.pid) > 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(5.2)  # the episode ends at an accept 5 s after the last refusal
    fresh = socket.create_connection(("127.0.0.1", http))
    t.eq(get(fresh, "/healthz"), (200, "ok\n"), "/healthz on a new connection")
    lc = axtest.Lines.connect("127.0.0.1", line)
    servutil.want(lc, "What is your name?")
    again = log_lines(log, "accepting new connections again")
    t.eq(len(again), 1, "a line says it accepts again (%r)" % again)
    for c in (ka, fresh):
        c.close()
    lc.close()
    srv.stop()


t.main()
