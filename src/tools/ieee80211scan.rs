//! ieee80211scan: Wi-Fi scans: who started each, the channels asked for, and how long it took.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use clap::Parser;

use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::Common;
use crate::core::error::Unsupported;
use crate::core::output::{comm_str, json_string, Format, Output, Value};
use crate::core::table::Owners;
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};

crate::skel!("ieee80211scan");

unsafe impl Pod for types::ieee80211scan_event {}

pub static TOOL: Tool = Tool {
    name: "ieee80211scan",
    aliases: &[],
    about: "Wi-Fi scans: requester, channels and duration",
    plans: &[Plan::new(
        "raw_tp",
        &[Hook::RawTp],
        "cfg80211/rdev_scan + cfg80211/cfg80211_scan_done",
    )
    .checked(wireless_stack)],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<Ieee80211scanSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  ieee80211scan           # every Wi-Fi scan: start, channels, completion
  ieee80211scan --json    # one object per scan start (with its channels) and per completion

Trigger a scan with e.g. 'iw dev wlan0 scan trigger'. A scan is timed from the moment cfg80211
hands it to the driver to the driver reporting it done. The channels listed are those the scan
request asks for, with whether a beacon was ever heard on them (beacon_found). Drivers that
split a scan (6 GHz) show each part as a scan.";

#[derive(Parser, Debug)]
#[command(name = "ieee80211scan", about = "Trace IEEE 802.11 (Wi-Fi) scans", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    common: Common,
}

const SCAN_STARTED: u32 = 1;

/// Whether the kernel has cfg80211 (the wireless configuration layer every Wi-Fi driver uses),
/// with BTF to relocate the programs against, and why not.
fn wireless_stack() -> Result<(), String> {
    let btf_module = Path::new("/sys/kernel/btf/cfg80211").exists();
    let loaded = Path::new("/sys/module/cfg80211").exists();
    if btf_module || (loaded && vmlinux_has_type("cfg80211_scan_request")) {
        return Ok(());
    }
    if loaded {
        return Err("cfg80211 is loaded but has no BTF (a kernel built without \
                    CONFIG_DEBUG_INFO_BTF_MODULES): its types cannot be read"
            .into());
    }
    let dir = Path::new("/lib/modules")
        .join(crate::core::caps::osrelease())
        .join("kernel/net/wireless");
    if ["ko", "ko.xz", "ko.zst", "ko.gz"]
        .iter()
        .any(|ext| dir.join(format!("cfg80211.{ext}")).is_file())
    {
        return Err(
            "the wireless stack (cfg80211) is a module that is not loaded: there is no \
                    Wi-Fi device; it loads with a Wi-Fi driver (or modprobe cfg80211)"
                .into(),
        );
    }
    Err(
        "no wireless stack in this kernel (no cfg80211/mac80211: not built in, no module, no \
         BTF types or functions, no cfg80211 tracepoints)"
            .into(),
    )
}

fn vmlinux_has_type(name: &str) -> bool {
    crate::core::btf::with_vmlinux(|btf| {
        btf.type_by_name::<libbpf_rs::btf::types::Struct>(name)
            .is_some()
    })
    .unwrap_or(false)
}

/// nl80211_band names, as the book printed them.
fn band_name(band: u8) -> &'static str {
    match band {
        0 => "2GHZ",
        1 => "5GHZ",
        2 => "60GHZ",
        3 => "6GHZ",
        4 => "S1GHZ",
        5 => "LC",
        _ => "?",
    }
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    // Checked before anything else so that the reason is the one sentence people see.
    wireless_stack().map_err(|why| Unsupported::new(tool.name, why))?;
    let mut s = start(tool, &o.common)?;

    let skel = s.load::<Ieee80211scanSkelBuilder>(|_, _| Ok(()))?;

    let format = o.common.format();
    let mut out = Output::new(format, Vec::new());
    let owners = Owners::new(&o.common);
    announce("Wi-Fi scans");
    let clock = Clock::start();
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::ieee80211scan_event>(data) else {
            return;
        };
        print_event(out, &clock, &owners, &e);
    })?;
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

fn print_event(out: &mut Output, clock: &Clock, owners: &Owners, e: &types::ieee80211scan_event) {
    let owner = owners.lookup(e.cgroup);
    let time = clock.hms(e.ts_ns);
    let comm = comm_str(&e.comm);
    let wiphy = comm_str(&e.wiphy);
    let listed = (e.listed as usize).min(e.channels.len());
    let channels = &e.channels[..listed];
    if e.kind == SCAN_STARTED {
        if out.format() == Format::Json {
            let mut list = String::from("[");
            for (i, c) in channels.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str("{\"band\":");
                json_string(&mut list, band_name(c.band));
                write!(
                    list,
                    ",\"freq\":{},\"freq_offset_khz\":{},\"beacon_found\":{}}}",
                    c.center_freq,
                    c.freq_offset,
                    c.beacon_found != 0
                )
                .unwrap();
            }
            list.push(']');
            let ifname = comm_str(&e.ifname);
            let mut fields = vec![
                ("time", Value::Str(&time)),
                ("event", Value::Str("scan_started")),
                ("pid", Value::U64(e.pid.into())),
                ("comm", Value::Str(&comm)),
                ("wiphy", Value::Str(&wiphy)),
                ("ifname", Value::Str(&ifname)),
                ("flags", Value::U64(e.flags.into())),
                ("n_channels", Value::U64(e.n_channels.into())),
                ("channels", Value::Json(&list)),
            ];
            fields.extend(owners.fields(e.cgroup, owner.as_ref()));
            out.record(&fields);
            return;
        }
        let container = owners.text(e.cgroup, owner.as_ref());
        out.text(&format!(
            "{time} scan started (on-CPU PID {}, {comm}{})",
            e.pid,
            container.map_or(String::new(), |c| format!(", {c}"))
        ));
        for c in channels {
            out.text(&format!(
                "scanning channel {} freq {}: beacon_found {}",
                band_name(c.band),
                c.center_freq,
                c.beacon_found
            ));
        }
        if e.n_channels as usize > listed {
            out.text(&format!(
                "... and {} more channels",
                e.n_channels as usize - listed
            ));
        }
        return;
    }
    let ms = e.duration_ns as f64 / 1e6;
    if out.format() == Format::Json {
        out.record(&[
            ("time", Value::Str(&time)),
            ("event", Value::Str("scan_done")),
            ("wiphy", Value::Str(&wiphy)),
            ("duration_ms", Value::F64(ms, 3)),
            (
                "aborted",
                Value::Json(if e.aborted != 0 { "true" } else { "false" }),
            ),
        ]);
        return;
    }
    let aborted = if e.aborted != 0 { " (aborted)" } else { "" };
    out.text(&format!(
        "scan completed: {} ms{aborted}",
        e.duration_ns / 1_000_000
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use libbpf_rs::skel::{OpenSkel as _, SkelBuilder as _};
    use std::mem::MaybeUninit;

    /// The programs must pass the verifier even where the wireless types are missing (their
    /// bodies are then dead code), so the object loads on any kernel. Needs root.
    #[test]
    fn object_loads_without_wireless_types() {
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let mut obj = MaybeUninit::uninit();
        let open = Ieee80211scanSkelBuilder::default().open(&mut obj).unwrap();
        open.load().expect("the object loads");
    }

    #[test]
    fn bands() {
        assert_eq!(band_name(0), "2GHZ");
        assert_eq!(band_name(3), "6GHZ");
    }
}
