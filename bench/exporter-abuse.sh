#!/usr/bin/env bash
# Benchmark (not a test): `netbpf exporter` under connection abuse, against issue 16's targets.
#
# Usage (as root, from the repo root):
#   bash bench/exporter-abuse.sh [--idle N] [--slow N] [--drip S] [--scrapes N] [--concurrent N]
#                                [--nofile N] [--tools LIST] [--no-reopen]
#
# In a fresh network namespace, starts `netbpf exporter` (NETBPF_BIN, default target/debug/netbpf;
# every exportable tool unless --tools) on 127.0.0.1 under `ulimit -n 1024`. An abuser then holds
# 1,000 idle connections (nothing sent) and 500 slowloris ones (a request head sent one byte every
# --drip s, never finished); one the server closes is opened again at the next drip (--no-reopen:
# never). Meanwhile: 200 sequential scrapes (curl, new connection each: p50/p99/max and failures),
# then 2,000 concurrent ones (one nonblocking client; each GET sent once connected). The
# exporter's VmRSS, VmHWM, RssAnon, threads and open sockets are sampled throughout.
# Targets (issue 16): scrape p99 <= 100 ms under the abuse; RSS < 16 MB through the concurrent
# scrapes. Prints a markdown table and the raw numbers.
set -euo pipefail

IDLE=1000 SLOW=500 DRIP=3 SCRAPES=200 CONCURRENT=2000 NOFILE=1024 TOOLS="" REOPEN=1
die() {
	echo "bench: $*" >&2
	exit 1
}
count() { [[ $2 =~ ^[0-9]{1,5}$ ]] || die "$1 needs a number (0-99999), got '$2'"; }
while (($#)); do
	case $1 in
	--idle) count "$1" "${2-}"; IDLE=$2; shift 2 ;;
	--slow) count "$1" "${2-}"; SLOW=$2; shift 2 ;;
	--drip) [[ ${2-} =~ ^[1-9][0-9]?$ ]] || die "--drip needs 1-99 seconds, got '${2-}'"; DRIP=$2; shift 2 ;;
	--scrapes) count "$1" "${2-}"; SCRAPES=$2; shift 2 ;;
	--concurrent) count "$1" "${2-}"; CONCURRENT=$2; shift 2 ;;
	--nofile) [[ ${2-} =~ ^[1-9][0-9]{2,4}$ ]] || die "--nofile needs 100-99999, got '${2-}'"; NOFILE=$2; shift 2 ;;
	--tools) [[ -n ${2-} ]] || die "--tools needs a list"; TOOLS=$2; shift 2 ;;
	--no-reopen) REOPEN=0; shift ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (try --help)" ;;
	esac
done
((SCRAPES > 0)) || die "--scrapes must be positive"
((EUID == 0)) || die "must run as root (loads BPF, creates a network namespace)"
[[ -f Cargo.toml && -d src/exporter ]] || die "run from the netbpf repo root"
for cmd in ip python3 curl timeout; do
	command -v "$cmd" >/dev/null || die "'$cmd' is needed"
done
NETBPF=${NETBPF_BIN:-target/debug/netbpf}
[[ -x $NETBPF ]] || die "$NETBPF is not an executable (build it, or set NETBPF_BIN)"

NS=netbpf-abuse-$$
WORK=$(mktemp -d /tmp/netbpf-abuse.XXXXXX)
PORT=9435
URL=http://127.0.0.1:$PORT/metrics
PID="" ABUSER="" SAMPLER=""
cleanup() {
	for p in $SAMPLER $ABUSER $PID; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
in_ns() { ip netns exec "$NS" "$@"; }

ip netns add "$NS"
ip -n "$NS" link set lo up

# --- the abuser ---------------------------------------------------------------------------------
# Holds IDLE + SLOW connections; every DRIP s each slowloris one gets one more header byte and any
# the server closed is opened again (unless REOPEN=0). Writes "open_idle open_slow reopened" to
# its state file every drip; on SIGTERM, prints the totals.
cat >"$WORK/abuser.py" <<'PY'
import errno, os, select, signal, socket, sys, time
port, n_idle, n_slow, drip, reopen, state = sys.argv[1:7]
port, n_idle, n_slow, drip, reopen = int(port), int(n_idle), int(n_slow), float(drip), reopen == "1"
HEAD = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)

