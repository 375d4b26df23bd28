//! tcpsynbl: TCP listen backlog as histograms by backlog limit, and each connection dropped
//! because the accept queue was full.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::{Read, Seek};
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::time::Instant;

use clap::Parser;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, RingBufferBuilder};

use crate::core::addr::{ip, ip_version};
use crate::core::bpf::{opened, read_event, LoadContext, Pod};
use crate::core::caps::{tp_btf_args, Hook, Plan};
use crate::core::cli::{Common, Family, Interval};
use crate::core::hist::print_log2;
use crate::core::output::{Column, Format, Output, Value};
use crate::core::run::DRAIN_INTERVAL;
use crate::core::time::{hms_now, Clock};
use crate::tools::{announce, start, Tool};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/tcpsynbl.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::tcpsynbl_drop {}
unsafe impl Pod for types::hist {}

pub static TOOL: Tool = Tool {
    name: "tcpsynbl",
    aliases: &[],
    about: "TCP listen backlog histograms by backlog limit, and drops at a full accept queue",
    plans: &[Plan {
        name: "tp_btf",
        needs: &[Hook::TpBtf],
        attach: "sock/inet_sock_set_state (SYN_RECV) + skb/kfree_skb (TCP_LISTEN_OVERFLOW)",
        check: None,
    }],
    run,
};

const EXAMPLES: &str = "\
Examples:
  tcpsynbl                # histograms at Ctrl-C, a line for each drop
  tcpsynbl 1 10           # histograms every second, 10 times
  tcpsynbl -T 5           # every 5 seconds, with a timestamp
  tcpsynbl --json         # drops and histograms as JSON objects

@backlog[LIMIT] is the accept queue length (connections waiting for accept()) each time a
handshake completed on a listener whose backlog limit is LIMIT. \"dropping a SYN.\" is printed when
a completed handshake is dropped because the queue is full (the kernel admits LIMIT+1). SYNs that
arrive at a full queue are dropped earlier, with no event: the ListenOverflows line counts both
kinds, from the namespace's /proc/net/netstat (--netns given as a path, or netbpf's own).";

#[derive(Parser, Debug)]
#[command(name = "tcpsynbl", about = "Show the TCP listen backlog (SYN backlog) as histograms", after_help = EXAMPLES)]
struct Opts {
    /// Print a timestamp before each interval's histograms
    #[arg(short = 'T', long = "timestamp")]
    timestamp: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    interval: Interval,
    #[command(flatten)]
    common: Common,
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();
    let mut netstat = ListenOverflows::open(o.common.netns.as_deref());

    let mut obj = MaybeUninit::uninit();
    let mut open = opened(tool.name, TcpsynblSkelBuilder::default().open(&mut obj))?;
    let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
    crate::set_filters!(&mut *rodata, s.filters);
    rodata.kfree_has_rx_sk = tp_btf_args("kfree_skb").unwrap_or(0) >= 4;
    let mut skel = open.load().or_load_failed(tool.name)?;
    skel.attach()
        .map_err(|e| crate::core::bpf::attach_failed(tool.name, s.plan.attach, e))?;

    let out = RefCell::new(Output::new(
        o.common.format(),
        vec![
            Column::new("TIME", "time", -8),
            Column::json("event"),
            Column::table("EVENT", 0),
            Column::json("ip"),
            Column::json("laddr"),
            Column::json("lport"),
            Column::json("backlog"),
            Column::json("max_backlog"),
        ],
    ));
    let clock = Clock::start();
    let mut builder = RingBufferBuilder::new();
    builder.add(&skel.maps.events, |data: &[u8]| {
        if let Some(e) = read_event::<types::tcpsynbl_drop>(data) {
            let time = clock.hms(e.ts_ns);
            out.borrow_mut().row(&[
                Value::Str(&time),
                Value::Str("drop"),
                Value::Str("dropping a SYN."),
                Value::U64(ip_version(e.family)),
                Value::Ip(ip(e.family, &e.laddr)),
                Value::U64(e.lport.into()),
                Value::U64(e.backlog.into()),
                Value::U64(e.max_backlog.into()),
            ]);
        }
        0
    })?;
    let ring = builder.build()?;
    announce("SYN backlog size");

