#!/usr/bin/python3
"""A TCP proxy that stalls: every STALL_EVERY seconds it stops forwarding
anything, either way, for STALL_MS milliseconds, and forwards promptly
otherwise.  Put in front of any server (an echo server, a WebSocket
server, an MQTT broker, the hub's SSE) it makes that server look like one
that stalls, whatever the protocol: test_bench_co.py runs axon bench
through it for every protocol family.

    stall_proxy.py PORT TARGET_PORT [STALL_MS [STALL_EVERY]]

The target is on 127.0.0.1.  Prints "listening PORT" when ready."""

import selectors
import socket
import sys
import time


def main():
    port, target = int(sys.argv[1]), int(sys.argv[2])
    stall = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.1
    every = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(512)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    peer, out = {}, {}  # socket -> the other end; socket -> bytes waiting to go to it

    def close(s):
        for x in (s, peer.get(s)):
            if x is None or x not in peer:
                continue
            sel.unregister(x)
            x.close()
            peer.pop(x, None)
            out.pop(x, None)

    def want(s):
        sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if out[s] else 0))

    print("listening %d" % lsock.getsockname()[1], flush=True)
    next_stall = time.monotonic() + every
    while True:
        now = time.monotonic()
        if now >= next_stall:
            time.sleep(stall)  # nothing moves meanwhile
            next_stall += every
            continue
        for key, ev in sel.select(timeout=max(0.0, next_stall - now)):
            s = key.fileobj
            if s is lsock:
                try:
                    c, _ = lsock.accept()
                except OSError:
                    continue
                u = socket.socket()
                try:
                    u.connect(("127.0.0.1", target))
                except OSError:
                    c.close()
                    u.close()
                    continue
                for x, y in ((c, u), (u, c)):
                    x.setblocking(False)
                    x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    peer[x], out[x] = y, b""
                    sel.register(x, selectors.EVENT_READ)
                continue
            if s not in peer:
                continue
            if ev & selectors.EVENT_WRITE and out[s]:
                try:
                    n = s.send(out[s])
                except BlockingIOError:
                    n = 0
                except OSError:
                    close(s)
                    continue
                out[s] = out[s][n:]
                want(s)
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    close(s)
                    continue
                o = peer[s]
                out[o] += data
                want(o)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
