#!/usr/bin/python3
"""WebSocket interop with Python's `websockets` (Debian python3-websockets):
its client against `axon echo ws://` (text, binary, fragmented, ping, close
codes, large messages, permessage-deflate with and without context
takeover, a bad handshake), and our client (`axon cat ws://`) against its
server (lines, binary, deflate, subprotocol-free close)."""

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Proc, axon_bin  # noqa: E402

try:
    import websockets
    from websockets.extensions import permessage_deflate
except ImportError:
    print("1..0 # SKIP python3-websockets is not installed (scripts/deps.sh test)")
    sys.exit(0)

t = axtest.Tests("websocket interop: python websockets")


def start_echo(extra=()):
    port = axtest.free_port()
    proc = Proc([axon_bin(), "echo", "ws://127.0.0.1:%d/" % port] + list(extra))
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, "ws://127.0.0.1:%d" % port
        except OSError:
            if not proc.running():
                raise Failure("axon echo exited: %s" % proc.stderr())
            time.sleep(0.05)
    raise Failure("axon echo ws:// did not start")


_srv = None


def url(path="/"):
    global _srv
    if _srv is None or not _srv[0].running():
        _srv = start_echo()
    return _srv[1] + path


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@t.test
def text_and_binary():
    async def go():
        async with websockets.connect(url("/any/path"), compression=None) as ws:
            await ws.send("héllo wörld ✓")
            t.eq(await ws.recv(), "héllo wörld ✓", "text echo")
            await ws.send(bytes(range(256)))
            t.eq(await ws.recv(), bytes(range(256)), "binary echo")
            await ws.send("")
            t.eq(await ws.recv(), "", "empty text")
    run(go())


@t.test
def fragmented_messages():
    async def go():
        async with websockets.connect(url(), compression=None) as ws:
            await ws.send(["frag", "ment", "ed ✓"])
            t.eq(await ws.recv(), "fragmented ✓", "text in fragments")
            await ws.send([b"\x00" * 1000, b"\x01" * 70000, b"\x02"])
            got = await ws.recv()
            t.eq(got, b"\x00" * 1000 + b"\x01" * 70000 + b"\x02", "binary in fragments")
    run(go())


@t.test
def ping_pong():
    async def go():
        async with websockets.connect(url(), compression=None) as ws:
            for payload in (b"", b"abc", b"x" * 125):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, 5)
            await ws.send("still open")
            t.eq(await ws.recv(), "still open", "message after pings")
    run(go())


@t.test
def close_codes():
    async def go():
        for code, reason in ((1000, ""), (1001, "going away"), (4000, "custom ✓"), (3999, "")):
            ws = await websockets.connect(url(), compression=None)
            await ws.close(code, reason)
            t.eq(ws.close_code, code, "close code echoed")
            t.eq(ws.close_reason, reason, "close reason echoed")
    run(go())


@t.test
def large_messages():
    async def go():
        async with websockets.connect(url(), compression=None, max_size=None) as ws:
            big = os.urandom(4 << 20)
            await ws.send(big)
            t.ok(await ws.recv() == big, "4 MiB binary")
            text = "ünïcødé " * 100000
            await ws.send(text)
            t.ok(await ws.recv() == text, "800 KB text")
    run(go())


@t.test
def many_in_flight():
    async def go():
        async with websockets.connect(url(), compression=None) as ws:
            for i in range(2000):
                await ws.send("m%d" % i)
            for i in range(2000):
                t.eq(await ws.recv(), "m%d" % i, "order")
    run(go())


def deflate_roundtrip(extensions, what):
    async def go():
        async with websockets.connect(url(), extensions=extensions, max_size=None) as ws:
            got = ws.response_headers.get("Sec-WebSocket-Extensions", "")
            t.ok(got.startswith("permessage-deflate"), "%s negotiated (%r)" % (what, got))
            for msg in ("short", "compress me " * 5000, bytes(300000), "ü" * 100):
                for _ in range(3):  # context carried (or not) across messages
                    await ws.send(msg)
                    t.ok(await ws.recv() == msg, "%s echo" % what)
            return got
    return run(go())


@t.test
def permessage_deflate_default():
    deflate_roundtrip([permessage_deflate.ClientPerMessageDeflateFactory()], "deflate")


@t.test
def permessage_deflate_no_context_takeover():
    f = permessage_deflate.ClientPerMessageDeflateFactory(
        server_no_context_takeover=True, client_no_context_takeover=True,
        server_max_window_bits=10, client_max_window_bits=12)
    got = deflate_roundtrip([f], "deflate, no context takeover, small windows")
    t.ok("server_no_context_takeover" in got, "server_no_context_takeover granted")
    t.ok("server_max_window_bits=10" in got, "server_max_window_bits=10 granted")


