#!/usr/bin/env bash
# CI entry for the VM suite: installs what it needs, prepares the kernels, runs every
# integration test binary in a VM per kernel (vmtest/suite.sh).
#   exit 0  all passed, or the suite could not run here (no qemu, no kernel package): then a
#           loud SKIPPED banner says why; the host suite is unaffected
#   exit 1  a test failed, or a VM gave no result (a hang is a failure, not a skip)
# Environment: NETBPF_VMTEST_KERNELS (default "5.10 6.1 6.12 7.3"), NETBPF_VMTEST_VM_TIMEOUT (bound per
# VM in seconds, boot included; default 720), NETBPF_VMTEST_CACHE (default
# /var/cache/netbpf-vmtest).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
read -r -a WANT <<< "${NETBPF_VMTEST_KERNELS:-5.10 6.1 6.12 7.3}"
VM_TMO=${NETBPF_VMTEST_VM_TIMEOUT:-720}
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
