#!/usr/bin/python3
"""test_irc_tags: client-only tags, TAGMSG, STATUSMSG, ban and invite
exceptions, MONITOR (src/hub/irc_tags.c, irc_chan.c, docs/irc.md).

- Client-only tags (`+draft/reply`, `+x` with escapes) on a PRIVMSG reach
  IRC users who have message-tags, with the same msgid as the sender's
  echo; a user without caps gets no tags, one with server-time only
  `time=`; a tag that is not client-only (`fizz`) is not relayed.  They
  travel as MQTT 5.0 User Properties: an MQTT 5.0 subscriber of the room
  sees them, an MQTT publisher's `+` properties reach IRC as tags (a key
  with ';' or '=' that would forge another tag is dropped),
  CHATHISTORY replays them; a DM carries them too; through a Redis
  backplane they reach an IRC user on another node.
- TAGMSG: to the channel's users with message-tags (the sender's echo has
  the same msgid), not to the others; to a nick; 401 for nobody.
- STATUSMSG (`PRIVMSG @#chan`, `+#chan`) reaches the operators (and the
  voiced), not the others; ISUPPORT says STATUSMSG=@+.
- +e lets a banned user in, +I an uninvited one past +i; MODE #chan e / I
  list them (348/349, 346/347); a non-operator's +e is 482.
- MONITOR: 731 for an absent nick, 730 when it registers, 731 when it
  changes nick or quits; a line chat user counts as online; L and C.
- extended-monitor: a watcher with away-notify gets the AWAY of a
  monitored user it shares no channel with; one without away-notify does
  not."""
import re

import axtest
import ircutil
import mqttutil
import redisutil
import servutil

t = axtest.Tests("axon serve: IRC tags, TAGMSG, STATUSMSG, +e/+I, MONITOR", alarm=150)


class Irc(ircutil.Irc):
    def register(self, nick, caps=""):
        self.cmd("CAP LS 302")
        self.cmd("NICK " + nick)
        self.cmd("USER %s 0 * :%s test" % (nick, nick))
        if caps:
            self.cmd("CAP REQ :" + caps)
        self.cmd("CAP END")
        return self.numeric("422", "the end of the welcome burst")

    def join(self, chan):
        self.cmd("JOIN " + chan)
        return self.numeric("366", "NAMES after JOIN")

    def sync(self, token):
        """Lines up to the PONG for `token` (what arrived before it)."""
        self.cmd("PING " + token)
        return self.until(lambda ln: " PONG " in ln and ln.endswith(token), "PONG " + token)[:-1]


def tags_of(line):
    if not line.startswith("@"):
        return {}
    out = {}
    for item in line[1:].split(" ", 1)[0].split(";"):
        k, _, v = item.partition("=")
        out[k] = v
    return out


def four(srv):
    """alice (message-tags, echo-message), bob (message-tags, chathistory),
    carol (no caps), dave (server-time), all on #lobby."""
    alice, bob, carol, dave = (Irc.open(srv) for _ in range(4))
    alice.register("alice", "message-tags echo-message")
    bob.register("bob", "message-tags draft/chathistory batch")
    carol.register("carol")
    dave.register("dave", "server-time")
    for c in (alice, bob, carol, dave):
        c.join("#lobby")
    for c, n in ((alice, 3), (bob, 2), (carol, 1)):  # the JOINs of those who came later
        for _ in range(n):
            c.has(" JOIN #lobby", "a later JOIN")
    return alice, bob, carol, dave


