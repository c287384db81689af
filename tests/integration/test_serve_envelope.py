#!/usr/bin/python3
"""The WebSocket gateway's publish requests, read by the envelope scan
(src/hub/envelope.h) and not a jansson tree: the replies and the delivered
messages are byte for byte what they were when jansson read every
request (the same text passes on the old build).

  (a) publishes with every kind of "id" (absent, integer, -0, string,
      escaped string, real, object, null), escaped topics and payloads,
      unknown and nested fields: the "ok" replies, exactly;
  (b) invalid requests (duplicate keys at any depth, \\u0000, a lone
      surrogate, trailing bytes, a huge integer, a non-object): the same
      error replies as jansson's;
  (c) the subscriber gets each message as the same bytes.
"""

import asyncio
import json

import axtest
from servutil import Serve

t = axtest.Tests("axon serve: publish envelopes without a tree")

OK = [  # request, the exact reply
    ('{"type":"publish","topic":"e/a","payload":"hi"}', '{"topic":"e/a","seq":1,"type":"ok"}'),
    ('{"type":"publish","topic":"e/a","payload":"hi","id":7}',
     '{"topic":"e/a","seq":2,"type":"ok","id":7}'),
    ('{"id":-12,"payload":"x","topic":"e/a","type":"publish"}',
     '{"topic":"e/a","seq":3,"type":"ok","id":-12}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":-0}',
     '{"topic":"e/a","seq":4,"type":"ok","id":0}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":"r-1"}',
     '{"topic":"e/a","seq":5,"type":"ok","id":"r-1"}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":"\\u0041\\/"}',
     '{"topic":"e/a","seq":6,"type":"ok","id":"A/"}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":1.5}',
     '{"topic":"e/a","seq":7,"type":"ok","id":1.5}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":{"b":[1, 2]}}',
     '{"topic":"e/a","seq":8,"type":"ok","id":{"b":[1,2]}}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":null}',
     '{"topic":"e/a","seq":9,"type":"ok","id":null}'),
    (' {"type" : "p\\u0075blish", "topic":"e\\/\\u00e9", "payload":"\\ud83d\\ude00\\n\\"",'
     ' "x":{"type":"ping","y":[true,false,null,1e5]}} ',
     '{"topic":"e/\u00e9","seq":1,"type":"ok"}'),
]

BAD = [  # request, the exact error reply (jansson's texts)
    ('{"type":"publish","topic":"e/a","payload":"x","topic":"e/b"}',
     '{"type":"error","error":"duplicate object key near \'\\"topic\\"\'"}'),
    ('{"type":"publish","topic":"e/a","payload":"x","z":{"k":1,"k":2}}',
     '{"type":"error","error":"duplicate object key near \'\\"k\\"\'"}'),
    ('{"type":"publish","topic":"e/a","payload":"\\u0000"}',
     '{"type":"error","error":"\\\\u0000 is not allowed without JSON_ALLOW_NUL near \'\\"\\\\u0000\\"\'"}'),
    ('{"type":"publish","topic":"e/a","payload":"\\ud800"}',
     '{"type":"error","error":"invalid Unicode \'\\\\uD800\' near \'\\"\\\\ud800\\"\'"}'),
    ('{"type":"publish","topic":"e/a","payload":"x"} x',
     '{"type":"error","error":"end of file expected near \'x\'"}'),
    ('{"type":"publish","topic":"e/a","payload":"x","id":99999999999999999999}',
     '{"type":"error","error":"too big integer near \'99999999999999999999\'"}'),
    ('["publish"]',
     '{"type":"error","error":"a request is a JSON object"}'),
    ('{"type":"publish","topic":"e/a","payload":7}',
     '{"type":"error","error":"publish needs a string payload"}'),
    ('{"type":"publish","topic":"e/+","payload":"x","id":3}',
     '{"type":"error","error":"not a valid topic","id":3}'),
]


def session(srv, texts, sub_count):
    import websockets

    async def run():
        url = "ws://127.0.0.1:%d/ws" % srv.http_port
        async with websockets.connect(url) as sub, websockets.connect(url) as pub:
            for ws in (sub, pub):
                await asyncio.wait_for(ws.recv(), 5)  # welcome
            await sub.send('{"type":"subscribe","topic":"e/#"}')
            await asyncio.wait_for(sub.recv(), 5)
            replies = []
            for s in texts:
                await pub.send(s)
                replies.append(await asyncio.wait_for(pub.recv(), 5))
            got = [await asyncio.wait_for(sub.recv(), 5) for _ in range(sub_count)]
            return replies, got

    return asyncio.run(run())


@t.test
def replies_and_deliveries_are_unchanged():
    srv = Serve("-d", "none")
    try:
        replies, got = session(srv, [r for r, _ in OK] + [r for r, _ in BAD], len(OK))
        for (req, want), rep in zip(OK, replies):
            t.eq(rep, want, "reply to %s" % req)
        for (req, want), rep in zip(BAD, replies[len(OK):]):
            t.eq(rep, want, "reply to %s" % req)
        for m in got:
            t.ok(m.startswith('{"type":"message","topic":"e/'), "a message: %s" % m)
            o = json.loads(m)
            t.eq(list(o), ["type", "topic", "seq", "time", "sender", "payload"], "its fields")
        t.eq(json.loads(got[-1])["payload"], "\U0001F600\n\"", "the decoded payload")
        t.eq(json.loads(got[-1])["topic"], "e/\u00e9", "the decoded topic")
    finally:
        srv.stop()


t.main()
