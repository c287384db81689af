#!/usr/bin/python3
"""`axon echo URL... [--threads N]`: echo on tcp://, udp:// and unix://
URLs at once, on one thread or several; --help; errors; clean stop."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Proc, axon_bin, recv_all  # noqa: E402

t = axtest.Tests("axon echo")


class Echo:
    """axon echo on a fresh TCP+UDP port and a Unix socket, ready to use."""

    def __init__(self, threads=None, extra=()):
        self.port = axtest.free_port_both()
        self.dir = tempfile.mkdtemp(prefix="axon-echo-")
        self.path = os.path.join(self.dir, "echo.sock")
        self.urls = ["tcp://127.0.0.1:%d" % self.port, "udp://127.0.0.1:%d" % self.port,
                     "unix://" + self.path] + list(extra)
        args = [axon_bin(), "echo"] + self.urls
        if threads:
            args += ["--threads", str(threads)]
        self.proc = Proc(args)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + axtest.TIMEOUT
        while time.monotonic() < deadline:
            if not self.proc.running():
                raise Failure("axon echo exited with %s: %s" % (self.proc.p.returncode,
                                                                 self.proc.stderr().strip()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                u.connect(self.path)
                u.close()
                return
            except OSError:
                time.sleep(0.05)
        raise Failure("axon echo did not accept on %s within %.0f s; stderr: %r" % (
            " ".join(self.urls), axtest.TIMEOUT, self.proc.stderr()))

    def tcp(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=axtest.TIMEOUT)

    def unix(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(axtest.TIMEOUT)
        s.connect(self.path)
        return s

    def close(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def stream_roundtrip(s, data):
    """Send and receive at the same time (a sender thread), then half-close
    and expect the server to close after the last echoed byte."""
    th = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)),
                          daemon=True)
    th.start()
    got = recv_all(s, len(data) + 1, timeout=20)
    th.join(5)
    s.close()
    return got


def udp_roundtrip(port, msgs, timeout=axtest.TIMEOUT):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(timeout)
    got = []
    try:
        for m in msgs:
            u.sendto(m, ("127.0.0.1", port))
            got.append(u.recvfrom(70000)[0])
    except socket.timeout:
        pass
    u.close()
    return got


def all_transports(e, clients):
    """`clients` TCP, `clients` Unix and `clients` UDP clients at the same
    time; returns a list of failures."""
    errors = []

    def tcp(i, kind):
        data = (b"%s client %d " % (kind.encode(), i)) * 4000
        s = e.tcp() if kind == "tcp" else e.unix()
        got = stream_roundtrip(s, data)
        if got != data:
            errors.append("%s client %d: sent %d bytes, got %d back%s" % (
                kind, i, len(data), len(got), "" if len(got) != len(data) else " (different)"))

    def udp(i):
        msgs = [b"udp %d datagram %d" % (i, k) for k in range(50)]
        got = udp_roundtrip(e.port, msgs)
        if got != msgs:
            errors.append("udp client %d: %d of %d replies right" % (
                i, sum(1 for a, b in zip(got, msgs) if a == b), len(msgs)))

    ths = [threading.Thread(target=tcp, args=(i, k), daemon=True)
           for i in range(clients) for k in ("tcp", "unix")]
    ths += [threading.Thread(target=udp, args=(i,), daemon=True) for i in range(clients)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(25)
        if th.is_alive():
            errors.append("a client was still running after 25 s")
            break
    return errors


@t.test
def help_describes_usage_and_threads():
    r = subprocess.run([axon_bin(), "echo", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=5)
    t.eq(r.returncode, 0, "exit status of axon echo --help")
    out = r.stdout.decode()
    for want in ("axon echo", "URL", "--threads", "tcp://", "udp://", "unix://"):
        t.ok(want in out, "axon echo --help does not mention %r:\n%s" % (want, out))
    r = subprocess.run([axon_bin(), "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=5)
    t.eq(r.returncode, 0, "exit status of axon --help")
    t.ok(b"echo" in r.stdout, "axon --help does not list echo: %r" % r.stdout)


@t.test
def no_url_or_bad_url_fails_with_a_reason():
    r = subprocess.run([axon_bin(), "echo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=5)
    t.ok(r.returncode != 0, "axon echo without a URL exited 0")
    t.ok(r.stderr.strip(), "axon echo without a URL printed nothing on stderr")
    r = subprocess.run([axon_bin(), "echo", "tcp://127.0.0.1:99999"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=5)
    t.ok(r.returncode != 0, "a port out of range exited 0")
    t.ok(b"99999" in r.stderr, "the error does not say what was wrong: %r" % r.stderr)
    r = subprocess.run([axon_bin(), "echo", "ftp://127.0.0.1:21"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=5)
    t.ok(r.returncode != 0, "an unknown scheme exited 0")
    t.ok(r.stderr.strip(), "an unknown scheme printed nothing on stderr")


@t.test
def busy_port_fails():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    p = Proc([axon_bin(), "echo", "tcp://127.0.0.1:%d" % port])
    st = p.wait()
    t.ok(st > 0, "axon echo on a busy port: exit status %d" % st)
    t.ok(str(port) in p.stderr(), "the error does not name the URL: %r" % p.stderr())
    s.close()


@t.test
def tcp_udp_unix_at_once_one_thread():
    e = Echo()
    try:
        errors = all_transports(e, 4)
        t.ok(not errors, "; ".join(errors))
    finally:
        e.close()


@t.test
def tcp_udp_unix_at_once_two_threads():
    e = Echo(threads=2)
    try:
        tasks = len(os.listdir("/proc/%d/task" % e.proc.pid))
        t.ok(tasks >= 2, "--threads 2 runs %d thread(s)" % tasks)
        errors = all_transports(e, 8)
        t.ok(not errors, "; ".join(errors))
    finally:
        e.close()


@t.test
def eight_mib_each_way_with_a_slow_reader():
    # The client writes 8 MiB while reading slowly at first, so the echo's
    # write queue passes its high watermark; nothing may be lost or dropped.
    e = Echo()
    try:
        data = os.urandom(8 << 20)
        s = e.tcp()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        th = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)),
                              daemon=True)
        th.start()
        time.sleep(1.0)  # let the server's queue fill before we read a byte
        got = recv_all(s, len(data) + 1, timeout=20)
        th.join(5)
        s.close()
        t.eq(len(got), len(data), "bytes echoed")
        t.ok(got == data, "echoed bytes differ")
    finally:
        e.close()


@t.test
def stale_unix_socket_file_is_replaced():
    d = tempfile.mkdtemp(prefix="axon-stale-")
    path = os.path.join(d, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the file stays behind, nobody listens
    p = Proc([axon_bin(), "echo", "unix://" + path])
    try:
        deadline = time.monotonic() + axtest.TIMEOUT
        while True:
            t.ok(p.running(), "axon echo refused a stale socket file: %r" % p.stderr())
            try:
                c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                c.settimeout(axtest.TIMEOUT)
                c.connect(path)
                break
            except OSError:
                c.close()
                t.ok(time.monotonic() < deadline, "nothing listens on %s" % path)
                time.sleep(0.05)
        t.eq(stream_roundtrip(c, b"fresh\n"), b"fresh\n", "echo")
        # ... while a live one is not taken over
        q = Proc([axon_bin(), "echo", "unix://" + path])
        st = q.wait()
        t.ok(st > 0, "a second axon echo on a live socket file: exit status %d" % st)
    finally:
        p.stop()
        shutil.rmtree(d, ignore_errors=True)


def sigterm_case(threads):
    e = Echo(threads=threads)
    try:
        c = e.tcp()  # an open connection must not keep the server alive
        c.sendall(b"x")
        t.eq(recv_all(c, 1), b"x", "echo before SIGTERM")
        t.eq(udp_roundtrip(e.port, [b"y"]), [b"y"], "UDP echo before SIGTERM")
        e.proc.signal(15)
        t.exits(e.proc, 0, "exit status after SIGTERM")
        t.ok(not os.path.exists(e.path), "the Unix socket file is left behind")
        c.close()
    finally:
        e.close()


@t.test
def sigterm_stops_cleanly_one_thread():
    sigterm_case(None)


@t.test
def sigterm_stops_cleanly_two_threads():
    sigterm_case(2)


@t.test
def udp_moves_datagrams_in_batches():
    """Under strace (-e trace=recvmmsg,sendmmsg,recvfrom,sendto,recvmsg,
    sendmsg): a burst of 120 datagrams sent without waiting all come back
    whole, and the server took and answered them with recvmmsg and
    sendmmsg carrying several datagrams per call, never a call per
    datagram.  strace slows each system call enough for a burst to queue."""
    if not shutil.which("strace"):
        raise Failure("strace is not installed (scripts/deps.sh test)")
    port = axtest.free_port(socket.SOCK_DGRAM)
    fd, trace = tempfile.mkstemp(prefix="axon-echo-strace-")
    os.close(fd)
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # no LSan under ptrace
    p = Proc(["strace", "-f", "-qq", "-e",
              "trace=recvmmsg,sendmmsg,recvfrom,sendto,recvmsg,sendmsg", "-o", trace,
              axon_bin(), "echo", "-q", "udp://127.0.0.1:%d" % port], env=env)
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for every echo
    try:
        c.connect(("127.0.0.1", port))
        c.settimeout(0.2)
        deadline = time.monotonic() + axtest.TIMEOUT
        while True:  # ready once a probe comes back
            c.send(b"probe")
            try:
                if c.recv(100) == b"probe":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or not p.running():
                raise Failure("axon echo under strace did not echo%s" % p.err_note())
        sent = [b"%05d" % i + bytes([65 + i % 26]) * 59 for i in range(120)]
        for d in sent:
            c.send(d)
        got = []
        c.settimeout(axtest.TIMEOUT)
        while len(got) < len(sent):
            got.append(c.recv(100))
        t.eq(sorted(got), sent, "every datagram echoed whole")
        child = axtest.traced_axons(p.pid)
        t.ok(child, "axon runs under strace")
        os.kill(child[0], signal.SIGTERM)
        t.exits(p, 0, "strace (and the server) stop")
        calls = {}
        for line in open(trace).read().splitlines():
            m = re.search(r"^\d+\s+(\w+)\(.*\)\s+=\s+(-?\d+)", line)
            if m:
                calls.setdefault(m.group(1), []).append(int(m.group(2)))
        for name in ("recvfrom", "sendto", "recvmsg", "sendmsg"):
            t.eq(calls.get(name, []), [], "%s calls (one per datagram)" % name)
        rx = [n for n in calls.get("recvmmsg", []) if n > 0]
        tx = [n for n in calls.get("sendmmsg", []) if n > 0]
        t.ok(sum(rx) >= len(sent), "recvmmsg took %d datagrams, sent %d+probes" % (sum(rx), len(sent)))
        t.ok(sum(tx) >= len(sent), "sendmmsg sent %d datagrams" % sum(tx))
        t.ok(max(rx) > 1 and len(rx) < len(sent) // 2,
             "recvmmsg carried several per call: %r" % rx)
        t.ok(max(tx) > 1 and len(tx) < len(sent) // 2,
             "sendmmsg carried several per call: %r" % tx)
    finally:
        c.close()
        axtest.kill_traced(p.pid)
        os.unlink(trace)


t.main()
