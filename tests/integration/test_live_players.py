#!/usr/bin/python3
# axon-test: one backend (outside players: what they check does not depend on the event loop)
"""The live relay's outputs in the players the issue names besides ffplay
(test_live.py covers ffmpeg/ffprobe): ffmpeg publishes a test pattern with
a tone (H.264 + AAC) over RTMP, then

- VLC (Debian's vlc-bin + vlc-plugin-base, headless `cvlc -I dummy`) opens
  /live/NAME.flv, /live/NAME.ts, /live/NAME/index.m3u8 and RTMP playback
  (rtmp://HOST/live/NAME, VLC's libavformat access) for a few seconds and writes what it demuxed to a file (`--sout #duplicate`): a
  remux (read back by ffprobe: H.264 320x240 + AAC, timestamps advancing
  without a jump) and a transcode to MPEG-2 + MP2 (frames there exist only
  if VLC decoded the H.264 and the AAC).  VLC refuses to run as root (CI
  runs as root), so it runs as `nobody` through setpriv.  Against a name
  that is not live, VLC writes no video: the check can fail.
- mpegts.js (npm, compiled in from web/vendor as /static/mpegts.js) in
  headless Chromium: the live page /live/NAME?mode=flv plays /live/NAME.flv
  (HTTP-FLV through Media Source Extensions) and ?mode=ts /live/NAME.ts
  (MPEG-TS): the video's time advances
  with the stream's width and height, nothing is wider than a 390 px
  phone; against a name that is not live it reports an error and shows no
  frame.  With AXON_SCREENS=DIR, screenshots at 1280 and 390 px."""
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
import servutil  # noqa: E402
from liveutil import probe, publish, wait_live  # noqa: E402

t = axtest.Tests("live relay: VLC and mpegts.js play HTTP-FLV, MPEG-TS, HLS and RTMP", alarm=200)
TMP = tempfile.mkdtemp(prefix="axon-players-")
os.chmod(TMP, 0o777)  # VLC runs as nobody and writes here
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def vlc(url, tag, seconds):
    """cvlc (as nobody) plays url for `seconds`; (remux file, transcode file, log)."""
    remux = os.path.join(TMP, tag + "-remux.ts")
    dec = os.path.join(TMP, tag + "-decoded.ts")
    sout = ('#duplicate{dst=std{access=file,mux=ts,dst=%s},'
            'dst="transcode{vcodec=mp2v,vb=800,acodec=mpga,ab=128}:'
            'std{access=file,mux=ts,dst=%s}"}' % (remux, dec))
    env = dict(os.environ, HOME=TMP)
    p = subprocess.run(NOBODY + ["cvlc", "-I", "dummy", "--no-plugins-cache", "--no-media-library",
                                 "--run-time=%d" % seconds, "--play-and-exit",
                                 "--sout", sout, url],
                       capture_output=True, timeout=seconds + 60, env=env)
    return remux, dec, p.stderr.decode(errors="replace")


