//! socketio: socket I/O calls counted by process, direction, protocol and port (a server's local
//! port, else the remote one); printed at exit.

use std::ffi::OsString;

use libbpf_rs::skel::OpenSkel as _;

use crate::core::bpf::Pod;
use crate::core::output::{comm_str, Format, Output, Value};
use crate::core::table::Owners;
use crate::tools::{sockmsg, PidOpts, Tool};

crate::skel!("socketio");

unsafe impl Pod for types::socketio_key {}

const SOCKETIO_WRITE: u8 = 1;

pub static TOOL: Tool = Tool {
    name: "socketio",
    aliases: &[],
    about: "Socket I/O calls by process, direction, protocol and port (counts at exit)",
    plans: &sockmsg::plans("fentry", "kprobe"),
    cli,
    run,
    verify: sockmsg::verify::<SocketioSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  socketio                # count socket I/O calls until Ctrl-C, then print them
  socketio -d 10          # for 10 seconds
  socketio -p 181         # only PID 181
  socketio --json         # one JSON object per (process, direction, protocol, port)

Each line is @io[COMM, PID, read|write, PROTOCOL, PORT]: CALLS. A call is one sendmsg or
recvmsg a socket receives (read/write/send*/recv*; each message of sendmmsg/recvmmsg), whatever
its result (errors such as EAGAIN count too). PROTOCOL is the kernel's name for the socket's
protocol (TCP, TCPv6, UDP, UDPv6, UNIX-STREAM, NETLINK, ...). PORT is local:N for a TCP socket
on a port its program took with bind() or listen() (a server: its connections all count under
its listening port), else the remote port: 0 for sockets that are not connected (unconnected
UDP, UNIX).";

fn cli() -> clap::Command {
    PidOpts::command(
        "socketio",
        "Count socket I/O calls by process, direction, protocol and port",
        EXAMPLES,
    )
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SocketioSkelBuilder>(|open, plan| {
        sockmsg::autoload(open.open_object_mut(), plan);
        Ok(())
    })?;

    // Before tracing: container names are looked up while the run lasts, not at the end.
    let owners = Owners::new(&o.common);
    s.wait_then_report("socket I/O", libbpf_rs::skel::Skel::object(&skel));

    let mut rows: Vec<(types::socketio_key, u64)> = crate::core::maps::entries(&skel.maps.io)?;
    // As bpftrace prints a map: smallest count first, so the busiest end up on screen.
    rows.sort_by(|a, b| {
        (a.1, a.0.pid, a.0.dir, a.0.lport, a.0.rport)
            .cmp(&(b.1, b.0.pid, b.0.dir, b.0.lport, b.0.rport))
    });
    let mut out = Output::new(o.common.format(), Vec::new());
    for (k, count) in rows {
        let owner = owners.lookup(k.cgroup);
        let comm = comm_str(&k.comm);
        let proto = comm_str(&k.proto);
        let dir = if k.dir == SOCKETIO_WRITE {
            "write"
        } else {
            "read"
        };
        if out.format() == Format::Json {
            let mut fields = vec![
                ("comm", Value::Str(&comm)),
                ("pid", Value::U64(k.pid.into())),
                ("dir", Value::Str(dir)),
                ("protocol", Value::Str(&proto)),
                ("lport", Value::U64(k.lport.into())),
                ("rport", Value::U64(k.rport.into())),
                ("count", Value::U64(count)),
            ];
            fields.extend(owners.fields(k.cgroup, owner.as_ref()));
            out.record(&fields);
        } else {
            let port = if k.lport != 0 {
                format!("local:{}", k.lport)
            } else {
                k.rport.to_string()
            };
            let container = owners.text(k.cgroup, owner.as_ref());
            out.text(&format!(
                "@io[{comm}, {}, {dir}, {proto}, {port}{}]: {count}",
                k.pid,
                container.map_or(String::new(), |c| format!(", {c}"))
            ));
        }
    }
    Ok(())
}
