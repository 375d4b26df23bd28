//! Traffic for netbpf's tests: small, exact TCP workloads on loopback in the caller's network
//! namespace. Each command prints one JSON line saying what it did (pid, ports), so a test can
//! compare the tool's output with the truth.
//!
//!   loadgen [--wait] exchange --family 4|6 --port P --client-send N --server-send M --hold-ms H
//!   loadgen [--wait] connect --family 4|6 --port P --count N [--nonblock]
//!   loadgen [--wait] backlog --family 4|6 --port P --backlog B --clients C
//!   loadgen [--wait] sockio --proto tcp|udp --family 4|6 --msgs N --size S
//!   loadgen [--wait] rcvbuf --proto udp|ping --family 4|6 --rcvbuf B --count N
//!   loadgen [--wait] firstbyte --family 4|6 --delay-ms D --count N --unread K
//!   loadgen [--wait] connectvia --via epoll|ppoll|poll|select --family 4|6 --count N
//!                    --sleep-ms M [--linger-stdin]
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

/// Sizes returned by each send/recv call, in order (0 = end of stream).
#[derive(Default)]
struct Calls {
    sends: Vec<usize>,
    recvs: Vec<usize>,
}

impl Calls {
    fn json(&self) -> String {
        let list = |v: &[usize]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",");
        format!("{{\"sends\":[{}],\"recvs\":[{}]}}", list(&self.sends), list(&self.recvs))
    }
}

fn io_die(what: &str, e: std::io::Error) -> ! {
    die(&format!("{what}: {e}"))
}

/// The value of a word option (--proto udp), one of `allowed`, or the first of them by default.
fn choice<'a>(a: &'a Args, name: &str, allowed: &[&'a str]) -> &'a str {
    let Some(i) = a.0.iter().position(|x| x == name) else { return allowed[0] };
    let v = a.0.get(i + 1).unwrap_or_else(|| die(&format!("{name} needs a value")));
    if !allowed.contains(&v.as_str()) {
        die(&format!("{name}: '{v}' is not one of {allowed:?}"));
    }
    v
}

/// Request/acknowledge traffic with one call per message, so the calls are known exactly: the
/// client sends --msgs messages of --size bytes, each answered by a 1-byte ack. TCP: the server
/// reads until it has a whole message (each read counted), then reads end-of-stream; UDP: one
/// datagram per message. Reports every call's result per side.
fn sockio(a: &Args) {
    let addr = a.addr(0);
    let (msgs, size) = (a.num("--msgs", 10) as usize, a.num("--size", 1000) as usize);
    let udp = choice(a, "--proto", &["tcp", "udp"]) == "udp";
    let (mut client, mut server) = (Calls::default(), Calls::default());
    let (server_port, client_port);
    if udp {
        let srv = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| io_die("bind", e));
        server_port = srv.local_addr().unwrap().port();
        let cli = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| io_die("bind", e));
        cli.connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
        client_port = cli.local_addr().unwrap().port();
        let mut buf = vec![0u8; size + 1];
        for _ in 0..msgs {
            client.sends.push(cli.send(&vec![b'c'; size]).unwrap());
            let (n, peer) = srv.recv_from(&mut buf).unwrap();
            server.recvs.push(n);
            server.sends.push(srv.send_to(b"a", peer).unwrap());
            client.recvs.push(cli.recv(&mut buf).unwrap());
        }
    } else {
        let listener = listen(addr, 16);
        server_port = listener.local_addr().unwrap().port();
        let srv_thread = thread::spawn(move || {
            let mut calls = Calls::default();
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = vec![0u8; size];
            for _ in 0..msgs {
                let mut got = 0;
                while got < size {
                    let n = s.read(&mut buf[got..]).unwrap();
                    calls.recvs.push(n);
                    if n == 0 {
                        die("server: early end of stream");
                    }
                    got += n;
                }
                calls.sends.push(s.write(b"a").unwrap());
            }
            calls.recvs.push(s.read(&mut buf).unwrap()); // the client's FIN: 0
            calls
        });
        let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
        client_port = c.local_addr().unwrap().port();
        let mut ack = [0u8; 1];
        for _ in 0..msgs {
            client.sends.push(c.write(&vec![b'c'; size]).unwrap());
            client.recvs.push(c.read(&mut ack).unwrap());
        }
        drop(c);
        server = srv_thread.join().unwrap();
    }
    println!(
        "{{\"pid\":{},\"server_port\":{server_port},\"client_port\":{client_port},\"client\":{},\"server\":{}}}",
        std::process::id(),
        client.json(),
        server.json()
    );
}

