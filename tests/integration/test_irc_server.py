#!/usr/bin/python3
"""test_irc_server: the IRC gateway's server-wide commands and the events
that others see (src/hub/irc_server.c, gw_irc.c, docs/irc.md).

- irc_server_name: the name in 001-004, PONG, 352, 312 and numerics.
- LUSERS: 251-255 and 265/266 with truthful counts: a second user is
  counted, an unregistered connection is 253 and not a user, +i moves a
  user to "invisible", an operator is 252; the line chat's users count.
- TIME is 391, INFO 371/374; WHOWAS remembers a quit nick and a renamed one (314/312/
  369, newest first, a count), 406 for a nick never seen, 431 without one.
- OPER with irc_oper_file (a mosquitto_passwd file): 464 for a wrong
  password, 381 and MODE +o; then WHOIS 313, WHO `*`, USERHOST `*`,
  WALLOPS to +w users only, KILL (481 for a non-operator); wrong OPERs
  count toward login_fail_rate.  A signed-in
  admin (admin token) is an operator by its own name.
- NOTICE reaches IRC users as NOTICE (channel and DM) and the line chat as
  a message; a NICK change reaches a channel's users as one NICK line (no
  PART/JOIN), the line chat sees leave and join; a PART's reason reaches
  the others.
- WHO with a mask: IRC users and names in rooms of other gateways, +i
  users only to those who share a channel; WHO nick in the owner's case;
  client tags over 4094 bytes are 417; a line that is not UTF-8 is
  refused with FAIL INVALID_UTF8 (UTF8ONLY).
- +s: 353 says `@`, LIST and NAMES leave it out for those not on it.
"""
import os
import re
import subprocess
import tempfile
import time

import axtest
import ircutil
import servutil

t = axtest.Tests("axon serve: IRC server commands", alarm=150)
TMP = tempfile.mkdtemp(prefix="axon-ircs-")
NAME = "My.Little.Server"


class Irc(ircutil.Irc):
    def register(self, nick, caps=None, user=None):
        if caps:
            self.cmd("CAP LS 302")
            self.cmd("CAP REQ :" + caps)
            self.cmd("CAP END")
        self.cmd("NICK " + nick)
        self.cmd("USER %s 0 * :%s real" % (user or nick, nick))
        return self.numeric("422", "the end of the welcome burst")


def codes(lines):
    return [m.group(2) for m in (re.match(r"^(@\S+ )?:\S+ (\d{3}) ", ln) for ln in lines) if m]


def num(lines, code):
    return [ln for ln in lines if re.match(r"^(@\S+ )?:\S+ %s " % code, ln)]


