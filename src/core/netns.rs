//! `--netns`: a network namespace named by id or by path, resolved to the id the BPF programs
//! read (common/netns.bpf.h makes the same choice, see [`IdKind`]): the cookie the kernel stores
//! in `struct net` (unique for the life of the system) where it has one, else its inode number.

use std::os::fd::AsRawFd;
use std::sync::OnceLock;

/// What names a network namespace on this kernel, in the BPF programs and so in `--netns`, map
/// keys and output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// `struct net`'s u64 cookie (5.12 on), which user space reads with SO_NETNS_COOKIE (5.14 on).
    Cookie,
    /// The nsfs inode (`net:[N]` in `ls -l /proc/PID/ns/net`): before 5.12 the cookie is an
    /// `atomic64_t` assigned on first use, so 0 for nearly every namespace, and unreadable from
    /// user space. An inode number may be reused once its namespace is gone.
    Inode,
}

/// This kernel's [`IdKind`], from its BTF: the cookie when `struct net`'s `net_cookie` is an
/// integer, as the BPF side's CO-RE check decides.
pub fn id_kind() -> IdKind {
    static KIND: OnceLock<IdKind> = OnceLock::new();
    *KIND.get_or_init(
        || match crate::core::btf::member_is_integer("net", "net_cookie") {
            Ok(Some(false) | None) => IdKind::Inode,
            // No kernel BTF: no tool loads anyway.
            Ok(Some(true)) | Err(_) => IdKind::Cookie,
        },
    )
}

/// The name of the id in messages and headers.
pub fn id_name() -> &'static str {
    match id_kind() {
        IdKind::Cookie => "cookie",
        IdKind::Inode => "inode",
    }
}

const SO_NETNS_COOKIE: libc::c_int = 71;

fn socket_cookie() -> std::io::Result<u64> {
    // SAFETY: plain syscalls on a socket we own and close.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        );
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(err);
        }
        Ok(cookie)
    }
}

/// The cookie of the netns at `path` (joined from a short-lived thread, so the caller's own
/// namespace never changes).
pub fn cookie_of_path(path: &str) -> Result<u64, String> {
    let file = crate::core::input::open_regular(std::path::Path::new(path))
        .map_err(|e| format!("netns '{path}': {e}"))?;
    let fd = file.as_raw_fd();
    let path_owned = path.to_string();
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only; the thread exits right after.
        if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::EINVAL) {
                format!("netns '{path_owned}' is not a network namespace")
            } else {
                format!("netns '{path_owned}': cannot enter: {e}")
            });
        }
        socket_cookie().map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
                format!(
                    "netns '{path_owned}': this kernel cannot tell a namespace's cookie \
                     (SO_NETNS_COOKIE needs Linux 5.14): give the cookie as a number"
                )
            } else {
                format!("netns '{path_owned}': cannot read its cookie: {e}")
            }
        })
    })
    .join()
    .map_err(|_| "netns lookup thread panicked".to_string())?
}

/// The inode of the netns at `path`, checked to be a network namespace.
fn inode_of_path(path: &str) -> Result<u64, String> {
    use std::os::unix::fs::MetadataExt;
    // NS_GET_NSTYPE: _IO(0xb7, 0x3)
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // Like cookie_of_path: a FIFO must be refused, never block the open.
    let file = crate::core::input::open_regular(std::path::Path::new(path))
        .map_err(|e| format!("netns '{path}': {e}"))?;
    // SAFETY: an ioctl without argument on a descriptor we own.
    let nstype = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if nstype != libc::CLONE_NEWNET {
        return Err(format!("netns '{path}' is not a network namespace"));
    }
    let meta = file
        .metadata()
        .map_err(|e| format!("netns '{path}': {e}"))?;
    Ok(meta.ino())
}

/// The id ([`IdKind`]) of the netns at `path`.
pub fn id_of_path(path: &str) -> Result<u64, String> {
    match id_kind() {
        IdKind::Cookie => cookie_of_path(path),
        IdKind::Inode => inode_of_path(path),
    }
}

/// nsfs inode numbers lie at or above this: the initial namespaces' fixed ones just below
/// 0xF0000000 (PROC_NET_INIT_INO, 0xEFFFFFF9 on 6.x), the others allocated from 0xF0000000 up.
/// Cookies count up from 1, one per namespace made since boot, so they never get near it.
const FIRST_NS_INODE: u64 = 0xE000_0000;

/// Parses `--netns`: a path, or a number: the namespace's inode (as `lsns` and
/// `ls -l /proc/PID/ns/net` show it) or its cookie. An inode that names no namespace found
/// (through /proc and /run/netns) is an error, never a filter that matches nothing.
pub fn resolve(arg: &str) -> Result<u64, String> {
    let Ok(n) = arg.parse::<u64>() else {
        return id_of_path(arg);
    };
    if n == 0 {
        return Err(format!("netns {} 0 is not valid", id_name()));
    }
    if n >= FIRST_NS_INODE {
        let Some(ns) = unentered().into_iter().find(|r| r.inode == n) else {
            // Without CAP_SYS_PTRACE other users' processes cannot be looked into (the unit's
            // user nobody): where inodes are the ids, the number is then taken as given.
            if id_kind() == IdKind::Inode && !crate::core::bpf::sees_every_process() {
                eprintln!(
                    "netbpf: warning: netns inode {n} could not be checked (other users' \
                     processes are not visible without CAP_SYS_PTRACE): taken as given"
                );
                return Ok(n);
            }
            return Err(format!(
                "no network namespace has inode {n} (lsns -t net, or `netbpf netns`, lists them)"
            ));
        };
        return id_of_path(&ns.path);
    }
    // A smaller number is a cookie, taken as given: telling whether a namespace has it means
    // entering each and opening a socket there, which tools already tracing it would count
    // (`netbpf netns` lists them). Where namespaces are named by inode, it names none.
    if id_kind() == IdKind::Inode {
        return Err(format!(
            "no network namespace has inode {n} (lsns -t net, or `netbpf netns`, lists them)"
        ));
    }
    Ok(n)
}

