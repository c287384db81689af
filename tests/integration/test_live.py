#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_live: the live relay of `axon serve` (src/hub/live.c, gw_rtmp.c,
live_http.c; docs/streaming.md) with real tools: ffmpeg publishes a test
pattern with a tone (lavfi testsrc2 + sine, H.264 + AAC) over RTMP; ffprobe
reads it back as HTTP-FLV (/live/NAME.flv), over RTMP playback, as MPEG-TS
(/live/NAME.ts) and HLS (/live/NAME/index.m3u8 and its segments; both made
by FFmpeg's mpegts muxer in memory) with the right codecs, size and
continuous timestamps; each HLS segment starts with a keyframe; and as
fragmented MP4 over a WebSocket (/live/NAME/ws: the MIME type first, then
the init segment and a fragment per frame from the last keyframe).
ffmpeg also publishes over HTTP (POST /live/NAME with a chunked FLV body,
or an MPEG-TS one, demuxed by libavformat).

- A viewer that joins mid-stream starts at once from the last keyframe
  (the GOP cache): its first video packet is a keyframe, and its first
  timestamp is the stream's recent past, not the stream's start.
- /live lists the stream, /live/NAME/stats has its numbers; a name
  already published is refused to a second publisher; an unknown name
  is 404 over HTTP and NetStream.Play.StreamNotFound over RTMP.
- The stream's start and stop are events on the hub topic live/NAME;
  with --record DIR each publication is recorded as fragmented MP4.
- With authentication on, a publisher needs a token with a write grant
  on live/NAME (`?token=` on the stream key), and a viewer a read grant."""
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import axtest
import servutil
from liveutil import probe, publish, read_http, stats, token, wait_live, ws_fmp4

t = axtest.Tests("live streaming relay (RTMP in; HTTP-FLV and RTMP out)", alarm=170)
TMP = tempfile.mkdtemp(prefix="axon-live-")


def finish(srv, pub=None):
    """SIGTERM (a publisher maybe still on): a clean exit, and under the
    sanitizers no leak (FFmpeg's contexts freed) and no error."""
    srv.signal(15)
    st = srv.wait(10)
    err = srv.stderr()
    t.ok("Sanitizer" not in err and "runtime error" not in err, "sanitizer report: %s" % err[-2000:])
    t.eq(st, 0, "axon serve's exit status")
    if pub:
        pub.stop()


def check_media(path, what, min_s=1.0):
    streams, pk = probe(path)
    t.ok("video" in streams and "audio" in streams, "%s: streams %r" % (what, list(streams)))
    v, a = streams["video"], streams["audio"]
    t.eq((v["codec_name"], v["width"], v["height"]), ("h264", 320, 240), "%s video" % what)
    t.eq(a["codec_name"], "aac", "%s audio codec" % what)
    t.ok(len(pk) >= 30 * min_s * 0.8, "%s: only %d video packets" % (what, len(pk)))
    t.ok(pk[0][1], "%s starts with a keyframe: %r" % (what, pk[:3]))
    dts = sorted(p[0] for p in pk)
    gaps = [b - a for a, b in zip(dts, dts[1:])]
    t.ok(max(gaps) < 0.1, "%s: timestamps jump by %.3f s" % (what, max(gaps)))
    return pk


@t.test
def rtmp_in_http_flv_and_rtmp_out():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "cam1")
    try:
        wait_live(srv, "cam1", keyframes=2, pub=pub)
        with urllib.request.urlopen(srv.base + "/live", timeout=5) as r:
            names = [s["name"] for s in json.loads(r.read())["streams"]]
        t.ok("cam1" in names, "/live lists it: %r" % names)
        before = stats(srv, "cam1")
        flv = os.path.join(TMP, "cam1.flv")
        ctype, data = read_http(srv.base + "/live/cam1.flv", 2.0, flv)
        t.eq(ctype, "video/x-flv", "Content-Type")
        t.eq(data[:3], b"FLV", "an FLV header")
        pk = check_media(flv, "HTTP-FLV")
        # the GOP cache: it started at the last keyframe, not at the stream's start
        t.ok(pk[0][0] * 1000 >= before["last_ts"] - 1100,
             "starts from the last GOP: first pts %.3f s, stream at %d ms" %
             (pk[0][0], before["last_ts"]))
        out = os.path.join(TMP, "cam1-rtmp.flv")
        p = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                            "-i", "rtmp://127.0.0.1:%d/live/cam1" % srv.rtmp_port,
                            "-t", "1.5", "-c", "copy", out], capture_output=True, timeout=20)
        t.eq(p.returncode, 0, "ffmpeg plays over RTMP: %s" % p.stderr.decode()[-300:])
        check_media(out, "RTMP playback")
        t.exits(pub, 0, "the publisher")
        deadline = time.monotonic() + 5
        while stats(srv, "cam1") and time.monotonic() < deadline:
            time.sleep(0.1)
        t.ok(stats(srv, "cam1") is None, "the stream is gone once its publisher is")
        finish(srv)
    finally:
        pub.stop()
        srv.stop()


