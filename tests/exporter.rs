//! `netbpf exporter`: real traffic in a private netns, scraped over HTTP, parsed with a real
//! exposition-format parser (text and OpenMetrics), checked against what the traffic did; and
//! scraped by a real Prometheus server.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::exporter::{free_port, try_get, Exporter, ATTACH_TIMEOUT};
use common::prometheus::{Prometheus, PROMETHEUS};
use common::{netbpf, netbpf_with_env, Netns, Tool};
use serde_json::Value as Json;

/// Set in the VMs of vmtest/ (stock kernels: kprobes, fentry).
fn stock_kernel() -> bool {
    std::env::var_os("NETBPF_VMTEST_KERNEL").is_some()
}

/// GET over a plain socket; returns (head, body).
fn get(port: u16, path: &str, accept: &str) -> (String, String) {
    try_get(port, path, accept).unwrap_or_else(|| panic!("GET 127.0.0.1:{port}{path} failed"))
}

impl Exporter {
    fn scrape(&self) -> Scrape {
        let (head, body) = get(self.port, "/metrics", "text/plain");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        Scrape::parse(&body)
    }

    /// SIGINT; it must exit 0. Returns its stderr.
    fn stop(self) -> String {
        let (status, stderr) = self.interrupt(ATTACH_TIMEOUT);
        assert!(status.success(), "exporter failed ({status}): {stderr}");
        stderr
    }
}

/// A parsed scrape.
struct Scrape {
    body: String,
    parsed: prometheus_parse::Scrape,
}

impl Scrape {
    fn parse(body: &str) -> Scrape {
        let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
            .expect("exposition format");
        Scrape {
            body: body.to_string(),
            parsed,
        }
    }

    fn find(&self, metric: &str, labels: &[(&str, &str)]) -> Option<&prometheus_parse::Sample> {
        self.parsed.samples.iter().find(|s| {
            s.metric == metric
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                && s.labels.len() == labels.len()
        })
    }

    /// A counter, gauge or untyped sample with exactly these labels.
    fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let s = self
            .find(metric, labels)
            .unwrap_or_else(|| panic!("no {metric}{labels:?} in\n{}", self.body));
        match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric}: {other:?}"),
        }
    }

    /// Every sample of `metric` (any labels), summed.
    fn total(&self, metric: &str) -> f64 {
        self.parsed
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{metric}: {other:?}"),
            })
            .sum()
    }

    /// A histogram: (le, cumulative count) buckets, _sum and _count, checked for consistency.
    fn histogram(&self, metric: &str, labels: &[(&str, &str)]) -> Hist {
        let s = self
            .find(metric, labels)
            .unwrap_or_else(|| panic!("no histogram {metric}{labels:?} in\n{}", self.body));
        let buckets: Vec<(f64, f64)> = match &s.value {
            prometheus_parse::Value::Histogram(h) => {
                h.iter().map(|b| (b.less_than, b.count)).collect()
            }
            other => panic!("{metric}: {other:?}"),
        };
        let h = Hist {
            buckets,
            sum: self.value(&format!("{metric}_sum"), labels),
            count: self.value(&format!("{metric}_count"), labels),
        };
        assert!(
            h.buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "buckets ordered and cumulative: {h:?}"
        );
        assert_eq!(h.at(f64::INFINITY), h.count, "+Inf is _count: {h:?}");
        h
    }

    /// Every sample as "name{sorted labels}" -> value, for comparing two formats.
    fn flat(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in &self.parsed.samples {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            match &s.value {
                prometheus_parse::Value::Histogram(h) => {
                    for b in h {
                        out.insert(
                            format!(
                                "{}_bucket{{{},le={}}}",
                                s.metric,
                                labels.join(","),
                                b.less_than
                            ),
                            b.count,
                        );
                    }
                }
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => {
                    out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), *v);
                }
                other => panic!("{other:?}"),
            }
        }
        out
    }

    fn has_label(&self, label: &str) -> bool {
        self.parsed
            .samples
            .iter()
            .any(|s| s.labels.get(label).is_some())
    }
}

#[derive(Debug)]
struct Hist {
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

impl Hist {
    /// The cumulative count at bucket `le` (which must exist).
    fn at(&self, le: f64) -> f64 {
        self.buckets
            .iter()
            .find(|b| b.0 == le || (b.0 - le).abs() < 1e-9 * le.max(1.0))
            .unwrap_or_else(|| panic!("no bucket le={le}: {self:?}"))
            .1
    }

