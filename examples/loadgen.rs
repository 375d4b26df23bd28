//! Traffic for netbpf's tests: small, exact TCP workloads on loopback in the caller's network
//! namespace. Each command prints one JSON line saying what it did (pid, ports), so a test can
//! compare the tool's output with the truth.
//!
//!   loadgen [--wait] exchange --family 4|6 --port P --client-send N --server-send M --hold-ms H
//!   loadgen [--wait] connect --family 4|6 --port P --count N [--nonblock]
//!   loadgen [--wait] backlog --family 4|6 --port P --backlog B --clients C
//!   loadgen [--wait] udp-send --family 4|6 [--to ADDR] --port P --count N --size S [--recv]
//!       N datagrams of S payload bytes to ADDR (default loopback) port P; with --recv, a receiver
//!       bound to ADDR:P (P 0: any free port) in this process reads them all before exiting.
//!   loadgen [--wait] tcp-send --to ADDR --port P --bytes N
//!       connects to a server elsewhere (e.g. across a veth), sends N bytes, closes, and waits
//!       for the server's close.
//!
//! --wait: read one line from stdin first, so a test can start a tool filtered to this pid
//! before any traffic is made.

use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str) -> Option<u64> {
        let i = self.0.iter().position(|a| a == name)?;
        let v = self
            .0
            .get(i + 1)
            .unwrap_or_else(|| die(&format!("{name} needs a value")));
        Some(
            v.parse()
                .unwrap_or_else(|_| die(&format!("{name}: bad number '{v}'"))),
        )
    }
    fn num(&self, name: &str, default: u64) -> u64 {
        self.get(name).unwrap_or(default)
    }
    fn text(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        Some(
            self.0
                .get(i + 1)
                .unwrap_or_else(|| die(&format!("{name} needs a value"))),
        )
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
    let (client_send, server_send) = (
        a.num("--client-send", 0) as usize,
        a.num("--server-send", 0) as usize,
    );
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
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let s = start_nonblocking_connect(family, addr)?;
    let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(s) };
    let mut pfd = libc::pollfd {
        fd: s,
        events: libc::POLLOUT,
        revents: 0,
    };
    unsafe { libc::poll(&mut pfd, 1, 5000) };
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    Ok(stream.local_addr()?.port())
}

fn start_nonblocking_connect(family: i32, addr: SocketAddr) -> std::io::Result<i32> {
    unsafe {
        let fd = libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let rc = match addr {
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
    let clients: Vec<TcpStream> = (0..a.num("--clients", 3))
        .map(|_| TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(100));
    let accepted: Vec<TcpStream> = clients
        .iter()
        .map(|_| listener.accept().unwrap().0)
        .collect();
    drop(accepted);
    drop(clients);
    println!("{{\"pid\":{},\"port\":{port}}}", std::process::id());
}

fn udp_send(a: &Args) {
    let mut dst = a.addr(a.num("--port", 0) as u16);
    if let Some(to) = a.text("--to") {
        dst.set_ip(
            to.parse()
                .unwrap_or_else(|_| die(&format!("--to: bad address '{to}'"))),
        );
    }
    let (count, size) = (a.num("--count", 1), a.num("--size", 100) as usize);
    let receiver = a.flag("--recv").then(|| {
        let r = UdpSocket::bind(dst).unwrap_or_else(|e| die(&format!("bind {dst}: {e}")));
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        dst.set_port(r.local_addr().unwrap().port());
        r
    });
    let any: IpAddr = if dst.is_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let sender = UdpSocket::bind(SocketAddr::new(any, 0)).unwrap();
    let payload = vec![b'u'; size];
    let mut received = 0;
    let mut buf = vec![0u8; size + 1];
    for _ in 0..count {
        sender
            .send_to(&payload, dst)
            .unwrap_or_else(|e| die(&format!("send to {dst}: {e}")));
        // Read each one before the next: the receive queue never overflows.
        if let Some(r) = &receiver {
            match r.recv(&mut buf) {
                Ok(n) if n == size => received += 1,
                Ok(n) => die(&format!("received {n} bytes, sent {size}")),
                Err(e) => die(&format!("receive: {e}")),
            }
        }
    }
    println!(
        "{{\"pid\":{},\"port\":{},\"sent\":{count},\"received\":{received},\"sport\":{}}}",
        std::process::id(),
        dst.port(),
        sender.local_addr().unwrap().port()
    );
}

fn tcp_send(a: &Args) {
    let to = a
        .text("--to")
        .unwrap_or_else(|| die("tcp-send needs --to ADDR"));
    let ip: IpAddr = to
        .parse()
        .unwrap_or_else(|_| die(&format!("--to: bad address '{to}'")));
    let dst = SocketAddr::new(ip, a.num("--port", 0) as u16);
    let mut c = TcpStream::connect_timeout(&dst, Duration::from_secs(5))
        .unwrap_or_else(|e| die(&format!("connect {dst}: {e}")));
    let bytes = a.num("--bytes", 0) as usize;
    c.write_all(&vec![b't'; bytes])
        .unwrap_or_else(|e| die(&format!("send: {e}")));
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .unwrap_or_else(|e| die(&format!("waiting for close: {e}")));
    println!(
        "{{\"pid\":{},\"sent\":{bytes},\"client_port\":{}}}",
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
    let Some(cmd) = args.first().cloned() else {
        die("usage: loadgen [--wait] exchange|connect|backlog ...")
    };
    let a = Args(args);
    match cmd.as_str() {
        "exchange" => exchange(&a),
        "connect" => connect(&a),
        "backlog" => backlog(&a),
        "udp-send" => udp_send(&a),
        "tcp-send" => tcp_send(&a),
        other => die(&format!("unknown command '{other}'")),
    }
}
