/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPCONNECT_H
#define NETBPF_TCPCONNECT_H

#include "common/sock.h"

/* One active TCP open (a SYN sent by connect()). */
struct tcpconnect_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() of the event */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 netns; /* the socket's network namespace id (--dns: names are per namespace) */
	__u32 pid;
	__u32 uid;
	__s32 result; /* 0 established, -EINPROGRESS still pending, -errno failed */
	char comm[16];
};

/* Count mode (-c): connects per (addresses, remote port), summed in the kernel; with -s per
 * local port too (0 without). */
struct tcpconnect_count_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 rport;
	__u16 lport;
	__u16 pad;
};

#endif
