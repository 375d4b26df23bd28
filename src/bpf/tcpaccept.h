/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPACCEPT_H
#define NETBPF_TCPACCEPT_H

#include "common/sock.h"

/* One passive TCP open returned by accept(). */
struct tcpaccept_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() of the event */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u32 pid;
	__u32 backlog; /* listen queue length when this connection was taken, itself included */
	__u32 max_backlog; /* the listener's limit */
	char comm[16];
};

#endif
