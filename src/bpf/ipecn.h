/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_IPECN_H
#define NETBPF_IPECN_H

/* One received IP packet marked ECN Congestion Experienced. Addresses in network byte order,
 * IPv4 in the first 4 bytes. */
struct ipecn_event {
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 ts_ns;
	__u32 ifindex;
	__u16 family;
	__u8 proto;    /* IPv4 protocol / IPv6 next header */
	__u8 dsfield;  /* the whole TOS / traffic class byte */
	char ifname[16];
	__u64 cgroup; /* cgroup v2 id, the packet's socket's (0: none) */
};

#endif
