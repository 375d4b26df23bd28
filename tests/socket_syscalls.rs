//! sockstat, sofamily, soprotocol, soconnect, soaccept, udpconnect, bindsnoop, solisten against
//! real traffic, each test in its own network namespace with the tool filtered to it.

mod common;

use std::collections::BTreeMap;

use common::{
    assert_stock_kernel_plan, chosen_plan, has_sock_length_tracepoints, netbpf, runnable_plans,
    usable_plans, vmtest_kernel, with, Netns, Tool,
};
use serde_json::{json, Value};

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Rows of host processes, their cgroup fields checked and taken out (the rows are compared
/// whole): a cgroup id and path, no container (tests/containers.rs checks the names).
fn host(rows: Vec<Value>) -> Vec<Value> {
    rows.into_iter()
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            assert!(o.remove("cgroup_id").is_some_and(|c| c.is_u64()), "{o:?}");
            assert!(
                o.remove("cgroup_path").is_some_and(|p| p.is_string()),
                "{o:?}"
            );
            assert!(!o.contains_key("container"), "{o:?}");
            r
        })
        .collect()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// sockstat's per-interval JSON objects summed per counter.
fn totals(rows: &[Value]) -> BTreeMap<String, u64> {
    let mut sum = BTreeMap::new();
    for r in rows {
        for (k, v) in r.as_object().unwrap() {
            if let Some(x) = v.as_u64() {
                *sum.entry(k.clone()).or_insert(0) += x;
            }
        }
    }
    sum
}

/// (call, comm, family) -> count from sofamily --json.
fn family_counts(rows: &[Value]) -> BTreeMap<(String, u64), u64> {
    rows.iter()
        .map(|r| {
            assert_eq!(r["comm"], "loadgen", "{r}");
            (
                (r["call"].as_str().unwrap().to_string(), n(r, "family")),
                n(r, "count"),
            )
        })
        .collect()
}

/// sockstat's labels for its send and recv counters in `plan`: the hook that counted them.
fn io_labels(plan: &str) -> [&'static str; 2] {
    match plan {
        "tracepoint" => [
            "tracepoint:sock:sock_send_length",
            "tracepoint:sock:sock_recv_length",
        ],
        "fentry" => ["fentry:sock_sendmsg", "fentry:sock_recvmsg"],
        "kprobe" => ["kprobe:sock_sendmsg", "kprobe:sock_recvmsg"],
        other => panic!("sockstat plan {other}"),
    }
}