def connect(slow):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        if slow:
            s.send(HEAD[:1])
        return s
    except OSError:
        s.close()
        return None

idle = [connect(False) for _ in range(n_idle)]
slow = [connect(True) for _ in range(n_slow)]
sent = [1] * n_slow  # bytes of the head each slowloris connection has sent
failed_connects = sum(s is None for s in idle + slow)
reopened = closed_by_server = 0

def alive(s):
    """False once the server closed it (EOF, reset) or it is None."""
    if s is None:
        return False
    try:
        if s.recv(4096, socket.MSG_PEEK) == b"":
            return False
        return True  # an answer (408/431...): the server will close it next
    except BlockingIOError:
        return True
    except OSError:
        return False

def write_state():
    tmp = state + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d %d %d %d\n" % (sum(s is not None for s in idle), sum(s is not None for s in slow),
                                     reopened, closed_by_server, failed_connects))
    os.replace(tmp, state)

write_state()
next_drip = time.monotonic() + drip
while not stop:
    time.sleep(min(0.2, max(0.0, next_drip - time.monotonic())))
    if time.monotonic() < next_drip:
        continue
    next_drip += drip
    for conns, is_slow in ((idle, False), (slow, True)):
        for i, s in enumerate(conns):
            if stop:
                break
            if is_slow and s is not None:
                b = HEAD[sent[i]:sent[i] + 1] or b"a"
                try:
                    s.send(b)
                    sent[i] += 1
                except OSError:
                    pass
            if alive(s):
                continue
            if s is not None:
                closed_by_server += 1
                s.close()
                conns[i] = None
            if reopen:
                conns[i] = connect(is_slow)
                if conns[i] is None:
                    failed_connects += 1
                else:
                    reopened += 1
                    if is_slow:
                        sent[i] = 1
    write_state()
print("abuser: %d idle and %d slowloris open at the end; %d closed by the server, %d reopened, "
      "%d connects failed" % (sum(alive(s) for s in idle), sum(alive(s) for s in slow),
                              closed_by_server, reopened, failed_connects))
PY

# --- concurrent scrapes -------------------------------------------------------------------------
# N scrapes at once from one nonblocking client: connections opened in quick batches, each
# sending its GET as soon as it is connected (as N scrapers would), then reading to EOF (60 s
# bound). Prints one line per scrape: "ms ok" (ok: 1 for a complete 200 response).
cat >"$WORK/concurrent.py" <<'PY'
import selectors, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
REQ = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
sel = selectors.DefaultSelector()
start = time.monotonic()
state = {}
results = []
def finish(s, ok):
    sel.unregister(s)
    s.close()
    results.append(((time.monotonic() - start) * 1000, ok))
    del state[s]
