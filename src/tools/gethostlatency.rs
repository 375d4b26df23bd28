//! gethostlatency: latency of host name lookups through the C library (getaddrinfo,
//! gethostbyname, gethostbyname2 and their _r variants; gethostbyaddr and gethostbyaddr_r, the
//! address as HOST), one line per call.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;
use libbpf_rs::{ErrorKind, UprobeOpts};

use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, PidFilter};
use crate::core::error::Unsupported;
use crate::core::output::{comm_str, Column, Format, Value};
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::usage;

crate::skel!("gethostlatency");

unsafe impl Pod for types::gethostlatency_event {}

pub static TOOL: Tool = Tool {
    name: "gethostlatency",
    aliases: &[],
    about: "Latency of host name lookups (getaddrinfo, gethostbyname*, gethostbyaddr*) in the C library",
    plans: &[Plan::new("uprobe", &[Hook::Uprobe], "uprobe+uretprobe libc:getaddrinfo,gethostbyname{,2}{,_r},gethostbyaddr{,_r}")],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<GethostlatencySkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 10,
        load: export::load,
    }),
};

/// The traced functions; the index is enum ghl_func in gethostlatency.h.
const FUNCS: [&str; 7] = [
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname2",
    "gethostbyname_r",
    "gethostbyname2_r",
    "gethostbyaddr",
    "gethostbyaddr_r",
];

const EXAMPLES: &str = "\
Examples:
  gethostlatency                  # every lookup by any process using the system C library
  gethostlatency -p 181           # only PID 181 (its own C library, also inside a container)
  gethostlatency -l /opt/x/libc.so.6   # a C library somewhere else
  gethostlatency --json           # with the function called and exact nanoseconds

LATms runs from the call to its return, in milliseconds; HOST is the name asked for, or for a
reverse lookup (gethostbyaddr) the address. The C
library is found in the dynamic loader's cache (/etc/ld.so.cache) or, with -p, in the process's
own mappings (through /proc/PID/root, so containers work). Statically linked programs, Go
programs and resolvers that do not call these functions (e.g. systemd-resolved clients over
D-Bus, or a program's own DNS code) are not seen.";

#[derive(Parser, Debug)]
#[command(name = "gethostlatency", about = "Show latency of host name lookups through the C library", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    pid: PidFilter,
    /// Path of the C library to probe (default: found by itself)
    #[arg(short = 'l', long = "libc", value_name = "LIBC")]
    libc: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// One lookup, as printed.
struct Row {
    time: String,
    e: types::gethostlatency_event,
    comm: String,
    host: String,
    cut: bool,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("TIME", "time", -9), |r| Value::Str(&r.time))
        .col(Column::new("PID", "pid", -7), |r| {
            Value::U64(r.e.pid.into())
        })
        .col(Column::json("tid"), |r| Value::U64(r.e.tid.into()))
        .col(Column::new("COMM", "comm", -16).truncated(), |r| {
            Value::Str(&r.comm)
        })
        .col(Column::new("LATms", "lat_ms", 10), |r| {
            Value::F64(r.e.lat_ns as f64 / 1e6, 2)
        })
        .col(Column::json("lat_ns"), |r| Value::U64(r.e.lat_ns))
        .col(Column::json("func"), |r| {
            Value::Str(FUNCS.get(r.e.func as usize).copied().unwrap_or("?"))
        })
        .col(Column::new("HOST", "host", 0), |r| Value::Str(&r.host))
        .col(Column::json("host_truncated"), |r| {
            Value::Json(if r.cut { "true" } else { "false" })
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let libc = match &o.libc {
        Some(p) => check_library(p).map_err(|why| usage!("-l: {}: {why}", p.display()))?,
        None => match o.pid.pid {
            Some(pid) => libc_of_process(pid).map_err(|e| usage!("-p {pid}: {e}"))?,
            None => system_libc().map_err(|why| Unsupported::new(tool.name, why))?,
        },
    };
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);

    let skel = s.load_unattached::<GethostlatencySkelBuilder>(|_, _| Ok(()))?;
    let (_links, missing) = attach(&skel, &libc, o.pid.pid)?;
    if !missing.is_empty() {
        eprintln!(
            "netbpf {}: {} has no {}: not traced",
            tool.name,
            libc.display(),
            missing.join(", ")
        );
    }

    let table = table().containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    out.header();
    announce(&format!("host name lookups in {}", libc.display()));
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::gethostlatency_event>(data) else {
            return;
        };
        let (raw, cut) = match looked_up_addr(&e) {
            Some(addr) => (addr.to_string(), false),
            None => (
                comm_str(&e.host),
                // The buffer holds GHL_HOST_LEN - 1 bytes: a name that fills it was probably cut.
                e.host.iter().take_while(|&&c| c != 0).count() >= e.host.len() - 1,
            ),
        };
        let host = match out.format() {
            Format::Json => raw,
            _ => table_host(&raw, cut),
        };
        let row = Row {
            time: clock.hms(e.ts_ns),
            comm: comm_str(&e.comm),
            host,
            cut,
            e,
        };
        table.row(out, &row);
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

/// The address a reverse lookup (gethostbyaddr*) asked for; None for a name lookup.
fn looked_up_addr(e: &types::gethostlatency_event) -> Option<std::net::IpAddr> {
    let b: Vec<u8> = e.host.iter().map(|&c| c as u8).collect();
    match e.addr_len {
        4 => Some(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).ok()?).into()),
        _ => None,
    }
}

