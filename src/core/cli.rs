//! Options every tool shares, and their translation into the in-kernel filters of
//! `common/filter.bpf.h`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::core::addr::{parse_ports, AF_INET, AF_INET6};
use crate::core::output::{Column, Format, Value};
use crate::core::time::Clock;

/// Matches MAX_FILTER_PORTS in common/filter.bpf.h.
pub const MAX_FILTER_PORTS: usize = 8;

#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// Only this network namespace: its inode (as lsns shows it), its netns cookie, or a path
    /// such as /proc/PID/ns/net or /run/netns/NAME (--netns-id: bcc's spelling)
    #[arg(long, value_name = "NETNS", alias = "netns-id")]
    pub netns: Option<String>,
    /// Only this cgroup (v2) and everything below it: a path, absolute or relative to the
    /// cgroup v2 mount, or a cgroup id
    #[arg(long, value_name = "PATH|ID", conflicts_with_all = ["container", "pod"])]
    pub cgroup: Option<String>,
    /// Only this container (podman, docker, containerd, CRI-O): a name, an id or a unique id
    /// prefix
    #[arg(long, value_name = "ID|NAME", conflicts_with = "pod")]
    pub container: Option<String>,
    /// Only this Kubernetes pod (by its containers' CRI labels; a podman pod whose containers
    /// carry them too)
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub pod: Option<String>,
    /// Only cgroups whose ids are keys of this BPF hash map pinned in bpffs (bcc's --cgroupmap:
    /// 8-byte keys, the cgroup v2 ids; 8-byte values, not read); exact ids, read per event
    #[arg(long, value_name = "PATH")]
    pub cgroupmap: Option<PathBuf>,
    /// Add a CONTAINER column (and POD where containers carry pod labels): the container each
    /// event is attributed to, "host" outside containers (--json always has them)
    #[arg(long)]
    pub containers: bool,
    /// Print one JSON object per line instead of a table
    #[arg(long)]
    pub json: bool,
    /// Stop SECS seconds after starting, loading included (default: until Ctrl-C)
    #[arg(short = 'd', long = "duration", value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

impl Common {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            Format::Table
        }
    }
}

/// The longest run length or interval accepted: ten years (so deadlines never overflow).
pub const MAX_SECS: f64 = 10.0 * 365.0 * 86400.0;

/// The shortest interval between outputs of interval tools: shorter ones only flood the
/// terminal (each output reads the kernel's maps).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `-d SECS` and the like: a positive number of seconds, at most [`MAX_SECS`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match s.trim().parse::<f64>() {
        Ok(secs) if secs > MAX_SECS => Err(format!(
            "'{s}' seconds is too long (at most {MAX_SECS} s, ten years)"
        )),
        Ok(secs) if secs > 0.0 => Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("'{s}' is not a positive number of seconds")),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

/// The interval positional: like [`parse_duration`], and at least [`MIN_INTERVAL`].
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "interval '{s}' is too short (at least {} s)",
            MIN_INTERVAL.as_secs_f64()
        ));
    }
    Ok(d)
}

/// A process id that exists now. A thread id is refused, naming its process: the filters
/// compare the process id (tgid), so a thread id would match nothing.
pub fn parse_pid(s: &str) -> Result<u32, String> {
    let pid: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a process id"))?;
    if pid == 0 {
        return Err("pid 0 is not a process".into());
    }
    let status = match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s,
        Err(_) => return Err(format!("no process with pid {pid}")),
    };
    match tgid_in_status(&status) {
        Some(tgid) if tgid != pid => {
            let comm = std::fs::read_to_string(format!("/proc/{tgid}/comm")).unwrap_or_default();
            Err(format!(
                "{pid} is a thread of process {tgid} ({}); -p takes a process id: use -p {tgid}",
                comm.trim()
            ))
        }
        _ => Ok(pid),
    }
}

