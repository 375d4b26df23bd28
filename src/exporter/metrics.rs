//! The exporter's own health metrics, and the text-format conversion for classic scrapers.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Debug, Default)]
pub struct Health {
    tools: Mutex<BTreeMap<String, ToolHealth>>,
    last_scrape: Mutex<Duration>,
}

#[derive(Debug, Default, Clone, Copy)]
struct ToolHealth {
    up: bool,
    lost_events: u64,
}

impl Health {
    pub fn up(&self, tool: &str) {
        self.tools
            .lock()
            .unwrap()
            .entry(tool.to_string())
            .or_default()
            .up = true;
    }
    pub fn scraped(&self, took: Duration) {
        *self.last_scrape.lock().unwrap() = took;
    }
}

#[derive(Debug)]
pub struct HealthCollector(pub std::sync::Arc<Health>);

impl Collector for HealthCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let info = ConstGauge::new(1i64);
        let mut m = enc.encode_descriptor(
            "netbpf_build_info",
            "netbpf build information",
            None,
            info.metric_type(),
        )?;
        info.encode(m.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;

        let tools = self.0.tools.lock().unwrap().clone();
        let up = ConstGauge::new(0i64);
        let mut m = enc.encode_descriptor(
            "netbpf_tool_up",
            "1 when the tool's BPF programs are attached",
            None,
            up.metric_type(),
        )?;
        for (name, h) in &tools {
            ConstGauge::new(h.up as i64).encode(m.encode_family(&[("tool", name.as_str())])?)?;
        }
        let lost = ConstCounter::new(0u64);
        let mut m = enc.encode_descriptor(
            "netbpf_lost_events",
            "Events the kernel could not hand to the exporter",
            None,
            lost.metric_type(),
        )?;
        for (name, h) in &tools {
            ConstCounter::new(h.lost_events)
                .encode(m.encode_family(&[("tool", name.as_str())])?)?;
        }
        let took = ConstGauge::new(self.0.last_scrape.lock().unwrap().as_secs_f64());
        let m = enc.encode_descriptor(
            "netbpf_scrape_duration_seconds",
            "How long the previous scrape took to collect",
            None,
            took.metric_type(),
        )?;
        took.encode(m)?;
        Ok(())
    }
}

/// OpenMetrics text → Prometheus text format 0.0.4: counter families are named with their
/// `_total` suffix, and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut counter_families: Vec<&str> = Vec::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counter_families.push(name);
                out.push_str(&format!("# TYPE {name}_total counter\n"));
                continue;
            }
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    // HELP lines precede TYPE lines: rename them in a second pass.
    let mut fixed = String::with_capacity(out.len());
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if counter_families.contains(&name) {
                fixed.push_str(&format!("# HELP {name}_total{}\n", &rest[name.len()..]));
                continue;
            }
        }
        fixed.push_str(line);
        fixed.push('\n');
    }
    fixed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_to_text_format() {
        let om = "# HELP x_closed Sessions.\n# TYPE x_closed counter\nx_closed_total 3\n# HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP x_closed_total Sessions.\n# TYPE x_closed_total counter\nx_closed_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
