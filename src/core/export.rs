//! What a tool needs to describe its series for `netbpf exporter`, and what a loaded tool hands
//! the exporter. The collectors live with their tools (`tools::<tool>::export`, at the end of
//! each tool's module), next to the BPF they read; the exporter finds them in the registry.
//! Most tools sum, in exporter mode, into the maps of `common/export.bpf.h`; [`ExportMaps`]
//! reads those.

use std::any::Any;
use std::sync::Arc;

use anyhow::Context as _;
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::core::caps::{ensure_tracefs, Caps, Hook, Plan};
use crate::core::cli::Filters;
use crate::core::error::Unsupported;

/// What every exported tool is loaded with.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub filters: Filters,
    /// `--port-labels`: the opt-in port label, for the metrics that have one.
    pub ports: bool,
    /// qdisc kinds to time (the `qdisc` tool; default: the kernel's default_qdisc).
    pub qdisc_kinds: Vec<String>,
    /// `--labels container,pod,namespace`: the series of the tools that key them by the
    /// socket's cgroup get these labels.
    pub cgroups: Option<Arc<CgroupLabels>>,
}

/// What a cgroup id is called in labels: the container's name (its short id when its runtime's
/// state is unreadable), its pod's name and namespace ("" outside pods); "host" for a cgroup of
/// no container, "unknown" for one gone before it was looked up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerNames {
    pub container: String,
    pub pod: String,
    pub namespace: String,
}

impl OwnerNames {
    pub fn of(owner: &crate::core::cgroup::Owner) -> OwnerNames {
        use crate::core::cgroup::Owner;
        match owner {
            Owner::Container(c) => OwnerNames {
                container: c.display_name().to_string(),
                pod: c.pod.as_ref().map_or(String::new(), |p| p.name.clone()),
                namespace: c
                    .pod
                    .as_ref()
                    .map_or(String::new(), |p| p.namespace.clone()),
            },
            Owner::Host(_) => OwnerNames {
                container: "host".into(),
                ..Default::default()
            },
            Owner::Unknown => OwnerNames {
                container: "unknown".into(),
                ..Default::default()
            },
        }
    }

    fn other() -> OwnerNames {
        OwnerNames {
            container: "other".into(),
            pod: "other".into(),
            namespace: "other".into(),
        }
    }
}

/// A label the exporter can add from a series' cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLabel {
    Container,
    Pod,
    Namespace,
}

impl CgroupLabel {
    pub const ALL: [(&'static str, CgroupLabel); 3] = [
        ("container", CgroupLabel::Container),
        ("pod", CgroupLabel::Pod),
        ("namespace", CgroupLabel::Namespace),
    ];
}

/// The default of `--label-cap`: series per metric with their own container/pod labels.
pub const DEFAULT_LABEL_CAP: usize = 100;

/// `--labels`: which labels, the cap on series per metric, and how a cgroup id is named.
pub struct CgroupLabels {
    pub labels: Vec<CgroupLabel>,
    /// Label sets per metric (beyond: the "other" series).
    pub cap: usize,
    /// Names a cgroup id (cached by the caller: asked once per id).
    pub names: Box<dyn Fn(u64) -> OwnerNames + Send + Sync>,
}

impl std::fmt::Debug for CgroupLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CgroupLabels")
            .field("labels", &self.labels)
            .field("cap", &self.cap)
            .finish()
    }
}

impl CgroupLabels {
    fn values(&self, n: &OwnerNames) -> Labels {
        self.labels
            .iter()
            .map(|l| match l {
                CgroupLabel::Container => ("container", n.container.clone()),
                CgroupLabel::Pod => ("pod", n.pod.clone()),
                CgroupLabel::Namespace => ("namespace", n.namespace.clone()),
            })
            .collect()
    }
}

/// Which label sets got a series of their own, per metric: kept from scrape to scrape, so a
/// series never moves between its own labels and "other" (counters stay monotonic).
#[derive(Debug, Default)]
struct Assigned(std::sync::Mutex<std::collections::HashMap<u32, Vec<Labels>>>);

