#!/usr/bin/env bash
# Installs what building netbpf needs on Debian 12 (run as root). Idempotent.
#   clang            compiles src/bpf/*.bpf.c (libbpf's BPF headers ship with libbpf-cargo)
#   make pkg-config  build the vendored libbpf (libbpf-sys)
#   libelf-dev zlib1g-dev  libbpf links them
#   iproute2         `ip`, used by the tests to make veth pairs between test namespaces
#   cargo-web        Debian's recent Rust toolchain, only when no cargo is on PATH
#   rustfmt-web rust-web-clippy  its formatter and linter (.ci/run checks both)
#   ca-certificates  cargo fetches crates over HTTPS (--no-install-recommends leaves it out)
#   iproute2         tc, for the qdisc tests (a tbf on a test namespace's lo)
#   iproute2         ip and tc: tests make a lossy loopback (tbf) in their own netns
#   util-linux       setpriv: the exporter test runs it as a user with CAP_BPF and CAP_PERFMON only
#   iputils-ping     test-only: superping's tests compare with ping's own round trips
#   iw               test-only: ieee80211scan's test scans with mac80211_hwsim radios (in the
#                    stock-kernel VMs, which run the host's binaries)
#   podman runc busybox-static  test-only: tests/containers.rs runs real containers (runc: crun
#                    refuses hybrid cgroup hosts) from an image built locally from busybox
#   dnsmasq-base bind9-dnsutils  test-only: dnslat's tests query a dnsmasq resolver in their
#                    namespace with dig (its own resolver), getent (glibc) and python
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(ca-certificates clang make pkg-config libelf-dev zlib1g-dev util-linux iproute2 iputils-ping iw
	podman runc busybox-static dnsmasq-base bind9-dnsutils)
command -v cargo >/dev/null 2>&1 || packages+=(cargo-web rustfmt-web rust-web-clippy)
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"

# Test-only: the Prometheus server the exporter's end-to-end test scrapes with. Unpacked into a
# cache directory rather than installed, so no system service is started.
prom_dir=/var/cache/netbpf/prometheus
if [ ! -x "$prom_dir/usr/bin/prometheus" ]; then
	mkdir -p /var/cache/netbpf
	(cd /var/cache/netbpf && apt-get download -q prometheus && rm -rf "$prom_dir" &&
		dpkg -x prometheus_*.deb "$prom_dir" && rm -f prometheus_*.deb)
fi
