//! socksize: per-process log2 histograms of socket read and write sizes, printed at exit.

use std::ffi::OsString;

use libbpf_rs::skel::OpenSkel as _;

use crate::core::bpf::Pod;
use crate::core::hist::print_log2;
use crate::core::output::{comm_str, Output, Value};
use crate::tools::{sockmsg, PidOpts, Tool};

crate::skel!("socksize");

unsafe impl Pod for types::socksize_key {}
unsafe impl Pod for types::hist {}

const SOCKSIZE_WRITE: u32 = 1;

pub static TOOL: Tool = Tool {
    name: "socksize",
    aliases: &[],
    about: "Socket I/O sizes: log2 histograms of read and write bytes per process (at exit)",
    plans: &sockmsg::plans("fexit", "kretprobe"),
    cli,
    run,
    verify: sockmsg::verify::<SocksizeSkelBuilder>,
    export: Some(crate::core::export::Export {
        order: 8,
        load: export::load,
    }),
};

const EXAMPLES: &str = "\
Examples:
  socksize                # histograms until Ctrl-C
  socksize -d 10          # for 10 seconds
  socksize -p 181         # only PID 181
  socksize --json         # one JSON object per histogram, with exact bucket bounds

@read_bytes[COMM] and @write_bytes[COMM] count the socket receive and send calls of each process
name by the bytes each call returned (log2 buckets: [512, 1K) holds 512..1023). Calls that moved
no data (errors, EAGAIN, end of stream) are not counted. Reads include MSG_PEEK reads.";

fn cli() -> clap::Command {
    PidOpts::command(
        "socksize",
        "Histograms of socket I/O sizes per process",
        EXAMPLES,
    )
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<SocksizeSkelBuilder>(|open, plan| {
        sockmsg::autoload(open.open_object_mut(), plan);
        Ok(())
    })?;

    s.wait_then_report("socket I/O sizes", libbpf_rs::skel::Skel::object(&skel));

    let mut hists: Vec<(types::socksize_key, types::hist)> =
        crate::core::maps::entries(&skel.maps.sizes)?;
    // bpftrace's order: @read_bytes before @write_bytes, then by process name.
    hists.sort_by_key(|(k, _)| (k.dir, comm_str(&k.comm)));
    let mut out = Output::new(o.common.format(), Vec::new());
    for (k, h) in &hists {
        let name = if k.dir == SOCKSIZE_WRITE {
            "write_bytes"
        } else {
            "read_bytes"
        };
        let comm = comm_str(&k.comm);
        print_log2(
            &mut out,
            name,
            "bytes",
            &[("comm", Value::Str(&comm))],
            &h.slots,
        );
    }
    Ok(())
}

// ---------------------------------------------------------------- netbpf exporter

/// `netbpf exporter`: socket I/O size histograms built in the kernel per direction, not per
/// process (socksize.bpf.c in exporter mode, maps of common/export.bpf.h).
pub mod export {
    use super::*;

    crate::export_object!(OpenSocksizeSkel, SocksizeSkel);

    use crate::core::export::{
        self, Buckets, Ctx, ExportMaps, ExportObject as _, Family, Loaded, Scale, Source, Unit,
    };

    /// 1 byte to 2^27-1 (128 MiB); exact integer bounds.
    const SIZES: Buckets = Buckets {
        scale: Scale::Integer,
        first: 0,
        last: 27,
    };

    struct Sizes(ExportMaps);

    impl Source for Sizes {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let h = self.0.hists()?;
            let dir = |d: u32| {
                let d = if d == SOCKSIZE_WRITE { "write" } else { "read" };
                vec![("direction", d.to_string())]
            };
            Ok(vec![Family::Histogram {
                name: "netbpf_socket_io_size",
                help: "Bytes moved by each socket send (write) and receive (read) call that moved data",
                unit: Unit::Bytes,
                buckets: SIZES,
                series: self.0.histogram(&h, 0, &[0, SOCKSIZE_WRITE], dir),
            }])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.0.lost()
        }
    }

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) =
            export::load::<SocksizeSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, plan| {
                open.export_setup(ctx)?;
                sockmsg::autoload(open.open_object_mut(), plan);
                Ok(())
            })?;
        let maps = skel.export_maps(ctx)?;
        Ok(Loaded {
            source: Box::new(Sizes(maps)),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}
