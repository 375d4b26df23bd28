/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPCONG_H
#define NETBPF_TCPCONG_H

#include "common/sock.h"

/* The congestion-control states (enum tcp_ca_state): Open, Disorder, CWR, Recovery, Loss. */
#define TCPCONG_STATES 5

/* One TCP connection that closed: the time it spent in each congestion-control state. */
struct tcpcong_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() at TCP_CLOSE */
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__u64 state_ns[TCPCONG_STATES];
	__u64 life_ns; /* from the first sight (ESTABLISHED, or a state change) to TCP_CLOSE */
	__u32 changes; /* state changes seen */
	__u8 whole; /* 1: seen from ESTABLISHED on; 0: first seen at a state change, already open */
	__u8 pad[3];
};

#endif
