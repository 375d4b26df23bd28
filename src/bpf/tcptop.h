/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPTOP_H
#define NETBPF_TCPTOP_H

#include "common/sock.h"

/* One connection as seen by one process: the in-kernel aggregation key. */
struct tcptop_key {
	struct sock_tuple tuple;
	__u32 pid;
	char comm[16];
	__u32 pad;
	__u64 cgroup; /* cgroup v2 id, the socket's */
};

/* Payload bytes moved through the socket calls of this interval. */
struct tcptop_bytes {
	__u64 tx;
	__u64 rx;
};

#endif
