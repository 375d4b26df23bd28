#!/usr/bin/env bash
# Benchmark: how soon a tool's first line reaches a pipe, netbpf against libbpf-tools and bpftrace.
#
# Usage (as root, from the repo root):
#   bash bench/firstline.sh [--runs N] [--nice N]
#
# For each tool with a column header (tcplife, tcpstates), each variant (netbpf, libbpf-tools'
# binary under `stdbuf -oL`, a bpftrace one-liner on the same tracepoint whose BEGIN prints the
# header) is started N times in alternating order with stdout on a pipe, and the time from exec to
# the header line read from that pipe is taken. Prints a markdown table (median, min, max ms) and
# the raw numbers. A peer that cannot attach on this kernel is reported as such, not timed.
#
# Environment: CARGO_TARGET_DIR (default ./target).
set -euo pipefail

RUNS=9   # samples per variant
NICE=-10 # as bench/tcplife.sh: background jobs disturb the figures less

# shellcheck source=bench/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh" # die, posint, median, stop_child, ...

while (($#)); do
	case $1 in
	--runs) posint "$1" "${2-}"; RUNS=$2; shift 2 ;;
	--nice) [[ ${2-} =~ ^-?[0-9]{1,2}$ ]] || die "--nice needs a number"; NICE=$2; shift 2 ;;
	-h | --help) sed -n '2,13p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done

((EUID == 0)) || die "must run as root (loads BPF)"
[[ -f Cargo.toml && -f src/tools/tcplife.rs ]] || die "run from the netbpf repo root"
for cmd in cargo stdbuf timeout; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed"
done

TARGET=${CARGO_TARGET_DIR:-./target}
NETBPF=$TARGET/release/netbpf
echo "bench: building (target dir $TARGET)" >&2
cargo build --release --locked --quiet --bin netbpf >&2 || die "build failed"

WORK=$(mktemp -d /tmp/netbpf-firstline.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP
renice -n "$NICE" -p $$ >/dev/null || die "renice failed"

# libbpf-tools and bpftrace attach classic tracepoints, whose ids come from tracefs.
if [[ ! -d /sys/kernel/tracing/events && ! -d /sys/kernel/debug/tracing/events ]]; then
	mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs at /sys/kernel/tracing"
	MOUNTED_TRACEFS=1
fi

# bpftrace's counterparts: the same tracepoint, the header printed by BEGIN (after attaching).
BT_TCPLIFE='BEGIN { printf("PID   COMM   LADDR   LPORT RADDR   RPORT TX_KB RX_KB MS\n"); }
tracepoint:sock:inet_sock_set_state { @[args->skaddr] = nsecs; }'
BT_TCPSTATES='BEGIN { printf("SKADDR   C-PID C-COMM LADDR LPORT RADDR RPORT OLDSTATE -> NEWSTATE MS\n"); }
tracepoint:sock:inet_sock_set_state { @[args->skaddr] = nsecs; }'

# variant name -> the command (eval'd in the child) and the start of its header line.
declare -A CMD HEADER
declare -A HEADER_OF=([tcplife]=PID [tcpstates]=SKADDR)
for tool in "${!HEADER_OF[@]}"; do
	CMD[netbpf-$tool]="\"$NETBPF\" $tool"
	CMD[libbpf-tools-$tool]="stdbuf -oL /usr/sbin/$tool"
	CMD[bpftrace-$tool]="bpftrace -e \"\$BT_${tool^^}\""
	for v in netbpf libbpf-tools bpftrace; do HEADER[$v-$tool]=${HEADER_OF[$tool]}; done
done
export BT_TCPLIFE BT_TCPSTATES

# ms from exec until the header line is read from the pipe; "-" if it never came (10 s).
first_line_ms() {
	local v=$1 fifo=$WORK/out.fifo fd pid line t0 t1="" i
	rm -f "$fifo" "$WORK/t0"
	mkfifo "$fifo"
	(
		printf '%s' "$EPOCHREALTIME" >"$WORK/t0"
		eval "exec ${CMD[$v]}" 2>>"$WORK/$v.err"
	) >"$fifo" &
	pid=$!
	LIVE+=("$pid")
	exec {fd}<"$fifo"
	for ((i = 0; i < 20; i++)); do
		IFS= read -r -t 10 -u "$fd" line || break
		if [[ $line == "${HEADER[$v]}"* ]]; then
			t1=$EPOCHREALTIME
			break
		fi
	done
	stop_child "$pid"
	exec {fd}<&-
	if [[ -z $t1 ]]; then
		echo "-"
		return
	fi
	t0=$(<"$WORK/t0")
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}'
}

echo "| tool | variant | first line ms (median) | min | max |"
echo "|---|---|---|---|---|"
for tool in tcplife tcpstates; do
	variants=("netbpf-$tool" "libbpf-tools-$tool" "bpftrace-$tool")
	for v in "${variants[@]}"; do : >"$WORK/$v.ms"; first_line_ms "$v" >/dev/null; done # warm caches
	for ((r = 0; r < RUNS; r++)); do
		# rotate the order each run, so that no variant always follows the same one
		for ((k = 0; k < ${#variants[@]}; k++)); do
			v=${variants[$(((r + k) % ${#variants[@]}))]}
			first_line_ms "$v" >>"$WORK/$v.ms"
		done
	done
	for v in "${variants[@]}"; do
		missed=$(grep -c -x -- - "$WORK/$v.ms" || true)
		if ((missed > 0)); then
			# what it said last on stderr, if anything (a peer that cannot attach here)
			why=$(grep -v '^$' "$WORK/$v.err" 2>/dev/null | tail -1 || true)
			echo "| $tool | ${v%-"$tool"} | no header in $missed of $RUNS runs: ${why:-it said nothing on stderr} | | |"
			continue
		fi
		echo "| $tool | ${v%-"$tool"} | $(median <"$WORK/$v.ms") | $(sort -g "$WORK/$v.ms" | head -1) | $(sort -g "$WORK/$v.ms" | tail -1) |"
	done
done
echo
echo "raw (ms, in run order):"
for f in "$WORK"/*.ms; do
	echo "  $(basename "$f" .ms): $(tr '\n' ' ' <"$f")"
done
