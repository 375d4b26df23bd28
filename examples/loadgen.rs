//! Traffic for netbpf's tests: small, exact TCP workloads on loopback in the caller's network
//! namespace. Each command prints one JSON line saying what it did (pid, ports), so a test can
//! compare the tool's output with the truth.
//!
//!   loadgen [--wait] exchange --family 4|6 --port P --client-send N --server-send M --hold-ms H
//!   loadgen [--wait] connect --family 4|6 --port P --count N [--nonblock] [--source-port S]
//!       (--source-port: each connect() from local port S, bound first with SO_REUSEADDR)
//!   loadgen [--wait] backlog --family 4|6 --port P --backlog B --clients C
//!   loadgen [--wait] udp --family 4|6 --count N [--unconnected M] [--ping]
//!   loadgen [--wait] unix --count N [--pair]
//!   loadgen [--wait] mptcp --family 4|6 --count N
//!   loadgen [--wait] accept-empty --family 4|6
//!   loadgen [--wait] resolve --name HOST --getaddrinfo N --gethostbyname N --gethostbyname2 N --gethostbyname-r N
//!                    [--getaddrinfo-inet N] [--gethostbyname2-r N]
//!       each call's duration as this process measured it is in "calls" (func, ns), in call order;
//!       --getaddrinfo-inet passes AF_INET hints (glibc then runs gethostbyname2_r inside)
//!   loadgen [--wait] ecn --family 4|6 --ce N --ect N --not-ect N [--to ADDR]
//!       with --to, to ADDR port 9 (elsewhere, e.g. across a veth), nothing received here
//!   loadgen [--wait] ping --family 4|6 --count N [--id ID] [--interval-ms MS]
//!   loadgen [--wait] udp-burst --family 4|6 --count N --size BYTES
//!   loadgen [--wait] streams --family 4|6 --port P --send N1,N2.. --reply M1,M2.. --chunks K
//!                    --pause-ms T [--peek] [--sendfile] [--dual-stack]
//!       --dual-stack: the listener is a dual-stack [::] socket; IPv4 clients reach it, its
//!       accepted sockets are AF_INET6 with v4-mapped addresses (::ffff:127.0.0.1)
//!   loadgen [--wait] retrans --family 4|6 --port P --bytes N [--server-sends] [--decoy]
//!       --server-sends: the accepted socket sends the burst; --decoy: the listener has
//!       SO_REUSEPORT, and before the client connects another process (reuseport-listen)
//!       listens on the same port and closes again
//!   loadgen [--wait] reuseport-listen --family 4|6 --port P   (listen with SO_REUSEPORT, close)
//!   loadgen [--wait] synbl --family 4|6 --port P --backlog B --clients C --hold-ms H
//!   loadgen [--wait] nagle --family 4|6 --port P --mode default|nodelay|cork|more --writes N
//!                    --size S
//!   loadgen [--wait] sockio --proto tcp|udp --family 4|6 --msgs N --size S
//!   loadgen [--wait] rcvbuf --proto udp|ping --family 4|6 --rcvbuf B --count N
//!   loadgen [--wait] firstbyte --family 4|6 --delay-ms D --count N --unread K [--reconnect]
//!   loadgen [--wait] connectvia --via epoll|epoll_pwait|epoll_pwait2|ppoll|poll|select|
//!                    select-syscall --family 4|6 --count N --sleep-ms M [--reconnect]
//!                    [--linger-stdin]
//!       (select is glibc's, which makes the pselect6 syscall; select-syscall makes select(2))
//!   loadgen [--wait] slowconnect --family 4|6
//!       a non-blocking connect whose SYN is dropped (full accept queue) for about 1 s, while a
//!       poll() on another, ready fd returns at once
//!   loadgen [--wait] udp-send --family 4|6 [--to ADDR] --port P --count N --size S [--recv]
//!       N datagrams of S payload bytes to ADDR (default loopback) port P; with --recv, a receiver
//!       bound to ADDR:P (P 0: any free port) in this process reads them all before exiting
//!       (with --unread too, it leaves them queued and closes: the kernel drops them).
//!   loadgen [--wait] tcp-send --to ADDR --port P --bytes N
//!       connects to a server elsewhere (e.g. across a veth), sends N bytes, closes, and waits
//!       for the server's close.
//!   loadgen [--wait] segments --family 4|6 --port P --client-send N --server-send M
//!   loadgen [--wait] pingpong --family 4|6 --port P --rounds R --size S [--to ADDR]
//!                    [--server-netns PATH]
//!       R round trips of S bytes each way; the server listens on ADDR (default loopback), in
//!       the network namespace at PATH if given (e.g. across a veth). Reports both ends'
//!       smoothed RTT (tcpi_rtt) and the client's retransmitted segments at the end.
//!   loadgen [--wait] connlat --family 4|6 --port P --count N [--slow]
//!   loadgen [--wait] pktlat --family 4|6 --port P --rounds R --size S --delay-ms D
//!       R rounds: the client sends S bytes and waits for a 1-byte reply; the server thread
//!       sleeps D ms before each read, so each message waits about D ms unread.
//!   loadgen [--wait] uring-accept --family 4|6 --port P --clients C   (accepts through io_uring)
//!   loadgen [--wait] forked --family 4|6 --port P --client-send N --server-send M
//!       three processes: this one listens, a forked child accepts and serves, another forked
//!       child connects (and closes first); prints all three pids.
//!   loadgen [--wait] msgpaths --family 4|6
//!   loadgen [--wait] interrupted --family 4|6 [--accept] [--restart]
//!       a blocking connect() (accept()) that a signal interrupts (interrupted() says how).
//!       UDP datagrams through every send and receive syscall path (msgpaths() says which).
//!
//!   loadgen [--wait] binds --port P
//!       a fixed series of bind() calls with socket options and failures (binds() says which)
//!   loadgen [--wait] listens --port P
//!       a fixed series of listen() calls (listens() says which)
//!   loadgen [--wait] halfopen --family 4|6 --wait-ms MS
//!       a connect() left in its handshake for MS ms, then closed (halfopen() says why)
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
    fn text(&self, name: &str, default: &str) -> String {
        let Some(i) = self.0.iter().position(|a| a == name) else {
            return default.to_string();
        };
        self.0
            .get(i + 1)
            .cloned()
            .unwrap_or_else(|| die(&format!("{name} needs a value")))
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
    fn opt_text(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        Some(
            self.0
                .get(i + 1)
                .unwrap_or_else(|| die(&format!("{name} needs a value"))),
        )
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
    // The client's congestion window once the exchange is done (before closing).
    let info = tcp_info(&c);
    thread::sleep(hold);
    drop(c);
    server.join().unwrap();
    // Let the final ACKs land before exiting.
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"pid\":{},\"server_port\":{server_port},\"client_port\":{client_port},\"client_snd_cwnd\":{},\"client_snd_ssthresh\":{}}}",
        std::process::id(),
        info.tcpi_snd_cwnd,
        info.tcpi_snd_ssthresh
    );
}

