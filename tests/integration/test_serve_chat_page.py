#!/usr/bin/python3
# axon-test: one backend (what it checks does not depend on the event loop)
"""The chat page of axon serve as a product, in headless Chromium with a
netcat line-chat user (alice) beside it:

- at phone size (390x844) nothing is wider than the viewport, the log has
  the width, rooms and people are drawers behind header buttons;
- a message typed while the server is down is shown pending and delivered
  once the server is back (same port, same data); one "joined" line per
  user however often the page reconnects, and the reconnect is marked;
- the line chat's commands work in the page (/nick as others see it, /me,
  /join, /who, /help, //text, unknown ones), and the name changes from a
  form in the page, never a native prompt();
- own messages are marked, multi-line payloads keep their line breaks, a
  UDP sender shows as a device, the Join button is there and not clipped;
- direct messages: `/msg NAME text` or a click on a name in the people
  list; only the recipient's page (or line session) shows it, marked
  private; the sender's copy says to whom and that it was sent.

With AXON_SCREENS=DIR, screenshots of the page go to DIR."""

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
from servutil import Serve, Sse, Udp, curl_json, nc_client, nc_say, publish  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: the chat page (phone layout, offline queue, commands)", alarm=360)

LOG = "[...document.querySelectorAll('#log > .msg')]"


def log_lines(b, page=0):
    return b.eval(LOG + ".map((e) => e.textContent)", page=page)


def wait_log(b, text, page=0, cls="", ms=10000):
    """Wait for a log line (with the classes `cls`, e.g. '.mine') holding `text`."""
    js = "[...document.querySelectorAll('#log > .msg%s')].some((e) => e.textContent.includes(%s))" % (
        cls, json.dumps(text))
    return b.wait(js, ms=ms, page=page, what="a log line%s with %r; log: %r" % (
        cls, text, log_lines(b, page)[-12:] if b.proc.running() else "?"))


def say(b, text, page=0):
    b.do("fill", page=page, sel="#text", text=text)
    b.do("press", page=page, sel="#text", key="Enter")


def count(b, text, page=0):
    return sum(text in x for x in log_lines(b, page))


def open_chat(b, srv, name, w=1280, h=800):
    page = b.open(srv.base + "/?name=" + name, w=w, h=h)
    b.wait("document.querySelector('#status.up') && [...document.querySelectorAll('#people li')]"
           ".some((li) => li.textContent === %s)" % json.dumps(name), page=page,
           what="the page online with %s present" % name)
    return page


def visible(b, sel, page=0):
    return b.eval("(() => { const e = document.querySelector(%s); return !!e && e.getClientRects().length > 0 "
                  "&& getComputedStyle(e).visibility !== 'hidden'; })()" % json.dumps(sel), page=page)


def rect(b, sel, page=0):
    return b.eval("(() => { const r = document.querySelector(%s).getBoundingClientRect(); "
                  "return {l: r.left, r: r.right, w: r.width, h: r.height}; })()" % json.dumps(sel),
                  page=page)


