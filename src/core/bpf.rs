//! Loading BPF: checks done before (privileges, kernel BTF), libbpf's log kept out of the user's
//! way, and load/attach failures turned into one clear sentence.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{anyhow, Context as _};
use libbpf_rs::{ErrorKind, PrintLevel};

use crate::core::caps::{Hook, Plan};
use crate::core::error::Unsupported;

thread_local! {
    /// libbpf's messages, per thread: libbpf prints on the thread that opens or loads, so loads
    /// running side by side (the exporter's) each explain their own failure.
    static LIBBPF_LOG: RefCell<VecDeque<(PrintLevel, String)>> = const { RefCell::new(VecDeque::new()) };
    static QUIET: Cell<bool> = const { Cell::new(false) };
}
/// Enough for the end of a verifier log and libbpf's messages around it.
const LOG_LINES: usize = 2000;

/// Another kernel's BTF to relocate against instead of this kernel's (`netbpf list --btf`).
static CORE_TARGET: OnceLock<PathBuf> = OnceLock::new();

fn capture(level: PrintLevel, msg: String) {
    if QUIET.get() {
        return;
    }
    if std::env::var_os("NETBPF_DEBUG").is_some() {
        eprint!("libbpf: {msg}");
    }
    // One message may hold many lines (a verifier log): keep them as lines, so the tail shown
    // on failure is the end of the log, not one huge entry or a blank one.
    LIBBPF_LOG.with_borrow_mut(|log| {
        for line in msg.lines().filter(|l| !l.trim().is_empty()) {
            // Relocation checks read every relocation of an object: nothing may fall off.
            if log.len() == LOG_LINES && CORE_TARGET.get().is_none() {
                log.pop_front();
            }
            log.push_back((level, line.trim_end().to_string()));
        }
    });
}

/// Routes libbpf's messages into a buffer (shown on failure, or live with NETBPF_DEBUG=1).
/// Debug lines are kept too: libbpf reports a CO-RE relocation it could not resolve, and which
/// program it is in, at debug level only. libbpf's own hints can mislead here (it suggests
/// raising RLIMIT_MEMLOCK for any EPERM).
pub fn init_logging() {
    libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));
}

/// Runs `f` with libbpf messages discarded (capability probes fail on purpose).
pub fn quiet<T>(f: impl FnOnce() -> T) -> T {
    QUIET.set(true);
    let r = f();
    QUIET.set(false);
    clear_log();
    r
}

fn has_cap(capeff: u64, cap: u32) -> bool {
    capeff & (1u64 << cap) != 0
}

const CAP_SYS_PTRACE: u32 = 19;
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

