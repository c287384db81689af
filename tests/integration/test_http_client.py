#!/usr/bin/python3
"""test_http_client: `axon get` against real servers: Python's http.server
(HTTP/1.0, a multi-MB binary), nginx (keep-alive reuse checked in its own
log, chunked bodies from sub_filter and gzip, redirects, TLS), a small
Python https server (close-delimited bodies, trusted, untrusted and
--insecure), `axon http --echo` for uploads, and the failures curl users
expect: refused, unknown host, timeout, HTTP errors with -f."""
import gzip
import os
import shutil
import socket
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("axon get: the HTTP client against real servers", alarm=240)
TMP = tempfile.mkdtemp(prefix="axon-get-")
WWW = os.path.join(TMP, "www")
BIG = os.urandom(3 * 1024 * 1024 + 12345)
TEXT = b"".join(b"line %06d: axon fetches this\n" % i for i in range(8000))
SMALL = b"small file\n"


def setup_files():
    os.makedirs(os.path.join(WWW, "dir"))
    os.makedirs(os.path.join(WWW, "sub"))
    for name, data in (("big.bin", BIG), ("small.txt", SMALL), ("dir/inner.txt", b"inner\n"),
                       ("sub/text.txt", TEXT), ("text.txt", TEXT)):
        with open(os.path.join(WWW, name), "wb") as f:
            f.write(data)
    os.chmod(TMP, 0o755)
    p = subprocess.run([axtest.axon_bin(), "cert", "--out", TMP, "--name", "localhost"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise axtest.Failure("axon cert failed: %r" % p.stderr)


wait_port = axtest.wait_port


def get(*args, timeout=30, stdin=None):
    """Run `axon get ARGS`; returns (exit status, stdout bytes, stderr text)."""
    p = subprocess.run([axtest.axon_bin(), "get"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, input=stdin)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def ok(*args):
    rc, out, err = get(*args)
    if rc != 0:
        raise axtest.Failure("axon get %s exited %d: %s" % (" ".join(args), rc, err.strip()))
    return out, err


class PyHttp(axtest.Proc):
    """python3 -m http.server over WWW."""

    def __init__(self):
        self.port = axtest.free_port()
        super().__init__(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                          "--directory", WWW, str(self.port)])
        wait_port(self.port, self, "python3 -m http.server")
        self.base = "http://127.0.0.1:%d" % self.port


NGINX_CONF = """
master_process off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 64; }
http {
    log_format conn '$connection $connection_requests "$request" $status';
    access_log %(dir)s/access.log conn;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    types { text/plain txt; application/octet-stream bin; }
    keepalive_timeout 30;
    server {
        listen 127.0.0.1:%(port)d;
        root %(www)s;
        gzip on;
        gzip_types text/plain;
        gzip_min_length 1;
        location = /old { return 301 /small.txt; }
        location = /loop { return 302 /loop; }
        location = /see-other { return 303 /small.txt; }
        location = /away { return 302 http://127.0.0.1:%(away)d/small.txt; }
        location /sub/ {
            sub_filter 'axon' 'AXON';
            sub_filter_once off;
            sub_filter_types text/plain;
        }
    }
    server {
        listen 127.0.0.1:%(tls_port)d ssl;
        ssl_certificate %(tmp)s/cert.pem;
        ssl_certificate_key %(tmp)s/key.pem;
        root %(www)s;
    }
}
"""


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # /usr/sbin may not be on PATH


class Nginx(axtest.Proc):
    """nginx in the foreground with its own config under a temp folder."""

    def __init__(self, away_port=1):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=TMP)
        self.port, self.tls_port = axtest.free_port(), axtest.free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF % {"dir": self.dir, "port": self.port, "www": WWW, "tmp": TMP,
                                  "tls_port": self.tls_port, "away": away_port})
        super().__init__([NGINX, "-p", self.dir, "-e", os.path.join(self.dir, "error.log"),
                          "-c", conf, "-g", "daemon off;"])
        wait_port(self.port, self, "nginx")
        wait_port(self.tls_port, self, "nginx (TLS)")
        self.base = "http://127.0.0.1:%d" % self.port
        self.tls_base = "https://localhost:%d" % self.tls_port

    def log(self):
        path = os.path.join(self.dir, "access.log")
        for _ in range(50):  # nginx writes the line after the response
            with open(path) as f:
                lines = f.read().splitlines()
            if lines:
                return lines
            time.sleep(0.02)
        return []


