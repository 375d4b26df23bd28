//! tcptop, tcpretrans, tcpsynbl, tcpwin, tcpnagle against real loopback traffic, each test in its
//! own network namespace with the tool filtered to it.

mod common;

use std::collections::HashMap;

use common::{
    assert_stock_kernel_plan, lossy_loopback, netbpf, ns_run, usable_plans, with, Finished, Netns,
    Tool,
};
use serde_json::Value;

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A stopped tool that exited cleanly, without losing events.
fn finished(f: Finished) -> Finished {
    assert!(f.status.success(), "{:?}: {}", f.status, f.stderr);
    assert!(!f.stderr.contains("lost"), "{}", f.stderr);
    f
}

// ---------------------------------------------------------------- tcptop

/// Bytes per (lport, rport) summed over every interval printed.
fn tcptop_totals(rows: &[Value]) -> HashMap<(u64, u64), (u64, u64)> {
    let mut totals = HashMap::new();
    for r in rows {
        let e = totals
            .entry((num(r, "lport"), num(r, "rport")))
            .or_insert((0, 0));
        e.0 += num(r, "rx_bytes");
        e.1 += num(r, "tx_bytes");
    }
    totals
}

/// Two connections at different rates, the server peeking (MSG_PEEK) before each read; with
/// `sendfile` the clients send with sendfile(2). Returns loadgen's report and tcptop's rows.
/// The last field: the tool said the kernel skipped runs of its programs (counts may then be
/// short by those calls).
fn tcptop_run(
    plan: &str,
    sendfile: bool,
    table: bool,
) -> (Value, Vec<Value>, Option<Vec<String>>, bool) {
    let ns = Netns::new();
    let path = ns.path();
    let env = [("NETBPF_PLAN", plan)];
    let json = Tool::start_with_env(&["tcptop", "--json", "--netns", &path, "0.2"], &env);
    let table =
        table.then(|| Tool::start_with_env(&["tcptop", "-C", "--netns", &path, "0.5"], &env));
    let mut args = vec![
        "streams",
        "--send",
        "100000,300000",
        "--reply",
        "5000,20000",
        "--chunks",
        "6",
        "--pause-ms",
        "100",
        "--peek",
    ];
    if sendfile {
        args.push("--sendfile");
    }
    let run = ns.loadgen(&args);
    let f = finished(json.stop());
    let skipped = f.stderr.contains("the kernel skipped");
    let rows = f.json();
    let table = table.map(|t| finished(t.stop()).lines);
    (run, rows, table, skipped)
}

/// Every byte of `run` (a loadgen streams report) counted exactly once, on both ends.
fn check_tcptop_totals(plan: &str, run: &Value, rows: &[Value], skipped: bool) {
    let totals = tcptop_totals(rows);
    let server = num(run, "server_port");
    let conns = run["conns"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert_eq!(
        totals.len(),
        4,
        "{plan}: two connections, both ends: {totals:?}"
    );
    for c in conns {
        let (cport, sent, received) = (num(c, "client_port"), num(c, "sent"), num(c, "received"));
        // Exact: every payload byte once, the MSG_PEEK'd bytes not twice. Unless the tool said
        // the kernel skipped program runs (a run preempted on its CPU blocks the next one
        // there): then never more than the bytes moved.
        let (client, server_side) = (totals[&(cport, server)], totals[&(server, cport)]);
        if skipped {
            eprintln!("{plan}: the kernel skipped runs: counts checked as upper bounds");
            assert!(client.0 <= received && client.1 <= sent, "{plan}: {rows:?}");
            assert!(
                server_side.0 <= sent && server_side.1 <= received,
                "{plan}: {rows:?}"
            );
        } else {
            assert_eq!(client, (received, sent), "{plan}: client {cport}");
            assert_eq!(
                server_side,
                (sent, received),
                "{plan}: server side of {cport}: {rows:?}"
            );
        }
        let client_rows = rows.iter().filter(|r| r["lport"] == cport).count();
        assert!(
            client_rows >= 2,
            "{plan}: paced over ~0.6 s, the client's sends span several 0.2 s intervals: {rows:?}"
        );
    }
    for r in rows {
        assert_eq!(r["pid"], run["pid"], "{plan}");
        assert_eq!(r["comm"], "loadgen", "{plan}");
        assert_eq!(
            (r["laddr"].as_str(), r["ip"].as_u64()),
            (Some("127.0.0.1"), Some(4)),
            "{plan}"
        );
        assert_eq!(r["time"].as_str().map(str::len), Some(8), "HH:MM:SS");
    }
}

/// Held by every tcptop test: with the fexit plan, a tool attaching to or detaching from
/// tcp_recvmsg while another tool's calls are in progress makes the kernel drop those calls'
/// fexit runs (see the tool's plan comment), so the exact counts need the others to wait.
static TCPTOP_ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn tcptop_alone() -> std::sync::MutexGuard<'static, ()> {
    TCPTOP_ALONE.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn tcptop_counts_every_byte_once_across_intervals() {
    let _alone = tcptop_alone();
    // The socket tracepoints on 6.3+ (Debian's 6.12); on 6.1 fexit on the socket calls, which
    // also see sendfile there (tcp_sendpage). Every plan this kernel can run must count the
    // same bytes.
    if common::vmtest_kernel().is_some() {
        // The socket tracepoints (6.3), else fexit (bpf_get_func_ret: 5.17), else kprobes.
        let plan = if common::has_sock_length_tracepoints() {
            "tp_btf"
        } else if common::btf_names("BPF_FUNC_get_func_ret") {
            "fexit"
        } else {
            "kprobe"
        };
        assert_stock_kernel_plan("tcptop", plan);
    }
    for (i, plan) in usable_plans("tcptop").iter().enumerate() {
        let (run, rows, table, skipped) = tcptop_run(plan, false, i == 0);
        check_tcptop_totals(plan, &run, &rows, skipped);
        let (by_sendfile, rows, _, skipped) = tcptop_run(plan, true, false);
        check_tcptop_totals(&format!("{plan} (sendfile)"), &by_sendfile, &rows, skipped);

        let Some(table) = table else { continue };
        // The table: a loadavg line first (no empty line before it), the bcc header,
        // addr:port endpoints, sorted by total.
        assert!(table[0].contains(" loadavg: "), "{table:?}");
        let header = table.iter().find(|l| l.starts_with("PID")).expect("header");
        let cols: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(cols, ["PID", "COMM", "LADDR", "RADDR", "RX_KB", "TX_KB"]);
        let big = num(&run["conns"][1], "client_port");
        let server = num(&run, "server_port");
        assert!(
            table
                .iter()
                .any(|l| l.contains(&format!("127.0.0.1:{big} "))
                    && l.contains(&format!("127.0.0.1:{server}"))),
            "{table:?}"
        );
    }
}

/// sendfile(2) of a large file to a reader that reads nothing: the call returns once its bytes
/// are queued in the socket's send buffer. tcptop counts what the process handed over (what the
/// calls returned), as its help says, although none of it has reached the reader; and a table
/// row of a few bytes shows 1 KiB, not 0.
#[test]
fn tcptop_sendfile_to_slow_reader_counts_what_was_queued() {
    const SCRIPT: &str = r#"
import json, os, socket, sys, tempfile
f = tempfile.TemporaryFile()
f.truncate(32 << 20)
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
c = socket.create_connection(l.getsockname())
s, _ = l.accept()
s.setblocking(False)
queued = 0
while True:
    try:
        n = os.sendfile(s.fileno(), f.fileno(), queued, 1 << 20)
    except BlockingIOError:
        break
    queued += n
c.send(b"hi")
print(json.dumps({"queued": queued, "server_port": l.getsockname()[1],
                  "client_port": c.getsockname()[1]}), flush=True)
sys.stdin.readline()
"#;
    let _alone = tcptop_alone();
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["tcptop", "--json", "--netns", &path, "60"]);
    let table = Tool::start(&["tcptop", "-C", "--netns", &path, "60"]);
    let mut child = ns
        .command("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let run: Value = serde_json::from_str(&line).unwrap();
    // Stopped while the reader has read nothing: the last interval is printed at exit.
    let rows = finished(json.stop()).json();
    let table = finished(table.stop()).lines;
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    let (queued, sport, cport) = (
        num(&run, "queued"),
        num(&run, "server_port"),
        num(&run, "client_port"),
    );
    assert!(queued > 1 << 20, "a send buffer's worth queued: {run}");
    let totals = tcptop_totals(&rows);
    assert_eq!(totals.get(&(sport, cport)), Some(&(0, queued)), "{rows:?}");
    // The client wrote 2 bytes and read none.
    assert_eq!(totals.get(&(cport, sport)), Some(&(0, 2)), "{rows:?}");
    let client = format!("127.0.0.1:{cport}");
    let small = table
        .iter()
        .find(|l| l.split_whitespace().nth(2) == Some(client.as_str()))
        .unwrap_or_else(|| panic!("{table:?}"));
    let cols: Vec<&str> = small.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 2..],
        ["0", "1"],
        "2 bytes sent show as 1 KiB: {small}"
    );
}

