//! tcptop, tcpretrans, tcpsynbl, tcpwin, tcpnagle against real loopback traffic, each test in its
//! own network namespace with the tool filtered to it.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{netbpf, with, Netns, Tool};
use serde_json::Value;

fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs a command (ip, tc) inside the namespace; the test needs it to succeed.
fn ns_run(ns: &Netns, program: &str, args: &[&str]) {
    let st = ns
        .command(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program} (iproute2) is needed: {e}"));
    assert!(st.success(), "{program} {args:?} failed");
}

/// A lossy loopback: 1500-byte MTU and a small token bucket, so a burst overflows the queue and
/// TCP has to retransmit (netem is not built into this kernel; tbf is).
fn lossy_loopback(ns: &Netns) {
    ns_run(ns, "ip", &["link", "set", "dev", "lo", "mtu", "1500"]);
    ns_run(
        ns,
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "1600", "limit",
            "3000",
        ],
    );
}

// ---------------------------------------------------------------- tcptop

/// Bytes per (lport, rport) summed over every interval printed.
fn tcptop_totals(rows: &[Value]) -> HashMap<(u64, u64), (u64, u64)> {
    let mut totals = HashMap::new();
    for r in rows {
        let e = totals
            .entry((num(r, "lport"), num(r, "rport")))
            .or_insert((0, 0));
        e.0 += num(r, "rx_bytes");
        e.1 += num(r, "tx_bytes");
    }
    totals
}

#[test]
fn tcptop_counts_every_byte_once_across_intervals() {
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["tcptop", "--json", "--netns", &path, "0.2"]);
    let table = Tool::start(&["tcptop", "-C", "--netns", &path, "0.5"]);
    let run = ns.loadgen(&[
        "streams",
        "--send",
        "100000,300000",
        "--reply",
        "5000,20000",
        "--chunks",
        "6",
        "--pause-ms",
        "100",
        "--peek",
    ]);
    let rows = json.stop().json();
    let table = table.stop();

    let totals = tcptop_totals(&rows);
    let server = num(&run, "server_port");
    let conns = run["conns"].as_array().unwrap();
    assert_eq!(conns.len(), 2);
    assert_eq!(totals.len(), 4, "two connections, both ends: {totals:?}");
    for c in conns {
        let (cport, sent, received) = (num(c, "client_port"), num(c, "sent"), num(c, "received"));
        // Exact: every payload byte once, the MSG_PEEK'd bytes not twice.
        assert_eq!(totals[&(cport, server)], (received, sent), "client {cport}");
        assert_eq!(
            totals[&(server, cport)],
            (sent, received),
            "server side of {cport}"
        );
        let client_rows = rows.iter().filter(|r| r["lport"] == cport).count();
        assert!(
            client_rows >= 2,
            "paced over ~0.6 s, the client's sends span several 0.2 s intervals: {rows:?}"
        );
    }
    for r in &rows {
        assert_eq!(r["pid"], run["pid"]);
        assert_eq!(r["comm"], "loadgen");
        assert_eq!(
            (r["laddr"].as_str(), r["ip"].as_u64()),
            (Some("127.0.0.1"), Some(4))
        );
        assert_eq!(r["time"].as_str().map(str::len), Some(8), "HH:MM:SS");
    }

    // The table: a loadavg line, the bcc header, addr:port endpoints, sorted by total.
    assert!(
        table.lines.iter().any(|l| l.contains(" loadavg: ")),
        "{:?}",
        table.lines
    );
    let header = table
        .lines
        .iter()
        .find(|l| l.starts_with("PID"))
        .expect("header");
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(cols, ["PID", "COMM", "LADDR", "RADDR", "RX_KB", "TX_KB"]);
    let big = num(&conns[1], "client_port");
    assert!(
        table
            .lines
            .iter()
            .any(|l| l.contains(&format!("127.0.0.1:{big} "))
                && l.contains(&format!("127.0.0.1:{server}"))),
        "{:?}",
        table.lines
    );
}

