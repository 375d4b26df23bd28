// SPDX-License-Identifier: GPL-2.0
/* solisten: listen() on IP sockets, with the backlog asked and the one the kernel set, the
 * address and port listened on, and the result.
 *
 * At entry: the socket (fd -> sock) and the backlog. At exit: the result, and the socket's
 * address and port then (an unbound socket gets its port from listen() itself). */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/sock_call.bpf.h"
#include "solisten.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(solisten_event);

SEC("tracepoint/syscalls/sys_enter_listen")
int solisten_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct sock_call c = {};
	struct sock *sk = filtered_inet_sock((int)ctx->args[0]);

	if (!sk)
		return 0;
	c.sk = (__u64)sk;
	c.arg = (int)ctx->args[1];
	sock_call_enter(&c);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_listen")
int solisten_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct solisten_event *e;
	struct sock_call c;
	struct sock *sk;

	if (!sock_call_exit(&c))
		return 0;
	/* listen() holds the socket's file: sk is alive. */
	sk = (struct sock *)c.sk;
	e = reserve_event(sizeof(*e));
	if (!e)
		return 0;
	sk_read_tuple(sk, &e->tuple);
	e->netns_cookie = sk_netns_id(sk);
	e->netns_ino = sk_netns_ino(sk);
	e->backlog = c.arg;
	e->max_backlog = ctx->ret ? 0 : BPF_CORE_READ(sk, sk_max_ack_backlog);
	e->protocol = BPF_CORE_READ(sk, sk_protocol);
	e->ret = ctx->ret;
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = current_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->cgroup = event_cgroup_id(sk);
	submit_event(e);
	return 0;
}
