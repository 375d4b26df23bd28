//! tcplife, tcpstates, tcpconnect, tcpaccept, tcptracer against real loopback traffic, each test in its own
//! network namespace with the tool filtered to it.

mod common;

use common::{refused_here, with, Netns, Tool};
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
    if refused_here("tcplife") {
        return;
    }
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
    if refused_here("tcplife") {
        return;
    }
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
    let v4_only = Tool::start(&["tcplife", "--json", "--netns", &path, "-4"]);
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
    assert!(rows.iter().all(|r| r["ip"] == 6 && r["pid"] == b["pid"]));
    let rows = v4_only.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["ip"] == 4
        && r["pid"] == a["pid"]
        && (r["lport"] == 7001 || r["rport"] == 7001)));

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
    if refused_here("tcpstates") {
        return;
    }
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

/// The (oldstate->newstate) sequences of an exchange's three sockets, as tcpstates shows them.
const CLIENT_STATES: [&str; 5] = [
    "CLOSE->SYN_SENT",
    "SYN_SENT->ESTABLISHED",
    "ESTABLISHED->FIN_WAIT1",
    "FIN_WAIT1->FIN_WAIT2",
    "FIN_WAIT2->CLOSE",
];
const CHILD_STATES: [&str; 5] = [
    "LISTEN->SYN_RECV",
    "SYN_RECV->ESTABLISHED",
    "ESTABLISHED->CLOSE_WAIT",
    "CLOSE_WAIT->LAST_ACK",
    "LAST_ACK->CLOSE",
];
const LISTENER_STATES: [&str; 2] = ["CLOSE->LISTEN", "LISTEN->CLOSE"];

#[test]
fn tcpstates_filters() {
    if refused_here("tcpstates") {
        return;
    }
    let ns = Netns::new();
    let path = ns.path();
    let v4 = ns.loadgen_waiting(&["exchange", "--family", "4", "--port", "7101"]);
    let v6 = ns.loadgen_waiting(&["exchange", "--family", "6", "--port", "7102"]);
    let by_lport = Tool::start(&["tcpstates", "--json", "--netns", &path, "-L", "7101"]);
    let by_rport = Tool::start(&["tcpstates", "--json", "--netns", &path, "-D", "7102"]);
    let v4_only = Tool::start(&["tcpstates", "--json", "--netns", &path, "-4"]);
    let v6_only = Tool::start(&["tcpstates", "--json", "--netns", &path, "-6"]);
    let by_pid = Tool::start(&[
        "tcpstates",
        "--json",
        "--netns",
        &path,
        "-p",
        &v6.pid().to_string(),
    ]);
    let (a, b) = (v4.go(), v6.go());

    // -L 7101: the listener and the accepted socket on 7101, not the client.
    let rows = by_lport.stop().json();
    let mut want: Vec<&str> = LISTENER_STATES.to_vec();
    want.extend(CHILD_STATES);
    let mut got = states(&rows.iter().collect::<Vec<_>>());
    got.sort();
    want.sort();
    assert_eq!(got, want, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["lport"] == 7101 && r["pid"] == a["pid"]));

    // -D 7102: only the v6 client's socket (its remote port is 7102 from SYN_SENT on).
    let rows = by_rport.stop().json();
    assert_eq!(
        states(&rows.iter().collect::<Vec<_>>()),
        CLIENT_STATES,
        "{rows:?}"
    );
    assert!(rows.iter().all(
        |r| r["rport"] == 7102 && r["lport"] == b["client_port"] || r["newstate"] == "SYN_SENT"
    ));

    // -4 / -6 and -p: exactly one exchange's twelve changes each.
    for (rows, run, ip, port) in [
        (v4_only.stop().json(), &a, 4, 7101),
        (v6_only.stop().json(), &b, 6, 7102),
        (by_pid.stop().json(), &b, 6, 7102),
    ] {
        assert_eq!(rows.len(), 12, "{rows:?}");
        assert!(
            rows.iter().all(|r| r["ip"] == ip && r["pid"] == run["pid"]),
            "{rows:?}"
        );
        let on_port = |r: &&Value| r["lport"] == port || r["rport"] == port;
        assert!(
            rows.iter()
                .all(|r| on_port(&r) || r["newstate"] == "SYN_SENT"),
            "{rows:?}"
        );
    }
}

