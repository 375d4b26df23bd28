//! tcpnagle: TCP transmits by Nagle/cork/push flags, and how long transmits were held back.

use std::ffi::OsString;

use clap::Parser;
use libbpf_rs::{MapCore, MapFlags};

use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{btf_has, Hook, Plan};
use crate::core::cli::{Common, Family, PidFilter};
use crate::core::hist::print_log2;
use crate::core::output::{Column, Format, Output, Value};
use crate::core::run::report_nothing;
use crate::tools::{start, Tool};

crate::skel!("tcpnagle");

unsafe impl Pod for types::hist {}

/// TCPNAGLE_VALUES in tcpnagle.h: the count arrays are indexed by the 4-bit nonagle value.
const NONAGLE_VALUES: u32 = 16;

pub static TOOL: Tool = Tool {
    name: "tcpnagle",
    aliases: &[],
    about: "TCP transmits by Nagle/cork/push flags and time held back (partial without fexit)",
    plans: &[
        Plan::new("fentry", &[Hook::Fentry], "fexit/tcp_write_xmit").checked(has_write_xmit),
        Plan::new("kprobe", &[Hook::Kprobe], "kprobe+kretprobe/tcp_write_xmit")
            .checked(has_write_xmit),
        Plan::new(
            "partial",
            &[Hook::TpBtf],
            "sock/sock_send_length + tcp/tcp_sendmsg_locked (no blocked time)",
        )
        .checked(has_send_tracepoints),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcpnagleSkelBuilder>,
    export: None,
};

fn has_write_xmit() -> Result<(), String> {
    btf_has("tcp_write_xmit")
}

fn has_send_tracepoints() -> Result<(), String> {
    btf_has("btf_trace_sock_send_length")?;
    btf_has("btf_trace_tcp_sendmsg_locked")
}

const PARTIAL_NOTE: &str = "netbpf tcpnagle: partial mode (fexit and kretprobe on tcp_write_xmit \
are unavailable here): no @blocked_us histogram; @nagle counts sends by the flags of their push, \
not transmit attempts; transmits the kernel starts itself (on ACKs, TSQ, the cork timer, \
uncorking) are not seen";

const EXAMPLES: &str = "\
Examples:
  tcpnagle                # until Ctrl-C
  tcpnagle -d 10 -p 181   # 10 seconds, sends of PID 181
  tcpnagle --json         # counts and histogram as JSON objects

Flags (tcp_write_xmit's nonagle): ON = Nagle applies; OFF = TCP_NODELAY; CORK = TCP_CORK or
MSG_MORE; PUSH = push now (set with TCP_NODELAY and when uncorking).
With fexit or kretprobe on tcp_write_xmit: @nagle counts transmit attempts by flags and
@blocked_us is the time from the first attempt that could send nothing to the next that sent.
Without them (partial mode): @nagle counts sends by the flags their final push used, and @unsent
counts sends after which data was still queued, unsent (held back by Nagle, cork, or the
congestion or receive window).";

#[derive(Parser, Debug)]
#[command(name = "tcpnagle", about = "Summarize TCP Nagle/cork/push flags and transmit delays", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// tcp_write_xmit's nonagle as the book names it: ON, OFF, CORK, PUSH joined with '|'.
fn flags_name(v: u32) -> String {
    if v == 0 {
        return "ON".into();
    }
    let mut parts = Vec::new();
    for (bit, name) in [(1, "OFF"), (2, "CORK"), (4, "PUSH")] {
        if v & bit != 0 {
            parts.push(name.to_string());
        }
    }
    if v & !7 != 0 {
        parts.push(format!("0x{:x}", v & !7));
    }
    parts.join("|")
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    let skel = s.load::<TcpnagleSkelBuilder>(|_, _| Ok(()))?;
    // Without a tcp_write_xmit hook, only the send tracepoints: no blocked time.
    let partial = !s.plan.uses(Hook::Fentry) && !s.plan.uses(Hook::Kprobe);

    if partial {
        eprintln!("{PARTIAL_NOTE}");
    }
    s.wait_then_report(
        "TCP nagle and xmit delays",
        libbpf_rs::skel::Skel::object(&skel),
    );

    let mut out = Output::new(
        o.common.format(),
        vec![
            Column::json("map"),
            Column::json("flags"),
            Column::json("count"),
            Column::json("mode"),
        ],
    );
    let mode = if partial { "partial" } else { "full" };
    let counted = print_counts(&mut out, &skel.maps.nagle, "nagle", mode)?;
    if counted == 0 {
        // Empty maps print nothing: say so rather than end without a word.
        let what = if partial { "send" } else { "transmit" };
        report_nothing(tool.name, &format!("no TCP {what} was counted"));
    }
    if partial {
        print_counts(&mut out, &skel.maps.unsent, "unsent", mode)?;
    } else {
        let key = 0u32.to_ne_bytes();
        if let Some(v) = skel.maps.blocked_us.lookup(&key, MapFlags::ANY)? {
            if let Some(h) = read_event::<types::hist>(&v) {
                let json = out.format() == Format::Json;
                out.separate();
                let label = [("mode", Value::Str(mode))];
                let labels: &[(&str, Value)] = if json { &label } else { &[] };
                print_log2(&mut out, "blocked_us", "us", labels, &h.slots);
            }
        }
    }
    Ok(())
}

/// Prints the non-zero counts of a nonagle-indexed array map, bpftrace style; returns their sum.
fn print_counts(
    out: &mut Output,
    map: &dyn MapCore,
    name: &str,
    mode: &str,
) -> anyhow::Result<u64> {
    let mut counts = Vec::new();
    for value in 0..NONAGLE_VALUES {
        let Some(v) = map.lookup(&value.to_ne_bytes(), MapFlags::ANY)? else {
            continue;
        };
        let n = read_event::<u64>(&v).unwrap_or(0);
        if n > 0 {
            counts.push((flags_name(value), n));
        }
    }
    // bpftrace prints the smallest count first.
    counts.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    if !counts.is_empty() {
        out.separate();
    }
    let sum = counts.iter().map(|(_, n)| n).sum();
    for (flags, n) in counts {
        if out.format() == Format::Json {
            out.row(&[
                Value::Str(name),
                Value::Str(&flags),
                Value::U64(n),
                Value::Str(mode),
            ]);
        } else {
            out.text(&format!("@{name}[{flags}]: {n}"));
        }
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::skel::SkelBuilder as _;
    use std::mem::MaybeUninit;

    /// The kprobe plan cannot attach on a kernel without kprobes, but its programs must still
    /// pass the verifier: load them (kprobe programs load anywhere; only attaching needs the PMU).
    #[test]
    fn kprobe_programs_verify() {
        let mut obj = MaybeUninit::uninit();
        let mut open = TcpnagleSkelBuilder::default().open(&mut obj).unwrap();
        open.progs.tcpnagle_fexit.set_autoload(false);
        open.progs.tcpnagle_sendmsg.set_autoload(false);
        open.progs.tcpnagle_send.set_autoload(false);
        crate::core::bpf::assert_loads(open);
    }

    #[test]
    fn flag_names() {
        use super::flags_name;
        assert_eq!(flags_name(0), "ON");
        assert_eq!(flags_name(1), "OFF");
        assert_eq!(flags_name(2), "CORK");
        assert_eq!(flags_name(3), "OFF|CORK");
        assert_eq!(flags_name(5), "OFF|PUSH");
        assert_eq!(flags_name(7), "OFF|CORK|PUSH");
        assert_eq!(flags_name(9), "OFF|0x8");
    }
}
