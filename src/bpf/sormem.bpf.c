// SPDX-License-Identifier: GPL-2.0
/* sormem: socket receive-buffer usage (sk_rmem_alloc) and limit (sk_rcvbuf), sampled just
 * before each socket read into two log2 histograms, plus one event per receive-queue overflow.
 *
 * The sample must be taken before the data is copied out (after it, the queue is drained), so it
 * comes from one of, per plan:
 * - fentry or kprobe on sock_recvmsg (the book's hook; every receive path but the messages
 *   after the first of a recvmmsg(2), which ____sys_recvmsg hands over without it: also
 *   hooked);
 * - the read syscalls' entry (read, readv, recvfrom, recvmsg, recvmmsg) with the fd -> sock walk;
 *   non-socket fds are skipped by the S_ISSOCK test.
 * Overflows: sock_rcvqueue_full (protocols queueing with sock_queue_rcv_skb: raw, ICMP ping,
 * ...), sock_exceed_buf_limit (the protocol's memory limits: tcp_mem, udp_mem), and, since UDP
 * does its own queueing and never fires sock_rcvqueue_full, udp_fail_queue_rcv_skb. Before 6.4
 * IPv6 UDP did not fire that one: the fentry and kprobe plans take IPv6 UDP drops from the
 * return of __udp_enqueue_schedule_skb() (the tracepoint's own condition, rc < 0) instead. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/hist.bpf.h"
#include "common/sock.bpf.h"
#include "sormem.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(sormem_event);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct hist);
} hists SEC(".maps");

/* Set by user space in the fentry and kprobe plans: IPv6 UDP drops come from
 * __udp_enqueue_schedule_skb()'s return, not from the tracepoint. */
const volatile bool udp6_drops_by_return = false;

/* With -p: sockets the process has read from, so their overflows (raised in softirq, in
 * whatever task was running) can be attributed to it. A freed sock's memory is soon another
 * socket's, so the value is the socket's inode number, which the next socket does not share. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} pid_socks SEC(".maps");

static __always_inline __u64 sk_ino(struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
}

static __always_inline void sample(struct sock *sk)
{
	__u32 key;
	__u64 skp = (__u64)sk, ino;

	if (!sk || !sk_netns_ok(sk))
		return;
	if (!sk_cgroup_ok(sk))
		return;
	if (filter_tgid) {
		ino = sk_ino(sk);
		bpf_map_update_elem(&pid_socks, &skp, &ino, BPF_ANY);
	}
	key = SORMEM_HIST_RMEM_ALLOC;
	hist_map_add(&hists, &key, BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter));
	key = SORMEM_HIST_RMEM_LIMIT;
	hist_map_add(&hists, &key, BPF_CORE_READ(sk, sk_rcvbuf));
}

SEC("fentry/sock_recvmsg")
int BPF_PROG(sormem_fentry_recvmsg, struct socket *sock)
{
	if (tgid_ok(current_tgid()))
		sample(BPF_CORE_READ(sock, sk));
	return 0;
}

SEC("kprobe/sock_recvmsg")
int BPF_KPROBE(sormem_kprobe_recvmsg, struct socket *sock)
{
	if (tgid_ok(current_tgid()))
		sample(BPF_CORE_READ(sock, sk));
	return 0;
}

/* recvmmsg(2): its messages after the first skip sock_recvmsg (nosec). */
SEC("fentry/____sys_recvmsg")
int BPF_PROG(sormem_fentry_mmsg, struct socket *sock, struct msghdr *msg, void *umsg, void *uaddr,
	     unsigned int flags, int nosec)
{
	if (nosec && tgid_ok(current_tgid()))
		sample(BPF_CORE_READ(sock, sk));
	return 0;
}

SEC("kprobe/____sys_recvmsg")
int BPF_KPROBE(sormem_kprobe_mmsg, struct socket *sock, struct msghdr *msg, void *umsg, void *uaddr,
	       unsigned int flags, int nosec)
{
	if (nosec && tgid_ok(current_tgid()))
		sample(BPF_CORE_READ(sock, sk));
	return 0;
}

