//! tcpsnoop, tcpdrop, tcprtt, tcpconnlat against real loopback traffic, each test in its own
//! network namespace with the tool filtered to it.

mod common;

use common::{assert_stock_kernel_plan, lossy_loopback, netbpf, with, Finished, Netns, Tool};
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

// ---------------------------------------------------------------------------------------------
// tcpsnoop

/// IP + TCP header bytes of a data segment in a fresh netns (TCP timestamps on: 20 + 12).
fn headers(family: &str) -> u64 {
    (if family == "6" { 40 } else { 20 }) + 32
}

fn check_tcpsnoop_exchange(family: &str, addr: &str) {
    let ns = Netns::new();
    let tool = Tool::start(&["tcpsnoop", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["tcpsnoop", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "segments",
        "--family",
        family,
        "--client-send",
        "1000",
        "--server-send",
        "2000",
    ]);
    let rows = tool.stop().json();
    let table = table.stop();
    let (sport, cport) = (num(&run, "server_port"), num(&run, "client_port"));

    // Every packet of the exchange belongs to loadgen, including the handshake packets of the
    // passive side (no full socket yet) and the last ACKs.
    // At least: 3 handshake, 2 data, 3 closing packets, each seen twice.
    assert!(rows.len() >= 16, "{rows:?}");
    for r in &rows {
        assert_eq!(r["pid"], run["pid"], "{r}");
        assert_eq!(r["comm"], "loadgen", "{r}");
        assert_eq!(r["uid"], 0, "{r}");
        assert_eq!(
            (&r["laddr"], &r["raddr"]),
            (&addr.into(), &addr.into()),
            "{r}"
        );
        assert_eq!(r["ip"], family.parse::<u64>().unwrap());
        let ports = (num(r, "lport"), num(r, "rport"));
        assert!(ports == (cport, sport) || ports == (sport, cport), "{r}");
        // A SYN carries 8 more option bytes (MSS, SACK-permitted, window scale).
        let syn = r["flags"].as_str().unwrap().contains("SYN");
        let hdrs = headers(family) + if syn { 8 } else { 0 };
        assert_eq!(num(r, "size"), num(r, "payload") + hdrs, "{r}");
    }

    // One data segment each way, each seen leaving its sender and reaching its receiver.
    let data: Vec<&Value> = rows.iter().filter(|r| num(r, "payload") > 0).collect();
    let seen: Vec<(u64, &str, u64, u64)> = data
        .iter()
        .map(|r| {
            (
                num(r, "lport"),
                r["dir"].as_str().unwrap(),
                num(r, "payload"),
                num(r, "size"),
            )
        })
        .collect();
    let h = headers(family);
    assert_eq!(
        seen,
        [
            (cport, "out", 1000, 1000 + h),
            (sport, "in", 1000, 1000 + h),
            (sport, "out", 2000, 2000 + h),
            (cport, "in", 2000, 2000 + h),
        ],
        "{data:?}"
    );

    // On lo each packet shows exactly twice: out from one end, in at the other.
    let outs = with(&rows, "dir", "out");
    let ins = with(&rows, "dir", "in");
    assert_eq!(outs.len(), ins.len(), "{rows:?}");
    for (o, i) in outs.iter().zip(&ins) {
        assert_eq!(
            (&o["lport"], &o["rport"], &o["size"], &o["flags"]),
            (&i["rport"], &i["lport"], &i["size"], &i["flags"]),
            "{o} vs {i}"
        );
    }
    // The handshake, in order.
    let flags: Vec<(&str, u64)> = outs
        .iter()
        .take(3)
        .map(|r| (r["flags"].as_str().unwrap(), num(r, "lport")))
        .collect();
    assert_eq!(flags, [("SYN", cport), ("SYN|ACK", sport), ("ACK", cport)]);

    assert!(
        table.lines[0]
            .starts_with("  UID     PID LADDR           LPORT DR RADDR           RPORT  SIZE CMD"),
        "{:?}",
        table.lines
    );
    let line = table
        .lines
        .iter()
        .find(|l| l.contains(&format!(" {} ", 1000 + h)) && l.contains(" -> "))
        .unwrap_or_else(|| panic!("{:?}", table.lines));
    assert!(
        line.contains(&format!(" {cport} -> ")) && line.ends_with(" loadgen"),
        "{line}"
    );
}

#[test]
fn tcpsnoop_shows_each_packet_from_each_end_ipv4() {
    check_tcpsnoop_exchange("4", "127.0.0.1");
}

#[test]
fn tcpsnoop_shows_each_packet_from_each_end_ipv6() {
    check_tcpsnoop_exchange("6", "::1");
}

#[test]
fn tcpsnoop_marks_resets_from_closed_ports() {
    // Stock kernels: fentry on tcp_v4/v6_send_reset (the tcp_send_reset tracepoint does not
    // fire for a closed port before 6.10); kprobes there before 5.17 (no bpf_get_func_ret).
    let plan = match common::btf_names("BPF_FUNC_get_func_ret") {
        true => "fentry",
        false => "kprobe",
    };
    assert_stock_kernel_plan("tcpsnoop", plan);
    let ns = Netns::new();
    let tool = Tool::start(&["tcpsnoop", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["tcpsnoop", "--netns", &ns.path()]);
    let run = ns.loadgen(&["connect", "--family", "4", "--port", "8199"]);
    assert_eq!(run["refused"], 1);
    let rows = tool.stop().json();
    let table = table.stop();

    assert_eq!(rows.len(), 4, "SYN out+in, RST out+in: {rows:?}");
    let syn = &rows[0];
    let cport = num(syn, "lport");
    assert_eq!(
        (&syn["dir"], &syn["flags"], &syn["rport"], &syn["pid"]),
        (&"out".into(), &"SYN".into(), &8199.into(), &run["pid"])
    );
    // The SYN arrives before the kernel finds no socket for it.
    assert_eq!(
        (&rows[1]["dir"], &rows[1]["comm"], &rows[1]["pid"]),
        (&"in".into(), &"<unknown>".into(), &Value::Null)
    );
    let rst = &rows[2];
    assert_eq!(rst["comm"], "<closed>", "{rst}");
    assert_eq!(
        (
            &rst["dir"],
            &rst["lport"],
            &rst["rport"],
            &rst["pid"],
            &rst["payload"]
        ),
        (
            &"out".into(),
            &8199.into(),
            &cport.into(),
            &0.into(),
            &0.into()
        )
    );
    assert!(rst["flags"].as_str().unwrap().contains("RST"), "{rst}");
    assert_eq!(num(rst, "size"), 40, "IPv4 + TCP headers without options");
    // ...and reaches the client's socket, which belongs to loadgen.
    assert_eq!(
        (&rows[3]["dir"], &rows[3]["lport"], &rows[3]["pid"]),
        (&"in".into(), &cport.into(), &run["pid"])
    );

    let closed: Vec<&String> = table
        .lines
        .iter()
        .filter(|l| l.ends_with("<closed>"))
        .collect();
    assert_eq!(closed.len(), 1, "{:?}", table.lines);
    assert!(
        closed[0].contains(&format!(" 8199 -> 127.0.0.1       {cport:>5}    40 ")),
        "{}",
        closed[0]
    );
}

#[test]
fn tcpsnoop_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&[
        "segments",
        "--family",
        "4",
        "--port",
        "8101",
        "--client-send",
        "10",
    ]);
    let by_pid = Tool::start(&[
        "tcpsnoop",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let v6 = Tool::start(&["tcpsnoop", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpsnoop", "--json", "--netns", &elsewhere.path()]);
    let a = traced.go();
    let b = ns.loadgen(&[
        "segments",
        "--family",
        "6",
        "--port",
        "8102",
        "--client-send",
        "10",
    ]);
    ns.loadgen(&["connect", "--family", "4", "--port", "8103"]);

    let rows = by_pid.stop().json();
    assert!(rows.len() >= 14, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["pid"] == a["pid"]
            && r["ip"] == 4
            && (r["lport"] == 8101 || r["rport"] == 8101)),
        "{rows:?}"
    );
    let rows = v6.stop().json();
    assert!(rows.len() >= 14, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["pid"] == b["pid"] && r["laddr"] == "::1"),
        "{rows:?}"
    );
    assert!(
        other_ns.stop().lines.is_empty(),
        "another namespace's packets leaked in"
    );
}

// ---------------------------------------------------------------------------------------------
// tcpdrop

#[test]
fn tcpdrop_shows_syns_to_closed_ports_with_reason_and_stack() {
    if common::refused_here("tcpdrop") || !common::drop_reasons_here("tcpdrop") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["tcpdrop", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["tcpdrop", "--netns", &ns.path()]);
    let v4 = ns.loadgen(&["connect", "--family", "4", "--port", "8201", "--count", "2"]);
    let v6 = ns.loadgen(&["connect", "--family", "6", "--port", "8202"]);
    assert_eq!((&v4["refused"], &v6["refused"]), (&2.into(), &1.into()));
    let rows = tool.stop().json();
    let table = table.stop();

    assert_eq!(rows.len(), 3, "one drop per SYN: {rows:?}");
    for (r, port, addr, rcv) in [
        (&rows[0], 8201, "127.0.0.1", "tcp_v4_rcv+"),
        (&rows[1], 8201, "127.0.0.1", "tcp_v4_rcv+"),
        (&rows[2], 8202, "::1", "tcp_v6_rcv+"),
    ] {
        assert_eq!(r["reason"], "NO_SOCKET", "{r}");
        assert_eq!(r["flags"], "SYN", "{r}");
        assert_eq!(r["state"], "-", "no socket: {r}");
        assert_eq!(
            (&r["daddr"], &r["dport"], &r["saddr"]),
            (&addr.into(), &port.into(), &addr.into())
        );
        assert!(num(r, "sport") > 0);
        let stack: Vec<&str> = r["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(stack.iter().any(|f| f.starts_with(rcv)), "{stack:?}");
        assert!(
            !stack[0].starts_with("bpf_"),
            "tracing frames are cut: {stack:?}"
        );
        assert!(stack.iter().any(|f| f.starts_with("tcp_")), "{stack:?}");
    }
    assert_ne!(rows[0]["sport"], rows[1]["sport"], "two connects, two SYNs");

    assert!(
        table.lines[0].starts_with("TIME     PID     IP SADDR:SPORT            > DADDR:DPORT            STATE       (FLAGS)"),
        "{:?}",
        table.lines
    );
    let v6_line = table
        .lines
        .iter()
        .position(|l| l.contains("> [::1]:8202 "))
        .expect("v6 drop");
    assert!(
        table.lines[v6_line].ends_with(" -           (SYN)"),
        "{}",
        table.lines[v6_line]
    );
    assert_eq!(table.lines[v6_line + 1], "\treason: NO_SOCKET");
    assert!(table.lines[v6_line + 2..]
        .iter()
        .take_while(|l| !l.is_empty())
        .any(|l| l.starts_with("\ttcp_v6_rcv+0x")));
}

/// Normal teardown is no loss: a socket that closed first and then received the peer's FIN is
/// destroyed with that FIN in its receive queue (QUEUE_PURGE), one per connection, as every
/// MariaDB connection did in the issue. Hidden by default, counted exactly at exit, shown with
/// --all-reasons; a real drop (a SYN to a closed port) is shown either way.
#[test]
fn tcpdrop_hides_routine_teardown_and_counts_it() {
    if common::refused_here("tcpdrop") {
        return;
    }
    if !common::btf_names("SKB_DROP_REASON_QUEUE_PURGE") {
        eprintln!(
            "skipped: no QUEUE_PURGE reason before Linux 6.7 (such purges are NOT_SPECIFIED)"
        );
        return;
    }
    let ns = Netns::new();
    // No TCP timestamps: on a slow CPU (a VM) an ACK processed from the socket's backlog after a
    // newer segment failed PAWS (TCP_RFC7323_PAWS_ACK), a real drop but not this test's
    // workload, and its connection then had no FIN left to purge.
    common::ns_run(&ns, "sysctl", &["-q", "-w", "net.ipv4.tcp_timestamps=0"]);
    let path = ns.path();
    let default = Tool::start(&["tcpdrop", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpdrop", "--netns", &path]);
    let all = Tool::start(&["tcpdrop", "--all-reasons", "--json", "--netns", &path]);
    let runs: Vec<Value> = (0..3)
        .map(|_| ns.loadgen(&["segments", "--client-send", "100", "--server-send", "200"]))
        .collect();
    ns.loadgen(&["connect", "--port", "8231"]);
    let default = finished(default.stop());
    let table = finished(table.stop());
    let all = finished(all.stop()).json();

    // --all-reasons: one purge per connection, of the server's FIN in the client's queue.
    let purged = with(&all, "reason", "QUEUE_PURGE");
    assert_eq!(purged.len(), 3, "{all:?}");
    for (r, run) in purged.iter().zip(&runs) {
        assert_eq!(
            (&r["sport"], &r["dport"], &r["state"]),
            (&run["server_port"], &run["client_port"], &"CLOSE".into()),
            "{r}"
        );
        assert!(r["flags"].as_str().unwrap().contains("FIN"), "{r}");
    }
    assert_eq!(with(&all, "reason", "NO_SOCKET").len(), 1, "{all:?}");

    // Default: the real drop only, and the hidden ones counted exactly on stderr.
    let shown = default.json();
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert_eq!(
        (&shown[0]["reason"], &shown[0]["dport"]),
        (&"NO_SOCKET".into(), &8231.into())
    );
    for f in [&default, &table] {
        assert!(
            f.stderr.contains(
                "3 routine drops not shown (normal teardown, not loss; --all-reasons shows \
                 them): QUEUE_PURGE 3"
            ),
            "{}",
            f.stderr
        );
    }
    assert!(
        !table.lines.iter().any(|l| l.contains("QUEUE_PURGE")),
        "{:?}",
        table.lines
    );
    assert!(
        table.lines.iter().any(|l| l == "\treason: NO_SOCKET"),
        "{:?}",
        table.lines
    );
}

/// Packets the root qdisc of `dev` in `ns` has dropped (tc -s).
fn qdisc_dropped(ns: &Netns, dev: &str) -> u64 {
    let out = ns
        .command("tc")
        .args(["-s", "qdisc", "show", "dev", dev])
        .output()
        .expect("tc (iproute2) is needed");
    let text = String::from_utf8_lossy(&out.stdout);
    let n = text
        .split("(dropped ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no drop count in: {text}"));
    n.trim().parse().unwrap()
}

/// Segments of an established connection dropped by a full qdisc on the way out: the socket's
/// state, the packet's own direction and flags, and one line per packet the qdisc dropped.
#[test]
fn tcpdrop_shows_qdisc_drops_of_an_established_connection() {
    if common::refused_here("tcpdrop") || !common::drop_reasons_here("tcpdrop") {
        return;
    }
    let ns = Netns::new();
    lossy_loopback(&ns);
    let before = qdisc_dropped(&ns, "lo");
    let tool = Tool::start(&["tcpdrop", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&["retrans", "--bytes", "65536"]);
    // The sockets may still be closing through the full queue (their last segments dropped
    // too): the drops the qdisc counted before the tool stopped, and after.
    let dropped_before_stop = qdisc_dropped(&ns, "lo") - before;
    let f = finished(tool.stop());
    let rows = f.json();
    let dropped = qdisc_dropped(&ns, "lo") - before;
    // A qdisc drop: QDISC_DROP, or (7.x) freed from the qdisc's to-free list with whatever
    // reason the qdisc left in the packet's control block: 7.3's tbf leaves none on some
    // packets, so the kernel passes a stale value (0xfe here; its own trace prints it as a
    // number too). The free site in the stack tells them.
    let qdisc: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["reason"] == "QDISC_DROP"
                || r["stack"].as_array().is_some_and(|s| {
                    s.iter().any(|f| {
                        f.as_str()
                            .is_some_and(|f| f.starts_with("__tcf_kfree_skb_list+"))
                    })
                })
        })
        .collect();
    assert!(
        dropped_before_stop > 0,
        "a 64 KB burst through a 3000-byte queue must lose"
    );
    // Every drop counted before the tool stopped, none the qdisc did not count; but those
    // the tool said the kernel did not run it for (a drop in softirq interrupting one in the
    // sender's own call on the same CPU).
    // Known to fail under load on the 6.18 Firecracker build guest: a drop in a softirq that
    // interrupted the guest init's own threads runs no BPF program and counts no miss (see
    // docs/tcpdrop.md, Caveats). Not widened: the tool still has no count of those.
    let seen = qdisc.len() as u64;
    assert!(
        seen <= dropped && seen + f.skipped_runs() >= dropped_before_stop,
        "{seen} seen, {dropped_before_stop} dropped before the tool stopped, {dropped} after: \
         {}, {rows:?}",
        f.stderr
    );
    let (cport, sport) = (num(&run, "client_port"), num(&run, "server_port"));
    for r in &qdisc {
        let ports = (num(r, "sport"), num(r, "dport"));
        assert!(ports == (cport, sport) || ports == (sport, cport), "{r}");
        assert_eq!(
            (&r["saddr"], &r["daddr"]),
            (&"127.0.0.1".into(), &"127.0.0.1".into())
        );
        // The sender's socket, mostly in the middle of the burst (the last ones as it closes).
        let state = r["state"].as_str().unwrap();
        assert!(
            [
                "ESTABLISHED",
                "FIN_WAIT1",
                "FIN_WAIT2",
                "CLOSE_WAIT",
                "LAST_ACK"
            ]
            .contains(&state),
            "{r}"
        );
        assert!(r["flags"].as_str().unwrap().contains("ACK"), "{r}");
    }
    // The burst's data segments go client -> server, in ESTABLISHED.
    assert!(
        qdisc
            .iter()
            .any(|r| r["sport"] == cport && r["state"] == "ESTABLISHED"),
        "{qdisc:?}"
    );
}

#[test]
fn tcpdrop_filters() {
    if common::refused_here("tcpdrop") || !common::drop_reasons_here("tcpdrop") {
        return;
    }
    let ns = Netns::new();
    let path = ns.path();
    let v4 = Tool::start(&["tcpdrop", "--json", "--netns", &path, "-4"]);
    let v6 = Tool::start(&["tcpdrop", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpdrop", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&["connect", "--family", "4", "--port", "8211", "--count", "2"]);
    ns.loadgen(&["connect", "--family", "6", "--port", "8212", "--count", "3"]);
    let rows = v4.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["dport"] == 8211 && r["ip"] == 4));
    let rows = v6.stop().json();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r["dport"] == 8212 && r["ip"] == 6));
    assert!(other_ns.stop().lines.is_empty());
}

// ---------------------------------------------------------------------------------------------
// tcprtt

/// Total samples of the histogram records, and the [low, high) span of their buckets.
fn samples(hists: &[Value]) -> (u64, u64, u64) {
    let mut total = 0;
    let (mut low, mut high) = (u64::MAX, 0);
    for h in hists {
        let mut n = 0;
        for b in h["buckets"].as_array().unwrap() {
            n += num(b, "count");
            low = low.min(num(b, "low"));
            high = high.max(b["high"].as_u64().unwrap());
        }
        assert_eq!(num(h, "count"), n, "{h}");
        total += n;
    }
    (total, low, high)
}

/// The [low, high) bucket of a histogram record's median sample.
fn median_bucket(h: &Value) -> (u64, u64) {
    let buckets = h["buckets"].as_array().unwrap();
    let total: u64 = buckets.iter().map(|b| num(b, "count")).sum();
    let mut seen = 0;
    for b in buckets {
        seen += num(b, "count");
        if 2 * seen >= total {
            return (num(b, "low"), num(b, "high"));
        }
    }
    panic!("empty histogram: {h}");
}

#[test]
fn tcprtt_histograms_of_a_loopback_exchange() {
    let ns = Netns::new();
    let path = ns.path();
    let all = Tool::start(&["tcprtt", "--json", "-e", "--netns", &path]);
    let server = Tool::start(&["tcprtt", "--json", "--netns", &path, "-p", "8301"]);
    let client = Tool::start(&["tcprtt", "--json", "--netns", &path, "-P", "8301"]);
    let millis = Tool::start(&["tcprtt", "--json", "-m", "--netns", &path]);
    let table = Tool::start(&["tcprtt", "-e", "--netns", &path]);
    let rounds = 20;
    let run = ns.loadgen(&[
        "pingpong", "--family", "4", "--port", "8301", "--rounds", "20", "--size", "100",
    ]);

    let all = all.stop().json();
    assert_eq!(all.len(), 1, "one histogram: {all:?}");
    assert_eq!(
        (&all[0]["hist"], &all[0]["unit"]),
        (&"rtt_us".into(), &"us".into())
    );
    let (total, low, high) = samples(&all);
    // Loopback RTTs: at least 1 us (a measured srtt is never 0), well under a second even on a
    // loaded machine.
    assert!(low >= 1 && high <= 1 << 20, "buckets [{low}, {high}) us");
    let avg = all[0]["avg"].as_f64().unwrap();
    assert!(
        (low as f64..high as f64).contains(&avg),
        "avg {avg} outside [{low}, {high})"
    );

    // Each side receives every message of the other (one segment each, TCP_NODELAY), plus at
    // most one pure ACK per message and the FIN's exchange.
    let (at_server, ..) = samples(&server.stop().json());
    let client = client.stop().json();
    let (at_client, ..) = samples(&client);
    // The values are the kernel's srtt: the median sample's bucket is within a factor of 4 of
    // the client's final smoothed RTT (TCP_INFO tcpi_rtt), which it converged to.
    let (low, high) = median_bucket(&client[0]);
    let rtt = num(&run, "client_rtt_us");
    assert!(
        rtt >= low / 4 && rtt < high * 4,
        "tcpi_rtt {rtt} us, median sample in [{low}, {high}) us: {client:?}"
    );
    for n in [at_server, at_client] {
        assert!(
            (rounds..=2 * rounds + 2).contains(&n),
            "{n} samples for {rounds} rounds"
        );
    }
    assert_eq!(
        total,
        at_server + at_client,
        "the two ends are all there is"
    );

    let ms = millis.stop().json();
    assert_eq!(ms[0]["unit"], "ms");
    let (n, _, high) = samples(&ms);
    assert_eq!(n, total);
    assert!(high <= 1024, "loopback RTT over a second? {ms:?}");

    let table = table.stop();
    let avg_line = &table.lines[0];
    assert!(
        avg_line.starts_with("avg = ") && avg_line.ends_with(&format!(" us, samples = {total}")),
        "{:?}",
        table.lines
    );
    assert_eq!(table.lines[1], "@rtt_us:");
    assert!(table.lines[2].starts_with('['), "{:?}", table.lines);
}

#[test]
fn tcprtt_address_filters_and_per_address_histograms() {
    let ns = Netns::new();
    let path = ns.path();
    let by_laddr = Tool::start(&["tcprtt", "--json", "-b", "--netns", &path]);
    let by_raddr = Tool::start(&["tcprtt", "--json", "-B", "--netns", &path]);
    let v6_local = Tool::start(&["tcprtt", "--json", "-a", "::1", "--netns", &path]);
    let v4_remote = Tool::start(&["tcprtt", "--json", "-A", "127.0.0.1", "--netns", &path]);
    let v6_only = Tool::start(&["tcprtt", "--json", "-6", "--netns", &path]);
    let nowhere = Tool::start(&["tcprtt", "--json", "-a", "127.0.0.2", "--netns", &path]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcprtt", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&[
        "pingpong", "--family", "4", "--port", "8311", "--rounds", "10",
    ]);
    ns.loadgen(&[
        "pingpong", "--family", "6", "--port", "8312", "--rounds", "10",
    ]);

    let per_l = by_laddr.stop().json();
    let addrs: Vec<&Value> = per_l.iter().map(|h| &h["laddr"]).collect();
    assert_eq!(
        addrs,
        [&Value::from("127.0.0.1"), &Value::from("::1")],
        "{per_l:?}"
    );
    let per_r = by_raddr.stop().json();
    assert_eq!(per_r.len(), 2, "{per_r:?}");
    let (v4_n, v6_n) = (samples(&per_l[..1]).0, samples(&per_l[1..]).0);
    assert!(v4_n >= 20 && v6_n >= 20, "{v4_n} {v6_n}");
    assert_eq!(samples(&per_r[..1]).0, v4_n);

    assert_eq!(samples(&v6_local.stop().json()).0, v6_n);
    assert_eq!(samples(&v4_remote.stop().json()).0, v4_n);
    assert_eq!(samples(&v6_only.stop().json()).0, v6_n);
    assert!(nowhere.stop().lines.is_empty());
    assert!(other_ns.stop().lines.is_empty());
}

