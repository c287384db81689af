#!/usr/bin/env bash
# axon-test: one backend (what it checks does not depend on the event loop)
# test_deps.sh: scripts/deps.sh with fake `id`, `dpkg-query` and `apt-get`
# first on PATH, so nothing is installed for real: as a user with a package
# missing it prints the sudo apt-get line and fails; as root it runs
# apt-get install -y -q with exactly the missing packages (retrying after
# apt-get update), and says so when that fails; with nothing missing it
# is silent.
#
# Usage: test_deps.sh [BUILD_DIR]  (unused; AXON_SRC is the source tree, by
# default the one this script is in).  Ends with `N passed, N failed`.
set -u
SRC=${AXON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
DEPS=$SRC/scripts/deps.sh
. "$(dirname "$0")/tap.sh"
tap_start deps-test
FAKE=$TMP/bin

[ -x "$DEPS" ] || { echo "Bail out! $DEPS is not executable"; exit 1; }
mkdir -p "$FAKE"
# id -u: $FAKE_UID.
cat >"$FAKE/id" <<'EOF'
#!/bin/sh
[ "$1" = -u ] && { echo "$FAKE_UID"; exit 0; }
echo "fake id: unexpected arguments: $*" >&2
exit 2
EOF
# dpkg-query -W -f='${Status}' PKG: installed unless PKG is in $FAKE_MISSING.
cat >"$FAKE/dpkg-query" <<'EOF'
#!/bin/sh
for last; do :; done
echo "$*" >>"$FAKE_LOG.dpkg"
for m in $FAKE_MISSING; do
    if [ "$m" = "$last" ]; then
        echo "dpkg-query: no packages found matching $last" >&2
        exit 1
    fi
done
printf 'install ok installed'
EOF
# apt-get ARGS: recorded in $FAKE_LOG; `install` fails the first
# $FAKE_INSTALL_FAILS times (counted in $FAKE_LOG.n).
cat >"$FAKE/apt-get" <<'EOF'
#!/bin/sh
echo "$*" >>"$FAKE_LOG"
[ "$DEBIAN_FRONTEND" = noninteractive ] || echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND" >>"$FAKE_LOG"
case "$1" in
install)
    k=$(cat "$FAKE_LOG.n" 2>/dev/null || echo 0)
    echo $((k + 1)) >"$FAKE_LOG.n"
    [ "$k" -lt "${FAKE_INSTALL_FAILS:-0}" ] && { echo "E: fake failure" >&2; exit 100; }
    ;;
esac
exit 0
EOF
chmod +x "$FAKE"/*

# deps UID "MISSING" FAILS GROUP...: run deps.sh; sets ST, OUT, ERR, LOG.
run=0
deps() {
    local uid=$1 miss=$2 fails=$3
    shift 3
    run=$((run + 1))
    local log=$TMP/apt.$run
    : >"$log"
    PATH="$FAKE:$PATH" FAKE_UID=$uid FAKE_MISSING=$miss FAKE_INSTALL_FAILS=$fails \
        FAKE_LOG=$log timeout 10 "$DEPS" "$@" >"$TMP/out.$run" 2>"$TMP/err.$run"
    ST=$?
    OUT=$(cat "$TMP/out.$run")
    ERR=$(cat "$TMP/err.$run")
    LOG=$(cat "$log")
    ASKED=$(cat "$log.dpkg" 2>/dev/null)
}

# --- a user (uid 1000) -------------------------------------------------------
deps 1000 libssl-dev 0 build
[ "$ST" -eq 1 ] && ok "user, libssl-dev missing: exit 1" || bad "user, missing: exit 1" "status $ST"
case "$ERR" in
*"sudo apt-get install -y libssl-dev"*) ok "user: stderr has the sudo apt-get install -y line" ;;
*) bad "user: stderr has the sudo apt-get install -y line" "stderr '$ERR'" ;;
esac
[ -z "$LOG" ] && ok "user: apt-get not run" || bad "user: apt-get not run" "it ran: $LOG"
[ -z "$OUT" ] && ok "user: nothing on stdout" || bad "user: nothing on stdout" "'$OUT'"
case "$ASKED" in
*cmake* ) ok "user: dpkg-query asked about the build group" ;;
*) bad "user: dpkg-query asked about the build group" "asked: $ASKED" ;;
esac

deps 1000 "libssl-dev clang" 0 build fuzz
[ "$ST" -eq 1 ] && [[ "$ERR" == *"sudo apt-get install -y libssl-dev clang"* ]] &&
    ok "user, two groups: both missing packages on one line" ||
    bad "user, two groups: both missing packages on one line" "status $ST, stderr '$ERR'"

deps 1000 "" 0 build
[ "$ST" -eq 0 ] && [ -z "$ERR$OUT$LOG" ] && ok "user, nothing missing: exit 0, silent" ||
    bad "user, nothing missing: exit 0, silent" "status $ST, stderr '$ERR', apt-get '$LOG'"

deps 1000 libssl-dev 0
[ "$ST" -eq 1 ] && [[ "$ERR" == *"install -y libssl-dev"* ]] &&
    ok "no group given means build" || bad "no group given means build" "status $ST, stderr '$ERR'"

# --- root (uid 0) ------------------------------------------------------------
deps 0 libssl-dev 0 build
[ "$ST" -eq 0 ] && ok "root, libssl-dev missing: exit 0" || bad "root: exit 0" "status $ST, stderr '$ERR'"
[ "$LOG" = "install -y -q libssl-dev" ] && ok "root: apt-get install -y -q libssl-dev, once" ||
    bad "root: apt-get install -y -q libssl-dev" "apt-get got: '$LOG'"
[[ "$ERR" == *"installing libssl-dev"* ]] && ok "root: says what it installs" ||
    bad "root: says what it installs" "stderr '$ERR'"

deps 0 "libssl-dev clang" 0 build fuzz
[ "$ST" -eq 0 ] && [ "$LOG" = "install -y -q libssl-dev clang" ] &&
    ok "root, two groups: one apt-get install with both" ||
    bad "root, two groups: one apt-get install with both" "status $ST, apt-get '$LOG'"

deps 0 "" 0 build
[ "$ST" -eq 0 ] && [ -z "$LOG$ERR" ] && ok "root, nothing missing: apt-get not run" ||
    bad "root, nothing missing: apt-get not run" "apt-get '$LOG', stderr '$ERR'"

# A stale package list: install fails once, update, install again.
deps 0 libssl-dev 1 build
want=$'install -y -q libssl-dev\nupdate -q\ninstall -y -q libssl-dev'
[ "$ST" -eq 0 ] && [ "$LOG" = "$want" ] && ok "root: a failed install is retried after apt-get update" ||
    bad "root: retried after apt-get update" "status $ST, apt-get '$LOG'"

deps 0 libssl-dev 2 build
[ "$ST" -eq 1 ] && [[ "$ERR" == *"apt-get install libssl-dev failed"* ]] &&
    ok "root: install failing twice: exit 1 with a message" ||
    bad "root: install failing twice: exit 1 with a message" "status $ST, stderr '$ERR'"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
