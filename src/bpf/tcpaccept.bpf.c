// SPDX-License-Identifier: GPL-2.0
/* tcpaccept: passive TCP opens, seen where accept() returns them, so the accepting process is
 * known. The listening fd is remembered at entry; at exit the new fd is walked to its sock. */
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

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	__s32 *listen_fd = bpf_map_lookup_elem(&accepting, &tid);
	struct sock *sk, *listener;
	struct tcpaccept_event *e;
	struct sock_tuple t = {};
	__s32 lfd;

	if (!listen_fd)
		return 0;
	lfd = *listen_fd;
	bpf_map_delete_elem(&accepting, &tid);
	if (ctx->ret < 0)
		return 0;
	sk = sock_from_fd(ctx->ret);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP || !netns_ok(sk_netns_cookie(sk)))
		return 0;
	sk_read_tuple(sk, &t);
	if (!sk_is_inet(t.family) || !family_ok(t.family) || !lport_ok(t.lport))
		return 0;

	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	e->tuple = t;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = current_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	listener = sock_from_fd(lfd);
	if (listener) {
		/* accept() has dequeued this connection already: count it back in. */
		e->backlog = BPF_CORE_READ(listener, sk_ack_backlog) + 1;
		e->max_backlog = BPF_CORE_READ(listener, sk_max_ack_backlog);
	} else {
		e->backlog = 0;
		e->max_backlog = 0;
	}
	submit_event(e);
	return 0;
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
