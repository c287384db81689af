"""Helpers shared by the `axon serve` integration tests: the server on free
ports with its own data folder, an SSE stream read through curl -N, a UDP
client, curl for the HTTP API."""

import json
import os
import re
import socket
import subprocess
import tempfile
import time

import axtest


class Serve(axtest.Proc):
    """`axon serve` on free ports; waits for `ready to accept connections`."""

    def __init__(self, *args, data=None, ports=None, mqtt_port=None):
        self.data = data or tempfile.mkdtemp(prefix="axon-serve-")
        tries = 1 if ports or mqtt_port else 3
        for attempt in range(tries):
            try:
                self._start(args, ports, mqtt_port)
                return
            except axtest.Failure as e:
                # Ports are reserved against the other test scripts, but a
                # program that is not one of them (a browser, redis-server)
                # may still take one first: then try fresh ports.
                if attempt + 1 == tries or "Address already in use" not in str(e):
                    raise
                self.stop()

    def _start(self, args, ports, mqtt_port):
        if ports:
            self.http_port, self.line_port, self.udp_port = ports
        else:
            self.http_port = axtest.free_port()
            self.line_port = axtest.free_port()
            self.udp_port = axtest.free_port(socket.SOCK_DGRAM)
        self.mqtt_port = mqtt_port or axtest.free_port()  # (not the default 1883: tests run side by side)
        self.irc_port = axtest.free_port()  # (not the default 6667: tests run side by side)
        self.rtmp_port = axtest.free_port()  # (not the default 1935 either)
        super().__init__([axtest.axon_bin(), "serve", "-q",
                          "--http", "127.0.0.1:%d" % self.http_port,
                          "--line", "127.0.0.1:%d" % self.line_port,
                          "--udp", "127.0.0.1:%d" % self.udp_port,
                          "--mqtt", "127.0.0.1:%d" % self.mqtt_port,
                          "--irc", "127.0.0.1:%d" % self.irc_port,
                          "--rtmp", "127.0.0.1:%d" % self.rtmp_port,
                          "--data", self.data] + list(args))
        deadline = time.monotonic() + axtest.TIMEOUT * 2
        while True:  # ready once the HTTP port answers
            if time.monotonic() > deadline or not self.running():
                raise axtest.Failure("axon serve did not start%s" % self.err_note())
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        # then every other TCP listener this script gave a port: the HTTP
        # one starts first, and a loaded machine can run the test's first
        # connect before the server has bound the IRC or MQTT port
        given = {"--line": self.line_port, "--mqtt": self.mqtt_port, "--irc": self.irc_port,
                 "--rtmp": self.rtmp_port}
        wanted = {port for flag, port in given.items() if flag not in args}
        while not wanted <= axtest.listening_ports():
            if time.monotonic() > deadline or not self.running():
                raise axtest.Failure("axon serve did not listen on %r%s" % (
                    sorted(wanted - axtest.listening_ports()), self.err_note()))
            time.sleep(0.02)
        self.base = "http://127.0.0.1:%d" % self.http_port

    def ports(self):
        return (self.http_port, self.line_port, self.udp_port)

    def line_client(self, name):
        c = axtest.Lines.connect("127.0.0.1", self.line_port)
        want(c, "What is your name?")
        c.send(name + "\n")
        want(c, "you are in lobby")
        return c


def nc_client(srv, name):
    """A real netcat on the line chat, named `name`, in the lobby."""
    nc = axtest.Proc(["nc", "127.0.0.1", str(srv.line_port)], stdin=subprocess.PIPE,
                     capture=True)
    nc.wait_output(lambda o: b"What is your name?" in o, what="the name prompt")
    nc.p.stdin.write(name.encode() + b"\n")
    nc.p.stdin.flush()
    nc.wait_output(lambda o: b"you are in lobby" in o, what="the greeting")
    return nc


def nc_say(nc, line):
    nc.p.stdin.write(line.encode() + b"\n")
    nc.p.stdin.flush()


