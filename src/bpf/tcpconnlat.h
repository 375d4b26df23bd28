/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPCONNLAT_H
#define NETBPF_TCPCONNLAT_H

#include "common/sock.h"

/* One active open that ended: connect() to ESTABLISHED, or to a failure with an error. */
struct tcpconnlat_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() when it was established */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 lat_ns; /* from entering SYN_SENT (in connect()) to ESTABLISHED or the failure */
	__u32 pid;
	__s32 result; /* 0 established, else -errno (-ECONNREFUSED: a reset answered the SYN) */
	char comm[16];
};

#endif