#[test]
fn tcptop_filters_and_options() {
    let ns = Netns::new();
    let path = ns.path();
    let traced = ns.loadgen_waiting(&["streams", "--send", "3000", "--reply", "1000"]);
    let other = ns.loadgen_waiting(&["streams", "--family", "6", "--send", "7000", "--reply", "0"]);
    let by_pid = Tool::start(&[
        "tcptop",
        "--json",
        "--netns",
        &path,
        "-p",
        &traced.pid().to_string(),
        "0.3",
    ]);
    let v6 = Tool::start(&["tcptop", "--json", "--netns", &path, "-6", "0.3"]);
    let top1 = Tool::start(&[
        "tcptop", "--json", "--netns", &path, "-s", "received", "-r", "1", "60",
    ]);
    let nosummary = Tool::start(&["tcptop", "-C", "-S", "--netns", &path, "60"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcptop", "--json", "--netns", &elsewhere.path(), "0.3"]);
    let (a, b) = (traced.go(), other.go());

    let rows = by_pid.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["pid"] == a["pid"]),
        "{rows:?}"
    );
    let totals = tcptop_totals(&rows);
    let cport = num(&a["conns"][0], "client_port");
    assert_eq!(totals[&(cport, num(&a, "server_port"))], (1000, 3000));

    let rows = v6.stop().json();
    assert!(!rows.is_empty(), "v6 traffic was made");
    assert!(
        rows.iter()
            .all(|r| r["ip"] == 6 && r["pid"] == b["pid"] && r["laddr"] == "::1"),
        "{rows:?}"
    );

    // One interval, ended by Ctrl-C: the single row is the one that received the most.
    let rows = top1.stop().json();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (num(&rows[0], "rx_bytes"), rows[0]["pid"].clone()),
        (7000, b["pid"].clone())
    );

    let lines = nosummary.stop().lines;
    assert!(!lines.iter().any(|l| l.contains("loadavg")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("PID")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("[::1]:")),
        "IPv6 endpoints in brackets: {lines:?}"
    );

    assert!(
        other_ns.stop().lines.is_empty(),
        "another namespace's bytes leaked in"
    );
}

// ---------------------------------------------------------------- tcpretrans

#[test]
fn tcpretrans_shows_and_counts_retransmits() {
    let ns = Netns::new();
    lossy_loopback(&ns);
    let path = ns.path();
    let json = Tool::start(&["tcpretrans", "--json", "--netns", &path]);
    let count = Tool::start(&["tcpretrans", "-c", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpretrans", "-s", "--netns", &path]);
    let run = ns.loadgen(&["retrans", "--bytes", "65536"]);
    let rows = json.stop().json();
    let counted = count.stop().json();
    let table = table.stop();

    let (cport, sport) = (num(&run, "client_port"), num(&run, "server_port"));
    let client = with(&rows, "lport", cport);
    assert!(
        !client.is_empty(),
        "a 64 KB burst through a 3000-byte queue must lose: {rows:?}"
    );
    for r in &client {
        assert_eq!(r["rport"], sport);
        assert_eq!(
            (r["laddr"].as_str(), r["raddr"].as_str()),
            (Some("127.0.0.1"), Some("127.0.0.1"))
        );
        assert_eq!(r["state"], "ESTABLISHED");
        assert_eq!(r["type"], "R");
        assert_eq!(
            (r["pid"].clone(), r["comm"].as_str()),
            (run["pid"].clone(), Some("loadgen"))
        );
        assert!(num(r, "segs") >= 1);
    }
    // Exact: the segments of all events are what the kernel counted for the socket.
    let segs: u64 = client.iter().map(|r| num(r, "segs")).sum();
    assert_eq!(segs, num(&run, "total_retrans"), "{client:?}");
    // Sequence numbers (mod 2^32) lie within the 64 KB just sent, on segment boundaries: the
    // burst was cut into 1448-byte segments (1500 MTU less headers and timestamps).
    let first = num(client[0], "seq") as u32;
    for r in &client {
        let offset = (num(r, "seq") as u32).wrapping_sub(first) as i32;
        assert!(
            offset.unsigned_abs() < 65536 && offset % 1448 == 0,
            "{client:?}"
        );
    }

    // -c: the same number, counted in the kernel, per connection.
    let row = counted
        .iter()
        .find(|r| r["lport"] == cport)
        .unwrap_or_else(|| panic!("{counted:?}"));
    assert_eq!(num(row, "retransmits"), client.len() as u64);
    assert_eq!(
        (row["rport"].clone(), row["raddr"].as_str()),
        (sport.into(), Some("127.0.0.1"))
    );

    // -s: the bcc columns plus SEQ.
    let header: Vec<&str> = table.lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TIME",
            "PID",
            "IP",
            "LADDR:LPORT",
            "T>",
            "RADDR:RPORT",
            "STATE",
            "SEQ"
        ]
    );
    let line = table
        .lines
        .iter()
        .find(|l| l.contains(&format!("127.0.0.1:{cport} ")))
        .expect("a line for the client");
    assert!(
        line.contains(&format!(" R> 127.0.0.1:{sport} ")) && line.contains(" ESTABLISHED "),
        "{line}"
    );
}

