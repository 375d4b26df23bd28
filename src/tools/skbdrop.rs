//! skbdrop: sk_buff drops counted by drop reason and kernel stack, then the TCP/IP counters
//! (as nstat names them) that changed during the run.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;

use clap::Parser;
use libbpf_rs::{MapCore, MapFlags};

use crate::core::bpf::Pod;
use crate::core::cli::Common;
use crate::core::drop_reason;
use crate::core::iface::{ifname_bytes, parse_ifname};
use crate::core::maps::entries;
use crate::core::output::{Format, Output, Value};
use crate::core::symbols::Symbols;
use crate::tools::{start, Tool};

crate::skel!("skbdrop");

unsafe impl Pod for types::skbdrop_key {}

pub static TOOL: Tool = Tool {
    name: "skbdrop",
    aliases: &[],
    about: "sk_buff drops by reason and kernel stack, with TCP/IP counter deltas (nstat)",
    plans: &[drop_reason::WITH_REASONS, drop_reason::WITHOUT_REASONS],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<SkbdropSkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 7,
        load: export::load,
    }),
};

const EXAMPLES: &str = "\
Examples:
  skbdrop                 # count drops until Ctrl-C, then print them and the counter deltas
  skbdrop -d 10           # for 10 seconds
  skbdrop --frames 0      # whole stacks (default: the innermost 8 frames)
  skbdrop --netns /run/netns/blue   # drops and counters of that network namespace
  skbdrop -i eth0         # only drops of packets on eth0
  skbdrop --json          # one JSON object per (reason, stack) and per counter

Reasons are the kernel's enum skb_drop_reason without the SKB_DROP_REASON_ prefix, named from the
running kernel's BTF. NOT_SPECIFIED is a plain kfree_skb() that gave no reason. Counters are read
from /proc/net/{snmp,netstat,snmp6,sctp/snmp} of the traced namespace at start and at end; only those that
changed are shown, named as nstat names them.";

#[derive(Parser, Debug)]
#[command(name = "skbdrop", about = "Count sk_buff drops by reason and kernel stack", after_help = EXAMPLES)]
struct Opts {
    /// Kernel stack frames to show per drop, innermost first (0: all)
    #[arg(short = 'f', long = "frames", value_name = "N", default_value_t = 8)]
    frames: usize,
    /// Only drops of packets whose device is this interface
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = parse_ifname)]
    interface: Option<String>,
    /// Do not report TCP/IP counter deltas
    #[arg(short = 'n', long = "no-counters")]
    no_counters: bool,
    #[command(flatten)]
    common: Common,
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    crate::core::iface::warn_missing_interface(tool.name, o.interface.as_deref(), &o.common);
    let counters_ns = if o.no_counters {
        None
    } else {
        Some(CounterSource::for_netns(
            o.common.netns.as_deref(),
            s.filters.netns,
        ))
    };

    let skel = s.load::<SkbdropSkelBuilder>(|open, plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.filter_ifname = ifname_bytes(o.interface.as_deref());
        rodata.drop_reasons = drop_reason::plan_has_reasons(plan);
        Ok(())
    })?;
    let reasons =
        drop_reason::names_for(s.plan).map_err(|e| anyhow::anyhow!("{}: {e}", tool.name))?;
    drop_reason::note_unknown(tool.name, reasons.as_ref());

    let before = match &counters_ns {
        Some(Ok(src)) => Some(src.read()?),
        Some(Err(why)) => {
            eprintln!("netbpf {}: no counter deltas: {why}", tool.name);
            None
        }
        None => None,
    };
    s.wait_then_report("sk_buff drops", libbpf_rs::skel::Skel::object(&skel));
    let after = match (&counters_ns, &before) {
        (Some(Ok(src)), Some(_)) => Some(src.read()?),
        _ => None,
    };

    let mut out = Output::new(o.common.format(), Vec::new());
    print_drops(&skel, reasons.as_ref(), o.frames, &mut out)?;
    let unknown = skel.maps.bss_data.as_deref().map_or(0, |b| b.netns_unknown);
    if unknown > 0 {
        eprintln!(
            "netbpf {}: {unknown} {} not counted: with --netns a drop is placed by its packet's \
             device or socket, and {} had neither (e.g. UDP datagrams still queued on a closing \
             socket); run without --netns to count them",
            tool.name,
            if unknown == 1 {
                "drop was"
            } else {
                "drops were"
            },
            if unknown == 1 { "it" } else { "they" },
        );
    }
    if let (Some(before), Some(after)) = (before, after) {
        print_counter_deltas(&before, &after, &mut out);
    }
    Ok(())
}

