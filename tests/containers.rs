//! --cgroup, --container and --pod against real containers: podman + runc running a busybox
//! image built here from the host's busybox-static (no image is pulled), each container in a
//! network namespace this test made, serving and fetching HTTP over its own loopback.
//! Two containers make traffic at once; each filter must select exactly one's events.

mod common;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

use common::exporter::free_port;
use common::prometheus::Prometheus;
use common::{lossy_loopback, Netns, Tool};
use serde_json::Value;

/// Bump when the image's content changes (the build is cached by this tag).
const IMAGE: &str = "localhost/netbpf-test-busybox:4";

/// podman with the test's containers.conf: the sandbox refuses to raise rlimits, so every
/// container gets limits at or below the current ones.
fn podman_cmd() -> Command {
    static CONF: OnceLock<std::path::PathBuf> = OnceLock::new();
    let conf = CONF.get_or_init(|| {
        let p = std::env::temp_dir().join("netbpf-test-containers.conf");
        std::fs::write(
            &p,
            "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
        )
        .unwrap();
        p
    });
    let mut c = Command::new("podman");
    c.env("CONTAINERS_CONF", conf);
    c
}

fn podman(args: &[&str]) -> String {
    let out = podman_cmd()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("podman is needed (scripts/install-deps.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The test image: busybox (sh, httpd, wget) and two files to serve; built once per host.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let exists = podman_cmd()
            .args(["image", "exists", IMAGE])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if exists {
            return;
        }
        let dir = std::env::temp_dir().join(format!("netbpf-image-{}", std::process::id()));
        let root = dir.join("root");
        // What a failed earlier attempt in this process left.
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .expect("/bin/busybox (busybox-static) is needed");
        for applet in ["sh", "sleep", "httpd", "wget"] {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
        std::fs::write(root.join("www/small"), b"hello\n").unwrap();
        std::fs::write(root.join("www/big"), vec![b'x'; 64 * 1024]).unwrap();
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&root)
            .args(["-c", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        let mut import = podman_cmd()
            .args(["import", "-", IMAGE])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        // A write error means podman exited early: its own words say why.
        let written = import.stdin.take().unwrap().write_all(&tar.stdout);
        let out = import.wait_with_output().unwrap();
        assert!(
            written.is_ok() && out.status.success(),
            "podman import {IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_dir_all(&dir).ok();
    });
    IMAGE
}

/// Where cgroup v2 is mounted (/sys/fs/cgroup/unified on hybrid hosts): core's own finder.
fn cgroup2_mount() -> String {
    netbpf::core::cgroup::v2_mount()
        .unwrap()
        .display()
        .to_string()
}

/// A running container serving HTTP on `port` and fetching `file` from itself in a loop, in a
/// network namespace of its own. Removed when dropped.
struct Container {
    name: String,
    id: String,
    port: u16,
    /// Its cgroup v2 path (relative to the mount) and id.
    cgroup: String,
    cgroup_id: u64,
    _netns: Option<Netns>,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// What a [`Container::fetching`] container prints once its fetches are done.
const FETCHED: &str = "netbpf-test-fetched";

impl Container {
    fn start(port: u16, file: &str, lossy: bool, extra: &[&str]) -> Container {
        let netns = Netns::new();
        if lossy {
            lossy_loopback(&netns);
        }
        let network = format!("ns:{}", netns.path());
        Container::run(
            port,
            file,
            Some(netns),
            &[&["--network", &network], extra].concat(),
        )
    }

    fn run(port: u16, file: &str, netns: Option<Netns>, extra: &[&str]) -> Container {
        let script = format!(
            "httpd -p {port} -h /www && while :; do wget -q -O /dev/null \
             http://127.0.0.1:{port}/{file}; sleep 0.05; done"
        );
        Container::run_script(port, &script, netns, extra)
    }

    /// A container serving on `port` that fetches /small from itself exactly `n` times, then
    /// idles.
    fn fetching(port: u16, n: u32) -> Container {
        let netns = Netns::new();
        let network = format!("ns:{}", netns.path());
        let script = format!(
            "httpd -p {port} -h /www && i=0; while [ $i -lt {n} ]; do wget -q -O /dev/null \
             http://127.0.0.1:{port}/small; i=$((i+1)); done; echo {FETCHED}; exec sleep 2147483647"
        );
        Container::run_script(port, &script, Some(netns), &["--network", &network])
    }

    /// Waits until a [`Container::fetching`] container has made all its fetches (a slow VM
    /// takes minutes to start the processes; a bound, not a timed assertion).
    fn wait_fetched(&self) {
        for _ in 0..600 {
            if podman(&["logs", &self.id]).contains(FETCHED) {
                return;
            }
            thread::sleep(Duration::from_millis(500));
        }
        panic!("{} did not finish its fetches in 300 s", self.name);
    }

    fn run_script(port: u16, script: &str, netns: Option<Netns>, extra: &[&str]) -> Container {
        let name = format!(
            "netbpf-t{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut args = vec![
            "run",
            "-d",
            "--runtime",
            "runc",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            "--stop-signal",
            "KILL",
            "--name",
            &name,
        ];
        args.extend_from_slice(extra);
        let image = image();
        args.extend_from_slice(&[image, "sh", "-c", script]);
        let id = podman(&args);
        let pid = podman(&["inspect", "-f", "{{.State.Pid}}", &id]);
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let cgroup = cg
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap()
            .to_string();
        let dir = format!("{}{cgroup}", cgroup2_mount());
        let cgroup_id = std::fs::metadata(&dir).unwrap().ino();
        Container {
            name,
            id,
            port,
            cgroup,
            cgroup_id,
            _netns: netns,
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        podman_cmd()
            .args(["rm", "-f", "-t", "0", &self.id])
            .output()
            .ok();
    }
}

/// Runs each tool for `secs` at once and returns their JSON rows, in order.
fn run_all(runs: &[Vec<String>], secs: u64) -> Vec<Vec<Value>> {
    let tools: Vec<Tool> = runs
        .iter()
        .map(|a| Tool::start(&a.iter().map(String::as_str).collect::<Vec<_>>()))
        .collect();
    thread::sleep(Duration::from_secs(secs));
    tools.into_iter().map(|t| t.stop().json()).collect()
}

/// `root` and every directory below it.
fn walk_dirs(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_dirs(&e.path()));
            }
        }
    }
    out
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// Every row is `want`'s (one of its ports is want's, none is another container's), there is at
/// least one, and rows with a cgroup field carry want's cgroup id.
fn only(rows: &[Value], what: &str, want: &Container, others: &[&Container], keys: &[&str]) {
    assert!(!rows.is_empty(), "{what}: no events of {}", want.name);
    let foreign: HashSet<u64> = others.iter().map(|c| c.port as u64).collect();
    for r in rows {
        let ports: Vec<u64> = keys.iter().map(|k| u(r, k)).collect();
        assert!(
            ports.contains(&(want.port as u64)) && !ports.iter().any(|p| foreign.contains(p)),
            "{what}: an event not of {} (port {}): {r}",
            want.name,
            want.port
        );
        if let Some(cg) = r.get("cgroup_id") {
            assert_eq!(
                cg.as_u64(),
                Some(want.cgroup_id),
                "{what}: cgroup of {r} is not {} ({})",
                want.cgroup,
                want.name
            );
        }
    }
}

#[test]
fn each_filter_selects_one_container() {
    let a = Container::start(8001, "small", false, &[]);
    let b = Container::start(8002, "small", false, &[]);
    let prefix = &b.id[..10];
    let rows = run_all(
        &[
            args(&["tcpconnect", "--json", "--container", &a.name]),
            args(&["tcpaccept", "--json", "--container", prefix]),
            args(&["tcplife", "--json", "--cgroup", &a.cgroup]),
            args(&["tcplife", "--json", "--cgroup", &b.cgroup_id.to_string()]),
            args(&["socketio", "--json", "--container", &a.name]),
        ],
        2,
    );
    only(
        &rows[0],
        "tcpconnect --container NAME",
        &a,
        &[&b],
        &["dport"],
    );
    only(
        &rows[1],
        "tcpaccept --container PREFIX",
        &b,
        &[&a],
        &["lport"],
    );
    only(
        &rows[2],
        "tcplife --cgroup PATH",
        &a,
        &[&b],
        &["lport", "rport"],
    );
    only(
        &rows[3],
        "tcplife --cgroup ID",
        &b,
        &[&a],
        &["lport", "rport"],
    );
    for r in &rows[2] {
        assert!(u(r, "tx_bytes") + u(r, "rx_bytes") > 0, "no bytes: {r}");
    }
    // socketio counts per remote port: wget's reads and writes to the server's port.
    let to_servers: Vec<Value> = rows[4]
        .iter()
        .filter(|r| [8001, 8002].contains(&u(r, "rport")))
        .cloned()
        .collect();
    only(
        &to_servers,
        "socketio --container NAME",
        &a,
        &[&b],
        &["rport"],
    );
}

/// Retransmits and drops happen in softirq, on top of whatever task runs: they are attributed
/// through the socket's cgroup.
#[test]
fn softirq_events_follow_the_socket() {
    if common::refused_here("tcpdrop") || !common::drop_reasons_here("tcpdrop") {
        return;
    }
    let a = Container::start(8021, "big", true, &[]);
    let b = Container::start(8022, "big", true, &[]);
    let rows = run_all(
        &[
            args(&["tcpretrans", "--json", "--container", &a.name]),
            args(&["tcpretrans", "--json", "--container", &b.id[..12]]),
            args(&["tcpdrop", "--json", "--container", &a.name]),
        ],
        3,
    );
    only(&rows[0], "tcpretrans (a)", &a, &[&b], &["lport", "rport"]);
    only(&rows[1], "tcpretrans (b)", &b, &[&a], &["lport", "rport"]);
    only(&rows[2], "tcpdrop", &a, &[&b], &["sport", "dport"]);
}

#[test]
fn pod_selects_its_containers_through_cri_labels() {
    // Laid out as kubelet's cgroupfs driver lays out a pod (kubepods/<class>/pod<UID>/<ctr>),
    // each container's cgroup made by runc below the pod's. Not a podman pod: with podman 4.3's
    // cgroupfs driver on a cgroup-v2-only system (the VMs), a pod cgroup gets a device program
    // that denies every device, so its infra container cannot open /dev/null.
    let top = format!("/kubepods-netbpf{}", std::process::id());
    let pod_cgroup = format!("{top}/besteffort/pod6a1e0c2b-{}", std::process::id());
    struct CgroupGone(String);
    impl Drop for CgroupGone {
        fn drop(&mut self) {
            // runc leaves the parents it made, in every hierarchy (v1 ones too on hybrid hosts).
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
            for mount in mounts.lines().filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() > 2 && f[2].starts_with("cgroup")).then(|| f[1].to_string())
            }) {
                let mut dirs = walk_dirs(std::path::Path::new(&format!("{mount}{}", self.0)));
                dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
                for d in dirs {
                    std::fs::remove_dir(d).ok();
                }
            }
        }
    }
    let _gone = CgroupGone(top.clone());
    let labels = [
        "--cgroup-parent",
        &pod_cgroup,
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=cart",
    ];
    let p1 = Container::start(8031, "small", false, &labels);
    let p2 = Container::start(8032, "small", false, &labels);
    assert!(
        p1.cgroup.starts_with(&format!("{pod_cgroup}/")),
        "{}",
        p1.cgroup
    );
    let other = Container::start(
        8033,
        "small",
        false,
        &[
            "--label",
            "io.kubernetes.pod.namespace=shop",
            "--label",
            "io.kubernetes.pod.name=db",
        ],
    );
    let rows = run_all(&[args(&["tcpconnect", "--json", "--pod", "shop/cart"])], 2);
    let ports: HashSet<u64> = rows[0].iter().map(|r| u(r, "dport")).collect();
    assert_eq!(
        ports,
        HashSet::from([8031, 8032]),
        "--pod shop/cart: {:?}",
        rows[0]
    );
    for r in &rows[0] {
        let port = u(r, "dport");
        let want = if port == 8031 { &p1 } else { &p2 };
        assert_eq!(
            r.get("cgroup_id").and_then(Value::as_u64),
            Some(want.cgroup_id),
            "{r}"
        );
    }
    let out = common::netbpf(&["tcpconnect", "--pod", "shop/crat", "-d", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no running pod 'shop/crat'") && err.contains("close matches: shop/cart"),
        "{err}"
    );
    drop(other);
}

