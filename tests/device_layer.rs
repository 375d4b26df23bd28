//! netsize, nettxlat, skbdrop, skblife against real traffic: on loopback, and across a veth pair
//! joining two private network namespaces. Each test has its own namespaces, the tools filtered
//! to them.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::thread;

use common::veth::{ethtool_set, in_netns, netns_cookie, veth_pair, ETHTOOL_SGRO, ETHTOOL_STSO};
use common::{netbpf, Finished, Netns, Tool};
use serde_json::Value;

// ---- histograms in --json output ------------------------------------------------------------

/// The histogram object named `name` (and, with `dev`, for that device).
fn hist<'a>(rows: &'a [Value], name: &str, dev: Option<&str>) -> &'a Value {
    rows.iter()
        .find(|r| r["hist"] == name && dev.is_none_or(|d| r["dev"] == d))
        .unwrap_or_else(|| panic!("no histogram {name} {dev:?} in {rows:?}"))
}

fn buckets(h: &Value) -> &Vec<Value> {
    h["buckets"].as_array().expect("buckets")
}

/// Count in the bucket starting at `low` (0 when absent).
fn count_at(h: &Value, low: u64) -> u64 {
    buckets(h)
        .iter()
        .find(|b| b["low"] == low)
        .map_or(0, |b| b["count"].as_u64().unwrap())
}

fn total(h: &Value) -> u64 {
    buckets(h)
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum()
}

/// Count of values at or above `low`.
fn count_from(h: &Value, low: u64) -> u64 {
    buckets(h)
        .iter()
        .filter(|b| b["low"].as_u64().unwrap() >= low)
        .map(|b| b["count"].as_u64().unwrap())
        .sum()
}

// ---- namespaces, veth ------------------------------------------------------------------------

/// A TCP server in `ns` on 10.9.0.2:port that reads everything, then closes; returns the count.
fn tcp_sink(ns: &Netns, port: u16) -> thread::JoinHandle<usize> {
    let listener = in_netns(ns, move || TcpListener::bind(("10.9.0.2", port)).unwrap());
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len()
    })
}

fn kernel_has(symbol: &str) -> bool {
    std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(symbol))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_of(f: &Finished) -> Vec<Value> {
    assert!(f.status.success(), "status {:?}: {}", f.status, f.stderr);
    f.json()
}

// ---- netsize ---------------------------------------------------------------------------------

/// UDP over loopback: the send side counts the Ethernet header lo adds (14 bytes), the receive
/// side starts at the IP header; payload sizes are chosen so the two land in different buckets.
fn check_netsize_lo(family: &str, payload: &str) {
    let ns = Netns::new();
    let tool = Tool::start(&["netsize", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "udp-send", "--family", family, "--count", "4", "--size", payload, "--recv",
    ]);
    assert_eq!(run["received"], 4);
    let rows = json_of(&tool.stop());

    // IPv4: 20 + 8 + 2010 = 2038 received, 2052 sent; IPv6: 40 + 8 + 1996 = 2044 and 2058.
    for (name, low) in [
        ("recv_bytes", 1024),
        ("send_bytes", 2048),
        ("nic_send_bytes", 2048),
    ] {
        let h = hist(&rows, name, None);
        assert_eq!(count_at(h, low), 4, "{name}: {h}");
        assert_eq!(total(h), 4, "{name}: nothing else in this namespace: {h}");
    }
    // Loopback receives without NAPI/GRO.
    assert_eq!(total(hist(&rows, "nic_recv_bytes", None)), 0);
}

#[test]
fn netsize_lo_sizes_land_in_their_buckets_ipv4() {
    check_netsize_lo("4", "2010");
}

#[test]
fn netsize_lo_sizes_land_in_their_buckets_ipv6() {
    check_netsize_lo("6", "1996");
}

