#!/usr/bin/python3
# axon-test: one backend (what it checks does not depend on the event loop)
"""docs/config.md and docs/protocol.md stay true to `axon serve`: every key in
config.md's settings table is accepted by `axon serve -c` with the example
value the table gives, and every key the code accepts is in the table; the
flags in the table are the flags of `--help`; the example config file is
accepted; a bad line is reported as file:line; every metric the server
prints is documented (and every documented metric exists); every request
of the WebSocket, UDP and line-chat gateways and every HTTP route is in
protocol.md; protocol.md's examples (WebSocket, SSE, HTTP API, line chat
and UDP) are what a server says when they are typed into it."""

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
import servutil  # noqa: E402

SRC = os.environ.get("AXON_SRC") or os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
t = axtest.Tests("docs/config.md and docs/protocol.md", alarm=120)


def read(rel):
    with open(os.path.join(SRC, rel), encoding="utf-8") as f:
        return f.read()


def table_after(text, heading):
    """Rows (lists of cells) of the first Markdown table after `heading`."""
    at = text.index(heading)
    rows = []
    for line in text[at:].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r"-+", c) for c in cells):
                rows.append(cells)
        elif rows:
            break
    return rows[1:]  # without the header


def code(cell):
    """The first `code span` of a table cell, or ''."""
    m = re.search(r"`([^`]*)`", cell)
    return m.group(1) if m else ""


def settings():
    """{key: (flag cell, default cell, example value)} from config.md."""
    out = {}
    for row in table_after(read("docs/config.md"), "## Settings"):
        out[code(row[0])] = (row[1], row[2], code(row[3]))
    return out


def code_keys():
    """The keys of the settings table in src/cli/serve.c (its rows' .key)."""
    src = read("src/cli/serve.c")
    table = re.search(r"settings_table\[\] = \{(.*?)\n\};", src, re.S).group(1)
    return set(re.findall(r'\.key = "([a-z_]+)"', table))


def run_config(lines, tmp, name="axon.conf"):
    """Start `axon serve -c` on a config of `lines` (listeners on free ports
    and memory-only history unless the lines say otherwise); returns the
    process once it is ready, or raises with what it said."""
    http = axtest.free_port()
    base = ["listen_http 127.0.0.1:%d" % http,
            "listen_line 127.0.0.1:%d" % axtest.free_port(),
            "listen_udp 127.0.0.1:%d" % axtest.free_port(socket.SOCK_DGRAM),
            "listen_mqtt 127.0.0.1:%d" % axtest.free_port(),
            "data_dir none", "listen_irc off", "listen_rtmp off"]
    keys = {ln.split()[0] for ln in lines if ln.strip() and not ln.startswith("#")}
    base = [b for b in base if b.split()[0] not in keys]
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("\n".join(base + list(lines)) + "\n")
    p = axtest.Proc([axtest.axon_bin(), "serve", "-q", "-c", path])
    deadline = time.monotonic() + axtest.TIMEOUT
    while "ready to accept connections" not in p.stderr() + log_of(lines):
        if not p.running():
            raise axtest.Failure("axon serve refused %r%s" % (lines, p.err_note()))
        if time.monotonic() > deadline:
            raise axtest.Failure("axon serve did not start with %r%s" % (lines, p.err_note()))
        time.sleep(0.02)
    return p


def log_of(lines):
    for ln in lines:
        if ln.startswith("log_file "):
            try:
                with open(ln.split(None, 1)[1]) as f:
                    return f.read()
            except OSError:
                return ""
    return ""


def example_value(key, example, tmp):
    """The table's example, made safe to run here: free ports, temp paths."""
    if key in ("listen_http", "listen_line", "listen_mqtt", "listen_irc", "listen_rtmp"):
        return "127.0.0.1:%d" % axtest.free_port()
    if key == "listen_udp":
        return "127.0.0.1:%d" % axtest.free_port(socket.SOCK_DGRAM)
    if key in ("listen_https", "listen_line_tls", "listen_mqtts", "listen_ircs"):  # a real certificate goes with it
        cert = os.path.join(tmp, "tls")
        subprocess.run([axtest.axon_bin(), "cert", "--out", cert, "--name", "localhost"],
                       capture_output=True, timeout=10, check=True)
        return "127.0.0.1:%d\ntls_cert %s/cert.pem\ntls_key %s/key.pem" % (
            axtest.free_port(), cert, cert)
    if key == "data_dir":
        return os.path.join(tmp, "data")
    if key == "log_file":
        return os.path.join(tmp, "axon.log")
    if key in ("auth_secret", "password_file", "acl_file", "irc_oper_file"):  # real files go with them
        path = os.path.join(tmp, key)
        if key == "auth_secret":
            with open(path, "w") as f:
                f.write("k" * 48 + "\n")
        elif key in ("password_file", "irc_oper_file"):
            subprocess.run(["mosquitto_passwd", "-c", "-b", path, "ann", "pw"],
                           capture_output=True, timeout=10, check=True)
        else:
            with open(path, "w") as f:
                f.write("user ann\ntopic readwrite chat/#\n")
        return path
    if key == "include":
        with open(os.path.join(tmp, os.path.basename(example)), "w") as f:
            f.write("fsync off\n")
        return os.path.basename(example)
    return example