#[test]
fn unknown_containers_are_errors_listing_close_matches() {
    let a = Container::start(8041, "small", false, &[]);
    let typo = format!("{}x", a.name);
    let out = common::netbpf(&["tcpconnect", "--container", &typo, "-d", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("no running container '{typo}'"))
            && err.contains(&format!(
                "close matches: {} (podman {})",
                a.name,
                &a.id[..12]
            )),
        "{err}"
    );
    let out = common::netbpf(&["tcplife", "--cgroup", "/no/such/cgroup", "-d", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cgroup: no cgroup /no/such/cgroup"));
}

/// The container of a row by its port: `a` or `b` when one of `keys` is its port.
fn owner_by_port<'c>(r: &Value, keys: &[&str], all: &[&'c Container]) -> Option<&'c Container> {
    all.iter()
        .copied()
        .find(|c| keys.iter().any(|k| r[*k].as_u64() == Some(c.port as u64)))
}

/// The JSON names of every row of a container's port are that container's; at least one row
/// each.
fn named(rows: &[Value], what: &str, keys: &[&str], all: &[&Container]) {
    for c in all {
        let mine: Vec<&Value> = rows
            .iter()
            .filter(|r| owner_by_port(r, keys, all).is_some_and(|o| o.id == c.id))
            .collect();
        assert!(!mine.is_empty(), "{what}: no events of {}", c.name);
        for r in mine {
            assert_eq!(r["cgroup_id"].as_u64(), Some(c.cgroup_id), "{what}: {r}");
            assert_eq!(
                r["container"].as_str(),
                Some(c.name.as_str()),
                "{what}: {r}"
            );
            assert_eq!(
                r["container_id"].as_str(),
                Some(c.id.as_str()),
                "{what}: {r}"
            );
            assert_eq!(
                r["container_runtime"].as_str(),
                Some("podman"),
                "{what}: {r}"
            );
            assert!(r.get("cgroup_path").is_none(), "{what}: {r}");
        }
    }
}

