// SPDX-License-Identifier: GPL-2.0
/* nettxlat: device transmit latency, from the hand-off to the driver (net_dev_start_xmit) to the
 * skb being freed as consumed (consume_skb): on a NIC, the TX completion. A new trip down the
 * stack (net_dev_queue) or a drop (kfree_skb) forgets the start, so a recycled skb address never
 * pairs with an old timestamp. */
#include "common/netbpf.bpf.h"
#include "common/netdev.bpf.h"
#include "common/hist.bpf.h"
#include "nettxlat.h"

char LICENSE[] SEC("license") = "GPL";

/* -D: one histogram per transmitting device. */
const volatile bool per_device = false;

struct start {
	__u64 ts_ns;
	struct nettxlat_key key;
};

/* skb -> when and where it was handed to the driver. LRU: skbs freed without consume_skb
 * (untraced frees) age out instead of filling the map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct nettxlat_key);
	__type(value, struct hist);
} latency_us SEC(".maps");

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(nettxlat_start, const struct sk_buff *skb, const struct net_device *dev)
{
	__u64 key = (__u64)skb;
	struct start s = {};

	if (!dev_ok(dev))
		return 0;
	if (!skb_cgroup_ok(skb))
		return 0;
	s.ts_ns = bpf_ktime_get_ns();
	if (per_device)
		bpf_probe_read_kernel_str(s.key.dev, sizeof(s.key.dev), dev->name);
	bpf_map_update_elem(&starts, &key, &s, BPF_ANY);
	return 0;
}

SEC("tp_btf/consume_skb")
int BPF_PROG(nettxlat_done, struct sk_buff *skb, void *location)
{
	__u64 key = (__u64)skb;
	struct start *s = bpf_map_lookup_elem(&starts, &key);

	if (!s)
		return 0;
	hist_map_add(&latency_us, &s->key, (bpf_ktime_get_ns() - s->ts_ns) / 1000);
	bpf_map_delete_elem(&starts, &key);
	return 0;
}

static __always_inline void forget(const struct sk_buff *skb)
{
	__u64 key = (__u64)skb;

	/* Most skbs have no entry: a lookup is lock-free, a delete takes the LRU's bucket lock. */
	if (bpf_map_lookup_elem(&starts, &key))
		bpf_map_delete_elem(&starts, &key);
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(nettxlat_requeue, struct sk_buff *skb)
{
	forget(skb);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(nettxlat_drop, struct sk_buff *skb)
{
	forget(skb);
	return 0;
}
