//! soconnlat: IP connect() latency histograms keyed by user stack and process, including
//! non-blocking connects completed through poll/select/epoll; printed at exit.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;

use libbpf_rs::{MapCore, MapFlags};

use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::hist::print_log2;
use crate::core::output::{comm_str, json_string, Format, Output, Value};
use crate::core::symbols::{Symbols, UserFrame};
use crate::tools::{announce, PidOpts, Tool};

crate::skel!("soconnlat");

unsafe impl Pod for types::soconnlat_key {}
unsafe impl Pod for types::soconnlat_stack_event {}
unsafe impl Pod for types::hist {}

pub static TOOL: Tool = Tool {
    name: "soconnlat",
    aliases: &[],
    about: "IP connect() latency histograms by user stack and process (at exit)",
    plans: &[Plan::new(
        "tracepoint",
        &[Hook::Tracepoint],
        "syscalls/sys_{enter,exit}_connect + fd->sock, sys_exit_{poll,ppoll,select,\
                 pselect6,epoll_wait,epoll_pwait,epoll_pwait2 (5.11+)}",
    )],
    cli,
    run,
    verify: |tool, plan| {
        crate::core::bpf::verify_with::<SoconnlatSkelBuilder>(tool, plan, |open, _| {
            leave_out_missing_waits(open);
            Ok(())
        })
    },
    export: None,
};

/// The wait syscalls this kernel lacks are not traced: epoll_pwait2 came in 5.11 (a program on
/// a tracepoint that is not there fails to attach). Asked after the plan's Hook::Tracepoint,
/// which mounts tracefs there.
fn leave_out_missing_waits(open: &mut OpenSoconnlatSkel) {
    if !std::path::Path::new("/sys/kernel/tracing/events/syscalls/sys_exit_epoll_pwait2").exists() {
        open.progs.soconnlat_exit_epoll_pwait2.set_autoload(false);
    }
}

const EXAMPLES: &str = "\
Examples:
  soconnlat               # histograms until Ctrl-C
  soconnlat -d 10         # for 10 seconds
  soconnlat -p 181        # only PID 181
  soconnlat --json        # one JSON object per histogram, the stack as an array of frames

@us[STACK, COMM, PID] counts IPv4/IPv6 connect()s by microseconds, per user stack of the
connect() call. A blocking connect ends when connect() returns (failures too). A non-blocking
one (EINPROGRESS) ends when the same thread's poll/ppoll/select/pselect6/epoll_wait/epoll_pwait/
epoll_pwait2 returns with the connecting socket's handshake over.
Stacks are walked with frame pointers: code built without them (most distribution libraries,
Rust and C built with default flags) shows short or partial stacks; build with
-fno-omit-frame-pointer or -C force-frame-pointers=yes for full ones. A stack's frames are located
in their files when the process first connects from it, and named from those files at the end, so
short-lived clients are named too. A frame with no symbol shows as FILE+0xOFFSET, one in no file
as its address.";

fn cli() -> clap::Command {
    PidOpts::command(
        "soconnlat",
        "Histograms of IP connect() latency by user stack",
        EXAMPLES,
    )
}

/// User stacks by (pid, stack id), and connect()'s callers by (pid, address): located in their
/// files when first reported (at the start of the process's first connect from that stack, while
/// it surely lives), named at the end.
struct Stacks<'a> {
    tool: &'static str,
    map: &'a dyn MapCore,
    symbols: Symbols,
    located: HashMap<(u32, i32), Vec<UserFrame>>,
    callers: HashMap<(u32, u64), UserFrame>,
    /// Programs already said to give short stacks.
    said_short: HashSet<String>,
}

/// A stack of this many frames or fewer stops right after connect(): its callers have no frame
/// pointers.
const SHORT_STACK: usize = 2;

