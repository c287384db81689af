"""axtest: what axon's Python integration tests share.

A test script is a list of checks run in order:

    import axtest
    t = axtest.Tests("tcp echo")

    @t.test
    def echo_roundtrip():
        srv = t.server("tcp_echo_server", "tcp://127.0.0.1:0")
        ...
        t.eq(got, b"hello")

    t.main()

Each check runs to completion or to its first failed assertion; a script
prints TAP lines and ends with `N passed, N failed` (exit status 1 if any
failed).  Every process a test starts is stopped by PID when the script
ends, and a whole-script alarm turns a hang into a failure.

The build directory comes from $AXON_BUILD or the first argument, the
backend from $AXON_BACKEND (inherited by every program started).
"""

import os
import random
import re
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import atexit

BUILD = os.environ.get("AXON_BUILD") or (sys.argv[1] if len(sys.argv) > 1 else "build")
BUILD = os.path.abspath(BUILD)
BACKEND = os.environ.get("AXON_BACKEND", "")
TIMEOUT = 5.0  # seconds any single wait may take

_procs = []


class Failure(Exception):
    pass


def example(name):
    return os.path.join(BUILD, "examples", name)


def axon_bin():
    return os.path.join(BUILD, "axon")


_PORT_DIR = os.path.join(tempfile.gettempdir(), "axtest-ports")
_PORT_HOLD = 1800  # seconds a reservation keeps other tests off a port
_reserved = []


def _reserve(port):
    """Claims `port` for this test run against every other test script
    running beside it (ctest -j): a port that was free when one script
    probed it must not be handed to another before the first binds it.
    A claim is a file created with O_EXCL; one older than _PORT_HOLD was
    left by a killed script and is taken over."""
    os.makedirs(_PORT_DIR, exist_ok=True)
    path = os.path.join(_PORT_DIR, str(port))
    for _ in range(2):
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            _reserved.append(path)
            return True
        except FileExistsError:
            try:
                if time.time() - os.stat(path).st_mtime < _PORT_HOLD:
                    return False
                os.unlink(path)
            except FileNotFoundError:
                pass
    return False


def _release_ports():
    for path in _reserved:
        try:
            os.unlink(path)
        except OSError:
            pass


atexit.register(_release_ports)

# Every temporary file and directory of this script and of the programs it
# starts (TMPDIR) goes under one directory, removed when the script ends:
# the suite used to leave thousands of data dirs and output files in /tmp.
# (The port claims above stay in the shared /tmp, where other scripts look.)
# (Open to all for traversal, as /tmp is: mosquitto and VLC run as users of
# their own and read the certificates and write the files put here.)
_SCRATCH = tempfile.mkdtemp(prefix="axtest-run-")
os.chmod(_SCRATCH, 0o755)
tempfile.tempdir = _SCRATCH
os.environ["TMPDIR"] = _SCRATCH
atexit.register(shutil.rmtree, _SCRATCH, True)


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port free for `kind` right now, below the ephemeral range (32768
    and up): a test that restarts a server on the same port must not find
    it taken by some client's outgoing connection meanwhile.  The port is
    also reserved for this script (see _reserve) until it ends."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(500):
        port = random.randrange(10000, 32000)
        s = socket.socket(fam, kind)
        try:
            s.bind((host, port))
        except OSError:
            continue
        finally:
            s.close()
        if _reserve(port):
            return port
    raise Failure("no free port below 32000")