@t.test
def phone_layout():
    srv = Serve()
    udp = Udp(srv)
    b = pageutil.Browser(ENV)
    open_chat(b, srv, "webby", 390, 844)
    publish(srv, "chat/lobby", "line one\nline two\nline three", sender="poet")
    publish(srv, "chat/lobby", "https://example.invalid/" + "x" * 300, sender="linker")
    t.eq(udp.ask("PUB chat/lobby 21.5 degrees").strip(), "OK chat/lobby 3", "UDP publish")
    wait_log(b, "21.5 degrees")
    t.eq(b.eval("[innerWidth, innerHeight]"), [390, 844], "viewport")
    t.eq(b.eval(pageutil.OVERFLOW_JS), [], "at 390x844, elements wider than the viewport")
    t.ok(rect(b, "#log")["w"] >= 370, "the log has the width: %r" % rect(b, "#log"))
    say(b, "hello from a phone")
    wait_log(b, "hello from a phone", cls=".mine:not(.pending)")
    b.shot("chat-phone")
    t.eq(b.eval(pageutil.OVERFLOW_JS), [], "at 390x844 with more messages, elements wider than the viewport")
    t.ok(not visible(b, "#rooms") and not visible(b, "#people"), "rooms and people are folded away")
    t.ok(visible(b, "#menubtn") and visible(b, "#peoplebtn"), "header buttons for them")
    t.ok(visible(b, "#send"), "the Send button")

    # multi-line payload: its line breaks kept
    txt = "[...document.querySelectorAll('#log .msg')].find((e) => e.textContent.includes('line one'))" \
          ".querySelector('.text')"
    t.eq(b.eval(txt + ".innerText"), "line one\nline two\nline three", "multi-line payload as typed")
    t.ok(b.eval(txt + ".getClientRects().length") >= 3 or
         b.eval(txt + ".getBoundingClientRect().height") > 2.5 * b.eval(
             "parseFloat(getComputedStyle(%s).lineHeight)" % txt), "three lines on screen")
    # typed with Shift+Enter: sent and shown with the line break
    b.do("fill", sel="#text", text="typed line")
    b.do("press", sel="#text", key="Shift+Enter")
    b.do("press", sel="#text", key="b")
    b.do("press", sel="#text", key="Enter")
    wait_log(b, "typed line", cls=".mine:not(.pending)")
    t.eq(curl_json(srv.base + "/api/history/chat/lobby")["messages"][-1]["payload"], "typed line\nb",
         "Shift+Enter is a line break in the message")
    # the UDP sender: a device label, its address beside it
    dev = "[...document.querySelectorAll('#log .msg')].find((e) => e.textContent.includes('21.5 degrees'))"
    t.eq(b.eval(dev + ".querySelector('.who .badge').textContent"), "udp", "UDP sender label")
    t.ok(b.eval(dev + ".querySelector('.who .addr').textContent").startswith("127.0.0.1:"),
         "the device's address, secondary")

    # the rooms drawer: the list, the join form with its button, inside the screen
    b.do("click", sel="#menubtn")
    t.ok(visible(b, "#rooms") and visible(b, "#joinbtn"), "the rooms drawer opens with a Join button")
    t.eq(b.eval(pageutil.OVERFLOW_JS), [], "rooms drawer open, elements wider than the viewport")
    b.shot("chat-phone-rooms")
    b.do("fill", sel="#newroom", text="garden")
    b.do("click", sel="#joinbtn")
    b.wait("document.querySelector('#roomname').textContent === 'garden' && !document.body.classList"
           ".contains('show-rooms')", what="joined garden from the drawer")
    b.do("click", sel="#peoplebtn")
    b.wait("[...document.querySelectorAll('#people li')].some((li) => li.textContent === 'webby')",
           what="webby listed in garden")
    t.ok(visible(b, "#people"), "the people drawer opens")
    t.eq(b.eval(pageutil.OVERFLOW_JS), [], "people drawer open, elements wider than the viewport")
    b.shot("chat-phone-people")
    ev = b.do("events")
    t.eq(ev["errors"], [], "page errors")
    t.eq(ev["external"], [], "requests outside the server")


