#!/usr/bin/python3
"""test_irc: the IRC gateway of `axon serve` (src/hub/gw_irc.c, docs/irc.md),
with a raw IRC socket as a scripted client, nc-style sockets on the line
chat and curl on the HTTP API in the same room.

- Registration: CAP LS 302 before NICK/USER holds the welcome until CAP
  END; the burst is 001-004, 005, LUSERS, 422 in that order; PING/PONG;
  421 for an unknown command; QUIT ends with ERROR.
- Names: one namespace with the line chat (a line user's name is 433);
  432 for a bad nick.
- Rooms: JOIN #lobby answers JOIN then 353/366 with members of every
  gateway; MODE (324/329) and WHO (352/315); a line user's message arrives
  as PRIVMSG from name!name@line (the host names the gateway: http, mqtt,
  udp, ws too) and its join as JOIN from name!name@axon, an IRC message
  reaches the line chat and the HTTP history; CTCP ACTION is the line
  chat's /me.
- A long message from the HTTP API is split at 512 bytes on UTF-8
  boundaries; DMs both ways (user/NICK/inbox); a DM to a nick nobody
  holds is 401 (a NOTICE gets no reply), one to an offline account of the
  password file waits in its inbox.
- SASL PLAIN and PASS with a mosquitto_passwd user; a wrong password is
  904; without credentials the server says 464 and closes.
- draft/chathistory after a reconnect: what was said meanwhile, in a
  batch, with server-time."""
import os
import re
import socket
import subprocess
import tempfile
import time
import base64

import asyncio
import json

import websockets

import axtest
import ircutil
import mqttutil
import servutil

