//! Reliability under abuse: an exporter under fd exhaustion, slowloris, garbage, oversized and
//! concurrent requests; every tool on a full or closed stdout; inputs that would hang (FIFOs,
//! devices) or panic (huge numbers); a SIGINT while loading. Real processes and real loopback
//! sockets; no timed assertions, only generous "did not hang" bounds.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::exporter::{free_port, wait_bounded, Exporter};
use common::{netbpf, netbpf_bin, Netns};

/// Bound for "it did not hang" (loading on a busy 2-core host takes seconds).
const HANG: Duration = Duration::from_secs(120);

/// Runs `cmd` to its end (bounded by [`HANG`]); returns (status, stdout, stderr).
fn run_bounded(mut cmd: Command, what: &str) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_bounded(&mut child, HANG, what);
    (status, o.join().unwrap(), e.join().unwrap())
}

/// Lets this test process hold thousands of sockets.
fn raise_own_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a local.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max.max(16384);
        rl.rlim_max = rl.rlim_cur;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
}

fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name}"))
        .trim()
        .to_string()
}

/// An exporter (tcpstates only: quick to load); `nofile`: the RLIMIT_NOFILE it runs under
/// (`ulimit -n`).
fn start_exporter(ns: &Netns, nofile: Option<u64>) -> Exporter {
    let (mut cmd, port) = Exporter::command(ns, &["--tools", "tcpstates"]);
    if let Some(n) = nofile {
        // SAFETY: setrlimit is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                let rl = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    Exporter::spawn(cmd, port)
}

/// Sends `request`, reads until the server closes or 20 s pass; returns what came back and
/// whether the server closed the connection.
fn exchange(port: u16, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // The server may answer and close before all of an oversized request is sent.
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// One scrape on a new connection: its status line (20 s read timeout: "did not hang").
fn scrape(port: u16) -> String {
    let (resp, _) = exchange(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let status = resp.lines().next().unwrap_or("").to_string();
    assert!(
        status == "HTTP/1.1 200 OK" && resp.contains("netbpf_tool_up"),
        "scrape: {:?}",
        &resp[..resp.len().min(300)]
    );
    status
}

#[test]
fn scrapes_are_answered_while_idle_and_slowloris_connections_hold_the_fds() {
    raise_own_fd_limit();
    let ns = Netns::new();
    let e = start_exporter(&ns, Some(1024));
    let port = e.port;
    // 1,000 connections that send nothing, 500 that send a request head a byte at a time.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
            s
        })
        .collect();
    let mut latencies = Vec::new();
    for i in 0..200 {
        if i % 20 == 0 {
            for s in &mut slow {
                let _ = s.write_all(b"a");
            }
        }
        let t = Instant::now();
        scrape(port);
        latencies.push(t.elapsed());
    }
    latencies.sort();
    eprintln!(
        "scrapes under 1,000 idle + 500 slowloris connections, ulimit -n 1024: p50 {:?}, p99 {:?}",
        latencies[100], latencies[197]
    );
    assert_eq!(status_field(e.pid(), "Threads:"), "1");
    drop(idle);
    drop(slow);
    scrape(port);
    let (status, stderr) = e.interrupt(HANG);
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn accept_failing_for_lack_of_fds_is_said_and_survived() {
    raise_own_fd_limit();
    let ns = Netns::new();
    // The fds an exporter holds while serving (its BPF objects, the listener, stdio).
    let e = start_exporter(&ns, None);
    let held = std::fs::read_dir(format!("/proc/{}/fd", e.pid()))
        .unwrap()
        .count() as u64;
    e.interrupt(HANG);

    // Room for four connections, below the smallest connection cap (8): accept() fails with
    // EMFILE, the least active connections are closed, and scrapes are still answered.
    let e = start_exporter(&ns, Some(held + 4));
    let port = e.port;
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    for _ in 0..5 {
        scrape(port);
    }
    drop(idle);
    let (status, stderr) = e.interrupt(HANG);
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("accept failed: Too many open files"),
        "{stderr}"
    );
}

#[test]
fn garbage_oversized_and_other_methods_get_an_error_and_a_close() {
    let ns = Netns::new();
    let e = start_exporter(&ns, None);
    let port = e.port;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "POST",
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            "HTTP/1.1 405",
        ),
        (
            "DELETE",
            b"DELETE /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            "HTTP/1.1 405",
        ),
        (
            "TRACE",
            b"TRACE /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".to_vec(),
            "HTTP/1.1 405",
        ),
        (
            "1 MB header",
            [
                &b"GET /metrics HTTP/1.1\r\nX-Big: "[..],
                &vec![b'a'; 1 << 20],
                b"\r\n\r\n",
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "10,000 headers",
            [
                &b"GET /metrics HTTP/1.1\r\n"[..],
                &b"X-A: b\r\n".repeat(10_000),
                b"\r\n",
            ]
            .concat(),
            "HTTP/1.1 431",
        ),
        (
            "TLS ClientHello",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
        (
            "noise",
            b"\x00\x01\x02\xff\xfe\r\n\r\n".to_vec(),
            "HTTP/1.1 400",
        ),
    ];
    for (what, request, want) in cases {
        let (resp, closed) = exchange(port, &request);
        assert!(resp.starts_with(want), "{what}: {resp:?}");
        assert!(closed, "{what}: connection left open");
        assert!(!resp.contains("netbpf_tool_up"), "{what}: metrics served");
        if want == "HTTP/1.1 405" {
            assert!(resp.contains("Allow: GET, HEAD\r\n"), "{what}: {resp}");
        }
    }
    // HEAD: the head of a scrape, no body.
    let (resp, _) = exchange(port, b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("\r\n\r\n"), "HEAD has no body: {resp}");
    // 1,000 pipelined GETs: a few answers, then a close (not 1,000 encodings).
    let (resp, closed) = exchange(
        port,
        &b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(1000),
    );
    let answers = resp.matches("HTTP/1.1 200 OK").count();
    assert!(closed && (1..=8).contains(&answers), "{answers} answers");
    let (status, stderr) = e.interrupt(HANG);
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn concurrent_scrapes_are_served_by_one_thread() {
    raise_own_fd_limit();
    let ns = Netns::new();
    let e = start_exporter(&ns, None);
    let (port, pid) = (e.port, e.pid());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(status_field(pid, "Threads:").parse::<u32>().unwrap());
                std::thread::sleep(Duration::from_millis(5));
            }
            most
        })
    };
    let scrapers: Vec<_> = (0..500)
        .map(|_| std::thread::spawn(move || scrape(port)))
        .collect();
    for s in scrapers {
        s.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sampler.join().unwrap(), 1, "threads while serving");
    let (status, stderr) = e.interrupt(HANG);
    assert!(status.success(), "{status}: {stderr}");
}

