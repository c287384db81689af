#!/usr/bin/python3
"""test_http_protocol: the HTTP/1.1 server's connection handling: pipelining
over a raw socket, request bodies (Content-Length, chunked via curl -T -),
413, 100-continue, HTTP/1.0, the parser's error answers with
Connection: close, idle keep-alive and body timeouts, the Date field, and
examples/http_hello."""
import email.utils
import datetime
import hashlib
import os
import socket
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("axon http: protocol")
ROOT = tempfile.mkdtemp(prefix="axon-http-proto-")
with open(os.path.join(ROOT, "a.txt"), "w") as f:
    f.write("AAAA\n")
with open(os.path.join(ROOT, "b.txt"), "w") as f:
    f.write("BB\n")


class Http(axtest.Proc):
    def __init__(self, *args, env=None):
        self.port = axtest.free_port()
        super().__init__([axtest.axon_bin(), "http", "--root", ROOT, "--listen",
                          "tcp://127.0.0.1:%d" % self.port, "--echo", "/echo",
                          "--stream-echo", "/stream"] + list(args), env=env)
        deadline = time.monotonic() + axtest.TIMEOUT
        while "serving" not in self.stderr():
            if time.monotonic() > deadline or not self.running():
                raise axtest.Failure("axon http did not start%s" % self.err_note())
            time.sleep(0.02)
        self.base = "http://127.0.0.1:%d" % self.port


