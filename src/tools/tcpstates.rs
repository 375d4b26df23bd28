//! tcpstates: every TCP state change, with the time spent in the previous state.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::Pod;
use crate::core::cli::{Common, TcpSessionOpts, TimeCells};
use crate::core::output::{comm_str, Column, Value};
use crate::core::sk_state;
use crate::core::table::Table;
use crate::core::tcp::state_name;
use crate::tools::{start, Tool};
use crate::tuple_of;

crate::skel!("tcpstates");

unsafe impl Pod for types::tcpstates_event {}

pub static TOOL: Tool = Tool {
    name: "tcpstates",
    aliases: &[],
    about: "TCP state changes, with the time spent in each state",
    plans: &[sk_state::STORED, sk_state::HASHED],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: sk_state::verify::<TcpstatesSkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 2,
        load: export::load,
    }),
};

const EXAMPLES: &str = "\
Examples:
  tcpstates               # every TCP state change
  tcpstates -T -w         # with wall-clock time, wide columns for IPv6
  tcpstates -L 80         # only local port 80
  tcpstates -p 181        # only sockets owned by PID 181
  tcpstates --json        # one JSON object per change

C-PID/C-COMM is the task on CPU at the change: in softirq context it is whatever task was
interrupted. The owner of the socket (connect/listen/close caller) is in --json as pid/comm.
MS is the time spent in OLDSTATE (0 for a socket first seen at this change).";

#[derive(Parser, Debug)]
#[command(name = "tcpstates", about = "Trace TCP state changes and their durations", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    sel: TcpSessionOpts,
    #[command(flatten)]
    common: Common,
}

/// One state change, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcpstates_event,
    t: Tuple,
    ccomm: String,
    comm: String,
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.sel.stamps, |r| &r.stamp)
        .col(Column::new("SKADDR", "skaddr", -16), |r| {
            Value::Hex(r.e.skaddr)
        })
        .col(Column::new("C-PID", "cpid", -6), |r| {
            Value::U64(r.e.cpid.into())
        })
        .col(Column::new("C-COMM", "ccomm", -10).truncated(), |r| {
            Value::Str(&r.ccomm)
        })
        .col(Column::json("pid"), |r| Value::U64(r.e.pid.into()))
        .col(Column::json("comm"), |r| Value::Str(&r.comm))
        .tuple(|r| &r.t, o.sel.tuple_columns())
        .col(Column::new("OLDSTATE", "oldstate", -11), |r| {
            Value::Str(state_name(r.e.oldstate))
        })
        .col(Column::sep("->", 2), |_| Value::Sep("->"))
        .col(Column::new("NEWSTATE", "newstate", -11), |r| {
            Value::Str(state_name(r.e.newstate))
        })
        .col(Column::new("MS", "ms", 9), |r| {
            Value::F64(r.e.prev_state_ns as f64 / 1e6, 3)
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.sel.apply(&mut s.filters);

    s.stream_sockets::<TcpstatesSkelBuilder, _, _>(
        |skel| [&skel.maps.events, &skel.maps.listen_owners],
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.sel.format(&o.common),
        "TCP state changes",
        |clock, e: types::tcpstates_event| Row {
            stamp: o.sel.stamps.cells(clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            ccomm: comm_str(&e.ccomm),
            comm: comm_str(&e.comm),
            e,
        },
        [
            "changes shown without MS and owner (no kernel memory for their per-socket state)",
            "changes shown without MS and owner",
        ],
    )
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: transitions counted in the kernel per (old, new) state (tcpstates.bpf.c's
/// aggregate mode: a per-CPU array, which never loses a count).
pub mod export {

    use super::*;
    use crate::core::export::{Ctx, Family, Loaded, Source, Unit};

    const SLOTS: u32 = 16; // TCP_STATE_SLOTS in tcpstates.h

    struct Transitions(libbpf_rs::MapHandle);

    impl Source for Transitions {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let counts = crate::core::maps::percpu_sums::<u32>(&self.0)?;
            let series = counts
                .into_iter()
                .filter(|&(_, n)| n > 0)
                .map(|(i, n)| {
                    let labels = vec![
                        ("from", state_name((i / SLOTS) as i32).to_string()),
                        ("to", state_name((i % SLOTS) as i32).to_string()),
                    ];
                    (labels, n)
                })
                .collect();
            Ok(vec![Family::Counter {
                name: "netbpf_tcp_state_transitions",
                help: "TCP state changes",
                unit: Unit::None,
                series,
            }])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            Ok(0)
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) = crate::core::export::load::<TcpstatesSkelBuilder>(
            ctx,
            TOOL.name,
            TOOL.plans,
            |open, plan| {
                sk_state::configure(open, plan)?;
                let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
                rodata.aggregate = true;
                Ok(())
            },
        )?;
        let transitions = libbpf_rs::MapHandle::try_from(&skel.maps.transitions)?;
        Ok(Loaded {
            source: Box::new(Transitions(transitions)),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
