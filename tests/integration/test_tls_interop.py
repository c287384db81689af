#!/usr/bin/python3
"""TLS with real peers: `openssl s_client` against `axon echo tls://`, our
client (examples/tls_client) against `openssl s_server` and Python's ssl
server, curl over https against examples/tls_hello, Python's ssl client
against axon echo; refused certificates and names with clear messages,
--insecure, SNI, ALPN, close_notify; `axon cert`."""

import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Proc, axon_bin, example  # noqa: E402

t = axtest.Tests("tls interop")
DIR = tempfile.mkdtemp(prefix="axon-tls-")


def make_cert(name):
    """axon cert --out DIR/name --name name; returns (cert, key)."""
    out = os.path.join(DIR, name)
    r = subprocess.run([axon_bin(), "cert", "--out", out, "--name", name],
                       capture_output=True, timeout=10)
    if r.returncode != 0:
        raise Failure("axon cert failed: %r" % r.stderr)
    return os.path.join(out, "cert.pem"), os.path.join(out, "key.pem")


CERT, KEY = None, None


def wait_port(proc, pattern=rb":(\d+)\s*$"):
    """The port from a program's `listening on ...:PORT` line."""
    src = proc.stderr if proc.args[1:2] == ["echo"] else None
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:
        text = (src().encode() if src else proc.output())
        m = re.search(rb"listening on \S+:(\d+)", text)
        if m:
            return int(m.group(1))
        if not proc.running():
            raise Failure("%s exited%s" % (proc.args[0], proc.err_note()))
        time.sleep(0.02)
    raise Failure("no listening line from %s" % proc.args[0])


def axon_echo():
    port = axtest.free_port()
    p = Proc([axon_bin(), "echo", "tls://127.0.0.1:%d" % port, "--cert", CERT, "--key", KEY])
    wait_port(p)
    return p, port


def tls_hello(*certs, alpn=None):
    args = [example("tls_hello"), "tls://127.0.0.1:0"]
    for c, k in certs:
        args += [c, k]
    if alpn:
        args += ["--alpn", alpn]
    p = Proc(args)
    return p, wait_port(p)


def run(args, stdin=b"", timeout=10):
    return subprocess.run(args, input=stdin, capture_output=True, timeout=timeout)


@t.test
def axon_cert_writes_pair():
    global CERT, KEY
    CERT, KEY = make_cert("localhost")
    r = run(["openssl", "x509", "-in", CERT, "-noout", "-text"])
    text = r.stdout.decode()
    t.ok("DNS:localhost" in text and "IP Address:127.0.0.1" in text, "SAN in %r" % text[-400:])
    t.ok("Subject: CN = localhost" in text, "subject")
    t.eq(oct(os.stat(KEY).st_mode & 0o777), "0o600", "key file mode")
    r = run(["openssl", "pkey", "-in", KEY, "-noout"])
    t.eq(r.returncode, 0, "openssl reads the key")


@t.test
def s_client_echo_line():
    echo, port = axon_echo()
    cl = Proc(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", CERT,
               "-verify_return_error", "-verify_hostname", "localhost", "-servername",
               "localhost"], stdin=subprocess.PIPE, capture=True)
    cl.p.stdin.write(b"hello over tls\n")
    cl.p.stdin.flush()
    out = cl.wait_output(lambda o: b"\nhello over tls\n" in o, what="the echoed line")
    t.ok(b"Verify return code: 0 (ok)" in out, "verified: %r" % out[-500:])
    cl.p.stdin.close()  # s_client sends close_notify and quits
    t.exits(cl, 0)


