#!/usr/bin/env bash
# test_examples_tcp_echo.sh: examples/tcp_echo_server driven by real clients
# (nc from netcat-openbsd, socat) over TCP/IPv4, TCP/IPv6 and a Unix socket.
#
# Usage: test_examples_tcp_echo.sh [BUILD_DIR]  (or AXON_BUILD=...); the
# backend under test comes from AXON_BACKEND.  Ends with `N passed, N failed`.
set -u
BUILD=${AXON_BUILD:-${1:-build}}
EX=$BUILD/examples
. "$(dirname "$0")/tap.sh"
tap_start echo-test
need nc
need socat

# start_server NAME URL: start an example, wait for its "... on URL (backend)"
# line; sets SRV_PID, SRV_URL, SRV_BACKEND, SRV_PORT.  Returns 1 if it failed.
start_server() {
    local out=$TMP/$1.$RANDOM.out
    "$EX/$1" "$2" >"$out" 2>"$out.err" &
    SRV_PID=$!
    pids+=("$SRV_PID")
    SRV_URL= SRV_BACKEND= SRV_PORT=
    for _ in $(seq 100); do
        grep -q ' on [a-z]*://' "$out" && break
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.05
    done
    SRV_URL=$(sed -n 's/^.* on \([a-z]*:\/\/[^ ]*\) (\([a-z]*\))$/\1/p' "$out" | head -1)
    SRV_BACKEND=$(sed -n 's/^.* on \([a-z]*:\/\/[^ ]*\) (\([a-z]*\))$/\2/p' "$out" | head -1)
    SRV_PORT=${SRV_URL##*:}
    if [ -z "$SRV_URL" ]; then
        SRV_ERR="no listening line; stdout: $(head -c 300 "$out"); stderr: $(head -c 300 "$out.err")"
        return 1
    fi
}

# stop_server PID: SIGTERM, and the exit status must be 0 within 5 s.
stop_server() {
    kill -TERM "$1" 2>/dev/null || return 1
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; wait "$1"; return 1; fi
    wait "$1"
}

# --- TCP over IPv4 -----------------------------------------------------------
if start_server tcp_echo_server tcp://127.0.0.1:0; then
    ok "server prints its address ($SRV_URL)"
else
    bad "server prints its address" "$SRV_ERR"
    echo "$passed passed, $failed failed"
    exit 1
fi
if [ -z "${AXON_BACKEND:-}" ] || [ "$SRV_BACKEND" = "$AXON_BACKEND" ]; then
    ok "server runs the requested backend ($SRV_BACKEND)"
else
    bad "server runs the requested backend" "got $SRV_BACKEND, AXON_BACKEND=$AXON_BACKEND"
fi
[ "$SRV_PORT" -gt 0 ] 2>/dev/null && ok "port 0 became a real port ($SRV_PORT)" ||
    bad "port 0 became a real port" "url $SRV_URL"
PID4=$SRV_PID PORT4=$SRV_PORT

# nc -N shuts down its sending side at the end of stdin; the server must
# still send the echo back, then close, which ends nc.
got=$(printf 'hello axon\n' | timeout 5 nc -N 127.0.0.1 "$PORT4")
[ "$got" = "hello axon" ] && ok "nc: one line echoed, closed after half-close" ||
    bad "nc: one line echoed" "got '$got'"

got=$(printf 'one\ntwo\nthree\n' | timeout 5 nc -N 127.0.0.1 "$PORT4" | tr '\n' ,)
[ "$got" = "one,two,three," ] && ok "nc: several lines in order" || bad "nc: several lines" "got '$got'"

# A megabyte of random bytes through socat: binary-safe, nothing lost,
# nothing reordered, while both directions are busy at once.
head -c 1048576 /dev/urandom >"$TMP/big.in"
timeout 15 socat -t 10 -T 15 - "TCP:127.0.0.1:$PORT4" <"$TMP/big.in" >"$TMP/big.out"
if cmp -s "$TMP/big.in" "$TMP/big.out"; then
    ok "socat: 1 MiB of random bytes echoed exactly"
else
    bad "socat: 1 MiB echoed exactly" "sent 1048576 bytes, got $(wc -c <"$TMP/big.out")"
fi

# Twenty clients at once, each with its own text.
cpids=()
for i in $(seq 20); do
    (seq -f "client $i line %g" 200 | timeout 10 nc -N 127.0.0.1 "$PORT4" >"$TMP/c$i.out") &
    cpids+=($!)
done
for p in "${cpids[@]}"; do wait "$p"; done
bad_clients=
for i in $(seq 20); do
    seq -f "client $i line %g" 200 | cmp -s - "$TMP/c$i.out" || bad_clients="$bad_clients $i"
done
[ -z "$bad_clients" ] && ok "20 concurrent nc clients each get exactly their own bytes" ||
    bad "20 concurrent clients" "wrong output for client(s)$bad_clients"

# A client that vanishes without reading its echo must not hurt the server.
head -c 300000 /dev/zero | timeout 5 socat -u - "TCP:127.0.0.1:$PORT4" 2>/dev/null
got=$(printf 'still here\n' | timeout 5 nc -N 127.0.0.1 "$PORT4")
[ "$got" = "still here" ] && ok "server survives a client that never reads" ||
    bad "server survives a client that never reads" "got '$got'"

# The same port cannot be taken twice; the example says why and exits 1.
timeout 5 "$EX/tcp_echo_server" "tcp://127.0.0.1:$PORT4" >/dev/null 2>"$TMP/inuse.err"
st=$?
if [ $st -eq 1 ] && grep -q "127.0.0.1:$PORT4" "$TMP/inuse.err"; then
    ok "second server on the same port exits 1 with a message"
else
    bad "second server on the same port exits 1" "status $st, stderr '$(cat "$TMP/inuse.err")'"
fi
timeout 5 "$EX/tcp_echo_server" "bogus://nowhere" >/dev/null 2>"$TMP/bogus.err"
st=$?
[ $st -eq 1 ] && [ -s "$TMP/bogus.err" ] && ok "a bad URL exits 1 with a message" ||
    bad "a bad URL exits 1 with a message" "status $st, stderr '$(cat "$TMP/bogus.err")'"

if stop_server "$PID4"; then ok "SIGTERM stops the server with status 0"; else
    bad "SIGTERM stops the server with status 0"; fi
if timeout 2 nc -z 127.0.0.1 "$PORT4" 2>/dev/null; then
    bad "port is released after exit"
else ok "port is released after exit"; fi

# --- TCP over IPv6 -----------------------------------------------------------
if [ -e /proc/net/if_inet6 ] && start_server tcp_echo_server 'tcp://[::1]:0'; then
    got=$(printf 'over six\n' | timeout 5 nc -6 -N ::1 "$SRV_PORT")
    [ "$got" = "over six" ] && ok "IPv6: $SRV_URL echoes" || bad "IPv6 echo" "got '$got'"
    stop_server "$SRV_PID" || bad "IPv6 server stops on SIGTERM"
elif [ -e /proc/net/if_inet6 ]; then
    bad "IPv6 server starts" "$SRV_ERR"
else
    ok "IPv6 # SKIP no IPv6 on this machine"
fi

# --- Unix socket: same program, another URL ------------------------------------
SOCK=$TMP/echo.sock
if start_server tcp_echo_server "unix://$SOCK"; then
    ok "unix: server prints $SRV_URL"
    got=$(printf 'via unix\n' | timeout 5 nc -N -U "$SOCK")
    [ "$got" = "via unix" ] && ok "unix: nc -U echoes" || bad "unix: nc -U echoes" "got '$got'"
    timeout 15 socat -t 10 -T 15 - "UNIX-CONNECT:$SOCK" <"$TMP/big.in" >"$TMP/ubig.out"
    cmp -s "$TMP/big.in" "$TMP/ubig.out" && ok "unix: socat 1 MiB echoed exactly" ||
        bad "unix: socat 1 MiB" "got $(wc -c <"$TMP/ubig.out") bytes"
    stop_server "$SRV_PID" && ok "unix: SIGTERM stops the server with status 0" ||
        bad "unix: SIGTERM stops the server with status 0"
    [ ! -e "$SOCK" ] && ok "unix: socket file removed on exit" ||
        bad "unix: socket file removed on exit" "$SOCK still exists"
else
    bad "unix: server starts" "$SRV_ERR"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
