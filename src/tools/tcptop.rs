//! tcptop: top-like TCP throughput per process and connection, every interval.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd};

use clap::{Parser, ValueEnum};
use libbpf_rs::skel::Skel;
use libbpf_rs::{MapCore, MapFlags};

use crate::core::addr::{endpoint, ip_version, Tuple};
use crate::core::bpf::Pod;
use crate::core::caps::{btf_has, func_param_index, Hook, Plan};
use crate::core::cli::{Common, Family, Interval, MntnsFilter, PidFilter};
use crate::core::maps;
use crate::core::output::{comm_str, Column, Format, Output, Value};
use crate::core::table::Table;
use crate::core::time::hms_now;
use crate::tools::{announce, start, Tool};
use crate::tuple_of;

crate::skel!("tcptop");

unsafe impl Pod for types::tcptop_key {}
unsafe impl Pod for types::tcptop_bytes {}

pub static TOOL: Tool = Tool {
    name: "tcptop",
    aliases: &[],
    about: "Top TCP connections by payload bytes sent and received, every interval",
    plans: &[
        // The socket-layer tracepoints (6.3+) first: exact whatever else is traced. An fexit
        // program misses the calls in progress whenever any program is attached to or detached
        // from the same function (the kernel retires the old trampoline so that those calls
        // return without it), and tcp_recvmsg is mostly in progress, blocked waiting for data.
        Plan::new(
            "tp_btf",
            &[Hook::TpBtf],
            "sock/sock_send_length + sock/sock_recv_length",
        )
        .checked(has_send_length),
        Plan::new(
            "fexit",
            &[Hook::Fentry],
            "fexit/tcp_sendmsg + fexit/tcp_recvmsg (+ fexit/tcp_sendpage before 6.5)",
        )
        .checked(fexit_ready),
        Plan::new(
            "kprobe",
            &[Hook::Kprobe],
            "kprobe+kretprobe/tcp_sendmsg, tcp_recvmsg (+ tcp_sendpage before 6.5)",
        )
        .checked(has_socket_calls),
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcptopSkelBuilder>,
    export: None,
};

/// The fexit programs read arguments and return values with bpf_get_func_arg/ret.
fn fexit_ready() -> Result<(), String> {
    crate::core::caps::func_ret_helpers()?;
    has_socket_calls()
}

fn has_socket_calls() -> Result<(), String> {
    btf_has("tcp_sendmsg")?;
    btf_has("tcp_recvmsg")?;
    recv_flags_arg().map(|_| ())
}

/// Which argument of tcp_recvmsg() holds its flags on this kernel (for MSG_PEEK).
fn recv_flags_arg() -> Result<usize, String> {
    match func_param_index("tcp_recvmsg", "flags") {
        Some(i @ (3 | 4)) => Ok(i),
        Some(i) => Err(format!(
            "tcp_recvmsg has its flags as argument {i}, not 3 or 4"
        )),
        None => Err("tcp_recvmsg has no 'flags' argument in kernel BTF".into()),
    }
}

fn has_send_length() -> Result<(), String> {
    btf_has("btf_trace_sock_send_length")
        .map_err(|e| format!("{e} (the kernel has no sock:sock_send_length tracepoint)"))
}

const EXAMPLES: &str = "\
Examples:
  tcptop                  # every second, clearing the screen
  tcptop -C 5 10          # every 5 seconds, 10 times, without clearing the screen
  tcptop -p 181           # only PID 181
  tcptop -c /sys/fs/cgroup/system.slice   # only sockets of that cgroup and below it
  tcptop -s sent -r 5     # the 5 connections that sent the most
  tcptop --json           # one object per connection per interval, exact byte counts

RX_KB/TX_KB are payload KiB a process received (recv/read) and sent (send/write, sendfile) on
the connection during the interval, rounded up (a connection that moved any byte shows at least
1; --json has exact bytes). TX is what the process handed to the socket: a send or sendfile
returns once its bytes are queued in the socket's send buffer, not once they left, so for a
slow reader TX runs ahead of what left by up to the send buffer (tcp_wmem's maximum, 4 MiB by
default). MSG_PEEK reads are not counted. Data moved without a socket call (splice from a
socket, kTLS, sockmap) is not seen.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Sort {
    /// Sent + received
    All,
    Sent,
    Received,
}

#[derive(Parser, Debug)]
#[command(name = "tcptop", about = "Summarize TCP send/recv throughput by connection", after_help = EXAMPLES)]
// libbpf-tools' -c CGROUP: the common --cgroup, one option with its letter.
#[command(mut_arg("cgroup", |a| a.short('c')))]
struct Opts {
    /// Do not clear the screen
    #[arg(short = 'C', long = "noclear")]
    noclear: bool,
    /// Skip the loadavg summary line
    #[arg(short = 'S', long = "nosummary")]
    nosummary: bool,
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    mntns: MntnsFilter,
    #[command(flatten)]
    family: Family,
    /// Sort by
    #[arg(short = 's', long = "sort", value_enum, default_value = "all")]
    sort: Sort,
    /// Rows to print each interval (default 20; --json: all)
    #[arg(short = 'r', long = "rows", value_parser = parse_rows)]
    rows: Option<usize>,
    #[command(flatten)]
    interval: Interval,
    #[command(flatten)]
    common: Common,
}

fn parse_rows(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("'{s}' is not a positive number of rows")),
    }
}