impl Assigned {
    /// `labels` if it has (or may take) one of the metric's `cap` places, else "other".
    fn place(&self, spec: &CgroupLabels, metric: u32, labels: Labels) -> Labels {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let taken = all.entry(metric).or_default();
        if taken.contains(&labels) {
            return labels;
        }
        if taken.len() < spec.cap {
            taken.push(labels.clone());
            return labels;
        }
        spec.values(&OwnerNames::other())
    }
}

/// Reads a tool's maps at each scrape.
pub trait Source: Send + Sync + 'static {
    /// The tool's metric families, read now. An error marks the tool down for this scrape (its
    /// series are left out, never published as zeros).
    fn read(&self) -> anyhow::Result<Vec<Family>>;
    /// Updates the kernel side could not make (a full map): counted, never hidden.
    fn lost(&self) -> anyhow::Result<u64>;
}

/// A tool loaded in exporter mode: its source, the plan it runs with, and what must stay alive
/// for its programs to stay attached (skeleton and links).
pub struct Loaded {
    pub source: Box<dyn Source>,
    pub plan: String,
    pub keepalive: Box<dyn Any + Send>,
}

/// A tool's exporter mode, as its registry entry names it.
pub struct Export {
    /// Where the tool comes in the exporter's loading and publishing order (smallest first).
    pub order: u8,
    pub load: fn(&Ctx) -> anyhow::Result<Loaded>,
}