@t.test
def mpeg_ts_and_hls_by_libavformat():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "cam2", seconds=12)
    try:
        wait_live(srv, "cam2", keyframes=4, pub=pub)
        ts = os.path.join(TMP, "cam2.ts")
        ctype, data = read_http(srv.base + "/live/cam2.ts", 1.5, ts)
        t.eq(ctype, "video/mp2t", "Content-Type of .ts")
        t.eq(data[0], 0x47, "MPEG-TS sync byte")
        check_media(ts, "MPEG-TS")
        with urllib.request.urlopen(srv.base + "/live/cam2/index.m3u8", timeout=5) as r:
            t.eq(r.headers.get("Content-Type"), "application/vnd.apple.mpegurl", "playlist type")
            pl = r.read().decode()
        t.ok(pl.startswith("#EXTM3U") and "#EXT-X-TARGETDURATION:" in pl, pl)
        segs = [ln for ln in pl.splitlines() if ln and not ln.startswith("#")]
        t.ok(len(segs) >= 2, "segments in the playlist: %r" % pl)
        joined = os.path.join(TMP, "cam2-hls.ts")
        with open(joined, "wb") as out:
            for name in segs[-3:]:
                with urllib.request.urlopen(srv.base + "/live/cam2/" + name, timeout=5) as r:
                    seg = r.read()
                path = os.path.join(TMP, "cam2-" + name)
                with open(path, "wb") as f:
                    f.write(seg)
                _, pk = probe(path)
                t.ok(pk and pk[0][1], "HLS %s starts with a keyframe" % name)
                out.write(seg)
        check_media(joined, "HLS segments in a row", min_s=1.5)
        p = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name",
                            "-of", "csv=p=0", srv.base + "/live/cam2/index.m3u8"],
                           capture_output=True, timeout=20)
        t.eq(sorted(set(p.stdout.decode().split())), ["aac", "h264"],
             "ffprobe reads the HLS URL (%s)" % p.stderr.decode()[-300:])
        finish(srv, pub)  # stopped while publishing: the stream, its muxer and segments freed
    finally:
        pub.stop()
        srv.stop()


@t.test
def websocket_fmp4_for_media_source():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "cam3", seconds=6)
    try:
        wait_live(srv, "cam3", keyframes=2, pub=pub)
        mp4 = os.path.join(TMP, "cam3.mp4")
        first = ws_fmp4(srv, "cam3", 90, mp4)
        t.eq(first["type"], "init", "the first message")
        t.ok(first["mime"].startswith('video/mp4; codecs="avc1.') and "mp4a.40.2" in first["mime"],
             "the MIME type for MediaSource: %r" % first["mime"])
        t.eq((first["width"], first["height"]), (320, 240), "the size in the first message")
        check_media(mp4, "WebSocket fMP4 (init segment, then fragments from a keyframe)")
        finish(srv, pub)
    finally:
        pub.stop()
        srv.stop()


