#!/usr/bin/python3
"""axon cat over tls:// with Python's ssl module as the real peer: both
directions and the half-close as client and as listener, refused
certificates with a clear message, --ca and --insecure, and a relay from
plain TCP to TLS."""

import atexit
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import axtest
from catutil import cat, end_input, listening_url, recv_eof, recv_until, send, tcp_listener

t = axtest.Tests("axon cat: tls")
tmp = tempfile.mkdtemp(prefix="axcat-tls-")
atexit.register(shutil.rmtree, tmp, True)
r = subprocess.run([axtest.axon_bin(), "cert", "--out", tmp, "--name", "localhost"],
                   capture_output=True, timeout=10)
CERT, KEY = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")


def tls_listener(host="127.0.0.1"):
    """A plain listening socket and the server context to wrap accepts."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return tcp_listener(host), ctx


def accept_tls(srv, ctx):
    conn, _ = srv.accept()
    conn.settimeout(axtest.TIMEOUT)
    return ctx.wrap_socket(conn, server_side=True)


def client_ctx():
    ctx = ssl.create_default_context(cafile=CERT)
    ctx.check_hostname = True
    return ctx


@t.test
def cert_made():
    t.eq(r.returncode, 0, "axon cert exit status")


@t.test
def connect_both_directions_and_half_close():
    srv, ctx = tls_listener()
    p = cat("-v", "--ca", CERT, "tls://localhost:%d" % srv.getsockname()[1])
    conn = accept_tls(srv, ctx)
    t.eq(conn.version() in ("TLSv1.2", "TLSv1.3"), True, "TLS version %s" % conn.version())
    conn.sendall(b"from the server\n")
    p.wait_output(lambda o: b"from the server\n" in o, what="the server's line")
    send(p, b"from stdin\n")
    t.eq(recv_until(conn, b"from stdin\n"), b"from stdin\n", "bytes from stdin")
    end_input(p)  # close_notify, then FIN on the write side; reading goes on
    t.eq(recv_eof(conn), b"", "close_notify after stdin ended")
    conn.sendall(b"after your EOF\n")
    p.wait_output(lambda o: b"after your EOF\n" in o, what="bytes after the half-close")
    conn.unwrap()
    conn.close()
    t.exits(p, 0)
    t.eq(p.output(), b"from the server\nafter your EOF\n", "cat's whole output")
    srv.close()


@t.test
def listen_both_directions():
    p = cat("-l", "-v", "--cert", CERT, "--key", KEY, "tls://127.0.0.1:0")
    url = listening_url(p)
    t.ok(url.startswith("tls://"), "listening line shows tls://: %s" % url)
    _, host, port = axtest.split_url(url)
    raw = socket.create_connection((host, port), timeout=axtest.TIMEOUT)
    c = client_ctx().wrap_socket(raw, server_hostname="localhost")
    send(p, b"hello client\n")
    t.eq(recv_until(c, b"hello client\n"), b"hello client\n", "bytes from cat's stdin")
    c.sendall(b"hello cat\n")
    p.wait_output(lambda o: b"hello cat\n" in o, what="the client's line")
    end_input(p)
    t.eq(recv_eof(c), b"", "close_notify once cat's stdin ended")
    c.close()
    t.exits(p, 0)


@t.test
def untrusted_certificate_refused_insecure_accepted():
    srv, ctx = tls_listener("0.0.0.0")
    port = srv.getsockname()[1]
    p = cat("tls://localhost:%d" % port)  # the system store does not know our CA
    try:
        accept_tls(srv, ctx)
    except (ssl.SSLError, OSError):
        pass  # the client gave up with an alert
    t.exits(p, 1)
    t.ok("cannot connect to tls://localhost:%d: certificate verification failed" % port
         in p.stderr(), p.stderr())
    name = socket.gethostname()  # resolves here, but is not on the certificate
    p = cat("--ca", CERT, "tls://%s:%d" % (name, port))
    try:
        accept_tls(srv, ctx)
    except (ssl.SSLError, OSError):
        pass
    t.exits(p, 1)
    t.ok("certificate verification failed" in p.stderr() and name in p.stderr(),
         "wrong name: %s" % p.stderr())
    p = cat("--insecure", "tls://127.0.0.1:%d" % port)
    conn = accept_tls(srv, ctx)
    send(p, b"anyway\n")
    end_input(p)
    t.eq(recv_eof(conn), b"anyway\n", "bytes with --insecure")
    conn.close()
    t.exits(p, 0)
    srv.close()


@t.test
def listen_without_certificate_is_clear():
    p = cat("-l", "tls://127.0.0.1:0")
    t.exits(p, 1)
    t.ok("needs --cert FILE" in p.stderr(), p.stderr())
    p = cat("-l", "--cert", os.path.join(tmp, "missing.pem"), "tls://127.0.0.1:0")
    t.exits(p, 1)
    t.ok("missing.pem" in p.stderr(), p.stderr())


@t.test
def relay_plain_to_tls():
    srv, ctx = tls_listener()
    p = cat("-l", "-v", "--ca", CERT, "tcp://127.0.0.1:0",
            "tls://localhost:%d" % srv.getsockname()[1], stdin=False)
    url = listening_url(p)
    _, host, port = axtest.split_url(url)
    plain = socket.create_connection((host, port), timeout=axtest.TIMEOUT)
    plain.sendall(b"plain in\n")
    conn = accept_tls(srv, ctx)
    t.eq(recv_until(conn, b"plain in\n"), b"plain in\n", "plain bytes arrive encrypted")
    conn.sendall(b"tls back\n")
    t.eq(recv_until(plain, b"tls back\n"), b"tls back\n", "TLS bytes arrive in plain")
    plain.shutdown(socket.SHUT_WR)
    t.eq(recv_eof(conn), b"", "the plain EOF becomes close_notify")
    conn.unwrap()
    conn.close()
    t.eq(recv_eof(plain), b"", "the TLS end becomes EOF")
    plain.close()
    t.exits(p, 0)
    srv.close()


@t.test
def wss_client_takes_ca_and_insecure():
    port = axtest.free_port()
    echo = axtest.Proc([axtest.axon_bin(), "echo", "wss://127.0.0.1:%d/" % port, "--cert", CERT,
                        "--key", KEY])
    deadline = time.monotonic() + axtest.TIMEOUT
    while "listening on" not in echo.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = b"one\ntwo\n"
    for opts in (["--ca", CERT], ["--insecure"]):
        r = subprocess.run([axtest.axon_bin(), "cat"] + opts + ["wss://localhost:%d/" % port],
                           input=lines, capture_output=True, timeout=axtest.TIMEOUT)
        t.eq(r.returncode, 0, "axon cat %s wss:// exit status (%s)" % (opts[0], r.stderr))
        t.eq(r.stdout, lines, "axon cat %s wss:// output" % opts[0])
    echo.stop()


t.main()
