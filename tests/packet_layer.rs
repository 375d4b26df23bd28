//! gethostlatency, ipecn, superping, qdisc and ieee80211scan against real work in a private
//! network namespace: resolver calls, UDP datagrams with each ECN codepoint, ICMP echo on
//! loopback, a rate-limited tbf qdisc on the namespace's lo.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::veth::{ethtool_set, in_netns, ip, tc, veth_pair, ETHTOOL_SGRO, ETHTOOL_STSO};
use common::{loadgen_bin, netbpf, with, Netns, TempDir, Tool};
use serde_json::Value;

/// The stock-kernel VM (vmtest/suite.sh) the tests run in, if any.
fn vm_kernel() -> Option<String> {
    std::env::var("NETBPF_VMTEST_KERNEL")
        .ok()
        .filter(|k| !k.is_empty())
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn count(rows: &[Value], key: &str, value: impl Into<Value>) -> usize {
    with(rows, key, value).len()
}

// ---------------------------------------------------------------------------------------------
// gethostlatency

const RESOLVE: [&str; 11] = [
    "resolve",
    "--name",
    "localhost",
    "--getaddrinfo",
    "2",
    "--gethostbyname",
    "1",
    "--gethostbyname2",
    "1",
    "--gethostbyname-r",
    "1",
];

#[test]
fn gethostlatency_reports_each_call_with_host_and_latency() {
    if common::refused_here("gethostlatency") {
        return;
    }
    let ns = Netns::new();
    let json = Tool::start(&["gethostlatency", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["gethostlatency", "--netns", &ns.path()]);
    let run = ns.loadgen(&RESOLVE);
    let rows = json.stop().json();
    let table = table.stop();

    assert_eq!(
        run["ok"],
        serde_json::json!({"getaddrinfo":2,"gethostbyname":1,"gethostbyname2":1,"gethostbyname_r":1}),
        "every lookup of localhost succeeds"
    );
    // One line per call; gethostbyname's internal gethostbyname_r is not a second line.
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(count(&rows, "func", "getaddrinfo"), 2, "{rows:?}");
    assert_eq!(count(&rows, "func", "gethostbyname"), 1, "{rows:?}");
    assert_eq!(count(&rows, "func", "gethostbyname2"), 1, "{rows:?}");
    assert_eq!(count(&rows, "func", "gethostbyname_r"), 1, "{rows:?}");
    let calls = run["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5, "{run}");
    // In call order (one thread, one call after the other), each inside the call as the program
    // timed it around the function.
    for (r, c) in rows.iter().zip(calls) {
        assert_eq!(r["host"], "localhost", "{r}");
        assert_eq!(r["pid"], run["pid"], "{r}");
        assert_eq!(r["comm"], "loadgen", "{r}");
        assert_eq!(r["func"], c["func"], "{r} vs {c}");
        let ns_lat = r["lat_ns"].as_u64().unwrap();
        assert!(
            ns_lat > 0 && ns_lat <= c["ns"].as_u64().unwrap(),
            "{r} vs {c}"
        );
        let ms = r["lat_ms"].as_f64().unwrap();
        assert!((ms - ns_lat as f64 / 1e6).abs() < 1e-6, "{r}");
    }

    assert!(
        table.lines[0].starts_with("TIME      PID     COMM                  LATms HOST"),
        "{:?}",
        table.lines
    );
    assert_eq!(table.lines.len(), 6, "{:?}", table.lines);
    let pid = run["pid"].to_string();
    for line in &table.lines[1..] {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(
            (f[1], f[2], f[4]),
            (pid.as_str(), "loadgen", "localhost"),
            "{line}"
        );
        assert!(f[3].parse::<f64>().unwrap() >= 0.0, "{line}");
    }
}

#[test]
fn gethostlatency_filters_exclude_what_they_should() {
    if common::refused_here("gethostlatency") {
        return;
    }
    let ns = Netns::new();
    let traced = ns.loadgen_waiting(&RESOLVE);
    let other = ns.loadgen_waiting(&["resolve", "--name", "127.0.0.1", "--getaddrinfo", "3"]);
    let elsewhere = Netns::new();
    // -p also finds the process's C library through /proc/PID/maps.
    let by_pid = Tool::start(&["gethostlatency", "--json", "-p", &traced.pid().to_string()]);
    let by_ns = Tool::start(&["gethostlatency", "--json", "--netns", &ns.path()]);
    let other_ns = Tool::start(&["gethostlatency", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (traced.go(), other.go());

    let rows = by_pid.stop().json();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert!(rows.iter().all(|r| r["pid"] == a["pid"]), "{rows:?}");
    let rows = by_ns.stop().json();
    assert_eq!(rows.len(), 8, "{rows:?}");
    let others = with(&rows, "pid", b["pid"].clone());
    assert_eq!(others.len(), 3, "{rows:?}");
    assert!(others
        .iter()
        .all(|r| r["host"] == "127.0.0.1" && r["func"] == "getaddrinfo"));
    assert!(other_ns.stop().lines.is_empty());
}

/// `getent hosts ADDR...` (gethostbyaddr) in `ns`, in a mount namespace of its own where `dir`'s
/// hosts and nsswitch.conf are bind-mounted over /etc's: the answers come from the test's file,
/// and no DNS query is made. Returns its pid and output.
fn getent_hosts(ns: &Netns, dir: &TempDir, addrs: &[&str]) -> (u32, std::process::Output) {
    use std::ffi::CString;
    use std::os::unix::process::CommandExt;
    let binds: Vec<(CString, CString)> = ["hosts", "nsswitch.conf"]
        .iter()
        .map(|f| {
            let src = CString::new(dir.file(f)).unwrap();
            (src, CString::new(format!("/etc/{f}")).unwrap())
        })
        .collect();
    let mut cmd = ns.command("getent");
    cmd.arg("hosts").args(addrs);
    // SAFETY: unshare and mount are async-signal-safe; the strings were made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return fail();
            }
            // Private first: the bind mounts must not propagate to the host's namespace.
            let root = c"/".as_ptr();
            let private = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(
                std::ptr::null(),
                root,
                std::ptr::null(),
                private,
                std::ptr::null(),
            ) != 0
            {
                return fail();
            }
            for (src, dst) in &binds {
                let flags = libc::MS_BIND;
                if libc::mount(
                    src.as_ptr(),
                    dst.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                ) != 0
                {
                    return fail();
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("getent (libc-bin)");
    let pid = child.id();
    (pid, child.wait_with_output().unwrap())
}

/// Reverse lookups: one line per gethostbyaddr call (its internal gethostbyaddr_r is not a
/// second), the address asked for as HOST, whether the file knows it or not.
#[test]
fn gethostlatency_traces_gethostbyaddr() {
    if common::refused_here("gethostlatency") {
        return;
    }
    let ns = Netns::new();
    let dir = TempDir::new("ghl-addr");
    std::fs::write(
        dir.file("hosts"),
        "10.9.8.7 peers-v4.test\nfd00::7 peers-v6.test\n",
    )
    .unwrap();
    std::fs::write(dir.file("nsswitch.conf"), "hosts: files\n").unwrap();
    let json = Tool::start(&["gethostlatency", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["gethostlatency", "--netns", &ns.path()]);
    let asked = ["10.9.8.7", "fd00::7", "10.9.8.8"];
    let (pid, out) = getent_hosts(&ns, &dir, &asked);
    let rows = json.stop().json();
    let table = table.stop();

    // Answered from the test's file; 10.9.8.8 is in no file (getent: exit 2, "not found").
    let answers = String::from_utf8_lossy(&out.stdout);
    let names: Vec<Vec<&str>> = answers
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        names,
        [["10.9.8.7", "peers-v4.test"], ["fd00::7", "peers-v6.test"]]
    );
    assert_eq!(out.status.code(), Some(2));

    let hosts: Vec<&str> = rows.iter().map(|r| r["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, asked, "{rows:?}");
    for r in &rows {
        assert_eq!(
            (&r["func"], &r["pid"], &r["comm"]),
            (&"gethostbyaddr".into(), &pid.into(), &"getent".into()),
            "{r}"
        );
        assert!(r["lat_ns"].as_u64().unwrap() > 0, "{r}");
    }
    let shown: Vec<&str> = table.lines[1..]
        .iter()
        .map(|l| l.split_whitespace().last().unwrap())
        .collect();
    assert_eq!(shown, asked, "{:?}", table.lines);
}

/// glibc runs the _r functions inside the others: getaddrinfo with AF_INET hints calls
/// gethostbyname2_r, gethostbyname2 calls it too. Each call is one line, named after the
/// function the program called, and within the call as the program timed it.
#[test]
fn gethostlatency_reports_the_outer_call_of_nested_ones() {
    if common::refused_here("gethostlatency") {
        return;
    }
    let ns = Netns::new();
    let tool = Tool::start(&["gethostlatency", "--json", "--netns", &ns.path()]);
    let run = ns.loadgen(&[
        "resolve",
        "--name",
        "localhost",
        "--getaddrinfo-inet",
        "2",
        "--gethostbyname2",
        "1",
        "--gethostbyname2-r",
        "1",
    ]);
    let rows = tool.stop().json();
    assert_eq!(run["ok"]["getaddrinfo_inet"], 2, "{run}");
    assert_eq!(run["ok"]["gethostbyname2_r"], 1, "{run}");
    let calls = run["calls"].as_array().unwrap();
    let funcs: Vec<&str> = calls.iter().map(|c| c["func"].as_str().unwrap()).collect();
    assert_eq!(
        funcs,
        [
            "getaddrinfo",
            "getaddrinfo",
            "gethostbyname2",
            "gethostbyname2_r"
        ]
    );
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (r, c) in rows.iter().zip(calls) {
        assert_eq!(r["func"], c["func"], "{r} vs {c}");
        assert_eq!(r["host"], "localhost", "{r}");
        let lat = r["lat_ns"].as_u64().unwrap();
        assert!(lat > 0 && lat <= c["ns"].as_u64().unwrap(), "{r} vs {c}");
    }
}

/// A process with its own /etc/hosts (a mount namespace, as a container has) resolving a name
/// only that file knows: shown with that name.
#[test]
fn gethostlatency_shows_a_name_from_a_private_hosts_file() {
    if common::refused_here("gethostlatency") {
        return;
    }
    let ns = Netns::new();
    let dir = TempDir::new("hosts");
    let hosts = dir.file("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n10.77.0.1 netbpf-private.example\n",
    )
    .unwrap();
    let tool = Tool::start(&["gethostlatency", "--json", "--netns", &ns.path()]);
    let script = format!(
        "mount --bind {hosts} /etc/hosts && exec {} resolve --name netbpf-private.example \
         --getaddrinfo 1 --gethostbyname 1",
        loadgen_bin().display()
    );
    let out = ns
        .command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        run["ok"]["getaddrinfo"], 1,
        "resolved from the private file: {run}"
    );
    assert_eq!(run["ok"]["gethostbyname"], 1, "{run}");
    let rows = tool.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["host"], "netbpf-private.example", "{r}");
        assert_eq!(r["pid"], run["pid"], "{r}");
    }
}

/// The path of the C library this test process runs with.
fn own_libc() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            p.rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("libc.so"))
        })
        .expect("a C library in /proc/self/maps")
        .to_string()
}

/// A process whose C library is another file than the system's (a container's own library):
/// found with -p through /proc/PID/root, and with -l naming that file; probes on the system
/// library do not see its calls.
#[test]
fn gethostlatency_finds_a_processs_own_libc() {
    if common::refused_here("gethostlatency") {
        return;
    }
    let ns = Netns::new();
    let dir = TempDir::new("libc");
    let libc = own_libc();
    let copy = dir.file("libc.so.6");
    std::fs::copy(&libc, &copy).unwrap();
    let script = format!(
        "mount --bind {copy} {libc} && exec {} --wait resolve --name localhost --getaddrinfo 2",
        loadgen_bin().display()
    );
    let mut child = ns
        .command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux)");
    let pid = child.id();
    // Wait for the exec and then for the dynamic loader to map the C library (a while after the
    // exec in a slow VM): the library -p finds is the one mapped by loadgen, not by sh.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|e| e.ends_with("examples/loadgen"))
        || !std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .is_ok_and(|maps| maps.lines().any(|l| l.ends_with("/libc.so.6")))
    {
        assert!(Instant::now() < deadline, "loadgen did not start");
        thread::sleep(Duration::from_millis(20));
    }
    let pid_s = pid.to_string();
    let by_pid = Tool::start(&["gethostlatency", "--json", "-p", &pid_s]);
    let by_lib = Tool::start(&[
        "gethostlatency",
        "--json",
        "-l",
        &copy,
        "--netns",
        &ns.path(),
    ]);
    let system = Tool::start(&["gethostlatency", "--json", "--netns", &ns.path()]);
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let f = by_pid.stop();
    // Its own library: by its path under /proc/PID/root, or, where that path is not the mapped
    // file (the test run in a chroot, as in the VMs), through /proc/PID/map_files.
    assert!(
        f.stderr.contains(&format!("/proc/{pid}/root{libc}"))
            || f.stderr.contains(&format!("/proc/{pid}/map_files/")),
        "{}",
        f.stderr
    );
    let rows = f.json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["pid"] == pid && r["func"] == "getaddrinfo"));
    assert_eq!(by_lib.stop().json().len(), 2);
    assert!(
        system.stop().lines.is_empty(),
        "the system library's probes do not fire in the copy"
    );
}