fn setsockopt_int(fd: i32, level: i32, name: i32, val: i32) {
    // SAFETY: an int option on a socket we own.
    let rc = unsafe {
        libc::setsockopt(fd, level, name, (&val as *const i32).cast(), std::mem::size_of::<i32>() as u32)
    };
    if rc != 0 {
        io_die("setsockopt", std::io::Error::last_os_error());
    }
}

fn getsockopt_int(fd: i32, level: i32, name: i32) -> i32 {
    let mut val = 0i32;
    let mut len = std::mem::size_of::<i32>() as u32;
    // SAFETY: an int option on a socket we own.
    unsafe { libc::getsockopt(fd, level, name, (&mut val as *mut i32).cast(), &mut len) };
    val
}

/// A reader with a tiny SO_RCVBUF that falls behind: it reads one packet, then --count more
/// arrive while it does not read (the queue overflows), then it drains what was kept until
/// EAGAIN. UDP: datagrams to itself from a second socket. ping: an ICMP echo ("ping") socket,
/// whose replies queue through sock_queue_rcv_skb (it enables ping sockets for root in this
/// netns). Reports the socket's real rcvbuf, packets sent, packets received and read calls made
/// (the last one returning EAGAIN).
fn rcvbuf(a: &Args) {
    let ping = choice(a, "--proto", &["udp", "ping"]) == "ping";
    let count = a.num("--count", 20) as usize;
    let addr = a.addr(0);
    let payload = [b'r'; 100];
    let mut buf = [0u8; 2048];
    let (reader, send): (std::net::UdpSocket, Box<dyn Fn(u16)>);
    if ping {
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0").unwrap_or_else(|e| io_die("ping_group_range", e));
        let (domain, proto) =
            if addr.is_ipv6() { (libc::AF_INET6, libc::IPPROTO_ICMPV6) } else { (libc::AF_INET, libc::IPPROTO_ICMP) };
        // SAFETY: a new socket, owned by the UdpSocket from here on.
        let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM, proto) };
        if fd < 0 {
            io_die("ping socket", std::io::Error::last_os_error());
        }
        reader = unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        reader.connect(addr).unwrap_or_else(|e| io_die("connect", e));
        let r = reader.try_clone().unwrap();
        let echo_type = if addr.is_ipv6() { 128u8 } else { 8u8 };
        send = Box::new(move |seq| {
            // type, code, checksum (the kernel fills it), id (the kernel sets it), sequence.
            let mut msg = vec![echo_type, 0, 0, 0, 0, 0];
            msg.extend_from_slice(&seq.to_be_bytes());
            msg.extend_from_slice(&payload);
            r.send(&msg).unwrap_or_else(|e| io_die("ping send", e));
        });
    } else {
        reader = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| io_die("bind", e));
        let sender = std::net::UdpSocket::bind(a.addr(0)).unwrap();
        sender.connect(reader.local_addr().unwrap()).unwrap();
        send = Box::new(move |_| {
            sender.send(&payload).unwrap_or_else(|e| io_die("send", e));
        });
    }
    let fd = reader.as_raw_fd();
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, a.num("--rcvbuf", 4096) as i32);
    let port = reader.local_addr().map(|s| s.port()).unwrap_or(0);
    // One packet read while the queue is nearly empty, then the burst.
    send(0);
    let mut reads = 1;
    let mut received = usize::from(reader.recv(&mut buf).is_ok());
    for seq in 1..=count {
        send(seq as u16);
    }
    // Loopback delivers in the sender's softirq, but a busy machine may defer it to ksoftirqd:
    // let every packet land (queued or dropped) before draining, so drops = sent - received.
    thread::sleep(Duration::from_millis(20));
    reader.set_nonblocking(true).unwrap();
    loop {
        reads += 1;
        match reader.recv(&mut buf) {
            Ok(_) => received += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => io_die("recv", e),
        }
    }
    println!(
        "{{\"pid\":{},\"port\":{port},\"rcvbuf\":{},\"sent\":{},\"received\":{received},\"reads\":{reads}}}",
        std::process::id(),
        getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF),
        count + 1
    );
}

