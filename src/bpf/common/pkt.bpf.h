/* SPDX-License-Identifier: GPL-2.0 */
/* Reading packets from an sk_buff in the net: tracepoints: the device's netns and name, and the
 * IPv4/IPv6 header parsed from raw bytes (wire formats are fixed, so no CO-RE is needed for them).
 *
 * Where the network header starts depends on the hook: on receive (net:netif_receive_skb) the
 * link-layer header has been pulled and skb->data points at it, while network_header may not be
 * reset yet; on transmit (net:net_dev_queue) skb->data points at the link-layer header if any,
 * and skb->head + network_header is the IP header. */
#ifndef NETBPF_PKT_BPF_H
#define NETBPF_PKT_BPF_H

#include "common/netdev.bpf.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_ICMPV6_NR 58
#define IPPROTO_FRAGMENT_NR 44

/* The IP header of a packet, in the fields the tools need. Addresses in network byte order;
 * IPv4 addresses in the first 4 bytes. */
struct l3_hdr {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;	/* AF_INET or AF_INET6; 0 when not IP */
	__u8 proto;	/* IPv4 protocol or IPv6 next header */
	__u8 dsfield;	/* IPv4 TOS or IPv6 traffic class: DSCP << 2 | ECN */
	__u16 hdr_len;	/* bytes to the transport header (of IPv6 extension headers, only a
			 * Fragment header right after the fixed header is walked) */
	__u16 frag_off;	/* fragment offset (8-byte units); 0 when not a fragment, or the first */
};

static __always_inline void dev_name(const struct net_device *dev, char name[IFNAMSIZ])
{
	bpf_core_read_str(name, IFNAMSIZ, &dev->name);
}

/* Parses the IP header at kernel address l3. ethertype is skb->protocol (network byte order),
 * which must agree with the version nibble. Returns false when it is not IPv4/IPv6 or
 * unreadable. */
static __always_inline bool parse_l3(const void *l3, __be16 ethertype, struct l3_hdr *h)
{
	__u8 b[40];

	h->family = 0;
	if (ethertype == bpf_htons(ETH_P_IP)) {
		if (bpf_probe_read_kernel(b, 20, l3) || (b[0] >> 4) != 4)
			return false;
		h->family = AF_INET;
		h->dsfield = b[1];
		h->proto = b[9];
		h->hdr_len = (b[0] & 0x0f) * 4;
		h->frag_off = ((b[6] << 8) | b[7]) & 0x1fff;
		__builtin_memset(h->saddr, 0, sizeof(h->saddr));
		__builtin_memset(h->daddr, 0, sizeof(h->daddr));
		__builtin_memcpy(h->saddr, &b[12], 4);
		__builtin_memcpy(h->daddr, &b[16], 4);
		return h->hdr_len >= 20;
	}
	if (ethertype == bpf_htons(ETH_P_IPV6)) {
		if (bpf_probe_read_kernel(b, 40, l3) || (b[0] >> 4) != 6)
			return false;
		h->family = AF_INET6;
		h->dsfield = (b[0] << 4) | (b[1] >> 4);
		h->proto = b[6];
		h->hdr_len = 40;
		h->frag_off = 0;
		__builtin_memcpy(h->saddr, &b[8], 16);
		__builtin_memcpy(h->daddr, &b[24], 16);
		/* A fragment (e.g. ping -6 -s 3000): the Fragment header says what follows and
		 * where this piece sits. */
		if (h->proto == IPPROTO_FRAGMENT_NR && !bpf_probe_read_kernel(b, 8, l3 + 40)) {
			h->proto = b[0];
			h->hdr_len = 48;
			h->frag_off = ((b[2] << 8) | b[3]) >> 3;
		}
		return true;
	}
	return false;
}

/* The IP header of a received packet (net:netif_receive_skb). */
static __always_inline bool skb_rx_l3(const struct sk_buff *skb, struct l3_hdr *h)
{
	return parse_l3(BPF_CORE_READ(skb, data), BPF_CORE_READ(skb, protocol), h);
}

static __always_inline const void *skb_rx_l3_ptr(const struct sk_buff *skb)
{
	return BPF_CORE_READ(skb, data);
}

/* The IP header of a packet being sent (net:net_dev_queue). */
static __always_inline const void *skb_tx_l3_ptr(const struct sk_buff *skb)
{
	return BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header);
}

static __always_inline bool skb_tx_l3(const struct sk_buff *skb, struct l3_hdr *h)
{
	return parse_l3(skb_tx_l3_ptr(skb), BPF_CORE_READ(skb, protocol), h);
}

#endif
