#!/usr/bin/python3
"""examples/tcp_client: stdin to the socket and the socket to stdout at the
same time, half-close at the end of stdin, exit when the server closes.

The far end is either a Python socket server (so the test sees exactly what
the client sends and when) or examples/tcp_echo_server."""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Lines, Proc, example, recv_all  # noqa: E402

t = axtest.Tests("examples/tcp_client")


def py_server():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    s.settimeout(axtest.TIMEOUT)
    return s, "tcp://127.0.0.1:%d" % s.getsockname()[1]


def client(url):
    return Proc([example("tcp_client"), url], stdin=subprocess.PIPE, capture=True)


def type_in(cl, data):
    cl.p.stdin.write(data)
    cl.p.stdin.flush()


@t.test
def server_speaks_first_then_both_directions_then_half_close():
    ls, url = py_server()
    cl = client(url)
    conn, _ = ls.accept()
    srv = Lines(conn)
    # Socket -> stdout works while stdin is idle.
    srv.send("greetings\n")
    cl.wait_output(lambda o: o == b"greetings\n", what="the server's first line")
    # Stdin -> socket.
    type_in(cl, b"ping\n")
    t.eq(srv.line(), "ping", "line the server got")
    srv.send("pong\n")
    cl.wait_output(lambda o: o.endswith(b"pong\n"), what="pong")
    # End of stdin: a FIN reaches the server, the client keeps running.
    cl.p.stdin.close()
    t.ok(srv.closed_by_peer(), "the server saw no FIN after the client's stdin ended")
    t.eq(srv.buf, b"", "bytes after ping")
    t.ok(cl.running(), "the client exited at the end of stdin instead of half-closing")
    # The other direction still works after the half-close.
    srv.send("after your eof\n")
    cl.wait_output(lambda o: o.endswith(b"after your eof\n"), what="data after half-close")
    # The server closes: the client exits with status 0.
    conn.close()
    t.exits(cl, 0, "exit status")
    t.eq(cl.output(), b"greetings\npong\nafter your eof\n", "everything printed")
    ls.close()


@t.test
def both_directions_at_once_4mib_each():
    # The server sends all of its 4 MiB before it reads a byte, so the client
    # must keep copying socket -> stdout while its own stdin -> socket
    # direction is stuck: a client doing one direction at a time hangs here.
    size = 4 << 20
    down = os.urandom(size)
    up = os.urandom(size)
    ls, url = py_server()
    cl = client(url)
    conn, _ = ls.accept()
    # Small kernel buffers on the server side, so the 4 MiB cannot hide in
    # them: the client has to read while it writes.
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    got_up = []

    def server():
        conn.sendall(down)
        got_up.append(recv_all(conn, size + 1, timeout=20))

    def feed():
        try:
            cl.p.stdin.write(up)
            cl.p.stdin.close()
        except BrokenPipeError:
            pass

    ts = [threading.Thread(target=server, daemon=True), threading.Thread(target=feed, daemon=True)]
    for th in ts:
        th.start()
    cl.wait_output(lambda o: len(o) >= size, timeout=20, what="4 MiB from the server")
    for th in ts:
        th.join(20)
    t.ok(got_up, "the server did not get the client's 4 MiB and FIN within 20 s")
    t.eq(len(got_up[0]), size, "bytes the server got before the FIN")
    t.ok(got_up[0] == up, "the bytes the server got differ from the client's stdin")
    conn.close()
    t.exits(cl, 0, "exit status")
    t.ok(cl.output() == down, "the client printed different bytes than the server sent")
    ls.close()


@t.test
def server_closes_while_stdin_is_open():
    ls, url = py_server()
    cl = client(url)
    conn, _ = ls.accept()
    conn.sendall(b"bye\n")
    conn.close()
    t.exits(cl, 0, "exit status when the server closes first")
    t.eq(cl.output(), b"bye\n", "printed")
    ls.close()


@t.test
def interactive_echo_through_tcp_echo_server():
    srv = t.server("tcp_echo_server", "tcp://127.0.0.1:0")
    cl = client(srv.url)
    want = b""
    for i in range(5):
        line = ("line %d\n" % i).encode()
        want += line
        type_in(cl, line)
        # each echo arrives while stdin is still open
        cl.wait_output(lambda o: o == want, what="echo of %r" % line)
    cl.p.stdin.close()  # half-close; the echo server answers by closing
    t.exits(cl, 0, "exit status")
    t.eq(cl.output(), want, "printed")


@t.test
def piped_file_through_tcp_echo_server():
    srv = t.server("tcp_echo_server", "tcp://127.0.0.1:0")
    data = b"".join(b"%06d the quick brown fox\n" % i for i in range(40000))
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        cl = Proc([example("tcp_client"), srv.url], stdin=f, capture=True)
        t.exits(cl, 0, "exit status", timeout=20)
    t.eq(len(cl.output()), len(data), "bytes printed")
    t.ok(cl.output() == data, "echoed bytes differ from the file")


@t.test
def unix_socket_url():
    path = os.path.join(tempfile.mkdtemp(prefix="axon-client-"), "echo.sock")
    srv = t.server("tcp_echo_server", "unix://" + path)
    cl = client("unix://" + path)
    type_in(cl, b"hello unix\n")
    cl.wait_output(lambda o: o == b"hello unix\n", what="the echo over the Unix socket")
    cl.p.stdin.close()
    t.exits(cl, 0, "exit status")
    srv.stop()
    os.rmdir(os.path.dirname(path))


@t.test
def connection_refused_exits_1():
    port = axtest.free_port()
    cl = client("tcp://127.0.0.1:%d" % port)
    t.exits(cl, 1, "exit status")
    t.ok("refused" in cl.stderr().lower(), "stderr does not say refused: %r" % cl.stderr())


@t.test
def bad_url_exits_1():
    cl = client("tcp://127.0.0.1:99999")
    t.exits(cl, 1, "exit status")
    t.ok(cl.stderr().strip() != "", "no message on stderr")


@t.test
def sigterm_stops_a_connected_client():
    ls, url = py_server()
    cl = client(url)
    conn, _ = ls.accept()
    conn.sendall(b"hi\n")
    cl.wait_output(lambda o: o == b"hi\n")
    time.sleep(0.1)
    cl.signal(15)
    st = cl.wait()
    t.ok(st >= 0, "killed by signal %d instead of stopping its loop%s" % (-st, cl.err_note()))
    t.ok(Lines(conn).closed_by_peer(), "the connection stayed open after the client stopped")
    conn.close()
    ls.close()


t.main()
