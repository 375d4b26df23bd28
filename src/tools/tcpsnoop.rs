//! tcpsnoop: every TCP packet sent or received, with the process that owns its socket (the
//! DTraceToolkit tool, never ported to Linux before).

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::{ip_version, Tuple};
use crate::core::bpf::{bytes_of, read_event, Pod};
use crate::core::caps::{btf_has, tp_btf_args, Hook, Plan};
use crate::core::cli::{Common, Family, PidFilter, TimeCells, Timestamps};
use crate::core::output::{comm_str, Column, Format, Value};
use crate::core::table::Table;
use crate::core::tcp::flags_str;
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::tuple_of;

crate::skel!("tcpsnoop");

unsafe impl Pod for types::tcpsnoop_event {}
unsafe impl Pod for types::flow_key {}
unsafe impl Pod for types::owner {}

/// 512 KiB: ~5k packets; the reader is woken when a quarter of it fills. Every page of a ring is
/// resident twice (the kernel maps its data twice, for wrap-around): 4 MiB made 8 MiB of the
/// tool's RSS, against a 5 MB budget for the whole tool.
const PACKET_RING_BYTES: u32 = 1 << 19;

const ATTACH: &str =
    "net/net_dev_queue + net/netif_receive_skb + tcp/tcp_send_reset + sock/inet_sock_set_state";

pub static TOOL: Tool = Tool {
    name: "tcpsnoop",
    aliases: &[],
    about: "Every TCP packet in or out, with the owning process (per packet: costly on busy hosts)",
    plans: &[
        // Resets to closed ports from tcp_v4/v6_send_reset() (the tracepoint misses them before
        // Linux 6.10), and owners refined at every accept, io_uring's included.
        Plan::new(
            "fentry",
            &[Hook::TpBtf, Hook::Fentry],
            "net/net_dev_queue + net/netif_receive_skb + sock/inet_sock_set_state + \
                     fentry/tcp_v4_send_reset, tcp_v6_send_reset + fexit/inet_csk_accept",
        )
        .checked(fentry_ready),
        Plan::new(
            "kprobe",
            &[Hook::TpBtf, Hook::Kprobe],
            "net/net_dev_queue + net/netif_receive_skb + sock/inet_sock_set_state + \
                     kprobe/tcp_v4_send_reset, tcp_v6_send_reset + kretprobe/inet_csk_accept",
        )
        .checked(has_functions),
        // accept() return refines the owner of passive connections to the accepting process.
        Plan::new(
            "tracepoint",
            &[Hook::TpBtf, Hook::Tracepoint],
            "net/net_dev_queue + net/netif_receive_skb + tcp/tcp_send_reset + \
                     sock/inet_sock_set_state + syscalls/sys_exit_accept(4)",
        ),
        // Without tracefs: passive connections belong to whoever called listen().
        Plan::new("tp_btf", &[Hook::TpBtf], ATTACH),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: |tool, plan| {
        crate::core::bpf::verify_with::<TcpsnoopSkelBuilder>(tool, plan, |open, plan| {
            configure(open, plan);
            Ok(())
        })
    },
    export: None,
};

/// The fentry plan's fexit on inet_csk_accept reads its return value with bpf_get_func_ret.
fn fentry_ready() -> Result<(), String> {
    crate::core::caps::func_ret_helpers()?;
    has_functions()
}

fn has_functions() -> Result<(), String> {
    btf_has("tcp_v4_send_reset")?;
    btf_has("inet_csk_accept")
}

const EXAMPLES: &str = "\
Examples:
  tcpsnoop                # every TCP packet, with its owner
  tcpsnoop -p 181         # only packets of sockets owned by PID 181
  tcpsnoop -6 -T          # IPv6 only, with a HH:MM:SS column
  tcpsnoop --json         # one JSON object per packet (adds TCP flags and payload bytes)

DR is -> for a packet sent, <- for a packet received; LADDR/LPORT are always this host's end.
SIZE is the IP datagram: IP header + TCP header + payload (the original added 14 for Ethernet).
A packet on loopback is shown twice: out from the sender's socket, in at the receiver's.
CMD <closed> marks a reset sent because the port had no socket; <unknown> a packet whose owner
is not known (a SYN to a closed port, on arrival; a socket no process held when tracing began).
Sockets processes held when tracing began, listeners included, are read at start.
This is per packet: on a busy host it costs a few hundred ns per packet and prints a lot.";

#[derive(Parser, Debug)]
#[command(name = "tcpsnoop", about = "Trace TCP packets with the owning process", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    stamps: Timestamps,
    #[command(flatten)]
    common: Common,
}

/// One packet, as printed.
struct Row {
    stamp: TimeCells,
    e: types::tcpsnoop_event,
    t: Tuple,
    comm: String,
    flags: String,
    json: bool,
}

impl Row {
    /// Unknown owner: no PID or UID to show (a closed-port reset is the kernel's: 0).
    fn owner_id(&self, id: u32) -> Value<'static> {
        match (self.e.owner, self.json) {
            (1, true) => Value::Json("null"),
            (1, false) => Value::Str("-"),
            _ => Value::U64(id.into()),
        }
    }
    fn out(&self) -> bool {
        self.e.dir == 0
    }
}