fn connect(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let mut ok = 0;
    let mut refused = 0;
    let mut ports = Vec::new();
    for _ in 0..a.num("--count", 1) {
        let sport = a.num("--source-port", 0) as u16;
        let r = if a.flag("--nonblock") {
            connect_nonblocking(addr)
        } else if sport != 0 {
            connect_from(sport, addr)
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

/// A blocking connect() from local port `sport` (SO_REUSEADDR, so a refused connect's port can
/// be bound again at once).
fn connect_from(sport: u16, addr: SocketAddr) -> std::io::Result<u16> {
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: a fresh socket, owned by the TcpStream from here on.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    if raw_bind(fd, SocketAddr::new(addr.ip(), sport)) != 0 {
        return Err(std::io::Error::last_os_error());
    }
    match connect_errno(fd, addr) {
        0 => Ok(stream.local_addr()?.port()),
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
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

/// UDP on loopback: a receiver; with --count N a client socket connect()ed to it sends N
/// datagrams; with --unconnected M another socket sends M datagrams with sendto() and no
/// connect(); with --ping an ICMP "ping" socket is connect()ed too (after allowing ping sockets
/// in this namespace). The receiver recv()s every datagram. Syscalls made: socket() and bind()
/// once per UDP socket, connect() once per connected socket, one send and one recv per datagram.
fn udp(a: &Args) {
    let receiver = UdpSocket::bind(a.addr(0)).unwrap_or_else(|e| die(&format!("udp bind: {e}")));
    let server = receiver.local_addr().unwrap();
    let mut datagrams = 0;
    let mut client_port = 0;
    let count = a.num("--count", 0);
    if count > 0 {
        let c = UdpSocket::bind(a.addr(0)).unwrap();
        c.connect(server)
            .unwrap_or_else(|e| die(&format!("udp connect: {e}")));
        client_port = c.local_addr().unwrap().port();
        for _ in 0..count {
            c.send(b"connected").unwrap();
        }
        datagrams += count;
    }
    let mut unconnected_port = 0;
    let unconnected = a.num("--unconnected", 0);
    if unconnected > 0 {
        let u = UdpSocket::bind(a.addr(0)).unwrap();
        unconnected_port = u.local_addr().unwrap().port();
        for _ in 0..unconnected {
            u.send_to(b"unconnected", server).unwrap();
        }
        datagrams += unconnected;
    }
    let mut buf = [0u8; 64];
    for _ in 0..datagrams {
        receiver.recv(&mut buf).unwrap();
    }
    let ping = a.flag("--ping") && ping_connect(server.ip());
    println!(
        "{{\"pid\":{},\"server_port\":{},\"client_port\":{client_port},\"unconnected_port\":{unconnected_port},\"ping\":{ping}}}",
        std::process::id(),
        server.port()
    );
}

/// Connects an ICMP echo ("ping") socket to `ip`. Ping sockets share the datagram connect()
/// code with UDP; allowed to every group in this (the test's) namespace first.
fn ping_connect(ip: IpAddr) -> bool {
    if std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647").is_err() {
        return false;
    }
    let (family, proto) = if ip.is_ipv6() {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP)
    };
    unsafe {
        let fd = libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto);
        if fd < 0 {
            return false;
        }
        let ok = raw_connect(fd, SocketAddr::new(ip, 0)) == 0;
        libc::close(fd);
        ok
    }
}

fn raw_connect(fd: i32, addr: SocketAddr) -> i32 {
    unsafe {
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
    }
}

/// AF_UNIX stream sockets: a listener on an abstract name (private to this network namespace),
/// N clients connect()ed and accept()ed; with --pair one socketpair() too.
fn unix(a: &Args) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
    let name = format!("netbpf-loadgen-{}", std::process::id());
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener =
        UnixListener::bind_addr(&addr).unwrap_or_else(|e| die(&format!("unix bind: {e}")));
    let count = a.num("--count", 1);
    let clients: Vec<UnixStream> = (0..count)
        .map(|_| UnixStream::connect_addr(&addr).unwrap())
        .collect();
    let accepted: Vec<UnixStream> = clients
        .iter()
        .map(|_| listener.accept().unwrap().0)
        .collect();
    drop((accepted, clients));
    if a.flag("--pair") {
        drop(UnixStream::pair().unwrap());
    }
    println!("{{\"pid\":{},\"name\":\"@{name}\"}}", std::process::id());
}

/// MPTCP (socket(..., IPPROTO_MPTCP)): a listener, N clients connect()ed and accept()ed. Says
/// "enabled":false and does nothing when this namespace has net.mptcp.enabled = 0.
fn mptcp(a: &Args) {
    const IPPROTO_MPTCP: i32 = 262;
    let enabled =
        std::fs::read_to_string("/proc/sys/net/mptcp/enabled").is_ok_and(|v| v.trim() == "1");
    if !enabled {
        println!("{{\"pid\":{},\"enabled\":false}}", std::process::id());
        return;
    }
    let family = if a.num("--family", 4) == 6 {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let socket = || {
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                IPPROTO_MPTCP,
            )
        };
        if fd < 0 {
            die(&format!(
                "MPTCP socket: {}",
                std::io::Error::last_os_error()
            ));
        }
        fd
    };
    let lfd = socket();
    // Bind through std's types: wrap the fd, bind to port 0 with libc, read the port back.
    let listener = unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(lfd) };
    let any = a.addr(a.num("--port", 0) as u16);
    if raw_bind(lfd, any) != 0 || unsafe { libc::listen(lfd, 16) } != 0 {
        die(&format!(
            "MPTCP bind/listen: {}",
            std::io::Error::last_os_error()
        ));
    }
    let port = listener.local_addr().unwrap().port();
    let count = a.num("--count", 1);
    let clients: Vec<TcpStream> = (0..count)
        .map(|_| {
            let fd = socket();
            if raw_connect(fd, SocketAddr::new(any.ip(), port)) != 0 {
                die(&format!(
                    "MPTCP connect: {}",
                    std::io::Error::last_os_error()
                ));
            }
            unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        })
        .collect();
    let accepted: Vec<TcpStream> = clients
        .iter()
        .map(|_| listener.accept().unwrap().0)
        .collect();
    drop((accepted, clients));
    println!(
        "{{\"pid\":{},\"enabled\":true,\"port\":{port}}}",
        std::process::id()
    );
}

fn raw_bind(fd: i32, addr: SocketAddr) -> i32 {
    unsafe {
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
                libc::bind(
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
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of_val(&sa) as u32,
                )
            }
        }
    }
}

/// A non-blocking accept() on a listener with nothing queued: fails with EAGAIN.
fn accept_empty(a: &Args) {
    let listener = listen(a.addr(a.num("--port", 0) as u16), 16);
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => die(&format!("expected EAGAIN from accept(), got {other:?}")),
    }
    println!(
        "{{\"pid\":{},\"port\":{}}}",
        std::process::id(),
        listener.local_addr().unwrap().port()
    );
}

extern "C" {
    // Not in the libc crate; glibc exports all four.
    fn gethostbyname(name: *const libc::c_char) -> *mut libc::hostent;
    fn gethostbyname2(name: *const libc::c_char, af: libc::c_int) -> *mut libc::hostent;
    fn gethostbyname_r(
        name: *const libc::c_char,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
    fn gethostbyname2_r(
        name: *const libc::c_char,
        af: libc::c_int,
        ret: *mut libc::hostent,
        buf: *mut libc::c_char,
        buflen: libc::size_t,
        result: *mut *mut libc::hostent,
        h_errnop: *mut libc::c_int,
    ) -> libc::c_int;
}

/// Host name lookups through the C library, each function called the number of times asked;
/// reports how many succeeded, and how long each call took.
fn resolve(a: &Args) {
    let name = std::ffi::CString::new(a.text("--name", "localhost")).unwrap();
    let mut ok = [0u64; 6];
    let mut calls = Vec::new();
    let mut timed = |func: &'static str, call: &mut dyn FnMut() -> bool| {
        let t = std::time::Instant::now();
        let good = call();
        calls.push(format!(
            "{{\"func\":\"{func}\",\"ns\":{}}}",
            t.elapsed().as_nanos()
        ));
        u64::from(good)
    };
    let getaddrinfo = |hints: *const libc::addrinfo| {
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        let rc = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), hints, &mut res) };
        if rc == 0 {
            unsafe { libc::freeaddrinfo(res) };
        }
        rc == 0
    };
    for _ in 0..a.num("--getaddrinfo", 0) {
        ok[0] += timed("getaddrinfo", &mut || getaddrinfo(std::ptr::null()));
    }
    for _ in 0..a.num("--getaddrinfo-inet", 0) {
        let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
        hints.ai_family = libc::AF_INET;
        ok[4] += timed("getaddrinfo", &mut || getaddrinfo(&hints));
    }
    for _ in 0..a.num("--gethostbyname", 0) {
        ok[1] += timed("gethostbyname", &mut || {
            !unsafe { gethostbyname(name.as_ptr()) }.is_null()
        });
    }
    for _ in 0..a.num("--gethostbyname2", 0) {
        ok[2] += timed("gethostbyname2", &mut || {
            !unsafe { gethostbyname2(name.as_ptr(), libc::AF_INET) }.is_null()
        });
    }
    let mut he: libc::hostent = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut result: *mut libc::hostent = std::ptr::null_mut();
    let mut herr = 0;
    for _ in 0..a.num("--gethostbyname-r", 0) {
        ok[3] += timed("gethostbyname_r", &mut || {
            let rc = unsafe {
                gethostbyname_r(
                    name.as_ptr(),
                    &mut he,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                    &mut herr,
                )
            };
            rc == 0 && !result.is_null()
        });
    }
    for _ in 0..a.num("--gethostbyname2-r", 0) {
        ok[5] += timed("gethostbyname2_r", &mut || {
            let rc = unsafe {
                gethostbyname2_r(
                    name.as_ptr(),
                    libc::AF_INET,
                    &mut he,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                    &mut herr,
                )
            };
            rc == 0 && !result.is_null()
        });
    }
    let mut report = format!(
        "{{\"pid\":{},\"ok\":{{\"getaddrinfo\":{},\"gethostbyname\":{},\"gethostbyname2\":{},\"gethostbyname_r\":{}",
        std::process::id(),
        ok[0],
        ok[1],
        ok[2],
        ok[3]
    );
    // Only when asked for, so the object stays as it was for callers that do not ask.
    if a.get("--getaddrinfo-inet").is_some() {
        report.push_str(&format!(",\"getaddrinfo_inet\":{}", ok[4]));
    }
    if a.get("--gethostbyname2-r").is_some() {
        report.push_str(&format!(",\"gethostbyname2_r\":{}", ok[5]));
    }
    println!("{report}}},\"calls\":[{}]}}", calls.join(","));
}