@t.test
def every_documented_key_is_accepted():
    table = settings()
    t.ok(len(table) >= 15, "only %d settings in docs/config.md" % len(table))
    tmp = tempfile.mkdtemp(prefix="axon-docs-")
    try:
        for key, (_, _, example) in sorted(table.items()):
            t.ok(example, "config.md gives no example value for %s" % key)
            try:
                p = run_config(["%s %s" % (key, example_value(key, example, tmp))], tmp)
            except axtest.Failure as e:
                # a free port may be taken by a test running beside this one
                # before the server binds it: once more on other ports
                if "Address already in use" not in str(e):
                    raise
                p = run_config(["%s %s" % (key, example_value(key, example, tmp))], tmp)
            p.signal(15)
            t.exits(p, 0, "axon serve with %s, after SIGTERM" % key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def every_key_in_the_code_is_documented():
    keys = code_keys()
    t.ok(len(keys) >= 15, "found only %d keys in src/cli/serve.c" % len(keys))
    table = settings()
    for k in sorted(keys):
        t.ok(k in table, "setting '%s' (src/cli/serve.c) is not in docs/config.md" % k)
    for k in sorted(table):
        t.ok(k in keys, "docs/config.md documents '%s', which serve.c does not accept" % k)


@t.test
def flags_match_help():
    out = subprocess.run([axtest.axon_bin(), "serve", "--help"], capture_output=True,
                         text=True, timeout=10).stdout
    helped = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", out))
    doc = read("docs/config.md")
    documented = set(re.findall(r"`(?:-\w, )?(--[a-z][a-z-]+)", doc))
    for f in sorted(helped):
        t.ok(f in documented, "flag %s (axon serve --help) is not in docs/config.md" % f)
    for f in sorted(documented):
        t.ok(f in helped, "docs/config.md documents %s, which --help does not list" % f)
    for key, (flag, default, _) in settings().items():  # a flag's default is in --help
        d = code(default)
        if code(flag) and d and d != "text":
            t.ok(d.lstrip("./") in out, "--help does not say %s's default %s" % (key, d))


@t.test
def the_example_config_is_accepted():
    doc = read("docs/config.md")
    block = re.search(r"## An example config file\n\n```\n(.*?)```", doc, re.S).group(1)
    tmp = tempfile.mkdtemp(prefix="axon-docs-")
    try:
        lines = []
        for ln in block.splitlines():
            words = ln.split()
            if words and not ln.startswith("#"):
                lines.append(ln if words[0] in ("listen_http", "listen_line", "listen_udp") and
                             words[1] == "off" else
                             "%s %s" % (words[0], example_value(words[0], words[1], tmp))
                             if words[0] in ("listen_http", "listen_line", "listen_udp",
                                             "data_dir", "log_file", "include") else ln)
        p = run_config(lines, tmp)
        p.signal(15)
        t.exits(p, 0, "axon serve with the example config, after SIGTERM")
        t.ok('"level":"info"' in log_of(lines), "log_format json did not log JSON")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def bad_lines_are_reported_with_file_and_line():
    tmp = tempfile.mkdtemp(prefix="axon-docs-")
    try:
        os.mkdir(os.path.join(tmp, "conf.d"))
        with open(os.path.join(tmp, "conf.d", "inner.conf"), "w") as f:
            f.write("# fine\n\nfsync sometimes\n")
        main = os.path.join(tmp, "main.conf")
        with open(main, "w") as f:  # relative to main.conf, not to the working directory
            f.write("data_dir none\ninclude conf.d/inner.conf\n")
        p = axtest.Proc([axtest.axon_bin(), "serve", "-c", main])
        t.exits(p, 2, "exit status for a bad config line")
        t.ok("inner.conf:3: fsync is always, batch or off, not 'sometimes'" in p.stderr(),
             "no file:line report: %r" % p.stderr())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@t.test
def every_metric_is_documented():
    proto = read("docs/protocol.md")
    srv = servutil.Serve()
    _, out, _ = servutil.curl(srv.base + "/metrics")
    names = set(re.findall(r"^# TYPE (\S+) ", out, re.M))
    t.ok(len(names) >= 15, "only %d metric families on /metrics" % len(names))
    table = {code(r[0]) for r in table_after(proto, "## Metrics")}
    for n in sorted(names):
        t.ok(n in table, "metric %s is not in docs/protocol.md's table" % n)
    for n in sorted(set(re.findall(r"\baxon_[a-z_]+", proto))):
        base = re.sub(r"_(sum|count)$", "", n)
        t.ok(base in names, "docs/protocol.md names %s, which /metrics does not print" % n)
    labels = set(re.findall(r'gateway="(\w+)"', out))
    for g in sorted(labels):
        t.ok("`%s`" % g in proto, "gateway label %s is not in docs/protocol.md" % g)


@t.test
def every_request_and_route_is_documented():
    proto = read("docs/protocol.md")
    ws = re.findall(r'strcmp\(type, "(\w+)"\)', read("src/hub/gw_ws.c"))
    t.ok(len(ws) >= 7, "found only %r in gw_ws.c" % ws)
    ws_doc = {code(r[0]) for r in table_after(proto, "### Requests")}
    for w in ws:
        t.ok(w in ws_doc, "WebSocket request %s is not in docs/protocol.md" % w)
    udp = re.findall(r'strcmp\(buf, "(\w+)"\)', read("src/hub/gw_udp.c"))
    t.ok(len(udp) >= 4, "found only %r in gw_udp.c" % udp)
    udp_doc = {code(r[0]).split()[0] for r in table_after(proto, "## UDP datagrams")}
    for u in udp:
        t.ok(u in udp_doc, "UDP request %s is not in docs/protocol.md" % u)
    line = re.findall(r'strcmp\(line, "(/\w+)"\)', read("src/hub/gw_line.c"))
    t.ok(len(line) >= 7, "found only %r in gw_line.c" % line)
    line_doc = {code(r[0]).split()[0] for r in table_after(proto, "## Line chat")}
    for c in line + ["/me"]:
        t.ok(c in line_doc, "line-chat command %s is not in docs/protocol.md" % c)
    routes = re.findall(r'\{(?:NULL|"GET"), "(/[\w/]*)", \w+\}', read("src/hub/gw_http.c"))
    routes += re.findall(r'ax_http_route\(srv, NULL, "(/[\w/]*)"', read("src/hub/gw_sse.c"))
    t.ok(len(routes) >= 7, "found only %r in gw_http.c and gw_sse.c" % routes)
    for r in routes:
        t.ok(re.search(r"(GET|POST) %s\b" % re.escape(r), proto) or "`%s`" % r in proto or
             "## %s" % r in proto or ": %s" % r in proto,
             "HTTP route %s is not in docs/protocol.md" % r)
    for err in re.findall(r'reply\(g, from, "(ERR [a-z ]+)', read("src/hub/gw_udp.c")):
        t.ok(err in proto, "UDP reply '%s...' is not in docs/protocol.md" % err)


def block_after(text, marker):
    """The first ``` block after `marker`, as a list of lines."""
    at = text.index(marker)
    m = re.search(r"```\n(.*?)```", text[at:], re.S)
    return m.group(1).splitlines()


@t.test
def line_chat_example_is_what_the_server_says():
    """protocol.md's line-chat transcript, typed into a fresh server: each
    client's lines must come exactly as shown, in that order."""
    srv = servutil.Serve("-d", "none")
    clients = {}
    for ln in block_after(read("docs/protocol.md"), "Example (two users;"):
        who, kind, text = ln[0], ln[1], ln[3:]
        if who not in clients:
            clients[who] = axtest.Lines.connect("127.0.0.1", srv.line_port)
        c = clients[who]
        if kind == ">":
            c.send(text + "\n")
        else:
            try:
                got = c.line()
            except axtest.Failure as e:
                raise axtest.Failure("%s: wanted %r: %s" % (who, text, e))
            t.eq(got, text, "what %s got after the lines before it" % who)
    for who, c in clients.items():  # nothing more (A has quit: its end of stream is fine)
        quiet = c.silent(0.3) or (c.buf == b"" and who == "A")
        t.ok(quiet, "%s got more than the example shows: %r" % (who, c.buf))
        c.close()


def udp_transcript(lines, addrs, port):
    """Run `X> request` / `X< reply` lines with one UDP socket per X; the
    addresses in `addrs` ({"S": "127.0.0.1:32789"}) stand for the sockets'."""
    socks = {}
    for who in addrs:
        socks[who] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks[who].bind(("127.0.0.1", 0))
        socks[who].settimeout(axtest.TIMEOUT)
    real = {addrs[w]: "127.0.0.1:%d" % socks[w].getsockname()[1] for w in addrs}
    for ln in lines:
        who, kind, text = ln[0], ln[1], ln[3:]
        for doc, mine in real.items():
            text = text.replace(doc, mine)
        if kind == ">":
            m = re.fullmatch(r"(.*?)…\s+\((\d+) bytes\)", text)
            data = text.encode()
            if m:  # "PUB big yyyy…   (9008 bytes)"
                head = m.group(1).encode()
                data = head + head[-1:] * (int(m.group(2)) - len(head))
            socks[who].sendto(data, ("127.0.0.1", port))
        else:
            try:
                got = socks[who].recv(65536)
            except socket.timeout:
                raise axtest.Failure("%s: no datagram; wanted %r" % (who, text))
            if text.startswith("COOKIE ") and got.startswith(b"COOKIE "):
                # a cookie is random: the example's stands for the one the server made
                t.ok(re.fullmatch(rb"COOKIE [0-9a-f]{16}\n", got), "a cookie: %r" % got)
                real[text.split()[1]] = got.split()[1].decode()
                continue
            t.eq(got, text.encode() + b"\n", "what %s got after the lines before it" % who)
    for who, s in socks.items():
        s.settimeout(0.3)
        try:
            extra = s.recv(65536)
        except socket.timeout:
            extra = None
        t.eq(extra, None, "%s got more than the example shows" % who)
        s.close()


@t.test
def udp_examples_are_what_the_server_says():
    proto = read("docs/protocol.md")
    srv = servutil.Serve("-d", "none")
    for i in range(1, 6):
        servutil.publish(srv, "chat/lobby", "m%d" % i)
    servutil.publish(srv, "chat/lobby", "/slash text", sender="bob")
    servutil.publish(srv, "chat/lobby", "from http", sender="web")  # 7 messages, as the page says
    udp_transcript(block_after(proto, "Example (a subscriber S at"),
                   {"S": "127.0.0.1:32789", "D": "127.0.0.1:53683"}, srv.udp_port)
    srv.stop()
    srv = servutil.Serve("-d", "none", "--history", "3")
    for i in range(1, 6):
        servutil.publish(srv, "chat/lobby", "m%d" % i)
    udp_transcript(block_after(proto, "and a resume past the history kept"), {"S": "-"},
                   srv.udp_port)


def api_topics(text):
    return sorted(json.dumps(x, sort_keys=True) for x in json.loads(text)["topics"])


@t.test
def http_api_examples_are_what_the_server_says():
    """The `$ curl` examples under HTTP API, run in order on a fresh server
    (times differ; /api/topics is in no particular order)."""
    proto = read("docs/protocol.md")
    api = proto[proto.index("## HTTP API"):proto.index("## Line chat")]
    srv = servutil.Serve("-d", "none")
    ran, people = 0, []
    for m in re.finditer(r"```\n(.*?)```", api, re.S):
        if "kept of 5" in api[max(0, m.start() - 60):m.start()]:
            continue  # another server's history limits
        steps = re.split(r"^\$ ", m.group(1), flags=re.M)[1:]
        for step in steps:
            cmd, _, want = step.partition("\n")
            if "/api/presence/" in cmd and not people:  # the page had ann and bob in lobby
                people = [srv.line_client(n) for n in ("ann", "bob")]
            cmd = cmd.replace("127.0.0.1:18180", "127.0.0.1:%d" % srv.http_port)
            p = subprocess.run(cmd, shell=True, capture_output=True, timeout=20)
            got = p.stdout.decode(errors="replace").replace("\r\n", "\n")
            got, want = (re.sub(r'"time":\d+', '"time":T', re.sub(r"(?m)^Date: .*$", "Date: D", x))
                         for x in (got, want))
            if "/api/topics" in cmd:
                got, want = api_topics(got), api_topics(want)
            t.eq(got, want, "output of %s" % cmd)
            ran += 1
    t.ok(ran >= 9, "only %d examples ran" % ran)


def ws_transcript(srv, lines):
    """Run `X-> request` / `X<- reply` lines (X may be left out: one client)
    with a WebSocket client per X; replies must be exactly as shown, but
    for the times."""
    import asyncio
    import websockets

    def norm(text):
        return re.sub(r'"time":\d+', '"time":T', text)

    async def run():
        clients = {}
        try:
            for ln in lines:
                m = re.match(r"^(\w?)(->|<-) (.*)$", ln)
                if not m:
                    continue
                who, kind, text = m.groups()
                if who not in clients:
                    clients[who] = await websockets.connect("ws://127.0.0.1:%d/ws" % srv.http_port)
                    await clients[who].recv()  # welcome
                ws = clients[who]
                if kind == "->":
                    b = re.fullmatch(r"\(binary frame\) (.*)", text)
                    await ws.send(b.group(1).encode().decode("unicode_escape").encode("latin-1")
                                  if b else text)
                    continue
                try:
                    got = await asyncio.wait_for(ws.recv(), axtest.TIMEOUT)
                except asyncio.TimeoutError:
                    raise axtest.Failure("%s: nothing came; wanted %s" % (who or "-", text))
                t.eq(norm(got), norm(text), "what %s got after the lines before it" % (who or "-"))
            for who, ws in clients.items():
                try:
                    extra = await asyncio.wait_for(ws.recv(), 0.3)
                except asyncio.TimeoutError:
                    extra = None
                t.eq(extra, None, "%s got more than the example shows" % (who or "-"))
        finally:
            for ws in clients.values():
                await ws.close()
    asyncio.run(run())


@t.test
def websocket_examples_are_what_the_server_says():
    proto = read("docs/protocol.md")
    ws = proto[proto.index("## WebSocket: /ws"):proto.index("## Server-Sent Events")]
    srv = servutil.Serve("-d", "none")
    dev = "127.0.0.1:53683"  # a UDP device, as the page has it
    for i in range(1, 7):
        servutil.publish(srv, "chat/lobby", "m%d" % i)
    servutil.publish(srv, "chat/lobby", "from http", sender="web")
    servutil.publish(srv, "chat/lobby", "hello from a device", sender=dev)
    servutil.publish(srv, "sensors/kitchen/temp", "temp=21.5", sender="dev1")
    servutil.publish(srv, "sensors/kitchen/temp", "device")
    servutil.publish(srv, "sensors/hall/temp", "19.0", sender=dev)
    example = block_after(ws, "Earlier, chat/lobby had 8 messages")
    history = block_after(ws, "A `history` request, and a resume")
    ws_transcript(srv, example + [x for x in history if x.startswith("A")])
    srv.stop()
    srv = servutil.Serve("-d", "none", "--history", "3")
    for i in range(1, 6):
        servutil.publish(srv, "chat/lobby", "m%d" % i)
    ws_transcript(srv, [x for x in history if x[:2] in ("->", "<-")])


def sse_steps(srv, block):
    """Run the `$ curl -sN` commands of a block for a second each; the
    output must be what the block shows (a final `...` stands for more;
    the blank line that ends the last event is not in the page)."""
    for step in re.split(r"^\$ ", "\n".join(block) + "\n", flags=re.M)[1:]:
        cmd, _, want = step.partition("\n")
        cmd = cmd.replace("curl -sN", "curl -sN --max-time 1")
        cmd = cmd.replace("127.0.0.1:18180", "127.0.0.1:%d" % srv.http_port)
        p = subprocess.run(cmd, shell=True, capture_output=True, timeout=20)
        got = re.sub(r'"time":\d+', '"time":T', p.stdout.decode(errors="replace"))
        want = re.sub(r'"time":\d+', '"time":T', want)
        if want.endswith("...\n"):
            want = want[:-4]
            got = got[:len(want)]
        t.eq(got.rstrip("\n"), want.rstrip("\n"), "output of %s" % cmd)


@t.test
def sse_examples_are_what_the_server_says():
    proto = read("docs/protocol.md")
    sse = proto[proto.index("## Server-Sent Events"):proto.index("## HTTP API")]
    srv = servutil.Serve("-d", "none")
    servutil.publish(srv, "chat/lobby", "hello from curl")
    servutil.publish(srv, "chat/lobby", "second", sender="ann")
    servutil.publish(srv, "chat/lobby", "live one", sender="bob")
    sse_steps(srv, block_after(sse, "Errors: a missing or invalid"))
    srv.stop()
    srv = servutil.Serve("-d", "none", "--history", "3")
    for i in range(1, 6):
        servutil.publish(srv, "chat/lobby", "m%d" % i)
    sse_steps(srv, block_after(sse, "A resume past the history kept"))


@t.test
def readme_links_both():
    readme = read("README.md")
    for d in ("docs/protocol.md", "docs/config.md"):
        t.ok(d in readme, "README.md does not link %s" % d)


t.main()
