"""mqttutil: MQTT clients for the integration tests of `axon serve`'s broker:
Paho (python3-paho-mqtt) wrapped so each step waits for its
acknowledgement, and a raw socket client for what Paho will not send
(bad versions, resends, silence)."""

import queue
import socket
import struct
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

import axtest

V311, V5 = paho.MQTTv311, paho.MQTTv5


class Client:
    """A Paho client that waits: connect() returns the CONNACK's code,
    subscribe() the SUBACK's, publish() when the broker acknowledged."""

    def __init__(self, port, cid="", version=V311, clean=True, user=None, password=None,
                 will=None, keepalive=60, transport="tcp", props=None, host="127.0.0.1"):
        self.port, self.host = port, host
        self.version = version
        self.msgs = queue.Queue()
        self.disconnects = queue.Queue()
        self.acks = {}
        self._cond = threading.Condition()
        self.connack = None
        kw = {"client_id": cid, "protocol": version, "transport": transport}
        if version != V5:
            kw["clean_session"] = clean
        self.c = paho.Client(**kw)
        if transport == "websockets":
            self.c.ws_set_options(path="/mqtt")
        if user is not None:
            self.c.username_pw_set(user, password)
        if will:
            self.c.will_set(*will[:3], retain=will[3] if len(will) > 3 else False,
                            properties=will[4] if len(will) > 4 else None)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_disconnect = self._on_disconnect
        self.clean, self.keepalive, self.props = clean, keepalive, props

    def _on_connect(self, c, ud, flags, rc, props=None):
        with self._cond:
            self.connack = (rc.value if hasattr(rc, "value") else rc, flags, props)
            self._cond.notify_all()

    def _on_message(self, c, ud, m):
        self.msgs.put(m)

    def _on_subscribe(self, c, ud, mid, granted, props=None):
        with self._cond:
            self.acks[mid] = [g.value if hasattr(g, "value") else g for g in granted]
            self._cond.notify_all()

    def _on_unsubscribe(self, c, ud, mid, props=None, codes=None):
        if codes is not None:  # 5.0: one or a list of paho's ReasonCodes: their values
            codes = [getattr(x, "value", x) for x in (codes if isinstance(codes, list) else [codes])]
        with self._cond:
            self.acks[mid] = codes
            self._cond.notify_all()

    def _on_disconnect(self, c, ud, rc, props=None):
        self.disconnects.put(rc.value if hasattr(rc, "value") else rc)

    def _wait(self, pred, what):
        with self._cond:
            if not self._cond.wait_for(pred, axtest.TIMEOUT):
                raise axtest.Failure("no %s from the broker" % what)

    def connect(self):
        """Connect; returns (code, session_present, properties)."""
        kw = {"keepalive": self.keepalive}
        if self.version == V5:
            kw["clean_start"] = self.clean
            kw["properties"] = self.props
        self.c.connect(self.host, self.port, **kw)
        self.c.loop_start()
        self._wait(lambda: self.connack is not None, "CONNACK")
        rc, flags, props = self.connack
        return rc, flags.get("session present", 0), props

    def subscribe(self, topic, qos=0, props=None, **opts):
        if self.version == V5:
            o = paho.SubscribeOptions(qos=qos, **opts)
            rc, mid = self.c.subscribe(topic, options=o, properties=props)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        self._wait(lambda: mid in self.acks, "SUBACK")
        return self.acks[mid]

    def unsubscribe(self, topic):
        rc, mid = self.c.unsubscribe(topic)
        self._wait(lambda: mid in self.acks, "UNSUBACK")
        return self.acks[mid]

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props)
        info.wait_for_publish(axtest.TIMEOUT)
        if not info.is_published():
            raise axtest.Failure("publish to %s (QoS %d) not acknowledged" % (topic, qos))
        return info

    def get(self, timeout=axtest.TIMEOUT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise axtest.Failure("no message arrived")

    def none(self, wait=0.3):
        """True when no message arrives within `wait` seconds."""
        try:
            m = self.msgs.get(timeout=wait)
        except queue.Empty:
            return True
        raise axtest.Failure("unexpected message on %s: %r" % (m.topic, m.payload))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """End the TCP connection without DISCONNECT (the will is sent)."""
        self.c.loop_stop()
        self.c.socket().close()


def v5props(packet, **kw):
    p = Properties(getattr(PacketTypes, packet))
    for k, v in kw.items():
        setattr(p, k, v)
    return p


# ---- raw packets -------------------------------------------------------------------------


def varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def mstr(s):
    s = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(s)) + s