/// The name as the table shows it: a traced process chooses it, so control characters and
/// escapes are shown as \xNN (they would reach the terminal otherwise), no name as "-", and a
/// name cut to the buffer with "...".
fn table_host(host: &str, cut: bool) -> String {
    let mut t = String::new();
    for c in host.chars() {
        if c.is_control() || c == '\\' || (c.is_whitespace() && c != ' ') {
            for b in c.to_string().bytes() {
                t.push_str(&format!("\\x{b:02x}"));
            }
        } else if c == ' ' {
            t.push_str("\\x20");
        } else {
            t.push(c);
        }
    }
    if t.is_empty() {
        t.push('-');
    }
    if cut {
        t.push_str("...");
    }
    t
}

/// A library given with -l: an ELF file, so the uprobes can find its functions.
fn check_library(path: &Path) -> Result<PathBuf, String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    match elf_type(path) {
        Some(ET_DYN | ET_EXEC) => Ok(path.to_path_buf()),
        Some(_) => Err("an ELF file, but not a shared library or executable".into()),
        None => Err("not an ELF file (give the C library, e.g. libc.so.6)".into()),
    }
}

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// The e_type of an ELF file, or None when it is not one.
fn elf_type(path: &Path) -> Option<u16> {
    use std::io::Read;
    let mut hdr = [0u8; 18];
    std::fs::File::open(path).ok()?.read_exact(&mut hdr).ok()?;
    if &hdr[..4] != b"\x7fELF" {
        return None;
    }
    Some(if hdr[5] == 2 {
        u16::from_be_bytes([hdr[16], hdr[17]])
    } else {
        u16::from_le_bytes([hdr[16], hdr[17]])
    })
}

/// Attaches the entry and return programs to every function `libc` has. Returns the links and
/// the functions it does not export (musl, for one, has no gethostbyname2_r).
fn attach(
    skel: &GethostlatencySkel,
    libc: &Path,
    pid: Option<u32>,
) -> anyhow::Result<(Vec<libbpf_rs::Link>, Vec<&'static str>)> {
    let pid = pid.map_or(-1, |p| p as i32);
    let mut links = Vec::new();
    let mut missing = Vec::new();
    // One entry program per function (in FUNCS order): it tells the function, as an attach
    // cookie would without 5.15's perf-event links.
    let p = &skel.progs;
    let enter = [
        &p.gethostlatency_enter_getaddrinfo,
        &p.gethostlatency_enter_gethostbyname,
        &p.gethostlatency_enter_gethostbyname2,
        &p.gethostlatency_enter_gethostbyname_r,
        &p.gethostlatency_enter_gethostbyname2_r,
        &p.gethostlatency_enter_gethostbyaddr,
        &p.gethostlatency_enter_gethostbyaddr_r,
    ];
    for (func, enter) in FUNCS.iter().zip(enter) {
        for (prog, retprobe) in [(enter, false), (&p.gethostlatency_return, true)] {
            let opts = UprobeOpts {
                func_name: Some(func.to_string()),
                retprobe,
                ..Default::default()
            };
            match crate::core::bpf::quiet(|| prog.attach_uprobe_with_opts(pid, libc, 0, opts)) {
                Ok(link) => links.push(link),
                Err(e) if e.kind() == ErrorKind::NotFound && !retprobe => {
                    missing.push(*func);
                    break;
                }
                Err(e) => return Err(uprobe_failed(func, libc, retprobe, e)),
            }
        }
    }
    if missing.len() == FUNCS.len() {
        return Err(usage!(
            "{} exports none of {}: is it a C library?",
            libc.display(),
            FUNCS.join(", ")
        ));
    }
    Ok((links, missing))
}

