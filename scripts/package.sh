#!/usr/bin/env bash
# Builds every release artifact into target/package/ (run as root on Debian 12):
#   netbpf-VERSION-x86_64-linux   fully static binary
#   netbpf_VERSION_amd64.deb      that binary, man pages, completions, exporter unit and config,
#                                 tool-name links in /usr/lib/netbpf/bin (cargo-deb)
#   netbpf-VERSION-oci.tar        OCI image from scratch holding that binary (podman)
# Kubernetes manifests are plain files in contrib/kubernetes/. scripts/check-packages.sh tests
# all of them.
#
# Why static glibc and not musl: the musl Rust target cannot be had here (rustup downloads only
# from the internet, and Debian ships no musl standard library), so the binary is linked with
# `-C target-feature=+crt-static` for x86_64-unknown-linux-gnu, with the vendored libbpf and
# Debian's libelf.a and libz.a (libbpf-sys's `static` feature; Debian 12's libelf needs nothing
# else). netbpf resolves no host or user names, so nothing reaches glibc's NSS or dlopen at run
# time; the link step's warnings would name getaddrinfo/getpwnam/dlopen if anything did, and this
# script fails if it sees one. Not position-independent (-C relocation-model=static): a static-pie
# binary is one ldd still runs through the loader ("statically linked"); a plain static one is
# "not a dynamic executable", nothing of the loader involved. The stack, heap and mappings stay
# randomized; the binary's own text does not.
# Its own target directory (target/static), so that it and the developers' `cargo build
# --release` do not rebuild each other's dependencies over different RUSTFLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

target=x86_64-unknown-linux-gnu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=target/package
staging=$out/staging
tools_root=/var/cache/netbpf/cargo-tools
cargo_deb_version=3.6.2

need_apt=()
for p in podman debootstrap; do command -v "$p" >/dev/null || need_apt+=("$p"); done
[ -e /usr/lib/x86_64-linux-gnu/libelf.a ] || need_apt+=(libelf-dev)
[ -e /usr/lib/x86_64-linux-gnu/libz.a ] || need_apt+=(zlib1g-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
	apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! "$tools_root/bin/cargo-deb" --version 2>/dev/null | grep -q "$cargo_deb_version"; then
	cargo install --locked --quiet --root "$tools_root" cargo-deb --version "$cargo_deb_version"
fi

head -1 contrib/debian/changelog | grep -qF "netbpf ($version-" || {
	echo "package.sh: contrib/debian/changelog has no entry for $version" >&2
	exit 1
}
rm -rf "$out"
mkdir -p "$staging/links"

# 1. The static binary.
echo "== static binary"
static_dir=target/static
CARGO_TARGET_DIR=$static_dir LIBBPF_SYS_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu \
	RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
	cargo build --release --locked --features static --target "$target" --bin netbpf \
	2> >(tee "$staging/build.log" >&2)
bin=$static_dir/$target/release/netbpf
if grep -Eq "statically linked applications requires at runtime" "$staging/build.log"; then
	echo "package.sh: the static binary calls into NSS or dlopen (see the warning above)" >&2
	exit 1
fi
ldd_says=$(ldd "$bin" 2>&1 || true)
if [[ $ldd_says != *"not a dynamic executable"* ]]; then
	echo "$ldd_says" >&2
	echo "package.sh: $bin is not static" >&2
	exit 1
fi
cp "$bin" "$out/netbpf-$version-x86_64-linux"

# 2. Man pages and completions, from the tools' clap Commands (a debug build is enough).
echo "== man pages and completions"
cargo run --quiet --locked --example package-docs -- "$staging"

# 3. The .deb.
echo "== deb"
sed -e 's|/usr/local/bin/netbpf|/usr/sbin/netbpf|' \
	-e 's|file:///usr/local/share/doc/netbpf/|file:///usr/share/doc/netbpf/|' \
	contrib/netbpf-exporter.service >"$staging/netbpf-exporter.service"
# /usr/lib/netbpf/bin/NAME -> ../../../sbin/netbpf for every name netbpf answers to (aliases
# included): netbpf --install-links makes the set, the links are then made relative.
"$bin" --install-links "$staging/links" >/dev/null
for l in "$staging"/links/*; do ln -sfn ../../../sbin/netbpf "$l"; done
cat >"$staging/lintian-overrides" <<'OVERRIDES'
# Static on purpose (scripts/package.sh says why): one binary that runs on any Debian userland.
netbpf: statically-linked-binary [usr/sbin/netbpf]
netbpf: embedded-library zlib [usr/sbin/netbpf]
OVERRIDES
CARGO_TARGET_DIR=$static_dir "$tools_root/bin/cargo-deb" --no-build --target "$target" --no-strip \
	--output "$out/netbpf_${version}_amd64.deb" >/dev/null

# 4. The OCI image, in podman storage of its own (the host's images are left alone).
echo "== oci image"
ctx=$staging/oci
mkdir -p "$ctx"
cp "$bin" "$ctx/netbpf"
cat >"$ctx/Containerfile" <<'CONTAINERFILE'
FROM scratch
COPY netbpf /usr/sbin/netbpf
ENTRYPOINT ["/usr/sbin/netbpf"]
CMD ["list"]
CONTAINERFILE
store=$(mktemp -d)
trap 'podman --root "$store/root" --runroot "$store/run" rmi -a -f >/dev/null 2>&1 || true; rm -rf "$store"' EXIT
podman="podman --root $store/root --runroot $store/run --storage-driver vfs"
$podman build --quiet --timestamp 0 \
	--label org.opencontainers.image.title=netbpf \
	--label org.opencontainers.image.version="$version" \
	-t "localhost/netbpf:$version" "$ctx" >/dev/null
$podman save --quiet --format oci-archive -o "$out/netbpf-$version-oci.tar" "localhost/netbpf:$version"

rm -rf "$ctx"
ls -l "$out"
