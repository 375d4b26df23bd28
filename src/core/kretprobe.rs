//! Return probes that see every return, however many calls are in progress.
//!
//! A kretprobe keeps one instance per call in progress, at most `maxactive` per probe; the
//! return of a call that started while all were taken is not seen, and nothing but the probe's
//! own miss counter says so. libbpf creates kretprobes through the perf `kprobe` PMU, which
//! gives them the kernel's default, max(10, 2 × CPUs): on a small machine ten threads blocked in
//! recvmsg() or accept() hold them all, and tcptop's kprobe plan then counted none of another
//! connection's received bytes (5.10, 30 idle readers). A kretprobe defined in tracefs's
//! `kprobe_events` may ask for the kernel's maximum instead; the program is attached to that
//! event through perf, as libbpf itself does on kernels without the PMU. Without tracefs the
//! PMU's probe is used, and the run says what that limits.
//!
//! The events are named `netbpf_<pid>/<function>_<n>` and removed when the run ends; those a
//! killed run left behind are removed by the next run (their process is gone).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

/// The kernel's upper bound for `maxactive` (KRETPROBE_MAXACTIVE_MAX): ~60 bytes of kernel
/// memory each, allocated when the probe is created.
const MAXACTIVE: u32 = 4096;

const GROUP_PREFIX: &str = "netbpf_";

/// A return probe attached for this run: its link, and the tracefs event it was made from.
struct ReturnProbe {
    link: Option<libbpf_rs::Link>,
    event: Option<(PathBuf, String)>,
}

static PROBES: Mutex<Vec<ReturnProbe>> = Mutex::new(Vec::new());
static AT_EXIT: Once = Once::new();
static STALE_REMOVED: Once = Once::new();
static PMU_NOTE: Once = Once::new();

/// Attaches `prog` to the return of kernel function `func`, for the rest of the run.
pub fn attach(prog: &libbpf_rs::ProgramMut, func: &str) -> Result<(), libbpf_rs::Error> {
    let probe = match crate::core::caps::ensure_tracefs().map(|()| tracefs_dir()) {
        Ok(Some(dir)) => match define(&dir, func) {
            Ok(event) => attach_event(prog, &dir, event)?,
            Err(why) => via_pmu(prog, func, &why)?,
        },
        Ok(None) => via_pmu(prog, func, "tracefs is not mounted")?,
        Err(why) => via_pmu(prog, func, &why)?,
    };
    // SAFETY: registers a plain function with the C library, once.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(detach_at_exit);
    });
    PROBES.lock().unwrap().push(probe);
    Ok(())
}

/// Where tracefs is mounted, if it is.
fn tracefs_dir() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.join("kprobe_events").exists())
}

/// Defines the return probe in `kprobe_events`; returns its `group/name`.
fn define(dir: &Path, func: &str) -> Result<String, String> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    STALE_REMOVED.call_once(|| remove_stale(dir));
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base: String = func
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(48)
        .collect();
    let event = format!("{GROUP_PREFIX}{}/{base}_{n}", std::process::id());
    write_events(dir, &format!("r{MAXACTIVE}:{event} {func}"))
        .map_err(|e| format!("defining a return probe on {func} in tracefs failed: {e}"))?;
    Ok(event)
}

fn write_events(dir: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("kprobe_events"))?;
    f.write_all(format!("{line}\n").as_bytes())
}