def packet(kind, flags, body):
    return bytes([(kind << 4) | flags]) + varint(len(body)) + body


def connect_pkt(cid="raw", level=4, keepalive=60, clean=True, props=b""):
    name = b"MQIsdp" if level == 3 else b"MQTT"
    vh = mstr(name) + bytes([level, 0x02 if clean else 0]) + struct.pack(">H", keepalive)
    if level == 5:
        vh += varint(len(props)) + props
    return packet(1, 0, vh + mstr(cid))


def publish_pkt(topic, payload, qos=0, pid=0, dup=False, retain=False, level=4):
    body = mstr(topic) + (struct.pack(">H", pid) if qos else b"")
    if level == 5:
        body += b"\x00"
    return packet(3, (dup << 3) | (qos << 1) | retain, body + payload)


class Raw:
    """A plain socket speaking MQTT bytes."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=axtest.TIMEOUT)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def packet(self, timeout=axtest.TIMEOUT):
        """(type, flags, body) of the next packet, or None at EOF."""
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, mul, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mul
                    mul *= 128
                    i += 1
                    if not b & 0x80:
                        if len(self.buf) >= i + n:
                            p = (self.buf[0] >> 4, self.buf[0] & 15, self.buf[i:i + n])
                            self.buf = self.buf[i + n:]
                            return p
                        break
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def closed(self, timeout=axtest.TIMEOUT):
        """True when the broker closes the connection within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.packet(deadline - time.monotonic()) is None:
                    return True
        except (socket.timeout, ConnectionResetError):
            return False if time.monotonic() >= deadline else True
        return False

    def close(self):
        self.s.close()


def stop_clean(t, srv):
    """SIGTERM the server and check it exits 0 with nothing from the
    sanitizers (a leak or an error in the build-san run shows here)."""
    import signal as _signal
    srv.signal(_signal.SIGTERM)
    rc = srv.wait(10)
    err = srv.stderr()
    t.ok(rc == 0 and "Sanitizer" not in err and "runtime error" not in err,
         "axon serve exit status %s%s" % (rc, srv.err_note()))
    srv.stop()


def qos1_stream(pub, n, topic_of, window=1000):
    """Publishes n QoS 1 messages (payload: the number, 1..n) on topic_of(i)
    through the Raw client pub from a thread, reading the PUBACKs on
    another; returns (a stop event for the reader, the sender thread).

    At most `window` wait for their PUBACK, as a client's flow: a node
    whose Redis lags too far behind refuses a publish and closes a 3.1.1
    publisher (it sends again later), so a sender that runs ahead of its
    PUBACKs loses what it wrote after that under load.  A closed
    connection is not hidden: sender.closed_at is (the first message not
    acknowledged, why) (None: all were)."""
    stop = threading.Event()
    room = threading.Semaphore(window)
    gone = threading.Event()
    acked = [0]

    def drain():  # (the PUBACKs)
        try:
            while not stop.is_set():
                try:
                    p = pub.packet()
                except socket.timeout:  # (nothing owed for a while)
                    continue
                if p is None:
                    break
                if p[0] == 4:
                    acked[0] += 1
                    room.release()
        except (OSError, axtest.Failure):  # (closed at the end)
            pass
        gone.set()

    def publish():
        for i in range(1, n + 1):
            while not room.acquire(timeout=0.5):
                if gone.is_set():
                    sender.closed_at = (acked[0] + 1, "the node closed the connection")
                    return
            try:
                pub.send(publish_pkt(topic_of(i), b"%d" % i, qos=1, pid=i % 65535 or 1))
            except OSError as e:
                sender.closed_at = (acked[0] + 1, str(e))
                return
            if i % 100 == 0:
                time.sleep(0.005)
        deadline = time.monotonic() + 30  # (the last PUBACKs, on a busy machine)
        while acked[0] < n and time.monotonic() < deadline and not gone.is_set():
            time.sleep(0.02)
        if acked[0] < n:
            sender.closed_at = (acked[0] + 1, "the node closed the connection" if gone.is_set()
                                else "no PUBACK for 30 s")

    threading.Thread(target=drain, daemon=True).start()
    sender = threading.Thread(target=publish)
    sender.closed_at = None
    sender.start()
    return stop, sender
