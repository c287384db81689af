#!/usr/bin/python3
"""docs/guide.md's "Underneath" sections say which system calls axon makes;
this holds them to it.  tcp_echo_server and tcp_client run under strace on
the backend of this pass (AXON_BACKEND), a line goes through and the client
half-closes, and the traces must show the calls of chapters 2-5 and 7 with
the flags the guide names: SOCK_NONBLOCK|SOCK_CLOEXEC sockets, SO_REUSEADDR,
listen(4096), accept4, TCP_NODELAY, a connect that returns EINPROGRESS and
is settled by SO_ERROR, MSG_NOSIGNAL sends, shutdown(SHUT_WR), and the
backend's own calls (epoll_ctl, poll, or io_uring_enter with no recv/send
calls on the connection)."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Proc  # noqa: E402

t = axtest.Tests("docs/guide.md: the calls underneath")
CALLS = ("socket,setsockopt,getsockopt,bind,listen,getsockname,accept4,connect,"
         "recvfrom,recvmsg,sendto,sendmsg,shutdown,close,epoll_ctl,poll,ppoll,"
         "io_uring_setup,io_uring_enter,io_uring_register")
LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(.*)$")


def traced(args, path, **kw):
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"  # no LSan under ptrace
    return Proc(["strace", "-f", "-qq", "-s", "64", "-e", "trace=" + CALLS, "-o", path] + args,
                env=env, **kw)


def parse(path):
    """[(call, args, result, rest)] of a finished trace."""
    calls = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if m:
                calls.append((m.group(2), m.group(3), m.group(4), m.group(5)))
    return calls


def find(calls, name, pattern, result=None):
    """The calls `name` whose arguments match `pattern` (and result)."""
    rx = re.compile(pattern)
    return [c for c in calls if c[0] == name and rx.search(c[1]) and
            (result is None or c[2] == result)]


def need(calls, name, pattern, what, result=None):
    hits = find(calls, name, pattern, result)
    t.ok(hits, "%s: no %s(%s)%s in %r" % (what, name, pattern,
                                          " = " + result if result else "",
                                          [c for c in calls if c[0] == name][:6]))
    return hits


def stream_socket(calls, what):
    """The fds of AF_INET stream sockets made non-blocking and close-on-exec
    in the one socket() call (chapter 2)."""
    hits = [c for c in calls if c[0] == "socket" and c[1].startswith("AF_INET,")
            and "SOCK_STREAM" in c[1]]
    t.ok(hits, "%s: an AF_INET SOCK_STREAM socket(): %r" % (what, calls[:8]))
    for c in hits:
        t.ok("SOCK_NONBLOCK" in c[1] and "SOCK_CLOEXEC" in c[1],
             "%s: socket(%s) has SOCK_NONBLOCK|SOCK_CLOEXEC" % (what, c[1]))
    return [c[2] for c in hits]


@t.test
def echo_server_and_client_make_the_calls_the_guide_shows():
    if not shutil.which("strace"):
        raise Failure("strace is not installed (scripts/deps.sh test)")
    backend = axtest.BACKEND or "default"
    tmp = tempfile.mkdtemp(prefix="axon-syscalls-")
    srv_trace, cli_trace = os.path.join(tmp, "server"), os.path.join(tmp, "client")
    server_bin, client_bin = axtest.example("tcp_echo_server"), axtest.example("tcp_client")
    srv = traced([server_bin, "tcp://127.0.0.1:0"], srv_trace)
    cli = None
    try:
        out = srv.wait_output(lambda o: axtest.SERVER_LINE.search(o) is not None,
                              what="the listening line")
        m = axtest.SERVER_LINE.search(out)
        url, backend = m.group(1).decode(), m.group(2).decode()
        if axtest.BACKEND:
            t.eq(backend, axtest.BACKEND, "the server's backend")
        cli = traced([client_bin, url], cli_trace, stdin=subprocess.PIPE, capture=True)
        cli.p.stdin.write(b"hello underneath\n")
        cli.p.stdin.close()  # stdin ends: the client half-closes (chapter 7)
        cli.wait_output(lambda o: b"hello underneath\n" in o, what="the echoed line")
        t.exits(cli, 0, "the client ends once the server has closed too")
        for k in axtest.traced_axons(srv.pid, server_bin):
            os.kill(k, signal.SIGTERM)
        t.exits(srv, 0, "strace (and the server) stop")
        s, c = parse(srv_trace), parse(cli_trace)

        # Chapter 3, server setup: socket, SO_REUSEADDR, bind, listen, getsockname.
        lfd = stream_socket(s, "server")[0]
        need(s, "setsockopt", r"^%s, SOL_SOCKET, SO_REUSEADDR, \[1\]" % lfd, "server")
        need(s, "bind", r"^%s, \{sa_family=AF_INET" % lfd, "server")
        need(s, "listen", r"^%s, 4096$" % lfd, "server")
        need(s, "getsockname", r"^%s," % lfd, "server")
        acc = need(s, "accept4", r"^%s, .*SOCK_CLOEXEC\|SOCK_NONBLOCK|^%s, .*SOCK_NONBLOCK\|"
                   r"SOCK_CLOEXEC" % (lfd, lfd), "server accepts non-blocking, close-on-exec")
        cfd = acc[0][2] if acc else "-1"
        need(s, "setsockopt", r"^%s, SOL_TCP, TCP_NODELAY, \[1\]" % cfd, "server connection")
        # Chapter 4, client connection: EINPROGRESS, then SO_ERROR says connected.
        kfd = stream_socket(c, "client")[0]
        need(c, "connect", r"^%s, \{sa_family=AF_INET" % kfd, "client", result="-1")
        t.ok(any("EINPROGRESS" in x[3] for x in find(c, "connect", r"^%s," % kfd)),
             "client: the connect returns EINPROGRESS")
        need(c, "getsockopt", r"^%s, SOL_SOCKET, SO_ERROR, \[0\]" % kfd, "client")
        need(c, "setsockopt", r"^%s, SOL_TCP, TCP_NODELAY, \[1\]" % kfd, "client")
        # Chapter 7: the client's half-close, and each side closes its socket.
        need(c, "shutdown", r"^%s, SHUT_WR$" % kfd, "client half-close")
        need(c, "close", r"^%s$" % kfd, "client")
        need(s, "close", r"^%s$" % cfd, "server connection")

        # The backend's part: readiness (chapter 2) or the ring (chapter 5).
        io = [x for x in s if x[0] in ("recvfrom", "recvmsg", "sendto", "sendmsg") and
              x[1].startswith(cfd + ",")]
        if backend == "uring":
            need(s, "io_uring_setup", r".", "uring server")
            need(s, "io_uring_register", r".", "uring server (buffer ring, file table)")
            need(s, "io_uring_enter", r".", "uring server")
            need(s, "epoll_ctl", r"EPOLL_CTL_ADD, %s, \{events=EPOLLIN" % lfd,
                 "uring server: the listener in the epoll set")
            t.eq(io, [], "uring: no recv/send system calls on the connection")
        else:
            # Chapter 5, data exchange: recv into the loop's buffer, sends
            # with MSG_NOSIGNAL.
            need(s, "recvfrom", r"^%s, \"hello underneath\\n\"" % cfd, "server reads the line")
            sends = [x for x in io if x[0] in ("sendto", "sendmsg")]
            t.ok(sends and all("MSG_NOSIGNAL" in x[1] for x in sends),
                 "server sends with MSG_NOSIGNAL: %r" % sends)
            if backend == "epoll":
                need(s, "epoll_ctl", r"EPOLL_CTL_ADD, %s, \{events=EPOLLIN" % lfd, "server")
                need(c, "epoll_ctl", r"EPOLL_CTL_(ADD|MOD), %s, \{events=[A-Z|]*EPOLLOUT" % kfd,
                     "client waits for writable")
            elif backend == "poll":
                need(s, "poll", r"\{fd=%s, events=POLLIN" % lfd, "server")
                need(c, "poll", r"\{fd=%s, events=[A-Z|]*POLLOUT" % kfd, "client waits for writable")
    finally:
        if cli:
            axtest.kill_traced(cli.pid, client_bin)
        axtest.kill_traced(srv.pid, server_bin)
        shutil.rmtree(tmp, ignore_errors=True)


t.main()
