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

/* The namespace of a packet whose skb has `dev` and `refdst` (_skb_refdst): its device's, or,
 * when skb->dev is not set (TCP clears it on the way in on recent kernels), its route's
 * device's; 0 when neither is known. */
static __always_inline __u64 dev_or_dst_netns(struct net_device *dev, unsigned long refdst)
{
	struct dst_entry *dst;

	if (!dev) {
		dst = (struct dst_entry *)(refdst & ~1UL);
		if (dst)
			dev = BPF_CORE_READ(dst, dev);
	}
	return dev_netns_id(dev);
}

/* The network namespace a packet is in (dev_or_dst_netns). */
static __always_inline __u64 skb_dev_netns(const struct sk_buff *skb)
{
	struct net_device *dev = BPF_CORE_READ(skb, dev);

	return dev_or_dst_netns(dev, dev ? 0 : BPF_CORE_READ(skb, _skb_refdst));
}

/* The sk_buff fields a tool that reads every packet needs, copied by skb_read_fields(). */
struct skb_fields {
	struct sock *sk;
	struct net_device *dev;
	unsigned long refdst; /* _skb_refdst */
	const unsigned char *head;
	const unsigned char *data;
	__u32 len;
	__u16 protocol; /* host order */
	__u16 network_header;
};

/* The skb's first bytes, which hold every field of struct skb_fields (on 6.18 they end at 208,
 * with skb->data). */
#define SKB_FIELDS_BYTES 224
#define SKB_FIELD(buf, skb, f, dst) COPIED_FIELD(struct sk_buff, buf, SKB_FIELDS_BYTES, skb, f, dst)

/* Reads skb's fields with one probe read of its start instead of one per field (seven probe
 * reads were a third of tcpsnoop's cost per packet). False when the skb cannot be read. */
static __always_inline bool skb_read_fields(const struct sk_buff *skb, struct skb_fields *f)
{
	unsigned char buf[SKB_FIELDS_BYTES];

	if (bpf_probe_read_kernel(buf, sizeof(buf), skb))
		return false;
	SKB_FIELD(buf, skb, sk, f->sk);
	SKB_FIELD(buf, skb, dev, f->dev);
	SKB_FIELD(buf, skb, _skb_refdst, f->refdst);
	SKB_FIELD(buf, skb, head, f->head);
	SKB_FIELD(buf, skb, data, f->data);
	SKB_FIELD(buf, skb, len, f->len);
	SKB_FIELD(buf, skb, protocol, f->protocol);
	SKB_FIELD(buf, skb, network_header, f->network_header);
	f->protocol = bpf_ntohs(f->protocol);
	return true;
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