/// The cells of a table's rows under its header's columns (no cell holds a space here).
fn table_rows(lines: &[String]) -> Vec<HashMap<String, String>> {
    let Some(at) = lines.iter().position(|l| l.contains("CONTAINER")) else {
        panic!("no CONTAINER column: {lines:?}");
    };
    let header: Vec<&str> = lines[at].split_whitespace().collect();
    lines[at + 1..]
        .iter()
        .map(|l| {
            header
                .iter()
                .map(|h| h.to_string())
                .zip(l.split_whitespace().map(str::to_string))
                .collect()
        })
        .collect()
}

/// --containers names the container of connects, accepts, sessions and retransmits (those in
/// softirq through the socket), in tables and JSON, two containers at once; tcptop's and
/// socketio's counts too; a host process is "host".
#[test]
fn names_follow_each_container() {
    let a = Container::start(8051, "big", true, &[]);
    let b = Container::start(8052, "big", true, &[]);
    let all = [&a, &b];
    let host = Netns::new();
    let tools: Vec<Tool> = [
        args(&["tcpconnect", "--json"]),
        args(&["tcpaccept", "--json"]),
        args(&["tcplife", "--json"]),
        args(&["tcpretrans", "--json"]),
        args(&["tcptop", "--json"]),
        args(&["socketio", "--json"]),
        args(&["tcpconnect", "--containers"]),
    ]
    .iter()
    .map(|a| Tool::start(&a.iter().map(String::as_str).collect::<Vec<_>>()))
    .collect();
    host.loadgen(&["connect", "--family", "4", "--port", "7299", "--count", "2"]);
    thread::sleep(Duration::from_secs(3));
    let mut done: Vec<_> = tools.into_iter().map(|t| t.stop()).collect();
    let table = done.pop().unwrap();
    let rows: Vec<Vec<Value>> = done.iter().map(|f| f.json()).collect();
    let (connects, accepts, sessions, retransmits) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    // Aggregating tools keep the socket's cgroup in their keys.
    named(&rows[4], "tcptop", &["lport", "rport"], &all);
    let to_servers: Vec<Value> = rows[5]
        .iter()
        .filter(|r| owner_by_port(r, &["rport"], &all).is_some())
        .cloned()
        .collect();
    named(&to_servers, "socketio", &["rport"], &all);
    named(connects, "tcpconnect", &["dport"], &all);
    named(accepts, "tcpaccept", &["lport"], &all);
    named(sessions, "tcplife", &["lport", "rport"], &all);
    for r in sessions
        .iter()
        .filter(|r| owner_by_port(r, &["lport"], &all).is_some())
    {
        assert!(u(r, "tx_bytes") > 0, "no bytes served: {r}");
    }
    // Retransmits fire from timers and ACKs in softirq: only the socket knows the container.
    named(retransmits, "tcpretrans", &["lport", "rport"], &all);
    let refused: Vec<&Value> = connects.iter().filter(|r| u(r, "dport") == 7299).collect();
    assert!(!refused.is_empty(), "no host connects: {connects:?}");
    for r in refused {
        assert!(
            r.get("container").is_none(),
            "a host connect has a container: {r}"
        );
        assert!(r["cgroup_path"].is_string(), "no cgroup path: {r}");
    }

    let lines = table.lines.clone();
    let cells = table_rows(&lines);
    for c in all {
        let mine: Vec<_> = cells
            .iter()
            .filter(|r| r.get("DPORT") == Some(&c.port.to_string()))
            .collect();
        assert!(!mine.is_empty(), "no table rows of {}: {lines:?}", c.name);
        for r in mine {
            assert_eq!(r.get("CONTAINER"), Some(&c.name), "{r:?}");
        }
    }
    let host_rows: Vec<_> = cells
        .iter()
        .filter(|r| r.get("DPORT").map(String::as_str) == Some("7299"))
        .collect();
    assert!(!host_rows.is_empty(), "no host rows: {lines:?}");
    for r in host_rows {
        assert_eq!(
            r.get("CONTAINER").map(String::as_str),
            Some("host"),
            "{r:?}"
        );
    }
}

