#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_serve_redis_tls: `--redis rediss://...`: the backplane's link to a
real redis-server over TLS (the core's TLS under the node's own Redis
connection: Debian 12's hiredis has none), docs/cluster.md.

- Two nodes on a TLS-only redis-server whose certificate the nodes trust
  (SSL_CERT_FILE): linked (/healthz 200), a publish on one node reaches a
  subscriber on the other with the seq Redis gave.
- A node that does not trust the certificate is not linked: /healthz 503,
  publishes refused, and the log says why (the certificate).
- Client certificates: a redis-server with tls-auth-clients yes; a node
  with `rediss://...?cert=..&key=..&cacert=..` is linked and its publishes
  go through; a node without a certificate (cacert= only) is refused;
  cert= without rediss:// is a usage error."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import axtest
import redisutil
import servutil

t = axtest.Tests("axon serve: the Redis backplane over TLS", alarm=60)
wait_for = redisutil.wait_for
healthz = redisutil.healthz

if not shutil.which("redis-server"):
    raise SystemExit("not ok - redis-server is missing: run scripts/deps.sh test")


class TlsRedis(axtest.Proc):
    def __init__(self, auth_clients=False):
        self.dir = tempfile.mkdtemp(prefix="axon-rtls-")
        subprocess.run([axtest.axon_bin(), "cert", "--out", self.dir], check=True,
                       capture_output=True)
        self.cert = os.path.join(self.dir, "cert.pem")
        ca = self.cert
        if auth_clients:  # a client certificate (self-signed) it trusts too
            self.client = os.path.join(self.dir, "client")
            subprocess.run([axtest.axon_bin(), "cert", "--name", "axon-node", "--out",
                            self.client], check=True,
                           capture_output=True)
            ca = os.path.join(self.dir, "ca.pem")
            with open(ca, "w") as f:
                for c in (self.cert, os.path.join(self.client, "cert.pem")):
                    f.write(open(c).read())
        self.port = axtest.free_port()
        super().__init__(["redis-server", "--port", "0", "--tls-port", str(self.port),
                          "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--tls-cert-file", self.cert,
                          "--tls-key-file", os.path.join(self.dir, "key.pem"),
                          "--tls-ca-cert-file", ca,
                          "--tls-auth-clients", "yes" if auth_clients else "no"])
        cli = ["redis-cli", "--tls", "--cacert", self.cert, "-p", str(self.port)]
        if auth_clients:
            cli += ["--cert", os.path.join(self.client, "cert.pem"),
                    "--key", os.path.join(self.client, "key.pem")]
        wait_for(lambda: subprocess.run(cli + ["PING"], capture_output=True,
                                        text=True).stdout.strip() == "PONG",
                 "redis-server over TLS")
        self.url = "rediss://localhost:%d" % self.port


def stop_clean(srvs):
    for s in srvs:
        s.signal(signal.SIGTERM)
    for s in srvs:
        t.exits(s, 0, "axon serve after SIGTERM")


@t.test
def nodes_share_topics_over_tls():
    r = TlsRedis()
    os.environ["SSL_CERT_FILE"] = r.cert  # the nodes trust the test's certificate
    try:
        a, b = servutil.Serve("--redis", r.url), servutil.Serve("--redis", r.url)
    finally:
        del os.environ["SSL_CERT_FILE"]
    wait_for(lambda: healthz(a) == 200 and healthz(b) == 200, "both nodes linked over TLS")
    sse = servutil.Sse(b, "topic=tls/t")
    deadline = time.monotonic() + axtest.TIMEOUT
    got = None
    while not got and time.monotonic() < deadline:  # until b's subscription is in place
        ack = servutil.publish(a, "tls/t", "over tls")
        time.sleep(0.1)
        got = [e["json"] for e in sse.events() if e.get("event") == "message"]
    t.ok(got, "node b got node a's publish")
    t.eq(got[0]["payload"], "over tls", "the payload")
    t.ok(ack.get("seq", 0) >= 1, "the publish was acknowledged with Redis's seq: %r" % ack)
    sse.stop()
    stop_clean([a, b])
    r.stop()


@t.test
def an_untrusted_certificate_is_refused():
    r = TlsRedis()
    os.environ["SSL_CERT_FILE"] = "/nonexistent"  # trusts nothing
    try:
        n = servutil.Serve("--redis", r.url)
    finally:
        del os.environ["SSL_CERT_FILE"]
    time.sleep(1)
    t.eq(healthz(n), 503, "/healthz: not linked")
    _, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", "--data", "x",
                              n.base + "/api/publish/tls/x")
    t.eq(out, "503", "a publish is refused")
    wait_for(lambda: "certificate" in n.stderr() or "verif" in n.stderr(),
             "the log to say why")
    stop_clean([n])
    r.stop()


@t.test
def client_certificates():
    r = TlsRedis(auth_clients=True)
    cert, key = os.path.join(r.client, "cert.pem"), os.path.join(r.client, "key.pem")
    url = "%s?cert=%s&key=%s&cacert=%s" % (r.url, cert, key, r.cert)
    a = servutil.Serve("--redis", url)
    wait_for(lambda: healthz(a) == 200, "the node with a client certificate linked")
    ack = servutil.publish(a, "tls/c", "with a client certificate")
    t.ok(ack.get("seq", 0) >= 1, "a publish acknowledged by Redis: %r" % ack)
    n = servutil.Serve("--redis", "%s?cacert=%s" % (r.url, r.cert))
    time.sleep(1)
    t.eq(healthz(n), 503, "without a client certificate: not linked")
    # (the node trusts the server; Redis ends the connection without a
    # certificate: in the handshake, or just after it with TLS 1.3)
    wait_for(lambda: "publishes are refused; retrying" in n.stderr(), "the log to say so")
    stop_clean([a, n])
    rc = subprocess.run([axtest.axon_bin(), "serve", "--redis",
                         "redis://localhost:6379?cert=" + cert, "--http", "off"],
                        capture_output=True, text=True, timeout=10)
    t.ok(rc.returncode != 0 and "rediss://" in rc.stderr,
         "cert= with redis:// is refused: %r" % rc.stderr.strip())
    r.stop()


t.main()
