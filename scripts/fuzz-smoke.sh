#!/usr/bin/env bash
# fuzz-smoke.sh FUZZDIR SECONDS [JOBS]: a short libFuzzer run of every
# target over its committed corpus (tests/fuzz/corpus/NAME) plus what it
# found before (FUZZDIR/corpus-NAME), JOBS targets at a time (default: the
# number of cores).  A target that crashes prints the end of its log and
# the run fails after the others finish.
set -u
dir=$1 secs=$2 jobs=${3:-$(nproc)}
run_one() {
    n=$1
    mkdir -p "$dir/corpus-$n"
    if "$dir/$n" -max_total_time="$secs" -print_final_stats=0 \
        "$dir/corpus-$n" "tests/fuzz/corpus/$n" >"$dir/$n.log" 2>&1; then
        echo "fuzz: $n: ${secs}s, no crash"
    else
        echo "fuzz: $n FAILED; the end of $dir/$n.log:"
        tail -40 "$dir/$n.log"
        return 1
    fi
}
export -f run_one
export dir secs
ls tests/fuzz/fuzz_*.c | xargs -n1 basename | sed 's/\.c$//' |
    xargs -P "$jobs" -I{} bash -c 'run_one {}'
