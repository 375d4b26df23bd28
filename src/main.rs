//! netbpf: eBPF network observability tools. `netbpf TOOL [options]`, or a symlink named like the
//! tool (`tcplife -p 42`).

use netbpf::{core, tools, usage};

use std::ffi::OsString;
use std::path::Path;

use netbpf::core::caps::Caps;

const USAGE: &str = "\
netbpf: eBPF network observability tools

Usage: netbpf TOOL [OPTIONS]       run a tool (netbpf TOOL --help for its options)
       netbpf list [--verbose]     every tool, and whether and how it runs on this kernel
       netbpf netns [PATH...]      network namespace cookies (for --netns), all or of PATH
       netbpf exporter [OPTIONS]   the tools' aggregations as Prometheus metrics
       netbpf --install-links DIR  symlink every tool name to this binary in DIR (existing
                                   files of those names are left alone)
       netbpf --version

A symlink named like a tool runs that tool: ln -s $(command -v netbpf) /usr/local/bin/tcplife
Set NETBPF_DEBUG=1 to see libbpf's messages.
";

fn main() {
    // Like any Unix filter, end quietly when the reader of stdout goes away (`netbpf list | head`)
    // instead of failing writes; the kernel detaches our BPF programs when we exit.
    // SAFETY: setting a signal disposition to its default.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let args: Vec<OsString> = std::env::args_os().collect();
    std::process::exit(match dispatch(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("netbpf: error: {e:#}");
            core::error::exit_code(&e)
        }
    });
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
        return (tool.run)(tool, args);
    }
    if args.len() < 2 {
        eprint!("{USAGE}");
        return Err(usage!("no tool given"));
    }
    let cmd = args[1].to_string_lossy().into_owned();
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}\nTools:\n");
            for t in tools::TOOLS {
                println!("  {:<16} {}", t.name, t.about);
            }
            Ok(())
        }
        "-V" | "--version" => {
            println!("netbpf {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "exporter" => {
            args.remove(0);
            netbpf::exporter::run(args)
        }
        "list" => {
            let mut verbose = false;
            for a in &args[2..] {
                match a.to_str() {
                    Some("-v" | "--verbose") => verbose = true,
                    _ => {
                        return Err(usage!(
                            "list: unexpected argument '{}' (netbpf list [--verbose])",
                            a.to_string_lossy()
                        ))
                    }
                }
            }
            list(verbose)
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
    let caps = Caps::get();
    let privileged = core::bpf::privileged();
    println!("{:<16} {:<12} {:<11} DESCRIPTION", "TOOL", "STATUS", "PLAN");
    for t in tools::TOOLS {
        if !privileged {
            println!("{:<16} {:<12} {:<11} {}", t.name, "unknown", "-", t.about);
            continue;
        }
        let verdicts: Vec<Result<(), String>> = t.plans.iter().map(|p| caps.check(p)).collect();
        let chosen = verdicts.iter().position(|v| v.is_ok());
        match chosen {
            Some(i) => println!(
                "{:<16} {:<12} {:<11} {}",
                t.name, "ok", t.plans[i].name, t.about
            ),
            None => {
                let why: Vec<String> = t
                    .plans
                    .iter()
                    .zip(&verdicts)
                    .filter_map(|(p, v)| v.as_ref().err().map(|e| format!("{}: {e}", p.name)))
                    .collect();
                println!(
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
                    Err(why) => format!("skipped: {why}"),
                };
                println!(
                    "    {:<12} {verdict}\n    {:<12} hooks: {}",
                    p.name, "", p.attach
                );
            }
        }
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
            println!("{id:<10} {p}");
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
    println!("{head:<10} {:<12} {:<28} PROCESSES", "INODE", "PATH");
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
        println!("{cookie:<10} {:<12} {:<28} {procs}", r.inode, r.path);
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
            println!("{} -> {}", link.display(), exe.display());
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
