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
       netbpf --install-links DIR  symlink every tool name to this binary in DIR
       netbpf --version

A symlink named like a tool runs that tool: ln -s $(command -v netbpf) /usr/local/bin/tcplife
Set NETBPF_DEBUG=1 to see libbpf's messages.
";

fn main() {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`netbpf list | head -1`) panicked.
    // Like other command-line tools, end quietly when the reader has gone.
    // SAFETY: setting a signal disposition before any thread exists.
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
        "list" => list(args.get(2).is_some_and(|a| a == "--verbose" || a == "-v")),
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
    let caps = Caps::get();
    println!("{:<16} {:<12} {:<44} DESCRIPTION", "TOOL", "STATUS", "HOOK");
    for t in tools::TOOLS {
        let chosen = t.plans.iter().find(|p| caps.check(p).is_ok());
        match chosen {
            Some(p) => println!(
                "{:<16} {:<12} {:<44} {}",
                t.name,
                "ok",
                format!("{}: {}", p.name, p.attach),
                t.about
            ),
            None => {
                let why = t
                    .plans
                    .first()
                    .map(|p| caps.check(p).unwrap_err())
                    .unwrap_or_default();
                println!(
                    "{:<16} {:<12} {:<44} {}",
                    t.name, "unsupported", why, t.about
                )
            }
        }
        if verbose {
            for p in t.plans {
                let verdict = match caps.check(p) {
                    Ok(()) if chosen.is_some_and(|c| std::ptr::eq(c, p)) => "chosen".to_string(),
                    Ok(()) => "usable".to_string(),
                    Err(why) => format!("skipped: {why}"),
                };
                println!("    {:<12} {:<44} {verdict}", p.name, p.attach);
            }
        }
    }
    Ok(())
}

fn install_links(dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    for t in tools::TOOLS {
        for name in std::iter::once(&t.name).chain(t.aliases) {
            let link = dir.join(name);
            if link.symlink_metadata().is_ok() {
                std::fs::remove_file(&link)?;
            }
            std::os::unix::fs::symlink(&exe, &link)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", link.display()))?;
            println!("{} -> {}", link.display(), exe.display());
        }
    }
    Ok(())
}
