#!/usr/bin/python3
"""axon cat URL1 URL2: relay between two endpoints, both directions, the
half-close carried across; -l URL1 URL2: a proxy to an axon echo server,
where input (and its end) that comes before the upstream is up is held,
bounded, and delivered; failures say their cause."""

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

import axtest
from catutil import cat, connect, listening_url, recv_eof, recv_until, tcp_listener, wait_stderr

t = axtest.Tests("axon cat: relay", alarm=120)
tmp = tempfile.mkdtemp(prefix="axcat-relay-")
atexit.register(shutil.rmtree, tmp, True)
subprocess.run([axtest.axon_bin(), "cert", "--out", tmp, "--name", "localhost"],
               capture_output=True, timeout=10, check=True)
CERT, KEY = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")


@t.test
def relay_between_two_servers():
    a, b = tcp_listener(), tcp_listener()
    p = cat("-v", "tcp://127.0.0.1:%d" % a.getsockname()[1],
            "tcp://localhost:%d" % b.getsockname()[1], stdin=False)
    ca, _ = a.accept()
    cb, _ = b.accept()
    ca.sendall(b"a to b\n")
    t.eq(recv_until(cb, b"a to b\n"), b"a to b\n", "a -> b")
    cb.sendall(b"b to a\n")
    t.eq(recv_until(ca, b"b to a\n"), b"b to a\n", "b -> a")
    ca.shutdown(socket.SHUT_WR)  # a's EOF reaches b as EOF
    t.eq(recv_eof(cb), b"", "b sees a's EOF")
    cb.sendall(b"b still talks\n")
    t.eq(recv_until(ca, b"b still talks\n"), b"b still talks\n", "b -> a after a's EOF")
    cb.close()
    t.eq(recv_eof(ca), b"", "a sees b's EOF")
    ca.close()
    t.exits(p, 0)
    a.close()
    b.close()


@t.test
def listen_relay_is_a_proxy():
    port = axtest.free_port()
    echo = axtest.Proc([axtest.axon_bin(), "echo", "tcp://127.0.0.1:%d" % port])
    wait_stderr(echo, r"listening on")
    p = cat("-l", "-k", "-v", "tcp://127.0.0.1:0", "tcp://127.0.0.1:%d" % port, stdin=False)
    url = listening_url(p)
    for i in range(3):
        c = connect(url)
        msg = b"through the proxy %d\n" % i
        c.sendall(msg)
        t.eq(recv_until(c, msg), msg, "echo through the relay")
        c.shutdown(socket.SHUT_WR)
        t.eq(recv_eof(c), b"", "EOF back through the relay")
        c.close()
    t.ok(p.running(), "-k relay ended")


@t.test
def relay_failure_names_the_url():
    a = tcp_listener()
    port = axtest.free_port()
    p = cat("tcp://127.0.0.1:%d" % a.getsockname()[1], "tcp://127.0.0.1:%d" % port, stdin=False)
    t.exits(p, 1)
    t.ok("cannot connect to tcp://127.0.0.1:%d" % port in p.stderr(), p.stderr())
    a.close()


def echo_server(scheme):
    port = axtest.free_port()
    url = "%s://127.0.0.1:%d" % (scheme, port)
    tls = ["--cert", CERT, "--key", KEY] if scheme == "tls" else []
    echo = axtest.Proc([axtest.axon_bin(), "echo"] + tls + [url])
    wait_stderr(echo, r"listening on")
    return echo, url.replace("127.0.0.1", "localhost")


def short_lived_clients(url, n, threads=8):
    """n clients, each sends a line and ends its input at once, then reads
    to EOF; returns the clients whose reply was not their line."""
    lost = []

    def run(first):
        for i in range(first, n, threads):
            msg = b"client %d says hello %s\n" % (i, b"x" * (i % 50))
            try:
                c = connect(url)
                c.sendall(msg)
                c.shutdown(socket.SHUT_WR)
                got = recv_eof(c)
                c.close()
            except OSError as e:
                got = repr(e).encode()
            if got != msg:
                lost.append((i, got))

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return lost


