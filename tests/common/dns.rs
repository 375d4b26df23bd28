//! Resolvers for the DNS tests, in the test's network namespace: dnsmasq serving static records,
//! and a scripted one answering after a delay (or never).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::Netns;

/// A process started in the namespace, killed when dropped; `ready` waited for on a line of
/// its output.
pub struct Server {
    child: Child,
    log: Option<thread::JoinHandle<Vec<String>>>,
}

impl Server {
    /// Starts `cmd` and waits for a line of its stderr (or stdout: `on_stdout`) containing
    /// `ready`.
    fn start(mut cmd: Command, ready: &'static str, on_stdout: bool) -> Server {
        cmd.stdin(Stdio::null());
        if on_stdout {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("start the test's resolver");
        let pipe: Box<dyn std::io::Read + Send> = if on_stdout {
            Box::new(child.stdout.take().unwrap())
        } else {
            Box::new(child.stderr.take().unwrap())
        };
        let (tx, rx) = mpsc::channel();
        let log = thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains(ready) {
                    let _ = tx.send(());
                }
                lines.push(line);
            }
            lines
        });
        if rx.recv_timeout(Duration::from_secs(20)).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the test's resolver did not start: {:?}", log.join());
        }
        Server {
            child,
            log: Some(log),
        }
    }

    /// Stops it and returns what it logged.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dnsmasq on 127.0.0.1 and ::1 port 53 of `ns`: web.test (A and AAAA), mail.test (A); every
/// other name under test. answered locally (NXDOMAIN, or no data for a type a name lacks);
/// every query logged.
pub fn dnsmasq(ns: &Netns) -> Server {
    let mut cmd = ns.command("dnsmasq");
    cmd.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--user=root",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        "--listen-address=::1",
        "--port=53",
        "--log-queries",
        "--log-facility=-",
        "--host-record=web.test,192.0.2.10,2001:db8::10",
        "--host-record=mail.test,192.0.2.25",
        "--local=/test/",
    ]);
    Server::start(cmd, "started", false)
}

/// A resolver on 127.0.0.1:`port` answering every query after `delay_ms` with NOERROR and no
/// answer; or (`delay_ms` None) a socket bound there that never answers.
pub fn python_resolver(ns: &Netns, addr: &str, port: u16, delay_ms: Option<u64>) -> Server {
    let script = r#"
import socket, sys, time
addr, port, delay = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, port))
print("ready", flush=True)
while True:
    if delay == "silent":
        time.sleep(3600)
    q, peer = s.recvfrom(4096)
    time.sleep(int(delay) / 1000)
    i = 12
    while q[i]:
        i += 1 + q[i]
    question = q[12:i + 5]
    s.sendto(q[:2] + b"\x81\x80" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question, peer)
"#;
    let delay = delay_ms.map_or("silent".to_string(), |d| d.to_string());
    let mut cmd = ns.command("/usr/bin/python3");
    cmd.args(["-c", script, addr, &port.to_string(), &delay]);
    Server::start(cmd, "ready", true)
}
