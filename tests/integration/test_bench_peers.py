#!/usr/bin/python3
"""axon bench against servers that are not axon: nginx (http:// and
https://, with pipelining and a POST), mosquitto (mqtt:// and mqtts://
fan-out at QoS 0, 1 and 2), Python's websockets (ws:// and wss:// echo), nginx's nchan module (sse:// and
sses:// fan-out with --sse-sub/--sse-pub)
and Python's own asyncio echo servers (tcp://, tls://, unix://, udp://).  Half a second of load each; the
comparisons with wrk and mqttload are bench/bench-compare (make bench)."""

import json
import os
import shutil
import subprocess
import tempfile

import axtest
from axtest import Failure, Proc, axon_bin

t = axtest.Tests("axon bench against nginx, mosquitto, websockets", alarm=180)
TMP = tempfile.mkdtemp(prefix="axon-bench-peers-")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


wait_port = axtest.wait_port


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
        listen 127.0.0.1:%(tport)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        root %(dir)s/www;
        location = /post { return 200 "posted\\n"; }
    }
}
"""


def certs():
    d = os.path.join(TMP, "tls")
    if not os.path.exists(os.path.join(d, "cert.pem")):
        subprocess.run([axon_bin(), "cert", "--out", d], check=True, capture_output=True)
        # mosquitto started as root reads them as the user "mosquitto".
        for x in (TMP, d, os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")):
            os.chmod(x, 0o755 if os.path.isdir(x) else 0o644)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


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
    port, tport = axtest.free_port(), axtest.free_port()
    cert, key = certs()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"dir": d, "port": port, "tport": tport, "cert": cert, "key": key})
    n = Proc([NGINX, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf,
              "-g", "daemon off;"])
    wait_port(port, n, "nginx")
    wait_port(tport, n, "nginx (TLS)")
    base = "http://127.0.0.1:%d" % port
    rep = bench("-c", "8", base + "/index.html")
    clean(rep, "GET")
    t.ok(rep["bytes_in_per_second"] > rep["per_second"] * 17, "bodies counted")
    clean(bench("-c", "4", "-p", "8", base + "/index.html"), "pipelined GET")
    clean(bench("-c", "4", "-b", "x" * 100, base + "/post"), "POST")
    clean(bench("-c", "4", "-R", "500", base + "/index.html"), "-R 500")
    tbase = "https://127.0.0.1:%d" % tport
    rep = bench("-c", "4", "--ca", cert, tbase + "/index.html")
    clean(rep, "https GET")
    t.ok(rep["bytes_in_per_second"] > rep["per_second"] * 17, "https: bodies counted")
    clean(bench("-c", "2", "-p", "8", "--ca", cert, tbase + "/index.html"), "https pipelined")
    clean(bench("-c", "2", "-k", "-b", "x" * 100, "-H", "X-A: b", tbase + "/post"), "https POST")
    # A count is exact: nginx saw as many requests as were asked for.
    rep = bench("-c", "3", "-n", "999", base + "/index.html")
    t.eq(rep["count"], 999, "-n 999 against nginx")


@t.test
def mqtt_fanout_against_mosquitto():
    need(MOSQUITTO, "mosquitto")
    port, tport = axtest.free_port(), axtest.free_port()
    cert, key = certs()
    conf = os.path.join(TMP, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("per_listener_settings false\nallow_anonymous true\npersistence false\n"
                "log_dest stderr\nlog_type error\nlistener %d 127.0.0.1\n"
                "listener %d 127.0.0.1\ncertfile %s\nkeyfile %s\n" % (port, tport, cert, key))
    m = Proc([MOSQUITTO, "-c", conf])
    wait_port(port, m, "mosquitto")
    wait_port(tport, m, "mosquitto (TLS)")
    for q in ("0", "1", "2"):
        rep = bench("-P", "2", "-S", "10", "-q", q, "mqtt://127.0.0.1:%d" % port)
        clean(rep, "QoS " + q)
        fo = rep["fanout"]
        t.eq((fo["lost"], fo["reordered"], fo["subscribers_ready"]), (0, 0, 20),
             "QoS %s: lost, reordered, subscribers" % q)
    rep = bench("-5", "-P", "1", "-S", "5", "-q", "1", "mqtt://127.0.0.1:%d" % port)
    clean(rep, "MQTT 5")
    for q in ("0", "2"):
        rep = bench("-P", "2", "-S", "5", "-q", q, "--ca", cert, "mqtts://127.0.0.1:%d" % tport)
        clean(rep, "mqtts QoS " + q)
        fo = rep["fanout"]
        t.eq((fo["lost"], fo["reordered"], fo["subscribers_ready"]), (0, 0, 10),
             "mqtts QoS %s: lost, reordered, subscribers" % q)
    # A count is exact through the broker: every subscriber got every one.
    rep = bench("-n", "400", "-P", "2", "-S", "3", "-q", "1", "mqtt://127.0.0.1:%d" % port)
    t.eq((rep["fanout"]["published"], rep["count"]), (400, 1200), "-n 400 x 3 subscribers")


NCHAN_CONF = """
load_module %(mod)s;
master_process off;
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 1024; }
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
        listen 127.0.0.1:%(tport)d ssl;
        ssl_certificate %(cert)s;
        ssl_certificate_key %(key)s;
        location ~ ^/sub/(.+)$ { nchan_subscriber eventsource; nchan_channel_id $1; }
        location ~ ^/pub/(.+)$ { nchan_publisher; nchan_channel_id $1; }
    }
}
"""
NCHAN = "/usr/lib/nginx/modules/ngx_nchan_module.so"


@t.test
def sse_fanout_against_nchan():
    need(NGINX, "nginx")
    need(NCHAN, "nginx's nchan module (libnginx-mod-nchan)")
    d = tempfile.mkdtemp(prefix="nchan-", dir=TMP)
    port, tport = axtest.free_port(), axtest.free_port()
    cert, key = certs()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NCHAN_CONF % {"dir": d, "port": port, "tport": tport, "cert": cert, "key": key,
                              "mod": NCHAN})
    n = Proc([NGINX, "-p", d, "-e", os.path.join(d, "error.log"), "-c", conf,
              "-g", "daemon off;"])
    wait_port(port, n, "nginx (nchan)")
    wait_port(tport, n, "nginx (nchan, TLS)")
    url = "sse://127.0.0.1:%d" % port
    paths = ["--sse-sub", "/sub/{topic}", "--sse-pub", "/pub/{topic}"]
    rep = bench("-P", "2", "-S", "5", *paths, url)
    clean(rep, "nchan")
    fo = rep["fanout"]
    t.eq((fo["lost"], fo["reordered"], fo["subscribers_ready"]), (0, 0, 10),
         "nchan: lost, reordered, subscribers")
    t.ok(fo["deliveries"] >= 5 * fo["published"] * 0.9, "nchan: deliveries")
    rep = bench("-n", "300", "-P", "1", "-S", "4", *paths, url)
    t.eq((rep["fanout"]["published"], rep["count"]), (300, 1200), "nchan: -n 300 x 4")
    clean(bench("-P", "2", "-S", "3", "-R", "200", *paths, url), "nchan -R 200")
    rep = bench("-P", "2", "-S", "3", "--ca", cert, *paths, "sses://127.0.0.1:%d" % tport)
    clean(rep, "nchan over TLS")
    t.eq((rep["fanout"]["lost"], rep["fanout"]["subscribers_ready"]), (0, 6), "sses: lost, subs")


WS_SERVER = r'''
import asyncio, ssl, sys, websockets
async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)
async def main():
    ctx = None
    if len(sys.argv) > 2:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, ssl=ctx):
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
    cert, key = certs()
    tport = axtest.free_port()
    p = Proc(["/usr/bin/python3", path, str(tport), cert, key])
    p.wait_output(lambda o: b"listening" in o, what="the websockets server (TLS)")
    rep = bench("-c", "4", "-s", "200", "--ca", cert, "wss://127.0.0.1:%d/" % tport)
    clean(rep, "wss echo")
    t.ok(rep["bytes_in_per_second"] >= 200 * rep["per_second"] * 0.9, "wss: bytes in")


ECHO_SERVER = r'''
import asyncio, ssl, sys
port, tport, sock, cert, key = sys.argv[1:6]
async def echo(r, w):
    while True:
        b = await r.read(65536)
        if not b:
            break
        w.write(b)
        await w.drain()
    w.close()
class Udp(asyncio.DatagramProtocol):
    def connection_made(self, tr):
        self.tr = tr
    def datagram_received(self, data, addr):
        self.tr.sendto(data, addr)
async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    await asyncio.start_server(echo, "127.0.0.1", int(port))
    await asyncio.start_server(echo, "127.0.0.1", int(tport), ssl=ctx)
    await asyncio.start_unix_server(echo, sock)
    await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", int(port)))
    print("listening", flush=True)
    await asyncio.Future()
asyncio.run(main())
'''


@t.test
def echo_schemes_against_python_asyncio():
    cert, key = certs()
    port, tport = axtest.free_port_both(), axtest.free_port()
    sock = os.path.join(TMP, "echo.sock")
    path = os.path.join(TMP, "echo.py")
    with open(path, "w") as f:
        f.write(ECHO_SERVER)
    p = Proc(["/usr/bin/python3", path, str(port), str(tport), sock, cert, key])
    p.wait_output(lambda o: b"listening" in o, what="the asyncio echo server")
    for name, args in (("tcp", ["tcp://127.0.0.1:%d" % port]),
                       ("tls", ["--ca", cert, "tls://127.0.0.1:%d" % tport]),
                       ("unix", ["unix://" + sock]),
                       ("udp", ["udp://127.0.0.1:%d" % port])):
        rep = bench("-c", "4", "-s", "300", "--timeout", "10", *args)
        clean(rep, name + " echo")
        t.ok(rep["bytes_in_per_second"] >= 300 * rep["per_second"] * 0.9, name + ": bytes in")
    rep = bench("-c", "2", "-n", "500", "-p", "4", "tcp://127.0.0.1:%d" % port)
    t.eq(rep["count"], 500, "-n 500 pipelined echo")


t.main()