def relay_early_input(scheme):
    echo, up = echo_server(scheme)
    p = cat("-l", "-k", "-v", "--ca", CERT, "tcp://127.0.0.1:0", up, stdin=False)
    url = listening_url(p)
    lost = short_lived_clients(url, 200)
    t.eq(lost[:3], [], "%d of 200 replies lost through tcp -> %s" % (len(lost), scheme))
    t.ok(p.running(), "the -k relay ended")
    t.ok("cannot connect" not in p.stderr(), p.stderr()[-600:])
    p.stop()
    echo.stop()


@t.test
def input_before_upstream_is_up_tcp():
    relay_early_input("tcp")


@t.test
def input_before_upstream_is_up_tls():
    relay_early_input("tls")


@t.test
def held_input_is_bounded_and_delivered():
    """An upstream that accepts but does not answer the TLS handshake yet:
    the relay holds a little and stops reading the client (its sends
    block), then delivers every byte and the end once the handshake is done."""
    srv = tcp_listener()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    p = cat("-l", "-v", "--ca", CERT, "tcp://127.0.0.1:0",
            "tls://localhost:%d" % srv.getsockname()[1], stdin=False)
    url = listening_url(p)
    c = connect(url)
    raw, _ = srv.accept()  # TCP is up; the ClientHello waits unanswered
    total = 32 << 20
    data = bytes(range(256)) * (total // 256)
    c.setblocking(False)
    sent, idle = 0, 0
    while sent < total and idle < 20:  # until the relay has stopped reading
        try:
            sent += c.send(data[sent:sent + 65536])
            idle = 0
        except BlockingIOError:
            idle += 1
            axtest.time.sleep(0.05)
    t.ok(sent < total // 2, "the relay read %d of %d bytes while the upstream was not up"
         % (sent, total))
    got = []

    def upstream():
        raw.settimeout(axtest.TIMEOUT)
        conn = ctx.wrap_socket(raw, server_side=True)
        buf = bytearray()
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        got.append(bytes(buf))
        conn.sendall(b"all read\n")
        try:
            conn.unwrap()
        except ssl.SSLError:
            pass  # the relay's close_notify came first
        conn.close()

    th = threading.Thread(target=upstream)
    th.start()
    c.settimeout(axtest.TIMEOUT)
    c.sendall(data[sent:])
    c.shutdown(socket.SHUT_WR)
    th.join(axtest.TIMEOUT)
    t.ok(got and got[0] == data, "every byte delivered (%d of %d)" % (len(got[0]) if got else -1,
                                                                       total))
    t.eq(recv_eof(c), b"all read\n", "the reply and the end come back")
    c.close()
    t.exits(p, 0)
    srv.close()


@t.test
def failure_says_the_cause():
    """The upstream is a plain TCP server, not TLS: the error is the TLS
    one, and a client that leaves before the upstream is up is no failure."""
    srv = tcp_listener()
    port = srv.getsockname()[1]
    p = cat("-l", "-k", "-v", "--ca", CERT, "tcp://127.0.0.1:0", "tls://localhost:%d" % port,
            stdin=False)
    url = listening_url(p)
    c = connect(url)
    raw, _ = srv.accept()
    raw.sendall(b"HTTP/1.0 400 not TLS\r\n\r\n")
    try:
        t.eq(recv_eof(c), b"", "the client is closed")
    except ConnectionResetError:
        pass  # (the relay passes the failure on as a reset)
    c.close()
    raw.close()
    m = wait_stderr(p, r"cannot connect to tls://localhost:%d: ([^\n]*)" % port)
    t.ok(m.group(1) not in ("success", "end of stream", ""), "cause: %r" % m.group(1))
    c = connect(url)
    raw, _ = srv.accept()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # reset, before the handshake
    wait_stderr(p, r"gave up connecting")
    t.eq(p.stderr().count("cannot connect"), 1, "a client that left is no failure: %s"
         % p.stderr())
    raw.close()
    p.stop()
    srv.close()


t.main()
