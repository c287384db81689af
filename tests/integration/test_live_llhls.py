#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_live_llhls: Low-Latency HLS from the live relay (src/hub/live.c
parts, live_llhttp.c; docs/streaming.md) with real tools: ffmpeg publishes
a test pattern with a tone (H.264 + AAC, 1 s GOP) over RTMP, and
/live/NAME/ll.m3u8 is read with urllib and raw sockets.

- The playlist has the LL-HLS tags (EXT-X-PART-INF:PART-TARGET,
  EXT-X-SERVER-CONTROL with CAN-BLOCK-RELOAD=YES and PART-HOLD-BACK at
  least 3 part targets, EXT-X-MAP, EXT-X-PART with DURATION, URI and
  INDEPENDENT=YES on each segment's first part, EXT-X-PRELOAD-HINT naming
  the next part); parts are 0.2 s of media (no longer than PART-TARGET),
  a segment is its parts; ffprobe decodes the init segment + an
  independent part, and the init segment + a whole segment (right codecs,
  size, continuous timestamps).  The plain HLS playlist is unchanged.
- A blocking reload (_HLS_msn/_HLS_part) for the next part answers with a
  playlist that has that part, five times in a row; the preload hint's
  part is held until it exists; too far ahead is 400 (the spec's Bad
  Request), a malformed query too.
- With the publisher frozen (SIGSTOP), held requests wait; those whose
  clients leave are freed at once (axon_connections{gateway="live"}
  counts the held ones), the rest get 503 after 3 target durations.
- With authentication on, each LL-HLS resource needs a read grant."""
import os
import re
import signal
import socket
import tempfile
import time
import urllib.error
import urllib.request

import axtest
import servutil
from liveutil import probe, publish, token
from servutil import metric

t = axtest.Tests("Low-Latency HLS (parts, blocking reloads, preload hints)", alarm=170)
TMP = tempfile.mkdtemp(prefix="axon-llhls-")


def get(url, timeout=30):
    """(status, body bytes) of a GET; HTTP errors are statuses too."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Playlist:
    """An LL-HLS playlist: its tags, segments (msn, seconds, uri, parts)
    and the parts of the segment being made, the preload hint."""

    def __init__(self, text):
        self.text = text
        self.tags = {}
        self.segments, open_parts = [], []
        msn = None
        for line in text.splitlines():
            if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
                msn = int(line.split(":", 1)[1])
            if line.startswith("#EXT-X-PART:"):
                a = attrs(line)
                open_parts.append((float(a["DURATION"]), a["URI"], a.get("INDEPENDENT") == "YES"))
            elif line.startswith("#EXTINF:"):
                dur = float(line[8:].rstrip(","))
            elif line.startswith("#"):
                k, _, v = line[1:].partition(":")
                self.tags[k] = v
            elif line:
                self.segments.append((msn, dur, line, open_parts))
                msn, open_parts = msn + 1, []
        self.open_msn, self.open_parts = msn, open_parts
        self.hint = attrs("#X:" + self.tags["EXT-X-PRELOAD-HINT"])["URI"]

    def part_uris(self):
        return [p[1] for s in self.segments for p in s[3]] + [p[1] for p in self.open_parts]


def attrs(line):
    return {m.group(1): m.group(2).strip('"')
            for m in re.finditer(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])}


def playlist(srv, name, query=""):
    code, body = get("%s/live/%s/ll.m3u8%s" % (srv.base, name, query))
    if code != 200:
        raise axtest.Failure("ll.m3u8%s: %d %r" % (query, code, body[:200]))
    return Playlist(body.decode())


