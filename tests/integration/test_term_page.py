#!/usr/bin/python3
# axon-test: one backend (the page and xterm.js do not depend on the event loop)
"""The terminal page (/term/NAME) in headless Chromium, on a terminal served
by `axon term agent`:

- at 1280 px the page types `echo hello; tput cols` with real key presses
  and sees `hello` and its own column count (xterm.js's cols) from the
  remote shell;
- at 390 px (a phone) the page fits again, the remote shell's `tput cols`
  follows, and nothing is wider than the viewport;
- xterm.js comes from the hub itself (built in from web/vendor): the page
  makes no request elsewhere and has no script error;
- a watcher's page (read-only token) shows the same output, says it is
  read-only, and its keys do not reach the shell.

With AXON_SCREENS=DIR, screenshots of the page go to DIR."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
import termutil  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon term: the terminal page in Chromium", alarm=240)

SCREEN = """(() => { const b = axonTerm.term.buffer.active, out = [];
  for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
  return out.join('\\n'); })()"""


def type_keys(b, text, page=0):
    for ch in text:
        b.do("press", page=page, sel=".xterm-helper-textarea",
             key={" ": "Space", "\n": "Enter"}.get(ch, ch))


def wait_line(b, line, page=0, ms=10000):
    js = "%s.split('\\n').some((l) => l.trim() === %s)" % (SCREEN, json.dumps(line))
    try:
        b.wait(js, ms=ms, page=page)
    except axtest.Failure:
        raise axtest.Failure("the page never showed the line %r; it shows:\n%s" %
                             (line, b.eval(SCREEN, page=page).rstrip()[-800:]))


@t.test
def page_types_and_resizes():
    hub = termutil.Hub()
    hub.agent()
    hub.wait_log("agent box connected")
    b = pageutil.Browser(ENV)
    b.open(hub.base + "/term/box1?token=" + hub.tok["alice"], w=1280, h=800)
    b.wait("window.axonTerm && axonTerm.state.role === 'writer'", what="the page as the writer")
    hub.wait_log("session 1 started")
    b.wait("%s.includes('$')" % SCREEN, what="the remote prompt")
    cols = b.eval("axonTerm.term.cols")
    t.ok(cols > 100, "a 1280 px page has more than 100 columns: %d" % cols)
    type_keys(b, "echo hello; tput cols\n")
    wait_line(b, "hello")
    wait_line(b, str(cols))
    b.shot("term-1280")
    b.do("viewport", w=390, h=700)
    b.wait("axonTerm.term.cols < 60", what="fewer columns at 390 px")
    small = b.eval("axonTerm.term.cols")
    type_keys(b, "clear; tput cols\n")
    wait_line(b, str(small))
    wide = [e for e in b.eval(pageutil.OVERFLOW_JS)
            if not e.startswith("span.xterm-char-measure-element")]  # off-screen on purpose
    t.eq(wide, [], "elements wider than 390 px")
    b.shot("term-390")
    ev = b.do("events")
    t.eq(ev["external"], [], "requests outside the hub")
    t.eq(ev["errors"], [], "page errors")
    t.ok(b.eval("document.querySelector('.xterm-screen') !== null"), "xterm.js drew the screen")

    # a watcher's page: the same output, read-only
    b.open(hub.base + "/term/box1?token=" + hub.tok["bob"], w=1000, h=600)
    b.wait("window.axonTerm && axonTerm.state.role === 'watcher'", page=1,
           what="the second page as a watcher")
    wait_line(b, str(small), page=1)
    t.ok("read-only" in b.eval("document.getElementById('status').textContent", page=1),
         "the watcher's page says read-only")
    type_keys(b, "echo from-$((6*7))-watcher\n", page=1)
    type_keys(b, "echo writer-$((2*3))\n")
    wait_line(b, "writer-6", page=1)
    t.ok("from-42-watcher" not in b.eval(SCREEN), "the watcher's keys never reached the shell")


t.main()
