#!/usr/bin/python3
# axon-test: one backend (what it checks does not depend on the event loop)
"""The dashboard of axon serve in headless Chromium: the message-rate
chart has a time axis and a value axis and its line fills the width of the
time window; when the server is killed the page says it is disconnected
and greys out the last numbers (they stop being shown as current); when the
server is back it is live again.  Nothing is wider than a 390 px phone.

With AXON_SCREENS=DIR, screenshots of the page go to DIR."""

import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
from servutil import Serve, Udp  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: the dashboard (axes, stale data)", alarm=200)


def traffic(srv, seconds, stop):
    """A few messages a second over UDP, more and more."""
    u = Udp(srv)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end and not stop.is_set():
        n += 1
        for _ in range(1 + n // 4):
            u.send("PUB sensors/demo %d" % n)
        time.sleep(0.25)


def plot_js(part):
    return "(() => { const s = document.querySelector('#chart'); %s })()" % part


@t.test
def chart_axes_and_stale_state():
    srv = Serve()
    stop = threading.Event()
    th = threading.Thread(target=traffic, args=(srv, 30, stop), daemon=True)
    th.start()
    b = pageutil.Browser(ENV)
    b.open(srv.base + "/dashboard", 1280, 800)
    b.wait("document.querySelector('#status.up')", what="the dashboard live")
    # seven seconds of samples: more than the shortest window (5 s)
    b.wait("document.querySelectorAll('#chart .plot').length === 1 && "
           "(document.querySelector('#chart .plot').getAttribute('d').match(/L/g) || []).length >= 6",
           ms=15000, what="six segments of the rate line")
    xs = b.eval(plot_js("return [...s.querySelectorAll('.axis.x text')].map((e) => e.textContent);"))
    ys = b.eval(plot_js("return [...s.querySelectorAll('.axis.y text')].map((e) => e.textContent);"))
    t.ok(len(xs) >= 3 and "now" in xs, "time axis labels: %r" % xs)
    t.ok(len(ys) >= 3 and ys[0] == "0", "value axis labels: %r" % ys)
    # the line spans the plot: from the left axis to the right end
    box = b.eval(plot_js("const p = s.querySelector('.plot').getBBox(), "
                         "a = s.querySelector('.axis.x line').getBBox(); "
                         "return {x: p.x, w: p.width, ax: a.x, aw: a.width};"))
    t.ok(box["w"] >= 0.8 * box["aw"] and box["x"] <= box["ax"] + 0.2 * box["aw"],
         "the line fills the time window: %r" % box)
    t.ok(not b.eval("document.body.classList.contains('stale')"), "not stale while live")
    b.shot("dashboard-desktop")

    stop.set()
    th.join()
    up = b.eval("document.querySelector('#uptime').textContent")
    srv.signal(signal.SIGKILL)
    srv.wait()
    b.wait("document.body.classList.contains('stale')", ms=8000, what="the stale state")
    st = b.eval("document.querySelector('#status').textContent")
    t.ok("disconnected" in st, "status says disconnected: %r" % st)
    t.ok(b.eval("document.querySelector('#banner').offsetHeight > 0 && "
                "document.querySelector('#banner').textContent.includes('not current')"),
         "a banner says the numbers are not current")
    b.wait("parseFloat(getComputedStyle(document.querySelector('.card')).opacity) < 0.7",
           what="the cards greyed out")
    t.ok(b.eval("document.querySelectorAll('#chart .nodata:not(.gap)').length === 1"), "the chart marks no data")
    time.sleep(2.5)
    t.eq(b.eval("document.querySelector('#uptime').textContent"), up, "the last uptime kept (greyed)")
    b.shot("dashboard-desktop-stale")

    srv2 = Serve(data=srv.data, ports=srv.ports())
    b.wait("document.querySelector('#status.up') && !document.body.classList.contains('stale')",
           ms=8000, what="live again")
    t.ok(srv2.running(), "server 2")
    b.wait("document.querySelectorAll('#chart .nodata.gap').length === 1", ms=8000,
           what="the time without answers marked on the chart")
    b.shot("dashboard-desktop-after")

    b.do("viewport", w=390, h=844)
    b.wait("document.querySelector('#status.up')", what="live at phone size")
    time.sleep(1.2)
    t.eq(b.eval(pageutil.OVERFLOW_JS), [], "at 390x844, elements wider than the viewport")
    b.shot("dashboard-phone")
    ev = b.do("events")
    t.eq(ev["errors"], [], "page errors")
    t.eq(ev["external"], [], "requests outside the server")


t.main()