opened = 0
while (state or opened < n) and time.monotonic() - start < 60:
    for _ in range(min(50, n - opened)):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        state[s] = [b"", False]
        sel.register(s, selectors.EVENT_WRITE)
        opened += 1
    for key, ev in sel.select(timeout=0 if opened < n else 1):
        s = key.fileobj
        buf, sent = state[s]
        try:
            if not sent:
                s.send(REQ)
                state[s][1] = True
                sel.modify(s, selectors.EVENT_READ)
                continue
            d = s.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            finish(s, 0)
            continue
        if d:
            state[s][0] += d
            continue
        head, _, body = buf.partition(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200 ") and b"netbpf_tool_up" in body
        finish(s, int(ok))
for s in list(state):
    finish(s, 0)
for ms, ok in results:
    print("%.2f %d" % (ms, ok))
PY

# --- the exporter -------------------------------------------------------------------------------
ARGS=(exporter --netns "/run/netns/$NS" --listen "127.0.0.1:$PORT")
[[ -n $TOOLS ]] && ARGS+=(--tools "$TOOLS")
echo "bench: starting $NETBPF ${ARGS[*]} under ulimit -n $NOFILE" >&2
# Not through in_ns: $! must be the exporter itself (ip and bash exec it).
ip netns exec "$NS" bash -c 'ulimit -n "$1" && shift && exec "$@"' _ "$NOFILE" "$NETBPF" "${ARGS[@]}" 2>"$WORK/err" &
PID=$!
for _ in $(seq 3000); do grep -q '^Tracing' "$WORK/err" && break; kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
grep -q '^Tracing' "$WORK/err" || die "exporter did not start: $(cat "$WORK/err")"
[[ $(awk '/^Max open files/ {print $4}' "/proc/$PID/limits") == "$NOFILE" ]] || die "the fd limit did not apply"
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status" 2>/dev/null; }
# find fails when an fd closes while it looks: not an error here.
sockets() { { find "/proc/$PID/fd" -lname 'socket:*' 2>/dev/null || true; } | wc -l; }
FDS0=$(ls "/proc/$PID/fd" | wc -l)
RSS0=$(status VmRSS) HWM0=$(status VmHWM) THREADS0=$(status Threads) ANON0=$(status RssAnon)
TOOLS_UP=$(sed -n 's/^Tracing for the exporter: \([^ ]*\) on.*/\1/p' "$WORK/err")

# Sampler: "VmRSS_kB Threads sockets RssAnon_kB" every 100 ms, into the current phase's file (its name in
# $PHASE_FILE, replaced whole by phase()).
PHASE_FILE=$WORK/phase
phase() { echo "$WORK/s-$1" >"$PHASE_FILE.tmp" && mv "$PHASE_FILE.tmp" "$PHASE_FILE"; }
phase start
(
	while kill -0 "$PID" 2>/dev/null; do
		echo "$(status VmRSS) $(status Threads) $(sockets) $(status RssAnon)" >>"$(cat "$PHASE_FILE")"
		sleep 0.1
	done
) &
SAMPLER=$!
maxcol() { awk -v c="$1" 'BEGIN {m = 0} $c > m {m = $c} END {print m}' "$WORK/s-$2"; }

# --- abuse --------------------------------------------------------------------------------------
phase abuse
echo "bench: opening $IDLE idle and $SLOW slowloris connections (drip ${DRIP}s, reopen $REOPEN)" >&2
ip netns exec "$NS" python3 "$WORK/abuser.py" "$PORT" "$IDLE" "$SLOW" "$DRIP" "$REOPEN" "$WORK/abuser" >"$WORK/abuser.out" 2>&1 &
ABUSER=$!
for _ in $(seq 1200); do [[ -s $WORK/abuser ]] && break; sleep 0.05; done
[[ -s $WORK/abuser ]] || die "the abuser did not get its connections open: $(cat "$WORK/abuser.out")"
# Two drips: the connections the server cannot hold have been closed and reopened once.
sleep $((2 * DRIP + 1))
kill -0 "$PID" 2>/dev/null || die "the exporter ended under the abuse: $(cat "$WORK/err")"
read -r A_IDLE A_SLOW _ <"$WORK/abuser"
SOCKS_ABUSE=$(sockets)
echo "bench: the abuser holds $A_IDLE idle + $A_SLOW slowloris; the exporter has $SOCKS_ABUSE sockets" >&2

# --- sequential scrapes -------------------------------------------------------------------------
echo "bench: $SCRAPES sequential scrapes" >&2
for _ in $(seq "$SCRAPES"); do
	in_ns curl -s -o /dev/null --max-time 10 -w '%{http_code} %{time_total}\n' "$URL" || true
done >"$WORK/seq"
SEQ_FAIL=$(awk '$1 != 200' "$WORK/seq" | wc -l)
awk '$1 == 200 {print $2 * 1000}' "$WORK/seq" | sort -g >"$WORK/seq-ms"
pct() { # $1: percentile (nearest rank) of the sorted file $2
	awk -v p="$1" '{v[NR] = $1} END {if (!NR) {print "nan"; exit}; r = int((p * NR + 99) / 100); printf "%.1f", v[r < 1 ? 1 : r]}' "$2"
}
SEQ_P50=$(pct 50 "$WORK/seq-ms") SEQ_P99=$(pct 99 "$WORK/seq-ms") SEQ_MAX=$(pct 100 "$WORK/seq-ms")
read -r A_IDLE2 A_SLOW2 _ <"$WORK/abuser"

# --- concurrent scrapes -------------------------------------------------------------------------
phase concurrent
RSS1=$(status VmRSS) HWM1=$(status VmHWM) ANON1=$(status RssAnon)
echo "bench: $CONCURRENT concurrent scrapes (the abuse goes on)" >&2
in_ns python3 "$WORK/concurrent.py" "$PORT" "$CONCURRENT" >"$WORK/conc"
CONC_FAIL=$(( CONCURRENT - $(awk '$2 == 1' "$WORK/conc" | wc -l) ))
awk '$2 == 1 {print $1}' "$WORK/conc" | sort -g >"$WORK/conc-ms"
CONC_P50=$(pct 50 "$WORK/conc-ms") CONC_P99=$(pct 99 "$WORK/conc-ms") CONC_MAX=$(pct 100 "$WORK/conc-ms")
sleep 1
phase end
RSS2=$(status VmRSS) HWM2=$(status VmHWM) ANON2=$(status RssAnon)

kill -TERM "$ABUSER"
wait "$ABUSER" || true
ABUSER=""
sleep 1
# After the abuse: still serving?
AFTER=$(in_ns curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$URL" || true)
kill -INT "$PID"
T0=$EPOCHREALTIME
wait "$PID" && EXIT=0 || EXIT=$?
EXIT_MS=$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.0f", (b - a) * 1000}')
PID=""
kill "$SAMPLER" 2>/dev/null || true
wait "$SAMPLER" 2>/dev/null || true
SAMPLER=""

mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
# "met" when $1 is at most (le) or under (lt) $3.
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
	ok = v != "nan" && (op == "le" ? v + 0 <= t + 0 : v + 0 < t + 0); print ok ? "met" : "MISSED" }'; }
PEAK_RSS=$(maxcol 1 concurrent)
((PEAK_RSS > RSS2)) || PEAK_RSS=$RSS2
echo "| phase | scrapes | failed | p50 ms | p99 ms | max ms | VmRSS MB (start / peak / end) | VmHWM MB | RssAnon MB (start / peak / end) | threads (max) | exporter sockets (max) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
echo "| $IDLE idle + $SLOW slowloris, sequential | $SCRAPES | $SEQ_FAIL | $SEQ_P50 | $SEQ_P99 | $SEQ_MAX | $(mb "$RSS0") / $(mb "$(maxcol 1 abuse)") / $(mb "$RSS1") | $(mb "$HWM1") | $(mb "$ANON0") / $(mb "$(maxcol 4 abuse)") / $(mb "$ANON1") | $(maxcol 2 abuse) | $(maxcol 3 abuse) |"
echo "| same abuse, $CONCURRENT concurrent | $CONCURRENT | $CONC_FAIL | $CONC_P50 | $CONC_P99 | $CONC_MAX | $(mb "$RSS1") / $(mb "$PEAK_RSS") / $(mb "$RSS2") | $(mb "$HWM2") | $(mb "$ANON1") / $(mb "$(maxcol 4 concurrent)") / $(mb "$ANON2") | $(maxcol 2 concurrent) | $(maxcol 3 concurrent) |"
echo
echo "Targets: sequential p99 <= 100 ms: $(verdict "$SEQ_P99" le 100) ($SEQ_P99 ms, $SEQ_FAIL failed);" \
	"RSS < 16 MB through the concurrent scrapes: $(verdict "$(mb "$HWM2")" lt 16) (VmHWM $(mb "$HWM2") MB, of which" \
	"$(mb "$ANON0") MB anonymous at start; the rest is mostly the binary's pages, far more in a debug build)"
echo
echo "Raw numbers ($(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs, $NETBPF):"
echo "  tools: $TOOLS_UP; ulimit -n $NOFILE; fds at start $FDS0 (VmRSS $(mb "$RSS0") MB, VmHWM $(mb "$HWM0") MB, $THREADS0 thread(s))"
echo "  abuser before the scrapes: $A_IDLE idle + $A_SLOW slowloris open (exporter sockets $SOCKS_ABUSE); after them: $A_IDLE2 + $A_SLOW2"
echo "  $(cat "$WORK/abuser.out")"
echo "  scrape after the abuse: HTTP $AFTER; SIGINT -> exit $EXIT in $EXIT_MS ms"
echo "  stderr of the exporter: $(grep -v '^Tracing' "$WORK/err" | tr '\n' ';')"
echo "  sequential ms: $(tr '\n' ' ' <"$WORK/seq-ms")"
echo "  load average: $(uptime | sed 's/.*load average: //')"