    let every = o.interval.interval;
    let mut next = every.map(|d| Instant::now() + d);
    let mut printed = 0u64;
    loop {
        let stop = s.run.should_stop();
        let mut wait = DRAIN_INTERVAL;
        if let Some(n) = next {
            wait = wait.min(n.saturating_duration_since(Instant::now()));
        }
        if !stop {
            if let Err(e) = ring.poll(wait) {
                if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
        }
        ring.consume()?;
        let due = next.is_some_and(|n| Instant::now() >= n);
        if due || stop {
            print_histograms(&skel, &mut out.borrow_mut(), &o, &mut netstat)?;
            printed += 1;
            next = every.map(|d| Instant::now() + d);
        }
        if !out.borrow_mut().flush() || stop || o.interval.count.is_some_and(|c| printed >= c) {
            break;
        }
    }
    drop(ring);
    crate::core::run::report_lost(
        tool.name,
        skel.maps.bss_data.as_deref().map_or(0, |b| b.lost_events),
    );
    Ok(())
}

/// Prints and clears the backlog histograms, and the ListenOverflows count since the start.
fn print_histograms(
    skel: &TcpsynblSkel,
    out: &mut Output,
    o: &Opts,
    netstat: &mut Option<ListenOverflows>,
) -> anyhow::Result<()> {
    let mut hists = Vec::new();
    let keys: Vec<Vec<u8>> = skel.maps.backlog.keys().collect();
    for key in keys {
        let Some(val) = skel.maps.backlog.lookup_and_delete(&key)? else {
            continue;
        };
        if let (Some(max), Some(h)) = (read_event::<u64>(&key), read_event::<types::hist>(&val)) {
            hists.push((max, h.slots));
        }
    }
    hists.sort_by_key(|(max, _)| *max);
    let json = out.format() == Format::Json;
    let time = hms_now();
    if !json {
        out.text("");
        if o.timestamp {
            out.text(&time);
        }
        out.text("@backlog[backlog limit]: histogram of backlog size");
    }
    for (max, slots) in &hists {
        let mut labels = vec![("max_backlog", Value::U64(*max))];
        if json {
            labels.insert(0, ("time", Value::Str(&time)));
        }
        print_log2(out, "backlog", "connections", &labels, slots);
    }
    if let Some(n) = netstat.as_mut().and_then(|n| n.since_start()) {
        if json {
            out.record(&[("time", Value::Str(&time)), ("listen_overflows", Value::U64(n))]);
        } else {
            out.text(&format!(
                "ListenOverflows: {n} (SYNs and handshakes dropped at a full accept queue since start)"
            ));
        }
    }
    Ok(())
}

/// The ListenOverflows counter of a network namespace's /proc/net/netstat.
struct ListenOverflows {
    file: std::fs::File,
    start: u64,
}

impl ListenOverflows {
    /// For `--netns PATH` (or netbpf's own namespace without --netns); None for a cookie, which
    /// names no namespace file, or when the counter cannot be read.
    fn open(netns: Option<&str>) -> Option<ListenOverflows> {
        let file = match netns {
            None => std::fs::File::open("/proc/self/net/netstat").ok()?,
            Some(arg) if arg.parse::<u64>().is_ok() => return None,
            Some(path) => open_in_netns(path, "/proc/thread-self/net/netstat")?,
        };
        let mut me = ListenOverflows { file, start: 0 };
        me.start = me.read()?;
        Some(me)
    }

    fn read(&mut self) -> Option<u64> {
        let mut text = String::new();
        self.file.rewind().ok()?;
        self.file.read_to_string(&mut text).ok()?;
        listen_overflows(&text)
    }

