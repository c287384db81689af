#!/usr/bin/python3
"""examples/ftp_server with real clients: curl's ftp:// (list, get, put,
resume both ways), Python's ftplib (plain and AUTH TLS with PROT P) and
lftp; path traversal through "..", through symbolic links and through the
data port of someone else's transfer is refused; anonymous users only
read; bad commands get RFC 959's reply codes."""

import ftplib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Lines, Proc, axon_bin, example  # noqa: E402

t = axtest.Tests("examples/ftp_server")
DIR = tempfile.mkdtemp(prefix="axtest-ftp-")
BIG = os.urandom(3 * 1024 * 1024 + 17)  # several writes, past the high watermark


def cert():
    r = subprocess.run([axon_bin(), "cert", "--out", os.path.join(DIR, "c"), "--name",
                        "localhost"], capture_output=True, timeout=10)
    if r.returncode != 0:
        raise Failure("axon cert failed: %r" % r.stderr)
    return os.path.join(DIR, "c", "cert.pem"), os.path.join(DIR, "c", "key.pem")


CERT, KEY = cert()
SECRET = os.path.join(DIR, "secret.txt")  # outside every root
with open(SECRET, "w") as f:
    f.write("top secret\n")


class Ftp(Proc):
    """ftp_server on a free port over a fresh root with a few files."""

    def __init__(self, *opts):
        self.root = tempfile.mkdtemp(prefix="root-", dir=DIR)
        os.mkdir(os.path.join(self.root, "sub"))
        with open(os.path.join(self.root, "hello.txt"), "wb") as f:
            f.write(b"hello, ftp\n")
        with open(os.path.join(self.root, "sub", "big.bin"), "wb") as f:
            f.write(BIG)
        os.symlink(SECRET, os.path.join(self.root, "link-out"))
        os.symlink(DIR, os.path.join(self.root, "dir-out"))
        os.symlink("hello.txt", os.path.join(self.root, "link-in"))
        super().__init__([example("ftp_server")] + list(opts) + [self.root, "tcp://127.0.0.1:0"])
        out = self.wait_output(lambda o: axtest.SERVER_LINE.search(o) is not None,
                               what="the listening line")
        m = axtest.SERVER_LINE.search(out)
        _, self.host, self.port = axtest.split_url(m.group(1).decode())
        self.url = "ftp://%s:%d" % (self.host, self.port)

    def path(self, *p):
        return os.path.join(self.root, *p)


