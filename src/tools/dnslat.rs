//! dnslat: DNS queries over UDP and TCP and their responses, from the packets: name, type, response
//! code, answer count, resolver and latency, attributed to the process that sent the query.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::core::addr::{endpoint, ip, ip_version};
use crate::core::bpf::{read_event, Pod};
use crate::core::caps::{Hook, Plan};
use crate::core::cli::{parse_duration, parse_interval, Common, Family, PidFilter};
use crate::core::hist::{log2_slot, print_log2};
use crate::core::output::{comm_str, Column, Format, Output, Value};
use crate::core::table::Table;
use crate::core::time::{hms_now, Clock};
use crate::tools::{announce, start, Tool};

crate::skel!("dnslat");

unsafe impl Pod for types::dnslat_event {}

const KIND_QUERY: u8 = 0;
const KIND_RESPONSE: u8 = 1;

pub static TOOL: Tool = Tool {
    name: "dnslat",
    aliases: &[],
    about: "DNS queries and responses from the packets: name, type, rcode, resolver, latency",
    plans: &[
        Plan::new(
            "tp_btf",
            &[Hook::TpBtf],
            "net/net_dev_queue + net/netif_receive_skb (UDP, and TCP through skb dynptrs)",
        )
        .checked(has_skb_dynptr),
        UDP_ONLY,
    ],
    cli: <Opts as clap::CommandFactory>::command,
    run,
    verify: |tool, plan| crate::core::bpf::verify_with::<DnslatSkelBuilder>(tool, plan, configure),
    export: Some(crate::core::export::Export {
        order: 11,
        load: export::load,
    }),
};

/// Kernels that do not let tracing programs read a packet through bpf_dynptr_from_skb (older
/// ones: it was for networking programs first), or lack it: UDP only, without the dnslat_tcp_*
/// programs.
const UDP_ONLY: Plan = Plan::new(
    "tp_btf-udp",
    &[Hook::TpBtf],
    "net/net_dev_queue + net/netif_receive_skb (UDP only)",
);

fn has_skb_dynptr() -> Result<(), String> {
    crate::core::caps::btf_has("bpf_dynptr_from_skb")
}

/// On stderr, when `plan` (the one loaded) leaves DNS over TCP out because the kernel lacks what
/// it needs.
fn say_if_tcp_unseen(tool: &str, plan: &Plan) {
    if plan.check.is_none() {
        if let Err(why) = has_skb_dynptr() {
            eprintln!(
                "netbpf {tool}: DNS over TCP is not traced on this kernel (reading TCP payloads \
                 needs the bpf_dynptr_from_skb kfunc): {why}"
            );
        }
    }
}

/// The TCP programs load with the plan whose check found their kfunc; the UDP-only plan, which
/// a kernel refusing them falls through to, has no check and leaves them out.
fn configure(open: &mut OpenDnslatSkel<'static>, plan: &'static Plan) -> anyhow::Result<()> {
    if plan.check.is_none() {
        open.progs.dnslat_tcp_tx.set_autoload(false);
        open.progs.dnslat_tcp_rx.set_autoload(false);
    }
    Ok(())
}

const EXAMPLES: &str = "\
Examples:
  dnslat                  # every DNS query (UDP, TCP) and its response, with the latency
  dnslat --timeout 2      # queries unanswered after 2 s are printed as TIMEOUT
  dnslat --port 5353      # a resolver listening on port 5353
  dnslat -p 181 -4        # only queries sent by PID 181, over IPv4
  dnslat -H               # latency histograms by response code and by resolver, at Ctrl-C
  dnslat -H -i 10         # the same every 10 seconds
  dnslat --json           # one JSON object per response or timeout