fn set_int_opt(fd: i32, level: i32, opt: i32, v: i32) {
    let rc = unsafe { libc::setsockopt(fd, level, opt, (&v as *const i32).cast(), 4) };
    if rc != 0 {
        die(&format!(
            "setsockopt({level}, {opt}): {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// UDP datagrams on loopback with each ECN codepoint: --ce with Congestion Experienced (3),
/// --ect with ECT(0) (2), --not-ect with 0. All are received before it reports.
fn ecn(a: &Args) {
    if let Some(to) = a.opt_text("--to") {
        return ecn_to(a, to);
    }
    let addr = a.addr(0);
    let rx = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| die(&format!("bind: {e}")));
    let tx = std::net::UdpSocket::bind(addr).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (level, opt) = if addr.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
    } else {
        (libc::IPPROTO_IP, libc::IP_TOS)
    };
    let mut sent = 0;
    for (flag, codepoint) in [("--ce", 3), ("--ect", 2), ("--not-ect", 0)] {
        set_int_opt(tx.as_raw_fd(), level, opt, codepoint);
        for _ in 0..a.num(flag, 0) {
            tx.send(b"ecn").unwrap();
            sent += 1;
        }
    }
    let mut buf = [0u8; 64];
    for _ in 0..sent {
        rx.recv(&mut buf)
            .unwrap_or_else(|e| die(&format!("receive: {e}")));
    }
    println!(
        "{{\"pid\":{},\"sport\":{},\"dport\":{},\"sent\":{sent}}}",
        std::process::id(),
        tx.local_addr().unwrap().port(),
        rx.local_addr().unwrap().port()
    );
}

/// ecn --to: datagrams with each codepoint to ADDR:9, sent unconnected (the port unreachable
/// errors coming back do not fail the next send).
fn ecn_to(a: &Args, to: &str) {
    let dst = SocketAddr::new(
        to.parse()
            .unwrap_or_else(|_| die(&format!("--to: bad address '{to}'"))),
        9,
    );
    let any: IpAddr = if dst.is_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    let tx = UdpSocket::bind(SocketAddr::new(any, 0)).unwrap();
    let (level, opt) = if dst.is_ipv6() {
        (libc::IPPROTO_IPV6, libc::IPV6_TCLASS)
    } else {
        (libc::IPPROTO_IP, libc::IP_TOS)
    };
    let mut sent = 0;
    for (flag, codepoint) in [("--ce", 3), ("--ect", 2), ("--not-ect", 0)] {
        set_int_opt(tx.as_raw_fd(), level, opt, codepoint);
        for _ in 0..a.num(flag, 0) {
            tx.send_to(b"ecn", dst)
                .unwrap_or_else(|e| die(&format!("send to {dst}: {e}")));
            sent += 1;
        }
    }
    println!(
        "{{\"pid\":{},\"sport\":{},\"dport\":9,\"sent\":{sent}}}",
        std::process::id(),
        tx.local_addr().unwrap().port()
    );
}

/// ICMP echo to the loopback address with an unprivileged ICMP socket (SOCK_DGRAM), allowed in
/// this namespace through net.ipv4.ping_group_range. The echo identifier is the socket's bound
/// "port" (--id, or one the kernel picks). Reports the identifier and each reply's sequence.
fn ping(a: &Args) {
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")
        .unwrap_or_else(|e| die(&format!("ping_group_range: {e}")));
    let v6 = a.num("--family", 4) == 6;
    let (family, proto, echo) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6, 128u8)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP, 8u8)
    };
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        die(&format!("ICMP socket: {}", std::io::Error::last_os_error()));
    }
    let sock = unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let id = a.num("--id", 0) as u16;
    let local = SocketAddr::new(a.addr(0).ip(), id);
    // std's UDP bind is a plain bind(2), which is what sets a ping socket's identifier.
    bind_fd(fd, local);
    let id = local_port(fd);
    sock.connect(a.addr(0))
        .unwrap_or_else(|e| die(&format!("connect: {e}")));
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let interval = Duration::from_millis(a.num("--interval-ms", 20));
    let mut seqs = Vec::new();
    for seq in 1..=a.num("--count", 1) as u16 {
        let mut msg = vec![0u8; 64];
        msg[0] = echo;
        msg[6..8].copy_from_slice(&seq.to_be_bytes());
        sock.send(&msg)
            .unwrap_or_else(|e| die(&format!("send: {e}")));
        let mut buf = [0u8; 256];
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| die(&format!("no echo reply: {e}")));
        if n < 8 {
            die("short echo reply");
        }
        seqs.push(u16::from_be_bytes([buf[6], buf[7]]).to_string());
        thread::sleep(interval);
    }
    println!(
        "{{\"pid\":{},\"id\":{id},\"seqs\":[{}]}}",
        std::process::id(),
        seqs.join(",")
    );
}

fn bind_fd(fd: i32, addr: SocketAddr) {
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
            unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of_val(&sa) as u32,
                )
            }
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
            unsafe {
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of_val(&sa) as u32,
                )
            }
        }
    };
    if rc != 0 {
        die(&format!("bind {addr}: {}", std::io::Error::last_os_error()));
    }
}

fn local_port(fd: i32) -> u16 {
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&ss) as u32;
    if unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } != 0
    {
        die("getsockname failed");
    }
    // sin_port and sin6_port sit at the same offset.
    let sin = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
    u16::from_be(sin.sin_port)
}

/// --count UDP datagrams of --size bytes sent back to back to a receiver on loopback (e.g. to
/// fill a rate-limited qdisc), each received by a thread before it reports.
fn udp_burst(a: &Args) {
    let addr = a.addr(0);
    let rx = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| die(&format!("bind: {e}")));
    let tx = std::net::UdpSocket::bind(addr).unwrap();
    tx.connect(rx.local_addr().unwrap()).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let count = a.num("--count", 1);
    let receiver = thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut got = 0u64;
        while got < count && rx.recv(&mut buf).is_ok() {
            got += 1;
        }
        got
    });
    let payload = vec![b'q'; a.num("--size", 1000) as usize];
    for _ in 0..count {
        tx.send(&payload)
            .unwrap_or_else(|e| die(&format!("send: {e}")));
    }
    let received = receiver.join().unwrap();
    println!(
        "{{\"pid\":{},\"sport\":{},\"sent\":{count},\"received\":{received}}}",
        std::process::id(),
        tx.local_addr().unwrap().port()
    );
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
/// those bytes are read again afterwards and must not be counted twice. With --sendfile the
/// clients send with sendfile(2) from a memfd instead of write(2).
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
    let use_sendfile = a.flag("--sendfile");
    let listener = if a.flag("--dual-stack") {
        listen(
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), addr.port()),
            16,
        )
    } else {
        listen(addr, 16)
    };
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
                    if use_sendfile {
                        send_file(&c, n as usize);
                    } else {
                        c.write_all(&vec![b'c'; n as usize]).unwrap();
                    }
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

