#!/usr/bin/python3
"""examples/smtp_server with real clients: curl's smtp://, Python's smtplib
(plain and STARTTLS), swaks; the messages land in a Maildir, dot-stuffing
undone; oversize, malformed and out-of-order commands get the reply codes
RFC 5321 gives them; a message is published to an `axon serve` topic."""

import glob
import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import servutil  # noqa: E402
from axtest import Failure, Lines, Proc, axon_bin, example  # noqa: E402

t = axtest.Tests("examples/smtp_server")
DIR = tempfile.mkdtemp(prefix="axtest-smtp-")


def cert():
    r = subprocess.run([axon_bin(), "cert", "--out", os.path.join(DIR, "c"), "--name",
                        "localhost"], capture_output=True, timeout=10)
    if r.returncode != 0:
        raise Failure("axon cert failed: %r" % r.stderr)
    return os.path.join(DIR, "c", "cert.pem"), os.path.join(DIR, "c", "key.pem")


CERT, KEY = cert()


class Smtp(Proc):
    """smtp_server on a free port with a fresh Maildir."""

    def __init__(self, *opts):
        self.maildir = tempfile.mkdtemp(prefix="md-", dir=DIR)
        super().__init__([example("smtp_server")] + list(opts) +
                         [self.maildir, "tcp://127.0.0.1:0"])
        out = self.wait_output(lambda o: axtest.SERVER_LINE.search(o) is not None,
                               what="the listening line")
        m = axtest.SERVER_LINE.search(out)
        _, self.host, self.port = axtest.split_url(m.group(1).decode())

    def messages(self, want, timeout=axtest.TIMEOUT):
        end = time.time() + timeout
        while True:
            # in delivery order: the names start with seconds, then M and microseconds
            files = sorted(glob.glob(os.path.join(self.maildir, "new", "*")))
            if len(files) >= want or time.time() > end:
                break
            time.sleep(0.05)
        t.eq(len(files), want, "messages in new/")
        t.eq(os.listdir(os.path.join(self.maildir, "tmp")), [], "tmp/ left empty")
        out = []
        for f in files:
            with open(f, "rb") as fh:
                out.append(fh.read())
        return out


def body_of(msg):
    """The message as the client sent it (after the trace fields we add)."""
    head, _, rest = msg.partition(b"\n\tby ")
    return rest.split(b"\n", 1)[1]


def rd(c):
    return c.line().rstrip("\r")


def talk(c, line):
    c.send(line + "\r\n")
    return rd(c)


def ehlo(c, name="client"):
    c.send("EHLO %s\r\n" % name)
    lines = [rd(c)]
    while lines[-1].startswith("250-"):
        lines.append(rd(c))
    t.eq(lines[-1][:4], "250 ", "end of the EHLO reply")
    return lines


@t.test
def curl_sends_a_file():
    srv = Smtp()
    path = os.path.join(DIR, "curl.txt")
    text = b"From: a@example.org\r\nSubject: hello\r\n\r\nline one\r\n.starts with a dot\r\n.\r\n"
    with open(path, "wb") as f:  # curl does the dot-stuffing; the lone "." must survive
        f.write(text)
    r = subprocess.run(["curl", "-sS", "smtp://%s:%d" % (srv.host, srv.port), "--mail-from",
                        "a@example.org", "--mail-rcpt", "b@example.org", "--mail-rcpt",
                        "c@example.org", "-T", path], capture_output=True, timeout=10)
    t.eq(r.returncode, 0, "curl's exit status (%r)" % r.stderr)
    [msg] = srv.messages(1)
    t.ok(msg.startswith(b"Return-Path: <a@example.org>\nDelivered-To: b@example.org\n"
                        b"Delivered-To: c@example.org\nReceived: from "), msg[:200])
    t.eq(body_of(msg), text.replace(b"\r\n", b"\n"), "the stored body")


