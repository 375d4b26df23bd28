//! TCP facts user space needs to print.

/// The kernel's TCP state names (include/net/tcp_states.h), as bcc prints them.
pub fn state_name(state: i32) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "UNKNOWN",
    }
}

/// TCP header flags as bcc prints them: "SYN|ACK", lowest bit first; "" for none.
pub fn flags_str(flags: u8) -> String {
    const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    let set: Vec<&str> = NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| flags & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    set.join("|")
}

#[cfg(test)]
mod tests {
    #[test]
    fn flag_names() {
        assert_eq!(super::flags_str(0x12), "SYN|ACK");
        assert_eq!(super::flags_str(0x04), "RST");
        assert_eq!(super::flags_str(0), "");
    }

    #[test]
    fn names() {
        assert_eq!(super::state_name(1), "ESTABLISHED");
        assert_eq!(super::state_name(7), "CLOSE");
        assert_eq!(super::state_name(99), "UNKNOWN");
    }
}
