#!/usr/bin/python3
"""test_irc_modes: channel operators, modes, KICK and INVITE of the IRC
gateway (src/hub/irc_chan.c, docs/irc.md), the IRCv3 caps away-notify,
account-tag and extended-join, and flood control.

- Operators follow the hub's permissions: with a password file and an ACL
  that gives alice `topic op chat/lobby`, alice is @ on joining (even
  after bob, who is not), bob's MODE is 482; alice sets +m (bob's PRIVMSG
  is 404 until +v), +b (bob's JOIN is 474), +k (475 without the key),
  +i (473 until INVITE: 341 and the INVITE line), +l; MODE #chan shows
  them (324), MODE #chan b lists bans (367/368); an unknown letter is 472;
  KICK reaches the channel and the victim leaves (not shown as PART).
- Without authentication, the first IRC user on an empty channel is its
  operator, and may pass +o on; a user's QUIT reaches the channel as QUIT
  (not PART).
- IRCv3: extended-join carries the account, account-tag the sender's
  account, away-notify the AWAY of a user on a shared channel.
- Flood control: a burst of lines is answered at once up to a point, the
  rest later; a flood past the receive queue ends with `Excess Flood`."""
import os
import subprocess
import tempfile
import time

import axtest
import ircutil
import servutil

t = axtest.Tests("axon serve: IRC modes", alarm=150)
TMP = tempfile.mkdtemp(prefix="axon-ircm-")


class Irc(ircutil.Irc):
    def register(self, nick, caps="", password=None):
        self.cmd("CAP LS 302")
        if password:
            self.cmd("PASS :%s:%s" % (nick, password))
        self.cmd("NICK " + nick)
        self.cmd("USER %s 0 * :%s test" % (nick, nick))
        if caps:
            self.cmd("CAP REQ :" + caps)
        self.cmd("CAP END")
        return self.numeric("422", "the end of the welcome burst")

    def join(self, chan, key=None):
        self.cmd("JOIN %s%s" % (chan, " " + key if key else ""))
        return self.numeric("366", "NAMES after JOIN")


def names_of(lines):
    return " ".join(ln.split(" :", 1)[1] for ln in lines if " 353 " in ln).split()


def line_login(srv, name):
    """A line chat user signed in with its password, in the lobby."""
    c = axtest.Lines.connect("127.0.0.1", srv.line_port)
    c.send("/login %s %s pw\n" % (name, name))
    servutil.want(c, "you are in lobby")
    return c