/// --count connections whose server waits --delay-ms after accept() before its first byte; the
/// client reads that byte. Then --unread connections closed without reading, each followed by a
/// pipe read on the fd number just freed.
fn firstbyte(a: &Args) {
    let addr = a.addr(0);
    let (count, unread) = (a.num("--count", 3), a.num("--unread", 0));
    let delay = Duration::from_millis(a.num("--delay-ms", 50));
    let listener = listen(addr, 64);
    let port = listener.local_addr().unwrap().port();
    // For the unread connections the server waits while the client closes and opens its pipe, so
    // no fd of the server's takes the number the client just freed.
    let (accepted_tx, accepted_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        for i in 0..count + unread {
            let (mut s, _) = listener.accept().unwrap();
            if i < count {
                thread::sleep(delay);
                s.write_all(b"x").unwrap();
            } else {
                accepted_tx.send(()).unwrap();
                done_rx.recv().unwrap();
            }
            // Keep the connection until the client is done with it.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        }
    });
    let target = SocketAddr::new(addr.ip(), port);
    for _ in 0..count {
        let mut c = TcpStream::connect(target).unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    let mut fd_reused = 0;
    for _ in 0..unread {
        let c = TcpStream::connect(target).unwrap();
        accepted_rx.recv().unwrap();
        let fd = c.as_raw_fd();
        drop(c);
        let mut p = [0i32; 2];
        // SAFETY: a pipe we write to, read from and close.
        unsafe {
            libc::pipe(p.as_mut_ptr());
            fd_reused += i32::from(p[0] == fd || p[1] == fd);
            libc::write(p[1], b"y".as_ptr().cast(), 1);
            let mut b = [0u8; 1];
            libc::read(p[0], b.as_mut_ptr().cast(), 1);
            libc::close(p[0]);
            libc::close(p[1]);
        }
        done_tx.send(()).unwrap();
    }
    server.join().unwrap();
    println!(
        "{{\"pid\":{},\"port\":{port},\"read\":{count},\"unread\":{unread},\"fd_reused\":{fd_reused}}}",
        std::process::id()
    );
}

/// --count non-blocking connects, each completed through one wait syscall (--via): connect()
/// (EINPROGRESS), sleep --sleep-ms, then wait for writability. epoll: the epoll set is created
/// before the sleep, so a tool that took epoll_create1's return for the completion would time
/// it too early. With --linger-stdin, stay
/// alive after the report until stdin closes (so a tool can still read /proc/PID/maps).
fn connectvia(a: &Args) {
    let addr = a.addr(0);
    let via = choice(a, "--via", &["epoll", "ppoll", "poll", "select"]);
    let sleep = Duration::from_millis(a.num("--sleep-ms", 0));
    let listener = listen(addr, 128);
    let target = SocketAddr::new(addr.ip(), listener.local_addr().unwrap().port());
    let family = if addr.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    let (mut einprogress, mut ok) = (0, 0);
    let mut keep = Vec::new();
    for _ in 0..a.num("--count", 1) {
        // errno is left alone by a connect() that succeeds at once: clear it to tell.
        unsafe { *libc::__errno_location() = 0 };
        let fd = start_nonblocking_connect(family, target).unwrap_or_else(|e| io_die("connect", e));
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINPROGRESS) {
            einprogress += 1;
        }
        // SAFETY: waits on fds we own; the structures live on this stack frame.
        let ready = unsafe {
            match via {
                "epoll" => {
                    let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
                    thread::sleep(sleep);
                    let mut ev = libc::epoll_event { events: libc::EPOLLOUT as u32, u64: fd as u64 };
                    libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
                    let n = libc::epoll_wait(ep, &mut ev, 1, 5000);
                    libc::close(ep);
                    n
                }
                "ppoll" | "poll" => {
                    thread::sleep(sleep);
                    let mut pfd = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                    if via == "poll" {
                        libc::poll(&mut pfd, 1, 5000)
                    } else {
                        let ts = libc::timespec { tv_sec: 5, tv_nsec: 0 };
                        libc::ppoll(&mut pfd, 1, &ts, std::ptr::null())
                    }
                }
                "select" => {
                    thread::sleep(sleep);
                    let mut set: libc::fd_set = std::mem::zeroed();
                    libc::FD_SET(fd, &mut set);
                    let mut tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
                    libc::select(fd + 1, std::ptr::null_mut(), &mut set, std::ptr::null_mut(), &mut tv)
                }
                _ => unreachable!(),
            }
        };
        let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        if ready == 1 && stream.take_error().unwrap().is_none() {
            ok += 1;
        }
        keep.push(stream);
    }
    println!("{{\"pid\":{},\"einprogress\":{einprogress},\"ok\":{ok}}}", std::process::id());
    if a.flag("--linger-stdin") {
        std::io::stdout().flush().unwrap();
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
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
        "sockio" => sockio(&a),
        "rcvbuf" => rcvbuf(&a),
        "firstbyte" => firstbyte(&a),
        "connectvia" => connectvia(&a),
        other => die(&format!("unknown command '{other}'")),
    }
}
