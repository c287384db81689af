#!/usr/bin/python3
"""test_http_static: `axon http` serving a folder, driven by curl: keep-alive
reuse, Range (single, multiple, unsatisfiable), conditional requests (304),
HEAD, index.html and listings, paths that try to leave the root, the
access log (off unless asked for), and sendfile under strace."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("axon http: static files")
ROOT = tempfile.mkdtemp(prefix="axon-http-root-")
OUTSIDE = tempfile.mkdtemp(prefix="axon-http-outside-")
BIG = os.urandom(300000)


def setup_root():
    with open(os.path.join(ROOT, "index.html"), "w") as f:
        f.write("<h1>home</h1>\n")
    with open(os.path.join(ROOT, "big.bin"), "wb") as f:
        f.write(BIG)
    os.mkdir(os.path.join(ROOT, "docs"))
    with open(os.path.join(ROOT, "docs", "a b.txt"), "w") as f:
        f.write("spaced\n")
    with open(os.path.join(ROOT, "style.css"), "w") as f:
        f.write("body{}\n")
    with open(os.path.join(OUTSIDE, "secret.txt"), "w") as f:
        f.write("secret\n")
    os.symlink(os.path.join(OUTSIDE, "secret.txt"), os.path.join(ROOT, "leak.txt"))
    os.symlink(OUTSIDE, os.path.join(ROOT, "leakdir"))
    os.symlink("style.css", os.path.join(ROOT, "inside.css"))
    with open(os.path.join(ROOT, "app.js"), "w") as f:
        f.write("console.log('plain');\n" * 50)
    subprocess.run(["gzip", "-k", "-9", os.path.join(ROOT, "app.js")], check=True)


class Http(axtest.Proc):
    """`axon http ARGS` on a free port; waits for its listening line."""

    def __init__(self, *args):
        self.port = axtest.free_port()
        super().__init__([axtest.axon_bin(), "http", "--root", ROOT, "--listen",
                          "tcp://127.0.0.1:%d" % self.port] + list(args))
        deadline = time.monotonic() + axtest.TIMEOUT
        while "serving" not in self.stderr():
            if time.monotonic() > deadline or not self.running():
                raise axtest.Failure("axon http did not start%s" % self.err_note())
            time.sleep(0.02)
        self.base = "http://127.0.0.1:%d" % self.port


def curl(*args, binary=False):
    p = subprocess.run(["curl", "-s", "--max-time", "5"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return p.stdout if binary else p.stdout.decode(errors="replace"), p.stderr.decode(
        errors="replace")


def status(url, *args):
    out, _ = curl("-o", "/dev/null", "-w", "%{http_code}", *args, url)
    return int(out or 0)


def headers(url, *args):
    out, _ = curl("-D", "-", "-o", "/dev/null", *args, url)
    return out


@t.test
def get_index_and_types():
    s = Http()
    body, _ = curl(s.base + "/")
    t.eq(body, "<h1>home</h1>\n", "GET / serves index.html")
    h = headers(s.base + "/style.css")
    t.ok("Content-Type: text/css" in h, "css type in %r" % h)
    got, _ = curl(s.base + "/big.bin", binary=True)
    t.eq(got == BIG, True, "300 KB file arrives whole")


@t.test
def keep_alive_reuse():
    s = Http()
    _, err = curl("-v", s.base + "/style.css", s.base + "/index.html", s.base + "/big.bin",
                  "-o", "/dev/null", "-o", "/dev/null", "-o", "/dev/null")
    t.ok(err.count("Re-using existing connection") >= 2 or err.count("Reusing existing") >= 2,
         "curl reused the connection: %r" % err[-600:])


@t.test
def pipelined_big_files():
    s = Http()
    sock = socket.create_connection(("127.0.0.1", s.port))
    reqs = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" * 4
    sock.sendall(reqs + b"GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.3)  # let the server fill the socket and wait for drain
    got = axtest.recv_all(sock, 10 ** 7)
    bodies = []
    while got:
        head, _, rest = got.partition(b"\r\n\r\n")
        n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        bodies.append(rest[:n])
        got = rest[n:]
    t.eq(len(bodies), 5, "five responses")
    t.ok(all(b == BIG for b in bodies[:4]), "four whole files, in order")
    t.eq(bodies[4], b"body{}\n", "then the last one")


@t.test
def head_has_no_body():
    s = Http()
    out, _ = curl("-I", s.base + "/big.bin")
    t.ok("Content-Length: 300000" in out, "HEAD announces the length: %r" % out)
    raw, _ = curl("-i", "-X", "HEAD", s.base + "/big.bin", binary=True)
    t.ok(raw.endswith(b"\r\n\r\n"), "no body after the HEAD response head")


@t.test
def ranges():
    s = Http()
    got, _ = curl("-r", "100-199", s.base + "/big.bin", binary=True)
    t.eq(got, BIG[100:200], "bytes 100-199")
    got, _ = curl("-r", "-50", s.base + "/big.bin", binary=True)
    t.eq(got, BIG[-50:], "suffix range")
    h = headers(s.base + "/big.bin", "-r", "299990-")
    t.ok("206 Partial Content" in h and "Content-Range: bytes 299990-299999/300000" in h,
         "open range: %r" % h)
    t.eq(status(s.base + "/big.bin", "-r", "400000-"), 416, "range past the end")
    h = headers(s.base + "/big.bin", "-r", "400000-")
    t.ok("Content-Range: bytes */300000" in h, "416 names the size")
    raw, _ = curl("-i", "-r", "0-9,1000-1009", s.base + "/big.bin", binary=True)
    head, _, body = raw.partition(b"\r\n\r\n")
    m = re.search(rb"boundary=(\S+)", head)
    t.ok(m is not None and b"multipart/byteranges" in head, "multipart head: %r" % head)
    parts = body.split(b"--" + m.group(1))
    t.eq(len(parts), 4, "two parts and the end")
    t.ok(parts[1].endswith(b"\r\n\r\n" + BIG[0:10] + b"\r\n"), "first part")
    t.ok(b"Content-Range: bytes 1000-1009/300000" in parts[2], "second part range")
    t.ok(parts[2].endswith(BIG[1000:1010] + b"\r\n"), "second part bytes")
    t.eq(parts[3], b"--\r\n", "closing delimiter")


@t.test
def conditional_requests():
    s = Http()
    h = headers(s.base + "/style.css")
    etag = re.search(r"ETag: (\S+)", h).group(1)
    lm = re.search(r"Last-Modified: (.+?)\r", h).group(1)
    t.eq(status(s.base + "/style.css", "-H", "If-None-Match: " + etag), 304, "same ETag")
    t.eq(status(s.base + "/style.css", "-H", 'If-None-Match: "nope", ' + etag), 304,
         "ETag in a list")
    t.eq(status(s.base + "/style.css", "-H", 'If-None-Match: "nope"'), 200, "other ETag")
    t.eq(status(s.base + "/style.css", "-H", "If-Modified-Since: " + lm), 304, "not modified")
    t.eq(status(s.base + "/style.css", "-H", "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT"),
         200, "modified since 2000")
    t.eq(status(s.base + "/big.bin", "-r", "0-9", "-H", 'If-Range: "stale"'), 200,
         "If-Range with a stale ETag sends the whole file")


@t.test
def traversal_refused():
    s = Http()
    for path in ["/../../../etc/passwd", "/docs/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/%2E%2E%2f%2E%2E%2fetc/passwd", "/docs/%2e%2e/%2e%2e/etc/passwd",
                 "/..%2f..%2fetc%2fpasswd"]:
        code = status(s.base + path, "--path-as-is")
        t.ok(code in (403, 404), "%s answered %d" % (path, code))
    t.eq(status(s.base + "/leak.txt"), 403, "symlink to a file outside the root")
    t.eq(status(s.base + "/leakdir/secret.txt"), 403, "symlinked folder outside the root")
    t.eq(status(s.base + "/inside.css"), 200, "symlink inside the root is fine")
    t.eq(status(s.base + "/a%00b", "--path-as-is"), 400, "encoded NUL")
    t.eq(status(s.base + "/nothere"), 404, "missing file")
    body, _ = curl("--path-as-is", s.base + "/%2e%2e/%2e%2e/etc/passwd")
    t.ok("root:" not in body, "no /etc/passwd")


@t.test
def folders_and_listing():
    s = Http()
    h = headers(s.base + "/docs")
    t.ok("301" in h and "Location: /docs/" in h, "redirect to the slash: %r" % h)
    t.eq(status(s.base + "/docs/"), 403, "no listing without --list")
    s.stop()
    s = Http("--list")
    body, _ = curl(s.base + "/docs/")
    t.ok('href="a%20b.txt"' in body and "a b.txt" in body, "listing: %r" % body)
    body, _ = curl(s.base + "/docs/a%20b.txt")
    t.eq(body, "spaced\n", "percent-decoded name")


@t.test
def access_log():
    s = Http("--access-log")
    curl(s.base + "/style.css")
    out = s.wait_output(lambda o: b"GET /style.css" in o, what="an access log line")
    t.ok(re.search(rb'127\.0\.0\.1 - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                   rb'"GET /style.css HTTP/1.1" 200 7', out), "CLF line: %r" % out)


@t.test
def access_log_combined_and_json():
    s = Http("--log-format", "combined")
    curl("-A", 'agent "quoted"', "-e", "http://ref.example/", s.base + "/style.css")
    out = s.wait_output(lambda o: b"GET /style.css" in o, what="a combined log line")
    t.ok(re.search(rb'"GET /style.css HTTP/1.1" 200 7 "http://ref.example/" '
                   rb'"agent \\"quoted\\""', out), "combined line: %r" % out)
    s.stop()
    s = Http("--log-format", "json")
    curl("-A", "tester/1", s.base + "/nothing-here")
    out = s.wait_output(lambda o: b"nothing-here" in o, what="a JSON log line")
    line = [x for x in out.decode().splitlines() if "nothing-here" in x][0]
    rec = json.loads(line)
    t.eq(rec["request"], "GET /nothing-here HTTP/1.1", "request")
    t.eq(rec["status"], 404, "status")
    t.eq(rec["user_agent"], "tester/1", "user agent")
    t.eq(rec["remote"], "127.0.0.1", "remote")
    t.ok(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", rec["time"]), rec["time"])


@t.test
def access_log_off_by_default():
    """No log flag, no access log: after a request and a clean stop, stdout
    is empty and stderr holds only the serving/stopped lines.  The same
    steps with --access-log do show the line, so the check can see one."""
    for args, want_line in (([], False), (["--access-log"], True)):
        s = Http(*args)
        body, _ = curl(s.base + "/style.css")
        t.eq(body, "body{}\n", "the file (%s)" % (args or "no flags"))
        s.signal(15)
        t.exits(s, 0, "clean stop")
        out = s.output().decode(errors="replace")
        err = s.stderr()
        logged = "GET /style.css" in out or "GET /style.css" in err
        t.eq(logged, want_line, "access-log line with %s; stdout %r, stderr %r" %
             (args or "no flags", out[-200:], err[-300:]))
        if not want_line:
            t.eq(out, "", "stdout without log flags")
            extra = [x for x in err.splitlines() if "serving" not in x and "stopped" not in x]
            t.eq(extra, [], "stderr lines besides serving/stopped")


@t.test
def sendfile_carries_the_file():
    """axon http under strace -f -e trace=sendfile: a 300 KB file fetched
    with curl arrives byte for byte, and sendfile calls carried (nearly)
    all of it, not read/write copies."""
    if not shutil.which("strace"):
        raise axtest.Failure("strace is not installed (scripts/deps.sh test)")
    trace = os.path.join(ROOT, "..", os.path.basename(ROOT) + ".strace")
    port = axtest.free_port()
    # LeakSanitizer cannot run under ptrace: a sanitizer build (make san)
    # checks leaks everywhere but here.
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p = axtest.Proc(["strace", "-f", "-qq", "-e", "trace=sendfile", "-o", trace,
                     axtest.axon_bin(), "http", "--root", ROOT, "--listen",
                     "tcp://127.0.0.1:%d" % port], env=env)
    try:
        deadline = time.monotonic() + axtest.TIMEOUT
        while "serving" not in p.stderr() or not axtest.traced_axons(p.pid):
            if time.monotonic() > deadline or not p.running():
                raise axtest.Failure("axon http under strace did not start%s" % p.err_note())
            time.sleep(0.02)
        child = axtest.traced_axons(p.pid)[0]
        body, _ = curl("http://127.0.0.1:%d/big.bin" % port, binary=True)
        t.eq(len(body), len(BIG), "bytes fetched")
        t.ok(body == BIG, "the file arrives byte for byte")
        # strace blocks fatal signals while it runs a program (-I 3): the
        # server itself gets the SIGTERM, and strace ends with it.
        os.kill(child, signal.SIGTERM)
        t.exits(p, 0, "strace (and the server) stop")
        with open(trace) as f:
            lines = f.read().splitlines()
        calls = [x for x in lines if "sendfile" in x]
        sent = sum(int(m.group(1)) for m in
                   (re.search(r"\)\s+=\s+(\d+)$", x) for x in calls) if m)
        t.ok(calls, "no sendfile call traced: %r" % lines[-5:])
        t.ok(sent >= 0.9 * len(BIG), "sendfile carried %d of %d bytes: %r" %
             (sent, len(BIG), calls[:5]))
        t.ok(sent <= len(BIG), "sendfile sent %d bytes for a %d-byte file" % (sent, len(BIG)))
    finally:
        axtest.kill_traced(p.pid)
        try:
            os.unlink(trace)
        except OSError:
            pass


@t.test
def precompressed_gzip_sibling():
    s = Http()
    url = s.base + "/app.js"
    plain = open(os.path.join(ROOT, "app.js"), "rb").read()
    gz = open(os.path.join(ROOT, "app.js.gz"), "rb").read()
    h = headers(url, "-H", "Accept-Encoding: gzip, deflate")
    t.ok("Content-Encoding: gzip" in h, "gzip served: %r" % h)
    t.ok("Vary: Accept-Encoding" in h, "Vary: %r" % h)
    t.ok("Content-Length: %d" % len(gz) in h, "length of the .gz: %r" % h)
    t.ok("javascript" in h, "type of the original: %r" % h)
    body, _ = curl("--compressed", url, binary=True)
    t.eq(body, plain, "curl --compressed decodes to the original")
    raw, _ = curl("-H", "Accept-Encoding: gzip", url, binary=True)
    t.eq(raw, gz, "the .gz bytes as they are")
    h = headers(url)
    t.ok("Content-Encoding" not in h and "Content-Length: %d" % len(plain) in h,
         "no gzip without Accept-Encoding: %r" % h)
    h = headers(url, "-H", "Accept-Encoding: gzip;q=0, *")
    t.ok("Content-Encoding" not in h, "gzip;q=0 refuses it: %r" % h)
    h = headers(url, "-H", "Accept-Encoding: br;q=1.0, *;q=0.5")
    t.ok("Content-Encoding: gzip" in h, "* accepts gzip: %r" % h)


setup_root()
try:
    t.main()
finally:
    shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(OUTSIDE, ignore_errors=True)