def password_setup():
    pw = os.path.join(TMP, "passwd")
    if not os.path.exists(pw):
        for i, user in enumerate(("alice", "bob", "carol", "dave")):
            subprocess.run(["mosquitto_passwd", "-b"] + ([] if i else ["-c"]) +
                           [pw, user, user + " pw"], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    acl = os.path.join(TMP, "acl")
    with open(acl, "w") as f:
        f.write("user alice\ntopic op chat/lobby\ntopic write user/+/inbox\n"
                "user bob\ntopic readwrite chat/#\ntopic write user/+/inbox\n"
                "user carol\ntopic readwrite chat/#\nuser dave\ntopic readwrite chat/#\n")
    return ["--password-file", pw, "--acl-file", acl]


@t.test
def operators_follow_the_acl_and_modes_bind():
    srv = servutil.Serve("-d", "none", *password_setup())
    bob = Irc.open(srv)
    bob.register("bob", password="bob pw")
    t.ok("bob" in names_of(bob.join("#lobby")), "bob is no operator: no @")
    alice = Irc.open(srv)
    alice.register("alice", password="alice pw")
    t.ok("@alice" in names_of(alice.join("#lobby")), "alice has op on chat/lobby: @alice")
    t.ok(bob.has("MODE #lobby +o alice").startswith(":irc.axon "), "bob is told alice is @")
    bob.cmd("MODE #lobby +m")
    bob.numeric("482", "482 for bob")
    # +m: bob may not speak until voiced
    alice.cmd("MODE #lobby +m")
    t.ok(alice.has("MODE #lobby +m").startswith(":alice!"), "alice sees her MODE")
    bob.has("MODE #lobby +m", "bob sees +m")
    bob.cmd("PRIVMSG #lobby :may I?")
    bob.numeric("404", "404 under +m")
    alice.cmd("MODE #lobby +v bob")
    bob.has("MODE #lobby +v bob")
    bob.cmd("PRIVMSG #lobby :voiced")
    alice.has("PRIVMSG #lobby :voiced", "a voiced user speaks under +m")
    alice.cmd("MODE #lobby -mv bob")
    bob.has("MODE #lobby -mv bob")
    # an unknown mode letter
    alice.cmd("MODE #lobby +Z")
    t.ok(" 472 alice Z " in alice.numeric("472")[-1], "472 for +Z")
    # KICK: the channel sees it, the victim leaves, and it is not a PART
    line = line_login(srv, "dave")
    alice.has("JOIN #lobby", "dave's JOIN")
    alice.cmd("KICK #lobby bob :behave")
    t.ok(bob.has("KICK #lobby bob").endswith(":behave"), "bob sees his KICK with the reason")
    alice.has("KICK #lobby bob")
    servutil.want(line, "bob left lobby")
    alice.cmd("NAMES #lobby")
    t.ok("bob" not in names_of(alice.numeric("366")), "bob is gone from NAMES")
    t.ok(alice.silent(0.3), "no PART after the KICK")
    bob.cmd("PRIVMSG #lobby :still here?")
    bob.numeric("404", "+n: a kicked user may not speak from outside")
    alice.cmd("KICK #lobby dave")
    t.ok(" 441 alice dave #lobby " in alice.numeric("441")[-1], "441: dave is not on IRC")
    # +b with a mask
    alice.cmd("MODE #lobby +b bob!*@*")
    alice.has("MODE #lobby +b bob!*@*")
    bob.cmd("JOIN #lobby")
    bob.numeric("474", "474 for a banned user")
    alice.cmd("MODE #lobby b")
    bans = alice.numeric("368")
    t.ok(any(" 367 alice #lobby bob!*@* alice " in ln for ln in bans), "367: %r" % bans)
    alice.cmd("MODE #lobby -b bob!*@*")
    alice.has("MODE #lobby -b bob!*@*")
    # +k
    alice.cmd("MODE #lobby +k sesame")
    alice.has("MODE #lobby +k sesame")
    bob.cmd("JOIN #lobby")
    bob.numeric("475", "475 without the key")
    bob.cmd("JOIN #lobby wrong")
    bob.numeric("475", "475 with a wrong key")
    bob.join("#lobby", "sesame")
    bob.cmd("MODE #lobby")
    t.ok(bob.numeric("324")[-1].endswith(" #lobby +knt sesame"), "324 shows the key to members")
    bob.cmd("PART #lobby")
    bob.has("PART #lobby")
    alice.has("PART #lobby")
    # +i and INVITE
    alice.cmd("MODE #lobby -k+i *")
    alice.has("MODE #lobby -k+i")
    bob.cmd("JOIN #lobby")
    bob.numeric("473", "473 on +i")
    alice.cmd("INVITE bob #lobby")
    t.ok(" 341 alice bob #lobby" in alice.numeric("341")[-1], "341 to the inviter")
    t.ok(bob.has("INVITE bob #lobby").startswith(":alice!"), "bob gets the INVITE")
    bob.join("#lobby")
    # +l
    alice.cmd("MODE #lobby -i+l 3")
    alice.has("MODE #lobby -i+l 3")
    carol = Irc.open(srv)
    carol.register("carol", password="carol pw")
    carol.cmd("JOIN #lobby")
    carol.numeric("471", "471: alice, bob and dave fill +l 3")
    alice.cmd("MODE #lobby")
    t.ok(alice.numeric("324")[-1].endswith(" #lobby +lnt 3"), "324 +lnt 3")
    alice.cmd("MODE #lobby -l")
    alice.has("MODE #lobby -l")
    carol.join("#lobby")
    # +t: the topic is the operators'
    carol.cmd("TOPIC #lobby :mine now")
    carol.numeric("482", "482 for TOPIC under +t")
    alice.cmd("TOPIC #lobby :ops only")
    carol.has("TOPIC #lobby :ops only")
    for c in (alice, bob, carol, line):
        c.close()
    srv.stop()


@t.test
def without_auth_the_first_comer_is_operator():
    srv = servutil.Serve("-d", "none")
    a = Irc.open(srv)
    a.register("ann")
    t.ok("@ann" in names_of(a.join("#den")), "the first IRC user on #den is @")
    b = Irc.open(srv)
    b.register("ben", caps="multi-prefix")
    n = names_of(b.join("#den"))
    t.ok("@ann" in n and "ben" in n, "ben is not: %r" % n)
    b.cmd("MODE #den +t")
    b.numeric("482")
    b.cmd("KICK #den ann")
    b.numeric("482", "482 for KICK by a non-operator")
    a.cmd("MODE #den +ov ben ben")
    b.has("MODE #den +ov ben ben")
    b.cmd("NAMES #den")
    t.ok("@+ben" in names_of(b.numeric("366")), "multi-prefix shows @+ben")
    b.cmd("MODE #den -o ann")
    a.has("MODE #den -o ann", "an operator given +o may take it from another")
    a.cmd("MODE #den +m")
    a.numeric("482", "ann is no longer an operator")
    a.cmd("MODE ben +i")
    a.numeric("502", "502 for another user's modes")
    a.cmd("MODE ann +i")
    t.ok(a.has("MODE ann").endswith(":+i"), "user mode +i")
    a.cmd("MODE ann")
    t.ok(a.numeric("221")[-1].endswith("+i"), "221 +i")
    a.cmd("INVITE nobody #den")
    a.numeric("401", "401 for INVITE of nobody")
    a.cmd("INVITE ben #den")
    a.numeric("443", "443: ben is on #den")
    b.cmd("QUIT :bye")
    t.eq(a.has(" QUIT "), ":ben!~ben@127.0.0.1 QUIT :Quit: bye", "QUIT to the channel")
    t.ok(a.silent(0.3), "no PART after the QUIT")
    a.close()
    b.close()
    srv.stop()


@t.test
def away_notify_account_tag_extended_join():
    srv = servutil.Serve("-d", "none", *password_setup())
    bob = Irc.open(srv)
    bob.register("bob", caps="extended-join account-tag away-notify", password="bob pw")
    bob.join("#lobby")
    carol = Irc.open(srv)
    carol.register("carol", password="carol pw")
    carol.join("#lobby")
    j = bob.has("JOIN #lobby")
    t.eq(j, ":carol!~carol@127.0.0.1 JOIN #lobby carol :carol test", "extended-join")
    carol.cmd("PRIVMSG #lobby :tagged")
    m = bob.has("PRIVMSG #lobby :tagged")
    t.ok(m.startswith("@account=carol :carol!"), "account-tag: %r" % m)
    carol.cmd("AWAY :lunch")
    carol.numeric("306")
    t.eq(bob.has(" AWAY "), ":carol!~carol@127.0.0.1 AWAY :lunch", "away-notify")
    carol.cmd("AWAY")
    t.eq(bob.has(" AWAY"), ":carol!~carol@127.0.0.1 AWAY", "back")
    line = line_login(srv, "dave")
    t.eq(bob.has("JOIN #lobby"), ":dave!dave@axon JOIN #lobby * :dave",
         "extended-join for another gateway's user: no account")
    bob.cmd("WHOIS carol")
    t.ok(any(" 330 bob carol carol " in ln for ln in bob.numeric("318")), "WHOIS 330")
    for c in (bob, carol, line):
        c.close()
    srv.stop()


@t.test
def replies_irctest_asked_for():
    """Found by irctest: 403 for KICK/TOPIC/MODE on a channel nobody is on,
    461 for an empty real name, 301 for a DM to an away user, and a long
    message cut to one relayed line rather than split in two."""
    srv = servutil.Serve("-d", "none")
    a = Irc.open(srv)
    a.register("amy")
    for cmd in ("KICK #void amy", "TOPIC #void", "MODE #void +o amy"):
        a.cmd(cmd)
        a.numeric("403", "403 for %s" % cmd)
    e = Irc.open(srv)
    e.cmd("NICK eve")
    e.cmd("USER eve 0 * :")
    e.numeric("461", "461 for an empty real name")
    b = Irc.open(srv)
    b.register("bea")
    b.cmd("AWAY :out")
    b.numeric("306")
    a.cmd("PRIVMSG bea :" + "x" * 490)
    t.ok(a.numeric("301")[-1].endswith(" bea :out"), "301 for a DM to an away user")
    got = b.has("PRIVMSG bea :")
    t.ok(len(got.encode()) <= 510, "one relayed line within 512 bytes: %d" % len(got))
    t.ok(b.silent(0.3), "no second line")
    for c in (a, e, b):
        c.close()
    srv.stop()


@t.test
def flood_control():
    srv = servutil.Serve("-d", "none")
    c = Irc.open(srv)
    c.register("fast")
    c.cmd("\r\n".join("PING :n%d" % i for i in range(40)))
    t0 = time.monotonic()
    got = []
    while time.monotonic() - t0 < 1.0:
        try:
            ln = c.line(0.2)
        except axtest.Failure:
            continue
        if "PONG" in ln:
            got.append(ln)
    t.ok(15 <= len(got) < 30, "a burst is answered at once up to a point: %d of 40" % len(got))
    later = c.until(lambda ln: ln.endswith(":n%d" % (len(got) + 1)), "the next PONG, later", 5)
    t.ok(later, "the rest follows at the penalty rate")
    c.send("PRIVMSG #nowhere :x\r\n" * 1200)  # ~24 KB in one go
    err = c.until(lambda ln: ln.startswith("ERROR"), "ERROR")[-1]
    t.ok("Excess Flood" in err, err)
    t.ok(c.closed_by_peer(), "closed")
    srv.stop()


if __name__ == "__main__":
    t.main()
