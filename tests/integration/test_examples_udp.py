#!/usr/bin/python3
"""examples/udp_echo_server and examples/udp_client, driven by Python UDP
sockets and nc -u: datagrams come back whole, to the right sender; the
client sends each stdin line as one datagram and prints every reply."""

import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Proc, example  # noqa: E402

t = axtest.Tests("examples/udp_echo_server, examples/udp_client")


def udp_sock(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(axtest.TIMEOUT)
    return s


def recv_n(s, n, timeout=axtest.TIMEOUT):
    """n datagrams, as a list; fewer if they stop coming."""
    got = []
    s.settimeout(timeout)
    try:
        while len(got) < n:
            got.append(s.recvfrom(70000))
    except socket.timeout:
        pass
    return got


@t.test
def server_prints_a_real_port():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    t.eq(srv.scheme, "udp", "scheme printed")
    t.ok(srv.port and srv.port > 0, "port 0 was not replaced by the bound port: %s" % srv.url)


@t.test
def datagrams_come_back_whole_and_separate():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    s = udp_sock()
    msgs = [b"a", b"bb", b"ccc", b"with\x00nul\xffbytes", b"x" * 1400]
    for m in msgs:
        s.sendto(m, (srv.host, srv.port))
    got = recv_n(s, len(msgs))
    t.eq([d for d, _ in got], msgs, "replies")
    t.eq({a for _, a in got}, {(srv.host, srv.port)}, "reply source address")
    srv.signal(15)  # after traffic too (under ASan a leak shows up here)
    t.exits(srv, 0, "exit status after SIGTERM")


@t.test
def largest_ipv4_datagram_65507_bytes():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    s = udp_sock()
    big = os.urandom(65507)
    s.sendto(big, (srv.host, srv.port))
    got = recv_n(s, 1)
    t.eq(len(got), 1, "replies")
    t.ok(got[0][0] == big, "the 65507-byte reply differs (%d bytes)" % len(got[0][0]))


@t.test
def each_sender_gets_only_its_own_replies():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    socks = [udp_sock() for _ in range(4)]
    for rnd in range(10):  # rounds, so a burst stays within socket buffers
        for i, s in enumerate(socks):
            for k in range(5):
                s.sendto(b"sender %d round %d msg %d" % (i, rnd, k), (srv.host, srv.port))
        for i, s in enumerate(socks):
            got = sorted(d for d, _ in recv_n(s, 5))
            want = sorted(b"sender %d round %d msg %d" % (i, rnd, k) for k in range(5))
            t.eq(got, want, "round %d replies to sender %d" % (rnd, i))
    for s in socks:
        t.eq(recv_n(s, 1, timeout=0.2), [], "extra datagrams")


@t.test
def ipv6_loopback():
    if not os.path.exists("/proc/net/if_inet6"):
        return
    srv = t.server("udp_echo_server", "udp://[::1]:0")
    s = udp_sock(socket.AF_INET6, "::1")
    s.sendto(b"six", ("::1", srv.port))
    got = recv_n(s, 1)
    t.eq([d for d, _ in got], [b"six"], "replies over IPv6")


@t.test
def nc_u_is_echoed():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    r = subprocess.run(["timeout", "5", "nc", "-u", "-w1", "127.0.0.1", str(srv.port)],
                       input=b"hello nc\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t.eq(r.stdout, b"hello nc\n", "nc printed")


@t.test
def sigterm_stops_server_with_status_0():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    srv.signal(15)
    t.exits(srv, 0, "exit status")


@t.test
def bad_url_and_busy_port_exit_1():
    s = udp_sock()
    port = s.getsockname()[1]
    p = Proc([example("udp_echo_server"), "udp://127.0.0.1:%d" % port])
    t.exits(p, 1, "exit status when the port is taken")
    t.ok(str(port) in p.stderr(), "stderr does not name the URL: %r" % p.stderr())
    p = Proc([example("udp_echo_server"), "udp://127.0.0.1"])
    t.exits(p, 1, "exit status without a port")
    t.ok(p.stderr().strip() != "", "no message for a URL without a port")


def udp_client(url, wait_ms=300, stdin=subprocess.PIPE):
    return Proc([example("udp_client"), url, str(wait_ms)], stdin=stdin, capture=True)


@t.test
def client_with_echo_server():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    cl = udp_client(srv.url)
    cl.p.stdin.write(b"one\n")
    cl.p.stdin.flush()
    cl.wait_output(lambda o: o == b"one\n", what="the reply to the first line")  # interactive
    cl.p.stdin.write(b"two\nthree\n")
    cl.p.stdin.close()
    t.exits(cl, 0, "exit status")
    t.eq(cl.output(), b"one\ntwo\nthree\n", "printed")


@t.test
def client_says_so_when_nothing_answers():
    s = udp_sock()  # bound, so no ICMP error either: it just never answers
    cl = udp_client("udp://127.0.0.1:%d" % s.getsockname()[1], wait_ms=300)
    cl.p.stdin.write(b"anyone there?\n")
    cl.p.stdin.close()
    t.eq(s.recvfrom(100)[0], b"anyone there?", "the datagram")
    t.exits(cl, 1, "exit status")
    t.eq(cl.output(), b"", "printed")
    t.ok("no reply from udp://127.0.0.1:%d within 300 ms" % s.getsockname()[1] in cl.stderr(),
         cl.stderr())
    closed = udp_sock()
    port = closed.getsockname()[1]
    closed.close()  # nobody there: ICMP port unreachable, or nothing
    cl = udp_client("udp://127.0.0.1:%d" % port, wait_ms=300)
    cl.p.stdin.write(b"one\n")
    cl.p.stdin.close()
    t.exits(cl, 1, "exit status with nobody listening")
    t.ok("udp_client:" in cl.stderr(), "no message: %r" % cl.stderr())


@t.test
def client_sends_lines_as_datagrams_and_waits_after_eof():
    s = udp_sock()
    port = s.getsockname()[1]
    # 1.5 s: a loaded machine may stall this test for most of a second
    cl = udp_client("udp://127.0.0.1:%d" % port, wait_ms=1500)
    cl.p.stdin.write(b"hello\nworld\n")
    cl.p.stdin.flush()
    d1, peer = s.recvfrom(70000)
    d2, _ = s.recvfrom(70000)
    t.eq([d1, d2], [b"hello", b"world"], "datagrams (one per line, no newline)")
    s.sendto(b"reply 1", peer)
    s.sendto(b"reply 2\n", peer)  # already ends in a newline: printed once
    cl.wait_output(lambda o: o == b"reply 1\nreply 2\n", what="both replies")
    cl.p.stdin.close()
    eof = time.monotonic()
    time.sleep(0.4)
    t.ok(cl.running(), "the client did not wait 1.5 s for late replies after EOF")
    s.sendto(b"late", peer)  # restarts the wait
    cl.wait_output(lambda o: o.endswith(b"late\n"), what="the late reply")
    t.exits(cl, 0, "exit status")
    took = time.monotonic() - eof
    t.ok(took >= 1.9, "exited %.2f s after EOF; a reply at 0.4 s should extend the 1.5 s wait"
         % took)
    t.ok(took < 6.0, "exited only %.2f s after EOF" % took)
    t.eq(cl.output(), b"reply 1\nreply 2\nlate\n", "printed")


@t.test
def client_stops_on_sigterm_while_stdin_is_open():
    srv = t.server("udp_echo_server", "udp://127.0.0.1:0")
    cl = udp_client(srv.url)
    cl.p.stdin.write(b"x\n")
    cl.p.stdin.flush()
    cl.wait_output(lambda o: o == b"x\n", what="the reply")
    cl.signal(15)  # the stdin thread is still waiting for input
    t.exits(cl, 0, "exit status after SIGTERM")


@t.test
def client_with_nobody_listening_still_exits():
    port = axtest.free_port(socket.SOCK_DGRAM)
    cl = udp_client("udp://127.0.0.1:%d" % port, wait_ms=200)
    cl.p.stdin.write(b"anyone?\nhello?\n")
    cl.p.stdin.close()
    st = cl.wait()
    t.ok(st in (0, 1), "exit status %d%s" % (st, cl.err_note()))
    t.eq(cl.output(), b"", "printed")


t.main()