impl Stacks<'_> {
    fn locate(&mut self, pid: u32, stack_id: i32, caller: u64) {
        if !self.located.contains_key(&(pid, stack_id)) {
            let frames = self.read(pid, stack_id);
            if frames.len() <= SHORT_STACK {
                self.say_short(pid, frames.len(), caller);
            }
            self.located.insert((pid, stack_id), frames);
        }
        if caller != 0 && !self.callers.contains_key(&(pid, caller)) {
            let frame = self.symbols.locate_user(pid, &[caller]).pop();
            self.callers
                .insert((pid, caller), frame.unwrap_or(UserFrame::Unknown(caller)));
        }
    }

    /// Says on stderr, once per program, that its stacks stop short and what is shown instead.
    fn say_short(&mut self, pid: u32, frames: usize, caller: u64) {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
            .map_or_else(|_| format!("pid {pid}"), |p| p.display().to_string());
        if !self.said_short.insert(exe.clone()) {
            return;
        }
        let instead = if caller != 0 {
            "connect()'s caller is shown as found on top of the stack, marked [caller]"
        } else {
            "only connect() itself is known"
        };
        eprintln!(
            "netbpf {}: stacks of {exe} (pid {pid}) stop after {frames} frame{}: the code calling \
             connect() has no frame pointers (build with -fno-omit-frame-pointer for full \
             stacks); {instead}",
            self.tool,
            if frames == 1 { "" } else { "s" }
        );
    }

    fn read(&self, pid: u32, stack_id: i32) -> Vec<UserFrame> {
        if stack_id < 0 {
            return Vec::new();
        }
        let Ok(Some(raw)) = self.map.lookup(&stack_id.to_ne_bytes(), MapFlags::ANY) else {
            return Vec::new();
        };
        let addrs: Vec<u64> = raw
            .chunks_exact(8)
            .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
            .collect();
        self.symbols.locate_user(pid, &addrs)
    }

    /// The stack's frames, named, with connect()'s caller from the stack top after connect()'s
    /// own frame where the walk skipped it (it always does: connect() keeps no frame pointer).
    fn frames(&mut self, pid: u32, stack_id: i32, caller: u64) -> Vec<String> {
        self.locate(pid, stack_id, caller);
        let stack = &self.located[&(pid, stack_id)];
        let mut names = self.symbols.name_user(stack);
        let walked_to_it = stack.get(1).is_some_and(|f| frame_addr(f) == caller);
        if let Some(frame) = self.callers.get(&(pid, caller)).filter(|_| !walked_to_it) {
            let name = self
                .symbols
                .name_user(std::slice::from_ref(frame))
                .remove(0);
            names.insert(names.len().min(1), format!("{name} [caller]"));
        }
        names
    }
}

fn frame_addr(f: &UserFrame) -> u64 {
    match f {
        UserFrame::File { addr, .. } => *addr,
        UserFrame::Unknown(addr) => *addr,
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SoconnlatSkelBuilder>(|open, _plan| {
        leave_out_missing_waits(open);
        Ok(())
    })?;

    let mut stacks = Stacks {
        tool: tool.name,
        map: &skel.maps.stacks,
        symbols: Symbols::new(),
        located: HashMap::new(),
        callers: HashMap::new(),
        said_short: HashSet::new(),
    };
    let mut out = Output::new(o.common.format(), Vec::new());
    announce("IP connect() latency");
    // Nothing is printed until the end; new stacks are located now, while their process lives.
    s.run.stream(&skel.maps.events, &mut out, |data, _| {
        if let Some(e) = read_event::<types::soconnlat_stack_event>(data) {
            stacks.locate(e.pid, e.stack_id, e.caller);
        }
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    let untracked = skel.maps.bss_data.as_deref().map_or(0, |b| b.untracked);
    if untracked > 0 {
        eprintln!(
            "netbpf {}: {untracked} non-blocking connects not timed (a thread had too many in \
             progress)",
            tool.name
        );
    }

    let mut hists: Vec<(types::soconnlat_key, types::hist)> =
        crate::core::maps::entries(&skel.maps.hists)?;
    hists.sort_by_key(|(k, _)| (comm_str(&k.comm), k.pid, k.stack_id, k.caller));
    for (k, h) in &hists {
        let comm = comm_str(&k.comm);
        let frames = stacks.frames(k.pid, k.stack_id, k.caller);
        let stack = if out.format() == Format::Json {
            let mut json = String::from("[");
            for (i, f) in frames.iter().enumerate() {
                if i > 0 {
                    json.push(',');
                }
                json_string(&mut json, f);
            }
            json.push(']');
            json
        } else if frames.is_empty() {
            "[no user stack]".to_string()
        } else {
            // bpftrace's ustack layout: one indented frame per line.
            let mut text = String::from("\n");
            for f in &frames {
                text.push_str("        ");
                text.push_str(f);
                text.push('\n');
            }
            text
        };
        let stack = if out.format() == Format::Json {
            Value::Json(&stack)
        } else {
            Value::Str(&stack)
        };
        print_log2(
            &mut out,
            "us",
            "us",
            &[
                ("stack", stack),
                ("comm", Value::Str(&comm)),
                ("pid", Value::U64(k.pid.into())),
            ],
            &h.slots,
        );
    }
    Ok(())
}