@t.test
def smtplib_plain_and_pipelined():
    srv = Smtp()
    with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:
        code, ext = s.ehlo("client.example")
        t.eq(code, 250, "EHLO")
        for word in (b"PIPELINING", b"SIZE 10485760", b"8BITMIME"):
            t.ok(word in ext, "EHLO offers %r: %r" % (word, ext))
        t.ok(b"STARTTLS" not in ext, "no STARTTLS without a certificate")
        t.eq(s.noop()[0], 250, "NOOP")
        s.sendmail("x@example.org", ["y@example.org"],
                   "Subject: one\r\n\r\n..\r\n.\r\n.x\r\nend\r\n")
        t.eq(s.rset()[0], 250, "RSET")
        s.sendmail("<>", ["y@example.org"], "Subject: two\r\n\r\nbounce\r\n")
    one, two = srv.messages(2)
    t.eq(body_of(one), b"Subject: one\n\n..\n.\n.x\nend\n", "dot-stuffing undone")
    t.ok(two.startswith(b"Return-Path: <>\n"), "null reverse-path: %r" % two[:40])
    # RFC 2920: a whole transaction in one write, the replies in order
    c = Lines.connect(srv.host, srv.port)
    t.ok(rd(c).startswith("220 "), "greeting")
    ehlo(c, "p")
    c.send("MAIL FROM:<p@q>\r\nRCPT TO:<r@s>\r\nRCPT TO:<t@u>\r\nDATA\r\n")
    got = [rd(c)[:3] for _ in range(4)]
    t.eq(got, ["250", "250", "250", "354"], "pipelined replies")
    c.send("Subject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    t.ok(rd(c).startswith("250 2.0.0 Ok: queued as "), "stored")
    t.ok(rd(c).startswith("221 "), "QUIT")
    t.ok(c.closed_by_peer(), "closed after QUIT")
    srv.messages(3)


@t.test
def smtplib_starttls():
    srv = Smtp("--tls", CERT, KEY)
    ctx = ssl.create_default_context(cafile=CERT)
    with smtplib.SMTP("localhost", srv.port, timeout=5) as s:
        s.ehlo()
        t.ok(s.has_extn("starttls"), "STARTTLS offered")
        code, _ = s.starttls(context=ctx)
        t.eq(code, 220, "STARTTLS")
        t.ok(s.sock.version() in ("TLSv1.3", "TLSv1.2"), "TLS: %r" % s.sock.version())
        s.ehlo()
        t.ok(not s.has_extn("starttls"), "no STARTTLS offered inside TLS")
        s.sendmail("x@example.org", ["y@example.org"], "Subject: secret\r\n\r\nover TLS\r\n")
    [msg] = srv.messages(1)
    t.ok(b" with ESMTPS; " in msg, "Received says ESMTPS: %r" % msg[:300])
    t.ok(msg.endswith(b"\n\nover TLS\n"), "body: %r" % msg[-40:])


@t.test
def starttls_drops_what_was_pipelined_before_the_handshake():
    srv = Smtp("--tls", CERT, KEY)
    raw = socket.create_connection((srv.host, srv.port), timeout=5)
    c = Lines(raw)
    t.ok(rd(c).startswith("220 "), "greeting")
    ehlo(c, "a")
    # an attacker's injected command after STARTTLS must not run inside TLS
    c.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    t.eq(rd(c), "220 2.0.0 Ready to start TLS", "STARTTLS")
    t.eq(c.buf, b"", "nothing after the 220")
    ctx = ssl.create_default_context(cafile=CERT)
    tls = ctx.wrap_socket(raw, server_hostname="localhost")
    c = Lines(tls)
    c.send("MAIL FROM:<a@b>\r\n")
    t.eq(rd(c), "503 5.5.1 Send HELO or EHLO first", "the envelope starts over")
    ehlo(c, "a")
    t.eq(talk(c, "MAIL FROM:<a@b>"), "250 2.1.0 Ok", "MAIL inside TLS")
    t.eq(talk(c, "STARTTLS"), "454 4.7.0 TLS not available", "no second STARTTLS")
    tls.close()


@t.test
def swaks_with_and_without_tls():
    if not shutil.which("swaks"):
        raise Failure("swaks is not installed (scripts/deps.sh test group)")
    srv = Smtp("--tls", CERT, KEY)
    for extra in ([], ["-tls"]):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
                            "--from", "s@example.org", "--to", "w@example.org",
                            "--header", "Subject: swaks", "--body", "from swaks"] + extra,
                           capture_output=True, timeout=20)
        t.eq(r.returncode, 0, "swaks %r: %s" % (extra, r.stdout[-500:]))
    msgs = srv.messages(2)
    t.ok(b" with ESMTP; " in msgs[0] or b" with ESMTP; " in msgs[1], "one plain")
    t.ok(b" with ESMTPS; " in msgs[0] or b" with ESMTPS; " in msgs[1], "one over TLS")