def wait_segments(srv, name, n, pub, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        code, body = get("%s/live/%s/ll.m3u8" % (srv.base, name))
        if code == 200 and body.count(b"#EXTINF") >= n:
            return Playlist(body.decode())
        if not pub.running():
            raise axtest.Failure("ffmpeg stopped%s" % pub.err_note())
        t.ok(time.monotonic() < deadline, "%d LL-HLS segments within %d s: %d %r" %
             (n, timeout, code, body[:300]))
        time.sleep(0.2)


def check_media(data, what, min_frames):
    path = os.path.join(TMP, re.sub(r"\W+", "-", what) + ".mp4")
    with open(path, "wb") as f:
        f.write(data)
    streams, pk = probe(path)
    t.ok("video" in streams and "audio" in streams, "%s: streams %r" % (what, list(streams)))
    v = streams["video"]
    t.eq((v["codec_name"], v["width"], v["height"]), ("h264", 320, 240), "%s: video" % what)
    t.eq(streams["audio"]["codec_name"], "aac", "%s: audio" % what)
    t.ok(len(pk) >= min_frames, "%s: %d video packets" % (what, len(pk)))
    t.ok(pk[0][1], "%s starts with a keyframe" % what)
    dts = sorted(p[0] for p in pk)
    gaps = [b - a for a, b in zip(dts, dts[1:])]
    t.ok(not gaps or max(gaps) < 0.1, "%s: timestamps jump by %.3f s" % (what, max(gaps or [0])))


def finish(srv, pub):
    srv.signal(15)
    st = srv.wait(10)
    err = srv.stderr()
    t.ok("Sanitizer" not in err and "runtime error" not in err, "sanitizer report: %s" % err[-2000:])
    t.eq(st, 0, "axon serve's exit status")
    pub.stop()


@t.test
def playlist_tags_parts_and_segments():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "ll1", seconds=30)
    try:
        pl = wait_segments(srv, "ll1", 3, pub)
        tg = pl.tags
        t.ok("EXTM3U" in tg and int(tg["EXT-X-VERSION"]) >= 6, "version: %r" % tg)
        sc = attrs("#X:" + tg["EXT-X-SERVER-CONTROL"])
        target = float(attrs("#X:" + tg["EXT-X-PART-INF"])["PART-TARGET"])
        t.eq(sc["CAN-BLOCK-RELOAD"], "YES", "CAN-BLOCK-RELOAD")
        t.ok(0.2 <= target <= 0.34, "PART-TARGET %.3f (parts of 200-333 ms)" % target)
        t.ok(float(sc["PART-HOLD-BACK"]) >= 3 * target - 1e-9,
             "PART-HOLD-BACK %s >= 3 x %.3f" % (sc["PART-HOLD-BACK"], target))
        t.eq(attrs("#X:" + tg["EXT-X-MAP"])["URI"], "init.mp4", "EXT-X-MAP")
        t.eq(attrs("#X:" + tg["EXT-X-PRELOAD-HINT"])["TYPE"], "PART", "the preload hint's type")
        uris = pl.part_uris()
        t.ok(len(uris) >= 8, "parts listed: %d" % len(uris))
        nums = [int(re.match(r"p-(\d+)\.m4s$", u).group(1)) for u in uris]
        t.eq(nums, list(range(nums[0], nums[0] + len(nums))), "parts numbered in a row")
        t.eq(pl.hint, "p-%d.m4s" % (nums[-1] + 1), "the preload hint is the next part")
        withparts = [s for s in pl.segments if s[3]]
        t.ok(len(withparts) >= 2, "whole segments with their parts listed: %d" % len(withparts))
        for msn, dur, uri, parts in withparts:
            t.ok(parts[0][2], "segment %d's first part is INDEPENDENT=YES" % msn)
            t.ok(all(0.15 <= p[0] <= target + 1e-9 for p in parts[:-1]) and
                 0 < parts[-1][0] <= target + 1e-9,  # (the last ends at the next keyframe)
                 "segment %d's parts: 0.15 s to PART-TARGET: %r" % (msn, [p[0] for p in parts]))
            t.ok(abs(sum(p[0] for p in parts) - dur) < 0.005,
                 "segment %d: EXTINF %.3f = its parts %.3f" % (msn, dur, sum(p[0] for p in parts)))
            t.ok(dur <= int(tg["EXT-X-TARGETDURATION"]), "within the target duration")
        code, init = get(srv.base + "/live/ll1/init.mp4")
        t.eq((code, init[4:8]), (200, b"ftyp"), "the init segment")
        msn, dur, uri, parts = withparts[-1]
        code, seg = get(srv.base + "/live/ll1/" + uri)
        t.eq(code, 200, "segment %s" % uri)
        body = b""
        for p in parts:
            code, b = get(srv.base + "/live/ll1/" + p[1])
            t.eq(code, 200, "part %s" % p[1])
            body += b
        t.eq(body == seg, True, "the segment is its parts, in order")
        check_media(init + seg, "init + segment %d" % msn, min_frames=24)
        check_media(init + get(srv.base + "/live/ll1/" + parts[0][1])[1],
                    "init + an independent part", min_frames=4)
        # the plain HLS playlist (MPEG-TS) is as it was
        code, plain = get(srv.base + "/live/ll1/index.m3u8")
        t.eq(code, 200, "index.m3u8")
        t.ok(b"seg-" in plain and b"EXT-X-PART" not in plain and b"SERVER-CONTROL" not in plain,
             "index.m3u8 is plain HLS: %r" % plain[:300])
        t.eq(get(srv.base + "/live/nope/ll.m3u8")[0], 404, "an unknown stream")
        t.eq(get(srv.base + "/live/ll1/ll-999999.m4s")[0], 404, "an unknown segment")
        finish(srv, pub)
    finally:
        pub.stop()
        srv.stop()