#[test]
fn tcpretrans_filters() {
    let ns = Netns::new();
    lossy_loopback(&ns);
    let path = ns.path();
    let v4 = ns.loadgen_waiting(&["retrans", "--bytes", "40000"]);
    let v6 = ns.loadgen_waiting(&["retrans", "--family", "6", "--bytes", "40000"]);
    let only6 = Tool::start(&["tcpretrans", "--json", "--netns", &path, "-6"]);
    let by_pid = Tool::start(&[
        "tcpretrans",
        "--json",
        "--netns",
        &path,
        "-p",
        &v4.pid().to_string(),
    ]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpretrans", "--json", "--netns", &elsewhere.path()]);
    let (a, b) = (v4.go(), v6.go());

    let rows = only6.stop().json();
    assert!(!rows.is_empty(), "the v6 burst retransmits too");
    assert!(
        rows.iter()
            .all(|r| r["ip"] == 6 && r["laddr"] == "::1" && r["pid"] == b["pid"]),
        "{rows:?}"
    );
    let rows = by_pid.stop().json();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["pid"] == a["pid"] && r["ip"] == 4),
        "{rows:?}"
    );
    assert!(other_ns.stop().lines.is_empty());
}

// ---------------------------------------------------------------- tcpsynbl

#[test]
fn tcpsynbl_histogram_and_drops() {
    let ns = Netns::new();
    let path = ns.path();
    let json = Tool::start(&["tcpsynbl", "--json", "--netns", &path]);
    let table = Tool::start(&["tcpsynbl", "--netns", &path]);
    let run = ns.loadgen(&[
        "synbl",
        "--backlog",
        "2",
        "--clients",
        "4",
        "--hold-ms",
        "600",
    ]);
    let rows = json.stop().json();
    let table = table.stop();

    // Three connections fill a backlog-2 queue (the kernel admits limit + 1): the queue was 0,
    // 1 and 2 long as each completed its handshake.
    let hists: Vec<&Value> = rows.iter().filter(|r| r["hist"] == "backlog").collect();
    assert_eq!(hists.len(), 1, "{rows:?}");
    assert_eq!(hists[0]["max_backlog"], 2);
    assert_eq!(
        hists[0]["buckets"],
        serde_json::json!([
            {"low":0,"high":1,"count":1},
            {"low":1,"high":2,"count":1},
            {"low":2,"high":4,"count":1}
        ])
    );
    // The delayed handshake arrived at the full queue and was dropped.
    let drops: Vec<&Value> = rows.iter().filter(|r| r["event"] == "drop").collect();
    assert!(!drops.is_empty(), "{rows:?}");
    for d in &drops {
        assert_eq!(d["lport"], run["port"]);
        assert_eq!(
            (
                d["laddr"].as_str(),
                num(d, "backlog"),
                num(d, "max_backlog")
            ),
            (Some("127.0.0.1"), 3, 2)
        );
    }
    // The kernel's own count agrees: every overflow was a dropped handshake here.
    let overflows = rows
        .iter()
        .find(|r| r.get("listen_overflows").is_some())
        .expect("netstat");
    assert_eq!(num(overflows, "listen_overflows"), drops.len() as u64);

    let lines = &table.lines;
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(" dropping a SYN."))
            .count(),
        drops.len(),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "@backlog[2]:"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[2, 4)") && l.contains(" 1 |")),
        "{lines:?}"
    );
}

