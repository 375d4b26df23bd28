//! socketio, socksize, sormem, so1stbyte and soconnlat against real loopback traffic, each test in
//! its own network namespace with the tool filtered to it.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use common::{
    has_sock_length_tracepoints, loadgen_bin, netbpf, runnable_plans, vmtest_kernel, Netns, Tool,
};
use serde_json::Value;

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A JSON array of signed numbers (call results, -errno for errors).
fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect()
}

fn sizes(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect()
}

/// The log2 slot bounds [low, high) of a value, as core::hist prints them.
fn bucket_of(v: u64) -> (u64, u64) {
    if v == 0 {
        (0, 1)
    } else {
        let low = 1u64 << (63 - v.leading_zeros());
        (low, low * 2)
    }
}

/// A histogram's buckets as (low, high, count).
fn buckets(h: &Value) -> Vec<(u64, u64, u64)> {
    h["buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("no buckets: {h}"))
        .iter()
        .map(|b| (num(b, "low"), num(b, "high"), num(b, "count")))
        .collect()
}

/// Expected buckets of a list of values: sorted (low, high, count).
fn expected_buckets(values: impl IntoIterator<Item = u64>) -> Vec<(u64, u64, u64)> {
    let mut m = std::collections::BTreeMap::new();
    for v in values {
        *m.entry(bucket_of(v)).or_insert(0) += 1;
    }
    m.into_iter().map(|((l, h), c)| (l, h, c)).collect()
}

fn total(h: &Value) -> u64 {
    buckets(h).iter().map(|b| b.2).sum()
}

/// The JSON histograms named `name` whose fields match `labels`.
fn hists<'a>(rows: &'a [Value], name: &str, labels: &[(&str, Value)]) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["hist"] == name && labels.iter().all(|(k, v)| &r[*k] == v))
        .collect()
}

fn one_hist<'a>(rows: &'a [Value], name: &str, labels: &[(&str, Value)]) -> &'a Value {
    let found = hists(rows, name, labels);
    assert_eq!(
        found.len(),
        1,
        "one @{name} {labels:?} expected in {rows:?}"
    );
    found[0]
}

// ---------------------------------------------------------------------------------------------
// socketio

/// The count socketio printed for (pid, dir, protocol, rport), 0 when absent.
fn io_count(rows: &[Value], pid: u64, dir: &str, proto: &str, rport: u64) -> u64 {
    io_count_at(rows, pid, dir, proto, 0, rport)
}

/// The count socketio printed for (pid, dir, protocol, lport, rport), 0 when absent.
fn io_count_at(rows: &[Value], pid: u64, dir: &str, proto: &str, lport: u64, rport: u64) -> u64 {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["pid"] == pid
                && r["dir"] == dir
                && r["protocol"] == proto
                && r["lport"] == lport
                && r["rport"] == rport
        })
        .collect();
    assert!(found.len() <= 1, "{found:?}");
    found.first().map_or(0, |r| num(r, "count"))
}

