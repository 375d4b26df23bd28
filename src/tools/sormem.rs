//! sormem: socket receive-buffer usage and limit sampled before each read (histograms at exit),
//! and one line per receive-buffer overflow.

use std::ffi::OsString;

use crate::core::addr::{endpoint, AF_INET, AF_INET6};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::hist::print_log2;
use crate::core::output::{comm_str, Format, Output, Value};
use crate::core::table::Owners;
use crate::core::time::Clock;
use crate::tools::{announce, PidOpts, Tool};
use crate::tuple_of;

crate::skel!("sormem");

unsafe impl Pod for types::sormem_event {}
unsafe impl Pod for types::hist {}

// Mirrors sormem.h.
const HIST_RMEM_ALLOC: u32 = 0;
const HIST_RMEM_LIMIT: u32 = 1;
const RCVQUEUE_FULL: u32 = 1;
const EXCEED_BUF_LIMIT: u32 = 2;
const UDP_FAIL_QUEUE: u32 = 3;

pub static TOOL: Tool = Tool {
    name: "sormem",
    aliases: &[],
    about: "Socket receive-buffer usage and limit before reads (histograms), and overflows",
    plans: &[
        Plan::new(
            "fentry",
            &[Hook::Fentry, Hook::TpBtf],
            "fentry sock_recvmsg, ____sys_recvmsg + tp_btf sock/sock_rcvqueue_full, \
                     sock/sock_exceed_buf_limit, udp/udp_fail_queue_rcv_skb + fexit \
                     __udp_enqueue_schedule_skb (IPv6)",
        )
        .checked(sock_recvmsg),
        Plan::new(
            "kprobe",
            &[Hook::Kprobe, Hook::TpBtf],
            "kprobe sock_recvmsg, ____sys_recvmsg + tp_btf sock/sock_rcvqueue_full, \
                     sock/sock_exceed_buf_limit, udp/udp_fail_queue_rcv_skb + kretprobe \
                     __udp_enqueue_schedule_skb (IPv6)",
        )
        .checked(sock_recvmsg),
        Plan::new(
            "tracepoint",
            &[Hook::Tracepoint, Hook::TpBtf],
            "syscalls/sys_enter_{read,readv,recvfrom,recvmsg,recvmmsg} + fd->sock; \
                     tp_btf sock/sock_rcvqueue_full, sock/sock_exceed_buf_limit, \
                     udp/udp_fail_queue_rcv_skb",
        ),
    ],
    cli,
    run,
    verify: |tool, plan| {
        crate::core::bpf::verify_with::<SormemSkelBuilder>(tool, plan, |open, plan| {
            configure(open, plan);
            Ok(())
        })
    },
    export: None,
};

fn sock_recvmsg() -> Result<(), String> {
    crate::core::btf::require_func("sock_recvmsg")
}

fn func(name: &str) -> bool {
    crate::core::btf::require_func(name).is_ok()
}

const EXAMPLES: &str = "\
Examples:
  sormem                  # overflow events as they happen; histograms at Ctrl-C
  sormem -d 10            # for 10 seconds
  sormem -p 181           # only reads of PID 181 and overflows of its sockets
  sormem --json           # one JSON object per event and per histogram

@rmem_alloc is the bytes queued on a socket for reading (sk_rmem_alloc, with per-packet
overhead) just before a read; @rmem_limit is the socket's receive buffer limit (sk_rcvbuf) at that
moment. Event lines: sock:sock_rcvqueue_full (a packet dropped: the queue was at its limit; raw,
ICMP and other sockets that queue through sock_queue_rcv_skb), sock:sock_exceed_buf_limit (the
protocol's memory limit, tcp_mem/udp_mem, was hit), udp:udp_fail_queue_rcv_skb (a UDP datagram
dropped; rc -12 ENOMEM means the receive buffer was full).
With -p, overflows count as the process's when they happen on a socket it has read from during
the run, or while it was running.";

fn cli() -> clap::Command {
    PidOpts::command(
        "sormem",
        "Socket receive-buffer usage before reads, and receive overflows",
        EXAMPLES,
    )
}

