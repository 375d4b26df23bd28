//! Test harness: a private network namespace per test, the real `netbpf` binary filtered to it,
//! and the `loadgen` example making traffic inside it.
#![allow(dead_code)]

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

pub fn netbpf_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_netbpf"))
}

pub fn loadgen_bin() -> PathBuf {
    // cargo test builds examples next to the binaries' deps dir.
    let p = netbpf_bin().parent().unwrap().join("examples/loadgen");
    assert!(
        p.exists(),
        "{} missing: run the tests with `cargo test` (it builds examples)",
        p.display()
    );
    p
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

/// A running `netbpf` tool.
pub struct Tool {
    child: Child,
    stdout: thread::JoinHandle<Vec<String>>,
    stderr: thread::JoinHandle<Vec<String>>,
}

pub struct Finished {
    pub status: ExitStatus,
    pub lines: Vec<String>,
    pub stderr: String,
}

impl Finished {
    /// stdout lines parsed as JSON objects (for --json runs).
    pub fn json(&self) -> Vec<Value> {
        self.lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
            .collect()
    }
}

impl Tool {
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
            stdout,
            stderr,
        };
        if ready_rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let f = tool.stop();
            panic!(
                "netbpf {args:?} did not attach: status {:?}, stderr: {}",
                f.status, f.stderr
            );
        }
        tool
    }

    /// Sends SIGINT and collects everything it printed.
    pub fn stop(mut self) -> Finished {
        // Let the last events reach the ring buffer reader.
        thread::sleep(Duration::from_millis(150));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        Finished {
            status,
            lines: self.stdout.join().unwrap(),
            stderr: self.stderr.join().unwrap().join("\n"),
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