#[test]
fn sigint_while_loading_ends_the_run_cleanly() {
    let ns = Netns::new();
    let runs: Vec<Vec<String>> = vec![
        vec![
            "exporter".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", free_port()),
        ],
        vec!["qdisc".into()],
        vec!["tcplife".into()],
        vec!["tcprtt".into()],
    ];
    for args in runs {
        for delay in [0, 50, 300] {
            let mut child = Command::new(netbpf_bin())
                .args(&args)
                .args(["--netns", &ns.path()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            // A signal before main() runs meets the default action: wait for the handler
            // (installed first thing, before any parsing or loading).
            let pid = child.id();
            let t = Instant::now();
            while u64::from_str_radix(&status_field(pid, "SigCgt:"), 16).unwrap() & 2 == 0 {
                assert!(t.elapsed() < HANG, "{args:?}: no SIGINT handler");
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(delay));
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            let status = wait_bounded(&mut child, HANG, &format!("{args:?}"));
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            assert_eq!(
                status.signal(),
                None,
                "{args:?} SIGINT at {delay} ms killed it: {err}"
            );
            assert!(!err.contains("panicked"), "{args:?}: {err}");
        }
    }
}

#[test]
fn config_files_that_are_not_small_regular_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("netbpf-abuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let big = dir.join("big.toml");
    std::fs::write(&big, format!("# {}\n", "x".repeat(2 << 20))).unwrap();
    let fifo = fifo.to_str().unwrap();
    let big = big.to_str().unwrap();
    for (args, msg) in [
        (
            vec!["exporter", "--config", fifo],
            "a FIFO (only a regular file is read)",
        ),
        (
            vec!["exporter", "--config", "/dev/zero"],
            "a character device (only a regular file is read)",
        ),
        (
            vec!["exporter", "--config", big],
            "larger than 1048576 bytes",
        ),
        (
            vec!["tcplife", "--netns", fifo],
            "a FIFO (only a regular file is read)",
        ),
        (vec!["netns", fifo], "a FIFO (only a regular file is read)"),
    ] {
        let mut cmd = Command::new(netbpf_bin());
        cmd.args(&args);
        let (status, _, err) = run_bounded(cmd, &format!("{args:?}"));
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert!(err.contains(args.last().unwrap()), "quotes the path: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every tool's name (from `netbpf --help`).
fn tool_names() -> Vec<String> {
    let o = netbpf(&["--help"]);
    let text = String::from_utf8(o.stdout).unwrap();
    let tools = text.split("Tools:").nth(1).expect("a Tools: list");
    tools
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn every_tool_fails_on_a_closed_stdout_at_once() {
    for tool in tool_names() {
        let mut cmd = Command::new(netbpf_bin());
        cmd.args([&tool, "-d", "1"]);
        // SAFETY: close(1) in the child before exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::close(1);
                Ok(())
            })
        };
        let out = cmd.stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tool}: {err}");
        assert!(err.contains("stdout is closed"), "{tool}: {err}");
    }
    for args in [&["list"][..], &["netns"], &["--help"]] {
        let mut cmd = Command::new(netbpf_bin());
        cmd.args(args);
        // SAFETY: as above.
        unsafe {
            cmd.pre_exec(|| {
                libc::close(1);
                Ok(())
            })
        };
        let out = cmd.stderr(Stdio::piped()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("stdout is closed"), "{args:?}: {err}");
    }
}

/// /dev/null opened read-write on stdout by the parent (Python's subprocess.DEVNULL, systemd's
/// StandardOutput=null) is where the user wants the output to go, not a closed stdout.
#[test]
fn a_tool_runs_with_stdout_on_a_read_write_dev_null() {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .unwrap();
    let out = Command::new(netbpf_bin())
        .args(["tcplife", "-d", "1"])
        .stdout(null)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("Tracing TCP sessions"), "{err}");
}

#[test]
fn every_tool_that_prints_fails_on_a_full_stdout() {
    let ns = Netns::new();
    let names = tool_names();
    let mut checked = 0;
    for chunk in names.chunks(4) {
        let runs: Vec<_> = chunk
            .iter()
            .map(|tool| {
                let (tool, netns) = (tool.clone(), ns.path());
                std::thread::spawn(move || {
                    // Traffic in the namespace while it runs, for the tools that print events.
                    let args = [tool.as_str(), "--netns", &netns, "-d", "2"];
                    let mut piped = Command::new(netbpf_bin());
                    piped.args(args);
                    let (status, out, err) = run_bounded(piped, &tool);
                    if status.code() == Some(2) {
                        return None; // cannot run here, or needs other options
                    }
                    assert_eq!(status.code(), Some(0), "{tool}: {err}");
                    let full = std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/full")
                        .unwrap();
                    let mut cmd = Command::new(netbpf_bin());
                    cmd.args(args).stdout(full).stderr(Stdio::piped());
                    let mut child = cmd.spawn().unwrap();
                    let status = wait_bounded(&mut child, HANG, &tool);
                    let mut err = String::new();
                    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                    Some((tool, out.is_empty(), status, err))
                })
            })
            .collect();
        for r in runs {
            let Some((tool, printed_nothing, status, err)) = r.join().unwrap() else {
                continue;
            };
            if printed_nothing {
                continue;
            }
            checked += 1;
            assert_eq!(status.code(), Some(1), "{tool}: {err}");
            assert!(
                err.contains("cannot write to stdout: No space left on device"),
                "{tool}: {err}"
            );
        }
    }
    assert!(checked >= 10, "only {checked} tools printed anything");
}

/// Values no numeric option takes: each must be refused (exit 2) without a panic.
const BAD_NUMBERS: &[&str] = &["1e30", "99999999999999999999", "nan", "-inf", "-1"];

#[test]
fn huge_and_non_finite_numbers_are_refused_without_a_panic() {
    let numeric = |value_name: &str| {
        [
            "SECS", "N", "MS", "PID", "UID", "ROWS", "PORTS", "LPORTS", "RPORTS",
        ]
        .contains(&value_name)
    };
    let mut tried = 0;
    for tool in tool_names() {
        let help = String::from_utf8(netbpf(&[&tool, "--help"]).stdout).unwrap();
        let mut options = Vec::new();
        for line in help.lines().map(str::trim_start) {
            if !line.starts_with('-') {
                continue;
            }
            let Some((flags, rest)) = line.split_once(" <") else {
                continue;
            };
            let value = rest.split('>').next().unwrap_or("");
            let long = flags.split(", ").last().unwrap_or(flags).to_string();
            if numeric(value) {
                options.push(long);
            }
        }
        let mut runs: Vec<Vec<String>> = Vec::new();
        for bad in BAD_NUMBERS {
            for opt in &options {
                runs.push(vec![tool.clone(), format!("{opt}={bad}")]);
            }
            // The positionals of interval tools: `tool [INTERVAL] [COUNT]`.
            if help.contains("[INTERVAL]") {
                runs.push(vec![tool.clone(), "--".into(), bad.to_string()]);
            }
            if help.contains("[COUNT]") {
                runs.push(vec![tool.clone(), "--".into(), "1".into(), bad.to_string()]);
            }
        }
        for args in runs {
            let what = args.join(" ");
            {
                let mut cmd = Command::new(netbpf_bin());
                cmd.args(&args);
                let (status, _, err) = run_bounded(cmd, &what);
                assert!(!err.contains("panicked"), "{what}: {err}");
                assert_eq!(status.code(), Some(2), "{what}: {err}");
                tried += 1;
            }
        }
    }
    assert!(tried > 50, "only {tried} numeric options found");
}

#[test]
fn a_link_named_like_no_tool_names_itself() {
    let dir = std::env::temp_dir().join(format!("netbpf-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("qdisc-nosuch");
    std::os::unix::fs::symlink(netbpf_bin(), &link).unwrap();
    let o = Command::new(&link).args(["-d", "0.3"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown tool 'qdisc-nosuch'"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
