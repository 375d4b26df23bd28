//! Which attach plan each tool picks on the kernels the project is tested on, and the tools'
//! alternative plans run for real. vmtest/suite.sh runs this file inside stock Debian kernels
//! (NETBPF_VMTEST_KERNEL=5.10, 6.1, 6.12 or 7.3: kprobes, fentry); `cargo test` runs it on the
//! host.

mod common;

use std::path::Path;

use common::{netbpf, Netns, Tool};
use serde_json::Value;

/// Plans chosen on Debian 12's stock kernels, 6.1 and 6.12 (kprobes, fentry, BTF).
const STOCK_DEBIAN: &[(&str, &str)] = &[
    ("tcpaccept", "fexit"),
    ("tcpconnect", "tracepoint"),
    ("tcplife", "tp_btf"),
    ("tcpstates", "tp_btf"),
];

/// Plans chosen on Debian 11's 5.10 (kprobes and fentry, but no bpf_get_func_ret, no socket
/// storage from tracing programs): "-" is a refusal.
const DEBIAN_5_10: &[(&str, &str)] = &[
    ("tcpaccept", "kprobe"),
    ("tcpconnect", "tracepoint"),
    ("tcplife", "-"),
    ("tcpstates", "-"),
];

/// Plans chosen on a kernel built without kprobes that refuses fentry (the project's build
/// host, 6.18): tracepoints, raw and BTF-typed.
const NO_KPROBES_NO_FENTRY: &[(&str, &str)] = &[
    ("tcpaccept", "tracepoint"),
    ("tcpconnect", "tracepoint"),
    ("tcplife", "tp_btf"),
    ("tcpstates", "tp_btf"),
];

struct Listed {
    tool: String,
    status: String,
    /// (plan, "chosen" | "usable" | "skipped")
    plans: Vec<(String, &'static str)>,
}

/// `netbpf list --verbose`, parsed.
fn list() -> Vec<Listed> {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let mut tools: Vec<Listed> = Vec::new();
    for line in String::from_utf8_lossy(&o.stdout).lines().skip(1) {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default().to_string();
        if first == "hooks:" {
            continue; // the hooks a plan attaches, under its verdict line
        }
        if !line.starts_with(' ') {
            let status = words.next().unwrap_or_default().to_string();
            tools.push(Listed {
                tool: first,
                status,
                plans: Vec::new(),
            });
            continue;
        }
        let verdict = if line.ends_with(" chosen") {
            "chosen"
        } else if line.ends_with(" usable") {
            "usable"
        } else {
            assert!(line.contains(" skipped: "), "{line}");
            "skipped"
        };
        tools
            .last_mut()
            .expect("a tool line first")
            .plans
            .push((first, verdict));
    }
    assert!(!tools.is_empty());
    tools
}

/// The expected choices here, and what kind of kernel this is.
fn expected() -> Option<(String, &'static [(&'static str, &'static str)])> {
    if let Ok(k) = std::env::var("NETBPF_VMTEST_KERNEL") {
        let table = if k == "5.10" {
            DEBIAN_5_10
        } else {
            STOCK_DEBIAN
        };
        return Some((format!("Debian {k} (vmtest)"), table));
    }
    if !Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        return Some(("a kernel without kprobes".into(), NO_KPROBES_NO_FENTRY));
    }
    None
}

#[test]
fn each_tool_picks_the_expected_plan() {
    let tools = list();
    for t in &tools {
        // Whatever the kernel: the chosen plan is the first one not skipped.
        let first_ok = t.plans.iter().position(|(_, v)| *v != "skipped");
        let chosen = t.plans.iter().position(|(_, v)| *v == "chosen");
        assert_eq!(chosen, first_ok, "{}: {:?}", t.tool, t.plans);
        assert_eq!(
            t.status == "ok",
            chosen.is_some(),
            "{}: {}",
            t.tool,
            t.status
        );
    }
    let Some((kernel, table)) = expected() else {
        eprintln!("no expected plans for this kernel (it has kprobes and is not a vmtest guest)");
        return;
    };
    for (tool, plan) in table {
        let t = tools
            .iter()
            .find(|t| t.tool == *tool)
            .unwrap_or_else(|| panic!("{tool} not listed"));
        let chosen = t
            .plans
            .iter()
            .find(|(_, v)| *v == "chosen")
            .map(|(p, _)| p.as_str());
        let want = (*plan != "-").then_some(*plan);
        assert_eq!(chosen, want, "{tool} on {kernel}: {:?}", t.plans);
    }
    for t in tools
        .iter()
        .filter(|t| !table.iter().any(|(n, _)| *n == t.tool))
    {
        eprintln!(
            "{}: no expected plan recorded for {kernel} yet ({:?})",
            t.tool, t.plans
        );
    }
}