/// TCP across a veth whose sender does not segment (TSO off) and whose receiver runs GRO: the
/// stack sends GSO super-packets, the driver gets MTU-sized segments, the peer's NAPI receives
/// MTU-sized frames and the stack above GRO sees merged packets again.
#[test]
fn netsize_veth_shows_gso_and_gro() {
    let (a, b) = veth_pair();
    ethtool_set(&a, "va", ETHTOOL_STSO, false);
    ethtool_set(&b, "vb", ETHTOOL_SGRO, true);
    let sink = tcp_sink(&b, 7100);
    let on_a = Tool::start(&["netsize", "--json", "--netns", &a.path()]);
    let on_b = Tool::start(&["netsize", "--json", "--netns", &b.path()]);
    let only_lo = Tool::start(&["netsize", "--json", "--netns", &a.path(), "-i", "lo"]);
    let only_vb = Tool::start(&["netsize", "--json", "-i", "vb", "--netns", &b.path()]);
    let other = Netns::new();
    let elsewhere = Tool::start(&["netsize", "--json", "--netns", &other.path()]);
    let bytes = 1_000_000u64;
    a.loadgen(&[
        "tcp-send",
        "--to",
        "10.9.0.2",
        "--port",
        "7100",
        "--bytes",
        &bytes.to_string(),
    ]);
    assert_eq!(sink.join().unwrap() as u64, bytes);
    let (a_rows, b_rows) = (json_of(&on_a.stop()), json_of(&on_b.stop()));
    // Full-sized segments (MSS 1448 on a 1500-byte MTU with timestamps); some are shorter (the
    // tail of a GSO packet), so allow a tenth less.
    let segments = bytes / 1448 * 9 / 10;

    let send = hist(&a_rows, "send_bytes", None);
    assert!(
        count_from(send, 16384) > 0,
        "GSO super-packets sent: {send}"
    );
    let nic_send = hist(&a_rows, "nic_send_bytes", None);
    assert_eq!(
        count_from(nic_send, 2048),
        0,
        "segmented before the driver: {nic_send}"
    );
    assert!(count_at(nic_send, 1024) >= segments, "{nic_send}");

    let nic_recv = hist(&b_rows, "nic_recv_bytes", None);
    let recv = hist(&b_rows, "recv_bytes", None);
    // Before 5.13 veth runs NAPI (and so GRO) only with an XDP program attached: frames enter
    // through netif_rx, which no NIC-receive event sees, and reach the stack unmerged.
    let veth_napi = netbpf::core::caps::kernel_version().is_some_and(|v| v >= (5, 13));
    if !veth_napi {
        assert_eq!(
            total(nic_recv),
            0,
            "no NAPI on veth before 5.13: {nic_recv}"
        );
        assert!(count_at(recv, 1024) >= segments, "{recv}");
        assert_eq!(count_from(recv, 2048), 0, "nothing merged: {recv}");
    } else {
        assert!(count_at(nic_recv, 1024) >= segments, "{nic_recv}");
        assert_eq!(count_from(nic_recv, 2048), 0, "{nic_recv}");
        assert!(count_from(recv, 2048) > 0, "GRO-merged packets: {recv}");
        assert!(
            total(recv) < count_at(nic_recv, 1024),
            "GRO merges: {recv} vs {nic_recv}"
        );
    }

    // Filters: lo carried none of it; vb all of B's; another namespace nothing.
    for rows in [json_of(&only_lo.stop()), json_of(&elsewhere.stop())] {
        for name in [
            "recv_bytes",
            "send_bytes",
            "nic_recv_bytes",
            "nic_send_bytes",
        ] {
            assert_eq!(total(hist(&rows, name, None)), 0, "{name}: {rows:?}");
        }
    }
    let vb_rows = json_of(&only_vb.stop());
    let vb_nic_recv = hist(&vb_rows, "nic_recv_bytes", None);
    assert_eq!(
        count_at(vb_nic_recv, 1024),
        count_at(nic_recv, 1024),
        "{vb_nic_recv}"
    );
}

#[test]
fn netsize_table_is_bpftrace_like() {
    let ns = Netns::new();
    let tool = Tool::start(&["netsize", "--netns", &ns.path()]);
    ns.loadgen(&["udp-send", "--count", "3", "--size", "1000", "--recv"]);
    let f = tool.stop();
    assert!(f.status.success(), "{}", f.stderr);
    let text = f.lines.join("\n");
    for title in [
        "@nic_recv_bytes:",
        "@nic_send_bytes:",
        "@recv_bytes:",
        "@send_bytes:",
    ] {
        assert!(text.contains(title), "{text}");
    }
    // 1028 received, 1042 sent: both [1K, 2K), 3 each.
    let recv = text.split("@recv_bytes:").nth(1).unwrap();
    assert!(
        recv.trim_start().starts_with("[1K, 2K)               3 |"),
        "{text}"
    );
}

// ---- nettxlat --------------------------------------------------------------------------------