Queries are seen when a local socket queues them to a network device, responses when they
arrive from one, so every resolver is seen: glibc, musl, Go's, dig's, any container's. The
latency runs from the query leaving through the device to the response arriving: it leaves out
the client's own scheduling. PID and COMM are the task sending the query. DNS over TCP is
traced where the kernel lets programs read packet payloads (bpf_dynptr_from_skb), else said. A
query sent again with the same id and port is timed from its last copy.";

#[derive(Parser, Debug)]
#[command(name = "dnslat", about = "Trace DNS queries and their latency from the packets", after_help = EXAMPLES)]
struct Opts {
    /// The resolvers' port (UDP and TCP)
    #[arg(long, default_value_t = 53, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// Seconds to wait for a response before printing the query as TIMEOUT
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_duration)]
    timeout: Duration,
    /// Latency histograms by response code and by resolver instead of one line per query
    #[arg(short = 'H', long = "hist")]
    hist: bool,
    /// With -H: print the histograms every SECS seconds (default: once, at the end)
    #[arg(short = 'i', long = "interval", value_name = "SECS", value_parser = parse_interval, requires = "hist")]
    interval: Option<Duration>,
    #[command(flatten)]
    pid: PidFilter,
    #[command(flatten)]
    family: Family,
    #[command(flatten)]
    common: Common,
}

/// A query as the kernel and its response identify it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct QueryKey {
    netns: u64,
    family: u16,
    caddr: [u8; 16],
    raddr: [u8; 16],
    cport: u16,
    rport: u16,
    id: u16,
}

impl QueryKey {
    fn of(e: &types::dnslat_event) -> Self {
        QueryKey {
            netns: e.netns,
            family: e.family,
            caddr: e.caddr,
            raddr: e.raddr,
            cport: e.cport,
            rport: e.rport,
            id: e.id,
        }
    }
}

/// The question of a DNS message: its name in presentation form and its type.
struct Question {
    name: String,
    qtype: Option<u16>,
}

/// Decodes the wire-form question section (RFC 1035 4.1.2): labels up to the root label, then
/// QTYPE. Characters outside printable ASCII, and dots or backslashes inside a label, are
/// escaped as dig does (\DDD, \.). A name cut short by the copy ends in "...".
fn question(raw: &[u8]) -> Question {
    let mut name = String::new();
    let mut i = 0;
    loop {
        let Some(&len) = raw.get(i) else {
            name.push_str("...");
            return Question { name, qtype: None };
        };
        if len == 0 {
            i += 1;
            break;
        }
        if len & 0xc0 != 0 {
            // A compression pointer or reserved label type: not valid in a question.
            name.push_str("...");
            return Question { name, qtype: None };
        }
        let label = &raw[i + 1..raw.len().min(i + 1 + len as usize)];
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    name.push('\\');
                    name.push(b as char);
                }
                0x21..=0x7e => name.push(b as char),
                _ => name.push_str(&format!("\\{b:03}")),
            }
        }
        if label.len() < len as usize {
            name.push_str("...");
            return Question { name, qtype: None };
        }
        name.push('.');
        i += 1 + len as usize;
    }
    if name.is_empty() {
        name.push('.');
    }
    let qtype = raw.get(i..i + 2).map(|t| u16::from_be_bytes([t[0], t[1]]));
    Question { name, qtype }
}

/// The mnemonic of a QTYPE (IANA's DNS parameters), else its number.
fn qtype_name(t: u16) -> String {
    let name = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        39 => "DNAME",
        43 => "DS",
        46 => "RRSIG",
        48 => "DNSKEY",
        52 => "TLSA",
        64 => "SVCB",
        65 => "HTTPS",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return t.to_string(),
    };
    name.to_string()
}

/// The mnemonic of a header RCODE (the 4 bits; EDNS extended codes are not read), else its
/// number.
fn rcode_name(r: u16) -> String {
    let name = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return r.to_string(),
    };
    name.to_string()
}

/// RCODE of a response, or the query went unanswered.
const TIMEOUT: &str = "TIMEOUT";
/// Header flag TC: the response was truncated (the client retries over TCP).
const FLAG_TC: u16 = 0x0200;

