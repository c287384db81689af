#!/usr/bin/python3
"""A tiny HTTP/1.1 keep-alive server that stalls: every STALL_EVERY seconds
it stops answering anyone for STALL_MS milliseconds (as a garbage
collector or a disk flush would), and answers promptly otherwise.  The
coordinated-omission test of axon bench (test_bench_co.py,
bench/co-stall) runs it.

    stall_server.py PORT [STALL_MS [STALL_EVERY]]

Prints "listening PORT" when ready."""

import selectors
import socket
import sys
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")


def main():
    port = int(sys.argv[1])
    stall = float(sys.argv[2]) / 1000 if len(sys.argv) > 2 else 0.1
    every = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(128)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    pending = {}
    print("listening %d" % lsock.getsockname()[1], flush=True)
    next_stall = time.monotonic() + every
    while True:
        now = time.monotonic()
        if now >= next_stall:
            time.sleep(stall)  # nobody is served meanwhile
            next_stall += every
            continue
        for key, _ in sel.select(timeout=max(0.0, next_stall - now)):
            s = key.fileobj
            if s is lsock:
                try:
                    c, _ = lsock.accept()
                except OSError:
                    continue
                c.setblocking(False)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending[c] = b""
                sel.register(c, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                pending.pop(s, None)
                s.close()
                continue
            buf = pending[s] + data
            n = buf.count(b"\r\n\r\n")  # GET requests without bodies
            pending[s] = buf[buf.rfind(b"\r\n\r\n") + 4:] if n else buf
            if n:
                try:
                    s.sendall(RESPONSE * n)
                except OSError:
                    pass


if __name__ == "__main__":
    main()
