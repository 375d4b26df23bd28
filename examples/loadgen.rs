//! Traffic for netbpf's tests: small, exact TCP workloads on loopback in the caller's network
//! namespace. Each command prints one JSON line saying what it did (pid, ports), so a test can
//! compare the tool's output with the truth.
//!
//!   loadgen [--wait] exchange --family 4|6 --port P --client-send N --server-send M --hold-ms H
//!   loadgen [--wait] connect --family 4|6 --port P --count N [--nonblock]
//!   loadgen [--wait] backlog --family 4|6 --port P --backlog B --clients C
//!   loadgen [--wait] streams --family 4|6 --port P --send N1,N2.. --reply M1,M2.. --chunks K
//!                    --pause-ms T [--peek]
//!   loadgen [--wait] retrans --family 4|6 --port P --bytes N
//!   loadgen [--wait] synbl --family 4|6 --port P --backlog B --clients C --hold-ms H
//!   loadgen [--wait] nagle --family 4|6 --port P --mode default|nodelay|cork|more --writes N
//!                    --size S
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

impl Args {
    /// A comma list of numbers, e.g. "--send 1000,2000".
    fn list(&self, name: &str) -> Vec<u64> {
        let Some(i) = self.0.iter().position(|a| a == name) else {
            return Vec::new();
        };
        let v = self
            .0
            .get(i + 1)
            .unwrap_or_else(|| die(&format!("{name} needs a value")));
        v.split(',')
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| die(&format!("{name}: bad number '{n}'")))
            })
            .collect()
    }
    fn text(&self, name: &str, default: &str) -> String {
        let i = self.0.iter().position(|a| a == name);
        i.and_then(|i| self.0.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
}

fn read_n(s: &mut TcpStream, n: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < n {
        let want = (n - got).min(buf.len());
        match s.read(&mut buf[..want]) {
            Ok(0) => die(&format!("peer closed after {got} of {n} bytes")),
            Ok(k) => got += k,
            Err(e) => die(&format!("read: {e}")),
        }
    }
}

/// Several connections at once, each with exact byte counts both ways, the client's sends paced
/// in chunks so they span intervals. With --peek the server first peeks (MSG_PEEK) at the data:
/// those bytes are read again afterwards and must not be counted twice.
fn streams(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let sends = a.list("--send");
    let mut replies = a.list("--reply");
    replies.resize(sends.len(), 0);
    let (chunks, pause) = (
        a.num("--chunks", 1).max(1),
        Duration::from_millis(a.num("--pause-ms", 0)),
    );
    let peek = a.flag("--peek");
    let listener = listen(addr, 16);
    let port = listener.local_addr().unwrap().port();
    let workers: Vec<_> = sends
        .iter()
        .zip(&replies)
        .map(|(&send, &reply)| {
            let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap();
            let (mut s, _) = listener.accept().unwrap();
            let client_port = c.local_addr().unwrap().port();
            let server = thread::spawn(move || {
                if peek && send > 0 {
                    let mut b = [0u8; 100];
                    // SAFETY: recv into a local buffer.
                    let n = unsafe {
                        libc::recv(
                            s.as_raw_fd(),
                            b.as_mut_ptr().cast(),
                            b.len(),
                            libc::MSG_PEEK,
                        )
                    };
                    assert!(n > 0, "MSG_PEEK recv failed");
                }
                read_n(&mut s, send as usize);
                s.write_all(&vec![b's'; reply as usize]).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
            });
            let client = thread::spawn(move || {
                let chunk = send / chunks;
                for i in 0..chunks {
                    let n = if i == chunks - 1 {
                        send - chunk * (chunks - 1)
                    } else {
                        chunk
                    };
                    c.write_all(&vec![b'c'; n as usize]).unwrap();
                    thread::sleep(pause);
                }
                read_n(&mut c, reply as usize);
            });
            (client_port, send, reply, server, client)
        })
        .collect();
    let mut conns = Vec::new();
    for (client_port, send, reply, server, client) in workers {
        client.join().unwrap();
        server.join().unwrap();
        conns.push(format!(
            "{{\"client_port\":{client_port},\"sent\":{send},\"received\":{reply}}}"
        ));
    }
    println!(
        "{{\"pid\":{},\"server_port\":{port},\"conns\":[{}]}}",
        std::process::id(),
        conns.join(",")
    );
}

/// The kernel's count of segments this socket retransmitted (tcpi_total_retrans).
fn total_retrans(s: &TcpStream) -> u32 {
    // SAFETY: getsockopt into a zeroed tcp_info of the size passed.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        assert_eq!(rc, 0, "TCP_INFO");
        info.tcpi_total_retrans
    }
}