/// On lo an skb is not freed at transmit but received: an ICMP error is consumed by icmp_rcv once
/// delivered, which closes its interval. N datagrams to a closed port make N ICMP errors.
#[test]
fn nettxlat_lo_measures_icmp_errors() {
    let ns = Netns::new();
    let path = ns.path();
    let all = Tool::start(&["nettxlat", "--json", "--netns", &path]);
    let per_dev = Tool::start(&["nettxlat-dev", "--json", "--netns", &path]);
    let wrong_if = Tool::start(&["nettxlat", "--json", "--netns", &path, "-i", "eth0"]);
    let other = Netns::new();
    let elsewhere = Tool::start(&["nettxlat", "--json", "--netns", &other.path()]);
    ns.loadgen(&["udp-send", "--count", "5", "--size", "100", "--port", "9"]);

    let rows = json_of(&all.stop());
    let h = hist(&rows, "us", None);
    assert!(total(h) >= 5, "one per ICMP error at least: {h}");
    assert_eq!(count_from(h, 1 << 20), 0, "under a second: {h}");
    assert_eq!(h["unit"], "us");

    let rows = json_of(&per_dev.stop());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(total(hist(&rows, "us", Some("lo"))) >= 5, "{rows:?}");

    for f in [wrong_if.stop(), elsewhere.stop()] {
        let rows = json_of(&f);
        assert_eq!(total(hist(&rows, "us", None)), 0, "{rows:?}");
    }
}

/// Across a veth the skb is forwarded to the peer and consumed there: ICMP errors that the first
/// namespace sends back through va are consumed in the second.
#[test]
fn nettxlat_veth_per_device() {
    let (a, b) = veth_pair();
    let tool = Tool::start(&["nettxlat", "-D", "--json", "--netns", &a.path()]);
    let on_b = Tool::start(&["nettxlat", "--json", "--netns", &b.path(), "-i", "va"]);
    // Four: the per-peer ICMP rate limit lets a burst of 6 through.
    b.loadgen(&[
        "udp-send", "--to", "10.9.0.1", "--port", "9", "--count", "4", "--size", "64",
    ]);
    let rows = json_of(&tool.stop());
    let va = hist(&rows, "us", Some("va"));
    assert!(total(va) >= 4, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["dev"] == "va"),
        "only va transmits in A: {rows:?}"
    );
    // No device called va in B.
    assert_eq!(total(hist(&json_of(&on_b.stop()), "us", None)), 0);
}

// ---- skbdrop ---------------------------------------------------------------------------------

fn check_skbdrop_no_socket(family: &str, counter: &str, frames: &[&str]) {
    if common::refused_here("skbdrop") || !common::drop_reasons_here("skbdrop") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["skbdrop", "--json", "--netns", &ns.path()]);
    let other = Netns::new();
    let elsewhere = Tool::start(&["skbdrop", "--json", "--netns", &other.path()]);
    let wrong_if = Tool::start(&["skbdrop", "--json", "--netns", &ns.path(), "-i", "eth0"]);
    ns.loadgen(&[
        "udp-send", "--family", family, "--count", "6", "--size", "100", "--port", "9",
    ]);
    let rows = json_of(&tool.stop());

    let drops: Vec<&Value> = rows.iter().filter(|r| r["reason"] == "NO_SOCKET").collect();
    let n: u64 = drops.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(n, 6, "{rows:?}");
    let stack = drops[0]["stack"].as_array().unwrap();
    assert!(stack.len() <= 8, "--frames defaults to 8: {stack:?}");
    // UDP's receive function; 7.x inlines it into its caller (udp_rcv, udpv6_rcv).
    assert!(
        stack.iter().any(|f| frames
            .iter()
            .any(|frame| f.as_str().unwrap().starts_with(frame))),
        "{frames:?} in {stack:?}"
    );
    assert!(
        !stack[0].as_str().unwrap().starts_with("bpf_"),
        "tracing frames removed: {stack:?}"
    );
    let delta = |name: &str| {
        rows.iter()
            .find(|r| r["counter"] == name)
            .and_then(|r| r["delta"].as_i64())
    };
    assert_eq!(delta(counter), Some(6), "{rows:?}");

    for f in [elsewhere.stop(), wrong_if.stop()] {
        let rows = json_of(&f);
        assert!(rows.iter().all(|r| r["reason"] != "NO_SOCKET"), "{rows:?}");
    }
}

#[test]
fn skbdrop_counts_no_socket_with_stack_and_counters_ipv4() {
    check_skbdrop_no_socket("4", "UdpNoPorts", &["__udp4_lib_rcv+", "udp_rcv+"]);
}

#[test]
fn skbdrop_counts_no_socket_with_stack_and_counters_ipv6() {
    check_skbdrop_no_socket("6", "Udp6NoPorts", &["__udp6_lib_rcv+", "udpv6_rcv+"]);
}

