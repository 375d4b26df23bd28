//! The life of a run: signals, duration, draining the ring buffer, lost-event reporting.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use libbpf_rs::{MapCore, RingBufferBuilder};

use crate::core::output::Output;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Installs SIGINT/SIGTERM handlers (without SA_RESTART, so a blocking wait returns at once).
/// main() does it before anything else, so a signal during loading ends the run cleanly.
pub fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Ends the run as a signal would (stdout failed: there is no one to trace for).
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Whether SIGINT or SIGTERM has asked the run to end (the output writer gives up waiting on a
/// blocked stdout then).
pub fn stopping() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// How often the reader drains the ring when the kernel does not wake it (see events.bpf.h).
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// When the process began: `-d` counts from here, so that a run ends SECS after it was started
/// however long starting and loading took (seconds on a loaded host, exec included).
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Starts the clock `-d` counts from at the kernel's start time of this process (main() calls
/// it before anything else). A library user's clock starts at its first [`Run`] instead.
pub fn mark_start() {
    STARTED.get_or_init(|| process_start().unwrap_or_else(Instant::now));
}

/// When the kernel created this process (/proc/self/stat's starttime, in clock ticks since
/// boot), as an Instant. The tick is rounded up, so a run never ends before SECS have passed.
fn process_start() -> Option<Instant> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, from the 3rd (state); starttime is the 22nd.
    let after_comm = stat.get(stat.rfind(')')? + 2..)?;
    let ticks: u64 = after_comm.split(' ').nth(22 - 3)?.parse().ok()?;
    // SAFETY: sysconf and clock_gettime into a local.
    let (hz, now_boot) = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) != 0 {
            return None;
        }
        (libc::sysconf(libc::_SC_CLK_TCK), ts)
    };
    let hz = u64::try_from(hz).ok().filter(|&hz| hz > 0)?;
    let now_boot = Duration::new(now_boot.tv_sec as u64, now_boot.tv_nsec as u32);
    let started_boot = Duration::from_nanos((ticks + 1).checked_mul(1_000_000_000)? / hz);
    Instant::now().checked_sub(now_boot.saturating_sub(started_boot))
}

pub struct Run {
    tool: &'static str,
    duration: Option<Duration>,
    deadline: Option<Instant>,
    /// Set at the first check, i.e. once the tool is attached and tracing.
    tracing_since: OnceLock<Instant>,
    finished: Once,
}

impl Run {
    /// Installs the SIGINT/SIGTERM handlers too (main() has already; a library user may not).
    pub fn new(tool: &'static str, duration: Option<Duration>) -> Run {
        install_signal_handlers();
        let started = *STARTED.get_or_init(Instant::now);
        Run {
            tool,
            duration,
            deadline: duration.and_then(|d| started.checked_add(d)),
            tracing_since: OnceLock::new(),
            finished: Once::new(),
        }
    }