/// One response or timeout, as printed.
struct Row {
    time: String,
    e: types::dnslat_event,
    comm: String,
    resolver: String,
    qname: String,
    qtype: Option<u16>,
    qtype_name: String,
    /// None: timed out.
    rcode: Option<u16>,
    rcode_name: String,
}

impl Row {
    fn new(time: String, e: types::dnslat_event, answered: bool) -> Row {
        let raw = &e.question[..(e.qlen as usize).min(e.question.len())];
        let q = question(raw);
        let rcode = answered.then_some(e.flags & 0x0f);
        Row {
            time,
            comm: comm_str(&e.comm),
            resolver: endpoint(ip(e.family, &e.raddr), e.rport),
            qtype_name: q.qtype.map(qtype_name).unwrap_or_else(|| "-".into()),
            qtype: q.qtype,
            qname: q.name,
            rcode_name: rcode.map(rcode_name).unwrap_or_else(|| TIMEOUT.into()),
            rcode,
            e,
        }
    }

    fn answered(&self) -> bool {
        self.rcode.is_some()
    }
}

fn table() -> Table<Row> {
    Table::<Row>::new()
        .col(Column::new("TIME", "time", -8), |r| Value::Str(&r.time))
        .task(-7, -16, |r| (r.e.pid, &r.comm))
        .col(Column::new("IP", "ip", -2), |r| {
            Value::U64(ip_version(r.e.family))
        })
        .col(Column::table("RESOLVER", -21), |r| Value::Str(&r.resolver))
        .col(Column::json("raddr"), |r| {
            Value::Ip(ip(r.e.family, &r.e.raddr))
        })
        .col(Column::json("rport"), |r| Value::U64(r.e.rport.into()))
        .col(Column::json("caddr"), |r| {
            Value::Ip(ip(r.e.family, &r.e.caddr))
        })
        .col(Column::json("cport"), |r| Value::U64(r.e.cport.into()))
        .col(Column::new("ID", "id", -5), |r| Value::U64(r.e.id.into()))
        .col(Column::new("QTYPE", "qtype", -6), |r| {
            Value::Str(&r.qtype_name)
        })
        .col(Column::json("qtype_num"), |r| match r.qtype {
            Some(t) => Value::U64(t.into()),
            None => Value::Absent,
        })
        .col(Column::new("QNAME", "qname", -30), |r| Value::Str(&r.qname))
        .col(Column::new("RCODE", "rcode", -8), |r| {
            Value::Str(&r.rcode_name)
        })
        .col(Column::json("rcode_num"), |r| match r.rcode {
            Some(c) => Value::U64(c.into()),
            None => Value::Absent,
        })
        .col(Column::new("ANSWERS", "answers", 7), |r| {
            match r.answered() {
                true => Value::U64(r.e.ancount.into()),
                false => Value::Absent,
            }
        })
        .col(Column::json("transport"), |r| {
            Value::Str(if r.e.tcp != 0 { "tcp" } else { "udp" })
        })
        .col(Column::json("truncated"), |r| match r.answered() {
            true => Value::U64(u64::from(r.e.flags & FLAG_TC != 0)),
            false => Value::Absent,
        })
        .col(Column::new("LAT(ms)", "lat_ms", 8), |r| {
            match r.answered() {
                true => Value::F64(r.e.lat_ns as f64 / 1e6, 3),
                false => Value::Absent,
            }
        })
}

/// Queries still waiting for a response, for the timeout lines.
struct Pending {
    queries: HashMap<QueryKey, (types::dnslat_event, Instant)>,
    timeout: Duration,
}

/// Unanswered queries remembered at most (a flood of unanswered ones is cut here; the kernel's
/// map still times whatever answer comes).
const MAX_PENDING: usize = 65536;