def curl(*args, ok=True):
    r = subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args), capture_output=True,
                       timeout=30)
    if ok and r.returncode != 0:
        raise Failure("curl %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def read(path):
    with open(path, "rb") as f:
        return f.read()


@t.test
def curl_list_get_put_resume():
    srv = Ftp("--user", "joe:s3cret")
    up = "-u", "joe:s3cret"
    listing = curl(*up, srv.url + "/").stdout.decode()
    t.ok(re.search(r"^d\S+ .* sub\r?$", listing, re.M), "LIST shows the folder: %r" % listing)
    t.ok(re.search(r"^-\S+ .* 11 .* hello.txt\r?$", listing, re.M), "and the file: %r" % listing)
    names = curl(*up, "--list-only", srv.url + "/").stdout.decode().split()
    t.eq(sorted(names), ["dir-out", "hello.txt", "link-in", "link-out", "sub"], "NLST")
    t.eq(curl(*up, srv.url + "/hello.txt").stdout, b"hello, ftp\n", "RETR")
    t.eq(curl(*up, srv.url + "/sub/big.bin").stdout, BIG, "RETR of 3 MiB")
    t.eq(curl(*up, srv.url + "/link-in").stdout, b"hello, ftp\n", "a link inside the root")
    # download resume: REST
    part = os.path.join(DIR, "part.bin")
    with open(part, "wb") as f:
        f.write(BIG[:1000000])
    curl(*up, "-C", "-", "-o", part, srv.url + "/sub/big.bin")
    t.eq(read(part), BIG, "resumed download")
    # upload, then upload resume: SIZE then APPE
    src = os.path.join(DIR, "up.bin")
    with open(src, "wb") as f:
        f.write(BIG)
    curl(*up, "-T", src, srv.url + "/sub/new/", "--ftp-create-dirs")
    t.eq(read(srv.path("sub", "new", "up.bin")), BIG, "STOR into a new folder")
    with open(srv.path("sub", "new", "up.bin"), "r+b") as f:
        f.truncate(123457)
    curl(*up, "-C", "-", "-T", src, srv.url + "/sub/new/up.bin")
    t.eq(read(srv.path("sub", "new", "up.bin")), BIG, "resumed upload")
    r = curl("-u", "joe:wrong", srv.url + "/", ok=False)
    t.eq(r.returncode, 67, "curl with a wrong password (login denied)")


@t.test
def ftplib_commands():
    srv = Ftp("--user", "joe:s3cret")
    f = ftplib.FTP()
    f.connect(srv.host, srv.port, timeout=5)
    t.ok(f.getwelcome().startswith("220 "), "welcome")
    f.login("joe", "s3cret")
    t.eq(f.sendcmd("SYST"), "215 UNIX Type: L8", "SYST")
    feat = f.sendcmd("FEAT")
    for word in ("EPSV", "PASV", "SIZE", "MDTM", "REST STREAM", "MLSD"):
        t.ok(word in feat, "FEAT has %s: %r" % (word, feat))
    t.eq(f.pwd(), "/", "PWD")
    f.cwd("sub")
    t.eq(f.pwd(), "/sub", "CWD")
    t.eq(f.size("big.bin"), len(BIG), "SIZE")
    t.ok(re.match(r"213 \d{14}$", f.sendcmd("MDTM big.bin")), "MDTM")
    f.sendcmd("CDUP")
    t.eq(f.pwd(), "/", "CDUP")
    facts = dict(f.mlsd())
    t.eq(facts["sub"]["type"], "dir", "MLSD type of a folder")
    t.eq(facts["hello.txt"]["size"], "11", "MLSD size")
    t.eq(sorted(f.nlst()), ["dir-out", "hello.txt", "link-in", "link-out", "sub"], "NLST")
    for passive_cmd in ("EPSV", "PASV"):
        f.af = socket.AF_INET if passive_cmd == "PASV" else socket.AF_INET6  # ftplib picks by af
        got = bytearray()
        f.retrbinary("RETR sub/big.bin", got.extend)
        t.eq(bytes(got), BIG, "RETR after %s" % passive_cmd)
    f.af = socket.AF_INET
    got = bytearray()
    f.retrbinary("RETR hello.txt", got.extend, rest=7)
    t.eq(bytes(got), b"ftp\n", "REST 7 then RETR")
    import io
    f.storbinary("STOR new.txt", io.BytesIO(b"first "))
    f.storbinary("APPE new.txt", io.BytesIO(b"second\n"))
    t.eq(read(srv.path("new.txt")), b"first second\n", "STOR then APPE")
    f.storbinary("STOR new.txt", io.BytesIO(b"XX"), rest=6)
    t.eq(read(srv.path("new.txt")), b"first XX", "REST 6 then STOR")
    t.eq(f.mkd("made"), "/made", "MKD")
    t.ok(os.path.isdir(srv.path("made")), "made on disk")
    f.rename("new.txt", "made/renamed.txt")
    t.ok(os.path.exists(srv.path("made", "renamed.txt")), "RNFR/RNTO")
    t.ok(f.delete("made/renamed.txt").startswith("250"), "DELE")
    t.ok(f.rmd("made").startswith("250"), "RMD")
    t.ok(not os.path.exists(srv.path("made")), "gone")
    t.eq(f.sendcmd("TYPE A"), "200 Type set to A", "TYPE A")
    t.eq(f.sendcmd("TYPE I"), "200 Type set to I", "TYPE I")
    f.quit()


@t.test
def ftplib_auth_tls_and_prot_p():
    srv = Ftp("--user", "joe:s3cret", "--tls", CERT, KEY)
    ctx = ssl.create_default_context(cafile=CERT)
    f = ftplib.FTP_TLS(context=ctx)
    f.connect("localhost", srv.port, timeout=5)
    t.ok("AUTH TLS" in f.sendcmd("FEAT"), "FEAT offers AUTH TLS")
    f.login("joe", "s3cret")  # AUTH TLS first, then USER/PASS inside TLS
    t.ok(isinstance(f.sock, ssl.SSLSocket), "control connection in TLS")
    f.prot_p()
    got = bytearray()
    f.retrbinary("RETR sub/big.bin", got.extend)
    t.eq(bytes(got), BIG, "RETR over a TLS data connection")
    import io
    f.storbinary("STOR tls.txt", io.BytesIO(b"private\n"))
    t.eq(read(srv.path("tls.txt")), b"private\n", "STOR over TLS")
    f.prot_c()
    t.ok("hello.txt" in f.nlst(), "NLST in the clear after PROT C")
    f.quit()
    r = curl("--ssl-reqd", "--cacert", CERT, "-u", "joe:s3cret",
             "ftp://localhost:%d/hello.txt" % srv.port)
    t.eq(r.stdout, b"hello, ftp\n", "curl --ssl-reqd")


@t.test
def lftp_get_put_mirror():
    if not shutil.which("lftp"):
        raise Failure("lftp is not installed (scripts/deps.sh test group)")
    srv = Ftp("--user", "joe:s3cret")
    work = tempfile.mkdtemp(prefix="lftp-", dir=DIR)
    with open(os.path.join(work, "local.txt"), "w") as f:
        f.write("from lftp\n")
    script = ("set net:max-retries 1; set net:timeout 10; set ftp:ssl-allow no; "
              "open -u joe,s3cret -p %d %s; ls; get hello.txt -o %s/got.txt; "
              "put %s/local.txt -o sub/local.txt; mirror sub %s/mirror; quit" %
              (srv.port, srv.host, work, work, work))
    r = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=60)
    t.eq(r.returncode, 0, "lftp: %r" % r.stderr[-300:])
    t.ok(b"hello.txt" in r.stdout, "ls: %r" % r.stdout)
    t.eq(read(os.path.join(work, "got.txt")), b"hello, ftp\n", "get")
    t.eq(read(srv.path("sub", "local.txt")), b"from lftp\n", "put")
    t.eq(read(os.path.join(work, "mirror", "big.bin")), BIG, "mirror")