/// Whether this process may look into every other process's namespaces and open files
/// (/proc/PID/ns, /proc/PID/fd of other users need CAP_SYS_PTRACE).
pub fn sees_every_process() -> bool {
    has_cap(capeff(), CAP_SYS_PTRACE)
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

/// What libbpf said about a failed load, reduced to what names the failure: the program that
/// failed, the relocation it could not resolve, the last lines of its verifier log; or the last
/// warnings when no program is named (a map, BTF, or an attach).
fn log_tail() -> String {
    LIBBPF_LOG.with_borrow(log_tail_of)
}

fn log_tail_of(log: &VecDeque<(PrintLevel, String)>) -> String {
    let warn = |l: &&(PrintLevel, String)| l.0 != PrintLevel::Debug;
    let mut picked: Vec<&str> = Vec::new();
    // The failing program, and what libbpf found wrong in it (CO-RE, a missing kfunc/helper).
    let failed = log.iter().rev().find_map(|(_, l)| {
        let rest = l.split("prog '").nth(1)?;
        let (name, tail) = rest.split_once('\'')?;
        tail.contains("failed").then(|| name.to_string())
    });
    if let Some(prog) = &failed {
        let tag = format!("prog '{prog}'");
        let mut in_log = false;
        let mut verifier: Vec<&str> = Vec::new();
        for (level, l) in log.iter() {
            if l.contains("-- BEGIN PROG LOAD LOG --") && l.contains(&tag) {
                in_log = true;
                verifier.clear();
                continue;
            }
            if l.contains("-- END PROG LOAD LOG --") {
                in_log = false;
                continue;
            }
            if in_log {
                verifier.push(l);
            } else if l.contains(&tag)
                && (*level != PrintLevel::Debug
                    || l.contains("failed")
                    || l.contains("invalid")
                    || l.contains("poison"))
            {
                picked.push(l);
            }
        }
        // The verifier's own verdict is at the end; a CO-RE failure is marked in the middle.
        picked.extend(verifier.iter().filter(|l| l.contains("CO-RE")).copied());
        let tail = verifier.len().saturating_sub(6);
        picked.extend(verifier[tail..].iter().filter(|l| !l.contains("CO-RE")));
    } else {
        let warnings: Vec<&(PrintLevel, String)> = log.iter().filter(warn).collect();
        let tail = warnings.len().saturating_sub(8);
        picked.extend(warnings[tail..].iter().map(|(_, l)| l.as_str()));
    }
    if picked.is_empty() {
        return String::new();
    }
    let mut s = String::from("\nlibbpf said (last lines):");
    let mut seen = std::collections::HashSet::new();
    for l in picked.into_iter().filter(|l| seen.insert(*l)).take(14) {
        s.push_str("\n  ");
        s.push_str(l.trim_start_matches("libbpf: "));
    }
    s
}

/// Forgets what libbpf said so far (before a load whose failure is to be explained).
fn clear_log() {
    LIBBPF_LOG.with_borrow_mut(|log| log.clear());
}

/// Wraps a load error with what the user can do about it. When the plan's hook types were not
/// probed before loading (see `Caps::select`), they are probed now: a hook this kernel refuses
/// is then the reason (exit 2).
pub fn load_failed(tool: &str, e: libbpf_rs::Error) -> anyhow::Error {
    if let Some(unsupported) = crate::core::caps::explain_load_failure(tool) {
        return unsupported.into();
    }
    let hint = match e.kind() {
        // Before 5.11 maps are charged to RLIMIT_MEMLOCK, which a user without
        // CAP_SYS_RESOURCE cannot raise: then EPERM means the limit.
        ErrorKind::PermissionDenied
            if crate::core::errno::of(&e) == Some(libc::EPERM)
                && crate::core::caps::kernel_version().is_some_and(|v| v < (5, 11)) =>
        {
            " (before Linux 5.11 BPF maps count against RLIMIT_MEMLOCK: raise it, e.g. \
             `ulimit -l unlimited` or LimitMEMLOCK=infinity in a systemd unit)"
        }
        // EACCES at load is the verifier's "no" (its reasons are in libbpf's lines below).
        ErrorKind::PermissionDenied if crate::core::errno::of(&e) == Some(libc::EACCES) => {
            " (the kernel's verifier rejected a program: a bug of netbpf on this kernel, please \
             report it with the lines below)"
        }
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

/// A tool's plans and how one is chosen: the load path falls through them, best first.
#[derive(Clone)]
pub struct Plans {
    pub tool: &'static str,
    /// The common filters, written into every opened object's .rodata before `configure` runs
    /// (None: the caller's `configure` sets them, as exporter mode does from its context).
    pub filters: Option<crate::core::cli::Filters>,
    pub all: &'static [Plan],
    /// The first usable plan of a list (`Caps::select`, or the exporter's choice).
    pub select: fn(&str, &'static [Plan]) -> Result<&'static Plan, Unsupported>,
}

impl Plans {
    /// The plan to try after `failed` (whose load the kernel refused), if any is usable.
    fn after(&self, failed: &Plan) -> Option<&'static Plan> {
        let i = self.all.iter().position(|p| std::ptr::eq(p, failed))?;
        let rest = &self.all[i + 1..];
        if rest.is_empty() {
            return None;
        }
        crate::core::bpf::quiet(|| (self.select)(self.tool, rest)).ok()
    }
}

/// The hook type of a program, from its ELF section (`fexit/tcp_close` -> Fentry).
pub fn section_hook(section: &str) -> Option<Hook> {
    let kind = section.split('/').next()?.trim_start_matches('?');
    Some(match kind {
        "fentry" | "fexit" | "fmod_ret" | "lsm" => Hook::Fentry,
        "kprobe" | "kretprobe" | "ksyscall" | "kretsyscall" | "kprobe.multi"
        | "kretprobe.multi" => Hook::Kprobe,
        "tp_btf" => Hook::TpBtf,
        "raw_tp" | "raw_tracepoint" => Hook::RawTp,
        "tp" | "tracepoint" => Hook::Tracepoint,
        "uprobe" | "uretprobe" | "uprobe.multi" | "uretprobe.multi" => Hook::Uprobe,
        _ => return None,
    })
}

/// The plan decides which programs load: a program is loaded when its hook type is one the
/// plan needs (fexit programs for an fexit plan, kprobes for a kprobe plan, shared tracepoint
/// programs for every plan that lists tracepoints). A tool's `configure` may then leave out
/// more (a program whose function this kernel lacks), never add one.
pub fn autoload_by_plan(obj: &mut libbpf_rs::OpenObject, plan: &Plan) {
    for mut prog in obj.progs_mut() {
        let section = prog.section().to_string_lossy().into_owned();
        let wanted = section_hook(&section).is_some_and(|h| plan.needs.contains(&h));
        if prog.autoload() && !wanted {
            prog.set_autoload(false);
        }
    }
}

/// Writes the common filters (common/filter.bpf.h) into an opened object's `.rodata`, finding
/// each variable by its BTF name: every tool's load path sets them the same way, and an object
/// that does not use a filter simply lacks nothing (the variables come with the header).
pub fn write_filters(
    obj: &mut libbpf_rs::OpenObject,
    f: &crate::core::cli::Filters,
) -> anyhow::Result<()> {
    use libbpf_rs::btf::{types, Btf};
    use libbpf_rs::AsRawLibbpf as _;
    let mut values: Vec<(&str, Vec<u8>)> = vec![
        ("filter_tgid", f.tgid.to_ne_bytes().to_vec()),
        ("filter_netns", f.netns.to_ne_bytes().to_vec()),
        ("filter_cgroup", f.cgroup.to_ne_bytes().to_vec()),
        ("filter_cgroup_level", f.cgroup_level.to_ne_bytes().to_vec()),
        ("filter_cgroup_map", vec![u8::from(f.cgroup_map.is_some())]),
        ("filter_mntns_map", vec![u8::from(f.mntns_map.is_some())]),
        ("filter_family", f.family.to_ne_bytes().to_vec()),
        (
            "filter_lports",
            f.lports.iter().flat_map(|p| p.to_ne_bytes()).collect(),
        ),
        (
            "filter_rports",
            f.rports.iter().flat_map(|p| p.to_ne_bytes()).collect(),
        ),
    ];
    // (offset, bytes) of each filter variable the object has.
    let mut writes = Vec::new();
    {
        // SAFETY: the pointer is the live object's; the BTF borrowed from it is dropped at the
        // end of this block, before the object is changed.
        let raw = unsafe { obj.as_libbpf_object().as_ref() };
        let Some(btf) = Btf::from_bpf_object(raw)? else {
            return Ok(()); // no BTF, no .rodata filters (every object here has BTF)
        };
        let Some(sec) = btf.type_by_name::<types::DataSec>(".rodata") else {
            return Ok(());
        };
        for info in sec.iter() {
            let Some(var) = btf.type_by_id::<types::Var>(info.ty) else {
                continue;
            };
            let name = var.name().and_then(|n| n.to_str()).unwrap_or_default();
            if let Some(i) = values.iter().position(|(n, _)| *n == name) {
                let (name, bytes) = values.swap_remove(i);
                anyhow::ensure!(
                    bytes.len() == info.size,
                    "{name} in .rodata is {} bytes, user space writes {}",
                    info.size,
                    bytes.len()
                );
                writes.push((info.offset as usize, bytes));
            }
        }
    }
    if writes.is_empty() {
        return Ok(());
    }
    let mut rodata = obj
        .maps_mut()
        .find(|m| m.name().to_string_lossy().ends_with(".rodata"))
        .ok_or_else(|| anyhow!("the object has filter variables but no .rodata map"))?;
    let data = rodata
        .initial_value_mut()
        .ok_or_else(|| anyhow!(".rodata has no initial value"))?;
    for (offset, bytes) in writes {
        data.get_mut(offset..offset + bytes.len())
            .ok_or_else(|| anyhow!(".rodata is shorter than its BTF says"))?
            .copy_from_slice(&bytes);
    }
    Ok(())
}

/// Puts the pinned sets of --cgroupmap / --mntnsmap in slot 0 of a loaded object's
/// `cgroup_map` / `mntns_map` (common/filter.bpf.h), before it is attached. The kernel refuses a
/// set whose type, key or value size or flags differ from the object's template.
pub fn install_sets(obj: &libbpf_rs::Object, f: &crate::core::cli::Filters) -> anyhow::Result<()> {
    use libbpf_rs::MapCore as _;
    use std::os::fd::{AsFd as _, AsRawFd as _};
    for (name, set) in [("cgroup_map", &f.cgroup_map), ("mntns_map", &f.mntns_map)] {
        let Some(set) = set else { continue };
        let Some(sets) = obj.maps().find(|m| m.name() == name) else {
            continue; // an object without the common filters
        };
        let fd = set.map.as_fd().as_raw_fd() as u32;
        sets.update(
            &0u32.to_ne_bytes(),
            &fd.to_ne_bytes(),
            libbpf_rs::MapFlags::ANY,
        )
        .map_err(|e| {
            crate::usage!(
                "{}: the kernel refused the map ({e}): it must be a hash map with map flags 0",
                set.option
            )
        })?;
    }
    Ok(())
}

/// A `__u64` global of a loaded object's `.bss`, read live through its mmap, by BTF name: the
/// counters of the shared BPF layer (`lost_events`, `map_full_drops`) without each tool
/// naming its skeleton's generated type. None when the object has no such variable.
pub fn bss_u64(obj: &libbpf_rs::Object, name: &str) -> Option<u64> {
    use libbpf_rs::btf::types;
    use libbpf_rs::{AsRawLibbpf as _, MapCore as _};
    let btf = obj.btf().ok()??;
    let sec = btf.type_by_name::<types::DataSec>(".bss")?;
    let info = sec.iter().find(|i| {
        btf.type_by_id::<types::Var>(i.ty)
            .and_then(|v| v.name())
            .is_some_and(|n| n == name)
    })?;
    let offset = info.offset as usize;
    if info.size != 8 || offset % 8 != 0 {
        return None;
    }
    let map = obj
        .maps()
        .find(|m| m.name().to_string_lossy().ends_with(".bss"))?;
    let mut size: libbpf_rs::libbpf_sys::size_t = 0;
    // SAFETY: the map is the loaded object's; libbpf returns its mmap (page aligned) and size.
    let base = unsafe {
        libbpf_rs::libbpf_sys::bpf_map__initial_value(map.as_libbpf_object().as_ptr(), &mut size)
    };
    if base.is_null() || (offset + 8) as u64 > size {
        return None;
    }
    // SAFETY: in bounds and 8-byte aligned (checked above); the kernel updates it concurrently,
    // so it is read volatile.
    Some(unsafe { std::ptr::read_volatile(base.cast::<u8>().add(offset).cast::<u64>()) })
}

/// Opens a tool's embedded object with the programs of `plan` set to load.
pub fn open<B>(tool: &str, plan: &Plan) -> anyhow::Result<B::Output>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    use libbpf_rs::skel::OpenSkel as _;
    // The object storage lives as long as the process: the loaded programs do (a tool, or the
    // exporter), and a plan that failed to load costs one small allocation.
    let object = Box::leak(Box::new(std::mem::MaybeUninit::uninit()));
    let mut open = match CORE_TARGET.get() {
        None => opened(tool, B::default().open(object))?,
        Some(btf) => {
            // Leaked like the object: libbpf keeps the path until the object is freed.
            let path = Box::leak(
                std::ffi::CString::new(btf.as_os_str().as_encoded_bytes())?.into_boxed_c_str(),
            );
            let opts = libbpf_rs::libbpf_sys::bpf_object_open_opts {
                sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_object_open_opts>() as _,
                btf_custom_path: path.as_ptr(),
                ..Default::default()
            };
            opened(tool, B::default().open_opts(opts, object))?
        }
    };
    autoload_by_plan(open.open_object_mut(), plan);
    Ok(open)
}

/// Loaded skeleton type of a skeleton builder.
pub type Skel<B> = <<B as libbpf_rs::skel::SkelBuilder<'static>>::Output as libbpf_rs::skel::OpenSkel<'static>>::Output;

/// Whether a load error is this kernel lacking something the plan uses (a helper, a
/// relocation's field or type, a program type refused): then the next plan may do.
fn kernel_refused(e: &libbpf_rs::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::InvalidInput | ErrorKind::PermissionDenied | ErrorKind::NotFound
    ) || crate::core::errno::not_supported(e)
}

/// The one load path: opens the tool's object for its plan (programs chosen by the plan),
/// lets `configure` set .rodata filters, map sizes and attach targets, and loads it. When the
/// kernel refuses a plan's programs (a helper, field or program type this kernel lacks), the
/// next usable plan is tried, saying so in one line on stderr. Returns the loaded skeleton
/// (not attached) and the plan it was loaded with.
pub fn load_plan<B>(
    plans: &Plans,
    first: &'static Plan,
    mut configure: impl FnMut(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
) -> anyhow::Result<(Skel<B>, &'static Plan)>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    use libbpf_rs::skel::OpenSkel as _;
    let tool = plans.tool;
    let mut plan = first;
    loop {
        let mut open = open::<B>(tool, plan)?;
        if let Some(f) = &plans.filters {
            write_filters(open.open_object_mut(), f)?;
        }
        configure(&mut open, plan)?;
        // libbpf parses kernel BTF again for the load: our copy is not needed any more.
        crate::core::btf::release();
        // Loading is the setup's peak (libbpf's copies, its kernel BTF index): what came before
        // (argument parsing, capability probes, the object's ELF, earlier objects' loads in the
        // exporter) is given back first, so that their pages and the load's do not add up.
        crate::core::mem::release_setup_memory();
        clear_log();
        match open.load() {
            Ok(skel) => {
                if let Some(f) = &plans.filters {
                    install_sets(libbpf_rs::skel::Skel::object(&skel), f)?;
                }
                return Ok((skel, plan));
            }
            Err(e) => {
                let refused = kernel_refused(&e);
                let err = load_failed(tool, e);
                if refused && err.downcast_ref::<Unsupported>().is_none() {
                    if let Some(next) = plans.after(plan) {
                        let why = err.to_string();
                        let why = why.lines().next().unwrap_or_default();
                        eprintln!(
                            "netbpf {tool}: the {} plan does not load on this kernel ({}); using the {} plan",
                            plan.name,
                            why.trim_start_matches(&format!("{tool}: ")),
                            next.name
                        );
                        plan = next;
                        continue;
                    }
                }
                return Err(err);
            }
        }
    }
}

/// [`load_plan`], then attaches every loaded program by its section.
pub fn load<B>(
    plans: &Plans,
    first: &'static Plan,
    configure: impl FnMut(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
) -> anyhow::Result<(Skel<B>, &'static Plan)>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    let (mut skel, plan) = load_plan::<B>(plans, first, configure)?;
    attach::<B>(plans.tool, plan, &mut skel)?;
    Ok((skel, plan))
}

/// Attaches the programs of `tool`'s skeleton, loaded with `plan`.
pub fn attach<B>(tool: &str, plan: &Plan, skel: &mut Skel<B>) -> anyhow::Result<()>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    use libbpf_rs::skel::Skel as _;
    use libbpf_rs::AsRawLibbpf as _;
    // Return probes are attached through core::kretprobe (libbpf's own would miss the returns
    // of calls beyond the kernel's default count in progress), after the rest.
    let mut returns = Vec::new();
    for prog in skel.object().progs() {
        let section = prog.section().to_string_lossy();
        let Some(func) = section.strip_prefix("kretprobe/") else {
            continue;
        };
        let raw = prog.as_libbpf_object().as_ptr();
        // SAFETY: `raw` is this object's live program; the autoattach flag is read and set
        // before libbpf's attach reads it, on this thread.
        if prog.autoload() && unsafe { libbpf_rs::libbpf_sys::bpf_program__autoattach(raw) } {
            unsafe { libbpf_rs::libbpf_sys::bpf_program__set_autoattach(raw, false) };
            returns.push((prog.name().to_owned(), func.to_string()));
        }
    }
    skel.attach()
        .map_err(|e| attach_failed(tool, plan.attach, e))?;
    for (name, func) in returns {
        let prog = skel
            .object()
            .progs_mut()
            .find(|p| p.name() == name.as_os_str())
            .expect("a program of this object");
        crate::core::kretprobe::attach(&prog, &func)
            .map_err(|e| attach_failed(tool, &format!("kretprobe {func}"), e))?;
    }
    Ok(())
}

/// Whether `tool`'s object loads with `plan` on this kernel, verifier included, without
/// attaching: what `netbpf list` reports. Only the plan's own choice of programs (and what
/// `configure` adds) is loaded; the result is remembered for the run.
pub fn verify_with<B>(
    tool: &'static str,
    plan: &'static Plan,
    configure: impl FnOnce(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
) -> Result<(), String>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    type Verdicts = Vec<(&'static str, &'static str, Result<(), String>)>;
    static VERIFIED: Mutex<Verdicts> = Mutex::new(Vec::new());
    if let Some((.., r)) = VERIFIED
        .lock()
        .unwrap()
        .iter()
        .find(|(t, p, _)| *t == tool && *p == plan.name)
    {
        return r.clone();
    }
    let r = (|| -> anyhow::Result<()> {
        use libbpf_rs::skel::OpenSkel as _;
        let mut open = open::<B>(tool, plan)?;
        configure(&mut open, plan)?;
        clear_log();
        if CORE_TARGET.get().is_some() {
            return relocated(tool, open.open_object_mut());
        }
        open.load().map(drop).map_err(|e| load_failed(tool, e))
    })()
    .map_err(|e| {
        let s = format!("{e:#}");
        s.trim_start_matches(&format!("{tool}: ")).to_string()
    });
    VERIFIED.lock().unwrap().push((tool, plan.name, r.clone()));
    r
}

/// Unit tests of programs that cannot attach on the test kernel (a kprobe plan): loads `open`,
/// verifier included, or says the test is skipped when loading needs a privilege it lacks.
#[cfg(test)]
pub fn assert_loads<'o>(open: impl libbpf_rs::skel::OpenSkel<'o>) {
    match open.load() {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            eprintln!("skipped: loading BPF needs root")
        }
        Err(e) => panic!("{e}"),
    }
}