    /// The largest finite bucket bound.
    fn top(&self) -> f64 {
        self.buckets
            .iter()
            .filter(|b| b.0.is_finite())
            .map(|b| b.0)
            .fold(0.0, f64::max)
    }
}

fn num(v: &Json, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Runs a command (ip, tc, cat) inside the namespace; returns its stdout.
fn ns_run(ns: &Netns, program: &str, args: &[&str]) -> String {
    let out = ns
        .command(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (scripts/install-deps.sh): {e}"));
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

fn exchanges(ns: &Netns, n: usize) {
    for _ in 0..n {
        ns.loadgen(&[
            "exchange",
            "--client-send",
            "10000",
            "--server-send",
            "5000",
            "--hold-ms",
            "30",
        ]);
    }
}

// ---------------------------------------------------------------- tcplife, tcpstates

#[test]
fn tcp_connections_move_by_what_the_traffic_did() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "tcplife,tcpstates"]);
    let before = e.scrape();
    let v4a = [("family", "ipv4"), ("direction", "active")];
    let v4p = [("family", "ipv4"), ("direction", "passive")];
    let v6a = [("family", "ipv6"), ("direction", "active")];
    let v6p = [("family", "ipv6"), ("direction", "passive")];
    // Known series are there at 0 before any traffic.
    for l in [&v4a, &v4p, &v6a, &v6p] {
        assert_eq!(before.value("netbpf_tcp_connections_closed_total", l), 0.0);
        assert_eq!(
            before
                .histogram("netbpf_tcp_connection_duration_seconds", l)
                .count,
            0.0
        );
    }
    assert_eq!(
        before.value(
            "netbpf_tool_up",
            &[
                ("tool", "tcplife"),
                ("plan", &common::chosen_plan("tcplife"))
            ]
        ),
        1.0
    );
    assert_eq!(
        before.value("netbpf_lost_events_total", &[("tool", "tcplife")]),
        0.0
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(
        before.value(
            "netbpf_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("kernel", kernel.trim())
            ]
        ),
        1.0
    );

    exchanges(&ns, 3);
    ns.loadgen(&["exchange", "--family", "6", "--client-send", "100"]);
    // Three connects to a port nobody listens on: refused, never established.
    let refused = ns.loadgen(&["connect", "--port", "9", "--count", "3"]);
    assert_eq!(refused["refused"], 3);
    std::thread::sleep(Duration::from_millis(200));
    let m = e.scrape();

    // One session per side of each exchange; the refused connects are failures, not sessions.
    let count = |metric: &str, l: &[(&str, &str)]| m.value(metric, l);
    assert_eq!(count("netbpf_tcp_connections_opened_total", &v4a), 6.0);
    assert_eq!(count("netbpf_tcp_connections_opened_total", &v4p), 3.0);
    assert_eq!(count("netbpf_tcp_connections_opened_total", &v6a), 1.0);
    assert_eq!(count("netbpf_tcp_connections_opened_total", &v6p), 1.0);
    assert_eq!(count("netbpf_tcp_connections_closed_total", &v4a), 3.0);
    assert_eq!(count("netbpf_tcp_connections_closed_total", &v4p), 3.0);
    assert_eq!(count("netbpf_tcp_connections_closed_total", &v6a), 1.0);
    assert_eq!(count("netbpf_tcp_connections_closed_total", &v6p), 1.0);
    assert_eq!(count("netbpf_tcp_connect_failures_total", &v4a), 3.0);
    assert_eq!(count("netbpf_tcp_connect_failures_total", &v4p), 0.0);
    // Exact payload bytes: the clients sent 10000, the servers 5000, each time.
    assert_eq!(count("netbpf_tcp_connection_tx_bytes_total", &v4a), 30000.0);
    assert_eq!(count("netbpf_tcp_connection_rx_bytes_total", &v4a), 15000.0);
    assert_eq!(count("netbpf_tcp_connection_tx_bytes_total", &v4p), 15000.0);
    assert_eq!(count("netbpf_tcp_connection_rx_bytes_total", &v4p), 30000.0);
    assert_eq!(count("netbpf_tcp_connection_tx_bytes_total", &v6a), 100.0);
    assert_eq!(count("netbpf_tcp_connection_rx_bytes_total", &v6p), 100.0);
    assert_eq!(count("netbpf_tcp_connection_rx_bytes_total", &v6a), 0.0);

    // The clients held each connection 30 ms: no lifespan under 16 ms, all within 4 s, and the
    // sum is about 3 x 30 ms.
    let h = m.histogram("netbpf_tcp_connection_duration_seconds", &v4a);
    assert_eq!(h.count, 3.0, "{h:?}");
    assert_eq!(h.at(0.016384), 0.0, "{h:?}");
    assert_eq!(h.at(4.194304), 3.0, "{h:?}");
    assert!(h.sum >= 0.090 && h.sum < 3.0, "{h:?}");
    // Lifespans have buckets up to 2^36 us (19 hours), from 16 us.
    assert_eq!(h.top(), 68719.476736, "{h:?}");
    assert_eq!(h.buckets[0].0, 16e-6, "{h:?}");
    assert_eq!(
        m.histogram("netbpf_tcp_connection_duration_seconds", &v6p)
            .count,
        1.0
    );

    let tr = |from: &str, to: &str| {
        m.value(
            "netbpf_tcp_state_transitions_total",
            &[("from", from), ("to", to)],
        )
    };
    assert_eq!(tr("CLOSE", "SYN_SENT"), 7.0);
    assert_eq!(tr("SYN_SENT", "ESTABLISHED"), 4.0);
    assert_eq!(tr("SYN_SENT", "CLOSE"), 3.0);
    assert_eq!(tr("ESTABLISHED", "FIN_WAIT1"), 4.0);
    assert_eq!(tr("LISTEN", "SYN_RECV"), 4.0);
    assert_eq!(tr("LISTEN", "CLOSE"), 4.0);
    // No port label unless asked for.
    assert!(!m.has_label("port"), "{}", m.body);

    // OpenMetrics, when asked for: the same samples, the OpenMetrics way (# EOF, # UNIT).
    let (head, body) = get(
        e.port,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(
        head.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# UNIT netbpf_tcp_connection_duration_seconds seconds"),
        "{body}"
    );
    assert!(body.contains("# TYPE netbpf_tcp_connections_closed counter"));
    let om = Scrape::parse(&body);
    let text = e.scrape();
    let (mut a, mut b) = (om.flat(), text.flat());
    for k in [
        "netbpf_scrape_duration_seconds{}",
        "netbpf_scrapes_total{format=openmetrics}",
        "netbpf_scrapes_total{format=text}",
    ] {
        assert!(a.remove(k).is_some() && b.remove(k).is_some(), "{k}");
    }
    assert_eq!(a, b, "OpenMetrics and text carry the same samples");
    assert!(a.len() > 100, "{a:?}");
    // q=0 refuses OpenMetrics.
    let (head, _) = get(
        e.port,
        "/metrics",
        "application/openmetrics-text;q=0,text/plain",
    );
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(get(e.port, "/nope", "*/*").0.starts_with("HTTP/1.1 404"));
    e.stop();
}

// ---------------------------------------------------------------- privileges

fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}

/// What the exporter keeps after dropping privileges: nothing, or CAP_BPF alone where the
/// kernel refuses map reads without it (before 5.19, with unprivileged BPF disabled).
fn kept_caps() -> &'static str {
    let unprivileged_bpf_off =
        std::fs::read_to_string("/proc/sys/kernel/unprivileged_bpf_disabled")
            .is_ok_and(|v| v.trim() != "0");
    match unprivileged_bpf_off && netbpf::core::caps::kernel_version().is_some_and(|v| v < (5, 19))
    {
        true => "0000008000000000",
        false => "0000000000000000",
    }
}