fn uprobe_failed(func: &str, libc: &Path, retprobe: bool, e: libbpf_rs::Error) -> anyhow::Error {
    let what = format!(
        "gethostlatency: attaching a {} to {func} in {} failed: {e}",
        if retprobe { "uretprobe" } else { "uprobe" },
        libc.display()
    );
    if e.kind() == ErrorKind::InvalidInput {
        anyhow::anyhow!(
            "{what}. The kernel refuses a uprobe at an address where another tracer already has \
             one with a different USDT semaphore (dmesg then says 'ref_ctr_offset mismatch'): \
             stop the other tracer (a bcc/bpftrace USDT probe on this library) and try again"
        )
    } else {
        crate::core::bpf::attach_failed("gethostlatency", &format!("uprobe {func}"), e)
    }
}

/// Whether a mapped file's name is a C library: glibc's libc.so.6 (or an old libc-2.x.so) or
/// musl's loader, which is its C library.
fn is_libc_name(name: &str) -> bool {
    name.starts_with("libc.so")
        || (name.starts_with("libc-") && name.ends_with(".so"))
        || name.starts_with("ld-musl-")
}

/// The C library a process has mapped, as a path from our mount namespace: through
/// /proc/PID/root (so a container's own library is found), or, when that path is not the mapped
/// file (a library bind-mounted in another mount namespace, or a process in a chroot whose maps
/// name paths outside ours), through /proc/PID/map_files, which opens exactly the mapped file.
fn libc_of_process(pid: u32) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("cannot read /proc/{pid}/maps: {e}"))?;
    let (range, path) = mapped_libc_range(&maps).ok_or_else(|| {
        "the process has no C library mapped (statically linked, or a Go program?); name the \
         binary that contains getaddrinfo with -l"
            .to_string()
    })?;
    if path.ends_with(" (deleted)") {
        return Err(format!(
            "its C library {path} was replaced on disk since it started (upgraded?): restart \
             the process, or give the old file with -l"
        ));
    }
    let via_root = PathBuf::from(format!("/proc/{pid}/root{path}"));
    let mapped = PathBuf::from(format!("/proc/{pid}/map_files/{range}"));
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (id(&via_root), id(&mapped)) {
        (Some(a), Some(b)) if a == b => Ok(via_root),
        (_, Some(_)) => Ok(mapped),
        (Some(_), None) => Ok(via_root),
        (None, None) => Err(format!(
            "its C library {path} cannot be opened from here (neither {} nor {})",
            via_root.display(),
            mapped.display()
        )),
    }
}

/// The first mapped C library in a /proc/PID/maps text.
fn mapped_libc(maps: &str) -> Option<&str> {
    mapped_libc_range(maps).map(|(_, path)| path)
}

/// The first mapped C library in a /proc/PID/maps text: its address range and path.
fn mapped_libc_range(maps: &str) -> Option<(&str, &str)> {
    maps.lines().find_map(|line| {
        // address perms offset dev inode path: the path is what follows the 5th field.
        let mut rest = line;
        for _ in 0..5 {
            rest = rest.trim_start();
            let end = rest.find(' ')?;
            rest = &rest[end..];
        }
        let path = rest.trim_start();
        let name = path.rsplit('/').next()?;
        let range = line.split(' ').next()?;
        (path.starts_with('/') && is_libc_name(name)).then_some((range, path))
    })
}