/// Sends n bytes on s with sendfile(2), from a memfd holding them.
fn send_file(s: &TcpStream, n: usize) {
    // SAFETY: a fresh memfd, written from a live buffer, then sent from and closed.
    unsafe {
        let fd = libc::memfd_create(c"loadgen".as_ptr(), libc::MFD_CLOEXEC);
        assert!(fd >= 0, "memfd_create");
        let data = vec![b'f'; n];
        assert_eq!(libc::write(fd, data.as_ptr().cast(), n), n as isize);
        let mut off: libc::off_t = 0;
        while (off as usize) < n {
            let k = libc::sendfile(s.as_raw_fd(), fd, &mut off, n - off as usize);
            if k <= 0 {
                die(&format!("sendfile: {}", std::io::Error::last_os_error()));
            }
        }
        libc::close(fd);
    }
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

/// One burst of --bytes from client to server (or, with --server-sends, from the accepted socket
/// to the client), then a 1-byte answer. Meant to run behind a lossy qdisc on lo: reports how many
/// segments the sender retransmitted, by the kernel's count. --decoy: see the file header.
fn retrans(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let n = a.num("--bytes", 65536) as usize;
    let server_sends = a.flag("--server-sends");
    let decoy = a.flag("--decoy");
    let listener = if decoy {
        reuseport_listener(addr)
    } else {
        listen(addr, 16)
    };
    let port = listener.local_addr().unwrap().port();
    let mut decoy_pid = 0;
    if decoy {
        let family = a.num("--family", 4).to_string();
        let st = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "reuseport-listen",
                "--family",
                &family,
                "--port",
                &port.to_string(),
            ])
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let text = String::from_utf8_lossy(&st.stdout);
        decoy_pid = text
            .trim()
            .trim_start_matches("{\"pid\":")
            .trim_end_matches('}')
            .parse::<u32>()
            .unwrap();
    }
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let sent = if server_sends {
            s.write_all(&vec![b'r'; n]).unwrap();
            read_n(&mut s, 1);
            Some(total_retrans(&s))
        } else {
            read_n(&mut s, n);
            s.write_all(b"k").unwrap();
            None
        };
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        sent
    });
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    let mut retransmitted = 0;
    if server_sends {
        read_n(&mut c, n);
        c.write_all(b"k").unwrap();
    } else {
        c.write_all(&vec![b'r'; n]).unwrap();
        read_n(&mut c, 1);
        retransmitted = total_retrans(&c);
    }
    drop(c);
    if let Some(by_server) = server.join().unwrap() {
        retransmitted = by_server;
    }
    println!(
        "{{\"pid\":{},\"server_port\":{port},\"client_port\":{client_port},\"total_retrans\":{retransmitted},\"decoy_pid\":{decoy_pid}}}",
        std::process::id()
    );
}

/// A listener with SO_REUSEPORT set (so another process can listen on the same port), backlog 16.
fn reuseport_listener(addr: SocketAddr) -> TcpListener {
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: a fresh socket, setsockopt with an int, bind and listen; owned by the listener.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEPORT, libc::SO_REUSEADDR] {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                4,
            );
        }
        if raw_bind(fd, addr) != 0 || libc::listen(fd, 16) != 0 {
            die(&format!(
                "reuseport listen {addr}: {}",
                std::io::Error::last_os_error()
            ));
        }
        <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }
}

/// Listens on --port with SO_REUSEPORT, then closes: another process's listener on that port
/// comes and goes.
fn reuseport_listen(a: &Args) {
    let l = reuseport_listener(a.addr(a.num("--port", 0) as u16));
    drop(l);
    println!("{{\"pid\":{}}}", std::process::id());
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

/// Sizes returned by each send/recv call, in order (0 = end of stream).
#[derive(Default)]
struct Calls {
    sends: Vec<usize>,
    recvs: Vec<usize>,
}

impl Calls {
    fn json(&self) -> String {
        let list = |v: &[usize]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "{{\"sends\":[{}],\"recvs\":[{}]}}",
            list(&self.sends),
            list(&self.recvs)
        )
    }
}

fn io_die(what: &str, e: std::io::Error) -> ! {
    die(&format!("{what}: {e}"))
}

