#!/usr/bin/env bash
# Installs what the VM test harness needs on the host (Debian 12, as root). Idempotent: does
# nothing when every command is already there.
#   qemu-system-x86   the emulator (TCG: the guest kernels are stock, no KVM needed)
#   busybox-static    the initramfs userland (PID 1 before the chroot into the host root)
#   cpio              packs the initramfs
#   kmod              depmod/modprobe: module dependency order for the initramfs, and modprobe
#                     inside the guest (the host's, run in the chroot)
#   xz-utils zstd     Debian kernels and modules are xz (6.1) or zstd/xz (6.12) compressed
#   fuse-overlayfs    podman in the guest (tests/containers.rs): its root is an overlay, on which
#                     the kernel's overlayfs cannot stack, so container storage goes through FUSE
# Exit status: 0 when everything is there afterwards, 1 otherwise.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive
need=(qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio depmod:kmod
      modprobe:kmod xz:xz-utils zstd:zstd fuse-overlayfs:fuse-overlayfs apt-get:apt)
missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*} pkg=${pair#*:}
  # busybox must be the static build: it runs inside the initramfs, without the host's libc.
  if [ "$cmd" = busybox ]; then
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 && continue
  elif command -v "$cmd" >/dev/null 2>&1 || [ -x "/sbin/$cmd" ] || [ -x "/usr/sbin/$cmd" ]; then
    continue
  fi
  missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "vmtest: installing ${missing[*]}" >&2
if [ "$(id -u)" != 0 ]; then
  echo "vmtest: not root, cannot install ${missing[*]}" >&2
  exit 1
fi
timeout 300 apt-get update -q >/dev/null 2>&1 || echo "vmtest: apt-get update failed" >&2
timeout 600 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
  echo "vmtest: apt-get install ${missing[*]} failed" >&2
  exit 1
}
exit 0
