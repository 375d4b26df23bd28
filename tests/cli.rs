//! The command line: bad input gets a clear error and a non-zero exit; list, help and the
//! multicall symlinks work.

mod common;

use common::{netbpf, netbpf_bin, refused_here};
use std::os::fd::FromRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn unknown_tool_is_refused() {
    let o = netbpf(&["tcpfoo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown tool 'tcpfoo'"),
        "{}",
        stderr(&o)
    );
    assert_eq!(netbpf(&[]).status.code(), Some(2));
}

#[test]
fn unknown_option_is_refused() {
    for tool in ["tcplife", "tcpstates", "tcpconnect", "tcpaccept"] {
        let o = netbpf(&[tool, "--bogus"]);
        assert_eq!(o.status.code(), Some(2), "{tool}");
        assert!(
            stderr(&o).contains("unexpected argument '--bogus'"),
            "{tool}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn bad_pid_is_refused() {
    let o = netbpf(&["tcplife", "-p", "abc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("'abc' is not a process id"),
        "{}",
        stderr(&o)
    );
    // pid_max is at most 2^22, so this pid cannot exist.
    let o = netbpf(&["tcpconnect", "-p", "4999999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no process with pid 4999999"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_ports_and_families_are_refused() {
    let o = netbpf(&["tcplife", "-L", "80,http"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid port 'http'"), "{}", stderr(&o));
    let o = netbpf(&["tcplife", "-D", "1,2,3,4,5,6,7,8,9"]);
    assert!(stderr(&o).contains("at most 8 ports"), "{}", stderr(&o));
    let o = netbpf(&["tcpaccept", "-4", "-6"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    let o = netbpf(&["tcplife", "--duration", "-3"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn huge_and_tiny_times_are_refused_without_a_panic() {
    for (args, want) in [
        (&["tcplife", "-d", "1e20"][..], "too long"),
        (&["tcplife", "-d", "1e30"], "too long"),
        (&["tcpstates", "--duration", "1e19"], "too long"),
        (&["tcplife", "-d", "1e-300"], "not a positive number"),
        (&["tcplife", "-d", "nan"], "not a positive number"),
        // The interval positionals of interval tools share the parser.
        (&["tcptop", "1e30", "1"], "too long"),
        (&["tcptop", "1e-9"], "too short"),
    ] {
        let o = netbpf(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn a_thread_id_is_refused_naming_its_process() {
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tx.send(unsafe { libc::gettid() }).unwrap();
        done_rx.recv().ok();
    });
    let tid = rx.recv().unwrap().to_string();
    let me = std::process::id();
    for tool in ["tcplife", "tcpstates", "tcpconnect", "tcpaccept"] {
        let o = netbpf(&[tool, "-p", &tid]);
        assert_eq!(o.status.code(), Some(2), "{tool}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{tid} is a thread of process {me} (cli-")),
            "{tool}: {}",
            stderr(&o)
        );
    }
    done_tx.send(()).unwrap();
    t.join().unwrap();
}

/// An inode that names no live namespace is refused, never a filter that traces nothing (a
/// cookie is taken as given: checking it would open a socket in every namespace); `netbpf netns`
/// lists the real ones, and they are taken.
#[test]
fn a_netns_inode_nobody_has_is_refused() {
    // tcpconnect runs on every kernel netbpf supports (tcplife is refused on some).
    for id in ["18446744073709551614", "4026531000"] {
        let o = netbpf(&["tcpconnect", "--netns", id, "-d", "0.2"]);
        assert_eq!(o.status.code(), Some(2), "{id}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--netns: no network namespace has inode"),
            "{id}: {}",
            stderr(&o)
        );
    }
    let own = netbpf(&["netns", "/proc/self/ns/net"]);
    assert!(own.status.success(), "{}", stderr(&own));
    let out = String::from_utf8_lossy(&own.stdout);
    let cookie = out.split_whitespace().next().unwrap().to_string();
    assert!(cookie.parse::<u64>().is_ok_and(|c| c > 0), "{out}");
    // netbpf netns lists it.
    let all = netbpf(&["netns"]);
    assert!(all.status.success(), "{}", stderr(&all));
    let all = String::from_utf8_lossy(&all.stdout);
    assert!(
        all.lines()
            .any(|l| l.split_whitespace().next() == Some(&cookie)),
        "{cookie} not in:\n{all}"
    );
    let o = netbpf(&["tcpconnect", "--netns", &cookie, "-d", "0.2"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_netns_is_refused() {
    let o = netbpf(&["tcplife", "--netns", "/nonexistent/netns"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--netns: netns '/nonexistent/netns': No such file or directory"),
        "{}",
        stderr(&o)
    );
    let o = netbpf(&["tcpstates", "--netns", "/proc/self/status"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a network namespace"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn not_root_is_refused_clearly() {
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(netbpf_bin())
        .args(["tcplife", "-d", "1"])
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("tcplife needs root"), "{}", stderr(&o));
    // Privileges are checked before --netns is resolved (entering a namespace needs them too).
    let o = nobody()
        .args(["tcpstates", "--netns", "/proc/1/ns/net", "-d", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("tcpstates needs root"),
        "{}",
        stderr(&o)
    );
}

/// netbpf as user nobody, without capabilities.
fn nobody() -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(netbpf_bin());
    c
}

#[test]
fn list_without_privilege_does_not_guess() {
    let o = nobody().arg("list").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("not root"), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert!(lines.len() >= 4, "{out}");
    for l in lines {
        let status = l.split_whitespace().nth(1);
        assert_eq!(status, Some("unknown"), "{l}");
    }
}

#[test]
fn list_refuses_unknown_arguments() {
    let o = netbpf(&["list", "--bogus"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("'--bogus'"), "{}", stderr(&o));
}

#[test]
fn list_is_honest_about_this_kernel() {
    let o = netbpf(&["list", "--verbose"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    // The plan each tool must choose here: tp_btf works on every kernel netbpf supports;
    // tcpaccept's best plan needs fentry, which this test host refuses (stock kernels allow it).
    // Its fexit plan needs bpf_get_func_ret (5.17): before that, stock kernels use kprobes.
    let stock = std::env::var_os("NETBPF_VMTEST_KERNEL").is_some();
    let tcpaccept = match (stock, common::btf_names("BPF_FUNC_get_func_ret")) {
        (false, _) => "tracepoint",
        (true, true) => "fexit",
        (true, false) => "kprobe",
    };
    // tcplife and tcpstates keep socket state in socket storage, which tracing programs may use
    // from 5.11 (before: the tracepoint plan and a hash by socket).
    let storage = match common::btf_names("bpf_sk_storage_tracing_allowed") {
        true => "tp_btf",
        false => "tracepoint",
    };
    for (tool, plan) in [
        ("tcplife", storage),
        ("tcpstates", storage),
        ("tcpconnect", "tracepoint"),
        ("tcpaccept", tcpaccept),
    ] {
        if refused_here(tool) {
            continue;
        }
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{tool} ")))
            .unwrap_or_else(|| panic!("{out}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((f[1], f[2]), ("ok", plan), "{line}");
    }
    // Every plan is shown with a verdict, and the hooks it attaches.
    let block: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("tcpaccept "))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    let verdict = |plan: &str| {
        block
            .iter()
            .find(|l| l.trim_start().starts_with(&format!("{plan} ")))
            .map(|l| l.trim_start()[plan.len()..].trim().to_string())
            .unwrap_or_else(|| panic!("no {plan} line in {block:?}"))
    };
    assert_eq!(verdict(tcpaccept), "chosen", "{block:?}");
    if !stock {
        assert!(
            verdict("fexit").starts_with("skipped: fentry unavailable: the kernel refuses"),
            "{block:?}"
        );
        assert!(
            verdict("kprobe")
                .starts_with("skipped: kprobe unavailable: the kernel has no kprobe PMU"),
            "{block:?}"
        );
    }
    assert!(
        block
            .iter()
            .any(|l| l.contains("hooks: fexit/inet_csk_accept")),
        "{block:?}"
    );
}

#[test]
fn install_links_leaves_other_files_alone() {
    let dir = std::env::temp_dir().join(format!("netbpf-links-keep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tcplife"), "precious").unwrap();
    std::os::unix::fs::symlink("/bin/true", dir.join("tcpstates")).unwrap();
    for _ in 0..2 {
        // Twice: the second run replaces its own links and still leaves the others.
        let o = netbpf(&["--install-links", dir.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("tcplife exists and is not a link to netbpf"),
            "{}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("2 name(s)"), "{}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(dir.join("tcplife")).unwrap(),
            "precious"
        );
        assert_eq!(
            std::fs::read_link(dir.join("tcpstates")).unwrap(),
            std::path::PathBuf::from("/bin/true")
        );
        assert_eq!(
            std::fs::read_link(dir.join("tcpconnect")).unwrap(),
            netbpf_bin().canonicalize().unwrap()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_and_multicall_symlink() {
    let o = netbpf(&["tcplife", "--help"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Examples:"));

    let dir = std::env::temp_dir().join(format!("netbpf-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = netbpf(&["--install-links", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = Command::new(dir.join("tcpconnect"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(help.contains("Usage: tcpconnect"), "{help}");
    let o = Command::new(dir.join("tcplife"))
        .args(["-p", "abc"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn duration_ends_the_run_cleanly() {
    let start = std::time::Instant::now();
    // tcpconnect runs on every kernel netbpf supports (tcplife is refused on some).
    let o = netbpf(&["tcpconnect", "-d", "0.5", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let took = start.elapsed().as_secs_f64();
    // The upper bound only tells a run that ended by itself from one that hung: it includes
    // loading and verifying the programs, which takes over 10 s in an emulated VM (vmtest/).
    assert!((0.5..60.0).contains(&took), "took {took}s");
}

#[test]
fn unmounted_tracefs_is_mounted_and_said() {
    // A private mount namespace: unmounting tracefs there leaves the host's alone. Where
    // debugfs is mounted (stock systemd systems), its tracing/ directory mounts tracefs again
    // on first access, so debugfs goes too. tcpaccept's tracepoint plan is asked for: on
    // kernels with fentry, tcpaccept's best plan needs no tracefs.
    let script = format!(
        "umount /sys/kernel/debug/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         umount /sys/kernel/tracing 2>/dev/null; \
         test -d /sys/kernel/tracing/events -o -d /sys/kernel/debug/tracing/events && exit 99; \
         exec env NETBPF_PLAN=tracepoint {} tcpaccept -d 0.3",
        netbpf_bin().display()
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("mounted tracefs at /sys/kernel/tracing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tracefs_that_cannot_be_mounted_means_another_plan() {
    // Without CAP_SYS_ADMIN tracefs cannot be mounted: tcpconnect falls back to its tp_btf plan
    // (list says so), and tcpaccept's tracepoint plan is refused as a problem of this
    // environment, not of the kernel.
    let script = format!(
        "umount /sys/kernel/debug/tracing 2>/dev/null; umount /sys/kernel/debug 2>/dev/null; \
         umount /sys/kernel/tracing 2>/dev/null; \
         test -d /sys/kernel/tracing/events -o -d /sys/kernel/debug/tracing/events && exit 99; \
         nb='setpriv --inh-caps=-sys_admin --bounding-set=-sys_admin {}'; \
         $nb list; echo rc=$?; \
         $nb tcpconnect -d 0.3; echo rc=$?; \
         NETBPF_PLAN=tracepoint $nb tcpaccept -d 0.3; echo rc=$?",
        netbpf_bin().display()
    );
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = stderr(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let rcs: Vec<&str> = out.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(rcs, ["rc=0", "rc=0", "rc=2"], "{out}\n{err}");
    let line = out.lines().find(|l| l.starts_with("tcpconnect ")).unwrap();
    assert_eq!(line.split_whitespace().nth(2), Some("tp_btf"), "{line}");
    assert!(err.contains("Tracing connect()s"), "{err}");
    assert!(
        err.contains("tcpaccept cannot run here: tracepoint")
            && err.contains("mounting it at /sys/kernel/tracing needs CAP_SYS_ADMIN"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_ends_quietly() {
    // stdout is a pipe whose reader is already gone: the first write gets EPIPE/SIGPIPE.
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is a fresh descriptor this test owns; Stdio takes it over.
    let write_end = unsafe { std::process::Stdio::from_raw_fd(fds[1]) };
    let o = Command::new(netbpf_bin())
        .args(["list", "--verbose"])
        .stdout(write_end)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
}

/// `-d` ends on time under CPU load (issue 15: soprotocol, udpconnect and superping overran
/// `-d 14` by 3-4.4 s at load average 7). soprotocol is the hardest case: its three syscall
/// tracepoints each waited for an RCU grace period as they were detached at exit (0.07 s each
/// idle, up to 1.5 s each loaded), and loading, which `-d` did not count, took 0.5-4 s loaded.
#[test]
fn duration_ends_on_time_under_cpu_load() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let ns = common::Netns::new();
    // Two CPU-bound processes per CPU: a busy loop, and one making system calls without pause
    // (a call preempted inside the syscall tracepoint holds up the grace period a detach waits
    // for). At nice 19 so that loading, which they slow down, still ends well before -d.
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut load: Vec<std::process::Child> = (0..cpus)
        .flat_map(|_| {
            [
                Command::new("nice")
                    .args(["-n", "19", "sh", "-c", "while :; do :; done"])
                    .spawn()
                    .unwrap(),
                Command::new("nice")
                    .args(["-n", "19", "dd", "if=/dev/zero", "of=/dev/null", "bs=1"])
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            ]
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    // Long enough that loading (0.5-4 s under this load here; 2.5-3.5 s unloaded in the
    // emulated VMs of vmtest/, whose CPU is ~20x slower) ends before it, so the connects below
    // are made while tracing. In those VMs the last drain, printing and exit take longer too:
    // there the bound only tells the old behaviour (loading not counted: 2.5 s and more over)
    // from the new.
    let vm = common::vmtest_kernel().is_some();
    let (secs, slack) = if vm { (12.0, 2.0) } else { (6.0, 0.2) };
    let begun = Instant::now();
    let mut tool = Command::new(netbpf_bin())
        .args([
            "soprotocol",
            "--json",
            "--netns",
            &ns.path(),
            "-d",
            &secs.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(tool.stderr.take().unwrap());
    let mut stderr = String::new();
    while !stderr.contains("Tracing") {
        if err.read_line(&mut stderr).unwrap() == 0 {
            panic!("soprotocol ended before tracing: {stderr}");
        }
    }
    // What is measured is netbpf's own end, not how long this host's scheduler leaves a woken
    // process waiting: on the 2-CPU VM the tests run in, with other VMs and builds beside them,
    // a sleep(0.1) of a nice-0 process overshot by up to 2.3 s, and a tool that called exit()
    // 1 ms after its deadline was seen to exit by this thread 0.24 s later. So once attached,
    // the tool's main thread (it only sleeps and drains until the deadline) and this thread
    // (it only waits) run SCHED_FIFO: woken at once. The kernel's own work at the tool's exit
    // (the grace periods the old exit waited for) stays at normal priority, under the load.
    let fifo = libc::sched_param { sched_priority: 10 };
    // SAFETY: setting scheduling policies of the tool's main thread and this thread.
    unsafe {
        assert_eq!(
            libc::sched_setscheduler(tool.id() as i32, libc::SCHED_FIFO, &fifo),
            0
        );
        assert_eq!(libc::sched_setscheduler(0, libc::SCHED_FIFO, &fifo), 0);
    }
    let connects = ns.loadgen(&[
        "connect", "--family", "4", "--port", "7851", "--count", "20",
    ]);
    let status = tool.wait().unwrap();
    let took = begun.elapsed().as_secs_f64();
    let normal = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above, back to normal for this thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &normal) };
    for mut p in load.drain(..) {
        let _ = p.kill();
        let _ = p.wait();
    }
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut tool.stdout.take().unwrap(), &mut stdout).unwrap();
    stderr.push_str(&rest.join().unwrap());
    assert!(status.success(), "{stderr}");
    // The events were counted: 20 refused connects (no listener), all made while tracing.
    assert_eq!(connects["refused"], 20, "{connects}");
    let counted: u64 = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["call"] == "connect" && r["comm"] == "loadgen")
        .map(|r| r["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, 20, "{stdout}\n{stderr}");
    // On time: -d counts from the process's start (this spawn), and the exit waits for nothing
    // in the kernel; 0.2 s is the tolerance, and covers the last drain, printing and
    // exiting. Measured here: 6.004-6.012 s in 10 runs; before, 6.3-14.1 s (loading, then
    // three grace periods at exit).
    assert!(
        (secs..secs + slack).contains(&took),
        "soprotocol -d {secs} took {took:.3} s\n{stderr}"
    );
}

/// `-d` counts from the process's start, and a run whose start took a notable part of it says
/// how long it really traced (issue 15: tcprtt had 16 % fewer samples than a one-liner started
/// with it, superping missed echoes, with no word: loading took seconds on that loaded host).
/// A slow start is made here by stopping the tool for a second right after it is spawned.
#[test]
fn a_slow_start_is_counted_in_the_duration_and_said() {
    use std::time::{Duration, Instant};

    // Loading takes 2.5-3.5 s more in the emulated VMs of vmtest/: a longer run there, so that
    // it still ends after loading, and a looser bound for the exit.
    let vm = common::vmtest_kernel().is_some();
    let (secs, slack) = if vm { (8.0, 2.5) } else { (2.0, 0.9) };
    let begun = Instant::now();
    let tool = Command::new(netbpf_bin())
        .args(["tcprtt", "-d", &secs.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(tool.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: as above.
    unsafe { libc::kill(tool.id() as i32, libc::SIGCONT) };
    let o = tool.wait_with_output().unwrap();
    let took = begun.elapsed().as_secs_f64();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let said = err
        .lines()
        .find_map(|l| l.strip_prefix("netbpf tcprtt: loading took "))
        .unwrap_or_else(|| panic!("no loading line: {err}"));
    // "1.2 s of the 2 s run (-d counts from the start): traced for 0.8 s"
    let (loading, rest) = said
        .split_once(&format!(
            " s of the {secs} s run (-d counts from the start): traced for "
        ))
        .unwrap_or_else(|| panic!("{said}"));
    let loading: f64 = loading.parse().unwrap();
    let traced: f64 = rest.strip_suffix(" s").unwrap().parse().unwrap();
    assert!(loading >= 1.0, "{said}");
    assert!((loading + traced - secs).abs() <= 0.1, "{said}");
    // Ended SECS after it started, the stopped second included (not 1 s + loading + SECS).
    // The bound only tells the two apart; the tight one is
    // duration_ends_on_time_under_cpu_load's.
    assert!(
        (secs..secs + slack).contains(&took),
        "took {took:.3} s: {err}"
    );
}
