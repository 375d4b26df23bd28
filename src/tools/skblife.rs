//! skblife: sk_buff lifetimes, slab allocation to slab free, as a log2 histogram in nanoseconds.

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;
use libbpf_rs::btf::{types::FuncProto, Btf, BtfType};
use libbpf_rs::{MapCore, MapFlags};

use crate::core::caps::{Hook, Plan};
use crate::core::cli::Common;
use crate::core::hist::{print_log2, sum_percpu};
use crate::core::iface::{ifname_bytes, parse_ifname};
use crate::core::kallsyms::Kallsyms;
use crate::core::output::{Format, Output, Value};
use crate::tools::{start, Tool};

crate::skel!("skblife");

pub static TOOL: Tool = Tool {
    name: "skblife",
    aliases: &[],
    about: "sk_buff lifetimes, slab allocation to free: histogram",
    plans: &[Plan::new(
        "raw_tp",
        &[Hook::RawTp, Hook::TpBtf],
        "raw_tp kmem/kmem_cache_alloc, kmem/kmem_cache_free (+ tp_btf net/net_dev_queue, \
                 net/napi_gro_receive_entry, net/netif_receive_skb with -i or --netns)",
    )
    .checked(check_cache_argument)],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<SkblifeSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  skblife                 # histogram of sk_buff lifetimes, printed at Ctrl-C
  skblife -d 5            # for 5 seconds
  skblife --netns /run/netns/blue   # only skbs that crossed a device of that namespace
  skblife -i eth0         # only skbs that crossed eth0
  skblife --json          # the histogram and the counts as JSON

An skb's life is its sk_buff object's, from kmem_cache_alloc to kmem_cache_free in
skbuff_head_cache or skbuff_fclone_cache. skbs recycled through the per-CPU NAPI caches are
allocated and freed in bulk without these events: they are missed, and one put back into such a
cache and taken out again shows the sum of its lives. The closing counts say how many frees had no
allocation in view (allocated before the run, or taken from a NAPI cache).";

#[derive(Parser, Debug)]
#[command(name = "skblife", about = "Histogram of sk_buff lifetimes (slab alloc to free)", after_help = EXAMPLES)]
struct Opts {
    /// Only skbs that crossed this interface (sent or received on it)
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = parse_ifname)]
    interface: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Indexes of the stats map (enum skblife_stat in skblife.h).
const STAT_ALLOCS: u32 = 0;
const STAT_FREES: u32 = 1;
const STAT_FREES_UNSEEN: u32 = 2;
const STAT_EXCLUDED: u32 = 3;

/// The typed slab tracepoints name their cache (struct kmem_cache *) since Linux 6.1; before,
/// only the classic tracepoint's 'name' field would tell skb caches apart.
fn check_cache_argument() -> Result<(), String> {
    let btf = Btf::from_vmlinux().map_err(|e| format!("cannot read kernel BTF: {e}"))?;
    for tp in ["kmem_cache_alloc", "kmem_cache_free"] {
        let has_cache = btf
            .type_by_name::<BtfType>(&format!("btf_trace_{tp}"))
            .and_then(|t| t.next_type()?.next_type())
            .and_then(|p| FuncProto::try_from(p).ok())
            // Parameter 0 is the context; then call_site, ptr, s.
            .and_then(|p| btf.type_by_id::<BtfType>(p.get(3)?.ty))
            .and_then(|t| t.next_type())
            .map(|t| t.skip_mods_and_typedefs())
            .is_some_and(|t| t.name().is_some_and(|n| n == "kmem_cache"));
        if !has_cache {
            return Err(format!(
                "tracepoint kmem:{tp} does not pass its kmem_cache on this kernel (Linux 6.1+ does)"
            ));
        }
    }
    Ok(())
}

/// __alloc_skb's text range from /proc/kallsyms: its start, and the next symbol's address.
fn alloc_skb_range() -> Option<(u64, u64)> {
    Kallsyms::read_names(&["__alloc_skb"]).function_range("__alloc_skb")
}

/// SLUB merges caches of equal size and flags: skbuff_fclone_cache then has no kmem_cache of its
/// own (sysfs shows it as a link to the merged cache).
fn fclone_cache_merged() -> bool {
    Path::new("/sys/kernel/slab/skbuff_fclone_cache")
        .symlink_metadata()
        .map_or(true, |m| m.file_type().is_symlink())
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    crate::core::iface::warn_missing_interface(tool.name, o.interface.as_deref(), &o.common);

    let filters = s.filters.clone();
    let filtering = filters.netns != 0 || o.interface.is_some();
    let skel = s.load::<SkblifeSkelBuilder>(|open, _plan| {        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.filter_ifname = ifname_bytes(o.interface.as_deref());
        rodata.filtering = filtering;
        match alloc_skb_range() {
            Some((start, end)) => {
                rodata.alloc_skb_start = start;
                rodata.alloc_skb_end = end;
            }
            None if fclone_cache_merged() => eprintln!(
                "netbpf {}: __alloc_skb is not in /proc/kallsyms (kptr_restrict?): skbs of the merged \
                 skbuff_fclone_cache (TCP's) will be missed",
                tool.name
            ),
            None => {}
        }
        if !filtering {
            // Device hooks only tell where skbs went, for the filters.
            open.progs.skblife_tx.set_autoload(false);
            open.progs.skblife_nic_rx.set_autoload(false);
            open.progs.skblife_rx.set_autoload(false);
        }
        Ok(())
    })?;

    s.wait_then_report("sk_buff lifetimes", libbpf_rs::skel::Skel::object(&skel));

    let hist = skel
        .maps
        .lifetime_ns
        .lookup_percpu(&0u32.to_ne_bytes(), MapFlags::ANY)?
        .unwrap_or_default();
    let stat = |i: u32| -> anyhow::Result<u64> {
        let per_cpu = skel
            .maps
            .stats
            .lookup_percpu(&i.to_ne_bytes(), MapFlags::ANY)?
            .unwrap_or_default();
        Ok(per_cpu
            .iter()
            .map(|v| u64::from_ne_bytes(v[..8].try_into().unwrap()))
            .sum())
    };
    let (allocs, frees, unseen, excluded) = (
        stat(STAT_ALLOCS)?,
        stat(STAT_FREES)?,
        stat(STAT_FREES_UNSEEN)?,
        stat(STAT_EXCLUDED)?,
    );

    let mut out = Output::new(o.common.format(), Vec::new());
    print_log2(
        &mut out,
        "skb_residency_nsecs",
        "ns",
        &[],
        &sum_percpu(&hist),
    );
    if out.format() == Format::Json {
        out.record(&[
            ("allocs", Value::U64(allocs)),
            ("frees", Value::U64(frees)),
            ("frees_alloc_unseen", Value::U64(unseen)),
            ("frees_filtered_out", Value::U64(excluded)),
        ]);
    } else if filtering {
        out.text(&format!(
            "{frees} sk_buffs that crossed a matching device were freed (histogram); {excluded} \
             others were freed; {allocs} were allocated (every namespace and device)"
        ));
    } else {
        out.text(&format!(
            "{allocs} sk_buffs allocated; {frees} freed after an allocation seen (histogram); \
             {unseen} freed without one (allocated before the run or taken from a NAPI cache)"
        ));
    }
    Ok(())
}
