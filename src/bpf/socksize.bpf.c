// SPDX-License-Identifier: GPL-2.0
/* socksize: log2 histograms of the bytes each socket send/receive call moved, per process name
 * and direction, built in the kernel. Only calls that moved data (result > 0) are counted.
 *
 * One plan's programs are loaded:
 * - tp_btf sock_send_length / sock_recv_length (6.3+): the result of every sendmsg/recvmsg a
 *   socket gets, with the socket (so --netns is the socket's namespace);
 * - fexit, or kprobes and kretprobes, around sock_sendmsg() / sock_recvmsg() on older kernels:
 *   the same messages and results, with the socket, as common/sockmsg.bpf.h explains. */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "common/export.bpf.h"
#include "common/sockmsg.bpf.h"
#include "socksize.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct socksize_key);
	__type(value, struct hist);
} sizes SEC(".maps");

/* Cheap tests first: the netns cookie costs a few reads per call. */
static __always_inline bool wanted(long ret)
{
	return ret > 0 && tgid_ok(current_tgid());
}

static __always_inline void add_size(__u64 netns, long ret, __u32 dir)
{
	struct socksize_key key = {};

	if (!netns_ok(netns))
		return;
	/* Exporter mode (common/export.bpf.h): one histogram per direction, not per process. */
	if (export_mode) {
		export_hist_add(0, dir, 0, ret);
		return;
	}
	key.dir = dir;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	hist_map_add(&sizes, &key, ret);
}

static __always_inline __u64 netns_of(struct sock *sk)
{
	return filter_netns && sk ? sk_netns_id(sk) : 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(socksize_send, struct sock *sk, int ret, int flags)
{
	if (wanted(ret) && sk_cgroup_ok(sk))
		add_size(netns_of(sk), ret, SOCKSIZE_WRITE);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(socksize_recv, struct sock *sk, int ret, int flags)
{
	if (wanted(ret) && sk_cgroup_ok(sk))
		add_size(netns_of(sk), ret, SOCKSIZE_READ);
	return 0;
}

/* Plans fexit and kretprobe (before 6.3): see common/sockmsg.bpf.h. */
static __always_inline void sockmsg_seen(struct sock *sk, long ret, __u32 dir)
{
	if (wanted(ret) && sk_cgroup_ok(sk))
		add_size(netns_of(sk), ret, dir == SOCKMSG_SEND ? SOCKSIZE_WRITE : SOCKSIZE_READ);
}
