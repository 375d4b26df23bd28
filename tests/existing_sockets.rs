//! Sockets opened before the tool started: a server's listener (every real daemon's) must give
//! its connections their owner from the first packet on, in tcpsnoop, tcplife, tcpstates,
//! tcptracer and tcpsynbl. The server is a python3 process named `srv-before`, listening before
//! the tools start; the clients are other processes.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use common::{usable_plans, Netns, Tool};
use serde_json::Value;

const SERVER_COMM: &str = "srv-before";

/// `reset`: accepts one connection and reads it until the client resets it, then says "reset".
/// `hold`: never accepts. Prints "PID PORT" once listening; goes on at a line on stdin.
const SERVER: &str = r#"
import ctypes, os, socket, sys
ctypes.CDLL(None).prctl(15, b"srv-before", 0, 0, 0)
mode, backlog = sys.argv[1], int(sys.argv[2])
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(("127.0.0.1", 0))
l.listen(backlog)
print(os.getpid(), l.getsockname()[1], flush=True)
sys.stdin.readline()
if mode == "reset":
    c, _ = l.accept()
    try:
        while c.recv(65536):
            pass
    except ConnectionResetError:
        pass
    print("reset", flush=True)
sys.stdin.readline()
"#;

/// Connects to 127.0.0.1:PORT, sends 100 bytes, and closes with SO_LINGER 0: a reset.
const RESET_CLIENT: &str = r#"
import socket, struct, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"x" * 100)
time.sleep(0.2)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
"#;

/// N non-blocking connects to 127.0.0.1:PORT, held 0.3 s (less than a SYN's first retry).
const MANY_CLIENTS: &str = r#"
import socket, sys, time
cs = []
for _ in range(int(sys.argv[2])):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", int(sys.argv[1])))
    except BlockingIOError:
        pass
    cs.append(c)
    time.sleep(0.02)
time.sleep(0.3)
"#;

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u64,
    port: u64,
}

impl Server {
    fn start(ns: &Netns, mode: &str, backlog: u32) -> Server {
        let mut child = ns
            .command("python3")
            .args(["-c", SERVER, mode, &backlog.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let first = Server::line(&mut stdout);
        let (pid, port) = first.trim().split_once(' ').expect("PID PORT");
        Server {
            pid: pid.parse().unwrap(),
            port: port.parse().unwrap(),
            child,
            stdin,
            stdout,
        }
    }

    fn line(stdout: &mut BufReader<ChildStdout>) -> String {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    }

    fn go(&mut self) {
        self.stdin.write_all(b"\n").unwrap();
    }

    fn finish(mut self) {
        let _ = self.stdin.write_all(b"\n");
        drop(self.stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

fn python(ns: &Netns, script: &str, args: &[&str]) {
    let out = ns
        .command("python3")
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A connection to a listener opened before tracing, ended by the client's reset: the server's
/// handshake packets (tcpsnoop) and its side of the session (tcplife, tcpstates, tcptracer)
/// belong to the server process, not to `<unknown>` nor to the client whose reset closed it.
#[test]
fn server_owner_known_for_listener_opened_before_tracing() {
    let ns = Netns::new();
    let path = ns.path();
    let mut server = Server::start(&ns, "reset", 16);
    let snoop = Tool::start(&["tcpsnoop", "--json", "--netns", &path]);
    let life = Tool::start(&["tcplife", "--json", "--netns", &path]);
    let states = Tool::start(&["tcpstates", "--json", "--netns", &path]);
    let tracer = Tool::start(&["tcptracer", "--json", "--netns", &path]);
    server.go();
    let port = server.port.to_string();
    python(&ns, RESET_CLIENT, &[&port]);
    assert_eq!(Server::line(&mut server.stdout).trim(), "reset");
    let (pid, sport) = (server.pid, server.port);
    server.finish();

    let is_server = |r: &Value| num(r, "pid") == pid && r["comm"] == SERVER_COMM;
    // tcpsnoop: the SYN in and SYN-ACK out at the server's port, the server's data in, the
    // reset in.
    let snoop = snoop.stop();
    let rows = snoop.json();
    let at_server: Vec<&Value> = rows.iter().filter(|r| num(r, "lport") == sport).collect();
    for (dir, flags) in [("in", "SYN"), ("out", "SYN|ACK"), ("in", "RST")] {
        let r = at_server
            .iter()
            .find(|r| r["dir"] == dir && r["flags"].as_str().unwrap().contains(flags))
            .unwrap_or_else(|| panic!("no {dir} {flags} at port {sport}: {rows:?}"));
        assert!(is_server(r), "{dir} {flags}: {r}");
    }
    assert!(
        at_server.iter().all(|r| is_server(r)),
        "a packet at the server's port not the server's: {at_server:?}"
    );

    // tcplife: the server's session, closed by the client's reset in the client's context.
    let life = life.stop();
    let rows = life.json();
    let session = rows
        .iter()
        .find(|r| num(r, "lport") == sport)
        .unwrap_or_else(|| panic!("no server session: {rows:?}"));
    assert!(is_server(session), "{session}");
    assert_eq!(num(session, "rx_bytes"), 100, "{session}");

    // tcpstates: every change of the server's connection is owned by the server.
    let rows = states.stop().json();
    let changes: Vec<&Value> = rows.iter().filter(|r| num(r, "lport") == sport).collect();
    assert!(changes.iter().any(|r| r["newstate"] == "CLOSE"), "{rows:?}");
    for r in &changes {
        if r["oldstate"] != "LISTEN" || r["newstate"] != "CLOSE" {
            assert!(is_server(r), "{r}");
        }
    }

    // tcptracer: the accept and the close of the server's side.
    let rows = tracer.stop().json();
    let server_side: Vec<&Value> = rows.iter().filter(|r| num(r, "sport") == sport).collect();
    assert!(!server_side.is_empty(), "{rows:?}");
    for r in &server_side {
        assert!(is_server(r), "{r}");
    }
}

/// A listener opened before tracing, its accept queue full: tcpsynbl names each SYN it drops
/// (the tp_btf plan finds listeners in a map it fills at listen(), seeded with those that
/// existed before).
#[test]
fn tcpsynbl_drops_at_listener_opened_before_tracing() {
    for plan in usable_plans("tcpsynbl") {
        let ns = Netns::new();
        let path = ns.path();
        // Backlog 1: the kernel queues 2 connections, and drops the SYNs of the next 2.
        let mut server = Server::start(&ns, "hold", 1);
        let tool = Tool::start_with_env(
            &["tcpsynbl", "--json", "--netns", &path],
            &[("NETBPF_PLAN", &plan)],
        );
        server.go();
        python(&ns, MANY_CLIENTS, &[&server.port.to_string(), "4"]);
        let port = server.port;
        server.finish();
        let rows = tool.stop().json();
        let drops: Vec<&Value> = rows.iter().filter(|r| r["event"] == "drop").collect();
        assert_eq!(drops.len(), 2, "{plan}: {rows:?}");
        for d in drops {
            assert_eq!(
                (
                    d["kind"].as_str(),
                    num(d, "lport"),
                    num(d, "backlog"),
                    num(d, "max_backlog")
                ),
                (Some("syn"), port, 2, 1),
                "{plan}: {d}"
            );
        }
    }
}