def session(srv, user="joe", password="s3cret"):
    c = Lines.connect(srv.host, srv.port)
    t.ok(c.line().startswith("220 "), "greeting")
    if user:
        t.ok(talk(c, "USER " + user).startswith("331 "), "USER")
        t.ok(talk(c, "PASS " + password).startswith("230 "), "PASS")
    return c


def talk(c, line):
    c.send(line + "\r\n")
    return c.line().rstrip("\r")


@t.test
def traversal_refused():
    srv = Ftp("--user", "joe:s3cret")
    c = session(srv)
    for path in ("..", "../..", "/..", "sub/../..", "/sub/../../etc"):
        t.eq(talk(c, "CWD " + path), "550 Permission denied: outside the root", "CWD " + path)
    t.eq(talk(c, "PWD"), '257 "/" is the current folder', "still at the root")
    t.eq(talk(c, "CWD dir-out"), "550 Permission denied: outside the root",
         "CWD into a link out")
    for cmd in ("SIZE ../secret.txt", "SIZE link-out", "MDTM link-out", "RETR link-out",
                "RETR ../../../../../../etc/passwd", "RETR dir-out/secret.txt",
                "DELE link-out/x", "STOR dir-out/evil.txt", "MKD dir-out/evil",
                "RNFR ../secret.txt", "LIST ..", "LIST dir-out"):
        r = talk(c, cmd)
        t.ok(r.startswith("550 "), "%s: %r" % (cmd, r))
    t.eq(talk(c, "SIZE sub/../hello.txt"), "213 11", "a '..' that stays inside is fine")
    # STOR over a link that points out writes nothing through it
    os.symlink(os.path.join(DIR, "victim.txt"), srv.path("sub", "trap"))
    t.ok(talk(c, "EPSV").startswith("229 "), "EPSV")
    r = talk(c, "STOR sub/trap")
    t.ok(r.startswith("550 "), "STOR through a link: %r" % r)
    t.ok(not os.path.exists(os.path.join(DIR, "victim.txt")), "nothing written outside")
    t.eq(talk(c, "RMD /"), "550 Permission denied", "RMD of the root")


