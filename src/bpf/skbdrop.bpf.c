// SPDX-License-Identifier: GPL-2.0
/* skbdrop: sk_buff drops (skb:kfree_skb), counted in the kernel per drop reason (5.17+) and kernel
 * stack. Consumed skbs go through consume_skb instead and are not counted. */
#include "common/netbpf.bpf.h"
#include "common/netdev.bpf.h"
#include "common/sock.bpf.h"
#include "common/maps.bpf.h"
#include "common/drop_reason.bpf.h"
#include "common/export.bpf.h"
#include "skbdrop.h"

char LICENSE[] SEC("license") = "GPL";

#define STACK_DEPTH 127

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 4096);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct skbdrop_key);
	__type(value, __u64);
} drops SEC(".maps");

/* Read at exit: with --netns, drops of skbs with neither a device nor a socket (their namespace is
 * unknown, so they were not counted). */
__u64 netns_unknown = 0;

/* Whether the skb belongs to the --netns namespace: its device's, or its socket's. On a socket's
 * queue skb->dev is overlaid: UDP keeps scratch data there (not a kernel address: kernel
 * addresses have the top bit set), TCP's out-of-order and retransmit queues the links of their
 * rbtree (pointers, but TCP's queued skbs have their socket in skb->sk). So a device that does
 * not match is no proof, and the socket is asked too (the reads are probe reads, safe on
 * whatever the field holds). A UDP datagram purged from the queue of a closing socket has
 * neither (UDP does not set skb->sk on queued skbs): its namespace is unknown, and counted as
 * such. The tracepoint's rx_sk argument (6.12+) is not used, so the program loads on every
 * kernel with drop reasons (5.17+); the drops it names a socket for (sk_skb_reason_drop with
 * a socket) happen before queueing, where the device is still valid. */
static __always_inline bool skb_in_netns(const struct sk_buff *skb)
{
	const struct net_device *dev = BPF_CORE_READ(skb, dev);
	const struct sock *sk = BPF_CORE_READ(skb, sk);

	if ((__s64)dev >= 0)
		dev = NULL;
	if (!dev && !sk) {
		__sync_fetch_and_add(&netns_unknown, 1);
		return false;
	}
	if (dev && dev_netns_id(dev) == filter_netns)
		return true;
	return sk && sk_netns_id(sk) == filter_netns;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(skbdrop_kfree, struct sk_buff *skb, void *location)
{
	__u32 reason = kfree_skb_reason(ctx);
	struct skbdrop_key key = {};

	if (filter_netns && !skb_in_netns(skb))
		return 0;
	if (!skb_cgroup_ok(skb))
		return 0;
	if (filter_ifname[0] && !ifname_ok(BPF_CORE_READ(skb, dev)))
		return 0;
	/* Exporter mode (common/export.bpf.h): drops by reason only (metric 0), no stack walk. */
	if (export_mode) {
		export_count(0, reason, 0, 1);
		return 0;
	}
	key.reason = reason;
	key.stack_id = bpf_get_stackid(ctx, &stacks, 0);
	counter_add(&drops, &key, 1);
	return 0;
}
