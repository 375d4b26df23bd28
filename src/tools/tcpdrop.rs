//! tcpdrop: TCP packets dropped by the kernel, with addresses, TCP state and flags, the drop
//! reason and the kernel stack.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::mem::MaybeUninit;

use clap::Parser;
use libbpf_rs::btf::{types, Btf};

use crate::core::addr::{endpoint, ip, ip_version};
use crate::core::bpf::{load, read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Family};
use crate::core::output::{json_string, Column, Format, Output, Value};
use crate::core::symbols::Symbols;
use crate::core::tcp::{flags_str, state_name};
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/tcpdrop.skel.rs"));
}
use skel::*;

unsafe impl Pod for skel::types::tcpdrop_event {}

pub static TOOL: Tool = Tool {
    name: "tcpdrop",
    aliases: &[],
    about: "TCP packets dropped by the kernel: addresses, state, flags, drop reason, kernel stack",
    plans: &[Plan {
        name: "tp_btf",
        needs: &[Hook::TpBtf],
        attach: "skb/kfree_skb",
        check: Some(has_drop_reasons),
    }],
    run,
};

const REASON_ENUM: &str = "skb_drop_reason";

/// kfree_skb carries a reason since Linux 5.17; without it every free would look like a drop.
fn has_drop_reasons() -> Result<(), String> {
    let btf = Btf::from_vmlinux().map_err(|e| format!("reading kernel BTF: {e}"))?;
    if btf.type_by_name::<types::Enum>(REASON_ENUM).is_some() {
        Ok(())
    } else {
        Err(format!(
            "the kernel has no enum {REASON_ENUM} (drop reasons came in Linux 5.17)"
        ))
    }
}

/// Drop reason values -> names ("NO_SOCKET"), read from this kernel's BTF: the values differ
/// between kernel versions.
fn reason_names() -> HashMap<u32, String> {
    let mut names = HashMap::new();
    let Ok(btf) = Btf::from_vmlinux() else {
        return names;
    };
    if let Some(e) = btf.type_by_name::<types::Enum>(REASON_ENUM) {
        for m in e.iter() {
            let Some(name) = m.name else { continue };
            let name = name.to_string_lossy();
            let short = name.strip_prefix("SKB_DROP_REASON_").unwrap_or(&name);
            names.insert(m.value as u32, short.to_string());
        }
    }
    names
}

/// The stack from the freeing function down: the first frames are the BPF program and the
/// tracepoint machinery that called it.
fn drop_frames(mut frames: Vec<String>) -> Vec<String> {
    const TRACING: [&str; 4] = ["bpf_prog_", "bpf_trace_run", "__traceiter_", "__bpf_trace_"];
    let skip = frames
        .iter()
        .take_while(|f| TRACING.iter().any(|p| f.starts_with(p)))
        .count();
    frames.drain(..skip);
    frames
}

const EXAMPLES: &str = "\
Examples:
  tcpdrop                 # every TCP packet drop, with its reason and kernel stack
  tcpdrop -4              # IPv4 only
  tcpdrop --json          # one JSON object per drop, the stack as an array

SADDR:SPORT > DADDR:DPORT is the dropped packet's own direction. STATE is the TCP state of the
socket it belonged to (- when none was found, e.g. a SYN to a closed port: NO_SOCKET). PID is
whatever ran at the time, usually not the socket's owner (drops happen in softirq context).
Drops the kernel does not give a reason for (NOT_SPECIFIED) are not shown.";

#[derive(Parser, Debug)]
#[command(name = "tcpdrop", about = "Trace TCP packet drops with reason and kernel stack", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

fn columns() -> Vec<Column> {
    vec![
        Column::new("TIME", "time", -8),
        Column::new("PID", "pid", -7),
        Column::new("IP", "ip", -2),
        Column::table("SADDR:SPORT", -22),
        Column::json("saddr"),
        Column::json("sport"),
        Column::table(">", 1),
        Column::table("DADDR:DPORT", -22),
        Column::json("daddr"),
        Column::json("dport"),
        Column::new("STATE", "state", -11),
        Column::table("(FLAGS)", -9),
        Column::json("flags"),
        Column::json("reason"),
        Column::json("reason_code"),
        Column::json("stack"),
    ]
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();

    let mut obj = MaybeUninit::uninit();
    let skel = load(
        tool.name,
        s.plan.attach,
        TcpdropSkelBuilder::default(),
        &mut obj,
        |open| {
            crate::set_filters!(
                open.maps.rodata_data.as_deref_mut().expect("rodata"),
                s.filters
            );
        },
    )?;

    let reasons = reason_names();
    let symbols = Symbols::new();
    let json = o.common.format() == Format::Json;
    let mut out = Output::new(o.common.format(), columns());
    out.header();
    announce("TCP drops");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<skel::types::tcpdrop_event>(data) else {
            return;
        };
        let (src, dst) = (ip(e.family, &e.saddr), ip(e.family, &e.daddr));
        let time = clock.hms(e.ts_ns);
        let state = if e.state == 0 {
            "-"
        } else {
            state_name(e.state.into())
        };
        let flags = flags_str(e.flags);
        let reason = reasons
            .get(&e.reason)
            .cloned()
            .unwrap_or_else(|| format!("UNKNOWN({})", e.reason));
        let frames = drop_frames(symbols.kernel(&e.stack));
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
        let (src_ep, dst_ep) = (endpoint(src, e.sport), endpoint(dst, e.dport));
        let flags_cell = format!("({flags})");
        out.row(&[
            Value::Str(&time),
            Value::U64(e.pid.into()),
            Value::U64(ip_version(e.family)),
            Value::Str(&src_ep),
            Value::Ip(src),
            Value::U64(e.sport.into()),
            Value::Str(">"),
            Value::Str(&dst_ep),
            Value::Ip(dst),
            Value::U64(e.dport.into()),
            Value::Str(state),
            Value::Str(&flags_cell),
            Value::Str(&flags),
            Value::Str(&reason),
            Value::U64(e.reason.into()),
            Value::Json(&stack_json),
        ]);
        if !json {
            let mut lines = format!("\treason: {reason}");
            for f in &frames {
                write!(lines, "\n\t{f}").unwrap();
            }
            out.text(&lines);
            out.text("");
        }
    })?;
    crate::core::run::report_lost(
        tool.name,
        skel.maps.bss_data.as_deref().map_or(0, |b| b.lost_events),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracing_frames_are_cut() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let stack = f(&[
            "bpf_prog_a61f_tcpdrop_kfree_skb+0x685",
            "bpf_trace_run4+0x10d",
            "__traceiter_kfree_skb+0x41",
            "sk_skb_reason_drop+0x90",
            "tcp_v4_rcv+0x99",
        ]);
        assert_eq!(
            drop_frames(stack),
            f(&["sk_skb_reason_drop+0x90", "tcp_v4_rcv+0x99"])
        );
    }
}
