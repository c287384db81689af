#!/usr/bin/env bash
# axon-test: one backend (what it checks does not depend on the event loop)
# test_make_run.sh: `make run` builds quietly (one "building" line, no
# progress lines; warnings and errors would show) and the hub's addresses
# are the last lines on the screen, after its log lines.  The hub runs on
# free ports (RUN_ARGS) with history in memory.
#
# Usage: test_make_run.sh [BUILD_DIR]  (or AXON_BUILD=...; AXON_SRC is the
# source tree, by default the one this script is in).  Ends with
# `N passed, N failed`.
set -u
BUILD=$(cd "${AXON_BUILD:-${1:-build}}" && pwd) || { echo "Bail out! no build dir"; exit 1; }
SRC=${AXON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/tap.sh"
tap_start make-run 100
need make
need setsid
unset MAKEFLAGS MFLAGS MAKELEVEL # not a sub-make of whatever runs the tests

OUT=$TMP/run.out
setsid make -C "$SRC" --no-print-directory run BUILD="$BUILD" \
    RUN_ARGS="--http 127.0.0.1:0 --line 127.0.0.1:0 --udp 127.0.0.1:0 --mqtt 127.0.0.1:0 --irc 127.0.0.1:0 --rtmp 127.0.0.1:0 -d none" \
    </dev/null >"$OUT" 2>&1 &
pid=$!
pids+=("$pid")
for _ in $(seq 1800); do # the build may have work to do
    grep -q 'Ctrl-C stops' "$OUT" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
sleep 0.5 # anything printed after the addresses would show by now
if ! grep -q 'Ctrl-C stops' "$OUT"; then
    bad "make run starts the hub" "$(tail -20 "$OUT")"
    kill -TERM -- -"$pid" 2>/dev/null
    finish
fi
ok "make run starts the hub"

first_hint=$(grep -n '^axon serve: ' "$OUT" | head -1 | cut -d: -f1)
before=$(head -n $((first_hint - 1)) "$OUT" | grep -v '^[0-9]*:[A-Z] ') # not the hub's log lines
progress=$(grep -E '^\[ *[0-9]+%\]|Built target|^-- |Consolidate compiler' "$OUT")
[ -z "$progress" ] && ok "no build progress lines" ||
    bad "no build progress lines" "$(echo "$progress" | head -5)"
[ "$(echo "$before" | grep -c .)" -le 1 ] && ok "one line before the hub's own: '$before'" ||
    bad "at most one line before the hub's own" "$(echo "$before" | head -10)"
last=$(grep -v '^$' "$OUT" | tail -1)
[ "$last" = "axon serve: Ctrl-C stops" ] && ok "the addresses are the last lines" ||
    bad "the addresses are the last lines" "last line: '$last'"
after=$(tail -n +"$first_hint" "$OUT" | grep -vc '^axon serve: ')
[ "$after" -eq 0 ] && ok "nothing between the address lines" ||
    bad "nothing between the address lines" "$(tail -n +"$first_hint" "$OUT")"
grep -q 'ready to accept connections' "$OUT" && ok "the log lines come first" ||
    bad "the hub logs that it is ready" "$(head -20 "$OUT")"
grep -q 'chat page *http://127.0.0.1:[1-9]' "$OUT" && ok "the chat page's address is shown" ||
    bad "the chat page's address is shown" "$(tail -8 "$OUT")"

kill -INT -- -"$pid" 2>/dev/null
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
kill -0 "$pid" 2>/dev/null && { kill -KILL -- -"$pid"; bad "Ctrl-C stops it"; } || ok "Ctrl-C stops it"
finish
