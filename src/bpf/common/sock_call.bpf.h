/* SPDX-License-Identifier: GPL-2.0 */
/* A socket syscall on an IP socket, seen at its syscall tracepoints: the socket its fd names
 * and what the call asked for are kept per thread at entry, and taken back at exit with the
 * result (bindsnoop, solisten). */
#ifndef NETBPF_SOCK_CALL_BPF_H
#define NETBPF_SOCK_CALL_BPF_H

#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockaddr.h"

/* One call in progress. */
struct sock_call {
	__u64 sk;
	struct user_sockaddr addr; /* the address the caller passed, if any */
	__s32 arg; /* the call's integer argument (listen's backlog) */
	__u32 opts; /* what the tool read from the socket at entry */
};

/* thread in the call -> the call */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct sock_call);
} sock_calls SEC(".maps");

/* The IPv4/IPv6 socket of fd when the calling process, the socket's netns and its family pass
 * the common filters; NULL otherwise. */
static __always_inline struct sock *filtered_inet_sock(int fd)
{
	struct sock *sk;
	__u16 family;

	if (!tgid_ok(current_tgid()))
		return NULL;
	sk = sock_from_fd(fd);
	if (!sk || !sk_netns_ok(sk) || !sk_cgroup_ok(sk))
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (!sk_is_inet(family) || !family_ok(family))
		return NULL;
	return sk;
}

/* Remembers a call of this thread on sk until its exit. */
static __always_inline void sock_call_enter(struct sock_call *c)
{
	__u32 tid = current_tid();

	bpf_map_update_elem(&sock_calls, &tid, c, BPF_ANY);
}

/* This thread's call at its exit, copied into c and forgotten; false when none was kept. */
static __always_inline bool sock_call_exit(struct sock_call *c)
{
	__u32 tid = current_tid();
	struct sock_call *p = bpf_map_lookup_elem(&sock_calls, &tid);

	if (!p)
		return false;
	*c = *p;
	bpf_map_delete_elem(&sock_calls, &tid);
	return true;
}

#endif
