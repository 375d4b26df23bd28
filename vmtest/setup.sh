#!/usr/bin/env bash
# Fetches stock Debian kernels into the cache and prepares them for run.sh:
#   CACHE/debs/linux-image-KVER-unsigned_*.deb        the package (kept: re-setup works offline)
#   CACHE/kernels/KVER/vmlinux                         uncompressed ELF, booted through PVH
#   CACHE/kernels/KVER/root/lib/modules/KVER           the package's modules (+ depmod)
#   CACHE/kernels/KVER/initramfs.cpio.gz               busybox + the 9p/virtio/overlay modules + init
#
# Usage: setup.sh [KERNEL...]     KERNEL: a series (5.10, 6.1, 6.12, 7.3: the newest -amd64
#                                 kernel of that series that the archive offers) or a package
#                                 name (linux-image-6.1.0-56-amd64-unsigned). Default: 6.1 6.12.
# Packages come through a private apt configuration (CACHE/apt: its own sources, lists and
# cache; the system's sources are never read or changed): Debian 11's bullseye-security (5.10),
# Debian 12's bookworm and bookworm-security (6.1, 6.12) and trixie-backports (7.x, whose kernel
# is split: linux-binary-KVER holds it, linux-modules-KVER the modules, linux-base-KVER config).
# Prints one "KERNEL KVER" line per kernel ready. CACHE: $NETBPF_VMTEST_CACHE, default
# /var/cache/netbpf-vmtest. Exit: 0 all ready, 3 a kernel could not be had (apt unreachable and
# nothing cached), 1 other failure.
#
# Why -amd64-unsigned: the -cloud-amd64 flavour has no 9p (CONFIG_NET_9P unset) and no Wi-Fi.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${NETBPF_VMTEST_CACHE:-/var/cache/netbpf-vmtest}
[ $# -gt 0 ] || set -- 6.1 6.12
log() { echo "vmtest setup: $*" >&2; }

for cmd in dpkg-deb depmod modprobe cpio gzip xz zstd; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/sbin/$cmd" ] || {
    log "$cmd missing (run vmtest/install-deps.sh)"; exit 3; }
done
[ -x /bin/busybox ] || { log "/bin/busybox missing (busybox-static)"; exit 3; }
mkdir -p "$CACHE/debs" "$CACHE/kernels"
exec 9>"$CACHE/.lock"
flock -w 900 9 || { log "another setup holds $CACHE/.lock"; exit 1; }
export PATH=$PATH:/sbin:/usr/sbin

