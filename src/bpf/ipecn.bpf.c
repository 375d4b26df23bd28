// SPDX-License-Identifier: GPL-2.0
/* ipecn: received IPv4/IPv6 packets whose ECN field says Congestion Experienced.
 *
 * net:netif_receive_skb fires in __netif_receive_skb_core for every received packet, on both the
 * one-skb and the list (GRO/NAPI batch) receive paths; ip_rcv, which the book probed, is skipped
 * by the list path (ip_list_rcv). The IP header is at skb->data there.
 *
 * A packet arriving on a bridge port (or an Open vSwitch port) is not the stack's yet: the
 * bridge hands it up again through its own device (br_pass_frame_up -> netif_receive_skb on
 * br0), where it is reported; reporting it on the port too would show every packet twice.
 * Bonds, teams, macvlans and VLANs pass packets on within the same receive call, so those are
 * seen once, on the device they arrived on. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/pkt.bpf.h"
#include "ipecn.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(ipecn_event);

#define ECN_MASK 3
#define ECN_CE 3

static __always_inline bool handed_up_again(const struct net_device *dev)
{
	__u64 priv = BPF_CORE_READ_BITFIELD_PROBED(dev, priv_flags);

	return priv & (bpf_core_enum_value(enum netdev_priv_flags, IFF_BRIDGE_PORT) |
		       bpf_core_enum_value(enum netdev_priv_flags, IFF_OVS_DATAPATH));
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(ipecn_receive, struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct ipecn_event *e;
	struct l3_hdr h;

	if (!skb_rx_l3(skb, &h) || (h.dsfield & ECN_MASK) != ECN_CE || !family_ok(h.family))
		return 0;
	if (!dev_netns_ok(dev) || handed_up_again(dev))
		return 0;
	if (!skb_cgroup_ok(skb))
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memcpy(e->saddr, h.saddr, sizeof(e->saddr));
	__builtin_memcpy(e->daddr, h.daddr, sizeof(e->daddr));
	e->ts_ns = bpf_ktime_get_ns();
	e->ifindex = BPF_CORE_READ(dev, ifindex);
	e->family = h.family;
	e->proto = h.proto;
	e->dsfield = h.dsfield;
	dev_name(dev, e->ifname);
	e->cgroup = pkt_cgroup_id(skb);
	submit_event(e);
	return 0;
}