/// Leaves out the programs on functions older kernels may lack: recvmmsg's no-LSM path is 5.5+
/// (before, every message went through sock_recvmsg); without __udp_enqueue_schedule_skb, IPv6
/// UDP drops come from the tracepoint where the kernel fires it (6.4+).
fn configure(open: &mut OpenSormemSkel<'static>, plan: &Plan) {
    let mmsg = func("____sys_recvmsg");
    let udp6 =
        (plan.uses(Hook::Fentry) || plan.uses(Hook::Kprobe)) && func("__udp_enqueue_schedule_skb");
    open.maps
        .rodata_data
        .as_deref_mut()
        .expect("rodata")
        .udp6_drops_by_return = udp6;
    let p = &mut open.progs;
    if !mmsg {
        p.sormem_fentry_mmsg.set_autoload(false);
        p.sormem_kprobe_mmsg.set_autoload(false);
    }
    if !udp6 {
        p.sormem_fexit_udp_enqueue.set_autoload(false);
        p.sormem_kprobe_udp_enqueue.set_autoload(false);
        p.sormem_kretprobe_udp_enqueue.set_autoload(false);
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SormemSkelBuilder>(|open, plan| {
        configure(open, plan);
        Ok(())
    })?;

    let mut out = Output::new(o.common.format(), Vec::new());
    let owners = Owners::new(&o.common);
    announce("socket receive buffers");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        if let Some(e) = read_event::<types::sormem_event>(data) {
            print_event(out, &clock, &owners, &e);
        }
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));

    let hists: Vec<(u32, types::hist)> = crate::core::maps::entries(&skel.maps.hists)?;
    for (key, name) in [
        (HIST_RMEM_ALLOC, "rmem_alloc"),
        (HIST_RMEM_LIMIT, "rmem_limit"),
    ] {
        if let Some((_, h)) = hists.iter().find(|(k, _)| *k == key) {
            print_log2(&mut out, name, "bytes", &[], &h.slots);
        }
    }
    Ok(())
}

fn print_event(out: &mut Output, clock: &Clock, owners: &Owners, e: &types::sormem_event) {
    let owner = owners.lookup(e.cgroup);
    let (name, text) = match e.kind {
        RCVQUEUE_FULL => (
            "sock:sock_rcvqueue_full",
            format!(
                "rmem_alloc {} > rcvbuf {}, skb size {}",
                e.rmem_alloc, e.rcvbuf, e.truesize
            ),
        ),
        EXCEED_BUF_LIMIT => (
            "sock:sock_exceed_buf_limit",
            format!("rmem_alloc {}, allocated {}", e.rmem_alloc, e.allocated),
        ),
        UDP_FAIL_QUEUE => (
            "udp:udp_fail_queue_rcv_skb",
            format!(
                "rmem_alloc {}, rcvbuf {}, rc {}",
                e.rmem_alloc, e.rcvbuf, e.rc
            ),
        ),
        _ => return,
    };
    let comm = comm_str(&e.comm);
    let proto = comm_str(&e.proto);
    let t = tuple_of!(e.tuple);
    if out.format() != Format::Json {
        // The book's line, then which socket: protocol, local end, and the peer if connected.
        let mut line = format!("{name} {text} on {proto}");
        if t.family == AF_INET || t.family == AF_INET6 {
            line += &format!(" {}", endpoint(t.laddr, t.lport));
            if t.rport != 0 {
                line += &format!(" from {}", endpoint(t.raddr, t.rport));
            }
        }
        if let Some(c) = owners.text(e.cgroup, owner.as_ref()) {
            line += &format!(", {c}");
        }
        out.text(&line);
        return;
    }
    let mut fields = vec![
        ("event", Value::Str(name)),
        ("ts", Value::F64(clock.secs(e.ts_ns), 6)),
        ("protocol", Value::Str(&proto)),
    ];
    if t.family == AF_INET || t.family == AF_INET6 {
        fields.extend([
            ("laddr", Value::Ip(t.laddr)),
            ("lport", Value::U64(t.lport.into())),
            ("raddr", Value::Ip(t.raddr)),
            ("rport", Value::U64(t.rport.into())),
        ]);
    }
    fields.extend([
        ("rmem_alloc", Value::I64(e.rmem_alloc.into())),
        ("rcvbuf", Value::I64(e.rcvbuf.into())),
    ]);
    let kind = if e.mem_kind == 0 { "send" } else { "receive" };
    match e.kind {
        RCVQUEUE_FULL => fields.push(("truesize", Value::U64(e.truesize.into()))),
        EXCEED_BUF_LIMIT => fields.extend([
            ("allocated", Value::I64(e.allocated)),
            ("kind", Value::Str(kind)),
            ("wmem_queued", Value::I64(e.wmem_queued.into())),
        ]),
        _ => fields.push(("rc", Value::I64(e.rc.into()))),
    }
    fields.extend([
        ("pid", Value::U64(e.pid.into())),
        ("comm", Value::Str(&comm)),
    ]);
    fields.extend(owners.fields(e.cgroup, owner.as_ref()));
    out.record(&fields);
}
