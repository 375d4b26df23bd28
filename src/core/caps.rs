//! What this kernel lets us hook, probed once per run, and the choice of each tool's attach plan.
//!
//! A tool lists its plans best first (e.g. fexit → kprobe → tracepoint). The first plan whose
//! hooks are all available is used; when none is, the tool refuses with the reason, naming the
//! missing hook, and exits 2.

use std::fmt;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::OnceLock;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};

use crate::core::error::Unsupported;

mod probe_skel {
    include!(concat!(env!("OUT_DIR"), "/probe.skel.rs"));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// fentry/fexit trampolines (BPF_PROG_TYPE_TRACING).
    Fentry,
    /// kprobe/kretprobe perf events.
    Kprobe,
    /// BTF-typed raw tracepoints.
    TpBtf,
    /// Raw tracepoints.
    RawTp,
    /// Classic tracepoints, which need tracefs for their ids.
    Tracepoint,
    /// uprobe/uretprobe perf events.
    Uprobe,
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Hook::Fentry => "fentry",
            Hook::Kprobe => "kprobe",
            Hook::TpBtf => "tp_btf",
            Hook::RawTp => "raw_tp",
            Hook::Tracepoint => "tracepoint",
            Hook::Uprobe => "uprobe",
        })
    }
}

/// One way to build a tool on a kernel.
#[derive(Debug)]
pub struct Plan {
    /// Short name shown by `netbpf list`, e.g. "tracepoint".
    pub name: &'static str,
    pub needs: &'static [Hook],
    /// The attach points, for `netbpf list --verbose` and docs.
    pub attach: &'static str,
    /// Further kernel requirement (a function or type in BTF, a qdisc, ...), checked last.
    pub check: Option<fn() -> Result<(), String>>,
}

pub struct Caps {
    fentry: Result<(), String>,
    kprobe: Result<(), String>,
    tp_btf: Result<(), String>,
    raw_tp: Result<(), String>,
    tracepoint: Result<(), String>,
    uprobe: Result<(), String>,
}

const TRACEFS: &str = "/sys/kernel/tracing";

impl Caps {
    pub fn get() -> &'static Caps {
        static CAPS: OnceLock<Caps> = OnceLock::new();
        CAPS.get_or_init(Caps::probe)
    }

    fn probe() -> Caps {
        let pmu = |name: &str| {
            if Path::new(&format!("/sys/bus/event_source/devices/{name}/type")).exists() {
                Ok(())
            } else {
                Err(format!(
                    "the kernel has no {name} PMU (built without CONFIG_{}S?)",
                    name.to_uppercase()
                ))
            }
        };
        Caps {
            fentry: load_probe("probe_fentry"),
            kprobe: pmu("kprobe"),
            tp_btf: load_probe("probe_tp_btf"),
            raw_tp: load_probe("probe_raw_tp"),
            tracepoint: if tracefs_mounted() || Path::new(TRACEFS).is_dir() {
                Ok(())
            } else {
                Err(format!(
                    "tracefs is not mounted and {TRACEFS} does not exist"
                ))
            },
            uprobe: pmu("uprobe"),
        }
    }

    pub fn has(&self, hook: Hook) -> Result<(), String> {
        match hook {
            Hook::Fentry => self.fentry.clone(),
            Hook::Kprobe => self.kprobe.clone(),
            Hook::TpBtf => self.tp_btf.clone(),
            Hook::RawTp => self.raw_tp.clone(),
            Hook::Tracepoint => self.tracepoint.clone(),
            Hook::Uprobe => self.uprobe.clone(),
        }
    }

    /// Why `plan` cannot run here, or Ok.
    pub fn check(&self, plan: &Plan) -> Result<(), String> {
        for &h in plan.needs {
            self.has(h)
                .map_err(|why| format!("{h} unavailable: {why}"))?;
        }
        if let Some(check) = plan.check {
            check()?;
        }
        Ok(())
    }

    /// The first plan this kernel supports, with tracefs mounted when it needs one.
    /// `NETBPF_PLAN=NAME` in the environment asks for that plan only (tests use it to cover
    /// every plan a kernel can run, not only the best one).
    pub fn select<'a>(&self, tool: &str, plans: &'a [Plan]) -> Result<&'a Plan, Unsupported> {
        let forced = std::env::var("NETBPF_PLAN").ok().filter(|p| !p.is_empty());
        if let Some(name) = &forced {
            if !plans.iter().any(|p| p.name == name) {
                let names: Vec<_> = plans.iter().map(|p| p.name).collect();
                return Err(Unsupported::new(
                    tool,
                    format!(
                        "NETBPF_PLAN={name}: no such plan (plans: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        let mut reasons = Vec::new();
        for plan in plans
            .iter()
            .filter(|p| forced.as_deref().is_none_or(|f| p.name == f))
        {
            match self.check(plan) {
                Ok(()) => {
                    if plan.needs.contains(&Hook::Tracepoint) {
                        ensure_tracefs().map_err(|why| Unsupported::new(tool, why))?;
                    }
                    return Ok(plan);
                }
                Err(why) => reasons.push(format!("{} ({}): {why}", plan.name, plan.attach)),
            }
        }
        Err(Unsupported::new(
            tool,
            format!("no usable hook on this kernel: {}", reasons.join("; ")),
        ))
    }
}

fn load_probe(prog: &str) -> Result<(), String> {
    let mut obj = MaybeUninit::uninit();
    let mut open = probe_skel::ProbeSkelBuilder::default()
        .open(&mut obj)
        .map_err(|e| e.to_string())?;
    for mut p in open.open_object_mut().progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        p.set_autoload(name == prog);
    }
    crate::core::bpf::quiet(|| open.load())
        .map(|_| ())
        .map_err(|e| match e.kind() {
            libbpf_rs::ErrorKind::PermissionDenied => {
                "the kernel refuses this program type (EPERM: lockdown or a local policy)"
                    .to_string()
            }
            _ => format!("load failed: {e}"),
        })
}

pub fn tracefs_mounted() -> bool {
    Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
}

/// Classic tracepoints need tracefs: libbpf reads each tracepoint's id from it. A fresh machine
/// may not have it mounted, so mount it (and say so).
pub fn ensure_tracefs() -> Result<(), String> {
    if tracefs_mounted() {
        return Ok(());
    }
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            c"/sys/kernel/tracing".as_ptr(),
            c"tracefs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "tracefs is not mounted and mounting it at {TRACEFS} failed ({}); mount it with \
             'mount -t tracefs tracefs {TRACEFS}'",
            std::io::Error::last_os_error()
        ));
    }
    eprintln!("netbpf: mounted tracefs at {TRACEFS} (classic tracepoints need it)");
    Ok(())
}

