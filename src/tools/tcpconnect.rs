//! tcpconnect: active TCP connections (connect()), one line each, or counts with -c.

use std::ffi::OsString;

use clap::Parser;
use libbpf_rs::MapCore;

use crate::core::addr::{ip, ip_version};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{parse_pid, parse_port_list, Common, Family, Filters, Ports, Timestamps};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Output, Value};
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::tuple_of;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/tcpconnect.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::tcpconnect_event {}
unsafe impl Pod for types::tcpconnect_count_key {}

pub static TOOL: Tool = Tool {
    name: "tcpconnect",
    aliases: &[],
    about: "Active TCP connections (connect()), or counts of them with -c",
    plans: &[
        Plan {
            name: "tracepoint",
            needs: &[Hook::TpBtf, Hook::Tracepoint],
            attach: "sock/inet_sock_set_state + syscalls/sys_exit_connect",
            check: None,
        },
        // Without tracefs: a non-blocking connect is shown when its handshake ends.
        Plan {
            name: "tp_btf",
            needs: &[Hook::TpBtf],
            attach: "sock/inet_sock_set_state",
            check: None,
        },
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcpconnectSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  tcpconnect              # every active TCP connection
  tcpconnect -t -U        # with timestamps (seconds since start) and UIDs
  tcpconnect -p 181       # only PID 181
  tcpconnect -P 80,443    # only to ports 80 and 443
  tcpconnect -c           # count connects per source, destination and port; print at exit
  tcpconnect --json       # one JSON object per connect, with its result

A line appears once the SYN is sent and the local port is known: for a blocking connect() when
the handshake ends, for a non-blocking one when connect() returns. Failed handshakes (refused,
timed out) are shown too; --json says how each ended (result).";

#[derive(Parser, Debug)]
#[command(name = "tcpconnect", about = "Trace active TCP connections (connect())", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    /// Only this process
    #[arg(short = 'p', long = "pid", value_parser = parse_pid)]
    pid: Option<u32>,
    /// Only these destination ports (comma list)
    #[arg(short = 'P', long = "port", value_parser = parse_port_list)]
    ports: Option<Ports>,
    #[command(flatten)]
    family: Family,
    /// Include a LPORT column
    #[arg(short = 'L', long = "lport")]
    lport: bool,
    /// Include a UID column
    #[arg(short = 'U', long = "print-uid")]
    print_uid: bool,
    /// Only this UID
    #[arg(short = 'u', long = "uid", value_parser = clap::value_parser!(u32).range(..u32::MAX as i64))]
    uid: Option<u32>,
    /// Count connects per source, destination and port; print the counts at exit
    #[arg(short = 'c', long = "count")]
    count: bool,
    #[command(flatten)]
    common: Common,
}

fn columns(o: &Opts) -> Vec<Column> {
    let mut c = o.stamps.columns();
    c.push(if o.print_uid {
        Column::new("UID", "uid", -6)
    } else {
        Column::json("uid")
    });
    c.extend([
        Column::new("PID", "pid", -6),
        Column::new("COMM", "comm", -12).truncated(),
        Column::new("IP", "ip", -2),
        Column::new("SADDR", "saddr", -16),
        if o.lport {
            Column::new("LPORT", "lport", -6)
        } else {
            Column::json("lport")
        },
        Column::new("DADDR", "daddr", -16),
        Column::new("DPORT", "dport", -6),
        Column::json("result"),
        Column::json("cgroup"),
    ]);
    c
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.tgid = o.pid.unwrap_or(0);
    s.filters.family = o.family.af();
    s.filters.rports = Filters::ports(o.ports.as_deref().unwrap_or_default());

    let filters = s.filters.clone();
    let skel = s.load::<TcpconnectSkelBuilder>(|open, plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        crate::set_filters!(&mut *rodata, filters);
        rodata.count_mode = o.count;
        rodata.filter_uid = o.uid.unwrap_or(u32::MAX);
        if !plan.needs.contains(&Hook::Tracepoint) {
            open.progs.tcpconnect_sys_exit.set_autoload(false);
        }
        Ok(())
    })?;

    if o.count {
        announce("connect()s, counting");
        s.run.wait();
        print_counts(&skel, &o)?;
        let dropped = skel.maps.bss_data.as_deref().map_or(0, |b| b.count_dropped);
        if dropped > 0 {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "netbpf tcpconnect: {dropped} connects not counted (the count map is full: at most {} \
                 distinct address/port pairs)",
                skel.maps.counts.max_entries()
            );
        }
        return Ok(());
    }

    let mut out = Output::new(o.common.format(), columns(&o));
    out.header();
    announce("connect()s");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcpconnect_event>(data) else {
            return;
        };
        let t = tuple_of!(e.tuple);
        let comm = comm_str(&e.comm);
        let result = errno::result(e.result.into());
        let stamp = o.stamps.cells(&clock, e.ts_ns);
        let mut row: Vec<Value> = stamp.values().collect();
        row.extend([
            Value::U64(e.uid.into()),
            Value::U64(e.pid.into()),
            Value::Str(&comm),
            Value::U64(ip_version(t.family)),
            Value::Ip(t.laddr),
            Value::U64(t.lport.into()),
            Value::Ip(t.raddr),
            Value::U64(t.rport.into()),
            Value::Str(&result),
            Value::U64(e.cgroup),
        ]);
        out.row(&row);
    })?;
    crate::core::run::report_missed(tool.name, libbpf_rs::skel::Skel::object(&skel));
    crate::core::run::report_lost(
        tool.name,
        skel.maps.bss_data.as_deref().map_or(0, |b| b.lost_events),
    );
    Ok(())
}

fn print_counts(skel: &TcpconnectSkel, o: &Opts) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for key in skel.maps.counts.keys() {
        let Some(k) = read_event::<types::tcpconnect_count_key>(&key) else {
            continue;
        };
        let Some(v) = skel.maps.counts.lookup(&key, libbpf_rs::MapFlags::ANY)? else {
            continue;
        };
        let n = u64::from_ne_bytes(v[..8].try_into()?);
        rows.push((ip(k.family, &k.saddr), ip(k.family, &k.daddr), k.rport, n));
    }
    rows.sort_by(|a, b| b.3.cmp(&a.3).then(a.cmp(b)));
    let mut out = Output::new(
        o.common.format(),
        vec![
            Column::new("LADDR", "laddr", -25),
            Column::new("RADDR", "raddr", -25),
            Column::new("RPORT", "rport", -20),
            Column::new("CONNECTS", "connects", -10),
        ],
    );
    out.header();
    for (l, r, port, n) in rows {
        out.row(&[
            Value::Ip(l),
            Value::Ip(r),
            Value::U64(port.into()),
            Value::U64(n),
        ]);
    }
    Ok(())
}
