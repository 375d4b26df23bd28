/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPPKTLAT_H
#define NETBPF_TCPPKTLAT_H

#include "common/sock.h"

/* One read of a TCP socket that had data waiting: from the oldest unread segment's arrival to the
 * application reading. */
struct tcppktlat_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() at the read */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 lat_ns; /* segment processed by TCP -> the application's read */
	__u32 pid;
	__u32 tid;
	char comm[16];
};

#endif
