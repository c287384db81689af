#!/usr/bin/python3
"""test_rpc: `axon rpc serve|call`, request/response over hub topics
(docs/remote.md):

- a call runs the served command with the call's arguments (as arguments,
  never through a shell) and its input, and prints its output; the exit
  status comes back; stderr comes back on stderr;
- 200 calls in a row each get their own answer (correlation ids), with
  p50/p99 printed;
- a request of the same shape published by another client of the hub (the
  HTTP API) is answered on its response topic with its correlation data;
- a call to nobody times out with a clear error (exit 3);
- with tokens: the caller needs write on the topic and read on its reply
  topic; without, the hub refuses and the call says so."""
import json
import subprocess
import threading
import time

import axtest
import mqttutil
import servutil
import termutil

t = axtest.Tests("axon rpc: request/response over hub topics", alarm=120)


def call(hub_url, topic, *args, token=None):
    cmd = [axtest.axon_bin(), "rpc", "call", hub_url, topic] + list(args)
    if token:
        cmd += ["--token", token]
    return subprocess.run(cmd, capture_output=True, timeout=30)


def responder(hub_url, topic, *cmd, token=None):
    args = [axtest.axon_bin(), "rpc", "serve", hub_url, topic]
    if token:
        args += ["--token", token]
    p = axtest.Proc(args + ["--"] + list(cmd))
    termutil.wait_file(p.err_path, "answering requests on " + topic)
    return p


@t.test
def call_and_answer():
    srv = servutil.Serve()
    hub = "ws://127.0.0.1:%d" % srv.http_port
    responder(hub, "dev/box1/run", "sh", "-c",
              'echo "args:$*"; cat; echo oops >&2; exit 4', "sh")
    r = call(hub, "dev/box1/run", "a b", "$(id)", "--input", "from stdin\n")
    t.eq(r.stdout.decode(), "args:a b $(id)\nfrom stdin\n", "the command's output")
    t.eq(r.stderr.decode(), "oops\n", "the command's stderr")
    t.eq(r.returncode, 4, "the command's exit status")


@t.test
def many_calls_correlated():
    srv = servutil.Serve()
    hub = "ws://127.0.0.1:%d" % srv.http_port
    responder(hub, "dev/box1/echo", "echo")
    r = call(hub, "dev/box1/echo", "x", "--count", "200")
    t.eq(r.returncode, 0, "200 calls: %r" % r.stderr)
    t.ok(r.stdout.decode().startswith("calls 200  p50 "), "the summary: %r" % r.stdout)


@t.test
def any_client_can_ask():
    srv = servutil.Serve()
    hub = "ws://127.0.0.1:%d" % srv.http_port
    responder(hub, "dev/box1/echo", "echo")
    sse = servutil.Sse(srv, "topic=replies/http-1")
    time.sleep(0.3)
    req = {"response_topic": "replies/http-1", "correlation_data": "c-42", "args": ["hi"]}
    servutil.publish(srv, "dev/box1/echo", json.dumps(req))
    ev = sse.wait_events(1)[0]
    ans = json.loads(ev["json"]["payload"])
    t.eq((ans["correlation_data"], ans["status"], ans["output"]), ("c-42", 0, "hi\n"),
         "the answer to a request made through the HTTP API")


@t.test
def call_to_nobody_times_out():
    srv = servutil.Serve()
    hub = "ws://127.0.0.1:%d" % srv.http_port
    start = time.monotonic()
    r = call(hub, "dev/nobody/here", "--timeout", "1")
    took = time.monotonic() - start
    t.eq(r.returncode, 3, "exit status of an unanswered call")
    t.ok("no answer on dev/nobody/here within 1.0 s" in r.stderr.decode(),
         "the error says what happened: %r" % r.stderr)
    # (the upper bound only catches a call that ignores its timeout: starting
    # the client on a loaded machine can take seconds of its own)
    t.ok(0.9 < took < 10, "it waited about the timeout: %.2f s" % took)


@t.test
def permissions():
    h = termutil.Hub()
    hub = "ws://127.0.0.1:%d" % h.srv.http_port
    dev = h.token("dev1", "--sub", "dev/box1/#", "--pub", "rpc/#")
    ok = h.token("carol", "--pub", "dev/box1/#", "--sub", "rpc/#")
    no = h.token("mallory", "--sub", "rpc/#")
    responder(hub, "dev/box1/echo", "echo", token=dev)
    r = call(hub, "dev/box1/echo", "yes", token=ok)
    t.eq((r.returncode, r.stdout.decode()), (0, "yes\n"), "a permitted call: %r" % r.stderr)
    r = call(hub, "dev/box1/echo", "no", token=no)
    t.eq(r.returncode, 2, "a call without write on the topic")
    t.ok("forbidden" in r.stderr.decode(), "the call says it was refused: %r" % r.stderr)


@t.test
def mqtt5_device_answers_natively():
    """An MQTT 5 device (Paho) gets `axon rpc call`'s request with the
    Response Topic and Correlation Data properties, and answers with the
    PUBLISH properties alone: its payload is the output."""
    srv = servutil.Serve()
    hub = "ws://127.0.0.1:%d" % srv.http_port
    dev = mqttutil.Client(srv.mqtt_port, "device", version=mqttutil.V5)
    dev.connect()
    dev.subscribe("dev/m5/uptime", 1)

    def answer():
        m = dev.get(timeout=10)
        p = m.properties
        props = mqttutil.v5props("PUBLISH", CorrelationData=p.CorrelationData)
        dev.c.publish(p.ResponseTopic, b"up 3 days\n", 1, properties=props)
        return p
    th = threading.Thread(target=lambda: got.append(answer()))
    got = []
    th.start()
    r = call(hub, "dev/m5/uptime")
    th.join(10)
    t.eq((r.returncode, r.stdout), (0, b"up 3 days\n"), "the device's answer: %r" % r.stderr)
    p = got[0]
    t.ok(p.ResponseTopic.startswith("rpc/reply/"), "Response Topic %r" % p.ResponseTopic)
    t.ok(len(p.CorrelationData) > 8, "Correlation Data %r" % p.CorrelationData)
    dev.close()


@t.test
def mqtt5_client_asks_natively():
    """An MQTT 5 client asks `axon rpc serve` with the properties and a
    payload of plain input; the answer comes with its Correlation Data."""
    srv = servutil.Serve()
    hub = "ws://127.0.0.1:%d" % srv.http_port
    responder(hub, "dev/m5/wc", "wc", "-c")
    asker = mqttutil.Client(srv.mqtt_port, "asker", version=mqttutil.V5)
    asker.connect()
    asker.subscribe("replies/asker", 1)
    props = mqttutil.v5props("PUBLISH", ResponseTopic="replies/asker",
                             CorrelationData=b"\x00\x01binary")
    asker.publish("dev/m5/wc", b"12345", qos=1, props=props)
    m = asker.get(timeout=10)
    t.eq(m.properties.CorrelationData, b"\x00\x01binary", "Correlation Data echoed, byte for byte")
    ans = json.loads(m.payload)
    t.eq((ans["status"], ans["output"].strip()), (0, "5"), "the command ran on the payload")
    asker.close()


t.main()