@t.test
def http_ingest_of_flv():
    srv = servutil.Serve()
    url = "%s/live/httpcam" % srv.base
    pub = axtest.Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                       "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
                       "-f", "lavfi", "-i", "sine=frequency=440", "-t", "5",
                       "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
                       "-f", "flv", url])
    try:
        wait_live(srv, "httpcam", keyframes=2, pub=pub)
        flv = os.path.join(TMP, "httpcam.flv")
        read_http(srv.base + "/live/httpcam.flv", 1.5, flv)
        check_media(flv, "HTTP-FLV of an HTTP-published stream")
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", "-",
                            url], input=b"\x47" * 4000, capture_output=True, timeout=20)
        t.eq(p.stdout, b"409", "a second publisher of the same name over HTTP")
        t.exits(pub, 0, "ffmpeg's HTTP upload")
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", "-",
                            url], input=b"\x00" * 4000, capture_output=True, timeout=20)
        t.eq(p.stdout, b"415", "a body that is neither FLV nor MPEG-TS")
        finish(srv)
    finally:
        pub.stop()
        srv.stop()


@t.test
def names_busy_and_unknown():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "one", seconds=5)
    try:
        wait_live(srv, "one", pub=pub)
        second = publish(srv.rtmp_port, "one", seconds=2)
        st = second.wait(15)
        t.ok(st != 0, "a second publisher of the same name is refused")
        try:
            urllib.request.urlopen(srv.base + "/live/nobody.flv", timeout=5)
            t.ok(False, "an unknown stream is served")
        except urllib.error.HTTPError as e:
            t.eq(e.code, 404, "an unknown stream over HTTP")
        p = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "5000000",
                            "rtmp://127.0.0.1:%d/live/nobody" % srv.rtmp_port],
                           capture_output=True, timeout=20)
        t.ok(p.returncode != 0, "an unknown stream over RTMP is refused")
    finally:
        pub.stop()
        srv.stop()


@t.test
def stream_keys_checked_by_auth():
    secret = os.path.join(TMP, "secret")
    with open(secret, "w") as f:
        f.write("s" * 48 + "\n")
    os.chmod(secret, 0o600)
    srv = servutil.Serve("--auth-secret", secret)
    cam = token(secret, "cam", "--pub", "live/studio")
    other = token(secret, "eve", "--pub", "live/other")
    viewer = token(secret, "ann", "--sub", "live/#")
    try:
        for extra, what in (("", "no token"), ("?token=" + other, "a token for another name")):
            p = publish(srv.rtmp_port, "studio", seconds=2, extra=extra)
            t.ok(p.wait(15) != 0, "publishing with %s is refused" % what)
            t.ok(stats(srv, "studio", "?token=" + viewer) is None,
                 "and nothing is live after %s" % what)
        pub = publish(srv.rtmp_port, "studio", seconds=4, extra="?token=" + cam)
        try:
            wait_live(srv, "studio", pub=pub, query="?token=" + viewer)
            try:
                urllib.request.urlopen(srv.base + "/live/studio.flv", timeout=5)
                t.ok(False, "an anonymous viewer is served")
            except urllib.error.HTTPError as e:
                t.eq(e.code, 401, "an anonymous viewer")
            _, data = read_http(srv.base + "/live/studio.flv?token=" + viewer, 0.5,
                                os.path.join(TMP, "studio.flv"))
            t.eq(data[:3], b"FLV", "a viewer with a read grant gets the stream")
        finally:
            pub.stop()
    finally:
        srv.stop()


