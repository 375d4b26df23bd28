// SPDX-License-Identifier: GPL-2.0
/* sofamily: connect() and accept() counts by process and address family, summed in the kernel.
 *
 * connect(): counted at entry with the family of the address passed (as the book does), so
 * failed attempts count too and a connect(AF_UNSPEC) "disconnect" shows as AF_UNSPEC.
 * accept(): counted at exit when it returned a socket, with that socket's family, read from the
 * kernel socket rather than the caller's sockaddr buffer (which may be NULL). */
#include "common/netbpf.bpf.h"
#include "common/filter.bpf.h"
#include "common/maps.bpf.h"
#include "common/sock.bpf.h"
#include "common/sockaddr.bpf.h"
#include "sofamily.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct sofamily_key);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void count(__u8 call, __u16 family)
{
	struct sofamily_key key = { .family = family, .call = call };

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	counter_add(&counts, &key, 1);
}

SEC("tracepoint/syscalls/sys_enter_connect")
int sofamily_connect(struct trace_event_raw_sys_enter *ctx)
{
	struct sock *sk;
	int family;

	if (!tgid_ok(current_tgid()))
		return 0;
	if (filter_netns || cgroup_filtered()) {
		sk = sock_from_fd((int)ctx->args[0]);
		if (!sk || !sk_netns_ok(sk))
			return 0;
		if (!sk_cgroup_ok(sk))
			return 0;
	}
	family = read_user_family((const void *)ctx->args[1]);
	if (family < 0)
		return 0; /* no address to read: connect() fails with EFAULT */
	count(SOFAMILY_CONNECT, family);
	return 0;
}

static __always_inline int on_accept_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct sock *sk;

	if (ctx->ret < 0 || !tgid_ok(current_tgid()))
		return 0;
	sk = sock_from_fd(ctx->ret);
	if (!sk || !sk_netns_ok(sk))
		return 0;
	if (!sk_cgroup_ok(sk))
		return 0;
	count(SOFAMILY_ACCEPT, BPF_CORE_READ(sk, __sk_common.skc_family));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int sofamily_accept(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int sofamily_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return on_accept_exit(ctx);
}
