#!/usr/bin/env bash
# Benchmark (not a test): `netbpf exporter` with every exportable tool loaded.
#
# Usage (as root, from the repo root):
#   bash bench/exporter.sh [--rounds N] [--secs S] [--idle S] [--scrapes N] [--no-build]
#
# Measures: exec -> serving time; idle CPU and RSS; scrape latency (text and OpenMetrics); and the
# cost per event on a loopback connection storm (examples/storm.rs, pinned to CPU 0) in a
# namespace the exporter is filtered to: in-kernel ns per program run (kernel.bpf_stats_enabled),
# program runs per connection, the exporter process's own CPU during the storm, and the storm's
# connection rate relative to paired baselines without the exporter. Prints markdown tables and
# the raw numbers. Environment: CARGO_TARGET_DIR (default ./target).
set -euo pipefail

ROUNDS=5 SECS=3 IDLE=10 SCRAPES=50 BUILD=1 STORM_CPU=0
die() {
	echo "bench: $*" >&2
	exit 1
}
posint() { [[ $2 =~ ^[1-9][0-9]{0,3}$ ]] || die "$1 needs a positive integer, got '$2'"; }
while (($#)); do
	case $1 in
	--rounds) posint "$1" "${2-}"; ROUNDS=$2; shift 2 ;;
	--secs) posint "$1" "${2-}"; SECS=$2; shift 2 ;;
	--idle) posint "$1" "${2-}"; IDLE=$2; shift 2 ;;
	--scrapes) posint "$1" "${2-}"; SCRAPES=$2; shift 2 ;;
	--no-build) BUILD=0; shift ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done
((EUID == 0)) || die "must run as root (loads BPF, creates a network namespace)"
[[ -f Cargo.toml && -d src/exporter ]] || die "run from the netbpf repo root"
for cmd in cargo ip bpftool sysctl python3 curl timeout taskset; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed"
done

TARGET=${CARGO_TARGET_DIR:-./target}
NETBPF=$TARGET/release/netbpf
STORM=$TARGET/release/examples/storm
if ((BUILD)); then
	echo "bench: building (target dir $TARGET)" >&2
	cargo build --release --quiet --bin netbpf --example storm >&2 || die "build failed"
fi
[[ -x $NETBPF && -x $STORM ]] || die "$NETBPF or $STORM missing"

