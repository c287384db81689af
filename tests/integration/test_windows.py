#!/usr/bin/python3
"""test_windows: the Windows build (`make windows`, build-win/) under Wine.

One Wine server for the whole script (`wineserver -p`, WINEDEBUG=-all): the
unit suite (axon_unit.exe, the tests that do not apply on Windows skipped
with their reason), then `axon.exe echo` on TCP, UDP and WebSocket driven by
the Linux build's `axon cat` and by Python clients, every byte compared;
`axon.exe get` against a Python HTTP server, by address and by name (DNS);
TLS through SChannel: `axon.exe get https://` against the Linux `axon http`
with the CA given by --ca (and refused with another CA or the system store),
`axon.exe cat` over tls:// and wss:// against the Linux `axon echo`, and the
server side's key loading (Wine has no AcceptSecurityContext).  The
examples: ftp_server, http_hello (on libaxon.dll), tcp_echo_server and
udp_echo_server driven from Linux, tcp_client, udp_client and tls_client
against the Linux `axon echo`, chat_server and ws_broadcast with two and
three Linux clients (tls_hello is a TLS server: not without
AcceptSecurityContext).  Runs on
the epoll pass only (the Windows backend is chosen by Windows, not by
AXON_BACKEND); skips when there is no Windows build or no Wine (`make test`
builds it when MinGW-w64 and Wine can be installed)."""

import asyncio
import atexit
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import largefile  # noqa: E402

SRC = os.environ.get("AXON_SRC") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
WIN = os.environ.get("AXON_WINDIR") or os.path.join(SRC, "build-win")


def skip(why):
    print("1..0 # SKIP %s" % why, flush=True)
    sys.exit(0)


if axtest.BACKEND not in ("", "epoll"):
    skip("the Windows build runs once, on the epoll pass")
if not shutil.which("wine") or not shutil.which("wineserver"):
    skip("Wine is not installed (scripts/deps.sh windows)")
if not os.path.exists(os.path.join(WIN, "axon.exe")):
    skip("no Windows build in %s (make windows)" % WIN)

ENV = dict(os.environ)
ENV.pop("DISPLAY", None)
ENV.pop("AXON_BACKEND", None)  # (ctest's epoll pass: a name the Windows build does not know)
ENV.update(WINEDEBUG="-all", WINEDLLOVERRIDES="mscoree,mshtml=",
           WINEPREFIX=os.environ.get("AXON_WINEPREFIX", "/tmp/axon-wine-%d" % os.getuid()))

t = axtest.Tests("windows build under wine", alarm=540)


def wine(*args, **kw):
    return axtest.Proc(["wine"] + list(args), env=ENV, **kw)


def start_echo(*args):
    p = wine(os.path.join(WIN, "axon.exe"), "echo", *args)
    urls = [a for a in args if "://" in a]
    deadline = time.monotonic() + 60  # (a first Wine start makes its prefix)
    while p.stderr().count("listening on") < len(urls):
        t.ok(p.running(), "axon.exe echo ended: %s" % p.stderr())
        t.ok(time.monotonic() < deadline, "axon.exe echo is not listening: %s" % p.stderr())
        time.sleep(0.1)
    return p


@t.test
def unit_suite_passes_under_wine():
    env = dict(ENV, AXON_TEST_TIMEOUT="60")  # (a test of many connections takes 5 s under Wine, 20 s on a busy machine)
    r = subprocess.run(["wine", os.path.join(WIN, "axon_unit.exe")], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=420)
    out = r.stdout.decode(errors="replace").replace("\r", "")
    for line in out.splitlines():
        if line.startswith("not ok") or line.startswith("#   ") or "# SKIP" in line:
            print("# " + line, flush=True)  # (the "#   " lines: a failed assertion's file, line, values)
    last = [ln for ln in out.splitlines() if " passed, " in ln]
    t.ok(last, "no closing line from axon_unit.exe:\n" + out[-2000:])
    print("# axon_unit.exe: " + last[-1], flush=True)
    t.ok(" 0 failed" in last[-1], "axon_unit.exe: " + last[-1])


