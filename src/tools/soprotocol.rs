//! soprotocol: connect() and accept() counts by process and transport protocol, printed at exit.

use std::ffi::OsString;

use crate::core::addr::{AF_INET, AF_INET6};
use crate::core::bpf::Pod;
use crate::core::output::{comm_str, Column, Value};
use crate::core::proto::{family_str, ipproto_name};
use crate::core::table::Table;
use crate::tools::sofamily::{print_counts, CALLS, PLAN};
use crate::tools::{PidOpts, Tool};

crate::skel!("soprotocol");

unsafe impl Pod for types::soprotocol_key {}

pub static TOOL: Tool = Tool {
    name: "soprotocol",
    aliases: &[],
    about: "connect() and accept() counts by process and transport protocol",
    plans: &[PLAN],
    cli,
    run,
    verify: crate::core::bpf::verify::<SoprotocolSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  soprotocol              # count until Ctrl-C, then print
  soprotocol -d 10        # count for 10 seconds
  soprotocol -p 181       # only PID 181
  soprotocol --json       # one JSON object per (call, process, protocol)

PROTO is the socket's protocol number (sk_protocol; MPTCP is 262), NAME its IP protocol name
(for AF_INET/AF_INET6 sockets), KPROTO the kernel's name for the implementation (TCP, TCPv6,
UDP, MPTCP, UNIX-STREAM, PING...). At the end it prints, as the book's bpftrace script does but
with accept() kept apart, @accept[COMM, PROTO, NAME, KPROTO]: COUNT and @connect[...]: COUNT,
smallest counts first (--json: also the family). connect() is counted when called, on the
connecting socket; accept() when it returns a socket, on that new socket.";

fn cli() -> clap::Command {
    PidOpts::command(
        "soprotocol",
        "Count connect()/accept() by process and transport protocol",
        EXAMPLES,
    )
}

/// One (call, process, protocol) count, as printed.
struct Row {
    call: u8,
    comm: String,
    family: u16,
    family_name: String,
    protocol: u16,
    protocol_name: String,
    kproto: String,
    count: u64,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("CALL", "call", -8), |r| {
            Value::Str(CALLS.get(r.call as usize).copied().unwrap_or("?"))
        })
        .col(Column::new("PROCESS", "comm", -16), |r| Value::Str(&r.comm))
        .col(Column::new("FAMILY", "family_name", -10), |r| {
            Value::Str(&r.family_name)
        })
        .col(Column::json("family"), |r| Value::U64(r.family.into()))
        .col(Column::new("PROTO", "protocol", 5), |r| {
            Value::U64(r.protocol.into())
        })
        .col(Column::new("NAME", "protocol_name", -8), |r| {
            Value::Str(&r.protocol_name)
        })
        .col(Column::new("KPROTO", "kproto", -12), |r| {
            Value::Str(&r.kproto)
        })
        .col(Column::new("COUNT", "count", 8), |r| Value::U64(r.count))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SoprotocolSkelBuilder>(|_, _| Ok(()))?;

    s.wait_then_report(
        "connect() and accept() protocols, counting",
        libbpf_rs::skel::Skel::object(&skel),
    );

    let rows: Vec<Row> =
        crate::core::maps::entries::<types::soprotocol_key, u64>(&skel.maps.counts)?
            .into_iter()
            .map(|(k, count)| Row {
                call: k.call,
                comm: comm_str(&k.comm),
                family: k.family,
                family_name: family_str(k.family),
                protocol: k.protocol,
                protocol_name: protocol_name(k.family, k.protocol),
                kproto: comm_str(&k.kproto),
                count,
            })
            .collect();
    // The book's bpftrace map, with accept() apart: @accept[COMM, PROTO, NAME, KPROTO]: N and
    // @connect[...].
    print_counts(
        o.common.format(),
        &table(),
        rows,
        |r| (r.call, r.count),
        |r| {
            let (comm, proto, name) = (&r.comm, r.protocol, &r.protocol_name);
            format!("{comm}, {proto}, {name}, {}", r.kproto)
        },
        |a, b| {
            (&a.comm, a.family, a.protocol, &a.kproto)
                .cmp(&(&b.comm, b.family, b.protocol, &b.kproto))
        },
    );
    Ok(())
}

/// IP protocol names apply to IP sockets only: an AF_UNIX socket's protocol 0 is not "IP".
fn protocol_name(family: u16, protocol: u16) -> String {
    match ipproto_name(protocol) {
        Some(name) if family == AF_INET || family == AF_INET6 => name.to_string(),
        _ if family == AF_INET || family == AF_INET6 => protocol.to_string(),
        _ => "-".to_string(),
    }
}
