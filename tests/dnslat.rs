//! dnslat against a real resolver in the test's own network namespace: dnsmasq serving static
//! records and an NXDOMAIN zone, queried by dig (its own resolver), getent (glibc) and Python;
//! a slow resolver on another port answering after a known delay; a silent one for timeouts;
//! tcpconnect --dns naming connects from the answers dnslat's programs see.

mod common;

use std::process::Stdio;

use common::dns::{dnsmasq, python_resolver};
use common::{netbpf, Netns, TempDir, Tool};
use serde_json::Value;

/// Runs `program args` in `ns` to completion; returns its pid and stdout.
fn run_in(ns: &Netns, program: &str, args: &[&str]) -> (u32, String) {
    let child = ns
        .command(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    (pid, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a shell script in `ns` with /etc/resolv.conf pointing at 127.0.0.1 (a private mount
/// namespace, as a container has), the script's last command exec'd so its pid is the child's.
fn run_with_resolver(ns: &Netns, dir: &TempDir, script: &str) -> (u32, String) {
    let conf = dir.file("resolv.conf");
    std::fs::write(
        &conf,
        "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
    )
    .unwrap();
    let full = format!("mount --bind {conf} /etc/resolv.conf && exec {script}");
    run_in(
        ns,
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &full],
    )
}

/// Whether `comm` is that of `program`'s sending thread: dig sends from a libisc network thread
/// ("isc-net-0000"), and COMM is the sending thread's name.
fn comm_of(comm: &Value, program: &str) -> bool {
    let comm = comm.as_str().unwrap_or_default();
    comm == program || (program == "dig" && comm.starts_with("isc-net-"))
}

fn rows_for<'a>(rows: &'a [Value], qname: &str, qtype: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["qname"] == qname && r["qtype"] == qtype)
        .collect()
}

/// The one row of a query; asserts the facts every answered row has.
fn one<'a>(rows: &'a [Value], qname: &str, qtype: &str, pid: u32, comm: &str) -> &'a Value {
    let found: Vec<&Value> = rows_for(rows, qname, qtype)
        .into_iter()
        .filter(|r| r["pid"] == pid)
        .collect();
    assert_eq!(found.len(), 1, "{qname} {qtype} of {pid} in {rows:#?}");
    let r = found[0];
    assert_eq!(r["pid"], pid, "{r}");
    assert!(comm_of(&r["comm"], comm), "{comm}: {r}");
    assert_eq!(r["rport"], 53, "{r}");
    let lat = r["lat_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("lat_ms in {r}"));
    assert!(lat > 0.0 && lat < 5000.0, "{r}");
    r
}

