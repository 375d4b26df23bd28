/* SPDX-License-Identifier: GPL-2.0 */
/* Per-socket state kept in the socket itself (BPF_MAP_TYPE_SK_STORAGE), for tp_btf programs on
 * inet_sock_set_state, where sk is a BTF pointer: fields are read directly (no probe-read
 * helper calls), a socket's state is found without hashing, nothing is ever evicted, and the
 * kernel frees it with the socket.
 *
 * The owner of a TCP socket is learned from the transitions that run in its owner's own syscall:
 * SYN_SENT (connect), LISTEN (listen), FIN_WAIT1 and LAST_ACK (close/shutdown). A passive child
 * inherits its listener's owner at SYN_RECV, found by (netns, local port), and is refined when
 * the process that accepted it closes it. Other transitions mostly run in softirq context, where
 * "current" is whatever was interrupted. */
#ifndef NETBPF_SK_OWNER_BPF_H
#define NETBPF_SK_OWNER_BPF_H

#include "common/sock.h"

/* bpf_sk_storage_get() flag (a #define in the kernel's uapi header). */
#ifndef BPF_SK_STORAGE_GET_F_CREATE
#define BPF_SK_STORAGE_GET_F_CREATE 1
#endif

struct owner_id {
	__u32 pid; /* 0: not known */
	char comm[TASK_COMM_LEN];
};

struct listen_key {
	__u64 netns;
	__u32 port;
	__u32 pad;
};

/* Listening sockets' owners, for their children. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct owner_id);
} listen_owners SEC(".maps");

static __always_inline __u64 btf_sk_netns(const struct sock *sk)
{
	return sk->__sk_common.skc_net.net->net_cookie;
}

static __always_inline struct listen_key listen_key_of(const struct sock *sk, __u16 port)
{
	struct listen_key k = { .netns = btf_sk_netns(sk), .port = port };

	return k;
}

/* Updates *o for sk's change to newstate. Call it for every change that may set the owner:
 * SYN_SENT, LISTEN, FIN_WAIT1, LAST_ACK, SYN_RECV; and LISTEN -> CLOSE, which forgets a
 * listener. */
static __always_inline void owner_update(const struct sock *sk, int oldstate, int newstate,
					 struct owner_id *o)
{
	struct listen_key k;
	struct owner_id *inherited;

	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		if (current_is_kthread())
			return;
		o->pid = current_tgid();
		bpf_get_current_comm(o->comm, sizeof(o->comm));
		if (newstate == TCP_LISTEN) {
			k = listen_key_of(sk, sk->__sk_common.skc_num);
			bpf_map_update_elem(&listen_owners, &k, o, BPF_ANY);
		}
		return;
	case TCP_SYN_RECV:
		k = listen_key_of(sk, sk->__sk_common.skc_num);
		inherited = bpf_map_lookup_elem(&listen_owners, &k);
		if (inherited)
			*o = *inherited;
		return;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			/* skc_num is 0 by now (the port is released before the state is stored); a
			 * listener's inet_sport still holds it. */
			const struct inet_sock *inet = (const struct inet_sock *)bpf_skc_to_tcp_sock((void *)sk);

			if (inet) {
				k = listen_key_of(sk, bpf_ntohs(inet->inet_sport));
				bpf_map_delete_elem(&listen_owners, &k);
			}
		}
		return;
	}
}

/* The tuple of a TCP socket, from BTF pointers (no helper calls). The local port comes from
 * inet_sport, not skc_num: on the way to TCP_CLOSE the kernel releases the port (skc_num = 0)
 * before the state-change tracepoint fires. */
static __always_inline void tcp_read_tuple(const struct tcp_sock *tp, struct sock_tuple *t)
{
	const struct sock *sk = (const struct sock *)tp;

	t->family = sk->__sk_common.skc_family;
	t->lport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	t->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (t->family == AF_INET6) {
		__builtin_memcpy(t->saddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(t->daddr, &sk->__sk_common.skc_v6_daddr, 16);
	} else {
		*(__u32 *)t->saddr = sk->__sk_common.skc_rcv_saddr;
		*(__u32 *)t->daddr = sk->__sk_common.skc_daddr;
	}
}

#endif
