#!/usr/bin/python3
"""axon cat over udp://: datagrams both ways when connecting and when
listening (replies go to the latest sender), and the end after stdin."""

import socket
import time

import axtest
from catutil import cat, end_input, listening_url, send

t = axtest.Tests("axon cat: udp")


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(axtest.TIMEOUT)
    return s


@t.test
def udp_connect_both_directions():
    srv = udp_socket()
    p = cat("-v", "udp://127.0.0.1:%d" % srv.getsockname()[1])
    send(p, b"ping\n")
    data, peer = srv.recvfrom(65536)
    t.eq(data, b"ping\n", "datagram from stdin")
    srv.sendto(b"pong\n", peer)
    p.wait_output(lambda o: o == b"pong\n", what="the reply on stdout")
    start = time.monotonic()
    end_input(p)  # no half-close in UDP: cat ends after a quiet second
    t.exits(p, 0)
    t.ok(time.monotonic() - start < 4, "cat took too long to end after stdin")
    srv.close()


@t.test
def udp_connect_to_a_name():
    srv = udp_socket()
    p = cat("udp://%s:%d" % (socket.gethostname(), srv.getsockname()[1]))
    send(p, b"by name\n")
    data, peer = srv.recvfrom(65536)
    t.eq(data, b"by name\n", "datagram sent to a name")
    srv.sendto(b"answer\n", peer)
    p.wait_output(lambda o: o == b"answer\n", what="the reply on stdout")
    end_input(p)
    t.exits(p, 0)
    p = cat("udp://nothing.invalid:9")
    t.exits(p, 1)
    t.ok("cannot connect to udp://nothing.invalid:9: no such host" in p.stderr(), p.stderr())
    srv.close()


@t.test
def udp_listen_replies_to_the_sender():
    p = cat("-l", "-v", "udp://127.0.0.1:0")
    _, host, port = axtest.split_url(listening_url(p))
    c = udp_socket()
    c.sendto(b"hello listener\n", (host, port))
    p.wait_output(lambda o: o == b"hello listener\n", what="the datagram on stdout")
    send(p, b"hello sender\n")
    data, _ = c.recvfrom(65536)
    t.eq(data, b"hello sender\n", "reply from cat's stdin")
    c2 = udp_socket()  # a second sender becomes the one replies go to
    c2.sendto(b"me too\n", (host, port))
    p.wait_output(lambda o: o.endswith(b"me too\n"), what="the second sender's datagram")
    send(p, b"to the latest\n")
    data, _ = c2.recvfrom(65536)
    t.eq(data, b"to the latest\n", "reply to the latest sender")
    end_input(p)
    t.exits(p, 0)
    c.close()
    c2.close()


@t.test
def udp_wait_option_keeps_receiving():
    srv = udp_socket()
    p = cat("-w", "2", "udp://127.0.0.1:%d" % srv.getsockname()[1])
    send(p, b"x")
    _, peer = srv.recvfrom(65536)
    end_input(p)
    time.sleep(0.8)
    srv.sendto(b"late\n", peer)  # within -w 2: still printed
    p.wait_output(lambda o: o == b"late\n", what="a reply after stdin ended")
    t.exits(p, 0)
    srv.close()


t.main()
