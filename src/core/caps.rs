//! What this kernel lets us hook, probed once per run, and the choice of each tool's attach plan.
//!
//! A tool lists its plans best first (e.g. fexit → kprobe → tracepoint). The first plan whose
//! hooks are all available is used; when none is, the tool refuses with the reason, naming the
//! missing hook, and exits 2.

use std::fmt;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::core::error::Unsupported;

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

impl Hook {
    const ALL: [Hook; 6] = [
        Hook::Fentry,
        Hook::Kprobe,
        Hook::TpBtf,
        Hook::RawTp,
        Hook::Tracepoint,
        Hook::Uprobe,
    ];

    /// Whether learning if this kernel allows the hook means loading a program (a few ms, and
    /// kernel BTF parsed); the others are a look at sysfs.
    fn probed_by_loading(self) -> bool {
        matches!(self, Hook::Fentry | Hook::TpBtf | Hook::RawTp)
    }
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

impl Plan {
    /// A plan of these hook types and attach points, with no further check.
    pub const fn new(name: &'static str, needs: &'static [Hook], attach: &'static str) -> Plan {
        Plan {
            name,
            needs,
            attach,
            check: None,
        }
    }

    /// The plan, usable only where `check` passes too.
    pub const fn checked(self, check: fn() -> Result<(), String>) -> Plan {
        Plan {
            check: Some(check),
            ..self
        }
    }

    /// Whether the plan uses this hook type (and so loads the tool's programs of that type).
    pub fn uses(&self, hook: Hook) -> bool {
        self.needs.contains(&hook)
    }
}

/// What this kernel allows, each hook probed on first use and remembered for the run.
pub struct Caps {
    hooks: [OnceLock<Result<(), String>>; 6],
}

const TRACEFS: &str = "/sys/kernel/tracing";

/// Hooks of the chosen plan whose probe was skipped (see [`Caps::select`]), per tool: probed
/// only if loading fails, to say why.
static DEFERRED: Mutex<Vec<(String, Vec<Hook>)>> = Mutex::new(Vec::new());

impl Caps {
    pub fn get() -> &'static Caps {
        static CAPS: OnceLock<Caps> = OnceLock::new();
        CAPS.get_or_init(|| Caps {
            hooks: Default::default(),
        })
    }

    pub fn has(&self, hook: Hook) -> Result<(), String> {
        let i = Hook::ALL.iter().position(|&h| h == hook).unwrap();
        self.hooks[i].get_or_init(|| probe(hook)).clone()
    }

    /// Why `plan` cannot run here, or Ok.
    pub fn check(&self, plan: &Plan) -> Result<(), String> {
        self.check_except(plan, &[]).map_err(|(why, _)| why)
    }

    /// Like `check`, without probing the hooks in `skip`; the error says whether it is the
    /// kernel's (true) or only this environment's (false: tracefs not mountable here).
    fn check_except(&self, plan: &Plan, skip: &[Hook]) -> Result<(), (String, bool)> {
        for &h in plan.needs.iter().filter(|h| !skip.contains(h)) {
            self.has(h).map_err(|why| {
                let kernel = !(h == Hook::Tracepoint && Path::new(TRACEFS).is_dir());
                (format!("{h} unavailable: {why}"), kernel)
            })?;
        }
        if let Some(check) = plan.check {
            check().map_err(|why| (why, true))?;
        }
        Ok(())
    }

