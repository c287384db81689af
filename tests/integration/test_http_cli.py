#!/usr/bin/python3
"""test_http_cli: the `axon http` command line: --help, serving on a Unix
socket (curl --unix-socket), and what it says about flags it does not know
or values it cannot use."""
import os
import shutil
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("axon http: command line")
TMP = tempfile.mkdtemp(prefix="axon-http-cli-")
with open(os.path.join(TMP, "hello.txt"), "w") as f:
    f.write("hello over unix\n")


def run(*args):
    """`axon http ARGS` to completion: (status, stdout, stderr)."""
    p = subprocess.run([axtest.axon_bin(), "http"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


@t.test
def help_exits_0():
    st, out, err = run("--help")
    t.eq(st, 0, "--help exit status")
    for flag in ("--root", "--listen", "--threads", "--body-timeout", "--idle-timeout"):
        t.ok(flag in out, "--help mentions %s: %r" % (flag, out[:300]))
    t.ok(out.startswith("Usage: axon http"), "usage first: %r" % out[:80])
    t.eq(err, "", "--help writes nothing to stderr")
    st2, out2, _ = run("-h")
    t.eq((st2, out2), (0, out), "-h is --help")


@t.test
def unix_socket_with_curl():
    sock = os.path.join(TMP, "h.sock")
    p = axtest.Proc([axtest.axon_bin(), "http", "--root", TMP, "--listen", "unix://" + sock])
    deadline = time.monotonic() + axtest.TIMEOUT
    while "serving" not in p.stderr():
        if time.monotonic() > deadline or not p.running():
            raise axtest.Failure("axon http did not start%s" % p.err_note())
        time.sleep(0.02)
    t.ok("unix://" + sock in p.stderr(), "listening line names the socket: %r" % p.stderr())
    c = subprocess.run(["curl", "-sS", "--max-time", "5", "--unix-socket", sock, "-D", "-",
                        "http://localhost/hello.txt"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    t.eq(c.returncode, 0, "curl exit status (%s)" % c.stderr.decode(errors="replace"))
    out = c.stdout.decode(errors="replace")
    t.ok(out.startswith("HTTP/1.1 200 OK\r\n"), "status line: %r" % out[:100])
    t.ok(out.endswith("\r\n\r\nhello over unix\n"), "body: %r" % out[-100:])
    p.signal(15)
    t.exits(p, 0, "SIGTERM stops it with status 0")
    t.ok(not os.path.exists(sock), "socket file removed on exit")


@t.test
def unknown_flag_fails_with_message():
    st, out, err = run("--no-such-flag")
    t.ok(st != 0, "exit status %d for an unknown flag" % st)
    t.ok("no-such-flag" in err, "stderr names the flag: %r" % err[:300])
    t.ok("Usage: axon http" in err, "stderr shows the usage: %r" % err[:300])
    t.eq(out, "", "nothing on stdout")
    st, out, err = run("stray-folder")
    t.ok(st != 0, "exit status %d for a positional argument" % st)
    t.ok("stray-folder" in err and "--root" in err, "stderr says why: %r" % err[:300])


@t.test
def bad_values_fail_with_message():
    for args, says in ((["--body-timeout", "0"], "--body-timeout"),
                       (["--body-timeout", "1.5s"], "--body-timeout"),
                       (["--body-timeout", "-3"], "--body-timeout"),
                       (["--threads", "0"], "--threads"),
                       (["--idle-timeout", "x"], "--idle-timeout"),
                       (["--listen", "udp://127.0.0.1:0"], "udp://")):
        st, out, err = run(*args)
        t.ok(st != 0, "exit status %d for %s" % (st, args))
        t.ok(says in err, "stderr for %s names %s: %r" % (args, says, err[:300]))
        t.ok("serving" not in err, "%s did not start serving: %r" % (args, err[:300]))


def curl(*args):
    c = subprocess.run(["curl", "-sS", "--max-time", "5", "-D", "-"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return c.returncode, c.stdout.decode(errors="replace"), c.stderr.decode(errors="replace")


@t.test
def echo_routes_over_the_folder():
    """--echo / and --stream-echo / are laid over the folder served at /:
    the route asked for answers (it was the folder's 405)."""
    for flag, body in (("--echo", "echo me\n"), ("--stream-echo", "stream me\n" * 1000)):
        port = axtest.free_port()
        p = axtest.Proc([axtest.axon_bin(), "http", "--root", TMP, flag, "/",
                         "--listen", "tcp://127.0.0.1:%d" % port])
        deadline = time.monotonic() + axtest.TIMEOUT
        while "serving" not in p.stderr():
            if time.monotonic() > deadline or not p.running():
                raise axtest.Failure("axon http %s / did not start%s" % (flag, p.err_note()))
            time.sleep(0.02)
        for path in ("/", "/hello.txt", "/any/where"):
            st, out, err = curl("--data-binary", body, "http://127.0.0.1:%d%s" % (port, path))
            t.eq(st, 0, "curl exit status (%s)" % err)
            t.ok(out.startswith("HTTP/1.1 200 OK\r\n"), "%s POST %s: %r" % (flag, path, out[:100]))
            t.ok(out.endswith("\r\n\r\n" + body), "%s POST %s body: %r" % (flag, path, out[-80:]))
        p.signal(15)
        t.exits(p, 0, "SIGTERM stops it with status 0")
    port = axtest.free_port()  # below its own path, the folder still serves
    p = axtest.Proc([axtest.axon_bin(), "http", "--root", TMP, "--echo", "/echo",
                     "--listen", "tcp://127.0.0.1:%d" % port])
    deadline = time.monotonic() + axtest.TIMEOUT
    while "serving" not in p.stderr():
        if time.monotonic() > deadline or not p.running():
            raise axtest.Failure("axon http --echo /echo did not start%s" % p.err_note())
        time.sleep(0.02)
    st, out, _ = curl("http://127.0.0.1:%d/hello.txt" % port)
    t.ok(out.endswith("hello over unix\n"), "the folder at /: %r" % out[-80:])
    st, out, _ = curl("--data-binary", "x", "http://127.0.0.1:%d/echo/1" % port)
    t.ok(out.startswith("HTTP/1.1 200 OK\r\n") and out.endswith("\r\n\r\nx"), out[-80:])
    p.signal(15)
    t.exits(p, 0, "SIGTERM stops it with status 0")


try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
