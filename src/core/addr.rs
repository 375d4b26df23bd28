//! Addresses and ports as the kernel hands them over.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// An address of `family` stored in a 16-byte buffer (IPv4 in the first 4 bytes, network order).
pub fn ip(family: u16, raw: &[u8; 16]) -> IpAddr {
    if family == AF_INET6 {
        IpAddr::V6(Ipv6Addr::from(*raw))
    } else {
        IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
    }
}

/// "4" or "6", the IP column of bcc tools.
pub fn ip_version(family: u16) -> u64 {
    if family == AF_INET6 {
        6
    } else {
        4
    }
}

/// "addr:port", with an IPv6 address in brackets so the port stays readable ("[::1]:80").
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// A connection's endpoints as seen from this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    pub family: u16,
    pub laddr: IpAddr,
    pub lport: u16,
    pub raddr: IpAddr,
    pub rport: u16,
}

impl Tuple {
    pub fn new(family: u16, saddr: &[u8; 16], daddr: &[u8; 16], lport: u16, rport: u16) -> Self {
        Tuple {
            family,
            laddr: ip(family, saddr),
            lport,
            raddr: ip(family, daddr),
            rport,
        }
    }
}

impl Tuple {
    /// The IPv4 connection an AF_INET6 socket carries when it talks to a v4-mapped address
    /// (::ffff:a.b.c.d, a dual-stack socket): family AF_INET and plain IPv4 addresses, as the
    /// packets on the wire have them. Other tuples are returned as they are. A listener (remote
    /// address unspecified) is unmapped by its local address.
    pub fn unmapped(self) -> Tuple {
        let remote_unset = self.raddr.is_unspecified();
        let key = if remote_unset { self.laddr } else { self.raddr };
        if self.family != AF_INET6 || unmap_v4(key) == key {
            return self;
        }
        Tuple {
            family: AF_INET,
            laddr: unmap_v4(self.laddr),
            raddr: if remote_unset {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                unmap_v4(self.raddr)
            },
            ..self
        }
    }
}

/// ::ffff:a.b.c.d as a.b.c.d; any other address as it is.
pub fn unmap_v4(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// Builds a [`Tuple`] from any skeleton's generated `sock_tuple` (each skeleton has its own copy
/// of the type, with the same fields).
#[macro_export]
macro_rules! tuple_of {
    ($t:expr) => {{
        let t = &$t;
        $crate::core::addr::Tuple::new(t.family, &t.saddr, &t.daddr, t.lport, t.rport)
    }};
}

/// Parses "80,443" into at most `max` ports.
pub fn parse_ports(s: &str, max: usize) -> Result<Vec<u16>, String> {
    let ports: Vec<u16> = s
        .split(',')
        .map(|p| {
            let p = p.trim();
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(format!("invalid port '{p}' (expected 1-65535)")),
            }
        })
        .collect::<Result<_, _>>()?;
    if ports.len() > max {
        return Err(format!(
            "at most {max} ports can be given, got {}",
            ports.len()
        ));
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_and_v6() {
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(ip(AF_INET, &raw).to_string(), "127.0.0.1");
        let mut raw6 = [0u8; 16];
        raw6[15] = 1;
        assert_eq!(ip(AF_INET6, &raw6).to_string(), "::1");
        assert_eq!(ip_version(AF_INET6), 6);
        assert_eq!(endpoint(ip(AF_INET, &raw), 80), "127.0.0.1:80");
        assert_eq!(endpoint(ip(AF_INET6, &raw6), 443), "[::1]:443");
    }

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("::1".parse().unwrap(), 80), "[::1]:80");
        assert_eq!(endpoint("127.0.0.1".parse().unwrap(), 80), "127.0.0.1:80");
    }

    #[test]
    fn v4_mapped_tuples_are_ipv4() {
        let t = |l: &str, r: &str| Tuple {
            family: AF_INET6,
            laddr: l.parse().unwrap(),
            lport: 80,
            raddr: r.parse().unwrap(),
            rport: 4000,
        };
        let u = t("::ffff:127.0.0.1", "::ffff:10.0.0.2").unmapped();
        assert_eq!(
            (
                u.family,
                u.laddr.to_string(),
                u.raddr.to_string(),
                u.lport,
                u.rport
            ),
            (AF_INET, "127.0.0.1".into(), "10.0.0.2".into(), 80, 4000)
        );
        let listener = t("::ffff:127.0.0.1", "::").unmapped();
        assert_eq!(
            (listener.family, listener.raddr.to_string()),
            (AF_INET, "0.0.0.0".into())
        );
        assert_eq!(t("::1", "::1").unmapped(), t("::1", "::1"));
        assert_eq!(t("::", "::").unmapped(), t("::", "::"));
        assert_eq!(
            unmap_v4("::ffff:1.2.3.4".parse().unwrap()).to_string(),
            "1.2.3.4"
        );
    }

    #[test]
    fn port_lists() {
        assert_eq!(parse_ports("80, 443", 8).unwrap(), vec![80, 443]);
        assert!(parse_ports("0", 8).is_err());
        assert!(parse_ports("http", 8)
            .unwrap_err()
            .contains("invalid port 'http'"));
        assert!(parse_ports("1,2,3", 2).unwrap_err().contains("at most 2"));
    }
}
