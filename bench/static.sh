#!/usr/bin/env bash
# Benchmark: the static binary (scripts/package.sh) against the dynamic one (cargo build --release).
#
# Usage (as root, from the repo root, after both builds):
#   bash bench/static.sh [--runs N] [DYNAMIC_BINARY STATIC_BINARY]
#
# Defaults: target/release/netbpf and target/package/netbpf-VERSION-x86_64-linux. Measures, the two
# binaries taking turns:
#   exec ms    `netbpf --version`, exec to exit (hyperfine -N: process start-up, dynamic loading)
#   ready ms   `netbpf tcplife` exec to its "Tracing" line (BTF, load, attach): the start-up a user
#              waits for; median of N
#   CPU ms     user + system CPU of `netbpf tcplife -d 1` (load, attach, 1 s, detach): start-up
#              work that a busy machine does not blur; median of N
#   RSS MB     VmHWM of `netbpf tcplife` and of `netbpf exporter` (the default tools) 2 s after
#              they report being attached; median of N
# Prints a markdown table (docs/benchmarks.md, "static binary").
set -euo pipefail

RUNS=9
if [[ ${1-} == --runs ]]; then
	[[ ${2-} =~ ^[1-9][0-9]?$ ]] || { echo "bench: --runs needs 1-99" >&2; exit 1; }
	RUNS=$2
	shift 2
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DYNAMIC=${1:-target/release/netbpf}
STATIC=${2:-target/package/netbpf-$version-x86_64-linux}
((EUID == 0)) || { echo "bench: must run as root (loads BPF)" >&2; exit 1; }
for b in "$DYNAMIC" "$STATIC"; do
	[[ -x $b ]] || { echo "bench: no binary $b (cargo build --release; scripts/package.sh)" >&2; exit 1; }
done
command -v hyperfine >/dev/null || apt-get install -y -q hyperfine >/dev/null
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# run_once BINARY ARGS...: prints "ready_ms hwm_kB" for one run, stopped with SIGINT.
run_once() {
	local bin=$1 fifo=$WORK/fifo line t0 t1="" pid fd i hwm
	shift
	rm -f "$fifo"
	mkfifo "$fifo"
	t0=$EPOCHREALTIME
	"$bin" "$@" 2>"$fifo" >/dev/null &
	pid=$!
	exec {fd}<"$fifo"
	for ((i = 0; i < 50; i++)); do
		IFS= read -r -t 20 -u "$fd" line || break
		if [[ $line == Tracing* ]]; then
			t1=$EPOCHREALTIME
			break
		fi
	done
	sleep 2
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
	kill -INT "$pid"
	cat <&"$fd" >/dev/null || true
	wait "$pid" || true
	exec {fd}<&-
	[[ -n $t1 ]] || { echo "bench: $bin $* did not report being attached" >&2; exit 1; }
	awk -v a="$t0" -v b="$t1" -v h="$hwm" 'BEGIN { printf "%.1f %s\n", (b - a) * 1000, h }'
}

# cpu_once BINARY ARGS...: the CPU ms (user + system) of a whole run: the part of start-up that a
# busy machine does not blur (its wall-clock ready time is mostly waiting for a CPU there).
cpu_once() {
	local TIMEFORMAT='%3U %3S' t
	t=$({ time "$@" >/dev/null 2>&1; } 2>&1)
	awk -v t="$t" 'BEGIN { split(t, a, " "); printf "%.1f\n", (a[1] + a[2]) * 1000 }'
}

hyperfine -N --warmup 10 --runs 200 --export-json "$WORK/exec.json" \
	-n dynamic "$DYNAMIC --version" -n static "$STATIC --version" >&2
for ((r = 0; r < RUNS; r++)); do
	for kind in dynamic static; do
		bin=$DYNAMIC
		[[ $kind == static ]] && bin=$STATIC
		run_once "$bin" tcplife >>"$WORK/$kind.tcplife"
		run_once "$bin" exporter --listen 127.0.0.1:0 >>"$WORK/$kind.exporter"
		cpu_once "$bin" tcplife -d 1 >>"$WORK/$kind.cpu"
	done
done

echo "| binary | size MB | exec ms (--version, mean ± sd) | tcplife ready ms | tcplife CPU ms (-d 1) | tcplife RSS MB | exporter ready ms | exporter RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
for kind in dynamic static; do
	bin=$DYNAMIC
	[[ $kind == static ]] && bin=$STATIC
	exec_ms=$(python3 -c "
import json, sys
r = [x for x in json.load(open(sys.argv[1]))['results'] if x['command'] == sys.argv[2]][0]
print(f\"{r['mean'] * 1000:.2f} ± {r['stddev'] * 1000:.2f}\")" "$WORK/exec.json" "$kind")
	size=$(awk -v s="$(stat -c %s "$bin")" 'BEGIN { printf "%.1f", s / 1048576 }')
	t_ready=$(awk '{ print $1 }' "$WORK/$kind.tcplife" | median)
	t_rss=$(awk '{ print $2 / 1024 }' "$WORK/$kind.tcplife" | median)
	e_ready=$(awk '{ print $1 }' "$WORK/$kind.exporter" | median)
	e_rss=$(awk '{ print $2 / 1024 }' "$WORK/$kind.exporter" | median)
	t_cpu=$(median <"$WORK/$kind.cpu")
	printf '| %s | %s | %s | %s | %s | %.1f | %s | %.1f |\n' "$kind" "$size" "$exec_ms" "$t_ready" "$t_cpu" "$t_rss" "$e_ready" "$e_rss"
done
echo "runs: $RUNS per binary (medians), taking turns; exec: hyperfine, 200 runs each"