/// The load path ([`crate::core::bpf::load`]) in exporter mode, with the exporter's choice of
/// plan ([`select`]) and `ctx`'s filters; `configure` sets the rest (`open.export_setup(ctx)`
/// for a tool summing into the maps of common/export.bpf.h). Returns the attached skeleton and
/// its plan.
pub fn load<B>(
    ctx: &Ctx,
    tool: &'static str,
    plans: &'static [Plan],
    configure: impl FnMut(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
) -> anyhow::Result<(crate::core::bpf::Skel<B>, &'static Plan)>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    let (mut skel, plan) = load_unattached::<B>(ctx, tool, plans, configure)?;
    crate::core::bpf::attach::<B>(tool, plan, &mut skel)?;
    Ok((skel, plan))
}

/// As [`load`], without attaching (a tool that attaches its programs itself).
pub fn load_unattached<B>(
    ctx: &Ctx,
    tool: &'static str,
    plans: &'static [Plan],
    configure: impl FnMut(&mut B::Output, &'static Plan) -> anyhow::Result<()>,
) -> anyhow::Result<(crate::core::bpf::Skel<B>, &'static Plan)>
where
    B: libbpf_rs::skel::SkelBuilder<'static> + Default,
{
    let first = select(tool, plans)?;
    crate::core::bpf::load_plan::<B>(&exporter_plans(ctx, tool, plans), first, configure)
}

fn exporter_plans(ctx: &Ctx, tool: &'static str, all: &'static [Plan]) -> crate::core::bpf::Plans {
    crate::core::bpf::Plans {
        tool,
        all,
        select,
        filters: Some(ctx.filters.clone()),
    }
}

/// An opened skeleton with the globals and maps of common/export.bpf.h; implemented for each
/// exportable tool's skeleton by [`export_object!`](crate::export_object).
pub trait ExportObject {
    /// Sets the exporter-mode globals, and sizes the export maps for `ctx`.
    fn export_setup(&mut self, ctx: &Ctx) -> anyhow::Result<()>;
}

/// Implements [`ExportObject`] for a tool's opened skeleton, and gives its loaded skeleton an
/// `export_maps(ctx)`.
#[macro_export]
macro_rules! export_object {
    ($open:ident, $skel:ident) => {
        impl $crate::core::export::ExportObject for $open<'static> {
            fn export_setup(&mut self, ctx: &$crate::core::export::Ctx) -> anyhow::Result<()> {
                let r = self.maps.rodata_data.as_deref_mut().expect("rodata");
                r.export_mode = true;
                r.export_ports = ctx.ports;
                r.export_cgroups = ctx.cgroups.is_some();
                $crate::core::export::ExportMaps::size(
                    ctx,
                    &mut self.maps.export_counts,
                    &mut self.maps.export_hists,
                )
            }
        }
        impl $skel<'static> {
            /// Handles on the export maps of the loaded object.
            #[allow(dead_code)]
            fn export_maps(
                &self,
                ctx: &$crate::core::export::Ctx,
            ) -> anyhow::Result<$crate::core::export::ExportMaps> {
                $crate::core::export::ExportMaps::new(
                    ctx,
                    &self.maps.export_counts,
                    &self.maps.export_hists,
                    &self.maps.export_stats,
                )
            }
        }
    };
}

/// Whether this thread has CAP_SYS_ADMIN in its effective set.
fn has_sys_admin() -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// A tool's plan, chosen as the tool chooses it ([`Caps::select`]), except that without
/// CAP_SYS_ADMIN (the exporter run as a service with CAP_BPF and CAP_PERFMON only) plans with
/// kprobes or uprobes are passed over: the kernel opens its kprobe and uprobe PMUs to
/// CAP_SYS_ADMIN only (EACCES otherwise, also on stock 6.12).
pub fn select(tool: &str, plans: &'static [Plan]) -> Result<&'static Plan, Unsupported> {
    let caps = Caps::get();
    if has_sys_admin() {
        return caps.select(tool, plans);
    }
    let perf_probe = |p: &Plan| {
        p.needs
            .iter()
            .any(|h| matches!(h, Hook::Kprobe | Hook::Uprobe))
    };
    let forced = std::env::var("NETBPF_PLAN").ok().filter(|p| !p.is_empty());
    let mut reasons = Vec::new();
    for plan in plans
        .iter()
        .filter(|p| forced.as_deref().is_none_or(|f| p.name == f))
    {
        if perf_probe(plan) {
            reasons.push(format!(
                "{} ({}): kprobes and uprobes need CAP_SYS_ADMIN, which the exporter does not have",
                plan.name, plan.attach
            ));
            continue;
        }
        match caps.check(plan) {
            Ok(()) => {
                if plan.needs.contains(&Hook::Tracepoint) {
                    ensure_tracefs().map_err(|why| Unsupported::new(tool, why))?;
                }
                return Ok(plan);
            }
            Err(why) => reasons.push(format!("{} ({}): {why}", plan.name, plan.attach)),
        }
    }
    if reasons.is_empty() {
        // NETBPF_PLAN names no plan: let Caps say so.
        return caps.select(tool, plans);
    }
    Err(Unsupported::new(
        tool,
        format!("no usable hook: {}", reasons.join("; ")),
    ))
}

/// A series' labels.
pub type Labels = Vec<(&'static str, String)>;

/// How a log2 histogram's slots become Prometheus buckets. Slot 0 holds 0, slot k holds
/// [2^(k-1), 2^k) (common/hist.h); bucket k is every slot up to k.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Microseconds (truncated from nanoseconds), published in seconds: bucket k is le=2^k µs.
    Micros,
    /// Whole numbers (bytes, connections): bucket k is le=2^k-1, exact.
    Integer,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Buckets {
    pub scale: Scale,
    /// The first and last finite buckets (slot numbers); larger values are in +Inf only.
    pub first: usize,
    pub last: usize,
}

impl Buckets {
    /// (le, count in that bucket alone) for the encoder, which makes them cumulative; +Inf last.
    pub fn of(&self, slots: &[u64]) -> Vec<(f64, u64)> {
        let slot = |k: usize| slots.get(k).copied().unwrap_or(0);
        let le = |k: usize| match self.scale {
            Scale::Micros => (1u64 << k) as f64 / 1e6,
            Scale::Integer => ((1u64 << k) - 1) as f64,
        };
        let mut out = vec![(le(self.first), (0..=self.first).map(slot).sum())];
        out.extend((self.first + 1..=self.last).map(|k| (le(k), slot(k))));
        out.push((f64::INFINITY, slots.iter().skip(self.last + 1).sum::<u64>()));
        out
    }

    /// The histogram's `_sum` in the published unit.
    pub fn sum(&self, raw: u64) -> f64 {
        match self.scale {
            Scale::Micros => raw as f64 / 1e6,
            Scale::Integer => raw as f64,
        }
    }
}

/// Units a metric name ends with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    None,
    Seconds,
    Bytes,
}

/// One metric family, read from the kernel, ready to encode.
#[derive(Debug, Clone)]
pub enum Family {
    Counter {
        name: &'static str,
        help: &'static str,
        unit: Unit,
        series: Vec<(Labels, u64)>,
    },
    Histogram {
        name: &'static str,
        help: &'static str,
        unit: Unit,
        buckets: Buckets,
        /// (labels, log2 slots, raw sum)
        series: Vec<(Labels, Vec<u64>, u64)>,
    },
}

/// `export_key` of common/export.h: (metric, label, port, cgroup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub metric: u32,
    pub label: u32,
    pub port: u16,
    /// The socket's cgroup id with --labels (0: none).
    pub cgroup: u64,
}

impl Key {
    fn parse(raw: &[u8]) -> Option<Key> {
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(
                raw.get(i * 4..i * 4 + 4)?.try_into().ok()?,
            ))
        };
        let cgroup = raw
            .get(16..24)
            .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap()));
        Some(Key {
            metric: word(0)?,
            label: word(1)?,
            port: word(2)? as u16,
            cgroup,
        })
    }
}

