/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPRETRANS_H
#define NETBPF_TCPRETRANS_H

#include "common/sock.h"

#define TCPRETRANS_RETRANSMIT 'R'
#define TCPRETRANS_LOSS_PROBE 'L'

/* One retransmitted segment, or one tail loss probe (-l). */
struct tcpretrans_event {
	struct sock_tuple tuple;
	__u64 ts_ns;
	__u32 pid; /* the socket's owner, 0 when not known */
	__u32 seq; /* TCP_SKB_CB(skb)->seq of the first retransmitted byte (R only) */
	__s32 state;
	__s32 err; /* 0 sent; > 0 NET_XMIT_* (e.g. dropped by a local qdisc); < 0 -errno */
	__u8 kind; /* TCPRETRANS_RETRANSMIT or TCPRETRANS_LOSS_PROBE */
	__u8 pad;
	__u16 segs; /* segments retransmitted (R only) */
	char comm[16];
};

/* Count mode (-c): retransmits per connection, summed in the kernel. */
struct tcpretrans_count_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 pad;
};

#endif
