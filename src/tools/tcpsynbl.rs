//! tcpsynbl: TCP listen backlog as histograms by backlog limit, and each connection dropped
//! because the accept queue was full.

use std::cell::RefCell;
use std::ffi::OsString;
use std::time::Instant;

use clap::Parser;
use libbpf_rs::RingBufferBuilder;

use crate::core::addr::{endpoint, ip, ip_version};
use crate::core::bpf::{bytes_of, read_event, Pod};
use crate::core::caps::{btf_has, fentry_can_take, Hook, Plan};
use crate::core::cli::{Common, Family, Interval};
use crate::core::hist::print_log2;
use crate::core::netstat::Netns;
use crate::core::output::{Column, Format, Output, Value};
use crate::core::run::DRAIN_INTERVAL;
use crate::core::table::Owners;
use crate::core::time::{hms_now, Clock};
use crate::tools::{announce, start, Tool};

crate::skel!("tcpsynbl");

unsafe impl Pod for types::tcpsynbl_drop {}
unsafe impl Pod for types::hist {}
unsafe impl Pod for types::listener_addr {}

const NO_ACK_DROPS: &str =
    "netbpf tcpsynbl: handshake ACKs dropped at a full queue are not shown: \
this kernel gives them no drop reason (TCP_LISTEN_OVERFLOW), and fentry or kprobes on \
tcp_v4_syn_recv_sock are unavailable; ListenOverflows still counts them";

/// TCPSYNBL_ACK in tcpsynbl.h: a handshake's final ACK dropped (else a SYN).
const TCPSYNBL_ACK: u8 = 2;

