//! The exporter's HTTP/1.1 server: one thread, poll(2) over nonblocking sockets, every resource
//! bounded.
//!
//! A scrape is a small GET answered from memory, so one thread serves thousands a second; what
//! must not happen is a client holding what others need. Hence: a connection cap below the fd
//! limit (the oldest-active connection is closed to make room for a new one), a deadline for a
//! whole request head and for idle keep-alive connections, a request-head size and header-count
//! cap (parsing is httparse's), one request in flight per connection (a pipelining client gets
//! its next answer only once it has read the last: the kernel's socket buffers push back), a
//! bound on the bytes of responses not yet written (a scrape is ~50 KB: hundreds of clients slow
//! to read would otherwise each hold one; requests wait for room instead), and a close on
//! anything that is not HTTP/1.x (TLS and HTTP/2 prefaces included).

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// The bounds. [`Limits::for_fd_limit`] picks the connection cap from RLIMIT_NOFILE.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// From a connection's first byte of a request to the end of its head.
    pub head_timeout: Duration,
    /// Between requests (and before the first) on a kept-alive connection.
    pub idle_timeout: Duration,
    /// Without any progress writing a response.
    pub write_timeout: Duration,
    pub max_head_bytes: usize,
    pub max_headers: usize,
    /// Bytes of responses not yet written, over all connections: a request is answered only
    /// while the sum is below this.
    pub max_queued_bytes: usize,
    /// Requests answered on one connection before it is closed.
    pub max_requests_per_connection: u32,
    /// Requests answered back to back from one burst of pipelined ones; the last of them closes
    /// the connection (each scrape costs an encoding of every series).
    pub max_pipelined: u32,
    /// How long accept() may keep failing, with no connection left to close, before the
    /// server gives up (and the exporter exits non-zero for its supervisor to restart it).
    pub accept_give_up: Duration,
}

/// fds kept for everything else (BPF objects are open already; scrapes open /proc files).
const FD_MARGIN: usize = 32;

impl Limits {
    pub fn for_fd_limit() -> Limits {
        let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count());
        let mut rl = libc::rlimit {
            rlim_cur: 1024,
            rlim_max: 1024,
        };
        // SAFETY: getrlimit into a local.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) };
        let limit = usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX);
        let room = limit.saturating_sub(open + FD_MARGIN);
        Limits {
            max_connections: room.clamp(8, 1024),
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            write_timeout: Duration::from_secs(10),
            max_head_bytes: 8 * 1024,
            max_headers: 48,
            max_queued_bytes: 1024 * 1024,
            max_requests_per_connection: 10_000,
            max_pipelined: 8,
            accept_give_up: Duration::from_secs(30),
        }
    }
}

