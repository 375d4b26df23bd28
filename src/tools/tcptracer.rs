//! tcptracer: TCP connections as they are made (connect, accept) and closed, with their owner
//! and network namespace; one line per event, for tools that keep a table of connections.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::Pod;
use crate::core::cli::{Common, Family, PidFilter, TimeCells, Timestamps};
use crate::core::output::{comm_str, Column, Value};
use crate::core::sk_state;
use crate::core::table::{
    End, Table, TupleColumn,
    TupleColumn::{Addr, Port},
};
use crate::tools::{start, Tool};
use crate::tuple_of;

crate::skel!("tcptracer");

unsafe impl Pod for types::tcptracer_event {}

pub static TOOL: Tool = Tool {
    name: "tcptracer",
    aliases: &[],
    about: "TCP connections made (connect, accept) and closed, with owner and netns",
    plans: &[sk_state::STORED, sk_state::HASHED],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: sk_state::verify::<TcptracerSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  tcptracer               # every TCP connection made or closed
  tcptracer -v            # long event names and the network namespace
  tcptracer -t -p 181     # only PID 181's connections, with timestamps
  tcptracer -4            # IPv4 only
  tcptracer --json        # one JSON object per event

T is C (connect: an active open established), A (accept: a passive open established, queued for
accept(); PID is the listening process) or X (close of a connection seen opening). Connections
open before the start are not shown, nor their closes; failed opens are not shown. PID is the
socket's owner: the connecting process, a passive connection's listener, or the process that
closed it. NETNS (-v) is the namespace's inode number, as lsns shows it.";

#[derive(Parser, Debug)]
#[command(name = "tcptracer", about = "Trace TCP connects, accepts and closes", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    pid: PidFilter,
    /// Long event names (connect, accept, close) and a NETNS column
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// Short (T column) and long names of an event type (tcptracer.h).
fn type_names(t: u32) -> (&'static str, &'static str) {
    match t {
        1 => ("C", "connect"),
        2 => ("A", "accept"),
        3 => ("X", "close"),
        _ => ("?", "unknown"),
    }
}

/// One event, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcptracer_event,
    t: Tuple,
    comm: String,
}

fn table(o: &Opts) -> Table<Row> {
    let verbose = o.verbose;
    Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .col(
            if verbose {
                Column::new("TYPE", "type", -7)
            } else {
                Column::new("T", "type", -1)
            },
            move |r| {
                let (short, long) = type_names(r.e.r#type);
                // JSON always has the long name.
                Value::Str(if verbose { long } else { short })
            },
        )
        .task(-7, -12, |r| (r.e.pid, &r.comm))
        .tuple(
            |r| &r.t,
            [
                TupleColumn::ip(true),
                Addr(End::Local, Column::new("SADDR", "saddr", -16)),
                Addr(End::Remote, Column::new("DADDR", "daddr", -16)),
                Port(End::Local, Column::new("SPORT", "sport", -6)),
                Port(End::Remote, Column::new("DPORT", "dport", -6)),
            ],
        )
        .col_if(verbose, Column::new("NETNS", "netns", 0), "netns", |r| {
            Value::U64(r.e.netns_ino.into())
        })
        .col(Column::json("netns_cookie"), |r| {
            Value::U64(r.e.netns_cookie)
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let mut o = Opts::parse_from(args);
    // JSON names events in full whatever -v says.
    o.verbose |= o.common.json;
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    s.stream_sockets::<TcptracerSkelBuilder, _, _>(
        |skel| [&skel.maps.events, &skel.maps.listen_owners],
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "TCP connects, accepts and closes",
        |clock, e: types::tcptracer_event| Row {
            stamp: o.stamps.cells(clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            comm: comm_str(&e.comm),
            e,
        },
        [
            "connections not followed (no kernel memory for their per-socket state)",
            "connections whose close was not reported",
        ],
    )
}
