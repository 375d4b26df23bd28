//! tcpretrans: TCP retransmits (and tail loss probes with -l), one line each or counts with -c.

use std::ffi::OsString;

use clap::Parser;

use crate::core::addr::{endpoint, ip, ip_version};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{btf_has, tp_btf_args, Caps, Hook, Plan};
use crate::core::cli::{Common, Family, PidFilter};
use crate::core::output::{comm_str, Column, Output, Value};
use crate::core::table::Owners;
use crate::core::tcp::state_name;
use crate::core::time::Clock;
use crate::core::{errno, maps};
use crate::tools::{announce, start, Tool};
use crate::{tuple_of, usage};

crate::skel!("tcpretrans");

unsafe impl Pod for types::tcpretrans_event {}
unsafe impl Pod for types::tcpretrans_count_key {}
unsafe impl Pod for types::tcpretrans_count {}

pub static TOOL: Tool = Tool {
    name: "tcpretrans",
    aliases: &[],
    about: "TCP retransmits with addresses and state; -c counts; -l tail loss probes",
    plans: &[
        Plan::new(
            "fentry",
            &[Hook::TpBtf, Hook::Fentry],
            "tcp/tcp_retransmit_skb, tcp/tcp_retransmit_synack + sock/inet_sock_set_state, \
             fexit/inet_csk_accept (owners); -l: fentry+fexit/tcp_send_loss_probe",
        )
        .checked(fentry_ready),
        Plan::new(
            "kprobe",
            &[Hook::TpBtf, Hook::Kprobe],
            "tcp/tcp_retransmit_skb, tcp/tcp_retransmit_synack + sock/inet_sock_set_state, \
             kretprobe/inet_csk_accept (owners); -l: kprobe+kretprobe/tcp_send_loss_probe",
        )
        .checked(has_functions),
        Plan::new(
            "tracepoint",
            &[Hook::TpBtf, Hook::Tracepoint],
            "tcp/tcp_retransmit_skb, tcp/tcp_retransmit_synack + sock/inet_sock_set_state, \
             syscalls/sys_exit_accept(4) (owners) (without -l)",
        ),
        Plan::new(
            "tp_btf",
            &[Hook::TpBtf],
            "tcp/tcp_retransmit_skb, tcp/tcp_retransmit_synack + sock/inet_sock_set_state \
             (owners) (without -l)",
        ),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: |tool, plan| {
        crate::core::bpf::verify_with::<TcpretransSkelBuilder>(tool, plan, |open, _| {
            // As the run sets it: a program reading past 5.10's two arguments does not load.
            let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
            rodata.tp_has_err = tp_btf_args("tcp_retransmit_skb").unwrap_or(2) >= 3;
            loss_probes_off(open);
            Ok(())
        })
    },
    export: Some(crate::core::export::Export {
        order: 3,
        load: export::load,
    }),
};

fn has_loss_probe_fn() -> Result<(), String> {
    btf_has("tcp_send_loss_probe")
}

/// The fentry plan's fexit on inet_csk_accept reads its return value with bpf_get_func_ret.
fn fentry_ready() -> Result<(), String> {
    crate::core::caps::func_ret_helpers()?;
    has_functions()
}

fn has_functions() -> Result<(), String> {
    has_loss_probe_fn()?;
    btf_has("inet_csk_accept")
}

const EXAMPLES: &str = "\
Examples:
  tcpretrans              # every TCP retransmit
  tcpretrans -s           # with the sequence number of the first retransmitted byte
  tcpretrans -l           # also tail loss probes (needs kprobes or fentry)
  tcpretrans -c           # count retransmits per connection; print at exit
  tcpretrans --json       # one JSON object per retransmit

T is R for a retransmit, L for a tail loss probe (a probe sent: new data, or the last segment
again, which then also shows as R), U for retransmits the socket counted (tcpi_total_retrans) that
no event showed: the kernel skipped this tool's programs for them (seen on 6.18 with no count of
it anywhere), or, before Linux 6.15, they failed to leave the host. They are found at the
socket's next retransmit or state change, with their number (segs) but no sequence number or
result, so that the segments of R and U lines add up to what each socket counted. A SYN-ACK sent again for a connection request shows in state
SYN_RECV, with the request's addresses and the listener's owner. PID/COMM are the socket's owner
(the process that connected, accepted, listened or closed it) when netbpf saw it; retransmits run
in softirq, where the task on CPU is unrelated. Sockets set up before tracing began show PID 0
and COMM -.
--json has the segments each retransmit carried (segs) and its result: Success, or why it did not
leave this host (NET_XMIT_DROP: a local qdisc dropped it). Retransmits skipped because the
original was still queued in the host (EBUSY) are not shown; their number is given at exit.
-c: RETRANSMITS counts retransmit events (as bcc does), SEGS the segments they carried (what the
kernel counts in RetransSegs and tcpi_total_retrans); a U row counts the times unseen retransmits
were found and their segments.";

