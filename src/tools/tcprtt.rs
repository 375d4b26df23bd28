//! tcprtt: histograms of TCP round-trip time (the kernel's smoothed RTT), one sample per
//! segment received on an established connection.

use std::ffi::OsString;
use std::net::IpAddr;
use std::time::Duration;

use std::os::fd::{AsFd, AsRawFd};

use clap::Parser;
use libbpf_rs::{MapCore, MapFlags};

use crate::core::addr::{ip, AF_INET, AF_INET6};
use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{parse_interval, parse_port_list, Common, Family, Filters, Ports};
use crate::core::hist::{print_log2, total};
use crate::core::maps;
use crate::core::output::{Format, Output, Value};
use crate::core::time::hms_now;
use crate::tools::{announce, start, Tool};

crate::skel!("tcprtt");

unsafe impl Pod for types::tcprtt_key {}
unsafe impl Pod for types::tcprtt_hist {}

pub static TOOL: Tool = Tool {
    name: "tcprtt",
    aliases: &[],
    about: "Histograms of TCP round-trip time (smoothed RTT per received segment)",
    plans: &[Plan::new("tp_btf", &[Hook::TpBtf], "tcp/tcp_probe")],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcprttSkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 5,
        load: export::load,
    }),
};

const EXAMPLES: &str = "\
Examples:
  tcprtt                  # one RTT histogram in microseconds, printed at Ctrl-C
  tcprtt -i 1 -d 10       # a histogram every second, for 10 seconds
  tcprtt -m -T            # in milliseconds, with a time line
  tcprtt -p 80            # only connections with local port 80
  tcprtt -P 443 -A 10.0.0.1   # only connections to remote port 443 of 10.0.0.1
  tcprtt -b -e            # one histogram per local address, with the average

Each segment received on an established connection adds one sample: that connection's
smoothed RTT (srtt) at that moment, as the kernel keeps it (1/8 of each new measurement).";

#[derive(Parser, Debug)]
#[command(name = "tcprtt", about = "Summarize TCP RTT as histograms", after_help = EXAMPLES)]
struct Opts {
    /// Print a histogram every SECS seconds (default: once, at the end)
    #[arg(short = 'i', long = "interval", value_name = "SECS", value_parser = parse_interval)]
    interval: Option<Duration>,
    /// Include a HH:MM:SS line with each output
    #[arg(short = 'T', long = "timestamp")]
    timestamp: bool,
    /// Milliseconds instead of microseconds
    #[arg(short = 'm', long = "millisecond", visible_alias = "milliseconds")]
    millis: bool,
    /// Only these local ports (comma list)
    #[arg(short = 'p', long = "lport", value_parser = parse_port_list)]
    lports: Option<Ports>,
    /// Only these remote ports (comma list)
    #[arg(short = 'P', long = "rport", value_parser = parse_port_list)]
    rports: Option<Ports>,
    /// Only this local address
    #[arg(short = 'a', long = "laddr", value_parser = parse_addr)]
    laddr: Option<IpAddr>,
    /// Only this remote address
    #[arg(short = 'A', long = "raddr", value_parser = parse_addr)]
    raddr: Option<IpAddr>,
    /// One histogram per local address
    #[arg(short = 'b', long = "byladdr", conflicts_with = "byraddr")]
    byladdr: bool,
    /// One histogram per remote address
    #[arg(short = 'B', long = "byraddr")]
    byraddr: bool,
    /// Also print the average RTT and the number of samples
    #[arg(short = 'e', long = "extension")]
    extended: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

fn parse_addr(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))
}