#[test]
fn every_thread_runs_without_privileges() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "tcpstates,tcplife"]);
    // Concurrent scrapes: the server stays on its one thread.
    let port = e.port;
    let scrapers: Vec<_> = (0..12)
        .map(|_| std::thread::spawn(move || get(port, "/metrics", "*/*").0))
        .collect();
    for s in scrapers {
        assert!(s.join().unwrap().starts_with("HTTP/1.1 200"));
    }
    let pid = e.pid();
    let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| t.unwrap().path())
        .collect();
    assert_eq!(tasks.len(), 1, "one thread serves: {tasks:?}");
    for t in &tasks {
        let status = std::fs::read_to_string(t.join("status")).unwrap();
        // Started as root: it left uid 0, and runs under its own seccomp filter.
        assert_eq!(status_field(&status, "Uid:"), "65534\t65534\t65534\t65534");
        assert_eq!(status_field(&status, "Seccomp:"), "2", "{status}");
        let bpf_only = kept_caps();
        for (f, want) in [
            ("CapInh:", "0000000000000000"),
            ("CapPrm:", bpf_only),
            ("CapEff:", bpf_only),
            ("CapBnd:", bpf_only),
            ("CapAmb:", "0000000000000000"),
        ] {
            assert_eq!(
                status_field(&status, f),
                want,
                "{f} of {}: {status}",
                t.display()
            );
        }
        assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "{status}");
    }
    // Still reading maps without any capability.
    let m = e.scrape();
    assert_eq!(
        m.value(
            "netbpf_tool_up",
            &[
                ("tool", "tcpstates"),
                ("plan", &common::chosen_plan("tcpstates"))
            ]
        ),
        1.0
    );
    ns.loadgen(&["exchange", "--client-send", "10"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        e.scrape().value(
            "netbpf_tcp_connections_closed_total",
            &[("family", "ipv4"), ("direction", "passive")]
        ),
        1.0
    );
    e.stop();
}

/// As the shipped systemd unit runs it: user nobody with CAP_BPF and CAP_PERFMON only (ambient).
/// The kernel opens kprobes and uprobes to CAP_SYS_ADMIN only: the default tool set skips
/// gethostlatency and times qdiscs with the tracepoints; the rest runs, then drops both.
#[test]
fn runs_as_a_user_with_bpf_and_perfmon_only() {
    let ns = Netns::new();
    let port = free_port();
    let cookie = ns.cookie();
    // A copy the user can reach whatever the checkout's directories allow (CI may clone under
    // a root-only home).
    let dir = std::env::temp_dir().join(format!("netbpf-exporter-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("netbpf");
    std::fs::copy(common::netbpf_bin(), &bin).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // As the unit: LimitMEMLOCK=infinity where maps count against it (before 5.11; this
    // sandbox refuses to raise limits at all), then nobody.
    let memlock = netbpf::core::caps::kernel_version().is_some_and(|v| v < (5, 11));
    let mut cmd = if memlock {
        let mut c = Command::new("prlimit");
        c.args(["--memlock=unlimited:unlimited", "setpriv"]);
        c
    } else {
        Command::new("setpriv")
    };
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all,+bpf,+perfmon",
        "--ambient-caps=-all,+bpf,+perfmon",
        "--bounding-set=-all,+bpf,+perfmon",
    ])
    .arg(&bin)
    .args(["exporter", "--netns", &cookie, "--listen"])
    .arg(format!("127.0.0.1:{port}"));
    let e = Exporter::spawn(cmd, port);
    let pid = e.pid();
    let m = Scrape::parse(&get(port, "/metrics", "*/*").1);
    // Before 5.11 tcplife needs the classic tracepoint, whose id nobody cannot read in a
    // root-only tracefs: then it is skipped, saying why, and its byte count is not checked.
    // dnslat runs everywhere on tracepoints alone, without CAP_SYS_ADMIN.
    let tcplife_here = common::chosen_plan("tcplife") == "tp_btf";
    let tools: &[&str] = if tcplife_here {
        &["tcplife", "tcpretrans", "socksize", "skbdrop", "dnslat"]
    } else {
        &["tcpretrans", "socksize", "skbdrop", "dnslat"]
    };
    for tool in tools.iter().copied() {
        let up = m
            .parsed
            .samples
            .iter()
            .find(|s| s.metric == "netbpf_tool_up" && s.labels.get("tool") == Some(tool))
            .unwrap();
        assert!(
            matches!(up.value, prometheus_parse::Value::Gauge(v) if v == 1.0),
            "{tool}: {}",
            m.body
        );
    }
    let kind = std::fs::read_to_string("/proc/sys/net/core/default_qdisc").unwrap();
    assert_eq!(
        m.value(
            "netbpf_tool_up",
            &[
                ("tool", "qdisc"),
                (
                    "plan",
                    &format!("{}:{}", kind.trim(), qdisc_plan(kind.trim()))
                )
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(
            "netbpf_tool_up",
            &[("tool", "gethostlatency"), ("plan", "unsupported")]
        ),
        0.0
    );
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap();
        for (f, want) in [
            ("CapPrm:", kept_caps()),
            ("CapEff:", kept_caps()),
            ("CapAmb:", "0000000000000000"),
        ] {
            assert_eq!(status_field(&status, f), want, "{status}");
        }
        assert_eq!(status_field(&status, "NoNewPrivs:"), "1", "{status}");
    }
    // Filtered to the namespace by its cookie: its traffic is counted, exactly.
    ns.loadgen(&["exchange", "--client-send", "123"]);
    std::thread::sleep(Duration::from_millis(200));
    let m = Scrape::parse(&get(port, "/metrics", "*/*").1);
    if tcplife_here {
        assert_eq!(
            m.value(
                "netbpf_tcp_connection_tx_bytes_total",
                &[("family", "ipv4"), ("direction", "active")]
            ),
            123.0
        );
    }
    let stderr = e.stop();
    if !tcplife_here {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("netbpf exporter: skipping tcplife")
                    && l.contains("tracefs at /sys/kernel/tracing is not readable by this user")),
            "{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        stderr.lines().any(
            |l| l.starts_with("netbpf exporter: skipping gethostlatency")
                && l.contains("CAP_SYS_ADMIN")
        ),
        "{stderr}"
    );
}