    /// Whether the run is over (Ctrl-C, SIGTERM, the end of `-d`). The first time it is, the
    /// run is finished: see [`Run::finish`].
    pub fn should_stop(&self) -> bool {
        self.tracing_since.get_or_init(Instant::now);
        let stop =
            STOP.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d);
        if stop {
            self.finish();
        }
        stop
    }

    /// Once, when the run ends: says on stderr when loading took a notable part of `-d`, and
    /// hands the attachments to a process that detaches them after this one has exited
    /// ([`DETACHER`]), so that the exit is not held up by the kernel.
    fn finish(&self) {
        self.finished.call_once(|| {
            self.report_late_start();
            crate::core::kretprobe::detach_all();
            hand_over_attachments();
        });
    }

    /// A run whose loading took a twentieth of `-d` or more (and at least half a second)
    /// traced for that much less: said, so that its counts are not read as SECS' worth.
    fn report_late_start(&self) {
        let (Some(d), Some(since), Some(started)) =
            (self.duration, self.tracing_since.get(), STARTED.get())
        else {
            return;
        };
        let loading = since.saturating_duration_since(*started);
        if loading < Duration::from_millis(500) || loading * 20 < d {
            return;
        }
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "netbpf {}: loading took {:.1} s of the {} s run (-d counts from the start): traced \
             for {:.1} s",
            self.tool,
            loading.as_secs_f64(),
            d.as_secs_f64(),
            d.saturating_sub(loading).as_secs_f64()
        );
    }

    /// Sleeps up to `d`, waking early for a signal or the end of the run. Returns false when the
    /// run should stop.
    pub fn sleep(&self, d: Duration) -> bool {
        let now = Instant::now();
        self.sleep_until(
            now.checked_add(d)
                .unwrap_or(now + Duration::from_secs(86400 * 365)),
        )
    }

    /// Sleeps until `end`, waking early for a signal or the end of the run. Returns false when
    /// the run should stop.
    pub fn sleep_until(&self, end: Instant) -> bool {
        loop {
            if self.should_stop() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            let mut step = (end - now).min(DRAIN_INTERVAL);
            if let Some(dl) = self.deadline {
                step = step.min(dl.saturating_duration_since(now));
            }
            std::thread::sleep(step);
        }
    }

    /// Calls `tick` every `interval` (and once more when the run ends early), `count` times at
    /// most: the loop of interval tools (`tool [interval] [count]`). Ticks are due at fixed
    /// deadlines from the start (start + n x interval), so the time a tick takes does not add up
    /// into drift; a deadline already past when a tick ends (a tick longer than the interval) is
    /// skipped, and the next tick covers both intervals.
    pub fn every(
        &self,
        interval: Duration,
        count: Option<u64>,
        mut tick: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut n = 0;
        let mut due = Instant::now();
        loop {
            due = next_deadline(due, interval, Instant::now());
            let more = self.sleep_until(due);
            tick()?;
            n += 1;
            if !more || count.is_some_and(|c| n >= c) {
                self.finish();
                return Ok(());
            }
        }
    }

    /// Waits for the end of the run (Ctrl-C, SIGTERM or --duration): the loop of tools that
    /// print a summary at exit.
    pub fn wait(&self) {
        while self.sleep(Duration::from_secs(3600)) {}
    }

    /// Streams `events` into `handle` until the run ends, then drains what is left.
    ///
    /// While streaming, SIGPIPE is ignored: when the reader of stdout goes away, writes fail with
    /// EPIPE, the stream ends, and the caller can still report lost events on stderr (SIGPIPE is
    /// back to its default on return).
    pub fn stream<F>(&self, events: &dyn MapCore, out: &mut Output, handle: F) -> anyhow::Result<()>
    where
        F: FnMut(&[u8], &mut Output),
    {
        self.stream_ticking(events, out, handle, |_| {})
    }

    /// As [`Run::stream`], calling `tick` after each drain of the ring (at least every
    /// [`DRAIN_INTERVAL`]) and once at the end: for rows due without an event (timeouts).
    pub fn stream_ticking<F, T>(
        &self,
        events: &dyn MapCore,
        out: &mut Output,
        handle: F,
        tick: T,
    ) -> anyhow::Result<()>
    where
        F: FnMut(&[u8], &mut Output),
        T: FnMut(&mut Output),
    {
        // SAFETY: changing a signal disposition; restored below.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let r = self.stream_events(events, out, handle, tick);
        // SAFETY: as above.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        r
    }

    fn stream_events<F, T>(
        &self,
        events: &dyn MapCore,
        out: &mut Output,
        mut handle: F,
        mut tick: T,
    ) -> anyhow::Result<()>
    where
        F: FnMut(&[u8], &mut Output),
        T: FnMut(&mut Output),
    {
        let out = RefCell::new(out);
        let mut builder = RingBufferBuilder::new();
        builder.add(events, |data: &[u8]| {
            let mut out = out.borrow_mut();
            if out.failed() {
                return -1; // stdout is gone: stop consuming, end the run
            }
            handle(data, &mut out);
            0
        })?;
        crate::core::mem::release_setup_memory();
        let ring = builder.build()?;
        let consume = |ring: &libbpf_rs::RingBuffer| match ring.consume() {
            Ok(_) => Ok(()),
            // The callback's -1: stdout failed, checked below.
            Err(_) if out.borrow().failed() => Ok(()),
            Err(e) => Err(e),
        };
        while !self.should_stop() {
            let mut wait = DRAIN_INTERVAL;
            if let Some(dl) = self.deadline {
                wait = wait.min(dl.saturating_duration_since(Instant::now()));
            }
            // Woken early only when the ring fills past its threshold; EINTR (a signal) is normal.
            // (poll consumes too: the callback's -1 may come back from it.)
            if let Err(e) = ring.poll(wait) {
                if e.kind() != libbpf_rs::ErrorKind::Interrupted && !out.borrow().failed() {
                    return Err(e.into());
                }
            }
            consume(&ring)?;
            tick(&mut out.borrow_mut());
            if !out.borrow_mut().flush() {
                self.finish();
                return Ok(()); // stdout closed or blocked at the end: nobody is reading
            }
        }
        consume(&ring)?;
        tick(&mut out.borrow_mut());
        out.borrow_mut().flush();
        Ok(())
    }
}