#[test]
fn tcptop_filters_and_options() {
    let _alone = tcptop_alone();
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["streams", "--send", "3000", "--reply", "1000"]);
    let other = ns.loadgen_waiting(&["streams", "--family", "6", "--send", "7000", "--reply", "0"]);
    let by_pid = Tool::start(&[
        "tcptop",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
        "0.3",
    ]);
    let v6 = Tool::start(&["tcptop", "--json", "--netns", &path, "-6", "0.3"]);
    let top1 = Tool::start(&[
        "tcptop", "--json", "--netns", &path, "-s", "received", "-r", "1", "60",
    ]);
    let nosummary = Tool::start(&["tcptop", "-C", "-S", "--netns", &path, "60"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcptop", "--json", "--netns", &elsewhere.path(), "0.3"]);
    let (a, b) = (traced.go(), other.go());

    let rows = by_pid.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["pid"] == a["pid"]),
        "{rows:?}"
    );
    let totals = tcptop_totals(&rows);
    let cport = num(&a["conns"][0], "client_port");
    assert_eq!(totals[&(cport, num(&a, "server_port"))], (1000, 3000));

    let rows = v6.stop().json();
    assert!(!rows.is_empty(), "v6 traffic was made");
    assert!(
        rows.iter()
            .all(|r| r["ip"] == 6 && r["pid"] == b["pid"] && r["laddr"] == "::1"),
        "{rows:?}"
    );

    // One interval, ended by Ctrl-C: the single row is the one that received the most.
    let rows = top1.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (num(&rows[0], "rx_bytes"), rows[0]["pid"].clone()),
        (7000, b["pid"].clone())
    );

    let lines = nosummary.stop().lines;
    assert!(!lines.iter().any(|l| l.contains("loadavg")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("PID")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("[::1]:")),
        "IPv6 endpoints in brackets: {lines:?}"
    );

    assert!(
        other_ns.stop().lines.is_empty(),
        "another namespace's bytes leaked in"
    );
}

/// A dual-stack server ([::] listener) with an IPv4 client: its sockets are AF_INET6 with
/// v4-mapped addresses, but the connection is IPv4: -4 shows both ends, as IPv4.
#[test]
fn tcptop_dual_stack_sockets_are_ipv4() {
    let _alone = tcptop_alone();
    let ns = Netns::new();
    let path = ns.path();
    let v4 = Tool::start(&["tcptop", "--json", "--netns", &path, "-4", "60"]);
    let v6 = Tool::start(&["tcptop", "--json", "--netns", &path, "-6", "60"]);
    let run = ns.loadgen(&[
        "streams",
        "--dual-stack",
        "--send",
        "12345",
        "--reply",
        "678",
    ]);
    let rows = finished(v4.stop()).json();
    assert!(
        finished(v6.stop()).lines.is_empty(),
        "no IPv6 traffic was made"
    );
    let totals = tcptop_totals(&rows);
    let (server, client) = (
        num(&run, "server_port"),
        num(&run["conns"][0], "client_port"),
    );
    assert_eq!(
        totals[&(server, client)],
        (12345, 678),
        "server side: {rows:?}"
    );
    assert_eq!(
        totals[&(client, server)],
        (678, 12345),
        "client side: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|r| r["ip"] == 4 && r["laddr"] == "127.0.0.1" && r["raddr"] == "127.0.0.1"),
        "{rows:?}"
    );
}

// ---------------------------------------------------------------- tcpretrans

/// The segments retransmitted, as the sockets count them (tcpi_total_retrans), from these rows:
/// retransmits shown (R) that the kernel counted (sent, or dropped by a local qdisc: a
/// NET_XMIT_* result; not those that failed before sending, with an errno), and those the sockets
/// counted that no event showed (U).
fn retransmitted(rows: &[&Value]) -> u64 {
    rows.iter()
        .filter(|r| match r["type"].as_str() {
            Some("R") => {
                r["result"] == "Success" || r["result"].as_str().unwrap().starts_with("NET_XMIT")
            }
            Some("U") => true,
            _ => false,
        })
        .map(|r| num(r, "segs"))
        .sum()
}

