//! tcppktlat: how long received TCP data waits in the socket before the application reads it;
//! one line per read that found data waiting (libbpf-tools' tcppktlat).

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::{verify, Pod};
use crate::core::cli::{
    parse_pid, parse_port_list, Common, Family, Filters, PidFilter, Ports, TimeCells, Timestamps,
};
use crate::core::output::{comm_str, Column, Value};
use crate::core::table::{Table, TupleColumn};
use crate::core::time::Clock;
use crate::tools::{start, Tool};
use crate::{tp_btf_or_raw_tp_plans, tuple_of};

crate::skel!("tcppktlat");

unsafe impl Pod for types::tcppktlat_event {}

pub static TOOL: Tool = Tool {
    name: "tcppktlat",
    aliases: &[],
    about: "TCP receive latency: segment arrival to the application reading it, per read",
    plans: tp_btf_or_raw_tp_plans!(
        "tcp/tcp_probe, tcp/tcp_rcv_space_adjust, tcp/tcp_destroy_sock",
        Some(has_tracepoints)
    ),
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: verify::<TcppktlatSkelBuilder>,
    export: None,
};

/// The tracepoints the programs hook (BTF names them on every kernel that has them).
fn has_tracepoints() -> Result<(), String> {
    crate::core::btf::require_tracepoint("tcp_probe")?;
    crate::core::btf::require_tracepoint("tcp_rcv_space_adjust")
}

const EXAMPLES: &str = "\
Examples:
  tcppktlat               # every read that found TCP data waiting, with how long it waited
  tcppktlat 1000          # only waits longer than 1000 us
  tcppktlat -p 181 -T     # only PID 181, with a time column
  tcppktlat -t 182        # only thread 182
  tcppktlat -l 80 -r 443  # local port 80 and/or remote port 443 (comma lists)
  tcppktlat --json        # one JSON object per read (latency in ms and ns)

MS runs from TCP taking the oldest unread data segment (tcp_rcv_established) to the
application's next read of that socket (tcp_recvmsg). Segments arriving before that read do
not restart the clock. PID/TID/COMM are the reader's.";

#[derive(Parser, Debug)]
#[command(
    name = "tcppktlat",
    about = "Trace the time received TCP data waits for the application to read it",
    after_help = EXAMPLES
)]
struct Opts {
    /// Only waits longer than this many microseconds
    #[arg(value_name = "MIN_US", value_parser = parse_min_us)]
    min_us: Option<u64>,
    /// Include a HH:MM:SS time column
    #[arg(short = 'T', long = "time")]
    time: bool,
    /// Include a seconds-since-start column
    #[arg(long = "timestamp")]
    timestamp: bool,
    #[command(flatten)]
    pid: PidFilter,
    /// Only this thread (the reader)
    #[arg(short = 't', long = "tid", value_parser = parse_pid)]
    tid: Option<u32>,
    /// Only these local ports (comma list)
    #[arg(short = 'l', long = "lport", value_parser = parse_port_list)]
    lports: Option<Ports>,
    /// Only these remote ports (comma list)
    #[arg(short = 'r', long = "rport", value_parser = parse_port_list)]
    rports: Option<Ports>,
    /// Wide addresses (accepted as libbpf-tools spells it: addresses are never cut)
    #[arg(short = 'w', long = "wide")]
    wide: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

fn parse_min_us(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(us) if us < 1_000_000_000_000 => Ok(us),
        _ => Err(format!(
            "'{s}' is not a latency threshold in microseconds (a whole number >= 0)"
        )),
    }
}

/// One read, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcppktlat_event,
    t: Tuple,
    comm: String,
}

fn table(stamps: &Timestamps) -> Table<Row> {
    Table::<Row>::new()
        .stamps(stamps, |r| &r.stamp)
        .col(Column::new("PID", "pid", -7), |r| {
            Value::U64(r.e.pid.into())
        })
        .col(Column::new("TID", "tid", -7), |r| {
            Value::U64(r.e.tid.into())
        })
        .col(Column::new("COMM", "comm", -16).truncated(), |r| {
            Value::Str(&r.comm)
        })
        .tuple(|r| &r.t, TupleColumn::local_remote(-15))
        .col(Column::new("MS", "lat_ms", 0), |r| {
            Value::F64(r.e.lat_ns as f64 / 1e6, 3)
        })
        .col(Column::json("lat_ns"), |r| Value::U64(r.e.lat_ns))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let _ = o.wide;
    let stamps = Timestamps {
        time: o.time,
        timestamp: o.timestamp,
    };
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();
    s.filters.lports = Filters::ports(o.lports.as_deref().unwrap_or_default());
    s.filters.rports = Filters::ports(o.rports.as_deref().unwrap_or_default());

    let skel = s.load::<TcppktlatSkelBuilder>(|open, _| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.min_lat_ns = o.min_us.unwrap_or(0) * 1000;
        rodata.filter_tid = o.tid.unwrap_or(0);
        Ok(())
    })?;

    let clock = Clock::start();
    s.stream_rows(
        &skel.maps.events,
        &table(&stamps).containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "TCP receive latency",
        |e: types::tcppktlat_event| Row {
            stamp: stamps.cells(&clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            comm: comm_str(&e.comm),
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