/// One scrape of an exporter on 127.0.0.1:`port`.
fn scrape(port: u16) -> prometheus_parse::Scrape {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of `metric`'s series whose labels include `labels`, summed.
fn sum_of(s: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// `netbpf exporter --labels container`: each container's connection counts are exactly its
/// traffic, summed in the kernel per cgroup.
#[test]
fn exporter_labels_count_each_container() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let exporter = Tool::start(&[
        "exporter",
        "--tools",
        "tcplife",
        "--labels",
        "container,pod,namespace",
        "--listen",
        &listen,
    ]);
    let (n_a, n_b) = (7u32, 12u32);
    let a = Container::fetching(8061, n_a);
    let b = Container::fetching(8062, n_b);
    let closed = "netbpf_tcp_connections_closed_total";
    let closes = |s: &prometheus_parse::Scrape, c: &Container, direction: &str| {
        sum_of(
            s,
            closed,
            &[("container", &c.name), ("direction", direction)],
        )
    };
    // Each fetch's client closes first (active); the server's socket closes after (passive).
    let all_closed = |s: &prometheus_parse::Scrape| {
        [(&a, n_a), (&b, n_b)].iter().all(|(c, n)| {
            closes(s, c, "active") >= *n as f64 && closes(s, c, "passive") >= *n as f64
        })
    };
    // Wait (not a timed assertion) until both fetched everything and the kernel saw the last
    // closes, then compare exactly.
    a.wait_fetched();
    b.wait_fetched();
    let mut s = scrape(port);
    for _ in 0..300 {
        if all_closed(&s) {
            break;
        }
        thread::sleep(Duration::from_millis(100));
        s = scrape(port);
    }
    for (c, n) in [(&a, n_a), (&b, n_b)] {
        assert_eq!(
            closes(&s, c, "active"),
            n as f64,
            "{} active closes",
            c.name
        );
        assert_eq!(
            closes(&s, c, "passive"),
            n as f64,
            "{} passive closes",
            c.name
        );
        let series: Vec<_> = s
            .samples
            .iter()
            .filter(|x| x.metric == closed && x.labels.get("container") == Some(c.name.as_str()))
            .collect();
        for x in series {
            assert_eq!(x.labels.get("pod"), Some(""), "{x:?}");
        }
    }
    // A real Prometheus scraping the same exporter: the labels it stores select the same sums.
    let prom = Prometheus::scraping(port);
    for (c, n) in [(&a, n_a), (&b, n_b)] {
        for direction in ["active", "passive"] {
            prom.wait(
                &format!(
                    "sum({closed}{{container=\"{}\",direction=\"{direction}\"}})",
                    c.name
                ),
                n as f64,
            );
        }
    }
    drop(prom);
    drop(exporter.stop());
}

#[test]
fn bad_exporter_labels_are_errors() {
    for (args, want) in [
        (
            &["--labels", "pdo"][..],
            "--labels: no label 'pdo' (labels: container, pod, namespace)",
        ),
        (
            &["--labels", "pod,pod"][..],
            "--labels: 'pod' is listed twice",
        ),
        (&["--label-cap", "5"][..], "--label-cap needs --labels"),
    ] {
        let out = common::netbpf(&[&["exporter", "-d", "1"][..], args].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
