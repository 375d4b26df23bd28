//! so1stbyte: time from connect() to the first byte read on that socket, as per-process log2
//! histograms of microseconds printed at exit.

use std::ffi::OsString;

use crate::core::bpf::Pod;
use crate::core::caps::{Hook, Plan};
use crate::core::hist::print_log2;
use crate::core::output::{comm_str, Output, Value};
use crate::tools::{PidOpts, Tool};

crate::skel!("so1stbyte");

unsafe impl Pod for types::so1stbyte_key {}
unsafe impl Pod for types::hist {}

pub static TOOL: Tool = Tool {
    name: "so1stbyte",
    aliases: &[],
    about: "Time from connect() to the first byte read, per process (histograms at exit)",
    plans: &[Plan::new(
        "tracepoint",
        &[Hook::Tracepoint],
        "syscalls/sys_{enter,exit}_connect, sys_enter_close, sys_{enter,exit}_{read,readv,\
                 pread64,preadv,preadv2,recvfrom,recvmsg,recvmmsg} + fd->sock",
    )],
    cli,
    run,
    verify: crate::core::bpf::verify::<So1stbyteSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  so1stbyte               # histograms until Ctrl-C
  so1stbyte -d 10         # for 10 seconds
  so1stbyte -p 181        # only PID 181
  so1stbyte --json        # one JSON object per histogram, with exact bucket bounds

@us[COMM, PID] counts IPv4/IPv6 connections by the microseconds from the start of connect() to the
return of the first read-family call (read, readv, recv*, pread*) that got data on that socket:
the handshake, the request and the server's time to its first byte. A connection closed before
any data arrived is not counted. Sockets handed to another process, or read through io_uring,
are not followed.";

fn cli() -> clap::Command {
    PidOpts::command(
        "so1stbyte",
        "Histograms of the time from connect() to the first byte read",
        EXAMPLES,
    )
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let (o, mut s) = PidOpts::start(tool, args)?;

    let skel = s.load::<So1stbyteSkelBuilder>(|_, _| Ok(()))?;

    s.wait_then_report(
        "connect() to first byte",
        libbpf_rs::skel::Skel::object(&skel),
    );

    let mut hists: Vec<(types::so1stbyte_key, types::hist)> =
        crate::core::maps::entries(&skel.maps.hists)?;
    hists.sort_by_key(|(k, _)| (comm_str(&k.comm), k.pid));
    let mut out = Output::new(o.common.format(), Vec::new());
    for (k, h) in &hists {
        let comm = comm_str(&k.comm);
        print_log2(
            &mut out,
            "us",
            "us",
            &[
                ("comm", Value::Str(&comm)),
                ("pid", Value::U64(k.pid.into())),
            ],
            &h.slots,
        );
    }
    Ok(())
}
