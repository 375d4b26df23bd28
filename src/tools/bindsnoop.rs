//! bindsnoop: bind() on IP sockets, with the address and port, the socket options that change
//! what bind may do, and the result; one line per call.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::ip;
use crate::core::bpf::{verify, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{
    parse_port_list, Common, Family, Filters, PidFilter, Ports, TimeCells, Timestamps,
};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Value};
use crate::core::proto::ipproto_name;
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{start, Tool};

crate::skel!("bindsnoop");

unsafe impl Pod for types::bindsnoop_event {}

pub static TOOL: Tool = Tool {
    name: "bindsnoop",
    aliases: &[],
    about: "bind() on IP sockets: address, port, protocol, socket options, result",
    plans: &[Plan::new(
        "tracepoint",
        &[Hook::Tracepoint],
        "syscalls/sys_{enter,exit}_bind + fd->sock",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: verify::<BindsnoopSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  bindsnoop               # every successful bind() of an IPv4/IPv6 socket
  bindsnoop -x            # failed binds too (EADDRINUSE, EACCES, ...)
  bindsnoop -P 80,81      # only ports 80 and 81
  bindsnoop -t -p 181     # only PID 181, with timestamps
  bindsnoop -U -u 1000    # only UID 1000, with a UID column
  bindsnoop --json        # one JSON object per bind()

ADDR is the address asked for. PORT is the port bound: the kernel's choice when port 0 was
asked (0 with IP_BIND_ADDRESS_NO_PORT, which defers it to connect()); for a failed bind, the port
asked. OPTS are the options set before the call: F IP_FREEBIND, T IP_TRANSPARENT,
N IP_BIND_ADDRESS_NO_PORT, R SO_REUSEADDR, r SO_REUSEPORT ('.' when not set). IF is the
SO_BINDTODEVICE interface index (0: none). RESULT is Success or the errno name. -P filters on
PORT. io_uring binds are not seen.";

#[derive(Parser, Debug)]
#[command(name = "bindsnoop", about = "Trace bind() calls on IP sockets", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    pid: PidFilter,
    /// Only these ports (comma list)
    #[arg(short = 'P', long = "port", value_parser = parse_port_list)]
    ports: Option<Ports>,
    /// Include failed binds (libbpf-tools' -x; bcc's -E/--errors)
    #[arg(
        short = 'x',
        long = "failed",
        visible_short_alias = 'E',
        visible_alias = "errors"
    )]
    failed: bool,
    /// Include a UID column
    #[arg(short = 'U', long = "print-uid")]
    print_uid: bool,
    /// Only this UID
    #[arg(short = 'u', long = "uid", value_parser = clap::value_parser!(u32).range(..u32::MAX as i64))]
    uid: Option<u32>,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// OPTS letters, in the order of the BIND_OPT_* bits (bindsnoop.h).
const OPT_LETTERS: [char; 5] = ['F', 'T', 'N', 'R', 'r'];

fn opts_str(opts: u16) -> String {
    OPT_LETTERS
        .iter()
        .enumerate()
        .map(|(i, &c)| if opts & (1 << i) != 0 { c } else { '.' })
        .collect()
}

/// One bind(), as printed.
struct Row {
    stamp: TimeCells,
    e: types::bindsnoop_event,
    comm: String,
    proto: String,
    opts: String,
    result: String,
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .col_if(o.print_uid, Column::new("UID", "uid", -6), "uid", |r| {
            Value::U64(r.e.uid.into())
        })
        .task(-7, -12, |r| (r.e.pid, &r.comm))
        .col(Column::new("PROT", "protocol", -5), |r| {
            Value::Str(&r.proto)
        })
        .col(Column::new("ADDR", "addr", -16), |r| {
            Value::Ip(ip(r.e.family, &r.e.addr))
        })
        .col(Column::new("PORT", "port", -5), |r| {
            Value::U64(r.e.port.into())
        })
        .col(Column::new("OPTS", "opts", -5), |r| Value::Str(&r.opts))
        .col(Column::new("IF", "if", -3), |r| {
            Value::I64(r.e.bound_dev_if.into())
        })
        .col(Column::new("RESULT", "result", 0), |r| {
            Value::Str(&r.result)
        })
        .col(Column::json("ret"), |r| Value::I64(r.e.ret.into()))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();
    s.filters.lports = Filters::ports(o.ports.as_deref().unwrap_or_default());

    let skel = s.load::<BindsnoopSkelBuilder>(|open, _| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.with_failed = o.failed;
        rodata.filter_uid = o.uid.unwrap_or(u32::MAX);
        Ok(())
    })?;

    let clock = Clock::start();
    s.stream_rows(
        &skel.maps.events,
        &table(&o).containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "IP bind()s",
        |e: types::bindsnoop_event| Row {
            stamp: o.stamps.cells(&clock, e.ts_ns),
            comm: comm_str(&e.comm),
            proto: ipproto_name(e.protocol).map_or_else(|| e.protocol.to_string(), str::to_string),
            opts: opts_str(e.opts),
            result: errno::result(e.ret.into()),
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn opts_letters() {
        assert_eq!(super::opts_str(0), ".....");
        assert_eq!(super::opts_str(1 | 4), "F.N..");
        assert_eq!(super::opts_str(8 | 16), "...Rr");
    }
}
