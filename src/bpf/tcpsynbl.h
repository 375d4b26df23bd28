/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPSYNBL_H
#define NETBPF_TCPSYNBL_H

#define TCPSYNBL_SYN 1 /* a SYN dropped: the accept queue was full when it arrived */
#define TCPSYNBL_ACK 2 /* a handshake's final ACK dropped: no room for the new connection */

/* A packet dropped because the listener's accept queue was full. The address and port are the
 * ones the packet was sent to (the listener's end). */
struct tcpsynbl_drop {
	__u8 laddr[16];
	__u64 ts_ns;
	__u32 backlog; /* the accept queue, 0 / 0 when the listener is not known */
	__u32 max_backlog;
	__u16 family;
	__u16 lport;
	__u8 kind;
	__u8 pad[3];
	__u64 cgroup; /* cgroup v2 id, the listener's (0: none) */
};

#endif