/// The value of a word option (--proto udp), one of `allowed`, or the first of them by default.
fn choice<'a>(a: &'a Args, name: &str, allowed: &[&'a str]) -> &'a str {
    let Some(i) = a.0.iter().position(|x| x == name) else {
        return allowed[0];
    };
    let v =
        a.0.get(i + 1)
            .unwrap_or_else(|| die(&format!("{name} needs a value")));
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
        cli.connect(SocketAddr::new(addr.ip(), server_port))
            .unwrap();
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
        libc::setsockopt(
            fd,
            level,
            name,
            (&val as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        )
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
        std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 0")
            .unwrap_or_else(|e| io_die("ping_group_range", e));
        let (domain, proto) = if addr.is_ipv6() {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        // SAFETY: a new socket, owned by the UdpSocket from here on.
        let fd = unsafe { libc::socket(domain, libc::SOCK_DGRAM, proto) };
        if fd < 0 {
            io_die("ping socket", std::io::Error::last_os_error());
        }
        reader = unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        reader
            .connect(addr)
            .unwrap_or_else(|e| io_die("connect", e));
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
    setsockopt_int(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        a.num("--rcvbuf", 4096) as i32,
    );
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
/// client reads that byte (--reconnect: after a non-blocking connect it asks for the result with
/// connect() twice, as Python's connect_ex() loop does). Then --unread connections closed without
/// reading, each followed by a pipe read on the fd number just freed.
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
    let reconnect = a.flag("--reconnect");
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    for _ in 0..count {
        let mut c = if reconnect {
            // Non-blocking, then connect() again for the result (0), and again (EISCONN).
            let fd =
                start_nonblocking_connect(family, target).unwrap_or_else(|e| io_die("connect", e));
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one pollfd on this stack frame.
            unsafe { libc::poll(&mut pfd, 1, 5000) };
            let (again, once_more) = (connect_errno(fd, target), connect_errno(fd, target));
            if (again, once_more) != (0, libc::EISCONN) {
                die(&format!("connect() again gave {again}, then {once_more}"));
            }
            let c = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            c.set_nonblocking(false).unwrap();
            c
        } else {
            TcpStream::connect(target).unwrap()
        };
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
/// it too early. --reconnect: then connect() again twice (0, then EISCONN), the way many event
/// loops learn the result. With --linger-stdin, stay alive after the report until stdin closes
/// (so a tool can still read /proc/PID/maps).
fn connectvia(a: &Args) {
    let addr = a.addr(0);
    let via = choice(
        a,
        "--via",
        &[
            "epoll",
            "ppoll",
            "poll",
            "select",
            "select-syscall",
            "epoll_pwait",
            "epoll_pwait2",
        ],
    );
    let sleep = Duration::from_millis(a.num("--sleep-ms", 0));
    let listener = listen(addr, 128);
    let target = SocketAddr::new(addr.ip(), listener.local_addr().unwrap().port());
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let (mut einprogress, mut ok, mut reconnect_ok, mut eisconn) = (0, 0, 0, 0);
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
                "epoll" | "epoll_pwait" | "epoll_pwait2" => {
                    let ep = libc::epoll_create1(libc::EPOLL_CLOEXEC);
                    thread::sleep(sleep);
                    let mut ev = libc::epoll_event {
                        events: libc::EPOLLOUT as u32,
                        u64: fd as u64,
                    };
                    libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev);
                    let n = match via {
                        "epoll" => libc::epoll_wait(ep, &mut ev, 1, 5000),
                        "epoll_pwait" => libc::epoll_pwait(ep, &mut ev, 1, 5000, std::ptr::null()),
                        _ => {
                            let ts = libc::timespec {
                                tv_sec: 5,
                                tv_nsec: 0,
                            };
                            // No sigmask: its size argument is then ignored.
                            libc::syscall(
                                libc::SYS_epoll_pwait2,
                                ep,
                                &mut ev as *mut libc::epoll_event,
                                1,
                                &ts as *const libc::timespec,
                                std::ptr::null::<libc::sigset_t>(),
                                0,
                            ) as i32
                        }
                    };
                    libc::close(ep);
                    n
                }
                "ppoll" | "poll" => {
                    thread::sleep(sleep);
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    if via == "poll" {
                        libc::poll(&mut pfd, 1, 5000)
                    } else {
                        let ts = libc::timespec {
                            tv_sec: 5,
                            tv_nsec: 0,
                        };
                        libc::ppoll(&mut pfd, 1, &ts, std::ptr::null())
                    }
                }
                "select" | "select-syscall" => {
                    thread::sleep(sleep);
                    let mut set: libc::fd_set = std::mem::zeroed();
                    libc::FD_SET(fd, &mut set);
                    let mut tv = libc::timeval {
                        tv_sec: 5,
                        tv_usec: 0,
                    };
                    if via == "select" {
                        // glibc's select() makes the pselect6 syscall.
                        libc::select(
                            fd + 1,
                            std::ptr::null_mut(),
                            &mut set,
                            std::ptr::null_mut(),
                            &mut tv,
                        )
                    } else {
                        libc::syscall(
                            libc::SYS_select,
                            fd + 1,
                            std::ptr::null_mut::<libc::fd_set>(),
                            &mut set as *mut libc::fd_set,
                            std::ptr::null_mut::<libc::fd_set>(),
                            &mut tv as *mut libc::timeval,
                        ) as i32
                    }
                }
                _ => unreachable!(),
            }
        };
        if a.flag("--reconnect") {
            // Asking for the result as Python's connect_ex() loop does: connect() again (0 once
            // connected), then once more (EISCONN). getsockopt(SO_ERROR) below still works.
            reconnect_ok += i32::from(connect_errno(fd, target) == 0);
            eisconn += i32::from(connect_errno(fd, target) == libc::EISCONN);
        }
        let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        if ready == 1 && stream.take_error().unwrap().is_none() {
            ok += 1;
        }
        keep.push(stream);
    }
    println!(
        "{{\"pid\":{},\"einprogress\":{einprogress},\"ok\":{ok},\"reconnect_ok\":{reconnect_ok},\"eisconn\":{eisconn}}}",
        std::process::id()
    );
    if a.flag("--linger-stdin") {
        std::io::stdout().flush().unwrap();
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
    }
}

fn udp_send(a: &Args) {
    let mut dst = a.addr(a.num("--port", 0) as u16);
    if let Some(to) = a.opt_text("--to") {
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
    let unread = a.flag("--unread");
    for _ in 0..count {
        sender
            .send_to(&payload, dst)
            .unwrap_or_else(|e| die(&format!("send to {dst}: {e}")));
        // Read each one before the next: the receive queue never overflows.
        if let (Some(r), false) = (&receiver, unread) {
            match r.recv(&mut buf) {
                Ok(n) if n == size => received += 1,
                Ok(n) => die(&format!("received {n} bytes, sent {size}")),
                Err(e) => die(&format!("receive: {e}")),
            }
        }
    }
    let sport = sender.local_addr().unwrap().port();
    if unread {
        // Give the datagrams time to arrive (another namespace's softirq), then close on them.
        thread::sleep(Duration::from_millis(100));
        drop(receiver);
    }
    println!(
        "{{\"pid\":{},\"port\":{},\"sent\":{count},\"received\":{received},\"sport\":{sport}}}",
        std::process::id(),
        dst.port(),
    );
}

fn tcp_send(a: &Args) {
    let to = a
        .opt_text("--to")
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
    let mut addr = a.addr(a.num("--port", 0) as u16);
    if let Some(to) = a.opt_text("--to") {
        addr.set_ip(
            to.parse()
                .unwrap_or_else(|_| die(&format!("--to: bad address '{to}'"))),
        );
    }
    let (rounds, size) = (a.num("--rounds", 10), a.num("--size", 100) as usize);
    let server_netns = a.opt_text("--server-netns").map(str::to_string);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = thread::spawn(move || {
        if let Some(path) = server_netns {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| die(&format!("{path}: {e}")));
            // SAFETY: setns on this thread only: the server's sockets live in that namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                die(&format!(
                    "setns {path}: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        let listener = listen(addr, 16);
        ready_tx
            .send(listener.local_addr().unwrap().port())
            .unwrap();
        let (mut s, _) = listener.accept().unwrap();
        nodelay(&s);
        let mut buf = vec![0u8; size];
        for _ in 0..rounds {
            s.read_exact(&mut buf).unwrap();
            s.write_all(&buf).unwrap();
        }
        let rtt = tcp_info(&s).tcpi_rtt;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        rtt
    });
    let server_port = ready_rx.recv().unwrap();
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
    nodelay(&c);
    let client_port = c.local_addr().unwrap().port();
    let mut buf = vec![b'p'; size];
    for _ in 0..rounds {
        c.write_all(&buf).unwrap();
        c.read_exact(&mut buf).unwrap();
    }
    let info = tcp_info(&c);
    drop(c);
    let server_rtt = server.join().unwrap();
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"pid\":{},\"server_port\":{server_port},\"client_port\":{client_port},\"rounds\":{rounds},\"client_rtt_us\":{},\"server_rtt_us\":{server_rtt},\"client_total_retrans\":{}}}",
        std::process::id(),
        info.tcpi_rtt,
        info.tcpi_total_retrans
    );
}

fn pktlat(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let (rounds, size) = (a.num("--rounds", 3), a.num("--size", 100) as usize);
    let delay = Duration::from_millis(a.num("--delay-ms", 100));
    let listener = listen(addr, 16);
    let server_port = listener.local_addr().unwrap().port();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        nodelay(&s);
        let tid = gettid();
        let mut buf = vec![0u8; size];
        for _ in 0..rounds {
            // The client's message arrives during this sleep and waits unread.
            thread::sleep(delay);
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"r").unwrap();
        }
        tid
    });
    let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
    nodelay(&c);
    let client_port = c.local_addr().unwrap().port();
    let msg = vec![b'm'; size];
    let mut reply = [0u8; 1];
    for _ in 0..rounds {
        c.write_all(&msg).unwrap();
        c.read_exact(&mut reply).unwrap();
    }
    let server_tid = server.join().unwrap();
    drop(c);
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"pid\":{},\"client_tid\":{},\"server_tid\":{server_tid},\"server_port\":{server_port},\"client_port\":{client_port},\"rounds\":{rounds}}}",
        std::process::id(),
        gettid()
    );
}

/// The socket's TCP_INFO.
fn tcp_info(s: &TcpStream) -> libc::tcp_info {
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
        info
    }
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

/// Like `backlog`, but each connection is accepted with an io_uring IORING_OP_ACCEPT instead of
/// accept(2), so tools that watch the accept syscalls do not see it.
fn uring_accept(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let listener = listen(addr, 16);
    let port = listener.local_addr().unwrap().port();
    let clients: Vec<TcpStream> = (0..a.num("--clients", 1))
        .map(|_| TcpStream::connect(SocketAddr::new(addr.ip(), port)).unwrap())
        .collect();
    let ring = uring::Ring::new(4).unwrap_or_else(|e| die(&format!("io_uring_setup: {e}")));
    let accepted: Vec<i32> = clients
        .iter()
        .map(|_| {
            ring.accept(listener.as_raw_fd())
                .unwrap_or_else(|e| die(&format!("io_uring accept: {e}")))
        })
        .collect();
    for fd in &accepted {
        unsafe { libc::close(*fd) };
    }
    drop(clients);
    println!(
        "{{\"pid\":{},\"port\":{port},\"accepted\":{}}}",
        std::process::id(),
        accepted.len()
    );
}

