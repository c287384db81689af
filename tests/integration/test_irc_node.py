#!/usr/bin/python3
"""test_irc_node: the npm irc-framework client (tests/integration/node/irc)
on the IRC gateway, with a line chat user and a Python websockets client in
the same room.

- irc-framework registers (CAP negotiation with server-time),
  joins #lobby and gets the user list with the line and
  WebSocket users in it;
- messages three ways: WebSocket -> IRC and line, IRC -> line and
  WebSocket, line -> IRC; an action from IRC is the line chat's /me and
  the WebSocket payload "/me ..."; the WebSocket user's join arrives as
  JOIN, with server-time on the messages;
- irc-framework signs in with SASL PLAIN (a mosquitto_passwd user) and
  its nick is the login's;
- two irc-framework clients: a typing notification (TAGMSG +typing) and a
  reply (`+draft/reply` on PRIVMSG) reach the other with their tags, an
  MQTT 5.0 subscriber of the room sees the reply's tag as a User Property,
  and MONITOR tells one when the other comes and goes."""
import asyncio
import json
import os
import subprocess
import tempfile
import time

import axtest
import mqttutil
import nodeutil
import servutil

t = axtest.Tests("axon serve: IRC with irc-framework", alarm=180)
DIR = os.path.join(nodeutil.NODE_DIR, "irc")
TMP = tempfile.mkdtemp(prefix="axon-ircnode-")


Node = nodeutil.IrcClient


def ws_session(srv, steps):
    import websockets

    async def main():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port) as ws:
            await ws.send(json.dumps({"type": "nick", "name": "wendy"}))
            await ws.send(json.dumps({"type": "subscribe", "topic": "chat/lobby",
                                      "presence": True}))
            return await steps(ws)
    return asyncio.run(main())


async def ws_wait(ws, pred, what):
    deadline = time.monotonic() + axtest.TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise axtest.Failure("WebSocket: no %s" % what)
        m = json.loads(await asyncio.wait_for(ws.recv(), left))
        if pred(m):
            return m


@t.test
def three_gateways_one_room():
    env = nodeutil.ensure(("irc-framework",), where=DIR)
    if env is None:
        return
    srv = servutil.Serve("-d", "none")
    bob = srv.line_client("bob")
    alice = Node(env, srv.irc_port, "alice")
    try:
        reg = alice.want(lambda e: e["ev"] == "registered", "registration")
        t.eq(reg["nick"], "alice", "nick")
        t.ok("server-time" in reg["caps"], "server-time requested and acked: %r" % reg["caps"])
        alice.do(join="#lobby")
        alice.want(lambda e: e["ev"] == "join" and e["nick"] == "alice", "own JOIN")
        ul = alice.want(lambda e: e["ev"] == "userlist", "the user list")
        t.ok({"alice", "bob"} <= set(ul["users"]), "names: %r" % ul["users"])

        async def steps(ws):
            j = alice.want(lambda e: e["ev"] == "join" and e["nick"] == "wendy", "wendy's JOIN")
            t.eq(j["channel"], "#lobby", "channel")
            await ws.send(json.dumps({"type": "publish", "topic": "chat/lobby",
                                      "payload": "hello from the browser"}))
            m = alice.want(lambda e: e["ev"] == "message", "the WebSocket message")
            t.eq((m["nick"], m["target"], m["message"]), ("wendy", "#lobby",
                                                         "hello from the browser"), "ws -> irc")
            t.ok(m["time"], "server-time on it")
            servutil.want(bob, "[lobby] wendy: hello from the browser")
            alice.do(say="#lobby", text="hello from irc-framework")
            servutil.want(bob, "[lobby] alice: hello from irc-framework")
            w = await ws_wait(ws, lambda m: m.get("type") == "message" and m.get("sender") == "alice", "the IRC message")
            t.eq((w["sender"], w["payload"]), ("alice", "hello from irc-framework"), "irc -> ws")
            alice.do(action="#lobby", text="waves")
            servutil.want(bob, "[lobby] * alice waves")
            w = await ws_wait(ws, lambda m: m.get("type") == "message" and m.get("sender") == "alice", "the action")
            t.eq(w["payload"], "/me waves", "an action on the WebSocket")
            bob.send("hi all, bob\n")
            m = alice.want(lambda e: e["ev"] == "message", "bob's message")
            t.eq((m["nick"], m["host"], m["message"]), ("bob", "line", "hi all, bob"),
                 "line -> irc")
        ws_session(srv, steps)
        alice.want(lambda e: e["ev"] == "part" and e["nick"] == "wendy", "wendy's PART")
        alice.do(quit="bye")
        alice.want(lambda e: e["ev"] == "close", "the close")
        servutil.want(bob, "alice left lobby")
    finally:
        alice.stop()
        bob.close()
        srv.stop()