/// Makes every later open relocate against the BTF in `path` (another kernel's vmlinux, or a
/// BTF file extracted from one) and every verify stop after relocation: `netbpf list --btf`.
pub fn relocate_against(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    // A FIFO or device would block or mislead libbpf: only a regular file is read.
    if !meta.is_file() {
        anyhow::bail!("{}: not a regular file", path.display());
    }
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a NUL-terminated path; the parsed BTF is freed at once (only its validity counts).
    let btf = unsafe { libbpf_rs::libbpf_sys::btf__parse(cpath.as_ptr(), std::ptr::null_mut()) };
    let err = unsafe { libbpf_rs::libbpf_sys::libbpf_get_error(btf as *const _) };
    if btf.is_null() || err != 0 {
        anyhow::bail!(
            "{}: no BTF could be read from it (a vmlinux with a .BTF section, or a raw BTF file \
             such as /sys/kernel/btf/vmlinux)",
            path.display()
        );
    }
    unsafe { libbpf_rs::libbpf_sys::btf__free(btf) };
    CORE_TARGET
        .set(path.to_path_buf())
        .map_err(|_| anyhow!("relocation target set twice"))
}

/// One CO-RE relocation libbpf could not resolve against the target BTF: the instruction was
/// poisoned, so the program fails verification if that instruction can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relocation {
    pub prog: String,
    /// libbpf's kind: field_byte_offset, type_id_target, enumval_value...
    pub kind: String,
    /// The access as libbpf spells it: `struct net.net_cookie`, `enum skb_drop_reason::X`.
    pub spec: String,
    /// Whether an `*_exists` check (or another flavour of the type, relocated) in the same
    /// program lets the program skip this access on that kernel.
    pub guarded: bool,
}

