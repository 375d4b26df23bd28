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
/// storage from tracing programs, no drop reasons, no module BTF): every tool, "-" a refusal
/// (from `netbpf list` in the 5.10 VM, 2026-12-07: 36 run, 3 refuse).
const DEBIAN_5_10: &[(&str, &str)] = &[
    ("bindsnoop", "tracepoint"),
    // No bpf_dynptr_from_skb (a kfunc from 6.3): the plan without DNS over TCP.
    ("dnslat", "tp_btf-udp"),
    ("gethostlatency", "uprobe"),
    ("ieee80211scan", "-"),
    ("ipecn", "tp_btf"),
    ("netsize", "tp_btf"),
    ("nettxlat", "tp_btf"),
    ("qdisc", "fexit"),
    ("skbdrop", "tp_btf-noreason"),
    ("skblife", "-"),
    ("so1stbyte", "tracepoint"),
    ("soaccept", "tracepoint"),
    ("socketio", "fentry"),
    ("socksize", "fexit"),
    ("sockstat", "fentry"),
    ("soconnect", "tracepoint"),
    ("soconnlat", "tracepoint"),
    ("sofamily", "tracepoint"),
    ("solisten", "tracepoint"),
    ("soprotocol", "tracepoint"),
    ("sormem", "fentry"),
    ("superping", "tp_btf"),
    ("tcpaccept", "kprobe"),
    ("tcpcong", "-"),
    ("tcpconnect", "tracepoint"),
    ("tcpconnlat", "tp_btf"),
    ("tcpdrop", "tp_btf-noreason"),
    ("tcplife", "tracepoint"),
    ("tcpnagle", "fentry"),
    ("tcppktlat", "tp_btf"),
    ("tcpretrans", "kprobe"),
    ("tcprtt", "tp_btf"),
    ("tcpsnoop", "kprobe"),
    ("tcpstates", "tracepoint"),
    ("tcpsynbl", "fentry"),
    ("tcptop", "kprobe"),
    ("tcptracer", "tracepoint"),
    ("tcpwin", "tp_btf"),
    ("udpconnect", "fexit"),
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
        if first == "hooks:" || line.starts_with(&" ".repeat(17)) {
            continue; // under a plan's verdict: its hooks, or the load log of a skipped plan
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

/// tcplife, tcpstates and tcptracer keep per-socket state in the socket's storage (tp_btf,
/// 5.11+) or, where tracing programs have none, in a bounded hash by socket address (the
/// tracepoint plan): every plan this kernel can run reports the same sessions, state changes
/// and connections, owners and times included.
#[test]
fn socket_state_tools_report_the_same_on_every_plan() {
    for (i, plan) in usable_plans("tcplife").iter().enumerate() {
        assert_eq!(usable_plans("tcpstates"), usable_plans("tcplife"));
        assert_eq!(usable_plans("tcptracer"), usable_plans("tcplife"));
        let ns = Netns::new();
        let path = ns.path();
        let env = [("NETBPF_PLAN", plan.as_str())];
        let life = Tool::start_with_env(&["tcplife", "--json", "--netns", &path], &env);
        let states = Tool::start_with_env(&["tcpstates", "--json", "--netns", &path], &env);
        let tracer = Tool::start_with_env(&["tcptracer", "--json", "--netns", &path], &env);
        let port = 7841 + i as u64;
        let run = ns.loadgen(&[
            "exchange",
            "--family",
            "4",
            "--port",
            &port.to_string(),
            "--client-send",
            "3000",
            "--server-send",
            "1000",
            "--hold-ms",
            "50",
        ]);
        let cport = run["client_port"].as_u64().unwrap();
        let pid = &run["pid"];

        let rows = life.stop().succeeded().json();
        assert_eq!(rows.len(), 2, "{plan}: {rows:?}");
        for (lport, tx, rx) in [(cport, 3000, 1000), (port, 1000, 3000)] {
            let r = rows
                .iter()
                .find(|r| r["lport"] == lport)
                .unwrap_or_else(|| panic!("{plan}: no session on {lport}: {rows:?}"));
            assert_eq!(
                (&r["tx_bytes"], &r["rx_bytes"]),
                (&tx.into(), &rx.into()),
                "{plan}: {r}"
            );
            assert_eq!(&r["pid"], pid, "{plan}: {r}");
            assert!(r["ms"].as_f64().unwrap() >= 50.0, "{plan}: {r}");
        }

        let rows = states.stop().succeeded().json();
        // The client socket (its port is 0 at CLOSE -> SYN_SENT): by its address.
        let sk = &rows
            .iter()
            .find(|r| r["lport"] == cport)
            .unwrap_or_else(|| panic!("{plan}: {rows:?}"))["skaddr"];
        let client: Vec<&Value> = rows.iter().filter(|r| &r["skaddr"] == sk).collect();
        let changes: Vec<String> = client
            .iter()
            .map(|r| {
                format!(
                    "{}->{}",
                    r["oldstate"].as_str().unwrap(),
                    r["newstate"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            changes[..2],
            ["CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED"],
            "{plan}: {rows:?}"
        );
        // The time in SYN_SENT and the owner come from the socket's state.
        assert!(
            client[1]["ms"].as_f64().unwrap() > 0.0,
            "{plan}: {}",
            client[1]
        );
        assert!(
            client.iter().all(|r| &r["pid"] == pid),
            "{plan}: {client:?}"
        );
        // At least the hold in ESTABLISHED.
        let established = client
            .iter()
            .find(|r| r["oldstate"] == "ESTABLISHED")
            .unwrap_or_else(|| panic!("{plan}: {client:?}"));
        assert!(
            established["ms"].as_f64().unwrap() >= 50.0,
            "{plan}: {established}"
        );

        let rows = tracer.stop().succeeded().json();
        let types: Vec<&str> = rows.iter().map(|r| r["type"].as_str().unwrap()).collect();
        assert_eq!(types[..2], ["connect", "accept"], "{plan}: {rows:?}");
        assert_eq!(types.len(), 4, "{plan}: {rows:?}");
        assert!(rows.iter().all(|r| &r["pid"] == pid), "{plan}: {rows:?}");
    }
}

/// The hash of the tracepoint plan is bounded: when more sockets are followed at once than it
/// holds, the oldest are evicted, and the tool says how many sessions that cost. Every session
/// is then either reported, or counted as evicted or as not tracked.
#[test]
fn the_socket_hash_counts_what_it_evicts() {
    let ns = Netns::new();
    let tool = Tool::start_with_env(
        &["tcplife", "--json", "--netns", &ns.path()],
        &[
            ("NETBPF_PLAN", "tracepoint"),
            ("NETBPF_SK_STATE_ENTRIES", "8"),
        ],
    );
    // 30 connections held open together: 60 sessions (30 clients, 30 accepted).
    ns.loadgen(&[
        "backlog",
        "--family",
        "4",
        "--port",
        "7851",
        "--backlog",
        "64",
        "--clients",
        "30",
    ]);
    let f = tool.stop().succeeded();
    let reported = f.json().len() as u64;
    let counted = |what: &str| -> u64 {
        f.stderr
            .lines()
            .find(|l| l.contains(what))
            .and_then(|l| l.strip_prefix("netbpf tcplife: "))
            .and_then(|l| l.split(' ').next())
            .map_or(0, |n| n.parse().unwrap())
    };
    let evicted = counted(" sessions not reported: more than 8 sockets");
    let untracked = counted(" sessions not tracked");
    assert!(evicted > 0, "{}", f.stderr);
    assert_eq!(reported + evicted + untracked, 60, "{}", f.stderr);
}

/// skbdrop and tcpdrop where kfree_skb gives no drop reason (before 5.17; the plan forced
/// elsewhere): drops are still counted and shown, with their stacks, the reason "unknown", and
/// the tools say why.
#[test]
fn drops_without_reasons_show_stacks() {
    let plan = "tp_btf-noreason";
    let env = [("NETBPF_PLAN", plan)];
    let ns = Netns::new();
    let path = ns.path();
    let tcp = Tool::start_with_env(&["tcpdrop", "--json", "--netns", &path], &env);
    let skb = Tool::start_with_env(&["skbdrop", "--json", "--netns", &path], &env);
    ns.loadgen(&["connect", "--family", "4", "--port", "8231", "--count", "2"]);
    ns.loadgen(&[
        "udp-send", "--family", "4", "--count", "5", "--size", "100", "--port", "9",
    ]);
    let has_frame = |r: &Value, frame: &str| {
        r["stack"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().starts_with(frame))
    };

    let f = tcp.stop().succeeded();
    assert!(
        f.stderr
            .contains("no drop reasons (skb:kfree_skb gives them from Linux 5.17"),
        "{}",
        f.stderr
    );
    let rows = f.json();
    assert!(rows.iter().all(|r| r["reason"] == "unknown"), "{rows:?}");
    // The SYNs to the closed port, freed where TCP found no socket for them.
    let syns: Vec<&Value> = rows
        .iter()
        .filter(|r| r["dport"] == 8231 && r["flags"] == "SYN")
        .collect();
    assert_eq!(syns.len(), 2, "{rows:?}");
    assert!(syns.iter().all(|r| has_frame(r, "tcp_v4_rcv+")), "{syns:?}");

    let f = skb.stop().succeeded();
    assert!(
        f.stderr
            .contains("no drop reasons (skb:kfree_skb gives them from Linux 5.17"),
        "{}",
        f.stderr
    );
    let rows = f.json();
    let drops: Vec<&Value> = rows.iter().filter(|r| r.get("reason").is_some()).collect();
    assert!(drops.iter().all(|r| r["reason"] == "unknown"), "{rows:?}");
    // UDP's receive function: __udp4_lib_rcv, inlined into udp_rcv on 7.x.
    let udp: u64 = drops
        .iter()
        .filter(|r| has_frame(r, "__udp4_lib_rcv+") || has_frame(r, "udp_rcv+"))
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(udp, 5, "{rows:?}");
    let delta = rows
        .iter()
        .find(|r| r["counter"] == "UdpNoPorts")
        .and_then(|r| r["delta"].as_i64());
    assert_eq!(delta, Some(5), "{rows:?}");
}

/// Threads blocked in a probed call: 40 readers in recvmsg() and 40 acceptors in accept(), more
/// than a kretprobe follows by default (max(10, 2 × CPUs) calls in progress); then one transfer
/// and 40 connections. Prints the transfer's ports and byte counts once all is done.
const BLOCKED_CALLS: &str = r#"
import json, socket, threading
N = 40
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(128)
port = l.getsockname()[1]
idle = []
for _ in range(N):
    c = socket.create_connection(("127.0.0.1", port)); s, _ = l.accept(); idle.append((c, s))
    threading.Thread(target=s.recv, args=(10,), daemon=True).start()
acceptors = socket.socket(); acceptors.bind(("127.0.0.1", 0)); acceptors.listen(128)
accepted = []
def accept():
    accepted.append(acceptors.accept()[0])
waiting = [threading.Thread(target=accept) for _ in range(N)]
for t in waiting:
    t.start()
c = socket.create_connection(("127.0.0.1", port)); s, _ = l.accept()
s.sendall(b"x" * 5000)
got = 0
while got < 5000:
    got += len(c.recv(65536))
c.sendall(b"y" * 3000)
got = 0
while got < 3000:
    got += len(s.recv(65536))
clients = [socket.create_connection(acceptors.getsockname()) for _ in range(N)]
for t in waiting:
    t.join()
print(json.dumps({"client_port": c.getsockname()[1], "server_port": port,
                  "accept_port": acceptors.getsockname()[1]}), flush=True)
"#;

/// Every return of a probed call is seen however many threads are blocked in it: on kprobe
/// plans the return probes are made with the kernel's maximum of calls in progress (a
/// perf-made kretprobe follows ten here, and tcptop counted 0 of 5,000 received bytes).
#[test]
fn returns_are_seen_while_many_threads_block_in_the_call() {
    let tcptop = usable_plans("tcptop");
    let tcpaccept = usable_plans("tcpaccept");
    for i in 0..tcptop.len().max(tcpaccept.len()) {
        let ns = Netns::new();
        let path = ns.path();
        let tools: Vec<(&str, Tool)> = [("tcptop", &tcptop), ("tcpaccept", &tcpaccept)]
            .into_iter()
            .filter_map(|(tool, plans)| {
                let plan = plans.get(i)?;
                let args: &[&str] = match tool {
                    "tcptop" => &["tcptop", "--json", "--netns", &path, "60"],
                    _ => &["tcpaccept", "--json", "--netns", &path],
                };
                Some((
                    plan.as_str(),
                    Tool::start_with_env(args, &[("NETBPF_PLAN", plan)]),
                ))
            })
            .collect();
        let out = ns
            .command("python3")
            .args(["-c", BLOCKED_CALLS])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let run: Value = serde_json::from_slice(&out.stdout).unwrap();
        let port = |k: &str| run[k].as_u64().unwrap();
        for (plan, tool) in tools {
            let group = format!("netbpf_{}/", tool.pid());
            let rows = tool.stop().json();
            // The return probes it defined in tracefs are gone with it.
            for events in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
                let defined =
                    std::fs::read_to_string(format!("{events}/kprobe_events")).unwrap_or_default();
                assert!(!defined.contains(&group), "{plan}: {defined}");
            }
            if rows.first().is_some_and(|r| r.get("rx_bytes").is_some()) {
                let (client, server) = (port("client_port"), port("server_port"));
                let totals = |lport, rport| {
                    rows.iter()
                        .filter(|r| r["lport"] == lport && r["rport"] == rport)
                        .fold((0, 0), |(rx, tx), r| {
                            (
                                rx + r["rx_bytes"].as_u64().unwrap(),
                                tx + r["tx_bytes"].as_u64().unwrap(),
                            )
                        })
                };
                assert_eq!(
                    totals(client, server),
                    (5000, 3000),
                    "tcptop {plan}: {rows:?}"
                );
                assert_eq!(
                    totals(server, client),
                    (3000, 5000),
                    "tcptop {plan}: {rows:?}"
                );
            } else {
                let accepts = rows
                    .iter()
                    .filter(|r| r["lport"] == port("accept_port"))
                    .count();
                assert_eq!(accepts, 40, "tcpaccept {plan}: {rows:?}");
            }
        }
    }
}
