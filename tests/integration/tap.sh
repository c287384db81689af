# tap.sh: the frame every shell test shares, sourced after `set -u`:
#
#   . "$(dirname "$0")/tap.sh"
#   tap_start NAME [SECONDS]
#
# makes the scratch folder $TMP (/tmp/axon-NAME.*), the list $pids of
# processes to stop at exit (with $TMP removed), a whole-script deadline
# (50 s unless given) so a hang fails instead of stalling ctest, and the
# TAP helpers ok, bad, need and finish (prints `N passed, N failed`, exits
# 1 if anything failed).

tap_cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}

tap_start() {
    local secs=${2:-50}
    TMP=$(mktemp -d "/tmp/axon-$1.XXXXXX")
    pids=()
    passed=0 failed=0 n=0
    trap tap_cleanup EXIT
    (
        sleep "$secs" &
        sp=$!
        trap 'kill $sp; exit 0' TERM
        wait $sp && kill -TERM $$
    ) </dev/null >/dev/null 2>&1 &
    pids+=($!)
    trap 'echo "not ok - the script took longer than '"$secs"' s"; echo "$passed passed, $((failed + 1)) failed"; exit 1' TERM
}

ok() { n=$((n + 1)); passed=$((passed + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1${2:+: $2}"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit; }
need() { command -v "$1" >/dev/null || { echo "Bail out! $1 is not installed"; exit 1; }; }