#[test]
fn tcpstates_csv_has_bcc_columns() {
    if refused_here("tcpstates") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["tcpstates", "-s", "--netns", &ns.path()]);
    let run = ns.loadgen(&["exchange", "--family", "6", "--port", "7103"]);
    let lines = tool.stop().lines;
    assert_eq!(
        lines[0],
        "SKADDR,C-PID,C-COMM,IP,LADDR,LPORT,RADDR,RPORT,OLDSTATE,NEWSTATE,MS"
    );
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12, "{lines:?}");
    assert!(rows.iter().all(|r| r.len() == 11), "{lines:?}");
    let client_port = run["client_port"].to_string();
    let client: Vec<String> = rows
        .iter()
        .filter(|r| r[5] == client_port)
        .map(|r| format!("{}->{}", r[8], r[9]))
        .collect();
    // The first change (CLOSE->SYN_SENT) has no local port yet.
    assert_eq!(client, CLIENT_STATES[1..], "{lines:?}");
    assert!(
        rows.iter().all(|r| r[3] == "6" && r[4] == "::1"),
        "{lines:?}"
    );
    assert!(
        rows.iter().all(|r| r[10].parse::<f64>().is_ok()),
        "{lines:?}"
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
    assert!(
        table.lines[0].ends_with(" DPORT  RESULT"),
        "{}",
        table.lines[0]
    );
    // A refused connect says so in the table, not only in --json.
    let result_of = |port: &str| -> Vec<&str> {
        table
            .lines
            .iter()
            .filter(|l| l.split_whitespace().nth(7) == Some(port))
            .map(|l| l.split_whitespace().last().unwrap())
            .collect()
    };
    assert_eq!(result_of("7299"), ["ECONNREFUSED"; 2], "{:?}", table.lines);
    assert_eq!(result_of("7201"), ["Success"; 2], "{:?}", table.lines);
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
fn tcpconnect_source_port_counts_per_local_port() {
    let ns = Netns::new();
    let path = ns.path();
    let per_lport = Tool::start(&["tcpconnect", "-c", "-s", "--json", "--netns", &path]);
    let merged = Tool::start(&["tcpconnect", "-c", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpconnect", "-s", "--netns", &path]);
    for (sport, n) in [("40311", "3"), ("40312", "2")] {
        let run = ns.loadgen(&[
            "connect",
            "--family",
            "4",
            "--port",
            "7311",
            "--count",
            n,
            "--source-port",
            sport,
        ]);
        assert_eq!(run["refused"].to_string(), n, "{run}");
    }
    let rows = per_lport.stop().json();
    let row = |lport: u16, connects: u64| {
        serde_json::json!({"laddr":"127.0.0.1","raddr":"127.0.0.1","lport":lport,"rport":7311,
                           "connects":connects})
    };
    assert_eq!(rows, [row(40311, 3), row(40312, 2)], "{rows:?}");
    // Without -s the local port is not part of the key (nor of the output).
    let rows = merged.stop().json();
    assert_eq!(
        rows,
        [serde_json::json!({"laddr":"127.0.0.1","raddr":"127.0.0.1","rport":7311,"connects":5})]
    );
    // Without -c, -s is the LPORT column.
    let table = table.stop();
    assert!(
        table.lines[0].starts_with("PID    COMM         IP SADDR            LPORT  DADDR"),
        "{:?}",
        table.lines
    );
    let lports: Vec<&str> = table.lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(4).unwrap())
        .collect();
    assert_eq!(lports, ["40311", "40311", "40311", "40312", "40312"]);
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
    let v6 = Tool::start(&["tcpconnect", "--json", "--netns", &path, "-6"]);
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
    let rows = v6.stop().json();
    assert_eq!(
        (rows.len(), &rows[0]["dport"], &rows[0]["daddr"]),
        (1, &7402.into(), &"::1".into()),
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
    let v4 = Tool::start(&["tcpaccept", "--json", "--netns", &path, "-4"]);
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
    let rows = v4.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["lport"] == 7601 && r["ip"] == 4));
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

#[test]
fn forked_acceptor_and_connector_are_told_apart() {
    if refused_here("tcplife") {
        return;
    }
    // Three processes: the listener, a child that accepts, another child that connects.
    let ns = Netns::new();
    let path = ns.path();
    let life = Tool::start(&["tcplife", "--json", "--netns", &path]);
    let accept = Tool::start(&["tcpaccept", "--json", "--netns", &path]);
    let connect = Tool::start(&["tcpconnect", "--json", "--netns", &path]);
    let run = ns.loadgen(&[
        "forked",
        "--family",
        "4",
        "--client-send",
        "3000",
        "--server-send",
        "2000",
    ]);
    let (listener, acceptor, connector) = (
        &run["listener_pid"],
        &run["acceptor_pid"],
        &run["connector_pid"],
    );
    assert!(listener != acceptor && acceptor != connector, "{run}");

    let rows = accept.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        &rows[0]["pid"], acceptor,
        "tcpaccept names the acceptor: {run} {rows:?}"
    );
    assert_eq!(rows[0]["rport"], run["client_port"]);

    let rows = connect.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(&rows[0]["pid"], connector, "{run} {rows:?}");

    let rows = life.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let client = with(&rows, "lport", run["client_port"].clone())[0];
    let server = with(&rows, "lport", run["server_port"].clone())[0];
    assert_eq!(
        (&client["pid"], &client["tx_bytes"], &client["rx_bytes"]),
        (connector, &3000.into(), &2000.into()),
        "{run} {rows:?}"
    );
    // The accepted socket is the listener's until the acceptor closes it.
    assert_eq!(
        (&server["pid"], &server["tx_bytes"], &server["rx_bytes"]),
        (acceptor, &2000.into(), &3000.into()),
        "{run} {rows:?}"
    );
}

#[test]
fn tcplife_csv_wide_and_time_columns() {
    if refused_here("tcplife") {
        return;
    }
    let ns = Netns::new();
    let csv = Tool::start(&["tcplife", "-s", "-T", "--netns", &ns.path()]);
    let wide = Tool::start(&["tcplife", "-w", "-t", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "exchange",
        "--family",
        "6",
        "--client-send",
        "10000",
        "--server-send",
        "5000",
    ]);
    let cport = run["client_port"].to_string();

    let lines = csv.stop().lines;
    assert_eq!(
        lines[0],
        "TIME,PID,COMM,IP,LADDR,LPORT,RADDR,RPORT,TX_KB,RX_KB,MS"
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
    let client: Vec<&str> = lines
        .iter()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[5] == cport)
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(client.len(), 11, "{client:?}");
    let hms: Vec<&str> = client[0].split(':').collect();
    assert!(
        hms.len() == 3 && hms.iter().all(|p| p.len() == 2 && p.parse::<u8>().is_ok()),
        "{client:?}"
    );
    assert_eq!(
        &client[1..10],
        [
            &run["pid"].to_string(),
            "loadgen",
            "6",
            "::1",
            &cport,
            "::1",
            &run["server_port"].to_string(),
            "9.77",
            "4.88"
        ],
        "{client:?}"
    );

    let lines = wide.stop().lines;
    assert!(
        lines[0].starts_with(
            "TIME(s)   PID     COMM             IP LADDR                                   LPORT"
        ),
        "{lines:?}"
    );
    let client = lines
        .iter()
        .find(|l| l.contains(&format!(" {cport} ")))
        .unwrap();
    let f: Vec<&str> = client.split_whitespace().collect();
    assert!(f[0].parse::<f64>().is_ok_and(|t| t > 0.0), "{client}");
    assert_eq!((f[3], f[4], f[5]), ("6", "::1", cport.as_str()), "{client}");
}

#[test]
fn netns_given_as_a_cookie_filters_the_same() {
    if refused_here("tcplife") {
        return;
    }
    let ns = Netns::new();
    let out = common::netbpf(&["netns", &ns.path()]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let cookie = text.split_whitespace().next().unwrap().to_string();
    let tool = Tool::start(&["tcplife", "--json", "--netns", &cookie]);
    let run = ns.loadgen(&["exchange", "--family", "4", "--client-send", "777"]);
    let f = tool.stop();
    assert!(!f.stderr.contains("warning"), "{}", f.stderr);
    let rows = f.json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["pid"] == run["pid"]));
    assert_eq!(
        with(&rows, "lport", run["client_port"].clone())[0]["tx_bytes"],
        777
    );
}

