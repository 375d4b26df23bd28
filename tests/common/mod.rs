//! Test harness: a private network namespace per test, the real `netbpf` binary filtered to it,
//! and the `loadgen` example making traffic inside it.
#![allow(dead_code)]

pub mod dns;
pub mod exporter;
pub mod prometheus;
pub mod veth;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// The netbpf under test: this build's, or NETBPF_BIN (another build of the same source, e.g.
/// the static release binary of scripts/package.sh, which the VM suite in CI runs).
pub fn netbpf_bin() -> PathBuf {
    std::env::var_os("NETBPF_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_netbpf")))
}

pub fn loadgen_bin() -> PathBuf {
    // cargo test builds examples next to the binaries' deps dir.
    let p = PathBuf::from(env!("CARGO_BIN_EXE_netbpf"))
        .parent()
        .unwrap()
        .join("examples/loadgen");
    assert!(
        p.exists(),
        "{} missing: run the tests with `cargo test` (it builds examples)",
        p.display()
    );
    p
}

/// A fresh directory for one test's files, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("netbpf-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh network namespace with lo up, alive while this value lives.
pub struct Netns {
    file: File,
}

impl Netns {
    pub fn new() -> Netns {
        let file = thread::spawn(|| {
            // SAFETY: unshare affects only this short-lived thread.
            assert_eq!(
                unsafe { libc::unshare(libc::CLONE_NEWNET) },
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            set_lo_up();
            File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap();
        Netns { file }
    }

    /// A path naming this namespace, for `--netns`.
    pub fn path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.file.as_raw_fd())
    }

    /// This namespace's id (its cookie, or its inode before 5.12: netbpf::core::netns::IdKind),
    /// for `--netns ID`: unlike a path, the tool then makes no socket inside the namespace to
    /// learn it (which a socket-counting tool would see). A socket made here to read a cookie is
    /// closed before the caller starts any tool.
    pub fn cookie(&self) -> String {
        netbpf::core::netns::id_of_path(&self.path())
            .expect("netns id")
            .to_string()
    }

    /// A command that runs inside this namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: setns is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs loadgen to completion in this namespace and returns its JSON report.
    pub fn loadgen(&self, args: &[&str]) -> Value {
        let out = self.command(loadgen_bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "loadgen {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Starts loadgen waiting for a go signal, so a tool can be filtered to its pid first.
    pub fn loadgen_waiting(&self, args: &[&str]) -> Waiting {
        let child = self
            .command(loadgen_bin())
            .arg("--wait")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Waiting { child }
    }
}

fn set_lo_up() {
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS on a socket we own, with a zeroed ifreq naming "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr),
            0,
            "bring lo up: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

pub struct Waiting {
    child: Child,
}

impl Waiting {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run and returns its report.
    pub fn go(mut self) -> Value {
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = self.child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "loadgen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// A running `netbpf` tool. Dropped without `stop` (a test that failed first), it is killed.
pub struct Tool {
    child: Child,
    stdout: Option<thread::JoinHandle<Vec<String>>>,
    stderr: Option<thread::JoinHandle<Vec<String>>>,
}

impl Drop for Tool {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub struct Finished {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Finished {
    /// The runs of its BPF programs the tool said the kernel skipped (a run interrupted on its
    /// CPU by the same hook blocks the nested one; core::run::report_missed): what its counts
    /// may be short by.
    pub fn skipped_runs(&self) -> u64 {
        self.stderr
            .split_once("the kernel skipped ")
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Asserts the tool exited with status 0 (a tool that failed while printing its summary
    /// must not pass for one that printed nothing), and returns it.
    pub fn succeeded(self) -> Finished {
        assert!(
            self.status.success(),
            "the tool failed: {:?}, stderr: {}",
            self.status,
            self.stderr
        );
        self
    }

    /// stdout lines parsed as JSON objects (for --json runs).
    pub fn json(&self) -> Vec<Value> {
        self.lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

impl Tool {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts `netbpf ARGS...` and waits until it has attached ("Tracing ..." on stderr).
    pub fn start(args: &[&str]) -> Tool {
        Tool::start_with_env(args, &[])
    }

    /// `start` with extra environment variables (e.g. NETBPF_PLAN to run one attach plan).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Tool {
        let mut child = Command::new(netbpf_bin())
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let err = BufReader::new(child.stderr.take().unwrap());
        let stdout = thread::spawn(move || out.lines().map_while(Result::ok).collect());
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut lines = Vec::new();
            for line in err.lines().map_while(Result::ok) {
                if line.starts_with("Tracing") {
                    let _ = ready_tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        let tool = Tool {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        // The stock-kernel VMs emulate their CPU (~20x slower): loading takes longer there.
        let bound = if vmtest_kernel().is_some() { 120 } else { 30 };
        if ready_rx.recv_timeout(Duration::from_secs(bound)).is_err() {
            let f = tool.interrupt();
            panic!(
                "netbpf {args:?} did not attach: status {:?}, stderr: {}",
                f.status, f.stderr
            );
        }
        tool
    }

    /// Sends SIGINT and collects everything it printed; the tool must exit 0 (so that "prints
    /// nothing" assertions cannot pass on a tool that crashed).
    pub fn stop(self) -> Finished {
        let f = self.interrupt();
        assert!(
            f.status.success(),
            "the tool did not exit 0 after SIGINT: {:?}\nstderr: {}\nstdout: {:?}",
            f.status,
            f.stderr,
            f.lines
        );
        f
    }

    /// `stop` without the exit-status check (for tests of failures).
    pub fn interrupt(self) -> Finished {
        self.signal(libc::SIGINT)
    }

    /// Sends `sig` and collects everything it printed, whatever the exit status.
    pub fn signal(mut self, sig: i32) -> Finished {
        // Let the last events reach the ring buffer reader.
        thread::sleep(Duration::from_millis(150));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
        let status = self.child.wait().unwrap();
        Finished {
            status,
            lines: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap().join("\n"),
        }
    }
}

/// The pid of a running tool.
pub fn tool_pid(tool: &Tool) -> u32 {
    tool.child.id()
}

/// Runs `netbpf ARGS...` to completion (for option errors and short runs).
pub fn netbpf(args: &[&str]) -> std::process::Output {
    Command::new(netbpf_bin()).args(args).output().unwrap()
}

/// `netbpf` with extra environment variables.
pub fn netbpf_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(netbpf_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// Lines of `rows` whose field `key` equals `value`.
pub fn with<'a>(rows: &'a [Value], key: &str, value: impl Into<Value>) -> Vec<&'a Value> {
    let v = value.into();
    rows.iter().filter(|r| r[key] == v).collect()
}

/// The attach plans `tool` can run on this kernel (chosen or usable in `netbpf list -v`), the
/// chosen one first: a test runs each with NETBPF_PLAN to cover every way the tool can work here.
pub fn runnable_plans(tool: &str) -> Vec<String> {
    usable_plans(tool)
}

/// The plan `netbpf list` says `tool` uses on this kernel.
pub fn chosen_plan(tool: &str) -> String {
    runnable_plans(tool).remove(0)
}

/// The stock kernel series the test runs on inside vmtest ("6.1", "6.12"), None elsewhere.
pub fn vmtest_kernel() -> Option<String> {
    std::env::var("NETBPF_VMTEST_KERNEL")
        .ok()
        .filter(|k| !k.is_empty())
}

/// Whether kernel BTF names `name` (a type, function, or enum value such as a BPF helper's id).
pub fn btf_names(name: &str) -> bool {
    std::fs::read("/sys/kernel/btf/vmlinux")
        .map(|btf| {
            btf.windows(name.len() + 1)
                .any(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0)
        })
        .unwrap_or(false)
}

/// Whether this kernel has the sock:sock_send_length/sock_recv_length tracepoints (6.3+),
/// which decides the plan of the socket I/O tools.
pub fn has_sock_length_tracepoints() -> bool {
    std::fs::read("/sys/kernel/btf/vmlinux")
        .map(|btf| {
            let needle = b"btf_trace_sock_send_length";
            btf.windows(needle.len()).any(|w| w == needle)
        })
        .unwrap_or(false)
}

/// The plans of `tool` as `netbpf list --verbose` gives them on this kernel, best first:
/// (plan, "chosen" | "usable" | "skipped").
pub fn plans(tool: &str) -> Vec<(String, &'static str)> {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = text
        .lines()
        .skip_while(|l| !l.starts_with(&format!("{tool} ")));
    assert!(lines.next().is_some(), "{tool} is not listed: {text}");
    lines
        .take_while(|l| l.starts_with(' '))
        .filter(|l| !l.trim_start().starts_with("hooks:"))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap_or_default().to_string();
            let verdict = if l.ends_with(" chosen") {
                "chosen"
            } else if l.ends_with(" usable") {
                "usable"
            } else {
                "skipped"
            };
            (name, verdict)
        })
        .collect()
}

/// The plans of `tool` this kernel can run, best (the chosen one) first.
pub fn usable_plans(tool: &str) -> Vec<String> {
    let usable: Vec<String> = plans(tool)
        .into_iter()
        .filter(|(_, v)| *v != "skipped")
        .map(|(p, _)| p)
        .collect();
    assert!(!usable.is_empty(), "{tool} cannot run on this kernel");
    usable
}

/// Whether `tool` cannot run on this kernel: `netbpf list` calls it unsupported (every plan's
/// checks refuse it). Then running it must be the clean refusal, and that is asserted here: exit
/// 2, "not supported on this kernel", and the missing feature that `list --verbose` names for
/// one of its plans. A test of such a tool starts with `if refused_here(TOOL) { return; }`, so
/// on each kernel it checks either the tool's real work or its refusal, never neither.
pub fn refused_here(tool: &str) -> bool {
    let lacks: Vec<String> = {
        let verdicts = plans(tool);
        if verdicts.iter().any(|(_, v)| *v != "skipped") {
            return false;
        }
        let o = netbpf(&["list", "--verbose"]);
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .skip_while(|l| !l.starts_with(&format!("{tool} ")))
            .skip(1)
            .take_while(|l| l.starts_with(' '))
            .filter_map(|l| l.split_once("skipped: ").map(|(_, why)| why.to_string()))
            .collect()
    };
    let o = netbpf(&[tool, "-d", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{tool} refused: {err}");
    assert!(
        err.contains(&format!("{tool} is not supported on this kernel: "))
            && lacks.iter().any(|why| err.contains(why.as_str())),
        "{tool}'s refusal names none of {lacks:?}: {err}"
    );
    eprintln!("{tool} is not supported on this kernel: its refusal checked instead");
    true
}

/// Whether `tool` (skbdrop, tcpdrop) gets drop reasons on this kernel. Before 5.17 the kernel
/// gives none and the tool runs its plan without them; a test of reasons then returns early
/// (`if !drop_reasons_here(TOOL) { return; }`, after `refused_here`): kernels.rs's
/// `drops_without_reasons_show_stacks` checks that plan on every kernel.
pub fn drop_reasons_here(tool: &str) -> bool {
    let reasons = chosen_plan(tool) != "tp_btf-noreason";
    if !reasons {
        eprintln!("{tool} has no drop reasons on this kernel: its reasonless plan is checked by kernels.rs");
    }
    reasons
}

/// In a stock-kernel VM (vmtest/suite.sh sets NETBPF_VMTEST_KERNEL): the plan `tool` must pick
/// there, asserted, so that a stock-only hook is known to have been used.
pub fn assert_stock_kernel_plan(tool: &str, plan: &str) {
    if let Ok(kernel) = std::env::var("NETBPF_VMTEST_KERNEL") {
        let chosen = usable_plans(tool).into_iter().next();
        assert_eq!(
            chosen.as_deref(),
            Some(plan),
            "{tool} on Debian {kernel}: {:?}",
            plans(tool)
        );
    }
}

/// Runs `ip ARGS...` inside `ns`; the test needs it to succeed.
pub fn ip_in(ns: &Netns, args: &[&str]) {
    let out = ns
        .command("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) is needed");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two fresh namespaces joined by a veth pair: "va" 10.9.0.1/24 in the first, "vb" 10.9.0.2/24 in
/// the second, both up.
pub fn veth_pair() -> (Netns, Netns) {
    let (a, b) = (Netns::new(), Netns::new());
    ip_in(
        &a,
        &[
            "link",
            "add",
            "va",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            &b.path(),
        ],
    );
    ip_in(&a, &["addr", "add", "10.9.0.1/24", "dev", "va"]);
    ip_in(&b, &["addr", "add", "10.9.0.2/24", "dev", "vb"]);
    ip_in(&a, &["link", "set", "va", "up"]);
    ip_in(&b, &["link", "set", "vb", "up"]);
    (a, b)
}

/// A TcpExt counter of the namespace (/proc/net/netstat as seen from inside it).
pub fn netstat_counter(ns: &Netns, name: &str) -> u64 {
    proc_net_counter(ns, "netstat", "TcpExt", name)
}

/// A counter of /proc/net/snmp in the namespace, e.g. ("Tcp", "RetransSegs").
pub fn snmp_counter(ns: &Netns, prefix: &str, name: &str) -> u64 {
    proc_net_counter(ns, "snmp", prefix, name)
}

/// The counter `prefix` `name` of /proc/net/`file` (pairs of "Prefix: names" and "Prefix:
/// values" lines) as seen from inside the namespace.
fn proc_net_counter(ns: &Netns, file: &str, prefix: &str, name: &str) -> u64 {
    let out = ns
        .command("cat")
        .arg(format!("/proc/net/{file}"))
        .output()
        .expect("cat");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let tag = format!("{prefix}:");
    for pair in lines.chunks_exact(2) {
        if !pair[0].starts_with(&tag) {
            continue;
        }
        let i = pair[0]
            .split_whitespace()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("no {prefix} {name}"));
        return pair[1].split_whitespace().nth(i).unwrap().parse().unwrap();
    }
    panic!("no {prefix} line in /proc/net/{file}");
}

/// Runs a command (ip, tc) inside the namespace; the test needs it to succeed.
pub fn ns_run(ns: &Netns, program: &str, args: &[&str]) {
    let st = ns
        .command(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} (iproute2) is needed: {e}"));
    assert!(st.success(), "{program} {args:?} failed");
}

/// A lossy loopback: 1500-byte MTU and a small token bucket, so a burst overflows the queue and
/// TCP has to retransmit (netem is not built into this kernel; tbf is).
pub fn lossy_loopback(ns: &Netns) {
    ns_run(ns, "ip", &["link", "set", "dev", "lo", "mtu", "1500"]);
    ns_run(
        ns,
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "1600", "limit",
            "3000",
        ],
    );
}
