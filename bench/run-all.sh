#!/usr/bin/env bash
# run-all.sh: every benchmark axon records in bench/RESULTS.md, in one go.
# Each prints its own table; the last line of each is the ratio line to
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