#[test]
fn tcpsynbl_intervals_and_family_filter() {
    let ns = Netns::new();
    let path = ns.path();
    let only6 = Tool::start(&["tcpsynbl", "--json", "--netns", &path, "-6"]);
    let every = Tool::start(&["tcpsynbl", "--json", "-T", "--netns", &path, "0.3"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpsynbl", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&[
        "synbl",
        "--backlog",
        "2",
        "--clients",
        "4",
        "--hold-ms",
        "300",
    ]);
    ns.loadgen(&[
        "synbl",
        "--family",
        "6",
        "--backlog",
        "3",
        "--clients",
        "5",
        "--hold-ms",
        "300",
    ]);
    let rows = only6.stop().json();
    let hists: Vec<&Value> = rows.iter().filter(|r| r["hist"] == "backlog").collect();
    assert_eq!(hists.len(), 1, "{rows:?}");
    assert_eq!(hists[0]["max_backlog"], 3);
    let total: u64 = hists[0]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| num(b, "count"))
        .sum();
    assert_eq!(total, 4, "limit 3 admits 4: {rows:?}");
    assert!(rows
        .iter()
        .filter(|r| r["event"] == "drop")
        .all(|r| r["ip"] == 6 && r["laddr"] == "::1"));

    // Interval mode: each histogram holds its own interval only; together they hold all 7.
    let rows = every.stop().json();
    let hists: Vec<&Value> = rows.iter().filter(|r| r["hist"] == "backlog").collect();
    assert!(hists.len() >= 2, "{rows:?}");
    let total: u64 = hists
        .iter()
        .flat_map(|h| h["buckets"].as_array().unwrap())
        .map(|b| num(b, "count"))
        .sum();
    assert_eq!(total, 7);

    let rows = other_ns.stop().json();
    assert!(
        rows.iter()
            .all(|r| r.get("hist").is_none() && r.get("event").is_none()),
        "another namespace's listeners leaked in: {rows:?}"
    );
    assert_eq!(
        rows.iter().find_map(|r| r["listen_overflows"].as_u64()),
        Some(0)
    );
}

// ---------------------------------------------------------------- tcpwin

