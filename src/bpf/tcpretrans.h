/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPRETRANS_H
#define NETBPF_TCPRETRANS_H

#include "common/sock.h"

#define TCPRETRANS_RETRANSMIT 'R'
#define TCPRETRANS_LOSS_PROBE 'L'
/* Segments a socket counted as retransmitted (tcp_sock.total_retrans) beyond the events this
 * tool was handed for it: the kernel did not run the tool's program for some tracepoint hits
 * (seen on a 6.18 guest, with no recursion miss counted), or, before 6.15, the retransmit failed
 * and the tracepoint did not fire. Found at the socket's next retransmit or state change. */
#define TCPRETRANS_UNSEEN 'U'

/* One retransmitted segment, or one tail loss probe (-l). */
struct tcpretrans_event {
	struct sock_tuple tuple;
	__u64 ts_ns;
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u32 pid; /* the socket's owner, 0 when not known */
	__u32 seq; /* R: TCP_SKB_CB(skb)->seq of the first retransmitted byte; L: snd_nxt after;
		    * U: 0 */
	__s32 state;
	__s32 err; /* R: 0 sent; > 0 NET_XMIT_* (e.g. dropped by a local qdisc); < 0 -errno.
		    * L: 1 when the probe resent the last segment, 0 when it sent new data. */
	__u8 kind; /* TCPRETRANS_RETRANSMIT, TCPRETRANS_LOSS_PROBE or TCPRETRANS_UNSEEN */
	__u8 pad;
	__u16 segs; /* segments retransmitted (L: 1; U: those not seen) */
	char comm[16];
};

/* Count mode (-c): retransmits (or loss probes) per connection, summed in the kernel. */
struct tcpretrans_count_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 kind; /* TCPRETRANS_RETRANSMIT, TCPRETRANS_LOSS_PROBE or TCPRETRANS_UNSEEN */
	__u8 pad;
};

struct tcpretrans_count {
	__u64 events; /* retransmit calls (bcc's count) */
	__u64 segs; /* segments they carried (the kernel's RetransSegs) */
};

#endif
