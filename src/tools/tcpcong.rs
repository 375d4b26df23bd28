//! tcpcong: the time each TCP connection spends in each congestion-control state (Open,
//! Disorder, CWR, Recovery, Loss): one line per connection as it closes, or histograms of the
//! states' periods (bcc's tcpcong).

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::{read_event, verify, Pod};
use crate::core::cli::{parse_port_list, Common, Family, Filters, Ports, TimeCells, Timestamps};
use crate::core::hist::print_log2;
use crate::core::maps;
use crate::core::output::{Column, Value};
use crate::core::table::{Table, TupleColumn};
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::{tp_btf_or_raw_tp_plans, tuple_of};

crate::skel!("tcpcong");

unsafe impl Pod for types::tcpcong_event {}
unsafe impl Pod for types::hist {}

pub static TOOL: Tool = Tool {
    name: "tcpcong",
    aliases: &[],
    about: "Time TCP connections spend in each congestion-control state, per connection",
    plans: tp_btf_or_raw_tp_plans!(
        "tcp/tcp_cong_state_set, sock/inet_sock_set_state",
        Some(has_tracepoint)
    ),
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: verify::<TcpcongSkelBuilder>,
    export: None,
};

/// enum tcp_ca_state, in order: JSON names (with _ns) and table headers in ms and us.
const STATES: [&str; 5] = ["open", "disorder", "cwr", "recovery", "loss"];
const HEADERS_MS: [&str; 5] = ["OPEN_MS", "DISORD_MS", "CWR_MS", "RECOV_MS", "LOSS_MS"];
const HEADERS_US: [&str; 5] = ["OPEN_US", "DISORD_US", "CWR_US", "RECOV_US", "LOSS_US"];
const STATE_NS: [&str; 5] = ["open_ns", "disorder_ns", "cwr_ns", "recovery_ns", "loss_ns"];

/// The tracepoint the programs hook (BTF names them on every kernel that has them).
fn has_tracepoint() -> Result<(), String> {
    crate::core::btf::require_tracepoint("tcp_cong_state_set")
}

const EXAMPLES: &str = "\
Examples:
  tcpcong                 # each TCP connection as it closes: ms in each congestion state
  tcpcong -u              # the same in microseconds
  tcpcong --dist          # histograms of the states' periods, at the end
  tcpcong -L 3000,3001    # only local ports 3000 and 3001 (-R: remote ports)
  tcpcong --json          # one JSON object per connection (times in ns too)

A connection's clock starts when it becomes ESTABLISHED (in Open) and stops when it closes;
CHANGES counts its congestion-state changes and LIFE is the sum of the five states. A
connection already established when tcpcong started is counted from its first state change
(\"whole\": false in JSON, '*' after LIFE in the table).";

#[derive(Parser, Debug)]
#[command(
    name = "tcpcong",
    about = "Time TCP connections spend in each congestion-control state",
    after_help = EXAMPLES
)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    /// Only these local ports (comma list)
    #[arg(short = 'L', long = "localport", value_parser = parse_port_list)]
    lports: Option<Ports>,
    /// Only these remote ports (comma list)
    #[arg(short = 'R', long = "remoteport", value_parser = parse_port_list)]
    rports: Option<Ports>,
    /// Times in microseconds (default: milliseconds)
    #[arg(short = 'u', long = "microseconds")]
    micros: bool,
    /// Histograms of each state's periods at the end, instead of one line per connection
    #[arg(long = "dist")]
    dist: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// One connection, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcpcong_event,
    t: Tuple,
    life: String,
}

fn table(o: &Opts) -> Table<Row> {
    let (headers, life, scale) = if o.micros {
        (HEADERS_US, "LIFE_US", 1e3)
    } else {
        (HEADERS_MS, "LIFE_MS", 1e6)
    };
    let mut t = Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .tuple(|r| &r.t, TupleColumn::local_remote(-15));
    for i in 0..STATES.len() {
        t = t
            .col(Column::table(headers[i], 10), move |r| {
                Value::F64(r.e.state_ns[i] as f64 / scale, 3)
            })
            .col(Column::json(STATE_NS[i]), move |r| {
                Value::U64(r.e.state_ns[i])
            });
    }
    t.col(Column::new("CHANGES", "changes", 7), |r| {
        Value::U64(r.e.changes.into())
    })
    .col(Column::table(life, 11), |r| Value::Str(&r.life))
    .col(Column::json("life_ns"), |r| Value::U64(r.e.life_ns))
    .col(Column::json("whole"), |r| {
        Value::Json(if r.e.whole != 0 { "true" } else { "false" })
    })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();
    s.filters.lports = Filters::ports(o.lports.as_deref().unwrap_or_default());
    s.filters.rports = Filters::ports(o.rports.as_deref().unwrap_or_default());
    let unit_ns: u64 = if o.micros { 1_000 } else { 1_000_000 };

    let skel = s.load::<TcpcongSkelBuilder>(|open, _| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        if o.dist {
            rodata.hist_unit_ns = unit_ns;
            rodata.hist_only = true;
        }
        Ok(())
    })?;

    let table = table(&o).containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    if !o.dist {
        out.header();
    }
    announce("TCP congestion-control states");
    let clock = Clock::start();
    let scale = unit_ns as f64;
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcpcong_event>(data) else {
            return;
        };
        let mark = if e.whole != 0 { "" } else { "*" };
        let row = Row {
            stamp: o.stamps.cells(&clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            life: format!("{:.3}{mark}", e.life_ns as f64 / scale),
            e,
        };
        table.row(out, &row);
    })?;
    if o.dist {
        let mut hists: Vec<(u32, types::hist)> = maps::entries(&skel.maps.hists)?;
        hists.sort_by_key(|(state, _)| *state);
        let unit = if o.micros { "us" } else { "ms" };
        for (state, h) in &hists {
            let name = STATES.get(*state as usize).copied().unwrap_or("?");
            print_log2(
                &mut out,
                if o.micros { "period_us" } else { "period_ms" },
                unit,
                &[("state", Value::Str(name))],
                &h.slots,
            );
        }
    }
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
