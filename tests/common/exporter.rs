//! A `netbpf exporter` under test: started on a free loopback port, attached before the test
//! goes on, killed if the test ends without stopping it.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{netbpf_bin, Netns};

/// How long an exporter may take to attach: loading ten tools takes ~17 s on the emulated CPU of
/// the VMs, more while another test loads its own.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(240);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for `child` at most `limit`; kills it and fails the test if it is still running.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?} (hung)");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running exporter listening on 127.0.0.1:`port`.
pub struct Exporter {
    child: Option<Child>,
    pub port: u16,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Exporter {
    /// `netbpf exporter --netns NS --listen 127.0.0.1:PORT ARGS...`, attached.
    pub fn start(ns: &Netns, args: &[&str]) -> Exporter {
        Exporter::start_with_env(ns, args, &[])
    }

    pub fn start_with_env(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Exporter {
        let (mut cmd, port) = Exporter::command(ns, args);
        cmd.envs(env.iter().copied());
        Exporter::spawn(cmd, port)
    }

    /// The command line of [`Exporter::start`] on a free port, for a caller to adjust and pass
    /// to [`Exporter::spawn`].
    pub fn command(ns: &Netns, args: &[&str]) -> (Command, u16) {
        let port = free_port();
        let mut cmd = Command::new(netbpf_bin());
        cmd.args(["exporter", "--netns", &ns.path(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args);
        (cmd, port)
    }

    /// Runs `cmd` (an exporter listening on `port`) and waits for "Tracing ..." on its stderr.
    pub fn spawn(mut cmd: Command, port: u16) -> Exporter {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let err = std::io::BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for l in err.lines().map_while(Result::ok) {
                if l.starts_with("Tracing") {
                    let _ = tx.send(());
                }
                lines.push(l);
            }
            lines
        });
        let mut e = Exporter {
            child: Some(child),
            port,
            stderr: Some(stderr),
        };
        if rx.recv_timeout(ATTACH_TIMEOUT).is_err() {
            e.kill();
            panic!("{cmd:?} did not attach: {}", e.stderr_lines().join("\n"));
        }
        e
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Its stderr so far; all of it once it has exited.
    pub fn stderr_lines(&mut self) -> Vec<String> {
        self.stderr
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }

    /// SIGINT, then waits at most `limit` for it to exit; returns its exit status and stderr.
    pub fn interrupt(mut self, limit: Duration) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = wait_bounded(&mut child, limit, "exporter after SIGINT");
        (status, self.stderr_lines().join("\n"))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET that tolerates a server not (yet) listening.
pub fn try_get(port: u16, path: &str, accept: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    Some((head.to_string(), body.to_string()))
}
