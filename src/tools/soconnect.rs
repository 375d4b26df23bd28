//! soconnect: each connect() to an IP address, with address, port, latency and result.

use std::ffi::OsString;

use crate::core::addr::ip;
use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Value};
use crate::core::proto::ipproto_name;
use crate::core::table::Table;
use crate::tools::{PidOpts, Tool};

crate::skel!("soconnect");

unsafe impl Pod for types::soconnect_event {}

pub static TOOL: Tool = Tool {
    name: "soconnect",
    aliases: &[],
    about: "IP socket connect() calls with address, port, latency and result",
    plans: &[Plan::new(
        "tracepoint",
        &[Hook::Tracepoint],
        "syscalls/sys_{enter,exit}_connect",
    )],
    cli,
    run,
    verify: crate::core::bpf::verify::<SoconnectSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  soconnect               # every connect() to an IPv4/IPv6 address
  soconnect -p 181        # only PID 181
  soconnect --json        # one JSON object per connect(), latency in microseconds

FAM is the address family (2 AF_INET, 10 AF_INET6). LAT(us) is the time spent in connect():
for a blocking TCP connect the handshake, for a non-blocking one (EINPROGRESS) only the SYN's
dispatch. RESULT is Success or the errno name. Any IP socket counts (TCP, UDP, ...: --json
says which); connects through io_uring are not seen.";

fn cli() -> clap::Command {
    PidOpts::command(
        "soconnect",
        "Trace IP socket connect() calls with latency and result",
        EXAMPLES,
    )
}

/// One connect(), as printed.
struct Row {
    e: types::soconnect_event,
    comm: String,
    result: String,
    protocol: String,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("PID", "pid", -6), |r| {
            Value::U64(r.e.pid.into())
        })
        .col(Column::new("PROCESS", "comm", -16), |r| Value::Str(&r.comm))
        .col(Column::new("FAM", "family", -3), |r| {
            Value::U64(r.e.addr.family.into())
        })
        .col(Column::new("ADDRESS", "addr", -16), |r| {
            Value::Ip(ip(r.e.addr.family, &r.e.addr.addr))
        })
        .col(Column::new("PORT", "port", -5), |r| {
            Value::U64(r.e.addr.port.into())
        })
        .col(Column::new("LAT(us)", "lat_us", 8), |r| {
            Value::F64(r.e.lat_ns as f64 / 1000.0, 0)
        })
        .col(Column::new("RESULT", "result", 0), |r| {
            Value::Str(&r.result)
        })
        .col(Column::json("ret"), |r| Value::I64(r.e.ret.into()))
        .col(Column::json("protocol"), |r| Value::Str(&r.protocol))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SoconnectSkelBuilder>(|_, _| Ok(()))?;

    s.stream_rows(
        &skel.maps.events,
        &table().containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "IP connect()s",
        |e: types::soconnect_event| Row {
            comm: comm_str(&e.comm),
            result: errno::result(e.ret.into()),
            protocol: ipproto_name(e.protocol)
                .map_or_else(|| e.protocol.to_string(), str::to_string),
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
