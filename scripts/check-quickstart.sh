#!/usr/bin/env bash
# README's quick start in a fresh minimal Debian 12 root (debootstrap --variant=minbase, cached by
# scripts/debian-root.sh), run as root: `./scripts/install-deps.sh`, then `cargo build --release`
# and `cargo test --locked`. What it checks is that the system packages the README installs are
# enough, so cargo is fed the host's crate cache and runs --offline (the crates themselves are
# not under test). Bounded for CI:
#   - the release build runs without fat LTO (CARGO_PROFILE_RELEASE_LTO=false, 16 codegen units):
#     the same compilers, headers and libraries, minutes less on two cores;
#   - `cargo test --locked` runs the unit tests (--lib: they are what read the root's files);
#     NETBPF_QUICKSTART_FULL=1 runs the whole suite there instead.
# Ends with "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/checks.sh
repo=$PWD
work=$(mktemp -d /tmp/netbpf-check-quickstart.XXXXXX)
root=$work/root
trap 'rm -rf "$work"' EXIT

# in_root COMMAND...: in the root, from the checkout, with /proc, /sys, /dev and /run/netns (the
# tests make network namespaces), in a mount namespace of its own.
in_root() {
	chroot_run --empty-run "$root" TERM=dumb CARGO_NET_OFFLINE=true sh -c "cd /root/netbpf && $*"
}

setup() {
	scripts/debian-root.sh bookworm "$root" || return 1
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	# The checkout as a new user has it: tracked files, no target/.
	mkdir "$root/root/netbpf"
	git ls-files -z | xargs -0 cp --parents -t "$root/root/netbpf" || return 1
	mkdir -p "$root/root/.cargo"
	cp -r "${CARGO_HOME:-$HOME/.cargo}/registry" "$root/root/.cargo/"
}

install_deps() {
	in_root ./scripts/install-deps.sh && in_root cargo --version
}

build_release() {
	in_root CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
		cargo build --release --locked --offline &&
		in_root ./target/release/netbpf list
}

run_tests() {
	if [ "${NETBPF_QUICKSTART_FULL:-0}" = 1 ]; then
		in_root cargo test --locked --offline
	else
		in_root cargo test --locked --offline --lib
	fi
}

check quickstart-setup setup
check quickstart-install-deps install_deps
check quickstart-build-release build_release
check quickstart-tests run_tests
checks_summary