/// The addresses of stack `id` of the stacks map (none for a negative id or a missing stack).
fn stack_addresses(skel: &SkbdropSkel, id: i32) -> anyhow::Result<Vec<u64>> {
    if id < 0 {
        return Ok(Vec::new());
    }
    let Some(raw) = skel
        .maps
        .stacks
        .lookup(&(id as u32).to_ne_bytes(), MapFlags::ANY)?
    else {
        return Ok(Vec::new());
    };
    Ok(raw
        .chunks_exact(8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .collect())
}

fn print_drops(
    skel: &SkbdropSkel,
    reasons: Option<&HashMap<u32, String>>,
    frames: usize,
    out: &mut Output,
) -> anyhow::Result<()> {
    let symbols = Symbols::new();
    let mut stacks: HashMap<i32, Vec<String>> = HashMap::new();
    // Drops counted without a stack, by bpf_get_stackid's error (a negative stack id).
    let mut no_stack: HashMap<i32, u64> = HashMap::new();
    // Stacks identical in their first `frames` frames make one row, as bpftrace's kstack(N) keys.
    let mut rows: HashMap<(u32, Vec<String>), u64> = HashMap::new();
    let drops = entries::<types::skbdrop_key, u64>(&skel.maps.drops)?;
    let mut ids: Vec<i32> = drops.iter().map(|(k, _)| k.stack_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut raw = Vec::new();
    for &id in &ids {
        raw.push((id, stack_addresses(skel, id)?));
    }
    symbols.prefetch_kernel(raw.iter().flat_map(|(_, a)| a.iter().copied()));
    let raw: HashMap<i32, Vec<u64>> = raw.into_iter().collect();
    for (key, count) in drops {
        if let Entry::Vacant(slot) = stacks.entry(key.stack_id) {
            slot.insert(crate::core::drop_reason::trim_tracing_frames(
                symbols.kernel(&raw[&key.stack_id]),
            ));
        }
        let mut stack = stacks[&key.stack_id].clone();
        if stack.is_empty() {
            *no_stack.entry(key.stack_id.min(0)).or_default() += count;
            stack.push("[stack unavailable]".to_string());
        }
        if frames > 0 {
            stack.truncate(frames);
        }
        *rows.entry((key.reason, stack)).or_default() += count;
    }
    let mut rows: Vec<((u32, Vec<String>), u64)> = rows.into_iter().collect();
    // bpftrace's order: smallest count first, the biggest last (next to the prompt).
    rows.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));

    for ((reason, stack), count) in &rows {
        let name = drop_reason::name_of(reasons, *reason);
        let routine = drop_reason::routine(&name);
        if out.format() == Format::Json {
            let stack_json = serde_json::Value::from(stack.clone()).to_string();
            out.record(&[
                ("reason", Value::Str(&name)),
                ("reason_code", Value::U64((*reason).into())),
                (
                    "routine",
                    Value::Json(if routine.is_some() { "true" } else { "false" }),
                ),
                ("stack", Value::Json(&stack_json)),
                ("count", Value::U64(*count)),
            ]);
        } else {
            match routine {
                Some(why) => out.text(&format!("@[{name} (routine: {why}),")),
                None => out.text(&format!("@[{name},")),
            }
            for f in stack {
                out.text(&format!("        {f}"));
            }
            out.text(&format!("]: {count}"));
            out.text("");
        }
    }
    let mut no_stack: Vec<(i32, u64)> = no_stack.into_iter().collect();
    no_stack.sort_unstable();
    for (err, drops) in no_stack {
        eprintln!("netbpf skbdrop: {}", no_stack_sentence(err, drops));
    }
    Ok(())
}

