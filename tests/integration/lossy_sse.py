#!/usr/bin/python3
"""A Server-Sent Events pub/sub server that loses and reorders on purpose,
to show that axon bench's fan-out checks see it: POST /pub/TOPIC sends the
body to every GET /sub/TOPIC stream as `data: BODY`, except that of every
ten messages on a topic the fourth is dropped and the seventh is held back
and sent after the eighth.

    lossy_sse.py PORT

Prints "listening PORT" when ready."""

import http.server
import queue
import sys
import threading

subs = {}  # topic -> [queue]
counts, held = {}, {}
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.startswith("/sub/"):
            self.send_error(404)
            return
        q = queue.Queue()
        with lock:
            subs.setdefault(self.path[5:], []).append(q)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        try:
            while True:
                self.wfile.write(b"data: " + q.get() + b"\n\n")
                self.wfile.flush()
        except OSError:
            pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        topic = self.path[5:]
        with lock:
            k = counts.get(topic, 0)
            counts[topic] = k + 1
            out = []
            if k % 10 == 6:
                held[topic] = body
            elif k % 10 != 3:
                out.append(body)
                if k % 10 == 7 and topic in held:
                    out.append(held.pop(topic))
            for q in subs.get(topic, []):
                for b in out:
                    q.put(b)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    srv.daemon_threads = True
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