APTD=$CACHE/apt
mkdir -p "$APTD/lists/partial" "$APTD/cache/archives/partial" "$APTD/sources.list.d"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
MIRROR=${NETBPF_VMTEST_MIRROR:-http://deb.debian.org}
cat > "$APTD/sources.list" <<SRC
deb [signed-by=$KEYRING] $MIRROR/debian bookworm main
deb [signed-by=$KEYRING] $MIRROR/debian-security bookworm-security main
deb [signed-by=$KEYRING] $MIRROR/debian-security bullseye-security main
deb [signed-by=$KEYRING] $MIRROR/debian trixie-backports main
SRC
cat > "$APTD/apt.conf" <<CONF
Dir::Etc::sourcelist "$APTD/sources.list";
Dir::Etc::sourceparts "$APTD/sources.list.d";
Dir::State::Lists "$APTD/lists";
Dir::Cache "$APTD/cache";
Acquire::Languages "none";
APT::Architectures { "amd64"; };
CONF
export APT_CONFIG=$APTD/apt.conf

# The package for a series, from apt's lists; empty when apt does not know it.
resolve() {
  local spec=$1
  case "$spec" in
    linux-image-*-unsigned) echo "$spec"; return ;;
  esac
  local v=${spec//./\\.} p
  p=$({ apt-cache search --names-only "^linux-image-$v[.-][0-9.]*(-[0-9]+)?(\\+deb[0-9]+)?-amd64-unsigned\$" \
        2>/dev/null || true; } | awk '{print $1}' | sort -V | tail -1)
  # The split layout (trixie-backports' 7.x): named by its linux-binary package.
  [ -n "$p" ] || p=$({ apt-cache search --names-only "^linux-binary-$v[.-][0-9.]*(\\+deb[0-9]+)?-amd64\$" \
        2>/dev/null || true; } | awk '{print $1}' | sort -V | tail -1)
  echo "$p"
}

# Newest kernel of a series already prepared in the cache (offline fallback).
cached() {
  local spec=$1 d
  case "$spec" in linux-image-*) spec=${spec#linux-image-}; spec=${spec%-unsigned} ;; esac
  for d in $(ls -d "$CACHE/kernels/$spec"[.-]* "$CACHE/kernels/$spec" 2>/dev/null | sort -V -r); do
    [ -f "$d/vmlinux" ] && [ -d "$d/root/lib/modules" ] && { basename "$d"; return; }
  done
}

# vmlinuz (bzImage) -> vmlinux: the payload is one xz (6.1) or zstd (6.12) stream at some offset.
# An ELF vmlinux lets qemu's microvm boot it through PVH, skipping the decompressor under TCG.
extract_vmlinux() {
  local bz=$1 out=$2 off
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -1 | cut -d: -f1 || true)
  if [ -n "$off" ]; then
    tail -c +$((off + 1)) "$bz" | xz -dc --single-stream > "$out" 2>/dev/null || true
  fi
  if [ "$(head -c4 "$out" 2>/dev/null | od -An -c | tr -d ' ')" != '177ELF' ]; then
    off=$(LC_ALL=C grep -obUaP '\x28\xb5\x2f\xfd' "$bz" | head -1 | cut -d: -f1 || true)
    [ -n "$off" ] || return 1
    # zstd complains about the bytes after the frame; the output is complete by then.
    tail -c +$((off + 1)) "$bz" | zstd -qdc > "$out" 2>/dev/null || true
  fi
  [ "$(head -c4 "$out" | od -An -c | tr -d ' ')" = '177ELF' ]
}

# The packages a kernel comes in: one linux-image-KVER-unsigned, or (split layout) its
# linux-binary, linux-modules and linux-base.
packages_of() {
  case "$1" in
    linux-binary-*) local k=${1#linux-binary-}; echo "$1 linux-modules-$k linux-base-$k" ;;
    *) echo "$1" ;;
  esac
}

kver_of() {
  local k=${1#linux-image-}
  k=${k#linux-binary-}
  echo "${k%-unsigned}"
}

prepare() {
  local pkg=$1 kver
  kver=$(kver_of "$pkg")
  local d=$CACHE/kernels/$kver
  if [ ! -f "$d/vmlinux" ] || [ ! -f "$d/root/lib/modules/$kver/modules.dep" ]; then
    local deb debs=() p
    for p in $(packages_of "$pkg"); do
      deb=$(ls "$CACHE/debs/${p}_"*.deb 2>/dev/null | sort -V | tail -1 || true)
      if [ -z "$deb" ]; then
        log "downloading $p"
        (cd "$CACHE/debs" && timeout 600 apt-get download "$p" >/dev/null 2>&1) || {
          log "apt-get download $p failed"; return 3; }
        deb=$(ls "$CACHE/debs/${p}_"*.deb | sort -V | tail -1)
      fi
      debs+=("$deb")
    done
    rm -rf "$d" && mkdir -p "$d/root"
    for deb in "${debs[@]}"; do
      log "extracting $deb"
      dpkg-deb -x "$deb" "$d/root"
    done
    rm -rf "$d/root/usr/share/doc"
    # The split layout installs under usr/lib only (merged /usr).
    [ -e "$d/root/lib" ] || ln -s usr/lib "$d/root/lib"
    depmod -b "$d/root" "$kver"
    local vmlinuz=$d/root/boot/vmlinuz-$kver
    [ -f "$vmlinuz" ] || vmlinuz=$d/root/usr/lib/modules/$kver/vmlinuz
    extract_vmlinux "$vmlinuz" "$d/vmlinux.tmp" || {
      log "could not extract an ELF vmlinux from vmlinuz-$kver"; rm -f "$d/vmlinux.tmp"; return 1; }
    mv "$d/vmlinux.tmp" "$d/vmlinux"
  fi
  build_initramfs "$kver" "$d"
  echo "$kver"
}

# busybox, init, and the modules needed to reach the host root, in dependency order (busybox
# insmod does not resolve dependencies: virtio before virtio_ring fails with "unknown symbol").
# Rebuilt only when init, busybox or this script changed.
build_initramfs() {
  local kver=$1 d=$2 sum
  sum=$(cat "$HERE/init" "$0" /bin/busybox | sha256sum | cut -c1-16)
  [ -f "$d/initramfs.cpio.gz" ] && [ "$(cat "$d/initramfs.sum" 2>/dev/null)" = "$sum" ] && return 0
  local r=$d/initramfs.d
  rm -rf "$r" && mkdir -p "$r"/{bin,dev,proc,sys,host,newroot,rw,lib/modules}
  cp /bin/busybox "$r/bin/busybox"
  : > "$r/lib/modules/order"
  local m ko b
  for m in virtio_mmio virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$d/root" -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    b=$(basename "$ko")
    case "$b" in
      *.ko.xz) xz -dc "$ko" > "$r/lib/modules/${b%.xz}"; b=${b%.xz} ;;
      *.ko.zst) zstd -qdc "$ko" > "$r/lib/modules/${b%.zst}"; b=${b%.zst} ;;
      *) cp "$ko" "$r/lib/modules/$b" ;;
    esac
    echo "$b" >> "$r/lib/modules/order"
  done
  grep -q '^9p\.ko$' "$r/lib/modules/order" || grep -q '/9p\.ko' "$d/root/lib/modules/$kver/modules.builtin" || {
    log "$kver: no 9p module (a -cloud kernel?)"; return 1; }
  cp "$HERE/init" "$r/init" && chmod 755 "$r/init"
  (cd "$r" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > "$d/initramfs.cpio.gz.tmp")
  mv "$d/initramfs.cpio.gz.tmp" "$d/initramfs.cpio.gz"
  echo "$sum" > "$d/initramfs.sum"
  log "$kver: initramfs with $(wc -l < "$r/lib/modules/order") modules: $(tr '\n' ' ' < "$r/lib/modules/order")"
  rm -rf "$r"
}

