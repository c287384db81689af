#!/usr/bin/python3
"""HTTPS and wss:// listeners (ax_http_listen_tls): curl over https against
`axon http --cert --key --listen tls://` (static files, a range, keep-alive
reuse, a large file written through TLS, http and https side by side,
--threads 2, pipelined requests over one TLS session), Python `websockets` over wss://
against `axon echo wss://`, and clients that do not trust the certificate
refused."""

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Proc, axon_bin  # noqa: E402

t = axtest.Tests("https and wss listeners")
DIR = tempfile.mkdtemp(prefix="axon-https-")
ROOT = os.path.join(DIR, "root")
BIG = os.urandom(3 * 1024 * 1024 + 17)
SMALL = bytes(range(256)) * 40


def setup():
    os.makedirs(os.path.join(ROOT, "sub"))
    with open(os.path.join(ROOT, "index.html"), "w") as f:
        f.write("<h1>secure</h1>\n")
    with open(os.path.join(ROOT, "small.bin"), "wb") as f:
        f.write(SMALL)
    with open(os.path.join(ROOT, "sub", "big.bin"), "wb") as f:
        f.write(BIG)
    r = subprocess.run([axon_bin(), "cert", "--out", os.path.join(DIR, "c"), "--name",
                        "localhost"], capture_output=True, timeout=10)
    if r.returncode != 0:
        raise Failure("axon cert failed: %r" % r.stderr)
    return os.path.join(DIR, "c", "cert.pem"), os.path.join(DIR, "c", "key.pem")


CERT, KEY = setup()
LISTENING = re.compile(r"on (tls|tcp)://127\.0\.0\.1:(\d+) \((\w+)\)")


def start_http(*urls, extra=()):
    """axon http on the given URL templates ({port} filled in); the ports."""
    ports = [axtest.free_port() for _ in urls]
    args = [axon_bin(), "http", "--root", ROOT, "--cert", CERT, "--key", KEY] + list(extra)
    for u, p in zip(urls, ports):
        args += ["--listen", u.format(port=p)]
    proc = Proc(args)
    deadline = time.monotonic() + axtest.TIMEOUT
    while len(LISTENING.findall(proc.stderr())) < len(urls):
        if not proc.running() or time.monotonic() > deadline:
            raise Failure("axon http did not start%s" % proc.err_note())
        time.sleep(0.02)
    for m in LISTENING.finditer(proc.stderr()):
        if axtest.BACKEND and m.group(3) != axtest.BACKEND:
            raise Failure("backend %s, AXON_BACKEND=%s" % (m.group(3), axtest.BACKEND))
    return proc, ports


def curl(*args, timeout=20):
    r = subprocess.run(["curl", "-sS", "--max-time", "15"] + list(args), capture_output=True,
                       timeout=timeout)
    return r


def https(port, path="/"):
    return "https://localhost:%d%s" % (port, path)


def trusted():
    ctx = ssl.create_default_context(cafile=CERT)
    return ctx


@t.test
def curl_static_files_over_https():
    _, (port,) = start_http("tls://127.0.0.1:{port}")
    r = curl("--cacert", CERT, "-D", "-", https(port))
    t.eq(r.returncode, 0, "curl exit (%r)" % r.stderr)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    t.ok(head.startswith(b"HTTP/1.1 200"), "status line %r" % head[:40])
    t.ok(b"content-type: text/html" in head.lower(), "Content-Type in %r" % head)
    t.eq(body, b"<h1>secure</h1>\n", "index.html")
    r = curl("--cacert", CERT, https(port, "/small.bin"))
    t.eq(r.stdout, SMALL, "small.bin")
    r = curl("--cacert", CERT, "-o", "/dev/null", "-w", "%{http_code}", https(port, "/nope"))
    t.eq(r.stdout, b"404", "missing file")


@t.test
def curl_range_over_https():
    _, (port,) = start_http("tls://127.0.0.1:{port}")
    r = curl("--cacert", CERT, "-r", "100-1123", "-w", "\n%{http_code}", https(port, "/small.bin"))
    body, _, code = r.stdout.rpartition(b"\n")
    t.eq(code, b"206", "status")
    t.eq(body, SMALL[100:1124], "range body")
    r = curl("--cacert", CERT, "-r", "%d-" % (len(BIG) - 5), https(port, "/sub/big.bin"))
    t.eq(r.stdout, BIG[-5:], "suffix of the big file")


@t.test
def curl_reuses_the_tls_connection():
    _, (port,) = start_http("tls://127.0.0.1:{port}")
    r = curl("--cacert", CERT, "-w", "%{num_connects} %{http_code}\n", "-o", "/dev/null",
             https(port, "/small.bin"), "-o", "/dev/null", https(port, "/index.html"), "-o",
             "/dev/null", https(port, "/small.bin"))
    t.eq(r.returncode, 0, "curl exit (%r)" % r.stderr)
    t.eq(r.stdout.decode().split("\n")[:3], ["1 200", "0 200", "0 200"],
         "connects per request (keep-alive: one handshake)")


@t.test
def large_file_through_tls_not_sendfile():
    _, (port,) = start_http("tls://127.0.0.1:{port}")
    r = curl("--cacert", CERT, https(port, "/sub/big.bin"), "--limit-rate", "4M")
    t.eq(r.returncode, 0, "curl exit (%r)" % r.stderr)
    t.eq(len(r.stdout), len(BIG), "length")
    t.ok(r.stdout == BIG, "3 MiB file arrives intact")


