//! Traffic for netbpf's tests: small, exact TCP workloads on loopback in the caller's network
//! namespace. Each command prints one JSON line saying what it did (pid, ports), so a test can
//! compare the tool's output with the truth.
//!
//!   loadgen [--wait] exchange --family 4|6 --port P --client-send N --server-send M --hold-ms H
//!   loadgen [--wait] connect --family 4|6 --port P --count N [--nonblock]
//!   loadgen [--wait] backlog --family 4|6 --port P --backlog B --clients C
//!   loadgen [--wait] segments --family 4|6 --port P --client-send N --server-send M
//!   loadgen [--wait] pingpong --family 4|6 --port P --rounds R --size S
//!   loadgen [--wait] connlat --family 4|6 --port P --count N [--slow]
//!
//! --wait: read one line from stdin first, so a test can start a tool filtered to this pid
//! before any traffic is made.

use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str) -> Option<u64> {
        let i = self.0.iter().position(|a| a == name)?;
        let v = self.0.get(i + 1).unwrap_or_else(|| die(&format!("{name} needs a value")));
        Some(v.parse().unwrap_or_else(|_| die(&format!("{name}: bad number '{v}'"))))
    }
    fn num(&self, name: &str, default: u64) -> u64 {
        self.get(name).unwrap_or(default)
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
    fn addr(&self, port: u16) -> SocketAddr {
        let ip: IpAddr = match self.num("--family", 4) {
            6 => Ipv6Addr::LOCALHOST.into(),
            _ => Ipv4Addr::LOCALHOST.into(),
        };
        SocketAddr::new(ip, port)
    }
}

fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2)
}

fn listen(addr: SocketAddr, backlog: i32) -> TcpListener {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| die(&format!("bind {addr}: {e}")));
    // std listens with a backlog of 128; set the one asked for.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } != 0 {
        die("listen failed");
    }
    l
}

fn exchange(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let (client_send, server_send) = (a.num("--client-send", 0) as usize, a.num("--server-send", 0) as usize);
    let hold = Duration::from_millis(a.num("--hold-ms", 0));
    let listener = listen(addr, 16);
    let server_port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; client_send];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&vec![b's'; server_send]).unwrap();
        // Wait for the client's FIN, then close: the client closes first.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    c.write_all(&vec![b'c'; client_send]).unwrap();
    let mut buf = vec![0u8; server_send];
    c.read_exact(&mut buf).unwrap();
    thread::sleep(hold);
    drop(c);
    server.join().unwrap();
    // Let the final ACKs land before exiting.
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"pid\":{},\"server_port\":{server_port},\"client_port\":{client_port}}}",
        std::process::id()
    );
}

fn connect(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let mut ok = 0;
    let mut refused = 0;
    let mut ports = Vec::new();
    for _ in 0..a.num("--count", 1) {
        let r = if a.flag("--nonblock") {
            connect_nonblocking(addr)
        } else {
            TcpStream::connect(addr).map(|s| s.local_addr().unwrap().port())
        };
        match r {
            Ok(p) => {
                ok += 1;
                ports.push(p.to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
            Err(e) => die(&format!("connect {addr}: {e}")),
        }
    }
    println!(
        "{{\"pid\":{},\"ok\":{ok},\"refused\":{refused},\"client_ports\":[{}]}}",
        std::process::id(),
        ports.join(",")
    );
}

/// A non-blocking connect() (EINPROGRESS), completed with poll().
fn connect_nonblocking(addr: SocketAddr) -> std::io::Result<u16> {
    let family = if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    let s = start_nonblocking_connect(family, addr)?;
    let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(s) };
    let mut pfd = libc::pollfd { fd: s, events: libc::POLLOUT, revents: 0 };
    unsafe { libc::poll(&mut pfd, 1, 5000) };
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    Ok(stream.local_addr()?.port())
}

fn start_nonblocking_connect(family: i32, addr: SocketAddr) -> std::io::Result<i32> {
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let rc = match addr {
            SocketAddr::V4(v4) => {
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                    sin_zero: [0; 8],
                };
                libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&sa) as u32)
            }
            SocketAddr::V6(v6) => {
                let sa = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as u16,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                    sin6_scope_id: 0,
                };
                libc::connect(fd, (&sa as *const libc::sockaddr_in6).cast(), std::mem::size_of_val(&sa) as u32)
            }
        };
        let err = std::io::Error::last_os_error();
        if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
            libc::close(fd);
            return Err(err);
        }
        Ok(fd)
    }
}

fn backlog(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let listener = listen(addr, a.num("--backlog", 5) as i32);
    let port = listener.local_addr().unwrap().port();
    let clients: Vec<TcpStream> =
        (0..a.num("--clients", 3)).map(|_| TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap()).collect();
    thread::sleep(Duration::from_millis(100));
    let accepted: Vec<TcpStream> = clients.iter().map(|_| listener.accept().unwrap().0).collect();
    drop(accepted);
    drop(clients);
    println!("{{\"pid\":{},\"port\":{port}}}", std::process::id());
}

