/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOACCEPT_H
#define NETBPF_SOACCEPT_H

#include "common/sock.h"

/* One accept() on an IPv4/IPv6 listening socket, reported when it returns. */
struct soaccept_event {
	/* On success the new connection; on failure only family and lport (the listener's). */
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() at return */
	__u64 cgroup; /* cgroup v2 id, the task's (0: none) */
	__u32 pid;
	__s32 ret; /* the new fd, or -errno */
	char comm[16];
};

#endif
