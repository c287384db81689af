"""Helpers of the live relay's tests (test_live*.py): ffmpeg publishing a
test stream, waiting for it to go live, a stream's stats, reading a
streamed HTTP response or the WebSocket fMP4 into a file, and ffprobe's
view of a file."""
import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request

import axtest


def stats(srv, name, query=""):
    """/live/NAME/stats as a dict, None when it is not live."""
    try:
        with urllib.request.urlopen("%s/live/%s/stats%s" % (srv.base, name, query),
                                    timeout=5) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError:
        return None


def publish(port, name, seconds=6, size="320x240", gop=30, zerolatency=False, extra=""):
    """ffmpeg pushing testsrc2 + a 440 Hz sine as H.264 + AAC over RTMP to
    /live/NAME (a keyframe every `gop` frames at 30 fps); extra is added to
    the URL (e.g. "?token=...")."""
    url = "rtmp://127.0.0.1:%d/live/%s%s" % (port, name, extra)
    tune = ["-tune", "zerolatency"] if zerolatency else []
    return axtest.Proc(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
                        "-f", "lavfi", "-i", "testsrc2=size=%s:rate=30" % size,
                        "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds),
                        "-c:v", "libx264", "-preset", "ultrafast"] + tune +
                       ["-g", str(gop), "-c:a", "aac", "-f", "flv", url])


def wait_live(srv, name, keyframes=1, pub=None, query="", timeout=15):
    """Wait until /live/NAME/stats counts `keyframes`; its stats. Fails when
    the publisher stops first or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        s = stats(srv, name, query)
        if s and s["keyframes"] >= keyframes:
            return s
        if pub and not pub.running():
            raise axtest.Failure("ffmpeg stopped publishing%s" % pub.err_note())
        if time.monotonic() > deadline:
            raise axtest.Failure("%s is not live: %r" % (name, s))
        time.sleep(0.1)


def read_http(url, seconds, path, headers=None):
    """Read a streamed response for `seconds`; saved to path."""
    req = urllib.request.Request(url, headers=headers or {})
    got = bytearray()
    with urllib.request.urlopen(req, timeout=5) as r:
        ctype = r.headers.get("Content-Type")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            b = r.read1(65536)
            if not b:
                break
            got += b
    with open(path, "wb") as f:
        f.write(got)
    return ctype, bytes(got)


def ffprobe(path):
    """ffprobe's JSON of path's streams and packets."""
    p = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams",
                        "-show_packets", path], capture_output=True, timeout=20)
    if p.returncode != 0:
        raise axtest.Failure("ffprobe %s: %s" % (path, p.stderr.decode()[-500:]))
    return json.loads(p.stdout)


def probe(path):
    """(streams by type, video packets as (pts seconds, keyframe)) by ffprobe."""
    j = ffprobe(path)
    streams = {s["codec_type"]: s for s in j.get("streams", [])}
    vid = [s["index"] for s in j.get("streams", []) if s["codec_type"] == "video"]
    pk = [(float(x["pts_time"]), "K" in x.get("flags", ""))
          for x in j.get("packets", []) if vid and x["stream_index"] == vid[0]
          and x.get("pts_time") not in (None, "N/A")]
    return streams, pk


def ws_fmp4(srv, name, messages, path):
    """The first text message, and `messages` binary ones saved to path."""
    import websockets

    async def run():
        url = "ws://127.0.0.1:%d/live/%s/ws" % (srv.http_port, name)
        async with websockets.connect(url) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            data = bytearray()
            for _ in range(messages):
                m = await asyncio.wait_for(ws.recv(), 5)
                if not isinstance(m, bytes):
                    raise axtest.Failure("a text message among the fragments: %r" % m[:200])
                data += m
            with open(path, "wb") as f:
                f.write(data)
            return first

    return asyncio.run(run())


def token(secret, user, *args):
    """A token from `axon token` signed with the secret file's key."""
    p = subprocess.run([axtest.axon_bin(), "token", "-s", secret, "-u", user] + list(args),
                       capture_output=True, timeout=10, check=True)
    return p.stdout.decode().strip()