impl Pending {
    fn query(&mut self, e: types::dnslat_event) {
        if self.queries.len() < MAX_PENDING || self.queries.contains_key(&QueryKey::of(&e)) {
            self.queries.insert(QueryKey::of(&e), (e, Instant::now()));
        }
    }

    fn answered(&mut self, e: &types::dnslat_event) {
        self.queries.remove(&QueryKey::of(e));
    }

    /// Takes the queries unanswered for longer than the timeout, oldest first.
    fn expired(&mut self) -> Vec<types::dnslat_event> {
        let now = Instant::now();
        let mut gone: Vec<types::dnslat_event> = Vec::new();
        self.queries.retain(|_, (e, seen)| {
            let keep = now.duration_since(*seen) < self.timeout;
            if !keep {
                gone.push(*e);
            }
            keep
        });
        gone.sort_by_key(|e| e.ts_ns);
        gone
    }
}

/// -H: latency histograms (microseconds) by response code and by resolver.
#[derive(Default)]
struct Hists {
    by_rcode: BTreeMap<String, Vec<u64>>,
    by_resolver: BTreeMap<(u16, IpAddr, u16), Vec<u64>>,
    timeouts: BTreeMap<(u16, IpAddr, u16), u64>,
}

impl Hists {
    fn add(&mut self, row: &Row) {
        let resolver = (row.e.family, ip(row.e.family, &row.e.raddr), row.e.rport);
        if !row.answered() {
            *self.timeouts.entry(resolver).or_default() += 1;
            return;
        }
        let slot = log2_slot(row.e.lat_ns / 1000);
        for slots in [
            self.by_rcode.entry(row.rcode_name.clone()).or_default(),
            self.by_resolver.entry(resolver).or_default(),
        ] {
            if slots.len() <= slot {
                slots.resize(slot + 1, 0);
            }
            slots[slot] += 1;
        }
    }

    fn print(&mut self, out: &mut Output, interval: bool) {
        let json = out.format() == Format::Json;
        let now = hms_now();
        let time = (interval && json).then_some(now.as_str());
        if interval && !json {
            out.text(&now);
        }
        for (rcode, slots) in &self.by_rcode {
            print_log2(out, "dns_usecs", "us", &labels(time, "rcode", rcode), slots);
        }
        for ((_, addr, port), slots) in &self.by_resolver {
            let resolver = endpoint(*addr, *port);
            print_log2(
                out,
                "dns_usecs",
                "us",
                &labels(time, "resolver", &resolver),
                slots,
            );
        }
        for ((_, addr, port), n) in &self.timeouts {
            let resolver = endpoint(*addr, *port);
            if json {
                let mut fields = labels(time, "resolver", &resolver);
                fields.insert(
                    usize::from(time.is_some()),
                    ("hist", Value::Str("dns_timeouts")),
                );
                fields.push(("count", Value::U64(*n)));
                out.record(&fields);
            } else {
                out.text(&format!("@dns_timeouts[{resolver}]: {n}"));
            }
        }
        if interval {
            *self = Hists::default();
        }
    }
}

/// A histogram's labels: the interval's time (JSON), then one key.
fn labels<'a>(time: Option<&'a str>, key: &'a str, value: &'a str) -> Vec<(&'a str, Value<'a>)> {
    let mut l = Vec::new();
    if let Some(t) = time {
        l.push(("time", Value::Str(t)));
    }
    l.push((key, Value::Str(value)));
    l
}

