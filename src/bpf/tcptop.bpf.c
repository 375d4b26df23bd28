// SPDX-License-Identifier: GPL-2.0
/* tcptop: TCP payload bytes sent and received per process and connection, summed in the kernel.
 *
 * Each plan sees every socket call once, with its return value, in the caller's context, so the
 * process is the real one and every byte is counted once:
 * - fexit (best): the returns of tcp_sendmsg(), tcp_recvmsg() and, on kernels that have it,
 *   tcp_sendpage() (sendfile and splice before Linux 6.5);
 * - kprobe: the same functions with kprobe + kretprobe;
 * - tp_btf: the sock_send_length / sock_recv_length tracepoints (Linux 6.3+).
 * A received byte is counted when recvmsg() hands it over, never again when the receive window
 * is updated (tcp_cleanup_rbuf() runs several times per call: counting there counts twice).
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

/* Which argument of tcp_recvmsg() is its flags (from BTF; 3 on Linux 5.19+). */
const volatile __u32 recv_flags_arg = 3;

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
	if (!tgid_ok(pid) || !sk_netns_ok(sk))
		return;
	if (!sk_cgroup_ok(sk) || !current_mntns_ok())
		return;
	sk_read_tuple(sk, &key.tuple);
	tuple_unmap_v4(&key.tuple);
	if (!sk_is_inet(key.tuple.family) || !family_ok(key.tuple.family))
		return;
	key.pid = pid;
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	key.cgroup = sk_cgroup_id(sk);

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

/* fexit plan. The return value is read with bpf_get_func_ret() and the flags with
 * bpf_get_func_arg(): their positions changed over kernel versions (tcp_recvmsg lost nonblock,
 * then addr_len). */
static __always_inline int recv_flags(void *ctx)
{
	__u64 flags = 0;

	bpf_get_func_arg(ctx, recv_flags_arg, &flags);
	return (int)flags;
}

SEC("fexit/tcp_sendmsg")
int BPF_PROG(tcptop_sendmsg_exit, struct sock *sk)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	count(sk, (int)ret, true);
	return 0;
}

SEC("fexit/tcp_sendpage")
int BPF_PROG(tcptop_sendpage_exit, struct sock *sk)
{
	__u64 ret = 0;

	bpf_get_func_ret(ctx, &ret);
	count(sk, (int)ret, true);
	return 0;
}

SEC("fexit/tcp_recvmsg")
int BPF_PROG(tcptop_recvmsg_exit, struct sock *sk)
{
	__u64 ret = 0;

	if (recv_flags(ctx) & MSG_PEEK)
		return 0;
	bpf_get_func_ret(ctx, &ret);
	count(sk, (int)ret, false);
	return 0;
}

/* kprobe plan: the socket (and whether the call peeks) per thread, from entry to return. These
 * calls run in process context and do not nest on a thread. */
struct call {
	__u64 sk;
	__u32 peek;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct call);
} calls SEC(".maps");

static __always_inline void call_enter(struct sock *sk, bool peek)
{
	struct call c = { .sk = (__u64)sk, .peek = peek };
	__u32 tid = current_tid();

	if (tgid_ok(current_tgid()))
		bpf_map_update_elem(&calls, &tid, &c, BPF_ANY);
}

static __always_inline void call_exit(int ret, bool sent)
{
	__u32 tid = current_tid();
	struct call *c = bpf_map_lookup_elem(&calls, &tid);

	if (!c)
		return;
	if (!c->peek)
		count((struct sock *)c->sk, ret, sent);
	bpf_map_delete_elem(&calls, &tid);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(tcptop_sendmsg_kprobe, struct sock *sk)
{
	call_enter(sk, false);
	return 0;
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(tcptop_sendmsg_kretprobe, int ret)
{
	call_exit(ret, true);
	return 0;
}

SEC("kprobe/tcp_sendpage")
int BPF_KPROBE(tcptop_sendpage_kprobe, struct sock *sk)
{
	call_enter(sk, false);
	return 0;
}

SEC("kretprobe/tcp_sendpage")
int BPF_KRETPROBE(tcptop_sendpage_kretprobe, int ret)
{
	call_exit(ret, true);
	return 0;
}

SEC("kprobe/tcp_recvmsg")
int BPF_KPROBE(tcptop_recvmsg_kprobe, struct sock *sk)
{
	unsigned long p4 = PT_REGS_PARM4(ctx), p5 = PT_REGS_PARM5(ctx);

	/* Both registers are read at fixed offsets: clang would otherwise pick the offset at run
	 * time, and older verifiers refuse a ctx access at a computed offset. */
	barrier_var(p4);
	barrier_var(p5);
	call_enter(sk, (recv_flags_arg == 4 ? p5 : p4) & MSG_PEEK);
	return 0;
}

SEC("kretprobe/tcp_recvmsg")
int BPF_KRETPROBE(tcptop_recvmsg_kretprobe, int ret)
{
	call_exit(ret, false);
	return 0;
}
