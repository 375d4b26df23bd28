//! `netbpf exporter`: real traffic in a private netns, scraped over HTTP, parsed with a real
//! exposition-format parser, and scraped by a real Prometheus server.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{netbpf, Netns, Tool};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET over a plain socket; returns (head, body).
fn get(port: u16, path: &str, accept: &str) -> (String, String) {
    try_get(port, path, accept).unwrap_or_else(|| panic!("GET 127.0.0.1:{port}{path} failed"))
}

/// GET that tolerates a server not (yet) listening.
fn try_get(port: u16, path: &str, accept: &str) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let (head, body) = resp.split_once("\r\n\r\n")?;
    Some((head.to_string(), body.to_string()))
}

fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (head, body) = get(port, "/metrics", "text/plain");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {metric}{labels:?}"));
    match &s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("{metric}: {other:?}"),
    }
}

fn histogram(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Vec<(f64, f64)> {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no histogram {metric}{labels:?}"));
    match &s.value {
        prometheus_parse::Value::Histogram(h) => h.iter().map(|b| (b.less_than, b.count)).collect(),
        other => panic!("{metric}: {other:?}"),
    }
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

#[test]
fn counters_and_histograms_move_by_what_the_traffic_did() {
    let ns = Netns::new();
    let port = free_port();
    let exporter = Tool::start(&[
        "exporter",
        "--netns",
        &ns.path(),
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let before = scrape(port);
    assert_eq!(
        value(
            &before,
            "netbpf_tcp_sessions_closed_total",
            &[("family", "ipv4")]
        ),
        0.0
    );
    assert_eq!(
        value(&before, "netbpf_tool_up", &[("tool", "tcplife")]),
        1.0
    );
    assert_eq!(value(&before, "netbpf_build_info", &[]), 1.0);

    exchanges(&ns, 3);
    ns.loadgen(&["exchange", "--family", "6", "--client-send", "100"]);
    std::thread::sleep(Duration::from_millis(200));
    let m = scrape(port);
    // 3 exchanges, 2 sessions each (client and server side).
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_sessions_closed_total",
            &[("family", "ipv4")]
        ),
        6.0
    );
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_sessions_closed_total",
            &[("family", "ipv6")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_session_tx_bytes_total",
            &[("family", "ipv4")]
        ),
        45000.0
    );
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_session_rx_bytes_total",
            &[("family", "ipv4")]
        ),
        45000.0
    );
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_session_tx_bytes_total",
            &[("family", "ipv6")]
        ),
        100.0
    );
    let buckets = histogram(
        &m,
        "netbpf_tcp_session_duration_seconds",
        &[("family", "ipv4")],
    );
    let inf = buckets.iter().find(|b| b.0.is_infinite()).unwrap().1;
    assert_eq!(inf, 6.0, "{buckets:?}");
    // Each session was held 30 ms: none shorter than 16 ms, all within 4 s.
    let at = |le: f64| buckets.iter().find(|b| (b.0 - le).abs() < 1e-9).unwrap().1;
    assert_eq!(at(0.016384), 0.0, "{buckets:?}");
    assert_eq!(at(4.194304), 6.0, "{buckets:?}");
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_connections_opened_total",
            &[("direction", "active")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_connections_opened_total",
            &[("direction", "passive")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &m,
            "netbpf_tcp_state_transitions_total",
            &[("from", "ESTABLISHED"), ("to", "FIN_WAIT1")]
        ),
        4.0
    );

    let (head, body) = get(
        port,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(get(port, "/nope", "*/*").0.starts_with("HTTP/1.1 404"));
    let f = exporter.stop();
    assert!(f.status.success(), "{}", f.stderr);
}

#[test]
fn drops_every_capability_but_cap_bpf() {
    let port = free_port();
    let exporter = Tool::start(&[
        "exporter",
        "--tools",
        "tcpstates",
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]);
    let pid = common::tool_pid(&exporter);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cap = |name: &str| {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim();
        u64::from_str_radix(v, 16).unwrap()
    };
    assert_eq!(cap("CapEff:"), 1 << 39, "{status}");
    assert_eq!(cap("CapPrm:"), 1 << 39);
    assert_eq!(cap("CapBnd:"), 1 << 39);
    assert!(status.contains("NoNewPrivs:\t1"));
    // Still serving after the drop.
    let m = scrape(port);
    assert_eq!(value(&m, "netbpf_tool_up", &[("tool", "tcpstates")]), 1.0);
    exporter.stop();
}

#[test]
fn bad_setups_fail_at_start() {
    let o = netbpf(&["exporter", "--tools", "tcplife,nosuchtool"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tool 'nosuchtool' cannot be exported"));

    let dir = std::env::temp_dir().join(format!("netbpf-exporter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:1\"\ntool = [\"tcplife\"]\n").unwrap();
    let o = netbpf(&["exporter", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown field `tool`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = netbpf(&[
        "exporter",
        "--config",
        dir.join("missing.toml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = netbpf(&["exporter", "--listen", &addr]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("cannot listen on {addr}")));
}

const PROMETHEUS: &str = "/var/cache/netbpf/prometheus/usr/bin/prometheus";

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks Prometheus for an instant query; the value of the first series, if any.
fn prom_query(port: u16, query: &str) -> Option<f64> {
    let q: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (_, body) = try_get(
        port,
        &format!("/api/v1/query?query={q}"),
        "application/json",
    )?;
    // The body may be chunked: the JSON object is between the first '{' and the last '}'.
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_series() {
    if !Path::new(PROMETHEUS).exists() {
        eprintln!("SKIPPED a_real_prometheus_scrapes_the_series: {PROMETHEUS} missing (scripts/install-deps.sh fetches it)");
        return;
    }
    let ns = Netns::new();
    let (exp_port, prom_port) = (free_port(), free_port());
    let exporter = Tool::start(&[
        "exporter",
        "--netns",
        &ns.path(),
        "--listen",
        &format!("127.0.0.1:{exp_port}"),
    ]);
    let dir = std::env::temp_dir().join(format!("netbpf-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: netbpf\n    static_configs:\n      - targets: ['127.0.0.1:{exp_port}']\n"),
    )
    .unwrap();
    let prom = KillOnDrop(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    exchanges(&ns, 2);

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        last = prom_query(
            prom_port,
            "netbpf_tcp_sessions_closed_total{family=\"ipv4\"}",
        );
        if last == Some(4.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        last,
        Some(4.0),
        "Prometheus never saw the 4 closed sessions"
    );
    assert_eq!(prom_query(prom_port, "up{job=\"netbpf\"}"), Some(1.0));
    assert_eq!(
        prom_query(
            prom_port,
            "netbpf_tcp_session_duration_seconds_count{family=\"ipv4\"}"
        ),
        Some(4.0)
    );
    assert_eq!(
        prom_query(
            prom_port,
            "netbpf_tcp_session_tx_bytes_total{family=\"ipv4\"}"
        ),
        Some(30000.0)
    );
    drop(prom);
    exporter.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