/// Deepens the listen backlog of a bound listener. std listens with 128: a burst of scrapes
/// beyond it has its SYNs dropped and retried a second later. Listening again only changes the
/// backlog (the kernel caps it at net.core.somaxconn). Called before the seccomp filter, which
/// does not allow listen(2).
pub fn deepen_backlog(listener: &TcpListener) -> io::Result<()> {
    // SAFETY: listen(2) on a socket the caller owns.
    if unsafe { libc::listen(listener.as_raw_fd(), 1024) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A request head, as the handler sees it.
pub struct Request<'a> {
    pub path: &'a str,
    /// The Accept header, if any.
    pub accept: Option<&'a str>,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

struct Conn {
    stream: std::net::TcpStream,
    head: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    /// When the current request's first byte came (None: between requests).
    request_started: Option<Instant>,
    /// Bytes came into `head` that were not parsed yet (they wait while responses use up
    /// [`Limits::max_queued_bytes`]).
    unparsed: bool,
    last_progress: Instant,
    served: u32,
    /// Requests answered back to back from what was already read (pipelined).
    pipelined: u32,
    close_after_write: bool,
}

impl Conn {
    fn new(stream: std::net::TcpStream, now: Instant) -> Conn {
        Conn {
            stream,
            head: Vec::new(),
            out: Vec::new(),
            written: 0,
            request_started: None,
            unparsed: false,
            last_progress: now,
            served: 0,
            pipelined: 0,
            close_after_write: false,
        }
    }

    fn writing(&self) -> bool {
        self.written < self.out.len()
    }

    fn expired(&self, now: Instant, l: &Limits) -> bool {
        let since = now.saturating_duration_since(self.last_progress);
        if self.writing() {
            since > l.write_timeout
        } else if let Some(t) = self.request_started {
            now.saturating_duration_since(t) > l.head_timeout
        } else {
            since > l.idle_timeout
        }
    }
}

/// What happened to a connection in one step.
enum Step {
    Keep,
    Close,
}

/// Serves until `should_stop` says so. Errors only when it cannot serve at all (the listener
/// broke, or accept() kept failing for [`Limits::accept_give_up`] with nothing to close).
/// Accept failures (EMFILE...) are said on stderr, at most every 10 s.
pub fn serve(
    listener: TcpListener,
    limits: &Limits,
    mut handler: impl FnMut(&Request) -> Response,
    should_stop: impl Fn() -> bool,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let mut conns: Vec<Conn> = Vec::new();
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    let mut accept_failing: Option<Instant> = None;
    // While there is no room for another connection (or accept() fails with nothing to close),
    // the listener is left alone a moment (it stays readable: polling it would spin).
    let mut accept_paused_until: Option<Instant> = None;
    let mut last_complaint: Option<Instant> = None;
    let mut next_answered = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while !should_stop() {
        pfds.clear();
        let paused_for = accept_paused_until
            .map(|t| t.saturating_duration_since(Instant::now()))
            .filter(|d| !d.is_zero());
        let paused = paused_for.is_some();
        pfds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: if paused { 0 } else { libc::POLLIN },
            revents: 0,
        });
        for c in &conns {
            let events = if c.writing() {
                libc::POLLOUT
            } else if c.unparsed {
                // Waiting for room to answer: what it sends next can wait in the kernel.
                0
            } else {
                libc::POLLIN
            };
            pfds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        // A short tick: deadlines are checked, and a signal that lands between the check above
        // and poll() is seen within it. A paused listener is looked at again when the pause ends.
        let tick = paused_for.map_or(200, |d| d.as_millis().clamp(1, 200) as libc::c_int);
        // SAFETY: pfds is a live Vec of pollfd.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, tick) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(anyhow!("poll: {e}"));
        }
        let now = Instant::now();

        // Connections first (their indexes match pfds[1..]); closed ones are removed after.
        let mut keep = vec![true; conns.len()];
        for (i, c) in conns.iter_mut().enumerate() {
            let rev = pfds[i + 1].revents;
            let step = if rev & (libc::POLLERR | libc::POLLNVAL) != 0 {
                Step::Close
            } else if rev != 0 {
                step(c, &mut buf, limits, now)
            } else if c.expired(now, limits) {
                Step::Close
            } else {
                Step::Keep
            };
            keep[i] = matches!(step, Step::Keep);
        }
        let mut i = 0;
        conns.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        answer_waiting(&mut conns, &mut next_answered, limits, &mut handler, now);

        if pfds[0].revents & libc::POLLIN != 0 {
            let pause = accept_all(
                &listener,
                &mut conns,
                limits,
                now,
                &mut accept_failing,
                &mut last_complaint,
            )?;
            accept_paused_until = pause.map(|p| now + p);
        }
    }
    Ok(())
}

/// How long a connection may send nothing (since it was accepted or answered), or take over its
/// request head, before it is worth less than a new one.
const EVICT_GRACE: Duration = Duration::from_millis(50);

