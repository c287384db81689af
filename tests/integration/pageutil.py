"""pageutil: headless Chromium driven from a Python test through
node/page_driver.js (playwright-core): open pages, evaluate JavaScript,
wait for conditions, type, click, take screenshots.  Also the layout check
the page tests share: nothing wider than the viewport."""

import json
import os
import subprocess

import axtest
import nodeutil


def available():
    """The environment for node, or None (with the reason printed)."""
    if not os.path.exists("/usr/bin/chromium"):
        print("not ok 1 - /usr/bin/chromium is not installed (scripts/deps.sh test installs it)")
        return None
    return nodeutil.ensure(("playwright-core",))


class Browser:
    def __init__(self, env):
        self.proc = axtest.Proc(["node", nodeutil.script("page_driver.js")],
                                stdin=subprocess.PIPE, capture=True, env=env)
        self.seen = 0
        self._next(60)

    def _next(self, timeout):
        out = self.proc.wait_output(lambda o: b"\n" in o[self.seen:], timeout=timeout,
                                    what="the browser's answer")
        end = out.index(b"\n", self.seen)
        line = out[self.seen:end].decode(errors="replace")
        self.seen = end + 1
        r = json.loads(line)
        if not r["ok"]:
            raise axtest.Failure("browser: %s" % r["error"])
        return r["value"]

    def do(self, op, timeout=30, **kw):
        kw["op"] = op
        self.proc.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.proc.p.stdin.flush()
        return self._next(timeout + (kw.get("ms", 0) / 1000.0))

    def open(self, url, w=1280, h=800):
        return self.do("open", url=url, w=w, h=h)

    def eval(self, js, page=0):
        return self.do("eval", page=page, js=js)

    def wait(self, js, ms=10000, page=0, what=None):
        try:
            return self.do("wait", page=page, js=js, ms=ms)
        except axtest.Failure as e:
            raise axtest.Failure("%s: %s" % (what or js, e))

    def shot(self, name, page=0):
        """A screenshot into $AXON_SCREENS (when set), for a person to look at."""
        d = os.environ.get("AXON_SCREENS")
        if d:
            os.makedirs(d, exist_ok=True)
            self.do("shot", page=page, path=os.path.join(d, name + ".png"))


# Every element inside the viewport's width, and no sideways scrolling.
# Hidden elements (no box) do not count; a few offenders are named.
OVERFLOW_JS = """(() => {
  const W = window.innerWidth, bad = [];
  const d = document.documentElement;
  if (d.scrollWidth > W) bad.push('document.scrollWidth ' + d.scrollWidth + ' > ' + W);
  if (document.body.scrollWidth > W) bad.push('body.scrollWidth ' + document.body.scrollWidth + ' > ' + W);
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -0.5 || r.right > W + 0.5 || r.width > W + 0.5)
      bad.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
               (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '') +
               ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  return bad.slice(0, 12);
})()"""
