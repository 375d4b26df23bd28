/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOLISTEN_H
#define NETBPF_SOLISTEN_H

#include "common/sock.h"

/* One listen() on an IPv4/IPv6 socket, reported when it returns. */
struct solisten_event {
	struct sock_tuple tuple; /* the socket's local address and port after the call */
	__u64 ts_ns; /* bpf_ktime_get_ns() at return */
	__u64 netns_cookie;
	__u32 netns_ino;
	__u32 pid;
	__s32 ret; /* 0 or -errno */
	__s32 backlog; /* as passed */
	__u32 max_backlog; /* the accept queue limit the kernel set (backlog capped by somaxconn) */
	__u16 protocol; /* IPPROTO_* */
	__u16 pad;
	char comm[16];
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
};

#endif