#[test]
fn dnslat_sees_dig_glibc_and_python_queries() {
    let ns = Netns::new();
    let dir = TempDir::new("dnslat-clients");
    let resolver = dnsmasq(&ns);
    let json = Tool::start(&["dnslat", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["dnslat", "--netns", &ns.path()]);

    let (dig_a, out) = run_in(&ns, "dig", &["@127.0.0.1", "+tries=1", "web.test", "A"]);
    assert!(out.contains("192.0.2.10"), "{out}");
    let (dig_aaaa, out) = run_in(&ns, "dig", &["@::1", "+tries=1", "web.test", "AAAA"]);
    assert!(out.contains("2001:db8::10"), "{out}");
    let (dig_nx, out) = run_in(&ns, "dig", &["@127.0.0.1", "+tries=1", "gone.nx.test", "A"]);
    assert!(out.contains("NXDOMAIN"), "{out}");
    let (dig_mx, _) = run_in(&ns, "dig", &["@127.0.0.1", "+tries=1", "mail.test", "MX"]);
    let (getent, out) = run_with_resolver(&ns, &dir, "getent hosts mail.test");
    assert!(out.contains("192.0.2.25"), "{out}");
    let (python, out) = run_with_resolver(
        &ns,
        &dir,
        "/usr/bin/python3 -c \"import socket; \
         print(socket.getaddrinfo('web.test', 80, socket.AF_INET6)[0][4][0])\"",
    );
    assert!(out.contains("2001:db8::10"), "{out}");

    let rows = json.stop().json();
    let table = table.stop();
    let log = resolver.stop();

    let r = one(&rows, "web.test.", "A", dig_a, "dig");
    assert_eq!(r["rcode"], "NOERROR", "{r}");
    assert_eq!(r["rcode_num"], 0, "{r}");
    assert_eq!(r["qtype_num"], 1, "{r}");
    assert_eq!(r["answers"], 1, "{r}");
    assert_eq!(r["ip"], 4, "{r}");
    assert_eq!(r["raddr"], "127.0.0.1", "{r}");
    assert_eq!(r["caddr"], "127.0.0.1", "{r}");
    assert!(r["cport"].as_u64().unwrap() > 0, "{r}");

    let r = one(&rows, "web.test.", "AAAA", dig_aaaa, "dig");
    assert_eq!(
        (r["rcode"].as_str(), r["answers"].as_u64()),
        (Some("NOERROR"), Some(1)),
        "{r}"
    );
    assert_eq!(r["ip"], 6, "{r}");
    assert_eq!(r["raddr"], "::1", "{r}");

    let r = one(&rows, "gone.nx.test.", "A", dig_nx, "dig");
    assert_eq!(
        (r["rcode"].as_str(), r["answers"].as_u64()),
        (Some("NXDOMAIN"), Some(0)),
        "{r}"
    );
    assert_eq!(r["rcode_num"], 3, "{r}");

    // A name with an A record but no MX: NOERROR, no answer.
    let r = one(&rows, "mail.test.", "MX", dig_mx, "dig");
    assert_eq!(
        (r["rcode"].as_str(), r["answers"].as_u64()),
        (Some("NOERROR"), Some(0)),
        "{r}"
    );

    // getent hosts: gethostbyname2, AAAA first, then A.
    let r = one(&rows, "mail.test.", "AAAA", getent, "getent");
    assert_eq!(
        (r["rcode"].as_str(), r["answers"].as_u64()),
        (Some("NOERROR"), Some(0)),
        "{r}"
    );
    let r = one(&rows, "mail.test.", "A", getent, "getent");
    assert_eq!(
        (r["rcode"].as_str(), r["answers"].as_u64()),
        (Some("NOERROR"), Some(1)),
        "{r}"
    );

    let r = one(&rows, "web.test.", "AAAA", python, "python3");
    assert_eq!(
        (r["rcode"].as_str(), r["answers"].as_u64()),
        (Some("NOERROR"), Some(1)),
        "{r}"
    );
    assert_eq!(r["raddr"], "127.0.0.1", "{r}");

    // Every row is a query the resolver logged, and no query was left out.
    let logged: Vec<&String> = log.iter().filter(|l| l.contains(": query[")).collect();
    assert_eq!(logged.len(), rows.len(), "{logged:#?}\n{rows:#?}");
    for r in &rows {
        let name = r["qname"].as_str().unwrap().trim_end_matches('.');
        let line = format!("query[{}] {name} from", r["qtype"].as_str().unwrap());
        assert!(
            log.iter().any(|l| l.contains(&line)),
            "{line} not in {log:#?}"
        );
    }

    // The table: a header, then the same rows.
    let header = &table.lines[0];
    for col in [
        "TIME", "PID", "COMM", "IP", "RESOLVER", "ID", "QTYPE", "QNAME", "RCODE", "ANSWERS",
        "LAT(ms)",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(table.lines.len(), rows.len() + 1, "{:#?}", table.lines);
    let nx = table
        .lines
        .iter()
        .find(|l| l.contains("gone.nx.test."))
        .unwrap_or_else(|| panic!("{:#?}", table.lines));
    let cells: Vec<&str> = nx.split_whitespace().collect();
    assert_eq!(cells[1], dig_nx.to_string(), "{nx}");
    assert!(comm_of(&Value::from(cells[2]), "dig"), "{nx}");
    assert_eq!(cells[4], "127.0.0.1:53", "{nx}");
    assert_eq!(
        &cells[6..10],
        &["A", "gone.nx.test.", "NXDOMAIN", "0"],
        "{nx}"
    );
}

/// A resolver on another port answering after 300 ms: shown with --port only, with a latency of
/// at least the delay; -H sums it into histograms by rcode and by resolver.
#[test]
fn dnslat_times_a_slow_resolver_on_another_port() {
    let ns = Netns::new();
    let slow = python_resolver(&ns, "127.0.0.1", 5300, Some(300));
    let on_port = Tool::start(&["dnslat", "--json", "--port", "5300", "--netns", &ns.path()]);
    let hist = Tool::start(&["dnslat", "-H", "--port", "5300", "--netns", &ns.path()]);
    let default_port = Tool::start(&["dnslat", "--json", "--netns", &ns.path()]);
    let (dig, out) = run_in(
        &ns,
        "dig",
        &["@127.0.0.1", "-p", "5300", "+tries=1", "slow.test", "TXT"],
    );
    assert!(out.contains("NOERROR"), "{out}");
    let rows = on_port.stop().json();
    let hist = hist.stop();
    let others = default_port.stop().json();
    drop(slow);

    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r["pid"], dig, "{r}");
    assert_eq!(r["qname"], "slow.test.", "{r}");
    assert_eq!(r["qtype"], "TXT", "{r}");
    assert_eq!(r["rport"], 5300, "{r}");
    assert_eq!(r["rcode"], "NOERROR", "{r}");
    let lat = r["lat_ms"].as_f64().unwrap();
    assert!((300.0..5000.0).contains(&lat), "{r}");
    assert!(others.is_empty(), "port 53 only: {others:#?}");

    let text = hist.lines.join("\n");
    assert!(text.contains("@dns_usecs[NOERROR]:"), "{text}");
    assert!(text.contains("@dns_usecs[127.0.0.1:5300]:"), "{text}");
    // The query's latency (300 ms and what a loaded machine adds: 300000 us is in [256K,
    // 512K)) in its power-of-two bucket, twice (by rcode, by resolver).
    let bucket = log2_bucket((lat * 1000.0) as u64);
    let buckets: Vec<&String> = hist
        .lines
        .iter()
        .filter(|l| l.starts_with(&bucket))
        .collect();
    assert_eq!(buckets.len(), 2, "{bucket} twice: {text}");
    assert!(
        buckets
            .iter()
            .all(|l| l.split_whitespace().nth(2) == Some("1")),
        "{text}"
    );
}

/// A resolver that never answers: the query is printed as TIMEOUT once --timeout has passed,
/// while the tool still runs.
#[test]
fn dnslat_prints_unanswered_queries_as_timeouts() {
    let ns = Netns::new();
    let silent = python_resolver(&ns, "127.0.0.3", 53, None);
    let tool = Tool::start(&["dnslat", "--json", "--timeout", "1", "--netns", &ns.path()]);
    let (dig, out) = run_in(
        &ns,
        "dig",
        &["@127.0.0.3", "+tries=1", "+timeout=2", "silent.test", "SRV"],
    );
    assert!(
        out.contains("timed out") || out.is_empty() || out.contains("no servers"),
        "{out}"
    );
    // dig waited 2 s: the 1 s timeout has passed, and the line must be out already.
    let rows = tool.stop().json();
    drop(silent);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r["rcode"], "TIMEOUT", "{r}");
    assert_eq!(r["qname"], "silent.test.", "{r}");
    assert_eq!(r["qtype"], "SRV", "{r}");
    assert_eq!(r["pid"], dig, "{r}");
    assert!(comm_of(&r["comm"], "dig"), "{r}");
    assert_eq!(r["raddr"], "127.0.0.3", "{r}");
    assert!(
        r.get("lat_ms").is_none() && r.get("answers").is_none(),
        "{r}"
    );
}

