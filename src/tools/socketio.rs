//! socketio: socket I/O calls counted by process, direction, protocol and remote port; printed at
//! exit.

use std::ffi::OsString;
use std::mem::MaybeUninit;

use clap::Parser;
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};

use crate::core::bpf::{opened, LoadContext, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{parse_pid, Common};
use crate::core::output::{comm_str, Format, Output, Value};
use crate::tools::{announce, start, Tool};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/socketio.skel.rs"));
}
use skel::*;

unsafe impl Pod for types::socketio_key {}

const SOCKETIO_WRITE: u8 = 1;

pub static TOOL: Tool = Tool {
    name: "socketio",
    aliases: &[],
    about: "Socket I/O calls by process, direction, protocol and remote port (counts at exit)",
    plans: &[
        Plan {
            name: "tp_btf",
            needs: &[Hook::TpBtf],
            attach: "sock/sock_send_length + sock/sock_recv_length",
            check: Some(length_tracepoints),
        },
        Plan {
            name: "fentry",
            needs: &[Hook::Fentry],
            attach: "fentry sock_sendmsg + sock_recvmsg",
            check: Some(sock_msg_functions),
        },
        Plan {
            name: "kprobe",
            needs: &[Hook::Kprobe],
            attach: "kprobe sock_sendmsg + sock_recvmsg",
            check: Some(sock_msg_functions),
        },
    ],
    run,
};

/// sock_send_length and sock_recv_length appeared in Linux 6.3.
pub(crate) fn length_tracepoints() -> Result<(), String> {
    crate::core::btf::require_tracepoint("sock_send_length")?;
    crate::core::btf::require_tracepoint("sock_recv_length")
}

pub(crate) fn sock_msg_functions() -> Result<(), String> {
    crate::core::btf::require_func("sock_sendmsg")?;
    crate::core::btf::require_func("sock_recvmsg")
}

const EXAMPLES: &str = "\
Examples:
  socketio                # count socket I/O calls until Ctrl-C, then print them
  socketio -d 10          # for 10 seconds
  socketio -p 181         # only PID 181
  socketio --json         # one JSON object per (process, direction, protocol, port)

Each line is @io[COMM, PID, read|write, PROTOCOL, REMOTE_PORT]: CALLS. A call is one sendmsg or
recvmsg a socket receives (read/write/send*/recv*; each message of sendmmsg/recvmmsg), whatever
its result (errors such as EAGAIN count too). PROTOCOL is the kernel's name for the socket's
protocol (TCP, TCPv6, UDP, UDPv6, UNIX-STREAM, NETLINK, ...); REMOTE_PORT is 0 for sockets that
are not connected (listeners, unconnected UDP, UNIX).";

#[derive(Parser, Debug)]
#[command(
    name = "socketio",
    about = "Count socket I/O calls by process, direction, protocol and remote port",
    after_help = EXAMPLES
)]
struct Opts {
    /// Only this process
    #[arg(short = 'p', long = "pid", value_parser = parse_pid)]
    pid: Option<u32>,
    #[command(flatten)]
    common: Common,
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.tgid = o.pid.unwrap_or(0);

    let mut obj = MaybeUninit::uninit();
    let mut open = opened(tool.name, SocketioSkelBuilder::default().open(&mut obj))?;
    crate::set_filters!(
        open.maps.rodata_data.as_deref_mut().expect("rodata"),
        s.filters
    );
    let plan = s.plan.name;
    open.progs.socketio_send.set_autoload(plan == "tp_btf");
    open.progs.socketio_recv.set_autoload(plan == "tp_btf");
    open.progs
        .socketio_fentry_send
        .set_autoload(plan == "fentry");
    open.progs
        .socketio_fentry_recv
        .set_autoload(plan == "fentry");
    open.progs
        .socketio_kprobe_send
        .set_autoload(plan == "kprobe");
    open.progs
        .socketio_kprobe_recv
        .set_autoload(plan == "kprobe");
    let mut skel = open.load().or_load_failed(tool.name)?;
    skel.attach()
        .map_err(|e| crate::core::bpf::attach_failed(tool.name, s.plan.attach, e))?;

    announce("socket I/O");
    s.run.wait();

    let mut rows: Vec<(types::socketio_key, u64)> = crate::core::maps::entries(&skel.maps.io)?;
    // As bpftrace prints a map: smallest count first, so the busiest end up on screen.
    rows.sort_by(|a, b| {
        (a.1, a.0.pid, a.0.dir, a.0.rport).cmp(&(b.1, b.0.pid, b.0.dir, b.0.rport))
    });
    let mut out = Output::new(o.common.format(), Vec::new());
    for (k, count) in rows {
        let comm = comm_str(&k.comm);
        let proto = comm_str(&k.proto);
        let dir = if k.dir == SOCKETIO_WRITE {
            "write"
        } else {
            "read"
        };
        if out.format() == Format::Json {
            out.record(&[
                ("comm", Value::Str(&comm)),
                ("pid", Value::U64(k.pid.into())),
                ("dir", Value::Str(dir)),
                ("protocol", Value::Str(&proto)),
                ("rport", Value::U64(k.rport.into())),
                ("count", Value::U64(count)),
            ]);
        } else {
            out.text(&format!(
                "@io[{comm}, {}, {dir}, {proto}, {}]: {count}",
                k.pid, k.rport
            ));
        }
    }
    Ok(())
}
