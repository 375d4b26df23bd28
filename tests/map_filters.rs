//! bcc's pinned-map filters, --cgroupmap (every tool) and --mntnsmap (tcpconnect, tcpaccept,
//! tcptop), and tcptop's -c CGROUP, against real processes: cgroups and mount namespaces made
//! here, maps pinned in a bpffs mounted here, traffic in the test's network namespace.

mod common;

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::{loadgen_bin, with, Netns, Tool};
use libbpf_rs::{MapCore as _, MapFlags, MapHandle, MapType};
use serde_json::Value;

/// A bpffs instance mounted on a fresh directory (each mount is its own instance), unmounted
/// and removed when dropped.
struct Bpffs(PathBuf);

impl Bpffs {
    fn new(tag: &str) -> Bpffs {
        let dir = std::env::temp_dir().join(format!("netbpf-bpffs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        // SAFETY: C strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "mount bpffs: {}", std::io::Error::last_os_error());
        Bpffs(dir)
    }

    /// A map of `kind` pinned here as `name`, as `bpftool map create` would make it.
    fn pin(&self, name: &str, kind: MapType, key: u32, value: u32) -> (MapHandle, String) {
        let opts = libbpf_rs::libbpf_sys::bpf_map_create_opts {
            sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_map_create_opts>() as _,
            ..Default::default()
        };
        let mut map = MapHandle::create(kind, Some("ids"), key, value, 128, &opts).unwrap();
        let path = self.0.join(name);
        map.pin(&path).unwrap();
        (map, path.to_string_lossy().into_owned())
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.0.to_str().unwrap()).unwrap();
        // SAFETY: a C string that outlives the call.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Adds `id` to a set map whose values are `value` bytes.
fn add(map: &MapHandle, id: u64, value: usize) {
    map.update(&id.to_ne_bytes(), &vec![0u8; value], MapFlags::ANY)
        .unwrap();
}

/// Where cgroup v2 is mounted (/sys/fs/cgroup/unified on hybrid hosts): core's own finder.
fn cgroup2_mount() -> PathBuf {
    netbpf::core::cgroup::v2_mount().unwrap().to_path_buf()
}

/// A cgroup v2 made for the test, removed when dropped (its processes have ended by then).
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(tag: &str) -> Cgroup {
        let dir = cgroup2_mount().join(format!("netbpf-test-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Cgroup(dir)
    }
    /// Its cgroup id: the directory's inode number.
    fn id(&self) -> u64 {
        std::fs::metadata(&self.0).unwrap().ino()
    }
    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
    fn enter(&self, pid: u32) {
        std::fs::write(self.0.join("cgroup.procs"), pid.to_string()).unwrap();
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// loadgen in `ns`, waiting for its go (so it can be moved first); in a mount namespace of its
/// own with `own_mntns`.
struct Held(Child);

impl Held {
    fn new(ns: &Netns, args: &[&str], own_mntns: bool) -> Held {
        let mut cmd = ns.command(loadgen_bin());
        cmd.arg("--wait")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if own_mntns {
            // SAFETY: unshare is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::unshare(libc::CLONE_NEWNS) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Held(cmd.spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    /// The inode of its mount namespace, as `lsns -t mnt` shows it.
    fn mntns(&self) -> u64 {
        std::fs::metadata(format!("/proc/{}/ns/mnt", self.pid()))
            .unwrap()
            .ino()
    }
    fn go(mut self) -> Value {
        self.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = self.0.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "loadgen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn dports(rows: &[Value]) -> Vec<u64> {
    rows.iter().map(|r| r["dport"].as_u64().unwrap()).collect()
}

#[test]
fn cgroupmap_keeps_the_cgroups_in_the_map_as_it_changes() {
    let ns = Netns::new();
    let fs = Bpffs::new("cgroupmap");
    let (map, pinned) = fs.pin("cgroups", MapType::Hash, 8, 8);
    let (a, b) = (Cgroup::new("cgmap-a"), Cgroup::new("cgmap-b"));
    add(&map, a.id(), 8);
    let path = ns.path();
    let tool = Tool::start(&[
        "tcpconnect",
        "--json",
        "--netns",
        &path,
        "--cgroupmap",
        &pinned,
    ]);
    // A tool bcc has no --cgroupmap on, whose refused connects end in softirq (the reset's
    // arrival): matched through the socket's cgroup all the same.
    let states = Tool::start(&[
        "tcpstates",
        "--json",
        "--netns",
        &path,
        "--cgroupmap",
        &pinned,
    ]);
    let connect = |port: &str, cg: &Cgroup| {
        let held = Held::new(&ns, &["connect", "--port", port, "--count", "2"], false);
        cg.enter(held.pid());
        held.go()
    };
    let in_a = connect("7501", &a);
    connect("7502", &b);
    // Read per event: b counts from the moment it is added.
    add(&map, b.id(), 8);
    let in_b = connect("7503", &b);
    let rows = tool.stop().json();
    assert_eq!(dports(&rows), [7501, 7501, 7503, 7503], "{rows:?}");
    let changes = states.stop().json();
    let rports: Vec<u64> = changes
        .iter()
        .map(|r| r["rport"].as_u64().unwrap())
        .collect();
    // SYN_SENT and back to CLOSE, for each of the four.
    assert_eq!(
        rports,
        [7501, 7501, 7501, 7501, 7503, 7503, 7503, 7503],
        "{changes:?}"
    );
    for (port, pid, cg) in [(7501, &in_a["pid"], &a), (7503, &in_b["pid"], &b)] {
        assert!(
            with(&rows, "dport", port)
                .iter()
                .all(|r| r["pid"] == *pid && r["cgroup_id"] == cg.id()),
            "{rows:?}"
        );
    }
}

#[test]
fn mntnsmap_keeps_processes_of_the_mount_namespaces_in_the_map() {
    let ns = Netns::new();
    let path = ns.path();
    let fs = Bpffs::new("mntnsmap");
    let (map, pinned) = fs.pin("mntns", MapType::Hash, 8, 4);
    // Each of these both connects and accepts (a listener and its clients in one process).
    let inside = Held::new(&ns, &["backlog", "--port", "7511", "--clients", "2"], true);
    let outside = Held::new(&ns, &["backlog", "--port", "7512", "--clients", "2"], false);
    assert_ne!(inside.mntns(), outside.mntns());
    add(&map, inside.mntns(), 4);
    let opts = |tool| vec![tool, "--json", "--netns", &path, "--mntnsmap", &pinned];
    let connects = Tool::start(&opts("tcpconnect"));
    let accepts = Tool::start(&opts("tcpaccept"));
    let (inside_pid, _) = (inside.pid(), inside.go());
    outside.go();

    let rows = connects.stop().json();
    assert_eq!(dports(&rows), [7511, 7511], "{rows:?}");
    assert!(rows.iter().all(|r| r["pid"] == inside_pid), "{rows:?}");
    let rows = accepts.stop().json();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r["lport"] == 7511 && r["pid"] == inside_pid),
        "{rows:?}"
    );
}

/// Two processes streaming over loopback, one in each cgroup (or mount namespace): tcptop must
/// show only the one its filter keeps, both ends of its connections.
fn tcptop_keeps_one(filter: &[&str], ns: &Netns, kept: Held, other: Held) {
    let path = ns.path();
    let mut args = vec!["tcptop", "--json", "--netns", &path];
    args.extend_from_slice(filter);
    args.push("0.2");
    let tool = Tool::start(&args);
    let kept_pid = kept.pid();
    let (run, _) = (kept.go(), other.go());
    let finished = tool.stop();
    // A run preempted on its CPU blocks the next one there, which the tool then says: the
    // counts are then bounds.
    let stderr = finished.stderr.clone();
    let skipped = stderr.contains("the kernel skipped");
    let rows = finished.json();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["pid"] == kept_pid), "{rows:?}");
    // Every byte of the kept process's connections, both ends.
    let tx: u64 = rows.iter().map(|r| r["tx_bytes"].as_u64().unwrap()).sum();
    let sent: u64 = run["conns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sent"].as_u64().unwrap() + c["received"].as_u64().unwrap())
        .sum();
    match skipped {
        true => assert!(tx <= sent, "{rows:?} {run} {stderr}"),
        false => assert_eq!(tx, sent, "{rows:?} {run} {stderr}"),
    }
}

const STREAMS: &[&str] = &["streams", "--send", "30000,60000", "--reply", "5000,7000"];

#[test]
fn tcptop_c_is_the_cgroup_filter() {
    let ns = Netns::new();
    let (a, b) = (Cgroup::new("tcptop-a"), Cgroup::new("tcptop-b"));
    let (kept, other) = (
        Held::new(&ns, STREAMS, false),
        Held::new(&ns, STREAMS, false),
    );
    a.enter(kept.pid());
    b.enter(other.pid());
    tcptop_keeps_one(&["-c", &a.path()], &ns, kept, other);
}

#[test]
fn tcptop_mntnsmap() {
    let ns = Netns::new();
    let fs = Bpffs::new("tcptop");
    let (map, pinned) = fs.pin("mntns", MapType::Hash, 8, 4);
    let (kept, other) = (
        Held::new(&ns, STREAMS, true),
        Held::new(&ns, STREAMS, false),
    );
    add(&map, kept.mntns(), 4);
    tcptop_keeps_one(&["--mntnsmap", &pinned], &ns, kept, other);
}

#[test]
fn bad_pinned_maps_are_refused_with_what_they_must_be() {
    let fs = Bpffs::new("bad");
    let (_k4, key4) = fs.pin("key4", MapType::Hash, 4, 8);
    let (_arr, array) = fs.pin("array", MapType::Array, 4, 8);
    let (_v8, value8) = fs.pin("value8", MapType::Hash, 8, 8);
    let plain = std::env::temp_dir().join(format!("netbpf-notamap-{}", std::process::id()));
    std::fs::write(&plain, b"x").unwrap();
    let plain = plain.to_string_lossy().into_owned();
    let missing = Path::new(&fs.0).join("missing");
    let missing = missing.to_str().unwrap();
    for (args, says) in [
        (
            ["tcpconnect", "--cgroupmap", missing],
            "--cgroupmap ".to_string() + missing + ": no such file",
        ),
        (
            ["tcpconnect", "--cgroupmap", &plain],
            format!("--cgroupmap {plain}: not a pinned BPF map"),
        ),
        (
            ["skbdrop", "--cgroupmap", &key4],
            format!("--cgroupmap {key4}: a Hash map with 4-byte keys and 8-byte values"),
        ),
        (
            ["tcptop", "--cgroupmap", &array],
            format!("--cgroupmap {array}: a Array map with 4-byte keys"),
        ),
        // bcc's mount namespace sets have 4-byte values.
        (
            ["tcpaccept", "--mntnsmap", &value8],
            format!("--mntnsmap {value8}: a Hash map with 8-byte keys and 8-byte values"),
        ),
    ] {
        let out = common::netbpf(&[args[0], args[1], args[2], "-d", "1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(&says), "{args:?}: {err}");
        assert!(err.contains("bpftool map create"), "{args:?}: {err}");
        assert!(out.stdout.is_empty());
    }
    std::fs::remove_file(&plain).unwrap();
    // Only where the filter means something: not on a tool that filters outside the process.
    let out = common::netbpf(&["tcptracer", "--mntnsmap", &value8]);
    assert_eq!(out.status.code(), Some(2));
}