@t.test
def offline_message_and_reconnect():
    srv = Serve()
    b = pageutil.Browser(ENV)
    open_chat(b, srv, "webby")
    alice = nc_client(srv, "alice")
    wait_log(b, "alice joined")
    b.wait("[...document.querySelectorAll('#people li')].some((li) => li.textContent === 'alice')",
           what="alice listed")

    srv.signal(signal.SIGKILL)
    srv.wait()
    b.wait("!document.querySelector('#status.up')", what="the page notices the server is gone")
    say(b, "typed while offline")
    wait_log(b, "typed while offline", cls=".pending")
    wait_log(b, "connection lost")
    t.eq(b.eval("document.querySelector('#text').value"), "", "the input is free for the next one")
    time.sleep(1.0)
    t.eq(count(b, "typed while offline"), 1, "shown once, pending")
    b.shot("chat-desktop-offline")

    srv2 = Serve(data=srv.data, ports=srv.ports())
    sse = Sse(srv2, "topic=chat/lobby&since=0")
    alice2 = nc_client(srv2, "alice")
    b.wait("document.querySelector('#status.up') && !document.querySelector('#log .pending')",
           ms=15000, what="back online with nothing pending")
    wait_log(b, "typed while offline", cls=".mine:not(.pending)")
    evs = sse.wait_events(1, timeout=10)
    t.eq([(e["json"]["sender"], e["json"]["payload"]) for e in evs], [("webby", "typed while offline")],
         "a second client (SSE, since=0) got the offline message, once")
    alice2.wait_output(lambda o: b"* webby joined lobby" in o, what="alice sees webby again")
    wait_log(b, "reconnected")
    nc_say(alice2, "welcome back")
    wait_log(b, "welcome back")
    t.eq(count(b, "typed while offline"), 1, "the offline message once in the log")
    t.eq(count(b, "webby joined"), 1, "one 'webby joined' line after the server came back")
    t.eq(count(b, "alice joined"), 1, "one 'alice joined' line after alice came back")

    # a dropped connection (no server restart): again no new joined lines
    b.eval("state.ws.close()")
    b.wait("document.querySelector('#status.up') && document.querySelectorAll('#log .note.conn.up').length === 2",
           what="reconnected a second time")
    nc_say(alice2, "still here")
    wait_log(b, "still here")
    time.sleep(0.5)
    t.eq(count(b, "webby joined"), 1, "one 'webby joined' line after two reconnects")
    t.eq(count(b, "alice joined"), 1, "one 'alice joined' line after two reconnects")
    t.eq(count(b, "left"), 0, "no 'left' line for a reconnect: %r" % log_lines(b)[-10:])
    mine = b.eval("[...document.querySelectorAll('#log .msg.mine')].map((e) => e.textContent)")
    t.ok(all("webby" in x for x in mine) and any("typed while offline" in x for x in mine),
         "own messages marked .mine: %r" % mine)
    t.ok(not any("welcome back" in x for x in mine), "alice's are not .mine")
    h = curl_json(srv2.base + "/api/history/chat/lobby")
    t.eq([m["payload"] for m in h["messages"]].count("typed while offline"), 1, "stored once")
    t.eq(b.do("events")["errors"], [], "page errors")


@t.test
def silent_server():
    """A server that stops answering (SIGSTOP) without closing: the page
    notices within seconds, says it is offline, and comes back."""
    srv = Serve()
    b = pageutil.Browser(ENV)
    open_chat(b, srv, "webby")
    srv.signal(signal.SIGSTOP)
    try:
        b.wait("!document.querySelector('#status.up')", ms=20000, what="offline while the server is silent")
        wait_log(b, "connection lost")
    finally:
        srv.signal(signal.SIGCONT)
    b.wait("document.querySelector('#status.up')", ms=15000, what="online again")
    say(b, "after the silence")
    wait_log(b, "after the silence", cls=".mine:not(.pending)")


@t.test
def server_without_history():
    """A server restarted without its store numbers the room from 1 again:
    what is said after that is shown, not taken for old messages."""
    srv = Serve("--data", "none")
    b = pageutil.Browser(ENV)
    open_chat(b, srv, "webby")
    for i in range(3):
        publish(srv, "chat/lobby", "old %d" % i, sender="curl")
    wait_log(b, "old 2")
    srv.signal(signal.SIGKILL)
    srv.wait()
    b.wait("!document.querySelector('#status.up')", what="the page notices the server is gone")
    say(b, "first after the restart")
    Serve("--data", "none", ports=srv.ports())
    wait_log(b, "first after the restart", cls=".mine:not(.pending)", ms=15000)
    wait_log(b, "restarted without this room's history", cls=".note")


