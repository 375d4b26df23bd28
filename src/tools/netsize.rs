//! netsize: packet sizes at the device layer, four log2 histograms printed at exit.

use std::ffi::OsString;

use clap::Parser;
use libbpf_rs::{MapCore, MapFlags};

use crate::core::caps::{Hook, Plan};
use crate::core::cli::Common;
use crate::core::hist::{print_log2, sum_percpu};
use crate::core::iface::{ifname_bytes, parse_ifname, warn_missing_interface};
use crate::core::output::Output;
use crate::tools::{start, Tool};

crate::skel!("netsize");

pub static TOOL: Tool = Tool {
    name: "netsize",
    aliases: &[],
    about: "Packet sizes at the device layer (stack and driver, send and receive): histograms",
    plans: &[Plan::new(
        "tp_btf",
        &[Hook::TpBtf],
        "net/netif_receive_skb, net/net_dev_queue, net/napi_gro_receive_entry, net/net_dev_xmit",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<NetsizeSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  netsize                 # histograms of packet sizes on every interface, at Ctrl-C
  netsize -i eth0 -d 10   # only eth0, for 10 seconds
  netsize --netns /run/netns/blue   # only devices of that network namespace
  netsize --json          # one JSON object per histogram

@recv_bytes      netif_receive_skb: packets handed to the stack (after GRO: merged sizes)
@send_bytes      net_dev_queue: packets the stack hands down (GSO super-packets, L2 header included)
@nic_recv_bytes  napi_gro_receive_entry: packets a NAPI driver receives, before GRO
@nic_send_bytes  net_dev_xmit: packets passed to the driver (still GSO-sized when the device
                 segments them itself)
Loopback has no NAPI receive: @nic_recv_bytes stays empty on lo.";

#[derive(Parser, Debug)]
#[command(name = "netsize", about = "Histograms of packet sizes at the device layer", after_help = EXAMPLES)]
struct Opts {
    /// Only this interface (its name, as in `ip link`)
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = parse_ifname)]
    interface: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Histogram names by index of the `sizes` map (enum netsize_point in netsize.h), in the order
/// they are printed (bpftrace prints maps sorted by name).
const POINTS: [(u32, &str); 4] = [
    (2, "nic_recv_bytes"),
    (3, "nic_send_bytes"),
    (0, "recv_bytes"),
    (1, "send_bytes"),
];

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    warn_missing_interface(tool.name, o.interface.as_deref(), &o.common);

    let skel = s.load::<NetsizeSkelBuilder>(|open, _plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.filter_ifname = ifname_bytes(o.interface.as_deref());
        Ok(())
    })?;

    s.wait_then_report(
        "net device packet sizes",
        libbpf_rs::skel::Skel::object(&skel),
    );

    let mut out = Output::new(o.common.format(), Vec::new());
    for (point, name) in POINTS {
        let per_cpu = skel
            .maps
            .sizes
            .lookup_percpu(&point.to_ne_bytes(), MapFlags::ANY)?
            .unwrap_or_default();
        print_log2(&mut out, name, "bytes", &[], &sum_percpu(&per_cpu));
    }
    Ok(())
}
