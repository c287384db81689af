"""liveclock: glass-to-glass latency of the live relay, measured with a
clock burned into the picture (test_live_latency.py, bench/live-latency).

ffmpeg makes the picture (lavfi testsrc2, paced with -re) and stamps each
frame with the wall clock at the moment the frame passes its filter graph
(setpts from RTCTIME, in ms since a base second K): the time becomes the
frame's timestamp and, drawn as a barcode of 24 white/black boxes (and a
second row with the bits inverted, a check), part of the picture itself.
x264 (zerolatency, 1 s GOP) encodes it and pushes it over RTMP.

In Chromium, the page /live/NAME plays it (WebSocket fMP4 into Media Source
Extensions, as a viewer would); requestVideoFrameCallback hands over each
frame as it is presented; the barcode is read back from the pixels
(drawn into a canvas) and the frame's expected display time, on the same
wall clock, minus the time in the picture is the latency from the frame's
making to its display: encoding, RTMP, the hub, the WebSocket, MSE
buffering, decoding and compositing.  Frames whose check row does not match
are not counted (none should be)."""

BITS = 24  # ms since K: 4.6 hours
BOX_W, BOX_X0 = 24, 8


def ffmpeg_publish(url, base_s, seconds, size="640x360", rate=30, gop=30, audio=False):
    """The ffmpeg command: the stamped test pattern (and a tone) to url."""
    f = ["settb=1/1000", "setpts=floor((RTCTIME-%d000000)/1000)" % base_s,
         "drawbox=x=0:y=0:w=%d:h=84:c=black:t=fill" % (BOX_X0 * 2 + BITS * (BOX_W + 2))]
    for k in range(BITS):
        bit = "mod(floor((t*1000+0.5)/%d),2)" % (1 << k)
        x = BOX_X0 + k * (BOX_W + 2)
        f.append("drawbox=x=%d:y=6:w=%d:h=32:c=white:t=fill:enable='eq(%s,1)'" % (x, BOX_W, bit))
        f.append("drawbox=x=%d:y=46:w=%d:h=32:c=white:t=fill:enable='eq(%s,0)'" % (x, BOX_W, bit))
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
           "-f", "lavfi", "-i", "testsrc2=size=%s:rate=%d" % (size, rate)]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440"]
    cmd += ["-t", str(seconds), "-vf", ",".join(f),
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(gop)]
    if audio:
        # the samples' own clock, from where the picture's starts (a smooth timeline)
        cmd += ["-af", "asetpts=(RTCSTART-%d000000)/(1000000*TB)+N/SR/TB" % base_s, "-c:a", "aac"]
    else:
        cmd += ["-an"]
    return cmd + ["-f", "flv", url]


# Installed in the page: each presented frame's barcode and display time
# (wall clock, ms) into window.g2g; window.g2gBad counts unreadable frames.
PAGE_JS = """(() => {
  const v = document.querySelector('video');
  const c = document.createElement('canvas');
  c.width = %(w)d; c.height = 84;
  const x = c.getContext('2d', { willReadFrequently: true });
  window.g2g = []; window.g2gBad = 0;
  const each = (now, md) => {
    const shown = Date.now() - (performance.now() - md.expectedDisplayTime);
    x.drawImage(v, 0, 0, %(w)d, 84, 0, 0, %(w)d, 84);
    const px = x.getImageData(0, 0, %(w)d, 84).data;
    let ms = 0, ok = true;
    for (let k = 0; k < %(bits)d; k++) {
      const cx = %(x0)d + k * %(step)d + %(half)d;
      const a = px[(22 * %(w)d + cx) * 4 + 1] > 128, b = px[(62 * %(w)d + cx) * 4 + 1] > 128;
      if (a === b) ok = false;
      if (a) ms += 2 ** k;
    }
    if (ok) window.g2g.push([shown, ms, md.mediaTime]); else window.g2gBad++;
    v.requestVideoFrameCallback(each);
  };
  v.requestVideoFrameCallback(each);
  return true;
})()"""


def page_js(width=640):
    return PAGE_JS % {"w": width, "bits": BITS, "x0": BOX_X0, "step": BOX_W + 2,
                      "half": BOX_W // 2}


def take(browser, since=0):
    """The samples from index `since` on: (display wall ms, picture ms, media time)."""
    return browser.eval("window.g2g.slice(%d)" % since)


def consistent(samples):
    """The samples whose barcode is the presented frame's: its time in the
    picture agrees (within a frame) with the media time Chromium reports
    for the frame presented (the two differ by a constant, where the fMP4
    timeline starts).  On a busy machine the video may move on between
    the presentation and the callback's canvas copy, and a later frame's
    barcode would make the latency look shorter: those are left out."""
    off = sorted(ms / 1000.0 - mt for _, ms, mt in samples)
    if not off:
        return []
    mid = off[len(off) // 2]
    return [x for x in samples if abs(x[1] / 1000.0 - x[2] - mid) <= 0.034]


def latencies(samples, base_s):
    """Glass-to-glass latency (ms) of each consistent sample."""
    return [shown - (base_s * 1000 + ms) for shown, ms, _ in consistent(samples)]


def pct(xs, q):
    s = sorted(xs)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, int(q * len(s)))]
