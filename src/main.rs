//! netbpf: eBPF network observability tools. `netbpf TOOL [options]`, or a symlink named like the
//! tool (`tcplife -p 42`).

use netbpf::{core, tools, usage, USAGE};

use std::ffi::OsString;
use std::path::Path;

fn main() {
    // -d counts from the process's start, not from the end of loading (core::run::mark_start).
    core::run::mark_start();
    // Before any allocation of note: how the heap serves libbpf's big arrays (core::mem).
    core::mem::init();
    // Like any Unix filter, end quietly when the reader of stdout goes away (`netbpf list | head`)
    // instead of failing writes; the kernel detaches our BPF programs when we exit.
    // SAFETY: setting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Before anything is loaded: a Ctrl-C during a slow load ends the run cleanly once loading
    // returns, instead of killing the process.
    core::run::install_signal_handlers();
    // A closed stdin/stdout/stderr would be taken by the next file opened (a BPF map, the
    // exporter's socket) and written into: hold those slots.
    core::output::hold_standard_fds();
    let args: Vec<OsString> = std::env::args_os().collect();
    let result = dispatch(args);
    // A failed write to stdout is the error that matters, whatever the tool made of it.
    let result = match core::output::stdout_error() {
        Some(e) => Err(e),
        None => result,
    };
    std::process::exit(match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("netbpf: error: {e:#}");
            core::error::exit_code(&e)
        }
    });
}

/// print! that fails the run (through [`core::output::stdout_error`]) when stdout does.
macro_rules! out {
    ($($arg:tt)*) => {
        core::output::print(&format!($($arg)*))
    };
}

/// println! through [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {
        core::output::print(&format!("{}\n", format_args!($($arg)*)))
    };
}

