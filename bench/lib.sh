# Helpers shared by bench/tcplife.sh, bench/floor.sh and bench/rss.sh (sourced). LIVE holds the
# children started and not yet reaped, whose pids cannot be reused, so killing them is safe.

die() {
	echo "bench: $*" >&2
	exit 1
}

posint() { [[ $2 =~ ^[1-9][0-9]{0,2}$ ]] || die "$1 needs a positive integer (1-999), got '$2'"; }

median() { sort -g | awk '{v[NR]=$1} END {if (!NR) {print "nan"; exit}
	print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# What a bench made, undone at exit by bench_cleanup (trap bench_cleanup EXIT): children
# (LIVE), network namespaces (MADE_NETNS), the bpf_stats sysctl, a tracefs it mounted
# (MOUNTED_TRACEFS=1), its work directory (WORK).
LIVE=()
MADE_NETNS=()
MOUNTED_TRACEFS=0
WORK=""
OLD_BPF_STATS=$(sysctl -n kernel.bpf_stats_enabled)

bench_cleanup() {
	local p
	for p in "${LIVE[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	sysctl -qw kernel.bpf_stats_enabled="$OLD_BPF_STATS" || true
	for p in "${MADE_NETNS[@]}"; do
		ip netns del "$p" 2>/dev/null || true
	done
	((MOUNTED_TRACEFS)) && umount /sys/kernel/tracing 2>/dev/null || true
	[[ -z $WORK ]] || rm -rf "$WORK"
}

forget() { # drop $1 from LIVE once reaped
	local p keep=()
	for p in "${LIVE[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
	LIVE=("${keep[@]}")
}

# Stops child $1: SIGINT, up to 5 s to exit, then SIGKILL. Reaps it.
stop_child() {
	local pid=$1 i state
	kill -INT "$pid" 2>/dev/null || true
	for ((i = 0; i < 500; i++)); do
		state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || break
		[[ $state == Z ]] && break
		sleep 0.01
	done
	[[ ${state-} == Z ]] || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

# Programs held by process $1: prog ids from its bpf-prog and bpf_link fds. (This bpftool has no
# `pids` field, so the fds are the way to tie programs to a process.)
prog_ids() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		case $(readlink "$fd" 2>/dev/null) in
		anon_inode:bpf-prog | anon_inode:bpf_link)
			awk '/^prog_id:/ {print $2}' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null
			;;
		esac
	done | sort -un
}

# "run_time_ns run_cnt names" summed over the programs of process $1, from bpftool.
prog_stats() {
	local ids
	ids=$(prog_ids "$1")
	[[ -n $ids ]] || die "no BPF programs found for pid $1"
	bpftool prog show -j | python3 -c '
import json, sys
want = set(int(i) for i in sys.argv[1:])
progs = [p for p in json.load(sys.stdin) if p["id"] in want]
print(sum(p.get("run_time_ns", 0) for p in progs), sum(p.get("run_cnt", 0) for p in progs),
      ",".join(p.get("name", "?") for p in progs))' $ids
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system CPU of process $1, in ticks

# Tracing programs someone else left attached run on every event of every storm (baselines too):
# they lower all the rates and dilute the ratios. Name them and who holds them.
foreign_progs() {
	bpftool prog show -j | python3 -c '
import json, os, sys
types = {"tracing", "tracepoint", "raw_tracepoint", "kprobe", "perf_event"}
progs = {p["id"]: p for p in json.load(sys.stdin) if p.get("type") in types}
holders = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        continue
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:") and int(line.split()[1]) in progs:
                        holders.setdefault(int(line.split()[1]), set()).add(pid)
        except (OSError, ValueError):
            pass
for i, p in sorted(progs.items()):
    who = ",".join(sorted(holders.get(i, {"?"})))
    print("  id %d %s %s held by pid %s" % (i, p["type"], p.get("name", "?"), who))'
}
