#!/usr/bin/env bash
# Benchmark: `netbpf tcplife` against libbpf-tools' tcplife on the same loopback connection storm.
#
# Usage (as root, from the repo root):
#   bash bench/tcplife.sh [--rounds N] [--ready-runs N] [--secs S] [--storm-cpu N | --no-pin]
#                         [--nice N]
#
# Measures, for each tool: exec->attached time, peak RSS, in-kernel ns per event, and the storm's
# connection rate with the tool attached relative to paired baselines without it. See
# docs/benchmarks.md for what each number means. Prints a markdown table, then the raw numbers.
#
# Environment: CARGO_TARGET_DIR (default ./target), LIBBPF_TCPLIFE (default /usr/sbin/tcplife).
set -euo pipefail

ROUNDS=7       # paired storm rounds (each tool once per round)
READY_RUNS=9   # exec->attached samples per tool
SECS=3         # seconds per storm
STORM_CPU=0    # the storm (client, server and their softirqs) runs pinned to this CPU: on a small
               # VM an unpinned storm's rate swings by +-20 % with scheduler placement, pinned +-5 %
NICE=-10       # this script, the storm and the tools run at this nice level, so that background
               # jobs (builds) disturb the measurement less

# shellcheck source=bench/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh" # die, posint, median, stop_child, prog_stats, ...

while (($#)); do
	case $1 in
	--rounds) posint "$1" "${2-}"; ROUNDS=$2; shift 2 ;;
	--ready-runs) posint "$1" "${2-}"; READY_RUNS=$2; shift 2 ;;
	--secs) posint "$1" "${2-}"; SECS=$2; shift 2 ;;
	--storm-cpu) [[ ${2-} =~ ^[0-9]{1,4}$ ]] || die "--storm-cpu needs a CPU number"; STORM_CPU=$2; shift 2 ;;
	--no-pin) STORM_CPU=""; shift ;;
	--nice) [[ ${2-} =~ ^-?[0-9]{1,2}$ ]] || die "--nice needs a number"; NICE=$2; shift 2 ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done

((EUID == 0)) || die "must run as root (loads BPF, creates a network namespace)"
[[ -f Cargo.toml && -f src/tools/tcplife.rs ]] || die "run from the netbpf repo root"
for cmd in cargo ip bpftool sysctl python3 timeout stdbuf taskset; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed"
done

TARGET=${CARGO_TARGET_DIR:-./target}
NETBPF=$TARGET/release/netbpf
STORM=$TARGET/release/examples/storm
LIBBPF_TCPLIFE=${LIBBPF_TCPLIFE:-/usr/sbin/tcplife}
[[ -x $LIBBPF_TCPLIFE ]] || die "$LIBBPF_TCPLIFE not found (apt-get install libbpf-tools)"

echo "bench: building (target dir $TARGET)" >&2
cargo build --release --quiet --bin netbpf --example storm >&2 || die "build failed"

NS=netbpf-bench-$$
NS_PATH=/run/netns/$NS
WORK=$(mktemp -d /tmp/netbpf-bench.XXXXXX)

trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- setup --------------------------------------------------------------------------------------
renice -n "$NICE" -p $$ >/dev/null || die "renice failed"
ip netns add "$NS"
MADE_NETNS+=("$NS")
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_max_tw_buckets=0

# libbpf-tools attaches a classic tracepoint: libbpf reads its id from tracefs.
if [[ ! -d /sys/kernel/tracing/events && ! -d /sys/kernel/debug/tracing/events ]]; then
	mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs at /sys/kernel/tracing"
	MOUNTED_TRACEFS=1
	echo "bench: mounted tracefs at /sys/kernel/tracing (unmounted on exit)" >&2
fi

# --- helpers ------------------------------------------------------------------------------------
# The storm, in the bench namespace; prints "connections/s CPU-us/connection".
PIN=()
[[ -n $STORM_CPU ]] && PIN=(taskset -c "$STORM_CPU")
storm() {
	local out
	out=$(timeout --foreground -k 5 $((SECS + 30)) ip netns exec "$NS" "${PIN[@]}" "$STORM" --secs "$SECS" 2>>"$WORK/storm.err") ||
		die "storm failed: $(tail -3 "$WORK/storm.err")"
	[[ $out =~ ^conns_per_sec\ ([0-9.]+)\ cpu_us_per_conn\ ([0-9.]+)$ ]] || die "storm printed '$out'"
	echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

# The tool's command line. netbpf filters on the bench namespace in kernel; libbpf-tools' tcplife
# has no namespace filter and reports every namespace.
tool_cmd() {
	case $1 in
	netbpf) echo "$NETBPF tcplife --netns $NS_PATH" ;;
	libbpf-tools) echo "$LIBBPF_TCPLIFE" ;;
	esac
}