fn table(o: &Opts) -> Table<Row> {
    Table::<Row>::new()
        .stamps(&o.stamps, |r| &r.stamp)
        .col(Column::new("UID", "uid", 5), |r| r.owner_id(r.e.uid))
        .col(Column::new("PID", "pid", 7), |r| r.owner_id(r.e.pid))
        .col(Column::json("ip"), |r| Value::U64(ip_version(r.t.family)))
        .col(Column::new("LADDR", "laddr", -15), |r| Value::Ip(r.t.laddr))
        .col(Column::new("LPORT", "lport", 5), |r| {
            Value::U64(r.t.lport.into())
        })
        .col(Column::table("DR", 2), |r| {
            Value::Str(if r.out() { "->" } else { "<-" })
        })
        .col(Column::json("dir"), |r| {
            Value::Str(if r.out() { "out" } else { "in" })
        })
        .col(Column::new("RADDR", "raddr", -15), |r| Value::Ip(r.t.raddr))
        .col(Column::new("RPORT", "rport", 5), |r| {
            Value::U64(r.t.rport.into())
        })
        .col(Column::new("SIZE", "size", 5), |r| {
            Value::U64(r.e.size.into())
        })
        .col(Column::json("payload"), |r| Value::U64(r.e.payload.into()))
        .col(Column::json("flags"), |r| Value::Str(&r.flags))
        .col(Column::new("CMD", "comm", -16), |r| Value::Str(&r.comm))
}
/// The fentry and kprobe plans see resets in tcp_v4/v6_send_reset(); the others at the
/// tcp_send_reset tracepoint.
fn function_hooks(plan: &Plan) -> bool {
    plan.uses(Hook::Fentry) || plan.uses(Hook::Kprobe)
}

/// Leaves out, of the programs the plan chose, those it or this kernel does not need.
fn configure(open: &mut OpenTcpsnoopSkel, plan: &Plan) {
    let p = &mut open.progs;
    if function_hooks(plan) {
        p.tcpsnoop_reset.set_autoload(false);
    }
    if btf_has("tcp_v6_send_reset").is_err() {
        p.tcpsnoop_reset6_fentry.set_autoload(false);
        p.tcpsnoop_reset6_kprobe.set_autoload(false);
    }
}

/// The sockets open before tracing began: their owners (tcp_owner.bpf.h's maps) and the flows
/// of established ones, so their packets, and the handshakes of listeners' new connections, are
/// not `<unknown>`.
fn seed_owners(skel: &TcpsnoopSkel, tool: &str, netns: u64) -> anyhow::Result<()> {
    use crate::core::sock_owners::{insert_new, seed_tcp_owner, tcp_sockets_or_warn, TCP_LISTEN};
    let existing = tcp_sockets_or_warn(tool, netns);
    seed_tcp_owner(&existing, &skel.maps.sk_owners, &skel.maps.listener_owners)?;
    for s in existing
        .iter()
        .filter(|s| s.state != TCP_LISTEN && s.lport != 0 && s.rport != 0)
    {
        // As flow_from_sock(): a v4-mapped connection is keyed as the IPv4 its packets are.
        let t = s.tuple().unmapped();
        let mut key = types::flow_key {
            netns: s.netns,
            family: t.family,
            lport: t.lport,
            rport: t.rport,
            ..Default::default()
        };
        ip_bytes(t.laddr, &mut key.laddr);
        ip_bytes(t.raddr, &mut key.raddr);
        let owner = types::owner {
            pid: s.pid,
            uid: s.uid,
            comm: s.comm.map(|c| c as i8),
            cgroup: s.cgroup,
            sk: 0, // no socket's address: the first packet sent refills the flow from its socket
        };
        insert_new(&skel.maps.flows, bytes_of(&key), bytes_of(&owner))?;
    }
    Ok(())
}

/// An address as the BPF side stores it: IPv4 in the first 4 bytes.
fn ip_bytes(ip: std::net::IpAddr, out: &mut [u8; 16]) {
    match ip {
        std::net::IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        std::net::IpAddr::V6(v6) => *out = v6.octets(),
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    if !function_hooks(s.plan) && tp_btf_args("tcp_send_reset") < Some(3) {
        eprintln!(
            "netbpf tcpsnoop: resets to closed ports may show as <unknown>: this kernel's \
             tcp_send_reset tracepoint does not fire for them (fentry or kprobes on \
             tcp_v4_send_reset would see them)"
        );
    }
    crate::core::sock_owners::load_in_background();
    let skel = s.load::<TcpsnoopSkelBuilder>(|open, plan| {
        // Per-packet events come far denser than other tools' (a bulk transfer is tens of
        // thousands of packets a second): give the reader a deeper ring.
        let _ = open.maps.events.set_max_entries(PACKET_RING_BYTES);
        configure(open, plan);
        Ok(())
    })?;

    seed_owners(&skel, tool.name, s.filters.netns)?;

    let json = o.common.format() == Format::Json;
    let table = table(&o).containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    out.header();
    announce("TCP packets");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcpsnoop_event>(data) else {
            return;
        };
        let comm = match e.owner {
            0 => comm_str(&e.comm),
            2 => "<closed>".to_string(),
            _ => "<unknown>".to_string(),
        };
        let row = Row {
            stamp: o.stamps.cells(&clock, e.ts_ns),
            t: tuple_of!(e.tuple),
            comm,
            flags: flags_str(e.flags),
            json,
            e,
        };
        table.row(out, &row);
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}