// ---------------------------------------------------------------- tcpretrans

/// Whether the kernel names full accept-queue drops (a string of its BTF).
fn kernel_has_listen_overflow_reason() -> bool {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let name = b"SKB_DROP_REASON_TCP_LISTEN_OVERFLOW";
    btf.windows(name.len()).any(|w| w == name)
}

#[test]
fn retransmits_by_state_are_the_kernels_count() {
    let ns = Netns::new();
    common::lossy_loopback(&ns);
    // Every function-hook plan this kernel runs (they add loss probes: fentry needs 5.17's
    // bpf_get_func_ret, kprobes a kernel that has them); else the tracepoint one.
    let mut plans: Vec<String> = common::usable_plans("tcpretrans")
        .into_iter()
        .filter(|p| p == "fentry" || p == "kprobe")
        .collect();
    if plans.is_empty() {
        plans.push("tp_btf".into());
    }
    for plan in &plans {
        let plan = plan.as_str();
        let e = Exporter::start_with_env(&ns, &["--tools", "tcpretrans"], &[("NETBPF_PLAN", plan)]);
        let before = e.scrape();
        assert_eq!(
            before.value("netbpf_tool_up", &[("tool", "tcpretrans"), ("plan", plan)]),
            1.0
        );
        assert_eq!(before.total("netbpf_tcp_retransmits_total"), 0.0);
        assert_eq!(
            before
                .find("netbpf_tcp_loss_probes_total", &[("state", "ESTABLISHED")])
                .is_some(),
            plan != "tp_btf",
            "loss probes need a function hook"
        );
        let run = ns.loadgen(&["retrans", "--bytes", "65536"]);
        let sent_again = num(&run, "total_retrans") as f64;
        assert!(
            sent_again > 0.0,
            "a 64 KB burst through a 3000-byte queue must lose"
        );
        std::thread::sleep(Duration::from_millis(200));
        let m = e.scrape();
        // Exactly the segments the kernel says the client retransmitted, all while established:
        // those the events showed and those the socket counted beyond them (a retransmit the
        // local qdisc dropped has no event before Linux 6.15).
        assert_eq!(
            m.value("netbpf_tcp_retransmits_total", &[("state", "ESTABLISHED")]),
            sent_again,
            "{}",
            m.body
        );
        assert_eq!(m.total("netbpf_tcp_retransmits_total"), sent_again);
        e.stop();
    }
}

// ---------------------------------------------------------------- tcpconnlat

#[test]
fn connect_latency_histogram_counts_each_connect() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "tcpconnlat"]);
    let v4 = [("family", "ipv4")];
    let v6 = [("family", "ipv6")];
    assert_eq!(
        e.scrape()
            .histogram("netbpf_tcp_connect_latency_seconds", &v4)
            .count,
        0.0
    );
    ns.loadgen(&["connlat", "--count", "5"]);
    ns.loadgen(&["connlat", "--family", "6", "--count", "2"]);
    // Refused connects never complete: not counted.
    ns.loadgen(&["connect", "--port", "9", "--count", "2"]);
    std::thread::sleep(Duration::from_millis(200));
    let m = e.scrape();
    let h = m.histogram("netbpf_tcp_connect_latency_seconds", &v4);
    assert_eq!(h.count, 5.0, "{h:?}");
    // A loopback handshake: well under a second each, and more than nothing.
    assert!(h.sum > 0.0 && h.sum < 5.0, "{h:?}");
    assert_eq!(h.at(1.048576), 5.0, "{h:?}");
    // Connects can take minutes (SYN retries): buckets up to 2^27 us.
    assert_eq!(h.top(), 134.217728, "{h:?}");
    assert_eq!(
        m.histogram("netbpf_tcp_connect_latency_seconds", &v6).count,
        2.0
    );
    e.stop();
}

// ---------------------------------------------------------------- port labels

#[test]
fn port_labels_are_opt_in() {
    let ns = Netns::new();
    let with = Exporter::start(
        &ns,
        &["--tools", "tcplife,tcpconnlat,tcpsynbl", "--port-labels"],
    );
    let without = Exporter::start(&ns, &["--tools", "tcplife,tcpconnlat,tcpsynbl"]);
    let run = ns.loadgen(&["connlat", "--count", "4"]);
    let port = num(&run, "port").to_string();
    std::thread::sleep(Duration::from_millis(200));
    let m = with.scrape();
    let p = port.as_str();
    // The service port: remote for the clients, local for the server side.
    for dir in ["active", "passive"] {
        assert_eq!(
            m.value(
                "netbpf_tcp_connections_closed_total",
                &[("family", "ipv4"), ("direction", dir), ("port", p)]
            ),
            4.0,
            "{}",
            m.body
        );
    }
    assert_eq!(
        m.histogram(
            "netbpf_tcp_connect_latency_seconds",
            &[("family", "ipv4"), ("port", p)]
        )
        .count,
        4.0
    );
    assert_eq!(
        m.histogram(
            "netbpf_tcp_listen_backlog",
            &[("limit", "128"), ("port", p)]
        )
        .count,
        4.0
    );
    // Every series of these tools carries the port then; none does without the option.
    assert!(m
        .parsed
        .samples
        .iter()
        .filter(|s| s.metric.starts_with("netbpf_tcp_connection"))
        .all(|s| s.labels.get("port").is_some()));
    let plain = without.scrape();
    assert!(!plain.has_label("port"), "{}", plain.body);
    assert_eq!(
        plain.value(
            "netbpf_tcp_connections_closed_total",
            &[("family", "ipv4"), ("direction", "active")]
        ),
        4.0
    );
    with.stop();
    without.stop();
}

