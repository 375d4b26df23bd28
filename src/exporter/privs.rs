//! Dropping privileges once everything is attached.
//!
//! Capabilities and no_new_privs belong to a thread, and a new thread starts with its creator's.
//! So the drop runs while the process has a single thread (checked), before the HTTP server
//! starts its threads: every thread that ever parses a request is unprivileged. Started as
//! root (outside the unit, which runs as a dynamic user), it also leaves uid 0 for nobody.

use std::io;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

const CAP_SETGID: u32 = 6;
const CAP_SETUID: u32 = 7;
const CAP_SETPCAP: u32 = 8;
const CAP_BPF: u32 = 39;
const LAST_CAP: u32 = 63;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const VERSION_3: u32 = 0x2008_0522;

/// (effective, permitted) of the calling thread.
fn capget() -> io::Result<(u64, u64)> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header and room for its two data words.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// Sets the calling thread's effective and permitted sets; the inheritable set is emptied.
fn capset(effective: u64, permitted: u64) -> io::Result<()> {
    let header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let data = [
        Data {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: 0,
        },
        Data {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: capset with a v3 header and its two data words.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Waits (briefly) until this process has one thread: helper threads that were joined may still
/// be listed for a moment while the kernel releases them.
fn single_threaded() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let n = threads();
        if n == 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "dropping privileges needs a single thread, and this process has {n}: the other \
                 threads would keep their capabilities"
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What is left after [`drop_privileges`].
#[derive(Debug)]
pub struct Dropped {
    /// CAP_BPF was kept: this kernel refuses map reads without it.
    pub kept_bpf: bool,
    /// The user switched to, when started as root.
    pub user: Option<String>,
}

/// The overflow ("nobody") user and group: owns nothing, so a compromised exporter can touch no
/// file root or a service user owns.
const NOBODY: libc::uid_t = 65534;

/// From root to [`NOBODY`], keeping the permitted capabilities (dropped right after, except what
/// reading maps needs) and raising them back into the effective set.
fn leave_root() -> anyhow::Result<String> {
    // SAFETY: prctl/setgroups/setresgid/setresuid with integer arguments and no pointers read.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0
            || libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(NOBODY, NOBODY, NOBODY) != 0
            || libc::setresuid(NOBODY, NOBODY, NOBODY) != 0
        {
            return Err(anyhow!(
                "leaving root for uid {NOBODY}: {}",
                io::Error::last_os_error()
            ));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    let (_, permitted) = capget().context("capget")?;
    capset(permitted, permitted).context("capset after leaving root")?;
    Ok(format!("uid {NOBODY} (nobody)"))
}

/// Drops every capability (from the effective, permitted, inheritable, ambient and, when
/// allowed, bounding sets) and sets no_new_privs. CAP_BPF is kept only where the kernel needs it
/// to read maps through fds already open (kernels before 5.19 with unprivileged BPF disabled):
/// that is probed on a map made for the purpose, with CAP_BPF out of the effective set.
pub fn drop_privileges() -> anyhow::Result<Dropped> {
    single_threaded()?;
    let probe = libbpf_rs::MapHandle::create(
        libbpf_rs::MapType::Array,
        Some("netbpf_probe"),
        4,
        8,
        1,
        &libbpf_rs::libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        },
    )
    .context("dropping privileges: creating the probe map")?;
    // SAFETY: getuid/geteuid cannot fail.
    let root = unsafe { libc::getuid() == 0 || libc::geteuid() == 0 };
    let bit = |c: u32| 1u64 << c;
    // Root without CAP_SETUID/CAP_SETGID (a container given only CAP_BPF and CAP_PERFMON, as
    // contrib/kubernetes does) cannot change user: it keeps uid 0 and loses every capability
    // below, which is what the switch protects against.
    let (effective, _) = capget().context("capget")?;
    let can_switch = effective & bit(CAP_SETUID) != 0 && effective & bit(CAP_SETGID) != 0;
    let user = if root && can_switch {
        Some(leave_root()?)
    } else {
        None
    };
    let (effective, permitted) = capget().context("capget")?;
    let setpcap = effective & bit(CAP_SETPCAP) != 0;

    // Effective: at most CAP_SETPCAP (to trim the bounding set below); nothing that reads maps.
    capset(effective & bit(CAP_SETPCAP), permitted).context("capset")?;
    let kept_bpf =
        match libbpf_rs::MapCore::lookup(&probe, &0u32.to_ne_bytes(), libbpf_rs::MapFlags::ANY) {
            Ok(_) => false,
            Err(e) if e.kind() == libbpf_rs::ErrorKind::PermissionDenied => {
                if permitted & bit(CAP_BPF) == 0 {
                    bail!(
                    "this kernel needs CAP_BPF to read BPF maps, and the exporter does not have it"
                );
                }
                true
            }
            Err(e) => {
                return Err(anyhow!(
                    "dropping privileges: probing a map read failed: {e}"
                ))
            }
        };
    let keep = if kept_bpf { bit(CAP_BPF) } else { 0 };
    drop(probe);

    if setpcap {
        for cap in 0..=LAST_CAP {
            if keep & bit(cap) == 0 {
                // SAFETY: prctl with integer arguments. EINVAL: a cap this kernel does not know.
                let rc =
                    unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
                let err = io::Error::last_os_error();
                if rc != 0 && err.raw_os_error() != Some(libc::EINVAL) {
                    return Err(anyhow!(
                        "dropping capability {cap} from the bounding set: {err}"
                    ));
                }
            }
        }
    }
    // SAFETY: prctl with integer arguments. EINVAL: a kernel without ambient capabilities.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(anyhow!(
            "clearing the ambient capabilities: {}",
            io::Error::last_os_error()
        ));
    }
    capset(keep, keep).context("dropping capabilities: capset")?;
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(anyhow!(
            "setting no_new_privs failed: {}",
            io::Error::last_os_error()
        ));
    }

    // Check what the kernel says, not what was asked.
    let status = std::fs::read_to_string("/proc/thread-self/status")?;
    let field = |name: &str| -> Option<u64> {
        let v = status.lines().find_map(|l| l.strip_prefix(name))?.trim();
        u64::from_str_radix(v, 16).ok()
    };
    let (eff, prm, amb) = (field("CapEff:"), field("CapPrm:"), field("CapAmb:"));
    if eff != Some(keep) || prm != Some(keep) || amb.is_some_and(|a| a != 0) {
        bail!("capabilities still held after dropping them: CapEff {eff:x?}, CapPrm {prm:x?}, CapAmb {amb:x?}");
    }
    if !status.lines().any(|l| l == "NoNewPrivs:\t1") {
        bail!("no_new_privs is not set after setting it");
    }
    if threads() != 1 {
        bail!("a thread appeared while privileges were dropped");
    }
    Ok(Dropped { kept_bpf, user })
}
