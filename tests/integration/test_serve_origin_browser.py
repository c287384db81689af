#!/usr/bin/python3
"""axon serve and a page of another origin, in headless Chromium: a page
served by a second HTTP server (another port) tries `new WebSocket()` to
the hub and a `fetch(..., {method: 'POST', mode: 'no-cors'})` publish;
the hub refuses both (its history stays empty).  The same two calls from
the hub's own page work."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
import servutil  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("axon serve: a foreign page in Chromium is refused", alarm=180)
TMP = tempfile.mkdtemp(prefix="axon-origin-")

WS_JS = """new Promise((res) => {
  const ws = new WebSocket('ws://127.0.0.1:%d/ws');
  ws.onopen = () => { ws.close(); res('open'); };
  ws.onerror = () => res('error');
  setTimeout(() => res('timeout'), 5000);
})"""
POST_JS = """fetch('http://127.0.0.1:%d/api/publish/chat/lobby',
  {method: 'POST', mode: 'no-cors', body: %s}).then(() => 'sent', (e) => 'failed: ' + e)"""


def history(srv):
    _, out, _ = servutil.curl(srv.base + "/api/history/chat/lobby")
    return [m["payload"] for m in json.loads(out)["messages"]]


@t.test
def foreign_page_refused_own_page_served():
    srv = servutil.Serve("-d", "none")
    with open(os.path.join(TMP, "index.html"), "w") as f:
        f.write("<!doctype html><title>elsewhere</title><p>another site</p>\n")
    port = axtest.free_port()
    other = axtest.Proc(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                         str(port), "--directory", TMP], capture=True)
    other.wait_output(lambda o: b"Serving HTTP" in o, what="python's http.server")
    b = pageutil.Browser(ENV)
    try:
        foreign = b.open("http://127.0.0.1:%d/index.html" % port)
        t.eq(b.eval(WS_JS % srv.http_port, page=foreign), "error",
             "a WebSocket from a page of another origin")
        t.eq(b.eval(POST_JS % (srv.http_port, "'x'"), page=foreign), "sent",
             "the browser sent the no-cors POST (its answer is opaque)")
        t.eq(history(srv), [], "the hub published nothing")

        own = b.open(srv.base + "/?name=webby")
        t.eq(b.eval(WS_JS % srv.http_port, page=own), "open", "a WebSocket from the hub's page")
        t.eq(b.eval(POST_JS % (srv.http_port, "'from the page'"), page=own), "sent", "POST")
        t.eq(history(srv), ["from the page"], "the hub's own page published")
    finally:
        b.proc.stop()
        other.stop()
    srv.stop()


try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
