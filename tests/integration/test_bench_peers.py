#!/usr/bin/python3
"""axon bench against servers that are not axon: nginx (http://, with
pipelining and a POST), mosquitto (mqtt:// fan-out at QoS 0, 1 and 2) and
Python's websockets (ws:// echo).  Half a second of load each; the
comparisons with wrk and mqttload are bench/bench-compare (make bench)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import axtest
from axtest import Failure, Proc, axon_bin

t = axtest.Tests("axon bench against nginx, mosquitto, websockets", alarm=90)
TMP = tempfile.mkdtemp(prefix="axon-bench-peers-")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def wait_port(port, proc, what):
    deadline = time.monotonic() + axtest.TIMEOUT
    while time.monotonic() < deadline:
        if not proc.running():
            raise Failure("%s exited%s" % (what, proc.err_note()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure("%s did not listen on %d" % (what, port))


def generator_bound(out):
    """True when a run failed only its self-check (the generator was the
    limit on a busy machine): the protocol was still exercised."""
    try:
        rep = json.loads(out)
    except ValueError:
        return False
    return rep["errors"] == 0 and rep["count"] > 0 and not rep["generator"]["valid"]


def bench(*args):
    r = subprocess.run([axon_bin(), "bench", "--json", "-d", "0.5"] + list(args),
                       capture_output=True, timeout=30)
    if r.returncode != 0 and not generator_bound(r.stdout):
        raise Failure("axon bench %s: exit %d: %r %r" % (" ".join(args), r.returncode,
                                                         r.stdout[-400:], r.stderr[-400:]))
    return json.loads(r.stdout)


def clean(rep, what):
    t.eq(rep["errors_by_kind"], {}, what + ": errors")
    t.eq(rep["connections"]["reached"], rep["connections"]["asked"], what + ": connections")
    t.ok(rep["count"] > 0, what + ": nothing measured")


NGINX_CONF = """
master_process off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:%(port)d;
        root %(dir)s/www;
        location = /post { return 200 "posted\\n"; }
    }
}
"""


def need(path, what):
    if not os.path.exists(path):
        raise Failure("%s is not installed (scripts/deps.sh test)" % what)


@t.test
def http_against_nginx():
    need(NGINX, "nginx")
    d = tempfile.mkdtemp(prefix="nginx-", dir=TMP)
    os.makedirs(os.path.join(d, "www"))
    with open(os.path.join(d, "www", "index.html"), "w") as f:
        f.write("hello from nginx\n")
    port = axtest.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": d, "port": port})
    n = Proc([NGINX, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf,
              "-g", "daemon off;"])
    wait_port(port, n, "nginx")
    base = "http://127.0.0.1:%d" % port
    rep = bench("-c", "8", base + "/index.html")
    clean(rep, "GET")
    t.ok(rep["bytes_in_per_second"] > rep["per_second"] * 17, "bodies counted")
    clean(bench("-c", "4", "-p", "8", base + "/index.html"), "pipelined GET")
    clean(bench("-c", "4", "-b", "x" * 100, base + "/post"), "POST")
    clean(bench("-c", "4", "-R", "500", base + "/index.html"), "-R 500")


@t.test
def mqtt_fanout_against_mosquitto():
    need(MOSQUITTO, "mosquitto")
    port = axtest.free_port()
    conf = os.path.join(TMP, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "log_dest stderr\nlog_type error\n" % port)
    m = Proc([MOSQUITTO, "-c", conf])
    wait_port(port, m, "mosquitto")
    for q in ("0", "1", "2"):
        rep = bench("-P", "2", "-S", "10", "-q", q, "mqtt://127.0.0.1:%d" % port)
        clean(rep, "QoS " + q)
        fo = rep["fanout"]
        t.eq((fo["lost"], fo["reordered"], fo["subscribers_ready"]), (0, 0, 20),
             "QoS %s: lost, reordered, subscribers" % q)
    rep = bench("-5", "-P", "1", "-S", "5", "-q", "1", "mqtt://127.0.0.1:%d" % port)
    clean(rep, "MQTT 5")


WS_SERVER = r'''
import asyncio, sys, websockets
async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None):
        print("listening", flush=True)
        await asyncio.Future()
asyncio.run(main())
'''


@t.test
def ws_echo_against_python_websockets():
    port = axtest.free_port()
    path = os.path.join(TMP, "ws_echo.py")
    with open(path, "w") as f:
        f.write(WS_SERVER)
    p = Proc(["/usr/bin/python3", path, str(port)])
    p.wait_output(lambda o: b"listening" in o, what="the websockets server")
    rep = bench("-c", "4", "-s", "200", "ws://127.0.0.1:%d/" % port)
    clean(rep, "ws echo")


t.main()