    fn since_start(&mut self) -> Option<u64> {
        Some(self.read()?.saturating_sub(self.start))
    }
}

/// Opens `file` as seen from inside the network namespace at `netns` (a /proc/net file stays
/// bound to the namespace it was opened in). The caller's own namespace never changes.
fn open_in_netns(netns: &str, file: &'static str) -> Option<std::fs::File> {
    let ns = std::fs::File::open(netns).ok()?;
    std::thread::spawn(move || {
        // SAFETY: setns on this short-lived thread only.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return None;
        }
        std::fs::File::open(file).ok()
    })
    .join()
    .ok()?
}

/// The TcpExt ListenOverflows value of a /proc/net/netstat text.
fn listen_overflows(netstat: &str) -> Option<u64> {
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let i = names.split_whitespace().position(|n| n == "ListenOverflows")?;
        return values.split_whitespace().nth(i)?.parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn netstat_parsing() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 2 7 9\n\
                    IpExt: InNoRoutes\n\
                    IpExt: 0\n";
        assert_eq!(super::listen_overflows(text), Some(7));
        assert_eq!(super::listen_overflows("IpExt: A\nIpExt: 1\n"), None);
    }
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: the backlog histogram by backlog limit, and the handshakes dropped at a
/// full accept queue, counted in the kernel (tcpsynbl.bpf.c in exporter mode, maps of
/// common/export.bpf.h); the port label is the listener's port.
pub mod export {
    use super::*;
    use crate::exporter::sources::{Buckets, Ctx, ExportMaps, Family, Loaded, Scale, Source, Unit};

    /// 0 to 65535 connections waiting.
    const BACKLOG: Buckets = Buckets {
        scale: Scale::Integer,
        first: 0,
        last: 16,
    };

    struct Backlog {
        maps: ExportMaps,
        /// The kernel names full-queue drops (drop reason TCP_LISTEN_OVERFLOW): without it the
        /// drop counter would be a constant 0, so it is not published.
        drops: bool,
    }

    /// Whether this kernel's `enum skb_drop_reason` has TCP_LISTEN_OVERFLOW.
    fn listen_overflow_reason() -> bool {
        use libbpf_rs::btf::{types::Enum, Btf};
        let Ok(btf) = Btf::from_vmlinux() else {
            return false;
        };
        let reasons: Option<Enum> = btf.type_by_name("skb_drop_reason");
        reasons.is_some_and(|e| {
            e.iter().any(|m| {
                m.name
                    .is_some_and(|n| n == "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW")
            })
        })
    }

    impl Source for Backlog {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let (c, h) = (self.maps.counts()?, self.maps.hists()?);
            let mut out = vec![Family::Histogram {
                    name: "netbpf_tcp_listen_backlog",
                    help: "Accept queue length when a handshake completes, by the listener's backlog limit",
                    unit: Unit::None,
                    buckets: BACKLOG,
                series: self
                    .maps
                    .histogram(&h, 0, &[], |l| vec![("limit", l.to_string())]),
            }];
            if self.drops {
                out.push(Family::Counter {
                    name: "netbpf_tcp_listen_drops",
                    help: "Completed handshakes dropped because the accept queue was full",
                    unit: Unit::None,
                    series: self.maps.counter(&c, 0, &[0], |_| Vec::new()),
                });
            }
            Ok(out)
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.maps.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let plan = crate::exporter::sources::select(TOOL.name, TOOL.plans)?;
        // The programs stay attached for the exporter's whole life: leak the object storage.
        let obj = Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = opened(TOOL.name, TcpsynblSkelBuilder::default().open(obj))?;
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        crate::export_rodata!(&mut *rodata, ctx);
        rodata.kfree_has_rx_sk = tp_btf_args("kfree_skb").unwrap_or(0) >= 4;
        ExportMaps::size(ctx, &mut open.maps.export_counts, &mut open.maps.export_hists)?;
        let mut skel = open.load().or_load_failed(TOOL.name)?;
        skel.attach()
            .map_err(|e| crate::core::bpf::attach_failed(TOOL.name, plan.attach, e))?;
        let maps = ExportMaps::new(
            ctx,
            &skel.maps.export_counts,
            &skel.maps.export_hists,
            &skel.maps.export_stats,
        )?;
        Ok(Loaded {
            source: Box::new(Backlog {
                maps,
                drops: listen_overflow_reason(),
            }),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