fn run(tool: &'static Tool, args: Vec<OsString>) -> anyhow::Result<()> {
    let o = Opts::parse_from(args);
    let mut s = start(tool, &o.common)?;
    o.pid.apply(&mut s.filters);
    s.filters.family = o.family.af();

    let port = o.port;
    let skel = s.load::<DnslatSkelBuilder>(|open, plan| {
        configure(open, plan)?;
        let rodata = open
            .maps
            .rodata_data
            .as_deref_mut()
            .ok_or_else(|| anyhow::anyhow!("dnslat: no .rodata"))?;
        rodata.dns_port = port;
        Ok(())
    })?;
    say_if_tcp_unseen(tool.name, s.plan);

    let table = table().containers(&o.common, |r| r.e.cgroup);
    let mut out = table.output(o.common.format());
    if !o.hist {
        out.header();
    }
    announce("DNS queries");
    let clock = Clock::start();
    let pending = std::cell::RefCell::new(Pending {
        queries: HashMap::new(),
        timeout: o.timeout,
    });
    let hist = o.hist;
    let interval = o.interval;
    let hists = std::cell::RefCell::new(Hists::default());
    let emit = |out: &mut Output, row: Row| {
        if hist {
            hists.borrow_mut().add(&row);
        } else {
            table.row(out, &row);
        }
    };
    let mut next_print = interval.map(|i| Instant::now() + i);
    s.run.stream_ticking(
        &skel.maps.events,
        &mut out,
        |data, out| {
            let Some(e) = read_event::<types::dnslat_event>(data) else {
                return;
            };
            match e.kind {
                KIND_QUERY => pending.borrow_mut().query(e),
                KIND_RESPONSE => {
                    pending.borrow_mut().answered(&e);
                    emit(out, Row::new(clock.hms(e.ts_ns), e, true));
                }
                _ => {}
            }
        },
        |out| {
            for e in pending.borrow_mut().expired() {
                emit(out, Row::new(hms_now(), e, false));
            }
            if let (Some(due), Some(every)) = (next_print.as_mut(), interval) {
                if Instant::now() >= *due {
                    hists.borrow_mut().print(out, true);
                    *due += every;
                }
            }
        },
    )?;
    if hist && interval.is_none() {
        hists.borrow_mut().print(&mut out, false);
        out.flush();
    }
    s.report(libbpf_rs::skel::Skel::object(&skel));
    Ok(())
}

/// Names of addresses from the DNS answers dnslat's programs see, for another tool (tcpconnect
/// --dns): the programs write their responses, answers included, into that tool's ring buffer.
pub mod answers {
    use std::net::IpAddr;
    use std::os::fd::BorrowedFd;

    use super::*;
    use crate::core::addr::ip;
    use crate::core::bpf::Plans;
    use crate::core::cli::Filters;

    /// The size of the programs' records: the other tool's records are told from them by it.
    pub const RECORD: usize = std::mem::size_of::<types::dnslat_event>();

    /// Loads and attaches the programs writing into `events` (a ring buffer of the caller's),
    /// for the network namespace `netns` (0: all). Keep the result alive while they should run.
    pub fn load(netns: u64, events: BorrowedFd<'_>) -> anyhow::Result<Box<dyn std::any::Any>> {
        let select = |t: &str, p: &'static [Plan]| crate::core::caps::Caps::get().select(t, p);
        let plans = Plans {
            tool: TOOL.name,
            all: TOOL.plans,
            select,
            filters: Some(Filters {
                netns,
                ..Default::default()
            }),
        };
        let first = select(TOOL.name, TOOL.plans)?;
        let (skel, plan) =
            crate::core::bpf::load::<DnslatSkelBuilder>(&plans, first, |open, plan| {
                configure(open, plan)?;
                open.maps
                    .rodata_data
                    .as_deref_mut()
                    .ok_or_else(|| anyhow::anyhow!("dnslat: no .rodata"))?
                    .answers_too = true;
                // Same name ("events"): reusing it keeps the skeleton's map names.
                open.maps.events.reuse_fd(events)?;
                Ok(())
            })?;
        say_if_tcp_unseen("tcpconnect --dns", plan);
        Ok(Box::new(skel))
    }

