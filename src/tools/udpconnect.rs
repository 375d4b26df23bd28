//! udpconnect: UDP sockets being connected (connect() on a UDP socket), one line each.

use std::ffi::OsString;

use crate::core::addr::{ip, ip_version};
use crate::core::bpf::Pod;
use crate::core::caps::{btf_has, Hook, Plan};
use crate::core::output::{comm_str, Column, Value};
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{PidOpts, Tool};

crate::skel!("udpconnect");

unsafe impl Pod for types::udpconnect_event {}

pub static TOOL: Tool = Tool {
    name: "udpconnect",
    aliases: &[],
    about: "UDP sockets being connected (connect() on a UDP socket)",
    plans: &[
        // The protocols' own connect functions: every connect, io_uring's included.
        Plan::new(
            "fexit",
            &[Hook::Fentry],
            "fexit/udp_connect, udpv6_connect \
             (before 6.13: ip4_datagram_connect, ip6_datagram_connect)",
        )
        .checked(has_connect_functions),
        Plan::new(
            "kprobe",
            &[Hook::Kprobe],
            "kprobe+kretprobe/udp_connect, udpv6_connect \
             (before 6.13: ip4_datagram_connect, ip6_datagram_connect)",
        )
        .checked(has_connect_functions),
        Plan::new(
            "tracepoint",
            &[Hook::Tracepoint],
            "syscalls/sys_{enter,exit}_connect + fd->sock (sk_protocol UDP)",
        ),
    ],
    cli,
    run,
    verify: crate::core::bpf::verify::<UdpconnectSkelBuilder>,
    export: None,
};

fn has_connect_functions() -> Result<(), String> {
    btf_has(connect_functions()[0])
}

/// The UDP protocols' connect functions (`udp_prot.connect`, `udpv6_prot.connect`): since 6.13
/// udp_connect and udpv6_connect, which also hash the connected socket by its 4-tuple and call
/// __ip4/__ip6_datagram_connect directly, so ip4/ip6_datagram_connect no longer see UDP; those
/// two before. The BPF programs are written for the old names and pointed at these.
fn connect_functions() -> [&'static str; 2] {
    if btf_has("udp_connect").is_ok() {
        ["udp_connect", "udpv6_connect"]
    } else {
        ["ip4_datagram_connect", "ip6_datagram_connect"]
    }
}

const EXAMPLES: &str = "\
Examples:
  udpconnect              # every successful connect() of a UDP socket
  udpconnect -p 181       # only PID 181
  udpconnect --json       # one JSON object each, with the local address and port

A connected UDP socket has a default destination (send() needs no address; only replies from
it are received). Datagrams sent with sendto() on an unconnected socket are not shown, nor
ICMP ping, raw or UDP-Lite sockets. Where the kernel allows fexit or kprobes, the protocol's own
connect functions are traced (connects made through io_uring too); else the connect syscall. IP is the socket's IP version: an IPv6 socket connecting
to an IPv4-mapped address shows 6.";

fn cli() -> clap::Command {
    PidOpts::command("udpconnect", "Trace UDP connect() calls", EXAMPLES)
}

/// One UDP connect(), as printed.
struct Row {
    time: String,
    e: types::udpconnect_event,
    comm: String,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("TIME", "time", -8), |r| Value::Str(&r.time))
        .task(-7, -16, |r| (r.e.pid, &r.comm))
        .col(Column::new("IP", "ip", -2), |r| {
            Value::U64(ip_version(r.e.family))
        })
        .col(Column::new("RADDR", "raddr", -16), |r| {
            Value::Ip(ip(r.e.raddr.family, &r.e.raddr.addr))
        })
        .col(Column::new("RPORT", "rport", -5), |r| {
            Value::U64(r.e.raddr.port.into())
        })
        .col(Column::json("laddr"), |r| {
            Value::Ip(ip(r.e.family, &r.e.laddr))
        })
        .col(Column::json("lport"), |r| Value::U64(r.e.lport.into()))
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let [connect4, connect6] = connect_functions();
    // IPv6 may be a module that is not loaded, or disabled.
    let v6 = btf_has(connect6).is_ok();
    let mut skel = s.load_unattached::<UdpconnectSkelBuilder>(|open, _| {
        let p = &mut open.progs;
        if v6 {
            p.udpconnect_fexit6
                .set_attach_target(0, Some(connect6.into()))?;
        } else {
            p.udpconnect_fexit6.set_autoload(false);
            p.udpconnect_kprobe6.set_autoload(false);
            p.udpconnect_kretprobe6.set_autoload(false);
        }
        p.udpconnect_fexit4
            .set_attach_target(0, Some(connect4.into()))?;
        for k in [
            &mut p.udpconnect_kprobe4,
            &mut p.udpconnect_kretprobe4,
            &mut p.udpconnect_kprobe6,
            &mut p.udpconnect_kretprobe6,
        ] {
            k.set_autoattach(false);
        }
        Ok(())
    })?;
    libbpf_rs::skel::Skel::attach(&mut skel)
        .map_err(|e| crate::core::bpf::attach_failed(tool.name, s.plan.attach, e))?;
    let _kprobes = match s.plan.uses(Hook::Kprobe) {
        true => attach_kprobes(&skel, connect4, v6.then_some(connect6))
            .map_err(|(what, e)| crate::core::bpf::attach_failed(tool.name, &what, e))?,
        false => Vec::new(),
    };

    let clock = Clock::start();
    s.stream_rows(
        &skel.maps.events,
        &table().containers(&o.common, |r| r.e.cgroup),
        o.common.format(),
        "UDP connect()s",
        |e: types::udpconnect_event| Row {
            time: clock.hms(e.ts_ns),
            comm: comm_str(&e.comm),
            e,
        },
    )?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

/// Attaches the kprobe plan's programs to this kernel's connect functions (their sections name
/// the old ones, and libbpf cannot point a kprobe elsewhere before it attaches).
fn attach_kprobes(
    skel: &UdpconnectSkel<'static>,
    connect4: &str,
    connect6: Option<&str>,
) -> Result<Vec<libbpf_rs::Link>, (String, libbpf_rs::Error)> {
    let p = &skel.progs;
    let mut probes = vec![
        (&p.udpconnect_kprobe4, false, connect4),
        (&p.udpconnect_kretprobe4, true, connect4),
    ];
    if let Some(f) = connect6 {
        probes.push((&p.udpconnect_kprobe6, false, f));
        probes.push((&p.udpconnect_kretprobe6, true, f));
    }
    probes
        .into_iter()
        .map(|(prog, ret, func)| {
            let what = format!("{} {func}", if ret { "kretprobe" } else { "kprobe" });
            match ret {
                true => crate::core::kretprobe::attach(prog, func).map(|()| None),
                false => prog.attach_kprobe(false, func).map(Some),
            }
            .map_err(|e| (what, e))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|links| links.into_iter().flatten().collect())
}