@t.test
def blocking_reload_and_preload_hint():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "ll2", seconds=40)
    try:
        pl = wait_segments(srv, "ll2", 2, pub)
        for i in range(5):  # each time the next part, as a player asks
            msn, part = pl.open_msn, len(pl.open_parts)
            want = pl.hint
            t.ok(want not in pl.part_uris(), "%s is not in the playlist yet" % want)
            nxt = playlist(srv, "ll2", "?_HLS_msn=%d&_HLS_part=%d" % (msn, part))
            t.ok(want in nxt.part_uris(),
                 "reload %d (_HLS_msn=%d&_HLS_part=%d) answered with %s in it: %r"
                 % (i, msn, part, want, nxt.part_uris()[-3:]))
            pl = nxt
        # the preload hint's part, asked for before it exists
        want = pl.hint
        code, body = get(srv.base + "/live/ll2/" + want)
        t.eq(code, 200, "the hinted part %s, held until made" % want)
        after = playlist(srv, "ll2")
        t.ok(want in after.part_uris(), "%s then listed" % want)
        code2, again = get(srv.base + "/live/ll2/" + want)
        t.eq((code2, again == body), (200, True), "the same bytes when fetched again")
        # a segment-only blocking reload: the next whole segment
        msn = after.open_msn
        nxt = playlist(srv, "ll2", "?_HLS_msn=%d" % msn)
        t.ok(any(s[0] == msn for s in nxt.segments), "_HLS_msn=%d: segment %d whole" % (msn, msn))
        # too far ahead, malformed
        pl = playlist(srv, "ll2")
        last = pl.open_msn if pl.open_parts else pl.open_msn - 1
        code, _ = get(srv.base + "/live/ll2/ll.m3u8?_HLS_msn=%d" % (last + 3))
        t.eq(code, 400, "_HLS_msn 3 past the last segment")
        seen = []
        for _ in range(5):  # (the segment may end between the two requests: ask again)
            pl = playlist(srv, "ll2")
            code, _ = get(srv.base + "/live/ll2/ll.m3u8?_HLS_msn=%d&_HLS_part=%d"
                          % (pl.open_msn, len(pl.open_parts) + 10))
            seen.append(code)
            if code == 400:
                break
        t.eq(seen[-1], 400, "_HLS_part 10 past the last part: %r" % seen)
        for q in ("?_HLS_part=1", "?_HLS_msn=x", "?_HLS_msn=&_HLS_part=0"):
            t.eq(get(srv.base + "/live/ll2/ll.m3u8" + q)[0], 400, "ll.m3u8%s" % q)
        hint = int(re.match(r"p-(\d+)", playlist(srv, "ll2").hint).group(1))
        t.eq(get(srv.base + "/live/ll2/p-%d.m4s" % (hint + 50))[0], 404, "a part far ahead")
        finish(srv, pub)
    finally:
        pub.stop()
        srv.stop()


def held_request(srv, path):
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=60)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
    return s


def read_status(s):
    got = b""
    while b"\r\n" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
    return int(got.split()[1]) if got.startswith(b"HTTP/1.1 ") else None


