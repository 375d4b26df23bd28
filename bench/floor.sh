#!/usr/bin/env bash
# Benchmark: each tool against the floor (empty programs on exactly its hooks) and a peer
# (bpftrace counting on the same tracepoints), on the workload shape that tool watches.
#
# Usage (as root, from the repo root):
#   bash bench/floor.sh [--rounds N] [--secs S] [--nice N] [--all | TOOL...]
#
# Default tools: tcplife tcpstates tcpconnlat tcpsnoop socketio socksize tcptop tcpretrans skbdrop
# tcpdrop; --all: every tool `netbpf list` says runs here. Per tool, N rounds of: the tool, the
# floor and the peer, each right after a baseline (no BPF), in an order that rotates per round.
# Prints one markdown table and the raw numbers. See docs/benchmarks.md.
#
# Environment: CARGO_TARGET_DIR (default ./target).
set -euo pipefail
[[ -z ${BENCH_TRACE-} ]] || set -x

ROUNDS=3  # rounds per tool (each variant once per round)
SECS=3    # seconds per workload run
WL_CPU=0  # the workload runs pinned to this CPU (see bench/tcplife.sh: rates swing less)
NICE=-10  # this script, the workloads and the tools run at this nice level
TOOLS=()
ALL=0

# shellcheck source=bench/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh" # die, posint, median, stop_child, prog_stats, ...

while (($#)); do
	case $1 in
	--rounds) posint "$1" "${2-}"; ROUNDS=$2; shift 2 ;;
	--secs) posint "$1" "${2-}"; SECS=$2; shift 2 ;;
	--nice) [[ ${2-} =~ ^-?[0-9]{1,2}$ ]] || die "--nice needs a number"; NICE=$2; shift 2 ;;
	--all) ALL=1; shift ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	-*) die "unknown argument '$1' (try --help)" ;;
	*) [[ $1 =~ ^[a-z0-9]+$ ]] || die "bad tool name '$1'"; TOOLS+=("$1"); shift ;;
	esac
