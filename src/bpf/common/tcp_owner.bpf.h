/* SPDX-License-Identifier: GPL-2.0 */
/* Which process owns a TCP socket, learned from inet_sock_set_state, and from accept() where the
 * tool can hook it.
 *
 * Many transitions run in softirq context, where "current" is whatever was interrupted. The owner
 * is therefore taken only from transitions that run in the owner's own syscall: SYN_SENT
 * (connect), LISTEN (listen), FIN_WAIT1 and LAST_ACK (close/shutdown). A passive child inherits its
 * listener's owner at SYN_RECV, found by (netns, local port). With SO_REUSEPORT several processes
 * listen on one port and the child may belong to any of them: the guess is the last one to call
 * listen(), so tools that can should call owner_accepted() where accept() returns the socket (the
 * real owner), and it is refined anyway when the process that accepted it closes it. A listener
 * that closes removes its port's entry only if the entry is its own, so the others sharing the
 * port keep theirs. Sockets that existed before the tool started are added to both maps by user
 * space right after attaching (core/sock_owners.rs: seed_tcp_owner); layouts mirrored there. */
#ifndef NETBPF_TCP_OWNER_BPF_H
#define NETBPF_TCP_OWNER_BPF_H

#include "common/sock.bpf.h"

struct sk_owner {
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct listener_key {
	__u64 netns;
	__u32 port;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sk_owner);
} sk_owners SEC(".maps");

/* The listening socket (of several, with SO_REUSEPORT: the last to listen) and its owner. */
struct listener_owner {
	__u64 sk;
	struct sk_owner owner;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listener_key);
	__type(value, struct listener_owner);
} listener_owners SEC(".maps");

static __always_inline void owner_from_current(struct sk_owner *o)
{
	o->pid = current_tgid();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

/* Updates the owner of sk for this transition and returns it (NULL when unknown). */
static __always_inline struct sk_owner *owner_track(const struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct listener_key lkey = {};
	struct sk_owner owner = {};
	struct listener_owner lo = {}, *inherited;

	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		if (current_is_kthread())
			break;
		owner_from_current(&owner);
		bpf_map_update_elem(&sk_owners, &key, &owner, BPF_ANY);
		if (newstate == TCP_LISTEN) {
			lkey.netns = sk_netns_id(sk);
			lkey.port = BPF_CORE_READ(sk, __sk_common.skc_num);
			lo.sk = key;
			lo.owner = owner;
			bpf_map_update_elem(&listener_owners, &lkey, &lo, BPF_ANY);
		}
		break;
	case TCP_SYN_RECV:
		lkey.netns = sk_netns_id(sk);
		lkey.port = BPF_CORE_READ(sk, __sk_common.skc_num);
		inherited = bpf_map_lookup_elem(&listener_owners, &lkey);
		if (inherited)
			bpf_map_update_elem(&sk_owners, &key, &inherited->owner, BPF_ANY);
		break;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			/* skc_num is 0 by now (the port is released before the state is stored);
			 * a listener's inet_sport still holds it. */
			lkey.netns = sk_netns_id(sk);
			lkey.port = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
			inherited = bpf_map_lookup_elem(&listener_owners, &lkey);
			if (inherited && inherited->sk == key)
				bpf_map_delete_elem(&listener_owners, &lkey);
		}
		break;
	}
	return bpf_map_lookup_elem(&sk_owners, &key);
}

/* The listener entry of (netns, port), or NULL. */
static __always_inline struct listener_owner *listener_lookup(__u64 netns, __u16 port)
{
	struct listener_key lkey = { .netns = netns, .port = port };

	return bpf_map_lookup_elem(&listener_owners, &lkey);
}

/* accept() handed sk to the current process: it is the owner. */
static __always_inline void owner_accepted(const struct sock *sk)
{
	struct sk_owner owner = {};
	__u64 key = (__u64)sk;

	owner_from_current(&owner);
	bpf_map_update_elem(&sk_owners, &key, &owner, BPF_ANY);
}

static __always_inline void owner_forget(const struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&sk_owners, &key);
}

#endif
