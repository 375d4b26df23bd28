/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPLIFE_H
#define NETBPF_TCPLIFE_H

#include "common/sock.h"
#include "common/hist.h"

/* One closed TCP session. */
struct tcplife_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() of the event */
	__u64 span_ns;
	__u64 tx_bytes; /* payload bytes sent and acknowledged */
	__u64 rx_bytes; /* payload bytes received */
	__u32 pid;
	char comm[16];
};

/* Exporter mode: sessions summed in the kernel per family (index 0 IPv4, 1 IPv6). */
struct tcplife_totals {
	struct hist span_us; /* log2 histogram of lifespans in microseconds */
	__u64 span_us_sum;
	__u64 sessions;
	__u64 tx_bytes;
	__u64 rx_bytes;
};

#endif