/// The system's C library: libc.so.6 from the dynamic loader's cache, for this machine's
/// architecture, else the one this program itself runs with.
fn system_libc() -> Result<PathBuf, String> {
    if let Ok(cache) = std::fs::read("/etc/ld.so.cache") {
        let machine = elf_machine(Path::new("/proc/self/exe"));
        for path in ld_cache_lookup(&cache, "libc.so.6") {
            let p = PathBuf::from(path);
            if p.is_file() && machine.is_some() && elf_machine(&p) == machine {
                return Ok(p);
            }
        }
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    match mapped_libc(&maps) {
        Some(p) if Path::new(p).is_file() => Ok(PathBuf::from(p)),
        _ => Err(
            "no C library found (not in /etc/ld.so.cache, not mapped by netbpf itself): \
                  give its path with -l"
                .into(),
        ),
    }
}

/// (EI_CLASS, e_machine) of an ELF file: what decides whether a library suits this machine.
fn elf_machine(path: &Path) -> Option<(u8, u16)> {
    use std::io::Read;
    let mut hdr = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut hdr).ok()?;
    if &hdr[..4] != b"\x7fELF" {
        return None;
    }
    let machine = if hdr[5] == 2 {
        u16::from_be_bytes([hdr[18], hdr[19]])
    } else {
        u16::from_le_bytes([hdr[18], hdr[19]])
    };
    Some((hdr[4], machine))
}

