"""ircutil: an IRC client for the integration tests (tests/integration/
test_irc*.py): a line reader that connects to `axon serve`'s IRC port and
waits for lines and numerics.  Each test adds its own register()."""

import re
import time

import axtest


class Irc(axtest.Lines):
    @classmethod
    def open(cls, srv):
        # Serve is ready when its HTTP port answers; the IRC listener opens
        # a moment later (after a config file's oper file is loaded, say)
        deadline = time.monotonic() + axtest.TIMEOUT
        while True:
            try:
                return cls.connect("127.0.0.1", srv.irc_port)
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cmd(self, line):
        self.send(line + "\r\n")

    def until(self, pred, what, timeout=axtest.TIMEOUT):
        """Lines up to and with the first one pred() takes (returned last)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise axtest.Failure("no %s; got %r" % (what, seen))
            ln = self.line(left).rstrip("\r")
            seen.append(ln)
            if pred(ln):
                return seen

    def numeric(self, code, what=None):
        return self.until(lambda ln: re.match(r"^(@\S+ )?:\S+ %s " % code, ln),
                          what or "numeric %s" % code)

    def has(self, text, what=None):
        return self.until(lambda ln: text in ln, what or repr(text))[-1]
