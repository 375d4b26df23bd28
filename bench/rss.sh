#!/usr/bin/env bash
# Benchmark (not a test): peak RSS of every tool, and the exporter's start-up time and peak RSS.
#
# Usage (as root, from the repo root):
#   bash bench/rss.sh [--idle S] [--traffic S] [--bin PATH] [--no-exporter] [TOOL...]
#
# Per tool (default: every tool `netbpf list` says runs here), in a fresh network namespace with a
# tbf qdisc on lo (the tool filtered to it where it can be): VmHWM after S seconds idle (default
# 2), then after S seconds of a little loopback traffic (default 3). Then `netbpf exporter` with
# its default tools: exec -> "Tracing" in ms, VmHWM idle and after the same traffic with a scrape
# every 100 ms. MB = MiB. --bin: the binary to measure (default: a release build of this tree).
# Environment: CARGO_TARGET_DIR (default ./target).
set -euo pipefail

IDLE=2 TRAFFIC=3 BIN="" EXPORTER=1 TOOLS=()
# shellcheck source=bench/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh" # die, posint, stop_child, bench_cleanup, ...

while (($#)); do
	case $1 in
	--idle) posint "$1" "${2-}"; IDLE=$2; shift 2 ;;
	--traffic) posint "$1" "${2-}"; TRAFFIC=$2; shift 2 ;;
	--bin) [[ -x ${2-} ]] || die "--bin needs an executable, got '${2-}'"; BIN=$2; shift 2 ;;
	--no-exporter) EXPORTER=0; shift ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	-*) die "unknown argument '$1' (try --help)" ;;
	*) [[ $1 =~ ^[a-z0-9]+$ ]] || die "bad tool name '$1'"; TOOLS+=("$1"); shift ;;
	esac
done
((EUID == 0)) || die "must run as root (loads BPF, creates a network namespace)"
[[ -f Cargo.toml && -f bench/lib.sh ]] || die "run from the netbpf repo root"
for cmd in ip tc python3 curl timeout; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed"
done

if [[ -z $BIN ]]; then
	BIN=${CARGO_TARGET_DIR:-./target}/release/netbpf
	echo "bench: building $BIN" >&2
	cargo build --release --locked --quiet --bin netbpf >&2 || die "build of netbpf failed"
fi
((${#TOOLS[@]})) || mapfile -t TOOLS < <("$BIN" list 2>/dev/null | awk 'NR > 1 && $2 == "ok" {print $1}')
((${#TOOLS[@]})) || die "$BIN list names no tool that runs here"

NS=netbpf-rss-$$
NS_PATH=/run/netns/$NS
WORK=$(mktemp -d /tmp/netbpf-rss.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP
ip netns add "$NS"
MADE_NETNS+=("$NS")
ip -n "$NS" link set lo up
tc -n "$NS" qdisc add dev lo root tbf rate 10gbit burst 256kb limit 1mb # for `qdisc tbf`

# The traffic, every 10 ms for $1 seconds: a connection with 3 KB echoed, a connect to a closed
# port, a UDP datagram to a closed port, in the bench namespace.
cat >"$WORK/traffic.py" <<'EOF'
import socket, sys, threading, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
def recv_upto(c, n):
    got = 0
    while got < n:
        b = c.recv(65536)
        if not b:
            break
        got += len(b)
    return got
def serve():
    while True:
        c, _ = srv.accept()
        with c:
            c.sendall(b"y" * recv_upto(c, 3000))
threading.Thread(target=serve, daemon=True).start()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    with socket.create_connection(srv.getsockname()) as c:
        c.sendall(b"x" * 3000)
        recv_upto(c, 3000)
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
    except OSError:
        pass
    udp.sendto(b"z" * 100, ("127.0.0.1", 9))
    time.sleep(0.01)
EOF
traffic() { timeout -k 5 $(($1 + 30)) ip netns exec "$NS" python3 "$WORK/traffic.py" "$1" || die "traffic failed"; }

hwm_mb() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# Starts "$@" in the background with its stderr on a FIFO (ERR_FD), returns once it says
# "Tracing" and sets PID, and READY_MS: exec -> that line (timestamps taken just before exec
# and when the line is read, as in bench/tcplife.sh).
start() {
	local fifo=$WORK/err.fifo line t1=""
	rm -f "$fifo" "$WORK/t0"
	mkfifo "$fifo"
	(
		printf '%s' "$EPOCHREALTIME" >"$WORK/t0"
		exec "$@" 2>"$fifo" >/dev/null
	) &
	PID=$!
	LIVE+=("$PID")
	exec {ERR_FD}<"$fifo"
	while IFS= read -r -t 60 -u "$ERR_FD" line; do
		[[ $line == Tracing* ]] && { t1=$EPOCHREALTIME; break; }
	done
	[[ -n $t1 ]] || die "$* did not say it is tracing (last line: '${line-}')"
	READY_MS=$(awk -v a="$(<"$WORK/t0")" -v b="$t1" 'BEGIN {printf "%.0f", (b - a) * 1000}')
}

# Stops what start() started (its stderr is read to the end: nothing blocks on the FIFO).
stop() {
	stop_child "$PID"
	cat <&"$ERR_FD" >/dev/null
	exec {ERR_FD}<&-
}

echo "| tool | idle VmHWM MB | traffic VmHWM MB |"
echo "|---|---|---|"
for t in "${TOOLS[@]}"; do
	cmd=("$BIN" "$t")
	[[ $t == qdisc ]] && cmd+=(tbf)
	"$BIN" "$t" --help 2>/dev/null | grep -q -- '--netns' && cmd+=(--netns "$NS_PATH")
	start "${cmd[@]}"
	sleep "$IDLE"
	idle=$(hwm_mb "$PID")
	traffic "$TRAFFIC"
	busy=$(hwm_mb "$PID")
	stop
	echo "| $t | $idle | $busy |"
done

((EXPORTER)) || exit 0
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start "$BIN" exporter --netns "$NS_PATH" --listen "127.0.0.1:$PORT"
sleep "$IDLE"
idle=$(hwm_mb "$PID")
traffic "$TRAFFIC" &
tpid=$!
while [[ -d /proc/$tpid ]]; do
	curl -sf -o /dev/null "http://127.0.0.1:$PORT/metrics" || die "scrape failed"
	sleep 0.1
done
wait "$tpid" || die "traffic failed"
busy=$(hwm_mb "$PID")
stop
echo
echo "| exporter | ready ms | idle VmHWM MB | traffic + scrapes VmHWM MB |"
echo "|---|---|---|---|"
echo "| default tools | $READY_MS | $idle | $busy |"