    /// The first plan this kernel supports, with tracefs mounted when it needs one (a plan
    /// whose tracefs cannot be mounted is passed over).
    /// `NETBPF_PLAN=NAME` in the environment asks for that plan only (tests use it to cover
    /// every plan a kernel can run, not only the best one).
    ///
    /// Probing a hook type by loading a program costs milliseconds at every start, so a hook is
    /// not probed when it cannot decide between plans: when every later plan needs it too (for
    /// the last plan, every hook that needs a load). If loading the tool then fails,
    /// [`explain_load_failure`] probes it to say why.
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
        let candidates: Vec<&Plan> = plans
            .iter()
            .filter(|p| forced.as_deref().is_none_or(|f| p.name == f))
            .collect();
        let mut reasons = Vec::new();
        let mut kernel_reasons = false;
        for (i, &plan) in candidates.iter().enumerate() {
            let later = &candidates[i + 1..];
            let deferred: Vec<Hook> = plan
                .needs
                .iter()
                .copied()
                .filter(|&h| h.probed_by_loading() && later.iter().all(|p| p.needs.contains(&h)))
                .collect();
            if let Err((why, kernel)) = self.check_except(plan, &deferred) {
                reasons.push(format!("{} ({}): {why}", plan.name, plan.attach));
                kernel_reasons |= kernel;
                continue;
            }
            if plan.needs.contains(&Hook::Tracepoint) {
                if let Err(why) = ensure_tracefs() {
                    reasons.push(format!("{} ({}): {why}", plan.name, plan.attach));
                    continue;
                }
            }
            let mut d = DEFERRED.lock().unwrap();
            d.retain(|(t, _)| t != tool);
            d.push((tool.to_string(), deferred));
            return Ok(plan);
        }
        if kernel_reasons {
            Err(Unsupported::new(
                tool,
                format!("no usable hook on this kernel: {}", reasons.join("; ")),
            ))
        } else {
            Err(Unsupported::here(tool, reasons.join("; ")))
        }
    }
}

/// When loading `tool` failed: the hook its plan needs that this kernel refuses, probed now
/// (it was not probed before the load, see [`Caps::select`]).
pub fn explain_load_failure(tool: &str) -> Option<Unsupported> {
    let deferred = {
        let d = DEFERRED.lock().unwrap();
        d.iter().find(|(t, _)| t == tool)?.1.clone()
    };
    let caps = Caps::get();
    deferred.into_iter().find_map(|h| {
        caps.has(h)
            .err()
            .map(|why| Unsupported::new(tool, format!("{h} unavailable: {why}")))
    })
}

fn probe(hook: Hook) -> Result<(), String> {
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
    use libbpf_rs::libbpf_sys as sys;
    match hook {
        Hook::Kprobe => pmu("kprobe"),
        Hook::Uprobe => pmu("uprobe"),
        Hook::Tracepoint => {
            if tracefs_mounted() {
                Ok(())
            } else if std::fs::metadata(Path::new(TRACEFS).join("events"))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
            {
                // Mounted, but root's alone (mode 700): an unprivileged user cannot read the
                // tracepoint ids libbpf needs.
                Err(format!(
                    "tracefs at {TRACEFS} is not readable by this user (classic tracepoints need \
                     it: run as root, or mount tracefs with a mode or gid that lets this user in)"
                ))
            } else if !Path::new(TRACEFS).is_dir() {
                Err(format!(
                    "tracefs is not mounted and {TRACEFS} does not exist"
                ))
            } else if crate::core::bpf::has_sys_admin() {
                Ok(()) // mounted when a plan needs it (ensure_tracefs)
            } else {
                Err(format!(
                    "tracefs is not mounted, and mounting it at {TRACEFS} needs CAP_SYS_ADMIN"
                ))
            }
        }
        Hook::Fentry => {
            let id = crate::core::btf::func_id("tcp_close")?
                .ok_or("kernel BTF has no tcp_close to try an fentry program on")?;
            load_probe(sys::BPF_PROG_TYPE_TRACING, sys::BPF_TRACE_FENTRY, id)
        }
        Hook::TpBtf => {
            let id = crate::core::btf::tracepoint_id("inet_sock_set_state")?
                .ok_or("kernel BTF has no inet_sock_set_state tracepoint to try tp_btf on")?;
            load_probe(sys::BPF_PROG_TYPE_TRACING, sys::BPF_TRACE_RAW_TP, id)
        }
        Hook::RawTp => load_probe(sys::BPF_PROG_TYPE_RAW_TRACEPOINT, 0, 0),
    }
}