#[test]
fn gethostlatency_bad_library_is_refused() {
    for (lib, says) in [
        ("/nonexistent/libc.so.6", "no such file"),
        ("/etc", "not a regular file"),
        ("/dev/null", "not a regular file"),
        ("/etc/hosts", "not an ELF file"),
    ] {
        let o = netbpf(&["gethostlatency", "-l", lib]);
        assert_eq!(o.status.code(), Some(2), "{lib}");
        assert!(
            stderr(&o).contains(&format!("-l: {lib}: {says}")),
            "{}",
            stderr(&o)
        );
    }
    // A binary with none of the functions.
    let o = netbpf(&["gethostlatency", "-l", "/proc/self/exe", "-d", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exports none of getaddrinfo"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// ipecn

#[test]
fn ipecn_reports_only_congestion_experienced_v4_and_v6() {
    let ns = Netns::new();
    let json = Tool::start(&["ipecn", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["ipecn", "--netns", &ns.path()]);
    let v4 = ns.loadgen(&[
        "ecn",
        "--family",
        "4",
        "--ce",
        "3",
        "--ect",
        "2",
        "--not-ect",
        "2",
    ]);
    let v6 = ns.loadgen(&[
        "ecn",
        "--family",
        "6",
        "--ce",
        "2",
        "--ect",
        "1",
        "--not-ect",
        "1",
    ]);
    let rows = json.stop().json();
    let table = table.stop();
    assert_eq!(
        (v4["sent"].as_u64(), v6["sent"].as_u64()),
        (Some(7), Some(4))
    );

    assert_eq!(rows.len(), 5, "only the CE datagrams: {rows:?}");
    assert_eq!(count(&rows, "saddr", "127.0.0.1"), 3, "{rows:?}");
    assert_eq!(count(&rows, "saddr", "::1"), 2, "{rows:?}");
    for r in &rows {
        assert_eq!(r["daddr"], r["saddr"], "{r}");
        assert_eq!(r["proto"], "UDP", "{r}");
        assert_eq!(r["tos"], 3, "{r}");
        assert_eq!(r["ifname"], "lo", "{r}");
        assert_eq!(r["ip"], if r["saddr"] == "::1" { 6 } else { 4 }, "{r}");
    }

    assert_eq!(table.lines.len(), 5, "{:?}", table.lines);
    for line in &table.lines {
        let (time, rest) = line.split_at(8);
        assert!(time.chars().filter(|c| *c == ':').count() == 2, "{line}");
        assert!(
            rest == " ECN CE from: 127.0.0.1" || rest == " ECN CE from: ::1",
            "{line}"
        );
    }
}

#[test]
fn ipecn_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let elsewhere = Netns::new();
    let v6_only = Tool::start(&["ipecn", "--json", "-6", "--netns", &ns.path()]);
    let v4_only = Tool::start(&["ipecn", "--json", "-4", "--netns", &ns.path()]);
    let other_ns = Tool::start(&["ipecn", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&["ecn", "--family", "4", "--ce", "2"]);
    ns.loadgen(&["ecn", "--family", "6", "--ce", "1"]);
    let rows = v6_only.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["saddr"], "::1");
    let rows = v4_only.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["saddr"] == "127.0.0.1"));
    // Nothing marked in that namespace: said on stderr, stdout (JSON lines) stays empty; the
    // runs that saw packets do not say it.
    let other = other_ns.stop();
    assert!(other.lines.is_empty(), "{:?}", other.lines);
    assert!(
        other.stderr.contains(
            "netbpf ipecn: no packet marked Congestion Experienced was received while tracing"
        ),
        "{}",
        other.stderr
    );
}

#[test]
fn ipecn_says_nothing_only_when_nothing_was_seen() {
    let ns = Netns::new();
    let table = Tool::start(&["ipecn", "--netns", &ns.path()]);
    ns.loadgen(&["ecn", "--family", "4", "--ce", "1"]);
    let f = table.stop();
    assert_eq!(f.lines.len(), 1, "{:?}", f.lines);
    assert!(
        f.lines[0].contains("ECN CE from: 127.0.0.1"),
        "{:?}",
        f.lines
    );
    assert!(!f.stderr.contains("no packet marked"), "{}", f.stderr);
}

/// The NAPI/GRO receive path hands packets to the stack in lists (netif_receive_skb_list:
/// ip_list_rcv, never ip_rcv). Across a veth whose receiving end does GRO, every CE datagram is
/// still reported, and only those; netsize shows the packets did come through NAPI.
#[test]
fn ipecn_sees_the_gro_list_receive_path() {
    let (a, b) = veth_pair();
    // veth takes the NAPI path when the receiving end does GRO and the sending end no TSO.
    ethtool_set(&a, "va", ETHTOOL_STSO, false);
    ethtool_set(&b, "vb", ETHTOOL_SGRO, true);
    let tool = Tool::start(&["ipecn", "--json", "--netns", &b.path()]);
    let sizes = Tool::start(&["netsize", "--json", "-i", "vb", "--netns", &b.path()]);
    a.loadgen(&[
        "ecn",
        "--to",
        "10.9.0.2",
        "--ce",
        "5",
        "--ect",
        "3",
        "--not-ect",
        "3",
    ]);
    a.loadgen(&[
        "ecn",
        "--to",
        "fd09::2",
        "--ce",
        "4",
        "--ect",
        "2",
        "--not-ect",
        "2",
    ]);
    let rows = tool.stop().json();
    let nic_recv: u64 = sizes
        .stop()
        .json()
        .iter()
        .filter(|r| r["hist"] == "nic_recv_bytes")
        .flat_map(|r| r["buckets"].as_array().unwrap().clone())
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    // Before 5.13 veth runs NAPI only with XDP attached: the frames take netif_rx (no NIC
    // receive event), and the tool must still see each datagram once.
    let veth_napi = netbpf::core::caps::kernel_version().is_some_and(|v| v >= (5, 13));
    if veth_napi {
        assert!(
            nic_recv >= 19,
            "the datagrams came through NAPI: {nic_recv}"
        );
    } else {
        assert_eq!(nic_recv, 0, "no NAPI on veth before 5.13");
    }
    assert_eq!(rows.len(), 9, "{rows:?}");
    assert_eq!(count(&rows, "saddr", "10.9.0.1"), 5, "{rows:?}");
    assert_eq!(count(&rows, "saddr", "fd09::1"), 4, "{rows:?}");
    for r in &rows {
        assert_eq!(r["ifname"], "vb", "{r}");
        assert_eq!(r["tos"], 3, "{r}");
        assert_eq!(r["proto"], "UDP", "{r}");
    }
}

/// A packet received on a bridge port goes up to the stack again through the bridge: it is one
/// packet, reported once, on the bridge.
#[test]
fn ipecn_reports_a_bridged_packet_once() {
    let (a, b) = veth_pair();
    ip(&b, &["link", "add", "br0", "type", "bridge"]);
    ip(&b, &["addr", "del", "10.9.0.2/24", "dev", "vb"]);
    ip(&b, &["link", "set", "vb", "master", "br0"]);
    ip(&b, &["addr", "add", "10.9.0.2/24", "dev", "br0"]);
    ip(&b, &["link", "set", "br0", "up"]);
    let tool = Tool::start(&["ipecn", "--json", "--netns", &b.path()]);
    a.loadgen(&["ecn", "--to", "10.9.0.2", "--ce", "3", "--not-ect", "2"]);
    let rows = tool.stop().json();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r["ifname"] == "br0" && r["saddr"] == "10.9.0.1"));
}