#[test]
fn sockstat_counts_every_call_exactly() {
    let ns = Netns::new();
    // By cookie: a path would make each tool open a socket in the namespace to resolve it, and
    // the tool started first would count the other's. A cookie is taken as given.
    let cookie = ns.cookie();
    let table = Tool::start(&["sockstat", "--netns", &cookie, "1"]);
    let json = Tool::start(&["sockstat", "--json", "--netns", &cookie]);
    // 3 UDP sockets (receiver, connected client, unconnected sender): 3 socket, 3 bind,
    // 1 connect, 5 + 3 sends and as many recvs.
    ns.loadgen(&["udp", "--family", "4", "--count", "5", "--unconnected", "3"]);
    // 2 refused TCP connects: 2 socket, 2 connect.
    let refused = ns.loadgen(&["connect", "--family", "6", "--port", "7801", "--count", "2"]);
    assert_eq!(refused["refused"], 2);
    // AF_UNIX: listener socket+bind, 2 clients socket+connect, 2 accept4, 1 socketpair.
    ns.loadgen(&["unix", "--count", "2", "--pair"]);
    // TCP: listener socket+bind, 2 clients socket+connect, 2 accept4.
    ns.loadgen(&["backlog", "--family", "4", "--clients", "2"]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    assert!(rows.iter().all(|r| r["time"].as_str().unwrap().len() == 8));
    let expected: BTreeMap<String, u64> = [
        ("accept", 0),
        ("accept4", 4),
        ("connect", 7),
        ("bind", 5),
        ("socket", 11),
        ("socketpair", 1),
        ("send", 8),
        ("recv", 8),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(totals(&rows), expected, "{rows:?}");

    // The book's labels, each with the number it counted, summed over the intervals.
    let mut labels: BTreeMap<String, u64> = BTreeMap::new();
    for l in &table.lines {
        if let Some((label, count)) = l.strip_prefix("@[").and_then(|l| l.split_once("]: ")) {
            *labels.entry(label.to_string()).or_insert(0) += count.parse::<u64>().unwrap();
        } else {
            assert!(l.len() == 8 && l.as_bytes()[2] == b':', "time line: {l:?}");
        }
    }
    assert_eq!(labels["tracepoint:syscalls:sys_enter_connect"], 7);
    assert_eq!(labels["tracepoint:syscalls:sys_enter_socket"], 11);
    assert_eq!(labels["tracepoint:syscalls:sys_enter_socketpair"], 1);
    let [send, recv] = io_labels(&chosen_plan("sockstat"));
    assert_eq!((labels[send], labels[recv]), (8, 8), "{labels:?}");
    assert!(!labels.contains_key("tracepoint:syscalls:sys_enter_accept"));
}

#[test]
fn sockstat_interval_count_and_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["udp", "--family", "4", "--count", "4"]);
    let other = ns.loadgen_waiting(&["udp", "--family", "6", "--count", "9"]);
    let by_pid = Tool::start(&[
        "sockstat",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["sockstat", "--json", "--netns", &elsewhere.path()]);
    // Two 0.3 s intervals, then it exits by itself.
    let counted = Tool::start(&["sockstat", "--json", "--netns", &path, "0.3", "2"]);
    traced.go();
    other.go();

    let sum = totals(&by_pid.stop().succeeded().json());
    assert_eq!(
        (sum["socket"], sum["connect"], sum["send"], sum["recv"]),
        (2, 1, 4, 4),
        "only the traced pid: {sum:?}"
    );
    let sum = totals(&other_ns.stop().succeeded().json());
    assert!(
        sum.values().all(|&v| v == 0),
        "another namespace leaked in: {sum:?}"
    );
    let f = counted.stop().succeeded();
    assert_eq!(f.json().len(), 2, "interval count 2: {:?}", f.lines);
}

/// Every way a message reaches a socket's protocol (loadgen msgpaths: write, send, sendto,
/// sendmsg, writev, sendmmsg with and without an address, and the receive calls), counted
/// exactly in every plan this kernel can run.
#[test]
fn sockstat_counts_every_message_path_in_every_plan() {
    for plan in runnable_plans("sockstat") {
        let ns = Netns::new();
        let cookie = ns.cookie();
        let tool = Tool::start_with_env(
            &["sockstat", "--json", "--netns", &cookie, "0.5"],
            &[("NETBPF_PLAN", &plan)],
        );
        let runs = [
            ns.loadgen(&["msgpaths", "--family", "4"]),
            ns.loadgen(&["msgpaths", "--family", "6"]),
        ];
        let sum = totals(&tool.stop().succeeded().json());
        let calls = |key: &str| -> u64 {
            runs.iter()
                .map(|r| r[key].as_array().unwrap().len() as u64)
                .sum()
        };
        assert_eq!((calls("sends"), calls("recvs")), (20, 22));
        assert_eq!(
            (
                sum["send"],
                sum["recv"],
                sum["socket"],
                sum["connect"],
                sum["bind"]
            ),
            (20, 22, 4, 2, 4),
            "{plan}: {sum:?}"
        );
    }
}

#[test]
fn sofamily_counts_each_family_exactly() {
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["sofamily", "--json", "--netns", &path]);
    let table = Tool::start(&["sofamily", "--netns", &path]);
    ns.loadgen(&["connect", "--family", "4", "--port", "7811", "--count", "3"]);
    ns.loadgen(&["connect", "--family", "6", "--port", "7812", "--count", "2"]);
    ns.loadgen(&["unix", "--count", "4"]);
    ns.loadgen(&["backlog", "--family", "6", "--clients", "2"]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    let want: BTreeMap<(String, u64), u64> = [
        (("connect", 2), 3),
        (("connect", 10), 4),
        (("connect", 1), 4),
        (("accept", 1), 4),
        (("accept", 10), 2),
    ]
    .into_iter()
    .map(|((c, f), v)| ((c.to_string(), f), v))
    .collect();
    assert_eq!(family_counts(&rows), want, "{rows:?}");
    let names: BTreeMap<u64, &str> = rows
        .iter()
        .map(|r| (n(r, "family"), r["family_name"].as_str().unwrap()))
        .collect();
    assert_eq!(names[&1], "AF_UNIX");
    assert_eq!(names[&2], "AF_INET");
    assert_eq!(names[&10], "AF_INET6");
    // connect rows first, the most frequent first.
    assert_eq!(rows[0]["call"], "connect");
    assert_eq!(rows.last().unwrap()["call"], "accept");

    // The book's bpftrace maps: @accept then @connect, each from the smallest count up.
    assert_eq!(
        table.lines,
        [
            "@accept[loadgen, 10, AF_INET6]: 2",
            "@accept[loadgen, 1, AF_UNIX]: 4",
            "",
            "@connect[loadgen, 2, AF_INET]: 3",
            "@connect[loadgen, 1, AF_UNIX]: 4",
            "@connect[loadgen, 10, AF_INET6]: 4",
        ]
    );
}

#[test]
fn sofamily_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["unix", "--count", "3"]);
    let other = ns.loadgen_waiting(&["connect", "--family", "4", "--port", "7821"]);
    let by_pid = Tool::start(&[
        "sofamily",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["sofamily", "--json", "--netns", &elsewhere.path()]);
    traced.go();
    other.go();
    let rows = by_pid.stop().succeeded().json();
    let got = family_counts(&rows);
    assert_eq!(
        got,
        [
            (("connect".to_string(), 1), 3),
            (("accept".to_string(), 1), 3)
        ]
        .into(),
        "{rows:?}"
    );
    assert!(other_ns.stop().succeeded().lines.is_empty());
}

