//! The registry: one line per tool. A tool is one module here, one `src/bpf/<tool>.bpf.c` and
//! one event header `src/bpf/<tool>.h`.

use std::ffi::OsString;

use crate::core::bpf::{Plans, Skel};
use crate::core::caps::{Caps, Plan};
use crate::core::cli::{Common, Filters, PidFilter};
use crate::core::export::Export;
use crate::core::run::Run;

/// A tool's generated skeleton (`OUT_DIR/<tool>.skel.rs`) as the module `skel`, its items in
/// scope: `crate::skel!("tcplife");`.
#[macro_export]
macro_rules! skel {
    ($tool:literal) => {
        mod skel {
            include!(concat!(env!("OUT_DIR"), "/", $tool, ".skel.rs"));
        }
        use skel::*;
    };
}

pub struct Tool {
    pub name: &'static str,
    /// Other names it answers to (book spellings), also as symlink names.
    pub aliases: &'static [&'static str],
    pub about: &'static str,
    /// Ways to build it, best first. Each plan's hook types choose the programs that load.
    pub plans: &'static [Plan],
    /// The tool's command line as clap declares it: help, man pages and shell completions.
    pub cli: fn() -> clap::Command,
    pub run: fn(&'static Tool, Vec<OsString>) -> anyhow::Result<()>,
    /// Whether the tool's object loads with a plan on this kernel, verifier included, without
    /// attaching (`netbpf list`): `core::bpf::verify::<skel::ToolSkelBuilder>` for most tools.
    pub verify: fn(&'static str, &'static Plan) -> Result<(), String>,
    /// `netbpf exporter` mode, for the tools that have one.
    pub export: Option<Export>,
}

pub mod bindsnoop;
pub mod dnslat;
pub mod gethostlatency;
pub mod ieee80211scan;
pub mod ipecn;
pub mod netsize;
pub mod nettxlat;
pub mod qdisc;
pub mod skbdrop;
pub mod skblife;
pub mod so1stbyte;
pub mod soaccept;
pub mod socketio;
pub mod socksize;
pub mod sockstat;
pub mod soconnect;
pub mod soconnlat;
pub mod sofamily;
pub mod solisten;
pub mod soprotocol;
pub mod sormem;
pub mod superping;
pub mod tcpaccept;
pub mod tcpcong;
pub mod tcpconnect;
pub mod tcpconnlat;
pub mod tcpdrop;
pub mod tcplife;
pub mod tcpnagle;
pub mod tcppktlat;
pub mod tcpretrans;
pub mod tcprtt;
pub mod tcpsnoop;
pub mod tcpstates;
pub mod tcpsynbl;
pub mod tcptop;
pub mod tcptracer;
pub mod tcpwin;
pub mod udpconnect;

/// Programs shared by the socket I/O tools' fentry and kprobe plans.
pub mod sockmsg;

/// The registry: one line per tool.
pub static TOOLS: &[&Tool] = &[
    &bindsnoop::TOOL,
    &dnslat::TOOL,
    &gethostlatency::TOOL,
    &ieee80211scan::TOOL,
    &ipecn::TOOL,
    &netsize::TOOL,
    &nettxlat::TOOL,
    &qdisc::TOOL,
    &skbdrop::TOOL,
    &skblife::TOOL,
    &so1stbyte::TOOL,
    &soaccept::TOOL,
    &socketio::TOOL,
    &socksize::TOOL,
    &sockstat::TOOL,
    &soconnect::TOOL,
    &soconnlat::TOOL,
    &sofamily::TOOL,
    &solisten::TOOL,
    &soprotocol::TOOL,
    &sormem::TOOL,
    &superping::TOOL,
    &tcpaccept::TOOL,
    &tcpcong::TOOL,
    &tcpconnect::TOOL,
    &tcpconnlat::TOOL,
    &tcpdrop::TOOL,
    &tcplife::TOOL,
    &tcpnagle::TOOL,
    &tcppktlat::TOOL,
    &tcpretrans::TOOL,
    &tcprtt::TOOL,
    &tcpsnoop::TOOL,
    &tcpstates::TOOL,
    &tcpsynbl::TOOL,
    &tcptop::TOOL,
    &tcptracer::TOOL,
    &tcpwin::TOOL,
    &udpconnect::TOOL,
];

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS
        .iter()
        .copied()
        .find(|t| t.name == name || t.aliases.contains(&name))
}