@t.test
def client_tags_travel_as_user_properties():
    srv = servutil.Serve("-d", "none")
    mq = mqttutil.Client(srv.mqtt_port, "tags-sub", version=mqttutil.V5)
    mq.connect()
    mq.subscribe("chat/lobby", 1)
    alice, bob, carol, dave = four(srv)
    try:
        alice.cmd(r"@+draft/reply=lobby-1;+x=a\sb\:c;fizz=buzz PRIVMSG #lobby :hi all")
        echo = alice.has("PRIVMSG #lobby :hi all", "alice's echo")
        got = bob.has("PRIVMSG #lobby :hi all", "the message at bob")
        bt = tags_of(got)
        t.eq((bt.get("+draft/reply"), bt.get("+x")), ("lobby-1", r"a\sb\:c"),
             "bob gets the client tags, escaped as sent: %r" % got)
        t.ok("fizz" not in bt, "a tag that is not client-only is not relayed")
        t.eq(tags_of(echo).get("msgid"), bt.get("msgid"), "the echo has the same msgid")
        t.eq(tags_of(echo).get("+draft/reply"), "lobby-1", "the echo has the tags")
        cl = carol.has("PRIVMSG #lobby :hi all", "the message at carol")
        t.ok(cl.startswith(":alice!"), "carol (no message-tags) gets no tags: %r" % cl)
        dl = dave.has("PRIVMSG #lobby :hi all", "the message at dave")
        t.ok(list(tags_of(dl)) == ["time"], "dave (server-time) gets time= only: %r" % dl)
        m = mq.get()
        t.eq((m.payload, getattr(m.properties, "UserProperty", None)),
             (b"hi all", [("+draft/reply", "lobby-1"), ("+x", "a b;c")]),
             "the MQTT 5.0 subscriber sees them as User Properties, unescaped")
        pub = mqttutil.Client(srv.mqtt_port, "tags-pub", version=mqttutil.V5)
        pub.connect()
        pub.publish("chat/lobby", b"from mqtt", qos=1, props=mqttutil.v5props(
            "PUBLISH", UserProperty=[("+react", "\U0001F44D ok"), ("plain", "x"),
                                     ("+f;account=admin", "v")]))
        got = bob.has("PRIVMSG #lobby :from mqtt", "the MQTT message at bob")
        t.eq(tags_of(got).get("+react"), "\U0001F44D\\sok", "an MQTT '+' property is a tag")
        t.ok("plain" not in tags_of(got), "other User Properties are not tags")
        t.ok("account" not in tags_of(got) and "+f" not in tags_of(got),
             "a key that would forge a tag is dropped: %r" % got)
        pub.close()
        bob.cmd("CHATHISTORY LATEST #lobby * 10")
        hist = bob.until(lambda ln: " BATCH -" in ln, "the end of the history batch")
        replay = [ln for ln in hist if "PRIVMSG #lobby :hi all" in ln]
        t.ok(replay and tags_of(replay[0]).get("+draft/reply") == "lobby-1",
             "CHATHISTORY replays the tags: %r" % replay)
        alice.cmd("@+typing=active PRIVMSG bob :psst")
        got = bob.has("PRIVMSG bob :psst", "the DM at bob")
        t.eq(tags_of(got).get("+typing"), "active", "a DM carries its tags")
    finally:
        for c in (alice, bob, carol, dave):
            c.close()
        mq.close()
        srv.stop()


@t.test
def client_tags_cross_redis_nodes():
    redisutil.require()
    r = redisutil.Redis()
    a = servutil.Serve("-d", "none", "--redis", r.url)
    b = servutil.Serve("-d", "none", "--redis", r.url)
    alice = bob = None
    try:
        redisutil.wait_for(lambda: all(redisutil.healthz(s) == 200 for s in (a, b)),
                           "both nodes linked to Redis")
        alice, bob = Irc.open(a), Irc.open(b)
        alice.register("alice", "message-tags")
        bob.register("bob", "message-tags")
        alice.join("#lobby")
        bob.join("#lobby")
        alice.has(" JOIN #lobby", "bob's JOIN (from node b) at alice")
        alice.cmd(r"@+draft/reply=x1;+k=a\sb PRIVMSG #lobby :across nodes")
        got = bob.has("PRIVMSG #lobby :across nodes", "the message on node b")
        bt = tags_of(got)
        t.eq((bt.get("+draft/reply"), bt.get("+k")), ("x1", r"a\sb"),
             "node b's IRC user gets the client tags: %r" % got)
    finally:
        for c in (alice, bob):
            if c:
                c.close()
        for s in (a, b):
            s.stop()
        r.stop()


