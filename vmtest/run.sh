#!/usr/bin/env bash
# Runs one command inside a VM booted from a stock Debian kernel (qemu TCG, microvm), chrooted
# into the host's root (virtio-9p, read-only, with a tmpfs overlay): host-built binaries run
# unchanged against the guest kernel, from the host's current directory.
#
# Usage: run.sh [-k KERNEL] [-t SECS] [-m MB] [-c CPUS] [--rw DIR] [-e NAME=VALUE]...
#               [--log FILE] [-q] [--no-retry] -- CMD [ARGS...]
#   -k KERNEL    a kernel prepared by setup.sh: its full version (6.1.0-56-amd64) or a series
#                (6.1, 6.12: the newest prepared). Default 6.1.
#   -t SECS      bound on the whole run (default 900): qemu is killed after it
#   -m MB, -c N  guest memory (2048) and CPUs (2)
#   --rw DIR     DIR (host path) is writable in the guest and shared back to the host; every
#                other write lands in the guest's tmpfs overlay and is discarded
#   -e NAME=VAL  environment for CMD (RUST_BACKTRACE, RUST_LOG, NETBPF_DEBUG pass through)
#   --log FILE   keep the console log there; -q: do not echo the console
#   --no-retry   do not boot again when the first boot gave no result early (no chroot
#                reached, or ended within 120 s)
# Exit status: CMD's, or 125 when the VM gave no result (did not boot, timed out, crashed).
# The guest has no network device: everything it does stays inside it.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${NETBPF_VMTEST_CACHE:-/var/cache/netbpf-vmtest}
KERNEL=6.1 TMO=900 MEM=2048 CPUS=2 RW= LOG= QUIET= RETRY=1
BOOT_TMO=${NETBPF_VMTEST_BOOT_TIMEOUT:-240}
ENVS=()
for v in RUST_BACKTRACE RUST_LOG NETBPF_DEBUG; do
  [ -n "${!v:-}" ] && ENVS+=("$v=${!v}")
done
usage() { sed -n '6,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 125; }
while [ $# -gt 0 ]; do
  case "$1" in
    -k) KERNEL=$2; shift 2 ;;
    -t) TMO=$2; shift 2 ;;
    -m) MEM=$2; shift 2 ;;
    -c) CPUS=$2; shift 2 ;;
    --rw) RW=$(realpath "$2") || exit 125; shift 2 ;;
    -e) ENVS+=("$2"); shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    -q) QUIET=1; shift ;;
    --no-retry) RETRY=0; shift ;;
    --) shift; break ;;
    -h|--help) usage ;;
    -*) echo "run.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || usage
say() { echo "vmtest run: $*" >&2; }

command -v qemu-system-x86_64 >/dev/null || { say "qemu-system-x86_64 missing (vmtest/install-deps.sh)"; exit 125; }
# A full version, or the newest prepared kernel of a series.
KVER=
if [ -f "$CACHE/kernels/$KERNEL/vmlinux" ]; then
  KVER=$KERNEL
else
  for d in $(ls -d "$CACHE/kernels/$KERNEL"[.-]* 2>/dev/null | sort -V -r); do
    [ -f "$d/vmlinux" ] && [ -f "$d/initramfs.cpio.gz" ] && { KVER=$(basename "$d"); break; }
  done
fi
[ -n "$KVER" ] || { say "kernel $KERNEL is not prepared in $CACHE (vmtest/setup.sh $KERNEL)"; exit 125; }
D=$CACHE/kernels/$KVER
MODDIR=$(realpath "$D/root/lib/modules/$KVER")

TMP=$(mktemp -d /tmp/netbpf-vmtest.XXXXXX)
chmod 755 "$TMP"
trap 'rm -rf "$TMP"' EXIT
{
  echo '#!/bin/sh'
  printf 'cd %q || exit 125\n' "$PWD"
  for e in "${ENVS[@]}"; do printf 'export %q\n' "$e"; done
  printf 'exec'; printf ' %q' "$@"; echo
} > "$TMP/cmd"
chmod 755 "$TMP/cmd"