done
((ALL == 0 || ${#TOOLS[@]} == 0)) || die "--all or tool names, not both"

((EUID == 0)) || die "must run as root (loads BPF, creates network namespaces)"
[[ -f Cargo.toml && -f examples/floor.rs ]] || die "run from the netbpf repo root"
for cmd in cargo rustc clang ip tc bpftool sysctl python3 timeout taskset; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed"
done
# The peer: Debian's bpftrace, installed here (bench-only, not in scripts/install-deps.sh: it
# pulls in LLVM, which neither the build nor the tests need).
command -v bpftrace >/dev/null || apt-get install -y -q --no-install-recommends bpftrace >/dev/null \
	|| { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends bpftrace >/dev/null; } || true
BPFTRACE=$(command -v bpftrace || true)
[[ -n $BPFTRACE ]] || echo "bench: no bpftrace (apt-get install bpftrace): the peer column is skipped" >&2

TARGET=${CARGO_TARGET_DIR:-./target}
NETBPF=$TARGET/release/netbpf
FLOOR=$TARGET/debug/examples/floor
WORK=$(mktemp -d /tmp/netbpf-floor.XXXXXX)
# The floor's loader idles during the runs, so its debug build measures the same; the workloads
# are std only and compiled directly with rustc -O (no release build of the library for them).
echo "bench: building (target dir $TARGET)" >&2
cargo build --release --locked --quiet --bin netbpf >&2 || die "build of netbpf failed"
cargo build --locked --quiet --example floor >&2 || die "build of the floor loader failed"
rustc -O --edition 2021 examples/storm.rs -o "$WORK/storm" || die "cannot compile examples/storm.rs"
rustc -O --edition 2021 examples/workload.rs -o "$WORK/workload" || die "cannot compile examples/workload.rs"

if ((ALL)); then
	mapfile -t TOOLS < <("$NETBPF" list 2>/dev/null | awk 'NR > 1 && $2 == "ok" {print $1}')
elif ((${#TOOLS[@]} == 0)); then
	TOOLS=(tcplife tcpstates tcpconnlat tcpsnoop socketio socksize tcptop tcpretrans skbdrop tcpdrop)
fi

NS=netbpf-floor-$$
NS_PATH=/run/netns/$NS
PEER_NS=$NS-b # the receiving side of the lossy veth
VETH_ADDR=10.231.0.1
PEER_ADDR=10.231.0.2
SINK_PORT=5001

trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- setup --------------------------------------------------------------------------------------
renice -n "$NICE" -p $$ >/dev/null || die "renice failed"
ip netns add "$NS"
MADE_NETNS+=("$NS")
ip netns add "$PEER_NS"
MADE_NETNS+=("$PEER_NS")
ip -n "$NS" link set lo up
ip -n "$PEER_NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
# The lossy path: a veth to the peer namespace through a tbf whose queue holds 64 KB. This kernel
# has no netem (only tbf, htb and pfifo are built in); a TCP stream overflows the small queue and
# loses about a third of its segments there, so it retransmits all the time.
ip link add fv0 netns "$NS" type veth peer name fv1 netns "$PEER_NS"
ip -n "$NS" addr add "$VETH_ADDR/24" dev fv0
ip -n "$PEER_NS" addr add "$PEER_ADDR/24" dev fv1
ip -n "$NS" link set fv0 up
ip -n "$PEER_NS" link set fv1 up
tc -n "$NS" qdisc add dev fv0 root tbf rate 1gbit burst 64kb limit 64kb

# Classic tracepoints (the floor's copies of them, bpftrace) need tracefs; it also names the
# category of each tracepoint.
if [[ ! -d /sys/kernel/tracing/events ]]; then
	mount -t tracefs tracefs /sys/kernel/tracing || die "cannot mount tracefs at /sys/kernel/tracing"
	MOUNTED_TRACEFS=1
fi

# --- helpers ------------------------------------------------------------------------------------
# The workload shape each tool watches.
shape_of() {
	case $1 in
	tcpsnoop | tcprtt | tcppktlat | tcpwin | so1stbyte | superping | ipecn | netsize | nettxlat | dnslat) echo rr ;;
	socketio | socksize | sockstat | tcptop | tcpnagle | sormem) echo stream ;;
	skbdrop | skblife) echo udpflood ;;
	tcpretrans | tcpdrop | tcpcong | qdisc) echo lossy ;;
	*) echo storm ;;
	esac
}

# Runs shape $1 for SECS seconds pinned to WL_CPU in the bench namespace; prints "ops/s CPU-us/op".
workload() {
	local out cmd
	case $1 in
	storm) cmd=("$WORK/storm" --secs "$SECS") ;;
	lossy) cmd=("$WORK/workload" stream --to "$PEER_ADDR" --port "$SINK_PORT" --size 16384 --secs "$SECS") ;;
	*) cmd=("$WORK/workload" "$1" --secs "$SECS") ;;
	esac
	out=$(timeout --foreground -k 5 $((SECS + 30)) ip netns exec "$NS" taskset -c "$WL_CPU" "${cmd[@]}" 2>>"$WORK/workload.err") ||
		die "workload $1 failed: $(tail -3 "$WORK/workload.err")"
	[[ $out =~ ^[a-z_]+\ ([0-9.]+)\ [a-z_]+\ ([0-9.]+)$ ]] || die "workload $1 printed '$out'"
	echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

# The tool's command line: filtered to the bench namespace where the tool can be.
tool_cmd() {
	local t=$1
	echo -n "$NETBPF $t"
	[[ $t == qdisc ]] && echo -n " tbf"
	if "$NETBPF" "$t" --help 2>/dev/null | grep -q -- '--netns'; then echo -n " --netns $NS_PATH"; fi
	echo
}

# Starts variant $1 (tool, floor or peer) of tool $2 in the background; sets VPID once it is
# attached. Its stderr goes to $WORK/v.err, its stdout to $WORK/v.out (bpftrace's map at exit).
start_variant() {
	local v=$1 t=$2 i ready
	: >"$WORK/v.err"
	: >"$WORK/v.out"
	case $v in
	# shellcheck disable=SC2046 # word-split on purpose (paths have no spaces)
	tool) $(tool_cmd "$t") >/dev/null 2>"$WORK/v.err" & ;;
	floor) "$FLOOR" load "$WORK/floor-$t.o" >/dev/null 2>"$WORK/v.err" & ;;
	peer) "$BPFTRACE" -e "$(<"$WORK/peer-$t.bt")" >"$WORK/v.out" 2>"$WORK/v.err" & ;;
	esac
	VPID=$!
	LIVE+=("$VPID")
	case $v in
	tool) ready='^Tracing' ;;
	floor) ready='^floor: attached' ;;
	peer) ready='^Attaching' ;;
	esac
	for ((i = 0; i < 3000; i++)); do
		[[ -d /proc/$VPID ]] || die "$v of $t exited: $(tail -3 "$WORK/v.err")"
		# A tool that prints no "Tracing" line counts as attached 2 s after its programs exist.
		if grep -q "$ready" "$WORK/v.err" "$WORK/v.out" || ((i >= 200)); then
			[[ -n $(prog_ids "$VPID") ]] && break
		fi
		sleep 0.01
	done
	((i < 3000)) || die "$v of $t did not attach in 30 s: $(tail -3 "$WORK/v.err")"
	sleep 0.5 # bpftrace prints "Attaching" before it attaches; tools set up their readers
}

