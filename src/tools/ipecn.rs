//! ipecn: received IPv4 and IPv6 packets marked ECN Congestion Experienced, with their source.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::{ip, ip_version};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Family};
use crate::core::output::{comm_str, Column, Value};
use crate::core::run::report_nothing;
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};

crate::skel!("ipecn");

unsafe impl Pod for types::ipecn_event {}

pub static TOOL: Tool = Tool {
    name: "ipecn",
    aliases: &[],
    about: "Received IPv4/IPv6 packets marked ECN Congestion Experienced",
    plans: &[Plan::new("tp_btf", &[Hook::TpBtf], "net/netif_receive_skb")],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<IpecnSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  ipecn                   # every received packet marked CE, with its source address
  ipecn -6                # IPv6 only
  ipecn --netns /run/netns/blue
  ipecn --json            # with destination, protocol and interface

A packet is reported when the ECN field (the low two bits of the IPv4 TOS byte or of the IPv6
traffic class) is 3, Congestion Experienced: a router on the path marked it instead of dropping
it. Packets are seen as the device hands them to the stack (net:netif_receive_skb), so forwarded
packets count too. Only untagged IP packets are parsed (not VLAN-in-VLAN, not tunnels' inner
headers).";

#[derive(Parser, Debug)]
#[command(name = "ipecn", about = "Trace received IP packets marked ECN Congestion Experienced", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// Name of an IP protocol number, as in /etc/protocols (uppercase like the book's tools).
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        136 => "UDPLite".into(),
        n => n.to_string(),
    }
}

/// One CE-marked packet, as printed.
struct Row {
    time: String,
    e: types::ipecn_event,
    proto: String,
    ifname: String,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("TIME", "time", -8), |r| Value::Str(&r.time))
        .col(Column::table("", 0), |_| Value::Sep("ECN CE from:"))
        .col(Column::new("SADDR", "saddr", 0), |r| {
            Value::Ip(ip(r.e.family, &r.e.saddr))
        })
        .col(Column::json("daddr"), |r| {
            Value::Ip(ip(r.e.family, &r.e.daddr))
        })
        .col(Column::json("ip"), |r| Value::U64(ip_version(r.e.family)))
        .col(Column::json("proto"), |r| Value::Str(&r.proto))
        .col(Column::json("tos"), |r| Value::U64(r.e.dsfield.into()))
        .col(Column::json("ifname"), |r| Value::Str(&r.ifname))
        .col(Column::json("ifindex"), |r| Value::U64(r.e.ifindex.into()))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();

    let skel = s.load::<IpecnSkelBuilder>(|_, _| Ok(()))?;

    // The book prints no header line: each line says what it is.
    let table = table().containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    announce("ECN CE packets");
    let clock = Clock::start();
    let mut seen = 0u64;
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::ipecn_event>(data) else {
            return;
        };
        seen += 1;
        let row = Row {
            time: clock.hms(e.ts_ns),
            proto: proto_name(e.proto),
            ifname: comm_str(&e.ifname),
            e,
        };
        table.row(out, &row);
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    if seen == 0 {
        report_nothing(
            tool.name,
            "no packet marked Congestion Experienced was received",
        );
    }
    Ok(())
}