@t.test
def s_client_sees_close_notify():
    srv, port = tls_hello((CERT, KEY))
    proc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                             "-CAfile", CERT, "-msg", "-ign_eof"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out, _ = proc.communicate(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
    out = out.decode(errors="replace")
    t.ok("hello over TLSv1.3" in out, "reply in %r" % out[-300:])
    t.ok(re.search(r"<<< TLS 1.3, Alert.*\n.*close_notify|<<< TLS 1.3, Alert \[length 0002\], "
                   r"warning close_notify", out) is not None, "close_notify in %r" % out[-600:])


@t.test
def our_client_against_s_server():
    port = axtest.free_port()
    srv = Proc(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", CERT,
                "-key", KEY, "-rev", "-quiet"])
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:  # wait for the port
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    r = run([example("tls_client"), "tls://localhost:%d" % port, "--ca", CERT,
             "--send", "stressed"])
    t.eq(r.returncode, 0, "exit status (stderr %r)" % r.stderr)
    t.eq(r.stdout, b"desserts\n", "reversed line")
    t.ok(b"TLSv1.3" in r.stderr and b"CN = localhost" in r.stderr, "negotiated: %r" % r.stderr)
    # TLS 1.2 only server: 1.2 still works
    srv.stop()
    port = axtest.free_port()
    Proc(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", CERT,
          "-key", KEY, "-rev", "-quiet", "-tls1_2"])
    wait_connectable(port)
    r = run([example("tls_client"), "tls://localhost:%d" % port, "--ca", CERT,
             "--send", "abc"])
    t.eq((r.returncode, r.stdout), (0, b"cba\n"), "TLS 1.2 (stderr %r)" % r.stderr)
    t.ok(b"TLSv1.2" in r.stderr, "version: %r" % r.stderr)


@t.test
def curl_https_fixed_reply():
    srv, port = tls_hello((CERT, KEY), alpn="http/1.1")
    r = run(["curl", "-sS", "--cacert", CERT, "https://localhost:%d/" % port])
    t.eq(r.returncode, 0, "curl status (stderr %r)" % r.stderr)
    t.eq(r.stdout, b"hello over TLSv1.3 (alpn http/1.1)\n", "reply")
    r = run(["curl", "-sS", "--cacert", CERT, "--tls-max", "1.2",
             "https://127.0.0.1:%d/" % port])
    t.eq(r.stdout, b"hello over TLSv1.2 (alpn http/1.1)\n", "TLS 1.2 reply (%r)" % r.stderr)


@t.test
def curl_refuses_then_insecure():
    srv, port = tls_hello((CERT, KEY))
    r = run(["curl", "-sS", "https://localhost:%d/" % port])  # system store
    t.eq(r.returncode, 60, "untrusted: curl status (%r)" % r.stderr)
    r = run(["curl", "-sS", "--cacert", CERT, "--resolve", "wrong.test:%d:127.0.0.1" % port,
             "https://wrong.test:%d/" % port])
    t.eq(r.returncode, 60, "wrong name: curl status (%r)" % r.stderr)
    r = run(["curl", "-sSk", "https://localhost:%d/" % port])
    t.eq(r.returncode, 0, "insecure")
    t.ok(srv.running(), "server survives refused handshakes")


@t.test
def our_client_refuses_with_reason():
    echo, port = axon_echo()
    r = run([example("tls_client"), "tls://localhost:%d" % port])
    t.eq(r.returncode, 1, "untrusted status")
    t.ok(b"certificate verification failed: self-signed certificate" in r.stderr,
         "reason: %r" % r.stderr)
    r = run([example("tls_client"), "tls://127.0.0.1:%d" % port, "--ca", CERT,
             "--name", "wrong.test"])
    t.eq(r.returncode, 1, "wrong name status")
    t.ok(b"certificate verification failed: hostname mismatch" in r.stderr,
         "reason: %r" % r.stderr)
    r = run([example("tls_client"), "tls://127.0.0.1:%d" % port, "--insecure", "--send", "ok"])
    t.eq((r.returncode, r.stdout), (0, b"ok\n"), "insecure (stderr %r)" % r.stderr)
    r = run([example("tls_client"), "tls://127.0.0.1:%d" % port, "--ca", CERT, "--send", "ip"])
    t.eq((r.returncode, r.stdout), (0, b"ip\n"), "IP SAN (stderr %r)" % r.stderr)



