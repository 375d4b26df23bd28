//! The kernel's own TCP/IP counters (/proc/net/netstat, snmp) of a network namespace, read from
//! inside it: the /proc/net files show the namespace of the task that reads them.

use std::fs::File;
use std::os::fd::AsRawFd;

/// Where to read the counters: a namespace file, or None for netbpf's own namespace.
pub struct Netns {
    file: Option<File>,
}

impl Netns {
    /// For `--netns ARG` as given (`id` is its resolved id): a path is opened, an id is looked
    /// for among the namespaces of running processes.
    pub fn open(arg: Option<&str>, id: u64) -> Result<Netns, String> {
        let Some(arg) = arg else {
            return Ok(Netns { file: None });
        };
        if arg.parse::<u64>().is_err() {
            let file = File::open(arg).map_err(|e| format!("netns '{arg}': {e}"))?;
            return Ok(Netns { file: Some(file) });
        }
        find_by_id(id)
            .map(|f| Netns { file: Some(f) })
            .ok_or_else(|| {
                format!(
                    "no process found in the network namespace with {} {id}",
                    crate::core::netns::id_name()
                )
            })
    }

    /// The text of /proc/net/NAME in this namespace.
    pub fn read(&self, name: &str) -> Result<String, String> {
        let fd = self.file.as_ref().map(|f| f.as_raw_fd());
        let path = format!("/proc/thread-self/net/{name}");
        std::thread::scope(|s| {
            s.spawn(|| {
                if let Some(fd) = fd {
                    // SAFETY: setns on this short-lived thread only.
                    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                        return Err(format!(
                            "cannot enter the network namespace: {}",
                            std::io::Error::last_os_error()
                        ));
                    }
                }
                std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
            })
            .join()
            .map_err(|_| "netstat reader thread panicked".to_string())?
        })
    }

    /// One counter of a paired file (netstat, snmp), e.g. ("netstat", "TcpExt", "ListenOverflows").
    pub fn counter(&self, file: &str, prefix: &str, name: &str) -> Result<u64, String> {
        let text = self.read(file)?;
        paired_value(&text, prefix, name)
            .ok_or_else(|| format!("/proc/net/{file} has no {prefix} {name}"))
    }
}

/// A value of /proc/net/netstat or snmp text: pairs of lines "Prefix: Name1 Name2 ..." and
/// "Prefix: v1 v2 ...".
pub fn paired_value(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks_exact(2) {
        let (Some((p1, names)), Some((p2, values))) =
            (pair[0].split_once(':'), pair[1].split_once(':'))
        else {
            continue;
        };
        if p1 != prefix || p2 != prefix {
            continue;
        }
        let i = names.split_whitespace().position(|n| n == name)?;
        return values.split_whitespace().nth(i)?.parse().ok();
    }
    None
}

/// A handle on the network namespace with this id ([`crate::core::netns::IdKind`]), found
/// through a process living in it.
pub fn find_by_id(id: u64) -> Option<File> {
    use crate::core::netns::IdKind;
    use std::os::unix::fs::MetadataExt;
    if crate::core::netns::id_kind() == IdKind::Inode {
        return crate::core::netns::pids().into_iter().find_map(|pid| {
            let path = format!("/proc/{pid}/ns/net");
            let meta = std::fs::metadata(&path).ok()?;
            (meta.ino() == id).then(|| File::open(&path).ok())?
        });
    }
    let cookie = id;
    // First through the sockets processes hold (nothing is created in any namespace); then, for
    // a namespace no socket is in, by entering each (which opens a socket there).
    for pid in crate::core::netns::pids() {
        let mut found = false;
        crate::core::netns::socket_cookies(pid, |c| {
            found = c == cookie;
            found
        });
        if found {
            if let Ok(f) = File::open(format!("/proc/{pid}/ns/net")) {
                return Some(f);
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for pid in crate::core::netns::pids() {
        let path = format!("/proc/{pid}/ns/net");
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        if crate::core::netns::cookie_of_path(&path) == Ok(cookie) {
            return File::open(&path).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn paired_values() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 2 7 9\n\
                    IpExt: InNoRoutes\n\
                    IpExt: 0\n";
        assert_eq!(
            super::paired_value(text, "TcpExt", "ListenOverflows"),
            Some(7)
        );
        assert_eq!(super::paired_value(text, "IpExt", "InNoRoutes"), Some(0));
        assert_eq!(super::paired_value(text, "IpExt", "Nope"), None);
        assert_eq!(
            super::paired_value("IpExt: A\nIpExt: 1\n", "TcpExt", "A"),
            None
        );
    }

    #[test]
    fn own_namespace_has_tcp_counters() {
        let ns = super::Netns::open(None, 0).unwrap();
        assert!(ns.counter("netstat", "TcpExt", "ListenOverflows").is_ok());
    }
}