@t.test
def udp_unit_tests_pass_on_the_poll_backend():
    # WSAPoll under Wine: an ICMP port unreachable stays in SO_ERROR, and
    # once WSAPoll has reported it as POLLERR no send or receive fails with
    # it (udp_connected_refused_is_sticky failed here): posix.c's receive
    # reports a pending SO_ERROR, as Linux does
    env = dict(ENV, AXON_TEST_TIMEOUT="60", AXON_BACKEND="poll")
    r = subprocess.run(["wine", os.path.join(WIN, "axon_unit.exe"), "udp_"], env=env,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=180)
    out = r.stdout.decode(errors="replace").replace("\r", "")
    last = [ln for ln in out.splitlines() if " passed, " in ln]
    t.ok(last and " 0 failed" in last[-1] and "# backend: poll" in out,
         "axon_unit.exe udp_ on poll:\n" + out[-2000:])


@t.test
def echo_tcp_every_byte_back_to_axon_cat():
    port = axtest.free_port()
    start_echo("tcp://127.0.0.1:%d" % port)
    data = os.urandom(2 << 20)
    r = subprocess.run([axtest.axon_bin(), "cat", "tcp://127.0.0.1:%d" % port], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    t.eq(r.returncode, 0, "axon cat exit status (%s)" % r.stderr.decode(errors="replace"))
    t.eq(len(r.stdout), len(data), "bytes back")
    t.ok(r.stdout == data, "the bytes back differ")


@t.test
def echo_udp_every_datagram_back():
    import socket
    port = axtest.free_port(socket.SOCK_DGRAM)
    start_echo("udp://127.0.0.1:%d" % port)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    for n in (1, 100, 1400, 8000, 65507):
        m = os.urandom(n)
        s.sendto(m, ("127.0.0.1", port))
        back, _ = s.recvfrom(70000)
        t.ok(back == m, "datagram of %d bytes: %d bytes back, differing" % (n, len(back)))
    # and the Linux axon cat as a UDP client: lines out, the same lines back
    lines = b"".join(b"line %d\n" % i for i in range(20))
    r = subprocess.run([axtest.axon_bin(), "cat", "udp://127.0.0.1:%d" % port], input=lines,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    t.eq(r.stdout, lines, "axon cat udp:// output")


@t.test
def echo_websocket_every_message_back():
    import websockets
    port = axtest.free_port()
    start_echo("ws://127.0.0.1:%d/" % port)

    async def client(compression):
        async with websockets.connect("ws://127.0.0.1:%d/" % port, max_size=None,
                                      compression=compression) as ws:
            for n in (0, 1, 125, 126, 65535, 65536, 1 << 20):
                m = os.urandom(n)
                await ws.send(m)
                t.ok(await ws.recv() == m, "binary message of %d bytes" % n)
            await ws.send("héllo ✓ wine")
            t.eq(await ws.recv(), "héllo ✓ wine", "text message")
            return ws.extensions

    ext = asyncio.run(client("deflate"))
    t.ok(ext, "permessage-deflate was not negotiated")
    asyncio.run(client(None))
    lines = b"".join(b"message %d\n" % i for i in range(50))
    r = subprocess.run([axtest.axon_bin(), "cat", "ws://127.0.0.1:%d/" % port], input=lines,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    t.eq(r.stdout, lines, "axon cat ws:// output")


@t.test
def get_fetches_by_address_and_by_name():
    body = os.urandom(300000)

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    port = srv.server_address[1]
    try:
        # by address, and by name (GetAddrInfoExW, then each address in turn)
        for host in ("127.0.0.1", "localhost"):
            r = subprocess.run(["wine", os.path.join(WIN, "axon.exe"), "get",
                                "http://%s:%d/x" % (host, port)], env=ENV,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
            t.eq(r.returncode, 0,
                 "axon.exe get %s exit status (%s)" % (host, r.stderr.decode(errors="replace")))
            t.ok(r.stdout == body, "axon.exe get %s: %d bytes, differing" % (host, len(r.stdout)))
    finally:
        srv.shutdown()
    r = subprocess.run(["wine", os.path.join(WIN, "axon.exe"), "get", "http://no-such-host.invalid/"],
                       env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    t.ok(r.returncode != 0 and b"no such host" in r.stderr,
         "a .invalid name: %d %r" % (r.returncode, r.stderr))


TMP = tempfile.mkdtemp(prefix="axwin-")
atexit.register(shutil.rmtree, TMP, True)


def make_certs():
    """A CA the test trusts (axon cert: EC P-256, CN=localhost, 127.0.0.1) and
    one it does not; and an RSA pair from the first CA's openssl twin for
    the Windows server, which loads RSA keys only."""
    dirs = {}
    for name in ("ca", "other"):
        d = os.path.join(TMP, name)
        subprocess.run([axtest.axon_bin(), "cert", "--out", d, "--name", "localhost"],
                       check=True, capture_output=True, timeout=30)
        dirs[name] = (os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    return dirs


CERTS = None


def certs():
    global CERTS
    if CERTS is None:
        CERTS = make_certs()
    return CERTS


def start_linux(args):
    p = axtest.Proc([axtest.axon_bin()] + args)
    deadline = time.monotonic() + 10
    while "listening on" not in p.stderr() and " on tls://" not in p.stderr():
        t.ok(p.running() and time.monotonic() < deadline, "axon %s: %s" % (args[0], p.stderr()))
        time.sleep(0.05)
    return p


def wine_run(*args, input=None, timeout=60):
    r = subprocess.run(["wine", os.path.join(WIN, "axon.exe")] + list(args), env=ENV,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


@t.test
def get_https_verifies_with_the_ca_given():
    ca, key = certs()["ca"]
    other = certs()["other"][0]
    root = os.path.join(TMP, "www")
    os.makedirs(root, exist_ok=True)
    body = os.urandom(200000)
    with open(os.path.join(root, "f.bin"), "wb") as f:
        f.write(body)
    port = axtest.free_port()
    start_linux(["http", "--root", root, "--cert", ca, "--key", key, "--listen",
                 "tls://127.0.0.1:%d" % port])
    # by name and by address (the certificate names both), SChannel underneath
    for host in ("localhost", "127.0.0.1"):
        st, out, err = wine_run("get", "--ca", ca, "https://%s:%d/f.bin" % (host, port))
        t.eq(st, 0, "axon.exe get https://%s: %s" % (host, err))
        t.ok(out == body, "axon.exe get https://%s: %d bytes, differing" % (host, len(out)))
    # a CA that did not sign it, and the system store, which does not know it
    for opts in (["--ca", other], []):
        st, out, err = wine_run("get", *(opts + ["https://localhost:%d/f.bin" % port]))
        t.ok(st != 0 and "certificate verification failed" in err,
             "axon.exe get %s: %d %r" % (opts, st, err))
    st, out, err = wine_run("get", "-k", "https://localhost:%d/f.bin" % port)
    t.ok(st == 0 and out == body, "axon.exe get -k: %d %r" % (st, err))


@t.test
def cat_tls_and_wss_every_byte_back():
    ca, key = certs()["ca"]
    port, wport = axtest.free_port(), axtest.free_port()
    start_linux(["echo", "tls://127.0.0.1:%d" % port, "wss://127.0.0.1:%d/" % wport, "--cert", ca,
                 "--key", key])
    data = os.urandom(2 << 20)
    st, out, err = wine_run("cat", "--ca", ca, "tls://localhost:%d" % port, input=data)
    t.eq(st, 0, "axon.exe cat tls:// exit status (%s)" % err)
    t.eq(len(out), len(data), "bytes back over tls://")
    t.ok(out == data, "the bytes back over tls:// differ")
    lines = b"".join(b"message %d\n" % i for i in range(50))
    st, out, err = wine_run("cat", "--ca", ca, "wss://localhost:%d/" % wport, input=lines)
    t.eq((st, out), (0, lines), "axon.exe cat wss:// (%s)" % err)


@t.test
def tls_server_keys_and_what_wine_lacks():
    # EC keys (what axon cert makes) are refused with their reason ...
    ca, key = certs()["ca"]
    st, out, err = wine_run("echo", "tls://127.0.0.1:%d" % axtest.free_port(), "--cert", ca,
                            "--key", key)
    t.ok(st != 0 and "only RSA keys" in err, "an EC key: %d %r" % (st, err))
    # ... an RSA key loads and the listener starts; Wine 8's SChannel has
    # no AcceptSecurityContext, so the handshake itself cannot be done here
    rsa_key, rsa_cert = os.path.join(TMP, "rsa.key"), os.path.join(TMP, "rsa.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    rsa_key, "-out", rsa_cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)
    start_echo("tls://127.0.0.1:%d" % axtest.free_port(), "--cert", rsa_cert, "--key", rsa_key)


def put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@t.test
def http_serves_files_and_refuses_escapes():
    root = os.path.join(TMP, "site")
    body = os.urandom(1 << 20)
    put(os.path.join(root, "sub", "f.bin"), body)
    put(os.path.join(TMP, "secret.txt"), b"secret\n")
    os.symlink(os.path.join(TMP, "secret.txt"), os.path.join(root, "out.txt"))
    os.symlink(TMP, os.path.join(root, "outdir"))
    os.symlink(os.path.join("sub", "f.bin"), os.path.join(root, "in.bin"))
    port = axtest.free_port()
    p = wine(os.path.join(WIN, "axon.exe"), "http", "--root", root, "--list", "--listen",
             "tcp://127.0.0.1:%d" % port)
    deadline = time.monotonic() + 60
    while "serving" not in p.stderr():
        t.ok(p.running() and time.monotonic() < deadline, "axon.exe http: %s" % p.stderr())
        time.sleep(0.1)

    def curl(path, *opts):
        r = subprocess.run(["curl", "-s", "--path-as-is", "-o", "-", "-w", "\n%{http_code}"] +
                           list(opts) + ["http://127.0.0.1:%d%s" % (port, path)],
                           stdout=subprocess.PIPE, timeout=30)
        out, _, code = r.stdout.rpartition(b"\n")
        return int(code), out

    t.eq(curl("/sub/f.bin"), (200, body), "GET /sub/f.bin")
    t.eq(curl("/in.bin"), (200, body), "a link that stays inside")
    t.eq(curl("/sub/f.bin", "-r", "10-19"), (206, body[10:20]), "a range")
    code, page = curl("/sub/")
    t.ok(code == 200 and b'href="f.bin"' in page, "the listing of /sub/: %d %r" % (code, page))
    t.eq(curl("/sub")[0], 301, "a folder without its slash")
    for path in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt",
                 "/..%5csecret.txt", "/out.txt", "/outdir/secret.txt", "/sub/f.bin::%24DATA",
                 "/C:/windows/win.ini"):
        code, out = curl(path)
        t.eq(code, 403, "GET %s (%r)" % (path, out[:60]))
    t.eq(curl("/nothing")[0], 404, "a missing file")


@t.test
def a_program_on_the_dll():
    # examples/http_hello_dll.exe is http_hello linked to libaxon.dll
    port = axtest.free_port()
    p = wine(os.path.join(WIN, "examples", "http_hello_dll.exe"), str(port))
    deadline = time.monotonic() + 60
    while True:
        r = subprocess.run(["curl", "-s", "--max-time", "5", "http://127.0.0.1:%d/" % port],
                           stdout=subprocess.PIPE, timeout=30)
        if r.returncode == 0:
            break
        t.ok(p.running() and time.monotonic() < deadline, "http_hello_dll.exe: %s" % p.stderr())
        time.sleep(0.3)
    t.eq(r.stdout, b"Hello, World!", "the answer of http_hello_dll.exe")


@t.test
def http_serves_files_past_2_gib():
    # sparse files: past 4 GiB for ranges (64-bit offsets in pread and the
    # sendfile stand-in, Content-Range), past 2 GiB read to the end
    # (struct stat's 64-bit size: MinGW's own is 32 bits)
    root = os.path.join(TMP, "large")
    os.makedirs(root, exist_ok=True)
    big, whole = 5 * largefile.GiB + 3, 2 * largefile.GiB + 65539
    try:
        marks = largefile.make(os.path.join(root, "big.bin"), big)
        wmarks = largefile.make(os.path.join(root, "whole.bin"), whole)
        port = axtest.free_port()
        p = wine(os.path.join(WIN, "axon.exe"), "http", "--root", root, "--listen",
                 "tcp://127.0.0.1:%d" % port)
        deadline = time.monotonic() + 60
        while "serving" not in p.stderr():
            t.ok(p.running() and time.monotonic() < deadline, "axon.exe http: %s" % p.stderr())
            time.sleep(0.1)
        largefile.check_ranges(t, port, "/big.bin", big, marks)
        largefile.check_whole(t, port, "/whole.bin", whole, wmarks)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@t.test
def ftp_server_example_with_curl_and_lftp():
    # examples/ftp_server.exe under Wine, driven by the Linux curl and lftp:
    # listing, RETR, STOR, a resumed RETR, an lftp mirror, and ".." refused
    root = os.path.join(TMP, "ftp")
    big = os.urandom(3 << 20)
    put(os.path.join(root, "sub", "big.bin"), big)
    put(os.path.join(root, "hello.txt"), b"hello, ftp\n")
    put(os.path.join(TMP, "secret.txt"), b"secret\n")
    port = axtest.free_port()
    p = wine(os.path.join(WIN, "examples", "ftp_server.exe"), "--user", "joe:s3cret", root,
             "tcp://127.0.0.1:%d" % port)
    url = "ftp://127.0.0.1:%d" % port
    deadline = time.monotonic() + 60
    while True:  # (it says nothing when it is ready: a listing says it)
        r = subprocess.run(["curl", "-s", "--max-time", "5", "-u", "joe:s3cret", url + "/"],
                           stdout=subprocess.PIPE, timeout=30)
        if r.returncode == 0:
            break
        t.ok(p.running() and time.monotonic() < deadline, "ftp_server.exe: %s" % p.stderr())
        time.sleep(0.3)

    def curl(*args):
        r = subprocess.run(["curl", "-sS", "--max-time", "60", "-u", "joe:s3cret"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        return r.returncode, r.stdout

    st, listing = curl(url + "/")
    t.ok(st == 0 and b"hello.txt" in listing and b"sub" in listing, "LIST: %d %r" % (st, listing))
    st, names = curl("--list-only", url + "/sub/")
    t.eq((st, names.split()), (0, [b"big.bin"]), "NLST of /sub/")
    t.eq(curl(url + "/sub/big.bin"), (0, big), "RETR of 3 MiB")
    part = os.path.join(TMP, "part.bin")
    put(part, big[:1000000])
    t.eq(curl("-C", "-", "-o", part, url + "/sub/big.bin")[0], 0, "a resumed RETR")
    with open(part, "rb") as f:
        t.ok(f.read() == big, "the resumed file differs")
    up = os.path.join(TMP, "up.bin")
    put(up, big[:100000])
    t.eq(curl("-T", up, url + "/sub/up.bin")[0], 0, "STOR")
    with open(os.path.join(root, "sub", "up.bin"), "rb") as f:
        t.ok(f.read() == big[:100000], "the stored file differs")
    st, out = curl("--path-as-is", url + "/../secret.txt")
    t.ok(st != 0 and out == b"", "RETR /../secret.txt: %d %r" % (st, out))
    if shutil.which("lftp"):
        work = os.path.join(TMP, "lftp")
        os.makedirs(work, exist_ok=True)
        script = ("set net:max-retries 1; set net:timeout 20; set ftp:ssl-allow no; "
                  "open -u joe,s3cret -p %d 127.0.0.1; get hello.txt -o %s/got.txt; "
                  "mirror sub %s/mirror; quit" % (port, work, work))
        r = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=120)
        t.eq(r.returncode, 0, "lftp: %r" % r.stderr[-300:])
        with open(os.path.join(work, "got.txt"), "rb") as f:
            t.eq(f.read(), b"hello, ftp\n", "lftp get")
        with open(os.path.join(work, "mirror", "big.bin"), "rb") as f:
            t.ok(f.read() == big, "lftp mirror: big.bin differs")
    else:
        print("# lftp is not installed: curl only", flush=True)


EXAMPLES = os.path.join(WIN, "examples")


def wine_example(name, *args):
    return wine(os.path.join(EXAMPLES, name + ".exe"), *args)


def connect_when_up(p, port, name):
    """A TCP connection to the example on port once it listens (its banner goes
    to a buffered stdout: a connection is what says it is ready)."""
    import socket
    deadline = time.monotonic() + 60
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            t.ok(p.running() and time.monotonic() < deadline, "%s.exe: %s" % (name, p.stderr()))
            time.sleep(0.3)


def read_until(s, want, what):
    got = b""
    while not got.endswith(want):
        chunk = s.recv(65536)
        t.ok(chunk, "%s: the connection ended after %r" % (what, got))
        got += chunk
    return got


@t.test
def example_servers_echo_every_byte_under_wine():
    # examples/tcp_echo_server.exe and udp_echo_server.exe, driven from Linux
    import socket
    port = axtest.free_port()
    p = wine_example("tcp_echo_server", "tcp://127.0.0.1:%d" % port)
    connect_when_up(p, port, "tcp_echo_server").close()
    data = os.urandom(2 << 20)
    r = subprocess.run([axtest.axon_bin(), "cat", "tcp://127.0.0.1:%d" % port], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    t.eq(r.returncode, 0, "axon cat exit status (%s)" % r.stderr.decode(errors="replace"))
    t.eq(len(r.stdout), len(data), "bytes back from tcp_echo_server.exe")
    t.ok(r.stdout == data, "the bytes back from tcp_echo_server.exe differ")

    uport = axtest.free_port(socket.SOCK_DGRAM)
    u = wine_example("udp_echo_server", "udp://127.0.0.1:%d" % uport)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    deadline = time.monotonic() + 60
    while True:  # (datagrams sent before it binds are lost: resend until one comes back)
        s.sendto(b"ready?", ("127.0.0.1", uport))
        try:
            if s.recvfrom(100)[0] == b"ready?":
                break
        except OSError:  # (a timeout, or the ICMP unreachable of a port not yet bound)
            pass
        t.ok(u.running() and time.monotonic() < deadline, "udp_echo_server.exe: %s" % u.stderr())
    s.settimeout(10)
    for n in (1, 100, 1400, 8000, 65507):
        m = os.urandom(n)
        s.sendto(m, ("127.0.0.1", uport))
        back, _ = s.recvfrom(70000)
        t.ok(back == m, "udp_echo_server.exe, %d bytes: %d bytes back, differing" % (n, len(back)))


@t.test
def example_clients_against_linux_servers():
    # examples/tcp_client.exe, udp_client.exe and tls_client.exe against the
    # Linux `axon echo`
    import socket
    tport, uport = axtest.free_port(), axtest.free_port(socket.SOCK_DGRAM)
    ca, key = certs()["ca"]
    sport = axtest.free_port()
    start_linux(["echo", "tcp://127.0.0.1:%d" % tport, "udp://127.0.0.1:%d" % uport,
                 "tls://127.0.0.1:%d" % sport, "--cert", ca, "--key", key])
    data = os.urandom(1 << 20)
    r = subprocess.run(["wine", os.path.join(EXAMPLES, "tcp_client.exe"),
                        "tcp://127.0.0.1:%d" % tport], env=ENV, input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    t.eq(r.returncode, 0, "tcp_client.exe exit status (%s)" % r.stderr.decode(errors="replace"))
    t.eq(len(r.stdout), len(data), "bytes back through tcp_client.exe")
    t.ok(r.stdout == data, "the bytes back through tcp_client.exe differ")

    lines = [b"datagram %d %s" % (i, os.urandom(8).hex().encode()) for i in range(20)]
    r = subprocess.run(["wine", os.path.join(EXAMPLES, "udp_client.exe"),
                        "udp://127.0.0.1:%d" % uport, "3000"], env=ENV,
                       input=b"".join(ln + b"\n" for ln in lines),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    t.eq(r.returncode, 0, "udp_client.exe exit status (%s)" % r.stderr.decode(errors="replace"))
    # (loopback loses nothing; each reply on a line of its own, in any order)
    t.eq(sorted(r.stdout.replace(b"\r", b"").split(b"\n")[:-1]), sorted(lines),
         "the replies udp_client.exe printed")

    r = subprocess.run(["wine", os.path.join(EXAMPLES, "tls_client.exe"),
                        "tls://localhost:%d" % sport, "--ca", ca, "--send", "hello over schannel",
                        "--timeout", "60"], env=ENV, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    err = r.stderr.decode(errors="replace")
    t.eq((r.returncode, r.stdout.replace(b"\r", b"")), (0, b"hello over schannel\n"),
         "tls_client.exe (%s)" % err)
    t.ok("connected: TLS" in err, "tls_client.exe did not say what it negotiated: %r" % err)
    # a CA that did not sign the server's certificate: refused
    r = subprocess.run(["wine", os.path.join(EXAMPLES, "tls_client.exe"),
                        "tls://localhost:%d" % sport, "--ca", certs()["other"][0], "--send", "x"],
                       env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    t.ok(r.returncode == 1 and r.stdout == b"" and b"certificate verification failed" in r.stderr,
         "tls_client.exe with another CA: %d %r" % (r.returncode, r.stderr))


@t.test
def example_rooms_chat_server_and_ws_broadcast():
    # examples/chat_server.exe with two socket clients, ws_broadcast.exe with
    # three websockets clients: each sees the others' lines/messages
    port = axtest.free_port()
    p = wine_example("chat_server", "tcp://127.0.0.1:%d" % port)
    a = connect_when_up(p, port, "chat_server")
    b = connect_when_up(p, port, "chat_server")
    read_until(a, b"* welcome! what is your name?\n", "chat a")
    read_until(b, b"* welcome! what is your name?\n", "chat b")
    a.sendall(b"ann\n")
    t.eq(read_until(a, b"online\n", "chat a"), b"* hello ann, 1 online\n", "ann's hello")
    b.sendall(b"bob\r\n")
    t.eq(read_until(b, b"online\n", "chat b"), b"* hello bob, 2 online\n", "bob's hello")
    t.eq(read_until(a, b"\n", "chat a"), b"* bob joined\n", "ann hears bob join")
    a.sendall(b"hi bob\n")
    t.eq(read_until(b, b"\n", "chat b"), b"ann: hi bob\n", "bob hears ann")
    long = os.urandom(3000).hex().encode()
    b.sendall(b"hi ann " + long[:3000] + b"\n" + b"second\n")
    t.eq(read_until(a, b"second\n", "chat a"), b"bob: hi ann " + long[:3000] + b"\nbob: second\n",
         "ann hears bob's two lines")
    b.close()
    t.eq(read_until(a, b"\n", "chat a"), b"* bob left\n", "ann hears bob leave")
    a.close()

    import websockets
    wport = axtest.free_port()
    w = wine_example("ws_broadcast", str(wport))
    deadline = time.monotonic() + 60
    while "listening on" not in w.stderr():
        t.ok(w.running() and time.monotonic() < deadline, "ws_broadcast.exe: %s" % w.stderr())
        time.sleep(0.1)

    async def room():
        url = "ws://127.0.0.1:%d/" % wport
        cs = [await websockets.connect(url, max_size=None) for _ in range(3)]
        try:
            # (a client is in the room once its handshake is done: the server
            # adds it in on_open, before the 101 goes out)
            msgs = [os.urandom(n) for n in (1, 1000, 70000)] + ["text ✓ from wine"]
            for i, m in enumerate(msgs):
                sender = cs[i % 3]
                await sender.send(m)
                for c in cs:
                    if c is not sender:
                        got = await asyncio.wait_for(c.recv(), 30)
                        t.ok(got == m, "message %d: %r..., differing" % (i, got[:20]))
            # nothing comes back to a sender: the next message each gets is the next one
            await cs[0].send(b"last")
            for c in cs[1:]:
                t.eq(await asyncio.wait_for(c.recv(), 30), b"last", "the last message")
        finally:
            for c in cs:
                await c.close()

    asyncio.run(room())


if __name__ == "__main__":
    subprocess.run(["wineserver", "-p"], env=ENV)  # one server for every wine below
    # Wine's own services start with the first program and would hold the
    # pipes of whichever test started them: start them here, on nothing.
    subprocess.run(["wineboot"], env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    try:
        t.main()
    finally:
        subprocess.run(["wineserver", "-k"], env=ENV)
