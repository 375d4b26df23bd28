//! tcpdrop: TCP packets dropped by the kernel, with addresses, TCP state and flags, the drop
//! reason and the kernel stack.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;

use clap::Parser;

use crate::core::addr::{endpoint, ip, ip_version};
use crate::core::bpf::{read_event, Pod};
use crate::core::cli::{Common, Family};
use crate::core::drop_reason;
use crate::core::output::{json_string, Column, Format, Output, Value};
use crate::core::symbols::Symbols;
use crate::core::table::Table;
use crate::core::tcp::{flags_str, state_name};
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};

crate::skel!("tcpdrop");

unsafe impl Pod for skel::types::tcpdrop_event {}

pub static TOOL: Tool = Tool {
    name: "tcpdrop",
    aliases: &[],
    about: "TCP packets dropped by the kernel: addresses, state, flags, drop reason, kernel stack",
    plans: &[drop_reason::WITH_REASONS, drop_reason::WITHOUT_REASONS],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcpdropSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  tcpdrop                 # every TCP packet drop, with its reason and kernel stack
  tcpdrop -4              # IPv4 only
  tcpdrop --json          # one JSON object per drop, the stack as an array
  tcpdrop --all-reasons   # also routine teardown drops (QUEUE_PURGE)

SADDR:SPORT > DADDR:DPORT is the dropped packet's own direction. STATE is the TCP state of the
socket it belonged to (- when none was found, e.g. a SYN to a closed port: NO_SOCKET). PID is
whatever ran at the time, usually not the socket's owner (drops happen in softirq context).
Drops the kernel does not give a reason for (NOT_SPECIFIED) are not shown. Routine reasons,
given in normal operation where nothing is lost (QUEUE_PURGE: a closed socket's queue freed
with it, e.g. the peer's FIN after close), are hidden and counted: at exit stderr says how many
of each; --all-reasons shows them. Before Linux 5.17 the kernel gives no reasons: every TCP
packet freed through kfree_skb() is shown, reason unknown.";

#[derive(Parser, Debug)]
#[command(name = "tcpdrop", about = "Trace TCP packet drops with reason and kernel stack", after_help = EXAMPLES)]
struct Opts {
    /// Also show routine drops (QUEUE_PURGE: normal teardown), hidden and counted by default
    #[arg(long = "all-reasons")]
    all_reasons: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// One dropped packet, as printed.
struct Row {
    time: String,
    e: types::tcpdrop_event,
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    src_ep: String,
    dst_ep: String,
    state: &'static str,
    flags: String,
    flags_cell: String,
    reason: String,
    stack_json: String,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("TIME", "time", -8), |r| Value::Str(&r.time))
        .col(Column::new("PID", "pid", -7), |r| {
            Value::U64(r.e.pid.into())
        })
        .col(Column::new("IP", "ip", -2), |r| {
            Value::U64(ip_version(r.e.family))
        })
        .col(Column::table("SADDR:SPORT", -22), |r| Value::Str(&r.src_ep))
        .col(Column::json("saddr"), |r| Value::Ip(r.src))
        .col(Column::json("sport"), |r| Value::U64(r.e.sport.into()))
        .col(Column::table(">", 1), |_| Value::Str(">"))
        .col(Column::table("DADDR:DPORT", -22), |r| Value::Str(&r.dst_ep))
        .col(Column::json("daddr"), |r| Value::Ip(r.dst))
        .col(Column::json("dport"), |r| Value::U64(r.e.dport.into()))
        .col(Column::new("STATE", "state", -11), |r| Value::Str(r.state))
        .col(Column::table("(FLAGS)", -9), |r| Value::Str(&r.flags_cell))
        .col(Column::json("flags"), |r| Value::Str(&r.flags))
        .col(Column::json("reason"), |r| Value::Str(&r.reason))
        .col(Column::json("reason_code"), |r| {
            Value::U64(r.e.reason.into())
        })
        .col(Column::json("stack"), |r| Value::Json(&r.stack_json))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();

    // The kernel's reason names, for the routine set the programs skip (none before 5.17).
    let btf_reasons = drop_reason::names().unwrap_or_default();
    let skel = s.load::<TcpdropSkelBuilder>(|open, plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.drop_reasons = drop_reason::plan_has_reasons(plan);
        if !o.all_reasons {
            for code in drop_reason::routine_codes(&btf_reasons) {
                if let Some(word) = rodata.routine_reasons.get_mut(code as usize / 64) {
                    *word |= 1 << (code % 64);
                }
            }
        }
        Ok(())
    })?;

    let reasons =
        drop_reason::names_for(s.plan).map_err(|e| anyhow::anyhow!("{}: {e}", tool.name))?;
    drop_reason::note_unknown(tool.name, reasons.as_ref());
    let symbols = Symbols::new();
    let json = o.common.format() == Format::Json;
    let table = table().containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    out.header();
    announce("TCP drops");
    let clock = Clock::start();
    // Events are printed after each drain of the ring, their stacks named in one read of
    // kallsyms per drain (see Symbols::kernel) rather than one per event.
    let drained = std::cell::RefCell::new(Vec::new());
    let collect = |data: &[u8], _: &mut Output| {
        if let Some(e) = read_event::<skel::types::tcpdrop_event>(data) {
            drained.borrow_mut().push(e);
        }
    };
    let print = |e: skel::types::tcpdrop_event, out: &mut Output| {
        let (src, dst) = (ip(e.family, &e.saddr), ip(e.family, &e.daddr));
        let state = if e.state == 0 {
            "-"
        } else {
            state_name(e.state.into())
        };
        let flags = flags_str(e.flags);
        let reason = drop_reason::name_of(reasons.as_ref(), e.reason);
        let frames = drop_reason::trim_tracing_frames(symbols.kernel(&e.stack));
        let stack_json = if json {
            let mut j = String::from("[");
            for (i, f) in frames.iter().enumerate() {
                if i > 0 {
                    j.push(',');
                }
                json_string(&mut j, f);
            }
            j.push(']');
            j
        } else {
            String::new()
        };
        let row = Row {
            time: clock.hms(e.ts_ns),
            src,
            dst,
            src_ep: endpoint(src, e.sport),
            dst_ep: endpoint(dst, e.dport),
            state,
            flags_cell: format!("({flags})"),
            flags,
            reason,
            stack_json,
            e,
        };
        table.row(out, &row);
        let reason = &row.reason;
        if !json {
            let mut lines = format!("\treason: {reason}");
            for f in &frames {
                write!(lines, "\n\t{f}").unwrap();
            }
            out.text(&lines);
            out.text("");
        }
    };
    s.run
        .stream_ticking(&skel.maps.events, &mut out, collect, |out| {
            let events = std::mem::take(&mut *drained.borrow_mut());
            symbols.prefetch_kernel(events.iter().flat_map(|e| e.stack));
            for e in events {
                print(e, out);
            }
        })?;
    let bss = skel.maps.bss_data.as_deref();
    if let Some(hidden) = bss.and_then(|b| hidden_summary(&btf_reasons, &b.routine_hidden)) {
        eprintln!("netbpf {}: {hidden}", tool.name);
    }
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

/// The exit summary of the routine drops the kernel counted instead of sending, by reason
/// ("3 routine drops not shown (--all-reasons shows them): QUEUE_PURGE 3"); None when none.
fn hidden_summary(reasons: &HashMap<u32, String>, hidden: &[u64]) -> Option<String> {
    let counts: Vec<(String, u64)> = hidden
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(code, &n)| (drop_reason::name(reasons, code as u32), n))
        .collect();
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let each: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    Some(format!(
        "{total} routine {} not shown (normal teardown, not loss; --all-reasons shows them): {}",
        if total == 1 { "drop" } else { "drops" },
        each.join(", ")
    ))
}
