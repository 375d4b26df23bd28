//! tcpcong against real loopback traffic made lossy (a token bucket with a tiny queue), in the
//! test's own network namespace: a burst that loses segments puts the sender in Recovery or Loss.
//! Kernels before 6.2 (no tcp_cong_state_set tracepoint) must refuse the tool, naming it.

mod common;

use std::time::Instant;

use common::{lossy_loopback, refused_here, runnable_plans, with, Netns, Tool};
use serde_json::Value;

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

const STATES: [&str; 5] = ["open_ns", "disorder_ns", "cwr_ns", "recovery_ns", "loss_ns"];
const BYTES: u64 = 65536;

fn check_run(plan: &str, family: &str, addr: &str, port: &str) {
    let ns = Netns::new();
    lossy_loopback(&ns);
    let path = ns.path();
    let env = [("NETBPF_PLAN", plan)];
    let all = Tool::start_with_env(&["tcpcong", "--json", "--netns", &path], &env);
    let local = Tool::start_with_env(&["tcpcong", "-L", port, "--json", "--netns", &path], &env);
    let remote = Tool::start_with_env(&["tcpcong", "-R", port, "--json", "--netns", &path], &env);
    let dist = Tool::start_with_env(
        &["tcpcong", "--dist", "-u", "--json", "--netns", &path],
        &env,
    );
    let elsewhere = Netns::new();
    let other_ns = Tool::start_with_env(&["tcpcong", "--json", "--netns", &elsewhere.path()], &env);
    let began = Instant::now();
    let run = ns.loadgen(&[
        "retrans",
        "--family",
        family,
        "--port",
        port,
        "--bytes",
        &BYTES.to_string(),
    ]);
    let wall_ns = began.elapsed().as_nanos() as u64;
    let rows = all.stop().succeeded().json();
    let (server_port, client_port) = (num(&run, "server_port"), num(&run, "client_port"));
    assert!(
        num(&run, "total_retrans") > 0,
        "{plan}: the burst must lose: {run}"
    );

    assert_eq!(
        rows.len(),
        2,
        "{plan}: the client's and the server's connection: {rows:?}"
    );
    for r in &rows {
        assert_eq!(
            (&r["laddr"], &r["raddr"]),
            (&addr.into(), &addr.into()),
            "{plan}: {r}"
        );
        assert_eq!(r["whole"], true, "{plan}: {r}");
        let sum: u64 = STATES.iter().map(|s| num(r, s)).sum();
        assert_eq!(
            sum,
            num(r, "life_ns"),
            "{plan}: the states add up to the life: {r}"
        );
        // The connection carried the whole burst through a 1 Mbit/s bucket, and lived inside
        // the workload's run.
        let life = num(r, "life_ns");
        let at_rate_ns = BYTES * 8 * 1000;
        assert!(
            life >= at_rate_ns * 9 / 10 && life <= wall_ns,
            "{plan}: life {life} ns, {BYTES} bytes at 1 Mbit/s take {at_rate_ns} ns, run {wall_ns} ns: {r}"
        );
    }
    let client = with(&rows, "lport", client_port);
    assert_eq!(client.len(), 1, "{plan}: {rows:?}");
    let c = client[0];
    assert_eq!(num(c, "rport"), server_port, "{plan}: {c}");
    // The sender lost segments: it left Open for Recovery (fast retransmit) or Loss (timeout),
    // and came back.
    assert!(
        num(c, "recovery_ns") + num(c, "loss_ns") > 0,
        "{plan}: the sender never was in Recovery or Loss: {c}"
    );
    assert!(num(c, "changes") >= 2, "{plan}: {c}");
    assert!(num(c, "open_ns") > 0, "{plan}: {c}");

    // Each filtered run sees its one connection, unless the tool said the kernel skipped runs
    // of its programs (one interrupted on its CPU by the same hook, in softirq, blocks that
    // nested run): then at most that one.
    for (tool, filter, lport) in [(local, "-L", server_port), (remote, "-R", client_port)] {
        let f = tool.stop().succeeded();
        let rows = f.json();
        let want = match f.stderr.contains("the kernel skipped") {
            true => rows.len().min(1),
            false => 1,
        };
        assert_eq!(
            rows.len(),
            want,
            "{plan}: {filter} {port}: {rows:?} {}",
            f.stderr
        );
        assert!(
            rows.iter().all(|r| num(r, "lport") == lport),
            "{plan}: {rows:?}"
        );
    }
    assert!(other_ns.stop().succeeded().lines.is_empty());

    let hists = dist.stop().succeeded().json();
    let states: Vec<&str> = hists.iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"open"), "{plan}: {hists:?}");
    assert!(
        states.contains(&"recovery") || states.contains(&"loss"),
        "{plan}: {hists:?}"
    );
    for h in &hists {
        assert_eq!(
            (&h["hist"], &h["unit"]),
            (&"period_us".into(), &"us".into()),
            "{plan}: {h}"
        );
    }
}

#[test]
fn tcpcong_times_states_of_a_lossy_transfer_under_every_plan() {
    // Before 6.2 the kernel has no tcp_cong_state_set tracepoint: the refusal is checked.
    if refused_here("tcpcong") {
        return;
    }
    for plan in runnable_plans("tcpcong") {
        check_run(&plan, "4", "127.0.0.1", "8701");
        check_run(&plan, "6", "::1", "8702");
    }
}

#[test]
fn tcpcong_table_and_bad_input() {
    // Options are checked before the kernel is: bad input is refused on every kernel.
    for args in [
        &["tcpcong", "-L", "0"][..],
        &["tcpcong", "-R", "x"],
        &["tcpcong", "5"],
    ] {
        let o = common::netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    if refused_here("tcpcong") {
        return;
    }
    let ns = Netns::new();
    lossy_loopback(&ns);
    let table = Tool::start(&["tcpcong", "-T", "--netns", &ns.path()]);
    ns.loadgen(&["retrans", "--port", "8711", "--bytes", "32768"]);
    let lines = table.stop().succeeded().lines;
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TIME",
            "LADDR",
            "LPORT",
            "RADDR",
            "RPORT",
            "OPEN_MS",
            "DISORD_MS",
            "CWR_MS",
            "RECOV_MS",
            "LOSS_MS",
            "CHANGES",
            "LIFE_MS"
        ]
    );
    assert_eq!(lines.len(), 3, "{lines:?}");
}
