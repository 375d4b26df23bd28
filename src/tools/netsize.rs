//! netsize: packet sizes at the device layer, four log2 histograms printed at exit.

use std::ffi::OsString;

use clap::Parser;
use libbpf_rs::{MapCore, MapFlags};

use crate::core::caps::{Hook, Plan};
use crate::core::cli::Common;
use crate::core::hist::{print_log2, sum_percpu};
use crate::core::output::Output;
use crate::tools::{announce, start, Tool};

mod skel {
    include!(concat!(env!("OUT_DIR"), "/netsize.skel.rs"));
}
use skel::*;

pub static TOOL: Tool = Tool {
    name: "netsize",
    aliases: &[],
    about: "Packet sizes at the device layer (stack and driver, send and receive): histograms",
    plans: &[Plan {
        name: "tp_btf",
        needs: &[Hook::TpBtf],
        attach:
            "net/netif_receive_skb, net/net_dev_queue, net/napi_gro_receive_entry, net/net_dev_xmit",
        check: None,
    }],
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

/// An interface name as the kernel allows it: 1 to 15 bytes, no '/', ':' or whitespace.
pub(crate) fn parse_ifname(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "'{s}' is not an interface name (1 to 15 characters)"
        ));
    }
    if s == "." || s == ".." || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("'{s}' is not an interface name"));
    }
    Ok(s.to_string())
}

/// The interface name as the NUL-padded array the BPF side compares with.
pub(crate) fn ifname_bytes(name: Option<&str>) -> [i8; 16] {
    let mut a = [0i8; 16];
    for (d, s) in a.iter_mut().zip(name.unwrap_or_default().bytes()) {
        *d = s as i8;
    }
    a
}

/// Says on stderr when the traced namespace has no interface `iface` (yet): the tool runs, and
/// matches from the moment one appears. `netns` is the --netns argument: a path is entered to
/// look; a cookie names no place to look from, and is not checked.
pub(crate) fn warn_missing_interface(tool: &str, iface: Option<&str>, netns: Option<&str>) {
    let Some(name) = iface else {
        return;
    };
    let file = match netns {
        None => None,
        Some(arg) if arg.parse::<u64>().is_ok() => return,
        Some(arg) => match std::fs::File::open(arg) {
            Ok(f) => Some(f),
            Err(_) => return,
        },
    };
    let Ok(cname) = std::ffi::CString::new(name) else {
        return;
    };
    let found = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this short-lived thread only; if_nametoindex reads a C string.
        unsafe {
            if let Some(f) = &file {
                if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return true;
                }
            }
            libc::if_nametoindex(cname.as_ptr()) != 0
        }
    })
    .join()
    .unwrap_or(true);
    if !found {
        eprintln!(
            "netbpf {tool}: there is no interface {name} in the traced network namespace (yet): \
             nothing matches until one appears"
        );
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    warn_missing_interface(tool.name, o.interface.as_deref(), o.common.netns.as_deref());

    let filters = s.filters.clone();
    let skel = s.load::<NetsizeSkelBuilder>(|open, _plan| {
        let rodata = open.maps.rodata_data.as_deref_mut().expect("rodata");
        crate::set_filters!(&mut *rodata, filters);
        rodata.filter_ifname = ifname_bytes(o.interface.as_deref());
        Ok(())
    })?;

    announce("net device packet sizes");
    s.run.wait();

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert_eq!(parse_ifname("veth0").unwrap(), "veth0");
        assert!(parse_ifname("").is_err());
        assert!(parse_ifname("a-very-long-name0").is_err());
        assert!(parse_ifname("a/b").is_err());
        assert_eq!(ifname_bytes(Some("lo"))[..3], [b'l' as i8, b'o' as i8, 0]);
    }
}
