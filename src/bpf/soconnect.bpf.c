// SPDX-License-Identifier: GPL-2.0
/* soconnect: each connect() to an IP address, with its duration and result. The address is
 * copied from user memory at entry (the buffer may change before the syscall returns); the
 * event is sent at exit. */
#include "common/netbpf.bpf.h"
#include "common/events.bpf.h"
#include "common/filter.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockaddr.bpf.h"
#include "soconnect.h"

char LICENSE[] SEC("license") = "GPL";
EXPORT_EVENT_TYPE(soconnect_event);

struct pending {
	struct user_sockaddr addr;
	__u64 start_ns;
	__u16 protocol;
};

/* thread in connect() -> what it connects to */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct pending);
} connecting SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_connect")
int soconnect_enter(struct trace_event_raw_sys_enter *ctx)
{
	struct pending p = {};
	struct sock *sk;
	__u32 tid = current_tid();

	if (!tgid_ok(current_tgid()))
		return 0;
	if (!sk_is_inet(read_user_sockaddr((const void *)ctx->args[1], &p.addr)))
		return 0;
	sk = sock_from_fd((int)ctx->args[0]);
	if (!sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	if (sk)
		p.protocol = BPF_CORE_READ(sk, sk_protocol);
	p.start_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&connecting, &tid, &p, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int soconnect_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = current_tid();
	struct pending *p = bpf_map_lookup_elem(&connecting, &tid);
	struct soconnect_event *e;
	__u64 now = bpf_ktime_get_ns();

	if (!p)
		return 0;
	e = reserve_event(sizeof(*e));
	if (e) {
		e->cgroup = current_cgroup_id();
		e->addr = p->addr;
		e->ts_ns = now;
		e->lat_ns = now - p->start_ns;
		e->pid = current_tgid();
		e->ret = ctx->ret;
		e->protocol = p->protocol;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		submit_event(e);
	}
	bpf_map_delete_elem(&connecting, &tid);
	return 0;
}
