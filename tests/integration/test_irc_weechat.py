#!/usr/bin/python3
"""test_irc_weechat: WeeChat (Debian's weechat-headless) on the IRC
gateway, with a real netcat on the line chat in the same room.

- weechat registers (its server buffer logs the 001 text and the end of
  the welcome), joins #lobby through its FIFO and sees the nc user in the
  names (and itself as the channel's operator: the first IRC user there,
  without authentication);
- what weechat says (a message, /me) reaches nc; what nc says shows in
  weechat's #lobby buffer; nc's /msg opens weechat's private buffer.

- weechat's /notify uses MONITOR (ISUPPORT offers it): it logs when the
  watched nick connects and when it quits.

weechat is driven through its FIFO plugin and read through its logger
(flushed at once), so no terminal is needed."""
import glob
import os
import shutil
import tempfile
import time

import axtest
import ircutil
import servutil

t = axtest.Tests("axon serve: IRC with WeeChat", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-weechat-")


def log_text(home, name):
    path = os.path.join(home, "logs", name)
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_log(home, name, pred, what, timeout=3 * axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_text(home, name)
        if pred(text):
            return text
        time.sleep(0.1)
    logs = {os.path.basename(p): log_text(home, os.path.basename(p))
            for p in glob.glob(os.path.join(home, "logs", "*"))}
    raise axtest.Failure("weechat never logged %s in %s; logs: %r" % (what, name, logs))


def fifo(home, line):
    """A command for weechat: `buffer *text` (text: a /command or a message)."""
    paths = glob.glob(os.path.join(home, "weechat_fifo_*"))
    if not paths:
        raise axtest.Failure("no weechat FIFO in %s" % home)
    fd = os.open(paths[0], os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@t.test
def weechat_talks_with_nc():
    if not shutil.which("weechat-headless") or not shutil.which("nc"):
        print("# SKIP weechat-headless or nc missing (scripts/deps.sh test)")
        return
    srv = servutil.Serve("-d", "none")
    nc = servutil.nc_client(srv, "bob")
    home = tempfile.mkdtemp(dir=TMP)
    cmds = ";".join([
        "/set logger.file.flush_delay 0",
        "/set logger.file.mask \"$plugin.$name.weechatlog\"",
        "/server add axon 127.0.0.1/%d -notls -nicks=wendy -username=wendy -realname=Wendy"
        % srv.irc_port,
        "/connect axon",
    ])
    wee = axtest.Proc(["weechat-headless", "--dir", home, "-r", cmds], capture=True)
    try:
        srvlog = "irc.server.axon.weechatlog"
        wait_log(home, srvlog, lambda s: "Welcome to the axon IRC network" in s, "the welcome")
        wait_log(home, srvlog, lambda s: "MOTD File is missing" in s, "the end of the welcome")
        deadline = time.monotonic() + axtest.TIMEOUT
        while not glob.glob(os.path.join(home, "weechat_fifo_*")):
            if time.monotonic() > deadline:
                raise axtest.Failure("weechat made no FIFO")
            time.sleep(0.1)
        fifo(home, "irc.server.axon */join #lobby")
        chan = "irc.axon.#lobby.weechatlog"
        wait_log(home, chan, lambda s: "2 nicks (1 op, 0 voices, 1 normal)" in s, "the count")
        fifo(home, "irc.axon.#lobby */names")
        text = wait_log(home, chan, lambda s: "Nicks #lobby:" in s, "the names")
        t.ok("@wendy" in text and "bob" in text,
             "bob from the line chat, and wendy as the operator (the first IRC user there)")
        nc.wait_output(lambda o: b"wendy joined lobby" in o, what="wendy's join on nc")
        fifo(home, "irc.axon.#lobby *hello from weechat")
        nc.wait_output(lambda o: b"[lobby] wendy: hello from weechat" in o,
                       what="weechat's message on nc")
        fifo(home, "irc.axon.#lobby */me waves")
        nc.wait_output(lambda o: b"* wendy waves" in o, what="weechat's /me on nc")
        servutil.nc_say(nc, "hi weechat, nc here")
        wait_log(home, chan, lambda s: "bob\thi weechat, nc here" in s, "nc's message")
        servutil.nc_say(nc, "/msg wendy a secret")
        wait_log(home, "irc.axon.bob.weechatlog", lambda s: "a secret" in s, "nc's DM")
        fifo(home, "irc.server.axon */msg bob right back")
        nc.wait_output(lambda o: b"wendy: right back" in o, what="weechat's DM on nc")
        fifo(home, "irc.server.axon */quit")
        wee.wait()
    finally:
        wee.stop()
        nc.stop()
        srv.stop()


@t.test
def weechat_notify_uses_monitor():
    if not shutil.which("weechat-headless"):
        print("# SKIP weechat-headless missing (scripts/deps.sh test)")
        return
    srv = servutil.Serve("-d", "none")
    home = tempfile.mkdtemp(dir=TMP)
    cmds = ";".join([
        "/set logger.file.flush_delay 0",
        "/set logger.file.mask \"$plugin.$name.weechatlog\"",
        "/server add axon 127.0.0.1/%d -notls -nicks=wendy -username=wendy -realname=Wendy"
        % srv.irc_port,
        "/connect axon",
    ])
    wee = axtest.Proc(["weechat-headless", "--dir", home, "-r", cmds], capture=True)
    bob = None
    try:
        srvlog = "irc.server.axon.weechatlog"
        wait_log(home, srvlog, lambda s: "MOTD File is missing" in s, "the end of the welcome")
        deadline = time.monotonic() + axtest.TIMEOUT
        while not glob.glob(os.path.join(home, "weechat_fifo_*")):
            if time.monotonic() > deadline:
                raise axtest.Failure("weechat made no FIFO")
            time.sleep(0.1)
        fifo(home, "irc.server.axon */notify add bob axon")
        wait_log(home, srvlog, lambda s: "notify: bob is offline" in s, "731 for bob at once")
        bob = ircutil.Irc.open(srv)
        bob.cmd("NICK bob")
        bob.cmd("USER bob 0 * :Bob")
        bob.numeric("422", "bob's welcome")
        wait_log(home, srvlog, lambda s: "notify: bob (~bob@127.0.0.1) has connected" in s,
                 "bob's arrival (730)")
        bob.cmd("QUIT :bye")
        text = wait_log(home, srvlog, lambda s: "notify: bob has quit" in s, "bob's QUIT (731)")
        t.ok(text.index("is offline") < text.index("has connected") < text.index("has quit"),
             "weechat's notify: offline, connected, quit")
        fifo(home, "irc.server.axon */quit")
        wee.wait()
    finally:
        if bob:
            bob.close()
        wee.stop()
        srv.stop()


if __name__ == "__main__":
    t.main()
