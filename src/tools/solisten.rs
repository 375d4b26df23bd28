//! solisten: listen() on IP sockets, with the backlog, the address and port listened on, and
//! the result; one line per call.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::Tuple;
use crate::core::bpf::{verify, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Family, PidFilter, TimeCells, Timestamps};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Value};
use crate::core::proto::ipproto_name;
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{start, Tool};
use crate::tuple_of;

crate::skel!("solisten");

unsafe impl Pod for types::solisten_event {}

pub static TOOL: Tool = Tool {
    name: "solisten",
    aliases: &[],
    about: "listen() on IP sockets: backlog, address, port, protocol, result",
    plans: &[Plan::new(
        "tracepoint",
        &[Hook::Tracepoint],
        "syscalls/sys_{enter,exit}_listen + fd->sock",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: verify::<SolistenSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  solisten                # every listen() on an IPv4/IPv6 socket
  solisten -t -p 181      # only PID 181, with timestamps
  solisten --show-netns   # with the network namespace (inode, as lsns shows it)
  solisten --json         # one JSON object per listen(), with the kernel's queue limit

PROTO is the protocol and IP version of the socket (TCPv4, TCPv6, MPTCPv4, ...). BACKLOG is the
backlog passed; --json adds max_backlog, the accept queue limit the kernel set (the backlog capped
by net.core.somaxconn; 0 when listen() failed). ADDR and PORT are where the socket listens after
the call (a socket not bound before gets its port from listen()). RESULT is Success or the errno
name (EOPNOTSUPP: not a stream socket). io_uring listens are not seen.";

#[derive(Parser, Debug)]
#[command(name = "solisten", about = "Trace listen() calls on IP sockets", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    pid: PidFilter,
    /// Include a NETNS column (the namespace's inode number)
    #[arg(long = "show-netns")]
    show_netns: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// One listen(), as printed.
struct Row {
    stamp: TimeCells,
    e: types::solisten_event,
    t: Tuple,
    comm: String,
    proto: String,
    result: String,
}

/// "TCPv4", "TCPv6": the protocol and the socket's IP version.
fn proto_str(protocol: u16, family: u16) -> String {
    let name = ipproto_name(protocol).map_or_else(|| protocol.to_string(), str::to_string);
    format!("{name}v{}", crate::core::addr::ip_version(family))
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .task(-7, -12, |r| (r.e.pid, &r.comm))
        .col_if(
            o.show_netns,
            Column::new("NETNS", "netns", -10),
            "netns",
            |r| Value::U64(r.e.netns_ino.into()),
        )
        .col(Column::new("PROTO", "protocol", -7), |r| {
            Value::Str(&r.proto)
        })
        .col(Column::new("BACKLOG", "backlog", -7), |r| {
            Value::I64(r.e.backlog.into())
        })
        .col(Column::new("ADDR", "addr", -16), |r| Value::Ip(r.t.laddr))
        .col(Column::new("PORT", "port", -5), |r| {
            Value::U64(r.t.lport.into())
        })
        .col(Column::new("RESULT", "result", 0), |r| {
            Value::Str(&r.result)
        })
        .col(Column::json("max_backlog"), |r| {
            Value::U64(r.e.max_backlog.into())
        })
        .col(Column::json("netns_cookie"), |r| {
            Value::U64(r.e.netns_cookie)
        })
        .col(Column::json("ret"), |r| Value::I64(r.e.ret.into()))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    let skel = s.load::<SolistenSkelBuilder>(|_, _| Ok(()))?;

    let clock = Clock::start();
    s.stream_rows(
        &skel.maps.events,
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "IP listen()s",
        |e: types::solisten_event| {
            let t = tuple_of!(e.tuple);
            Row {
                stamp: o.stamps.cells(&clock, e.ts_ns),
                comm: comm_str(&e.comm),
                proto: proto_str(e.protocol, t.family),
                result: errno::result(e.ret.into()),
                t,
                e,
            }
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