@t.test
def slash_commands():
    srv = Serve()
    alice = nc_client(srv, "alice")
    b = pageutil.Browser(ENV)
    open_chat(b, srv, "webby")
    alice.wait_output(lambda o: b"* webby joined lobby" in o, what="alice sees webby")

    say(b, "/who")
    wait_log(b, "in lobby: alice, webby", cls=".note")
    say(b, "/me waves")
    alice.wait_output(lambda o: b"[lobby] * webby waves\n" in o, what="/me as an action")
    wait_log(b, "waves", cls=".action.mine")
    say(b, "//slash text")
    alice.wait_output(lambda o: b"[lobby] webby: /slash text\n" in o, what="//text")
    say(b, "/help")
    wait_log(b, "/nick NAME", cls=".note")
    say(b, "/frob")
    wait_log(b, "unknown command /frob (try /help)", cls=".note")
    say(b, "/nick")
    wait_log(b, "usage: /nick NAME", cls=".note")
    say(b, "/nick kim")
    alice.wait_output(lambda o: b"* webby left lobby\n" in o and b"* kim joined lobby\n" in o,
                      what="alice sees the rename")
    wait_log(b, "you are now kim")
    t.eq(b.eval("document.querySelector('#myname').textContent"), "kim", "the header shows the name")
    say(b, "after the rename")
    alice.wait_output(lambda o: b"[lobby] kim: after the rename\n" in o, what="kim's message")
    wait_log(b, "after the rename", cls=".mine")
    t.eq(sorted(curl_json(srv.base + "/api/presence/lobby")["names"]), ["alice", "kim"], "presence")
    nc_say(alice, "/nick alicia")
    wait_log(b, "alice is now known as alicia")
    t.eq(count(b, "alice left"), 0, "a rename is not shown as leave + join")
    t.eq(count(b, "webby left") + count(b, "kim joined"), 0, "nor the page's own")
    nc_say(alice, "a reply\nfrom alice")
    wait_log(b, "from alice")
    b.shot("chat-desktop")

    # the name from the page's own form, no native prompt()
    b.do("click", sel="#me")
    b.wait("document.querySelector('#namedlg').open", what="the name form opens")
    b.do("fill", sel="#nameinput", text="bad name!")
    b.do("click", sel="#namesave")
    wait_err = "document.querySelector('#nameerr').textContent.length > 0"
    b.wait(wait_err, what="a bad name is refused in the form")
    b.do("fill", sel="#nameinput", text="kimberly")
    b.do("click", sel="#namesave")
    b.wait("!document.querySelector('#namedlg').open", what="the form closes")
    alice.wait_output(lambda o: b"* kimberly joined lobby\n" in o, what="alice sees kimberly")

    say(b, "/join dev")
    alice.wait_output(lambda o: b"* kimberly left lobby\n" in o, what="alice sees kimberly go")
    b.wait("document.querySelector('#roomname').textContent === 'dev'", what="room dev")
    say(b, "hello dev")
    wait_log(b, "hello dev", cls=".mine:not(.pending)")
    t.eq([m["payload"] for m in curl_json(srv.base + "/api/history/chat/dev")["messages"]], ["hello dev"],
         "the message went to chat/dev")
    say(b, "/join bad/room")
    wait_log(b, "a room name is 1 to 64", cls=".note")
    say(b, "/history 5")
    wait_log(b, "end of history")
    t.ok(b.eval("document.querySelector('#log .msg.history').textContent.includes('hello dev')"),
         "/history shows the room's messages")
    say(b, "/quit")
    b.wait("!document.querySelector('#status.up')", what="/quit closes the connection")
    wait_log(b, "you left", cls=".note")
    say(b, "back again")
    wait_log(b, "back again", cls=".mine:not(.pending)")
    t.eq([m["payload"] for m in curl_json(srv.base + "/api/history/chat/dev")["messages"]],
         ["hello dev", "back again"], "after /quit, a message brings the page back")

    # the Join button in the rooms pane, whole
    t.ok(visible(b, "#joinbtn"), "a Join button")
    pane, inp, btn = rect(b, "#roomspane"), rect(b, "#newroom"), rect(b, "#joinbtn")
    t.ok(btn["r"] <= pane["r"] and inp["l"] >= pane["l"] and inp["w"] >= 60,
         "join form inside its pane: %r %r %r" % (pane, inp, btn))
    b.shot("chat-desktop-dev")
    ev = b.do("events")
    t.eq(ev["dialogs"], [], "native dialogs")
    t.eq(ev["errors"], [], "page errors")

    # a first visit without a name: the page's form, not prompt()
    p2 = b.open(srv.base + "/", 390, 844)
    b.wait("document.querySelector('#namedlg').open", page=p2, what="the name form on a first visit")
    b.shot("chat-phone-name", page=p2)
    t.eq(b.eval(pageutil.OVERFLOW_JS, page=p2), [], "name form at 390 px, elements wider than the viewport")
    b.do("fill", page=p2, sel="#nameinput", text="newcomer")
    b.do("press", page=p2, sel="#nameinput", key="Enter")
    b.wait("document.querySelector('#status.up')", page=p2, what="the newcomer online")
    alice.wait_output(lambda o: b"* newcomer joined lobby\n" in o, what="alice sees the newcomer")
    t.eq(b.do("events")["dialogs"], [], "native dialogs")


