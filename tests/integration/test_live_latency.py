#!/usr/bin/python3
# axon-test: one backend (a browser page: what it checks does not depend on the event loop)
"""Latency of the live relay (docs/streaming.md, issue 19's targets).

- In the hub: each video keyframe's time from its arrival to its hand-over
  to each viewer's connection, in /live/NAME/stats as latency_us (n, p50,
  p99, max): present, counted per keyframe and viewer, and small.
- Glass to glass (liveclock.py): ffmpeg stamps each frame with the wall
  clock as a barcode in the picture (x264 zerolatency, 1 s GOP, over
  RTMP); Chromium plays /live/NAME (WebSocket fMP4 into MSE), reads the
  barcode of each presented frame back from its pixels and compares it
  with the time the frame was shown.  The test holds it to bounds a
  busy CI machine (three backends at once, or ASan) keeps: p50 <= 1.5 s,
  p99 <= 3 s, at least 8 frames a second read back: a relay that held a
  segment or a GOP back fails them.  The issue's targets (p50 <= 600 ms,
  p99 <= 1 s, drift) are measured by bench/live-latency, for longer, and
  recorded in bench/RESULTS.md."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import liveclock  # noqa: E402
import pageutil  # noqa: E402
import servutil  # noqa: E402
from servutil import Serve  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: live latency, in the hub and glass to glass", alarm=120)


@t.test
def glass_to_glass():
    srv = Serve()
    base = int(time.time()) - 1
    pub = axtest.Proc(liveclock.ffmpeg_publish("rtmp://127.0.0.1:%d/live/clock" % srv.rtmp_port,
                                               base, 60))
    b = None
    try:
        deadline = time.monotonic() + 10
        while True:
            code, out, _ = servutil.curl(srv.base + "/live/clock/stats")
            if code == 0 and "\"mime\":\"video" in out:
                break
            t.ok(time.monotonic() < deadline and pub.running(),
                 "the stream went live%s" % pub.err_note())
            time.sleep(0.2)
        # a second viewer beside the page: HTTP-FLV, read by curl
        flv = axtest.Proc(["curl", "-sN", "-o", "/dev/null", srv.base + "/live/clock.flv"])
        b = pageutil.Browser(ENV)
        b.open(srv.base + "/live/clock", 1280, 800)
        b.wait("document.querySelector('video').videoWidth > 0", ms=15000, what="video frames")
        b.eval(liveclock.page_js())
        time.sleep(3)  # settle at the live edge
        start = len(liveclock.take(b))
        time.sleep(15)
        samples = liveclock.take(b, start)
        print("# buffered ahead at the end: %.3f s" % b.eval("window.liveState.ahead"))
        bad = b.eval("window.g2gBad")
        t.ok(len(samples) > 15 * 8, "frames read back: %d (%d unreadable)" % (len(samples), bad))
        t.ok(bad <= len(samples) // 100, "unreadable barcodes: %d" % bad)
        lat = liveclock.latencies(samples, base)
        p50, p99 = liveclock.pct(lat, 0.5), liveclock.pct(lat, 0.99)
        t.ok(min(lat) > 0, "no frame shown before it was made: min %.0f ms" % min(lat))
        t.ok(p50 <= 1500, "glass to glass p50 %.0f ms <= 1500 ms" % p50)
        t.ok(p99 <= 3000, "glass to glass p99 %.0f ms <= 3000 ms (max %.0f)" % (p99, max(lat)))
        # the picture's clock is the frame's timestamp (the fMP4 timeline
        # starts at the first frame): the barcode was read from the frame shown
        # (media time is in whole frames: within a frame; the others, a later
        # frame copied from a video that moved on, are not counted)
        ok = liveclock.consistent(samples)
        t.ok(len(ok) >= len(samples) * 0.9, "the barcode and the frame's media time agree: "
             "%d of %d" % (len(ok), len(samples)))
        st = servutil.curl_json(srv.base + "/live/clock/stats")
        L = st["latency_us"]
        t.ok(L["n"] >= 2 * 15, "keyframe deliveries measured in the hub: %d" % L["n"])
        t.ok(0 < L["p50"] <= L["p99"] <= L["max"], "hub latency p50 %d <= p99 %d <= max %d us"
             % (L["p50"], L["p99"], L["max"]))
        t.ok(L["p99"] < 250000, "hub: a keyframe reaches its viewers within 250 ms (p99 %d us)"
             % L["p99"])
        print("# glass to glass: n %d, p50 %.0f ms, p99 %.0f ms, max %.0f ms; hub keyframe "
              "ingest-to-delivery: n %d, p50 %d us, p99 %d us, max %d us"
              % (len(lat), p50, p99, max(lat), L["n"], L["p50"], L["p99"], L["max"]))
        flv.stop()
    finally:
        pub.stop()
        srv.stop()


t.main()
