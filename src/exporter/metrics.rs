//! One scrape: every tool's families read from the kernel, then the exporter's own health.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::sources::{Family, Source, Unit};

/// A tool the exporter was asked for: attached (with its source), or skipped (unsupported
/// here, default tool set only).
pub struct Exported {
    pub name: &'static str,
    pub plan: String,
    pub source: Option<Box<dyn Source>>,
}

/// Response formats, for netbpf_scrapes_total.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Text = 0,
    OpenMetrics = 1,
}

pub struct Metrics {
    tools: Vec<Exported>,
    kernel: String,
    scrapes: [AtomicU64; 2],
    /// The last read error of each tool, so a failing map is reported once, not every scrape.
    errors: Mutex<Vec<Option<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let names: Vec<&str> = self.tools.iter().map(|t| t.name).collect();
        f.debug_struct("Metrics").field("tools", &names).finish()
    }
}

impl Metrics {
    pub fn new(tools: Vec<Exported>) -> Metrics {
        let kernel = crate::core::caps::osrelease();
        let errors = Mutex::new(vec![None; tools.len()]);
        Metrics {
            tools,
            kernel,
            scrapes: [AtomicU64::new(0), AtomicU64::new(0)],
            errors,
        }
    }

    pub fn scraped(&self, format: Format) {
        self.scrapes[format as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one tool: its families and lost count, or why not (reported once per new error).
    fn read(&self, i: usize, source: &dyn Source) -> Option<(Vec<Family>, u64)> {
        let result = source
            .read()
            .and_then(|families| Ok((families, source.lost()?)));
        let mut errors = self.errors.lock().unwrap();
        match result {
            Ok(r) => {
                errors[i] = None;
                Some(r)
            }
            Err(e) => {
                let msg = format!("{e:#}");
                if errors[i].as_deref() != Some(&msg) {
                    eprintln!(
                        "netbpf exporter: {}: reading its maps failed, reported down: {msg}",
                        self.tools[i].name
                    );
                    errors[i] = Some(msg);
                }
                None
            }
        }
    }
}

fn unit(u: Unit) -> Option<prometheus_client::registry::Unit> {
    match u {
        Unit::None => None,
        Unit::Seconds => Some(prometheus_client::registry::Unit::Seconds),
        Unit::Bytes => Some(prometheus_client::registry::Unit::Bytes),
    }
}

pub fn encode_family(enc: &mut DescriptorEncoder, f: &Family) -> std::fmt::Result {
    match f {
        Family::Counter {
            name,
            help,
            unit: u,
            series,
        } => {
            let u = unit(*u);
            let mut m = enc.encode_descriptor(name, help, u.as_ref(), MetricType::Counter)?;
            for (labels, v) in series {
                ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
            }
        }
        Family::Histogram {
            name,
            help,
            unit: u,
            buckets,
            series,
        } => {
            let u = unit(*u);
            let mut m = enc.encode_descriptor(name, help, u.as_ref(), MetricType::Histogram)?;
            for (labels, slots, sum) in series {
                m.encode_family(labels)?.encode_histogram::<NoLabelSet>(
                    buckets.sum(*sum),
                    slots.iter().sum(),
                    &buckets.of(slots),
                    None,
                )?;
            }
        }
    }
    Ok(())
}

impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let started = Instant::now();
        let mut up = Vec::new();
        let mut lost = Vec::new();
        for (i, t) in self.tools.iter().enumerate() {
            let read = t.source.as_deref().and_then(|s| self.read(i, s));
            up.push(read.is_some());
            if let Some((families, n)) = read {
                for f in &families {
                    encode_family(&mut enc, f)?;
                }
                lost.push((t.name, n));
            }
        }

        let info = ConstGauge::new(1i64);
        let mut m = enc.encode_descriptor(
            "netbpf_build_info",
            "netbpf version and the kernel it runs on",
            None,
            MetricType::Gauge,
        )?;
        info.encode(m.encode_family(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("kernel", self.kernel.as_str()),
        ])?)?;

        let mut m = enc.encode_descriptor(
            "netbpf_tool_up",
            "1 when the tool's BPF programs are attached and its maps were read in this scrape",
            None,
            MetricType::Gauge,
        )?;
        for (t, up) in self.tools.iter().zip(&up) {
            let plan = if t.source.is_some() {
                t.plan.as_str()
            } else {
                "unsupported"
            };
            ConstGauge::new(*up as i64)
                .encode(m.encode_family(&[("tool", t.name), ("plan", plan)])?)?;
        }

        let mut m = enc.encode_descriptor(
            "netbpf_lost_events",
            "Updates the kernel side could not make (a full map), per tool",
            None,
            MetricType::Counter,
        )?;
        for (tool, n) in &lost {
            ConstCounter::new(*n).encode(m.encode_family(&[("tool", *tool)])?)?;
        }

        let mut m = enc.encode_descriptor(
            "netbpf_scrapes",
            "Scrapes of /metrics answered, by format",
            None,
            MetricType::Counter,
        )?;
        for (format, n) in ["text", "openmetrics"].iter().zip(&self.scrapes) {
            ConstCounter::new(n.load(Ordering::Relaxed))
                .encode(m.encode_family(&[("format", *format)])?)?;
        }

        let took = ConstGauge::new(started.elapsed().as_secs_f64());
        let m = enc.encode_descriptor(
            "netbpf_scrape_duration_seconds",
            "Time this scrape took to read every tool's maps",
            None,
            MetricType::Gauge,
        )?;
        took.encode(m)?;
        Ok(())
    }
}
