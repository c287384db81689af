#!/usr/bin/env bash
# test_install.sh: `cmake --install BUILD --prefix TMP` gives a usable SDK:
# the public headers (each compiling alone), libaxon.a, libaxon.so with
# SONAME libaxon.so.0, and an axon.pc through which a program builds
# against either library; the programs so built (examples/tcp_echo_server.c)
# echo a line for nc -N.
#
# Usage: test_install.sh [BUILD_DIR]  (or AXON_BUILD=...; AXON_SRC is the
# source tree, by default the one this script is in).  Ends with
# `N passed, N failed`.
set -u
BUILD=$(cd "${AXON_BUILD:-${1:-build}}" && pwd) || { echo "Bail out! no build dir"; exit 1; }
SRC=${AXON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
CC=${CC:-cc}
. "$(dirname "$0")/tap.sh"
tap_start install-test
P=$TMP/prefix
need cmake
need pkg-config
need readelf
need nc
need "$CC"

# --- the install itself ------------------------------------------------------
if cmake --install "$BUILD" --prefix "$P" >"$TMP/install.log" 2>&1; then
    ok "cmake --install --prefix $P"
else
    bad "cmake --install --prefix" "$(tail -5 "$TMP/install.log")"
    finish
fi

# Where the libraries went (lib, or lib/<multiarch> for some prefixes).
PC=$(find "$P" -name axon.pc -path '*/pkgconfig/*' | head -1)
if [ -n "$PC" ]; then ok "axon.pc installed (${PC#"$P"/})"; else
    bad "axon.pc installed" "none under $P: $(cd "$P" && find . -type f | head -20 | tr '\n' ' ')"
    finish
fi
LIB=$(dirname "$(dirname "$PC")")

missing= differ=
for h in "$SRC"/include/axon/*.h; do
    b=$(basename "$h")
    if [ ! -f "$P/include/axon/$b" ]; then missing="$missing $b"
    elif ! cmp -s "$h" "$P/include/axon/$b"; then differ="$differ $b"; fi
done
nh=$(ls "$SRC"/include/axon/*.h | wc -l)
[ -z "$missing$differ" ] && [ "$nh" -gt 5 ] && ok "all $nh public headers installed as they are" ||
    bad "public headers installed" "missing:${missing:- none}; different:${differ:- none}"

[ -f "$LIB/libaxon.a" ] && ok "libaxon.a installed" || bad "libaxon.a installed" "not in $LIB"
if [ -L "$LIB/libaxon.so" ] && [ -e "$LIB/libaxon.so" ]; then
    ok "libaxon.so is a symlink to $(readlink "$LIB/libaxon.so")"
else
    bad "libaxon.so installed as a working symlink" "$(ls -l "$LIB"/libaxon.so* 2>&1 | tr '\n' ' ')"
fi
soname=$(readelf -d "$LIB/libaxon.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libaxon.so.0 ] && ok "SONAME libaxon.so.0" || bad "SONAME libaxon.so.0" "got '$soname'"
[ -e "$LIB/$soname" ] && ok "the SONAME file $soname exists" ||
    bad "the SONAME file exists" "$LIB/$soname missing"
[ -x "$P/bin/axon" ] && ok "bin/axon installed" || bad "bin/axon installed" "not in $P/bin"

# --- pkg-config --------------------------------------------------------------
export PKG_CONFIG_PATH=$(dirname "$PC")
ver=$(pkg-config --modversion axon 2>"$TMP/pc.err")
want=$(sed -n 's/^project(axon VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[ -n "$ver" ] && [ "$ver" = "$want" ] && ok "pkg-config --modversion axon: $ver" ||
    bad "pkg-config --modversion axon" "got '$ver', want '$want': $(cat "$TMP/pc.err")"
# The prefix given to cmake --install, not the one configured at build time.
incdir=$(pkg-config --variable=includedir axon)
libdir=$(pkg-config --variable=libdir axon)
if [ -f "$incdir/axon/axon.h" ] && [ "$(cd "$libdir" 2>/dev/null && pwd -P)" = "$(cd "$LIB" && pwd -P)" ]; then
    ok "axon.pc points into the install prefix"
else
    bad "axon.pc points into the install prefix $P" "includedir=$incdir libdir=$libdir"
fi
# A sanitizer build (make san) installs sanitized libraries: what links
# them needs the sanitizer runtimes too.
SAN=
grep -q '^AXON_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null &&
    SAN="-fsanitize=address,undefined"
CFLAGS_PC="$SAN $(pkg-config --cflags axon)"
LIBS_PC=$(pkg-config --libs axon)
LIBS_STATIC=$(pkg-config --static --libs axon)

# Each public header compiles on its own with only the pkg-config flags.
alone_bad=
for h in "$P"/include/axon/*.h; do
    b=$(basename "$h")
    printf '#include <axon/%s>\nint main(void) { return 0; }\n' "$b" |
        $CC -std=c11 -Wall -Wextra -Werror -fsyntax-only $CFLAGS_PC -x c - 2>"$TMP/h.err" ||
        alone_bad="$alone_bad $b"
done
[ -z "$alone_bad" ] && ok "every installed header compiles alone" ||
    bad "every installed header compiles alone" "failed:$alone_bad; $(head -3 "$TMP/h.err")"

# --- programs built against the install ----------------------------------------
# shellcheck disable=SC2086  # the flags are words
if $CC -o "$TMP/echo_shared" "$SRC/examples/tcp_echo_server.c" $CFLAGS_PC $LIBS_PC \
    2>"$TMP/cc1.err"; then
    ok "tcp_echo_server builds with pkg-config --cflags --libs axon"
else
    bad "tcp_echo_server builds with pkg-config --cflags --libs" "$(head -5 "$TMP/cc1.err")"
fi
# --static: libaxon.a itself (by path, so the .so cannot be picked) with the
# private dependencies axon.pc lists; a missing one fails the link.
static_libs=
for w in $LIBS_STATIC; do
    [ "$w" = -laxon ] && w=$LIB/libaxon.a
    static_libs="$static_libs $w"
done
# shellcheck disable=SC2086
if $CC -o "$TMP/echo_static" "$SRC/examples/tcp_echo_server.c" $SAN $(pkg-config --static --cflags axon) \
    $static_libs 2>"$TMP/cc2.err"; then
    ok "tcp_echo_server builds against libaxon.a with pkg-config --static"
else
    bad "tcp_echo_server builds with pkg-config --static" "$(head -5 "$TMP/cc2.err")"
fi
if [ -x "$TMP/echo_shared" ]; then
    readelf -d "$TMP/echo_shared" | grep -q 'NEEDED.*\[libaxon\.so\.0\]' &&
        ok "the shared build needs libaxon.so.0" ||
        bad "the shared build needs libaxon.so.0" "$(readelf -d "$TMP/echo_shared" | grep NEEDED)"
fi
if [ -x "$TMP/echo_static" ]; then
    readelf -d "$TMP/echo_static" | grep -q 'NEEDED.*libaxon' &&
        bad "the static build does not need libaxon.so" || ok "the static build does not need libaxon.so"
fi

# run_echo NAME BINARY: start it on a free port (port 0), echo a line
# through nc -N, stop it with SIGTERM (status 0).  For the shared build the
# installed libaxon.so.0 must be the one loaded.
run_echo() {
    local name=$1 bin=$2 out=$TMP/$1.out pid url port got
    [ -x "$bin" ] || { bad "$name: runs" "not built"; return; }
    LD_LIBRARY_PATH=$LIB "$bin" tcp://127.0.0.1:0 >"$out" 2>"$out.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        grep -q ' on tcp://' "$out" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    url=$(sed -n 's/^echo server on \(tcp:\/\/[^ ]*\) (\([a-z]*\))$/\1/p' "$out")
    port=${url##*:}
    if [ -z "$url" ] || [ "$port" -le 0 ] 2>/dev/null; then
        bad "$name: listening line" "stdout '$(head -c 200 "$out")' stderr '$(head -c 200 "$out.err")'"
        return
    fi
    be=$(sed -n 's/^echo server on .* (\([a-z]*\))$/\1/p' "$out")
    [ -z "${AXON_BACKEND:-}" ] || [ "$be" = "$AXON_BACKEND" ] ||
        bad "$name: runs the requested backend" "got $be, AXON_BACKEND=$AXON_BACKEND"
    if [ "$name" = shared ]; then
        grep -q "$LIB/libaxon.so.0" "/proc/$pid/maps" && ok "shared: loaded $LIB/libaxon.so.0" ||
            bad "shared: loaded the installed libaxon.so.0" "$(grep libaxon "/proc/$pid/maps" | head -1)"
    fi
    got=$(printf 'installed %s\n' "$name" | timeout 5 nc -N 127.0.0.1 "$port")
    [ "$got" = "installed $name" ] && ok "$name: nc -N line echoed on $url" ||
        bad "$name: nc -N line echoed" "got '$got'"
    kill -TERM "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        wait "$pid"
        bad "$name: SIGTERM stops it"
    else
        wait "$pid"
        st=$?
        [ $st -eq 0 ] && ok "$name: SIGTERM stops it with status 0" || bad "$name: SIGTERM stops it" "status $st"
    fi
}
run_echo shared "$TMP/echo_shared"
run_echo static "$TMP/echo_static"

finish