fn u64s(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .collect()
}

/// The maps of common/export.bpf.h in a loaded tool.
#[derive(Debug)]
pub struct ExportMaps {
    counts: MapHandle,
    hists: MapHandle,
    stats: MapHandle,
    ports: bool,
    cgroups: Option<Arc<CgroupLabels>>,
    assigned: Assigned,
}

/// Entries of export_counts and export_hists, a tool being given --port-labels.
pub const PORT_SERIES: u32 = 16384;
pub const PORT_HIST_SERIES: u32 = 1024;

impl ExportMaps {
    /// Handles on the three maps of a loaded skeleton.
    pub fn new(
        ctx: &Ctx,
        counts: &libbpf_rs::Map,
        hists: &libbpf_rs::Map,
        stats: &libbpf_rs::Map,
    ) -> anyhow::Result<ExportMaps> {
        Ok(ExportMaps {
            counts: MapHandle::try_from(counts)?,
            hists: MapHandle::try_from(hists)?,
            stats: MapHandle::try_from(stats)?,
            ports: ctx.ports,
            cgroups: ctx.cgroups.clone(),
            assigned: Assigned::default(),
        })
    }

    /// Before load: more room for series when ports are labels.
    pub fn size(
        ctx: &Ctx,
        counts: &mut libbpf_rs::OpenMapMut,
        hists: &mut libbpf_rs::OpenMapMut,
    ) -> anyhow::Result<()> {
        if ctx.ports || ctx.cgroups.is_some() {
            counts.set_max_entries(PORT_SERIES)?;
            hists.set_max_entries(PORT_HIST_SERIES)?;
        }
        Ok(())
    }

    pub fn counts(&self) -> anyhow::Result<Vec<(Key, u64)>> {
        let mut out = Vec::new();
        for raw in self.counts.keys() {
            let Some(val) = self
                .counts
                .lookup(&raw, MapFlags::ANY)
                .context("reading export_counts")?
            else {
                continue;
            };
            if let (Some(k), Some(&v)) = (Key::parse(&raw), u64s(&val).first()) {
                out.push((k, v));
            }
        }
        out.sort();
        Ok(out)
    }

