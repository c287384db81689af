#!/usr/bin/python3
"""examples/chat_server with several real clients (Python sockets and nc):
the first line is the name, every later line goes to the others as
"name: text", everybody hears "* name joined" / "* name left"."""

import os
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Lines, Proc  # noqa: E402

t = axtest.Tests("examples/chat_server")
WELCOME = "* welcome! what is your name?"


def join(srv, name, online):
    c = Lines.connect(srv.host, srv.port)
    t.eq(c.line(), WELCOME, "greeting")
    c.send(name + "\n")
    t.eq(c.line(), "* hello %s, %d online" % (name, online), "%s's hello" % name)
    return c


def quiet(c, who):
    t.ok(c.silent(0.3), "%s got an unexpected %r" % (who, c.buf))


@t.test
def three_clients_names_broadcast_join_leave():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    alice = join(srv, "alice", 1)
    bob = join(srv, "bob", 2)
    t.eq(alice.line(), "* bob joined", "alice hears")
    carol = join(srv, "carol", 3)
    t.eq(alice.line(), "* carol joined", "alice hears")
    t.eq(bob.line(), "* carol joined", "bob hears")

    alice.send("hi all\n")
    t.eq(bob.line(), "alice: hi all", "bob hears")
    t.eq(carol.line(), "alice: hi all", "carol hears")
    quiet(alice, "alice (her own line must not come back)")

    bob.send("one\ntwo\n")  # two lines in one segment
    for who, c in (("alice", alice), ("carol", carol)):
        t.eq([c.line(), c.line()], ["bob: one", "bob: two"], "%s hears" % who)

    carol.send("split ")  # a line in two pieces
    time.sleep(0.2)
    quiet(alice, "alice (half a line must wait for its end)")
    carol.send("line\n")
    t.eq(alice.line(), "carol: split line", "alice hears")
    t.eq(bob.line(), "carol: split line", "bob hears")

    bob.send("crlf\r\n")
    t.eq(alice.line(), "bob: crlf", "CRLF line as alice hears it")
    t.eq(carol.line(), "bob: crlf", "CRLF line as carol hears it")

    carol.close()  # orderly close
    t.eq(alice.line(), "* carol left", "alice hears")
    t.eq(bob.line(), "* carol left", "bob hears")

    # bob's connection is reset (RST, not FIN)
    bob.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    bob.close()
    t.eq(alice.line(), "* bob left", "alice hears after a reset")

    alice.send("anyone?\n")
    quiet(alice, "alice, alone")
    late = join(srv, "dave", 2)
    t.eq(alice.line(), "* dave joined", "alice hears")
    quiet(late, "dave (nothing from before he joined)")


@t.test
def unnamed_clients_neither_hear_nor_are_announced():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    alice = join(srv, "alice", 1)
    lurker = Lines.connect(srv.host, srv.port)
    t.eq(lurker.line(), WELCOME, "greeting")
    quiet(alice, "alice (a connection without a name is not announced)")
    alice.send("secret\n")
    quiet(lurker, "the nameless client")
    lurker.close()
    quiet(alice, "alice (a nameless client leaving is not announced)")


@t.test
def empty_name_asks_again():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    c = Lines.connect(srv.host, srv.port)
    t.eq(c.line(), WELCOME, "greeting")
    c.send("\r\n")
    t.eq(c.line(), "* name, please?", "reply to an empty name")
    c.send("erin\n")
    t.eq(c.line(), "* hello erin, 1 online", "hello")


@t.test
def a_thousand_lines_arrive_in_order_at_every_listener():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    talker = join(srv, "talker", 1)
    listeners = []
    for i in range(5):
        c = join(srv, "l%d" % i, i + 2)
        listeners.append(c)
    for i, c in enumerate(listeners):  # drain join notices
        for j in range(i + 1, 5):
            t.eq(c.line(), "* l%d joined" % j, "l%d hears" % i)
    talker.send("".join("message %d\n" % i for i in range(1000)))
    for i, c in enumerate(listeners):
        got = [c.line() for _ in range(1000)]
        t.eq(got, ["talker: message %d" % k for k in range(1000)], "lines l%d heard" % i)


@t.test
def a_line_over_4k_closes_only_that_client():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    alice = join(srv, "alice", 1)
    flood = join(srv, "flood", 2)
    t.eq(alice.line(), "* flood joined", "alice hears")
    try:
        flood.send("x" * 10000)
    except (BrokenPipeError, ConnectionResetError):
        pass
    t.ok(flood.closed_by_peer(), "the server kept a client that sent 10000 bytes without newline")
    t.eq(alice.line(), "* flood left", "alice hears")
    alice.send("still fine\n")
    bob = join(srv, "bob", 2)
    t.eq(alice.line(), "* bob joined", "alice hears")


@t.test
def netcat_clients_join_talk_and_leave():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    alice = join(srv, "alice", 1)
    nc = Proc(["nc", "-N", "127.0.0.1", str(srv.port)], stdin=subprocess.PIPE, capture=True)
    nc.wait_output(lambda o: o.startswith(WELCOME.encode() + b"\n"), what="nc's greeting")
    nc.p.stdin.write(b"netcat\n")
    nc.p.stdin.flush()
    t.eq(alice.line(), "* netcat joined", "alice hears")
    nc.p.stdin.write(b"hello from nc\n")
    nc.p.stdin.flush()
    t.eq(alice.line(), "netcat: hello from nc", "alice hears")
    alice.send("hello nc\n")
    nc.wait_output(lambda o: o.endswith(b"alice: hello nc\n"), what="alice's line at nc")
    nc.p.stdin.close()  # nc -N sends FIN; the server closes that client
    t.eq(alice.line(), "* netcat left", "alice hears")
    t.exits(nc, 0, "nc exit status")


@t.test
def sigterm_with_clients_connected():
    srv = t.server("chat_server", "tcp://127.0.0.1:0")
    a = join(srv, "a", 1)
    b = join(srv, "b", 2)
    t.eq(a.line(), "* b joined", "a hears")
    b.send("last words\n")
    t.eq(a.line(), "b: last words", "a hears")
    srv.signal(15)
    t.exits(srv, 0, "exit status")
    t.ok(a.closed_by_peer() and b.closed_by_peer(), "clients still connected after exit")


t.main()
