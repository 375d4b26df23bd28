//! `netbpf exporter`: the tools' in-kernel aggregations as Prometheus metrics.
//!
//! Each exported tool loads its BPF object once in exporter mode (the kernel sums into small
//! maps of low-cardinality series; no ring buffer) and its source reads those maps at every
//! scrape. Secure by default: listens on loopback; binds first (a port in use fails before
//! anything is loaded), loads and attaches, drops every capability while still single-threaded,
//! and only then starts the HTTP server's threads.

mod http;
mod metrics;
mod names;
mod privs;
mod seccomp;
pub mod sources;

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::Parser;
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::core::cli::Filters;
use crate::core::error::Unsupported;
use crate::core::run::Run;
use crate::usage;

pub use sources::EXPORTABLE;
use sources::{Ctx, Exportable, Loaded};

const EXAMPLES: &str = "\
Examples:
  netbpf exporter                               # every exportable tool on 127.0.0.1:9435
  netbpf exporter --tools tcplife,tcpretrans    # only these
  netbpf exporter --port-labels                 # also a port label (cardinality: think twice)
  netbpf exporter --labels container,pod,namespace   # per container (tcplife, tcpretrans,
                                                     # tcpconnlat), at most --label-cap each
  netbpf exporter --tools qdisc --qdisc-kinds fq_codel,tbf
  netbpf exporter --listen 0.0.0.0:9435         # reachable from other hosts (think twice)
  netbpf exporter --config /etc/netbpf/exporter.toml