/// The least of io_uring needed to run one operation at a time (no liburing): the rings are
/// mapped as the kernel's uapi describes them.
mod uring {
    use std::io::Error;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[repr(C)]
    #[derive(Default)]
    struct SqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        flags: u32,
        dropped: u32,
        array: u32,
        resv1: u32,
        user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct CqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        overflow: u32,
        cqes: u32,
        flags: u32,
        resv1: u32,
        user_addr: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: SqOffsets,
        cq_off: CqOffsets,
    }

    const OFF_SQ_RING: i64 = 0;
    const OFF_CQ_RING: i64 = 0x800_0000;
    const OFF_SQES: i64 = 0x1000_0000;
    const OP_ACCEPT: u8 = 13;
    const ENTER_GETEVENTS: u32 = 1;

    pub struct Ring {
        fd: i32,
        sq: *mut u8,
        cq: *mut u8,
        sqes: *mut u8,
        p: Params,
    }

    fn map(fd: i32, len: usize, off: i64) -> Result<*mut u8, Error> {
        let m = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                off,
            )
        };
        if m == libc::MAP_FAILED {
            Err(Error::last_os_error())
        } else {
            Ok(m as *mut u8)
        }
    }

    impl Ring {
        pub fn new(entries: u32) -> Result<Ring, Error> {
            let mut p = Params::default();
            let fd =
                unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, &mut p as *mut Params) }
                    as i32;
            if fd < 0 {
                return Err(Error::last_os_error());
            }
            let sq = map(
                fd,
                (p.sq_off.array + p.sq_entries * 4) as usize,
                OFF_SQ_RING,
            )?;
            let cq = map(
                fd,
                (p.cq_off.cqes + p.cq_entries * 16) as usize,
                OFF_CQ_RING,
            )?;
            let sqes = map(fd, (p.sq_entries * 64) as usize, OFF_SQES)?;
            Ok(Ring {
                fd,
                sq,
                cq,
                sqes,
                p,
            })
        }

        fn u32_at(base: *mut u8, off: u32) -> &'static AtomicU32 {
            unsafe { &*(base.add(off as usize) as *const AtomicU32) }
        }

        /// Accepts one connection on `listen_fd`; returns the new fd.
        pub fn accept(&self, listen_fd: i32) -> Result<i32, Error> {
            let (so, co) = (&self.p.sq_off, &self.p.cq_off);
            let tail = Self::u32_at(self.sq, so.tail).load(Ordering::Acquire);
            let idx = tail & Self::u32_at(self.sq, so.ring_mask).load(Ordering::Relaxed);
            unsafe {
                let sqe = self.sqes.add(idx as usize * 64);
                std::ptr::write_bytes(sqe, 0, 64);
                *sqe = OP_ACCEPT;
                *(sqe.add(4) as *mut i32) = listen_fd;
                *(sqe.add(32) as *mut u64) = 1; // user_data
                *(self.sq.add(so.array as usize) as *mut u32).add(idx as usize) = idx;
            }
            Self::u32_at(self.sq, so.tail).store(tail.wrapping_add(1), Ordering::Release);
            let n = unsafe {
                libc::syscall(
                    libc::SYS_io_uring_enter,
                    self.fd,
                    1u32,
                    1u32,
                    ENTER_GETEVENTS,
                    std::ptr::null::<u8>(),
                    0usize,
                )
            };
            if n < 0 {
                return Err(Error::last_os_error());
            }
            let head = Self::u32_at(self.cq, co.head).load(Ordering::Acquire);
            if head == Self::u32_at(self.cq, co.tail).load(Ordering::Acquire) {
                return Err(Error::other("no completion"));
            }
            let cidx = head & Self::u32_at(self.cq, co.ring_mask).load(Ordering::Relaxed);
            let res =
                unsafe { *(self.cq.add(co.cqes as usize + cidx as usize * 16 + 8) as *const i32) };
            Self::u32_at(self.cq, co.head).store(head.wrapping_add(1), Ordering::Release);
            if res < 0 {
                Err(Error::from_raw_os_error(-res))
            } else {
                Ok(res)
            }
        }
    }
}

/// Runs `f` in a forked child that exits with 0 when it returns (2 when it panics). Only for
/// this single-threaded program.
fn fork_child(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: loadgen has one thread here; the child runs `f` and _exits.
    match unsafe { libc::fork() } {
        -1 => die("fork failed"),
        0 => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_ok();
            // SAFETY: ending the child without running the parent's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 2 }) }
        }
        pid => pid,
    }
}

fn wait_child(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid
        || !libc::WIFEXITED(status)
        || libc::WEXITSTATUS(status) != 0
    {
        die(&format!("{what} (pid {pid}) failed: status {status}"));
    }
}

fn forked(a: &Args) {
    let addr = a.addr(a.num("--port", 0) as u16);
    let (client_send, server_send) = (
        a.num("--client-send", 0) as usize,
        a.num("--server-send", 0) as usize,
    );
    let listener = listen(addr, 16);
    let server_port = listener.local_addr().unwrap().port();
    let acceptor = fork_child(|| {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; client_send];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&vec![b's'; server_send]).unwrap();
        // The client closes first; then close (CLOSE_WAIT -> LAST_ACK in this process).
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        drop(s);
        thread::sleep(Duration::from_millis(50));
    });
    let mut fds = [0; 2];
    // SAFETY: a pipe for the connector's port.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let connector = fork_child(|| {
        let mut c = TcpStream::connect(SocketAddr::new(addr.ip(), server_port)).unwrap();
        let port = c.local_addr().unwrap().port().to_ne_bytes();
        // SAFETY: writing 2 bytes to the pipe's write end.
        assert_eq!(unsafe { libc::write(fds[1], port.as_ptr().cast(), 2) }, 2);
        c.write_all(&vec![b'c'; client_send]).unwrap();
        let mut buf = vec![0u8; server_send];
        c.read_exact(&mut buf).unwrap();
        drop(c);
        thread::sleep(Duration::from_millis(50));
    });
    let mut port = [0u8; 2];
    // SAFETY: reading 2 bytes from the pipe's read end.
    if unsafe { libc::read(fds[0], port.as_mut_ptr().cast(), 2) } != 2 {
        die("connector sent no port");
    }
    wait_child(connector, "connector");
    wait_child(acceptor, "acceptor");
    drop(listener);
    thread::sleep(Duration::from_millis(50));
    println!(
        "{{\"listener_pid\":{},\"acceptor_pid\":{acceptor},\"connector_pid\":{connector},\
         \"server_port\":{server_port},\"client_port\":{}}}",
        std::process::id(),
        u16::from_ne_bytes(port)
    );
}

/// A socket address as the kernel takes it.
fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; the casts write the matching family's layout.
    unsafe {
        let mut ss: libc::sockaddr_storage = std::mem::zeroed();
        let len = match addr {
            SocketAddr::V4(v4) => {
                let sa = &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = v4.port().to_be();
                sa.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                std::mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sa =
                    &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = v6.port().to_be();
                sa.sin6_addr.s6_addr = v6.ip().octets();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (ss, len as libc::socklen_t)
    }
}

/// connect() on `fd`; 0 or the errno it failed with.
fn connect_errno(fd: i32, addr: SocketAddr) -> i32 {
    let (ss, len) = sockaddr_of(addr);
    // SAFETY: a sockaddr of the length given.
    let rc = unsafe { libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// The kernel thread id of the caller.
fn gettid() -> i32 {
    // SAFETY: no arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

extern "C" fn on_signal(_: libc::c_int) {}

/// A non-blocking connect() to a listener whose accept queue is full (backlog 1, two connections
/// never accepted), so its SYN is dropped; right away a poll() on a pipe with data returns 1
/// (another fd: not the connect's completion). A thread accepts one queued connection at 400
/// ms; the SYN's retransmission (at 1 s) completes the handshake, which a poll() on the socket
/// then reports. Reports how long the connect took.
fn slowconnect(a: &Args) {
    let addr = a.addr(0);
    let listener = listen(addr, 1);
    let target = SocketAddr::new(addr.ip(), listener.local_addr().unwrap().port());
    let fillers: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(target).unwrap())
        .collect();
    let accepter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(400));
        let (s, _) = listener.accept().unwrap();
        (listener, s)
    });
    let family = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let start = std::time::Instant::now();
    let fd = start_nonblocking_connect(family, target).unwrap_or_else(|e| io_die("connect", e));
    let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut p = [0i32; 2];
    // SAFETY: a pipe and pollfds we own, on this stack frame.
    let (other, ready) = unsafe {
        libc::pipe(p.as_mut_ptr());
        libc::write(p[1], b"x".as_ptr().cast(), 1);
        let mut pfd = libc::pollfd {
            fd: p[0],
            events: libc::POLLIN,
            revents: 0,
        };
        let other = libc::poll(&mut pfd, 1, 1000);
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        let ready = libc::poll(&mut pfd, 1, 10000);
        libc::close(p[0]);
        libc::close(p[1]);
        (other, ready)
    };
    let ok = ready == 1 && stream.take_error().unwrap().is_none();
    let ms = start.elapsed().as_millis();
    let (l, s) = accepter.join().unwrap();
    drop((fillers, stream, s, l));
    println!(
        "{{\"pid\":{},\"other_ready\":{other},\"ok\":{ok},\"ms\":{ms}}}",
        std::process::id()
    );
}

