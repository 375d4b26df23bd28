#!/usr/bin/env bash
# Runs the host test suite N times in a row (default 10) and prints how many runs passed.
# Each run's output goes to a log file under $NETBPF_LOOP_DIR (default: a new directory in
# /tmp), never into the tests' own output; a failed run's log is named on stderr.
#
#   scripts/test-loop.sh            # cargo test --locked, 10 times
#   scripts/test-loop.sh 20 --test packet_layer qdisc_tbf
#                                   # one test binary and filter, 20 times
#
# Extra arguments are passed to `cargo test --locked --no-fail-fast` (every test binary runs even
# after one fails, so a run lists all its failures). Exit status 0 only if every run passed.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=10
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  runs=$1
  shift
fi
if ((runs < 1)); then
  echo "test-loop: the number of runs must be at least 1" >&2
  exit 2
fi
dir=${NETBPF_LOOP_DIR:-$(mktemp -d /tmp/netbpf-test-loop.XXXXXX)}
mkdir -p "$dir" || exit 2

# Build once up front so that a build error is reported as such, not as N failed runs.
if ! cargo test --locked --no-run "$@" >"$dir/build.log" 2>&1; then
  echo "test-loop: the build failed: see $dir/build.log" >&2
  exit 2
fi

passed=0
for ((i = 1; i <= runs; i++)); do
  log="$dir/run-$i.log"
  if cargo test --locked --no-fail-fast "$@" >"$log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i/$runs: pass"
  else
    echo "run $i/$runs: FAIL ($log)" >&2
    grep -E '^test .* FAILED$|^---- ' "$log" | sort -u >&2
  fi
done
echo "passed $passed of $runs (logs in $dir)"
((passed == runs))