def packets(path, kind):
    """ffprobe's stream of `kind` and its packet count, or (None, 0)."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None, 0
    p = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-show_entries",
                        "stream=codec_type,codec_name,width,height,nb_read_packets",
                        "-of", "compact", path], capture_output=True, timeout=30)
    for ln in p.stdout.decode().splitlines():
        f = dict(kv.split("=", 1) for kv in ln.split("|")[1:] if "=" in kv)
        if f.get("codec_type") == kind:
            return f, int(f.get("nb_read_packets") or 0)
    return None, 0


def check_vlc(url, what, seconds=5):
    remux, dec, log = vlc(url, what.replace(" ", "-").replace("/", ""), seconds)
    note = log[-600:]
    t.ok(os.path.exists(remux) and os.path.getsize(remux) > 0,
         "%s: VLC wrote its remux: %s" % (what, note))
    streams, pk = probe(remux)
    t.ok("video" in streams and "audio" in streams,
         "%s: VLC demuxed video and audio: %r" % (what, list(streams)))
    v = streams["video"]
    t.eq((v["codec_name"], v["width"], v["height"]), ("h264", 320, 240), "%s: video" % what)
    t.eq(streams["audio"]["codec_name"], "aac", "%s: audio" % what)
    t.ok(len(pk) >= 30, "%s: %d video frames in %d s" % (what, len(pk), seconds))
    pts = sorted(p[0] for p in pk)
    gaps = [b - a for a, b in zip(pts, pts[1:])]
    t.ok(pts[-1] - pts[0] >= 1.0 and max(gaps) < 0.1,
         "%s: timestamps advance %.2f s, largest step %.3f s" %
         (what, pts[-1] - pts[0], max(gaps)))
    vd, nv = packets(dec, "video")
    ad, na = packets(dec, "audio")
    t.ok(vd and vd.get("codec_name") == "mpeg2video" and nv >= 20,
         "%s: VLC decoded the H.264 (re-encoded frames: %r %d)" % (what, vd, nv))
    t.ok(ad and na >= 20, "%s: VLC decoded the AAC (re-encoded: %r %d)" % (what, ad, na))
    print("# %s: %d H.264 frames over %.2f s remuxed; %d video and %d audio frames decoded "
          "and re-encoded" % (what, len(pk), pts[-1] - pts[0], nv, na), flush=True)


@t.test
def vlc_plays_flv_ts_hls_and_rtmp():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "cam", 90)
    try:
        wait_live(srv, "cam", 3, pub)
        check_vlc(srv.base + "/live/cam.flv", "VLC HTTP-FLV")
        check_vlc(srv.base + "/live/cam.ts", "VLC MPEG-TS")
        check_vlc(srv.base + "/live/cam/index.m3u8", "VLC HLS", seconds=8)
        check_vlc("rtmp://127.0.0.1:%d/live/cam" % srv.rtmp_port, "VLC RTMP")
        # a name that is not live: no video, so the checks above can fail
        remux, dec, _ = vlc(srv.base + "/live/nosuch.flv", "nosuch", 3)
        t.eq(packets(remux, "video")[1] + packets(dec, "video")[1], 0,
             "VLC on a name that is not live: no video frames")
        t.ok(pub.running(), "the publisher is still on%s" % pub.err_note())
    finally:
        pub.stop()
        srv.stop()


VIDEO = "document.querySelector('video')"


def page_plays(b, srv, mode, what):
    """/live/demo?mode=MODE in a new page: mpegts.js plays; the page's number."""
    pg = b.open(srv.base + "/live/demo?mode=" + mode, 1280, 800)
    b.wait("window.mpegts && window.flvPlayer", ms=15000, page=pg,
           what="%s: mpegts.js loaded (/static/mpegts.js) and its player made" % what)
    b.wait(VIDEO + ".videoWidth > 0", ms=20000, page=pg,
           what="%s frames (%r)" % (what, b.eval("window.liveState.errors", page=pg)))
    b.wait("document.querySelector('#status.up')", page=pg, what="%s: the page live" % what)
    t.eq(b.eval("[window.liveState.mode, document.querySelector('#status').textContent]",
                page=pg), [mode, "live (%s)" % what], "the page's mode and status")
    t0 = b.eval(VIDEO + ".currentTime", page=pg)
    time.sleep(2)
    t1 = b.eval(VIDEO + ".currentTime", page=pg)
    t.ok(t1 - t0 > 1.2, "%s: the video's time advances: %.2f -> %.2f" % (what, t0, t1))
    t.eq(b.eval("[%s.videoWidth, %s.videoHeight]" % (VIDEO, VIDEO), page=pg), [320, 240],
         "%s: the video's width and height" % what)
    t.eq(b.eval("window.liveState.errors", page=pg), [], "%s: mpegts.js errors" % what)
    print("# mpegts.js %s: currentTime %.2f -> %.2f in 2 s at 320x240" % (what, t0, t1),
          flush=True)
    return pg


@t.test
def mpegts_js_plays_http_flv_and_ts_in_chromium():
    env = pageutil.available()
    t.ok(env is not None, "chromium and playwright-core")
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "demo", 60)
    b = None
    try:
        wait_live(srv, "demo", 1, pub)
        b = pageutil.Browser(env)
        pg = page_plays(b, srv, "flv", "HTTP-FLV")
        b.shot("live-flv", page=pg)
        b.do("viewport", page=pg, w=390, h=844)
        time.sleep(1)
        t.eq(b.eval(pageutil.OVERFLOW_JS, page=pg), [],
             "at 390x844, elements wider than the viewport")
        b.shot("live-flv-phone", page=pg)
        pg = page_plays(b, srv, "ts", "MPEG-TS")
        b.shot("live-ts", page=pg)
        # the other modes link to these
        pg = b.open(srv.base + "/live/demo?mode=hls", 1280, 800)
        t.eq(b.eval("[...document.querySelectorAll('#mode a')].map((a) => a.textContent)",
                    page=pg), ["low latency", "LL-HLS", "HTTP-FLV", "MPEG-TS"],
             "the HLS page's links to the other players")
        # a name that is not live: an error, no frame
        for mode in ("flv", "ts"):
            pg = b.open(srv.base + "/live/nosuch?mode=" + mode, 1280, 800)
            b.wait("window.liveState.errors.length > 0", ms=15000, page=pg,
                   what="%s: an error for a name that is not live" % mode)
            t.eq(b.eval(VIDEO + ".videoWidth", page=pg), 0,
                 "%s: no frame from a name that is not live" % mode)
            t.ok(b.eval("document.querySelector('#status.down') !== null", page=pg),
                 "%s: the page says it is down" % mode)
        ev = b.do("events")
        t.eq(ev["external"], [], "requests outside the server")
    finally:
        pub.stop()
        srv.stop()


t.main()
