#!/usr/bin/python3
"""axon serve: connections that must end, end.

  (a) slowloris on the HTTP port: N clients trickle a request head a byte
      at a time and go on trickling after the 408; the header timeout and
      then the close timeout (linger) end every one of them, so the
      server's descriptors (/proc/PID/fd) are back to their baseline within
      the two timeouts, while the clients still send;
  (b) the same on the line chat: clients trickle a name that never ends;
      the name timeout says so and closes them (a hard deadline: bytes
      without a newline do not extend it), fds back to the baseline;
  (c) the line chat's idle timeout: a named user who sends nothing is told
      and closed; one who sends an empty line now and then stays;
  (d) the timeouts as config-file keys, and refused when out of range.

The timeouts are shortened with flags; ctest runs this on every backend."""
import os
import socket
import subprocess
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: timeouts", alarm=120)
N = 300


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settled(pid):
    """The server's fd count once it has not changed for half a second: the
    store thread opens its database files (several descriptors) after the
    HTTP port answers, so a count taken at once may be short of them."""
    n, since = fds(pid), time.monotonic()
    deadline = since + axtest.TIMEOUT
    while time.monotonic() - since < 0.5 and time.monotonic() < deadline:
        time.sleep(0.05)
        m = fds(pid)
        if m != n:
            n, since = m, time.monotonic()
    return n


def connect_all(port, n):
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port))
        c.setblocking(False)
        socks.append(c)
    return socks


def hold(pid, want):
    """Wait (a while) until the server holds `want` fds; the most it held."""
    most = fds(pid)
    deadline = time.monotonic() + axtest.TIMEOUT
    while most < want and time.monotonic() < deadline:
        time.sleep(0.02)
        most = max(most, fds(pid))
    return most


def trickle_until(socks, pid, base, limit, data=b"z"):
    """Send a byte on every open socket every 0.25 s until the server holds
    no more than `base` fds or `limit` seconds pass; returns (seconds,
    fds at the end)."""
    start = time.monotonic()
    n = fds(pid)
    while time.monotonic() - start < limit:
        for c in socks:
            try:
                c.send(data)
            except OSError:
                pass  # reset by the server: it is done with it
        n = fds(pid)
        if n <= base:
            break
        time.sleep(0.25)
    return time.monotonic() - start, n


@t.test
def http_slowloris_ends():
    # 300 clients from one address: over max_connections_per_ip by design
    srv = servutil.Serve("--header-timeout", "2", "--close-timeout", "2",
                         "--max-connections-per-ip", "off")
    base = settled(srv.pid)
    socks = connect_all(srv.http_port, N)
    for c in socks:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    most = hold(srv.pid, base + N)
    t.ok(most >= base + N * 9 // 10, "the server held the %d tricklers (%d fds)" % (N, most))
    # header timeout 2 s (checked each second), then at most 2 s lingering
    took, n = trickle_until(socks, srv.pid, base, 12)
    print("# %d HTTP tricklers: fds %d -> %d after %.1f s" % (N, base + N, n, took))
    t.ok(n <= base, "fds back to the baseline %d within the timeouts (have %d after %.1f s)"
         % (base, n, took))
    got408 = 0
    for c in socks:
        try:
            got408 += c.recv(4096).startswith(b"HTTP/1.1 408 ")
        except OSError:
            pass
        c.close()
    t.ok(got408 >= N * 9 // 10, "408 Request Timeout sent (%d of %d)" % (got408, N))
    rc, out, _ = servutil.curl(srv.base + "/healthz")
    t.eq(out, "ok\n", "the server still answers")
    srv.stop()


@t.test
def line_name_timeout_ends():
    # 300 clients from one address: over max_connections_per_ip by design
    srv = servutil.Serve("--line-name-timeout", "2", "--close-timeout", "2",
                         "--max-connections-per-ip", "off")
    base = settled(srv.pid)
    socks = connect_all(srv.line_port, N)
    most = hold(srv.pid, base + N)
    t.ok(most >= base + N * 9 // 10, "the server held the %d line clients (%d fds)" % (N, most))
    took, n = trickle_until(socks, srv.pid, base, 10)
    print("# %d line tricklers: fds %d -> %d after %.1f s" % (N, base + N, n, took))
    t.ok(n <= base, "fds back to the baseline %d within the timeouts (have %d after %.1f s)"
         % (base, n, took))
    said = 0
    for c in socks:
        c.setblocking(True)
        c.settimeout(0.5)
        data = b""
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    break
                data += d
        except OSError:
            pass
        said += b"no name in 2 s" in data
        c.close()
    t.ok(said >= N * 9 // 10, "the name timeout is announced (%d of %d)" % (said, N))
    srv.stop()


@t.test
def line_idle_timeout():
    srv = servutil.Serve("--line-idle-timeout", "2")
    quiet = srv.line_client("quiet")
    busy = srv.line_client("busy")
    talker = srv.line_client("talker")
    start = time.monotonic()
    while time.monotonic() - start < 3.5:
        busy.send("\n")  # an empty line: the line chat's keepalive
        talker.send("hello\n")  # others' messages reach quiet: output is not activity
        time.sleep(0.4)
    servutil.want(quiet, "nothing from you for 2 s", timeout=2)
    t.ok(quiet.closed_by_peer(), "the quiet user is closed")
    busy.send("/who\n")
    servutil.want(busy, "* in lobby:")
    t.ok(not busy.closed_by_peer(0.2), "the user who sent empty lines stays")
    for c in (quiet, busy, talker):
        c.close()
    srv.stop()


@t.test
def config_keys():
    d = tempfile.mkdtemp(prefix="axon-serve-cfg-")
    path = os.path.join(d, "axon.conf")
    with open(path, "w") as f:
        f.write("http_header_timeout 5\nhttp_idle_timeout 7\nclose_timeout 3\n"
                "line_name_timeout 1\nline_idle_timeout 0\n")
    srv = servutil.Serve("-c", path)
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    servutil.want(c, "What is your name?")
    servutil.want(c, "no name in 1 s", timeout=3)
    c.close()
    srv.stop()
    for bad in ("http_header_timeout 0", "close_timeout 86401", "line_idle_timeout x"):
        with open(path, "w") as f:
            f.write(bad + "\n")
        p = subprocess.run([axtest.axon_bin(), "serve", "-c", path], capture_output=True,
                           timeout=10)
        t.eq(p.returncode, 2, "'%s' is refused" % bad)
        t.ok(b"axon.conf:1:" in p.stderr, "the error names the line: %r" % p.stderr)


t.main()
