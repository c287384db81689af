#!/usr/bin/python3
"""test_static_large: `axon http --root` serving files of 2 GiB and more
(sparse, so they take no disk): the size in Content-Length, ranges across
the 2 GiB and 4 GiB marks and at the end (64-bit offsets in sendfile, in
the io_uring file path and in the pread of the TLS path), and a body of
more than 2 GiB read to its end.  The Windows build's twin is in
test_windows.py (http_serves_files_past_2_gib)."""

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import largefile  # noqa: E402

t = axtest.Tests("static files past 2 GiB", alarm=540)
TMP = tempfile.mkdtemp(prefix="axon-large-")
BIG = 5 * largefile.GiB + 3       # past 4 GiB: ranges only
WHOLE = 2 * largefile.GiB + 65539  # past 2 GiB: read to the end
MARKS = {}


def setup():
    MARKS["big"] = largefile.make(os.path.join(TMP, "big.bin"), BIG)
    MARKS["whole"] = largefile.make(os.path.join(TMP, "whole.bin"), WHOLE)


def start_http(*extra):
    port = axtest.free_port()
    p = axtest.Proc([axtest.axon_bin(), "http", "--root", TMP, "--listen",
                     "%s://127.0.0.1:%d" % ("tls" if extra else "tcp", port)] + list(extra))
    deadline = time.monotonic() + 20
    while "serving" not in p.stderr() and " on tls://" not in p.stderr():
        t.ok(p.running() and time.monotonic() < deadline, "axon http: %s" % p.stderr())
        time.sleep(0.05)
    return port


@t.test
def ranges_across_2_and_4_gib():
    port = start_http()
    largefile.check_ranges(t, port, "/big.bin", BIG, MARKS["big"])


@t.test
def whole_body_past_2_gib():
    port = start_http()
    largefile.check_whole(t, port, "/whole.bin", WHOLE, MARKS["whole"])


@t.test
def tls_ranges_across_2_and_4_gib():
    d = os.path.join(TMP, "cert")
    subprocess.run([axtest.axon_bin(), "cert", "--out", d, "--name", "localhost"], check=True,
                   capture_output=True, timeout=30)
    port = start_http("--cert", os.path.join(d, "cert.pem"), "--key", os.path.join(d, "key.pem"))
    ctx = ssl.create_default_context(cafile=os.path.join(d, "cert.pem"))
    ctx.check_hostname = False
    largefile.check_ranges(t, port, "/big.bin", BIG, MARKS["big"], https_context=ctx)


if __name__ == "__main__":
    setup()
    try:
        t.main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