/// One connection in one interval, as printed.
struct Line {
    time: String,
    local: String,
    remote: String,
    r: Row,
}

fn table() -> Table<Line> {
    Table::<Line>::new()
        .col(Column::json("time"), |l| Value::Str(&l.time))
        .task(-7, -12, |l| (l.r.pid, &l.r.comm))
        .col(Column::json("ip"), |l| {
            Value::U64(ip_version(l.r.tuple.family))
        })
        .col(Column::table("LADDR", -26), |l| Value::Str(&l.local))
        .col(Column::json("laddr"), |l| Value::Ip(l.r.tuple.laddr))
        .col(Column::json("lport"), |l| {
            Value::U64(l.r.tuple.lport.into())
        })
        .col(Column::table("RADDR", -26), |l| Value::Str(&l.remote))
        .col(Column::json("raddr"), |l| Value::Ip(l.r.tuple.raddr))
        .col(Column::json("rport"), |l| {
            Value::U64(l.r.tuple.rport.into())
        })
        // Rounded up: a connection that moved a few bytes is not shown as 0 / 0.
        .col(Column::table("RX_KB", 6), |l| {
            Value::U64(l.r.rx.div_ceil(1024))
        })
        .col(Column::table("TX_KB", 6), |l| {
            Value::U64(l.r.tx.div_ceil(1024))
        })
        .col(Column::json("rx_bytes"), |l| Value::U64(l.r.rx))
        .col(Column::json("tx_bytes"), |l| Value::U64(l.r.tx))
}

struct Row {
    pid: u32,
    cgroup: u64,
    comm: String,
    tuple: Tuple,
    rx: u64,
    tx: u64,
}

