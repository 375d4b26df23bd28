/* SPDX-License-Identifier: GPL-2.0 */
#ifndef NETBPF_SORMEM_H
#define NETBPF_SORMEM_H

#include "common/hist.h"
#include "common/sock.h"

/* Keys of the hists map. */
#define SORMEM_HIST_RMEM_ALLOC 0
#define SORMEM_HIST_RMEM_LIMIT 1

/* Event kinds. */
#define SORMEM_RCVQUEUE_FULL 1 /* sock:sock_rcvqueue_full */
#define SORMEM_EXCEED_BUF_LIMIT 2 /* sock:sock_exceed_buf_limit */
#define SORMEM_UDP_FAIL_QUEUE 3 /* udp:udp_fail_queue_rcv_skb */

/* One receive-buffer overflow (or protocol memory limit hit) on a socket. */
struct sormem_event {
	struct sock_tuple tuple; /* addresses and ports for inet sockets; else family only */
	__u64 ts_ns;
	__u64 cgroup; /* cgroup v2 id, the socket's (0: none) */
	__s64 allocated; /* exceed_buf_limit: pages the protocol has allocated */
	__u32 kind;
	__s32 rmem_alloc; /* bytes queued for reading (sk_rmem_alloc) */
	__s32 rcvbuf; /* the limit (sk_rcvbuf) */
	__u32 truesize; /* rcvqueue_full: memory the dropped packet needed */
	__s32 mem_kind; /* exceed_buf_limit: 0 send, 1 receive */
	__s32 rc; /* udp: the error that dropped the packet */
	__s32 wmem_queued; /* exceed_buf_limit: bytes queued for sending */
	__u32 pid; /* the task running when it happened (often not the owner: softirq) */
	char comm[16];
	char proto[32];
};

#endif