// ---------------------------------------------------------------------------------------------
// superping

fn check_superping(family: &str, addr: &str) {
    let ns = Netns::new();
    let json = Tool::start(&["superping", "--json", "--netns", &ns.path()]);
    let table = Tool::start(&["superping", "--netns", &ns.path()]);
    let run = ns.loadgen(&["ping", "--family", family, "--count", "3"]);
    let rows = json.stop().json();
    let table = table.stop();
    assert_eq!(run["seqs"], serde_json::json!([1, 2, 3]), "{run}");

    assert_eq!(rows.len(), 3, "{rows:?}");
    for (r, seq) in rows.iter().zip(1..) {
        assert_eq!(r["seq"], seq, "{r}");
        assert_eq!(r["id"], run["id"], "{r}");
        assert_eq!(r["ip"], family.parse::<u64>().unwrap(), "{r}");
        assert_eq!(r["raddr"], addr, "{r}");
        assert_eq!(r["ifname"], "lo", "{r}");
        assert_eq!(r["pid"], run["pid"], "{r}");
        assert_eq!(r["comm"], "loadgen", "{r}");
        let us = r["rtt_us"].as_f64().unwrap();
        assert!(us > 0.0 && us < 5_000_000.0, "{r}");
    }
    let expected: Vec<String> = (1..=3)
        .map(|seq| format!("IPv{family} ping, ID {} seq {seq}: ", run["id"]))
        .collect();
    assert_eq!(table.lines.len(), 3, "{:?}", table.lines);
    for (line, prefix) in table.lines.iter().zip(&expected) {
        let us = line
            .strip_prefix(prefix.as_str())
            .and_then(|r| r.strip_suffix(" us"))
            .unwrap_or_else(|| panic!("{line:?} is not '{prefix}N us'"));
        assert!(us.parse::<u64>().unwrap() < 5_000_000, "{line}");
    }
}