#[test]
fn tcpretrans_shows_and_counts_retransmits() {
    let ns = Netns::new();
    lossy_loopback(&ns);
    let path = ns.path();
    let json = Tool::start(&["tcpretrans", "--json", "--netns", &path]);
    let count = Tool::start(&["tcpretrans", "-c", "--json", "--netns", &path]);
    let count_table = Tool::start(&["tcpretrans", "-c", "--netns", &path]);
    let table = Tool::start(&["tcpretrans", "-s", "--netns", &path]);
    let run = ns.loadgen(&["retrans", "--bytes", "65536"]);
    let rows = finished(json.stop()).json();
    let counted = finished(count.stop()).json();
    let count_table = finished(count_table.stop());
    let table = finished(table.stop());

    let (cport, sport) = (num(&run, "client_port"), num(&run, "server_port"));
    let all_client = with(&rows, "lport", cport);
    // Exact: the segments of all events are what the kernel counted for the socket.
    assert_eq!(
        retransmitted(&all_client),
        num(&run, "total_retrans"),
        "{all_client:?}"
    );
    let client = with(&rows, "lport", cport)
        .into_iter()
        .filter(|r| r["type"] == "R")
        .collect::<Vec<_>>();
    assert!(
        !client.is_empty(),
        "a 64 KB burst through a 3000-byte queue must lose: {rows:?}"
    );
    for r in &client {
        assert_eq!(r["rport"], sport);
        assert_eq!(
            (r["laddr"].as_str(), r["raddr"].as_str()),
            (Some("127.0.0.1"), Some("127.0.0.1"))
        );
        assert_eq!(r["state"], "ESTABLISHED");
        assert_eq!(r["type"], "R");
        assert_eq!(
            (r["pid"].clone(), r["comm"].as_str()),
            (run["pid"].clone(), Some("loadgen"))
        );
        assert!(num(r, "segs") >= 1);
    }
    let segs: u64 = client.iter().map(|r| num(r, "segs")).sum();
    // Sequence numbers (mod 2^32) lie within the 64 KB just sent, on segment boundaries: the
    // burst was cut into 1448-byte segments (1500 MTU less headers and timestamps).
    let first = num(client[0], "seq") as u32;
    for r in &client {
        let offset = (num(r, "seq") as u32).wrapping_sub(first) as i32;
        assert!(
            offset.unsigned_abs() < 65536 && offset % 1448 == 0,
            "{client:?}"
        );
    }

    // -c: the same numbers, counted in the kernel, per connection: events and segments.
    let row = counted
        .iter()
        .find(|r| r["lport"] == cport && r["type"] == "R")
        .unwrap_or_else(|| panic!("{counted:?}"));
    assert_eq!(num(row, "retransmits"), client.len() as u64);
    assert_eq!(num(row, "segs"), segs);
    assert_eq!(
        (
            row["rport"].clone(),
            row["raddr"].as_str(),
            &row["ip"],
            &row["type"]
        ),
        (sport.into(), Some("127.0.0.1"), &4.into(), &"R".into())
    );

    // -s: the bcc columns plus SEQ.
    let header: Vec<&str> = table.lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TIME",
            "PID",
            "COMM",
            "IP",
            "LADDR:LPORT",
            "T>",
            "RADDR:RPORT",
            "STATE",
            "SEQ"
        ]
    );
    let line = table
        .lines
        .iter()
        .find(|l| l.contains(&format!("127.0.0.1:{cport} ")))
        .expect("a line for the client");
    assert!(
        line.contains(&format!(" R> 127.0.0.1:{sport} ")) && line.contains(" ESTABLISHED "),
        "{line}"
    );
    // A T column (R, U) comes only when the kernel left retransmits unseen (U rows).
    let mut header: Vec<&str> = count_table.lines[0].split_whitespace().collect();
    let typed = header[0] == "T";
    if typed {
        header.remove(0);
    }
    assert_eq!(
        header,
        ["LADDR:LPORT", "RADDR:RPORT", "RETRANSMITS", "SEGS"]
    );
    let mut cells: Vec<&str> = count_table
        .lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .find(|c| c[usize::from(typed)] == format!("127.0.0.1:{cport}") && c[0] != "U")
        .expect("a count for the client");
    if typed {
        assert_eq!(cells.remove(0), "R");
    }
    assert_eq!(
        cells,
        [
            format!("127.0.0.1:{cport}"),
            format!("127.0.0.1:{sport}"),
            client.len().to_string(),
            segs.to_string()
        ]
    );
}

/// Drops every SYN-ACK arriving on lo in `ns` (IPv4 and IPv6), after the server has sent it:
/// the sender counts a sent segment, the client never sees it. The redirect to a veth that is
/// down drops the packet: this kernel has no gact (`action drop`) but has mirred.
fn drop_synacks_on_arrival(ns: &Netns) {
    common::ip_in(
        ns,
        &[
            "link", "add", "sink0", "type", "veth", "peer", "name", "sink1",
        ],
    );
    ns_run(ns, "tc", &["qdisc", "add", "dev", "lo", "clsact"]);
    // The TCP flags byte: 13 bytes into the TCP header, after a 20-byte IPv4 header (no options
    // on loopback) or the 40-byte IPv6 one.
    for (proto, l4, flags_at) in [("ip", "ip protocol", "33"), ("ipv6", "ip6 protocol", "53")] {
        let mut args = vec![
            "filter", "add", "dev", "lo", "ingress", "protocol", proto, "u32",
        ];
        args.extend(["match"]);
        args.extend(l4.split(' '));
        args.extend(["6", "0xff", "match", "u8", "0x12", "0x12", "at", flags_at]);
        args.extend(["action", "mirred", "egress", "redirect", "dev", "sink0"]);
        ns_run(ns, "tc", &args);
    }
}