@t.test
def recording_to_fragmented_mp4():
    """--record DIR: each publication to DIR/NAME-TIME.mp4, fragmented MP4
    (written by a thread, not the loop), readable by ffprobe while it
    grows and whole after the stream ends."""
    rec = tempfile.mkdtemp(prefix="axon-rec-", dir=TMP)
    srv = servutil.Serve("--record", os.path.join(rec, "videos"))
    pub = publish(srv.rtmp_port, "recme", seconds=4)
    try:
        wait_live(srv, "recme", keyframes=2, pub=pub)
        files = os.listdir(os.path.join(rec, "videos"))
        t.eq(len(files), 1, "one file while it is live: %r" % files)
        t.ok(files[0].startswith("recme-") and files[0].endswith(".mp4"), files[0])
        path = os.path.join(rec, "videos", files[0])
        streams, _ = probe(path)
        t.ok("video" in streams, "readable while it grows: %r" % list(streams))
        t.exits(pub, 0, "ffmpeg publishing")
        deadline = time.monotonic() + 5
        while stats(srv, "recme") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the writer thread closes it
        pk = check_media(path, "the recording", min_s=3.0)
        t.ok(3.5 <= len(pk) / 30.0 <= 4.5, "the recording holds the stream's 4 s: %d frames"
             % len(pk))
        p = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=format_name",
                            "-of", "csv=p=0", path], capture_output=True, timeout=20)
        t.ok(b"mp4" in p.stdout, "an MP4 file: %r" % p.stdout)
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        t.ok(b"ftyp" in head[:16] and b"mvex" in head and b"moof" in head,
             "fragmented: ftyp, moov with mvex, then moof fragments")
        # a second publication of the same name is a second file
        pub = publish(srv.rtmp_port, "recme", seconds=2)
        t.exits(pub, 0, "ffmpeg publishing again")
        time.sleep(1.5)  # (the file name has the second it started)
        t.eq(len(os.listdir(os.path.join(rec, "videos"))), 2, "a file per publication")
        finish(srv)
    finally:
        pub.stop()
        srv.stop()


@t.test
def start_and_stop_on_a_hub_topic():
    """A stream says on the hub topic live/NAME when it starts (with its
    size, tracks, MIME type, page and chat room) and stops; any gateway's
    subscriber sees it (here SSE, subscribed to live/+)."""
    srv = servutil.Serve()
    sse = servutil.Sse(srv, "topic=live/%2B")
    time.sleep(0.3)
    pub = publish(srv.rtmp_port, "evcam", seconds=2)
    try:
        ev = sse.wait_events(1)[0]["json"]
        t.eq(ev["topic"], "live/evcam", "the stream's topic")
        t.eq(ev["sender"], "live", "the sender")
        p = json.loads(ev["payload"])
        t.eq((p["event"], p["name"], p["page"], p["chat"]),
             ("start", "evcam", "/live/evcam", "chat/live/evcam"), "the start event")
        t.eq((p["width"], p["height"], p["video"], p["audio"]), (320, 240, True, True),
             "what a viewer needs to know")
        t.ok(p["mime"].startswith("video/mp4; codecs="), "the MIME type: %r" % p["mime"])
        t.exits(pub, 0, "ffmpeg publishing")
        p = json.loads(sse.wait_events(2)[1]["json"]["payload"])
        t.eq((p["event"], p["name"]), ("stop", "evcam"), "the stop event")
        t.ok(p["frames"] >= 50 and 1.0 <= p["seconds"] <= 10, "its numbers: %r" % p)
        finish(srv)
    finally:
        pub.stop()
        sse.stop()
        srv.stop()


@t.test
def http_ingest_of_mpeg_ts():
    """ffmpeg -f mpegts http://HOST/live/NAME (a chunked POST): the body is
    demuxed by libavformat (on a thread of its own, live_tsin.c) into the
    relay; every output has the stream: FLV, MPEG-TS, fMP4, HLS."""
    srv = servutil.Serve()
    url = "%s/live/tscam" % srv.base
    pub = axtest.Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                       "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
                       "-f", "lavfi", "-i", "sine=frequency=440", "-t", "6",
                       "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
                       "-f", "mpegts", "-method", "POST", url])
    try:
        s = wait_live(srv, "tscam", keyframes=2, pub=pub)
        t.eq((s["video_codec"], s["audio_codec"]), (7, 10), "H.264 and AAC")
        t.ok(s["mime"].startswith("video/mp4; codecs=\"avc1."), "fMP4 made: %r" % s["mime"])
        flv = os.path.join(TMP, "tscam.flv")
        read_http(srv.base + "/live/tscam.flv", 1.5, flv)
        check_media(flv, "HTTP-FLV of an MPEG-TS upload")
        ts = os.path.join(TMP, "tscam.ts")
        read_http(srv.base + "/live/tscam.ts", 1.5, ts)
        check_media(ts, "MPEG-TS of an MPEG-TS upload")
        t.exits(pub, 0, "ffmpeg's MPEG-TS upload")
        deadline = time.monotonic() + 5
        while stats(srv, "tscam") and time.monotonic() < deadline:
            time.sleep(0.1)
        t.ok(stats(srv, "tscam") is None, "the stream ends with the upload")
        finish(srv)
    finally:
        pub.stop()
        srv.stop()