#[test]
fn superping_times_ipv4_echo() {
    check_superping("4", "127.0.0.1");
}

#[test]
fn superping_times_ipv6_echo() {
    check_superping("6", "::1");
}

/// `ping` itself (iputils, a raw socket): the kernel's round trip of each echo is never longer
/// than the one ping measured and printed.
#[test]
fn superping_times_pings_own_echoes() {
    let ns = Netns::new();
    let tool = Tool::start(&["superping", "--json", "--netns", &ns.path()]);
    let ping = ns
        .command("ping")
        .args(["-n", "-c", "3", "-i", "0.2", "127.0.0.1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ping (iputils-ping)");
    let pid = ping.id();
    let out = ping.wait_with_output().unwrap();
    assert!(out.status.success());
    let rows = tool.stop().json();
    // "64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms"
    let pinged: Vec<(u64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            let ms: f64 = l.split("time=").nth(1)?.split(' ').next()?.parse().ok()?;
            Some((seq, ms))
        })
        .collect();
    assert_eq!(pinged.len(), 3, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (r, (seq, ms)) in rows.iter().zip(&pinged) {
        assert_eq!(r["seq"], *seq, "{r}");
        assert_eq!(r["id"], rows[0]["id"], "{r}");
        assert_eq!(r["pid"], pid, "{r}");
        assert_eq!(r["comm"], "ping", "{r}");
        assert_eq!(r["raddr"], "127.0.0.1", "{r}");
        let us = r["rtt_us"].as_f64().unwrap();
        // Not bounded by ping's own time: ping times from its sendto() to the reply's receive
        // timestamp, taken on loopback when the reply is queued to the backlog (netif_rx);
        // superping from the request's queueing to the device to the reply's processing from
        // that backlog, which a busy VM delays by milliseconds (3.2 ms against ping's 1.0).
        // Both are within the 200 ms between two requests.
        assert!(us > 0.0 && us < 200_000.0, "{r} vs ping's {ms} ms");
    }
}

/// Echoes superping cannot time are said on stderr, with their numbers (issue 15: it printed 2
/// of 5 echoes, and nothing said why): requests that got no reply (this namespace ignores echo
/// requests), and a reply to no request it saw (sent here over a raw socket).
#[test]
fn superping_says_which_echoes_it_could_not_time() {
    let ns = Netns::new();
    let set = ns
        .command("sysctl")
        .args(["-qw", "net.ipv4.icmp_echo_ignore_all=1"])
        .status()
        .unwrap();
    assert!(set.success());
    let tool = Tool::start(&["superping", "--json", "--netns", &ns.path()]);
    let ping = ns
        .command("ping")
        .args(["-n", "-c", "2", "-i", "0.2", "-W", "1", "127.0.0.1"])
        .output()
        .expect("ping (iputils-ping)");
    assert!(
        String::from_utf8_lossy(&ping.stdout).contains("2 packets transmitted, 0 received"),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    in_netns(&ns, send_echo_reply_to_self);
    let f = tool.stop();
    assert!(f.lines.is_empty(), "{:?}", f.lines);
    assert!(
        f.stderr.contains(
            "netbpf superping: 1 echo replies matched no request seen (sent before tracing \
             began, or forwarded): not timed"
        ),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr
            .contains("netbpf superping: 2 echo requests had no reply by the end of tracing"),
        "{}",
        f.stderr
    );
}

/// One ICMP echo reply (id 0x5150, seq 7) to 127.0.0.1 from a raw socket: a reply nobody asked
/// for.
fn send_echo_reply_to_self() {
    let mut icmp = [0u8, 0, 0, 0, 0x51, 0x50, 0, 7];
    let sum: u32 = icmp
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a raw socket, one sendto of a local buffer, close.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        let sent = libc::sendto(
            fd,
            icmp.as_ptr().cast(),
            icmp.len(),
            0,
            (&to as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&to) as u32,
        );
        assert_eq!(
            sent,
            icmp.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

/// Echoes larger than the path MTU leave and come back in fragments: the first fragment carries
/// the ICMP header (IPv4, and IPv6 behind its Fragment header).
#[test]
fn superping_times_fragmented_echoes() {
    let (a, _b) = veth_pair();
    let tool = Tool::start(&["superping", "--json", "--netns", &a.path()]);
    for (flag, to) in [("-4", "10.9.0.2"), ("-6", "fd09::2")] {
        let out = a
            .command("ping")
            .args([flag, "-n", "-c", "2", "-i", "0.2", "-s", "3000", to])
            .output()
            .expect("ping (iputils-ping)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let rows = tool.stop().json();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for (to, ip) in [("10.9.0.2", 4), ("fd09::2", 6)] {
        let mine = with(&rows, "raddr", to);
        assert_eq!(mine.len(), 2, "{rows:?}");
        for (r, seq) in mine.iter().zip(1..) {
            assert_eq!(
                (r["seq"].clone(), r["ip"].clone()),
                (seq.into(), ip.into()),
                "{r}"
            );
            assert_eq!(r["ifname"], "va", "{r}");
        }
    }
}

#[test]
fn superping_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let elsewhere = Netns::new();
    let v4_only = Tool::start(&["superping", "--json", "-4", "--netns", &ns.path()]);
    let other_ns = Tool::start(&["superping", "--json", "--netns", &elsewhere.path()]);
    let v4 = ns.loadgen(&["ping", "--family", "4", "--count", "2", "--id", "4321"]);
    ns.loadgen(&["ping", "--family", "6", "--count", "2", "--id", "4322"]);
    let rows = v4_only.stop().json();
    assert_eq!(v4["id"], 4321);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r["id"] == 4321 && r["ip"] == 4),
        "{rows:?}"
    );
    assert!(other_ns.stop().lines.is_empty());
}

// ---------------------------------------------------------------------------------------------
// qdisc

const BURST: [&str; 7] = [
    "udp-burst",
    "--family",
    "4",
    "--count",
    "60",
    "--size",
    "1000",
];

/// lo of `ns` gets a 1 Mbit/s tbf: 60 datagrams of 1000 bytes sent at once take ~0.5 s to drain.
fn add_tbf(ns: &Netns) {
    let status = ns
        .command("tc")
        .args([
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "1600",
        ])
        .args(["limit", "100000"])
        .status()
        .expect("tc (iproute2) must be installed: scripts/install-deps.sh");
    assert!(status.success());
}

fn buckets(record: &Value) -> Vec<(u64, u64, u64)> {
    record["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let n = |k: &str| b[k].as_u64().unwrap();
            (n("low"), n("high"), n("count"))
        })
        .collect()
}

/// The qdisc plans this kernel can run, best first (from `netbpf list --verbose`).
fn qdisc_plans() -> Vec<String> {
    let out = netbpf(&["list", "--verbose"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| !l.starts_with("qdisc "));
    lines.next().expect("qdisc in netbpf list");
    let plans: Vec<String> = lines
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 2 && (f[1] == "chosen" || f[1] == "usable")).then(|| f[0].to_string())
        })
        .collect();
    // On a stock kernel the best plan is the stock-only one (trampolines on the kind's own
    // functions); here, without kprobes or fentry, only the tracepoints.
    if vm_kernel().is_some() {
        // The tracepoint plan needs qdisc:qdisc_enqueue (5.16) and bpf_loop (5.17).
        let tracepoints =
            common::btf_names("btf_trace_qdisc_enqueue") && common::btf_names("BPF_FUNC_loop");
        let want: &[&str] = if tracepoints {
            &["fexit", "kprobe", "tp_btf"]
        } else {
            &["fexit", "kprobe"]
        };
        assert_eq!(plans, want, "{text}");
    } else {
        assert!(plans.last().is_some_and(|p| p == "tp_btf"), "{text}");
    }
    // Before 5.11 modules have no BTF: fexit cannot reach the stock kinds (all modules), which
    // the tool then times through kprobes (checked in qdisc_stock_kinds_time_their_queued_packets).
    if netbpf::core::caps::kernel_version().is_some_and(|v| v < (5, 11)) {
        return plans.into_iter().filter(|p| p != "fexit").collect();
    }
    plans
}

