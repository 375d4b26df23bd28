//! nettxlat: device transmit latency (driver hand-off to the skb's consumption), a log2
//! histogram in microseconds; `-D` (or the name nettxlat-dev) gives one per device.

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::cli::Common;
use crate::core::hist::print_log2;
use crate::core::iface::{ifname_bytes, parse_ifname};
use crate::core::maps::entries;
use crate::core::output::{comm_str, Output, Value};
use crate::tools::{start, Tool};

crate::skel!("nettxlat");

unsafe impl Pod for types::nettxlat_key {}
unsafe impl Pod for types::hist {}

pub static TOOL: Tool = Tool {
    name: "nettxlat",
    aliases: &["nettxlat-dev"],
    about: "Device transmit latency (driver hand-off to skb consumption): histogram",
    plans: &[Plan::new(
        "tp_btf",
        &[Hook::TpBtf],
        "net/net_dev_start_xmit, skb/consume_skb, net/net_dev_queue, skb/kfree_skb",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<NettxlatSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  nettxlat                # histogram of transmit latency, printed at Ctrl-C
  nettxlat -D             # one histogram per device (the book's nettxlat-dev)
  nettxlat -i eth0 -d 10  # only eth0, for 10 seconds
  nettxlat --json         # one JSON object per histogram

The interval starts when the stack hands an skb to the driver (net_dev_start_xmit) and ends when
that skb is freed as consumed (consume_skb): on a NIC, the TX completion. Software devices do not
free the skb at transmit: lo and veth pass it on to the receive path, so there the interval lasts
until the packet has been delivered and consumed on the other side (for UDP, when the receiving
application reads it); skbs freed without consume_skb (most TCP ones) never show.";

#[derive(Parser, Debug)]
#[command(name = "nettxlat", about = "Histogram of device transmit latency", after_help = EXAMPLES)]
struct Opts {
    /// One histogram per transmitting device (as the book's nettxlat-dev)
    #[arg(short = 'D', long = "per-device")]
    per_device: bool,
    /// Only packets transmitted on this interface
    #[arg(short = 'i', long = "interface", value_name = "IFACE", value_parser = parse_ifname)]
    interface: Option<String>,
    #[command(flatten)]
    common: Common,
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let called_as_dev = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "nettxlat-dev");
    let mut o = Opts::parse_from(args);
    o.per_device |= called_as_dev;
    let mut s = start(tool, &o.common)?;
    crate::core::iface::warn_missing_interface(tool.name, o.interface.as_deref(), &o.common);

    let skel = s.load::<NettxlatSkelBuilder>(|open, _plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        rodata.filter_ifname = ifname_bytes(o.interface.as_deref());
        rodata.per_device = o.per_device;
        Ok(())
    })?;

    s.wait_then_report(
        "device transmit latency",
        libbpf_rs::skel::Skel::object(&skel),
    );

    let mut hists = entries::<types::nettxlat_key, types::hist>(&skel.maps.latency_us)?;
    let mut out = Output::new(o.common.format(), Vec::new());
    if !o.per_device {
        let slots = hists.first().map_or([0; 64], |(_, h)| h.slots);
        print_log2(&mut out, "us", "us", &[], &slots);
        return Ok(());
    }
    if hists.is_empty() {
        crate::core::run::report_nothing(
            tool.name,
            "no packet handed to a matching device was consumed",
        );
    }
    hists.sort_by_key(|(k, _)| comm_str(&k.dev));
    for (key, h) in &hists {
        let dev = comm_str(&key.dev);
        print_log2(&mut out, "us", "us", &[("dev", Value::Str(&dev))], &h.slots);
    }
    Ok(())
}
