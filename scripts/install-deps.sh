#!/usr/bin/env bash
# Installs what building netbpf needs on Debian 12 (run as root). Idempotent.
#   clang            compiles src/bpf/*.bpf.c (libbpf's BPF headers ship with libbpf-cargo)
#   make pkg-config  build the vendored libbpf (libbpf-sys)
#   libelf-dev zlib1g-dev  libbpf links them
#   iproute2         `ip`, used by the tests to make veth pairs between test namespaces
#   cargo-web        Debian's recent Rust toolchain, only when no cargo is on PATH
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
packages=(clang make pkg-config libelf-dev zlib1g-dev util-linux iproute2)
command -v cargo >/dev/null 2>&1 || packages+=(cargo-web)
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
