/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPSTATES_H
#define NETBPF_TCPSTATES_H

#include "common/sock.h"

/* One TCP state change. */
struct tcpstates_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() of the event */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 skaddr;
	__u64 prev_state_ns; /* time spent in oldstate; 0 when not seen before */
	__u32 cpid; /* task on CPU (may be unrelated in softirq) */
	__u32 pid; /* owner, 0 when unknown */
	char ccomm[16];
	char comm[16];
	__s32 oldstate;
	__s32 newstate;
};

/* Exporter mode: transitions counted per (old, new) at index old * TCP_STATE_SLOTS + new. */
#define TCP_STATE_SLOTS 16

#endif
