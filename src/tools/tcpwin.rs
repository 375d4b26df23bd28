//! tcpwin: TCP congestion window and send buffer per socket, as CSV for plotting, and
//! (--plot) an SVG chart of cwnd and ssthresh over time.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use crate::core::addr::{endpoint, ip_version, Tuple};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{Common, Family, PortFilters};
use crate::core::output::{Column, Format, Value};
use crate::core::table::Table;
use crate::core::time::Clock;
use crate::tools::{announce, start, Tool};
use crate::{tuple_of, usage};

crate::skel!("tcpwin");

unsafe impl Pod for types::tcpwin_event {}

pub static TOOL: Tool = Tool {
    name: "tcpwin",
    aliases: &[],
    about: "TCP congestion window and send buffer per socket (CSV), with an SVG plot",
    plans: &[Plan::new(
        "tp_btf",
        &[Hook::TpBtf],
        "tcp/tcp_probe + sock/inet_sock_set_state",
    )],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: crate::core::bpf::verify::<TcpwinSkelBuilder>,
    export: None,
};

const EXAMPLES: &str = "\
Examples:
  tcpwin > win.csv            # every sample as CSV, until Ctrl-C
  tcpwin -L 5201 -d 10        # sockets on local port 5201, for 10 seconds
  tcpwin --plot cwnd.svg      # also draw snd_cwnd and snd_ssthresh over time per socket
  tcpwin --json               # one JSON object per sample, with the connection's addresses

A sample is taken each time a segment (typically an ACK) arrives on an established socket.
snd_cwnd and snd_ssthresh are in packets (ssthresh is 2147483647 until the first loss);
sk_sndbuf and sk_wmem_queued in bytes. time_us counts from the start of tracing. conn numbers
connections in the order they are first sampled: sock is the kernel's socket address, which a
later connection may reuse; conn and the addresses and ports tell them apart.
--plot writes SVG (text needs no font files); the 8 connections with the most samples are drawn,
each labelled with its addresses and ports.";

#[derive(Parser, Debug)]
#[command(name = "tcpwin", about = "Trace TCP congestion window and send buffer (CSV)", after_help = EXAMPLES)]
struct Opts {
    #[command(flatten)]
    ports: PortFilters,
    #[command(flatten)]
    family: Family,
    /// Also draw snd_cwnd and snd_ssthresh over time per socket into this SVG file at exit
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

const SSTHRESH_INFINITE: u32 = 0x7fff_ffff;
/// Samples kept for --plot (about 16 bytes each); later ones are still printed.
const PLOT_MAX_POINTS: usize = 4_000_000;
const PLOT_MAX_CONNS: usize = 8;

/// One connection's samples for the plot.
struct Series {
    tuple: Tuple,
    /// (seconds, snd_cwnd, snd_ssthresh)
    points: Vec<(f64, u32, u32)>,
}

/// One congestion-window sample, as printed (the book's tcpwin.bt CSV line).
struct Row {
    e: types::tcpwin_event,
    t: Tuple,
    secs: f64,
    sock: String,
    /// The connection's number, in the order connections were first sampled.
    conn: u64,
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("event", "event", 0), |_| Value::Str("rcv"))
        .col(Column::new("sock", "sock", 0), |r| Value::Str(&r.sock))
        .col(Column::new("time_us", "time_us", 0), |r| {
            Value::U64((r.secs * 1e6) as u64)
        })
        .col(Column::new("snd_cwnd", "snd_cwnd", 0), |r| {
            Value::U64(r.e.snd_cwnd.into())
        })
        .col(Column::new("snd_ssthresh", "snd_ssthresh", 0), |r| {
            Value::U64(r.e.snd_ssthresh.into())
        })
        .col(Column::new("sk_sndbuf", "sk_sndbuf", 0), |r| {
            Value::I64(r.e.sk_sndbuf.into())
        })
        .col(Column::new("sk_wmem_queued", "sk_wmem_queued", 0), |r| {
            Value::I64(r.e.sk_wmem_queued.into())
        })
        // After the book's columns, so its CSV readers still find theirs in place.
        .col(Column::new("conn", "conn", 0), |r| Value::U64(r.conn))
        .col(Column::json("ip"), |r| Value::U64(ip_version(r.t.family)))
        .col(Column::new("laddr", "laddr", 0), |r| Value::Ip(r.t.laddr))
        .col(Column::new("lport", "lport", 0), |r| {
            Value::U64(r.t.lport.into())
        })
        .col(Column::new("raddr", "raddr", 0), |r| Value::Ip(r.t.raddr))
        .col(Column::new("rport", "rport", 0), |r| {
            Value::U64(r.t.rport.into())
        })
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    // Refuse a file that cannot be written before tracing, not after.
    let plot_file = match &o.plot {
        Some(path) => Some(plot::create(path)?),
        None => None,
    };
    let mut s = start(tool, &o.common)?;
    s.filters.family = o.family.af();
    o.ports.apply(&mut s.filters);

    let skel = s.load::<TcpwinSkelBuilder>(|_, _| Ok(()))?;