# The hooks tool $1 attaches to, as "KIND CATEGORY NAME" lines (KIND: tp_btf, raw_tp,
# tracepoint), from the links of a running instance; "other ..." for links the floor cannot copy.
tool_hooks() {
	local t=$1 kind name dirs
	start_variant tool "$t"
	"$FLOOR" hooks "$VPID" | sort -u | while read -r kind name; do
		if [[ $kind == other ]]; then
			echo "other $name"
			continue
		fi
		dirs=(/sys/kernel/tracing/events/*/"$name")
		[[ -d ${dirs[0]} ]] || die "no tracepoint named $name in tracefs"
		dirs=${dirs[0]%/*}
		echo "$kind ${dirs##*/} $name"
	done
	stop_child "$VPID"
}

# Writes the floor object ($WORK/floor-$1.o) and the peer's script ($WORK/peer-$1.bt) for the
# hooks in $WORK/hooks-$1; fails (status 1) if a hook cannot be copied.
make_floor() {
	local t=$1 kind cat name n=0 probes=()
	grep -q '^other' "$WORK/hooks-$t" && return 1
	{
		echo '#define SEC(name) __attribute__((section(name), used))'
		while read -r kind cat name; do
			case $kind in
			tracepoint) echo "SEC(\"tracepoint/$cat/$name\")" ;;
			*) echo "SEC(\"$kind/$name\")" ;;
			esac
			echo "int floor$n(void *ctx) { return 0; }"
			n=$((n + 1))
		done <"$WORK/hooks-$t"
		echo 'char LICENSE[] SEC("license") = "GPL";'
	} >"$WORK/floor-$t.c"
	clang -O2 -g -target bpf -c "$WORK/floor-$t.c" -o "$WORK/floor-$t.o" || die "clang failed on the floor of $t"
	while read -r kind cat name; do probes+=("tracepoint:$cat:$name"); done <"$WORK/hooks-$t"
	(
		IFS=,
		echo "${probes[*]} { @[cpu] = count(); }"
	) >"$WORK/peer-$t.bt"
}

# One workload run with variant $1 of tool $2 attached; appends to $WORK/$2.$1.runs:
# "ops/s cpu_us/op run_time_ns run_cnt reader_ms lost".
with_variant() {
	local v=$1 t=$2 shape=$3 c0 c1 run ns cnt lost
	start_variant "$v" "$t"
	c0=$(cpu_ticks "$VPID")
	run=$(workload "$shape")
	c1=$(cpu_ticks "$VPID")
	read -r ns cnt _ <<<"$(prog_stats "$VPID")"
	stop_child "$VPID"
	lost=$({ grep -o '[0-9]* events lost' "$WORK/v.err" || true; } | awk '{n += $1} END {print n + 0}')
	echo "$run $ns $cnt $(((c1 - c0) * 1000 / CLK_TCK)) $lost" >>"$WORK/$t.$v.runs"
	VRUN=$run
}