/// A network namespace found through /proc or /run/netns.
#[derive(Debug, Clone)]
pub struct Reachable {
    /// The nsfs inode (the `net:[N]` of `ls -l /proc/PID/ns/net`).
    pub inode: u64,
    /// Its id ([`IdKind`]); None when it could not be read (entering a namespace needs root).
    pub id: Option<u64>,
    /// One path that names it (/run/netns/NAME when it has a name).
    pub path: String,
    /// Processes whose main thread is in it.
    pub pids: Vec<u32>,
}

/// Every network namespace that a process (or thread) is in, that an open file of a process
/// holds, or that /run/netns names, with its id (a cookie is read by entering each, which needs
/// root; without it the cookies are None).
pub fn reachable() -> Vec<Reachable> {
    let mut found = unentered();
    for r in &mut found {
        r.id = match id_kind() {
            IdKind::Cookie => cookie_of_path(&r.path).ok(),
            IdKind::Inode => Some(r.inode),
        };
    }
    found
}

/// [`reachable`] without the ids: found by their paths' inodes, without entering any.
fn unentered() -> Vec<Reachable> {
    use std::os::unix::fs::MetadataExt;
    let mut found: Vec<Reachable> = Vec::new();
    let mut add = |path: String, pid: Option<u32>| {
        let Ok(meta) = std::fs::metadata(&path) else {
            return;
        };
        let inode = meta.ino();
        match found.iter_mut().find(|r| r.inode == inode) {
            Some(r) => {
                if path.starts_with("/run/netns/") && !r.path.starts_with("/run/netns/") {
                    r.path = path;
                }
                r.pids.extend(pid);
            }
            None => found.push(Reachable {
                inode,
                id: None,
                path,
                pids: pid.into_iter().collect(),
            }),
        }
    };
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        for e in dir.flatten() {
            add(e.path().to_string_lossy().into_owned(), None);
        }
    }
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|p| p.parse().ok()))
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    for &pid in &pids {
        add(format!("/proc/{pid}/ns/net"), Some(pid));
        // Threads may sit in other namespaces than their process.
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let tid = t.file_name();
                if tid.to_str() != Some(&pid.to_string()) {
                    add(
                        format!("/proc/{pid}/task/{}/ns/net", tid.to_string_lossy()),
                        None,
                    );
                }
            }
        }
    }
    // Namespaces that only an open file keeps alive (`ip netns` style handles, test harnesses).
    for &pid in &pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("net:["))
            {
                add(fd.path().to_string_lossy().into_owned(), None);
            }
        }
    }
    found
}

/// The process ids in /proc.
pub fn pids() -> Vec<libc::pid_t> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|p| p.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// Calls `f` with the netns cookie of each socket `pid` holds, read through a duplicate of its
/// descriptor (pidfd_getfd: nothing is created anywhere), until `f` returns true. Returns whether
/// any socket could be looked at.
pub fn socket_cookies(pid: libc::pid_t, mut f: impl FnMut(u64) -> bool) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let sockets: Vec<i32> = fds
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:["))
        })
        .filter_map(|fd| fd.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    if sockets.is_empty() {
        return false;
    }
    let mut looked = false;
    // SAFETY: plain syscalls; every fd obtained is closed here.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return false;
        }
        for fd in sockets {
            let dup = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
            if dup < 0 {
                continue;
            }
            let cookie = sockopt_cookie(dup);
            libc::close(dup);
            looked |= cookie.is_some();
            if cookie.is_some_and(&mut f) {
                break;
            }
        }
        libc::close(pidfd);
    }
    looked
}

/// SO_NETNS_COOKIE of socket `fd`.
fn sockopt_cookie(fd: i32) -> Option<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 of the size passed.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(cookie)
}

/// The cookie of the calling thread's netns.
pub fn current_cookie() -> std::io::Result<u64> {
    socket_cookie()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_by_path_matches_socket() {
        let by_path = cookie_of_path("/proc/thread-self/ns/net");
        // Needs no privilege: entering one's own netns is allowed for root only, so accept the
        // error text when unprivileged.
        match by_path {
            Ok(c) => assert_eq!(c, current_cookie().unwrap()),
            Err(e) => assert!(e.contains("cannot enter"), "{e}"),
        }
    }

    #[test]
    fn our_own_namespace_is_reachable() {
        let all = reachable();
        let me = format!("/proc/{}/ns/net", std::process::id());
        let mine = all
            .iter()
            .find(|r| r.pids.contains(&std::process::id()))
            .unwrap_or_else(|| panic!("{me} not found in {all:?}"));
        // A socket of ours in our namespace: socket_cookies sees its cookie.
        let held = std::net::UdpSocket::bind("127.0.0.1:0");
        if let (Ok(own), Ok(_held)) = (current_cookie(), held) {
            if mine.id.is_some() && id_kind() == IdKind::Cookie {
                assert_eq!(mine.id, Some(own));
                let mut seen = false;
                socket_cookies(std::process::id() as libc::pid_t, |c| {
                    seen = c == own;
                    seen
                });
                assert!(seen);
            }
        }
    }

    #[test]
    fn bad_inputs() {
        assert!(resolve("0").is_err());
        assert!(resolve("/nonexistent/ns")
            .unwrap_err()
            .contains("No such file"));
        assert!(resolve("/proc/self/status")
            .unwrap_err()
            .contains("not a network namespace"));
    }
}