@t.test
def held_requests_time_out_or_go_with_their_client():
    srv = servutil.Serve()
    pub = publish(srv.rtmp_port, "ll3", seconds=60, gop=150)  # 5 s segments: 15 s to wait
    socks = []
    try:
        wait_segments(srv, "ll3", 1, pub, timeout=30)
        pub.signal(signal.SIGSTOP)  # live but silent: no more parts
        time.sleep(1.0)
        pl = playlist(srv, "ll3")
        target = int(pl.tags["EXT-X-TARGETDURATION"])
        t.eq(target, 5, "target duration")
        q = "/live/ll3/ll.m3u8?_HLS_msn=%d&_HLS_part=%d" % (pl.open_msn, len(pl.open_parts))
        socks = [held_request(srv, q) for _ in range(19)] + [held_request(srv, "/live/ll3/" + pl.hint)]
        # two pipelined on one connection: one held, the other waits its turn
        piped = socket.create_connection(("127.0.0.1", srv.http_port), timeout=60)
        piped.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % q).encode() * 2)
        key = 'axon_connections{gateway="live"}'
        deadline = time.monotonic() + 10
        while metric(srv, key) != 21.0:
            t.ok(time.monotonic() < deadline, "21 requests held (one per connection): %r"
                 % metric(srv, key))
            time.sleep(0.1)
        for s in socks[:10]:
            s.close()
        deadline = time.monotonic() + 10
        while metric(srv, key) != 11.0:
            t.ok(time.monotonic() < deadline, "10 freed as their clients left: %r"
                 % metric(srv, key))
            time.sleep(0.1)
        codes = [read_status(s) for s in socks[10:]]
        t.eq(codes, [503] * 10, "the rest: 503 after 3 target durations")
        got = b""
        while got.count(b"HTTP/1.1 503") < 2:  # the second after its own 3 target durations
            b = piped.recv(4096)
            t.ok(b, "the pipelined connection closed after %r" % got[:200])
            got += b
        piped.close()
        t.eq(metric(srv, key), 0.0, "none held")
        pub.signal(signal.SIGCONT)
        pl = playlist(srv, "ll3")
        nxt = playlist(srv, "ll3", "?_HLS_msn=%d&_HLS_part=%d" % (pl.open_msn, len(pl.open_parts)))
        t.ok(pl.hint in nxt.part_uris(), "going on once the publisher does")
        finish(srv, pub)
    finally:
        for s in socks:
            s.close()
        pub.signal(signal.SIGCONT) if pub.running() else None
        pub.stop()
        srv.stop()


@t.test
def only_readers_get_the_parts():
    """With authentication on, every LL-HLS resource needs a read grant on
    live/NAME, blocking requests too (checked before they are held).  The
    stream is sparse video alone (7 fps): its parts are cut early enough to
    stay within PART-TARGET."""
    secret = os.path.join(TMP, "secret")
    with open(secret, "w") as f:
        f.write("s" * 48 + "\n")
    os.chmod(secret, 0o600)
    srv = servutil.Serve("--auth-secret", secret)
    cam = token(secret, "cam", "--pub", "live/ll4")
    viewer = token(secret, "ann", "--sub", "live/ll4")
    other = token(secret, "eve", "--sub", "live/other")
    pub = axtest.Proc(["true"])
    try:
        pub = axtest.Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                           "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=7",
                           "-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "7",
                           "-f", "flv", "rtmp://127.0.0.1:%d/live/ll4?token=%s" % (srv.rtmp_port, cam)])
        deadline = time.monotonic() + 20
        while True:
            code, body = get("%s/live/ll4/ll.m3u8?token=%s" % (srv.base, viewer))
            if code == 200 and body.count(b"#EXTINF") >= 1:
                break
            t.ok(time.monotonic() < deadline and pub.running(), "live: %d%s" % (code, pub.err_note()))
            time.sleep(0.2)
        pl = Playlist(body.decode())
        target = float(attrs("#X:" + pl.tags["EXT-X-PART-INF"])["PART-TARGET"])
        durs = [p[0] for sg in pl.segments for p in sg[3]] + [p[0] for p in pl.open_parts]
        t.ok(durs and max(durs) <= target + 1e-9, "7 fps: parts %r within %.3f" % (durs, target))
        paths = ["ll.m3u8", "ll.m3u8?_HLS_msn=%d&_HLS_part=%d" % (pl.open_msn, len(pl.open_parts)),
                 "init.mp4", pl.segments[-1][2], pl.part_uris()[-1], pl.hint]
        for path in paths:
            sep = "&" if "?" in path else "?"
            t.eq(get("%s/live/ll4/%s" % (srv.base, path))[0], 401, "%s without a token" % path)
            t.eq(get("%s/live/ll4/%s%stoken=%s" % (srv.base, path, sep, other))[0], 403,
                 "%s with another stream's grant" % path)
            t.eq(get("%s/live/ll4/%s%stoken=%s" % (srv.base, path, sep, viewer))[0], 200,
                 "%s with a read grant" % path)
    finally:
        pub.stop()
        srv.stop()


t.main()