LOAD_BEFORE=$(uptime)
FOREIGN=$(foreign_progs)
[[ -z $FOREIGN ]] || echo "bench: WARNING: other processes' tracing programs are loaded; they slow every run:"$'\n'"$FOREIGN" >&2
sysctl -qw kernel.bpf_stats_enabled=1
SINK=""
for t in "${TOOLS[@]}"; do
	shape=$(shape_of "$t")
	if [[ $shape == lossy && -z $SINK ]]; then
		ip netns exec "$PEER_NS" "$WORK/workload" sink --port "$SINK_PORT" 2>>"$WORK/workload.err" &
		SINK=$!
		LIVE+=("$SINK")
		sleep 0.3
	fi
	tool_hooks "$t" >"$WORK/hooks-$t"
	variants=(tool)
	if make_floor "$t"; then
		variants+=(floor)
		[[ -n $BPFTRACE ]] && variants+=(peer)
	else
		echo "bench: $t: no floor (hooks the floor cannot copy: $(grep '^other' "$WORK/hooks-$t" | tr '\n' ';'))" >&2
	fi
	echo "bench: $t on $shape, hooks: $(awk '{print $1 ":" $2 "/" $3}' "$WORK/hooks-$t" | tr '\n' ' ')" >&2
	workload "$shape" >/dev/null # warm-up
	prev=$(workload "$shape")
	echo "$prev" >>"$WORK/$t.baseline"
	for ((r = 0; r < ROUNDS; r++)); do
		n=${#variants[@]}
		for ((k = 0; k < n; k++)); do
			v=${variants[$(((k + r) % n))]}
			with_variant "$v" "$t" "$shape"
			next=$(workload "$shape")
			echo "$next" >>"$WORK/$t.baseline"
			# rate ratio: with / mean(baselines around it); CPU ratio: mean(baseline CPU/op) / with.
			echo "$VRUN $prev $next" | awk '{printf "%.4f %.4f\n", $1 / (($3 + $5) / 2), (($4 + $6) / 2) / $2}' \
				>>"$WORK/$t.$v.ratio"
			echo "bench:   round $((r + 1)) $t $v: $VRUN (ops/s, CPU us/op), baselines $prev / $next" >&2
			prev=$next
		done
	done
done
sysctl -qw kernel.bpf_stats_enabled="$OLD_BPF_STATS"
LOAD_AFTER=$(uptime)
FOREIGN_AFTER=$(foreign_progs)

# --- report -------------------------------------------------------------------------------------
col() { [[ -s $2 ]] && awk -v c="$1" '{print $c}' "$2"; }
ratio() { # median rate ratio (column 1) or CPU ratio (column 2) of variant $2 of tool $3, or "-"
	[[ -s $WORK/$3.$2.ratio ]] || { echo -; return; }
	col "$1" "$WORK/$3.$2.ratio" | median | awk '{printf "%.3f", $1}'
}
nsrun() { # median ns per program run of variant $1 of tool $2
	[[ -s $WORK/$2.$1.runs ]] || { echo -; return; }
	awk '$4 > 0 {print $3 / $4}' "$WORK/$2.$1.runs" | median | awk '{printf "%.0f", $1}'
}

echo "| tool | workload | tool ratio | floor ratio | peer ratio | tool − floor | CPU ratio tool / floor | ns/run tool | ns/run floor | ns/run peer | runs/op | reader CPU µs/op | lost events |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for t in "${TOOLS[@]}"; do
	runs=$WORK/$t.tool.runs
	tr_=$(ratio 1 tool "$t")
	fr=$(ratio 1 floor "$t")
	gap=-
	[[ $fr == - ]] || gap=$(awk -v a="$tr_" -v b="$fr" 'BEGIN {printf "%+.3f", a - b}')
	rpo=$(awk -v s="$SECS" '{print $4 / ($1 * s)}' "$runs" | median | awk '{printf "%.2f", $1}')
	reader=$(awk -v s="$SECS" '{print $5 * 1000 / ($1 * s)}' "$runs" | median | awk '{printf "%.3f", $1}')
	lost=$(awk '{n += $6} END {print n + 0}' "$runs")
	echo "| $t | $(shape_of "$t") | $tr_ | $fr | $(ratio 1 peer "$t") | $gap | $(ratio 2 tool "$t") / $(ratio 2 floor "$t") | $(nsrun tool "$t") | $(nsrun floor "$t") | $(nsrun peer "$t") | $rpo | $reader | $lost |"
done
echo
echo "Raw numbers ($(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, ${SECS}s runs, $ROUNDS rounds, workload pinned to CPU $WL_CPU, nice $NICE):"
echo "  uptime before: $LOAD_BEFORE"
echo "  uptime after:  $LOAD_AFTER"
[[ -z $FOREIGN ]] || echo "  other processes' tracing programs loaded at the start:"$'\n'"$FOREIGN"
[[ -z $FOREIGN_AFTER ]] || echo "  other processes' tracing programs loaded at the end:"$'\n'"$FOREIGN_AFTER"
for t in "${TOOLS[@]}"; do
	echo "  $t ($(shape_of "$t")): hooks $(awk '{print $1 ":" $2 "/" $3}' "$WORK/hooks-$t" | tr '\n' ' ')"
	echo "    baselines (ops/s CPU-us/op): $(tr '\n' ';' <"$WORK/$t.baseline")"
	for v in tool floor peer; do
		[[ -s $WORK/$t.$v.runs ]] || continue
		echo "    $v rate ratios: $(col 1 "$WORK/$t.$v.ratio" | tr '\n' ' ')  CPU ratios: $(col 2 "$WORK/$t.$v.ratio" | tr '\n' ' ')"
		echo "    $v runs (ops/s cpu_us/op run_time_ns run_cnt reader_ms lost): $(tr '\n' ';' <"$WORK/$t.$v.runs")"
	done
	spread=$(col 1 "$WORK/$t.baseline" | sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.0f", (hi / lo - 1) * 100}')
	((spread <= 25)) || echo "    WARNING: $t's baselines differ by ${spread}% (max/min): its ratios are unreliable"
done