#[test]
fn socketio_counts_every_tcp_call_by_side() {
    let ns = Netns::new();
    let json = Tool::start(&["socketio", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["socketio", "--netns", &ns.path()]);
    let run = ns.loadgen(&["sockio", "--proto", "tcp", "--family", "4", "--msgs", "20"]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();
    let (pid, sport) = (num(&run, "pid"), num(&run, "server_port"));
    let (client, server) = (&run["client"], &run["server"]);
    // The client's socket is keyed by its remote port, the server's; the server's connection by
    // its local port, the listener's (not by the client's port).
    let expect = [
        ("write", 0, sport, sizes(&client["sends"]).len()),
        ("read", 0, sport, sizes(&client["recvs"]).len()),
        ("write", sport, 0, sizes(&server["sends"]).len()),
        ("read", sport, 0, sizes(&server["recvs"]).len()),
    ];
    for (dir, lport, rport, calls) in expect {
        assert_eq!(
            io_count_at(&rows, pid, dir, "TCP", lport, rport),
            calls as u64,
            "{dir} at {lport}/{rport}: {rows:?}"
        );
    }
    assert_eq!(expect[0].3, 20, "one send per message");
    assert!(expect[3].3 >= 21, "20 messages and the end of stream");
    assert_eq!(rows.len(), 4, "nothing else in this netns: {rows:?}");
    assert!(rows.iter().all(|r| r["comm"] == "loadgen"), "{rows:?}");

    let line = format!("@io[loadgen, {pid}, write, TCP, {sport}]: 20");
    assert!(table.lines.contains(&line), "{line} in {:?}", table.lines);
}

/// A server bound to its port, 50 clients: the server's connections count under its local port,
/// one line per direction, not one line per client port; the clients' under the remote port.
#[test]
fn socketio_keys_server_connections_by_local_port() {
    const SCRIPT: &str = r#"
import os, socket, threading
n = 50
l = socket.socket()
l.bind(("127.0.0.1", 8080))
l.listen(64)
def serve():
    for _ in range(n):
        c, _ = l.accept()
        c.recv(100)
        c.sendall(b"ok")
        c.close()
t = threading.Thread(target=serve)
t.start()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 8080))
    s.sendall(b"x" * 10)
    s.recv(100)
    s.close()
t.join()
print(os.getpid())
"#;
    let ns = Netns::new();
    let json = Tool::start(&["socketio", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["socketio", "--netns", &ns.path()]);
    let out = ns.command("python3").args(["-c", SCRIPT]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();
    let count = |dir: &str, lport: u64, rport: u64| {
        rows.iter()
            .filter(|r| {
                r["pid"] == pid && r["dir"] == dir && r["lport"] == lport && r["rport"] == rport
            })
            .map(|r| num(r, "count"))
            .sum::<u64>()
    };
    assert_eq!(count("read", 8080, 0), 50, "{rows:?}");
    assert_eq!(count("write", 8080, 0), 50, "{rows:?}");
    assert_eq!(count("write", 0, 8080), 50, "{rows:?}");
    assert_eq!(count("read", 0, 8080), 50, "{rows:?}");
    assert_eq!(rows.len(), 4, "one line per (side, direction): {rows:?}");
    let line = format!("@io[python3, {pid}, read, TCP, local:8080]: 50");
    assert!(table.lines.contains(&line), "{line} in {:?}", table.lines);
}

#[test]
fn socketio_names_udp_over_ipv6() {
    let ns = Netns::new();
    let tool = Tool::start(&["socketio", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&["sockio", "--proto", "udp", "--family", "6", "--msgs", "7"]);
    let rows = tool.stop().succeeded().json();
    let (pid, sport) = (num(&run, "pid"), num(&run, "server_port"));
    // The client is connected (remote port = server); the server answers with sendto() on an
    // unconnected socket (remote port 0).
    assert_eq!(io_count(&rows, pid, "write", "UDPv6", sport), 7, "{rows:?}");
    assert_eq!(io_count(&rows, pid, "read", "UDPv6", sport), 7, "{rows:?}");
    assert_eq!(io_count(&rows, pid, "write", "UDPv6", 0), 7, "{rows:?}");
    assert_eq!(io_count(&rows, pid, "read", "UDPv6", 0), 7, "{rows:?}");
    assert_eq!(rows.len(), 4, "{rows:?}");
}

#[test]
fn socketio_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let traced = ns.loadgen_waiting(&["sockio", "--proto", "tcp", "--msgs", "5"]);
    let other = ns.loadgen_waiting(&["sockio", "--proto", "udp", "--msgs", "3"]);
    let by_pid = Tool::start(&[
        "socketio",
        "--json",
        "--netns",
        &ns.path(),
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["socketio", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (traced.go(), other.go());
    let rows = by_pid.stop().succeeded().json();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["pid"] == a["pid"]), "{rows:?}");
    assert!(!rows.iter().any(|r| r["pid"] == b["pid"]));
    assert_eq!(
        io_count(
            &rows,
            num(&a, "pid"),
            "write",
            "TCP",
            num(&a, "server_port")
        ),
        5
    );
    assert_eq!(other_ns.stop().succeeded().json(), Vec::<Value>::new());
}

/// Every way a message reaches a socket's protocol (write, send, sendto, sendmsg, writev,
/// sendmmsg with and without an address; read, recv, recvfrom, recvmsg, readv, recvmmsg, and an
/// EAGAIN), counted exactly by socketio and sized exactly by socksize, in every plan this kernel
/// can run: the 6.3+ tracepoints, and on stock kernels fentry and kprobes, which must find the
/// messages that bypass sock_sendmsg()/sock_recvmsg().
#[test]
fn socketio_and_socksize_see_every_message_path_in_every_plan() {
    let (io_plans, size_plans) = (runnable_plans("socketio"), runnable_plans("socksize"));
    assert_eq!(
        io_plans.len(),
        size_plans.len(),
        "{io_plans:?} {size_plans:?}"
    );
    for (io_plan, size_plan) in io_plans.iter().zip(&size_plans) {
        let ns = Netns::new();
        let args = ["--json", "--netns", &ns.path()];
        let io = Tool::start_with_env(
            &[&["socketio"], &args[..]].concat(),
            &[("NETBPF_PLAN", io_plan)],
        );
        let size = Tool::start_with_env(
            &[&["socksize"], &args[..]].concat(),
            &[("NETBPF_PLAN", size_plan)],
        );
        let runs = [
            ns.loadgen(&["msgpaths", "--family", "4"]),
            ns.loadgen(&["msgpaths", "--family", "6"]),
        ];
        let rows = io.stop().succeeded().json();
        let hists = size.stop().succeeded().json();
        for (run, proto) in runs.iter().zip(["UDP", "UDPv6"]) {
            let (pid, sport) = (num(run, "pid"), num(run, "server_port"));
            let (sends, recvs) = (ints(&run["sends"]), ints(&run["recvs"]));
            assert_eq!((sends.len(), recvs.len()), (10, 11), "{run}");
            // The client is connected to the server; the server is not connected (port 0).
            assert_eq!(
                io_count(&rows, pid, "write", proto, sport),
                10,
                "{io_plan}: {rows:?}"
            );
            assert_eq!(
                io_count(&rows, pid, "read", proto, 0),
                11,
                "{io_plan}: the EAGAIN too: {rows:?}"
            );
        }
        assert_eq!(rows.len(), 4, "{io_plan}: {rows:?}");
        let moved = |key: &str| -> Vec<u64> {
            runs.iter()
                .flat_map(|r| ints(&r[key]))
                .filter(|&n| n > 0)
                .map(|n| n as u64)
                .collect()
        };
        assert_eq!(
            buckets(one_hist(&hists, "write_bytes", &[])),
            expected_buckets(moved("sends")),
            "{size_plan}"
        );
        assert_eq!(
            buckets(one_hist(&hists, "read_bytes", &[])),
            expected_buckets(moved("recvs")),
            "{size_plan}"
        );
        assert_eq!(hists.len(), 2, "{size_plan}: {hists:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// socksize

#[test]
fn socksize_buckets_hold_the_exact_sizes() {
    let ns = Netns::new();
    let json = Tool::start(&["socksize", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["socksize", "--netns", &ns.path()]);
    // 1000 bytes pins [512, 1K), 3000 bytes [2K, 4K), the 1-byte acks [1].
    let tcp = ns.loadgen(&["sockio", "--proto", "tcp", "--msgs", "10", "--size", "1000"]);
    let udp = ns.loadgen(&[
        "sockio", "--proto", "udp", "--family", "6", "--msgs", "7", "--size", "3000",
    ]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    // Both runs are processes named loadgen: one histogram per direction holds every call of
    // both that moved data (end of stream, 0 bytes, is left out).
    let calls = |dir: &str| -> Vec<u64> {
        [&tcp, &udp]
            .iter()
            .flat_map(|run| [sizes(&run["client"][dir]), sizes(&run["server"][dir])])
            .flatten()
            .filter(|&n| n > 0)
            .collect()
    };
    let comm = [("comm", Value::from("loadgen"))];
    let writes = one_hist(&rows, "write_bytes", &comm);
    let reads = one_hist(&rows, "read_bytes", &comm);
    assert_eq!(buckets(writes), expected_buckets(calls("sends")));
    assert_eq!(buckets(reads), expected_buckets(calls("recvs")));
    assert!(
        buckets(writes).contains(&(512, 1024, 10)) && buckets(writes).contains(&(2048, 4096, 7)),
        "{writes}"
    );
    assert_eq!(writes["unit"], "bytes");
    assert_eq!(rows.len(), 2, "{rows:?}");

    let text = table.lines.join("\n");
    let at = text
        .find("@write_bytes[loadgen]:")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text[at..]
            .lines()
            .any(|l| l.starts_with("[512, 1K)") && l.split_whitespace().nth(2) == Some("10")),
        "{text}"
    );
    assert!(
        text.find("@read_bytes[loadgen]:").unwrap() < at,
        "reads first: {text}"
    );
}

#[test]
fn socksize_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let traced = ns.loadgen_waiting(&["sockio", "--proto", "tcp", "--msgs", "4", "--size", "100"]);
    let other = ns.loadgen_waiting(&["sockio", "--proto", "tcp", "--msgs", "4", "--size", "5000"]);
    let by_pid = Tool::start(&[
        "socksize",
        "--json",
        "--netns",
        &ns.path(),
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["socksize", "--json", "--netns", &elsewhere.path()]);
    let (a, _) = (traced.go(), other.go());
    let rows = by_pid.stop().succeeded().json();
    let writes = one_hist(&rows, "write_bytes", &[]);
    // Only the traced process's 100-byte messages and acks; none of the other's 5000 bytes.
    let sends: Vec<u64> = [sizes(&a["client"]["sends"]), sizes(&a["server"]["sends"])].concat();
    assert_eq!(buckets(writes), expected_buckets(sends));
    assert!(!buckets(writes).iter().any(|b| b.0 == 4096), "{writes}");
    assert_eq!(other_ns.stop().succeeded().json(), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// sormem

fn events<'a>(rows: &'a [Value], event: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["event"] == event).collect()
}

#[test]
fn sormem_reports_a_full_receive_queue() {
    let ns = Netns::new();
    let json = Tool::start(&["sormem", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["sormem", "--netns", &ns.path()]);
    // An ICMP echo socket with a tiny buffer: its replies queue through sock_queue_rcv_skb.
    let run = ns.loadgen(&[
        "rcvbuf", "--proto", "ping", "--rcvbuf", "4096", "--count", "30",
    ]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();
    let (rcvbuf, sent, received, reads) = (
        num(&run, "rcvbuf"),
        num(&run, "sent"),
        num(&run, "received"),
        num(&run, "reads"),
    );
    assert!(received < sent, "the reader must have fallen behind: {run}");

    let full = events(&rows, "sock:sock_rcvqueue_full");
    assert_eq!(
        full.len() as u64,
        sent - received,
        "one per dropped reply: {rows:?}"
    );
    for e in &full {
        assert_eq!(e["protocol"], "PING", "{e}");
        assert_eq!(num(e, "rcvbuf"), rcvbuf, "{e}");
        assert!(
            num(e, "rmem_alloc") >= rcvbuf,
            "dropped only when full: {e}"
        );
        assert!(num(e, "truesize") > 100, "{e}");
        assert_eq!(e["lport"], run["port"], "{e}");
        assert_eq!(e["pid"], run["pid"], "{e}");
    }

    // One sample per read call (the last one found the queue empty), all with this rcvbuf.
    let limit = one_hist(&rows, "rmem_limit", &[]);
    let (low, high) = bucket_of(rcvbuf);
    assert_eq!(buckets(limit), vec![(low, high, reads)], "{limit}");
    let alloc = one_hist(&rows, "rmem_alloc", &[]);
    assert_eq!(total(alloc), reads, "{alloc}");
    let b = buckets(alloc);
    assert!(
        b[0].0 == 0 && b[0].2 >= 1,
        "an empty queue at the last read: {alloc}"
    );
    assert!(
        b.iter().any(|x| x.0 >= rcvbuf / 2),
        "a read found the queue nearly full: {alloc}"
    );

    let line = format!(
        "sock:sock_rcvqueue_full rmem_alloc {} > rcvbuf {rcvbuf}, skb size {} on PING {}:{}",
        full[0]["rmem_alloc"],
        full[0]["truesize"],
        full[0]["laddr"].as_str().unwrap(),
        full[0]["lport"]
    );
    assert!(table.lines.contains(&line), "{line} in {:?}", table.lines);
    assert!(
        table.lines.iter().any(|l| l == "@rmem_limit:"),
        "{:?}",
        table.lines
    );
}

/// UDP queues without sock_queue_rcv_skb: its drops come from udp_fail_queue_rcv_skb, which
/// IPv6 fires only since 6.4 (the fentry and kprobe plans take IPv6 drops from
/// __udp_enqueue_schedule_skb's return instead). Every plan here, for IPv4 and IPv6 (the
/// tracepoint plan: IPv6 only where it is the plan of choice, a kernel that fires it).
#[test]
fn sormem_reports_udp_receive_buffer_drops() {
    let plans = runnable_plans("sormem");
    for (i, plan) in plans.iter().enumerate() {
        for family in ["4", "6"] {
            if family == "6" && plan == "tracepoint" && i > 0 {
                continue;
            }
            let ns = Netns::new();
            let tool = Tool::start_with_env(
                &["sormem", "--json", "--netns", &ns.path()],
                &[("NETBPF_PLAN", plan)],
            );
            let run = ns.loadgen(&[
                "rcvbuf", "--proto", "udp", "--family", family, "--rcvbuf", "4096", "--count", "30",
            ]);
            let rows = tool.stop().succeeded().json();
            let (sent, received) = (num(&run, "sent"), num(&run, "received"));
            assert!(received < sent, "{run}");
            let drops = events(&rows, "udp:udp_fail_queue_rcv_skb");
            assert_eq!(
                drops.len() as u64,
                sent - received,
                "{plan} v{family}: {rows:?}"
            );
            let (proto, laddr) = if family == "6" {
                ("UDPv6", "::1")
            } else {
                ("UDP", "127.0.0.1")
            };
            for e in &drops {
                assert_eq!(e["protocol"], proto, "{e}");
                assert_eq!(e["rc"], -12, "ENOMEM: {e}");
                assert_eq!(e["lport"], run["port"], "{e}");
                assert_eq!(e["laddr"], laddr, "{e}");
                assert_eq!(num(e, "rcvbuf"), num(&run, "rcvbuf"), "{e}");
            }
            assert!(events(&rows, "sock:sock_rcvqueue_full").is_empty());
        }
    }
}

#[test]
fn sormem_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let args = [
        "rcvbuf", "--proto", "ping", "--rcvbuf", "4096", "--count", "20",
    ];
    let traced = ns.loadgen_waiting(&args);
    let other = ns.loadgen_waiting(&args);
    let by_pid = Tool::start(&[
        "sormem",
        "--json",
        "--netns",
        &ns.path(),
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["sormem", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (traced.go(), other.go());
    let rows = by_pid.stop().succeeded().json();
    let full = events(&rows, "sock:sock_rcvqueue_full");
    assert_eq!(
        full.len() as u64,
        num(&a, "sent") - num(&a, "received"),
        "{rows:?}"
    );
    assert!(full.iter().all(|e| e["lport"] == a["port"]), "{rows:?}");
    assert!(!full.iter().any(|e| e["lport"] == b["port"]));
    assert_eq!(total(one_hist(&rows, "rmem_limit", &[])), num(&a, "reads"));
    assert_eq!(other_ns.stop().succeeded().json(), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// so1stbyte

#[test]
fn so1stbyte_times_a_slow_first_byte() {
    let ns = Netns::new();
    let json = Tool::start(&["so1stbyte", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["so1stbyte", "--netns", &ns.path()]);
    // The server waits 50 ms after accept() before its first byte. Two more connections are
    // closed unread, and a pipe then takes their fd number and is read: neither may count.
    let run = ns.loadgen(&[
        "firstbyte",
        "--family",
        "4",
        "--delay-ms",
        "50",
        "--count",
        "3",
        "--unread",
        "2",
    ]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();
    let pid = num(&run, "pid");
    assert!(
        num(&run, "fd_reused") >= 1,
        "a pipe must reuse a closed socket's fd: {run}"
    );
    let h = one_hist(
        &rows,
        "us",
        &[("comm", Value::from("loadgen")), ("pid", Value::from(pid))],
    );
    assert_eq!(total(h), 3, "one sample per connection read: {h}");
    assert_eq!(h["unit"], "us");
    assert_first_byte_near_50ms(h);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        table.lines.contains(&format!("@us[loadgen, {pid}]:")),
        "{:?}",
        table.lines
    );
}

/// The server waits 50 ms before its first byte: every sample in [32 ms, 128 ms) (a busy
/// machine may add some), most in the issue's bucket [32 ms, 64 ms). In the VMs, whose CPU is
/// emulated and shared, a stalled guest adds up to seconds (seen: 64-128 ms, 256-512 ms, 1-2 s):
/// only the lower bound, which the 50 ms make, and a bound against nonsense there.
fn assert_first_byte_near_50ms(h: &Value) {
    let b = buckets(h);
    if vmtest_kernel().is_some() {
        assert!(b.iter().all(|x| x.0 >= 32768 && x.1 <= 1 << 22), "{h}");
        return;
    }
    assert!(b.iter().all(|x| x.0 >= 32768 && x.1 <= 131072), "{h}");
    let in_64 = b.iter().filter(|x| x.0 == 32768).map(|x| x.2).sum::<u64>();
    assert!(2 * in_64 >= total(h), "most in [32K, 64K): {h}");
}

/// Asking a non-blocking socket for its result with connect() again (0, then EISCONN) neither
/// restarts the clock nor drops the connection.
#[test]
fn so1stbyte_keeps_the_clock_when_connect_is_asked_again() {
    let ns = Netns::new();
    let tool = Tool::start(&["so1stbyte", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "firstbyte",
        "--family",
        "4",
        "--delay-ms",
        "50",
        "--count",
        "3",
        "--reconnect",
    ]);
    let rows = tool.stop().succeeded().json();
    let h = one_hist(&rows, "us", &[("pid", run["pid"].clone())]);
    assert_eq!(total(h), 3, "one per connection: {h}");
    assert_first_byte_near_50ms(h);
    assert_eq!(rows.len(), 1, "{rows:?}");
}

#[test]
fn so1stbyte_ipv6_and_filters() {
    let ns = Netns::new();
    let traced = ns.loadgen_waiting(&[
        "firstbyte",
        "--family",
        "6",
        "--delay-ms",
        "40",
        "--count",
        "2",
    ]);
    let other = ns.loadgen_waiting(&["firstbyte", "--family", "6", "--count", "2"]);
    let all = Tool::start(&["so1stbyte", "--json", "--netns", &ns.path()]);
    let by_pid = Tool::start(&[
        "so1stbyte",
        "--json",
        "--netns",
        &ns.path(),
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["so1stbyte", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (traced.go(), other.go());
    let all = all.stop().succeeded().json();
    let rows = by_pid.stop().succeeded().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"], a["pid"]);
    assert_eq!(total(&rows[0]), 2);
    assert!(buckets(&rows[0]).iter().all(|x| x.0 >= 32768), "{rows:?}");
    assert_eq!(all.len(), 2, "{all:?}");
    let h = one_hist(&all, "us", &[("pid", b["pid"].clone())]);
    assert_eq!(total(h), 2, "{h}");
    assert_eq!(other_ns.stop().succeeded().json(), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// soconnlat

/// A loadgen that stays alive after its report until dropped (so stacks can be symbolized).
struct Lingering {
    child: Child,
    report: Value,
}

impl Lingering {
    fn start(ns: &Netns, args: &[&str]) -> Lingering {
        let mut child = ns
            .command(loadgen_bin())
            .args(args)
            .arg("--linger-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let report = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Lingering { child, report }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[test]
fn soconnlat_completes_nonblocking_connects_through_each_wait() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let json = Tool::start(&["soconnlat", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["soconnlat", "--netns", &ns.path()]);
    // Each process: 2 non-blocking connects, then 30 ms before it waits for the result. The
    // clock must stop at the wait's return (not at connect()'s EINPROGRESS, nor at
    // epoll_create1 or epoll_ctl), so every sample is >= 30 ms.
    // glibc's select() makes the pselect6 syscall; select-syscall makes select(2) itself.
    // epoll_pwait2 is a 5.11 syscall.
    let has_epoll_pwait2 =
        std::path::Path::new("/sys/kernel/tracing/events/syscalls/sys_exit_epoll_pwait2").exists();
    let vias: Vec<&str> = [
        "epoll",
        "epoll_pwait",
        "epoll_pwait2",
        "ppoll",
        "poll",
        "select",
        "select-syscall",
    ]
    .into_iter()
    .filter(|via| *via != "epoll_pwait2" || has_epoll_pwait2)
    .collect();
    let runs: Vec<Lingering> = vias
        .iter()
        .map(|via| {
            Lingering::start(
                &ns,
                &[
                    "connectvia",
                    "--via",
                    via,
                    "--count",
                    "2",
                    "--sleep-ms",
                    "30",
                ],
            )
        })
        .collect();
    let blocking = ns.loadgen(&[
        "firstbyte",
        "--family",
        "6",
        "--delay-ms",
        "0",
        "--count",
        "3",
    ]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    let mut stacks = 0;
    for (via, run) in vias.iter().zip(&runs) {
        let r = &run.report;
        assert_eq!(num(r, "einprogress"), 2, "{via}: {r}");
        assert_eq!(num(r, "ok"), 2, "{via}: {r}");
        let h = one_hist(&rows, "us", &[("pid", r["pid"].clone())]);
        assert_eq!(total(h), 2, "{via}: {h}");
        assert!(
            buckets(h).iter().all(|b| b.0 >= 16384 && b.1 <= 1 << 21),
            "{via}: {h}"
        );
        assert_eq!(h["comm"], "loadgen");
        // The innermost frame is libc's connect() wrapper, symbolized while the process lives.
        // The kernel may fail to walk a user stack (a page not present): then it is empty.
        let stack = h["stack"].as_array().unwrap_or_else(|| panic!("{h}"));
        if let Some(top) = stack.first() {
            assert!(
                top.as_str().unwrap().contains("connect"),
                "{via}: {stack:?}"
            );
            stacks += 1;
        }
    }
    assert!(stacks > 0, "no stack at all: {rows:?}");
    // Blocking connects end at connect()'s return.
    let h = one_hist(&rows, "us", &[("pid", blocking["pid"].clone())]);
    assert_eq!(total(h), 3, "{h}");
    assert!(!h["stack"].as_array().unwrap().is_empty(), "{h}");
    assert_eq!(rows.len(), vias.len() + 1, "{rows:?}");

    let pid = runs[0].report["pid"].as_u64().unwrap();
    let title = table
        .lines
        .iter()
        .position(|l| l == &format!(", loadgen, {pid}]:"))
        .unwrap_or_else(|| panic!("{:?}", table.lines));
    assert!(table.lines[..title].iter().rev().any(|l| l == "@us["));
    drop(runs);
}

/// A program built without frame pointers (Debian's bash): its stacks stop at libc's connect(),
/// which is said on stderr once, with connect()'s caller found on top of the stack shown after
/// it (issue 15: soconnlat's stacks were `connect+0x10` or junk on Debian binaries, unexplained).
/// bash calls connect() in one place, lib/sh/netopen.c's _netopen4/_netopen6, which Debian's
/// build inlines into netopen().
#[test]
fn soconnlat_says_when_stacks_stop_short_and_shows_the_caller() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["soconnlat", "--json", "--netns", &ns.path()]);
    // Refused (nothing listens on port 9); bash lives on for its stack to be located.
    let bash = ns
        .command("bash")
        .args([
            "-c",
            "{ exec 3<>/dev/tcp/127.0.0.1/9; } 2>/dev/null; r=$?; sleep 0.5; exit $r",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = bash.id();
    let status = bash.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(1), "the connect is refused");
    let f = tool.stop().succeeded();
    let rows = f.json();
    let h = one_hist(&rows, "us", &[("pid", pid.into())]);
    assert_eq!(total(h), 1, "{h}");
    let stack: Vec<&str> = h["stack"]
        .as_array()
        .unwrap_or_else(|| panic!("{h}"))
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // The kernel may fail to walk a user stack (a page not present): then it is empty, and so
    // is what is said. Otherwise connect() alone, then its caller.
    if stack.is_empty() {
        return;
    }
    assert_eq!(stack.len(), 2, "{stack:?}");
    assert!(stack[0].starts_with("connect+"), "{stack:?}");
    assert!(stack[1].starts_with("netopen+0x"), "{stack:?}");
    assert!(stack[1].ends_with(" [caller]"), "{stack:?}");
    let said = format!(
        "netbpf soconnlat: stacks of /usr/bin/bash (pid {pid}) stop after 1 frame: the code \
         calling connect() has no frame pointers (build with -fno-omit-frame-pointer for full \
         stacks); connect()'s caller is shown as found on top of the stack, marked [caller]"
    );
    assert_eq!(
        f.stderr
            .lines()
            .filter(|l| l.contains("stop after"))
            .collect::<Vec<_>>(),
        [said.as_str()],
        "{}",
        f.stderr
    );
}

/// connect() called again to learn a non-blocking connect's result (0, then EISCONN) is not a
/// new connection: one sample per connection, timed to the wait's return.
#[test]
fn soconnlat_does_not_count_a_connect_asked_again() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["soconnlat", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "connectvia",
        "--via",
        "select",
        "--count",
        "2",
        "--sleep-ms",
        "30",
        "--reconnect",
    ]);
    let rows = tool.stop().succeeded().json();
    assert_eq!(
        (
            num(&run, "ok"),
            num(&run, "reconnect_ok"),
            num(&run, "eisconn")
        ),
        (2, 2, 2),
        "{run}"
    );
    let h = one_hist(&rows, "us", &[("pid", run["pid"].clone())]);
    assert_eq!(total(h), 2, "{h}");
    assert!(buckets(h).iter().all(|b| b.0 >= 16384), "{h}");
    assert_eq!(rows.len(), 1, "{rows:?}");
}

/// A process that exits as soon as its connect completes still gets a symbolized stack: it is
/// located in its files when the connect starts.
#[test]
fn soconnlat_names_the_stack_of_a_process_that_exits_at_once() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["soconnlat", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "connectvia",
        "--via",
        "epoll",
        "--count",
        "1",
        "--sleep-ms",
        "100",
    ]);
    let rows = tool.stop().succeeded().json();
    let h = one_hist(&rows, "us", &[("pid", run["pid"].clone())]);
    let stack = h["stack"].as_array().unwrap_or_else(|| panic!("{h}"));
    assert!(stack[0].as_str().unwrap().contains("connect"), "{stack:?}");
    // Every frame is named from its file (loadgen has no frame pointers: the walk is short).
    assert!(
        stack.iter().all(|f| !f.as_str().unwrap().starts_with("0x")),
        "{stack:?}"
    );
}

/// The histogram slot (its low bound, µs) from which a connect is the slow one: it waited for its
/// SYN's retransmission (~1 s); the fast ones finish in one loopback handshake, which in a busy
/// emulated VM took up to 131 ms (bucket 65536-131072).
const SLOW_US: u64 = 1 << 18;

/// A wait that returns for another fd while the handshake is still going on (its SYN dropped for
/// about 1 s) does not end the connect: it ends when the poll on its socket returns.
#[test]
fn soconnlat_is_not_ended_by_a_wait_for_another_fd() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["soconnlat", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&["slowconnect", "--family", "4"]);
    let rows = tool.stop().succeeded().json();
    assert_eq!(
        (&run["other_ready"], &run["ok"]),
        (&1.into(), &true.into()),
        "{run}"
    );
    let mine = hists(&rows, "us", &[("pid", run["pid"].clone())]);
    let all: Vec<(u64, u64, u64)> = mine.iter().flat_map(|h| buckets(h)).collect();
    // The two connections that fill the queue (fast), and the slow one.
    assert_eq!(all.iter().map(|b| b.2).sum::<u64>(), 3, "{mine:?}");
    let slow: Vec<_> = all.into_iter().filter(|b| b.0 >= SLOW_US).collect();
    assert_eq!(slow.len(), 1, "{mine:?}");
    assert!(slow[0].0 >= 524288 && slow[0].1 <= 1 << 22, "{mine:?}");
}

/// A blocking connect a signal interrupts: the handshake goes on, so it is one connection
/// whether the kernel restarts the call (SA_RESTART) or the application waits with poll() after
/// EINTR; it completes at the SYN's retransmission, about 1 s after the start.
#[test]
fn soconnlat_times_an_interrupted_connect_once() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["soconnlat", "--json", "--netns", &ns.path()]);
    let restarted = ns.loadgen(&["interrupted", "--family", "4", "--restart"]);
    let polled = ns.loadgen(&["interrupted", "--family", "6"]);
    let rows = tool.stop().succeeded().json();
    assert_eq!(
        (&restarted["result"], &polled["result"]),
        (&"ok".into(), &"eintr".into())
    );
    for run in [&restarted, &polled] {
        // The two connections that fill the listener's queue (another stack: another
        // histogram), and the interrupted one.
        let mine = hists(&rows, "us", &[("pid", run["pid"].clone())]);
        let all: Vec<(u64, u64, u64)> = mine.iter().flat_map(|h| buckets(h)).collect();
        assert_eq!(all.iter().map(|b| b.2).sum::<u64>(), 3, "{run}: {mine:?}");
        let slow: Vec<_> = all.into_iter().filter(|b| b.0 >= SLOW_US).collect();
        assert_eq!(slow.len(), 1, "{mine:?}");
        assert!(
            slow[0].0 >= 524288 && slow[0].1 <= 1 << 22 && slow[0].2 == 1,
            "{mine:?}"
        );
    }
}

#[test]
fn soconnlat_filters_exclude_what_they_should() {
    if common::refused_here("soconnlat") {
        return;
    }
    let ns = Netns::new();
    let traced = ns.loadgen_waiting(&["connect", "--count", "2"]);
    let other = ns.loadgen_waiting(&["connect", "--count", "3"]);
    let by_pid = Tool::start(&[
        "soconnlat",
        "--json",
        "--netns",
        &ns.path(),
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["soconnlat", "--json", "--netns", &elsewhere.path()]);
    // connect needs a listener: the refused ones count too (a failed connect is a latency).
    let (a, _) = (traced.go(), other.go());
    let rows = by_pid.stop().succeeded().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"], a["pid"]);
    assert_eq!(total(&rows[0]), num(&a, "ok") + num(&a, "refused"));
    assert_eq!(other_ns.stop().succeeded().json(), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------------
// all five

const TOOLS: [&str; 5] = ["socketio", "socksize", "sormem", "so1stbyte", "soconnlat"];

#[test]
fn bad_options_are_refused_clearly() {
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    for tool in TOOLS {
        for (args, says) in [
            (vec!["--bogus"], "unexpected argument '--bogus'"),
            (vec!["-p", "abc"], "'abc' is not a process id"),
            (vec!["-p", "4999999"], "no process with pid 4999999"),
            (vec!["-d", "0"], "'0' is not a positive number of seconds"),
            (
                vec!["--netns", "/nonexistent"],
                "--netns: netns '/nonexistent'",
            ),
            (vec!["extra"], "unexpected argument 'extra'"),
        ] {
            let mut argv = vec![tool];
            argv.extend(&args);
            let o = netbpf(&argv);
            assert_eq!(o.status.code(), Some(2), "{argv:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(says), "{argv:?}: {}", stderr(&o));
        }
        let o = netbpf(&[tool, "--help"]);
        assert!(o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Examples:"),
            "{tool}"
        );
    }
}

#[test]
fn list_shows_the_socket_tools_running() {
    let o = netbpf(&["list"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    // The 6.3+ tracepoints where the kernel has them (the host, 6.12); else fentry (6.1).
    let tp = has_sock_length_tracepoints();
    if vmtest_kernel().as_deref() == Some("6.1") {
        assert!(!tp, "Debian's 6.1 has no sock_send_length tracepoint");
    }
    // sormem samples before each read: fentry wherever trampolines load (the stock kernels).
    let sormem = if vmtest_kernel().is_some() {
        "fentry".to_string()
    } else {
        common::chosen_plan("sormem")
    };
    for (tool, plan) in [
        ("socketio", if tp { "tp_btf" } else { "fentry" }),
        ("socksize", if tp { "tp_btf" } else { "fexit" }),
        ("sormem", &sormem),
        ("so1stbyte", "tracepoint"),
        ("soconnlat", "tracepoint"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{tool} in {out}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((words[1], words[2]), ("ok", plan), "{line}");
    }
}
