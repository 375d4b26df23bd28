/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_UDPCONNECT_H
#define NETBPF_UDPCONNECT_H

#include "common/sockaddr.h"

/* One successful connect() of a UDP socket. */
struct udpconnect_event {
	struct user_sockaddr raddr; /* as passed to connect(), copied at entry */
	__u8 laddr[16]; /* the local address the kernel chose, read after connect() */
	__u64 ts_ns; /* bpf_ktime_get_ns() at return */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u32 pid;
	__u16 lport; /* local port after connect() (bound automatically if it was not) */
	__u16 family; /* the socket's family (AF_INET6 for a v4-mapped address) */
	char comm[16];
};

#endif
