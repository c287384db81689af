#!/usr/bin/python3
# axon-test: one backend (a browser page: what it checks does not depend on the event loop)
"""The live page /live/NAME in headless Chromium with Opus: ffmpeg uploads
H.264 + Opus as MPEG-TS (POST /live/NAME); the page plays it as
fragmented MP4 over the WebSocket with Media Source Extensions
('video/mp4; codecs="avc1.…,opus"'): the video's time advances at the
stream's size and the Opus track is decoded (Chromium's
webkitAudioDecodedByteCount grows).  Over HLS (MPEG-TS segments, hls.js)
the video plays too (hls.js leaves Opus in MPEG-TS out: no sound there);
over Low-Latency HLS (ll.m3u8, fMP4 parts) video and sound.  An HEVC stream: this Chromium's MSE
does not take hvc1 (MediaSource.isTypeSupported is false, as on most
Linux builds without a platform decoder); the page says it cannot play it
instead of failing silently (test_live_codecs reads HEVC back with
ffprobe)."""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
import servutil  # noqa: E402
from liveutil import stats  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: the live page plays H.264 + Opus in Chromium", alarm=150)

VIDEO = {"h264": ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"],
         "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none"]}


def upload(srv, name, video, audio):
    return axtest.Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
                        "-f", "lavfi", "-i", "sine=frequency=440", "-t", "60"]
                       + VIDEO[video] + ["-g", "30", "-c:a", audio, "-f", "mpegts",
                                         "-method", "POST", "%s/live/%s" % (srv.base, name)])


def wait_mime(srv, name, pub):
    deadline = time.monotonic() + 20
    while True:
        s = stats(srv, name)
        if s and s["mime"]:
            return s["mime"]
        t.ok(time.monotonic() < deadline and pub.running(),
             "%s went live%s: %r" % (name, pub.err_note(), s))
        time.sleep(0.2)


def advances(b, page, t0, what):
    """The video's time goes 1.2 s past t0 (a loaded machine may stall a
    moment: up to 15 s), else the player's state in the failure."""
    js = ("(() => { const v = document.querySelector('video'), r = [];"
          " for (let i = 0; i < v.buffered.length; i++) r.push([v.buffered.start(i),"
          " v.buffered.end(i)]); return {t: v.currentTime, buffered: r, state: v.readyState,"
          " errors: window.liveState.errors}; })()")
    try:
        b.wait("document.querySelector('video').currentTime > %f" % (t0 + 1.2), ms=15000,
               page=page, what=what)
    except axtest.Failure as e:
        raise axtest.Failure("%s: from %.2f: %r" % (e, t0, b.eval(js, page=page)))


@t.test
def chromium_plays_h264_and_opus():
    srv = servutil.Serve()
    pub = upload(srv, "avcopus", "h264", "libopus")
    hevc = upload(srv, "hevc", "hevc", "aac")
    b = None
    try:
        mime = wait_mime(srv, "avcopus", pub)
        t.ok(mime.startswith('video/mp4; codecs="avc1.') and mime.endswith(',opus"'), mime)
        b = pageutil.Browser(ENV)
        b.open(srv.base + "/live/avcopus", 1280, 800)
        b.wait("document.querySelector('#status.up')", what="the page live")
        b.wait("document.querySelector('video').videoWidth > 0", ms=20000, what="video frames")
        v = "document.querySelector('video')"
        t0, a0 = b.eval("[%s.currentTime, %s.webkitAudioDecodedByteCount]" % (v, v))
        advances(b, 0, t0, "the video's time")
        a1 = b.eval("%s.webkitAudioDecodedByteCount" % v)
        t.ok(a1 > a0, "the Opus track is decoded: %d -> %d bytes" % (a0, a1))
        t.eq(b.eval("[%s.videoWidth, %s.videoHeight]" % (v, v)), [640, 360], "the size")
        t.eq(b.eval("window.liveState.errors"), [], "player errors")
        t.eq(b.eval("window.liveState.audio"), True, "the page knows it has sound")
        # HLS (MPEG-TS segments) through hls.js: the video plays; hls.js does
        # not demux Opus in MPEG-TS, so no sound there (docs/streaming.md)
        pg = b.open(srv.base + "/live/avcopus?mode=hls", 1280, 800)
        b.wait("document.querySelector('video').videoWidth > 0", ms=20000, page=pg,
               what="HLS frames")
        advances(b, pg, b.eval("%s.currentTime" % v, page=pg), "HLS: the video's time")
        # Low-Latency HLS (fMP4 parts) through hls.js: the video and its sound
        pg = b.open(srv.base + "/live/avcopus?mode=llhls", 1280, 800)
        b.wait("document.querySelector('video').videoWidth > 0", ms=20000, page=pg,
               what="LL-HLS frames")
        a0 = b.eval("%s.webkitAudioDecodedByteCount" % v, page=pg)
        advances(b, pg, b.eval("%s.currentTime" % v, page=pg), "LL-HLS: the video's time")
        a1 = b.eval("%s.webkitAudioDecodedByteCount" % v, page=pg)
        t.ok(a1 > a0, "LL-HLS: the Opus track is decoded: %d -> %d bytes" % (a0, a1))
        # HEVC: not in this Chromium's MSE; the page says so
        hmime = wait_mime(srv, "hevc", hevc)
        t.eq(b.eval("MediaSource.isTypeSupported(%r)" % hmime), False,
             "this Chromium's MSE and %s (if it plays HEVC now, test it here)" % hmime)
        pg = b.open(srv.base + "/live/hevc", 1280, 800)
        b.wait("window.liveState.errors.length", page=pg, what="the page's verdict on HEVC")
        t.eq(b.eval("window.liveState.errors", page=pg), ["unsupported " + hmime], "its error")
        t.ok("cannot play" in b.eval("document.querySelector('#status').textContent", page=pg),
             "the page says it cannot play HEVC (and stays so: no reconnecting)")
        b.shot("live-hevc-unplayable", page=pg)  # (with AXON_SCREENS=DIR)
        ev = b.do("events")
        t.eq(ev["errors"], [], "page errors")
    finally:
        pub.stop()
        hevc.stop()
        srv.stop()


t.main()