fn nodelay(s: &TcpStream) {
    s.set_nodelay(true)
        .unwrap_or_else(|e| die(&format!("TCP_NODELAY: {e}")));
}

/// One request and one reply, each in a single write with TCP_NODELAY on both ends: one data
/// segment each way (loopback's MSS is ~64 KiB). The client closes first.
fn segments(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let (client_send, server_send) = (
        a.num("--client-send", 0) as usize,
        a.num("--server-send", 0) as usize,
    );
    let listener = listen(addr, 16);
    let server_port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        nodelay(&s);
        let mut buf = vec![0u8; client_send];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&vec![b's'; server_send]).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
    nodelay(&c);
    let client_port = c.local_addr().unwrap().port();
    c.write_all(&vec![b'c'; client_send]).unwrap();
    let mut buf = vec![0u8; server_send];
    c.read_exact(&mut buf).unwrap();
    drop(c);
    server.join().unwrap();
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"pid\":{},\"server_port\":{server_port},\"client_port\":{client_port}}}",
        std::process::id()
    );
}

/// R request/reply round trips of S bytes each way (TCP_NODELAY), on one connection.
fn pingpong(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let (rounds, size) = (a.num("--rounds", 10), a.num("--size", 100) as usize);
    let listener = listen(addr, 16);
    let server_port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        nodelay(&s);
        let mut buf = vec![0u8; size];
        for _ in 0..rounds {
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
    nodelay(&c);
    let client_port = c.local_addr().unwrap().port();
    let mut buf = vec![b'p'; size];
    for _ in 0..rounds {
        c.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
    }
    drop(c);
    server.join().unwrap();
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"pid\":{},\"server_port\":{server_port},\"client_port\":{client_port},\"rounds\":{rounds}}}",
        std::process::id()
    );
}

/// N connects to a listener that accepts at once. With --slow, one more connect that cannot
/// complete before the SYN retransmission timer (~1 s): a second listener with backlog 1 is
/// filled by two connections nobody accepts yet (the accept queue is full when it holds more
/// than the backlog), so its SYN is dropped; they are accepted 300 ms later and the
/// retransmitted SYN gets through.
fn connlat(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let count = a.num("--count", 1);
    let listener = listen(addr, 128);
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        (0..count)
            .map(|_| listener.accept().unwrap().0)
            .collect::<Vec<_>>()
    });
    let target = SocketAddr::new(addr.ip(), port);
    let fast: Vec<TcpStream> = (0..count)
        .map(|_| TcpStream::connect(target).unwrap())
        .collect();
    let ports: Vec<String> = fast
        .iter()
        .map(|s| s.local_addr().unwrap().port().to_string())
        .collect();
    drop(server.join().unwrap());
    drop(fast);
    let mut slow = String::new();
    if a.flag("--slow") {
        let full = listen(SocketAddr::new(addr.ip(), 0), 1);
        let full_port = full.local_addr().unwrap().port();
        let full_addr = SocketAddr::new(addr.ip(), full_port);
        let fillers: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(full_addr).unwrap())
            .collect();
        thread::sleep(Duration::from_millis(50));
        let started = std::time::Instant::now();
        let slow_client = thread::spawn(move || TcpStream::connect(full_addr).unwrap());
        thread::sleep(Duration::from_millis(300));
        let accepted: Vec<TcpStream> = (0..2).map(|_| full.accept().unwrap().0).collect();
        let s = slow_client.join().unwrap();
        let ms = started.elapsed().as_millis();
        slow = format!(
            ",\"slow_server_port\":{full_port},\"slow_client_port\":{},\"slow_ms\":{ms},\"filler_ports\":[{}]",
            s.local_addr().unwrap().port(),
            fillers.iter().map(|f| f.local_addr().unwrap().port().to_string()).collect::<Vec<_>>().join(",")
        );
        drop((accepted, fillers, s));
    }
    println!(
        "{{\"pid\":{},\"port\":{port},\"client_ports\":[{}]{slow}}}",
        std::process::id(),
        ports.join(",")
    );
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--wait") {
        args.remove(0);
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).unwrap();
    }
    let Some(cmd) = args.first().cloned() else { die("usage: loadgen [--wait] exchange|connect|backlog ...") };
    let a = Args(args);
    match cmd.as_str() {
        "exchange" => exchange(&a),
        "connect" => connect(&a),
        "backlog" => backlog(&a),
        "segments" => segments(&a),
        "pingpong" => pingpong(&a),
        "connlat" => connlat(&a),
        other => die(&format!("unknown command '{other}'")),
    }
}