HTTPS_SERVER = r'''
import http.server, ssl, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/close":  # HTTP/1.0, no length: the body ends at the close
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"no length, " * 5000)
            return
        super().do_GET()
    def log_message(self, *a):
        pass
port, root, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                      lambda *a: H(*a, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
'''


class PyHttps(axtest.Proc):
    def __init__(self):
        script = os.path.join(TMP, "https_server.py")
        with open(script, "w") as f:
            f.write(HTTPS_SERVER)
        self.port = axtest.free_port()
        super().__init__(["/usr/bin/python3", script, str(self.port), WWW,
                          os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")])
        wait_port(self.port, self, "the Python https server")
        self.base = "https://localhost:%d" % self.port


class AxonEcho(axtest.Proc):
    def __init__(self):
        self.port = axtest.free_port()
        super().__init__([axtest.axon_bin(), "http", "--root", WWW, "--echo", "/echo",
                          "--max-body", str(8 << 20), "--listen",
                          "tcp://127.0.0.1:%d" % self.port])
        wait_port(self.port, self, "axon http")
        self.base = "http://127.0.0.1:%d" % self.port


# ---- Python's http.server -------------------------------------------------

@t.test
def python_files_byte_for_byte():
    s = PyHttp()
    out, _ = ok("-s", s.base + "/small.txt")
    t.eq(out, SMALL, "small file")
    out, _ = ok(s.base + "/big.bin")
    t.ok(out == BIG, "%d-byte binary arrives whole (got %d bytes)" % (len(BIG), len(out)))
    dest = os.path.join(TMP, "out.bin")
    out, _ = ok("-o", dest, s.base + "/big.bin")
    t.eq(out, b"", "nothing on stdout with -o")
    with open(dest, "rb") as f:
        t.ok(f.read() == BIG, "-o FILE holds the binary")


@t.test
def python_heads_and_redirect():
    s = PyHttp()
    out, _ = ok("-i", s.base + "/small.txt")
    head, _, body = out.partition(b"\r\n\r\n")
    t.ok(head.startswith(b"HTTP/1.0 200 OK") and b"Content-Length: 11" in head,
         "-i writes the head: %r" % head)
    t.eq(body, SMALL, "then the body")
    out, _ = ok("-I", s.base + "/big.bin")
    t.ok(out.startswith(b"HTTP/1.0 200") and out.endswith(b"\r\n\r\n"),
         "-I: the head and nothing else: %r" % out[-80:])
    t.ok(b"Content-Length: %d" % len(BIG) in out, "HEAD announces the length")
    out, _ = ok(s.base + "/dir")
    t.ok(b"inner.txt" not in out, "without -L the 301 is the answer")
    out, err = ok("-L", "-v", s.base + "/dir")
    t.ok(b"inner.txt" in out, "-L follows /dir -> /dir/: %r" % out[:200])
    t.ok("< HTTP/1.0 301" in err and "following the redirect to " + s.base + "/dir/" in err,
         "-v shows the hop: %r" % err[-600:])
    out, _ = ok("-i", "-L", s.base + "/dir")
    t.ok(out.startswith(b"HTTP/1.0 301") and b"\r\n\r\nHTTP/1.0 200 OK\r\n" in out,
         "-i -L writes both heads, as curl does: %r" % out[:300])


@t.test
def python_errors():
    s = PyHttp()
    rc, out, err = get(s.base + "/missing")
    t.eq(rc, 0, "a 404 is a response (exit 0 without -f)")
    t.ok(b"404" in out, "its body is written")
    rc, out, err = get("-f", s.base + "/missing")
    t.eq(rc, 22, "-f: exit 22")
    t.ok(s.base + "/missing" in err and "HTTP 404" in err, "-f names URL and status: %r" % err)


# ---- nginx ------------------------------------------------------------------

@t.test
def nginx_keepalive_reuse():
    n = Nginx()
    out, err = ok("-v", n.base + "/small.txt", n.base + "/text.txt", n.base + "/big.bin")
    t.ok(out == SMALL + TEXT + BIG, "three bodies in order (%d bytes)" % len(out))
    t.eq(err.count("reusing the connection"), 2, "axon get says it reused the connection")
    lines = n.log()
    for _ in range(50):
        if len(lines) >= 3:
            break
        time.sleep(0.02)
        lines = n.log()
    conns = [ln.split()[0] for ln in lines]
    reqs = [ln.split()[1] for ln in lines]
    t.eq(len(set(conns)), 1, "nginx saw one connection: %r" % lines)
    t.eq(reqs, ["1", "2", "3"], "carrying three requests")


@t.test
def nginx_chunked_bodies():
    n = Nginx()
    out, _ = ok("-i", n.base + "/sub/text.txt")
    head, _, body = out.partition(b"\r\n\r\n")
    t.ok(b"Transfer-Encoding: chunked" in head, "sub_filter makes it chunked: %r" % head)
    t.ok(body == TEXT.replace(b"axon", b"AXON"), "the chunked body decodes (%d bytes)" % len(body))
    out, _ = ok("-i", "-H", "Accept-Encoding: gzip", n.base + "/text.txt")
    head, _, body = out.partition(b"\r\n\r\n")
    t.ok(b"Content-Encoding: gzip" in head and b"Transfer-Encoding: chunked" in head,
         "gzip on the fly is chunked: %r" % head)
    t.ok(gzip.decompress(body) == TEXT, "and decompresses to the file")


@t.test
def nginx_redirects():
    py = PyHttp()
    n = Nginx(away_port=py.port)
    out, _ = ok("-L", n.base + "/old")
    t.eq(out, SMALL, "301 to a relative path")
    out, _ = ok("-L", n.base + "/away")
    t.eq(out, SMALL, "302 to another origin (Python's server)")
    out, _ = ok("-L", "-X", "POST", "-d", "x=1", n.base + "/see-other")
    t.eq(out, SMALL, "303 after POST: GET at the target")
    rc, _, err = get("-L", "--max-redirs", "5", n.base + "/loop")
    t.eq(rc, 47, "a redirect loop stops: exit 47")
    t.ok("too many redirects" in err and "5 redirects" in err and "/loop" in err,
         "and says so: %r" % err)
    out, _ = ok("-i", n.base + "/old")
    t.ok(out.startswith(b"HTTP/1.1 301"), "without -L the 301 is written: %r" % out[:40])


@t.test
def nginx_https():
    n = Nginx()
    ca = os.path.join(TMP, "cert.pem")
    out, err = ok("-v", "--ca", ca, n.tls_base + "/big.bin", n.tls_base + "/small.txt")
    t.ok(out == BIG + SMALL, "two files over TLS (%d bytes)" % len(out))
    t.ok("with TLSv1." in err and "reusing the connection" in err, "TLS, reused: %r" % err[-400:])
    rc, out, err = get(n.tls_base + "/small.txt")
    t.eq(rc, 60, "a self-signed certificate is refused without --ca")
    t.ok("certificate" in err and n.tls_base in err, "the cause is named: %r" % err)
    out, _ = ok("--insecure", n.tls_base + "/small.txt")
    t.eq(out, SMALL, "--insecure accepts it")
    rc, _, err = get("--ca", os.path.join(TMP, "nope.pem"), n.tls_base + "/")
    t.eq(rc, 77, "an unreadable CA file: exit 77")


# ---- a Python https server ----------------------------------------------------

@t.test
def python_https_and_close_delimited():
    s = PyHttps()
    ca = os.path.join(TMP, "cert.pem")
    out, _ = ok("--ca", ca, s.base + "/big.bin")
    t.ok(out == BIG, "the binary over TLS (%d bytes)" % len(out))
    out, _ = ok("-i", "--ca", ca, s.base + "/close")
    head, _, body = out.partition(b"\r\n\r\n")
    t.ok(b"Content-Length" not in head and b"Transfer-Encoding" not in head,
         "no length announced: %r" % head)
    t.eq(body, b"no length, " * 5000, "the body runs to the close")
    rc, _, err = get(s.base + "/small.txt")
    t.eq(rc, 60, "untrusted without --ca")
    t.ok("certificate verification failed" in err, "clear message: %r" % err)
    out, _ = ok("-k", s.base + "/small.txt")
    t.eq(out, SMALL, "-k accepts it")


# ---- uploads against axon http --echo -----------------------------------------

@t.test
def uploads():
    s = AxonEcho()
    out, _ = ok("-d", "hello=world", s.base + "/echo")
    t.eq(out, b"hello=world", "-d posts the data")
    out, err = ok("-v", "-A", "tester/1", s.base + "/echo")
    t.ok("> User-Agent: tester/1" in err, "-A sets the User-Agent: %r" % err[:300])
    rc, out, err = get("-i", "-X", "PUT", "-d", "put body", s.base + "/echo/x")
    t.ok(rc == 0 and b"X-Request: PUT /echo/x" in out and out.endswith(b"put body"),
         "-X PUT: %r %s" % (out[-200:], err))
    src = os.path.join(WWW, "big.bin")
    out, _ = ok("-d", "@" + src, s.base + "/echo")
    t.ok(out == BIG, "-d @FILE sends the binary (%d bytes back)" % len(out))
    out, _ = ok("--chunked", "-d", "@" + src, s.base + "/echo")
    t.ok(out == BIG, "--chunked upload arrives whole (%d bytes back)" % len(out))
    rc, out, err = get("-v", "-T", src, s.base + "/echo")
    t.ok(rc == 0 and out == BIG, "-T FILE streams the file (%d bytes back) %s" % (len(out), err[-300:]))
    t.ok("> PUT /echo" in err and "> Content-Length: %d" % len(BIG) in err,
         "as PUT with its length: %r" % err[:400])
    t.ok("> Expect: 100-continue" in err and "< HTTP/1.1 100 Continue" in err,
         "a large upload waits for 100 Continue: %r" % err[:600])
    rc, out, err = get("-v", "-T", "-", s.base + "/echo", stdin=BIG)
    t.ok(rc == 0 and out == BIG, "-T - streams stdin (%d bytes back)" % len(out))
    t.ok("> Transfer-Encoding: chunked" in err, "chunked, the length being unknown")


# ---- failures ---------------------------------------------------------------

@t.test
def failures_have_causes_and_codes():
    port = axtest.free_port()
    rc, _, err = get("http://127.0.0.1:%d/" % port)
    t.eq(rc, 7, "refused: exit 7")
    t.ok("127.0.0.1:%d" % port in err and "refused" in err, "refused: %r" % err)
    rc, _, err = get("http://nosuch.invalid/")
    t.eq(rc, 6, "unknown host: exit 6")
    t.ok("no such host" in err, "unknown host: %r" % err)
    rc, _, err = get("ftp://127.0.0.1/")
    t.eq(rc, 1, "unsupported scheme: exit 1")
    rc, _, err = get("-H", "Bad Header", "http://127.0.0.1:1/")
    t.eq(rc, 2, "a malformed -H: exit 2")
    quiet = socket.socket()
    quiet.bind(("127.0.0.1", 0))
    quiet.listen(4)  # the kernel completes the handshake; nobody answers
    url = "http://127.0.0.1:%d/" % quiet.getsockname()[1]
    t0 = time.monotonic()
    rc, _, err = get("--timeout", "0.5", url)
    took = time.monotonic() - t0
    quiet.close()
    t.eq(rc, 28, "timeout: exit 28")
    t.ok(0.4 < took < 5, "gave up after about 0.5 s (%.2f s)" % took)
    t.ok("timed out" in err and url in err, "timeout: %r" % err)
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)  # never accepted, the queue filled: SYNs go unanswered
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(full.getsockname())
        fillers.append(c)
    time.sleep(0.05)
    rc, _, err = get("--connect-timeout", "0.3", "http://127.0.0.1:%d/" % full.getsockname()[1])
    for c in fillers + [full]:
        c.close()
    t.eq(rc, 28, "connect timeout: exit 28")
    t.ok("connecting to" in err and "took longer" in err, "connect timeout: %r" % err)
    rc, out, err = get("--help")
    t.ok(rc == 0 and b"Examples:" in out, "--help")


setup_files()
try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