@t.test
def no_compression_unless_asked():
    async def go():
        async with websockets.connect(url(), compression=None) as ws:
            t.eq(ws.response_headers.get("Sec-WebSocket-Extensions"), None, "no extension")
    run(go())


@t.test
def bad_handshake_refused():
    port = int(url().rsplit(":", 1)[1].rstrip("/"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # a plain GET
    head = s.recv(4096)
    s.close()
    t.ok(head.startswith(b"HTTP/1.1 426"), "426 for a plain GET (%r)" % head[:40])


@t.test
def echo_on_two_threads():
    proc, base = start_echo(["--threads", "2"])

    async def one(i):
        async with websockets.connect(base + "/t%d" % i, compression=None) as ws:
            for k in range(20):
                await ws.send("c%d m%d" % (i, k))
                t.eq(await ws.recv(), "c%d m%d" % (i, k), "echo on thread pool")

    async def go():
        await asyncio.gather(*(one(i) for i in range(20)))
    run(go())
    proc.stop()


class PyServer:
    """A websockets echo server on its own thread and event loop."""

    def __init__(self, compression, tls=None):
        self.port = axtest.free_port()
        self.tls = tls
        self.ready = threading.Event()
        self.seen = []
        self.compression = compression
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        if not self.ready.wait(5):
            raise Failure("websockets server did not start")

    async def _echo(self, ws, path=None):
        self.seen.append((ws.request_headers.get("Sec-WebSocket-Extensions"),
                          ws.response_headers.get("Sec-WebSocket-Extensions")))
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.exceptions.ConnectionClosed:
            pass

    def _run(self):
        async def main():
            self.stop = asyncio.get_running_loop().create_future()
            async with websockets.serve(self._echo, "127.0.0.1", self.port, max_size=None,
                                        compression=self.compression, ssl=self.tls):
                self.ready.set()
                await self.stop
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(main())

    def close(self):
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.th.join(5)


def cat(args, data, last, env=None):
    """axon cat ARGS with `data` on stdin, which is held open until the
    output ends with `last`: the server's echoes are async, and a close at
    the end of input would overtake them (a server answers a close at once)."""
    p = subprocess.Popen([axon_bin(), "cat"] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = bytearray()

    def reader():
        while True:
            chunk = p.stdout.read1(65536)
            if not chunk:
                return
            out.extend(chunk)
    th = threading.Thread(target=reader, daemon=True)
    th.start()
    p.stdin.write(data)
    p.stdin.flush()
    deadline = time.monotonic() + 20
    while not out.endswith(last) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.stdin.close()
    rc = p.wait(10)
    th.join(5)
    return rc, bytes(out), p.stderr.read()


@t.test
def our_client_lines():
    srv = PyServer(None)
    lines = ["%d: ✓ %s" % (i, "z" * i) for i in range(300)]
    rc, out, err = cat(["ws://127.0.0.1:%d/py" % srv.port], ("\n".join(lines) + "\n").encode(),
                       (lines[-1] + "\n").encode())
    srv.close()
    t.eq(rc, 0, "exit status (stderr %r)" % err[-300:])
    t.eq(out.decode().split("\n")[:-1], lines, "lines echoed")


@t.test
def our_client_deflate_binary():
    srv = PyServer("deflate")
    data = os.urandom(300000) + bytes(700000) + b"end"
    rc, out, err = cat(["--binary", "--deflate", "ws://127.0.0.1:%d/" % srv.port], data, b"end")
    srv.close()
    t.eq(rc, 0, "exit status (stderr %r)" % err[-300:])
    t.ok(out == data, "1 MB binary echoed (%d bytes back)" % len(out))
    offered, answered = srv.seen[0]
    t.ok(offered and "permessage-deflate" in offered, "we offered deflate (%r)" % offered)
    t.ok(answered and "permessage-deflate" in answered, "server accepted (%r)" % answered)


@t.test
def our_client_wss():
    d = tempfile.mkdtemp(prefix="axon-wss-")
    try:
        r = subprocess.run([axon_bin(), "cert", "--out", d, "--name", "127.0.0.1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        t.eq(r.returncode, 0, "axon cert (%r)" % r.stderr[-200:])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
        srv = PyServer("deflate", ctx)
        env = dict(os.environ, SSL_CERT_FILE=os.path.join(d, "cert.pem"))  # trust it
        rc, out, err = cat(["--deflate", "wss://127.0.0.1:%d/secure" % srv.port],
                           b"over tls\nand deflate\n", b"and deflate\n", env)
        t.eq(rc, 0, "exit status (stderr %r)" % err[-300:])
        t.eq(out, b"over tls\nand deflate\n", "echoed over wss://")
        # without trusting the certificate the handshake must fail
        rc, out, err = cat(["wss://127.0.0.1:%d/" % srv.port], b"x\n", b"x\n")
        t.eq(rc, 1, "untrusted certificate refused")
        srv.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


t.main()
