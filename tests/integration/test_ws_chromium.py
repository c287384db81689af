#!/usr/bin/python3
"""WebSocket interop with a browser: headless Chromium (Debian's chromium,
driven by playwright-core from tests/integration/node) opens a socket to
`axon echo ws://`, sends text and binary, receives the echoes, closes."""

import json
import os
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import nodeutil  # noqa: E402
from axtest import Failure, Proc, axon_bin  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    print("1..0 # SKIP %s is not installed (scripts/deps.sh test)" % CHROMIUM)
    sys.exit(0)
ENV = nodeutil.ensure(("ws", "playwright-core"))
if ENV is None:
    sys.exit(0)

t = axtest.Tests("websocket interop: chromium", alarm=240)


@t.test
def chromium_page_roundtrip():
    port = axtest.free_port()
    srv = Proc([axon_bin(), "echo", "ws://127.0.0.1:%d/" % port])
    deadline = time.monotonic() + axtest.TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or not srv.running():
                raise Failure("axon echo ws:// did not start: %s" % srv.stderr())
            time.sleep(0.05)
    r = subprocess.run(["node", nodeutil.script("chromium_ws.js"),
                        "ws://127.0.0.1:%d/browser" % port], env=ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=180)
    out = r.stdout.decode(errors="replace").strip()
    t.eq(r.returncode, 0, "chromium script (%s)" % out[-500:])
    rep = json.loads(out.splitlines()[-1])
    t.eq(rep["text"], "hello from chromium ✓", "text echoed")
    t.ok(rep["binaryOk"], "200 KB binary echoed")
    t.ok(rep["bigOk"], "1 MiB text echoed")
    t.eq(rep["extensions"], "permessage-deflate", "the browser's deflate offer accepted")
    t.eq(rep["close"], {"code": 4000, "reason": "bye ✓", "clean": True}, "clean close")
    srv.stop()


t.main()
