#!/usr/bin/python3
# axon-test: one backend (what it checks does not depend on the event loop)
"""docs/cat.md stays true to `axon cat`: the options table lists the
options of `--help` (and no others), and the error lines the page shows are
what the program prints, with exit status 1."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402

SRC = os.environ.get("AXON_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
t = axtest.Tests("docs/cat.md")


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


def block_after(text, marker):
    at = text.index(marker)
    return re.search(r"```\n(.*?)```", text[at:], re.S).group(1).splitlines()


def cat(*args):
    p = subprocess.run([axtest.axon_bin(), "cat"] + list(args), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=20)
    return p.returncode, p.stderr.decode(errors="replace")


@t.test
def options_table_is_the_help():
    doc = read("docs/cat.md")
    table = doc[doc.index("## Options"):doc.index("## TLS")]
    documented = set(re.findall(r"`(--[a-z-]+)[ `]", table))
    out = subprocess.run([axtest.axon_bin(), "cat", "--help"], capture_output=True,
                         timeout=10).stdout.decode()
    helped = set(re.findall(r"^\s+(?:-\w, )?(--[a-z-]+)", out, re.M))
    t.ok(len(helped) >= 10, "only %r in --help" % helped)
    t.eq(sorted(documented - helped), [], "in docs/cat.md but not in --help")
    t.eq(sorted(helped - documented), [], "in --help but not in docs/cat.md")


@t.test
def error_examples_are_what_cat_prints():
    lines = block_after(read("docs/cat.md"), "## Errors")
    t.ok(len(lines) >= 4, "only %r" % lines)
    ran = 0
    for want in lines:
        if "timed out resolving" in want:
            continue  # needs a DNS server that does not answer
        m = re.search(r"(?:to |in ')(\w+://[^ ':]+(?::\d+)?)", want)
        t.ok(m, "no URL in %r" % want)
        rc, err = cat(m.group(1))
        t.eq(err.strip(), want, "axon cat %s" % m.group(1))
        t.eq(rc, 1, "exit status of axon cat %s" % m.group(1))
        ran += 1
    t.ok(ran >= 4, "only %d examples ran" % ran)


@t.test
def tls_refusal_example_is_what_cat_prints():
    want = block_after(read("docs/cat.md"), "ends the program with the reason")[0]
    tmp = tempfile.mkdtemp(prefix="axon-doccat-")
    try:
        subprocess.run([axtest.axon_bin(), "cert", "--out", tmp], capture_output=True,
                       timeout=20, check=True)
        srv = axtest.Proc([axtest.axon_bin(), "cat", "-l", "-v", "tls://127.0.0.1:0", "--cert",
                           os.path.join(tmp, "cert.pem"), "--key",
                           os.path.join(tmp, "key.pem")], stdin=subprocess.PIPE)
        port = None
        for _ in range(250):
            m = re.search(r"listening on tls://127\.0\.0\.1:(\d+)", srv.stderr())
            if m:
                port = m.group(1)
                break
            time.sleep(0.02)
        t.ok(port, "the listener printed no port%s" % srv.err_note())
        rc, err = cat("tls://localhost:%s" % port)
        t.eq(err.strip(), want.replace(":7443", ":" + port), "axon cat tls://localhost")
        t.eq(rc, 1, "exit status")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


t.main()
