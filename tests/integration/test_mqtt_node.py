#!/usr/bin/python3
"""test_mqtt_node: Node's `mqtt` package (tests/integration/node) against
`axon serve`'s broker, MQTT 3.1.1 and 5.0, over TCP and over WebSocket at
/mqtt: QoS 0/1/2 both ways, binary payloads, retained messages, a
persistent session that collects while its client is away; MQTT 5
enhanced authentication with SCRAM-SHA-512 against a mosquitto_passwd
file (the exchange written in tests/integration/node/mqtt_scram.js)."""

import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import mqttutil  # noqa: E402
import nodeutil  # noqa: E402
from servutil import Serve  # noqa: E402

ENV = nodeutil.ensure(need=("mqtt",))
if ENV is None:
    sys.exit(0)

t = axtest.Tests("mqtt interop: node mqtt", alarm=120)


def run(url, version):
    p = subprocess.run(["node", nodeutil.script("mqtt_client.js"), url, str(version)], env=ENV,
                       capture_output=True, timeout=60)
    out = p.stdout.decode(errors="replace")
    t.ok(p.returncode == 0 and "not ok" not in out,
         "node mqtt %s v%d:\n%s%s" % (url, version, out, p.stderr.decode(errors="replace")))


@t.test
def tcp_311_and_5():
    srv = Serve("-d", "none")
    for v in (4, 5):
        run("mqtt://127.0.0.1:%d" % srv.mqtt_port, v)
    mqttutil.stop_clean(t, srv)


@t.test
def websocket_311_and_5():
    srv = Serve("-d", "none")
    for v in (4, 5):
        run("ws://127.0.0.1:%d/mqtt" % srv.http_port, v)
    mqttutil.stop_clean(t, srv)


def scram(url, user, password, want):
    p = subprocess.run(["node", nodeutil.script("mqtt_scram.js"), url, user, password, want],
                       env=ENV, capture_output=True, timeout=30)
    out = p.stdout.decode(errors="replace")
    t.ok(p.returncode == 0 and "not ok" not in out and out.count("ok ") >= 2,
         "SCRAM %s (%s) on %s:\n%s%s" % (user, want, url, out, p.stderr.decode(errors="replace")))


@t.test
def scram_sha_512():
    tmp = tempfile.mkdtemp(prefix="axon-scram-")
    pw = os.path.join(tmp, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "erin", "s3cret,=x"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    acl = os.path.join(tmp, "acl")
    with open(acl, "w") as f:
        f.write("user erin\ntopic readwrite scram/erin\n")
    srv = Serve("-d", "none", "--password-file", pw, "--acl-file", acl)
    for url in ("mqtt://127.0.0.1:%d" % srv.mqtt_port, "ws://127.0.0.1:%d/mqtt" % srv.http_port):
        scram(url, "erin", "s3cret,=x", "ok")
        scram(url, "erin", "wrong", "refused")
        scram(url, "nobody", "s3cret,=x", "refused")
    mqttutil.stop_clean(t, srv)


t.main()