/// `qdisc KIND ARGS...` with every plan this kernel can run, started together: (plan, tool).
fn qdisc_every_plan(args: &[&str]) -> Vec<(String, Tool)> {
    qdisc_plans()
        .into_iter()
        .map(|plan| {
            let tool = Tool::start_with_env(args, &[("NETBPF_PLAN", &plan)]);
            (plan, tool)
        })
        .collect()
}

/// Every plan times every datagram once, the same way; the table (the book's name, default plan)
/// says so too.
#[test]
fn qdisc_tbf_histogram_times_every_queued_packet() {
    let ns = Netns::new();
    add_tbf(&ns);
    let path = ns.path();
    let tools = qdisc_every_plan(&["qdisc", "tbf", "--json", "--netns", &path]);
    // The book's name, as a subcommand.
    let table = Tool::start(&["qdisc-tbf", "--netns", &path]);
    let run = ns.loadgen(&BURST);
    let table = table.stop();
    assert_eq!(run["received"], 60, "{run}");

    for (plan, tool) in tools {
        let f = tool.stop();
        if plan != "tp_btf" {
            assert!(
                f.stderr
                    .contains(&format!("({plan} tbf_enqueue/tbf_dequeue)")),
                "{}",
                f.stderr
            );
        }
        let rows = f.json();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["hist"], "us");
        assert_eq!(rows[0]["kind"], "tbf");
        assert_eq!(rows[0]["plan"], plan.as_str());
        // Nothing was queued before the run: the only untimed packets are dequeues the
        // tracepoint programs never saw (found from the qdisc's counters).
        let untimed = rows[0]["untimed"].as_u64().unwrap();
        assert_eq!(rows[0]["missed"], untimed, "{plan}: {rows:?}");
        let b = buckets(&rows[0]);
        assert_eq!(
            b.iter().map(|x| x.2).sum::<u64>() + untimed,
            60,
            "{plan}: every datagram, once: {b:?}"
        );
        // At 1 Mbit/s (125 bytes per ms) the last of ~60 KB queued waits ~0.5 s: later packets
        // wait longer than 64 ms, none anywhere near 2 s.
        let (low, high, _) = *b.last().unwrap();
        assert!(
            low >= 65_536,
            "{plan}: the longest waits are in [{low}, {high}) us: {b:?}"
        );
        assert!(high <= 2_097_152, "{plan}: {b:?}");
    }

    assert_eq!(table.lines[0], "@us[tbf]:", "{:?}", table.lines);
    let counted: u64 = table.lines[1..]
        .iter()
        .filter(|l| l.starts_with('['))
        .map(|l| l[16..24].trim().parse::<u64>().unwrap())
        .sum();
    // Dequeues its programs never saw are reported on stderr as untimed.
    let untimed: u64 = table
        .stderr
        .split("netbpf qdisc: ")
        .find_map(|l| {
            l.strip_suffix("")
                .and_then(|l| l.split(' ').next()?.parse().ok())
        })
        .unwrap_or(0);
    assert_eq!(counted + untimed, 60, "{:?} {}", table.lines, table.stderr);
}