    /// (key, slots, sum) of every histogram.
    pub fn hists(&self) -> anyhow::Result<Vec<(Key, Vec<u64>, u64)>> {
        let mut out = Vec::new();
        for raw in self.hists.keys() {
            let Some(val) = self
                .hists
                .lookup(&raw, MapFlags::ANY)
                .context("reading export_hists")?
            else {
                continue;
            };
            let mut v = u64s(&val);
            let (Some(k), Some(sum)) = (Key::parse(&raw), v.pop()) else {
                continue;
            };
            out.push((k, v, sum));
        }
        out.sort_by_key(|e| e.0);
        Ok(out)
    }

    pub fn lost(&self) -> anyhow::Result<u64> {
        let v = self
            .stats
            .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
            .context("reading export_stats")?
            .ok_or_else(|| anyhow::anyhow!("export_stats has no entry 0"))?;
        Ok(u64s(&v).first().copied().unwrap_or(0))
    }

    /// Counter series of one metric, labelled by `label` (and the port when present). Without
    /// port labels, the `defaults` label values are published at 0 before their first event,
    /// so that a series' first increase is seen as one.
    pub fn counter(
        &self,
        counts: &[(Key, u64)],
        metric: u32,
        defaults: &[u32],
        label: impl Fn(u32) -> Labels,
    ) -> Vec<(Labels, u64)> {
        let mut found: Vec<(Key, u64)> = counts
            .iter()
            .filter(|(k, _)| k.metric == metric)
            .copied()
            .collect();
        for &l in defaults
            .iter()
            .filter(|_| !self.ports && self.cgroups.is_none())
        {
            if !found.iter().any(|(k, _)| k.label == l && k.port == 0) {
                found.push((
                    Key {
                        metric,
                        label: l,
                        port: 0,
                        cgroup: 0,
                    },
                    0,
                ));
            }
        }
        found.sort();
        let mut out: Vec<(Labels, u64)> = Vec::with_capacity(found.len());
        for (k, v) in found {
            let labels = self.with_cgroup(metric, with_port(label(k.label), k.port), k.cgroup);
            match out.iter_mut().find(|(l, _)| *l == labels) {
                Some((_, sum)) => *sum += v,
                None => out.push((labels, v)),
            }
        }
        out
    }

    /// Adds the cgroup's labels (--labels) to a series the kernel keyed by cgroup: its own, or
    /// "other" past the metric's cap. Series of several cgroups with the same names are summed
    /// by the callers.
    fn with_cgroup(&self, metric: u32, mut labels: Labels, cgroup: u64) -> Labels {
        let Some(spec) = &self.cgroups else {
            return labels;
        };
        if cgroup == 0 {
            return labels; // not keyed by cgroup (this tool or this event)
        }
        let own = spec.values(&(spec.names)(cgroup));
        labels.extend(self.assigned.place(spec, metric, own));
        labels
    }

    /// Histogram series of one metric, as [`ExportMaps::counter`].
    pub fn histogram(
        &self,
        hists: &[(Key, Vec<u64>, u64)],
        metric: u32,
        defaults: &[u32],
        label: impl Fn(u32) -> Labels,
    ) -> Vec<(Labels, Vec<u64>, u64)> {
        let mut found: Vec<(Key, Vec<u64>, u64)> = hists
            .iter()
            .filter(|(k, _, _)| k.metric == metric)
            .cloned()
            .collect();
        for &l in defaults
            .iter()
            .filter(|_| !self.ports && self.cgroups.is_none())
        {
            if !found.iter().any(|(k, _, _)| k.label == l && k.port == 0) {
                found.push((
                    Key {
                        metric,
                        label: l,
                        port: 0,
                        cgroup: 0,
                    },
                    Vec::new(),
                    0,
                ));
            }
        }
        found.sort_by_key(|e| e.0);
        let mut out: Vec<(Labels, Vec<u64>, u64)> = Vec::with_capacity(found.len());
        for (k, slots, sum) in found {
            let labels = self.with_cgroup(metric, with_port(label(k.label), k.port), k.cgroup);
            match out.iter_mut().find(|(l, _, _)| *l == labels) {
                Some((_, s, total)) => {
                    if s.len() < slots.len() {
                        s.resize(slots.len(), 0);
                    }
                    for (a, b) in s.iter_mut().zip(&slots) {
                        *a += b;
                    }
                    *total += sum;
                }
                None => out.push((labels, slots, sum)),
            }
        }
        out
    }
}