// ---------------------------------------------------------------- tcprtt

/// (count, sum in µs) of a tcprtt --json histogram.
fn tool_rtt(rows: &[Json]) -> u64 {
    rows.iter()
        .filter(|r| r["hist"] == "rtt_us")
        .map(|r| num(r, "count"))
        .sum()
}

#[test]
fn rtt_histogram_counts_every_sample() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "tcprtt"]);
    // The tool itself, as the reference: the same samples, counted by another program.
    let tool = Tool::start(&["tcprtt", "--json", "--netns", &ns.path()]);
    assert_eq!(
        e.scrape().histogram("netbpf_tcp_rtt_seconds", &[]).count,
        0.0
    );
    ns.loadgen(&["pingpong", "--rounds", "20", "--size", "100"]);
    std::thread::sleep(Duration::from_millis(200));
    let m = e.scrape();
    let h = m.histogram("netbpf_tcp_rtt_seconds", &[]);
    let reference = tool_rtt(&tool.stop().json());
    assert_eq!(h.count, reference as f64, "{h:?}");
    // Each round, each side received at least one segment.
    assert!(h.count >= 40.0, "{h:?}");
    // Loopback: a smoothed RTT well under a second.
    assert!(h.sum / h.count < 1.0, "{h:?}");
    e.stop();
}

// ---------------------------------------------------------------- tcpsynbl

#[test]
fn syn_backlog_histogram_and_drops() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "tcpsynbl"]);
    // Drops are seen through the drop reason TCP_LISTEN_OVERFLOW: not published where the
    // kernel has none (6.1), rather than as a constant 0.
    let drops_seen = kernel_has_listen_overflow_reason();
    let before = e.scrape();
    assert_eq!(
        before.find("netbpf_tcp_listen_drops_total", &[]).is_some(),
        drops_seen,
        "{}",
        before.body
    );
    let overflows = common::netstat_counter(&ns, "ListenOverflows") as f64;
    ns.loadgen(&[
        "synbl",
        "--backlog",
        "2",
        "--clients",
        "4",
        "--hold-ms",
        "600",
    ]);
    std::thread::sleep(Duration::from_millis(200));
    let m = e.scrape();
    // Three connections filled the backlog-2 queue (the kernel admits limit + 1): the queue was
    // 0, 1 and 2 long as each completed its handshake. Exact integer bounds: le=0, 1, 3.
    let h = m.histogram("netbpf_tcp_listen_backlog", &[("limit", "2")]);
    assert_eq!((h.at(0.0), h.at(1.0), h.at(3.0)), (1.0, 2.0, 3.0), "{h:?}");
    assert_eq!((h.count, h.sum), (3.0, 3.0), "{h:?}");
    assert_eq!(h.top(), 65535.0);
    // The delayed handshake reached a full queue: dropped, as the kernel counted it.
    let overflows = common::netstat_counter(&ns, "ListenOverflows") as f64 - overflows;
    assert!(overflows >= 1.0);
    if drops_seen {
        assert_eq!(
            m.value("netbpf_tcp_listen_drops_total", &[]),
            overflows,
            "{}",
            m.body
        );
    }
    e.stop();
}

// ---------------------------------------------------------------- skbdrop

#[test]
fn drops_by_reason() {
    if common::refused_here("skbdrop") || !common::drop_reasons_here("skbdrop") {
        return;
    }
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "skbdrop"]);
    let no_socket = |m: &Scrape| {
        m.find("netbpf_skb_drops_total", &[("reason", "NO_SOCKET")])
            .map_or(0.0, |_| {
                m.value("netbpf_skb_drops_total", &[("reason", "NO_SOCKET")])
            })
    };
    assert_eq!(no_socket(&e.scrape()), 0.0);
    // UDP to a port nobody has: each datagram is dropped for want of a socket.
    ns.loadgen(&[
        "udp-send", "--family", "4", "--count", "6", "--size", "100", "--port", "9",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(no_socket(&e.scrape()), 6.0);
    ns.loadgen(&[
        "udp-send", "--family", "6", "--count", "4", "--size", "100", "--port", "9",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    let m = e.scrape();
    assert_eq!(no_socket(&m), 10.0, "{}", m.body);
    assert_eq!(
        m.value("netbpf_lost_events_total", &[("tool", "skbdrop")]),
        0.0
    );
    e.stop();
}

// ---------------------------------------------------------------- socksize

#[test]
fn socket_io_size_histograms() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "socksize"]);
    let before = e.scrape();
    for d in ["read", "write"] {
        assert_eq!(
            before
                .histogram("netbpf_socket_io_size_bytes", &[("direction", d)])
                .count,
            0.0
        );
    }
    // 10 datagrams of 1000 bytes, each answered with 1 byte.
    let run = ns.loadgen(&["sockio", "--proto", "udp", "--msgs", "10", "--size", "1000"]);
    assert_eq!(run["client"]["sends"].as_array().unwrap().len(), 10);
    std::thread::sleep(Duration::from_millis(100));
    let m = e.scrape();
    // With the sock_{send,recv}_length tracepoints (6.3+) every call is seen. The fexit and
    // kretprobe plans hook sock_sendmsg, which net/socket.c also inlines into its callers
    // (6.1): sends can be missed there, never counted twice.
    let tracepoints = m
        .find(
            "netbpf_tool_up",
            &[("tool", "socksize"), ("plan", "tp_btf")],
        )
        .is_some();
    if !tracepoints {
        let h = m.histogram("netbpf_socket_io_size_bytes", &[("direction", "write")]);
        assert!(h.count <= 20.0, "{h:?}");
    }
    let dirs: &[&str] = if tracepoints {
        &["read", "write"]
    } else {
        &["read"]
    };
    for &d in dirs {
        let h = m.histogram("netbpf_socket_io_size_bytes", &[("direction", d)]);
        assert_eq!(h.count, 20.0, "{d}: {h:?}");
        assert_eq!(h.sum, 10.0 * 1001.0, "{d}: {h:?}");
        // Exact integer bounds: 1 byte is in le=1, 1000 bytes in (511, 1023].
        assert_eq!((h.at(0.0), h.at(1.0)), (0.0, 10.0), "{d}: {h:?}");
        assert_eq!((h.at(511.0), h.at(1023.0)), (10.0, 20.0), "{d}: {h:?}");
        assert_eq!(h.top(), 134217727.0);
    }
    e.stop();
}