/// Why `drops` drops were counted without their kernel stack: `id` is their stack id, negative
/// when bpf_get_stackid failed (-errno).
fn no_stack_sentence(id: i32, drops: u64) -> String {
    let why = match -id {
        libc::EEXIST => {
            "another stack already held its slot in the stack map (two stacks hashed alike: \
             the first one seen keeps the slot)"
        }
        libc::ENOMEM => "the stack map was full (4096 distinct stacks)",
        libc::EFAULT => "the kernel could not walk the stack at the drop",
        e if e <= 0 => "its stack was no longer in the stack map when read",
        _ => "the kernel could not record it",
    };
    let code = if id < 0 {
        format!(" ({})", crate::core::errno::result((-id).into()))
    } else {
        String::new()
    };
    format!(
        "{drops} {} counted without a kernel stack, shown as [stack unavailable]: {why}{code}; \
         their reasons are counted",
        if drops == 1 { "drop was" } else { "drops were" }
    )
}

fn print_counter_deltas(before: &Counters, after: &Counters, out: &mut Output) {
    if out.format() != Format::Json {
        out.text("#kernel");
    }
    for (name, delta) in counter_deltas(before, after) {
        if out.format() == Format::Json {
            out.record(&[("counter", Value::Str(name)), ("delta", Value::I64(delta))]);
        } else {
            out.text(&format!("{name:<32}{delta}"));
        }
    }
}

/// Counter values in the order the kernel lists them (snmp, snmp6, netstat), as nstat shows them.
type Counters = Vec<(String, i64)>;

/// Counters that changed, in the kernel's order. One that appears only at the end (the kernel adds
/// IcmpMsg types as they are first used) counts from 0.
fn counter_deltas<'a>(before: &Counters, after: &'a Counters) -> Vec<(&'a str, i64)> {
    let before: HashMap<&str, i64> = before.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    after
        .iter()
        .map(|(name, v)| {
            (
                name.as_str(),
                v - before.get(name.as_str()).copied().unwrap_or(0),
            )
        })
        .filter(|(_, d)| *d != 0)
        .collect()
}

/// Parses /proc/net/snmp and /proc/net/netstat: pairs of lines "Prefix: Name1 Name2 ..." and
/// "Prefix: v1 v2 ...", named PrefixName as nstat does.
fn parse_paired(text: &str, into: &mut Counters) {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks_exact(2) {
        let (Some((prefix, names)), Some((prefix2, values))) =
            (pair[0].split_once(':'), pair[1].split_once(':'))
        else {
            continue;
        };
        if prefix != prefix2 {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                into.push((format!("{prefix}{n}"), v));
            }
        }
    }
}

/// Parses /proc/net/snmp6 and /proc/net/sctp/snmp: "Name value" lines.
fn parse_flat(text: &str, into: &mut Counters) {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(n), Some(v)) = (it.next(), it.next()) {
            if let Ok(v) = v.parse::<i64>() {
                into.push((n.to_string(), v));
            }
        }
    }
}

/// Where the traced namespace's counters are read: /proc/net files are per network namespace,
/// the namespace of the task reading them. A thread enters the traced namespace to read.
struct CounterSource {
    /// None: this process's own namespace.
    netns: Option<File>,
}

impl CounterSource {
    /// `arg` is --netns as given; `cookie` its resolved cookie (0 when absent).
    fn for_netns(arg: Option<&str>, cookie: u64) -> Result<CounterSource, String> {
        let Some(arg) = arg else {
            return Ok(CounterSource { netns: None });
        };
        if arg.parse::<u64>().is_err() {
            let f = File::open(arg).map_err(|e| format!("netns '{arg}': {e}"))?;
            return Ok(CounterSource { netns: Some(f) });
        }
        crate::core::netstat::find_by_id(cookie)
            .map(|f| CounterSource { netns: Some(f) })
            .ok_or_else(|| {
                format!("no process found in the network namespace with cookie {cookie}")
            })
    }