def wait_connectable(port):
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure("nothing listens on port %d" % port)

@t.test
def readme_pairs_tls_client_with_tls_hello():
    """The README's tls_client row, run as written against its tls_hello row."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    readme = open(os.path.join(root, "README.md")).read()
    server = re.search(r"`build/examples/tls_hello (tls://127\.0\.0\.1:(\d+)) [^`]*`", readme)
    client = re.search(r"`build/examples/tls_client (tls://localhost:(\d+)) ([^`]*)`", readme)
    t.ok(server and client, "tls_hello and tls_client rows in the README")
    t.eq(client.group(2), server.group(2), "the client's port is the server's")
    srv, port = tls_hello((CERT, KEY))
    args = client.group(3).replace("/tmp/tls/cert.pem", CERT).split()
    start = time.monotonic()
    r = run([example("tls_client"), "tls://localhost:%d" % port] + args, timeout=20)
    t.eq(r.returncode, 0, "exit status (stderr %r, %.1f s)" % (r.stderr, time.monotonic() - start))
    t.eq(r.stdout, b"hello over TLSv1.3 (alpn none)\n", "the hello line")
    srv.stop()


@t.test
def tls_client_gives_up_without_reply():
    """A server that says nothing (openssl s_server without -rev): a clear
    message and exit status 1 after --timeout, not a hang."""
    port = axtest.free_port()
    srv = Proc(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", CERT,
                "-key", KEY, "-quiet"], stdin=subprocess.PIPE)
    wait_connectable(port)
    start = time.monotonic()
    r = run([example("tls_client"), "tls://localhost:%d" % port, "--ca", CERT, "--send", "hi",
             "--timeout", "1"], timeout=20)
    took = time.monotonic() - start
    t.eq(r.returncode, 1, "exit status (stderr %r)" % r.stderr)
    t.ok(b"tls_client: no reply line within 1 s" in r.stderr, "message: %r" % r.stderr)
    t.ok(0.8 < took < 4, "gave up after %.1f s" % took)
    srv.stop()


def s_client_cipher(port, *args):
    """openssl s_client -tls1_2 ARGS against 127.0.0.1:port: the cipher
    agreed on, or None when the handshake failed."""
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1_2"] + list(args),
            timeout=10)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    m = re.search(r"Cipher is (\S+)", out)
    return m.group(1) if m and m.group(1) != "(NONE)" else None


@t.test
def tls12_aead_only_in_server_order():
    """TLS 1.2: CBC suites refused (testssl's LUCKY13), AEAD ones agreed on,
    and the server's order wins over the client's."""
    echo, port = axon_echo()  # an EC (ECDSA) certificate
    for cbc in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES128-SHA",
                "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES256-SHA"):
        t.eq(s_client_cipher(port, "-cipher", cbc), None, "CBC suite %s refused" % cbc)
    for aead in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                 "ECDHE-ECDSA-CHACHA20-POLY1305"):
        t.eq(s_client_cipher(port, "-cipher", aead), aead, "AEAD suite %s" % aead)
    t.eq(s_client_cipher(port, "-cipher",
                         "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"
                         "ECDHE-ECDSA-AES128-GCM-SHA256"),
         "ECDHE-ECDSA-AES128-GCM-SHA256", "the server's preference, not the client's")
    echo.stop()
    # our client offers no CBC suite either
    port = axtest.free_port()
    srv = Proc(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", CERT,
                "-key", KEY, "-rev", "-quiet", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"])
    wait_connectable(port)
    r = run([example("tls_client"), "tls://localhost:%d" % port, "--ca", CERT, "--send", "cbc"])
    t.eq(r.returncode, 1, "our client refuses a CBC-only server (stdout %r, stderr %r)"
         % (r.stdout, r.stderr))
    srv.stop()

def tls_echo_exchange(s, data):
    """Send data and read the echo on one thread (an SSL object must not be
    used by two threads at once), non-blocking, so backpressure is real."""
    s.setblocking(False)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + 10
    while len(got) < len(data):
        if time.monotonic() > deadline:
            raise Failure("stalled: sent %d, got %d of %d" % (sent, len(got), len(data)))
        select.select([s], [s] if sent < len(data) else [], [], 0.5)
        if sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while True:
            try:
                chunk = s.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not chunk:
                raise Failure("EOF after %d of %d bytes" % (len(got), len(data)))
            got.extend(chunk)
    s.setblocking(True)
    return bytes(got)


@t.test
def python_client_against_axon_echo():
    echo, port = axon_echo()
    ctx = ssl.create_default_context(cafile=CERT)
    for size in (1, 300000, 2000000):
        data = os.urandom(size)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                t.eq(s.version(), "TLSv1.3", "version")
                t.eq(tls_echo_exchange(s, data) == data, True, "%d bytes echoed" % size)
                s.unwrap()  # close_notify both ways


@t.test
def python_server_against_our_client():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    ctx.set_alpn_protocols(["x-test", "http/1.1"])
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    port = ls.getsockname()[1]
    seen = {}

    def serve():
        conn, _ = ls.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            seen["sni"] = s.server_hostname if hasattr(s, "server_hostname") else None
            seen["alpn"] = s.selected_alpn_protocol()
            line = b""
            while not line.endswith(b"\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                line += chunk
            s.sendall(line.upper())
            try:
                s.unwrap()
            except (OSError, ssl.SSLError):
                pass
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    r = run([example("tls_client"), "tls://localhost:%d" % port, "--ca", CERT,
             "--alpn", "h2,http/1.1", "--send", "quiet please"])
    th.join(5)
    ls.close()
    t.eq((r.returncode, r.stdout), (0, b"QUIET PLEASE\n"), "reply (stderr %r)" % r.stderr)
    t.eq(seen.get("alpn"), "http/1.1", "ALPN the server chose")
    t.ok(b"alpn http/1.1" in r.stderr, "client saw ALPN: %r" % r.stderr)


@t.test
def sni_selects_certificate():
    a = make_cert("alpha.test")
    b = make_cert("beta.test")
    srv, port = tls_hello(a, b)
    for name, want in (("alpha.test", "CN = alpha.test"), ("beta.test", "CN = beta.test"),
                       ("other.test", "CN = alpha.test")):
        r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", name],
                stdin=b"")
        out = r.stdout.decode(errors="replace")
        t.ok(re.search(r"subject=" + re.escape(want.replace("CN = ", "CN = ")), out) is not None,
             "%s: %r" % (name, re.findall(r"subject=.*", out)))
    r = run([example("tls_client"), "tls://127.0.0.1:%d" % port, "--ca", b[0], "--name",
             "beta.test", "--send", "GET / HTTP/1.0\r\n\r"])
    t.eq(r.returncode, 0, "verified beta.test (%r)" % r.stderr)


@t.test
def echo_tls_without_cert_is_clear():
    r = run([axon_bin(), "echo", "tls://127.0.0.1:%d" % axtest.free_port()])
    t.eq(r.returncode, 1, "status")
    t.ok(b"tls:// needs --cert FILE and --key FILE" in r.stderr, "message: %r" % r.stderr)
    r = run([axon_bin(), "echo", "tls://127.0.0.1:%d" % axtest.free_port(), "--cert",
             os.path.join(DIR, "missing.pem")])
    t.eq(r.returncode, 1, "status")
    t.ok(b"cannot read certificate" in r.stderr and b"missing.pem" in r.stderr,
         "message: %r" % r.stderr)


try:
    t.main()
finally:
    shutil.rmtree(DIR, ignore_errors=True)