fn dispatch(mut args: Vec<OsString>) -> anyhow::Result<()> {
    let argv0 = args.first().map(|a| {
        Path::new(a)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    if let Some(tool) = argv0.as_deref().and_then(tools::find) {
        core::output::require_stdout()?;
        return (tool.run)(tool, args);
    }
    // Run through a link whose name is no tool (`qdisc-nosuch -d 1`): that name is the unknown
    // tool, unless what follows names one (a renamed binary).
    if let Some(name) = argv0.as_deref().filter(|n| !n.starts_with("netbpf")) {
        let next = args.get(1).and_then(|a| a.to_str());
        if next.and_then(tools::find).is_none() && next != Some("exporter") {
            return Err(usage!(
                "unknown tool '{name}' (run as '{name}', a name that is not a tool's; netbpf list \
                 shows the tools)"
            ));
        }
    }
    if args.len() < 2 {
        eprint!("{USAGE}");
        return Err(usage!("no tool given"));
    }
    let cmd = args[1].to_string_lossy().into_owned();
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            out!("{USAGE}\nTools:\n");
            for t in tools::TOOLS {
                outln!("  {:<16} {}", t.name, t.about);
            }
            Ok(())
        }
        "-V" | "--version" => {
            outln!("netbpf {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "exporter" => {
            args.remove(0);
            netbpf::exporter::run(args)
        }
        "list" => {
            let mut verbose = false;
            let mut btf = None;
            let mut rest = args[2..].iter();
            while let Some(a) = rest.next() {
                match a.to_str() {
                    Some("-v" | "--verbose") => verbose = true,
                    Some("--btf") => {
                        btf = Some(rest.next().ok_or_else(|| {
                            usage!("list: --btf needs a file (a kernel's vmlinux or BTF)")
                        })?)
                    }
                    _ => {
                        return Err(usage!(
                            "list: unexpected argument '{}' (netbpf list [--verbose] [--btf FILE])",
                            a.to_string_lossy()
                        ))
                    }
                }
            }
            match btf {
                Some(file) => list_relocations(Path::new(file), verbose),
                None => list(verbose),
            }
        }
        "netns" => netns(&args[2..]),
        "--install-links" => {
            let dir = args
                .get(2)
                .ok_or_else(|| usage!("--install-links needs a directory"))?;
            install_links(Path::new(dir))
        }
        name => match tools::find(name) {
            Some(tool) => {
                core::output::require_stdout()?;
                args.remove(0);
                (tool.run)(tool, args)
            }
            None => Err(usage!(
                "unknown tool '{name}' (netbpf list shows the tools)"
            )),
        },
    }
}

fn list(verbose: bool) -> anyhow::Result<()> {
    core::bpf::init_logging();
    if !core::bpf::privileged() {
        // Without privilege every probe load fails with EPERM: that says nothing about the kernel.
        eprintln!(
            "netbpf list: not root: what this kernel allows cannot be probed without CAP_BPF and \
             CAP_PERFMON (or CAP_SYS_ADMIN); run it as root"
        );
    }
    let privileged = core::bpf::privileged();
    outln!("{:<16} {:<12} {:<11} DESCRIPTION", "TOOL", "STATUS", "PLAN");
    for t in tools::TOOLS {
        if !privileged {
            outln!("{:<16} {:<12} {:<11} {}", t.name, "unknown", "-", t.about);
            continue;
        }
        let tools::Verdict {
            chosen,
            plans: verdicts,
        } = tools::verdict(t);
        match chosen {
            Some(i) => outln!(
                "{:<16} {:<12} {:<11} {}",
                t.name,
                "ok",
                t.plans[i].name,
                t.about
            ),
            None => {
                let why: Vec<String> = t
                    .plans
                    .iter()
                    .zip(&verdicts)
                    // One line per plan here; `--verbose` has the whole of libbpf's log.
                    .filter_map(|(p, v)| {
                        v.as_ref()
                            .err()
                            .map(|e| format!("{}: {}", p.name, e.lines().next().unwrap_or("")))
                    })
                    .collect();
                outln!(
                    "{:<16} {:<12} {:<11} {} ({})",
                    t.name,
                    "unsupported",
                    "-",
                    t.about,
                    why.join("; ")
                )
            }
        }
        if verbose {
            for (i, (p, v)) in t.plans.iter().zip(&verdicts).enumerate() {
                let verdict = match v {
                    Ok(()) if chosen == Some(i) => "chosen".to_string(),
                    Ok(()) => "usable".to_string(),
                    // libbpf's log, if any, under the verdict: one table row per plan.
                    Err(why) => format!("skipped: {}", why.replace('\n', "\n                 ")),
                };
                outln!(
                    "    {:<12} {verdict}\n    {:<12} hooks: {}",
                    p.name,
                    "",
                    p.attach
                );
            }
        }
    }
    Ok(())
}

/// `netbpf list --btf FILE`: every plan of every tool relocated against another kernel's BTF
/// (CO-RE only: no load, no verifier), one line per plan: "ok", or each access that kernel lacks
/// and nothing in the program guards. What a tool would do there otherwise (helpers, hook types,
/// the verifier) needs that kernel: the VM suite. `--verbose` adds the guarded ones.
fn list_relocations(btf: &Path, verbose: bool) -> anyhow::Result<()> {
    core::bpf::init_logging();
    core::bpf::relocate_against(btf)?;
    let mut failed = false;
    for t in tools::TOOLS {
        for p in t.plans {
            let outcome = (t.verify)(t.name, p);
            let relocations = core::bpf::relocations();
            let unguarded: Vec<_> = relocations.iter().filter(|r| !r.guarded).collect();
            if let Err(why) = &outcome {
                failed = true;
                outln!("{} {}: error: {}", t.name, p.name, why.replace('\n', " "));
            } else if unguarded.is_empty() {
                outln!("{} {}: ok", t.name, p.name);
            }
            // An access made twice (a loop unrolled, two instructions) is one line.
            let mut shown = std::collections::HashSet::new();
            for r in relocations.iter().filter(|r| verbose || !r.guarded) {
                let guard = if r.guarded { " (guarded)" } else { "" };
                let line = format!(
                    "{} {}: {}: {} {}{guard}",
                    t.name, p.name, r.prog, r.kind, r.spec
                );
                if shown.insert(line.clone()) {
                    outln!("{line}");
                }
            }
        }
    }
    if failed {
        anyhow::bail!(
            "some objects could not be relocated against {}",
            btf.display()
        );
    }
    Ok(())
}

/// `netbpf netns`: the id (cookie, or inode before 5.12: core::netns::IdKind) of each network
/// namespace in use (what `--netns` takes as a number), or of the namespaces named by the paths
/// given.
fn netns(paths: &[OsString]) -> anyhow::Result<()> {
    if !paths.is_empty() {
        for p in paths {
            let p = p.to_string_lossy();
            if p.starts_with('-') {
                return Err(usage!(
                    "netns: unexpected option '{p}' (netbpf netns [PATH...])"
                ));
            }
            let id = core::netns::id_of_path(&p).map_err(|e| usage!("netns: {e}"))?;
            outln!("{id:<10} {p}");
        }
        return Ok(());
    }
    let by_inode = core::netns::id_kind() == core::netns::IdKind::Inode;
    if !by_inode && !core::bpf::privileged() {
        return Err(anyhow::anyhow!(
            "netbpf netns needs root: reading a namespace's cookie means entering it"
        ));
    }
    let mut all = core::netns::reachable();
    all.sort_by_key(|r| r.id);
    if by_inode {
        eprintln!(
            "netbpf: this kernel has no usable netns cookie (before 5.12): namespaces are named \
             by inode"
        );
    }
    let head = if by_inode { "ID" } else { "COOKIE" };
    outln!("{head:<10} {:<12} {:<28} PROCESSES", "INODE", "PATH");
    for r in all {
        let cookie = r.id.map_or("?".to_string(), |c| c.to_string());
        let first = r.pids.first().map(|&p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            format!("{p} ({})", comm.trim())
        });
        let procs = match (first, r.pids.len()) {
            (None, _) => "-".to_string(),
            (Some(f), 1) => f,
            (Some(f), n) => format!("{f} and {} more", n - 1),
        };
        outln!("{cookie:<10} {:<12} {:<28} {procs}", r.inode, r.path);
    }
    Ok(())
}

/// Symlinks each tool name in `dir` to this binary. A symlink that points to a netbpf binary
/// already is replaced; anything else of that name (libbpf-tools' tcplife in /usr/sbin, say) is
/// left alone, with a warning, and the exit code is 1.
fn install_links(dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let mut skipped = 0;
    for t in tools::TOOLS {
        for name in std::iter::once(&t.name).chain(t.aliases) {
            let link = dir.join(name);
            if link.symlink_metadata().is_ok() {
                let ours = std::fs::read_link(&link).ok().is_some_and(|target| {
                    let target = dir.join(target);
                    target == exe
                        || target.file_name().is_some_and(|n| n == "netbpf")
                        || std::fs::canonicalize(&target).ok() == std::fs::canonicalize(&exe).ok()
                });
                if !ours {
                    eprintln!(
                        "netbpf: {} exists and is not a link to netbpf: left alone",
                        link.display()
                    );
                    skipped += 1;
                    continue;
                }
                std::fs::remove_file(&link)?;
            }
            std::os::unix::fs::symlink(&exe, &link)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", link.display()))?;
            outln!("{} -> {}", link.display(), exe.display());
        }
    }
    if skipped > 0 {
        return Err(anyhow::anyhow!(
            "--install-links: {skipped} name(s) in {} are taken by other files (not replaced)",
            dir.display()
        ));
    }
    Ok(())
}
