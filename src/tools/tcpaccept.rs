//! tcpaccept: passive TCP connections (accept()), with the accepting process and the backlog.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{
    parse_port_list, Common, Family, Filters, MntnsFilter, PidFilter, Ports, TimeCells, Timestamps,
};
use crate::core::output::{comm_str, Column, Value};
use crate::core::table::{
    End, Table, TupleColumn,
    TupleColumn::{Addr, Port},
};
use crate::core::time::Clock;
use crate::tools::{start, Tool};
use crate::tuple_of;

crate::skel!("tcpaccept");

unsafe impl Pod for types::tcpaccept_event {}

pub static TOOL: Tool = Tool {
    name: "tcpaccept",
    aliases: &[],
    about: "Passive TCP connections (accept()), with the accepting process and backlog",
    // inet_csk_accept() returns every accepted TCP connection, io_uring's included; the
    // syscall tracepoints see accept(2) and accept4(2) only.
    plans: &[
        Plan::new("fexit", &[Hook::Fentry], "fexit/inet_csk_accept")
            .checked(crate::core::caps::func_ret_helpers),
        Plan::new(
            "kprobe",
            &[Hook::Kprobe],
            "kprobe+kretprobe/inet_csk_accept",
        ),
        Plan::new(
            "tracepoint",
            &[Hook::Tracepoint],
            "syscalls/sys_{enter,exit}_accept{,4} + fd->sock",
        ),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcpacceptSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  tcpaccept               # every accepted TCP connection
  tcpaccept -T            # with wall-clock time
  tcpaccept -p 181        # only PID 181
  tcpaccept -P 80,443     # only local ports 80 and 443
  tcpaccept --json        # one JSON object per accept

BL is the listen queue when accept() took the connection: queued connections (this one
included) / the listener's backlog limit.
With the tracepoint plan (kernels without fentry and kprobes), connections accepted through
io_uring do not pass through accept(2) and are not seen; `netbpf list -v` shows the plan.";

#[derive(Parser, Debug)]
#[command(name = "tcpaccept", about = "Trace passive TCP connections (accept())", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    mntns: MntnsFilter,
    /// Only these local ports (comma list)
    #[arg(short = 'P', long = "port", value_parser = parse_port_list)]
    ports: Option<Ports>,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// One accepted connection, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcpaccept_event,
    t: Tuple,
    comm: String,
    bl: String,
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .task(-7, -12, |r| (r.e.pid, &r.comm))
        .tuple(
            |r| &r.t,
            [
                TupleColumn::ip(true),
                Addr(End::Remote, Column::new("RADDR", "raddr", -16)),
                Port(End::Remote, Column::new("RPORT", "rport", -5)),
                Addr(End::Local, Column::new("LADDR", "laddr", -16)),
                Port(End::Local, Column::new("LPORT", "lport", -5)),
            ],
        )
        .col(Column::table("BL", -7), |r| Value::Str(&r.bl))
        .col(Column::json("backlog"), |r| Value::U64(r.e.backlog.into()))
        .col(Column::json("max_backlog"), |r| {
            Value::U64(r.e.max_backlog.into())
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    o.mntns.apply(&mut s.filters)?;
    s.filters.family = o.family.af();
    s.filters.lports = Filters::ports(o.ports.as_deref().unwrap_or_default());

    let skel = s.load::<TcpacceptSkelBuilder>(|_, _| Ok(()))?;

    let clock = Clock::start();
    s.stream_rows(
        &skel.maps.events,
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "accept()s",
        |e: types::tcpaccept_event| Row {
            stamp: o.stamps.cells(&clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            comm: comm_str(&e.comm),
            bl: format!("{}/{}", e.backlog, e.max_backlog),
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