static __always_inline int on_read_enter(struct trace_event_raw_sys_enter *ctx)
{
	if (tgid_ok(current_tgid()))
		sample(sock_from_fd((int)ctx->args[0]));
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int sormem_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return on_read_enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int sormem_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return on_read_enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int sormem_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return on_read_enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int sormem_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return on_read_enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int sormem_enter_recvmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return on_read_enter(ctx);
}

/* A new event for sk, or NULL when filtered out (or the ring is full). */
static __always_inline struct sormem_event *start_event(struct sock *sk, __u32 kind)
{
	struct sormem_event *e;
	__u64 skp = (__u64)sk, *ino;
	__u32 pid = current_tgid();

	if (!sk || !sk_netns_ok(sk))
		return NULL;
	if (!sk_cgroup_ok(sk))
		return NULL;
	if (filter_tgid && pid != filter_tgid) {
		ino = bpf_map_lookup_elem(&pid_socks, &skp);
		if (!ino || *ino != sk_ino(sk))
			return NULL;
	}
	e = reserve_event(sizeof(*e));
	if (!e)
		return NULL;
	__builtin_memset(e, 0, sizeof(*e));
	e->cgroup = sk_cgroup_id(sk);
	e->kind = kind;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = pid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	sk_read_tuple(sk, &e->tuple);
	sk_proto_name(sk, e->proto, sizeof(e->proto));
	e->rmem_alloc = BPF_CORE_READ(sk, sk_backlog.rmem_alloc.counter);
	e->rcvbuf = BPF_CORE_READ(sk, sk_rcvbuf);
	return e;
}

SEC("tp_btf/sock_rcvqueue_full")
int BPF_PROG(sormem_rcvqueue_full, struct sock *sk, struct sk_buff *skb)
{
	struct sormem_event *e = start_event(sk, SORMEM_RCVQUEUE_FULL);

	if (!e)
		return 0;
	e->truesize = BPF_CORE_READ(skb, truesize);
	submit_event(e);
	return 0;
}

SEC("tp_btf/sock_exceed_buf_limit")
int BPF_PROG(sormem_exceed_buf_limit, struct sock *sk, struct proto *prot, long allocated, int kind)
{
	struct sormem_event *e = start_event(sk, SORMEM_EXCEED_BUF_LIMIT);

	if (!e)
		return 0;
	e->allocated = allocated;
	e->mem_kind = kind;
	e->wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
	submit_event(e);
	return 0;
}

/* The skb argument is newer than the tracepoint (added in 6.x): only rc and sk are used. */
static __always_inline void udp_drop(struct sock *sk, int rc)
{
	struct sormem_event *e = start_event(sk, SORMEM_UDP_FAIL_QUEUE);

	if (!e)
		return;
	e->rc = rc;
	submit_event(e);
}

static __always_inline bool sk_is_inet6(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6;
}

SEC("tp_btf/udp_fail_queue_rcv_skb")
int BPF_PROG(sormem_udp_fail_queue, int rc, struct sock *sk)
{
	if (!(udp6_drops_by_return && sk && sk_is_inet6(sk)))
		udp_drop(sk, rc);
	return 0;
}

SEC("fexit/__udp_enqueue_schedule_skb")
int BPF_PROG(sormem_fexit_udp_enqueue, struct sock *sk, struct sk_buff *skb, int rc)
{
	if (rc < 0 && sk_is_inet6(sk))
		udp_drop(sk, rc);
	return 0;
}

/* kprobe plan: the socket kept per CPU until the return (receive runs with bottom halves off,
 * so nothing else enqueues on this CPU in between). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} udp_enqueue_sk SEC(".maps");

SEC("kprobe/__udp_enqueue_schedule_skb")
int BPF_KPROBE(sormem_kprobe_udp_enqueue, struct sock *sk)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&udp_enqueue_sk, &zero);

	if (slot)
		*slot = (__u64)sk;
	return 0;
}

SEC("kretprobe/__udp_enqueue_schedule_skb")
int BPF_KRETPROBE(sormem_kretprobe_udp_enqueue, int rc)
{
	__u32 zero = 0;
	__u64 *slot = bpf_map_lookup_elem(&udp_enqueue_sk, &zero);
	struct sock *sk;

	if (!slot || !*slot)
		return 0;
	sk = (struct sock *)*slot;
	*slot = 0;
	if (rc < 0 && sk_is_inet6(sk))
		udp_drop(sk, rc);
	return 0;
}