fn sort_rows(rows: &mut [Row], by: Sort) {
    let key = |r: &Row| match by {
        Sort::All => r.rx + r.tx,
        Sort::Sent => r.tx,
        Sort::Received => r.rx,
    };
    rows.sort_by(|a, b| {
        key(b)
            .cmp(&key(a))
            .then(a.pid.cmp(&b.pid))
            .then(a.tuple.lport.cmp(&b.tuple.lport))
    });
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    o.mntns.apply(&mut s.filters)?;
    s.filters.family = o.family.af();

    let skel = s.load::<TcptopSkelBuilder>(|open, plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        if !plan.uses(Hook::TpBtf) {
            rodata.recv_flags_arg =
                recv_flags_arg().map_err(|e| anyhow::anyhow!("tcptop: {e}"))? as u32;
        }
        // tcp_sendpage() (sendfile, splice) went away in Linux 6.5: splice now goes through
        // tcp_sendmsg().
        if btf_has("tcp_sendpage").is_err() {
            let p = &mut open.progs;
            p.tcptop_sendpage_exit.set_autoload(false);
            p.tcptop_sendpage_kprobe.set_autoload(false);
            p.tcptop_sendpage_kretprobe.set_autoload(false);
        }
        Ok(())
    })?;

    let format = o.common.format();
    let rows_limit = o.rows.unwrap_or(if format == Format::Json {
        usize::MAX
    } else {
        20
    });
    let clear = format == Format::Table && !o.noclear && std::io::stdout().is_terminal();
    let table = table().containers(&o.common, |l| l.r.cgroup);
    let mut out = table.output(format);
    announce("TCP sends and receives");

    // The map the kernel writes into; the other one is idle.
    let mut live_is_a = true;
    s.run.every(o.interval.every(), o.interval.count, || {
        let (idle, next) = if live_is_a {
            (&skel.maps.counts_a, &skel.maps.counts_b)
        } else {
            (&skel.maps.counts_b, &skel.maps.counts_a)
        };
        // Swapping waits for programs still writing into the old map (synchronize_rcu).
        let fd = next.as_fd().as_raw_fd() as u32;
        skel.maps
            .counts_live
            .update(&0u32.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY)?;
        live_is_a = !live_is_a;

        let mut rows: Vec<Row> = maps::entries::<types::tcptop_key, types::tcptop_bytes>(idle)?
            .into_iter()
            .map(|(k, v)| Row {
                pid: k.pid,
                cgroup: k.cgroup,
                comm: comm_str(&k.comm),
                tuple: tuple_of!(k.tuple),
                rx: v.rx,
                tx: v.tx,
            })
            .collect();
        maps::clear(idle)?;
        sort_rows(&mut rows, o.sort);
        rows.truncate(rows_limit);
        print_interval(&table, &mut out, &o, clear, rows);
        if !out.flush() {
            anyhow::bail!("stdout closed");
        }
        Ok(())
    })?;
    s.report(skel.object());
    let full = skel.maps.bss_data.as_deref().map_or(0, |b| b.map_full);
    if full > 0 {
        eprintln!("netbpf tcptop: {full} sends/receives not counted (connection map full)");
    }
    Ok(())
}

fn print_interval(table: &Table<Line>, out: &mut Output, o: &Opts, clear: bool, rows: Vec<Row>) {
    let time = hms_now();
    if out.format() == Format::Table {
        if clear {
            out.flush();
            // Home the cursor and clear the screen.
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(b"\x1b[H\x1b[2J");
            let _ = stdout.flush();
        } else {
            out.separate();
        }
        if !o.nosummary {
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            out.text(&format!("{time} loadavg: {}", load.trim_end()));
            out.text("");
        }
        out.header();
    }
    for r in rows {
        let t = &r.tuple;
        let line = Line {
            time: time.clone(),
            local: endpoint(t.laddr, t.lport),
            remote: endpoint(t.raddr, t.rport),
            r,
        };
        table.row(out, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::skel::SkelBuilder as _;
    use std::mem::MaybeUninit;
    use std::net::IpAddr;

    fn row(lport: u16, rx: u64, tx: u64) -> Row {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        Row {
            pid: 1,
            cgroup: 0,
            comm: "x".into(),
            tuple: Tuple {
                family: 2,
                laddr: lo,
                lport,
                raddr: lo,
                rport: 9,
            },
            rx,
            tx,
        }
    }

    /// The kprobe plan cannot attach on a kernel without kprobes, but its programs must still
    /// pass the verifier: load them (kprobe programs load anywhere; only attaching needs the PMU).
    #[test]
    fn kprobe_programs_verify() {
        let mut obj = MaybeUninit::uninit();
        let mut open = TcptopSkelBuilder::default().open(&mut obj).unwrap();
        let p = &mut open.progs;
        for fexit in [
            &mut p.tcptop_sendmsg_exit,
            &mut p.tcptop_recvmsg_exit,
            &mut p.tcptop_sendpage_exit,
        ] {
            fexit.set_autoload(false);
        }
        crate::core::bpf::assert_loads(open);
    }

    #[test]
    fn sorting() {
        let mut rows = vec![row(1, 10, 0), row(2, 0, 20), row(3, 6, 6)];
        sort_rows(&mut rows, Sort::All);
        assert_eq!(
            rows.iter().map(|r| r.tuple.lport).collect::<Vec<_>>(),
            [2, 3, 1]
        );
        sort_rows(&mut rows, Sort::Received);
        assert_eq!(
            rows.iter().map(|r| r.tuple.lport).collect::<Vec<_>>(),
            [1, 3, 2]
        );
        sort_rows(&mut rows, Sort::Sent);
        assert_eq!(
            rows.iter().map(|r| r.tuple.lport).collect::<Vec<_>>(),
            [2, 3, 1]
        );
    }
}