/// Packets the device `dev` of `ns` sent (its driver's count: one per skb it was given).
fn tx_packets(ns: &Netns, dev: &str) -> u64 {
    let out = ns
        .command("ip")
        .args(["-j", "-s", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

/// TCP hands tbf GSO packets of up to 64 KB; tbf splits those larger than its burst into
/// segments, new skbs it dequeues one by one. Each segment is timed (from its packet's enqueue):
/// the histogram counts exactly the skbs the device was given, under every plan.
#[test]
fn qdisc_tbf_times_the_segments_of_split_gso_packets() {
    let (a, b) = veth_pair();
    // Only this test's packets on va: IPv6 would add router solicitations and multicast
    // reports at any moment, which the count of va's packets below would include or not.
    in_netns(&a, || {
        std::fs::write("/proc/sys/net/ipv6/conf/va/disable_ipv6", "1").unwrap();
    });
    thread::sleep(Duration::from_millis(300));
    tc(
        &a,
        &[
            "qdisc", "add", "dev", "va", "root", "tbf", "rate", "20mbit", "burst", "4k", "limit",
            "3000000",
        ],
    );
    let path = a.path();
    let tools = qdisc_every_plan(&["qdisc", "tbf", "--json", "-i", "va", "--netns", &path]);
    let listener = in_netns(&b, || TcpListener::bind(("10.9.0.2", 5001)).unwrap());
    let sink = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).unwrap();
        buf.len()
    });
    let before = tx_packets(&a, "va");
    a.loadgen(&[
        "tcp-send", "--to", "10.9.0.2", "--port", "5001", "--bytes", "1000000",
    ]);
    assert_eq!(sink.join().unwrap(), 1_000_000);
    // The last packets (FIN, ACKs) may still be in the qdisc.
    thread::sleep(Duration::from_millis(300));
    let sent = tx_packets(&a, "va") - before;
    for (plan, tool) in tools {
        let rows = tool.stop().json();
        let timed: u64 = buckets(&rows[0]).iter().map(|x| x.2).sum();
        let untimed = rows[0]["untimed"].as_u64().unwrap();
        assert!(
            rows[0]["gso_segments_timed"].as_u64().unwrap() > 100,
            "{plan}: 1 MB in segments of one MSS: {rows:?}"
        );
        // Every skb va sent, once: timed, or untimed (dequeues the kernel did not hand to the
        // tracepoint programs are found from the qdisc's counters).
        assert_eq!(
            timed + untimed,
            sent,
            "{plan}: {timed} timed + {untimed} untimed of {sent} sent: {rows:?}"
        );
    }
}

#[test]
fn qdisc_filters_exclude_what_they_should() {
    let ns = Netns::new();
    let elsewhere = Netns::new();
    add_tbf(&ns);
    let path = ns.path();
    let on_lo = Tool::start(&["qdisc", "tbf", "--json", "-i", "lo", "--netns", &path]);
    let on_eth0 = Tool::start(&["qdisc", "tbf", "--json", "-i", "eth0", "--netns", &path]);
    // Where htb is a module and the kernel has no qdisc tracepoints, no htb qdisc could be timed
    // before the module loads (the tool refuses): load it, as a first `tc qdisc add` would.
    let _ = std::process::Command::new("modprobe")
        .args(["-q", "sch_htb"])
        .status();
    let other_kind = Tool::start(&["qdisc", "htb", "--json", "--netns", &path]);
    let other_ns = Tool::start(&["qdisc", "tbf", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&[
        "udp-burst",
        "--family",
        "4",
        "--count",
        "5",
        "--size",
        "200",
    ]);
    let rows = on_lo.stop().json();
    assert_eq!(rows[0]["interface"], "lo");
    assert_eq!(
        buckets(&rows[0]).iter().map(|x| x.2).sum::<u64>(),
        5,
        "{rows:?}"
    );
    for t in [on_eth0, other_kind, other_ns] {
        let rows = t.stop().json();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["buckets"], serde_json::json!([]), "{rows:?}");
    }
}

fn kernel_has(symbol: &str) -> bool {
    std::fs::read_to_string("/proc/kallsyms")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(symbol))
}

#[test]
fn qdisc_kinds_the_kernel_lacks_are_refused() {
    // A kind no kernel has, and whichever of the book's kinds this kernel lacks (fq_codel and
    // others here; a stock kernel has them as modules).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut missing = vec!["nosuchq"];
    for kind in ["fq_codel", "fq", "codel", "red", "cbs"] {
        let module = format!(
            "/lib/modules/{}/kernel/net/sched/sch_{kind}.ko",
            release.trim()
        );
        let on_disk = ["", ".xz", ".zst", ".gz"]
            .iter()
            .any(|ext| std::path::Path::new(&format!("{module}{ext}")).exists());
        let enqueue = if kind == "codel" {
            "codel_qdisc_enqueue".into()
        } else {
            format!("{kind}_enqueue")
        };
        if !on_disk && !kernel_has(&enqueue) {
            missing.push(kind);
        }
    }
    for kind in missing {
        let o = netbpf(&["qdisc", kind]);
        assert_eq!(o.status.code(), Some(2), "{kind}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "qdisc {kind} is not supported on this kernel: not built in (no {kind}_enqueue in \
                 /proc/kallsyms) and no module sch_{kind} in /lib/modules/"
            )),
            "{}",
            stderr(&o)
        );
    }
    // CBQ left Linux in 6.3; before, it is a kind like the others (Debian's 6.1 does not build
    // it).
    let o = netbpf(&["qdisc-cbq", "-d", "1"]);
    let (major, minor) = {
        let mut v = release.split(|c: char| !c.is_ascii_digit());
        let n = |s: Option<&str>| s.and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
        (n(v.next()), n(v.next()))
    };
    let cbq_module = ["", ".xz", ".zst", ".gz"].iter().any(|ext| {
        std::path::Path::new(&format!(
            "/lib/modules/{}/kernel/net/sched/sch_cbq.ko{ext}",
            release.trim()
        ))
        .exists()
    });
    if (major, minor) >= (6, 3) {
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains(
                "qdisc cbq is not supported on this kernel: CBQ was removed from Linux in 6.3"
            ),
            "{}",
            stderr(&o)
        );
    } else if cbq_module || kernel_has("cbq_enqueue") {
        assert!(o.status.success(), "{}", stderr(&o));
    } else {
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains("qdisc cbq is not supported on this kernel: not built in"),
            "{}",
            stderr(&o)
        );
    }
    // Kinds every kernel has, that never queue: a usage error, whatever the kernel.
    for (kind, says) in [
        ("noqueue", "qdisc noqueue: noqueue has no queue"),
        ("ingress", "qdisc ingress: ingress only runs filters"),
        (
            "mq",
            "qdisc mq: mq only holds one child qdisc per transmit queue",
        ),
    ] {
        let o = netbpf(&["qdisc", kind]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains(says) && !e.contains("on this kernel"), "{e}");
    }
}

