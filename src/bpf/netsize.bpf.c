// SPDX-License-Identifier: GPL-2.0
/* netsize: sizes of packets crossing the device layer, as log2 histograms, at four points:
 * handed to the stack (netif_receive_skb), handed down by the stack (net_dev_queue), received by a
 * driver through NAPI/GRO (napi_gro_receive_entry) and passed to a driver (net_dev_xmit). Sizes
 * are skb->len, as the tracepoints record it: the send side sees GSO super-packets, the receive
 * side GRO-merged ones. */
#include "common/netbpf.bpf.h"
#include "common/netdev.bpf.h"
#include "common/hist.bpf.h"
#include "netsize.h"

char LICENSE[] SEC("license") = "GPL";

/* One histogram per point; per-CPU, so the hot path needs no atomic operation. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETSIZE_POINTS);
	__type(key, __u32);
	__type(value, struct hist);
} sizes SEC(".maps");

static __always_inline void count(__u32 point, const struct sk_buff *skb,
				  const struct net_device *dev, __u32 len)
{
	struct hist *h;

	if (!dev_ok(dev))
		return;
	if (!skb_cgroup_ok(skb))
		return;
	h = bpf_map_lookup_elem(&sizes, &point);
	if (h)
		h->slots[hist_slot(len)]++;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(netsize_recv, struct sk_buff *skb)
{
	count(NETSIZE_RECV, skb, skb->dev, skb->len);
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(netsize_send, struct sk_buff *skb)
{
	count(NETSIZE_SEND, skb, skb->dev, skb->len);
	return 0;
}

SEC("tp_btf/napi_gro_receive_entry")
int BPF_PROG(netsize_nic_recv, const struct sk_buff *skb)
{
	count(NETSIZE_NIC_RECV, skb, skb->dev, skb->len);
	return 0;
}

/* The skb may be gone once the driver returns: the length comes as an argument. */
SEC("tp_btf/net_dev_xmit")
int BPF_PROG(netsize_nic_send, struct sk_buff *skb, int rc, struct net_device *dev, unsigned int len)
{
	/* The skb may be freed: read only with the filter set, on transmit while it holds its socket. */
	count(NETSIZE_NIC_SEND, skb, dev, len);
	return 0;
}
