//! Man pages and shell completions for the packages (scripts/package.sh), generated from the same
//! clap Commands the tools parse their options with: `cargo run --example package-docs -- DIR`
//! writes DIR/man/netbpf.8, DIR/man/netbpf-TOOL.8 (one per tool, with its examples) and
//! DIR/completions/{netbpf.bash,_netbpf,netbpf.fish}.

use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command, ValueHint};
use clap_complete::Shell;
use netbpf::tools::TOOLS;

/// Section 8: the binary is installed in /usr/sbin (it needs root or CAP_BPF + CAP_PERFMON).
const SECTION: &str = "8";

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: package-docs OUTPUT_DIR"))?,
    );
    let man = out.join("man");
    let completions = out.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;

    let netbpf = netbpf_command();
    // netbpf-SUBCOMMAND(8) for each tool and each of netbpf's own commands, as netbpf(8) lists
    // them.
    for sub in netbpf.get_subcommands() {
        write_man(&man, page_command(sub.clone()), "EXAMPLES")?;
    }
    write_man(&man, netbpf, "USAGE")?;
    for (shell, file) in [
        (Shell::Bash, "netbpf.bash"),
        (Shell::Zsh, "_netbpf"),
        (Shell::Fish, "netbpf.fish"),
    ] {
        let mut f = std::fs::File::create(completions.join(file))?;
        clap_complete::generate(shell, &mut netbpf_command(), "netbpf", &mut f);
    }
    Ok(())
}

/// A tool's page is netbpf-TOOL(8), so it never shadows bcc's or libbpf-tools' TOOL(8); its
/// synopsis reads `netbpf TOOL`.
fn page_command(cmd: Command) -> Command {
    let page = format!("netbpf-{}", cmd.get_name());
    let bin = format!("netbpf {}", cmd.get_name());
    cmd.display_name(page).bin_name(bin)
}

/// The whole command line: netbpf's own subcommands and every tool (aliases included).
fn netbpf_command() -> Command {
    let mut cmd = Command::new("netbpf")
        .version(env!("CARGO_PKG_VERSION"))
        .about(env!("CARGO_PKG_DESCRIPTION"))
        // The usage text netbpf --help prints, verbatim.
        .after_long_help(netbpf::USAGE)
        .arg(
            Arg::new("install-links")
                .long("install-links")
                .value_name("DIR")
                .value_hint(ValueHint::DirPath)
                .help("Symlink every tool name to this binary in DIR (other files are left alone)"),
        )
        .subcommand(
            Command::new("list")
                .about("Every tool, and whether and how it runs on this kernel")
                .arg(
                    Arg::new("verbose")
                        .short('v')
                        .long("verbose")
                        .action(ArgAction::SetTrue)
                        .help("Every plan of every tool, with the reason a plan cannot run"),
                ),
        )
        .subcommand(
            Command::new("netns")
                .about("Network namespace cookies (for --netns), all or of PATH")
                .arg(
                    Arg::new("path")
                        .num_args(0..)
                        .value_hint(ValueHint::FilePath),
                ),
        )
        .subcommand(
            // The exporter keeps its options to itself: `netbpf exporter --help` lists them.
            Command::new("exporter")
                .about("The tools' aggregations as Prometheus metrics (see netbpf exporter --help)")
                .arg(
                    Arg::new("options")
                        .num_args(0..)
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true),
                ),
        );
    for tool in TOOLS {
        cmd = cmd.subcommand((tool.cli)().aliases(tool.aliases.iter().copied()));
    }
    cmd
}

/// Renders `cmd`'s page, its after-help under `heading` rather than clap_mangen's "EXTRA".
fn write_man(dir: &Path, cmd: Command, heading: &str) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd)
        .section(SECTION)
        .manual("netbpf")
        .source(format!("netbpf {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    man.render(&mut page)?;
    let page = String::from_utf8(page)?.replace(".SH EXTRA\n", &format!(".SH {heading}\n"));
    std::fs::write(dir.join(man.get_filename()), page)?;
    Ok(())
}
