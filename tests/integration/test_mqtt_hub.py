#!/usr/bin/python3
"""test_mqtt_hub: the MQTT broker is the hub: an MQTT publish reaches the
WebSocket (Python websockets), SSE (curl), line chat (nc) and UDP
subscribers of the same topic with its bytes unchanged and a hub sequence
number, and what those publish reaches MQTT subscribers (mosquitto_sub,
Paho).  MQTT over WebSocket at /mqtt (Paho's websockets transport, the
mqtt subprotocol).  Authentication through the hub: a password file user,
a token as the password, anonymous refused, ACLs on PUBLISH and SUBSCRIBE
(5.0 0x87, 3.1.1 ack-and-drop and SUBACK 0x80), and retained messages
under the same read check as live delivery.  MQTT over TLS (--mqtts)."""
import asyncio
import base64
import json
import os
import socket
import subprocess
import tempfile
import time

import axtest
import mqttutil
from mqttutil import V311, V5, Client, Raw
from servutil import Serve, Sse, Udp, curl_json, metric, nc_client, nc_say, publish

t = axtest.Tests("axon serve: MQTT and the other gateways", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-mqtthub-")
SECRET = os.path.join(TMP, "secret")
with open(SECRET, "wb") as f:
    f.write(base64.b64encode(os.urandom(48)) + b"\n")
PASSWD = os.path.join(TMP, "passwd")
subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD, "carol", "pw1"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
subprocess.run(["mosquitto_passwd", "-b", PASSWD, "dave", "pw2"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ACL = os.path.join(TMP, "acl")
with open(ACL, "w") as f:
    f.write("user carol\ntopic readwrite chat/#\ntopic read feed/#\n"
            "user dave\ntopic readwrite #\n")


def token(user, *args):
    p = subprocess.run([axtest.axon_bin(), "token", "-s", SECRET, "-u", user] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    if p.returncode != 0:
        raise axtest.Failure("axon token: %s" % p.stderr.decode())
    return p.stdout.decode().strip()


def ws_collect(srv, requests, until, timeout=10):
    import websockets

    async def run():
        got = []
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port) as ws:
            got.append(json.loads(await ws.recv()))  # welcome
            for r in requests:
                await ws.send(r if isinstance(r, bytes) else json.dumps(r))
            while not until(got):
                got.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        return got
    return asyncio.run(run())


@t.test
def mqtt_reaches_every_gateway_and_back():
    srv = Serve("-d", "none")
    nc = nc_client(srv, "netcat")
    udp = Udp(srv)
    t.eq(udp.ask("SUB chat/lobby"), "OK SUB chat/lobby 60", "UDP subscribe")
    sse = Sse(srv, "topic=chat/lobby")
    m = Client(srv.mqtt_port, "device")
    m.connect()
    t.eq(m.subscribe("chat/#", 1), [1], "MQTT subscribe")
    time.sleep(0.3)  # curl connects
    m2 = Client(srv.mqtt_port, "sensor")
    m2.connect()
    m2.publish("chat/lobby", "héllo from mqtt".encode(), qos=1)
    nc.wait_output(lambda o: "[lobby] sensor: héllo from mqtt".encode() in o,
                   what="MQTT -> netcat")
    t.eq(udp.recv_until("MSG"), "MSG chat/lobby 1 sensor héllo from mqtt", "MQTT -> UDP")
    ev = sse.wait_events(1)[-1]["json"]
    t.eq((ev["payload"], ev["seq"], ev["sender"]), ("héllo from mqtt", 1, "sensor"),
         "MQTT -> SSE (a hub sequence number)")
    t.eq(m.get().payload, "héllo from mqtt".encode(), "MQTT -> MQTT")
    # and back
    nc_say(nc, "hi from netcat")
    t.eq(m.get().payload, b"hi from netcat", "netcat -> MQTT")
    publish(srv, "chat/lobby", "hi from curl")
    t.eq(m.get().payload, b"hi from curl", "HTTP -> MQTT")
    t.eq(Udp(srv).ask("PUB chat/lobby hi from udp"), "OK chat/lobby 4", "UDP publish")
    t.eq(m.get().payload, b"hi from udp", "UDP -> MQTT")
    got = ws_collect(srv, [{"type": "publish", "topic": "chat/lobby", "payload": "hi from ws"},
                           b"chat/bin\n\x00\x01\x02binary"],
                     lambda g: len([x for x in g if x.get("type") == "ok"]) >= 1)
    msgs = {m.get().payload for _ in range(2)}
    t.eq(msgs, {b"hi from ws", b"\x00\x01\x02binary"}, "WebSocket (text and binary) -> MQTT")
    # binary MQTT payloads reach the WebSocket as base64, bytes unchanged
    data = bytes(range(256))

    def later():
        time.sleep(0.5)
        m2.publish("chat/bin", data, qos=0)
    import threading
    threading.Thread(target=later).start()
    got = ws_collect(srv, [{"type": "subscribe", "topic": "chat/bin"}],
                     lambda g: any(x.get("type") == "message" for x in g))
    msg = [x for x in got if x.get("type") == "message"][0]
    t.eq((msg.get("encoding"), base64.b64decode(msg["payload"])), ("base64", data),
         "MQTT binary -> WebSocket")
    h = curl_json(srv.base + "/api/history/chat/lobby")
    t.eq([x["payload"] for x in h["messages"]][0], "héllo from mqtt", "history has MQTT's")
    t.ok(metric(srv, 'axon_messages_in_total{gateway="mqtt"}') >= 2, "mqtt in /metrics")
    m.close()
    m2.close()
    mqttutil.stop_clean(t, srv)


@t.test
def mqtt_over_websocket():
    srv = Serve("-d", "none")
    w = Client(srv.http_port, "wsclient", transport="websockets")
    t.eq(w.connect()[0], 0, "CONNACK over WebSocket")
    t.eq(w.subscribe("ws/#", 2), [2], "SUBACK over WebSocket")
    tcp = Client(srv.mqtt_port, "tcpclient", version=V5)
    tcp.connect()
    tcp.subscribe("ws/#", 1)
    big = os.urandom(200000)  # spans many WebSocket frames and TCP reads
    tcp.publish("ws/big", big, qos=1)
    t.eq(w.get().payload, big, "TCP -> WebSocket, 200 kB")
    w.publish("ws/x", b"from the browser side", qos=2)
    t.eq(tcp.get().payload, big, "own")
    t.eq(tcp.get().payload, b"from the browser side", "WebSocket -> TCP")
    # the subprotocol the browsers need
    r = subprocess.run(["curl", "-si", "--max-time", "3", "-H", "Connection: Upgrade",
                        "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                        "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                        "-H", "Sec-WebSocket-Protocol: mqttv3.1",
                        "http://127.0.0.1:%d/mqtt" % srv.http_port],
                       capture_output=True, timeout=10)
    head = r.stdout.decode(errors="replace").lower()
    t.ok("101" in head.split("\r\n")[0] and "sec-websocket-protocol: mqttv3.1" in head,
         "mqttv3.1 answered: %r" % head[:300])
    # the same client id over TCP takes the WebSocket session over
    w2 = Client(srv.mqtt_port, "wsclient")
    w2.connect()
    t.ok(w.disconnects.get(timeout=axtest.TIMEOUT) is not None, "takeover across transports")
    w.c.loop_stop()
    w2.close()
    tcp.close()
    mqttutil.stop_clean(t, srv)


@t.test
def authentication_and_acls():
    srv = Serve("-d", "none", "--auth-secret", SECRET, "--password-file", PASSWD,
                "--acl-file", ACL)
    for version, bad, anon in ((V311, 4, 5), (V5, 0x86, 0x87)):
        c = Client(srv.mqtt_port, "x", version=version, user="carol", password="wrong")
        t.eq(c.connect()[0], bad, "wrong password refused")
        c.c.loop_stop()
        c = Client(srv.mqtt_port, "x", version=version)
        t.eq(c.connect()[0], anon, "anonymous refused")
        c.c.loop_stop()
    carol = Client(srv.mqtt_port, "c1", version=V5, user="carol", password="pw1")
    t.eq(carol.connect()[0], 0, "password login")
    t.eq(carol.subscribe("chat/#", 1), [1], "allowed subscription")
    t.eq(carol.subscribe("#", 1), [0x87], "wider than granted: refused, not narrowed")
    t.eq(carol.subscribe("feed/#", 1), [1], "read-only topic subscribes")
    info = carol.c.publish("feed/x", b"nope", 1)
    info.wait_for_publish(axtest.TIMEOUT)
    carol3 = Client(srv.mqtt_port, "c3", user="carol", password="pw1")  # 3.1.1
    carol3.connect()
    t.eq(carol3.subscribe("#", 0), [0x80], "3.1.1 SUBACK 0x80")
    carol3.publish("feed/x", b"dropped", qos=1)  # acknowledged (3.1.1 3.3.5) and dropped
    t.ok(carol.none(0.5), "refused publishes never reach subscribers")
    tok = token("erin", "--pub", "chat/lobby", "--sub", "chat/#")
    erin = Client(srv.mqtt_port, "e1", version=V5, user="erin", password=tok)
    t.eq(erin.connect()[0], 0, "a token as the password")
    erin.publish("chat/lobby", b"signed", qos=1)
    m = carol.get()
    t.eq(m.payload, b"signed", "delivered")
    t.eq(curl_json(srv.base + "/api/history/chat/lobby", "-H",
                   "Authorization: Bearer " + tok)["messages"][-1]["sender"], "erin",
         "the sender is the token's name")
    # a refused PUBLISH in 5.0: PUBACK 0x87
    r = Raw(srv.mqtt_port)
    conn = mqttutil.connect_pkt(cid="raw5", level=5)
    body = conn[2:]  # add user name and password flags and fields
    flags_at = 2 + 4 + 1
    body = body[:flags_at] + bytes([body[flags_at] | 0xC0]) + body[flags_at + 1:]
    body += mqttutil.mstr("erin") + mqttutil.mstr(tok)
    r.send(mqttutil.packet(1, 0, body))
    t.eq(r.packet()[2][:2], b"\x00\x00", "raw 5.0 login")
    r.send(mqttutil.publish_pkt("chat/ops", b"x", qos=1, pid=3, level=5))
    kind, _, b = r.packet()
    t.eq((kind, b[:3]), (4, b"\x00\x03\x87"), "PUBACK 0x87")
    r.close()
    # retained messages pass the read check: dave writes to bob's private topic
    dave = Client(srv.mqtt_port, "d1", user="dave", password="pw2")
    dave.connect()
    dave.publish("user/bob/secret", b"for bob only", qos=1, retain=True)
    dave.publish("open/news", b"for all", qos=1, retain=True)
    dave2 = Client(srv.mqtt_port, "d2", user="dave", password="pw2")
    dave2.connect()
    t.eq(dave2.subscribe("#", 1), [0x80], "'#' covers others' private topics: refused")
    t.eq(dave2.subscribe("+/+", 1), [0x80], "'+/+' as well")
    t.eq(dave2.subscribe("open/#", 1), [1], "open/#")
    t.eq(dave2.get().topic, "open/news", "its retained message")
    t.ok(dave2.none(0.5), "nothing else")
    bob_tok = token("bob", "--sub", "user/bob/#")
    bob = Client(srv.mqtt_port, "b1", user="bob", password=bob_tok)
    bob.connect()
    bob.subscribe("user/bob/#", 1)
    t.eq(bob.get().payload, b"for bob only", "but to bob")
    for c in (carol, carol3, erin, dave, dave2, bob):
        c.close()
    mqttutil.stop_clean(t, srv)


@t.test
def limits_apply_to_mqtt():
    srv = Serve("-d", "none", "--msg-rate", "5/s burst 5", "--max-connections-per-ip", "3")
    c = Client(srv.mqtt_port, "flood", version=V5)
    c.connect()
    for i in range(20):
        c.c.publish("lim/x", b"%d" % i, 0)
    t.eq(c.disconnects.get(timeout=axtest.TIMEOUT), 0x96, "DISCONNECT 0x96 over msg_rate")
    c.c.loop_stop()
    c3 = Client(srv.mqtt_port, "flood3")  # 3.1.1: closed
    c3.connect()
    for i in range(20):
        c3.c.publish("lim/x", b"%d" % i, 0)
    t.ok(c3.disconnects.get(timeout=axtest.TIMEOUT) is not None, "3.1.1 closed over msg_rate")
    c3.c.loop_stop()
    held = [Raw(srv.mqtt_port) for _ in range(3)]
    time.sleep(0.2)
    extra = Raw(srv.mqtt_port)
    extra.send(mqttutil.connect_pkt(cid="fourth"))
    t.ok(extra.closed(), "a connection over max_connections_per_ip is closed before CONNACK")
    for r in held:
        r.close()
    t.ok(metric(srv, 'axon_errors_total{gateway="mqtt"}') >= 3, "counted")
    mqttutil.stop_clean(t, srv)


@t.test
def mqtt_over_tls():
    cert_dir = os.path.join(TMP, "cert")
    subprocess.run([axtest.axon_bin(), "cert", "--out", cert_dir], check=True,
                   capture_output=True, timeout=30)
    port = axtest.free_port()
    srv = Serve("-d", "none", "--mqtts", "127.0.0.1:%d" % port, "--cert",
                os.path.join(cert_dir, "cert.pem"), "--key", os.path.join(cert_dir, "key.pem"))
    s = axtest.Proc(["mosquitto_sub", "-p", str(port), "--insecure", "--cafile",
                     os.path.join(cert_dir, "cert.pem"), "-t", "tls/#", "-C", "1", "-v"],
                    capture=True)
    time.sleep(0.5)
    r = subprocess.run(["mosquitto_pub", "-p", str(port), "--insecure", "--cafile",
                        os.path.join(cert_dir, "cert.pem"), "-t", "tls/a", "-m", "secret",
                        "-q", "1"], capture_output=True, timeout=10)
    t.eq(r.returncode, 0, "mosquitto_pub over TLS: %r" % r.stderr)
    t.eq(s.wait(), 0, "mosquitto_sub over TLS")
    t.eq(s.output(), b"tls/a secret\n", "delivered over TLS")
    mqttutil.stop_clean(t, srv)


t.main()
