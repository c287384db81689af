#!/usr/bin/python3
"""WebSocket interop with Node's `ws` package (tests/integration/node): its
client against `axon echo ws://`, and our client (`axon cat ws://`)
against its server, each with and without permessage-deflate."""

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


def node_client(deflate):  # 0, 1, or 2: no context takeover, small windows
    proc, port = start_echo()
    r = subprocess.run(["node", nodeutil.script("ws_client.js"),
                        "ws://127.0.0.1:%d/node" % port, str(int(deflate))],
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
    node_client(1)


@t.test
def node_client_deflate_no_context_small_windows():
    node_client(2)


def node_server(deflate):
    port = axtest.free_port()
    proc = Proc(["node", nodeutil.script("ws_server.js"), str(port), "1" if deflate else "0"],
                env=ENV)
    proc.wait_output(lambda o: b"listening" in o, timeout=10, what="node ws server")
    return proc, port


def our_client(deflate):
    proc, port = node_server(deflate)
    lines = ["line %d %s" % (i, "ü" * (i % 50)) for i in range(500)] + ["x" * 100000]
    args = [axon_bin(), "cat"] + (["--deflate"] if deflate else []) + [
        "ws://127.0.0.1:%d/client" % port]
    r = subprocess.run(args, input=("\n".join(lines) + "\n").encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    proc.stop()
    got = r.stdout.decode(errors="replace").split("\n")
    t.eq(r.returncode, 0, "axon cat exit status (stderr %r)" % r.stderr[-300:])
    want = "hello ext=%s offered=%s" % ("permessage-deflate" if deflate else "none",
                                        "true" if deflate else "false")
    t.eq(got[0], want, "greeting: negotiated extension")
    t.eq(got[1:-1], lines, "every line echoed in order")


@t.test
def our_client_plain():
    our_client(False)


@t.test
def our_client_deflate():
    our_client(True)


def our_client_binary():
    proc, port = node_server(True)
    data = os.urandom(1 << 20)
    r = subprocess.run([axon_bin(), "cat", "--binary", "--deflate", "ws://127.0.0.1:%d/" % port],
                       input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    proc.stop()
    t.eq(r.returncode, 0, "exit status")
    t.ok(r.stdout.endswith(data), "1 MiB binary echoed (%d bytes back)" % len(r.stdout))


t.test(our_client_binary)


t.main()
