#!/usr/bin/python3
"""test_mqtt_paho_c: the Eclipse Paho C client (libpaho-mqtt-dev, built
here with cc) against `axon serve`'s broker, MQTT 3.1.1 and 5.0: QoS 0, 1
and 2 both ways with payloads unchanged, a retained message on subscribe."""
import os
import shutil
import subprocess
import sys
import tempfile

import axtest
import mqttutil
from servutil import Serve

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.exists("/usr/include/MQTTClient.h") or not shutil.which("cc"):
    print("1..0 # SKIP libpaho-mqtt-dev is not installed (scripts/deps.sh test)")
    sys.exit(0)

t = axtest.Tests("mqtt interop: Paho C", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-pahoc-")
BIN = os.path.join(TMP, "paho_c_client")


@t.test
def paho_c_311_and_5():
    r = subprocess.run(["cc", "-O1", "-o", BIN, os.path.join(HERE, "c", "paho_c_client.c"),
                        "-lpaho-mqtt3c"], capture_output=True, timeout=120)
    t.ok(r.returncode == 0, "cc: %s" % r.stderr.decode(errors="replace"))
    srv = Serve("-d", "none")
    for v in (4, 5):
        p = subprocess.run([BIN, str(srv.mqtt_port), str(v)], capture_output=True, timeout=60)
        out = p.stdout.decode(errors="replace")
        t.ok(p.returncode == 0 and "not ok" not in out,
             "Paho C, version %d:\n%s%s" % (v, out, p.stderr.decode(errors="replace")))
    mqttutil.stop_clean(t, srv)


t.main()