t = axtest.Tests("axon serve: IRC", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-irc-")


class Irc(ircutil.Irc):
    def register(self, nick, caps=None):
        if caps is not None:
            self.cmd("CAP LS 302")
        self.cmd("NICK " + nick)
        self.cmd("USER %s 0 * :%s test" % (nick, nick))
        if caps is not None:
            if caps:
                self.cmd("CAP REQ :" + caps)
            self.cmd("CAP END")
        return self.numeric("422", "the end of the welcome burst")


def codes(lines):
    out = []
    for ln in lines:
        m = re.match(r"^(@\S+ )?:\S+ (\d{3}) ", ln)
        if m:
            out.append(m.group(2))
    return out


@t.test
def registration_burst_and_basics():
    srv = servutil.Serve("-d", "none")
    c = Irc.open(srv)
    c.cmd("CAP LS 302")
    c.cmd("NICK alice")
    c.cmd("USER alice 0 * :Alice Liddell")
    ls = c.until(lambda ln: " CAP " in ln and " LS " in ln, "CAP LS")
    t.ok("sasl=PLAIN" in ls[-1] and "server-time" in ls[-1] and "draft/chathistory" in ls[-1],
         ls[-1])
    t.ok(c.silent(0.4), "no welcome before CAP END")
    c.cmd("CAP REQ :server-time bogus-cap")
    t.ok(" NAK " in c.until(lambda ln: " CAP " in ln, "CAP NAK")[-1], "an unknown cap is NAK'd")
    c.cmd("CAP REQ :server-time message-tags")
    t.ok(" ACK " in c.until(lambda ln: " CAP " in ln, "CAP ACK")[-1], "ACK")
    c.cmd("CAP END")
    burst = c.numeric("422")
    t.eq(codes(burst), ["001", "002", "003", "004", "005", "005", "251", "255", "265", "266", "422"],
         "burst")
    isupport = " ".join(ln for ln in burst if " 005 " in ln)
    for tok in ("CHANTYPES=#", "CASEMAPPING=ascii", "NICKLEN=32", "NETWORK=axon", "PREFIX="):
        t.ok(tok in isupport, "005 has %s: %s" % (tok, isupport))
    c.cmd("PING :abc")
    t.ok(c.until(lambda ln: "PONG" in ln, "PONG")[-1].endswith(":abc"), "PONG carries the token")
    c.cmd("FROBNICATE x")
    t.ok(" 421 alice FROBNICATE " in c.numeric("421")[-1], "421")
    c.cmd("NICK 9lives")
    c.numeric("432")
    c.cmd("QUIT :bye now")
    t.ok(c.until(lambda ln: ln.startswith("ERROR"), "ERROR")[-1].find("bye now") > 0, "ERROR")
    t.ok(c.closed_by_peer(), "closed after QUIT")
    srv.stop()


@t.test
def one_namespace_with_the_line_chat():
    srv = servutil.Serve("-d", "none")
    bob = srv.line_client("bob")
    c = Irc.open(srv)
    c.cmd("NICK bob")
    c.numeric("433", "433 for a line user's name")
    c.cmd("USER x 0 * :x")
    c.cmd("NICK Bob")  # ascii case mapping: the same name
    c.numeric("433")
    c.cmd("NICK carol")
    c.numeric("422")
    # and the other way round is the line chat's business; an IRC nick is taken on IRC
    d = Irc.open(srv)
    d.cmd("NICK carol")
    d.numeric("433", "433 for an IRC user's nick")
    bob.close()
    srv.stop()


@t.test
def rooms_bridge_both_ways():
    srv = servutil.Serve("-d", "none")
    bob = srv.line_client("bob")
    c = Irc.open(srv)
    c.register("alice", caps="")
    c.cmd("JOIN #lobby")
    j = c.numeric("366")
    t.ok(j[0].startswith(":alice!") and j[0].endswith("JOIN #lobby"), "JOIN first: %r" % j)
    names = [ln for ln in j if " 353 " in ln]
    t.ok(names and "bob" in names[0].split(":")[-1] and "alice" in names[0], "353: %r" % names)
    c.cmd("MODE #lobby")
    t.eq(codes(c.numeric("329")), ["324", "329"], "MODE #lobby")
    c.cmd("WHO #lobby")
    who = c.numeric("315")
    t.ok(sum(1 for ln in who if " 352 " in ln) == 2, "352 for both: %r" % who)
    servutil.want(bob, "alice joined lobby")
    bob.send("hello from the line\n")
    got = c.until(lambda ln: "PRIVMSG" in ln, "the line message")[-1]
    t.eq(got, ":bob!bob@line PRIVMSG #lobby :hello from the line", "line -> IRC (host: line)")
    c.cmd("PRIVMSG #lobby :hello from irc")
    servutil.want(bob, "[lobby] alice: hello from irc")
    c.cmd("PRIVMSG #lobby :\x01ACTION waves\x01")
    servutil.want(bob, "[lobby] * alice waves")
    bob.send("/me nods\n")
    got = c.until(lambda ln: "PRIVMSG" in ln, "the /me")[-1]
    t.eq(got, ":bob!bob@line PRIVMSG #lobby :\x01ACTION nods\x01", "/me -> ACTION")
    hist = servutil.curl_json(srv.base + "/api/history/chat/lobby")
    t.ok("hello from irc" in str(hist), "the HTTP history has it: %r" % hist)
    # a second line user comes and goes: JOIN and PART
    dan = srv.line_client("dan")
    t.ok(c.until(lambda ln: "JOIN" in ln, "dan's JOIN")[-1].startswith(":dan!dan@axon JOIN"),
         "JOIN")
    dan.send("/quit\n")
    t.ok(c.until(lambda ln: "PART" in ln, "dan's PART")[-1].startswith(":dan!dan@axon PART"),
         "PART")
    # long text from the HTTP API: split at 512 bytes, on UTF-8 boundaries
    text = "é" * 700
    servutil.publish(srv, "chat/lobby", text, sender="web")
    parts = []
    while sum(len(p) for p in parts) < len(text):
        ln = c.until(lambda ln: "PRIVMSG" in ln, "the long message")[-1]
        t.ok(len((ln + "\r\n").encode()) <= 512, "a line of %d bytes" % len(ln.encode()))
        t.ok(ln.startswith(":web!web@http PRIVMSG #lobby :"), "HTTP API -> IRC (host: http)")
        parts.append(ln.split(" :", 1)[1])
    t.ok(len(parts) >= 3 and "".join(parts) == text, "the pieces make the text")
    # the host names the gateway the message came from
    mq = mqttutil.Client(srv.mqtt_port, "mq-carol")
    mq.connect()
    mq.publish("chat/lobby", b"from mqtt", qos=1)
    got = c.until(lambda ln: "from mqtt" in ln, "the MQTT message")[-1]
    t.eq(got, ":mq-carol!mq-carol@mqtt PRIVMSG #lobby :from mqtt", "MQTT -> IRC (host: mqtt)")
    mq.close()
    t.ok(servutil.Udp(srv).ask("PUB chat/lobby from udp").startswith("OK chat/lobby "), "UDP publish")
    got = c.until(lambda ln: "from udp" in ln, "the UDP message")[-1]
    t.ok(re.match(r"^:(\S+)!\1@udp PRIVMSG #lobby :from udp$", got), "UDP -> IRC: %r" % got)

    async def ws_publish():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port) as ws:
            await ws.recv()  # welcome
            await ws.send(json.dumps({"type": "publish", "topic": "chat/lobby",
                                      "payload": "from ws", "id": 1}))
            await asyncio.wait_for(ws.recv(), axtest.TIMEOUT)  # the acknowledgement
    asyncio.run(ws_publish())
    got = c.until(lambda ln: "from ws" in ln, "the WebSocket message")[-1]
    t.ok(re.match(r"^:(\S+)!\1@ws PRIVMSG #lobby :from ws$", got), "WebSocket -> IRC: %r" % got)
    c.cmd("PART #lobby :later")
    t.ok(c.until(lambda ln: "PART" in ln, "own PART")[-1].startswith(":alice!"), "PART")
    servutil.want(bob, "alice left lobby")
    bob.close()
    srv.stop()