// ---------------------------------------------------------------- qdisc

/// The plan qdisc takes for `kind` here: the tracepoints on the host; on stock kernels fexit on
/// the kind's functions, or kprobes where they are in a module without BTF (before 5.11).
fn qdisc_plan(kind: &str) -> &'static str {
    if !stock_kernel() {
        "tp_btf"
    } else if common::btf_names(&format!("{kind}_enqueue"))
        || std::path::Path::new("/sys/kernel/btf")
            .join(format!("sch_{kind}"))
            .exists()
    {
        "fexit"
    } else {
        "kprobe"
    }
}

#[test]
fn qdisc_latency_histogram_times_every_queued_packet() {
    let ns = Netns::new();
    // lo gets a 1 Mbit/s tbf: 60 datagrams of 1000 bytes sent at once take ~0.5 s to drain.
    ns_run(
        &ns,
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "1600", "limit",
            "100000",
        ],
    );
    let e = Exporter::start(&ns, &["--tools", "qdisc", "--qdisc-kinds", "tbf"]);
    let before = e.scrape();
    let plan = &format!("tbf:{}", qdisc_plan("tbf"));
    assert_eq!(
        before.value("netbpf_tool_up", &[("tool", "qdisc"), ("plan", plan)]),
        1.0,
        "{}",
        before.body
    );
    assert_eq!(
        before
            .histogram("netbpf_qdisc_latency_seconds", &[("kind", "tbf")])
            .count,
        0.0
    );
    let run = ns.loadgen(&["udp-burst", "--count", "60", "--size", "1000"]);
    assert_eq!(run["received"], 60);
    let m = e.scrape();
    let h = m.histogram("netbpf_qdisc_latency_seconds", &[("kind", "tbf")]);
    let untimed = m.value("netbpf_qdisc_untimed_packets_total", &[("kind", "tbf")]);
    // Dequeues the kernel did not hand to the programs are found from the qdisc's own counters
    // and counted as untimed: every datagram is one or the other, once.
    assert_eq!(
        h.count + untimed,
        60.0,
        "every datagram, once: {h:?}, {untimed} untimed"
    );
    // At 125 bytes per ms the last of ~60 KB waits ~0.5 s: some wait more than 64 ms, none 2 s.
    assert!(h.at(0.065536) < h.count, "{h:?}");
    assert_eq!(h.at(2.097152), h.count, "{h:?}");
    assert!(h.sum > 1.0 && h.sum < 60.0, "{h:?}");
    e.stop();
}

// ---------------------------------------------------------------- gethostlatency

#[test]
fn dns_lookup_latency_by_function() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "gethostlatency"]);
    let f = |name: &'static str| [("function", name)];
    assert_eq!(
        e.scrape()
            .histogram("netbpf_dns_lookup_latency_seconds", &f("getaddrinfo"))
            .count,
        0.0
    );
    let run = ns.loadgen(&[
        "resolve",
        "--name",
        "localhost",
        "--getaddrinfo",
        "3",
        "--gethostbyname",
        "1",
        "--gethostbyname2",
        "1",
        "--gethostbyname-r",
        "2",
    ]);
    assert_eq!(
        run["ok"],
        serde_json::json!({"getaddrinfo":3,"gethostbyname":1,"gethostbyname2":1,"gethostbyname_r":2})
    );
    let m = e.scrape();
    let count = |name| {
        m.histogram("netbpf_dns_lookup_latency_seconds", &f(name))
            .count
    };
    assert_eq!(count("getaddrinfo"), 3.0);
    // gethostbyname's own call of gethostbyname_r is part of it, not a lookup of its own.
    assert_eq!(count("gethostbyname"), 1.0);
    assert_eq!(count("gethostbyname2"), 1.0);
    assert_eq!(count("gethostbyname_r"), 2.0);
    let h = m.histogram("netbpf_dns_lookup_latency_seconds", &f("getaddrinfo"));
    assert!(h.sum > 0.0 && h.sum < 30.0, "{h:?}");
    assert_eq!(h.top(), 67.108864);
    e.stop();
}

// ---------------------------------------------------------------- dnslat

