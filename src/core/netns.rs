//! `--netns`: a network namespace named by cookie or by path, resolved to the cookie the kernel
//! stores in `struct net` (unique for the life of the system, unlike the inode number).

use std::os::fd::AsRawFd;

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
    let file = std::fs::File::open(path).map_err(|e| format!("netns '{path}': {e}"))?;
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
        socket_cookie().map_err(|e| format!("netns '{path_owned}': cannot read its cookie: {e}"))
    })
    .join()
    .map_err(|_| "netns lookup thread panicked".to_string())?
}

/// Parses `--netns`: a cookie (a number) or a path.
pub fn resolve(arg: &str) -> Result<u64, String> {
    if let Ok(cookie) = arg.parse::<u64>() {
        if cookie == 0 {
            return Err("netns cookie 0 is not valid".into());
        }
        return Ok(cookie);
    }
    cookie_of_path(arg)
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