/// Adds the port label, when the kernel side recorded one (--port-labels).
fn with_port(mut labels: Labels, port: u16) -> Labels {
    if port != 0 {
        labels.push(("port", port.to_string()));
    }
    labels
}

/// `family` label of a label value whose bit 0 says IPv6.
pub fn family(bit: u32) -> String {
    if bit & 1 == 1 { "ipv6" } else { "ipv4" }.to_string()
}

/// Sets the exporter-mode globals of common/export.bpf.h in a tool's .rodata (the load path
/// writes the filters).
#[macro_export]
macro_rules! export_rodata {
    ($rodata:expr, $ctx:expr) => {{
        let r = $rodata;
        let c = &$ctx;
        r.export_mode = true;
        r.export_ports = c.ports;
        r.export_cgroups = c.cgroups.is_some();
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_buckets() {
        let mut slots = vec![0u64; 64];
        slots[0] = 1; // 0 µs
        slots[3] = 2; // [4, 8) µs
        slots[5] = 4; // [16, 32) µs
        slots[40] = 8; // beyond the last bucket
        let b = Buckets {
            scale: Scale::Micros,
            first: 4,
            last: 6,
        };
        assert_eq!(
            b.of(&slots),
            [(16e-6, 3), (32e-6, 4), (64e-6, 0), (f64::INFINITY, 8)]
        );
        assert_eq!(b.sum(1_500_000), 1.5);
    }

    #[test]
    fn integer_buckets_are_exact() {
        let mut slots = vec![0u64; 64];
        slots[0] = 1; // 0
        slots[1] = 1; // 1
        slots[11] = 5; // [1024, 2047]
        let b = Buckets {
            scale: Scale::Integer,
            first: 0,
            last: 11,
        };
        let v = b.of(&slots);
        assert_eq!(v[0], (0.0, 1));
        assert_eq!(v[1], (1.0, 1));
        assert_eq!(v[10], (1023.0, 0));
        assert_eq!(v[11], (2047.0, 5));
        assert_eq!(v[12], (f64::INFINITY, 0));
    }

    #[test]
    fn label_sets_past_the_cap_are_other_for_good() {
        let spec = CgroupLabels {
            labels: vec![CgroupLabel::Container, CgroupLabel::Namespace],
            cap: 2,
            names: Box::new(|id| OwnerNames {
                container: format!("c{id}"),
                ..Default::default()
            }),
        };
        let assigned = Assigned::default();
        let place = |id| assigned.place(&spec, 0, spec.values(&(spec.names)(id)));
        let own = |c: &str| vec![("container", c.to_string()), ("namespace", String::new())];
        let other = vec![("container", "other".into()), ("namespace", "other".into())];
        assert_eq!(place(1), own("c1"));
        assert_eq!(place(2), own("c2"));
        assert_eq!(place(3), other);
        assert_eq!(place(1), own("c1"));
        assert_eq!(place(3), other);
        // Another metric has its own places.
        assert_eq!(assigned.place(&spec, 1, own("c3")), own("c3"));
    }

    #[test]
    fn keys() {
        let raw: Vec<u8> = [2u32, 7, 443, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        assert_eq!(
            Key::parse(&raw),
            Some(Key {
                metric: 2,
                label: 7,
                port: 443,
                cgroup: 0,
            })
        );
        assert_eq!(Key::parse(&raw[..8]), None);
    }
}