# ms from exec until the tool is attached. netbpf prints "Tracing ..." on stderr once attached;
# libbpf-tools prints its column header on stdout once attached, but fully buffers a piped stdout,
# so it runs under `stdbuf -oL` (line-buffered; stdbuf execs the tool, so its own exec, ~1 ms, is
# included).
ready_ms() {
	local tool=$1 fifo=$WORK/ready.fifo fd pid line t0 t1="" i
	rm -f "$fifo" "$WORK/t0"
	mkfifo "$fifo"
	if [[ $tool == netbpf ]]; then
		(
			printf '%s' "$EPOCHREALTIME" >"$WORK/t0"
			exec "$NETBPF" tcplife --netns "$NS_PATH" 2>&1 >/dev/null
		) >"$fifo" &
	else
		(
			printf '%s' "$EPOCHREALTIME" >"$WORK/t0"
			exec stdbuf -oL "$LIBBPF_TCPLIFE" 2>/dev/null
		) >"$fifo" &
	fi
	pid=$!
	LIVE+=("$pid")
	exec {fd}<"$fifo"
	for ((i = 0; i < 50; i++)); do
		IFS= read -r -t 10 -u "$fd" line || break
		if [[ $tool == netbpf && $line == Tracing* ]] || [[ $tool != netbpf && $line == PID* ]]; then
			t1=$EPOCHREALTIME
			break
		fi
	done
	stop_child "$pid"
	exec {fd}<&-
	[[ -n $t1 ]] || die "$tool did not report being attached (last line: '${line-}')"
	t0=$(<"$WORK/t0")
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
}

has_link() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[[ $(readlink "$fd" 2>/dev/null) == anon_inode:bpf_link ]] && return 0
	done
	return 1
}

# One storm with the tool attached (stdout to /dev/null); sets TOOL_RUN ("conn/s cpu_us/conn").
# Runs in this shell (not in $(...)) so the trap knows its child. Appends a line to
# $WORK/$tool.runs: "conns_per_sec vmhwm_kb run_time_ns run_cnt progs lost_lines tool_cpu_ms
# rss_anon_kb storm_cpu_us_per_conn".
with_tool() {
	local tool=$1 pid i run hwm anon stats lost cpu0 cpu1
	: >"$WORK/tool.err"
	# shellcheck disable=SC2046 # tool_cmd is word-split on purpose (paths have no spaces)
	$(tool_cmd "$tool") >/dev/null 2>"$WORK/tool.err" &
	pid=$!
	LIVE+=("$pid")
	for ((i = 0; i < 1000; i++)); do # attached: a BPF link exists (and netbpf said so)
		[[ -d /proc/$pid ]] || break
		if has_link "$pid" && { [[ $tool != netbpf ]] || grep -q '^Tracing' "$WORK/tool.err"; }; then
			break
		fi
		sleep 0.01
	done
	has_link "$pid" || die "$tool did not attach: $(tail -3 "$WORK/tool.err")"
	sleep 0.3 # libbpf-tools sets up its perf buffer after attaching
	cpu0=$(cpu_ticks "$pid")
	run=$(storm)
	cpu1=$(cpu_ticks "$pid")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
	anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
	stats=$(prog_stats "$pid")
	stop_child "$pid"
	lost=$(grep -ci 'lost' "$WORK/tool.err" || true)
	cat "$WORK/tool.err" >>"$WORK/$tool.stderr"
	echo "${run% *} $hwm $stats $lost $(((cpu1 - cpu0) * 1000 / CLK_TCK)) $anon ${run#* }" \
		>>"$WORK/$tool.runs"
	TOOL_RUN=$run
}

FOREIGN=$(foreign_progs)
if [[ -n $FOREIGN ]]; then
	echo "bench: WARNING: tracing programs of other processes are loaded; they slow every storm:" >&2
	echo "$FOREIGN" >&2
fi
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. exec -> attached ------------------------------------------------------------------------
TOOLS=(netbpf libbpf-tools)
echo "bench: exec->attached, $READY_RUNS runs per tool (+1 warm-up)" >&2
for tool in "${TOOLS[@]}"; do ready_ms "$tool" >/dev/null; done # warm caches
for ((r = 0; r < READY_RUNS; r++)); do
	if ((r % 2)); then order=(libbpf-tools netbpf); else order=(netbpf libbpf-tools); fi
	for tool in "${order[@]}"; do ready_ms "$tool" >>"$WORK/$tool.ready"; done
done