/// Opens the tracefs event as a perf event and attaches `prog` to it.
fn attach_event(
    prog: &libbpf_rs::ProgramMut,
    dir: &Path,
    event: String,
) -> Result<ReturnProbe, libbpf_rs::Error> {
    let undefine = |e: libbpf_rs::Error| {
        let _ = write_events(dir, &format!("-:{event}"));
        e
    };
    let id: u64 = std::fs::read_to_string(dir.join("events").join(&event).join("id"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            libbpf_rs::Error::from(std::io::Error::other(format!(
                "tracefs has no id for the event {event} just defined"
            )))
        })
        .map_err(undefine)?;
    // SAFETY: an all-zero perf_event_attr is valid (every field is a number or a union of them).
    let mut attr: libbpf_rs::libbpf_sys::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.type_ = libbpf_rs::libbpf_sys::PERF_TYPE_TRACEPOINT;
    attr.size = std::mem::size_of_val(&attr) as u32;
    attr.config = id;
    attr.__bindgen_anon_1.sample_period = 1;
    attr.__bindgen_anon_2.wakeup_events = 1;
    // A tracepoint-type event for every task needs a CPU; the program runs on all of them.
    // SAFETY: perf_event_open reads `attr`, which lives across the call.
    let pfd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr,
            -1,
            0,
            -1,
            libbpf_rs::libbpf_sys::PERF_FLAG_FD_CLOEXEC,
        )
    } as i32;
    if pfd < 0 {
        return Err(undefine(std::io::Error::last_os_error().into()));
    }
    // The link owns the perf event's descriptor from here and closes it when dropped.
    let link = prog.attach_perf_event(pfd).map_err(|e| {
        // SAFETY: the descriptor is ours; libbpf did not take it on failure.
        unsafe { libc::close(pfd) };
        undefine(e)
    })?;
    Ok(ReturnProbe {
        link: Some(link),
        event: Some((dir.to_path_buf(), event)),
    })
}

/// libbpf's own kretprobe (the perf PMU's, with the kernel's default `maxactive`), said once.
fn via_pmu(
    prog: &libbpf_rs::ProgramMut,
    func: &str,
    why: &str,
) -> Result<ReturnProbe, libbpf_rs::Error> {
    PMU_NOTE.call_once(|| {
        // The kernel's default is sized by the possible CPUs, not this process's affinity.
        // SAFETY: sysconf only reads a system value.
        let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) }.max(1);
        eprintln!(
            "netbpf: {why}: return probes are made without it, so the kernel follows at most {} \
             calls in progress per probed function ({func}, ...); returns of calls beyond that \
             (threads blocked in them) are not seen",
            (2 * cpus).max(10)
        );
    });
    Ok(ReturnProbe {
        link: Some(prog.attach_kprobe(true, func)?),
        event: None,
    })
}

/// Detaches every return probe, then removes its tracefs event (refused while attached): when
/// the run ends (core::run hands the other attachments to a process that outlives this one, and
/// an event cannot be removed while that process holds it), and at exit for runs that end
/// otherwise.
pub fn detach_all() {
    let Ok(mut probes) = PROBES.lock() else {
        return;
    };
    for mut p in probes.drain(..) {
        drop(p.link.take());
        if let Some((dir, event)) = p.event {
            let _ = write_events(&dir, &format!("-:{event}"));
        }
    }
}

extern "C" fn detach_at_exit() {
    detach_all();
}

/// Removes the events of netbpf runs that ended without removing theirs (killed).
fn remove_stale(dir: &Path) {
    let Ok(defined) = std::fs::read_to_string(dir.join("kprobe_events")) else {
        return;
    };
    for event in stale_events(&defined, |pid| Path::new(&format!("/proc/{pid}")).exists()) {
        let _ = write_events(dir, &format!("-:{event}"));
    }
}

/// The `group/name` of each netbpf event in `kprobe_events` whose process is not `alive`.
fn stale_events(kprobe_events: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    kprobe_events
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split_once(':').map(|(_, e)| e))
        .filter(|event| {
            event
                .split_once('/')
                .and_then(|(group, _)| group.strip_prefix(GROUP_PREFIX)?.parse().ok())
                .is_some_and(|pid| !alive(pid))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_of_gone_netbpf_runs_are_stale() {
        let listing = "r4096:netbpf_12/tcp_recvmsg_0 tcp_recvmsg\n\
                       r4096:netbpf_34/inet_csk_accept_1 inet_csk_accept\n\
                       p:kprobes/mine tcp_sendmsg\n\
                       r:netbpf_x/odd tcp_sendmsg\n";
        assert_eq!(
            stale_events(listing, |pid| pid == 34),
            ["netbpf_12/tcp_recvmsg_0"]
        );
    }
}