/// -p: only the queries the given process sends.
#[test]
fn dnslat_filters_by_pid() {
    let ns = Netns::new();
    let resolver = dnsmasq(&ns);
    // A shell that waits for a line, then becomes dig: its pid exists before the tool starts.
    let mut waiting = ns
        .command("sh")
        .args(["-c", "read go; exec dig @127.0.0.1 +tries=1 web.test A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = waiting.id().to_string();
    let tool = Tool::start(&["dnslat", "--json", "-p", &pid, "--netns", &ns.path()]);
    run_in(&ns, "dig", &["@127.0.0.1", "+tries=1", "mail.test", "A"]);
    use std::io::Write;
    waiting.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(waiting.wait().unwrap().success());
    let rows = tool.stop().json();
    drop(resolver);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["qname"], "web.test.", "{}", rows[0]);
    assert_eq!(rows[0]["pid"].to_string(), pid, "{}", rows[0]);
}

/// DNS over TCP (dig +tcp, dnsmasq serves TCP): each query and its response, with the answer
/// count and rcode the resolver gave, over IPv4 and IPv6; a UDP query in the same run stays
/// "udp". With the UDP-only plan (kernels that refuse the TCP programs' kfunc) the TCP queries are
/// not seen and the UDP one is.
#[test]
fn dnslat_sees_queries_over_tcp() {
    let ns = Netns::new();
    let resolver = dnsmasq(&ns);
    let json = Tool::start(&["dnslat", "--json", "--netns", &ns.path()]);
    let udp_only = Tool::start_with_env(
        &["dnslat", "--json", "--netns", &ns.path()],
        &[("NETBPF_PLAN", "tp_btf-udp")],
    );
    let (tcp4, out) = run_in(
        &ns,
        "dig",
        &["@127.0.0.1", "+tcp", "+tries=1", "web.test", "A"],
    );
    assert!(out.contains("192.0.2.10"), "{out}");
    let (tcp6, out) = run_in(
        &ns,
        "dig",
        &["@::1", "+tcp", "+tries=1", "gone.nx.test", "AAAA"],
    );
    assert!(out.contains("NXDOMAIN"), "{out}");
    let (udp, _) = run_in(&ns, "dig", &["@127.0.0.1", "+tries=1", "web.test", "AAAA"]);
    let done = json.stop();
    let rows = done.json();
    let plain = udp_only.stop().json();
    let log = resolver.stop();

    // A kernel without skb dynptrs for tracing programs (5.10) runs the UDP-only plan, and
    // says so.
    if common::chosen_plan("dnslat") == "tp_btf-udp" {
        assert!(
            done.stderr
                .contains("DNS over TCP is not traced on this kernel"),
            "{}",
            done.stderr
        );
        assert_eq!(rows.len(), 1, "{rows:#?}");
        assert_eq!(
            one(&rows, "web.test.", "AAAA", udp, "dig")["transport"],
            "udp"
        );
        assert_eq!(plain.len(), 1, "{plain:#?}");
        return;
    }
    assert!(!done.stderr.contains("not traced"), "{}", done.stderr);
    let r = one(&rows, "web.test.", "A", tcp4, "dig");
    assert_eq!(
        (&r["transport"], &r["rcode"], &r["answers"], &r["raddr"]),
        (
            &"tcp".into(),
            &"NOERROR".into(),
            &1.into(),
            &"127.0.0.1".into()
        ),
        "{r}"
    );
    let r = one(&rows, "gone.nx.test.", "AAAA", tcp6, "dig");
    assert_eq!(
        (&r["transport"], &r["rcode"], &r["answers"], &r["raddr"]),
        (&"tcp".into(), &"NXDOMAIN".into(), &0.into(), &"::1".into()),
        "{r}"
    );
    assert_eq!(
        one(&rows, "web.test.", "AAAA", udp, "dig")["transport"],
        "udp"
    );
    assert_eq!(rows.len(), 3, "{rows:#?}");
    // dnsmasq logged each of the three (query lines carry the name and type).
    for (name, qtype) in [
        ("web.test", "A"),
        ("gone.nx.test", "AAAA"),
        ("web.test", "AAAA"),
    ] {
        assert!(
            log.iter()
                .any(|l| l.contains(&format!("query[{qtype}] {name} from"))),
            "{log:#?}"
        );
    }
    assert_eq!(plain.len(), 1, "{plain:#?}");
    assert_eq!(plain[0]["transport"], "udp");
}

/// tcpconnect --dns: a connect to an address a DNS answer gave (dig asks dnsmasq for web.test, A
/// over UDP and AAAA over TCP; the addresses are on the namespace's lo) is named after the name asked; a connect to
/// an address no answer gave is not, nor one to the same address from a namespace where no answer
/// was seen (names are per namespace).
#[test]
fn tcpconnect_dns_names_connects_from_answers() {
    let ns = Netns::new();
    let elsewhere = Netns::new();
    for n in [&ns, &elsewhere] {
        for addr in ["192.0.2.10/32", "2001:db8::10/128"] {
            let ok = n
                .command("ip")
                .args(["addr", "add", addr, "dev", "lo"])
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }
    let resolver = dnsmasq(&ns);
    // Every namespace: the rows are told apart by pid.
    let json = Tool::start(&["tcpconnect", "--dns", "--json"]);
    let table = Tool::start(&["tcpconnect", "--dns", "--netns", &ns.path()]);
    let (_, out) = run_in(&ns, "dig", &["@127.0.0.1", "+short", "web.test", "A"]);
    assert_eq!(out.trim(), "192.0.2.10");
    // Over TCP: its answers name addresses too, where the kernel lets dnslat's programs read
    // TCP payloads (else the AAAA is asked over UDP).
    let tcp = common::chosen_plan("dnslat") != "tp_btf-udp";
    let (_, out) = run_in(
        &ns,
        "dig",
        &[
            "@127.0.0.1",
            if tcp { "+tcp" } else { "+notcp" },
            "+short",
            "web.test",
            "AAAA",
        ],
    );
    assert_eq!(out.trim(), "2001:db8::10");
    // Refused connects (nothing listens): a connect all the same.
    let connect = |n: &Netns, host: &str, port: u16| {
        run_in(
            n,
            "bash",
            &["-c", &format!("exec 3<>/dev/tcp/{host}/{port}; true")],
        )
        .0
    };
    let by_name4 = connect(&ns, "192.0.2.10", 7611);
    let by_name6 = connect(&ns, "2001:db8::10", 7612);
    let unnamed = connect(&ns, "127.0.0.1", 7613);
    let other_ns = connect(&elsewhere, "192.0.2.10", 7614);
    let rows = json.stop().json();
    let table = table.stop();
    resolver.stop();

    let query = |pid: u32| -> Vec<&Value> {
        rows.iter()
            .filter(|r| r["pid"] == pid)
            .map(|r| &r["query"])
            .collect()
    };
    assert_eq!(query(by_name4), ["web.test"], "{rows:?}");
    assert_eq!(query(by_name6), ["web.test"], "{rows:?}");
    assert_eq!(query(unnamed), [""], "{rows:?}");
    assert_eq!(query(other_ns), [""], "{rows:?}");
    assert!(
        table.lines[0].ends_with(" DPORT  RESULT QUERY"),
        "{:?}",
        table.lines
    );
    let named: Vec<&str> = table.lines[1..]
        .iter()
        .filter(|l| l.ends_with(" web.test"))
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    assert_eq!(named, ["7611", "7612"], "{:?}", table.lines);
}

#[test]
fn dnslat_refuses_bad_options() {
    for args in [
        &["dnslat", "--port", "0"][..],
        &["dnslat", "--timeout", "0"],
        &["dnslat", "--timeout", "soon"],
        &["dnslat", "-i", "1"],
    ] {
        let out = netbpf(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error"), "{args:?}: {err}");
    }
}

/// The label of the power-of-two histogram bucket holding `v`: "[256K, 512K)".
fn log2_bucket(v: u64) -> String {
    let low = 1u64 << (63 - v.max(1).leading_zeros());
    let unit = |n: u64| match n {
        n if n >= 1 << 20 => format!("{}M", n >> 20),
        n if n >= 1 << 10 => format!("{}K", n >> 10),
        n => n.to_string(),
    };
    format!("[{}, {})", unit(low), unit(low * 2))
}
