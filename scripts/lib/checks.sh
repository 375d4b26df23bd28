# Sourced by the scripts/check-*.sh scripts: a check runner that counts passes and failures, and
# a chroot runner for fresh Debian roots. The sourcing script sets $work (a scratch directory).
passed=0
failed=0

# check NAME COMMAND...: runs one check, its output kept in $work/NAME.log and shown on failure.
check() {
	local name=$1 start=$SECONDS
	shift
	if "$@" >"$work/$name.log" 2>&1; then
		passed=$((passed + 1))
		echo "PASS $name ($((SECONDS - start)) s)"
	else
		failed=$((failed + 1))
		echo "FAIL $name ($((SECONDS - start)) s)"
		sed 's/^/    /' "$work/$name.log" | tail -40
	fi
}

# checks_summary: "N passed, M failed"; fails if any check failed.
checks_summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}

# chroot_run [--empty-run] ROOT COMMAND...: COMMAND chrooted in ROOT with a clean environment
# (PATH, HOME, and any NAME=VALUE words COMMAND starts with), /proc, /sys and /dev, and with
# --empty-run a tmpfs on /run, in a mount namespace of its own (the mounts go away with it).
chroot_run() {
	local empty_run=0
	if [ "$1" = --empty-run ]; then
		empty_run=1
		shift
	fi
	unshare --mount --propagation private -- sh -c '
		empty_run=$1 root=$2; shift 2
		mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" &&
			mount --rbind /dev "$root/dev" || exit 1
		if [ "$empty_run" = 1 ]; then mount -t tmpfs tmpfs "$root/run" || exit 1; fi
		exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"
	' sh "$empty_run" "$@"
}
