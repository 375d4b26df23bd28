//! Network interface names, as the tools' -i options take them and the BPF side compares them.

use crate::core::cli::Common;

/// An interface name as the kernel allows it: 1 to 15 bytes, no '/', ':' or whitespace.
pub fn parse_ifname(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "'{s}' is not an interface name (1 to 15 characters)"
        ));
    }
    if s == "." || s == ".." || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("'{s}' is not an interface name"));
    }
    Ok(s.to_string())
}

/// The interface name as the NUL-padded array the BPF side compares with.
pub fn ifname_bytes(name: Option<&str>) -> [i8; 16] {
    let mut a = [0i8; 16];
    for (d, s) in a.iter_mut().zip(name.unwrap_or_default().bytes()) {
        *d = s as i8;
    }
    a
}

/// Says on stderr when the traced namespace has no interface `iface` (yet): the tool runs, and
/// matches from the moment one appears. The namespace is --netns's: a path is entered to look;
/// a cookie names no place to look from, and is not checked.
pub fn warn_missing_interface(tool: &str, iface: Option<&str>, common: &Common) {
    let Some(name) = iface else {
        return;
    };
    let file = match common.netns.as_deref() {
        None => None,
        Some(arg) if arg.parse::<u64>().is_ok() => return,
        Some(arg) => match std::fs::File::open(arg) {
            Ok(f) => Some(f),
            Err(_) => return,
        },
    };
    let Ok(cname) = std::ffi::CString::new(name) else {
        return;
    };
    let found = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on this short-lived thread only; if_nametoindex reads a C string.
        unsafe {
            if let Some(f) = &file {
                if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return true;
                }
            }
            libc::if_nametoindex(cname.as_ptr()) != 0
        }
    })
    .join()
    .unwrap_or(true);
    if !found {
        eprintln!(
            "netbpf {tool}: there is no interface {name} in the traced network namespace (yet): \
             nothing matches until one appears"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        assert_eq!(parse_ifname("veth0").unwrap(), "veth0");
        assert!(parse_ifname("").is_err());
        assert!(parse_ifname("a-very-long-name0").is_err());
        assert!(parse_ifname("a/b").is_err());
        assert_eq!(ifname_bytes(Some("lo"))[..3], [b'l' as i8, b'o' as i8, 0]);
    }
}