/// One burst of --bytes from client to server, then a 1-byte answer. Meant to run behind a lossy
/// qdisc on lo: reports how many segments the client retransmitted, by the kernel's count.
fn retrans(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let n = a.num("--bytes", 65536) as usize;
    let listener = listen(addr, 16);
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_n(&mut s, n);
        s.write_all(b"k").unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    c.write_all(&vec![b'r'; n]).unwrap();
    read_n(&mut c, 1);
    let retransmitted = total_retrans(&c);
    drop(c);
    server.join().unwrap();
    println!(
        "{{\"pid\":{},\"server_port\":{port},\"client_port\":{client_port},\"total_retrans\":{retransmitted}}}",
        std::process::id()
    );
}

fn nonblocking_client(addr: SocketAddr, delay_handshake_ack: bool) -> TcpStream {
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: a fresh socket; setsockopt with an int.
    unsafe {
        let fd = libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        assert!(fd >= 0);
        if delay_handshake_ack {
            // Quick-ack off before connect: the handshake's final ACK is delayed (~200 ms).
            let off: libc::c_int = 0;
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&off as *const libc::c_int).cast(),
                4,
            );
        }
        let stream = <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd);
        connect_fd(fd, addr);
        stream
    }
}

fn connect_fd(fd: i32, addr: SocketAddr) {
    // SAFETY: connect with a sockaddr of the size passed.
    let rc = unsafe {
        match addr {
            SocketAddr::V4(v4) => {
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: v4.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(v4.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of_val(&sa) as u32,
                )
            }
            SocketAddr::V6(v6) => {
                let sa = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as u16,
                    sin6_port: v6.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: v6.ip().octets(),
                    },
                    sin6_scope_id: 0,
                };
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of_val(&sa) as u32,
                )
            }
        }
    };
    let err = std::io::Error::last_os_error();
    if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
        die(&format!("connect {addr}: {err}"));
    }
}

/// A listener with --backlog B that never accepts. The first client delays its handshake ACK,
/// so its SYN is in before the others fill the accept queue (B+1 connections) and its ACK
/// arrives at a full queue: one handshake dropped for a full backlog. Every other client beyond
/// B+1 has its SYN dropped. Everything is closed after --hold-ms (listener first).
fn synbl(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let backlog = a.num("--backlog", 2) as i32;
    let listener = listen(addr, backlog);
    let target = SocketAddr::new(addr.ip(), listener.local_addr().unwrap().port());
    let mut clients = vec![nonblocking_client(target, true)];
    for _ in 1..a.num("--clients", 4) {
        clients.push(nonblocking_client(target, false));
        // Each handshake completes in softirq on loopback; a short gap keeps them in order.
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(a.num("--hold-ms", 600)));
    let port = target.port();
    drop(listener);
    drop(clients);
    println!("{{\"pid\":{},\"port\":{port}}}", std::process::id());
}

/// --writes small writes of --size bytes on one connection, with Nagle on (default), TCP_NODELAY,
/// TCP_CORK (uncorked after the writes) or MSG_MORE on all writes but the last.
fn nagle(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let (writes, size) = (
        a.num("--writes", 10) as usize,
        a.num("--size", 100) as usize,
    );
    let mode = a.text("--mode", "default");
    let listener = listen(addr, 16);
    let port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        assert_eq!(all.len(), writes * size);
    });
    let c = TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap();
    let fd = c.as_raw_fd();
    let set = |opt: libc::c_int, val: libc::c_int| {
        // SAFETY: setsockopt with an int.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                opt,
                (&val as *const libc::c_int).cast(),
                4,
            )
        };
        assert_eq!(rc, 0);
    };
    match mode.as_str() {
        "default" | "more" => {}
        "nodelay" => set(libc::TCP_NODELAY, 1),
        "cork" => set(libc::TCP_CORK, 1),
        other => die(&format!("--mode: unknown '{other}'")),
    }
    let data = vec![b'n'; size];
    for i in 0..writes {
        let flags = if mode == "more" && i + 1 < writes {
            libc::MSG_MORE
        } else {
            0
        };
        // SAFETY: send from a live buffer.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), size, flags) };
        assert_eq!(n, size as isize);
    }
    if mode == "cork" {
        set(libc::TCP_CORK, 0);
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    server.join().unwrap();
    println!(
        "{{\"pid\":{},\"server_port\":{port},\"client_port\":{}}}",
        std::process::id(),
        c.local_addr().unwrap().port()
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
        "streams" => streams(&a),
        "retrans" => retrans(&a),
        "synbl" => synbl(&a),
        "nagle" => nagle(&a),
        other => die(&format!("unknown command '{other}'")),
    }
}
