//! tcpconnlat: latency of active TCP connections, from connect() sending the SYN to the
//! connection being established; one line per connection.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::{verify, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Family, PidFilter, TimeCells, Timestamps};
use crate::core::output::{comm_str, Column, Value};
use crate::core::table::{Table, TupleColumn};
use crate::core::time::Clock;
use crate::tools::{start, Tool};
use crate::tuple_of;

crate::skel!("tcpconnlat");

unsafe impl Pod for types::tcpconnlat_event {}

pub static TOOL: Tool = Tool {
    name: "tcpconnlat",
    aliases: &[],
    about: "TCP connect latency: SYN sent to established (or refused), one line per connect",
    plans: &[Plan::new(
        "tp_btf",
        &[Hook::TpBtf],
        "sock/inet_sock_set_state",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: verify::<TcpconnlatSkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 4,
        load: export::load,
    }),
};

const EXAMPLES: &str = "\
Examples:
  tcpconnlat              # every active TCP connection with its connect latency
  tcpconnlat 10           # only connections that took more than 10 ms
  tcpconnlat 0.5 -L       # more than 0.5 ms, with the local port
  tcpconnlat -t -p 181    # only PID 181, with timestamps
  tcpconnlat --json       # one JSON object per connection (latency in ms and ns)

LAT(ms) runs from connect() entering SYN_SENT (just before the SYN is sent) to the SYN-ACK
making the connection ESTABLISHED, or to the handshake's failure: RESULT is Success, or the error
(ECONNREFUSED: a reset answered the SYN, LAT(ms) is the time to it; ETIMEDOUT: the SYN retries ran
out; EHOSTUNREACH...). A connect abandoned by closing the socket is not shown.";

#[derive(Parser, Debug)]
#[command(name = "tcpconnlat", about = "Trace TCP connect latency", after_help = EXAMPLES)]
struct Opts {
    /// Only connections slower than this many milliseconds
    #[arg(value_name = "MIN_MS", value_parser = parse_min_ms)]
    min_ms: Option<f64>,
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    pid: PidFilter,
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

/// One connection, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcpconnlat_event,
    t: Tuple,
    comm: String,
    result: String,
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .task(-7, -12, |r| (r.e.pid, &r.comm))
        .tuple(|r| &r.t, TupleColumn::source_dest(o.lport, -5))
        .col(Column::new("LAT(ms)", "lat_ms", -8), |r| {
            Value::F64(r.e.lat_ns as f64 / 1e6, 2)
        })
        .col(Column::json("lat_ns"), |r| Value::U64(r.e.lat_ns))
        // A refused connect has a latency too (to the reset): the result tells them apart.
        .col(Column::new("RESULT", "result", 0), |r| {
            Value::Str(&r.result)
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    let skel = s.load::<TcpconnlatSkelBuilder>(|open, _| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.min_lat_ns = (o.min_ms.unwrap_or(0.0) * 1e6) as u64;
        Ok(())
    })?;

    let clock = Clock::start();
    s.stream_rows(
        &skel.maps.events,
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "connect latency",
        |e: types::tcpconnlat_event| Row {
            stamp: o.stamps.cells(&clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            comm: comm_str(&e.comm),
            result: crate::core::errno::result(e.result.into()),
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: connect latency histograms built in the kernel (tcpconnlat.bpf.c in
/// exporter mode, maps of common/export.bpf.h), by family; the port label is the remote port.
pub mod export {
    use anyhow::Context as _;

    use super::*;
    use crate::core::export::{
        self, family, Buckets, Ctx, ExportMaps, ExportObject as _, Family, Loaded, Scale, Source,
        Unit,
    };

    crate::export_object!(OpenTcpconnlatSkel, TcpconnlatSkel);

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
        let (skel, plan) =
            export::load::<TcpconnlatSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, _| {
                open.export_setup(ctx)?;
                // A full table of connects in progress must be a counted loss, not an LRU eviction.
                open.maps
                    .starts
                    .set_type(libbpf_rs::MapType::Hash)
                    .context("tcpconnlat: starts map")?;
                Ok(())
            })?;
        Ok(Loaded {
            source: Box::new(Latency(skel.export_maps(ctx)?)),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
