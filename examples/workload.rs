//! Workloads for bench/floor.sh (std only), each for `--secs` seconds in the current network
//! namespace, printing one line on stdout: `ops_per_sec N cpu_us_per_op M` (M: user + system CPU
//! of this process per operation, both threads, with the softirq work done in their syscalls).
//!
//!   workload rr [--size B]        TCP request/response on loopback: the client writes B bytes
//!                                 (default 64) and reads B back; op = one exchange. TCP_NODELAY.
//!   workload stream [--size B] [--to ADDR --port P]
//!                                 one TCP connection; the client writes B-byte chunks (default
//!                                 64), a reader drains them 64 KiB at a time; op = one write.
//!                                 With --to, to a `workload sink` at ADDR:P (e.g. across a veth)
//!                                 instead of a reader thread in this process.
//!   workload udpflood [--size B]  B-byte UDP datagrams to 127.0.0.1 port 9, where nothing
//!                                 listens: the kernel drops each one; op = one datagram.
//!   workload sink --port P        accepts TCP connections on 0.0.0.0:P and reads each to its end,
//!                                 until killed (prints nothing).
//!
//! Common option: --secs S (default 3).

#[path = "common/cpu.rs"]
mod cpu;

use cpu::cpu_secs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::exit;
use std::time::{Duration, Instant};

/// No single socket operation may block longer than this: every workload ends.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn usage(msg: &str) -> ! {
    eprintln!(
        "workload: {msg}\nusage: workload rr|stream|udpflood [--secs S] [--size B] [--to ADDR --port P]\n       workload sink --port P"
    );
    exit(2);
}

struct Args {
    mode: String,
    secs: f64,
    size: usize,
    to: Option<Ipv4Addr>,
    port: Option<u16>,
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| usage("no workload given"));
    let mut a = Args {
        mode,
        secs: 3.0,
        size: 64,
        to: None,
        port: None,
    };
    while let Some(flag) = args.next() {
        let val = args
            .next()
            .unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        let bad = || -> ! { usage(&format!("bad value '{val}' for {flag}")) };
        match flag.as_str() {
            "--secs" => {
                a.secs = val
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .unwrap_or_else(|| bad())
            }
            "--size" => {
                a.size = val
                    .parse()
                    .ok()
                    .filter(|n| (1..=1 << 20).contains(n))
                    .unwrap_or_else(|| bad())
            }
            "--to" => a.to = Some(val.parse().unwrap_or_else(|_| bad())),
            "--port" => a.port = Some(val.parse().ok().filter(|p| *p > 0).unwrap_or_else(|| bad())),
            _ => usage(&format!("unknown argument '{flag}'")),
        }
    }
    a
}

fn fail(what: &str, e: std::io::Error) -> ! {
    eprintln!("workload: {what}: {e}");
    exit(1);
}

/// Reads a connection to its end, 64 KiB at a time.
fn drain(mut s: TcpStream) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => fail("reader", e),
        }
    }
}

/// A listener on loopback in this process whose connections `serve` handles, one at a time.
fn local_server(serve: fn(TcpStream)) -> SocketAddr {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| fail("listen on 127.0.0.1 (is lo up?)", e));
    let addr = l.local_addr().expect("local_addr");
    std::thread::spawn(move || {
        for c in l.incoming() {
            serve(c.unwrap_or_else(|e| fail("accept", e)));
        }
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| fail(&format!("connect {addr}"), e));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

/// Runs `op` until `secs` have passed; returns (operations, seconds, CPU seconds).
fn timed(secs: f64, mut op: impl FnMut()) -> (u64, f64, f64) {
    let limit = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let cpu0 = cpu_secs();
    let mut ops = 0u64;
    // The clock is read after every op (a vDSO call, ~20 ns): the same in every round compared.
    while start.elapsed() < limit {
        op();
        ops += 1;
    }
    (ops, start.elapsed().as_secs_f64(), cpu_secs() - cpu0)
}

fn rr(a: &Args) -> (u64, f64, f64) {
    fn echo(mut s: TcpStream) {
        s.set_nodelay(true).expect("nodelay");
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => s.write_all(&buf[..n]).unwrap_or_else(|e| fail("echo", e)),
                Err(e) => fail("echo", e),
            }
        }
    }
    let mut s = connect(local_server(echo));
    s.set_nodelay(true).expect("nodelay");
    let out = vec![7u8; a.size];
    let mut back = vec![0u8; a.size];
    timed(a.secs, || {
        s.write_all(&out).unwrap_or_else(|e| fail("request", e));
        s.read_exact(&mut back)
            .unwrap_or_else(|e| fail("response", e));
    })
}

fn stream(a: &Args) -> (u64, f64, f64) {
    let addr = match (a.to, a.port) {
        (Some(ip), Some(port)) => SocketAddr::from((ip, port)),
        (None, None) => local_server(drain),
        _ => usage("--to and --port go together"),
    };
    let mut s = connect(addr);
    let out = vec![7u8; a.size];
    timed(a.secs, || {
        s.write_all(&out).unwrap_or_else(|e| fail("write", e))
    })
}

fn udpflood(a: &Args) -> (u64, f64, f64) {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| fail("bind", e));
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
    let out = vec![7u8; a.size];
    timed(a.secs, || {
        // An unconnected socket: the ICMP port-unreachable replies do not fail later sends.
        s.send_to(&out, to).unwrap_or_else(|e| fail("send", e));
    })
}

fn sink(a: &Args) -> ! {
    let port = a.port.unwrap_or_else(|| usage("sink needs --port"));
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .unwrap_or_else(|e| fail(&format!("listen on port {port}"), e));
    for c in l.incoming() {
        let c = c.unwrap_or_else(|e| fail("accept", e));
        std::thread::spawn(move || drain(c));
    }
    exit(1)
}

fn main() {
    let a = parse_args();
    let (ops, secs, cpu) = match a.mode.as_str() {
        "rr" => rr(&a),
        "stream" => stream(&a),
        "udpflood" => udpflood(&a),
        "sink" => sink(&a),
        other => usage(&format!("unknown workload '{other}'")),
    };
    eprintln!(
        "workload: {} {ops} ops in {secs:.3} s, {cpu:.2} s CPU",
        a.mode
    );
    println!(
        "ops_per_sec {:.1} cpu_us_per_op {:.3}",
        ops as f64 / secs,
        cpu * 1e6 / ops as f64
    );
}