# Only the newest kernel of a series is kept: Debian replaces its ABI every few weeks.
prune() {
  local spec=$1 kver=$2 d deb
  case "$spec" in linux-image-*) return ;; esac
  for d in "$CACHE/kernels/$spec"[.-]*; do
    [ -d "$d" ] && [ "$(basename "$d")" != "$kver" ] && { log "removing the older $(basename "$d")"; rm -rf "$d"; }
  done
  for deb in "$CACHE/debs/linux-"{image,binary,modules,base}-"$spec"[.-]*.deb; do
    [ -f "$deb" ] && [[ "$(basename "$deb")" != linux-*-"$kver"[-_]* ]] && rm -f "$deb"
  done
  return 0
}

UPDATED=
apt_update() {
  [ -z "$UPDATED" ] || return 1
  UPDATED=1
  log "apt-get update"
  timeout 300 apt-get update -q >/dev/null 2>&1 || log "apt-get update (private sources) failed"
}

rc=0
for spec in "$@"; do
  pkg=$(resolve "$spec")
  # Lists never fetched, or too old to name a package the mirror still has: update once.
  if [ -z "$pkg" ] && apt_update; then pkg=$(resolve "$spec"); fi
  kver=
  if [ -n "$pkg" ]; then
    kver=$(prepare "$pkg") || {
      r=$?
      kver=
      if [ $r -eq 3 ] && apt_update; then
        pkg=$(resolve "$spec")
        [ -z "$pkg" ] || kver=$(prepare "$pkg") || r=$?
      fi
      [ -n "$kver" ] || { log "$spec: ${pkg:-no package} could not be prepared"; [ $r -eq 3 ] || rc=1; }
    }
    [ -z "$kver" ] || prune "$spec" "$kver"
  fi
  if [ -z "$kver" ]; then
    kver=$(cached "$spec")
    if [ -n "$kver" ]; then
      [ -n "$pkg" ] || log "$spec: apt does not offer it now; using the cached $kver"
      build_initramfs "$kver" "$CACHE/kernels/$kver" || { rc=1; continue; }
    else
      log "$spec: no package from apt and nothing cached"
      [ $rc -ne 0 ] || rc=3
      continue
    fi
  fi
  echo "$spec $kver"
done
exit $rc