/// SYN-ACKs lost on the way to the client make the server send them again: each is a line in
/// SYN_RECV with the request's addresses and the listener's owner, and with the client's SYN
/// retransmits they add up to the namespace's RetransSegs, in the stream and in -c.
#[test]
fn tcpretrans_shows_synack_retransmits() {
    let ns = Netns::new();
    drop_synacks_on_arrival(&ns);
    let path = ns.path();
    let json = Tool::start(&["tcpretrans", "--json", "--netns", &path]);
    let count = Tool::start(&["tcpretrans", "-c", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpretrans", "--netns", &path]);
    let before = common::snmp_counter(&ns, "Tcp", "RetransSegs");
    let runs: Vec<Value> = std::thread::scope(|s| {
        let v4 = s.spawn(|| ns.loadgen(&["halfopen", "--family", "4", "--wait-ms", "3500"]));
        let v6 = s.spawn(|| ns.loadgen(&["halfopen", "--family", "6", "--wait-ms", "3500"]));
        vec![v4.join().unwrap(), v6.join().unwrap()]
    });
    let retrans_segs = common::snmp_counter(&ns, "Tcp", "RetransSegs") - before;
    let rows = finished(json.stop()).json();
    let counted = finished(count.stop()).json();
    let table = finished(table.stop());

    for (run, addr, shown) in runs
        .iter()
        .zip([("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")])
        .map(|(r, (a, s))| (r, a, s))
    {
        let (sport, cport) = (num(run, "server_port"), num(run, "client_port"));
        // R lines; a U line counts SYN-ACKs the kernel did not show (summed below).
        let synacks: Vec<&Value> = with(&rows, "state", "SYN_RECV")
            .into_iter()
            .filter(|r| r["lport"] == sport && r["laddr"] == addr && r["type"] == "R")
            .collect();
        assert!(!synacks.is_empty(), "{addr}: {rows:?}");
        for r in &synacks {
            assert_eq!(
                (&r["rport"], r["laddr"].as_str(), r["raddr"].as_str()),
                (&cport.into(), Some(addr), Some(addr)),
                "{r}"
            );
            // The listener's owner, learned when it called listen().
            assert_eq!(
                (&r["pid"], r["comm"].as_str()),
                (&run["pid"], Some("loadgen"))
            );
            assert_eq!(
                (&r["type"], &r["segs"], &r["result"]),
                (&"R".into(), &1.into(), &"Success".into())
            );
        }
        // -c: one row for the request, the same SYN-ACKs.
        let row = counted
            .iter()
            .find(|r| r["lport"] == sport && r["laddr"] == addr && r["type"] == "R")
            .unwrap_or_else(|| panic!("{counted:?}"));
        assert_eq!(
            (num(row, "retransmits"), num(row, "segs"), &row["rport"]),
            (synacks.len() as u64, synacks.len() as u64, &cport.into())
        );
        let line = table
            .lines
            .iter()
            .find(|l| l.contains(" SYN_RECV") && l.contains(&format!(" {shown}:{sport} ")))
            .unwrap_or_else(|| panic!("{:?}", table.lines));
        assert!(
            line.contains(" loadgen ") && line.contains(&format!(" R> {shown}:{cport} ")),
            "{line}"
        );
    }
    // Everything retransmitted in the namespace: the SYN-ACKs and the clients' SYNs, shown (R)
    // or not (U).
    assert!(
        rows.iter()
            .all(|r| ["SYN_RECV", "SYN_SENT"].contains(&r["state"].as_str().unwrap())),
        "{rows:?}"
    );
    let segs = |rows: &[Value]| -> u64 { rows.iter().map(|r| num(r, "segs")).sum() };
    assert_eq!(segs(&rows), retrans_segs, "{rows:?}");
    assert_eq!(segs(&counted), retrans_segs, "{counted:?}");
}

#[test]
fn tcpretrans_filters() {
    let ns = Netns::new();
    lossy_loopback(&ns);
    let path = ns.path();
    let v4 = ns.loadgen_waiting(&["retrans", "--bytes", "40000"]);
    let v6 = ns.loadgen_waiting(&["retrans", "--family", "6", "--bytes", "40000"]);
    let only6 = Tool::start(&["tcpretrans", "--json", "--netns", &path, "-6"]);
    let by_pid = Tool::start(&[
        "tcpretrans",
        "--json",
        "--netns",
        &path,
        "-p",
        &v4.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpretrans", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (v4.go(), v6.go());

    let rows = only6.stop().json();
    assert!(!rows.is_empty(), "the v6 burst retransmits too");
    assert!(
        rows.iter()
            .all(|r| r["ip"] == 6 && r["laddr"] == "::1" && r["pid"] == b["pid"]),
        "{rows:?}"
    );
    let rows = by_pid.stop().json();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["pid"] == a["pid"] && r["ip"] == 4),
        "{rows:?}"
    );
    assert!(other_ns.stop().lines.is_empty());
}

/// An accepted connection belongs to the process that accepted it, even when another process
/// listened on the same port (SO_REUSEPORT) after it and closed again: that listener's close
/// must not take the first one's owner with it, and accept() says who the owner is.
#[test]
fn tcpretrans_owner_of_accepted_connections_with_reuseport() {
    for plan in usable_plans("tcpretrans") {
        if plan == "tp_btf" {
            // No accept() hook: a passive connection's owner is its listener's, a guess.
            continue;
        }
        let ns = Netns::new();
        lossy_loopback(&ns);
        let tool = Tool::start_with_env(
            &["tcpretrans", "--json", "--netns", &ns.path()],
            &[("NETBPF_PLAN", &plan)],
        );
        let run = ns.loadgen(&["retrans", "--server-sends", "--decoy", "--bytes", "65536"]);
        let rows = finished(tool.stop()).json();
        let server = with(&rows, "lport", run["server_port"].clone());
        assert!(
            !server.is_empty(),
            "{plan}: the server's burst must lose: {rows:?}"
        );
        assert_ne!(run["decoy_pid"], 0);
        for r in &server {
            assert_eq!(r["rport"], run["client_port"]);
            assert_eq!(
                (&r["pid"], &r["comm"]),
                (&run["pid"], &"loadgen".into()),
                "{plan}: owned by the accepting process, not {}: {r}",
                run["decoy_pid"]
            );
        }
        assert_eq!(
            retransmitted(&server),
            num(&run, "total_retrans"),
            "{plan}: {server:?}"
        );
    }
}

/// -l: tail loss probes, where kprobes or fentry allow (stock kernels); a clear refusal elsewhere.
/// Across a veth whose sending side loses 10% (netem), request/reply rounds leave the client idle
/// after each request: when a request's last segment is lost, the probe timer fires.
#[test]
fn tcpretrans_loss_probes() {
    let plans: Vec<String> = usable_plans("tcpretrans")
        .into_iter()
        .filter(|p| p == "fentry" || p == "kprobe")
        .collect();
    if std::env::var("NETBPF_VMTEST_KERNEL").is_ok() {
        // fentry's plan needs bpf_get_func_ret (5.17); kprobes every stock kernel has.
        let want: &[&str] = match common::btf_names("BPF_FUNC_get_func_ret") {
            true => &["fentry", "kprobe"],
            false => &["kprobe"],
        };
        assert_eq!(plans, want, "stock kernels");
    }
    if plans.is_empty() {
        let o = netbpf(&["tcpretrans", "-l", "-d", "0.3"]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(
                "not available on this kernel: needs kprobe or fentry on tcp_send_loss_probe"
            ),
            "{}",
            stderr(&o)
        );
        return;
    }
    for plan in plans {
        let (a, b) = common::veth_pair();
        ns_run(
            &a,
            "tc",
            &["qdisc", "add", "dev", "va", "root", "netem", "loss", "10%"],
        );
        let probes_before = common::netstat_counter(&a, "TCPLossProbes");
        let tool = Tool::start_with_env(
            &["tcpretrans", "-l", "--json", "--netns", &a.path()],
            &[("NETBPF_PLAN", &plan)],
        );
        let run = a.loadgen(&[
            "pingpong",
            "--to",
            "10.9.0.2",
            "--server-netns",
            &b.path(),
            "--port",
            "7931",
            "--rounds",
            "150",
            "--size",
            "3000",
        ]);
        let rows = finished(tool.stop()).json();
        let probes = common::netstat_counter(&a, "TCPLossProbes") - probes_before;
        let cport = num(&run, "client_port");
        let probe_rows = with(&rows, "type", "L");
        assert!(
            probes > 0,
            "{plan}: 150 rounds at 10% loss: no loss probe? {rows:?}"
        );
        // Exact: one line per probe sent, as the kernel counts them.
        assert_eq!(probe_rows.len() as u64, probes, "{plan}: {rows:?}");
        for r in &rows {
            assert_eq!(
                (
                    r["lport"].as_u64(),
                    r["rport"].as_u64(),
                    r["laddr"].as_str(),
                    r["raddr"].as_str()
                ),
                (Some(cport), Some(7931), Some("10.9.0.1"), Some("10.9.0.2")),
                "{plan}: {r}"
            );
            assert_eq!(
                (&r["pid"], &r["comm"]),
                (&run["pid"], &"loadgen".into()),
                "{plan}"
            );
            // SYN_SENT: a lost SYN is retransmitted too; FIN_WAIT1: the client closes first,
            // and its FIN may be lost.
            let state = r["state"].as_str().unwrap();
            assert!(
                ["SYN_SENT", "ESTABLISHED", "FIN_WAIT1"].contains(&state),
                "{plan}: {r}"
            );
        }
        // Retransmits (the probes that resent a segment among them): the kernel's count.
        // Those of FIN_WAIT1 come after loadgen read the count (at close), so not in it.
        let before_close: Vec<&Value> = rows
            .iter()
            .filter(|r| r["type"] != "L" && r["state"] != "FIN_WAIT1")
            .collect();
        assert_eq!(
            retransmitted(&before_close),
            num(&run, "client_total_retrans"),
            "{plan}: {rows:?}"
        );
    }
}

// ---------------------------------------------------------------- tcpsynbl

#[test]
fn tcpsynbl_histogram_and_drops() {
    // Stock kernels: fentry (6.12) or kprobes (6.1: fentry trampolines take at most 6 arguments
    // there, tcp_v4_syn_recv_sock has 7) on tcp_conn_request and tcp_v4/v6_syn_recv_sock, the
    // listener in hand; elsewhere SYNs at consume_skb and handshake ACKs by drop reason.
    let stock = std::env::var("NETBPF_VMTEST_KERNEL").unwrap_or_default();
    assert_stock_kernel_plan("tcpsynbl", if stock == "6.1" { "kprobe" } else { "fentry" });
    for plan in usable_plans("tcpsynbl") {
        check_tcpsynbl(&plan);
    }
}

fn check_tcpsynbl(plan: &str) {
    let ns = Netns::new();
    let path = ns.path();
    let env = [("NETBPF_PLAN", plan)];
    let json = Tool::start_with_env(&["tcpsynbl", "--json", "--netns", &path], &env);
    let table = Tool::start_with_env(&["tcpsynbl", "--netns", &path], &env);
    // A backlog-2 listener nobody accepts from, 6 clients: the first delays its handshake ACK;
    // the next three fill the queue (the kernel admits limit + 1); the last two SYNs find it full.
    let run = ns.loadgen(&[
        "synbl",
        "--backlog",
        "2",
        "--clients",
        "6",
        "--hold-ms",
        "600",
    ]);
    let json = finished(json.stop());
    let rows = json.json();
    let table = finished(table.stop());
    // Handshake ACK drops are seen everywhere but with the tp_btf plan on kernels without their
    // drop reason (TCP_LISTEN_OVERFLOW, 6.14+), where the tool says so.
    let acks_seen = !json
        .stderr
        .contains("netbpf tcpsynbl: handshake ACKs dropped at a full queue are not shown");
    assert!(acks_seen || plan == "tp_btf", "{plan}: {}", json.stderr);

    // The queue was 0, 1 and 2 long as each handshake completed.
    let hists: Vec<&Value> = rows.iter().filter(|r| r["hist"] == "backlog").collect();
    assert_eq!(hists.len(), 1, "{plan}: {rows:?}");
    assert_eq!(hists[0]["max_backlog"], 2);
    assert_eq!(
        hists[0]["buckets"],
        serde_json::json!([
            {"low":0,"high":1,"count":1},
            {"low":1,"high":2,"count":1},
            {"low":2,"high":4,"count":1}
        ]),
        "{plan}"
    );
    // Two SYNs dropped at the full queue, then the delayed handshake ACK (and again if the
    // server resent its SYN-ACK, after a second, before the listener closed: a slow machine).
    let drops: Vec<&Value> = rows.iter().filter(|r| r["event"] == "drop").collect();
    let kinds: Vec<&str> = drops.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds[..2], ["syn", "syn"], "{plan}: {rows:?}");
    if acks_seen {
        assert!(
            kinds.len() >= 3 && kinds[2..].iter().all(|k| *k == "ack"),
            "{plan}: {rows:?}"
        );
    } else {
        assert_eq!(kinds.len(), 2, "{plan}: {rows:?}");
    }
    for d in &drops {
        assert_eq!(d["lport"], run["port"]);
        assert_eq!(
            (
                d["laddr"].as_str(),
                d["ip"].as_u64(),
                num(d, "backlog"),
                num(d, "max_backlog")
            ),
            (Some("127.0.0.1"), Some(4), 3, 2),
            "{plan}: {d}"
        );
    }
    // The kernel's own count agrees: every overflow is one of these drops.
    let overflows = rows
        .iter()
        .find(|r| r.get("listen_overflows").is_some())
        .expect("netstat");
    let n = num(overflows, "listen_overflows");
    if acks_seen {
        assert_eq!(n, drops.len() as u64, "{plan}: {rows:?}");
    } else {
        assert!(n > drops.len() as u64, "{plan}: {rows:?}");
    }
    assert_eq!(num(overflows, "listen_overflows_interval"), n);

    let lines = &table.lines;
    let port = num(&run, "port");
    let tail = format!(" (127.0.0.1:{port}, accept queue 3 > limit 2)");
    let drop_lines: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest))
        .filter(|l| l.starts_with("dropping a "))
        .collect();
    let mut want = vec![format!("dropping a SYN.{tail}"); 2];
    want.extend(vec![
        format!("dropping a handshake ACK.{tail}");
        kinds.len() - 2
    ]);
    assert_eq!(drop_lines, want, "{plan}: {lines:?}");
    assert!(!lines[0].is_empty(), "no empty first line: {lines:?}");
    assert!(lines.iter().any(|l| l == "@backlog[2]:"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[2, 4)") && l.contains(" 1 |")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ListenOverflows: ")),
        "{lines:?}"
    );
}