pub static TOOL: Tool = Tool {
    name: "tcpsynbl",
    aliases: &[],
    about: "TCP listen backlog histograms by backlog limit, and drops at a full accept queue",
    plans: &[
        Plan::new(
            "fentry",
            &[Hook::Fentry, Hook::TpBtf],
            "sock/inet_sock_set_state (SYN_RECV) + fentry/tcp_conn_request (SYNs) + \
                     fentry/tcp_v4_syn_recv_sock, tcp_v6_syn_recv_sock (handshake ACKs)",
        )
        .checked(fentry_can_attach),
        Plan::new(
            "kprobe",
            &[Hook::Kprobe, Hook::TpBtf],
            "sock/inet_sock_set_state (SYN_RECV) + kprobe/tcp_conn_request (SYNs) + \
                     kprobe/tcp_v4_syn_recv_sock, tcp_v6_syn_recv_sock (handshake ACKs)",
        )
        .checked(has_drop_functions),
        Plan::new(
            "tp_btf",
            &[Hook::TpBtf],
            "sock/inet_sock_set_state (SYN_RECV, LISTEN) + skb/consume_skb (SYNs) + \
                     skb/kfree_skb (TCP_LISTEN_OVERFLOW: handshake ACKs)",
        ),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: |tool, plan| {
        crate::core::bpf::verify_with::<TcpsynblSkelBuilder>(tool, plan, |open, plan| {
            select_programs(open, plan);
            Ok(())
        })
    },
    export: Some(crate::core::export::Export {
        order: 6,
        load: export::load,
    }),
};

fn has_drop_functions() -> Result<(), String> {
    btf_has("tcp_conn_request")?;
    btf_has("tcp_v4_syn_recv_sock")
}

/// tcp_v4/v6_syn_recv_sock() have 7 arguments since Linux 5.x: too many for fentry before 6.6.
fn fentry_can_attach() -> Result<(), String> {
    has_drop_functions()?;
    fentry_can_take("tcp_v4_syn_recv_sock")
}

/// Whether this kernel names handshake drops at a full queue in kfree_skb (newer kernels).
fn has_listen_overflow_reason() -> bool {
    crate::core::drop_reason::names().is_ok_and(|n| n.values().any(|r| r == "TCP_LISTEN_OVERFLOW"))
}

const EXAMPLES: &str = "\
Examples:
  tcpsynbl                # histograms at Ctrl-C, a line for each drop
  tcpsynbl 1 10           # histograms every second, 10 times
  tcpsynbl -T 5           # every 5 seconds, with a timestamp
  tcpsynbl --json         # drops and histograms as JSON objects

@backlog[LIMIT] is the accept queue length (connections waiting for accept()) each time a
handshake completed on a listener whose backlog limit is LIMIT. A full queue (the kernel admits
LIMIT+1) drops packets: \"dropping a SYN.\" for a SYN (the client retries it later), \"dropping a
handshake ACK.\" for the final ACK of a handshake (the server retries its SYN-ACK), each with the
address the packet was sent to and the queue. The ListenOverflows line counts both kinds, from
the traced namespace's /proc/net/netstat: since tracing began, and in the last interval.
On kernels without fentry and kprobes (tp_btf plan), SYN drops are seen for the listeners that
existed at start (read then) and those opened later, and handshake drops on kernels that give
them a drop reason (TCP_LISTEN_OVERFLOW) only; `netbpf list -v` shows the plan.";

#[derive(Parser, Debug)]
#[command(name = "tcpsynbl", about = "Show the TCP listen backlog (SYN backlog) as histograms", after_help = EXAMPLES)]
struct Opts {
    /// Print a timestamp before each interval's histograms
    #[arg(short = 'T', long = "timestamp")]
    timestamp: bool,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    interval: Interval,
    #[command(flatten)]
    common: Common,
}

/// Whether `plan` sees dropped handshake ACKs: at their functions, or by drop reason.
fn sees_ack_drops(plan: &Plan) -> bool {
    function_hooks(plan) || has_listen_overflow_reason()
}

/// The fentry and kprobe plans see SYNs and ACKs at their functions; the tp_btf plan at
/// consume_skb and kfree_skb.
fn function_hooks(plan: &Plan) -> bool {
    plan.uses(Hook::Fentry) || plan.uses(Hook::Kprobe)
}

/// Leaves out, of the programs `plan` chose, those this kernel or this plan does not need.
fn select_programs(open: &mut OpenTcpsynblSkel, plan: &Plan) {
    let functions = function_hooks(plan);
    let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
    rodata.track_listeners = !functions;
    let p = &mut open.progs;
    if btf_has("tcp_v6_syn_recv_sock").is_err() {
        p.tcpsynbl_v6_syn_recv.set_autoload(false);
        p.tcpsynbl_v6_syn_recv_kprobe.set_autoload(false);
    }
    if functions {
        p.tcpsynbl_consume.set_autoload(false);
    }
    if functions || !sees_ack_drops(plan) {
        p.tcpsynbl_overflow.set_autoload(false);
    }
}

/// The tp_btf plan finds a SYN's listener in `listeners`, filled at listen(): add the listeners
/// opened before tracing began.
fn seed_listeners(skel: &TcpsynblSkel, tool: &str, netns: u64) -> anyhow::Result<()> {
    use crate::core::sock_owners::{insert_new, tcp_sockets_or_warn, TCP_LISTEN};
    for s in tcp_sockets_or_warn(tool, netns)
        .iter()
        .filter(|s| s.state == TCP_LISTEN && s.lport != 0)
    {
        // As listener_key(): the socket's own family and bound address.
        let key = types::listener_addr {
            netns: s.netns,
            addr: s.saddr,
            family: s.family,
            port: s.lport,
            ..Default::default()
        };
        insert_new(&skel.maps.listeners, bytes_of(&key), &s.sk.to_ne_bytes())?;
    }
    Ok(())
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();
    let mut netstat = match ListenOverflows::open(o.common.netns.as_deref(), s.filters.netns) {
        Ok(n) => Some(n),
        Err(why) => {
            eprintln!("netbpf tcpsynbl: no ListenOverflows line: {why}");
            None
        }
    };

    if !function_hooks(s.plan) {
        crate::core::sock_owners::load_in_background();
    }
    let skel = s.load::<TcpsynblSkelBuilder>(|open, plan| {
        select_programs(open, plan);
        Ok(())
    })?;
    let ack_drops = sees_ack_drops(s.plan);
    if !function_hooks(s.plan) {
        seed_listeners(&skel, tool.name, s.filters.netns)?;
    }

    let owners = Owners::new(&o.common);
    let out = RefCell::new(Output::new(
        o.common.format(),
        [
            Column::new("TIME", "time", -8),
            Column::json("event"),
            Column::table("EVENT", 0),
            Column::json("kind"),
            Column::json("ip"),
            Column::json("laddr"),
            Column::json("lport"),
            Column::json("backlog"),
            Column::json("max_backlog"),
        ]
        .into_iter()
        .chain(owners.columns())
        .collect(),
    ));
    let clock = Clock::start();
    let mut builder = RingBufferBuilder::new();
    builder.add(&skel.maps.events, |data: &[u8]| {
        if let Some(e) = read_event::<types::tcpsynbl_drop>(data) {
            let time = clock.hms(e.ts_ns);
            let addr = ip(e.family, &e.laddr);
            let (kind, what) = if e.kind == TCPSYNBL_ACK {
                ("ack", "dropping a handshake ACK.")
            } else {
                ("syn", "dropping a SYN.")
            };
            let text = if e.max_backlog > 0 || e.backlog > 0 {
                format!(
                    "{what} ({}, accept queue {} > limit {})",
                    endpoint(addr, e.lport),
                    e.backlog,
                    e.max_backlog
                )
            } else {
                format!("{what} ({})", endpoint(addr, e.lport))
            };
            let owner = owners.lookup(e.cgroup);
            let cells = [
                Value::Str(&time),
                Value::Str("drop"),
                Value::Str(&text),
                Value::Str(kind),
                Value::U64(ip_version(e.family)),
                Value::Ip(addr),
                Value::U64(e.lport.into()),
                Value::U64(e.backlog.into()),
                Value::U64(e.max_backlog.into()),
            ];
            let cells = [&cells[..], &owners.values(e.cgroup, owner.as_ref())[..]].concat();
            out.borrow_mut().row(&cells);
        }
        0
    })?;
    crate::core::mem::release_setup_memory();
    let ring = builder.build()?;
    if !ack_drops {
        eprintln!("{NO_ACK_DROPS}");
    }
    announce("SYN backlog size");

    let every = o.interval.interval;
    let mut next = every.map(|d| Instant::now() + d);
    let mut printed = 0u64;
    loop {
        let stop = s.run.should_stop();
        let mut wait = DRAIN_INTERVAL;
        if let Some(n) = next {
            wait = wait.min(n.saturating_duration_since(Instant::now()));
        }
        if !stop {
            if let Err(e) = ring.poll(wait) {
                if e.kind() != libbpf_rs::ErrorKind::Interrupted {
                    return Err(e.into());
                }
            }
        }
        ring.consume()?;
        let due = next.is_some_and(|n| Instant::now() >= n);
        if due || stop {
            print_histograms(&skel, &mut out.borrow_mut(), &o, &mut netstat)?;
            printed += 1;
            next = every.map(|d| Instant::now() + d);
        }
        if !out.borrow_mut().flush() || stop || o.interval.count.is_some_and(|c| printed >= c) {
            break;
        }
    }
    drop(ring);
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

/// Prints and clears the backlog histograms, and the ListenOverflows count since the start.
fn print_histograms(
    skel: &TcpsynblSkel,
    out: &mut Output,
    o: &Opts,
    netstat: &mut Option<ListenOverflows>,
) -> anyhow::Result<()> {
    let mut hists: Vec<(u64, _)> =
        crate::core::maps::drain::<u64, types::hist>(&skel.maps.backlog)?
            .into_iter()
            .map(|(max, h)| (max, h.slots))
            .collect();
    hists.sort_by_key(|(max, _)| *max);
    let json = out.format() == Format::Json;
    let time = hms_now();
    if !json {
        out.separate();
        if o.timestamp {
            out.text(&time);
        }
        out.text("@backlog[backlog limit]: histogram of backlog size");
    }
    for (max, slots) in &hists {
        let mut labels = vec![("max_backlog", Value::U64(*max))];
        if json {
            labels.insert(0, ("time", Value::Str(&time)));
        }
        print_log2(out, "backlog", "connections", &labels, slots);
    }
    if let Some((total, delta)) = netstat.as_mut().and_then(|n| n.update()) {
        if json {
            out.record(&[
                ("time", Value::Str(&time)),
                ("listen_overflows", Value::U64(total)),
                ("listen_overflows_interval", Value::U64(delta)),
            ]);
        } else if o.interval.interval.is_some() {
            out.text(&format!(
                "ListenOverflows: {delta} this interval, {total} since start (SYNs and handshakes \
                 dropped at a full accept queue)"
            ));
        } else {
            out.text(&format!(
                "ListenOverflows: {total} (SYNs and handshakes dropped at a full accept queue since start)"
            ));
        }
    }
    Ok(())
}

/// The TcpExt ListenOverflows counter of the traced network namespace.
struct ListenOverflows {
    netns: Netns,
    start: u64,
    last: u64,
}

impl ListenOverflows {
    fn open(arg: Option<&str>, cookie: u64) -> Result<ListenOverflows, String> {
        let netns = Netns::open(arg, cookie)?;
        let start = netns.counter("netstat", "TcpExt", "ListenOverflows")?;
        Ok(ListenOverflows {
            netns,
            start,
            last: start,
        })
    }

    /// (since the start, since the last call).
    fn update(&mut self) -> Option<(u64, u64)> {
        let now = self
            .netns
            .counter("netstat", "TcpExt", "ListenOverflows")
            .ok()?;
        let delta = now.saturating_sub(self.last);
        self.last = now;
        Some((now.saturating_sub(self.start), delta))
    }
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: the backlog histogram by backlog limit, and the handshakes dropped at a
/// full accept queue, counted in the kernel (tcpsynbl.bpf.c in exporter mode, maps of
/// common/export.bpf.h); the port label is the listener's port.
pub mod export {
    use super::*;
    crate::export_object!(OpenTcpsynblSkel, TcpsynblSkel);

    use crate::core::export::{
        self, Buckets, Ctx, ExportMaps, ExportObject as _, Family, Loaded, Scale, Source, Unit,
    };

    /// 0 to 65535 connections waiting.
    const BACKLOG: Buckets = Buckets {
        scale: Scale::Integer,
        first: 0,
        last: 16,
    };

    struct Backlog {
        maps: ExportMaps,
        /// The kernel names full-queue drops (drop reason TCP_LISTEN_OVERFLOW): without it the
        /// drop counter would be a constant 0, so it is not published.
        drops: bool,
    }

    impl Source for Backlog {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let (c, h) = (self.maps.counts()?, self.maps.hists()?);
            let mut out = vec![Family::Histogram {
                    name: "netbpf_tcp_listen_backlog",
                    help: "Accept queue length when a handshake completes, by the listener's backlog limit",
                    unit: Unit::None,
                    buckets: BACKLOG,
                series: self
                    .maps
                    .histogram(&h, 0, &[], |l| vec![("limit", l.to_string())]),
            }];
            if self.drops {
                out.push(Family::Counter {
                    name: "netbpf_tcp_listen_drops",
                    help: "Completed handshakes dropped because the accept queue was full",
                    unit: Unit::None,
                    series: self.maps.counter(&c, 0, &[0], |_| Vec::new()),
                });
            }
            Ok(out)
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.maps.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) =
            export::load::<TcpsynblSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, plan| {
                open.export_setup(ctx)?;
                let _rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
                select_programs(open, plan);
                Ok(())
            })?;
        let maps = skel.export_maps(ctx)?;
        Ok(Loaded {
            source: Box::new(Backlog {
                maps,
                drops: has_listen_overflow_reason(),
            }),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