@t.test
def sasl_with_a_password_file():
    env = nodeutil.ensure(("irc-framework",), where=DIR)
    if env is None:
        return
    passwd = os.path.join(TMP, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "carol", "carol pw"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = servutil.Serve("-d", "none", "--password-file", passwd)
    carol = Node(env, srv.irc_port, "carol", "carol", "carol pw")
    try:
        carol.want(lambda e: e["ev"] == "loggedin" and e["account"] == "carol", "900")
        reg = carol.want(lambda e: e["ev"] == "registered", "registration")
        t.eq(reg["nick"], "carol", "nick")
        carol.do(join="#lobby")
        carol.want(lambda e: e["ev"] == "join", "JOIN")
        carol.do(say="#lobby", text="from carol")
        deadline = time.monotonic() + axtest.TIMEOUT
        while "from carol" not in str(h := servutil.curl_json(
                "-u", "carol:carol pw", srv.base + "/api/history/chat/lobby")):
            t.ok(time.monotonic() < deadline, "in the history: %r" % h)
            time.sleep(0.1)
        t.ok("'sender': 'carol'" in str(h), "sent as carol: %r" % h)
    finally:
        carol.stop()
        srv.stop()


@t.test
def typing_reply_tags_and_monitor():
    env = nodeutil.ensure(("irc-framework",), where=DIR)
    if env is None:
        return
    srv = servutil.Serve("-d", "none")
    mq = mqttutil.Client(srv.mqtt_port, "tags-sub", version=mqttutil.V5)
    mq.connect()
    mq.subscribe("chat/lobby", 1)
    alice = Node(env, srv.irc_port, "alice")
    bob = None
    try:
        reg = alice.want(lambda e: e["ev"] == "registered", "alice's registration")
        t.ok("message-tags" in reg["caps"], "irc-framework asks for message-tags: %r" % reg["caps"])
        alice.do(monitor="bob")
        off = alice.want(lambda e: e["ev"] == "offline", "731 for bob")
        t.eq(off["nicks"], ["bob"], "bob is offline")
        alice.do(join="#lobby")
        alice.want(lambda e: e["ev"] == "join" and e["nick"] == "alice", "alice's JOIN")
        bob = Node(env, srv.irc_port, "bob")
        on = alice.want(lambda e: e["ev"] == "online", "730 when bob connects")
        t.eq(on["nicks"], ["bob"], "bob is online")
        bob.want(lambda e: e["ev"] == "registered", "bob's registration")
        bob.do(join="#lobby")
        bob.want(lambda e: e["ev"] == "join" and e["nick"] == "bob", "bob's JOIN")
        alice.want(lambda e: e["ev"] == "join" and e["nick"] == "bob", "bob's JOIN at alice")
        alice.do(tagmsg="#lobby", tags={"+typing": "active"})
        tm = bob.want(lambda e: e["ev"] == "tagmsg", "alice's typing notification")
        t.eq((tm["nick"], tm["target"], tm["tags"].get("+typing")), ("alice", "#lobby", "active"),
             "TAGMSG +typing=active from alice")
        alice.do(say="#lobby", text="yes, that one", tags={"+draft/reply": "lobby-1"})
        m = bob.want(lambda e: e["ev"] == "message", "alice's reply")
        t.eq((m["message"], m["tags"].get("+draft/reply")), ("yes, that one", "lobby-1"),
             "PRIVMSG with +draft/reply")
        got = mq.get()
        t.eq((got.payload, getattr(got.properties, "UserProperty", None)),
             (b"yes, that one", [("+draft/reply", "lobby-1")]),
             "the MQTT 5.0 subscriber: the tag as a User Property")
        bob.do(quit="bye")
        off = alice.want(lambda e: e["ev"] == "offline", "731 when bob quits")
        t.eq(off["nicks"], ["bob"], "bob is offline again")
    finally:
        alice.stop()
        if bob:
            bob.stop()
        mq.close()
        srv.stop()


if __name__ == "__main__":
    t.main()
