#!/usr/bin/env bash
# Runs every integration test binary of the project inside stock-kernel VMs: one boot per
# kernel, all binaries in it, and prints per kernel how many tests passed and failed.
#
# Usage: vmtest/suite.sh [-k KERNEL]... [-j THREADS] [-t SECS] [-T SECS] [--no-build]
#                        [-- TEST-ARGS...]
#   -k KERNEL    a series (5.10, 6.1, 6.12, 7.3) or full version, prepared by setup.sh
#                (default: 6.1 6.12)
#   -j THREADS   --test-threads for each binary in the guest (default 2)
#   -t SECS      bound on each binary in the guest (default 900)
#   -T SECS      bound on each VM, boot included (default: the binaries' bounds added up);
#                binaries that had not finished by then count as failed
#   --no-build   use the binaries of the last build (else `cargo test --no-run` first)
#   TEST-ARGS    passed to every test binary (a name filter, --exact, ...)
# NETBPF_BIN=PATH runs the tests against that netbpf (.ci/run: the static release binary).
# NETBPF_VMTEST_BINS="cli kernels ..." runs only those test targets, and
# NETBPF_VMTEST_BINS_5_10="..." (a series, dots as underscores) adds targets on that kernel
# alone (vmtest/ci.sh spreads the files outside its gate over the kernels so). With two or more kernels
# and cores, the VMs run two at a time (NETBPF_VMTEST_VMS; consoles in the logs only);
# NETBPF_VMTEST_SERIAL=1 runs them one after the other with the console on stderr.
# Binaries: every test target cargo builds (tests/*.rs), found from cargo's JSON messages, so
# new tests/<family>.rs files run here with no change. Results and logs:
# target/vmtest/<kernel version>/ (<binary>.log, <binary>.rc, list.txt, uname).
# In the guest, NETBPF_VMTEST_KERNEL is the series asked for (tests may key expectations on it).
# Exit status: 0 all passed, 1 a test failed or a binary gave no verdict, 125 a VM gave no
# result (after one retry), 3 the suite cannot run here (no qemu or no kernel prepared).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
KERNELS=() THREADS=2 PER_BIN=900 VM_TMO= BUILD=1 TESTARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -k) KERNELS+=("$2"); shift 2 ;;
    -j) THREADS=$2; shift 2 ;;
    -t) PER_BIN=$2; shift 2 ;;
    -T) VM_TMO=$2; shift 2 ;;
    --no-build) BUILD=; shift ;;
    --) shift; TESTARGS=("$@"); break ;;
    *) echo "suite.sh: unknown option $1" >&2; exit 3 ;;
  esac