/// (call, protocol, kproto) -> count from soprotocol --json.
fn protocol_counts(rows: &[Value]) -> BTreeMap<(String, u64, String), u64> {
    rows.iter()
        .map(|r| {
            (
                (
                    r["call"].as_str().unwrap().to_string(),
                    n(r, "protocol"),
                    r["kproto"].as_str().unwrap().to_string(),
                ),
                n(r, "count"),
            )
        })
        .collect()
}

#[test]
fn soprotocol_separates_tcp_udp_mptcp_and_calls() {
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["soprotocol", "--json", "--netns", &path]);
    let table = Tool::start(&["soprotocol", "--netns", &path]);
    ns.loadgen(&["connect", "--family", "4", "--port", "7831", "--count", "2"]);
    ns.loadgen(&["connect", "--family", "6", "--port", "7832"]);
    ns.loadgen(&["backlog", "--family", "4", "--clients", "3"]);
    let udp = ns.loadgen(&["udp", "--family", "4", "--count", "1", "--ping"]);
    ns.loadgen(&["unix", "--count", "1"]);
    let mptcp = ns.loadgen(&["mptcp", "--family", "4", "--count", "2"]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    // The kernel's own name of a Unix stream socket's protocol: "UNIX-STREAM" since 5.15 (its
    // own struct proto for sockmap), "UNIX" before.
    let unix_stream = match netbpf::core::caps::kernel_version().is_some_and(|v| v >= (5, 15)) {
        true => "UNIX-STREAM",
        false => "UNIX",
    };
    let mut want: BTreeMap<(String, u64, String), u64> = [
        (("connect", 6, "TCP"), 5),
        (("connect", 6, "TCPv6"), 1),
        (("connect", 17, "UDP"), 1),
        (("connect", 0, unix_stream), 1),
        (("accept", 6, "TCP"), 3),
        (("accept", 0, unix_stream), 1),
    ]
    .into_iter()
    .map(|((c, p, k), v)| ((c.to_string(), p, k.to_string()), v))
    .collect();
    if udp["ping"] == true {
        want.insert(("connect".into(), 1, "PING".into()), 1);
    }
    // MPTCP is on in a new namespace unless the kernel's default says otherwise.
    if mptcp["enabled"] == true {
        want.insert(("connect".into(), 262, "MPTCP".into()), 2);
        want.insert(("accept".into(), 262, "MPTCP".into()), 2);
    } else {
        eprintln!("net.mptcp.enabled is 0 here: MPTCP not checked");
    }
    assert_eq!(protocol_counts(&rows), want, "{rows:?}");
    for r in &rows {
        let name = match n(r, "protocol") {
            6 => "TCP",
            17 => "UDP",
            1 => "ICMP",
            262 => "MPTCP",
            _ => "-",
        };
        assert_eq!(r["protocol_name"], name, "{r}");
        assert_eq!(r["comm"], "loadgen");
    }
    let unix = rows.iter().find(|r| r["kproto"] == unix_stream).unwrap();
    assert_eq!(
        (n(unix, "family"), &unix["family_name"]),
        (1, &json!("AF_UNIX"))
    );

    // The book's bpftrace map, accept() kept apart: @accept then @connect, smallest count first.
    let maps: Vec<&[String]> = table.lines.split(|l| l.is_empty()).collect();
    assert_eq!(maps.len(), 2, "{:?}", table.lines);
    for (map, call) in maps.iter().zip(["accept", "connect"]) {
        let counts: Vec<u64> = map
            .iter()
            .map(|l| {
                assert!(l.starts_with(&format!("@{call}[loadgen, ")), "{l}");
                l.rsplit_once("]: ").unwrap().1.parse().unwrap()
            })
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{map:?}");
        let want: u64 = protocol_counts(&rows)
            .iter()
            .filter(|((c, _, _), _)| c == call)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counts.iter().sum::<u64>(), want, "{map:?}");
    }
    for line in [
        "@connect[loadgen, 6, TCP, TCP]: 5",
        "@connect[loadgen, 6, TCP, TCPv6]: 1",
        "@connect[loadgen, 17, UDP, UDP]: 1",
        &format!("@connect[loadgen, 0, -, {unix_stream}]: 1"),
        "@accept[loadgen, 6, TCP, TCP]: 3",
    ] {
        assert!(
            table.lines.iter().any(|l| l == line),
            "{line} in {:?}",
            table.lines
        );
    }
}

