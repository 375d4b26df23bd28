//! Every tool's BPF object relocated against the BTF of each kernel of the test matrix (CO-RE
//! only, `netbpf list --btf`): a field, type or enum value one of those kernels lacks, read where
//! nothing in the program guards it, fails here on the host in seconds, naming the tool, plan,
//! program and access, long before a VM boots that kernel.
//!
//! What each kernel is known to lack is in tests/relocations/<series>.txt, with the reason the
//! tool still works there (the plan is never chosen on that kernel, or the tool refuses there).
//! The kernels' BTF comes from the packages vmtest/setup.sh caches (their vmlinux); the host's
//! from /sys/kernel/btf/vmlinux. Without the cache the kernel's test says so and passes, unless
//! NETBPF_REQUIRE_KERNEL_BTF is set (CI prepares the cache first and sets it).

mod common;

use std::path::{Path, PathBuf};

use common::netbpf;

const KERNELS: &str = "/var/cache/netbpf-vmtest/kernels";

/// The newest cached kernel of a series ("6.1" -> 6.1.0-57-amd64, never 6.12).
fn cached_vmlinux(series: &str) -> Option<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(KERNELS)
        .ok()?
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix(&format!("{series}."))?;
            let vmlinux = Path::new(KERNELS).join(&name).join("vmlinux");
            // Order by the numbers in the version: 6.1.0-57 after 6.1.0-9.
            let key = name
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            vmlinux.is_file().then_some((key, vmlinux))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// The accesses `netbpf list --btf` reports unresolved and unguarded, one per line.
fn unresolved(btf: &Path) -> Vec<String> {
    let out = netbpf(&["list", "--btf", btf.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "netbpf list --btf {} failed ({}):\n{stdout}\n{}",
        btf.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every plan of every tool is named, either "ok" or with what it lacks.
    for tool in ["tcplife", "tcpretrans", "qdisc", "dnslat", "skbdrop"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{tool} "))),
            "{tool} missing from the relocation report:\n{stdout}"
        );
    }
    stdout
        .lines()
        .filter(|l| !l.ends_with(": ok"))
        .map(str::to_string)
        .collect()
}

fn expected(series: &str) -> Option<Vec<String>> {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/relocations")
        .join(format!("{series}.txt"));
    let text = std::fs::read_to_string(file).ok()?;
    Some(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Compares what `btf` lacks with what the series is known to lack, both ways.
fn check(series: &str, btf: &Path) {
    let want = expected(series).unwrap_or_else(|| panic!("no tests/relocations/{series}.txt"));
    let got = unresolved(btf);
    let new: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    let gone: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "relocations against {series} ({}) changed.\n\
         Unresolved and unguarded now (a program that reads these fails to load on {series} \
         unless its plan is never chosen there; guard the access or add a CO-RE flavour):\n  {}\n\
         Listed in tests/relocations/{series}.txt but resolved now (remove them):\n  {}",
        btf.display(),
        new.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// A kernel of the VM matrix, from the cached package.
fn check_cached(series: &str) {
    if std::env::var_os("NETBPF_VMTEST_KERNEL").is_some() {
        // In a VM the host's files are the same: the host run covers this.
        return;
    }
    match cached_vmlinux(series) {
        Some(vmlinux) => check(series, &vmlinux),
        None if std::env::var_os("NETBPF_REQUIRE_KERNEL_BTF").is_some() => {
            panic!("no cached {series} kernel in {KERNELS} (vmtest/setup.sh {series} makes it)")
        }
        None => eprintln!(
            "SKIPPED: no cached {series} kernel in {KERNELS}: run `vmtest/setup.sh {series}` \
             to check relocations against it"
        ),
    }
}

#[test]
fn relocations_on_debian_11_5_10() {
    check_cached("5.10");
}

#[test]
fn relocations_on_debian_12_6_1() {
    check_cached("6.1");
}

#[test]
fn relocations_on_debian_12_6_12() {
    check_cached("6.12");
}

#[test]
fn relocations_on_debian_13_backports_7_3() {
    check_cached("7.3");
}

/// The running kernel's own BTF, where the series has a list (the build host's 6.18).
#[test]
fn relocations_on_this_kernel() {
    if std::env::var_os("NETBPF_VMTEST_KERNEL").is_some() {
        return;
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let series: String = release
        .trim()
        .split('.')
        .take(2)
        .map(|n| n.trim_end_matches(|c: char| !c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(".");
    if expected(&series).is_none() {
        eprintln!("SKIPPED: no tests/relocations/{series}.txt for this kernel ({release})");
        return;
    }
    check(&series, Path::new("/sys/kernel/btf/vmlinux"));
}

/// A file that is not BTF, or not a file, is one clear error, not a report of every tool failing.
#[test]
fn relocations_need_a_btf_file() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    for (file, says) in [
        (manifest, "no BTF could be read from it"),
        ("/dev/null", "not a regular file"),
        ("/nonexistent/vmlinux", "No such file or directory"),
    ] {
        let out = netbpf(&["list", "--btf", file]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(says),
            "{file}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{file}: printed a report");
    }
    let out = netbpf(&["list", "--btf"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
