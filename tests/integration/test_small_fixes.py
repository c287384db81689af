#!/usr/bin/python3
"""The small things a new user hit (issue 11, item 9), each one as the user
met it: the reason phrase of a plain GET on /ws, the nc hint for an IPv6
line chat, `axon cert` names for 127.0.0.1 and ::1, --cert without --key,
axon get's error lines, a hub with every gateway off, a nested data folder,
UDP replies that end in a newline, `axon echo http://`, `axon help`, an
unknown WebSocket request type, one notice per over-long line, and a
config line `history # 100`."""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from servutil import Serve, want  # noqa: E402

t = axtest.Tests("small fixes (issue 11, item 9)", alarm=120)
TMP = tempfile.mkdtemp(prefix="axon-small-")
SRC = os.environ.get("AXON_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def run(*args, timeout=axtest.TIMEOUT * 2):
    """axon ARGS to its end: (status, stdout, stderr)."""
    p = subprocess.run([axtest.axon_bin()] + list(args), capture_output=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def cert_pair(name="c"):
    d = os.path.join(TMP, name)
    if not os.path.exists(os.path.join(d, "cert.pem")):
        rc, _, err = run("cert", "--out", d)
        if rc != 0:
            raise axtest.Failure("axon cert failed: %s" % err)
    return os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")


def wait_stderr(proc, text, timeout=axtest.TIMEOUT):
    deadline = time.monotonic() + timeout
    while text not in proc.stderr():
        if time.monotonic() > deadline or not proc.running():
            raise axtest.Failure("no %r on stderr%s" % (text, proc.err_note()))
        time.sleep(0.02)


def http_server_tls(cert, key, url):
    """axon http on a tls:// URL; returns (proc, port)."""
    www = os.path.join(TMP, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("hello over tls\n")
    p = axtest.Proc([axtest.axon_bin(), "http", "-r", www, "--cert", cert, "--key", key,
                     "-l", url])
    wait_stderr(p, "serving")
    m = re.search(r"serving \S+ on tls://\S+:(\d+)", p.stderr())
    return p, int(m.group(1))


@t.test
def plain_get_on_ws_is_426_upgrade_required():
    srv = Serve()
    s = socket.create_connection(("127.0.0.1", srv.http_port), timeout=axtest.TIMEOUT)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = axtest.recv_all(s, 64)[:64].split(b"\r\n")[0]
    s.close()
    t.eq(head, b"HTTP/1.1 426 Upgrade Required", "status line")


@t.test
def serve_hints_say_nc_host_port_without_brackets():
    if not have_ipv6():
        return
    p = axtest.Proc([axtest.axon_bin(), "serve", "-d", "none", "--http", "off", "--mqtt", "off",
                     "--line", "[::1]:0", "--udp", "[::1]:0", "--irc", "off", "--rtmp", "off"])
    out = p.wait_output(lambda o: b"Ctrl-C" in o, what="the hints").decode()
    line = re.search(r"line chat +nc (\S+) (\d+) ", out)
    udp = re.search(r"nc -u -w1 (\S+) (\d+)", out)
    t.ok(line and udp, "no nc hints in %r" % out)
    t.eq(line.group(1), "::1", "line chat host for nc")
    t.eq(udp.group(1), "::1", "UDP host for nc")
    # and nc takes it: the name prompt comes back
    c = axtest.Lines.connect("::1", int(line.group(2)))
    want(c, "What is your name?")
    c.close()


@t.test
def cert_names_both_loopback_addresses():
    d = os.path.join(TMP, "nested", "tls", "dir")  # made with its parents
    rc, out, err = run("cert", "--out", d)
    t.eq(rc, 0, "axon cert status (%s)" % err)
    p = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-noout",
                        "-ext", "subjectAltName"], capture_output=True, timeout=10)
    san = p.stdout.decode()
    t.ok("DNS:localhost" in san, san)
    t.ok("IP Address:127.0.0.1" in san, san)
    t.ok("IP Address:0:0:0:0:0:0:0:1" in san or "IP Address:::1" in san, san)


@t.test
def get_https_on_ipv6_loopback_verifies():
    if not have_ipv6():
        return
    cert, key = cert_pair()
    srv, port = http_server_tls(cert, key, "tls://[::1]:0")
    rc, out, err = run("get", "--ca", cert, "https://[::1]:%d/" % port)
    t.eq((rc, out), (0, "hello over tls\n"), "axon get https://[::1] (%s)" % err)
    rc, out, err = run("get", "--ca", cert, "https://127.0.0.1:%d/" % port)
    t.ok(rc != 0, "a certificate for ::1 is not one for the IPv4 address")
    srv.stop()


@t.test
def get_errors_say_each_part_once():
    cert, key = cert_pair()
    srv, port = http_server_tls(cert, key, "tls://127.0.0.1:0")
    rc, out, err = run("get", "https://127.0.0.1:%d/" % port)  # no --ca: self-signed
    t.ok(rc != 0, "status")
    t.eq(len(err.strip().splitlines()), 1, "one line: %r" % err)
    t.eq(err.count("axon get:"), 1, "prefix once: %r" % err)
    t.eq(err.count("certificate verification failed"), 1, "reason once: %r" % err)
    t.eq(err.count("127.0.0.1:%d" % port), 1, "address once: %r" % err)
    t.ok("self-signed" in err, err)
    srv.stop()
    port = axtest.free_port()
    rc, out, err = run("get", "http://127.0.0.1:%d/" % port)
    t.eq(rc, 7, "status for a refused connection")
    t.eq(err.count("127.0.0.1:%d" % port), 1, "address once: %r" % err)
    t.ok(err.startswith("axon get: ") and "Connection refused" in err, err)


@t.test
def cert_without_key_says_the_key_is_missing():
    cert, key = cert_pair()
    rc, _, err = run("echo", "tls://127.0.0.1:0", "--cert", cert)
    t.eq(rc, 1, "status")
    t.ok("PEM lib" not in err and "no private key" in err and "--key" in err, err)
    rc, _, err = run("echo", "tls://127.0.0.1:0", "--key", key)
    t.eq(rc, 1, "status for --key alone")
    t.ok("--key %s without --cert" % key in err, err)
    rc, _, err = run("echo", "tls://127.0.0.1:0", "--cert", cert, "--key", cert)
    t.ok(rc == 1 and "'%s' holds no private key" % cert in err, err)
    missing = os.path.join(TMP, "nothere.pem")
    rc, _, err = run("echo", "tls://127.0.0.1:0", "--cert", missing, "--key", key)
    t.ok(rc == 1 and "cannot read certificate '%s'" % missing in err, err)
    rc, _, err = run("echo", "tls://127.0.0.1:0", "--cert", cert, "--key", missing)
    t.ok(rc == 1 and "cannot read key '%s'" % missing in err, err)
    common = ["serve", "-d", "none", "--http", "off", "--line", "off", "--udp", "off",
              "--https", "127.0.0.1:0"]
    rc, _, err = run(*common, "--cert", cert)
    t.ok(rc != 0 and "PEM lib" not in err and "no private key" in err, err)
    rc, _, err = run(*common, "--key", key)
    t.ok(rc != 0 and "without tls_cert" in err, err)


@t.test
def serve_with_every_gateway_off_refuses():
    rc, out, err = run("serve", "-d", "none", "--http", "off", "--line", "off", "--udp", "off",
                       "--mqtt", "off", "--irc", "off", "--rtmp", "off")
    t.eq(rc, 2, "status")
    t.ok("every gateway is off" in err and "ready" not in err, err)


@t.test
def serve_makes_the_data_folder_with_its_parents():
    d = os.path.join(TMP, "data", "a", "b", "c")
    srv = Serve(data=d)
    t.ok(os.path.isdir(d), "%s was not made" % d)
    t.eq(os.stat(d).st_mode & 0o777, 0o700, "mode of the data folder")
    srv.stop()


@t.test
def udp_replies_end_in_a_newline():
    srv = Serve()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(axtest.TIMEOUT)
    to = ("127.0.0.1", srv.udp_port)
    s.sendto(b"PING\n", to)
    t.eq(s.recv(100), b"PONG\n", "PING")
    s.sendto(b"SUB u/t COOKIE " + b"-" * 16, to)
    cookie = s.recv(100)
    t.ok(cookie.startswith(b"COOKIE ") and cookie.endswith(b"\n"), "COOKIE")
    s.sendto(b"SUB u/t COOKIE " + cookie.split()[1], to)
    t.eq(s.recv(100), b"OK SUB u/t 60\n", "SUB")
    s.sendto(b"PUB u/t hi there", to)
    got = sorted([s.recv(100), s.recv(100)])
    t.eq(got, [b"MSG u/t 1 127.0.0.1:%d hi there\n" % s.getsockname()[1], b"OK u/t 1\n"],
         "delivery and reply")
    s.sendto(b"NOPE", to)
    t.ok(s.recv(200).endswith(b"or PING\n"), "error reply")
    # what nc -u shows: one reply per line
    nc = axtest.Proc(["nc", "-u", "-w1", "127.0.0.1", str(srv.udp_port)],
                     stdin=subprocess.PIPE, capture=True)
    nc.p.stdin.write(b"PING\n")
    nc.p.stdin.flush()
    time.sleep(0.2)
    nc.p.stdin.write(b"PING\n")
    nc.p.stdin.close()
    nc.wait_output(lambda o: o == b"PONG\nPONG\n", what="two lines from nc -u")


@t.test
def echo_names_the_schemes_it_takes():
    rc, _, err = run("echo", "http://127.0.0.1:0")
    t.eq(rc, 2, "status")
    for s in ("tcp://", "udp://", "unix://", "tls://", "ws://", "wss://"):
        t.ok(s in err, "%s not in %r" % (s, err))


@t.test
def help_command_like_git():
    rc, out, _ = run("help")
    t.eq(rc, 0, "axon help status")
    t.ok("Commands:" in out and "serve" in out and "help" in out, out)
    rc, out, _ = run("help", "serve")
    t.eq(rc, 0, "axon help serve status")
    t.ok(out.startswith("Usage: axon serve"), out[:200])
    rc, out2, _ = run("serve", "--help")
    t.eq(out, out2, "axon help serve is axon serve --help")
    rc, out, err = run("help", "nosuch")
    t.eq(rc, 2, "axon help nosuch status")
    t.ok("unknown command 'nosuch'" in err, err)


@t.test
def websocket_unknown_type_is_called_unknown():
    import websockets
    srv = Serve()

    async def session():
        async with websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port) as ws:
            await ws.recv()  # welcome
            out = []
            for r in ({"type": "frobnicate", "id": 1},
                      {"type": "frobnicate", "topic": "a/b", "id": 2},
                      {"type": "publish", "id": 3}):
                await ws.send(json.dumps(r))
                out.append(json.loads(await asyncio.wait_for(ws.recv(), axtest.TIMEOUT)))
            return out
    got = asyncio.run(session())
    for g in got[:2]:
        t.eq(g["type"], "error", "reply type")
        t.ok(g["error"].startswith("unknown request type 'frobnicate'"), g["error"])
        t.ok("subscribe" in g["error"], "the known types are listed: %r" % g["error"])
    t.eq(got[2]["error"], 'this request needs a "topic"', "a known type without its topic")


