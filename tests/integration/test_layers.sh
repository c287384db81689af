#!/usr/bin/env bash
# test_layers.sh: the layers of docs/DESIGN (each uses only those below it)
# and the gateway seam of `axon serve` (src/hub/gateway.h), read from the
# sources: src/core and src/proto include nothing of the hub or the CLI;
# src/hub includes nothing of src/cli; the server and the CLI name no
# gateway (they walk the registry); every gateway file fills the interface
# and has its line in the registry.
#
# Usage: test_layers.sh [BUILD_DIR]  (AXON_SRC is the source tree, by
# default the one this script is in).  Ends with `N passed, N failed`.
set -u
SRC=${AXON_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$(dirname "$0")/tap.sh"
tap_start layers

# includes DIR REGEX: the #include lines under DIR whose path matches
includes() {
    grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<]($2)" "$SRC/$1" \
        --include='*.c' --include='*.h'
}

check_none() { # WHAT OUTPUT
    if [ -z "$2" ]; then ok "$1"; else bad "$1" "$(echo "$2" | head -3 | tr '\n' ' ')"; fi
}

check_none "src/hub includes nothing from src/cli" "$(includes src/hub 'cli/|\.\./')"
check_none "src/core includes nothing from the hub or the CLI" \
    "$(includes src/core 'hub/|cli/|\.\./')"
check_none "src/proto includes nothing from the hub or the CLI" \
    "$(includes src/proto 'hub/|cli/|\.\./')"
check_none "src/cli/serve.c includes only the server of the hub" \
    "$(includes src/cli/serve.c 'hub/' | grep -v 'hub/server\.h')"

# gateway names: gw_line_..., GW_LINE, ... for every gateway file
names=$(cd "$SRC/src/hub" && ls gw_*.c | sed 's/^gw_\(.*\)\.c$/\1/' | grep -v '^pages$')
pat=$(echo "$names" | paste -sd'|')
upper=$(echo "$pat" | tr a-z A-Z)
if [ -f "$SRC/src/hub/server.c" ]; then
    check_none "the server names no gateway (it walks the registry)" \
        "$(grep -nE "gw_($pat)[_a-z]*\(|GW_($upper)\b" "$SRC/src/hub/server.c")"
else
    bad "the server names no gateway (it walks the registry)" "no src/hub/server.c"
fi
check_none "the CLI names no gateway" "$(grep -rnE "gw_($pat)_|GW_($upper)\b" "$SRC/src/cli")"

for g in $names; do
    f=$SRC/src/hub/gw_$g.c
    if grep -qE "^const gw_ops gw_${g}_gateway = " "$f"; then
        ok "gw_$g.c fills the gateway interface"
    else
        bad "gw_$g.c fills the gateway interface" "no 'const gw_ops gw_${g}_gateway' in it"
    fi
    if grep -qE "X\(GW_[A-Z]+, gw_${g}_gateway\)" "$SRC/src/hub/gateway.h"; then
        ok "gw_$g.c has its line in the registry"
    else
        bad "gw_$g.c has its line in the registry" "not in SERVE_GATEWAYS (gateway.h)"
    fi
    # only the interface leaves the file (and helpers serve.h declares)
    ext=$(grep -nE '^[a-z][a-z_ ]*[ *]gw_[a-z_]+\(' "$f" | grep -v '^[0-9]*:static' |
        while IFS= read -r l; do
            fn=$(echo "$l" | sed -E 's/^.*[ *](gw_[a-z_]+)\(.*$/\1/')
            grep -q "[ *]$fn(" "$SRC/src/hub/serve.h" || echo "$l"
        done)
    check_none "gw_$g.c exports nothing but its gw_ops (and serve.h's helpers)" "$ext"
done
finish
