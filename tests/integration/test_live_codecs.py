#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_live_codecs: H.265 (HEVC) video and Opus audio through the live
relay (src/hub/live_tsin.c, live_mux.c, live_codec.c; docs/streaming.md).

ffmpeg pushes a test pattern with a tone as MPEG-TS over HTTP (POST
/live/NAME): HEVC + Opus, HEVC + AAC, H.264 + Opus, and Opus alone.  The
upload's demuxer (libavformat) takes HEVC (stream type 0x24) and Opus
(private data with the Opus registration descriptor) besides H.264 and
AAC; ffprobe reads each output that can carry them back with the right
codecs, size and continuous timestamps: MPEG-TS (/live/NAME.ts), HLS
segments, Low-Latency HLS (ll.m3u8, fMP4 parts), fragmented MP4 over the WebSocket (hvc1 with its hvcC, Opus
with its dOps; the MIME type says "hvc1.…" and "opus") and the recording
(--record, fragmented MP4).  FLV has no codec
id for HEVC or Opus: /live/NAME.flv answers 415 with the reason, RTMP
playback NetStream.Play.Failed, never FLV bytes a player would misread."""
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import axtest
import servutil
from liveutil import ffprobe, read_http, stats, ws_fmp4

t = axtest.Tests("live relay: H.265 and Opus (MPEG-TS upload; TS, HLS, fMP4 out)", alarm=170)
TMP = tempfile.mkdtemp(prefix="axon-livecodec-")

CODECS = {"hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=none"],
          "h264": ["-c:v", "libx264", "-preset", "ultrafast"],
          "opus": ["-c:a", "libopus"], "aac": ["-c:a", "aac"]}


def upload(srv, name, video, audio, seconds=30):
    """ffmpeg POSTing testsrc2 (320x240, 30 fps, 1 s GOP) and a sine as MPEG-TS."""
    args = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
    if video:
        args += ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"]
    args += ["-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds)]
    args += CODECS[video] + ["-g", "30"] if video else ["-vn"]
    args += CODECS[audio]
    args += ["-f", "mpegts", "-method", "POST", "%s/live/%s" % (srv.base, name)]
    return axtest.Proc(args)


def wait_frames(srv, name, pub, frames):
    deadline = time.monotonic() + 20
    while True:
        s = stats(srv, name)
        if s and s["frames"] >= frames and s["mime"]:
            return s
        t.ok(time.monotonic() < deadline and pub.running(),
             "%s went live%s: %r" % (name, pub.err_note(), s))
        time.sleep(0.2)


def check(path, what, video, audio, min_s=1.0):
    """ffprobe finds exactly these codecs (video 320x240), the video starts
    with a keyframe, and each stream's decode timestamps rise without a gap."""
    j = ffprobe(path)
    streams = {s["codec_type"]: s for s in j.get("streams", [])}
    want = {k: v for k, v in (("video", video), ("audio", audio)) if v}
    t.eq({k: v["codec_name"] for k, v in streams.items()}, want, "%s: codecs" % what)
    if video and "video" in streams:
        v = streams["video"]
        t.eq((v["width"], v["height"]), (320, 240), "%s: the size" % what)
    if audio == "opus" and "audio" in streams:
        t.eq(int(streams["audio"]["sample_rate"]), 48000, "%s: Opus at 48 kHz" % what)
    for kind, s in streams.items():
        pk = [x for x in j.get("packets", []) if x["stream_index"] == s["index"]
              and x.get("dts_time") not in (None, "N/A")]
        per_s = 30 if kind == "video" else 50  # 20 ms Opus frames; AAC: 1024 samples at 44.1k
        t.ok(len(pk) >= per_s * min_s * 0.8 * (0.9 if audio == "aac" else 1),
             "%s: only %d %s packets" % (what, len(pk), kind))
        if not pk:
            continue
        if kind == "video":
            t.ok("K" in pk[0].get("flags", ""), "%s starts with a keyframe" % what)
        dts = [float(x["dts_time"]) for x in pk]  # (B-frames: a cut-off end lacks some pts)
        t.ok(all(a < b for a, b in zip(dts, dts[1:])), "%s: %s dts rise" % (what, kind))
        gap = max(b - a for a, b in zip(dts, dts[1:]))
        t.ok(gap < 0.1, "%s: %s timestamps jump by %.3f s" % (what, kind, gap))
    return streams


def hls(srv, name, path):
    """The last segments of the playlist in a row, into path (the first one
    alone into path + '.first')."""
    deadline = time.monotonic() + 15
    while True:
        with urllib.request.urlopen("%s/live/%s/index.m3u8" % (srv.base, name), timeout=5) as r:
            segs = [x for x in r.read().decode().splitlines() if x and x[0] != "#"]
        if len(segs) >= 2:
            break
        t.ok(time.monotonic() < deadline, "two HLS segments of %s within 15 s" % name)
        time.sleep(0.3)
    with open(path, "wb") as out:
        for i, seg in enumerate(segs[-2:]):
            with urllib.request.urlopen("%s/live/%s/%s" % (srv.base, name, seg), timeout=5) as r:
                data = r.read()
            out.write(data)
            if i == 0:
                with open(path + ".first", "wb") as f:
                    f.write(data)