    fn read(&self) -> anyhow::Result<Counters> {
        let fd = self.netns.as_ref().map(|f| f.as_raw_fd());
        std::thread::spawn(move || -> anyhow::Result<Counters> {
            if let Some(fd) = fd {
                // SAFETY: setns on this short-lived thread only.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    anyhow::bail!(
                        "cannot enter the network namespace to read its counters: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
            let mut counters = Vec::new();
            for (file, paired) in [
                ("snmp", true),
                ("snmp6", false),
                ("netstat", true),
                ("sctp/snmp", false),
            ] {
                // snmp6 is absent without IPv6, sctp/snmp without the sctp module.
                let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{file}"))
                else {
                    continue;
                };
                if paired {
                    parse_paired(&text, &mut counters);
                } else {
                    parse_flat(&text, &mut counters);
                }
            }
            Ok(counters)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("counter reader thread panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(c: &Counters, name: &str) -> i64 {
        c.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn snmp_pairs_are_named_like_nstat() {
        let mut c = Vec::new();
        parse_paired(
            "Ip: Forwarding DefaultTTL InReceives\nIp: 2 64 10\nUdp: InDatagrams NoPorts\nUdp: 5 3\n",
            &mut c,
        );
        assert_eq!(value(&c, "IpInReceives"), 10);
        assert_eq!(value(&c, "UdpNoPorts"), 3);
        parse_flat(
            "Ip6InReceives                   \t7\nUdp6NoPorts 2\n",
            &mut c,
        );
        assert_eq!(value(&c, "Udp6NoPorts"), 2);
    }

    #[test]
    fn deltas_keep_changes_only() {
        let c = |v: &[(&str, i64)]| -> Counters {
            v.iter().map(|(n, v)| (n.to_string(), *v)).collect()
        };
        let before = c(&[("IpInReceives", 10), ("UdpNoPorts", 3)]);
        let after = c(&[
            ("IpInReceives", 10),
            ("IcmpMsgOutType3", 5),
            ("UdpNoPorts", 8),
        ]);
        assert_eq!(
            counter_deltas(&before, &after),
            [("IcmpMsgOutType3", 5), ("UdpNoPorts", 5)]
        );
    }

    #[test]
    fn reasons_come_from_btf() {
        let Ok(names) = crate::core::drop_reason::names() else {
            return;
        };
        assert!(names.values().any(|n| n == "NO_SOCKET"), "{names:?}");
        assert!(names.values().all(|n| !n.starts_with("SKB_DROP_REASON_")));
    }
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: drops counted in the kernel by reason only, without stacks (skbdrop.bpf.c
/// in exporter mode, maps of common/export.bpf.h); reasons named from the kernel's BTF.
pub mod export {
    use super::*;
    crate::export_object!(OpenSkbdropSkel, SkbdropSkel);

    use crate::core::export::{
        self, Ctx, ExportMaps, ExportObject as _, Family, Loaded, Source, Unit,
    };

    struct Drops {
        maps: ExportMaps,
        reasons: Option<HashMap<u32, String>>,
    }

    impl Source for Drops {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let c = self.maps.counts()?;
            let name = |r: u32| vec![("reason", drop_reason::name_of(self.reasons.as_ref(), r))];
            Ok(vec![Family::Counter {
                name: "netbpf_skb_drops",
                help: "Packets (sk_buffs) the kernel dropped, by drop reason",
                unit: Unit::None,
                series: self.maps.counter(&c, 0, &[], name),
            }])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.maps.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) =
            export::load::<SkbdropSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, plan| {
                open.export_setup(ctx)?;
                let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
                rodata.drop_reasons = drop_reason::plan_has_reasons(plan);
                Ok(())
            })?;
        let reasons =
            drop_reason::names_for(plan).map_err(|e| anyhow::anyhow!("{}: {e}", TOOL.name))?;
        let maps = skel.export_maps(ctx)?;
        Ok(Loaded {
            source: Box::new(Drops { maps, reasons }),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
