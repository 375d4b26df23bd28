//! The registry: one line per tool. A tool is one module here, one `src/bpf/<tool>.bpf.c` and
//! one event header `src/bpf/<tool>.h`.

use std::ffi::OsString;

use crate::core::caps::{Caps, Plan};
use crate::core::cli::{Common, Filters};
use crate::core::run::Run;

pub struct Tool {
    pub name: &'static str,
    /// Other names it answers to (book spellings), also as symlink names.
    pub aliases: &'static [&'static str],
    pub about: &'static str,
    /// Ways to build it, best first.
    pub plans: &'static [Plan],
    /// The tool's command line as clap declares it: help, man pages and shell completions.
    pub cli: fn() -> clap::Command,
    pub run: fn(&'static Tool, Vec<OsString>) -> anyhow::Result<()>,
}

/// Declares each tool's module and lists it in [`TOOLS`].
macro_rules! registry {
    ($($tool:ident),* $(,)?) => {
        $(pub mod $tool;)*
        pub static TOOLS: &[&Tool] = &[$(&$tool::TOOL),*];
    };
}

// The registry: one line per tool.
registry! {
    gethostlatency,
    ieee80211scan,
    ipecn,
    netsize,
    nettxlat,
    qdisc,
    skbdrop,
    skblife,
    so1stbyte,
    soaccept,
    socketio,
    socksize,
    sockstat,
    soconnect,
    soconnlat,
    sofamily,
    soprotocol,
    sormem,
    superping,
    tcpaccept,
    tcpconnect,
    tcpconnlat,
    tcpdrop,
    tcplife,
    tcpnagle,
    tcpretrans,
    tcprtt,
    tcpsnoop,
    tcpstates,
    tcpsynbl,
    tcptop,
    tcpwin,
    udpconnect,
}

/// Programs shared by the socket I/O tools' fentry and kprobe plans.
pub mod sockmsg;

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS
        .iter()
        .copied()
        .find(|t| t.name == name || t.aliases.contains(&name))
}

/// What a tool has once its options are parsed: the plan this kernel allows, the common filters
/// and the run's lifetime.
pub struct Start {
    pub plan: &'static Plan,
    pub filters: Filters,
    pub run: Run,
}

/// The steps every tool takes before loading: check privileges and BTF, resolve --netns, pick
/// the attach plan (mounting tracefs if the plan needs it), install signal handlers.
pub fn start(tool: &'static Tool, common: &Common) -> anyhow::Result<Start> {
    crate::core::bpf::preflight(tool.name)?;
    let filters = Filters::new(common)?;
    let plan = Caps::get().select(tool.name, tool.plans)?;
    Ok(Start {
        plan,
        filters,
        run: Run::new(common.duration),
    })
}

/// "Tracing ..." on stderr once attached: people know it is live, tests know when to begin.
pub fn announce(what: &str) {
    eprintln!("Tracing {what}... Hit Ctrl-C to end.");
}