done
[ ${#KERNELS[@]} -gt 0 ] || KERNELS=(6.1 6.12)
say() { echo "vmtest: $*" >&2; }
cd "$ROOT"

command -v qemu-system-x86_64 >/dev/null || { say "qemu-system-x86_64 missing"; exit 3; }

# The test binaries, from cargo's own account of what it built.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-$ROOT/target}
MSGS=$TARGET_DIR/vmtest/cargo-messages.json
mkdir -p "$TARGET_DIR/vmtest"
if [ -n "$BUILD" ]; then
  say "building the test binaries (cargo test --no-run)"
  cargo test --no-run --locked --message-format=json > "$MSGS.tmp" || { say "cargo test --no-run failed"; exit 1; }
  mv "$MSGS.tmp" "$MSGS"
fi
[ -f "$MSGS" ] || { say "no build messages in $MSGS: run without --no-build"; exit 1; }
mapfile -t BINS < <(grep '"reason":"compiler-artifact"' "$MSGS" | grep '"kind":\["test"\]' \
  | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | sort -u)
[ ${#BINS[@]} -gt 0 ] || { say "cargo built no test binary"; exit 1; }
ALL_BINS=("${BINS[@]}")
# The test targets one kernel runs: NETBPF_VMTEST_BINS="cli kernels ..." (default: all), plus
# that kernel's own NETBPF_VMTEST_BINS_<series> (dots as underscores: NETBPF_VMTEST_BINS_5_10).
# Sets BINS.
bins_of_kernel() {
  local extra_var="NETBPF_VMTEST_BINS_${1//./_}" want b name
  BINS=("${ALL_BINS[@]}")
  [ -n "${NETBPF_VMTEST_BINS:-}" ] || return 0
  want=" $NETBPF_VMTEST_BINS ${!extra_var:-} "
  BINS=()
  for b in "${ALL_BINS[@]}"; do
    name=$(basename "${b%-*}")
    case "$want" in *" $name "*) BINS+=("$b") ;; esac
  done
}
for k in "${KERNELS[@]}"; do
  bins_of_kernel "$k"
  [ ${#BINS[@]} -gt 0 ] || { say "no test binary is asked for on $k"; exit 1; }
done
NETBPF=$(grep '"reason":"compiler-artifact"' "$MSGS" | grep '"kind":\["bin"\]' \
  | sed -n 's/.*"executable":"\([^"]*\/netbpf\)".*/\1/p' | head -1)
# NETBPF_BIN: the tests run that netbpf instead of this build's (e.g. the static release binary).
if [ -n "${NETBPF_BIN:-}" ]; then
  [ -x "$NETBPF_BIN" ] || { say "NETBPF_BIN=$NETBPF_BIN is not an executable"; exit 1; }
  NETBPF=$NETBPF_BIN
  say "the tests run $NETBPF_BIN"
fi
for k in "${KERNELS[@]}"; do
  bins_of_kernel "$k"
  say "$k: ${#BINS[@]} test binaries: $(for b in "${BINS[@]}"; do basename "${b%-*}"; done | tr '\n' ' ')"
done

# The names of the failed tests, from the last "failures:" block of libtest's output.
FAILED_AWK='/^failures:$/ {n = ""; on = 1; next} on && /^    / {n = n $1 " "} on && /^$/ {on = 0} END {print n}'

# What runs in the guest: each binary with its output to the console and to a log, its
# status to a file. Cargo runs test binaries from the package root; so do we. A binary with
# one to three failed tests (not a timeout) runs those once more, alone and one at a time, into
# <binary>.retry.log/.rc: the summary counts such a pass as a retry, by name, never silently.
guest_script() {
  local out=$1 series=$2
  echo '#!/bin/bash'
  printf 'OUT=%q\n' "$out"
  printf 'export NETBPF_VMTEST_KERNEL=%q RUST_BACKTRACE=1\n' "$series"
  [ -n "${NETBPF_BIN:-}" ] && printf 'export NETBPF_BIN=%q\n' "$NETBPF_BIN"
  printf 'cd %q || exit 125\n' "$ROOT"
  echo 'uname -r > "$OUT/uname"'
  [ -n "$NETBPF" ] && printf '%q list --verbose > "$OUT/list.txt" 2>&1\n' "$NETBPF"
  local b name
  for b in "${BINS[@]}"; do
    name=$(basename "$b")
    printf 'echo "=== %s"\n' "$name"
    printf 'timeout -k 10 %d %q --test-threads=%d' "$PER_BIN" "$b" "$THREADS"
    [ ${#TESTARGS[@]} -gt 0 ] && printf ' %q' "${TESTARGS[@]}"
    printf ' 2>&1 | tee "$OUT/%s.log"\n' "$name"
    printf 'rc=${PIPESTATUS[0]}; echo "$rc" > "$OUT/%s.rc"\n' "$name"
    printf 'failed=$(awk %q "$OUT/%s.log")\n' "$FAILED_AWK" "$name"
    printf 'if [ "$rc" != 0 ] && [ "$rc" != 124 ] && [ -n "$failed" ] && [ $(wc -w <<< "$failed") -le 3 ]; then\n'
    printf '  echo "=== %s (retry: $failed)"\n' "$name"
    printf '  timeout -k 10 %d %q --test-threads=1 --exact $failed 2>&1 | tee "$OUT/%s.retry.log"\n' \
      "$PER_BIN" "$b" "$name"
    printf '  echo "${PIPESTATUS[0]}" > "$OUT/%s.retry.rc"\nfi\n' "$name"
  done
  echo 'sync'
}

# One kernel's VM: boots, runs every binary, leaves logs in $TARGET_DIR/vmtest/<kernel>/.
run_kernel() {
  local k=$1 out=$TARGET_DIR/vmtest/$1 vm_tmo start rc
  rm -rf "$out" && mkdir -p "$out"
  bins_of_kernel "$k"
  guest_script "$out" "$k" > "$out/guest.sh"
  chmod 755 "$out/guest.sh"
  vm_tmo=${VM_TMO:-$(( PER_BIN * ${#BINS[@]} + 300 ))}
  start=$(date +%s)
  if [ -n "$PARALLEL" ]; then
    # Consoles would interleave: each goes to its log; a line per finished binary shows progress.
    "$HERE/run.sh" -k "$k" -t "$vm_tmo" --rw "$out" --log "$out/console.log" -q -- "$out/guest.sh" \
      2> "$out/run.err" &
    local vm=$!
    # tail ends with the VM (--pid), so the whole pipeline ends and releases our stdout.
    tail -n +1 -F --pid="$vm" "$out/console.log" 2>/dev/null \
      | grep --line-buffered -a '^test result:\|^=== ' | sed -u "s/^/vmtest [$k] /" &
    local follow=$!
    wait "$vm"; rc=$?
    wait "$follow"
    cat "$out/run.err" >&2
  else
    "$HERE/run.sh" -k "$k" -t "$vm_tmo" --rw "$out" --log "$out/console.log" -- "$out/guest.sh"
    rc=$?
  fi
  echo "$rc $(( $(date +%s) - start ))" > "$out/vm.status"
}

# Each VM runs one TCG thread: with two cores, two kernels run side by side in the time of one;
# more at once would only share the cores (NETBPF_VMTEST_VMS sets how many, default 2).
PARALLEL=
[ ${#KERNELS[@]} -gt 1 ] && [ "$(nproc)" -ge 2 ] && [ -z "${NETBPF_VMTEST_SERIAL:-}" ] && PARALLEL=1
MAX_VMS=${NETBPF_VMTEST_VMS:-2}
say "kernels ${KERNELS[*]}: --test-threads=$THREADS${PARALLEL:+, $MAX_VMS VMs at a time}"
for k in "${KERNELS[@]}"; do
  if [ -n "$PARALLEL" ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$MAX_VMS" ]; do wait -n; done
    run_kernel "$k" &
  else
    run_kernel "$k"
  fi
done
wait

TOTAL_PASS=0 TOTAL_FAIL=0 STATUS=0 SUMMARY=() RETRIED=()
for k in "${KERNELS[@]}"; do
  out=$TARGET_DIR/vmtest/$k
  bins_of_kernel "$k"
  read -r rc took < "$out/vm.status" 2>/dev/null || { rc=125 took=0; }
  kver=$(cat "$out/uname" 2>/dev/null || echo "$k")
  # Keep the results under the full kernel version too (docs/kernels.md is made from them).
  if [ "$kver" != "$k" ]; then rm -rf "$TARGET_DIR/vmtest/$kver"; cp -a "$out" "$TARGET_DIR/vmtest/$kver"; fi
  if [ "$rc" -eq 125 ] && [ ! -f "$out/uname" ]; then
    say "kernel $k: NO RESULT from the VM (see $out/console.log)"
    SUMMARY+=("$kver: no result from the VM")
    STATUS=125
    continue
  fi
  pass=0 fail=0 problems=()
  [ "$rc" -eq 125 ] && problems+=("the VM gave no result (timed out after ${took}s or crashed): see $out/console.log")
  for b in "${BINS[@]}"; do
    name=$(basename "$b")
    line=$(grep -a '^test result:' "$out/$name.log" 2>/dev/null | tail -1)
    brc=$(cat "$out/$name.rc" 2>/dev/null || echo none)
    if [ -z "$line" ]; then
      problems+=("$name: no test result (status $brc$([ "$brc" = 124 ] && echo ': timed out'))")
      fail=$((fail + 1))
      continue
    fi
    p=$(sed -n 's/.* \([0-9]*\) passed.*/\1/p' <<< "$line")
    f=$(sed -n 's/.* \([0-9]*\) failed.*/\1/p' <<< "$line")
    names=$(awk "$FAILED_AWK" "$out/$name.log")
    # Failed, then passed when run again alone: counted as passed, and named as retried.
    if [ "$f" -gt 0 ] && [ "$(cat "$out/$name.retry.rc" 2>/dev/null)" = 0 ] \
      && grep -aq "^test result: ok. $f passed" "$out/$name.retry.log"; then
      pass=$((pass + p + f))
      problems+=("$name passed only on a retry: $names")
      RETRIED+=("$kver $name: $names")
      continue
    fi
    pass=$((pass + p)) fail=$((fail + f))
    [ "$brc" = 0 ] || [ "$f" -gt 0 ] || { problems+=("$name: status $brc"); fail=$((fail + 1)); }
    [ "$f" -gt 0 ] && problems+=("$name failed: $names")
  done
  TOTAL_PASS=$((TOTAL_PASS + pass)) TOTAL_FAIL=$((TOTAL_FAIL + fail))
  [ $fail -eq 0 ] || [ $STATUS -ne 0 ] || STATUS=1
  SUMMARY+=("$kver: $pass passed, $fail failed in ${took}s")
  for p in "${problems[@]}"; do SUMMARY+=("    $p"); done
  # A failure's own words, so the CI log shows why without the artifacts.
  if [ -n "$PARALLEL" ] && [ $fail -gt 0 ]; then
    for b in "${BINS[@]}"; do
      name=$(basename "$b")
      grep -a -q '^test result: FAILED' "$out/$name.log" 2>/dev/null || continue
      echo "---- $kver: $name failures"
      awk '/^failures:$/ && !seen {on = 1; seen = 1} on' "$out/$name.log" | grep -av '^ *[0-9]*: \|^ *at ' | head -80
    done
  fi
  say "kernel $kver: $pass passed, $fail failed in ${took}s (logs in $out)"
done

echo
echo "vmtest results (integration tests in stock-kernel VMs):"
printf '%s\n' "${SUMMARY[@]}"
if [ ${#RETRIED[@]} -gt 0 ]; then
  echo "vmtest: ${#RETRIED[@]} binaries passed only on a retry (a flake to find, not to keep):"
  printf '    %s\n' "${RETRIED[@]}"
fi
echo "vmtest: $TOTAL_PASS passed, $TOTAL_FAIL failed"
exit $STATUS