/// The deadline after `due` for ticks every `interval`: the first of due + k x interval (k >= 1)
/// still ahead of `now`, so lateness never shifts later deadlines, and deadlines a late tick
/// missed are skipped.
fn next_deadline(due: Instant, interval: Duration, now: Instant) -> Instant {
    let far = || now + Duration::from_secs(86400 * 365);
    let Some(next) = due.checked_add(interval) else {
        return far();
    };
    if next > now || interval.is_zero() {
        return next;
    }
    // Late by `behind`: skip the whole intervals it covers.
    let behind = now - next;
    let skip = (behind.as_nanos() / interval.as_nanos()) as u32 + 1;
    interval
        .checked_mul(skip)
        .and_then(|d| next.checked_add(d))
        .unwrap_or_else(far)
}

/// Detaching a tracepoint (perf event) or uprobe program waits for an RCU grace period in the
/// kernel, one program after another as their links close at exit: ~70 ms each on an idle host,
/// 0.3-1.5 s each at load average 8 (soprotocol's three syscall tracepoints took 2.75 s), and
/// the process has not exited until they are done. So a tool starts a helper process before
/// loading ([`start_detacher`]), and the end of its run hands it the BPF file descriptors
/// ([`hand_over_attachments`]); the helper exits once this process has, and its exit makes the
/// last close of each link and waits, while nobody waits for it (the programs run on until then,
/// into maps nobody reads). The helper closes everything else at once, so readers of stdout see
/// their end on time. Without pidfds (Linux < 5.3) or a fork, the exit detaches them itself.
static DETACHER: OnceLock<Option<libc::c_int>> = OnceLock::new();

/// Starts the helper (a tool's run does, before loading; the exporter, which drops root, does
/// not: it would leave a root process beside it).
pub fn start_detacher() {
    DETACHER.get_or_init(fork_detacher);
}

fn fork_detacher() -> Option<libc::c_int> {
    // SAFETY: system calls on integers and a local array.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) as libc::c_int;
        if pidfd < 0 {
            return None;
        }
        let mut pair = [-1; 2];
        let kind = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC;
        if libc::socketpair(libc::AF_UNIX, kind, 0, pair.as_mut_ptr()) != 0 {
            libc::close(pidfd);
            return None;
        }
        let [ours, theirs] = pair;
        match libc::fork() {
            0 => detacher(theirs, pidfd),
            -1 => {
                libc::close(ours);
                libc::close(theirs);
                libc::close(pidfd);
                None
            }
            _ => {
                libc::close(theirs);
                libc::close(pidfd);
                Some(ours)
            }
        }
    }
}

/// The helper: keeps only its socket (whose queue will hold the descriptors sent to it) and the
/// parent's pidfd, waits for the parent to exit, and exits, closing them. Async-signal-safe
/// system calls only (the parent may have threads).
unsafe fn detacher(socket: libc::c_int, parent: libc::c_int) -> ! {
    let (lo, hi) = (
        socket.min(parent) as libc::c_uint,
        socket.max(parent) as libc::c_uint,
    );
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        if first <= last {
            libc::syscall(libc::SYS_close_range, first, last, 0);
        }
    };
    if lo > 0 {
        close_range(0, lo - 1);
    }
    close_range(lo + 1, hi - 1);
    close_range(hi + 1, libc::c_uint::MAX);
    // Readable once the parent has exited, all its files closed. A Ctrl-C meant for the parent
    // interrupts the poll (the signal handler is inherited): wait on.
    let mut pfd = libc::pollfd {
        fd: parent,
        events: libc::POLLIN,
        revents: 0,
    };
    while libc::poll(&mut pfd, 1, -1) < 0 && *libc::__errno_location() == libc::EINTR {}
    libc::_exit(0)
}

/// Sends every BPF, perf event and other anonymous-inode descriptor of this process to the
/// helper ([`DETACHER`]); this process's own closes are then not the last ones.
fn hand_over_attachments() {
    let Some(Some(socket)) = DETACHER.get() else {
        return;
    };
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<libc::c_int> = dir
        .filter_map(|e| {
            let e = e.ok()?;
            let fd: libc::c_int = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            target.to_str()?.starts_with("anon_inode:").then_some(fd)
        })
        .collect();
    // At most SCM_MAX_FD (253) descriptors a message.
    for chunk in fds.chunks(250) {
        send_fds(*socket, chunk);
    }
}

