//! tcpconnlat: latency of active TCP connections, from connect() sending the SYN to the
//! connection being established; one line per connection.

use std::ffi::OsString;
use std::mem::MaybeUninit;

use clap::Parser;

use crate::core::addr::ip_version;
use crate::core::bpf::{load, read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{parse_pid, Common, Family, Timestamps};
use crate::core::output::{comm_str, Column, Output, Value};
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::tuple_of;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/tcpconnlat.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::tcpconnlat_event {}

pub static TOOL: Tool = Tool {
    name: "tcpconnlat",
    aliases: &[],
    about: "TCP connect latency: SYN sent to connection established, one line per connect",
    plans: &[Plan {
        name: "tp_btf",
        needs: &[Hook::TpBtf],
        attach: "sock/inet_sock_set_state",
        check: None,
    }],
    cli: <Opts as clap::CommandFactory>::command,
    run,
};

const EXAMPLES: &str = "\
Examples:
  tcpconnlat              # every active TCP connection with its connect latency
  tcpconnlat 10           # only connections that took more than 10 ms
  tcpconnlat 0.5 -L       # more than 0.5 ms, with the local port
  tcpconnlat -t -p 181    # only PID 181, with timestamps
  tcpconnlat --json       # one JSON object per connection (latency in ms and ns)

LAT(ms) runs from connect() entering SYN_SENT (just before the SYN is sent) to the SYN-ACK
making the connection ESTABLISHED. Connections that fail are not shown.";

#[derive(Parser, Debug)]
#[command(name = "tcpconnlat", about = "Trace TCP connect latency", after_help = EXAMPLES)]
struct Opts {
    /// Only connections slower than this many milliseconds
    #[arg(value_name = "MIN_MS", value_parser = parse_min_ms)]
    min_ms: Option<f64>,
    #[command(flatten)]
    stamps: Timestamps,
    /// Only this process
    #[arg(short = 'p', long = "pid", value_parser = parse_pid)]
    pid: Option<u32>,
    /// Include a LPORT column
    #[arg(short = 'L', long = "lport")]
    lport: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

fn parse_min_ms(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(ms) if ms >= 0.0 && ms.is_finite() && ms < 1e9 => Ok(ms),
        _ => Err(format!(
            "'{s}' is not a latency threshold in milliseconds (a number >= 0)"
        )),
    }
}

fn columns(o: &Opts) -> Vec<Column> {
    let mut c = o.stamps.columns();
    c.extend([
        Column::new("PID", "pid", -7),
        Column::new("COMM", "comm", -12).truncated(),
        Column::new("IP", "ip", -2),
        Column::new("SADDR", "saddr", -16),
        if o.lport {
            Column::new("LPORT", "lport", -6)
        } else {
            Column::json("lport")
        },
        Column::new("DADDR", "daddr", -16),
        Column::new("DPORT", "dport", -5),
        Column::new("LAT(ms)", "lat_ms", 0),
        Column::json("lat_ns"),
    ]);
    c
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.tgid = o.pid.unwrap_or(0);
    s.filters.family = o.family.af();

    let mut obj = MaybeUninit::uninit();
    let skel = load(
        tool.name,
        s.plan.attach,
        TcpconnlatSkelBuilder::default(),
        &mut obj,
        |open| {
            let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
            crate::set_filters!(&mut *rodata, s.filters);
            rodata.min_lat_ns = (o.min_ms.unwrap_or(0.0) * 1e6) as u64;
        },
    )?;

    let mut out = Output::new(o.common.format(), columns(&o));
    out.header();
    announce("connect latency");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcpconnlat_event>(data) else {
            return;
        };
        let t = tuple_of!(e.tuple);
        let comm = comm_str(&e.comm);
        let stamp = o.stamps.cells(&clock, e.ts_ns);
        let mut row: Vec<Value> = stamp.values().collect();
        row.extend([
            Value::U64(e.pid.into()),
            Value::Str(&comm),
            Value::U64(ip_version(t.family)),
            Value::Ip(t.laddr),
            Value::U64(t.lport.into()),
            Value::Ip(t.raddr),
            Value::U64(t.rport.into()),
            Value::F64(e.lat_ns as f64 / 1e6, 2),
            Value::U64(e.lat_ns),
        ]);
        out.row(&row);
    })?;
    crate::core::run::report_missed(tool.name, libbpf_rs::skel::Skel::object(&skel));
    crate::core::run::report_lost(
        tool.name,
        skel.maps.bss_data.as_deref().map_or(0, |b| b.lost_events),
    );
    Ok(())
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: connect latency histograms built in the kernel (tcpconnlat.bpf.c in
/// exporter mode, maps of common/export.bpf.h), by family; the port label is the remote port.
pub mod export {
    use anyhow::Context as _;
    use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

    use super::*;
    use crate::core::bpf::{opened, LoadContext};
    use crate::exporter::sources::{
        family, Buckets, Ctx, ExportMaps, Family, Loaded, Scale, Source, Unit,
    };

    /// 8 µs to 2^27 µs (134 s: past the last SYN retry).
    const LATENCIES: Buckets = Buckets {
        scale: Scale::Micros,
        first: 3,
        last: 27,
    };

    struct Latency(ExportMaps);

    impl Source for Latency {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let h = self.0.hists()?;
            Ok(vec![Family::Histogram {
                name: "netbpf_tcp_connect_latency",
                help: "Active TCP opens: from connect() sending the SYN to ESTABLISHED",
                unit: Unit::Seconds,
                buckets: LATENCIES,
                series: self
                    .0
                    .histogram(&h, 0, &[0, 1], |l| vec![("family", family(l))]),
            }])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.0.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let plan = crate::exporter::sources::select(TOOL.name, TOOL.plans)?;
        // The programs stay attached for the exporter's whole life: leak the object storage.
        let obj = Box::leak(Box::new(MaybeUninit::uninit()));
        let mut open = opened(TOOL.name, TcpconnlatSkelBuilder::default().open(obj))?;
        crate::export_rodata!(open.maps.rodata_data.as_deref_mut().expect("rodata"), ctx);
        // A full table of connects in progress must be a counted loss, not an LRU eviction.
        open.maps
            .starts
            .set_type(libbpf_rs::MapType::Hash)
            .context("tcpconnlat: starts map")?;
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
            source: Box::new(Latency(maps)),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