@t.test
def tagmsg_reaches_message_tags_users():
    srv = servutil.Serve("-d", "none")
    alice, bob, carol, dave = four(srv)
    try:
        alice.cmd(r"@+typing=active;+y=p\:q;cat=dog TAGMSG #lobby")
        echo = alice.has("TAGMSG #lobby", "alice's echo of her TAGMSG")
        got = bob.has("TAGMSG #lobby", "the TAGMSG at bob")
        t.ok(got.split(" ", 1)[1].startswith(":alice!~alice@"), "from alice: %r" % got)
        bt = tags_of(got)
        t.eq((bt.get("+typing"), bt.get("+y")), ("active", r"p\:q"), "the client tags")
        t.ok("cat" not in bt and bt.get("msgid"), "msgid, and no tag that is not client-only")
        t.eq(tags_of(echo).get("msgid"), bt.get("msgid"), "the echo has the same msgid")
        for c, who in ((carol, "carol"), (dave, "dave")):
            before = c.sync("after-tagmsg")
            t.ok(not any("TAGMSG" in ln for ln in before), "%s (no message-tags) gets no TAGMSG"
                 % who)
        alice.cmd("@+typing=paused TAGMSG bob")
        got = bob.has("TAGMSG bob", "a TAGMSG to a nick")
        t.eq(tags_of(got).get("+typing"), "paused", "its tag")
        alice.has("TAGMSG bob", "alice's echo of it")
        alice.cmd("@+typing=active TAGMSG nobody")
        t.ok(" 401 alice nobody " in alice.numeric("401")[-1], "401 for a nick nobody has")
    finally:
        for c in (alice, bob, carol, dave):
            c.close()
        srv.stop()


@t.test
def statusmsg_reaches_operators_and_voiced():
    srv = servutil.Serve("-d", "none")
    alice, bob, carol, dave = four(srv)  # alice came first: the operator
    try:
        dave.cmd("VERSION")
        isup = " ".join(dave.numeric("005") + dave.numeric("005"))
        t.ok("STATUSMSG=@+" in isup, "ISUPPORT: STATUSMSG=@+")
        alice.cmd("MODE #lobby +v bob")
        for c in (alice, bob, carol, dave):
            c.has("MODE #lobby +v bob")
        dave.cmd("PRIVMSG @#lobby :for the operators")
        got = alice.has("for the operators", "the STATUSMSG at alice")
        t.ok(re.search(r":dave!\S+ PRIVMSG @#lobby :for the operators$", got), got)
        dave.cmd("PRIVMSG +#lobby :for operators and voices")
        alice.has("PRIVMSG +#lobby :for operators and voices", "+#lobby at alice")
        bob.has("PRIVMSG +#lobby :for operators and voices", "+#lobby at bob")
        before = bob.sync("after-statusmsg")
        t.ok(not any("for the operators" in ln for ln in before), "bob is no operator: %r"
             % before)
        before = carol.sync("after-statusmsg")
        t.ok(not any("for " in ln for ln in before), "carol gets neither: %r" % before)
    finally:
        for c in (alice, bob, carol, dave):
            c.close()
        srv.stop()


@t.test
def ban_and_invite_exceptions():
    srv = servutil.Serve("-d", "none")
    alice, bob, carol, dave = (Irc.open(srv) for _ in range(4))
    try:
        burst = alice.register("alice")
        isup = " ".join(ln for ln in burst if " 005 " in ln)
        t.ok("EXCEPTS=e" in isup and "INVEX=I" in isup and "CHANMODES=beI,k,l,imnst" in isup,
             "ISUPPORT: EXCEPTS, INVEX, CHANMODES with e and I")
        bob.register("bob")
        carol.register("carol")
        dave.register("dave")
        alice.join("#club")
        alice.cmd("MODE #club +b bob!*@*")
        alice.has("MODE #club +b bob!*@*")
        bob.cmd("JOIN #club")
        bob.numeric("474", "474 for a banned bob")
        alice.cmd("MODE #club +e bob!*@127.0.0.1")
        alice.has("MODE #club +e bob!*@127.0.0.1")
        bob.join("#club")
        alice.has("JOIN #club", "bob, banned but excepted, is in")
        bob.cmd("MODE #club +e carol")
        bob.numeric("482", "482: bob is no operator")
        alice.cmd("MODE #club e")
        lst = alice.numeric("349")
        t.ok(any(" 348 alice #club bob!*@127.0.0.1 alice " in ln for ln in lst), "348: %r" % lst)
        alice.cmd("MODE #club +i")
        alice.has("MODE #club +i")
        alice.cmd("MODE #club +I carol!*@*")
        alice.has("MODE #club +I carol!*@*")
        carol.join("#club")
        alice.has(":carol!", "carol, on the invite exception list, is in past +i")
        dave.cmd("JOIN #club")
        dave.numeric("473", "473 for dave")
        alice.cmd("MODE #club I")
        lst = alice.numeric("347")
        t.ok(any(" 346 alice #club carol!*@* alice " in ln for ln in lst), "346: %r" % lst)
        alice.cmd("MODE #club -e bob!*@127.0.0.1")
        alice.has("MODE #club -e bob!*@127.0.0.1")
        bob.cmd("PRIVMSG #club :still?")
        bob.numeric("404", "banned again without the exception: 404")
        alice.cmd("MODE #club")
        t.ok(alice.numeric("324")[-1].endswith(" #club +int"), "324")
    finally:
        for c in (alice, bob, carol, dave):
            c.close()
        srv.stop()