def flv_refused(srv, name):
    """/live/NAME.flv: 415 with the reason; RTMP playback: an error."""
    try:
        with urllib.request.urlopen("%s/live/%s.flv" % (srv.base, name), timeout=5) as r:
            t.ok(False, "%s.flv answered %d, %r" % (name, r.status, r.read(64)))
    except urllib.error.HTTPError as e:
        body = e.read().decode()
        t.eq(e.code, 415, "%s.flv: the status" % name)
        t.ok("FLV has no codec id" in body, "%s.flv says why: %r" % (name, body))
    p = subprocess.run(["ffprobe", "-v", "error", "-rw_timeout", "5000000",
                        "rtmp://127.0.0.1:%d/live/%s" % (srv.rtmp_port, name)],
                       capture_output=True, timeout=20)
    err = p.stderr.decode()
    t.ok(p.returncode != 0 and "no codec id" in err, "RTMP playback of %s refused: %r"
         % (name, err[-300:]))


@t.test
def hevc_and_opus_from_an_mpeg_ts_upload():
    """Each output that can carry them, the recording (--record) too."""
    rec = os.path.join(TMP, "rec")
    srv = servutil.Serve("--record", rec)
    pub = upload(srv, "hevcopus", "hevc", "opus", seconds=60)
    try:
        s = wait_frames(srv, "hevcopus", pub, 150)
        t.eq((s["video_codec"], s["audio_codec"]), (12, 13), "HEVC and Opus in the stats")
        t.ok(re.fullmatch(r'video/mp4; codecs="hvc1\.1\.6\.L\d+\.[0-9A-F.]+,opus"', s["mime"]),
             "the MIME type for MediaSource: %r" % s["mime"])
        path = os.path.join(TMP, "hevcopus.ts")
        ctype, _ = read_http(srv.base + "/live/hevcopus.ts", 2, path)
        t.eq(ctype, "video/mp2t", "Content-Type of .ts")
        check(path, "MPEG-TS", "hevc", "opus", min_s=1.5)
        mp4 = os.path.join(TMP, "hevcopus.mp4")
        first = ws_fmp4(srv, "hevcopus", 150, mp4)
        t.eq(first["mime"], s["mime"], "the WebSocket's MIME type")
        got = check(mp4, "WebSocket fMP4", "hevc", "opus", min_s=1.2)
        t.eq(got["video"]["codec_tag_string"], "hvc1", "fMP4: the sample entry (hvcC inside)")
        t.eq(got["audio"]["codec_tag_string"], "Opus", "fMP4: Opus's sample entry")
        seg = os.path.join(TMP, "hevcopus-hls.ts")
        hls(srv, "hevcopus", seg)
        check(seg + ".first", "an HLS segment", "hevc", "opus", min_s=0.4)
        check(seg, "two HLS segments in a row", "hevc", "opus", min_s=0.9)
        p = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=codec_name,codec_tag_string,width,height", "-of", "csv=p=0",
                            srv.base + "/live/hevcopus/ll.m3u8"], capture_output=True, timeout=30)
        t.eq(set(p.stdout.decode().split()), {"hevc,hvc1,320,240", "opus,Opus"},
             "ffprobe reads Low-Latency HLS (fMP4 parts) %s" % p.stderr.decode()[-300:])
        flv_refused(srv, "hevcopus")
        t.ok(pub.running(), "the upload goes on%s" % pub.err_note())
        srv.signal(15)  # while publishing: the recording is closed
        t.eq(srv.wait(10), 0, "axon serve's exit status")
        err = srv.stderr()
        t.ok("Sanitizer" not in err and "runtime error" not in err, "sanitizers: %s" % err[-2000:])
        files = os.listdir(rec)
        t.eq(len(files), 1, "one recording: %r" % files)
        got = check(os.path.join(rec, files[0]), "the recording", "hevc", "opus", min_s=4)
        t.eq(got["video"]["codec_tag_string"], "hvc1", "the recording's sample entry")
    finally:
        pub.stop()
        srv.stop()


@t.test
def hevc_aac_h264_opus_and_opus_alone():
    """Three uploads at once: each output has its codecs, and only those."""
    srv = servutil.Serve()
    pubs = {"hevcaac": upload(srv, "hevcaac", "hevc", "aac", seconds=90),
            "avcopus": upload(srv, "avcopus", "h264", "opus", seconds=90),
            "opusonly": upload(srv, "opusonly", None, "opus", seconds=90)}
    want = {"hevcaac": ("hevc", "aac", 12, 10, r'video/mp4; codecs="hvc1\.[^,]+,mp4a\.40\.2"'),
            "avcopus": ("h264", "opus", 7, 13, r'video/mp4; codecs="avc1\.[0-9a-f]{6},opus"'),
            "opusonly": (None, "opus", 0, 13, r'audio/mp4; codecs="opus"')}
    try:
        for name, (video, audio, vc, ac, mime) in want.items():
            s = wait_frames(srv, name, pubs[name], 150)
            t.eq((s.get("video_codec", 0), s["audio_codec"]), (vc, ac), "%s: the codecs" % name)
            t.ok(re.fullmatch(mime, s["mime"]), "%s: the MIME type %r" % (name, s["mime"]))
            path = os.path.join(TMP, name + ".ts")
            read_http("%s/live/%s.ts" % (srv.base, name), 2, path)
            check(path, "%s, MPEG-TS" % name, video, audio, min_s=1.5)
            mp4 = os.path.join(TMP, name + ".mp4")
            ws_fmp4(srv, name, 150, mp4)
            check(mp4, "%s, WebSocket fMP4" % name, video, audio, min_s=1.2)
            seg = os.path.join(TMP, name + "-hls.ts")  # (audio alone: segments of 2 s)
            hls(srv, name, seg)
            check(seg, "%s, HLS" % name, video, audio, min_s=0.9)
            flv_refused(srv, name)
        for name, pub in pubs.items():
            t.ok(pub.running(), "%s's upload goes on%s" % (name, pub.err_note()))
    finally:
        for pub in pubs.values():
            pub.stop()
        srv.stop()


t.main()
