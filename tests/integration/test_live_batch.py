#!/usr/bin/python3
# axon-test: two backends (io_uring and epoll: what it checks sits above the loop, and poll drives readiness as epoll does)
"""test_live_batch: the live relay hands frames to a loop's viewers in
batches (src/hub/live.c: the frames of one loop iteration in one send per
viewer; the audio of a stream with video waits for the next video frame,
at most LIVE_AUDIO_HOLD_MS).  Nothing is lost or reordered by it, and
audio that no video frame follows still goes out (the hold timer).

A short H.264 + AAC FLV made by ffmpeg is published tag by tag over HTTP
(POST /live/NAME, a chunked FLV body): the first keyframe, then the
viewer connects (HTTP-FLV), then the rest of the tags a few at a time,
ending with audio tags after the last video tag; the publisher then
stays connected and silent.  The viewer must get every frame from the
keyframe on, in order, with the same bytes and timestamps, the trailing
audio included."""
import os
import socket
import struct
import subprocess
import tempfile
import time

import axtest
import servutil

t = axtest.Tests("live streaming: batched delivery loses and reorders nothing", alarm=100)
TMP = tempfile.mkdtemp(prefix="axon-live-batch-")


def flv_tags(data):
    """(type, ts, payload) of each tag of an FLV file."""
    off, out = 9 + 4, []
    while off + 11 <= len(data):
        typ = data[off] & 0x1f
        n = int.from_bytes(data[off + 1:off + 4], "big")
        ts = int.from_bytes(data[off + 4:off + 7], "big") | data[off + 7] << 24
        out.append((typ, ts, data[off + 11:off + 11 + n]))
        off += 11 + n + 4
    return out


def tag_bytes(typ, ts, payload):
    n = len(payload)
    head = bytes([typ]) + n.to_bytes(3, "big") + (ts & 0xffffff).to_bytes(3, "big") + \
        bytes([ts >> 24]) + b"\0\0\0"
    return head + payload + struct.pack(">I", 11 + n)


class Publisher:
    def __init__(self, port, name):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(("POST /live/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n" % name).encode())
        self.chunk(b"FLV\x01\x05\0\0\0\x09\0\0\0\0")

    def chunk(self, b):
        self.s.sendall(b"%x\r\n" % len(b) + b + b"\r\n")

    def tags(self, tags):
        self.chunk(b"".join(tag_bytes(*x) for x in tags))


def read_flv(sock, want, seconds):
    """The tags an HTTP-FLV viewer reads until it has `want` after the
    FLV header, or the time is up."""
    buf, deadline = b"", time.monotonic() + seconds
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            b = sock.recv(65536)
        except socket.timeout:
            b = None
        if b == b"":
            break
        if b:
            buf += b
        body = dechunk(buf.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in buf else b""
        if body.startswith(b"FLV") and len(flv_tags(body)) >= want:
            break
    body = dechunk(buf.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in buf else b""
    return flv_tags(body) if body.startswith(b"FLV") else []


def dechunk(b):
    out, off = b"", 0
    while True:
        end = b.find(b"\r\n", off)
        if end < 0:
            return out
        n = int(b[off:end].split(b";")[0] or b"0", 16)
        if n == 0 or end + 2 + n > len(b):
            return out + b[end + 2:end + 2 + n]
        out += b[end + 2:end + 2 + n]
        off = end + 2 + n + 2


def media(tags):
    """The audio and video frames (not the sequence headers) of tags."""
    return [(typ, ts, p) for typ, ts, p in tags
            if typ in (8, 9) and len(p) > 1 and p[1] != 0]


@t.test
def every_frame_in_order_and_trailing_audio():
    src = os.path.join(TMP, "src.flv")
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=160x120:rate=30", "-f", "lavfi", "-i", "sine", "-t", "2",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac",
                    "-f", "flv", src], check=True, timeout=60)
    with open(src, "rb") as f:
        tags = flv_tags(f.read())
    heads = [x for x in tags if x[0] == 18 or (x[0] in (8, 9) and x[2][1] == 0)]
    frames = media(tags)
    first_key = next(i for i, x in enumerate(frames) if x[0] == 9 and x[2][0] >> 4 == 1)
    last_video = max(i for i, x in enumerate(frames) if x[0] == 9)
    frames = frames[first_key:last_video + 1]
    trailing = [x for x in media(tags)[last_video + 1:] if x[0] == 8][:3]
    if not trailing:  # the file ended with video: make the audio that follows it
        a = [x for x in frames if x[0] == 8][-1]
        trailing = [(8, a[1] + 23 * (i + 1), a[2]) for i in range(3)]
    srv = servutil.Serve()
    pub = None
    try:
        pub = Publisher(srv.http_port, "batch")
        pub.tags(heads + frames[:1])
        deadline = time.monotonic() + 10
        while True:  # 404 until the keyframe is in
            v = socket.create_connection(("127.0.0.1", srv.http_port), timeout=10)
            v.sendall(b"GET /live/batch.flv HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            v.settimeout(5)
            head = v.recv(12)
            if head.startswith(b"HTTP/1.1 200"):
                break
            v.close()
            if time.monotonic() > deadline:
                raise axtest.Failure("the stream is not live: %r" % head)
            time.sleep(0.1)
        rest = frames[1:] + trailing
        for i in range(0, len(rest), 3):  # a few tags at a time, as a camera would
            pub.tags(rest[i:i + 3])
            time.sleep(0.01)
        want = frames + trailing
        got = media(read_flv(v, len(want) + len(heads), 20))
        t.eq(len(got), len(want), "frames the HTTP-FLV viewer got")
        t.ok(got == want, "the viewer's frames are the published ones, in order")
        srv.signal(15)  # with the publisher and the viewer still on: a clean exit
        st = srv.wait(10)
        err = srv.stderr()
        t.ok("Sanitizer" not in err and "runtime error" not in err,
             "sanitizer report: %s" % err[-2000:])
        t.eq(st, 0, "axon serve's exit status")
        v.close()
    finally:
        if pub:
            pub.s.close()
        srv.stop()


if __name__ == "__main__":
    t.main()