Config file (TOML; command-line options win):
  listen = \"127.0.0.1:9435\"
  tools = [\"tcplife\", \"tcpstates\"]
  netns = \"/run/netns/web\"     # optional: only this network namespace
  port_labels = false
  labels = [\"container\"]      # container, pod, namespace
  label_cap = 100
  qdisc_kinds = [\"fq_codel\"]   # default: the kernel's net.core.default_qdisc

Without --tools, a tool this kernel cannot run is skipped (a note on stderr, netbpf_tool_up 0);
a tool asked for by name that cannot run is an error.";

#[derive(Parser, Debug)]
#[command(name = "exporter", about = "Serve the tools' in-kernel aggregations as Prometheus metrics", after_help = EXAMPLES)]
struct Opts {
    /// Address to listen on
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Comma-separated tools to export (default: every exportable one this kernel can run)
    #[arg(long, value_name = "TOOLS", value_delimiter = ',')]
    tools: Option<Vec<String>>,
    /// TOML config file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only this network namespace (cookie or path)
    #[arg(long, value_name = "NETNS")]
    netns: Option<String>,
    /// Add a port label (service port) to the metrics that have one
    #[arg(long)]
    port_labels: bool,
    /// Add these labels (container, pod, namespace) to the series the kernel keys by the
    /// socket's cgroup (tcplife, tcpretrans, tcpconnlat)
    #[arg(long, value_name = "LABELS", value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// At most N label sets of --labels per metric; the rest are summed in one "other" series
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    label_cap: Option<u32>,
    /// Qdisc kinds the qdisc tool times (default: the kernel's default_qdisc)
    #[arg(long, value_name = "KINDS", value_delimiter = ',')]
    qdisc_kinds: Option<Vec<String>>,
    /// Stop after SECS seconds (default: until SIGINT/SIGTERM)
    #[arg(short = 'd', long = "duration", value_name = "SECS", value_parser = crate::core::cli::parse_duration)]
    duration: Option<Duration>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    listen: Option<String>,
    tools: Option<Vec<String>>,
    netns: Option<String>,
    port_labels: Option<bool>,
    labels: Option<Vec<String>>,
    label_cap: Option<u32>,
    qdisc_kinds: Option<Vec<String>>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:9435";

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// A config file is small: anything bigger is not one (a device, a log given by mistake).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

fn read_config(path: &std::path::Path) -> anyhow::Result<Config> {
    let text = crate::core::input::read_small_file(path, MAX_CONFIG_BYTES)
        .map_err(|e| usage!("config {}: {e}", path.display()))?;
    toml::from_str::<Config>(&text).map_err(|e| {
        let at = e.span().map(|s| line_col(&text, s.start));
        let msg = e.message().trim_end().replace('\n', " ");
        match at {
            Some((line, col)) => usage!("config {}:{line}:{col}: {msg}", path.display()),
            None => usage!("config {}: {msg}", path.display()),
        }
    })
}

/// The tools asked for, checked: every name exportable, none twice.
fn check_tools(tools: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = EXPORTABLE.iter().map(|s| s.name).collect();
    if tools.iter().all(|t| t.is_empty()) {
        return Err(usage!(
            "no tools to export: the list is empty (exportable: {})",
            names.join(", ")
        ));
    }
    for (i, t) in tools.iter().enumerate() {
        if t.is_empty() {
            return Err(usage!(
                "an empty tool name in the list (exportable: {})",
                names.join(", ")
            ));
        }
        if !names.contains(&t.as_str()) {
            let why = if crate::tools::find(t).is_some() {
                "the exporter does not read it"
            } else {
                "no such tool"
            };
            return Err(usage!(
                "tool '{t}' cannot be exported: {why} (exportable: {})",
                names.join(", ")
            ));
        }
        if tools[..i].contains(t) {
            return Err(usage!("tool '{t}' is listed twice"));
        }
    }
    Ok(())
}

/// `--labels` and `--label-cap`, checked; starts the naming helper (before anything else runs:
/// it forks).
fn cgroup_labels(
    labels: Option<Vec<String>>,
    cap: Option<u32>,
) -> anyhow::Result<Option<Arc<sources::CgroupLabels>>> {
    let Some(labels) = labels else {
        if cap.is_some() {
            return Err(usage!("--label-cap needs --labels"));
        }
        return Ok(None);
    };
    let known = sources::CgroupLabel::ALL;
    let listed = || known.map(|(n, _)| n).join(", ");
    let mut chosen = Vec::new();
    for l in labels.iter().map(|l| l.trim()) {
        let Some((_, label)) = known.iter().find(|(n, _)| *n == l) else {
            return Err(usage!("--labels: no label '{l}' (labels: {})", listed()));
        };
        if chosen.contains(label) {
            return Err(usage!("--labels: '{l}' is listed twice"));
        }
        chosen.push(*label);
    }
    if chosen.is_empty() {
        return Err(usage!("--labels: the list is empty (labels: {})", listed()));
    }
    crate::core::cgroup::v2_mount().map_err(|e| usage!("--labels: {e}"))?;
    Ok(Some(Arc::new(sources::CgroupLabels {
        labels: chosen,
        cap: cap.map_or(sources::DEFAULT_LABEL_CAP, |c| c as usize),
        names: names::spawn()?,
    })))
}

fn listen_addrs(listen: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| usage!("--listen '{listen}' is not an ADDRESS:PORT: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(usage!("--listen '{listen}' names no address"));
    }
    Ok(addrs)
}

pub fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let config = match &o.config {
        Some(path) => read_config(path)?,
        None => Config::default(),
    };
    let listen = o
        .listen
        .or(config.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let addrs = listen_addrs(&listen)?;
    let explicit = o.tools.is_some() || config.tools.is_some();
    let tools: Vec<String> = o
        .tools
        .or(config.tools)
        .map(|t| t.into_iter().map(|s| s.trim().to_string()).collect())
        .unwrap_or_else(|| EXPORTABLE.iter().map(|s| s.name.to_string()).collect());
    check_tools(&tools)?;
    let qdisc_kinds = o.qdisc_kinds.or(config.qdisc_kinds);
    if qdisc_kinds.is_some() && !tools.iter().any(|t| t == "qdisc") {
        return Err(usage!("--qdisc-kinds: the qdisc tool is not exported"));
    }
    let qdisc_kinds = match qdisc_kinds {
        Some(k) if k.is_empty() => return Err(usage!("--qdisc-kinds: the list is empty")),
        Some(k) => k,
        None => vec![std::fs::read_to_string("/proc/sys/net/core/default_qdisc")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "pfifo_fast".into())],
    };
    let netns = o.netns.or(config.netns);
    let duration = o.duration;
    let cgroup_labels =
        cgroup_labels(o.labels.or(config.labels), o.label_cap.or(config.label_cap))?;

    let common = crate::core::cli::Common {
        netns,
        json: false,
        duration,
        ..Default::default()
    };
    let ctx = sources::Ctx {
        filters: Filters::new(&common)?,
        ports: o.port_labels || config.port_labels.unwrap_or(false),
        qdisc_kinds,
        cgroups: cgroup_labels,
    };
    crate::core::bpf::preflight("exporter")?;

    // Bind first: a port in use is an error before anything is loaded.
    let listener =
        TcpListener::bind(&addrs[..]).map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    http::deepen_backlog(&listener).map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;

    let specs: Vec<&Exportable> = tools
        .iter()
        .map(|name| EXPORTABLE.iter().find(|s| s.name == name).unwrap())
        .collect();
    let Some(results) = load_side_by_side(&specs, &ctx) else {
        return Ok(()); // SIGINT/SIGTERM while loading
    };
    let mut exported = Vec::new();
    let mut keepalive = Vec::new();
    for (spec, result) in specs.iter().zip(results) {
        let name = spec.name;
        match result {
            Ok(loaded) => {
                keepalive.push(loaded.keepalive);
                exported.push(metrics::Exported {
                    name: spec.name,
                    plan: loaded.plan,
                    source: Some(loaded.source),
                });
            }
            Err(e) if !explicit && e.downcast_ref::<Unsupported>().is_some() => {
                eprintln!("netbpf exporter: skipping {name}: {e}");
                exported.push(metrics::Exported {
                    name: spec.name,
                    plan: String::new(),
                    source: None,
                });
            }
            Err(e) => return Err(e.context(format!("exporter: {name}"))),
        }
    }
    let attached: Vec<&str> = exported
        .iter()
        .filter(|t| t.source.is_some())
        .map(|t| t.name)
        .collect();
    if attached.is_empty() {
        return Err(Unsupported::new("exporter", "none of the tools can run here").into());
    }
    let run = Run::new("exporter", common.duration);
    if run.should_stop() {
        return Ok(());
    }
    let limits = http::Limits::for_fd_limit();
    // Loading is over: what it freed goes back to the kernel.
    crate::core::mem::release_setup_memory();

    let dropped = privs::drop_privileges()?;
    if let Some(user) = &dropped.user {
        eprintln!("netbpf exporter: running as {user} (root is not needed to read the maps)");
    }
    seccomp::install().map_err(|e| anyhow!("installing the seccomp filter: {e:#}"))?;
    if !bound.ip().is_loopback() {
        eprintln!(
            "netbpf exporter: warning: listening on {bound}, reachable from other hosts: the \
             metrics describe this host's traffic"
        );
    }
    if dropped.kept_bpf {
        eprintln!("netbpf exporter: this kernel needs CAP_BPF to read maps: kept (only that)");
    }
    eprintln!(
        "Tracing for the exporter: {} on http://{bound}/metrics",
        attached.join(",")
    );

    let metrics = Arc::new(metrics::Metrics::new(exported));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(metrics.clone()));
    let served = http::serve(
        listener,
        &limits,
        |req| respond(req, &registry, &metrics),
        || run.should_stop(),
    );
    served.map_err(|e| anyhow!("exporter: cannot serve on {bound}: {e:#}"))?;
    // The kernel detaches and frees everything at exit; dropping the skeletons one by one
    // first only makes the exit slower.
    std::mem::forget(keepalive);
    Ok(())
}

/// Loads the tools' objects on as many threads as there are CPUs (at most one per tool): most
/// of a load is CPU in libbpf (CO-RE relocation against kernel BTF) and in the verifier, per
/// object, so the start shrinks with the CPUs. Results come back in `specs`' order; `None` when
/// a SIGINT/SIGTERM came while loading (no further load starts then). The threads are joined
/// before this returns: privileges are dropped single-threaded.
fn load_side_by_side(specs: &[&Exportable], ctx: &Ctx) -> Option<Vec<anyhow::Result<Loaded>>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(specs.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<anyhow::Result<Loaded>>>> =
        specs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if i >= specs.len() || crate::core::run::stopping() {
            return;
        }
        let loaded = (specs[i].load)(ctx);
        *slots[i].lock().unwrap() = Some(loaded);
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            std::thread::Builder::new()
                .name("netbpf-load".into())
                .spawn_scoped(scope, work)
                .expect("spawning a loading thread");
        }
        work();
    });
    slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap())
        .collect()
}