/// dnsmasq in the namespace, asked by dig over IPv4 and IPv6 for a name it has (NOERROR) and one
/// under its NXDOMAIN zone: each response once, under its rcode and resolver; each query counted
/// under its resolver.
#[test]
fn dns_response_latency_by_rcode_and_resolver() {
    let ns = Netns::new();
    let resolver = common::dns::dnsmasq(&ns);
    let e = Exporter::start(&ns, &["--tools", "dnslat"]);
    let dig = |server: &str, name: &str, qtype: &str| {
        ns_run(&ns, "dig", &[server, "+tries=1", name, qtype]);
    };
    dig("@127.0.0.1", "web.test", "A");
    dig("@127.0.0.1", "web.test", "A");
    dig("@127.0.0.1", "gone.nx.test", "A");
    dig("@::1", "web.test", "AAAA");
    let m = e.scrape();
    let h = |rcode, resolver| {
        m.histogram(
            "netbpf_dns_response_latency_seconds",
            &[("rcode", rcode), ("resolver", resolver)],
        )
    };
    let (ok4, nx4, ok6) = (
        h("NOERROR", "127.0.0.1"),
        h("NXDOMAIN", "127.0.0.1"),
        h("NOERROR", "::1"),
    );
    assert_eq!(
        (ok4.count, nx4.count, ok6.count),
        (2.0, 1.0, 1.0),
        "{}",
        m.body
    );
    for h in [&ok4, &nx4, &ok6] {
        // On loopback, from a local dnsmasq: well under a second each.
        assert!(h.sum > 0.0 && h.sum < h.count, "{h:?}");
        assert_eq!(h.top(), 8.388608);
    }
    let queries = |resolver| m.value("netbpf_dns_queries_total", &[("resolver", resolver)]);
    assert_eq!(
        (queries("127.0.0.1"), queries("::1")),
        (3.0, 1.0),
        "{}",
        m.body
    );
    resolver.stop();
    e.stop();
}