def curl(*args, data=None):
    p = subprocess.run(["curl", "-s", "--max-time", "5"] + list(args), input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return p.stdout, p.stderr.decode(errors="replace")


def read_until_close(sock, timeout=axtest.TIMEOUT):
    sock.settimeout(timeout)
    got = b""
    while True:
        try:
            c = sock.recv(65536)
        except ConnectionResetError:
            break
        if not c:
            break
        got += c
    return got


def responses(data):
    """Split a byte stream of responses with Content-Length bodies."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise axtest.Failure("truncated response: %r" % data[:200])
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.lower() == b"content-length":
                n = int(v)
        out.append((head, rest[:n]))
        data = rest[n:]
    return out


rss_kb = axtest.rss_kb


@t.test
def streamed_upload_with_backpressure():
    """48 MB up and back through --stream-echo: the body is never held
    whole, so the server's memory stays flat; both Content-Length and
    chunked uploads."""
    s = Http(env=axtest.flat_memory_env())
    path = os.path.join(ROOT, "upload.bin")
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(48):
            f.write(block[i:] + block[:i])
    want = hashlib.sha256(open(path, "rb").read()).hexdigest()
    before = rss_kb(s.p.pid)
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        p = subprocess.run(["curl", "-sS", "--max-time", "60", "-T", path] + extra +
                           [s.base + "/stream/x"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=70)
        t.eq(p.returncode, 0, "curl exit status (%s)" % p.stderr.decode(errors="replace"))
        t.eq(len(p.stdout), 48 << 20, "bytes echoed")
        t.eq(hashlib.sha256(p.stdout).hexdigest(), want, "content echoed")
    grown = rss_kb(s.p.pid) - before
    t.ok(grown < 16 * 1024, "server RSS grew by %d KiB for 96 MB streamed" % grown)
    os.unlink(path)


@t.test
def pipelining_in_order():
    s = Http()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                 b"GET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs = responses(read_until_close(sock))
    t.eq([b for _, b in rs], [b"AAAA\n", b"hello", b"BB\n"], "three responses in order")
    t.ok(b"Connection: close" in rs[2][0], "the last one closes")


@t.test
def pipelining_many():
    s = Http()
    sock = socket.create_connection(("127.0.0.1", s.port))
    reqs = b"".join(b"GET /%s.txt HTTP/1.1\r\nHost: x\r\n\r\n" % (b"a" if i % 2 else b"b")
                    for i in range(50))
    sock.sendall(reqs + b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs = responses(read_until_close(sock))
    t.eq(len(rs), 51, "51 responses")
    t.eq([b for _, b in rs[:4]], [b"BB\n", b"AAAA\n", b"BB\n", b"AAAA\n"], "in order")


@t.test
def chunked_upload_with_curl():
    s = Http()
    data = os.urandom(200000)
    out, err = curl("-T", "-", "-H", "Transfer-Encoding: chunked", s.base + "/echo", data=data)
    t.eq(len(out), len(data), "echoed length")
    t.ok(out == data, "chunked body arrives decoded")
    out, _ = curl("--data-binary", "@-", s.base + "/echo/x?y=1", "-D", "-", data=b"abc")
    t.ok(out.endswith(b"\r\n\r\nabc") and b"X-Request: POST /echo/x?y=1" in out,
         "Content-Length body and target: %r" % out)


@t.test
def body_too_large_413():
    s = Http("--max-body", "1000")
    out, _ = curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary", "@-",
                  s.base + "/echo", data=b"x" * 2000)
    t.eq(out, b"413", "Content-Length over the limit")
    out, _ = curl("-o", "/dev/null", "-w", "%{http_code}", "-T", "-", "-H",
                  "Transfer-Encoding: chunked", s.base + "/echo", data=b"y" * 5000)
    t.eq(out, b"413", "chunked body over the limit")
    out, _ = curl("--data-binary", "@-", s.base + "/echo", data=b"z" * 1000)
    t.eq(out, b"z" * 1000, "exactly the limit is fine")


@t.test
def expect_100_continue():
    s = Http()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.settimeout(axtest.TIMEOUT)
    sock.sendall(b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    got = sock.recv(1000)
    t.eq(got, b"HTTP/1.1 100 Continue\r\n\r\n", "interim response before the body")
    sock.sendall(b"data")
    got = sock.recv(1000)
    t.ok(got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"data"), "then the answer")
    out, err = curl("-v", "-H", "Expect: 100-continue", "--data-binary", "@-", s.base + "/echo",
                    data=b"q" * 3000)
    t.eq(out, b"q" * 3000, "curl with Expect")
    t.ok("100 Continue" in err, "curl saw 100 Continue")


@t.test
def http10():
    s = Http()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /a.txt HTTP/1.0\r\n\r\n")
    got = read_until_close(sock)
    t.ok(got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b"AAAA\n"), "1.0 answer: %r" % got)
    t.ok(b"Connection: close" in got, "closes without keep-alive")
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    sock.settimeout(axtest.TIMEOUT)
    got = sock.recv(1000)
    t.ok(b"Connection: keep-alive" in got, "1.0 keep-alive: %r" % got)
    sock.sendall(b"GET /b.txt HTTP/1.0\r\n\r\n")
    t.ok(read_until_close(sock).endswith(b"BB\n"), "second request on it")


@t.test
def parser_errors_close():
    s = Http()
    cases = [
        (b"GET / HTTP/1.1\r\n\r\n", 400),                              # no Host
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"b" * 40000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400),
    ]
    for req, want in cases:
        sock = socket.create_connection(("127.0.0.1", s.port))
        try:
            sock.sendall(req)
        except OSError:
            pass
        got = read_until_close(sock)
        t.ok(got.startswith(b"HTTP/1.1 %d " % want), "%r... answered %r" % (req[:40], got[:60]))
        t.ok(b"Connection: close" in got, "closes after %d" % want)


@t.test
def idle_keepalive_timeout():
    s = Http("--idle-timeout", "0.5")
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    start = time.monotonic()
    got = read_until_close(sock, timeout=4)
    took = time.monotonic() - start
    t.ok(got.endswith(b"AAAA\n"), "answered first")
    t.ok(0.3 < took < 3, "idle connection closed after %.2f s" % took)


def read_response(sock, timeout=axtest.TIMEOUT):
    """One response with a Content-Length body from a keep-alive socket:
    (head, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        c = sock.recv(65536)
        if not c:
            raise axtest.Failure("closed before a response head: %r" % data[:200])
        data += c
    head, _, rest = data.partition(b"\r\n\r\n")
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        c = sock.recv(65536)
        if not c:
            raise axtest.Failure("closed inside a body: %r" % rest[:200])
        rest += c
    if len(rest) > n:
        raise axtest.Failure("more than one response: %r" % rest[n:n + 100])
    return head, rest


def header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name.lower():
            return v.strip().decode()
    return None


@t.test
def body_timeout_408():
    """--body-timeout 0.3: a body that stops after 2 of 10 bytes gets 408
    and a close about 0.3 s after its last byte (the default is 30 s); one
    that keeps coming, a byte every 0.1 s, is answered."""
    s = Http("--body-timeout", "0.3")
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    start = time.monotonic()
    got = read_until_close(sock, timeout=5)
    took = time.monotonic() - start
    t.ok(got.startswith(b"HTTP/1.1 408 "), "stalled body answered %r" % got[:80])
    t.ok(b"Connection: close" in got, "408 closes: %r" % got[:200])
    t.ok(0.2 <= took <= 2.0, "closed %.2f s after the last byte" % took)
    sock.close()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n"
                 b"Connection: close\r\n\r\n")
    start = time.monotonic()
    for b in b"slowly":
        time.sleep(0.1)
        sock.sendall(bytes([b]))
    got = read_until_close(sock, timeout=5)
    t.ok(time.monotonic() - start >= 0.6, "the trickle took its time")
    t.ok(got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\nslowly"),
         "trickled body answered %r" % got[-200:])


@t.test
def date_header_current_and_moving():
    """Date on one keep-alive connection: now (within 2 s), and a second
    later it has moved on (the server caches it, but not for too long)."""
    s = Http()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = read_response(sock)
    t.eq(body, b"AAAA\n", "first body")
    d1 = header(head, b"Date")
    t.ok(d1 is not None, "no Date in %r" % head)
    t.ok(d1.endswith(" GMT"), "Date in GMT: %r" % d1)
    when1 = email.utils.parsedate_to_datetime(d1)
    now = datetime.datetime.now(datetime.timezone.utc)
    t.ok(abs((now - when1).total_seconds()) <= 2, "Date %r, now %s" % (d1, now))
    time.sleep(1.1)
    sock.sendall(b"GET /b.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = read_response(sock)
    t.eq(body, b"BB\n", "second body on the same connection")
    d2 = header(head, b"Date")
    t.ok(d2 is not None, "no Date in the second head %r" % head)
    when2 = email.utils.parsedate_to_datetime(d2)
    t.ok(when2 > when1, "Date moved forward: %r then %r" % (d1, d2))
    now = datetime.datetime.now(datetime.timezone.utc)
    t.ok(abs((now - when2).total_seconds()) <= 2, "second Date %r, now %s" % (d2, now))
    sock.close()


@t.test
def hello_example():
    port = axtest.free_port()
    p = axtest.Proc([axtest.example("http_hello"), str(port)])
    p.wait_output(lambda o: b"http server on tcp://127.0.0.1:%d" % port in o,
                  what="the listening line")
    out, err = curl("-v", "http://127.0.0.1:%d/" % port, "http://127.0.0.1:%d/" % port)
    t.eq(out, b"Hello, World!Hello, World!", "two answers")
    t.ok("Re-using" in err or "Reusing" in err, "one connection")
    out, _ = curl("-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                  "http://127.0.0.1:%d/" % port)
    t.eq(out, b"405", "POST / is not routed")


@t.test
def threads():
    s = Http("--threads", "2")
    for _ in range(10):
        out, _ = curl(s.base + "/a.txt")
        t.eq(out, b"AAAA\n", "answer from either thread")
    s.signal(15)
    t.exits(s, 0, "clean stop with two threads")


try:
    t.main()
finally:
    import shutil
    shutil.rmtree(ROOT, ignore_errors=True)