#[test]
fn tcprtt_intervals_split_the_samples() {
    let ns = Netns::new();
    let path = ns.path();
    let once = Tool::start(&["tcprtt", "--json", "-e", "--netns", &path]);
    let every = Tool::start(&[
        "tcprtt", "--json", "-e", "-T", "-i", "0.1", "--netns", &path,
    ]);
    // Continuous traffic across several 0.1 s intervals (one run of exchanges takes tens of ms:
    // runs back to back for 0.6 s), so samples keep arriving while each interval's histogram is
    // read and cleared.
    let begin = std::time::Instant::now();
    while begin.elapsed() < std::time::Duration::from_millis(600) {
        ns.loadgen(&[
            "pingpong", "--family", "4", "--rounds", "3000", "--size", "10",
        ]);
    }
    let once = finished(once.stop()).json();
    let every = finished(every.stop()).json();
    assert!(every.len() >= 2, "several intervals had samples: {every:?}");
    assert!(every
        .iter()
        .all(|h| h["time"].as_str().is_some_and(|t| t.len() == 8)));
    // The intervals add up to the whole run exactly: none lost, none counted twice.
    assert_eq!(samples(&every).0, samples(&once).0);
    // The average is of the histogram's own samples: the sums add up too.
    let sum = |hs: &[Value]| -> f64 {
        hs.iter()
            .map(|h| h["avg"].as_f64().unwrap() * num(h, "count") as f64)
            .sum()
    };
    // (Each avg is printed with 2 decimals: up to 0.005 off per sample.)
    let (a, b) = (sum(&every), sum(&once));
    let n = samples(&once).0 as f64;
    assert!(
        (a - b).abs() <= 0.01 * n,
        "sums {a} vs {b} over {n} samples"
    );
}