// ---------------------------------------------------------------- configuration, errors

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the exporter with `args`; it must fail with `code` and say `msg`.
fn refused(args: &[&str], code: i32, msg: &str) {
    let o = netbpf(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(msg), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn bad_setups_fail_at_start() {
    refused(
        &["exporter", "--tools", "tcplife,nosuchtool"],
        2,
        "tool 'nosuchtool' cannot be exported: no such tool",
    );
    refused(
        &["exporter", "--tools", "tcptop"],
        2,
        "tool 'tcptop' cannot be exported: the exporter does not read it",
    );
    refused(
        &["exporter", "--tools", "tcplife,tcpstates,tcplife"],
        2,
        "tool 'tcplife' is listed twice",
    );
    refused(&["exporter", "--tools", ""], 2, "the list is empty");
    for bad in ["foo", "127.0.0.1", ":99999", "127.0.0.1:http"] {
        refused(
            &["exporter", "--listen", bad],
            2,
            &format!("--listen '{bad}' is not an ADDRESS:PORT"),
        );
    }
    refused(
        &["exporter", "--tools", "tcplife", "--qdisc-kinds", "tbf"],
        2,
        "the qdisc tool is not exported",
    );
    // A kind this kernel does not have, asked for by name.
    refused(
        &[
            "exporter",
            "--tools",
            "qdisc",
            "--qdisc-kinds",
            "nosuchkind",
        ],
        2,
        "qdisc nosuchkind is not supported on this kernel: not built in",
    );
    refused(
        &["exporter", "--tools", "qdisc", "--qdisc-kinds", "Bad/Kind"],
        2,
        "'Bad/Kind' is not a qdisc kind",
    );

    let dir = std::env::temp_dir().join(format!("netbpf-exporter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let bad = write(
        "bad.toml",
        "listen = \"127.0.0.1:1\"\ntool = [\"tcplife\"]\n",
    );
    refused(
        &["exporter", "--config", &bad],
        2,
        &format!("config {bad}:2:1: unknown field `tool`"),
    );
    let typed = write(
        "typed.toml",
        "listen = \"127.0.0.1:1\"\ntools = [\"tcplife\", 5]\n",
    );
    refused(
        &["exporter", "--config", &typed],
        2,
        &format!("config {typed}:2:21: invalid type: integer `5`, expected a string"),
    );
    let dup = write("dup.toml", "tools = [\"tcpstates\", \"tcpstates\"]\n");
    refused(
        &["exporter", "--config", &dup],
        2,
        "tool 'tcpstates' is listed twice",
    );
    let missing = dir.join("missing.toml");
    refused(
        &["exporter", "--config", missing.to_str().unwrap()],
        2,
        "No such file or directory",
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A port in use: refused before anything is loaded.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    refused(
        &["exporter", "--listen", &addr],
        1,
        &format!("cannot listen on {addr}: Address already in use"),
    );
}

#[test]
fn config_file_with_command_line_overrides() {
    let ns = Netns::new();
    // The shipped config (127.0.0.1:9435), with --listen and --netns given on the command line.
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/exporter.toml");
    let e = Exporter::start(&ns, &["--config", config]);
    let m = e.scrape();
    let up: Vec<&str> = m
        .parsed
        .samples
        .iter()
        .filter(|s| s.metric == "netbpf_tool_up")
        .map(|s| s.labels.get("tool").unwrap())
        .collect();
    assert_eq!(
        up,
        [
            "tcplife",
            "tcpstates",
            "tcpretrans",
            "tcpconnlat",
            "tcprtt",
            "tcpsynbl",
            "skbdrop",
            "socksize",
            "qdisc"
        ]
    );
    assert!(
        !m.parsed
            .samples
            .iter()
            .any(|s| s.metric.starts_with("netbpf_dns")),
        "{}",
        m.body
    );
    ns.loadgen(&["exchange", "--client-send", "10"]);
    std::thread::sleep(Duration::from_millis(200));
    let m = e.scrape();
    assert_eq!(
        m.value(
            "netbpf_tcp_connections_closed_total",
            &[("family", "ipv4"), ("direction", "active")]
        ),
        1.0
    );
    e.stop();

    // A config of its own: port labels and a tool list.
    let dir = std::env::temp_dir().join(format!("netbpf-exporter-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("exporter.toml");
    std::fs::write(&path, "tools = [\"tcpconnlat\"]\nport_labels = true\n").unwrap();
    let e = Exporter::start(&ns, &["--config", path.to_str().unwrap()]);
    let run = ns.loadgen(&["connlat", "--count", "2"]);
    std::thread::sleep(Duration::from_millis(200));
    let port = num(&run, "port").to_string();
    assert_eq!(
        e.scrape()
            .histogram(
                "netbpf_tcp_connect_latency_seconds",
                &[("family", "ipv4"), ("port", &port)]
            )
            .count,
        2.0
    );
    e.stop();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_tool_set_skips_what_cannot_run() {
    let ns = Netns::new();
    // NETBPF_PLAN=uprobe leaves every tool without a usable plan but gethostlatency.
    let e = Exporter::start_with_env(&ns, &[], &[("NETBPF_PLAN", "uprobe")]);
    let m = e.scrape();
    assert_eq!(
        m.value(
            "netbpf_tool_up",
            &[("tool", "gethostlatency"), ("plan", "uprobe")]
        ),
        1.0
    );
    for tool in ["tcplife", "tcpretrans", "skbdrop", "qdisc"] {
        assert_eq!(
            m.value("netbpf_tool_up", &[("tool", tool), ("plan", "unsupported")]),
            0.0,
            "{}",
            m.body
        );
    }
    assert!(
        !m.parsed
            .samples
            .iter()
            .any(|s| s.metric.starts_with("netbpf_tcp_")),
        "{}",
        m.body
    );
    let skipped = e.stop();
    assert!(
        skipped
            .contains("netbpf exporter: skipping tcplife: tcplife is not supported on this kernel"),
        "{skipped}"
    );
    // Asked for by name, the same tool is an error.
    let o = netbpf_with_env(
        &["exporter", "--tools", "tcplife,gethostlatency"],
        &[("NETBPF_PLAN", "uprobe")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tcplife is not supported on this kernel"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn shipped_scrape_config_and_dashboard_are_valid() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let dash: Json = serde_json::from_str(
        &std::fs::read_to_string(format!("{dir}/contrib/grafana-dashboard.json")).unwrap(),
    )
    .expect("dashboard JSON");
    let exprs: Vec<&str> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    // Every metric the dashboard asks for is one the exporter publishes.
    let names = [
        "netbpf_tcp_connections_opened_total",
        "netbpf_tcp_connections_closed_total",
        "netbpf_tcp_connect_failures_total",
        "netbpf_tcp_connection_duration_seconds_bucket",
        "netbpf_tcp_connection_tx_bytes_total",
        "netbpf_tcp_connection_rx_bytes_total",
        "netbpf_tcp_state_transitions_total",
        "netbpf_tcp_retransmits_total",
        "netbpf_tcp_connect_latency_seconds_bucket",
        "netbpf_tcp_rtt_seconds_bucket",
        "netbpf_tcp_listen_backlog_bucket",
        "netbpf_tcp_listen_drops_total",
        "netbpf_skb_drops_total",
        "netbpf_socket_io_size_bytes_bucket",
        "netbpf_qdisc_latency_seconds_bucket",
        "netbpf_dns_lookup_latency_seconds_bucket",
        "netbpf_tool_up",
        "netbpf_lost_events_total",
        "netbpf_scrape_duration_seconds",
    ];
    for n in names {
        assert!(exprs.iter().any(|e| e.contains(n)), "no panel uses {n}");
    }
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if word.starts_with("netbpf_") {
                assert!(names.contains(&word), "{word} in {e} is not published");
            }
        }
    }
    let promtool = Path::new(PROMETHEUS).with_file_name("promtool");
    if promtool.exists() {
        let tmp = std::env::temp_dir().join(format!("netbpf-scrape-{}.yml", std::process::id()));
        let snippet =
            std::fs::read_to_string(format!("{dir}/contrib/prometheus-scrape.yml")).unwrap();
        std::fs::write(&tmp, format!("scrape_configs:\n{snippet}")).unwrap();
        let o = Command::new(&promtool)
            .args(["check", "config"])
            .arg(&tmp)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&tmp);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    }
}

// ---------------------------------------------------------------- a real Prometheus

#[test]
fn a_real_prometheus_scrapes_the_series() {
    let ns = Netns::new();
    let e = Exporter::start(&ns, &["--tools", "tcplife,tcpstates,tcpconnlat"]);
    let prom = Prometheus::scraping(e.port);
    exchanges(&ns, 2);

    let v4a = "{family=\"ipv4\",direction=\"active\"}";
    prom.wait(&format!("netbpf_tcp_connections_closed_total{v4a}"), 2.0);
    prom.wait(
        &format!("netbpf_tcp_connection_duration_seconds_count{v4a}"),
        2.0,
    );
    prom.wait(
        &format!("netbpf_tcp_connection_tx_bytes_total{v4a}"),
        20000.0,
    );
    prom.wait(
        "netbpf_tcp_connect_latency_seconds_count{family=\"ipv4\"}",
        2.0,
    );
    prom.wait(
        "netbpf_tcp_state_transitions_total{from=\"ESTABLISHED\",to=\"FIN_WAIT1\"}",
        2.0,
    );
    prom.wait("netbpf_tool_up{tool=\"tcpconnlat\"}", 1.0);
    // Prometheus asks for OpenMetrics and parses it: its own parser accepted every scrape.
    prom.wait("netbpf_scrapes_total{format=\"openmetrics\"} > bool 0", 1.0);
    // The buckets make quantiles: every session lasted 30 ms or a little more.
    let p50 = prom
        .query(&format!(
            "histogram_quantile(0.5, netbpf_tcp_connection_duration_seconds_bucket{v4a})"
        ))
        .expect("a quantile");
    assert!((0.016384..=1.048576).contains(&p50), "p50 {p50}");
    drop(prom);
    e.stop();
}
