#!/usr/bin/env bash
# CI entry for the VM suite: installs what it needs, prepares the kernels, runs the gate's
# integration test binaries in a VM per kernel (vmtest/suite.sh).
#   exit 0  all passed, or the suite could not run here (no qemu, no kernel package): then a
#           loud SKIPPED banner says why; the host suite is unaffected
#   exit 1  a test failed, or a VM gave no result (a hang is a failure, not a skip)
# The gate: under TCG (no usable KVM on the CI machines) one kernel's whole suite takes 25-45
# min, four of them more than CI's 75. Each kernel runs the binaries whose tests hinge on what
# differs between kernels: kernels (each tool's plan, every usable plan run, return probes
# under load, drops without reasons), tcp_sessions (tcplife/tcpstates/tcpconnect/tcpaccept/
# tcptracer/tcpconnlat on real connections), dnslat (skb dynptrs), existing_sockets (socket
# iterators), map_filters (pinned filter maps), netns_ids (netns cookies vs inodes), tcpcong
# and tcppktlat (BTF-typed arguments that moved): 13-20 min per kernel with other work on the
# machine, less alone. The other test files run each on one kernel (NETBPF_VMTEST_BINS_<series>
# below), so every file runs on a stock kernel in every CI run. The whole suite on every kernel
# runs with NETBPF_VMTEST_BINS=all (docs/kernels.md records its last run per kernel).
# Environment: NETBPF_VMTEST_BINS (default: the gate; "all": every binary),
# NETBPF_VMTEST_KERNELS (default "5.10 6.1 6.12 7.3"), NETBPF_VMTEST_VM_TIMEOUT (bound per VM in
# seconds, boot included; default 1200), NETBPF_VMTEST_CACHE (default /var/cache/netbpf-vmtest).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
read -r -a WANT <<< "${NETBPF_VMTEST_KERNELS:-5.10 6.1 6.12 7.3}"
VM_TMO=${NETBPF_VMTEST_VM_TIMEOUT:-1200}
T0=$(date +%s)
banner() {
  echo
  echo "################################################################################"
  printf '## %s\n' "$@"
  echo "################################################################################"
  echo
}
skip() {
  banner "VM SUITE SKIPPED: $1" "The tests did NOT run on stock kernels (${WANT[*]})." \
    "Only the host kernel's results count for this run."
  exit 0
}

"$HERE/install-deps.sh" || skip "qemu/busybox/cpio/kmod could not be installed (apt unreachable?)"
for cmd in qemu-system-x86_64 cpio depmod; do
  command -v "$cmd" >/dev/null || [ -x "/sbin/$cmd" ] || skip "$cmd is missing"
done
T1=$(date +%s)

# Each kernel that can be had (downloaded now or cached before) runs; the others are skipped
# loudly.
READY=() MISSING=()
setup_out=$(timeout -k 10 900 "$HERE/setup.sh" "${WANT[@]}")
setup_rc=$?
for k in "${WANT[@]}"; do
  grep -q "^$k " <<< "$setup_out" && READY+=("$k") || MISSING+=("$k")
done
[ ${#READY[@]} -gt 0 ] || skip "no kernel package could be had for ${WANT[*]} (setup.sh status $setup_rc)"
[ ${#MISSING[@]} -eq 0 ] || banner "VM SUITE PARTLY SKIPPED: no kernel package for ${MISSING[*]}" \
  "Running only on ${READY[*]}."
T2=$(date +%s)

GATE="kernels tcp_sessions dnslat existing_sockets map_filters netns_ids tcpcong tcppktlat"
case "${NETBPF_VMTEST_BINS:-}" in
  "")
    export NETBPF_VMTEST_BINS=$GATE
    # Every other test file on one kernel each, so that each CI run runs every file on a stock
    # kernel: the packet and TCP-internals files on the oldest and newest kernel, where hooks and
    # inlining differ most (~5-7 min a kernel on top of the gate's ~7, on an idle machine).
    export NETBPF_VMTEST_BINS_5_10="${NETBPF_VMTEST_BINS_5_10-packet_layer tcp_internals}"
    export NETBPF_VMTEST_BINS_6_1="${NETBPF_VMTEST_BINS_6_1-socket_io containers cli}"
    export NETBPF_VMTEST_BINS_6_12="${NETBPF_VMTEST_BINS_6_12-device_layer socket_syscalls abuse}"
    export NETBPF_VMTEST_BINS_7_3="${NETBPF_VMTEST_BINS_7_3-tcp_packets exporter btf_relocations}"
    ;;
  all) unset NETBPF_VMTEST_BINS ;;
esac
echo "vmtest: test binaries: ${NETBPF_VMTEST_BINS:-all}"
for k in "${READY[@]}"; do
  extra="NETBPF_VMTEST_BINS_${k//./_}"
  [ -n "${NETBPF_VMTEST_BINS:-}" ] && [ -n "${!extra:-}" ] && echo "vmtest: and on $k: ${!extra}"
done
args=()
for k in "${READY[@]}"; do args+=(-k "$k"); done
"$HERE/suite.sh" "${args[@]}" -T "$VM_TMO"
rc=$?
T3=$(date +%s)
echo "vmtest timings: install $((T1 - T0))s, kernels $((T2 - T1))s, build + VMs $((T3 - T2))s, total $((T3 - T0))s"
case $rc in
  0) exit 0 ;;
  3) skip "the suite cannot run here (see above)" ;;
  *) banner "VM SUITE FAILED (status $rc): see the results above"; exit 1 ;;
esac