/// --netns given as a cookie: the counters are read from a process in that namespace.
#[test]
fn tcpsynbl_netns_by_cookie() {
    let ns = Netns::new();
    let waiting = ns.loadgen_waiting(&[
        "synbl",
        "--backlog",
        "1",
        "--clients",
        "4",
        "--hold-ms",
        "300",
    ]);
    // The waiting loadgen is a process in the namespace: the cookie can be turned into a place
    // to read the namespace's counters from.
    let cookie = ns.cookie();
    let tool = Tool::start(&["tcpsynbl", "--json", "--netns", &cookie.to_string()]);
    waiting.go();
    let f = finished(tool.stop());
    assert!(!f.stderr.contains("no ListenOverflows"), "{}", f.stderr);
    let rows = f.json();
    let n = rows
        .iter()
        .find_map(|r| r["listen_overflows"].as_u64())
        .unwrap_or_else(|| panic!("{rows:?}"));
    let drops = rows.iter().filter(|r| r["event"] == "drop").count() as u64;
    assert!(
        n >= 1 && n == drops,
        "{n} overflows, {drops} drops: {rows:?}"
    );
}

/// More backlog limits than the kernel map has histograms for (1,024): the samples of the limits
/// that found no room are counted and said at exit, not dropped silently.
#[test]
fn tcpsynbl_reports_samples_a_full_map_dropped() {
    use std::os::fd::AsRawFd;
    const LIMITS: usize = 1100;
    let ns = Netns::new();
    let path = ns.path();
    // 1,100 listeners and their connections need more descriptors than a default soft limit
    // of 1024 (the VMs'): up to the hard limit, where the system allows raising it.
    let mut nofile = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut nofile) == 0 && nofile.rlim_cur < 4096 {
            nofile.rlim_cur = nofile.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &nofile);
        }
    }
    let tool = Tool::start(&["tcpsynbl", "--json", "--netns", &path]);
    // One listener per backlog limit 1..=LIMITS, one connection to each, from a thread that
    // entered the namespace.
    std::thread::spawn(move || {
        let netns = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on this thread with an fd it holds.
        assert_eq!(
            unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let listeners: Vec<std::net::TcpListener> = (1..=LIMITS)
            .map(|limit| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                // listen() again on a listening socket sets its backlog limit.
                // SAFETY: listen on a socket this thread owns.
                assert_eq!(unsafe { libc::listen(l.as_raw_fd(), limit as i32) }, 0);
                l
            })
            .collect();
        for l in &listeners {
            std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        }
    })
    .join()
    .unwrap();
    let f = finished(tool.stop());
    let rows = f.json();
    let hists = rows.iter().filter(|r| r["hist"] == "backlog").count();
    assert_eq!(hists, 1024, "the map holds 1,024 limits");
    let want = format!(
        "netbpf tcpsynbl: {} updates not counted (a kernel map was full",
        LIMITS - hists
    );
    assert!(f.stderr.contains(&want), "{}", f.stderr);
}