#[derive(Parser, Debug)]
#[command(name = "tcpretrans", about = "Trace TCP retransmits", after_help = EXAMPLES)]
struct Opts {
    /// Include tail loss probe attempts (needs kprobes or fentry)
    #[arg(short = 'l', long = "lossprobe")]
    lossprobe: bool,
    /// Count retransmits per connection; print the counts at exit
    #[arg(short = 'c', long = "count")]
    count: bool,
    /// Include a SEQ column: the sequence number of the first retransmitted byte
    #[arg(short = 's', long = "sequence")]
    sequence: bool,
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

fn columns(o: &Opts) -> Vec<Column> {
    let mut c = vec![
        Column::new("TIME", "time", -8),
        Column::new("PID", "pid", -7),
        Column::new("COMM", "comm", -12).truncated(),
        Column::new("IP", "ip", -2),
        Column::table("LADDR:LPORT", -22),
        Column::json("laddr"),
        Column::json("lport"),
        Column::new("T>", "type", -2),
        Column::table("RADDR:RPORT", -22),
        Column::json("raddr"),
        Column::json("rport"),
        Column::new("STATE", "state", -12),
    ];
    c.push(if o.sequence {
        Column::new("SEQ", "seq", -10)
    } else {
        Column::json("seq")
    });
    c.push(Column::json("segs"));
    c.push(Column::json("result"));
    c
}

/// Whether the plan hooks tcp_send_loss_probe (-l): its fentry or kprobe programs.
fn loss_probe_hooks(plan: &Plan) -> bool {
    plan.uses(Hook::Fentry) || plan.uses(Hook::Kprobe)
}

/// Leaves out the tcp_send_loss_probe programs the plan chose (no -l).
fn loss_probes_off(open: &mut OpenTcpretransSkel) {
    let p = &mut open.progs;
    p.tcpretrans_tlp_fentry.set_autoload(false);
    p.tcpretrans_tlp_fexit.set_autoload(false);
    p.tcpretrans_tlp_kprobe.set_autoload(false);
    p.tcpretrans_tlp_kretprobe.set_autoload(false);
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    if o.lossprobe && !loss_probe_hooks(s.plan) {
        let caps = Caps::get();
        let why = [Hook::Kprobe, Hook::Fentry]
            .iter()
            .filter_map(|&h| caps.has(h).err().map(|e| format!("{h}: {e}")))
            .chain(has_loss_probe_fn().err())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(usage!(
            "tcpretrans -l: not available on this kernel: needs kprobe or fentry on \
             tcp_send_loss_probe ({why})"
        ));
    }
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    crate::core::sock_owners::load_in_background();
    let skel = s.load::<TcpretransSkelBuilder>(|open, _| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.count_mode = o.count;
        rodata.tp_has_err = tp_btf_args("tcp_retransmit_skb").unwrap_or(2) >= 3;
        if !o.lossprobe {
            loss_probes_off(open);
        }
        Ok(())
    })?;
    // Sockets opened before tracing (a daemon's listeners above all): their retransmits,
    // SYN-ACKs included, name the owner too.
    let existing = crate::core::sock_owners::tcp_sockets_or_warn(tool.name, s.filters.netns);
    crate::core::sock_owners::seed_tcp_owner(
        &existing,
        &skel.maps.sk_owners,
        &skel.maps.listener_owners,
    )?;

