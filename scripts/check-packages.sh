#!/usr/bin/env bash
# Checks what scripts/package.sh built in target/package/ (run as root, after it; CI runs both):
#   the static binary in fresh minimal Debian 11, 12 and 13 roots; the .deb installed, used and
#   purged in a fresh Debian 12 root, lintian, its man pages and completions; the OCI image under
#   podman with only the capabilities the DaemonSet grants; the Kubernetes manifests rendered and
#   validated. Ends with "N passed, M failed" (exit 1 if any failed).
# Minimal roots come from scripts/debian-root.sh (cached under /var/cache/netbpf/roots).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/checks.sh
export DEBIAN_FRONTEND=noninteractive
repo=$PWD
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
pkg=$repo/target/package
static_bin=$pkg/netbpf-$version-x86_64-linux
deb=$pkg/netbpf_${version}_amd64.deb
oci=$pkg/netbpf-$version-oci.tar
venv=/var/cache/netbpf/venv-kubernetes-validate
work=$(mktemp -d /tmp/netbpf-check-packages.XXXXXX)
netns=netbpf-pkgcheck-$$

cleanup() {
	ip netns del "$netns" 2>/dev/null
	[ -n "${podman_store:-}" ] && podman --root "$podman_store/root" --runroot "$podman_store/run" \
		--storage-driver vfs rm -a -f >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

# A connect() that the tools see, in a network namespace of this script's own: a refused
# connection to 127.0.0.1:PORT (the SYN is sent, the RST comes back).
connect_refused() {
	ip netns exec "$netns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
	true
}

# tool_sees_connect OUTPUT_FILE PORT COMMAND...: runs COMMAND (netbpf tcpconnect -P PORT -d 6,
# however started) in the background, connects once it has printed its header, then wants a
# line for that connect, refused (the port is closed).
tool_sees_connect() {
	local out=$1 port=$2
	shift 2
	"$@" >"$out" 2>&1 &
	local pid=$! i
	for i in $(seq 50); do
		grep -q DPORT "$out" && break
		sleep 0.2
	done
	connect_refused "$port"
	wait "$pid" || { cat "$out"; return 1; }
	cat "$out"
	grep -Eq "127\.0\.0\.1 +$port +ECONNREFUSED\$" "$out"
}

prepare() {
	local need=()
	for c in podman:podman runc:runc debootstrap:debootstrap lintian:lintian man:man-db \
		zsh:zsh fish:fish; do
		command -v "${c%%:*}" >/dev/null || need+=("${c#*:}")
	done
	command -v kubectl >/dev/null || need+=(kubernetes-client)
	[ -e /usr/lib/python3/dist-packages/pip ] || need+=(python3-pip python3-venv)
	if [ ${#need[@]} -gt 0 ]; then
		apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null || return 1
	fi
	if [ ! -x "$venv/bin/kubernetes-validate" ]; then
		/usr/bin/python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate || return 1
	fi
	ip netns add "$netns" && ip -n "$netns" link set lo up
}

static_is_static() {
	file "$static_bin"
	local ldd_says
	ldd_says=$(ldd "$static_bin" 2>&1)
	echo "ldd: $ldd_says"
	[[ $ldd_says == *"not a dynamic executable"* ]]
}

# The static binary in a fresh minimal root of SUITE: netbpf list finds tools it can run, and
# tcpconnect sees a connect.
static_in_root() {
	local suite=$1 root=$work/root-$1
	scripts/debian-root.sh "$suite" "$root" || return 1
	cp "$static_bin" "$root/usr/sbin/netbpf"
	chroot_run "$root" netbpf list >"$work/list-$suite" || { cat "$work/list-$suite"; return 1; }
	cat "$work/list-$suite"
	grep -Eq '^tcpconnect +ok ' "$work/list-$suite" || return 1
	tool_sees_connect "$work/tool-$suite" 47391 chroot_run "$root" netbpf tcpconnect -P 47391 -d 6
	local rc=$?
	rm -rf "$root"
	return $rc
}

# Every path in ROOT (one file system), but dpkg's own records and logs.
root_files() {
	(cd "$1" && find . -xdev \( -path ./var/lib/dpkg -o -path ./var/log -o -path ./proc \
		-o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./var/cache/debconf \) -prune \
		-o -print | sort)
}

deb_install_use_purge() {
	local root=$work/root-deb
	scripts/debian-root.sh bookworm "$root" || return 1
	root_files "$root" >"$work/files-before"
	cp "$deb" "$root/tmp/netbpf.deb"
	chroot_run "$root" dpkg -i /tmp/netbpf.deb || return 1
	rm "$root/tmp/netbpf.deb"
	chroot_run "$root" netbpf --version || return 1
	chroot_run "$root" netbpf list >"$work/deb-list"
	head -5 "$work/deb-list"
	grep -Eq '^tcpconnect +ok ' "$work/deb-list" || return 1
	# A tool by its link name, as the README puts /usr/lib/netbpf/bin on PATH.
	tool_sees_connect "$work/deb-tool" 47392 chroot_run "$root" \
		/usr/lib/netbpf/bin/tcpconnect -P 47392 -d 6 || return 1
	test -f "$root/etc/netbpf/exporter.toml" && test -f "$root/lib/systemd/system/netbpf-exporter.service" || return 1
	grep -q '^ExecStart=/usr/sbin/netbpf exporter' "$root/lib/systemd/system/netbpf-exporter.service" || return 1
	chroot_run "$root" dpkg --purge netbpf || return 1
	root_files "$root" >"$work/files-after"
	echo "files left or missing after purge:"
	diff "$work/files-before" "$work/files-after"
	local rc=$?
	rm -rf "$root"
	return $rc
}

deb_lintian() {
	lintian --allow-root --fail-on error "$deb"
}

deb_contents() {
	dpkg-deb -c "$deb" | awk '{ print $6, $7, $8 }' >"$work/deb-contents"
	head -20 "$work/deb-contents"
	local need
	for need in ./usr/sbin/netbpf ./usr/share/man/man8/netbpf.8.gz \
		./usr/share/man/man8/netbpf-tcplife.8.gz ./usr/share/bash-completion/completions/netbpf \
		./usr/share/zsh/vendor-completions/_netbpf ./usr/share/fish/vendor_completions.d/netbpf.fish \
		"./usr/lib/netbpf/bin/tcplife -> ../../../sbin/netbpf" \
		"./usr/lib/netbpf/bin/qdisc-fq -> ../../../sbin/netbpf"; do
		grep -qxF "$need" <(sed 's/ *$//' "$work/deb-contents") || { echo "missing: $need"; return 1; }
	done
	# Nothing outside netbpf's own directories and the shared completion/man/doc ones.
	! grep -E '^\./usr/s?bin/[^n ]' "$work/deb-contents"
}

man_pages_render() {
	local x=$work/deb-x page n=0 warnings want
	dpkg-deb -x "$deb" "$x" || return 1
	for page in "$x"/usr/share/man/man8/*.8.gz; do
		warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		[ -z "$warnings" ] || { echo "$page: $warnings"; return 1; }
		# Each tool's page has its examples; netbpf(8) has the usage netbpf --help prints.
		case ${page##*/} in
		netbpf.8.gz) want=USAGE ;;
		netbpf-list.8.gz | netbpf-netns.8.gz | netbpf-exporter.8.gz) want=NAME ;;
		*) want=EXAMPLES ;;
		esac
		MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q "^$want" || {
			echo "$page: no $want section"; return 1; }
		n=$((n + 1))
	done
	echo "$n pages render"
	[ "$n" -gt 30 ]
}