@t.test
def direct_messages_both_ways():
    srv = servutil.Serve("-d", "none")
    bob = srv.line_client("bob")
    c = Irc.open(srv)
    c.register("alice", caps="echo-message")
    c.cmd("PRIVMSG bob :psst")
    servutil.want(bob, "[dm] alice: psst")
    echo = c.until(lambda ln: "PRIVMSG" in ln, "the echo")[-1]
    t.eq(echo, ":alice!~alice@127.0.0.1 PRIVMSG bob :psst", "echo-message of a DM (own user@host)")
    bob.send("/msg alice back at you\n")
    got = c.until(lambda ln: "PRIVMSG" in ln, "bob's DM")[-1]
    t.eq(got, ":bob!bob@line PRIVMSG alice :back at you", "line /msg -> IRC")
    bob.close()
    srv.stop()


PASSWD = os.path.join(TMP, "passwd")


def passwd():
    if not os.path.exists(PASSWD):
        subprocess.run(["mosquitto_passwd", "-c", "-b", PASSWD, "carol", "carol pw"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return PASSWD


@t.test
def sasl_plain_and_pass_with_a_password_file():
    srv = servutil.Serve("-d", "none", "--password-file", passwd())
    c = Irc.open(srv)
    c.cmd("CAP LS 302")
    c.cmd("NICK whoever")
    c.cmd("USER carol 0 * :Carol")
    c.cmd("CAP REQ :sasl")
    c.until(lambda ln: " ACK " in ln, "ACK")
    c.cmd("AUTHENTICATE PLAIN")
    c.until(lambda ln: ln == "AUTHENTICATE +", "AUTHENTICATE +")
    c.cmd("AUTHENTICATE " + base64.b64encode(b"\0carol\0wrong").decode())
    c.numeric("904", "904 for a wrong password")
    c.cmd("AUTHENTICATE PLAIN")
    c.until(lambda ln: ln == "AUTHENTICATE +", "AUTHENTICATE +")
    c.cmd("AUTHENTICATE " + base64.b64encode(b"\0carol\0carol pw").decode())
    t.ok(" carol " in c.numeric("900")[-1], "900 logged in as carol")
    c.numeric("903")
    c.cmd("CAP END")
    burst = c.numeric("422")
    t.ok(any(" NICK carol" in ln for ln in burst), "the nick is the login's: %r" % burst[:3])
    t.ok(any(" 001 carol " in ln for ln in burst), "001 carol")
    c.cmd("JOIN #lobby")
    c.numeric("366")
    c.cmd("PRIVMSG #lobby :signed")
    h = servutil.curl_json("-u", "carol:carol pw", srv.base + "/api/history/chat/lobby")
    t.ok("signed" in str(h) and "carol" in str(h), "published as carol: %r" % h)
    # PASS user:password
    d = Irc.open(srv)
    d.cmd("PASS :carol:carol pw")
    d.cmd("NICK carol2")
    d.cmd("USER c 0 * :c")
    # the nick is carol's, and carol is here: refused as in use
    d.numeric("433")
    # no credentials: 464 and ERROR
    e = Irc.open(srv)
    e.cmd("NICK eve")
    e.cmd("USER eve 0 * :eve")
    e.numeric("464")
    t.ok(e.closed_by_peer(), "closed without credentials")
    srv.stop()


@t.test
def dm_to_a_nick_nobody_holds_is_401():
    # a nick never seen: 401, and nothing kept for it; NOTICE gets no reply
    srv = servutil.Serve("-d", "none")
    c = Irc.open(srv)
    c.register("alice")
    c.cmd("PRIVMSG nosuchnick :typo")
    got = c.numeric("401", "401 for a nick nobody holds")[-1]
    t.eq(got.split(" ", 1)[1], "401 alice nosuchnick :No such nick/channel",
         "401 <nick> :No such nick")
    c.cmd("NOTICE nosuchnick :typo")
    c.cmd("PING :sync")
    lines = c.until(lambda ln: "PONG" in ln, "PONG")
    t.eq(codes(lines), [], "no reply to a NOTICE: %r" % lines)
    c.close()
    srv.stop()


@t.test
def dm_to_an_offline_account_goes_to_its_inbox():
    pw = passwd()
    subprocess.run(["mosquitto_passwd", "-b", pw, "dana", "dana pw"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = servutil.Serve("-d", "none", "--password-file", pw)
    c = Irc.open(srv)
    c.cmd("PASS :carol:carol pw")
    c.register("carol")
    c.cmd("PRIVMSG dana :while you were out")
    c.cmd("PRIVMSG danaa :typo")
    c.cmd("PING :sync")
    lines = c.until(lambda ln: "PONG" in ln, "PONG")
    t.eq(codes(lines), ["401"], "401 for the typo only, not for the offline account: %r" % lines)
    h = servutil.curl_json("-u", "dana:dana pw", srv.base + "/api/history/user/dana/inbox")
    t.ok("while you were out" in str(h) and "carol" in str(h),
         "the DM waits in the account's inbox: %r" % h)
    c.close()
    srv.stop()


@t.test
def chathistory_after_reconnect():
    srv = servutil.Serve()
    c = Irc.open(srv)
    c.register("alice", caps="server-time batch draft/chathistory message-tags")
    c.cmd("JOIN #lobby")
    c.numeric("366")
    c.cmd("PRIVMSG #lobby :before")
    c.cmd("QUIT")
    c.closed_by_peer()
    bob = srv.line_client("bob")
    bob.send("while you were away\n")
    time.sleep(0.2)
    c = Irc.open(srv)
    c.register("alice", caps="server-time batch draft/chathistory message-tags")
    c.cmd("JOIN #lobby")
    c.numeric("366")
    c.cmd("CHATHISTORY LATEST #lobby * 10")
    got = c.until(lambda ln: ln.startswith(":irc.axon BATCH -"), "the batch's end")
    msgs = [ln for ln in got if "PRIVMSG" in ln]
    t.ok(got[0].startswith(":irc.axon BATCH +") and "chathistory #lobby" in got[0], got[0])
    t.ok(len(msgs) == 2 and "before" in msgs[0] and "while you were away" in msgs[1], msgs)
    t.ok(all(re.match(r"^@time=\d{4}-\d\d-\d\dT[\d:.]+Z;msgid=lobby-\d+;batch=", m) for m in msgs),
         msgs)
    first = re.search(r"msgid=([^; ]+)", msgs[0]).group(1)
    c.cmd("CHATHISTORY AFTER #lobby msgid=%s 10" % first)
    got = c.until(lambda ln: ln.startswith(":irc.axon BATCH -"), "the batch's end")
    msgs = [ln for ln in got if "PRIVMSG" in ln]
    t.ok(len(msgs) == 1 and "while you were away" in msgs[0], msgs)
    bob.close()
    srv.stop()


@t.test
def ping_both_ways_and_the_timeout():
    conf = os.path.join(TMP, "ping.conf")
    with open(conf, "w") as f:
        f.write("irc_ping_timeout 1\n")
    srv = servutil.Serve("-d", "none", "-c", conf)
    c = Irc.open(srv)
    c.register("pinger")
    ping = c.until(lambda ln: ln.startswith("PING "), "the server's PING", timeout=3)[-1]
    c.cmd("PONG " + ping.split(" ", 1)[1])
    c.until(lambda ln: ln.startswith("PING "), "the next PING", timeout=3)
    t0 = time.monotonic()
    err = c.until(lambda ln: ln.startswith("ERROR"), "the timeout", timeout=4)[-1]
    t.ok("Ping timeout" in err, err)
    t.ok(c.closed_by_peer(), "closed")
    t.ok(time.monotonic() - t0 < 3, "on time")
    srv.stop()


@t.test
def ircs_over_tls():
    import ssl
    d = os.path.join(TMP, "tls")
    subprocess.run([axtest.axon_bin(), "cert", "--out", d, "--name", "localhost"],
                   capture_output=True, timeout=10, check=True)
    port = axtest.free_port()
    srv = servutil.Serve("-d", "none", "--ircs", "127.0.0.1:%d" % port, "--cert",
                         os.path.join(d, "cert.pem"), "--key", os.path.join(d, "key.pem"))
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=axtest.TIMEOUT)
    c = Irc(ctx.wrap_socket(raw, server_hostname="localhost"))
    c.register("tlsuser")
    c.cmd("JOIN #lobby")
    c.numeric("366")
    bob = srv.line_client("bob")
    bob.send("to the tls user\n")
    got = c.until(lambda ln: "PRIVMSG" in ln, "bob's message over TLS")[-1]
    t.eq(got, ":bob!bob@line PRIVMSG #lobby :to the tls user", "over TLS")
    c.cmd("PRIVMSG #lobby :and back")
    servutil.want(bob, "[lobby] tlsuser: and back")
    bob.close()
    srv.stop()


if __name__ == "__main__":
    t.main()
