"""termutil: a hub with terminals for the test_term* tests: a secret, tokens
for an agent, a writer, a watcher and an outsider, `axon term agent`, and
tmux to drive `axon term connect` as a person would."""

import os
import socket
import subprocess
import tempfile
import threading
import time

import axtest
import servutil

TMP = tempfile.mkdtemp(prefix="axon-term-")
SOCK = "axon-term-%d" % os.getpid()


class Hub:
    """axon serve with --auth-secret, and the tokens of the cast."""

    def __init__(self, *args, name="box1"):
        self.secret = os.path.join(TMP, "secret")
        if not os.path.exists(self.secret):
            with open(self.secret, "w") as f:
                f.write("s" * 48 + "\n")
            os.chmod(self.secret, 0o600)
        self.srv = servutil.Serve("--auth-secret", self.secret, "--history", "100000", *args)
        self.name = name
        self.url = "ws://127.0.0.1:%d/term/%s" % (self.srv.http_port, name)
        self.base = self.srv.base
        self.tok = {
            "agent": self.token("box", "--pub", "term/%s/out" % name),
            "alice": self.token("alice", "--pub", "term/#", "--sub", "term/#"),
            "bob": self.token("bob", "--sub", "term/#"),
            "eve": self.token("eve", "--pub", "chat/#", "--sub", "chat/#"),
        }

    def token(self, user, *claims):
        r = subprocess.run([axtest.axon_bin(), "token", "-s", self.secret, "-u", user] +
                           list(claims), capture_output=True, timeout=10)
        if r.returncode != 0:
            raise axtest.Failure("axon token: %s" % r.stderr.decode())
        return r.stdout.decode().strip()

    def agent(self, *cmd, url=None, token=None):
        env = dict(os.environ, SHELL="/bin/sh", PS1="$ ")
        args = [axtest.axon_bin(), "term", "agent", url or self.url,
                "--token", token or self.tok["agent"]]
        if cmd:
            args += ["--"] + list(cmd)
        return axtest.Proc(args, env=env)

    def connect(self, who, *extra, stdin=subprocess.PIPE):
        return axtest.Proc([axtest.axon_bin(), "term", "connect", self.url,
                            "--token", self.tok[who]] + list(extra), stdin=stdin)

    def wait_log(self, text, timeout=axtest.TIMEOUT):
        return wait_file(self.srv.err_path, text, timeout)

    def stop(self):
        self.srv.stop()


def wait_file(path, text, timeout=axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        with open(path, "rb") as f:
            data = f.read().decode(errors="replace")
        if text in data:
            return data
        if time.monotonic() > deadline:
            raise axtest.Failure("never saw %r in %s: %r" % (text, path, data[-600:]))
        time.sleep(0.05)


def tmux(*args):
    return subprocess.run(["tmux", "-L", SOCK] + list(args), capture_output=True, timeout=10)


def pane(target="t"):
    return tmux("capture-pane", "-p", "-t", target).stdout.decode(errors="replace")


def wait_pane(pred, what, target="t", timeout=axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = pane(target)
        if pred(p):
            return p
        time.sleep(0.1)
    raise axtest.Failure("the terminal never showed %s; the pane:\n%s" % (what, pane(target)))


def keys(text, target="t", enter=True):
    tmux("send-keys", "-t", target, "-l", text)
    if enter:
        tmux("send-keys", "-t", target, "Enter")


class Cutter:
    """A TCP relay from a free port to the hub that can cut every
    connection through it (a network drop) and refuse new ones for a while."""

    def __init__(self, port):
        self.port = axtest.free_port()
        self.to = port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", self.port))
        self.lsock.listen(16)
        self.pairs = []
        self.down = False
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.down:
                c.close()
                continue
            s = socket.create_connection(("127.0.0.1", self.to))
            with self.lock:
                self.pairs.append((c, s))
            threading.Thread(target=self._pipe, args=(c, s), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.down = True
        with self.lock:
            for a, b in self.pairs:
                for x in (a, b):
                    try:
                        x.shutdown(socket.SHUT_RDWR)  # wakes the relay threads' recv
                        x.close()
                    except OSError:
                        pass
            self.pairs = []

    def restore(self):
        self.down = False

    def close(self):
        self.cut()
        self.lsock.close()