@t.test
def http_and_https_side_by_side():
    _, (plain, sec) = start_http("tcp://127.0.0.1:{port}", "tls://127.0.0.1:{port}")
    r = curl("http://127.0.0.1:%d/small.bin" % plain)
    t.eq(r.stdout, SMALL, "over http")
    r = curl("--cacert", CERT, https(sec, "/small.bin"))
    t.eq(r.stdout, SMALL, "over https")
    r = curl("http://127.0.0.1:%d/" % sec)  # plain HTTP to the TLS port
    t.ok(r.returncode != 0 or not r.stdout.startswith(b"<h1>"), "plain HTTP on the TLS port")
    r = curl("--cacert", CERT, https(sec))
    t.eq(r.stdout, b"<h1>secure</h1>\n", "https still fine after the bad client")


@t.test
def two_threads_share_one_context():
    _, (port,) = start_http("tls://127.0.0.1:{port}", extra=["--threads", "2"])
    for i in range(6):  # separate connections, spread over both loops
        r = curl("--cacert", CERT, https(port, "/small.bin"))
        t.eq(r.stdout, SMALL, "request %d" % i)


@t.test
def pipelined_requests_in_one_tls_session():
    _, (port,) = start_http("tls://127.0.0.1:{port}")
    raw = socket.create_connection(("127.0.0.1", port), timeout=axtest.TIMEOUT)
    s = trusted().wrap_socket(raw, server_hostname="localhost")
    req = b"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req * 3 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    t.eq(got.count(b"HTTP/1.1 200 OK\r\n"), 4, "responses")
    t.eq(got.count(SMALL), 3, "bodies in order")
    t.ok(got.endswith(b"<h1>secure</h1>\n"), "the last one is index.html")


@t.test
def untrusted_certificate_refused():
    _, (port,) = start_http("tls://127.0.0.1:{port}")
    r = curl(https(port))  # the system store does not know our self-signed cert
    t.eq(r.returncode, 60, "curl exit without --cacert (%r)" % r.stderr)
    r = curl("--cacert", CERT, "https://127.0.0.1.nip.invalid:%d/" % port, "--resolve",
             "127.0.0.1.nip.invalid:%d:127.0.0.1" % port)
    t.eq(r.returncode, 60, "curl exit for a name the certificate does not have")
    r = curl("--cacert", CERT, https(port))
    t.eq(r.stdout, b"<h1>secure</h1>\n", "a trusting client still gets in")


@t.test
def tls_listen_needs_a_certificate():
    port = axtest.free_port()
    for sub, url in (("http", ["--listen", "tls://127.0.0.1:%d" % port]),
                     ("echo", ["wss://127.0.0.1:%d/" % port])):
        r = subprocess.run([axon_bin(), sub] + url, capture_output=True, timeout=10)
        t.eq(r.returncode, 1, "axon %s without --cert" % sub)
        t.ok(b"--cert" in r.stderr, "the message names --cert: %r" % r.stderr)


# ---- wss:// with Python websockets ------------------------------------------

try:
    import websockets
except ImportError:
    websockets = None


def start_wss():
    port = axtest.free_port()
    proc = Proc([axon_bin(), "echo", "wss://127.0.0.1:%d/" % port, "--cert", CERT, "--key", KEY])
    deadline = time.monotonic() + axtest.TIMEOUT
    while "listening on" not in proc.stderr():
        if not proc.running() or time.monotonic() > deadline:
            raise Failure("axon echo wss:// did not start%s" % proc.err_note())
        time.sleep(0.02)
    return proc, "wss://localhost:%d" % port


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def need_websockets():
    if websockets is None:
        raise Failure("python3-websockets is not installed (scripts/deps.sh test)")


@t.test
def websockets_client_over_wss():
    need_websockets()
    _, url = start_wss()

    async def go():
        async with websockets.connect(url + "/any/path", ssl=trusted(),
                                      compression=None) as ws:
            await ws.send("hello over tls")
            text = await ws.recv()
            big = os.urandom(300 * 1024)
            await ws.send(big)
            echoed = await ws.recv()
            pong = await ws.ping(b"p")
            await asyncio.wait_for(pong, 5)
            await ws.close(1000, "bye")
            return text, echoed == big, ws.close_code

    text, same, code = run(go())
    t.eq(text, "hello over tls", "text echo")
    t.ok(same, "300 KiB binary echo")
    t.eq(code, 1000, "close code")


@t.test
def websockets_over_wss_with_deflate():
    need_websockets()
    _, url = start_wss()

    async def go():
        async with websockets.connect(url + "/", ssl=trusted()) as ws:
            msgs = ["message %d " % i * 50 for i in range(20)]
            for m in msgs:
                await ws.send(m)
            got = [await ws.recv() for _ in msgs]
            return got == msgs, ws.response_headers.get("Sec-WebSocket-Extensions", "") \
                if hasattr(ws, "response_headers") else ws.response.headers.get(
                    "Sec-WebSocket-Extensions", "")

    same, ext = run(go())
    t.ok(same, "20 compressible messages in order")
    t.ok("permessage-deflate" in ext, "deflate negotiated: %r" % ext)


@t.test
def websockets_refuses_untrusted_wss():
    need_websockets()
    _, url = start_wss()

    async def go():
        try:
            async with websockets.connect(url + "/", ssl=ssl.create_default_context()):
                return "connected"
        except ssl.SSLCertVerificationError as e:
            return "refused: %s" % e.verify_message

    got = run(go())
    t.ok(got.startswith("refused"), "untrusted certificate: %s" % got)

    async def again():  # the server is still fine for a trusting client
        async with websockets.connect(url + "/", ssl=trusted()) as ws:
            await ws.send("still here")
            return await ws.recv()

    t.eq(run(again()), "still here", "echo after the refused client")


try:
    t.main()
finally:
    shutil.rmtree(DIR, ignore_errors=True)
