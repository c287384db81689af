#!/usr/bin/python3
# axon-test: one backend (a browser page: what it checks does not depend on the event loop)
"""Low-Latency HLS in headless Chromium: ffmpeg publishes a test pattern
with a tone (H.264 + AAC, 1 s GOP) over RTMP; the page /live/NAME?mode=llhls
plays /live/NAME/ll.m3u8 through hls.js (npm, compiled in) with
lowLatencyMode on.  hls.js sees an LL-HLS playlist (parts, blocking
reloads), loads parts, the video's time advances with the stream's width
and height, without player errors and with nothing fetched from
elsewhere."""
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

t = axtest.Tests("axon serve: hls.js plays Low-Latency HLS in Chromium", alarm=240)

# Counts the parts hls.js loads (set up once window.hls exists).
COUNT_PARTS = """(() => { if (window.llParts === undefined) { window.llParts = 0;
  window.hls.on(Hls.Events.FRAG_LOADED, (e, d) => { if (d.part) window.llParts++; }); }
  return true; })()"""


@t.test
def hlsjs_low_latency_mode_plays_the_parts():
    srv = Serve()
    pub = liveutil.publish(srv.rtmp_port, "demo", 150, size="640x360", zerolatency=True)
    b = None
    try:
        deadline = time.monotonic() + 20
        while True:
            code, out, _ = servutil.curl(srv.base + "/live/demo/ll.m3u8")
            if code == 0 and out.count("#EXTINF") >= 2:
                break
            t.ok(time.monotonic() < deadline and pub.running(),
                 "LL-HLS segments%s" % pub.err_note())
            time.sleep(0.2)
        b = pageutil.Browser(ENV)
        b.open(srv.base + "/live/demo?mode=llhls", 1280, 800)
        b.wait("window.Hls && window.hls && document.querySelector('#status.up')", ms=20000,
               what="hls.js loaded and the LL-HLS playlist parsed")
        b.eval(COUNT_PARTS)
        t.eq(b.eval("window.hls.config.lowLatencyMode"), True, "hls.js in lowLatencyMode")
        b.wait("document.querySelector('video').videoWidth > 0", ms=30000, what="video frames")
        b.wait("(() => { const d = window.hls.levels[0] && window.hls.levels[0].details; "
               "return d && d.partList && d.partList.length > 0; })()", ms=20000,
               what="hls.js sees the parts")
        d = b.eval("(() => { const d = window.hls.levels[0].details; return {block: "
                   "d.canBlockReload, target: d.partTarget, holdback: d.partHoldBack, "
                   "parts: d.partList.length}; })()")
        t.eq(d["block"], True, "hls.js: canBlockReload: %r" % d)
        t.ok(d["target"] > 0 and d["holdback"] >= 3 * d["target"] - 1e-9, "part target and hold-back: %r" % d)
        b.wait("window.llParts >= 5", ms=60000, what="parts loaded by hls.js")
        t0 = b.eval("document.querySelector('video').currentTime")
        time.sleep(3)
        t1 = b.eval("document.querySelector('video').currentTime")
        t.ok(t1 - t0 > 1.5, "the video's time advances: %.2f -> %.2f" % (t0, t1))
        t.eq(b.eval("[document.querySelector('video').videoWidth, "
                    "document.querySelector('video').videoHeight]"), [640, 360], "the size")
        t.eq(b.eval("window.liveState.errors"), [], "player errors")
        lat = b.eval("window.hls.latency")
        t.ok(lat is not None and lat >= 0, "hls.js reports a latency (%r s)" % lat)
        b.shot("live-llhls")
        ev = b.do("events")
        t.eq(ev["errors"], [], "page errors")
        t.eq(ev["external"], [], "requests outside the server")
    finally:
        pub.stop()
        srv.stop()


t.main()