#[test]
fn tcpwin_rows_and_plot() {
    let ns = Netns::new();
    let path = ns.path();
    let dir = std::env::temp_dir().join(format!("netbpf-tcpwin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("cwnd.svg");
    let json = Tool::start(&["tcpwin", "--json", "--netns", &path]);
    let csv = Tool::start(&["tcpwin", "--netns", &path, "--plot", svg.to_str().unwrap()]);
    let run = ns.loadgen(&[
        "exchange",
        "--client-send",
        "2000000",
        "--server-send",
        "1000",
    ]);
    let rows = json.stop().json();
    let csv = csv.stop();

    let cport = num(&run, "client_port");
    let client = with(&rows, "lport", cport);
    assert!(client.len() >= 10, "2 MB draws many ACKs: {}", client.len());
    let sock = client[0]["sock"].as_str().unwrap().to_string();
    assert!(sock.starts_with("0xffff"), "{sock}");
    let mut last = 0;
    for r in &client {
        assert_eq!(r["event"], "rcv");
        assert_eq!(r["sock"], sock.as_str(), "one socket, one address");
        assert!(num(r, "snd_cwnd") > 0 && num(r, "snd_ssthresh") > 0);
        assert!(num(r, "sk_sndbuf") > 0);
        assert_eq!(r["rport"], run["server_port"]);
        let t = num(r, "time_us");
        assert!(t >= last, "time goes forward");
        last = t;
    }

    assert_eq!(
        csv.lines[0],
        "event,sock,time_us,snd_cwnd,snd_ssthresh,sk_sndbuf,sk_wmem_queued"
    );
    let mine: Vec<&String> = csv.lines.iter().filter(|l| l.contains(&sock)).collect();
    assert!(!mine.is_empty());
    for l in mine {
        let f: Vec<&str> = l.split(',').collect();
        assert_eq!((f.len(), f[0]), (7, "rcv"), "{l}");
        assert!(f[3].parse::<u32>().unwrap() > 0, "{l}");
    }
    assert!(csv.stderr.contains("plotted"), "{}", csv.stderr);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
        "not SVG"
    );
    assert!(text.contains("<polyline"), "no line drawn");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{cport} &gt; 127.0.0.1:{}",
            run["server_port"]
        )),
        "no legend"
    );
    // Well formed: every element that opens closes.
    assert_eq!(
        text.matches("<text").count(),
        text.matches("</text>").count()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tcpwin_port_filter() {
    let ns = Netns::new();
    let path = ns.path();
    let by_lport = Tool::start(&["tcpwin", "--json", "--netns", &path, "-L", "7701"]);
    let by_rport = Tool::start(&["tcpwin", "--json", "--netns", &path, "-D", "7702"]);
    let v6 = Tool::start(&["tcpwin", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpwin", "--json", "--netns", &elsewhere.path()]);
    ns.loadgen(&[
        "exchange",
        "--port",
        "7701",
        "--client-send",
        "300000",
        "--server-send",
        "300000",
    ]);
    ns.loadgen(&[
        "exchange",
        "--family",
        "6",
        "--port",
        "7702",
        "--client-send",
        "300000",
    ]);
    let rows = by_lport.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["lport"] == 7701),
        "{rows:?}"
    );
    let rows = by_rport.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["rport"] == 7702),
        "{rows:?}"
    );
    let rows = v6.stop().json();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r["ip"] == 6),
        "{rows:?}"
    );
    assert!(other_ns.stop().lines.is_empty());
}

// ---------------------------------------------------------------- tcpnagle

/// (map, flags) -> count from a tcpnagle --json run.
fn nagle_counts(rows: &[Value]) -> HashMap<(String, String), u64> {
    rows.iter()
        .map(|r| {
            (
                (
                    r["map"].as_str().unwrap().to_string(),
                    r["flags"].as_str().unwrap().to_string(),
                ),
                num(r, "count"),
            )
        })
        .collect()
}

