/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPLIFE_H
#define NETBPF_TCPLIFE_H

#include "common/sock.h"

/* One closed TCP session. */
struct tcplife_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() of the event */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 span_ns;
	__u64 tx_bytes; /* payload bytes sent and acknowledged */
	__u64 rx_bytes; /* payload bytes received */
	__u32 pid;
	char comm[16];
};

#endif
