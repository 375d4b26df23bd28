/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SOCK_OWNERS_H
#define NETBPF_SOCK_OWNERS_H

#include "common/sock.h"

/* A TCP socket open in some process when a tool starts (sock_owners.bpf.c): one record per
 * (process, socket); a socket shared by several processes (inherited across fork) comes once
 * for each. The tuple is the socket's own (an AF_INET6 socket's IPv4 peer stays v4-mapped). */
struct sock_owner_record {
	struct sock_tuple tuple;
	__u64 sk; /* the struct sock's address: what tools key sockets by */
	__u64 netns; /* common/netns.bpf.h's id */
	__u32 pid; /* tgid of the process holding a descriptor to it */
	__u32 uid; /* the socket's sk_uid */
	__u8 state; /* TCP state (TCP_LISTEN 10, TCP_ESTABLISHED 1, ...) */
	__u8 pad[7];
	char comm[16];
	__u64 cgroup; /* the socket's cgroup v2 id (common/cgroup.bpf.h) */
};

#endif
