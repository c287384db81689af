#!/usr/bin/python3
"""axon cat URL1 URL2: relay between two endpoints, both directions, the
half-close carried across; -l URL1 URL2: a proxy to an axon echo server."""

import socket

import axtest
from catutil import cat, connect, listening_url, recv_eof, recv_until, tcp_listener, wait_stderr

t = axtest.Tests("axon cat: relay")


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


t.main()