// ---------------------------------------------------------------------------------------------
// tcpconnlat

#[test]
fn tcpconnlat_one_line_per_connect_and_threshold() {
    let ns = Netns::new();
    let path = ns.path();
    let all = Tool::start(&["tcpconnlat", "--json", "--netns", &path]);
    let slow_only = Tool::start(&["tcpconnlat", "500", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpconnlat", "-t", "-L", "--netns", &path]);
    let run = ns.loadgen(&[
        "connlat", "--family", "4", "--port", "8401", "--count", "3", "--slow",
    ]);
    let rows = all.stop().json();
    let slow_rows = slow_only.stop().json();
    let table = table.stop();

    let fast_ports: Vec<u64> = run["client_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let fillers: Vec<u64> = run["filler_ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let (slow_port, slow_server) = (num(&run, "slow_client_port"), num(&run, "slow_server_port"));
    assert_eq!(rows.len(), 6, "3 fast, 2 fillers, 1 slow: {rows:?}");
    let lports: Vec<u64> = rows.iter().map(|r| num(r, "lport")).collect();
    let mut want = fast_ports.clone();
    want.extend(&fillers);
    want.push(slow_port);
    assert_eq!(lports, want);
    for r in &rows {
        assert_eq!(
            (&r["pid"], &r["comm"], &r["ip"]),
            (&run["pid"], &"loadgen".into(), &4.into())
        );
        assert_eq!(
            (&r["saddr"], &r["daddr"]),
            (&"127.0.0.1".into(), &"127.0.0.1".into())
        );
        let lat = r["lat_ms"].as_f64().unwrap();
        if num(r, "lport") == slow_port {
            assert_eq!(num(r, "dport"), slow_server);
            // Its first SYN was dropped: it got through at the retransmission, ~1 s later.
            let measured = num(&run, "slow_ms") as f64;
            assert!(
                lat >= 900.0 && lat <= measured + 50.0,
                "{lat} ms (loadgen saw {measured})"
            );
        } else {
            let dport = if fast_ports.contains(&num(r, "lport")) {
                8401
            } else {
                slow_server
            };
            assert_eq!(num(r, "dport"), dport);
            assert!(lat > 0.0 && lat < 500.0, "loopback connect took {lat} ms");
        }
        assert!((num(r, "lat_ns") as f64 / 1e6 - lat).abs() < 1e-6, "{r}");
    }

    // The threshold keeps only the slow one.
    assert_eq!(slow_rows.len(), 1, "{slow_rows:?}");
    assert_eq!(num(&slow_rows[0], "lport"), slow_port);

    assert!(
        table.lines[0].starts_with("TIME(s)   PID     COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms)"),
        "{:?}",
        table.lines
    );
    assert_eq!(table.lines.len(), 7, "{:?}", table.lines);
    assert!(
        table.lines[1].contains(&format!(" {:<6} 127.0.0.1        8401  ", fast_ports[0])),
        "{}",
        table.lines[1]
    );
}

/// A connect refused with a reset is shown with its latency to the reset (as bcc's tcpconnlat
/// does), marked by its result; the threshold applies to it too.
#[test]
fn tcpconnlat_shows_refused_connects() {
    let ns = Netns::new();
    let path = ns.path();
    let all = Tool::start(&["tcpconnlat", "--json", "--netns", &path]);
    let slow_only = Tool::start(&["tcpconnlat", "500", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpconnlat", "--netns", &path]);
    let started = std::time::Instant::now();
    let refused = ns.loadgen(&["connect", "--family", "6", "--port", "8421", "--count", "2"]);
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    let made = ns.loadgen(&["connlat", "--family", "4", "--port", "8422", "--count", "1"]);
    assert_eq!(refused["refused"], 2, "{refused}");
    let rows = all.stop().json();
    let table = table.stop();

    assert_eq!(rows.len(), 3, "{rows:?}");
    for r in &rows[..2] {
        assert_eq!(
            (&r["result"], &r["pid"], &r["daddr"], &r["dport"]),
            (
                &"ECONNREFUSED".into(),
                &refused["pid"],
                &"::1".into(),
                &8421.into()
            ),
            "{r}"
        );
        // From the SYN to the reset: within the client's own run.
        let lat = r["lat_ms"].as_f64().unwrap();
        assert!(lat > 0.0 && lat < took_ms, "{lat} ms of a {took_ms} ms run");
        assert!(num(r, "lport") > 0, "{r}");
    }
    assert_ne!(rows[0]["lport"], rows[1]["lport"]);
    assert_eq!(
        (&rows[2]["result"], &rows[2]["pid"], &rows[2]["dport"]),
        (&"Success".into(), &made["pid"], &8422.into())
    );
    assert!(slow_only.stop().lines.is_empty(), "none took 500 ms");

    assert!(
        table.lines[0].ends_with(" DPORT LAT(ms)  RESULT"),
        "{:?}",
        table.lines
    );
    let results: Vec<&str> = table.lines[1..]
        .iter()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(
        results,
        ["ECONNREFUSED", "ECONNREFUSED", "Success"],
        "{:?}",
        table.lines
    );
}

#[test]
fn tcpconnlat_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced =
        ns.loadgen_waiting(&["connlat", "--family", "6", "--port", "8411", "--count", "2"]);
    let by_pid = Tool::start(&[
        "tcpconnlat",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let v4 = Tool::start(&["tcpconnlat", "--json", "--netns", &path, "-4"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpconnlat", "--json", "--netns", &elsewhere.path()]);
    let a = traced.go();
    let b = ns.loadgen(&["connlat", "--family", "4", "--port", "8412", "--count", "3"]);
    let rows = by_pid.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["pid"] == a["pid"] && r["dport"] == 8411 && r["daddr"] == "::1"));
    let rows = v4.stop().json();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["pid"] == b["pid"] && r["dport"] == 8412));
    assert!(other_ns.stop().lines.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bad options

#[test]
fn bad_options_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (&["tcpsnoop", "-p", "abc"], "'abc' is not a process id"),
        (&["tcpsnoop", "-4", "-6"], "cannot be used with"),
        (&["tcpdrop", "-p", "1"], "unexpected argument '-p'"),
        (&["tcprtt", "-b", "-B"], "cannot be used with"),
        (
            &["tcprtt", "-a", "localhost"],
            "'localhost' is not an IPv4 or IPv6 address",
        ),
        (
            &["tcprtt", "-i", "0"],
            "'0' is not a positive number of seconds",
        ),
        (&["tcprtt", "-p", "http"], "invalid port 'http'"),
        (
            &["tcprtt", "-4", "-a", "::1"],
            "-a ::1 can never match with -4",
        ),
        (
            &["tcprtt", "-a", "127.0.0.1", "-A", "::1"],
            "can never match together",
        ),
        (
            &["tcpconnlat", "abc"],
            "'abc' is not a latency threshold in milliseconds",
        ),
        (
            &["tcpconnlat", "--", "-5"],
            "'-5' is not a latency threshold",
        ),
        (&["tcpconnlat", "1", "2"], "unexpected argument '2'"),
    ];
    for (args, msg) in cases {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
}
