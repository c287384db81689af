#!/usr/bin/python3
# axon-test: one backend (a browser page: what it checks does not depend on the event loop)
"""axon bench --html FILE in headless Chromium: the page opened from disk
(file://) draws its summary and both charts (latency by percentile, rate
and p99 over time) from the data inline, and asks for nothing: no
resource is loaded and the Content-Security-Policy forbids it."""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
from axtest import Failure, Proc, axon_bin  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon bench --html in Chromium", alarm=120)


@t.test
def the_page_draws_its_charts_offline():
    port = axtest.free_port_both()
    e = Proc([axon_bin(), "echo", "tcp://127.0.0.1:%d" % port])
    deadline = time.monotonic() + 10
    page = os.path.join(tempfile.mkdtemp(prefix="axon-bench-html-"), "report.html")
    while True:
        r = subprocess.run([axon_bin(), "bench", "--json", "-c", "2", "-R", "300", "-d", "2.2",
                            "--html", page, "tcp://127.0.0.1:%d" % port],
                           capture_output=True, timeout=30)
        rep = json.loads(r.stdout) if r.stdout.startswith(b"{") else None
        if rep and rep["count"] > 0:
            break
        if time.monotonic() > deadline:
            raise Failure("no run: %r %r" % (r.stdout[:200], r.stderr[-300:]))
        time.sleep(0.2)  # axon echo not listening yet
    b = pageutil.Browser(ENV)
    b.open("file://" + page, 1000, 900)
    got = b.eval("""(() => {
        const poly = id => [...document.querySelectorAll('#' + id + ' polyline')]
            .map(p => p.getAttribute('points').trim().split(/\\s+/).length);
        return {pct: poly('pct'), time: poly('time'),
                text: document.getElementById('sum').innerText,
                resources: performance.getEntriesByType('resource').length};
    })()""")
    print("# %r" % {k: got[k] for k in ("pct", "time", "resources")})
    t.eq(len(got["pct"]), 1, "one curve of latency by percentile")
    t.ok(got["pct"] and got["pct"][0] >= 2, "the curve has points: %r" % got["pct"])
    t.eq(len(got["time"]), 2, "rate and p99 over time")
    t.ok(min(got["time"]) >= 2, "a point a second: %r" % got["time"])
    t.ok("p99" in got["text"] and "open loop at 300" in got["text"],
         "the summary: %r" % got["text"][:300])
    t.eq(got["resources"], 0, "resources loaded by the page")


t.main()
