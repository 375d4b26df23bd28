/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCONNECT_H
#define NETBPF_SOCONNECT_H

#include "common/sockaddr.h"

/* One connect() to an IPv4/IPv6 address, reported when it returns. */
struct soconnect_event {
	struct user_sockaddr addr; /* as passed to connect(), copied at entry */
	__u64 ts_ns; /* bpf_ktime_get_ns() at return */
	__u64 cgroup; /* cgroup v2 id, the task's (0: none) */
	__u64 lat_ns; /* time spent in connect() */
	__u32 pid;
	__s32 ret; /* 0 or -errno */
	__u16 protocol; /* the socket's sk_protocol (0 when unknown) */
	__u16 pad[3];
	char comm[16];
};

#endif
