//! Names of socket address families (AF_*) and IP protocols (IPPROTO_*), as Linux numbers them.

/// The kernel's name for an address family (include/linux/socket.h), or None past AF_MCTP.
pub fn family_name(family: u16) -> Option<&'static str> {
    const NAMES: [&str; 46] = [
        "AF_UNSPEC",
        "AF_UNIX",
        "AF_INET",
        "AF_AX25",
        "AF_IPX",
        "AF_APPLETALK",
        "AF_NETROM",
        "AF_BRIDGE",
        "AF_ATMPVC",
        "AF_X25",
        "AF_INET6",
        "AF_ROSE",
        "AF_DECnet",
        "AF_NETBEUI",
        "AF_SECURITY",
        "AF_KEY",
        "AF_NETLINK",
        "AF_PACKET",
        "AF_ASH",
        "AF_ECONET",
        "AF_ATMSVC",
        "AF_RDS",
        "AF_SNA",
        "AF_IRDA",
        "AF_PPPOX",
        "AF_WANPIPE",
        "AF_LLC",
        "AF_IB",
        "AF_MPLS",
        "AF_CAN",
        "AF_TIPC",
        "AF_BLUETOOTH",
        "AF_IUCV",
        "AF_RXRPC",
        "AF_ISDN",
        "AF_PHONET",
        "AF_IEEE802154",
        "AF_CAIF",
        "AF_ALG",
        "AF_NFC",
        "AF_VSOCK",
        "AF_KCM",
        "AF_QIPCRTR",
        "AF_SMC",
        "AF_XDP",
        "AF_MCTP",
    ];
    NAMES.get(usize::from(family)).copied()
}

/// The family's name, or its number for one this table does not know.
pub fn family_str(family: u16) -> String {
    family_name(family).map_or_else(|| family.to_string(), str::to_string)
}

/// The name of an IP protocol number as a socket carries it (sk_protocol; include/uapi/linux/in.h
/// and in6.h), or None when it has none. MPTCP (262) and SMC (256) do not fit in a byte: the
/// kernel keeps sk_protocol in 16 bits.
pub fn ipproto_name(protocol: u16) -> Option<&'static str> {
    Some(match protocol {
        0 => "IP",
        1 => "ICMP",
        2 => "IGMP",
        4 => "IPIP",
        6 => "TCP",
        8 => "EGP",
        12 => "PUP",
        17 => "UDP",
        22 => "IDP",
        29 => "TP",
        33 => "DCCP",
        41 => "IPV6",
        46 => "RSVP",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        58 => "ICMPV6",
        92 => "MTP",
        94 => "BEETPH",
        98 => "ENCAP",
        103 => "PIM",
        108 => "COMP",
        115 => "L2TP",
        132 => "SCTP",
        136 => "UDPLITE",
        137 => "MPLS",
        143 => "ETHERNET",
        144 => "AGGFRAG",
        255 => "RAW",
        256 => "SMC",
        262 => "MPTCP",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(family_name(0), Some("AF_UNSPEC"));
        assert_eq!(family_name(1), Some("AF_UNIX"));
        assert_eq!(family_name(2), Some("AF_INET"));
        assert_eq!(family_name(10), Some("AF_INET6"));
        assert_eq!(family_name(16), Some("AF_NETLINK"));
        assert_eq!(family_name(17), Some("AF_PACKET"));
        assert_eq!(family_name(40), Some("AF_VSOCK"));
        assert_eq!(family_name(44), Some("AF_XDP"));
        assert_eq!(family_name(45), Some("AF_MCTP"));
        assert_eq!(family_name(46), None);
        assert_eq!(family_str(99), "99");
    }

    #[test]
    fn protocols() {
        assert_eq!(ipproto_name(6), Some("TCP"));
        assert_eq!(ipproto_name(17), Some("UDP"));
        assert_eq!(ipproto_name(58), Some("ICMPV6"));
        assert_eq!(ipproto_name(262), Some("MPTCP"));
        assert_eq!(ipproto_name(3), None);
    }
}