#[test]
fn tcpsynbl_intervals_and_family_filter() {
    let ns = Netns::new();
    let path = ns.path();
    let only6 = Tool::start(&["tcpsynbl", "--json", "--netns", &path, "-6"]);
    let every = Tool::start(&["tcpsynbl", "--json", "-T", "--netns", &path, "0.3"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpsynbl", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&[
        "synbl",
        "--backlog",
        "2",
        "--clients",
        "4",
        "--hold-ms",
        "300",
    ]);
    ns.loadgen(&[
        "synbl",
        "--family",
        "6",
        "--backlog",
        "3",
        "--clients",
        "5",
        "--hold-ms",
        "300",
    ]);
    let rows = only6.stop().json();
    let hists: Vec<&Value> = rows.iter().filter(|r| r["hist"] == "backlog").collect();
    assert_eq!(hists.len(), 1, "{rows:?}");
    assert_eq!(hists[0]["max_backlog"], 3);
    let total: u64 = hists[0]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| num(b, "count"))
        .sum();
    assert_eq!(total, 4, "limit 3 admits 4: {rows:?}");
    assert!(rows
        .iter()
        .filter(|r| r["event"] == "drop")
        .all(|r| r["ip"] == 6 && r["laddr"] == "::1"));

    // Interval mode: each histogram holds its own interval only; together they hold all 7.
    let rows = every.stop().json();
    let hists: Vec<&Value> = rows.iter().filter(|r| r["hist"] == "backlog").collect();
    assert!(hists.len() >= 2, "{rows:?}");
    let total: u64 = hists
        .iter()
        .flat_map(|h| h["buckets"].as_array().unwrap())
        .map(|b| num(b, "count"))
        .sum();
    assert_eq!(total, 7);

    let rows = other_ns.stop().json();
    assert!(
        rows.iter()
            .all(|r| r.get("hist").is_none() && r.get("event").is_none()),
        "another namespace's listeners leaked in: {rows:?}"
    );
    assert_eq!(
        rows.iter().find_map(|r| r["listen_overflows"].as_u64()),
        Some(0)
    );
}

// ---------------------------------------------------------------- tcpwin

#[test]
fn tcpwin_rows_and_plot() {
    let ns = Netns::new();
    let path = ns.path();
    let dir = std::env::temp_dir().join(format!("netbpf-tcpwin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("cwnd.svg");
    let json = Tool::start(&["tcpwin", "--json", "--netns", &path]);
    let csv = Tool::start(&["tcpwin", "--netns", &path, "--plot", svg.to_str().unwrap()]);
    let run = ns.loadgen(&[
        "exchange",
        "--client-send",
        "2000000",
        "--server-send",
        "1000",
    ]);
    let rows = finished(json.stop()).json();
    let csv = finished(csv.stop());

    let cport = num(&run, "client_port");
    let client = with(&rows, "lport", cport);
    // 2 MB in 64 KB loopback segments: dozens of ACKs, fewer when a slow receiver (an emulated
    // VM) lets them stretch over many segments.
    assert!(client.len() >= 5, "2 MB draws many ACKs: {}", client.len());
    let sock = client[0]["sock"].as_str().unwrap().to_string();
    assert!(sock.starts_with("0xffff"), "{sock}");
    let mut last = 0;
    for r in &client {
        assert_eq!(r["event"], "rcv");
        assert_eq!(r["sock"], sock.as_str(), "one socket, one address");
        assert!(num(r, "snd_cwnd") > 0 && num(r, "snd_ssthresh") > 0);
        assert!(num(r, "sk_sndbuf") > 0);
        assert_eq!(r["rport"], run["server_port"]);
        let t = num(r, "time_us");
        assert!(t >= last, "time goes forward");
        last = t;
        // Packets: loopback's 64 KiB segments keep a 2 MB window small.
        let ssthresh = num(r, "snd_ssthresh");
        assert!(num(r, "snd_cwnd") <= 10_000, "{r}");
        assert!(ssthresh == 0x7fff_ffff || ssthresh <= 10_000, "{r}");
    }
    // The values are the socket's own: the sample taken when the server's reply arrived holds
    // the window the client reported (TCP_INFO) once the exchange was done.
    let (cwnd, ssthresh) = (
        num(&run, "client_snd_cwnd"),
        num(&run, "client_snd_ssthresh"),
    );
    assert!(
        client
            .iter()
            .any(|r| num(r, "snd_cwnd") == cwnd && num(r, "snd_ssthresh") == ssthresh),
        "no sample with cwnd {cwnd} and ssthresh {ssthresh}: {client:?}"
    );

    assert_eq!(
        csv.lines[0],
        "event,sock,time_us,snd_cwnd,snd_ssthresh,sk_sndbuf,sk_wmem_queued,conn,laddr,lport,raddr,rport"
    );
    let mine: Vec<&String> = csv.lines.iter().filter(|l| l.contains(&sock)).collect();
    assert!(!mine.is_empty());
    for l in mine {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!((f.len(), f[0]), (12, "rcv"), "{l}");
        assert!(f[3].parse::<u32>().unwrap() > 0, "{l}");
        assert_eq!(
            f[8..],
            [
                "127.0.0.1",
                &cport.to_string(),
                "127.0.0.1",
                &run["server_port"].to_string()
            ],
            "{l}"
        );
    }
    assert!(csv.stderr.contains("plotted"), "{}", csv.stderr);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "not SVG"
    );
    assert!(text.contains("<polyline"), "no line drawn");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{cport} &gt; 127.0.0.1:{}",
            run["server_port"]
        )),
        "no legend"
    );
    // Well formed: every element that opens closes.
    assert_eq!(
        text.matches("<text").count(),
        text.matches("</text>").count()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The kernel reuses a closed socket's memory: many short connections one after the other
/// share a few socket addresses. Each connection must still be its own series (conn), with its
/// own ports, in the CSV and in the plot's legend.
#[test]
fn tcpwin_reused_socket_addresses_are_distinct_connections() {
    let ns = Netns::new();
    let path = ns.path();
    let svg = std::env::temp_dir().join(format!("netbpf-tcpwin-reuse-{}.svg", std::process::id()));
    let csv = Tool::start(&["tcpwin", "--netns", &path, "--plot", svg.to_str().unwrap()]);
    const CONNS: u64 = 40;
    for _ in 0..CONNS {
        ns.loadgen(&[
            "exchange",
            "--client-send",
            "200000",
            "--server-send",
            "200000",
        ]);
    }
    let csv = finished(csv.stop());
    let header: Vec<&str> = csv.lines[0].split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (sock, conn, lport, rport) = (col("sock"), col("conn"), col("lport"), col("rport"));
    // conn -> (sock, lport, rport), each the same on all of the connection's samples.
    let mut conns: HashMap<String, (String, String, String)> = HashMap::new();
    let mut ends: HashMap<(String, String), String> = HashMap::new();
    for l in &csv.lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        let this = (
            f[sock].to_string(),
            f[lport].to_string(),
            f[rport].to_string(),
        );
        let known = conns
            .entry(f[conn].to_string())
            .or_insert_with(|| this.clone());
        assert_eq!(
            *known, this,
            "conn {} changed socket or ports: {l}",
            f[conn]
        );
        // Each end of each connection (its pair of ports) is one conn.
        let c = ends
            .entry((this.1, this.2))
            .or_insert_with(|| f[conn].to_string());
        assert_eq!(c, f[conn], "{l}");
    }
    // Both ends of every connection: 2 per exchange.
    assert_eq!(conns.len() as u64, 2 * CONNS, "{:?}", conns);
    let addrs: std::collections::HashSet<&String> = conns.values().map(|c| &c.0).collect();
    assert!(
        (addrs.len() as u64) < 2 * CONNS,
        "no socket address was reused: the test shows nothing ({} addresses)",
        addrs.len()
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        csv.stderr
            .contains(&format!("plotted 8 of {} connections", 2 * CONNS)),
        "{}",
        csv.stderr
    );
    assert_eq!(
        text.matches(" &gt; 127.0.0.1:").count(),
        8,
        "one legend line per connection"
    );
    std::fs::remove_file(&svg).unwrap();
}

