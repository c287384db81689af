"""Helpers shared by the `axon cat` integration tests."""

import os
import re
import socket
import subprocess
import time

import axtest

LISTENING = re.compile(r"listening on (\S+)")


def cat(*args, stdin=True):
    """Start `axon cat ARGS` with stdin as a pipe and stdout captured."""
    return axtest.Proc([axtest.axon_bin(), "cat"] + list(args),
                       stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, capture=True)


def wait_stderr(proc, pattern, timeout=axtest.TIMEOUT):
    """Wait until proc's stderr matches `pattern`; returns the match."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx.search(proc.stderr())
        if m:
            return m
        if not proc.running() or time.monotonic() > deadline:
            raise axtest.Failure("no %r on axon cat's stderr (exit %s): %r" % (
                pattern, proc.p.poll(), proc.stderr()[-400:]))
        time.sleep(0.02)


def wait_count(proc, word, n, timeout=axtest.TIMEOUT):
    """Wait until `word` appears n times on proc's stderr."""
    deadline = time.monotonic() + timeout
    while proc.stderr().count(word) < n:
        if not proc.running() or time.monotonic() > deadline:
            raise axtest.Failure("wanted %d x %r on axon cat's stderr: %r" % (
                n, word, proc.stderr()[-400:]))
        time.sleep(0.02)


def listening_url(proc):
    return wait_stderr(proc, LISTENING.pattern).group(1)


def send(proc, data):
    proc.p.stdin.write(data)
    proc.p.stdin.flush()


def end_input(proc):
    proc.p.stdin.close()


def tcp_listener(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, 0))
    s.listen(8)
    s.settimeout(axtest.TIMEOUT)
    return s


def unix_listener(path):
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    s.settimeout(axtest.TIMEOUT)
    return s


def connect(url):
    """A blocking client socket for a URL axon cat printed."""
    scheme, host, port = axtest.split_url(url)
    if scheme == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(axtest.TIMEOUT)
        s.connect(host)
        return s
    return socket.create_connection((host, port), timeout=axtest.TIMEOUT)


def recv_until(sock, want, timeout=axtest.TIMEOUT):
    """Read until `want` has arrived (or EOF); returns everything read."""
    sock.settimeout(timeout)
    got = b""
    while want not in got:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        got += chunk
    return got


def recv_eof(sock, timeout=axtest.TIMEOUT):
    """Read to EOF; returns the bytes (raises on timeout)."""
    sock.settimeout(timeout)
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return got
        got += chunk