def conf(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


OPERS = os.path.join(TMP, "opers")


def serve(*extra):
    if not os.path.exists(OPERS):
        subprocess.run(["mosquitto_passwd", "-c", "-b", OPERS, "operuser", "operpassword"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c = conf("server.conf", "irc_server_name %s\nirc_oper_file %s\n" % (NAME, OPERS))
    return servutil.Serve("-d", "none", "-c", c, *extra)


def lusers(c):
    c.cmd("LUSERS")
    got = c.numeric("266")
    n = {}
    for ln in got:
        m = re.match(r"^:\S+ (\d{3}) \S+ (.*)$", ln)
        if m:
            n[m.group(1)] = m.group(2)
    u = re.match(r":There are (\d+) users and (\d+) invisible on 1 servers", n["251"])
    return {"visible": int(u.group(1)), "invisible": int(u.group(2)),
            "opers": int(n["252"].split()[0]) if "252" in n else 0,
            "unknown": int(n["253"].split()[0]) if "253" in n else 0,
            "channels": int(n["254"].split()[0]) if "254" in n else 0,
            "me": int(re.search(r"I have (\d+) clients", n["255"]).group(1)),
            "local": [int(x) for x in n["265"].split()[:2]],
            "global": [int(x) for x in n["266"].split()[:2]]}


@t.test
def server_name_lusers_and_time():
    srv = serve()
    a = Irc.open(srv)
    burst = a.register("alice")
    t.eq(codes(burst), ["001", "002", "003", "004", "005", "005", "251", "255", "265", "266",
                        "422"], "the burst")
    t.ok(all(ln.startswith(":" + NAME + " ") for ln in burst), "every line from %s" % NAME)
    t.ok(num(burst, "004")[0].split()[3] == NAME, num(burst, "004")[0])
    a.cmd("PING :tok")
    t.eq(a.has("PONG"), ":%s PONG %s :tok" % (NAME, NAME), "PONG")
    lu = lusers(a)
    t.eq((lu["visible"], lu["invisible"], lu["me"], lu["local"], lu["global"]),
         (1, 0, 1, [1, 1], [1, 1]), "one user: %r" % lu)
    b = Irc.open(srv)
    b.register("bob")
    pending = Irc.open(srv)
    pending.cmd("NICK later")
    pending.cmd("PING :sync")
    pending.has("PONG")
    lu = lusers(a)
    t.eq((lu["visible"], lu["unknown"], lu["me"], lu["global"]), (2, 1, 2, [2, 2]),
         "two users and an unregistered connection: %r" % lu)
    b.cmd("MODE bob +i")
    b.has("MODE bob :+i")
    b.cmd("JOIN #lobby")
    b.numeric("366")
    line = srv.line_client("carol")
    lu = lusers(a)
    t.eq((lu["visible"], lu["invisible"], lu["me"], lu["channels"]), (2, 1, 3, 1),
         "+i is invisible, the line user counts, one channel: %r" % lu)
    b.cmd("QUIT :bye")
    b.closed_by_peer()
    pending.close()
    time.sleep(0.3)
    lu = lusers(a)
    t.eq((lu["visible"] + lu["invisible"], lu["unknown"], lu["global"][1]), (2, 0, 3),
         "after the QUIT, the max stays: %r" % lu)
    a.cmd("TIME")
    tm = a.numeric("391")[-1]
    t.ok(re.match(r"^:%s 391 alice %s \d+ \S+ :\S+" % (re.escape(NAME), re.escape(NAME)), tm), tm)
    t.ok(abs(int(tm.split()[4]) - time.time()) < 5, "its time is now: %s" % tm)
    a.cmd("INFO")
    t.eq(set(codes(a.numeric("374"))), {"371", "374"}, "INFO")
    line.close()
    srv.stop()


@t.test
def whowas_after_quit_and_nick():
    srv = serve()
    a = Irc.open(srv)
    a.register("alice")
    b = Irc.open(srv)
    b.register("bob", user="bobu")
    b.cmd("NICK robert")
    b.has("NICK robert")
    b.cmd("QUIT :gone")
    b.closed_by_peer()
    c = Irc.open(srv)
    c.register("bob", user="second")
    c.cmd("QUIT")
    c.closed_by_peer()
    a.cmd("WHOWAS bob")
    got = a.numeric("369")
    was = num(got, "314")
    t.eq(len(was), 2, "two bobs: %r" % got)
    t.ok(was[0].split()[4] == "~second" and was[1].split()[4] == "~bobu",
         "the newest first: %r" % was)
    t.ok(num(got, "312") and num(got, "312")[0].split()[4] == NAME, "312 with the server")
    a.cmd("WHOWAS bob 1")
    t.eq(len(num(a.numeric("369"), "314")), 1, "a count of 1")
    a.cmd("WHOWAS robert")
    got = a.numeric("369")
    t.ok(num(got, "314") and num(got, "314")[0].split()[3] == "robert", "robert quit: %r" % got)
    a.cmd("WHOWAS nobody")
    t.eq(codes(a.numeric("369")), ["406", "369"], "406 then 369")
    a.cmd("WHOWAS")
    a.numeric("431")
    srv.stop()


@t.test
def oper_whois_who_wallops_kill():
    srv = serve()
    a = Irc.open(srv)
    a.register("alice")
    b = Irc.open(srv)
    b.register("bob")
    w = Irc.open(srv)
    w.register("wally")
    w.cmd("MODE wally +w")
    w.has("MODE wally :+w")
    b.cmd("KILL alice :no")
    b.numeric("481", "481 for a non-operator's KILL")
    b.cmd("WALLOPS :hi")
    b.numeric("481")
    a.cmd("OPER operuser wrong")
    a.numeric("464")
    a.cmd("OPER operuser")
    a.numeric("461")
    a.cmd("OPER operuser operpassword")
    got = a.numeric("381")
    t.ok(any(ln == ":alice MODE alice :+o" for ln in got), "MODE +o: %r" % got)
    a.cmd("MODE alice")
    t.ok(a.numeric("221")[-1].endswith(" +o"), "221 +o")
    b.cmd("WHOIS alice")
    got = b.numeric("318")
    t.ok(num(got, "313"), "313 in WHOIS: %r" % got)
    t.ok(num(got, "312")[0].split()[4] == NAME, "312 with the server name")
    b.cmd("WHO alice")
    who = num(b.numeric("315"), "352")[0]
    t.ok(who.split()[6] == NAME and who.split()[8] == "H*", "WHO: %s" % who)
    b.cmd("USERHOST alice")
    t.ok(" :alice*=+" in b.numeric("302")[-1], "USERHOST *")
    lu = lusers(b)
    t.eq(lu["opers"], 1, "252: one operator")
    a.cmd("WALLOPS :hear ye")
    t.eq(w.has("WALLOPS"), ":alice!~alice@127.0.0.1 WALLOPS :hear ye", "+w gets WALLOPS")
    t.ok(b.silent(0.4), "bob (no +w) does not")
    a.cmd("KILL bob :enough")
    err = b.until(lambda ln: ln.startswith("ERROR"), "bob's ERROR")[-1]
    t.ok("Killed (alice (enough))" in err, err)
    t.ok(b.closed_by_peer(), "bob is gone")
    a.cmd("KILL nobody")
    a.numeric("401")
    a.cmd("MODE alice -o")
    a.has("MODE alice :-o")
    a.cmd("KILL wally")
    a.numeric("481", "no more an operator")
    srv.stop()


@t.test
def oper_guessing_meets_login_fail_rate():
    srv = serve("--login-fail-rate", "2/min burst 2")
    a = Irc.open(srv)
    a.register("guesser")
    for _ in range(2):
        a.cmd("OPER operuser wrong")
        t.ok("too many" not in a.numeric("464")[-1], "a wrong password")
    a.cmd("OPER operuser operpassword")
    t.ok("too many failed logins" in a.numeric("464")[-1], "then not even the right one is checked")
    srv.stop()


@t.test
def an_admin_token_is_an_operator():
    secret = conf("secret", "s" * 48 + "\n")
    tok = subprocess.run([axtest.axon_bin(), "token", "--secret", secret,
                          "--user", "root", "--admin", "--sub", "#", "--pub", "#"],
                         check=True, capture_output=True, text=True).stdout.strip()
    srv = servutil.Serve("-d", "none", "--auth-secret", secret, "--anonymous", "readwrite")
    a = Irc.open(srv)
    a.cmd("PASS " + tok)
    a.register("root")
    a.cmd("OPER someone else")
    a.numeric("464", "not by another name")
    a.cmd("OPER root x")
    a.numeric("381", "by its own name")
    n = Irc.open(srv)
    n.register("anon")
    n.cmd("OPER anon x")
    n.numeric("464", "an anonymous user is not")
    srv.stop()


@t.test
def notice_nick_and_part_reach_the_others():
    srv = serve()
    line = srv.line_client("lina")
    a = Irc.open(srv)
    a.register("alice")
    b = Irc.open(srv)
    b.register("bob", caps="echo-message")
    for c in (a, b):
        c.cmd("JOIN #lobby")
        c.numeric("366")
    a.has("JOIN #lobby", "bob's JOIN")
    b.cmd("NOTICE #lobby :heads up")
    t.eq(a.has("heads up"), ":bob!~bob@127.0.0.1 NOTICE #lobby :heads up", "a channel NOTICE")
    t.ok(" NOTICE #lobby :heads up" in b.has("heads up"), "its echo is a NOTICE too")
    servutil.want(line, "[lobby] bob: heads up")
    b.cmd("NOTICE alice :psst")
    t.eq(a.has("psst"), ":bob!~bob@127.0.0.1 NOTICE alice :psst", "a NOTICE DM")
    b.cmd("PRIVMSG #lobby :plain")
    t.ok(" PRIVMSG #lobby :plain" in a.has("plain"), "a PRIVMSG stays one")
    # NICK: one line for the channel, no PART/JOIN
    b.cmd("NICK robert")
    b.has("NICK robert")
    got = a.until(lambda ln: " NICK " in ln or " PART " in ln or " JOIN " in ln, "the rename")
    t.eq(got[-1], ":bob!~bob@127.0.0.1 NICK robert", "NICK to the channel")
    servutil.want(line, "robert joined lobby")
    b.cmd("PRIVMSG #lobby :renamed")
    got = a.until(lambda ln: "renamed" in ln, "the next message")
    t.ok(not any(" PART " in ln or " JOIN " in ln for ln in got), "no PART/JOIN: %r" % got)
    t.ok(got[-1].startswith(":robert!"), got[-1])
    # PART with a reason: the others see it, once
    b.cmd("PART #lobby :see you")
    t.eq(b.has(" PART "), ":robert!~bob@127.0.0.1 PART #lobby :see you", "own PART")
    t.eq(a.has(" PART "), ":robert!~bob@127.0.0.1 PART #lobby :see you", "the reason reaches alice")
    servutil.want(line, "robert left lobby")
    line.send("still here\n")
    got = a.until(lambda ln: "still here" in ln, "the line user's message")
    t.ok(not any(" PART " in ln for ln in got), "one PART only: %r" % got)
    # the line user leaves: a PART without reason as before
    line.close()
    t.ok(a.has(" PART ").startswith(":lina!lina@axon PART #lobby"), "the line user's PART")
    srv.stop()


@t.test
def who_with_a_mask_and_the_tags_limit():
    srv = serve()
    line = srv.line_client("evelyn")
    a = Irc.open(srv)
    a.register("alice")
    e = Irc.open(srv)
    e.register("evan")
    e.cmd("MODE evan +i")
    e.has("MODE evan :+i")
    v = Irc.open(srv)
    v.register("Eva")
    a.cmd("WHO ev*")
    got = num(a.numeric("315"), "352")
    t.eq(sorted(ln.split()[7] for ln in got), ["Eva", "evelyn"],
         "the line user and Eva; evan is +i: %r" % got)
    a.cmd("WHO EVA")
    t.eq([ln.split()[7] for ln in num(a.numeric("315"), "352")], ["Eva"], "as its owner spells it")
    a.cmd("WHO evan")
    t.eq(len(num(a.numeric("315"), "352")), 1, "a +i user by its full nick")
    for c in (a, e):
        c.cmd("JOIN #shared")
        c.numeric("366")
    a.cmd("WHO eva?")
    t.eq(sorted(ln.split()[7] for ln in num(a.numeric("315"), "352")), ["evan"],
         "a shared channel shows +i users")
    a.cmd("@+tag=" + "a" * 4096 + " PRIVMSG #shared :hi")
    a.numeric("417", "417 for client tags over 4094 bytes")
    a.cmd("@+tag=" + "a" * 4000 + " PRIVMSG #shared :fits")
    t.ok(e.has("fits").endswith("PRIVMSG #shared :fits"), "tags within the limit are fine")
    a.send(b"PRIVMSG #shared :caf\xe9\r\n")
    t.ok(" FAIL PRIVMSG INVALID_UTF8 " in a.has("FAIL"), "UTF8ONLY: a line that is not UTF-8")
    a.cmd("PRIVMSG #shared :caf\u00e9")
    t.ok(e.has("PRIVMSG").endswith(":caf\u00e9"), "not relayed; UTF-8 is")
    line.close()
    srv.stop()


@t.test
def a_secret_channel():
    srv = serve()
    a = Irc.open(srv)
    a.register("alice")
    b = Irc.open(srv)
    b.register("bob")
    a.cmd("JOIN #hidden")
    a.numeric("366")
    a.cmd("JOIN #open")
    a.numeric("366")
    a.cmd("MODE #hidden +s")
    a.has("MODE #hidden +s")
    a.cmd("NAMES #hidden")
    t.ok(" 353 alice @ #hidden :@alice" in a.numeric("366")[0], "353 says @ for +s")
    a.cmd("LIST")
    t.ok(any(" 322 alice #hidden " in ln for ln in a.numeric("323")), "a member lists it")
    b.cmd("LIST")
    got = b.numeric("323")
    t.ok(not any("#hidden" in ln for ln in got) and any("#open" in ln for ln in got),
         "others do not: %r" % got)
    b.cmd("NAMES #hidden")
    t.eq(codes(b.numeric("366")), ["366"], "nor its names")
    b.cmd("JOIN #hidden")
    t.ok(any(" 353 bob @ #hidden " in ln for ln in b.numeric("366")), "once on it, they do")
    a.cmd("MODE #hidden")
    t.ok(a.numeric("324")[-1].split()[4].startswith("+ns"), "324 shows +s")
    srv.stop()


@t.test
def a_bad_server_name_is_refused():
    c = conf("bad.conf", "irc_server_name not a name\n")
    p = subprocess.run([axtest.axon_bin(), "serve", "-d", "none", "-c", c,
                        "--http", "off", "--line", "off", "--udp", "off", "--mqtt", "off",
                        "--rtmp", "off", "--irc", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=20)
    t.ok(p.returncode != 0 and "irc_server_name" in p.stderr, p.stderr[-300:])


if __name__ == "__main__":
    t.main()
