//! soaccept: each accept() on an IP socket, with the peer address and port and the result.

use std::ffi::OsString;

use crate::core::addr::Tuple;
use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Format, Value};
use crate::core::table::Table;
use crate::tools::{PidOpts, Tool};
use crate::tuple_of;

crate::skel!("soaccept");

unsafe impl Pod for types::soaccept_event {}

pub static TOOL: Tool = Tool {
    name: "soaccept",
    aliases: &[],
    about: "IP socket accept() calls with the peer address, port and result",
    plans: &[Plan::new(
        "tracepoint",
        &[Hook::Tracepoint],
        "syscalls/sys_{enter,exit}_accept{,4} + fd->sock",
    )],
    cli,
    run,
    verify: crate::core::bpf::verify::<SoacceptSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  soaccept                # every accept() on an IPv4/IPv6 socket
  soaccept -p 181         # only PID 181
  soaccept --json         # one JSON object per accept(), with the local port

FAM is the address family (2 AF_INET, 10 AF_INET6). ADDRESS and PORT are the peer's, read from
the new socket; a failed accept() (e.g. EAGAIN: nothing to accept on a non-blocking socket)
shows '-' (null in JSON). RESULT is Success or the errno name. io_uring accepts are not seen.";

fn cli() -> clap::Command {
    PidOpts::command(
        "soaccept",
        "Trace IP socket accept() calls with peer and result",
        EXAMPLES,
    )
}

/// One accept(), as printed.
struct Row {
    e: types::soaccept_event,
    t: Tuple,
    comm: String,
    result: String,
    json: bool,
}

impl Row {
    /// The peer's address or port, or none when accept() failed.
    fn peer(&self, v: Value<'static>) -> Value<'static> {
        match (self.e.ret >= 0, self.json) {
            (true, _) => v,
            (false, true) => Value::Json("null"),
            (false, false) => Value::Str("-"),
        }
    }
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("PID", "pid", -6), |r| {
            Value::U64(r.e.pid.into())
        })
        .col(Column::new("PROCESS", "comm", -16), |r| Value::Str(&r.comm))
        .col(Column::new("FAM", "family", -3), |r| {
            Value::U64(r.t.family.into())
        })
        .col(Column::new("ADDRESS", "addr", -16), |r| {
            r.peer(Value::Ip(r.t.raddr))
        })
        .col(Column::new("PORT", "port", -5), |r| {
            r.peer(Value::U64(r.t.rport.into()))
        })
        .col(Column::new("RESULT", "result", 0), |r| {
            Value::Str(&r.result)
        })
        .col(Column::json("lport"), |r| Value::U64(r.t.lport.into()))
        .col(Column::json("ret"), |r| Value::I64(r.e.ret.into()))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SoacceptSkelBuilder>(|_, _| Ok(()))?;

    let json = o.common.format() == Format::Json;
    s.stream_rows(
        &skel.maps.events,
        &table().containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "IP accept()s",
        |e: types::soaccept_event| Row {
            t: tuple_of!(e.tuple),
            comm: comm_str(&e.comm),
            result: errno::result(if e.ret >= 0 { 0 } else { e.ret.into() }),
            json,
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
