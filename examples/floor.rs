//! The floor for bench/floor.sh: what a tool's hooks cost with programs that do nothing.
//!
//!   floor hooks PID    one line per BPF link process PID holds: "tp_btf NAME", "raw_tp NAME",
//!                      "tracepoint NAME", or "other DESCRIPTION" for a link the floor cannot
//!                      copy (uprobes, kprobes, ...). NAME is the tracepoint's name without its
//!                      category (the kernel's link info does not give it).
//!   floor load OBJ     loads the BPF object file OBJ, attaches every program in it by its section
//!                      name, prints "floor: attached N programs" on stderr and waits until it is
//!                      killed (the kernel detaches the links when the process exits).
//!
//! The loader does no work while the benchmark runs, so a debug build of it measures the same.

use libbpf_rs::libbpf_sys;
use libbpf_rs::query::{LinkInfo, LinkTypeInfo, PerfEventType};
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::exit;

fn usage(msg: &str) -> ! {
    eprintln!("floor: {msg}\nusage: floor hooks PID | floor load OBJ");
    exit(2);
}

/// Link ids from the bpf_link fds of process `pid` (their fdinfo has a `link_id:` line).
fn link_ids(pid: u32) -> Vec<u32> {
    let dir = format!("/proc/{pid}/fdinfo");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| usage(&format!("{dir}: {e}")));
    let mut ids: Vec<u32> = entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("link_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The name of BTF type `type_id` in the kernel BTF object `obj_id` (vmlinux or a module's).
fn btf_type_name(obj_id: u32, type_id: u32) -> Option<String> {
    // SAFETY: libbpf calls on pointers it returned; every BTF loaded here is freed before return.
    unsafe {
        let vmlinux = libbpf_sys::btf__load_vmlinux_btf();
        if vmlinux.is_null() {
            return None;
        }
        let module = libbpf_sys::btf__load_from_kernel_by_id_split(obj_id, vmlinux);
        // The module's split BTF holds vmlinux's types too; vmlinux's own id loads it whole.
        let btf = if module.is_null() { vmlinux } else { module };
        let t = libbpf_sys::btf__type_by_id(btf, type_id);
        let name = if t.is_null() {
            None
        } else {
            let p = libbpf_sys::btf__name_by_offset(btf, (*t).name_off);
            (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
        };
        if !module.is_null() {
            libbpf_sys::btf__free(module);
        }
        libbpf_sys::btf__free(vmlinux);
        name
    }
}

/// The type of program `prog_id` (BPF_PROG_TYPE_*), if it still exists.
fn prog_type(prog_id: u32) -> Option<u32> {
    // SAFETY: plain syscall wrappers; the fd is owned here, `info` is as large as `len` says.
    unsafe {
        let fd = libbpf_sys::bpf_prog_get_fd_by_id(prog_id);
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut info: libbpf_sys::bpf_prog_info = std::mem::zeroed();
        let mut len = std::mem::size_of_val(&info) as u32;
        let ret = libbpf_sys::bpf_obj_get_info_by_fd(
            fd.as_raw_fd(),
            (&mut info as *mut libbpf_sys::bpf_prog_info).cast(),
            &mut len,
        );
        (ret == 0).then_some(info.type_)
    }
}

fn hook(info: &LinkInfo) -> String {
    match &info.info {
        // tp_btf programs (BPF_PROG_TYPE_TRACING) attach through raw tracepoint links too.
        LinkTypeInfo::RawTracepoint(r) => match prog_type(info.prog_id) {
            Some(libbpf_sys::BPF_PROG_TYPE_TRACING) => format!("tp_btf {}", r.name),
            _ => format!("raw_tp {}", r.name),
        },
        // tp_btf programs attach to the typedef the kernel declares per tracepoint.
        LinkTypeInfo::Tracing(t) => match btf_type_name(t.target_obj_id, t.target_btf_id) {
            Some(n) if n.starts_with("btf_trace_") => format!("tp_btf {}", &n[10..]),
            n => format!("other tracing link to {n:?} ({:?})", t.attach_type),
        },
        LinkTypeInfo::PerfEvent(p) => match &p.event_type {
            PerfEventType::Tracepoint {
                name: Some(name), ..
            } => format!("tracepoint {}", name.to_string_lossy()),
            other => format!("other perf event {other:?}"),
        },
        other => format!("other {other:?}"),
    }
}

fn hooks(pid: u32) {
    for id in link_ids(pid) {
        // SAFETY: a plain syscall wrapper; a non-negative result is a new fd we own.
        let fd = unsafe { libbpf_sys::bpf_link_get_fd_by_id(id) };
        if fd < 0 {
            continue; // detached since the fdinfo was read
        }
        // SAFETY: fd was just returned to us and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        match LinkInfo::from_fd(fd.as_fd()) {
            Ok(info) => println!("{}", hook(&info)),
            Err(e) => println!("other link {id}: {e}"),
        }
    }
}

fn load(path: &str) -> ! {
    let open = libbpf_rs::ObjectBuilder::default()
        .open_file(path)
        .unwrap_or_else(|e| usage(&format!("cannot open {path}: {e}")));
    let obj = open.load().unwrap_or_else(|e| {
        eprintln!("floor: cannot load {path}: {e}");
        exit(1)
    });
    let links: Vec<libbpf_rs::Link> = obj
        .progs_mut()
        .map(|p| {
            p.attach().unwrap_or_else(|e| {
                eprintln!("floor: cannot attach {}: {e}", p.name().to_string_lossy());
                exit(1)
            })
        })
        .collect();
    eprintln!("floor: attached {} programs", links.len());
    loop {
        std::thread::park();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["hooks", pid] => hooks(
            pid.parse()
                .unwrap_or_else(|_| usage("PID must be a number")),
        ),
        ["load", obj] => load(obj),
        _ => usage("expected 'hooks PID' or 'load OBJ'"),
    }
}