/// Closes the connection least worth keeping to make room for a new one: the one that has
/// waited longest without giving a request to answer, counting from when it was accepted or last
/// answered if it sent nothing since, from the first byte of its head if it is still sending one
/// (a slowloris head trickling in looks no newer for it). Only one past [`EVICT_GRACE`] at that,
/// unless `any`: then, when there is nothing else, also one whose request waits for its answer
/// or is being answered. Returns false when there is none.
fn evict_one(conns: &mut Vec<Conn>, now: Instant, any: bool) -> bool {
    let worth = |c: &Conn| {
        let (busy, since) = match c.request_started {
            _ if c.unparsed || c.writing() => (true, c.last_progress),
            Some(started) => (false, started),
            None => (false, c.last_progress),
        };
        let evictable = any || (!busy && now.saturating_duration_since(since) >= EVICT_GRACE);
        evictable.then_some((busy, since))
    };
    match conns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((worth(c)?, i)))
        .min()
        .map(|(_, i)| i)
    {
        Some(i) => {
            conns.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Accepts the connections waiting, a batch at most. Returns how long the listener is to be left
/// alone, if it is: there is no room for another connection until one passes [`EVICT_GRACE`]
/// (the next ones wait in the kernel's backlog), or accept() fails with nothing to close.
fn accept_all(
    listener: &TcpListener,
    conns: &mut Vec<Conn>,
    limits: &Limits,
    now: Instant,
    failing: &mut Option<Instant>,
    last_complaint: &mut Option<Instant>,
) -> anyhow::Result<Option<Duration>> {
    // A bounded batch: connections already open get their turn too.
    for _ in 0..256 {
        if conns.len() >= limits.max_connections && !evict_one(conns, now, false) {
            return Ok(Some(Duration::from_millis(10)));
        }
        match listener.accept() {
            Ok((stream, _)) => {
                *failing = None;
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                conns.push(Conn::new(stream, now));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                *failing = None;
                return Ok(None);
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    let since = *failing.get_or_insert(now);
                    if last_complaint
                        .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
                    {
                        *last_complaint = Some(now);
                        eprintln!(
                            "netbpf exporter: accept failed: {e} ({} connections open, at most {}): \
                             closing the least active ones",
                            conns.len(),
                            limits.max_connections
                        );
                    }
                    if !evict_one(conns, now, true) {
                        if now.saturating_duration_since(since) > limits.accept_give_up {
                            return Err(anyhow!(
                                "cannot accept connections for {} s: {e} (and none of this \
                                 server's to close)",
                                limits.accept_give_up.as_secs()
                            ));
                        }
                        return Ok(Some(Duration::from_millis(100)));
                    }
                }
                // The peer gave up before accept(), or a signal: nothing wrong with the listener.
                Some(
                    libc::ECONNABORTED
                    | libc::EINTR
                    | libc::EPROTO
                    | libc::EPERM
                    | libc::ENETDOWN
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH,
                ) => {}
                _ => return Err(anyhow!("accept: {e}")),
            },
        }
    }
    Ok(None)
}

/// Reads or writes what the socket is ready for. What is read waits for [`answer_waiting`].
fn step(c: &mut Conn, buf: &mut [u8], limits: &Limits, now: Instant) -> Step {
    if c.writing() {
        return write_some(c, now);
    }
    let room = (limits.max_head_bytes + 1 - c.head.len().min(limits.max_head_bytes)).min(buf.len());
    match c.stream.read(&mut buf[..room]) {
        Ok(0) => Step::Close,
        Ok(n) => {
            if c.request_started.is_none() {
                c.request_started = Some(now);
            }
            c.last_progress = now;
            c.head.extend_from_slice(&buf[..n]);
            c.unparsed = true;
            Step::Keep
        }
        Err(e) if retry(&e) => Step::Keep,
        Err(_) => Step::Close,
    }
}

/// Writes as much of the response as the socket takes. Once all of it is written, the
/// connection closes if it was to, or a pipelined request already read is next to answer.
fn write_some(c: &mut Conn, now: Instant) -> Step {
    match c.stream.write(&c.out[c.written..]) {
        Ok(0) => return Step::Close,
        Ok(n) => {
            c.written += n;
            c.last_progress = now;
        }
        Err(e) if retry(&e) => return Step::Keep,
        Err(_) => return Step::Close,
    }
    if c.writing() {
        return Step::Keep;
    }
    c.out = Vec::new();
    c.written = 0;
    if c.close_after_write {
        let _ = c.stream.shutdown(std::net::Shutdown::Write);
        return Step::Close;
    }
    c.unparsed = !c.head.is_empty();
    c.pipelined = if c.unparsed { c.pipelined + 1 } else { 0 };
    Step::Keep
}

/// Answers the connections with request bytes not parsed yet while the responses not yet
/// written leave room, starting after the last one served in the previous round (none waits
/// for ever behind others); each response is written at once as far as the socket takes it.
fn answer_waiting(
    conns: &mut Vec<Conn>,
    next: &mut usize,
    limits: &Limits,
    handler: &mut impl FnMut(&Request) -> Response,
    now: Instant,
) {
    let n = conns.len();
    let mut queued: usize = conns.iter().map(|c| c.out.len()).sum();
    let mut keep = vec![true; n];
    'conns: for k in 0..n {
        let i = (*next + k) % n;
        let c = &mut conns[i];
        while c.unparsed && !c.writing() {
            if queued >= limits.max_queued_bytes {
                *next = i;
                break 'conns;
            }
            c.unparsed = false;
            answer(c, limits, handler, now);
            if !c.writing() {
                break; // a partial head
            }
            if let Step::Close = write_some(c, now) {
                keep[i] = false;
                break;
            }
            queued += c.out.len();
        }
    }
    let mut i = 0;
    conns.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Parses the head read so far and, when it is complete, queues the response.
fn answer(
    c: &mut Conn,
    limits: &Limits,
    handler: &mut impl FnMut(&Request) -> Response,
    now: Instant,
) {
    if c.head.is_empty() {
        c.request_started = None;
        return;
    }
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(&c.head);
    let (used, response, close, head_only) = match parsed {
        Ok(httparse::Status::Partial) => {
            if c.head.len() > limits.max_head_bytes {
                (
                    0,
                    Response::text(431, "request head too large\n"),
                    true,
                    false,
                )
            } else {
                return;
            }
        }
        Err(httparse::Error::TooManyHeaders) => {
            (0, Response::text(431, "too many headers\n"), true, false)
        }
        // Not HTTP/1.x: a TLS ClientHello, an HTTP/2 preface, noise.
        Err(_) => (
            0,
            Response::text(400, "not an HTTP/1.x request\n"),
            true,
            false,
        ),
        Ok(httparse::Status::Complete(used)) => {
            let method = req.method.unwrap_or("");
            let path = req.path.unwrap_or("");
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
            };
            let has_body = header("Transfer-Encoding").is_some()
                || header("Content-Length").is_some_and(|v| v.trim() != "0");
            let connection = header("Connection").unwrap_or("").to_ascii_lowercase();
            let close = has_body
                || req.version != Some(1)
                || connection.contains("close")
                || c.served + 1 >= limits.max_requests_per_connection
                || c.pipelined + 1 >= limits.max_pipelined;
            let response = if method != "GET" && method != "HEAD" {
                Response::text(405, "only GET and HEAD\n")
            } else if has_body {
                // A body would be read as the next request: refused, and the connection closed.
                Response::text(400, "a GET has no body\n")
            } else {
                handler(&Request {
                    path,
                    accept: header("Accept"),
                })
            };
            c.served += 1;
            (used, response, close, method == "HEAD")
        }
    };
    c.head.drain(..used.min(c.head.len()));
    if close {
        c.head.clear();
    }
    c.request_started = if c.head.is_empty() { None } else { Some(now) };
    c.close_after_write = close;
    c.out = encode(&response, head_only, close);
    c.written = 0;
    c.last_progress = now;
}

