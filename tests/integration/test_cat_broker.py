#!/usr/bin/python3
"""axon cat --broker (a chat room of three clients) and -k (standard input
to every client, every client to standard output)."""

import socket

import axtest
from catutil import cat, connect, end_input, listening_url, recv_until, send, wait_count

t = axtest.Tests("axon cat: broker and keep-open")


def quiet(sock, seconds=0.3):
    sock.settimeout(seconds)
    try:
        return sock.recv(65536) == b""
    except socket.timeout:
        return True
    finally:
        sock.settimeout(axtest.TIMEOUT)


@t.test
def broker_relays_to_all_other_clients():
    p = cat("--broker", "-v", "tcp://127.0.0.1:0")
    url = listening_url(p)
    clients = [connect(url) for _ in range(3)]
    wait_count(p, "accepted", 3)
    for i, c in enumerate(clients):
        line = b"message from client %d\n" % i
        c.sendall(line)
        for j, other in enumerate(clients):
            if j != i:
                t.eq(recv_until(other, line), line, "client %d got client %d's line" % (j, i))
        t.ok(quiet(c), "client %d got its own line back" % i)
        p.wait_output(lambda o: line in o, what="line %d on the broker's stdout" % i)
    send(p, b"from the broker\n")
    for c in clients:
        t.eq(recv_until(c, b"from the broker\n"), b"from the broker\n", "broker's stdin")
    clients[0].close()  # one leaves; the others still talk
    wait_count(p, "closed", 1)
    clients[1].sendall(b"after one left\n")
    t.eq(recv_until(clients[2], b"after one left\n"), b"after one left\n", "after a leave")
    t.ok(p.running(), "the broker ended when a client left")
    for c in clients[1:]:
        c.close()


@t.test
def keep_open_serves_several_clients():
    p = cat("-l", "-k", "-v", "tcp://127.0.0.1:0")
    url = listening_url(p)
    a = connect(url)
    a.sendall(b"from a\n")
    p.wait_output(lambda o: b"from a\n" in o, what="a's line")
    a.close()
    wait_count(p, "closed", 1)
    b, c = connect(url), connect(url)
    wait_count(p, "accepted", 3)
    send(p, b"to everyone\n")
    t.eq(recv_until(b, b"to everyone\n"), b"to everyone\n", "b got stdin")
    t.eq(recv_until(c, b"to everyone\n"), b"to everyone\n", "c got stdin")
    c.sendall(b"from c\n")
    p.wait_output(lambda o: b"from c\n" in o, what="c's line")
    end_input(p)  # stdin ends: every client sees EOF, cat keeps listening
    t.eq(recv_until(b, b"never"), b"", "b sees EOF")
    t.ok(p.running(), "-k ended when stdin did")
    b.close()
    c.close()


t.main()
