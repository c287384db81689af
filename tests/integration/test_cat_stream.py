#!/usr/bin/python3
"""axon cat over tcp:// and unix://: both directions at once, half-close,
listening, names (localhost, the machine's hostname), clear errors."""

import atexit
import os
import shutil
import socket
import tempfile
import threading

import axtest
from catutil import (cat, connect, end_input, listening_url, recv_eof, recv_until, send,
                     tcp_listener, unix_listener, wait_stderr)

t = axtest.Tests("axon cat: tcp and unix")
tmp = tempfile.mkdtemp(prefix="axcat-")
atexit.register(shutil.rmtree, tmp, True)


def exchange_as_server(srv, url_for_cat):
    """cat connects to srv; check both directions and the half-close."""
    p = cat(url_for_cat)
    conn, _ = srv.accept()
    conn.settimeout(axtest.TIMEOUT)
    conn.sendall(b"from the server\n")
    p.wait_output(lambda o: b"from the server\n" in o, what="the server's line")
    send(p, b"from stdin\n")
    t.eq(recv_until(conn, b"from stdin\n"), b"from stdin\n", "bytes from stdin")
    end_input(p)  # EOF on stdin: cat shuts down writing, keeps reading
    t.eq(recv_eof(conn), b"", "EOF after stdin ended")
    conn.sendall(b"after your EOF\n")
    p.wait_output(lambda o: b"after your EOF\n" in o, what="bytes after the half-close")
    conn.close()
    t.exits(p, 0)
    t.eq(p.output(), b"from the server\nafter your EOF\n", "cat's whole output")


@t.test
def tcp_connect_both_directions_and_half_close():
    srv = tcp_listener()
    exchange_as_server(srv, "tcp://127.0.0.1:%d" % srv.getsockname()[1])
    srv.close()


@t.test
def unix_connect_both_directions_and_half_close():
    path = os.path.join(tmp, "s.sock")
    srv = unix_listener(path)
    exchange_as_server(srv, "unix://" + path)
    srv.close()


def exchange_as_client(p):
    """cat listens; a client checks both directions and the half-close."""
    c = connect(listening_url(p))
    send(p, b"hello client\n")
    t.eq(recv_until(c, b"hello client\n"), b"hello client\n", "bytes from cat's stdin")
    c.sendall(b"hello cat\n")
    p.wait_output(lambda o: b"hello cat\n" in o, what="the client's line")
    c.shutdown(socket.SHUT_WR)  # the client is done; cat can still send
    send(p, b"still here\n")
    t.eq(recv_until(c, b"still here\n"), b"still here\n", "bytes after the client's EOF")
    end_input(p)
    t.eq(recv_eof(c), b"", "EOF once cat's stdin ended")
    t.exits(p, 0)
    c.close()


@t.test
def tcp_listen_both_directions():
    exchange_as_client(cat("-l", "-v", "tcp://127.0.0.1:0"))


@t.test
def unix_listen_both_directions():
    exchange_as_client(cat("-l", "-v", "unix://" + os.path.join(tmp, "l.sock")))


@t.test
def stdin_before_the_client_waits_for_it():
    p = cat("-l", "-v", "tcp://127.0.0.1:0")
    url = listening_url(p)
    send(p, b"early bytes\n")
    end_input(p)
    c = connect(url)
    t.eq(recv_eof(c), b"early bytes\n", "what the late client gets")
    c.close()
    t.exits(p, 0)


@t.test
def names_localhost_and_hostname():
    srv = tcp_listener("0.0.0.0")
    port = srv.getsockname()[1]
    for host in ("localhost", socket.gethostname()):
        p = cat("-v", "tcp://%s:%d" % (host, port))
        conn, _ = srv.accept()
        send(p, b"by name\n")
        end_input(p)
        t.eq(recv_eof(conn), b"by name\n", "bytes through tcp://%s" % host)
        conn.close()
        t.exits(p, 0)
        wait_stderr(p, r"connected to tcp://%s:%d" % (host, port))
    srv.close()


@t.test
def large_transfer_with_backpressure():
    srv = tcp_listener()
    p = cat("tcp://127.0.0.1:%d" % srv.getsockname()[1])
    conn, _ = srv.accept()
    blob = os.urandom(3 << 20)
    th = threading.Thread(target=lambda: (send(p, blob), end_input(p)), daemon=True)
    th.start()
    got = recv_eof(conn, timeout=20)
    th.join(5)
    t.eq(len(got), len(blob), "bytes received")
    t.ok(got == blob, "content differs")
    conn.close()
    t.exits(p, 0)


@t.test
def errors_name_the_url_and_cause():
    p = cat("tcp://no-such-host.invalid:80")
    t.exits(p, 1)
    t.ok("tcp://no-such-host.invalid:80: no such host" in p.stderr(), p.stderr())
    port = axtest.free_port()
    p = cat("tcp://127.0.0.1:%d" % port)
    t.exits(p, 1)
    t.ok("cannot connect to tcp://127.0.0.1:%d: Connection refused" % port in p.stderr(),
         p.stderr())
    p = cat("-l", "ftp://127.0.0.1:1")
    t.exits(p, 1)
    t.ok("unknown scheme 'ftp'" in p.stderr(), p.stderr())
    p = cat("tcp://127.0.0.1:99999")
    t.exits(p, 1)
    t.ok("port 99999 is out of range" in p.stderr(), p.stderr())


@t.test
def help_lists_options_and_examples():
    p = axtest.Proc([axtest.axon_bin(), "cat", "--help"], capture=True)
    out = p.wait_output(lambda o: b"Examples:" in o and b"proxy" in o).decode()
    t.exits(p, 0)
    for word in ("--listen", "--keep-open", "--broker", "--verbose", "--wait", "Examples:",
                 "udp://", "unix://"):
        t.ok(word in out, "--help lacks %s" % word)


t.main()
