//! soaccept: each accept() on an IP socket, with the peer address and port and the result.

use std::ffi::OsString;

use clap::Parser;

use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, PidFilter};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Format, Output, Value};
use crate::tools::{announce, start, Tool};
use crate::tuple_of;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/soaccept.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::soaccept_event {}

pub static TOOL: Tool = Tool {
    name: "soaccept",
    aliases: &[],
    about: "IP socket accept() calls with the peer address, port and result",
    plans: &[Plan {
        name: "tracepoint",
        needs: &[Hook::Tracepoint],
        attach: "syscalls/sys_{enter,exit}_accept{,4} + fd->sock",
        check: None,
    }],
    cli: <Opts as clap::CommandFactory>::command,
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

#[derive(Parser, Debug)]
#[command(name = "soaccept", about = "Trace IP socket accept() calls with peer and result", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    common: Common,
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);

    let filters = s.filters.clone();
    let skel = s.load::<SoacceptSkelBuilder>(|open, _plan| {
        crate::set_filters!(
            open.maps.rodata_data.as_deref_mut().expect("rodata"),
            filters
        );
        Ok(())
    })?;

    let mut out = Output::new(
        o.common.format(),
        vec![
            Column::new("PID", "pid", -6),
            Column::new("PROCESS", "comm", -16),
            Column::new("FAM", "family", -3),
            Column::new("ADDRESS", "addr", -16),
            Column::new("PORT", "port", -5),
            Column::new("RESULT", "result", 0),
            Column::json("lport"),
            Column::json("ret"),
        ],
    );
    let none = if o.common.format() == Format::Json {
        Value::Json("null")
    } else {
        Value::Str("-")
    };
    out.header();
    announce("IP accept()s");
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::soaccept_event>(data) else {
            return;
        };
        let t = tuple_of!(e.tuple);
        let comm = comm_str(&e.comm);
        let result = errno::result(if e.ret >= 0 { 0 } else { e.ret.into() });
        let ok = e.ret >= 0;
        out.row(&[
            Value::U64(e.pid.into()),
            Value::Str(&comm),
            Value::U64(t.family.into()),
            if ok { Value::Ip(t.raddr) } else { none },
            if ok { Value::U64(t.rport.into()) } else { none },
            Value::Str(&result),
            Value::U64(t.lport.into()),
            Value::I64(e.ret.into()),
        ]);
    })?;
    crate::core::run::report_missed(tool.name, libbpf_rs::skel::Skel::object(&skel));
    crate::core::run::report_lost(
        tool.name,
        skel.maps.bss_data.as_deref().map_or(0, |b| b.lost_events),
    );
    Ok(())
}