/// Book kinds a stock kernel has as modules (tc loads them): each times the packets it queues.
/// Queues that never fill are bypassed (fq_codel and codel send straight to the driver when
/// empty; red has no rate of its own): those run as the child of a tbf that keeps them busy,
/// which only the plans on the kind's own functions see. fq paces (maxrate) and cbs shapes by
/// themselves: they are root qdiscs.
#[test]
fn qdisc_stock_kinds_time_their_queued_packets() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let present = |kind: &str| {
        let module = format!(
            "/lib/modules/{}/kernel/net/sched/sch_{kind}.ko",
            release.trim()
        );
        ["", ".xz", ".zst", ".gz"]
            .iter()
            .any(|ext| std::path::Path::new(&format!("{module}{ext}")).exists())
            || kernel_has(&format!("{kind}_enqueue"))
            || kernel_has(&format!("{kind}_qdisc_enqueue"))
    };
    let plans = qdisc_plans();
    let functions = plans[0] != "tp_btf";
    let kinds: [(&str, bool, &[&str]); 5] = [
        // Below fq's low_rate_threshold (550 kbit/s), so every packet is paced, not only those
        // past the first quantum (10 MTUs: 650 KB on lo).
        ("fq", true, &["maxrate", "400kbit"]),
        (
            "cbs",
            true,
            &["idleslope", "1000", "sendslope", "-9000", "hicredit", "100"],
        ),
        ("fq_codel", false, &["target", "2s", "interval", "10s"]),
        ("codel", false, &["target", "2s", "interval", "10s"]),
        (
            "red",
            false,
            &[
                "limit",
                "1000000",
                "min",
                "100000",
                "max",
                "300000",
                "avpkt",
                "1000",
                "probability",
                "0.01",
                "bandwidth",
                "1mbit",
            ],
        ),
    ];
    let mut timed = Vec::new();
    for (kind, root, params) in kinds {
        if !present(kind) || (!root && !functions) {
            continue;
        }
        let ns = Netns::new();
        let mut add = vec!["qdisc", "add", "dev", "lo"];
        if root {
            add.extend(["root", kind]);
        } else {
            tc(
                &ns,
                &[
                    "qdisc", "add", "dev", "lo", "root", "handle", "1:", "tbf", "rate", "1mbit",
                    "burst", "1600", "limit", "100000",
                ],
            );
            add.extend(["parent", "1:1", "handle", "10:", kind]);
        }
        add.extend(params);
        tc(&ns, &add);
        // Every plan that can see it (the tracepoints see root qdiscs only), at once; the
        // default one first.
        let path = ns.path();
        let args = ["qdisc", kind, "--json", "--netns", &path];
        let default = Tool::start(&args);
        let others: Vec<(String, Tool)> = plans
            .iter()
            .skip(1)
            .filter(|p| root || *p != "tp_btf")
            .map(|p| {
                (
                    p.clone(),
                    Tool::start_with_env(&args, &[("NETBPF_PLAN", p)]),
                )
            })
            .collect();
        let run = ns.loadgen(&BURST);
        assert_eq!(run["received"], 60, "{kind}: {run}");
        for (plan, tool) in std::iter::once((plans[0].clone(), default)).chain(others) {
            let f = tool.stop();
            let rows = f.json();
            let b = buckets(&rows[0]);
            assert_eq!(rows[0]["kind"], kind);
            assert_eq!(rows[0]["plan"], plan.as_str(), "{kind}: {}", f.stderr);
            assert_eq!(
                b.iter().map(|x| x.2).sum::<u64>(),
                60,
                "{kind}, {plan}: every datagram, once: {rows:?} {}",
                f.stderr
            );
            assert_eq!(rows[0]["untimed"], 0, "{kind}, {plan}: {rows:?}");
            // Shaped or paced to about 1 Mbit/s: most of them waited milliseconds in the queue.
            let waited: u64 = b.iter().filter(|x| x.0 >= 1024).map(|x| x.2).sum();
            assert!(waited >= 30, "{kind}, {plan}: {b:?}");
        }
        timed.push(kind);
    }
    if vm_kernel().is_some() {
        assert_eq!(timed, ["fq", "cbs", "fq_codel", "codel", "red"]);
    }
}