/// The `Tgid:` field of a /proc/PID/status text.
fn tgid_in_status(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `-p PID`: only this process, filtered in the kernel (the tools' shared option).
#[derive(Args, Debug, Clone, Default)]
pub struct PidFilter {
    /// Only this process
    #[arg(short = 'p', long = "pid", value_parser = parse_pid)]
    pub pid: Option<u32>,
}

impl PidFilter {
    pub fn apply(&self, f: &mut Filters) {
        f.tgid = self.pid.unwrap_or(0);
    }
}

pub fn parse_port_list(s: &str) -> Result<Vec<u16>, String> {
    parse_ports(s, MAX_FILTER_PORTS)
}

/// The `[interval] [count]` positionals of interval tools.
#[derive(Args, Debug, Clone, Default)]
pub struct Interval {
    /// Seconds between outputs (default 1, at least 0.1)
    #[arg(value_name = "INTERVAL", value_parser = parse_interval)]
    pub interval: Option<Duration>,
    /// Number of outputs (default: until Ctrl-C)
    #[arg(value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

impl Interval {
    pub fn every(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(1))
    }
}

/// -T / -t: time columns, from the event's kernel timestamp.
#[derive(Args, Debug, Clone, Default)]
pub struct Timestamps {
    /// Include a HH:MM:SS time column
    #[arg(short = 'T', long = "time")]
    pub time: bool,
    /// Include a seconds-since-start column
    #[arg(short = 't', long = "timestamp")]
    pub timestamp: bool,
}

/// The time cells of one event, in column order.
pub struct TimeCells {
    hms: Option<String>,
    secs: Option<f64>,
}

impl TimeCells {
    pub fn values(&self) -> impl Iterator<Item = Value<'_>> {
        self.hms
            .as_deref()
            .map(Value::Str)
            .into_iter()
            .chain(self.secs.map(|s| Value::F64(s, 6)))
    }
}

impl Timestamps {
    pub fn columns(&self) -> Vec<Column> {
        let mut c = Vec::new();
        if self.time {
            c.push(Column::new("TIME", "time", -8));
        }
        if self.timestamp {
            c.push(Column::new("TIME(s)", "ts", -9));
        }
        c
    }

    pub fn cells(&self, clock: &Clock, ts_ns: u64) -> TimeCells {
        TimeCells {
            hms: self.time.then(|| clock.hms(ts_ns)),
            secs: self.timestamp.then(|| clock.secs(ts_ns)),
        }
    }
}

/// -L / -D: local and remote port filters, run in the kernel.
#[derive(Args, Debug, Clone, Default)]
pub struct PortFilters {
    /// Only these local ports (comma list)
    #[arg(short = 'L', long = "localport", value_parser = parse_port_list)]
    pub lports: Option<Ports>,
    /// Only these remote ports (comma list)
    #[arg(short = 'D', long = "remoteport", value_parser = parse_port_list)]
    pub rports: Option<Ports>,
}

/// A port list as one clap value (a `Vec` field would make clap expect several values).
pub type Ports = Vec<u16>;

impl PortFilters {
    pub fn apply(&self, f: &mut Filters) {
        f.lports = Filters::ports(self.lports.as_deref().unwrap_or_default());
        f.rports = Filters::ports(self.rports.as_deref().unwrap_or_default());
    }
}

/// -4 / -6 as clap flags; both given is refused by clap (`conflicts_with`).
#[derive(Args, Debug, Clone, Default)]
pub struct Family {
    /// Trace IPv4 only
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Trace IPv6 only
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,
}

impl Family {
    pub fn af(&self) -> u16 {
        if self.ipv4 {
            AF_INET
        } else if self.ipv6 {
            AF_INET6
        } else {
            0
        }
    }
}

/// The options of the tools that follow TCP sessions (tcplife, tcpstates), bcc's: -p, -L/-D,
/// -4/-6, -w, -T/-t and -s.
#[derive(Args, Debug, Clone, Default)]
pub struct TcpSessionOpts {
    #[command(flatten)]
    pub pid: PidFilter,
    #[command(flatten)]
    pub ports: PortFilters,
    #[command(flatten)]
    pub family: Family,
    /// Wide columns (fits IPv6 addresses) and an IP column
    #[arg(short = 'w', long)]
    pub wide: bool,
    #[command(flatten)]
    pub stamps: Timestamps,
    /// Comma-separated values
    #[arg(short = 's', long = "csv", conflicts_with = "json")]
    pub csv: bool,
}

impl TcpSessionOpts {
    pub fn apply(&self, f: &mut Filters) {
        self.pid.apply(f);
        f.family = self.family.af();
        self.ports.apply(f);
    }

    /// CSV with -s, else what `common` asks for.
    pub fn format(&self, common: &Common) -> Format {
        if self.csv {
            Format::Csv
        } else {
            common.format()
        }
    }

    /// IP LADDR LPORT RADDR RPORT: IP in the table with -w or -s (as bcc), the addresses wide
    /// enough for IPv6 with -w.
    pub fn tuple_columns(&self) -> [crate::core::table::TupleColumn; 5] {
        use crate::core::table::TupleColumn;
        let [laddr, lport, raddr, rport] =
            TupleColumn::local_remote(if self.wide { -39 } else { -15 });
        [
            TupleColumn::ip(self.wide || self.csv),
            laddr,
            lport,
            raddr,
            rport,
        ]
    }
}

/// `--mntnsmap PATH` (bcc's), on the tools that filter in the process an event is about.
#[derive(Args, Debug, Clone, Default)]
pub struct MntnsFilter {
    /// Only processes whose mount namespace's inode is a key of this BPF hash map pinned in
    /// bpffs (bcc's --mntnsmap: 8-byte keys; 4-byte values, not read); read per event
    #[arg(long = "mntnsmap", value_name = "PATH")]
    pub mntnsmap: Option<PathBuf>,
}

impl MntnsFilter {
    pub fn apply(&self, f: &mut Filters) -> anyhow::Result<()> {
        if let Some(path) = &self.mntnsmap {
            f.mntns_map = Some(PinnedSet::open(IdSet::MountNamespaces, path)?);
        }
        Ok(())
    }
}

/// What the ids of a [`PinnedSet`] are, and the map layout bcc documents for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSet {
    /// --cgroupmap: cgroup v2 id (u64) -> u64.
    Cgroups,
    /// --mntnsmap: mount namespace inode (u64) -> u32.
    MountNamespaces,
}

