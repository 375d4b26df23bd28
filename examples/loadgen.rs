//! Traffic for netbpf's tests: small, exact TCP workloads on loopback in the caller's network
//! namespace. Each command prints one JSON line saying what it did (pid, ports), so a test can
//! compare the tool's output with the truth.
//!
//!   loadgen [--wait] exchange --family 4|6 --port P --client-send N --server-send M --hold-ms H
//!   loadgen [--wait] connect --family 4|6 --port P --count N [--nonblock]
//!   loadgen [--wait] backlog --family 4|6 --port P --backlog B --clients C
//!   loadgen [--wait] uring-accept --family 4|6 --port P --clients C   (accepts through io_uring)
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

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--wait") {
        args.remove(0);
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).unwrap();
    }
    let Some(cmd) = args.first().cloned() else {
        die("usage: loadgen [--wait] exchange|connect|backlog|uring-accept ...")
    };
    let a = Args(args);
    match cmd.as_str() {
        "exchange" => exchange(&a),
        "connect" => connect(&a),
        "backlog" => backlog(&a),
        "uring-accept" => uring_accept(&a),
        other => die(&format!("unknown command '{other}'")),
    }
}
