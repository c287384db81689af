#!/usr/bin/python3
"""test_auth_token: `axon token` prints a JWT that an independent verifier
(Python's hmac, base64 and json) accepts with the claims asked for, and
`axon token --verify` (the server's own checks) accepts it and refuses
forgeries made in Python: another key, alg none, an RS256 header MACed
with the secret, expired and not-yet-valid tokens, a changed claim."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time

import axtest

t = axtest.Tests("axon token")
TMP = tempfile.mkdtemp(prefix="axon-token-")
SECRET = os.path.join(TMP, "secret")
KEY = base64.b64encode(os.urandom(48))
with open(SECRET, "wb") as f:
    f.write(KEY + b"\n")  # the newline is not part of the key
os.chmod(SECRET, 0o600)


def run(*args, stdin=None):
    """`axon token ARGS` to completion: (status, stdout, stderr)."""
    p = subprocess.run([axtest.axon_bin(), "token"] + list(args), input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def python_verify(tok, key=KEY):
    """The claims of `tok` if HS256 under `key` checks out, else None."""
    h, p, s = tok.split(".")
    if json.loads(unb64url(h)).get("alg") != "HS256":
        return None
    mac = hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(mac, unb64url(s)):
        return None
    return json.loads(unb64url(p))


def python_sign(header, claims, key=KEY):
    h = b64url(json.dumps(header).encode())
    p = b64url(json.dumps(claims).encode())
    return h + "." + p + "." + b64url(hmac.new(key, (h + "." + p).encode(), hashlib.sha256).digest())


@t.test
def help_exits_0():
    st, out, err = run("--help")
    t.eq(st, 0, "--help exit status")
    t.ok(out.startswith("Usage: axon token"), out[:80])
    for flag in ("--secret", "--user", "--pub", "--sub", "--ttl", "--verify"):
        t.ok(flag in out, "--help mentions %s" % flag)
    t.eq(err, "", "nothing on stderr")
    out = subprocess.run([axtest.axon_bin(), "--help"], stdout=subprocess.PIPE).stdout.decode()
    t.ok("\n  token " in out, "axon --help lists token")


@t.test
def python_verifies_the_token():
    before = int(time.time())
    st, out, err = run("--secret", SECRET, "--user", "alice", "--pub", "chat/#",
                       "--sub", "chat/#", "--sub", "user/%u/#", "--ttl", "1h")
    t.eq(st, 0, "exit status (stderr %r)" % err)
    tok = out.strip()
    t.eq(out.count("\n"), 1, "one line")
    hdr = json.loads(unb64url(tok.split(".")[0]))
    t.eq(hdr.get("alg"), "HS256", "header alg")
    c = python_verify(tok)
    t.ok(c is not None, "Python's HMAC-SHA256 accepts the signature")
    t.eq(c["sub"], "alice", "sub")
    t.ok(before + 3600 <= c["exp"] <= int(time.time()) + 3600, "exp is now + 1h: %r" % c)
    t.eq(c["axon"]["pub"], ["chat/#"], "pub filters")
    t.eq(c["axon"]["sub"], ["chat/#", "user/%u/#"], "sub filters (as given)")
    t.ok(python_verify(tok, KEY + b"x") is None, "another key fails")
    st, out, err = run("--secret", SECRET, "--verify", tok)
    t.eq(st, 0, "axon token --verify accepts it: %r" % err)
    t.ok("user alice\n" in out and "sub chat/# user/alice/#\n" in out, out)


@t.test
def axon_verifies_python_tokens():
    now = int(time.time())
    good = {"sub": "bob", "exp": now + 600, "axon": {"pub": ["a/%u"], "sub": ["a/#"]}}
    st, out, err = run("-s", SECRET, "-V", python_sign({"alg": "HS256", "typ": "JWT"}, good))
    t.eq(st, 0, "a Python-made token passes: %r" % err)
    t.ok("pub a/bob\n" in out, out)
    tok = python_sign({"alg": "HS256"}, good)
    st, out, _ = run("-s", SECRET, "-V", "-", stdin=(tok + "\n").encode())
    t.eq(st, 0, "--verify - reads stdin")
    cases = [
        ("another key", python_sign({"alg": "HS256"}, good, b"k" * 48), "bad token signature"),
        ("alg none", b64url(b'{"alg":"none"}') + "." + b64url(json.dumps(good).encode()) + ".",
         "alg none"),
        ("RS256 header MACed with the secret", python_sign({"alg": "RS256"}, good),
         "'RS256' refused"),
        ("expired", python_sign({"alg": "HS256"}, dict(good, exp=now - 120)), "expired"),
        ("not yet valid", python_sign({"alg": "HS256"}, dict(good, nbf=now + 600)), "not valid"),
        ("no exp", python_sign({"alg": "HS256"}, {"sub": "bob"}), "no expiry"),
        ("bad filter", python_sign({"alg": "HS256"}, dict(good, axon={"sub": ["a/#/b"]})),
         "not a valid topic filter"),
        ("oversized", python_sign({"alg": "HS256"}, dict(good, pad="x" * 9000)), "too long"),
    ]
    h, p, s = tok.split(".")
    forged = dict(good, sub="mallory")
    cases.append(("a changed claim", h + "." + b64url(json.dumps(forged).encode()) + "." + s,
                  "bad token signature"))
    for what, bad, reason in cases:
        st, out, err = run("-s", SECRET, "-V", bad)
        t.eq(st, 1, "%s: refused" % what)
        t.ok(reason in err, "%s: the reason says %r: %r" % (what, reason, err))
        t.eq(out, "", "%s: no claims printed" % what)


@t.test
def errors_are_clear():
    short = os.path.join(TMP, "short")
    with open(short, "w") as f:
        f.write("tooshort\n")
    st, _, err = run("--secret", short, "--user", "a")
    t.eq(st, 1, "short secret: exit 1")
    t.ok("too short" in err and "at least 32" in err and short in err, err)
    st, _, err = run("--secret", os.path.join(TMP, "missing"), "--user", "a")
    t.ok(st == 1 and "cannot open" in err, err)
    st, _, err = run("--user", "a")
    t.ok(st == 2 and "--secret FILE is required" in err, err)
    st, _, err = run("--secret", SECRET)
    t.ok(st == 2 and "--user NAME is required" in err, err)
    st, _, err = run("--secret", SECRET, "--user", "a/b")
    t.ok(st == 2 and "not usable" in err, err)
    st, _, err = run("--secret", SECRET, "--user", "a", "--pub", "chat/#/x")
    t.ok(st == 2 and "'chat/#/x' is not a valid topic filter" in err, err)
    for bad in ("0", "-1h", "1y", "1hh", "400d", "x"):
        st, _, err = run("--secret", SECRET, "--user", "a", "--ttl", bad)
        t.ok(st == 2 and "--ttl wants" in err, "--ttl %s: %r" % (bad, err))
    for ttl, secs in (("90", 90), ("90s", 90), ("15m", 900), ("7d", 7 * 86400)):
        st, out, _ = run("--secret", SECRET, "--user", "a", "--ttl", ttl)
        c = python_verify(out.strip())
        t.ok(st == 0 and abs(c["exp"] - int(time.time()) - secs) <= 2, "--ttl %s" % ttl)


try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