@t.test
def direct_messages():
    """/msg in the page and a click on a name: only the recipient's page
    shows the DM, marked private; the sender's copy is marked sent."""
    srv = Serve()
    alice = nc_client(srv, "alice")
    b = pageutil.Browser(ENV)
    pa = open_chat(b, srv, "ann")
    pb = open_chat(b, srv, "ben")
    pc = open_chat(b, srv, "cat", 390, 844)
    say(b, "hello room", page=pa)
    wait_log(b, "hello room", page=pc)
    say(b, "/msg ben psst, this is only for you", page=pa)
    wait_log(b, "psst, this is only for you", page=pb, cls=".dm")
    wait_log(b, "psst, this is only for you", page=pa, cls=".dm.out:not(.pending)")
    line = "[...document.querySelectorAll('#log .msg.dm')].find((e) => e.textContent.includes('psst'))"
    t.eq(b.eval(line + ".querySelector('.dmtag').textContent", page=pb), "private", "ben's: private")
    t.eq(b.eval(line + ".querySelector('.body').textContent", page=pb),
         "privateann\u2192you:psst, this is only for you", "from ann to ben")
    t.eq(b.eval(line + ".querySelector('.body').textContent", page=pa),
         "privateann\u2192ben:psst, this is only for yousent", "ann's copy: to ben, sent")
    t.eq(b.eval(line + ".querySelector('.state').textContent", page=pa), "sent", "and sent")
    say(b, "after the dm", page=pa)
    wait_log(b, "after the dm", page=pc)
    t.eq(count(b, "psst", page=pc), 0, "cat's page does not show ben's DM")
    alice.wait_output(lambda o: b"[lobby] ann: after the dm" in o, what="alice sees the room")
    t.ok(b"psst" not in alice.output(), "nor does alice's line session")

    # ben answers by clicking ann in the people list
    b.eval("[...document.querySelectorAll('#people li')].find((l) => l.textContent === 'ann').click()",
           page=pb)
    t.eq(b.eval("document.querySelector('#text').value", page=pb), "/msg ann ", "the box says /msg ann")
    t.eq(b.eval("document.activeElement.id", page=pb), "text", "and has the focus")
    b.do("press", page=pb, sel="#text", key="o")
    b.do("press", page=pb, sel="#text", key="k")
    b.do("press", page=pb, sel="#text", key="Enter")
    wait_log(b, "ok", page=pa, cls=".dm.in")
    # across gateways: the line chat and the page
    nc_say(alice, "/msg cat hello cat, from a terminal")
    wait_log(b, "hello cat, from a terminal", page=pc, cls=".dm")
    say(b, "/msg alice hi terminal", page=pc)
    alice.wait_output(lambda o: b"[dm] cat: hi terminal\n" in o, what="alice's [dm] line")
    say(b, "/msg bad/name x", page=pa)
    wait_log(b, "is not a user name", page=pa, cls=".note")
    say(b, "/msg ben", page=pa)
    wait_log(b, "usage: /msg NAME TEXT", page=pa, cls=".note")
    t.eq(count(b, "hi terminal", page=pb) + count(b, "hello cat", page=pb), 0, "ben saw none of cat's")

    # phone: the people drawer starts a DM too
    b.do("click", page=pc, sel="#peoplebtn")
    b.eval("[...document.querySelectorAll('#people li')].find((l) => l.textContent === 'ben').click()",
           page=pc)
    t.eq(b.eval("document.querySelector('#text').value", page=pc), "/msg ben ", "from the drawer")
    t.ok(not visible(b, "#people", page=pc), "the drawer closed")
    b.do("fill", page=pc, sel="#text", text="/msg ben a longer private note from a phone, to see how it wraps")
    b.do("press", page=pc, sel="#text", key="Enter")
    wait_log(b, "to see how it wraps", page=pc, cls=".dm.out:not(.pending)")
    wait_log(b, "to see how it wraps", page=pb, cls=".dm")
    t.eq(b.eval(pageutil.OVERFLOW_JS, page=pc), [], "DMs at 390 px, elements wider than the viewport")
    b.shot("chat-dm-phone", page=pc)
    b.shot("chat-dm-desktop", page=pb)
    b.do("viewport", page=pb, w=390, h=844)
    t.eq(b.eval(pageutil.OVERFLOW_JS, page=pb), [], "ben at 390 px, elements wider than the viewport")
    b.shot("chat-dm-phone-ben", page=pb)
    b.do("viewport", page=pc, w=1280, h=800)
    b.shot("chat-dm-desktop-cat", page=pc)
    ev = b.do("events")
    t.eq(ev["errors"], [], "page errors")


t.main()
