//! tcpconnect: active TCP connections (connect()), one line each, or counts with -c.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;

use clap::Parser;
use libbpf_rs::MapCore;

use crate::core::addr::{ip, Tuple};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{
    parse_port_list, Common, Family, Filters, MntnsFilter, PidFilter, Ports, TimeCells, Timestamps,
};
use crate::core::errno;
use crate::core::output::{comm_str, Column, Value};
use crate::core::table::{Table, TupleColumn};
use crate::core::time::Clock;
use crate::tools::{announce, dnslat, start, Tool};
use crate::tuple_of;

crate::skel!("tcpconnect");

unsafe impl Pod for types::tcpconnect_event {}
unsafe impl Pod for types::tcpconnect_count_key {}

pub static TOOL: Tool = Tool {
    name: "tcpconnect",
    aliases: &[],
    about: "Active TCP connections (connect()), or counts of them with -c",
    plans: &[
        Plan::new(
            "tracepoint",
            &[Hook::TpBtf, Hook::Tracepoint],
            "sock/inet_sock_set_state + syscalls/sys_exit_connect",
        ),
        // Without tracefs: a non-blocking connect is shown when its handshake ends.
        Plan::new("tp_btf", &[Hook::TpBtf], "sock/inet_sock_set_state"),
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
  tcpconnect -c -s        # the same, per local (source) port too
  tcpconnect --json       # one JSON object per connect, with its result
  tcpconnect --dns        # with the name a DNS answer gave the remote address (bcc's -d)

A line appears once the SYN is sent and the local port is known: for a blocking connect() when
the handshake ends, for a non-blocking one when connect() returns. Failed handshakes are shown
too: RESULT says how each ended: Success, ECONNREFUSED (the peer answered with a reset),
ETIMEDOUT, ECONNABORTED (closed before it ended), EINPROGRESS (non-blocking, still under way
when connect() returned).";

#[derive(Parser, Debug)]
#[command(name = "tcpconnect", about = "Trace active TCP connections (connect())", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    mntns: MntnsFilter,
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
    /// The local (source) port: with -c counted per local port too (an LPORT column), else the
    /// LPORT column as -L (libbpf-tools' spelling)
    #[arg(short = 's', long = "source-port")]
    source_port: bool,
    /// A QUERY column: the name whose DNS answer (seen since the start, in the same network
    /// namespace) gave the remote address (bcc's -d; -d is the duration here)
    #[arg(long = "dns", conflicts_with = "count")]
    dns: bool,
    #[command(flatten)]
    common: Common,
}

/// One connect, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcpconnect_event,
    t: Tuple,
    comm: String,
    result: String,
    /// --dns: the name asked (empty: no answer seen gave this address).
    query: String,
}

fn table(o: &Opts) -> Table<Row> {
    let table = Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .col_if(o.print_uid, Column::new("UID", "uid", -6), "uid", |r| {
            Value::U64(r.e.uid.into())
        })
        .task(-6, -12, |r| (r.e.pid, &r.comm))
        .tuple(
            |r| &r.t,
            TupleColumn::source_dest(o.lport || o.source_port, -6),
        )
        // How the handshake ended, so a refused connect does not read like a made one.
        .col(Column::new("RESULT", "result", 0), |r| {
            Value::Str(&r.result)
        });
    // Last, as bcc's QUERY: the columns before keep their places.
    if o.dns {
        return table.col(Column::new("QUERY", "query", 0), |r| Value::Str(&r.query));
    }
    table
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    o.mntns.apply(&mut s.filters)?;
    s.filters.family = o.family.af();
    s.filters.rports = Filters::ports(o.ports.as_deref().unwrap_or_default());

    let skel = s.load::<TcpconnectSkelBuilder>(|open, plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.count_mode = o.count;
        rodata.count_lport = o.source_port;
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

    // --dns: dnslat's programs put the DNS responses they see in this tool's ring buffer, ahead
    // of the connects that follow them; the names of their A/AAAA answers, per namespace.
    let _answers = if o.dns {
        use std::os::fd::AsFd as _;
        Some(dnslat::answers::load(
            s.filters.netns,
            skel.maps.events.as_fd(),
        )?)
    } else {
        None
    };
    let mut names: HashMap<(u64, IpAddr), String> = HashMap::new();
    let table = table(&o).containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    out.header();
    announce("connect()s");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        if o.dns && data.len() == dnslat::answers::RECORD {
            for (netns, addr, name) in dnslat::answers::parse(data) {
                names.insert((netns, addr), name);
            }
            return;
        }
        let Some(e) = read_event::<types::tcpconnect_event>(data) else {
            return;
        };
        let t = tuple_of!(e.tuple);
        let query = names.get(&(e.netns, t.raddr)).cloned().unwrap_or_default();
        let row = Row {
            stamp: o.stamps.cells(&clock, e.ts_ns),
            t,
            comm: comm_str(&e.comm),
            result: errno::result(e.result.into()),
            query,
            e,
        };
        table.row(out, &row);
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

/// One line of -c: a count key and its connects (lport 0 without -s).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct CountRow {
    laddr: IpAddr,
    raddr: IpAddr,
    lport: u16,
    rport: u16,
    connects: u64,
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
        rows.push(CountRow {
            laddr: ip(k.family, &k.saddr),
            raddr: ip(k.family, &k.daddr),
            lport: k.lport,
            rport: k.rport,
            connects: n,
        });
    }
    rows.sort_by(|a, b| b.connects.cmp(&a.connects).then(a.cmp(b)));
    let mut table = Table::<CountRow>::new()
        .col(Column::new("LADDR", "laddr", -25), |r| Value::Ip(r.laddr))
        .col(Column::new("RADDR", "raddr", -25), |r| Value::Ip(r.raddr));
    // Only with -s (not even in --json: without it the key has no port); before RPORT, where
    // libbpf-tools' -c -s puts it.
    if o.source_port {
        table = table.col(Column::new("LPORT", "lport", -20), |r| {
            Value::U64(r.lport.into())
        });
    }
    let table = table
        .col(Column::new("RPORT", "rport", -20), |r| {
            Value::U64(r.rport.into())
        })
        .col(Column::new("CONNECTS", "connects", -10), |r| {
            Value::U64(r.connects)
        });
    let mut out = table.output(o.common.format());
    out.header();
    for row in &rows {
        table.row(&mut out, row);
    }
    Ok(())
}