/// What a tool has once its options are parsed: the plan this kernel allows, the common filters
/// and the run's lifetime.
pub struct Start {
    pub tool: &'static Tool,
    /// The plan chosen; after [`Start::load`], the plan the object was loaded with.
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
    // Before loading: the helper that detaches the programs after the exit (core::run).
    crate::core::run::start_detacher();
    Ok(Start {
        tool,
        plan,
        filters,
        run: Run::new(tool.name, common.duration),
    })
}

/// The options of the tools whose only filter of their own is `-p`: -p, then the common ones.
#[derive(clap::Args, Debug, Clone)]
pub struct PidOpts {
    #[command(flatten)]
    pub pid: PidFilter,
    #[command(flatten)]
    pub common: Common,
}

impl PidOpts {
    /// Such a tool's command line ([`Tool::cli`]): its name, what it does, its examples.
    pub fn command(
        name: &'static str,
        about: &'static str,
        examples: &'static str,
    ) -> clap::Command {
        // After the derived part, which gives the command this struct's doc comment as about.
        <PidOpts as clap::Args>::augment_args(clap::Command::new(name))
            .about(about)
            .after_help(examples)
    }

    /// Parses `args` with the tool's command line and [`start`]s it, -p among the filters; a
    /// bad command line exits as clap does.
    pub fn start(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<(PidOpts, Start)> {
        use clap::FromArgMatches as _;
        let mut matches = (tool.cli)().get_matches_from(args);
        let o = PidOpts::from_arg_matches_mut(&mut matches)
            .unwrap_or_else(|e| e.format(&mut (tool.cli)()).exit());
        let mut s = start(tool, &o.common)?;
        o.pid.apply(&mut s.filters);
        Ok((o, s))
    }
}

/// "Tracing ..." on stderr once attached: people know it is live, tests know when to begin.
pub fn announce(what: &str) {
    eprintln!("Tracing {what}... Hit Ctrl-C to end.");
}

fn select(
    tool: &str,
    plans: &'static [Plan],
) -> Result<&'static Plan, crate::core::error::Unsupported> {
    Caps::get().select(tool, plans)
}

impl Start {
    fn plans(&self) -> Plans {
        Plans {
            tool: self.tool.name,
            all: self.tool.plans,
            select,
            filters: Some(self.filters.clone()),
        }
    }

