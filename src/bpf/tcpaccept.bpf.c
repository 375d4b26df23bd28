// SPDX-License-Identifier: GPL-2.0
/* tcpaccept: passive TCP opens, seen where they are handed to the accepting process, so that
 * process is known.
 * Best: the return of inet_csk_accept() (fexit, or kprobe + kretprobe), the listener's accept
 * for every caller: accept(2), accept4(2), io_uring and in-kernel accepts.
 * Fallback: the accept/accept4 syscall tracepoints; the listening fd is remembered at entry and
 * at exit the new fd is walked to its sock. io_uring accepts do not pass there. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "tcpaccept.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(tcpaccept_event);

/* thread in accept() -> listening fd */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __s32);
} accepting SEC(".maps");

static __always_inline int on_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = current_tid();
	__s32 fd = (__s32)ctx->args[0];

	if (!tgid_ok(current_tgid()))
		return 0;
	bpf_map_update_elem(&accepting, &tid, &fd, BPF_ANY);
	return 0;
}

/* One accepted connection: sk is the new socket, listener the one it was queued on. */
static __always_inline int report(struct sock *sk, struct sock *listener)
{
	struct tcpaccept_event *e;
	struct sock_tuple t = {};

	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !sk_netns_ok(sk))
		return 0;
	/* The acceptor is current (accept()'s return): its mount namespace is the one asked. */
	if (!sk_cgroup_ok(sk) || !current_mntns_ok())
		return 0;
	sk_read_tuple(sk, &t);
	if (!sk_is_inet(t.family) || !family_ok(t.family) || !lport_ok(t.lport))
		return 0;

	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->cgroup = sk_cgroup_id(sk);
	e->tuple = t;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = current_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (listener) {
		/* The connection has been taken off the queue already: count it back in. */
		e->backlog = BPF_CORE_READ(listener, sk_ack_backlog) + 1;
		e->max_backlog = BPF_CORE_READ(listener, sk_max_ack_backlog);
	} else {
		e->backlog = 0;
		e->max_backlog = 0;
	}
	submit_event(e);
	return 0;
}

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	__s32 *listen_fd = bpf_map_lookup_elem(&accepting, &tid);
	__s32 lfd;

	if (!listen_fd)
		return 0;
	lfd = *listen_fd;
	bpf_map_delete_elem(&accepting, &tid);
	if (ctx->ret < 0)
		return 0;
	return report(sock_from_fd(ctx->ret), sock_from_fd(lfd));
}

SEC("tracepoint/syscalls/sys_enter_accept")
int tcpaccept_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int tcpaccept_enter4(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tcpaccept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tcpaccept_exit4(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx);
}

/* inet_csk_accept(listener, ...) returns the new sock (NULL on error). Its other arguments
 * changed in 6.10 (flags, err, kern -> struct proto_accept_arg *): only the first is read, and
 * the return value comes from bpf_get_func_ret(), wherever it sits. */
SEC("fexit/inet_csk_accept")
int BPF_PROG(tcpaccept_fexit, struct sock *listener)
{
	__u64 sk = 0;

	if (!tgid_ok(current_tgid()))
		return 0;
	bpf_get_func_ret(ctx, &sk);
	return report((struct sock *)sk, listener);
}

/* thread in inet_csk_accept() -> its listener, for the kretprobe */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} accepting_sk SEC(".maps");

SEC("kprobe/inet_csk_accept")
int BPF_KPROBE(tcpaccept_kprobe, struct sock *listener)
{
	__u32 tid = current_tid();
	__u64 sk = (__u64)listener;

	if (!tgid_ok(current_tgid()))
		return 0;
	bpf_map_update_elem(&accepting_sk, &tid, &sk, BPF_ANY);
	return 0;
}

SEC("kretprobe/inet_csk_accept")
int BPF_KRETPROBE(tcpaccept_kretprobe, struct sock *sk)
{
	__u32 tid = current_tid();
	__u64 *listener = bpf_map_lookup_elem(&accepting_sk, &tid);
	struct sock *l;

	if (!listener)
		return 0;
	l = (struct sock *)*listener;
	bpf_map_delete_elem(&accepting_sk, &tid);
	return report(sk, l);
}
