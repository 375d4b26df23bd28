//! tcplife: TCP sessions with their lifespan and payload bytes, one line when each closes.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::Pod;
use crate::core::cli::{Common, TcpSessionOpts, TimeCells};
use crate::core::output::{comm_str, Column, Value};
use crate::core::sk_state;
use crate::core::table::Table;
use crate::tools::{start, Tool};
use crate::tuple_of;

crate::skel!("tcplife");

unsafe impl Pod for types::tcplife_event {}

pub static TOOL: Tool = Tool {
    name: "tcplife",
    aliases: &[],
    about: "TCP sessions: lifespan and payload bytes, one line as each closes",
    plans: &[sk_state::STORED, sk_state::HASHED],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: sk_state::verify::<TcplifeSkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 1,
        load: export::load,
    }),
};

const EXAMPLES: &str = "\
Examples:
  tcplife                 # every TCP session as it closes
  tcplife -T -w           # with wall-clock time, wide columns for IPv6
  tcplife -p 181          # only sessions of PID 181
  tcplife -L 80 -D 5432   # local port 80 and remote port 5432 (both filters must match)
  tcplife -s              # comma-separated values
  tcplife --json          # one JSON object per session (exact byte counts)

TX_KB/RX_KB are payload bytes acknowledged by the peer / received, in KiB (SYN and FIN excluded).
MS is the time from SYN_SENT or SYN_RECV to CLOSE.";

#[derive(Parser, Debug)]
#[command(name = "tcplife", about = "Trace TCP sessions and summarize lifespan and bytes", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    sel: TcpSessionOpts,
    #[command(flatten)]
    common: Common,
}

/// One closed session, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcplife_event,
    t: Tuple,
    comm: String,
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.sel.stamps, |r| &r.stamp)
        .task(-7, if o.sel.wide { -16 } else { -10 }, |r| {
            (r.e.pid, &r.comm)
        })
        .tuple(|r| &r.t, o.sel.tuple_columns())
        .col(Column::table("TX_KB", 8), |r| {
            Value::F64(r.e.tx_bytes as f64 / 1024.0, 2)
        })
        .col(Column::table("RX_KB", 8), |r| {
            Value::F64(r.e.rx_bytes as f64 / 1024.0, 2)
        })
        .col(Column::json("tx_bytes"), |r| Value::U64(r.e.tx_bytes))
        .col(Column::json("rx_bytes"), |r| Value::U64(r.e.rx_bytes))
        .col(Column::new("MS", "ms", 9), |r| {
            Value::F64(r.e.span_ns as f64 / 1e6, 2)
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.sel.apply(&mut s.filters);

    s.stream_sockets::<TcplifeSkelBuilder, _, _>(
        |skel| [&skel.maps.events, &skel.maps.listen_owners],
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.sel.format(&o.common),
        "TCP sessions",
        |clock, e: types::tcplife_event| Row {
            stamp: o.sel.stamps.cells(clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            comm: comm_str(&e.comm),
            e,
        },
        [
            "sessions not tracked (no kernel memory for their per-socket state)",
            "sessions not reported",
        ],
    )
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: sessions summed in the kernel (tcplife.bpf.c in exporter mode, maps of
/// common/export.bpf.h), by family and direction; the port label is the service port.
pub mod export {

    use super::*;

    crate::export_object!(OpenTcplifeSkel, TcplifeSkel);

    use crate::core::export::{
        self, family, Buckets, Ctx, ExportMaps, ExportObject as _, Family, Labels, Loaded, Scale,
        Source, Unit,
    };

    // Metric numbers of tcplife.bpf.c.
    const OPENED: u32 = 0;
    const CLOSED: u32 = 1;
    const FAILED: u32 = 2;
    const TX_BYTES: u32 = 3;
    const RX_BYTES: u32 = 4;
    const DURATION: u32 = 0;
    /// family (bit 0) x direction (bit 1)
    const LABELS: [u32; 4] = [0, 1, 2, 3];
    /// 16 µs to 2^36 µs (19 hours).
    const LIFESPANS: Buckets = Buckets {
        scale: Scale::Micros,
        first: 4,
        last: 36,
    };

    fn labels(l: u32) -> Labels {
        let dir = if l & 2 != 0 { "passive" } else { "active" };
        vec![("family", family(l)), ("direction", dir.to_string())]
    }

    struct Sessions(ExportMaps);

    impl Source for Sessions {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let (m, c, h) = (&self.0, self.0.counts()?, self.0.hists()?);
            let counter = |name, help, unit, metric| Family::Counter {
                name,
                help,
                unit,
                series: m.counter(&c, metric, &LABELS, labels),
            };
            Ok(vec![
                counter(
                    "netbpf_tcp_connections_opened",
                    "TCP connections opened: SYN sent (active), or handshake completed on a listener (passive)",
                    Unit::None,
                    OPENED,
                ),
                counter(
                    "netbpf_tcp_connections_closed",
                    "TCP connections closed after being established",
                    Unit::None,
                    CLOSED,
                ),
                counter(
                    "netbpf_tcp_connect_failures",
                    "TCP connections closed before being established (refused, timed out, reset)",
                    Unit::None,
                    FAILED,
                ),
                counter(
                    "netbpf_tcp_connection_tx",
                    "Payload bytes sent and acknowledged, counted when a connection closes",
                    Unit::Bytes,
                    TX_BYTES,
                ),
                counter(
                    "netbpf_tcp_connection_rx",
                    "Payload bytes received, counted when a connection closes",
                    Unit::Bytes,
                    RX_BYTES,
                ),
                Family::Histogram {
                    name: "netbpf_tcp_connection_duration",
                    help: "Lifespan of closed TCP connections, from SYN to CLOSE",
                    unit: Unit::Seconds,
                    buckets: LIFESPANS,
                    series: m.histogram(&h, DURATION, &LABELS, labels),
                },
            ])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.0.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) =
            export::load::<TcplifeSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, plan| {
                sk_state::configure(open, plan)?;
                open.export_setup(ctx)?;
                Ok(())
            })?;
        let maps = skel.export_maps(ctx)?;
        Ok(Loaded {
            source: Box::new(Sessions(maps)),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