    /// The load path ([`crate::core::bpf::load`]): opens the tool's object with the programs
    /// of the chosen plan, lets `configure` set filters and the rest, loads it (falling through
    /// to the next plan when this kernel refuses it) and attaches it.
    pub fn load<B>(
        &mut self,
        configure: impl FnMut(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
    ) -> anyhow::Result<Skel<B>>
    where
        B: libbpf_rs::skel::SkelBuilder<'static> + Default,
    {
        let mut skel = self.load_unattached::<B>(configure)?;
        crate::core::bpf::attach::<B>(self.tool.name, self.plan, &mut skel)?;
        Ok(skel)
    }

    /// As [`Start::load`], without attaching: for tools that attach their programs themselves
    /// (uprobes in a library, per-target fexit links).
    pub fn load_unattached<B>(
        &mut self,
        configure: impl FnMut(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
    ) -> anyhow::Result<Skel<B>>
    where
        B: libbpf_rs::skel::SkelBuilder<'static> + Default,
    {
        let (skel, plan) = crate::core::bpf::load_plan::<B>(&self.plans(), self.plan, configure)?;
        self.plan = plan;
        Ok(skel)
    }

    /// A per-event tool's run: prints `table`'s header, says what is traced ([`announce`]), and
    /// prints one row per event of type `E` from the `events` ring buffer, `row` building it,
    /// until the run ends.
    pub fn stream_rows<E: crate::core::bpf::Pod, R: 'static>(
        &self,
        events: &dyn libbpf_rs::MapCore,
        table: &crate::core::table::Table<R>,
        format: crate::core::output::Format,
        what: &str,
        mut row: impl FnMut(E) -> R,
    ) -> anyhow::Result<()> {
        let mut out = table.output(format);
        out.header();
        announce(what);
        self.run.stream(events, &mut out, |data, out| {
            if let Some(e) = crate::core::bpf::read_event::<E>(data) {
                table.row(out, &row(e));
            }
        })
    }

    /// The run of the per-event tools that follow TCP sockets ([`crate::core::sk_state`]:
    /// tcplife, tcpstates, tcptracer): loads `B` with the state maps sized for the plan, seeds
    /// the listening sockets' owners (`maps` gives the skeleton's `events` and `listen_owners`),
    /// streams the events as rows ([`Start::stream_rows`]; `row` gets the clock started once
    /// loaded), then reports the losses and the sockets not followed (`unfollowed`: what an
    /// untracked and an evicted socket cost, [`crate::core::sk_state::report_unfollowed`]).
    pub fn stream_sockets<B, E, R>(
        &mut self,
        maps: impl for<'k> Fn(&'k Skel<B>) -> [&'k dyn libbpf_rs::MapCore; 2],
        table: &crate::core::table::Table<R>,
        format: crate::core::output::Format,
        what: &str,
        mut row: impl FnMut(&crate::core::time::Clock, E) -> R,
        unfollowed: [&str; 2],
    ) -> anyhow::Result<()>
    where
        B: libbpf_rs::skel::SkelBuilder<'static> + Default,
        E: crate::core::bpf::Pod,
        R: 'static,
    {
        use crate::core::sk_state;
        crate::core::sock_owners::load_in_background();
        let skel = self.load::<B>(sk_state::configure)?;
        let [events, listen_owners] = maps(&skel);
        sk_state::seed_listeners(self.tool.name, self.filters.netns, listen_owners)?;
        let clock = crate::core::time::Clock::start();
        self.stream_rows(events, table, format, what, |e| row(&clock, e))?;
        let object = libbpf_rs::skel::Skel::object(&skel);
        self.report(object);
        let [untracked, evicted] = unfollowed;
        sk_state::report_unfollowed(self.tool.name, object, untracked, evicted);
        Ok(())
    }

    /// A tool that prints once the run ends: says what is traced ([`announce`]), waits for the
    /// end, and reports what `object` lost ([`Start::report`]).
    pub fn wait_then_report(&self, what: &str, object: &libbpf_rs::Object) {
        announce(what);
        self.run.wait();
        self.report(object);
    }

    /// At the end of a run, on stderr: the runs the kernel skipped, the events the ring buffer
    /// lost and the updates a full map refused (the shared layer's `.bss` counters).
    pub fn report(&self, object: &libbpf_rs::Object) {
        use crate::core::bpf::bss_u64;
        let tool = self.tool.name;
        crate::core::run::report_missed(tool, object);
        crate::core::run::report_lost(tool, bss_u64(object, "lost_events").unwrap_or(0));
        crate::core::run::report_full(tool, bss_u64(object, "map_full_drops").unwrap_or(0));
    }
}

/// What `netbpf list` says of a tool: the plan it would run with (the first whose hooks this
/// kernel has and whose object loads), and why each other plan is not used.
pub struct Verdict {
    pub chosen: Option<usize>,
    /// Per plan: Ok when usable, else what it lacks.
    pub plans: Vec<Result<(), String>>,
}

pub fn verdict(t: &'static Tool) -> Verdict {
    let caps = Caps::get();
    let mut chosen = None;
    let plans = t
        .plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            caps.check(p)?;
            if chosen.is_some() {
                return Ok(()); // a later plan: not loaded, only its hooks checked
            }
            (t.verify)(t.name, p).map_err(|why| format!("does not load: {why}"))?;
            chosen = Some(i);
            Ok(())
        })
        .collect();
    Verdict { chosen, plans }
}
