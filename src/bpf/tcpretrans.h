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
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u32 pid; /* the socket's owner, 0 when not known */
	__u32 seq; /* R: TCP_SKB_CB(skb)->seq of the first retransmitted byte; L: snd_nxt after */
	__s32 state;
	__s32 err; /* R: 0 sent; > 0 NET_XMIT_* (e.g. dropped by a local qdisc); < 0 -errno.
		    * L: 1 when the probe resent the last segment, 0 when it sent new data. */
	__u8 kind; /* TCPRETRANS_RETRANSMIT or TCPRETRANS_LOSS_PROBE */
	__u8 pad;
	__u16 segs; /* segments retransmitted (L: 1) */
	char comm[16];
};

/* Count mode (-c): retransmits (or loss probes) per connection, summed in the kernel. */
struct tcpretrans_count_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 kind; /* TCPRETRANS_RETRANSMIT or TCPRETRANS_LOSS_PROBE */
	__u8 pad;
};

struct tcpretrans_count {
	__u64 events; /* retransmit calls (bcc's count) */
	__u64 segs; /* segments they carried (the kernel's RetransSegs) */
};

#endif