/// Loads (and at once closes) the smallest program of this type, `r0 = 0; exit`, with a raw
/// bpf(BPF_PROG_LOAD): no object file, no verifier log, no BTF parsed but the one shared cache.
fn load_probe(
    prog_type: libbpf_rs::libbpf_sys::bpf_prog_type,
    attach_type: libbpf_rs::libbpf_sys::bpf_attach_type,
    attach_btf_id: u32,
) -> Result<(), String> {
    use libbpf_rs::libbpf_sys as sys;
    const MOV64_R0_0: [u8; 8] = [0xb7, 0, 0, 0, 0, 0, 0, 0];
    const EXIT: [u8; 8] = [0x95, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: bpf_insn is the kernel's 8-byte instruction (#[repr(C)]); these are its bytes.
    let insns: [sys::bpf_insn; 2] = unsafe { std::mem::transmute([MOV64_R0_0, EXIT]) };
    let opts = sys::bpf_prog_load_opts {
        sz: std::mem::size_of::<sys::bpf_prog_load_opts>() as _,
        expected_attach_type: attach_type,
        attach_btf_id,
        ..Default::default()
    };
    let mut opts = opts;
    // SAFETY: valid instructions, a NUL-terminated license and a sized opts struct.
    let fd = unsafe {
        sys::bpf_prog_load(
            prog_type,
            std::ptr::null(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            &mut opts,
        )
    };
    if fd >= 0 {
        // SAFETY: closing the fd just returned to us.
        unsafe { libc::close(fd) };
        return Ok(());
    }
    let err = std::io::Error::from_raw_os_error(-fd);
    Err(match err.raw_os_error() {
        Some(libc::EPERM) if !crate::core::bpf::privileged() => {
            "needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) to find out".to_string()
        }
        Some(libc::EPERM) => {
            "the kernel refuses this program type (EPERM: lockdown or a local policy)".to_string()
        }
        _ => format!("the kernel refused a minimal program of this type: {err}"),
    })
}

pub fn tracefs_mounted() -> bool {
    Path::new(TRACEFS).join("events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
}

/// Classic tracepoints need tracefs (libbpf reads each tracepoint's id from it), and so do
/// return probes with room for every call in progress (core::kretprobe). A fresh machine may
/// not have it mounted, so mount it (and say so).
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
    eprintln!(
        "netbpf: mounted tracefs at {TRACEFS} (classic tracepoints and return probes need it)"
    );
    Ok(())
}

/// Whether kernel BTF has a type (function, struct, tracepoint typedef `btf_trace_NAME`) of this
/// name: for a plan's `check` on a function or tracepoint only some kernels have.
pub fn btf_has(name: &str) -> Result<(), String> {
    match crate::core::btf::with_vmlinux(|btf| {
        btf.type_by_name::<libbpf_rs::btf::BtfType>(name).is_some()
    })
    .map_err(|e| format!("kernel BTF could not be read: {e}"))?
    {
        true => Ok(()),
        false => Err(format!("'{name}' is not in kernel BTF")),
    }
}

/// Whether kernel BTF's enum `enum_name` has the value `value`.
pub fn btf_enum_has(enum_name: &str, value: &str) -> Result<bool, String> {
    use libbpf_rs::btf::types;
    crate::core::btf::with_vmlinux(|btf| {
        btf.type_by_name::<types::Enum>(enum_name)
            .is_some_and(|e| e.iter().any(|v| v.name.is_some_and(|n| n == value)))
    })
    .map_err(|e| format!("kernel BTF could not be read: {e}"))
}

/// Ok when the kernel's BPF has helper `bpf_NAME` (`BPF_FUNC_NAME` in `enum bpf_func_id`): a
/// program calling a helper the kernel lacks fails to load ("invalid func unknown#N").
pub fn bpf_helper(name: &str) -> Result<(), String> {
    match btf_enum_has("bpf_func_id", &format!("BPF_FUNC_{name}"))? {
        true => Ok(()),
        false => Err(format!("the kernel has no BPF helper bpf_{name}")),
    }
}

/// fexit programs that read the traced function's return value or arguments by index
/// (bpf_get_func_ret/arg, 5.17).
pub fn func_ret_helpers() -> Result<(), String> {
    bpf_helper("get_func_ret")?;
    bpf_helper("get_func_arg")
}

/// bpf_loop (5.17).
pub fn loop_helper() -> Result<(), String> {
    bpf_helper("loop")
}

/// Socket storage (bpf_sk_storage_get) from tracing programs (tp_btf, fentry): 5.11.
pub fn sk_storage_from_tracing() -> Result<(), String> {
    btf_has("bpf_sk_storage_tracing_allowed")
        .map_err(|_| "the kernel has no socket storage for tracing programs (5.11+)".to_string())
}

/// BTF for kernel modules (CONFIG_DEBUG_INFO_BTF_MODULES, 5.11+): fentry/fexit and tp_btf on a
/// module's functions and tracepoints need it.
pub fn module_btf() -> Result<(), String> {
    let any_module = std::fs::read_dir("/sys/kernel/btf")
        .map(|d| d.flatten().any(|e| e.file_name() != "vmlinux"))
        .unwrap_or(false);
    if any_module || btf_has("btf_module_notify").is_ok() {
        Ok(())
    } else {
        Err("the kernel has no module BTF (CONFIG_DEBUG_INFO_BTF_MODULES, 5.11+)".into())
    }
}

/// How many arguments a tracepoint hands a tp_btf program on this kernel (from the BTF typedef
/// `btf_trace_NAME`, less its leading context pointer), or None when it has no such tracepoint.
/// Tracepoints gain arguments over kernel versions; a program must not read past the last one.
pub fn tp_btf_args(name: &str) -> Option<usize> {
    use libbpf_rs::btf::{types, BtfType, ReferencesType};
    crate::core::btf::with_vmlinux(|btf| {
        let typedef = btf.type_by_name::<types::Typedef>(&format!("btf_trace_{name}"))?;
        let ptr: BtfType = typedef.referenced_type();
        let proto =
            types::FuncProto::try_from(types::Ptr::try_from(ptr).ok()?.referenced_type()).ok()?;
        Some(proto.len().saturating_sub(1))
    })
    .ok()
    .flatten()
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

/// The running kernel's release string ("6.18.44-fc"), empty when unreadable.
pub fn osrelease() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The (major, minor) version of a release string such as "6.18.44-fc" or "5.10.0-46-amd64".
pub fn release_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The running kernel's (major, minor) version, from uname.
pub fn kernel_version() -> Option<(u32, u32)> {
    release_version(&osrelease())
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

/// The plans of a tool whose programs are BTF tracepoints: as tp_btf, else the same programs as
/// raw_tp. `attach` lists the tracepoints; `check` is both plans' further requirement.
#[macro_export]
macro_rules! tp_btf_or_raw_tp_plans {
    ($attach:literal, $check:expr) => {
        &[
            $crate::core::caps::Plan {
                name: "tp_btf",
                needs: &[$crate::core::caps::Hook::TpBtf],
                attach: $attach,
                check: $check,
            },
            $crate::core::caps::Plan {
                name: "raw_tp",
                needs: &[$crate::core::caps::Hook::RawTp],
                attach: concat!("raw_tp ", $attach),
                check: $check,
            },
        ]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(release_version("6.18.44-fc-v782"), Some((6, 18)));
        assert_eq!(release_version("5.10.0-46-amd64"), Some((5, 10)));
        assert_eq!(release_version("6.2.16-300.fc38"), Some((6, 2)));
        assert_eq!(release_version("junk"), None);
    }

    static ONE: &[Hook] = &[Hook::TpBtf];

    #[test]
    fn this_kernel_allows_tp_btf_and_a_probe_is_remembered() {
        let caps = Caps::get();
        assert_eq!(caps.has(Hook::TpBtf), Ok(()));
        assert_eq!(caps.has(Hook::RawTp), Ok(()));
        assert_eq!(caps.has(Hook::TpBtf), Ok(()));
    }

    #[test]
    fn helpers_and_features_of_this_kernel() {
        assert_eq!(bpf_helper("ringbuf_output"), Ok(()));
        assert!(bpf_helper("no_such_helper")
            .unwrap_err()
            .contains("bpf_no_such_helper"));
        assert_eq!(func_ret_helpers(), Ok(()));
        assert_eq!(loop_helper(), Ok(()));
        assert_eq!(sk_storage_from_tracing(), Ok(()));
    }

    #[test]
    fn the_last_plan_defers_its_load_probes() {
        let plans = [Plan::new("only", ONE, "x")];
        let p = Caps::get().select("unit-tool", &plans).unwrap();
        assert_eq!(p.name, "only");
        assert_eq!(
            DEFERRED
                .lock()
                .unwrap()
                .iter()
                .find(|(t, _)| t == "unit-tool")
                .unwrap()
                .1,
            [Hook::TpBtf]
        );
        assert!(
            explain_load_failure("unit-tool").is_none(),
            "tp_btf works here"
        );
    }
}