    /// (network namespace, address, name asked) of each A and AAAA answer of a record of the
    /// programs (a NOERROR response); the name without its final dot, as bcc shows it.
    pub fn parse(data: &[u8]) -> Vec<(u64, IpAddr, String)> {
        let Some(e) = read_event::<types::dnslat_event>(data) else {
            return Vec::new();
        };
        if e.kind != KIND_RESPONSE || e.flags & 0x0f != 0 {
            return Vec::new();
        }
        let mut body = e.question[..(e.qlen as usize).min(e.question.len())].to_vec();
        body.extend_from_slice(&e.rest[..(e.rlen as usize).min(e.rest.len())]);
        let q = question(&body);
        let name = q.name.trim_end_matches('.').to_string();
        addresses(&body, e.qdcount, e.ancount)
            .into_iter()
            .map(|a| (e.netns, a, name.clone()))
            .collect()
    }

    /// The A and AAAA addresses among the answers of a message body (after its header).
    fn addresses(body: &[u8], qdcount: u16, ancount: u16) -> Vec<IpAddr> {
        let mut at = 0;
        for _ in 0..qdcount {
            let Some(end) = skip_name(body, at) else {
                return Vec::new();
            };
            at = end + 4; // QTYPE, QCLASS
        }
        let mut out = Vec::new();
        for _ in 0..ancount {
            let Some(end) = skip_name(body, at) else {
                break;
            };
            let Some(fixed) = body.get(end..end + 10) else {
                break;
            };
            let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
            let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
            let Some(rdata) = body.get(end + 10..end + 10 + rdlen) else {
                break;
            };
            match (rtype, rdata.len()) {
                (1, 4) => out.push(ip(crate::core::addr::AF_INET, &pad16(rdata))),
                (28, 16) => out.push(ip(crate::core::addr::AF_INET6, &pad16(rdata))),
                _ => {}
            }
            at = end + 10 + rdlen;
        }
        out
    }

    /// The offset after a wire-form name at `at`: labels to the root label, or up to a
    /// compression pointer (2 bytes).
    fn skip_name(body: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = *body.get(at)?;
            match len {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l if l & 0xc0 != 0 => return None,
                l => at += 1 + l as usize,
            }
        }
    }

    fn pad16(b: &[u8]) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..b.len()].copy_from_slice(b);
        a
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn answers_past_names_and_pointers() {
            // web.test A: a CNAME to a.web.test (pointer), then its A; and an AAAA.
            let mut body = b"\x03web\x04test\x00\x00\x01\x00\x01".to_vec();
            body.extend(b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x04\x01a\xc0\x0c");
            body.extend(b"\x01a\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x0a");
            body.extend(b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10");
            body.extend([
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ]);
            let found: Vec<String> = addresses(&body, 1, 3)
                .iter()
                .map(|a| a.to_string())
                .collect();
            assert_eq!(found, ["192.0.2.10", "2001:db8::10"]);
            // Cut short: what is whole is kept.
            assert_eq!(addresses(&body[..body.len() - 3], 1, 3).len(), 1);
            assert_eq!(skip_name(b"\x80", 0), None);
        }
    }
}

/// Exporter mode: response latency by response code and resolver, queries by resolver (tracepoints
/// only, so it runs with CAP_BPF and CAP_PERFMON).
pub mod export {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use libbpf_rs::{MapCore as _, MapFlags, MapHandle};

    use super::*;
    use crate::core::addr::ip;
    use crate::core::export::{
        self, Buckets, Ctx, ExportMaps, ExportObject as _, Family, Labels, Loaded, Scale, Source,
        Unit,
    };

    unsafe impl Pod for types::dnslat_resolver {}

    /// 16 µs to 2^23 µs (8.4 s: resolver timeouts and retries).
    const LATENCIES: Buckets = Buckets {
        scale: Scale::Micros,
        first: 4,
        last: 23,
    };

    /// DNSLAT_M_* of dnslat.h.
    const M_LATENCY: u32 = 0;
    const M_QUERIES: u32 = 1;

