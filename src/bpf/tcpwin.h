/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPWIN_H
#define NETBPF_TCPWIN_H

#include "common/sock.h"

/* A socket's congestion and send-buffer state when a segment arrives on it. */
struct tcpwin_event {
	struct sock_tuple tuple;
	__u64 skaddr;
	__u64 ts_ns;
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u32 snd_cwnd; /* packets */
	__u32 snd_ssthresh; /* packets; 0x7fffffff until the first loss */
	__s32 sk_sndbuf; /* bytes */
	__s32 sk_wmem_queued; /* bytes */
	__u64 conn_start_ns; /* when this connection began (its SYN, or its first sample): with
			      * skaddr, which the kernel reuses, it names the connection */
};

#endif
