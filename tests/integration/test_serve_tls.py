#!/usr/bin/python3
"""axon serve over TLS: curl on the HTTPS API, a Python websockets client
on wss://, `openssl s_client` on the line chat over TLS, all meeting plain
clients in the same room; a TLS listener without a certificate is refused
with a clear message."""

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time

import axtest
from servutil import Serve, curl_json, nc_client

t = axtest.Tests("axon serve: TLS listeners", alarm=110)
TMP = tempfile.mkdtemp(prefix="axon-serve-tls-")
subprocess.run([axtest.axon_bin(), "cert", "--out", TMP, "--name", "localhost"],
               capture_output=True, timeout=10, check=True)
CERT, KEY = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")


@t.test
def https_wss_and_line_tls_meet_plain_clients():
    hp, lp = axtest.free_port(), axtest.free_port()
    srv = Serve("--https", "127.0.0.1:%d" % hp, "--line-tls", "127.0.0.1:%d" % lp,
                "--cert", CERT, "--key", KEY)
    nc = nc_client(srv, "plain")
    base = "https://localhost:%d" % hp

    ctx = ssl.create_default_context(cafile=CERT)

    async def ws_listen(ready):
        import websockets
        async with websockets.connect("wss://localhost:%d/ws" % hp, ssl=ctx) as ws:
            await ws.recv()  # welcome
            await ws.send(json.dumps({"type": "subscribe", "topic": "chat/lobby", "id": 1}))
            await ws.recv()  # ok
            ready.append(True)
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if m.get("type") == "message":
                    return m

    async def both():
        ready = []
        task = asyncio.ensure_future(ws_listen(ready))
        while not ready:
            await asyncio.sleep(0.02)
        r = await asyncio.get_running_loop().run_in_executor(None, lambda: curl_json(
            "--cacert", CERT, "--data-binary", "over https", base + "/api/publish/chat/lobby"))
        return r, await task
    pub, got = asyncio.run(both())
    t.eq(pub["seq"], 1, "HTTPS publish")
    t.eq((got["payload"], got["seq"]), ("over https", 1), "wss:// subscriber got it")
    nc.wait_output(lambda o: b"[lobby] http: over https\n" in o, what="HTTPS -> plain netcat")

    tls = axtest.Proc(["openssl", "s_client", "-quiet", "-connect", "127.0.0.1:%d" % lp,
                       "-servername", "localhost", "-CAfile", CERT, "-verify_return_error"],
                      stdin=subprocess.PIPE, capture=True)
    tls.wait_output(lambda o: b"What is your name?" in o, what="the name prompt over TLS")
    tls.p.stdin.write(b"secure\nhello over tls\n")
    tls.p.stdin.flush()
    nc.wait_output(lambda o: b"[lobby] secure: hello over tls\n" in o, what="TLS line -> netcat")
    h = curl_json("--cacert", CERT, base + "/api/history/chat/lobby")
    t.eq([m["payload"] for m in h["messages"]], ["over https", "hello over tls"], "history")
    r = subprocess.run(["curl", "-sS", "--max-time", "5", base + "/healthz"], capture_output=True,
                       timeout=10)
    t.ok(r.returncode != 0, "curl without the CA refuses the certificate")
    tls.stop()


@t.test
def tls_listener_needs_a_certificate():
    p = axtest.Proc([axtest.axon_bin(), "serve", "-d", "none", "--http", "off", "--line", "off",
                     "--udp", "off", "--https", "127.0.0.1:%d" % axtest.free_port()])
    t.exits(p, 1)
    t.ok("listen_https needs tls_cert and tls_key" in p.stderr(), p.stderr())
    p = axtest.Proc([axtest.axon_bin(), "serve", "-d", "none", "--http", "off", "--line", "off",
                     "--udp", "off", "--https", "127.0.0.1:%d" % axtest.free_port(), "--cert",
                     os.path.join(TMP, "nothere.pem")])
    t.exits(p, 1)
    t.ok("nothere.pem" in p.stderr(), p.stderr())


try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
    time.sleep(0)
