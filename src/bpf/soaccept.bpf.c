// SPDX-License-Identifier: GPL-2.0
/* soaccept: each accept() on an IP socket, with the peer and the result. The listening socket
 * is looked up at entry (it decides whether this is an IP accept, and tells the family and port
 * when accept() fails); on success the peer is read from the new socket at exit, not from the
 * caller's sockaddr buffer, which may be NULL. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "soaccept.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(soaccept_event);

struct accept_on {
	__u16 family;
	__u16 lport;
};

/* thread in accept() on an IP socket -> that listener */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct accept_on);
} accepting SEC(".maps");

static __always_inline int on_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct accept_on l = {};
	struct sock *sk;
	__u32 tid = current_tid();

	if (!tgid_ok(current_tgid()))
		return 0;
	sk = sock_from_fd((int)ctx->args[0]);
	if (!sk || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	l.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (!sk_is_inet(l.family))
		return 0;
	l.lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	bpf_map_update_elem(&accepting, &tid, &l, BPF_ANY);
	return 0;
}

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct accept_on *l = bpf_map_lookup_elem(&accepting, &tid);
	struct soaccept_event *e;
	struct sock *sk;

	if (!l)
		return 0;
	e = reserve_event(sizeof(*e));
	if (!e)
		goto out;
	e->cgroup = current_cgroup_id();
	__builtin_memset(&e->tuple, 0, sizeof(e->tuple));
	sk = ctx->ret >= 0 ? sock_from_fd(ctx->ret) : NULL;
	if (sk) {
		sk_read_tuple(sk, &e->tuple);
	} else {
		e->tuple.family = l->family;
		e->tuple.lport = l->lport;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = current_tgid();
	e->ret = ctx->ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	submit_event(e);
out:
	bpf_map_delete_elem(&accepting, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int soaccept_enter(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(ctx);
}

SEC("tracepoint/syscalls/sys_enter_accept4")
int soaccept_enter4(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int soaccept_exit(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int soaccept_exit4(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx);
}
