/* SPDX-License-Identifier: GPL-2.0 */
/* Per-socket state kept in the socket itself (BPF_MAP_TYPE_SK_STORAGE), for tp_btf programs on
 * inet_sock_set_state, where sk is a BTF pointer: a socket's state is found without hashing,
 * nothing is ever evicted, and the kernel frees it with the socket.
 *
 * Fields are read with BPF_CORE_READ (probe reads), not through the BTF pointer: on recent
 * kernels the verifier spends ~0.6 ms on each direct load through a BTF pointer (type lookups
 * by name in kernel BTF), which made loading tcplife 10-25 ms slower; a probe read costs ~20 ns
 * per event instead. And every distinct kernel type a program reads makes libbpf scan all of
 * kernel BTF once at load (~1.5 ms each): these readers stay with struct sock, struct tcp_sock
 * (inet_sock's fields through it), struct net and task_struct.
 *
 * The owner of a TCP socket is learned from the transitions that run in its owner's own syscall:
 * SYN_SENT (connect), LISTEN (listen), FIN_WAIT1 and LAST_ACK (close/shutdown). A passive child
 * inherits its listener's owner at SYN_RECV, found by (netns, local port), and is refined when
 * the process that accepted it closes it. Other transitions mostly run in softirq context, where
 * "current" is whatever was interrupted. Listeners opened before the tool started are added to
 * listen_owners by user space right after attaching (core/sock_owners.rs: seed_sk_owner). */
#ifndef NETBPF_SK_OWNER_BPF_H
#define NETBPF_SK_OWNER_BPF_H

#include "common/sock.bpf.h"

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

static __always_inline struct listen_key listen_key_of(__u64 netns, __u16 port)
{
	struct listen_key k = { .netns = netns, .port = port };

	return k;
}

/* The local port, from inet_sport (at TCP_CLOSE skc_num is 0 already: the kernel releases the
 * port before the state-change tracepoint fires), read through struct tcp_sock. */
static __always_inline __u16 tcp_local_port(const struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ((const struct tcp_sock *)sk, inet_conn.icsk_inet.inet_sport));
}

/* The socket's first bytes (struct sock_common), which hold its family, remote port and both
 * addresses, v4 and v6 (on 6.18 they end at 88, with skc_v6_rcv_saddr). */
#define SK_COMMON_BYTES 96
#define SK_COMMON_FIELD(buf, sk, f, dst)                                                       \
	COPIED_FIELD(struct sock, buf, SK_COMMON_BYTES, sk, __sk_common.f, dst)

/* sk_read_tuple() (common/sock.bpf.h) for TCP sockets, reading through struct tcp_sock: run on
 * every state change of tcplife and tcpstates, so the fields of sock_common come from one probe
 * read (COPIED_FIELD) instead of one each. */
static __always_inline void tcp_read_tuple(const struct sock *sk, struct sock_tuple *t)
{
	unsigned char c[SK_COMMON_BYTES];
	__u16 dport;

	/* A failed read zeroes the copy: a tuple of zeros, as failed reads of each field gave. */
	bpf_probe_read_kernel(c, sizeof(c), sk);
	SK_COMMON_FIELD(c, sk, skc_family, t->family);
	t->lport = tcp_local_port(sk);
	SK_COMMON_FIELD(c, sk, skc_dport, dport);
	t->rport = bpf_ntohs(dport);
	if (t->family == AF_INET6) {
		SK_COMMON_FIELD(c, sk, skc_v6_rcv_saddr.in6_u.u6_addr8, t->saddr);
		SK_COMMON_FIELD(c, sk, skc_v6_daddr.in6_u.u6_addr8, t->daddr);
	} else {
		/* Typed as __u32 so exactly 4 bytes are copied. */
		SK_COMMON_FIELD(c, sk, skc_rcv_saddr, *(__u32 *)t->saddr);
		SK_COMMON_FIELD(c, sk, skc_daddr, *(__u32 *)t->daddr);
	}
}

/* Updates *o for sk's change to newstate (netns: sk's netns cookie). Call it for every change
 * that may set the owner: SYN_SENT, LISTEN, FIN_WAIT1, LAST_ACK, SYN_RECV; and LISTEN -> CLOSE,
 * which forgets a listener. */
static __always_inline void owner_update(const struct sock *sk, __u64 netns, int oldstate,
					 int newstate, struct owner_id *o)
{
	struct listen_key k;
	struct owner_id *inherited;
	__u32 tgid;

	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		tgid = current_tgid();
		if (o->pid == tgid && newstate != TCP_LISTEN)
			return; /* the owner already (the common case at close) */
		if (current_is_kthread())
			return;
		o->pid = tgid;
		bpf_get_current_comm(o->comm, sizeof(o->comm));
		if (newstate == TCP_LISTEN) {
			k = listen_key_of(netns, BPF_CORE_READ(sk, __sk_common.skc_num));
			bpf_map_update_elem(&listen_owners, &k, o, BPF_ANY);
		}
		return;
	case TCP_SYN_RECV:
		k = listen_key_of(netns, BPF_CORE_READ(sk, __sk_common.skc_num));
		inherited = bpf_map_lookup_elem(&listen_owners, &k);
		if (inherited)
			*o = *inherited;
		return;
	case TCP_CLOSE:
		if (oldstate == TCP_LISTEN) {
			/* skc_num is 0 by now (the port is released before the state is stored); a
			 * listener's inet_sport still holds it. */
			k = listen_key_of(netns, tcp_local_port(sk));
			bpf_map_delete_elem(&listen_owners, &k);
		}
		return;
	}
}

#endif
