//! cgroup v2: where the hierarchy is mounted, `--cgroup PATH|ID`, and the cgroup id -> name
//! resolver (container, pod, or the cgroup path) that output columns use (`--containers`).
//!
//! A cgroup's id is the inode number of its directory in the v2 hierarchy (kernfs_node::id, what
//! `bpf_get_current_cgroup_id()` returns); its level is its depth below the root (0).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The cgroup id of the v2 root: host processes outside any container cgroup sit here or in a
/// non-container cgroup.
pub const ROOT_ID: u64 = 1;

/// One cgroup of the v2 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    /// Depth below the root (the root is 0): the filter compares the event's ancestor there.
    pub level: u32,
    /// Path relative to the v2 mount, starting with '/' (as /proc/PID/cgroup shows it).
    pub path: String,
}

/// Where cgroup v2 is mounted: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
/// hybrid ones, anywhere else someone mounted it. Read once from /proc/self/mountinfo.
pub fn v2_mount() -> Result<&'static Path, String> {
    static MOUNT: OnceLock<Option<PathBuf>> = OnceLock::new();
    MOUNT
        .get_or_init(|| {
            let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
            v2_mount_in(&info)
        })
        .as_deref()
        .ok_or_else(|| {
            "this host has no cgroup v2 hierarchy mounted (cgroup v1 only): the cgroup, \
             container and pod filters need cgroup v2"
                .to_string()
        })
}

/// The mount point of the first cgroup2 line of a mountinfo text (fields: ... mountpoint ...
/// - fstype source options).
fn v2_mount_in(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mountpoint = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mountpoint)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Cgroup {
    /// The cgroup at `rel` (relative to the mount, '/'-separated), if it exists.
    pub fn at(rel: &str) -> Result<Cgroup, String> {
        let mount = v2_mount()?;
        let rel = normalize(rel)?;
        let dir = mount.join(rel.trim_start_matches('/'));
        let meta = std::fs::metadata(&dir)
            .map_err(|e| format!("no cgroup {rel} ({}: {e})", dir.display()))?;
        if !meta.is_dir() {
            return Err(format!("{} is not a cgroup directory", dir.display()));
        }
        Ok(Cgroup {
            id: meta.ino(),
            level: rel.split('/').filter(|c| !c.is_empty()).count() as u32,
            path: rel,
        })
    }

    /// The cgroup of process `pid` in the v2 hierarchy (its `0::` line).
    pub fn of_pid(pid: u32) -> Result<Cgroup, String> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .map_err(|e| format!("no process {pid}: {e}"))?;
        let rel = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .ok_or_else(|| format!("process {pid} has no cgroup v2 line in /proc/{pid}/cgroup"))?;
        Cgroup::at(rel)
    }

    /// The parent cgroup (None for the root).
    pub fn parent(&self) -> Option<Cgroup> {
        let (up, _) = self.path.rsplit_once('/')?;
        if self.level == 0 {
            return None;
        }
        Cgroup::at(if up.is_empty() { "/" } else { up }).ok()
    }

    /// Whether `other` is this cgroup or below it.
    pub fn contains(&self, other: &Cgroup) -> bool {
        self.level == 0
            || other.path == self.path
            || other.path.starts_with(&format!("{}/", self.path))
    }
}

/// '/'-rooted, no empty, '.' or '..' components (a path must not leave the hierarchy).
fn normalize(rel: &str) -> Result<String, String> {
    let mut parts = Vec::new();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("cgroup path '{rel}' must not contain '..'")),
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// `--cgroup PATH|ID`: a cgroup id (a number), an absolute path under the v2 mount, or a path
/// relative to it (with or without a leading '/', as /proc/PID/cgroup shows it).
pub fn resolve(arg: &str) -> Result<Cgroup, String> {
    let mount = v2_mount()?;
    let arg = arg.trim();
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        let id: u64 = arg
            .parse()
            .map_err(|_| format!("'{arg}' is not a cgroup id"))?;
        return walk()
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| format!("no cgroup with id {id} under {}", mount.display()));
    }
    if arg.is_empty() {
        return Err("an empty cgroup path".into());
    }
    let p = Path::new(arg);
    let rel = match p.strip_prefix(mount) {
        Ok(rest) => format!("/{}", rest.display()),
        Err(_) => arg.to_string(),
    };
    Cgroup::at(&rel).map_err(|e| format!("{e} (cgroup v2 is mounted at {})", mount.display()))
}

/// Every cgroup of the v2 hierarchy, parents before children.
pub fn walk() -> Vec<Cgroup> {
    let Ok(mount) = v2_mount() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stack = vec![(mount.to_path_buf(), String::new(), 0u32)];
    while let Some((dir, rel, level)) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        out.push(Cgroup {
            id: meta.ino(),
            level,
            path: if rel.is_empty() {
                "/".into()
            } else {
                rel.clone()
            },
        });
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let name = e.file_name().to_string_lossy().into_owned();
                stack.push((e.path(), format!("{rel}/{name}"), level + 1));
            }
        }
    }
    out
}

