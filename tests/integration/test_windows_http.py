#!/usr/bin/python3
"""test_windows_http: the Linux build's HTTP server tests run against the
Windows build under Wine.  test_http_static.py (curl: keep-alive, Range,
conditional requests, HEAD, index and listings, paths that try to leave
the root) and test_http_protocol.py (pipelining, limits, chunked bodies,
errors, the http_hello example) are run as they are, with a build folder
whose `axon` and `examples/http_hello` start the .exe files under Wine.
Every case must pass but those that do not apply on Windows, named below
with the reason.  Runs on the epoll pass only, like test_windows.py (whose
set-up and skips it shares)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_windows as tw  # noqa: E402  (skips here when there is no Windows build or Wine)

# A Wine prefix of its own: ctest runs this beside test_windows.py, and each
# script's `wineserver -k` at its end would end the other's programs (CI's
# test_windows lost axon_unit.exe mid-run that way when they shared one).
tw.ENV["WINEPREFIX"] = os.environ.get("AXON_WINEPREFIX_HTTP",
                                      "/tmp/axon-wine-http-%d" % os.getuid())
t = tw.axtest.Tests("the HTTP server tests on the Windows build under wine", alarm=560)
HERE = os.path.dirname(os.path.abspath(__file__))

NOT_HERE = {
    "access_log_off_by_default": "stops the server with SIGTERM and wants a clean exit: a "
                                 "Windows program has no SIGTERM (Wine ends it)",
    "sendfile_carries_the_file": "runs the server under strace to see sendfile(2): Linux-only",
    "threads": "--threads shares one port with SO_REUSEPORT, which Windows does not have",
}


def wine_build():
    """A build folder whose programs are the Windows ones under Wine."""
    d = os.path.join(tw.TMP, "winebuild")
    os.makedirs(os.path.join(d, "examples"), exist_ok=True)
    for name, exe in (("axon", "axon.exe"), ("examples/http_hello", "examples/http_hello.exe")):
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write('#!/bin/sh\nexec wine "%s" "$@"\n' % os.path.join(tw.WIN, exe))
        os.chmod(path, 0o755)
    return d


def run_script(script):
    env = dict(tw.ENV, AXON_BUILD=wine_build())
    r = subprocess.run([sys.executable, os.path.join(HERE, script), env["AXON_BUILD"]], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=500)
    out = r.stdout.decode(errors="replace")
    passed = re.findall(r"^ok \d+ - (\w+)", out, re.M)
    failed = re.findall(r"^not ok \d+ - (\w+)", out, re.M)
    t.ok(passed, "%s ran nothing: %s %s" % (script, out[-500:], r.stderr[-500:]))
    bad = [n for n in failed if n not in NOT_HERE]
    t.ok(not bad, "%s under Wine: %s failed:\n%s" % (script, bad, out[-3000:]))
    for n in failed:
        print("# %s: not on Windows: %s" % (n, NOT_HERE[n]), flush=True)
    print("# %s: %d passed under Wine" % (script, len(passed)), flush=True)
    t.ok(len(passed) >= 10, "%s: only %d cases passed" % (script, len(passed)))


@t.test
def http_static_tests_pass_on_windows():
    run_script("test_http_static.py")


@t.test
def http_protocol_tests_pass_on_windows():
    run_script("test_http_protocol.py")


if __name__ == "__main__":
    subprocess.run(["wineserver", "-p"], env=tw.ENV)
    subprocess.run(["wineboot"], env=tw.ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    try:
        t.main()
    finally:
        subprocess.run(["wineserver", "-k"], env=tw.ENV)
