#!/usr/bin/python3
"""WebSocket interop with Node's `ws` package (tests/integration/node): its
client against `axon echo ws://`, with and without permessage-deflate."""

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

ENV = nodeutil.ensure()
if ENV is None:
    sys.exit(0)

t = axtest.Tests("websocket interop: node ws", alarm=120)


def start_echo():
    port = axtest.free_port()
    proc = Proc([axon_bin(), "echo", "ws://127.0.0.1:%d/" % port])
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if not proc.running():
                raise Failure("axon echo exited: %s" % proc.stderr())
            time.sleep(0.05)
    raise Failure("axon echo ws:// did not start")


def node_client(deflate):
    proc, port = start_echo()
    r = subprocess.run(["node", nodeutil.script("ws_client.js"),
                        "ws://127.0.0.1:%d/node" % port, "1" if deflate else "0"],
                       env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    proc.stop()
    t.ok(r.returncode == 0, "node ws client: %s" % out.strip().splitlines()[-1:])
    t.ok("ok close 4321" in out, "all checks ran: %r" % out[-400:])


@t.test
def node_client_plain():
    node_client(False)


@t.test
def node_client_deflate():
    node_client(True)


t.main()