/// The plans of `tool` this kernel can run.
fn usable_plans(tool: &str) -> Vec<String> {
    let t = list().into_iter().find(|t| t.tool == tool).expect(tool);
    let plans: Vec<String> = t
        .plans
        .into_iter()
        .filter(|(_, v)| *v != "skipped")
        .map(|(p, _)| p)
        .collect();
    assert!(!plans.is_empty(), "{tool} cannot run here");
    plans
}

#[test]
fn tcpaccept_every_usable_plan_reports_the_same() {
    for (i, plan) in usable_plans("tcpaccept").iter().enumerate() {
        let ns = Netns::new();
        let tool = Tool::start_with_env(
            &["tcpaccept", "--json", "--netns", &ns.path()],
            &[("NETBPF_PLAN", plan)],
        );
        let port = 7811 + i as u64;
        let run = ns.loadgen(&[
            "backlog",
            "--family",
            "6",
            "--port",
            &port.to_string(),
            "--backlog",
            "4",
            "--clients",
            "3",
        ]);
        let rows = tool.stop().json();
        assert_eq!(rows.len(), 3, "{plan}: {rows:?}");
        let backlogs: Vec<u64> = rows
            .iter()
            .map(|r| r["backlog"].as_u64().unwrap())
            .collect();
        assert_eq!(backlogs, [3, 2, 1], "{plan}: {rows:?}");
        for r in &rows {
            assert_eq!(r["pid"], run["pid"], "{plan}");
            assert_eq!(r["comm"], "loadgen", "{plan}");
            assert_eq!(
                (&r["ip"], &r["laddr"], &r["raddr"]),
                (&6.into(), &"::1".into(), &"::1".into())
            );
            assert_eq!(r["lport"], port, "{plan}");
            assert_eq!(r["max_backlog"], 4, "{plan}");
        }
    }
}

#[test]
fn tcpaccept_sees_io_uring_accepts_unless_on_syscall_tracepoints() {
    for (i, plan) in usable_plans("tcpaccept").iter().enumerate() {
        let ns = Netns::new();
        let port = 7821 + i as u64;
        let traced = ns.loadgen_waiting(&[
            "uring-accept",
            "--port",
            &port.to_string(),
            "--clients",
            "2",
        ]);
        let tool = Tool::start_with_env(
            &[
                "tcpaccept",
                "--json",
                "--netns",
                &ns.path(),
                "-p",
                &traced.pid().to_string(),
            ],
            &[("NETBPF_PLAN", plan)],
        );
        let run = traced.go();
        assert_eq!(run["accepted"], 2);
        let rows = tool.stop().json();
        if plan == "tracepoint" {
            // io_uring's accepts do not pass through accept(2): a known gap of this plan.
            assert!(rows.is_empty(), "{plan}: {rows:?}");
            continue;
        }
        assert_eq!(rows.len(), 2, "{plan}: {rows:?}");
        assert!(
            rows.iter().all(|r: &Value| r["pid"] == run["pid"]
                && r["lport"] == port
                && r["laddr"] == "127.0.0.1"),
            "{plan}: {rows:?}"
        );
    }
}

#[test]
fn an_unknown_forced_plan_is_refused() {
    let o = common::netbpf_with_env(&["tcpaccept", "-d", "0.1"], &[("NETBPF_PLAN", "nosuch")]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("NETBPF_PLAN=nosuch: no such plan (plans: fexit, kprobe, tracepoint)"),
        "{err}"
    );
}
