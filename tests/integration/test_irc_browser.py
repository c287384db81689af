#!/usr/bin/python3
"""test_irc_browser: an IRC user (the npm irc-framework client), the chat
page in headless Chromium and a real netcat on the line chat, in one room.

- the page's hello reaches IRC (as PRIVMSG from webby!webby@ws) and nc;
- the IRC user's message reaches nc and shows on the page; nc's message
  reaches IRC and the page;
- the page lists the IRC user among the room's people, and IRC's NAMES
  (irc-framework's user list) has the page's and nc's users."""
import json
import os
import subprocess

import axtest
import nodeutil
import servutil

t = axtest.Tests("axon serve: IRC, Chromium on the chat page and nc in one room", alarm=240)
IRC_DIR = os.path.join(nodeutil.NODE_DIR, "irc")


def IrcFramework(env, port, nick):
    return nodeutil.IrcClient(env, port, nick, timeout=3 * axtest.TIMEOUT)


@t.test
def irc_chromium_and_nc_in_one_room():
    if not os.path.exists("/usr/bin/chromium"):
        print("# SKIP /usr/bin/chromium is not installed (scripts/deps.sh test)")
        return
    page_env = nodeutil.ensure(("playwright-core",))
    irc_env = nodeutil.ensure(("irc-framework",), where=IRC_DIR)
    if page_env is None or irc_env is None:
        return
    srv = servutil.Serve("-d", "none")
    nc = servutil.nc_client(srv, "alice")
    irc = IrcFramework(irc_env, srv.irc_port, "ircy")
    page = None
    try:
        irc.want(lambda e: e["ev"] == "registered", "registration")
        irc.do(join="#lobby")
        irc.want(lambda e: e["ev"] == "join" and e["nick"] == "ircy", "the JOIN")
        ul = irc.want(lambda e: e["ev"] == "userlist", "the user list")
        t.ok("alice" in ul["users"], "NAMES has nc's alice: %r" % ul["users"])
        page = axtest.Proc(["node", nodeutil.script("chat_page.js"), srv.base, "webby"],
                           stdin=subprocess.PIPE, capture=True, env=page_env)
        page.wait_output(lambda o: b"READY" in o or b"FAIL" in o, timeout=90, what="the page")
        t.ok(b"READY" in page.output(), page.output().decode(errors="replace")[-600:])
        irc.want(lambda e: e["ev"] == "join" and e["nick"] == "webby", "the page's JOIN on IRC")
        m = irc.want(lambda e: e["ev"] == "message" and e["nick"] == "webby", "the page's hello")
        t.eq((m["target"], m["message"], m["host"]), ("#lobby", "hello from chromium", "ws"),
             "page -> IRC")
        nc.wait_output(lambda o: b"[lobby] webby: hello from chromium\n" in o, what="page -> nc")
        irc.do(say="#lobby", text="hello from irc")
        nc.wait_output(lambda o: b"[lobby] ircy: hello from irc\n" in o, what="IRC -> nc")
        servutil.nc_say(nc, "hello from netcat")
        m = irc.want(lambda e: e["ev"] == "message" and e["nick"] == "alice", "nc's message")
        t.eq(m["message"], "hello from netcat", "nc -> IRC")
        page.p.stdin.write(b"hello from irc\nhello from netcat\nEND\n")
        page.p.stdin.flush()
        page.wait_output(lambda o: b'"log"' in o or b"FAIL" in o, timeout=90, what="the report")
        t.exits(page, 0, timeout=60)
        rep = json.loads(page.output().decode(errors="replace").strip().splitlines()[-1])
        t.ok(any("ircy" in x and "hello from irc" in x for x in rep["log"]),
             "IRC -> page: %r" % rep["log"])
        t.ok(any("alice" in x and "hello from netcat" in x for x in rep["log"]),
             "nc -> page: %r" % rep["log"])
        t.ok("ircy" in rep["people"], "the page lists the IRC user: %r" % rep["people"])
    finally:
        irc.stop()
        if page:
            page.stop()
        nc.stop()
        srv.stop()


if __name__ == "__main__":
    t.main()