/// What a cgroup id stands for, for output columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A container's cgroup or one below it.
    Container(Arc<crate::core::container::Container>),
    /// Not a container: host processes (the root or a system cgroup), with the path.
    Host(String),
    /// Not known: the cgroup was gone before it could be looked up, or its look-up is still
    /// running (it took longer than [`LOOKUP_WAIT`]; a later row gets the answer).
    Unknown,
}

/// How long printing a row waits for the first look-up of a cgroup id: a look-up is a file
/// handle open and, for a new container, one read of its runtime's state (well under a
/// millisecond to a few); a slower one (a hung disk) must not stall the output.
pub const LOOKUP_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a row waits for the names of the containers running at start ([`Resolver::seed`],
/// one read of the runtimes' state, under 100 ms here, seconds in a slow VM), once: later rows
/// of a container that existed at start are then named at once.
pub const SEED_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// cgroup id -> [`Owner`], cached. Each id is resolved once, on a background thread, when a
/// row first shows it: its path from the id ([`path_of_id`]), then the container holding it
/// ([`crate::core::container::at_path`]). Known ids cost a lock and a hash look-up; the first
/// row of a new id waits at most [`LOOKUP_WAIT`].
pub struct Resolver {
    state: Mutex<Lookups>,
    answered: std::sync::Condvar,
    asks: Mutex<std::sync::mpsc::Sender<u64>>,
}

#[derive(Default)]
struct Lookups {
    known: HashMap<u64, Owner>,
    /// The containers [`Resolver::seed`] was given: a cgroup below one of them is theirs,
    /// without reading the runtime's state again.
    seeded: Vec<Arc<crate::core::container::Container>>,
    /// Asked for, not answered yet.
    pending: std::collections::HashSet<u64>,
    /// A [`Resolver::seed`] announced by [`Resolver::seeding`] has not come yet.
    seeding: bool,
}

impl Resolver {
    /// The process's resolver (started on first use).
    pub fn global() -> &'static Resolver {
        static ONE: OnceLock<&'static Resolver> = OnceLock::new();
        ONE.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let r: &'static Resolver = Box::leak(Box::new(Resolver {
                state: Mutex::new(Lookups::default()),
                answered: std::sync::Condvar::new(),
                asks: Mutex::new(tx),
            }));
            std::thread::Builder::new()
                .name("cgroup-names".into())
                .spawn(move || r.serve(rx))
                .ok();
            r
        })
    }

    fn serve(&self, rx: std::sync::mpsc::Receiver<u64>) {
        // Containers by id: a container's sub-cgroups share one runtime state read.
        let mut containers: HashMap<String, Arc<crate::core::container::Container>> =
            HashMap::new();
        let mut warned = std::collections::HashSet::new();
        while let Ok(id) = rx.recv() {
            let below_seeded = |path: &str| {
                let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.seeded
                    .iter()
                    .find(|c| {
                        path.strip_prefix(c.cgroup.path.as_str())
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                    })
                    .cloned()
            };
            let owner = match path_of_id(id) {
                None => Owner::Unknown,
                Some(path) => match below_seeded(&path) {
                    Some(c) => Owner::Container(c),
                    None => {
                        let (found, warnings) = crate::core::container::at_path(&path);
                        for w in warnings {
                            if warned.insert(w.clone()) {
                                eprintln!("netbpf: warning: {w}");
                            }
                        }
                        match found {
                            Some(c) => Owner::Container(
                                containers
                                    .entry(c.id.clone())
                                    .or_insert_with(|| Arc::new(c))
                                    .clone(),
                            ),
                            None => Owner::Host(path),
                        }
                    }
                },
            };
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.pending.remove(&id);
            st.known.insert(id, owner);
            drop(st);
            self.answered.notify_all();
        }
    }

    /// Knows running containers' own cgroups before any row asks (one read of the runtimes'
    /// state at start): the first rows of a container that existed before the tool are named
    /// even where a look-up would outlast [`LOOKUP_WAIT`] (a loaded host).
    pub fn seed(&self, all: Vec<crate::core::container::Container>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.seeding = false;
        for c in all {
            let c = Arc::new(c);
            st.seeded.push(c.clone());
            st.known
                .entry(c.cgroup.id)
                .or_insert_with(|| Owner::Container(c));
        }
        drop(st);
        self.answered.notify_all();
    }

    /// Says a [`Resolver::seed`] is on its way (read on another thread): until it comes, asks
    /// wait for it rather than looking up containers one by one (at most [`SEED_WAIT`]).
    pub fn seeding(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).seeding = true;
    }

    /// The owner of cgroup `id`. The first ask for an id waits for its look-up (at most
    /// [`LOOKUP_WAIT`]); asks while it runs answer [`Owner::Unknown`] at once.
    pub fn lookup(&self, id: u64) -> Owner {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let seed_deadline = std::time::Instant::now() + SEED_WAIT;
        while st.seeding && !st.known.contains_key(&id) {
            let left = seed_deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                st.seeding = false; // waited once: no row waits for it again
                break;
            }
            st = self
                .answered
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if let Some(o) = st.known.get(&id) {
            return o.clone();
        }
        if !st.pending.insert(id) {
            return Owner::Unknown;
        }
        let sent = self
            .asks
            .lock()
            .map(|tx| tx.send(id).is_ok())
            .unwrap_or(false);
        if !sent {
            return Owner::Unknown;
        }
        let deadline = std::time::Instant::now() + LOOKUP_WAIT;
        loop {
            if let Some(o) = st.known.get(&id) {
                return o.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Owner::Unknown;
            }
            st = self
                .answered
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The path (relative to the v2 mount) of the cgroup with this id: opened by its file handle
/// (a kernfs handle is the id itself), else found by walking the hierarchy.
pub fn path_of_id(id: u64) -> Option<String> {
    if id == ROOT_ID {
        return Some("/".into());
    }
    let mount = v2_mount().ok()?;
    let abs = open_by_id(mount, id).or_else(|| {
        walk()
            .into_iter()
            .find(|c| c.id == id)
            .map(|c| mount.join(c.path.trim_start_matches('/')))
    })?;
    let rel = abs.strip_prefix(mount).ok()?;
    Some(format!("/{}", rel.display()))
}

/// open_by_handle_at() of a cgroup directory: its handle is FILEID_KERNFS with the 8-byte id.
fn open_by_id(mount: &Path, id: u64) -> Option<PathBuf> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const FILEID_KERNFS: libc::c_int = 0xfe;
    #[repr(C)]
    struct Handle {
        bytes: libc::c_uint,
        kind: libc::c_int,
        id: u64,
    }
    let dir = std::fs::File::open(mount).ok()?;
    let mut h = Handle {
        bytes: 8,
        kind: FILEID_KERNFS,
        id,
    };
    // SAFETY: Handle has file_handle's layout (two ints, then handle_bytes of data); the fd
    // returned is owned here.
    let fd = unsafe {
        libc::open_by_handle_at(
            dir.as_raw_fd(),
            (&mut h as *mut Handle).cast(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_cgroup2_anywhere() {
        let hybrid = "25 24 0:22 / /sys/fs/cgroup ro - tmpfs tmpfs ro\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            v2_mount_in(hybrid).unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        let v1 = "27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert!(v2_mount_in(v1).is_none());
        let spaced = "26 25 0:23 / /mnt/my\\040cg rw shared:1 - cgroup2 none rw\n";
        assert_eq!(v2_mount_in(spaced).unwrap(), PathBuf::from("/mnt/my cg"));
    }

    #[test]
    fn paths_stay_in_the_hierarchy() {
        assert_eq!(normalize("a//b/./c/").unwrap(), "/a/b/c");
        assert_eq!(normalize("/").unwrap(), "/");
        assert!(normalize("/a/../../etc").is_err());
    }

    #[test]
    fn own_cgroup_by_path_and_id() {
        let Ok(mount) = v2_mount() else { return };
        let me = Cgroup::of_pid(std::process::id()).unwrap();
        assert_eq!(resolve(&me.path).unwrap(), me);
        assert_eq!(resolve(&me.id.to_string()).unwrap(), me);
        let abs = mount.join(me.path.trim_start_matches('/'));
        assert_eq!(resolve(abs.to_str().unwrap()).unwrap(), me);
        assert_eq!(resolve("/").unwrap().level, 0);
        assert!(resolve("/no/such/cgroup")
            .unwrap_err()
            .contains("no cgroup"));
        assert!(resolve("18446744073709551615")
            .unwrap_err()
            .contains("no cgroup with id"));
    }

    #[test]
    fn paths_of_ids() {
        if v2_mount().is_err() {
            return;
        }
        let me = Cgroup::of_pid(std::process::id()).unwrap();
        assert_eq!(path_of_id(me.id).as_deref(), Some(me.path.as_str()));
        assert_eq!(path_of_id(ROOT_ID).as_deref(), Some("/"));
        assert_eq!(path_of_id(u64::MAX), None);
        // This process's cgroup is no container's here (tests run on the host).
        let r = Resolver::global();
        assert_eq!(r.lookup(ROOT_ID), Owner::Host("/".into()));
    }
}
