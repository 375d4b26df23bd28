//! The command line: bad input gets a clear error and a non-zero exit; list, help and the
//! multicall symlinks work.

mod common;

use common::{netbpf, netbpf_bin};
use std::os::fd::FromRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_tool_is_refused() {
    let o = netbpf(&["tcpfoo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown tool 'tcpfoo'"),
        "{}",
        stderr(&o)
    );
    assert_eq!(netbpf(&[]).status.code(), Some(2));
}

#[test]
fn unknown_option_is_refused() {
    for tool in ["tcplife", "tcpstates", "tcpconnect", "tcpaccept"] {
        let o = netbpf(&[tool, "--bogus"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(
            stderr(&o).contains("unexpected argument '--bogus'"),
            "{tool}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn bad_pid_is_refused() {
    let o = netbpf(&["tcplife", "-p", "abc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'abc' is not a process id"),
        "{}",
        stderr(&o)
    );
    // pid_max is at most 2^22, so this pid cannot exist.
    let o = netbpf(&["tcpconnect", "-p", "4999999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no process with pid 4999999"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_ports_and_families_are_refused() {
    let o = netbpf(&["tcplife", "-L", "80,http"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid port 'http'"), "{}", stderr(&o));
    let o = netbpf(&["tcplife", "-D", "1,2,3,4,5,6,7,8,9"]);
    assert!(stderr(&o).contains("at most 8 ports"), "{}", stderr(&o));
    let o = netbpf(&["tcpaccept", "-4", "-6"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = netbpf(&["tcplife", "--duration", "-3"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_netns_is_refused() {
    let o = netbpf(&["tcplife", "--netns", "/nonexistent/netns"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--netns: netns '/nonexistent/netns': No such file or directory"),
        "{}",
        stderr(&o)
    );
    let o = netbpf(&["tcpstates", "--netns", "/proc/self/status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a network namespace"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn not_root_is_refused_clearly() {
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(netbpf_bin())
        .args(["tcplife", "-d", "1"])
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("tcplife needs root"), "{}", stderr(&o));
}

#[test]
fn list_is_honest_about_this_kernel() {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for tool in ["tcplife", "tcpstates", "tcpconnect", "tcpaccept"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains(" ok "), "{line}");
    }
    // Every plan is shown with a verdict.
    assert!(out.contains("chosen"), "{out}");
}

#[test]
fn help_and_multicall_symlink() {
    let o = netbpf(&["tcplife", "--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Examples:"));

    let dir = std::env::temp_dir().join(format!("netbpf-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = netbpf(&["--install-links", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new(dir.join("tcpconnect"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Usage: tcpconnect"), "{help}");
    let o = Command::new(dir.join("tcplife"))
        .args(["-p", "abc"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duration_ends_the_run_cleanly() {
    let start = std::time::Instant::now();
    let o = netbpf(&["tcplife", "-d", "0.5", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let took = start.elapsed().as_secs_f64();
    // The upper bound only tells a run that ended by itself from one that hung: it includes
    // loading and verifying the programs, which takes over 10 s in an emulated VM (vmtest/).
    assert!((0.5..60.0).contains(&took), "took {took}s");
}

#[test]
fn unmounted_tracefs_is_mounted_and_said() {
    // A private mount namespace: unmounting tracefs there leaves the host's alone. Where
    // debugfs is mounted (stock systemd systems), its tracing/ directory mounts tracefs again
    // on first access, so debugfs goes too. tcpaccept's tracepoint plan is asked for: on
    // kernels with fentry, tcpaccept's best plan needs no tracefs.
    let script = format!(
        "umount /sys/kernel/debug/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         umount /sys/kernel/tracing 2>/dev/null; \
         test -d /sys/kernel/tracing/events -o -d /sys/kernel/debug/tracing/events && exit 99; \
         exec env NETBPF_PLAN=tracepoint {} tcpaccept -d 0.3",
        netbpf_bin().display()
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mounted tracefs at /sys/kernel/tracing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // stdout is a pipe whose reader is already gone: the first write gets EPIPE/SIGPIPE.
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is a fresh descriptor this test owns; Stdio takes it over.
    let write_end = unsafe { std::process::Stdio::from_raw_fd(fds[1]) };
    let o = Command::new(netbpf_bin())
        .args(["list", "--verbose"])
        .stdout(write_end)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
}
