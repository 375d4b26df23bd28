/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPCONNLAT_H
#define NETBPF_TCPCONNLAT_H

#include "common/sock.h"

/* One active open that completed: connect() to ESTABLISHED. */
struct tcpconnlat_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() when it was established */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 lat_ns; /* from entering SYN_SENT (in connect()) to ESTABLISHED */
	__u32 pid;
	char comm[16];
};

#endif
