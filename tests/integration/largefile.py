"""largefile: a sparse file past the 2 GiB and 4 GiB marks, and the checks
of a static file server serving it (test_static_large.py on Linux,
test_windows.py for the Windows build): its size, ranges across the marks
(64-bit offsets in sendfile, pread and Content-Range), and a whole body
of more than 2 GiB read to its end.  Sparse: it takes no disk space."""

import http.client
import os

GiB = 1 << 30


def make(path, size):
    """A sparse file of `size` bytes with 16 random bytes around 2 GiB, 4 GiB
    and its end (those inside it); returns {offset: bytes}."""
    marks = {}
    with open(path, "wb") as f:
        f.truncate(size)
        for off in (0, 2 * GiB - 8, 4 * GiB - 8, size - 16):
            if 0 <= off and off + 16 <= size:
                b = os.urandom(16)
                os.pwrite(f.fileno(), b, off)
                marks[off] = b
    return marks


def expect(marks, start, n):
    """What the file holds at [start, start+n): zeros but for the marks."""
    out = bytearray(n)
    for off, b in marks.items():
        for i in range(16):
            if start <= off + i < start + n:
                out[off + i - start] = b[i]
    return bytes(out)


def check_ranges(t, port, path, size, marks, https_context=None):
    """HEAD says the size; ranges across each mark and a suffix range come
    back byte for byte with their Content-Range."""
    def conn():
        if https_context:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=120,
                                               context=https_context)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    c = conn()
    c.request("HEAD", path)
    r = c.getresponse()
    r.read()
    t.eq(r.status, 200, "HEAD %s" % path)
    t.eq(r.getheader("Content-Length"), str(size), "Content-Length of a %d-byte file" % size)
    for off in sorted(marks):
        a, b = max(0, off - 8), min(size - 1, off + 23)
        c.request("GET", path, headers={"Range": "bytes=%d-%d" % (a, b)})
        r = c.getresponse()
        body = r.read()
        t.eq(r.status, 206, "range %d-%d" % (a, b))
        t.eq(r.getheader("Content-Range"), "bytes %d-%d/%d" % (a, b, size),
             "Content-Range of %d-%d" % (a, b))
        t.ok(body == expect(marks, a, b - a + 1), "range %d-%d: the bytes differ" % (a, b))
    c.request("GET", path, headers={"Range": "bytes=-16"})
    r = c.getresponse()
    body = r.read()
    t.eq((r.status, r.getheader("Content-Range")), (206, "bytes %d-%d/%d" % (size - 16, size - 1, size)),
         "the last 16 bytes")
    t.ok(body == marks[size - 16], "the last 16 bytes differ")
    c.close()


def check_whole(t, port, path, size, marks):
    """The whole body, read to its end: every byte counted, the marks where
    they belong (the rest is zeros, checked a chunk at a time)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    c.request("GET", path)
    r = c.getresponse()
    t.eq(r.status, 200, "GET %s" % path)
    t.eq(r.getheader("Content-Length"), str(size), "Content-Length")
    got, bad = 0, None
    zeros = bytes(1 << 20)
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        n = len(chunk)
        if any(got < off + 16 and off < got + n for off in marks):
            ok = chunk == expect(marks, got, n)
        else:
            ok = chunk == zeros[:n]
        if not ok and bad is None:
            bad = got
        got += n
    c.close()
    t.eq(got, size, "bytes of the whole body")
    t.ok(bad is None, "the body differs from the file in the MiB at %s" % bad)