impl IdSet {
    fn option(self) -> &'static str {
        match self {
            IdSet::Cgroups => "--cgroupmap",
            IdSet::MountNamespaces => "--mntnsmap",
        }
    }
    fn keys(self) -> &'static str {
        match self {
            IdSet::Cgroups => "cgroup ids",
            IdSet::MountNamespaces => "mount namespace inodes",
        }
    }
    /// The value size bcc's maps have (the BPF side only tests a key's presence).
    fn value_size(self) -> u32 {
        match self {
            IdSet::Cgroups => 8,
            IdSet::MountNamespaces => 4,
        }
    }
}

/// A BPF hash map pinned in bpffs whose keys are the ids a filter keeps (bcc's --cgroupmap and
/// --mntnsmap), checked when opened; the tools' objects use it in place of their own
/// (`cgroup_map` / `mntns_map` of common/filter.bpf.h), so its keys can change while they run.
#[derive(Debug, Clone)]
pub struct PinnedSet {
    pub map: Arc<libbpf_rs::MapHandle>,
    /// The option that named it, for errors.
    pub option: &'static str,
}

impl PinnedSet {
    pub fn open(ids: IdSet, path: &Path) -> anyhow::Result<PinnedSet> {
        use libbpf_rs::{MapCore as _, MapType};
        let (option, shown) = (ids.option(), path.display());
        let layout = format!(
            "a BPF hash map pinned in bpffs with 8-byte keys ({}) and {}-byte values, e.g. \
             `bpftool map create {shown} type hash key 8 value {} entries 128 name ids flags 0`",
            ids.keys(),
            ids.value_size(),
            ids.value_size()
        );
        let map = libbpf_rs::MapHandle::from_pinned_path(path).map_err(|e| {
            let why = match e.kind() {
                libbpf_rs::ErrorKind::NotFound => "no such file".to_string(),
                _ if path.exists() => "not a pinned BPF map".to_string(),
                _ => e.to_string(),
            };
            crate::usage!("{option} {shown}: {why}; it takes {layout}")
        })?;
        let (kind, key, value) = (map.map_type(), map.key_size(), map.value_size());
        if kind != MapType::Hash || key != 8 || value != ids.value_size() {
            return Err(crate::usage!(
                "{option} {shown}: a {kind:?} map with {key}-byte keys and {value}-byte values; \
                 it takes {layout}"
            ));
        }
        Ok(PinnedSet {
            map: Arc::new(map),
            option,
        })
    }
}