# Under TCG the guest's TSC is the host's. Telling the guest its frequency avoids calibrating
# against the PIT, which microvm lacks (without it some boots hang at "Unable to calibrate").
KHZ=$(awk -F: '/^cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
APPEND="console=ttyS0 panic=-1 quiet loglevel=3 ${KHZ:+tsc_early_khz=$KHZ tsc=reliable }vmtest.cmd=$TMP/cmd vmtest.moddir=$MODDIR${RW:+ vmtest.rw=$RW}"
# One TCG thread for all vCPUs. With thread=multi, kernel text patching (static keys at boot,
# and kprobes, ftrace and BPF trampolines later) races with the other vCPU running stale
# translated code: ~1 boot in 8 died with "Oops: int3" in a just-patched function.
TCG_THREAD=${NETBPF_VMTEST_TCG_THREAD:-single}
QEMU=(qemu-system-x86_64 -accel "tcg,thread=$TCG_THREAD" -cpu max -smp "$CPUS" -m "$MEM"
      -M microvm -nodefaults -no-user-config -display none -no-reboot -serial stdio
      -fsdev local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap
      -device virtio-9p-device,fsdev=hostroot,mount_tag=host)
[ -n "$RW" ] && QEMU+=(-fsdev "local,id=rw,path=$RW,security_model=none"
                       -device virtio-9p-device,fsdev=rw,mount_tag=rw)
QEMU+=(-kernel "$D/vmlinux" -initrd "$D/initramfs.cpio.gz" -append "$APPEND")

# One boot: console to $1 (and to stderr unless -q). Sets STATUS (CMD's, or empty) and WHY.
boot() {
  local console=$1 start qpid watch
  : > "$console"
  start=$(date +%s)
  # Line-buffered: the boot watchdog below reads the file while the VM runs.
  if [ -n "$QUIET" ]; then
    timeout -k 10 "$TMO" "${QEMU[@]}" < /dev/null > >(stdbuf -oL tr -d '\r' >> "$console") 2>&1 &
  else
    timeout -k 10 "$TMO" "${QEMU[@]}" < /dev/null > >(stdbuf -oL tr -d '\r' | tee -a "$console" >&2) 2>&1 &
  fi
  qpid=$!
  # A boot that hangs (it happens under TCG on a loaded host) is cut short, so it can be retried.
  # Its sleep must not outlive it: it would hold our caller's stdout (a CI log pipe) open.
  ( trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$BOOT_TMO" & sleeper=$!
    wait "$sleeper"
    grep -q '^VMTEST_READY' "$console" || { echo "vmtest: not booted after ${BOOT_TMO}s" >> "$console"; kill "$qpid"; }
  ) < /dev/null > /dev/null 2>&1 &
  watch=$!
  wait "$qpid"
  local qrc=$?
  kill "$watch" 2>/dev/null; wait "$watch" 2>/dev/null
  sleep 0.2   # let the console pipe drain
  STATUS=$(sed -n 's/^VMTEST_EXIT=\([0-9]*\).*/\1/p' "$console" | tail -1)
  ELAPSED=$(( $(date +%s) - start ))
  if [ -n "$STATUS" ]; then WHY=
  elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then WHY="timed out (bound -t ${TMO}s)"
  elif ! grep -q '^VMTEST_READY' "$console"; then WHY="did not boot (qemu status $qrc)"
  else WHY="ended without a result (qemu status $qrc)"
  fi
}

CONSOLE=${LOG:-$TMP/console.log}
boot "$CONSOLE"
# Boot again only after an early end (a boot that hung or died, as TCG sometimes makes them):
# a VM that crashed or hung while running CMD is a result to look at, and a second try would
# double an already long run.
if [ -z "$STATUS" ] && [ "$RETRY" = 1 ] && [[ "$WHY" != timed* ]] \
   && { [[ "$WHY" == "did not boot"* ]] || [ "$ELAPSED" -lt 120 ]; }; then
  TRY1=${LOG:-/tmp/netbpf-vmtest-$KVER-console.log}.try1
  cp "$CONSOLE" "$TRY1" 2>/dev/null
  say "$KVER: the VM $WHY after ${ELAPSED}s; booting again (first console: $TRY1)"
  boot "$CONSOLE"
fi
if [ -z "$STATUS" ]; then
  if [ -z "$LOG" ]; then
    LOG=/tmp/netbpf-vmtest-$KVER-console.log
    cp "$CONSOLE" "$LOG"
  fi
  say "$KVER: NO RESULT: the VM $WHY after ${ELAPSED}s; console in $LOG"
  tail -n 20 "$LOG" | sed 's/^/    /' >&2
  exit 125
fi
exit "$STATUS"