#[test]
fn tcpwin_port_filter() {
    let ns = Netns::new();
    let path = ns.path();
    let by_lport = Tool::start(&["tcpwin", "--json", "--netns", &path, "-L", "7701"]);
    let by_rport = Tool::start(&["tcpwin", "--json", "--netns", &path, "-D", "7702"]);
    let v6 = Tool::start(&["tcpwin", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let empty_plot =
        std::env::temp_dir().join(format!("netbpf-tcpwin-empty-{}.svg", std::process::id()));
    let other_ns = Tool::start(&[
        "tcpwin",
        "--json",
        "--netns",
        &elsewhere.path(),
        "--plot",
        empty_plot.to_str().unwrap(),
    ]);
    ns.loadgen(&[
        "exchange",
        "--port",
        "7701",
        "--client-send",
        "300000",
        "--server-send",
        "300000",
    ]);
    ns.loadgen(&[
        "exchange",
        "--family",
        "6",
        "--port",
        "7702",
        "--client-send",
        "300000",
    ]);
    let rows = by_lport.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["lport"] == 7701),
        "{rows:?}"
    );
    let rows = by_rport.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["rport"] == 7702),
        "{rows:?}"
    );
    let rows = v6.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["ip"] == 6),
        "{rows:?}"
    );
    // Nothing seen: no rows, and no empty chart left behind.
    let other = finished(other_ns.stop());
    assert!(other.lines.is_empty());
    assert!(
        other.stderr.contains("no samples, nothing to plot"),
        "{}",
        other.stderr
    );
    assert!(!empty_plot.exists());
}

// ---------------------------------------------------------------- tcpnagle

/// (map, flags) -> count from a tcpnagle --json run.
fn nagle_counts(rows: &[Value]) -> HashMap<(String, String), u64> {
    rows.iter()
        .filter(|r| r.get("map").is_some())
        .map(|r| {
            (
                (
                    r["map"].as_str().unwrap().to_string(),
                    r["flags"].as_str().unwrap().to_string(),
                ),
                num(r, "count"),
            )
        })
        .collect()
}

/// Samples in the @blocked_us histogram of a full-mode tcpnagle --json run.
fn blocked_samples(rows: &[Value]) -> u64 {
    rows.iter()
        .filter(|r| r["hist"] == "blocked_us")
        .flat_map(|r| r["buckets"].as_array().unwrap())
        .map(|b| num(b, "count"))
        .sum()
}

const PARTIAL_NOTE: &str = "netbpf tcpnagle: partial mode (fexit and kretprobe on tcp_write_xmit \
are unavailable here): no @blocked_us histogram; @nagle counts sends by the flags of their push, \
not transmit attempts; transmits the kernel starts itself (on ACKs, TSQ, the cork timer, \
uncorking) are not seen";

#[test]
fn tcpnagle_flags_of_small_writes() {
    // Stock kernels run the full tool: fexit on tcp_write_xmit (flags and blocked time).
    assert_stock_kernel_plan("tcpnagle", "fentry");
    for plan in usable_plans("tcpnagle") {
        check_tcpnagle(&plan);
    }
}

