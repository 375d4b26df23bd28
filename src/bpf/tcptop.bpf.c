// SPDX-License-Identifier: GPL-2.0
/* tcptop: TCP payload bytes sent and received per process and connection, summed in the kernel.
 *
 * sock_send_length / sock_recv_length fire once per socket call with its return value, in the
 * caller's context, so the process is the real one and every byte is counted once (a received
 * byte is counted when recvmsg() hands it over, never again when the window is updated).
 * MSG_PEEK reads leave the data queued: they are not counted.
 *
 * Counts go to the map behind counts_live[0]. Each interval user space swaps the other map in;
 * updating an array of maps waits for running programs to finish (synchronize_rcu), so the map
 * swapped out is complete and idle when it is read and cleared: no byte is lost or counted in two
 * intervals. */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "tcptop.h"

char LICENSE[] SEC("license") = "GPL";

#define MSG_PEEK 2

struct counts_map {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcptop_key);
	__type(value, struct tcptop_bytes);
};

struct counts_map counts_a SEC(".maps");
struct counts_map counts_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct counts_map);
} counts_live SEC(".maps") = {
	.values = { [0] = &counts_a },
};

/* Connections dropped because the map was full (reported by user space). */
__u64 map_full = 0;

static __always_inline void count(struct sock *sk, int ret, bool sent)
{
	static const struct tcptop_bytes zero = {};
	struct tcptop_key key = {};
	struct tcptop_bytes *val;
	__u32 slot = 0, pid;
	void *counts;

	if (ret <= 0 || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return;
	pid = current_tgid();
	if (!tgid_ok(pid) || !netns_ok(sk_netns_cookie(sk)))
		return;
	sk_read_tuple(sk, &key.tuple);
	if (!sk_is_inet(key.tuple.family) || !family_ok(key.tuple.family))
		return;
	key.pid = pid;
	bpf_get_current_comm(key.comm, sizeof(key.comm));

	counts = bpf_map_lookup_elem(&counts_live, &slot);
	if (!counts)
		return;
	val = bpf_map_lookup_elem(counts, &key);
	if (!val) {
		bpf_map_update_elem(counts, &key, &zero, BPF_NOEXIST);
		val = bpf_map_lookup_elem(counts, &key);
		if (!val) {
			__sync_fetch_and_add(&map_full, 1);
			return;
		}
	}
	if (sent)
		__sync_fetch_and_add(&val->tx, ret);
	else
		__sync_fetch_and_add(&val->rx, ret);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tcptop_send, struct sock *sk, int ret, int flags)
{
	count(sk, ret, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tcptop_recv, struct sock *sk, int ret, int flags)
{
	if (flags & MSG_PEEK)
		return 0;
	count(sk, ret, false);
	return 0;
}
