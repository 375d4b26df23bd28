//! sofamily: connect() and accept() counts by process and address family, printed at exit.

use std::ffi::OsString;

use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::output::{comm_str, Column, Format, Output, Value};
use crate::core::proto::family_str;
use crate::core::table::Table;
use crate::tools::{PidOpts, Tool};

crate::skel!("sofamily");

unsafe impl Pod for types::sofamily_key {}

pub static TOOL: Tool = Tool {
    name: "sofamily",
    aliases: &[],
    about: "connect() and accept() counts by process and address family",
    plans: &[PLAN],
    cli,
    run,
    verify: crate::core::bpf::verify::<SofamilySkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  sofamily                # count until Ctrl-C, then print
  sofamily -d 10          # count for 10 seconds
  sofamily -p 181         # only PID 181
  sofamily --json         # one JSON object per (call, process, family)

At the end it prints, as the book's bpftrace script does, @accept[COMM, FAMILY, NAME]: COUNT and
@connect[COMM, FAMILY, NAME]: COUNT, smallest counts first. connect() is counted when called,
with the family of the address it was given (failed attempts included; connect(AF_UNSPEC)
dissolves a datagram association). accept() is counted when it returns a socket, with that
socket's family. Every family Linux defines has a name.";

fn cli() -> clap::Command {
    PidOpts::command(
        "sofamily",
        "Count connect()/accept() by process and address family",
        EXAMPLES,
    )
}

/// The plan of sofamily and soprotocol (the same hooks, keyed differently).
pub(crate) const PLAN: Plan = Plan::new(
    "tracepoint",
    &[Hook::Tracepoint],
    "syscalls/sys_enter_connect + sys_exit_accept{,4} + fd->sock",
);

pub(crate) const CALLS: [&str; 2] = ["connect", "accept"];

/// One (call, process, family) count, as printed.
struct Row {
    call: u8,
    comm: String,
    family: u16,
    name: String,
    count: u64,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("CALL", "call", -8), |r| {
            Value::Str(CALLS.get(r.call as usize).copied().unwrap_or("?"))
        })
        .col(Column::new("PROCESS", "comm", -16), |r| Value::Str(&r.comm))
        .col(Column::new("FAM", "family", 3), |r| {
            Value::U64(r.family.into())
        })
        .col(Column::new("FAMILY", "family_name", -14), |r| {
            Value::Str(&r.name)
        })
        .col(Column::new("COUNT", "count", 8), |r| Value::U64(r.count))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SofamilySkelBuilder>(|_, _| Ok(()))?;

    s.wait_then_report(
        "connect() and accept() address families, counting",
        libbpf_rs::skel::Skel::object(&skel),
    );

    let rows: Vec<Row> = crate::core::maps::entries::<types::sofamily_key, u64>(&skel.maps.counts)?
        .into_iter()
        .map(|(k, count)| Row {
            call: k.call,
            comm: comm_str(&k.comm),
            family: k.family,
            name: family_str(k.family),
            count,
        })
        .collect();
    print_counts(
        o.common.format(),
        &table(),
        rows,
        |r| (r.call, r.count),
        |r| format!("{}, {}, {}", r.comm, r.family, r.name),
        |a, b| (&a.comm, a.family).cmp(&(&b.comm, b.family)),
    );
    Ok(())
}

/// Prints the counts of sofamily and soprotocol: in text the book's bpftrace maps
/// ([`print_maps`], `key` giving each count's map key), in JSON one row per count: connect
/// before accept, most frequent first, then in the order `then` gives.
pub(crate) fn print_counts<R: 'static>(
    format: Format,
    table: &Table<R>,
    mut rows: Vec<R>,
    call_count: fn(&R) -> (u8, u64),
    key: impl Fn(&R) -> String,
    then: impl Fn(&R, &R) -> std::cmp::Ordering,
) {
    let mut out = table.output(format);
    if format != Format::Json {
        let lines = rows.iter().map(|r| {
            let (call, count) = call_count(r);
            (call, count, key(r))
        });
        print_maps(&mut out, lines);
        return;
    }
    rows.sort_by(|a, b| {
        let ((call_a, n_a), (call_b, n_b)) = (call_count(a), call_count(b));
        (call_a, std::cmp::Reverse(n_a))
            .cmp(&(call_b, std::cmp::Reverse(n_b)))
            .then_with(|| then(a, b))
    });
    for row in &rows {
        table.row(&mut out, row);
    }
}

/// Prints counts as bpftrace prints its maps at exit: `@accept[KEY]: N`, then a blank line and
/// `@connect[KEY]: N` (maps by name), each map's entries from the smallest count up.
/// `entries` are (call, count, key).
pub(crate) fn print_maps(out: &mut Output, entries: impl Iterator<Item = (u8, u64, String)>) {
    let mut entries: Vec<(u8, u64, String)> = entries.collect();
    entries.sort_by(|a, b| {
        (CALLS.get(a.0 as usize), a.1, &a.2).cmp(&(CALLS.get(b.0 as usize), b.1, &b.2))
    });
    let mut last = None;
    for (call, n, key) in &entries {
        let name = CALLS.get(*call as usize).copied().unwrap_or("?");
        if last.is_some_and(|l| l != name) {
            out.text("");
        }
        last = Some(name);
        out.text(&format!("@{name}[{key}]: {n}"));
    }
}