#[test]
fn tcpnagle_flags_of_small_writes() {
    let ns = Netns::new();
    let path = ns.path();
    let modes = ["default", "nodelay", "cork", "more"];
    let runs: Vec<_> = modes
        .iter()
        .map(|m| ns.loadgen_waiting(&["nagle", "--mode", m, "--writes", "10", "--size", "100"]))
        .collect();
    let v6_run = ns.loadgen_waiting(&[
        "nagle", "--family", "6", "--mode", "nodelay", "--writes", "7", "--size", "50",
    ]);
    let v6 = Tool::start(&["tcpnagle", "--json", "--netns", &path, "-6"]);
    let elsewhere = Netns::new();
    let other_ns = Tool::start(&["tcpnagle", "--json", "--netns", &elsewhere.path()]);
    let tools: Vec<Tool> = runs
        .iter()
        .map(|r| {
            Tool::start(&[
                "tcpnagle",
                "--json",
                "--netns",
                &path,
                "-p",
                &r.pid().to_string(),
            ])
        })
        .collect();
    for r in runs {
        r.go();
    }
    v6_run.go();
    let v6 = nagle_counts(&v6.stop().json());
    assert!(other_ns.stop().lines.is_empty());
    let results: Vec<_> = tools.into_iter().map(Tool::stop).collect();
    // Partial mode (no fexit, no kretprobe), as on the kernel this was written on, says so.
    let partial = results[0].stderr.contains(
        "tcpnagle: partial mode: the blocked-time histogram needs fexit or kretprobe on \
         tcp_write_xmit, unavailable here",
    );
    let c: Vec<_> = results.iter().map(|f| nagle_counts(&f.json())).collect();
    let get = |i: usize, map: &str, flags: &str| {
        c[i].get(&(map.into(), flags.into())).copied().unwrap_or(0)
    };
    if partial {
        assert!(results
            .iter()
            .all(|f| f.json().iter().all(|r| r["mode"] == "partial")));
        // Each send counted once, by the flags its push used.
        assert_eq!(
            c[0].iter()
                .filter(|(k, _)| k.0 == "nagle")
                .map(|(_, n)| n)
                .sum::<u64>(),
            10,
            "{:?}",
            c[0]
        );
        assert_eq!(get(0, "nagle", "ON"), 10, "Nagle on: {:?}", c[0]);
        assert_eq!(get(1, "nagle", "OFF"), 10, "TCP_NODELAY: {:?}", c[1]);
        assert_eq!(
            (get(2, "nagle", "CORK"), get(2, "unsent", "CORK")),
            (10, 10),
            "TCP_CORK holds all: {:?}",
            c[2]
        );
        assert_eq!(
            (
                get(3, "nagle", "CORK"),
                get(3, "nagle", "ON"),
                get(3, "unsent", "CORK")
            ),
            (9, 1, 9),
            "MSG_MORE: {:?}",
            c[3]
        );
        // -6: only the IPv6 client's seven TCP_NODELAY sends.
        let nagle6: Vec<_> = v6.iter().filter(|(k, _)| k.0 == "nagle").collect();
        assert_eq!(
            nagle6,
            [(&("nagle".to_string(), "OFF".to_string()), &7)],
            "{v6:?}"
        );
    } else {
        assert!(
            get(1, "nagle", "OFF") + get(1, "nagle", "OFF|PUSH") > 0,
            "{:?}",
            c[1]
        );
        assert!(get(2, "nagle", "CORK") > 0, "{:?}", c[2]);
    }
}

// ---------------------------------------------------------------- options

#[test]
fn bad_options_are_refused_clearly() {
    let cases: &[(&[&str], &str)] = &[
        (&["tcptop", "-s", "bytes"], "invalid value 'bytes'"),
        (
            &["tcptop", "-r", "0"],
            "'0' is not a positive number of rows",
        ),
        (&["tcptop", "0"], "'0' is not a positive number of seconds"),
        (&["tcptop", "1", "0"], "0 is not in 1.."),
        (&["tcpsynbl", "-x"], "unexpected argument '-x'"),
        (
            &["tcpsynbl", "soon"],
            "'soon' is not a positive number of seconds",
        ),
        (
            &["tcpwin", "--plot", "/tmp/cwnd.png"],
            "only SVG is supported",
        ),
        (
            &["tcpwin", "--plot", "/nonexistent/dir/x.svg"],
            "cannot create it",
        ),
        (&["tcpwin", "-L", "http"], "invalid port 'http'"),
        (&["tcpretrans", "-4", "-6"], "cannot be used with"),
        (&["tcpnagle", "-p", "abc"], "'abc' is not a process id"),
        (&["tcpnagle", "5"], "unexpected argument '5'"),
    ];
    for (args, want) in cases {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn tcpretrans_loss_probes_need_function_hooks() {
    let o = netbpf(&["tcpretrans", "-l", "-d", "0.3"]);
    if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
        // A kernel with kprobes runs -l.
        assert!(o.status.success(), "{}", stderr(&o));
        return;
    }
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "not available on this kernel: needs kprobe or fentry on tcp_send_loss_probe"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn list_shows_the_new_tools_and_their_plans() {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for tool in ["tcptop", "tcpretrans", "tcpsynbl", "tcpwin", "tcpnagle"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{tool} missing: {out}"));
        assert!(line.contains(" ok "), "{line}");
    }
    // Function-hook plans come first and say why they are skipped where they are.
    for plan in ["fentry", "kprobe", "partial"] {
        assert!(
            out.lines().any(|l| l.trim_start().starts_with(plan)),
            "{plan}: {out}"
        );
    }
}