@t.test
def one_notice_per_over_long_line():
    srv = Serve()
    c = srv.line_client("lon")
    for _ in range(20):  # 20 writes of 3000 bytes: one line of 60000
        c.send("y" * 3000)
        time.sleep(0.01)
    c.send("\n/help\n")
    seen = []
    while not any("/quit" in x for x in seen):
        seen.append(c.line())
    t.eq(sum("line too long" in x for x in seen), 1, "notices: %r" % seen)


@t.test
def config_hash_word_is_explained():
    conf = os.path.join(TMP, "hash.conf")
    with open(conf, "w") as f:
        f.write("data_dir none\nhistory # 100\n")
    rc, _, err = run("serve", "-c", conf)
    t.eq(rc, 2, "status")
    t.ok("%s:2:" % conf in err and "comment" in err and '"#"' in err, err)
    with open(os.path.join(SRC, "docs", "config.md"), encoding="utf-8") as f:
        doc = f.read()
    shown = re.search(r"Unquoted, `history # 100`.*?```\n(.*?)```", doc, re.S).group(1)
    shown = "\n".join(x.strip() for x in shown.splitlines())
    t.eq(err.strip(), shown.strip().replace("axon.conf", conf), "docs/config.md shows it")
    with open(conf, "w") as f:  # quoted, as the note says, it is the pattern
        f.write('data_dir none\nlisten_http off\nlisten_line off\nlisten_udp 127.0.0.1:0\n'
                'listen_mqtt off\nlisten_irc off\nlisten_rtmp off\nhistory "#" 100   # every topic\n')
    p = axtest.Proc([axtest.axon_bin(), "serve", "-q", "-c", conf])
    wait_stderr(p, "ready to accept connections")
    p.stop()


try:
    t.main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