/// The filters as the BPF side wants them (zero = off).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub tgid: u32,
    pub netns: u64,
    /// A cgroup v2 id and its level: that cgroup and everything below it (0: all).
    pub cgroup: u64,
    pub cgroup_level: u32,
    /// --cgroupmap, --mntnsmap: the pinned maps whose keys are the ids kept.
    pub cgroup_map: Option<PinnedSet>,
    pub mntns_map: Option<PinnedSet>,
    pub family: u16,
    pub lports: [u16; MAX_FILTER_PORTS],
    pub rports: [u16; MAX_FILTER_PORTS],
}

impl Filters {
    pub fn new(common: &Common) -> anyhow::Result<Filters> {
        let netns = match &common.netns {
            // An inode or an id that names no namespace found is refused (core::netns::resolve).
            Some(arg) => {
                crate::core::netns::resolve(arg).map_err(|e| crate::usage!("--netns: {e}"))?
            }
            None => 0,
        };
        let scope = Filters::scope(common)?;
        let cgroup_map = common
            .cgroupmap
            .as_deref()
            .map(|p| PinnedSet::open(IdSet::Cgroups, p))
            .transpose()?;
        Ok(Filters {
            netns,
            cgroup: scope.as_ref().map_or(0, |c| c.id),
            cgroup_level: scope.as_ref().map_or(0, |c| c.level),
            cgroup_map,
            ..Default::default()
        })
    }

    /// The cgroup that --cgroup, --container or --pod names (None: no such option, or the root,
    /// which holds everything).
    fn scope(common: &Common) -> anyhow::Result<Option<crate::core::cgroup::Cgroup>> {
        use crate::core::{cgroup, container};
        let cg = if let Some(arg) = &common.cgroup {
            cgroup::resolve(arg).map_err(|e| crate::usage!("--cgroup: {e}"))?
        } else if let Some(arg) = &common.container {
            container::resolve_container(arg)
                .map_err(|e| crate::usage!("--container: {e}"))?
                .cgroup
        } else if let Some(arg) = &common.pod {
            container::resolve_pod(arg)
                .map_err(|e| crate::usage!("--pod: {e}"))?
                .1
        } else {
            return Ok(None);
        };
        Ok((cg.level > 0).then_some(cg))
    }

    pub fn ports(list: &[u16]) -> [u16; MAX_FILTER_PORTS] {
        let mut a = [0u16; MAX_FILTER_PORTS];
        a[..list.len()].copy_from_slice(list);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_validation() {
        assert!(parse_pid("abc").unwrap_err().contains("not a process id"));
        assert!(parse_pid("0").is_err());
        assert!(parse_pid("4000000000").is_err());
        assert_eq!(
            parse_pid(&std::process::id().to_string()).unwrap(),
            std::process::id()
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("nan").is_err());
        assert!(parse_duration("inf").is_err());
        // Too small to be a Duration: not "zero seconds".
        assert!(parse_duration("1e-300").is_err());
        for huge in ["1e20", "1e30", "1e19", "315360001"] {
            assert!(
                parse_duration(huge).unwrap_err().contains("too long"),
                "{huge}"
            );
        }
        assert_eq!(parse_duration("315360000").unwrap().as_secs(), 315_360_000);
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("0.1").unwrap(), Duration::from_millis(100));
        assert!(parse_interval("1e-9").unwrap_err().contains("too short"));
        assert!(parse_interval("0.05")
            .unwrap_err()
            .contains("at least 0.1 s"));
        assert!(parse_interval("1e20").unwrap_err().contains("too long"));
    }

    #[test]
    fn thread_ids_are_refused_with_their_process() {
        assert_eq!(tgid_in_status("Name:\tx\nTgid:\t42\nPid:\t43\n"), Some(42));
        // A thread of this test process: its /proc entry exists, its Tgid is ours.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            done_rx.recv().ok();
        });
        let tid = rx.recv().unwrap();
        let err = parse_pid(&tid.to_string()).unwrap_err();
        let me = std::process::id();
        assert!(
            err.contains(&format!("is a thread of process {me}"))
                && err.contains(&format!("-p {me}")),
            "{err}"
        );
        done_tx.send(()).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn port_arrays() {
        assert_eq!(Filters::ports(&[80, 443])[..3], [80, 443, 0]);
    }
}