def want(lines, text, timeout=axtest.TIMEOUT):
    """Read lines until one contains `text`; returns it (and what came before)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise axtest.Failure("no line with %r; got %r" % (text, seen))
        line = lines.line(timeout=left)
        seen.append(line)
        if text in line:
            return line


def curl(*args, data=None):
    p = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), input=data,
                       capture_output=True, timeout=20)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def curl_json(*args, data=None):
    rc, out, err = curl(*args, data=data)
    if rc != 0:
        raise axtest.Failure("curl %s failed: %s" % (" ".join(args), err))
    return json.loads(out)


def publish(srv, topic, text, sender=None):
    url = srv.base + "/api/publish/" + topic + ("?sender=" + sender if sender else "")
    return curl_json("--data-binary", "@-", url, data=text.encode())


class Sse(axtest.Proc):
    """An event stream through curl -N; events() parses what came so far."""

    def __init__(self, srv, query, headers=()):
        args = ["curl", "-sN", "--max-time", "60"]
        for h in headers:
            args += ["-H", h]
        super().__init__(args + [srv.base + "/sse?" + query])

    def events(self):
        out = []
        for block in self.output().decode(errors="replace").split("\n\n"):
            ev = {}
            for line in block.split("\n"):
                m = re.match(r"^(id|event|data): ?(.*)$", line)
                if m:
                    ev[m.group(1)] = m.group(2)
            if "data" in ev:
                ev["json"] = json.loads(ev["data"])
                out.append(ev)
        return out

    def wait_events(self, n, timeout=axtest.TIMEOUT, kind="message"):
        deadline = time.monotonic() + timeout
        while True:
            evs = [e for e in self.events() if e.get("event") == kind]
            if len(evs) >= n:
                return evs
            if time.monotonic() > deadline:
                raise axtest.Failure("wanted %d %s events, have %r" % (n, kind, evs))
            time.sleep(0.02)


class Udp:
    def __init__(self, srv):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.settimeout(axtest.TIMEOUT)
        self.to = ("127.0.0.1", srv.udp_port)

    def send(self, text):
        self.s.sendto(text if isinstance(text, bytes) else text.encode(), self.to)

    def recv(self, timeout=axtest.TIMEOUT):
        """One datagram, without the newline that ends each (checked)."""
        self.s.settimeout(timeout)
        d = self.s.recv(65536).decode(errors="replace")
        if not d.endswith("\n"):
            raise axtest.Failure("a UDP datagram without its newline: %r" % d)
        return d[:-1]

    def ask(self, text):
        """A request and its reply; a SUB goes through the cookie round trip
        (docs/protocol.md, "Return addresses") when the hub asks for one."""
        if isinstance(text, str) and text.startswith("SUB ") and " COOKIE " not in text:
            return self.sub(text)
        self.send(text)
        return self.recv()

    def sub(self, text):
        """SUB with the last cookie (or a placeholder as long as one, so the
        reply may carry it); when the hub answers COOKIE, repeat with it."""
        self.send("%s COOKIE %s" % (text, getattr(self, "cookie", "-" * 16)))
        r = self.recv()
        if r.startswith("COOKIE "):
            self.cookie = r.split()[1]
            self.send("%s COOKIE %s" % (text, self.cookie))
            r = self.recv()
        return r

    def recv_until(self, prefix, timeout=axtest.TIMEOUT):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                d = self.recv(max(0.01, deadline - time.monotonic()))
            except socket.timeout:
                break
            seen.append(d)
            if d.startswith(prefix):
                return d
        raise axtest.Failure("no datagram starting %r; got %r" % (prefix, seen))

    def quiet(self, seconds=0.5):
        try:
            d = self.recv(seconds)
        except socket.timeout:
            return None
        return d


def metric(srv, name):
    _, out, _ = curl(srv.base + "/metrics")
    for line in out.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{") and line.split(" ")[0] == name:
            return float(line.rsplit(" ", 1)[1])
    m = re.search(r"^%s (\S+)$" % re.escape(name), out, re.M)
    return float(m.group(1)) if m else None
