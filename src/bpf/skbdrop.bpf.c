// SPDX-License-Identifier: GPL-2.0
/* skbdrop: sk_buff drops (skb:kfree_skb), counted in the kernel per drop reason and kernel stack.
 * Consumed skbs go through consume_skb instead and are not counted. */
#include "common/netbpf.bpf.h"
#include "common/netdev.bpf.h"
#include "common/sock.bpf.h"
#include "common/maps.bpf.h"
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

/* Where the skb belongs: its device, else its socket (0: unknown). The tracepoint's rx_sk argument
 * (6.12+) is not used, so the program loads on every kernel with drop reasons (5.17+). */
static __always_inline __u64 skb_netns_cookie(const struct sk_buff *skb)
{
	const struct net_device *dev = BPF_CORE_READ(skb, dev);
	const struct sock *sk;

	if (dev)
		return dev_netns_cookie(dev);
	sk = BPF_CORE_READ(skb, sk);
	return sk ? sk_netns_cookie(sk) : 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(skbdrop_kfree, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	struct skbdrop_key key = {};

	if (filter_netns && skb_netns_cookie(skb) != filter_netns)
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