    if o.count {
        announce("TCP retransmits, counting");
        s.run.wait();
        print_counts(&skel, &o)?;
    } else {
        stream(&skel, &o, &s.run)?;
    }
    let bss = skel.maps.bss_data.as_deref();
    s.report(libbpf_rs::skel::Skel::object(&skel));
    let busy = bss.map_or(0, |b| b.busy_skipped);
    if busy > 0 {
        eprintln!(
            "netbpf tcpretrans: {busy} retransmits not attempted: the original was still queued \
             in the host (EBUSY; not shown)"
        );
    }
    Ok(())
}

/// How a retransmit went: sent, dropped on the way out of this host (NET_XMIT_*), or an error.
fn result(err: i32) -> String {
    match err {
        0 => "Success".into(),
        1 => "NET_XMIT_DROP".into(),
        2 => "NET_XMIT_CN".into(),
        e => errno::result(e.into()),
    }
}

fn stream(skel: &TcpretransSkel, o: &Opts, run: &crate::core::run::Run) -> anyhow::Result<()> {
    let owners = Owners::new(&o.common);
    let mut out = Output::new(o.common.format(), [columns(o), owners.columns()].concat());
    out.header();
    announce(if o.lossprobe {
        "TCP retransmits and tail loss probes"
    } else {
        "TCP retransmits"
    });
    let clock = Clock::start();
    run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcpretrans_event>(data) else {
            return;
        };
        let t = tuple_of!(e.tuple);
        let comm = comm_str(&e.comm);
        let time = clock.hms(e.ts_ns);
        let result = result(e.err);
        let (l, r) = (endpoint(t.laddr, t.lport), endpoint(t.raddr, t.rport));
        let kind = match e.kind {
            b'L' => "L>",
            b'U' => "U>",
            _ => "R>",
        };
        let json = out.format() == crate::core::output::Format::Json;
        // Unseen retransmits: neither their sequence number nor their result is known.
        let unseen = e.kind == b'U';
        let owner = owners.lookup(e.cgroup);
        let cells = [
            Value::Str(&time),
            Value::U64(e.pid.into()),
            // The owner is not known: null, not an empty name ("-" in a table).
            match (e.pid, out.format()) {
                (0, crate::core::output::Format::Json) => Value::Json("null"),
                (0, _) => Value::Str("-"),
                _ => Value::Str(&comm),
            },
            Value::U64(ip_version(t.family)),
            Value::Str(&l),
            Value::Ip(t.laddr),
            Value::U64(t.lport.into()),
            Value::Str(if json { &kind[..1] } else { kind }),
            Value::Str(&r),
            Value::Ip(t.raddr),
            Value::U64(t.rport.into()),
            Value::Str(state_name(e.state)),
            match (unseen, json) {
                (false, _) => Value::U64(e.seq.into()),
                (true, true) => Value::Json("null"),
                (true, false) => Value::Str("-"),
            },
            Value::U64(e.segs.into()),
            match (unseen, json) {
                (false, _) => Value::Str(&result),
                (true, true) => Value::Json("null"),
                (true, false) => Value::Str("-"),
            },
        ];
        out.row(&[&cells[..], &owners.values(e.cgroup, owner.as_ref())[..]].concat());
    })
}