/// Whether an Accept header prefers OpenMetrics to the classic text format (q-values honoured).
fn wants_openmetrics(accept: &str) -> bool {
    let (mut om, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .next()
            .and_then(|q| q.trim().parse().ok())
            .unwrap_or(1.0f32);
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    om > 0.0 && om >= text
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn respond(req: &http::Request, registry: &Registry, metrics: &metrics::Metrics) -> http::Response {
    let path = req.path;
    if path == "/metrics" || path.starts_with("/metrics?") {
        let om = req.accept.is_some_and(wants_openmetrics);
        let mut body = String::with_capacity(32 * 1024);
        let (format, content_type) = if om {
            (metrics::Format::OpenMetrics, OPENMETRICS)
        } else {
            (metrics::Format::Text, prometheus_text::CONTENT_TYPE)
        };
        metrics.scraped(format);
        let encoded = if om {
            text::encode(&mut body, registry)
        } else {
            prometheus_text::encode(&mut body, registry)
        };
        match encoded {
            Ok(()) => http::Response {
                status: 200,
                content_type,
                body: body.into_bytes(),
            },
            Err(_) => http::Response::text(500, "encoding failed\n"),
        }
    } else if path == "/" {
        http::Response::text(200, "netbpf exporter: metrics at /metrics\n")
    } else {
        http::Response::text(404, "not found\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        // Prometheus 2.x's scrape header.
        assert!(wants_openmetrics("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;q=0, text/plain"
        ));
        assert!(!wants_openmetrics(
            "application/openmetrics-text;q=0.3, text/plain;q=0.9"
        ));
        assert!(wants_openmetrics("application/openmetrics-text"));
    }

    #[test]
    fn positions() {
        let t = "a = 1\nbb = [\n  2, x]\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, t.find('x').unwrap()), (3, 6));
    }

    #[test]
    fn tool_lists() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_tools(&v(&["tcplife", "tcpstates"])).is_ok());
        let e = check_tools(&v(&["tcplife", "tcplife"])).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        let e = check_tools(&v(&["tcptop"])).unwrap_err();
        assert!(e.to_string().contains("does not read it"), "{e}");
        let e = check_tools(&v(&["nope"])).unwrap_err();
        assert!(e.to_string().contains("no such tool"), "{e}");
        assert!(check_tools(&[]).is_err());
    }
}
