#!/usr/bin/python3
# axon-test: one backend (15 s of 200 viewers; the skip decision is the relay's, above the backends)
"""test_live_slow: slow viewers of the live relay (src/hub/live.c) skip
ahead; they never slow the publisher or the other viewers, and memory
stays bounded.

ffmpeg publishes a high-rate stream (lossless H.264, ~5 Mbit/s, 1 s GOP)
over RTMP; 200 HTTP-FLV viewers connect, 10 of which never read (a 4 KiB
receive buffer).  The 190 others are read and their FLV tags parsed
until the stalled ones have filled the kernel's buffers and their queue,
and 3 s more: each stays within a second of the stream's newest timestamp (real
time), the stalled ones are counted as skipping in /stats, the server's
RSS stops growing, and the stalled viewers are still connected: once they
read, they get the stream again from a keyframe near the live edge."""
import json
import os
import select
import socket
import subprocess
import tempfile
import time
import urllib.request

import axtest
import servutil

t = axtest.Tests("live streaming: slow viewers skip to the next keyframe", alarm=100)
TMP = tempfile.mkdtemp(prefix="axon-live-slow-")
VIEWERS, STALLED = 200, 10


def stats(srv, name):
    with urllib.request.urlopen("%s/live/%s/stats" % (srv.base, name), timeout=5) as r:
        return json.loads(r.read())


class Viewer:
    """An HTTP/1.0 FLV viewer on a raw socket; parses the tags it reads."""

    def __init__(self, port, name, stalled):
        self.s = socket.socket()
        if stalled:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(b"GET /live/%s.flv HTTP/1.0\r\nHost: x\r\n\r\n" % name.encode())
        self.s.setblocking(False)
        self.buf = bytearray()
        self.head = False
        self.last_ts = -1
        self.keyframe_after_resume = None
        self.eof = False

    def fileno(self):
        return self.s.fileno()

    def read(self):
        try:
            b = self.s.recv(262144)
        except BlockingIOError:
            return
        if not b:
            self.eof = True
            return
        self.buf += b
        self.parse()

    def parse(self):
        if not self.head:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0 or len(self.buf) < end + 4 + 13:
                return
            if not self.buf.startswith(b"HTTP/1.1 200") or self.buf[end + 4:end + 7] != b"FLV":
                raise axtest.Failure("not an FLV response: %r" % bytes(self.buf[:200]))
            del self.buf[:end + 4 + 13]
            self.head = True
        while len(self.buf) >= 11:
            size = int.from_bytes(self.buf[1:4], "big")
            if len(self.buf) < 11 + size + 4:
                return
            ts = int.from_bytes(self.buf[4:7], "big") | self.buf[7] << 24
            if self.buf[0] == 9 and size and self.keyframe_after_resume is None:
                self.keyframe_after_resume = (self.buf[11] >> 4) == 1
            if self.buf[0] in (8, 9):
                self.last_ts = max(self.last_ts, ts)
            del self.buf[:11 + size + 4]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


@t.test
def stalled_viewers_skip_the_rest_keep_real_time():
    src = os.path.join(TMP, "fast.flv")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=30", "-t", "3", "-c:v", "libx264", "-preset",
                    "ultrafast", "-qp", "0", "-g", "30", src], check=True, timeout=60)
    os.environ.update(axtest.flat_memory_env())  # under ASan: no quarantine, RSS is bounded
    srv = servutil.Serve()
    pub = axtest.Proc(["ffmpeg", "-v", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i",
                       src, "-t", "40", "-c", "copy", "-f", "flv",
                       "rtmp://127.0.0.1:%d/live/fast" % srv.rtmp_port])
    viewers = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if stats(srv, "fast")["keyframes"] >= 1:
                    break
            except OSError:
                pass
            t.ok(time.monotonic() < deadline and pub.running(), "the stream went live")
            time.sleep(0.1)
        viewers = [Viewer(srv.http_port, "fast", i < STALLED) for i in range(VIEWERS)]
        readers = viewers[STALLED:]

        def read_for(seconds, until=None):
            rss, end = [], time.monotonic() + seconds
            next_rss = time.monotonic() + 0.5
            while time.monotonic() < end:
                ready, _, _ = select.select(readers, [], [], 0.05)
                for v in ready:
                    v.read()
                if time.monotonic() >= next_rss:
                    rss.append(rss_kb(srv.pid))
                    next_rss += 0.5
                    if until and until():
                        break
            for v in readers:  # what is already there
                v.read()
            return rss

        # until the stalled ones fill the kernel's buffers and 1 MiB of queue
        read_for(20, until=lambda: stats(srv, "fast")["skipped"] > 0)
        rss = read_for(3)
        st = stats(srv, "fast")
        live = st["last_ts"]
        behind = [live - v.last_ts for v in readers if v.last_ts < live - 1000]
        t.ok(not behind, "%d of %d reading viewers are more than 1 s behind: %r" %
             (len(behind), len(readers), behind[:10]))
        t.ok(not any(v.eof for v in readers), "a reading viewer was cut off")
        t.ok(st["skipped"] > 0, "the stalled viewers skip frames: %r" % st)
        t.eq(st["viewers"], VIEWERS, "viewers still connected")
        # bounded: the last seconds add no more than a few MiB
        t.ok(len(rss) >= 4 and rss[-1] - rss[0] < 16 * 1024,
             "RSS grows while viewers stall: %r kB" % rss)
        # the stalled ones read again: from a keyframe, close to the live edge
        stalled = viewers[:STALLED]
        end = time.monotonic() + 3
        while time.monotonic() < end:
            ready, _, _ = select.select(stalled, [], [], 0.05)
            for v in ready:
                v.read()
        live = stats(srv, "fast")["last_ts"]
        for v in stalled:
            t.ok(not v.eof, "a stalled viewer was disconnected")
            t.ok(v.last_ts >= live - 1500, "a stalled viewer resumed near the live edge: "
                 "%d ms, live %d ms" % (v.last_ts, live))
        t.ok(pub.running(), "the publisher is still going%s" % pub.err_note())
    finally:
        for v in viewers:
            v.s.close()
        pub.stop()
        srv.stop()


t.main()
