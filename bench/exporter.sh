#!/usr/bin/env bash
# Benchmark (not a test): the exporter's idle cost and scrape latency.
#   bash bench/exporter.sh [--secs N] [--scrapes N]
# Starts `netbpf exporter` (release build) with every exportable tool on a free loopback port and
# reports: attach time, idle CPU over N seconds (utime+stime from /proc), RSS and peak RSS, and
# the median/max latency of N scrapes of /metrics. Run as root on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=10 SCRAPES=50
while [ $# -gt 0 ]; do
	case $1 in
	--secs) SECS=$2; shift 2 ;;
	--scrapes) SCRAPES=$2; shift 2 ;;
	*) echo "usage: $0 [--secs N] [--scrapes N]" >&2; exit 2 ;;
	esac
done
cargo build --release --quiet --bin netbpf
BIN=${CARGO_TARGET_DIR:-target}/release/netbpf
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ERR=$(mktemp)
START=$EPOCHREALTIME
"$BIN" exporter --listen "127.0.0.1:$PORT" 2>"$ERR" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$ERR"' EXIT
for _ in $(seq 300); do grep -q "^Tracing" "$ERR" && break; sleep 0.05; done
grep -q "^Tracing" "$ERR" || { cat "$ERR"; exit 1; }
READY_MS=$(python3 -c "print(round(($EPOCHREALTIME - $START) * 1000))")
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
T0=$(ticks)
sleep "$SECS"
T1=$(ticks)
HZ=$(getconf CLK_TCK)
CPU_PCT=$(python3 -c "print(round(($T1 - $T0) / $HZ / $SECS * 100, 3))")
LAT=$(for _ in $(seq "$SCRAPES"); do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT/metrics"; done | sort -n)
MED=$(echo "$LAT" | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)] * 1000}')
MAX=$(echo "$LAT" | tail -1 | awk '{printf "%.2f", $1 * 1000}')
RSS=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$PID/status")
HWM=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$PID/status")
SERIES=$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -vc '^#')
TOOLS=$(sed -n 's/^Tracing for the exporter: \([^ ]*\) on.*/\1/p' "$ERR")
echo "| tools | ready ms | idle CPU % ($SECS s) | RSS MB | peak RSS MB | scrape median ms | scrape max ms | series |"
echo "|---|---|---|---|---|---|---|---|"
echo "| $TOOLS | $READY_MS | $CPU_PCT | $RSS | $HWM | $MED | $MAX | $SERIES |"