#[test]
fn soprotocol_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["udp", "--family", "6", "--count", "1"]);
    let other = ns.loadgen_waiting(&["connect", "--family", "4", "--port", "7841"]);
    let by_pid = Tool::start(&[
        "soprotocol",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["soprotocol", "--json", "--netns", &elsewhere.path()]);
    traced.go();
    other.go();
    let rows = by_pid.stop().succeeded().json();
    assert_eq!(
        protocol_counts(&rows),
        [(("connect".to_string(), 17, "UDPv6".to_string()), 1)].into(),
        "{rows:?}"
    );
    assert!(other_ns.stop().succeeded().lines.is_empty());
}

#[test]
fn soconnect_shows_results_addresses_and_latency() {
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["soconnect", "--json", "--netns", &path]);
    let table = Tool::start(&["soconnect", "--netns", &path]);
    let ok = ns.loadgen(&[
        "backlog",
        "--family",
        "6",
        "--port",
        "7851",
        "--clients",
        "2",
    ]);
    let refused = ns.loadgen(&["connect", "--family", "4", "--port", "7852", "--count", "2"]);
    let nonblock = ns.loadgen(&["connect", "--family", "4", "--port", "7853", "--nonblock"]);
    let udp = ns.loadgen(&["udp", "--family", "4", "--count", "1"]);
    ns.loadgen(&["unix", "--count", "2"]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    assert_eq!(rows.len(), 6, "IP connects only, no AF_UNIX: {rows:?}");
    let good = with(&rows, "port", 7851);
    assert_eq!(good.len(), 2, "{rows:?}");
    for r in good {
        assert_eq!(
            (
                &r["result"],
                &r["addr"],
                n(r, "family"),
                &r["pid"],
                &r["protocol"]
            ),
            (
                &json!("Success"),
                &json!("::1"),
                10,
                &ok["pid"],
                &json!("TCP")
            )
        );
        let lat = r["lat_us"].as_f64().unwrap();
        // A loopback handshake: more than nothing, far less than seconds.
        assert!(lat > 0.0 && lat < 2_000_000.0, "latency {lat} us");
    }
    let bad = with(&rows, "port", 7852);
    assert_eq!(bad.len(), 2, "{rows:?}");
    assert!(bad.iter().all(|r| r["result"] == "ECONNREFUSED"
        && r["ret"] == -111
        && r["addr"] == "127.0.0.1"
        && n(r, "family") == 2
        && r["pid"] == refused["pid"]));
    let nb = with(&rows, "port", 7853);
    assert_eq!(
        (nb.len(), &nb[0]["result"], &nb[0]["pid"]),
        (1, &json!("EINPROGRESS"), &nonblock["pid"])
    );
    let u = with(&rows, "port", n(&udp, "server_port"));
    assert_eq!(
        (u.len(), &u[0]["result"], &u[0]["protocol"]),
        (1, &json!("Success"), &json!("UDP"))
    );

    assert_eq!(
        table.lines[0],
        "PID    PROCESS          FAM ADDRESS          PORT   LAT(us) RESULT"
    );
    let refused_line = format!(
        "{:<6} loadgen          2   127.0.0.1        7852 ",
        n(&refused, "pid")
    );
    let lines: Vec<&String> = table
        .lines
        .iter()
        .filter(|l| l.starts_with(&refused_line))
        .collect();
    assert_eq!(lines.len(), 2, "{:?}", table.lines);
    assert!(lines.iter().all(|l| l.ends_with(" ECONNREFUSED")));
}