def streams_of(path):
    """codec_type -> codec_name of what ffprobe finds in path."""
    streams, _ = probe(path)
    return {k: v["codec_name"] for k, v in streams.items()}


@t.test
def audio_only_and_video_only_streams():
    """A stream without sound (H.264 alone) and one without picture (AAC
    alone): every output carries just that track (HTTP-FLV, MPEG-TS, the
    WebSocket's fMP4 with its MIME type, HLS)."""
    srv = servutil.Serve()
    common = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
    vpub = axtest.Proc(common + ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "25",
                                 "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-an",
                                 "-f", "flv", "rtmp://127.0.0.1:%d/live/vonly" % srv.rtmp_port])
    apub = axtest.Proc(common + ["-f", "lavfi", "-i", "sine=frequency=440", "-t", "25",
                                 "-c:a", "aac", "-vn", "-f", "flv",
                                 "rtmp://127.0.0.1:%d/live/aonly" % srv.rtmp_port])
    try:
        s = wait_live(srv, "vonly", keyframes=2, pub=vpub)
        t.eq((s["video_codec"], s.get("audio_codec", 0)), (7, 0), "video only: H.264, no audio")
        for ext in ("flv", "ts"):
            path = os.path.join(TMP, "vonly." + ext)
            read_http("%s/live/vonly.%s" % (srv.base, ext), 1.5, path)
            t.eq(streams_of(path), {"video": "h264"}, "video only, .%s" % ext)
        mp4 = os.path.join(TMP, "vonly.mp4")
        first = ws_fmp4(srv, "vonly", 20, mp4)
        t.eq(first["mime"], first["mime"].split(",")[0], "video only: one codec in the MIME type")
        t.eq(streams_of(mp4), {"video": "h264"}, "video only, fMP4")
        deadline = time.monotonic() + 15
        while True:
            s = stats(srv, "aonly")
            if s and s["frames"] >= 100:
                break
            t.ok(time.monotonic() < deadline and apub.running(),
                 "the audio-only stream went live%s: %r" % (apub.err_note(), s))
            time.sleep(0.2)
        t.eq((s.get("video_codec", 0), s["audio_codec"]), (0, 10), "audio only: AAC, no video")
        for ext in ("flv", "ts"):
            path = os.path.join(TMP, "aonly." + ext)
            read_http("%s/live/aonly.%s" % (srv.base, ext), 1.5, path)
            t.eq(streams_of(path), {"audio": "aac"}, "audio only, .%s" % ext)
        mp4 = os.path.join(TMP, "aonly.mp4")
        first = ws_fmp4(srv, "aonly", 40, mp4)
        t.eq(first["mime"], 'audio/mp4; codecs="mp4a.40.2"', "audio only: the MIME type")
        t.eq(streams_of(mp4), {"audio": "aac"}, "audio only, fMP4")
        deadline = time.monotonic() + 15
        while True:
            with urllib.request.urlopen(srv.base + "/live/aonly/index.m3u8", timeout=5) as r:
                segs = [x for x in r.read().decode().splitlines() if x and x[0] != "#"]
            if segs:
                break
            t.ok(time.monotonic() < deadline, "an audio-only HLS segment (2 s) within 15 s")
            time.sleep(0.3)
        path = os.path.join(TMP, "aonly-seg.ts")
        with urllib.request.urlopen(srv.base + "/live/aonly/" + segs[-1], timeout=5) as r:
            with open(path, "wb") as f:
                f.write(r.read())
        t.eq(streams_of(path), {"audio": "aac"}, "audio only, an HLS segment")
        finish(srv)
    finally:
        vpub.stop()
        apub.stop()
        srv.stop()


t.main()
