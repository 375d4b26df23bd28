//! superping: ICMP and ICMPv6 echo round-trip times measured in the kernel's network stack.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::{ip, ip_version};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Family};
use crate::core::output::{comm_str, Column, Format, Value};
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};

crate::skel!("superping");

unsafe impl Pod for types::superping_event {}

pub static TOOL: Tool = Tool {
    name: "superping",
    aliases: &[],
    about: "ICMP/ICMPv6 echo round-trip time measured in the kernel stack",
    plans: &[Plan::new(
        "tp_btf",
        &[Hook::TpBtf],
        "net/net_dev_queue + net/netif_receive_skb",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<SuperpingSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  superping               # every echo reply to a ping sent from this host
  superping -4            # IPv4 only
  superping --netns /run/netns/blue
  superping --json        # with the replying address, interface and the pinging process

Run ping (or anything sending ICMP echo requests) in another terminal. The time runs from the
request being queued to the network device to the reply arriving from it: it leaves out the
time ping itself takes to be scheduled, to send and to receive, which ping's own RTT includes.
Requests and replies are matched by network namespace, echo identifier and sequence number.";

#[derive(Parser, Debug)]
#[command(name = "superping", about = "Trace ICMP echo round-trip times inside the kernel", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// One echo round trip, as printed in JSON (the table is the book's line).
struct Row {
    time: String,
    e: types::superping_event,
    ifname: String,
    comm: String,
}

fn json_table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::json("time"), |r| Value::Str(&r.time))
        .col(Column::json("ip"), |r| Value::U64(ip_version(r.e.family)))
        .col(Column::json("id"), |r| Value::U64(r.e.id.into()))
        .col(Column::json("seq"), |r| Value::U64(r.e.seq.into()))
        .col(Column::json("rtt_us"), |r| {
            Value::F64(r.e.rtt_ns as f64 / 1000.0, 3)
        })
        .col(Column::json("raddr"), |r| {
            Value::Ip(ip(r.e.family, &r.e.raddr))
        })
        .col(Column::json("ifname"), |r| Value::Str(&r.ifname))
        .col(Column::json("pid"), |r| Value::U64(r.e.pid.into()))
        .col(Column::json("comm"), |r| Value::Str(&r.comm))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();

    let skel = s.load::<SuperpingSkelBuilder>(|_, _| Ok(()))?;

    let format = o.common.format();
    let table = json_table().containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(format);
    announce("ICMP echo round trips");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::superping_event>(data) else {
            return;
        };
        let version = ip_version(e.family);
        if format != Format::Json {
            // The book's line.
            out.text(&format!(
                "IPv{version} ping, ID {} seq {}: {} us",
                e.id,
                e.seq,
                e.rtt_ns / 1000
            ));
            return;
        }
        let row = Row {
            time: clock.hms(e.ts_ns),
            ifname: comm_str(&e.ifname),
            comm: comm_str(&e.comm),
            e,
        };
        table.row(out, &row);
    })?;
    let object = libbpf_rs::skel::Skel::object(&skel);
    s.report(object);
    // Echoes that were not timed, said rather than left out silently.
    let unmatched = crate::core::bpf::bss_u64(object, "unmatched_replies").unwrap_or(0);
    crate::core::run::report_dropped(
        tool.name,
        unmatched,
        "echo replies matched no request seen (sent before tracing began, or forwarded): not timed",
    );
    let unanswered = libbpf_rs::MapCore::keys(&skel.maps.pings).count() as u64;
    crate::core::run::report_dropped(
        tool.name,
        unanswered,
        "echo requests had no reply by the end of tracing",
    );
    Ok(())
}