fn encode(r: &Response, head_only: bool, close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + if head_only { 0 } else { r.body.len() });
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: netbpf\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.status == 405 {
        out.extend_from_slice(b"Allow: GET, HEAD\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RLIMIT_NOFILE's soft limit, lowered for a test and put back when dropped.
    struct FdLimit(libc::rlimit);

    impl FdLimit {
        fn lower_to(n: libc::rlim_t) -> FdLimit {
            let mut old = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: plain getrlimit/setrlimit on a local struct.
            unsafe {
                assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut old), 0);
                let new = libc::rlimit {
                    rlim_cur: n.min(old.rlim_max),
                    rlim_max: old.rlim_max,
                };
                assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &new), 0);
            }
            FdLimit(old)
        }
    }

    impl Drop for FdLimit {
        fn drop(&mut self) {
            // SAFETY: as above.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.0) };
        }
    }

    /// accept() failing with EMFILE while the server has no connection of its own to close
    /// (the descriptors are held elsewhere in the process): it must end with an error, so that
    /// the exporter exits non-zero and its supervisor restarts it, not linger unreachable.
    #[test]
    fn gives_up_when_accept_keeps_failing_with_nothing_to_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let waiting = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as libc::rlim_t;
        let limit = FdLimit::lower_to(open_now + 16);
        let mut held = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => held.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                    break;
                }
            }
        }
        let limits = Limits {
            accept_give_up: Duration::from_millis(300),
            ..Limits::for_fd_limit()
        };
        let began = Instant::now();
        // The stop condition only bounds a hang: the server is expected to give up first.
        let served = serve(
            listener,
            &limits,
            |_: &Request| -> Response { unreachable!("no request can be accepted") },
            || began.elapsed() > Duration::from_secs(30),
        );
        drop(held);
        drop(limit);
        drop(waiting);
        let err = served.expect_err("serve() returned Ok: it never gave up");
        assert!(
            err.to_string().contains("cannot accept connections"),
            "{err:#}"
        );
    }
}