#[test]
fn soaccept_shows_peer_and_errors() {
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["soaccept", "--json", "--netns", &path]);
    let table = Tool::start(&["soaccept", "--netns", &path]);
    let run = ns.loadgen(&["exchange", "--family", "4", "--port", "7861"]);
    let empty = ns.loadgen(&["accept-empty", "--family", "6", "--port", "7862"]);
    ns.loadgen(&["unix", "--count", "2"]);
    let rows = host(json.stop().succeeded().json());
    let table = table.stop().succeeded();

    assert_eq!(rows.len(), 2, "IP accepts only, no AF_UNIX: {rows:?}");
    assert_eq!(
        rows[0],
        json!({"pid": run["pid"], "comm": "loadgen", "family": 2, "addr": "127.0.0.1",
               "port": run["client_port"], "result": "Success", "lport": 7861,
               "ret": rows[0]["ret"]})
    );
    assert!(n(&rows[0], "ret") > 2, "the new fd");
    assert_eq!(
        rows[1],
        json!({"pid": empty["pid"], "comm": "loadgen", "family": 10, "addr": null,
               "port": null, "result": "EAGAIN", "lport": 7862, "ret": -11})
    );

    assert_eq!(
        table.lines[0],
        "PID    PROCESS          FAM ADDRESS          PORT  RESULT"
    );
    assert_eq!(
        table.lines[1],
        format!(
            "{:<6} loadgen          2   127.0.0.1        {:<5} Success",
            n(&run, "pid"),
            n(&run, "client_port")
        )
    );
    assert_eq!(
        table.lines[2],
        format!(
            "{:<6} loadgen          10  -                -     EAGAIN",
            n(&empty, "pid")
        )
    );
}

/// A signal interrupts a blocking connect() and accept(): the exit tracepoint sees the kernel's
/// restart code, named; with SA_RESTART the restarted call's own result follows.
#[test]
fn soconnect_and_soaccept_name_interrupted_calls() {
    let ns = Netns::new();
    let path = ns.path();
    let connects = Tool::start(&["soconnect", "--json", "--netns", &path]);
    let accepts = Tool::start(&["soaccept", "--json", "--netns", &path]);
    let c_eintr = ns.loadgen(&["interrupted", "--family", "4"]);
    let c_restart = ns.loadgen(&["interrupted", "--family", "6", "--restart"]);
    let a_eintr = ns.loadgen(&["interrupted", "--family", "4", "--accept"]);
    let a_restart = ns.loadgen(&["interrupted", "--family", "4", "--accept", "--restart"]);
    let connects = connects.stop().succeeded().json();
    let accepts = accepts.stop().succeeded().json();
    for (run, restart) in [(&c_eintr, false), (&c_restart, true)] {
        assert_eq!(run["result"], if restart { "ok" } else { "eintr" }, "{run}");
        let mine: Vec<&Value> = with(&connects, "pid", run["pid"].clone());
        let results: Vec<&str> = mine.iter().map(|r| r["result"].as_str().unwrap()).collect();
        // Two connections fill the listener's queue first.
        let want: &[&str] = if restart {
            &["Success", "Success", "ERESTARTSYS", "Success"]
        } else {
            &["Success", "Success", "ERESTARTSYS"]
        };
        assert_eq!(results, want, "{mine:?}");
        let r = mine[2];
        assert_eq!(
            (&r["ret"], &r["port"]),
            (&json!(-512), &run["server_port"]),
            "{r}"
        );
        let lat = r["lat_us"].as_f64().unwrap();
        assert!(
            (150_000.0..2_000_000.0).contains(&lat),
            "interrupted 200 ms after it began: {r}"
        );
    }
    for (run, restart) in [(&a_eintr, false), (&a_restart, true)] {
        assert_eq!(run["result"], if restart { "ok" } else { "eintr" }, "{run}");
        let mine: Vec<&Value> = with(&accepts, "pid", run["pid"].clone());
        let results: Vec<&str> = mine.iter().map(|r| r["result"].as_str().unwrap()).collect();
        let want: &[&str] = if restart {
            &["ERESTARTSYS", "Success"]
        } else {
            &["ERESTARTSYS"]
        };
        assert_eq!(results, want, "{mine:?}");
        assert_eq!(
            (&mine[0]["ret"], &mine[0]["lport"]),
            (&json!(-512), &run["server_port"])
        );
    }
    // And the one accept() of each connect run, which frees the queue.
    assert_eq!(accepts.len(), 3 + 2, "{accepts:?}");
}

#[test]
fn soconnect_and_soaccept_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["exchange", "--family", "6", "--port", "7871"]);
    let other = ns.loadgen_waiting(&["exchange", "--family", "4", "--port", "7872"]);
    let pid = traced.pid().to_string();
    let connect_pid = Tool::start(&["soconnect", "--json", "--netns", &path, "-p", &pid]);
    let accept_pid = Tool::start(&["soaccept", "--json", "--netns", &path, "-p", &pid]);
    let elsewhere = Netns::new();
    let connect_ns = Tool::start(&["soconnect", "--json", "--netns", &elsewhere.path()]);
    let accept_ns = Tool::start(&["soaccept", "--json", "--netns", &elsewhere.path()]);
    let a = traced.go();
    other.go();
    let rows = connect_pid.stop().succeeded().json();
    assert_eq!(
        (rows.len(), &rows[0]["port"], &rows[0]["pid"]),
        (1, &json!(7871), &a["pid"]),
        "{rows:?}"
    );
    let rows = accept_pid.stop().succeeded().json();
    assert_eq!(
        (rows.len(), &rows[0]["lport"], &rows[0]["port"]),
        (1, &json!(7871), &a["client_port"]),
        "{rows:?}"
    );
    assert!(connect_ns.stop().succeeded().lines.is_empty());
    assert!(accept_ns.stop().succeeded().lines.is_empty());
}

