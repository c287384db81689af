#!/usr/bin/python3
"""examples/game: the authoritative server at 30 Hz with UDP bots
(game_bot): three bots in one arena see each other move; with 10% of the
datagrams dropped each way (in the bots, on purpose) their views still
converge to where the server says everybody is; in a larger arena each
sees exactly who is near it; a garbage datagram or a
spoofed input changes nothing."""

import os
import re
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
from axtest import Failure, Proc, example  # noqa: E402

t = axtest.Tests("examples/game: server and UDP bots", alarm=120)
LINE = re.compile(rb"game server on (\S+) \((\w+)\), udp (\S+),")
FINAL = re.compile(r"^final (\d+) id (\d+) tick (\d+) rtt (\d+) at (-?\d+),(-?\d+) sees(.*)$")


class Game(Proc):
    def __init__(self, *opts):
        super().__init__([example("game_server"), "--http", "tcp://127.0.0.1:0", "--udp",
                          "udp://127.0.0.1:0"] + list(opts))
        out = self.wait_output(lambda o: LINE.search(o) is not None, what="the listening line")
        m = LINE.search(out)
        self.http = m.group(1).decode()
        self.udp = m.group(3).decode()
        _, _, self.udp_port = axtest.split_url(self.udp)
        _, _, self.http_port = axtest.split_url(self.http)


def bots(srv, n, seconds, still, drop=0):
    p = Proc([example("game_bot"), "--count", str(n), "--seconds", str(seconds), "--still",
              str(still), "--drop", str(drop), srv.udp])
    t.exits(p, 0, "game_bot", timeout=seconds + 10)
    views = {}
    for line in p.output().decode().splitlines():
        m = FINAL.match(line)
        if not m:
            continue
        seen = {}
        for item in m.group(7).split():
            ent, moves = item.split("/")
            eid, pos = ent.split("@")
            seen[int(eid)] = (tuple(int(v) for v in pos.split(",")), int(moves))
        views[int(m.group(2))] = {"at": (int(m.group(5)), int(m.group(6))),
                                  "tick": int(m.group(3)), "rtt": int(m.group(4)),
                                  "sees": seen}
    t.eq(len(views), n, "final views (%r)" % p.output()[-500:])
    return views


def converged(views, what):
    for me, v in views.items():
        t.ok(v["tick"] > 0, "%s: bot %d decoded snapshots" % (what, me))
        others = set(views) - {me}
        t.eq(set(v["sees"]), others, "%s: bot %d sees the others" % (what, me))
        for other in others:
            pos, moves = v["sees"][other]
            t.eq(pos, views[other]["at"], "%s: bot %d's view of bot %d" % (what, me, other))
            t.ok(moves >= 5, "%s: bot %d saw bot %d move only %d times" % (what, me, other, moves))


@t.test
def three_bots_see_each_other_move():
    # A view is 800x500 around a player (|dx| <= 400, |dy| <= 250): in a 400x250
    # arena every pair is in view wherever the bots stop.  (400x300 let two bots
    # stop 251-300 apart vertically, out of each other's view: 1 run in ~12 failed.)
    srv = Game("--arena", "400x250")  # all within everybody's view (800x500 around each)
    views = bots(srv, 3, 5, 3)
    converged(views, "no loss")
    for v in views.values():  # measured, not timed: a loaded CI machine may take long
        t.ok(0 <= v["rtt"] < 5000, "RTT on loopback: %d ms" % v["rtt"])


@t.test
def ten_percent_loss_still_converges():
    srv = Game("--arena", "400x250")
    views = bots(srv, 3, 7, 4, drop=10)
    converged(views, "10% loss")


@t.test
def each_bot_sees_exactly_who_is_near():
    # ten bots in an arena larger than a view (800x500 units around a player): each one's
    # last snapshot holds exactly the bots within 400x250 units of it, wherever the
    # server's grid cells (400x250) cut between them
    # (the check needs some bots far apart: spawn points are random, so a
    # run where all ten ended near one another is run again, up to 3 times)
    for attempt in range(3):
        srv = Game("--arena", "1200x800")
        views = bots(srv, 10, 5, 3)
        spots = sorted(v["at"] for v in views.values())
        if any(abs(a[0] - b[0]) > 400 or abs(a[1] - b[1]) > 250 for a in spots for b in spots):
            break
        print("# attempt %d: all ten bots ended near one another: %r" % (attempt + 1, spots), flush=True)
        srv.stop()
    pairs = {True: 0, False: 0}
    for me, v in views.items():
        near = {o for o, w in views.items() if o != me and abs(w["at"][0] - v["at"][0]) <= 400
                and abs(w["at"][1] - v["at"][1]) <= 250}
        t.eq(set(v["sees"]), near, "bot %d at %r sees who is near" % (me, v["at"]))
        for other in near & set(v["sees"]):
            t.eq(v["sees"][other][0], views[other]["at"], "bot %d's view of bot %d" % (me, other))
        for other in set(views) - {me}:
            pairs[other in near] += 1
    t.ok(pairs[True] > 0 and pairs[False] > 0, "some near, some far: %r at %r" % (pairs, spots))


@t.test
def bad_datagrams_change_nothing():
    srv = Game("--arena", "400x250")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    addr = ("127.0.0.1", srv.udp_port)
    # (random bytes start with 0x7f: one run in 256 began with 0x01, a JOIN,
    # and the server rightly welcomed it)
    for junk in (b"", b"\x03", b"\x04" * 40, b"\x03" + b"\xff" * 19, b"\x7f" + os.urandom(299)):
        s.sendto(junk, addr)
    s.sendto(b"\x01\x03abc", addr)  # JOIN
    msg, _ = s.recvfrom(100)
    t.eq(msg[0], 2, "WELCOME")
    my_id, w, h = struct.unpack(">HHH", msg[1:7])
    t.eq((w, h), (400, 250), "the arena's size")
    # another socket claims our id: ignored (wrong address)
    spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    spoof.sendto(struct.pack(">BHIIIB", 3, my_id, 0, 0, 1, 1) + b"\x08", addr)
    msg, _ = s.recvfrom(2000)
    t.eq(msg[0], 4, "a snapshot")
    tick, base = struct.unpack(">II", msg[1:9])
    t.eq(base, 0, "full snapshot before any ack")
    start = None
    for _ in range(10):
        msg, _ = s.recvfrom(2000)
        changed, removed = struct.unpack(">HH", msg[17:21])
        for i in range(changed):
            eid, x, y = struct.unpack(">Hhh", msg[23 + 6 * i:29 + 6 * i])
            if eid == my_id:
                start = start or (x, y)
                t.eq((x, y), start, "nobody moved us")
    t.ok(start is not None, "our own entity in full snapshots (no ack sent)")
    t.ok(Proc([example("game_bot"), "--seconds", "1", srv.udp]).wait(5) == 0, "a bot still plays")


t.main()
