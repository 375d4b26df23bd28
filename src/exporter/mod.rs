//! `netbpf exporter`: the tools' in-kernel aggregations as Prometheus metrics.
//!
//! Each exported tool loads its BPF object once in aggregate mode (no ring buffer: the kernel
//! sums into maps) and a collector reads those maps at every scrape. Secure by default: listens
//! on loopback, and after attaching drops every capability except CAP_BPF (still needed to read
//! maps where unprivileged BPF is disabled).

mod metrics;
pub mod sources;

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use clap::Parser;
use prometheus_client::encoding::text;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use crate::core::cli::Filters;
use crate::core::run::Run;
use crate::usage;

pub use sources::EXPORTABLE;

const EXAMPLES: &str = "\
Examples:
  netbpf exporter                               # all exportable tools on 127.0.0.1:9435
  netbpf exporter --tools tcplife,tcpstates     # only these
  netbpf exporter --listen 0.0.0.0:9435         # reachable from other hosts (think twice)
  netbpf exporter --config /etc/netbpf/exporter.toml

Config file (TOML; command-line options win):
  listen = \"127.0.0.1:9435\"
  tools = [\"tcplife\", \"tcpstates\"]
  netns = \"/run/netns/web\"     # optional: only this network namespace";

#[derive(Parser, Debug)]
#[command(name = "exporter", about = "Serve the tools' in-kernel aggregations as Prometheus metrics", after_help = EXAMPLES)]
struct Opts {
    /// Address to listen on
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Comma-separated tools to export (default: all exportable)
    #[arg(long, value_name = "TOOLS", value_delimiter = ',')]
    tools: Option<Vec<String>>,
    /// TOML config file
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only this network namespace (cookie or path)
    #[arg(long, value_name = "NETNS")]
    netns: Option<String>,
    /// Stop after SECS seconds (default: until SIGINT/SIGTERM)
    #[arg(short = 'd', long = "duration", value_name = "SECS")]
    duration: Option<f64>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    listen: Option<String>,
    tools: Option<Vec<String>>,
    netns: Option<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:9435";

pub fn run(args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let config = match &o.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage!("config {}: {e}", path.display()))?;
            toml::from_str::<Config>(&text)
                .map_err(|e| usage!("config {}: {}", path.display(), e.message()))?
        }
        None => Config::default(),
    };
    let listen = o
        .listen
        .or(config.listen)
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    let tools = o
        .tools
        .or(config.tools)
        .unwrap_or_else(|| EXPORTABLE.iter().map(|s| s.name.to_string()).collect());
    if tools.is_empty() {
        return Err(usage!("no tools to export"));
    }
    for t in &tools {
        if !EXPORTABLE.iter().any(|s| s.name == t) {
            let names: Vec<&str> = EXPORTABLE.iter().map(|s| s.name).collect();
            return Err(usage!(
                "tool '{t}' cannot be exported (exportable: {})",
                names.join(", ")
            ));
        }
    }
    let netns = o.netns.or(config.netns);
    let duration = match o.duration {
        Some(s) if s > 0.0 && s.is_finite() => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(usage!(
                "--duration: '{s}' is not a positive number of seconds"
            ))
        }
        None => None,
    };

    let common = crate::core::cli::Common {
        netns,
        json: false,
        duration,
    };
    let filters = Filters::new(&common)?;
    crate::core::bpf::preflight("exporter")?;

    // Bind first: a port in use is an error before anything is loaded.
    let server =
        tiny_http::Server::http(&listen).map_err(|e| anyhow!("cannot listen on {listen}: {e}"))?;

    let mut registry = Registry::default();
    let health = Arc::new(metrics::Health::default());
    let mut keepalive = Vec::new();
    for name in &tools {
        let spec = EXPORTABLE.iter().find(|s| s.name == name).unwrap();
        let loaded = (spec.load)(&filters).with_context(|| format!("exporter: loading {name}"))?;
        health.up(name);
        keepalive.push(loaded.keepalive);
        registry.register_collector(loaded.collector);
    }
    registry.register_collector(Box::new(metrics::HealthCollector(health.clone())));
    drop_capabilities()?;
    eprintln!(
        "Tracing for the exporter: {} on http://{listen}/metrics",
        tools.join(",")
    );

    let run = Run::new(common.duration);
    serve(&server, &registry, &health, &run);
    drop(keepalive);
    Ok(())
}

fn serve(server: &tiny_http::Server, registry: &Registry, health: &metrics::Health, run: &Run) {
    while !run.should_stop() {
        let req = match server.recv_timeout(Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(_) => continue, // interrupted by a signal
        };
        let started = Instant::now();
        let response = if req.url() == "/metrics" || req.url().starts_with("/metrics?") {
            let openmetrics = req.headers().iter().any(|h| {
                h.field.equiv("Accept") && h.value.as_str().contains("application/openmetrics-text")
            });
            let mut body = String::with_capacity(16 * 1024);
            match text::encode(&mut body, registry) {
                Ok(()) => {
                    let (body, ctype) = if openmetrics {
                        (
                            body,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                    } else {
                        (
                            metrics::to_prometheus_text(&body),
                            "text/plain; version=0.0.4; charset=utf-8",
                        )
                    };
                    health.scraped(started.elapsed());
                    tiny_http::Response::from_string(body)
                        .with_header(tiny_http::Header::from_bytes("Content-Type", ctype).unwrap())
                }
                Err(_) => {
                    tiny_http::Response::from_string("encoding failed\n").with_status_code(500)
                }
            }
        } else if req.url() == "/" {
            tiny_http::Response::from_string("netbpf exporter: metrics at /metrics\n")
        } else {
            tiny_http::Response::from_string("not found\n").with_status_code(404)
        };
        let _ = req.respond(response);
    }
}

/// Keeps only CAP_BPF (map reads) in every capability set and forbids regaining any.
fn drop_capabilities() -> anyhow::Result<()> {
    const CAP_BPF: u32 = 39;
    // SAFETY: prctl/capset with valid arguments.
    unsafe {
        for cap in 0..=63u64 {
            if cap as u32 != CAP_BPF {
                // EINVAL for caps the kernel does not know: fine.
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
            }
        }
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x20080522,
            pid: 0,
        };
        let high = 1u32 << (CAP_BPF - 32);
        let data = [
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            Data {
                effective: high,
                permitted: high,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
            return Err(anyhow!(
                "dropping capabilities failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
    Ok(())
}

/// `le` bounds of an exported log2 histogram of microseconds, in seconds: slot k ends at 2^k µs.
pub(crate) fn log2_us_buckets(slots: &[u64], max_slot: usize) -> Vec<(f64, u64)> {
    let mut buckets: Vec<(f64, u64)> = (0..=max_slot)
        .map(|k| ((1u64 << k) as f64 / 1e6, slots.get(k).copied().unwrap_or(0)))
        .collect();
    let rest: u64 = slots.iter().skip(max_slot + 1).sum();
    buckets.push((f64::INFINITY, rest));
    buckets
}