/// Paths the loader's cache (glibc's "glibc-ld.so.cache1.1" format) lists for `soname`, in cache
/// order. The cache may list one per architecture (e.g. a 32-bit libc too).
fn ld_cache_lookup(cache: &[u8], soname: &str) -> Vec<String> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    const HEADER: usize = 48; // magic, version, nlibs, len_strings, flags, pad, ext, unused[3]
    const ENTRY: usize = 24; // flags, key, value, osversion, hwcap
    let u32_at = |off: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            cache.get(off..off + 4)?.try_into().ok()?,
        ))
    };
    // Strings are offsets from the start of the file, NUL-terminated.
    let str_at = |off: usize| -> Option<&str> {
        let s = cache.get(off..)?;
        std::str::from_utf8(&s[..s.iter().position(|&b| b == 0)?]).ok()
    };
    let mut found = Vec::new();
    if !cache.starts_with(MAGIC) {
        return found;
    }
    let Some(nlibs) = u32_at(MAGIC.len()) else {
        return found;
    };
    for i in 0..nlibs as usize {
        let at = HEADER + i * ENTRY;
        let (Some(key), Some(value)) = (u32_at(at + 4), u32_at(at + 8)) else {
            break;
        };
        if str_at(key as usize) == Some(soname) {
            if let Some(path) = str_at(value as usize) {
                found.push(path.to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_in_the_table() {
        assert_eq!(table_host("localhost", false), "localhost");
        assert_eq!(table_host("", false), "-");
        assert_eq!(table_host("a\tb\x1b[2J", false), "a\\x09b\\x1b[2J");
        assert_eq!(table_host("a b\\", true), "a\\x20b\\x5c...");
        assert_eq!(table_host("bücher.example", false), "bücher.example");
    }

    #[test]
    fn libraries() {
        assert!(check_library(Path::new("/proc/self/exe")).is_ok());
        assert_eq!(
            check_library(Path::new("/nonexistent")).unwrap_err(),
            "no such file"
        );
        assert_eq!(
            check_library(Path::new("/etc")).unwrap_err(),
            "not a regular file"
        );
        // A regular file that is not ELF, made here: a minimal root has no /etc/hosts.
        let text = std::env::temp_dir().join(format!("netbpf-not-elf-{}", std::process::id()));
        std::fs::write(&text, "127.0.0.1 localhost\n").unwrap();
        let verdict = check_library(&text);
        std::fs::remove_file(&text).unwrap();
        assert!(verdict.unwrap_err().starts_with("not an ELF file"));
    }

    #[test]
    fn libc_names() {
        assert!(is_libc_name("libc.so.6"));
        assert!(is_libc_name("libc-2.31.so"));
        assert!(is_libc_name("ld-musl-x86_64.so.1"));
        assert!(!is_libc_name("libcrypto.so.3"));
        assert!(!is_libc_name("libc++.so.1"));
    }

    #[test]
    fn maps_parsing() {
        let maps = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fe:00 12 /usr/bin/my prog
7f0000000000-7f0000001000 r--p 00000000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
";
        assert_eq!(
            mapped_libc(maps),
            Some("/usr/lib/x86_64-linux-gnu/libc.so.6")
        );
        assert_eq!(
            mapped_libc("7f00-7f01 rw-p 00000000 00:00 0 [heap]\n"),
            None
        );
    }

    #[test]
    fn cache_parsing() {
        // A cache with two entries: a 32-bit and a 64-bit libc.so.6.
        let mut c = b"glibc-ld.so.cache1.1".to_vec();
        c.extend(2u32.to_ne_bytes()); // nlibs
        c.resize(48, 0);
        let strings = 48 + 2 * 24;
        let key = strings as u32;
        let v32 = key + "libc.so.6\0".len() as u32;
        let v64 = v32 + "/lib32/lc.so\0".len() as u32;
        for value in [v32, v64] {
            c.extend(0x0303i32.to_ne_bytes());
            c.extend(key.to_ne_bytes());
            c.extend(value.to_ne_bytes());
            c.extend(0u32.to_ne_bytes());
            c.extend(0u64.to_ne_bytes());
        }
        c.extend(b"libc.so.6\0/lib32/lc.so\0/lib64/libc.so.6\0");
        assert_eq!(
            ld_cache_lookup(&c, "libc.so.6"),
            vec!["/lib32/lc.so", "/lib64/libc.so.6"]
        );
        assert!(ld_cache_lookup(&c, "libm.so.6").is_empty());
        assert!(ld_cache_lookup(b"garbage", "libc.so.6").is_empty());
    }

    #[test]
    fn finds_the_system_libc() {
        let libc = system_libc().unwrap();
        assert_eq!(elf_machine(&libc), elf_machine(Path::new("/proc/self/exe")));
        let own = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(mapped_libc(&own).is_some());
    }

    #[test]
    fn libc_of_this_process() {
        let p = libc_of_process(std::process::id()).unwrap();
        let pid = std::process::id();
        assert!(
            p.starts_with(format!("/proc/{pid}/root/"))
                || p.starts_with(format!("/proc/{pid}/map_files/")),
            "{}",
            p.display()
        );
        assert!(p.is_file());
    }
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: lookup latency histograms built in the kernel per resolver function
/// (gethostlatency.bpf.c in exporter mode, maps of common/export.bpf.h), in the system C library.
pub mod export {
    use super::*;
    crate::export_object!(OpenGethostlatencySkel, GethostlatencySkel);

    use crate::core::export::{
        self, Buckets, Ctx, ExportMaps, ExportObject as _, Family, Loaded, Scale, Source, Unit,
    };

    /// 16 µs to 2^26 µs (67 s: resolver timeouts and retries).
    const LATENCIES: Buckets = Buckets {
        scale: Scale::Micros,
        first: 4,
        last: 26,
    };

    struct Lookups {
        maps: ExportMaps,
        /// The functions the library has (cookies), published at 0 before their first call.
        present: Vec<u32>,
    }

    impl Source for Lookups {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let h = self.maps.hists()?;
            let func = |f: u32| {
                let name = FUNCS.get(f as usize).copied().unwrap_or("unknown");
                vec![("function", name.to_string())]
            };
            Ok(vec![Family::Histogram {
                name: "netbpf_dns_lookup_latency",
                help: "Host name lookups through the C library, from call to return",
                unit: Unit::Seconds,
                buckets: LATENCIES,
                series: self.maps.histogram(&h, 0, &self.present, func),
            }])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.maps.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let libc = system_libc().map_err(|why| Unsupported::new(TOOL.name, why))?;
        let (skel, plan) = export::load_unattached::<GethostlatencySkelBuilder>(
            ctx,
            TOOL.name,
            TOOL.plans,
            |open, _| open.export_setup(ctx),
        )?;
        let (links, missing) = attach(&skel, &libc, None)?;
        let present = (0..FUNCS.len() as u32)
            .filter(|&f| !missing.contains(&FUNCS[f as usize]))
            .collect();
        let maps = skel.export_maps(ctx)?;
        Ok(Loaded {
            source: Box::new(Lookups { maps, present }),
            plan: plan.name.to_string(),
            keepalive: Box::new((skel, links)),
        })
    }
}
