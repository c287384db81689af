#!/usr/bin/python3
"""test_term_nodes: terminals across hub nodes (`axon serve --redis`,
docs/remote.md "Several nodes"), a real redis-server between the nodes.

- the agent and its writer on node A, a watcher on node B: the watcher sees
  what the writer typed, byte for byte as the writer does (the output
  topic term/NAME/out crosses the backplane like any topic); dropped, it
  comes back with its last seq and gets exactly the bytes it missed; B's
  recording (/term/NAME/cast) has the session's output too;
- the agent on node A, the writer on node B: the session starts for it,
  its keys and its window size reach the program ($term/NAME/in), it is
  told of the exit and exits with the program's status ($term/NAME/ctl),
  a watcher on A sees it all; the keys are in no Redis key (no stream);
  an anonymous client of a hub that lets anonymous clients read and write
  cannot publish there (403): nobody types without write on term/NAME."""
import signal
import subprocess
import time

import axtest
import redisutil
import servutil
import termutil

t = axtest.Tests("axon term across nodes through Redis", alarm=180)
wait_for = redisutil.wait_for

redisutil.require()
Redis = redisutil.Redis


def linked(hub):
    rc, out, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", hub.base + "/healthz")
    return out == "200"


def watcher(hub, url=None):
    return axtest.Proc([axtest.axon_bin(), "term", "connect", url or hub.url, "--watch",
                        "--token", hub.tok["bob"]], stdin=subprocess.PIPE)


@t.test
def watcher_on_another_node():
    r = Redis()
    a = termutil.Hub("--redis", r.url)
    b = termutil.Hub("--redis", r.url)
    wait_for(lambda: linked(a) and linked(b), "both nodes linked to Redis")
    a.agent()
    a.wait_log("agent box connected")
    w = a.connect("alice")
    a.wait_log("session 1 started")
    cut = termutil.Cutter(b.srv.http_port)
    try:
        v = watcher(b, "ws://127.0.0.1:%d/term/%s" % (cut.port, b.name))
        b.wait_log("bob is watching")
        w.p.stdin.write(b"echo across-$((6*7)); seq 1 300; echo part-$((1+1))-done\n")
        w.p.stdin.flush()
        v.wait_output(lambda o: b"part-2-done\r\n" in o, what="node A's output at B's watcher")
        cut.cut()  # B's watcher drops; the session on A goes on
        termutil.wait_file(v.err_path, "connection lost")
        w.p.stdin.write(b"seq 301 3000; echo part-$((1+2))-done\n")
        w.p.stdin.flush()
        w.wait_output(lambda o: b"part-3-done\r\n" in o, what="the second part at the writer")
        time.sleep(0.5)
        cut.restore()
        v.wait_output(lambda o: b"part-3-done\r\n" in o, timeout=20,
                      what="the missed part at B's watcher after the drop")
        w.p.stdin.write(b"echo end-$((2+2))\n")
        w.p.stdin.flush()
        wo = w.wait_output(lambda o: o.endswith(b"end-4\r\n$ "), what="the end at the writer")
        vo = v.wait_output(lambda o: o.endswith(b"end-4\r\n$ "), what="the end at B's watcher")
        t.ok(b"across-42" in vo, "B's watcher saw the command's output")
        t.ok(vo == wo, "B's watcher's bytes are the writer's on A, byte for byte (%d and %d)"
             % (len(vo), len(wo)))
    finally:
        cut.close()
    rc, cast, _ = servutil.curl("-H", "Authorization: Bearer " + b.tok["bob"],
                                b.base + "/term/box1/cast")
    t.ok("part-3-done" in cast, "B's recording has the session's output: %r" % cast[-200:])
    v.stop()
    w.stop()
    for h in (a, b):
        h.stop()
    r.stop()


@t.test
def writer_on_another_node():
    r = Redis()
    a = termutil.Hub("--redis", r.url, "--anonymous", "readwrite")
    b = termutil.Hub("--redis", r.url, "--anonymous", "readwrite")
    wait_for(lambda: linked(a) and linked(b), "both nodes linked to Redis")
    a.agent()
    a.wait_log("agent box connected")
    for text in ("w80 24 eve", "kid\n"):  # what a writer's node would send, from a client
        rc, code, _ = servutil.curl("-o", "/dev/null", "-w", "%{http_code}", "--data-binary",
                                    text, b.base + "/api/publish/%24term/box1/in?sender=eve")
        t.eq(code, "403", "an anonymous client publishing on $term/box1/in")
    w = b.connect("alice")
    b.wait_log("alice attached as the writer")
    a.wait_log("alice attached as the writer on another node")
    log = a.wait_log("session 1 started for alice on another node")
    t.ok("eve" not in log, "no session for the anonymous client: %r" % log[-300:])
    v = watcher(a)
    a.wait_log("bob is watching")
    w.p.stdin.write(b"echo typed-$((6*7))-on-b; stty size; echo secret-key-$((1+1))\n")
    w.p.stdin.flush()
    wo = w.wait_output(lambda o: b"secret-key-2\r\n" in o, what="the shell on A, typed on B")
    t.ok(b"typed-42-on-b" in wo, "the writer on B ran a command on A's agent")
    t.ok(b"\r\n24 80\r\n" in wo, "the window size B gave: %r" % wo[-200:])
    v.wait_output(lambda o: b"secret-key-2\r\n" in o, what="B's writer's session at A's watcher")
    w.p.stdin.write(b"exit 7\n")
    w.p.stdin.flush()
    t.exits(w, 7, "connect on B when the program on A exits 7")
    a.wait_log("session 1 ended (exited, exit code 7)")
    keys = subprocess.run(["redis-cli", "-p", str(r.port), "--scan"], capture_output=True,
                          timeout=10).stdout.decode().split()
    t.ok(any("{term/box1/out}:log" in k for k in keys), "the output's stream: %r" % keys)
    t.ok(not any("/in}" in k and not k.endswith(":seq") for k in keys),
         "the keys are in no Redis key (only a counter): %r" % keys)
    v.stop()
    for h in (a, b):
        h.stop()
    r.stop()


@t.test
def writer_waits_for_the_agent_of_another_node():
    """The writer on B attaches before any agent: when the agent dials A,
    the session starts for it; the agent killed and started again: the
    session ended (connect exits, as on one node), a new one starts for
    the writer attaching again on B."""
    r = Redis()
    a = termutil.Hub("--redis", r.url)
    b = termutil.Hub("--redis", r.url)
    wait_for(lambda: linked(a) and linked(b), "both nodes linked to Redis")
    w = b.connect("alice")
    b.wait_log("alice attached as the writer")
    termutil.wait_file(w.err_path, "waiting for the agent")
    ag = a.agent()
    a.wait_log("session 1 started for alice on another node")
    w.p.stdin.write(b"echo first-$((2+3))\n")
    w.p.stdin.flush()
    w.wait_output(lambda o: b"first-5\r\n" in o, what="the first agent's shell, from B")
    ag.signal(signal.SIGKILL)
    ag.wait()
    a.wait_log("agent box gone")
    termutil.wait_file(w.err_path, "the agent is away")
    a.agent()
    t.exits(w, 0, "connect on B when the new agent says the old session is gone")
    termutil.wait_file(w.err_path, "the session ended")
    w2 = b.connect("alice")
    a.wait_log("session 2 started for alice")
    w2.p.stdin.write(b"echo second-$((3+4))\n")
    w2.p.stdin.flush()
    w2.wait_output(lambda o: b"second-7\r\n" in o, what="the second agent's shell, from B")
    w2.stop()
    for h in (a, b):
        h.stop()
    r.stop()


t.main()
