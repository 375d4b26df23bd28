//! tcplife, tcpstates, tcpconnect, tcpaccept against real loopback traffic, each test in its own
//! network namespace with the tool filtered to it.

mod common;

use common::{with, Netns, Tool};
use serde_json::Value;

fn port(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn exchange_args(family: &str) -> Vec<String> {
    [
        "exchange",
        "--family",
        family,
        "--client-send",
        "10000",
        "--server-send",
        "5000",
        "--hold-ms",
        "200",
    ]
    .map(String::from)
    .to_vec()
}

fn check_tcplife_exchange(family: &str, addr: &str) {
    let ns = Netns::new();
    let json = Tool::start(&["tcplife", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["tcplife", "--netns", &ns.path()]);
    let args = exchange_args(family);
    let run = ns.loadgen(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let rows = json.stop().json();
    let table = table.stop();
    let (sport, cport) = (port(&run, "server_port"), port(&run, "client_port"));

    assert_eq!(rows.len(), 2, "one line per side: {rows:?}");
    let client = with(&rows, "lport", cport)[0];
    let server = with(&rows, "lport", sport)[0];
    for (side, tx, rx, rport) in [(client, 10000, 5000, sport), (server, 5000, 10000, cport)] {
        assert_eq!(side["tx_bytes"], tx, "{side}");
        assert_eq!(side["rx_bytes"], rx, "{side}");
        assert_eq!(side["rport"], rport, "{side}");
        assert_eq!(side["laddr"], addr);
        assert_eq!(side["raddr"], addr);
        assert_eq!(side["pid"], run["pid"], "owner pid");
        assert_eq!(side["comm"], "loadgen");
        let ms = side["ms"].as_f64().unwrap();
        assert!(
            (200.0..3000.0).contains(&ms),
            "lifespan {ms} ms for a 200 ms hold"
        );
    }

    assert!(
        table.lines[0].starts_with("PID     COMM       LADDR"),
        "{:?}",
        table.lines
    );
    let client_line = table
        .lines
        .iter()
        .find(|l| l.contains(&format!(" {cport} ")))
        .unwrap();
    assert!(
        client_line.contains(" 9.77 ") && client_line.contains(" 4.88 "),
        "{client_line}"
    );
}

#[test]
fn tcplife_reports_exact_payload_bytes_ipv4() {
    check_tcplife_exchange("4", "127.0.0.1");
}

#[test]
fn tcplife_reports_exact_payload_bytes_ipv6() {
    check_tcplife_exchange("6", "::1");
}

#[test]
fn tcplife_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let traced = ns.loadgen_waiting(&[
        "exchange",
        "--family",
        "4",
        "--port",
        "7001",
        "--client-send",
        "100",
    ]);
    let other = ns.loadgen_waiting(&[
        "exchange",
        "--family",
        "6",
        "--port",
        "7002",
        "--client-send",
        "100",
    ]);
    let path = ns.path();
    let by_pid = Tool::start(&[
        "tcplife",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let by_lport = Tool::start(&["tcplife", "--json", "--netns", &path, "-L", "7001"]);
    let by_rport = Tool::start(&["tcplife", "--json", "--netns", &path, "-D", "7002"]);
    let v6_only = Tool::start(&["tcplife", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcplife", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (traced.go(), other.go());

    let rows = by_pid.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["pid"] == a["pid"]));

    let rows = by_lport.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["lport"], 7001);

    let rows = by_rport.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["rport"].clone(), rows[0]["pid"].clone()),
        (7002.into(), b["pid"].clone())
    );

    let rows = v6_only.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["ip"] == 6));

    assert!(
        other_ns.stop().lines.is_empty(),
        "another namespace's sessions leaked in"
    );
}