fn check_tcpnagle(plan: &str) {
    let ns = Netns::new();
    let path = ns.path();
    let env = [("NETBPF_PLAN", plan)];
    let modes = ["default", "nodelay", "cork", "more"];
    let runs: Vec<_> = modes
        .iter()
        .map(|m| ns.loadgen_waiting(&["nagle", "--mode", m, "--writes", "10", "--size", "100"]))
        .collect();
    let v6_run = ns.loadgen_waiting(&[
        "nagle", "--family", "6", "--mode", "nodelay", "--writes", "7", "--size", "50",
    ]);
    let v6 = Tool::start_with_env(&["tcpnagle", "--json", "--netns", &path, "-6"], &env);
    let elsewhere = Netns::new();
    let other_ns =
        Tool::start_with_env(&["tcpnagle", "--json", "--netns", &elsewhere.path()], &env);
    let tools: Vec<Tool> = runs
        .iter()
        .map(|r| {
            Tool::start_with_env(
                &[
                    "tcpnagle",
                    "--json",
                    "--netns",
                    &path,
                    "-p",
                    &r.pid().to_string(),
                ],
                &env,
            )
        })
        .collect();
    for r in runs {
        r.go();
    }
    v6_run.go();
    let v6 = nagle_counts(&finished(v6.stop()).json());
    let other = finished(other_ns.stop());
    assert!(
        nagle_counts(&other.json()).is_empty() && blocked_samples(&other.json()) == 0,
        "{plan}: another namespace leaked in: {:?}",
        other.lines
    );
    // Nothing counted: said on stderr, not an empty end.
    let what = if plan == "partial" {
        "send"
    } else {
        "transmit"
    };
    assert!(
        other.stderr.contains(&format!(
            "netbpf tcpnagle: no TCP {what} was counted while tracing"
        )),
        "{plan}: {}",
        other.stderr
    );

    let results: Vec<_> = tools.into_iter().map(|t| finished(t.stop())).collect();
    let partial = plan == "partial";
    for f in &results {
        // Partial mode says on stderr what it cannot see; the full plans do not.
        assert_eq!(
            f.stderr.contains(PARTIAL_NOTE),
            partial,
            "{plan}: {}",
            f.stderr
        );
        let mode = if partial { "partial" } else { "full" };
        assert!(
            f.json().iter().all(|r| r["mode"] == mode),
            "{plan}: {:?}",
            f.lines
        );
    }
    let c: Vec<_> = results.iter().map(|f| nagle_counts(&f.json())).collect();
    let blocked: Vec<u64> = results.iter().map(|f| blocked_samples(&f.json())).collect();
    let get = |i: usize, map: &str, flags: &str| {
        c[i].get(&(map.into(), flags.into())).copied().unwrap_or(0)
    };
    // Counts of the nagle map whose flags include `bit` (e.g. "OFF" for OFF and OFF|PUSH).
    let with = |counts: &HashMap<(String, String), u64>, bit: &str| -> u64 {
        counts
            .iter()
            .filter(|(k, _)| k.0 == "nagle" && k.1.split('|').any(|f| f == bit))
            .map(|(_, n)| n)
            .sum()
    };
    if partial {
        // Each send counted once, by the flags its push used.
        assert_eq!(
            c[0].iter()
                .filter(|(k, _)| k.0 == "nagle")
                .map(|(_, n)| n)
                .sum::<u64>(),
            10,
            "{:?}",
            c[0]
        );
        assert_eq!(get(0, "nagle", "ON"), 10, "Nagle on: {:?}", c[0]);
        assert_eq!(get(1, "nagle", "OFF"), 10, "TCP_NODELAY: {:?}", c[1]);
        assert_eq!(
            (get(2, "nagle", "CORK"), get(2, "unsent", "CORK")),
            (10, 10),
            "TCP_CORK holds all: {:?}",
            c[2]
        );
        assert_eq!(
            (
                get(3, "nagle", "CORK"),
                get(3, "nagle", "ON"),
                get(3, "unsent", "CORK")
            ),
            (9, 1, 9),
            "MSG_MORE: {:?}",
            c[3]
        );
        // -6: only the IPv6 client's seven TCP_NODELAY sends.
        let nagle6: Vec<_> = v6.iter().filter(|(k, _)| k.0 == "nagle").collect();
        assert_eq!(
            nagle6,
            [(&("nagle".to_string(), "OFF".to_string()), &7)],
            "{v6:?}"
        );
        return;
    }
    // Full mode: every transmit attempt of the loadgen process (its client and server threads)
    // by the flags tcp_write_xmit was given, and the time transmits were held back.
    // Nagle on: each write is a transmit attempt under Nagle; nothing corked, nothing held
    // (a small write goes out when nothing is in flight, else is sent on the next ACK).
    assert!(get(0, "nagle", "ON") >= 10, "{plan}: Nagle on: {:?}", c[0]);
    assert_eq!(with(&c[0], "CORK"), 0, "{plan}: {:?}", c[0]);
    assert_eq!(blocked[0], 0, "{plan}: Nagle on, nothing blocked");
    // TCP_NODELAY: each write pushed with OFF; the only other transmits are the FINs (OFF).
    assert!(with(&c[1], "OFF") >= 10, "{plan}: TCP_NODELAY: {:?}", c[1]);
    assert_eq!(
        get(1, "nagle", "ON") + with(&c[1], "CORK"),
        0,
        "{plan}: {:?}",
        c[1]
    );
    assert_eq!(blocked[1], 0, "{plan}: TCP_NODELAY, nothing blocked");
    // TCP_CORK: every write is an attempt under CORK that sends nothing, until uncorking
    // sends it all: one blocked period.
    assert!(
        get(2, "nagle", "CORK") >= 10,
        "{plan}: TCP_CORK: {:?}",
        c[2]
    );
    assert!(
        blocked[2] >= 1,
        "{plan}: TCP_CORK held the writes back: {:?}",
        results[2].lines
    );
    // MSG_MORE on 9 writes: 9 corked attempts, then the last write sends it all.
    assert!(get(3, "nagle", "CORK") >= 9, "{plan}: MSG_MORE: {:?}", c[3]);
    assert!(get(3, "nagle", "ON") >= 1, "{plan}: MSG_MORE: {:?}", c[3]);
    assert!(
        blocked[3] >= 1,
        "{plan}: MSG_MORE held the writes back: {:?}",
        results[3].lines
    );
    // -6: the IPv6 client's TCP_NODELAY writes and the FINs, all with OFF.
    assert!(with(&v6, "OFF") >= 7, "{plan}: {v6:?}");
    assert!(
        v6.iter()
            .filter(|(k, _)| k.0 == "nagle")
            .all(|(k, _)| k.1.contains("OFF")),
        "{plan}: {v6:?}"
    );
}

// ---------------------------------------------------------------- output while running

/// A tool whose stdout (a pipe) is read line by line while it runs.
struct Live {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        use std::io::BufRead;
        let mut child = std::process::Command::new(common::netbpf_bin())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("Tracing") {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "{args:?} did not attach"
            );
        }
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Live { child, lines }
    }

    /// The first line for which `want` holds, printed while the tool still runs.
    fn wait_for(&mut self, want: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("no such line while the tool ran");
            assert!(self.child.try_wait().unwrap().is_none(), "the tool exited");
            if want(&line) {
                return line;
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let _ = self.child.wait();
    }
}

/// Through a pipe, output comes as it happens: each interval when it ends (tcptop), each event
/// when it is seen (tcpsynbl's drops), not when the tool exits.
#[test]
fn output_comes_while_the_tool_runs() {
    let _alone = tcptop_alone();
    let ns = Netns::new();
    let path = ns.path();
    let mut top = Live::start(&["tcptop", "-C", "--netns", &path, "0.2"]);
    let mut synbl = Live::start(&["tcpsynbl", "--netns", &path]);
    let run = ns.loadgen(&[
        "synbl",
        "--backlog",
        "1",
        "--clients",
        "4",
        "--hold-ms",
        "100",
    ]);
    let line = synbl.wait_for(|l| l.contains(" dropping a SYN."));
    assert!(line.contains(&format!(":{}, ", run["port"])), "{line}");
    ns.loadgen(&["streams", "--send", "5000", "--reply", "100"]);
    top.wait_for(|l| l.contains(" loadavg: "));
    top.wait_for(|l| l.starts_with("PID "));
}

// ---------------------------------------------------------------- options

#[test]
fn bad_options_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (&["tcptop", "-s", "bytes"], "invalid value 'bytes'"),
        (
            &["tcptop", "-r", "0"],
            "'0' is not a positive number of rows",
        ),
        (&["tcptop", "0"], "'0' is not a positive number of seconds"),
        (&["tcptop", "1", "0"], "0 is not in 1.."),
        (&["tcpsynbl", "-x"], "unexpected argument '-x'"),
        (
            &["tcpsynbl", "soon"],
            "'soon' is not a positive number of seconds",
        ),
        (
            &["tcpwin", "--plot", "/tmp/cwnd.png"],
            "only SVG is supported",
        ),
        (
            &["tcpwin", "--plot", "/nonexistent/dir/x.svg"],
            "cannot create it",
        ),
        (&["tcpwin", "-L", "http"], "invalid port 'http'"),
        (&["tcpretrans", "-4", "-6"], "cannot be used with"),
        (&["tcpnagle", "-p", "abc"], "'abc' is not a process id"),
        (&["tcpnagle", "5"], "unexpected argument '5'"),
    ];
    for (args, want) in cases {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn list_shows_the_new_tools_and_their_plans() {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for tool in ["tcptop", "tcpretrans", "tcpsynbl", "tcpwin", "tcpnagle"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{tool} missing: {out}"));
        assert!(line.contains(" ok "), "{line}");
    }
    // Function-hook plans come first and say why they are skipped where they are.
    for plan in ["fentry", "kprobe", "partial"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(plan)),
            "{plan}: {out}"
        );
    }
}