# --- 2-4. storms: baseline, tool, baseline, tool, ... -------------------------------------------
sysctl -qw kernel.bpf_stats_enabled=1
echo "bench: $ROUNDS storm rounds of ${SECS}s, each tool between two baselines" >&2
storm >/dev/null # warm-up
prev=$(storm)
echo "$prev" >>"$WORK/baseline"
for ((r = 0; r < ROUNDS; r++)); do
	if ((r % 2)); then order=(libbpf-tools netbpf); else order=(netbpf libbpf-tools); fi
	for tool in "${order[@]}"; do
		with_tool "$tool"
		next=$(storm)
		echo "$next" >>"$WORK/baseline"
		# Rate ratio: with / mean(baselines). CPU ratio: mean(baseline CPU/conn) / with-tool
		# CPU/conn, so that both read "fraction of the untraced speed".
		echo "$TOOL_RUN $prev $next" | awk '{printf "%.4f %.4f\n", $1 / (($3 + $5) / 2), (($4 + $6) / 2) / $2}' \
			>>"$WORK/$tool.ratio"
		echo "bench:   round $((r + 1)) $tool: $TOOL_RUN (conn/s, CPU us/conn), baselines $prev / $next" >&2
		prev=$next
	done
done
sysctl -qw kernel.bpf_stats_enabled="$OLD_BPF_STATS"

# --- report -------------------------------------------------------------------------------------
col() { awk -v c="$1" '{print $c}' "$2"; }
label() {
	case $1 in
	netbpf) echo "netbpf tcplife (--netns)" ;;
	*) echo "libbpf-tools tcplife (all netns)" ;;
	esac
}

echo "| tool | ready ms | peak RSS MB | ns/event | conn/s ratio |"
echo "|---|---|---|---|---|"
for tool in "${TOOLS[@]}"; do
	ready=$(median <"$WORK/$tool.ready")
	rss=$(col 2 "$WORK/$tool.runs" | sort -g | tail -1 | awk '{printf "%.1f", $1 / 1024}')
	nsev=$(awk '$4 > 0 {print $3 / $4}' "$WORK/$tool.runs" | median | awk '{printf "%.0f", $1}')
	ratio=$(col 1 "$WORK/$tool.ratio" | median | awk '{printf "%.3f", $1}')
	echo "| $(label "$tool") | $ready | $rss | $nsev | $ratio |"
done
echo
echo "ready: median exec->attached; peak RSS: max VmHWM over rounds (MB = MiB); ns/event: median"
echo "run_time_ns/run_cnt (kernel.bpf_stats_enabled); ratio: median of conn/s with the tool over the"
echo "mean of the two baselines around it. storm CPU ratio: the same with the storm's own CPU time"
echo "per connection (baseline / with tool), which busy neighbours disturb much less than the rate."
echo
echo "| tool | storm CPU ratio | events/conn | tool process CPU, us/conn (user+sys) | lost-event messages |"
echo "|---|---|---|---|---|"
for tool in "${TOOLS[@]}"; do
	evc=$(awk -v s="$SECS" '{print $4 / ($1 * s)}' "$WORK/$tool.runs" | median | awk '{printf "%.1f", $1}')
	cpu=$(awk -v s="$SECS" '{print $7 * 1000 / ($1 * s)}' "$WORK/$tool.runs" | median | awk '{printf "%.1f", $1}')
	lost=$(awk '{n += $6} END {print n + 0}' "$WORK/$tool.runs")
	cratio=$(col 2 "$WORK/$tool.ratio" | median | awk '{printf "%.3f", $1}')
	echo "| $(label "$tool") | $cratio | $evc | $cpu | $lost |"
done
echo
pin="storm pinned to CPU $STORM_CPU"
[[ -n $STORM_CPU ]] || pin="storm not pinned"
echo "Raw numbers ($(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, ${SECS}s storms, $ROUNDS rounds, $pin, nice $NICE):"
echo "  baseline conn/s: $(col 1 "$WORK/baseline" | tr '\n' ' ')"
echo "  baseline storm CPU us/conn: $(col 2 "$WORK/baseline" | tr '\n' ' ')"
echo "  load average before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -z $FOREIGN ]] || echo "  other processes' tracing programs were loaded during the run:"$'\n'"$FOREIGN"
for tool in "${TOOLS[@]}"; do
	echo "  $tool ready ms: $(tr '\n' ' ' <"$WORK/$tool.ready")"
	echo "  $tool rate ratios: $(col 1 "$WORK/$tool.ratio" | tr '\n' ' ')"
	echo "  $tool CPU ratios: $(col 2 "$WORK/$tool.ratio" | tr '\n' ' ')"
	echo "  $tool runs (conn/s VmHWM_kB run_time_ns run_cnt progs lost_msgs tool_cpu_ms RssAnon_kB_now storm_cpu_us/conn):"
	sed 's/^/    /' "$WORK/$tool.runs"
	if [[ -s $WORK/$tool.stderr ]] && grep -qv '^Tracing' "$WORK/$tool.stderr"; then
		echo "  $tool stderr: $(grep -v '^Tracing' "$WORK/$tool.stderr" | sort | uniq -c | head -5 | tr '\n' ';')"
	fi
done
spread=$(col 1 "$WORK/baseline" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0f", (hi / lo - 1) * 100}')
if ((spread > 25)); then
	echo "WARNING: the baselines differ by ${spread}% (max/min): something else was using the CPUs;"
	echo "         the ratios are unreliable. Rerun on an idle machine."
fi