/// Under every plan this kernel offers (on stock kernels the protocols' connect functions, with
/// fexit and with kprobes, and the syscalls).
#[test]
fn udpconnect_shows_connected_udp_sockets_only() {
    assert_stock_kernel_plan("udpconnect", "fexit");
    for plan in usable_plans("udpconnect") {
        udpconnect_shows_connected_udp_sockets_with(&plan);
    }
}

fn udpconnect_shows_connected_udp_sockets_with(plan: &str) {
    let ns = Netns::new();
    let path = ns.path();
    let env = [("NETBPF_PLAN", plan)];
    let json = Tool::start_with_env(&["udpconnect", "--json", "--netns", &path], &env);
    let table = Tool::start_with_env(&["udpconnect", "--netns", &path], &env);
    // One connected socket, one sending with sendto() and no connect(), one ICMP ping socket.
    let v4 = ns.loadgen(&[
        "udp",
        "--family",
        "4",
        "--count",
        "2",
        "--unconnected",
        "3",
        "--ping",
    ]);
    let v6 = ns.loadgen(&["udp", "--family", "6", "--count", "1"]);
    // TCP connects are not UDP.
    ns.loadgen(&["backlog", "--family", "4", "--clients", "2"]);
    ns.loadgen(&["connect", "--family", "6", "--port", "7881"]);
    let rows = json.stop().succeeded().json();
    let table = table.stop().succeeded();

    assert_eq!(
        v4["ping"], true,
        "the ping socket connected (and was left out)"
    );
    assert_eq!(rows.len(), 2, "{plan}: {rows:?}");
    let r = &rows[0];
    assert_eq!(
        (&r["pid"], &r["comm"], &r["ip"], &r["raddr"], &r["rport"]),
        (
            &v4["pid"],
            &json!("loadgen"),
            &json!(4),
            &json!("127.0.0.1"),
            &v4["server_port"]
        )
    );
    assert_eq!(
        (&r["laddr"], &r["lport"]),
        (&json!("127.0.0.1"), &v4["client_port"])
    );
    assert_ne!(r["lport"], v4["unconnected_port"]);
    let r = &rows[1];
    assert_eq!(
        (&r["pid"], &r["ip"], &r["raddr"], &r["rport"], &r["lport"]),
        (
            &v6["pid"],
            &json!(6),
            &json!("::1"),
            &v6["server_port"],
            &v6["client_port"]
        )
    );

    assert_eq!(
        table.lines[0],
        "TIME     PID     COMM             IP RADDR            RPORT"
    );
    assert_eq!(table.lines.len(), 3, "{:?}", table.lines);
    assert!(
        table.lines[1].ends_with(&format!(
            " {:<7} loadgen          4  127.0.0.1        {}",
            n(&v4, "pid"),
            n(&v4, "server_port")
        )),
        "{:?}",
        table.lines
    );
}

#[test]
fn udpconnect_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["udp", "--family", "4", "--count", "1"]);
    let other = ns.loadgen_waiting(&["udp", "--family", "6", "--count", "1"]);
    let by_pid = Tool::start(&[
        "udpconnect",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["udpconnect", "--json", "--netns", &elsewhere.path()]);
    let a = traced.go();
    other.go();
    let rows = by_pid.stop().succeeded().json();
    assert_eq!(
        (rows.len(), &rows[0]["pid"], &rows[0]["rport"]),
        (1, &a["pid"], &a["server_port"]),
        "{rows:?}"
    );
    assert!(other_ns.stop().succeeded().lines.is_empty());
}