/// Routine teardown purges (QUEUE_PURGE: the peer's FIN still queued on a socket that closed
/// first) are counted like any drop, and marked routine in both outputs; real drops are not.
#[test]
fn skbdrop_marks_routine_reasons() {
    if common::refused_here("skbdrop") {
        return;
    }
    if !common::btf_names("SKB_DROP_REASON_QUEUE_PURGE") {
        eprintln!("skipped: no QUEUE_PURGE reason before Linux 6.7");
        return;
    }
    let ns = Netns::new();
    let json = Tool::start(&["skbdrop", "--json", "-n", "--netns", &ns.path()]);
    let table = Tool::start(&["skbdrop", "-n", "--netns", &ns.path()]);
    for _ in 0..2 {
        ns.loadgen(&["segments", "--client-send", "10", "--server-send", "20"]);
    }
    ns.loadgen(&["connect", "--port", "9"]);
    let rows = json_of(&json.stop());
    let table = table.stop();
    let count = |reason: &str, routine: bool| -> u64 {
        rows.iter()
            .filter(|r| r["reason"] == reason)
            .inspect(|r| assert_eq!(r["routine"], routine, "{r}"))
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count("QUEUE_PURGE", true), 2, "{rows:?}");
    assert_eq!(count("NO_SOCKET", false), 1, "{rows:?}");
    let lines = &table.lines;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("@[QUEUE_PURGE (routine: ") && l.ends_with("),")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "@[NO_SOCKET,"), "{lines:?}");
}

#[test]
fn skbdrop_table_and_netns_cookie() {
    if common::refused_here("skbdrop") || !common::drop_reasons_here("skbdrop") {
        return;
    }
    let ns = Netns::new();
    let cookie = netns_cookie(&ns).to_string();
    // A process in the namespace lets a cookie be turned into a place to read counters from.
    let waiting = ns.loadgen_waiting(&["udp-send", "--count", "3", "--size", "10", "--port", "9"]);
    let tool = Tool::start(&["skbdrop", "--netns", &cookie, "--frames", "0"]);
    waiting.go();
    let f = tool.stop();
    assert!(f.status.success(), "{}", f.stderr);
    let text = f.lines.join("\n");
    // The innermost frame is the function that frees: sk_skb_reason_drop since Linux 6.11
    // (kfree_skb_reason became an inline wrapper of it), kfree_skb_reason before.
    let freeing = if kernel_has("sk_skb_reason_drop") {
        "sk_skb_reason_drop"
    } else {
        "kfree_skb_reason"
    };
    assert!(
        text.contains(&format!("@[NO_SOCKET,\n        {freeing}+0x")),
        "{text}"
    );
    // Whole stacks may differ between packets (softirq run from another context): add the rows up.
    let no_socket: u64 = text
        .split("@[")
        .filter(|block| block.starts_with("NO_SOCKET,"))
        .map(|block| {
            let count = block.split("]: ").nth(1).unwrap().lines().next().unwrap();
            count.parse::<u64>().unwrap()
        })
        .sum();
    assert_eq!(no_socket, 3, "{text}");
    assert!(text.contains("\n#kernel\n"), "{text}");
    let noports = f
        .lines
        .iter()
        .find(|l| l.starts_with("UdpNoPorts "))
        .expect(&text);
    assert_eq!(noports.split_whitespace().nth(1), Some("3"), "{noports}");
    // --frames 0: the whole stack, down to the syscall.
    assert!(text.contains("__sys_sendto"), "{text}");
}

#[test]
fn skbdrop_cookie_without_process_still_counts_drops() {
    if common::refused_here("skbdrop") || !common::drop_reasons_here("skbdrop") {
        return;
    }
    let ns = Netns::new();
    let cookie = netns_cookie(&ns).to_string();
    let tool = Tool::start(&["skbdrop", "--json", "--netns", &cookie]);
    ns.loadgen(&["udp-send", "--count", "2", "--size", "10", "--port", "9"]);
    let f = tool.stop();
    assert!(
        f.stderr.contains("no counter deltas: no process found"),
        "{}",
        f.stderr
    );
    let rows = json_of(&f);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["count"], 2);
}