fn states(rows: &[&Value]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{}->{}",
                r["oldstate"].as_str().unwrap(),
                r["newstate"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn tcpstates_shows_full_client_and_server_sequences() {
    let ns = Netns::new();
    let tool = Tool::start(&["tcpstates", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "exchange",
        "--family",
        "4",
        "--client-send",
        "1000",
        "--server-send",
        "1000",
        "--hold-ms",
        "200",
    ]);
    let rows = tool.stop().json();
    let (sport, cport) = (port(&run, "server_port"), port(&run, "client_port"));

    let skaddr_of =
        |pred: &dyn Fn(&Value) -> bool| rows.iter().find(|r| pred(r)).unwrap()["skaddr"].clone();
    let client_sk = skaddr_of(&|r| r["lport"] == cport);
    let child_sk = skaddr_of(&|r| r["lport"] == sport && r["rport"] == cport);
    let listener_sk = skaddr_of(&|r| r["newstate"] == "LISTEN");

    let client = with(&rows, "skaddr", client_sk);
    assert_eq!(
        states(&client),
        [
            "CLOSE->SYN_SENT",
            "SYN_SENT->ESTABLISHED",
            "ESTABLISHED->FIN_WAIT1",
            "FIN_WAIT1->FIN_WAIT2",
            "FIN_WAIT2->CLOSE"
        ]
    );
    let held = client[2]["ms"].as_f64().unwrap();
    assert!(
        held >= 200.0,
        "ESTABLISHED lasted {held} ms, the client held 200 ms"
    );
    assert!(client.iter().all(|r| r["rport"] == sport));

    let child = with(&rows, "skaddr", child_sk);
    assert_eq!(
        states(&child),
        [
            "LISTEN->SYN_RECV",
            "SYN_RECV->ESTABLISHED",
            "ESTABLISHED->CLOSE_WAIT",
            "CLOSE_WAIT->LAST_ACK",
            "LAST_ACK->CLOSE"
        ]
    );
    assert_eq!(
        states(&with(&rows, "skaddr", listener_sk)),
        ["CLOSE->LISTEN", "LISTEN->CLOSE"]
    );
    // The owner is known for every change, even those in softirq context.
    assert!(rows.iter().all(|r| r["pid"] == run["pid"]), "{rows:?}");
}

#[test]
fn tcpstates_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let by_lport = Tool::start(&["tcpstates", "--json", "--netns", &path, "-L", "7101"]);
    let v4_only = Tool::start(&["tcpstates", "--json", "--netns", &path, "-4"]);
    ns.loadgen(&["exchange", "--family", "4", "--port", "7101"]);
    ns.loadgen(&["exchange", "--family", "6", "--port", "7102"]);
    let rows = by_lport.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["lport"] == 7101),
        "{rows:?}"
    );
    let rows = v4_only.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["ip"] == 4),
        "{rows:?}"
    );
}

