#!/usr/bin/env bash
# Runs the ctest suite of the build directory it is started in (make test,
# make san). A test that fails is run once more, alone, after the rest have
# finished: on these shared 2-core machines a timing test can lose a race to
# the machine rather than to the code. Its first failure stays in the log
# above, and it is named again at the end as flaky, so it gets fixed; a test
# that fails both times fails the suite.
set -uo pipefail
ctest --output-on-failure -j 2 "$@" && exit 0
log=Testing/Temporary/LastTestsFailed.log
[ -s "$log" ] || exit 1
names=$(cut -d: -f2 "$log" | tr '\n' ' ')
echo "axon: failed: $names— running each once more, alone"
ctest --rerun-failed --output-on-failure "$@" || {
    echo "axon: failed twice: $(cut -d: -f2 "$log" | tr '\n' ' ')"
    exit 1
}
echo "axon: flaky (failed once, passed when run alone): $names"