/// An address as the BPF side compares it: family and 16 bytes (IPv4 in the first 4). An
/// IPv4-mapped IPv6 address is IPv4, as the kernel side treats it.
fn addr_bytes(a: IpAddr) -> (u16, [u8; 16]) {
    let mut raw = [0u8; 16];
    match a {
        IpAddr::V4(v4) => {
            raw[..4].copy_from_slice(&v4.octets());
            (AF_INET, raw)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => addr_bytes(IpAddr::V4(v4)),
            None => (AF_INET6, v6.octets()),
        },
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let family = o.family.af();
    for (what, a) in [("-a", o.laddr), ("-A", o.raddr)] {
        let Some(a) = a else { continue };
        if family != 0 && family != addr_bytes(a).0 {
            return Err(crate::usage!(
                "{what} {a} can never match with -{}",
                if family == AF_INET { 4 } else { 6 }
            ));
        }
    }
    if let (Some(l), Some(r)) = (o.laddr, o.raddr) {
        if addr_bytes(l).0 != addr_bytes(r).0 {
            return Err(crate::usage!(
                "-a {l} and -A {r} can never match together (one IPv4, one IPv6)"
            ));
        }
    }
    let mut s = start(tool, &o.common)?;
    s.filters.family = family;
    s.filters.lports = Filters::ports(o.lports.as_deref().unwrap_or_default());
    s.filters.rports = Filters::ports(o.rports.as_deref().unwrap_or_default());

    let skel = s.load::<TcprttSkelBuilder>(|open, _plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.in_ms = o.millis;
        rodata.key_by = if o.byladdr {
            1
        } else if o.byraddr {
            2
        } else {
            0
        };
        if let Some(a) = o.laddr {
            (rodata.filter_laddr_family, rodata.filter_laddr) = addr_bytes(a);
        }
        if let Some(a) = o.raddr {
            (rodata.filter_raddr_family, rodata.filter_raddr) = addr_bytes(a);
        }
        Ok(())
    })?;

    let mut out = Output::new(o.common.format(), Vec::new());
    announce("TCP RTT");
    match o.interval {
        Some(every) => {
            // The map the kernel writes into; the other one is idle.
            let mut live_is_a = true;
            s.run.every(every, None, || {
                let (idle, next) = if live_is_a {
                    (&skel.maps.hists_a, &skel.maps.hists_b)
                } else {
                    (&skel.maps.hists_b, &skel.maps.hists_a)
                };
                // Swapping waits for programs still writing into the old map (synchronize_rcu).
                let fd = next.as_fd().as_raw_fd() as u32;
                skel.maps.hists_live.update(
                    &0u32.to_ne_bytes(),
                    &fd.to_ne_bytes(),
                    MapFlags::ANY,
                )?;
                live_is_a = !live_is_a;
                print_hists(idle, &o, &mut out)?;
                maps::clear(idle)
            })?
        }
        None => {
            s.run.wait();
            print_hists(&skel.maps.hists_a, &o, &mut out)?;
        }
    }
    out.flush();
    // Samples not taken: runs the kernel skipped, addresses a full map had no room for (-b/-B).
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

fn print_hists(map: &dyn MapCore, o: &Opts, out: &mut Output) -> anyhow::Result<()> {
    let json = out.format() == Format::Json;
    let unit = if o.millis { "ms" } else { "us" };
    let name = if o.millis { "rtt_ms" } else { "rtt_us" };
    let mut hists: Vec<(types::tcprtt_key, types::tcprtt_hist)> = maps::entries(map)?;
    hists.sort_by_key(|(k, _)| (k.family, k.addr));
    let time = hms_now();
    if o.timestamp && !json {
        out.text(&time);
    }
    for (k, h) in &hists {
        let count = total(&h.hist.slots);
        let sum = h.total;
        let avg = if count > 0 {
            sum as f64 / count as f64
        } else {
            0.0
        };
        let addr = ip(k.family, &k.addr);
        let mut labels: Vec<(&str, Value)> = Vec::new();
        if o.timestamp && json {
            labels.push(("time", Value::Str(&time)));
        }
        if o.byladdr {
            labels.push(("laddr", Value::Ip(addr)));
        } else if o.byraddr {
            labels.push(("raddr", Value::Ip(addr)));
        }
        if json {
            labels.push(("count", Value::U64(count)));
            if o.extended {
                labels.push(("avg", Value::F64(avg, 2)));
            }
        } else if o.extended {
            out.text(&format!("avg = {avg:.2} {unit}, samples = {count}"));
        }
        print_log2(out, name, unit, &labels, &h.hist.slots);
    }
    out.flush();
    Ok(())
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: one RTT histogram built in the kernel in the tool's own map (`hists_a`,
/// under the all-zero key: no per-address keys), with the sum of the samples.
pub mod export {
    use libbpf_rs::{MapCore, MapFlags, MapHandle};

    use super::*;
    use crate::core::export::{Buckets, Ctx, Family, Loaded, Scale, Source, Unit};

    /// 1 µs to 2^24 µs (16.8 s).
    const RTTS: Buckets = Buckets {
        scale: Scale::Micros,
        first: 0,
        last: 24,
    };

    /// The tool's first histogram map (never swapped out in exporter mode).
    struct Rtt {
        hists: MapHandle,
    }

    impl Source for Rtt {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let key = [0u8; std::mem::size_of::<types::tcprtt_key>()];
            let h = self
                .hists
                .lookup(&key, MapFlags::ANY)?
                .and_then(|v| crate::core::bpf::read_event::<types::tcprtt_hist>(&v));
            let (slots, sum) = h.map_or((Vec::new(), 0), |h| (h.hist.slots.to_vec(), h.total));
            Ok(vec![Family::Histogram {
                name: "netbpf_tcp_rtt",
                help: "Smoothed RTT of TCP connections, one sample per segment received",
                unit: Unit::Seconds,
                buckets: RTTS,
                series: vec![(Vec::new(), slots, sum)],
            }])
        }

        /// One key only: its entries are never refused.
        fn lost(&self) -> anyhow::Result<u64> {
            Ok(0)
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) = crate::core::export::load::<TcprttSkelBuilder>(
            ctx,
            TOOL.name,
            TOOL.plans,
            |open, _| {
                let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
                rodata.in_ms = false;
                rodata.key_by = 0;
                Ok(())
            },
        )?;
        Ok(Loaded {
            source: Box::new(Rtt {
                hists: MapHandle::try_from(&skel.maps.hists_a)?,
            }),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
