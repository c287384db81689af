"""redisutil: a real redis-server for the integration tests that run
several `axon serve` nodes through Redis (test_serve_redis*.py,
test_term_nodes.py), on a port reserved like every test port
(axtest.free_port), and the waits those tests share."""

import shutil
import socket
import subprocess
import time

import axtest
import servutil


def require():
    """deps.sh's test group installs redis-server: never skip silently."""
    if not shutil.which("redis-server"):
        raise SystemExit("not ok - redis-server is missing: run scripts/deps.sh test")


class Redis(axtest.Proc):
    """redis-server on loopback, no persistence; `url` for --redis."""

    def __init__(self, port=None, extra=()):
        self.port = port or axtest.free_port()
        self.password = None
        for i, a in enumerate(extra):
            if a == "--requirepass":
                self.password = extra[i + 1]
        super().__init__(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--protected-mode", "no"] +
                         list(extra))
        deadline = time.monotonic() + axtest.TIMEOUT
        while not self.ping():
            if time.monotonic() > deadline or not self.running():
                raise axtest.Failure("redis-server did not start%s" % self.err_note())
            time.sleep(0.05)
        self.url = "redis://127.0.0.1:%d" % self.port

    def cli(self, *args):
        """One command through redis-cli; its output, stripped."""
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        out = subprocess.run(["redis-cli", "-p", str(self.port)] + auth + [str(a) for a in args],
                             capture_output=True, timeout=axtest.TIMEOUT, check=False)
        return out.stdout.decode(errors="replace").strip()

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
                return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
        except OSError:
            return False


def wait_for(pred, what, timeout=axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise axtest.Failure("timed out waiting for " + what)
        time.sleep(0.05)


def healthz(srv):
    _, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", srv.base + "/healthz")
    return int(out or 0)


def sess_key(cid):
    """The Redis hash of an MQTT session (redis_sess.c key_of)."""
    h = 1469598103934665603
    for ch in cid.encode():
        h = ((h ^ ch) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "axon:{mq:%016x}:%s" % (h, cid)