/// Datagrams still queued on a socket when it closes are dropped from its queue, where skb->dev
/// holds UDP's scratch data rather than a device, and UDP leaves skb->sk unset: with --netns
/// they cannot be placed, and the tool says how many such drops it left out.
#[test]
fn skbdrop_netns_says_what_it_cannot_place() {
    if common::refused_here("skbdrop") || !common::drop_reasons_here("skbdrop") {
        return;
    }
    let ns = Netns::new();
    let args = ["skbdrop", "--json", "-n", "--frames", "0", "--netns"];
    let tool = Tool::start(&[&args[..], &[&ns.path()]].concat());
    let other = Netns::new();
    let elsewhere = Tool::start(&[&args[..], &[&other.path()]].concat());
    let all = Tool::start(&args[..5]);
    let run = ns.loadgen(&[
        "udp-send", "--count", "7", "--size", "100", "--recv", "--unread",
    ]);
    assert_eq!(run["received"], 0, "{run}");
    // UDP frees a closed socket after an RCU grace period: its queue is purged then.
    thread::sleep(std::time::Duration::from_secs(1));
    let purged = |rows: &[Value]| -> u64 {
        rows.iter()
            .filter(|r| {
                r["stack"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|f| f.as_str().unwrap().starts_with("udp_destruct"))
                })
            })
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    let all = all.stop();
    let f = tool.stop();
    let rows = json_of(&f);
    assert_eq!(
        purged(&json_of(&all)),
        7,
        "without --netns: {}",
        all.lines.join("\n")
    );
    assert_eq!(purged(&rows), 0, "{rows:?}");
    let line = f
        .stderr
        .lines()
        .find(|l| l.contains("not counted: with --netns a drop is placed by its packet's"))
        .unwrap_or_else(|| panic!("{}", f.stderr));
    let unplaced: u64 = line
        .split("skbdrop: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(unplaced >= 7, "{line}");
    assert_eq!(purged(&json_of(&elsewhere.stop())), 0);
}

// ---- skblife ---------------------------------------------------------------------------------

/// Datagrams to a closed port: each UDP skb is dropped and each ICMP error consumed, both freed to
/// the slab, so every one of them has a lifetime.
#[test]
fn skblife_sees_the_test_traffic() {
    if common::refused_here("skblife") {
        return;
    }
    let ns = Netns::new();
    let path = ns.path();
    let tool = Tool::start(&["skblife", "--json", "--netns", &path]);
    let via_lo = Tool::start(&["skblife", "--json", "--netns", &path, "-i", "lo"]);
    let wrong_if = Tool::start(&["skblife", "--json", "-i", "va", "--netns", &path]);
    let other = Netns::new();
    let elsewhere = Tool::start(&["skblife", "--json", "--netns", &other.path()]);
    ns.loadgen(&["udp-send", "--count", "20", "--size", "100", "--port", "9"]);

    for f in [tool.stop(), via_lo.stop()] {
        let rows = json_of(&f);
        let h = hist(&rows, "skb_residency_nsecs", None);
        assert!(total(h) >= 20, "{rows:?}");
        // Plausible: more than 100 ns, less than a second.
        assert_eq!(count_from(h, 1 << 30), 0, "{h}");
        assert_eq!(
            buckets(h)
                .iter()
                .filter(|b| b["low"].as_u64().unwrap() < 128)
                .count(),
            0
        );
        let summary = rows.iter().find(|r| r.get("frees").is_some()).unwrap();
        assert_eq!(summary["frees"].as_u64().unwrap(), total(h));
    }
    for f in [wrong_if.stop(), elsewhere.stop()] {
        let rows = json_of(&f);
        assert_eq!(
            total(hist(&rows, "skb_residency_nsecs", None)),
            0,
            "{rows:?}"
        );
    }
}

// ---- options ---------------------------------------------------------------------------------

#[test]
fn bad_options_are_refused() {
    for (args, want) in [
        (
            &["netsize", "-i", "a/b"][..],
            "'a/b' is not an interface name",
        ),
        (
            &["nettxlat", "-i", "a-very-long-name0"][..],
            "1 to 15 characters",
        ),
        (
            &["skblife", "--interface", ""][..],
            "is not an interface name",
        ),
        (&["skbdrop", "--frames", "many"][..], "invalid value 'many'"),
        (&["netsize", "--bogus"][..], "unexpected argument '--bogus'"),
        (
            &["nettxlat", "-d", "0"][..],
            "not a positive number of seconds",
        ),
        (
            &["skbdrop", "--netns", "/nonexistent"][..],
            "No such file or directory",
        ),
    ] {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn help_has_examples() {
    for tool in ["netsize", "nettxlat", "skbdrop", "skblife"] {
        let o = netbpf(&[tool, "--help"]);
        assert!(o.status.success());
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("Examples:") && out.contains("--json"),
            "{tool}: {out}"
        );
    }
}
