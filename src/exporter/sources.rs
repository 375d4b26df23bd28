//! Which tools can be exported, and how each is loaded. The collectors live with their tools
//! (`tools::<tool>::export`), next to the BPF they read.

use std::any::Any;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::core::cli::Filters;

/// A tool loaded in aggregate mode: its collector, and what must stay alive for its programs to
/// stay attached (skeleton and links).
pub struct Loaded {
    pub collector: Box<dyn Collector>,
    pub keepalive: Box<dyn Any>,
}

pub struct Exportable {
    pub name: &'static str,
    pub load: fn(&Filters) -> anyhow::Result<Loaded>,
}

pub static EXPORTABLE: &[Exportable] = &[
    Exportable {
        name: "tcplife",
        load: crate::tools::tcplife::export,
    },
    Exportable {
        name: "tcpstates",
        load: crate::tools::tcpstates::export,
    },
];

/// A series' labels.
pub type Labels<'a> = Vec<(&'a str, String)>;

/// One histogram series: labels, log2 slots of microseconds, sum of microseconds.
pub type DurationSeries<'a> = (Labels<'a>, &'a [u64], u64);

/// Writes one counter family from (labels, value) pairs.
pub fn counter_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in series {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// Writes one histogram family of durations from log2 slots of microseconds (see hist.h).
pub fn duration_histogram_family(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: &[DurationSeries],
) -> Result<(), std::fmt::Error> {
    // 2^26 µs ≈ 67 s: longer lands in +Inf.
    const MAX_SLOT: usize = 26;
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (labels, slots, sum_us) in series {
        let buckets = super::log2_us_buckets(slots, MAX_SLOT);
        let count = slots.iter().sum();
        m.encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                *sum_us as f64 / 1e6,
                count,
                &buckets,
                None,
            )?;
    }
    Ok(())
}
