/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPSNOOP_H
#define NETBPF_TCPSNOOP_H

#include "common/sock.h"

enum tcpsnoop_owner {
	OWNER_KNOWN = 0,
	OWNER_UNKNOWN = 1, /* no owner learned (socket older than the trace, or no socket yet) */
	OWNER_CLOSED = 2, /* a reset sent for a port with no socket */
};

/* One TCP packet, seen from the socket it belongs to: tuple.saddr/lport are local. */
struct tcpsnoop_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() of the event */
	__u32 pid;
	__u32 uid;
	__u32 size; /* IP datagram: IP header + TCP header + payload */
	__u32 payload; /* TCP payload bytes */
	__u8 dir; /* 0 out (->), 1 in (<-) */
	__u8 flags; /* TCP flags */
	__u8 owner; /* enum tcpsnoop_owner */
	__u8 pad;
	char comm[16];
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
};

#endif