fn print_counts(skel: &TcpretransSkel, o: &Opts) -> anyhow::Result<()> {
    let mut rows: Vec<_> =
        maps::entries::<types::tcpretrans_count_key, types::tcpretrans_count>(&skel.maps.counts)?
            .into_iter()
            .map(|(k, n)| {
                let (l, r) = (ip(k.family, &k.saddr), ip(k.family, &k.daddr));
                (n.events, n.segs, k.kind, k.family, l, k.lport, r, k.rport)
            })
            .collect();
    // The most retransmits first.
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.cmp(b)));
    let mut columns = vec![Column::json("ip")];
    let kinds_differ = o.lossprobe || rows.iter().any(|r| r.2 == b'U');
    columns.push(if kinds_differ {
        Column::new("T", "type", -1)
    } else {
        Column::json("type")
    });
    columns.extend([
        Column::table("LADDR:LPORT", -25),
        Column::json("laddr"),
        Column::json("lport"),
        Column::table("RADDR:RPORT", -25),
        Column::json("raddr"),
        Column::json("rport"),
        Column::new("RETRANSMITS", "retransmits", -11),
        Column::new("SEGS", "segs", -6),
    ]);
    let mut out = Output::new(o.common.format(), columns);
    out.header();
    for (events, segs, kind, family, l, lport, r, rport) in rows {
        let (le, re) = (endpoint(l, lport), endpoint(r, rport));
        let kind = match kind {
            b'L' => "L",
            b'U' => "U",
            _ => "R",
        };
        out.row(&[
            Value::U64(ip_version(family)),
            Value::Str(kind),
            Value::Str(&le),
            Value::Ip(l),
            Value::U64(lport.into()),
            Value::Str(&re),
            Value::Ip(r),
            Value::U64(rport.into()),
            Value::U64(events),
            Value::U64(segs),
        ]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::skel::SkelBuilder as _;
    use std::mem::MaybeUninit;

    /// The kprobe plan cannot attach on a kernel without kprobes, but its program must still pass
    /// the verifier: load it (kprobe programs load anywhere; only attaching needs the PMU).
    #[test]
    fn loss_probe_kprobe_program_verifies() {
        let mut obj = MaybeUninit::uninit();
        let mut open = TcpretransSkelBuilder::default().open(&mut obj).unwrap();
        let p = &mut open.progs;
        p.tcpretrans_tlp_fentry.set_autoload(false);
        p.tcpretrans_tlp_fexit.set_autoload(false);
        p.tcpretrans_accept_fexit.set_autoload(false);
        p.tcpretrans_tlp_kprobe.set_autoload(true);
        p.tcpretrans_tlp_kretprobe.set_autoload(true);
        p.tcpretrans_accept_kretprobe.set_autoload(true);
        crate::core::bpf::assert_loads(open);
    }
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: retransmitted segments and tail loss probes counted in the kernel by the
/// socket's state (tcpretrans.bpf.c in exporter mode, maps of common/export.bpf.h). Loss probes
/// need the fentry or kprobe plan; with the tp_btf plan they are not published.
pub mod export {
    use super::*;
    crate::export_object!(OpenTcpretransSkel, TcpretransSkel);

    use crate::core::export::{
        self, Ctx, ExportMaps, ExportObject as _, Family, Labels, Loaded, Source, Unit,
    };

    const RETRANSMITS: u32 = 0;
    const LOSS_PROBES: u32 = 1;
    /// States a TCP socket retransmits in, published at 0 before their first retransmit.
    const STATES: [u32; 7] = [1, 2, 3, 4, 8, 9, 11];

    fn labels(state: u32) -> Labels {
        vec![("state", state_name(state as i32).to_string())]
    }

    struct Retransmits {
        maps: ExportMaps,
        loss_probes: bool,
    }

    impl Source for Retransmits {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let c = self.maps.counts()?;
            let mut out = vec![Family::Counter {
                name: "netbpf_tcp_retransmits",
                help: "TCP segments retransmitted, by the socket's state",
                unit: Unit::None,
                series: self.maps.counter(&c, RETRANSMITS, &STATES, labels),
            }];
            if self.loss_probes {
                out.push(Family::Counter {
                    name: "netbpf_tcp_loss_probes",
                    help: "TCP tail loss probes sent, by the socket's state",
                    unit: Unit::None,
                    series: self.maps.counter(&c, LOSS_PROBES, &[1], labels),
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
            export::load::<TcpretransSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, _plan| {
                open.export_setup(ctx)?;
                let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
                rodata.tp_has_err = tp_btf_args("tcp_retransmit_skb").unwrap_or(2) >= 3;
                // The owner is only for -p and the per-event output; loss probes are counted.
                let p = &mut open.progs;
                p.tcpretrans_owner.set_autoload(false);
                for accept in [
                    &mut p.tcpretrans_accept_fexit,
                    &mut p.tcpretrans_accept_kretprobe,
                    &mut p.tcpretrans_accept_exit,
                    &mut p.tcpretrans_accept4_exit,
                ] {
                    accept.set_autoload(false);
                }
                Ok(())
            })?;
        let maps = skel.export_maps(ctx)?;
        Ok(Loaded {
            source: Box::new(Retransmits {
                maps,
                loss_probes: loss_probe_hooks(plan),
            }),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
