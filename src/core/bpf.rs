//! Loading BPF: checks done before (privileges, kernel BTF), libbpf's log kept out of the user's
//! way, and load/attach failures turned into one clear sentence.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{anyhow, Context as _};
use libbpf_rs::{ErrorKind, PrintLevel};

static LIBBPF_LOG: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
const LOG_LINES: usize = 40;

fn capture(level: PrintLevel, msg: String) {
    if std::env::var_os("NETBPF_DEBUG").is_some()
        && !QUIET.load(std::sync::atomic::Ordering::Relaxed)
    {
        eprint!("libbpf: {msg}");
    }
    if level == PrintLevel::Debug {
        return;
    }
    let mut log = LIBBPF_LOG.lock().unwrap();
    if log.len() == LOG_LINES {
        log.pop_front();
    }
    log.push_back(msg.trim_end().to_string());
}

/// Routes libbpf's messages into a small buffer (shown on failure, or live with NETBPF_DEBUG=1).
/// libbpf's own hints can mislead here (it suggests raising RLIMIT_MEMLOCK for any EPERM).
pub fn init_logging() {
    let level = if std::env::var_os("NETBPF_DEBUG").is_some() {
        PrintLevel::Debug
    } else {
        PrintLevel::Info
    };
    libbpf_rs::set_print(Some((level, capture)));
}

/// Runs `f` with libbpf messages discarded (capability probes fail on purpose).
pub fn quiet<T>(f: impl FnOnce() -> T) -> T {
    QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
    let r = f();
    QUIET.store(false, std::sync::atomic::Ordering::Relaxed);
    LIBBPF_LOG.lock().unwrap().clear();
    r
}

fn has_cap(capeff: u64, cap: u32) -> bool {
    capeff & (1u64 << cap) != 0
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// This process's effective capabilities.
fn capeff() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
}

/// Whether this process may load BPF tracing programs.
pub fn privileged() -> bool {
    let c = capeff();
    has_cap(c, CAP_SYS_ADMIN) || (has_cap(c, CAP_BPF) && has_cap(c, CAP_PERFMON))
}

/// Whether this process has CAP_SYS_ADMIN (mounting tracefs needs it).
pub fn has_sys_admin() -> bool {
    has_cap(capeff(), CAP_SYS_ADMIN)
}

/// Fails early, with the reason, when the tool could not load anything.
pub fn preflight(tool: &str) -> anyhow::Result<()> {
    if !privileged() {
        return Err(anyhow!(
            "{tool} needs root: loading BPF tracing programs requires CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
        ));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err(crate::core::error::Unsupported::new(
            tool,
            "kernel BTF is missing (/sys/kernel/btf/vmlinux); netbpf needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y",
        )
        .into());
    }
    init_logging();
    Ok(())
}

fn log_tail() -> String {
    let log = LIBBPF_LOG.lock().unwrap();
    let lines: Vec<&String> = log.iter().rev().take(8).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let mut s = String::from("\nlibbpf said (last lines):");
        for l in lines.into_iter().rev() {
            s.push_str("\n  ");
            s.push_str(l);
        }
        s
    }
}

/// Wraps a load error with what the user can do about it. When the plan's hook types were not
/// probed before loading (see `Caps::select`), they are probed now: a hook this kernel refuses
/// is then the reason (exit 2).
pub fn load_failed(tool: &str, e: libbpf_rs::Error) -> anyhow::Error {
    if let Some(unsupported) = crate::core::caps::explain_load_failure(tool) {
        return unsupported.into();
    }
    let hint = match e.kind() {
        ErrorKind::PermissionDenied => {
            " (the kernel refused the program: missing privileges, or lockdown/a security policy)"
        }
        _ => "",
    };
    anyhow!(
        "{tool}: loading BPF programs failed: {e}{hint}{}",
        log_tail()
    )
}

/// Wraps an attach error, naming the hook.
pub fn attach_failed(tool: &str, what: &str, e: libbpf_rs::Error) -> anyhow::Error {
    let hint = match e.kind() {
        ErrorKind::NotFound => " (hook not present on this kernel)",
        _ => "",
    };
    anyhow!("{tool}: attaching {what} failed: {e}{hint}{}", log_tail())
}

pub trait LoadContext<T> {
    fn or_load_failed(self, tool: &str) -> anyhow::Result<T>;
}

impl<T> LoadContext<T> for Result<T, libbpf_rs::Error> {
    fn or_load_failed(self, tool: &str) -> anyhow::Result<T> {
        self.map_err(|e| load_failed(tool, e))
    }
}

/// Opening a skeleton only parses the embedded object; failure means a broken build.
pub fn opened<T>(tool: &str, r: Result<T, libbpf_rs::Error>) -> anyhow::Result<T> {
    r.with_context(|| format!("{tool}: opening the embedded BPF object failed"))
}

/// Opens a tool's skeleton, lets `configure` set its .rodata (filters) and autoload flags, then
/// loads and attaches it, with errors that name the tool and its hooks.
pub fn load<'obj, B: libbpf_rs::skel::SkelBuilder<'obj>>(
    tool: &str,
    attach: &str,
    builder: B,
    object: &'obj mut std::mem::MaybeUninit<libbpf_rs::OpenObject>,
    configure: impl FnOnce(&mut B::Output),
) -> anyhow::Result<<B::Output as libbpf_rs::skel::OpenSkel<'obj>>::Output> {
    use libbpf_rs::skel::{OpenSkel as _, Skel as _};
    let mut open = opened(tool, builder.open(object))?;
    configure(&mut open);
    // libbpf parses kernel BTF again for the load: our copy is not needed any more.
    crate::core::btf::release();
    let mut skel = open.load().or_load_failed(tool)?;
    skel.attach().map_err(|e| attach_failed(tool, attach, e))?;
    Ok(skel)
}

/// Marks a generated event type as plain data: any byte pattern is a valid value, so it can be
/// copied out of the ring buffer as is.
///
/// # Safety
/// Only for `#[repr(C)]` structs of integers and arrays of integers.
pub unsafe trait Pod: Copy {}

/// Copies one event out of a ring-buffer record; None when the record is too short.
pub fn read_event<T: Pod>(data: &[u8]) -> Option<T> {
    if data.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is Pod and `data` holds at least size_of::<T>() bytes.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}