NS=netbpf-xbench-$$
WORK=$(mktemp -d /tmp/netbpf-xbench.XXXXXX)
OLD_STATS=$(sysctl -n kernel.bpf_stats_enabled)
PID=""
cleanup() {
	[[ -n $PID ]] && { kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
	sysctl -qw kernel.bpf_stats_enabled="$OLD_STATS" || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ip netns add "$NS"
ip -n "$NS" link set lo up
ip netns exec "$NS" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT/metrics
median() { sort -g | awk '{v[NR]=$1} END {if (!NR) {print "nan"; exit}
	print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
storm() { # "conn/s cpu_us/conn"
	local out
	out=$(timeout -k 5 $((SECS + 30)) ip netns exec "$NS" taskset -c "$STORM_CPU" "$STORM" --secs "$SECS" 2>/dev/null) ||
		die "storm failed"
	[[ $out =~ ^conns_per_sec\ ([0-9.]+)\ cpu_us_per_conn\ ([0-9.]+)$ ]] || die "storm printed '$out'"
	echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
# "run_time_ns run_cnt" summed over the exporter's programs (found through its bpf fds).
prog_stats() {
	local ids
	ids=$(for fd in /proc/"$PID"/fd/*; do
		case $(readlink "$fd" 2>/dev/null) in
		anon_inode:bpf-prog | anon_inode:bpf_link) awk '/^prog_id:/ {print $2}' "/proc/$PID/fdinfo/${fd##*/}" ;;
		esac
	done | sort -un)
	bpftool prog show -j | python3 -c '
import json, sys
want = set(int(i) for i in sys.argv[1:])
progs = [p for p in json.load(sys.stdin) if p["id"] in want]
print(sum(p.get("run_time_ns", 0) for p in progs), sum(p.get("run_cnt", 0) for p in progs), len(progs))' $ids
}

# --- start: exec -> serving ---------------------------------------------------------------------
echo "bench: starting the exporter with every tool" >&2
T0=$EPOCHREALTIME
"$NETBPF" exporter --netns "/run/netns/$NS" --listen "127.0.0.1:$PORT" 2>"$WORK/err" &
PID=$!
for _ in $(seq 600); do grep -q '^Tracing' "$WORK/err" && break; sleep 0.01; done
grep -q '^Tracing' "$WORK/err" || die "exporter did not start: $(cat "$WORK/err")"
READY_MS=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", (b - a) * 1000}')
TOOLS=$(sed -n 's/^Tracing for the exporter: \([^ ]*\) on.*/\1/p' "$WORK/err")
PLANS=$(curl -s "$URL" | sed -n 's/^netbpf_tool_up{tool="\([^"]*\)",plan="\([^"]*\)"} 1$/\1:\2/p' | tr '\n' ' ')

# --- idle ---------------------------------------------------------------------------------------
echo "bench: idle ${IDLE}s" >&2
C0=$(ticks)
sleep "$IDLE"
C1=$(ticks)
IDLE_CPU=$(awk -v a="$C0" -v b="$C1" -v hz="$HZ" -v s="$IDLE" 'BEGIN {printf "%.2f", (b - a) / hz / s * 100}')
RSS=$(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$PID/status")

# --- scrapes ------------------------------------------------------------------------------------
scrape_ms() { # $1: Accept header
	for _ in $(seq "$SCRAPES"); do
		curl -s -o /dev/null -H "Accept: $1" -w '%{time_total}\n' "$URL"
	done | awk '{print $1 * 1000}'
}
echo "bench: $SCRAPES scrapes per format" >&2
scrape_ms "text/plain" >"$WORK/text"
scrape_ms "application/openmetrics-text;version=1.0.0" >"$WORK/om"
SERIES=$(curl -s "$URL" | grep -vc '^#')
BYTES=$(curl -s "$URL" | wc -c)
INTERNAL=$(curl -s "$URL" | awk '/^netbpf_scrape_duration_seconds / {printf "%.2f", $2 * 1000}')

# --- storms: cost per event ---------------------------------------------------------------------
# Baselines run with the exporter stopped (its programs detached); it is started again for each
# round with it, and scraped once after the storm.
echo "bench: $ROUNDS storm rounds of ${SECS}s (baseline, exporter, baseline, ...)" >&2
sysctl -qw kernel.bpf_stats_enabled=1
stop_exporter() { kill -INT "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }
start_exporter() {
	: >"$WORK/err"
	"$NETBPF" exporter --netns "/run/netns/$NS" --listen "127.0.0.1:$PORT" 2>"$WORK/err" &
	PID=$!
	for _ in $(seq 600); do grep -q '^Tracing' "$WORK/err" && break; sleep 0.01; done
	grep -q '^Tracing' "$WORK/err" || die "exporter did not restart: $(cat "$WORK/err")"
}
storm >/dev/null # warm-up
stop_exporter
prev=$(storm)
echo "$prev" >>"$WORK/baseline"
for ((r = 0; r < ROUNDS; r++)); do
	start_exporter
	s0=$(prog_stats)
	c0=$(ticks)
	run=$(storm)
	c1=$(ticks)
	s1=$(prog_stats)
	curl -s -o /dev/null "$URL"
	stop_exporter
	next=$(storm)
	echo "$next" >>"$WORK/baseline"
	# fields: run (1-2) prev (3-4) next (5-6) stats before (7-9) after (10-12) CPU ticks (13-14)
	echo "$run $prev $next $s0 $s1 $c0 $c1" | awk -v secs="$SECS" -v hz="$HZ" '{
		conns = $1 * secs; ns = $10 - $7; cnt = $11 - $8
		printf "%.4f %.4f %.1f %.2f %.3f %d\n", $1 / (($3 + $5) / 2), (($4 + $6) / 2) / $2,
			(cnt ? ns / cnt : 0), cnt / conns, ($14 - $13) / hz * 1e6 / conns, $12
	}' >>"$WORK/rounds"
	echo "bench:   round $((r + 1)): $run with the exporter; baselines $prev / $next" >&2
	prev=$next
done
# Per program, over one more storm: which tool's programs cost what.
start_exporter
ids=$(for fd in /proc/"$PID"/fd/*; do
	case $(readlink "$fd" 2>/dev/null) in
	anon_inode:bpf-prog | anon_inode:bpf_link) awk '/^prog_id:/ {print $2}' "/proc/$PID/fdinfo/${fd##*/}" ;;
	esac
done | sort -un)
bpftool prog show -j >"$WORK/p0"
run=$(storm)
bpftool prog show -j >"$WORK/p1"
stop_exporter
PER_PROG=$(python3 - "$WORK/p0" "$WORK/p1" "${run% *}" "$SECS" $ids <<'PY'
import json, sys
p0 = {p["id"]: p for p in json.load(open(sys.argv[1]))}
p1 = {p["id"]: p for p in json.load(open(sys.argv[2]))}
conns = float(sys.argv[3]) * float(sys.argv[4])
for i in sorted(int(x) for x in sys.argv[5:]):
    a, b = p0.get(i, {}), p1.get(i, {})
    runs = b.get("run_cnt", 0) - a.get("run_cnt", 0)
    ns = b.get("run_time_ns", 0) - a.get("run_time_ns", 0)
    if runs:
        print("| %s | %.1f | %.0f | %.2f |" % (b.get("name", "?"), runs / conns, ns / runs, ns / conns / 1000))
PY
)
sysctl -qw kernel.bpf_stats_enabled="$OLD_STATS"

col() { awk -v c="$1" '{print $c}' "$2"; }
fmt() { median | awk -v f="$1" '{printf f, $1}'; }
echo "| tools | ready ms | idle CPU % (${IDLE} s) | RSS MB | series | bytes | scrape ms text (median / max) | scrape ms OpenMetrics (median / max) | map reads per scrape ms |"
echo "|---|---|---|---|---|---|---|---|---|"
echo "| $(echo "$TOOLS" | tr ',' ' ' | wc -w) | $READY_MS | $IDLE_CPU | $RSS | $SERIES | $BYTES | $(fmt %.2f <"$WORK/text") / $(sort -g "$WORK/text" | tail -1) | $(fmt %.2f <"$WORK/om") / $(sort -g "$WORK/om" | tail -1) | $INTERNAL |"
echo
echo "| storm conn/s ratio | storm CPU ratio | ns per program run | program runs per connection | in-kernel us per connection | exporter CPU us per connection |"
echo "|---|---|---|---|---|---|"
paste <(col 3 "$WORK/rounds") <(col 4 "$WORK/rounds") | awk '{print $1 * $2 / 1000}' >"$WORK/kus"
echo "| $(col 1 "$WORK/rounds" | fmt %.3f) | $(col 2 "$WORK/rounds" | fmt %.3f) | $(col 3 "$WORK/rounds" | fmt %.0f) | $(col 4 "$WORK/rounds" | fmt %.1f) | $(fmt %.2f <"$WORK/kus") | $(col 5 "$WORK/rounds" | fmt %.3f) |"
echo
echo "| program (runs during the storm) | runs per connection | ns per run | us per connection |"
echo "|---|---|---|---|"
echo "$PER_PROG"
echo
echo "Raw numbers ($(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, ${SECS}s storms pinned to CPU $STORM_CPU, $ROUNDS rounds):"
echo "  plans: $PLANS"
echo "  baseline conn/s, storm CPU us/conn: $(tr '\n' ';' <"$WORK/baseline")"
echo "  rounds (rate ratio, CPU ratio, ns/run, runs/conn, exporter us/conn, programs):"
sed 's/^/    /' "$WORK/rounds"
echo "  scrape ms text: $(sort -g "$WORK/text" | tr '\n' ' ')"
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