fn send_fds(socket: libc::c_int, fds: &[libc::c_int]) {
    let bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the control buffer is sized by CMSG_SPACE and
    // u64-aligned; sendmsg reads only the buffers described.
    unsafe {
        let mut control = vec![0u64; (libc::CMSG_SPACE(bytes as u32) as usize).div_ceil(8)];
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(bytes as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(bytes as u32) as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast(), fds.len());
        libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL);
    }
}

/// Says how many new keys were dropped because a kernel map was full (common/maps.bpf.h's
/// `map_full_drops`), so a summary that misses some is not taken for complete.
pub fn report_full(tool: &str, dropped: u64) {
    if dropped > 0 {
        eprintln!(
            "netbpf {tool}: {dropped} updates not counted (a kernel map was full: too many distinct keys)"
        );
    }
}

/// Says on stderr how many events the kernel could not hand over.
pub fn report_lost(tool: &str, lost: u64) {
    if lost > 0 {
        // Not eprintln!: stderr may be a closed pipe too; that must not become a panic.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "netbpf {tool}: {lost} events lost (ring buffer full: output could not keep up)"
        );
    }
}

/// Runs of `obj`'s programs the kernel skipped (bpf_prog_info.recursion_misses, Linux 5.12+):
/// a tracing program (fentry/fexit, kprobe, tp_btf, raw_tp) is not run on a CPU where it is
/// already running, which happens when it is preempted or interrupted in the middle of a run.
pub fn missed_runs(obj: &libbpf_rs::Object) -> u64 {
    use libbpf_rs::libbpf_sys;
    use std::os::fd::{AsFd, AsRawFd};
    obj.progs()
        .map(|prog| {
            // SAFETY: an all-zero bpf_prog_info is valid; the kernel fills at most `len` bytes.
            let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of_val(&info) as u32;
            // SAFETY: the fd is the program's own, open for the call.
            let rc = unsafe {
                libbpf_sys::bpf_obj_get_info_by_fd(
                    prog.as_fd().as_raw_fd(),
                    (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
                    &mut len,
                )
            };
            if rc == 0 {
                info.recursion_misses
            } else {
                0
            }
        })
        .sum()
}

/// Says on stderr how many runs of the tool's programs the kernel skipped (see missed_runs), so
/// that counts short by that many calls are not taken for complete.
pub fn report_missed(tool: &str, obj: &libbpf_rs::Object) {
    let missed = missed_runs(obj);
    if missed > 0 {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "netbpf {tool}: the kernel skipped {missed} runs of its BPF programs (a run preempted \
             on its CPU blocks the next one there): counts may miss that many calls"
        );
    }
}

/// Says on stderr how many events (or sessions) the kernel could not track, and why.
pub fn report_dropped(tool: &str, n: u64, what: &str) {
    if n > 0 {
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "netbpf {tool}: {n} {what}");
    }
}

/// Says on stderr that a run saw nothing to report (`what`: "no packet ... was received"), where
/// a summary or a stream would otherwise end without a word; stdout (JSON lines) is untouched.
pub fn report_nothing(tool: &str, what: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "netbpf {tool}: {what} while tracing");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_start_is_read_from_the_kernel() {
        let now = Instant::now();
        let started = process_start().expect("/proc/self/stat's starttime");
        // This test process began before now, and not long before (the tick is rounded up:
        // up to 10 ms later than the kernel's own start time).
        assert!(
            started <= now + Duration::from_millis(10),
            "{:?}",
            started - now
        );
        assert!(
            now - started < Duration::from_secs(600),
            "{:?}",
            now - started
        );
    }

    #[test]
    fn deadlines_do_not_drift_and_skip_what_a_late_tick_missed() {
        let start = Instant::now();
        let sec = Duration::from_secs(1);
        let ms = Duration::from_millis;
        // A tick that took 300 ms: the next deadline is still start + 2 s.
        assert_eq!(
            next_deadline(start + sec, sec, start + sec + ms(300)),
            start + 2 * sec
        );
        // Fifteen ticks of 60 ms each end at start + 15 s, not 15.9 s.
        let mut due = start;
        for _ in 0..15 {
            due = next_deadline(due, sec, due + ms(60));
        }
        assert_eq!(due, start + 15 * sec);
        // A tick that overran by 1.5 intervals: the missed deadline (start + 2 s) is skipped.
        assert_eq!(
            next_deadline(start + sec, sec, start + sec + ms(1500)),
            start + 3 * sec
        );
        // Exactly on a deadline: the next one.
        assert_eq!(next_deadline(start, sec, start + sec), start + 2 * sec);
    }
}
