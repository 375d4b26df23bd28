// SPDX-License-Identifier: GPL-2.0
/* tcpdrop: TCP packets the kernel drops, with the drop reason and the kernel stack.
 *
 * skb:kfree_skb fires for every freed skb that was not consumed normally (consume_skb has its
 * own event), with an enum skb_drop_reason. Plain kfree_skb() calls say NOT_SPECIFIED and are
 * mostly not drops worth a look, so only reasons above it are reported (where the kernel gives
 * reasons: 5.17+). The packet must look like TCP over IPv4/IPv6 in its headers. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/tcp_packet.bpf.h"
#include "common/drop_reason.bpf.h"
#include "tcpdrop.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpdrop_event);

/* Routine reasons (normal teardown, not loss: core::drop_reason::ROUTINE), one bit per value,
 * set by user space unless --all-reasons. Their drops are counted, not sent: no stack walk, no
 * record. */
const volatile __u64 routine_reasons[TCPDROP_ROUTINE_MAX / 64] = {};
/* Drops hidden as routine, per reason: read at exit for the summary. */
__u64 routine_hidden[TCPDROP_ROUTINE_MAX] = {};

static __always_inline bool hidden_as_routine(__u32 reason)
{
	__u32 slot = reason;

	if (slot >= TCPDROP_ROUTINE_MAX)
		return false;
	/* The bound must hold on the register that indexes (clang may index with a copy). */
	barrier_var(slot);
	slot &= TCPDROP_ROUTINE_MAX - 1;
	if (!(routine_reasons[slot / 64] & (1ULL << (slot % 64))))
		return false;
	__sync_fetch_and_add(&routine_hidden[slot], 1);
	return true;
}

static __always_inline __u64 drop_netns(const struct sk_buff *skb, const struct sock *sk)
{
	__u64 netns = skb_dev_netns(skb);

	if (netns)
		return netns;
	return sk ? sk_netns_id(sk) : 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(tcpdrop_kfree_skb, struct sk_buff *skb, void *location)
{
	__u32 reason = kfree_skb_reason(ctx);
	const unsigned char *head, *data, *nh;
	struct tcpdrop_event *e;
	struct tcp_packet p;
	struct sock *sk;
	__u16 proto;
	__u32 len;

	/* Without reasons (before 5.17) every kfree_skb of a TCP packet is shown. */
	if (kfree_skb_has_reason() &&
	    reason <= bpf_core_enum_value(enum skb_drop_reason, SKB_DROP_REASON_NOT_SPECIFIED))
		return 0;
	proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	if (proto != ETH_P_IP && proto != ETH_P_IPV6)
		return 0;
	head = BPF_CORE_READ(skb, head);
	data = BPF_CORE_READ(skb, data);
	len = BPF_CORE_READ(skb, len);
	nh = head + BPF_CORE_READ(skb, network_header);
	/* An unset network header is 0 (head): it must lie within the packet. */
	if (nh <= head || nh > data + len)
		return 0;
	if (!parse_tcp_packet(nh, 0, &p) || !family_ok(p.family))
		return 0;

	sk = BPF_CORE_READ(skb, sk);
	/* Since 6.11 the receive path passes the socket it found (skb->sk is not set yet). */
	if (!sk && bpf_core_field_exists(struct trace_event_raw_kfree_skb, rx_sk))
		sk = (struct sock *)ctx[3];
	if (!netns_ok(drop_netns(skb, sk)))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0; /* the packet's socket: drops without one belong to no container */
	if (hidden_as_routine(reason))
		return 0;

	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->cgroup = sk_cgroup_id(sk);
	__builtin_memcpy(e->saddr, p.saddr, 16);
	__builtin_memcpy(e->daddr, p.daddr, 16);
	e->family = p.family;
	e->sport = p.sport;
	e->dport = p.dport;
	e->flags = p.flags;
	e->state = sk ? BPF_CORE_READ(sk, __sk_common.skc_state) : 0;
	e->reason = reason;
	e->pid = current_tgid();
	e->ts_ns = bpf_ktime_get_ns();
	/* Fills the unused tail (or all of it, on failure) with zeros. */
	bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
	submit_event(e);
	return 0;
}