#[test]
fn tcpconnect_shows_successful_and_refused_connects() {
    let ns = Netns::new();
    let path = ns.path();
    let tool = Tool::start(&["tcpconnect", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpconnect", "-L", "-U", "--netns", &path]);
    // A listener that stays up while clients connect: the backlog command accepts them.
    let listened = ns.loadgen(&[
        "backlog",
        "--family",
        "6",
        "--port",
        "7201",
        "--backlog",
        "4",
        "--clients",
        "2",
    ]);
    let refused = ns.loadgen(&["connect", "--family", "4", "--port", "7299", "--count", "2"]);
    let nonblock = ns.loadgen(&["connect", "--family", "4", "--port", "7298", "--nonblock"]);
    let rows = tool.stop().json();
    let table = table.stop();

    let ok = with(&rows, "dport", 7201);
    assert_eq!(ok.len(), 2, "{rows:?}");
    assert!(ok.iter().all(|r| r["result"] == "Success"
        && r["daddr"] == "::1"
        && r["ip"] == 6
        && r["pid"] == listened["pid"]));
    let bad = with(&rows, "dport", 7299);
    assert_eq!(refused["refused"], 2);
    assert_eq!(bad.len(), 2, "{rows:?}");
    assert!(bad.iter().all(|r| r["result"] == "ECONNREFUSED"
        && r["saddr"] == "127.0.0.1"
        && r["pid"] == refused["pid"]));
    assert!(bad.iter().all(|r| r["lport"].as_u64().unwrap() > 0));
    assert_eq!(with(&rows, "dport", 7298)[0]["pid"], nonblock["pid"]);

    assert!(
        table.lines[0].starts_with("UID    PID    COMM         IP SADDR            LPORT  DADDR"),
        "{:?}",
        table.lines
    );
    assert_eq!(
        table.lines.iter().filter(|l| l.contains(" 7299")).count(),
        2
    );
}

#[test]
fn tcpconnect_count_mode_counts_exactly() {
    let ns = Netns::new();
    let tool = Tool::start(&["tcpconnect", "-c", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&["connect", "--family", "4", "--port", "7301", "--count", "7"]);
    assert_eq!(run["refused"], 7);
    ns.loadgen(&["connect", "--family", "4", "--port", "7302", "--count", "3"]);
    let rows = tool.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0],
        serde_json::json!({"laddr":"127.0.0.1","raddr":"127.0.0.1","rport":7301,"connects":7})
    );
    assert_eq!(rows[1]["connects"], 3);
}

#[test]
fn tcpconnect_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["connect", "--port", "7401"]);
    let other = ns.loadgen_waiting(&["connect", "--port", "7402", "--family", "6"]);
    let by_pid = Tool::start(&[
        "tcpconnect",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    let by_port = Tool::start(&["tcpconnect", "--json", "--netns", &path, "-P", "7402"]);
    let v4 = Tool::start(&["tcpconnect", "--json", "--netns", &path, "-4"]);
    let root = Tool::start(&["tcpconnect", "--json", "--netns", &path, "-u", "0"]);
    let nobody = Tool::start(&["tcpconnect", "--json", "--netns", &path, "-u", "65534"]);
    let (a, b) = (traced.go(), other.go());
    let rows = by_pid.stop().json();
    assert_eq!((rows.len(), &rows[0]["pid"]), (1, &a["pid"]), "{rows:?}");
    let rows = by_port.stop().json();
    assert_eq!((rows.len(), &rows[0]["pid"]), (1, &b["pid"]), "{rows:?}");
    let rows = v4.stop().json();
    assert_eq!(
        (rows.len(), &rows[0]["dport"]),
        (1, &7401.into()),
        "{rows:?}"
    );
    assert_eq!(root.stop().json().len(), 2);
    assert!(nobody.stop().lines.is_empty());
}

#[test]
fn tcpaccept_shows_acceptor_pid_and_backlog() {
    let ns = Netns::new();
    let tool = Tool::start(&["tcpaccept", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["tcpaccept", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "backlog",
        "--family",
        "4",
        "--port",
        "7501",
        "--backlog",
        "5",
        "--clients",
        "3",
    ]);
    let rows = tool.stop().json();
    let table = table.stop();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let backlogs: Vec<u64> = rows
        .iter()
        .map(|r| r["backlog"].as_u64().unwrap())
        .collect();
    assert_eq!(
        backlogs,
        [3, 2, 1],
        "queue drains as accept() takes each connection"
    );
    for r in &rows {
        assert_eq!(r["pid"], run["pid"]);
        assert_eq!(r["comm"], "loadgen");
        assert_eq!(
            (r["lport"].clone(), r["laddr"].clone(), r["raddr"].clone()),
            (7501.into(), "127.0.0.1".into(), "127.0.0.1".into())
        );
        assert_eq!(r["max_backlog"], 5);
        assert!(r["rport"].as_u64().unwrap() > 0);
    }
    assert!(
        table.lines[0].starts_with("PID     COMM         IP RADDR"),
        "{:?}",
        table.lines
    );
    assert!(table.lines[1].ends_with(" 7501  3/5"), "{:?}", table.lines);
}

#[test]
fn tcpaccept_filters() {
    let ns = Netns::new();
    let path = ns.path();
    let by_port = Tool::start(&["tcpaccept", "--json", "--netns", &path, "-P", "7601"]);
    let v6 = Tool::start(&["tcpaccept", "--json", "--netns", &path, "-6"]);
    let traced = ns.loadgen_waiting(&[
        "backlog",
        "--family",
        "6",
        "--port",
        "7602",
        "--clients",
        "1",
    ]);
    let by_pid = Tool::start(&[
        "tcpaccept",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
    ]);
    ns.loadgen(&[
        "backlog",
        "--family",
        "4",
        "--port",
        "7601",
        "--clients",
        "2",
    ]);
    let b = traced.go();
    let rows = by_port.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["lport"] == 7601));
    let rows = v6.stop().json();
    assert_eq!(
        (rows.len(), &rows[0]["lport"]),
        (1, &7602.into()),
        "{rows:?}"
    );
    let rows = by_pid.stop().json();
    assert_eq!((rows.len(), &rows[0]["pid"]), (1, &b["pid"]), "{rows:?}");
}

#[test]
fn timestamps_are_when_the_event_happened() {
    // Events are drained in batches; TIME(s) must still tell two connects 300 ms apart.
    let ns = Netns::new();
    let tool = Tool::start(&["tcpconnect", "-t", "--json", "--netns", &ns.path()]);
    ns.loadgen(&["connect", "--port", "7701"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    ns.loadgen(&["connect", "--port", "7701"]);
    let rows = tool.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let gap = rows[1]["ts"].as_f64().unwrap() - rows[0]["ts"].as_f64().unwrap();
    assert!(
        (0.29..2.0).contains(&gap),
        "gap {gap}s between connects made 300 ms apart"
    );
}
