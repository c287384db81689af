"""nodeutil: the Node.js peers of the integration tests (tests/integration/node).

ensure() installs the packages of node/package.json with npm when
node_modules is missing and returns the environment to run node with, or
None (with the reason printed as a TAP skip) when node or npm is absent or
the install fails."""

import json
import os
import queue
import shutil
import subprocess
import threading
import time

import axtest

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")


def script(name):
    return os.path.join(NODE_DIR, name)


def ensure(need=("ws",), where=NODE_DIR):
    if not shutil.which("node") or not shutil.which("npm"):
        print("1..0 # SKIP node or npm is not installed (scripts/deps.sh test)")
        return None
    mods = os.path.join(where, "node_modules")
    if not all(os.path.isdir(os.path.join(mods, n)) for n in need):
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                           cwd=where, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=600)
        if r.returncode != 0:
            print("1..0 # SKIP npm install failed: %s" % r.stderr.decode(errors="replace")[-300:])
            return None
    env = dict(os.environ)
    env["NODE_PATH"] = mods
    return env


class IrcClient:
    """node/irc/irc_client.js (irc-framework): JSON commands in, events out.
    `sasl`: an account and password for SASL PLAIN."""

    def __init__(self, env, port, nick, *sasl, timeout=axtest.TIMEOUT):
        self.timeout = timeout
        self.p = subprocess.Popen(["node", os.path.join(NODE_DIR, "irc", "irc_client.js"),
                                   str(port), nick] + list(sasl), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.q = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for ln in self.p.stdout:
            self.q.put(json.loads(ln))

    def do(self, **cmd):
        self.p.stdin.write((json.dumps(cmd) + "\n").encode())
        self.p.stdin.flush()

    def want(self, pred, what, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            try:
                ev = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise axtest.Failure("irc-framework: no %s; saw %r; stderr %r" %
                                     (what, seen, self.p.stderr.read1(2000) if self.p.poll()
                                      is not None else b""))
            seen.append(ev)
            if pred(ev):
                return ev

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