    let format = if o.common.json {
        Format::Json
    } else {
        Format::Csv
    };
    let table = table().containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(format);
    out.header();
    announce("TCP congestion windows");
    let clock = Clock::start();
    // A connection is (socket address, start time): the kernel reuses addresses.
    let mut conns: HashMap<(u64, u64), u64> = HashMap::new();
    let mut series: HashMap<u64, Series> = HashMap::new();
    let mut kept = 0usize;
    s.run.stream(&skel.maps.events, &mut out, |data, out| {
        let Some(e) = read_event::<types::tcpwin_event>(data) else {
            return;
        };
        let next = conns.len() as u64 + 1;
        let conn = *conns.entry((e.skaddr, e.conn_start_ns)).or_insert(next);
        let row = Row {
            t: tuple_of!(e.tuple),
            secs: clock.secs(e.ts_ns).max(0.0),
            sock: format!("0x{:x}", e.skaddr),
            conn,
            e,
        };
        table.row(out, &row);
        let (t, secs, e) = (row.t, row.secs, row.e);
        if plot_file.is_some() && kept < PLOT_MAX_POINTS {
            kept += 1;
            series
                .entry(row.conn)
                .or_insert_with(|| Series {
                    tuple: t,
                    points: Vec::new(),
                })
                .points
                .push((secs, e.snd_cwnd, e.snd_ssthresh));
        }
    })?;
    drop(out);
    s.report(libbpf_rs::skel::Skel::object(&skel));
    if let (Some(file), Some(path)) = (plot_file, &o.plot) {
        if kept == PLOT_MAX_POINTS {
            eprintln!("netbpf tcpwin: the plot shows the first {PLOT_MAX_POINTS} samples only");
        }
        let mut all: Vec<Series> = series.into_values().collect();
        if all.is_empty() {
            drop(file);
            let _ = std::fs::remove_file(path);
            eprintln!(
                "netbpf tcpwin: no samples, nothing to plot: {} not written",
                path.display()
            );
            return Ok(());
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.points.len()));
        let shown = all.len().min(PLOT_MAX_CONNS);
        plot::write(file, path, &all[..shown])?;
        eprintln!(
            "netbpf tcpwin: plotted {shown} of {} connections into {}",
            all.len(),
            path.display()
        );
    }
    Ok(())
}

/// The SVG chart: one colour per socket, snd_cwnd solid, snd_ssthresh dashed.
mod plot {
    use super::*;
    use plotters::prelude::*;

    pub fn create(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if ext.as_deref() != Some("svg") {
            return Err(usage!(
                "--plot {}: only SVG is supported (name the file *.svg): bitmap output would \
                 need a font file for its text; convert the SVG (e.g. rsvg-convert -o x.png \
                 x.svg)",
                path.display()
            ));
        }
        std::fs::File::create(path)
            .map_err(|e| usage!("--plot {}: cannot create it: {e}", path.display()))
    }

    fn label(t: &Tuple) -> String {
        format!(
            "{} > {}",
            endpoint(t.laddr, t.lport),
            endpoint(t.raddr, t.rport)
        )
    }

    /// Renders the chart to SVG text.
    pub fn render(series: &[Series]) -> anyhow::Result<String> {
        let finite = |ss: u32| ss < SSTHRESH_INFINITE;
        let times = || series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let x_min = times().fold(f64::INFINITY, f64::min);
        let x_min = if x_min.is_finite() {
            x_min.floor()
        } else {
            0.0
        };
        let x_max = times().fold(x_min, f64::max).max(x_min + 0.001);
        let y_max = series
            .iter()
            .flat_map(|s| s.points.iter())
            .map(|&(_, cwnd, ss)| if finite(ss) { cwnd.max(ss) } else { cwnd })
            .max()
            .unwrap_or(0)
            .max(10);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (1000, 600)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_error)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "TCP snd_cwnd (solid) and snd_ssthresh (dashed) per socket",
                    ("sans-serif", 20),
                )
                .margin(15)
                .x_label_area_size(45)
                .y_label_area_size(60)
                .build_cartesian_2d(
                    x_min..x_max + (x_max - x_min) * 0.02,
                    0u32..y_max + y_max / 10,
                )
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc("packets")
                .draw()
                .map_err(plot_error)?;
            for (i, s) in series.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let cwnd: Vec<(f64, u32)> = s.points.iter().map(|p| (p.0, p.1)).collect();
                chart
                    .draw_series(LineSeries::new(cwnd, color.stroke_width(2)))
                    .map_err(plot_error)?
                    .label(label(&s.tuple))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                let ssthresh: Vec<(f64, u32)> = s
                    .points
                    .iter()
                    .filter(|p| finite(p.2))
                    .map(|p| (p.0, p.2))
                    .collect();
                if !ssthresh.is_empty() {
                    chart
                        .draw_series(DashedLineSeries::new(ssthresh, 6, 4, color.into()))
                        .map_err(plot_error)?;
                }
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(plot_error)?;
            root.present().map_err(plot_error)?;
        }
        Ok(svg)
    }

    fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
        anyhow::anyhow!("drawing the plot failed: {e:?}")
    }

    pub fn write(
        mut file: std::fs::File,
        path: &std::path::Path,
        series: &[Series],
    ) -> anyhow::Result<()> {
        use std::io::Write;
        let svg = render(series)?;
        file.write_all(svg.as_bytes())
            .map_err(|e| anyhow::anyhow!("--plot {}: {e}", path.display()))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn renders_svg_with_both_lines_and_legend() {
            let lo: std::net::IpAddr = "127.0.0.1".parse().unwrap();
            let s = Series {
                tuple: Tuple {
                    family: 2,
                    laddr: lo,
                    lport: 40000,
                    raddr: lo,
                    rport: 5201,
                },
                points: vec![
                    (0.0, 10, SSTHRESH_INFINITE),
                    (0.5, 40, SSTHRESH_INFINITE),
                    (1.0, 20, 20),
                    (1.5, 30, 20),
                ],
            };
            let svg = render(&[s]).unwrap();
            assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(svg.contains("127.0.0.1:40000 &gt; 127.0.0.1:5201"));
            assert!(svg.contains("<polyline"));
            assert!(svg.contains("time (s)"));
        }

        #[test]
        fn only_svg_names_are_accepted() {
            let e = create(std::path::Path::new("/tmp/x.png")).unwrap_err();
            assert!(e.to_string().contains("only SVG"), "{e}");
        }
    }
}
