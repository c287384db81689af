#!/usr/bin/python3
"""The chat page with a token, in headless Chromium, on a server with
--auth-secret and anonymous access off: /?token=T signs in (the token goes
as the first WebSocket message), the page's name is the token's user, and
what it says is published under that name; a token without the right to
publish gets the server's error in the log; a page without a token gets
no messages of the room.  Direct messages between signed-in pages reach
the recipient's page only, from the token's name."""

import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
from servutil import Serve, curl  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: the chat page with a token", alarm=200)
TMP = tempfile.mkdtemp(prefix="axon-chat-token-")
SECRET = os.path.join(TMP, "secret")
with open(SECRET, "w") as f:
    f.write("s" * 48 + "\n")


def token(user, *args):
    return subprocess.run([axtest.axon_bin(), "token", "-s", SECRET, "-u", user] + list(args),
                          capture_output=True, text=True, check=True, timeout=10).stdout.strip()


def wait_log(b, text, page=0, cls=""):
    js = ("[...document.querySelectorAll('#log > .msg%s')].some((e) => e.textContent.includes(%s))"
          % (cls, json.dumps(text)))
    return b.wait(js, page=page, what="a log line%s with %r" % (cls, text))


def say(b, text, page=0):
    b.do("fill", page=page, sel="#text", text=text)
    b.do("press", page=page, sel="#text", key="Enter")


def history(srv, topic, tok):
    _, out, _ = curl("-H", "Authorization: Bearer " + tok, srv.base + "/api/history/" + topic)
    return [(m["sender"], m["payload"]) for m in json.loads(out)["messages"]]


@t.test
def page_signs_in_with_its_token():
    srv = Serve("--auth-secret", SECRET)
    reader = token("root", "--admin", "--sub", "#")
    b = pageutil.Browser(ENV)
    b.open(srv.base + "/?name=mallory&token=" + token("alice", "-p", "chat/lobby",
                                                       "-S", "chat/lobby"))
    b.wait("document.querySelector('#status.up') && "
           "document.querySelector('#myname').textContent === 'alice'",
           what="online as alice (not the ?name= given)")
    say(b, "hello with a token")
    wait_log(b, "hello with a token", cls=".mine:not(.pending)")
    t.eq(history(srv, "chat/lobby", reader), [("alice", "hello with a token")],
         "published as alice")

    p2 = b.open(srv.base + "/?token=" + token("bob", "-S", "chat/lobby"))
    b.wait("document.querySelector('#myname').textContent === 'bob'", page=p2, what="bob")
    wait_log(b, "hello with a token", page=p2)  # he may read the lobby's history
    say(b, "bob may not write", page=p2)
    wait_log(b, "forbidden", page=p2)
    t.eq(len(history(srv, "chat/lobby", reader)), 1, "bob's line was not published")

    p3 = b.open(srv.base + "/?name=anon")
    b.wait("!document.querySelector('#status.up') || "
           "[...document.querySelectorAll('#log > .msg')].some((e) => "
           "e.textContent.includes('unauthorized'))", page=p3, what="refused without a token")
    t.ok(not b.eval("[...document.querySelectorAll('#log > .msg')].some((e) => "
                    "e.textContent.includes('hello with a token'))", page=p3),
         "no messages without a token")
    t.eq(b.do("events")["errors"], [], "page errors")


@t.test
def direct_messages_between_signed_in_pages():
    """alice's /msg reaches bob's page only, from alice (the token's name);
    carol, signed in too, sees nothing of it; dave, whose token does not
    grant user/+/inbox, gets the server's refusal on his line."""
    srv = Serve("--auth-secret", SECRET)
    grant = ["-p", "chat/#", "-p", "user/+/inbox", "-S", "chat/#"]
    b = pageutil.Browser(ENV)
    pages = {}
    for name, args in (("alice", grant), ("bob", grant), ("carol", grant),
                       ("dave", ["-p", "chat/#", "-S", "chat/#"])):
        pages[name] = b.open(srv.base + "/?token=" + token(name, *args))
        b.wait("document.querySelector('#status.up') && "
               "document.querySelector('#myname').textContent === %s" % json.dumps(name),
               page=pages[name], what="online as " + name)
    say(b, "/msg bob for your eyes only", page=pages["alice"])
    wait_log(b, "for your eyes only", page=pages["bob"], cls=".dm")
    wait_log(b, "for your eyes only", page=pages["alice"], cls=".dm.out:not(.pending)")
    t.eq(b.eval("[...document.querySelectorAll('#log .msg.dm')].find((e) => e.textContent"
                ".includes('eyes only')).querySelector('.who').textContent", page=pages["bob"]),
         "alice", "from alice")
    say(b, "/msg bob not allowed", page=pages["dave"])
    wait_log(b, "not sent: forbidden", page=pages["dave"], cls=".dm.failed")
    say(b, "after the dms", page=pages["alice"])
    wait_log(b, "after the dms", page=pages["carol"])
    for who in ("carol", "dave"):
        t.ok(not b.eval("[...document.querySelectorAll('#log > .msg')].some((e) => "
                        "e.textContent.includes('eyes only'))", page=pages[who]),
             "%s's page does not show bob's DM" % who)
    t.ok(not b.eval("[...document.querySelectorAll('#log > .msg')].some((e) => "
                    "e.textContent.includes('not allowed'))", page=pages["bob"]),
         "dave's refused DM never reached bob")
    t.eq(b.do("events")["errors"], [], "page errors")


t.main()
