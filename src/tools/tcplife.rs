//! tcplife: TCP sessions with their lifespan and payload bytes, one line when each closes.

use std::ffi::OsString;
use std::mem::MaybeUninit;

use clap::Parser;

use crate::core::addr::ip_version;
use crate::core::bpf::{load, read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{parse_pid, Common, Family, Filters, PortFilters, Timestamps};
use crate::core::output::{comm_str, Column, Format, Output, Value};
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::tuple_of;

mod skel {
    include!(concat!(env!("OUT_DIR"), "/tcplife.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::tcplife_event {}
unsafe impl Pod for types::tcplife_totals {}

pub static TOOL: Tool = Tool {
    name: "tcplife",
    aliases: &[],
    about: "TCP sessions: lifespan and payload bytes, one line as each closes",
    plans: &[Plan {
        name: "tp_btf",
        needs: &[Hook::TpBtf],
        attach: "sock/inet_sock_set_state",
        check: None,
    }],
    run,
};

const EXAMPLES: &str = "\
Examples:
  tcplife                 # every TCP session as it closes
  tcplife -T -w           # with wall-clock time, wide columns for IPv6
  tcplife -p 181          # only sessions of PID 181
  tcplife -L 80 -D 5432   # local port 80 and remote port 5432 (both filters must match)
  tcplife -s              # comma-separated values
  tcplife --json          # one JSON object per session (exact byte counts)

TX_KB/RX_KB are payload bytes acknowledged by the peer / received, in KiB (SYN and FIN excluded).
MS is the time from SYN_SENT or SYN_RECV to CLOSE.";

#[derive(Parser, Debug)]
#[command(name = "tcplife", about = "Trace TCP sessions and summarize lifespan and bytes", after_help = EXAMPLES)]
struct Opts {
    /// Only sessions owned by this process
    #[arg(short = 'p', long = "pid", value_parser = parse_pid)]
    pid: Option<u32>,
    #[command(flatten)]
    ports: PortFilters,
    #[command(flatten)]
    family: Family,
    /// Wide columns (fits IPv6 addresses) and an IP column
    #[arg(short = 'w', long)]
    wide: bool,
    #[command(flatten)]
    stamps: Timestamps,
    /// Comma-separated values
    #[arg(short = 's', long = "csv", conflicts_with = "json")]
    csv: bool,
    #[command(flatten)]
    common: Common,
}


fn columns(o: &Opts) -> Vec<Column> {
    let aw = if o.wide { -39 } else { -15 };
    let mut c = o.stamps.columns();
    c.push(Column::new("PID", "pid", -7));
    c.push(Column::new("COMM", "comm", if o.wide { -16 } else { -10 }).truncated());
    // bcc prints the IP column with -w and in CSV.
    c.push(if o.wide || o.csv {
        Column::new("IP", "ip", -2)
    } else {
        Column::json("ip")
    });
    c.extend([
        Column::new("LADDR", "laddr", aw),
        Column::new("LPORT", "lport", -5),
        Column::new("RADDR", "raddr", aw),
        Column::new("RPORT", "rport", -5),
        Column::table("TX_KB", 8),
        Column::table("RX_KB", 8),
        Column::json("tx_bytes"),
        Column::json("rx_bytes"),
        Column::new("MS", "ms", 9),
    ]);
    c
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.tgid = o.pid.unwrap_or(0);
    s.filters.family = o.family.af();
    o.ports.apply(&mut s.filters);

    let mut obj = MaybeUninit::uninit();
    let skel = load(tool.name, s.plan.attach, TcplifeSkelBuilder::default(), &mut obj, |open| {
        crate::set_filters!(open.maps.rodata_data.as_deref_mut().expect("rodata"), s.filters);
    })?;

    let format = if o.csv {
        Format::Csv
    } else {
        o.common.format()
    };
    let mut out = Output::new(format, columns(&o));
    out.header();
    announce("TCP sessions");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcplife_event>(data) else {
            return;
        };
        let t = tuple_of!(e.tuple);
        let comm = comm_str(&e.comm);
        let stamp = o.stamps.cells(&clock, e.ts_ns);
        let mut row: Vec<Value> = stamp.values().collect();
        row.extend([
            Value::U64(e.pid.into()),
            Value::Str(&comm),
            Value::U64(ip_version(t.family)),
            Value::Ip(t.laddr),
            Value::U64(t.lport.into()),
            Value::Ip(t.raddr),
            Value::U64(t.rport.into()),
            Value::F64(e.tx_bytes as f64 / 1024.0, 2),
            Value::F64(e.rx_bytes as f64 / 1024.0, 2),
            Value::U64(e.tx_bytes),
            Value::U64(e.rx_bytes),
            Value::F64(e.span_ns as f64 / 1e6, 2),
        ]);
        out.row(&row);
    })?;
    let bss = skel.maps.bss_data.as_deref();
    crate::core::run::report_lost(tool.name, bss.map_or(0, |b| b.lost_events));
    crate::core::run::report_dropped(
        tool.name,
        bss.map_or(0, |b| b.untracked),
        "sessions not tracked (no kernel memory for their socket storage)",
    );
    Ok(())
}

/// Exporter: sessions summed in the kernel per family.
pub fn export(filters: &Filters) -> anyhow::Result<crate::exporter::sources::Loaded> {
    use crate::exporter::sources::{counter_family, duration_histogram_family, Loaded};
    use prometheus_client::collector::Collector;

    #[derive(Debug)]
    struct Totals(libbpf_rs::MapHandle);

    impl Collector for Totals {
        fn encode(&self, mut enc: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
            let mut rows = Vec::new();
            for (idx, family) in [(0u32, "ipv4"), (1, "ipv6")] {
                let t = libbpf_rs::MapCore::lookup(&self.0, &idx.to_ne_bytes(), libbpf_rs::MapFlags::ANY)
                    .ok()
                    .flatten()
                    .and_then(|v| read_event::<types::tcplife_totals>(&v))
                    .unwrap_or_default();
                rows.push((vec![("family", family.to_string())], t));
            }
            let series = |f: fn(&types::tcplife_totals) -> u64| -> Vec<_> {
                rows.iter().map(|(l, t)| (l.clone(), f(t))).collect()
            };
            counter_family(&mut enc, "netbpf_tcp_sessions_closed", "TCP sessions closed", &series(|t| t.sessions))?;
            counter_family(&mut enc, "netbpf_tcp_session_tx_bytes", "Payload bytes sent and acknowledged by closed TCP sessions", &series(|t| t.tx_bytes))?;
            counter_family(&mut enc, "netbpf_tcp_session_rx_bytes", "Payload bytes received by closed TCP sessions", &series(|t| t.rx_bytes))?;
            let hists: Vec<_> = rows.iter().map(|(l, t)| (l.clone(), &t.span_us.slots[..], t.span_us_sum)).collect();
            duration_histogram_family(&mut enc, "netbpf_tcp_session_duration", "Lifespan of closed TCP sessions", &hists)
        }
    }

    // The exporter keeps the programs attached for its whole life: leak the object storage.
    let obj = Box::leak(Box::new(MaybeUninit::uninit()));
    let skel = load(TOOL.name, TOOL.plans[0].attach, TcplifeSkelBuilder::default(), obj, |open| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        crate::set_filters!(&mut *rodata, filters);
        rodata.aggregate = true;
    })?;
    let totals = libbpf_rs::MapHandle::try_from(&skel.maps.totals)?;
    Ok(Loaded { collector: Box::new(Totals(totals)), keepalive: Box::new(skel) })
}