#[test]
fn bad_options_are_refused() {
    let tools = [
        "sockstat",
        "sofamily",
        "soprotocol",
        "soconnect",
        "soaccept",
        "udpconnect",
    ];
    for tool in tools {
        let o = netbpf(&[tool, "--bogus"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(
            stderr(&o).contains("unexpected argument '--bogus'"),
            "{tool}: {}",
            stderr(&o)
        );
        let o = netbpf(&[tool, "-p", "abc"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(
            stderr(&o).contains("'abc' is not a process id"),
            "{tool}: {}",
            stderr(&o)
        );
        let o = netbpf(&[tool, "--netns", "/nonexistent/netns"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(stderr(&o).contains("--netns:"), "{tool}: {}", stderr(&o));
    }
    // Only sockstat takes [interval] [count].
    for tool in &tools[1..] {
        let o = netbpf(&[tool, "1"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(
            stderr(&o).contains("unexpected argument '1'"),
            "{tool}: {}",
            stderr(&o)
        );
    }
    for (args, msg) in [
        (
            &["sockstat", "0"][..],
            "'0' is not a positive number of seconds",
        ),
        (
            &["sockstat", "x"][..],
            "'x' is not a positive number of seconds",
        ),
        (&["sockstat", "1", "0"][..], "0 is not in 1.."),
        (&["sockstat", "0.001"][..], "interval '0.001' is too short"),
        (&["sockstat", "0.05"][..], "(at least 0.1 s)"),
        (&["sockstat", "1", "2", "3"][..], "unexpected argument '3'"),
    ] {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(msg), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn list_shows_the_socket_tools() {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    // sockstat counts socket I/O with the 6.3+ tracepoints, else (Debian's 6.1) with fentry.
    let tp = has_sock_length_tracepoints();
    if vmtest_kernel().as_deref() == Some("6.1") {
        assert!(!tp, "Debian's 6.1 has no sock_send_length tracepoint");
    }
    let udp_plan = chosen_plan("udpconnect");
    for (tool, plan) in [
        ("sockstat", if tp { "tracepoint" } else { "fentry" }),
        ("sofamily", "tracepoint"),
        ("soprotocol", "tracepoint"),
        ("soconnect", "tracepoint"),
        ("soaccept", "tracepoint"),
        // fexit on stock kernels; elsewhere what the kernel allows (the syscalls here).
        (
            "udpconnect",
            if vmtest_kernel().is_some() {
                "fexit"
            } else {
                udp_plan.as_str()
            },
        ),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{out}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((words[1], words[2]), ("ok", plan), "{line}");
    }
}

/// One bind() as bindsnoop reports it in JSON.
fn bind_row(
    pid: &Value,
    uid: u64,
    (proto, addr, port): (&str, &str, u64),
    opts: &str,
    dev: i64,
    ret: i64,
) -> Value {
    let result = match ret {
        0 => "Success",
        -98 => "EADDRINUSE",
        -99 => "EADDRNOTAVAIL",
        -13 => "EACCES",
        _ => unreachable!(),
    };
    json!({"uid": uid, "pid": pid, "comm": "loadgen", "protocol": proto, "addr": addr,
           "port": port, "opts": opts, "if": dev, "result": result, "ret": ret})
}

/// loadgen's binds: options before the call, the kernel's port for port 0, port 0 kept under
/// IP_BIND_ADDRESS_NO_PORT, the bound device, and three failures with their errno.
#[test]
fn bindsnoop_shows_options_ports_and_errors() {
    let ns = Netns::new();
    let path = ns.path();
    let all = Tool::start(&["bindsnoop", "-x", "--json", "--netns", &path]);
    let table = Tool::start(&["bindsnoop", "-U", "--netns", &path]);
    let run = ns.loadgen(&["binds", "--port", "7901"]);
    let rows = host(all.stop().succeeded().json());
    let table = table.stop().succeeded();

    let (pid, child) = (&run["pid"], &run["child_pid"]);
    let lo = "127.0.0.1";
    assert_eq!(
        rows,
        vec![
            bind_row(pid, 0, ("TCP", lo, 7901), "...R.", 0, 0),
            bind_row(pid, 0, ("TCP", "::1", n(&run, "v6_port")), "F...r", 0, 0),
            bind_row(pid, 0, ("UDP", lo, 0), ".TN..", 1, 0),
            bind_row(pid, 0, ("TCP", lo, 7901), ".....", 0, -98),
            bind_row(pid, 0, ("TCP", "192.0.2.1", 7902), ".....", 0, -99),
            bind_row(child, 65534, ("TCP", lo, 80), ".....", 0, -13),
        ]
    );
    assert!(n(&run, "v6_port") > 0);

    // Without -x only the binds that succeeded.
    assert_eq!(
        table.lines,
        vec![
            "UID    PID     COMM         PROT  ADDR             PORT  OPTS  IF  RESULT".to_string(),
            format!(
                "0      {:<7} loadgen      TCP   127.0.0.1        7901  ...R. 0   Success",
                n(&run, "pid")
            ),
            format!(
                "0      {:<7} loadgen      TCP   ::1              {:<5} F...r 0   Success",
                n(&run, "pid"),
                n(&run, "v6_port")
            ),
            format!(
                "0      {:<7} loadgen      UDP   127.0.0.1        0     .TN.. 1   Success",
                n(&run, "pid")
            ),
        ]
    );
}

#[test]
fn bindsnoop_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["binds", "--port", "7903"]);
    let pid = traced.pid().to_string();
    let by_pid = Tool::start(&["bindsnoop", "-x", "--json", "--netns", &path, "-p", &pid]);
    let by_port = Tool::start(&[
        "bindsnoop",
        "-x",
        "--json",
        "--netns",
        &path,
        "-P",
        "80,7904",
    ]);
    let by_uid = Tool::start(&["bindsnoop", "-x", "--json", "--netns", &path, "-u", "65534"]);
    let v6 = Tool::start(&["bindsnoop", "-x", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["bindsnoop", "-x", "--json", "--netns", &elsewhere.path()]);
    let run = traced.go();

    let ports = |rows: Vec<Value>| rows.iter().map(|r| n(r, "port")).collect::<Vec<_>>();
    let rows = by_pid.stop().succeeded().json();
    assert!(rows.iter().all(|r| r["pid"] == run["pid"]), "{rows:?}");
    assert_eq!(ports(rows), vec![7903, n(&run, "v6_port"), 0, 7903, 7904]);
    assert_eq!(ports(by_port.stop().succeeded().json()), vec![7904, 80]);
    let rows = by_uid.stop().succeeded().json();
    assert_eq!(
        (rows.len(), &rows[0]["pid"]),
        (1, &run["child_pid"]),
        "{rows:?}"
    );
    assert_eq!(
        ports(v6.stop().succeeded().json()),
        vec![n(&run, "v6_port")]
    );
    assert!(other_ns.stop().succeeded().lines.is_empty());
}

/// loadgen's listens: backlogs as passed and as the kernel capped them, a port picked by
/// listen() itself, a failure, the namespace by inode and cookie; and the filters.
#[test]
fn solisten_shows_backlogs_ports_and_errors() {
    use std::os::unix::fs::MetadataExt;
    let ns = Netns::new();
    let path = ns.path();
    let ino = std::fs::metadata(&path).unwrap().ino();
    let cookie: u64 = ns.cookie().parse().unwrap();
    let traced = ns.loadgen_waiting(&["listens", "--port", "7911"]);
    let pid = traced.pid().to_string();
    let all = Tool::start(&["solisten", "--json", "--netns", &path]);
    let table = Tool::start(&["solisten", "--show-netns", "--netns", &path]);
    let by_pid = Tool::start(&["solisten", "--json", "--netns", &path, "-p", &pid]);
    let v6 = Tool::start(&["solisten", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["solisten", "--json", "--netns", &elsewhere.path()]);
    let other = ns.loadgen(&["listens", "--port", "7912"]);
    let run = traced.go();
    let rows = host(all.stop().succeeded().json());
    let table = table.stop().succeeded();

    let row = |proto: &str, backlog: i64, addr: &str, port: u64, max: u64, ret: i64| {
        json!({"pid": run["pid"], "comm": "loadgen", "netns": ino, "protocol": proto,
               "backlog": backlog, "addr": addr, "port": port,
               "result": if ret == 0 { "Success" } else { "EOPNOTSUPP" },
               "max_backlog": max, "netns_cookie": cookie, "ret": ret})
    };
    let mine: Vec<Value> = with(&rows, "pid", run["pid"].clone())
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(
        mine,
        vec![
            row("TCPv4", 7, "127.0.0.1", 7911, 7, 0),
            row("TCPv6", 100000, "::1", 7911, 4096, 0),
            row("TCPv4", 0, "0.0.0.0", n(&run, "auto_port"), 0, 0),
            row("UDPv4", 5, "127.0.0.1", 7911, 0, -95),
        ]
    );
    assert!(n(&run, "auto_port") > 0);
    assert_eq!(rows.len(), 8, "both runs: {rows:?}");
    assert_eq!(with(&rows, "pid", other["pid"].clone()).len(), 4);
    assert_eq!(
        table.lines[0],
        "PID     COMM         NETNS      PROTO   BACKLOG ADDR             PORT  RESULT"
    );
    assert!(table.lines.contains(&format!(
        "{:<7} loadgen      {ino} TCPv6   100000  ::1              7911  Success",
        n(&run, "pid")
    )));

    let rows = host(by_pid.stop().succeeded().json());
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r["pid"] == run["pid"]));
    let rows = host(v6.stop().succeeded().json());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["protocol"] == "TCPv6"));
    assert!(other_ns.stop().succeeded().lines.is_empty());
}
