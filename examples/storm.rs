//! Loopback TCP connection storm, for benchmarks (bench/tcplife.sh).
//!
//! Listens on 127.0.0.1 (an ephemeral port) in the current network namespace; a client loop then
//! connects, sends 1 KiB, reads 1 KiB back and closes, over and over, while a server thread
//! accepts each connection, reads the 1 KiB, answers with 1 KiB and closes after the client's FIN.
//! Stops after `--secs` seconds or `--max` connections, whichever comes first, and prints one line
//! on stdout: `conns_per_sec N cpu_us_per_conn M` (details on stderr). M is the CPU time (user +
//! system, both threads, including the loopback softirq work that runs in their syscalls) per
//! connection: unlike the rate, it hardly moves when other processes compete for the CPUs.
//!
//! Usage: storm [--secs S] [--max N]    (defaults: 3 s, 1,000,000 connections)
//!
//! Run it in a throwaway namespace with `net.ipv4.tcp_max_tw_buckets=0`: otherwise TIME_WAIT
//! sockets pile up and skew the rate (and can exhaust ephemeral ports).

#[path = "common/cpu.rs"]
mod cpu;

use cpu::cpu_secs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::exit;
use std::time::{Duration, Instant};

const MSG: usize = 1024;
/// No single socket operation may block longer than this: the storm always ends.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

fn usage(msg: &str) -> ! {
    eprintln!("storm: {msg}\nusage: storm [--secs S] [--max N]");
    exit(2);
}

fn parse_args() -> (Duration, u64) {
    let mut secs = 3.0f64;
    let mut max = 1_000_000u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--secs" => {
                secs = val("--secs")
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
                    .unwrap_or_else(|| usage("--secs must be a number in (0, 3600]"))
            }
            "--max" => {
                max = val("--max")
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage("--max must be a positive integer"))
            }
            "-h" | "--help" => usage("loopback TCP connection storm"),
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    (Duration::from_secs_f64(secs), max)
}

/// One server-side session: read the request, answer, wait for the client's close.
fn serve(mut s: TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = [0u8; MSG];
    s.read_exact(&mut buf)?;
    s.write_all(&buf)?;
    // Wait for EOF so the client closes first (the server side ends in LAST_ACK, not TIME_WAIT).
    let mut rest = [0u8; 64];
    while s.read(&mut rest)? > 0 {}
    Ok(())
}

fn server(listener: TcpListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                if let Err(e) = serve(s) {
                    eprintln!("storm: server: {e}");
                }
            }
            Err(e) => {
                eprintln!("storm: accept: {e}");
                exit(1);
            }
        }
    }
}

/// One client-side session: connect, 1 KiB each way, close.
fn client(addr: SocketAddr, out: &[u8; MSG]) -> std::io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.write_all(out)?;
    let mut buf = [0u8; MSG];
    s.read_exact(&mut buf)?;
    if buf != *out {
        return Err(std::io::Error::other("echo mismatch"));
    }
    Ok(()) // dropping `s` closes it
}

fn main() {
    let (duration, max) = parse_args();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap_or_else(|e| {
        eprintln!("storm: cannot listen on 127.0.0.1: {e} (is lo up?)");
        exit(1);
    });
    let addr = listener.local_addr().expect("local_addr");
    assert!(addr.ip().is_loopback());
    std::thread::spawn(move || server(listener));

    let mut out = [0u8; MSG];
    for (i, b) in out.iter_mut().enumerate() {
        *b = i as u8;
    }
    let start = Instant::now();
    let cpu0 = cpu_secs();
    let mut conns = 0u64;
    while conns < max && start.elapsed() < duration {
        if let Err(e) = client(addr, &out) {
            eprintln!("storm: client: connection {conns}: {e}");
            exit(1);
        }
        conns += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu0;
    eprintln!("storm: {conns} connections in {secs:.3} s to {addr}, {cpu:.2} s CPU");
    println!(
        "conns_per_sec {:.1} cpu_us_per_conn {:.2}",
        conns as f64 / secs,
        cpu * 1e6 / conns as f64
    );
    // The server thread is still blocked in accept(); exiting ends it.
}