#[test]
fn qdisc_bad_usage_is_refused() {
    for (args, says) in [
        (&["qdisc"][..], "give the qdisc kind"),
        (&["qdisc", "Tbf!"][..], "'Tbf!' is not a qdisc kind"),
        (&["qdisc-fq", "tbf"][..], "qdisc-fq takes no KIND"),
        (
            &["qdisc", "tbf", "-i", "a/b"][..],
            "'a/b' is not an interface name",
        ),
    ] {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

// ---------------------------------------------------------------------------------------------
// ieee80211scan, and the command line of every tool here

/// Whether the running kernel has a module file `name` (anywhere under its modules directory, as
/// modules.dep lists them: drivers move between kernel versions).
fn module_on_disk(name: &str) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let dep = std::fs::read_to_string(format!("/lib/modules/{}/modules.dep", release.trim()))
        .unwrap_or_default();
    dep.lines().any(|l| {
        l.split(':')
            .next()
            .and_then(|p| p.rsplit('/').next())
            .is_some_and(|f| f.starts_with(&format!("{name}.ko")))
    })
}

/// One test for both (they must not run at once: the second loads the wireless stack). Where
/// there is none, the tool says why; with simulated radios (mac80211_hwsim, a stock kernel's
/// module), a scan requested on a radio moved into the test's namespace shows its requester and
/// channels when it starts, its duration when it ends.
#[test]
fn ieee80211scan_refuses_without_wifi_and_traces_simulated_radios() {
    let cfg80211 = module_on_disk("cfg80211");
    if !std::path::Path::new("/sys/module/cfg80211").exists() {
        let why = if cfg80211 {
            "the wireless stack (cfg80211) is a module that is not loaded"
        } else {
            "no wireless stack in this kernel (no cfg80211/mac80211"
        };
        let o = netbpf(&["ieee80211scan"]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains(&format!(
                "ieee80211scan is not supported on this kernel: {why}"
            )),
            "{}",
            stderr(&o)
        );
        let list = netbpf(&["list"]);
        let line = String::from_utf8_lossy(&list.stdout)
            .lines()
            .find(|l| l.starts_with("ieee80211scan "))
            .unwrap()
            .to_string();
        assert!(line.contains("unsupported") && line.contains(why), "{line}");
    }
    let hwsim = module_on_disk("mac80211_hwsim");
    if vm_kernel().is_some() {
        assert!(
            cfg80211 && hwsim,
            "a stock kernel has the wireless stack as modules"
        );
    }
    if hwsim {
        let radio = Hwsim::load();
        // Before 5.11 modules have no BTF: cfg80211's types cannot be read, a clean refusal.
        if !std::path::Path::new("/sys/kernel/btf/cfg80211").exists() {
            let o = netbpf(&["ieee80211scan", "-d", "1"]);
            assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
            assert!(
                stderr(&o).contains(
                    "ieee80211scan is not supported on this kernel: cfg80211 is loaded but has \
                     no BTF"
                ),
                "{}",
                stderr(&o)
            );
            return;
        }
        scan_a_simulated_radio(&radio);
    }
}

/// mac80211_hwsim with one radio, loaded for a test and removed after it.
struct Hwsim {
    phy: String,
}

impl Hwsim {
    fn load() -> Hwsim {
        assert!(
            !std::path::Path::new("/sys/module/mac80211_hwsim").exists(),
            "mac80211_hwsim is loaded already: its radios are not this test's"
        );
        let st = std::process::Command::new("modprobe")
            .args(["mac80211_hwsim", "radios=1"])
            .status()
            .expect("modprobe (kmod)");
        assert!(st.success());
        let phy = std::fs::read_dir("/sys/class/ieee80211")
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|p| {
                std::fs::read_link(format!("/sys/class/ieee80211/{p}/device/driver"))
                    .is_ok_and(|d| d.ends_with("mac80211_hwsim"))
            })
            .expect("a mac80211_hwsim phy");
        Hwsim { phy }
    }
}

impl Drop for Hwsim {
    fn drop(&mut self) {
        let _ = std::process::Command::new("modprobe")
            .args(["-r", "mac80211_hwsim"])
            .status();
    }
}

fn scan_a_simulated_radio(radio: &Hwsim) {
    let ns = Netns::new();
    // iw moves a phy to the namespace of a process.
    let mut holder = ns.command("sleep").arg("600").spawn().unwrap();
    let moved = std::process::Command::new("iw")
        .args(["phy", &radio.phy, "set", "netns", &holder.id().to_string()])
        .output()
        .expect("iw");
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let links = ns.command("ip").args(["-j", "link"]).output().unwrap();
    let links: Value = serde_json::from_slice(&links.stdout).unwrap();
    let wlan = links
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .find(|n| *n != "lo")
        .expect("the radio's interface moved with its phy")
        .to_string();
    ip(&ns, &["link", "set", &wlan, "up"]);

    let tool = Tool::start(&["ieee80211scan", "--json", "--netns", &ns.path()]);
    let elsewhere = Netns::new();
    let other = Tool::start(&["ieee80211scan", "--json", "--netns", &elsewhere.path()]);
    // nl80211 announces the end of the scan (with the frequencies it covered) to listeners in
    // the radio's namespace.
    let mut events = ns
        .command("iw")
        .args(["event"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(events.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        for line in lines.lines().map_while(Result::ok) {
            if line.contains("scan finished") || line.contains("scan aborted") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    thread::sleep(Duration::from_millis(500)); // iw event subscribed
                                               // A scan takes seconds; a radio still busy (its first scan after coming up) says EBUSY.
    let deadline = Instant::now() + Duration::from_secs(60);
    let trigger_pid = loop {
        let child = ns
            .command("iw")
            .args(["dev", &wlan, "scan", "trigger"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "scan trigger: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        thread::sleep(Duration::from_millis(500));
    };
    let finished = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the scan finished (iw event)");
    let _ = events.kill();
    let _ = events.wait();
    let _ = reader.join();
    let rows = tool.stop().json();
    assert!(other.stop().lines.is_empty(), "another namespace's scans");

    // "wlan0 (phy #3): scan finished: 2412 2417 ... , """
    let freqs: Vec<u64> = finished
        .split("scan finished:")
        .nth(1)
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|f| f.parse().ok())
        .collect();
    assert!(!finished.contains("aborted"), "{finished}");
    let started: Vec<&Value> = rows
        .iter()
        .filter(|r| r["event"] == "scan_started" && r["pid"] == trigger_pid)
        .collect();
    assert_eq!(started.len(), 1, "{rows:?}");
    let s = started[0];
    assert_eq!(s["comm"], "iw", "{s}");
    assert_eq!(s["ifname"], wlan.as_str(), "{s}");
    assert_eq!(s["wiphy"], radio.phy.as_str(), "{s}");
    let channels: Vec<u64> = s["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["freq"].as_u64().unwrap())
        .collect();
    assert_eq!(s["n_channels"].as_u64(), Some(channels.len() as u64), "{s}");
    assert_eq!(
        channels, freqs,
        "the channels iw says were scanned: {finished}"
    );
    assert!(channels.contains(&2412), "{s}");
    assert!(s["channels"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| (c["band"] == "2GHZ") == (c["freq"].as_u64().unwrap() < 3000)));
    let done: Vec<&Value> = rows.iter().filter(|r| r["event"] == "scan_done").collect();
    assert!(!done.is_empty(), "{rows:?}");
    let d = done.last().unwrap();
    assert_eq!(d["wiphy"], radio.phy.as_str(), "{d}");
    assert_eq!(d["aborted"], false, "{d}");
    let ms = d["duration_ms"].as_f64().unwrap();
    assert!(ms > 0.0 && ms < 120_000.0, "{d}");
}

#[test]
fn unknown_options_are_refused() {
    for tool in [
        "gethostlatency",
        "ipecn",
        "superping",
        "qdisc",
        "ieee80211scan",
    ] {
        let o = netbpf(&[tool, "--bogus"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(
            stderr(&o).contains("unexpected argument '--bogus'"),
            "{tool}: {}",
            stderr(&o)
        );
    }
    let o = netbpf(&["gethostlatency", "-p", "4999999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no process with pid 4999999"),
        "{}",
        stderr(&o)
    );
}
