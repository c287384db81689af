#!/usr/bin/env bash
# run-all.sh: every benchmark axon records in bench/RESULTS.md, in one go.
# Each prints its own table; the last line of each is the line to
# quote.  Runs for a few minutes; pass -q for shorter rounds.
set -u
cd "$(dirname "$0")/.."
SHARED=${AXON_SHARED:-../shared}
R=5 T=3
[ "${1:-}" = -q ] && R=3 T=2
echo "== TCP echo (echo-compare, $R rounds of ${T}s)"
"$SHARED/bench/echo-compare" -r "$R" -t "$T" 'build/axon echo -q tcp://127.0.0.1:{port}'
echo "== UDP echo (echo-compare -u)"
"$SHARED/bench/echo-compare" -u -r "$R" -t "$T" 'build/axon echo -q tcp://127.0.0.1:{port} udp://127.0.0.1:{port}'
echo "== RSS per idle TCP connection (10,000 connections)"
AXON_SHARED=$SHARED bench/idle-rss 'build/axon echo -q tcp://127.0.0.1:{port}'
echo "== TLS echo against plain TCP (bench/tls-echo)"
bench/tls-echo
echo "== TLS handshakes against openssl s_server (bench/tls-handshakes)"
bench/tls-handshakes
echo "== HTTP hello, pipelined, static 64k (http-compare)"
"$SHARED/bench/http-compare" -r "$R" -t "$T" 'build/examples/http_hello {port}'
"$SHARED/bench/http-compare" -r "$R" -t "$T" -p 16 'build/examples/http_hello {port}'
"$SHARED/bench/http-compare" -r "$R" -t "$T" -f 64k 'build/axon http --root {root} --listen tcp://127.0.0.1:{port}'
echo "== WebSocket echo, 64 B and 16 KiB (ws-compare)"
"$SHARED/bench/ws-compare" -r "$R" -t "$T" 'build/axon echo ws://127.0.0.1:{port}/'
"$SHARED/bench/ws-compare" -r "$R" -t "$T" -s 16384 'build/axon echo ws://127.0.0.1:{port}/'
echo "== WebSocket broadcast, 1 sender and 1,000 receivers (bench/ws-broadcast)"
bench/ws-broadcast -n 1000 -s 64 -w 64 -t 5
echo "== The hub: 1x1000 and 100x10 over WebSocket (bench/hub-load)"
bench/hub-load
echo "== HTTP publish per fsync mode: always (group commit), batch, off (bench/publish-fsync)"
bench/publish-fsync -c 32 -t 5 -r "$R"
bench/publish-fsync -c 128 -t 5 -r "$R"
echo "== axon bench against wrk (nginx) and mqttload (mosquitto) (bench/bench-compare)"
bench/bench-compare -r "$R" -t "$T"
echo "== coordinated omission: a server stalling 100 ms a second (bench/co-stall)"
bench/co-stall -t "$T"
echo "== live streaming: glass-to-glass latency and its drift over 10 minutes (bench/live-latency)"
if [ "$R" = 3 ]; then bench/live-latency 2; else bench/live-latency 10; fi