completions_load() {
	local x=$work/deb-x
	# bash: the completion function completes tool names and a tool's options.
	bash -c '
		source "$1"
		COMP_WORDS=(netbpf tcpli); COMP_CWORD=1; COMP_LINE="netbpf tcpli"; COMP_POINT=${#COMP_LINE}
		_netbpf netbpf tcpli netbpf; echo "netbpf tcpli -> ${COMPREPLY[*]}"
		[[ " ${COMPREPLY[*]} " == *" tcplife "* ]] || exit 1
		COMP_WORDS=(netbpf tcplife --wi); COMP_CWORD=2; COMP_LINE="netbpf tcplife --wi"; COMP_POINT=${#COMP_LINE}
		_netbpf netbpf --wi tcplife; echo "netbpf tcplife --wi -> ${COMPREPLY[*]}"
		[[ " ${COMPREPLY[*]} " == *" --wide "* ]]
	' sh "$x/usr/share/bash-completion/completions/netbpf" || return 1
	zsh -n "$x/usr/share/zsh/vendor-completions/_netbpf" || return 1
	fish --no-execute "$x/usr/share/fish/vendor_completions.d/netbpf.fish"
}

# The image under podman, in storage of this script's own, as the DaemonSet runs it: every
# capability dropped but CAP_BPF and CAP_PERFMON, no seccomp filter (podman's default profile
# refuses raw_tp and tp_btf programs), no new privileges, read-only root, /sys/kernel/btf and
# /sys/kernel/tracing read-only.
podman_run() {
	podman --root "$podman_store/root" --runroot "$podman_store/run" --storage-driver vfs \
		run --rm --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
		--network "${network:-ns:/run/netns/$netns}" --cap-drop all --cap-add CAP_BPF,CAP_PERFMON \
		--security-opt no-new-privileges --security-opt seccomp=unconfined --read-only \
		-v /sys/kernel/btf:/sys/kernel/btf:ro -v /sys/kernel/tracing:/sys/kernel/tracing:ro \
		"localhost/netbpf:$version" "$@"
}

image_load() {
	podman_store=$work/podman
	podman --root "$podman_store/root" --runroot "$podman_store/run" --storage-driver vfs \
		load -i "$oci" && podman_run --version
}

image_list() {
	podman_run list | tee "$work/image-list"
	grep -Eq '^tcpconnect +ok ' "$work/image-list"
}

image_tool() {
	tool_sees_connect "$work/image-tool" 47393 podman_run tcpconnect -P 47393 -d 6
}

# The DaemonSet's exporter command in the container, on the host's network as the DaemonSet has
# it (in another network namespace net.core.default_qdisc cannot be read), on a free loopback
# port, scraped once.
image_exporter() {
	network=host podman_run exporter --listen=127.0.0.1:0 \
		--tools=tcplife,tcpstates,tcpretrans,tcpconnlat,tcprtt,tcpsynbl,skbdrop,socksize,qdisc \
		-d 20 >"$work/exporter.out" 2>&1 &
	local pid=$! i port= body=
	for i in $(seq 100); do
		port=$(sed -n 's|.* on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$work/exporter.out")
		[ -n "$port" ] && break
		sleep 0.2
	done
	[ -n "$port" ] && body=$(bash -c 'exec 3<>/dev/tcp/127.0.0.1/$1 &&
		printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' sh "$port")
	kill "$pid" 2>/dev/null
	wait "$pid"
	cat "$work/exporter.out"
	echo "$(grep -c '^netbpf_' <<<"$body") netbpf_ sample lines"
	grep -q '^netbpf_' <<<"$body" && ! grep -qi 'skipped\|error' "$work/exporter.out"
}

manifests_render() {
	kubectl kustomize contrib/kubernetes >"$work/rendered.yaml" && cat "$work/rendered.yaml"
}

# Core kinds against the Kubernetes schemas; the ServiceMonitor (a CRD kubernetes-validate does
# not carry) only against what the Service it selects offers.
manifests_validate() {
	"$venv/bin/kubernetes-validate" --strict --kubernetes-version 1.31 "$work/rendered.yaml" ||
		return 1
	"$venv/bin/python" - "$work/rendered.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {d["kind"]: d for d in docs}
ds, svc, sm = by_kind["DaemonSet"], by_kind["Service"], by_kind["ServiceMonitor"]
pod = ds["spec"]["template"]
assert sm["apiVersion"] == "monitoring.coreos.com/v1"
labels = pod["metadata"]["labels"]
assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), "Service selects no pod"
assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()), "ServiceMonitor selects no Service"
ports = {p["name"] for p in svc["spec"]["ports"]}
assert all(e["port"] in ports for e in sm["spec"]["endpoints"]), "ServiceMonitor port not in Service"
c = pod["spec"]["containers"][0]
sc = c["securityContext"]
assert not sc.get("privileged") and sc["capabilities"]["drop"] == ["ALL"], sc
assert sorted(sc["capabilities"]["add"]) == ["BPF", "PERFMON"], sc
assert not pod["spec"].get("hostPID"), "hostPID"
assert all(m.get("readOnly") for m in c["volumeMounts"]), "a host path is writable"
assert "memory" in c["resources"]["limits"] and "memory" in c["resources"]["requests"]
print("DaemonSet, Service and ServiceMonitor agree")
PY
}

check prepare prepare
check static-binary-is-static static_is_static
for suite in bullseye bookworm trixie; do
	check "static-binary-debian-$suite" static_in_root "$suite"
done
check deb-contents deb_contents
check deb-lintian deb_lintian
check deb-install-run-purge deb_install_use_purge
check man-pages-render man_pages_render
check completions-load completions_load
check image-load image_load
check image-list image_list
check image-tool image_tool
check image-exporter image_exporter
check manifests-render manifests_render
check manifests-validate manifests_validate
checks_summary