/// Whether kernel BTF has a type (function, struct, tracepoint typedef `btf_trace_NAME`) of this
/// name: for a plan's `check` on a function or tracepoint only some kernels have.
pub fn btf_has(name: &str) -> Result<(), String> {
    let btf = libbpf_rs::btf::Btf::from_vmlinux()
        .map_err(|e| format!("kernel BTF could not be read: {e}"))?;
    match btf.type_by_name::<libbpf_rs::btf::BtfType>(name) {
        Some(_) => Ok(()),
        None => Err(format!("'{name}' is not in kernel BTF")),
    }
}

/// How many arguments a tracepoint hands a tp_btf program on this kernel (from the BTF typedef
/// `btf_trace_NAME`, less its leading context pointer), or None when it has no such tracepoint.
/// Tracepoints gain arguments over kernel versions; a program must not read past the last one.
pub fn tp_btf_args(name: &str) -> Option<usize> {
    use libbpf_rs::btf::{types, BtfType, ReferencesType};
    let btf = libbpf_rs::btf::Btf::from_vmlinux().ok()?;
    let typedef = btf.type_by_name::<types::Typedef>(&format!("btf_trace_{name}"))?;
    let ptr: BtfType = typedef.referenced_type();
    let proto =
        types::FuncProto::try_from(types::Ptr::try_from(ptr).ok()?.referenced_type()).ok()?;
    Some(proto.len().saturating_sub(1))
}

/// The position (from 0) of the parameter named `param` of kernel function `func`, from BTF, or
/// None when the function or the parameter is not there. Function signatures change between
/// kernel versions (an argument dropped or added): a function hook reads its arguments by the
/// position this gives.
pub fn func_param_index(func: &str, param: &str) -> Option<usize> {
    use libbpf_rs::btf::{types, ReferencesType};
    let btf = libbpf_rs::btf::Btf::from_vmlinux().ok()?;
    let f = btf.type_by_name::<types::Func>(func)?;
    let proto = types::FuncProto::try_from(f.referenced_type()).ok()?;
    let index = proto
        .iter()
        .position(|p| p.name.is_some_and(|n| n == param));
    index
}

/// The running kernel's (major, minor) version, from uname.
pub fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether an fentry/fexit trampoline can be attached to kernel function `func` here, by its
/// number of arguments: x86-64 trampolines take at most 6 before Linux 6.6 (attaching to a
/// function with more fails with ENOTSUPP), arm64 ones 8.
pub fn fentry_can_take(func: &str) -> Result<(), String> {
    use libbpf_rs::btf::{types, ReferencesType};
    let btf = libbpf_rs::btf::Btf::from_vmlinux()
        .map_err(|e| format!("kernel BTF could not be read: {e}"))?;
    let f = btf
        .type_by_name::<types::Func>(func)
        .ok_or_else(|| format!("'{func}' is not in kernel BTF"))?;
    let args = types::FuncProto::try_from(f.referenced_type())
        .map(|p| p.len())
        .map_err(|_| format!("'{func}' has no prototype in kernel BTF"))?;
    let limit = if cfg!(target_arch = "aarch64") {
        8
    } else if kernel_version().is_some_and(|v| v >= (6, 6)) {
        12
    } else {
        6
    };
    if args > limit {
        return Err(format!(
            "{func} has {args} arguments; fentry trampolines take at most {limit} on this kernel \
             (x86-64: 12 from Linux 6.6)"
        ));
    }
    Ok(())
}