def listening_ports():
    """The TCP ports some socket on this machine listens on (from
    /proc/net/tcp and tcp6: no connection made)."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A":  # TCP_LISTEN
                        ports.add(int(cols[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def free_port_both(host="127.0.0.1"):
    """A port free for both TCP and UDP right now."""
    for _ in range(50):
        port = free_port(socket.SOCK_STREAM, host)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise Failure("no port free for both TCP and UDP")


def split_url(url):
    """'tcp://127.0.0.1:7000' -> ('tcp', '127.0.0.1', 7000); unix -> path."""
    m = re.match(r"^(\w+)://(.*)$", url)
    if not m:
        raise Failure("not a URL: %r" % url)
    scheme, rest = m.groups()
    if scheme == "unix":
        return scheme, rest, None
    m = re.match(r"^\[([^\]]+)\]:(\d+)", rest) or re.match(r"^([^:/]+):(\d+)", rest)
    if not m:
        raise Failure("no host:port in %r" % url)
    return scheme, m.group(1), int(m.group(2))


class Proc:
    """A started program.  stdout goes to a file (so a chatty program never
    blocks on a full pipe) unless capture=True gives a pipe read by a thread."""

    def __init__(self, args, stdin=None, capture=False, env=None):
        self.args = args
        fd, self.out_path = tempfile.mkstemp(prefix="axtest-out-")
        os.close(fd)
        fd, self.err_path = tempfile.mkstemp(prefix="axtest-err-")
        self._err = os.fdopen(fd, "wb")
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._eof = False
        if capture:
            out = subprocess.PIPE
        else:
            self._out = open(self.out_path, "wb")
            out = self._out
        self.p = subprocess.Popen(args, stdin=stdin, stdout=out, stderr=self._err,
                                  env=env, close_fds=True)
        self.pid = self.p.pid
        _procs.append(self)
        if capture:
            self._reader = threading.Thread(target=self._read_pipe, daemon=True)
            self._reader.start()

    def _read_pipe(self):
        while True:
            chunk = os.read(self.p.stdout.fileno(), 65536)
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                self._buf += chunk
                self._cond.notify_all()

    def output(self):
        """Everything the program printed so far."""
        if hasattr(self, "_out"):
            with open(self.out_path, "rb") as f:
                return f.read()
        with self._cond:
            return bytes(self._buf)

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_output(self, pred, timeout=TIMEOUT, what="output"):
        """Wait until pred(output) is true; returns the output."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.output()
            if pred(out):
                return out
            if time.monotonic() > deadline:
                raise Failure("timed out waiting for %s; %s printed %r%s" % (
                    what, os.path.basename(self.args[0]), out[-300:], self.err_note()))
            if hasattr(self, "_out"):
                if self.p.poll() is not None:
                    out = self.output()
                    if pred(out):
                        return out
                    raise Failure("%s exited (%s) before %s; printed %r%s" % (
                        os.path.basename(self.args[0]), self.p.returncode, what,
                        out[-300:], self.err_note()))
                time.sleep(0.02)
            else:
                with self._cond:
                    if self._eof and not pred(bytes(self._buf)):
                        raise Failure("%s closed stdout before %s; printed %r%s" % (
                            os.path.basename(self.args[0]), what, out[-300:],
                            self.err_note()))
                    self._cond.wait(0.05)

    def err_note(self):
        e = self.stderr().strip()
        if len(e) > 700:  # sanitizer reports: the start says what, the end how much
            e = e[:450] + " ... " + e[-200:]
        return "; stderr: %r" % e if e else ""

    def wait(self, timeout=TIMEOUT):
        """Wait for the exit; returns the status (negative: killed by signal).
        With capture=True, also for the reader thread to take the last of the
        pipe, so output() afterwards has everything the program printed."""
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure("%s did not exit within %.1f s" % (os.path.basename(self.args[0]),
                                                           timeout))
        if hasattr(self, "_reader"):
            self._reader.join(TIMEOUT)  # (a child that kept the pipe open: give up)
        return rc

    def running(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def stop(self):
        """SIGTERM, then SIGKILL if it lingers."""
        if self.p.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.p.wait(2)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait()
        for f in ("_out", "_err"):
            if hasattr(self, f):
                getattr(self, f).close()
        if self.p.stdin:
            try:
                self.p.stdin.close()
            except OSError:
                pass
        for path in (self.out_path, self.err_path):
            try:
                os.unlink(path)
            except OSError:
                pass


def stop_all():
    while _procs:
        _procs.pop().stop()


def traced_axons(tracer_pid, exe=None):
    """The children of a running strace that run `exe` (build/axon unless
    given; strace may fork probes of its own first, which come and go)."""
    want = os.path.realpath(exe or axon_bin())
    try:
        with open("/proc/%d/task/%d/children" % (tracer_pid, tracer_pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return []
    found = []
    for k in kids:
        try:
            if os.readlink("/proc/%d/exe" % k) == want:
                found.append(k)
        except OSError:
            pass
    return found


def kill_traced(tracer_pid, exe=None):
    """SIGKILL what strace runs: a server left behind would outlive
    strace's own end (detached)."""
    for k in traced_axons(tracer_pid, exe):
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass


SERVER_LINE = re.compile(rb"on (\S+://\S+) \((\w+)\)")


class Server(Proc):
    """An example server: waits for its `... on URL (backend)` line."""

    def __init__(self, name, url):
        super().__init__([example(name), url])
        out = self.wait_output(lambda o: SERVER_LINE.search(o) is not None,
                               what="the listening line")
        m = SERVER_LINE.search(out)
        self.url = m.group(1).decode()
        self.backend = m.group(2).decode()
        self.scheme, self.host, self.port = split_url(self.url)
        if BACKEND and self.backend != BACKEND:
            raise Failure("%s runs backend %s, AXON_BACKEND=%s" % (name, self.backend, BACKEND))


class Lines:
    """A TCP or Unix stream socket read line by line, with timeouts."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        sock.settimeout(TIMEOUT)

    @classmethod
    def connect(cls, host, port=None):
        if port is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(TIMEOUT)
            s.connect(host)
        else:
            s = socket.create_connection((host, port), timeout=TIMEOUT)
        return cls(s)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self, timeout=TIMEOUT):
        """The next line, without its newline."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failure("no line within %.1f s (have %r)" % (timeout, self.buf))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Failure("no line within %.1f s (have %r)" % (timeout, self.buf))
            if not chunk:
                raise Failure("connection closed while waiting for a line (have %r)" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode(errors="replace")

    def silent(self, seconds=0.3):
        """True when nothing arrives for `seconds`."""
        if self.buf:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(TIMEOUT)
        self.buf += chunk
        return False

    def closed_by_peer(self, timeout=TIMEOUT):
        """Wait for EOF, ignoring lines that arrive first; True on EOF."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk
        return False

    def close(self):
        self.sock.close()


def sanitized():
    """Whether the build under test carries ASan."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return "AXON_SANITIZE:BOOL=ON" in f.read()
    except OSError:
        return False


def flat_memory_env():
    """The environment for a process whose RSS a test bounds: under ASan,
    its quarantine (256 MiB of freed memory held back from reuse) is off,
    or any allocation churn would look like growth."""
    env = dict(os.environ)
    if sanitized():
        opts = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + "quarantine_size_mb=0"
    return env


def rss_kb(pid):
    """A process's resident set size in KiB (0 when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_port(port, proc, what, timeout=TIMEOUT):
    """Wait until something accepts on 127.0.0.1:port; fail if proc ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise Failure("%s exited%s" % (what, proc.err_note()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure("%s did not listen on %d%s" % (what, port, proc.err_note()))


def recv_all(sock, n, timeout=TIMEOUT):
    """Read exactly n bytes (fewer if the peer closes first)."""
    sock.settimeout(timeout)
    got = bytearray()
    while len(got) < n:
        chunk = sock.recv(min(1 << 20, n - len(got)))
        if not chunk:
            break
        got += chunk
    return bytes(got)


class Tests:
    def __init__(self, title, alarm=50):
        self.title = title
        self.cases = []
        self.alarm = alarm

    def test(self, fn):
        self.cases.append(fn)
        return fn

    # assertions: raise Failure with a message that says what differed
    def ok(self, cond, what):
        if not cond:
            raise Failure(what)

    def eq(self, got, want, what="value"):
        if got != want:
            g, w = repr(got), repr(want)
            if len(g) > 300:
                g = g[:300] + "..."
            if len(w) > 300:
                w = w[:300] + "..."
            raise Failure("%s: got %s, want %s" % (what, g, w))

    def exits(self, proc, want, what="exit status", timeout=TIMEOUT):
        """Wait for proc to exit with status `want` (a failure quotes its stderr)."""
        st = proc.wait(timeout)
        if st != want:
            raise Failure("%s: got %d, want %d%s" % (what, st, want, proc.err_note()))

    def server(self, name, url):
        return Server(name, url)

    def main(self):
        def on_alarm(signo, frame):
            print("not ok - %s: the whole script took longer than %d s" %
                  (self.title, self.alarm), flush=True)
            stop_all()
            _release_ports()
            print("%d passed, %d failed" % (self.passed, self.failed + 1), flush=True)
            os._exit(1)

        self.passed = self.failed = 0
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(self.alarm)
        print("# %s (backend %s, build %s)" % (self.title, BACKEND or "default", BUILD),
              flush=True)
        print("1..%d" % len(self.cases), flush=True)
        for i, fn in enumerate(self.cases, 1):
            name = fn.__name__
            try:
                fn()
            except Failure as e:
                self.failed += 1
                print("not ok %d - %s: %s" % (i, name, e), flush=True)
            except Exception:
                self.failed += 1
                detail = traceback.format_exc().strip().replace("\n", "\n# ")
                print("not ok %d - %s\n# %s" % (i, name, detail), flush=True)
            else:
                self.passed += 1
                print("ok %d - %s" % (i, name), flush=True)
            finally:
                stop_all()
        signal.alarm(0)
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)
