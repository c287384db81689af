#!/usr/bin/python3
# axon-test: one backend (a browser page: what it checks does not depend on the event loop)
"""The live page /live/NAME in headless Chromium: ffmpeg publishes a test
pattern with a tone (H.264 + AAC) over RTMP; the page plays it as
fragmented MP4 over a WebSocket (/live/NAME/ws) with Media Source
Extensions.  The video's time advances with the stream's width and height,
the player stays near the live edge (little buffered ahead), the stream's
numbers show (the hub's keyframe latency among them); the chat room
beside it (the hub topic chat/live/NAME) shows a message published over
HTTP and sends the page's own; with ?mode=hls it plays HLS through hls.js (npm, compiled
in from web/vendor) at the same size; the page fetches nothing from elsewhere, and nothing is
wider than a 390 px phone.  The dashboard lists the stream, linked to
its page.  With AXON_SCREENS=DIR, screenshots of the page
at 1280 and 390 px go to DIR."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import liveutil  # noqa: E402
import pageutil  # noqa: E402
import servutil  # noqa: E402
from servutil import Serve  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: the live page plays WebSocket fMP4 in Chromium", alarm=240)


@t.test
def chromium_plays_the_stream():
    srv = Serve()
    pub = liveutil.publish(srv.rtmp_port, "demo", 120, size="640x360", zerolatency=True)
    b = None
    try:
        liveutil.wait_live(srv, "demo", 1, pub, timeout=10)
        b = pageutil.Browser(ENV)
        b.open(srv.base + "/live/demo", 1280, 800)
        b.wait("document.querySelector('#status.up')", what="the page live")
        b.wait("document.querySelector('video').videoWidth > 0", ms=15000, what="video frames")
        t0 = b.eval("document.querySelector('video').currentTime")
        time.sleep(2)
        t1 = b.eval("document.querySelector('video').currentTime")
        t.ok(t1 - t0 > 1.2, "the video's time advances: %.2f -> %.2f" % (t0, t1))
        size = b.eval("[document.querySelector('video').videoWidth, "
                      "document.querySelector('video').videoHeight]")
        t.eq(size, [640, 360], "the video's width and height")
        ahead = b.eval("(() => { const v = document.querySelector('video'), b = v.buffered; "
                       "return b.length ? b.end(b.length - 1) - v.currentTime : -1; })()")
        t.ok(0 <= ahead < 2.0, "near the live edge: %.2f s buffered ahead" % ahead)
        b.wait("document.querySelector('#size').textContent === '640×360'", what="the size shown")
        st = b.eval("window.liveState")
        t.eq(st["errors"], [], "player errors")
        b.wait("document.querySelector('#latency').textContent.includes('p50')",
               what="the hub's latency shown")
        # the chat room beside the stream: chat/live/demo on the hub
        b.wait("!document.querySelector('#chatsend').disabled", what="the chat connected")
        code, _, _ = servutil.curl("-d", "hello from curl", srv.base + "/api/publish/chat/live/demo")
        t.eq(code, 0, "published to chat/live/demo over HTTP")
        b.wait("document.querySelector('#chatlog').textContent.includes('hello from curl')",
               what="a message from another gateway in the page's chat")
        b.do("fill", sel="#chatname", text="viewer1")
        b.do("press", sel="#chatname", key="Tab")
        b.do("fill", sel="#chattext", text="hi from the page")
        b.do("press", sel="#chattext", key="Enter")
        b.wait("document.querySelector('#chatlog').textContent.includes('hi from the page')",
               what="the page's own message back")
        h = servutil.curl_json(srv.base + "/api/history/chat/live/demo")
        t.eq([(m["sender"], m["payload"]) for m in h["messages"]],
             [("http", "hello from curl"), ("viewer1", "hi from the page")],
             "the room's history, from both")
        b.shot("live-desktop")
        b.do("viewport", w=390, h=844)
        time.sleep(1)
        t.eq(b.eval(pageutil.OVERFLOW_JS), [], "at 390x844, elements wider than the viewport")
        b.shot("live-phone")
        # HLS through hls.js (from web/vendor, compiled in), in a second page
        pg = b.open(srv.base + "/live/demo?mode=hls", 1280, 800)
        b.wait("window.Hls && document.querySelector('#status.up')", ms=40000, page=pg,
               what="hls.js loaded and the playlist parsed")
        b.wait("document.querySelector('video').videoWidth > 0", ms=20000, page=pg,
               what="HLS frames")
        t0 = b.eval("document.querySelector('video').currentTime", page=pg)
        time.sleep(2)
        t1 = b.eval("document.querySelector('video').currentTime", page=pg)
        t.ok(t1 - t0 > 1.2, "HLS: the video's time advances: %.2f -> %.2f" % (t0, t1))
        t.eq(b.eval("[document.querySelector('video').videoWidth, "
                    "document.querySelector('video').videoHeight]", page=pg), [640, 360],
             "HLS: the size")
        t.eq(b.eval("window.liveState.errors", page=pg), [], "HLS player errors")
        b.shot("live-hls", page=pg)
        # the dashboard lists the stream, with a link to its page
        dash = b.open(srv.base + "/dashboard", 1280, 800)
        b.wait("document.querySelector('#streams a[href=\"/live/demo\"]')", page=dash,
               what="the stream on the dashboard")
        b.wait("/kbit/.test(document.querySelector('#streams').textContent)", page=dash,
               what="its bitrate")
        row = b.eval("[...document.querySelector('#streams tbody tr').cells]"
                     ".map((c) => c.textContent)", page=dash)
        t.eq(row[:2], ["demo", "640×360"], "the dashboard's row: %r" % row)
        b.shot("live-dashboard", page=dash)
        b.do("viewport", page=dash, w=390, h=844)
        time.sleep(1)
        t.eq(b.eval(pageutil.OVERFLOW_JS, page=dash), [], "dashboard at 390x844, too wide")
        b.shot("live-dashboard-phone", page=dash)
        ev = b.do("events")
        t.eq(ev["errors"], [], "page errors")
        t.eq(ev["external"], [], "requests outside the server")
    finally:
        pub.stop()
        srv.stop()


t.main()
