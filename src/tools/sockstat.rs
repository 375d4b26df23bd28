//! sockstat: socket syscalls and socket I/O per interval, counted in the kernel.

use std::ffi::OsString;

use clap::Parser;
use libbpf_rs::skel::OpenSkel as _;

use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Interval, PidFilter};
use crate::core::output::{Output, Value};
use crate::core::time::hms_now;
use crate::tools::{announce, sockmsg, start, Tool};

crate::skel!("sockstat");

pub static TOOL: Tool = Tool {
    name: "sockstat",
    aliases: &[],
    about: "Socket syscalls (accept, connect, bind, socket) and socket I/O per interval",
    plans: &[
        Plan::new(
            "tracepoint",
            &[Hook::Tracepoint],
            "syscalls/sys_enter_{accept*,connect,bind,socket*} + sock/sock_{send,recv}_length",
        )
        .checked(sockmsg::length_tracepoints),
        Plan::new(
            "fentry",
            &[Hook::Fentry, Hook::Tracepoint],
            concat!(
                "syscalls/sys_enter_{accept*,connect,bind,socket*} + ",
                crate::sockmsg_fentry_hooks!()
            ),
        )
        .checked(sockmsg::required),
        Plan::new(
            "kprobe",
            &[Hook::Kprobe, Hook::Tracepoint],
            concat!(
                "syscalls/sys_enter_{accept*,connect,bind,socket*} + ",
                crate::sockmsg_kprobe_hooks!()
            ),
        )
        .checked(sockmsg::required),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: |tool, plan| {
        crate::core::bpf::verify_with::<SockstatSkelBuilder>(tool, plan, |open, plan| {
            configure(open, plan);
            Ok(())
        })
    },
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  sockstat                # counts every second, until Ctrl-C
  sockstat 5 3            # three 5-second intervals
  sockstat -p 181         # only PID 181
  sockstat --json         # one JSON object per interval, every counter

Each interval prints the time and, in increasing order, the calls that happened (bpftrace
style): socket syscalls at entry, by the syscall's tracepoint name; socket I/O where a message
is handed to the protocol: every send/recv path (send*, recv*, write, read, splice...) counts.
The I/O counters are sock:sock_{send,recv}_length (Linux 6.3+); older kernels count the same
messages around sock_sendmsg()/sock_recvmsg() (fentry or kprobe; splice and sendfile to a socket
are missed before 6.5). INTERVAL is at least 0.1 s.
--netns matches the calling task's namespace for syscalls, the socket's for I/O.";

#[derive(Parser, Debug)]
#[command(name = "sockstat", about = "Count socket syscalls and socket I/O per interval", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    interval: Interval,
    #[command(flatten)]
    common: Common,
}

/// JSON key and syscall of each counter slot, in the order of `enum sockstat_slot`.
const SYSCALLS: [(&str, &str); 6] = [
    ("accept", "tracepoint:syscalls:sys_enter_accept"),
    ("accept4", "tracepoint:syscalls:sys_enter_accept4"),
    ("connect", "tracepoint:syscalls:sys_enter_connect"),
    ("bind", "tracepoint:syscalls:sys_enter_bind"),
    ("socket", "tracepoint:syscalls:sys_enter_socket"),
    ("socketpair", "tracepoint:syscalls:sys_enter_socketpair"),
];

/// Labels of the send and recv counters: the hook that counted them.
fn io_labels(plan: &Plan) -> [&'static str; 2] {
    if plan.uses(Hook::Fentry) {
        ["fentry:sock_sendmsg", "fentry:sock_recvmsg"]
    } else if plan.uses(Hook::Kprobe) {
        ["kprobe:sock_sendmsg", "kprobe:sock_recvmsg"]
    } else {
        [
            "tracepoint:sock:sock_send_length",
            "tracepoint:sock:sock_recv_length",
        ]
    }
}

/// The length tracepoints' programs, for the plan without function hooks.
fn configure(open: &mut OpenSockstatSkel<'static>, plan: &Plan) {
    let tracepoints = !plan.uses(Hook::Fentry) && !plan.uses(Hook::Kprobe);
    open.progs.sockstat_send_tp.set_autoload(tracepoints);
    open.progs.sockstat_recv_tp.set_autoload(tracepoints);
    sockmsg::autoload(open.open_object_mut(), plan);
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let every = o.interval.every();
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);

    let skel = s.load::<SockstatSkelBuilder>(|open, plan| {
        configure(open, plan);
        Ok(())
    })?;

    let [send_label, recv_label] = io_labels(s.plan);
    let labels: Vec<(&str, &str)> = SYSCALLS
        .iter()
        .copied()
        .chain([("send", send_label), ("recv", recv_label)])
        .collect();
    let json = o.common.json;
    let mut out = Output::new(o.common.format(), Vec::new());
    announce(&format!(
        "socket syscalls and I/O, output every {} s",
        every.as_secs_f64()
    ));
    let mut last = vec![0u64; labels.len()];
    s.run.every(every, o.interval.count, || {
        let totals = read_totals(&skel, labels.len())?;
        let delta: Vec<u64> = totals
            .iter()
            .zip(&last)
            .map(|(t, l)| t.wrapping_sub(*l))
            .collect();
        last = totals;
        let time = hms_now();
        if json {
            let mut fields: Vec<(&str, Value)> = vec![("time", Value::Str(&time))];
            fields.extend(
                labels
                    .iter()
                    .zip(&delta)
                    .map(|((key, _), n)| (*key, Value::U64(*n))),
            );
            out.record(&fields);
        } else {
            out.text(&time);
            // bpftrace prints a map's entries in increasing order of value, and only those set.
            let mut rows: Vec<(u64, &str)> = labels
                .iter()
                .zip(&delta)
                .filter(|(_, n)| **n > 0)
                .map(|((_, l), n)| (*n, *l))
                .collect();
            rows.sort();
            for (n, label) in rows {
                out.text(&format!("@[{label}]: {n}"));
            }
        }
        out.flush();
        Ok(())
    })
}

/// Running totals of every slot, summed over CPUs.
fn read_totals(skel: &SockstatSkel, slots: usize) -> anyhow::Result<Vec<u64>> {
    let mut totals = vec![0u64; slots];
    for (slot, n) in crate::core::maps::percpu_sums::<u32>(&skel.maps.counts)? {
        if let Some(t) = totals.get_mut(slot as usize) {
            *t = n;
        }
    }
    Ok(totals)
}