@t.test
def data_port_is_only_for_the_client():
    srv = Ftp("--user", "joe:s3cret")
    c = session(srv)
    r = talk(c, "EPSV")
    port = int(re.search(r"\|\|\|(\d+)\|", r).group(1))
    # someone at another address connects to the data port first
    thief = socket.socket()
    thief.bind(("127.0.0.2", 0))
    thief.settimeout(5)
    try:
        thief.connect((srv.host, port))
    except ConnectionResetError:  # refused that fast
        pass
    good = socket.create_connection((srv.host, port), timeout=5)
    t.eq(talk(c, "RETR hello.txt"), "150 Opening BINARY mode data connection", "RETR")
    got = axtest.recv_all(good, 11)
    t.eq(got, b"hello, ftp\n", "the client gets the file")
    good.close()  # having read to the end, as clients do; then the reply
    t.eq(c.line().rstrip("\r"), "226 Transfer complete", "226")
    thief.settimeout(2)
    try:
        data = thief.recv(100)
    except (ConnectionResetError, socket.timeout, OSError):
        data = b""
    t.eq(data, b"", "the other address got nothing")


@t.test
def anonymous_reads_only_and_reply_codes():
    srv = Ftp()
    c = session(srv, user=None)
    t.eq(talk(c, "LIST"), "530 Please log in with USER and PASS", "LIST before login")
    t.eq(talk(c, "PASS x"), "530 Login incorrect", "PASS before USER")
    t.eq(talk(c, "USER anonymous"), "331 Password required", "USER")
    t.eq(talk(c, "PASS me@example.org"), "230 Logged in, read only", "anonymous")
    t.eq(talk(c, "XYZZY"), "500 Command not understood", "unknown verb")
    t.eq(talk(c, "RETR"), "501 Syntax error in arguments", "RETR without a name")
    t.eq(talk(c, "CDUP now"), "501 Syntax error in arguments", "CDUP with an argument")
    t.eq(talk(c, "REST abc"), "501 Bad offset", "REST not a number")
    t.eq(talk(c, "TYPE E"), "504 Type not implemented", "TYPE E")
    t.eq(talk(c, "PORT 127,0,0,1,4,1"), "502 Active mode is not supported: use PASV or EPSV",
         "PORT")
    t.eq(talk(c, "RETR hello.txt"), "425 Use PASV or EPSV first", "RETR without PASV")
    t.eq(talk(c, "AUTH TLS"), "504 AUTH not available", "AUTH TLS without a certificate")
    t.eq(talk(c, "MKD x"), "550 Permission denied", "anonymous MKD")
    t.eq(talk(c, "DELE hello.txt"), "550 Permission denied", "anonymous DELE")
    t.ok(talk(c, "PASV").startswith("227 Entering Passive Mode (127,0,0,1,"), "PASV")
    t.eq(talk(c, "STOR x.txt"), "550 Permission denied", "anonymous STOR")
    t.eq(talk(c, "RNTO x"), "550 Permission denied", "anonymous RNTO")
    t.eq(talk(c, "CWD nowhere"), "550 /nowhere: No such file or directory", "CWD to nothing")
    t.eq(talk(c, "NOOP"), "200 OK", "NOOP")
    c.send("X" * 2000 + "\r\n")
    t.eq(c.line().rstrip("\r"), "500 Line too long", "a line over 1 KiB")
    t.ok(c.closed_by_peer(), "closed after it")
    c = session(srv, user=None)
    t.eq(talk(c, "QUIT"), "221 Goodbye", "QUIT")
    t.ok(c.closed_by_peer(), "closed after QUIT")
    r = curl(srv.url + "/hello.txt")  # curl logs in as anonymous by itself
    t.eq(r.stdout, b"hello, ftp\n", "anonymous curl")


t.main()
