//! tcppktlat against real loopback traffic: a server that sleeps a known time before each read,
//! in the test's own network namespace, under every plan this kernel can run.

mod common;

use common::{runnable_plans, Netns, Tool};
use serde_json::Value;

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

const DELAY_MS: f64 = 200.0;

/// Each of the 3 messages waits ~200 ms for the server's read; each 1-byte reply is read by a
/// client already blocked in read(), so it waits only for the wakeup.
fn check_run(plan: &str, family: &str, addr: &str, port: &str) {
    let ns = Netns::new();
    let path = ns.path();
    let env = [("NETBPF_PLAN", plan)];
    let all = Tool::start_with_env(&["tcppktlat", "--json", "--netns", &path], &env);
    let slow = Tool::start_with_env(&["tcppktlat", "100000", "--json", "--netns", &path], &env);
    let local = Tool::start_with_env(&["tcppktlat", "-l", port, "--json", "--netns", &path], &env);
    let remote = Tool::start_with_env(&["tcppktlat", "-r", port, "--json", "--netns", &path], &env);
    let other_family = if family == "4" { "-6" } else { "-4" };
    let wrong_family = Tool::start_with_env(
        &["tcppktlat", other_family, "--json", "--netns", &path],
        &env,
    );
    let elsewhere = Netns::new();
    let other_ns =
        Tool::start_with_env(&["tcppktlat", "--json", "--netns", &elsewhere.path()], &env);
    let run = ns.loadgen(&[
        "pktlat",
        "--family",
        family,
        "--port",
        port,
        "--rounds",
        "3",
        "--size",
        "100",
        "--delay-ms",
        "200",
    ]);
    let rows = all.stop().succeeded().json();
    let (server_port, client_port) = (num(&run, "server_port"), num(&run, "client_port"));

    assert_eq!(
        rows.len(),
        6,
        "{plan}: 3 server reads, 3 client reads: {rows:?}"
    );
    for r in &rows {
        assert_eq!(r["pid"], run["pid"], "{plan}: {r}");
        assert_eq!(r["comm"], "loadgen", "{plan}: {r}");
        assert_eq!(
            (&r["laddr"], &r["raddr"]),
            (&addr.into(), &addr.into()),
            "{plan}: {r}"
        );
        let lat_ms = r["lat_ms"].as_f64().unwrap();
        assert!(
            (num(r, "lat_ns") as f64 / 1e6 - lat_ms).abs() < 0.001,
            "{plan}: {r}"
        );
        if num(r, "lport") == server_port {
            // The server's reads: the message arrived just after its sleep began.
            assert_eq!(num(r, "rport"), client_port, "{plan}: {r}");
            assert_eq!(r["tid"], run["server_tid"], "{plan}: {r}");
            assert!(
                (DELAY_MS * 0.5..DELAY_MS + 1000.0).contains(&lat_ms),
                "{plan}: a message waited {lat_ms} ms, the server slept {DELAY_MS} ms: {r}"
            );
        } else {
            assert_eq!(
                (num(r, "lport"), num(r, "rport")),
                (client_port, server_port),
                "{plan}: {r}"
            );
            assert_eq!(r["tid"], run["client_tid"], "{plan}: {r}");
            assert!(
                lat_ms < DELAY_MS * 0.5,
                "{plan}: the client was blocked in read(), yet the reply waited {lat_ms} ms: {r}"
            );
        }
    }

    let slow_rows = slow.stop().succeeded().json();
    assert_eq!(
        slow_rows.len(),
        3,
        "{plan}: only the server's waits: {slow_rows:?}"
    );
    assert!(slow_rows.iter().all(|r| num(r, "lport") == server_port));
    let local_rows = local.stop().succeeded().json();
    assert_eq!(local_rows.len(), 3, "{plan}: -l {port}: {local_rows:?}");
    assert!(local_rows.iter().all(|r| r["tid"] == run["server_tid"]));
    let remote_rows = remote.stop().succeeded().json();
    assert_eq!(remote_rows.len(), 3, "{plan}: -r {port}: {remote_rows:?}");
    assert!(remote_rows.iter().all(|r| r["tid"] == run["client_tid"]));
    assert!(wrong_family.stop().succeeded().lines.is_empty());
    assert!(other_ns.stop().succeeded().lines.is_empty());
}

#[test]
fn tcppktlat_measures_unread_time_under_every_plan() {
    for plan in runnable_plans("tcppktlat") {
        check_run(&plan, "4", "127.0.0.1", "8601");
        check_run(&plan, "6", "::1", "8602");
    }
}

#[test]
fn tcppktlat_pid_tid_and_table() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&[
        "pktlat",
        "--family",
        "4",
        "--port",
        "8611",
        "--rounds",
        "2",
        "--delay-ms",
        "50",
    ]);
    let pid = traced.pid().to_string();
    let by_pid = Tool::start(&["tcppktlat", "-p", &pid, "--json", "--netns", &path]);
    let by_tid = Tool::start(&["tcppktlat", "-t", &pid, "--json", "--netns", &path]);
    let table = Tool::start(&["tcppktlat", "-T", "--netns", &path]);
    let other = ns.loadgen(&["pktlat", "--family", "4", "--port", "8612", "--rounds", "2"]);
    let run = traced.go();
    let rows = by_pid.stop().succeeded().json();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r["pid"] == run["pid"]), "{rows:?}");
    // The main thread is the client (its tid is the pid): only its reads.
    let rows = by_tid.stop().succeeded().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["tid"] == run["client_tid"] && r["pid"] == run["pid"]));
    assert_eq!(run["client_tid"], run["pid"]);
    let lines = table.stop().succeeded().lines;
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["TIME", "PID", "TID", "COMM", "LADDR", "LPORT", "RADDR", "RPORT", "MS"]
    );
    assert_eq!(lines.len(), 1 + 8, "{lines:?}");
    assert!(lines[1..]
        .iter()
        .any(|l| l.contains(&other["pid"].to_string()) && l.contains(" 8612 ")));
}

#[test]
fn tcppktlat_bad_input() {
    for args in [
        &["tcppktlat", "abc"][..],
        &["tcppktlat", "-1"],
        &["tcppktlat", "-l", "70000"],
        &["tcppktlat", "-t", "0"],
    ] {
        let o = common::netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
}