#[test]
fn sigterm_ends_runs_like_ctrl_c() {
    if refused_here("tcplife") {
        return;
    }
    let ns = Netns::new();
    let life = Tool::start(&["tcplife", "--json", "--netns", &ns.path()]);
    let counts = Tool::start(&["tcpconnect", "-c", "--netns", &ns.path()]);
    ns.loadgen(&["connect", "--port", "7801", "--count", "4"]);
    let f = life.signal(libc::SIGTERM);
    assert!(f.status.success(), "{:?} {}", f.status, f.stderr);
    assert_eq!(f.json().len(), 4, "{:?}", f.lines);
    let f = counts.signal(libc::SIGTERM);
    assert!(f.status.success(), "{:?} {}", f.status, f.stderr);
    assert_eq!(f.lines.len(), 2, "{:?}", f.lines);
    assert!(
        f.lines[1].starts_with("127.0.0.1") && f.lines[1].trim_end().ends_with(" 4"),
        "{:?}",
        f.lines
    );
}

#[test]
fn a_blocked_stdout_does_not_hold_up_ctrl_c() {
    if refused_here("tcpstates") {
        return;
    }
    // stdout is a pipe nobody reads: once it and the tool's buffer are full, the tool blocks in
    // write(2). Ctrl-C must still end the run at once, exit 0, and report the events that the
    // full ring buffer lost meanwhile.
    use std::io::{BufRead, BufReader};
    use std::os::fd::{FromRawFd, OwnedFd};
    let ns = Netns::new();
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors this test owns.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut child = std::process::Command::new(common::netbpf_bin())
        .args(["tcpstates", "--netns", &ns.path()])
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("Tracing"), "{line}");
    // ~20,000 state changes: far more than the pipe, the tool's buffer and its ring hold.
    ns.loadgen(&["connect", "--port", "7802", "--count", "10000"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "tcpstates still running 10 s after SIGINT with a blocked stdout"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    drop(read_end);
    assert!(status.success(), "{status:?}: {rest}");
    assert!(rest.contains("events lost"), "{rest}");
}

/// tcptracer's (type, pid, saddr, daddr, sport, dport) of each event, in order.
fn tracer_events(rows: &[Value]) -> Vec<(String, u64, String, String, u64, u64)> {
    rows.iter()
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_string(),
                port(r, "pid"),
                r["saddr"].as_str().unwrap().to_string(),
                r["daddr"].as_str().unwrap().to_string(),
                port(r, "sport"),
                port(r, "dport"),
            )
        })
        .collect()
}