/// Relocates `obj` against the target BTF without loading it, and keeps what could not be
/// resolved (see [`relocations`]).
fn relocated(tool: &str, obj: &mut libbpf_rs::OpenObject) -> anyhow::Result<()> {
    // SAFETY: the open object is valid; prepare relocates programs without creating maps or
    // loading anything into the kernel.
    let rc = unsafe {
        use libbpf_rs::AsRawLibbpf as _;
        libbpf_rs::libbpf_sys::bpf_object__prepare(obj.as_libbpf_object().as_ptr())
    };
    let found = LIBBPF_LOG.with_borrow(parse_relocations);
    RELOCATIONS.lock().unwrap().extend(found);
    if rc != 0 {
        anyhow::bail!(
            "{tool}: relocation failed: {}{}",
            std::io::Error::from_raw_os_error(-rc),
            log_tail()
        );
    }
    Ok(())
}

static RELOCATIONS: Mutex<Vec<Relocation>> = Mutex::new(Vec::new());

/// The relocations the verifies since the last call could not resolve.
pub fn relocations() -> Vec<Relocation> {
    std::mem::take(&mut *RELOCATIONS.lock().unwrap())
}

/// Reads libbpf's debug log of a relocation pass: per program, every relocation's spec
/// (`prog 'p': relo #3: <field_byte_offset> [12] struct net.net_cookie (0:31 @ offset 120)`),
/// the poisoned ones (`relo #3: substituting insn #40 w/ invalid insn`), and the existence
/// checks and flavours that guard them.
fn parse_relocations(log: &VecDeque<(PrintLevel, String)>) -> Vec<Relocation> {
    struct Relo {
        kind: String,
        spec: String,
        poisoned: bool,
        resolved: bool,
    }
    let mut progs: Vec<(String, Vec<(u32, Relo)>)> = Vec::new();
    for (_, line) in log {
        let line = line.trim_start_matches("libbpf: ");
        let Some(rest) = line.strip_prefix("prog '") else {
            continue;
        };
        let Some((prog, rest)) = rest.split_once("': relo #") else {
            continue;
        };
        let Some((num, rest)) = rest.split_once(": ") else {
            continue;
        };
        let Ok(num) = num.parse::<u32>() else {
            continue;
        };
        if progs.last().is_none_or(|(p, _)| p != prog) {
            progs.push((prog.to_string(), Vec::new()));
        }
        let relos = &mut progs.last_mut().unwrap().1;
        if let Some(spec) = rest.strip_prefix('<') {
            // The spec line: `<kind> [id] spec (access @ offset)`.
            let Some((kind, spec)) = spec.split_once("> ") else {
                continue;
            };
            let spec = spec.split_once("] ").map_or(spec, |(_, s)| s);
            let spec = spec.rsplit_once(" (").map_or(spec, |(s, _)| s);
            if !relos.iter().any(|(n, _)| *n == num) {
                relos.push((
                    num,
                    Relo {
                        kind: kind.to_string(),
                        spec: spec.to_string(),
                        poisoned: false,
                        resolved: false,
                    },
                ));
            }
        } else if let Some((_, r)) = relos.iter_mut().find(|(n, _)| *n == num) {
            if rest.contains("w/ invalid insn") {
                r.poisoned = true;
            } else if rest.starts_with("patched insn") || rest.starts_with("matching candidate") {
                r.resolved = true;
            }
        }
    }
    let base = |spec: &str| -> String {
        // `struct net___old.net_cookie` -> `struct net`: the type, flavour and access dropped.
        let ty = spec.split(['.', ':']).next().unwrap_or(spec);
        ty.split("___").next().unwrap_or(ty).to_string()
    };
    let mut out = Vec::new();
    for (prog, relos) in progs {
        for (_, r) in relos.iter().filter(|(_, r)| r.poisoned) {
            let ty = base(&r.spec);
            let flavoured = r
                .spec
                .split(['.', ':'])
                .next()
                .unwrap_or("")
                .contains("___");
            let guarded = relos.iter().any(|(_, o)| {
                let same_type = base(&o.spec) == ty;
                let check = o.kind.ends_with("_exists") || o.kind.ends_with("_matches");
                // A check on this very field or type, or, for a flavour, on its base type or
                // another flavour that did relocate.
                (check && same_type && (flavoured || o.spec == r.spec || !o.spec.contains('.')))
                    || (flavoured && same_type && !o.poisoned && o.resolved && o.spec != r.spec)
            });
            out.push(Relocation {
                prog: prog.clone(),
                kind: r.kind.clone(),
                spec: r.spec.clone(),
                guarded,
            });
        }
    }
    out
}

/// [`verify_with`] for a tool whose plan alone says what to load.
pub fn verify<B>(tool: &'static str, plan: &'static Plan) -> Result<(), String>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    verify_with::<B>(tool, plan, |_, _| Ok(()))
}

/// Marks a generated event type as plain data: any byte pattern is a valid value, so it can be
/// copied out of the ring buffer as is.
///
/// # Safety
/// Only for `#[repr(C)]` structs of integers and arrays of integers.
pub unsafe trait Pod: Copy {}

/// The bytes of a plain-data value, as a map key or value to write.
pub fn bytes_of<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod (integers and arrays of them, padding spelled out by the skeleton
    // generator), so every byte of it is initialized.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// Copies one event out of a ring-buffer record; None when the record is too short.
pub fn read_event<T: Pod>(data: &[u8]) -> Option<T> {
    if data.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: T is Pod and `data` holds at least size_of::<T>() bytes.
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}
