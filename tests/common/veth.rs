//! Two test namespaces joined by a veth pair, and the few device settings tests change.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::thread;

use super::Netns;

/// Runs `f` on a thread inside `ns` (a socket made there belongs to it).
pub fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = File::open(ns.path()).unwrap();
    thread::spawn(move || {
        // SAFETY: setns on this thread only.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

/// The namespace's id, as the tools name it (netbpf::core::netns::IdKind).
pub fn netns_cookie(ns: &Netns) -> u64 {
    netbpf::core::netns::id_of_path(&ns.path()).expect("netns id")
}

/// `ip ARGS...` in `ns`, which must succeed.
pub fn ip(ns: &Netns, args: &[&str]) {
    run_in(ns, "ip", args);
}

/// `tc ARGS...` in `ns`, which must succeed.
pub fn tc(ns: &Netns, args: &[&str]) {
    run_in(ns, "tc", args);
}

fn run_in(ns: &Netns, program: &str, args: &[&str]) {
    let out = ns
        .command(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (iproute2) is needed: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub const ETHTOOL_STSO: u32 = 0x1f;
pub const ETHTOOL_SGRO: u32 = 0x2c;

/// Sets an offload feature with the legacy ethtool ioctl (no ethtool binary needed).
pub fn ethtool_set(ns: &Netns, ifname: &'static str, cmd: u32, on: bool) {
    in_netns(ns, move || unsafe {
        #[repr(C)]
        struct EthtoolValue {
            cmd: u32,
            data: u32,
        }
        let mut v = EthtoolValue {
            cmd,
            data: on as u32,
        };
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in ifname.bytes().enumerate() {
            ifr.ifr_name[i] = b as libc::c_char;
        }
        ifr.ifr_ifru.ifru_data = (&mut v as *mut EthtoolValue).cast();
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        const SIOCETHTOOL: libc::c_ulong = 0x8946;
        let rc = libc::ioctl(fd, SIOCETHTOOL, &mut ifr);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        assert_eq!(rc, 0, "ethtool cmd {cmd:#x} on {ifname}: {err}");
    })
}

/// The MAC address of `dev` in `ns`.
pub fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = ns
        .command("ip")
        .args(["-j", "link", "show", "dev", dev])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["address"].as_str().unwrap().to_string()
}

/// Two namespaces joined by a veth pair: "va" 10.9.0.1 and fd09::1 in the first, "vb" 10.9.0.2
/// and fd09::2 in the second. Usable at once, and without address resolution traffic: IPv6
/// without duplicate address detection, each side's neighbours entered by hand (a first
/// neighbour solicitation sent while the peer is still coming up is lost, and the retry comes a
/// second later).
pub fn veth_pair() -> (Netns, Netns) {
    let (a, b) = (Netns::new(), Netns::new());
    let peer = b.path();
    ip(
        &a,
        &[
            "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", &peer,
        ],
    );
    ip(&a, &["addr", "add", "10.9.0.1/24", "dev", "va"]);
    ip(&b, &["addr", "add", "10.9.0.2/24", "dev", "vb"]);
    ip(&a, &["addr", "add", "fd09::1/64", "dev", "va", "nodad"]);
    ip(&b, &["addr", "add", "fd09::2/64", "dev", "vb", "nodad"]);
    let (mac_a, mac_b) = (mac_of(&a, "va"), mac_of(&b, "vb"));
    for (ns, dev, peer, mac) in [
        (&a, "va", ["10.9.0.2", "fd09::2"], &mac_b),
        (&b, "vb", ["10.9.0.1", "fd09::1"], &mac_a),
    ] {
        for addr in peer {
            ip(
                ns,
                &[
                    "neigh",
                    "replace",
                    addr,
                    "lladdr",
                    mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ],
            );
        }
    }
    ip(&a, &["link", "set", "va", "up"]);
    ip(&b, &["link", "set", "vb", "up"]);
    (a, b)
}
