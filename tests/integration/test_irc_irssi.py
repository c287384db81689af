#!/usr/bin/python3
"""test_irc_irssi: irssi (Debian's) on the IRC gateway, driven headless in
tmux, with a line chat user in the same room.

- irssi connects, negotiates its caps, gets the welcome (its status window
  shows the 001 text and no error), joins #lobby and sees the line user in
  the names;
- what irssi says (a message, /me) reaches the line chat; what the line
  user says (a message, /me) shows in irssi's #lobby window;
- /msg from the line chat opens a query window in irssi; irssi's /msg
  reaches the line user as a DM;
- irssi with SASL PLAIN (a mosquitto_passwd user) signs in;
- another IRC user's NOTICE shows as a notice, its NICK as "is now known
  as" (no part and join), its PART with the reason."""
import os
import shutil
import subprocess
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("axon serve: IRC with irssi", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-irssi-")
SOCK = "axon-irssi-%d" % os.getpid()


def tmux(*args):
    return subprocess.run(["tmux", "-L", SOCK] + list(args), capture_output=True, timeout=10)


HOMES = []


def pane():
    """What irssi shows, and what it logged (its windows are also logged:
    under load a window may be drawn late, the log is written as lines come)."""
    text = tmux("capture-pane", "-p", "-S", "-200", "-t", "irssi").stdout.decode(errors="replace")
    for home in HOMES[-1:]:
        for root, _, files in os.walk(os.path.join(home, "logs")):
            for name in files:
                with open(os.path.join(root, name), errors="replace") as f:
                    text += "\n" + f.read()
    return text


def keys(text):
    tmux("send-keys", "-t", "irssi", "-l", text)
    tmux("send-keys", "-t", "irssi", "Enter")


def wait_pane(pred, what, timeout=3 * axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = pane()
        if pred(p):
            return p
        time.sleep(0.1)
    raise axtest.Failure("irssi never showed %s; the pane:\n%s" % (what, pane()))


def irssi(srv, nick, extra=""):
    home = tempfile.mkdtemp(dir=TMP)
    HOMES.append(home)
    log = ('"fe-common/core" = { autolog = "yes"; autolog_path = "%s/logs/$tag/$0.log";'
           ' autolog_level = "all"; };' % home)
    with open(os.path.join(home, "config"), "w") as f:
        if extra:
            f.write(extra.replace("settings = { ", "settings = { %s " % log))
        else:
            f.write("settings = { %s };\n" % log)
    cmd = "irssi --home=%s -c 127.0.0.1 -p %d -n %s" % (home, srv.irc_port, nick)
    if extra:
        cmd = "irssi --home=%s" % home
    r = tmux("new-session", "-d", "-s", "irssi", "-x", "160", "-y", "50", cmd)
    if r.returncode != 0:
        raise axtest.Failure("tmux: %s" % r.stderr.decode())


def stop_irssi():
    tmux("kill-server")


@t.test
def irssi_talks_with_the_line_chat():
    if not shutil.which("irssi") or not shutil.which("tmux"):
        print("# SKIP irssi or tmux missing (scripts/deps.sh test)")
        return
    srv = servutil.Serve("-d", "none")
    bob = srv.line_client("bob")
    try:
        irssi(srv, "alice")
        wait_pane(lambda p: "MOTD File is missing" in p, "the end of the welcome")
        p = pane()
        t.ok("Welcome to the axon IRC network" in p, "001 shown")
        t.ok("Capabilities acknowledged" in p, "CAP negotiated")
        keys("/join #lobby")
        wait_pane(lambda p: "[ bob]" in p and "alice]" in p, "the names")
        servutil.want(bob, "alice joined lobby")
        keys("hello from irssi")
        servutil.want(bob, "[lobby] alice: hello from irssi")
        keys("/me dances")
        servutil.want(bob, "[lobby] * alice dances")
        bob.send("hi irssi, bob here\n")
        wait_pane(lambda p: "< bob> hi irssi, bob here" in p, "bob's message")
        bob.send("/me waves\n")
        wait_pane(lambda p: "* bob waves" in p, "bob's action")
        bob.send("/msg alice a secret\n")
        deadline = time.monotonic() + axtest.TIMEOUT
        while "a secret" not in pane():  # in a query window of its own, once it is there
            t.ok(time.monotonic() < deadline, "irssi never showed bob's DM:\n%s" % pane())
            keys("/window goto bob")
            time.sleep(0.3)
        keys("/msg bob secret back")
        servutil.want(bob, "[dm] alice: secret back")
        keys("/quit leaving")
        servutil.want(bob, "alice left lobby")
    finally:
        stop_irssi()
        bob.close()
        srv.stop()


@t.test
def irssi_signs_in_with_sasl():
    if not shutil.which("irssi") or not shutil.which("tmux"):
        print("# SKIP irssi or tmux missing (scripts/deps.sh test)")
        return
    passwd = os.path.join(TMP, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", passwd, "carol", "carol pw"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    srv = servutil.Serve("-d", "none", "--password-file", passwd, "--anonymous", "read")
    try:
        conf = ("servers = ( { address = \"127.0.0.1\"; chatnet = \"axon\"; port = \"%d\";"
                " autoconnect = \"yes\"; } );\n"
                "chatnets = { axon = { type = \"IRC\"; sasl_mechanism = \"PLAIN\";"
                " sasl_username = \"carol\"; sasl_password = \"carol pw\"; }; };\n"
                "settings = { core = { nick = \"carol\"; }; };\n" % srv.irc_port)
        irssi(srv, "carol", conf)
        p = wait_pane(lambda p: "MOTD File is missing" in p or "SASL" in p and "failed" in p,
                      "the welcome")
        t.ok("You are now logged in as carol" in p, "SASL in the status window:\n%s" % p)
        t.ok("Welcome to the axon IRC network, carol!" in p, "the nick is carol's:\n%s" % p)
        keys("/join #lobby")
        wait_pane(lambda p: "[ carol]" in p, "the join")
        keys("signed message")
        deadline = time.monotonic() + axtest.TIMEOUT
        while True:
            h = servutil.curl_json("-u", "carol:carol pw", srv.base + "/api/history/chat/lobby")
            if "signed message" in str(h):
                break
            t.ok(time.monotonic() < deadline, "the message in the history: %r\n%s" % (h, pane()))
            time.sleep(0.1)
        t.ok("carol" in str(h), "sent as carol: %r" % h)
    finally:
        stop_irssi()
        srv.stop()


@t.test
def irssi_shows_notice_nick_and_part_reason():
    """A NOTICE is a notice in irssi, a rename is "is now known as" (not a
    part and a join), a PART shows its reason."""
    if not shutil.which("irssi") or not shutil.which("tmux"):
        print("# SKIP irssi or tmux missing (scripts/deps.sh test)")
        return
    srv = servutil.Serve("-d", "none")
    bob = axtest.Lines.connect("127.0.0.1", srv.irc_port)
    try:
        irssi(srv, "alice")
        wait_pane(lambda p: "MOTD File is missing" in p, "the end of the welcome")
        keys("/join #lobby")
        wait_pane(lambda p: "alice]" in p, "the names")
        bob.send("NICK bob\r\nUSER bob 0 * :Bob\r\nJOIN #lobby\r\n")
        servutil.want(bob, " 366 ")
        wait_pane(lambda p: "bob" in p and "has joined #lobby" in p, "bob's join")
        bob.send("NOTICE #lobby :heads up\r\n")
        p = wait_pane(lambda p: "heads up" in p, "the notice")
        t.ok("-bob:#lobby- heads up" in p, "shown as a notice:\n%s" % p)
        bob.send("NICK robert\r\n")
        p = wait_pane(lambda p: "bob is now known as robert" in p, "the nick change")
        t.ok("has left" not in p and "has quit" not in p, "no part or quit:\n%s" % p)
        bob.send("PART #lobby :see you\r\n")
        p = wait_pane(lambda p: "robert" in p and "has left #lobby" in p, "the part")
        t.ok("[see you]" in p, "the reason shown:\n%s" % p)
    finally:
        stop_irssi()
        bob.close()
        srv.stop()

if __name__ == "__main__":
    t.main()
