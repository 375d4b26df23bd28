/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_TCPTRACER_H
#define NETBPF_TCPTRACER_H

#include "common/sock.h"

/* tcptracer_event.type */
#define TCPTRACER_CONNECT 1 /* an active open reached ESTABLISHED */
#define TCPTRACER_ACCEPT 2 /* a passive open reached ESTABLISHED */
#define TCPTRACER_CLOSE 3 /* an established connection reached CLOSE */

struct tcptracer_event {
	struct sock_tuple tuple;
	__u64 ts_ns; /* bpf_ktime_get_ns() at the state change */
	__u64 netns_cookie;
	__u32 netns_ino;
	__u32 pid; /* the socket's owner: the connecting, listening or closing process */
	__u32 type; /* TCPTRACER_* */
	char comm[16];
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
};

#endif