/// A blocking connect() (or accept(), --accept) that a SIGALRM interrupts after 200 ms, with
/// the handler installed with SA_RESTART (--restart: the kernel restarts the call) or without
/// (it fails with EINTR). connect: the listener's accept queue is full (backlog 1, two
/// connections never accepted), so the SYN is dropped and connect() waits; a thread accepts
/// one of them at 400 ms, and the SYN's retransmission (at 1 s) completes the handshake: the
/// restarted connect() returns 0, the interrupted one's application polls for the result.
/// accept: nothing connects until a client does at 400 ms.
fn interrupted(a: &Args) {
    let addr = a.addr(0);
    let restart = a.flag("--restart");
    let accept = a.flag("--accept");
    let listener = listen(addr, 1);
    let target = SocketAddr::new(addr.ip(), listener.local_addr().unwrap().port());
    // SAFETY: a handler that does nothing, installed for SIGALRM.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
    }
    let (pid, tid) = (std::process::id() as i32, gettid());
    // Started right before the blocking call.
    let alarm = || {
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            // SAFETY: a signal to this process's main thread, whose handler is installed.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGALRM) };
        })
    };
    let start = std::time::Instant::now();
    let alarm_thread;
    let mut keep = Vec::new();
    let (result, port);
    if accept {
        let client = thread::spawn(move || {
            thread::sleep(Duration::from_millis(400));
            TcpStream::connect(target).unwrap()
        });
        alarm_thread = alarm();
        // SAFETY: accept on our listener, no peer address wanted.
        let fd = unsafe {
            libc::accept(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        result = if fd >= 0 {
            "ok"
        } else if err == libc::EINTR {
            "eintr"
        } else {
            io_die("accept", std::io::Error::from_raw_os_error(err))
        };
        keep.push(client.join().unwrap());
        port = target.port();
    } else {
        let fillers: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(target).unwrap())
            .collect();
        let accepter = thread::spawn(move || {
            thread::sleep(Duration::from_millis(400));
            let (s, _) = listener.accept().unwrap();
            (listener, s)
        });
        let family = if addr.is_ipv6() {
            libc::AF_INET6
        } else {
            libc::AF_INET
        };
        // SAFETY: a new socket, owned by the TcpStream below.
        let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        let stream = unsafe { <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        alarm_thread = alarm();
        result = match connect_errno(fd, target) {
            0 => "ok",
            libc::EINTR => {
                // The handshake goes on: wait for it as a non-blocking client would.
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                // SAFETY: one pollfd on this stack frame.
                let n = unsafe { libc::poll(&mut pfd, 1, 10000) };
                if n != 1 || stream.take_error().unwrap().is_some() {
                    die("the interrupted connect did not complete");
                }
                "eintr"
            }
            e => io_die("connect", std::io::Error::from_raw_os_error(e)),
        };
        port = stream.local_addr().unwrap().port();
        let (l, s) = accepter.join().unwrap();
        keep.extend(fillers);
        keep.push(stream);
        keep.push(s);
        drop(l);
    }
    alarm_thread.join().unwrap();
    println!(
        "{{\"pid\":{},\"server_port\":{},\"port\":{port},\"result\":\"{result}\",\"ms\":{}}}",
        std::process::id(),
        target.port(),
        start.elapsed().as_millis()
    );
}

/// One UDP datagram through each send path of a connected client socket, then each receive
/// path of an unconnected server socket, so the kernel's every way to hand a message to a
/// protocol is used: write, send, sendto (with the address), sendmsg, writev, sendmmsg of 3 to
/// the same address (the kernel skips its LSM check for the 2nd and 3rd), sendmmsg of 2 without
/// an address; read, recv, recvfrom, recvmsg, readv, recvmmsg of 5 (the 2nd to 5th skip it too),
/// and a last non-blocking recv that gets EAGAIN. Each path has its own datagram size.
/// Reports the client's send results and the server's receive results in order (-11: EAGAIN).
fn msgpaths(a: &Args) {
    let addr = a.addr(0);
    let srv = UdpSocket::bind(addr).unwrap_or_else(|e| io_die("bind", e));
    let cli = UdpSocket::bind(addr).unwrap_or_else(|e| io_die("bind", e));
    let server = srv.local_addr().unwrap();
    cli.connect(server).unwrap_or_else(|e| io_die("connect", e));
    let (c, s) = (cli.as_raw_fd(), srv.as_raw_fd());
    let (name, namelen) = sockaddr_of(server);
    let buf = [b'm'; 1000];
    let iov = |n: usize| libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: n,
    };
    // A msghdr of one iovec; `named`: with the server's address.
    let msghdr = |v: &mut libc::iovec, named: bool| {
        // SAFETY: all-zero is a valid msghdr.
        let mut m: libc::msghdr = unsafe { std::mem::zeroed() };
        m.msg_iov = v;
        m.msg_iovlen = 1;
        if named {
            m.msg_name = (&name as *const libc::sockaddr_storage) as *mut libc::c_void;
            m.msg_namelen = namelen;
        }
        m
    };
    let mut sends: Vec<isize> = Vec::new();
    // SAFETY: every call gets live buffers of the sizes given.
    unsafe {
        sends.push(libc::write(c, buf.as_ptr().cast(), 100));
        sends.push(libc::send(c, buf.as_ptr().cast(), 200, 0));
        sends.push(libc::sendto(
            c,
            buf.as_ptr().cast(),
            300,
            0,
            (&name as *const libc::sockaddr_storage).cast(),
            namelen,
        ));
        let mut v = iov(400);
        let m = msghdr(&mut v, false);
        sends.push(libc::sendmsg(c, &m, 0));
        let v = iov(500);
        sends.push(libc::writev(c, &v, 1));
        for (count, size, named) in [(3, 600, true), (2, 700, false)] {
            let mut vs: Vec<libc::iovec> = (0..count).map(|_| iov(size)).collect();
            let mut mm: Vec<libc::mmsghdr> = vs
                .iter_mut()
                .map(|v| libc::mmsghdr {
                    msg_hdr: msghdr(v, named),
                    msg_len: 0,
                })
                .collect();
            let n = libc::sendmmsg(c, mm.as_mut_ptr(), count, 0);
            if n != count as i32 {
                io_die("sendmmsg", std::io::Error::last_os_error());
            }
            sends.extend(mm.iter().map(|m| m.msg_len as isize));
        }
    }
    // Every datagram is queued on the server before the first read: loopback delivers at send.
    thread::sleep(Duration::from_millis(20));
    let mut rbuf = [0u8; 2048];
    let mut recvs: Vec<isize> = Vec::new();
    // SAFETY: as above, into rbuf.
    unsafe {
        let p = rbuf.as_mut_ptr();
        recvs.push(libc::read(s, p.cast(), rbuf.len()));
        recvs.push(libc::recv(s, p.cast(), rbuf.len(), 0));
        recvs.push(libc::recvfrom(
            s,
            p.cast(),
            rbuf.len(),
            0,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ));
        let mut v = libc::iovec {
            iov_base: p.cast(),
            iov_len: rbuf.len(),
        };
        let mut m = msghdr(&mut v, false);
        recvs.push(libc::recvmsg(s, &mut m, 0));
        recvs.push(libc::readv(s, &v, 1));
        let mut bufs = [[0u8; 1024]; 5];
        let mut vs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut mm: Vec<libc::mmsghdr> = vs
            .iter_mut()
            .map(|v| libc::mmsghdr {
                msg_hdr: msghdr(v, false),
                msg_len: 0,
            })
            .collect();
        let n = libc::recvmmsg(s, mm.as_mut_ptr(), 5, 0, std::ptr::null_mut());
        if n != 5 {
            io_die("recvmmsg", std::io::Error::last_os_error());
        }
        recvs.extend(mm.iter().map(|m| m.msg_len as isize));
        let n = libc::recv(s, p.cast(), rbuf.len(), libc::MSG_DONTWAIT);
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if n != -1 || errno != libc::EAGAIN {
            die(&format!(
                "expected EAGAIN from an empty socket, got {n} (errno {errno})"
            ));
        }
        recvs.push(-(libc::EAGAIN as isize));
    }
    let list = |v: &[isize]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"pid\":{},\"server_port\":{},\"client_port\":{},\"sends\":[{}],\"recvs\":[{}]}}",
        std::process::id(),
        server.port(),
        cli.local_addr().unwrap().port(),
        list(&sends),
        list(&recvs)
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
        die("usage: loadgen [--wait] COMMAND ... (commands in this file's header)")
    };
    let a = Args(args);
    match cmd.as_str() {
        "exchange" => exchange(&a),
        "connect" => connect(&a),
        "backlog" => backlog(&a),
        "udp" => udp(&a),
        "unix" => unix(&a),
        "mptcp" => mptcp(&a),
        "accept-empty" => accept_empty(&a),
        "resolve" => resolve(&a),
        "ecn" => ecn(&a),
        "ping" => ping(&a),
        "udp-burst" => udp_burst(&a),
        "streams" => streams(&a),
        "retrans" => retrans(&a),
        "reuseport-listen" => reuseport_listen(&a),
        "synbl" => synbl(&a),
        "nagle" => nagle(&a),
        "sockio" => sockio(&a),
        "rcvbuf" => rcvbuf(&a),
        "firstbyte" => firstbyte(&a),
        "connectvia" => connectvia(&a),
        "udp-send" => udp_send(&a),
        "tcp-send" => tcp_send(&a),
        "segments" => segments(&a),
        "pingpong" => pingpong(&a),
        "connlat" => connlat(&a),
        "pktlat" => pktlat(&a),
        "uring-accept" => uring_accept(&a),
        "forked" => forked(&a),
        "msgpaths" => msgpaths(&a),
        "interrupted" => interrupted(&a),
        "slowconnect" => slowconnect(&a),
        "binds" => binds(&a),
        "listens" => listens(&a),
        "halfopen" => halfopen(&a),
        other => die(&format!("unknown command '{other}'")),
    }
}

