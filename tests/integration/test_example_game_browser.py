#!/usr/bin/python3
# axon-test: one backend (a browser page: what it checks does not depend on the event loop)
"""examples/game in Chromium: two pages (the canvas client, index.html,
over WebSocket) and three UDP bots (game_bot) in one arena see each other
move (the pages see the bots and each other, the bots see a page); a page
predicts its own movement at once, draws the others between two snapshots
(interpolation) and shows its round-trip time; the page fits 1280 and 390
px wide (screenshots into $AXON_SCREENS)."""

import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import axtest  # noqa: E402
import pageutil  # noqa: E402
from axtest import Proc, example  # noqa: E402

ENV = pageutil.available()
if ENV is None:
    sys.exit(1)

t = axtest.Tests("examples/game: two Chromium pages and three UDP bots", alarm=240)
UP, DOWN, LEFT, RIGHT = 1, 2, 4, 8
LINE = re.compile(rb"game server on (\S+) \((\w+)\), udp (\S+),")


class Game(Proc):
    def __init__(self, *opts):
        super().__init__([example("game_server"), "--http", "tcp://127.0.0.1:0", "--udp",
                          "udp://127.0.0.1:0"] + list(opts))
        out = self.wait_output(lambda o: LINE.search(o) is not None, what="the listening line")
        m = LINE.search(out)
        self.udp = m.group(3).decode()
        _, _, self.http_port = axtest.split_url(m.group(1).decode())


REPORT = re.compile(r"^bot (\d+) id \d+ tick \d+ rtt \d+ at -?\d+,-?\d+ sees(.*)$", re.M)


def bots_see(out, eid, moves):
    """Every bot's latest report (game_bot --report, once a second) has eid seen moving
    at least `moves` times."""
    text = out[-8192:].decode(errors="replace")
    latest = {}
    for m in REPORT.finditer(text[:text.rfind("\n") + 1]):  # whole lines only
        seen = {}
        for item in m.group(2).split():
            ent, n = item.split("/")
            seen[int(ent.split("@")[0])] = int(n)
        latest[int(m.group(1))] = seen
    return len(latest) == 3 and all(v.get(eid, 0) >= moves for v in latest.values())


def others(b, page):
    return b.eval("[...game.others].map(([id, p]) => [id, p.x, p.y, p.moves])", page=page)


@t.test
def pages_and_bots_see_each_other_move():
    srv = Game("--arena", "400x250")
    url = "http://127.0.0.1:%d/" % srv.http_port
    bots = Proc([example("game_bot"), "--count", "3", "--seconds", "60", "--report", srv.udp])
    b = pageutil.Browser(ENV)
    p0 = b.open(url, 1280, 800)
    p1 = b.open(url, 390, 844)
    ids = []
    for p in (p0, p1):
        b.wait("game.id > 0 && game.tick > 0 && game.self", page=p, what="page %d joined" % p)
        ids.append(b.eval("game.id", page=p))
    t.ok(ids[0] != ids[1], "two players: %r" % ids)
    # everybody in view: the other page and the three bots
    for p, other in ((p0, ids[1]), (p1, ids[0])):
        b.wait("game.others.size >= 4", page=p, what="page %d sees 4 others" % p)
        t.ok(other in [o[0] for o in others(b, p)], "page %d sees the other page" % p)
    # the bots move by themselves: every page sees them move
    b.wait("[...game.others.values()].filter((o) => o.moves >= 5).length >= 3", page=p0,
           what="page 0 sees three bots move")
    # interpolation: the others are drawn between two snapshots (whose positions are whole
    # units), so a moving bot is drawn at fractions of a unit, and never outside the arena
    drawn = b.eval("""new Promise((ok) => {
      const seen = [], end = performance.now() + 1500;
      const timer = setInterval(() => {
        for (const [id, p] of game.drawn()) if (id !== game.id) seen.push([id, p.x, p.y]);
        if (performance.now() > end) { clearInterval(timer); ok(seen); }
      }, 5);
    })""", page=p0)
    between = [d for d in drawn if d[1] % 1 or d[2] % 1]
    t.ok(len(between) > 0, "drawn between snapshots: %d of %d positions" % (len(between), len(drawn)))
    t.eq([d for d in drawn if not (0 <= d[1] <= 400 and 0 <= d[2] <= 300)], [],
         "drawn inside the arena")
    # page 1 moves right: page 1 predicts it at once, page 0 sees it move
    start = b.eval("[game.self.x, game.self.y]", page=p1)
    seen_before = b.eval("(game.others.get(%d) || {moves: 0}).moves" % ids[1], page=p0)
    keys = (RIGHT if start[0] < 200 else LEFT) | (DOWN if start[1] < 150 else UP)  # away from walls
    b.eval("game.setKeys(%d)" % keys, page=p1)
    moved = b.eval("new Promise((ok) => setTimeout(() => ok([game.self.x, game.self.y, "
                   "game.tick]), 50))", page=p1)
    t.ok(moved[:2] != start, "predicted before the server's answer: %r -> %r" % (start, moved))
    b.wait("(game.others.get(%d) || {moves: 0}).moves >= %d" % (ids[1], seen_before + 5),
           page=p0, what="page 0 sees page 1 move")
    bots.wait_output(lambda o: bots_see(o, ids[1], 5), timeout=30,
                     what="every bot sees page 1 move")
    b.eval("game.setKeys(0)", page=p1)
    rtt = b.wait("game.rtt !== null && game.rtt", page=p1, what="an RTT")
    t.ok(0 <= rtt < 5000, "RTT on loopback: %r ms" % rtt)
    t.ok(b.eval("document.getElementById('rtt').textContent.endsWith(' ms')", page=p1),
         "the RTT is on the page")
    # once page 1 stands still, page 0's view of it is page 1's own position
    b.wait("new Promise((ok) => setTimeout(() => ok(true), 500))", page=p1)
    me = b.eval("[game.self.x, game.self.y]", page=p1)
    b.wait("(() => { const a = game.others.get(%d); return a && a.x === %d && a.y === %d; })()"
           % (ids[1], me[0], me[1]), page=p0, what="page 0 sees page 1 where it is")
    for p in (p0, p1):
        t.eq(b.eval(pageutil.OVERFLOW_JS, page=p), [], "page %d: elements wider than the view" % p)
    b.shot("game-1280", page=p0)
    b.shot("game-390", page=p1)
    t.eq(b.do("events")["errors"], [], "page errors")
    bots.stop()


t.main()