    struct Dns {
        maps: ExportMaps,
        resolvers: MapHandle,
    }

    impl Dns {
        /// Resolver numbers (dnslat.bpf.c: `resolver_by_id`) to addresses; 0 is "other" (no
        /// number left).
        fn resolvers(&self) -> anyhow::Result<HashMap<u32, IpAddr>> {
            let mut out = HashMap::new();
            for key in self.resolvers.keys() {
                let Some(v) = self.resolvers.lookup(&key, MapFlags::ANY)? else {
                    continue;
                };
                let (Ok(id), Some(r)) = (
                    <[u8; 4]>::try_from(&key[..]),
                    read_event::<types::dnslat_resolver>(&v),
                ) else {
                    continue;
                };
                out.insert(u32::from_ne_bytes(id), ip(r.family, &r.addr));
            }
            Ok(out)
        }
    }

    impl Source for Dns {
        fn read(&self) -> anyhow::Result<Vec<Family>> {
            let resolvers = self.resolvers()?;
            let resolver = |label: u32| -> (&'static str, String) {
                let name = resolvers
                    .get(&(label >> 8))
                    .map_or("other".to_string(), |a| a.to_string());
                ("resolver", name)
            };
            let latency_labels = |label: u32| -> Labels {
                vec![
                    ("rcode", rcode_name((label & 0xff) as u16)),
                    resolver(label),
                ]
            };
            let (h, c) = (self.maps.hists()?, self.maps.counts()?);
            Ok(vec![
                Family::Histogram {
                    name: "netbpf_dns_response_latency",
                    help:
                        "DNS responses (UDP, TCP), from the query leaving to the response arriving, \
                           by response code and resolver",
                    unit: Unit::Seconds,
                    buckets: LATENCIES,
                    series: self.maps.histogram(&h, M_LATENCY, &[], latency_labels),
                },
                Family::Counter {
                    name: "netbpf_dns_queries",
                    help: "DNS queries (UDP, TCP) sent by local sockets, by resolver (unanswered: \
                           these minus the responses)",
                    unit: Unit::None,
                    series: self.maps.counter(&c, M_QUERIES, &[], |l| vec![resolver(l)]),
                },
            ])
        }

        fn lost(&self) -> anyhow::Result<u64> {
            self.maps.lost()
        }
    }

    crate::export_object!(OpenDnslatSkel, DnslatSkel);

    pub fn load(ctx: &Ctx) -> anyhow::Result<Loaded> {
        let (skel, plan) =
            export::load::<DnslatSkelBuilder>(ctx, TOOL.name, TOOL.plans, |open, plan| {
                configure(open, plan)?;
                open.export_setup(ctx)
            })?;
        let maps = skel.export_maps(ctx)?;
        let resolvers = MapHandle::try_from(&skel.maps.resolver_by_id)?;
        Ok(Loaded {
            source: Box::new(Dns { maps, resolvers }),
            plan: plan.name.to_string(),
            keepalive: Box::new(skel),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn question_decodes_labels_and_type() {
        let raw = b"\x03www\x07example\x03com\x00\x00\x1c\x00\x01";
        let q = question(raw);
        assert_eq!(q.name, "www.example.com.");
        assert_eq!(q.qtype, Some(28));
        assert_eq!(qtype_name(28), "AAAA");
    }

    #[test]
    fn question_escapes_and_cuts() {
        let q = question(b"\x03a.b\x02\x01z\x00\x00\x10");
        assert_eq!(q.name, "a\\.b.\\001z.");
        assert_eq!(q.qtype, Some(16));
        let cut = question(b"\x05abc");
        assert_eq!(cut.name, "abc...");
        assert_eq!(cut.qtype, None);
        assert_eq!(question(b"\x00\x00\x02").name, ".");
        assert_eq!(qtype_name(4242), "4242");
        assert_eq!(rcode_name(3), "NXDOMAIN");
    }
}