@t.test
def reply_codes_for_bad_input():
    srv = Smtp("--max-size", "1000")
    c = Lines.connect(srv.host, srv.port)
    t.ok(rd(c).startswith("220 "), "greeting")
    t.eq(talk(c, "MAIL FROM:<a@b>"), "503 5.5.1 Send HELO or EHLO first", "MAIL before EHLO")
    t.eq(talk(c, "FOO bar"), "500 5.5.2 Syntax error, command unrecognized", "unknown verb")
    t.eq(talk(c, "HELO"), "501 5.5.4 Syntax error in parameters or arguments", "HELO no name")
    t.eq(talk(c, "helo me"), "250 localhost", "verbs are case-insensitive")
    t.eq(talk(c, "RCPT TO:<a@b>"), "503 5.5.1 Need MAIL before RCPT", "RCPT before MAIL")
    t.eq(talk(c, "DATA"), "503 5.5.1 Need MAIL command", "DATA before MAIL")
    t.eq(talk(c, "MAIL FROM:a@b"), "501 5.5.4 Syntax error in parameters or arguments",
         "path without brackets")
    t.eq(talk(c, "MAIL FROM:<a@b> FOO=1"),
         "555 5.5.4 MAIL FROM/RCPT TO parameters not recognized", "unknown parameter")
    t.eq(talk(c, "MAIL FROM:<a@b> SIZE=1001"),
         "552 5.3.4 Message size exceeds fixed maximum message size", "SIZE over the limit")
    t.eq(talk(c, "MAIL FROM:<a@b> SIZE=999"), "250 2.1.0 Ok", "SIZE within")
    t.eq(talk(c, "MAIL FROM:<a@b>"), "503 5.5.1 Sender already given", "nested MAIL")
    t.eq(talk(c, "DATA"), "554 5.5.1 No valid recipients", "DATA without RCPT")
    t.eq(talk(c, "RCPT TO:<>"), "501 5.5.4 Syntax error in parameters or arguments",
         "null forward-path")
    t.eq(talk(c, "RCPT TO:<" + "x" * 300 + ">"),
         "501 5.5.4 Syntax error in parameters or arguments", "path over 256 bytes")
    t.eq(talk(c, "RCPT TO:<w@x>"), "250 2.1.5 Ok", "RCPT")
    t.eq(talk(c, "DATA extra"), "501 5.5.4 Syntax error in parameters or arguments",
         "DATA with an argument")
    t.eq(talk(c, "X" * 600), "500 5.5.6 Line too long", "a command over 512 bytes")
    t.eq(talk(c, "NOOP"), "250 2.0.0 Ok", "the next line works again")
    t.eq(talk(c, "DATA"), "354 End data with <CR><LF>.<CR><LF>", "DATA")
    c.send(("y" * 900 + "\r\n") * 3 + ".\r\n")  # 2,700 bytes > 1,000
    t.eq(rd(c), "552 5.3.4 Message size exceeds fixed maximum message size", "oversize")
    t.eq(talk(c, "VRFY bob"), "252 2.5.2 Cannot VRFY user, but will accept the message", "VRFY")
    t.eq(talk(c, "RSET"), "250 2.0.0 Ok", "RSET")
    t.eq(os.listdir(os.path.join(srv.maildir, "new")), [], "nothing stored")
    t.eq(os.listdir(os.path.join(srv.maildir, "tmp")), [], "nothing left in tmp/")
    # a bare LF before the dot is not the end of the data (no smuggling)
    t.eq(talk(c, "MAIL FROM:<a@b>"), "250 2.1.0 Ok", "MAIL")
    t.eq(talk(c, "RCPT TO:<w@x>"), "250 2.1.5 Ok", "RCPT")
    t.eq(talk(c, "DATA"), "354 End data with <CR><LF>.<CR><LF>", "DATA")
    c.send("one\n.\nMAIL FROM:<smuggled@x>\r\n")
    t.ok(c.silent(0.3), "bare LF . bare LF ended nothing: %r" % c.buf)
    c.send(".\r\n")
    t.ok(rd(c).startswith("250 2.0.0 Ok: queued"), "ended by CRLF . CRLF")
    [msg] = srv.messages(1)
    t.ok(msg.endswith(b"one\n.\nMAIL FROM:<smuggled@x>\n"), "kept as text: %r" % msg[-60:])
    c.send("BAD\r\n" * 11)  # 7 bad commands so far: the 11th in all ends the session
    lines = [rd(c) for _ in range(4)]
    t.eq(lines[:3], ["500 5.5.2 Syntax error, command unrecognized"] * 3, "bad commands")
    t.eq(lines[3], "421 4.7.0 localhost Too many errors, closing", "too many errors")
    t.ok(c.closed_by_peer(), "closed")


@t.test
def published_to_the_hub():
    hub = servutil.Serve()
    port = hub.http_port
    srv = Smtp("--hub", "http://127.0.0.1:%d/api/publish/mail/inbox" % port)
    with smtplib.SMTP(srv.host, srv.port, timeout=5) as s:
        s.sendmail("a@example.org", ["b@example.org"], "Subject: to the hub\r\n\r\nx\r\n")
    srv.messages(1)
    url = "http://127.0.0.1:%d/api/history/mail/inbox" % port
    end = time.time() + axtest.TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = r.read().decode()
        except urllib.error.HTTPError as e:  # 404 until the topic has its first message
            body = "HTTP %d" % e.code
        if "to the hub" in body or time.time() > end:
            break
        time.sleep(0.1)
    t.ok("mail from <a@example.org> to <b@example.org>" in body and "to the hub" in body,
         "history: %s" % body[:300])
    json.loads(body)  # the API's JSON


t.main()
