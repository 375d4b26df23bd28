#!/usr/bin/env bash
# Usage: scripts/debian-root.sh SUITE DIR
# Unpacks a fresh minimal Debian root (debootstrap --variant=minbase from Debian's archive) of
# SUITE (bullseye, bookworm, trixie) into DIR, which must not exist yet. The debootstrapped root
# is cached as a tarball under /var/cache/netbpf/roots, so only the first run downloads; every
# later run starts from the same pristine root. Needs root and debootstrap.
set -euo pipefail
suite=${1:?usage: debian-root.sh SUITE DIR}
dir=${2:?usage: debian-root.sh SUITE DIR}
mirror=${NETBPF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=/var/cache/netbpf/roots
tarball=$cache/$suite-minbase.tar
mkdir -p "$cache"
if [ ! -s "$tarball" ]; then
	command -v debootstrap >/dev/null || { apt-get install -y -q --no-install-recommends debootstrap >/dev/null; }
	work=$(mktemp -d "$cache/.$suite.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	debootstrap --variant=minbase "$suite" "$work/root" "$mirror" >"$work/log" 2>&1 ||
		{ tail -20 "$work/log" >&2; echo "debian-root.sh: debootstrap $suite failed" >&2; exit 1; }
	# Drop the downloaded .debs: the root stays as minimal as a fresh install.
	rm -f "$work"/root/var/cache/apt/archives/*.deb
	tar -C "$work/root" -cf "$work/root.tar" .
	mv "$work/root.tar" "$tarball"
fi
mkdir "$dir"
tar -C "$dir" -xf "$tarball"
# APT sources as a fresh install (and Debian's container images) has them: debootstrap writes
# only SUITE main, without the security and point-release updates (Debian 12's cargo-web from
# bookworm main is too old for the crates netbpf locks).
cat >"$dir/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${NETBPF_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security} $suite-security main
SOURCES