/// bind() on a new socket of `kind` with the int options `opts` (level, name) set to 1 first,
/// and SO_BINDTODEVICE `dev` if given; returns the fd and 0 or the errno bind failed with.
fn bind_with(kind: i32, addr: SocketAddr, opts: &[(i32, i32)], dev: Option<&str>) -> (i32, i32) {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: a new socket this process owns.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        io_die("socket", std::io::Error::last_os_error());
    }
    for &(level, name) in opts {
        setsockopt_int(fd, level, name, 1);
    }
    if let Some(dev) = dev {
        // SAFETY: the device name's bytes, of the length given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.len() as u32,
            )
        };
        if rc != 0 {
            io_die("SO_BINDTODEVICE", std::io::Error::last_os_error());
        }
    }
    let (ss, len) = sockaddr_of(addr);
    // SAFETY: a sockaddr of the length given.
    let rc = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    let err = if rc == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    };
    (fd, err)
}

/// A fixed series of bind() calls, in this order (bindsnoop's test), each fd kept open:
///  1. TCP 127.0.0.1:PORT with SO_REUSEADDR
///  2. TCP [::1]:0 with IP_FREEBIND and SO_REUSEPORT (the kernel picks the port: "v6_port")
///  3. UDP 127.0.0.1:0 with IP_TRANSPARENT and IP_BIND_ADDRESS_NO_PORT, bound to device lo
///  4. TCP 127.0.0.1:PORT again, no option: EADDRINUSE
///  5. TCP 192.0.2.1:PORT+1 (not a local address, no IP_FREEBIND): EADDRNOTAVAIL
///  6. in a child that runs as uid 65534 (nobody): TCP 127.0.0.1:80: EACCES ("child_pid")
fn binds(a: &Args) {
    let port = a.num("--port", 7900) as u16;
    let lo4 = |p| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), p);
    let check = |what: &str, got: i32, want: i32| {
        if got != want {
            die(&format!("bind {what}: errno {got}, expected {want}"))
        }
    };
    let (_a, e) = bind_with(
        libc::SOCK_STREAM,
        lo4(port),
        &[(libc::SOL_SOCKET, libc::SO_REUSEADDR)],
        None,
    );
    check("reuseaddr", e, 0);
    let (b, e) = bind_with(
        libc::SOCK_STREAM,
        SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0),
        &[
            (libc::SOL_IP, libc::IP_FREEBIND),
            (libc::SOL_SOCKET, libc::SO_REUSEPORT),
        ],
        None,
    );
    check("freebind", e, 0);
    let (c, e) = bind_with(
        libc::SOCK_DGRAM,
        lo4(0),
        &[
            (libc::SOL_IP, libc::IP_TRANSPARENT),
            (libc::SOL_IP, libc::IP_BIND_ADDRESS_NO_PORT),
        ],
        Some("lo"),
    );
    check("no-port", e, 0);
    let (_d, e) = bind_with(libc::SOCK_STREAM, lo4(port), &[], None);
    check("in use", e, libc::EADDRINUSE);
    let (_e, e) = bind_with(
        libc::SOCK_STREAM,
        SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), port + 1),
        &[],
        None,
    );
    check("not local", e, libc::EADDRNOTAVAIL);
    // SAFETY: fork; the child only drops its uid, binds and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: setuid in the child.
        if unsafe { libc::setuid(65534) } != 0 {
            unsafe { libc::_exit(3) };
        }
        let (_f, e) = bind_with(libc::SOCK_STREAM, lo4(80), &[], None);
        // SAFETY: leaving the child.
        unsafe { libc::_exit(if e == libc::EACCES { 0 } else { 4 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        die(&format!(
            "the unprivileged child's bind: status {status:#x}"
        ));
    }
    println!(
        "{{\"pid\":{},\"child_pid\":{},\"port\":{},\"v6_port\":{},\"udp_port\":{}}}",
        std::process::id(),
        child,
        port,
        local_port(b),
        local_port(c)
    );
}

/// listen() on `fd`; 0 or the errno it failed with.
fn listen_errno(fd: i32, backlog: i32) -> i32 {
    // SAFETY: listen on a socket this process owns.
    if unsafe { libc::listen(fd, backlog) } == 0 {
        0
    } else {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    }
}

/// A fixed series of listen() calls, in this order (solisten's test), each socket kept open:
///  1. TCP 127.0.0.1:PORT, backlog 7
///  2. TCP [::1]:PORT, backlog 100000 (the kernel caps it at net.core.somaxconn)
///  3. TCP, never bound: listen() picks the port ("auto_port"), backlog 0
///  4. UDP 127.0.0.1:PORT, backlog 5: EOPNOTSUPP
fn listens(a: &Args) {
    let port = a.num("--port", 7910) as u16;
    let lo4 = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let lo6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
    let check = |what: &str, got: i32, want: i32| {
        if got != want {
            die(&format!("listen {what}: errno {got}, expected {want}"))
        }
    };
    let (v4, _) = bind_with(libc::SOCK_STREAM, lo4, &[], None);
    check("v4", listen_errno(v4, 7), 0);
    let (v6, _) = bind_with(libc::SOCK_STREAM, lo6, &[], None);
    check("v6", listen_errno(v6, 100000), 0);
    // SAFETY: a new socket this process owns.
    let unbound = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    check("unbound", listen_errno(unbound, 0), 0);
    let (udp, _) = bind_with(libc::SOCK_DGRAM, lo4, &[], None);
    check("udp", listen_errno(udp, 5), libc::EOPNOTSUPP);
    println!(
        "{{\"pid\":{},\"port\":{},\"auto_port\":{}}}",
        std::process::id(),
        port,
        local_port(unbound)
    );
}

/// A listener and a non-blocking connect() to it, both closed after --wait-ms (default 3500)
/// whatever the handshake did: run where SYN-ACKs are dropped on their way to the client, the
/// server retransmits its SYN-ACK (and the client its SYN) meanwhile. Reports both ports.
fn halfopen(a: &Args) {
    let listener = listen(a.addr(0), 16);
    let server = listener.local_addr().unwrap();
    let family = if server.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    let fd = start_nonblocking_connect(family, server)
        .unwrap_or_else(|e| die(&format!("connect {server}: {e}")));
    let client_port = local_port(fd);
    thread::sleep(Duration::from_millis(a.num("--wait-ms", 3500)));
    // SAFETY: the fd this function opened, closed once.
    unsafe { libc::close(fd) };
    drop(listener);
    println!(
        "{{\"pid\":{},\"server_port\":{},\"client_port\":{client_port}}}",
        std::process::id(),
        server.port()
    );
}
