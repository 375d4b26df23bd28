// SPDX-License-Identifier: GPL-2.0
/* tcpsynbl: the listen backlog (accept queue length) each time a handshake completes, as log2
 * histograms keyed by the backlog limit, and a record each time one is dropped because the queue
 * is full.
 *
 * The child socket is cloned from its listener when the handshake's final ACK arrives, and the
 * clone enters SYN_RECV right away: at that moment its sk_ack_backlog and sk_max_ack_backlog are
 * still the listener's, copied by the clone. A full queue makes the kernel refuse the child
 * before cloning and free the ACK with reason TCP_LISTEN_OVERFLOW, the listener as rx_sk. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "common/export.bpf.h"
#include "tcpsynbl.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpsynbl_drop);

/* backlog limit -> histogram of the backlog */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct hist);
} backlog SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tcpsynbl_child, struct sock *sk, int oldstate, int newstate)
{
	__u64 max;

	if (newstate != TCP_SYN_RECV || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	if (!netns_ok(sk_netns_cookie(sk)) || !family_ok(BPF_CORE_READ(sk, __sk_common.skc_family)))
		return 0;
	max = BPF_CORE_READ(sk, sk_max_ack_backlog);
	/* Exporter mode (common/export.bpf.h): histogram 0 by backlog limit; the port label is the
	 * listener's port, which the child still has. */
	if (export_mode) {
		export_hist_add(0, max, BPF_CORE_READ(sk, __sk_common.skc_num), BPF_CORE_READ(sk, sk_ack_backlog));
		return 0;
	}
	hist_map_add(&backlog, &max, BPF_CORE_READ(sk, sk_ack_backlog));
	return 0;
}

/* kfree_skb has an rx_sk argument on recent kernels (user space checks BTF); without it the
 * listener is unknown and the namespace comes from the receiving device. */
const volatile bool kfree_has_rx_sk = true;

SEC("tp_btf/kfree_skb")
int BPF_PROG(tcpsynbl_overflow, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct sock *listener = NULL;
	struct tcpsynbl_drop *e;
	__u64 netns;
	__u16 family = 0;

	if (!bpf_core_enum_value_exists(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW) ||
	    reason != bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_TCP_LISTEN_OVERFLOW))
		return 0;
	if (kfree_has_rx_sk)
		listener = (struct sock *)ctx[3];
	if (listener) {
		netns = sk_netns_cookie(listener);
		family = BPF_CORE_READ(listener, __sk_common.skc_family);
	} else {
		netns = BPF_CORE_READ(skb, dev, nd_net.net, net_cookie);
	}
	if (!netns_ok(netns) || (listener && !family_ok(family)))
		return 0;
	/* Exporter mode: drops counted (metric 0); the port label is the listener's port, 0 when
	 * the kernel does not name the listener. */
	if (export_mode) {
		export_count(0, 0, listener ? BPF_CORE_READ(listener, __sk_common.skc_num) : 0, 1);
		return 0;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	if (listener) {
		e->family = family;
		e->lport = BPF_CORE_READ(listener, __sk_common.skc_num);
		if (family == AF_INET6)
			BPF_CORE_READ_INTO(&e->laddr, listener,
					   __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		else
			BPF_CORE_READ_INTO((__u32 *)e->laddr, listener, __sk_common.skc_rcv_saddr);
		e->backlog = BPF_CORE_READ(listener, sk_ack_backlog);
		e->max_backlog = BPF_CORE_READ(listener, sk_max_ack_backlog);
	}
	submit_event(e);
	return 0;
}