@t.test
def monitor_follows_nicks():
    srv = servutil.Serve("-d", "none")
    alice = Irc.open(srv)
    bob = None
    try:
        burst = alice.register("alice")
        t.ok(any("MONITOR=100" in ln for ln in burst), "ISUPPORT: MONITOR=100")
        alice.cmd("MONITOR + bob,zed")
        got = alice.numeric("731")[-1]
        t.ok(got.endswith(" 731 alice :bob,zed"), "731 for both: %r" % got)
        bob = Irc.open(srv)
        bob.register("bob")
        got = alice.numeric("730")[-1]
        t.ok(re.search(r" 730 alice :bob!~bob@127\.0\.0\.1$", got), "730 when bob comes: %r" % got)
        bob.cmd("NICK zed")
        t.ok(alice.numeric("731")[-1].endswith(" :bob"), "731 bob when he becomes zed")
        t.ok(alice.numeric("730")[-1].endswith(" :zed!~bob@127.0.0.1"), "730 zed")
        bob.cmd("QUIT :bye")
        t.ok(alice.numeric("731")[-1].endswith(" :zed"), "731 zed on QUIT")
        lena = srv.line_client("lena")
        alice.cmd("MONITOR + lena")
        t.ok(alice.numeric("730")[-1].endswith(" :lena!lena@axon"), "a line chat user is online")
        alice.cmd("MONITOR L")
        lst = alice.numeric("733")
        listed = ",".join(ln.split(" :", 1)[1] for ln in lst if " 732 " in ln).split(",")
        t.eq(sorted(listed), ["bob", "lena", "zed"], "MONITOR L")
        alice.cmd("MONITOR - zed")
        alice.cmd("MONITOR C")
        alice.cmd("MONITOR L")
        lst = alice.numeric("733")
        t.ok(not any(" 732 " in ln for ln in lst), "empty after C: %r" % lst)
        lena.close()
    finally:
        alice.close()
        if bob:
            bob.close()
        srv.stop()


@t.test
def extended_monitor_carries_away():
    srv = servutil.Serve("-d", "none")
    alice, carol, bob = Irc.open(srv), Irc.open(srv), Irc.open(srv)
    try:
        alice.register("alice", "extended-monitor away-notify")
        carol.register("carol", "extended-monitor")
        bob.register("bob")
        for c in (alice, carol):
            c.cmd("MONITOR + bob")
            c.numeric("730", "730 for bob")
        bob.cmd("AWAY :afk")
        bob.numeric("306", "306")
        got = alice.has(" AWAY ", "bob's AWAY at alice")
        t.ok(got.startswith(":bob!~bob@") and got.endswith(" AWAY :afk"), got)
        bob.cmd("AWAY")
        bob.numeric("305", "305")
        got = alice.has(" AWAY", "bob's return at alice")
        t.ok(got.startswith(":bob!") and got.endswith(" AWAY"), got)
        before = carol.sync("after-away")
        t.ok(not any(" AWAY" in ln for ln in before), "carol (no away-notify) gets no AWAY: %r"
             % before)
    finally:
        for c in (alice, carol, bob):
            c.close()
        srv.stop()


if __name__ == "__main__":
    t.main()
