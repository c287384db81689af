#!/usr/bin/env bash
# test_readme_build.sh: the README's first C code block, built against the
# build tree with the README's own commands (the `cc ... PKG_CONFIG_PATH=build
# pkg-config ...` lines after it, through build/axon-uninstalled.pc), shared
# and static, and run: each echoes a line for nc -N.
#
# Usage: test_readme_build.sh [BUILD_DIR]  (or AXON_BUILD=...; AXON_SRC is
# the source tree, by default the one this script is in).  Ends with
# `N passed, N failed`.
set -u
BUILD=$(cd "${AXON_BUILD:-${1:-build}}" && pwd) || { echo "Bail out! no build dir"; exit 1; }
SRC=${AXON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/tap.sh"
tap_start readme-build 120
need cc
need pkg-config
need readelf
need nc
need python3

README=$SRC/README.md
# The first ```c block, and the cc lines of the first ```sh block after it.
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on' "$README" >"$TMP/echo.c"
awk '/^```c$/ { c = 1 } c && /^```sh$/ { on = 1; next } on && /^```$/ { exit } on && /^cc /' \
    "$README" >"$TMP/commands"
[ -s "$TMP/echo.c" ] && ok "README: a C code block ($(wc -l <"$TMP/echo.c") lines)" ||
    bad "README: a C code block" "none found"
grep -q '^cc .*PKG_CONFIG_PATH=build pkg-config .*--libs axon' "$TMP/commands" &&
    ok "README: the cc commands for the build tree: $(tr '\n' ';' <"$TMP/commands")" ||
    bad "README: cc commands with PKG_CONFIG_PATH=build pkg-config" "got '$(cat "$TMP/commands")'"

# --- the pkg-config file -------------------------------------------------------
[ -f "$BUILD/axon-uninstalled.pc" ] && ok "build/axon-uninstalled.pc exists" ||
    bad "build/axon-uninstalled.pc exists" "$(ls "$BUILD"/*.pc 2>&1)"
export PKG_CONFIG_PATH=$BUILD
pkg-config --uninstalled axon && ok "pkg-config --uninstalled axon" ||
    bad "pkg-config --uninstalled axon" "the uninstalled file is not the one found"
inc=$(pkg-config --variable=includedir axon)
lib=$(pkg-config --variable=libdir axon)
[ "$inc" -ef "$SRC/include" ] && [ "$lib" -ef "$BUILD" ] &&
    ok "it points at the source headers and the build's libraries" ||
    bad "it points at the tree" "includedir=$inc libdir=$lib"
pkg-config --static --libs axon | grep -q -- '-lssl.*-lcrypto' &&
    ok "--static lists the private libraries: $(pkg-config --static --libs axon)" ||
    bad "--static lists the private libraries" "$(pkg-config --static --libs axon)"
unset PKG_CONFIG_PATH

# --- build and run, as the README says ------------------------------------------
# A sanitizer build's libraries need the sanitizer runtimes, which cannot be
# linked statically.
SAN=
grep -q '^AXON_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null &&
    SAN="-fsanitize=address,undefined"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s|tcp://0.0.0.0:7000|tcp://127.0.0.1:$PORT|" "$TMP/echo.c"
ln -s "$BUILD" "$TMP/build"

# run_echo NAME: ./echo_NAME listens on PORT; a line comes back through nc -N.
run_echo() {
    local bin=$TMP/echo_$1 pid got
    (cd "$TMP" && exec ./"echo_$1") </dev/null >"$TMP/$1.out" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        nc -z 127.0.0.1 "$PORT" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    got=$(printf 'from the README %s\n' "$1" | timeout 5 nc -N 127.0.0.1 "$PORT")
    [ "$got" = "from the README $1" ] && ok "$1: ./echo echoes a line" ||
        bad "$1: ./echo echoes a line" "got '$got'; output $(head -c 300 "$TMP/$1.out")"
    kill "$pid"
    wait "$pid" 2>/dev/null
}

i=0
while read -r cmd; do
    i=$((i + 1))
    case "$cmd" in *-static*) kind=static ;; *) kind=shared ;; esac
    if [ -n "$SAN" ] && [ $kind = static ]; then
        ok "$kind: skipped in a sanitizer build # SKIP"
        continue
    fi
    [ -n "$SAN" ] && cmd="cc $SAN ${cmd#cc }"
    rm -f "$TMP/echo"
    if (cd "$TMP" && eval "$cmd") >"$TMP/cc$i.log" 2>&1 && [ -x "$TMP/echo" ]; then
        ok "$kind: $cmd"
    else
        bad "$kind: $cmd" "$(grep -v 'statically linked applications' "$TMP/cc$i.log" | head -5)"
        continue
    fi
    mv "$TMP/echo" "$TMP/echo_$kind"
    needed=$(readelf -d "$TMP/echo_$kind" | grep NEEDED)
    if [ $kind = shared ]; then
        echo "$needed" | grep -q 'libaxon\.so\.0' && ok "shared: needs libaxon.so.0" ||
            bad "shared: needs libaxon.so.0" "$needed"
    else
        [ -z "$needed" ] && ok "static: needs no shared library" ||
            bad "static: needs no shared library" "$needed"
    fi
    run_echo $kind
done <"$TMP/commands"
[ $i -ge 2 ] && ok "both a shared and a static command ran" || bad "two README commands" "$i"

finish