/// Three processes (loadgen forked): the connector's connect, the accept owned by the listener,
/// each side's close by the process that closed it; the namespace by inode and cookie; IPv6
/// with -6 and the pid filter; nothing from another namespace; the table's short types.
#[test]
fn tcptracer_connects_accepts_closes_with_owners() {
    use std::os::unix::fs::MetadataExt;
    let ns = Netns::new();
    let path = ns.path();
    let ino = std::fs::metadata(&path).unwrap().ino();
    let cookie: u64 = ns.cookie().parse().unwrap();
    let v6 = ns.loadgen_waiting(&["exchange", "--family", "6", "--port", "7921"]);
    let v6_pid = v6.pid().to_string();
    let all = Tool::start(&["tcptracer", "--json", "--netns", &path]);
    let table = Tool::start(&["tcptracer", "--netns", &path, "-4"]);
    let only6 = Tool::start(&["tcptracer", "--json", "--netns", &path, "-6"]);
    let by_pid = Tool::start(&["tcptracer", "--json", "--netns", &path, "-p", &v6_pid]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcptracer", "--json", "--netns", &elsewhere.path()]);
    let f = ns.loadgen(&[
        "forked",
        "--family",
        "4",
        "--port",
        "7920",
        "--client-send",
        "100",
        "--server-send",
        "50",
    ]);
    let x = v6.go();
    let rows = all.stop().succeeded().json();
    let table = table.stop().succeeded();

    let lo = "127.0.0.1".to_string();
    let (cport, sport) = (port(&f, "client_port"), 7920);
    let ev = |t: &str, pid: &str, l: u64, r: u64| {
        (t.to_string(), port(&f, pid), lo.clone(), lo.clone(), l, r)
    };
    let v4: Vec<Value> = rows.iter().filter(|r| r["ip"] == 4).cloned().collect();
    let mut got = tracer_events(&v4);
    // Both ends close at about the same time: their order is not the test's.
    got[2..].sort();
    let mut closes = vec![
        ev("close", "connector_pid", cport, sport),
        ev("close", "acceptor_pid", sport, cport),
    ];
    closes.sort();
    let mut want = vec![
        ev("connect", "connector_pid", cport, sport),
        ev("accept", "listener_pid", sport, cport),
    ];
    want.extend(closes);
    assert_eq!(got, want, "{v4:?}");
    assert!(rows
        .iter()
        .all(|r| r["netns"] == ino && r["netns_cookie"] == cookie && r["comm"] == "loadgen"));

    let v6_rows: Vec<Value> = rows.iter().filter(|r| r["ip"] == 6).cloned().collect();
    let types: Vec<&str> = v6_rows
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["connect", "accept", "close", "close"],
        "{v6_rows:?}"
    );
    assert!(v6_rows
        .iter()
        .all(|r| r["pid"] == x["pid"] && r["saddr"] == "::1"));
    assert_eq!(v6_rows[0]["sport"], x["client_port"]);
    assert_eq!(v6_rows[0]["dport"], 7921);
    assert_eq!(only6.stop().succeeded().json(), v6_rows);
    assert_eq!(by_pid.stop().succeeded().json(), v6_rows);
    assert!(other_ns.stop().succeeded().lines.is_empty());

    assert_eq!(
        table.lines[0],
        "T PID     COMM         IP SADDR            DADDR            SPORT  DPORT"
    );
    assert_eq!(
        table.lines[1],
        format!(
            "C {:<7} loadgen      4  127.0.0.1        127.0.0.1        {cport:<6} 7920",
            port(&f, "connector_pid")
        )
    );
    assert_eq!(table.lines.len(), 5, "{:?}", table.lines);
}
