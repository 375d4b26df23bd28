/* SPDX-License-Identifier: GPL-2.0 */
/* Reading the IPv4/IPv6 and TCP headers of a packet in an sk_buff (tcpsnoop, tcpdrop).
 *
 * All reads are probe reads: an skb seen at a tracepoint may be mid-construction or, on a drop,
 * half-parsed, so a failed read or a header that does not look like IP+TCP yields false. IPv6
 * extension headers are not walked: a TCP segment behind one is not recognized. */
#ifndef NETBPF_TCP_PACKET_BPF_H
#define NETBPF_TCP_PACKET_BPF_H

#include "common/netns.bpf.h"

#ifndef ETH_P_IP
#define ETH_P_IP 0x0800
#endif
#ifndef ETH_P_IPV6
#define ETH_P_IPV6 0x86DD
#endif

/* TCP header flag bits (byte 13). */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20
#define TH_ECE 0x40
#define TH_CWR 0x80

/* One TCP segment, addresses as on the wire: source -> destination. */
struct tcp_packet {
	__u8 saddr[16]; /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 family;
	__u16 sport; /* host order */
	__u16 dport;
	__u8 flags;
	__u8 pad;
	__u32 ip_len; /* IP header + TCP header + payload */
	__u32 payload; /* TCP payload bytes */
};

/* The network namespace a packet is in: its device's, or, when skb->dev is not set (TCP clears
 * it on the way in on recent kernels), its route's device's; 0 when neither is known. */
static __always_inline __u64 skb_dev_netns(const struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	struct dst_entry *dst;

	if (!dev) {
		dst = (struct dst_entry *)(BPF_CORE_READ(skb, _skb_refdst) & ~1UL);
		if (dst)
			dev = BPF_CORE_READ(dst, dev);
	}
	return dev_netns_id(dev);
}

/* Parses the packet whose IP header starts at nh. `avail` is the number of bytes from nh to the
 * end of the packet as the skb holds it: used when the IP header carries no length (IPv4 or IPv6
 * "BIG TCP" super-packets); pass 0 when unknown. Returns false unless it is a first (or only)
 * fragment of a TCP segment. */
static __always_inline bool parse_tcp_packet(const unsigned char *nh, __u32 avail, struct tcp_packet *p)
{
	__u8 ip[40];
	__u8 th[20];
	__u32 iphl, thl;

	if (!nh || bpf_probe_read_kernel(ip, 20, nh))
		return false;
	__builtin_memset(p, 0, sizeof(*p));
	switch (ip[0] >> 4) {
	case 4:
		iphl = (ip[0] & 0x0f) * 4;
		/* protocol, then fragment offset (not the first fragment: no TCP header here) */
		if (iphl < 20 || ip[9] != IPPROTO_TCP || (((ip[6] & 0x1f) << 8) | ip[7]))
			return false;
		p->family = AF_INET;
		p->ip_len = (ip[2] << 8) | ip[3];
		__builtin_memcpy(p->saddr, &ip[12], 4);
		__builtin_memcpy(p->daddr, &ip[16], 4);
		break;
	case 6:
		if (bpf_probe_read_kernel(ip, 40, nh) || ip[6] != IPPROTO_TCP)
			return false;
		iphl = 40;
		p->family = AF_INET6;
		p->ip_len = (ip[4] << 8) | ip[5];
		if (p->ip_len)
			p->ip_len += 40;
		__builtin_memcpy(p->saddr, &ip[8], 16);
		__builtin_memcpy(p->daddr, &ip[24], 16);
		break;
	default:
		return false;
	}
	if (!p->ip_len)
		p->ip_len = avail;
	if (bpf_probe_read_kernel(th, sizeof(th), nh + iphl))
		return false;
	p->sport = (th[0] << 8) | th[1];
	p->dport = (th[2] << 8) | th[3];
	thl = (th[12] >> 4) * 4;
	p->flags = th[13];
	p->payload = p->ip_len > iphl + thl ? p->ip_len - iphl - thl : 0;
	return thl >= 20;
}

#endif
