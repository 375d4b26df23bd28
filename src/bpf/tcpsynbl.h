/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPSYNBL_H
#define NETBPF_TCPSYNBL_H

/* A connection dropped because the listener's accept queue was full. */
struct tcpsynbl_drop {
	__u8 laddr[16];
	__u64 ts_ns;
	__u32 backlog;
	__u32 max_backlog;
	__u16 family;
	__u16 lport;
	__u32 pad;
};

#endif
