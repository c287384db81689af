#!/usr/bin/python3
"""axon serve end to end with a browser: the chat page in headless Chromium
(playwright-core), a netcat line-chat client, a UDP client and curl on the
HTTP API all in room lobby.  Each one's message reaches all the others, the
page shows presence and, after a reload, the history; the dashboard loads;
the pages make no request outside the server."""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import nodeutil  # noqa: E402
from servutil import Serve, nc_client, Udp, curl_json, publish  # noqa: E402

if not os.path.exists("/usr/bin/chromium"):
    print("not ok 1 - /usr/bin/chromium is not installed (scripts/deps.sh test installs it)")
    sys.exit(1)
ENV = nodeutil.ensure(("playwright-core",))
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: browser, netcat, UDP and curl in one room", alarm=240)


@t.test
def four_clients_one_room():
    srv = Serve()
    nc = nc_client(srv, "alice")
    udp = Udp(srv)
    t.eq(udp.ask("SUB chat/lobby"), "OK SUB chat/lobby 60", "UDP subscribe")

    page = axtest.Proc(["node", nodeutil.script("chat_page.js"), srv.base, "webby"],
                       stdin=subprocess.PIPE, capture=True, env=ENV)
    page.wait_output(lambda o: b"READY" in o or b"FAIL" in o, timeout=90, what="the page")
    t.ok(b"READY" in page.output(), page.output().decode(errors="replace")[-600:])

    # the page's message reached netcat and UDP
    nc.wait_output(lambda o: b"[lobby] webby: hello from chromium\n" in o, what="page -> netcat")
    t.ok(b"* webby joined lobby" in nc.output(), "netcat saw the page join")
    t.eq(udp.recv_until("MSG"), "MSG chat/lobby 1 webby hello from chromium", "page -> UDP")
    p = curl_json(srv.base + "/api/presence/lobby")
    t.eq(sorted(p["names"]), ["alice", "webby"], "presence while both are there")

    # each of the others says something
    nc.p.stdin.write(b"hello from netcat\n")
    nc.p.stdin.flush()
    t.eq(udp.recv_until("MSG"), "MSG chat/lobby 2 alice hello from netcat", "netcat -> UDP")
    t.eq(Udp(srv).ask("PUB chat/lobby hello from udp"), "OK chat/lobby 3", "UDP publish")
    nc.wait_output(lambda o: b"hello from udp\n" in o, what="UDP -> netcat")
    t.ok(udp.recv_until("MSG").endswith("hello from udp"), "UDP -> UDP")
    t.eq(publish(srv, "chat/lobby", "hello from curl", sender="curl")["seq"], 4, "curl publish")
    nc.wait_output(lambda o: b"[lobby] curl: hello from curl\n" in o, what="curl -> netcat")
    t.ok(udp.recv_until("MSG").endswith("hello from curl"), "curl -> UDP")

    page.p.stdin.write(b"hello from netcat\nhello from udp\nhello from curl\nEND\n")
    page.p.stdin.flush()
    page.wait_output(lambda o: b'"log"' in o or b"FAIL" in o, timeout=90, what="the report")
    t.exits(page, 0, timeout=60)
    lines = page.output().decode(errors="replace").strip().splitlines()
    rep = json.loads(lines[-1])
    for who in ("webby:hello from chromium", "alice:hello from netcat", "curl:hello from curl"):
        t.ok(any(who in x for x in rep["log"]), "the page shows %r: %r" % (who, rep["log"]))
    t.ok(any("hello from udp" in x for x in rep["log"]), "the page shows the UDP message")
    t.eq(sorted(rep["people"]), ["alice", "webby"], "presence on the page")
    t.eq(sum("hello from" in x for x in rep["history"]), 4,
         "after a reload: the history, once each (%r)" % rep["history"])
    t.ok("lobby" in rep["rooms"], "rooms list")
    t.ok("websocket" in rep["dashboard"] and "line" in rep["dashboard"], rep["dashboard"])
    t.eq(rep["external"], [], "requests outside the server")

    h = curl_json(srv.base + "/api/history/chat/lobby")
    t.eq([(m["seq"], m["sender"]) for m in h["messages"]],
         [(1, "webby"), (2, "alice"), (3, h["messages"][2]["sender"]), (4, "curl")],
         "history in order")


t.main()
